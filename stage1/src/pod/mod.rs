//! The pod as a whole: its PID 1 and namespaces, and the run loop that supervises its apps.

pub mod sandbox;
pub mod supervisor;

/// What can go wrong with the pod as a whole.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// The lock fd variable names no fd.
    #[error("{var}={0:?} is not a file descriptor", var = stage1_abi::env::LOCK_FD)]
    LockFdValue(String),
    /// The inherited lock fd is closed.
    #[error("pod lock fd {0} is not open")]
    LockFdClosed(i32),
    /// A step that needs the sandbox before it exists (a bug).
    #[error("pod not set up")]
    NotSetUp,
    /// The monitor cannot be exec'd with a NUL in its arguments.
    #[error("monitor arguments contain NUL")]
    MonitorArgsNul,
    /// ... or in its path.
    #[error("monitor path contains NUL")]
    MonitorPathNul,
    /// `rkt-stage1 teardown` with arguments the monitor does not write.
    #[error("teardown: {0}")]
    TeardownArgs(String),
}
