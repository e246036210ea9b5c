//! Container and pod sandbox statistics, and resource updates, read from and written to the
//! cgroups stage1 made (the pod dir's `cgroups` list: the pod's cgroup and one per app in each
//! hierarchy), cgroup v1, v2 and hybrid alike.

use std::path::{Path, PathBuf};

use tonic::Status;

use crate::proto::{
    ContainerAttributes, ContainerMetadata, ContainerStats, CpuUsage, FilesystemIdentifier,
    FilesystemUsage, LinuxContainerResources, LinuxPodSandboxStats, MemoryUsage,
    PodSandboxAttributes, PodSandboxMetadata, PodSandboxStats, UInt64Value,
};
use crate::state::{ContainerRecord, SandboxRecord};

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The pod dir of `uuid` (running or exited).
fn pod_dir(data: &Path, uuid: &str) -> Option<PathBuf> {
    ["run", "exited-garbage", "prepared"]
        .iter()
        .map(|p| data.join("pods").join(p).join(uuid))
        .find(|d| d.is_dir())
}

/// The cgroup dirs the pod's list names whose last component is `leaf` (an app), or the pod's
/// own (`leaf` None: the shortest ones).
fn cgroup_dirs(data: &Path, uuid: &str, leaf: Option<&str>) -> Vec<PathBuf> {
    let Some(dir) = pod_dir(data, uuid) else {
        return Vec::new();
    };
    let list = std::fs::read_to_string(dir.join(stage1_abi::paths::CGROUPS)).unwrap_or_default();
    let lines: Vec<PathBuf> = list
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(PathBuf::from)
        .collect();
    match leaf {
        Some(app) => lines
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n == app))
            .collect(),
        None => lines
            .iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains(uuid))
            })
            .cloned()
            .collect(),
    }
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn stat_field(p: &Path, key: &str) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// (cpu ns, memory usage, working set) over the cgroup dirs.
fn usage(dirs: &[PathBuf]) -> (Option<u64>, Option<u64>, Option<u64>) {
    let (mut cpu, mut mem, mut ws) = (None, None, None);
    for d in dirs {
        if d.join("cgroup.controllers").exists() && d.join("cpu.stat").exists() {
            // v2
            if let Some(u) = stat_field(&d.join("cpu.stat"), "usage_usec") {
                cpu = Some(u * 1000);
            }
            if let Some(m) = read_u64(&d.join("memory.current")) {
                mem = Some(m);
                let inactive = stat_field(&d.join("memory.stat"), "inactive_file").unwrap_or(0);
                ws = Some(m.saturating_sub(inactive));
            }
            continue;
        }
        if let Some(u) = read_u64(&d.join("cpuacct.usage")) {
            cpu = Some(u);
        }
        if let Some(m) = read_u64(&d.join("memory.usage_in_bytes")) {
            mem = Some(m);
            let inactive = stat_field(&d.join("memory.stat"), "total_inactive_file").unwrap_or(0);
            ws = Some(m.saturating_sub(inactive));
        }
    }
    (cpu, mem, ws)
}

fn u64v(v: Option<u64>) -> Option<UInt64Value> {
    v.map(|value| UInt64Value { value })
}

/// CPU and memory of cgroup dirs as the CRI reports them at `ts` (0 for what is not there).
fn cpu_memory(dirs: &[PathBuf], ts: i64) -> (CpuUsage, MemoryUsage) {
    let (cpu, mem, ws) = usage(dirs);
    (
        CpuUsage {
            timestamp: ts,
            usage_core_nano_seconds: u64v(cpu.or(Some(0))),
            ..Default::default()
        },
        MemoryUsage {
            timestamp: ts,
            working_set_bytes: u64v(ws.or(Some(0))),
            usage_bytes: u64v(mem),
            ..Default::default()
        },
    )
}

/// Bytes and inodes under `dir` (the writable layer).
fn disk_usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut bytes, mut inodes) = (0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            inodes += 1;
            bytes += md.blocks() * 512;
            if md.is_dir() {
                stack.push(e.path());
            }
        }
    }
    (bytes, inodes)
}

/// The stats of one container.
pub fn container(data: &Path, c: &ContainerRecord) -> ContainerStats {
    let ts = now_ns();
    let (cpu, memory) = cpu_memory(&cgroup_dirs(data, &c.sandbox_id, Some(&c.app)), ts);
    let upper = pod_dir(data, &c.sandbox_id)
        .map(|d| d.join(stage1_abi::paths::app_upper(&c.app)))
        .unwrap_or_default();
    let (bytes, inodes) = disk_usage(&upper);
    ContainerStats {
        attributes: Some(ContainerAttributes {
            id: c.id.clone(),
            metadata: Some(ContainerMetadata {
                name: c.meta.name.clone(),
                attempt: c.meta.attempt,
            }),
            labels: c
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            annotations: c
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }),
        cpu: Some(cpu),
        memory: Some(memory),
        writable_layer: Some(FilesystemUsage {
            timestamp: ts,
            fs_id: Some(FilesystemIdentifier {
                mountpoint: upper.display().to_string(),
            }),
            used_bytes: u64v(Some(bytes)),
            inodes_used: u64v(Some(inodes)),
        }),
        swap: None,
        io: None,
    }
}

/// The stats of one pod sandbox, with its containers'.
pub fn sandbox(
    data: &Path,
    sb: &SandboxRecord,
    containers: Vec<ContainerStats>,
) -> PodSandboxStats {
    let (cpu, memory) = cpu_memory(&cgroup_dirs(data, &sb.id, None), now_ns());
    PodSandboxStats {
        attributes: Some(PodSandboxAttributes {
            id: sb.id.clone(),
            metadata: Some(PodSandboxMetadata {
                name: sb.meta.name.clone(),
                uid: sb.meta.uid.clone(),
                namespace: sb.meta.namespace.clone(),
                attempt: sb.meta.attempt,
            }),
            labels: sb
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            annotations: sb
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }),
        linux: Some(LinuxPodSandboxStats {
            cpu: Some(cpu),
            memory: Some(memory),
            network: None,
            process: None,
            containers,
            io: None,
        }),
        windows: None,
    }
}

/// `UpdateContainerResources`: memory limit, CPU quota/period and shares on the app's cgroups.
pub fn update_resources(
    data: &Path,
    c: &ContainerRecord,
    r: Option<&LinuxContainerResources>,
) -> Result<(), Status> {
    let Some(r) = r else {
        return Ok(());
    };
    let dirs = cgroup_dirs(data, &c.sandbox_id, Some(&c.app));
    if dirs.is_empty() {
        return Err(Status::failed_precondition(format!(
            "container {} has no cgroups (not running)",
            c.id
        )));
    }
    let w = |d: &Path, f: &str, v: String| -> Result<(), Status> {
        let p = d.join(f);
        if !p.exists() {
            return Ok(()); // that controller is not in this hierarchy
        }
        std::fs::write(&p, v).map_err(|e| Status::internal(format!("{}: {e}", p.display())))
    };
    for d in &dirs {
        let v2 = d.join("cgroup.controllers").exists();
        if r.memory_limit_in_bytes > 0 {
            let f = if v2 {
                "memory.max"
            } else {
                "memory.limit_in_bytes"
            };
            w(d, f, r.memory_limit_in_bytes.to_string())?;
        }
        if r.cpu_quota != 0 || r.cpu_period > 0 {
            let period = if r.cpu_period > 0 {
                r.cpu_period
            } else {
                100_000
            };
            if v2 {
                let q = if r.cpu_quota > 0 {
                    r.cpu_quota.to_string()
                } else {
                    "max".into()
                };
                w(d, "cpu.max", format!("{q} {period}"))?;
            } else {
                w(d, "cpu.cfs_period_us", period.to_string())?;
                w(d, "cpu.cfs_quota_us", r.cpu_quota.to_string())?;
            }
        }
        if r.cpu_shares > 0 {
            if v2 {
                let s = (r.cpu_shares as u64).clamp(2, 262_144);
                w(
                    d,
                    "cpu.weight",
                    (1 + ((s - 2) * 9999) / 262_142).to_string(),
                )?;
            } else {
                w(d, "cpu.shares", r.cpu_shares.to_string())?;
            }
        }
    }
    Ok(())
}
