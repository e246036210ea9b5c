//! appc images (`.aci` files): stored decompressed as one blob and one layer (its `rootfs/`),
//! with the appc manifest as the config. Image id as rkt computed it: `sha512-` + the first 64
//! hex digits of the SHA-512 of the uncompressed tar.

use crate::error::{io_err, Error, Result};
use crate::extract::{extract, ExtractOptions};
use crate::index::{BlobRow, ImageRow, LayerRow};
use crate::layer::{commit_blob, commit_dir, decompress_with, write_blob, TmpGuard};
use crate::manifest::{parse_aci_manifest, ACI_LAYER, ACI_MANIFEST};
use crate::store::{now_ns, ImageId, Store};
use crate::trust::Verification;
use sha2::{Digest as _, Sha512};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

struct Tee<R> {
    inner: R,
    sha512: Sha512,
    out: BufWriter<File>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha512.update(&buf[..n]);
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Import an ACI file. `verify` decides about the image once its manifest is read (it gets
/// the image's name) and before anything of it is committed.
pub(crate) fn import(
    store: &Store,
    path: &Path,
    verify: impl FnOnce(&str) -> Result<Verification>,
) -> Result<ImageId> {
    let paths = &store.paths;
    let f = File::open(path).map_err(io_err("opening image file", path))?;
    let tmp_dir = paths.tmp_name("aci");
    let tmp_blob = paths.tmp_name("aci-blob");
    let guard = TmpGuard(vec![tmp_dir.clone(), tmp_blob.clone()]);
    std::fs::create_dir(&tmp_dir).map_err(io_err("creating", &tmp_dir))?;
    let out = BufWriter::with_capacity(
        256 * 1024,
        File::create(&tmp_blob).map_err(io_err("creating", &tmp_blob))?,
    );
    let opts = ExtractOptions {
        strip_prefix: Some("rootfs".into()),
        capture: Some("manifest".into()),
    };
    let ((stats, sha512, out), diff_id, size) =
        decompress_with(std::io::BufReader::new(f), |tar| {
            let mut tee = Tee {
                inner: tar,
                sha512: Sha512::new(),
                out,
            };
            let stats = extract(&mut tee, &tmp_dir, &opts)?;
            let mut sink = vec![0u8; 64 * 1024];
            while tee.read(&mut sink).map_err(io_err("reading", path))? != 0 {}
            Ok((stats, tee.sha512.finalize(), tee.out))
        })
        .map_err(|e| match e {
            Error::Layer { reason, .. } => Error::Invalid {
                what: format!("image file {}", path.display()),
                reason,
            },
            e => e,
        })?;
    let manifest_bytes = stats.captured.ok_or_else(|| Error::Invalid {
        what: format!("image file {}", path.display()),
        reason: "no manifest in the ACI".into(),
    })?;
    let (name, _cfg) = parse_aci_manifest(&manifest_bytes)?;
    let verification = verify(&name)?;
    let id = format!("sha512-{}", &hex::encode(sha512)[..64]);
    let file = out.into_inner().map_err(|e| Error::Io {
        what: "writing",
        path: tmp_blob.clone(),
        source: e.into_error(),
    })?;
    drop(file);
    let manifest_digest = crate::digest::sha256_of(&manifest_bytes);
    commit_blob(&tmp_blob, &paths.blob(&diff_id)?)?;
    commit_dir(&tmp_dir, &paths.layer(&diff_id)?)?;
    write_blob(paths, &manifest_digest, &manifest_bytes)?;
    drop(guard);
    let now = now_ns();
    let row = ImageRow {
        id: id.clone(),
        name,
        kind: "aci".into(),
        manifest_digest: manifest_digest.clone(),
        manifest_media_type: ACI_MANIFEST.into(),
        config_digest: manifest_digest.clone(),
        size,
        import_time: now,
        last_used: now,
        verification: verification.as_text(),
    };
    let layer = LayerRow {
        diff_id: diff_id.clone(),
        blob_digest: diff_id.clone(),
        media_type: ACI_LAYER.into(),
        size,
    };
    let blobs = [
        BlobRow {
            digest: diff_id,
            size,
            media_type: ACI_LAYER.into(),
        },
        BlobRow {
            digest: manifest_digest,
            size: manifest_bytes.len() as u64,
            media_type: ACI_MANIFEST.into(),
        },
    ];
    store.insert_locked(&row, &[layer], &blobs)?;
    Ok(ImageId(id))
}
