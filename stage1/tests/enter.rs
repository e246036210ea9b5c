//! `rkt-stage1 enter` against a running pod (run as root).
mod common;

use common::*;
use stage1_abi::{MountPoint, Volume, VolumeKind};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

#[test]
fn enter_runs_confined_like_the_app() {
    let out = tempfile::tempdir().unwrap();
    std::fs::set_permissions(out.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let v = Volume {
        name: "out".into(),
        kind: VolumeKind::Host {
            source: out.path().to_string_lossy().into_owned(),
            recursive: true,
            idmap: false,
            propagation: None,
            recursive_read_only: false,
        },
        read_only: false,
    };
    let mut a = app(
        "a",
        &[
            "/bin/sh",
            "-c",
            "cat /proc/self/cgroup > /out/app-cg; sleep 100",
        ],
    );
    a.user = "user".into();
    a.group = "".into();
    a.mounts.push(MountPoint {
        volume: "out".into(),
        target: "/out".into(),
        read_only: false,
    });
    let mut p = Pod::new(vec![a], vec![v], runtime());
    p.spawn();
    p.wait_ready(Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(100));
    let app_pid = p.status("a").pid.unwrap();
    eprintln!("status: {:?} alive={}", p.status("a"), pid_alive(app_pid));
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_rkt-stage1"))
        .args(["enter", "--app=a", "--", "sh", "-c"])
        .arg(
            "cat /proc/self/status > /out/status; readlink /proc/self/ns/mnt > /out/mnt; \
             cat /proc/self/cgroup > /out/cg; hostname > /out/hn; exit 7",
        )
        .current_dir(p.path())
        .output()
        .unwrap();
    assert_eq!(
        code(&st.status),
        7,
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let status = std::fs::read_to_string(out.path().join("status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}:")))
            .unwrap()
            .trim()
            .to_string()
    };
    assert!(field("Uid").starts_with("1000"));
    assert_eq!(field("NoNewPrivs"), "1");
    assert_eq!(field("Seccomp"), "2");
    assert_eq!(u64::from_str_radix(&field("CapEff"), 16).unwrap(), 0);
    let mnt = std::fs::read_link(format!("/proc/{app_pid}/ns/mnt")).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.path().join("mnt"))
            .unwrap()
            .trim(),
        mnt.to_string_lossy()
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("cg")).unwrap(),
        std::fs::read_to_string(out.path().join("app-cg")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("hn"))
            .unwrap()
            .trim(),
        "rkt-test"
    );

    let st = std::process::Command::new(env!("CARGO_BIN_EXE_rkt-stage1"))
        .args(["enter", "--app=nope", "--", "true"])
        .current_dir(p.path())
        .output()
        .unwrap();
    assert_eq!(code(&st.status), 254);
    assert!(String::from_utf8_lossy(&st.stderr).contains("nope"));
}

#[test]
fn enter_root_app_and_missing_command() {
    let mut p = Pod::new(vec![app("a", &["/bin/sleep", "100"])], vec![], runtime());
    p.spawn();
    p.wait_ready(Duration::from_secs(20));
    // a root app: the seccomp filter is loaded while still privileged
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_rkt-stage1"))
        .args([
            "enter",
            "--app=a",
            "--",
            "grep",
            "Seccomp:",
            "/proc/self/status",
        ])
        .current_dir(p.path())
        .output()
        .unwrap();
    assert_eq!(
        code(&st.status),
        0,
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert!(String::from_utf8_lossy(&st.stdout).contains('2'));
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_rkt-stage1"))
        .args(["enter", "--app=a", "--", "/bin/nope"])
        .current_dir(p.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&st.stderr);
    assert_eq!(code(&st.status), 254, "{err}");
    assert!(err.contains("/bin/nope"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
