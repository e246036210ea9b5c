//! rkt image store: image references, fetchers (registry, OCI layout/archive, docker-archive,
//! ACI), verification, the content-addressed store of blobs and extracted layers, the sqlite
//! index and image GC.
#![deny(unsafe_code)]

pub mod config;
pub mod reference;
pub mod registry;
