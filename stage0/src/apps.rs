//! Mutable pods: the app-level API (`rkt app sandbox|add|start|stop|rm|list|status|exec`).
//!
//! A mutable pod is a running pod (`pods/run/<uuid>`, locked by its stage1 for its life) whose
//! manifest says `mutable`. Its apps change while it runs, with no daemon:
//!
//! * stage0 changes the pod dir — an app's rootfs (mounted as at prepare), its `apps/<app>`
//!   records and the manifest (rewritten atomically) — holding the pod's
//!   [`paths::APPS_LOCK`] flock, so two `rkt app` commands never interleave;
//! * stage1 starts, stops and forgets the app's processes when asked on the pod's control
//!   socket ([`stage1_abi::control`]), from the loop that reaps them.
//!
//! So an app is *created* once `add` returned (in the manifest, rootfs mounted, no status
//! record), *running* once `start` returned (its status record has a pid), *exited* once
//! stage1 reaped it (its record has the exit code); it can be started again, and `rm` removes
//! it (stopping it first).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::Flock;
use stage1_abi::control::{self, Request};
use stage1_abi::{paths, App, AppStatus, PodManifest, Volume};

use crate::images::{Images, ResolveOptions};
use crate::manifest::{self, ResolvedImage};
use crate::mount::Mounter;
use crate::pods::{Pods, State};
use crate::prepare::AppImage;
use crate::request::{AppRequest, PodRequest};
use crate::{Error, Result};

/// `apps/<app>/volumes`: the names of the volumes `add` put into the manifest for this app
/// (`rm` takes them out again).
const APP_VOLUMES: &str = "volumes";

/// How long stage1 may take to answer a control request (a start creates a container).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);

/// An app to add to a mutable pod.
#[derive(Debug, Clone, Default)]
pub struct AppAddRequest {
    /// The image with its per-app settings and arguments (as one app of `rkt run`).
    pub app: AppRequest,
    /// Volumes the app brings (host paths or empty dirs); their names must be new in the pod.
    pub volumes: Vec<Volume>,
    /// The CRI's settings beyond rkt's app flags.
    pub cri: Option<stage1_abi::CriApp>,
}

/// Where an app of a mutable pod stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppState {
    /// Added, never started.
    Created,
    /// Its process runs.
    Running,
    /// It ran and ended (or the pod ended).
    Exited,
}

impl AppState {
    /// `created`, `running`, `exited`.
    pub fn as_str(self) -> &'static str {
        match self {
            AppState::Created => "created",
            AppState::Running => "running",
            AppState::Exited => "exited",
        }
    }
}

/// One app of a pod as `rkt app list`/`status` show it.
#[derive(Debug, Clone)]
pub struct AppInfo {
    /// The app as the manifest has it.
    pub app: App,
    /// Where it stands.
    pub state: AppState,
    /// stage1's record of its last run, if it ran.
    pub status: Option<AppStatus>,
}

/// A running mutable pod: its UUID, dir and manifest.
pub(crate) struct MutablePod {
    pub uuid: String,
    pub dir: PathBuf,
}

/// Find `uuid_arg` and check it is a running mutable pod.
pub(crate) fn running_mutable(pods: &Pods, uuid_arg: &str) -> Result<MutablePod> {
    let info = crate::status::find(pods, uuid_arg)?;
    if info.state != State::Running {
        return Err(Error::PodState {
            uuid: info.uuid,
            what: format!("{}, not running", info.state),
        });
    }
    if !info.manifest.as_ref().is_some_and(|m| m.mutable) {
        return Err(Error::PodState {
            uuid: info.uuid,
            what: "not a mutable pod (start one with rkt app sandbox)".into(),
        });
    }
    Ok(MutablePod {
        uuid: info.uuid,
        dir: info.path,
    })
}

impl MutablePod {
    /// Hold the pod's apps lock while the pod dir changes.
    fn lock(&self) -> Result<Flock<File>> {
        crate::pods::lock_file(&self.dir.join(paths::APPS_LOCK))
    }

    fn manifest(&self) -> Result<PodManifest> {
        Ok(stage1_abi::read_json(&self.dir.join(paths::POD_MANIFEST))?)
    }

    fn write_manifest(&self, m: &PodManifest) -> Result<()> {
        m.validate()?;
        crate::prepare::write_json(&self.dir.join(paths::POD_MANIFEST), m)
    }

    fn app<'m>(&self, m: &'m PodManifest, name: &str) -> Result<&'m App> {
        m.app(name).ok_or_else(|| Error::NoApp {
            uuid: self.uuid.clone(),
            app: name.to_string(),
        })
    }

    /// Ask stage1 (see [`stage1_abi::control`]).
    fn ask(&self, app: &str, req: &Request) -> Result<()> {
        let reply = control::call(&self.dir, req, CONTROL_TIMEOUT)?;
        match reply.error {
            None if reply.ok => Ok(()),
            e => Err(Error::App {
                app: app.to_string(),
                reason: e.unwrap_or_else(|| "refused".into()),
            }),
        }
    }

    fn status_of(&self, name: &str) -> Option<AppStatus> {
        stage1_abi::read_json(&self.dir.join(paths::app_status(name))).ok()
    }

    fn running(&self, name: &str) -> bool {
        self.status_of(name)
            .is_some_and(|s| s.pid.is_some() && !s.finished())
    }
}

/// `rkt app add`: resolve the image, mount the app's rootfs, add it to the manifest. Returns
/// the app's name. Nothing of the app is left when it fails.
pub(crate) fn add(
    pod: &MutablePod,
    images: &dyn Images,
    mounter: &dyn Mounter,
    resolve: &ResolveOptions,
    req: &AppAddRequest,
) -> Result<String> {
    let _lock = pod.lock()?;
    let mut m = pod.manifest()?;
    let name = match &req.app.flags.name {
        Some(n) => n.clone(),
        None => crate::flags::default_app_name(&req.app.image)?,
    };
    if m.app(&name).is_some() {
        return Err(Error::usage(format!(
            "pod {}: an app named {name:?} exists already",
            pod.uuid
        )));
    }
    if let Some(v) = req
        .volumes
        .iter()
        .find(|v| m.volumes.iter().any(|o| o.name == v.name))
    {
        return Err(Error::usage(format!(
            "pod {}: a volume named {:?} exists already",
            pod.uuid, v.name
        )));
    }
    let mut app_req = req.app.clone();
    app_req.flags.name = Some(name.clone());
    let pod_req = PodRequest {
        apps: vec![app_req],
        volumes: m.volumes.iter().chain(&req.volumes).cloned().collect(),
        mutable: true,
        ..Default::default()
    };
    pod_req.check()?;
    let img_err = |e: crate::images::ImageError| Error::Image(e.to_string());
    let id = images.resolve(&req.app.image, resolve).map_err(img_err)?;
    let meta = images.meta(&id).map_err(img_err)?;
    let config = images.config(&id).map_err(img_err)?;
    let layers = images.layer_dirs(&id).map_err(img_err)?;
    let built = manifest::build(&m.uuid, &pod_req, &[ResolvedImage { meta, config }], &[])?;
    let Some(mut app) = built.apps.into_iter().next() else {
        return Err(Error::usage("no app to add"));
    };
    app.cri = req.cri.clone().map(Box::new);
    let added: Vec<Volume> = built
        .volumes
        .into_iter()
        .filter(|v| !m.volumes.iter().any(|o| o.name == v.name))
        .collect();
    images.pin(&app.image.id, &m.uuid).map_err(img_err)?;
    let app_dir = pod.dir.join(paths::app_dir(&name));
    let undo = |mounted: bool| {
        if mounted {
            let _ = mounter.unmount(&pod.dir.join(paths::app_rootfs(&name)));
        }
        let _ = std::fs::remove_dir_all(&app_dir);
    };
    let res = (|| {
        crate::prepare::mkdir(&app_dir, 0o755)?;
        let rec = AppImage {
            id: app.image.id.clone(),
            name: app.image.name.clone(),
            layers: layers.clone(),
        };
        crate::prepare::write_json(&pod.dir.join(paths::app_image(&name)), &rec)?;
        let names: Vec<&str> = added.iter().map(|v| v.name.as_str()).collect();
        crate::prepare::write_json(&app_dir.join(APP_VOLUMES), &names)?;
        crate::prepare::mount_app(mounter, &pod.dir, &name, &layers, m.private_users)
    })();
    if let Err(e) = res {
        undo(false);
        return Err(e);
    }
    m.apps.push(app);
    m.volumes.extend(added);
    if let Err(e) = pod.write_manifest(&m) {
        undo(true);
        return Err(e);
    }
    Ok(name)
}

/// `rkt app start`: stage1 starts the app and answers once it runs.
pub(crate) fn start(pod: &MutablePod, name: &str) -> Result<()> {
    let _lock = pod.lock()?;
    pod.app(&pod.manifest()?, name)?;
    pod.ask(
        name,
        &Request::Start {
            app: name.to_string(),
        },
    )
}

/// Reopen the app's CRI log file (the kubelet rotated it).
pub(crate) fn reopen_log(pod: &MutablePod, name: &str) -> Result<()> {
    pod.app(&pod.manifest()?, name)?;
    pod.ask(
        name,
        &Request::ReopenLog {
            app: name.to_string(),
        },
    )
}

/// Let go of the app's stdin (the CRI's `StdinOnce` after its attach ended).
pub(crate) fn close_stdin(pod: &MutablePod, name: &str) -> Result<()> {
    pod.app(&pod.manifest()?, name)?;
    pod.ask(
        name,
        &Request::CloseStdin {
            app: name.to_string(),
        },
    )
}

/// `rkt app stop`: SIGTERM, SIGKILL after `timeout`; returns once the app has exited (at once
/// if it did not run). Returns its status record.
pub(crate) fn stop(pod: &MutablePod, name: &str, timeout: Duration) -> Result<Option<AppStatus>> {
    pod.app(&pod.manifest()?, name)?;
    if !pod.running(name) {
        return Ok(pod.status_of(name));
    }
    pod.ask(
        name,
        &Request::Stop {
            app: name.to_string(),
            timeout_secs: timeout.as_secs(),
        },
    )?;
    // stage1 sends SIGKILL at the timeout; the margin is for the kernel and the reaping
    let until = Instant::now() + timeout + Duration::from_secs(10);
    loop {
        if !pod.running(name) {
            return Ok(pod.status_of(name));
        }
        if Instant::now() > until {
            return Err(Error::App {
                app: name.to_string(),
                reason: "still running 10 s after its stop timeout".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `rkt app rm`: stop the app if it runs (at once: SIGKILL), have stage1 forget it, unmount
/// and remove its rootfs, records and the volumes it brought, and take it out of the manifest.
pub(crate) fn rm(pod: &MutablePod, mounter: &dyn Mounter, name: &str) -> Result<()> {
    let _lock = pod.lock()?;
    let mut m = pod.manifest()?;
    pod.app(&m, name)?;
    if pod.running(name) {
        stop(pod, name, Duration::ZERO)?;
    }
    pod.ask(
        name,
        &Request::Remove {
            app: name.to_string(),
        },
    )?;
    let rootfs = pod.dir.join(paths::app_rootfs(name));
    if mounter.is_mounted(&rootfs).unwrap_or(false) {
        mounter
            .unmount(&rootfs)
            .map_err(|e| Error::io("unmounting", &rootfs, e))?;
    }
    let app_dir = pod.dir.join(paths::app_dir(name));
    let brought: Vec<String> =
        stage1_abi::read_json(&app_dir.join(APP_VOLUMES)).unwrap_or_default();
    m.apps.retain(|a| a.name != name);
    m.volumes.retain(|v| {
        !brought.contains(&v.name)
            || m.apps
                .iter()
                .any(|a| a.mounts.iter().any(|mp| mp.volume == v.name))
    });
    pod.write_manifest(&m)?;
    for v in &brought {
        if !m.volumes.iter().any(|x| &x.name == v) {
            let _ = std::fs::remove_dir_all(pod.dir.join(paths::volume_dir(v)));
        }
    }
    let _ = std::fs::remove_file(pod.dir.join(paths::app_status(name)));
    std::fs::remove_dir_all(&app_dir).map_err(|e| Error::io("removing", &app_dir, e))
}

/// The apps of a pod (any pod: a pod of `rkt run` too), in manifest order.
pub(crate) fn list(dir: &Path, m: &PodManifest, running: bool) -> Vec<AppInfo> {
    m.apps
        .iter()
        .map(|a| {
            let status: Option<AppStatus> =
                stage1_abi::read_json(&dir.join(paths::app_status(&a.name))).ok();
            let state = match &status {
                Some(s) if s.finished() => AppState::Exited,
                Some(s) if s.pid.is_some() => {
                    if running {
                        AppState::Running
                    } else {
                        AppState::Exited
                    }
                }
                _ => AppState::Created,
            };
            AppInfo {
                app: a.clone(),
                state,
                status,
            }
        })
        .collect()
}
