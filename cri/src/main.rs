//! `rkt-cri`: rkt's CRI server. See the crate docs and docs/cri.md.
//!
//! Besides serving, the binary has three internal subcommands the server runs (not for
//! users): `pod-start UUID` starts a prepared sandbox pod detached and returns once it is ready;
//! `pod-run UUID` is the process that becomes the pod; `exec UUID APP -- CMD…` becomes a
//! command in an app (as `rkt app exec`).

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// rkt's CRI server: the Kubernetes Container Runtime Interface on a unix socket.
#[derive(Debug, Parser)]
#[command(name = "rkt-cri", version)]
struct Args {
    /// socket to listen on
    #[arg(long, default_value = "/run/rkt/cri.sock")]
    listen: PathBuf,
    /// rkt data directory
    #[arg(long, default_value = "/var/lib/rkt", env = "RKT_DIR")]
    dir: PathBuf,
    /// local configuration directory
    #[arg(long = "local-config", default_value = "/etc/rkt")]
    local_config: PathBuf,
    /// system configuration directory
    #[arg(long = "system-config", default_value = "/usr/lib/rkt")]
    system_config: PathBuf,
    /// comma-separated security features to disable, as rkt's --insecure-options
    #[arg(long = "insecure-options", default_value = "none")]
    insecure_options: String,
    /// the CNI network pods join (rkt's --net value: a network of --cni-conf-dir or of
    /// <local-config>/net.d, or rkt's built-in default); empty: the first network of
    /// --cni-conf-dir, else rkt's default
    #[arg(long, default_value = "")]
    net: String,
    /// directory of CNI network configurations (as the kubelet's runtimes read them)
    #[arg(long = "cni-conf-dir", default_value = "/etc/cni/net.d")]
    cni_conf_dir: PathBuf,
    /// address of the streaming server (the URLs Exec, Attach and PortForward return); port
    /// 0 picks a free one
    #[arg(long = "streaming-address", default_value = "127.0.0.1:0")]
    streaming_address: std::net::SocketAddr,
    /// log requests at debug level
    #[arg(long)]
    debug: bool,
    #[command(subcommand)]
    internal: Option<Internal>,
}

/// What the server runs of itself.
#[derive(Debug, Subcommand)]
enum Internal {
    /// start a prepared sandbox pod detached; returns once it is ready
    #[command(name = "pod-start", hide = true)]
    PodStart { uuid: String },
    /// become the sandbox pod
    #[command(name = "pod-run", hide = true)]
    PodRun { uuid: String },
    /// become CMD in app APP of pod UUID
    #[command(hide = true)]
    Exec {
        uuid: String,
        app: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        cmd: Vec<String>,
    },
}

fn main() {
    let args = Args::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(if args.debug { "debug" } else { "info" })
        .with_writer(std::io::stderr)
        .try_init();
    let res = match &args.internal {
        None => serve(&args).map(|()| 0),
        Some(i) => internal(&args, i),
    };
    let code = match res {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rkt-cri: {}", e.to_string().replace('\n', " "));
            254
        }
    };
    std::process::exit(code);
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn dirs(args: &Args) -> stage0::Dirs {
    stage0::Dirs {
        data: args.dir.clone(),
        system_config: args.system_config.clone(),
        local_config: args.local_config.clone(),
        user_config: None,
    }
}

fn runtime(args: &Args) -> Res<stage0::Runtime> {
    Ok(stage0::Runtime::open(dirs(args))?
        .with_insecure(stage0::Insecure::parse(&args.insecure_options)?))
}

fn internal(args: &Args, i: &Internal) -> Res<i32> {
    match i {
        Internal::PodStart { uuid } => pod_start(args, uuid),
        Internal::PodRun { uuid } => {
            let rt = runtime(args)?;
            let run =
                rkt_cri::sandbox::run_request(&args.dir, uuid, &args.net, &args.cni_conf_dir)?;
            match rt.run_prepared(uuid, &run)? {}
        }
        Internal::Exec { uuid, app, cmd } => {
            let cmd: Vec<String> = cmd
                .iter()
                .skip_while(|a| a.as_str() == "--")
                .cloned()
                .collect();
            let rt = runtime(args)?;
            let plan = rt.enter_plan(uuid, Some(app), &cmd)?;
            match rt.enter(&plan)? {}
        }
    }
}

/// Spawn `pod-run` detached (its own process group, output to the sandbox's log file) and
/// wait until the pod is ready or the process ended; then exit, which leaves the pod to init.
fn pod_start(args: &Args, uuid: &str) -> Res<i32> {
    let log_path = rkt_cri::runtime::sandbox_log(&args.dir, uuid);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    use std::os::unix::process::CommandExt;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg(format!("--dir={}", args.dir.display()))
        .arg(format!("--local-config={}", args.local_config.display()))
        .arg(format!("--system-config={}", args.system_config.display()))
        .arg(format!("--insecure-options={}", args.insecure_options))
        .arg(format!("--net={}", args.net))
        .arg(format!("--cni-conf-dir={}", args.cni_conf_dir.display()))
        .arg("pod-run")
        .arg(uuid)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()?;
    let ready = args
        .dir
        .join("pods/run")
        .join(uuid)
        .join(stage1_abi::paths::READY);
    let start = Instant::now();
    loop {
        if ready.exists() {
            return Ok(0);
        }
        if let Some(st) = child.try_wait()? {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let line = text.lines().last().unwrap_or("").trim().to_string();
            return Err(format!("the pod exited ({st}) before it was ready: {line}").into());
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the pod was not ready after 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn serve(args: &Args) -> Res<()> {
    let insecure = stage0::Insecure::parse(&args.insecure_options)?;
    let cfg = rkt_cri::server::Config {
        dirs: dirs(args),
        socket: args.listen.clone(),
        insecure,
        exe: std::env::current_exe()?,
        net: args.net.clone(),
        cni_conf_dir: args.cni_conf_dir.clone(),
        streaming: args.streaming_address,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        rkt_cri::server::serve(cfg, shutdown).await
    })?;
    Ok(())
}
