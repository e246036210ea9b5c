//! Hostile images against rkt's path handling inside an app's root filesystem (issue 18, items
//! 5 and 7, and the CVE-2021-30465 mount-target regression): links that lead out of the rootfs
//! must never make rkt read, create, copy or mount anything on the host, and ids above 2^31-1
//! must be refused instead of running as root.
//!
//! Every link in these images names a path of the test's own context dir, which exists on the
//! host; each test asserts the host side stayed untouched.

use rkt_tests::{cleanup, hostile_paths as hp, stderr, stdout, TestCtx};
use std::path::{Path, PathBuf};
use std::process::Output;

/// A host dir of the test (under its context) with `files` (name, content) in it.
fn host_dir(ctx: &TestCtx, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let d = ctx.root().join(name);
    std::fs::create_dir_all(&d).unwrap();
    for (f, c) in files {
        std::fs::write(d.join(f), c).unwrap();
    }
    d
}

/// Names in `dir` (sorted).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Every path below `dir` named `name` (not following links).
fn find_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_name() == name {
            out.push(p.clone());
        }
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.extend(find_named(&p, name));
        }
    }
    out
}

fn run(ctx: &TestCtx, image: &str, extra: &[&str]) -> Output {
    run_with(ctx, &[], image, extra)
}

/// `rkt run --net=none POD_FLAGS… IMAGE APP_FLAGS…`
fn run_with(ctx: &TestCtx, pod_flags: &[&str], image: &str, extra: &[&str]) -> Output {
    let mut args = vec!["run", "--net=none"];
    args.extend_from_slice(pod_flags);
    args.push(image);
    args.extend_from_slice(extra);
    ctx.rkt_output(&args)
}

fn one_line_254(o: &Output, want: &[&str]) {
    let err = stderr(o);
    eprintln!("refused: {}", err.trim());
    assert_eq!(
        o.status.code(),
        Some(254),
        "stdout: {} stderr: {err}",
        stdout(o)
    );
    assert!(
        want.iter().any(|w| err.contains(w)),
        "want one of {want:?} in {err:?}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
}

const TOO_MANY_LINKS: &str = "too many levels of symbolic links";

/// (a) `/etc` is a chain of 51 links ending at a host dir: the old resolver followed 40 and
/// made the `/etc/mtab` link at `<host dir>/mtab`. And `/etc/mtab` itself as a 50-link chain to
/// a host file: nothing may be created there either.
#[test]
fn mtab_link_is_never_made_on_the_host() {
    let ctx = TestCtx::new();
    let host = host_dir(&ctx, "host-etc", &[]);
    let img = hp::etc_chain_out(&ctx.root().join("oci"), &host);
    let o = run(&ctx, &img.oci_ref(), &["--exec=/bin/true"]);
    assert!(
        std::fs::symlink_metadata(host.join("mtab")).is_err(),
        "rkt made /etc/mtab on the host: {}",
        stderr(&o)
    );
    assert!(
        names(&host).is_empty(),
        "host dir written: {:?}",
        names(&host)
    );
    // /etc/hosts is looked at through the same chain: refused, one line
    one_line_254(&o, &[TOO_MANY_LINKS]);

    let host2 = host_dir(&ctx, "host-mtab", &[]);
    let img = hp::mtab_chain_out(&ctx.root().join("oci"), &host2.join("pwned"));
    let o = run(&ctx, &img.oci_ref(), &["--exec=/bin/true"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        names(&host2).is_empty(),
        "host dir written: {:?}",
        names(&host2)
    );
    cleanup::assert_no_mounts_under(&host, "mounts on the host dir");
}

/// (b) `/etc/passwd` and `/etc/group` lead, through a 45-link chain, to a host dir whose passwd
/// and group have a user and a group the image does not: rkt must refuse, never run the app as
/// the host's ids.
#[test]
fn user_and_group_are_never_read_from_the_host() {
    let ctx = TestCtx::new();
    let host = host_dir(
        &ctx,
        "host-passwd",
        &[
            ("passwd", "rkthostonly:x:4242:4243::/:/bin/sh\n"),
            ("group", "rkthostgrp:x:4244:\n"),
        ],
    );
    let layout = ctx.root().join("oci");
    // the image's own User, and --user / --group
    let img = hp::passwd_chain_out(&layout, &host, Some("rkthostonly"));
    let o = run(&ctx, &img.oci_ref(), &["--exec=/bin/id"]);
    one_line_254(&o, &[TOO_MANY_LINKS, "not found in the image"]);
    assert!(!stdout(&o).contains("4242"), "{}", stdout(&o));
    let img = hp::passwd_chain_out(&layout, &host, None);
    for flag in ["--user=rkthostonly", "--group=rkthostgrp"] {
        let o = run(&ctx, &img.oci_ref(), &[flag, "--exec=/bin/id"]);
        one_line_254(&o, &[TOO_MANY_LINKS, "not found in the image"]);
        assert!(!stdout(&o).contains("424"), "{flag}: {}", stdout(&o));
    }
    // `--user=/path`: the owner of a file the chain leads to on the host
    let owned = host.join("owned");
    std::fs::write(&owned, "").unwrap();
    std::os::unix::fs::chown(&owned, Some(4245), Some(4246)).unwrap();
    let o = run(
        &ctx,
        &img.oci_ref(),
        &["--user=/p/owned", "--group=/p/owned", "--exec=/bin/id"],
    );
    one_line_254(&o, &[TOO_MANY_LINKS]);
}

/// (c) An image `VOLUME /data` whose `/data` is a 45-link chain to a host dir with a marker:
/// the old code copied the host dir into the pod's volume. A short chain that stays inside the
/// image populates the volume with the image's content, links copied as links.
#[test]
fn image_volume_is_never_populated_from_the_host() {
    let ctx = TestCtx::new();
    let host = host_dir(&ctx, "host-vol", &[("rkt-host-marker", "host secret\n")]);
    let layout = ctx.root().join("oci");
    let img = hp::volume_chain(&layout, "vol-out", 45, host.to_str().unwrap());
    let o = run(&ctx, &img.oci_ref(), &["--exec=/bin/true"]);
    let copied = find_named(&ctx.dir(), "rkt-host-marker");
    assert!(
        copied.is_empty(),
        "host dir copied into the pod: {copied:?}"
    );
    one_line_254(&o, &[TOO_MANY_LINKS]);
    assert_eq!(names(&host), ["rkt-host-marker"]);
    // and no half-made volume dir is left to be taken for a made one
    for v in find_named(&ctx.dir(), "volumes") {
        assert!(names(&v).is_empty(), "{}: {:?}", v.display(), names(&v));
    }

    // 5 links, all inside the image: populated from /srv/real, with its mode and owner
    let img = hp::volume_chain(&layout, "vol-in", 5, "/srv/real");
    let o = run(
        &ctx,
        &img.oci_ref(),
        &[
            "--exec=/bin/sh",
            "--",
            "-c",
            "cat /data/seed /data/sub/deep; readlink /data/etc-link; \
             stat -L -c '%u:%g %a' /data /data/sub/deep",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "image-seed\ndeep\n/etc\n1000:1000 750\n0:0 600\n"
    );
}

/// (d) `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` as absolute and `../` links to host
/// files: rkt's files are bound inside the rootfs (where the links resolve inside it) or the
/// pod fails; the host files are never written or mounted over.
#[test]
fn etc_files_are_never_bound_onto_the_host() {
    let ctx = TestCtx::new();
    let files = [
        ("hostname", "host-original\n"),
        ("hosts", "host-original\n"),
        ("resolv.conf", "host-original\n"),
    ];
    let host = host_dir(&ctx, "host-files", &files);
    let layout = ctx.root().join("oci");
    let flags = [
        "--hostname=rkt-pod",
        "--hosts-entry=10.9.8.7=rkt-entry",
        "--dns=10.1.2.3",
    ];
    let check_host = |what: &str| {
        for (f, c) in files {
            assert_eq!(
                std::fs::read_to_string(host.join(f)).unwrap(),
                c,
                "{what}: host {f} changed"
            );
        }
        assert_eq!(names(&host), ["hostname", "hosts", "resolv.conf"], "{what}");
        cleanup::assert_no_mounts_under(&host, what);
    };
    // the link targets exist in the image too: the binds land there, inside
    let img = hp::etc_files_out(&layout, &host, true);
    let o = run_with(
        &ctx,
        &flags,
        &img.oci_ref(),
        &[
            "--exec=/bin/sh",
            "--",
            "-c",
            "cat /etc/hostname; grep -c rkt-entry /etc/hosts; cat /etc/resolv.conf",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "rkt-pod\n1\nnameserver 10.1.2.3\n");
    check_host("targets inside the image");
    // they do not: the pod may fail, the host stays as it was
    let img = hp::etc_files_out(&layout, &host, false);
    let _ = run_with(&ctx, &flags, &img.oci_ref(), &["--exec=/bin/true"]);
    check_host("targets missing in the image");
}

/// (e) uid/gid 2^32-1 is `(uid_t)-1`, which `setresuid` takes as "unchanged": the app ran as
/// root. Every way an id enters must refuse ids above 2^31-1 with a one-line 254.
#[test]
fn ids_above_2_31_are_refused() {
    let ctx = TestCtx::new();
    let layout = ctx.root().join("oci");
    let limit = "2147483647";
    // from the image config
    for (i, user) in ["4294967295", "0:4294967295", "2147483648"]
        .iter()
        .enumerate()
    {
        let img = hp::with_user(&layout, &format!("u{i}"), user);
        let o = run(&ctx, &img.oci_ref(), &["--exec=/bin/id"]);
        one_line_254(&o, &[limit]);
    }
    let img = hp::with_user(&layout, "ok", "0");
    // from the flags
    for flag in [
        "--user=4294967295",
        "--group=4294967295",
        "--supplementary-gids=1,4294967295",
    ] {
        let o = run(&ctx, &img.oci_ref(), &[flag, "--exec=/bin/id"]);
        one_line_254(&o, &[limit]);
    }
    // from the image's /etc/passwd and /etc/group (resolved by stage1)
    // (a user's passwd gid never applies: stage0 gives a user without a group group 0)
    for flags in [
        &["--user=big"][..],
        &["--group=big"],
        &["--user=7", "--group=big"],
    ] {
        let mut args = flags.to_vec();
        args.push("--exec=/bin/id");
        let o = run(&ctx, &img.oci_ref(), &args);
        one_line_254(&o, &[limit]);
    }
    // the largest allowed id runs as itself
    let o = run(
        &ctx,
        &img.oci_ref(),
        &["--user=2147483647", "--group=2147483647", "--exec=/bin/id"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("uid=2147483647 gid=2147483647"),
        "{}",
        stdout(&o)
    );
}

/// Mount points of the host's mount namespace (this test process's), as (id, mount point).
fn host_mounts() -> Vec<(String, PathBuf)> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((
                f.first()?.to_string(),
                PathBuf::from(cleanup::unescape_mountinfo(f.get(4)?)),
            ))
        })
        .collect()
}

/// (f) CVE-2021-30465: a mount target inside the rootfs that an attacker swaps between a dir and
/// a symlink (to `/`, and to a host dir of the test) while rkt mounts onto it must never make
/// the mount land outside the app's rootfs.
///
/// rkt creates every app of a pod (its mounts included) before it starts any, so a sibling app
/// of the same pod is never running while another's mounts are made; what runs concurrently is
/// another pod sharing a host volume. The attacker pod swaps `sub` in the shared dir forever;
/// victim pods mount the shared dir at /vol and a second volume (with a marker) at /vol/sub,
/// over and over. libcontainer resolves each target to an fd inside the rootfs (pathrs:
/// `openat2(RESOLVE_IN_ROOT)`) and mounts onto that fd (`move_mount`), so whichever of dir or
/// link it sees, the mount lands inside: the host's mount table gains nothing outside the
/// pods' dirs and the marker never shows up in `/` or the link's host dir.
#[test]
fn mount_target_swapped_for_a_symlink_stays_in_the_rootfs() {
    let ctx = TestCtx::new();
    let shared = host_dir(&ctx, "shared", &[]);
    let escape = host_dir(&ctx, "escape", &[]);
    let w = host_dir(&ctx, "w", &[("rkt-w-marker", "w\n")]);
    let bb = rkt_tests::images::busybox().oci_ref();
    let before: std::collections::HashSet<String> =
        host_mounts().into_iter().map(|(id, _)| id).collect();
    let shared_vol = format!("shared,kind=host,source={}", shared.display());
    for target in ["/", escape.to_str().unwrap()] {
        let _ = std::fs::remove_dir_all(&shared);
        std::fs::create_dir_all(&shared).unwrap();
        // the attacker pod, once it swaps
        let mut attacker = rkt_tests::spawn_until_line(
            ctx.rkt().args([
                "--insecure-options=image",
                "run",
                "--net=none",
                &format!("--volume={shared_vol}"),
                &bb,
                "--mount=volume=shared,target=/vol",
                "--exec=/usr/bin/rkt-verifier",
                "--",
                "swap-loop",
                "/vol/sub",
                target,
            ]),
            "swapping\n",
        );
        let (mut inside, mut failed) = (0, 0);
        for _ in 0..25 {
            let o = ctx.rkt_output(&[
                "run",
                "--net=none",
                &format!("--volume={shared_vol}"),
                &format!("--volume=w,kind=host,source={}", w.display()),
                &bb,
                "--mount=volume=shared,target=/vol",
                "--mount=volume=w,target=/vol/sub",
                "--exec=/bin/sh",
                "--",
                "-c",
                "test -e /vol/sub/rkt-w-marker",
            ]);
            // 0: mounted at /vol/sub; 1: mounted on the dir while it was renamed away;
            // 254: it was the link, resolved inside the rootfs (`/` = the rootfs), and the
            // set-up failed there — all inside the pod
            match o.status.code() {
                Some(0) => inside += 1,
                Some(1 | 254) => failed += 1,
                c => panic!("victim pod: {c:?} {}", stderr(&o)),
            }
            assert!(
                !Path::new("/rkt-w-marker").exists(),
                "the volume was mounted over the host's /"
            );
            assert!(names(&escape).is_empty(), "mounted onto the host dir");
        }
        let _ = attacker.kill();
        let _ = attacker.wait();
        eprintln!("link to {target}: mounted at /vol/sub {inside} times, {failed} failed");
        // nothing mounted in the host's namespace where the links point (`/`, the escape
        // dir) or anywhere else in this test's dir outside its pods (other tests' mounts come
        // and go meanwhile, so only these places are looked at)
        let leaked: Vec<PathBuf> = host_mounts()
            .into_iter()
            .filter(|(id, _)| !before.contains(id))
            .map(|(_, m)| m)
            .filter(|m| {
                m == Path::new("/") || (m.starts_with(ctx.root()) && !m.starts_with(ctx.dir()))
            })
            .collect();
        assert!(leaked.is_empty(), "mounts outside the pods: {leaked:?}");
        assert!(names(&escape).is_empty());
        // (w itself may gain an `etc`: mounted over a victim's rootfs, it is that rootfs)
    }
}
