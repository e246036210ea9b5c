//! `image export` (an OCI archive of the stored blobs, byte for byte, so a re-import gives the
//! same id; appc images are written back as the stored ACI) and `image verify`.

use crate::digest::HashingReader;
use crate::error::{io_err, Error, Result};
use crate::extract::{extract, ExtractOptions};
use crate::layer::{commit_dir, decompress_with, TmpGuard};
use crate::oci_archive;
use crate::store::{ImageId, Store};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What `image verify` found for one image.
#[derive(Debug, Clone, Default, serde::Serialize, PartialEq, Eq)]
pub struct VerifyReport {
    /// The image.
    pub id: Option<ImageId>,
    /// Blobs re-hashed.
    pub blobs_checked: usize,
    /// Layers whose tree differed from their blob and were re-extracted.
    pub layers_repaired: Vec<String>,
}

impl Store {
    /// Write the image to `out`.
    pub fn export(&self, id: &ImageId, out: &Path, overwrite: bool) -> Result<()> {
        let row = self.row(id)?;
        if out.exists() && !overwrite {
            return Err(Error::Invalid {
                what: format!("output {}", out.display()),
                reason: "file exists (use --overwrite)".into(),
            });
        }
        let tmp = out.with_extension("partial");
        let guard = TmpGuard(vec![tmp.clone()]);
        if row.kind == "aci" {
            let layers = self.layer_rows(id)?;
            let blob = self.paths.blob(&layers[0].blob_digest)?;
            std::fs::copy(&blob, &tmp).map_err(io_err("writing", &tmp))?;
        } else {
            let f = File::create(&tmp).map_err(io_err("creating", &tmp))?;
            let mut b = tar::Builder::new(f);
            let w = |e| Error::Io {
                what: "writing",
                path: tmp.clone(),
                source: e,
            };
            let tag = row
                .name
                .rsplit_once(':')
                .filter(|(_, t)| !t.contains('/'))
                .map(|(_, t)| t.to_string())
                .unwrap_or_else(|| "latest".into());
            let manifest_size = std::fs::metadata(self.paths.blob(&row.manifest_digest)?)
                .map_err(io_err("reading", self.paths.blob(&row.manifest_digest)?))?
                .size();
            oci_archive::append_layout_and_index(
                &mut b,
                &row.manifest_media_type,
                &row.manifest_digest,
                manifest_size,
                &tag,
            )
            .map_err(w)?;
            for blob in self.index.borrow().blobs(&id.0)? {
                let p = self.paths.blob(&blob.digest)?;
                let name = format!("blobs/sha256/{}", crate::digest::sha256_hex(&blob.digest)?);
                b.append_path_with_name(&p, &name).map_err(w)?;
            }
            let mut f = b.into_inner().map_err(w)?;
            f.flush().map_err(w)?;
        }
        std::fs::rename(&tmp, out).map_err(io_err("writing", out))?;
        drop(guard);
        Ok(())
    }

    /// Re-hash an image's blobs; re-extract each layer from its blob and replace the stored
    /// tree when they differ (repair).
    pub fn verify(&self, id: &ImageId) -> Result<VerifyReport> {
        let mut report = VerifyReport {
            id: Some(id.clone()),
            ..Default::default()
        };
        for blob in self.index.borrow().blobs(&id.0)? {
            let p = self.paths.blob(&blob.digest)?;
            let mut h = HashingReader::new(File::open(&p).map_err(io_err("opening blob", &p))?);
            h.drain().map_err(io_err("reading blob", &p))?;
            let (d, n, _) = h.finish();
            if d != blob.digest || n != blob.size {
                return Err(Error::BlobMismatch {
                    digest: blob.digest.clone(),
                    reason: format!("stored blob is corrupted (hashes to {d}, {n} bytes); remove the image and fetch it again"),
                });
            }
            report.blobs_checked += 1;
        }
        let aci = self.row(id)?.kind == "aci";
        for l in self.layer_rows(id)? {
            let blob = self.paths.blob(&l.blob_digest)?;
            let fresh = self.paths.tmp_name("verify");
            let guard = TmpGuard(vec![fresh.clone()]);
            std::fs::create_dir(&fresh).map_err(io_err("creating", &fresh))?;
            let opts = if aci {
                ExtractOptions {
                    strip_prefix: Some("rootfs".into()),
                    capture: Some("manifest".into()),
                }
            } else {
                ExtractOptions::default()
            };
            let f = File::open(&blob).map_err(io_err("opening blob", &blob))?;
            decompress_with(std::io::BufReader::new(f), |tar| {
                extract(tar, &fresh, &opts)
            })?;
            let stored = self.paths.layer(&l.diff_id)?;
            let same = stored.is_dir() && tree_digest(&stored)? == tree_digest(&fresh)?;
            if !same {
                tracing::warn!(layer = %l.diff_id, "layer tree damaged, re-extracted");
                let old = self.paths.tmp_name("damaged");
                if stored.exists() {
                    std::fs::rename(&stored, &old).map_err(io_err("moving", &stored))?;
                }
                commit_dir(&fresh, &stored)?;
                crate::tree::remove_tree(&old)?;
                report.layers_repaired.push(l.diff_id.clone());
            }
            drop(guard);
        }
        Ok(report)
    }
}

/// A digest of a directory tree: paths, types, ownership, modes, link targets, device numbers,
/// xattrs and file contents (not times: directory times move when a pod's overlay is used).
pub(crate) fn tree_digest(root: &Path) -> Result<String> {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    let mut stack = vec![std::path::PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = root.join(&rel);
        let md = std::fs::symlink_metadata(&abs).map_err(io_err("reading", &abs))?;
        h.update(rel.as_os_str().as_encoded_bytes());
        h.update(
            format!(
                "\0{:o}\0{}\0{}\0{}\0",
                md.mode(),
                md.uid(),
                md.gid(),
                md.rdev()
            )
            .as_bytes(),
        );
        if let Ok(mut names) = xattr::list(&abs).map(|l| l.collect::<Vec<_>>()) {
            names.sort();
            for n in names {
                h.update(n.as_encoded_bytes());
                if let Ok(Some(v)) = xattr::get(&abs, &n) {
                    h.update(&v);
                }
            }
        }
        let ft = md.file_type();
        if ft.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(&abs)
                .map_err(io_err("reading", &abs))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<std::io::Result<_>>()
                .map_err(io_err("reading", &abs))?;
            names.sort();
            for n in names.into_iter().rev() {
                stack.push(rel.join(n));
            }
        } else if ft.is_symlink() {
            let t = std::fs::read_link(&abs).map_err(io_err("reading", &abs))?;
            h.update(t.as_os_str().as_encoded_bytes());
        } else if ft.is_file() {
            let mut r = HashingReader::new(File::open(&abs).map_err(io_err("reading", &abs))?);
            r.drain().map_err(io_err("reading", &abs))?;
            h.update(r.finish().0.as_bytes());
        }
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}
