//! rkt's CRI server: Kubernetes' Container Runtime Interface (`runtime.v1`, cri-api v0.36) over
//! a unix socket, as the kubelet and `crictl` speak it.
//!
//! Served today: the whole image service ([`images::Images`]: pull, list, status, remove,
//! filesystem usage) on rkt's image store — the same store, registries, mirrors, credentials
//! and verification rules as `rkt fetch` — and the runtime service's `Version`. Every other RPC
//! answers `UNIMPLEMENTED` (the pod and container RPCs come with mutable pods; see
//! docs/cri.md). The server keeps no state of its own: everything is in the data dir.
#![deny(unsafe_code)]

pub mod images;
pub mod runtime;
pub mod sandbox;
pub mod server;
pub mod state;
pub mod stats;
pub mod stream;

/// The CRI v1 types and services, generated from `proto/api.proto` by `build.rs`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("runtime.v1");
}

/// Errors of the server's set-up (requests fail with gRPC statuses instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image store could not be opened.
    #[error("opening the image store in {dir}: {source}")]
    Store {
        /// The data dir.
        dir: std::path::PathBuf,
        /// The cause (boxed: the store's error is large).
        source: Box<image_store::Error>,
    },
    /// The socket or the data dir's server lock.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Another server holds the data dir.
    #[error("another CRI server uses the data dir {0}")]
    Busy(std::path::PathBuf),
}
