//! `rkt-stage1 run`: set the pod up, start its apps, supervise them on one thread (signalfd +
//! poll), tear down and return the pod's exit code.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use stage1_abi::{exit, paths, read_json, PodManifest, RuntimeConfig};

use crate::apps::{self, AppProc, PodCtx};
use crate::cgroups::PodCgroups;
use crate::console::{self, Console, ConsoleSocket};
use crate::sandbox::{self, Sandbox};
use crate::Error;

/// Why the pod is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// An app failed with this exit code.
    Failed(i32),
    /// stage1 got SIGTERM/SIGINT/SIGHUP.
    Requested,
}

/// The running pod.
pub struct Pod {
    pod_dir: PathBuf,
    pod: PodManifest,
    rc: RuntimeConfig,
    sandbox: Option<Sandbox>,
    cgroups: Option<PodCgroups>,
    net: Option<crate::network::PodNet>,
    apps: Vec<AppProc>,
    sfd: SignalFd,
    stop: Option<Stop>,
    kill_at: Option<Instant>,
    killed: bool,
    /// When to drop set-up code from the resident set (see [`crate::sys::pageout_file_mappings`]).
    pageout_at: Option<Instant>,
    /// Where the interactive app's terminal comes from, while it is being created.
    console_socket: Option<ConsoleSocket>,
    /// The relay to the interactive app's terminal.
    console: Option<Console>,
}

/// A pod that still runs this long after it became ready is a long-running one: stage1 then
/// lets the kernel reclaim its set-up code. Short pods never pay for re-reading it.
const PAGEOUT_AFTER: Duration = Duration::from_secs(1);

/// Keep the inherited pod lock fd open (it is, as long as nobody closes it) and make sure it is
/// not inherited by anything stage1 execs.
fn check_lock_fd() -> Result<(), Error> {
    let Ok(v) = std::env::var(stage1_abi::env::LOCK_FD) else {
        tracing::warn!(
            "{} not set: running without the pod lock",
            stage1_abi::env::LOCK_FD
        );
        return Ok(());
    };
    let fd: i32 = v.parse().map_err(|_| {
        Error::Invalid(format!(
            "{}={v:?} is not a file descriptor",
            stage1_abi::env::LOCK_FD
        ))
    })?;
    if !Path::new(&format!("/proc/self/fd/{fd}")).exists() {
        return Err(Error::Invalid(format!("pod lock fd {fd} is not open")));
    }
    Ok(())
}

/// Run the pod whose dir is the current directory. Returns the pod's exit code.
pub fn run() -> Result<i32, Error> {
    let pod_dir = std::env::current_dir().map_err(|e| Error::io(Path::new("."), e))?;
    let pod: PodManifest = read_json(&pod_dir.join(paths::POD_MANIFEST))?;
    pod.validate()?;
    let rc: RuntimeConfig = read_json(&pod_dir.join(paths::RUNTIME_CONFIG))?;
    if rc.interactive && pod.apps.len() > 1 {
        return Err(Error::Invalid(
            "interactive mode only works with one app".into(),
        ));
    }
    check_lock_fd()?;
    write_file(
        &pod_dir.join(paths::PID),
        &format!("{}\n", std::process::id()),
    )?;
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| Error::Sys("becoming child subreaper".into(), e))?;

    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGWINCH,
    ] {
        mask.add(s);
    }
    mask.thread_block()
        .map_err(|e| Error::Sys("blocking signals".into(), e))?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| Error::Sys("creating signalfd".into(), e))?;
    std::fs::create_dir_all(pod_dir.join(paths::STATUS_DIR))
        .map_err(|e| Error::io(&pod_dir.join(paths::STATUS_DIR), e))?;

    let mut p = Pod {
        pod_dir,
        pod,
        rc,
        sandbox: None,
        cgroups: None,
        net: None,
        apps: Vec::new(),
        sfd,
        stop: None,
        kill_at: None,
        killed: false,
        pageout_at: None,
        console_socket: None,
        console: None,
    };
    let res = p.setup().and_then(|()| p.supervise());
    let td = p.teardown();
    let code = res?;
    if let Err(e) = td {
        tracing::warn!("teardown: {e}");
    }
    Ok(code)
}

fn write_file(p: &Path, s: &str) -> Result<(), Error> {
    std::fs::write(p, s).map_err(|e| Error::io(p, e))
}

impl Pod {
    fn setup(&mut self) -> Result<(), Error> {
        tracing::debug!("setting up the pod");
        let netplan = crate::network::plan(&self.pod, &self.rc)?;
        let cg = self.cgroups.insert(PodCgroups::create(
            &self.pod.uuid,
            &self.pod_dir.join(paths::CGROUPS),
        )?);
        if self.rc.interactive && console::stdin_is_tty() {
            // relative: a socket path has at most 108 bytes (stage1 runs in the pod dir)
            let rel = Path::new(paths::STATE_DIR);
            std::fs::create_dir_all(rel).map_err(|e| Error::io(rel, e))?;
            self.console_socket = Some(ConsoleSocket::bind(
                rel,
                &self.pod_dir.join(paths::STATE_DIR),
            )?);
        }
        let csock = self.console_socket.as_ref().map(ConsoleSocket::path);
        // helpers move into the app cgroups (slow on v1) while the sandbox is built
        let mut helpers = Vec::new();
        for a in &self.pod.apps {
            helpers.push(apps::prepare_app(
                &self.pod_dir,
                &self.pod.uuid,
                &self.rc,
                cg,
                a,
                csock,
            )?);
        }
        tracing::debug!("cgroups created, helpers forked");
        let sb = sandbox::create(&self.rc)?;
        tracing::debug!(pid = %sb.pid, "sandbox created");
        write_file(
            &self.pod_dir.join(paths::SANDBOX_PID),
            &format!("{}\n", sb.pid),
        )?;
        let sb_pid = sb.pid;
        self.sandbox = Some(sb);
        // Plugins take a while (exec, netlink, a veth): unless one may return DNS settings the
        // bundles need, the helpers create the containers meanwhile.
        let overlap = netplan
            .as_ref()
            .is_some_and(|p| !p.may_return_dns() || !self.rc.dns.is_empty());
        if let (Some(plan), false) = (&netplan, overlap) {
            self.net = Some(crate::network::setup(
                &self.pod_dir,
                &self.pod,
                &self.rc,
                plan,
                sb_pid,
            )?);
            tracing::debug!("network set up");
        }
        crate::volumes::prepare_empty_volumes(&self.pod_dir, &self.pod)?;
        let mut creating = Vec::new();
        for (i, h) in helpers.into_iter().enumerate() {
            let c = self.with_ctx(|ctx, pod| apps::create_app(ctx, &pod.apps[i], h))?;
            creating.push(c);
        }
        if let (Some(plan), true) = (&netplan, overlap) {
            match crate::network::setup(&self.pod_dir, &self.pod, &self.rc, plan, sb_pid) {
                Ok(n) => self.net = Some(n),
                Err(e) => {
                    creating.into_iter().for_each(apps::Creating::abandon);
                    return Err(e);
                }
            }
            tracing::debug!("network set up");
        }
        let mut creating = creating.into_iter();
        for (i, c) in creating.by_ref().enumerate() {
            let a = match self.with_ctx(|ctx, pod| apps::finish_app(ctx, &pod.apps[i], c)) {
                Ok(a) => a,
                Err(e) => {
                    creating.for_each(apps::Creating::abandon);
                    return Err(e);
                }
            };
            tracing::debug!(app = %a.status.app, pid = %a.pid, "app started");
            self.apps.push(a);
        }
        if let Some(cs) = self.console_socket.take() {
            // libcontainer sent the master before it reported the container created
            let master = cs.receive_master(Duration::from_secs(10))?;
            self.console = Some(Console::start(master)?);
            tracing::debug!("relaying the app's terminal");
        }
        write_file(&self.pod_dir.join(paths::READY), "")?;
        self.pageout_at = Some(Instant::now() + PAGEOUT_AFTER);
        Ok(())
    }

    /// Run `f` with what starting an app needs from the pod.
    fn with_ctx<T>(
        &self,
        f: impl FnOnce(&PodCtx<'_>, &PodManifest) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let (Some(sandbox), Some(cgroups)) = (&self.sandbox, &self.cgroups) else {
            return Err(Error::Invalid("pod not set up".into()));
        };
        let ctx = PodCtx {
            pod_dir: &self.pod_dir,
            pod: &self.pod,
            rc: &self.rc,
            sandbox,
            cgroups,
            dns: crate::network::effective_dns(&self.rc, self.net.as_ref()),
            terminal: self.console_socket.is_some(),
        };
        f(&ctx, &self.pod)
    }

    fn begin_stop(&mut self, why: Stop) {
        if self.stop.is_some() {
            return;
        }
        self.stop = Some(why);
        self.kill_at = Some(Instant::now() + Duration::from_secs(self.rc.stop_timeout_secs));
        for a in self
            .apps
            .iter()
            .filter(|a| a.running() && a.pid.as_raw() > 0)
        {
            let _ = nix::sys::signal::kill(a.pid, Signal::SIGTERM);
        }
    }

    fn kill_all(&mut self) {
        self.killed = true;
        for a in self
            .apps
            .iter()
            .filter(|a| a.running() && a.pid.as_raw() > 0)
        {
            let _ = nix::sys::signal::kill(a.pid, Signal::SIGKILL);
        }
        // whatever else lives in the pod's pid namespace dies with its PID 1
        if let Some(sb) = &self.sandbox {
            sb.kill();
        }
    }

    fn reap(&mut self) {
        loop {
            let st = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(st) => st,
            };
            let (pid, code, sig) = match st {
                WaitStatus::Exited(p, c) => (p, c, None),
                WaitStatus::Signaled(p, s, _) => (p, exit::from_signal(s as i32), Some(s as i32)),
                _ => continue,
            };
            if self.sandbox.as_ref().is_some_and(|s| s.pid == pid) {
                tracing::debug!("sandbox exited");
                if let Some(sb) = self.sandbox.as_mut() {
                    sb.pid = Pid::from_raw(0);
                }
                continue;
            }
            let stopping = self.stop.is_some();
            let Some(a) = self.apps.iter_mut().find(|a| a.pid == pid && a.running()) else {
                continue;
            };
            tracing::debug!(app = %a.status.app, code, "app exited");
            a.finish(code, sig, stopping);
            if code != 0 && !stopping {
                self.begin_stop(Stop::Failed(code));
            }
        }
    }

    fn supervise(&mut self) -> Result<i32, Error> {
        loop {
            self.reap();
            if self.apps.iter().all(|a| !a.running()) {
                break;
            }
            let now = Instant::now();
            if let (Some(t), false) = (self.kill_at, self.killed) {
                if t <= now {
                    self.kill_all();
                    continue;
                }
            }
            if self.pageout_at.is_some_and(|t| t <= now) {
                self.pageout_at = None;
                crate::sys::pageout_file_mappings();
            }
            let next = [self.kill_at.filter(|_| !self.killed), self.pageout_at]
                .into_iter()
                .flatten()
                .min();
            let timeout = match next {
                Some(t) => {
                    let left = t.saturating_duration_since(now);
                    PollTimeout::try_from(left.as_millis().min(60_000) as i32 + 1)
                        .unwrap_or(PollTimeout::MAX)
                }
                None => PollTimeout::NONE,
            };
            let fd: BorrowedFd<'_> = self.sfd.as_fd();
            let stdin = std::io::stdin();
            let mut fds = vec![PollFd::new(fd, PollFlags::POLLIN)];
            let (mut tty_in, mut tty_master) = (None, None);
            if let Some(c) = &self.console {
                let (i, m) = c.interest();
                if let Some(f) = i {
                    tty_in = Some(fds.len());
                    fds.push(PollFd::new(stdin.as_fd(), f));
                }
                if let Some(f) = m {
                    tty_master = Some(fds.len());
                    fds.push(PollFd::new(c.master(), f));
                }
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(Error::Sys("polling signals".into(), e)),
            }
            let rev = |i: Option<usize>| i.and_then(|i| fds[i].revents());
            let (rin, rmaster) = (rev(tty_in), rev(tty_master));
            drop(fds);
            if let Some(c) = self.console.as_mut() {
                c.handle(rin, rmaster);
            }
            while let Ok(Some(si)) = self.sfd.read_signal() {
                match Signal::try_from(si.ssi_signo as i32) {
                    Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP) => {
                        tracing::debug!("stop requested");
                        self.begin_stop(Stop::Requested);
                    }
                    Ok(Signal::SIGWINCH) => {
                        if let Some(c) = &self.console {
                            c.resize();
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(c) = self.console.as_mut() {
            // what the app wrote last may still be on its way through the pty
            c.drain(Duration::from_millis(500));
        }
        Ok(match self.stop {
            Some(Stop::Failed(c)) => c,
            _ => 0,
        })
    }

    fn teardown(&mut self) -> Result<(), Error> {
        tracing::debug!("tearing down");
        // the caller's terminal leaves raw mode first
        self.console = None;
        self.console_socket = None;
        if let Some(sb) = self.sandbox.take() {
            if sb.pid.as_raw() > 0 {
                sb.kill();
                // the dying PID 1 waits until every process of its namespace is reaped, and
                // some of those are stage1's children (apps, libcontainer's processes): reap
                // everything until the sandbox itself is gone
                loop {
                    match waitpid(Pid::from_raw(-1), None) {
                        Ok(st) if st.pid() == Some(sb.pid) => break,
                        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                        Err(_) => break,
                    }
                }
            }
        }
        for a in self.apps.iter_mut().filter(|a| a.running()) {
            let _ = nix::sys::signal::kill(a.pid, Signal::SIGKILL);
            let _ = waitpid(a.pid, None);
            a.finish(exit::from_signal(Signal::SIGKILL as i32), Some(9), true);
        }
        let state = self.pod_dir.join(paths::STATE_DIR);
        let _ = std::fs::remove_dir_all(&state);
        // the netns stays bind-mounted until its networks are deleted, whether or not set-up
        // finished (net-info.json says what was done)
        let net = crate::network::teardown(&self.pod_dir);
        self.net = None;
        let r = match self.cgroups.take() {
            Some(cg) => cg.remove(),
            None => Ok(()),
        };
        tracing::debug!("torn down");
        r.and(net)
    }
}

/// `rkt-stage1 gc`: remove what a dead stage1 left (network, cgroups and their processes).
/// Idempotent.
pub fn gc() -> Result<(), Error> {
    let pod_dir = std::env::current_dir().map_err(|e| Error::io(Path::new("."), e))?;
    let net = crate::network::teardown(&pod_dir);
    crate::cgroups::remove_listed(&pod_dir.join(paths::CGROUPS))?;
    net?;
    let state = pod_dir.join(paths::STATE_DIR);
    match std::fs::remove_dir_all(&state) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(&state, e)),
    }
}
