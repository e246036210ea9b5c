//! rkt's CRI server: Kubernetes' Container Runtime Interface (`runtime.v1`, cri-api v0.36) over
//! a unix socket, as the kubelet and `crictl` speak it.
//!
//! The image service ([`images::Images`]) runs on rkt's image store — the same store,
//! registries, mirrors, credentials and verification rules as `rkt fetch`; the runtime service
//! ([`runtime::Runtime`]) on mutable pods through `stage0::Runtime` (a pod sandbox is a pod of
//! `rkt app sandbox`, a container one of its apps), with the streaming side in
//! [`stream`] over the `rkt-cri-streaming` crate. The server keeps no state of its own:
//! everything is in the data dir (rkt's pod dirs and [`state`]'s records). See docs/cri.md.
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
