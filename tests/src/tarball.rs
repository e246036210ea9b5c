//! Deterministic layer tarballs and OCI image layouts, written with the `tar` crate.
//!
//! Everything is sorted, owned by 0:0 unless said otherwise and dated [`MTIME`], so two builds
//! of the same entries give byte-identical blobs and the same digests.

use serde_json::json;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// mtime of every entry: 2024-01-01T00:00:00Z.
pub const MTIME: u64 = 1_704_067_200;

/// One entry of a layer.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path without leading `/` (e.g. `bin/busybox`).
    pub path: String,
    /// What it is.
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Extended attributes (PAX `SCHILY.xattr.*`).
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// Entry kinds.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Directory.
    Dir,
    /// Regular file with content.
    File(Vec<u8>),
    /// Symbolic link to the target.
    Symlink(String),
    /// Hard link to another path of the same layer.
    Hardlink(String),
}

impl Entry {
    /// A directory, 0755.
    pub fn dir(path: &str) -> Entry {
        Entry::new(path, Kind::Dir, 0o755)
    }
    /// A file, 0644.
    pub fn file(path: &str, data: impl Into<Vec<u8>>) -> Entry {
        Entry::new(path, Kind::File(data.into()), 0o644)
    }
    /// A symlink.
    pub fn symlink(path: &str, target: &str) -> Entry {
        Entry::new(path, Kind::Symlink(target.into()), 0o777)
    }
    /// A hard link.
    pub fn hardlink(path: &str, target: &str) -> Entry {
        Entry::new(path, Kind::Hardlink(target.into()), 0o644)
    }
    fn new(path: &str, kind: Kind, mode: u32) -> Entry {
        Entry {
            path: path.trim_start_matches('/').to_string(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            xattrs: vec![],
        }
    }
    /// With these permission bits.
    pub fn mode(mut self, mode: u32) -> Entry {
        self.mode = mode;
        self
    }
    /// With this owner.
    pub fn owner(mut self, uid: u64, gid: u64) -> Entry {
        self.uid = uid;
        self.gid = gid;
        self
    }
    /// With an extended attribute.
    pub fn xattr(mut self, name: &str, value: &[u8]) -> Entry {
        self.xattrs.push((name.into(), value.to_vec()));
        self
    }
}

/// Write entries as an uncompressed tar, in the order given (callers sort when they want to).
/// Entries are written verbatim: hostile names like `../x` are kept, for hostile-layer tests.
pub fn tar_bytes(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    for e in entries {
        if !e.xattrs.is_empty() {
            let pax: Vec<(String, Vec<u8>)> = e
                .xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.clone()))
                .collect();
            b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .expect("pax header");
        }
        let mut h = tar::Header::new_gnu();
        h.set_mtime(MTIME);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mode(e.mode);
        let data: &[u8] = match &e.kind {
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                &[]
            }
            Kind::File(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(d.len() as u64);
                d
            }
            Kind::Symlink(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                set_link(&mut b, &mut h, t);
                &[]
            }
            Kind::Hardlink(t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                set_link(&mut b, &mut h, t);
                &[]
            }
        };
        let path = if matches!(e.kind, Kind::Dir) && !e.path.ends_with('/') {
            format!("{}/", e.path)
        } else {
            e.path.clone()
        };
        // Write the name raw so that hostile paths survive (the tar crate's set_path refuses
        // `..`).
        append_raw(&mut b, &mut h, &path, data);
    }
    b.into_inner().expect("finish tar")
}

fn set_link(_b: &mut tar::Builder<Vec<u8>>, h: &mut tar::Header, target: &str) {
    let bytes = target.as_bytes();
    assert!(
        bytes.len() <= 100,
        "link target too long for the test tar writer"
    );
    let old = h.as_old_mut();
    old.linkname = [0; 100];
    old.linkname[..bytes.len()].copy_from_slice(bytes);
}

fn append_raw(b: &mut tar::Builder<Vec<u8>>, h: &mut tar::Header, path: &str, data: &[u8]) {
    let bytes = path.as_bytes();
    if bytes.len() <= 100 {
        let old = h.as_old_mut();
        old.name = [0; 100];
        old.name[..bytes.len()].copy_from_slice(bytes);
        h.set_cksum();
        b.append(h, data).expect("append tar entry");
    } else {
        // GNU long name extension.
        let mut ln = tar::Header::new_gnu();
        ln.set_entry_type(tar::EntryType::GNULongName);
        ln.set_mtime(MTIME);
        let mut name = bytes.to_vec();
        name.push(0);
        ln.set_size(name.len() as u64);
        {
            let old = ln.as_old_mut();
            old.name[..13].copy_from_slice(b"././@LongLink");
        }
        ln.set_cksum();
        b.append(&ln, name.as_slice()).expect("append long name");
        let old = h.as_old_mut();
        old.name = [0; 100];
        old.name.copy_from_slice(&bytes[..100]);
        h.set_cksum();
        b.append(h, data).expect("append tar entry");
    }
}

/// gzip at level 6 with a zero mtime header: reproducible.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// `sha256:<hex>` of bytes.
pub fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A layer as stored in an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// Digest of the compressed blob.
    pub digest: String,
    /// Digest of the uncompressed tar.
    pub diff_id: String,
    /// Compressed size.
    pub size: u64,
}

/// An image in an OCI layout dir, under one tag.
#[derive(Debug, Clone)]
pub struct OciImage {
    /// The OCI image layout directory.
    pub layout: PathBuf,
    /// Tag (`org.opencontainers.image.ref.name`).
    pub tag: String,
    /// Manifest digest = the image id rkt's store will use.
    pub manifest_digest: String,
    /// Config digest.
    pub config_digest: String,
    /// Layers, bottom first.
    pub layers: Vec<LayerInfo>,
}

impl OciImage {
    /// The layout dir.
    pub fn layout_dir(&self) -> &Path {
        &self.layout
    }
    /// The tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }
    /// The manifest digest.
    pub fn manifest_digest(&self) -> &str {
        &self.manifest_digest
    }
    /// `oci:LAYOUT:TAG`, as skopeo and `rkt fetch` spell it.
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:{}", self.layout.display(), self.tag)
    }
    /// Path of a blob in the layout.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }
}

/// Image configuration fields the builder sets.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// `config.Env`.
    pub env: Vec<String>,
    /// `config.Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `config.Cmd`.
    pub cmd: Vec<String>,
    /// `config.WorkingDir`.
    pub working_dir: String,
    /// `config.User`.
    pub user: Option<String>,
    /// `config.Volumes` keys.
    pub volumes: Vec<String>,
    /// `config.ExposedPorts` keys (`80/tcp`).
    pub exposed_ports: Vec<String>,
}

impl Default for ImageSpec {
    fn default() -> Self {
        ImageSpec {
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            entrypoint: None,
            cmd: vec!["sh".into()],
            working_dir: "/".into(),
            user: None,
            volumes: vec![],
            exposed_ports: vec![],
        }
    }
}

/// Write blobs, config and manifest of an image made of `layers` (uncompressed tars, bottom
/// first) into the OCI layout `layout` and tag it. Several images may share one layout.
pub fn write_image(layout: &Path, tag: &str, layers: &[Vec<u8>], spec: &ImageSpec) -> OciImage {
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("create layout");
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    let put = |data: &[u8]| -> String {
        let d = digest(data);
        let p = blobs.join(d.trim_start_matches("sha256:"));
        if !p.exists() {
            fs::write(&p, data).expect("write blob");
        }
        d
    };
    let mut infos = Vec::new();
    for tar in layers {
        let gz = gzip(tar);
        infos.push(LayerInfo {
            digest: put(&gz),
            diff_id: digest(tar),
            size: gz.len() as u64,
        });
    }
    let obj = |keys: &[String]| -> serde_json::Value {
        serde_json::Value::Object(keys.iter().map(|k| (k.clone(), json!({}))).collect())
    };
    let mut cfg = json!({
        "Env": spec.env, "Cmd": spec.cmd, "WorkingDir": spec.working_dir,
    });
    if let Some(ep) = &spec.entrypoint {
        cfg["Entrypoint"] = json!(ep);
    }
    if let Some(u) = &spec.user {
        cfg["User"] = json!(u);
    }
    if !spec.volumes.is_empty() {
        cfg["Volumes"] = obj(&spec.volumes);
    }
    if !spec.exposed_ports.is_empty() {
        cfg["ExposedPorts"] = obj(&spec.exposed_ports);
    }
    let config = json!({
        "created": "2024-01-01T00:00:00Z",
        "author": "rkt-tests",
        "architecture": "amd64",
        "os": "linux",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": infos.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
        "history": infos.iter().enumerate().map(|(i, _)| json!({"created": "2024-01-01T00:00:00Z", "created_by": format!("rkt-tests layer {i}")})).collect::<Vec<_>>(),
    });
    let config_bytes = serde_json::to_vec(&config).expect("config json");
    let config_digest = put(&config_bytes);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_bytes.len()},
        "layers": infos.iter().map(|l| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l.digest, "size": l.size})).collect::<Vec<_>>(),
    });
    let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest json");
    let manifest_digest = put(&manifest_bytes);
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value = fs::read(&index_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({"schemaVersion": 2, "manifests": []}));
    let list = index["manifests"].as_array_mut().expect("index manifests");
    list.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != json!(tag));
    list.push(json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest, "size": manifest_bytes.len(),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }));
    fs::write(&index_path, serde_json::to_vec(&index).expect("index json")).expect("index.json");
    OciImage {
        layout: layout.to_path_buf(),
        tag: tag.to_string(),
        manifest_digest,
        config_digest,
        layers: infos,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_survive_and_tar_is_deterministic() {
        let entries = vec![
            Entry::file("../escape", "x"),
            Entry::symlink("link", "/etc"),
            Entry::file(&format!("{}f", "d/".repeat(59)), "long").mode(0o4755),
        ];
        let a = tar_bytes(&entries);
        assert_eq!(a, tar_bytes(&entries));
        let mut ar = tar::Archive::new(a.as_slice());
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path_bytes().into_owned())
            .map(|b| String::from_utf8(b).unwrap())
            .collect();
        assert_eq!(names[0], "../escape");
        assert_eq!(names[2].len(), 119);
    }
}
