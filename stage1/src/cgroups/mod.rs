//! The pod's cgroups: one pod cgroup and one per app, in every cgroup v1 hierarchy (hybrid and
//! legacy hosts) or in the unified hierarchy (pure cgroup v2).
//!
//! Per v1 hierarchy the pod cgroup nests under stage1's own cgroup of that hierarchy when that is
//! not the root (a systemd unit, a delegated subtree), else it is `/rkt/<uuid>`. libcontainer
//! only takes one path for all v1 hierarchies, so the helper process that creates an app moves
//! itself into the app's cgroups first (an empty `cgroupsPath` means "the caller's cgroups").
//! stage1 and the sandbox stay in the caller's cgroups; the pod cgroup holds the apps. In a
//! cgroup v2 tree delegated to it (systemd's `Delegate=yes`) stage1 first moves itself into the
//! leaf `<own>/supervisor` (no internal processes; [`SUPERVISOR_LEAF`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use stage1_abi::Isolators;

use crate::Error;

/// What can go wrong with the pod's cgroups.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No cgroup file system is mounted.
    #[error("no cgroup hierarchy found")]
    NoHierarchy,
    /// `mkdir` of a cgroup failed.
    #[error("creating cgroup {}: {source}", dir.display())]
    Create {
        /// The cgroup dir.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing a cgroup file failed.
    #[error("writing {value:?} to {}: {source}", file.display())]
    Write {
        /// The file.
        file: PathBuf,
        /// What was written.
        value: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A limit needs a v2 controller the pod's cgroup does not have.
    #[error(
        "{flag} needs the cgroup v2 {controller:?} controller, which {} does not have (available: {available})",
        dir.display()
    )]
    MissingV2Controller {
        /// The flag that sets the limit.
        flag: String,
        /// The controller.
        controller: String,
        /// The cgroup.
        dir: PathBuf,
        /// What it has (`none`).
        available: String,
    },
    /// `--pids-limit` on a v1 host without the pids hierarchy.
    #[error("--pids-limit needs the cgroup \"pids\" controller, which this host does not mount")]
    NoPidsHierarchy,
    /// The thread self-move needs a single-threaded caller.
    #[error("moving into the app's cgroups: the calling process has several threads")]
    SeveralThreads,
    /// Processes outlived the kill deadline.
    #[error("processes still alive in cgroups {} after {after:?}", dirs.join(", "))]
    StillAlive {
        /// The busy cgroups.
        dirs: Vec<String>,
        /// The deadline.
        after: std::time::Duration,
    },
    /// An emptied cgroup could not be removed.
    #[error("removing cgroup {}: {source}", dir.display())]
    Remove {
        /// The cgroup dir.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The helper's view without v1 hierarchies could not be made
    /// ([`crate::libcontainer_bypass::hide_v1_from_libcontainer`]).
    #[error("hiding the cgroup v1 hierarchies from libcontainer: {what}: {source}")]
    HideV1 {
        /// The step.
        what: &'static str,
        /// The cause.
        source: nix::errno::Errno,
    },
}

pub mod cpus;
mod kill;

pub use kill::{kill_all, remove_listed, KILL_DEADLINE};

/// One mounted hierarchy and where stage1 sits in it.
#[derive(Debug, Clone)]
struct Hierarchy {
    /// Host dir of stage1's original cgroup in this hierarchy.
    #[allow(dead_code)]
    own_dir: PathBuf,
    /// Host dir of the pod cgroup.
    pod_dir: PathBuf,
    /// Controllers (or `name=systemd`), empty for unified.
    controllers: Vec<String>,
    unified: bool,
}

/// Device access of apps (v1 devices controller), as rkt's `DevicePolicy=closed` plus the
/// standard devices and Docker's "mknod anything, use only these" rules.
pub const DEVICE_ALLOW: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",    // null
    "c 1:5 rwm",    // zero
    "c 1:7 rwm",    // full
    "c 1:8 rwm",    // random
    "c 1:9 rwm",    // urandom
    "c 5:0 rwm",    // tty
    "c 5:1 rwm",    // console
    "c 5:2 rwm",    // ptmx
    "c 136:* rwm",  // pts
    "c 10:200 rwm", // tun
];

/// The pod's cgroups. Dropping does nothing: call [`remove_listed`] on the pod's list at teardown.
#[derive(Debug)]
pub struct PodCgroups {
    hier: Vec<Hierarchy>,
    list_file: PathBuf,
    /// stage1 runs in a cgroup v2 tree systemd delegated to it (a unit or scope of its own).
    delegated: bool,
}

/// A cgroup mount: (mount point, root, controllers, unified).
type CgMount = (PathBuf, String, Vec<String>, bool);

fn parse_mounts() -> Result<Vec<CgMount>, Error> {
    let mut out = Vec::new();
    for m in crate::mountinfo::read_self()? {
        let unified = m.fs_type == "cgroup2";
        if m.fs_type != "cgroup" && !unified {
            continue;
        }
        let ctrls: Vec<String> = m
            .super_options
            .split(',')
            .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("release_agent"))
            .filter(|o| {
                !matches!(
                    *o,
                    "nsdelegate" | "memory_recursiveprot" | "clone_children" | "noprefix"
                )
            })
            .map(str::to_string)
            .collect();
        out.push((
            m.mount_point,
            m.root.to_string_lossy().into_owned(),
            ctrls,
            unified,
        ));
    }
    Ok(out)
}

fn self_cgroups() -> Result<Vec<(Vec<String>, String)>, Error> {
    let s = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| Error::io(Path::new("/proc/self/cgroup"), e))?;
    Ok(s.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _ = it.next()?;
            let c = it.next()?;
            let p = it.next()?;
            let ctrls = if c.is_empty() {
                vec![]
            } else {
                c.split(',').map(str::to_string).collect()
            };
            Some((ctrls, p.to_string()))
        })
        .collect())
}

/// Name of the leaf stage1 moves into inside a cgroup delegated to it (below).
pub const SUPERVISOR_LEAF: &str = "supervisor";

/// Whether systemd delegated `dir` (`Delegate=yes` of a unit or scope): it marks such cgroups
/// with the `trusted.delegate` (as root) or `user.delegate` xattr set to `1` (systemd ≥ 251).
fn is_delegated(dir: &Path) -> bool {
    ["trusted.delegate", "user.delegate"]
        .iter()
        .any(|a| matches!(xattr::get(dir, a), Ok(Some(v)) if v == b"1"))
}

/// This process's cgroup v2 dir (`mine`, of the unified mount in `mounts`) if systemd
/// delegated it (never the root).
fn delegated_v2_dir(mounts: &[CgMount], mine: &[(Vec<String>, String)]) -> Option<PathBuf> {
    let (mp, root, _, _) = mounts.iter().find(|m| m.3)?;
    let (_, own) = mine.iter().find(|(c, _)| c.is_empty())?;
    let rel = own.strip_prefix(root.as_str()).unwrap_or(own);
    let dir = join_rel(mp, rel);
    (!rel.trim_matches('/').is_empty() && is_delegated(&dir)).then_some(dir)
}

/// cgroup v2's no-internal-processes rule: a cgroup whose children get controllers holds no
/// process itself. In a cgroup delegated to it stage1 is such a process (the unit's main
/// process), so before it makes the pod's cgroups beside it, it moves itself into the leaf
/// `<own>/supervisor`, where the pod's PID 1 follows it; the apps go into the pod cgroup.
/// Not recorded as the pod's: it holds stage1 to the end, and the delegating unit's stop
/// removes it with the rest of its subtree.
fn enter_supervisor_leaf(own: &Path) -> Result<(), Error> {
    let leaf = own.join(SUPERVISOR_LEAF);
    match fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => return Err(CgroupError::Create { dir: leaf, source }.into()),
    }
    write_cg(&leaf, "cgroup.procs", &std::process::id().to_string())
}

fn join_rel(base: &Path, rel: &str) -> PathBuf {
    base.join(rel.trim_start_matches('/'))
}

/// `mkdir -p` of a cgroup dir, recording the dirs it made (outermost first). Tries the dir
/// first: usually only its last component is missing, so that is one `mkdir` instead of a stat
/// of each level.
fn mkdir_p(dir: &Path, created: &mut Vec<PathBuf>) -> Result<(), Error> {
    let mut res = fs::create_dir(dir);
    if let (Err(e), Some(parent)) = (&res, dir.parent()) {
        if e.kind() == std::io::ErrorKind::NotFound {
            mkdir_p(parent, created)?;
            res = fs::create_dir(dir);
        }
    }
    match res {
        Ok(()) => {
            created.push(dir.to_path_buf());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CgroupError::Create {
            dir: dir.to_path_buf(),
            source,
        }
        .into()),
    }
}

fn write_cg(dir: &Path, file: &str, val: &str) -> Result<(), Error> {
    let p = dir.join(file);
    fs::write(&p, val).map_err(|source| {
        CgroupError::Write {
            file: p.clone(),
            value: val.to_string(),
            source,
        }
        .into()
    })
}

/// A limit needs `controller` in the unified cgroup `dir`; without it the kernel only says
/// "permission denied" for the missing file, so say which controller is missing.
fn need_v2_controller(dir: &Path, controller: &str, flag: &str) -> Result<(), Error> {
    let have = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    if have.split_whitespace().any(|c| c == controller) {
        return Ok(());
    }
    Err(CgroupError::MissingV2Controller {
        flag: flag.to_string(),
        controller: controller.to_string(),
        dir: dir.to_path_buf(),
        available: if have.trim().is_empty() {
            "none"
        } else {
            have.trim()
        }
        .to_string(),
    }
    .into())
}

/// How deep a pod with private users may nest cgroups below its app's delegated cgroup.
pub const DELEGATED_MAX_DEPTH: u32 = 16;
/// How many cgroups it may make there.
pub const DELEGATED_MAX_DESCENDANTS: u32 = 1024;

impl PodCgroups {
    /// Whether stage1 runs in a cgroup systemd delegated to it (`Delegate=yes`: the unit or
    /// scope is the pod's own), and moved into its `supervisor` leaf.
    pub fn delegated(&self) -> bool {
        self.delegated
    }

    /// Whether the pod's cgroups live in v1 hierarchies (legacy or hybrid host) — then
    /// libcontainer uses its v1 manager — rather than only in the unified hierarchy.
    pub fn uses_v1(&self) -> bool {
        self.hier.iter().any(|h| !h.unified)
    }

    /// Create the pod cgroup in every hierarchy, record it in `list_file` and move stage1 in.
    pub fn create(uuid: &str, list_file: &Path) -> Result<Self, Error> {
        let mounts = parse_mounts()?;
        let mut mine = self_cgroups()?;
        let any_v1 = mounts.iter().any(|m| !m.3);
        // pure v2 only: the delegated dir stage1 runs in, or else, under systemd, a delegated
        // scope of the pod's own (a cgroup systemd manages is not ours to write)
        let mut delegated_dir = None;
        if !any_v1 {
            delegated_dir = delegated_v2_dir(&mounts, &mine);
            if delegated_dir.is_none() && crate::systemd::booted() {
                match crate::systemd::move_into_scope(uuid) {
                    Ok(()) => {
                        mine = self_cgroups()?;
                        delegated_dir = delegated_v2_dir(&mounts, &mine);
                    }
                    Err(e) => tracing::warn!(
                        "asking systemd for scope {}: {e}; the pod nests under this process's \
                         cgroup",
                        crate::systemd::scope_name(uuid)
                    ),
                }
            }
        }
        if let Some(d) = &delegated_dir {
            enter_supervisor_leaf(d)?;
        }
        let delegated = delegated_dir.is_some();
        let mut hier = Vec::new();
        for (mp, root, ctrls, unified) in mounts {
            // on hybrid hosts resources are controlled through v1 only
            if unified && any_v1 {
                continue;
            }
            let own = mine.iter().find(|(c, _)| {
                if unified {
                    c.is_empty()
                } else {
                    !c.is_empty() && c.iter().all(|x| ctrls.contains(x))
                }
            });
            let Some((_, own)) = own else { continue };
            let rel = own.strip_prefix(root.as_str()).unwrap_or(own);
            let own_dir = join_rel(&mp, rel);
            let pod_dir = if rel.trim_matches('/').is_empty() {
                join_rel(&mp, &format!("{}/{uuid}", stage1_abi::cgroup::ROOT_PARENT))
            } else {
                own_dir.join(stage1_abi::cgroup::nested_name(uuid))
            };
            // every v1 hierarchy, without exception: libcontainer's clean-up after a failed
            // create kills every process in the creating helper's cgroups, so the helper must
            // sit in the app's private cgroup in all of them (never in a shared one such as
            // the root of an unused hierarchy)
            let controllers = if unified { vec![] } else { ctrls };
            hier.push(Hierarchy {
                own_dir,
                pod_dir,
                controllers,
                unified,
            });
        }
        if hier.is_empty() {
            return Err(CgroupError::NoHierarchy.into());
        }
        let this = PodCgroups {
            hier,
            list_file: list_file.to_path_buf(),
            delegated,
        };
        // Write-ahead: the pod dirs are recorded before they exist, so a stage1 killed between
        // mkdir and record leaves nothing `rkt gc` cannot find. Only the pod's own dirs are
        // recorded, never shared parents such as /rkt; removal ignores missing dirs.
        this.record(this.hier.iter().map(|h| &h.pod_dir))?;
        for h in &this.hier {
            let mut created = Vec::new();
            mkdir_p(&h.pod_dir, &mut created)?;
            if !created.is_empty() && h.controllers.iter().any(|c| c == "cpuset") {
                init_cpuset(&h.pod_dir)?;
            }
            if h.unified {
                // each level must pass the controllers down to the next one; shared levels
                // too, which a concurrent `rkt run` may have made without enabling them yet
                let mut levels: Vec<&Path> = h
                    .pod_dir
                    .ancestors()
                    .take_while(|d| d.starts_with(&h.own_dir))
                    .collect();
                levels.reverse();
                for d in levels {
                    enable_v2_controllers(d);
                }
            }
        }
        Ok(this)
    }

    /// `--pids-limit`: at most `max` tasks (processes and threads) in the pod cgroup, all apps
    /// and whatever they start together (`pids.max`, v1 `pids` hierarchy or the v2 `pids`
    /// controller; the app cgroups below it count against it). `None`: no limit. Without the
    /// controller a `required` limit (asked for with the flag) is an error naming it, rkt's
    /// default limit is skipped.
    pub fn limit_pids(&self, max: Option<u64>, required: bool) -> Result<(), Error> {
        let Some(max) = max else { return Ok(()) };
        let mut done = false;
        for h in &self.hier {
            if h.unified {
                match need_v2_controller(&h.pod_dir, "pids", "--pids-limit") {
                    Ok(()) => {}
                    Err(e) if required => return Err(e),
                    Err(e) => {
                        tracing::debug!("default pids limit skipped: {e}");
                        continue;
                    }
                }
            } else if !h.controllers.iter().any(|c| c == "pids") {
                continue;
            }
            write_cg(&h.pod_dir, "pids.max", &max.to_string())?;
            done = true;
        }
        if !done && required && !self.is_unified() {
            return Err(CgroupError::NoPidsHierarchy.into());
        }
        Ok(())
    }

    /// Append those of `dirs` that do not exist yet to the list file, in one write.
    fn record<'d>(&self, dirs: impl Iterator<Item = &'d PathBuf>) -> Result<(), Error> {
        let mut lines = String::new();
        for d in dirs.filter(|d| !d.exists()) {
            lines.push_str(&format!("{}\n", d.display()));
        }
        if lines.is_empty() {
            return Ok(());
        }
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.list_file)
            .map_err(|e| Error::io(&self.list_file, e))?;
        f.write_all(lines.as_bytes())
            .map_err(|e| Error::io(&self.list_file, e))
    }

    /// Whether this is the pure cgroup v2 layout.
    pub fn is_unified(&self) -> bool {
        self.hier.iter().all(|h| h.unified)
    }

    /// Record the app's cgroups in the list file before they exist (write-ahead, as for the
    /// pod dirs): stage1 calls this, then the app's helper creates them ([`Self::create_app`]).
    pub fn record_app(&self, app: &str) -> Result<(), Error> {
        let dirs: Vec<PathBuf> = self.hier.iter().map(|h| h.pod_dir.join(app)).collect();
        self.record(dirs.iter())
    }

    /// Create the app's cgroups (device allow-list included; limits come later) under the pod
    /// cgroups [`Self::create`] made. Each app's helper does this for its own app, beside
    /// stage1's set-up, after stage1 called [`Self::record_app`].
    pub fn create_app(&self, app: &str) -> Result<(), Error> {
        for h in &self.hier {
            let d = h.pod_dir.join(app);
            let mut created = Vec::new();
            mkdir_p(&d, &mut created)?;
            if h.controllers.iter().any(|c| c == "cpuset") {
                init_cpuset(&d)?;
            }
            if h.controllers.iter().any(|c| c == "devices") {
                write_cg(&d, "devices.deny", "a")?;
                for rule in DEVICE_ALLOW {
                    write_cg(&d, "devices.allow", rule)?;
                }
            }
        }
        Ok(())
    }

    /// Kill whatever is left in the app's cgroups (see [`kill::clear`]) and, with `remove`,
    /// remove them: an app of a mutable pod that is started again or removed.
    pub fn clear_app(&self, app: &str, remove: bool) -> Result<(), Error> {
        let dirs: Vec<PathBuf> = self.hier.iter().map(|h| h.pod_dir.join(app)).collect();
        kill::clear(&dirs, remove)
    }

    /// Delegate the app's cgroup in each cgroup v2 hierarchy to `owner` (the host uid of a
    /// pod's root with private users), as cgroups(7) describes for an unprivileged delegatee:
    /// the dir and its `cgroup.procs`, `cgroup.threads` and `cgroup.subtree_control`. The pod
    /// may then make sub-cgroups and move its processes below its own cgroup, never above it
    /// or change its limits (those files stay the host's). v1 hierarchies are not delegated:
    /// their files are not safe to hand to an unprivileged owner.
    pub fn delegate_app(&self, app: &str, owner: u32) -> Result<(), Error> {
        let id = Some(owner);
        for h in self.hier.iter().filter(|h| h.unified) {
            let d = h.pod_dir.join(app);
            // bounds on what the pod can build below it (its own files cannot raise them):
            // teardown walks the tree
            write_cg(&d, "cgroup.max.depth", &DELEGATED_MAX_DEPTH.to_string())?;
            write_cg(
                &d,
                "cgroup.max.descendants",
                &DELEGATED_MAX_DESCENDANTS.to_string(),
            )?;
            std::os::unix::fs::chown(&d, id, id).map_err(|e| Error::io(&d, e))?;
            for f in ["cgroup.procs", "cgroup.threads", "cgroup.subtree_control"] {
                let p = d.join(f);
                match std::os::unix::fs::chown(&p, id, id) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(&p, e)),
                }
            }
        }
        Ok(())
    }

    /// Allow the app's v1 devices cgroup these rules (`a` or `c MAJ:MIN rwm` lines: a
    /// privileged CRI container, devices given to it); v2 rules are the spec's.
    pub fn allow_devices(&self, app: &str, rules: &[String]) -> Result<(), Error> {
        for h in self.hier.iter().filter(|h| !h.unified) {
            if h.controllers.iter().any(|c| c == "devices") {
                for r in rules {
                    write_cg(&h.pod_dir.join(app), "devices.allow", r)?;
                }
            }
        }
        Ok(())
    }

    /// Whether the app was killed by the kernel's OOM killer in its memory cgroup (v1
    /// `memory.oom_control`'s or v2 `memory.events`' `oom_kill` count).
    pub fn app_oom_killed(&self, app: &str) -> bool {
        self.hier.iter().any(|h| {
            let d = h.pod_dir.join(app);
            let f = if h.unified {
                d.join("memory.events")
            } else if h.controllers.iter().any(|c| c == "memory") {
                d.join("memory.oom_control")
            } else {
                return false;
            };
            fs::read_to_string(f).is_ok_and(|s| {
                s.lines().any(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .is_some_and(|n| n > 0)
                })
            })
        })
    }

    /// Apply the app's resource limits. Called once the app's process exists and before it
    /// starts, so that the limits bind the app and not the set-up machinery.
    pub fn apply_limits(&self, app: &str, iso: &Isolators) -> Result<(), Error> {
        for h in &self.hier {
            let d = h.pod_dir.join(app);
            if h.unified {
                if let Some(m) = iso.memory_limit {
                    need_v2_controller(&d, "memory", "--memory")?;
                    write_cg(&d, "memory.max", &m.to_string())?;
                }
                if let Some(c) = iso.cpu_millis {
                    need_v2_controller(&d, "cpu", "--cpu")?;
                    write_cg(&d, "cpu.max", &format!("{} 100000", c * 100))?;
                }
                if let Some(s) = iso.cpu_shares {
                    need_v2_controller(&d, "cpu", "--cpu-shares")?;
                    // v1 shares [2, 262144] → v2 weight [1, 10000]
                    let w = 1 + ((s.clamp(2, 262144) - 2) * 9999) / 262142;
                    write_cg(&d, "cpu.weight", &w.to_string())?;
                }
                continue;
            }
            if h.controllers.iter().any(|c| c == "memory") {
                if let Some(m) = iso.memory_limit {
                    write_cg(&d, "memory.limit_in_bytes", &m.to_string())?;
                }
            }
            if h.controllers.iter().any(|c| c == "cpu") {
                if let Some(c) = iso.cpu_millis {
                    write_cg(&d, "cpu.cfs_period_us", "100000")?;
                    write_cg(&d, "cpu.cfs_quota_us", &(c * 100).to_string())?;
                }
                if let Some(s) = iso.cpu_shares {
                    write_cg(&d, "cpu.shares", &s.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// The app's cgroup dir in the hierarchy holding `controller` (for tests and enter).
    pub fn app_dir(&self, app: &str, controller: &str) -> Option<PathBuf> {
        self.hier
            .iter()
            .find(|h| h.unified || h.controllers.iter().any(|c| c == controller))
            .map(|h| h.pod_dir.join(app))
    }

    /// Relative path of the app's cgroup for libcontainer's `cgroupsPath`: empty on v1 (stage1
    /// moved itself into the app cgroups), the path under the root on v2.
    pub fn libcontainer_path(&self, app: &str) -> String {
        if self.is_unified() {
            let h = &self.hier[0];
            let full = h.pod_dir.join(app);
            let s = full.to_string_lossy().into_owned();
            s.strip_prefix("/sys/fs/cgroup").unwrap_or(&s).to_string()
        } else {
            String::new()
        }
    }

    /// Move the calling process (stage1's helper) into the app's cgroups (v1), so libcontainer
    /// puts the app there.
    ///
    /// The caller must be single-threaded (a child forked from single-threaded stage1): the move
    /// is of the calling *thread* — `0` written to each hierarchy's `tasks` file — which for a
    /// single-threaded process is the whole process. A thread that moves itself is moved
    /// without the global `cgroup_threadgroup_rwsem` write lock, whereas writing a PID to
    /// `cgroup.procs` takes it and, after a quiet spell, waits for an RCU grace period first
    /// (≈ 10–18 ms on this kernel, 0.3 ms for the self-move; docs/performance.md). On kernels
    /// without that shortcut the self-move is just as correct and merely waits as well.
    pub fn enter_app(&self, app: &str) -> Result<(), Error> {
        if self.is_unified() {
            return Ok(());
        }
        if !single_threaded() {
            return Err(CgroupError::SeveralThreads.into());
        }
        for h in &self.hier {
            write_cg(&h.pod_dir.join(app), "tasks", "0")?;
        }
        Ok(())
    }
}

/// Whether the calling process has exactly one thread (`Threads:` of /proc/self/status).
pub(crate) fn single_threaded() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|s| threads_of_status(&s) == Some(1))
}

fn threads_of_status(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Give a new cpuset cgroup its parent's `cpuset.cpus` and `cpuset.mems`: v1 leaves them
/// empty, and a task cannot join a cpuset without cpus (ENOSPC). An empty parent is filled
/// first, from its own parent: a concurrent `rkt run` may have made a shared level such as
/// `/rkt` and not filled it yet. Every writer copies the same values down, so racing is harmless.
fn init_cpuset(dir: &Path) -> Result<(), Error> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        inherit_cpuset(dir, f)?;
    }
    Ok(())
}

/// The value of cpuset file `f` in `dir`, copied down from the nearest non-empty ancestor if
/// it is empty. Empty above the hierarchy's root, where the file does not exist.
fn inherit_cpuset(dir: &Path, f: &str) -> Result<String, Error> {
    let Ok(cur) = fs::read_to_string(dir.join(f)) else {
        return Ok(String::new());
    };
    let cur = cur.trim();
    if !cur.is_empty() {
        return Ok(cur.to_string());
    }
    let Some(parent) = dir.parent() else {
        return Ok(String::new());
    };
    let v = inherit_cpuset(parent, f)?;
    if !v.is_empty() {
        write_cg(dir, f, &v)?;
    }
    Ok(v)
}

fn enable_v2_controllers(dir: &Path) {
    // best effort: enable what the parent offers for the pod's children. Each start passes
    // the shared levels again (see create), so only what is not enabled yet is written.
    if let Ok(c) = fs::read_to_string(dir.join("cgroup.controllers")) {
        let on = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        for ctrl in c
            .split_whitespace()
            .filter(|c| !on.split_whitespace().any(|o| o == *c))
        {
            let _ = fs::write(dir.join("cgroup.subtree_control"), format!("+{ctrl}"));
        }
    }
}

/// Move the calling process into the cgroups of process `pid` (every v1 hierarchy, or the
/// unified one on pure v2 hosts). A single-threaded caller moves itself as a thread on v1, which
/// waits for no RCU grace period (see [`PodCgroups::enter_app`]).
pub fn join_cgroups_of(pid: nix::unistd::Pid) -> Result<(), Error> {
    let p = format!("/proc/{pid}/cgroup");
    let theirs = fs::read_to_string(&p).map_err(|e| Error::io(Path::new(&p), e))?;
    let mounts = parse_mounts()?;
    let any_v1 = mounts.iter().any(|m| !m.3);
    let me = std::process::id().to_string();
    let (v1_file, v1_who) = if any_v1 && single_threaded() {
        ("tasks", "0")
    } else {
        ("cgroup.procs", me.as_str())
    };
    for line in theirs.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(_), Some(c), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let ctrls: Vec<&str> = c.split(',').filter(|s| !s.is_empty()).collect();
        let m = mounts.iter().find(|(_, _, mc, unified)| {
            if ctrls.is_empty() {
                *unified && !any_v1
            } else {
                !*unified && ctrls.iter().all(|x| mc.iter().any(|y| y == x))
            }
        });
        let Some((mp, root, _, unified)) = m else {
            continue;
        };
        let rel = path.strip_prefix(root.as_str()).unwrap_or(path);
        let (file, who) = if *unified {
            ("cgroup.procs", me.as_str())
        } else {
            (v1_file, v1_who)
        };
        write_cg(&join_rel(mp, rel), file, who)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(root: &Path, hier: &[(&str, bool)]) -> PodCgroups {
        PodCgroups {
            hier: hier
                .iter()
                .map(|(c, unified)| {
                    let pod_dir = root.join(c).join("rkt/pod");
                    fs::create_dir_all(&pod_dir).unwrap();
                    Hierarchy {
                        own_dir: root.join(c),
                        pod_dir,
                        controllers: if *unified {
                            vec![]
                        } else {
                            vec![c.to_string()]
                        },
                        unified: *unified,
                    }
                })
                .collect(),
            list_file: root.join("cgroups"),
            delegated: false,
        }
    }

    /// Root only (chown): the app's v2 cgroup and the three files cgroups(7) names go to the
    /// pod's root, bounded in depth and count; v1 hierarchies stay the host's.
    #[test]
    fn delegation_hands_over_only_the_v2_cgroup_and_bounds_it() {
        use std::os::unix::fs::MetadataExt;
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let cg = fake(t.path(), &[("unified", true), ("memory", false)]);
        for c in ["unified", "memory"] {
            let d = t.path().join(c).join("rkt/pod/app");
            fs::create_dir_all(&d).unwrap();
            for f in [
                "cgroup.procs",
                "cgroup.threads",
                "cgroup.subtree_control",
                "memory.max",
            ] {
                fs::write(d.join(f), "").unwrap();
            }
        }
        cg.delegate_app("app", 1_000_000).unwrap();
        let owner = |p: &str| fs::metadata(t.path().join(p)).unwrap().uid();
        for f in [
            "",
            "/cgroup.procs",
            "/cgroup.threads",
            "/cgroup.subtree_control",
        ] {
            assert_eq!(owner(&format!("unified/rkt/pod/app{f}")), 1_000_000, "{f}");
        }
        assert_eq!(owner("unified/rkt/pod/app/memory.max"), 0);
        assert_eq!(owner("unified/rkt/pod"), 0);
        assert_eq!(owner("memory/rkt/pod/app"), 0);
        assert_eq!(owner("memory/rkt/pod/app/cgroup.procs"), 0);
        let read = |f: &str| fs::read_to_string(t.path().join("unified/rkt/pod/app").join(f));
        assert_eq!(
            read("cgroup.max.depth").unwrap(),
            DELEGATED_MAX_DEPTH.to_string()
        );
        assert_eq!(
            read("cgroup.max.descendants").unwrap(),
            DELEGATED_MAX_DESCENDANTS.to_string()
        );
    }

    #[test]
    fn pids_limit_goes_to_the_pod_cgroup_of_the_pids_hierarchy() {
        let t = tempfile::tempdir().unwrap();
        let cg = fake(t.path(), &[("pids", false), ("memory", false)]);
        cg.limit_pids(Some(64), true).unwrap();
        let max = |c: &str| fs::read_to_string(t.path().join(c).join("rkt/pod/pids.max")).ok();
        assert_eq!(max("pids").as_deref(), Some("64"));
        assert_eq!(max("memory"), None);
        // unlimited: nothing written
        let t2 = tempfile::tempdir().unwrap();
        let cg = fake(t2.path(), &[("pids", false)]);
        cg.limit_pids(None, true).unwrap();
        assert!(!t2.path().join("pids/rkt/pod/pids.max").exists());
        // no pids hierarchy: an error for the flag, nothing for the default
        let cg = fake(t2.path(), &[("memory", false)]);
        let e = cg.limit_pids(Some(64), true).unwrap_err();
        assert!(e.to_string().contains("--pids-limit"), "{e}");
        cg.limit_pids(Some(4096), false).unwrap();
    }

    #[test]
    fn pids_limit_on_v2_needs_the_controller() {
        let t = tempfile::tempdir().unwrap();
        let cg = fake(t.path(), &[("unified", true)]);
        let pod = t.path().join("unified/rkt/pod");
        fs::write(pod.join("cgroup.controllers"), "cpu memory\n").unwrap();
        let e = cg.limit_pids(Some(10), true).unwrap_err();
        assert!(e.to_string().contains("\"pids\" controller"), "{e}");
        cg.limit_pids(Some(10), false).unwrap();
        assert!(!pod.join("pids.max").exists());
        fs::write(pod.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        cg.limit_pids(Some(10), true).unwrap();
        assert_eq!(fs::read_to_string(pod.join("pids.max")).unwrap(), "10");
    }

    #[test]
    fn threads_line() {
        let s = "Name:\trkt-stage1\nTgid:\t7\nThreads:\t1\nSigQ:\t0/1\n";
        assert_eq!(threads_of_status(s), Some(1));
        assert_eq!(threads_of_status("Threads:\t12\n"), Some(12));
        assert_eq!(threads_of_status("Name:\tx\n"), None);
    }

    #[test]
    fn mkdir_p_records_what_it_made_parents_first() {
        let t = tempfile::tempdir().unwrap();
        let leaf = t.path().join("a/b/c");
        let mut made = Vec::new();
        mkdir_p(&leaf, &mut made).unwrap();
        assert!(leaf.is_dir());
        let want: Vec<PathBuf> = ["a", "a/b", "a/b/c"]
            .iter()
            .map(|d| t.path().join(d))
            .collect();
        assert_eq!(made, want);
        // existing dirs are neither an error nor recorded
        let mut again = Vec::new();
        mkdir_p(&leaf, &mut again).unwrap();
        mkdir_p(&t.path().join("a/b/d"), &mut again).unwrap();
        assert_eq!(again, vec![t.path().join("a/b/d")]);
        // a file in the way names the dir
        fs::write(t.path().join("f"), "").unwrap();
        let e = mkdir_p(&t.path().join("f/x"), &mut again).unwrap_err();
        assert!(e.to_string().contains("f/x"), "{e}");
    }

    #[test]
    fn v2_enables_only_missing_controllers() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        fs::write(t.path().join("cgroup.subtree_control"), "cpu pids\n").unwrap();
        enable_v2_controllers(t.path());
        // a plain file keeps the last write: the one missing controller, written alone
        assert_eq!(
            fs::read_to_string(t.path().join("cgroup.subtree_control")).unwrap(),
            "+memory"
        );
        fs::write(t.path().join("cgroup.subtree_control"), "cpu memory pids").unwrap();
        enable_v2_controllers(t.path());
        assert_eq!(
            fs::read_to_string(t.path().join("cgroup.subtree_control")).unwrap(),
            "cpu memory pids"
        );
    }

    #[test]
    fn cpuset_fills_empty_ancestors_first() {
        let t = tempfile::tempdir().unwrap();
        let top = t.path().join("cpuset");
        let leaf = top.join("rkt/pod");
        fs::create_dir_all(&leaf).unwrap();
        fs::write(top.join("cpuset.cpus"), "0-1\n").unwrap();
        fs::write(top.join("cpuset.mems"), "0\n").unwrap();
        for d in [top.join("rkt"), leaf.clone()] {
            fs::write(d.join("cpuset.cpus"), "\n").unwrap();
            fs::write(d.join("cpuset.mems"), "").unwrap();
        }
        init_cpuset(&leaf).unwrap();
        for d in [top.join("rkt"), leaf.clone()] {
            assert_eq!(fs::read_to_string(d.join("cpuset.cpus")).unwrap(), "0-1");
            assert_eq!(fs::read_to_string(d.join("cpuset.mems")).unwrap(), "0");
        }
        // a filled dir is left alone
        fs::write(leaf.join("cpuset.cpus"), "1").unwrap();
        init_cpuset(&leaf).unwrap();
        assert_eq!(fs::read_to_string(leaf.join("cpuset.cpus")).unwrap(), "1");
    }

    /// Root only, v1 cpuset: a pod cgroup made under a shared level that a concurrent
    /// `rkt run` created but has not filled yet still takes tasks (it once failed with ENOSPC).
    #[test]
    fn cpuset_under_an_unfilled_parent_takes_tasks() {
        let Some((mp, ..)) = parse_mounts()
            .unwrap()
            .into_iter()
            .find(|(_, _, c, unified)| !unified && c.iter().any(|c| c == "cpuset"))
        else {
            return;
        };
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let shared = mp.join(format!("rkt-unit-{}", std::process::id()));
        let pod = shared.join("pod");
        fs::create_dir(&shared).unwrap();
        let mut made = Vec::new();
        mkdir_p(&pod, &mut made).unwrap();
        init_cpuset(&pod).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let joined = fs::write(pod.join("tasks"), child.id().to_string());
        child.kill().unwrap();
        child.wait().unwrap();
        let _ = fs::remove_dir(&pod);
        let _ = fs::remove_dir(&shared);
        joined.unwrap();
    }
}
