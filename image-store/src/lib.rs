//! rkt image store: image references, fetchers (registry, OCI layout/archive, docker-archive,
//! ACI), verification, the content-addressed store of blobs and extracted layers, the sqlite
//! index and image GC.
//!
//! On disk, under the data dir (`rkt --dir`):
//! `cas/index.db` (sqlite, WAL), `cas/blobs/sha256/<hex>` (verified blobs as received),
//! `cas/layers/<diffid-hex>/` (extracted layers in overlay format), `cas/tmp/` (work in
//! progress), `locks/store` (shared by users of the store, exclusive for image GC).
#![deny(unsafe_code)]

pub mod config;
pub mod reference;
pub mod registry;

mod digest;
mod error;
mod export;
mod extract;
mod fetch;
mod gc;
mod index;
mod layer;
mod manifest;
mod progress;
mod render;
mod source;
mod store;
mod tree;

pub use error::{Error, Result};
pub use export::VerifyReport;
pub use fetch::{FetchOptions, PullPolicy};
pub use gc::GcReport;
pub use manifest::ImageConfig;
pub use render::RenderOptions;
pub use store::{ImageId, ImageInfo, Store};

#[cfg(test)]
mod tests;
