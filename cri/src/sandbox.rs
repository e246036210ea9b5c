//! How a sandbox's pod runs: its [`stage0::RunRequest`], from the sandbox record the server
//! wrote (`pod-run` builds it in the detached process that becomes the pod).

use std::path::Path;
use std::time::Duration;

use stage0::request::{DnsConfig, PortForward};
use stage0::{Ipc, RunRequest};

use crate::state::Records;

/// The network a pod joins when the server's `--net` is empty: the first network of the CNI
/// conf dir (lexical file order, as the kubelet's runtimes pick it), else rkt's `default`.
pub fn default_net(cni_conf_dir: &Path) -> String {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(cni_conf_dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| {
        p.extension()
            .is_some_and(|e| e == "conf" || e == "conflist" || e == "json")
    });
    files.sort();
    files
        .iter()
        .find_map(|f| {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(f).ok()?).ok()?;
            v.get("name")?.as_str().map(str::to_string)
        })
        .unwrap_or_else(|| "default".into())
}

/// The run flags of sandbox `uuid`'s pod; `net` is the server's `--net` (a CNI network; empty:
/// [`default_net`] of `cni_conf_dir`), `cni_conf_dir` the CNI conf dir it reads too.
pub fn run_request(
    data: &Path,
    uuid: &str,
    net: &str,
    cni_conf_dir: &Path,
) -> Result<RunRequest, String> {
    let rec = Records::new(data)
        .sandbox(uuid)
        .ok_or_else(|| format!("no CRI record of pod sandbox {uuid}"))?;
    let net = if rec.host_network {
        stage0::request::NetConfig::Host
    } else if net.is_empty() {
        stage0::flags::parse_net(&default_net(cni_conf_dir)).map_err(|e| e.to_string())?
    } else {
        stage0::flags::parse_net(net).map_err(|e| e.to_string())?
    };
    Ok(RunRequest {
        net,
        hostname: (!rec.hostname.is_empty()).then(|| rec.hostname.clone()),
        ipc: if rec.host_ipc {
            Ipc::Host
        } else {
            Ipc::Private
        },
        stop_timeout: Duration::from_secs(10),
        dns: DnsConfig {
            servers: rec.dns.0.clone(),
            search: rec.dns.1.clone(),
            options: rec.dns.2.clone(),
            domain: None,
        },
        ports: if rec.host_network {
            Vec::new()
        } else {
            rec.ports
                .iter()
                .map(|p| PortForward {
                    name: format!("{}-{}", p.container_port, p.protocol),
                    host_ip: (!p.host_ip.is_empty()).then(|| p.host_ip.clone()),
                    host_port: p.host_port,
                })
                .collect()
        },
        host_pid: rec.host_pid,
        sysctls: rec
            .sysctls
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        cni_conf_dir: cni_conf_dir.is_dir().then(|| cni_conf_dir.to_path_buf()),
        ..Default::default()
    })
}
