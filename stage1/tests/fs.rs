//! Filesystem view of apps: volumes, read-only rootfs, /etc files, working dir, env; bad input.
mod common;

use common::*;
use stage1_abi::{MountPoint, Volume, VolumeKind};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn host_vol(name: &str, dir: &std::path::Path, ro: bool) -> Volume {
    Volume {
        name: name.into(),
        kind: VolumeKind::Host {
            source: dir.to_string_lossy().into_owned(),
            recursive: true,
            idmap: false,
            propagation: None,
            recursive_read_only: false,
        },
        read_only: ro,
    }
}

fn mp(vol: &str, target: &str, ro: bool) -> MountPoint {
    MountPoint {
        volume: vol.into(),
        target: target.into(),
        read_only: ro,
    }
}

#[test]
fn volumes_rootfs_etc_env_and_cwd() {
    let out = tempfile::tempdir().unwrap();
    std::fs::set_permissions(out.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let ro = tempfile::tempdir().unwrap();
    std::fs::write(ro.path().join("f"), "data").unwrap();
    let script = "\
        cat /ro/f > /out/ro-read; touch /ro/g 2>/dev/null; echo $? > /out/ro-write; \
        touch /newfile 2>/dev/null; echo $? > /out/rootfs-write; \
        touch /empty/x; echo $? > /out/empty-write; ls /empty > /out/empty-ls; \
        stat -c %a /empty > /out/empty-mode; \
        pwd > /out/cwd; echo $AC_APP_NAME $FOO > /out/env; \
        cat /etc/hostname > /out/hostname; cat /etc/hosts > /out/hosts; \
        readlink /etc/mtab > /out/mtab";
    let mut a = app("a", &["/bin/sh", "-c", script]);
    a.working_dir = "/tmp".into();
    a.environment.push(("FOO".into(), "bar".into()));
    a.readonly_rootfs = true;
    a.mounts = vec![
        mp("out", "/out", false),
        mp("ro", "/ro", false),
        mp("empty", "/empty", false),
    ];
    let vols = vec![
        host_vol("out", out.path(), false),
        host_vol("ro", ro.path(), true),
        Volume {
            name: "empty".into(),
            kind: VolumeKind::Empty {
                mode: 0o750,
                uid: 0,
                gid: 0,
                populate_from: Some(("a".into(), "/etc".into())),
            },
            read_only: false,
        },
    ];
    let mut p = Pod::new(vec![a], vols, runtime());
    // /etc/mtab is created in the rootfs before start (the rootfs is read-only for the app)
    std::os::unix::fs::symlink(
        "../proc/self/mounts",
        p.path().join("apps/a/rootfs/etc/mtab"),
    )
    .unwrap();
    // a mode of its own, so that the populated volume shows where its mode came from
    let etc = p.path().join("apps/a/rootfs/etc");
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o751)).unwrap();
    let (st, _o, e) = p.run(T);
    assert_eq!(code(&st), 0, "stderr: {e}");
    let r = |f: &str| {
        std::fs::read_to_string(out.path().join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(r("ro-read"), "data");
    assert_eq!(r("ro-write"), "1");
    assert_eq!(r("rootfs-write"), "1");
    assert_eq!(r("empty-write"), "0");
    assert!(
        r("empty-ls").contains("passwd"),
        "populated: {}",
        r("empty-ls")
    );
    // a volume populated from the image takes the mode of the image's directory (Docker's
    // rule, read by stage1 through the rootfs fd), not the manifest's
    assert_eq!(r("empty-mode"), "751");
    assert_eq!(r("cwd"), "/tmp");
    assert_eq!(r("env"), "a bar");
    assert_eq!(r("hostname"), "rkt-test");
    assert!(r("hosts").contains("localhost") && r("hosts").contains("rkt-test"));
    assert_eq!(r("mtab"), "../proc/self/mounts");
    let empty = p.path().join("volumes/empty");
    assert_eq!(std::fs::metadata(&empty).unwrap().mode() & 0o777, 0o751);
}

#[test]
fn user_by_path_and_mtab_symlink() {
    let out = tempfile::tempdir().unwrap();
    std::fs::set_permissions(out.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut a = app(
        "a",
        &[
            "/bin/sh",
            "-c",
            "id -u > /out/uid; id -g > /out/gid; readlink /etc/mtab > /out/mtab",
        ],
    );
    a.user = "/home/owned".into();
    a.group = "/home/owned".into();
    a.mounts = vec![mp("out", "/out", false)];
    let mut p = Pod::new(vec![a], vec![host_vol("out", out.path(), false)], runtime());
    let owned = p.path().join("apps/a/rootfs/home/owned");
    std::fs::create_dir_all(&owned).unwrap();
    std::os::unix::fs::chown(&owned, Some(4242), Some(4343)).unwrap();
    let (st, _o, e) = p.run(T);
    assert_eq!(code(&st), 0, "stderr: {e}");
    let r = |f: &str| {
        std::fs::read_to_string(out.path().join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(r("uid"), "4242");
    assert_eq!(r("gid"), "4343");
    assert_eq!(r("mtab"), "../proc/self/mounts");
}

#[test]
fn bad_input_is_a_clear_254_with_nothing_left_behind() {
    // missing host volume source
    let mut a = app("a", &["/bin/true"]);
    a.mounts = vec![mp("v", "/v", false)];
    let vols = vec![host_vol(
        "v",
        std::path::Path::new("/nonexistent/src"),
        false,
    )];
    let mut p = Pod::new(vec![a], vols, runtime());
    let (st, _o, e) = p.run(T);
    assert_eq!(code(&st), 254, "{e}");
    assert!(e.contains("/nonexistent/src"), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    for c in p.cgroup_list() {
        assert!(!c.exists(), "{}", c.display());
    }

    // executable missing in the image: libcontainer's clean-up kills the processes of the
    // creating process's cgroups; a process outside the pod must survive it
    let mut sentinel = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let mut p = Pod::new(vec![app("a", &["/bin/nope"])], vec![], runtime());
    let (st, _o, e) = p.run(T);
    assert!(
        sentinel.try_wait().unwrap().is_none(),
        "a process outside the pod was killed"
    );
    let _ = sentinel.kill();
    let _ = sentinel.wait();
    assert_eq!(code(&st), 254, "{e}");
    assert!(e.contains("/bin/nope"), "{e}");
    for c in p.cgroup_list() {
        assert!(!c.exists(), "{}", c.display());
    }

    // unknown user
    let mut a = app("a", &["/bin/true"]);
    a.user = "ghost".into();
    let mut p = Pod::new(vec![a], vec![], runtime());
    let (st, _o, e) = p.run(T);
    assert_eq!(code(&st), 254, "{e}");
    assert!(e.contains("ghost"), "{e}");

    // interactive with two apps
    let mut rc = runtime();
    rc.interactive = true;
    let mut p = Pod::new(
        vec![app("a", &["/bin/true"]), app("b", &["/bin/true"])],
        vec![],
        rc,
    );
    let (st, _o, e) = p.run(T);
    assert_eq!(code(&st), 254, "{e}");
    assert!(e.contains("interactive"), "{e}");
}

#[test]
fn hosts_entries_and_dns() {
    let out = tempfile::tempdir().unwrap();
    let mut a = app(
        "a",
        &[
            "/bin/sh",
            "-c",
            "cat /etc/hosts > /out/hosts; cat /etc/resolv.conf > /out/resolv",
        ],
    );
    a.mounts = vec![mp("out", "/out", false)];
    let mut rc = runtime();
    rc.hosts_entries = vec!["10.1.2.3=db.example".into()];
    rc.dns.servers = vec!["9.9.9.9".into()];
    rc.dns.search = vec!["example.com".into()];
    let mut p = Pod::new(vec![a], vec![host_vol("out", out.path(), false)], rc);
    // the image has its own /etc/hosts: --hosts-entry overrides it
    std::fs::write(p.path().join("apps/a/rootfs/etc/hosts"), "1.1.1.1 image\n").unwrap();
    let (st, _o, e) = p.run(T);
    assert_eq!(code(&st), 0, "stderr: {e}");
    let hosts = std::fs::read_to_string(out.path().join("hosts")).unwrap();
    assert!(hosts.contains("10.1.2.3\tdb.example"), "{hosts}");
    assert!(!hosts.contains("image"), "{hosts}");
    let resolv = std::fs::read_to_string(out.path().join("resolv")).unwrap();
    assert!(resolv.contains("nameserver 9.9.9.9"), "{resolv}");
    assert!(resolv.contains("search example.com"), "{resolv}");
}
