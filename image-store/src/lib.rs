//! rkt image store: image references, fetchers (registry, OCI layout/archive, docker-archive,
//! ACI), verification, the content-addressed store of blobs and extracted layers, the sqlite
//! index and image GC.
//!
//! On disk, under the data dir (`rkt --dir`):
//! `cas/index.db` (sqlite, WAL), `cas/blobs/sha256/<hex>` (verified blobs as received),
//! `cas/layers/<diffid-hex>/` (extracted layers in overlay format), `cas/tmp/` (work in
//! progress), `locks/store` (shared by users of the store, exclusive for image GC).
//!
//! Concurrency: a [`Store`] holds `locks/store` shared for its whole life (one `Store` per
//! process); [`Store::gc`] converts it to exclusive, so GC never runs while another process
//! fetches or prepares a pod. Index writes take `cas/index.lock` exclusively; sqlite runs in
//! WAL mode with a busy timeout. Layers and blobs are written under `cas/tmp` and renamed into
//! place; the image row is written last, so a killed fetch leaves only `cas/tmp` debris (removed
//! by the next GC). Pods [`Store::pin`] their images; GC keeps pinned images and their layers,
//! and `image rm` of a pinned image only hides it until it is unpinned.
//!
//! Security: every layer is hashed as received and after decompression (digest, size and
//! diff id must match), then extracted with `openat(O_NOFOLLOW)` walks (`tree`), so no entry
//! can write outside the layer, through a symlink, or hardlink a file outside it.
#![deny(unsafe_code)]

pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod oci_archive;
pub mod reference;
pub mod registry;

mod digest;
mod error;
mod export;
mod extract;
mod fetch;
mod file;
mod gc;
mod index;
mod layer;
mod manifest;
pub mod progress;
mod render;
mod source;
mod store;
mod tree;
pub mod trust;

pub use error::{Error, Result};
pub use export::VerifyReport;
pub use fetch::{FetchOptions, PullPolicy};
pub use gc::GcReport;
pub use manifest::ImageConfig;
pub use render::RenderOptions;
pub use store::{ImageId, ImageInfo, Store};

#[cfg(test)]
mod tests;
