//! Raw Linux system calls for the monitor, which has no libc. Only what it needs; every wrapper
//! is safe (pointers come from references whose lengths are passed along).
//!
//! Numbers and constants are the kernel's (x86_64 and aarch64; the monitor binary is built for
//! those two).
#![allow(unsafe_code)]

use core::ffi::CStr;

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const READ: usize = 0;
    pub const RT_SIGPROCMASK: usize = 14;
    pub const WRITE: usize = 1;
    pub const CLOSE: usize = 3;
    pub const GETPID: usize = 39;
    pub const EXECVE: usize = 59;
    pub const WAIT4: usize = 61;
    pub const KILL: usize = 62;
    pub const CLOCK_GETTIME: usize = 228;
    pub const EXIT_GROUP: usize = 231;
    pub const OPENAT: usize = 257;
    pub const UNLINKAT: usize = 263;
    pub const PPOLL: usize = 271;
    pub const SIGNALFD4: usize = 289;
    pub const RENAMEAT2: usize = 316;
    // the pod sandbox's pause mode (crate::pause)
    pub const PRCTL: usize = 157;
    pub const SECCOMP: usize = 317;
    pub const RT_SIGTIMEDWAIT: usize = 128;
    pub const RT_SIGRETURN: usize = 15;
    pub const WAITID: usize = 247;
    pub const EXIT: usize = 60;
    pub const RESTART_SYSCALL: usize = 219;
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const READ: usize = 63;
    pub const RT_SIGPROCMASK: usize = 135;
    pub const WRITE: usize = 64;
    pub const CLOSE: usize = 57;
    pub const GETPID: usize = 172;
    pub const EXECVE: usize = 221;
    pub const WAIT4: usize = 260;
    pub const KILL: usize = 129;
    pub const CLOCK_GETTIME: usize = 113;
    pub const EXIT_GROUP: usize = 94;
    pub const OPENAT: usize = 56;
    pub const UNLINKAT: usize = 35;
    pub const PPOLL: usize = 73;
    pub const SIGNALFD4: usize = 74;
    pub const RENAMEAT2: usize = 276;
    // the pod sandbox's pause mode (crate::pause)
    pub const PRCTL: usize = 167;
    pub const SECCOMP: usize = 277;
    pub const RT_SIGTIMEDWAIT: usize = 137;
    pub const RT_SIGRETURN: usize = 139;
    pub const WAITID: usize = 95;
    pub const EXIT: usize = 93;
    pub const RESTART_SYSCALL: usize = 128;
}

const AT_FDCWD: isize = -100;
const O_WRONLY: usize = 0o1;
const O_CREAT: usize = 0o100;
const O_TRUNC: usize = 0o1000;
const O_NONBLOCK: usize = 0o4000;
const O_CLOEXEC: usize = 0o2000000;
const WNOHANG: usize = 1;
const POLLIN: i16 = 1;
/// `EINTR`.
pub const EINTR: i32 = 4;
/// `EAGAIN`.
pub const EAGAIN: i32 = 11;

/// A clock for [`now_ns`].
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// Wall-clock time.
    Realtime = 0,
    /// Time since boot, never jumps.
    Monotonic = 1,
}

/// An errno value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn syscall6(n: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the callers below pass, for every pointer argument, a pointer derived from a live
    // reference with its real length (or null where the kernel accepts null); the kernel reads
    // or writes only within those bounds. `syscall` clobbers rcx and r11, declared here.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack)
        );
    }
    ret
}

#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn syscall6(n: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: as for x86_64: every pointer argument comes from a live reference with its length.
    unsafe {
        core::arch::asm!(
            "svc 0",
            in("x8") n,
            inlateout("x0") a[0] as isize => ret,
            in("x1") a[1], in("x2") a[2], in("x3") a[3], in("x4") a[4], in("x5") a[5],
            options(nostack)
        );
    }
    ret
}

fn check(r: isize) -> Result<usize, Errno> {
    if (-4095..0).contains(&r) {
        Err(Errno(-r as i32))
    } else {
        Ok(r as usize)
    }
}

fn call(n: usize, a: [usize; 6]) -> Result<usize, Errno> {
    check(syscall6(n, a))
}

/// An owned file descriptor, closed on drop.
#[derive(Debug)]
pub struct Fd(i32);

impl Fd {
    /// The raw number.
    pub fn raw(&self) -> i32 {
        self.0
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        let _ = call(nr::CLOSE, [self.0 as usize, 0, 0, 0, 0, 0]);
    }
}

/// Write all of `buf` to `fd`.
pub fn write_all(fd: i32, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match call(
            nr::WRITE,
            [fd as usize, buf.as_ptr() as usize, buf.len(), 0, 0, 0],
        ) {
            Ok(0) => return Err(Errno(5)),
            Ok(n) => buf = &buf[n..],
            Err(Errno(EINTR)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Read into `buf`.
pub fn read(fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
    call(
        nr::READ,
        [fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0],
    )
}

/// Create or truncate `path` (relative to the working directory) for writing, mode 0644.
pub fn create(path: &CStr) -> Result<Fd, Errno> {
    let flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
    call(
        nr::OPENAT,
        [
            AT_FDCWD as usize,
            path.as_ptr() as usize,
            flags,
            0o644,
            0,
            0,
        ],
    )
    .map(|fd| Fd(fd as i32))
}

/// Rename `from` to `to` (replacing it), both relative to the working directory.
pub fn rename(from: &CStr, to: &CStr) -> Result<(), Errno> {
    call(
        nr::RENAMEAT2,
        [
            AT_FDCWD as usize,
            from.as_ptr() as usize,
            AT_FDCWD as usize,
            to.as_ptr() as usize,
            0,
            0,
        ],
    )
    .map(drop)
}

/// Remove the file `path`.
pub fn unlink(path: &CStr) -> Result<(), Errno> {
    call(
        nr::UNLINKAT,
        [AT_FDCWD as usize, path.as_ptr() as usize, 0, 0, 0, 0],
    )
    .map(drop)
}

/// Send `signal` to `pid`.
pub fn kill(pid: i32, signal: i32) -> Result<(), Errno> {
    call(nr::KILL, [pid as usize, signal as usize, 0, 0, 0, 0]).map(drop)
}

/// This process's PID.
pub fn getpid() -> i32 {
    syscall6(nr::GETPID, [0; 6]) as i32
}

/// Reap any child that has exited, without blocking: `Ok(None)` if none has (or there are no
/// children left: `ECHILD` is reported as an error).
pub fn wait_any_nohang() -> Result<Option<(i32, i32)>, Errno> {
    let mut status: i32 = 0;
    let pid = call(
        nr::WAIT4,
        [
            usize::MAX, // -1: any child
            &mut status as *mut i32 as usize,
            WNOHANG,
            0,
            0,
            0,
        ],
    )?;
    Ok((pid != 0).then_some((pid as i32, status)))
}

/// Block the signals in `mask` (bit `n-1` for signal `n`), so that they queue for a signalfd.
pub fn block_signals(mask: u64) -> Result<(), Errno> {
    const SIG_BLOCK: usize = 0;
    call(
        nr::RT_SIGPROCMASK,
        [SIG_BLOCK, &mask as *const u64 as usize, 0, 8, 0, 0],
    )
    .map(drop)
}

/// A non-blocking, close-on-exec signalfd for the signals in `mask` (bit `n-1` for signal `n`).
/// The signals must be blocked ([`block_signals`]).
pub fn signalfd(mask: u64) -> Result<Fd, Errno> {
    call(
        nr::SIGNALFD4,
        [
            usize::MAX, // -1: a new fd
            &mask as *const u64 as usize,
            8,
            O_CLOEXEC | O_NONBLOCK,
            0,
            0,
        ],
    )
    .map(|fd| Fd(fd as i32))
}

/// Read one signal number from a signalfd; `None` when there is none pending.
pub fn read_signal(fd: &Fd) -> Option<u32> {
    // struct signalfd_siginfo: 128 bytes, ssi_signo first
    let mut info = [0u8; 128];
    match read(fd.raw(), &mut info) {
        Ok(128) => Some(u32::from_ne_bytes([info[0], info[1], info[2], info[3]])),
        _ => None,
    }
}

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

/// Wait until `fd` is readable or `timeout_ms` passed (`None`: no timeout). `Ok(false)` on
/// timeout; `EINTR` is reported as `Ok(true)` (the caller re-checks everything anyway).
pub fn wait_readable(fd: &Fd, timeout_ms: Option<u64>) -> Result<bool, Errno> {
    let mut pfd = PollFd {
        fd: fd.raw(),
        events: POLLIN,
        revents: 0,
    };
    let ts = timeout_ms.map(|ms| Timespec {
        sec: (ms / 1000) as i64,
        nsec: ((ms % 1000) * 1_000_000) as i64,
    });
    let tsp = ts.as_ref().map_or(0, |t| t as *const Timespec as usize);
    match call(
        nr::PPOLL,
        [&mut pfd as *mut PollFd as usize, 1, tsp, 0, 8, 0],
    ) {
        Ok(n) => Ok(n > 0),
        Err(Errno(EINTR)) => Ok(true),
        Err(e) => Err(e),
    }
}

/// The time on `clock`, in nanoseconds.
pub fn now_ns(clock: Clock) -> i64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    let _ = call(
        nr::CLOCK_GETTIME,
        [
            clock as usize,
            &mut ts as *mut Timespec as usize,
            0,
            0,
            0,
            0,
        ],
    );
    ts.sec.saturating_mul(1_000_000_000).saturating_add(ts.nsec)
}

/// End the process.
pub fn exit(code: i32) -> ! {
    loop {
        syscall6(nr::EXIT_GROUP, [code as usize, 0, 0, 0, 0, 0]);
    }
}

/// The process's arguments and environment, as the kernel laid them out on the initial stack.
#[derive(Debug, Clone, Copy)]
pub struct Process {
    argc: usize,
    argv: *const *const u8,
    envp: *const *const u8,
}

/// Most arguments [`Process::exec`] passes.
pub const MAX_EXEC_ARGS: usize = 8;

impl Process {
    /// The process whose initial stack pointer is `sp`.
    ///
    /// # Safety
    /// `sp` must be the stack pointer the kernel handed to `_start`: `argc`, then `argc`
    /// argument pointers and a null, then the environment pointers and a null.
    pub unsafe fn from_initial_stack(sp: *const usize) -> Self {
        // SAFETY: the caller guarantees the kernel's layout at `sp`.
        unsafe {
            let argc = *sp;
            let argv = sp.add(1) as *const *const u8;
            let envp = argv.add(argc + 1);
            Process { argc, argv, envp }
        }
    }

    /// Number of arguments, the program name included.
    pub fn argc(&self) -> usize {
        self.argc
    }

    /// Argument `i`, as a C string.
    pub fn arg(&self, i: usize) -> Option<&'static CStr> {
        if i >= self.argc {
            return None;
        }
        // SAFETY: `i < argc`, so `argv[i]` is one of the kernel's NUL-terminated argument
        // strings, which live (unchanged: nothing writes them) as long as the process.
        unsafe { Some(CStr::from_ptr(*self.argv.add(i) as *const core::ffi::c_char)) }
    }

    /// Replace the process with `path`, with `args` as its argv and this process's environment.
    /// Returns only on failure.
    pub fn exec(&self, path: &CStr, args: &[&CStr]) -> Errno {
        if args.len() > MAX_EXEC_ARGS {
            return Errno(7); // E2BIG
        }
        let mut argv = [core::ptr::null::<u8>(); MAX_EXEC_ARGS + 1];
        for (slot, a) in argv.iter_mut().zip(args) {
            *slot = a.as_ptr() as *const u8;
        }
        match call(
            nr::EXECVE,
            [
                path.as_ptr() as usize,
                argv.as_ptr() as usize,
                self.envp as usize,
                0,
                0,
                0,
            ],
        ) {
            Ok(_) => Errno(0),
            Err(e) => e,
        }
    }
}

// --- sandbox hardening: the pod sandbox's pause mode (crate::pause) ---

/// System call numbers of this architecture, for seccomp filters.
pub mod syscalls {
    pub use super::nr::*;
}

/// `AUDIT_ARCH_*` of this architecture (`seccomp_data.arch`).
#[cfg(target_arch = "x86_64")]
pub const AUDIT_ARCH: u32 = 0xC000_003E;
/// `AUDIT_ARCH_*` of this architecture (`seccomp_data.arch`).
#[cfg(target_arch = "aarch64")]
pub const AUDIT_ARCH: u32 = 0xC000_00B7;

/// prctl(2) with one argument.
pub fn prctl(option: usize, arg: usize) -> Result<(), Errno> {
    call(nr::PRCTL, [option, arg, 0, 0, 0, 0]).map(drop)
}

/// One classic-BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Operand.
    pub k: u32,
}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

/// seccomp(2) `SECCOMP_SET_MODE_FILTER` with `prog` (needs no_new_privs or CAP_SYS_ADMIN).
pub fn seccomp_set_filter(prog: &[SockFilter]) -> Result<(), Errno> {
    let fprog = SockFprog {
        len: prog.len() as u16,
        filter: prog.as_ptr(),
    };
    call(
        nr::SECCOMP,
        [1, 0, &fprog as *const SockFprog as usize, 0, 0, 0],
    )
    .map(drop)
}

/// Wait for one of the (blocked) signals in `mask`; its number.
pub fn sigwait(mask: u64) -> Result<u32, Errno> {
    call(
        nr::RT_SIGTIMEDWAIT,
        [&mask as *const u64 as usize, 0, 0, 8, 0, 0],
    )
    .map(|s| s as u32)
}

/// close(2).
pub fn close(fd: i32) -> Result<(), Errno> {
    call(nr::CLOSE, [fd as usize, 0, 0, 0, 0, 0]).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_and_pid() {
        let a = now_ns(Clock::Monotonic);
        let b = now_ns(Clock::Monotonic);
        assert!(a > 0 && b >= a);
        let wall = now_ns(Clock::Realtime);
        let std_wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        assert!((std_wall - wall).abs() < 5_000_000_000);
        assert_eq!(getpid() as u32, std::process::id());
    }

    #[test]
    fn files_create_write_rename_unlink() {
        let dir = tempfile::tempdir().unwrap();
        let a = std::ffi::CString::new(dir.path().join("a").to_str().unwrap()).unwrap();
        let b = std::ffi::CString::new(dir.path().join("b").to_str().unwrap()).unwrap();
        let fd = create(&a).unwrap();
        write_all(fd.raw(), b"hello").unwrap();
        drop(fd);
        rename(&a, &b).unwrap();
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), b"hello");
        assert!(!dir.path().join("a").exists());
        assert_eq!(rename(&a, &b), Err(Errno(2)));
        unlink(&b).unwrap();
        assert!(!dir.path().join("b").exists());
    }

    #[test]
    fn no_children_is_echild() {
        // the test harness' threads have no children of this process's to reap
        assert_eq!(wait_any_nohang(), Err(Errno(10)));
    }

    #[test]
    fn kill_zero_signal_probes() {
        assert_eq!(kill(getpid(), 0), Ok(()));
    }
}
