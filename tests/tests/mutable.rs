//! Mutable pods (`rkt app …`), driven as a user would: a sandbox in the background, apps
//! added, started, exec'd into, stopped, restarted and removed while it runs; the pod outlives
//! its apps' exits and ends on `rkt stop` leaving nothing behind.

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

fn fails(o: Output) -> String {
    assert_eq!(o.status.code(), Some(254), "stdout: {}", stdout(&o));
    let e = stderr(&o);
    assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
    e
}

/// `rkt app sandbox ARGS` in the background; the child and the pod's UUID once it is ready.
#[allow(clippy::zombie_processes)]
fn sandbox(ctx: &TestCtx, args: &[&str]) -> (Child, String) {
    let uf = ctx.root().join("sandbox.uuid");
    let mut child = ctx
        .rkt()
        .args(["--insecure-options=image", "app", "sandbox"])
        .arg(format!("--uuid-file-save={}", uf.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rkt app sandbox");
    let start = Instant::now();
    loop {
        if let Ok(u) = std::fs::read_to_string(&uf) {
            let u = u.trim().to_string();
            if u.len() == 36
                && ctx
                    .rkt_output(&["status", "--wait-ready=10s", &u])
                    .status
                    .success()
            {
                return (child, u);
            }
        }
        if start.elapsed() > Duration::from_secs(20) || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sandbox did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn app_field(ctx: &TestCtx, uuid: &str, app: &str, key: &str) -> Option<String> {
    let o = ctx.rkt_output(&["app", "status", uuid, &format!("--app={app}")]);
    stdout(&o)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}

fn wait_app_state(ctx: &TestCtx, uuid: &str, app: &str, want: &str) {
    let start = Instant::now();
    while app_field(ctx, uuid, app, "state").as_deref() != Some(want) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "app {app} never {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pod_state(ctx: &TestCtx, uuid: &str) -> String {
    stdout(&ctx.rkt_output(&["status", uuid]))
        .lines()
        .find_map(|l| l.strip_prefix("state=").map(str::to_string))
        .unwrap_or_default()
}

#[test]
fn apps_are_added_started_stopped_restarted_and_removed_while_the_pod_runs() {
    let ctx = TestCtx::new();
    let (mut child, uuid) = sandbox(&ctx, &["--net=none"]);
    let host_dir = ctx.root().join("shared");
    std::fs::create_dir_all(&host_dir).unwrap();

    // created: in the manifest, rootfs mounted, no process
    let name = ok(ctx.rkt_output(&[
        "app",
        "add",
        &format!("--volume=data,kind=host,source={}", host_dir.display()),
        &uuid,
        &bb(),
        "--name=web",
        "--mount=volume=data,target=/data",
        "--exec=/bin/sh",
        "--",
        "-c",
        "echo $$ > /data/pid; echo kept > /kept; exec sleep 300",
    ]));
    assert_eq!(name.trim(), "web");
    assert_eq!(
        app_field(&ctx, &uuid, "web", "state").as_deref(),
        Some("created")
    );
    ok(ctx.rkt_output(&["app", "start", &uuid, "--app=web"]));
    assert_eq!(
        app_field(&ctx, &uuid, "web", "state").as_deref(),
        Some("running")
    );
    let pid1: i32 = app_field(&ctx, &uuid, "web", "pid")
        .unwrap()
        .parse()
        .unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid1}")).exists());

    // exec: confined like the app, its exit code passed through
    let start = Instant::now();
    while !host_dir.join("pid").exists() {
        assert!(start.elapsed() < Duration::from_secs(10), "app never wrote");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = ok(ctx.rkt_output(&["app", "exec", &uuid, "--app=web", "--", "cat", "/kept"]));
    assert_eq!(out.trim(), "kept");
    let o = ctx.rkt_output(&[
        "app",
        "exec",
        &uuid,
        "--app=web",
        "--",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7));

    // a second app that fails does not end the pod
    ok(ctx.rkt_output(&[
        "app",
        "add",
        &uuid,
        &bb(),
        "--name=bad",
        "--exec=/bin/false",
    ]));
    ok(ctx.rkt_output(&["app", "start", &uuid, "--app=bad"]));
    wait_app_state(&ctx, &uuid, "bad", "exited");
    assert_eq!(
        app_field(&ctx, &uuid, "bad", "exit-code").as_deref(),
        Some("1")
    );
    assert_eq!(pod_state(&ctx, &uuid), "running");
    assert_eq!(
        app_field(&ctx, &uuid, "web", "state").as_deref(),
        Some("running")
    );

    // stop: SIGTERM, recorded as the signal it died of; the pod goes on
    ok(ctx.rkt_output(&["app", "stop", &uuid, "--app=web", "--timeout=5"]));
    assert_eq!(
        app_field(&ctx, &uuid, "web", "state").as_deref(),
        Some("exited")
    );
    assert_eq!(
        app_field(&ctx, &uuid, "web", "exit-code").as_deref(),
        Some("143")
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{pid1}")).exists() || {
            // a zombie would mean nobody reaped it
            std::fs::read_to_string(format!("/proc/{pid1}/stat")).is_err()
        }
    );
    assert_eq!(pod_state(&ctx, &uuid), "running");

    // started again: a new process, the writable layer kept
    ok(ctx.rkt_output(&["app", "start", &uuid, "--app=web"]));
    let pid2: i32 = app_field(&ctx, &uuid, "web", "pid")
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(pid1, pid2);
    let out = ok(ctx.rkt_output(&["app", "exec", &uuid, "--app=web", "--", "cat", "/kept"]));
    assert_eq!(out.trim(), "kept");

    // rm of a running app kills it and takes it out, volume included
    ok(ctx.rkt_output(&["app", "rm", &uuid, "--app=web"]));
    let list = ok(ctx.rkt_output(&["app", "list", "--no-legend", &uuid]));
    assert!(!list.contains("web") && list.contains("bad"), "{list}");
    let m = ok(ctx.rkt_output(&["cat-manifest", &uuid]));
    assert!(!m.contains("\"data\""), "the app's volume stays: {m}");
    let start = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid2}/stat")).exists() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "removed app still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mounts = cleanup::mounts_under(&ctx.dir());
    assert!(
        !mounts
            .iter()
            .any(|p| p.to_string_lossy().contains("/apps/web/")),
        "{mounts:?}"
    );
    ok(ctx.rkt_output(&["app", "rm", &uuid, "--app=bad"]));

    // an app added after others were removed runs too, then the pod stops as a whole
    ok(ctx.rkt_output(&[
        "app",
        "add",
        &uuid,
        &bb(),
        "--name=last",
        "--exec=/bin/sleep",
        "--",
        "300",
    ]));
    ok(ctx.rkt_output(&["app", "start", &uuid, "--app=last"]));
    ok(ctx.rkt_output(&["stop", &uuid]));
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(0), "a stopped mutable pod exits 0");
    assert_eq!(pod_state(&ctx, &uuid), "exited");
    ok(ctx.rkt_output(&["gc", "--grace-period=0s"]));
    ctx.assert_nothing_left();
    assert!(
        cleanup::cgroups_of_pods(&ctx.dir()).is_empty() || {
            cleanup::cgroups_of_pods(&ctx.dir())
                .iter()
                .all(|c| !c.to_string_lossy().contains(&uuid))
        }
    );
}

#[test]
fn app_commands_refuse_what_they_cannot_do_and_leave_nothing() {
    let ctx = TestCtx::new();
    let (mut child, uuid) = sandbox(&ctx, &["--net=none"]);
    ok(ctx.rkt_output(&[
        "app",
        "add",
        &uuid,
        &bb(),
        "--name=a",
        "--exec=/bin/sleep",
        "--",
        "300",
    ]));
    // a second app of the same name
    let e = fails(ctx.rkt_output(&["app", "add", &uuid, &bb(), "--name=a"]));
    assert!(e.contains("\"a\""), "{e}");
    // an image that is not there: nothing of the app is left
    let missing = format!("oci:{}:nope", ctx.root().join("no-such-layout").display());
    fails(ctx.rkt_output(&["app", "add", &uuid, &missing, "--name=ghost"]));
    let pod_dir = ctx.dir().join("pods/run").join(&uuid);
    assert!(!pod_dir.join("apps/ghost").exists());
    // unknown apps
    let e = fails(ctx.rkt_output(&["app", "start", &uuid, "--app=nope"]));
    assert!(e.contains("nope"), "{e}");
    fails(ctx.rkt_output(&["app", "status", &uuid, "--app=nope"]));
    fails(ctx.rkt_output(&["app", "rm", &uuid, "--app=nope"]));
    // an app whose user does not exist fails to start with its reason; the pod goes on
    ok(ctx.rkt_output(&[
        "app",
        "add",
        &uuid,
        &bb(),
        "--name=nouser",
        "--user=nobody-here",
    ]));
    let e = fails(ctx.rkt_output(&["app", "start", &uuid, "--app=nouser"]));
    assert!(e.contains("nouser"), "{e}");
    assert_eq!(pod_state(&ctx, &uuid), "running");
    // start of a running app
    ok(ctx.rkt_output(&["app", "start", &uuid, "--app=a"]));
    fails(ctx.rkt_output(&["app", "start", &uuid, "--app=a"]));
    // an interactive sandbox has no app to give the terminal
    let o = ctx.rkt_output(&["app", "sandbox", "--interactive", "--net=none"]);
    assert_eq!(o.status.code(), Some(254), "{}", stderr(&o));

    ok(ctx.rkt_output(&["stop", &uuid]));
    child.wait().unwrap();
    // app changes need a running mutable pod
    let e = fails(ctx.rkt_output(&["app", "add", &uuid, &bb(), "--name=late"]));
    assert!(e.contains("not running"), "{e}");
    ok(ctx.rkt_output(&["gc", "--grace-period=0s"]));

    // a pod of rkt run is not mutable
    let (mut run, ruuid) = ctx.spawn_pod(
        &[],
        &[&bb(), "--exec=/bin/sleep", "--", "300"],
        Stdio::null(),
    );
    let e = fails(ctx.rkt_output(&["app", "add", &ruuid, &bb(), "--name=x"]));
    assert!(e.contains("not a mutable pod"), "{e}");
    ok(ctx.rkt_output(&["stop", &ruuid]));
    run.wait().unwrap();
    ok(ctx.rkt_output(&["gc", "--grace-period=0s"]));
    ctx.assert_nothing_left();
}
