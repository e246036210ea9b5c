//! The store: paths, locks, lookups and the API stage0 uses.

use crate::digest::sha256_hex;
use crate::error::{io_err, Error, Result};
use crate::index::{ImageRow, Index, LayerRow};
use crate::manifest::{self, ImageConfig};
use rustix::fs::FlockOperation;
use serde::Serialize;
use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

/// An image id: `sha256:<hex>` (manifest digest) or `sha512-<hex>` (appc).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ImageId(pub String);

impl ImageId {
    /// The id shortened to `hex_len` hex digits after the algorithm prefix.
    pub fn short(&self, hex_len: usize) -> String {
        let split = self.0.find([':', '-']).map(|i| i + 1).unwrap_or(0);
        let end = (split + hex_len).min(self.0.len());
        self.0[..end].to_string()
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What `image list` shows about an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageInfo {
    /// The image id.
    pub id: ImageId,
    /// The name it was fetched as (`host/repo:tag`, `oci:PATH:TAG`, appc `name:version`).
    pub name: String,
    /// Bytes of its blobs (manifest, config, layers as stored).
    pub size: u64,
    /// When it was first stored.
    pub import_time: chrono::DateTime<chrono::Utc>,
    /// When it was last fetched or used by a pod.
    pub last_used: chrono::DateTime<chrono::Utc>,
    /// `oci` or `aci`.
    pub kind: String,
    /// Manifest digest (`sha256:…`).
    pub manifest_digest: String,
    /// How its signature was checked: `gpg:<fingerprint>`, `cosign:<key id>`, `accepted` (the
    /// policy accepts its scope unsigned) or `insecure` (`--insecure-options=image`).
    pub verification: String,
}

fn ns_to_time(ns: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_nanos(ns)
}

pub(crate) fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

impl From<ImageRow> for ImageInfo {
    fn from(r: ImageRow) -> Self {
        ImageInfo {
            id: ImageId(r.id),
            name: r.name,
            size: r.size,
            import_time: ns_to_time(r.import_time),
            last_used: ns_to_time(r.last_used),
            kind: r.kind,
            manifest_digest: r.manifest_digest,
            verification: r.verification,
        }
    }
}

/// Where things live under `<data dir>/cas`.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub cas: PathBuf,
    pub locks: PathBuf,
}

impl Paths {
    pub(crate) fn blob(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.cas.join("blobs/sha256").join(sha256_hex(digest)?))
    }
    pub(crate) fn layer(&self, diff_id: &str) -> Result<PathBuf> {
        Ok(self.cas.join("layers").join(sha256_hex(diff_id)?))
    }
    pub(crate) fn tmp(&self) -> PathBuf {
        self.cas.join("tmp")
    }
    /// A fresh name in `tmp` (unique per process and call).
    pub(crate) fn tmp_name(&self, what: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        self.tmp()
            .join(format!("{what}-{}-{n}", std::process::id()))
    }
}

/// The image store. One per process; not `Sync`.
pub struct Store {
    pub(crate) paths: Paths,
    pub(crate) index: RefCell<Index>,
    /// Shared lock on `locks/store` for the store's life: image GC takes it exclusively, so it
    /// never runs while a fetch or a pod preparation in another process uses the store.
    pub(crate) lock: RefCell<File>,
}

impl Store {
    /// Whether the data dir `data_dir` has a store (one was opened there before).
    pub fn exists(data_dir: &Path) -> bool {
        data_dir.join("cas").is_dir()
    }

    /// Open (creating if needed) the store of the data dir `data_dir` (rkt `--dir`).
    pub fn open(data_dir: &Path) -> Result<Store> {
        let cas = data_dir.join("cas");
        let locks = data_dir.join("locks");
        for d in [
            cas.clone(),
            cas.join("blobs/sha256"),
            cas.join("layers"),
            cas.join("tmp"),
            locks.clone(),
        ] {
            std::fs::create_dir_all(&d).map_err(io_err("creating", &d))?;
        }
        let lock_path = locks.join("store");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("opening lock", &lock_path))?;
        rustix::fs::flock(&lock, FlockOperation::LockShared).map_err(|e| Error::Io {
            what: "locking",
            path: lock_path.clone(),
            source: e.into(),
        })?;
        // Open the index under `cas/index.lock`: on a fresh store, switching the database to WAL
        // and the first migration can fail with "database is locked" (SQLITE_BUSY without the
        // busy handler) when two rkt processes start at once.
        let index_lock_path = cas.join("index.lock");
        let index_lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&index_lock_path)
            .map_err(io_err("opening lock", &index_lock_path))?;
        rustix::fs::flock(&index_lock, FlockOperation::LockExclusive).map_err(|e| Error::Io {
            what: "locking",
            path: index_lock_path.clone(),
            source: e.into(),
        })?;
        let index = Index::open(&cas.join("index.db"))?;
        drop(index_lock);
        Ok(Store {
            paths: Paths { cas, locks },
            index: RefCell::new(index),
            lock: RefCell::new(lock),
        })
    }

    /// Hold the store lock exclusively (for GC) until [`Store::lock_shared`].
    pub(crate) fn lock_exclusive(&self) -> Result<()> {
        rustix::fs::flock(&*self.lock.borrow(), FlockOperation::LockExclusive).map_err(|e| {
            Error::Io {
                what: "locking",
                path: self.paths.locks.join("store"),
                source: e.into(),
            }
        })
    }

    /// Back to the shared lock.
    pub(crate) fn lock_shared(&self) -> Result<()> {
        rustix::fs::flock(&*self.lock.borrow(), FlockOperation::LockShared).map_err(|e| Error::Io {
            what: "locking",
            path: self.paths.locks.join("store"),
            source: e.into(),
        })
    }

    /// Find an image id by exact id, unique id prefix (with or without `sha256:`), or name.
    pub(crate) fn lookup(&self, s: &str) -> Result<Option<String>> {
        let ix = self.index.borrow();
        if ix.get(s)?.is_some() {
            return Ok(Some(s.to_string()));
        }
        let looks_like_id = s.starts_with("sha256:") || s.starts_with("sha512-");
        let bare_hex = s.len() >= 4 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if looks_like_id || bare_hex {
            let mut ids = if looks_like_id {
                ix.ids_with_prefix(&s.to_ascii_lowercase())?
            } else {
                let mut v = ix.ids_with_prefix(&format!("sha256:{}", s.to_ascii_lowercase()))?;
                v.extend(ix.ids_with_prefix(&format!("sha512-{}", s.to_ascii_lowercase()))?);
                v
            };
            match ids.len() {
                0 => {}
                1 => return Ok(ids.pop()),
                _ => return Err(Error::Ambiguous(s.to_string())),
            }
            if looks_like_id {
                return Ok(None);
            }
        }
        if let Some(id) = ix.by_name(s)? {
            return Ok(Some(id));
        }
        if crate::reference::Reference::is_registry_ref(s) {
            if let Ok(r) = crate::reference::Reference::parse(s) {
                if let Some(id) = ix.by_name(&r.to_string())? {
                    return Ok(Some(id));
                }
                // `REPO@DIGEST` of an image fetched by tag: the image of that repository whose
                // manifest has that digest
                if let (Some(digest), None) = (&r.digest, &r.tag) {
                    let repo = format!("{}/{}", r.registry, r.repository);
                    for row in ix.list()? {
                        if &row.manifest_digest != digest {
                            continue;
                        }
                        let same_repo = ix.names_of(&row.id)?.iter().any(|n| {
                            n.rsplit_once(':')
                                .is_some_and(|(name, tag)| name == repo && !tag.contains('/'))
                        });
                        if same_repo {
                            return Ok(Some(row.id));
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    /// Every name image `id` is known by (`host/repo:tag`, `oci:PATH:TAG`, …), sorted.
    pub fn names(&self, id: &ImageId) -> Result<Vec<String>> {
        self.index.borrow().names_of(&id.0)
    }

    pub(crate) fn row(&self, id: &ImageId) -> Result<ImageRow> {
        self.index
            .borrow()
            .get(&id.0)?
            .ok_or_else(|| Error::NotFound(id.0.clone()))
    }

    /// An image by id, unique id prefix, or name.
    pub fn image(&self, id_or_name: &str) -> Result<ImageInfo> {
        let id = self
            .lookup(id_or_name)?
            .ok_or_else(|| Error::NotFound(id_or_name.to_string()))?;
        Ok(self.row(&ImageId(id))?.into())
    }

    /// Every stored image, oldest import first.
    pub fn list(&self) -> Result<Vec<ImageInfo>> {
        Ok(self
            .index
            .borrow()
            .list()?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    pub(crate) fn layer_rows(&self, id: &ImageId) -> Result<Vec<LayerRow>> {
        self.row(id)?;
        self.index.borrow().layers(&id.0)
    }

    /// Extracted layer directories of an image, **top layer first** (overlay `lowerdir` order).
    pub fn layer_dirs(&self, id: &ImageId) -> Result<Vec<PathBuf>> {
        let mut dirs = Vec::new();
        for l in self.layer_rows(id)?.iter().rev() {
            let d = self.paths.layer(&l.diff_id)?;
            if !d.is_dir() {
                return Err(Error::Layer {
                    digest: l.diff_id.clone(),
                    reason: format!(
                        "extracted layer {} is missing (try rkt image verify)",
                        d.display()
                    ),
                });
            }
            dirs.push(d);
        }
        Ok(dirs)
    }

    /// The stored manifest bytes of an image (OCI manifest, or appc manifest).
    pub fn manifest_bytes(&self, id: &ImageId) -> Result<Vec<u8>> {
        let row = self.row(id)?;
        let p = self.paths.blob(&row.manifest_digest)?;
        std::fs::read(&p).map_err(io_err("reading manifest", p))
    }

    /// The app-facing configuration of an image.
    pub fn config(&self, id: &ImageId) -> Result<ImageConfig> {
        let row = self.row(id)?;
        let p = self.paths.blob(&row.config_digest)?;
        let bytes = std::fs::read(&p).map_err(io_err("reading config", &p))?;
        if row.kind == "aci" {
            Ok(manifest::parse_aci_manifest(&bytes)?.1)
        } else {
            Ok(manifest::parse_config(&bytes)?.0)
        }
    }

    /// Record that `holder` (a pod uuid) uses the image: GC never removes it while pinned.
    /// Also marks the image as used now.
    pub fn pin(&self, id: &ImageId, holder: &str) -> Result<()> {
        self.row(id)?;
        let ix = self.index.borrow();
        ix.pin(&id.0, holder)?;
        ix.touch(&id.0, now_ns())
    }

    /// Drop every pin `holder` holds.
    pub fn unpin(&self, holder: &str) -> Result<()> {
        self.index.borrow().unpin(holder)
    }

    /// Remove an image from the index (its layers and blobs go at the next `gc` if unused).
    /// An image a pod has pinned only loses its names and leaves `image list`; its layers stay
    /// until the pod unpins it.
    pub fn remove(&self, id_or_name: &str) -> Result<ImageId> {
        let id = self
            .lookup(id_or_name)?
            .ok_or_else(|| Error::NotFound(id_or_name.to_string()))?;
        let pinned = self.index.borrow().is_pinned(&id)?;
        if pinned {
            // A pod still uses it: hide it now, GC removes it once unpinned.
            self.index.borrow_mut().hide_image(&id)?;
        } else {
            self.index.borrow_mut().remove_image(&id)?;
        }
        Ok(ImageId(id))
    }

    /// Root of the content-addressed store (`<data dir>/cas`).
    pub fn cas_dir(&self) -> &Path {
        &self.paths.cas
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids() {
        let id = ImageId(format!("sha256:{}", "ab".repeat(32)));
        assert_eq!(id.short(12), format!("sha256:{}", "ab".repeat(6)));
        let id = ImageId(format!("sha512-{}", "cd".repeat(32)));
        assert_eq!(id.short(32), format!("sha512-{}", "cd".repeat(16)));
    }

    #[test]
    fn lookup_by_prefix_and_name() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let mk = |id: &str, name: &str| ImageRow {
            id: id.into(),
            name: name.into(),
            kind: "oci".into(),
            manifest_digest: id.into(),
            manifest_media_type: String::new(),
            config_digest: id.into(),
            size: 1,
            import_time: 1,
            last_used: 1,
            verification: "insecure".into(),
        };
        let a = format!("sha256:{}", "ab".repeat(32));
        let b = format!("sha256:{}", "ac".repeat(32));
        s.index
            .borrow_mut()
            .insert_image(&mk(&a, "127.0.0.1:5000/bb:v1"), &[], &[])
            .unwrap();
        s.index
            .borrow_mut()
            .insert_image(&mk(&b, "oci:/x:y"), &[], &[])
            .unwrap();
        assert_eq!(s.lookup(&a).unwrap().as_deref(), Some(a.as_str()));
        assert_eq!(
            s.lookup("sha256:abab").unwrap().as_deref(),
            Some(a.as_str())
        );
        assert_eq!(s.lookup("acac").unwrap().as_deref(), Some(b.as_str()));
        assert!(matches!(s.lookup("sha256:a"), Err(Error::Ambiguous(_))));
        assert_eq!(s.lookup("sha256:ff").unwrap(), None);
        assert_eq!(s.lookup("oci:/x:y").unwrap().as_deref(), Some(b.as_str()));
        assert_eq!(
            s.lookup("docker://127.0.0.1:5000/bb:v1")
                .unwrap()
                .as_deref(),
            Some(a.as_str())
        );
        assert_eq!(s.image("sha256:ab").unwrap().name, "127.0.0.1:5000/bb:v1");
        assert!(matches!(s.image("nope"), Err(Error::NotFound(_))));
        s.pin(&ImageId(a.clone()), "pod").unwrap();
        s.unpin("pod").unwrap();
        assert_eq!(s.remove("oci:/x:y").unwrap().0, b);
        assert_eq!(s.list().unwrap().len(), 1);
    }
}
