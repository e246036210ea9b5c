//! What this build and this host support, for `rkt version`.

use std::fs;
use std::path::Path;

/// OCI runtime spec version the runtime implements (through libcontainer / oci-spec 0.10).
pub const OCI_RUNTIME_SPEC_VERSION: &str = "1.2.0";
/// OCI image spec version the store reads.
pub const OCI_IMAGE_SPEC_VERSION: &str = "1.1.0";
/// appc spec version of the ACI importer.
pub const APPC_VERSION: &str = "0.8.11";

/// Cgroup layout of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// Only cgroup v1 hierarchies.
    Legacy,
    /// v1 controllers plus a cgroup2 mount (`/sys/fs/cgroup/unified`).
    Hybrid,
    /// Pure cgroup v2 at `/sys/fs/cgroup`.
    Unified,
    /// No cgroup filesystem found.
    None,
}

/// Features of this build and host.
#[derive(Debug, Clone)]
pub struct Features {
    /// Cgroup layout.
    pub cgroup: CgroupMode,
    /// Kernel supports overlayfs.
    pub overlay: bool,
    /// Kernel supports seccomp filters (the build always links libseccomp).
    pub seccomp: bool,
}

impl Features {
    /// rkt's `+FEATURE -FEATURE` line.
    pub fn render(&self) -> String {
        let (v1, v2) = match self.cgroup {
            CgroupMode::Legacy => (true, false),
            CgroupMode::Hybrid => (true, true),
            CgroupMode::Unified => (false, true),
            CgroupMode::None => (false, false),
        };
        let flag = |on: bool, name: &str| format!("{}{}", if on { '+' } else { '-' }, name);
        let mode = match self.cgroup {
            CgroupMode::Legacy => "legacy",
            CgroupMode::Hybrid => "hybrid",
            CgroupMode::Unified => "unified",
            CgroupMode::None => "none",
        };
        format!(
            "{} {} {} {} +CGROUP-MODE={mode}",
            flag(v1, "CGROUP-V1"),
            flag(v2, "CGROUP-V2"),
            flag(self.seccomp, "SECCOMP"),
            flag(self.overlay, "OVERLAY"),
        )
    }
}

/// Probe the running host.
pub fn features() -> Features {
    features_at(Path::new("/"))
}

/// Probe a host whose `/proc` and `/sys` live under `root` (for tests).
pub fn features_at(root: &Path) -> Features {
    let filesystems = fs::read_to_string(root.join("proc/filesystems")).unwrap_or_default();
    let overlay = filesystems
        .lines()
        .any(|l| l.trim_end().ends_with("overlay"));
    let seccomp = root.join("proc/sys/kernel/seccomp/actions_avail").exists();
    Features {
        cgroup: cgroup_mode(root),
        overlay,
        seccomp,
    }
}

/// Detect the cgroup layout from `/proc/self/mountinfo` under `root`.
pub fn cgroup_mode(root: &Path) -> CgroupMode {
    let mi = fs::read_to_string(root.join("proc/self/mountinfo")).unwrap_or_default();
    let mut v1 = false;
    let mut v2_root = false;
    let mut v2_other = false;
    for m in crate::mount::parse_mountinfo(&mi) {
        match m.fstype.as_str() {
            "cgroup" => v1 = true,
            "cgroup2" if m.mount_point == Path::new("/sys/fs/cgroup") => v2_root = true,
            "cgroup2" => v2_other = true,
            _ => {}
        }
    }
    match (v1, v2_root, v2_other) {
        (false, true, _) => CgroupMode::Unified,
        (true, _, true) | (true, true, _) => CgroupMode::Hybrid,
        (true, false, false) => CgroupMode::Legacy,
        (false, false, true) => CgroupMode::Unified,
        (false, false, false) => CgroupMode::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(mountinfo: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("proc/self")).unwrap();
        fs::write(d.path().join("proc/self/mountinfo"), mountinfo).unwrap();
        fs::write(d.path().join("proc/filesystems"), "nodev\toverlay\n").unwrap();
        d
    }

    const V1: &str = "30 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
    const V2U: &str = "29 25 0:25 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
    const V2: &str = "29 25 0:25 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";

    #[test]
    fn detects_each_cgroup_layout() {
        assert_eq!(cgroup_mode(fake(V1).path()), CgroupMode::Legacy);
        assert_eq!(
            cgroup_mode(fake(&format!("{V1}{V2U}")).path()),
            CgroupMode::Hybrid
        );
        assert_eq!(cgroup_mode(fake(V2).path()), CgroupMode::Unified);
        assert_eq!(cgroup_mode(fake("").path()), CgroupMode::None);
        let f = features_at(fake(V2).path());
        assert!(f.overlay);
        assert!(f.render().contains("-CGROUP-V1 +CGROUP-V2"));
    }
}
