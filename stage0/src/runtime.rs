//! [`Runtime`]: the one front door of rkt's pod runtime. `rkt` (the CLI) is one client of it;
//! a CRI server or a unit generator is another, and none of them needs more than this module:
//! typed requests in, typed results or typed errors out, no printing, no argv, no
//! `process::exit`.
//!
//! A `Runtime` is opened once per process ([`Runtime::open`]): it loads the configuration
//! (`paths.d`, `stage1.d`) from the three configuration roots, finds the stage1 binary and owns
//! the data dir's layout (`pods/`, the image store, `cache/`). Operations that replace the
//! calling process with the pod ([`Runtime::run`], [`Runtime::run_prepared`]) or with the
//! entered command ([`Runtime::enter`]) return only on failure: the caller forks first if it
//! wants to go on (a CRI server does; `rkt run` does not, the `rkt` process *is* the pod).
//!
//! The app-level operations of mutable pods (add, start, stop and remove one app of a running
//! pod) join as methods here, with [`crate::request::AppRequest`] as their input.

use std::cell::OnceCell;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::time::Duration;

use stage1_abi::{DnsConfig, NetConfig, PodManifest, PortForward, RuntimeConfig};

use crate::config::{Config, ConfigDirs};
use crate::enter::EnterPlan;
use crate::export::ExportRequest;
use crate::gc::{GcOptions, GcReport, Remover, StopOutcome};
use crate::images::{PullPolicy, ResolveOptions};
use crate::mount::HostMounter;
use crate::pods::Pods;
use crate::prepare::{PrepareOptions, Preparer};
use crate::request::PodRequest;
use crate::run::RunOptions;
use crate::status::PodInfo;
use crate::store::StoreImages;
use crate::{Error, Result};

/// Where a runtime keeps its data and reads its configuration (rkt's `--dir`,
/// `--system-config`, `--local-config`, `--user-config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    /// The data dir: pods, the image store, caches.
    pub data: PathBuf,
    /// Vendor configuration, lowest precedence.
    pub system_config: PathBuf,
    /// The admin's configuration.
    pub local_config: PathBuf,
    /// The user's configuration, highest precedence.
    pub user_config: Option<PathBuf>,
}

impl Dirs {
    /// The configuration roots, lowest precedence first.
    pub fn config_roots(&self) -> Vec<PathBuf> {
        let mut v = vec![self.system_config.clone(), self.local_config.clone()];
        v.extend(self.user_config.clone());
        v
    }
}

impl Default for Dirs {
    fn default() -> Self {
        Dirs {
            data: "/var/lib/rkt".into(),
            system_config: "/usr/lib/rkt".into(),
            local_config: "/etc/rkt".into(),
            user_config: None,
        }
    }
}

/// Security features the caller turned off (rkt's `--insecure-options`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Insecure {
    /// Skip image verification.
    pub image: bool,
    /// Skip TLS certificate verification.
    pub tls: bool,
    /// Allow plain-HTTP registries.
    pub http: bool,
    /// Keep every capability in apps.
    pub capabilities: bool,
    /// Do not mask or read-only-mount sensitive paths.
    pub paths: bool,
    /// No seccomp filter.
    pub seccomp: bool,
    /// Accept public keys fetched over insecure channels.
    pub pubkey: bool,
}

/// An `--insecure-options` value rkt does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownInsecureOption(pub String);

impl std::fmt::Display for UnknownInsecureOption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown --insecure-options value {:?} (valid: none, image, tls, ondisk, http, pubkey, capabilities, paths, seccomp, all-fetch, all-run, all)",
            self.0
        )
    }
}

impl std::error::Error for UnknownInsecureOption {}

impl std::fmt::Display for Insecure {
    /// The `--insecure-options` value that [`Insecure::parse`]s back to `self` (`none`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = [
            (self.image, "image"),
            (self.tls, "tls"),
            (self.http, "http"),
            (self.pubkey, "pubkey"),
            (self.capabilities, "capabilities"),
            (self.paths, "paths"),
            (self.seccomp, "seccomp"),
        ];
        let on: Vec<&str> = names.iter().filter(|(b, _)| *b).map(|(_, n)| *n).collect();
        if on.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&on.join(","))
        }
    }
}

impl Insecure {
    /// Parse a comma-separated list as rkt does.
    pub fn parse(list: &str) -> Result<Self, UnknownInsecureOption> {
        let mut o = Insecure::default();
        for v in list.split(',').map(str::trim) {
            match v {
                "" | "none" | "ondisk" => {}
                "image" => o.image = true,
                "tls" => o.tls = true,
                "http" => o.http = true,
                "pubkey" => o.pubkey = true,
                "capabilities" => o.capabilities = true,
                "paths" => o.paths = true,
                "seccomp" => o.seccomp = true,
                "all-fetch" => {
                    o.image = true;
                    o.tls = true;
                    o.http = true;
                    o.pubkey = true;
                }
                "all-run" => {
                    o.capabilities = true;
                    o.paths = true;
                    o.seccomp = true;
                }
                "all" => {
                    o = Insecure {
                        image: true,
                        tls: true,
                        http: true,
                        pubkey: true,
                        capabilities: true,
                        paths: true,
                        seccomp: true,
                    }
                }
                other => return Err(UnknownInsecureOption(other.to_string())),
            }
        }
        Ok(o)
    }
}

/// What a new pod is made of.
#[derive(Debug, Clone)]
pub enum PodSource {
    /// Images with their per-app settings, and pod-wide settings.
    Apps(PodRequest),
    /// A complete pod manifest (`rkt cat-manifest`'s JSON), its images resolved by name or id.
    Manifest(PodManifest),
}

impl PodSource {
    /// The manifest in `path` (the JSON `rkt cat-manifest` prints; a missing `abiVersion` is
    /// this build's).
    pub fn manifest_file(path: &Path) -> Result<PodSource> {
        let mut m: PodManifest = stage1_abi::read_json(path)?;
        if m.abi_version == 0 {
            m.abi_version = stage1_abi::ABI_VERSION;
        }
        Ok(PodSource::Manifest(m))
    }
}

/// How to create a pod ([`Runtime::prepare`], [`Runtime::run`]).
#[derive(Clone)]
pub struct PrepareRequest {
    /// The pod.
    pub pod: PodSource,
    /// When to fetch images.
    pub pull_policy: PullPolicy,
    /// Write the pod's UUID to this file as soon as it exists.
    pub uuid_file_save: Option<PathBuf>,
    /// The caller's environment, for [`PodRequest::inherit_env`].
    pub host_env: Vec<(String, String)>,
    /// Where image downloads report their progress.
    pub progress: Option<std::sync::Arc<dyn crate::images::Progress>>,
    /// `--private-users`: run the pod in its own user namespace (`crate::userns`).
    pub private_users: Option<crate::userns::PrivateUsers>,
}

impl std::fmt::Debug for PrepareRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrepareRequest")
            .field("pod", &self.pod)
            .field("pull_policy", &self.pull_policy)
            .field("uuid_file_save", &self.uuid_file_save)
            .field("private_users", &self.private_users)
            .field("progress", &self.progress.is_some())
            .finish_non_exhaustive()
    }
}

impl PrepareRequest {
    /// A request for `pod` with the defaults: fetch missing images, no UUID file, no host
    /// environment, no progress reports.
    pub fn new(pod: PodSource) -> Self {
        PrepareRequest {
            pod,
            pull_policy: PullPolicy::New,
            uuid_file_save: None,
            host_env: Vec::new(),
            progress: None,
            private_users: None,
        }
    }
}

/// The pod's IPC namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Ipc {
    /// A private one (the default).
    #[default]
    Private,
    /// The host's.
    Host,
}

/// The pod's task limit (`pids.max` of the pod cgroup).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PidsLimit {
    /// rkt's default ([`crate::flags::DEFAULT_PIDS_LIMIT`]), skipped on a host without the pids
    /// controller.
    #[default]
    Default,
    /// No limit.
    Unlimited,
    /// At most this many tasks; a host without the pids controller is then an error.
    Max(u64),
}

/// How to start a pod ([`Runtime::run`], [`Runtime::run_prepared`]).
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Networks: host, none (the default here), or CNI networks.
    pub net: NetConfig,
    /// Hostname (default `rkt-<uuid>`).
    pub hostname: Option<String>,
    /// Give the pod's only app the caller's terminal / stdio.
    pub interactive: bool,
    /// IPC namespace.
    pub ipc: Ipc,
    /// Time between SIGTERM and SIGKILL when the pod stops.
    pub stop_timeout: Duration,
    /// DNS configuration.
    pub dns: DnsConfig,
    /// `/etc/hosts` entries (`IP=NAME` or `host`).
    pub hosts_entries: Vec<String>,
    /// Port forwards (CNI networks only).
    pub ports: Vec<PortForward>,
    /// Task limit.
    pub pids_limit: PidsLimit,
    /// This stage1 binary instead of the runtime's.
    pub stage1: Option<PathBuf>,
    /// `--sd-notify`: who tells systemd the pod is ready (docs/systemd.md).
    pub sd_notify: crate::systemd::SdNotify,
    /// Share the host's PID namespace (CRI pods).
    pub host_pid: bool,
    /// Sysctls for every app (CRI pods; namespaced ones only).
    pub sysctls: Vec<(String, String)>,
    /// One more dir of CNI network configurations (the CRI's), above the config roots' `net.d`.
    pub cni_conf_dir: Option<PathBuf>,
}

impl Default for RunRequest {
    fn default() -> Self {
        RunRequest {
            net: NetConfig::None,
            hostname: None,
            interactive: false,
            ipc: Ipc::Private,
            stop_timeout: Duration::from_secs(10),
            dns: DnsConfig::default(),
            hosts_entries: Vec::new(),
            ports: Vec::new(),
            pids_limit: PidsLimit::Default,
            stage1: None,
            sd_notify: crate::systemd::SdNotify::None,
            host_pid: false,
            sysctls: Vec::new(),
            cni_conf_dir: None,
        }
    }
}

/// Waits before [`Runtime::status`] reads the pod.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Wait {
    /// Do not wait.
    #[default]
    No,
    /// Wait as long as it takes.
    Forever,
    /// Wait at most this long; then [`Error::PodState`] "…: timed out".
    For(Duration),
}

impl Wait {
    fn timeout(self) -> Option<Option<Duration>> {
        match self {
            Wait::No => None,
            Wait::Forever => Some(None),
            Wait::For(d) => Some(Some(d)),
        }
    }
}

/// Every pod of the data dir, and the ones that could not be read.
#[derive(Debug, Clone, Default)]
pub struct PodList {
    /// The pods, oldest first.
    pub pods: Vec<PodInfo>,
    /// One line per pod that could not be read.
    pub unreadable: Vec<String>,
}

/// The pod runtime of one data dir. See the module docs.
pub struct Runtime {
    dirs: Dirs,
    config: Config,
    pods: Pods,
    /// [`Runtime::with_stage1`]'s binary.
    stage1: Option<PathBuf>,
    insecure: Insecure,
    /// rkt's `--trust-keys-from-https` for the fetches of `prepare`/`run`.
    trust_keys_from_https: bool,
    debug: bool,
    images: OnceCell<StoreImages>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("dirs", &self.dirs)
            .field("stage1", &self.stage1)
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Open the runtime of `dirs`: load the configuration. stage1 is looked up by the
    /// operations that need it ([`Runtime::stage1`]), so a missing one is their error.
    pub fn open(dirs: Dirs) -> Result<Runtime> {
        let config = crate::config::load(&ConfigDirs {
            system: dirs.system_config.clone(),
            local: dirs.local_config.clone(),
            user: dirs.user_config.clone(),
        })?;
        Ok(Runtime {
            pods: Pods::new(&dirs.data),
            dirs,
            config,
            stage1: None,
            insecure: Insecure::default(),
            trust_keys_from_https: false,
            debug: false,
            images: OnceCell::new(),
        })
    }

    /// Turn security features off (`--insecure-options`).
    pub fn with_insecure(mut self, insecure: Insecure) -> Self {
        self.insecure = insecure;
        self
    }

    /// Trust the keys appc discovery serves over https for the name being fetched
    /// (`--trust-keys-from-https`).
    pub fn with_trust_keys_from_https(mut self, yes: bool) -> Self {
        self.trust_keys_from_https = yes;
        self
    }

    /// Pass debug logging on to stage1.
    pub fn with_debug(mut self, debug: bool) -> Self {
        self.debug = debug;
        self
    }

    /// Use this stage1 binary for every operation (checked to be an executable file).
    pub fn with_stage1(mut self, path: &Path) -> Result<Self> {
        self.stage1 = Some(crate::run::find_stage1(Some(path), None)?);
        Ok(self)
    }

    /// The directories this runtime uses.
    pub fn dirs(&self) -> &Dirs {
        &self.dirs
    }

    /// The security features turned off (`--insecure-options`).
    pub fn insecure(&self) -> Insecure {
        self.insecure
    }

    /// The merged configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The stage1 binary, or why there is none: the one of [`Runtime::with_stage1`], else the
    /// `stage1` configuration's `location`, else `rkt-stage1` beside the running binary. Looked
    /// up by the operations that need it, not by `open`.
    pub fn stage1(&self) -> Result<PathBuf> {
        match &self.stage1 {
            Some(p) => Ok(p.clone()),
            None => crate::run::find_stage1(None, self.config.stage1.location.as_deref()),
        }
    }

    fn images(&self) -> Result<&StoreImages> {
        if let Some(i) = self.images.get() {
            return Ok(i);
        }
        let opened = StoreImages::open(&self.dirs.data)?;
        Ok(self.images.get_or_init(|| opened))
    }

    /// The image store, if this data dir has one (removal works without it).
    fn images_if_any(&self) -> Option<&StoreImages> {
        if !image_store::Store::exists(&self.dirs.data) {
            return None;
        }
        self.images().ok()
    }

    fn preparer(&self) -> Result<Preparer<'_>> {
        Ok(Preparer {
            data_dir: &self.dirs.data,
            images: self.images()?,
            mounter: &HostMounter,
        })
    }

    /// How images of a new pod or app are resolved: `rkt fetch`'s rules with this runtime's
    /// insecure options and config dirs.
    fn resolve_options(
        &self,
        pull_policy: PullPolicy,
        progress: Option<std::sync::Arc<dyn crate::images::Progress>>,
    ) -> ResolveOptions {
        ResolveOptions {
            pull_policy,
            insecure_image: self.insecure.image,
            insecure_tls: self.insecure.tls,
            allow_http: self.insecure.http,
            config_dirs: self.dirs.config_roots(),
            progress,
            credentials: None,
            signature: None,
            trust_keys_from_https: self.trust_keys_from_https,
        }
    }

    fn prepare_options(&self, req: &PrepareRequest) -> PrepareOptions {
        PrepareOptions {
            request: match &req.pod {
                PodSource::Apps(r) => r.clone(),
                PodSource::Manifest(_) => PodRequest::default(),
            },
            resolve: self.resolve_options(req.pull_policy, req.progress.clone()),
            uuid_file_save: req.uuid_file_save.clone(),
            host_env: req.host_env.clone(),
            uuid: None,
            private_users: req.private_users,
            userns_ranges: self.config.userns.ranges.clone(),
        }
    }

    /// The checks of a run request that need no pod.
    fn run_options(&self, run: &RunRequest) -> Result<RunOptions> {
        if !run.ports.is_empty() && matches!(run.net, NetConfig::Host | NetConfig::None) {
            return Err(Error::usage(
                "--port cannot be used with --net=host or --net=none",
            ));
        }
        let stage1 = match &run.stage1 {
            Some(p) => crate::run::find_stage1(Some(p), None)?,
            None => self.stage1()?,
        };
        let (pids_limit, pids_limit_required) = match run.pids_limit {
            PidsLimit::Default => (Some(crate::flags::DEFAULT_PIDS_LIMIT), false),
            PidsLimit::Unlimited => (None, true),
            PidsLimit::Max(n) => (Some(n), true),
        };
        let cache_dir = std::path::absolute(self.dirs.data.join(crate::run::CACHE_DIR))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        Ok(RunOptions {
            runtime: RuntimeConfig {
                net: run.net.clone(),
                hostname: run.hostname.clone().unwrap_or_default(),
                interactive: run.interactive,
                ipc: match run.ipc {
                    Ipc::Private => "private",
                    Ipc::Host => "parent",
                }
                .into(),
                stop_timeout_secs: run.stop_timeout.as_secs(),
                disable_capabilities: self.insecure.capabilities,
                disable_paths: self.insecure.paths,
                disable_seccomp: self.insecure.seccomp,
                dns: run.dns.clone(),
                hosts_entries: run.hosts_entries.clone(),
                ports: run.ports.clone(),
                local_config: self.dirs.local_config.display().to_string(),
                system_config: self.dirs.system_config.display().to_string(),
                cache_dir,
                pids_limit,
                pids_limit_required,
                host_pid: run.host_pid,
                sysctls: run.sysctls.clone(),
                cni_conf_dir: run
                    .cni_conf_dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
            },
            stage1,
            debug: self.debug,
            systemd: crate::systemd::from_process(run.sd_notify)?,
        })
    }

    /// Create the pod `req` asks for: in `prepare/`, locked, its apps mounted. A request of
    /// apps is checked first (`Preparer::prepare`), so bad input creates nothing.
    fn create(&self, req: &PrepareRequest) -> Result<crate::prepare::PreparingPod<'_>> {
        let opts = self.prepare_options(req);
        let preparer = self.preparer()?;
        match &req.pod {
            PodSource::Apps(_) => preparer.prepare(&opts),
            PodSource::Manifest(m) => preparer.prepare_manifest(m.clone(), &opts),
        }
    }

    /// Create a pod and leave it prepared (for [`Runtime::run_prepared`]). Returns its UUID.
    pub fn prepare(&self, req: &PrepareRequest) -> Result<String> {
        crate::run::require_root()?;
        self.create(req)?.finish_prepare()
    }

    /// Create a pod and become it: this process execs stage1, which runs the pod and exits
    /// with its apps' exit code. Returns only on failure, with nothing of the pod left.
    pub fn run(&self, req: &PrepareRequest, run: &RunRequest) -> Result<Infallible> {
        crate::run::require_root()?;
        // bad input fails before stage1 is looked up and before any image is fetched
        let apps = match &req.pod {
            PodSource::Apps(r) => {
                r.check()?;
                r.apps.len()
            }
            PodSource::Manifest(m) => m.apps.len(),
        };
        stage1_abi::check_interactive(run.interactive, apps)?;
        let run = self.run_options(run)?;
        crate::run::run_pod(self.create(req)?, &run)
    }

    /// Run a prepared pod: this process execs stage1. Returns only on failure (the pod is then
    /// prepared again).
    pub fn run_prepared(&self, uuid: &str, run: &RunRequest) -> Result<Infallible> {
        crate::run::require_root()?;
        let run = self.run_options(run)?;
        crate::run::run_prepared(&self.dirs.data, &HostMounter, uuid, &run)
    }

    /// Every pod.
    pub fn list(&self) -> Result<PodList> {
        let (pods, unreadable) = crate::status::list(&self.pods)?;
        Ok(PodList { pods, unreadable })
    }

    /// One pod (any unique UUID prefix), after waiting until it is ready (every app started)
    /// and/or until it has exited, as asked.
    pub fn status(&self, uuid_arg: &str, ready: Wait, exited: Wait) -> Result<PodInfo> {
        let uuid = self.pods.find(uuid_arg)?.uuid;
        if let Some(t) = ready.timeout() {
            if !crate::status::wait_ready(&self.pods, &uuid, t)? {
                return Err(Error::PodState {
                    uuid,
                    what: "not ready: timed out".into(),
                });
            }
        }
        if let Some(t) = exited.timeout() {
            if !crate::status::wait_finished(&self.pods, &uuid, t)? {
                return Err(Error::PodState {
                    uuid,
                    what: "still running: timed out".into(),
                });
            }
        }
        crate::status::pod_info(&self.pods, &uuid)?
            .ok_or_else(|| Error::NoMatch(uuid_arg.to_string()))
    }

    /// The manifest of a pod (any unique UUID prefix).
    pub fn manifest(&self, uuid_arg: &str) -> Result<PodManifest> {
        let p = crate::status::find(&self.pods, uuid_arg)?;
        p.manifest.ok_or_else(|| Error::PodState {
            uuid: p.uuid,
            what: "without a readable manifest".into(),
        })
    }

    /// Stop a pod: SIGTERM to it (its apps get the stop timeout), or with `force` SIGKILL,
    /// returning only once nothing of the pod runs. Returns the full UUID.
    pub fn stop(&self, uuid_arg: &str, force: bool) -> Result<(String, StopOutcome)> {
        let (uuid, outcome) = crate::gc::stop(&self.pods, uuid_arg, force)?;
        if force && outcome == StopOutcome::Signalled {
            crate::gc::finish_forced_stop(&self.pods, &uuid, &self.stage1()?)?;
        }
        Ok((uuid, outcome))
    }

    fn remover(&self) -> Result<Remover<'_>> {
        Ok(Remover {
            stage1: self.stage1()?,
            images: self
                .images_if_any()
                .map(|i| i as &dyn crate::images::Images),
            mounter: &HostMounter,
            mount_table: OnceCell::new(),
        })
    }

    /// Remove a pod that is not running. Returns the full UUID.
    pub fn rm(&self, uuid_arg: &str) -> Result<String> {
        crate::run::require_root()?;
        crate::gc::rm(&self.pods, uuid_arg, &self.remover()?)
    }

    /// Garbage-collect: mark exited pods, expire old prepared ones, remove garbage.
    pub fn gc(&self, opts: &GcOptions) -> Result<GcReport> {
        crate::run::require_root()?;
        crate::gc::gc(&self.pods, opts, &self.remover()?)
    }

    /// `rkt app add`: add an app to the running mutable pod `uuid_arg` (created, not started);
    /// its image is resolved with `pull_policy`. Returns the app's name.
    pub fn app_add(
        &self,
        uuid_arg: &str,
        req: &crate::apps::AppAddRequest,
        pull_policy: PullPolicy,
    ) -> Result<String> {
        crate::run::require_root()?;
        let pod = crate::apps::running_mutable(&self.pods, uuid_arg)?;
        crate::apps::add(
            &pod,
            self.images()?,
            &HostMounter,
            &self.resolve_options(pull_policy, None),
            req,
        )
    }

    /// `rkt app start`: start an app of a running mutable pod (one that was added, or that
    /// exited); returns once it runs.
    pub fn app_start(&self, uuid_arg: &str, app: &str) -> Result<()> {
        crate::run::require_root()?;
        crate::apps::start(&crate::apps::running_mutable(&self.pods, uuid_arg)?, app)
    }

    /// `rkt app stop`: SIGTERM to the app, SIGKILL after `timeout`; returns once it exited,
    /// with its status record (none if it never ran).
    pub fn app_stop(
        &self,
        uuid_arg: &str,
        app: &str,
        timeout: Duration,
    ) -> Result<Option<stage1_abi::AppStatus>> {
        crate::run::require_root()?;
        crate::apps::stop(
            &crate::apps::running_mutable(&self.pods, uuid_arg)?,
            app,
            timeout,
        )
    }

    /// Reopen the CRI log of an app of a running mutable pod (the kubelet rotated it).
    pub fn app_reopen_log(&self, uuid_arg: &str, app: &str) -> Result<()> {
        crate::apps::reopen_log(&crate::apps::running_mutable(&self.pods, uuid_arg)?, app)
    }

    /// Let the app of a running mutable pod read end-of-file on its stdin once the attach
    /// writing to it is gone (the CRI's `StdinOnce`).
    pub fn app_close_stdin(&self, uuid_arg: &str, app: &str) -> Result<()> {
        crate::apps::close_stdin(&crate::apps::running_mutable(&self.pods, uuid_arg)?, app)
    }

    /// `rkt app rm`: remove an app from a running mutable pod (killing it if it runs).
    pub fn app_rm(&self, uuid_arg: &str, app: &str) -> Result<()> {
        crate::run::require_root()?;
        let pod = crate::apps::running_mutable(&self.pods, uuid_arg)?;
        crate::apps::rm(&pod, &HostMounter, app)
    }

    /// `rkt app list`: the pod and its apps with their states (any pod).
    pub fn apps(&self, uuid_arg: &str) -> Result<(PodInfo, Vec<crate::apps::AppInfo>)> {
        let p = crate::status::find(&self.pods, uuid_arg)?;
        let apps = match &p.manifest {
            Some(m) => crate::apps::list(&p.path, m, p.state == crate::pods::State::Running),
            None => Vec::new(),
        };
        Ok((p, apps))
    }

    /// `rkt app status`: one app of a pod.
    pub fn app_status(&self, uuid_arg: &str, app: &str) -> Result<crate::apps::AppInfo> {
        let (p, apps) = self.apps(uuid_arg)?;
        apps.into_iter()
            .find(|a| a.app.name == app)
            .ok_or(Error::NoApp {
                uuid: p.uuid,
                app: app.to_string(),
            })
    }

    /// What [`Runtime::enter`] would run: the pod (running), the app (named, or the only one)
    /// and the command (`cmd`, or the app's default shell).
    pub fn enter_plan(
        &self,
        uuid_arg: &str,
        app: Option<&str>,
        cmd: &[String],
    ) -> Result<EnterPlan> {
        crate::run::require_root()?;
        crate::enter::plan(&self.pods, uuid_arg, app, cmd)
    }

    /// Become `plan`'s command inside the pod (stage1's enter entry point confines it like the
    /// app). Returns only on failure.
    pub fn enter(&self, plan: &EnterPlan) -> Result<Infallible> {
        crate::run::require_root()?;
        crate::enter::exec(plan, &self.stage1()?)
    }

    /// Export an exited pod's app as an OCI image archive.
    pub fn export(&self, req: &ExportRequest) -> Result<()> {
        crate::run::require_root()?;
        crate::export::export(&self.pods, self.images()?, &HostMounter, req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn aliases_expand() {
        let o = Insecure::parse("all-fetch").unwrap();
        assert!(o.image && o.tls && o.http && o.pubkey && !o.seccomp);
        let o = Insecure::parse("all-run,image").unwrap();
        assert!(o.capabilities && o.paths && o.seccomp && o.image && !o.tls);
        assert_eq!(Insecure::parse("none").unwrap(), Insecure::default());
        assert!(Insecure::parse("all").unwrap().seccomp);
        for s in ["none", "image,http", "all-run", "all"] {
            let o = Insecure::parse(s).unwrap();
            assert_eq!(Insecure::parse(&o.to_string()).unwrap(), o, "{s}");
        }
        assert_eq!(Insecure::default().to_string(), "none");
    }

    #[test]
    fn unknown_value_is_named() {
        let e = Insecure::parse("image,bogus").unwrap_err();
        assert!(e.to_string().contains("\"bogus\""));
    }

    fn dirs(d: &Path) -> Dirs {
        Dirs {
            data: d.join("data"),
            system_config: d.join("sys"),
            local_config: d.join("local"),
            user_config: None,
        }
    }

    #[test]
    fn a_missing_stage1_is_reported_by_what_needs_it() {
        let d = tempfile::tempdir().unwrap();
        let local = d.path().join("local/stage1.d");
        std::fs::create_dir_all(&local).unwrap();
        std::fs::write(
            local.join("s.json"),
            r#"{"rktKind":"stage1","rktVersion":"v1","location":"/nonexistent/rkt-stage1"}"#,
        )
        .unwrap();
        let rt = Runtime::open(dirs(d.path())).unwrap();
        assert!(rt.list().unwrap().pods.is_empty());
        let e = rt.stage1().unwrap_err();
        assert!(e.to_string().contains("/nonexistent/rkt-stage1"), "{e}");
        let e = rt.run_options(&RunRequest::default()).unwrap_err();
        assert!(matches!(e, Error::Stage1 { .. }), "{e}");
    }

    #[test]
    fn run_requests_become_runtime_parameters() {
        let d = tempfile::tempdir().unwrap();
        let s1 = d.path().join("rkt-stage1");
        std::fs::write(&s1, "#!/bin/sh\n").unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(
            &mut std::fs::metadata(&s1).unwrap().permissions(),
            0o755,
        );
        std::fs::set_permissions(&s1, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let rt = Runtime::open(dirs(d.path()))
            .unwrap()
            .with_stage1(&s1)
            .unwrap()
            .with_insecure(Insecure {
                seccomp: true,
                ..Default::default()
            });
        let o = rt
            .run_options(&RunRequest {
                ipc: Ipc::Host,
                pids_limit: PidsLimit::Unlimited,
                stop_timeout: Duration::from_secs(3),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(o.stage1, s1);
        assert_eq!(o.runtime.ipc, "parent");
        assert_eq!(o.runtime.pids_limit, None);
        assert!(o.runtime.pids_limit_required);
        assert_eq!(o.runtime.stop_timeout_secs, 3);
        assert!(o.runtime.disable_seccomp && !o.runtime.disable_paths);
        let d = rt.run_options(&RunRequest::default()).unwrap().runtime;
        assert_eq!(d.pids_limit, Some(crate::flags::DEFAULT_PIDS_LIMIT));
        assert!(!d.pids_limit_required);
        let e = rt
            .run_options(&RunRequest {
                net: NetConfig::Host,
                ports: vec![PortForward {
                    name: "http".into(),
                    host_ip: None,
                    host_port: 8080,
                }],
                ..Default::default()
            })
            .unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{e}");
    }
}
