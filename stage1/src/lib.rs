//! rkt stage1: the pod supervisor. Creates the pod sandbox and its apps with libcontainer,
//! reaps them and exits with the pod's exit code. Single-threaded by design.
#![deny(unsafe_code)]

// One app: spec, user, volumes, console, the helper that creates its container, its start.
pub mod app;
// Pod and app cgroups, their removal, the helpers' CPUs.
pub mod cgroups;
// `rkt enter`: a command in a running app, confined like it.
pub mod enter;
// Every reach past libcontainer's front door, and what to re-check on its upgrade.
pub mod libcontainer_bypass;
// The one reader of `/proc/<pid>/mountinfo`.
pub mod mountinfo;
// CNI networks, iptables chains, the pod's netns.
pub mod network;
// The pod sandbox (PID 1 holding the namespaces) and the supervisor's run loop.
pub mod pod;
// Capabilities, seccomp (built ahead, cached), file operations inside an app's rootfs.
pub mod security;
// systemd's service protocol: READY=1, the notify socket for the app, socket activation.
pub mod systemd;
// The raw system calls `nix` does not cover (the crate's only unsafe code).
mod sys;

use std::path::{Path, PathBuf};

use stage1_abi::Stage1Command;

/// Everything that can go wrong in stage1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A pod-dir file of the ABI is missing or malformed.
    #[error(transparent)]
    Abi(#[from] stage1_abi::AbiError),
    /// I/O on a path failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The pod as a whole (lock, monitor hand-off, teardown).
    #[error(transparent)]
    Pod(#[from] pod::PodError),
    /// An interactive app's terminal did not arrive.
    #[error("console socket: {0}")]
    Console(&'static str),
    /// cgroup set-up or removal failed.
    #[error(transparent)]
    Cgroup(#[from] cgroups::CgroupError),
    /// A file in an image's root filesystem could not be read or made.
    #[error(transparent)]
    InRoot(#[from] security::inroot::InRootError),
    /// An app's user or group is wrong.
    #[error(transparent)]
    User(#[from] app::user::UserError),
    /// An app's capability or seccomp isolators are wrong.
    #[error(transparent)]
    Isolation(#[from] security::isolation::IsolationError),
    /// A system call failed.
    #[error("{0}: {1}")]
    Sys(String, nix::errno::Errno),
    /// The pod sandbox could not be created.
    #[error(transparent)]
    Sandbox(#[from] pod::sandbox::SandboxError),
    /// One app could not be created or started.
    #[error(transparent)]
    App(#[from] app::AppError),
    /// An app's spec is wrong.
    #[error(transparent)]
    Spec(#[from] app::spec::SpecError),
    /// An app's volumes are wrong.
    #[error(transparent)]
    Volume(#[from] app::volumes::VolumeError),
    /// A network could not be set up or removed.
    #[error(transparent)]
    Network(#[from] network::NetError),
    /// `rkt enter` failed.
    #[error(transparent)]
    Enter(#[from] enter::EnterError),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Where this binary is installed, to find `rkt-monitor` beside it: `RKT_STAGE1_PATH`, since
/// stage0 runs stage1 from a detached read-only mount where `/proc/self/exe` names no host path
/// (docs/stage1-abi.md); else `/proc/self/exe` (stage1 started by hand or by its tests).
pub fn installed_path() -> Option<std::path::PathBuf> {
    match std::env::var_os(stage1_abi::env::STAGE1_PATH) {
        Some(p) => Some(p.into()),
        None => std::env::current_exe().ok(),
    }
}

/// Run one stage1 invocation; returns the process exit code (the pod's for `run`, the
/// command's for `enter`, 0 for `gc`).
pub fn dispatch(cmd: &Stage1Command) -> Result<i32, Error> {
    match cmd {
        Stage1Command::Run => pod::supervisor::run(),
        Stage1Command::Gc => pod::supervisor::gc().map(|()| 0),
        Stage1Command::Enter { app, cmd } => enter::enter(app, cmd),
    }
}
