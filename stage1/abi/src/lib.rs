//! The stage0 ↔ stage1 contract of rkt, written down as types.
//!
//! stage0 (`rkt run`, `rkt prepare`, …) and stage1 (`rkt-stage1`) never link each other: they
//! meet only through what this crate defines —
//!
//! * the **invocation**: argv ([`Stage1Command`]), the working directory (the pod dir) and the
//!   environment variables in [`env`];
//! * the **files in a pod dir** ([`paths`]): the pod manifest ([`PodManifest`], written by stage0),
//!   the runtime parameters ([`RuntimeConfig`], written by stage0 before every start), the `pid`
//!   file and the per-app status files ([`AppStatus`], written by stage1);
//! * the **exit codes** ([`exit`]).
//!
//! Every file is written with [`write_atomic`] (one rule for stage0, stage1 and the monitor:
//! a temp file in the same dir, then `rename(2)`, no fsync), so a reader never sees half a file. The human-readable description of the same contract lives
//! in `docs/stage1-abi.md`; keep the two in step.
#![deny(unsafe_code)]

pub mod control;
pub mod errno;
mod manifest;
mod network;
mod status;
pub mod systemd;

pub use manifest::*;
pub use network::*;
pub use status::*;

use std::fs;
use std::path::{Path, PathBuf};

/// Version of this contract. stage1 refuses a pod whose manifest names another version.
pub const ABI_VERSION: u32 = 1;

/// Environment variables stage0 sets when it execs stage1.
pub mod env {
    /// Number of the file descriptor that holds the exclusive `flock` on the pod dir. stage1
    /// keeps it open (and locked) for the pod's whole life: the kernel drops the lock when the
    /// process exits, which is how observers see "exited" with no daemon.
    pub const LOCK_FD: &str = "RKT_LOCK_FD";
    /// `1` when stage0 ran with `--debug`.
    pub const DEBUG: &str = "RKT_DEBUG";
    /// The host path of the `rkt-stage1` binary. stage0 execs stage1 from a detached read-only
    /// mount of it (so that no pod process can open the binary for writing through
    /// `/proc/PID/exe`, CVE-2019-5736), where `/proc/self/exe` names no host path: stage1 finds
    /// `rkt-monitor` beside this path, and hands the monitor this path to exec at the end.
    pub const STAGE1_PATH: &str = "RKT_STAGE1_PATH";
}

/// File names inside a pod dir (`$DIR/pods/<state>/<uuid>/`). All paths are relative to it.
pub mod paths {
    /// Pod manifest ([`crate::PodManifest`]), written by stage0 at prepare time.
    pub const POD_MANIFEST: &str = "pod";
    /// Creation marker; its mtime is the pod's creation time.
    pub const POD_CREATED: &str = "pod-created";
    /// Runtime parameters ([`crate::RuntimeConfig`]), written by stage0 before stage1 starts.
    pub const RUNTIME_CONFIG: &str = "runtime.json";
    /// stage1's PID (decimal, newline-terminated); its mtime is the pod's start time.
    pub const PID: &str = "pid";
    /// PID of the pod sandbox's PID 1 (the pause/reaper) as seen from the host.
    pub const SANDBOX_PID: &str = "sandbox-pid";
    /// Directory of per-app status files ([`crate::AppStatus`]), one per app, named by app.
    pub const STATUS_DIR: &str = "status";
    /// Per-app directories: `apps/<app>/{rootfs,upper,work,image,bundle}`.
    pub const APPS_DIR: &str = "apps";
    /// In an app dir: the overlay mount point of the app's root filesystem (stage0 mounts it).
    pub const APP_ROOTFS: &str = "rootfs";
    /// In an app dir: the overlay's upper dir, the app's writable layer.
    pub const APP_UPPER: &str = "upper";
    /// In an app dir: the overlay's work dir.
    pub const APP_WORK: &str = "work";
    /// In an app dir: the image record (which image the app runs, its layers), by stage0.
    pub const APP_IMAGE: &str = "image";
    /// In an app dir: the empty lower dir of an image without layers (overlayfs needs one).
    pub const APP_EMPTY_LOWER: &str = "empty";
    /// In an app dir: the OCI bundle stage1 writes for libcontainer.
    pub const APP_BUNDLE: &str = "bundle";
    /// In a bundle: the OCI runtime spec.
    pub const BUNDLE_CONFIG: &str = "config.json";
    /// In a bundle: files stage1 bind-mounts into the app (`/etc/hosts`, …).
    pub const BUNDLE_FILES: &str = "files";
    /// Empty-volume backing dirs: `volumes/<name>`.
    pub const VOLUMES_DIR: &str = "volumes";
    /// libcontainer state root of the pod's containers.
    pub const STATE_DIR: &str = "state";
    /// Cgroup paths stage1 created, one absolute path per line, so `rkt gc` can remove them
    /// when stage1 died without tearing down.
    pub const CGROUPS: &str = "cgroups";
    /// Written by stage1 once every app has been started (the "pod is ready" point).
    pub const READY: &str = "ready";
    /// What stage0 passes of systemd's service environment ([`crate::systemd::SystemdConfig`]),
    /// written before each exec of `run` when any of it applies; absent: none.
    pub const SYSTEMD: &str = "systemd.json";
    /// Network state ([`crate::NetInfo`]) saved by stage1 so `rkt list` can show the pod's
    /// addresses and gc can tear the network down without the process.
    pub const NET_INFO: &str = "net-info.json";
    /// The pod's claim on a range of host ids (`--private-users`, an [`crate::IdRange`] as
    /// JSON): written by stage0 under the data dir's id-range lock before anything is owned by
    /// those ids; a range stays taken for as long as a pod dir holds the claim (gc releases it).
    pub const PRIVATE_USERS: &str = "private-users";
    /// `apps/<app>/idmapped`: where stage0 attaches the app's idmapped layers while it mounts
    /// the overlay over them (empty once the overlay is mounted).
    pub const APP_IDMAPPED: &str = "idmapped";
    /// A mutable pod's control socket ([`crate::control`]), made by stage1 once the pod runs.
    pub const CONTROL: &str = "control";
    /// The flock stage0 holds while it changes a running mutable pod's apps (`rkt app add`,
    /// `rm`): the pod lock itself is stage1's for the pod's life.
    pub const APPS_LOCK: &str = "apps.lock";

    use std::path::PathBuf;

    /// `apps/<app>`
    pub fn app_dir(app: &str) -> PathBuf {
        PathBuf::from(APPS_DIR).join(app)
    }
    /// `apps/<app>/rootfs`: the overlay mount point of the app's root filesystem.
    pub fn app_rootfs(app: &str) -> PathBuf {
        app_dir(app).join(APP_ROOTFS)
    }
    /// `apps/<app>/upper`
    pub fn app_upper(app: &str) -> PathBuf {
        app_dir(app).join(APP_UPPER)
    }
    /// `apps/<app>/work`
    pub fn app_work(app: &str) -> PathBuf {
        app_dir(app).join(APP_WORK)
    }
    /// `apps/<app>/image`
    pub fn app_image(app: &str) -> PathBuf {
        app_dir(app).join(APP_IMAGE)
    }
    /// `apps/<app>/idmapped`
    pub fn app_idmapped(app: &str) -> PathBuf {
        app_dir(app).join(APP_IDMAPPED)
    }
    /// `apps/<app>/bundle`
    pub fn app_bundle(app: &str) -> PathBuf {
        app_dir(app).join(APP_BUNDLE)
    }
    /// `apps/<app>/stdin`: a CRI app's stdin fifo (`CriApp::stdin`).
    pub fn app_stdin(app: &str) -> PathBuf {
        app_dir(app).join("stdin")
    }
    /// `status/<app>`
    pub fn app_status(app: &str) -> PathBuf {
        PathBuf::from(STATUS_DIR).join(app)
    }
    /// `volumes/<name>`
    pub fn volume_dir(name: &str) -> PathBuf {
        PathBuf::from(VOLUMES_DIR).join(name)
    }
}

/// How stage1 names a pod's cgroups (only stage1 creates and removes them; `rkt gc` asks
/// `rkt-stage1 gc`). In each hierarchy the pod cgroup is `<own>/rkt-<uuid>` beside stage1's own
/// cgroup when that is not the root, else `/rkt/<uuid>`; an app's is `<pod>/<app>`. Every path
/// stage1 made is listed in [`paths::CGROUPS`].
pub mod cgroup {
    /// The parent of pod cgroups made at a hierarchy's root: `/rkt/<uuid>`.
    pub const ROOT_PARENT: &str = "rkt";
    /// The pod cgroup made beside a non-root cgroup of stage1: `rkt-<uuid>`.
    pub fn nested_name(uuid: &str) -> String {
        format!("rkt-{uuid}")
    }
}

/// The one check of "interactive takes exactly one app", made by stage0 before it prepares or
/// runs a pod and by stage1 before it starts one.
pub fn check_interactive(interactive: bool, apps: usize) -> Result<(), AbiError> {
    if interactive && apps != 1 {
        return Err(AbiError::Invalid(
            "interactive option only supports one image".into(),
        ));
    }
    Ok(())
}

/// Exit codes shared by `rkt` and `rkt-stage1`.
pub mod exit {
    /// Any rkt-side failure (bad input, missing image, stage1 fatal error).
    pub const RKT_FAILURE: i32 = 254;
    /// Usage error with no subcommand.
    pub const USAGE: i32 = 2;

    /// Exit code of a pod whose app was killed by signal `sig` (shell convention).
    pub fn from_signal(sig: i32) -> i32 {
        128 + sig
    }
}

/// How stage0 (or an observer such as `rkt gc` / `rkt enter`) invokes `rkt-stage1`.
/// The working directory is always the pod dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage1Command {
    /// Run the pod in the foreground (exec'd by `rkt run` / `rkt run-prepared`; same PID).
    Run,
    /// Tear down what a dead stage1 left behind (cgroups, network, mounts). Idempotent.
    Gc,
    /// Run a command inside a running app, confined like the app.
    Enter {
        /// The app to enter.
        app: String,
        /// Command and arguments.
        cmd: Vec<String>,
    },
}

impl Stage1Command {
    /// argv after the program name.
    pub fn to_args(&self) -> Vec<String> {
        match self {
            Stage1Command::Run => vec!["run".into()],
            Stage1Command::Gc => vec!["gc".into()],
            Stage1Command::Enter { app, cmd } => {
                let mut v = vec!["enter".into(), format!("--app={app}"), "--".into()];
                v.extend(cmd.iter().cloned());
                v
            }
        }
    }

    /// Parse argv after the program name.
    pub fn from_args(args: &[String]) -> Result<Self, AbiError> {
        match args.first().map(String::as_str) {
            Some("run") if args.len() == 1 => Ok(Stage1Command::Run),
            Some("gc") if args.len() == 1 => Ok(Stage1Command::Gc),
            Some("enter") => {
                let app = args
                    .get(1)
                    .and_then(|a| a.strip_prefix("--app="))
                    .ok_or_else(|| AbiError::BadArgs("enter needs --app=NAME".into()))?;
                if args.get(2).map(String::as_str) != Some("--") || args.len() < 4 {
                    return Err(AbiError::BadArgs("enter needs -- CMD [ARGS…]".into()));
                }
                Ok(Stage1Command::Enter {
                    app: app.to_string(),
                    cmd: args[3..].to_vec(),
                })
            }
            _ => Err(AbiError::BadArgs(format!(
                "unknown stage1 invocation {args:?} (expected run, gc or enter)"
            ))),
        }
    }
}

/// Errors reading or writing ABI files.
#[derive(Debug, thiserror::Error)]
pub enum AbiError {
    /// I/O on a pod-dir file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A pod-dir file is not valid JSON of the expected shape.
    #[error("{path}: invalid content: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The manifest was written for another version of this contract.
    #[error("pod manifest has ABI version {found}, this stage1 speaks {expected}")]
    Version {
        /// Version in the file.
        found: u32,
        /// Version this build speaks.
        expected: u32,
    },
    /// stage1 was invoked with arguments it does not understand.
    #[error("{0}")]
    BadArgs(String),
    /// A manifest is self-contradictory (duplicate app names, dangling mounts, …).
    #[error("{0}")]
    Invalid(String),
}

/// Write `data` to the pod-dir file `path` atomically. The rule for every pod-dir file, in
/// stage0, stage1 and the monitor: write a temp file `.<name>.tmp.<pid>` in the same directory,
/// then `rename(2)` it over `path`. A reader sees the old file or the new one, never half of
/// one. There is no fsync: the files describe processes that a host crash kills anyway, and gc
/// removes a pod whose files did not survive. The temp file is removed on failure.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), AbiError> {
    let tmp = temp_path(path);
    let result = fs::write(&tmp, data).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|source| AbiError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The temp file [`write_atomic`] writes before renaming it to `path`.
pub fn temp_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(".{name}.tmp.{}", std::process::id()))
}

/// Write `value` as pretty JSON with [`write_atomic`].
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), AbiError> {
    let mut data = serde_json::to_vec_pretty(value).map_err(|source| AbiError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    data.push(b'\n');
    write_atomic(path, &data)
}

/// Read a JSON file written with [`write_json_atomic`].
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, AbiError> {
    let data = fs::read(path).map_err(|source| AbiError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&data).map_err(|source| AbiError::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage1_command_round_trips() {
        for c in [
            Stage1Command::Run,
            Stage1Command::Gc,
            Stage1Command::Enter {
                app: "web".into(),
                cmd: vec!["/bin/sh".into(), "-c".into(), "id".into()],
            },
        ] {
            assert_eq!(Stage1Command::from_args(&c.to_args()).unwrap(), c);
        }
        assert!(Stage1Command::from_args(&["bogus".into()]).is_err());
        assert!(Stage1Command::from_args(&["enter".into(), "--app=a".into()]).is_err());
    }

    #[test]
    fn atomic_write_leaves_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.json");
        write_json_atomic(&p, &vec![1, 2, 3]).unwrap();
        let back: Vec<i32> = read_json(&p).unwrap();
        assert_eq!(back, vec![1, 2, 3]);
        let names: Vec<_> = fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn signal_exit_code() {
        assert_eq!(exit::from_signal(9), 137);
    }
}
