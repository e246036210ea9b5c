//! Pod networking: the sandbox's network namespace attached to CNI networks (rkt's built-in
//! `default` and `default-restricted`, or the user's `net.d` configurations), the pod's own
//! iptables chains for masquerade and `--port`, and their teardown — at pod exit by stage1, or
//! by `rkt gc` (through `rkt-stage1 gc`) when stage1 died.
//!
//! State is written ahead to `net-info.json` ([`NetInfo`]) before any plugin runs, and the
//! namespace is bind-mounted at `/run/netns/rkt-<uuid>` (so `ip netns` sees it), which keeps it
//! alive after the pod's processes are gone: a user's network gets DEL in the namespace ADD ran
//! in, so its plugins can undo everything (address, veth, their iptables rules). The built-in
//! networks' veths are left to the kernel, which deletes them with the namespace (see
//! [`teardown`]).

pub mod cni;
pub mod conf;
pub mod nat;
mod rtnl;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use stage1_abi::{paths, DnsConfig, NetAttachment, NetConfig, NetInfo, PodManifest, RuntimeConfig};

use crate::Error;

/// What can go wrong with the pod's networks.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A network configuration file is malformed.
    #[error("network configuration {source_name}: {msg}")]
    Conf {
        /// The file (or built-in name).
        source_name: String,
        /// What is wrong.
        msg: String,
    },
    /// `--net` names a network nobody defines.
    #[error("network {0:?} not found (no net.d configuration names it and it is not built in)")]
    UnknownNetwork(String),
    /// A plugin type that is a path.
    #[error("invalid CNI plugin type {0:?}")]
    PluginType(String),
    /// A plugin binary that is not installed.
    #[error("CNI plugin {ty:?} not found in {dirs} (apt-get install containernetworking-plugins)")]
    PluginMissing {
        /// The plugin type.
        ty: String,
        /// Where it was looked for.
        dirs: String,
    },
    /// A plugin failed.
    #[error("network {net:?}: {msg}")]
    Plugin {
        /// The network.
        net: String,
        /// The plugin's error.
        msg: String,
    },
    /// The address `--net=NAME:IP=…` asks for is taken.
    #[error("requested IP address {ip:?} is not available in network: {net}")]
    IpTaken {
        /// The address.
        ip: String,
        /// The network.
        net: String,
    },
    /// The pod's netns could not be bind-mounted.
    #[error("bind-mounting the pod's netns at {path}: {msg}")]
    BindNetns {
        /// The bind mount's path.
        path: String,
        /// The cause.
        msg: String,
    },
    /// `--port` names a port no app exposes.
    #[error("--port {name}: no app of the pod exposes a port named {name:?} (exposed: {exposed})")]
    UnknownPort {
        /// The port's name.
        name: String,
        /// The exposed ports (`none`).
        exposed: String,
    },
    /// `--port`'s host address is not IPv4.
    #[error("--port {name}: {ip:?} is not an IPv4 address")]
    PortHostIp {
        /// The port's name.
        name: String,
        /// The address.
        ip: String,
    },
    /// A port whose protocol cannot be forwarded.
    #[error("--port {name}: protocol {protocol:?} cannot be forwarded")]
    PortProtocol {
        /// The port's name.
        name: String,
        /// Its protocol.
        protocol: String,
    },
    /// `--port` with `--net=host|none`.
    #[error("--port needs a CNI network (not --net=host or --net=none)")]
    PortWithoutCni,
    /// `--port` and no network with an IPv4 address.
    #[error("--port: no network of the pod has an IPv4 address")]
    PortNoIpv4,
    /// iptables could not be run.
    #[error("running {cmd}: {source} (apt-get install iptables)")]
    IptablesRun {
        /// The command.
        cmd: String,
        /// The cause.
        source: std::io::Error,
    },
    /// iptables could not be waited for.
    #[error("waiting for {cmd}: {source}")]
    IptablesWait {
        /// The command.
        cmd: String,
        /// The cause.
        source: std::io::Error,
    },
    /// iptables failed.
    #[error("{cmd}: {msg}")]
    Iptables {
        /// The command.
        cmd: String,
        /// Its first line on stderr, or why it could not run.
        msg: String,
    },
}

/// Where pod network namespaces are bind-mounted (`ip netns` looks there).
pub const NETNS_DIR: &str = "/run/netns";

/// The bind mount of pod `uuid`'s network namespace.
pub fn netns_path(uuid: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(format!("rkt-{uuid}"))
}

/// A pod's networks once they are up.
#[derive(Debug, Clone)]
pub struct PodNet {
    /// What was saved to `net-info.json`.
    pub info: NetInfo,
    /// DNS settings a plugin returned (first network that returned any).
    pub dns: Option<DnsConfig>,
}

fn user_net_dirs(rc: &RuntimeConfig) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = [&rc.system_config, &rc.local_config]
        .into_iter()
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join("net.d"))
        .collect();
    if !rc.cni_conf_dir.is_empty() {
        dirs.push(PathBuf::from(&rc.cni_conf_dir));
    }
    dirs
}

fn plugin_dirs(rc: &RuntimeConfig) -> Vec<PathBuf> {
    [&rc.local_config, &rc.system_config]
        .into_iter()
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join("net.d").join("plugins"))
        .collect()
}

fn save(pod_dir: &Path, info: &NetInfo) -> Result<(), Error> {
    stage1_abi::write_json_atomic(&pod_dir.join(paths::NET_INFO), info).map_err(Error::from)
}

/// A port named by number, `<port>-<tcp|udp>` (a mutable pod's forwards are set before any app
/// exposes a port: the CRI's port mappings).
fn numbered_port(name: &str) -> Option<stage1_abi::Port> {
    let (port, proto) = name.split_once('-')?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    matches!(proto, "tcp" | "udp").then(|| stage1_abi::Port {
        name: name.to_string(),
        port,
        protocol: proto.to_string(),
    })
}

/// The `--port` forwards, resolved against the apps' exposed ports, or by number.
fn forwards(
    pod: &PodManifest,
    rc: &RuntimeConfig,
    pod_ip: Ipv4Addr,
) -> Result<Vec<nat::Forward>, Error> {
    let mut out = Vec::new();
    for f in &rc.ports {
        let numbered = numbered_port(&f.name);
        let port = pod
            .apps
            .iter()
            .flat_map(|a| a.ports.iter())
            .find(|p| p.name == f.name)
            .or(numbered.as_ref())
            .ok_or_else(|| {
                let known: Vec<&str> = pod
                    .apps
                    .iter()
                    .flat_map(|a| a.ports.iter().map(|p| p.name.as_str()))
                    .collect();
                NetError::UnknownPort {
                    name: f.name.clone(),
                    exposed: if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    },
                }
            })?;
        let host_ip = match &f.host_ip {
            Some(ip) => Some(ip.parse::<Ipv4Addr>().map_err(|_| NetError::PortHostIp {
                name: f.name.clone(),
                ip: ip.clone(),
            })?),
            None => None,
        };
        if !matches!(port.protocol.as_str(), "tcp" | "udp") {
            return Err(NetError::PortProtocol {
                name: f.name.clone(),
                protocol: port.protocol.clone(),
            }
            .into());
        }
        out.push(nat::Forward {
            protocol: port.protocol.clone(),
            host_ip,
            host_port: f.host_port,
            pod_ip,
            container_port: port.port,
        });
    }
    Ok(out)
}

/// The networks a pod will be attached to, resolved before anything is created.
#[derive(Debug, Clone)]
pub struct NetPlan {
    attach: Vec<conf::Attach>,
}

impl NetPlan {
    /// Whether a plugin may hand back DNS settings the apps' resolv.conf must wait for: rkt's
    /// built-in networks never do.
    pub fn may_return_dns(&self) -> bool {
        self.attach.iter().any(|a| a.conf.source != conf::BUILT_IN)
    }
}

/// Resolve the pod's networks and check what can be checked before anything is created
/// (network names and configurations, `--port` names). None for `host` and `none`.
pub fn plan(pod: &PodManifest, rc: &RuntimeConfig) -> Result<Option<NetPlan>, Error> {
    let NetConfig::Cni(requests) = &rc.net else {
        if !rc.ports.is_empty() {
            return Err(NetError::PortWithoutCni.into());
        }
        return Ok(None);
    };
    forwards(pod, rc, Ipv4Addr::UNSPECIFIED)?;
    let attach = conf::resolve(requests, &conf::load_user(&user_net_dirs(rc))?)?;
    Ok(Some(NetPlan { attach }))
}

/// rkt's message for a requested address that is taken, from host-local's.
fn plugin_error(net: &str, args: &str, e: &cni::PluginError) -> Error {
    if e.msg.contains("requested IP address") && e.msg.contains("not available") {
        if let Some(ip) = args.split(';').find_map(|kv| kv.strip_prefix("IP=")) {
            return NetError::IpTaken {
                ip: ip.to_string(),
                net: net.to_string(),
            }
            .into();
        }
    }
    NetError::Plugin {
        net: net.to_string(),
        msg: e.to_string(),
    }
    .into()
}

/// Attach the sandbox (PID `sandbox_pid`, already in its own network namespace) to the
/// planned CNI networks and install the pod's iptables chains. On error everything done so far
/// is undone.
pub fn setup(
    pod_dir: &Path,
    pod: &PodManifest,
    rc: &RuntimeConfig,
    plan: &NetPlan,
    sandbox_pid: Pid,
) -> Result<PodNet, Error> {
    let attach = &plan.attach;
    let plugins = cni::Plugins::new(&plugin_dirs(rc));
    let netns = netns_path(&pod.uuid);
    let mut info = NetInfo {
        netns: netns.display().to_string(),
        networks: attach
            .iter()
            .enumerate()
            .map(|(i, a)| NetAttachment {
                net_name: a.conf.name.clone(),
                net_conf: a.conf.source.clone(),
                plugin_path: a.conf.plugins[0]["type"]
                    .as_str()
                    .and_then(|t| plugins.find(t).ok())
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                if_name: format!("eth{i}"),
                args: a.args.clone(),
                conf: a.conf.to_json(),
                ..Default::default()
            })
            .collect(),
        // every chain this pod may get, written ahead so gc finds them whatever happens next
        nat_chains: nat::chain_names(&pod.uuid).to_vec(),
        nat_installed: None,
        active: true,
    };
    save(pod_dir, &info)?;
    let res = attach_all(pod_dir, pod, rc, sandbox_pid, &plugins, attach, &mut info);
    match res {
        Ok(dns) => Ok(PodNet { info, dns }),
        Err(e) => {
            if let Err(t) = teardown(pod_dir) {
                tracing::warn!("undoing the network set-up: {t}");
            }
            Err(e)
        }
    }
}

fn attach_all(
    pod_dir: &Path,
    pod: &PodManifest,
    rc: &RuntimeConfig,
    sandbox_pid: Pid,
    plugins: &cni::Plugins,
    attach: &[conf::Attach],
    info: &mut NetInfo,
) -> Result<Option<DnsConfig>, Error> {
    bind_netns(sandbox_pid, Path::new(&info.netns)).map_err(|e| NetError::BindNetns {
        path: info.netns.clone(),
        msg: e.to_string(),
    })?;
    // the masquerade of the networks rkt masquerades is checked while their plugins run
    let masq: Vec<nat::RuleCheck> = attach
        .iter()
        .filter(|a| a.conf.rkt_masquerade)
        .filter_map(|a| a.conf.subnet())
        .map(|subnet| nat::RuleCheck::masquerade(&subnet))
        .collect();
    // so is the guard of the host's loopback, which forwards open to the pod (below)
    let localnet = (!rc.ports.is_empty()).then(nat::RuleCheck::localnet);
    let mut dns = None;
    let mut plan = nat::Plan::default();
    let mut up: Vec<(bool, Ipv4Addr, Option<String>)> = Vec::new();
    for (i, a) in attach.iter().enumerate() {
        let inv = cni::Invocation {
            container_id: &pod.uuid,
            netns: &info.netns,
            ifname: &info.networks[i].if_name,
            args: &a.args,
        };
        let result = cni::add(plugins, &a.conf, &inv)
            .map_err(|e| plugin_error(&a.conf.name, &a.args, &e))?;
        let s = cni::summarize(&result);
        let n = &mut info.networks[i];
        n.ip = s.ip.map(|ip| ip.to_string());
        n.mask = s.prefix.map(|p| cni::mask(p).to_string());
        n.host_ip = s.gateway.map(|g| g.to_string());
        n.result = Some(result);
        save(pod_dir, info)?;
        tracing::debug!(net = %a.conf.name, ip = ?s.ip, "network up");
        if dns.is_none() && !s.nameservers.is_empty() {
            dns = Some(DnsConfig {
                servers: s.nameservers.clone(),
                search: s.search.clone(),
                options: s.options.clone(),
                domain: s.domain.clone(),
            });
        }
        if let (true, Some(dev)) = (a.conf.point_to_point(), &s.host_if) {
            // no forged source addresses from the pod (strict rp_filter; effective is the
            // maximum of `all` and the link's, so a host with `all` at 2 keeps it loose)
            let p = format!("/proc/sys/net/ipv4/conf/{dev}/rp_filter");
            std::fs::write(&p, "1").map_err(|e| Error::io(Path::new(&p), e))?;
        }
        if let Some(ip) = s.ip {
            up.push((a.conf.masquerades(), ip, s.host_if.clone()));
        }
    }
    if !rc.ports.is_empty() {
        // forwards go to the first network that masquerades, else the last one (as rkt)
        let chosen = up.iter().find(|u| u.0).or(up.last()).cloned();
        let (_, ip, host_if) = chosen.ok_or(NetError::PortNoIpv4)?;
        plan.forwards = forwards(pod, rc, ip)?;
        // the host's 127.0.0.1 may only leave through the pod's link with route_localnet, which
        // also lets the pod's packets for 127.0.0.0/8 in: the guard drops those first
        if let Some(guard) = localnet {
            guard.finish()?;
        }
        if let Some(dev) = host_if {
            let p = format!("/proc/sys/net/ipv4/conf/{dev}/route_localnet");
            std::fs::write(&p, "1").map_err(|e| Error::io(Path::new(&p), e))?;
        }
    }
    for m in masq {
        m.finish()?;
    }
    info.nat_installed = Some(nat::apply(&pod.uuid, &plan)?);
    save(pod_dir, info)?;
    Ok(dns)
}

/// Undo the pod's networking as `net-info.json` in `pod_dir` records it: iptables chains, CNI
/// DEL of every network (last first), the netns bind mount. Idempotent; nothing to do without
/// the file. Every step runs even if one fails; the first error is returned.
pub fn teardown(pod_dir: &Path) -> Result<(), Error> {
    let file = pod_dir.join(paths::NET_INFO);
    let mut info: NetInfo = match stage1_abi::read_json(&file) {
        Ok(i) => i,
        Err(stage1_abi::AbiError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Ok(())
        }
        Err(e) => return Err(e.into()),
    };
    if !info.active {
        return Ok(());
    }
    let uuid = pod_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut first: Option<Error> = None;
    // the iptables deletion waits for an RCU grace period: let it run meanwhile
    let removal = nat::start_removal(info.nat_installed.as_ref(), &info.nat_chains);
    // the plugin dirs of the pod's config dirs, as at ADD (runtime.json outlives the process)
    let extra = stage1_abi::read_json::<RuntimeConfig>(&pod_dir.join(paths::RUNTIME_CONFIG))
        .map(|rc| plugin_dirs(&rc))
        .unwrap_or_default();
    let plugins = cni::Plugins::new(&extra);
    for n in info.networks.iter().rev() {
        let conf = match conf::NetworkConf::from_json(&n.conf, &n.net_conf) {
            Ok(c) => c,
            Err(e) => {
                first.get_or_insert(e);
                continue;
            }
        };
        // A user's network gets DEL in the namespace (kept by the bind mount), so its plugins
        // can undo everything they did there. A built-in network's veth is left to the
        // kernel: deleting it waits for RCU grace periods (10–40 ms here), while the
        // namespace's death deletes it in the background once nobody holds the namespace.
        // Until then (an `ip netns exec`, a monitoring agent holds it), it is down and without
        // the host route the next pod given the address would otherwise be sent to; then
        // what ptp's DEL without a namespace does is left: host-local's DEL.
        let builtin = n.net_conf == conf::BUILT_IN;
        if builtin {
            let s = n.result.as_ref().map(cni::summarize).unwrap_or_default();
            if let Some(dev) = s.host_if {
                if let Err(e) = retire_host_veth(&dev, s.ip) {
                    first.get_or_insert(
                        NetError::Plugin {
                            net: n.net_name.clone(),
                            msg: format!("retiring the host veth {dev}: {e}"),
                        }
                        .into(),
                    );
                    continue;
                }
            }
        }
        let inv = cni::Invocation {
            container_id: &uuid,
            netns: if builtin { "" } else { info.netns.as_str() },
            ifname: &n.if_name,
            args: &n.args,
        };
        let res = if builtin {
            cni::ipam_del(&plugins, &conf, &inv, n.result.as_ref())
        } else {
            cni::del(&plugins, &conf, &inv, n.result.as_ref())
        };
        if let Err(e) = res {
            first.get_or_insert(
                NetError::Plugin {
                    net: n.net_name.clone(),
                    msg: e.to_string(),
                }
                .into(),
            );
        }
    }
    if let Err(e) = unbind_netns(Path::new(&info.netns)) {
        tracing::warn!("removing {}: {e}", info.netns);
        first.get_or_insert(Error::io(Path::new(&info.netns), e));
    }
    if let Err(e) = removal.wait() {
        tracing::warn!("removing the pod's iptables chains: {e}");
        first.get_or_insert(e);
    }
    if first.is_none() {
        info.active = false;
        save(pod_dir, &info)?;
    }
    first.map_or(Ok(()), Err)
}

/// Retire a built-in network's host veth `dev`: down, and without its `scope host` route to the
/// pod's address `ip`, which a down link keeps. Fine when the veth is gone.
fn retire_host_veth(dev: &str, ip: Option<Ipv4Addr>) -> std::io::Result<()> {
    let Some(index) = rtnl::ifindex(dev) else {
        return Ok(());
    };
    let r = rtnl::link_down(index).and_then(|()| match ip {
        Some(ip) => rtnl::del_host_route(ip, index),
        None => Ok(()),
    });
    match r {
        // deleted meanwhile (the namespace died)
        Err(_) if rtnl::ifindex(dev) != Some(index) => Ok(()),
        r => r,
    }
}

/// Bind-mount the network namespace of `pid` at `path` (created; its dir too).
fn bind_netns(pid: Pid, path: &Path) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let src = format!("/proc/{pid}/ns/net");
    nix::mount::mount(
        Some(src.as_str()),
        path,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(std::io::Error::from)
}

/// Undo [`bind_netns`]; fine when it is already gone.
fn unbind_netns(path: &Path) -> std::io::Result<()> {
    match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The DNS configuration the app's resolv.conf comes from: the `--dns*` flags when given,
/// else what a plugin returned; `--dns=none` wins over a plugin.
pub fn effective_dns<'a>(rc: &'a RuntimeConfig, net: Option<&'a PodNet>) -> Option<&'a DnsConfig> {
    if rc.dns.is_empty() {
        net.and_then(|n| n.dns.as_ref())
    } else {
        Some(&rc.dns)
    }
}
