//! `rkt app sandbox|add|start|stop|rm|list|status|exec`: mutable pods (see stage0's `apps`).

use clap::{Args, Subcommand};
use serde::Serialize;
use stage0::apps::{AppAddRequest, AppInfo};
use stage0::images::PullPolicy;
use std::time::Duration;

use super::run::{PodPrepareArgs, PodRuntimeArgs, PullPolicyArg};
use super::Ctx;
use crate::output::{print_json, print_table, Format};

/// `rkt app`.
#[derive(Debug, Args)]
pub struct AppArgs {
    /// The app command.
    #[command(subcommand)]
    pub command: AppCommand,
}

/// `rkt app …` subcommands.
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Run a mutable pod with no apps (the rkt process becomes the pod; add apps with rkt app add)
    Sandbox(Box<SandboxArgs>),
    /// Add an app to a running mutable pod (created, not started)
    Add(AddArgs),
    /// Start an app of a running mutable pod
    Start(AppRef),
    /// Stop an app of a running mutable pod (SIGTERM, SIGKILL after the timeout)
    Stop(StopAppArgs),
    /// Remove an app from a running mutable pod (killing it if it runs)
    Rm(AppRef),
    /// List the apps of a pod
    List(ListAppsArgs),
    /// Show the status of one app of a pod
    Status(StatusAppArgs),
    /// Run a command in a running app, confined like the app (as rkt enter)
    Exec(ExecArgs),
}

/// `rkt app sandbox`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Pod preparation flags.
    #[command(flatten)]
    pub prep: PodPrepareArgs,
    /// Runtime flags.
    #[command(flatten)]
    pub rt: PodRuntimeArgs,
}

/// `rkt app add`.
#[derive(Debug, Args)]
#[command(after_help = "App flags after the image are rkt run's (see rkt run --help).")]
pub struct AddArgs {
    /// volumes the app brings, as rkt run's --volume (names must be new in the pod)
    #[arg(long, value_name = "VOLUME")]
    pub volume: Vec<String>,
    /// when to fetch the image
    #[arg(long = "pull-policy", value_enum, default_value = "new")]
    pub pull_policy: PullPolicyArg,
    /// the running mutable pod (any unique UUID prefix)
    pub uuid: String,
    /// the image, its app flags and arguments
    #[arg(
        value_name = "IMAGE [APP FLAGS] [-- ARGS]",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true
    )]
    pub image: Vec<String>,
}

/// A pod and one of its apps.
#[derive(Debug, Args)]
pub struct AppRef {
    /// the pod (any unique UUID prefix)
    pub uuid: String,
    /// the app
    #[arg(long)]
    pub app: String,
}

/// `rkt app stop`.
#[derive(Debug, Args)]
pub struct StopAppArgs {
    /// The pod and app.
    #[command(flatten)]
    pub target: AppRef,
    /// seconds between SIGTERM and SIGKILL (0: SIGKILL at once)
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub timeout: u64,
}

/// `rkt app list`.
#[derive(Debug, Args)]
pub struct ListAppsArgs {
    /// the pod (any unique UUID prefix)
    pub uuid: String,
    /// do not print the header
    #[arg(long = "no-legend")]
    pub no_legend: bool,
    /// output format: json or json-pretty
    #[arg(long, value_enum, default_value = "")]
    pub format: Format,
}

/// `rkt app status`.
#[derive(Debug, Args)]
pub struct StatusAppArgs {
    /// The pod and app.
    #[command(flatten)]
    pub target: AppRef,
    /// output format: json or json-pretty
    #[arg(long, value_enum, default_value = "")]
    pub format: Format,
}

/// `rkt app exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The pod and app.
    #[command(flatten)]
    pub target: AppRef,
    /// command and arguments
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD",
        required = true
    )]
    pub cmd: Vec<String>,
}

/// One app in `--format=json`.
#[derive(Debug, Serialize)]
struct AppJson<'a> {
    name: &'a str,
    state: &'a str,
    image_id: &'a str,
    image_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<i32>,
}

fn json_of(a: &AppInfo) -> AppJson<'_> {
    let s = a.status.as_ref();
    AppJson {
        name: &a.app.name,
        state: a.state.as_str(),
        image_id: &a.app.image.id,
        image_name: &a.app.image.name,
        pid: s
            .and_then(|s| s.pid)
            .filter(|_| a.state == stage0::apps::AppState::Running),
        created_at: s.and_then(|s| s.created_ns),
        started_at: s.and_then(|s| s.started_ns),
        finished_at: s.and_then(|s| s.finished_ns),
        exit_code: s.and_then(|s| s.exit_code),
        signal: s.and_then(|s| s.signal),
    }
}

/// Dispatch `rkt app …`.
pub fn run(ctx: &Ctx, a: &AppArgs) -> anyhow::Result<i32> {
    match &a.command {
        AppCommand::Sandbox(s) => sandbox(ctx, s),
        AppCommand::Add(x) => add(ctx, x),
        AppCommand::Start(r) => {
            ctx.runtime()?.app_start(&r.uuid, &r.app)?;
            Ok(0)
        }
        AppCommand::Stop(s) => {
            ctx.runtime()?.app_stop(
                &s.target.uuid,
                &s.target.app,
                Duration::from_secs(s.timeout),
            )?;
            Ok(0)
        }
        AppCommand::Rm(r) => {
            ctx.runtime()?.app_rm(&r.uuid, &r.app)?;
            Ok(0)
        }
        AppCommand::List(l) => list(ctx, l),
        AppCommand::Status(s) => status(ctx, s),
        AppCommand::Exec(e) => {
            let rt = ctx.runtime()?;
            let plan = rt.enter_plan(&e.target.uuid, Some(&e.target.app), &e.cmd)?;
            match rt.enter(&plan)? {}
        }
    }
}

/// `rkt app sandbox`: returns only on failure (on success this process becomes the pod).
fn sandbox(ctx: &Ctx, s: &SandboxArgs) -> anyhow::Result<i32> {
    if s.prep.pod_manifest.is_some() {
        anyhow::bail!("--pod-manifest cannot be used with rkt app sandbox");
    }
    let mut pod = super::run::pod_request(&s.prep, Vec::new())?;
    pod.mutable = true;
    let req = super::run::prepare_request(&s.prep, stage0::PodSource::Apps(pod))?;
    let run = super::run::run_request(&s.rt)?;
    match ctx.runtime()?.run(&req, &run)? {}
}

fn add(ctx: &Ctx, a: &AddArgs) -> anyhow::Result<i32> {
    let mut apps = crate::args::apps::parse_apps(&a.image)?;
    if apps.len() != 1 {
        anyhow::bail!("rkt app add takes one image");
    }
    let mut req = AppAddRequest {
        app: apps.remove(0),
        volumes: Vec::new(),
        cri: None,
    };
    for v in &a.volume {
        req.volumes.push(stage0::flags::parse_volume(v)?);
    }
    let policy = match a.pull_policy {
        PullPolicyArg::New => PullPolicy::New,
        PullPolicyArg::Update => PullPolicy::Update,
        PullPolicyArg::Never => PullPolicy::Never,
    };
    let name = ctx.runtime()?.app_add(&a.uuid, &req, policy)?;
    println!("{name}");
    Ok(0)
}

fn list(ctx: &Ctx, l: &ListAppsArgs) -> anyhow::Result<i32> {
    let (_, apps) = ctx.runtime()?.apps(&l.uuid)?;
    match l.format {
        Format::Table => {
            let rows: Vec<Vec<String>> = apps
                .iter()
                .map(|a| {
                    let j = json_of(a);
                    vec![
                        j.name.to_string(),
                        j.state.to_string(),
                        j.image_name.to_string(),
                        j.exit_code.map(|c| c.to_string()).unwrap_or_default(),
                    ]
                })
                .collect();
            let header: &[&str] = &["NAME", "STATE", "IMAGE", "EXIT CODE"];
            print_table((!l.no_legend).then_some(header), &rows);
        }
        f => {
            let v: Vec<AppJson<'_>> = apps.iter().map(json_of).collect();
            print_json(&v, f == Format::JsonPretty)?;
        }
    }
    Ok(0)
}

fn status(ctx: &Ctx, s: &StatusAppArgs) -> anyhow::Result<i32> {
    let a = ctx.runtime()?.app_status(&s.target.uuid, &s.target.app)?;
    let j = json_of(&a);
    match s.format {
        Format::Table => {
            println!("name={}", j.name);
            println!("state={}", j.state);
            println!("image-id={}", j.image_id);
            println!("image-name={}", j.image_name);
            let opt = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    println!("{k}={v}");
                }
            };
            opt("pid", j.pid.map(|p| p.to_string()));
            opt("created-at", j.created_at.map(|p| p.to_string()));
            opt("started-at", j.started_at.map(|p| p.to_string()));
            opt("finished-at", j.finished_at.map(|p| p.to_string()));
            opt("exit-code", j.exit_code.map(|p| p.to_string()));
            opt("signal", j.signal.map(|p| p.to_string()));
        }
        f => print_json(&j, f == Format::JsonPretty)?,
    }
    Ok(0)
}
