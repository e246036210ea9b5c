//! The two argv formats between stage1 and the monitor. stage1 execs
//!
//! ```text
//! rkt-monitor STAGE1 --stop-timeout=SECS --sandbox=PID --app=NAME,PID,CREATED_NS,STARTED_NS…
//! ```
//!
//! (`STAGE1`: the `rkt-stage1` binary to exec afterwards), and the monitor execs
//!
//! ```text
//! rkt-stage1 teardown --exit-code=CODE --sandbox=PID
//! ```
//!
//! (`--sandbox=0`: the monitor already reaped the pod's PID 1). Both run in the pod dir with the
//! environment (and the pod lock fd) they inherited. These are stage1-internal: stage0 never
//! writes either (its contract with stage1 is `stage1-abi`).

use core::fmt;

/// File name of the monitor binary, installed next to `rkt-stage1`.
pub const MONITOR_BIN: &str = "rkt-monitor";
/// stage1's subcommand the monitor execs.
pub const TEARDOWN: &str = "teardown";
/// Most apps the monitor keeps track of (stage1 supervises larger pods itself).
pub const MAX_APPS: usize = 64;

/// A malformed argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgError(pub &'static str);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// One app as the monitor needs it: what to wait for and what its status record already says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppSpec<'a> {
    /// App name (an ACName: lowercase letters, digits, dashes).
    pub name: &'a str,
    /// Host PID of the app's process.
    pub pid: i32,
    /// When the app was created (ns since the epoch).
    pub created_ns: i64,
    /// When it was started.
    pub started_ns: i64,
}

/// One argument of the monitor after the stage1 path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorArg<'a> {
    /// Seconds between SIGTERM and SIGKILL when the pod stops.
    StopTimeout(u64),
    /// PID of the pod's PID 1 (the sandbox).
    Sandbox(i32),
    /// One app.
    App(AppSpec<'a>),
}

const STOP_TIMEOUT: &str = "--stop-timeout=";
const SANDBOX: &str = "--sandbox=";
const APP: &str = "--app=";
const EXIT_CODE: &str = "--exit-code=";

impl fmt::Display for MonitorArg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MonitorArg::StopTimeout(s) => write!(f, "{STOP_TIMEOUT}{s}"),
            MonitorArg::Sandbox(p) => write!(f, "{SANDBOX}{p}"),
            MonitorArg::App(a) => write!(
                f,
                "{APP}{},{},{},{}",
                a.name, a.pid, a.created_ns, a.started_ns
            ),
        }
    }
}

impl<'a> MonitorArg<'a> {
    /// Parse one argument.
    pub fn parse(s: &'a str) -> Result<Self, ArgError> {
        if let Some(v) = s.strip_prefix(STOP_TIMEOUT) {
            return v
                .parse()
                .map(MonitorArg::StopTimeout)
                .map_err(|_| ArgError("--stop-timeout needs seconds"));
        }
        if let Some(v) = s.strip_prefix(SANDBOX) {
            return parse_pid(v).map(MonitorArg::Sandbox);
        }
        if let Some(v) = s.strip_prefix(APP) {
            let mut it = v.split(',');
            let bad = ArgError("--app needs NAME,PID,CREATED_NS,STARTED_NS");
            let name = it.next().filter(|n| !n.is_empty()).ok_or(bad)?;
            let pid = parse_pid(it.next().ok_or(bad)?)?;
            let created_ns = it.next().and_then(|v| v.parse().ok()).ok_or(bad)?;
            let started_ns = it.next().and_then(|v| v.parse().ok()).ok_or(bad)?;
            if it.next().is_some() {
                return Err(bad);
            }
            return Ok(MonitorArg::App(AppSpec {
                name,
                pid,
                created_ns,
                started_ns,
            }));
        }
        Err(ArgError("unknown argument"))
    }
}

fn parse_pid(v: &str) -> Result<i32, ArgError> {
    v.parse::<i32>()
        .ok()
        .filter(|p| *p >= 0)
        .ok_or(ArgError("a PID must be a number ≥ 0"))
}

/// What the monitor hands back to stage1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Teardown {
    /// The pod's exit code.
    pub exit_code: i32,
    /// The sandbox's PID if it still has to be killed and reaped, else 0.
    pub sandbox_pid: i32,
}

/// One teardown argument after [`TEARDOWN`], for formatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeardownArg {
    /// `--exit-code=N`
    ExitCode(i32),
    /// `--sandbox=PID`
    Sandbox(i32),
}

impl fmt::Display for TeardownArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TeardownArg::ExitCode(c) => write!(f, "{EXIT_CODE}{c}"),
            TeardownArg::Sandbox(p) => write!(f, "{SANDBOX}{p}"),
        }
    }
}

impl Teardown {
    /// The arguments after [`TEARDOWN`].
    pub fn args(&self) -> [TeardownArg; 2] {
        [
            TeardownArg::ExitCode(self.exit_code),
            TeardownArg::Sandbox(self.sandbox_pid),
        ]
    }

    /// Parse the arguments after [`TEARDOWN`].
    pub fn parse<'s>(args: impl IntoIterator<Item = &'s str>) -> Result<Self, ArgError> {
        let (mut code, mut sandbox) = (None, None);
        for a in args {
            if let Some(v) = a.strip_prefix(EXIT_CODE) {
                code = Some(
                    v.parse::<i32>()
                        .ok()
                        .filter(|c| (0..=255).contains(c))
                        .ok_or(ArgError("--exit-code needs 0..255"))?,
                );
            } else if let Some(v) = a.strip_prefix(SANDBOX) {
                sandbox = Some(parse_pid(v)?);
            } else {
                return Err(ArgError("unknown teardown argument"));
            }
        }
        Ok(Teardown {
            exit_code: code.ok_or(ArgError("teardown needs --exit-code"))?,
            sandbox_pid: sandbox.ok_or(ArgError("teardown needs --sandbox"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_args_round_trip() {
        let app = AppSpec {
            name: "web-1",
            pid: 4242,
            created_ns: 1_700_000_000_000_000_001,
            started_ns: 1_700_000_000_000_000_002,
        };
        for a in [
            MonitorArg::StopTimeout(10),
            MonitorArg::Sandbox(77),
            MonitorArg::App(app),
        ] {
            let s = a.to_string();
            assert_eq!(MonitorArg::parse(&s), Ok(a), "{s}");
        }
    }

    #[test]
    fn monitor_args_refuse_garbage() {
        for s in [
            "--stop-timeout=x",
            "--sandbox=-3",
            "--app=web",
            "--app=,1,2,3",
            "--app=web,1,2,3,4",
            "--app=web,1,x,3",
            "--verbose",
        ] {
            assert!(MonitorArg::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn teardown_round_trip_and_errors() {
        let t = Teardown {
            exit_code: 137,
            sandbox_pid: 0,
        };
        let args: Vec<String> = t.args().iter().map(ToString::to_string).collect();
        assert_eq!(args, ["--exit-code=137", "--sandbox=0"]);
        assert_eq!(Teardown::parse(args.iter().map(String::as_str)), Ok(t));
        assert!(Teardown::parse(["--exit-code=1"]).is_err());
        assert!(Teardown::parse(["--exit-code=256", "--sandbox=1"]).is_err());
        assert!(Teardown::parse(["--sandbox=1", "--exit-code=0", "x"]).is_err());
    }
}
