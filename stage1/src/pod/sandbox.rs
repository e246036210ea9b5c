//! The pod sandbox: a tiny pause/reaper that is PID 1 of the pod's new pid namespace and holds
//! its net/ipc/uts/mnt/cgroup namespaces, which every app joins by `/proc/<pid>/ns/*` path.
//!
//! PID 1 of a pid namespace takes the namespace down with it: when the sandbox dies (it has
//! PR_SET_PDEATHSIG = SIGKILL, so also when stage1 dies), the kernel kills every app.

use std::io::Read;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};

use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use stage1_abi::{IdRange, NetConfig, RuntimeConfig};

use stage1_monitor::handoff;

use crate::cgroups::cpus::Children;
use crate::{sys, Error};

/// What can go wrong with the pod sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The sandbox said why it failed.
    #[error("pod sandbox: {0}")]
    Reported(String),
    /// It exited without a word.
    #[error("pod sandbox: sandbox exited")]
    Exited,
    /// It exited while confining itself.
    #[error("pod sandbox: sandbox exited while confining itself")]
    ExitedWhileConfining,
    /// `--ipc` names no mode.
    #[error("invalid ipc mode {0:?} (expected auto, private or parent)")]
    IpcMode(String),
}

/// A running sandbox.
#[derive(Debug)]
pub struct Sandbox {
    /// Host PID of the pause process.
    pub pid: Pid,
    /// Whether the pod has its own network namespace.
    pub own_net: bool,
    /// Whether the pod has its own IPC namespace.
    pub own_ipc: bool,
    /// The pod's user namespace mapping (`--private-users`), if it has its own.
    pub userns: Option<IdRange>,
    /// The pause process's report ("ok" or why it failed), until [`Sandbox::wait_ready`].
    ready: Option<std::fs::File>,
    /// The rest of the report (EOF once it is confined, or why it failed), until
    /// [`Sandbox::wait_confined`].
    confining: Option<std::fs::File>,
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

    /// Wait until the pause process has set the pod up (hostname, `lo`): what the network
    /// needs. On failure it is killed and reaped and the error says why. It confines itself
    /// next, beside stage1's work: see [`Sandbox::wait_confined`].
    pub fn wait_ready(&mut self) -> Result<(), Error> {
        let Some(mut f) = self.ready.take() else {
            return Ok(());
        };
        let mut head = [0u8; 2];
        let mut msg = String::new();
        if f.read_exact(&mut head).is_ok() && &head == b"ok" {
            // it set itself up off stage1's CPU (crate::cgroups::cpus)
            if let Err(e) = self.cpus.give_back(self.pid) {
                tracing::warn!("restoring the sandbox's CPU affinity: {e}");
            }
            self.confining = Some(f);
            return Ok(());
        }
        msg.push_str(&String::from_utf8_lossy(&head).replace('\0', ""));
        let _ = f.read_to_string(&mut msg);
        Err(self.failed(msg))
    }

    /// Wait until the pause process has confined itself (see `confine`): it closes its end of
    /// the report pipe when done, or writes why it could not. Must return before any app runs.
    pub fn wait_confined(&mut self) -> Result<(), Error> {
        self.wait_ready()?;
        let Some(mut f) = self.confining.take() else {
            return Ok(());
        };
        let mut msg = String::new();
        let _ = f.read_to_string(&mut msg);
        if msg.is_empty() {
            // EOF with nothing written: confined, unless it died on the way
            return match nix::sys::wait::waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(nix::sys::wait::WaitStatus::StillAlive) => Ok(()),
                _ => {
                    self.pid = Pid::from_raw(0); // reaped (or not ours): never signal it again
                    Err(SandboxError::ExitedWhileConfining.into())
                }
            };
        }
        Err(self.failed(msg))
    }

    /// Kill and reap the sandbox after it reported `msg`; the error to return.
    fn failed(&mut self, msg: String) -> Error {
        self.kill();
        let _ = waitpid(self.pid, None);
        self.pid = Pid::from_raw(0); // reaped: never signal that PID again
        if msg.is_empty() {
            SandboxError::Exited.into()
        } else {
            SandboxError::Reported(msg).into()
        }
    }
}

/// Which namespaces the sandbox creates for this runtime config (and a user namespace when the
/// pod has private users: created first by the same clone, it owns all the others).
pub fn clone_flags(rc: &RuntimeConfig, userns: bool) -> Result<CloneFlags, Error> {
    let mut f = CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWCGROUP;
    // a pod on the host's PID namespace (CRI) has a sandbox that is no PID 1: stage1, the
    // child subreaper, reaps what its apps orphan
    if !rc.host_pid {
        f |= CloneFlags::CLONE_NEWPID;
    }
    match rc.ipc.as_str() {
        "auto" | "private" | "" => f |= CloneFlags::CLONE_NEWIPC,
        "parent" => {}
        other => return Err(SandboxError::IpcMode(other.to_string()).into()),
    }
    if !matches!(rc.net, NetConfig::Host) {
        f |= CloneFlags::CLONE_NEWNET;
    }
    if userns {
        f |= CloneFlags::CLONE_NEWUSER;
    }
    Ok(f)
}

/// Create the sandbox: clone the pause process into new namespaces, where it sets the hostname
/// and brings `lo` up. Its namespaces exist when this returns, so apps' bundles can name them;
/// [`Sandbox::wait_ready`] waits for its report, which must come before any app starts.
///
/// With `userns` (`--private-users`) the clone also creates the pod's user namespace; stage1
/// writes its uid and gid maps before the pause process goes on, which then becomes the
/// namespace's root (the host's `shift`).
pub fn spawn(rc: &RuntimeConfig, userns: Option<IdRange>) -> Result<Sandbox, Error> {
    let flags = clone_flags(rc, userns.is_some())?;
    let own_net = flags.contains(CloneFlags::CLONE_NEWNET);
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::Sys("creating sandbox pipe".into(), e))?;
    // with a user namespace: stage1 writes one byte once the maps are written
    let (mapped_rd, mapped_wr) = match userns {
        Some(_) => {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| Error::Sys("creating sandbox pipe".into(), e))?;
            (Some(r), Some(w))
        }
        None => (None, None),
    };
    let hostname = rc.hostname.clone();
    let mut wr = Some(wr);
    let mut mapped = mapped_rd;
    let rd_raw = rd.as_raw_fd();
    let mapped_wr_raw = mapped_wr.as_ref().map(AsRawFd::as_raw_fd);
    let child = Box::new(move || -> isize {
        let _ = nix::unistd::close(rd_raw);
        if let Some(fd) = mapped_wr_raw {
            let _ = nix::unistd::close(fd);
        }
        let w = wr.take();
        pause_main(&hostname, own_net, w, mapped.take())
    });
    let cpus = Children::new();
    let pid = sys::clone_child(flags, child)
        .map_err(|e| Error::Sys("creating the pod sandbox".into(), e))?;
    cpus.start_elsewhere(pid);
    // our copies of the child's ends were moved into the closure, which the parent drops here
    let mut sb = Sandbox {
        pid,
        own_net,
        own_ipc: flags.contains(CloneFlags::CLONE_NEWIPC),
        userns,
        ready: Some(std::fs::File::from(rd)),
        confining: None,
        cpus,
    };
    if let (Some(r), Some(w)) = (userns, &mapped_wr) {
        if let Err(e) = write_id_maps(pid, &r) {
            sb.kill();
            let _ = waitpid(pid, None);
            return Err(e);
        }
        if nix::unistd::write(w, b"m") != Ok(1) {
            return Err(sb.failed(String::new()));
        }
    }
    Ok(sb)
}

/// Write the user namespace maps of process `pid`: pod ids `0..count` are host ids
/// `shift..shift+count`, for uids and gids.
fn write_id_maps(pid: Pid, r: &IdRange) -> Result<(), Error> {
    for f in ["uid_map", "gid_map"] {
        let p = std::path::PathBuf::from(format!("/proc/{pid}/{f}"));
        std::fs::write(&p, r.map_line()).map_err(|e| Error::io(&p, e))?;
    }
    Ok(())
}

/// In the pause process of a pod with private users: wait until stage1 has written the maps,
/// then become the namespace's root (`setgroups` is allowed: a privileged process wrote the
/// maps).
fn become_userns_root(mapped: OwnedFd) -> Result<(), String> {
    let mut b = [0u8; 1];
    match nix::unistd::read(mapped.as_raw_fd(), &mut b) {
        Ok(1) => {}
        _ => return Err("stage1 did not write the user namespace maps".into()),
    }
    drop(mapped);
    let root = nix::unistd::Gid::from_raw(0);
    nix::unistd::setgroups(&[]).map_err(|e| format!("clearing groups: {e}"))?;
    nix::unistd::setresgid(root, root, root).map_err(|e| format!("setresgid 0: {e}"))?;
    let root = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresuid(root, root, root).map_err(|e| format!("setresuid 0: {e}"))?;
    // a change of credentials clears the parent-death signal: set it again, or the pod would
    // outlive a killed stage1 (the "ok" report that follows fails if stage1 is gone already)
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|e| format!("setting the parent-death signal: {e}"))
}

fn pause_main(
    hostname: &str,
    own_net: bool,
    wr: Option<OwnedFd>,
    mapped: Option<OwnedFd>,
) -> isize {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let _ = nix::sys::prctl::set_name(c"rkt-pause");
    // reap orphans forever; SIGTERM ends the sandbox (blocked before the filter forbids changes)
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    let setup = (|| -> Result<(), String> {
        if let Some(m) = mapped {
            become_userns_root(m)?;
        }
        nix::unistd::sethostname(hostname).map_err(|e| format!("setting hostname: {e}"))?;
        if own_net {
            sys::loopback_up().map_err(|e| format!("bringing lo up: {e}"))?;
        }
        set.thread_set_mask()
            .map_err(|e| format!("blocking signals: {e}"))
    })();
    // "ok" lets stage1 go on with the network; it waits for the end of the report (EOF: the
    // pipe was the last descriptor left, see `confine`) before any app runs
    let res = setup.and_then(|()| {
        if let Some(w) = &wr {
            // EPIPE: stage1 died before PR_SET_PDEATHSIG above took effect, so nothing would
            // ever kill this process (and, confined, nothing on the host could find it)
            if !report(w, b"ok") {
                return Err("stage1 is gone".to_string());
            }
        }
        confine(wr.as_ref().map(AsRawFd::as_raw_fd))
    });
    if let Some(w) = wr {
        if let Err(e) = &res {
            let _ = report(&w, e.as_bytes());
        }
        let _ = nix::unistd::close(w.into_raw_fd());
    }
    if res.is_err() {
        return 1;
    }
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

/// Write `msg` to the report pipe with plain write(2)s: std's descriptor types may make other
/// calls (debug builds check a descriptor with fcntl before closing it), which the filter
/// forbids.
/// Whether all of it was written.
fn report(w: &OwnedFd, msg: &[u8]) -> bool {
    let mut done = 0;
    while done < msg.len() {
        match nix::unistd::write(w, &msg[done..]) {
            Ok(n) if n > 0 => done += n,
            Err(nix::errno::Errno::EINTR) => {}
            _ => return false,
        }
    }
    true
}

/// Take from the pause process everything it does not need to reap and wait for signals, so
/// that nothing of the host can be reached through it — by an app that may ptrace it
/// (CAP_SYS_PTRACE reaches `/proc/1/{root,cwd,exe,fd,map_files,environ,mem}` even of a
/// non-dumpable process, and lets the app inject system calls):
///
/// 1. every descriptor but the report pipe is closed (stdio, the pod lock, stage1's files);
/// 2. its copy of stage1's environment (the caller's) is zeroed;
/// 3. its root and cwd become an empty read-only tmpfs (pivot_root; the host's tree, copied
///    into its mount namespace by the clone, is detached);
/// 4. no capabilities in any set (bounding and ambient included), no_new_privs, not dumpable;
/// 5. a seccomp filter ([`pause_filter`]) that allows only the loop's system calls and kills
///    the process on anything else, or on another architecture's system call.
fn confine(keep_fd: Option<i32>) -> Result<(), String> {
    // before /proc and the host's files go with the host's tree
    let pause = pause_program();
    let keep: Vec<i32> = keep_fd
        .into_iter()
        .chain(pause.as_ref().map(AsRawFd::as_raw_fd))
        .collect();
    if keep.is_empty() {
        sys::close_fds_from(0, &[]);
    } else {
        sys::close_fds_from(0, &keep);
    }
    // /proc/self/stat says where the environment is
    sys::scrub_environ().map_err(|e| format!("clearing the environment copy: {e}"))?;
    pivot_to_empty_root()?;
    drop_all_caps()?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("setting no_new_privs: {e}"))?;
    nix::sys::prctl::set_dumpable(false).map_err(|e| format!("clearing dumpable: {e}"))?;
    if let Some(m) = pause {
        // returns only if the exec failed: then this process stays, confined as below
        exec_pause(m, keep_fd);
    }
    sys::seccomp_set_filter(&pause_filter()).map_err(|e| format!("loading the seccomp filter: {e}"))
}

/// A sealed in-memory copy of `rkt-monitor` (installed next to `rkt-stage1`) for the sandbox to
/// exec in its pause mode (`stage1_monitor::pause`): a small static program without libc, so
/// the pod's PID 1 maps no host file, has no host executable and none of stage1's memory or
/// environment. `None` without the monitor: the fork of stage1 stays, confined the same way
/// except for those.
fn pause_program() -> Option<OwnedFd> {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
    let exe = crate::installed_path()?;
    let mut src = std::fs::File::open(exe.with_file_name(handoff::MONITOR_BIN)).ok()?;
    let m = memfd_create(
        c"rkt-pause",
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )
    .ok()?;
    let mut dst = std::fs::File::from(m);
    std::io::copy(&mut src, &mut dst).ok()?;
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(dst.as_raw_fd(), FcntlArg::F_ADD_SEALS(seals)).ok()?;
    Some(dst.into())
}

/// Exec the pause program `m` with an empty environment, handing it the report descriptor.
/// Returns only on failure.
fn exec_pause(m: OwnedFd, report_fd: Option<i32>) {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let fd_arg = report_fd.map(|fd| fd.to_string()).unwrap_or_default();
    if let Some(fd) = report_fd {
        if fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())).is_err() {
            return;
        }
    }
    let Ok(fd_c) = std::ffi::CString::new(fd_arg) else {
        return;
    };
    let args = [
        c"rkt-pause",
        stage1_monitor::pause::PAUSE_ARG,
        fd_c.as_c_str(),
    ];
    let env: [&std::ffi::CStr; 0] = [];
    let _ = nix::unistd::fexecve(m.as_raw_fd(), &args, &env);
    if let Some(fd) = report_fd {
        let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    }
}

/// Make an empty read-only tmpfs the root and cwd of this process, whose mount namespace is
/// its own (CLONE_NEWNS), and detach the host's tree from that namespace. The whole tree is made
/// private first, not only its root: on a host whose mounts are shared (every systemd host,
/// where `/` is `shared:1`) the copies in a new namespace are peers of the host's, and the
/// detach below would propagate to them and unmount `/sys/fs/cgroup`, `/dev/pts`, `/run/…` of
/// the host (seen under a booted systemd: tests/tests/systemd.rs).
fn pivot_to_empty_root() -> Result<(), String> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let err = |what: &str, e: &dyn std::fmt::Display| format!("making an empty root: {what}: {e}");
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| err("making / private", &e))?;
    let mnt = sys::empty_ro_tmpfs().map_err(|e| err("creating a tmpfs", &e))?;
    sys::move_mount_onto(std::os::fd::AsFd::as_fd(&mnt), c"/")
        .map_err(|e| err("attaching the tmpfs", &e))?;
    nix::unistd::fchdir(mnt.as_raw_fd()).map_err(|e| err("entering the tmpfs", &e))?;
    drop(mnt);
    // the old root ends up on top of the new one, where it is detached from
    nix::unistd::pivot_root(".", ".").map_err(|e| err("pivot_root", &e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| err("detaching the old root", &e))?;
    nix::unistd::chdir("/").map_err(|e| err("chdir /", &e))?;
    Ok(())
}

/// Clear every capability set of this process: bounding (needs CAP_SETPCAP, so first),
/// ambient, inheritable, effective, permitted.
fn drop_all_caps() -> Result<(), String> {
    use caps::CapSet;
    for set in [
        CapSet::Bounding,
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        caps::clear(None, set).map_err(|e| format!("dropping {set:?} capabilities: {e}"))?;
    }
    Ok(())
}

/// The pause process's seccomp program: the one `rkt-monitor --pause` loads
/// (`stage1_monitor::pause::filter`), for when the sandbox stays a fork of stage1.
pub fn pause_filter() -> Vec<libc::sock_filter> {
    stage1_monitor::pause::filter()
        .iter()
        .map(|f| libc::sock_filter {
            code: f.code,
            jt: f.jt,
            jf: f.jf,
            k: f.k,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn rc(net: NetConfig, ipc: &str) -> RuntimeConfig {
        RuntimeConfig {
            ipc: ipc.into(),
            stop_timeout_secs: 1,
            ..RuntimeConfig::new(net, "h")
        }
    }

    #[test]
    fn namespaces_follow_net_and_ipc() {
        let f = clone_flags(&rc(NetConfig::Host, "parent"), false).unwrap();
        assert!(!f.contains(CloneFlags::CLONE_NEWNET));
        assert!(!f.contains(CloneFlags::CLONE_NEWIPC));
        assert!(f.contains(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS));
        assert!(!f.contains(CloneFlags::CLONE_NEWUSER));
        let f = clone_flags(&rc(NetConfig::None, "auto"), true).unwrap();
        assert!(f.contains(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC));
        assert!(f.contains(CloneFlags::CLONE_NEWUSER));
        let e = clone_flags(&rc(NetConfig::None, "bogus"), false).unwrap_err();
        assert!(e.to_string().contains("invalid ipc mode"));
    }

    /// Fields of `/proc/<pid>/status`.
    fn status_field(pid: Pid, name: &str) -> String {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// Root only: the reported sandbox has an empty root and cwd, no descriptors, no
    /// capabilities, no_new_privs, a seccomp filter, is not dumpable and shows no environment;
    /// and it still reaps and ends on SIGTERM.
    #[test]
    fn sandbox_is_confined_when_it_reports() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        confined_sandbox(None);
        // with private users: the same, and its root is the mapped id
        let r = IdRange {
            shift: 4_500_000,
            count: 65536,
        };
        confined_sandbox(Some(r));
    }

    /// Spawn a sandbox (with `userns`), check it is confined, end it.
    fn confined_sandbox(userns: Option<IdRange>) {
        let mut sb = spawn(&rc(NetConfig::None, "auto"), userns).unwrap();
        sb.wait_ready().unwrap();
        sb.wait_confined().unwrap();
        let pid = sb.pid;
        let proc_ = |f: &str| format!("/proc/{pid}/{f}");
        // root and cwd: an empty directory, not the host's /
        for l in ["root", "cwd"] {
            let entries: Vec<_> = std::fs::read_dir(proc_(l)).unwrap().collect();
            assert!(entries.is_empty(), "{l}: {entries:?}");
            assert!(!std::path::Path::new(&proc_(l)).join("etc").exists(), "{l}");
        }
        assert!(
            std::fs::write(proc_("root") + "/x", "").is_err(),
            "the empty root is writable"
        );
        let fds: Vec<_> = std::fs::read_dir(proc_("fd")).unwrap().collect();
        assert!(fds.is_empty(), "descriptors left: {fds:?}");
        let env = std::fs::read(proc_("environ")).unwrap();
        assert!(env.iter().all(|b| *b == 0), "environment still readable");
        for f in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(status_field(pid, f), "0000000000000000", "{f}");
        }
        assert_eq!(status_field(pid, "NoNewPrivs"), "1");
        assert_eq!(status_field(pid, "Seccomp"), "2");
        // not dumpable: its /proc files belong to root and the kernel says so via ptrace checks;
        // the mount namespace holds only the empty root
        let mi = crate::mountinfo::read(Path::new(&proc_("mountinfo"))).unwrap();
        assert_eq!(mi.len(), 1, "{mi:?}");
        assert_eq!(mi[0].fs_type, "tmpfs", "{mi:?}");
        // the host's mount table is untouched
        assert!(crate::mountinfo::read_self().unwrap().iter().all(|m| {
            !(m.root == Path::new("/") && m.mount_point == Path::new("/") && m.fs_type == "tmpfs")
        }));
        if let Some(r) = userns {
            let line = std::fs::read_to_string(proc_("uid_map")).unwrap();
            let f: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(f, ["0", &r.shift.to_string(), &r.count.to_string()]);
            let uid = status_field(pid, "Uid");
            assert!(
                uid.split_whitespace().all(|u| u == r.shift.to_string()),
                "{uid}"
            );
            assert_ne!(
                std::fs::read_link(proc_("ns/user")).unwrap(),
                std::fs::read_link("/proc/self/ns/user").unwrap()
            );
        }
        // it still ends on SIGTERM, by returning (exit 0), not killed by its filter
        nix::sys::signal::kill(pid, Signal::SIGTERM).unwrap();
        let st = waitpid(pid, None).unwrap();
        assert_eq!(st, nix::sys::wait::WaitStatus::Exited(pid, 0));
    }

    /// The filter's jumps land on the allow for every listed call and on the kill otherwise,
    /// and its numbers are libc's.
    #[test]
    fn pause_filter_layout() {
        let p = pause_filter();
        let n = stage1_monitor::pause::SYSCALLS.len();
        assert_eq!(p.len(), 4 + n + 2);
        let allow = p.len() - 1;
        assert_eq!(p[allow].k, libc::SECCOMP_RET_ALLOW);
        assert_eq!(p[allow - 1].k, libc::SECCOMP_RET_KILL_PROCESS);
        assert_eq!(p[2].k, libc::SECCOMP_RET_KILL_PROCESS);
        let allowed: Vec<u32> = (0..n).map(|i| p[4 + i].k).collect();
        for nr in [
            libc::SYS_rt_sigtimedwait,
            libc::SYS_rt_sigprocmask,
            libc::SYS_rt_sigreturn,
            libc::SYS_wait4,
            libc::SYS_waitid,
            libc::SYS_write,
            libc::SYS_close,
            libc::SYS_exit,
            libc::SYS_exit_group,
            libc::SYS_restart_syscall,
        ] {
            assert!(allowed.contains(&(nr as u32)), "{nr}");
        }
        for i in 0..n {
            let at = 4 + i;
            assert_eq!(at + 1 + p[at].jt as usize, allow, "comparison {i}");
            assert_eq!(p[at].jf, 0);
            assert_eq!(
                p[at].code,
                (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16
            );
        }
        assert_eq!(
            p[0].code,
            (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16
        );
    }
}
