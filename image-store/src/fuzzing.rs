//! Entry points for the fuzz targets (`fuzz/`, crate `rkt-fuzz`): the parsers of untrusted
//! bytes that are private to this crate, reachable without a store or a network. Not an API:
//! hidden from the docs, and each function only reports whether the input was accepted.

use std::path::Path;

use crate::extract::{extract, ExtractOptions};
use crate::manifest::{parse_aci_manifest, parse_config, parse_manifest, pick_platform};

/// A registry/OCI-layout manifest or index as fetched; for an index, also the platform choice.
pub fn manifest(bytes: &[u8]) -> bool {
    match parse_manifest(bytes) {
        Ok(Ok(_)) => true,
        Ok(Err(index)) => pick_platform(&index).is_ok(),
        Err(_) => false,
    }
}

/// An OCI image config blob.
pub fn config(bytes: &[u8]) -> bool {
    parse_config(bytes).is_ok()
}

/// An appc image manifest (the `manifest` file of an ACI).
pub fn aci_manifest(bytes: &[u8]) -> bool {
    parse_aci_manifest(bytes).is_ok()
}

/// Extract a layer tarball into `root` (an empty directory) as the store does; `aci` extracts
/// it as an ACI (`rootfs/` stripped, `manifest` captured).
pub fn layer(tar: &[u8], root: &Path, aci: bool) -> bool {
    let opts = if aci {
        ExtractOptions {
            strip_prefix: Some("rootfs".into()),
            capture: Some("manifest".into()),
        }
    } else {
        ExtractOptions {
            strip_prefix: None,
            capture: None,
        }
    };
    extract(tar, root, &opts).is_ok()
}
