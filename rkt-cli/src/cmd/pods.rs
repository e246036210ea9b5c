//! `rkt list`, `status`, `stop`, `rm`, `gc`, `cat-manifest`, `enter`, `export`: clap types,
//! output formatting and adapters to [`stage0::Runtime`].

use anyhow::Context;
use chrono::{DateTime, Local};
use clap::Args;
use serde::Serialize;
use stage0::gc::{GcOptions, StopOutcome};
use stage0::pods::State;
use stage0::status::PodInfo;
use stage0::Wait;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::Ctx;
use crate::output::{print_json, print_table, Format};

/// `rkt list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// full UUIDs, image IDs and absolute times
    #[arg(long)]
    pub full: bool,
    /// do not print the header
    #[arg(long = "no-legend")]
    pub no_legend: bool,
    /// output format: json or json-pretty
    #[arg(long, value_enum, default_value = "")]
    pub format: Format,
}

/// `rkt status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// the pod (any unique UUID prefix)
    #[arg(required_unless_present = "uuid_file")]
    pub uuid: Option<String>,
    /// read the pod UUID from this file
    #[arg(long = "uuid-file", conflicts_with = "uuid")]
    pub uuid_file: Option<PathBuf>,
    /// wait for the pod to exit: true, false or a timeout such as 10s
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub wait: String,
    /// wait for the pod to be ready: true, false or a timeout such as 10s
    #[arg(
        long = "wait-ready",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub wait_ready: String,
    /// output format: json or json-pretty
    #[arg(long, value_enum, default_value = "")]
    pub format: Format,
}

/// `rkt stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// pods (any unique UUID prefixes)
    #[arg(required_unless_present = "uuid_file")]
    pub uuids: Vec<String>,
    /// read the pod UUID from this file
    #[arg(long = "uuid-file")]
    pub uuid_file: Option<PathBuf>,
    /// SIGKILL instead of SIGTERM, and return once every process of the pod is gone
    #[arg(long)]
    pub force: bool,
}

/// `rkt rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// pods (any unique UUID prefixes)
    #[arg(required_unless_present = "uuid_file")]
    pub uuids: Vec<String>,
    /// read the pod UUID from this file
    #[arg(long = "uuid-file")]
    pub uuid_file: Option<PathBuf>,
}

/// `rkt gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// how long exited pods stay before they are collected (e.g. 30m, 0s)
    #[arg(long = "grace-period", default_value = "30m")]
    pub grace_period: String,
    /// how long prepared pods stay before they are collected
    #[arg(long = "expire-prepared", default_value = "24h")]
    pub expire_prepared: String,
    /// only move exited pods to exited-garbage
    #[arg(long = "mark-only")]
    pub mark_only: bool,
}

/// `rkt cat-manifest`.
#[derive(Debug, Args)]
pub struct CatManifestArgs {
    /// the pod (any unique UUID prefix)
    #[arg(required_unless_present = "uuid_file")]
    pub uuid: Option<String>,
    /// read the pod UUID from this file
    #[arg(long = "uuid-file", conflicts_with = "uuid")]
    pub uuid_file: Option<PathBuf>,
    /// pretty-print the JSON
    #[arg(long = "pretty-print", default_value_t = true, action = clap::ArgAction::Set)]
    pub pretty_print: bool,
}

/// `rkt enter`.
#[derive(Debug, Args)]
pub struct EnterArgs {
    /// the app to enter (needed when the pod has several)
    #[arg(long)]
    pub app: Option<String>,
    /// the running pod (any unique UUID prefix)
    pub uuid: String,
    /// command and arguments (default /bin/bash, else /bin/sh)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub cmd: Vec<String>,
}

/// `rkt export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// the app to export (needed when the pod has several)
    #[arg(long)]
    pub app: Option<String>,
    /// replace an existing output file
    #[arg(long)]
    pub overwrite: bool,
    /// the exited pod (any unique UUID prefix)
    pub uuid: String,
    /// output OCI image archive (import with `rkt fetch oci-archive:FILE`)
    pub file: PathBuf,
}

fn read_uuid_file(f: &PathBuf) -> anyhow::Result<String> {
    let s = std::fs::read_to_string(f)
        .with_context(|| format!("unable to read UUID from file {}", f.display()))?;
    Ok(s.trim().to_string())
}

/// Go's `2006-01-02 15:04:05.999 -0700 MST` in local time.
fn full_time(t: SystemTime) -> String {
    let dt: DateTime<Local> = t.into();
    let ms = dt.format("%.3f").to_string();
    let ms = ms.trim_end_matches('0').trim_end_matches('.');
    let offset = dt.format("%z").to_string();
    let zone = if offset == "+0000" {
        "UTC".to_string()
    } else {
        dt.format("%Z").to_string()
    };
    format!("{}{ms} {offset} {zone}", dt.format("%Y-%m-%d %H:%M:%S"))
}

/// go-humanize's relative time.
fn human_time(t: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(t)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let (n, unit) = match secs {
        0 => return "now".into(),
        s if s < 60 => (s, "second"),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86400 => (s / 3600, "hour"),
        s if s < 86400 * 30 => (s / 86400, "day"),
        s if s < 86400 * 365 => (s / (86400 * 30), "month"),
        s => (s / (86400 * 365), "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

fn ns(t: Option<SystemTime>) -> Option<i64> {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
}

/// Go's `time.Duration.String()` for whole seconds (`30m0s`, `1h0m0s`, `10s`).
fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else if d.subsec_millis() > 0 {
        format!("{}s", d.as_secs_f64())
    } else {
        format!("{sec}s")
    }
}

/// rkt api v1 `App`.
#[derive(Serialize)]
struct AppJson {
    name: String,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    image_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mounts: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    user_annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    user_labels: BTreeMap<String, String>,
}

/// rkt api v1 `Pod`.
#[derive(Serialize)]
struct PodJson {
    name: String,
    state: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    networks: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    app_names: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    apps: Vec<AppJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<i64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    user_annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    user_labels: BTreeMap<String, String>,
    /// `--private-users`: the host ids the pod's 0..count are (not in rkt's api).
    #[serde(skip_serializing_if = "Option::is_none")]
    private_users: Option<stage0::request::IdRange>,
}

/// rkt's JSON of one network (api v1 `NetInfo`).
fn networks(p: &PodInfo) -> Vec<serde_json::Value> {
    p.networks
        .iter()
        .map(|n| {
            serde_json::json!({
                "netName": n.net_name,
                "netConf": n.net_conf,
                "pluginPath": n.plugin_path,
                "ifName": n.if_name,
                "ip": n.ip.clone().unwrap_or_default(),
                "args": n.args,
                "mask": n.mask.clone().unwrap_or_default(),
                "hostIP": n.host_ip.clone().unwrap_or_default(),
            })
        })
        .collect()
}

fn pod_json(p: &PodInfo) -> PodJson {
    let mut apps = Vec::new();
    if let Some(m) = &p.manifest {
        for a in &m.apps {
            let st = p.apps.iter().find(|s| s.app == a.name);
            let state = match st {
                Some(s) if s.finished() => "exited",
                Some(s) if s.started_ns.is_some() => "running",
                Some(_) => "created",
                None => "unknown",
            };
            apps.push(AppJson {
                name: a.name.clone(),
                state,
                created_at: st.and_then(|s| s.created_ns),
                started_at: st.and_then(|s| s.started_ns),
                finished_at: st.and_then(|s| s.finished_ns),
                exit_code: st.and_then(|s| s.exit_code),
                image_id: a.image.id.clone(),
                mounts: a
                    .mounts
                    .iter()
                    .map(|m| {
                        serde_json::json!({"name": m.volume, "container_path": m.target, "read_only": m.read_only})
                    })
                    .collect(),
                user_annotations: BTreeMap::new(),
                user_labels: BTreeMap::new(),
            });
        }
    }
    PodJson {
        name: p.uuid.clone(),
        state: p.state.to_string(),
        networks: networks(p),
        app_names: apps.iter().map(|a| a.name.clone()).collect(),
        apps,
        created_at: ns(p.created),
        started_at: ns(p.started),
        user_annotations: p
            .manifest
            .iter()
            .flat_map(|m| m.annotations.iter().cloned())
            .collect(),
        user_labels: BTreeMap::new(),
        private_users: p.manifest.as_ref().and_then(|m| m.private_users),
    }
}

/// `default:ip4=172.16.28.5, mynet:ip4=…` as rkt prints it.
fn nets_text(p: &PodInfo) -> String {
    p.networks
        .iter()
        .filter_map(|n| Some(format!("{}:ip4={}", n.net_name, n.ip.as_deref()?)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `rkt list`.
pub fn list(ctx: &Ctx, a: &ListArgs) -> anyhow::Result<i32> {
    let stage0::PodList {
        pods: all,
        unreadable: errors,
    } = ctx.runtime()?.list()?;
    if a.format != Format::Table {
        let v: Vec<PodJson> = all.iter().map(pod_json).collect();
        print_json(&v, a.format == Format::JsonPretty)?;
    } else {
        let mut rows = Vec::new();
        for p in &all {
            let uuid = if a.full {
                p.uuid.clone()
            } else {
                p.uuid[..8].to_string()
            };
            let when = |t: Option<SystemTime>| match t {
                Some(t) if a.full => full_time(t),
                Some(t) => human_time(t),
                None => String::new(),
            };
            let pod_cols = [
                p.state.to_string(),
                when(p.created),
                when(p.started),
                nets_text(p),
            ];
            let apps: Vec<_> = p.manifest.iter().flat_map(|m| m.apps.iter()).collect();
            if apps.is_empty() {
                let mut r = vec![uuid.clone(), "-".into(), "-".into()];
                if a.full {
                    r.push("-".into());
                }
                r.extend(pod_cols.iter().cloned());
                rows.push(r);
            }
            for (i, app) in apps.iter().enumerate() {
                let first = i == 0;
                let mut r = vec![
                    if first { uuid.clone() } else { String::new() },
                    app.name.clone(),
                    app.image.name.clone(),
                ];
                if a.full {
                    r.push(app.image.id.clone());
                }
                if first {
                    r.extend(pod_cols.iter().cloned());
                } else {
                    r.extend(std::iter::repeat_n(String::new(), pod_cols.len()));
                }
                rows.push(r);
            }
        }
        let header: &[&str] = if a.full {
            &[
                "UUID",
                "APP",
                "IMAGE NAME",
                "IMAGE ID",
                "STATE",
                "CREATED",
                "STARTED",
                "NETWORKS",
            ]
        } else {
            &[
                "UUID",
                "APP",
                "IMAGE NAME",
                "STATE",
                "CREATED",
                "STARTED",
                "NETWORKS",
            ]
        };
        print_table(if a.no_legend { None } else { Some(header) }, &rows);
    }
    if !errors.is_empty() {
        eprintln!("Unable to read some pods:");
        for e in errors {
            eprintln!("  {e}");
        }
    }
    Ok(0)
}

fn parse_wait(flag: &str, v: &str) -> anyhow::Result<Wait> {
    Ok(match v {
        "false" | "0" | "" => Wait::No,
        "true" => Wait::Forever,
        d => Wait::For(stage0::flags::parse_duration(flag, d)?),
    })
}

/// `rkt status`.
pub fn status(ctx: &Ctx, a: &StatusArgs) -> anyhow::Result<i32> {
    let arg = match (&a.uuid, &a.uuid_file) {
        (Some(u), _) => u.clone(),
        (None, Some(f)) => match read_uuid_file(f) {
            Ok(u) => u,
            Err(e) => {
                eprintln!("rkt: {}", crate::output::one_line(&e));
                return Ok(1);
            }
        },
        (None, None) => anyhow::bail!("UUID cannot be empty"),
    };
    let ready = parse_wait("--wait-ready", &a.wait_ready)?;
    let exited = parse_wait("--wait", &a.wait)?;
    let p = ctx.runtime()?.status(&arg, ready, exited)?;
    if a.format != Format::Table {
        print_json(&pod_json(&p), a.format == Format::JsonPretty)?;
        return Ok(0);
    }
    println!("state={}", p.state);
    if let Some(c) = p.created {
        println!("created={}", full_time(c));
    }
    if let Some(s) = p.started {
        println!("started={}", full_time(s));
    }
    if matches!(p.state, State::Running | State::Exited) {
        println!("networks={}", nets_text(&p));
    }
    if let Some(r) = p.manifest.as_ref().and_then(|m| m.private_users) {
        println!("private-users={}:{}", r.shift, r.count);
    }
    let ran = matches!(
        p.state,
        State::Running
            | State::Deleting
            | State::ExitedDeleting
            | State::Exited
            | State::ExitedGarbage
    );
    if !ran {
        return Ok(0);
    }
    if let Some(pid) = p.pid {
        println!("pid={pid}");
    }
    println!("exited={}", p.exited());
    if p.state != State::Running {
        for st in &p.apps {
            if let Some(code) = st.exit_code {
                println!("app-{}={code}", st.app);
            }
        }
    }
    Ok(0)
}

fn uuid_args(uuids: &[String], file: &Option<PathBuf>) -> anyhow::Result<Vec<String>> {
    let mut v = uuids.to_vec();
    if let Some(f) = file {
        v.push(read_uuid_file(f)?);
    }
    Ok(v)
}

/// `rkt stop`.
pub fn stop(ctx: &Ctx, a: &StopArgs) -> anyhow::Result<i32> {
    let args = match uuid_args(&a.uuids, &a.uuid_file) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("rkt: {}", crate::output::one_line(&e));
            return Ok(1);
        }
    };
    let rt = ctx.runtime()?;
    let mut failed = false;
    for arg in &args {
        match rt.stop(arg, a.force) {
            Ok((uuid, StopOutcome::Signalled)) => println!("{uuid:?}"),
            Ok((uuid, StopOutcome::AlreadyStopped)) => {
                println!("pod {uuid:?} is already stopped")
            }
            Err(e) => {
                eprintln!("rkt: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 254 } else { 0 })
}

/// `rkt rm`.
pub fn rm(ctx: &Ctx, a: &RmArgs) -> anyhow::Result<i32> {
    let args = uuid_args(&a.uuids, &a.uuid_file)?;
    let rt = ctx.runtime()?;
    let mut failed = false;
    for arg in &args {
        match rt.rm(arg) {
            Ok(uuid) => println!("{uuid:?}"),
            Err(e) => {
                eprintln!("rkt: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 254 } else { 0 })
}

/// `rkt gc`.
pub fn gc(ctx: &Ctx, a: &GcArgs) -> anyhow::Result<i32> {
    let opts = GcOptions {
        grace_period: stage0::flags::parse_duration("--grace-period", &a.grace_period)?,
        expire_prepared: stage0::flags::parse_duration("--expire-prepared", &a.expire_prepared)?,
        mark_only: a.mark_only,
    };
    let rep = ctx.runtime()?.gc(&opts)?;
    for u in &rep.marked {
        eprintln!("moving pod {u:?} to garbage");
    }
    for u in &rep.collected {
        println!("Garbage collecting pod {u:?}");
    }
    if !a.mark_only {
        for u in &rep.within_grace {
            eprintln!(
                "pod {u:?} not removed: still within grace period ({})",
                go_duration(opts.grace_period)
            );
        }
    }
    for e in &rep.errors {
        eprintln!("rkt: {e}");
    }
    Ok(if rep.errors.is_empty() { 0 } else { 254 })
}

/// `rkt cat-manifest`.
pub fn cat_manifest(ctx: &Ctx, a: &CatManifestArgs) -> anyhow::Result<i32> {
    let arg = match (&a.uuid, &a.uuid_file) {
        (Some(u), _) => u.clone(),
        (None, Some(f)) => read_uuid_file(f)?,
        (None, None) => anyhow::bail!("UUID cannot be empty"),
    };
    print_json(&ctx.runtime()?.manifest(&arg)?, a.pretty_print)?;
    Ok(0)
}

/// `rkt enter`: on success this process becomes the command (its exit code is rkt's).
pub fn enter(ctx: &Ctx, a: &EnterArgs) -> anyhow::Result<i32> {
    let rt = ctx.runtime()?;
    let plan = rt.enter_plan(&a.uuid, a.app.as_deref(), &a.cmd)?;
    if plan.default_cmd {
        eprintln!("no command specified, assuming {:?}", plan.cmd[0]);
    }
    match rt.enter(&plan)? {}
}

/// `rkt export`.
pub fn export(ctx: &Ctx, a: &ExportArgs) -> anyhow::Result<i32> {
    ctx.runtime()?.export(&stage0::export::ExportRequest {
        uuid: a.uuid.clone(),
        app: a.app.clone(),
        out: a.file.clone(),
        overwrite: a.overwrite,
    })?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_and_times() {
        assert_eq!(go_duration(Duration::from_secs(1800)), "30m0s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(human_time(SystemTime::now()), "now");
        assert_eq!(
            human_time(SystemTime::now() - Duration::from_secs(125)),
            "2 minutes ago"
        );
        let t = full_time(SystemTime::UNIX_EPOCH + Duration::from_millis(1500));
        assert!(t.contains(":01.5 "), "{t}");
    }
}
