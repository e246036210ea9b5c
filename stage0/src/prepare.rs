//! Creating a pod: validate → allocate UUID → resolve images → `embryo/` → lock → `prepare/` →
//! write `pod`, `pod-created`, per-app dirs → mount each app's rootfs as overlayfs. Empty
//! volumes' dirs (`volumes/<name>`, with mode, owner and Docker-style pre-population) are
//! stage1's to create, at start.
//!
//! Failure policy: every check that needs no pod dir runs before one exists, so bad input leaves
//! nothing. A failure after the pod dir exists unmounts what was mounted, unpins the images,
//! moves the pod to `garbage/` and deletes it ([`PreparingPod`]'s `Drop`); a crash in between
//! leaves an unlocked pod in `prepare/` ("aborted prepare") or `garbage/`, which `rkt gc`
//! removes. No pod is ever left visible half-mounted by a live rkt.

use serde::{Deserialize, Serialize};
use stage1_abi::{paths, PodManifest};
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::images::{Images, ResolveOptions};
use crate::manifest::{self, ResolvedImage};
use crate::mount::Mounter;
use crate::pods::{LockedPod, Phase, Pods};
use crate::request::PodRequest;
use crate::userns::{self, PrivateUsers};
use crate::{Error, Result};
use stage1_abi::IdRange;

/// `apps/<app>/image`: which image an app came from and the layer dirs its overlay uses
/// (kept so `run-prepared` can mount again, e.g. after a reboot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppImage {
    /// Store image id.
    pub id: String,
    /// Image name.
    pub name: String,
    /// Extracted layer dirs, top first.
    pub layers: Vec<PathBuf>,
}

/// Everything `rkt prepare` / `rkt run` need to create a pod.
#[derive(Debug, Clone, Default)]
pub struct PrepareOptions {
    /// What the user asked for.
    pub request: PodRequest,
    /// How to resolve images.
    pub resolve: ResolveOptions,
    /// `--uuid-file-save`: written right after the UUID is allocated.
    pub uuid_file_save: Option<PathBuf>,
    /// The caller's environment (for `--inherit-env`).
    pub host_env: Vec<(String, String)>,
    /// A fixed UUID (tests); random v4 otherwise.
    pub uuid: Option<String>,
    /// `--private-users`: the pod gets its own user namespace (`crate::userns`).
    pub private_users: Option<PrivateUsers>,
    /// The `userns` config kind's pool, if configured.
    pub userns_ranges: Option<Vec<String>>,
}

/// The services a prepare needs.
pub struct Preparer<'a> {
    /// The data dir (`--dir`).
    pub data_dir: &'a Path,
    /// The image store.
    pub images: &'a dyn Images,
    /// Mount operations.
    pub mounter: &'a dyn Mounter,
}

/// A pod in `prepare/` (or later phases) that this process holds locked, with its rootfs
/// overlays mounted. Dropping it without [`PreparingPod::finish_prepare`] or a successful exec
/// undoes everything.
pub struct PreparingPod<'a> {
    pod: Option<LockedPod>,
    manifest: PodManifest,
    mounted: Vec<PathBuf>,
    images: &'a dyn Images,
    mounter: &'a dyn Mounter,
}

impl<'a> Preparer<'a> {
    /// Create and prepare a pod; it is left in `prepare/`, locked, with its apps mounted.
    pub fn prepare(&self, opts: &PrepareOptions) -> Result<PreparingPod<'a>> {
        let req = &opts.request;
        req.check()?;
        let uuid = self.new_uuid(opts)?;
        let mut resolved = Vec::new();
        let mut layers = Vec::new();
        for app in &req.apps {
            let img_err = |e: crate::images::ImageError| Error::Image(e.to_string());
            let id = self
                .images
                .resolve(&app.image, &opts.resolve)
                .map_err(img_err)?;
            let meta = self.images.meta(&id).map_err(img_err)?;
            let config = self.images.config(&id).map_err(img_err)?;
            layers.push(self.images.layer_dirs(&id).map_err(img_err)?);
            resolved.push(ResolvedImage { meta, config });
        }
        let manifest = manifest::build(&uuid, req, &resolved, &opts.host_env)?;
        self.create(manifest, &layers, opts)
    }

    /// `--pod-manifest`: prepare a pod from a given manifest (the format `rkt cat-manifest`
    /// prints). Each app's image is resolved by its `id` if set, else its `name`; the UUID is
    /// always a new one. `opts.request` is ignored.
    pub fn prepare_manifest(
        &self,
        mut manifest: PodManifest,
        opts: &PrepareOptions,
    ) -> Result<PreparingPod<'a>> {
        manifest.validate()?;
        let space = crate::exec_limits::arg_space(crate::exec_limits::stack_limit());
        for app in &manifest.apps {
            crate::exec_limits::check_app(app, space)?;
        }
        for v in &manifest.volumes {
            if let stage1_abi::VolumeKind::Host { source, .. } = &v.kind {
                fs::metadata(source).map_err(|e| {
                    Error::usage(format!("host volume {:?}: source {source:?}: {e}", v.name))
                })?;
            }
        }
        let uuid = self.new_uuid(opts)?;
        manifest.uuid = uuid;
        let mut layers = Vec::new();
        for app in &mut manifest.apps {
            let img_err = |e: crate::images::ImageError| Error::Image(e.to_string());
            let wanted = if app.image.id.is_empty() {
                &app.image.name
            } else {
                &app.image.id
            };
            let id = self
                .images
                .resolve(wanted, &opts.resolve)
                .map_err(img_err)?;
            let meta = self.images.meta(&id).map_err(img_err)?;
            app.image.id = meta.id;
            if app.image.name.is_empty() {
                app.image.name = meta.name;
            }
            layers.push(self.images.layer_dirs(&id).map_err(img_err)?);
        }
        self.create(manifest, &layers, opts)
    }

    fn new_uuid(&self, opts: &PrepareOptions) -> Result<String> {
        let uuid = opts
            .uuid
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if let Some(f) = &opts.uuid_file_save {
            fs::write(f, &uuid).map_err(|e| Error::io("writing uuid file", f, e))?;
        }
        Ok(uuid)
    }

    fn create(
        &self,
        manifest: PodManifest,
        layers: &[Vec<PathBuf>],
        opts: &PrepareOptions,
    ) -> Result<PreparingPod<'a>> {
        // a manifest's own range (`--pod-manifest`) is asked for as given
        let want = opts
            .private_users
            .or(manifest.private_users.map(PrivateUsers::Range));
        manifest.check_idmapped_volumes(want.is_some())?;
        let pods = Pods::new(self.data_dir);
        let pod = pods.create(&manifest.uuid)?;
        let dir = pod.path();
        // the pod exists from here on: dropping `p` on an error removes it (claim included)
        let mut p = PreparingPod {
            pod: Some(pod),
            manifest,
            mounted: Vec::new(),
            images: self.images,
            mounter: self.mounter,
        };
        p.manifest.private_users = match want {
            Some(w) => {
                let r = userns::claim(self.data_dir, &dir, w, || {
                    userns::Pool::load(opts.userns_ranges.as_deref())
                })?;
                userns::open_path_to_pod(self.data_dir, &dir, r)?;
                Some(r)
            }
            None => None,
        };
        p.populate(layers)?;
        Ok(p)
    }
}

/// Write a pod-dir JSON file by the pod-dir rule (`stage1_abi::write_atomic`).
pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    Ok(stage1_abi::write_json_atomic(path, value)?)
}

pub(crate) fn mkdir(path: &Path, mode: u32) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| Error::io("creating dir", path, e))
}

/// Mount one app's overlay under `pod_dir` from its `apps/<app>/image` record.
pub(crate) fn mount_app(
    mounter: &dyn Mounter,
    pod_dir: &Path,
    app: &str,
    layers: &[PathBuf],
    idmap: Option<IdRange>,
) -> Result<PathBuf> {
    let rootfs = pod_dir.join(paths::app_rootfs(app));
    let (upper, work) = (
        pod_dir.join(paths::app_upper(app)),
        pod_dir.join(paths::app_work(app)),
    );
    for d in [&rootfs, &upper, &work] {
        mkdir(d, 0o755)?;
    }
    if let Some(r) = idmap {
        // the writable layer's root is the app's `/`: owned by the pod's root, so files the
        // app creates in it belong to the pod's ids on the host
        let root = Some(nix::unistd::Uid::from_raw(r.shift));
        nix::unistd::chown(&upper, root, Some(nix::unistd::Gid::from_raw(r.shift))).map_err(
            |e| {
                Error::io(
                    "giving the writable layer to the pod's root",
                    &upper,
                    e.into(),
                )
            },
        )?;
    }
    // mounted before (volatile): overlayfs wants its scratch dir gone before it mounts again
    if crate::mount::clear_volatile_mark(&work, crate::mount::booted_at)
        .map_err(|e| Error::io("clearing the overlay work dir", &work, e))?
    {
        tracing::warn!(
            "app {app:?}: the host restarted since its writable layer was mounted; \
             if that was a crash, what the app wrote last may be incomplete"
        );
    }
    // overlayfs needs at least one lower dir; an image without layers gets an empty one.
    let mut lower = layers.to_vec();
    if lower.is_empty() {
        let empty = pod_dir
            .join(paths::app_dir(app))
            .join(paths::APP_EMPTY_LOWER);
        mkdir(&empty, 0o755)?;
        lower.push(empty);
    }
    mounter
        .mount_overlay(&lower, &upper, &work, &rootfs, idmap)
        .map_err(|e| Error::io("mounting overlay rootfs", &rootfs, e))?;
    Ok(rootfs)
}

/// Mount every app of the pod at `pod_dir` that is not mounted yet (run-prepared, after a
/// reboot). Returns what this call mounted.
pub fn mount_apps(
    mounter: &dyn Mounter,
    pod_dir: &Path,
    manifest: &PodManifest,
) -> Result<Vec<PathBuf>> {
    let mut mounted = Vec::new();
    let res = (|| {
        for app in &manifest.apps {
            let rootfs = pod_dir.join(paths::app_rootfs(&app.name));
            if mounter.is_mounted(&rootfs).unwrap_or(false) {
                continue;
            }
            let rec_path = pod_dir.join(paths::app_image(&app.name));
            let rec: AppImage = stage1_abi::read_json(&rec_path)?;
            mounted.push(mount_app(
                mounter,
                pod_dir,
                &app.name,
                &rec.layers,
                manifest.private_users,
            )?);
        }
        Ok(())
    })();
    if let Err(e) = res {
        unmount_all(mounter, &mounted);
        return Err(e);
    }
    Ok(mounted)
}

/// Unmount in reverse order, best effort.
pub fn unmount_all(mounter: &dyn Mounter, mounted: &[PathBuf]) {
    for m in mounted.iter().rev() {
        if let Err(e) = mounter.unmount(m) {
            tracing::warn!("unmounting {}: {e}", m.display());
        }
    }
}

impl<'a> PreparingPod<'a> {
    /// The pod UUID.
    pub fn uuid(&self) -> &str {
        &self.manifest.uuid
    }
    /// The pod manifest.
    pub fn manifest(&self) -> &PodManifest {
        &self.manifest
    }
    /// The pod dir now.
    pub fn path(&self) -> PathBuf {
        self.pod.as_ref().map(|p| p.path()).unwrap_or_default()
    }

    fn populate(&mut self, layers: &[Vec<PathBuf>]) -> Result<()> {
        let dir = self.path();
        let uuid = self.uuid().to_string();
        for app in &self.manifest.apps {
            self.images
                .pin(&app.image.id, &uuid)
                .map_err(|e| Error::Image(e.to_string()))?;
        }
        let created = dir.join(paths::POD_CREATED);
        fs::write(&created, b"").map_err(|e| Error::io("writing", &created, e))?;
        for (app, layers) in self.manifest.apps.iter().zip(layers) {
            mkdir(&dir.join(paths::app_dir(&app.name)), 0o755)?;
            let rec = AppImage {
                id: app.image.id.clone(),
                name: app.image.name.clone(),
                layers: layers.clone(),
            };
            let rec_path = dir.join(paths::app_image(&app.name));
            write_json(&rec_path, &rec)?;
        }
        for (app, layers) in self.manifest.apps.iter().zip(layers) {
            let rootfs = mount_app(
                self.mounter,
                &dir,
                &app.name,
                layers,
                self.manifest.private_users,
            )?;
            self.mounted.push(rootfs);
        }
        // an image VOLUME's mode and owner are stage1's to read, inside the rootfs
        // (stage1/src/app/volumes.rs): a path joined here could follow the image's links out of it
        write_json(&dir.join(paths::POD_MANIFEST), &self.manifest)
    }

    /// `rkt prepare`: unmount (prepared pods hold no mounts; `run-prepared` mounts), move to
    /// `prepared/`, unlock. Returns the UUID.
    pub fn finish_prepare(mut self) -> Result<String> {
        unmount_all(self.mounter, &self.mounted);
        self.mounted.clear();
        let mut pod = self.pod.take().expect("pod present until finished");
        if let Err(e) = pod.transition(Phase::Prepared) {
            self.pod = Some(pod);
            return Err(e);
        }
        pod.unlock();
        Ok(self.manifest.uuid.clone())
    }

    /// `rkt run`: move to `run/` keeping the lock and the mounts. The caller execs stage1; if
    /// that fails, dropping the returned guard undoes the pod.
    pub fn into_running(mut self) -> Result<Self> {
        let pod = self.pod.as_mut().expect("pod present until finished");
        pod.transition(Phase::Run)?;
        Ok(self)
    }

    /// The locked pod (for the exec of stage1).
    pub fn locked(&self) -> &LockedPod {
        self.pod.as_ref().expect("pod present until finished")
    }
}

/// Undo a pod this process created: unmount, unpin, move to `garbage/`, delete.
fn discard(pod: LockedPod, mounted: &[PathBuf], images: &dyn Images, mounter: &dyn Mounter) {
    unmount_all(mounter, mounted);
    if let Err(e) = images.unpin(pod.uuid()) {
        tracing::warn!("unpinning images of pod {}: {e}", pod.uuid());
    }
    let mut pod = pod;
    let uuid = pod.uuid().to_string();
    if pod.phase() != Phase::Garbage {
        if let Err(e) = pod.transition(Phase::Garbage) {
            tracing::warn!("moving pod {uuid} to garbage: {e}");
            return;
        }
    }
    let path = pod.path();
    if let Err(e) = fs::remove_dir_all(&path) {
        tracing::warn!("removing pod dir {}: {e}", path.display());
    }
    pod.unlock();
}

impl Drop for PreparingPod<'_> {
    fn drop(&mut self) {
        if let Some(pod) = self.pod.take() {
            discard(pod, &self.mounted, self.images, self.mounter);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::fake::FakeImages;
    use crate::images::ImageConfig;
    use crate::mount::fake::FakeMounter;
    use crate::request::AppRequest;

    const U: &str = "11111111-2222-4333-8444-555555555555";

    fn setup() -> (tempfile::TempDir, FakeImages) {
        let d = tempfile::tempdir().unwrap();
        let mut imgs = FakeImages::default();
        let l = d.path().join("layers/l1");
        fs::create_dir_all(&l).unwrap();
        imgs.add(
            "busybox",
            ImageConfig {
                cmd: vec!["sh".into()],
                volumes: vec!["/data".into()],
                ..Default::default()
            },
            vec![l],
        );
        imgs.add(
            "nolayers",
            ImageConfig {
                cmd: vec!["x".into()],
                ..Default::default()
            },
            vec![],
        );
        (d, imgs)
    }

    fn opts(images: &str) -> PrepareOptions {
        PrepareOptions {
            request: PodRequest {
                apps: images
                    .split_whitespace()
                    .map(|i| AppRequest {
                        image: i.into(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
            uuid: Some(U.into()),
            private_users: None,
            userns_ranges: None,
            ..Default::default()
        }
    }

    #[test]
    fn prepare_then_finish_leaves_a_prepared_pod_without_mounts() {
        let (d, imgs) = setup();
        let m = FakeMounter::default();
        let data = d.path().join("data");
        let p = Preparer {
            data_dir: &data,
            images: &imgs,
            mounter: &m,
        };
        let mut o = opts("busybox nolayers");
        o.uuid_file_save = Some(d.path().join("uuid"));
        let pod = p.prepare(&o).unwrap();
        assert_eq!(fs::read_to_string(d.path().join("uuid")).unwrap(), U);
        let dir = pod.path();
        assert!(dir.ends_with(format!("pods/prepare/{U}")));
        assert_eq!(m.mounted.borrow().len(), 2);
        assert!(dir.join("pod").is_file() && dir.join("pod-created").is_file());
        assert!(dir.join("apps/busybox/image").is_file());
        assert!(dir.join("apps/nolayers/empty").is_dir());
        assert_eq!(imgs.pins.borrow().len(), 2);
        let uuid = pod.finish_prepare().unwrap();
        assert_eq!(uuid, U);
        assert!(m.mounted.borrow().is_empty());
        let pods = Pods::new(&data);
        assert_eq!(
            pods.state(U).unwrap(),
            Some((Phase::Prepared, crate::pods::State::Prepared))
        );
        // run-prepared mounts again from the records
        let dir = pods.path(Phase::Prepared, U);
        let man: PodManifest = stage1_abi::read_json(&dir.join("pod")).unwrap();
        assert_eq!(mount_apps(&m, &dir, &man).unwrap().len(), 2);
        assert_eq!(mount_apps(&m, &dir, &man).unwrap().len(), 0);
    }

    #[test]
    fn a_mount_failure_leaves_nothing() {
        let (d, imgs) = setup();
        let m = FakeMounter {
            fail_on: Some("nolayers".into()),
            ..Default::default()
        };
        let data = d.path().join("data");
        let p = Preparer {
            data_dir: &data,
            images: &imgs,
            mounter: &m,
        };
        let e = p.prepare(&opts("busybox nolayers")).err().unwrap();
        assert!(e.to_string().contains("mounting overlay rootfs"), "{e}");
        assert!(m.mounted.borrow().is_empty());
        assert!(imgs.pins.borrow().is_empty());
        let pods = Pods::new(&data);
        assert_eq!(pods.locate(U), None);
    }

    #[test]
    fn bad_input_creates_no_pod() {
        let (d, imgs) = setup();
        let m = FakeMounter::default();
        let data = d.path().join("data");
        let p = Preparer {
            data_dir: &data,
            images: &imgs,
            mounter: &m,
        };
        let mut dangling = opts("busybox");
        dangling.request.apps[0]
            .flags
            .mounts
            .push(crate::flags::parse_mount("volume=x,target=/x").unwrap());
        for (o, msg) in [
            (opts("busybox busybox"), "multiple apps with name busybox"),
            (opts("unknown"), "image \"unknown\" not found"),
            (dangling, "dangling mount point"),
        ] {
            let e = p.prepare(&o).err().unwrap();
            assert!(e.to_string().contains(msg), "{msg}: {e}");
        }
        assert!(!data.join("pods").exists() || Pods::new(&data).locate(U).is_none());
    }

    #[test]
    fn dropping_a_running_pod_guard_discards_it() {
        let (d, imgs) = setup();
        let m = FakeMounter::default();
        let data = d.path().join("data");
        let p = Preparer {
            data_dir: &data,
            images: &imgs,
            mounter: &m,
        };
        let pod = p.prepare(&opts("busybox")).unwrap().into_running().unwrap();
        assert!(pod.path().ends_with(format!("pods/run/{U}")));
        drop(pod);
        assert!(m.mounted.borrow().is_empty());
        assert_eq!(Pods::new(&data).locate(U), None);
    }

    #[test]
    fn a_pod_manifest_is_prepared_with_a_new_uuid_and_resolved_images() {
        let (d, imgs) = setup();
        let m = FakeMounter::default();
        let data = d.path().join("data");
        let p = Preparer {
            data_dir: &data,
            images: &imgs,
            mounter: &m,
        };
        let first = p.prepare(&opts("busybox")).unwrap();
        let mut man = first.manifest().clone();
        first.finish_prepare().unwrap();
        man.apps[0].image.id.clear();
        let mut o = opts("");
        o.uuid = Some("22222222-2222-4333-8444-555555555555".into());
        let pod = p.prepare_manifest(man.clone(), &o).unwrap();
        assert_eq!(pod.uuid(), "22222222-2222-4333-8444-555555555555");
        assert!(pod.manifest().apps[0].image.id.starts_with("sha256:"));
        drop(pod);
        man.apps.clear();
        assert!(p.prepare_manifest(man, &o).is_err());
    }
}
