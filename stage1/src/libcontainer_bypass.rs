//! Every place stage1 reaches past libcontainer's front door (`ContainerBuilder` … `build()`
//! for one container): each relies on how libcontainer 0.7 works inside, so each is here, and
//! the rest of stage1 calls libcontainer only through this module and the builder
//! ([`crate::app::helper`]).
//!
//! # What to re-check on a libcontainer (or libcgroups) upgrade
//!
//! - **Start bypass** ([`start_created`]): stage1 starts a created container by writing to the
//!   init's notify socket itself (`notify_socket::NotifySocket`, [`NOTIFY_FILE`] in the state
//!   dir) and then records `Running` in libcontainer's state file (`Container::load`,
//!   `set_status`, `save`), which is what `Container::start` does for a spec without poststart
//!   hooks. Relies on: the socket's name and message, the state file's shape, `start` doing
//!   nothing more. Caught by: every integration test that runs an app (`run.rs`
//!   `run_true_exits_0_and_false_exits_1`); `rkt-stage1 enter` reads the state (`enter.rs`).
//! - **Seccomp take-over** ([`take_over_seccomp`], [`RktExecutor`]): stage1 removes
//!   `linux.seccomp` from the spec, builds the same filter with libseccomp as libcontainer's
//!   `seccomp::initialize_seccomp` would (action, argument-condition and `SCMP_CMP_MASKED_EQ`
//!   readings; skipped unknown names), delivers it in a memfd the init inherits, and the
//!   executor hook loads it right before exec (after libcontainer's capability set-up; a root
//!   app gets CAP_SYS_ADMIN/CAP_SETPCAP lent and dropped there). Relies on: the executor hook
//!   running last in the init, with the inherited fds, after the capabilities are set; the
//!   translation rules of `initialize_seccomp`. Caught by: `security::seccomp` unit tests that
//!   load the same filter both ways and compare the kernel's answers; `run.rs`
//!   `caps_and_seccomp_flags_reach_the_app`, `seccomp_programs_are_built_once_and_checked_before_use`;
//!   `hardening_limits.rs` `cap_sys_admin_pod_gets_namespaces_as_under_docker`.
//! - **Executor environment and exec** ([`RktExecutor::setup_envs`], [`RktExecutor::exec`],
//!   [`RktExecutor::validate`]): stage1 keeps the environment libcontainer computed and execs
//!   itself (linear in the number of variables; one-line exec errors; pdeathsig; a clean
//!   signal mask). Relies on: `setup_envs` being handed the final environment and `exec` being
//!   the last call. Caught by: the unit test here; `hardening_limits.rs`
//!   `image_with_100k_env_entries_runs_and_the_app_gets_them_all`; `run.rs`
//!   `app_args_reach_the_app_and_env_precedence_holds`.
//! - **Hidden `/sys/fs/cgroup`** ([`hide_v1_from_libcontainer`]): on v1 the helper runs
//!   libcontainer in a mount namespace whose `/sys/fs/cgroup` is an empty tmpfs and gives it an
//!   empty `cgroupsPath`. Relies on: the v1 manager finding its hierarchies through the mount
//!   table only, and doing nothing (no move, no clean-up kill) when it finds none; the
//!   container's mount namespace not needing the hierarchies. Caught by:
//!   `v1_hierarchies_hidden_in_a_private_view_only` here; on a v1/hybrid host every
//!   integration test that starts an app; `hardening_sandbox.rs`
//!   `fork_bomb_stays_at_the_pids_limit_and_dies_with_stop_force` (the app is in stage1's cgroups).
//! - **libcontainer's log text** ([`error_log_subscriber`], [`cause`], [`LOG_FILTER`]): the
//!   helper keeps only the error event of `libcontainer::container::builder_impl` (the one line
//!   it logs before its clean-up may kill the helper) and sends it to stage1 as a typed
//!   `Log` message ([`crate::app::channel::LogWriter`]); stage1 cuts libcontainer's nested
//!   message (`… : cause`) to its cause. Relies on: that tracing target and level, the ` : `
//!   joint of its messages. Caught by: `run.rs` `run_true_exits_0_and_false_exits_1` (a
//!   missing executable is one line naming it) and the unit tests of `app::channel`.
//! - **Privilege calls of `rkt enter`** ([`load_seccomp`], [`reset_effective_caps`],
//!   [`drop_privileges`], [`syscall`]): `enter` confines itself with libcontainer's own
//!   functions, so it matches the app. Relies on: those functions' signatures and behaviour.
//!   Caught by: `hardening_enter.rs` `entered_command_is_confined_like_the_app`,
//!   `hardening_limits.rs` `rkt_enter_gets_the_apps_namespace_rules`.
//! - **The vendored libcgroups** (`vendor/libcgroups`, `[patch.crates-io]`): re-apply or drop
//!   the patch (vendor/README.md). Caught by: `vendored_libcgroups_is_the_one_libcontainer_uses`
//!   here, which does not compile against an unpatched or a second copy of the crate.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use libcontainer::container::ContainerStatus;
use libcontainer::notify_socket::{NotifySocket, NOTIFY_FILE};
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use oci_spec::runtime::{LinuxCapabilities, LinuxSeccomp, Spec};

use crate::cgroups::CgroupError;
use crate::Error;

/// stage1's log filter: libcontainer logs every failure on its way up at error level, several
/// lines per error; stage1 reports the one-line cause itself, so it is only shown with
/// `--debug` ([`DEBUG_LOG_FILTER`]).
pub const LOG_FILTER: &str = "warn,libcontainer=off,libcgroups=off";
/// stage1's log filter with `--debug`: libcontainer's v1 manager runs in a view without v1
/// hierarchies ([`hide_v1_from_libcontainer`]) and would warn about each.
pub const DEBUG_LOG_FILTER: &str = "debug,libcgroups::v1::manager=error";
/// The one libcontainer event the helper passes on: its error line before clean-up.
const HELPER_LOG_FILTER: &str = "off,libcontainer::container::builder_impl=error";

/// A subscriber that writes libcontainer's error line (and nothing else) to `w`, bare (no
/// time, level, target or colour), for the helper.
pub fn error_log_subscriber<W>(w: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_writer(w)
        .with_ansi(false)
        .with_level(false)
        .with_target(false)
        .without_time()
        .with_env_filter(tracing_subscriber::EnvFilter::new(HELPER_LOG_FILTER))
        .finish()
}

/// Give the calling process (the helper, right before it runs libcontainer) a private mount
/// namespace in which no cgroup v1 hierarchy is mounted: `/sys/fs/cgroup` is an empty tmpfs.
///
/// On v1 stage1 does all cgroup work itself (creation, limits, devices, removal) and the
/// helper has already moved into the app's cgroups, so the app inherits them. libcontainer's v1
/// manager would otherwise write its intermediate process's PID to `cgroup.procs` again — a
/// no-op move that still waits for the RCU grace period [`crate::cgroups::PodCgroups::enter_app`] avoids — and
/// after a failed create kill every process in the caller's cgroups and remove them. In this
/// view it finds no hierarchy and does neither. The container's own mount namespace is made
/// from this one, which changes nothing for the app: its root is pivoted away and its spec
/// mounts no cgroup file system. The host's mounts reach this namespace as before (slave).
///
/// With `shared` (an app with an `rshared` volume: a CRI `Bidirectional` mount, which only a
/// privileged container may ask for), the namespace keeps the host's propagation, so what the
/// app mounts under that volume reaches the host; only `/sys/fs/cgroup` is made private before
/// it is replaced, so that does not.
pub fn hide_v1_from_libcontainer(shared: bool) -> Result<(), Error> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let root = Path::new("/sys/fs/cgroup");
    let err = |what: &'static str, source: nix::errno::Errno| {
        Error::from(CgroupError::HideV1 { what, source })
    };
    if shared {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
            .map_err(|e| err("a mount namespace", e))?;
        mount(
            None::<&str>,
            root,
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| err("making /sys/fs/cgroup private", e))?;
    } else {
        // nothing done in this namespace may propagate back to the host
        crate::sys::unshare_slave_mount_namespace()
            .map_err(|e| err("a slave mount namespace", e))?;
    }
    umount2(root, MntFlags::MNT_DETACH).map_err(|e| err("unmounting /sys/fs/cgroup", e))?;
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=4k,mode=755"),
    )
    .map_err(|e| err("mounting an empty /sys/fs/cgroup", e))
}

/// Start the created container whose libcontainer state is in `state`, as
/// `Container::start` would: tell its init to exec (the notify socket), then record it as
/// running (a failure to record is only logged: the app runs).
pub fn start_created(app: &str, state: &Path) -> Result<(), String> {
    NotifySocket::new(state.join(NOTIFY_FILE))
        .notify_container_start()
        .map_err(|e| format!("starting the container: {e}"))?;
    if let Err(e) = libcontainer::container::Container::load(state.to_path_buf())
        .and_then(|mut c| c.set_status(ContainerStatus::Running).save())
    {
        tracing::warn!(%app, "recording the container as running: {}", crate::app::start::chain(&e));
    }
    Ok(())
}

/// Take the app's seccomp filter over from libcontainer when stage1 can build it exactly
/// ([`crate::security::seccomp::take_over`]); returns the filter to build and deliver.
pub fn take_over_seccomp(spec: &mut Spec) -> Option<serde_json::Value> {
    crate::security::seccomp::take_over(spec)
}

/// libcontainer's system-call interface, as its init uses it.
pub fn syscall() -> Box<dyn libcontainer::syscall::Syscall> {
    libcontainer::syscall::syscall::create_syscall()
}

/// Load filter `s` into the calling thread as libcontainer's init does.
pub fn load_seccomp(s: &LinuxSeccomp) -> Result<(), String> {
    libcontainer::seccomp::initialize_seccomp(s)
        .map(drop)
        .map_err(|e| format!("loading seccomp filter: {e}"))
}

/// libcontainer's reset of the effective capabilities after a change of uid.
pub fn reset_effective_caps(syscall: &dyn libcontainer::syscall::Syscall) -> Result<(), String> {
    libcontainer::capabilities::reset_effective(syscall)
        .map_err(|e| format!("resetting capabilities: {e}"))
}

/// libcontainer's drop to the capability sets `caps`.
pub fn drop_privileges(
    caps: &LinuxCapabilities,
    syscall: &dyn libcontainer::syscall::Syscall,
) -> Result<(), String> {
    libcontainer::capabilities::drop_privileges(caps, syscall)
        .map_err(|e| format!("dropping capabilities: {e}"))
}

/// The cause at the end of one of libcontainer's nested error messages ("… error in executing
/// process : executable … not found"), without its wrapping.
pub fn cause(msg: &str) -> &str {
    msg.rsplit(" : ")
        .next()
        .unwrap_or(msg)
        .trim_start_matches("failed to run container process ")
        .trim()
}

/// Runs inside the app's init right before exec: tie the app to stage1's life, give it a clean
/// signal mask (stage1 blocks the signals it reads from its signalfd), load the seccomp filter
/// stage1 built for it (last: it may forbid the calls before it).
#[derive(Clone)]
pub struct RktExecutor {
    /// The memfd with the app's seccomp program.
    pub program: Arc<std::fs::File>,
}

impl Executor for RktExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
        crate::sys::default_sigpipe();
        if let Err(e) = crate::security::seccomp::load_at_exec(spec, &self.program) {
            // the app never runs; it ends as a rkt-side failure, named on the pod's stderr
            let app = spec
                .annotations()
                .as_ref()
                .and_then(|a| a.get(crate::app::spec::ANN_APP).cloned());
            eprintln!("stage1: app {:?}: {e}", app.unwrap_or_default());
            std::process::exit(stage1_abi::exit::RKT_FAILURE);
        }
        let app = || {
            spec.annotations()
                .as_ref()
                .and_then(|a| a.get(crate::app::spec::ANN_APP).cloned())
                .unwrap_or_default()
        };
        let no_env = HashMap::new();
        let mut env = app_env(spec, APP_ENV.get().unwrap_or(&no_env));
        crate::systemd::set_listen_pid(&mut env);
        let args = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .unwrap_or_default();
        let e = crate::app::helper::exec_app(&args, env);
        // the app never runs; say why on the pod's stderr (libcontainer would exit 255 and
        // log nothing there)
        eprintln!("stage1: app {:?}: {e}", app());
        std::process::exit(stage1_abi::exit::RKT_FAILURE);
    }

    /// Keep the environment libcontainer computed (the spec's plus HOME and LISTEN_* when it
    /// adds them) for [`Self::exec`], instead of libcontainer's default, which removes and
    /// sets the variables one by one: glibc's `setenv` scans the whole environment each time,
    /// so 100 000 variables took ≈ 30 s.
    fn setup_envs(
        &self,
        envs: HashMap<String, String>,
    ) -> Result<(), libcontainer::workload::ExecutorSetEnvsError> {
        let _ = APP_ENV.set(envs);
        Ok(())
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        let Some(arg0) = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().as_ref())
            .and_then(|a| a.first())
        else {
            return Err(ExecutorValidationError::ArgValidationError(
                "no command to execute".into(),
            ));
        };
        let found = if arg0.contains('/') {
            Path::new(arg0).exists()
        } else {
            let path = spec
                .process()
                .as_ref()
                .and_then(|p| p.env().as_ref())
                .and_then(|e| {
                    e.iter()
                        .find_map(|v| v.strip_prefix("PATH=").map(str::to_string))
                })
                .unwrap_or_else(|| {
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
                });
            path.split(':').any(|d| Path::new(d).join(arg0).exists())
        };
        if found {
            Ok(())
        } else {
            Err(ExecutorValidationError::ArgValidationError(format!(
                "executable {arg0:?} not found in the app's root filesystem"
            )))
        }
    }
}

/// The app's environment as libcontainer computed it ([`RktExecutor::setup_envs`]), in the
/// app's init process.
static APP_ENV: std::sync::OnceLock<HashMap<String, String>> = std::sync::OnceLock::new();

/// The app's `KEY=VALUE` strings: `computed`'s variables in the spec's order (one entry per
/// variable, the spec's first position), then those only `computed` has, sorted. Linear.
fn app_env(spec: &Spec, computed: &HashMap<String, String>) -> Vec<String> {
    let listed = spec
        .process()
        .as_ref()
        .and_then(|p| p.env().as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    ordered_env(listed, computed)
}

fn ordered_env(listed: &[String], computed: &HashMap<String, String>) -> Vec<String> {
    let mut seen: HashSet<&str> = HashSet::with_capacity(computed.len());
    let mut out = Vec::with_capacity(computed.len());
    for kv in listed {
        let k = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        if let Some(v) = computed.get(k) {
            if seen.insert(k) {
                out.push(format!("{k}={v}"));
            }
        }
    }
    let mut rest: Vec<(&String, &String)> = computed
        .iter()
        .filter(|(k, _)| !seen.contains(k.as_str()))
        .collect();
    rest.sort();
    out.extend(rest.into_iter().map(|(k, v)| format!("{k}={v}")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    #[test]
    fn app_env_keeps_the_spec_order_and_takes_libcontainers_values() {
        let listed: Vec<String> = ["PATH=/bin", "A=1", "B=2", "A=3", "NOEQ"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let computed: HashMap<String, String> = [
            ("PATH", "/bin"),
            ("A", "3"),
            ("B", "2"),
            ("NOEQ", ""),
            ("HOME", "/root"),
            ("LISTEN_FDS", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            ordered_env(&listed, &computed),
            [
                "PATH=/bin",
                "A=3",
                "B=2",
                "NOEQ=",
                "HOME=/root",
                "LISTEN_FDS=1"
            ]
        );
        // linear: 200 000 variables in well under a second, even unoptimised
        let listed: Vec<String> = (0..200_000).map(|i| format!("V{i}={i}")).collect();
        let computed: HashMap<String, String> = (0..200_000)
            .map(|i| (format!("V{i}"), i.to_string()))
            .collect();
        let t = std::time::Instant::now();
        assert_eq!(ordered_env(&listed, &computed).len(), 200_000);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
    }

    fn v1_mounts(mountinfo: &str) -> usize {
        crate::mountinfo::parse(mountinfo)
            .iter()
            .filter(|m| m.fs_type == "cgroup")
            .count()
    }

    /// Root only: the helper's view has no v1 hierarchy and an empty tmpfs at /sys/fs/cgroup,
    /// the caller's view is untouched.
    #[test]
    fn v1_hierarchies_hidden_in_a_private_view_only() {
        let host = fs::read_to_string("/proc/self/mountinfo").unwrap();
        if !nix::unistd::geteuid().is_root() || v1_mounts(&host) == 0 {
            return;
        }
        // a forked child: the test harness's threads stay out of the new namespace
        let code = match crate::sys::fork().unwrap() {
            nix::unistd::ForkResult::Child => {
                let ok = crate::cgroups::single_threaded()
                    && hide_v1_from_libcontainer(false).is_ok()
                    && fs::read_to_string("/proc/self/mountinfo")
                        .is_ok_and(|mi| v1_mounts(&mi) == 0)
                    && nix::sys::statfs::statfs("/sys/fs/cgroup")
                        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
                    && fs::read_dir("/sys/fs/cgroup").is_ok_and(|mut d| d.next().is_none());
                std::process::exit(i32::from(!ok));
            }
            nix::unistd::ForkResult::Parent { child } => {
                match nix::sys::wait::waitpid(child, None).unwrap() {
                    nix::sys::wait::WaitStatus::Exited(_, c) => c,
                    other => panic!("child: {other:?}"),
                }
            }
        };
        assert_eq!(
            code, 0,
            "the forked child was not alone or still saw v1 hierarchies"
        );
        let after = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert_eq!(
            v1_mounts(&after),
            v1_mounts(&host),
            "the host lost a hierarchy"
        );
    }

    /// The vendored libcgroups patch (vendor/README.md): a controller's hierarchy found in one
    /// listing of the mount table is the one upstream's per-controller scan finds.
    #[test]
    fn patched_libcgroups_finds_hierarchies_in_one_listing() {
        use libcgroups::v1::{util, ControllerType as C};
        let m: Vec<PathBuf> = [
            "/sys/fs/cgroup/systemd",
            "/sys/fs/cgroup/cpu,cpuacct",
            "/sys/fs/cgroup/memory",
            "/sys/fs/cgroup/net_cls,net_prio",
            "/sys/fs/cgroup/pids",
        ]
        .map(PathBuf::from)
        .into();
        let found = |c: C| util::find_subsystem_mount_point(&m, &c).ok();
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(found(C::Cpu), p("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(found(C::CpuAcct), p("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(
            found(C::NetworkPriority),
            p("/sys/fs/cgroup/net_cls,net_prio")
        );
        assert_eq!(
            found(C::NetworkClassifier),
            p("/sys/fs/cgroup/net_cls,net_prio")
        );
        assert_eq!(found(C::Memory), p("/sys/fs/cgroup/memory"));
        assert_eq!(found(C::Pids), p("/sys/fs/cgroup/pids"));
        assert_eq!(found(C::Devices), None);
        // and on this host, for every controller, the same answer as upstream's scan
        let listed = util::list_subsystem_mount_points().unwrap();
        let all = [
            C::Cpu,
            C::CpuAcct,
            C::CpuSet,
            C::Devices,
            C::HugeTlb,
            C::Memory,
            C::Pids,
            C::PerfEvent,
            C::Blkio,
            C::NetworkPriority,
            C::NetworkClassifier,
            C::Freezer,
        ];
        for c in all {
            assert_eq!(
                util::find_subsystem_mount_point(&listed, &c).ok(),
                util::get_subsystem_mount_point(&c).ok(),
                "{c}"
            );
        }
    }

    /// libcontainer's cgroup errors are this crate's: the vendored copy is the one
    /// libcontainer links (not a second libcgroups beside it). Does not compile otherwise.
    #[test]
    fn vendored_libcgroups_is_the_one_libcontainer_uses() {
        let wrap: fn(
            libcgroups::common::CreateCgroupSetupError,
        ) -> libcontainer::error::LibcontainerError =
            libcontainer::error::LibcontainerError::CgroupCreate;
        let _ = wrap;
        // and that copy has the patch: `find_subsystem_mount_point` exists only there
        let f: fn(
            &[PathBuf],
            &libcgroups::v1::ControllerType,
        ) -> Result<PathBuf, libcgroups::v1::util::V1MountPointError> =
            libcgroups::v1::util::find_subsystem_mount_point;
        let _ = f;
    }
}
