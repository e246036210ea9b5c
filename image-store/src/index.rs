//! The sqlite index: images, names, layers, blobs and pins.

use crate::error::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;
use std::time::Duration;

/// Newest schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = 2;

/// Migrations: entry `i` moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE images (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    manifest_media_type TEXT NOT NULL,
    config_digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    import_time INTEGER NOT NULL,
    last_used INTEGER NOT NULL,
    -- removed by `image rm` while pinned: kept for its pods, invisible otherwise
    hidden INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE names (
    name TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE TABLE layers (
    diff_id TEXT PRIMARY KEY,
    blob_digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    diff_id TEXT NOT NULL,
    PRIMARY KEY (image_id, position)
);
CREATE TABLE blobs (
    digest TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    media_type TEXT NOT NULL
);
CREATE TABLE image_blobs (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    PRIMARY KEY (image_id, digest)
);
CREATE TABLE pins (
    holder TEXT NOT NULL,
    image_id TEXT NOT NULL,
    PRIMARY KEY (holder, image_id)
);
"#,
    // 2: how each image's signature was checked (`trust::Verification`); every image stored
    // before signatures were checked was fetched with --insecure-options=image
    r#"
ALTER TABLE images ADD COLUMN verification TEXT NOT NULL DEFAULT 'insecure';
"#,
];

/// One image row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageRow {
    pub id: String,
    pub name: String,
    /// `oci` or `aci`.
    pub kind: String,
    pub manifest_digest: String,
    pub manifest_media_type: String,
    pub config_digest: String,
    pub size: u64,
    /// Nanoseconds since the epoch.
    pub import_time: i64,
    /// Nanoseconds since the epoch.
    pub last_used: i64,
    /// How its signature was checked (`trust::Verification`'s text form).
    pub verification: String,
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LayerRow {
    pub diff_id: String,
    pub blob_digest: String,
    pub media_type: String,
    pub size: u64,
}

/// A blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlobRow {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

/// The open index.
pub(crate) struct Index {
    conn: Connection,
}

fn image_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ImageRow> {
    Ok(ImageRow {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: r.get(2)?,
        manifest_digest: r.get(3)?,
        manifest_media_type: r.get(4)?,
        config_digest: r.get(5)?,
        size: r.get::<_, i64>(6)? as u64,
        import_time: r.get(7)?,
        last_used: r.get(8)?,
        verification: r.get(9)?,
    })
}

/// Pages in the WAL that make a commit checkpoint it (see [`Index::open`]).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 64;

const IMAGE_COLS: &str =
    "id, name, kind, manifest_digest, manifest_media_type, config_digest, size, import_time, last_used, verification";

impl Index {
    /// Open (creating or migrating) the index at `path`.
    pub(crate) fn open(path: &Path) -> Result<Index> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(60))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // `rkt run` execs stage1 without closing the index, so the next rkt process rebuilds
        // the WAL index by reading and checksumming every frame since the last checkpoint:
        // with SQLite's default of 1000 pages that is up to 4 MB, ≈ 1 ms of every `rkt run`
        // (each run's `last_used` update adds 3 pages). 64 pages keep that read ≤ 256 KiB;
        // the price is a checkpoint (two fsyncs) every ~20 runs.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut idx = Index { conn };
        idx.migrate()?;
        Ok(idx)
    }

    fn migrate(&mut self) -> Result<()> {
        let current: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if current > SCHEMA_VERSION {
            return Err(Error::IndexVersion {
                found: current,
                supported: SCHEMA_VERSION,
            });
        }
        if current == SCHEMA_VERSION {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)?;
        // Re-read under the write lock: another process may have migrated meanwhile.
        let current: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (v, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (v + 1) as i64)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Record a fully committed image (layers and blobs already on disk).
    pub(crate) fn insert_image(
        &mut self,
        img: &ImageRow,
        layers: &[LayerRow],
        blobs: &[BlobRow],
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for b in blobs {
            tx.execute(
                "INSERT OR IGNORE INTO blobs (digest, size, media_type) VALUES (?1, ?2, ?3)",
                params![b.digest, b.size as i64, b.media_type],
            )?;
        }
        for l in layers {
            tx.execute(
                "INSERT OR IGNORE INTO layers (diff_id, blob_digest, media_type, size) VALUES (?1, ?2, ?3, ?4)",
                params![l.diff_id, l.blob_digest, l.media_type, l.size as i64],
            )?;
        }
        let exists: bool = tx
            .query_row("SELECT 1 FROM images WHERE id = ?1", [&img.id], |_| {
                Ok(true)
            })
            .optional()?
            .unwrap_or(false);
        if exists {
            tx.execute(
                "UPDATE images SET name = ?2, last_used = ?3, verification = ?4, hidden = 0 WHERE id = ?1",
                params![img.id, img.name, img.last_used, img.verification],
            )?;
        } else {
            tx.execute(
                &format!(
                    "INSERT INTO images ({IMAGE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![
                    img.id,
                    img.name,
                    img.kind,
                    img.manifest_digest,
                    img.manifest_media_type,
                    img.config_digest,
                    img.size as i64,
                    img.import_time,
                    img.last_used,
                    img.verification
                ],
            )?;
            for (i, l) in layers.iter().enumerate() {
                tx.execute(
                    "INSERT INTO image_layers (image_id, position, diff_id) VALUES (?1, ?2, ?3)",
                    params![img.id, i as i64, l.diff_id],
                )?;
            }
            for b in blobs {
                tx.execute(
                    "INSERT OR IGNORE INTO image_blobs (image_id, digest) VALUES (?1, ?2)",
                    params![img.id, b.digest],
                )?;
            }
        }
        tx.execute(
            "INSERT INTO names (name, image_id) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
            params![img.name, img.id],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// An image by exact id.
    pub(crate) fn get(&self, id: &str) -> Result<Option<ImageRow>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {IMAGE_COLS} FROM images WHERE id = ?1"),
                [id],
                image_from_row,
            )
            .optional()?)
    }

    /// Ids starting with `prefix`.
    pub(crate) fn ids_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let escaped = prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let mut st = self.conn.prepare(
            "SELECT id FROM images WHERE hidden = 0 AND id LIKE ?1 ESCAPE '\\' ORDER BY id",
        )?;
        let rows = st.query_map([format!("{escaped}%")], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The image a name currently points to.
    pub(crate) fn by_name(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT image_id FROM names WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Every name that points to image `id`, sorted.
    pub(crate) fn names_of(&self, id: &str) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT name FROM names WHERE image_id = ?1 ORDER BY name")?;
        let rows = st.query_map([id], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// All visible images.
    pub(crate) fn list(&self) -> Result<Vec<ImageRow>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {IMAGE_COLS} FROM images WHERE hidden = 0 ORDER BY import_time"
        ))?;
        let rows = st.query_map([], image_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Images removed while pinned.
    pub(crate) fn hidden(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT id FROM images WHERE hidden = 1")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Hide an image (`image rm` of a pinned image): no names, not listed, kept for its pods.
    pub(crate) fn hide_image(&mut self, id: &str) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("UPDATE images SET hidden = 1 WHERE id = ?1", [id])?;
        tx.execute("DELETE FROM names WHERE image_id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    /// Layers of an image, bottom first.
    pub(crate) fn layers(&self, id: &str) -> Result<Vec<LayerRow>> {
        let mut st = self.conn.prepare(
            "SELECT l.diff_id, l.blob_digest, l.media_type, l.size FROM image_layers il \
             JOIN layers l ON l.diff_id = il.diff_id WHERE il.image_id = ?1 ORDER BY il.position",
        )?;
        let rows = st.query_map([id], |r| {
            Ok(LayerRow {
                diff_id: r.get(0)?,
                blob_digest: r.get(1)?,
                media_type: r.get(2)?,
                size: r.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Blobs an image references.
    pub(crate) fn blobs(&self, id: &str) -> Result<Vec<BlobRow>> {
        let mut st = self.conn.prepare(
            "SELECT b.digest, b.size, b.media_type FROM image_blobs ib JOIN blobs b ON b.digest = ib.digest \
             WHERE ib.image_id = ?1 ORDER BY b.digest",
        )?;
        let rows = st.query_map([id], |r| {
            Ok(BlobRow {
                digest: r.get(0)?,
                size: r.get::<_, i64>(1)? as u64,
                media_type: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Mark an image used now.
    pub(crate) fn touch(&self, id: &str, now: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE images SET last_used = ?2 WHERE id = ?1",
            params![id, now],
        )?;
        Ok(())
    }

    /// Remove an image row (names and layer/blob references go with it).
    pub(crate) fn remove_image(&mut self, id: &str) -> Result<bool> {
        let n = self
            .conn
            .execute("DELETE FROM images WHERE id = ?1", [id])?;
        Ok(n > 0)
    }

    /// Pin an image for a holder.
    pub(crate) fn pin(&self, id: &str, holder: &str) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO pins (holder, image_id) VALUES (?1, ?2)",
            params![holder, id],
        )?;
        Ok(())
    }

    /// Drop every pin of a holder.
    pub(crate) fn unpin(&self, holder: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM pins WHERE holder = ?1", [holder])?;
        Ok(())
    }

    /// Whether anyone pins the image.
    pub(crate) fn is_pinned(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM pins WHERE image_id = ?1 LIMIT 1",
                [id],
                |_| Ok(true),
            )
            .optional()?
            .unwrap_or(false))
    }

    /// Layers no image references; their rows are deleted and their diff ids returned.
    pub(crate) fn drop_unreferenced_layers(&mut self) -> Result<Vec<String>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ids: Vec<String> = {
            let mut st = tx.prepare(
                "SELECT diff_id FROM layers WHERE diff_id NOT IN (SELECT diff_id FROM image_layers)",
            )?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for id in &ids {
            tx.execute("DELETE FROM layers WHERE diff_id = ?1", [id])?;
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Blobs no image references; their rows are deleted and their digests returned.
    pub(crate) fn drop_unreferenced_blobs(&mut self) -> Result<Vec<String>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ids: Vec<String> = {
            let mut st = tx.prepare(
                "SELECT digest FROM blobs WHERE digest NOT IN (SELECT digest FROM image_blobs)",
            )?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for id in &ids {
            tx.execute("DELETE FROM blobs WHERE digest = ?1", [id])?;
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Every layer diff id recorded (for GC of stray directories).
    pub(crate) fn all_layers(&self) -> Result<Vec<String>> {
        let mut st = self.conn.prepare("SELECT diff_id FROM layers")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every blob digest recorded.
    pub(crate) fn all_blobs(&self) -> Result<Vec<String>> {
        let mut st = self.conn.prepare("SELECT digest FROM blobs")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(id: &str, name: &str) -> ImageRow {
        ImageRow {
            id: id.into(),
            name: name.into(),
            kind: "oci".into(),
            manifest_digest: id.into(),
            manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            config_digest: "sha256:c".into(),
            size: 10,
            import_time: 1,
            last_used: 1,
            verification: "insecure".into(),
        }
    }
    fn layer(d: &str) -> LayerRow {
        LayerRow {
            diff_id: d.into(),
            blob_digest: format!("{d}-blob"),
            media_type: "tar".into(),
            size: 1,
        }
    }
    fn blob(d: &str) -> BlobRow {
        BlobRow {
            digest: d.into(),
            size: 1,
            media_type: "x".into(),
        }
    }

    #[test]
    fn insert_lookup_and_gc() {
        let d = tempfile::tempdir().unwrap();
        let mut ix = Index::open(&d.path().join("index.db")).unwrap();
        ix.insert_image(
            &img("sha256:aa11", "r/a:1"),
            &[layer("L1"), layer("L2")],
            &[blob("B1")],
        )
        .unwrap();
        ix.insert_image(
            &img("sha256:aa22", "r/b:1"),
            &[layer("L2")],
            &[blob("B1"), blob("B2")],
        )
        .unwrap();
        assert_eq!(ix.ids_with_prefix("sha256:aa").unwrap().len(), 2);
        assert_eq!(
            ix.ids_with_prefix("sha256:aa1").unwrap(),
            vec!["sha256:aa11"]
        );
        assert!(ix.ids_with_prefix("sha256:a_").unwrap().is_empty());
        assert_eq!(ix.by_name("r/b:1").unwrap().as_deref(), Some("sha256:aa22"));
        let ls: Vec<_> = ix
            .layers("sha256:aa11")
            .unwrap()
            .into_iter()
            .map(|l| l.diff_id)
            .collect();
        assert_eq!(ls, vec!["L1", "L2"]);
        // Re-insert under the same name moves the name.
        ix.insert_image(&img("sha256:aa33", "r/a:1"), &[layer("L1")], &[])
            .unwrap();
        assert_eq!(ix.by_name("r/a:1").unwrap().as_deref(), Some("sha256:aa33"));

        ix.pin("sha256:aa22", "pod1").unwrap();
        assert!(ix.is_pinned("sha256:aa22").unwrap());
        ix.unpin("pod1").unwrap();
        assert!(!ix.is_pinned("sha256:aa22").unwrap());

        assert!(ix.remove_image("sha256:aa11").unwrap());
        assert!(ix.drop_unreferenced_layers().unwrap().is_empty());
        assert!(ix.remove_image("sha256:aa33").unwrap());
        assert_eq!(ix.drop_unreferenced_layers().unwrap(), vec!["L1"]);
        assert!(ix.drop_unreferenced_blobs().unwrap().is_empty());
        assert!(ix.remove_image("sha256:aa22").unwrap());
        let mut b = ix.drop_unreferenced_blobs().unwrap();
        b.sort();
        assert_eq!(b, vec!["B1", "B2"]);
    }

    /// Every writer keeps the WAL short, so the next `rkt` process (after an exec that never
    /// closed the index) reads little of it.
    #[test]
    fn wal_is_checkpointed_early() {
        let d = tempfile::tempdir().unwrap();
        let ix = Index::open(&d.path().join("index.db")).unwrap();
        let pages: i64 = ix
            .conn
            .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
            .unwrap();
        assert_eq!(pages, WAL_AUTOCHECKPOINT_PAGES);
        let mode: String = ix
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn newer_schema_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("index.db");
        drop(Index::open(&p).unwrap());
        let c = Connection::open(&p).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        assert!(matches!(
            Index::open(&p),
            Err(Error::IndexVersion { found: 99, .. })
        ));
        // Reopening at the current version is a no-op.
    }
}
