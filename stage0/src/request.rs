//! What a front end asks of [`crate::Runtime`] for a new pod: [`PodRequest`] (pod-wide
//! settings and the apps) and [`AppRequest`] (one app: an image, its settings, its arguments).
//! Typed values only: `rkt`'s per-app argv grammar (`IMAGE [flags] [-- args ---]`) lives in
//! `rkt-cli` and produces these; a CRI server fills them in from its own requests.

/// The contract's types a request is made of, named here so front ends need only stage0.
pub use stage1_abi::{
    DnsConfig, IdRange, MountPoint, NetConfig, NetRequest, PodManifest, PortForward, Seccomp,
    SeccompMode, Volume, VolumeKind,
};
use std::collections::BTreeSet;

use crate::flags;
use crate::{Error, Result};

/// Per-app flags (all optional; unset means "image default").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppFlags {
    /// `--name`.
    pub name: Option<String>,
    /// `--exec`: replaces the image's entrypoint and cmd.
    pub exec: Option<String>,
    /// `--user`.
    pub user: Option<String>,
    /// `--group`.
    pub group: Option<String>,
    /// `--supplementary-gids`.
    pub supplementary_gids: Option<Vec<u32>>,
    /// `--working-dir`.
    pub working_dir: Option<String>,
    /// `--environment K=V` (repeatable).
    pub environment: Vec<(String, String)>,
    /// `--mount volume=V,target=P` (repeatable).
    pub mounts: Vec<MountPoint>,
    /// `--readonly-rootfs`.
    pub readonly_rootfs: bool,
    /// `--memory` in bytes.
    pub memory: Option<u64>,
    /// `--cpu` in millicores.
    pub cpu_millis: Option<u64>,
    /// `--cpu-shares`.
    pub cpu_shares: Option<u64>,
    /// `--oom-score-adj`.
    pub oom_score_adj: Option<i32>,
    /// `--caps-retain`.
    pub caps_retain: Option<Vec<String>>,
    /// `--caps-remove`.
    pub caps_remove: Option<Vec<String>>,
    /// `--seccomp`.
    pub seccomp: Option<Seccomp>,
}

/// One app of a pod: its image, its settings and its arguments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppRequest {
    /// The image string as typed.
    pub image: String,
    /// Its per-app flags.
    pub flags: AppFlags,
    /// Arguments after `--` (replace the image's cmd); `None` when no `--` was given.
    pub args: Option<Vec<String>>,
}

/// What the user asked for, parsed but not yet resolved against the store.
#[derive(Debug, Clone, Default)]
pub struct PodRequest {
    /// The images with their per-app flags, in order.
    pub apps: Vec<AppRequest>,
    /// `--volume`.
    pub volumes: Vec<Volume>,
    /// `--mount` given before any image: applies to every app.
    pub default_mounts: Vec<MountPoint>,
    /// `--inherit-env`.
    pub inherit_env: bool,
    /// `--set-env-file` content, in file order.
    pub set_env_file: Vec<(String, String)>,
    /// `--set-env`.
    pub set_env: Vec<(String, String)>,
    /// A mutable pod (`rkt app sandbox`): it may start with no app; apps are added later.
    pub mutable: bool,
}

impl PodRequest {
    /// The app names, in order (`--name` or the default from the image string).
    pub fn app_names(&self) -> Result<Vec<String>> {
        self.apps
            .iter()
            .map(|a| match &a.flags.name {
                Some(n) => Ok(n.clone()),
                None => flags::default_app_name(&a.image),
            })
            .collect()
    }

    /// The checks that need neither the store nor a pod dir, done first so bad input costs
    /// nothing and leaves nothing behind: at least one image (but for a mutable pod), unique app names, unique volume
    /// names, every `--mount` naming a `--volume`, host volume sources that exist.
    pub fn check(&self) -> Result<()> {
        if self.apps.is_empty() && !self.mutable {
            return Err(Error::usage(
                "must provide at least one image or specify the pod manifest",
            ));
        }
        let mut seen = BTreeSet::new();
        for n in self.app_names()? {
            if !seen.insert(n.clone()) {
                return Err(Error::usage(format!("multiple apps with name {n}")));
            }
        }
        let mut vols = BTreeSet::new();
        for v in &self.volumes {
            if !vols.insert(v.name.as_str()) {
                return Err(Error::usage(format!("duplicate volume name {:?}", v.name)));
            }
            if let VolumeKind::Host { source, .. } = &v.kind {
                std::fs::metadata(source).map_err(|e| {
                    Error::usage(format!(
                        "host volume {:?}: source {source:?}: {}",
                        v.name,
                        io_text(&e)
                    ))
                })?;
            }
        }
        let mounts = self
            .default_mounts
            .iter()
            .chain(self.apps.iter().flat_map(|a| a.flags.mounts.iter()));
        for m in mounts {
            if !vols.contains(m.volume.as_str()) {
                return Err(Error::usage(format!(
                    "dangling mount point {:?}: no volume named {:?}",
                    m.target, m.volume
                )));
            }
        }
        for (a, name) in self.apps.iter().zip(self.app_names()?) {
            if a.flags.caps_retain.is_some() && a.flags.caps_remove.is_some() {
                return Err(Error::usage(format!(
                    "app {name:?}: --caps-retain and --caps-remove cannot be used together"
                )));
            }
        }
        Ok(())
    }
}

fn io_text(e: &std::io::Error) -> String {
    // "No such file or directory (os error 2)" → "No such file or directory"
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
