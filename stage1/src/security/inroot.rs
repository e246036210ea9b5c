//! File operations inside a root filesystem that an image controls (an app's rootfs).
//!
//! Everything goes through an `O_PATH` fd of the root and `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)`: the kernel resolves each path as if the root were
//! `/` (absolute links and `..` stay inside), refuses `/proc/*/root`-style magic links and any
//! crossing of a mount point, and gives up with `ELOOP` after 40 links — nothing is left for a
//! path string to follow on the host. Creating a file, dir or link resolves the parent that
//! way and makes the last component relative to the parent's fd, never following it.
//!
//! Callers decide per path what a failure means: [`is_absent`] tells "not there" (`ENOENT`,
//! `ENOTDIR`) from a refusal (`ELOOP`, `EXDEV`, …), which must fail closed.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use crate::Error;

/// An operation on a path inside an image's root filesystem failed or was refused.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path:?} in root filesystem {}: {}", root.display(), why(*errno))]
pub struct InRootError {
    /// The operation.
    pub what: String,
    /// The path inside the root.
    pub path: String,
    /// The root on the host.
    pub root: PathBuf,
    /// The cause.
    pub errno: Errno,
}

/// What `e` means for a path inside a root, in words.
fn why(e: Errno) -> String {
    if e == Errno::LOOP {
        "too many levels of symbolic links, or a link through /proc (refused)".to_string()
    } else if e == Errno::XDEV {
        "the path crosses a mount point (refused)".to_string()
    } else if e == Errno::NOSYS {
        "openat2 is not supported by this kernel (Linux 5.6 or later is needed)".to_string()
    } else {
        std::io::Error::from(e).to_string()
    }
}

/// How often an `openat2` interrupted by a concurrent rename or mount (`EAGAIN`) is retried.
const EAGAIN_RETRIES: usize = 16;

/// Largest file [`Root::read_file`] reads (an image's /etc/passwd or /etc/group).
pub const MAX_READ: u64 = 16 << 20;

/// A root filesystem opened as an `O_PATH` fd.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// Whether an error only means "there is nothing at that path".
pub fn is_absent(e: Errno) -> bool {
    e == Errno::NOENT || e == Errno::NOTDIR
}

/// `path` (absolute as seen inside the root) relative to the root fd; `.` for the root.
fn rel(path: &str) -> &str {
    let r = path.trim_start_matches('/');
    if r.is_empty() {
        "."
    } else {
        r
    }
}

/// Split `path` into its parent (inside the root) and last component; None for the root itself
/// or a path ending in `.`/`..` (no name to create).
fn split(path: &str) -> Option<(&str, &str)> {
    let p = path.trim_end_matches('/');
    let (parent, name) = match p.rfind('/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => ("", p),
    };
    if name.is_empty() || name == "." || name == ".." {
        return None;
    }
    Some((if parent.is_empty() { "/" } else { parent }, name))
}

impl Root {
    /// Open `path` (a directory stage0 mounted; the last component is not followed).
    pub fn open(path: &Path) -> Result<Root, Error> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(path, e.into()))?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The root's path on the host (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A one-line error for `what` on `path` inside this root.
    pub fn err(&self, what: &str, path: &str, e: Errno) -> Error {
        InRootError {
            what: what.to_string(),
            path: path.to_string(),
            root: self.path.clone(),
            errno: e,
        }
        .into()
    }

    /// `openat2` of `path` inside the root with `flags` (`O_CLOEXEC` added); `mode` for
    /// `O_CREAT`.
    pub fn open_at(&self, path: &str, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
        let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV;
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(&self.fd, rel(path), flags | OFlags::CLOEXEC, mode, how) {
                Err(Errno::AGAIN) if tries < EAGAIN_RETRIES => tries += 1,
                r => return r,
            }
        }
    }

    /// Open the directory at `path` for reading (symlinks followed inside the root).
    pub fn open_dir(&self, path: &str) -> Result<OwnedFd, Errno> {
        self.open_at(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
    }

    /// `stat` of `path`, following symlinks inside the root.
    pub fn stat(&self, path: &str) -> Result<Stat, Errno> {
        rustix::fs::fstat(self.open_at(path, OFlags::PATH, Mode::empty())?)
    }

    /// `lstat` of `path`: its parent resolved inside the root, the last component not followed.
    pub fn lstat(&self, path: &str) -> Result<Stat, Errno> {
        rustix::fs::fstat(self.open_at(path, OFlags::PATH | OFlags::NOFOLLOW, Mode::empty())?)
    }

    /// Read the regular file at `path` (at most [`MAX_READ`] bytes; a FIFO, device or dir is
    /// refused with `EINVAL`, a larger file with `EFBIG`).
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>, Errno> {
        use std::io::Read;
        // O_NONBLOCK: opening a FIFO the image planted must not block stage1
        let fd = self.open_at(
            path,
            OFlags::RDONLY | OFlags::NOCTTY | OFlags::NONBLOCK,
            Mode::empty(),
        )?;
        let st = rustix::fs::fstat(&fd)?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(Errno::INVAL);
        }
        if st.st_size as u64 > MAX_READ {
            return Err(Errno::FBIG);
        }
        let mut out = Vec::with_capacity(st.st_size as usize);
        std::fs::File::from(fd)
            .take(MAX_READ + 1)
            .read_to_end(&mut out)
            .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
        if out.len() as u64 > MAX_READ {
            return Err(Errno::FBIG);
        }
        Ok(out)
    }

    /// The parent dir of `path` (resolved inside the root) and the last component.
    fn parent(&self, path: &str) -> Result<(OwnedFd, String), Errno> {
        let (parent, name) = split(path).ok_or(Errno::INVAL)?;
        let fd = self.open_at(parent, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
        Ok((fd, name.to_string()))
    }

    /// `mkdir -p path` inside the root; returns the dir opened `O_PATH`. Existing components
    /// may be symlinks (resolved inside the root); new ones are made relative to their
    /// parent's fd.
    pub fn mkdir_all(&self, path: &str, mode: Mode) -> Result<OwnedFd, Errno> {
        let flags = OFlags::PATH | OFlags::DIRECTORY;
        match self.open_at(path, flags, Mode::empty()) {
            Err(Errno::NOENT) => {}
            r => return r,
        }
        let (parent, name) = split(path).ok_or(Errno::NOENT)?;
        let pfd = self.mkdir_all(parent, mode)?;
        match rustix::fs::mkdirat(&pfd, name, mode) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e),
        }
        // open what is there now relative to the parent, never following the name
        rustix::fs::openat(
            &pfd,
            name,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    }

    /// Create the symlink `path` → `target` (the parent resolved inside the root; an existing
    /// entry is `EEXIST`).
    pub fn symlink(&self, target: &str, path: &str) -> Result<(), Errno> {
        let (pfd, name) = self.parent(path)?;
        rustix::fs::symlinkat(target, &pfd, name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root() -> (tempfile::TempDir, Root) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("r/etc")).unwrap();
        let r = Root::open(&d.path().join("r")).unwrap();
        (d, r)
    }

    #[test]
    fn split_paths() {
        assert_eq!(split("/etc/mtab"), Some(("/etc", "mtab")));
        assert_eq!(split("/mtab"), Some(("/", "mtab")));
        assert_eq!(split("mtab/"), Some(("/", "mtab")));
        assert_eq!(split("/"), None);
        assert_eq!(split("/etc/.."), None);
        assert_eq!(rel("/"), ".");
        assert_eq!(rel("//etc"), "etc");
    }

    #[test]
    fn absolute_and_dotdot_links_stay_inside() {
        let (d, r) = root();
        let base = d.path().join("r");
        std::fs::write(base.join("etc/real"), "inside\n").unwrap();
        symlink("/etc/real", base.join("etc/abs")).unwrap();
        symlink("../../../../../../etc/real", base.join("etc/up")).unwrap();
        assert_eq!(r.read_file("/etc/abs").unwrap(), b"inside\n");
        assert_eq!(r.read_file("/etc/up").unwrap(), b"inside\n");
        assert_eq!(r.read_file("/../../etc/real").unwrap(), b"inside\n");
        // a link to a host path that the root does not have is absent, not the host's file
        symlink("/etc/passwd", base.join("etc/pw")).unwrap();
        assert!(std::path::Path::new("/etc/passwd").exists());
        assert!(is_absent(r.read_file("/etc/pw").unwrap_err()));
        // a link to itself is a loop
        symlink("/etc/self", base.join("etc/self")).unwrap();
        assert_eq!(r.read_file("/etc/self").unwrap_err(), Errno::LOOP);
    }

    #[test]
    fn long_chains_fail_closed() {
        let (d, r) = root();
        let base = d.path().join("r");
        let host = d.path().join("host");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("passwd"), "host\n").unwrap();
        // /etc/l0 -> l1 -> ... -> l49 -> <host dir> (absolute: means <root>/<host dir>)
        for i in 0..50 {
            let next = if i == 49 {
                host.to_str().unwrap().to_string()
            } else {
                format!("l{}", i + 1)
            };
            symlink(&next, base.join(format!("etc/l{i}"))).unwrap();
        }
        assert_eq!(r.read_file("/etc/l0/passwd").unwrap_err(), Errno::LOOP);
        assert_eq!(r.stat("/etc/l0").unwrap_err(), Errno::LOOP);
        assert_eq!(
            r.mkdir_all("/etc/l0/x", Mode::from_raw_mode(0o755))
                .unwrap_err(),
            Errno::LOOP
        );
        assert_eq!(r.symlink("x", "/etc/l0/mtab").unwrap_err(), Errno::LOOP);
        assert!(!host.join("mtab").exists() && !host.join("x").exists());
        // a short chain resolves, inside the root
        symlink("l45", base.join("etc/short")).unwrap();
        std::fs::create_dir_all(base.join(host.strip_prefix("/").unwrap())).unwrap();
        assert!(r.stat("/etc/short").is_ok());
        assert!(r.stat("/etc/short/passwd").is_err());
        let msg = r.err("reading", "/etc/l0/passwd", Errno::LOOP).to_string();
        assert!(msg.contains("too many levels of symbolic links"), "{msg}");
        assert!(msg.contains("/etc/l0/passwd"), "{msg}");
    }

    #[test]
    fn magic_links_are_refused() {
        // /proc/self as the root: `root` and `cwd` in it are magic links
        let r = Root::open(Path::new(&format!("/proc/{}", std::process::id()))).unwrap();
        assert_eq!(r.stat("/root/etc").unwrap_err(), Errno::LOOP);
        assert_eq!(r.stat("/cwd").unwrap_err(), Errno::LOOP);
        assert!(r.stat("/status").is_ok());
        // a plain link to /proc/self/root inside an image root points into the image
        let (d, r) = root();
        symlink("/proc/self/root/etc", d.path().join("r/etc/x")).unwrap();
        assert!(is_absent(r.stat("/etc/x").unwrap_err()));
    }

    #[test]
    fn mount_points_are_refused() {
        // `/` as the root: /proc is another mount
        let r = Root::open(Path::new("/")).unwrap();
        assert_eq!(r.stat("/proc/self").unwrap_err(), Errno::XDEV);
    }

    #[test]
    fn mkdir_all_and_symlink_create_inside() {
        let (d, r) = root();
        let base = d.path().join("r");
        let host = d.path().join("host");
        std::fs::create_dir_all(&host).unwrap();
        // /etc/out -> <host> (absolute): creating through it lands under the root
        symlink(host.to_str().unwrap(), base.join("etc/out")).unwrap();
        let mode = Mode::from_raw_mode(0o755);
        // the link's target is missing inside the root: refused, nothing made on the host
        assert_eq!(
            r.mkdir_all("/etc/out/a/b", mode).unwrap_err(),
            Errno::NOTDIR
        );
        assert!(!host.join("a").exists());
        // once it exists inside the root, the new dirs go there
        let inside = base.join(host.strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        r.mkdir_all("/etc/out/a/b", mode).unwrap();
        assert!(inside.join("a/b").is_dir());
        assert!(!host.join("a").exists());
        r.mkdir_all("/new/x/y", mode).unwrap();
        assert!(base.join("new/x/y").is_dir());
        r.symlink("../proc/self/mounts", "/etc/mtab").unwrap();
        assert_eq!(
            std::fs::read_link(base.join("etc/mtab")).unwrap(),
            Path::new("../proc/self/mounts")
        );
        assert_eq!(r.symlink("x", "/etc/mtab").unwrap_err(), Errno::EXIST);
        // lstat does not follow the last component
        let st = r.lstat("/etc/mtab").unwrap();
        assert_eq!(
            rustix::fs::FileType::from_raw_mode(st.st_mode),
            rustix::fs::FileType::Symlink
        );
    }

    #[test]
    fn read_file_refuses_fifos_and_dirs() {
        let (d, r) = root();
        nix::unistd::mkfifo(&d.path().join("r/etc/fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(r.read_file("/etc/fifo").unwrap_err(), Errno::INVAL);
        assert_eq!(r.read_file("/etc").unwrap_err(), Errno::INVAL);
    }
}
