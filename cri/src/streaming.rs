//! The streaming side of Exec, Attach and PortForward: the RPCs hand out a URL on a streaming
//! server the client then connects to. [`Urls`] is what the runtime service needs of it.

use tonic::Status;

use crate::proto::{AttachRequest, ExecRequest};

/// Hands out one-shot URLs for streaming requests.
pub trait Urls: Send + Sync {
    /// A URL that runs `req.cmd` in app `app` of pod `uuid` when connected to.
    fn exec(&self, uuid: &str, app: &str, req: ExecRequest) -> Result<String, Status>;
    /// A URL that attaches to app `app` of pod `uuid`.
    fn attach(&self, uuid: &str, app: &str, req: AttachRequest) -> Result<String, Status>;
    /// A URL that forwards ports into pod `uuid`'s network namespace (the host's with
    /// `host_network`).
    fn port_forward(&self, uuid: &str, host_network: bool) -> Result<String, Status>;
}
