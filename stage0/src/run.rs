//! The hand-off to stage1: `rkt run` and `rkt run-prepared` write `runtime.json`, clear
//! `FD_CLOEXEC` on the pod lock fd, chdir into the pod dir and `execve` `rkt-stage1 run` with
//! `RKT_LOCK_FD` set. No fork: the `rkt run` process becomes the pod's stage1 (same PID).

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use stage1_abi::{env as abi_env, paths, PodManifest, RuntimeConfig, Stage1Command};
use std::convert::Infallible;
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::mount::Mounter;
use crate::pods::{LockedPod, Phase, Pods};
use crate::prepare::{self, PreparingPod};
use crate::{Error, Result};

/// File name of the stage1 binary, looked up next to the `rkt` binary by default.
pub const STAGE1_BINARY: &str = "rkt-stage1";

/// The data dir's `cache/`: derived data stage1 keeps across pods (built seccomp programs),
/// named in `runtime.json`. Deleting it at any time only costs rebuilding.
pub const CACHE_DIR: &str = "cache";

/// How to start stage1 for one run of a pod.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Runtime parameters; an empty `hostname` becomes rkt's default `rkt-<uuid>`.
    pub runtime: RuntimeConfig,
    /// The stage1 binary.
    pub stage1: PathBuf,
    /// Pass `RKT_DEBUG=1` to stage1.
    pub debug: bool,
    /// What of systemd's service environment reaches the pod (`systemd.json`).
    pub systemd: crate::systemd::SystemdConfig,
}

/// rkt's root-only commands refuse to run otherwise.
pub fn require_root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(Error::usage("cannot run as unprivileged user"))
    }
}

/// The stage1 binary: `--stage1-path` if given, else the `stage1` config `location`, else
/// `rkt-stage1` next to the running `rkt` binary. Checked to be an executable file.
pub fn find_stage1(explicit: Option<&Path>, configured: Option<&str>) -> Result<PathBuf> {
    let path = match (explicit, configured) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(c)) => PathBuf::from(c),
        (None, None) => {
            let exe = std::fs::read_link("/proc/self/exe")
                .map_err(|e| Error::io("reading", "/proc/self/exe", e))?;
            exe.parent()
                .unwrap_or_else(|| Path::new("/"))
                .join(STAGE1_BINARY)
        }
    };
    let meta = std::fs::metadata(&path).map_err(|e| Error::Stage1 {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(Error::Stage1 {
            path,
            reason: "not an executable file".into(),
        });
    }
    Ok(path)
}

/// Move a freshly prepared pod to `run/` and exec stage1. Returns only on failure, after
/// undoing the pod. The caller has checked the run against the pod (`Runtime::run`).
pub fn run_pod(pod: PreparingPod<'_>, run: &RunOptions) -> Result<Infallible> {
    let pod = pod.into_running()?;
    let err = exec_stage1(pod.locked(), run);
    drop(pod); // unmount, unpin, delete
    Err(err)
}

/// `rkt run-prepared UUID`: lock the prepared pod, move it to `run/` (only one racer wins),
/// mount its apps and exec stage1. On failure the pod goes back to `prepared/`.
pub fn run_prepared(
    data_dir: &Path,
    mounter: &dyn Mounter,
    uuid_arg: &str,
    run: &RunOptions,
) -> Result<Infallible> {
    let pods = Pods::new(data_dir);
    let entry = pods.find(uuid_arg)?;
    let not_prepared = || Error::PodState {
        uuid: entry.uuid.clone(),
        what: "not prepared".into(),
    };
    if entry.phase != Phase::Prepared {
        return Err(not_prepared());
    }
    let mut pod = match pods.lock(Phase::Prepared, &entry.uuid) {
        Ok(p) => p,
        Err(Error::PodState { .. } | Error::NoMatch(_)) => return Err(not_prepared()),
        Err(e) => return Err(e),
    };
    if let Err(e) = pod.transition(Phase::Run) {
        return Err(match e {
            Error::PodState { .. } => not_prepared(),
            e => e,
        });
    }
    let result = (|| {
        let manifest: PodManifest = stage1_abi::read_json(&pod.path().join(paths::POD_MANIFEST))?;
        stage1_abi::check_interactive(run.runtime.interactive, manifest.apps.len())?;
        let mounted = prepare::mount_apps(mounter, &pod.path(), &manifest)?;
        let err = exec_stage1(&pod, run);
        prepare::unmount_all(mounter, &mounted);
        Err(err)
    })();
    if let Err(e) = pod.transition(Phase::Prepared) {
        tracing::warn!("moving pod {} back to prepared: {e}", entry.uuid);
    }
    result
}

fn cstring(s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| Error::usage(format!("{s:?} contains a NUL byte")))
}

/// Write `runtime.json` and exec stage1 in the pod dir with the lock fd inherited. Returns
/// only on failure.
pub fn exec_stage1(pod: &LockedPod, run: &RunOptions) -> Error {
    match try_exec(pod, run) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn try_exec(pod: &LockedPod, run: &RunOptions) -> Result<Infallible> {
    let dir = pod.path();
    let mut rc = run.runtime.clone();
    if rc.hostname.is_empty() {
        rc.hostname = format!("rkt-{}", pod.uuid());
    }
    prepare::write_json(&dir.join(paths::RUNTIME_CONFIG), &rc)?;
    let sd = dir.join(paths::SYSTEMD);
    if run.systemd.is_empty() {
        let _ = std::fs::remove_file(&sd);
    } else {
        prepare::write_json(&sd, &run.systemd)?;
        crate::systemd::keep_across_exec(&run.systemd)?;
    }

    let fd = pod.lock_fd();
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))
        .map_err(|e| Error::io("clearing FD_CLOEXEC on the pod lock of", &dir, e.into()))?;

    let mut argv = vec![cstring(run.stage1.as_os_str())?];
    for a in Stage1Command::Run.to_args() {
        argv.push(cstring(OsStr::new(&a))?);
    }
    let mut envp = Vec::new();
    for (k, v) in std::env::vars_os() {
        if k == abi_env::LOCK_FD
            || k == abi_env::DEBUG
            || k == abi_env::STAGE1_PATH
            || crate::systemd::SERVICE_ENV.iter().any(|v| k == *v)
        {
            continue;
        }
        let mut kv = k.clone();
        kv.push("=");
        kv.push(&v);
        envp.push(cstring(&kv)?);
    }
    envp.push(cstring(OsStr::new(&format!("{}={fd}", abi_env::LOCK_FD)))?);
    if run.debug {
        envp.push(cstring(OsStr::new(&format!("{}=1", abi_env::DEBUG)))?);
    }
    let mut var = OsStr::new(abi_env::STAGE1_PATH).to_os_string();
    var.push("=");
    var.push(run.stage1.as_os_str());
    envp.push(cstring(&var)?);
    nix::unistd::chdir(&dir).map_err(|e| Error::io("changing directory to", &dir, e.into()))?;
    tracing::debug!(stage1 = %run.stage1.display(), pod = %dir.display(), "exec stage1");
    Err(exec_read_only(&run.stage1, &argv, &envp))
}

/// Exec the binary at `path` from a detached read-only mount of it ([`crate::sys`]), so that
/// every process of the pod that runs it — the pod's PID 1 and each app's init are forks of
/// stage1, and an app whose entrypoint is `#!/proc/self/exe` execs it again inside the pod —
/// has a `/proc/PID/exe` that cannot be opened for writing (CVE-2019-5736). No copy, no extra
/// exec: ≈ 30 µs. Returns only on failure.
pub(crate) fn exec_read_only(path: &Path, argv: &[CString], envp: &[CString]) -> Error {
    let fail = |reason: String| Error::Stage1 {
        path: path.to_path_buf(),
        reason,
    };
    let fd = match crate::sys::read_only_file_mount(path) {
        Ok(fd) => fd,
        Err(e) => {
            return fail(format!(
                "a read-only mount of it: {e} (rkt needs Linux 5.12 or later)"
            ))
        }
    };
    let e = nix::unistd::execveat(
        Some(std::os::fd::AsRawFd::as_raw_fd(&fd)),
        c"",
        argv,
        envp,
        nix::fcntl::AtFlags::AT_EMPTY_PATH,
    )
    .unwrap_err();
    fail(format!("exec failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage1_lookup_checks_the_file() {
        let d = tempfile::tempdir().unwrap();
        let s1 = d.path().join("s1");
        std::fs::write(&s1, "#!/bin/sh\n").unwrap();
        let e = find_stage1(Some(&s1), None).unwrap_err();
        assert!(e.to_string().contains("not an executable file"));
        std::fs::set_permissions(&s1, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_stage1(Some(&s1), Some("/nope")).unwrap(), s1);
        assert!(find_stage1(None, Some("/nonexistent/s1")).is_err());
    }
}
