//! Argument types for `rkt` (clap derive), and in [`apps`] rkt's per-app grammar, which clap
//! cannot express.

pub mod apps;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// rkt — a daemonless, pod-native container runtime: the `rkt run` process is the pod.
#[derive(Debug, Parser)]
#[command(
    name = "rkt",
    version,
    propagate_version = true,
    infer_subcommands = true
)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Global flags (rkt's).
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// rkt data directory
    #[arg(long, global = true, default_value = "/var/lib/rkt", env = "RKT_DIR")]
    pub dir: PathBuf,
    /// local configuration directory
    #[arg(long = "local-config", global = true, default_value = "/etc/rkt")]
    pub local_config: PathBuf,
    /// system configuration directory
    #[arg(long = "system-config", global = true, default_value = "/usr/lib/rkt")]
    pub system_config: PathBuf,
    /// user configuration directory
    #[arg(long = "user-config", global = true)]
    pub user_config: Option<PathBuf>,
    /// print out more debug information to stderr
    #[arg(long, global = true)]
    pub debug: bool,
    /// comma-separated list of security features to disable: none, image, tls, ondisk, http,
    /// pubkey, capabilities, paths, seccomp, all-fetch, all-run, all
    #[arg(long = "insecure-options", global = true, default_value = "none")]
    pub insecure_options: String,
    /// automatically trust gpg keys fetched from https
    #[arg(long = "trust-keys-from-https", global = true)]
    pub trust_keys_from_https: bool,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the version and the features of this build and host
    Version,
    /// Print the merged configuration as JSON
    Config(ConfigArgs),
    /// Generate shell completions or man pages
    #[command(hide = true)]
    Docs(DocsArgs),
    /// Fetch images into the store; prints one image id per image
    Fetch(crate::cmd::image::FetchArgs),
    /// Operate on images in the store
    Image(crate::cmd::image::ImageArgs),
    /// Run images in a new pod (the rkt process becomes the pod)
    Run(crate::cmd::run::RunArgs),
    /// Prepare a pod for run-prepared; prints its UUID
    Prepare(crate::cmd::run::PrepareArgs),
    /// Run a prepared pod
    #[command(name = "run-prepared")]
    RunPrepared(crate::cmd::run::RunPreparedArgs),
    /// List pods
    List(crate::cmd::pods::ListArgs),
    /// Show the status of a pod
    Status(crate::cmd::pods::StatusArgs),
    /// Stop running pods
    Stop(crate::cmd::pods::StopArgs),
    /// Remove pods that are not running
    Rm(crate::cmd::pods::RmArgs),
    /// Garbage-collect exited and abandoned pods
    Gc(crate::cmd::pods::GcArgs),
    /// Print a pod's manifest
    #[command(name = "cat-manifest")]
    CatManifest(crate::cmd::pods::CatManifestArgs),
    /// Run a command in a running pod's app, confined like the app
    Enter(crate::cmd::pods::EnterArgs),
    /// Export an exited pod's app as an OCI image archive
    Export(crate::cmd::pods::ExportArgs),
    /// Trust a key for image verification; list and remove trusted keys
    Trust(crate::cmd::trust::TrustArgs),
    /// Generate a systemd unit for a pod (rkt generate systemd [run flags] IMAGE…)
    Generate(crate::cmd::generate::GenerateArgs),
    /// Mutable pods: a sandbox whose apps are added, started, stopped and removed while it runs
    App(crate::cmd::app::AppArgs),
}

/// `rkt config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// pretty-print the JSON
    #[arg(long = "pretty-print", default_value_t = true, action = clap::ArgAction::Set)]
    pub pretty_print: bool,
}

/// `rkt docs` (used by `make docs`).
#[derive(Debug, Args)]
pub struct DocsArgs {
    /// output directory for man pages and completions
    pub out: PathBuf,
}
