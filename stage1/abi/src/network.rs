//! `net-info.json`: the pod's network state, written by stage1 before it calls any CNI plugin
//! and rewritten once each network is up. It is what `rkt list`/`rkt status` show and what
//! `rkt-stage1 gc` needs to tear the network down after stage1 died.

use serde::{Deserialize, Serialize};

/// The network state of one pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetInfo {
    /// Path of the pod's network namespace bind mount (`/run/netns/rkt-<uuid>`); it keeps the
    /// namespace alive after the pod died, so CNI DEL can still run in it.
    pub netns: String,
    /// The networks in interface order (`eth0`, `eth1`, …).
    pub networks: Vec<NetAttachment>,
    /// iptables chains (nat table) this pod may get, written ahead so gc can look for them
    /// whatever happened: its `--port` forwards, and the per-pod masquerade chain pods of rkt
    /// before 2026-12-02 had (the masquerade is now one chain per network, which pods do not
    /// own).
    #[serde(default)]
    pub nat_chains: Vec<String>,
    /// What iptables-restore installed, recorded once it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_installed: Option<NatRecord>,
    /// `true` from before the first CNI ADD until teardown finished: gc has work to do.
    pub active: bool,
}

/// One network the pod is attached to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetAttachment {
    /// Network name (`default`).
    pub net_name: String,
    /// Where the configuration came from (a file path or `built-in`).
    pub net_conf: String,
    /// The first plugin's binary.
    pub plugin_path: String,
    /// Interface name inside the pod.
    pub if_name: String,
    /// `CNI_ARGS` given with `--net=NAME:K=V;…`.
    #[serde(default)]
    pub args: String,
    /// The pod's first IPv4 address on this network, once it is up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Its netmask (`255.255.255.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
    /// The gateway (the host side) on this network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// The CNI network configuration list as it was executed (for DEL).
    pub conf: serde_json::Value,
    /// The CNI result of ADD (the `prevResult` of DEL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

/// The pod's own iptables rules as installed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NatRecord {
    /// Chains created.
    pub chains: Vec<String>,
    /// Rules in built-in chains that jump to them, in iptables-save syntax (`POSTROUTING -s …`).
    pub jumps: Vec<String>,
}
