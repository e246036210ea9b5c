//! `rkt run`, `rkt prepare`, `rkt run-prepared`: clap types and adapters to
//! [`stage0::Runtime`].
//!
//! clap parses the pod flags; everything from the first image on is taken raw and parsed by
//! [`crate::args::apps::parse_apps`] (rkt's per-app grammar) into stage0's typed requests.

use clap::{Args, ValueEnum};
use stage0::images::PullPolicy;
use stage0::request::{AppRequest, PodRequest};
use stage0::{Error, Ipc, PidsLimit, PodSource, PrepareRequest, RunRequest};
use std::path::PathBuf;
use std::time::Duration;

use crate::args::apps::parse_apps;

use super::Ctx;

const APP_HELP: &str = "\
Per-app flags (after an image; they apply to that image):
  --name=NAME                  app name (default: last path component of the image name)
  --exec=PATH                  replace the image's entrypoint and cmd
  --user=USER --group=GROUP    numeric, a name from the image, or /path (owner of that file)
  --supplementary-gids=1,2     more groups (the user's groups in the image's /etc/group come too)
  --working-dir=DIR            working directory
  --environment=K=V            environment variable (repeatable)
  --mount=volume=V,target=P    mount a pod volume (before any image: for every app)
  --readonly-rootfs            read-only root filesystem
  --memory=128M --cpu=500m --cpu-shares=N --oom-score-adj=N
  --caps-retain=CAP_X,.. | --caps-remove=CAP_X,..
  --seccomp=mode=retain|remove[,errno=E],SYSCALL|@group,..
App arguments: IMAGE [flags] -- ARGS... [---] replaces the image's cmd; '---' ends them.";

/// `--pull-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PullPolicyArg {
    /// fetch only if not in the store
    New,
    /// always check the remote for a newer image
    Update,
    /// never fetch
    Never,
}

/// `--ipc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IpcArg {
    /// private IPC namespace
    Auto,
    /// private IPC namespace
    Private,
    /// the host's IPC namespace
    Parent,
}

/// Flags that shape a pod at prepare time (run and prepare).
#[derive(Debug, Clone, Args)]
pub struct PodPrepareArgs {
    /// volumes: NAME,kind=host,source=PATH[,readOnly=B][,recursive=B][,idmap=B] or
    /// NAME,kind=empty[,mode=0755][,uid=0][,gid=0] (idmap=true: with --private-users, the pod
    /// sees the host's owners there and its root owns what the host's root owns)
    #[arg(long, value_name = "VOLUME")]
    pub volume: Vec<String>,
    /// mount a volume into every app: volume=NAME,target=PATH
    #[arg(long, value_name = "MOUNT")]
    pub mount: Vec<String>,
    /// inherit the caller's environment (lowest precedence)
    #[arg(long = "inherit-env")]
    pub inherit_env: bool,
    /// environment variable for every app: NAME=VALUE
    #[arg(long = "set-env", value_name = "NAME=VALUE")]
    pub set_env: Vec<String>,
    /// file of NAME=VALUE lines for every app
    #[arg(long = "set-env-file", value_name = "FILE")]
    pub set_env_file: Vec<PathBuf>,
    /// write the pod UUID to this file
    #[arg(long = "uuid-file-save", value_name = "FILE")]
    pub uuid_file_save: Option<PathBuf>,
    /// when to fetch images
    #[arg(long = "pull-policy", value_enum, default_value = "new")]
    pub pull_policy: PullPolicyArg,
    /// prepare the pod from this manifest (the JSON `rkt cat-manifest` prints) instead of
    /// images and app flags
    #[arg(long = "pod-manifest", value_name = "FILE")]
    pub pod_manifest: Option<PathBuf>,
    /// run the pod in its own user namespace: its root is an unprivileged host id. auto
    /// (bare flag): a free range of 65536 ids from the pool (user rkt in /etc/subuid and
    /// /etc/subgid, or the userns config); SHIFT:COUNT: pod ids 0..COUNT are host ids SHIFT..
    #[arg(
        long = "private-users",
        value_name = "auto|SHIFT:COUNT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "auto"
    )]
    pub private_users: Option<String>,
}

/// Flags of one start of a pod (run and run-prepared).
#[derive(Debug, Clone, Args)]
pub struct PodRuntimeArgs {
    /// networks: host, none, all, or CNI networks NAME[:K=V;K=V],… (built-in: default,
    /// default-restricted; others from <local-config>/net.d). Omitted or bare: default
    #[arg(
        long,
        default_value = "default",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "default"
    )]
    pub net: String,
    /// pod hostname (default rkt-<uuid>)
    #[arg(long)]
    pub hostname: Option<String>,
    /// give the (single) app the caller's terminal
    #[arg(long)]
    pub interactive: bool,
    /// IPC namespace
    #[arg(long, value_enum, default_value = "auto")]
    pub ipc: IpcArg,
    /// seconds between SIGTERM and SIGKILL when stopping apps
    #[arg(long = "stop-timeout", default_value_t = 10, value_name = "SECONDS")]
    pub stop_timeout: u64,
    /// stage1 binary to exec (default rkt-stage1 next to rkt)
    #[arg(long = "stage1-path", value_name = "PATH")]
    pub stage1_path: Option<PathBuf>,
    /// DNS server: IP, host or none (repeatable)
    #[arg(long)]
    pub dns: Vec<String>,
    /// DNS search domain (repeatable)
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// DNS option (repeatable)
    #[arg(long = "dns-opt")]
    pub dns_opt: Vec<String>,
    /// DNS domain
    #[arg(long = "dns-domain")]
    pub dns_domain: Option<String>,
    /// /etc/hosts entry IP=HOSTNAME, or host (repeatable)
    #[arg(long = "hosts-entry")]
    pub hosts_entry: Vec<String>,
    /// port forward NAME:[HOSTIP:]HOSTPORT (CNI networks only)
    #[arg(long)]
    pub port: Vec<String>,
    /// most tasks (processes and threads) the pod may hold, all apps together; 0 or -1: no
    /// limit [default: 4096]
    #[arg(long = "pids-limit", value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
    /// under a systemd unit (NOTIFY_SOCKET set): none (NOTIFY_SOCKET is not passed on), ready
    /// (rkt sends READY=1 once every app started) or container (the app gets NOTIFY_SOCKET and
    /// WATCHDOG_USEC; the unit needs NotifyAccess=all)
    #[arg(long = "sd-notify", value_name = "MODE", default_value = "none")]
    pub sd_notify: String,
}

/// `rkt run`.
#[derive(Debug, Clone, Args)]
#[command(after_help = APP_HELP)]
pub struct RunArgs {
    /// Pod preparation flags.
    #[command(flatten)]
    pub prep: PodPrepareArgs,
    /// Runtime flags.
    #[command(flatten)]
    pub rt: PodRuntimeArgs,
    /// images, each followed by its per-app flags and arguments
    #[arg(
        value_name = "IMAGE [APP FLAGS] [-- ARGS [---]]",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub images: Vec<String>,
}

/// `rkt prepare`.
#[derive(Debug, Clone, Args)]
#[command(after_help = APP_HELP)]
pub struct PrepareArgs {
    /// Pod preparation flags.
    #[command(flatten)]
    pub prep: PodPrepareArgs,
    /// print only the UUID (no progress output)
    #[arg(long, short)]
    pub quiet: bool,
    /// images, each followed by its per-app flags and arguments
    #[arg(
        value_name = "IMAGE [APP FLAGS] [-- ARGS [---]]",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub images: Vec<String>,
}

/// `rkt run-prepared`.
#[derive(Debug, Clone, Args)]
pub struct RunPreparedArgs {
    /// Runtime flags.
    #[command(flatten)]
    pub rt: PodRuntimeArgs,
    /// the prepared pod (any unique UUID prefix)
    pub uuid: String,
}

/// The image tail, refusing a `--` that came before any image (clap swallows it, so the
/// command line as given is checked).
fn app_sections(ctx: &Ctx, images: &[String]) -> Result<Vec<AppRequest>, Error> {
    let argv = &ctx.argv;
    if !images.is_empty() && argv.len() > images.len() {
        let before = &argv[argv.len() - images.len() - 1];
        if before == "--" && argv[argv.len() - images.len()..] == *images {
            return Err(Error::Usage(
                "an image is required before any app arguments".into(),
            ));
        }
    }
    parse_apps(images)
}

/// What the pod is made of: `--pod-manifest` (after rkt's conflict check: no images, volumes,
/// mounts, ports, environment flags or pull policy other than `new` with it), or the images.
fn pod_source(
    ctx: &Ctx,
    p: &PodPrepareArgs,
    images: &[String],
    ports: &[String],
) -> anyhow::Result<PodSource> {
    let Some(f) = &p.pod_manifest else {
        return pod_request(p, app_sections(ctx, images)?).map(PodSource::Apps);
    };
    if !images.is_empty()
        || !p.volume.is_empty()
        || !p.mount.is_empty()
        || !ports.is_empty()
        || p.inherit_env
        || !p.set_env.is_empty()
        || !p.set_env_file.is_empty()
        || p.pull_policy != PullPolicyArg::New
    {
        anyhow::bail!("conflicting flags set with --pod-manifest (see --help)");
    }
    Ok(PodSource::manifest_file(f)?)
}

pub(crate) fn pod_request(p: &PodPrepareArgs, apps: Vec<AppRequest>) -> anyhow::Result<PodRequest> {
    let mut req = PodRequest {
        apps,
        inherit_env: p.inherit_env,
        ..Default::default()
    };
    for v in &p.volume {
        req.volumes.push(stage0::flags::parse_volume(v)?);
    }
    for m in &p.mount {
        req.default_mounts.push(stage0::flags::parse_mount(m)?);
    }
    for f in &p.set_env_file {
        req.set_env_file.extend(stage0::flags::read_env_file(f)?);
    }
    for kv in &p.set_env {
        req.set_env
            .push(stage0::flags::parse_env_pair("--set-env", kv)?);
    }
    Ok(req)
}

pub(crate) fn prepare_request(
    p: &PodPrepareArgs,
    pod: PodSource,
) -> anyhow::Result<PrepareRequest> {
    Ok(PrepareRequest {
        pod,
        pull_policy: match p.pull_policy {
            PullPolicyArg::New => PullPolicy::New,
            PullPolicyArg::Update => PullPolicy::Update,
            PullPolicyArg::Never => PullPolicy::Never,
        },
        uuid_file_save: p.uuid_file_save.clone(),
        host_env: std::env::vars().collect(),
        progress: crate::progress::terminal_bars(),
        private_users: p
            .private_users
            .as_deref()
            .map(stage0::userns::PrivateUsers::parse)
            .transpose()?,
    })
}

pub(crate) fn run_request(rt: &PodRuntimeArgs) -> anyhow::Result<RunRequest> {
    let mut ports = Vec::new();
    for p in &rt.port {
        ports.push(stage0::flags::parse_port(p)?);
    }
    Ok(RunRequest {
        net: stage0::flags::parse_net(&rt.net)?,
        hostname: rt.hostname.clone(),
        interactive: rt.interactive,
        ipc: match rt.ipc {
            IpcArg::Auto | IpcArg::Private => Ipc::Private,
            IpcArg::Parent => Ipc::Host,
        },
        stop_timeout: Duration::from_secs(rt.stop_timeout),
        dns: stage0::request::DnsConfig {
            servers: rt.dns.clone(),
            search: rt.dns_search.clone(),
            options: rt.dns_opt.clone(),
            domain: rt.dns_domain.clone(),
        },
        hosts_entries: rt.hosts_entry.clone(),
        ports,
        pids_limit: match &rt.pids_limit {
            None => PidsLimit::Default,
            Some(v) => match stage0::flags::parse_pids_limit(v)? {
                None => PidsLimit::Unlimited,
                Some(n) => PidsLimit::Max(n),
            },
        },
        stage1: rt.stage1_path.clone(),
        sd_notify: rt.sd_notify.parse().map_err(anyhow::Error::msg)?,
        host_pid: false,
        sysctls: Vec::new(),
        cni_conf_dir: None,
    })
}

/// The checks of `rkt run`'s flags and per-app grammar that need no image (`rkt generate`).
pub fn check_run_args(a: &RunArgs) -> anyhow::Result<()> {
    run_request(&a.rt)?;
    crate::args::apps::parse_apps(&a.images)?;
    Ok(())
}

/// `rkt run`: returns only on failure (on success this process becomes stage1).
pub fn run(ctx: &Ctx, a: &RunArgs) -> anyhow::Result<i32> {
    let pod = pod_source(ctx, &a.prep, &a.images, &a.rt.port)?;
    let run = run_request(&a.rt)?;
    match ctx.runtime()?.run(&prepare_request(&a.prep, pod)?, &run)? {}
}

/// `rkt prepare`: prints the UUID.
pub fn prepare(ctx: &Ctx, a: &PrepareArgs) -> anyhow::Result<i32> {
    let pod = pod_source(ctx, &a.prep, &a.images, &[])?;
    let mut req = prepare_request(&a.prep, pod)?;
    if a.quiet {
        req.progress = None;
    }
    let uuid = ctx.runtime()?.prepare(&req)?;
    println!("{uuid}");
    Ok(0)
}

/// `rkt run-prepared UUID`: returns only on failure.
pub fn run_prepared(ctx: &Ctx, a: &RunPreparedArgs) -> anyhow::Result<i32> {
    let run = run_request(&a.rt)?;
    match ctx.runtime()?.run_prepared(&a.uuid, &run)? {}
}
