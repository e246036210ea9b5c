//! Isolation defaults as rkt applied them: capabilities, seccomp groups, masked and read-only
//! paths. Pure data + logic, unit tested without root.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};
use stage1_abi::{Isolators, RuntimeConfig, Seccomp, SeccompMode};

use crate::Error;

/// The OCI capability named `name` (`CAP_…`), as libcontainer reads it from a spec.
pub fn oci_capability(name: &str) -> Option<oci_spec::runtime::Capability> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

/// What can be wrong with an app's capability or seccomp isolators.
#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    /// A capability name the kernel does not know.
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    /// Both a retain and a remove set.
    #[error("caps_retain and caps_remove are mutually exclusive")]
    RetainAndRemove,
    /// A `@group` of syscalls stage1 does not know.
    #[error("unknown seccomp group {0:?}")]
    UnknownSeccompGroup(String),
    /// An errno name that is not one.
    #[error("unknown errno {0:?} in seccomp filter")]
    UnknownErrno(String),
    /// `mode=remove,@appc.io/all`.
    #[error("seccomp remove-set @appc.io/all would block every syscall")]
    RemoveAll,
}

/// rkt's (appc's) default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETUID",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETFCAP",
    "CAP_SYS_CHROOT",
];

/// Read-only paths (rkt's list plus `/proc/sys` as the OCI default).
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Masked (inaccessible) paths as rkt lists them.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/config.gz",
    "/proc/kallsyms",
    "/proc/sched_debug",
    "/proc/kcore",
    "/proc/kmem",
    "/proc/mem",
    "/proc/keys",
    "/proc/timer_list",
    "/sys/firmware",
    "/sys/fs",
    "/sys/hypervisor",
    "/sys/module",
    "/sys/power",
];

/// Normalise a capability name: `net_admin`, `CAP_NET_ADMIN` → `CAP_NET_ADMIN`.
pub fn normalize_cap(name: &str) -> Result<String, Error> {
    let up = name.trim().to_ascii_uppercase();
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if full.parse::<caps::Capability>().is_err() {
        return Err(IsolationError::UnknownCapability(name.to_string()).into());
    }
    Ok(full)
}

/// Every capability stage1 itself may pass on (its bounding set), sorted.
pub fn all_capabilities() -> Vec<String> {
    let bounding = caps::read(None, caps::CapSet::Bounding).unwrap_or_else(|_| caps::all());
    let mut all: Vec<String> = bounding.into_iter().map(|c| c.to_string()).collect();
    all.sort();
    all
}

/// The capability set of an app with the CRI's settings: every one when privileged, else
/// [`capability_set`] with `add` added and then `drop` dropped (`ALL` in either: every
/// capability).
pub fn cri_capability_set(
    iso: &Isolators,
    rc: &RuntimeConfig,
    cri: &stage1_abi::CriApp,
) -> Result<Vec<String>, Error> {
    if cri.privileged {
        return Ok(all_capabilities());
    }
    let is_all = |c: &String| c.eq_ignore_ascii_case("ALL");
    let mut v = capability_set(iso, rc)?;
    if cri.caps_add.iter().any(is_all) {
        v = all_capabilities();
    } else {
        for c in &cri.caps_add {
            let c = normalize_cap(c)?;
            if !v.contains(&c) {
                v.push(c);
            }
        }
    }
    if cri.caps_drop.iter().any(is_all) {
        v.clear();
    } else {
        let drop = cri
            .caps_drop
            .iter()
            .map(|c| normalize_cap(c))
            .collect::<Result<Vec<_>, _>>()?;
        v.retain(|c| !drop.contains(c));
    }
    Ok(v)
}

/// The capability set of an app: defaults, `caps_retain` (exact set) xor `caps_remove`
/// (defaults minus), all caps with `--insecure-options=capabilities`.
pub fn capability_set(iso: &Isolators, rc: &RuntimeConfig) -> Result<Vec<String>, Error> {
    if iso.caps_retain.is_some() && iso.caps_remove.is_some() {
        return Err(IsolationError::RetainAndRemove.into());
    }
    if rc.disable_capabilities {
        return Ok(all_capabilities());
    }
    if let Some(retain) = &iso.caps_retain {
        let mut v = Vec::new();
        for c in retain {
            let c = normalize_cap(c)?;
            if !v.contains(&c) {
                v.push(c);
            }
        }
        return Ok(v);
    }
    let mut v: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    if let Some(remove) = &iso.caps_remove {
        let remove = remove
            .iter()
            .map(|c| normalize_cap(c))
            .collect::<Result<Vec<_>, _>>()?;
        v.retain(|c| !remove.contains(c));
    }
    Ok(v)
}

/// The syscalls Docker's default profile allows unconditionally (the unconditional part of
/// `@docker/default-whitelist` = `@rkt/default-whitelist`; see [`seccomp_filter`] for the rest:
/// `clone` without namespace flags, and the CAP_SYS_ADMIN additions). Without `clone`/`clone3`
/// (conditional) and without `io_uring_*` (moby removed them from its default profile in 2023:
/// io_uring bypasses the syscall filter for the operations it performs and has been a steady
/// source of kernel privilege escalations).
pub const DOCKER_DEFAULT_WHITELIST: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "chroot",
    "clock_adjtime",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "modify_ldt",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "personality",
    "pidfd_getfd",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socket",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// The Docker default block-list (`@docker/default-blacklist` = `@rkt/default-blacklist`).
pub const DOCKER_DEFAULT_BLACKLIST: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "stime",
    "swapon",
    "swapoff",
    "sysfs",
    "_sysctl",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
];

/// A `--seccomp` set with its `@group`s expanded.
#[derive(Debug, Default)]
struct Expanded {
    /// Every syscall named, directly or through a group, sorted and unique.
    names: Vec<String>,
    /// `@appc.io/all` was named.
    all: bool,
    /// `@docker/default-whitelist` (or `@rkt/default-whitelist`) was named: its conditional
    /// rules apply ([`docker_conditional`]).
    docker_whitelist: bool,
}

/// Expand syscall names and `@group`s.
fn expand(names: &[String]) -> Result<Expanded, Error> {
    let mut x = Expanded::default();
    for n in names {
        let n = n.trim();
        let group: Option<&[&str]> = match n {
            "@docker/default-whitelist" | "@rkt/default-whitelist" => {
                x.docker_whitelist = true;
                Some(DOCKER_DEFAULT_WHITELIST)
            }
            "@docker/default-blacklist" | "@rkt/default-blacklist" => {
                Some(DOCKER_DEFAULT_BLACKLIST)
            }
            "@appc.io/empty" => Some(&[]),
            "@appc.io/all" => {
                x.all = true;
                Some(&[])
            }
            _ if n.starts_with('@') => {
                return Err(IsolationError::UnknownSeccompGroup(n.to_string()).into());
            }
            _ => None,
        };
        match group {
            Some(g) => x.names.extend(g.iter().map(|s| s.to_string())),
            None if !n.is_empty() => x.names.push(n.to_string()),
            None => {}
        }
    }
    x.names.sort();
    x.names.dedup();
    Ok(x)
}

/// The namespace flags of `clone(2)` Docker's default profile refuses without CAP_SYS_ADMIN:
/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
/// CLONE_NEWNET` (`CLONE_NEWTIME` shares its bit with the exit signal in `clone`'s flags, so
/// only `unshare`/`clone3` could ask for it, and both are refused).
pub const CLONE_NS_FLAGS: u64 =
    0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;

/// What Docker's default profile adds for a container that has CAP_SYS_ADMIN (its
/// `includes.caps: [CAP_SYS_ADMIN]` rule), `clone` with any flags and `clone3` among them.
pub const DOCKER_SYS_ADMIN: &[&str] = &[
    "bpf",
    "clone",
    "clone3",
    "fanotify_init",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "perf_event_open",
    "quotactl",
    "quotactl_fd",
    "setdomainname",
    "sethostname",
    "setns",
    "syslog",
    "umount",
    "umount2",
    "unshare",
];

/// Syscalls `@docker/default-whitelist` refuses with EPERM, as Docker's profile does (its
/// default action), instead of the filter's own deny action (rkt kills the process by
/// default): programs probe for them and fall back — a sandbox trying a user namespace,
/// a runtime trying io_uring — and a probe must not kill them.
const DOCKER_EPERM: &[&str] = &[
    "unshare",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
];

/// The conditional part of `@docker/default-whitelist` for an app whose allow-list is
/// `allowed` (sorted): rules for what `allowed` does not already allow unconditionally.
/// - `clone` is allowed when its flags (argument 0 on x86_64, x86, aarch64 and arm) have no
///   namespace bit ([`CLONE_NS_FLAGS`]), and fails with EPERM when they have one (one rule per
///   bit: a BPF filter cannot say "masked value is not zero" in one comparison);
/// - `clone3` fails with ENOSYS, whose flags sit in memory a filter cannot read: libc then
///   falls back to `clone`, as under Docker;
/// - [`DOCKER_EPERM`] fail with EPERM.
fn docker_conditional(allowed: &[String]) -> Vec<LinuxSyscall> {
    let has = |n: &str| allowed.binary_search_by(|a| a.as_str().cmp(n)).is_ok();
    let mut rules = Vec::new();
    if !has("clone") {
        // libcontainer 0.7 (the spec's reader, and `crate::security::seccomp` mirrors it) reads
        // MASKED_EQ as `(arg & valueTwo) == value`, the other way round from runc and Docker's
        // profile (`value` the mask); the kernel tests in `crate::security::seccomp` load this rule
        // through libcontainer too, so a change of that reading shows there
        rules.push(syscall_rule(
            &["clone"],
            LinuxSeccompAction::ScmpActAllow,
            None,
            Some(vec![masked_eq(0, 0, CLONE_NS_FLAGS)]),
        ));
        for bit in (0..64)
            .map(|b| 1u64 << b)
            .filter(|b| CLONE_NS_FLAGS & b != 0)
        {
            rules.push(syscall_rule(
                &["clone"],
                LinuxSeccompAction::ScmpActErrno,
                Some(libc::EPERM as u32),
                Some(vec![masked_eq(0, bit, bit)]),
            ));
        }
    }
    if !has("clone3") {
        rules.push(syscall_rule(
            &["clone3"],
            LinuxSeccompAction::ScmpActErrno,
            Some(libc::ENOSYS as u32),
            None,
        ));
    }
    let eperm: Vec<&str> = DOCKER_EPERM.iter().copied().filter(|n| !has(n)).collect();
    if !eperm.is_empty() {
        rules.push(syscall_rule(
            &eperm,
            LinuxSeccompAction::ScmpActErrno,
            Some(libc::EPERM as u32),
            None,
        ));
    }
    rules
}

/// One OCI seccomp rule.
fn syscall_rule(
    names: &[&str],
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    args: Option<Vec<LinuxSeccompArg>>,
) -> LinuxSyscall {
    let mut r = LinuxSyscall::default();
    r.set_names(names.iter().map(|s| s.to_string()).collect())
        .set_action(action)
        .set_errno_ret(errno_ret)
        .set_args(args);
    r
}

/// The condition `(arg[index] & value_two) == value` (as libcontainer reads MASKED_EQ).
fn masked_eq(index: usize, value: u64, value_two: u64) -> LinuxSeccompArg {
    LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .value_two(value_two)
        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
        .build()
        .expect("every field of the condition is set")
}

/// The architectures a filter covers: the native one and the compat ABIs the kernel can run.
/// Each one roughly doubles what libseccomp does to build the filter (≈ 4–5 ms per
/// architecture here, in every app's start), so an ABI the kernel does not have is left out: its
/// syscalls then hit the filter's bad-architecture action (the process is killed) instead of
/// failing with ENOSYS. Docker and podman always list x86_64, x86 and x32; most kernels, this
/// one included, are built without x32.
fn seccomp_architectures() -> Vec<Arch> {
    static ARCHES: std::sync::OnceLock<Vec<Arch>> = std::sync::OnceLock::new();
    ARCHES
        .get_or_init(|| {
            if cfg!(target_arch = "x86_64") {
                let mut v = vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86];
                if crate::sys::x32_syscalls() {
                    v.push(Arch::ScmpArchX32);
                }
                v
            } else if cfg!(target_arch = "aarch64") {
                vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
            } else {
                Vec::new()
            }
        })
        .clone()
}

/// The OCI `linux.seccomp` object for an app whose capability set is `caps`, or None for no
/// filter.
///
/// `@docker/default-whitelist` (the default) is Docker's default profile: its unconditional
/// allow-list, plus, for an app with CAP_SYS_ADMIN, Docker's CAP_SYS_ADMIN additions
/// ([`DOCKER_SYS_ADMIN`]), plus the conditional rules of [`docker_conditional`] for what is
/// still not allowed. A syscall the user names in a retain set is allowed as named, whatever
/// its arguments: `mode=retain,@docker/default-whitelist,clone` allows `clone` with namespace
/// flags, `…,clone3` and `…,io_uring_setup` allow those. In remove mode the user writes a
/// deny-list and gets exactly it (`mode=remove,@appc.io/empty` is the default allow-list, with
/// its conditions).
pub fn seccomp_filter(
    iso: &Isolators,
    rc: &RuntimeConfig,
    caps: &[String],
) -> Result<Option<LinuxSeccomp>, Error> {
    if rc.disable_seccomp {
        return Ok(None);
    }
    let default = Seccomp {
        mode: SeccompMode::Retain,
        errno: None,
        syscalls: vec!["@docker/default-whitelist".into()],
    };
    let req = iso.seccomp.as_ref().unwrap_or(&default);
    let mut x = expand(&req.syscalls)?;
    // (action, errnoRet) of what the filter denies
    let deny = match &req.errno {
        Some(e) => {
            let n = stage1_abi::errno::errno_from_name(e)
                .ok_or_else(|| IsolationError::UnknownErrno(e.to_string()))?;
            (LinuxSeccompAction::ScmpActErrno, Some(n as u32))
        }
        None => (LinuxSeccompAction::ScmpActKillProcess, None),
    };
    let retain = match req.mode {
        SeccompMode::Retain => {
            if x.all {
                return Ok(None);
            }
            true
        }
        SeccompMode::Remove => {
            if x.all {
                return Err(IsolationError::RemoveAll.into());
            }
            if x.names.is_empty() {
                // `remove @appc.io/empty` = the default allow-list
                x = expand(&default.syscalls)?;
                true
            } else {
                false
            }
        }
    };
    let allow = (LinuxSeccompAction::ScmpActAllow, None);
    let (default_action, rule_action) = if retain { (deny, allow) } else { (allow, deny) };
    let sys_admin = caps.iter().any(|c| c == "CAP_SYS_ADMIN");
    if retain && x.docker_whitelist && sys_admin {
        x.names
            .extend(DOCKER_SYS_ADMIN.iter().map(|s| s.to_string()));
        x.names.sort();
        x.names.dedup();
    }
    let names = x.names;
    let mut rules = Vec::new();
    if !names.is_empty() {
        let mut rule = LinuxSyscall::default();
        rule.set_names(names.clone())
            .set_action(rule_action.0)
            .set_errno_ret(rule_action.1)
            .set_args(None);
        rules.push(rule);
    }
    if retain && x.docker_whitelist {
        rules.extend(docker_conditional(&names));
    }
    let mut f = LinuxSeccomp::default();
    f.set_default_action(default_action.0)
        .set_default_errno_ret(default_action.1)
        .set_architectures(Some(seccomp_architectures()))
        .set_flags(None)
        .set_listener_path(None)
        .set_listener_metadata(None)
        .set_syscalls(Some(rules));
    Ok(Some(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// [`seccomp_filter`] as the JSON of the spec.
    fn seccomp_json(
        iso: &Isolators,
        rc: &RuntimeConfig,
        caps: &[String],
    ) -> Result<Option<Value>, Error> {
        seccomp_filter(iso, rc, caps).map(|f| f.map(|f| serde_json::to_value(f).unwrap()))
    }
    use stage1_abi::NetConfig;

    fn rc() -> RuntimeConfig {
        RuntimeConfig::new(NetConfig::Host, "h")
    }

    #[test]
    fn caps_default_retain_remove() {
        let mut iso = Isolators::default();
        assert_eq!(capability_set(&iso, &rc()).unwrap().len(), 14);
        iso.caps_remove = Some(vec!["mknod".into(), "CAP_KILL".into()]);
        let v = capability_set(&iso, &rc()).unwrap();
        assert_eq!(v.len(), 12);
        assert!(!v.contains(&"CAP_MKNOD".to_string()));
        iso.caps_retain = Some(vec!["CAP_NET_ADMIN".into()]);
        assert!(capability_set(&iso, &rc()).is_err());
        iso.caps_remove = None;
        assert_eq!(capability_set(&iso, &rc()).unwrap(), vec!["CAP_NET_ADMIN"]);
        iso.caps_retain = Some(vec!["CAP_BOGUS".into()]);
        assert!(capability_set(&iso, &rc())
            .unwrap_err()
            .to_string()
            .contains("unknown capability"));
        let mut r = rc();
        r.disable_capabilities = true;
        assert!(capability_set(&Isolators::default(), &r).unwrap().len() > 30);
    }

    #[test]
    fn seccomp_modes() {
        let iso = Isolators::default();
        let s = seccomp_json(&iso, &rc(), &[]).unwrap().unwrap();
        assert_eq!(s["defaultAction"], "SCMP_ACT_KILL_PROCESS");
        #[cfg(target_arch = "x86_64")]
        {
            let arches = s["architectures"].as_array().unwrap();
            assert_eq!(arches[..2], ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]);
        }
        assert_eq!(s["syscalls"][0]["action"], "SCMP_ACT_ALLOW");
        let names = s["syscalls"][0]["names"].as_array().unwrap();
        assert!(names.iter().any(|n| n == "read"));
        assert!(!names.iter().any(|n| n == "mount"));

        let mut iso = Isolators {
            seccomp: Some(Seccomp {
                mode: SeccompMode::Remove,
                errno: Some("ENOTSUP".into()),
                syscalls: vec!["mkdir".into(), "@docker/default-blacklist".into()],
            }),
            ..Default::default()
        };
        let s = seccomp_json(&iso, &rc(), &[]).unwrap().unwrap();
        assert_eq!(s["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(s["syscalls"][0]["action"], "SCMP_ACT_ERRNO");
        assert_eq!(s["syscalls"][0]["errnoRet"], 95);

        iso.seccomp = Some(Seccomp {
            mode: SeccompMode::Retain,
            errno: None,
            syscalls: vec!["@appc.io/all".into()],
        });
        assert!(seccomp_json(&iso, &rc(), &[]).unwrap().is_none());
        let mut r = rc();
        r.disable_seccomp = true;
        assert!(seccomp_json(&Isolators::default(), &r, &[])
            .unwrap()
            .is_none());
        iso.seccomp = Some(Seccomp {
            mode: SeccompMode::Retain,
            errno: Some("EBOGUS".into()),
            syscalls: vec!["read".into()],
        });
        assert!(seccomp_json(&iso, &rc(), &[]).is_err());
    }

    /// A rule as (names, action, errno, has args).
    type Rule = (Vec<String>, String, i64, bool);

    /// (allowed names, the other rules).
    fn rules(s: &Value) -> (Vec<String>, Vec<Rule>) {
        let r = s["syscalls"].as_array().unwrap();
        let names = |v: &Value| -> Vec<String> {
            v["names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
                .collect()
        };
        let allowed = names(&r[0]);
        assert_eq!(r[0]["action"], "SCMP_ACT_ALLOW");
        assert!(r[0].get("args").is_none());
        let rest = r[1..]
            .iter()
            .map(|x| {
                (
                    names(x),
                    x["action"].as_str().unwrap().to_string(),
                    x["errnoRet"].as_i64().unwrap_or(-1),
                    x.get("args").is_some(),
                )
            })
            .collect();
        (allowed, rest)
    }

    fn caps(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_profile_is_dockers_for_namespaces_and_io_uring() {
        let s = seccomp_json(&Isolators::default(), &rc(), &caps(DEFAULT_CAPS))
            .unwrap()
            .unwrap();
        let (allowed, rest) = rules(&s);
        for n in [
            "clone",
            "clone3",
            "unshare",
            "setns",
            "mount",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
        ] {
            assert!(!allowed.iter().any(|a| a == n), "{n} allowed outright");
        }
        assert!(allowed.iter().any(|a| a == "fork") && allowed.iter().any(|a| a == "vfork"));
        // clone: allowed without namespace flags, EPERM with any of the 7
        let clone: Vec<_> = rest.iter().filter(|r| r.0 == ["clone"]).collect();
        assert_eq!(clone.len(), 8);
        assert!(clone.iter().all(|r| r.3));
        assert_eq!(clone[0].1, "SCMP_ACT_ALLOW");
        assert!(clone[1..]
            .iter()
            .all(|r| r.1 == "SCMP_ACT_ERRNO" && r.2 == 1));
        let ns = &s["syscalls"][1]["args"][0];
        assert_eq!(ns["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(ns["valueTwo"], 0x7e02_0000);
        let bits: u64 = s["syscalls"].as_array().unwrap()[2..9]
            .iter()
            .map(|r| r["args"][0]["value"].as_u64().unwrap())
            .fold(0, |a, b| {
                assert_eq!(b.count_ones(), 1);
                a | b
            });
        assert_eq!(bits, CLONE_NS_FLAGS);
        // clone3 → ENOSYS (libc falls back to clone); unshare and io_uring → EPERM
        assert!(rest.contains(&(caps(&["clone3"]), "SCMP_ACT_ERRNO".into(), 38, false)));
        assert!(rest.contains(&(
            caps(&[
                "unshare",
                "io_uring_setup",
                "io_uring_enter",
                "io_uring_register"
            ]),
            "SCMP_ACT_ERRNO".into(),
            1,
            false
        )));
        // `remove @appc.io/empty` is the same profile
        let iso = Isolators {
            seccomp: Some(Seccomp {
                mode: SeccompMode::Remove,
                errno: None,
                syscalls: vec!["@appc.io/empty".into()],
            }),
            ..Default::default()
        };
        assert_eq!(
            seccomp_json(&iso, &rc(), &caps(DEFAULT_CAPS)).unwrap(),
            Some(s)
        );
    }

    #[test]
    fn cap_sys_admin_adds_dockers_sys_admin_set() {
        let mut c = caps(DEFAULT_CAPS);
        c.push("CAP_SYS_ADMIN".into());
        let s = seccomp_json(&Isolators::default(), &rc(), &c)
            .unwrap()
            .unwrap();
        let (allowed, rest) = rules(&s);
        for n in DOCKER_SYS_ADMIN {
            assert!(allowed.iter().any(|a| a == n), "{n}");
        }
        // no clone conditions left; io_uring still refused
        assert_eq!(
            rest,
            vec![(
                caps(&["io_uring_setup", "io_uring_enter", "io_uring_register"]),
                "SCMP_ACT_ERRNO".to_string(),
                1,
                false
            )]
        );
    }

    #[test]
    fn syscalls_the_user_names_win_over_the_conditions() {
        let with = |mode, syscalls: &[&str]| {
            let iso = Isolators {
                seccomp: Some(Seccomp {
                    mode,
                    errno: None,
                    syscalls: caps(syscalls),
                }),
                ..Default::default()
            };
            seccomp_json(&iso, &rc(), &caps(DEFAULT_CAPS))
                .unwrap()
                .unwrap()
        };
        // named with the group: allowed whatever the arguments
        let s = with(
            SeccompMode::Retain,
            &[
                "@docker/default-whitelist",
                "clone",
                "unshare",
                "io_uring_setup",
            ],
        );
        let (allowed, rest) = rules(&s);
        for n in ["clone", "unshare", "io_uring_setup"] {
            assert!(allowed.iter().any(|a| a == n), "{n}");
        }
        assert_eq!(
            rest,
            vec![
                (caps(&["clone3"]), "SCMP_ACT_ERRNO".to_string(), 38, false),
                (
                    caps(&["io_uring_enter", "io_uring_register"]),
                    "SCMP_ACT_ERRNO".to_string(),
                    1,
                    false
                ),
            ]
        );
        // a list of the user's own, without the group: exactly that list
        let s = with(SeccompMode::Retain, &["read", "write", "clone", "exit"]);
        assert_eq!(s["syscalls"].as_array().unwrap().len(), 1);
        // a deny-list: exactly that list, everything else allowed
        let s = with(SeccompMode::Remove, &["@docker/default-blacklist"]);
        assert_eq!(s["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(s["syscalls"].as_array().unwrap().len(), 1);
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn x32_probe_agrees_with_the_kernel_config() {
        let filtered = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .any(|l| l.starts_with("Seccomp:") && l.trim_end() != "Seccomp:\t0");
        let cfg = std::process::Command::new("zcat")
            .arg("/proc/config.gz")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if filtered || cfg.is_empty() {
            return; // nothing to compare with
        }
        if !cfg.lines().any(|l| l == "CONFIG_X86_X32_ABI=y") {
            assert!(!crate::sys::x32_syscalls());
            let s = seccomp_json(&Isolators::default(), &rc(), &[])
                .unwrap()
                .unwrap();
            assert_eq!(
                s["architectures"],
                json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
            );
        }
    }
}
