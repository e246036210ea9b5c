//! Leak removal for test contexts: processes, pod networking, mounts and cgroups left under a
//! directory.
//!
//! Also used as a leak *check*: [`clean_under`] reports what it had to clean, and
//! [`mounts_under`] / [`cgroups_of_pods`] let tests assert that rkt itself left nothing behind.

use nix::mount::{umount2, MntFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Kill, unmount and remove everything a test left under `root`; returns a description of what
/// had to be cleaned ("" when nothing leaked).
pub fn clean_under(root: &Path) -> String {
    let mut report = Vec::new();
    let pids = pids_of(root);
    if !pids.is_empty() {
        report.push(format!("killed {} process(es)", pids.len()));
        for p in &pids {
            let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
        }
        wait_gone(&pids, Duration::from_secs(3));
    }
    // Networking lives outside `root` (/run/netns, iptables, host-local's store) and is found
    // by pod UUID: clean it while the pod dirs still name them.
    let net = crate::net::clean_pod_networks(&pod_uuids(root));
    if !net.is_empty() {
        report.push(net);
    }
    let mut unmounted = 0;
    for _ in 0..8 {
        let ms = mounts_under(root);
        if ms.is_empty() {
            break;
        }
        for m in ms {
            if umount2(&m, MntFlags::MNT_DETACH).is_ok() {
                unmounted += 1;
            }
        }
    }
    if unmounted > 0 {
        report.push(format!("unmounted {unmounted} mount(s)"));
    }
    let cgs = cgroups_of_pods(root);
    let mut removed = 0;
    for cg in cgs.iter().rev() {
        if cg.exists() {
            kill_cgroup_procs(cg);
            if remove_cgroup_tree(cg) {
                removed += 1;
            }
        }
    }
    if removed > 0 {
        report.push(format!("removed {removed} cgroup(s)"));
    }
    // Layers are read-only after commit: make them writable so the temp dir can go.
    let _ = make_writable(root);
    report.join(", ")
}

/// Assert that no mount is left at or below `root`; `what` leads the failure message.
pub fn assert_no_mounts_under(root: &Path, what: &str) {
    let ms = mounts_under(root);
    assert!(ms.is_empty(), "{what}: {ms:?}");
}

/// Mount points at or below `root` in this mount namespace, deepest first.
pub fn mounts_under(root: &Path) -> Vec<PathBuf> {
    let root = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<PathBuf> = mi
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mountinfo(m)))
        .filter(|m| m.starts_with(&root))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v.dedup();
    v
}

/// Cgroup dirs that pods under `root` recorded in their `cgroups` files (stage1 ABI). Only
/// paths that name the recording pod's UUID count: a shared parent such as `/rkt` is never
/// ours to kill or remove, since other tests' pods live below it.
pub fn cgroups_of_pods(root: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for pod in pod_dirs(root) {
        let uuid = pod
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if uuid.len() < 8 {
            continue;
        }
        if let Ok(s) = fs::read_to_string(pod.join("cgroups")) {
            v.extend(
                s.lines()
                    .filter(|l| l.starts_with("/sys/fs/cgroup/") && l.contains(uuid.as_str()))
                    .map(PathBuf::from),
            );
        }
    }
    v.sort_by_key(|p| p.components().count());
    v
}

/// Every `pods/<state>/<uuid>` dir under any data dir below `root`.
pub fn pod_dirs(root: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for data in [root.join("data"), root.to_path_buf()] {
        let Ok(states) = fs::read_dir(data.join("pods")) else {
            continue;
        };
        for st in states.flatten() {
            if let Ok(pods) = fs::read_dir(st.path()) {
                v.extend(pods.flatten().map(|e| e.path()));
            }
        }
    }
    v
}

/// UUIDs of the pods under `root` (the names of their pod dirs).
pub fn pod_uuids(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = pod_dirs(root)
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| n.len() == 36 && n.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// PIDs that belong to `root`: processes whose cwd, root or executable lies below it, the PIDs
/// recorded by its pods, and members of its pods' cgroups.
pub fn pids_of(root: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut v = Vec::new();
    for pod in pod_dirs(root) {
        for f in ["pid", "sandbox-pid"] {
            if let Some(p) = fs::read_to_string(pod.join(f))
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                if Path::new(&format!("/proc/{p}")).exists() {
                    v.push(p);
                }
            }
        }
    }
    for cg in cgroups_of_pods(root) {
        v.extend(cgroup_procs(&cg));
    }
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            let under = ["cwd", "root", "exe"].iter().any(|l| {
                fs::read_link(e.path().join(l)).is_ok_and(|t| t.starts_with(root) && t != root)
            });
            if under {
                v.push(pid);
            }
        }
    }
    v.retain(|p| *p != me && *p > 1);
    v.sort_unstable();
    v.dedup();
    v
}

fn cgroup_procs(cg: &Path) -> Vec<i32> {
    fs::read_to_string(cg.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn kill_cgroup_procs(cg: &Path) {
    let procs = cgroup_procs(cg);
    for p in &procs {
        let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
    }
    wait_gone(&procs, Duration::from_secs(2));
}

/// rmdir a cgroup and its children, deepest first. True when it is gone.
fn remove_cgroup_tree(cg: &Path) -> bool {
    if let Ok(rd) = fs::read_dir(cg) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                kill_cgroup_procs(&e.path());
                remove_cgroup_tree(&e.path());
            }
        }
    }
    for _ in 0..20 {
        if fs::remove_dir(cg).is_ok() || !cg.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn wait_gone(pids: &[i32], timeout: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        let alive = pids.iter().any(|p| {
            fs::read_to_string(format!("/proc/{p}/stat"))
                .map(|s| !s.contains(") Z "))
                .unwrap_or(false)
        });
        if !alive {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn make_writable(root: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for e in walk_dirs(root) {
        if let Ok(md) = fs::symlink_metadata(&e) {
            let mut p = md.permissions();
            if p.mode() & 0o200 == 0 {
                p.set_mode(p.mode() | 0o700);
                let _ = fs::set_permissions(&e, p);
            }
        }
    }
    Ok(())
}

fn walk_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        out.push(d.clone());
        // Make the dir itself traversable before reading it.
        if let Ok(md) = fs::symlink_metadata(&d) {
            use std::os::unix::fs::PermissionsExt;
            let mut p = md.permissions();
            if p.mode() & 0o700 != 0o700 {
                p.set_mode(p.mode() | 0o700);
                let _ = fs::set_permissions(&d, p);
            }
        }
        if let Ok(rd) = fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
    out
}

/// Undo mountinfo's octal escapes (`\040` for space, …).
pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() + 1 && b[i + 1..].len() >= 3 {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                out.push((oct[0] - b'0') * 64 + (oct[1] - b'0') * 8 + (oct[2] - b'0'));
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/x\\"), "/x\\");
    }
}
