//! `rkt-cri`: rkt's CRI server. See the crate docs and docs/cri.md.

use clap::Parser;
use std::path::PathBuf;

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
    /// log requests at debug level
    #[arg(long)]
    debug: bool,
}

fn main() {
    let args = Args::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(if args.debug { "debug" } else { "info" })
        .with_writer(std::io::stderr)
        .try_init();
    let code = match run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("rkt-cri: {e}");
            254
        }
    };
    std::process::exit(code);
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let insecure = stage0::Insecure::parse(&args.insecure_options)?;
    let cfg = rkt_cri::server::Config {
        dirs: stage0::Dirs {
            data: args.dir,
            system_config: args.system_config,
            local_config: args.local_config,
            user_config: None,
        },
        socket: args.listen,
        insecure,
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
