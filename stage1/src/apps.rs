//! Start one app of the pod as a libcontainer container that joins the sandbox's namespaces.
//! A function of the supervisor (not a one-shot sequence), so a control socket can later add
//! apps to a running pod.

use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use stage1_abi::{now_ns, paths, write_json_atomic, App, AppStatus, PodManifest, RuntimeConfig};

use crate::cgroups::PodCgroups;
use crate::sandbox::Sandbox;
use crate::spec::{self, SpecInput};
use crate::{user, volumes, Error};

/// What starting an app needs from the pod.
pub struct PodCtx<'a> {
    /// Absolute pod dir.
    pub pod_dir: &'a Path,
    /// The manifest.
    pub pod: &'a PodManifest,
    /// Runtime parameters.
    pub rc: &'a RuntimeConfig,
    /// The sandbox.
    pub sandbox: &'a Sandbox,
    /// The pod's cgroups.
    pub cgroups: &'a PodCgroups,
}

/// A started app as the supervisor tracks it.
#[derive(Debug, Clone)]
pub struct AppProc {
    /// Host PID of the app's process.
    pub pid: Pid,
    /// Its status record (also on disk).
    pub status: AppStatus,
    /// Path of the status file.
    pub status_path: PathBuf,
}

impl AppProc {
    /// Whether the app still runs.
    pub fn running(&self) -> bool {
        !self.status.finished()
    }

    /// Record the app's end and write the status file.
    pub fn finish(&mut self, exit_code: i32, signal: Option<i32>, stopped_by_pod: bool) {
        self.status.finished_ns = Some(now_ns());
        self.status.exit_code = Some(if stopped_by_pod { 0 } else { exit_code });
        self.status.signal = signal;
        self.status.stopped_by_pod = stopped_by_pod;
        let _ = write_json_atomic(&self.status_path, &self.status);
    }
}

/// Runs inside the app's init right before exec: tie the app to stage1's life and give it a
/// clean signal mask (stage1 blocks the signals it reads from its signalfd).
#[derive(Clone)]
struct RktExecutor;

impl Executor for RktExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
        libcontainer::workload::default::get_executor().exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        let Some(arg0) = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().as_ref())
            .and_then(|a| a.first())
        else {
            return Err(ExecutorValidationError::ArgValidationError(
                "no command to execute".into(),
            ));
        };
        let found = if arg0.contains('/') {
            Path::new(arg0).exists()
        } else {
            let path = spec
                .process()
                .as_ref()
                .and_then(|p| p.env().as_ref())
                .and_then(|e| {
                    e.iter()
                        .find_map(|v| v.strip_prefix("PATH=").map(str::to_string))
                })
                .unwrap_or_else(|| {
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
                });
            path.split(':').any(|d| Path::new(d).join(arg0).exists())
        };
        if found {
            Ok(())
        } else {
            Err(ExecutorValidationError::ArgValidationError(format!(
                "executable {arg0:?} not found in the app's root filesystem"
            )))
        }
    }
}

fn app_err(app: &str, msg: impl std::fmt::Display) -> Error {
    Error::App {
        app: app.to_string(),
        msg: msg.to_string(),
    }
}

/// One line from an error and its sources.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s.replace('\n', " ")
}

/// Create and start `app`. On error nothing of the app keeps running.
pub fn start_app(ctx: &PodCtx<'_>, app: &App) -> Result<AppProc, Error> {
    let pod_dir = ctx.pod_dir;
    let rootfs = pod_dir.join(paths::app_rootfs(&app.name));
    if !rootfs.is_dir() {
        return Err(app_err(
            &app.name,
            format!("root filesystem {} missing", rootfs.display()),
        ));
    }
    let (uid, gid) =
        user::resolve(&rootfs, &app.user, &app.group).map_err(|e| app_err(&app.name, e))?;
    let bundle = pod_dir.join(paths::app_dir(&app.name)).join("bundle");
    let mut mounts = volumes::volume_mounts(pod_dir, ctx.pod, app)?;
    mounts.extend(volumes::etc_mounts(
        &bundle.join("files"),
        &rootfs,
        ctx.rc,
        app.readonly_rootfs,
    )?);
    let sb = ctx.sandbox;
    let mut join_ns = vec![("pid", sb.ns_path("pid")), ("uts", sb.ns_path("uts"))];
    if sb.own_net {
        join_ns.push(("network", sb.ns_path("net")));
    }
    if sb.own_ipc {
        join_ns.push(("ipc", sb.ns_path("ipc")));
    }
    ctx.cgroups.create_app(&app.name, &app.isolators)?;
    let spec = spec::build(&SpecInput {
        app,
        rc: ctx.rc,
        rootfs: &rootfs,
        uid,
        gid,
        join_ns,
        mounts,
        cgroups_path: ctx.cgroups.libcontainer_path(&app.name),
    })
    .map_err(|e| app_err(&app.name, e))?;
    let cfg = bundle.join("config.json");
    std::fs::create_dir_all(&bundle).map_err(|e| Error::io(&bundle, e))?;
    let data = serde_json::to_vec(&spec).map_err(|e| app_err(&app.name, e))?;
    std::fs::write(&cfg, data).map_err(|e| Error::io(&cfg, e))?;

    let status_path = pod_dir.join(paths::app_status(&app.name));
    let mut status = AppStatus {
        app: app.name.clone(),
        created_ns: Some(now_ns()),
        ..Default::default()
    };
    write_json_atomic(&status_path, &status)?;

    let state = pod_dir.join(paths::STATE_DIR);
    std::fs::create_dir_all(&state).map_err(|e| Error::io(&state, e))?;
    tracing::debug!(app = %app.name, "bundle written");
    let pid = create_in_helper(ctx, app, &state, &bundle)?;
    tracing::debug!(app = %app.name, %pid, "container created");
    // the helper has exited: the app's process is stage1's child now, so its parent-death
    // signal (set right before exec) ties it to stage1
    let fail = |e: Error| {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
        e
    };
    if let Some(adj) = app.isolators.oom_score_adj {
        let p = format!("/proc/{pid}/oom_score_adj");
        std::fs::write(&p, adj.to_string()).map_err(|e| {
            fail(app_err(
                &app.name,
                format!("setting oom_score_adj to {adj}: {e}"),
            ))
        })?;
    }
    libcontainer::container::Container::load(state.join(&app.name))
        .and_then(|mut c| c.start())
        .map_err(|e| fail(app_err(&app.name, chain(&e))))?;
    status.pid = Some(pid.as_raw());
    status.started_ns = Some(now_ns());
    write_json_atomic(&status_path, &status)?;
    Ok(AppProc {
        pid,
        status,
        status_path,
    })
}

/// Create the app's container (its process waits for "start") from a short-lived helper child.
///
/// libcontainer puts the app into the caller's cgroups (stage1 passes an empty `cgroupsPath` on
/// v1 so that each hierarchy keeps its own nesting) and, when creation fails, kills everything
/// in the caller's cgroups. So the helper, not stage1, moves into the app's cgroups and runs
/// libcontainer; the app's process is re-parented to stage1 (a child subreaper). The helper
/// reports `ok <pid>` or the error through a pipe; libcontainer's own error log line is captured
/// into the same pipe for the case where its clean-up kills the helper. As a bonus stage1 never
/// runs libcontainer code itself, which keeps its resident memory small.
fn create_in_helper(
    ctx: &PodCtx<'_>,
    app: &App,
    state: &Path,
    bundle: &Path,
) -> Result<Pid, Error> {
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::Sys("creating helper pipe".into(), e))?;
    match crate::sys::fork().map_err(|e| Error::Sys("forking the app helper".into(), e))? {
        nix::unistd::ForkResult::Child => {
            drop(rd);
            let out = std::sync::Mutex::new(std::fs::File::from(wr));
            let code = helper_main(ctx, app, state, bundle, out);
            std::process::exit(code);
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(wr);
            // read up to the verdict, not to EOF: the app's process holds a copy of the pipe
            // until it execs
            let mut msg = String::new();
            let mut r = std::io::BufReader::new(std::fs::File::from(rd));
            loop {
                let mut line = String::new();
                match std::io::BufRead::read_line(&mut r, &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let verdict = line.starts_with("ok ") || line.starts_with("err: ");
                        msg.push_str(&line);
                        if verdict {
                            break;
                        }
                    }
                }
            }
            let _ = nix::sys::wait::waitpid(child, None);
            parse_helper_output(&msg).map_err(|m| app_err(&app.name, m))
        }
    }
}

fn parse_helper_output(msg: &str) -> Result<Pid, String> {
    for l in msg.lines() {
        if let Some(p) = l
            .strip_prefix("ok ")
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            return Ok(Pid::from_raw(p));
        }
    }
    if let Some(e) = msg.lines().rev().find_map(|l| l.strip_prefix("err: ")) {
        return Err(e.to_string());
    }
    // killed by libcontainer's clean-up: use its log line, minus its wrapping
    let last = msg.lines().rev().find(|l| !l.trim().is_empty());
    Err(match last {
        Some(l) => l
            .rsplit(" : ")
            .next()
            .unwrap_or(l)
            .trim_start_matches("failed to run container process ")
            .trim()
            .to_string(),
        None => "creating the container failed (run with --debug for details)".to_string(),
    })
}

fn helper_main(
    ctx: &PodCtx<'_>,
    app: &App,
    state: &Path,
    bundle: &Path,
    out: std::sync::Mutex<std::fs::File>,
) -> i32 {
    use std::io::Write;
    let log = out
        .lock()
        .ok()
        .and_then(|f| f.try_clone().ok())
        .map(std::sync::Mutex::new);
    let debug = std::env::var(stage1_abi::env::DEBUG).is_ok_and(|v| v == "1");
    let res = match log {
        // with --debug libcontainer logs go to stderr as everything else
        Some(log) if !debug => {
            let sub = tracing_subscriber::fmt()
                .with_writer(log)
                .with_ansi(false)
                .with_level(false)
                .with_target(false)
                .without_time()
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    "off,libcontainer::container::builder_impl=error",
                ))
                .finish();
            tracing::subscriber::with_default(sub, || create_and_start(ctx, app, state, bundle))
        }
        _ => create_and_start(ctx, app, state, bundle),
    };
    let line = match &res {
        Ok(pid) => format!("ok {pid}\n"),
        Err(e) => format!("err: {e}\n"),
    };
    if let Ok(mut f) = out.lock() {
        let _ = f.write_all(line.as_bytes());
    }
    i32::from(res.is_err())
}

fn create_and_start(
    ctx: &PodCtx<'_>,
    app: &App,
    state: &Path,
    bundle: &Path,
) -> Result<Pid, String> {
    ctx.cgroups
        .enter_app(&app.name)
        .map_err(|e| e.to_string())?;
    let mut b = ContainerBuilder::new(app.name.clone(), SyscallType::default())
        .with_root_path(state)
        .map_err(|e| chain(&e))?
        .with_executor(RktExecutor);
    if !ctx.rc.interactive {
        let null = std::fs::File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
        b = b.with_stdin(null);
    }
    let container = b
        .as_init(bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| chain(&e))?;
    container
        .pid()
        .ok_or_else(|| "container has no pid".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_verdicts() {
        assert_eq!(parse_helper_output("ok 42\n").unwrap(), Pid::from_raw(42));
        assert_eq!(
            parse_helper_output("noise\nerr: setting oom_score_adj to -5: denied\n").unwrap_err(),
            "setting oom_score_adj to -5: denied"
        );
        // killed by libcontainer's clean-up after logging its error
        let log = "failed to run container process exec process failed with error error in \
                   executing process : executable \"/bin/nope\" not found\n";
        assert_eq!(
            parse_helper_output(log).unwrap_err(),
            "executable \"/bin/nope\" not found"
        );
        assert!(parse_helper_output("").unwrap_err().contains("--debug"));
    }
}
