//! The stop/reap state machine of a running pod, as rkt defines it: when an app fails (exits
//! non-zero) the others get SIGTERM and are recorded with exit code 0; SIGTERM/SIGINT/SIGHUP to
//! the pod do the same; whatever still runs after the stop timeout gets SIGKILL, and so does the
//! sandbox (its PID namespace dies with it). The pod is over when every app has exited; its code
//! is the failing app's, else 0.
//!
//! Side effects go through [`Os`], so the logic is tested without processes.

use crate::handoff::AppSpec;

/// SIGKILL (the same number on every Linux architecture).
pub const SIGKILL: i32 = 9;
/// SIGTERM.
pub const SIGTERM: i32 = 15;

/// What the state machine asks of the system.
pub trait Os {
    /// Send `signal` to `pid` (errors are ignored: the process may be gone).
    fn kill(&mut self, pid: i32, signal: i32);
    /// Wall-clock time, ns since the epoch (for status records).
    fn realtime_ns(&self) -> i64;
    /// Write the app's status record.
    fn record(&mut self, app: &App<'_>);
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// `exit(code)`.
    Code(i32),
    /// Killed by a signal.
    Signal(i32),
}

impl Exit {
    /// Decode a `wait4` status; `None` for stop/continue reports.
    pub fn from_wait_status(st: i32) -> Option<Exit> {
        let low = st & 0x7f;
        if low == 0 {
            Some(Exit::Code((st >> 8) & 0xff))
        } else if low != 0x7f {
            Some(Exit::Signal(low))
        } else {
            None
        }
    }

    /// The code rkt reports: the exit code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// How an app ended, as its status record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    /// When it was reaped (ns since the epoch).
    pub finished_ns: i64,
    /// Recorded exit code (0 for an app the pod stopped, as rkt did).
    pub exit_code: i32,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    /// Whether the pod stopped it (another app failed, or the pod was asked to stop).
    pub stopped_by_pod: bool,
}

/// One app of the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct App<'a> {
    /// What stage1 handed over.
    pub spec: AppSpec<'a>,
    /// Set once reaped.
    pub end: Option<End>,
}

impl<'a> App<'a> {
    /// A running app.
    pub fn new(spec: AppSpec<'a>) -> Self {
        App { spec, end: None }
    }

    /// Not reaped yet.
    pub fn running(&self) -> bool {
        self.end.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Failed(i32),
    Requested,
}

/// The pod's apps and where stopping them stands.
#[derive(Debug)]
pub struct Pod<'a, 'b> {
    apps: &'b mut [App<'a>],
    sandbox_pid: i32,
    stop_timeout_ms: u64,
    stop: Option<Stop>,
    kill_at_ms: Option<u64>,
    killed: bool,
}

impl<'a, 'b> Pod<'a, 'b> {
    /// A pod whose apps all run; `sandbox_pid` 0 if there is none to kill.
    pub fn new(apps: &'b mut [App<'a>], sandbox_pid: i32, stop_timeout_secs: u64) -> Self {
        Pod {
            apps,
            sandbox_pid,
            stop_timeout_ms: stop_timeout_secs.saturating_mul(1000),
            stop: None,
            kill_at_ms: None,
            killed: false,
        }
    }

    /// The apps.
    pub fn apps(&self) -> &[App<'a>] {
        self.apps
    }

    /// The sandbox's PID, 0 once it was reaped.
    pub fn sandbox_pid(&self) -> i32 {
        self.sandbox_pid
    }

    /// The pod is stopping (an app failed, or a stop was requested).
    pub fn stopping(&self) -> bool {
        self.stop.is_some()
    }

    /// Every app has exited.
    pub fn done(&self) -> bool {
        self.apps.iter().all(|a| !a.running())
    }

    /// The pod's exit code: the failing app's, else 0.
    pub fn exit_code(&self) -> i32 {
        match self.stop {
            Some(Stop::Failed(c)) => c,
            _ => 0,
        }
    }

    /// A child was reaped (any child: apps, the sandbox, helpers that were reparented).
    pub fn exited(&mut self, os: &mut impl Os, pid: i32, exit: Exit, now_ms: u64) {
        if pid <= 0 {
            return;
        }
        if pid == self.sandbox_pid {
            self.sandbox_pid = 0;
            return;
        }
        let stopping = self.stop.is_some();
        let Some(app) = self
            .apps
            .iter_mut()
            .find(|a| a.spec.pid == pid && a.running())
        else {
            return;
        };
        let code = exit.code();
        app.end = Some(End {
            finished_ns: os.realtime_ns(),
            exit_code: if stopping { 0 } else { code },
            signal: match exit {
                Exit::Signal(s) => Some(s),
                Exit::Code(_) => None,
            },
            stopped_by_pod: stopping,
        });
        os.record(app);
        if code != 0 && !stopping {
            self.begin_stop(os, Stop::Failed(code), now_ms);
        }
    }

    /// SIGTERM, SIGINT or SIGHUP reached the pod.
    pub fn stop_requested(&mut self, os: &mut impl Os, now_ms: u64) {
        self.begin_stop(os, Stop::Requested, now_ms);
    }

    fn begin_stop(&mut self, os: &mut impl Os, why: Stop, now_ms: u64) {
        if self.stop.is_some() {
            return;
        }
        self.stop = Some(why);
        self.kill_at_ms = Some(now_ms.saturating_add(self.stop_timeout_ms));
        self.signal_running(os, SIGTERM);
    }

    fn signal_running(&mut self, os: &mut impl Os, signal: i32) {
        for a in self.apps.iter().filter(|a| a.running() && a.spec.pid > 0) {
            os.kill(a.spec.pid, signal);
        }
    }

    /// Time passed: SIGKILL everything once the stop timeout is over.
    pub fn tick(&mut self, os: &mut impl Os, now_ms: u64) {
        if self.killed || self.kill_at_ms.is_none_or(|t| now_ms < t) {
            return;
        }
        self.killed = true;
        self.signal_running(os, SIGKILL);
        if self.sandbox_pid > 0 {
            os.kill(self.sandbox_pid, SIGKILL);
        }
    }

    /// How long to wait for the next event before [`Pod::tick`] has something to do (`None`:
    /// until a signal arrives).
    pub fn timeout_ms(&self, now_ms: u64) -> Option<u64> {
        self.kill_at_ms
            .filter(|_| !self.killed)
            .map(|t| t.saturating_sub(now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct FakeOs {
        kills: Vec<(i32, i32)>,
        records: Vec<(String, End)>,
    }

    impl Os for FakeOs {
        fn kill(&mut self, pid: i32, signal: i32) {
            self.kills.push((pid, signal));
        }
        fn realtime_ns(&self) -> i64 {
            5
        }
        fn record(&mut self, app: &App<'_>) {
            self.records
                .push((app.spec.name.to_string(), app.end.unwrap()));
        }
    }

    fn apps() -> [App<'static>; 3] {
        let spec = |name, pid| AppSpec {
            name,
            pid,
            created_ns: 1,
            started_ns: 2,
        };
        [
            App::new(spec("a", 10)),
            App::new(spec("b", 11)),
            App::new(spec("c", 12)),
        ]
    }

    #[test]
    fn wait_status_decoding() {
        assert_eq!(Exit::from_wait_status(0), Some(Exit::Code(0)));
        assert_eq!(Exit::from_wait_status(5 << 8), Some(Exit::Code(5)));
        assert_eq!(Exit::from_wait_status(9), Some(Exit::Signal(9)));
        assert_eq!(
            Exit::from_wait_status(15 | 0x80),
            Some(Exit::Signal(15)),
            "core dump"
        );
        assert_eq!(Exit::from_wait_status((19 << 8) | 0x7f), None, "stopped");
        assert_eq!(Exit::Signal(9).code(), 137);
    }

    #[test]
    fn all_succeed_exit_zero_without_signals() {
        let mut a = apps();
        let mut os = FakeOs::default();
        let mut pod = Pod::new(&mut a, 99, 10);
        for pid in [12, 10, 11] {
            assert!(!pod.done());
            pod.exited(&mut os, pid, Exit::Code(0), 0);
        }
        assert!(pod.done());
        assert_eq!(pod.exit_code(), 0);
        assert!(os.kills.is_empty());
        assert_eq!(os.records.len(), 3);
        assert_eq!(pod.timeout_ms(0), None);
        assert_eq!(pod.sandbox_pid(), 99);
    }

    #[test]
    fn failing_app_stops_others_which_record_zero() {
        let mut a = apps();
        let mut os = FakeOs::default();
        let mut pod = Pod::new(&mut a, 99, 10);
        assert!(!pod.stopping());
        pod.exited(&mut os, 11, Exit::Code(5), 1000);
        assert!(pod.stopping());
        assert_eq!(os.kills, [(10, SIGTERM), (12, SIGTERM)]);
        assert_eq!(pod.timeout_ms(1000), Some(10_000));
        pod.exited(&mut os, 10, Exit::Signal(SIGTERM), 1200);
        // a second failure while stopping changes nothing
        pod.exited(&mut os, 12, Exit::Code(3), 1300);
        assert!(pod.done());
        assert_eq!(pod.exit_code(), 5);
        let codes: Vec<_> = os
            .records
            .iter()
            .map(|(n, e)| (n.as_str(), e.exit_code, e.stopped_by_pod))
            .collect();
        assert_eq!(codes, [("b", 5, false), ("a", 0, true), ("c", 0, true)]);
        assert_eq!(os.records[1].1.signal, Some(SIGTERM));
    }

    #[test]
    fn signal_death_is_128_plus_n() {
        let mut a = apps();
        let mut os = FakeOs::default();
        let mut pod = Pod::new(&mut a[..1], 0, 10);
        pod.exited(&mut os, 10, Exit::Signal(SIGKILL), 0);
        assert_eq!(pod.exit_code(), 137);
        assert_eq!(os.records[0].1.signal, Some(SIGKILL));
    }

    #[test]
    fn stop_request_then_kill_after_timeout() {
        let mut a = apps();
        let mut os = FakeOs::default();
        let mut pod = Pod::new(&mut a, 99, 2);
        pod.exited(&mut os, 12, Exit::Code(0), 0);
        pod.stop_requested(&mut os, 100);
        pod.stop_requested(&mut os, 150);
        assert_eq!(
            os.kills,
            [(10, SIGTERM), (11, SIGTERM)],
            "once, running apps only"
        );
        pod.tick(&mut os, 2099);
        assert_eq!(os.kills.len(), 2);
        pod.tick(&mut os, 2100);
        assert_eq!(
            &os.kills[2..],
            [(10, SIGKILL), (11, SIGKILL), (99, SIGKILL)]
        );
        assert_eq!(pod.timeout_ms(2200), None, "killed: nothing more to time");
        pod.tick(&mut os, 3000);
        assert_eq!(os.kills.len(), 5);
        pod.exited(&mut os, 99, Exit::Signal(SIGKILL), 3000);
        assert_eq!(pod.sandbox_pid(), 0);
        pod.exited(&mut os, 10, Exit::Signal(SIGKILL), 3000);
        pod.exited(&mut os, 11, Exit::Signal(SIGKILL), 3000);
        assert!(pod.done());
        assert_eq!(pod.exit_code(), 0, "a requested stop exits 0");
    }

    #[test]
    fn unknown_and_repeated_pids_are_ignored() {
        let mut a = apps();
        let mut os = FakeOs::default();
        let mut pod = Pod::new(&mut a, 99, 10);
        pod.exited(&mut os, 1234, Exit::Code(1), 0);
        pod.exited(&mut os, 0, Exit::Code(1), 0);
        assert!(os.records.is_empty() && os.kills.is_empty());
        pod.exited(&mut os, 10, Exit::Code(0), 0);
        pod.exited(&mut os, 10, Exit::Code(1), 0);
        assert_eq!(os.records.len(), 1);
        assert_eq!(pod.exit_code(), 0);
    }
}
