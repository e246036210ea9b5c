//! A mutable pod (`rkt app sandbox`): the sandbox, cgroups and networks are set up as for any
//! pod, with or without apps; then stage1 serves the control socket
//! ([`stage1_abi::control`]) from the same single-threaded signalfd + poll loop that reaps the
//! apps. Its rules differ from a pod of `rkt run`: an app that exits (or fails) is recorded and
//! the pod goes on; apps are started, stopped, started again and removed one at a time; the pod
//! ends only when it is asked to stop (SIGTERM/SIGINT/SIGHUP: every app gets SIGTERM, SIGKILL
//! after the stop timeout) or its PID 1 dies, and exits 0 then. It stays in stage1 (no
//! hand-over to `rkt-monitor`, which has no socket to serve); once quiet it drops its set-up
//! code from the resident set as a long-running stage1 does.

use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use stage1_abi::control::{self, Reply, Request};
use stage1_abi::{exit, paths, read_json, PodManifest};

use super::Pod;
use crate::app::start;
use crate::Error;

/// How long one client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The control socket, removed when dropped.
struct Control {
    listener: UnixListener,
    path: PathBuf,
}

impl Control {
    /// Listen on `control` in the pod dir (stage1's cwd: the name stays short), root's only.
    fn bind(pod_dir: &Path) -> Result<Control, Error> {
        let rel = Path::new(paths::CONTROL);
        let path = pod_dir.join(paths::CONTROL);
        // a stage1 that was killed left it; the pod lock says no other stage1 runs this pod
        let _ = std::fs::remove_file(rel);
        let listener = UnixListener::bind(rel).map_err(|e| Error::io(&path, e))?;
        std::fs::set_permissions(rel, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(&path, e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io(&path, e))?;
        Ok(Control { listener, path })
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where stopping stands: an app's own stop, or the pod's.
struct Deadline {
    /// The app's pid; `None`: the whole pod.
    pid: Option<Pid>,
    at: Instant,
}

impl Pod {
    /// Supervise a mutable pod until it is stopped; returns its exit code (0).
    pub(super) fn supervise_mutable(&mut self) -> Result<i32, Error> {
        let control = Control::bind(&self.pod_dir)?;
        let mut deadlines: Vec<Deadline> = Vec::new();
        let mut stopping = false;
        let mut quiet_at = Some(Instant::now() + super::LONG_RUNNING_AFTER);
        loop {
            self.reap_mutable(&mut stopping, &mut deadlines);
            if stopping && !self.apps.iter().any(start::AppProc::running) {
                break;
            }
            let now = Instant::now();
            deadlines.retain(|d| {
                if d.at > now {
                    return true;
                }
                match d.pid {
                    Some(pid) => kill(pid, Signal::SIGKILL),
                    None => {
                        for a in self.apps.iter().filter(|a| a.running()) {
                            kill(a.pid, Signal::SIGKILL);
                        }
                    }
                }
                false
            });
            if quiet_at.is_some_and(|t| t <= now) {
                quiet_at = None;
                crate::sys::pageout_file_mappings();
            }
            let next = deadlines.iter().map(|d| d.at).chain(quiet_at).min();
            let timeout = match next {
                Some(t) => {
                    let ms = t.saturating_duration_since(now).as_millis().min(60_000) as i32;
                    PollTimeout::try_from(ms + 1).unwrap_or(PollTimeout::MAX)
                }
                None => PollTimeout::NONE,
            };
            let (sig_ready, ctl_ready, logs_ready) = {
                let mut fds = vec![
                    PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN),
                    PollFd::new(control.listener.as_fd(), PollFlags::POLLIN),
                ];
                // which log has input: (index into self.logs) per fd after the first two
                let mut owners = Vec::new();
                for (i, (_, log)) in self.logs.iter().enumerate() {
                    for fd in log.fds() {
                        fds.push(PollFd::new(fd, PollFlags::POLLIN));
                        owners.push(i);
                    }
                }
                match poll(&mut fds, timeout) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(Error::Sys("polling signals".into(), e)),
                }
                let ready = |i: usize| {
                    fds.get(i)
                        .and_then(|f| f.revents())
                        .is_some_and(|r| !r.is_empty())
                };
                let mut logs_ready: Vec<usize> = owners
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| ready(k + 2))
                    .map(|(_, &i)| i)
                    .collect();
                logs_ready.dedup();
                (ready(0), ready(1), logs_ready)
            };
            for i in logs_ready {
                self.logs[i].1.pump(false);
            }
            if sig_ready {
                while let Ok(Some(si)) = self.sfd.read_signal() {
                    if matches!(
                        Signal::try_from(si.ssi_signo as i32),
                        Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP)
                    ) && !stopping
                    {
                        tracing::debug!("stop requested");
                        stopping = true;
                        self.stop_all(&mut deadlines);
                    }
                }
            }
            if ctl_ready {
                while let Ok((mut conn, _)) = control.listener.accept() {
                    if stopping {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_write_timeout(Some(REQUEST_TIMEOUT));
                        let _ =
                            control::write_line(&mut conn, &Reply::error("the pod is stopping"));
                        continue;
                    }
                    self.serve(conn, &mut deadlines);
                    quiet_at = Some(Instant::now() + super::LONG_RUNNING_AFTER);
                }
            }
        }
        Ok(0)
    }

    /// SIGTERM to every running app; SIGKILL after the stop timeout.
    fn stop_all(&mut self, deadlines: &mut Vec<Deadline>) {
        for a in self.apps.iter().filter(|a| a.running()) {
            kill(a.pid, Signal::SIGTERM);
        }
        deadlines.push(Deadline {
            pid: None,
            at: Instant::now() + Duration::from_secs(self.rc.stop_timeout_secs),
        });
    }

    /// Reap every child that exited: an app's end is recorded (the pod goes on); the death of
    /// the pod's PID 1 ends the pod (its PID namespace took the apps with it).
    fn reap_mutable(&mut self, stopping: &mut bool, deadlines: &mut Vec<Deadline>) {
        loop {
            let (pid, code, signal) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, c)) => (p, c, None),
                Ok(WaitStatus::Signaled(p, s, _)) => {
                    (p, exit::from_signal(s as i32), Some(s as i32))
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            if self.sandbox.as_ref().is_some_and(|s| s.pid == pid) {
                tracing::warn!("the pod's PID 1 exited: stopping the pod");
                if let Some(sb) = self.sandbox.as_mut() {
                    sb.pid = Pid::from_raw(0);
                }
                if !*stopping {
                    *stopping = true;
                    self.stop_all(deadlines);
                }
                continue;
            }
            if let Some(a) = self.apps.iter_mut().find(|a| a.pid == pid && a.running()) {
                tracing::debug!(app = %a.status.app, code, "app exited");
                // what it wrote is in the log before its end is on record
                if let Some((_, log)) = self.logs.iter_mut().find(|(n, _)| *n == a.status.app) {
                    log.pump(true);
                }
                a.status.oom_killed = self
                    .cgroups
                    .as_ref()
                    .is_some_and(|c| c.app_oom_killed(&a.status.app));
                a.finish(code, signal, false);
                deadlines.retain(|d| d.pid != Some(pid));
            }
        }
    }

    /// Read one request from `conn`, carry it out, answer.
    fn serve(&mut self, mut conn: UnixStream, deadlines: &mut Vec<Deadline>) {
        let _ = conn.set_nonblocking(false);
        let _ = conn.set_read_timeout(Some(REQUEST_TIMEOUT));
        let _ = conn.set_write_timeout(Some(REQUEST_TIMEOUT));
        let reply = match control::read_line::<Request>(&conn) {
            Ok(req) => {
                tracing::debug!(?req, "control request");
                match self.carry_out(req, deadlines) {
                    Ok(()) => Reply::ok(),
                    Err(e) => Reply::error(e),
                }
            }
            Err(e) => Reply::error(format!("bad request: {e}")),
        };
        let _ = control::write_line(&mut conn, &reply);
    }

    fn carry_out(&mut self, req: Request, deadlines: &mut Vec<Deadline>) -> Result<(), String> {
        match req {
            Request::Start { app } => self.start_mutable(&app).map_err(|e| e.to_string()),
            Request::Stop { app, timeout_secs } => {
                if let Some(a) = self
                    .apps
                    .iter()
                    .find(|a| a.status.app == app && a.running())
                {
                    let sig = if timeout_secs == 0 {
                        Signal::SIGKILL
                    } else {
                        Signal::SIGTERM
                    };
                    kill(a.pid, sig);
                    deadlines.retain(|d| d.pid != Some(a.pid));
                    deadlines.push(Deadline {
                        pid: Some(a.pid),
                        at: Instant::now() + Duration::from_secs(timeout_secs),
                    });
                }
                Ok(())
            }
            Request::Remove { app } => {
                if self.apps.iter().any(|a| a.status.app == app && a.running()) {
                    return Err(format!("app {app:?} is running: stop it first"));
                }
                self.forget_app(&app, true).map_err(|e| e.to_string())
            }
            Request::ReopenLog { app } => match self.logs.iter_mut().find(|(n, _)| *n == app) {
                Some((_, log)) => log.reopen().map_err(|e| e.to_string()),
                None => Err(format!("app {app:?} has no log to reopen")),
            },
            Request::CloseStdin { app } => {
                self.stdin_holders.retain(|(n, _)| *n != app);
                Ok(())
            }
        }
    }

    /// Start app `name` of the manifest as it is now (stage0 added it).
    fn start_mutable(&mut self, name: &str) -> Result<(), Error> {
        let pod: PodManifest = read_json(&self.pod_dir.join(paths::POD_MANIFEST))?;
        pod.validate()?;
        if pod.uuid != self.pod.uuid || pod.private_users != self.pod.private_users {
            return Err(crate::app::app_err(
                name,
                crate::app::AppFailure::Refused("the pod manifest changed its identity".into()),
            ));
        }
        let Some(app) = pod.app(name).cloned() else {
            return Err(crate::app::app_err(
                name,
                crate::app::AppFailure::Refused("no such app in the pod".into()),
            ));
        };
        if self
            .apps
            .iter()
            .any(|a| a.status.app == name && a.running())
        {
            return Err(crate::app::app_err(
                name,
                crate::app::AppFailure::Refused("already running".into()),
            ));
        }
        // a start after an earlier run: a fresh container in the same cgroups
        self.forget_app(name, false)?;
        self.pod = pod;
        crate::app::volumes::prepare_empty_volumes(&self.pod_dir, &self.pod)?;
        let Some(cgroups) = self.cgroups.as_ref() else {
            return Err(super::PodError::NotSetUp.into());
        };
        let stdio = match app.cri.as_ref().and_then(|c| c.log_path.as_ref()) {
            Some(p) => {
                let (log, w) = crate::app::crilog::CriLog::open(Path::new(p))?;
                self.logs.push((name.to_string(), log));
                let stdin = match app.cri.as_ref().filter(|c| c.stdin) {
                    Some(_) => {
                        let (holder, app_end) =
                            open_stdin_fifo(&self.pod_dir.join(paths::app_stdin(name)))?;
                        self.stdin_holders.retain(|(n, _)| n != name);
                        self.stdin_holders.push((name.to_string(), holder));
                        Some(std::sync::Arc::new(app_end))
                    }
                    None => None,
                };
                start::Stdio::Log(std::sync::Arc::new(w), stdin)
            }
            None => start::Stdio::Inherit,
        };
        let helper = start::prepare_app(
            &self.pod_dir,
            &self.pod,
            &self.rc,
            cgroups,
            &app,
            stdio,
            self.pod.private_users.map(|r| r.shift),
        )?;
        let proc_ = self.with_ctx(|ctx, _| start::start_app(ctx, &app, helper))?;
        tracing::debug!(app = name, pid = %proc_.pid, "app started");
        self.apps.push(proc_);
        Ok(())
    }

    /// Drop what an earlier run of app `name` left: its record here, its container state,
    /// whatever still runs in its cgroups; with `remove`, the cgroups and bundle too.
    fn forget_app(&mut self, name: &str, remove: bool) -> Result<(), Error> {
        self.apps.retain(|a| a.status.app != name);
        self.stdin_holders.retain(|(n, _)| n != name);
        if let Some(i) = self.logs.iter().position(|(n, _)| n == name) {
            let (_, mut log) = self.logs.remove(i);
            log.pump(true);
        }
        let state = self.pod_dir.join(paths::STATE_DIR).join(name);
        match std::fs::remove_dir_all(&state) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&state, e)),
            _ => {}
        }
        if let Some(cg) = &self.cgroups {
            cg.clear_app(name, remove)?;
        }
        if remove {
            let bundle = self.pod_dir.join(paths::app_bundle(name));
            let _ = std::fs::remove_dir_all(bundle);
        }
        Ok(())
    }
}

/// Make (once) and open a CRI app's stdin fifo: stage1's writer (held until `closeStdin`, so an
/// attach that ends gives the app no end-of-file) and the app's reader. Opened read-write, the
/// holder makes the reader's open return at once.
fn open_stdin_fifo(path: &Path) -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd), Error> {
    match nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(Error::Sys(format!("mkfifo {}", path.display()), e)),
    }
    let holder = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let reader = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Ok((holder.into(), reader.into()))
}

fn kill(pid: Pid, sig: Signal) {
    if pid.as_raw() > 0 {
        let _ = nix::sys::signal::kill(pid, sig);
    }
}
