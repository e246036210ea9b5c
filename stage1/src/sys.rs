//! The few raw syscalls stage1 needs that nix does not wrap safely.
#![allow(unsafe_code)]

use nix::sched::CloneFlags;
use nix::unistd::Pid;

/// clone(2) a child running `f` in new namespaces `flags`; SIGCHLD on exit.
pub fn clone_child(flags: CloneFlags, f: Box<dyn FnMut() -> isize + '_>) -> nix::Result<Pid> {
    let mut stack = vec![0u8; 256 * 1024];
    // SAFETY: stage1 is single-threaded, so the child does not inherit locks held by other
    // threads; the stack outlives the call (clone without CLONE_VM copies the address space,
    // the child runs on its copy of `stack`).
    unsafe {
        nix::sched::clone(
            f,
            &mut stack,
            flags,
            Some(nix::sys::signal::Signal::SIGCHLD as i32),
        )
    }
}

/// Bring the loopback interface of the current network namespace up.
pub fn loopback_up() -> std::io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain socket(2); the fd is owned right below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor we exclusively own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads into the ifreq we pass, which lives across the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel filled ifru_flags for SIOCGIFFLAGS; union access of that member.
    unsafe {
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads the ifreq we pass.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// fork(2).
pub fn fork() -> nix::Result<nix::unistd::ForkResult> {
    // SAFETY: stage1 is single-threaded, so fork cannot leave another thread's lock held in the
    // child; the child only sets credentials and execs (or exits).
    unsafe { nix::unistd::fork() }
}

/// Drop the file-backed pages of this process (its binary and libraries) from its resident
/// set: set-up code that never runs again leaves it. A private mapping that is not writable and
/// holds no anonymous page (code, constants: nothing in it was ever written, unlike a RELRO
/// segment that was relocated, then made read-only) gets MADV_DONTNEED, which only unmaps its
/// pages here: the file gives them back unchanged on the next touch, and other processes mapping
/// the same file (the other pods' stage1) keep theirs — MADV_PAGEOUT leaves alone a page that
/// other processes map too, which is every page of a binary many pods run. Every other file
/// mapping gets MADV_PAGEOUT, which never loses data. Errors are ignored: this is only about
/// memory use.
pub fn pageout_file_mappings() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for m in file_mappings(&smaps) {
        let advice = if m.unchanged {
            libc::MADV_DONTNEED
        } else {
            libc::MADV_PAGEOUT
        };
        // SAFETY: MADV_PAGEOUT is advisory and loses no data; MADV_DONTNEED is applied only to
        // private, non-writable mappings without an anonymous (copied-on-write) page, whose
        // pages are the file's own and are read from it again on the next access (the mapping
        // keeps the file open). No mapping changes, and no memory changes contents.
        unsafe {
            libc::madvise(m.start as *mut libc::c_void, m.end - m.start, advice);
        }
    }
}

/// A file mapping of `/proc/self/smaps`.
#[derive(Debug, PartialEq, Eq)]
struct FileMapping {
    start: usize,
    end: usize,
    /// Private, not writable, no anonymous page: its pages are exactly the file's.
    unchanged: bool,
}

/// The file-backed mappings in `smaps` text.
fn file_mappings(smaps: &str) -> Vec<FileMapping> {
    let mut out: Vec<FileMapping> = Vec::new();
    let mut current: Option<(FileMapping, bool)> = None;
    let flush = |c: Option<(FileMapping, bool)>, out: &mut Vec<FileMapping>| {
        if let Some((m, true)) = c {
            out.push(m);
        }
    };
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                flush(current.take(), &mut out);
                let perms = f.next().unwrap_or("");
                let is_file = f.nth(3).is_some_and(|p| p.starts_with('/'));
                let ro_private = perms.as_bytes().get(1) == Some(&b'-') && perms.ends_with('p');
                current = Some((
                    FileMapping {
                        start: a,
                        end: b,
                        unchanged: ro_private,
                    },
                    is_file,
                ));
                continue;
            }
        }
        if first == "Anonymous:" && f.next().is_some_and(|n| n != "0") {
            if let Some((m, _)) = current.as_mut() {
                m.unchanged = false;
            }
        }
    }
    flush(current.take(), &mut out);
    out
}

/// Close every fd from `first` up except those in `keep`: `close_range(2)` over the gaps
/// (Linux ≥ 5.9), else one `close` per possible fd below the soft limit. The one way stage1
/// closes what a child must not carry into a pod: the sandbox (`first` 0), an app's helper and
/// `rkt enter`'s processes (`first` 3). The caller holds no `OwnedFd` it still uses in the
/// range, other than those in `keep`.
pub fn close_fds_from(first: u32, keep: &[i32]) {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter(|&&k| k >= first as i32)
        .map(|&k| k as u32)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from = first;
    let mut ok = true;
    for k in keep.iter().copied().chain(std::iter::once(u32::MAX)) {
        if k > from {
            let to = if k == u32::MAX { u32::MAX } else { k - 1 };
            // SAFETY: close_range takes plain integers and touches no memory; the caller holds
            // no OwnedFd it still uses in the range (see above).
            let r = unsafe { libc::syscall(libc::SYS_close_range, from, to, 0u32) };
            ok &= r == 0;
        }
        from = k.saturating_add(1);
    }
    if ok {
        return;
    }
    let max = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft.min(1 << 20));
    for fd in (first as i32..max as i32).filter(|fd| !keep.contains(&(*fd as u32))) {
        let _ = nix::unistd::close(fd);
    }
}

/// Give this process a mount namespace of its own whose mounts are slaves of the one it leaves:
/// the host's mounts still reach it, nothing done in it propagates back.
pub fn unshare_slave_mount_namespace() -> nix::Result<()> {
    use nix::mount::{mount, MsFlags};
    nix::sched::unshare(CloneFlags::CLONE_NEWNS)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
}

/// Restore the default SIGPIPE disposition (the Rust runtime ignores SIGPIPE, and an ignored
/// signal stays ignored across exec: apps must get the default).
pub fn default_sigpipe() {
    // SAFETY: installing SIG_DFL runs no handler code; nothing else touches signal dispositions
    // in the single-threaded process about to exec.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
}

/// Make `cmd`'s process get SIGKILL when stage1 dies: a CNI plugin must not finish an ADD after
/// `rkt gc` already ran DEL for the dead pod (that would leak its address).
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2), which
    // is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The window size of the terminal `fd` (TIOCGWINSZ).
pub fn get_winsize(fd: std::os::fd::BorrowedFd<'_>) -> nix::Result<nix::pty::Winsize> {
    use std::os::fd::AsRawFd;
    // SAFETY: winsize is plain old data; all-zero is a valid value.
    let mut ws: nix::pty::Winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we pass, which lives across the
    // call; the fd is borrowed, so it stays open.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    nix::errno::Errno::result(r).map(|_| ws)
}

/// Set the window size of the terminal `fd` (TIOCSWINSZ; the pty's foreground process group
/// gets SIGWINCH).
pub fn set_winsize(fd: std::os::fd::BorrowedFd<'_>, ws: &nix::pty::Winsize) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: TIOCSWINSZ only reads the winsize we pass, which lives across the call; the fd is
    // borrowed, so it stays open.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws) };
    nix::errno::Errno::result(r).map(drop)
}

/// Receive one fd passed with SCM_RIGHTS on the connected unix socket `sock` (close-on-exec);
/// any further fds of the message are closed. `Ok(None)` at end of stream or when the message
/// carried no fd.
pub fn recv_fd(sock: std::os::fd::BorrowedFd<'_>) -> nix::Result<Option<std::os::fd::OwnedFd>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = recvmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut got: Vec<OwnedFd> = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: SCM_RIGHTS installed this fd in our table for this message only:
                // nothing else knows or owns it, so taking ownership (and closing it) is sound.
                got.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Ok(got.into_iter().next())
}

/// Whether the kernel runs x32-ABI syscalls (`CONFIG_X86_X32_ABI`, not disabled at boot). Probed
/// with an x32 `getpid`, which has no effect either way, but only when this process is not under
/// a seccomp filter of its own (one without x32 would kill it for trying): then x32 is assumed.
pub fn x32_syscalls() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
        let filtered = std::fs::read_to_string("/proc/self/status")
            .map(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Seccomp:"))
                    .is_none_or(|v| v.trim() != "0")
            })
            .unwrap_or(true);
        if filtered {
            return true;
        }
        // SAFETY: getpid takes no arguments and changes nothing; an unsupported syscall number
        // just fails with ENOSYS.
        let r = unsafe { libc::syscall(X32_SYSCALL_BIT | libc::SYS_getpid) };
        r >= 0 || nix::errno::Errno::last() != nix::errno::Errno::ENOSYS
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Install the classic-BPF seccomp program `prog` on the calling thread: seccomp(2)
/// `SECCOMP_SET_MODE_FILTER` without flags, which is what libseccomp's `seccomp_load` does for a
/// filter without attributes. Needs no_new_privs or CAP_SYS_ADMIN.
pub fn seccomp_set_filter(prog: &[libc::sock_filter]) -> nix::Result<()> {
    let len = u16::try_from(prog.len()).map_err(|_| nix::errno::Errno::E2BIG)?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: the kernel copies `len` instructions from the array `fprog.filter` points to
    // (`prog`, borrowed across the call) and writes nothing; it validates the program itself.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_uint,
            &fprog as *const libc::sock_fprog,
        )
    };
    nix::errno::Errno::result(r).map(drop)
}

// ---- seccomp hardening (limits): syscall probes for the tests of the default filter ----

/// A syscall the default seccomp filter restricts, as the tests make it.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub enum Probe {
    /// `clone(flags | SIGCHLD)`: a child that gets made exits at once and is reaped.
    Clone(u64),
    /// `clone3` with a fork's arguments (`exit_signal = SIGCHLD`, no flags).
    Clone3,
    /// `io_uring_setup(1, params)`: a ring that gets made is closed.
    IoUringSetup,
}

/// Make `p` on the calling thread (whose seccomp filter is under test) and report the errno.
#[cfg(test)]
pub fn probe(p: Probe) -> nix::Result<()> {
    use nix::errno::Errno;
    let r = match p {
        Probe::Clone(flags) => {
            let flags = flags | libc::SIGCHLD as u64;
            // SAFETY: clone without CLONE_VM and without a stack is fork: the child has its own
            // copy of memory and returns 0 here, and does nothing but _exit (async-signal-safe).
            unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) }
        }
        Probe::Clone3 => {
            // struct clone_args of CLONE_ARGS_SIZE_VER0 (8 u64s): exit_signal at index 4
            let mut args = [0u64; 8];
            args[4] = libc::SIGCHLD as u64;
            // SAFETY: the kernel reads `size_of_val(&args)` bytes from `args`, which lives
            // across the call; as for Clone, a child only calls _exit.
            unsafe {
                libc::syscall(
                    libc::SYS_clone3,
                    args.as_mut_ptr(),
                    std::mem::size_of_val(&args),
                )
            }
        }
        Probe::IoUringSetup => {
            // struct io_uring_params is 120 bytes; zeroed asks for defaults
            let mut params = [0u8; 120];
            // SAFETY: the kernel reads and writes the 120-byte params struct, which lives
            // across the call.
            let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
            if fd >= 0 {
                // SAFETY: the fd was just returned to us and nothing else owns it.
                unsafe { libc::close(fd as libc::c_int) };
                return Ok(());
            }
            fd
        }
    };
    if r == 0 {
        // SAFETY: in the child of a fork-like clone: leave at once, without running any
        // destructor or atexit handler of the parent's copy.
        unsafe { libc::_exit(0) };
    }
    if r > 0 {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(r as i32), None);
        return Ok(());
    }
    Err(Errno::last())
}

// --- enter hardening ---

/// Make the terminal `fd` the controlling terminal of this process (`TIOCSCTTY`; the caller
/// must be a session leader without one).
pub fn set_controlling_tty(fd: std::os::fd::BorrowedFd<'_>) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal) and touches no memory of
    // ours; the fd is borrowed, so it stays open.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0 as libc::c_int) };
    nix::errno::Errno::result(r).map(drop)
}

// --- sandbox hardening ---

/// A new, read-only, empty tmpfs as a detached mount (fsopen + fsmount): nothing is attached
/// anywhere until [`move_mount_onto`], so nothing can propagate to the host meanwhile.
pub fn empty_ro_tmpfs() -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let last = std::io::Error::last_os_error;
    // SAFETY: fsopen reads the NUL-terminated name; the result is an fd we own right below.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), libc::FSOPEN_CLOEXEC) };
    if fs < 0 {
        return Err(last());
    }
    // SAFETY: fs is a fresh descriptor nobody else owns.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as i32) };
    // SAFETY: fsconfig reads the two NUL-terminated strings, which outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_SET_STRING,
            c"mode".as_ptr(),
            c"0555".as_ptr(),
            0,
        )
    };
    if r < 0 {
        return Err(last());
    }
    // SAFETY: FSCONFIG_CMD_CREATE takes no pointers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r < 0 {
        return Err(last());
    }
    let attrs = libc::MOUNT_ATTR_RDONLY
        | libc::MOUNT_ATTR_NOSUID
        | libc::MOUNT_ATTR_NODEV
        | libc::MOUNT_ATTR_NOEXEC;
    // SAFETY: fsmount takes integers only; the result is an fd we own right below.
    let m = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC,
            attrs as libc::c_uint,
        )
    };
    if m < 0 {
        return Err(last());
    }
    // SAFETY: m is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(m as i32) })
}

/// A detached copy of the mount at `path` (with every mount below it if `recursive`) whose ids
/// are mapped through the user namespace `userns` (`MOUNT_ATTR_IDMAP`, Linux ≥ 5.12; the file
/// system must support idmapped mounts).
pub fn idmapped_tree(
    path: &std::path::Path,
    userns: std::os::fd::BorrowedFd<'_>,
    recursive: bool,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let rec = if recursive {
        libc::AT_RECURSIVE as libc::c_uint
    } else {
        0
    };
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC as libc::c_uint | rec;
    // SAFETY: open_tree reads the NUL-terminated path, which outlives the call; it returns a
    // new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: mount_setattr reads `attr` (of the size passed) and the empty path during the
    // call; with AT_EMPTY_PATH it changes the mount the fd refers to (and those below it with
    // AT_RECURSIVE). `userns` stays open across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | rec,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// Attach the detached mount `mnt` on top of `target` (move_mount with an empty from-path).
pub fn move_mount_onto(
    mnt: std::os::fd::BorrowedFd<'_>,
    target: &std::ffi::CStr,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: move_mount reads the two NUL-terminated paths, which outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

// --- enter2 ---

/// `(env_start, env_end)` from the text of `/proc/self/stat` (fields 50 and 51, counted after
/// the parenthesised command name, which may contain spaces and parentheses).
pub fn environ_range(stat: &str) -> Option<(usize, usize)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state)
    let start = f.get(50 - 3)?.parse().ok()?;
    let end = f.get(51 - 3)?.parse().ok()?;
    (start != 0 && end > start).then_some((start, end))
}

/// Overwrite this process's environment strings — the block the kernel placed on the stack at
/// exec, which is what `/proc/PID/environ` shows for as long as the process does not exec — with
/// zero bytes. Afterwards every `environ` entry is the empty string (getenv finds nothing).
/// For a forked child that enters a pod: its parent's environment (the admin's, for `rkt enter`)
/// is then not in it for a pod process with CAP_SYS_PTRACE to read.
pub fn scrub_environ() -> std::io::Result<()> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let (start, end) = environ_range(&stat)
        .ok_or_else(|| std::io::Error::other("no environment range in /proc/self/stat"))?;
    // the kernel's range must lie inside one writable mapping of ours (the stack)
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let inside = maps.lines().any(|l| {
        let mut it = l.split_whitespace();
        let (Some(range), Some(perms)) = (it.next(), it.next()) else {
            return false;
        };
        let Some((a, b)) = range.split_once('-') else {
            return false;
        };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            return false;
        };
        perms.starts_with("rw") && a <= start && end <= b
    });
    if !inside {
        return Err(std::io::Error::other(
            "the environment is not in a writable mapping",
        ));
    }
    // SAFETY: [start, end) is this process's own environment block, inside a mapping checked
    // above to be readable and writable; no Rust reference points into it (std reads the
    // environment through libc's getenv at each call, and libc's `environ` pointers stay valid,
    // now to empty strings). The process is single-threaded (a forked child), so no other
    // thread reads it meanwhile.
    unsafe { std::ptr::write_bytes(start as *mut u8, 0, end - start) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unwritten_read_only_private_file_mappings_are_dropped() {
        let smaps = "\
55d0a0000000-55d0a0100000 r--p 00000000 fd:01 123 /usr/bin/rkt-stage1
Anonymous:             0 kB
55d0a0100000-55d0a0500000 r-xp 00100000 fd:01 123 /usr/bin/rkt-stage1
Anonymous:             0 kB
55d0a0500000-55d0a0600000 r--p 00500000 fd:01 123 /usr/bin/rkt-stage1
Anonymous:            48 kB
55d0a0600000-55d0a0610000 rw-p 00600000 fd:01 123 /usr/bin/rkt-stage1
Anonymous:             8 kB
55d0a0610000-55d0a0620000 rw-p 00000000 00:00 0 [heap]
Anonymous:            64 kB
7f0000000000-7f0000001000 r--s 00000000 fd:01 9 /dev/shm/x
Anonymous:             0 kB
";
        let kinds: Vec<(usize, bool)> = file_mappings(smaps)
            .iter()
            .map(|m| (m.start, m.unchanged))
            .collect();
        assert_eq!(
            kinds,
            [
                (0x55d0a0000000, true),
                (0x55d0a0100000, true),
                // relocated, then made read-only: its copied pages must stay
                (0x55d0a0500000, false),
                (0x55d0a0600000, false),
                // shared: not this process's to drop
                (0x7f0000000000, false),
            ]
        );
    }

    #[test]
    fn dropping_our_own_code_and_constants_is_harmless() {
        pageout_file_mappings();
        // code and data still work after the pages were dropped
        let v: Vec<u64> = (0..1000).map(|x| x * 3).collect();
        assert_eq!(v.iter().sum::<u64>(), 1_498_500);
        assert!(format!("{v:?}").starts_with("[0, 3, 6"));
    }
}
