//! systemd's service environment for `rkt run`: `--sd-notify`, the watchdog and socket
//! activation (the contract with stage1: `stage1_abi::systemd`, docs/systemd.md).
//!
//! Read once, before the pod is created, so a bad environment creates nothing; what applies is
//! written to the pod dir's `systemd.json` and every variable of the protocol is kept out of
//! stage1's environment ([`stage1_abi::systemd::SERVICE_ENV`]).

use stage1_abi::systemd::{listen_fd_range, MAX_LISTEN_FDS};
pub use stage1_abi::systemd::{SdNotify, SystemdConfig, SERVICE_ENV};

use crate::{Error, Result};

/// What of systemd's environment `get` (the process environment) hands a `rkt run` with
/// `--sd-notify=mode` whose PID is `own_pid`:
///
/// * notify: `mode` when `NOTIFY_SOCKET` is set (without it the flag is a no-op, as podman's
///   `--sdnotify`, so one command line works in and out of a unit); `container` needs a path
///   (an abstract socket is per network namespace);
/// * `WATCHDOG_USEC` in `container` mode, unless `WATCHDOG_PID` names another process;
/// * `LISTEN_FDS`/`LISTEN_FDNAMES` when `LISTEN_PID` is `own_pid` (sd_listen_fds(3)), else
///   none: the variables were meant for another process.
pub fn from_env(
    mode: SdNotify,
    get: impl Fn(&str) -> Option<String>,
    own_pid: u32,
) -> Result<SystemdConfig> {
    let mut c = SystemdConfig::default();
    let socket = get("NOTIFY_SOCKET").filter(|s| !s.is_empty());
    if let (Some(sock), true) = (socket, mode != SdNotify::None) {
        if mode == SdNotify::Container && !sock.starts_with('/') {
            return Err(Error::usage(format!(
                "--sd-notify=container needs NOTIFY_SOCKET to be a socket path, not {sock:?} (an abstract socket cannot be bound into the pod)"
            )));
        }
        c.notify = mode;
        c.notify_socket = Some(sock);
        if mode == SdNotify::Container {
            let for_us = get("WATCHDOG_PID").is_none_or(|p| p.trim() == own_pid.to_string());
            c.watchdog_usec = get("WATCHDOG_USEC")
                .filter(|_| for_us)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|v| *v > 0);
        }
    }
    let listen_pid = get("LISTEN_PID").and_then(|p| p.trim().parse::<u32>().ok());
    if listen_pid == Some(own_pid) {
        let fds = get("LISTEN_FDS").unwrap_or_default();
        let n: u32 = fds
            .trim()
            .parse()
            .map_err(|_| Error::usage(format!("LISTEN_FDS={fds:?} is not a number")))?;
        if n > MAX_LISTEN_FDS {
            return Err(Error::usage(format!(
                "LISTEN_FDS={n}: more than {MAX_LISTEN_FDS} sockets"
            )));
        }
        c.listen_fds = n;
        if n > 0 {
            c.listen_fdnames = get("LISTEN_FDNAMES");
        }
    }
    Ok(c)
}

/// [`from_env`] over this process's environment and PID, with the passed fds checked to be
/// open (`LISTEN_FDS=2` means fds 3 and 4).
pub fn from_process(mode: SdNotify) -> Result<SystemdConfig> {
    let c = from_env(mode, |k| std::env::var(k).ok(), std::process::id())?;
    for fd in listen_fd_range(c.listen_fds) {
        if nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_err() {
            return Err(Error::usage(format!(
                "LISTEN_FDS={}: fd {fd} is not open",
                c.listen_fds
            )));
        }
    }
    Ok(c)
}

/// Keep the passed sockets open across the exec of stage1 (systemd passes them without
/// `FD_CLOEXEC`; this makes sure).
pub fn keep_across_exec(c: &SystemdConfig) -> Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    for fd in listen_fd_range(c.listen_fds) {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())).map_err(|e| {
            Error::usage(format!("LISTEN_FDS: keeping fd {fd} open for stage1: {e}"))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn notify_needs_the_flag_and_the_socket() {
        let sock = [("NOTIFY_SOCKET", "/run/systemd/notify")];
        // default: nothing reaches the pod, even under a unit
        assert!(from_env(SdNotify::None, env(&sock), 7).unwrap().is_empty());
        // the flag without a socket (outside systemd) is a no-op
        assert!(from_env(SdNotify::Ready, env(&[]), 7).unwrap().is_empty());
        let c = from_env(SdNotify::Ready, env(&sock), 7).unwrap();
        assert_eq!(c.notify, SdNotify::Ready);
        assert_eq!(c.notify_socket.as_deref(), Some("/run/systemd/notify"));
        let e = from_env(SdNotify::Container, env(&[("NOTIFY_SOCKET", "@/org/x")]), 7).unwrap_err();
        assert!(e.to_string().contains("\"@/org/x\""), "{e}");
        // an abstract socket is fine for stage1 itself
        assert!(from_env(SdNotify::Ready, env(&[("NOTIFY_SOCKET", "@x")]), 7).is_ok());
    }

    #[test]
    fn watchdog_only_for_the_app_and_for_us() {
        let base = [("NOTIFY_SOCKET", "/n"), ("WATCHDOG_USEC", "3000000")];
        let c = from_env(SdNotify::Container, env(&base), 7).unwrap();
        assert_eq!(c.watchdog_usec, Some(3_000_000));
        let c = from_env(SdNotify::Ready, env(&base), 7).unwrap();
        assert_eq!(c.watchdog_usec, None);
        let mut other = base.to_vec();
        other.push(("WATCHDOG_PID", "8"));
        assert_eq!(
            from_env(SdNotify::Container, env(&other), 7)
                .unwrap()
                .watchdog_usec,
            None
        );
        other[2] = ("WATCHDOG_PID", "7");
        assert_eq!(
            from_env(SdNotify::Container, env(&other), 7)
                .unwrap()
                .watchdog_usec,
            Some(3_000_000)
        );
    }

    #[test]
    fn listen_fds_only_when_listen_pid_is_ours() {
        let l = [
            ("LISTEN_FDS", "2"),
            ("LISTEN_PID", "7"),
            ("LISTEN_FDNAMES", "http:admin"),
        ];
        let c = from_env(SdNotify::None, env(&l), 7).unwrap();
        assert_eq!(c.listen_fds, 2);
        assert_eq!(c.listen_fdnames.as_deref(), Some("http:admin"));
        assert_eq!(listen_fd_range(c.listen_fds), 3..5);
        assert!(from_env(SdNotify::None, env(&l), 8).unwrap().is_empty());
        let e = from_env(
            SdNotify::None,
            env(&[("LISTEN_FDS", "x"), ("LISTEN_PID", "7")]),
            7,
        )
        .unwrap_err();
        assert!(e.to_string().contains("LISTEN_FDS=\"x\""), "{e}");
    }
}
