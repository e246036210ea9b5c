//! `rkt run`, `rkt prepare`, `rkt run-prepared`: clap types and thin adapters to `stage0`.
//!
//! clap parses the pod flags; everything from the first image on is taken raw and parsed by
//! `stage0::apps::parse_apps` (rkt's per-app grammar).

use anyhow::Context;
use clap::{Args, ValueEnum};
use stage0::apps::{parse_apps, AppArgs};
use stage0::images::{PullPolicy, ResolveOptions};
use stage0::manifest::PodRequest;
use stage0::mount::HostMounter;
use stage0::prepare::{PrepareOptions, Preparer};
use stage0::run::RunOptions;
use stage1_abi::{DnsConfig, NetConfig, RuntimeConfig};
use std::path::PathBuf;

use super::Ctx;

const APP_HELP: &str = "\
Per-app flags (after an image; they apply to that image):
  --name=NAME                  app name (default: last path component of the image name)
  --exec=PATH                  replace the image's entrypoint and cmd
  --user=USER --group=GROUP    numeric, a name from the image, or /path (owner of that file)
  --supplementary-gids=1,2     supplementary groups
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
    /// volumes: NAME,kind=host,source=PATH[,readOnly=B][,recursive=B] or
    /// NAME,kind=empty[,mode=0755][,uid=0][,gid=0]
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

/// The image tail, refusing a `--` that came before any image (clap swallows it).
fn app_sections(images: &[String]) -> anyhow::Result<Vec<AppArgs>> {
    let argv: Vec<String> = std::env::args().collect();
    if !images.is_empty() && argv.len() > images.len() {
        let before = &argv[argv.len() - images.len() - 1];
        if before == "--" && argv[argv.len() - images.len()..] == *images {
            return Err(stage0::Error::Usage(
                "an image is required before any app arguments".into(),
            )
            .into());
        }
    }
    Ok(parse_apps(images)?)
}

/// `--pod-manifest`: the manifest, after rkt's conflict check (no images, volumes, mounts,
/// environment flags or pull policy other than `new` with it).
fn pod_manifest(
    p: &PodPrepareArgs,
    images: &[String],
    ports: &[String],
) -> anyhow::Result<Option<stage1_abi::PodManifest>> {
    let Some(f) = &p.pod_manifest else {
        return Ok(None);
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
    let mut m: stage1_abi::PodManifest = stage1_abi::read_json(f)?;
    if m.abi_version == 0 {
        m.abi_version = stage1_abi::ABI_VERSION;
    }
    Ok(Some(m))
}

fn pod_request(p: &PodPrepareArgs, apps: Vec<AppArgs>) -> anyhow::Result<PodRequest> {
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

fn prepare_options(
    ctx: &Ctx,
    p: &PodPrepareArgs,
    apps: Vec<AppArgs>,
) -> anyhow::Result<PrepareOptions> {
    let mut config_dirs = vec![
        ctx.global.system_config.clone(),
        ctx.global.local_config.clone(),
    ];
    config_dirs.extend(ctx.global.user_config.clone());
    Ok(PrepareOptions {
        request: pod_request(p, apps)?,
        resolve: ResolveOptions {
            pull_policy: match p.pull_policy {
                PullPolicyArg::New => PullPolicy::New,
                PullPolicyArg::Update => PullPolicy::Update,
                PullPolicyArg::Never => PullPolicy::Never,
            },
            insecure_image: ctx.insecure.image,
            insecure_tls: ctx.insecure.tls,
            allow_http: ctx.insecure.http,
            config_dirs,
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        },
        uuid_file_save: p.uuid_file_save.clone(),
        host_env: std::env::vars().collect(),
        uuid: None,
    })
}

fn run_options(ctx: &Ctx, rt: &PodRuntimeArgs) -> anyhow::Result<RunOptions> {
    let net = stage0::flags::parse_net(&rt.net)?;
    let mut ports = Vec::new();
    for p in &rt.port {
        ports.push(stage0::flags::parse_port(p)?);
    }
    if !ports.is_empty() && matches!(net, NetConfig::Host | NetConfig::None) {
        anyhow::bail!("--port cannot be used with --net=host or --net=none");
    }
    let cfg = stage0::config::load(&stage0::config::ConfigDirs {
        system: ctx.global.system_config.clone(),
        local: ctx.global.local_config.clone(),
        user: ctx.global.user_config.clone(),
    })?;
    let stage1 =
        stage0::run::find_stage1(rt.stage1_path.as_deref(), cfg.stage1.location.as_deref())?;
    let pids_limit = match &rt.pids_limit {
        Some(v) => stage0::flags::parse_pids_limit(v)?,
        None => Some(stage0::flags::DEFAULT_PIDS_LIMIT),
    };
    Ok(RunOptions {
        runtime: RuntimeConfig {
            net,
            hostname: rt.hostname.clone().unwrap_or_default(),
            interactive: rt.interactive,
            ipc: match rt.ipc {
                IpcArg::Auto => "auto",
                IpcArg::Private => "private",
                IpcArg::Parent => "parent",
            }
            .into(),
            stop_timeout_secs: rt.stop_timeout,
            disable_capabilities: ctx.insecure.capabilities,
            disable_paths: ctx.insecure.paths,
            disable_seccomp: ctx.insecure.seccomp,
            dns: DnsConfig {
                servers: rt.dns.clone(),
                search: rt.dns_search.clone(),
                options: rt.dns_opt.clone(),
                domain: rt.dns_domain.clone(),
            },
            hosts_entries: rt.hosts_entry.clone(),
            ports,
            local_config: ctx.global.local_config.display().to_string(),
            system_config: ctx.global.system_config.display().to_string(),
            cache_dir: std::path::absolute(ctx.global.dir.join(stage0::run::CACHE_DIR))
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            pids_limit,
            pids_limit_required: rt.pids_limit.is_some(),
        },
        stage1,
        debug: ctx.global.debug,
    })
}

fn open_images(ctx: &Ctx) -> anyhow::Result<stage0::store::StoreImages> {
    stage0::store::StoreImages::open(&ctx.global.dir)
        .with_context(|| format!("opening the image store in {}", ctx.global.dir.display()))
}

/// `rkt run`: returns only on failure (on success this process becomes stage1).
pub fn run(ctx: &Ctx, a: &RunArgs) -> anyhow::Result<i32> {
    stage0::run::require_root()?;
    if let Some(m) = pod_manifest(&a.prep, &a.images, &a.rt.port)? {
        let opts = prepare_options(ctx, &a.prep, vec![])?;
        let run = run_options(ctx, &a.rt)?;
        let images = open_images(ctx)?;
        let preparer = Preparer {
            data_dir: &ctx.global.dir,
            images: &images,
            mounter: &HostMounter,
        };
        let pod = preparer.prepare_manifest(m, &opts)?;
        let res = stage0::run::run_pod(pod, &run);
        match res? {}
    }
    let apps = app_sections(&a.images)?;
    if a.rt.interactive && apps.len() > 1 {
        anyhow::bail!("interactive option only supports one image");
    }
    let opts = prepare_options(ctx, &a.prep, apps)?;
    opts.request.check()?;
    let run = run_options(ctx, &a.rt)?;
    let images = open_images(ctx)?;
    let preparer = Preparer {
        data_dir: &ctx.global.dir,
        images: &images,
        mounter: &HostMounter,
    };
    match stage0::run::run(&preparer, &opts, &run)? {}
}

/// `rkt prepare`: prints the UUID.
pub fn prepare(ctx: &Ctx, a: &PrepareArgs) -> anyhow::Result<i32> {
    stage0::run::require_root()?;
    let manifest = pod_manifest(&a.prep, &a.images, &[])?;
    let apps = match manifest {
        Some(_) => vec![],
        None => app_sections(&a.images)?,
    };
    let mut opts = prepare_options(ctx, &a.prep, apps)?;
    opts.resolve.progress &= !a.quiet;
    if manifest.is_none() {
        opts.request.check()?;
    }
    let images = open_images(ctx)?;
    let preparer = Preparer {
        data_dir: &ctx.global.dir,
        images: &images,
        mounter: &HostMounter,
    };
    let pod = match manifest {
        Some(m) => preparer.prepare_manifest(m, &opts)?,
        None => preparer.prepare(&opts)?,
    };
    let uuid = pod.finish_prepare()?;
    println!("{uuid}");
    Ok(0)
}

/// `rkt run-prepared UUID`: returns only on failure.
pub fn run_prepared(ctx: &Ctx, a: &RunPreparedArgs) -> anyhow::Result<i32> {
    stage0::run::require_root()?;
    let run = run_options(ctx, &a.rt)?;
    match stage0::run::run_prepared(&ctx.global.dir, &HostMounter, &a.uuid, &run)? {}
}
