//! rkt stage1: the pod supervisor. Creates the pod sandbox and its apps with libcontainer,
//! reaps them and exits with the pod's exit code. Single-threaded by design.
//!
//! Modules by concern: [`sandbox`] (pause/reaper PID 1 holding the pod namespaces),
//! [`cgroups`] (pod and app cgroups), [`spec`] (OCI spec of an app), [`isolation`]
//! (capabilities, seccomp, paths), [`seccomp`] (an app's filter, built ahead and loaded right
//! before exec), [`seccomp_cache`] (built programs kept across pods), [`user`] (user/group
//! resolution), [`inroot`] (file operations inside an app's rootfs), [`volumes`] (volumes and
//! /etc files), [`apps`] (start one app), [`helper`] (the child that runs libcontainer),
//! [`console`] (an interactive app's terminal), [`network`] (CNI networks, iptables chains,
//! netns), [`supervisor`] (the run loop, gc), [`enter`].
#![deny(unsafe_code)]

pub mod apps;
pub mod cgroups;
pub mod console;
pub mod cpus;
pub mod enter;
pub mod helper;
pub mod inroot;
pub mod isolation;
pub mod network;
pub mod sandbox;
pub mod seccomp;
pub mod seccomp_cache;
pub mod spec;
pub mod supervisor;
mod sys;
pub mod user;
pub mod volumes;

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
    /// The pod or runtime configuration asks for something impossible.
    #[error("{0}")]
    Invalid(String),
    /// cgroup set-up or removal failed.
    #[error("{0}")]
    Cgroup(String),
    /// A system call failed.
    #[error("{0}: {1}")]
    Sys(String, nix::errno::Errno),
    /// The pod sandbox could not be created.
    #[error("pod sandbox: {0}")]
    Sandbox(String),
    /// One app could not be created or started.
    #[error("app {app:?}: {msg}")]
    App {
        /// The app.
        app: String,
        /// What went wrong.
        msg: String,
    },
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
        Stage1Command::Run => supervisor::run(),
        Stage1Command::Gc => supervisor::gc().map(|()| 0),
        Stage1Command::Enter { app, cmd } => enter::enter(app, cmd),
    }
}
