//! Hardening (issue 18), items 6 and 8, attacked with the real `rkt`:
//!
//! - the default seccomp profile: an app in a default pod cannot make namespaces (`clone`
//!   with namespace flags, `unshare`) nor use `clone3`/io_uring, while fork and threads work;
//!   with CAP_SYS_ADMIN it can, as under Docker; what a user names in `--seccomp` wins; a
//!   process `rkt enter`s into the pod is under the same rules;
//! - image config size and shape: hostile images (a huge config in an `oci:` layout, 100k and
//!   millions of `Env` entries, an environment too large for `execve`) are handled in linear
//!   time or refused with one line naming the limit, leaving nothing behind.

use rkt_tests::{images, stderr, stdout, TestCtx};
use serde_json::Value;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

fn bb() -> String {
    images::busybox().oci_ref()
}

const VERIFIER: &str = images::VERIFIER_IN_IMAGE;

/// The probes of `rkt-verifier syscall` a script ran, by name: (ok, errno).
fn probes(out: &str) -> std::collections::BTreeMap<String, (bool, i64)> {
    out.lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("probe").is_some())
        .map(|v| {
            (
                v["probe"].as_str().unwrap().to_string(),
                (v["ok"] == true, v["errno"].as_i64().unwrap()),
            )
        })
        .collect()
}

/// `NAME=CODE` lines a script printed.
fn code(out: &str, name: &str) -> Option<i32> {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .and_then(|c| c.trim().parse().ok())
}

/// Every probe, busybox `unshare -U`/`-n`, and a shell's background job, in one pod.
const SCRIPT: &str = "for p in clone-newuser clone-newnet clone3 io-uring-setup clone thread; do \
     /usr/bin/rkt-verifier syscall $p; done; \
     unshare -U true 2>/dev/null; echo unshare-U=$?; \
     unshare -n true 2>/dev/null; echo unshare-n=$?; \
     true & wait $!; echo job=$?";

fn run_script(ctx: &TestCtx, app_flags: &[&str]) -> Output {
    let mut args = vec!["run", "--net=host"];
    let image = bb();
    args.push(&image);
    args.extend_from_slice(app_flags);
    args.extend_from_slice(&["--exec=/bin/sh", "--", "-c", SCRIPT]);
    let o = ctx.rkt_output(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    o
}

#[test]
fn default_pod_cannot_make_namespaces_clone3_or_io_uring() {
    let ctx = TestCtx::new();
    let o = run_script(&ctx, &[]);
    let out = stdout(&o);
    let p = probes(&out);
    // EPERM for namespace flags, ENOSYS for clone3 (libc falls back), EPERM for io_uring
    assert_eq!(p["clone-newuser"], (false, 1), "{out}");
    assert_eq!(p["clone-newnet"], (false, 1), "{out}");
    assert_eq!(p["clone3"], (false, 38), "{out}");
    assert_eq!(p["io-uring-setup"], (false, 1), "{out}");
    // ... and not by killing the prober: plain fork, threads, background jobs work
    assert_eq!(p["clone"], (true, 0), "{out}");
    assert_eq!(p["thread"], (true, 0), "{out}");
    assert_eq!(code(&out, "job"), Some(0), "{out}");
    assert_eq!(code(&out, "unshare-U"), Some(1), "{out}");
    assert_eq!(code(&out, "unshare-n"), Some(1), "{out}");
}

#[test]
fn cap_sys_admin_pod_gets_namespaces_as_under_docker() {
    let ctx = TestCtx::new();
    let o = run_script(&ctx, &["--caps-retain=CAP_SYS_ADMIN"]);
    let out = stdout(&o);
    let p = probes(&out);
    assert_eq!(p["clone-newuser"], (true, 0), "{out}");
    assert_eq!(p["clone-newnet"], (true, 0), "{out}");
    assert_eq!(p["clone3"], (true, 0), "{out}");
    assert_eq!(code(&out, "unshare-U"), Some(0), "{out}");
    assert_eq!(code(&out, "unshare-n"), Some(0), "{out}");
    // io_uring is not part of Docker's profile whatever the capabilities
    assert_eq!(p["io-uring-setup"], (false, 1), "{out}");
}

#[test]
fn syscalls_named_in_seccomp_flag_are_allowed_as_named() {
    let ctx = TestCtx::new();
    let o = run_script(
        &ctx,
        &["--seccomp=mode=retain,@docker/default-whitelist,clone,clone3,unshare,io_uring_setup"],
    );
    let out = stdout(&o);
    let p = probes(&out);
    // the user's list wins; the kernel's own checks still apply (no CAP_SYS_ADMIN: no netns)
    assert_eq!(p["clone-newuser"], (true, 0), "{out}");
    assert_eq!(p["clone-newnet"], (false, 1), "{out}");
    assert_eq!(p["clone3"], (true, 0), "{out}");
    assert!(p["io-uring-setup"].0, "{out}");
    assert_eq!(code(&out, "unshare-U"), Some(0), "{out}");
}

/// A pod running `sleep`, started in the background; its UUID once it is ready.
fn start_sleeper(ctx: &TestCtx) -> (Child, String) {
    let uf = ctx.root().join("sleeper.uuid");
    let child = ctx
        .rkt()
        .arg("--insecure-options=image")
        .args(["run", "--net=host", "--uuid-file-save"])
        .arg(&uf)
        .arg(bb())
        .args(["--exec=/bin/sleep", "--", "300"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
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
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "pod did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn rkt_enter_gets_the_apps_namespace_rules() {
    let ctx = TestCtx::new();
    let (mut child, uuid) = start_sleeper(&ctx);
    let probe = |what: &str| {
        let o = ctx.rkt_output(&["enter", &uuid, VERIFIER, "syscall", what]);
        let p = probes(&stdout(&o));
        (o.status.code(), p.get(what).copied())
    };
    assert_eq!(probe("clone-newuser"), (Some(1), Some((false, 1))));
    assert_eq!(probe("clone-newnet"), (Some(1), Some((false, 1))));
    assert_eq!(probe("clone3"), (Some(1), Some((false, 38))));
    assert_eq!(probe("io-uring-setup"), (Some(1), Some((false, 1))));
    assert_eq!(probe("clone"), (Some(0), Some((true, 0))));
    assert_eq!(probe("thread"), (Some(0), Some((true, 0))));
    let o = ctx.rkt_output(&["enter", &uuid, "/bin/unshare", "-U", "true"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(ctx.rkt_output(&["stop", &uuid]).status.success());
    child.wait().unwrap();
}
