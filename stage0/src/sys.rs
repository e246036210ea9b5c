//! The raw system calls stage0 needs that nix does not wrap.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `OPEN_TREE_CLONE` of `open_tree(2)`: a detached copy of the mount, not the original.
const OPEN_TREE_CLONE: libc::c_uint = 1;
/// `MOUNT_ATTR_RDONLY`, `MOUNT_ATTR_NOSUID`, `MOUNT_ATTR_NODEV` of `mount_setattr(2)`.
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
/// `MOUNT_ATTR_IDMAP`: map the mount's ids through `userns_fd`'s mapping (Linux ≥ 5.12).
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
/// `MOVE_MOUNT_F_EMPTY_PATH` of `move_mount(2)`: the source is the fd itself.
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// `struct mount_attr` (linux/mount.h), version 0.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A detached, read-only bind mount of the file `path`, as an `O_PATH` fd (close-on-exec). A
/// program exec'd from it (`execveat(fd, "", …, AT_EMPTY_PATH)`) has its `/proc/PID/exe` on that
/// mount: nothing that opens it there can write the file (EROFS). The mount is in no
/// namespace's tree, so it shows up nowhere; it lives as long as the fd or a process running
/// the file holds it. Needs Linux ≥ 5.12 (`mount_setattr`).
pub fn read_only_file_mount(path: &Path) -> std::io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: open_tree only reads the NUL-terminated path, which lives across the call; it
    // returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd the kernel just returned; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads `attr` (of the size passed) and the empty path during the
    // call; with AT_EMPTY_PATH it changes the mount the fd itself refers to.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// A user namespace whose uid and gid maps are both `map_line` (`/proc/PID/uid_map` syntax),
/// as an fd, for [`idmapped_tree`]. A child is forked into a new user namespace only to hold it
/// while the maps are written and the namespace is opened; it is killed and reaped before this
/// returns. The mount keeps the namespace's mapping; nothing runs in it.
pub fn userns_fd(map_line: &str) -> std::io::Result<OwnedFd> {
    use nix::sys::wait::waitpid;
    use nix::unistd::{fork, pipe2, ForkResult};
    let (ready_r, ready_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (hold_r, hold_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: the child calls only async-signal-safe functions (unshare, write, read, _exit)
    // on descriptors it inherited, so forking a process that may have other threads is sound.
    match unsafe { fork() }? {
        ForkResult::Child => {
            // SAFETY: plain system calls on inherited fds; the child never returns.
            unsafe {
                drop(ready_r);
                drop(hold_w);
                let ok: u8 = u8::from(libc::unshare(libc::CLONE_NEWUSER) == 0);
                libc::write(ready_w.as_raw_fd(), (&ok as *const u8).cast(), 1);
                let mut b = 0u8;
                libc::read(hold_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
                libc::_exit(0);
            }
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            drop(hold_r);
            let res = (|| {
                let mut b = [0u8; 1];
                let n = nix::unistd::read(ready_r.as_raw_fd(), &mut b)?;
                if n != 1 || b[0] != 1 {
                    return Err(std::io::Error::other(
                        "cannot create a user namespace (unshare(CLONE_NEWUSER) failed)",
                    ));
                }
                for f in ["uid_map", "gid_map"] {
                    std::fs::write(format!("/proc/{child}/{f}"), map_line)
                        .map_err(|e| std::io::Error::new(e.kind(), format!("writing {f}: {e}")))?;
                }
                let ns = std::fs::File::open(format!("/proc/{child}/ns/user"))?;
                Ok(OwnedFd::from(ns))
            })();
            drop(hold_w);
            let _ = waitpid(child, None);
            res
        }
    }
}

/// A detached copy of the mount tree at `path` (not recursive) whose ids are mapped through
/// `userns`: a file owned by id N on disk shows as owned by N mapped (e.g. `shift + N`).
/// Read-only, nosuid kept by the caller's other mounts. Needs Linux ≥ 5.12 and a file system
/// that supports idmapped mounts.
pub fn idmapped_tree(path: &Path, userns: &OwnedFd) -> std::io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: as in `read_only_file_mount`.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd the kernel just returned; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: as in `read_only_file_mount`; `userns` stays open across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// Attach the detached mount `fd` at `target` (an existing dir).
pub fn attach_mount(fd: &OwnedFd, target: &Path) -> std::io::Result<()> {
    let c = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: move_mount reads the two NUL-terminated paths during the call; `fd` is a live
    // mount fd.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_is_read_only_and_the_file_the_same() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("bin");
        std::fs::write(&f, b"#!/bin/true\n").unwrap();
        let fd = read_only_file_mount(&f).unwrap();
        let via = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let e = std::fs::OpenOptions::new()
            .write(true)
            .open(&via)
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS));
        assert_eq!(std::fs::read(&via).unwrap(), b"#!/bin/true\n");
        // the original stays writable
        std::fs::write(&f, b"x").unwrap();
    }
}
