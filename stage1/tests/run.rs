//! End-to-end tests of `rkt-stage1 run` on hand-built pod dirs (run as root).
mod common;

use common::*;
use stage1_abi::{Isolators, MountPoint, Volume, VolumeKind};
use std::path::Path;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

/// A host volume `out` at a fresh temp dir, mounted at /out.
fn out_volume() -> (tempfile::TempDir, Volume, MountPoint) {
    let d = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let v = Volume {
        name: "out".into(),
        kind: VolumeKind::Host {
            source: d.path().to_string_lossy().into_owned(),
            recursive: true,
            idmap: false,
            propagation: None,
            recursive_read_only: false,
        },
        read_only: false,
    };
    let m = MountPoint {
        volume: "out".into(),
        target: "/out".into(),
        read_only: false,
    };
    (d, v, m)
}

fn sh(name: &str, script: &str) -> stage1_abi::App {
    app(name, &["/bin/sh", "-c", script])
}

fn assert_cgroups_gone(p: &Pod) {
    let l = p.cgroup_list();
    assert!(!l.is_empty(), "no cgroups recorded");
    for c in l {
        assert!(!c.exists(), "cgroup {} left behind", c.display());
    }
}

#[test]
fn exit_code_zero() {
    let mut p = Pod::new(vec![app("a", &["/bin/true"])], vec![], runtime());
    let (st, _o, e) = p.run(T);
    assert_eq!(code(&st), 0, "stderr: {e}");
    let s = p.status("a");
    assert_eq!(s.exit_code, Some(0));
    assert!(s.created_ns.is_some() && s.started_ns.is_some() && s.finished_ns.is_some());
    assert!(p.path().join("ready").exists());
    assert_cgroups_gone(&p);
}

#[test]
fn exit_codes_pass_through() {
    for (script, want, sig) in [
        ("exit 1", 1, None),
        ("exit 5", 5, None),
        ("kill -9 $$", 137, Some(9)),
        ("kill -15 $$", 143, Some(15)),
    ] {
        let mut p = Pod::new(vec![sh("a", script)], vec![], runtime());
        let (st, _o, e) = p.run(T);
        assert_eq!(code(&st), want, "{script}: stderr: {e}");
        let s = p.status("a");
        assert_eq!(s.exit_code, Some(want), "{script}");
        assert_eq!(s.signal, sig, "{script}");
        assert_cgroups_gone(&p);
    }
}

#[test]
fn app_output_goes_to_stage1_stdout() {
    let mut p = Pod::new(
        vec![sh("a", "echo hello-out; echo hello-err >&2")],
        vec![],
        runtime(),
    );
    let (st, o, e) = p.run(T);
    assert_eq!(code(&st), 0, "stderr: {e}");
    assert!(o.contains("hello-out"), "stdout: {o}");
    assert!(e.contains("hello-err"), "stderr: {e}");
}

#[test]
fn failing_app_stops_the_others() {
    let mut p = Pod::new(
        vec![
            app("long", &["/bin/sleep", "100"]),
            sh("bad", "sleep 0.2; exit 3"),
        ],
        vec![],
        runtime(),
    );
    let t0 = Instant::now();
    let (st, _o, e) = p.run(T);
    assert_eq!(code(&st), 3, "stderr: {e}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    let bad = p.status("bad");
    assert_eq!(bad.exit_code, Some(3));
    assert!(!bad.stopped_by_pod);
    let long = p.status("long");
    assert_eq!(long.exit_code, Some(0));
    assert!(long.stopped_by_pod);
    assert_eq!(long.signal, Some(15));
    assert!(!pid_alive(long.pid.unwrap()));
    assert_cgroups_gone(&p);
}

#[test]
fn apps_share_uts_net_ipc_pid_but_not_mount_ns() {
    let (out, v, m) = out_volume();
    let script = "for n in uts net ipc pid mnt cgroup; do echo $n $(readlink /proc/self/ns/$n); done > /out/$AC_APP_NAME; hostname >> /out/$AC_APP_NAME; sleep 1";
    let mut a = sh("a", script);
    let mut b = sh("b", script);
    a.mounts.push(m.clone());
    b.mounts.push(m);
    let mut p = Pod::new(vec![a, b], vec![v], runtime());
    let (st, _o, e) = p.run(T);
    assert_eq!(code(&st), 0, "stderr: {e}");
    let read = |app: &str| -> std::collections::HashMap<String, String> {
        std::fs::read_to_string(out.path().join(app))
            .unwrap()
            .lines()
            .map(|l| {
                let (k, v) = l.split_once(' ').unwrap_or(("hostname", l));
                (k.to_string(), v.to_string())
            })
            .collect()
    };
    let (ra, rb) = (read("a"), read("b"));
    let host = |n: &str| {
        std::fs::read_link(format!("/proc/self/ns/{n}"))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    for n in ["uts", "net", "ipc", "pid"] {
        assert_eq!(ra[n], rb[n], "{n} not shared");
        assert_ne!(ra[n], host(n), "{n} is the host's");
    }
    assert_ne!(ra["mnt"], rb["mnt"]);
    assert_ne!(ra["mnt"], host("mnt"));
    assert_eq!(ra["hostname"], "rkt-test");
}

#[test]
fn net_host_shares_the_host_netns() {
    let (out, v, m) = out_volume();
    let mut a = sh("a", "readlink /proc/self/ns/net > /out/net");
    a.mounts.push(m);
    let mut rc = runtime();
    rc.net = stage1_abi::NetConfig::Host;
    let mut p = Pod::new(vec![a], vec![v], rc);
    let (st, _o, e) = p.run(T);
    assert_eq!(code(&st), 0, "stderr: {e}");
    let got = std::fs::read_to_string(out.path().join("net")).unwrap();
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(got.trim(), host.to_string_lossy());
}

#[test]
fn ipc_parent_shares_the_host_ipc_ns() {
    let (out, v, m) = out_volume();
    let mut a = sh("a", "readlink /proc/self/ns/ipc > /out/ipc");
    a.mounts.push(m);
    let mut rc = runtime();
    rc.ipc = "parent".into();
    let mut p = Pod::new(vec![a], vec![v], rc);
    let (st, _o, e) = p.run(T);
    assert_eq!(code(&st), 0, "stderr: {e}");
    let got = std::fs::read_to_string(out.path().join("ipc")).unwrap();
    let host = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    assert_eq!(got.trim(), host.to_string_lossy());
}

#[test]
fn orphans_are_reaped() {
    let mut p = Pod::new(
        vec![sh(
            "a",
            "(sleep 0.05 &); (sleep 0.05 &); (true &); sleep 100",
        )],
        vec![],
        runtime(),
    );
    p.spawn();
    p.wait_ready(T);
    std::thread::sleep(Duration::from_millis(800));
    let sb: i32 = std::fs::read_to_string(p.path().join("sandbox-pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let children = std::fs::read_to_string(format!("/proc/{sb}/task/{sb}/children")).unwrap();
    for c in children.split_whitespace() {
        let stat = std::fs::read_to_string(format!("/proc/{c}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        assert!(!state.starts_with('Z'), "zombie {c}: {stat}");
    }
    let pid = p.child.as_ref().unwrap().id() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let (st, _o, e) = p.wait(T);
    assert_eq!(code(&st), 0, "stderr: {e}");
}

#[test]
fn sigterm_stops_the_pod_within_the_timeout() {
    let mut rc = runtime();
    rc.stop_timeout_secs = 1;
    let mut p = Pod::new(
        vec![
            app("polite", &["/bin/sleep", "100"]),
            sh("stubborn", "trap '' TERM; while true; do sleep 0.1; done"),
        ],
        vec![],
        rc,
    );
    p.spawn();
    p.wait_ready(T);
    // let the shell install its trap first
    std::thread::sleep(Duration::from_millis(300));
    let pid = p.child.as_ref().unwrap().id() as i32;
    let t0 = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let (st, _o, e) = p.wait(T);
    let took = t0.elapsed();
    assert_eq!(code(&st), 0, "stderr: {e}");
    assert!(took >= Duration::from_millis(900), "took {took:?}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    for a in ["polite", "stubborn"] {
        let s = p.status(a);
        assert!(s.stopped_by_pod, "{a}");
        assert!(!pid_alive(s.pid.unwrap()), "{a} alive");
    }
    assert_eq!(p.status("stubborn").signal, Some(9));
    assert_cgroups_gone(&p);
}

#[test]
fn sigkill_to_stage1_leaves_no_app_alive() {
    let mut p = Pod::new(
        vec![
            app("a", &["/bin/sleep", "100"]),
            app("b", &["/bin/sleep", "100"]),
        ],
        vec![],
        runtime(),
    );
    p.spawn();
    p.wait_ready(T);
    let mut pids: Vec<i32> = ["a", "b"]
        .iter()
        .map(|a| p.status(a).pid.unwrap())
        .collect();
    let sb = std::fs::read_to_string(p.path().join("sandbox-pid")).unwrap();
    pids.push(sb.trim().parse().unwrap());
    for pid in &pids {
        assert!(pid_alive(*pid));
    }
    p.child.as_mut().unwrap().kill().unwrap();
    let _ = p.child.as_mut().unwrap().wait();
    let deadline = Instant::now() + Duration::from_secs(3);
    while pids.iter().any(|p| pid_alive(*p)) {
        assert!(Instant::now() < deadline, "apps survived stage1");
        std::thread::sleep(Duration::from_millis(10));
    }
    // gc removes what stage1 left
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_rkt-stage1"))
        .arg("gc")
        .current_dir(p.path())
        .status()
        .unwrap();
    assert!(st.success());
    assert_cgroups_gone(&p);
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_rkt-stage1"))
        .arg("gc")
        .current_dir(p.path())
        .status()
        .unwrap();
    assert!(st.success(), "gc is idempotent");
}

fn proc_status(out: &Path, app: &str) -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(out.join(app))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn caps_seccomp_and_no_new_privs() {
    let (out, v, m) = out_volume();
    let script = "cat /proc/self/status > /out/$AC_APP_NAME";
    let mut root = sh("root", script);
    root.mounts.push(m.clone());
    let mut user = sh("user", script);
    user.user = "user".into();
    user.group = "".into();
    user.supplementary_gids = vec![50];
    user.mounts.push(m.clone());
    let mut retain = sh("retain", script);
    retain.isolators.caps_retain = Some(vec!["CAP_NET_ADMIN".into(), "CAP_CHOWN".into()]);
    retain.mounts.push(m.clone());
    let mut nopcap = sh("nopcap", script);
    nopcap.isolators.caps_remove = Some(vec!["CAP_SETPCAP".into()]);
    nopcap.mounts.push(m.clone());
    let mut p = Pod::new(vec![root, user, retain, nopcap], vec![v], runtime());
    let (st, _o, e) = p.run(T);
    assert_eq!(code(&st), 0, "stderr: {e}");
    // the 14 default caps: bits 0,1,3,4,5,6,7,8,10,13,18,27,29,31
    let default_mask: u64 = [0u64, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31]
        .iter()
        .map(|b| 1u64 << b)
        .sum();
    let caps = |st: &std::collections::HashMap<String, String>, k: &str| {
        u64::from_str_radix(&st[k], 16).unwrap()
    };
    // stage1 loads these root apps' filters right before exec with CAP_SYS_ADMIN (21) and
    // CAP_SETPCAP (8) lent by libcontainer: not a bit more than the app's own set may be left
    for (app, want) in [("root", default_mask), ("nopcap", default_mask & !(1 << 8))] {
        let r = proc_status(out.path(), app);
        for k in ["CapBnd", "CapEff", "CapPrm"] {
            assert_eq!(caps(&r, k), want, "{app} {k}");
        }
        assert_eq!(caps(&r, "CapInh"), 0, "{app}");
        assert_eq!(caps(&r, "CapAmb"), 0, "{app}");
        assert_eq!(r["Seccomp"], "2", "{app}");
        assert_eq!(r["NoNewPrivs"], "0", "{app}");
        let cfg: serde_json::Value = serde_json::from_slice(
            &std::fs::read(p.path().join(format!("apps/{app}/bundle/config.json"))).unwrap(),
        )
        .unwrap();
        assert!(cfg["linux"].get("seccomp").is_none(), "{app}: {cfg}");
        assert!(
            cfg["annotations"]["io.rkt.stage1.seccomp"].is_string(),
            "{app}: {cfg}"
        );
    }
    let r = proc_status(out.path(), "root");
    // a clean signal state: nothing blocked (stage1's signalfd set), SIGPIPE not ignored
    assert_eq!(u64::from_str_radix(&r["SigBlk"], 16).unwrap(), 0);
    assert_eq!(
        u64::from_str_radix(&r["SigIgn"], 16).unwrap() & (1 << 12),
        0
    );
    let u = proc_status(out.path(), "user");
    assert_eq!(u64::from_str_radix(&u["CapBnd"], 16).unwrap(), default_mask);
    assert_eq!(u64::from_str_radix(&u["CapEff"], 16).unwrap(), 0);
    assert_eq!(u["NoNewPrivs"], "1");
    assert_eq!(u["Seccomp"], "2");
    assert!(u["Uid"].starts_with("1000"), "{}", u["Uid"]);
    assert!(u["Gid"].starts_with("1000"), "{}", u["Gid"]);
    assert_eq!(u["Groups"], "50");
    let t = proc_status(out.path(), "retain");
    assert_eq!(
        u64::from_str_radix(&t["CapBnd"], 16).unwrap(),
        (1 << 12) | 1
    );
}

#[test]
fn seccomp_errno_and_insecure_options() {
    let (out, v, m) = out_volume();
    let mut a = sh("a", "mkdir /tmp/x 2> /out/err; echo $? > /out/rc");
    a.mounts.push(m);
    a.isolators.seccomp = Some(stage1_abi::Seccomp {
        mode: stage1_abi::SeccompMode::Remove,
        errno: Some("ENOTSUP".into()),
        syscalls: vec!["mkdir".into(), "mkdirat".into()],
    });
    let mut p = Pod::new(vec![a], vec![v], runtime());
    let (st, _o, e) = p.run(T);
    assert_eq!(code(&st), 0, "stderr: {e}");
    assert_eq!(
        std::fs::read_to_string(out.path().join("rc"))
            .unwrap()
            .trim(),
        "1"
    );
    let err = std::fs::read_to_string(out.path().join("err")).unwrap();
    assert!(err.contains("not supported"), "{err}");

    let (out, v, m) = out_volume();
    let mut a = sh("a", "cat /proc/self/status > /out/a");
    a.mounts.push(m);
    let mut rc = runtime();
    rc.disable_seccomp = true;
    rc.disable_capabilities = true;
    let mut p = Pod::new(vec![a], vec![v], rc);
    let (st, _o, e) = p.run(T);
    assert_eq!(code(&st), 0, "stderr: {e}");
    let s = proc_status(out.path(), "a");
    assert_eq!(s["Seccomp"], "0");
    assert!(u64::from_str_radix(&s["CapBnd"], 16).unwrap() > 1 << 32);
}

#[test]
fn masked_and_readonly_paths() {
    let (out, v, m) = out_volume();
    let mut a = sh(
        "a",
        "wc -c < /proc/kallsyms > /out/ks; echo start > /out/r; \
         (echo h > /proc/sys/kernel/domainname) 2> /out/sysrq; echo sysrq $? >> /out/r; \
         ls /sys/firmware | wc -l > /out/fw; touch /sys/x 2>> /out/r; echo sys $? >> /out/r",
    );
    a.mounts.push(m);
    let mut p = Pod::new(vec![a], vec![v], runtime());
    let (st, _o, e) = p.run(T);
    assert_eq!(code(&st), 0, "stderr: {e}");
    let r = std::fs::read_to_string(out.path().join("r")).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.path().join("ks"))
            .unwrap()
            .trim(),
        "0"
    );
    let sysrq = std::fs::read_to_string(out.path().join("sysrq")).unwrap();
    assert!(sysrq.to_lowercase().contains("read-only"), "{sysrq}");
    assert!(r.contains("sys 1"), "{r}");
    assert_eq!(
        std::fs::read_to_string(out.path().join("fw"))
            .unwrap()
            .trim(),
        "0"
    );
}

#[test]
fn devices_are_closed_except_the_standard_ones() {
    let (out, v, m) = out_volume();
    let mut a = sh(
        "a",
        "mknod /tmp/blk b 7 0 && echo mknod-ok > /out/r; head -c1 /tmp/blk > /dev/null 2>> /out/r; \
         echo x > /dev/null && echo null-ok >> /out/r; ls /dev > /out/dev",
    );
    a.mounts.push(m);
    let mut p = Pod::new(vec![a], vec![v], runtime());
    let (st, _o, e) = p.run(T);
    assert_eq!(code(&st), 0, "stderr: {e}");
    let r = std::fs::read_to_string(out.path().join("r")).unwrap();
    assert!(r.contains("mknod-ok"), "{r}");
    assert!(
        r.contains("not permitted"),
        "block device must not open: {r}"
    );
    assert!(r.contains("null-ok"), "{r}");
    let dev = std::fs::read_to_string(out.path().join("dev")).unwrap();
    for d in ["null", "zero", "urandom", "pts", "shm"] {
        assert!(dev.lines().any(|l| l == d), "/dev lacks {d}: {dev}");
    }
}

#[test]
fn memory_and_cpu_limits_land_in_the_app_cgroup() {
    let mut a = app("a", &["/bin/sleep", "100"]);
    a.isolators = Isolators {
        memory_limit: Some(64 << 20),
        cpu_millis: Some(500),
        cpu_shares: Some(512),
        ..Default::default()
    };
    let mut p = Pod::new(vec![a], vec![], runtime());
    p.spawn();
    p.wait_ready(T);
    let list = p.cgroup_list();
    let mem = list
        .iter()
        .find(|c| c.starts_with("/sys/fs/cgroup/memory") && c.ends_with("a"))
        .expect("memory cgroup of app");
    let lim = std::fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap();
    assert_eq!(lim.trim(), (64u64 << 20).to_string());
    let pid = p.status("a").pid.unwrap();
    let procs = std::fs::read_to_string(mem.join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|l| l.trim() == pid.to_string()),
        "{procs}"
    );
    let cpu = list
        .iter()
        .find(|c| c.starts_with("/sys/fs/cgroup/cpu/") && c.ends_with("a"))
        .expect("cpu cgroup of app");
    assert_eq!(
        std::fs::read_to_string(cpu.join("cpu.cfs_quota_us"))
            .unwrap()
            .trim(),
        "50000"
    );
    assert_eq!(
        std::fs::read_to_string(cpu.join("cpu.shares"))
            .unwrap()
            .trim(),
        "512"
    );
    let me = p.child.as_ref().unwrap().id() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(me),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let (st, _o, e) = p.wait(T);
    assert_eq!(code(&st), 0, "stderr: {e}");
    assert_cgroups_gone(&p);
}

#[test]
fn small_memory_limit_binds_the_app_not_the_set_up() {
    let mut a = sh("a", "cat /proc/self/cgroup > /dev/null");
    a.isolators.memory_limit = Some(12 << 20);
    let mut p = Pod::new(vec![a], vec![], runtime());
    let (st, _o, e) = p.run(T);
    assert_eq!(code(&st), 0, "stderr: {e}");
}

#[test]
fn negative_oom_score_adj_is_a_clear_error() {
    let mut a = app("a", &["/bin/sleep", "100"]);
    a.isolators.oom_score_adj = Some(-500);
    let mut p = Pod::new(vec![a], vec![], runtime());
    let (st, _o, e) = p.run(T);
    // root here lacks CAP_SYS_RESOURCE; where it has it, the pod would just run
    if code(&st) == 254 {
        assert!(e.contains("oom_score_adj"), "stderr: {e}");
        assert_eq!(e.trim().lines().count(), 1, "stderr: {e}");
        assert_cgroups_gone(&p);
    }
}

#[test]
fn positive_oom_score_adj_applies() {
    let (out, v, m) = out_volume();
    let mut a = sh("a", "cat /proc/self/oom_score_adj > /out/adj");
    a.mounts.push(m);
    a.isolators.oom_score_adj = Some(300);
    let mut p = Pod::new(vec![a], vec![v], runtime());
    let (st, _o, e) = p.run(T);
    assert_eq!(code(&st), 0, "stderr: {e}");
    assert_eq!(
        std::fs::read_to_string(out.path().join("adj"))
            .unwrap()
            .trim(),
        "300"
    );
}

/// The sandbox reports its set-up after the apps' bundles are written and their containers are
/// being created: a sandbox that fails still fails the pod with its own one-line reason, starts
/// no app and leaves no cgroup behind.
#[test]
fn failing_sandbox_fails_the_pod_before_any_app_starts() {
    let (out, v, m) = out_volume();
    let mut a = sh("a", "touch /out/ran");
    a.mounts.push(m);
    let mut rc = runtime();
    // longer than HOST_NAME_MAX (64): sethostname in the sandbox fails with EINVAL
    rc.hostname = "h".repeat(100);
    let mut p = Pod::new(vec![a], vec![v], rc);
    let (st, _o, e) = p.run(T);
    assert_eq!(code(&st), 254, "stderr: {e}");
    assert!(e.contains("setting hostname"), "stderr: {e}");
    assert_eq!(e.trim().lines().count(), 1, "stderr: {e}");
    assert!(!out.path().join("ran").exists(), "the app ran");
    assert_cgroups_gone(&p);
}
