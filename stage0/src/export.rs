//! `rkt export [--app=A] UUID FILE`: an exited pod's app root filesystem (the overlay's merged
//! view: image layers plus what the app changed) as a new single-layer OCI image archive,
//! importable with `rkt fetch oci-archive:FILE`. The image config (entrypoint, cmd, env, …) is
//! the app's original image's.

use serde_json::json;
use sha2::{Digest, Sha256};
use stage1_abi::{paths, PodManifest};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use image_store::oci_archive;

use crate::images::{ImageConfig, Images};
use crate::mount::Mounter;
use crate::pods::{Pods, State};
use crate::{prepare, Error, Result};

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// The pod (UUID prefix).
    pub uuid: String,
    /// The app (needed when the pod has several).
    pub app: Option<String>,
    /// Output archive.
    pub out: PathBuf,
    /// Replace an existing output file.
    pub overwrite: bool,
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
pub fn image_config_json(cfg: &ImageConfig, diff_id: &str) -> serde_json::Value {
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
fn write_layer(rootfs: &Path, layer: &Path) -> io::Result<(String, u64)> {
    let f = BufWriter::new(File::create(layer)?);
    let mut b = tar::Builder::new(Hashing {
        inner: f,
        hash: Sha256::new(),
        len: 0,
    });
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Complete);
    b.append_dir_all("", rootfs)?;
    let mut w = b.into_inner()?;
    w.flush()?;
    w.inner.get_ref().sync_all()?;
    Ok((hex::encode(w.hash.finalize()), w.len))
}

/// Export the app of an exited pod. The pod is locked meanwhile (gc skips it); its rootfs is
/// mounted for the export if it is not mounted any more.
pub fn export(
    pods: &Pods,
    images: &dyn Images,
    mounter: &dyn Mounter,
    req: &ExportRequest,
) -> Result<()> {
    let uuid = pods.find(&req.uuid)?.uuid;
    let (phase, state) = pods
        .state(&uuid)?
        .ok_or_else(|| Error::NoMatch(req.uuid.clone()))?;
    if !matches!(state, State::Exited | State::ExitedGarbage) {
        return Err(Error::PodState {
            uuid,
            what: "not exited: only exited pods can be exported".into(),
        });
    }
    if req.out.exists() && !req.overwrite {
        return Err(Error::usage(format!(
            "output file {} exists (use --overwrite)",
            req.out.display()
        )));
    }
    let pod = pods.lock(phase, &uuid)?;
    let dir = pod.path();
    let m: PodManifest = stage1_abi::read_json(&dir.join(paths::POD_MANIFEST))?;
    let app = match &req.app {
        Some(a) => m
            .app(a)
            .ok_or_else(|| Error::usage(format!("app {a:?} not found in pod {uuid:?}")))?,
        None if m.apps.len() == 1 => &m.apps[0],
        None => {
            let names: Vec<&str> = m.apps.iter().map(|a| a.name.as_str()).collect();
            return Err(Error::usage(format!(
                "pod {uuid:?} contains multiple apps ({}): specify one with --app",
                names.join(", ")
            )));
        }
    };
    let cfg = images
        .config(&app.image.id)
        .map_err(|e| Error::Image(e.to_string()))?;
    let mounted = prepare::mount_apps(mounter, &dir, &m)?;
    let rootfs = dir.join(paths::app_rootfs(&app.name));
    let tmp_layer = req.out.with_extension("layer.partial");
    let tmp_out = req.out.with_extension("partial");
    let result = (|| -> io::Result<()> {
        let (layer_hex, layer_size) = write_layer(&rootfs, &tmp_layer)?;
        let config = serde_json::to_vec(&image_config_json(&cfg, &format!("sha256:{layer_hex}")))
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
        oci_archive::append_layout_and_index(
            &mut b,
            "application/vnd.oci.image.manifest.v1+json",
            &format!("sha256:{}", sha256_hex(&manifest)),
            manifest.len() as u64,
            "latest",
        )?;
        for blob in [&manifest, &config] {
            oci_archive::append_entry(
                &mut b,
                &format!("blobs/sha256/{}", sha256_hex(blob)),
                blob.len() as u64,
                &blob[..],
            )?;
        }
        let layer = File::open(&tmp_layer)?;
        oci_archive::append_entry(
            &mut b,
            &format!("blobs/sha256/{layer_hex}"),
            layer_size,
            layer.take(layer_size),
        )?;
        let mut w = b.into_inner()?;
        w.flush()?;
        w.get_ref().sync_all()?;
        std::fs::rename(&tmp_out, &req.out)
    })();
    let _ = std::fs::remove_file(&tmp_layer);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp_out);
    }
    prepare::unmount_all(mounter, &mounted);
    drop(pod);
    result.map_err(|e| Error::io("exporting pod to", &req.out, e))
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
        let (h, n) = write_layer(&root, &out).unwrap();
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
}
