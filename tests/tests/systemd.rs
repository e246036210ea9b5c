//! rkt under a real systemd (booted in systemd-nspawn, `rkt_tests::booted`): `Type=notify`
//! units with `--sd-notify=ready|container`, socket activation into a pod with its own network
//! namespace and with `--net=host`, the pod's cgroups under a `Delegate=yes` unit, exit codes
//! and `Restart=on-failure`, and that `systemctl stop` leaves nothing. One booted systemd per
//! test, one test at a time (the harness serializes them).

use rkt_tests::booted::{Booted, CgroupLayout};
use rkt_tests::images;
use std::time::Duration;

const VERIFIER: &str = images::VERIFIER_IN_IMAGE;

fn bb() -> String {
    images::busybox().oci_ref()
}

/// `rkt run --uuid-file-save=F ARGS…` as an `ExecStart=` line, and F.
fn exec_start(b: &Booted, name: &str, args: &str) -> (String, std::path::PathBuf) {
    let uf = b.ctx().root().join(format!("{name}.uuid"));
    (
        format!(
            "{} run --uuid-file-save={} {args}",
            b.rkt_line(),
            uf.display()
        ),
        uf,
    )
}

/// Start `rkt-NAME.service`: `Type=notify`, `Delegate=yes`, `KillMode=mixed`, 30 s to start,
/// `extra` unit lines, `ExecStart=` `rkt run --sd-notify=ready RUN_ARGS`. `systemctl start`
/// returns once READY=1 came (or the unit failed). The UUID file of the pod.
fn start_ready_unit(b: &Booted, name: &str, run_args: &str, extra: &str) -> std::path::PathBuf {
    let (cmd, uf) = exec_start(b, name, &format!("--sd-notify=ready {run_args}"));
    b.install_unit(
        &format!("rkt-{name}.service"),
        &format!(
            "[Service]\nType=notify\nDelegate=yes\nKillMode=mixed\nTimeoutStartSec=30\n\
             {extra}ExecStart={cmd}\n"
        ),
    );
    b.sh_ok(&format!("systemctl start rkt-{name}.service"));
    uf
}

fn uuid_of(uf: &std::path::Path) -> String {
    std::fs::read_to_string(uf)
        .unwrap_or_else(|e| panic!("{}: {e}", uf.display()))
        .trim()
        .to_string()
}

/// The cgroup (as `/proc/PID/cgroup` says inside the container) of the first process whose
/// command line contains `needle`.
fn cgroup_of_process(b: &Booted, needle: &str) -> String {
    b.sh_ok(&format!(
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q -- '{needle}' && \
         {{ sed -n 's/^0:://p' $p/cgroup; break; }}; done"
    ))
    .trim()
    .to_string()
}

/// The file's content once it is there and ends with a newline (an app writes it after
/// start), within 10 s. From the host, read an app's files in its `upper` dir: its rootfs is
/// mounted in the booted container's mount namespace only.
fn wait_file(p: &std::path::Path) -> String {
    let t = std::time::Instant::now();
    loop {
        match std::fs::read_to_string(p) {
            Ok(s) if s.ends_with('\n') => return s,
            _ if t.elapsed() > Duration::from_secs(10) => panic!("{} never written", p.display()),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn assert_nothing_left(b: &Booted, uuid: &str) {
    let left = b.pod_leftovers(uuid);
    assert!(left.is_empty(), "left by pod {uuid}: {left:#?}");
}

#[test]
fn sd_notify_ready_unit_is_active_with_the_pod_under_it_and_stop_leaves_nothing() {
    let b = Booted::start();
    let uf = start_ready_unit(
        &b,
        "ready",
        &format!(
            "{} --exec=/bin/sh -- -c 'echo $NOTIFY_SOCKET > /tmp/ns; exec sleep 1000'",
            bb()
        ),
        "",
    );
    assert_eq!(b.prop("rkt-ready.service", "ActiveState"), "active");
    let uuid = uuid_of(&uf);
    let pod = b.ctx().dir().join("pods/run").join(&uuid);
    // READY=1 came after every app started, from the main PID, which is the pod's stage1/monitor
    assert!(pod.join("ready").exists());
    let stage1_pid: u32 = std::fs::read_to_string(pod.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(b.main_pid("rkt-ready.service"), stage1_pid);
    // the pod's cgroups nest under the unit's; the supervisor is in a leaf of its own
    let unit_cg = "/system.slice/rkt-ready.service";
    let app_cg = cgroup_of_process(&b, "sleep 1000");
    assert_eq!(app_cg, format!("{unit_cg}/rkt-{uuid}/busybox"));
    let sup_cg = b.sh_ok(&format!("sed -n 's/^0:://p' /proc/{stage1_pid}/cgroup"));
    assert_eq!(sup_cg.trim(), format!("{unit_cg}/supervisor"));
    let procs = b.sh_ok(&format!("cat /sys/fs/cgroup{unit_cg}/cgroup.procs"));
    assert!(
        procs.trim().is_empty(),
        "processes in the unit's inner node: {procs}"
    );
    // mode ready: the app got no NOTIFY_SOCKET
    let ns = b.sh_ok(&format!("cat {}/apps/busybox/rootfs/tmp/ns", pod.display()));
    assert_eq!(ns.trim(), "");

    b.sh_ok("systemctl stop rkt-ready.service");
    assert_eq!(b.prop("rkt-ready.service", "ActiveState"), "inactive");
    assert_nothing_left(&b, &uuid);
    assert!(
        b.sh(&format!("test -d /sys/fs/cgroup{unit_cg}"))
            .status
            .code()
            == Some(1)
    );
}

#[test]
fn sd_notify_container_app_reports_ready_and_status_and_a_silent_app_times_out() {
    let b = Booted::start();
    let (cmd, _) = exec_start(
        &b,
        "talks",
        &format!(
            "--sd-notify=container --net=host {} --exec=/bin/sh -- -c \
             'echo $NOTIFY_SOCKET $WATCHDOG_USEC > /tmp/env; sleep 1; \
             {VERIFIER} notify READY=1 WATCHDOG=1 STATUS=serving-from-the-pod; exec sleep 1000'",
            bb()
        ),
    );
    b.install_unit(
        "rkt-talks.service",
        &format!(
            "[Service]\nType=notify\nNotifyAccess=all\nDelegate=yes\nKillMode=mixed\n\
             TimeoutStartSec=30\nWatchdogSec=30\nExecStart={cmd}\n"
        ),
    );
    b.sh_ok("systemctl start --no-block rkt-talks.service");
    // activating until the app's READY=1, a second after the pod started
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(b.prop("rkt-talks.service", "ActiveState"), "activating");
    b.wait_active_state("rkt-talks.service", &["active"], Duration::from_secs(20));
    assert_eq!(
        b.prop("rkt-talks.service", "StatusText"),
        "serving-from-the-pod"
    );
    // the app had the socket bound in and the unit's watchdog interval
    let uuid = uuid_of(&b.ctx().root().join("talks.uuid"));
    let env = wait_file(
        &b.ctx()
            .dir()
            .join(format!("pods/run/{uuid}/apps/busybox/upper/tmp/env")),
    );
    assert_eq!(env, "/run/systemd/notify 30000000\n");
    // the main PID stays rkt run's (stage1's, then the monitor's)
    let main = b.main_pid("rkt-talks.service");
    let comm = b.sh_ok(&format!("cat /proc/{main}/comm"));
    assert!(comm.starts_with("rkt"), "main PID {main} is {comm}");
    b.sh_ok("systemctl stop rkt-talks.service");

    // an app that never says READY=1: the start times out and systemd ends the pod
    let (cmd, uf) = exec_start(
        &b,
        "silent",
        &format!("--sd-notify=container {} --exec=/bin/sleep -- 1000", bb()),
    );
    b.install_unit(
        "rkt-silent.service",
        &format!(
            "[Service]\nType=notify\nNotifyAccess=all\nDelegate=yes\nKillMode=mixed\n\
             TimeoutStartSec=3\nExecStart={cmd}\n"
        ),
    );
    let o = b.sh("systemctl start rkt-silent.service");
    assert!(!o.status.success(), "start of a pod that never got ready");
    assert_eq!(b.prop("rkt-silent.service", "Result"), "timeout");
    assert_nothing_left(&b, &uuid_of(&uf));
}

/// A socket unit on 127.0.0.1:PORT of the container's host network namespace, its service a
/// pod running `rkt-verifier serve-fds` with `net`; returns the JSON the app answers with.
fn socket_activated_answer(b: &Booted, name: &str, port: u16, net: &str) -> serde_json::Value {
    let (cmd, _) = exec_start(
        b,
        name,
        &format!("{net} {} --exec={VERIFIER} -- serve-fds", bb()),
    );
    b.install_unit(
        &format!("{name}.socket"),
        &format!("[Socket]\nListenStream=127.0.0.1:{port}\nFileDescriptorName=web\n"),
    );
    b.install_unit(
        &format!("{name}.service"),
        &format!("[Service]\nDelegate=yes\nKillMode=mixed\nExecStart={cmd}\n"),
    );
    b.sh_ok(&format!("systemctl start {name}.socket"));
    // the first connection starts the service; the pod answers through the passed socket
    let line = b.sh_ok(&format!(
        "exec 5<>/dev/tcp/127.0.0.1/{port} && timeout 30 head -n1 <&5"
    ));
    serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

#[test]
fn socket_activation_reaches_the_app_in_its_own_netns_and_with_net_host() {
    let b = Booted::start();
    let host_netns = b.sh_ok("readlink /proc/1/ns/net");
    for (name, port, net) in [
        ("rkt-sa-own", 18081, ""),
        ("rkt-sa-host", 18082, "--net=host"),
    ] {
        let v = socket_activated_answer(&b, name, port, net);
        // fd 3, LISTEN_PID = the app's PID in the pod, no other fd of the runtime
        assert_eq!(v["fd"], 3, "{v}");
        assert_eq!(v["listen_fds"], "1", "{v}");
        assert_eq!(v["listen_fdnames"], "web", "{v}");
        assert_eq!(v["listen_pid"], v["pid"].to_string(), "{v}");
        assert_eq!(v["fds_at_start"], serde_json::json!([0, 1, 2, 3]), "{v}");
        let own_ns = v["netns"].as_str().unwrap() != host_netns.trim();
        assert_eq!(own_ns, net.is_empty(), "{name}: {v}");
        // a second request is served by the same pod
        let again = b.sh_ok(&format!(
            "exec 5<>/dev/tcp/127.0.0.1/{port} && timeout 30 head -n1 <&5"
        ));
        assert!(again.contains(&format!("\"pid\":{}", v["pid"])), "{again}");
        b.sh_ok(&format!("systemctl stop {name}.service {name}.socket"));
    }
}

#[test]
fn exit_code_reaches_systemctl_and_restart_on_failure_restarts_the_pod() {
    let b = Booted::start();
    let (cmd, _) = exec_start(
        &b,
        "fails",
        &format!("--net=host {} --exec={VERIFIER} -- exit 3", bb()),
    );
    // three starts in a minute at most: the third failure leaves the unit failed
    b.install_unit(
        "rkt-fails.service",
        &format!(
            "[Unit]\nStartLimitIntervalSec=60\nStartLimitBurst=3\n[Service]\nDelegate=yes\n\
             KillMode=mixed\nRestart=on-failure\nRestartSec=100ms\nExecStart={cmd}\n"
        ),
    );
    b.sh_ok("systemctl start rkt-fails.service");
    b.wait_active_state("rkt-fails.service", &["failed"], Duration::from_secs(30));
    let restarts: usize = b.prop("rkt-fails.service", "NRestarts").parse().unwrap();
    assert!(restarts >= 2, "NRestarts={restarts}");
    assert_eq!(b.prop("rkt-fails.service", "ExecMainCode"), "1"); // CLD_EXITED
    assert_eq!(b.prop("rkt-fails.service", "ExecMainStatus"), "3");
    // every run was a pod of its own; none is left running or holding anything
    let pods = b.ctx().pods_in("run");
    assert!(pods.len() >= 3, "{pods:?}");
    for u in pods {
        assert_nothing_left(&b, &u);
    }
}

#[test]
fn systemctl_restart_and_kill_end_the_pod_and_restart_starts_a_new_one() {
    let b = Booted::start();
    let uf = start_ready_unit(
        &b,
        "rk",
        &format!("{} --exec=/bin/sleep -- 1000", bb()),
        &format!("ExecStopPost=-{} gc --mark-only\n", b.rkt_line()),
    );
    let first = uuid_of(&uf);
    // restart: the pod stops (SIGTERM to the main PID) and a new one is ready
    b.sh_ok("systemctl restart rkt-rk.service");
    assert_eq!(b.prop("rkt-rk.service", "ActiveState"), "active");
    let second = uuid_of(&uf);
    assert_ne!(first, second);
    assert_nothing_left(&b, &first);
    assert!(b
        .ctx()
        .dir()
        .join("pods/run")
        .join(&second)
        .join("ready")
        .exists());
    // systemctl kill (SIGKILL to every process of the unit): nothing the pod set up outlives
    // rkt gc
    b.sh_ok("systemctl kill -s SIGKILL rkt-rk.service");
    b.wait_active_state(
        "rkt-rk.service",
        &["inactive", "failed"],
        Duration::from_secs(20),
    );
    b.sh_ok(&format!("{} gc --grace-period=0s", b.rkt_line()));
    assert_nothing_left(&b, &second);
}

#[test]
fn a_pod_with_private_users_gets_its_app_cgroups_delegated_under_a_unit() {
    let b = Booted::start();
    let base: u32 = 5_000_000;
    let d = b.ctx().local_config().join("userns.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("pool.json"),
        format!(r#"{{"rktKind":"userns","rktVersion":"v1","ranges":["{base}:65536"]}}"#),
    )
    .unwrap();
    let uf = start_ready_unit(
        &b,
        "pu",
        &format!("--private-users {} --exec=/bin/sleep -- 1000", bb()),
        "",
    );
    let uuid = uuid_of(&uf);
    // the app's cgroup (pure cgroup v2) belongs to the pod's root, bounded; the pod's own does not
    let app_cg = format!("/sys/fs/cgroup/system.slice/rkt-pu.service/rkt-{uuid}/busybox");
    let owners = b.sh_ok(&format!(
        "stat -c '%u %n' {app_cg} {app_cg}/cgroup.procs {app_cg}/cgroup.subtree_control \
         {app_cg}/cgroup.threads {app_cg}/cgroup.max.depth {app_cg}/.."
    ));
    let got: Vec<&str> = owners.lines().collect();
    for l in &got[..4] {
        assert!(l.starts_with(&format!("{base} ")), "{owners}");
    }
    for l in &got[4..] {
        assert!(l.starts_with("0 "), "{owners}");
    }
    assert_eq!(
        b.sh_ok(&format!("cat {app_cg}/cgroup.max.depth")).trim(),
        "16"
    );
    // the app runs as the pod's root, which is the mapped id
    let pid = b.sh_ok(&format!("head -n1 {app_cg}/cgroup.procs"));
    let uid = b.sh_ok(&format!("stat -c %u /proc/{}", pid.trim()));
    assert_eq!(uid.trim(), base.to_string());
    b.sh_ok("systemctl stop rkt-pu.service");
    assert_nothing_left(&b, &uuid);
}

#[test]
fn hybrid_layout_with_read_only_v1_controllers() {
    let b = Booted::start_with(CgroupLayout::Hybrid);
    assert_eq!(b.layout(), CgroupLayout::Hybrid);
    let (cmd, uf) = exec_start(&b, "hy", &format!("--net=host {} --exec=/bin/true", bb()));
    let o = b.sh(&format!(
        "systemd-run --wait --pipe -q -p Delegate=yes {cmd}"
    ));
    // nspawn mounts the host's v1 hierarchies read-only: stage1 cannot make the pod's
    // cgroups and says which one
    assert_eq!(o.status.code(), Some(254), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cgroup"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_nothing_left(&b, &uuid_of(&uf));
}

#[test]
fn generated_unit_and_generator_unit_start_pods_and_stop_leaves_nothing() {
    let b = Booted::start();
    // `rkt generate systemd`, run on the host with the context's flags: the unit is installed
    // as printed
    let uf = b.ctx().root().join("gen.uuid");
    let o = b.ctx().rkt_output(&[
        "generate",
        "systemd",
        "--sd-notify=ready",
        "--stop-timeout=2",
        &format!("--uuid-file-save={}", uf.display()),
        &bb(),
        "--exec=/bin/sh",
        "--",
        "-c",
        "echo \"$AC_APP_NAME 100%\" > /tmp/mark; exec sleep 1000",
    ]);
    assert!(o.status.success(), "{}", rkt_tests::stderr(&o));
    let unit = rkt_tests::stdout(&o);
    assert!(unit.contains("TimeoutStopSec=7\n"), "{unit}");
    b.install_unit("rkt-gen.service", &unit);
    b.sh_ok("systemctl start rkt-gen.service");
    assert_eq!(b.prop("rkt-gen.service", "ActiveState"), "active");
    let uuid = uuid_of(&uf);
    let mark = b
        .ctx()
        .dir()
        .join(format!("pods/run/{uuid}/apps/busybox/upper/tmp/mark"));
    assert_eq!(wait_file(&mark), "busybox 100%\n");
    b.sh_ok("systemctl stop rkt-gen.service");
    assert_nothing_left(&b, &uuid);
    // ExecStopPost's `rkt gc --mark-only` moved the exited pod to garbage
    assert_eq!(
        b.ctx().pods_in("exited-garbage"),
        std::slice::from_ref(&uuid)
    );

    // the generator: a pod file in /run/rkt/pods becomes web.service at daemon-reload, wanted
    // by multi-user.target; its pod has its own network namespace
    let gen = rkt_tests::bin_dir().join("rkt-systemd-generator");
    let uf = b.ctx().root().join("web.uuid");
    let pod_file = format!(
        "[Unit]\nDescription=web pod\n[Pod]\nDataDir={}\nInsecureOptions=image\nSdNotify=ready\n\
         StopTimeout=3\nRunArgs=--uuid-file-save={}\nImage={}\nName=web\n\
         Exec=/bin/sh -c 'ip -o addr show eth0 > /tmp/addr; exec sleep 1000'\n\
         [Service]\nRestart=on-failure\n[Install]\nWantedBy=multi-user.target\n",
        b.ctx().dir().display(),
        uf.display(),
        bb()
    );
    let o = rkt_tests::output_with_stdin(
        &mut b.exec_cmd(&[
            "sh",
            "-c",
            &format!(
                "mkdir -p /run/rkt/pods /run/systemd/system-generators && \
                 cat > /run/rkt/pods/web.pod && \
                 ln -sf {} /run/systemd/system-generators/ && systemctl daemon-reload",
                gen.display()
            ),
        ]),
        pod_file.as_bytes(),
    );
    assert!(o.status.success(), "{}", rkt_tests::stderr(&o));
    assert_eq!(b.prop("web.service", "LoadState"), "loaded");
    assert_eq!(b.prop("web.service", "Description"), "web pod");
    b.sh_ok("test -L /run/systemd/generator/multi-user.target.wants/web.service");
    b.sh_ok("systemctl start web.service");
    assert_eq!(b.prop("web.service", "ActiveState"), "active");
    let uuid = uuid_of(&uf);
    let addr = b
        .ctx()
        .dir()
        .join(format!("pods/run/{uuid}/apps/web/upper/tmp/addr"));
    let addr = wait_file(&addr);
    assert!(addr.contains("172.16.28."), "{addr}");
    b.sh_ok("systemctl stop web.service");
    assert_nothing_left(&b, &uuid);
    // a bad pod file is reported and skipped, the good one stays
    b.sh_ok(
        "printf '[Pod]\\nExec=/bin/true\\n' > /run/rkt/pods/bad.pod && systemctl daemon-reload",
    );
    assert_eq!(b.prop("bad.service", "LoadState"), "not-found");
    assert_eq!(b.prop("web.service", "LoadState"), "loaded");
    let j = b.journal(&["-t", "rkt-systemd-generator"]);
    assert!(j.contains("bad.pod:2: Exec= before any Image="), "{j}");
}

/// Host side, no systemd needed: `sh` opens fd 3 and execs rkt with `LISTEN_*` set, as systemd
/// would; the app's output is its fds (verifier JSON) and `LISTEN_PID:LISTEN_FDS:NAMES:$$`.
fn run_with_listen_env(ctx: &rkt_tests::TestCtx, listen_pid: &str) -> (Vec<i64>, String) {
    let o = ctx
        .rkt_under(&[
            "sh",
            "-c",
            &format!(
                "exec 3</etc/hostname; LISTEN_FDS=1 LISTEN_FDNAMES=web LISTEN_PID={listen_pid} \
                 exec \"$@\""
            ),
            "sh",
        ])
        .args(["--insecure-options=image", "run", "--net=host", &bb()])
        .args([
            "--exec=/bin/sh",
            "--",
            "-c",
            &format!("{VERIFIER} fds; echo \"$LISTEN_PID:$LISTEN_FDS:$LISTEN_FDNAMES:$$\""),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", rkt_tests::stderr(&o));
    let out = rkt_tests::stdout(&o);
    let mut lines = out.lines();
    let report: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let fds = report["fds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fd"].as_i64().unwrap())
        .collect();
    (fds, lines.next().unwrap_or_default().to_string())
}

#[test]
fn listen_fds_reach_the_app_only_when_listen_pid_names_rkt() {
    let ctx = rkt_tests::TestCtx::new();
    // meant for rkt (LISTEN_PID = the PID that execs rkt): fd 3 and the variables, with
    // LISTEN_PID the app's own PID in the pod
    let (fds, env) = run_with_listen_env(&ctx, "$$");
    assert_eq!(fds, [0, 1, 2, 3], "{env}");
    let v: Vec<&str> = env.split(':').collect();
    assert_eq!(v[1..3], ["1", "web"], "{env}");
    assert_eq!(v[0], v[3], "LISTEN_PID is the app's PID: {env}");
    // meant for another process: neither the fd nor any variable (libcontainer would have
    // kept that many fds of its own init open into the app had LISTEN_FDS reached stage1)
    let (fds, env) = run_with_listen_env(&ctx, "1");
    assert_eq!(fds, [0, 1, 2], "{env}");
    assert!(env.starts_with(":::"), "{env}");
}

#[test]
fn apps_output_lands_in_the_journal_under_the_unit_with_the_apps_name() {
    let b = Booted::start();
    let run = format!(
        "{} run --net=host {img} --name=alpha --exec=/bin/sh -- -c 'echo alpha-says-hi' --- \
         {img} --name=beta --exec=/bin/sh -- -c 'echo beta-says-hi >&2'",
        b.rkt_line(),
        img = bb()
    );
    b.sh_ok(&format!(
        "systemd-run --wait -q -u rkt-jrnl -p Delegate=yes -p KillMode=mixed {run}"
    ));
    let t = std::time::Instant::now();
    let (alpha, beta) = loop {
        let a = b.journal(&["-u", "rkt-jrnl", "-t", "alpha"]);
        let be = b.journal(&["-u", "rkt-jrnl", "-t", "beta"]);
        if (a.contains("alpha-says-hi") && be.contains("beta-says-hi"))
            || t.elapsed() > Duration::from_secs(10)
        {
            break (a, be);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(alpha.trim(), "alpha-says-hi", "journal of alpha");
    assert_eq!(beta.trim(), "beta-says-hi", "journal of beta (stderr)");
}

/// Wait until `machinectl show NAME` succeeds (`true`) or fails (`false`), 10 s at most.
fn wait_machine(b: &Booted, name: &str, listed: bool) {
    let t = std::time::Instant::now();
    while b.exec(&["machinectl", "show", name]).status.success() != listed {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "machine {name} listed: want {listed}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn machinectl_shows_and_terminates_the_pod_and_gc_unregisters_a_leftover() {
    let b = Booted::start();
    let uf = start_ready_unit(
        &b,
        "mach",
        &format!("{} --exec=/bin/sleep -- 1000", bb()),
        "",
    );
    let uuid = uuid_of(&uf);
    let name = format!("rkt-{uuid}");
    // registered before READY=1: listed once the unit is active
    let show = b.sh_ok(&format!(
        "machinectl show {name} -p Class -p Leader -p Unit -p Service --value"
    ));
    let sandbox =
        std::fs::read_to_string(b.ctx().dir().join(format!("pods/run/{uuid}/sandbox-pid")))
            .unwrap();
    let v: Vec<&str> = show.lines().collect();
    // machinectl prints the properties in its own order: Unit, Leader, Class, Service
    assert!(v.contains(&"container"), "{show}");
    assert!(v.contains(&"rkt-mach.service"), "{show}");
    assert!(
        v.contains(&sandbox.trim()),
        "leader = the pod's PID 1: {show}"
    );
    assert!(b.sh_ok("machinectl list --no-legend").contains(&name));
    // terminate stops the unit, and the pod with it
    b.sh_ok(&format!("machinectl terminate {name}"));
    b.wait_active_state(
        "rkt-mach.service",
        &["inactive", "failed"],
        Duration::from_secs(20),
    );
    wait_machine(&b, &name, false);
    assert_nothing_left(&b, &uuid);

    // a pod whose process was killed in a unit that lives on: the machine stays with a dead
    // leader until `rkt gc` collects the pod
    let (cmd, uf) = exec_start(
        &b,
        "left",
        &format!("--sd-notify=ready {} --exec=/bin/sleep -- 1000", bb()),
    );
    b.sh_ok(&format!(
        "systemd-run -q -u rkt-left -p Delegate=yes sh -c '{cmd} & exec sleep 1000'"
    ));
    let t = std::time::Instant::now();
    while !uf.exists() {
        assert!(t.elapsed() < Duration::from_secs(10), "no pod started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let uuid = uuid_of(&uf);
    let name = format!("rkt-{uuid}");
    wait_machine(&b, &name, true);
    let pid = wait_file(&b.ctx().dir().join(format!("pods/run/{uuid}/pid")));
    b.sh_ok(&format!("kill -9 {}", pid.trim()));
    std::thread::sleep(Duration::from_secs(1));
    assert!(b.exec(&["machinectl", "show", &name]).status.success());
    b.sh_ok(&format!("{} gc --grace-period=0s", b.rkt_line()));
    wait_machine(&b, &name, false);
    assert_nothing_left(&b, &uuid);
}

#[test]
fn without_delegate_the_pod_asks_systemd_for_a_scope_of_its_own() {
    let b = Booted::start();
    let (cmd, uf) = exec_start(
        &b,
        "nodeleg",
        &format!("--sd-notify=ready {} --exec=/bin/sleep -- 1000", bb()),
    );
    // a unit without Delegate=yes: its cgroup is systemd's, not the pod's to write in
    b.sh_ok(&format!(
        "systemd-run -q -u rkt-nodeleg -p Type=notify -p KillMode=mixed {cmd}"
    ));
    assert_eq!(b.prop("rkt-nodeleg.service", "ActiveState"), "active");
    let uuid = uuid_of(&uf);
    let scope = format!("/machine.slice/rkt-{uuid}.scope");
    assert_eq!(
        b.prop(&format!("rkt-{uuid}.scope"), "ActiveState"),
        "active"
    );
    assert_eq!(b.prop(&format!("rkt-{uuid}.scope"), "Delegate"), "yes");
    let app_cg = cgroup_of_process(&b, "sleep 1000");
    assert_eq!(app_cg, format!("{scope}/rkt-{uuid}/busybox"));
    let stage1_pid = b.main_pid("rkt-nodeleg.service");
    let sup_cg = b.sh_ok(&format!("sed -n 's/^0:://p' /proc/{stage1_pid}/cgroup"));
    assert_eq!(sup_cg.trim(), format!("{scope}/supervisor"));
    // nothing was made in the unit's cgroup
    let made = b.sh_ok("find /sys/fs/cgroup/system.slice/rkt-nodeleg.service -mindepth 1 -type d");
    assert!(made.trim().is_empty(), "cgroups made in the unit's: {made}");
    // the scope is the pod's own: registered with machined, bound to the scope
    let name = format!("rkt-{uuid}");
    wait_machine(&b, &name, true);
    let unit = b.sh_ok(&format!("machinectl show {name} -p Unit --value"));
    assert_eq!(unit.trim(), format!("rkt-{uuid}.scope"));
    // stopping the unit stops the pod (its main PID), and the scope goes with it
    b.sh_ok("systemctl stop rkt-nodeleg.service");
    b.wait_active_state(
        &format!("rkt-{uuid}.scope"),
        &["inactive", "failed"],
        Duration::from_secs(20),
    );
    wait_machine(&b, &name, false);
    assert_nothing_left(&b, &uuid);
    assert!(
        b.sh(&format!("test -d /sys/fs/cgroup{scope}"))
            .status
            .code()
            == Some(1)
    );
}
