//! `rkt-stage1 enter --app=A -- CMD…`: run a command inside a running app, confined like the
//! app: its cgroups, all its namespaces (mount included, so its root filesystem), its user and
//! groups, capability sets, no_new_privs and seccomp filter. stdio is inherited; the exit code is
//! the command's (`128+n` for signal n).
//!
//! libcontainer's tenant builder drops the seccomp filter and defaults the user to root, so
//! stage1 does the few steps itself with libcontainer's capability and seccomp helpers, from the
//! app's spec as [`crate::seccomp::app_view`] reads it.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::sched::CloneFlags;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{Gid, Pid, Uid};
use oci_spec::runtime::Spec;
use stage1_abi::{exit, paths, read_json, AppStatus};

use crate::{sys, Error};

/// Namespaces joined, in order (mount last but one: paths are opened before any join).
const NAMESPACES: &[(&str, CloneFlags)] = &[
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Run `cmd` in `app`; returns its exit code.
pub fn enter(app: &str, cmd: &[String]) -> Result<i32, Error> {
    let pod_dir = std::env::current_dir().map_err(|e| Error::io(Path::new("."), e))?;
    let status: AppStatus = read_json(&pod_dir.join(paths::app_status(app)))
        .map_err(|_| Error::Invalid(format!("app {app:?} not found in this pod")))?;
    let pid = match (status.pid, status.finished()) {
        (Some(p), false) if Path::new(&format!("/proc/{p}")).exists() => Pid::from_raw(p),
        _ => return Err(Error::Invalid(format!("app {app:?} is not running"))),
    };
    let cfg = pod_dir
        .join(paths::app_dir(app))
        .join("bundle")
        .join("config.json");
    let spec = Spec::load(&cfg).map_err(|e| Error::Invalid(format!("{}: {e}", cfg.display())))?;
    let process = spec
        .process()
        .clone()
        .ok_or_else(|| Error::Invalid(format!("{}: no process", cfg.display())))?;

    // the app's cgroups, read from the host's view
    crate::cgroups::join_cgroups_of(pid)?;

    let mut fds: Vec<(OwnedFd, CloneFlags)> = Vec::new();
    let own = |n: &str| std::fs::read_link(format!("/proc/self/ns/{n}")).ok();
    for (n, flag) in NAMESPACES {
        let p = format!("/proc/{pid}/ns/{n}");
        if std::fs::read_link(&p).ok() == own(n) {
            continue; // e.g. --net=host: nothing to join
        }
        let f = std::fs::File::open(&p).map_err(|e| Error::io(Path::new(&p), e))?;
        fds.push((f.into(), *flag));
    }
    for (fd, flag) in &fds {
        nix::sched::setns(fd, *flag).map_err(|e| Error::Sys(format!("joining {flag:?}"), e))?;
    }
    drop(fds);

    let env: Vec<String> = process.env().clone().unwrap_or_default();
    let path_var = env
        .iter()
        .find_map(|v| v.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .to_string();
    let prog = if cmd[0].contains('/') {
        cmd[0].clone()
    } else {
        path_var
            .split(':')
            .map(|d| format!("{}/{}", d.trim_end_matches('/'), cmd[0]))
            .find(|p| Path::new(p).is_file())
            .ok_or_else(|| Error::Invalid(format!("{:?} not found in app {app:?}", cmd[0])))?
    };
    let cstr = |s: &str| {
        CString::new(s).map_err(|_| Error::Invalid(format!("argument {s:?} contains NUL")))
    };
    let prog_c = cstr(&prog)?;
    let argv = cmd.iter().map(|s| cstr(s)).collect::<Result<Vec<_>, _>>()?;
    let envp = env.iter().map(|s| cstr(s)).collect::<Result<Vec<_>, _>>()?;
    let cwd = process.cwd().clone();

    // joining a pid namespace applies to children only; a close-on-exec pipe carries the
    // child's error back if it fails before exec
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::Sys("creating enter pipe".into(), e))?;
    match sys::fork().map_err(|e| Error::Sys("fork".into(), e))? {
        nix::unistd::ForkResult::Child => {
            drop(rd);
            let err = confine_and_exec(&spec, &cwd, &prog_c, &argv, &envp);
            let _ = std::io::Write::write_all(&mut std::fs::File::from(wr), err.as_bytes());
            std::process::exit(exit::RKT_FAILURE);
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(wr);
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut std::fs::File::from(rd), &mut err);
            let code = loop {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, c)) => break c,
                    Ok(WaitStatus::Signaled(_, s, _)) => break exit::from_signal(s as i32),
                    Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(Error::Sys("waiting for the command".into(), e)),
                }
            };
            if err.is_empty() {
                Ok(code)
            } else {
                Err(Error::App {
                    app: app.to_string(),
                    msg: err,
                })
            }
        }
    }
}

fn confine_and_exec(
    spec: &Spec,
    cwd: &Path,
    prog: &CString,
    argv: &[CString],
    envp: &[CString],
) -> String {
    let syscall = libcontainer::syscall::syscall::create_syscall();
    let Some(process) = spec.process() else {
        return "no process in app spec".into();
    };
    // the filter and capabilities the app runs with (stage1 may have loaded its filter itself)
    let (seccomp, caps) = match crate::seccomp::app_view(spec) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let seccomp = seccomp.as_ref();
    let nnp = process.no_new_privileges() == Some(true);
    // as libcontainer: without no_new_privs the filter needs CAP_SYS_ADMIN, so it goes first
    if let (Some(s), false) = (seccomp, nnp) {
        if let Err(e) = libcontainer::seccomp::initialize_seccomp(s) {
            return format!("loading seccomp filter: {e}");
        }
    }
    let user = process.user();
    let gids: Vec<Gid> = user
        .additional_gids()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(Gid::from_raw)
        .collect();
    if let Err(e) = syscall.set_groups(&gids) {
        return format!("setting supplementary groups: {e}");
    }
    if let Err(e) = syscall.set_id(Uid::from_raw(user.uid()), Gid::from_raw(user.gid())) {
        return format!("setting uid/gid: {e}");
    }
    if let Err(e) = libcontainer::capabilities::reset_effective(syscall.as_ref()) {
        return format!("resetting capabilities: {e}");
    }
    if let Some(caps) = &caps {
        if let Err(e) = libcontainer::capabilities::drop_privileges(caps, syscall.as_ref()) {
            return format!("dropping capabilities: {e}");
        }
    }
    if let Err(e) = nix::unistd::chdir(cwd) {
        return format!("changing to {}: {e}", cwd.display());
    }
    if nnp {
        if let Err(e) = nix::sys::prctl::set_no_new_privs() {
            return format!("setting no_new_privs: {e}");
        }
        if let Some(s) = seccomp {
            if let Err(e) = libcontainer::seccomp::initialize_seccomp(s) {
                return format!("loading seccomp filter: {e}");
            }
        }
    }
    sys::default_sigpipe();
    match nix::unistd::execve(prog, argv, envp) {
        Err(e) => format!("executing {prog:?}: {e}"),
        Ok(never) => match never {},
    }
}
