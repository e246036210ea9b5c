//! `rkt-monitor --pause [FD]`: the pod sandbox's PID 1 once it is confined (stage1's
//! `sandbox::confine`). stage1's clone of itself sets the pod up, drops every capability, sets
//! no_new_privs, pivots into an empty root and then execs this binary from a sealed memfd copy,
//! so that nothing of the host shows through the pod's PID 1: not its executable, mapped files,
//! environment or memory (a fork of stage1 would keep all of those). Here it makes itself
//! non-dumpable, loads [`filter`], closes the report descriptor `FD` (stage1 waits for that EOF
//! before any app runs) and reaps orphans until SIGTERM or SIGINT.

use crate::sys::{self, syscalls as nr, Errno, Process, SockFilter};

/// The first argument that selects the pause mode.
pub const PAUSE_ARG: &core::ffi::CStr = c"--pause";

const SIGINT: u32 = 2;
const SIGTERM: u32 = 15;
const SIGCHLD: u32 = 17;
const PR_SET_DUMPABLE: usize = 4;
const PR_SET_NAME: usize = 15;

/// The system calls the confined pause process makes: waiting for signals and children,
/// closing the report pipe (and `write`, for stage1's in-process fallback that reports through
/// it), leaving, and the kernel's restart of an interrupted wait.
pub const SYSCALLS: [usize; 10] = [
    nr::RT_SIGTIMEDWAIT,
    nr::RT_SIGPROCMASK,
    nr::RT_SIGRETURN,
    nr::WAIT4,
    nr::WAITID,
    nr::WRITE,
    nr::CLOSE,
    nr::EXIT,
    nr::EXIT_GROUP,
    nr::RESTART_SYSCALL,
];

/// Number of instructions of [`filter`].
pub const FILTER_LEN: usize = 4 + SYSCALLS.len() + 2;

/// The seccomp program of the confined pause process, in classic BPF: a system call of another
/// architecture (x86 compat, or x32 numbers, which carry bit 30) or not in [`SYSCALLS`] kills
/// the process.
pub fn filter() -> [SockFilter; FILTER_LEN] {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const KILL_PROCESS: u32 = 0x8000_0000;
    const ALLOW: u32 = 0x7fff_0000;
    let ins = |code, jt, k| SockFilter { code, jt, jf: 0, k };
    let mut p = [ins(RET_K, 0, KILL_PROCESS); FILTER_LEN];
    // seccomp_data: nr at offset 0, arch at offset 4
    p[0] = ins(LD_W_ABS, 0, 4);
    p[1] = ins(JEQ_K, 1, sys::AUDIT_ARCH);
    // p[2]: kill
    p[3] = ins(LD_W_ABS, 0, 0);
    let n = SYSCALLS.len();
    for (i, nr) in SYSCALLS.iter().enumerate() {
        // past the remaining comparisons and the kill, to the allow
        p[4 + i] = ins(JEQ_K, (n - i) as u8, *nr as u32);
    }
    // p[4 + n]: kill
    p[FILTER_LEN - 1] = ins(RET_K, 0, ALLOW);
    p
}

/// Report `what` failed on `fd` and exit 1 (stage1 then fails the pod with the message).
fn fail(fd: Option<i32>, what: &str, Errno(e): Errno) -> ! {
    if let Some(fd) = fd {
        let _ = sys::write_all(fd, what.as_bytes());
        let _ = sys::write_all(fd, b": errno ");
        let mut b = crate::Buf::<16>::default();
        let _ = core::fmt::Write::write_fmt(&mut b, format_args!("{e}"));
        let _ = sys::write_all(fd, b.as_bytes());
    }
    sys::exit(1)
}

/// The pause mode's whole life (see the module's documentation).
pub fn main(p: &Process) -> ! {
    let fd = p
        .arg(2)
        .and_then(|a| a.to_str().ok())
        .and_then(|a| a.parse::<i32>().ok());
    let mask = [SIGCHLD, SIGTERM, SIGINT]
        .iter()
        .fold(0u64, |m, s| m | 1 << (s - 1));
    // stage1 blocked them before exec already; blocking again is harmless
    if let Err(e) = sys::block_signals(mask) {
        fail(fd, "rkt-pause: blocking signals", e);
    }
    // exec'd from a descriptor, the kernel named it after the descriptor's number
    let _ = sys::prctl(PR_SET_NAME, c"rkt-pause".as_ptr() as usize);
    if let Err(e) = sys::prctl(PR_SET_DUMPABLE, 0) {
        fail(fd, "rkt-pause: clearing dumpable", e);
    }
    if let Err(e) = sys::seccomp_set_filter(&filter()) {
        fail(fd, "rkt-pause: loading the seccomp filter", e);
    }
    if let Some(fd) = fd {
        let _ = sys::close(fd);
    }
    loop {
        match sys::sigwait(mask) {
            Ok(SIGCHLD) => while let Ok(Some(_)) = sys::wait_any_nohang() {},
            Ok(SIGTERM | SIGINT) => sys::exit(0),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_jumps_land_on_allow_or_kill() {
        let p = filter();
        let allow = FILTER_LEN - 1;
        assert_eq!(p[allow].k, 0x7fff_0000);
        assert_eq!(p[allow - 1].k, 0x8000_0000);
        assert_eq!(p[2].k, 0x8000_0000);
        for (i, nr) in SYSCALLS.iter().enumerate() {
            let at = 4 + i;
            assert_eq!(at + 1 + p[at].jt as usize, allow, "comparison {i}");
            assert_eq!(p[at].k as usize, *nr);
        }
        assert!(!SYSCALLS.contains(&nr::EXECVE) && !SYSCALLS.contains(&nr::OPENAT));
    }
}
