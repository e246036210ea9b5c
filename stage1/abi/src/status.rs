//! Per-app status files (`status/<app>`), written by stage1, read by `rkt status` / `rkt list`.

use serde::{Deserialize, Serialize};

/// Lifecycle record of one app. stage1 writes it when the app is created, again when it starts,
/// and a last time when it is reaped (atomically each time).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    /// App name.
    pub app: String,
    /// Host PID of the app's process while it runs.
    #[serde(default)]
    pub pid: Option<i32>,
    /// Times in nanoseconds since the Unix epoch.
    #[serde(default)]
    pub created_ns: Option<i64>,
    /// When the app's process was started.
    #[serde(default)]
    pub started_ns: Option<i64>,
    /// When it was reaped.
    #[serde(default)]
    pub finished_ns: Option<i64>,
    /// Exit code as rkt reports it (`128+n` for signal n); present once the app finished.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Signal that ended the app, if any.
    #[serde(default)]
    pub signal: Option<i32>,
    /// True when stage1 stopped the app because another app failed (rkt records 0 for those).
    #[serde(default)]
    pub stopped_by_pod: bool,
    /// The kernel's OOM killer killed a process of the app (its memory cgroup counted one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
    /// The ids the app runs as (inside the pod), as stage1 resolved them: uid, gid and the
    /// supplementary gids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<(u32, u32, Vec<u32>)>,
}

impl AppStatus {
    /// Whether the app has finished.
    pub fn finished(&self) -> bool {
        self.exit_code.is_some()
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
