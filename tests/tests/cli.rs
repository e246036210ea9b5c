//! The `rkt` command line: global flags, exit codes, version, config.

use rkt_tests::TestCtx;
use std::process::Command;

#[test]
fn no_subcommand_exits_2_with_help() {
    let out = Command::new(rkt_tests::rkt_bin()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!out.stderr.is_empty(), "help goes to stderr");
}

#[test]
fn only_global_flags_behave_as_bare_rkt() {
    let ctx = TestCtx::new();
    for flags in [
        &["--debug"][..],
        &["--insecure-options=image", "--debug"][..],
    ] {
        let out = ctx.rkt().args(flags).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{flags:?}");
        assert!(!out.stderr.is_empty(), "help goes to stderr");
    }
    // a subcommand still runs, and an unknown word is still an error
    let out = ctx.rkt().args(["--debug", "version"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = ctx.rkt().args(["--debug", "bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(254));
}

#[test]
fn unknown_insecure_option_exits_254_naming_it() {
    let ctx = TestCtx::new();
    let out = ctx
        .rkt()
        .args(["--insecure-options=image,bogus", "version"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(254));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bogus"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
}

#[test]
fn every_insecure_option_alias_is_accepted() {
    let ctx = TestCtx::new();
    for v in [
        "none",
        "image",
        "tls",
        "ondisk",
        "http",
        "pubkey",
        "capabilities",
        "paths",
        "seccomp",
        "all-fetch",
        "all-run",
        "all",
        "image,tls",
    ] {
        let st = ctx
            .rkt()
            .arg(format!("--insecure-options={v}"))
            .arg("version")
            .output()
            .unwrap()
            .status;
        assert_eq!(st.code(), Some(0), "--insecure-options={v}");
    }
}

#[test]
fn version_reports_features() {
    let ctx = TestCtx::new();
    let out = ctx.rkt().arg("version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let s = String::from_utf8_lossy(&out.stdout);
    let features = s
        .lines()
        .find(|l| l.starts_with("Features:"))
        .expect("Features line");
    // This host has overlayfs and seccomp; the cgroup flags follow /proc/self/mountinfo.
    assert!(features.contains("+OVERLAY"), "{features}");
    assert!(features.contains("SECCOMP"), "{features}");
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let has_v1 = mi.lines().any(|l| l.contains(" - cgroup "));
    assert_eq!(features.contains("+CGROUP-V1"), has_v1, "{features}");
}

#[test]
fn config_merges_local_over_system() {
    let ctx = TestCtx::new();
    let w = |root: std::path::PathBuf, body: &str| {
        std::fs::create_dir_all(root.join("paths.d")).unwrap();
        std::fs::write(root.join("paths.d/p.json"), body).unwrap();
    };
    w(
        ctx.system_config(),
        r#"{"rktKind":"paths","rktVersion":"v1","data":"/a","stage1-images":"/s"}"#,
    );
    w(
        ctx.local_config(),
        r#"{"rktKind":"paths","rktVersion":"v1","data":"/b"}"#,
    );
    let out = ctx.rkt().arg("config").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["paths"]["data"], "/b");
    assert_eq!(v["paths"]["stage1Images"], "/s");
    // Credentials show without their secret; mirrors show as configured.
    std::fs::create_dir_all(ctx.local_config().join("auth.d")).unwrap();
    std::fs::write(
        ctx.local_config().join("auth.d/a.json"),
        r#"{"rktKind":"dockerAuth","rktVersion":"v1","registries":["127.0.0.1:5000"],"credentials":{"user":"alice","password":"hunter2"}}"#,
    )
    .unwrap();
    let out = ctx.rkt().arg("config").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("hunter2"), "password leaked: {text}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["auth"][0]["user"], "alice");
    // A broken file is a 254 naming it.
    w(ctx.local_config(), "{not json");
    let out = ctx.rkt().arg("config").output().unwrap();
    assert_eq!(out.status.code(), Some(254));
    assert!(String::from_utf8_lossy(&out.stderr).contains("p.json"));
}

#[test]
fn usage_errors_are_one_line_254() {
    let ctx = TestCtx::new();
    let out = ctx
        .rkt()
        .args(["version", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(254));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
    assert!(err.contains("--no-such-flag"), "{err}");
}

#[test]
fn closed_stdout_is_not_a_panic() {
    use std::process::Stdio;
    let ctx = TestCtx::new();
    let mut child = ctx
        .rkt()
        .arg("version")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away, as with `| head -0`
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}
