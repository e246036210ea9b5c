//! systemd's service protocol inside stage1 (docs/systemd.md): `READY=1` for
//! `--sd-notify=ready`, the notify socket and watchdog for the app with
//! `--sd-notify=container`, and the sockets of socket activation.
//!
//! stage0 writes what applies to the pod dir's `systemd.json` ([`stage1_abi::systemd`]) and
//! keeps the protocol's variables out of stage1's environment. stage1 loads it once
//! ([`init`]); the helpers it forks read the same copy.
//!
//! Design, and why:
//! * **ready**: stage1 *is* the unit's main process (`rkt run` execs it, same PID), so it
//!   sends `READY=1` itself at the pod's one "ready" point (the `ready` file, every app
//!   started). No relay is left running: the no_std `rkt-monitor` that holds the pod later
//!   knows nothing of it.
//! * **container**: the host's socket *file* is bind-mounted into the app at
//!   `/run/systemd/notify` (never the directory, which holds systemd's private sockets), and
//!   the app talks to systemd directly. The kernel puts the sender's credentials in the
//!   datagram, translated to systemd's PID namespace: systemd sees the app's host PID, in the
//!   unit's cgroup (the pod's cgroups nest under it), so `NotifyAccess=all` accepts `READY=1`,
//!   `STATUS=` and `WATCHDOG=1`, and the main PID stays `rkt run`'s. No proxy, no allocation in
//!   the monitor. The price: a unit must say `NotifyAccess=all` (generated units do).
//! * **socket activation**: the passed fds 3.. are kept from every exec of stage1 (CNI
//!   plugins, the monitor: `FD_CLOEXEC`) and from every app's helper but the first app's,
//!   whose libcontainer keeps them (`preserve_fds`) at the same numbers; `LISTEN_PID` is set
//!   to the app's PID in the pod, in its init right before exec.
//! * **journal**: when stage1's stdout or stderr is the journal (`JOURNAL_STREAM`, a unit's
//!   default), each app's helper opens a stream of its own to journald with the app's name as
//!   identifier (sd_journal_stream_fd(3)'s text header) and makes it the app's stdout and
//!   stderr, so `journalctl -u UNIT -t APP` tells the apps apart. journald credits the stream
//!   to the unit by the connecting process's cgroup (the helper is in the app's, under the
//!   unit). Anywhere else the apps' output is stage1's stdio, as before.
//! * **scope**: under systemd, on pure cgroup v2, in a cgroup *not* delegated to it (a unit
//!   without `Delegate=yes`, a login session), stage1 asks systemd for a transient scope
//!   `rkt-<uuid>.scope` (`Delegate=yes`, in `machine.slice`) and moves into it before it makes
//!   any cgroup, as `systemd-run --scope` would: it never writes into a cgroup systemd manages,
//!   and the pod is then in a delegated cgroup of its own (and registered with machined). The
//!   unit keeps the pod's process as its main PID (systemd tracks it by PID and signals it on
//!   stop); the scope goes when the pod's last process does.
//! * **machined**: in a unit or scope delegated to it (the unit is the pod's own), stage1
//!   registers the pod as machine `rkt-<uuid>` (class container, leader = the pod's PID 1, root
//!   = the first app's rootfs) with `RegisterMachine` before `READY=1`, through `busctl` (part
//!   of systemd, so there whenever machined is: no D-Bus client linked into stage1). machined
//!   ties the machine to that unit, so `machinectl terminate` stops the unit, whose stop ends
//!   the pod, and the machine goes when the unit does. Outside such a unit a machine would
//!   belong to the caller's unit (a login session, say) and `terminate` would stop that: no
//!   registration. The pod's release (teardown, `rkt gc`) unregisters a machine still listed.

use std::os::fd::RawFd;
use std::sync::OnceLock;

use oci_spec::runtime::Spec;
use stage1_abi::systemd::{
    listen_fd_range, SdNotify, SystemdConfig, NOTIFY_SOCKET_IN_APP, SERVICE_ENV,
};
use stage1_abi::{paths, PodManifest};

use crate::Error;

struct State {
    cfg: SystemdConfig,
    /// The app that gets the passed sockets (the pod's first).
    listen_app: Option<String>,
}

static STATE: OnceLock<State> = OnceLock::new();

fn state() -> Option<&'static State> {
    STATE.get()
}

/// Load `systemd.json` of the pod dir (absent: nothing applies) and mark the passed sockets
/// close-on-exec, so only the first app's init gets them. Call once, before any fork.
pub fn init(pod_dir: &std::path::Path, pod: &PodManifest) -> Result<(), Error> {
    let p = pod_dir.join(paths::SYSTEMD);
    let cfg: SystemdConfig = if p.exists() {
        stage1_abi::read_json(&p)?
    } else {
        SystemdConfig::default()
    };
    for fd in listen_fd_range(cfg.listen_fds) {
        set_cloexec(fd, true)
            .map_err(|e| Error::Sys(format!("LISTEN_FDS: fd {fd} of the pod's sockets"), e))?;
    }
    let listen_app = (cfg.listen_fds > 0)
        .then(|| pod.apps.first().map(|a| a.name.clone()))
        .flatten();
    let _ = STATE.set(State { cfg, listen_app });
    Ok(())
}

fn set_cloexec(fd: RawFd, on: bool) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let f = if on {
        FdFlag::FD_CLOEXEC
    } else {
        FdFlag::empty()
    };
    fcntl(fd, FcntlArg::F_SETFD(f)).map(|_| ())
}

/// How many passed sockets `app` gets (fds 3..3+n): all of them for the pod's first app,
/// none for the others.
pub fn listen_fds_for(app: &str) -> u32 {
    match state() {
        Some(s) if s.listen_app.as_deref() == Some(app) => s.cfg.listen_fds,
        _ => 0,
    }
}

/// In an app's helper, after it closed everything else: the passed sockets stay open at their
/// numbers through libcontainer's exec.
pub fn keep_listen_fds(n: u32) -> Vec<RawFd> {
    listen_fd_range(n)
        .filter(|fd| set_cloexec(*fd, false).is_ok())
        .collect()
}

/// The app's spec: drop the protocol's variables it inherited (`--inherit-env`, the image),
/// then, as applies, `NOTIFY_SOCKET` with the host socket bound in and `WATCHDOG_USEC`
/// (container mode), and `LISTEN_FDS`/`LISTEN_FDNAMES`/`LISTEN_PID` (the first app; the PID
/// is set at exec by [`set_listen_pid`]).
pub fn adjust_spec(spec: &mut Spec, app: &str) {
    let mut add: Vec<String> = Vec::new();
    let mut mount = None;
    if let Some(s) = state() {
        if let (SdNotify::Container, Some(sock)) = (s.cfg.notify, &s.cfg.notify_socket) {
            add.push(format!("NOTIFY_SOCKET={NOTIFY_SOCKET_IN_APP}"));
            if let Some(w) = s.cfg.watchdog_usec {
                add.push(format!("WATCHDOG_USEC={w}"));
            }
            mount = Some(crate::app::spec::mount(
                NOTIFY_SOCKET_IN_APP,
                "bind",
                sock,
                &["bind", "nosuid", "nodev", "noexec"],
            ));
        }
        let n = listen_fds_for(app);
        if n > 0 {
            add.push(format!("LISTEN_FDS={n}"));
            add.push("LISTEN_PID=1".into());
            if let Some(names) = &s.cfg.listen_fdnames {
                add.push(format!("LISTEN_FDNAMES={names}"));
            }
        }
    }
    if let Some(p) = spec.process_mut() {
        let mut env: Vec<String> = p.env().clone().unwrap_or_default();
        env.retain(|kv| {
            let k = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
            !SERVICE_ENV.contains(&k)
        });
        env.extend(add);
        p.set_env(Some(env));
    }
    if let Some(m) = mount {
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        mounts.push(m);
        spec.set_mounts(Some(mounts));
    }
}

/// In the app's init right before exec: `LISTEN_PID` becomes this process's PID (in the pod's
/// PID namespace) when the app got sockets.
pub fn set_listen_pid(env: &mut [String]) {
    if !env.iter().any(|kv| kv.starts_with("LISTEN_FDS=")) {
        return;
    }
    let pid = std::process::id();
    for kv in env.iter_mut().filter(|kv| kv.starts_with("LISTEN_PID=")) {
        *kv = format!("LISTEN_PID={pid}");
    }
}

/// journald's stream socket (sd_journal_stream_fd(3)).
const JOURNAL_STDOUT: &str = "/run/systemd/journal/stdout";

/// Whether stage1's stdout or stderr is the journal stream systemd gave the unit
/// (`JOURNAL_STREAM=DEV:INODE`, systemd.exec(5)).
fn stdio_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    [1, 2]
        .iter()
        .any(|fd| nix::sys::stat::fstat(*fd).is_ok_and(|st| st.st_dev == dev && st.st_ino == ino))
}

/// The header of a journal stream: identifier, unit id (none), priority (info), level prefix
/// (`<3>` lines are honoured), no forwarding to syslog, kmsg or the console.
fn stream_header(identifier: &str) -> String {
    let id: String = identifier
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    format!("{id}\n\n6\n1\n0\n0\n0\n")
}

/// In an app's helper: when stage1 writes to the journal, give the app a journal stream of its
/// own, identified by `app`, as stdout and stderr (see the module docs). Anything failing
/// leaves the app on stage1's stdio.
pub fn journal_stdio(app: &str) {
    use std::io::Write as _;
    use std::os::fd::AsRawFd;
    if !stdio_is_journal() {
        return;
    }
    let connect = || -> std::io::Result<std::os::unix::net::UnixStream> {
        let mut s = std::os::unix::net::UnixStream::connect(JOURNAL_STDOUT)?;
        s.shutdown(std::net::Shutdown::Read)?;
        s.write_all(stream_header(app).as_bytes())?;
        Ok(s)
    };
    match connect() {
        Ok(s) => {
            for fd in [1, 2] {
                if let Err(e) = nix::unistd::dup2(s.as_raw_fd(), fd) {
                    tracing::debug!("journal stream of app {app}: dup2 to {fd}: {e}");
                }
            }
        }
        Err(e) => tracing::debug!("journal stream of app {app}: {e}"),
    }
}

/// `busctl`, if this host has it.
fn busctl() -> Option<&'static str> {
    ["/usr/bin/busctl", "/bin/busctl"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

/// machined's name for the pod.
pub fn machine_name(uuid: &str) -> String {
    format!("rkt-{uuid}")
}

/// `busctl call` of a method of systemd's manager `service` (`machine1`, `systemd1`:
/// object `/org/freedesktop/<service>`, interface `org.freedesktop.<service>.Manager`); its
/// one-line error.
fn manager_call(service: &str, args: &[String]) -> Result<(), String> {
    let Some(b) = busctl() else {
        return Err("busctl not found".into());
    };
    let o = std::process::Command::new(b)
        .args(["--timeout=5", "call"])
        .arg(format!("org.freedesktop.{service}"))
        .arg(format!("/org/freedesktop/{service}"))
        .arg(format!("org.freedesktop.{service}.Manager"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{b}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
    }
}

/// The `RegisterMachine` arguments (signature `sayssus`): name, the UUID's 16 bytes, service
/// `rkt`, class `container`, leader, root directory.
fn register_args(uuid: &str, leader: i32, root: &std::path::Path) -> Option<Vec<String>> {
    let hex: String = uuid.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut a = vec![
        "RegisterMachine".to_string(),
        "sayssus".into(),
        machine_name(uuid),
        "16".into(),
    ];
    for i in 0..16 {
        a.push(
            u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .ok()?
                .to_string(),
        );
    }
    a.extend([
        "rkt".to_string(),
        "container".into(),
        leader.to_string(),
        root.display().to_string(),
    ]);
    Some(a)
}

/// Register the pod with systemd-machined when systemd runs and `delegated` (stage1 is in a
/// unit of its own; see the module docs). Best effort: a host without machined only loses
/// `machinectl` (logged at debug level).
pub fn register_machine(uuid: &str, leader: i32, root: &std::path::Path, delegated: bool) {
    if !delegated || !booted() {
        return;
    }
    let Some(args) = register_args(uuid, leader, root) else {
        return;
    };
    match manager_call("machine1", &args) {
        Ok(()) => tracing::debug!("registered machine {}", machine_name(uuid)),
        Err(e) => tracing::debug!("registering machine {}: {e}", machine_name(uuid)),
    }
}

/// Drop the pod's machine if machined still lists it (its state file is there): the pod's
/// release, at teardown and in `rkt gc`.
pub fn unregister_machine(uuid: &str) {
    let name = machine_name(uuid);
    if !std::path::Path::new("/run/systemd/machines")
        .join(&name)
        .exists()
    {
        return;
    }
    if let Err(e) = manager_call(
        "machine1",
        &["UnregisterMachine".into(), "s".into(), name.clone()],
    ) {
        tracing::warn!("unregistering machine {name}: {e}");
    }
}

/// Whether systemd is this host's init (sd_booted(3)).
pub fn booted() -> bool {
    std::path::Path::new("/run/systemd/system").exists()
}

/// The transient scope a pod gets when stage1 does not run in a cgroup delegated to it.
pub fn scope_name(uuid: &str) -> String {
    format!("{}.scope", machine_name(uuid))
}

/// The `StartTransientUnit` arguments (signature `ssa(sv)a(sa(sv))`): scope `name` in
/// `machine.slice` holding `pid`, delegated, described as the pod.
fn scope_args(name: &str, pid: u32, uuid: &str) -> Vec<String> {
    [
        "StartTransientUnit",
        "ssa(sv)a(sa(sv))",
        name,
        "fail",
        "4",
        "PIDs",
        "au",
        "1",
        &pid.to_string(),
        "Delegate",
        "b",
        "true",
        "Slice",
        "s",
        "machine.slice",
        "Description",
        "s",
        &format!("rkt pod {uuid}"),
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Not in a cgroup delegated to it, under systemd: ask systemd for a transient scope of the
/// pod's own, delegated, and move this process into it (what `systemd-run --scope -p
/// Delegate=yes` or libcgroups' systemd manager do), instead of making the pod's cgroups in a
/// cgroup systemd manages. Returns once `/proc/self/cgroup` names the scope (at most 5 s), or
/// why not; the caller then goes on as in a delegated cgroup.
pub fn move_into_scope(uuid: &str) -> Result<(), String> {
    let name = scope_name(uuid);
    manager_call("systemd1", &scope_args(&name, std::process::id(), uuid))?;
    // the scope's start job moves this process; it runs right after the call returns
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let suffix = format!("/{name}");
    loop {
        let cg = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        if cg
            .lines()
            .any(|l| l.starts_with("0::") && l.trim_end().ends_with(&suffix))
        {
            return Ok(());
        }
        if std::time::Instant::now() > until {
            return Err(format!("not moved into {name} after 5 s"));
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// `--sd-notify=ready`: tell systemd, as the unit's main process, that every app started.
/// A failure is logged: the unit's start timeout then says the rest.
pub fn notify_ready() {
    let Some(s) = state() else { return };
    let (SdNotify::Ready, Some(sock)) = (s.cfg.notify, &s.cfg.notify_socket) else {
        return;
    };
    let msg = format!("READY=1\nMAINPID={}\n", std::process::id());
    if let Err(e) = send(sock, msg.as_bytes()) {
        tracing::warn!("sending READY=1 to {sock}: {e}");
    }
}

/// One datagram to `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket).
fn send(sock: &str, msg: &[u8]) -> std::io::Result<()> {
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let s = UnixDatagram::unbound()?;
    let addr = match sock.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())?
        }
        None => SocketAddr::from_pathname(sock)?,
    };
    s.send_to_addr(msg, &addr).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_pid_is_rewritten_only_with_sockets() {
        let mut env = vec!["A=1".to_string(), "LISTEN_PID=1".into()];
        set_listen_pid(&mut env);
        assert_eq!(env[1], "LISTEN_PID=1");
        env.push("LISTEN_FDS=2".into());
        set_listen_pid(&mut env);
        assert_eq!(env[1], format!("LISTEN_PID={}", std::process::id()));
    }

    #[test]
    fn register_machine_arguments() {
        let a = register_args(
            "081f85be-5229-4239-8d68-12690318f560",
            50,
            std::path::Path::new("/p/rootfs"),
        )
        .unwrap();
        assert_eq!(
            a[..4],
            [
                "RegisterMachine",
                "sayssus",
                "rkt-081f85be-5229-4239-8d68-12690318f560",
                "16"
            ]
        );
        assert_eq!(a[4..7], ["8", "31", "133"]);
        assert_eq!(a[19], "96");
        assert_eq!(a[20..], ["rkt", "container", "50", "/p/rootfs"]);
        assert!(register_args("not-a-uuid", 50, std::path::Path::new("/")).is_none());
    }

    #[test]
    fn scope_arguments() {
        let a = scope_args("rkt-u.scope", 42, "u");
        assert_eq!(
            a[..5],
            [
                "StartTransientUnit",
                "ssa(sv)a(sa(sv))",
                "rkt-u.scope",
                "fail",
                "4"
            ]
        );
        assert_eq!(a[5..9], ["PIDs", "au", "1", "42"]);
        assert_eq!(a[9..12], ["Delegate", "b", "true"]);
        assert_eq!(a[12..15], ["Slice", "s", "machine.slice"]);
        assert_eq!(a[15..18], ["Description", "s", "rkt pod u"]);
        assert_eq!(a[18], "0");
    }

    #[test]
    fn stream_header_is_seven_lines() {
        assert_eq!(stream_header("web"), "web\n\n6\n1\n0\n0\n0\n");
        assert_eq!(stream_header("a\nb"), "a_b\n\n6\n1\n0\n0\n0\n");
    }

    #[test]
    fn ready_reaches_a_datagram_socket() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("notify");
        let rx = std::os::unix::net::UnixDatagram::bind(&p).unwrap();
        send(p.to_str().unwrap(), b"READY=1\n").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
        assert!(send("/nonexistent/notify", b"READY=1\n").is_err());
    }
}
