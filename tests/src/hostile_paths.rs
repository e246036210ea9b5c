//! Hostile images for the path-resolution tests (`tests/tests/hardening_paths.rs`): busybox
//! plus a layer whose links try to lead rkt out of the app's root filesystem — chains longer
//! than the 40 links a resolver follows, absolute links naming host paths, `..` links — and
//! images whose `User` is an id rkt must refuse.
//!
//! Host paths the links name are the test's own (under its `TestCtx`), so every image is built
//! per test into its own OCI layout.

use crate::images::busybox_entries;
use crate::tarball::{tar_bytes, write_image, Entry, ImageSpec, OciImage};
use std::path::Path;
use std::sync::OnceLock;

/// The busybox layer (the same bytes as [`crate::images::busybox`]'s), made once per process.
pub fn base_layer() -> &'static [u8] {
    static L: OnceLock<Vec<u8>> = OnceLock::new();
    L.get_or_init(|| tar_bytes(&busybox_entries()))
}

/// Symlinks `{dir}/{prefix}0 → {prefix}1 → … → {prefix}{n-1} → end`, each relative to the
/// previous one's dir; `{dir}/{prefix}0` is the head. `dir` without leading or trailing `/`
/// (empty for the root).
pub fn chain(dir: &str, prefix: &str, n: usize, end: &str) -> Vec<Entry> {
    let at = |i: usize| {
        if dir.is_empty() {
            format!("{prefix}{i}")
        } else {
            format!("{dir}/{prefix}{i}")
        }
    };
    (0..n)
        .map(|i| {
            let next = if i + 1 == n {
                end.to_string()
            } else {
                format!("{prefix}{}", i + 1)
            };
            Entry::symlink(&at(i), &next)
        })
        .collect()
}

/// An image of busybox plus a layer of `entries` (written in the order given, so parents go
/// first), with `spec`, into the layout `layout` under `tag`.
pub fn image(layout: &Path, tag: &str, entries: &[Entry], spec: ImageSpec) -> OciImage {
    write_image(
        layout,
        tag,
        &[base_layer().to_vec(), tar_bytes(entries)],
        &spec,
    )
}

/// `/etc` replaced by a chain of 50 links whose end is the absolute `host_dir`: a resolver that
/// gives up after 40 hops and lets the host kernel follow the rest ends on the host, where the
/// `/etc/mtab` link (and anything else under /etc) would be made.
pub fn etc_chain_out(layout: &Path, host_dir: &Path) -> OciImage {
    let mut e = vec![Entry::symlink("etc", "/lnk/e0"), Entry::dir("lnk")];
    e.extend(chain(
        "lnk",
        "e",
        50,
        host_dir.to_str().expect("utf-8 path"),
    ));
    image(layout, "etc-chain", &e, ImageSpec::default())
}

/// `/etc/mtab` itself a chain of 50 links ending at the absolute host path `host_file`.
pub fn mtab_chain_out(layout: &Path, host_file: &Path) -> OciImage {
    let mut e = vec![Entry::dir("etc"), Entry::symlink("etc/mtab", "m0")];
    e.extend(chain(
        "etc",
        "m",
        50,
        host_file.to_str().expect("utf-8 path"),
    ));
    image(layout, "mtab-chain", &e, ImageSpec::default())
}

/// `/etc/passwd` → `/p/passwd` and `/etc/group` → `/p/group`, where `/p` is a chain of 45 links
/// ending at the absolute `host_dir` (which holds the host's passwd and group files the image
/// does not have). `user` is the image's `User`.
pub fn passwd_chain_out(layout: &Path, host_dir: &Path, user: Option<&str>) -> OciImage {
    let mut e = vec![
        Entry::dir("etc"),
        Entry::symlink("etc/passwd", "/p/passwd"),
        Entry::symlink("etc/group", "/p/group"),
        Entry::symlink("p", "c0"),
    ];
    e.extend(chain("", "c", 45, host_dir.to_str().expect("utf-8 path")));
    image(
        layout,
        "passwd-chain",
        &e,
        ImageSpec {
            user: user.map(str::to_string),
            ..ImageSpec::default()
        },
    )
}

/// An image `VOLUME /data` where `/data` is a chain of `hops` links ending at `end`, plus the
/// dir `/srv/real` holding `seed`, a link `etc-link → /etc` and a subdir `sub/deep` — what a
/// chain that stays inside the image (`end` = `/srv/real`) must populate the volume with.
pub fn volume_chain(layout: &Path, tag: &str, hops: usize, end: &str) -> OciImage {
    let mut e = vec![
        Entry::dir("srv"),
        Entry::dir("srv/real").mode(0o750).owner(1000, 1000),
        Entry::file("srv/real/seed", "image-seed\n"),
        Entry::symlink("srv/real/etc-link", "/etc"),
        Entry::dir("srv/real/sub"),
        Entry::file("srv/real/sub/deep", "deep\n").mode(0o600),
        Entry::dir("lnk"),
        Entry::symlink("data", "/lnk/v0"),
    ];
    e.extend(chain("lnk", "v", hops, end));
    image(
        layout,
        tag,
        &e,
        ImageSpec {
            volumes: vec!["/data".into()],
            ..ImageSpec::default()
        },
    )
}

/// `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` as links out of the root: absolute to
/// `host_dir/{hostname,resolv.conf}` and `../`-climbing to `host_dir/hosts`. With
/// `with_targets` the image also has those paths itself (inside), so the links resolve there.
pub fn etc_files_out(layout: &Path, host_dir: &Path, with_targets: bool) -> OciImage {
    let h = host_dir
        .to_str()
        .expect("utf-8 path")
        .trim_start_matches('/');
    let up = "../".repeat(12);
    let mut e = vec![
        Entry::dir("etc"),
        Entry::symlink("etc/hostname", &format!("/{h}/hostname")),
        Entry::symlink("etc/hosts", &format!("{up}{h}/hosts")),
        Entry::symlink("etc/resolv.conf", &format!("/{h}/resolv.conf")),
    ];
    if with_targets {
        let mut p = String::new();
        for part in h.split('/') {
            p = if p.is_empty() {
                part.to_string()
            } else {
                format!("{p}/{part}")
            };
            e.push(Entry::dir(&p));
        }
        for f in ["hostname", "hosts", "resolv.conf"] {
            e.push(Entry::file(&format!("{h}/{f}"), "image-own\n"));
        }
    }
    let tag = if with_targets {
        "etc-files-in"
    } else {
        "etc-files-out"
    };
    image(layout, tag, &e, ImageSpec::default())
}

/// busybox whose config `User` is `user` and whose /etc/passwd also has `big` (uid 2^32-1)
/// and `biggid` (gid 2^32-1).
pub fn with_user(layout: &Path, tag: &str, user: &str) -> OciImage {
    let e = vec![
        Entry::dir("etc"),
        Entry::file(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nbig:x:4294967295:0::/:/bin/sh\n\
             biggid:x:7:4294967295::/:/bin/sh\n",
        ),
        Entry::file("etc/group", "root:x:0:\nbig:x:4294967295:\n"),
    ];
    image(
        layout,
        tag,
        &e,
        ImageSpec {
            user: Some(user.to_string()),
            ..ImageSpec::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tarball::Kind;

    #[test]
    fn chains_link_each_to_the_next() {
        let c = chain("lnk", "e", 3, "/end");
        let got: Vec<(String, String)> = c
            .iter()
            .map(|e| match &e.kind {
                Kind::Symlink(t) => (e.path.clone(), t.clone()),
                _ => panic!("not a link"),
            })
            .collect();
        assert_eq!(
            got,
            [
                ("lnk/e0".to_string(), "e1".to_string()),
                ("lnk/e1".into(), "e2".into()),
                ("lnk/e2".into(), "/end".into())
            ]
        );
        assert_eq!(chain("", "c", 1, "x")[0].path, "c0");
    }
}
