//! PodManifest app + RuntimeConfig → OCI runtime spec (`config.json` of the app's bundle).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, Linux, LinuxCapabilities, LinuxDeviceCgroup, LinuxDeviceType, LinuxNamespace,
    LinuxNamespaceType, LinuxResources, Mount, Process, Root, Spec, User,
};
use stage1_abi::{App, RuntimeConfig};

use crate::security::isolation::{self, IsolationError, MASKED_PATHS, READONLY_PATHS};
use crate::Error;

/// What can be wrong with an app's spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// An empty `exec`.
    #[error("app {0:?} has nothing to execute")]
    NothingToExecute(String),
    /// A seccomp profile that is not an OCI `LinuxSeccomp`.
    #[error("app {0:?}: seccomp profile: {1}")]
    Seccomp(String, String),
    /// A device that cannot be given to the app.
    #[error("app {0:?}: device {1}: {2}")]
    Device(String, String, String),
}

/// Spec annotation naming the app.
pub const ANN_APP: &str = "rkt.app";

/// Spec annotation listing the host sources the app's helper binds through idmapped mounts
/// (`idmap=true` volumes with private users): JSON `[[source, recursive], …]`.
pub const ANN_IDMAPPED: &str = "rkt.idmapped-sources";

/// Record `sources` ([`crate::app::volumes::idmapped_sources`]) in `spec` for the helper.
pub fn annotate_idmapped(spec: &mut Spec, sources: &[(String, bool)]) {
    let mut a = spec.annotations().clone().unwrap_or_default();
    a.insert(
        ANN_IDMAPPED.to_string(),
        serde_json::to_string(sources).unwrap_or_default(),
    );
    spec.set_annotations(Some(a));
}

/// The sources [`annotate_idmapped`] recorded.
pub fn idmapped_of(spec: &Spec) -> Vec<(String, bool)> {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(ANN_IDMAPPED))
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default()
}

/// Everything about the pod an app spec needs besides the app itself.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    /// The app.
    pub app: &'a App,
    /// Runtime parameters.
    pub rc: &'a RuntimeConfig,
    /// Absolute path of the app's rootfs.
    pub rootfs: &'a Path,
    /// Resolved uid/gid.
    pub uid: u32,
    /// Resolved gid.
    pub gid: u32,
    /// Resolved supplementary gids (the image's groups of the user and the manifest's).
    pub additional_gids: Vec<u32>,
    /// Namespaces of the sandbox to join: (type, path).
    pub join_ns: Vec<(LinuxNamespaceType, String)>,
    /// Extra mounts (volumes, /etc files).
    pub mounts: Vec<Mount>,
    /// `linux.cgroupsPath`.
    pub cgroups_path: String,
    /// Let libcontainer enforce the device allow-list (cgroup v2: an eBPF program). On v1
    /// stage1 writes the devices cgroup itself.
    pub device_rules: bool,
    /// `process.terminal`: libcontainer gives the app a pty (an interactive app whose caller
    /// has a terminal).
    pub terminal: bool,
}

/// One device cgroup rule.
fn device_rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow)
        .set_typ(typ)
        .set_major(major)
        .set_minor(minor)
        .set_access(Some(access.to_string()));
    r
}

/// A host device as an OCI `linux.devices` entry (and its cgroup permissions).
pub fn oci_device(
    app: &str,
    d: &stage1_abi::Device,
) -> Result<(oci_spec::runtime::LinuxDevice, String), Error> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let err = |m: String| SpecError::Device(app.to_string(), d.host_path.clone(), m);
    let md = std::fs::metadata(&d.host_path).map_err(|e| err(e.to_string()))?;
    let typ = if md.file_type().is_char_device() {
        LinuxDeviceType::C
    } else if md.file_type().is_block_device() {
        LinuxDeviceType::B
    } else {
        return Err(err("not a device node".into()).into());
    };
    let rdev = md.rdev();
    let mut dev = oci_spec::runtime::LinuxDevice::default();
    dev.set_path(PathBuf::from(&d.container_path))
        .set_typ(typ)
        .set_major(nix::sys::stat::major(rdev) as i64)
        .set_minor(nix::sys::stat::minor(rdev) as i64)
        .set_file_mode(Some(md.mode() & 0o7777))
        .set_uid(Some(md.uid()))
        .set_gid(Some(md.gid()));
    let perms = if d.permissions.is_empty() {
        "rwm".to_string()
    } else {
        d.permissions.clone()
    };
    Ok((dev, perms))
}

/// [`crate::cgroups::DEVICE_ALLOW`] as OCI `linux.resources.devices`.
fn device_rules() -> Vec<LinuxDeviceCgroup> {
    let rule = device_rule;
    let mut v = vec![rule(false, None, None, None, "rwm")];
    for d in crate::cgroups::DEVICE_ALLOW {
        let mut it = d.split_whitespace();
        let (Some(t), Some(mm), Some(access)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let typ = match t {
            "c" => LinuxDeviceType::C,
            "b" => LinuxDeviceType::B,
            "u" => LinuxDeviceType::U,
            "p" => LinuxDeviceType::P,
            _ => LinuxDeviceType::A,
        };
        let (ma, mi) = mm.split_once(':').unwrap_or((mm, ""));
        v.push(rule(
            true,
            Some(typ),
            ma.parse::<i64>().ok(),
            mi.parse::<i64>().ok(),
            access,
        ));
    }
    v
}

/// A mount of `typ` at `dest` from `source` with `options`.
pub fn mount(dest: &str, typ: &str, source: impl Into<PathBuf>, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(dest.into())
        .set_typ(Some(typ.to_string()))
        .set_source(Some(source.into()))
        .set_options(Some(options.iter().map(|o| o.to_string()).collect()))
        .set_uid_mappings(None)
        .set_gid_mappings(None);
    m
}

/// `CAP_…` names as an OCI capability set.
fn cap_set(names: &[String]) -> Result<Capabilities, Error> {
    names
        .iter()
        .map(|n| {
            isolation::oci_capability(n)
                .ok_or_else(|| IsolationError::UnknownCapability(n.clone()).into())
        })
        .collect()
}

/// Build the OCI spec for one app.
pub fn build(inp: &SpecInput<'_>) -> Result<Spec, Error> {
    let app = inp.app;
    let cri = app.cri.as_deref();
    let privileged = cri.is_some_and(|c| c.privileged);
    let caps = match cri {
        Some(c) => isolation::cri_capability_set(&app.isolators, inp.rc, c)?,
        None => isolation::capability_set(&app.isolators, inp.rc)?,
    };
    let seccomp = match cri.and_then(|c| c.seccomp.as_ref()) {
        _ if privileged || cri.is_some_and(|c| c.seccomp_unconfined) => None,
        Some(v) => Some(
            serde_json::from_value::<oci_spec::runtime::LinuxSeccomp>(v.clone())
                .map_err(|e| SpecError::Seccomp(app.name.clone(), e.to_string()))?,
        ),
        None => isolation::seccomp_filter(&app.isolators, inp.rc, &caps)?,
    };
    let mut env: Vec<String> = app
        .environment
        .iter()
        .filter(|(k, _)| k != "AC_APP_NAME")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    env.push(format!("AC_APP_NAME={}", app.name));
    if inp.terminal && !env.iter().any(|v| v.starts_with("TERM=")) {
        // as docker/podman run -t
        env.push("TERM=xterm".to_string());
    }
    if app.exec.is_empty() {
        return Err(SpecError::NothingToExecute(app.name.clone()).into());
    }
    let root = inp.uid == 0;
    let set = cap_set(&caps)?;
    let mut capabilities = LinuxCapabilities::default();
    capabilities
        .set_bounding(Some(set.clone()))
        .set_effective(root.then(|| set.clone()))
        .set_inheritable(None)
        .set_permitted(root.then(|| set.clone()))
        .set_ambient(None);
    let mut user = User::default();
    user.set_uid(inp.uid)
        .set_gid(inp.gid)
        .set_umask(None)
        .set_additional_gids(Some(inp.additional_gids.clone()))
        .set_username(None);
    let mut process = Process::default();
    process
        .set_terminal(Some(inp.terminal))
        .set_console_size(None)
        .set_user(user)
        .set_args(Some(app.exec.clone()))
        .set_command_line(None)
        .set_env(Some(env))
        .set_cwd(if app.working_dir.is_empty() {
            "/".into()
        } else {
            app.working_dir.as_str().into()
        })
        .set_capabilities(Some(capabilities))
        .set_rlimits(None)
        .set_no_new_privileges(match cri.and_then(|c| c.no_new_privs) {
            Some(nnp) => Some(nnp),
            None => (!root && seccomp.is_some()).then_some(true),
        })
        .set_apparmor_profile(None)
        .set_oom_score_adj(None)
        .set_selinux_label(None)
        .set_io_priority(None)
        .set_scheduler(None)
        .set_exec_cpu_affinity(None);

    // In a user namespace (`--private-users`) a sysfs or mqueue can be mounted only in a
    // network or IPC namespace the pod owns; with the host's, the host's are bound instead
    // (read-only for sysfs), as runc does.
    let joins = |t: LinuxNamespaceType| inp.join_ns.iter().any(|(x, _)| *x == t);
    let userns = joins(LinuxNamespaceType::User);
    let host_bind = |dest: &str, opts: &[&str]| {
        let mut o = vec!["rbind"];
        o.extend_from_slice(opts);
        mount(dest, "bind", dest, &o)
    };
    // (a host without /dev/mqueue gives the pod none: message queues work without the fs)
    let mqueue = if userns && !joins(LinuxNamespaceType::Ipc) {
        Path::new("/dev/mqueue")
            .is_dir()
            .then(|| host_bind("/dev/mqueue", &["nosuid", "noexec", "nodev"]))
    } else {
        Some(mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ))
    };
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
    ];
    mounts.extend(mqueue);
    let app_mounts_sys = inp.mounts.iter().any(|m| {
        let d = m.destination();
        d == Path::new("/sys") || d.starts_with("/sys/")
    });
    if !app_mounts_sys {
        let mut opts = vec!["nosuid", "noexec", "nodev"];
        if !inp.rc.disable_paths && !privileged {
            opts.push("ro");
        }
        if userns && !joins(LinuxNamespaceType::Network) {
            opts.push("ro");
            opts.dedup();
            mounts.push(host_bind("/sys", &opts));
        } else {
            mounts.push(mount("/sys", "sysfs", "sysfs", &opts));
        }
    }
    mounts.extend(inp.mounts.iter().cloned());
    let shared_mount = inp.mounts.iter().any(|m| {
        m.options()
            .as_ref()
            .is_some_and(|o| o.iter().any(|x| x == "rshared"))
    });

    let ns = |typ: LinuxNamespaceType, path: Option<&str>| {
        let mut n = LinuxNamespace::default();
        n.set_typ(typ).set_path(path.map(PathBuf::from));
        n
    };
    let mut namespaces = vec![
        ns(LinuxNamespaceType::Mount, None),
        ns(LinuxNamespaceType::Cgroup, None),
    ];
    let own_pid = cri.is_some_and(|c| c.own_pid_namespace);
    for (t, p) in &inp.join_ns {
        if own_pid && *t == LinuxNamespaceType::Pid {
            namespaces.push(ns(*t, None));
        } else {
            namespaces.push(ns(*t, Some(p)));
        }
    }
    let paths = |p: &[&str], over: Option<&Vec<String>>| {
        if inp.rc.disable_paths || privileged {
            return None;
        }
        Some(match over {
            Some(v) => v.clone(),
            None => p.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        })
    };
    let devices = match cri {
        Some(c) => c
            .devices
            .iter()
            .map(|d| oci_device(&app.name, d))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let resources = inp.device_rules.then(|| {
        let mut rules = device_rules();
        if privileged {
            rules.push(device_rule(true, None, None, None, "rwm"));
        }
        for (d, perms) in &devices {
            rules.push(device_rule(
                true,
                Some(d.typ()),
                Some(d.major()),
                Some(d.minor()),
                perms,
            ));
        }
        let mut r = LinuxResources::default();
        r.set_devices(Some(rules));
        r
    });
    let sysctl: HashMap<String, String> = inp.rc.sysctls.iter().cloned().collect();
    let mut linux = Linux::default();
    linux
        .set_net_devices(None)
        .set_uid_mappings(None)
        .set_gid_mappings(None)
        .set_sysctl((!sysctl.is_empty()).then_some(sysctl))
        .set_resources(resources)
        .set_cgroups_path(Some(inp.cgroups_path.as_str().into()))
        .set_namespaces(Some(namespaces))
        .set_devices(
            (!devices.is_empty()).then(|| devices.iter().map(|(d, _)| d.clone()).collect()),
        )
        .set_seccomp(seccomp)
        // a volume that propagates back to the host needs a shared root (as runc)
        .set_rootfs_propagation(Some(
            if shared_mount { "shared" } else { "slave" }.to_string(),
        ))
        .set_masked_paths(paths(
            MASKED_PATHS,
            cri.and_then(|c| c.masked_paths.as_ref()),
        ))
        .set_readonly_paths(paths(
            READONLY_PATHS,
            cri.and_then(|c| c.readonly_paths.as_ref()),
        ))
        .set_mount_label(None)
        .set_intel_rdt(None)
        .set_memory_policy(None)
        .set_personality(None)
        .set_time_offsets(None);
    let mut rootfs = Root::default();
    rootfs
        .set_path(inp.rootfs.to_path_buf())
        .set_readonly(Some(app.readonly_rootfs));
    let mut spec = Spec::default();
    spec.set_version("1.0.2".to_string())
        .set_root(Some(rootfs))
        .set_mounts(Some(mounts))
        .set_process(Some(process))
        .set_hostname(None)
        .set_domainname(None)
        .set_hooks(None)
        .set_annotations(Some(HashMap::from([(
            ANN_APP.to_string(),
            app.name.clone(),
        )])))
        .set_linux(Some(linux))
        .set_solaris(None)
        .set_windows(None)
        .set_vm(None)
        .set_zos(None)
        .set_uid_mappings(None)
        .set_gid_mappings(None);
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::Capability;
    use stage1_abi::{ImageRef, NetConfig};

    #[test]
    fn spec_round_trips_through_config_json_with_the_key_fields() {
        let app = App {
            user: "1000".into(),
            group: "1000".into(),
            supplementary_gids: vec![5, 6],
            working_dir: "/tmp".into(),
            environment: vec![("A".into(), "1".into())],
            readonly_rootfs: true,
            ..App::new(
                "a",
                ImageRef {
                    id: "sha256:00".into(),
                    name: "bb".into(),
                },
                vec!["/bin/true".into()],
            )
        };
        let rc = RuntimeConfig {
            stop_timeout_secs: 1,
            ..RuntimeConfig::new(NetConfig::None, "h")
        };
        let inp = SpecInput {
            app: &app,
            rc: &rc,
            rootfs: Path::new("/tmp/r"),
            uid: 1000,
            gid: 1000,
            additional_gids: vec![5, 6, 7],
            join_ns: vec![(LinuxNamespaceType::Network, "/proc/1/ns/net".into())],
            mounts: vec![mount("/data", "bind", "/srv/d", &["rbind", "ro"])],
            cgroups_path: "rkt/x/a".into(),
            device_rules: true,
            terminal: false,
        };
        // what the bundle's config.json holds, read back as libcontainer reads it
        let json = serde_json::to_vec(&build(&inp).unwrap()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let spec: Spec = serde_json::from_slice(&json).unwrap();
        assert_eq!(spec.version(), "1.0.2");
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        // nothing of oci-spec's defaults (hostname "youki", rlimits, …) leaks in
        assert_eq!(
            keys,
            [
                "annotations",
                "linux",
                "mounts",
                "ociVersion",
                "process",
                "root"
            ]
        );
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &["/bin/true"]);
        assert_eq!(
            p.env().as_ref().unwrap(),
            &["A=1".to_string(), "AC_APP_NAME=a".to_string()]
        );
        assert_eq!(p.cwd(), Path::new("/tmp"));
        assert_eq!(p.terminal(), Some(false));
        assert_eq!(p.no_new_privileges(), Some(true));
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
        assert_eq!(p.user().additional_gids().as_ref().unwrap(), &[5, 6, 7]);
        assert!(p.rlimits().is_none() && p.oom_score_adj().is_none());
        let caps = p.capabilities().as_ref().unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert!(caps.effective().is_none() && caps.permitted().is_none());
        assert!(caps
            .bounding()
            .as_ref()
            .unwrap()
            .contains(&Capability::NetBindService));
        assert!(v["process"].get("rlimits").is_none());
        let root = spec.root().as_ref().unwrap();
        assert_eq!(root.path(), Path::new("/tmp/r"));
        assert_eq!(root.readonly(), Some(true));
        let dests: Vec<&Path> = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.destination().as_path())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/data"
            ]
            .map(Path::new)
        );
        assert_eq!(
            v["mounts"][5]["options"],
            serde_json::json!(["nosuid", "noexec", "nodev", "ro"])
        );
        assert_eq!(v["mounts"][6]["source"], "/srv/d");
        let linux = spec.linux().as_ref().unwrap();
        let ns: Vec<(LinuxNamespaceType, Option<&Path>)> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| (n.typ(), n.path().as_deref()))
            .collect();
        assert_eq!(
            ns,
            [
                (LinuxNamespaceType::Mount, None),
                (LinuxNamespaceType::Cgroup, None),
                (
                    LinuxNamespaceType::Network,
                    Some(Path::new("/proc/1/ns/net"))
                ),
            ]
        );
        assert_eq!(linux.cgroups_path().as_deref(), Some(Path::new("rkt/x/a")));
        assert_eq!(linux.rootfs_propagation().as_deref(), Some("slave"));
        assert_eq!(
            linux.masked_paths().as_ref().unwrap().len(),
            MASKED_PATHS.len()
        );
        assert_eq!(
            linux.readonly_paths().as_ref().unwrap().len(),
            READONLY_PATHS.len()
        );
        let seccomp = linux.seccomp().as_ref().unwrap();
        assert!(!seccomp.syscalls().as_ref().unwrap().is_empty());
        let devs = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap();
        assert!(!devs[0].allow());
        assert_eq!(devs[0].typ(), None);
        assert_eq!(devs[3].typ(), Some(LinuxDeviceType::C));
        assert_eq!(devs[3].major(), Some(1));
        assert_eq!(devs[3].minor(), Some(3));
        assert_eq!(devs[1].major(), None);
        assert_eq!(v["linux"]["resources"].as_object().unwrap().len(), 1);
        assert_eq!(
            spec.annotations()
                .as_ref()
                .unwrap()
                .get(ANN_APP)
                .map(String::as_str),
            Some("a")
        );
    }

    #[test]
    fn root_app_gets_its_capabilities_in_every_set_and_no_nnp() {
        let app = App::new(
            "r",
            ImageRef {
                id: "sha256:00".into(),
                name: "bb".into(),
            },
            vec!["/bin/true".into()],
        );
        let rc = RuntimeConfig {
            disable_paths: true,
            ..RuntimeConfig::new(NetConfig::Host, "h")
        };
        let inp = SpecInput {
            app: &app,
            rc: &rc,
            rootfs: Path::new("/r"),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            join_ns: vec![],
            mounts: vec![mount("/sys/fs/x", "bind", "/x", &["bind"])],
            cgroups_path: String::new(),
            device_rules: false,
            terminal: true,
        };
        let spec = build(&inp).unwrap();
        let p = spec.process().as_ref().unwrap();
        let caps = p.capabilities().as_ref().unwrap();
        assert_eq!(caps.effective(), caps.bounding());
        assert_eq!(caps.permitted(), caps.bounding());
        assert_eq!(p.no_new_privileges(), None);
        assert!(p
            .env()
            .as_ref()
            .unwrap()
            .contains(&"TERM=xterm".to_string()));
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.masked_paths().is_none() && linux.resources().is_none());
        // the app mounts something under /sys: no sysfs of its own
        assert!(!spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.destination() == Path::new("/sys")));
        let mut bad = app.clone();
        bad.exec.clear();
        let e = build(&SpecInput { app: &bad, ..inp }).unwrap_err();
        assert_eq!(e.to_string(), "app \"r\" has nothing to execute");
    }
}
