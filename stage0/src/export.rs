//! `rkt export [--app=A] UUID FILE`: an exited pod's app root filesystem (the overlay's merged
//! view: image layers plus what the app changed) as a new single-layer OCI image archive,
//! importable with `rkt fetch oci-archive:FILE`. The image config (entrypoint, cmd, env, …) is
//! the app's original image's. This module finds, locks and mounts the app; the image-store's
//! [`image_store::oci_archive::write_rootfs_image`] writes the image.

use stage1_abi::{paths, PodManifest};
use std::path::PathBuf;

use crate::images::Images;
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
    let ids = m.private_users.map(|r| (r.shift, r.count));
    let result = image_store::oci_archive::write_rootfs_image(&rootfs, &cfg, &req.out, ids);
    prepare::unmount_all(mounter, &mounted);
    drop(pod);
    result.map_err(|e| Error::io("exporting pod to", &req.out, e))
}
