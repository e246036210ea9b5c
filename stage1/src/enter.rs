//! `rkt-stage1 enter --app=A -- CMD…`: run a command inside a running app, confined like the
//! app: its cgroups, all its namespaces (mount included, so its root filesystem), its user and
//! groups, capability sets, no_new_privs and seccomp filter. The exit code is the command's
//! (`128+n` for signal n).
//!
//! The command must not be able to reach past the pod into the caller's world:
//! - **Terminal.** It runs in a session of its own (`setsid`), so the caller's terminal is never
//!   its controlling terminal. When any of the caller's stdin/stdout/stderr is a terminal, it
//!   gets a fresh pty in their place (slave as controlling terminal), which this process relays
//!   ([`crate::app::console`]): the caller's terminal goes raw for the command's life, follows
//!   SIGWINCH, and is restored at the end. `TIOCSTI` or `open("/dev/tty")` in the pod thus only
//!   ever reach the pod's own pty. Other stdio fds (pipes, files) are inherited as they are.
//! - **File descriptors.** Every fd above 2 is closed before the exec (`close_range`), so
//!   nothing the caller's shell or stage1 had open (a host directory, the pod dir, namespace or
//!   cgroup files) is open in the pod; the cwd is set by `setns` to the app's root, then to the
//!   app's working directory inside it.
//! - **The runtime binary** (CVE-2019-5736). This process runs from a read-only mount of its
//!   binary (stage0 execs it from one; else [`run_from_read_only_exe`] re-execs it from a
//!   read-only bind mount in a private mount namespace) and is not dumpable, so a pod process
//!   that gets hold of `/proc/<pid>/exe` of the command before its exec — or execs
//!   `/proc/self/exe` through a `#!` line — cannot open the host's `rkt-stage1` for writing.
//! - **Born confined.** Nothing of `rkt enter` is ever in the pod with more than the app's
//!   privileges, nor with the caller's environment. A pod process may be able to ptrace what
//!   appears in its pid namespace (an app granted CAP_SYS_PTRACE: pods have no user namespace,
//!   so that is the capability in the host's, and it passes `ptrace_may_access` even for a
//!   non-dumpable process) and then inject system calls into it, or read its `environ`, `mem`
//!   and fds. So the steps that need host root happen in a process outside the pod's pid
//!   namespace, and only a fully confined process forks into it (see [`Child`]).
//!
//! Processes: this one (host root, host namespaces and cgroups; relays the terminal, restores
//! it, forwards signals) forks an *intermediate* that joins the app's cgroups and namespaces
//! (the pid namespace for its children only), scrubs the inherited environment from its memory,
//! closes every fd but the ones it hands on, and confines itself exactly like the app (groups,
//! uid/gid, all capability sets, no_new_privs, seccomp filter) — still invisible to the pod,
//! which cannot see outside its pid namespace. Only then does it fork the *command* into the
//! pod's pid namespace; the command takes its session and pty, closes the rest, changes to the
//! app's working dir and execs. The intermediate forwards the signals it gets from here to the
//! command and exits with the command's code (128+n for signal n). This is runc's
//! `runc init` staging in spirit. The alternative — confining this process itself and forking
//! the command — would leave the relay as the app's user under the app's seccomp filter, unable
//! to restore a caller's terminal it no longer owns, and in the app's cgroups.
//!
//! libcontainer's tenant builder drops the seccomp filter and defaults the user to root, so
//! stage1 does the few steps itself with libcontainer's capability and seccomp helpers, from the
//! app's spec as [`crate::security::seccomp::app_view`] reads it.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{Gid, Pid, Uid};
use oci_spec::runtime::Spec;
use stage1_abi::{exit, paths, read_json, AppStatus};

use crate::app::console::{Console, Relay};
use crate::{sys, Error};

/// What can go wrong in `rkt enter`.
#[derive(Debug, thiserror::Error)]
pub enum EnterError {
    /// No status file for the app.
    #[error("app {0:?} not found in this pod")]
    NoSuchApp(String),
    /// The app has exited (or has no process).
    #[error("app {0:?} is not running")]
    NotRunning(String),
    /// An empty command.
    #[error("no command to run")]
    NoCommand,
    /// The app's spec cannot be used.
    #[error("{}: {msg}", path.display())]
    Spec {
        /// The spec's path.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The command could not be confined or started (the child's report).
    #[error("app {app:?}: {msg}")]
    Confine {
        /// The app.
        app: String,
        /// The child's report.
        msg: String,
    },
    /// The binary cannot be bind-mounted read-only.
    #[error("the stage1 binary {} is not a file that can be mounted", .0.display())]
    ExeNotMountable(PathBuf),
    /// The binary changed under us.
    #[error("the stage1 binary {} was replaced while starting", .0.display())]
    ExeReplaced(PathBuf),
    /// An argument with a NUL byte.
    #[error("argument {0:?} contains NUL")]
    Nul(std::ffi::OsString),
}

/// Namespaces joined, in order (mount last: paths are opened before any join). The pod's user
/// namespace (`--private-users`) comes first: it owns the others, and from then on the command
/// holds no privilege over anything of the host.
const NAMESPACES: &[(&str, CloneFlags)] = &[
    ("user", CloneFlags::CLONE_NEWUSER),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Signals the relay handles; the command gets them forwarded (SIGWINCH resizes its pty).
const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// How long output still in the pty is copied after the command exited (a background process
/// of the pod may hold the terminal open).
const DRAIN: Duration = Duration::from_millis(200);

/// What the intermediate needs to confine itself and fork the command.
struct Child<'a> {
    app: &'a str,
    app_pid: Pid,
    spec: &'a Spec,
    cmd: &'a [String],
    /// The namespaces to join, opened from the host's view.
    ns: Vec<(OwnedFd, CloneFlags)>,
    /// The pod's pid namespace (None: this process's own), joined for children only.
    pidns: Option<OwnedFd>,
    /// The pty slave and which of stdio it replaces.
    tty: Option<(OwnedFd, Relay)>,
    /// The signal mask to restore before exec.
    sigmask: SigSet,
}

/// Run `cmd` in `app`; returns its exit code.
pub fn enter(app: &str, cmd: &[String]) -> Result<i32, Error> {
    run_from_read_only_exe()?;
    let pod_dir = std::env::current_dir().map_err(|e| Error::io(Path::new("."), e))?;
    let status: AppStatus = read_json(&pod_dir.join(paths::app_status(app)))
        .map_err(|_| EnterError::NoSuchApp(app.to_string()))?;
    let pid = match (status.pid, status.finished()) {
        (Some(p), false) if Path::new(&format!("/proc/{p}")).exists() => Pid::from_raw(p),
        _ => return Err(EnterError::NotRunning(app.to_string()).into()),
    };
    if cmd.is_empty() {
        return Err(EnterError::NoCommand.into());
    }
    let cfg = pod_dir
        .join(paths::app_bundle(app))
        .join(paths::BUNDLE_CONFIG);
    let spec = Spec::load(&cfg).map_err(|e| EnterError::Spec {
        path: cfg.clone(),
        msg: e.to_string(),
    })?;
    if spec.process().is_none() {
        return Err(EnterError::Spec {
            path: cfg,
            msg: "no process".into(),
        }
        .into());
    }

    // everything from the host's view, before any join: the namespaces, and the pty (from the
    // host's /dev/ptmx, never the pod's)
    let mut ns: Vec<(OwnedFd, CloneFlags)> = Vec::new();
    let own = |n: &str| std::fs::read_link(format!("/proc/self/ns/{n}")).ok();
    for (n, flag) in NAMESPACES {
        let p = format!("/proc/{pid}/ns/{n}");
        if std::fs::read_link(&p).ok() == own(n) {
            continue; // e.g. --net=host: nothing to join
        }
        let f = std::fs::File::open(&p).map_err(|e| Error::io(Path::new(&p), e))?;
        ns.push((f.into(), *flag));
    }
    let pidns = format!("/proc/{pid}/ns/pid");
    let pidns = if std::fs::read_link(&pidns).ok() != own("pid") {
        let f = std::fs::File::open(&pidns).map_err(|e| Error::io(Path::new(&pidns), e))?;
        Some(OwnedFd::from(f))
    } else {
        None
    };
    let relay = Relay::of_stdio();
    let pty = match relay {
        Some(_) => Some(
            nix::pty::openpty(None, None)
                .map_err(|e| Error::Sys("allocating a terminal for the command".into(), e))?,
        ),
        None => None,
    };

    // the children are not dumpable until the exec: a pod process without CAP_SYS_PTRACE may
    // not open the command's /proc files (exe, fd, mem, environ) while it still is stage1
    nix::sys::prctl::set_dumpable(false)
        .map_err(|e| Error::Sys("making stage1 non-dumpable".into(), e))?;
    let mut blocked = SigSet::empty();
    blocked.add(Signal::SIGCHLD);
    blocked.add(Signal::SIGWINCH);
    for s in FORWARDED {
        blocked.add(*s);
    }
    let sigmask = blocked
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .map_err(|e| Error::Sys("blocking signals".into(), e))?;
    let sfd = SignalFd::with_flags(&blocked, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| Error::Sys("creating a signalfd".into(), e))?;

    // a close-on-exec pipe carries the child's error back if it fails before exec
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::Sys("creating enter pipe".into(), e))?;
    let (master, slave) = match pty {
        Some(p) => (Some(p.master), Some(p.slave)),
        None => (None, None),
    };
    let child = Child {
        app,
        app_pid: pid,
        spec: &spec,
        cmd,
        ns,
        pidns,
        tty: slave.zip(relay),
        sigmask,
    };
    match sys::fork().map_err(|e| Error::Sys("fork".into(), e))? {
        nix::unistd::ForkResult::Child => {
            drop(rd);
            drop(master);
            drop(sfd);
            // the intermediate (and, if it fails before its exec, the command) ends here
            match child.confine_and_fork(wr.as_raw_fd()) {
                Ok(command) => {
                    drop(wr);
                    forward_and_exit(command)
                }
                Err(err) => {
                    let _ = std::io::Write::write_all(&mut std::fs::File::from(wr), err.as_bytes());
                    std::process::exit(exit::RKT_FAILURE);
                }
            }
        }
        nix::unistd::ForkResult::Parent { child: cpid } => {
            drop(wr);
            drop(child);
            let raw = read_report(std::fs::File::from(rd), &sfd, cpid);
            let err = printable(&String::from_utf8_lossy(&raw));
            let console = match (master, relay) {
                (Some(m), Some(r)) if err.is_empty() => Some(Console::start_with(m, r)?),
                _ => None,
            };
            let code = relay_until_exit(cpid, console, &sfd)?;
            if err.is_empty() {
                Ok(code)
            } else {
                Err(EnterError::Confine {
                    app: app.to_string(),
                    msg: err,
                }
                .into())
            }
        }
    }
}

/// Relay the terminal (if any) and forward signals until the command `child` exits; its exit
/// code. Dropping the console at the end restores the caller's terminal.
fn relay_until_exit(
    child: Pid,
    mut console: Option<Console>,
    sfd: &SignalFd,
) -> Result<i32, Error> {
    loop {
        // first: SIGCHLD may have been consumed while the report was read
        let code = loop {
            match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, c)) => break Some(c),
                Ok(WaitStatus::Signaled(_, s, _)) => break Some(exit::from_signal(s as i32)),
                Ok(WaitStatus::StillAlive) => break None,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::Sys("waiting for the command".into(), e)),
            }
        };
        if let Some(code) = code {
            if let Some(c) = console.as_mut() {
                c.drain(DRAIN);
            }
            return Ok(code);
        }
        let (want_in, want_master) = console.as_ref().map_or((None, None), |c| c.interest());
        let stdin = std::io::stdin();
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(f) = want_in {
            fds.push(PollFd::new(stdin.as_fd(), f));
        }
        if let (Some(f), Some(c)) = (want_master, console.as_ref()) {
            fds.push(PollFd::new(c.master(), f));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::Sys("polling the terminal".into(), e)),
        }
        let revents: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        if let Some(c) = console.as_mut() {
            let mut it = revents[1..].iter().copied();
            let r_in = want_in.and_then(|_| it.next());
            let r_master = want_master.and_then(|_| it.next());
            c.handle(r_in, r_master);
        }
        if revents[0].is_empty() {
            continue;
        }
        while let Ok(Some(si)) = sfd.read_signal() {
            let Ok(sig) = Signal::try_from(si.ssi_signo as i32) else {
                continue;
            };
            match sig {
                Signal::SIGCHLD => {}
                Signal::SIGWINCH => {
                    if let Some(c) = &console {
                        c.resize();
                    }
                }
                s => {
                    let _ = nix::sys::signal::kill(child, s);
                }
            }
        }
    }
}

/// What the intermediate or the command reported on the error pipe before the exec (nothing:
/// the command runs), at most [`ERR_MAX`] bytes. The command may have been taken over with
/// ptrace by a pod process before its exec, and the pipe's write end handed to a process that
/// never ends: so this stops at the intermediate's end too, and forwards signals meanwhile
/// (`rkt enter` stays interruptible).
fn read_report(mut pipe: std::fs::File, sfd: &SignalFd, child: Pid) -> Vec<u8> {
    let mut raw = Vec::new();
    loop {
        let mut fds = [
            PollFd::new(pipe.as_fd(), PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return raw,
        }
        let [r_pipe, r_sig] = fds.map(|f| f.revents().unwrap_or(PollFlags::empty()));
        if !r_pipe.is_empty() {
            let mut buf = [0u8; 1024];
            match std::io::Read::read(&mut pipe, &mut buf) {
                Ok(0) => return raw,
                Ok(n) => {
                    let room = (ERR_MAX as usize).saturating_sub(raw.len());
                    raw.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return raw,
            }
        }
        if r_sig.is_empty() {
            continue;
        }
        let mut ended = false;
        while let Ok(Some(si)) = sfd.read_signal() {
            match Signal::try_from(si.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => ended = true,
                Ok(Signal::SIGWINCH) | Err(_) => {}
                Ok(s) => {
                    let _ = nix::sys::signal::kill(child, s);
                }
            }
        }
        if ended {
            // what is in the pipe already, without waiting for writers that may never close
            let _ = nix::fcntl::fcntl(
                pipe.as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
            let mut buf = [0u8; 1024];
            while raw.len() < ERR_MAX as usize {
                match std::io::Read::read(&mut pipe, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let room = ERR_MAX as usize - raw.len();
                        raw.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
            }
            return raw;
        }
    }
}

impl Child<'_> {
    /// In the intermediate (forked, host side, invisible to the pod): join the app's cgroups and
    /// namespaces, drop the inherited environment and fds, confine like the app, then fork the
    /// command into the pod's pid namespace. Returns the command's pid (host view), or why it
    /// failed; in the command, returns only why its exec failed.
    fn confine_and_fork(mut self, err_fd: RawFd) -> Result<Pid, String> {
        // no byte of the caller's environment in what goes into the pod (the command's comes
        // from the app's spec); first, while /proc is the host's
        sys::scrub_environ().map_err(|e| format!("dropping the caller's environment: {e}"))?;
        // the app's cgroups, read from the host's view (the command inherits them)
        crate::cgroups::join_cgroups_of(self.app_pid).map_err(|e| e.to_string())?;
        for (fd, flag) in &self.ns {
            nix::sched::setns(fd, *flag).map_err(|e| format!("joining {flag:?}: {e}"))?;
        }
        if let Some(fd) = &self.pidns {
            // applies to children only: this process stays outside, out of the pod's sight
            nix::sched::setns(fd, CloneFlags::CLONE_NEWPID)
                .map_err(|e| format!("joining the pod's pid namespace: {e}"))?;
        }
        // what the command inherits and a pod process could read before its exec: no fd but
        // stdio, the pty slave and the error pipe (close-on-exec)
        let slave_fd = self.tty.as_ref().map(|(s, _)| s.as_raw_fd());
        sys::close_fds_from(3, &[err_fd, slave_fd.unwrap_or(-1)]);
        // closed already: forget them without closing (the numbers may be reused)
        for (fd, _) in std::mem::take(&mut self.ns) {
            let _ = fd.into_raw_fd();
        }
        if let Some(fd) = self.pidns.take() {
            let _ = fd.into_raw_fd();
        }

        let process = self
            .spec
            .process()
            .as_ref()
            .ok_or("no process in app spec")?;
        let env: Vec<String> = process.env().clone().unwrap_or_default();
        let cstr = |s: &str| CString::new(s).map_err(|_| format!("argument {s:?} contains NUL"));
        let argv: Vec<CString> = self.cmd.iter().map(|s| cstr(s)).collect::<Result<_, _>>()?;
        let envp: Vec<CString> = env.iter().map(|s| cstr(s)).collect::<Result<_, _>>()?;
        confine(self.spec)?;

        match sys::fork().map_err(|e| format!("fork: {e}"))? {
            nix::unistd::ForkResult::Parent { child } => Ok(child),
            nix::unistd::ForkResult::Child => {
                // the command, in the pod's pid namespace, as confined as the app from its start
                Err(self.become_command(err_fd, &env, &argv, &envp))
            }
        }
    }

    /// In the command: leave the caller's session, take the pty, close every other fd, resolve
    /// the command in the app's PATH, change to the app's working dir and exec. Returns why it
    /// failed.
    fn become_command(
        self,
        err_fd: RawFd,
        env: &[String],
        argv: &[CString],
        envp: &[CString],
    ) -> String {
        if let Err(e) = self.sigmask.thread_set_mask() {
            return format!("restoring the signal mask: {e}");
        }
        if let Err(e) = nix::unistd::setsid() {
            return format!("creating a session: {e}");
        }
        if let Some((slave, relay)) = &self.tty {
            if let Err(e) = sys::set_controlling_tty(slave.as_fd()) {
                return format!("taking the terminal: {e}");
            }
            for fd in 0..3 {
                if relay.ttys[fd as usize] {
                    if let Err(e) = nix::unistd::dup2(slave.as_raw_fd(), fd) {
                        return format!("connecting the terminal to fd {fd}: {e}");
                    }
                }
            }
        }
        sys::close_fds_from(3, &[err_fd]);
        std::mem::forget(self.tty);
        let Some(process) = self.spec.process() else {
            return "no process in app spec".into();
        };
        let prog = match resolve(&self.cmd[0], env) {
            Some(p) => p,
            None => return format!("{:?} not found in app {:?}", self.cmd[0], self.app),
        };
        let prog = match CString::new(prog) {
            Ok(p) => p,
            Err(_) => return "the command contains NUL".into(),
        };
        // inside the pod, after the fds are gone: a working dir through /proc/self/fd/N finds
        // nothing of the host
        let cwd = process.cwd();
        if let Err(e) = nix::unistd::chdir(cwd) {
            return format!("changing to {}: {e}", cwd.display());
        }
        sys::default_sigpipe();
        match nix::unistd::execve(&prog, argv, envp) {
            Err(e) => format!("executing {prog:?}: {e}"),
            Ok(never) => match never {},
        }
    }
}

/// In the intermediate, once the command runs: forward the signals `rkt enter` relays (they
/// are blocked here, and wait) to the command, and exit with its exit code (`128+n` for signal
/// n) when it ends.
fn forward_and_exit(command: Pid) -> ! {
    let mut wait_for = SigSet::empty();
    wait_for.add(Signal::SIGCHLD);
    for s in FORWARDED {
        wait_for.add(*s);
    }
    loop {
        match waitpid(command, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, c)) => std::process::exit(c),
            Ok(WaitStatus::Signaled(_, s, _)) => std::process::exit(exit::from_signal(s as i32)),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => std::process::exit(exit::RKT_FAILURE),
        }
        match wait_for.wait() {
            Ok(Signal::SIGCHLD) => {}
            Ok(s) => {
                let _ = nix::sys::signal::kill(command, s);
            }
            // cannot wait for signals (the app's filter may refuse it): wait for the command
            Err(_) => loop {
                match waitpid(command, None) {
                    Ok(WaitStatus::Exited(_, c)) => std::process::exit(c),
                    Ok(WaitStatus::Signaled(_, s, _)) => {
                        std::process::exit(exit::from_signal(s as i32))
                    }
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(_) => std::process::exit(exit::RKT_FAILURE),
                }
            },
        }
    }
}

/// Longest error report taken from the intermediate or the command.
const ERR_MAX: u64 = 4096;

/// `msg` with control characters (but newlines) escaped: it is printed on the admin's terminal,
/// and may come from a process a pod process controlled.
fn printable(msg: &str) -> String {
    msg.chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() && c != '\n' {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            esc
        })
        .collect()
}

/// `cmd` as a path: itself if it has a slash, else the first file of that name in the app's
/// `PATH` (from `env`, else the usual one).
fn resolve(cmd: &str, env: &[String]) -> Option<String> {
    if cmd.contains('/') {
        return Some(cmd.to_string());
    }
    let path_var = env
        .iter()
        .find_map(|v| v.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| format!("{}/{cmd}", d.trim_end_matches('/')))
        .find(|p| Path::new(p).is_file())
}

/// Re-exec this process from a read-only bind mount of its own binary (in a private mount
/// namespace that is a slave of the host's), unless the binary already is on a read-only mount.
/// A pod process that opens `/proc/<pid>/exe` of a stage1 process that joined the pod — the
/// entered command before its exec, or stage1 exec'd again through a `#!/proc/self/exe` line —
/// then gets a file it cannot open for writing (EROFS): the host's `rkt-stage1` is safe from
/// being overwritten (CVE-2019-5736). Costs one exec and no copy of the binary.
pub fn run_from_read_only_exe() -> Result<(), Error> {
    use nix::mount::{mount, MsFlags};
    use nix::sys::statvfs::{statvfs, FsFlags};
    let exe = Path::new("/proc/self/exe");
    let st = statvfs(exe).map_err(|e| Error::Sys("inspecting /proc/self/exe".into(), e))?;
    if st.flags().contains(FsFlags::ST_RDONLY) {
        return Ok(());
    }
    let path: PathBuf = std::fs::read_link(exe).map_err(|e| Error::io(exe, e))?;
    if !path.is_absolute() || path.to_string_lossy().ends_with(" (deleted)") {
        return Err(EnterError::ExeNotMountable(path).into());
    }
    let id = |p: &Path| std::fs::metadata(p).map(|m| (m.dev(), m.ino()));
    let running = id(exe).map_err(|e| Error::io(exe, e))?;
    let sys_err = |what: &str| {
        let what = format!("{what} {}", path.display());
        move |e| Error::Sys(what, e)
    };
    sys::unshare_slave_mount_namespace().map_err(sys_err("a slave mount namespace for"))?;
    // the running binary's own mount belongs to the namespace left behind: bind its path
    mount(
        Some(&path),
        &path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(sys_err("bind-mounting"))?;
    if id(&path).ok() != Some(running) {
        return Err(EnterError::ExeReplaced(path).into());
    }
    mount(
        None::<&str>,
        &path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(sys_err("making read-only"))?;
    let cstr = |s: &std::ffi::OsStr| {
        CString::new(std::os::unix::ffi::OsStrExt::as_bytes(s))
            .map_err(|_| EnterError::Nul(s.to_owned()))
    };
    let argv = std::env::args_os()
        .map(|a| cstr(&a))
        .collect::<Result<Vec<_>, _>>()?;
    let prog = cstr(path.as_os_str())?;
    let e = nix::unistd::execv(&prog, &argv).unwrap_err();
    Err(Error::Sys(format!("re-executing {}", path.display()), e))
}

/// Confine this process exactly like the app: its seccomp filter, supplementary groups,
/// uid/gid, capability sets (all five), no_new_privs; and not dumpable.
fn confine(spec: &Spec) -> Result<(), String> {
    let syscall = crate::libcontainer_bypass::syscall();
    let process = spec.process().as_ref().ok_or("no process in app spec")?;
    // the filter and capabilities the app runs with (stage1 may have loaded its filter itself)
    let (seccomp, caps) = crate::security::seccomp::app_view(spec)?;
    let seccomp = seccomp.as_ref();
    let nnp = process.no_new_privileges() == Some(true);
    // as libcontainer: without no_new_privs the filter needs CAP_SYS_ADMIN, so it goes first
    if let (Some(s), false) = (seccomp, nnp) {
        crate::libcontainer_bypass::load_seccomp(s)?;
    }
    let user = process.user();
    let gids: Vec<Gid> = user
        .additional_gids()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(Gid::from_raw)
        .collect();
    syscall
        .set_groups(&gids)
        .map_err(|e| format!("setting supplementary groups: {e}"))?;
    syscall
        .set_id(Uid::from_raw(user.uid()), Gid::from_raw(user.gid()))
        .map_err(|e| format!("setting uid/gid: {e}"))?;
    crate::libcontainer_bypass::reset_effective_caps(syscall.as_ref())?;
    if let Some(caps) = &caps {
        crate::libcontainer_bypass::drop_privileges(caps, syscall.as_ref())?;
    }
    // a change of uid/gid resets dumpable to fs.suid_dumpable: set it again
    nix::sys::prctl::set_dumpable(false).map_err(|e| format!("making stage1 non-dumpable: {e}"))?;
    if nnp {
        nix::sys::prctl::set_no_new_privs().map_err(|e| format!("setting no_new_privs: {e}"))?;
        if let Some(s) = seccomp {
            crate::libcontainer_bypass::load_seccomp(s)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_in_the_apps_path() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::write(bin.join("tool"), "").unwrap();
        std::fs::create_dir(bin.join("adir")).unwrap();
        let env = vec![format!("PATH=/nonexistent::{}/", bin.display())];
        assert_eq!(
            resolve("tool", &env),
            Some(format!("{}/tool", bin.display()))
        );
        // a directory of that name is not a command; a path is taken as it is
        assert_eq!(resolve("adir", &env), None);
        assert_eq!(resolve("./x/y", &env).as_deref(), Some("./x/y"));
        // without PATH in the app's env: the usual one
        assert!(resolve("sh", &[]).is_some_and(|p| p.ends_with("bin/sh")));
    }

    #[test]
    fn reports_are_printable() {
        assert_eq!(printable("a\x1b[2Jb\nc\r"), "a\\u{1b}[2Jb\nc\\r");
        assert_eq!(printable("\"sh\" not found"), "\"sh\" not found");
    }

    #[test]
    fn environ_range_is_read_after_the_command_name() {
        // a command name with spaces and parentheses, then fields 3..=52
        let mut stat = String::from("42 (a) b (c) ");
        for n in 3..=52 {
            stat.push_str(&format!(
                "{} ",
                if n == 50 {
                    1000
                } else if n == 51 {
                    1500
                } else {
                    n
                }
            ));
        }
        assert_eq!(sys::environ_range(&stat), Some((1000, 1500)));
        assert_eq!(sys::environ_range("42 (a) R 1 2"), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(sys::environ_range(&own).is_some(), "{own}");
    }

    /// Fork, run `f` in the child (its result: one byte through a pipe), return that byte.
    fn in_child(f: impl FnOnce(RawFd) -> u8) -> u8 {
        let (rd, wr) = nix::unistd::pipe().unwrap();
        match sys::fork().unwrap() {
            nix::unistd::ForkResult::Child => {
                drop(rd);
                let b = f(wr.as_raw_fd());
                let _ = nix::unistd::write(&wr, &[b]);
                std::process::exit(0);
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(wr);
                let mut b = [0u8; 1];
                let n = nix::unistd::read(rd.as_raw_fd(), &mut b).unwrap();
                let _ = waitpid(child, None);
                assert_eq!(n, 1, "the child reported nothing");
                b[0]
            }
        }
    }

    #[test]
    fn closes_every_fd_above_2_but_the_kept_ones() {
        let open_mask = in_child(|wr| {
            let null = std::fs::File::open("/dev/null").unwrap();
            for fd in 40..48 {
                nix::unistd::dup2(null.as_raw_fd(), fd).unwrap();
            }
            sys::close_fds_from(3, &[wr, 42, 45, -1, 2]);
            let mut mask = 0u8;
            for fd in 40..48 {
                if nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_ok() {
                    mask |= 1 << (fd - 40);
                }
            }
            // stdio stays
            if nix::fcntl::fcntl(2, nix::fcntl::FcntlArg::F_GETFD).is_err() {
                mask |= 1;
            }
            std::mem::forget(null);
            mask
        });
        assert_eq!(open_mask, (1 << 2) | (1 << 5));
    }

    #[test]
    fn scrubbed_environment_is_gone_from_proc_environ() {
        let (rd, wr) = nix::unistd::pipe().unwrap();
        let (go_rd, go_wr) = nix::unistd::pipe().unwrap();
        match sys::fork().unwrap() {
            nix::unistd::ForkResult::Child => {
                drop(rd);
                drop(go_wr);
                let ok = sys::scrub_environ().is_ok() && std::env::var_os("PATH").is_none();
                let _ = nix::unistd::write(&wr, &[ok as u8]);
                // wait for the parent to have looked
                let _ = nix::unistd::read(go_rd.as_raw_fd(), &mut [0u8; 1]);
                std::process::exit(0);
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(wr);
                drop(go_rd);
                let mut b = [0u8; 1];
                assert_eq!(nix::unistd::read(rd.as_raw_fd(), &mut b).unwrap(), 1);
                let env = std::fs::read(format!("/proc/{child}/environ")).unwrap();
                drop(go_wr);
                let _ = waitpid(child, None);
                assert_eq!(b[0], 1, "scrub failed or PATH still set");
                assert!(
                    std::env::var_os("PATH").is_some(),
                    "the parent's is untouched"
                );
                assert!(!env.is_empty() && env.iter().all(|&c| c == 0), "{env:?}");
            }
        }
    }

    #[test]
    fn the_report_ends_with_the_intermediate_even_if_a_writer_lingers() {
        // in a forked (single-threaded) child: SIGCHLD must reach its signalfd
        let got = in_child(|_| {
            // a hang kills the child: the parent then gets no byte
            nix::unistd::alarm::set(10);
            let mut set = SigSet::empty();
            set.add(Signal::SIGCHLD);
            set.thread_block().unwrap();
            let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK).unwrap();
            let (rd, wr) = nix::unistd::pipe().unwrap();
            let pid = match sys::fork().unwrap() {
                nix::unistd::ForkResult::Child => {
                    let _ = nix::unistd::write(&wr, b"boom\x1b");
                    std::process::exit(1);
                }
                nix::unistd::ForkResult::Parent { child } => child,
            };
            // `wr` stays open here: a writer that never closes
            let raw = read_report(std::fs::File::from(rd), &sfd, pid);
            drop(wr);
            u8::from(printable(&String::from_utf8_lossy(&raw)) == "boom\\u{1b}")
        });
        assert_eq!(got, 1);
    }
}
