//! `rkt enter`: run a command inside a running app. stage0 picks the app and the default
//! command, then execs `rkt-stage1 enter --app=A -- CMD…` in the pod dir; stage1 confines the
//! command like the app (namespaces, cgroups, user, capabilities, seccomp, no_new_privs), in a
//! session of its own with a pty of its own when the caller has a terminal, and with no fd of
//! the caller but stdio (see stage1's `enter`). The exit code is the command's.

use stage1_abi::{paths, PodManifest, Stage1Command};
use std::convert::Infallible;
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::pods::{Pods, State};
use crate::{Error, Result};

/// What `rkt enter` will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnterPlan {
    /// The pod UUID.
    pub uuid: String,
    /// The pod dir.
    pub pod_dir: PathBuf,
    /// The app.
    pub app: String,
    /// The command.
    pub cmd: Vec<String>,
    /// True when `cmd` is the default shell (the CLI says so, as rkt did).
    pub default_cmd: bool,
}

/// Resolve the pod, the app and the command.
pub fn plan(pods: &Pods, uuid_arg: &str, app: Option<&str>, cmd: &[String]) -> Result<EnterPlan> {
    let uuid = pods.find(uuid_arg)?.uuid;
    let (phase, state) = pods
        .state(&uuid)?
        .ok_or_else(|| Error::NoMatch(uuid_arg.to_string()))?;
    if state != State::Running {
        return Err(Error::PodState {
            uuid,
            what: "not running".into(),
        });
    }
    let pod_dir = pods.path(phase, &uuid);
    let m: PodManifest = stage1_abi::read_json(&pod_dir.join(paths::POD_MANIFEST))?;
    let app = match app {
        Some(a) => {
            if m.app(a).is_none() {
                return Err(Error::usage(format!("app {a:?} not found in pod {uuid:?}")));
            }
            a.to_string()
        }
        None if m.apps.len() == 1 => m.apps[0].name.clone(),
        None => {
            let names: Vec<&str> = m.apps.iter().map(|a| a.name.as_str()).collect();
            return Err(Error::usage(format!(
                "pod {uuid:?} contains multiple apps ({}): specify one with --app",
                names.join(", ")
            )));
        }
    };
    let (cmd, default_cmd) = if cmd.is_empty() {
        let rootfs = pod_dir.join(paths::app_rootfs(&app));
        let has = |p: &str| exists_in_root(&rootfs, p);
        let sh = if has("bin/bash") {
            "/bin/bash"
        } else {
            "/bin/sh"
        };
        (vec![sh.to_string()], true)
    } else {
        (cmd.to_vec(), false)
    };
    Ok(EnterPlan {
        uuid,
        pod_dir,
        app,
        cmd,
        default_cmd,
    })
}

fn cstring(s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| Error::usage(format!("{s:?} contains a NUL byte")))
}

/// Exec stage1's enter entry point for `plan`. Returns only on failure.
pub fn exec(plan: &EnterPlan, stage1: &Path) -> Result<Infallible> {
    let mut argv = vec![cstring(stage1.as_os_str())?];
    let cmd = Stage1Command::Enter {
        app: plan.app.clone(),
        cmd: plan.cmd.clone(),
    };
    for a in cmd.to_args() {
        argv.push(cstring(OsStr::new(&a))?);
    }
    let envp: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != stage1_abi::env::LOCK_FD)
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstring(&kv)
        })
        .collect::<Result<_>>()?;
    nix::unistd::chdir(&plan.pod_dir)
        .map_err(|e| Error::io("changing directory to", &plan.pod_dir, e.into()))?;
    // from a read-only mount, as `rkt run` (stage1 then needs no read-only re-exec of its own)
    Err(crate::run::exec_read_only(stage1, &argv, &envp))
}

/// Whether `path` exists in the app's rootfs `root` (the last component not followed), looked
/// up with `openat2(RESOLVE_IN_ROOT)`: the image's links never lead the lookup onto the host.
fn exists_in_root(root: &Path, path: &str) -> bool {
    use nix::fcntl::{open, openat2, OFlag, OpenHow, ResolveFlag};
    use nix::sys::stat::Mode;
    let Ok(dir) = open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_IN_ROOT
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
    let found = openat2(dir, path, how).map(nix::unistd::close).is_ok();
    let _ = nix::unistd::close(dir);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::Phase;
    use stage1_abi::{App, ImageRef, ABI_VERSION};

    fn app(name: &str) -> App {
        App::new(
            name,
            ImageRef {
                id: "sha256:0".into(),
                name: "x".into(),
            },
            vec!["/bin/true".into()],
        )
    }

    #[test]
    fn plans_app_and_default_shell() {
        const U: &str = "e0000000-0000-4000-8000-00000000000e";
        let d = tempfile::tempdir().unwrap();
        let pods = Pods::new(d.path());
        let mut p = pods.create(U).unwrap();
        p.transition(Phase::Run).unwrap();
        let m = PodManifest {
            abi_version: ABI_VERSION,
            uuid: U.into(),
            apps: vec![app("a"), app("b")],
            volumes: vec![],
            annotations: vec![],
            private_users: None,
            mutable: false,
        };
        stage1_abi::write_json_atomic(&p.path().join("pod"), &m).unwrap();
        let e = plan(&pods, "e0", None, &[]).unwrap_err();
        assert!(e.to_string().contains("multiple apps (a, b)"), "{e}");
        let pl = plan(&pods, "e0", Some("b"), &[]).unwrap();
        assert_eq!(pl.cmd, vec!["/bin/sh"]);
        assert!(pl.default_cmd);
        // a bash the image's links find only on the host does not count
        let host_bin = p.path().join("host-bin");
        std::fs::create_dir_all(&host_bin).unwrap();
        std::fs::write(host_bin.join("bash"), "").unwrap();
        std::fs::create_dir_all(p.path().join("apps/b/rootfs")).unwrap();
        std::os::unix::fs::symlink(&host_bin, p.path().join("apps/b/rootfs/bin")).unwrap();
        assert_eq!(
            plan(&pods, "e0", Some("b"), &[]).unwrap().cmd,
            vec!["/bin/sh"]
        );
        std::fs::remove_file(p.path().join("apps/b/rootfs/bin")).unwrap();
        std::fs::create_dir_all(p.path().join("apps/b/rootfs/bin")).unwrap();
        std::fs::write(p.path().join("apps/b/rootfs/bin/bash"), "").unwrap();
        assert_eq!(
            plan(&pods, "e0", Some("b"), &[]).unwrap().cmd,
            vec!["/bin/bash"]
        );
        let pl = plan(&pods, "e0", Some("a"), &["id".into()]).unwrap();
        assert_eq!(
            (pl.cmd.clone(), pl.default_cmd),
            (vec!["id".to_string()], false)
        );
        assert!(plan(&pods, "e0", Some("c"), &[]).is_err());
        p.unlock();
        assert!(plan(&pods, "e0", Some("a"), &[])
            .unwrap_err()
            .to_string()
            .contains("is not running"));
    }
}
