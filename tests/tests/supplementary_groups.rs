//! An app's supplementary groups: those the image's /etc/group gives its user (`--user=NAME`,
//! or a uid the image's /etc/passwd names), plus `--supplementary-gids`, each once and without
//! the primary group, as docker, runc and the kubelet's default `Merge` policy give them. Read
//! from the app's own `/proc/self/status`, written to a host volume.

use rkt_tests::tarball::{tar_bytes, write_image, Entry, ImageSpec};
use rkt_tests::{images, stderr, TestCtx};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

/// busybox whose /etc/group lists `user` (uid 1000) in `audio` (29) and `staff` (50), and other
/// users in other groups. A `--user` without `--group` has group 0 (as docker2aci).
fn image() -> String {
    static IMG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IMG.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("rkt-groups-img-")
            .tempdir_in(images::scratch())
            .unwrap()
            .keep();
        let mut entries: Vec<Entry> = images::busybox_entries()
            .into_iter()
            .filter(|e| e.path != "etc/group")
            .collect();
        entries.push(Entry::file(
            "etc/group",
            "root:x:0:\nwheel:x:10:root\naudio:x:29:nobody,user\nstaff:x:50:user\n\
             video:x:44:nobody\nuser:x:1000:\nnogroup:x:65534:\n",
        ));
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        write_image(
            &dir.join("oci"),
            "groups",
            &[tar_bytes(&entries)],
            &ImageSpec::default(),
        )
        .oci_ref()
    })
    .clone()
}

/// Run the image with `flags`; the app's `Groups:` (exit code 0 asserted).
fn groups_of(ctx: &TestCtx, name: &str, flags: &[&str]) -> BTreeSet<u32> {
    let out = ctx.root().join(format!("out-{name}"));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let vol = format!("out,kind=host,source={}", out.display());
    let img = image();
    let mut args = vec!["run", "--net=host", "--volume", &vol, &img];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[
        "--mount=volume=out,target=/out",
        "--exec=/bin/sh",
        "--",
        "-c",
        "cat /proc/self/status > /out/status",
    ]);
    let o = ctx.rkt_output(&args);
    assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
    let status = std::fs::read_to_string(out.join("status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .unwrap_or_else(|| panic!("{name}: no Groups: line in {status}"));
    line.split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect()
}

fn set(g: &[u32]) -> BTreeSet<u32> {
    g.iter().copied().collect()
}

#[test]
fn a_named_user_gets_its_groups_from_the_image() {
    let ctx = TestCtx::new();
    assert_eq!(groups_of(&ctx, "name", &["--user=user"]), set(&[29, 50]));
    // a uid the image's /etc/passwd names is that user
    assert_eq!(groups_of(&ctx, "uid", &["--user=1000"]), set(&[29, 50]));
    // another primary group: the image's groups stay, the primary is not repeated
    assert_eq!(
        groups_of(&ctx, "group", &["--user=user", "--group=50"]),
        set(&[29])
    );
    // a uid the image does not name has no image groups
    assert_eq!(groups_of(&ctx, "unnamed", &["--user=4242"]), set(&[]));
}

#[test]
fn supplementary_gids_are_added_to_the_image_groups() {
    let ctx = TestCtx::new();
    // merged, each once, without the primary gid (0)
    assert_eq!(
        groups_of(
            &ctx,
            "merge",
            &["--user=user", "--supplementary-gids=7,50,0,1000"]
        ),
        set(&[7, 29, 50, 1000])
    );
    assert_eq!(
        groups_of(
            &ctx,
            "merge-primary",
            &[
                "--user=user",
                "--group=1000",
                "--supplementary-gids=1000,29"
            ]
        ),
        set(&[29, 50])
    );
    // a user in no group of the image gets only the flag's
    assert_eq!(
        groups_of(
            &ctx,
            "flag-only",
            &["--user=4242", "--group=4242", "--supplementary-gids=5,6"]
        ),
        set(&[5, 6])
    );
}
