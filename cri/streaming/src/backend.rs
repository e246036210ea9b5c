//! What the embedding CRI server implements: running exec/attach/port-forward for real.

use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// The client's stdin, or a forwarded connection's inbound bytes.
pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// The client's stdout or stderr: dropping (or shutting down) the writer closes that stream.
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// A byte stream both ways (a connection to a port in the pod).
pub trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Duplex for T {}
/// A boxed [`Duplex`].
pub type BoxDuplex = Box<dyn Duplex>;

/// A terminal size the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub width: u16,
    pub height: u16,
}

/// An exec the CRI `Exec` call registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    pub container_id: String,
    pub cmd: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// An attach the CRI `Attach` call registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachRequest {
    pub container_id: String,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// The client's streams for one exec or attach. A stream is `Some` exactly when the request
/// asked for it (`stderr` is `None` with a tty: the terminal carries both); `resize` is `Some`
/// for a tty when the protocol can carry resizes (SPDY v3+, WebSocket v4+).
pub struct Io {
    pub stdin: Option<BoxRead>,
    pub stdout: Option<BoxWrite>,
    pub stderr: Option<BoxWrite>,
    pub resize: Option<mpsc::Receiver<Size>>,
}

/// The runtime side of the streaming server; object-safe, shared by every connection.
///
/// Each future must finish once the work is over and must have dropped (or shut down) the
/// writers in [`Io`] by then: the client sees the end of stdout/stderr when they are dropped,
/// and the exit status only after that.
pub trait Backend: Send + Sync + 'static {
    /// Runs `req.cmd` in the container; `Ok(code)` is the exit code, `Err` a failure to run it.
    fn exec(&self, req: ExecRequest, io: Io) -> BoxFuture<'static, Result<i32, String>>;
    /// Connects `io` to the container's console until it ends or the client leaves.
    fn attach(&self, req: AttachRequest, io: Io) -> BoxFuture<'static, Result<(), String>>;
    /// Opens a connection to `port` inside the pod's network namespace.
    fn port_forward(
        &self,
        pod_id: String,
        port: u16,
    ) -> BoxFuture<'static, Result<BoxDuplex, String>>;
}
