//! The per-layer pipeline, in one pass over the bytes: hash (and keep) the blob as received,
//! decompress, hash the tar (diff id), extract safely into `cas/tmp`, verify, then rename the
//! blob and the layer directory into place.
//!
//! Nothing is fsynced: an fsync per blob tripled the wall time of a fetch here (ext4
//! data=ordered flushes everything dirty), extracted files are not synced either, and a blob or
//! layer damaged by a crash is found by `rkt image verify` (layers are repaired from their blob;
//! a bad blob means fetching the image again).

use crate::digest::{sha256_hex, HashingReader};
use crate::error::{io_err, Error, Result};
use crate::extract::{extract, ExtractOptions};
use crate::index::LayerRow;
use crate::manifest::Descriptor;
use crate::store::Paths;
use crate::tree::remove_tree;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Compression of a layer blob, sniffed from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

pub(crate) fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Removes its paths on drop unless disarmed.
pub(crate) struct TmpGuard(pub Vec<PathBuf>);

impl Drop for TmpGuard {
    fn drop(&mut self) {
        for p in &self.0 {
            if p.is_dir() {
                let _ = remove_tree(p);
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Decompress `raw` (sniffing the format) and feed the tar to `f`; returns `f`'s result and the
/// diff id (`sha256:` of the whole decompressed stream).
pub(crate) fn decompress_with<R: Read, T>(
    raw: R,
    f: impl FnOnce(&mut dyn Read) -> Result<T>,
) -> Result<(T, String, u64)> {
    let mut buf = BufReader::with_capacity(256 * 1024, raw);
    let head = buf.fill_buf().map_err(|e| Error::Layer {
        digest: String::new(),
        reason: format!("reading: {e}"),
    })?;
    let dec: Box<dyn Read + '_> = match sniff(head) {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buf).map_err(
            |e| Error::Layer {
                digest: String::new(),
                reason: format!("zstd: {e}"),
            },
        )?),
        Compression::None => Box::new(buf),
    };
    let mut diff = HashingReader::new(dec);
    let out = f(&mut diff)?;
    diff.drain().map_err(|e| Error::Layer {
        digest: String::new(),
        reason: format!("decompressing: {e}"),
    })?;
    let (d, n, _) = diff.finish();
    Ok((out, d, n))
}

/// Fetch one layer from `src` (its compressed bytes, exactly as the descriptor describes) into
/// the store. `diff_id` is the config's `rootfs.diff_ids` entry for it.
pub(crate) fn fetch_layer(
    paths: &Paths,
    desc: &Descriptor,
    diff_id: &str,
    src: Box<dyn Read + Send>,
) -> Result<LayerRow> {
    let hex = sha256_hex(&desc.digest)?.to_string();
    let final_dir = paths.layer(diff_id)?;
    let final_blob = paths.blob(&desc.digest)?;
    let tmp_dir = paths.tmp_name(&format!("layer-{}", &hex[..12]));
    let tmp_blob = paths.tmp_name(&format!("blob-{}", &hex[..12]));
    let guard = TmpGuard(vec![tmp_dir.clone(), tmp_blob.clone()]);
    std::fs::create_dir(&tmp_dir).map_err(io_err("creating", &tmp_dir))?;
    let blob_file = File::create(&tmp_blob).map_err(io_err("creating", &tmp_blob))?;
    let layer_err = |reason: String| Error::Layer {
        digest: desc.digest.clone(),
        reason,
    };

    // One byte more than the descriptor allows, so an oversized blob is noticed.
    let limited = src.take(desc.size.saturating_add(1));
    let mut raw = HashingReader::tee(limited, BufWriter::with_capacity(256 * 1024, blob_file));
    let result = decompress_with(&mut raw, |tar| {
        extract(tar, &tmp_dir, &ExtractOptions::default())
    });
    // Whatever happened, finish reading the blob: a digest mismatch explains most failures
    // (a corrupted gzip stream, a truncated tar) better than the decompressor's error.
    let drained = raw.drain();
    if let Some(e) = raw.source_error() {
        return Err(layer_err(format!("reading blob: {e}")));
    }
    let (digest, size, sink) = raw.finish();
    let blob_ok = digest == desc.digest && size == desc.size;
    if !blob_ok {
        let reason = if size != desc.size {
            format!(
                "size {size}{} does not match the descriptor's {}",
                if size > desc.size { "+" } else { "" },
                desc.size
            )
        } else {
            format!("digest mismatch: got {digest}")
        };
        return Err(Error::BlobMismatch {
            digest: desc.digest.clone(),
            reason,
        });
    }
    if let Err(e) = drained {
        return Err(layer_err(format!("reading blob: {e}")));
    }
    let (_stats, got_diff, _) = result.map_err(|e| match e {
        Error::Layer { reason, .. } => layer_err(reason),
        e => e,
    })?;
    if got_diff != diff_id {
        return Err(layer_err(format!(
            "uncompressed digest {got_diff} does not match diff id {diff_id}"
        )));
    }
    let file = sink.into_inner().map_err(|e| Error::Io {
        what: "writing",
        path: tmp_blob.clone(),
        source: e.into_error(),
    })?;
    drop(file);
    commit_blob(&tmp_blob, &final_blob)?;
    commit_dir(&tmp_dir, &final_dir)?;
    drop(guard);
    Ok(LayerRow {
        diff_id: diff_id.to_string(),
        blob_digest: desc.digest.clone(),
        media_type: desc.media_type.clone(),
        size: desc.size,
    })
}

/// Rename a verified blob into place (an identical one may already be there).
pub(crate) fn commit_blob(tmp: &Path, dst: &Path) -> Result<()> {
    std::fs::rename(tmp, dst).map_err(io_err("committing blob", dst))
}

/// Rename a finished layer directory into place; if another process won the race, keep theirs.
pub(crate) fn commit_dir(tmp: &Path, dst: &Path) -> Result<()> {
    match std::fs::rename(tmp, dst) {
        Ok(()) => Ok(()),
        Err(e)
            if dst.is_dir()
                && (e.raw_os_error() == Some(rustix::io::Errno::EXIST.raw_os_error())
                    || e.raw_os_error() == Some(rustix::io::Errno::NOTEMPTY.raw_os_error())) =>
        {
            remove_tree(tmp)
        }
        Err(e) => Err(Error::Io {
            what: "committing layer",
            path: dst.to_path_buf(),
            source: e,
        }),
    }
}

/// Write `bytes` (already verified) as a blob, atomically.
pub(crate) fn write_blob(paths: &Paths, digest: &str, bytes: &[u8]) -> Result<()> {
    let dst = paths.blob(digest)?;
    if dst.exists() {
        return Ok(());
    }
    let tmp = paths.tmp_name("blob");
    let guard = TmpGuard(vec![tmp.clone()]);
    let mut f = File::create(&tmp).map_err(io_err("creating", &tmp))?;
    f.write_all(bytes).map_err(io_err("writing", &tmp))?;
    commit_blob(&tmp, &dst)?;
    drop(guard);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_path("f").unwrap();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        b.append(&h, &b"hello"[..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn gzip_zstd_and_plain_give_the_same_diff_id() {
        let t = tar();
        let want = crate::digest::sha256_of(&t);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&t).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&t[..], 3).unwrap();
        assert_eq!(sniff(&gz), Compression::Gzip);
        assert_eq!(sniff(&zs), Compression::Zstd);
        assert_eq!(sniff(&t), Compression::None);
        for blob in [gz, zs, t.clone()] {
            let (n, diff, size) = decompress_with(&blob[..], |r| {
                let mut a = tar::Archive::new(r);
                Ok(a.entries().unwrap().count())
            })
            .unwrap();
            assert_eq!((n, diff.as_str(), size), (1, want.as_str(), t.len() as u64));
        }
    }
}
