//! What the CRI knows that rkt does not: a pod sandbox's and a container's CRI metadata,
//! labels, annotations and the settings it was made with. One JSON file per object under
//! `<data dir>/cri/`, written by the pod-dir rule (temp file + rename), so the server keeps no
//! state in memory: a restarted server reads them back, and a pod outlives the server.
//!
//! * `cri/sandboxes/<uuid>.json` ([`SandboxRecord`]): written before the pod starts (the
//!   detached starter reads it to build the pod's runtime flags);
//! * `cri/containers/<id>.json` ([`ContainerRecord`]): the app of the pod that is the container.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// CRI object metadata (name, uid, namespace, attempt).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Name.
    pub name: String,
    /// UID (sandboxes).
    #[serde(default)]
    pub uid: String,
    /// Namespace (sandboxes).
    #[serde(default)]
    pub namespace: String,
    /// Attempt.
    #[serde(default)]
    pub attempt: u32,
}

/// A port mapping as the pod runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Port in the pod.
    pub container_port: u16,
    /// Port on the host.
    pub host_port: u16,
    /// Host address, empty for any.
    #[serde(default)]
    pub host_ip: String,
}

/// One pod sandbox.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SandboxRecord {
    /// The pod's UUID (the sandbox id).
    pub id: String,
    /// CRI metadata.
    pub meta: Meta,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When it was created (ns since the epoch).
    pub created_at: i64,
    /// Where the kubelet wants container logs (relative container log paths are under it).
    #[serde(default)]
    pub log_directory: String,
    /// Runtime handler asked for.
    #[serde(default)]
    pub runtime_handler: String,
    /// Hostname.
    #[serde(default)]
    pub hostname: String,
    /// The host's network namespace.
    #[serde(default)]
    pub host_network: bool,
    /// The host's PID namespace.
    #[serde(default)]
    pub host_pid: bool,
    /// The host's IPC namespace.
    #[serde(default)]
    pub host_ipc: bool,
    /// DNS servers, searches, options.
    #[serde(default)]
    pub dns: (Vec<String>, Vec<String>, Vec<String>),
    /// Port mappings.
    #[serde(default)]
    pub ports: Vec<Port>,
    /// Sysctls.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
}

/// One container: an app of its sandbox's pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// Container id (64 hex digits).
    pub id: String,
    /// The sandbox (pod UUID).
    pub sandbox_id: String,
    /// The app's name in the pod.
    pub app: String,
    /// CRI metadata.
    pub meta: Meta,
    /// The image as the request named it.
    pub image: String,
    /// The store's image id.
    pub image_ref: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When it was created (ns since the epoch).
    pub created_at: i64,
    /// The full path of its log.
    #[serde(default)]
    pub log_path: String,
    /// The mounts it was created with (host path, container path, read-only, propagation).
    #[serde(default)]
    pub mounts: Vec<(String, String, bool, i32)>,
    /// `StdinOnce`: the app's stdin ends with its first attach.
    #[serde(default)]
    pub stdin_once: bool,
}

/// The records of one data dir.
#[derive(Debug, Clone)]
pub struct Records {
    root: PathBuf,
}

/// A record that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {msg}")]
pub struct RecordError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub msg: String,
}

impl Records {
    /// The records under `<data>/cri`.
    pub fn new(data: &Path) -> Records {
        Records {
            root: data.join("cri"),
        }
    }

    fn dir(&self, kind: &str) -> PathBuf {
        self.root.join(kind)
    }

    fn path(&self, kind: &str, id: &str) -> PathBuf {
        self.dir(kind).join(format!("{id}.json"))
    }

    fn save<T: Serialize>(&self, kind: &str, id: &str, v: &T) -> Result<(), RecordError> {
        let dir = self.dir(kind);
        let path = self.path(kind, id);
        let err = |msg: String| RecordError {
            path: path.clone(),
            msg,
        };
        std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
        let data = serde_json::to_vec(v).map_err(|e| err(e.to_string()))?;
        let tmp = dir.join(format!(".{id}.tmp.{}", std::process::id()));
        std::fs::write(&tmp, data).map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, &path).map_err(|e| err(e.to_string()))
    }

    fn load<T: serde::de::DeserializeOwned>(&self, kind: &str, id: &str) -> Option<T> {
        if id.is_empty() || id.contains('/') || id.starts_with('.') {
            return None;
        }
        let data = std::fs::read(self.path(kind, id)).ok()?;
        serde_json::from_slice(&data).ok()
    }

    fn all<T: serde::de::DeserializeOwned>(&self, kind: &str) -> Vec<T> {
        let Ok(rd) = std::fs::read_dir(self.dir(kind)) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| {
                let n = e.file_name().into_string().ok()?;
                let id = n.strip_suffix(".json")?;
                self.load(kind, id)
            })
            .collect()
    }

    fn delete(&self, kind: &str, id: &str) {
        let _ = std::fs::remove_file(self.path(kind, id));
    }

    /// Save a sandbox.
    pub fn save_sandbox(&self, r: &SandboxRecord) -> Result<(), RecordError> {
        self.save("sandboxes", &r.id, r)
    }
    /// A sandbox by its full id.
    pub fn sandbox(&self, id: &str) -> Option<SandboxRecord> {
        self.load("sandboxes", id)
    }
    /// Every sandbox.
    pub fn sandboxes(&self) -> Vec<SandboxRecord> {
        self.all("sandboxes")
    }
    /// Forget a sandbox.
    pub fn delete_sandbox(&self, id: &str) {
        self.delete("sandboxes", id)
    }
    /// Save a container.
    pub fn save_container(&self, r: &ContainerRecord) -> Result<(), RecordError> {
        self.save("containers", &r.id, r)
    }
    /// A container by its full id.
    pub fn container(&self, id: &str) -> Option<ContainerRecord> {
        self.load("containers", id)
    }
    /// Every container.
    pub fn containers(&self) -> Vec<ContainerRecord> {
        self.all("containers")
    }
    /// Forget a container.
    pub fn delete_container(&self, id: &str) {
        self.delete("containers", id)
    }

    /// The full id of the sandbox `id` or the one sandbox whose id starts with it (crictl
    /// passes prefixes).
    pub fn find_sandbox(&self, id: &str) -> Option<SandboxRecord> {
        self.sandbox(id)
            .or_else(|| unique(self.sandboxes(), |r| r.id.starts_with(id)))
    }

    /// As [`Records::find_sandbox`] for containers.
    pub fn find_container(&self, id: &str) -> Option<ContainerRecord> {
        self.container(id)
            .or_else(|| unique(self.containers(), |r| r.id.starts_with(id)))
    }
}

fn unique<T>(v: Vec<T>, f: impl Fn(&T) -> bool) -> Option<T> {
    let mut it = v.into_iter().filter(|x| f(x));
    let first = it.next()?;
    it.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_resolve_prefixes() {
        let d = tempfile::tempdir().unwrap();
        let r = Records::new(d.path());
        let s = SandboxRecord {
            id: "aaaa-1".into(),
            created_at: 5,
            ..Default::default()
        };
        r.save_sandbox(&s).unwrap();
        r.save_sandbox(&SandboxRecord {
            id: "aaab-2".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(r.sandbox("aaaa-1").unwrap(), s);
        assert_eq!(r.find_sandbox("aaaa").unwrap().id, "aaaa-1");
        assert!(r.find_sandbox("aaa").is_none(), "ambiguous");
        assert!(r.sandbox("../x").is_none());
        r.delete_sandbox("aaaa-1");
        assert_eq!(r.sandboxes().len(), 1);
    }
}
