//! A directory tree written safely, entry by entry: every path is resolved inside the root by
//! walking it one component at a time with `openat(O_NOFOLLOW)`, so nothing can be written
//! through a symlink, above the root, or by a hardlink to a file outside it.
//!
//! Used for layer extraction (whiteouts become overlay markers) and for rendering a flattened
//! image (whiteouts delete what lower layers put there).

use crate::error::{Error, Result};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timestamps};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A directory.
    Dir,
    /// A regular file; its content is passed to [`Tree::apply`].
    File,
    /// A symlink with this target (never followed).
    Symlink(PathBuf),
    /// A hardlink to this path inside the tree.
    Hardlink(PathBuf),
    /// A character device.
    Char(u32, u32),
    /// A block device.
    Block(u32, u32),
    /// A fifo.
    Fifo,
    /// An OCI whiteout: the named path is deleted in this layer.
    Whiteout,
    /// An opaque directory: lower layers' contents of this directory are hidden.
    Opaque,
}

/// Ownership, permissions, times and extended attributes of an entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    /// Seconds since the epoch.
    pub mtime: i64,
    pub xattrs: Vec<(OsString, Vec<u8>)>,
}

/// How whiteouts are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Whiteouts {
    /// Overlay format: `.wh.X` → char device 0:0 `X`; opaque → `trusted.overlay.opaque=y`.
    Overlay,
    /// Flattened: whiteouts delete; opaque empties the directory.
    Apply,
}

/// The xattr overlayfs reads to mark a directory opaque.
pub(crate) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Split an archive path into safe components; `..` is refused, leading `/` and `.` dropped.
pub(crate) fn components(p: &Path) -> Result<Vec<OsString>> {
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(s) => out.push(s.to_os_string()),
            Component::ParentDir => return Err(unsafe_entry(p, "path contains \"..\"")),
            Component::Prefix(_) => return Err(unsafe_entry(p, "path has a prefix")),
        }
    }
    Ok(out)
}

fn unsafe_entry(p: &Path, reason: impl Into<String>) -> Error {
    Error::UnsafeEntry {
        path: p.display().to_string(),
        reason: reason.into(),
    }
}

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// A tree being written.
pub(crate) struct Tree {
    root_path: PathBuf,
    root: Rc<OwnedFd>,
    whiteouts: Whiteouts,
    /// Directories whose mtime is set at the end (children change it).
    dir_times: Vec<(Vec<OsString>, i64)>,
    /// Last parent directory opened, reused while entries stay in one directory.
    cache: Option<(Vec<OsString>, Rc<OwnedFd>)>,
}

impl Tree {
    /// Start writing into the existing directory `root`.
    pub(crate) fn open(root: &Path, whiteouts: Whiteouts) -> Result<Tree> {
        let fd = rfs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::Io {
            what: "opening tree root",
            path: root.to_path_buf(),
            source: errno(e),
        })?;
        Ok(Tree {
            root_path: root.to_path_buf(),
            root: Rc::new(fd),
            whiteouts,
            dir_times: Vec::new(),
            cache: None,
        })
    }

    fn io(&self, what: &'static str, comps: &[OsString]) -> impl FnOnce(Errno) -> Error {
        let mut path = self.root_path.clone();
        path.extend(comps);
        move |e| Error::Io {
            what,
            path,
            source: errno(e),
        }
    }

    /// Open the directory at `comps` (relative to the root) without following any symlink,
    /// creating missing directories (0755, root-owned) when `create` is set.
    fn walk(&mut self, comps: &[OsString], create: bool) -> Result<Rc<OwnedFd>> {
        if let Some((c, fd)) = &self.cache {
            if c.as_slice() == comps {
                return Ok(fd.clone());
            }
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut cur = self.root.clone();
        for (i, c) in comps.iter().enumerate() {
            let next = match rfs::openat(&cur, c.as_os_str(), flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => {
                    match rfs::mkdirat(&cur, c.as_os_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(self.io("creating directory", &comps[..=i])(e)),
                    }
                    rfs::openat(&cur, c.as_os_str(), flags, Mode::empty())
                        .map_err(self.io("opening directory", &comps[..=i]))?
                }
                Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                    let p: PathBuf = comps[..=i].iter().collect();
                    return Err(unsafe_entry(
                        &p,
                        "path goes through a symlink or a non-directory",
                    ));
                }
                Err(e) => return Err(self.io("opening directory", &comps[..=i])(e)),
            };
            cur = Rc::new(next);
        }
        self.cache = Some((comps.to_vec(), cur.clone()));
        Ok(cur)
    }

    /// Run `make` to create `name` in `dir`; if something is in the way, remove it and retry.
    fn create<T>(
        &mut self,
        dir: &OwnedFd,
        name: &OsStr,
        what: &'static str,
        comps: &[OsString],
        mut make: impl FnMut() -> Result<T, Errno>,
    ) -> Result<T> {
        match make() {
            Err(Errno::EXIST) => {
                self.clear(dir, name, false)?;
                make().map_err(self.io(what, comps))
            }
            r => r.map_err(self.io(what, comps)),
        }
    }

    /// Remove whatever is at `name` in `dir` (recursively), unless it is a directory and
    /// `keep_dir` is set. Returns whether a directory was kept.
    fn clear(&mut self, dir: &OwnedFd, name: &OsStr, keep_dir: bool) -> Result<bool> {
        match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(self.io("inspecting", &[name.to_os_string()])(e)),
            Ok(st) => {
                let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if is_dir && keep_dir {
                    return Ok(true);
                }
                self.cache = None;
                remove_all_at(dir, name).map_err(self.io("removing", &[name.to_os_string()]))?;
                Ok(false)
            }
        }
    }

    /// Write one entry. `content` is read for regular files only.
    pub(crate) fn apply(
        &mut self,
        path: &Path,
        kind: &Kind,
        meta: &Meta,
        content: &mut dyn Read,
    ) -> Result<()> {
        let comps = components(path)?;
        let Some((name, parent)) = comps.split_last() else {
            // The root itself: only a directory (or an opaque marker) makes sense.
            return match kind {
                Kind::Dir => {
                    let root = self.walk(&[], false)?;
                    self.set_fd_meta(&root, meta, &[])?;
                    self.dir_times.push((Vec::new(), meta.mtime));
                    Ok(())
                }
                Kind::Opaque if self.whiteouts == Whiteouts::Overlay => {
                    let root = self.walk(&[], false)?;
                    rfs::fsetxattr(&root, OPAQUE_XATTR, b"y", rfs::XattrFlags::empty())
                        .map_err(self.io("marking opaque", &[]))
                }
                Kind::Opaque => {
                    let root = self.walk(&[], false)?;
                    self.empty_dir(&root, &[])
                }
                _ => Err(unsafe_entry(path, "non-directory entry for the root")),
            };
        };
        let name = name.as_os_str();
        if name.as_bytes().starts_with(b".wh.") {
            return Err(unsafe_entry(path, "reserved whiteout name"));
        }
        let dir = self.walk(parent, true)?;
        match kind {
            Kind::Dir => {
                match rfs::mkdirat(&dir, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        if !self.clear(&dir, name, true)? {
                            rfs::mkdirat(&dir, name, Mode::from_raw_mode(0o700))
                                .map_err(self.io("creating directory", &comps))?;
                        }
                    }
                    Err(e) => return Err(self.io("creating directory", &comps)(e)),
                }
                let fd = rfs::openat(
                    &dir,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(self.io("opening directory", &comps))?;
                self.set_fd_meta(&fd, meta, &comps)?;
                self.dir_times.push((comps.clone(), meta.mtime));
            }
            Kind::File => {
                let fd = self.create(&dir, name, "creating file", &comps, || {
                    rfs::openat(
                        &*dir,
                        name,
                        OFlags::WRONLY
                            | OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o600),
                    )
                })?;
                let mut f = File::from(fd);
                copy(content, &mut f).map_err(|source| Error::Io {
                    what: "writing file",
                    path: self.root_path.join(path),
                    source,
                })?;
                let fd = OwnedFd::from(f);
                self.set_fd_meta(&fd, meta, &comps)?;
                rfs::futimens(&fd, &times(meta.mtime)).map_err(self.io("setting times", &comps))?;
            }
            Kind::Symlink(target) => {
                self.create(&dir, name, "creating symlink", &comps, || {
                    rfs::symlinkat(target.as_os_str(), &*dir, name)
                })?;
                self.set_at_meta(&dir, name, meta, &comps, true)?;
            }
            Kind::Hardlink(target) => {
                let tcomps = components(target)?;
                let Some((tname, tparent)) = tcomps.split_last() else {
                    return Err(unsafe_entry(path, "hardlink to the root"));
                };
                let tdir = self.walk(tparent, false).map_err(|e| match e {
                    Error::Io { .. } => unsafe_entry(
                        path,
                        format!("hardlink target {target:?} does not exist in the layer"),
                    ),
                    e => e,
                })?;
                if tparent == parent && tname == name {
                    return Ok(());
                }
                // The parent may have been dropped from the cache by walk(tparent).
                let dir = self.walk(parent, true)?;
                self.create(&dir, name, "creating hardlink", &comps, || {
                    rfs::linkat(&*tdir, tname.as_os_str(), &*dir, name, AtFlags::empty())
                })
                .map_err(|e| match e {
                    Error::Io { source, .. }
                        if matches!(
                            Errno::from_io_error(&source),
                            Some(Errno::NOENT) | Some(Errno::PERM)
                        ) =>
                    {
                        unsafe_entry(
                            path,
                            format!("hardlink target {target:?} is not a file in the layer"),
                        )
                    }
                    e => e,
                })?;
            }
            Kind::Char(ma, mi) | Kind::Block(ma, mi) => {
                let ft = if matches!(kind, Kind::Char(..)) {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                self.create(&dir, name, "creating device", &comps, || {
                    rfs::mknodat(
                        &*dir,
                        name,
                        ft,
                        Mode::from_raw_mode(0o600),
                        rfs::makedev(*ma, *mi),
                    )
                })?;
                self.set_at_meta(&dir, name, meta, &comps, false)?;
            }
            Kind::Fifo => {
                self.create(&dir, name, "creating fifo", &comps, || {
                    rfs::mknodat(&*dir, name, FileType::Fifo, Mode::from_raw_mode(0o600), 0)
                })?;
                self.set_at_meta(&dir, name, meta, &comps, false)?;
            }
            Kind::Whiteout => match self.whiteouts {
                Whiteouts::Overlay => {
                    self.create(&dir, name, "creating whiteout", &comps, || {
                        rfs::mknodat(&*dir, name, FileType::CharacterDevice, Mode::empty(), 0)
                    })?;
                }
                Whiteouts::Apply => {
                    self.clear(&dir, name, false)?;
                }
            },
            Kind::Opaque => {
                let fd = self.walk(&comps, true)?;
                match self.whiteouts {
                    Whiteouts::Overlay => {
                        rfs::fsetxattr(&fd, OPAQUE_XATTR, b"y", rfs::XattrFlags::empty())
                            .map_err(self.io("marking opaque", &comps))?
                    }
                    Whiteouts::Apply => self.empty_dir(&fd, &comps)?,
                }
            }
        }
        Ok(())
    }

    fn empty_dir(&mut self, fd: &OwnedFd, comps: &[OsString]) -> Result<()> {
        self.cache = None;
        let names = list_dir(fd).map_err(self.io("listing", comps))?;
        for n in names {
            remove_all_at(fd, &n).map_err(self.io("removing", comps))?;
        }
        Ok(())
    }

    fn set_fd_meta(&self, fd: &OwnedFd, meta: &Meta, comps: &[OsString]) -> Result<()> {
        rfs::fchown(
            fd,
            Some(rustix::process::Uid::from_raw(meta.uid)),
            Some(rustix::process::Gid::from_raw(meta.gid)),
        )
        .map_err(self.io("changing owner of", comps))?;
        rfs::fchmod(fd, Mode::from_raw_mode(meta.mode & 0o7777))
            .map_err(self.io("changing mode of", comps))?;
        for (k, v) in &meta.xattrs {
            rfs::fsetxattr(fd, k.as_os_str(), v, rfs::XattrFlags::empty())
                .map_err(self.io("setting xattr on", comps))?;
        }
        Ok(())
    }

    fn set_at_meta(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        meta: &Meta,
        comps: &[OsString],
        symlink: bool,
    ) -> Result<()> {
        rfs::chownat(
            dir,
            name,
            Some(rustix::process::Uid::from_raw(meta.uid)),
            Some(rustix::process::Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(self.io("changing owner of", comps))?;
        if !symlink {
            // The node was just created by us and is not a symlink: chmodat cannot be redirected.
            rfs::chmodat(
                dir,
                name,
                Mode::from_raw_mode(meta.mode & 0o7777),
                AtFlags::empty(),
            )
            .map_err(self.io("changing mode of", comps))?;
            if !meta.xattrs.is_empty() {
                let p = proc_path(dir, name);
                for (k, v) in &meta.xattrs {
                    rfs::lsetxattr(&p, k.as_os_str(), v, rfs::XattrFlags::empty())
                        .map_err(self.io("setting xattr on", comps))?;
                }
            }
        }
        rfs::utimensat(dir, name, &times(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(self.io("setting times", comps))?;
        Ok(())
    }

    /// Set directory mtimes (deepest first) and close the tree.
    pub(crate) fn finish(mut self) -> Result<()> {
        self.cache = None;
        let mut dirs = std::mem::take(&mut self.dir_times);
        dirs.sort_by_key(|(c, _)| std::cmp::Reverse(c.len()));
        for (comps, mtime) in dirs {
            let fd = match self.walk(&comps, false) {
                Ok(fd) => fd,
                // Removed later in the same layer: nothing to do.
                Err(_) => continue,
            };
            rfs::futimens(&fd, &times(mtime)).map_err(self.io("setting times", &comps))?;
        }
        Ok(())
    }
}

fn times(mtime: i64) -> Timestamps {
    let t = rfs::Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn proc_path(dir: &OwnedFd, name: &OsStr) -> PathBuf {
    use std::os::fd::AsRawFd;
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd()));
    p.push(name);
    p
}

fn copy(r: &mut dyn Read, w: &mut File) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..k])?;
        n += k as u64;
    }
}

/// Names in a directory (without `.` and `..`).
pub(crate) fn list_dir(fd: &OwnedFd) -> Result<Vec<OsString>, Errno> {
    let dup = rfs::openat(
        fd,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut dir = rfs::Dir::new(dup)?;
    let mut out = Vec::new();
    while let Some(ent) = dir.read() {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    Ok(out)
}

/// Remove `name` in `dir`, recursively, never following symlinks.
pub(crate) fn remove_all_at(dir: &OwnedFd, name: &OsStr) -> Result<(), Errno> {
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    let sub = rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for n in list_dir(&sub)? {
        remove_all_at(&sub, &n)?;
    }
    drop(sub);
    match rfs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Remove a path recursively (symlink-safe); missing is fine.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(());
    };
    let dir = match rfs::open(
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(d) => d,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => {
            return Err(Error::Io {
                what: "opening",
                path: parent.to_path_buf(),
                source: errno(e),
            })
        }
    };
    remove_all_at(&dir, name).map_err(|e| Error::Io {
        what: "removing",
        path: path.to_path_buf(),
        source: errno(e),
    })
}
