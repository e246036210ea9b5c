//! Start one app of the pod as a libcontainer container that joins the sandbox's namespaces.
//! A function of the supervisor (not a one-shot sequence), so a control socket can later add
//! apps to a running pod.

use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use oci_spec::runtime::LinuxNamespaceType;
use stage1_abi::{now_ns, paths, App, AppStatus, DnsConfig, PodManifest, RuntimeConfig};

use crate::app::helper::{Helper, Job};
use crate::app::spec::{self, SpecInput};
use crate::app::{app_err, user, volumes, AppFailure};
use crate::cgroups::PodCgroups;
use crate::pod::sandbox::Sandbox;
use crate::Error;

/// What starting an app needs from the pod.
pub struct PodCtx<'a> {
    /// Absolute pod dir.
    pub pod_dir: &'a Path,
    /// The manifest.
    pub pod: &'a PodManifest,
    /// Runtime parameters.
    pub rc: &'a RuntimeConfig,
    /// The sandbox.
    pub sandbox: &'a Sandbox,
    /// The pod's cgroups.
    pub cgroups: &'a PodCgroups,
    /// Where the apps' resolv.conf comes from (flags or a CNI plugin), if anywhere.
    pub dns: Option<&'a DnsConfig>,
    /// The (interactive) app gets a terminal (see [`crate::app::console`]).
    pub terminal: bool,
}

/// A started app as the supervisor tracks it.
#[derive(Debug, Clone)]
pub struct AppProc {
    /// Host PID of the app's process.
    pub pid: Pid,
    /// Its status record (also on disk).
    pub status: AppStatus,
    /// Path of the status file.
    pub status_path: PathBuf,
}

impl AppProc {
    /// Whether the app still runs.
    pub fn running(&self) -> bool {
        !self.status.finished()
    }

    /// Record the app's end and write the status file.
    pub fn finish(&mut self, exit_code: i32, signal: Option<i32>, stopped_by_pod: bool) {
        self.status.finished_ns = Some(now_ns());
        self.status.exit_code = Some(if stopped_by_pod { 0 } else { exit_code });
        self.status.signal = signal;
        self.status.stopped_by_pod = stopped_by_pod;
        let _ = write_status(&self.status_path, &self.status);
    }
}

/// One line from an error and its sources.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s.replace('\n', " ")
}

/// Write a status file by the pod-dir rule (`stage1_abi::write_atomic`).
pub fn write_status(path: &Path, st: &AppStatus) -> Result<(), Error> {
    Ok(stage1_abi::write_json_atomic(path, st)?)
}

/// Release the app root filesystems stage0 mounted (`apps/<app>/rootfs`) once nothing of the
/// pod runs: an exited pod keeps its files (`upper/`) until gc, not its mounts, so the host's
/// mount table does not grow with every pod that has exited and not yet been collected (each
/// entry slows every later `rkt run`, and systemd re-reads the table on each change).
/// Unmounting syncs the overlay's upper filesystem, as any unmount of a writable overlay does.
/// Idempotent; a mount still in use elsewhere is detached lazily.
pub fn release_rootfs(pod_dir: &Path) {
    let Ok(rd) = std::fs::read_dir(pod_dir.join(paths::APPS_DIR)) else {
        return;
    };
    for e in rd.flatten() {
        let rootfs = e.path().join(paths::APP_ROOTFS);
        let res = match nix::mount::umount2(&rootfs, nix::mount::MntFlags::empty()) {
            Err(nix::errno::Errno::EBUSY) => {
                nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH)
            }
            r => r,
        };
        match res {
            // not mounted (any more), or no such app dir
            Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
            Err(e) => tracing::warn!("unmounting {}: {e}", rootfs.display()),
        }
    }
}

/// Where an app's stdio goes.
#[derive(Debug, Clone)]
pub enum Stdio<'a> {
    /// stage1's (stdin /dev/null unless interactive).
    Inherit,
    /// A terminal whose master libcontainer sends to this socket ([`crate::app::console`]).
    Console(&'a Path),
    /// stdout and stderr to these pipes (a CRI log, [`crate::app::crilog`]), stdin from this
    /// fd (a CRI app's stdin fifo) or /dev/null.
    Log(
        std::sync::Arc<[std::os::fd::OwnedFd; 2]>,
        Option<std::sync::Arc<std::os::fd::OwnedFd>>,
    ),
}

/// First half of starting an app, done before the sandbox exists: record its cgroups and fork
/// the helper that creates them and then its container (see [`crate::app::helper`]).
pub fn prepare_app(
    pod_dir: &Path,
    pod: &PodManifest,
    rc: &RuntimeConfig,
    cgroups: &PodCgroups,
    app: &App,
    stdio: Stdio<'_>,
    userns_root: Option<u32>,
) -> Result<Helper, Error> {
    let (console_socket, stdio, stdin) = match stdio {
        Stdio::Inherit => (None, None, None),
        Stdio::Console(p) => (Some(p), None, None),
        Stdio::Log(fds, stdin) => (None, Some(fds), stdin),
    };
    cgroups.record_app(&app.name)?;
    let state = pod_dir.join(paths::STATE_DIR);
    std::fs::create_dir_all(&state).map_err(|e| Error::io(&state, e))?;
    Helper::spawn(
        cgroups,
        Job {
            app: app.name.clone(),
            uuid: pod.uuid.clone(),
            state,
            bundle: pod_dir.join(paths::app_bundle(&app.name)),
            interactive: rc.interactive,
            console_socket: console_socket.map(Path::to_path_buf),
            listen_fds: crate::systemd::listen_fds_for(&app.name),
            userns_root,
            stdio,
            stdin,
            shared_mounts: crate::app::volumes::has_shared_volume(pod, app),
        },
    )
}

/// Create and start `app` with its prepared `helper`. On error nothing of the app keeps
/// running.
pub fn start_app(ctx: &PodCtx<'_>, app: &App, helper: Helper) -> Result<AppProc, Error> {
    let c = create_app(ctx, app, helper)?;
    if let Err(e) = deliver_filters(std::slice::from_ref(&c), ctx.rc) {
        c.abandon();
        return Err(e);
    }
    finish_app(ctx, app, c)
}

/// An app whose helper is creating its container.
#[derive(Debug)]
pub struct Creating {
    app: String,
    helper: Helper,
    status: AppStatus,
    status_path: PathBuf,
    /// The seccomp filter stage1 took over from libcontainer, to build and deliver before
    /// the app starts ([`deliver_filters`]).
    filter: Option<serde_json::Value>,
}

impl Creating {
    /// Give up on the app: wait for the helper and kill what it created.
    pub fn abandon(self) {
        if let Ok(pid) = self.helper.wait_created() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}

/// First half of [`start_app`]: write the app's bundle and let its helper create the container
/// in the background ([`finish_app`] waits for it and starts the app).
pub fn create_app(ctx: &PodCtx<'_>, app: &App, mut helper: Helper) -> Result<Creating, Error> {
    let pod_dir = ctx.pod_dir;
    let rootfs = pod_dir.join(paths::app_rootfs(&app.name));
    if !rootfs.is_dir() {
        return Err(app_err(&app.name, AppFailure::RootfsMissing(rootfs)));
    }
    // every file stage1 looks at or makes in the image's tree goes through this fd
    let root = crate::security::inroot::Root::open(&rootfs).map_err(|e| app_err(&app.name, e))?;
    let (uid, gid) =
        user::resolve(&root, &app.user, &app.group).map_err(|e| app_err(&app.name, e))?;
    for g in &app.supplementary_gids {
        user::check_id("supplementary gid", *g).map_err(|e| app_err(&app.name, e))?;
    }
    let strict = app
        .cri
        .as_deref()
        .is_some_and(|c| c.strict_supplemental_groups);
    let additional_gids = if strict {
        let mut g = app.supplementary_gids.clone();
        let mut seen = std::collections::HashSet::from([gid]);
        g.retain(|x| seen.insert(*x));
        g
    } else {
        user::supplementary_gids(&root, &app.user, uid, gid, &app.supplementary_gids)
            .map_err(|e| app_err(&app.name, e))?
    };
    let user_gids = additional_gids.clone();
    let userns = ctx.sandbox.userns.as_ref();
    user::host_id("uid", uid, userns)
        .and_then(|_| user::host_id("gid", gid, userns))
        .and_then(|_| {
            additional_gids
                .iter()
                .try_for_each(|g| user::host_id("supplementary gid", *g, userns).map(drop))
        })
        .map_err(|e| app_err(&app.name, e))?;
    let bundle = pod_dir.join(paths::app_bundle(&app.name));
    let idmapped = volumes::idmapped_sources(ctx.pod, app);
    let mut mounts = volumes::volume_mounts(pod_dir, ctx.pod, app)?;
    mounts.extend(
        volumes::etc_mounts(
            &bundle.join(paths::BUNDLE_FILES),
            &root,
            ctx.rc,
            ctx.dns,
            app.readonly_rootfs,
            ctx.sandbox.userns.map(|r| r.shift),
        )
        .map_err(|e| app_err(&app.name, e))?,
    );
    let sb = ctx.sandbox;
    let mut join_ns = vec![
        (LinuxNamespaceType::Pid, sb.ns_path("pid")),
        (LinuxNamespaceType::Uts, sb.ns_path("uts")),
    ];
    if sb.userns.is_some() {
        // libcontainer joins it first, then the others, which it owns
        join_ns.push((LinuxNamespaceType::User, sb.ns_path("user")));
    }
    if sb.own_net {
        join_ns.push((LinuxNamespaceType::Network, sb.ns_path("net")));
    }
    if sb.own_ipc {
        join_ns.push((LinuxNamespaceType::Ipc, sb.ns_path("ipc")));
    }
    let mut spec = spec::build(&SpecInput {
        app,
        rc: ctx.rc,
        rootfs: &rootfs,
        uid,
        gid,
        additional_gids,
        join_ns,
        mounts,
        cgroups_path: ctx.cgroups.libcontainer_path(&app.name),
        device_rules: ctx.cgroups.is_unified(),
        terminal: ctx.terminal,
    })
    .map_err(|e| app_err(&app.name, e))?;
    crate::systemd::adjust_spec(&mut spec, &app.name);
    if !idmapped.is_empty() {
        spec::annotate_idmapped(&mut spec, &idmapped);
    }
    let filter = crate::libcontainer_bypass::take_over_seccomp(&mut spec);
    let cfg = bundle.join(paths::BUNDLE_CONFIG);
    std::fs::create_dir_all(&bundle).map_err(|e| Error::io(&bundle, e))?;
    let data = serde_json::to_vec(&spec).map_err(|e| app_err(&app.name, AppFailure::Spec(e)))?;
    stage1_abi::write_atomic(&cfg, &data)?;

    let status_path = pod_dir.join(paths::app_status(&app.name));
    let status = AppStatus {
        app: app.name.clone(),
        created_ns: Some(now_ns()),
        user: Some((uid, gid, user_gids)),
        ..Default::default()
    };
    write_status(&status_path, &status)?;
    tracing::debug!(app = %app.name, "bundle written");
    helper.go();
    Ok(Creating {
        app: app.name.clone(),
        helper,
        status,
        status_path,
        filter,
    })
}

/// Build the seccomp filters stage1 took over (each distinct one once, or taken from the
/// program cache `rc` names) and deliver them to the apps' inits, while their helpers create
/// the containers. Must run before [`finish_app`] starts them.
pub fn deliver_filters(creating: &[Creating], rc: &RuntimeConfig) -> Result<(), Error> {
    let cache = (!rc.cache_dir.is_empty())
        .then(|| crate::security::seccomp_cache::ProgramCache::new(Path::new(&rc.cache_dir)));
    let mut built: Vec<(&serde_json::Value, Vec<u8>)> = Vec::new();
    for c in creating {
        let Some(f) = &c.filter else {
            continue;
        };
        let i = match built.iter().position(|(g, _)| *g == f) {
            Some(i) => i,
            None => {
                let p = crate::security::seccomp::build(f, cache.as_ref())
                    .map_err(|e| app_err(&c.app, AppFailure::SeccompBuild(e)))?;
                built.push((f, p));
                built.len() - 1
            }
        };
        crate::security::seccomp::deliver(&built[i].1, c.helper.program())
            .map_err(|e| app_err(&c.app, AppFailure::SeccompDeliver(e)))?;
    }
    tracing::debug!(filters = built.len(), "seccomp filters built");
    Ok(())
}

/// Second half of [`start_app`]: wait until the container exists, apply the limits that need
/// its PID, start it. On error nothing of the app keeps running.
pub fn finish_app(ctx: &PodCtx<'_>, app: &App, c: Creating) -> Result<AppProc, Error> {
    let Creating {
        helper,
        mut status,
        status_path,
        ..
    } = c;
    let pod_dir = ctx.pod_dir;
    let pid = helper.wait_created()?;
    tracing::debug!(app = %app.name, %pid, "container created");
    // the helper has exited: the app's process is stage1's child now, so its parent-death
    // signal (set right before exec) ties it to stage1
    let fail = |e: Error| {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
        e
    };
    ctx.cgroups
        .apply_limits(&app.name, &app.isolators)
        .map_err(|e| fail(app_err(&app.name, e)))?;
    if let Some(cri) = app.cri.as_deref() {
        if !ctx.cgroups.is_unified() {
            let mut rules: Vec<String> = Vec::new();
            if cri.privileged {
                rules.push("a".into());
            }
            for d in &cri.devices {
                let (dev, perms) = crate::app::spec::oci_device(&app.name, d).map_err(fail)?;
                let t = if dev.typ() == oci_spec::runtime::LinuxDeviceType::B {
                    "b"
                } else {
                    "c"
                };
                rules.push(format!("{t} {}:{} {perms}", dev.major(), dev.minor()));
            }
            ctx.cgroups
                .allow_devices(&app.name, &rules)
                .map_err(|e| fail(app_err(&app.name, e)))?;
        }
    }
    if let Some(adj) = app.isolators.oom_score_adj {
        let p = format!("/proc/{pid}/oom_score_adj");
        let clamp = app.cri.as_deref().is_some_and(|c| c.clamp_oom_score_adj);
        let res = std::fs::write(&p, adj.to_string()).or_else(|e| {
            // without CAP_SYS_RESOURCE a score below stage1's own is refused: the kubelet
            // expects the nearest one the host allows
            let own: Option<i32> = std::fs::read_to_string("/proc/self/oom_score_adj")
                .ok()
                .and_then(|s| s.trim().parse().ok());
            match own {
                Some(own) if clamp && adj < own => std::fs::write(&p, own.to_string()),
                _ => Err(e),
            }
        });
        res.map_err(|e| {
            fail(app_err(
                &app.name,
                AppFailure::OomScoreAdj { adj, source: e },
            ))
        })?;
    }
    // Let the app's init exec at once: libcontainer's `start` would first parse the state and
    // the config it saved and read the init's /proc entry. Then record the state `start`
    // records (rkt's specs have no poststart hooks), while the app execs on the other core.
    let state = pod_dir.join(paths::STATE_DIR).join(&app.name);
    crate::libcontainer_bypass::start_created(&app.name, &state)
        .map_err(|e| fail(app_err(&app.name, AppFailure::Start(e))))?;
    status.pid = Some(pid.as_raw());
    status.started_ns = Some(now_ns());
    write_status(&status_path, &status)?;
    Ok(AppProc {
        pid,
        status,
        status_path,
    })
}
