//! What observers (`rkt list`, `rkt status`, `rkt cat-manifest`) read about a pod: its state
//! from the phase dir and a lock probe, the manifest, times from file mtimes (rkt's
//! convention), the pid and the per-app status files stage1 writes. Plus waiting for a pod to
//! finish or become ready, by polling as rkt did.

use stage1_abi::{paths, AppStatus, PodManifest};
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::pods::{Phase, PodEntry, Pods, State};
use crate::{Error, Result};

/// Everything observers show about one pod.
#[derive(Debug, Clone)]
pub struct PodInfo {
    /// The UUID.
    pub uuid: String,
    /// Its phase dir.
    pub phase: Phase,
    /// Its state.
    pub state: State,
    /// The pod dir.
    pub path: PathBuf,
    /// The manifest, if readable.
    pub manifest: Option<PodManifest>,
    /// mtime of `pod-created`.
    pub created: Option<SystemTime>,
    /// mtime of `pid` (written by stage1 when the pod started).
    pub started: Option<SystemTime>,
    /// stage1's pid.
    pub pid: Option<i32>,
    /// Per-app status files, in manifest order (only apps that have one).
    pub apps: Vec<AppStatus>,
    /// stage1 wrote `ready` (every app started).
    pub ready: bool,
    /// When gc marked it (ctime of the pod dir in `exited-garbage/`).
    pub gc_marked: Option<SystemTime>,
    /// The pod's networks as stage1 recorded them in `net-info.json` (empty for host/none).
    pub networks: Vec<stage1_abi::NetAttachment>,
}

impl PodInfo {
    /// Whether the pod has run and is finished.
    pub fn exited(&self) -> bool {
        matches!(
            self.state,
            State::Exited | State::ExitedGarbage | State::ExitedDeleting
        )
    }
}

fn mtime(p: &std::path::Path) -> Option<SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn ctime(p: &std::path::Path) -> Option<SystemTime> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(p).ok()?;
    let secs = u64::try_from(m.ctime()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, m.ctime_nsec() as u32))
}

/// Read one pod. `None` when it vanished (collected) meanwhile.
pub fn pod_info(pods: &Pods, uuid: &str) -> Result<Option<PodInfo>> {
    let Some((phase, state)) = pods.state(uuid)? else {
        return Ok(None);
    };
    let dir = pods.path(phase, uuid);
    let manifest = match stage1_abi::read_json::<PodManifest>(&dir.join(paths::POD_MANIFEST)) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::debug!("pod {uuid}: {e}");
            None
        }
    };
    let pid_file = dir.join(paths::PID);
    let pid = fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let mut apps = Vec::new();
    if let Some(m) = &manifest {
        for a in &m.apps {
            if let Ok(st) =
                stage1_abi::read_json::<AppStatus>(&dir.join(paths::app_status(&a.name)))
            {
                apps.push(st);
            }
        }
    }
    let networks = stage1_abi::read_json::<stage1_abi::NetInfo>(&dir.join(paths::NET_INFO))
        .map(|i| i.networks)
        .unwrap_or_default();
    Ok(Some(PodInfo {
        uuid: uuid.to_string(),
        phase,
        state,
        created: mtime(&dir.join(paths::POD_CREATED)),
        started: mtime(&pid_file),
        pid,
        apps,
        ready: dir.join(paths::READY).exists(),
        gc_marked: if phase == Phase::ExitedGarbage {
            ctime(&dir)
        } else {
            None
        },
        networks,
        manifest,
        path: dir,
    }))
}

/// Every visible pod (prepare, prepared, run, exited-garbage), oldest first. Pods that vanish
/// while listed are skipped; unreadable ones are reported in the second list.
pub fn list(pods: &Pods) -> Result<(Vec<PodInfo>, Vec<String>)> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for PodEntry { uuid, .. } in pods.list(&Phase::VISIBLE)? {
        match pod_info(pods, &uuid) {
            Ok(Some(i)) => out.push(i),
            Ok(None) => {}
            Err(e) => errors.push(format!("pod {uuid:?}: {e}")),
        }
    }
    out.sort_by_key(|i| (i.created, i.uuid.clone()));
    Ok((out, errors))
}

/// Resolve a UUID argument and read the pod.
pub fn find(pods: &Pods, arg: &str) -> Result<PodInfo> {
    let e = pods.find(arg)?;
    pod_info(pods, &e.uuid)?.ok_or(Error::NoMatch(arg.to_string()))
}

/// How often the waits look again: a lock probe and a stat, cheap enough to do often; a
/// front end that stops a pod and waits for it (the CRI's StopPodSandbox) waits at most this
/// much longer than the pod takes.
const POLL: Duration = Duration::from_millis(5);

/// `status --wait`: poll until the pod has finished (as rkt: a prepared pod is waited for
/// until it has run). `Ok(false)` on timeout.
pub fn wait_finished(pods: &Pods, uuid: &str, timeout: Option<Duration>) -> Result<bool> {
    let start = Instant::now();
    loop {
        match pods.state(uuid)? {
            None => return Ok(true),
            Some((_, State::Running | State::Preparing | State::Embryo | State::Prepared)) => {}
            Some(_) => return Ok(true),
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            return Ok(false);
        }
        std::thread::sleep(POLL);
    }
}

/// `status --wait-ready`: poll until stage1 wrote `ready`. `Ok(false)` on timeout; an error
/// when the pod ends first.
pub fn wait_ready(pods: &Pods, uuid: &str, timeout: Option<Duration>) -> Result<bool> {
    let start = Instant::now();
    loop {
        match pods.state(uuid)? {
            Some((phase, State::Running)) => {
                if pods.path(phase, uuid).join(paths::READY).exists() {
                    return Ok(true);
                }
            }
            Some((_, State::Preparing | State::Embryo | State::Prepared)) => {}
            _ => {
                return Err(Error::PodState {
                    uuid: uuid.to_string(),
                    what: "not running anymore".into(),
                })
            }
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            return Ok(false);
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "0a0a0a0a-0000-4000-8000-00000000000a";

    #[test]
    fn info_reads_files_and_state() {
        let d = tempfile::tempdir().unwrap();
        let pods = Pods::new(d.path());
        let mut p = pods.create(U).unwrap();
        let dir = p.path();
        fs::write(dir.join("pod-created"), "").unwrap();
        p.transition(Phase::Run).unwrap();
        let dir = p.path();
        fs::write(dir.join("pid"), "4242\n").unwrap();
        fs::create_dir_all(dir.join("status")).unwrap();
        let i = pod_info(&pods, U).unwrap().unwrap();
        assert_eq!(i.state, State::Running);
        assert_eq!(i.pid, Some(4242));
        assert!(i.created.is_some() && i.started.is_some());
        assert!(!i.exited());
        assert!(!wait_finished(&pods, U, Some(Duration::from_millis(150))).unwrap());
        assert!(!wait_ready(&pods, U, Some(Duration::from_millis(150))).unwrap());
        fs::write(dir.join("ready"), "").unwrap();
        assert!(wait_ready(&pods, U, None).unwrap());
        p.unlock();
        let i = pod_info(&pods, U).unwrap().unwrap();
        assert_eq!(i.state, State::Exited);
        assert!(i.exited());
        assert!(wait_finished(&pods, U, None).unwrap());
        assert!(wait_ready(&pods, U, None).is_err());
        let (all, errs) = list(&pods).unwrap();
        assert_eq!(all.len(), 1);
        assert!(errs.is_empty());
        assert_eq!(find(&pods, "0a0a").unwrap().uuid, U);
    }
}
