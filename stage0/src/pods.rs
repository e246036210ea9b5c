//! The pod state machine on disk (rkt's `pkg/pod`): a pod is a directory
//! `<data>/pods/<phase>/<uuid>` that moves between phase dirs by `rename(2)`; whoever works on a
//! pod holds an exclusive `flock` on the pod dir's fd. Observers derive the state from the phase
//! dir plus a non-blocking shared-lock probe — no daemon, no state file.
//!
//! | phase dir         | locked            | unlocked          |
//! |-------------------|-------------------|-------------------|
//! | `embryo/`         | embryo            | embryo            |
//! | `prepare/`        | preparing         | aborted prepare   |
//! | `prepared/`       | prepared          | prepared          |
//! | `run/`            | running           | exited            |
//! | `exited-garbage/` | exited deleting   | exited garbage    |
//! | `garbage/`        | deleting          | garbage           |

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The phase directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// `embryo/`: just created, not yet locked.
    Embryo,
    /// `prepare/`: being prepared (or an aborted prepare).
    Prepare,
    /// `prepared/`: ready for `run-prepared`.
    Prepared,
    /// `run/`: running (locked by stage1) or exited.
    Run,
    /// `exited-garbage/`: exited and marked by gc.
    ExitedGarbage,
    /// `garbage/`: never ran; to be deleted.
    Garbage,
}

impl Phase {
    /// Every phase.
    pub const ALL: [Phase; 6] = [
        Phase::Embryo,
        Phase::Prepare,
        Phase::Prepared,
        Phase::Run,
        Phase::ExitedGarbage,
        Phase::Garbage,
    ];
    /// Phases UUID lookups and `rkt list` consider (rkt hides embryo and garbage).
    pub const VISIBLE: [Phase; 4] = [
        Phase::Prepare,
        Phase::Prepared,
        Phase::Run,
        Phase::ExitedGarbage,
    ];

    /// Directory name under `pods/`.
    pub fn dir_name(self) -> &'static str {
        match self {
            Phase::Embryo => "embryo",
            Phase::Prepare => "prepare",
            Phase::Prepared => "prepared",
            Phase::Run => "run",
            Phase::ExitedGarbage => "exited-garbage",
            Phase::Garbage => "garbage",
        }
    }

    /// The state of a pod in this phase, given whether its dir is locked.
    pub fn state(self, locked: bool) -> State {
        match (self, locked) {
            (Phase::Embryo, _) => State::Embryo,
            (Phase::Prepare, true) => State::Preparing,
            (Phase::Prepare, false) => State::AbortedPrepare,
            (Phase::Prepared, _) => State::Prepared,
            (Phase::Run, true) => State::Running,
            (Phase::Run, false) => State::Exited,
            (Phase::ExitedGarbage, true) => State::ExitedDeleting,
            (Phase::ExitedGarbage, false) => State::ExitedGarbage,
            (Phase::Garbage, true) => State::Deleting,
            (Phase::Garbage, false) => State::Garbage,
        }
    }
}

/// A pod's state, as rkt names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// `embryo`
    Embryo,
    /// `preparing`
    Preparing,
    /// `aborted prepare`
    AbortedPrepare,
    /// `prepared`
    Prepared,
    /// `running`
    Running,
    /// `deleting`
    Deleting,
    /// `exited deleting`
    ExitedDeleting,
    /// `exited`
    Exited,
    /// `exited garbage`
    ExitedGarbage,
    /// `garbage`
    Garbage,
}

impl State {
    /// rkt's string.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Embryo => "embryo",
            State::Preparing => "preparing",
            State::AbortedPrepare => "aborted prepare",
            State::Prepared => "prepared",
            State::Running => "running",
            State::Deleting => "deleting",
            State::ExitedDeleting => "exited deleting",
            State::Exited => "exited",
            State::ExitedGarbage => "exited garbage",
            State::Garbage => "garbage",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pod found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEntry {
    /// The UUID.
    pub uuid: String,
    /// Its phase dir.
    pub phase: Phase,
}

/// The `pods/` tree of a data dir.
#[derive(Debug, Clone)]
pub struct Pods {
    root: PathBuf,
}

/// Whether a lock attempt found the dir locked by someone else.
fn is_busy(e: Errno) -> bool {
    e == Errno::EWOULDBLOCK || e == Errno::EAGAIN
}

impl Pods {
    /// The pods tree of data dir `data_dir` (nothing is created yet).
    pub fn new(data_dir: &Path) -> Self {
        Pods {
            root: data_dir.join("pods"),
        }
    }

    /// `<data>/pods`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<data>/pods/<phase>`.
    pub fn phase_dir(&self, phase: Phase) -> PathBuf {
        self.root.join(phase.dir_name())
    }

    /// `<data>/pods/<phase>/<uuid>`.
    pub fn path(&self, phase: Phase, uuid: &str) -> PathBuf {
        self.phase_dir(phase).join(uuid)
    }

    /// Create the phase dirs (0750) if missing.
    pub fn ensure_dirs(&self) -> Result<()> {
        for p in Phase::ALL {
            let d = self.phase_dir(p);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(&d)
                .map_err(|e| Error::io("creating pods dir", &d, e))?;
        }
        Ok(())
    }

    /// UUIDs in one phase dir (a missing dir is empty).
    pub fn list_phase(&self, phase: Phase) -> Result<Vec<String>> {
        let d = self.phase_dir(phase);
        let rd = match fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(Error::io("reading pods dir", &d, e)),
        };
        let mut v: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| uuid::Uuid::parse_str(n).is_ok())
            .collect();
        v.sort();
        Ok(v)
    }

    /// Every pod in the given phases.
    pub fn list(&self, phases: &[Phase]) -> Result<Vec<PodEntry>> {
        let mut out = Vec::new();
        for &phase in phases {
            for uuid in self.list_phase(phase)? {
                out.push(PodEntry { uuid, phase });
            }
        }
        Ok(out)
    }

    /// The phase a pod with exactly this UUID is in now, if any.
    pub fn locate(&self, uuid: &str) -> Option<Phase> {
        Phase::ALL
            .into_iter()
            .find(|&p| self.path(p, uuid).is_dir())
    }

    /// Resolve a UUID argument (any unique prefix, case-insensitive) among the visible phases,
    /// with rkt's errors.
    pub fn find(&self, arg: &str) -> Result<PodEntry> {
        let prefix = arg.trim().to_ascii_lowercase();
        if prefix.is_empty() {
            return Err(Error::EmptyUuid);
        }
        let mut matches: Vec<PodEntry> = self
            .list(&Phase::VISIBLE)?
            .into_iter()
            .filter(|e| e.uuid.starts_with(&prefix))
            .collect();
        matches.dedup_by(|a, b| a.uuid == b.uuid);
        match matches.len() {
            0 => Err(Error::NoMatch(arg.to_string())),
            1 => Ok(matches.remove(0)),
            n => Err(Error::Ambiguous(n)),
        }
    }

    /// Probe whether a pod dir is locked (`flock(LOCK_SH|LOCK_NB)`). `None` when it is gone.
    pub fn probe_locked(&self, phase: Phase, uuid: &str) -> Result<Option<bool>> {
        let p = self.path(phase, uuid);
        let f = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("opening pod dir", &p, e)),
        };
        match Flock::lock(f, FlockArg::LockSharedNonblock) {
            Ok(_unlocked_on_drop) => Ok(Some(false)),
            Err((_, e)) if is_busy(e) => Ok(Some(true)),
            Err((_, e)) => Err(Error::io("probing pod lock", &p, e.into())),
        }
    }

    /// The current state of a pod, following it if it moves while probed. `None` when gone.
    pub fn state(&self, uuid: &str) -> Result<Option<(Phase, State)>> {
        for _ in 0..5 {
            let Some(phase) = self.locate(uuid) else {
                return Ok(None);
            };
            if let Some(locked) = self.probe_locked(phase, uuid)? {
                return Ok(Some((phase, phase.state(locked))));
            }
        }
        Ok(None)
    }

    /// Create a new pod: mkdir `embryo/<uuid>` (0750), lock it exclusively, rename it to
    /// `prepare/<uuid>`. The returned handle holds the lock.
    ///
    /// A creator holds a shared lock on the `embryo/` phase dir for the few syscalls a pod
    /// spends there, so gc (which takes it exclusively, see [`Pods::lock_embryos`]) knows that
    /// any embryo it sees then was left by a creator that died.
    pub fn create(&self, uuid: &str) -> Result<LockedPod> {
        self.ensure_dirs()?;
        let _creating = self.embryo_dir_lock(FlockArg::LockShared)?;
        let embryo = self.path(Phase::Embryo, uuid);
        fs::DirBuilder::new()
            .mode(0o750)
            .create(&embryo)
            .map_err(|e| Error::io("creating pod dir", &embryo, e))?;
        let f = File::open(&embryo).map_err(|e| Error::io("opening pod dir", &embryo, e))?;
        let lock = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((_, e)) => {
                let _ = fs::remove_dir(&embryo);
                return Err(Error::io("locking pod dir", &embryo, e.into()));
            }
        };
        let mut pod = LockedPod {
            pods: self.clone(),
            uuid: uuid.to_string(),
            phase: Phase::Embryo,
            lock,
        };
        if let Err(e) = pod.transition(Phase::Prepare) {
            let _ = fs::remove_dir(&embryo);
            return Err(e);
        }
        Ok(pod)
    }

    fn embryo_dir_lock(&self, arg: FlockArg) -> Result<Flock<File>> {
        let d = self.phase_dir(Phase::Embryo);
        let f = File::open(&d).map_err(|e| Error::io("opening pods dir", &d, e))?;
        Flock::lock(f, arg).map_err(|(_, e)| Error::io("locking pods dir", &d, e.into()))
    }

    /// For gc: wait (up to about a second) until no pod is being created and hold that off.
    /// While the returned guard lives, every dir in `embryo/` is a crashed creator's leftover.
    /// `None` when creators kept the dir busy.
    pub fn lock_embryos(&self) -> Result<Option<Flock<File>>> {
        self.ensure_dirs()?;
        for _ in 0..100 {
            match self.embryo_dir_lock(FlockArg::LockExclusiveNonblock) {
                Ok(l) => return Ok(Some(l)),
                Err(Error::Io { source, .. })
                    if source.raw_os_error() == Some(Errno::EWOULDBLOCK as i32) => {}
                Err(e) => return Err(e),
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Ok(None)
    }

    /// Lock an existing pod exclusively without waiting. Errors with `PodState{what: busy}`
    /// when someone else holds the lock, and `NoMatch` when the pod is not in `phase`.
    pub fn lock(&self, phase: Phase, uuid: &str) -> Result<LockedPod> {
        let p = self.path(phase, uuid);
        let f = File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::NoMatch(uuid.to_string())
            } else {
                Error::io("opening pod dir", &p, e)
            }
        })?;
        let lock = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((_, e)) if is_busy(e) => {
                return Err(Error::PodState {
                    uuid: uuid.to_string(),
                    what: "locked by another process".into(),
                })
            }
            Err((_, e)) => return Err(Error::io("locking pod dir", &p, e.into())),
        };
        // The dir may have moved between open and lock: the rename below is the arbiter, but
        // make sure the handle's phase is where the dir is now.
        if !p.is_dir() {
            return Err(Error::NoMatch(uuid.to_string()));
        }
        Ok(LockedPod {
            pods: self.clone(),
            uuid: uuid.to_string(),
            phase,
            lock,
        })
    }
}

/// A pod dir this process holds the exclusive lock on. Dropping it releases the lock (unless
/// the process execs stage1 first, which inherits the lock fd).
#[derive(Debug)]
pub struct LockedPod {
    pods: Pods,
    uuid: String,
    phase: Phase,
    lock: Flock<File>,
}

impl LockedPod {
    /// The pod UUID.
    pub fn uuid(&self) -> &str {
        &self.uuid
    }
    /// Its current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }
    /// Its current path.
    pub fn path(&self) -> PathBuf {
        self.pods.path(self.phase, &self.uuid)
    }
    /// The pods tree it lives in.
    pub fn pods(&self) -> &Pods {
        &self.pods
    }
    /// The fd holding the lock (for `RKT_LOCK_FD`).
    pub fn lock_fd(&self) -> RawFd {
        self.lock.as_raw_fd()
    }

    /// Move the pod to another phase dir (`rename(2)`, keeping the lock). A missing source
    /// means another process moved the pod first: reported as `PodState`.
    pub fn transition(&mut self, to: Phase) -> Result<()> {
        let from = self.path();
        let dest = self.pods.path(to, &self.uuid);
        self.pods.ensure_dirs()?;
        match fs::rename(&from, &dest) {
            Ok(()) => {
                tracing::debug!(uuid = %self.uuid, from = ?self.phase, to = ?to, "pod transition");
                self.phase = to;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::PodState {
                uuid: self.uuid.clone(),
                what: format!("no longer in {}", self.phase.dir_name()),
            }),
            Err(e) => Err(Error::io("moving pod dir", &from, e)),
        }
    }

    /// Release the lock.
    pub fn unlock(self) {
        drop(self.lock);
    }
}

/// Open (creating it) the lock file `path` and hold an exclusive flock on it, waiting for it:
/// the locks that serialise a step rather than mark a pod (the id-range claims, a mutable
/// pod's app changes).
pub(crate) fn lock_file(path: &Path) -> Result<Flock<File>> {
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("opening", path, e))?;
    Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| Error::io("locking", path, e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "6f1e2b4c-0000-4000-8000-000000000001";
    const U2: &str = "6f1e2b4c-0000-4000-8000-000000000002";
    const U3: &str = "7a000000-0000-4000-8000-000000000003";

    #[test]
    fn create_locks_and_moves_to_prepare() {
        let d = tempfile::tempdir().unwrap();
        let pods = Pods::new(d.path());
        let mut pod = pods.create(U1).unwrap();
        assert_eq!(pod.phase(), Phase::Prepare);
        assert!(pods.path(Phase::Prepare, U1).is_dir());
        assert!(!pods.path(Phase::Embryo, U1).exists());
        assert_eq!(
            pods.state(U1).unwrap(),
            Some((Phase::Prepare, State::Preparing))
        );
        // another locker loses
        assert!(matches!(
            pods.lock(Phase::Prepare, U1),
            Err(Error::PodState { .. })
        ));
        pod.transition(Phase::Run).unwrap();
        assert_eq!(pods.state(U1).unwrap(), Some((Phase::Run, State::Running)));
        pod.unlock();
        assert_eq!(pods.state(U1).unwrap(), Some((Phase::Run, State::Exited)));
        assert_eq!(pods.state(U2).unwrap(), None);
        // creating the same uuid twice fails
        assert!(pods.create(U1).is_err() || pods.locate(U1).is_some());
    }

    #[test]
    fn aborted_prepare_and_prepared() {
        let d = tempfile::tempdir().unwrap();
        let pods = Pods::new(d.path());
        pods.create(U1).unwrap().unlock();
        assert_eq!(
            pods.state(U1).unwrap(),
            Some((Phase::Prepare, State::AbortedPrepare))
        );
        let mut p = pods.create(U2).unwrap();
        p.transition(Phase::Prepared).unwrap();
        p.unlock();
        assert_eq!(
            pods.state(U2).unwrap(),
            Some((Phase::Prepared, State::Prepared))
        );
    }

    #[test]
    fn only_one_racer_moves_a_pod() {
        let d = tempfile::tempdir().unwrap();
        let pods = Pods::new(d.path());
        let mut p = pods.create(U1).unwrap();
        p.transition(Phase::Prepared).unwrap();
        p.unlock();
        let mut a = pods.lock(Phase::Prepared, U1).unwrap();
        // b opened before a's rename but cannot lock while a holds it
        assert!(pods.lock(Phase::Prepared, U1).is_err());
        a.transition(Phase::Run).unwrap();
        drop(a);
        // after the move, a late racer finds nothing in prepared/
        assert!(matches!(
            pods.lock(Phase::Prepared, U1),
            Err(Error::NoMatch(_))
        ));
    }

    #[test]
    fn uuid_prefixes_resolve_with_rkts_errors() {
        let d = tempfile::tempdir().unwrap();
        let pods = Pods::new(d.path());
        for u in [U1, U2, U3] {
            pods.create(u).unwrap().unlock();
        }
        assert_eq!(pods.find("7A").unwrap().uuid, U3);
        assert_eq!(pods.find(U2).unwrap().uuid, U2);
        assert_eq!(
            pods.find("6f1e").unwrap_err().to_string(),
            "ambiguous uuid, 2 matches"
        );
        assert_eq!(
            pods.find("ff").unwrap_err().to_string(),
            "no matches found for \"ff\""
        );
        assert_eq!(
            pods.find("").unwrap_err().to_string(),
            "UUID cannot be empty"
        );
        // garbage is hidden from lookups
        let mut p = pods.lock(Phase::Prepare, U3).unwrap();
        p.transition(Phase::Garbage).unwrap();
        assert!(pods.find("7a").is_err());
    }

    #[test]
    fn state_strings_are_rkts() {
        let all: Vec<String> = Phase::ALL
            .iter()
            .flat_map(|p| [p.state(true), p.state(false)])
            .map(|s| s.to_string())
            .collect();
        for s in [
            "embryo",
            "preparing",
            "aborted prepare",
            "prepared",
            "running",
            "deleting",
            "exited deleting",
            "exited",
            "exited garbage",
            "garbage",
        ] {
            assert!(all.iter().any(|x| x == s), "{s}");
        }
    }
}
