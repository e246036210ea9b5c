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
use crate::mount::{mount_points, HostMounter, Mounter};
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
/// and removes them with the pod's network and mounts, as its own teardown would have. Without
/// a stage1 binary the cgroups are killed and removed here. Errors name what is still there.
pub fn finish_forced_stop(pods: &Pods, uuid: &str, stage1: Option<&Path>) -> Result<()> {
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
    if let Some(s1) = stage1 {
        if stage1_left_something(&dir) {
            run_stage1_gc(s1, &dir)?;
        }
    } else {
        for cg in listed_cgroups(&dir) {
            remove_cgroup_tree(Path::new(&cg));
        }
    }
    check_cgroups_gone(&dir, uuid)
}

/// `rkt-stage1 gc` in `dir`; its failure is an error naming the pod dir.
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

/// An error naming the first listed cgroup of the pod that still exists (with its processes,
/// if any): the pod is not down, and its records must stay for the next gc.
fn check_cgroups_gone(dir: &Path, uuid: &str) -> Result<()> {
    match listed_cgroups(dir)
        .into_iter()
        .find(|c| Path::new(c).exists())
    {
        None => Ok(()),
        Some(cg) => {
            let procs = fs::read_to_string(Path::new(&cg).join("cgroup.procs"))
                .map(|s| s.lines().count())
                .unwrap_or(0);
            Err(Error::PodState {
                uuid: uuid.to_string(),
                what: format!("not down: cgroup {cg} still exists ({procs} processes)"),
            })
        }
    }
}

/// What removal needs besides the pod dir.
pub struct Remover<'a> {
    /// The stage1 binary for its `gc` entry point (None: skip, clean cgroups here).
    pub stage1: Option<PathBuf>,
    /// The image store, to drop the pod's pins (None: leave them; image gc checks pods).
    pub images: Option<&'a dyn Images>,
    /// Mount operations.
    pub mounter: &'a dyn Mounter,
    /// Mount points of this mount namespace, read once per remover: re-reading
    /// `/proc/self/mountinfo` per pod made a sweep quadratic in the number of pods, since every
    /// exited pod still has its overlay mounted (rkt#3960).
    pub mount_table: std::cell::OnceCell<Vec<PathBuf>>,
}

impl Default for Remover<'_> {
    fn default() -> Self {
        Remover {
            stage1: None,
            images: None,
            mounter: &HostMounter,
            mount_table: std::cell::OnceCell::new(),
        }
    }
}

/// Mount points at or under `dir` in `/proc/self/mountinfo`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
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
        if pod.phase() == Phase::ExitedGarbage {
            self.stage1_gc(&dir);
        }
        remove_cgroups(&dir);
        if pod.phase() == Phase::ExitedGarbage {
            remove_named_cgroups(&uuid);
        }
        // processes left in the pod's cgroups: keep the pod (and its records) for the next gc
        // rather than report it collected
        check_cgroups_gone(&dir, &uuid)?;
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

    fn stage1_gc(&self, dir: &Path) {
        let Some(s1) = &self.stage1 else { return };
        if !stage1_left_something(dir) {
            return; // stage1 tore down itself: spare a process per pod
        }
        // a cgroup it could not empty keeps the pod for the next gc (checked by the caller)
        if let Err(e) = run_stage1_gc(s1, dir) {
            tracing::warn!("{e}");
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

/// Cgroup mount points of this host (v1 hierarchies and cgroup2), read once per process.
fn cgroup_mounts() -> &'static [PathBuf] {
    static M: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();
    M.get_or_init(|| {
        let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        mi.lines()
            .filter_map(|l| {
                let (pre, post) = l.split_once(" - ")?;
                let fstype = post.split(' ').next()?;
                (fstype == "cgroup" || fstype == "cgroup2")
                    .then(|| pre.split(' ').nth(4).map(PathBuf::from))
                    .flatten()
            })
            .collect()
    })
}

/// Remove a cgroup dir and its children, deepest first, killing processes still in them.
fn remove_cgroup_tree(dir: &Path) {
    let children: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    for c in children {
        remove_cgroup_tree(&c);
    }
    for attempt in 0..20 {
        match fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if attempt == 19 => {
                tracing::warn!("removing cgroup {}: {e}", dir.display());
                return;
            }
            Err(_) => {
                let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Remove `<hierarchy>/rkt/<uuid>` in every hierarchy: stage1's pod cgroup when it does not
/// nest under the caller's, found by name even if stage1 died before listing it.
fn remove_named_cgroups(uuid: &str) {
    for mp in cgroup_mounts() {
        let d = mp.join("rkt").join(uuid);
        if d.is_dir() {
            remove_cgroup_tree(&d);
        }
    }
}

/// Remove the cgroup dirs stage1 listed (deepest first); those already gone are fine.
fn remove_cgroups(dir: &Path) {
    let mut cgs = listed_cgroups(dir);
    cgs.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    for cg in &cgs {
        if let Err(e) = fs::remove_dir(cg) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("removing cgroup {cg}: {e}");
            }
        }
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

    const A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
    const B: &str = "bbbbbbbb-0000-4000-8000-000000000002";
    const C: &str = "cccccccc-0000-4000-8000-000000000003";
    const D: &str = "dddddddd-0000-4000-8000-000000000004";

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
        let pods = Pods::new(d.path());
        let m = FakeMounter::default();
        let remover = Remover {
            mounter: &m,
            ..Default::default()
        };
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
        let r = gc(&pods, &GcOptions::default(), &Remover::default()).unwrap();
        assert_eq!(r.collected, vec![A.to_string()]);
        assert_eq!(pods.locate(A), None);
    }

    #[test]
    fn rm_refuses_running_and_removes_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let pods = Pods::new(d.path());
        let remover = Remover::default();
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

    /// A pod whose listed cgroup cannot be removed (here a dir with a file in it, as a cgroup
    /// with processes would be) is not down: stop --force says so, and removal keeps the pod
    /// and its records for the next gc instead of reporting it collected.
    #[test]
    fn busy_listed_cgroup_keeps_the_pod() {
        let d = tempfile::tempdir().unwrap();
        let pods = Pods::new(&d.path().join("data"));
        let busy = d.path().join("cg-busy");
        fs::create_dir(&busy).unwrap();
        fs::write(busy.join("tasks"), "").unwrap();
        let gone = d.path().join("cg-gone");
        let p = pod_in(&pods, A, Phase::Run);
        fs::write(
            p.path().join(paths::CGROUPS),
            format!("{}\n{}\n", gone.display(), busy.display()),
        )
        .unwrap();
        p.unlock();
        let e = finish_forced_stop(&pods, A, None).unwrap_err().to_string();
        assert!(e.contains("not down") && e.contains("cg-busy"), "{e}");
        let m = FakeMounter::default();
        let remover = Remover {
            mounter: &m,
            ..Default::default()
        };
        let mut p = pods.lock(Phase::Run, A).unwrap();
        p.transition(Phase::ExitedGarbage).unwrap();
        let e = remover.remove(p).unwrap_err().to_string();
        assert!(e.contains("cg-busy"), "{e}");
        assert!(pods
            .path(Phase::ExitedGarbage, A)
            .join(paths::CGROUPS)
            .exists());
        // once it is gone, both go through
        fs::remove_file(busy.join("tasks")).unwrap();
        let p = pods.lock(Phase::ExitedGarbage, A).unwrap();
        remover.remove(p).unwrap();
        assert!(!busy.exists() && !pods.path(Phase::ExitedGarbage, A).exists());
        // a gone pod is no error for stop --force
        finish_forced_stop(&pods, A, None).unwrap();
    }
}
