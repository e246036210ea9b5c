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

/// The JSON claim of a simple-signing or cosign signature (what a lookaside store or a
/// registry serves), and its check against a fixed subject under every identity rule.
pub fn signature_claim(bytes: &[u8]) -> bool {
    use crate::trust::policy::SignedIdentity;
    use crate::trust::{Subject, Transport};
    let Ok(claim) = crate::trust::payload::parse(bytes) else {
        return false;
    };
    let subject = Subject {
        transport: Transport::Docker,
        name: "docker.io/library/busybox:latest".into(),
        manifest_digest: Some(format!("sha256:{}", "ab".repeat(32))),
    };
    for rule in [
        SignedIdentity::MatchExact,
        SignedIdentity::MatchRepoDigestOrExact,
        SignedIdentity::MatchRepository,
        SignedIdentity::RemapIdentity {
            prefix: "docker.io".into(),
            signed_prefix: "quay.io".into(),
        },
    ] {
        let _ = crate::trust::payload::check(&claim, &subject, &rule);
    }
    true
}

/// An appc discovery page (HTML from any server a name points at): its meta tags, and the
/// template a name and labels pick from them.
pub fn discovery_page(page: &[u8]) -> bool {
    crate::source::discovery::fuzz_page(page)
}

/// A cosign public key file (PEM) as `policy.json`'s `keyPath` names it.
pub fn cosign_key(bytes: &[u8]) -> bool {
    crate::trust::cosign::CosignKey::from_pem(bytes).is_ok()
}

/// A `policy.json`.
pub fn policy(bytes: &[u8]) -> bool {
    crate::trust::policy::Policy::parse(bytes, Path::new("policy.json")).is_ok()
}

/// OpenPGP bytes: parsed as keys, and checked as a simple-signing message and as a detached
/// signature of fixed data against a fixed key (`trust/testdata/ed25519.pub.asc`).
pub fn openpgp(bytes: &[u8]) -> bool {
    use crate::trust::pgp;
    let parsed = pgp::parse_keys(bytes).is_ok();
    let key = pgp::parse_keys(include_bytes!("trust/testdata/ed25519.pub.asc"))
        .expect("the fixture key parses");
    let _ = pgp::verify_message(bytes, &key);
    let _ = pgp::verify_detached(&mut &b"data"[..], bytes, &key);
    parsed
}
