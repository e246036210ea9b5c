//! One app of the pod: its OCI spec, user, volumes and terminal, and the helper that creates
//! its container.

pub mod channel;
pub mod console;
pub mod crilog;
pub mod helper;
pub mod spec;
pub mod start;
pub mod user;
pub mod volumes;

/// One app could not be created or started.
#[derive(Debug, thiserror::Error)]
#[error("app {app:?}: {failure}")]
pub struct AppError {
    /// The app.
    pub app: String,
    /// What went wrong.
    pub failure: AppFailure,
}

/// What went wrong with one app.
#[derive(Debug, thiserror::Error)]
pub enum AppFailure {
    /// stage0 mounted no rootfs for it.
    #[error("root filesystem {} missing", .0.display())]
    RootfsMissing(std::path::PathBuf),
    /// Its user, volumes, /etc files, spec or limits are wrong (the cause names which).
    #[error(transparent)]
    Setup(Box<crate::Error>),
    /// Its spec could not be serialized.
    #[error("{0}")]
    Spec(serde_json::Error),
    /// Its seccomp filter could not be built.
    #[error("building the seccomp filter: {0}")]
    SeccompBuild(String),
    /// Its seccomp program could not be handed to its init.
    #[error("{0}")]
    SeccompDeliver(String),
    /// Its container could not be created (the helper's or libcontainer's cause).
    #[error("{0}")]
    Create(String),
    /// `oom_score_adj` could not be set.
    #[error("setting oom_score_adj to {adj}: {source}")]
    OomScoreAdj {
        /// The value.
        adj: i32,
        /// The cause.
        source: std::io::Error,
    },
    /// The created container could not be started.
    #[error("{0}")]
    Start(String),
    /// A request to a mutable pod that cannot be carried out (no such app, already running).
    #[error("{0}")]
    Refused(String),
}

impl From<crate::Error> for AppFailure {
    fn from(e: crate::Error) -> Self {
        AppFailure::Setup(Box::new(e))
    }
}

/// `app` failed with `failure`.
pub fn app_err(app: &str, failure: impl Into<AppFailure>) -> crate::Error {
    AppError {
        app: app.to_string(),
        failure: failure.into(),
    }
    .into()
}
