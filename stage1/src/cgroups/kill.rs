//! Removing the pod's cgroups: kill whatever still runs in them (forks included) and remove
//! them, innermost first.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::CgroupError;
use crate::Error;

/// Kill every process in the cgroups listed in `list_file` (and any cgroup below them) and
/// remove them, innermost first; returns only once they are gone, or with an error naming what
/// is still there after [`KILL_DEADLINE`]. Idempotent: missing cgroups and a missing list are
/// fine. Empty cgroups (a pod that ended by itself) cost one `rmdir` each; otherwise see
/// [`kill_all`].
pub fn remove_listed(list_file: &Path) -> Result<(), Error> {
    let list = match fs::read_to_string(list_file) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(list_file, e)),
    };
    let mut dirs: Vec<PathBuf> = list
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(PathBuf::from)
        .collect();
    // innermost first
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs.dedup();
    // the usual case: the pod ended by itself and its cgroups are empty
    let busy = dirs.iter().filter(|d| !try_rmdir(d)).count();
    if busy == 0 {
        return Ok(());
    }
    let all = with_descendants(&dirs);
    let deadline = Instant::now() + KILL_DEADLINE;
    kill_all(&all, deadline)?;
    for d in &all {
        remove_empty(d, deadline)?;
    }
    Ok(())
}

/// Kill every process in the cgroups `dirs` and below them and, with `remove`, remove them
/// (one app of a mutable pod: its own processes outlive its main process in the pod's PID
/// namespace). Missing dirs are fine.
pub fn clear(dirs: &[PathBuf], remove: bool) -> Result<(), Error> {
    let all = with_descendants(dirs);
    let deadline = Instant::now() + KILL_DEADLINE;
    kill_all(&all, deadline)?;
    if remove {
        for d in &all {
            remove_empty(d, deadline)?;
        }
    }
    Ok(())
}

/// How long [`remove_listed`] waits for the pod's processes to die before it reports failure.
pub const KILL_DEADLINE: Duration = Duration::from_secs(20);

/// `rmdir`; true when the dir is gone (or was never there).
fn try_rmdir(dir: &Path) -> bool {
    match fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// `dirs` that exist and every cgroup dir below them, deepest first.
fn with_descendants(dirs: &[PathBuf]) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = fs::read_dir(d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                }
            }
        }
        out.push(d.to_path_buf());
    }
    let mut out = Vec::new();
    for d in dirs.iter().filter(|d| d.is_dir()) {
        walk(d, &mut out);
    }
    out.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    out.dedup();
    out
}

/// The PIDs in cgroup `dir` (none if it is gone).
fn procs_of(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|&p: &i32| p > 0 && p as u32 != std::process::id())
        .collect()
}

/// Kill every process in the cgroups `all` (deepest first) and wait until they are empty.
///
/// A process that forks while its siblings are killed one by one, or that cannot run to die
/// because its CPU quota is used up, outlives a plain loop of SIGKILLs: in the issue, throttled
/// processes lived ≈ 15 s after `rkt gc` reported success. So first every CPU limit is lifted
/// (a dying process needs the CPU to exit), then on cgroup v2 `cgroup.kill` kills each subtree
/// atomically (forks included); on v1 the freezer cgroups are frozen (no process runs, so none
/// forks), every process of every listed cgroup gets SIGKILL, and they are thawed to die.
/// Without a freezer the SIGKILL passes repeat until the cgroups are empty (the pids limit
/// bounds what a fork bomb can add in between).
pub fn kill_all(all: &[PathBuf], deadline: Instant) -> Result<(), Error> {
    for d in all {
        // children first (deepest first), so no child quota exceeds its parent's on the way
        let _ = fs::write(d.join("cpu.cfs_quota_us"), "-1");
        let _ = fs::write(d.join("cpu.max"), "max");
    }
    let mut killed_v2 = false;
    for d in all.iter().rev() {
        if d.join("cgroup.kill").exists() && fs::write(d.join("cgroup.kill"), "1").is_ok() {
            killed_v2 = true;
        }
    }
    // the outermost freezer cgroups (freezing one freezes everything below it)
    let freezers: Vec<&PathBuf> = all
        .iter()
        .filter(|d| d.join("freezer.state").exists())
        .filter(|d| {
            !all.iter()
                .any(|o| o != *d && d.starts_with(o) && o.join("freezer.state").exists())
        })
        .collect();
    let mut frozen = Vec::new();
    if !killed_v2 {
        for f in &freezers {
            if fs::write(f.join("freezer.state"), "FROZEN").is_ok() {
                frozen.push(*f);
            }
        }
        // until every task stopped (a task freezes when it next runs); a process stuck in the
        // kernel must not hold the kill up for long
        let until = (Instant::now() + Duration::from_secs(2)).min(deadline);
        while frozen.iter().any(|f| {
            fs::read_to_string(f.join("freezer.state")).is_ok_and(|s| s.trim() == "FREEZING")
        }) && Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut first = true;
    loop {
        let mut left = 0usize;
        for d in all {
            for p in procs_of(d) {
                left += 1;
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if first {
            // frozen tasks die once thawed; the kill is pending, so none returns to run
            for f in &frozen {
                let _ = fs::write(f.join("freezer.state"), "THAWED");
            }
            first = false;
        }
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            let busy: Vec<String> = all
                .iter()
                .filter(|d| !procs_of(d).is_empty())
                .map(|d| d.display().to_string())
                .collect();
            return Err(CgroupError::StillAlive {
                dirs: busy,
                after: KILL_DEADLINE,
            }
            .into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Remove the empty cgroup `dir`, retrying briefly: the kernel may still be finishing a dying
/// task's exit when its cgroup is first seen empty.
fn remove_empty(dir: &Path, deadline: Instant) -> Result<(), Error> {
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(CgroupError::Remove {
                    dir: dir.to_path_buf(),
                    source: e,
                }
                .into())
            }
            Err(_) => {
                for p in procs_of(dir) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Root only, v1 pids and freezer: a fork bomb capped by pids.max in a cgroup is killed to
    /// the last process by kill_all (freeze, kill, thaw), and the cgroups go.
    #[test]
    fn kill_all_empties_a_forking_cgroup() {
        let mounts = super::super::parse_mounts().unwrap();
        let mp = |ctrl: &str| {
            mounts
                .iter()
                .find(|(_, _, c, u)| !u && c.iter().any(|c| c == ctrl))
                .map(|m| m.0.clone())
        };
        let (Some(pids), Some(freezer)) = (mp("pids"), mp("freezer")) else {
            return;
        };
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let name = format!("rkt-unit-kill-{}", std::process::id());
        let dirs = [pids.join(&name), freezer.join(&name)];
        for d in &dirs {
            fs::create_dir(d).unwrap();
        }
        fs::write(dirs[0].join("pids.max"), "40").unwrap();
        // a shell that joins both cgroups and forks sleepers forever
        let script = format!(
            "echo $$ > {}/cgroup.procs; echo $$ > {}/cgroup.procs; \
             while :; do sleep 1000 & done",
            dirs[0].display(),
            dirs[1].display()
        );
        let mut child = std::process::Command::new("sh")
            .args(["-c", &script])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        let current = || {
            fs::read_to_string(dirs[0].join("pids.current"))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .unwrap_or(0)
        };
        while current() < 40 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(100));
        let n = current();
        let list = tempfile::NamedTempFile::new().unwrap();
        fs::write(
            list.path(),
            format!("{}\n{}\n", dirs[0].display(), dirs[1].display()),
        )
        .unwrap();
        let r = remove_listed(list.path());
        let _ = child.wait();
        let left: Vec<_> = dirs.iter().filter(|d| d.exists()).collect();
        for d in &left {
            let _ = fs::remove_dir(d);
        }
        assert_eq!(n, 40, "the fork bomb did not reach the limit");
        r.unwrap();
        assert!(left.is_empty(), "{left:?}");
    }
}
