//! Archives: `oci-archive:FILE[:TAG]` (a tar of an OCI layout) and `docker-archive:FILE`
//! (`docker save` / skopeo). Both are unpacked safely into `cas/tmp` first.

use super::{Blobs, Prepared};
use crate::digest::{sha256_of, HashingReader};
use crate::error::{io_err, Error, Result};
use crate::extract::{extract, ExtractOptions};
use crate::layer::{sniff, Compression, TmpGuard};
use crate::manifest::{Descriptor, Manifest, OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST};
use crate::store::Paths;
use serde::Deserialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

fn unpack(paths: &Paths, file: &Path) -> Result<(PathBuf, TmpGuard)> {
    let f = File::open(file).map_err(io_err("opening archive", file))?;
    let dir = paths.tmp_name("archive");
    let guard = TmpGuard(vec![dir.clone()]);
    std::fs::create_dir(&dir).map_err(io_err("creating", &dir))?;
    let mut buf = std::io::BufReader::new(f);
    crate::layer::decompress_with(&mut buf, |tar| {
        extract(tar, &dir, &ExtractOptions::default())
    })
    .map_err(|e| Error::Invalid {
        what: format!("archive {}", file.display()),
        reason: e.to_string(),
    })?;
    Ok((dir, guard))
}

/// `oci-archive:`.
pub(crate) fn prepare_oci(
    paths: &Paths,
    file: &Path,
    tag: Option<&str>,
    name: String,
) -> Result<Prepared> {
    let (dir, guard) = unpack(paths, file)?;
    let mut p = super::oci::prepare(&dir, tag, name)?;
    p._tmp = Some(guard);
    Ok(p)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn inside(dir: &Path, rel: &str) -> Result<PathBuf> {
    let comps = crate::tree::components(Path::new(rel))?;
    let p: PathBuf = comps.into_iter().collect();
    Ok(dir.join(p))
}

fn hash_file(p: &Path) -> Result<(String, u64, Compression)> {
    let mut f = File::open(p).map_err(io_err("opening", p))?;
    let mut head = [0u8; 4];
    let n = f.read(&mut head).map_err(io_err("reading", p))?;
    let comp = sniff(&head[..n]);
    let f = File::open(p).map_err(io_err("opening", p))?;
    let mut h = HashingReader::new(f);
    h.drain().map_err(io_err("reading", p))?;
    let (d, size, _) = h.finish();
    Ok((d, size, comp))
}

/// `docker-archive:`: the archive's manifest.json is turned into an OCI manifest (uncompressed
/// layers keep their digests), so a re-import gives the same image id.
pub(crate) fn prepare_docker(paths: &Paths, file: &Path) -> Result<Prepared> {
    let (dir, guard) = unpack(paths, file)?;
    let mpath = dir.join("manifest.json");
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(&std::fs::read(&mpath).map_err(io_err("reading", &mpath))?)
            .map_err(|e| Error::Invalid {
                what: format!("docker archive manifest.json in {}", file.display()),
                reason: e.to_string(),
            })?;
    let entry = match entries.as_slice() {
        [e] => e,
        _ => {
            return Err(Error::Unsupported(format!(
                "docker archive {} with {} images",
                file.display(),
                entries.len()
            )))
        }
    };
    let config_path = inside(&dir, &entry.config)?;
    let len = std::fs::metadata(&config_path)
        .map_err(io_err("reading", &config_path))?
        .len();
    crate::manifest::check_config_size(len)?;
    let config_bytes = std::fs::read(&config_path).map_err(io_err("reading", &config_path))?;
    let config_digest = sha256_of(&config_bytes);
    let mut files = HashMap::new();
    let mut layers = Vec::new();
    for l in &entry.layers {
        let p = inside(&dir, l)?;
        let (digest, size, comp) = hash_file(&p)?;
        let media_type = match comp {
            Compression::None => OCI_LAYER_TAR.to_string(),
            Compression::Gzip => format!("{OCI_LAYER_TAR}+gzip"),
            Compression::Zstd => format!("{OCI_LAYER_TAR}+zstd"),
        };
        files.insert(digest.clone(), p);
        layers.push(Descriptor {
            media_type,
            digest,
            size,
            annotations: None,
            platform: None,
        });
    }
    let m = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        config: Descriptor {
            media_type: OCI_CONFIG.to_string(),
            digest: config_digest,
            size: config_bytes.len() as u64,
            annotations: None,
            platform: None,
        },
        layers,
        annotations: None,
    };
    let manifest_bytes = serde_json::to_vec(&m).map_err(|e| Error::Internal(e.to_string()))?;
    let digest = sha256_of(&manifest_bytes);
    let name = entry
        .repo_tags
        .as_ref()
        .and_then(|t| t.first().cloned())
        .unwrap_or_else(|| format!("docker-archive:{}", file.display()));
    let mut p = super::oci::from_manifest(
        name,
        "docker",
        digest,
        manifest_bytes,
        |_| Ok(config_bytes.clone()),
        Blobs::Files(files),
    )?;
    p._tmp = Some(guard);
    Ok(p)
}
