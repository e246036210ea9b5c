//! `rkt-stage1 run`: set the pod up, start its apps and supervise them on one thread (signalfd +
//! poll). A pod still running a second after it became ready is handed to `rkt-monitor` (exec,
//! same PID), which holds it in a few pages instead of this binary's megabytes; short pods never
//! pay for the two extra execs. stage1 keeps the pods the monitor cannot take (an interactive
//! app's terminal relay). Either way the stop/reap rules are `stage1_monitor::pod`'s.
//! `rkt-stage1 teardown` (exec'd by the monitor) and [`teardown`] remove what the pod set up.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use stage1_abi::{exit, paths, read_json, AppStatus, PodManifest, RuntimeConfig};
use stage1_monitor::handoff::{self, AppSpec, MonitorArg, Teardown};
use stage1_monitor::pod as monitor;

use crate::app::console::{self, Console, ConsoleSocket};
use crate::app::start::{self, AppProc, PodCtx};
use crate::cgroups::PodCgroups;
use crate::pod::sandbox::{self, Sandbox};
use crate::pod::PodError;
use crate::Error;

mod mutable;

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
    /// When a long-running pod goes to the monitor or, if it cannot, when stage1 drops its
    /// set-up code from the resident set (see [`crate::sys::pageout_file_mappings`]).
    long_running_at: Option<Instant>,
    /// Where the interactive app's terminal comes from, while it is being created.
    console_socket: Option<ConsoleSocket>,
    /// The relay to the interactive app's terminal.
    console: Option<Console>,
    /// The CRI logs of a mutable pod's apps ([`crate::app::crilog`]), by app name.
    logs: Vec<(String, crate::app::crilog::CriLog)>,
    /// stage1's writers of CRI apps' stdin fifos, by app name (see `CriApp::stdin`).
    stdin_holders: Vec<(String, std::os::fd::OwnedFd)>,
}

/// A pod that still runs this long after it became ready is a long-running one: stage1 then
/// hands it to the monitor, or lets the kernel reclaim its set-up code. Short pods pay for
/// neither.
const LONG_RUNNING_AFTER: Duration = Duration::from_secs(1);

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
    let fd: i32 = v.parse().map_err(|_| PodError::LockFdValue(v.clone()))?;
    if !Path::new(&format!("/proc/self/fd/{fd}")).exists() {
        return Err(PodError::LockFdClosed(fd).into());
    }
    Ok(())
}

/// Run the pod whose dir is the current directory. Returns the pod's exit code.
pub fn run() -> Result<i32, Error> {
    let pod_dir = std::env::current_dir().map_err(|e| Error::io(Path::new("."), e))?;
    let pod: PodManifest = read_json(&pod_dir.join(paths::POD_MANIFEST))?;
    pod.validate()?;
    pod.check_idmapped_volumes(pod.private_users.is_some())?;
    let rc: RuntimeConfig = read_json(&pod_dir.join(paths::RUNTIME_CONFIG))?;
    stage1_abi::check_interactive(rc.interactive, pod.apps.len())?;
    check_lock_fd()?;
    crate::systemd::init(&pod_dir, &pod)?;
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
        long_running_at: None,
        console_socket: None,
        console: None,
        logs: Vec::new(),
        stdin_holders: Vec::new(),
    };
    let res = p.setup().and_then(|()| {
        if p.pod.mutable {
            p.supervise_mutable()
        } else {
            p.supervise()
        }
    });
    let td = p.teardown();
    let code = res?;
    if let Err(e) = td {
        tracing::warn!("teardown: {e}");
    }
    Ok(code)
}

/// Write a pod-dir file by the contract's rule (`stage1_abi::write_atomic`): an observer
/// reading `pid` never sees half a number.
fn write_file(p: &Path, s: &str) -> Result<(), Error> {
    Ok(stage1_abi::write_atomic(p, s.as_bytes())?)
}

impl Pod {
    fn setup(&mut self) -> Result<(), Error> {
        tracing::debug!("setting up the pod");
        let netplan = crate::network::plan(&self.pod, &self.rc)?;
        let cg = self.cgroups.insert(PodCgroups::create(
            &self.pod.uuid,
            &self.pod_dir.join(paths::CGROUPS),
        )?);
        cg.limit_pids(self.rc.pids_limit, self.rc.pids_limit_required)?;
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
        // helpers create and enter the app cgroups while the sandbox and bundles are built
        let mut helpers = Vec::new();
        for a in &self.pod.apps {
            helpers.push(start::prepare_app(
                &self.pod_dir,
                &self.pod,
                &self.rc,
                cg,
                a,
                csock.map_or(start::Stdio::Inherit, start::Stdio::Console),
                self.pod.private_users.map(|r| r.shift),
            )?);
        }
        tracing::debug!("pod cgroups created, helpers forked");
        // the pause process sets itself up while the bundles are written
        let sb = self
            .sandbox
            .insert(sandbox::spawn(&self.rc, self.pod.private_users)?);
        tracing::debug!(pid = %sb.pid, "sandbox cloned");
        let sb_pid = sb.pid;
        write_file(
            &self.pod_dir.join(paths::SANDBOX_PID),
            &format!("{sb_pid}\n"),
        )?;
        // Plugins take a while (exec, netlink, a veth): unless one may return DNS settings the
        // bundles need, the helpers create the containers meanwhile.
        let overlap = netplan
            .as_ref()
            .is_some_and(|p| !p.may_return_dns() || !self.rc.dns.is_empty());
        if let (Some(plan), false) = (&netplan, overlap) {
            self.sandbox_ready()?;
            self.net = Some(crate::network::setup(
                &self.pod_dir,
                &self.pod,
                &self.rc,
                plan,
                sb_pid,
            )?);
            tracing::debug!("network set up");
        }
        crate::app::volumes::prepare_empty_volumes(&self.pod_dir, &self.pod)?;
        let mut creating = Vec::new();
        for (i, h) in helpers.into_iter().enumerate() {
            let c = self.with_ctx(|ctx, pod| start::create_app(ctx, &pod.apps[i], h))?;
            creating.push(c);
        }
        if let Err(e) = self
            .sandbox_ready()
            .and_then(|()| start::deliver_filters(&creating, &self.rc))
        {
            creating.into_iter().for_each(start::Creating::abandon);
            return Err(e);
        }
        if let (Some(plan), true) = (&netplan, overlap) {
            match crate::network::setup(&self.pod_dir, &self.pod, &self.rc, plan, sb_pid) {
                Ok(n) => self.net = Some(n),
                Err(e) => {
                    creating.into_iter().for_each(start::Creating::abandon);
                    return Err(e);
                }
            }
            tracing::debug!("network set up");
        }
        // the pod's PID 1 confines itself meanwhile; no app may run before it is done
        if let Err(e) = self.sandbox_confined() {
            creating.into_iter().for_each(start::Creating::abandon);
            return Err(e);
        }
        let mut creating = creating.into_iter();
        for (i, c) in creating.by_ref().enumerate() {
            let a = match self.with_ctx(|ctx, pod| start::finish_app(ctx, &pod.apps[i], c)) {
                Ok(a) => a,
                Err(e) => {
                    creating.for_each(start::Creating::abandon);
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
        if let (Some(sb), Some(first)) = (&self.sandbox, self.pod.apps.first()) {
            crate::systemd::register_machine(
                &self.pod.uuid,
                sb.pid.as_raw(),
                &self.pod_dir.join(paths::app_rootfs(&first.name)),
                self.cgroups.as_ref().is_some_and(PodCgroups::delegated),
            );
        }
        write_file(&self.pod_dir.join(paths::READY), "")?;
        crate::systemd::notify_ready();
        self.long_running_at = Some(Instant::now() + LONG_RUNNING_AFTER);
        Ok(())
    }

    /// Wait for the sandbox's report (see [`sandbox::spawn`]).
    fn sandbox_ready(&mut self) -> Result<(), Error> {
        match self.sandbox.as_mut() {
            Some(sb) => {
                sb.wait_ready()?;
                tracing::debug!(pid = %sb.pid, "sandbox ready");
                Ok(())
            }
            None => Err(PodError::NotSetUp.into()),
        }
    }

    /// Wait until the sandbox has confined itself (see [`Sandbox::wait_confined`]): before any
    /// app runs.
    fn sandbox_confined(&mut self) -> Result<(), Error> {
        match self.sandbox.as_mut() {
            Some(sb) => {
                sb.wait_confined()?;
                tracing::debug!(pid = %sb.pid, "sandbox confined");
                Ok(())
            }
            None => Err(PodError::NotSetUp.into()),
        }
    }

    /// Run `f` with what starting an app needs from the pod.
    fn with_ctx<T>(
        &self,
        f: impl FnOnce(&PodCtx<'_>, &PodManifest) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let (Some(sandbox), Some(cgroups)) = (&self.sandbox, &self.cgroups) else {
            return Err(PodError::NotSetUp.into());
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

    /// The monitor binary to hand the running pod to, and this binary (for the monitor to exec
    /// at the end), if it can take this pod: not when stage1
    /// relays an interactive app's terminal, not for more apps than it tracks, and not if it is
    /// not installed next to `rkt-stage1`.
    fn monitor(&self) -> Option<(PathBuf, PathBuf)> {
        if self.console.is_some() || self.apps.len() > handoff::MAX_APPS {
            return None;
        }
        let stage1 = crate::installed_path()?;
        let path = stage1.with_file_name(handoff::MONITOR_BIN);
        if path.is_file() {
            Some((path, stage1))
        } else {
            tracing::debug!(path = %path.display(), "no monitor binary");
            None
        }
    }

    /// Exec `monitor` with the apps still running (see `stage1_monitor::handoff`; those that
    /// exited have their status written already). Signals stay blocked across exec, so none is
    /// lost; the apps and the sandbox stay this process's children. Returns only on failure.
    fn exec_monitor(
        &self,
        monitor: &Path,
        stage1: &Path,
        running: &[AppSpec<'_>],
        sandbox: i32,
    ) -> Error {
        let mut args = vec![monitor.display().to_string(), stage1.display().to_string()];
        args.push(MonitorArg::StopTimeout(self.rc.stop_timeout_secs).to_string());
        args.push(MonitorArg::Sandbox(sandbox).to_string());
        for a in running {
            args.push(MonitorArg::App(*a).to_string());
        }
        let cargs: Result<Vec<CString>, _> = args.into_iter().map(CString::new).collect();
        let Ok(cargs) = cargs else {
            return PodError::MonitorArgsNul.into();
        };
        let Ok(path) = CString::new(monitor.as_os_str().as_encoded_bytes()) else {
            return PodError::MonitorPathNul.into();
        };
        tracing::debug!(monitor = %monitor.display(), "handing the pod to the monitor");
        match nix::unistd::execv(&path, &cargs) {
            Err(e) => Error::Sys(format!("exec {}", monitor.display()), e),
            Ok(never) => match never {},
        }
    }

    /// Supervise the running pod: here until it is a long-running one, then in the monitor if it
    /// can take it (see [`Pod::monitor`]; the exec does not return), else here to the end with
    /// the set-up code paged out. The rules are the monitor's (`stage1_monitor::pod`), plus the
    /// interactive app's terminal relay.
    fn supervise(&mut self) -> Result<i32, Error> {
        let mut table: Vec<monitor::App<'_>> = self
            .apps
            .iter()
            .map(|a| monitor::App::new(app_spec(a)))
            .collect();
        let sandbox = self.sandbox.as_ref().map_or(0, |s| s.pid.as_raw());
        let mut pod = monitor::Pod::new(&mut table, sandbox, self.rc.stop_timeout_secs);
        let mut os = StatusWriter {
            pod_dir: &self.pod_dir,
        };
        let t0 = Instant::now();
        let now_ms = || t0.elapsed().as_millis() as u64;
        loop {
            loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(p, c)) => {
                        pod.exited(&mut os, p.as_raw(), monitor::Exit::Code(c), now_ms())
                    }
                    Ok(WaitStatus::Signaled(p, s, _)) => pod.exited(
                        &mut os,
                        p.as_raw(),
                        monitor::Exit::Signal(s as i32),
                        now_ms(),
                    ),
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            if pod.done() {
                break;
            }
            let now = now_ms();
            pod.tick(&mut os, now);
            if self.long_running_at.is_some_and(|t| t <= Instant::now()) {
                self.long_running_at = None;
                // a pod that is stopping is about to end: not worth two execs
                let monitor = if pod.stopping() { None } else { self.monitor() };
                if let Some((m, stage1)) = monitor {
                    let running: Vec<AppSpec<'_>> = pod
                        .apps()
                        .iter()
                        .filter(|a| a.running())
                        .map(|a| a.spec)
                        .collect();
                    let e = self.exec_monitor(&m, &stage1, &running, pod.sandbox_pid());
                    tracing::warn!("{e}; stage1 keeps supervising the pod");
                }
                crate::sys::pageout_file_mappings();
            }
            let long_running_ms = self
                .long_running_at
                .map(|t| t.saturating_duration_since(Instant::now()).as_millis() as u64);
            let timeout = match [pod.timeout_ms(now), long_running_ms]
                .into_iter()
                .flatten()
                .min()
            {
                Some(ms) => {
                    PollTimeout::try_from(ms.min(60_000) as i32 + 1).unwrap_or(PollTimeout::MAX)
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
                        pod.stop_requested(&mut os, now_ms());
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
        let (code, sandbox_reaped) = (pod.exit_code(), pod.sandbox_pid() == 0);
        let statuses: Vec<AppStatus> = pod.apps().iter().map(app_status).collect();
        drop(table);
        for (proc_, st) in self.apps.iter_mut().zip(statuses) {
            proc_.status = st;
        }
        if sandbox_reaped {
            if let Some(sb) = self.sandbox.as_mut() {
                sb.pid = Pid::from_raw(0);
            }
        }
        Ok(code)
    }

    fn teardown(&mut self) -> Result<(), Error> {
        tracing::debug!("tearing down");
        // the caller's terminal leaves raw mode first
        self.console = None;
        self.console_socket = None;
        // the sandbox dies (its namespaces go) while the pod's resources are released: it sits
        // in stage1's own cgroups, and what its death kills in the pod's cgroups is killed by
        // their removal too
        let sandbox = self.sandbox.take();
        if let Some(sb) = &sandbox {
            sb.kill();
        }
        for a in self.apps.iter_mut().filter(|a| a.running()) {
            let _ = nix::sys::signal::kill(a.pid, Signal::SIGKILL);
            let _ = waitpid(a.pid, None);
            a.finish(exit::from_signal(Signal::SIGKILL as i32), Some(9), true);
        }
        self.net = None;
        self.cgroups = None;
        let r = release(&self.pod_dir);
        if let Some(sb) = sandbox {
            reap_sandbox(sb.pid);
        }
        tracing::debug!("torn down");
        r
    }
}

/// Remove what the pod holds once none of its processes is left to care: its networks, its
/// cgroups (killing whatever is still in them), the apps' rootfs mounts and libcontainer's
/// state. Driven by the pod dir's records alone (`net-info.json`, `cgroups`, `apps/`), so the
/// same steps serve stage1's own teardown and [`gc`] for a stage1 that died. Every step runs;
/// the first error is returned. Idempotent.
fn release(pod_dir: &Path) -> Result<(), Error> {
    if let Some(uuid) = pod_dir.file_name().and_then(|n| n.to_str()) {
        crate::systemd::unregister_machine(uuid);
    }
    // the netns stays bind-mounted until its networks are deleted, whether or not set-up
    // finished (net-info.json says what was done)
    let net = crate::network::teardown(pod_dir);
    let cg = crate::cgroups::remove_listed(&pod_dir.join(paths::CGROUPS));
    start::release_rootfs(pod_dir);
    let _ = std::fs::remove_file(pod_dir.join(paths::CONTROL));
    let state = pod_dir.join(paths::STATE_DIR);
    let st = match std::fs::remove_dir_all(&state) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&state, e)),
        _ => Ok(()),
    };
    cg.and(net).and(st)
}

/// Kill the pod's PID 1 and reap until it is gone ([`reap_sandbox`]).
fn kill_sandbox(pid: Pid) {
    if pid.as_raw() <= 0 {
        return;
    }
    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    reap_sandbox(pid);
}

/// Reap until the pod's PID 1, already sent SIGKILL, is gone. The dying PID 1 waits until every
/// process of its namespace is reaped, and some of those are stage1's children (apps,
/// libcontainer's processes), so everything is reaped until the sandbox itself is. `pid` is
/// stage1's child (or 0), so it cannot have been reused.
fn reap_sandbox(pid: Pid) {
    if pid.as_raw() <= 0 {
        return;
    }
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(st) if st.pid() == Some(pid) => break,
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => break,
        }
    }
}

/// What the monitor needs of a started app.
fn app_spec(a: &AppProc) -> AppSpec<'_> {
    AppSpec {
        name: &a.status.app,
        pid: a.pid.as_raw(),
        created_ns: a.status.created_ns.unwrap_or(0),
        started_ns: a.status.started_ns.unwrap_or(0),
    }
}

/// The status record of an app as the state machine has it.
fn app_status(a: &monitor::App<'_>) -> AppStatus {
    let s = &a.spec;
    AppStatus {
        app: s.name.to_string(),
        pid: Some(s.pid),
        created_ns: Some(s.created_ns),
        started_ns: Some(s.started_ns),
        finished_ns: a.end.map(|e| e.finished_ns),
        exit_code: a.end.map(|e| e.exit_code),
        signal: a.end.and_then(|e| e.signal),
        stopped_by_pod: a.end.is_some_and(|e| e.stopped_by_pod),
        oom_killed: false,
        user: None,
    }
}

/// The in-process supervisor's side effects.
struct StatusWriter<'a> {
    pod_dir: &'a Path,
}

impl monitor::Os for StatusWriter<'_> {
    fn kill(&mut self, pid: i32, signal: i32) {
        if let Ok(s) = Signal::try_from(signal) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), s);
        }
    }

    fn realtime_ns(&self) -> i64 {
        stage1_abi::now_ns()
    }

    fn record(&mut self, app: &monitor::App<'_>) {
        tracing::debug!(app = app.spec.name, end = ?app.end, "app exited");
        let path = self.pod_dir.join(paths::app_status(app.spec.name));
        if let Err(e) = start::write_status(&path, &app_status(app)) {
            tracing::warn!("{e}");
        }
    }
}

/// `rkt-stage1 teardown …`: what the monitor execs once every app has exited. Kills and reaps
/// the sandbox, removes the pod's network and cgroups like [`gc`], and returns the pod's exit
/// code (a teardown failure is a warning: the apps' outcome stands, and `rkt gc` retries).
pub fn teardown(args: &[String]) -> Result<i32, Error> {
    let t = Teardown::parse(args.iter().map(String::as_str))
        .map_err(|e| PodError::TeardownArgs(e.to_string()))?;
    tracing::debug!(?t, "tearing down after the monitor");
    kill_sandbox(Pid::from_raw(t.sandbox_pid));
    if let Err(e) = gc() {
        tracing::warn!("teardown: {e}");
    }
    tracing::debug!("torn down");
    Ok(t.exit_code)
}

/// `rkt-stage1 gc`: remove what a dead stage1 left (network, cgroups and their processes, the
/// apps' rootfs mounts). Idempotent.
pub fn gc() -> Result<(), Error> {
    let pod_dir = std::env::current_dir().map_err(|e| Error::io(Path::new("."), e))?;
    release(&pod_dir)
}
