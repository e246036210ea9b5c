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
