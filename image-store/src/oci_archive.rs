//! Writing an OCI image layout as a tar archive (`oci-archive:`): the entries every writer
//! needs, with fixed owner, mode and mtime so the same content gives the same bytes. Used by
//! `rkt image export` and by [`write_rootfs_image`] (`rkt export`): the one OCI image writer.

use serde_json::json;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use crate::manifest::ImageConfig;

/// Append a regular file `name` of `size` bytes read from `data` (root-owned, 0644, mtime 0).
pub fn append_entry<W: Write, R: Read>(
    b: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: R,
) -> io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, data)
}

/// Append the `oci-layout` marker and an `index.json` naming one manifest, tagged `tag`.
pub fn append_layout_and_index<W: Write>(
    b: &mut tar::Builder<W>,
    manifest_media_type: &str,
    manifest_digest: &str,
    manifest_size: u64,
    tag: &str,
) -> io::Result<()> {
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    append_entry(b, "oci-layout", layout.len() as u64, &layout[..])?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": manifest_media_type,
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    })
    .to_string();
    append_entry(b, "index.json", index.len() as u64, index.as_bytes())
}

/// Write `rootfs` as a single-layer OCI image archive at `out` whose config keeps `cfg`'s
/// settings (`rkt export`): the layer tar goes to `out.layer.partial` first (its digest is
/// needed before the archive), the archive to `out.partial`, fsynced, then renamed to `out`.
/// Nothing half-written is left at `out` on failure.
///
/// `ids` (`(shift, count)`): the rootfs is seen through a user namespace mapping (a pod with
/// private users), where pod id N is host id `shift + N`: the archive gets the pod's ids back,
/// and a host id the mapping does not cover gets 65534 (nobody, as the pod saw it).
pub fn write_rootfs_image(
    rootfs: &Path,
    cfg: &ImageConfig,
    out: &Path,
    ids: Option<(u32, u32)>,
) -> io::Result<()> {
    let tmp_layer = out.with_extension("layer.partial");
    let tmp_out = out.with_extension("partial");
    let result = (|| -> io::Result<()> {
        let (layer_hex, layer_size) = write_layer(rootfs, &tmp_layer, ids)?;
        let config = serde_json::to_vec(&image_config_json(cfg, &format!("sha256:{layer_hex}")))
            .map_err(io::Error::other)?;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": format!("sha256:{}", sha256_hex(&config)),
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": format!("sha256:{layer_hex}"),
                "size": layer_size,
            }],
        }))
        .map_err(io::Error::other)?;
        let mut b = tar::Builder::new(BufWriter::new(File::create(&tmp_out)?));
        append_layout_and_index(
            &mut b,
            "application/vnd.oci.image.manifest.v1+json",
            &format!("sha256:{}", sha256_hex(&manifest)),
            manifest.len() as u64,
            "latest",
        )?;
        for blob in [&manifest, &config] {
            append_entry(
                &mut b,
                &format!("blobs/sha256/{}", sha256_hex(blob)),
                blob.len() as u64,
                &blob[..],
            )?;
        }
        let layer = File::open(&tmp_layer)?;
        append_entry(
            &mut b,
            &format!("blobs/sha256/{layer_hex}"),
            layer_size,
            layer.take(layer_size),
        )?;
        let mut w = b.into_inner()?;
        w.flush()?;
        w.get_ref().sync_all()?;
        std::fs::rename(&tmp_out, out)
    })();
    let _ = std::fs::remove_file(&tmp_layer);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp_out);
    }
    result
}

/// A writer that hashes what goes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// OCI image config JSON for one layer with `diff_id`, keeping the original image's settings.
fn image_config_json(cfg: &ImageConfig, diff_id: &str) -> serde_json::Value {
    let mut c = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        c.insert(k.to_string(), v);
    };
    if !cfg.entrypoint.is_empty() {
        put("Entrypoint", json!(cfg.entrypoint));
    }
    if !cfg.cmd.is_empty() {
        put("Cmd", json!(cfg.cmd));
    }
    if !cfg.env.is_empty() {
        put("Env", json!(cfg.env));
    }
    if !cfg.user.is_empty() {
        put("User", json!(cfg.user));
    }
    if !cfg.working_dir.is_empty() {
        put("WorkingDir", json!(cfg.working_dir));
    }
    if !cfg.volumes.is_empty() {
        let v: serde_json::Map<_, _> = cfg.volumes.iter().map(|p| (p.clone(), json!({}))).collect();
        put("Volumes", v.into());
    }
    if !cfg.exposed_ports.is_empty() {
        let v: serde_json::Map<_, _> = cfg
            .exposed_ports
            .iter()
            .map(|p| (p.clone(), json!({})))
            .collect();
        put("ExposedPorts", v.into());
    }
    if !cfg.labels.is_empty() {
        put("Labels", json!(cfg.labels));
    }
    json!({
        "architecture": oci_arch(),
        "os": "linux",
        "config": c,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    })
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Write `rootfs` as an uncompressed layer tar to `layer`; returns (sha256 hex, size).
fn write_layer(rootfs: &Path, layer: &Path, ids: Option<(u32, u32)>) -> io::Result<(String, u64)> {
    let f = BufWriter::new(File::create(layer)?);
    let mut b = tar::Builder::new(Hashing {
        inner: f,
        hash: Sha256::new(),
        len: 0,
    });
    append_tree(&mut b, rootfs, ids)?;
    let mut w = b.into_inner()?;
    w.flush()?;
    w.inner.get_ref().sync_all()?;
    Ok((hex::encode(w.hash.finalize()), w.len))
}

/// The id the archive records for host id `id` under `ids` (see [`write_rootfs_image`]).
fn archive_id(id: u32, ids: Option<(u32, u32)>) -> u64 {
    match ids {
        None => u64::from(id),
        Some((shift, count)) if id >= shift && id - shift < count => u64::from(id - shift),
        Some(_) => 65534,
    }
}

/// Append every entry below `root` (not `root` itself), names relative to it, in name order,
/// with mode, owner, mtime and device numbers; symlinks as links, never followed; sockets
/// skipped. Walked with an explicit stack: an app's dir tree may be as deep as it likes.
fn append_tree<W: Write>(
    b: &mut tar::Builder<W>,
    root: &Path,
    ids: Option<(u32, u32)>,
) -> io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut stack = vec![std::path::PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(root.join(&rel))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        // pushed in reverse so dirs come out in name order
        let mut dirs = Vec::new();
        for n in names {
            let name = rel.join(&n);
            let path = root.join(&name);
            let meta = std::fs::symlink_metadata(&path)?;
            let ft = meta.file_type();
            if ft.is_socket() {
                continue;
            }
            let mut h = tar::Header::new_gnu();
            h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
            h.set_uid(archive_id(meta.uid(), ids));
            h.set_gid(archive_id(meta.gid(), ids));
            if ft.is_symlink() {
                h.set_size(0);
                b.append_link(&mut h, &name, std::fs::read_link(&path)?)?;
            } else if ft.is_file() {
                b.append_data(&mut h, &name, File::open(&path)?)?;
            } else {
                h.set_size(0);
                b.append_data(&mut h, &name, io::empty())?;
                if ft.is_dir() {
                    dirs.push(name);
                }
            }
        }
        stack.extend(dirs.into_iter().rev());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_the_image_settings() {
        let cfg = ImageConfig {
            entrypoint: vec!["/ep".into()],
            env: vec!["A=1".into()],
            exposed_ports: vec!["80/tcp".into()],
            ..Default::default()
        };
        let v = image_config_json(&cfg, "sha256:ab");
        assert_eq!(v["config"]["Entrypoint"][0], "/ep");
        assert_eq!(v["config"]["Env"][0], "A=1");
        assert!(v["config"]["ExposedPorts"]["80/tcp"].is_object());
        assert!(v["config"].get("Cmd").is_none());
        assert_eq!(v["rootfs"]["diff_ids"][0], "sha256:ab");
        assert_eq!(v["os"], "linux");
    }

    #[test]
    fn layer_tar_hash_matches_content() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hello"), "hi\n").unwrap();
        std::os::unix::fs::symlink("hello", root.join("etc/link")).unwrap();
        let out = d.path().join("layer.tar");
        let (h, n) = write_layer(&root, &out, None).unwrap();
        let data = std::fs::read(&out).unwrap();
        assert_eq!(data.len() as u64, n);
        assert_eq!(sha256_hex(&data), h);
        let mut ar = tar::Archive::new(&data[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(
            names.iter().any(|n| n.trim_end_matches('/') == "etc"),
            "{names:?}"
        );
        assert!(names.iter().any(|n| n == "etc/hello"), "{names:?}");
        assert!(names.iter().any(|n| n == "etc/link"), "{names:?}");
    }

    /// Root only (chown): under a mapping the archive records the pod's ids, and nobody for
    /// a host id outside the range.
    #[test]
    fn mapped_ids_are_recorded_as_the_pods() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("home/u")).unwrap();
        std::fs::write(root.join("home/u/f"), "x").unwrap();
        std::fs::write(root.join("outside"), "x").unwrap();
        let own = |p: &str, id: u32| std::os::unix::fs::chown(root.join(p), Some(id), Some(id));
        own("home", 100_000).unwrap();
        own("home/u", 101_000).unwrap();
        own("home/u/f", 101_000).unwrap();
        own("outside", 5).unwrap();
        let out = d.path().join("layer.tar");
        write_layer(&root, &out, Some((100_000, 65536))).unwrap();
        let data = std::fs::read(&out).unwrap();
        let mut ar = tar::Archive::new(&data[..]);
        let owners: std::collections::BTreeMap<String, u64> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let n = e.path().unwrap().display().to_string();
                (
                    n.trim_end_matches('/').to_string(),
                    e.header().uid().unwrap(),
                )
            })
            .collect();
        assert_eq!(owners["home"], 0);
        assert_eq!(owners["home/u"], 1000);
        assert_eq!(owners["home/u/f"], 1000);
        assert_eq!(owners["outside"], 65534);
    }
}
