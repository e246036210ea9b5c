//! PodManifest app + RuntimeConfig → OCI runtime spec (`config.json` of the app's bundle).

use std::path::Path;

use serde_json::{json, Value};
use stage1_abi::{App, RuntimeConfig};

use crate::security::isolation::{self, MASKED_PATHS, READONLY_PATHS};
use crate::Error;

/// What can be wrong with an app's spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// An empty `exec`.
    #[error("app {0:?} has nothing to execute")]
    NothingToExecute(String),
}

/// Spec annotation naming the app.
pub const ANN_APP: &str = "rkt.app";

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
    /// Namespace paths of the sandbox to join: (oci type, path).
    pub join_ns: Vec<(&'static str, String)>,
    /// Extra mounts (volumes, /etc files), OCI JSON objects.
    pub mounts: Vec<Value>,
    /// `linux.cgroupsPath`.
    pub cgroups_path: String,
    /// Let libcontainer enforce the device allow-list (cgroup v2: an eBPF program). On v1
    /// stage1 writes the devices cgroup itself.
    pub device_rules: bool,
    /// `process.terminal`: libcontainer gives the app a pty (an interactive app whose caller
    /// has a terminal).
    pub terminal: bool,
}

/// [`crate::cgroups::DEVICE_ALLOW`] as OCI `linux.resources.devices`.
fn device_rules() -> Value {
    let mut v = vec![json!({"allow": false, "access": "rwm"})];
    for rule in crate::cgroups::DEVICE_ALLOW {
        let mut it = rule.split_whitespace();
        let (Some(t), Some(mm), Some(access)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let mut r = json!({"allow": true, "type": t, "access": access});
        if let Some((ma, mi)) = mm.split_once(':') {
            if let Ok(n) = ma.parse::<i64>() {
                r["major"] = json!(n);
            }
            if let Ok(n) = mi.parse::<i64>() {
                r["minor"] = json!(n);
            }
        }
        v.push(r);
    }
    Value::Array(v)
}

/// Build the OCI spec JSON for one app.
pub fn build(inp: &SpecInput<'_>) -> Result<Value, Error> {
    let app = inp.app;
    let caps = isolation::capability_set(&app.isolators, inp.rc)?;
    let seccomp = isolation::seccomp_json(&app.isolators, inp.rc, &caps)?;
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
    let mut capsj = json!({ "bounding": caps });
    if root {
        capsj["effective"] = json!(caps);
        capsj["permitted"] = json!(caps);
    }
    let mut process = json!({
        "terminal": inp.terminal,
        "user": {
            "uid": inp.uid,
            "gid": inp.gid,
            "additionalGids": app.supplementary_gids,
        },
        "args": app.exec,
        "env": env,
        "cwd": if app.working_dir.is_empty() { "/" } else { app.working_dir.as_str() },
        "capabilities": capsj,
    });
    if !root && seccomp.is_some() {
        process["noNewPrivileges"] = json!(true);
    }

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
    ];
    let app_mounts_sys = inp.mounts.iter().any(|m| {
        m["destination"]
            .as_str()
            .is_some_and(|d| d == "/sys" || d.starts_with("/sys/"))
    });
    if !app_mounts_sys {
        let mut opts = vec!["nosuid", "noexec", "nodev"];
        if !inp.rc.disable_paths {
            opts.push("ro");
        }
        mounts.push(
            json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                           "options": opts}),
        );
    }
    mounts.extend(inp.mounts.iter().cloned());

    let mut namespaces = vec![json!({"type": "mount"}), json!({"type": "cgroup"})];
    for (t, p) in &inp.join_ns {
        namespaces.push(json!({"type": t, "path": p}));
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": inp.cgroups_path,
        "rootfsPropagation": "slave",
    });
    if !inp.rc.disable_paths {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    if let Some(s) = seccomp {
        linux["seccomp"] = s;
    }
    if inp.device_rules {
        linux["resources"] = json!({ "devices": device_rules() });
    }
    Ok(json!({
        "ociVersion": "1.0.2",
        "root": {"path": inp.rootfs, "readonly": app.readonly_rootfs},
        "process": process,
        "mounts": mounts,
        "linux": linux,
        "annotations": {ANN_APP: app.name},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use stage1_abi::{ImageRef, NetConfig};

    #[test]
    fn spec_parses_as_oci() {
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
            join_ns: vec![("network", "/proc/1/ns/net".into())],
            mounts: vec![],
            cgroups_path: String::new(),
            device_rules: true,
            terminal: false,
        };
        let v = build(&inp).unwrap();
        assert_eq!(v["process"]["noNewPrivileges"], true);
        assert!(v["process"]["capabilities"].get("effective").is_none());
        assert_eq!(v["process"]["env"][1], "AC_APP_NAME=a");
        assert_eq!(v["annotations"]["rkt.app"], "a");
        let spec: oci_spec::runtime::Spec = serde_json::from_value(v).unwrap();
        assert!(spec.linux().as_ref().unwrap().seccomp().is_some());
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
        let linux = spec.linux().as_ref().unwrap();
        let devs = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap();
        assert!(!devs[0].allow());
        assert_eq!(devs[3].major(), Some(1));
        assert_eq!(devs[3].minor(), Some(3));
    }
}
