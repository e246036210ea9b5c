//! OCI image layout directories (`oci:PATH[:TAG]`).

use super::{Blobs, Prepared};
use crate::digest::{sha256_hex, sha256_of};
use crate::error::{io_err, Error, Result};
use crate::manifest::{self, Descriptor, OCI_MANIFEST};
use std::path::Path;

const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn invalid(what: &str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        what: what.to_string(),
        reason: reason.into(),
    }
}

/// Read a blob of the layout, checking its digest and size against `desc`.
pub(crate) fn read_verified(blobs: &Path, desc: &Descriptor) -> Result<Vec<u8>> {
    let p = blobs.join(sha256_hex(&desc.digest)?);
    // the size first: a descriptor must not make us read a file of any size into memory
    let len = std::fs::metadata(&p)
        .map_err(io_err("reading blob", &p))?
        .len();
    if len != desc.size {
        return Err(Error::BlobMismatch {
            digest: desc.digest.clone(),
            reason: format!("size {len} does not match the descriptor's {}", desc.size),
        });
    }
    let bytes = std::fs::read(&p).map_err(io_err("reading blob", &p))?;
    if bytes.len() as u64 != desc.size {
        return Err(Error::BlobMismatch {
            digest: desc.digest.clone(),
            reason: format!(
                "size {} does not match the descriptor's {}",
                bytes.len(),
                desc.size
            ),
        });
    }
    let got = sha256_of(&bytes);
    if got != desc.digest {
        return Err(Error::BlobMismatch {
            digest: desc.digest.clone(),
            reason: format!("digest mismatch: got {got}"),
        });
    }
    Ok(bytes)
}

/// Prepare the image tagged `tag` (or the only one) of the layout at `dir`.
pub(crate) fn prepare(dir: &Path, tag: Option<&str>, name: String) -> Result<Prepared> {
    let index_path = dir.join("index.json");
    let index_bytes =
        std::fs::read(&index_path).map_err(io_err("reading OCI layout index", &index_path))?;
    let index: manifest::Index = serde_json::from_slice(&index_bytes).map_err(|e| {
        invalid(
            &format!("OCI layout index {}", index_path.display()),
            e.to_string(),
        )
    })?;
    let blobs = dir.join("blobs/sha256");
    let tagged = |d: &&Descriptor| {
        d.annotations
            .as_ref()
            .and_then(|a| a.get(REF_NAME))
            .is_some_and(|r| Some(r.as_str()) == tag)
    };
    let desc = match tag {
        Some(t) => index
            .manifests
            .iter()
            .find(tagged)
            .cloned()
            .ok_or_else(|| {
                invalid(
                    &format!("OCI layout {}", dir.display()),
                    format!("no image tagged {t:?}"),
                )
            })?,
        None if index.manifests.len() == 1 => index.manifests[0].clone(),
        None => {
            return Err(invalid(
                &format!("OCI layout {}", dir.display()),
                format!(
                    "it holds {} images; name one with :TAG",
                    index.manifests.len()
                ),
            ))
        }
    };
    let mut desc = desc;
    let mut bytes = read_verified(&blobs, &desc)?;
    // Follow (at most a few levels of) nested indexes to the host platform's manifest.
    for _ in 0..4 {
        match manifest::parse_manifest(&bytes)? {
            Ok(_) => break,
            Err(idx) => {
                desc = manifest::pick_platform(&idx)?;
                bytes = read_verified(&blobs, &desc)?;
            }
        }
    }
    from_manifest(
        name,
        "oci",
        desc.digest,
        bytes,
        |d| read_verified(&blobs, d),
        Blobs::Dir(blobs.clone()),
    )
}

/// Build a [`Prepared`] from verified manifest bytes.
pub(crate) fn from_manifest(
    name: String,
    source_kind: &'static str,
    manifest_digest: String,
    manifest_bytes: Vec<u8>,
    read_config: impl FnOnce(&Descriptor) -> Result<Vec<u8>>,
    blobs: Blobs,
) -> Result<Prepared> {
    let m = match manifest::parse_manifest(&manifest_bytes)? {
        Ok(m) => m,
        Err(_) => {
            return Err(invalid(
                "manifest",
                "an image index where an image manifest was expected",
            ))
        }
    };
    manifest::check_config_size(m.config.size)?;
    let config_bytes = read_config(&m.config)?;
    let (_, diff_ids) = manifest::parse_config(&config_bytes)?;
    if diff_ids.len() != m.layers.len() {
        return Err(invalid(
            "image config",
            format!("{} diff ids for {} layers", diff_ids.len(), m.layers.len()),
        ));
    }
    for l in &m.layers {
        sha256_hex(&l.digest)?;
        if l.media_type.contains("nondistributable") || l.media_type.contains("foreign") {
            tracing::debug!(digest = %l.digest, "non-distributable layer");
        }
    }
    for d in &diff_ids {
        sha256_hex(d)?;
    }
    Ok(Prepared {
        name,
        source_kind,
        manifest_digest,
        manifest_media_type: m
            .media_type
            .clone()
            .unwrap_or_else(|| OCI_MANIFEST.to_string()),
        manifest_bytes,
        config_digest: m.config.digest.clone(),
        config_bytes,
        layers: m.layers,
        diff_ids,
        blobs,
        _tmp: None,
    })
}
