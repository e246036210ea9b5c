//! Pod lifecycle without a daemon: prepare, run-prepared, list, status, stop, rm, gc,
//! cat-manifest — states after each transition, outputs, exit codes, and leak checks.

use rkt_tests::{cleanup, images, stderr, stdout, TestCtx};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

fn bb() -> String {
    images::busybox().oci_ref()
}

fn ok(o: Output) -> String {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    stdout(&o)
}

fn status_field(ctx: &TestCtx, uuid: &str, key: &str) -> Option<String> {
    let o = ctx.rkt_output(&["status", uuid]);
    stdout(&o)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}

/// Start a long-running pod in the background; returns the child and the pod UUID once the
/// pod is running. The caller waits for the child; TestCtx's Drop kills it if a test panics.
#[allow(clippy::zombie_processes)]
fn start_sleeper(ctx: &TestCtx, secs: &str) -> (Child, String) {
    start_sleeper_with(ctx, &[], secs)
}

/// [`start_sleeper`], then SIGKILL the `rkt run` process (= stage1) and wait until the pod
/// reads as exited; returns its UUID. What the pod set up is left for gc.
fn start_and_kill_sleeper(ctx: &TestCtx) -> String {
    let (mut child, uuid) = start_sleeper(ctx, "300");
    child.kill().unwrap();
    child.wait().unwrap();
    let start = Instant::now();
    while status_field(ctx, &uuid, "state").as_deref() != Some("exited") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "pod still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    uuid
}

/// [`start_sleeper`] with extra per-app flags.
fn start_sleeper_with(ctx: &TestCtx, app_flags: &[&str], secs: &str) -> (Child, String) {
    let image = bb();
    let args = [
        &[image.as_str()],
        app_flags,
        &["--exec=/bin/sleep", "--", secs],
    ]
    .concat();
    ctx.spawn_pod(&[], &args, Stdio::null())
}

fn assert_no_leaks(ctx: &TestCtx) {
    cleanup::assert_no_mounts_under(&ctx.dir(), "mounts left");
    assert!(
        cleanup::pod_dirs(&ctx.dir()).is_empty(),
        "pod dirs left: {:?}",
        cleanup::pod_dirs(&ctx.dir())
    );
}

#[test]
fn prepared_pod_lists_shows_status_and_manifest_then_rm() {
    let ctx = TestCtx::new();
    let uuid = ok(ctx.rkt_output(&["prepare", "--quiet", &bb(), "--name=web"]))
        .trim()
        .to_string();
    let list = ok(ctx.rkt_output(&["list", "--no-legend"]));
    assert!(
        list.contains(&uuid[..8]) && list.contains("prepared"),
        "{list}"
    );
    assert!(list.contains("web"), "{list}");
    assert_eq!(
        status_field(&ctx, &uuid, "state").as_deref(),
        Some("prepared")
    );
    let m: serde_json::Value =
        serde_json::from_str(&ok(ctx.rkt_output(&["cat-manifest", &uuid[..6]]))).unwrap();
    assert_eq!(m["apps"][0]["name"], "web");
    let json: serde_json::Value =
        serde_json::from_str(&ok(ctx.rkt_output(&["list", "--format=json"]))).unwrap();
    assert_eq!(json[0]["name"], uuid.as_str());
    assert_eq!(json[0]["state"], "prepared");
    assert_eq!(json[0]["app_names"][0], "web");
    // stop of a pod that is not running fails
    let o = ctx.rkt_output(&["stop", &uuid]);
    assert_eq!(o.status.code(), Some(254), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not running"), "{}", stderr(&o));
    assert_eq!(
        ok(ctx.rkt_output(&["rm", &uuid])).trim(),
        format!("{uuid:?}")
    );
    assert_no_leaks(&ctx);
}

#[test]
fn run_stop_status_rm_gc_as_a_systemd_unit_would() {
    let ctx = TestCtx::new();
    let (mut child, uuid) = start_sleeper(&ctx, "300");
    let uf = ctx.root().join("unit-uuid");
    std::fs::write(&uf, &uuid).unwrap();
    let uf_s = format!("--uuid-file={}", uf.display());
    assert_eq!(
        status_field(&ctx, &uuid, "exited").as_deref(),
        Some("false")
    );
    // running pods cannot be removed
    let o = ctx.rkt_output(&["rm", &uf_s]);
    assert_eq!(o.status.code(), Some(254));
    assert!(
        stderr(&o).contains(&format!("pod \"{uuid}\" is currently running")),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        ok(ctx.rkt_output(&["stop", &uf_s])).trim(),
        format!("{uuid:?}")
    );
    ok(ctx.rkt_output(&["status", "--wait=20s", &uf_s]));
    let st = child.wait().unwrap();
    assert!(st.code().is_some(), "rkt run ended: {st:?}");
    assert_eq!(
        status_field(&ctx, &uuid, "state").as_deref(),
        Some("exited")
    );
    assert_eq!(status_field(&ctx, &uuid, "exited").as_deref(), Some("true"));
    // stopping again is fine
    let o = ok(ctx.rkt_output(&["stop", &uuid]));
    assert!(o.contains("is already stopped"), "{o}");
    // gc marks, keeps within grace, then collects with grace 0
    let o = ctx.rkt_output(&["gc"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("moving pod \"{uuid}\" to garbage")),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("still within grace period (30m0s)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        status_field(&ctx, &uuid, "state").as_deref(),
        Some("exited garbage")
    );
    let cgroups = cleanup::cgroups_of_pods(&ctx.dir());
    let o = ok(ctx.rkt_output(&["gc", "--grace-period=0s"]));
    assert!(
        o.contains(&format!("Garbage collecting pod \"{uuid}\"")),
        "{o}"
    );
    assert_no_leaks(&ctx);
    for cg in cgroups {
        assert!(!cg.exists(), "cgroup left: {}", cg.display());
    }
}

/// Once a pod has run for a second, the `rkt run` PID is the static monitor (stage1 exec'd it);
/// when the pod stops, the monitor execs stage1's teardown, which leaves no cgroup or network
/// behind without any `rkt gc`.
#[test]
fn running_pod_is_held_by_the_monitor_and_torn_down_without_gc() {
    let ctx = TestCtx::new();
    let (mut child, uuid) = start_sleeper(&ctx, "300");
    let pid = child.id();
    let exe_name = || {
        std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .and_then(|e| e.file_name().map(|n| n.to_string_lossy().into_owned()))
    };
    let start = Instant::now();
    while exe_name().as_deref() != Some("rkt-monitor") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still {:?} after 10 s",
            exe_name()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status_field(&ctx, &uuid, "pid"), Some(pid.to_string()));
    let cgroups = cleanup::cgroups_of_pods(&ctx.dir());
    assert!(!cgroups.is_empty());
    assert!(cgroups.iter().all(|c| c.exists()), "{cgroups:?}");
    let netns = std::path::PathBuf::from(format!("/run/netns/rkt-{uuid}"));
    assert!(netns.exists());
    ok(ctx.rkt_output(&["stop", &uuid]));
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(0), "a requested stop exits 0: {st:?}");
    assert_eq!(
        status_field(&ctx, &uuid, "state").as_deref(),
        Some("exited")
    );
    assert_eq!(
        status_field(&ctx, &uuid, "app-busybox").as_deref(),
        Some("0"),
        "the monitor wrote the app's status record"
    );
    for cg in cgroups {
        assert!(!cg.exists(), "cgroup left: {}", cg.display());
    }
    assert!(!netns.exists(), "network namespace left");
    cleanup::assert_no_mounts_under(&ctx.dir(), "the teardown after the monitor left mounts");
}

#[test]
fn kill_9_of_rkt_run_is_cleaned_by_gc() {
    let ctx = TestCtx::new();
    let uuid = start_and_kill_sleeper(&ctx);
    let cgroups = cleanup::cgroups_of_pods(&ctx.dir());
    let o = ok(ctx.rkt_output(&["gc", "--grace-period=0s"]));
    assert!(o.contains(&uuid), "{o}");
    assert_no_leaks(&ctx);
    for cg in cgroups {
        assert!(!cg.exists(), "cgroup left: {}", cg.display());
    }
}

#[test]
fn uuid_errors_are_rkts() {
    let ctx = TestCtx::new();
    let o = ctx.rkt_output(&["status", "abcdef"]);
    assert_eq!(o.status.code(), Some(254));
    assert!(
        stderr(&o).contains("no matches found for \"abcdef\""),
        "{}",
        stderr(&o)
    );
    let o = ctx.rkt_output(&["cat-manifest", ""]);
    assert_eq!(o.status.code(), Some(254));
    assert!(
        stderr(&o).contains("UUID cannot be empty"),
        "{}",
        stderr(&o)
    );
    let o = ctx.rkt_output(&["status", "--uuid-file=/nonexistent/uuid"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // ambiguous: two pods whose UUIDs share the empty-ish prefix of one hex digit is likely
    // with 17 pods; make it certain by preparing until two share a first digit.
    let mut seen = std::collections::HashMap::new();
    let prefix = loop {
        let u = ok(ctx.rkt_output(&["prepare", "--quiet", &bb()]))
            .trim()
            .to_string();
        let c = u[..1].to_string();
        if seen.insert(c.clone(), u).is_some() {
            break c;
        }
    };
    let o = ctx.rkt_output(&["status", &prefix]);
    assert_eq!(o.status.code(), Some(254));
    assert!(
        stderr(&o).contains("ambiguous uuid, 2 matches"),
        "{}",
        stderr(&o)
    );
    ok(ctx.rkt_output(&["gc", "--expire-prepared=0s"]));
    assert_no_leaks(&ctx);
}

#[test]
fn aborted_prepare_is_collected() {
    let ctx = TestCtx::new();
    // an unlocked pod in prepare/ is what a killed `rkt prepare` leaves
    let uuid = ok(ctx.rkt_output(&["prepare", "--quiet", &bb()]))
        .trim()
        .to_string();
    let pods = ctx.dir().join("pods");
    std::fs::rename(
        pods.join("prepared").join(&uuid),
        pods.join("prepare").join(&uuid),
    )
    .unwrap();
    assert_eq!(
        status_field(&ctx, &uuid, "state").as_deref(),
        Some("aborted prepare")
    );
    let o = ok(ctx.rkt_output(&["gc"]));
    assert!(o.contains(&uuid), "{o}");
    assert_no_leaks(&ctx);
}

#[test]
fn enter_runs_commands_confined_like_the_app() {
    enter_case(&["--user=1000", "--group=1000"]);
}

#[test]
fn enter_a_root_app() {
    enter_case(&[]);
}

fn enter_case(app_flags: &[&str]) {
    let ctx = TestCtx::new();
    let (mut child, uuid) = start_sleeper_with(&ctx, app_flags, "300");
    let o = ctx.rkt_output(&["enter", &uuid, "/bin/sh", "-c", "echo hi; exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hi\n");
    // default command: /bin/bash if the image has it, else /bin/sh
    let o = rkt_tests::output_with_stdin(
        ctx.rkt().args(["enter", &uuid[..8]]),
        b"echo in-shell; exit 4\n",
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no command specified, assuming"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "in-shell\n");
    // the entered process has the app's capability bounding set
    let app_pid: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            ctx.dir()
                .join("pods/run")
                .join(&uuid)
                .join("status/busybox"),
        )
        .unwrap(),
    )
    .unwrap();
    let app_pid = app_pid["pid"].as_i64().unwrap();
    let bnd = |status: &str| {
        status
            .lines()
            .find(|l| l.starts_with("CapBnd:"))
            .map(str::to_string)
    };
    let app_bnd = bnd(&std::fs::read_to_string(format!("/proc/{app_pid}/status")).unwrap());
    let o = ctx.rkt_output(&["enter", &uuid, "/bin/cat", "/proc/self/status"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(bnd(&stdout(&o)), app_bnd);
    // not running → error
    ok(ctx.rkt_output(&["stop", &uuid]));
    child.wait().unwrap();
    let o = ctx.rkt_output(&["enter", &uuid, "/bin/true"]);
    assert_eq!(o.status.code(), Some(254));
    assert!(stderr(&o).contains("is not running"), "{}", stderr(&o));
}

#[test]
fn gc_of_1000_exited_pods_takes_seconds() {
    let ctx = TestCtx::new();
    let run = ctx.dir().join("pods/run");
    for i in 0..1000u32 {
        let d = run.join(format!("{i:08x}-0000-4000-8000-000000000000"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("pod-created"), "").unwrap();
    }
    let start = Instant::now();
    let o = ok(ctx.rkt_output(&["gc", "--grace-period=0s"]));
    let took = start.elapsed();
    assert_eq!(o.lines().count(), 1000, "{o}");
    assert!(
        took < Duration::from_secs(10),
        "gc of 1000 pods took {took:?}"
    );
    assert_no_leaks(&ctx);
}

/// `RKT_SOAK_SECS` (default 6) of 20 parallel `rkt run`s with `rkt gc` and `rkt image gc` loops:
/// every pod's exit code arrives, the loops see no error, nothing leaks.
#[test]
fn parallel_runs_with_gc_loops_account_for_every_pod() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    let secs: u64 = std::env::var("RKT_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let ctx = TestCtx::new();
    ok(ctx.rkt_output(&["fetch", &bb()])); // warm the store
    let stop = AtomicBool::new(false);
    let errors = Mutex::new(Vec::<String>::new());
    let runs = Mutex::new(0u32);
    std::thread::scope(|s| {
        for args in [
            vec!["gc", "--grace-period=0s"],
            vec!["image", "gc", "--grace-period=0s"],
        ] {
            let (ctx, stop, errors) = (&ctx, &stop, &errors);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let o = ctx.rkt_output(&args);
                    if !o.status.success() {
                        errors
                            .lock()
                            .unwrap()
                            .push(format!("{args:?}: {}", stderr(&o)));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(secs);
        for t in 0..20u32 {
            let (ctx, errors, runs) = (&ctx, &errors, &runs);
            s.spawn(move || {
                let mut n = 0u32;
                while Instant::now() < deadline {
                    let code = (t + n) % 7;
                    let script = format!("exit {code}");
                    let o = ctx.rkt_output(&["run", &bb(), "--exec=/bin/sh", "--", "-c", &script]);
                    if o.status.code() != Some(code as i32) {
                        errors.lock().unwrap().push(format!(
                            "run {t}/{n}: want {code}, got {:?}: {}",
                            o.status.code(),
                            stderr(&o)
                        ));
                    }
                    *runs.lock().unwrap() += 1;
                    n += 1;
                }
            });
        }
        // the run threads end at the deadline; then stop the loops
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
    });
    let errors = errors.into_inner().unwrap();
    eprintln!(
        "soak: {} runs by 20 threads in {secs} s beside gc and image gc loops; {} errors",
        runs.lock().unwrap(),
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(*runs.lock().unwrap() > 20);
    ok(ctx.rkt_output(&["gc", "--grace-period=0s"]));
    assert_no_leaks(&ctx);
}

/// Cgroup dirs named after any pod UUID in `uuids`, in every hierarchy.
fn cgroups_named(uuids: &[String]) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![std::path::PathBuf::from("/sys/fs/cgroup")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if uuids.iter().any(|u| name.contains(u.as_str())) {
                out.push(e.path());
            } else if d.components().count() < 9 {
                stack.push(e.path());
            }
        }
    }
    out
}

/// kill -9 of `rkt run` / `rkt prepare` at many moments, and of `rkt gc` mid-sweep: the next
/// `rkt gc` leaves no pod dir, no mount and no cgroup, and the store still verifies.
#[test]
fn kill_9_at_any_moment_then_gc_cleans_fully() {
    let ctx = TestCtx::new();
    ok(ctx.rkt_output(&["fetch", &bb()]));
    let mut uuids = Vec::new();
    for (i, delay) in [0u64, 1, 3, 5, 10, 20, 40, 80, 150, 300].iter().enumerate() {
        for cmd in ["run", "prepare"] {
            let uf = ctx.root().join(format!("u-{cmd}-{i}"));
            uuids.extend(ctx.kill_sleeper_after(cmd, &bb(), &uf, Duration::from_millis(*delay)));
        }
    }
    // a gc killed mid-sweep, then a full one
    let mut g = ctx
        .rkt()
        .args(["gc", "--grace-period=0s", "--expire-prepared=0s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(30));
    let _ = g.kill();
    let _ = g.wait();
    // pods killed while apps started may need a moment for the kernel to drop their locks
    std::thread::sleep(Duration::from_millis(200));
    let o = ctx.rkt_output(&["gc", "--grace-period=0s", "--expire-prepared=0s"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_no_leaks(&ctx);
    assert!(
        cgroups_named(&uuids).is_empty(),
        "cgroups left: {:?}",
        cgroups_named(&uuids)
    );
    let o = ctx.rkt_output(&["image", "verify", &bb()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn export_an_exited_pod_and_run_the_result() {
    let ctx = TestCtx::new();
    let (o, uuid) = ctx.run_sh(
        &bb(),
        "echo exported > /hello; mkdir -p /data/sub; ln -s /hello /data/link",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out_file = ctx.root().join("pod.oci.tar");
    ok(ctx.rkt_output(&["export", &uuid, out_file.to_str().unwrap()]));
    // exists → refused without --overwrite
    let o = ctx.rkt_output(&["export", &uuid, out_file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(254));
    ok(ctx.rkt_output(&["export", "--overwrite", &uuid, out_file.to_str().unwrap()]));
    let img = format!("oci-archive:{}", out_file.display());
    let o = ctx.rkt_output(&[
        "run",
        &img,
        "--name=again",
        "--exec=/bin/cat",
        "--",
        "/data/link",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "exported\n");
    // a running pod cannot be exported
    let (mut child, running) = start_sleeper(&ctx, "300");
    let o = ctx.rkt_output(&[
        "export",
        &running,
        ctx.root().join("x.tar").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(254));
    assert!(
        stderr(&o).contains("only exited pods can be exported"),
        "{}",
        stderr(&o)
    );
    ok(ctx.rkt_output(&["stop", "--force", &running]));
    child.wait().unwrap();
    ok(ctx.rkt_output(&["gc", "--grace-period=0s"]));
    assert_no_leaks(&ctx);
}

#[test]
fn gc_succeeds_after_an_admin_unmounted_the_rootfs() {
    let ctx = TestCtx::new();
    // a killed stage1 cannot release the rootfs; here an admin does, before gc
    let uuid = start_and_kill_sleeper(&ctx);
    let mounts = cleanup::mounts_under(&ctx.dir());
    assert!(!mounts.is_empty());
    for m in &mounts {
        nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH).unwrap();
    }
    let o = ok(ctx.rkt_output(&["gc", "--grace-period=0s"]));
    assert!(o.contains(&uuid), "{o}");
    assert_no_leaks(&ctx);
}

#[test]
fn entered_process_gets_the_apps_seccomp_filter() {
    let ctx = TestCtx::new();
    let (mut child, uuid) = start_sleeper_with(
        &ctx,
        &[
            "--user=1000",
            "--group=1000",
            "--seccomp=mode=remove,errno=EPERM,mkdir,mkdirat",
        ],
        "300",
    );
    let o = ctx.rkt_output(&["enter", &uuid, "/bin/sh", "-c", "mkdir /tmp/x 2>&1; true"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Operation not permitted"),
        "{}",
        stdout(&o)
    );
    ok(ctx.rkt_output(&["stop", &uuid]));
    child.wait().unwrap();
}

#[test]
fn gc_succeeds_while_another_mount_namespace_holds_the_rootfs() {
    let ctx = TestCtx::new();
    let (mut child, uuid) = start_sleeper(&ctx, "300");
    // a private copy of the host's mounts, taken while the pod's overlay is mounted
    let mut holder = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sleep", "60"])
        .spawn()
        .unwrap();
    let mi = format!("/proc/{}/mountinfo", holder.id());
    let data = ctx.dir().display().to_string();
    let start = Instant::now();
    while !std::fs::read_to_string(&mi)
        .unwrap_or_default()
        .contains(&data)
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "namespace not set up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // the pod releases its mounts in the host's namespace; the copies stay in the other one
    ok(ctx.rkt_output(&["stop", &uuid]));
    child.wait().unwrap();
    assert!(std::fs::read_to_string(&mi)
        .unwrap_or_default()
        .contains(&data));
    let o = ctx.rkt_output(&["gc", "--grace-period=0s"]);
    let still = std::fs::read_to_string(&mi).unwrap_or_default();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_no_leaks(&ctx);
    assert!(
        !still.contains(&data),
        "the other namespace kept the pod's mounts"
    );
}
