//! The pod sandbox: a tiny pause/reaper that is PID 1 of the pod's new pid namespace and holds
//! its net/ipc/uts/mnt/cgroup namespaces, which every app joins by `/proc/<pid>/ns/*` path.
//!
//! PID 1 of a pid namespace takes the namespace down with it: when the sandbox dies (it has
//! PR_SET_PDEATHSIG = SIGKILL, so also when stage1 dies), the kernel kills every app.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use stage1_abi::{NetConfig, RuntimeConfig};

use crate::cpus::Children;
use crate::{sys, Error};

/// A running sandbox.
#[derive(Debug)]
pub struct Sandbox {
    /// Host PID of the pause process.
    pub pid: Pid,
    /// Whether the pod has its own network namespace.
    pub own_net: bool,
    /// Whether the pod has its own IPC namespace.
    pub own_ipc: bool,
    /// The pause process's report ("ok" or why it failed), until [`Sandbox::wait_ready`].
    ready: Option<std::fs::File>,
    /// stage1's CPU affinity, which the pause process gets back once it reported.
    cpus: Children,
}

impl Sandbox {
    /// Namespace file of the sandbox, e.g. `/proc/<pid>/ns/net`.
    pub fn ns_path(&self, ns: &str) -> String {
        format!("/proc/{}/ns/{}", self.pid, ns)
    }

    /// Kill the sandbox (and with it every process in its pid namespace). Reaping it is the
    /// caller's (the supervisor's `reap_sandbox`).
    pub fn kill(&self) {
        // pid 0 (already reaped) would mean "my process group"
        if self.pid.as_raw() > 0 {
            let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
        }
    }

    /// Wait until the pause process has set the pod up. On failure it is killed and reaped and
    /// the error says why.
    pub fn wait_ready(&mut self) -> Result<(), Error> {
        let Some(mut f) = self.ready.take() else {
            return Ok(());
        };
        let mut msg = String::new();
        let _ = f.read_to_string(&mut msg);
        if msg == "ok" {
            // it set itself up off stage1's CPU (crate::cpus)
            if let Err(e) = self.cpus.give_back(self.pid) {
                tracing::warn!("restoring the sandbox's CPU affinity: {e}");
            }
            return Ok(());
        }
        self.kill();
        let _ = waitpid(self.pid, None);
        self.pid = Pid::from_raw(0); // reaped: never signal that PID again
        Err(Error::Sandbox(if msg.is_empty() {
            "sandbox exited".to_string()
        } else {
            msg
        }))
    }
}

/// Which namespaces the sandbox creates for this runtime config.
pub fn clone_flags(rc: &RuntimeConfig) -> Result<CloneFlags, Error> {
    let mut f = CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWCGROUP;
    match rc.ipc.as_str() {
        "auto" | "private" | "" => f |= CloneFlags::CLONE_NEWIPC,
        "parent" => {}
        other => {
            return Err(Error::Invalid(format!(
                "invalid ipc mode {other:?} (expected auto, private or parent)"
            )))
        }
    }
    if !matches!(rc.net, NetConfig::Host) {
        f |= CloneFlags::CLONE_NEWNET;
    }
    Ok(f)
}

/// Create the sandbox: clone the pause process into new namespaces, where it sets the hostname
/// and brings `lo` up. Its namespaces exist when this returns, so apps' bundles can name them;
/// [`Sandbox::wait_ready`] waits for its report, which must come before any app starts.
pub fn spawn(rc: &RuntimeConfig) -> Result<Sandbox, Error> {
    let flags = clone_flags(rc)?;
    let own_net = flags.contains(CloneFlags::CLONE_NEWNET);
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::Sys("creating sandbox pipe".into(), e))?;
    let hostname = rc.hostname.clone();
    let mut wr = Some(wr);
    let rd_raw = rd.as_raw_fd();
    let child = Box::new(move || -> isize {
        let _ = nix::unistd::close(rd_raw);
        let w = wr.take();
        pause_main(&hostname, own_net, w)
    });
    let cpus = Children::new();
    let pid = sys::clone_child(flags, child)
        .map_err(|e| Error::Sys("creating the pod sandbox".into(), e))?;
    cpus.start_elsewhere(pid);
    // our copy of the write end was moved into the closure, which the parent drops here
    Ok(Sandbox {
        pid,
        own_net,
        own_ipc: flags.contains(CloneFlags::CLONE_NEWIPC),
        ready: Some(std::fs::File::from(rd)),
        cpus,
    })
}

fn pause_main(hostname: &str, own_net: bool, wr: Option<OwnedFd>) -> isize {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let _ = nix::sys::prctl::set_name(c"rkt-pause");
    let res = (|| -> Result<(), String> {
        nix::unistd::sethostname(hostname).map_err(|e| format!("setting hostname: {e}"))?;
        if own_net {
            sys::loopback_up().map_err(|e| format!("bringing lo up: {e}"))?;
        }
        Ok(())
    })();
    if let Some(w) = wr {
        let mut f = std::fs::File::from(w);
        let _ = f.write_all(match &res {
            Ok(()) => b"ok".as_slice(),
            Err(e) => e.as_bytes(),
        });
    }
    if res.is_err() {
        return 1;
    }
    // close everything we inherited (stdio, the pod lock, signalfd…): in one system call, as
    // this runs beside stage1's set-up on a small machine
    sys::close_all_fds();
    // reap orphans forever; SIGTERM ends the sandbox
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    let _ = set.thread_set_mask();
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => {
                while let Ok(st) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    if matches!(st, nix::sys::wait::WaitStatus::StillAlive) {
                        break;
                    }
                }
            }
            Ok(_) => return 0,
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc(net: NetConfig, ipc: &str) -> RuntimeConfig {
        RuntimeConfig {
            ipc: ipc.into(),
            stop_timeout_secs: 1,
            ..RuntimeConfig::new(net, "h")
        }
    }

    #[test]
    fn namespaces_follow_net_and_ipc() {
        let f = clone_flags(&rc(NetConfig::Host, "parent")).unwrap();
        assert!(!f.contains(CloneFlags::CLONE_NEWNET));
        assert!(!f.contains(CloneFlags::CLONE_NEWIPC));
        assert!(f.contains(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS));
        let f = clone_flags(&rc(NetConfig::None, "auto")).unwrap();
        assert!(f.contains(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC));
        let e = clone_flags(&rc(NetConfig::None, "bogus")).unwrap_err();
        assert!(e.to_string().contains("invalid ipc mode"));
    }
}
