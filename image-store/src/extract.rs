//! Safe extraction of a (decompressed) layer tar into a directory in overlay format.

use crate::error::{Error, Result};
use crate::tree::{Kind, Meta, Tree, Whiteouts};
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use tar::EntryType;

/// Options for [`extract`].
#[derive(Debug, Clone, Default)]
pub(crate) struct ExtractOptions {
    /// Only entries under this prefix are extracted, with the prefix stripped (appc `rootfs/`).
    pub strip_prefix: Option<PathBuf>,
    /// A regular file read into [`ExtractStats::captured`] instead of being written (appc
    /// `manifest`); matched before `strip_prefix` applies.
    pub capture: Option<PathBuf>,
}

/// What happened during an extraction.
#[derive(Debug, Default, Clone)]
pub(crate) struct ExtractStats {
    /// Content of the [`ExtractOptions::capture`] file, if found.
    pub captured: Option<Vec<u8>>,
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// Entries written.
    pub entries: u64,
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::UnsafeEntry {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Read a tar stream and write it into `root` (an existing, empty directory) safely.
/// Reads `r` only up to the end-of-archive marker; the caller drains the rest.
pub(crate) fn extract<R: Read>(r: R, root: &Path, opts: &ExtractOptions) -> Result<ExtractStats> {
    let mut tree = Tree::open(root, Whiteouts::Overlay)?;
    let mut ar = tar::Archive::new(r);
    let mut stats = ExtractStats::default();
    let entries = ar.entries().map_err(tar_err(root))?;
    for entry in entries {
        let mut entry = entry.map_err(tar_err(root))?;
        let raw_path = entry.path().map_err(tar_err(root))?.into_owned();
        if let Some(c) = &opts.capture {
            let norm: PathBuf = crate::tree::components(&raw_path)?.into_iter().collect();
            if norm == *c && entry.header().entry_type().is_file() {
                // an ACI's manifest: its size is limited like an image config's
                crate::manifest::check_config_size(entry.size())?;
                let mut v = Vec::new();
                entry.read_to_end(&mut v).map_err(tar_err(root))?;
                stats.captured = Some(v);
                continue;
            }
        }
        let path = match &opts.strip_prefix {
            None => raw_path.clone(),
            Some(prefix) => {
                let norm: PathBuf = crate::tree::components(&raw_path)?.into_iter().collect();
                match norm.strip_prefix(prefix) {
                    Ok(rest) => rest.to_path_buf(),
                    Err(_) => continue,
                }
            }
        };
        let hdr = entry.header();
        let et = hdr.entry_type();
        let mut meta = Meta {
            uid: hdr.uid().map_err(tar_err(root))? as u32,
            gid: hdr.gid().map_err(tar_err(root))? as u32,
            mode: hdr.mode().map_err(tar_err(root))?,
            mtime: hdr.mtime().map_err(tar_err(root))? as i64,
            xattrs: Vec::new(),
        };
        let link = entry
            .link_name()
            .map_err(tar_err(root))?
            .map(|l| l.into_owned());
        let dev = (
            hdr.device_major().ok().flatten().unwrap_or(0),
            hdr.device_minor().ok().flatten().unwrap_or(0),
        );
        if let Some(pax) = entry.pax_extensions().map_err(tar_err(root))? {
            for ext in pax {
                let ext = ext.map_err(tar_err(root))?;
                if let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    // Overlay's own attributes are never taken from an image.
                    if name.starts_with(b"trusted.overlay.") {
                        continue;
                    }
                    meta.xattrs.push((
                        OsString::from_vec(name.to_vec()),
                        ext.value_bytes().to_vec(),
                    ));
                }
            }
        }
        // Whiteouts.
        let fname = path.file_name().map(|n| n.as_bytes().to_vec());
        if let Some(n) = fname.as_deref().filter(|n| n.starts_with(b".wh.")) {
            let parent = path.parent().unwrap_or(Path::new(""));
            if n == b".wh..wh..opq" {
                tree.apply(parent, &Kind::Opaque, &meta, &mut io::empty())?;
            } else if n.starts_with(b".wh..wh.") {
                tracing::debug!(path = %path.display(), "ignoring aufs metadata entry");
            } else {
                let target = &n[4..];
                if target == b"." || target == b".." {
                    return Err(bad(&path, "whiteout of \".\" or \"..\""));
                }
                let p = parent.join(std::ffi::OsStr::from_bytes(target));
                tree.apply(&p, &Kind::Whiteout, &meta, &mut io::empty())?;
            }
            stats.entries += 1;
            continue;
        }
        let kind = match et {
            EntryType::Regular | EntryType::Continuous => Kind::File,
            EntryType::Directory => Kind::Dir,
            EntryType::Symlink => {
                Kind::Symlink(link.ok_or_else(|| bad(&path, "symlink without target"))?)
            }
            EntryType::Link => {
                let target = link.ok_or_else(|| bad(&path, "hardlink without target"))?;
                let target = match &opts.strip_prefix {
                    None => target,
                    Some(prefix) => {
                        let norm: PathBuf = crate::tree::components(&target)?.into_iter().collect();
                        norm.strip_prefix(prefix)
                            .map_err(|_| bad(&path, "hardlink target outside the root filesystem"))?
                            .to_path_buf()
                    }
                };
                Kind::Hardlink(target)
            }
            EntryType::Char => Kind::Char(dev.0, dev.1),
            EntryType::Block => Kind::Block(dev.0, dev.1),
            EntryType::Fifo => Kind::Fifo,
            EntryType::GNUSparse => return Err(bad(&path, "sparse files are not supported")),
            other => {
                tracing::debug!(path = %path.display(), ?other, "skipping tar entry type");
                continue;
            }
        };
        if kind == Kind::File {
            stats.bytes += entry.size();
        }
        tree.apply(&path, &kind, &meta, &mut entry)?;
        stats.entries += 1;
    }
    tree.finish()?;
    Ok(stats)
}

fn tar_err(root: &Path) -> impl Fn(io::Error) -> Error + '_ {
    move |e| Error::Layer {
        digest: root.display().to_string(),
        reason: format!("reading tar: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    use tar::{Builder, Header};

    fn hdr(path: &str, t: EntryType, mode: u32, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(t);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000);
        // set_path refuses "..", so write the raw name.
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        h
    }

    fn file(b: &mut Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let h = hdr(path, EntryType::Regular, 0o644, data.len() as u64);
        b.append(&h, data).unwrap();
    }
    fn dir(b: &mut Builder<Vec<u8>>, path: &str) {
        b.append(&hdr(path, EntryType::Directory, 0o755, 0), &[][..])
            .unwrap();
    }
    fn link(b: &mut Builder<Vec<u8>>, path: &str, t: EntryType, target: &str) {
        let mut h = hdr(path, t, 0o777, 0);
        h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
    }

    fn run(f: impl FnOnce(&mut Builder<Vec<u8>>)) -> (tempfile::TempDir, Result<ExtractStats>) {
        let mut b = Builder::new(Vec::new());
        f(&mut b);
        let data = b.into_inner().unwrap();
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let r = extract(&data[..], &root, &ExtractOptions::default());
        (outer, r)
    }

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    #[test]
    fn plain_layer() {
        let (d, r) = run(|b| {
            dir(b, "etc/");
            file(b, "etc/hostname", b"box\n");
            link(b, "etc/alias", EntryType::Symlink, "/etc/hostname");
            link(b, "etc/hard", EntryType::Link, "etc/hostname");
            let mut h = hdr("bin/su", EntryType::Regular, 0o4755, 2);
            h.set_cksum();
            b.append(&h, &b"#!"[..]).unwrap();
            file(b, "deep/er/x", b"implicit parents");
        });
        r.unwrap();
        let root = d.path().join("root");
        assert_eq!(std::fs::read(root.join("etc/hostname")).unwrap(), b"box\n");
        assert_eq!(
            std::fs::read_link(root.join("etc/alias")).unwrap(),
            Path::new("/etc/hostname")
        );
        let m1 = std::fs::metadata(root.join("etc/hostname")).unwrap();
        let m2 = std::fs::metadata(root.join("etc/hard")).unwrap();
        assert_eq!(m1.ino(), m2.ino());
        assert_eq!(m1.mtime(), 1_000_000);
        assert_eq!(
            std::fs::metadata(root.join("etc")).unwrap().mtime(),
            1_000_000
        );
        let su = std::fs::metadata(root.join("bin/su")).unwrap();
        assert_eq!(su.permissions().mode() & 0o7777, 0o4755);
        assert!(root.join("deep/er/x").is_file());
    }

    #[test]
    fn later_entries_replace_earlier_ones() {
        let (d, r) = run(|b| {
            file(b, "a", b"file");
            dir(b, "a/");
            file(b, "a/x", b"x");
            dir(b, "b/");
            file(b, "b/old", b"o");
            file(b, "b", b"now a file");
            link(b, "c", EntryType::Symlink, "one");
            link(b, "c", EntryType::Symlink, "two");
            file(b, "d", b"1");
            file(b, "d", b"2");
            link(b, "e", EntryType::Link, "d");
            link(b, "e", EntryType::Link, "a/x");
        });
        r.unwrap();
        let root = d.path().join("root");
        assert!(root.join("a/x").is_file());
        assert_eq!(std::fs::read(root.join("b")).unwrap(), b"now a file");
        assert_eq!(
            std::fs::read_link(root.join("c")).unwrap(),
            Path::new("two")
        );
        assert_eq!(std::fs::read(root.join("d")).unwrap(), b"2");
        assert_eq!(std::fs::read(root.join("e")).unwrap(), b"x");
    }

    #[test]
    fn dotdot_entry_is_refused() {
        let (d, r) = run(|b| file(b, "../escaped", b"x"));
        let e = r.unwrap_err().to_string();
        assert!(e.contains("\"..\""), "{e}");
        assert!(!d.path().join("escaped").exists());
    }

    #[test]
    fn write_through_symlink_is_refused() {
        let (d, r) = run(|b| {
            link(b, "evil", EntryType::Symlink, "..");
            file(b, "evil/escaped", b"x");
        });
        let e = r.unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
        assert!(!d.path().join("escaped").exists());
    }

    #[test]
    fn absolute_symlink_dir_is_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().to_str().unwrap().to_string();
        let (_d, r) = run(|b| {
            link(b, "abs", EntryType::Symlink, &target);
            file(b, "abs/planted", b"x");
        });
        assert!(r.is_err());
        assert!(!outside.path().join("planted").exists());
    }

    #[test]
    fn hardlink_outside_is_refused() {
        let (d, r) = run(|b| link(b, "shadow", EntryType::Link, "/etc/shadow"));
        let e = r.unwrap_err().to_string();
        assert!(e.contains("hardlink target"), "{e}");
        assert!(!d.path().join("root/shadow").exists());
        let (_d, r) = run(|b| link(b, "shadow", EntryType::Link, "../../../../etc/shadow"));
        assert!(r.is_err());
    }

    #[test]
    fn hardlink_through_symlink_is_refused() {
        let (_d, r) = run(|b| {
            link(b, "etc", EntryType::Symlink, "/etc");
            link(b, "shadow", EntryType::Link, "etc/shadow");
        });
        assert!(r.unwrap_err().to_string().contains("symlink"));
    }

    #[test]
    fn whiteouts_are_converted() {
        if !is_root() {
            return; // mknod and trusted.* xattrs need root
        }
        let (d, r) = run(|b| {
            dir(b, "data/");
            file(b, "data/.wh.gone", b"");
            dir(b, "opaque/");
            file(b, "opaque/.wh..wh..opq", b"");
            file(b, "opaque/new", b"n");
        });
        r.unwrap();
        let root = d.path().join("root");
        let m = std::fs::symlink_metadata(root.join("data/gone")).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!(m.rdev(), 0);
        assert!(!root.join("data/.wh.gone").exists());
        assert_eq!(
            xattr::get(root.join("opaque"), crate::tree::OPAQUE_XATTR).unwrap(),
            Some(b"y".to_vec())
        );
        assert!(root.join("opaque/new").exists());
    }

    #[test]
    fn strip_prefix_for_aci() {
        let mut b = Builder::new(Vec::new());
        file(&mut b, "manifest", b"{}");
        dir(&mut b, "rootfs/");
        file(&mut b, "rootfs/hello", b"hi");
        let data = b.into_inner().unwrap();
        let d = tempfile::tempdir().unwrap();
        let opts = ExtractOptions {
            strip_prefix: Some("rootfs".into()),
            capture: Some("manifest".into()),
        };
        let st = extract(&data[..], d.path(), &opts).unwrap();
        assert_eq!(st.captured.as_deref(), Some(&b"{}"[..]));
        assert!(d.path().join("hello").exists());
        assert!(!d.path().join("manifest").exists());
    }
}
