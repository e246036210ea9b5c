//! `image extract` / `image render`: an image's layers flattened into a directory, as a pod
//! sees its root filesystem (whiteouts applied, opaque directories emptied).

use crate::error::{io_err, Error, Result};
use crate::store::{ImageId, Store};
use crate::tree::{Kind, Meta, Tree, Whiteouts, OPAQUE_XATTR};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Options of [`Store::render`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RenderOptions {
    /// Write the root filesystem directly into the target (no `manifest`, no `rootfs/`).
    pub rootfs_only: bool,
    /// Replace an existing non-empty target.
    pub overwrite: bool,
}

fn major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)) as u32
}
fn minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)) as u32
}

fn xattrs_of(p: &Path) -> Vec<(OsString, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(names) = xattr::list(p) {
        for n in names {
            if n.to_string_lossy().starts_with("trusted.overlay.") {
                continue;
            }
            if let Ok(Some(v)) = xattr::get(p, &n) {
                out.push((n, v));
            }
        }
    }
    out
}

/// Apply one extracted layer directory (overlay format) onto `tree`.
fn apply_layer(tree: &mut Tree, layer: &Path) -> Result<()> {
    // (dev, ino) → first path, to recreate hardlinks inside the layer.
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = layer.join(&rel);
        let md = std::fs::symlink_metadata(&abs).map_err(io_err("reading layer", &abs))?;
        let ft = md.file_type();
        let meta = Meta {
            uid: md.uid(),
            gid: md.gid(),
            mode: md.mode() & 0o7777,
            mtime: md.mtime(),
            xattrs: if ft.is_symlink() {
                Vec::new()
            } else {
                xattrs_of(&abs)
            },
        };
        let target: &Path = if rel.as_os_str().is_empty() {
            Path::new("/")
        } else {
            &rel
        };
        if ft.is_dir() {
            if xattr::get(&abs, OPAQUE_XATTR).ok().flatten().as_deref() == Some(b"y") {
                tree.apply(target, &Kind::Opaque, &meta, &mut std::io::empty())?;
            }
            tree.apply(target, &Kind::Dir, &meta, &mut std::io::empty())?;
            let mut names: Vec<OsString> = std::fs::read_dir(&abs)
                .map_err(io_err("reading layer", &abs))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<std::io::Result<_>>()
                .map_err(io_err("reading layer", &abs))?;
            names.sort();
            for n in names.into_iter().rev() {
                stack.push(rel.join(n));
            }
            continue;
        }
        if md.nlink() > 1 {
            if let Some(first) = links.get(&(md.dev(), md.ino())) {
                tree.apply(
                    target,
                    &Kind::Hardlink(first.clone()),
                    &meta,
                    &mut std::io::empty(),
                )?;
                continue;
            }
            links.insert((md.dev(), md.ino()), rel.clone());
        }
        if ft.is_file() {
            let mut f = File::open(&abs).map_err(io_err("reading layer", &abs))?;
            tree.apply(target, &Kind::File, &meta, &mut f)?;
        } else if ft.is_symlink() {
            let t = std::fs::read_link(&abs).map_err(io_err("reading layer", &abs))?;
            tree.apply(target, &Kind::Symlink(t), &meta, &mut std::io::empty())?;
        } else if ft.is_char_device() && md.rdev() == 0 {
            tree.apply(target, &Kind::Whiteout, &meta, &mut std::io::empty())?;
        } else if ft.is_char_device() {
            tree.apply(
                target,
                &Kind::Char(major(md.rdev()), minor(md.rdev())),
                &meta,
                &mut std::io::empty(),
            )?;
        } else if ft.is_block_device() {
            tree.apply(
                target,
                &Kind::Block(major(md.rdev()), minor(md.rdev())),
                &meta,
                &mut std::io::empty(),
            )?;
        } else if ft.is_fifo() {
            tree.apply(target, &Kind::Fifo, &meta, &mut std::io::empty())?;
        }
        // Sockets are not part of images.
    }
    Ok(())
}

impl Store {
    /// Flatten an image into `dir`: `dir/manifest` + `dir/rootfs/`, or the root filesystem
    /// directly with `rootfs_only`.
    pub fn render(&self, id: &ImageId, dir: &Path, opts: RenderOptions) -> Result<()> {
        let layers = self.layer_dirs(id)?;
        if dir.exists() {
            let empty = std::fs::read_dir(dir)
                .map_err(io_err("reading", dir))?
                .next()
                .is_none();
            if !empty {
                if !opts.overwrite {
                    return Err(Error::Invalid {
                        what: format!("target {}", dir.display()),
                        reason: "directory is not empty (use --overwrite)".into(),
                    });
                }
                crate::tree::remove_tree(dir)?;
            }
        }
        std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        let rootfs = if opts.rootfs_only {
            dir.to_path_buf()
        } else {
            let m = self.manifest_bytes(id)?;
            let mp = dir.join("manifest");
            std::fs::write(&mp, m).map_err(io_err("writing", &mp))?;
            let r = dir.join("rootfs");
            std::fs::create_dir_all(&r).map_err(io_err("creating", &r))?;
            r
        };
        let mut tree = Tree::open(&rootfs, Whiteouts::Apply)?;
        // Bottom layer first.
        for l in layers.iter().rev() {
            apply_layer(&mut tree, l)?;
        }
        tree.finish()
    }
}
