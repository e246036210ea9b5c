//! Pod lifecycle without a daemon: prepare, run-prepared, list, status, stop, rm, gc,
//! cat-manifest — states after each transition, outputs, exit codes, and leak checks.

use rkt_tests::{cleanup, images, TestCtx};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

fn bb() -> String {
    images::busybox().oci_ref()
}

fn rkt(ctx: &TestCtx, args: &[&str]) -> Output {
    ctx.rkt()
        .arg("--insecure-options=image")
        .args(args)
        .output()
        .expect("spawn rkt")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> String {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", err(&o));
    out(&o)
}

fn status_field(ctx: &TestCtx, uuid: &str, key: &str) -> Option<String> {
    let o = rkt(ctx, &["status", uuid]);
    out(&o)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}

/// Start a long-running pod in the background; returns the child and the pod UUID once the
/// pod is running. The caller waits for the child; TestCtx's Drop kills it if a test panics.
#[allow(clippy::zombie_processes)]
fn start_sleeper(ctx: &TestCtx, secs: &str) -> (Child, String) {
    start_sleeper_with(ctx, &[], secs)
}

/// [`start_sleeper`] with extra per-app flags.
#[allow(clippy::zombie_processes)]
fn start_sleeper_with(ctx: &TestCtx, app_flags: &[&str], secs: &str) -> (Child, String) {
    let uf = ctx.root().join(format!(
        "uuid-{}",
        std::process::id() as u64 + rand_suffix()
    ));
    let mut child = ctx
        .rkt()
        .arg("--insecure-options=image")
        .args(["run", "--uuid-file-save"])
        .arg(&uf)
        .arg(bb())
        .args(app_flags)
        .args(["--exec=/bin/sleep", "--", secs])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Ok(u) = std::fs::read_to_string(&uf) {
            let u = u.trim().to_string();
            if status_field(ctx, &u, "state").as_deref() == Some("running")
                && status_field(ctx, &u, "pid").is_some()
                && rkt(ctx, &["status", "--wait-ready=10s", &u])
                    .status
                    .success()
            {
                return (child, u);
            }
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pod did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

fn assert_no_leaks(ctx: &TestCtx) {
    assert!(
        cleanup::mounts_under(&ctx.dir()).is_empty(),
        "mounts left: {:?}",
        cleanup::mounts_under(&ctx.dir())
    );
    assert!(
        cleanup::pod_dirs(&ctx.dir()).is_empty(),
        "pod dirs left: {:?}",
        cleanup::pod_dirs(&ctx.dir())
    );
}

#[test]
fn prepared_pod_lists_shows_status_and_manifest_then_rm() {
    let ctx = TestCtx::new();
    let uuid = ok(rkt(&ctx, &["prepare", "--quiet", &bb(), "--name=web"]))
        .trim()
        .to_string();
    let list = ok(rkt(&ctx, &["list", "--no-legend"]));
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
        serde_json::from_str(&ok(rkt(&ctx, &["cat-manifest", &uuid[..6]]))).unwrap();
    assert_eq!(m["apps"][0]["name"], "web");
    let json: serde_json::Value =
        serde_json::from_str(&ok(rkt(&ctx, &["list", "--format=json"]))).unwrap();
    assert_eq!(json[0]["name"], uuid.as_str());
    assert_eq!(json[0]["state"], "prepared");
    assert_eq!(json[0]["app_names"][0], "web");
    // stop of a pod that is not running fails
    let o = rkt(&ctx, &["stop", &uuid]);
    assert_eq!(o.status.code(), Some(254), "{}", err(&o));
    assert!(err(&o).contains("is not running"), "{}", err(&o));
    assert_eq!(ok(rkt(&ctx, &["rm", &uuid])).trim(), format!("{uuid:?}"));
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
    let o = rkt(&ctx, &["rm", &uf_s]);
    assert_eq!(o.status.code(), Some(254));
    assert!(
        err(&o).contains(&format!("pod \"{uuid}\" is currently running")),
        "{}",
        err(&o)
    );
    assert_eq!(ok(rkt(&ctx, &["stop", &uf_s])).trim(), format!("{uuid:?}"));
    ok(rkt(&ctx, &["status", "--wait=20s", &uf_s]));
    let st = child.wait().unwrap();
    assert!(st.code().is_some(), "rkt run ended: {st:?}");
    assert_eq!(
        status_field(&ctx, &uuid, "state").as_deref(),
        Some("exited")
    );
    assert_eq!(status_field(&ctx, &uuid, "exited").as_deref(), Some("true"));
    // stopping again is fine
    let o = ok(rkt(&ctx, &["stop", &uuid]));
    assert!(o.contains("is already stopped"), "{o}");
    // gc marks, keeps within grace, then collects with grace 0
    let o = rkt(&ctx, &["gc"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        err(&o).contains(&format!("moving pod \"{uuid}\" to garbage")),
        "{}",
        err(&o)
    );
    assert!(
        err(&o).contains("still within grace period (30m0s)"),
        "{}",
        err(&o)
    );
    assert_eq!(
        status_field(&ctx, &uuid, "state").as_deref(),
        Some("exited garbage")
    );
    let cgroups = cleanup::cgroups_of_pods(&ctx.dir());
    let o = ok(rkt(&ctx, &["gc", "--grace-period=0s"]));
    assert!(
        o.contains(&format!("Garbage collecting pod \"{uuid}\"")),
        "{o}"
    );
    assert_no_leaks(&ctx);
    for cg in cgroups {
        assert!(!cg.exists(), "cgroup left: {}", cg.display());
    }
}

#[test]
fn kill_9_of_rkt_run_is_cleaned_by_gc() {
    let ctx = TestCtx::new();
    let (mut child, uuid) = start_sleeper(&ctx, "300");
    child.kill().unwrap(); // SIGKILL to the rkt run process (= stage1)
    child.wait().unwrap();
    let start = Instant::now();
    while status_field(&ctx, &uuid, "state").as_deref() != Some("exited") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "pod still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let cgroups = cleanup::cgroups_of_pods(&ctx.dir());
    let o = ok(rkt(&ctx, &["gc", "--grace-period=0s"]));
    assert!(o.contains(&uuid), "{o}");
    assert_no_leaks(&ctx);
    for cg in cgroups {
        assert!(!cg.exists(), "cgroup left: {}", cg.display());
    }
}

#[test]
fn uuid_errors_are_rkts() {
    let ctx = TestCtx::new();
    let o = rkt(&ctx, &["status", "abcdef"]);
    assert_eq!(o.status.code(), Some(254));
    assert!(
        err(&o).contains("no matches found for \"abcdef\""),
        "{}",
        err(&o)
    );
    let o = rkt(&ctx, &["cat-manifest", ""]);
    assert_eq!(o.status.code(), Some(254));
    assert!(err(&o).contains("UUID cannot be empty"), "{}", err(&o));
    let o = rkt(&ctx, &["status", "--uuid-file=/nonexistent/uuid"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    // ambiguous: two pods whose UUIDs share the empty-ish prefix of one hex digit is likely
    // with 17 pods; make it certain by preparing until two share a first digit.
    let mut seen = std::collections::HashMap::new();
    let prefix = loop {
        let u = ok(rkt(&ctx, &["prepare", "--quiet", &bb()]))
            .trim()
            .to_string();
        let c = u[..1].to_string();
        if seen.insert(c.clone(), u).is_some() {
            break c;
        }
    };
    let o = rkt(&ctx, &["status", &prefix]);
    assert_eq!(o.status.code(), Some(254));
    assert!(err(&o).contains("ambiguous uuid, 2 matches"), "{}", err(&o));
    ok(rkt(&ctx, &["gc", "--expire-prepared=0s"]));
    assert_no_leaks(&ctx);
}

#[test]
fn aborted_prepare_is_collected() {
    let ctx = TestCtx::new();
    // an unlocked pod in prepare/ is what a killed `rkt prepare` leaves
    let uuid = ok(rkt(&ctx, &["prepare", "--quiet", &bb()]))
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
    let o = ok(rkt(&ctx, &["gc"]));
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
    let o = rkt(&ctx, &["enter", &uuid, "/bin/sh", "-c", "echo hi; exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert_eq!(out(&o), "hi\n");
    // default command: /bin/bash if the image has it, else /bin/sh
    let mut c = ctx
        .rkt()
        .args(["enter", &uuid[..8]])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin
        .take()
        .unwrap()
        .write_all(b"echo in-shell; exit 4\n")
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", err(&o));
    assert!(
        err(&o).contains("no command specified, assuming"),
        "{}",
        err(&o)
    );
    assert_eq!(out(&o), "in-shell\n");
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
    let o = rkt(&ctx, &["enter", &uuid, "/bin/cat", "/proc/self/status"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(bnd(&out(&o)), app_bnd);
    // not running → error
    ok(rkt(&ctx, &["stop", &uuid]));
    child.wait().unwrap();
    let o = rkt(&ctx, &["enter", &uuid, "/bin/true"]);
    assert_eq!(o.status.code(), Some(254));
    assert!(err(&o).contains("is not running"), "{}", err(&o));
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
    let o = ok(rkt(&ctx, &["gc", "--grace-period=0s"]));
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
    ok(rkt(&ctx, &["fetch", &bb()])); // warm the store
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
                    let o = rkt(ctx, &args);
                    if !o.status.success() {
                        errors
                            .lock()
                            .unwrap()
                            .push(format!("{args:?}: {}", err(&o)));
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
                    let o = rkt(ctx, &["run", &bb(), "--exec=/bin/sh", "--", "-c", &script]);
                    if o.status.code() != Some(code as i32) {
                        errors.lock().unwrap().push(format!(
                            "run {t}/{n}: want {code}, got {:?}: {}",
                            o.status.code(),
                            err(&o)
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
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(*runs.lock().unwrap() > 20);
    ok(rkt(&ctx, &["gc", "--grace-period=0s"]));
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
    ok(rkt(&ctx, &["fetch", &bb()]));
    let mut uuids = Vec::new();
    for (i, delay) in [0u64, 1, 3, 5, 10, 20, 40, 80, 150, 300].iter().enumerate() {
        for cmd in ["run", "prepare"] {
            let uf = ctx.root().join(format!("u-{cmd}-{i}"));
            let mut c = ctx
                .rkt()
                .arg("--insecure-options=image")
                .arg(cmd)
                .arg(format!("--uuid-file-save={}", uf.display()))
                .args([&bb(), "--exec=/bin/sleep", "--", "30"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(*delay));
            let _ = c.kill();
            let _ = c.wait();
            match std::fs::read_to_string(&uf) {
                Ok(u) if u.trim().len() == 36 => uuids.push(u.trim().to_string()),
                _ => {}
            }
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
    let o = rkt(&ctx, &["gc", "--grace-period=0s", "--expire-prepared=0s"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_no_leaks(&ctx);
    assert!(
        cgroups_named(&uuids).is_empty(),
        "cgroups left: {:?}",
        cgroups_named(&uuids)
    );
    let o = rkt(&ctx, &["image", "verify", &bb()]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
}

#[test]
fn export_an_exited_pod_and_run_the_result() {
    let ctx = TestCtx::new();
    let uf = ctx.root().join("uuid");
    let o = rkt(
        &ctx,
        &[
            "run",
            &format!("--uuid-file-save={}", uf.display()),
            &bb(),
            "--exec=/bin/sh",
            "--",
            "-c",
            "echo exported > /hello; mkdir -p /data/sub; ln -s /hello /data/link",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let uuid = std::fs::read_to_string(&uf).unwrap();
    let out_file = ctx.root().join("pod.oci.tar");
    ok(rkt(
        &ctx,
        &["export", uuid.trim(), out_file.to_str().unwrap()],
    ));
    // exists → refused without --overwrite
    let o = rkt(&ctx, &["export", uuid.trim(), out_file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(254));
    ok(rkt(
        &ctx,
        &[
            "export",
            "--overwrite",
            uuid.trim(),
            out_file.to_str().unwrap(),
        ],
    ));
    let img = format!("oci-archive:{}", out_file.display());
    let o = rkt(
        &ctx,
        &[
            "run",
            &img,
            "--name=again",
            "--exec=/bin/cat",
            "--",
            "/data/link",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(out(&o), "exported\n");
    // a running pod cannot be exported
    let (mut child, running) = start_sleeper(&ctx, "300");
    let o = rkt(
        &ctx,
        &[
            "export",
            &running,
            ctx.root().join("x.tar").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(254));
    assert!(
        err(&o).contains("only exited pods can be exported"),
        "{}",
        err(&o)
    );
    ok(rkt(&ctx, &["stop", "--force", &running]));
    child.wait().unwrap();
    ok(rkt(&ctx, &["gc", "--grace-period=0s"]));
    assert_no_leaks(&ctx);
}

#[test]
fn gc_succeeds_after_an_admin_unmounted_the_rootfs() {
    let ctx = TestCtx::new();
    let uf = ctx.root().join("u");
    let o = rkt(
        &ctx,
        &[
            "run",
            &format!("--uuid-file-save={}", uf.display()),
            &bb(),
            "--exec=/bin/true",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let mounts = cleanup::mounts_under(&ctx.dir());
    assert!(!mounts.is_empty());
    for m in &mounts {
        nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH).unwrap();
    }
    let uuid = std::fs::read_to_string(&uf).unwrap();
    let o = ok(rkt(&ctx, &["gc", "--grace-period=0s"]));
    assert!(o.contains(uuid.trim()), "{o}");
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
    let o = rkt(
        &ctx,
        &["enter", &uuid, "/bin/sh", "-c", "mkdir /tmp/x 2>&1; true"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(out(&o).contains("Operation not permitted"), "{}", out(&o));
    ok(rkt(&ctx, &["stop", &uuid]));
    child.wait().unwrap();
}

#[test]
fn gc_succeeds_while_another_mount_namespace_holds_the_rootfs() {
    let ctx = TestCtx::new();
    let o = rkt(&ctx, &["run", &bb(), "--exec=/bin/true"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
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
    let o = rkt(&ctx, &["gc", "--grace-period=0s"]);
    let still = std::fs::read_to_string(&mi).unwrap_or_default();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_no_leaks(&ctx);
    assert!(
        !still.contains(&data),
        "the other namespace kept the pod's mounts"
    );
}
