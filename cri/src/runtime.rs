//! The runtime service: `Version` today; the pod and container RPCs answer `UNIMPLEMENTED`
//! until mutable pods land (the generated defaults).

use tonic::{Request, Response, Status};

use crate::proto::runtime_service_server::RuntimeService;
use crate::proto::{VersionRequest, VersionResponse};

/// The CRI API version this server speaks.
pub const RUNTIME_API_VERSION: &str = "v1";

/// The runtime service.
#[derive(Debug, Default, Clone, Copy)]
pub struct Runtime;

#[tonic::async_trait]
impl RuntimeService for Runtime {
    async fn version(
        &self,
        _req: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "rkt".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: RUNTIME_API_VERSION.into(),
        }))
    }
}
