//! Image garbage collection, under the exclusive store lock: no fetch or pod preparation in any
//! other process is using the store meanwhile.

use crate::error::{io_err, Result};
use crate::store::{now_ns, ImageId, Store};
use crate::tree::remove_tree;
use serde::Serialize;
use std::collections::HashSet;
use std::time::Duration;

/// What a GC removed.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct GcReport {
    /// Images removed (unused for longer than the grace period, not pinned).
    pub removed_images: Vec<ImageId>,
    /// Extracted layers removed.
    pub removed_layers: usize,
    /// Blobs removed.
    pub removed_blobs: usize,
    /// Leftovers of interrupted fetches removed from `cas/tmp`.
    pub removed_tmp: usize,
}

impl Store {
    /// Remove images not used for `grace_period` and not pinned, then every layer, blob and
    /// temporary file no remaining image needs.
    pub fn gc(&self, grace_period: Duration) -> Result<GcReport> {
        self.lock_exclusive()?;
        let r = self.gc_locked(grace_period);
        let back = self.lock_shared();
        let r = r?;
        back?;
        Ok(r)
    }

    fn gc_locked(&self, grace_period: Duration) -> Result<GcReport> {
        let mut report = GcReport::default();
        // 1. Debris of interrupted fetches: nobody else holds the store lock, so it is all dead.
        let tmp = self.paths.tmp();
        for e in std::fs::read_dir(&tmp).map_err(io_err("reading", &tmp))? {
            let e = e.map_err(io_err("reading", &tmp))?;
            remove_tree(&e.path())?;
            report.removed_tmp += 1;
        }
        // 2. Images past the grace period.
        let cutoff = now_ns() - grace_period.as_nanos().min(i64::MAX as u128) as i64;
        for img in self.index.borrow().list()? {
            if img.last_used <= cutoff && !self.index.borrow().is_pinned(&img.id)? {
                report.removed_images.push(ImageId(img.id));
            }
        }
        for id in self.index.borrow().hidden()? {
            if !self.index.borrow().is_pinned(&id)? {
                report.removed_images.push(ImageId(id));
            }
        }
        for id in &report.removed_images {
            tracing::debug!(%id, "removing image");
            self.index.borrow_mut().remove_image(&id.0)?;
        }
        // 3. Layers and blobs nobody references, recorded or stray (committed by a fetch that
        //    died before writing its index row).
        self.index.borrow_mut().drop_unreferenced_layers()?;
        self.index.borrow_mut().drop_unreferenced_blobs()?;
        let keep_layers: HashSet<String> = self
            .index
            .borrow()
            .all_layers()?
            .into_iter()
            .filter_map(|d| d.strip_prefix("sha256:").map(str::to_string))
            .collect();
        let keep_blobs: HashSet<String> = self
            .index
            .borrow()
            .all_blobs()?
            .into_iter()
            .filter_map(|d| d.strip_prefix("sha256:").map(str::to_string))
            .collect();
        let layers = self.paths.cas.join("layers");
        for e in std::fs::read_dir(&layers).map_err(io_err("reading", &layers))? {
            let e = e.map_err(io_err("reading", &layers))?;
            if !keep_layers.contains(e.file_name().to_string_lossy().as_ref()) {
                remove_tree(&e.path())?;
                report.removed_layers += 1;
            }
        }
        let blobs = self.paths.cas.join("blobs/sha256");
        for e in std::fs::read_dir(&blobs).map_err(io_err("reading", &blobs))? {
            let e = e.map_err(io_err("reading", &blobs))?;
            if !keep_blobs.contains(e.file_name().to_string_lossy().as_ref()) {
                std::fs::remove_file(e.path()).map_err(io_err("removing", e.path()))?;
                report.removed_blobs += 1;
            }
        }
        Ok(report)
    }
}
