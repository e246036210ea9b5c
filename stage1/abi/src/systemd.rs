//! What stage0 hands stage1 of the systemd environment `rkt run` was started in: the notify
//! mode and socket, the watchdog interval and the sockets passed for socket activation.
//!
//! stage0 reads `NOTIFY_SOCKET`, `WATCHDOG_USEC`/`WATCHDOG_PID` and
//! `LISTEN_FDS`/`LISTEN_PID`/`LISTEN_FDNAMES` (sd_listen_fds(3) rules: only when `LISTEN_PID`
//! is its own PID), removes them all from stage1's environment and writes this file
//! ([`crate::paths::SYSTEMD`]) before each exec of `rkt-stage1 run` when any of it applies.
//! No file: nothing of systemd reaches the pod. The passed sockets are the fds
//! `3 .. 3 + listen_fds` stage1 inherits.

use serde::{Deserialize, Serialize};

/// `rkt run --sd-notify=MODE`: who tells systemd the pod is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdNotify {
    /// Nobody; `NOTIFY_SOCKET` is not passed into the pod (a `Type=notify` unit would time
    /// out: use `Type=simple`/`exec`).
    #[default]
    None,
    /// The app: it gets `NOTIFY_SOCKET` (the host socket bound into its root) and
    /// `WATCHDOG_USEC`, and sends `READY=1`, `STATUS=…`, `WATCHDOG=1` itself. The unit needs
    /// `NotifyAccess=all`: the sender is an app process in the unit's cgroup, not the main PID.
    Container,
    /// stage1, as the main PID: `READY=1` once every app has started.
    Ready,
}

impl SdNotify {
    /// The flag's value (`none`, `container`, `ready`).
    pub fn as_str(self) -> &'static str {
        match self {
            SdNotify::None => "none",
            SdNotify::Container => "container",
            SdNotify::Ready => "ready",
        }
    }
}

impl std::str::FromStr for SdNotify {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(SdNotify::None),
            "container" => Ok(SdNotify::Container),
            "ready" => Ok(SdNotify::Ready),
            _ => Err(format!(
                "bad --sd-notify value {s:?}: want none, container or ready"
            )),
        }
    }
}

/// The pod dir's `systemd.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemdConfig {
    /// Notify mode; [`SdNotify::None`] when `NOTIFY_SOCKET` was not set.
    #[serde(default)]
    pub notify: SdNotify,
    /// `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket); set with a mode other than
    /// none.
    #[serde(default)]
    pub notify_socket: Option<String>,
    /// `WATCHDOG_USEC`, for the app in [`SdNotify::Container`] mode.
    #[serde(default)]
    pub watchdog_usec: Option<u64>,
    /// Number of sockets passed (`LISTEN_FDS`): fds 3.. of stage1, for the pod's first app.
    #[serde(default)]
    pub listen_fds: u32,
    /// `LISTEN_FDNAMES`, passed on unchanged.
    #[serde(default)]
    pub listen_fdnames: Option<String>,
}

impl SystemdConfig {
    /// Nothing of systemd applies (no file is written).
    pub fn is_empty(&self) -> bool {
        *self == SystemdConfig::default()
    }
}

/// Environment variables of systemd's service protocol that stage0 never passes to stage1 (the
/// file carries what applies). libcontainer reads `LISTEN_FDS` from its own environment and
/// would keep that many of its fds open into the app, whatever they are.
pub const SERVICE_ENV: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];

/// At most this many passed sockets (`LISTEN_FDS`) are taken.
pub const MAX_LISTEN_FDS: u32 = 4096;

/// The fd numbers of `n` passed sockets: `3 .. 3 + n` (sd_listen_fds(3)), at most
/// [`MAX_LISTEN_FDS`].
pub fn listen_fd_range(n: u32) -> std::ops::Range<i32> {
    3..3 + n.min(MAX_LISTEN_FDS) as i32
}

/// Where the app finds the notify socket in [`SdNotify::Container`] mode (a bind mount of the
/// host's socket file).
pub const NOTIFY_SOCKET_IN_APP: &str = "/run/systemd/notify";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_round_trip() {
        for m in [SdNotify::None, SdNotify::Container, SdNotify::Ready] {
            assert_eq!(m.as_str().parse::<SdNotify>().unwrap(), m);
        }
        let e = "conmon".parse::<SdNotify>().unwrap_err();
        assert!(e.contains("\"conmon\""), "{e}");
        let c = SystemdConfig {
            notify: SdNotify::Container,
            notify_socket: Some("/run/systemd/notify".into()),
            watchdog_usec: Some(5_000_000),
            listen_fds: 2,
            listen_fdnames: Some("a:b".into()),
        };
        let j = serde_json::to_string(&c).unwrap();
        assert!(j.contains("\"notify\":\"container\""), "{j}");
        assert_eq!(serde_json::from_str::<SystemdConfig>(&j).unwrap(), c);
        assert!(serde_json::from_str::<SystemdConfig>("{}")
            .unwrap()
            .is_empty());
    }
}
