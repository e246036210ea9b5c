//! Ending and removing pods: `rkt stop`, `rkt rm`, `rkt gc`.
//!
//! Removal of a pod (rm, gc sweep) always goes: lock it exclusively (skip/refuse if someone
//! holds it) → move it to `exited-garbage/` (it ran) or `garbage/` (it never ran) → run
//! `rkt-stage1 gc` in it when it ran (cgroups, network, libcontainer state) → unmount
//! everything under it, deepest first, lazily if busy → unpin its images → delete it. Every
//! step tolerates having been done already, so a crash anywhere is finished by the next gc.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use stage1_abi::{paths, Stage1Command};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::images::Images;
use crate::mount::{mount_points, Mounter};
use crate::pods::{LockedPod, Phase, Pods, State};
use crate::{Error, Result};

/// What `stop` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// The signal was sent.
    Signalled,
    /// The pod had already exited.
    AlreadyStopped,
}

/// `rkt stop`: SIGTERM (SIGKILL with `force`) to the pod's stage1. Returns once sent.
pub fn stop(pods: &Pods, uuid_arg: &str, force: bool) -> Result<(String, StopOutcome)> {
    let entry = pods.find(uuid_arg)?;
    let uuid = entry.uuid;
    // stage1 writes `pid` right after it starts; give a just-started pod a moment.
    for _ in 0..20 {
        let Some((phase, state)) = pods.state(&uuid)? else {
            return Err(Error::NoMatch(uuid_arg.to_string()));
        };
        match state {
            State::Running => {}
            State::Exited | State::ExitedGarbage | State::ExitedDeleting => {
                return Ok((uuid, StopOutcome::AlreadyStopped))
            }
            _ => {
                return Err(Error::PodState {
                    uuid,
                    what: "not running".into(),
                })
            }
        }
        let pid_file = pods.path(phase, &uuid).join(paths::PID);
        if let Some(pid) = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let sig = if force {
                Signal::SIGKILL
            } else {
                Signal::SIGTERM
            };
            return match kill(Pid::from_raw(pid), sig) {
                Ok(()) => Ok((uuid, StopOutcome::Signalled)),
                Err(nix::errno::Errno::ESRCH) => Ok((uuid, StopOutcome::AlreadyStopped)),
                Err(e) => Err(Error::io("signalling pod process of", &pid_file, e.into())),
            };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(Error::PodState {
        uuid,
        what: "running but has no pid file".into(),
    })
}

/// How long `rkt stop --force` waits for the pod process to die and its lock to go.
const STOP_FORCE_WAIT: Duration = Duration::from_secs(10);

/// The end of `rkt stop --force`, after [`stop`] sent SIGKILL: return only once nothing of the
/// pod runs. The pod process (stage1 or the monitor) is gone when its lock is free; the pod's
/// PID 1 then dies by PDEATHSIG, taking its pid namespace with it, but processes the kernel kills
/// that way may take long to go (a CPU-throttled fork bomb lived ≈ 15 s), so stop then takes the
/// pod's lock and runs `rkt-stage1 gc` in the pod dir, which kills whatever is left in the pod's
/// cgroups (CPU limits lifted, frozen and killed, or `cgroup.kill`), waits until they are empty
/// and removes them with the pod's network and mounts, as its own teardown would have (only
/// stage1 creates and removes cgroups). Errors name what is still there.
pub fn finish_forced_stop(pods: &Pods, uuid: &str, stage1: &Path) -> Result<()> {
    let deadline = std::time::Instant::now() + STOP_FORCE_WAIT;
    let pod = loop {
        match pods.state(uuid)? {
            None => return Ok(()), // removed meanwhile (rm/gc did the work)
            Some((phase, State::Exited)) => match pods.lock(phase, uuid) {
                Ok(p) => break p,
                Err(Error::NoMatch(_)) => {}
                Err(Error::PodState { .. }) => {} // a gc at work: wait for it
                Err(e) => return Err(e),
            },
            Some((_, State::ExitedGarbage | State::ExitedDeleting)) => {
                // a gc moved it: it finishes the removal, which kills what is left
            }
            Some((_, State::Running)) => {}
            Some(_) => return Ok(()),
        }
        if std::time::Instant::now() > deadline {
            return Err(Error::PodState {
                uuid: uuid.to_string(),
                what: format!("still locked {STOP_FORCE_WAIT:?} after SIGKILL"),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let dir = pod.path();
    if stage1_left_something(&dir) {
        run_stage1_gc(stage1, &dir)?;
    }
    Ok(())
}

/// `rkt-stage1 gc` in `dir`; its failure (e.g. a cgroup it could not empty) is an error naming
/// the pod dir, and the pod stays for the next gc.
fn run_stage1_gc(s1: &Path, dir: &Path) -> Result<()> {
    let st = std::process::Command::new(s1)
        .args(Stage1Command::Gc.to_args())
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .status();
    match st {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(Error::Stage1 {
            path: s1.to_path_buf(),
            reason: format!("gc in {} failed: {s}", dir.display()),
        }),
        Err(e) => Err(Error::Stage1 {
            path: s1.to_path_buf(),
            reason: format!("gc in {}: {e}", dir.display()),
        }),
    }
}

/// The cgroup dirs listed in the pod dir's `cgroups` file.
fn listed_cgroups(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join(paths::CGROUPS))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// What removal needs besides the pod dir.
pub struct Remover<'a> {
    /// The stage1 binary, for its `gc` entry point.
    pub stage1: PathBuf,
    /// The image store, to drop the pod's pins (None: leave them; image gc checks pods).
    pub images: Option<&'a dyn Images>,
    /// Mount operations.
    pub mounter: &'a dyn Mounter,
    /// Mount points of this mount namespace, read once per remover: re-reading
    /// `/proc/self/mountinfo` per pod made a sweep quadratic in the number of pods, since every
    /// exited pod still has its overlay mounted (rkt#3960).
    pub mount_table: std::cell::OnceCell<Vec<PathBuf>>,
}

impl<'a> Remover<'a> {
    /// A remover that runs `stage1`'s gc and unmounts with `mounter`, leaving image pins alone.
    pub fn new(stage1: &Path, mounter: &'a dyn Mounter) -> Self {
        Remover {
            stage1: stage1.to_path_buf(),
            images: None,
            mounter,
            mount_table: std::cell::OnceCell::new(),
        }
    }
}

/// Mount points at or under `dir` in `/proc/self/mountinfo`, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    filter_under(&mount_points(&mi), dir)
}

/// The entries of `table` at or under `dir`, deepest first.
fn filter_under(table: &[PathBuf], dir: &Path) -> Vec<PathBuf> {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut v: Vec<PathBuf> = table
        .iter()
        .filter(|p| p.starts_with(&dir))
        .cloned()
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v.dedup();
    v
}

impl Remover<'_> {
    /// Tear down and delete a pod this process holds locked (in `exited-garbage/` or
    /// `garbage/`).
    pub fn remove(&self, pod: LockedPod) -> Result<()> {
        let dir = pod.path();
        let uuid = pod.uuid().to_string();
        // a pod that never ran has nothing of stage1's; one whose stage1 tore down itself is
        // spared a process. A gc that fails (processes left in the pod's cgroups) keeps the pod
        // and its records for the next gc rather than report it collected.
        if pod.phase() == Phase::ExitedGarbage && stage1_left_something(&dir) {
            run_stage1_gc(&self.stage1, &dir)?;
        }
        let table = self.mount_table.get_or_init(|| {
            mount_points(&fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
        });
        for m in filter_under(table, &dir) {
            if let Err(e) = self.mounter.unmount(&m) {
                tracing::warn!("pod {uuid}: unmounting {}: {e}", m.display());
            }
        }
        if let Some(images) = self.images {
            if let Err(e) = images.unpin(&uuid) {
                tracing::warn!("pod {uuid}: unpinning images: {e}");
            }
        }
        let res = fs::remove_dir_all(&dir).or_else(|e| {
            // a mount that appeared meanwhile (propagation): detach and retry once
            for m in mounts_under(&dir) {
                let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
            }
            fs::remove_dir_all(&dir).map_err(|_| e)
        });
        match res {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("removing pod dir", &dir, e)),
        }
    }
}

/// Whether a stage1 that ran in `dir` left state its `gc` entry point must clean: a listed
/// cgroup that still exists, its libcontainer state dir, or networks not yet torn down (an
/// unreadable net-info.json counts: better one process too many than a leaked address).
fn stage1_left_something(dir: &Path) -> bool {
    listed_cgroups(dir).iter().any(|c| Path::new(c).exists())
        || dir.join(paths::STATE_DIR).exists()
        || match stage1_abi::read_json::<stage1_abi::NetInfo>(&dir.join(paths::NET_INFO)) {
            Ok(info) => info.active,
            Err(stage1_abi::AbiError::Io { source, .. }) => {
                source.kind() != std::io::ErrorKind::NotFound
            }
            Err(_) => true,
        }
}

/// `rkt rm`: remove one pod in any non-running state. Returns its UUID.
pub fn rm(pods: &Pods, uuid_arg: &str, remover: &Remover<'_>) -> Result<String> {
    let entry = pods.find(uuid_arg)?;
    let uuid = entry.uuid;
    let state_err = |uuid: &str, what: &str| Error::PodState {
        uuid: uuid.to_string(),
        what: what.into(),
    };
    let Some((phase, state)) = pods.state(&uuid)? else {
        return Err(Error::NoMatch(uuid_arg.to_string()));
    };
    match state {
        State::Running => return Err(state_err(&uuid, "currently running")),
        State::Preparing | State::Embryo => {
            return Err(state_err(&uuid, "currently being prepared"))
        }
        State::Deleting | State::ExitedDeleting => {
            return Err(state_err(&uuid, "currently being deleted"))
        }
        _ => {}
    }
    let mut pod = match pods.lock(phase, &uuid) {
        Ok(p) => p,
        Err(Error::PodState { .. }) => return Err(state_err(&uuid, "locked by another process")),
        Err(Error::NoMatch(_)) => return Err(Error::NoMatch(uuid_arg.to_string())),
        Err(e) => return Err(e),
    };
    let to = if phase == Phase::Run || phase == Phase::ExitedGarbage {
        Phase::ExitedGarbage
    } else {
        Phase::Garbage
    };
    if pod.phase() != to {
        pod.transition(to)?;
    }
    remover.remove(pod)?;
    Ok(uuid)
}

/// `rkt gc` options.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// `--grace-period` (30m): how long exited pods stay in `exited-garbage/`.
    pub grace_period: Duration,
    /// `--expire-prepared` (24h): prepared pods older than this are collected.
    pub expire_prepared: Duration,
    /// `--mark-only`: only move exited pods to `exited-garbage/`.
    pub mark_only: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace_period: Duration::from_secs(30 * 60),
            expire_prepared: Duration::from_secs(24 * 3600),
            mark_only: false,
        }
    }
}

/// What `rkt gc` did, for the CLI to print.
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// Exited pods moved to `exited-garbage/`.
    pub marked: Vec<String>,
    /// Pods deleted.
    pub collected: Vec<String>,
    /// Pods in `exited-garbage/` kept (still within the grace period).
    pub within_grace: Vec<String>,
    /// Failures (the pod stays for the next gc).
    pub errors: Vec<String>,
}

fn age(p: &Path) -> Duration {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = fs::metadata(p) else {
        return Duration::ZERO;
    };
    let ctime = SystemTime::UNIX_EPOCH
        + Duration::new(u64::try_from(m.ctime()).unwrap_or(0), m.ctime_nsec() as u32);
    SystemTime::now()
        .duration_since(ctime)
        .unwrap_or(Duration::ZERO)
}

/// Lock a pod without waiting; `None` when busy or gone.
fn try_lock(pods: &Pods, phase: Phase, uuid: &str) -> Option<LockedPod> {
    pods.lock(phase, uuid).ok()
}

/// `rkt gc`: mark exited pods, expire old prepared pods, sweep garbage. Cost is proportional
/// to the pods present in the phase dirs it reads, never to pods ever run.
pub fn gc(pods: &Pods, opts: &GcOptions, remover: &Remover<'_>) -> Result<GcReport> {
    let mut r = GcReport::default();
    let err = |r: &mut GcReport, uuid: &str, e: Error| r.errors.push(format!("pod {uuid:?}: {e}"));
    // 1. mark
    for uuid in pods.list_phase(Phase::Run)? {
        if let Some(mut p) = try_lock(pods, Phase::Run, &uuid) {
            match p.transition(Phase::ExitedGarbage) {
                Ok(()) => r.marked.push(uuid),
                Err(Error::PodState { .. }) => {}
                Err(e) => err(&mut r, &uuid, e),
            }
        }
    }
    for uuid in pods.list_phase(Phase::Prepare)? {
        if let Some(mut p) = try_lock(pods, Phase::Prepare, &uuid) {
            if let Err(e) = p.transition(Phase::Garbage) {
                if !matches!(e, Error::PodState { .. }) {
                    err(&mut r, &uuid, e);
                }
            }
        }
    }
    if let Some(_no_creators) = pods.lock_embryos()? {
        for uuid in pods.list_phase(Phase::Embryo)? {
            if let Some(mut p) = try_lock(pods, Phase::Embryo, &uuid) {
                let _ = p.transition(Phase::Garbage);
            }
        }
    }
    if opts.mark_only {
        return Ok(r);
    }
    // 2. expire prepared pods
    for uuid in pods.list_phase(Phase::Prepared)? {
        if age(&pods.path(Phase::Prepared, &uuid)) < opts.expire_prepared {
            continue;
        }
        if let Some(mut p) = try_lock(pods, Phase::Prepared, &uuid) {
            if let Err(e) = p.transition(Phase::Garbage) {
                if !matches!(e, Error::PodState { .. }) {
                    err(&mut r, &uuid, e);
                }
            }
        }
    }
    // 3. sweep exited garbage past the grace period
    for uuid in pods.list_phase(Phase::ExitedGarbage)? {
        if age(&pods.path(Phase::ExitedGarbage, &uuid)) < opts.grace_period {
            r.within_grace.push(uuid);
            continue;
        }
        let Some(p) = try_lock(pods, Phase::ExitedGarbage, &uuid) else {
            continue;
        };
        match remover.remove(p) {
            Ok(()) => r.collected.push(uuid),
            Err(e) => err(&mut r, &uuid, e),
        }
    }
    // 4. garbage goes now
    for uuid in pods.list_phase(Phase::Garbage)? {
        let Some(p) = try_lock(pods, Phase::Garbage, &uuid) else {
            continue;
        };
        match remover.remove(p) {
            Ok(()) => r.collected.push(uuid),
            Err(e) => err(&mut r, &uuid, e),
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mount::fake::FakeMounter;
    use crate::mount::HostMounter;

    const A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
    const B: &str = "bbbbbbbb-0000-4000-8000-000000000002";
    const C: &str = "cccccccc-0000-4000-8000-000000000003";
    const D: &str = "dddddddd-0000-4000-8000-000000000004";

    /// A stand-in for `rkt-stage1` whose `gc` runs `script`.
    fn fake_stage1(dir: &Path, script: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("rkt-stage1");
        fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn pod_in(pods: &Pods, uuid: &str, phase: Phase) -> LockedPod {
        let mut p = pods.create(uuid).unwrap();
        if phase != Phase::Prepare {
            p.transition(phase).unwrap();
        }
        p
    }

    #[test]
    fn gc_marks_sweeps_and_respects_locks_and_grace() {
        let d = tempfile::tempdir().unwrap();
        let pods = Pods::new(&d.path().join("data"));
        let m = FakeMounter::default();
        let remover = Remover::new(&fake_stage1(d.path(), "exit 0"), &m);
        pod_in(&pods, A, Phase::Run).unlock(); // exited
        let running = pod_in(&pods, B, Phase::Run); // running (locked)
        pod_in(&pods, C, Phase::Prepare).unlock(); // aborted prepare
        pod_in(&pods, D, Phase::Prepared).unlock(); // fresh prepared
        let r = gc(&pods, &GcOptions::default(), &remover).unwrap();
        assert_eq!(r.marked, vec![A.to_string()]);
        assert_eq!(r.within_grace, vec![A.to_string()]);
        assert_eq!(r.collected, vec![C.to_string()]);
        assert_eq!(pods.locate(A), Some(Phase::ExitedGarbage));
        assert_eq!(pods.locate(B), Some(Phase::Run));
        assert_eq!(pods.locate(C), None);
        assert_eq!(pods.locate(D), Some(Phase::Prepared));
        let now = GcOptions {
            grace_period: Duration::ZERO,
            expire_prepared: Duration::ZERO,
            mark_only: false,
        };
        let r = gc(&pods, &now, &remover).unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(pods.locate(A), None);
        assert_eq!(pods.locate(D), None);
        assert_eq!(pods.locate(B), Some(Phase::Run));
        drop(running);
        let r = gc(
            &pods,
            &GcOptions {
                mark_only: true,
                ..now
            },
            &remover,
        )
        .unwrap();
        assert_eq!(r.marked, vec![B.to_string()]);
        assert_eq!(pods.locate(B), Some(Phase::ExitedGarbage));
    }

    #[test]
    fn a_dead_creators_embryo_is_collected_at_once() {
        let d = tempfile::tempdir().unwrap();
        let pods = Pods::new(d.path());
        pods.ensure_dirs().unwrap();
        fs::create_dir(pods.path(Phase::Embryo, A)).unwrap();
        let s1 = fake_stage1(d.path(), "exit 1");
        let r = gc(
            &pods,
            &GcOptions::default(),
            &Remover::new(&s1, &HostMounter),
        )
        .unwrap();
        assert_eq!(r.collected, vec![A.to_string()]);
        assert_eq!(pods.locate(A), None);
    }

    #[test]
    fn rm_refuses_running_and_removes_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let pods = Pods::new(d.path());
        let s1 = d.path().join("s1");
        fs::create_dir(&s1).unwrap();
        let remover = Remover::new(&fake_stage1(&s1, "exit 0"), &HostMounter);
        let running = pod_in(&pods, A, Phase::Run);
        let e = rm(&pods, "aaaa", &remover).unwrap_err();
        assert_eq!(e.to_string(), format!("pod \"{A}\" is currently running"));
        drop(running);
        assert_eq!(rm(&pods, "aaaa", &remover).unwrap(), A);
        assert_eq!(pods.locate(A), None);
        pod_in(&pods, B, Phase::Prepared).unlock();
        assert_eq!(rm(&pods, B, &remover).unwrap(), B);
        assert!(rm(&pods, B, &remover).is_err());
        let preparing = pod_in(&pods, C, Phase::Prepare);
        assert!(rm(&pods, C, &remover)
            .unwrap_err()
            .to_string()
            .contains("being prepared"));
        drop(preparing);
    }

    #[test]
    fn stop_reports_states() {
        let d = tempfile::tempdir().unwrap();
        let pods = Pods::new(d.path());
        pod_in(&pods, A, Phase::Run).unlock();
        assert_eq!(
            stop(&pods, A, false).unwrap().1,
            StopOutcome::AlreadyStopped
        );
        pod_in(&pods, B, Phase::Prepared).unlock();
        assert_eq!(
            stop(&pods, B, false).unwrap_err().to_string(),
            format!("pod \"{B}\" is not running")
        );
        // a running pod whose process is gone counts as stopped
        let p = pod_in(&pods, C, Phase::Run);
        fs::write(p.path().join("pid"), "999999999\n").unwrap();
        assert_eq!(stop(&pods, C, true).unwrap().1, StopOutcome::AlreadyStopped);
    }

    /// A pod whose stage1 gc fails (here: a listed "cgroup" that still holds a file, as a
    /// cgroup with processes in it would) is not down: stop --force says so, and removal keeps
    /// the pod and its records for the next gc instead of reporting it collected.
    #[test]
    fn a_failed_stage1_gc_keeps_the_pod() {
        let d = tempfile::tempdir().unwrap();
        let pods = Pods::new(&d.path().join("data"));
        let busy = d.path().join("cg-busy");
        fs::create_dir(&busy).unwrap();
        fs::write(busy.join("tasks"), "").unwrap();
        let s1 = fake_stage1(
            d.path(),
            &format!(
                "rmdir {0} 2>/dev/null || {{ echo {0} busy >&2; exit 1; }}",
                busy.display()
            ),
        );
        let p = pod_in(&pods, A, Phase::Run);
        fs::write(
            p.path().join(paths::CGROUPS),
            format!("{}\n", busy.display()),
        )
        .unwrap();
        p.unlock();
        let e = finish_forced_stop(&pods, A, &s1).unwrap_err().to_string();
        assert!(e.contains("gc in") && e.contains(A), "{e}");
        let m = FakeMounter::default();
        let remover = Remover::new(&s1, &m);
        let mut p = pods.lock(Phase::Run, A).unwrap();
        p.transition(Phase::ExitedGarbage).unwrap();
        remover.remove(p).unwrap_err();
        assert!(pods
            .path(Phase::ExitedGarbage, A)
            .join(paths::CGROUPS)
            .exists());
        // once it is empty, both go through
        fs::remove_file(busy.join("tasks")).unwrap();
        let p = pods.lock(Phase::ExitedGarbage, A).unwrap();
        remover.remove(p).unwrap();
        assert!(!busy.exists() && !pods.path(Phase::ExitedGarbage, A).exists());
        // a gone pod is no error for stop --force
        finish_forced_stop(&pods, A, &s1).unwrap();
    }
}
