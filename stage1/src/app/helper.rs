//! The helper child that creates one app's container with libcontainer.
//!
//! On cgroup v1 stage1 owns the app's cgroups (each hierarchy keeps its own nesting, which
//! libcontainer's single `cgroupsPath` cannot express). A helper, not stage1, creates the app's
//! cgroups (stage1 recorded them and made the pod's), moves itself into them — a thread's
//! self-move, which needs no RCU grace period ([`PodCgroups::enter_app`]) — so the container's
//! processes inherit them, and then runs libcontainer in a mount namespace without the v1
//! hierarchies ([`crate::libcontainer_bypass::hide_v1_from_libcontainer`]): libcontainer neither moves the
//! container a second time (a move that would wait for a grace period) nor, after a failed
//! create, kills and removes the caller's cgroups. The app's process ends up a child of stage1
//! (a child subreaper) once the helper exits. Helpers are forked right after the pod's cgroups
//! exist and set themselves up while stage1 builds the sandbox and the bundles, on another
//! CPU than stage1's where there is one ([`crate::cgroups::cpus`]); [`Helper::create`] then says "go".
//!
//! The helper and so the app's init inherit a memfd into which stage1 writes the app's seccomp
//! program once it is built; the init loads it right before exec ([`crate::security::seccomp`]).
//!
//! Protocol ([`crate::app::channel`]): stage1 sends `Go` on one pipe; the helper answers
//! `Created(pid)` or `Failed(cause)` on the other. libcontainer's own error log line arrives
//! there too (`Log`), for when its clean-up kills the helper before it can answer. As a bonus
//! stage1 never runs libcontainer's creation code itself, which keeps its resident memory small.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::unistd::Pid;

use crate::app::channel::{self, FromHelper, LogWriter, Receiver, Sender, ToHelper};
use crate::app::spec;
use crate::app::start::chain;
use crate::app::AppFailure;
use crate::cgroups::cpus::Children;
use crate::cgroups::PodCgroups;
use crate::libcontainer_bypass::{cause, RktExecutor};
use crate::{sys, Error};

/// What the helper needs to create the container.
#[derive(Debug, Clone)]
pub struct Job {
    /// App (and container id).
    pub app: String,
    /// Pod UUID (the app's cgroups are named after it).
    pub uuid: String,
    /// libcontainer state root.
    pub state: PathBuf,
    /// The app's bundle dir (config.json written before "go").
    pub bundle: PathBuf,
    /// Give the app stage1's stdin.
    pub interactive: bool,
    /// Give the app a terminal whose master libcontainer sends to this socket (see
    /// [`crate::app::console`]) instead of stage1's stdio.
    pub console_socket: Option<PathBuf>,
    /// Keep this many passed sockets (fds 3..) open into the app (socket activation).
    pub listen_fds: u32,
    /// The host uid of the pod's root with private users (`None`: the host's ids): the app's
    /// cgroup v2 dirs are delegated to it ([`PodCgroups::delegate_app`]) and the bundle names
    /// the sandbox's namespaces by fd ([`prepare_userns_bundle`]).
    pub userns_root: Option<u32>,
    /// The app's stdout and stderr (the write ends of its CRI log pipes, [`crate::app::crilog`])
    /// instead of stage1's.
    pub stdio: Option<Arc<[OwnedFd; 2]>>,
    /// The app's stdin (a CRI app's fifo) instead of /dev/null.
    pub stdin: Option<Arc<OwnedFd>>,
    /// The app has an `rshared` volume: its mounts there must reach the host (see
    /// [`crate::libcontainer_bypass::hide_v1_from_libcontainer`]).
    pub shared_mounts: bool,
}

/// A forked helper waiting for "go".
#[derive(Debug)]
pub struct Helper {
    app: String,
    pid: Pid,
    go: Option<Sender<ToHelper>>,
    verdict: Option<Receiver<FromHelper>>,
    program: std::fs::File,
    cpus: Children,
}

impl Helper {
    /// Fork a helper for `job`; it creates the app's cgroups (recorded by the caller) and moves
    /// into them right away.
    pub fn spawn(cgroups: &PodCgroups, job: Job) -> Result<Helper, Error> {
        let pipe = || {
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| Error::Sys("creating helper pipe".into(), e))
        };
        let (go_rd, go_wr) = pipe()?;
        let (v_rd, v_wr) = pipe()?;
        let program = crate::security::seccomp::program_file()?;
        let parent = nix::unistd::getpid();
        let cpus = Children::new();
        match sys::fork().map_err(|e| Error::Sys("forking the app helper".into(), e))? {
            nix::unistd::ForkResult::Child => {
                drop(go_wr);
                drop(v_rd);
                let code = helper_main(cgroups, &job, parent, go_rd, v_wr, program);
                std::process::exit(code);
            }
            nix::unistd::ForkResult::Parent { child } => {
                cpus.start_elsewhere(child);
                Ok(Helper {
                    app: job.app,
                    pid: child,
                    go: Some(Sender::new(go_wr.into())),
                    verdict: Some(Receiver::new(v_rd.into())),
                    program,
                    cpus,
                })
            }
        }
    }

    /// Let the helper create the container (config.json must be written); it works while
    /// stage1 does other things until [`Helper::wait_created`].
    pub fn go(&mut self) {
        if let Some(go) = self.go.take() {
            // it set itself up off stage1's CPU; what it creates gets stage1's affinity
            if let Err(e) = self.cpus.give_back(self.pid) {
                tracing::warn!(app = %self.app, "restoring the helper's CPU affinity: {e}");
            }
            let _ = go.send(&ToHelper::Go);
        }
    }

    /// The memfd the app's init loads its seccomp program from (see [`crate::security::seccomp`]).
    pub fn program(&self) -> &std::fs::File {
        &self.program
    }

    /// [`Helper::go`] and [`Helper::wait_created`] in one.
    pub fn create(mut self) -> Result<Pid, Error> {
        self.go();
        self.wait_created()
    }

    /// Wait for the helper's verdict; returns the app's host PID. The app's process waits for
    /// libcontainer's "start".
    pub fn wait_created(mut self) -> Result<Pid, Error> {
        let res = channel::read_verdict(self.verdict.take().as_mut());
        let _ = nix::sys::wait::waitpid(self.pid, None);
        self.pid = Pid::from_raw(0);
        res.map(Pid::from_raw)
            .map_err(|msg| crate::app::app_err(&self.app, AppFailure::Create(msg)))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        // not used: closing "go" makes it exit
        self.go.take();
        self.verdict.take();
        if self.pid.as_raw() > 0 {
            let _ = nix::sys::wait::waitpid(self.pid, None);
        }
    }
}

fn helper_main(
    cgroups: &PodCgroups,
    job: &Job,
    parent: Pid,
    go: OwnedFd,
    verdict: OwnedFd,
    program: std::fs::File,
) -> i32 {
    // never outlive stage1, never hold its pod lock or other fds
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    if nix::unistd::getppid() != parent {
        return 1;
    }
    let mut keep = vec![go.as_raw_fd(), verdict.as_raw_fd(), program.as_raw_fd()];
    if let Some(s) = &job.stdio {
        keep.extend(s.iter().map(AsRawFd::as_raw_fd));
    }
    if let Some(s) = &job.stdin {
        keep.push(s.as_raw_fd());
    }
    keep.extend(crate::systemd::keep_listen_fds(job.listen_fds));
    sys::close_fds_from(3, &keep);
    crate::systemd::journal_stdio(&job.app);
    let program = Arc::new(program);
    let out = Sender::<FromHelper>::new(verdict.into());
    let say = |m: FromHelper| {
        let _ = out.send(&m);
    };
    if let Err(e) = cgroups
        .create_app(&job.app)
        .and_then(|()| match job.userns_root {
            Some(owner) => cgroups.delegate_app(&job.app, owner),
            None => Ok(()),
        })
        .and_then(|()| cgroups.enter_app(&job.app))
        .map_err(|e| e.to_string())
        .and_then(|()| {
            if cgroups.uses_v1() {
                check_private_cgroups(&job.uuid, &job.app)?;
                crate::libcontainer_bypass::hide_v1_from_libcontainer(job.shared_mounts)
                    .map_err(|e| e.to_string())
            } else {
                Ok(()) // libcontainer's v2 manager only touches the explicit path it is given
            }
        })
    {
        say(FromHelper::Failed(e));
        return 1;
    }
    // libcontainer's error log line goes to stage1 as a `Log` message (with --debug, to stderr
    // as everything else); the subscriber is built while stage1 still writes the bundle
    let debug = std::env::var(stage1_abi::env::DEBUG).is_ok_and(|v| v == "1");
    let sub = match out.try_clone() {
        Ok(log) if !debug => Some(crate::libcontainer_bypass::error_log_subscriber(LogWriter(
            log,
        ))),
        _ => None,
    };
    match Receiver::<ToHelper>::new(go.into()).recv() {
        Ok(Some(ToHelper::Go)) => {}
        _ => return 0, // stage1 gave up on this app
    }
    let res = match sub {
        Some(sub) => tracing::subscriber::with_default(sub, || create(job, &program)),
        None => create(job, &program),
    };
    match &res {
        Ok(pid) => say(FromHelper::Created(pid.as_raw())),
        Err(e) => say(FromHelper::Failed(e.clone())),
    }
    i32::from(res.is_err())
}

/// The app inherits the helper's v1 cgroups: refuse to create it unless every v1 cgroup of
/// this process is the app's own.
fn check_private_cgroups(uuid: &str, app: &str) -> Result<(), String> {
    let cg = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    check_cgroup_lines(&cg, uuid, app)
}

fn check_cgroup_lines(cg: &str, uuid: &str, app: &str) -> Result<(), String> {
    for line in cg.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if ctrls.is_empty() {
            continue; // unified: libcontainer gets an explicit path there
        }
        let suffix = format!("/{app}");
        if !(path.contains(uuid) && path.ends_with(&suffix)) {
            return Err(format!(
                "refusing to create the container from cgroup {ctrls}:{path} (not the app's own)"
            ));
        }
    }
    Ok(())
}

/// For a pod with its own user namespace (`--private-users`): open, as the host's root, every
/// sandbox namespace the bundle names by `/proc/<pid>/ns/<type>`, and name them in the bundle
/// by `/proc/self/fd/<n>` instead. libcontainer joins the user namespace first and opens the
/// others from inside it, where the pod's PID 1 (not dumpable) may not be looked at through
/// `/proc/<pid>` (EACCES); a descriptor of its own is. The descriptors are close-on-exec and
/// live until the container is created (the returned vector).
///
/// Then the app's idmapped host volumes (`idmap=true`, [`spec::idmapped_of`]): in a slave
/// mount namespace of this helper's own (nothing propagates to the host), each source is
/// covered by a clone of itself idmapped with the pod's user namespace, which the container's
/// bind of that path then copies. The helper's namespace, and the clones, go when it exits.
fn prepare_userns_bundle(bundle: &std::path::Path) -> Result<Vec<OwnedFd>, String> {
    use oci_spec::runtime::{LinuxNamespaceType, Spec};
    let cfg = bundle.join(stage1_abi::paths::BUNDLE_CONFIG);
    let mut spec = Spec::load(&cfg).map_err(|e| format!("{}: {e}", cfg.display()))?;
    let Some(mut namespaces) = spec.linux().as_ref().and_then(|l| l.namespaces().clone()) else {
        return Ok(Vec::new());
    };
    let mut fds = Vec::new();
    let mut userns = None;
    for n in namespaces.iter_mut() {
        let Some(path) = n.path().clone() else {
            continue;
        };
        let f = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let fd = OwnedFd::from(f);
        n.set_path(Some(PathBuf::from(format!(
            "/proc/self/fd/{}",
            fd.as_raw_fd()
        ))));
        if n.typ() == LinuxNamespaceType::User {
            userns = Some(fds.len());
        }
        fds.push(fd);
    }
    let idmapped = spec::idmapped_of(&spec);
    if let (Some(u), false) = (userns, idmapped.is_empty()) {
        sys::unshare_slave_mount_namespace()
            .map_err(|e| format!("a mount namespace for idmapped volumes: {e}"))?;
        for (source, recursive) in &idmapped {
            let err = |e: std::io::Error| {
                format!(
                    "idmapping volume source {source:?}: {e} (needs Linux 5.12 or later and a \
                     file system that supports idmapped mounts)"
                )
            };
            let tree = sys::idmapped_tree(std::path::Path::new(source), fds[u].as_fd(), *recursive)
                .map_err(err)?;
            let c = std::ffi::CString::new(source.as_bytes())
                .map_err(|_| format!("volume source {source:?} contains NUL"))?;
            sys::move_mount_onto(tree.as_fd(), &c).map_err(err)?;
        }
    }
    if let Some(l) = spec.linux_mut() {
        l.set_namespaces(Some(namespaces));
    }
    let data = serde_json::to_vec(&spec).map_err(|e| e.to_string())?;
    stage1_abi::write_atomic(&cfg, &data).map_err(|e| e.to_string())?;
    Ok(fds)
}

fn create(job: &Job, program: &Arc<std::fs::File>) -> Result<Pid, String> {
    // a pod on the host's ids has nothing to prepare: no read of the bundle on its way
    let _namespaces = match job.userns_root {
        Some(_) => prepare_userns_bundle(&job.bundle)?,
        None => Vec::new(),
    };
    let mut b = ContainerBuilder::new(job.app.clone(), SyscallType::default())
        .with_root_path(&job.state)
        .map_err(|e| chain(&e))?
        .with_executor(RktExecutor {
            program: Arc::clone(program),
        })
        .with_console_socket(job.console_socket.as_ref())
        .with_preserved_fds(job.listen_fds as i32);
    if let Some(s) = &job.stdin {
        b = b.with_stdin(s.try_clone().map_err(|e| format!("stdin fifo: {e}"))?);
    } else if !job.interactive {
        let null = std::fs::File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
        b = b.with_stdin(null);
    }
    if let Some(s) = &job.stdio {
        let dup = |f: &OwnedFd| f.try_clone().map_err(|e| format!("log pipe: {e}"));
        b = b.with_stdout(dup(&s[0])?).with_stderr(dup(&s[1])?);
    }
    let container = b
        .as_init(&job.bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| cause(&chain(&e)).to_string())?;
    container
        .pid()
        .ok_or_else(|| "container has no pid".to_string())
}

/// Exec `args` with environment `env`, searching `PATH` of `env` for a bare name as execvp
/// does. Returns only on failure, with a one-line reason; E2BIG (arguments and environment
/// over what the kernel takes) says so and names the limits.
pub(crate) fn exec_app(args: &[String], env: Vec<String>) -> String {
    use std::ffi::CString;
    let Some(arg0) = args.first() else {
        return "no command to execute".into();
    };
    let cstr = |s: &str| {
        CString::new(s).map_err(|_| {
            let head: String = s.chars().take(64).collect();
            format!("{head:?}… contains a NUL byte")
        })
    };
    let argv: Result<Vec<CString>, String> = args.iter().map(|a| cstr(a)).collect();
    let (bytes, count) = args
        .iter()
        .chain(&env)
        .fold((0usize, 0usize), |(b, n), s| (b + s.len() + 1, n + 1));
    let path = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .to_string();
    let envp: Result<Vec<CString>, String> = env.into_iter().map(|e| cstr(&e)).collect();
    let (argv, envp) = match (argv, envp) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let candidates: Vec<String> = if arg0.contains('/') {
        vec![arg0.clone()]
    } else {
        path.split(':')
            .map(|d| format!("{}/{arg0}", if d.is_empty() { "." } else { d }))
            .collect()
    };
    let mut last = nix::errno::Errno::ENOENT;
    for c in candidates {
        let Ok(c) = CString::new(c) else { continue };
        let e = nix::unistd::execve(&c, &argv, &envp).unwrap_err();
        match e {
            // as execvp: try the next PATH entry, report EACCES if nothing else turns up
            nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR => {}
            nix::errno::Errno::EACCES => last = e,
            _ => {
                last = e;
                break;
            }
        }
    }
    if last == nix::errno::Errno::E2BIG {
        let stack = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_STACK)
            .map(|(soft, _)| soft)
            .unwrap_or(0);
        return format!(
            "arguments and environment too large for execve: {bytes} bytes in {count} strings \
             (the kernel takes at most a quarter of the stack limit, here {stack} bytes, in all, \
             and {MAX_ARG_STRLEN} bytes per string)"
        );
    }
    format!("executing {arg0:?}: {}", last.desc())
}

/// The kernel's limit on one argument or environment string, NUL included (MAX_ARG_STRLEN).
const MAX_ARG_STRLEN: usize = 32 * 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_failures_name_the_cause() {
        let e = exec_app(&["/nonexistent/x".into()], vec![]);
        assert_eq!(e, "executing \"/nonexistent/x\": No such file or directory");
        // one string over MAX_ARG_STRLEN: E2BIG, before anything is replaced
        let big = format!("X={}", "x".repeat(MAX_ARG_STRLEN));
        let e = exec_app(&["/bin/true".into()], vec![big]);
        assert!(
            e.starts_with("arguments and environment too large for execve"),
            "{e}"
        );
        assert!(e.contains("131072 bytes per string"), "{e}");
    }

    #[test]
    fn create_errors_are_cut_to_their_cause() {
        // a create error the helper reports itself is cut to its cause as libcontainer's log
        // line is (crate::app::channel::Verdict)
        let chained = "failed to create container: exec process failed with error error in \
                       executing process : executable \"/bin/nope\" not found";
        assert_eq!(cause(chained), "executable \"/bin/nope\" not found");
        assert_eq!(cause("no such file"), "no such file");
    }

    #[test]
    fn private_cgroup_check() {
        let u = "1234-abcd";
        let ok =
            "9:memory:/process_api/x/rkt-1234-abcd/web\n4:cpu,cpuacct:/rkt/1234-abcd/web\n0::/\n";
        assert!(check_cgroup_lines(ok, u, "web").is_ok());
        let shared = "9:memory:/process_api/x/rkt-1234-abcd/web\n6:freezer:/\n";
        assert!(check_cgroup_lines(shared, u, "web")
            .unwrap_err()
            .contains("freezer:/"));
    }
}
