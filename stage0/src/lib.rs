//! rkt stage0: the pod runtime library every front end drives — `rkt` today, the CRI server
//! next. [`Runtime`] is its front door: one typed call per pod operation (prepare, run,
//! run-prepared, list, status, stop, rm, gc, enter, export, the manifest), typed errors, no
//! printing, no argv. No namespaces, no cgroups here — those belong to stage1.
//!
//! Behind the front door, in the order `rkt run` uses them:
//! * [`request`]: what a new pod is made of ([`request::PodRequest`], [`request::AppRequest`]);
//! * [`flags`] parses the values of the pod and app flags (volumes, mounts, quantities,
//!   seccomp, durations);
//! * [`images`] is the narrow view stage0 has of the image store ([`store`] implements it for
//!   `image_store::Store`; unit tests use a fake);
//! * [`manifest`] turns images + requests into the pod manifest (a `stage1-abi` type);
//! * [`pods`] is the pod directory state machine (phases, locks, UUID lookup);
//! * [`prepare`] creates a pod (embryo → prepare → prepared|run) with its overlay mounts;
//! * [`run`] writes the runtime parameters and execs stage1;
//! * [`status`] and [`gc`] observe, stop, remove and garbage-collect pods;
//! * [`enter`] and [`export`] run a command in a running app and export an exited one.
//!
//! Syscalls go through nix's safe wrappers (flock, mount, execve) or `sys`'s, the only module
//! with `unsafe`. The on-disk state machine is described in `docs/pod-lifecycle.md`.
#![deny(unsafe_code)]

pub mod apps;
pub mod config;
pub mod enter;
pub mod exec_limits;
pub mod export;
pub mod flags;
pub mod gc;
pub mod host;
pub mod images;
pub mod manifest;
pub mod mount;
pub mod pods;
pub mod prepare;
pub mod request;
pub mod run;
pub mod runtime;
pub mod status;
pub mod store;
mod sys;
pub mod systemd;
pub mod trust;
pub mod userns;

pub use runtime::{
    Dirs, Insecure, Ipc, PidsLimit, PodList, PodSource, PrepareRequest, RunRequest, Runtime, Wait,
};
/// The exit codes rkt shares with stage1.
pub use stage1_abi::exit;

use std::path::PathBuf;

/// Everything that can go wrong in stage0. Messages are one line, lower-case, and name the
/// thing that is wrong (rkt's wording where rkt had one).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command-line input (grammar, flag values, conflicting options).
    #[error("{0}")]
    Usage(String),
    /// The pod manifest would be invalid (duplicate names, dangling mounts, …).
    #[error(transparent)]
    Abi(#[from] stage1_abi::AbiError),
    /// The image store failed (resolve, fetch, read config or layers).
    #[error("{0}")]
    Image(String),
    /// A configuration file is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A file-system operation on a named path failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done (`creating pod dir`, …).
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A UUID argument matched no pod.
    #[error("no matches found for {0:?}")]
    NoMatch(String),
    /// A UUID argument matched several pods.
    #[error("ambiguous uuid, {0} matches")]
    Ambiguous(usize),
    /// An empty UUID argument.
    #[error("UUID cannot be empty")]
    EmptyUuid,
    /// The pod is not in the state a command needs.
    #[error("pod {uuid:?} is {what}")]
    PodState {
        /// The pod.
        uuid: String,
        /// E.g. `not prepared`, `currently running`.
        what: String,
    },
    /// A pod has no app of that name.
    #[error("pod {uuid}: no app named {app:?}")]
    NoApp {
        /// The pod.
        uuid: String,
        /// The name asked for.
        app: String,
    },
    /// stage1 refused or failed a request about one app of a mutable pod.
    #[error("app {app:?}: {reason}")]
    App {
        /// The app.
        app: String,
        /// stage1's one-line reason.
        reason: String,
    },
    /// The stage1 binary could not be found or executed.
    #[error("stage1 {path}: {reason}")]
    Stage1 {
        /// Path of the stage1 binary.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }
    /// A [`Error::Usage`] with `msg`.
    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
