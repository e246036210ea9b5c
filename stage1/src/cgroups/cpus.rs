//! Where stage1's children first run.
//!
//! stage1 forks each app's helper and the sandbox, then writes the apps' bundles while they set
//! themselves up. Linux mostly queues a fork child on its parent's CPU, where it waits for
//! stage1 to block (≈ 1 ms here) while another CPU idles, so that overlap did not happen.
//! [`Children::start_elsewhere`] narrows a just-forked child's affinity to the other CPUs and
//! [`Children::give_back`] restores stage1's once the child's set-up is done — before a helper
//! gets "go", after the sandbox reported — so apps and the pause process keep stage1's
//! affinity, which is the caller's (e.g. under `taskset`). Both calls come from stage1, one
//! after the other, so they cannot cross.

use nix::sched::{sched_getaffinity, sched_getcpu, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// stage1's CPU affinity, read before a fork.
#[derive(Debug, Clone, Copy)]
pub struct Children {
    cpus: Option<CpuSet>,
}

impl Children {
    /// Read the caller's affinity (before forking: the child inherits this value).
    pub fn new() -> Self {
        Children {
            cpus: sched_getaffinity(Pid::from_raw(0)).ok(),
        }
    }

    /// In the parent, right after the fork: let `child` run only on CPUs other than the
    /// current one. Best effort; nothing happens with a single allowed CPU.
    pub fn start_elsewhere(&self, child: Pid) {
        let (Some(cpus), Ok(here)) = (&self.cpus, sched_getcpu()) else {
            return;
        };
        let mut others = *cpus;
        if others.unset(here).is_err() {
            return;
        }
        if others != CpuSet::new() {
            let _ = sched_setaffinity(child, &others);
        }
    }

    /// In the parent, once `child`'s set-up is done: let it run wherever stage1 may again.
    pub fn give_back(&self, child: Pid) -> nix::Result<()> {
        match &self.cpus {
            Some(cpus) => sched_setaffinity(child, cpus),
            None => Ok(()),
        }
    }
}

impl Default for Children {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child moved elsewhere runs off the parent's CPU until it is given back, then may run
    /// wherever the parent may.
    #[test]
    fn child_starts_elsewhere_and_is_given_back() {
        let mine = sched_getaffinity(Pid::from_raw(0)).unwrap();
        let allowed = (0..CpuSet::count())
            .filter(|c| mine.is_set(*c).unwrap_or(false))
            .count();
        let children = Children::new();
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        let here = sched_getcpu().unwrap();
        children.start_elsewhere(pid);
        let theirs = sched_getaffinity(pid).unwrap();
        children.give_back(pid).unwrap();
        let back = sched_getaffinity(pid).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        if allowed > 1 {
            assert!(
                !theirs.is_set(here).unwrap(),
                "child may still run on CPU {here}"
            );
            for c in (0..CpuSet::count()).filter(|c| *c != here) {
                assert_eq!(
                    theirs.is_set(c).unwrap(),
                    mine.is_set(c).unwrap(),
                    "CPU {c}"
                );
            }
        } else {
            assert_eq!(theirs, mine);
        }
        assert_eq!(back, mine);
    }
}
