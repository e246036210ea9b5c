//! The pod manifest (`pod`) and the runtime parameters (`runtime.json`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use crate::{AbiError, ABI_VERSION};

/// What a pod is: its apps and volumes. Written once by stage0 at prepare time; read by stage1,
/// `rkt list`, `rkt status`, `rkt cat-manifest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodManifest {
    /// Must equal [`ABI_VERSION`].
    pub abi_version: u32,
    /// The pod UUID (lower-case, hyphenated).
    pub uuid: String,
    /// Apps in start order.
    pub apps: Vec<App>,
    /// Pod-level volumes that apps mount by name.
    #[serde(default)]
    pub volumes: Vec<Volume>,
    /// Free-form annotations (`--annotation`, image labels carried along).
    #[serde(default)]
    pub annotations: Vec<(String, String)>,
    /// `--private-users`: the pod runs in its own user namespace with this mapping; `None`:
    /// the host's ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_users: Option<IdRange>,
    /// A mutable pod (`rkt app sandbox`): it may have no app, apps are added, started, stopped
    /// and removed while it runs (through [`crate::control`]), an app's exit does not end it,
    /// and it ends when it is stopped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mutable: bool,
}

/// A pod's user namespace mapping: uids and gids `0..count` in the pod are the host's
/// `shift..shift+count` (the same range for both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    /// The host id of the pod's id 0.
    pub shift: u32,
    /// How many ids are mapped.
    pub count: u32,
}

impl IdRange {
    /// The largest id the kernel maps: `(uid_t)-1` is never valid.
    pub const MAX_ID: u64 = u32::MAX as u64 - 1;

    /// Check what a mapping must be: not the host's root (shift 0), at least one id, and
    /// inside the kernel's id space.
    pub fn validate(&self) -> Result<(), AbiError> {
        if self.shift == 0 {
            return Err(AbiError::Invalid(
                "private users: a shift of 0 would make the pod's root the host's root".into(),
            ));
        }
        if self.count == 0 {
            return Err(AbiError::Invalid(
                "private users: the range maps no id (count 0)".into(),
            ));
        }
        if self.end() > Self::MAX_ID + 1 {
            return Err(AbiError::Invalid(format!(
                "private users: range {}:{} ends past the largest id {}",
                self.shift,
                self.count,
                Self::MAX_ID
            )));
        }
        Ok(())
    }

    /// One past the last host id of the range.
    pub fn end(&self) -> u64 {
        u64::from(self.shift) + u64::from(self.count)
    }

    /// Whether two ranges share a host id.
    pub fn overlaps(&self, other: &IdRange) -> bool {
        u64::from(self.shift) < other.end() && u64::from(other.shift) < self.end()
    }

    /// The host id of pod id `id`, if the range maps it.
    pub fn host_id(&self, id: u32) -> Option<u32> {
        (id < self.count).then(|| self.shift + id)
    }

    /// The line for `/proc/<pid>/uid_map` and `gid_map`.
    pub fn map_line(&self) -> String {
        format!("0 {} {}\n", self.shift, self.count)
    }
}

impl PodManifest {
    /// `idmap=true` host volumes need private users (`private_users`: the pod has them, or
    /// will once its range is claimed): without a user namespace there is no mapping to apply.
    /// stage0 checks before a pod dir exists, stage1 before it starts.
    pub fn check_idmapped_volumes(&self, private_users: bool) -> Result<(), AbiError> {
        match self
            .volumes
            .iter()
            .find(|v| matches!(v.kind, VolumeKind::Host { idmap: true, .. }))
        {
            Some(v) if !private_users => Err(AbiError::Invalid(format!(
                "volume {:?}: idmap=true needs --private-users (there is no mapping to apply)",
                v.name
            ))),
            _ => Ok(()),
        }
    }

    /// Check what stage1 relies on: the version, at least one app (a mutable pod may have
    /// none), unique app names, every mount naming a defined volume.
    pub fn validate(&self) -> Result<(), AbiError> {
        if self.abi_version != ABI_VERSION {
            return Err(AbiError::Version {
                found: self.abi_version,
                expected: ABI_VERSION,
            });
        }
        if self.apps.is_empty() && !self.mutable {
            return Err(AbiError::Invalid(
                "pod must contain at least one application".into(),
            ));
        }
        let mut names = BTreeSet::new();
        for app in &self.apps {
            if !names.insert(app.name.as_str()) {
                return Err(AbiError::Invalid(format!(
                    "multiple apps with name {}",
                    app.name
                )));
            }
            for m in &app.mounts {
                if !self.volumes.iter().any(|v| v.name == m.volume) {
                    return Err(AbiError::Invalid(format!(
                        "dangling mount point {:?}: no volume named {:?}",
                        m.target, m.volume
                    )));
                }
            }
        }
        if let Some(r) = &self.private_users {
            r.validate()?;
        }
        Ok(())
    }

    /// The app named `name`.
    pub fn app(&self, name: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.name == name)
    }
}

/// The image an app came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRef {
    /// Store image id (`sha256:<hex>` or rkt's `sha512-<hex>` for ACIs).
    pub id: String,
    /// The name the user typed, normalised (e.g. `127.0.0.1:5000/busybox:latest`).
    pub name: String,
}

/// One app of a pod: everything stage1 needs to start it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct App {
    /// App name, unique in the pod (lower-case ACName).
    pub name: String,
    /// Image the app runs.
    pub image: ImageRef,
    /// argv: entrypoint + args after image defaults and user overrides were applied.
    pub exec: Vec<String>,
    /// `--user`: numeric uid, a name from the image's /etc/passwd, or `/path` (owner of that
    /// file in the app rootfs). Resolved by stage1 inside the rootfs.
    pub user: String,
    /// `--group`: as [`App::user`], against /etc/group.
    pub group: String,
    /// `--supplementary-gids`.
    #[serde(default)]
    pub supplementary_gids: Vec<u32>,
    /// Working directory inside the app (default `/`).
    pub working_dir: String,
    /// Final environment, in order, after rkt's precedence rules (stage0 computes it).
    pub environment: Vec<(String, String)>,
    /// Volume mounts.
    #[serde(default)]
    pub mounts: Vec<MountPoint>,
    /// `--readonly-rootfs`.
    #[serde(default)]
    pub readonly_rootfs: bool,
    /// Resource and security settings.
    #[serde(default)]
    pub isolators: Isolators,
    /// Ports the image exposes, named `<port>-<proto>`.
    #[serde(default)]
    pub ports: Vec<Port>,
    /// The CRI's container settings beyond rkt's flags (`None` for apps of `rkt run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cri: Option<Box<CriApp>>,
}

/// What a CRI container asks for beyond rkt's app flags (set by the CRI server through
/// `rkt app add`'s request; see docs/cri.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CriApp {
    /// stage1 writes the app's stdout and stderr to this host file in the CRI log format
    /// (`RFC3339NANO STREAM P|F TEXT`), reopened on request (`ReopenContainerLog`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_path: Option<String>,
    /// Privileged: every capability, no seccomp filter, no masked or read-only paths, `/sys`
    /// writable, every device allowed.
    #[serde(default)]
    pub privileged: bool,
    /// Capabilities added to the default set (`ALL`: every one); `caps_remove` then applies.
    #[serde(default)]
    pub caps_add: Vec<String>,
    /// Capabilities dropped (`ALL`: every one), after `caps_add`.
    #[serde(default)]
    pub caps_drop: Vec<String>,
    /// no_new_privs; `None`: rkt's rule.
    #[serde(default)]
    pub no_new_privs: Option<bool>,
    /// Paths masked in the app (`None`: rkt's list).
    #[serde(default)]
    pub masked_paths: Option<Vec<String>>,
    /// Paths made read-only in the app (`None`: rkt's list).
    #[serde(default)]
    pub readonly_paths: Option<Vec<String>>,
    /// Seccomp: this OCI `LinuxSeccomp` profile instead of rkt's default filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<serde_json::Value>,
    /// No seccomp filter at all (CRI `Unconfined`).
    #[serde(default)]
    pub seccomp_unconfined: bool,
    /// Supplementary groups are exactly the given ones: none from the image's `/etc/group`
    /// (CRI `SupplementalGroupsPolicy=Strict`).
    #[serde(default)]
    pub strict_supplemental_groups: bool,
    /// The app's own PID namespace instead of the pod's.
    #[serde(default)]
    pub own_pid_namespace: bool,
    /// Host devices made available in the app.
    #[serde(default)]
    pub devices: Vec<Device>,
    /// The app's stdin is the fifo `apps/<app>/stdin`, which `Attach` writes to. stage1 holds
    /// the fifo open for writing too, so the app sees no end-of-file when an attach ends, until
    /// it is asked to let go (`closeStdin`: the CRI's `StdinOnce`, after the first attach).
    #[serde(default)]
    pub stdin: bool,
    /// Set the app's `oom_score_adj` to the nearest value the host allows when it refuses
    /// the asked one (a negative value without CAP_SYS_RESOURCE), as the kubelet expects.
    #[serde(default)]
    pub clamp_oom_score_adj: bool,
}

/// A host device given to an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// The device node on the host.
    pub host_path: String,
    /// Where it appears in the app.
    pub container_path: String,
    /// cgroup permissions: some of `r`, `w`, `m`.
    pub permissions: String,
}

impl App {
    /// App `name` of image `image` running `exec` as root in `/`, with an empty environment
    /// and every other setting at its default.
    pub fn new(name: &str, image: ImageRef, exec: Vec<String>) -> Self {
        App {
            name: name.to_string(),
            image,
            exec,
            user: "0".into(),
            group: "0".into(),
            supplementary_gids: vec![],
            working_dir: "/".into(),
            environment: vec![],
            mounts: vec![],
            readonly_rootfs: false,
            isolators: Isolators::default(),
            ports: vec![],
            cri: None,
        }
    }
}

/// A volume mounted into an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountPoint {
    /// Volume name (must be defined in [`PodManifest::volumes`]).
    pub volume: String,
    /// Absolute path inside the app.
    pub target: String,
    /// Mount read-only regardless of the volume's setting.
    #[serde(default)]
    pub read_only: bool,
}

/// A pod volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// Volume name.
    pub name: String,
    /// Kind and its parameters.
    pub kind: VolumeKind,
    /// Mount read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// Where a volume's content comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum VolumeKind {
    /// A host path bind-mounted into the app.
    Host {
        /// Absolute host path.
        source: String,
        /// Bind recursively (`rbind`), default true as rkt.
        recursive: bool,
        /// With private users: bind it through an idmapped mount of the pod's mapping, so the
        /// pod sees the host's owners (its root is the owner of what the host's root owns
        /// there). Off by default: see docs/security.md, "User namespaces".
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        idmap: bool,
        /// Mount propagation: `rprivate` (default), `rslave` or `rshared` (CRI mounts).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        propagation: Option<String>,
        /// Read-only recursively: every mount below the source too (`rro`, Linux 5.12+).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        recursive_read_only: bool,
    },
    /// A fresh directory in the pod dir (`volumes/<name>`), shared by the apps that mount it.
    Empty {
        /// Mode of the directory (default 0755).
        mode: u32,
        /// Owner uid.
        uid: u32,
        /// Owner gid.
        gid: u32,
        /// If set, copy this path of that app's image into the volume before first use
        /// (Docker `VOLUME` semantics).
        #[serde(default)]
        populate_from: Option<(String, String)>,
    },
}

/// A named port an image exposes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    /// `<port>-<proto>`, e.g. `80-tcp`.
    pub name: String,
    /// Container port.
    pub port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// Per-app resource limits and security settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Isolators {
    /// Memory limit in bytes.
    #[serde(default)]
    pub memory_limit: Option<u64>,
    /// CPU limit in millicores.
    #[serde(default)]
    pub cpu_millis: Option<u64>,
    /// Relative CPU weight (cgroup v1 shares).
    #[serde(default)]
    pub cpu_shares: Option<u64>,
    /// `/proc/self/oom_score_adj`.
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
    /// Capabilities: keep only these (`CAP_…`) — replaces the default set.
    #[serde(default)]
    pub caps_retain: Option<Vec<String>>,
    /// Capabilities: remove these from the default set.
    #[serde(default)]
    pub caps_remove: Option<Vec<String>>,
    /// Seccomp filter request.
    #[serde(default)]
    pub seccomp: Option<Seccomp>,
}

/// `--seccomp=mode=retain|remove[,errno=E],SYSCALL|@group,…`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seccomp {
    /// `retain` (allow-list) or `remove` (block-list).
    pub mode: SeccompMode,
    /// errno returned for denied syscalls (name such as `EPERM`); None = kill the process.
    #[serde(default)]
    pub errno: Option<String>,
    /// Syscall names and `@group` names.
    pub syscalls: Vec<String>,
}

/// Seccomp filter mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompMode {
    /// Only the listed syscalls are allowed.
    Retain,
    /// The listed syscalls are denied.
    Remove,
}

/// Runtime parameters of one start of a pod (`runtime.json`). Written by stage0 for `rkt run` and
/// `rkt run-prepared`; fixed for that run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    /// Networks: `host`, `none`, or CNI networks with their args.
    pub net: NetConfig,
    /// Pod hostname (default `rkt-<uuid>`).
    pub hostname: String,
    /// Give the single app the caller's terminal.
    #[serde(default)]
    pub interactive: bool,
    /// IPC namespace: `auto` (private), `private`, `parent` (host's).
    #[serde(default = "default_ipc")]
    pub ipc: String,
    /// Seconds between SIGTERM and SIGKILL when stopping apps.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout_secs: u64,
    /// `--insecure-options=capabilities`: keep all capabilities.
    #[serde(default)]
    pub disable_capabilities: bool,
    /// `--insecure-options=paths`: no masked / read-only paths.
    #[serde(default)]
    pub disable_paths: bool,
    /// `--insecure-options=seccomp`: no seccomp filter.
    #[serde(default)]
    pub disable_seccomp: bool,
    /// DNS settings (`--dns*`); empty = rkt's default behaviour.
    #[serde(default)]
    pub dns: DnsConfig,
    /// `--hosts-entry` values (`IP=NAME` or `host`).
    #[serde(default)]
    pub hosts_entries: Vec<String>,
    /// `--port NAME:[HOSTIP:]HOSTPORT` forwards.
    #[serde(default)]
    pub ports: Vec<PortForward>,
    /// Local config dir (for `net.d`).
    #[serde(default)]
    pub local_config: String,
    /// System config dir.
    #[serde(default)]
    pub system_config: String,
    /// Dir of derived data stage1 may keep across pods and that can be deleted at any time
    /// (built seccomp programs); empty = keep nothing.
    #[serde(default)]
    pub cache_dir: String,
    /// `--pids-limit`: most tasks (processes and threads) the pod's cgroup may hold, all apps
    /// together (`pids.max`); `None`: no limit. stage0 fills in its default when the flag is
    /// not given (see `pids_limit_required`).
    #[serde(default)]
    pub pids_limit: Option<u64>,
    /// The limit was asked for with the flag: a host without the pids controller is then an
    /// error; rkt's default limit is skipped there.
    #[serde(default)]
    pub pids_limit_required: bool,
    /// The pod shares the host's PID namespace (CRI `NamespaceMode::NODE` for PID).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_pid: bool,
    /// Sysctls set in every app of the pod (namespaced ones: `kernel.shm*`, `kernel.msg*`,
    /// `kernel.sem`, `fs.mqueue.*`, `net.*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sysctls: Vec<(String, String)>,
    /// One more dir of CNI network configurations (the CRI's, e.g. `/etc/cni/net.d`), of
    /// higher precedence than the config roots' `net.d`; empty: none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cni_conf_dir: String,
}

impl RuntimeConfig {
    /// A start with network `net` and `hostname` and every other parameter at its default:
    /// private IPC, 10 s stop timeout, isolation on, no DNS/hosts/ports, no config or cache dirs.
    pub fn new(net: NetConfig, hostname: &str) -> Self {
        RuntimeConfig {
            net,
            hostname: hostname.to_string(),
            interactive: false,
            ipc: default_ipc(),
            stop_timeout_secs: default_stop_timeout(),
            disable_capabilities: false,
            disable_paths: false,
            disable_seccomp: false,
            dns: DnsConfig::default(),
            hosts_entries: vec![],
            ports: vec![],
            local_config: String::new(),
            system_config: String::new(),
            cache_dir: String::new(),
            pids_limit: None,
            pids_limit_required: false,
            host_pid: false,
            sysctls: vec![],
            cni_conf_dir: String::new(),
        }
    }
}

fn default_ipc() -> String {
    "auto".into()
}
fn default_stop_timeout() -> u64 {
    10
}

/// `--net`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "mode", content = "networks")]
pub enum NetConfig {
    /// Share the host's network namespace.
    Host,
    /// Own network namespace with only `lo`.
    None,
    /// Own network namespace set up by CNI, one interface per entry, in order.
    Cni(Vec<NetRequest>),
}

/// One entry of `--net=NAME[:k=v;k=v]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetRequest {
    /// Network name.
    pub name: String,
    /// CNI_ARGS pairs (`IP=…`).
    #[serde(default)]
    pub args: Vec<(String, String)>,
}

/// `--dns`, `--dns-search`, `--dns-opt`, `--dns-domain`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsConfig {
    /// `IP`, `host` or `none` entries.
    #[serde(default)]
    pub servers: Vec<String>,
    /// Search domains.
    #[serde(default)]
    pub search: Vec<String>,
    /// Options.
    #[serde(default)]
    pub options: Vec<String>,
    /// Domain.
    #[serde(default)]
    pub domain: Option<String>,
}

impl DnsConfig {
    /// Whether no `--dns*` flag was given (then a CNI plugin's DNS, if any, applies).
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
            && self.search.is_empty()
            && self.options.is_empty()
            && self.domain.is_none()
    }
}

/// `--port`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortForward {
    /// Port name (`80-tcp`).
    pub name: String,
    /// Host IP to bind, if given.
    #[serde(default)]
    pub host_ip: Option<String>,
    /// Host port.
    pub host_port: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str) -> App {
        App::new(
            name,
            ImageRef {
                id: "sha256:00".into(),
                name: "busybox".into(),
            },
            vec!["/bin/true".into()],
        )
    }

    fn pod(apps: Vec<App>) -> PodManifest {
        PodManifest {
            abi_version: ABI_VERSION,
            uuid: "u".into(),
            apps,
            volumes: vec![],
            annotations: vec![],
            private_users: None,
            mutable: false,
        }
    }

    #[test]
    fn idmapped_volumes_need_private_users() {
        let mut p = pod(vec![app("a")]);
        assert!(p.check_idmapped_volumes(false).is_ok());
        p.volumes.push(Volume {
            name: "v".into(),
            kind: VolumeKind::Host {
                source: "/srv".into(),
                recursive: true,
                idmap: true,
                propagation: None,
                recursive_read_only: false,
            },
            read_only: false,
        });
        let e = p.check_idmapped_volumes(false).unwrap_err().to_string();
        assert!(e.contains("idmap=true needs --private-users"), "{e}");
        assert!(p.check_idmapped_volumes(true).is_ok());
    }

    #[test]
    fn validate_rejects_duplicates_and_dangling_mounts() {
        assert!(pod(vec![app("a"), app("b")]).validate().is_ok());
        let e = pod(vec![app("a"), app("a")]).validate().unwrap_err();
        assert_eq!(e.to_string(), "multiple apps with name a");
        let mut a = app("a");
        a.mounts.push(MountPoint {
            volume: "v".into(),
            target: "/data".into(),
            read_only: false,
        });
        assert!(pod(vec![a])
            .validate()
            .unwrap_err()
            .to_string()
            .contains("dangling mount point"));
        assert!(pod(vec![]).validate().is_err());
    }

    #[test]
    fn manifest_json_round_trip() {
        let mut p = pod(vec![app("a")]);
        p.volumes.push(Volume {
            name: "v".into(),
            kind: VolumeKind::Empty {
                mode: 0o755,
                uid: 0,
                gid: 0,
                populate_from: None,
            },
            read_only: false,
        });
        let s = serde_json::to_string(&p).unwrap();
        let back: PodManifest = serde_json::from_str(&s).unwrap();
        assert_eq!(back, p);
        let net = NetConfig::Cni(vec![NetRequest {
            name: "default".into(),
            args: vec![],
        }]);
        let rc = RuntimeConfig {
            local_config: "/etc/rkt".into(),
            system_config: "/usr/lib/rkt".into(),
            ..RuntimeConfig::new(net, "h")
        };
        let s = serde_json::to_string(&rc).unwrap();
        assert_eq!(serde_json::from_str::<RuntimeConfig>(&s).unwrap(), rc);
    }
}
