//! The CNI exec protocol (spec 0.4.0 / 1.0.0): run a configuration list's plugins with the
//! `CNI_*` environment and their configuration on stdin, chain `prevResult`, read the result
//! (or the error object) from stdout.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::conf::NetworkConf;
use super::NetError;
use crate::Error;

/// Where plugin binaries are looked for, in order.
#[derive(Debug, Clone)]
pub struct Plugins {
    dirs: Vec<PathBuf>,
}

/// Plugin directories searched after the configuration's own ones: rkt's, Debian's
/// (`containernetworking-plugins`) and the upstream default.
const PLUGIN_DIRS: &[&str] = &["/usr/lib/rkt/plugins/net", "/usr/lib/cni", "/opt/cni/bin"];

impl Plugins {
    /// `first` dirs (e.g. `<config>/net.d/plugins`), then `$CNI_PATH`, then [`PLUGIN_DIRS`].
    pub fn new(first: &[PathBuf]) -> Self {
        let mut dirs: Vec<PathBuf> = first.to_vec();
        if let Ok(p) = std::env::var("CNI_PATH") {
            dirs.extend(std::env::split_paths(&p));
        }
        dirs.extend(PLUGIN_DIRS.iter().map(PathBuf::from));
        Plugins { dirs }
    }

    /// The binary of plugin `ty`.
    pub fn find(&self, ty: &str) -> Result<PathBuf, Error> {
        if ty.contains('/') {
            return Err(NetError::PluginType(ty.to_string()).into());
        }
        self.dirs
            .iter()
            .map(|d| d.join(ty))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                NetError::PluginMissing {
                    ty: ty.to_string(),
                    dirs: std::env::join_paths(&self.dirs)
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                }
                .into()
            })
    }

    fn cni_path(&self) -> std::ffi::OsString {
        std::env::join_paths(self.dirs.iter().filter(|d| d.is_dir())).unwrap_or_default()
    }
}

/// The per-invocation part of the protocol.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    /// `CNI_CONTAINERID`: the pod UUID.
    pub container_id: &'a str,
    /// `CNI_NETNS`: path of the pod's network namespace.
    pub netns: &'a str,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// `CNI_ARGS` pairs beyond `IgnoreUnknown`.
    pub args: &'a str,
}

/// A plugin failed: its name and the message of its error object (or its stderr).
#[derive(Debug, Clone, PartialEq)]
pub struct PluginError {
    /// Plugin type (`ptp`).
    pub plugin: String,
    /// What it said.
    pub msg: String,
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CNI plugin {}: {}", self.plugin, self.msg)
    }
}

fn version_at_least(v: &str, min: (u32, u32)) -> bool {
    let mut it = v.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
    let maj = it.next().unwrap_or(0);
    let min_v = it.next().unwrap_or(0);
    (maj, min_v) >= min
}

/// The stdin of one plugin of the chain.
fn plugin_stdin(conf: &NetworkConf, plugin: &Value, prev: Option<&Value>) -> Value {
    let mut p = plugin.clone();
    if let Some(o) = p.as_object_mut() {
        o.insert("name".into(), Value::String(conf.name.clone()));
        o.insert("cniVersion".into(), Value::String(conf.cni_version.clone()));
        if let Some(prev) = prev {
            o.insert("prevResult".into(), prev.clone());
        }
    }
    p
}

fn exec(
    plugins: &Plugins,
    command: &str,
    inv: &Invocation<'_>,
    stdin: &Value,
) -> Result<Vec<u8>, PluginError> {
    exec_as(
        plugins,
        stdin["type"].as_str().unwrap_or_default(),
        command,
        inv,
        stdin,
    )
}

/// Run plugin `ty` (the stdin's `type`, or the IPAM plugin a main plugin would delegate to).
fn exec_as(
    plugins: &Plugins,
    ty: &str,
    command: &str,
    inv: &Invocation<'_>,
    stdin: &Value,
) -> Result<Vec<u8>, PluginError> {
    let ty = ty.to_string();
    let perr = |msg: String| PluginError {
        plugin: ty.clone(),
        msg,
    };
    let bin = plugins.find(&ty).map_err(|e| perr(e.to_string()))?;
    let args = if inv.args.is_empty() {
        "IgnoreUnknown=1".to_string()
    } else {
        format!("IgnoreUnknown=1;{}", inv.args)
    };
    let mut cmd = Command::new(&bin);
    crate::sys::die_with_parent(&mut cmd);
    let mut child = cmd
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", inv.container_id)
        .env("CNI_NETNS", inv.netns)
        .env("CNI_IFNAME", inv.ifname)
        .env("CNI_ARGS", args)
        .env("CNI_PATH", plugins.cni_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| perr(format!("running {}: {e}", bin.display())))?;
    let data = serde_json::to_vec(stdin).unwrap_or_default();
    if let Some(mut si) = child.stdin.take() {
        // a plugin that exits without reading its stdin is reported by its exit status
        let _ = si.write_all(&data);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| perr(format!("waiting for {}: {e}", bin.display())))?;
    tracing::debug!(plugin = %ty, command, status = %out.status, "CNI plugin ran");
    if out.status.success() {
        return Ok(out.stdout);
    }
    // the spec's error object on stdout; some plugins only write to stderr
    let msg = match serde_json::from_slice::<Value>(&out.stdout) {
        Ok(v) if v["msg"].is_string() => {
            let mut m = v["msg"].as_str().unwrap_or_default().to_string();
            if let Some(d) = v["details"].as_str().filter(|d| !d.is_empty()) {
                m.push_str(&format!(" ({d})"));
            }
            m
        }
        _ => {
            let e = String::from_utf8_lossy(&out.stderr);
            let last = e.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
            format!("{} {last}", out.status).trim().to_string()
        }
    };
    Err(perr(msg.replace('\n', " ")))
}

/// CNI ADD of every plugin of the chain; returns the last result.
pub fn add(
    plugins: &Plugins,
    conf: &NetworkConf,
    inv: &Invocation<'_>,
) -> Result<Value, PluginError> {
    let mut prev: Option<Value> = None;
    for p in &conf.plugins {
        let stdin = plugin_stdin(conf, p, prev.as_ref());
        let out = exec(plugins, "ADD", inv, &stdin)?;
        let v: Value = serde_json::from_slice(&out).map_err(|e| PluginError {
            plugin: p["type"].as_str().unwrap_or_default().to_string(),
            msg: format!("invalid result: {e}"),
        })?;
        prev = Some(v);
    }
    prev.ok_or_else(|| PluginError {
        plugin: String::new(),
        msg: format!("network {:?} has no plugins", conf.name),
    })
}

/// CNI DEL of every plugin of the chain, last first, with the ADD result as `prevResult` (spec
/// ≥ 0.4.0). Every plugin is called even when one fails; the first error is returned.
pub fn del(
    plugins: &Plugins,
    conf: &NetworkConf,
    inv: &Invocation<'_>,
    result: Option<&Value>,
) -> Result<(), PluginError> {
    let prev = prev_result(conf, result);
    let mut first_err = None;
    for p in conf.plugins.iter().rev() {
        let stdin = plugin_stdin(conf, p, prev);
        if let Err(e) = exec(plugins, "DEL", inv, &stdin) {
            tracing::warn!("{e}");
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// The DEL a main plugin that delegates addresses (ptp, bridge) does without a namespace: its
/// IPAM plugin's DEL, with the stdin the main plugin got (as CNI's `ipam.ExecDel` passes it
/// on). For rkt's built-in networks, whose one plugin rkt knows, it spares a plugin start.
pub fn ipam_del(
    plugins: &Plugins,
    conf: &NetworkConf,
    inv: &Invocation<'_>,
    result: Option<&Value>,
) -> Result<(), PluginError> {
    let Some(main) = conf.plugins.first() else {
        return Ok(());
    };
    let Some(ipam) = main["ipam"]["type"].as_str() else {
        return Ok(());
    };
    let prev = prev_result(conf, result);
    exec_as(plugins, ipam, "DEL", inv, &plugin_stdin(conf, main, prev)).map(drop)
}

/// The ADD result a DEL passes on as `prevResult`: only from CNI spec 0.4.0 on.
fn prev_result<'v>(conf: &NetworkConf, result: Option<&'v Value>) -> Option<&'v Value> {
    result.filter(|_| version_at_least(&conf.cni_version, (0, 4)))
}

/// What rkt uses from a CNI result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// First IPv4 address of the pod.
    pub ip: Option<Ipv4Addr>,
    /// Its prefix length.
    pub prefix: Option<u8>,
    /// Its gateway.
    pub gateway: Option<Ipv4Addr>,
    /// Name of the host-side interface (no `sandbox`), if the plugin reports one.
    pub host_if: Option<String>,
    /// DNS nameservers.
    pub nameservers: Vec<String>,
    /// DNS search domains.
    pub search: Vec<String>,
    /// DNS options.
    pub options: Vec<String>,
    /// DNS domain.
    pub domain: Option<String>,
}

fn cidr4(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, p) = s.split_once('/')?;
    Some((a.parse().ok()?, p.parse().ok().filter(|p| *p <= 32)?))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Summarise a result of any spec version (0.1/0.2 `ip4`, 0.3+ `ips`).
pub fn summarize(r: &Value) -> Summary {
    let mut s = Summary::default();
    let v4 = r["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| {
            let (a, p) = cidr4(ip["address"].as_str()?)?;
            Some((a, p, ip["gateway"].as_str().and_then(|g| g.parse().ok())))
        })
        .next()
        .or_else(|| {
            let (a, p) = cidr4(r["ip4"]["ip"].as_str()?)?;
            Some((
                a,
                p,
                r["ip4"]["gateway"].as_str().and_then(|g| g.parse().ok()),
            ))
        });
    if let Some((a, p, g)) = v4 {
        s.ip = Some(a);
        s.prefix = Some(p);
        s.gateway = g;
    }
    s.host_if = r["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["sandbox"].as_str().unwrap_or("").is_empty())
        .and_then(|i| i["name"].as_str().map(str::to_string));
    let dns = &r["dns"];
    s.nameservers = strings(&dns["nameservers"]);
    s.search = strings(&dns["search"]);
    s.options = strings(&dns["options"]);
    s.domain = dns["domain"]
        .as_str()
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    s
}

/// Dotted netmask of a prefix length (`24` → `255.255.255.0`).
pub fn mask(prefix: u8) -> Ipv4Addr {
    let bits = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    Ipv4Addr::from(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Network `n` (cniVersion 1.0.0) of one plugin of type `plugin`.
    fn conf(plugin: &str) -> NetworkConf {
        NetworkConf {
            name: "n".into(),
            source: "x".into(),
            cni_version: "1.0.0".into(),
            plugins: vec![json!({ "type": plugin })],
            rkt_masquerade: false,
        }
    }

    #[test]
    fn summaries_of_every_result_version() {
        let r = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "veth1"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
            "ips": [{"address": "fd00::2/64"}, {"address": "172.16.28.5/24", "gateway": "172.16.28.1", "interface": 1}],
            "dns": {"nameservers": ["10.0.0.53"], "search": ["a.b"], "domain": "b"}
        });
        let s = summarize(&r);
        assert_eq!(s.ip, Some(Ipv4Addr::new(172, 16, 28, 5)));
        assert_eq!(s.prefix, Some(24));
        assert_eq!(s.gateway, Some(Ipv4Addr::new(172, 16, 28, 1)));
        assert_eq!(s.host_if.as_deref(), Some("veth1"));
        assert_eq!(s.nameservers, ["10.0.0.53"]);
        assert_eq!(s.domain.as_deref(), Some("b"));
        let old = summarize(&json!({"ip4": {"ip": "10.1.0.3/16", "gateway": "10.1.0.1"}}));
        assert_eq!(old.ip, Some(Ipv4Addr::new(10, 1, 0, 3)));
        assert_eq!(old.prefix, Some(16));
        assert_eq!(summarize(&json!({})), Summary::default());
    }

    #[test]
    fn masks_and_versions() {
        assert_eq!(mask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(mask(16), Ipv4Addr::new(255, 255, 0, 0));
        assert_eq!(mask(32), Ipv4Addr::new(255, 255, 255, 255));
        assert_eq!(mask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert!(version_at_least("0.4.0", (0, 4)));
        assert!(version_at_least("1.0.0", (0, 4)));
        assert!(!version_at_least("0.3.1", (0, 4)));
    }

    #[test]
    fn chain_stdin_carries_name_version_and_prev_result() {
        let conf = conf("ptp");
        let prev = json!({"ips": []});
        let s = plugin_stdin(&conf, &conf.plugins[0], Some(&prev));
        assert_eq!(s["name"], "n");
        assert_eq!(s["cniVersion"], "1.0.0");
        assert_eq!(s["prevResult"], prev);
        assert_eq!(s["type"], "ptp");
    }

    #[test]
    fn a_failing_plugin_is_named_with_its_message() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("failer");
        std::fs::write(
            &p,
            "#!/bin/sh\ncat >/dev/null\necho '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"no luck\",\"details\":\"at all\"}'\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let plugins = Plugins::new(&[d.path().to_path_buf()]);
        let failer = conf("failer");
        let inv = Invocation {
            container_id: "c",
            netns: "/nonexistent",
            ifname: "eth0",
            args: "",
        };
        let e = add(&plugins, &failer, &inv).unwrap_err();
        assert_eq!(e.plugin, "failer");
        assert_eq!(e.msg, "no luck (at all)");
        let e = add(&plugins, &conf("nosuchplugin"), &inv).unwrap_err();
        assert!(e.to_string().contains("not found"), "{e}");
    }
}
