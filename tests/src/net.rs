//! Pod networking seen from the host, for tests and for [`TestCtx`](crate::TestCtx)'s clean-up.
//!
//! Independent of the product code on purpose (no `rkt-stage1`, no stage1 crate): it knows the
//! names rkt gives things — the netns bind mount `/run/netns/rkt-<uuid>`, the nat chains
//! `RKT-*-<uuid8>` — and reads the host's state with iproute2 (`-j` JSON), `iptables-save` and
//! host-local's allocation files.
//!
//! * [`clean_pod_networks`]: remove what pods with the given UUIDs left (netns bind mounts,
//!   nat chains and the jumps to them, host-local allocations).
//! * [`pod_net_leaks`]: describe what is left of a pod (the same things plus its host veths).
//! * [`netns_ifaces`] / [`netns_routes`]: `ip -n rkt-<uuid> -j addr|route`, parsed.

use nix::mount::{umount2, MntFlags};
use serde_json::Value;
use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where pod network namespaces are bind-mounted.
pub const NETNS_DIR: &str = "/run/netns";
/// host-local's allocation store: one dir per network, one file per address (named by the
/// address, holding the container ID — the pod UUID — and the interface name).
pub const HOST_LOCAL_DIR: &str = "/var/lib/cni/networks";

/// The netns bind mount of pod `uuid`.
pub fn netns_path(uuid: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(format!("rkt-{uuid}"))
}

/// The first 8 hex digits of a UUID (dashes dropped): the suffix of the pod's nat chains.
pub fn uuid8(uuid: &str) -> String {
    uuid.chars().filter(|c| *c != '-').take(8).collect()
}

/// Whether a nat chain name is one of pod `u8`'s: `RKT-<anything>-<u8>`.
pub fn is_pod_chain(chain: &str, u8: &str) -> bool {
    !u8.is_empty()
        && chain.starts_with("RKT-")
        && chain
            .strip_suffix(u8)
            .is_some_and(|rest| rest.len() > 4 && rest.ends_with('-'))
}

/// `iptables-save -t nat` ("" when iptables is missing or fails).
pub fn nat_table() -> String {
    Command::new("iptables-save")
        .args(["-t", "nat"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The `iptables-restore --noflush` input that removes the nat chains of the pods `uuids`
/// (`RKT-*-<uuid8>`) and every rule outside them that jumps to them, from `saved`
/// (`iptables-save -t nat` output). Also returns the chains it removes. None when nothing of
/// those pods is in `saved`.
pub fn nat_cleanup_batch(saved: &str, uuids: &[String]) -> Option<(String, Vec<String>)> {
    let shorts: Vec<String> = uuids.iter().map(|u| uuid8(u)).collect();
    let ours = |c: &str| shorts.iter().any(|s| is_pod_chain(c, s));
    let mut chains = Vec::new();
    let mut deletes = Vec::new();
    let mut in_nat = false;
    for line in saved.lines() {
        if let Some(t) = line.strip_prefix('*') {
            in_nat = t.trim() == "nat";
            continue;
        }
        if !in_nat {
            continue;
        }
        if let Some(decl) = line.strip_prefix(':') {
            let name = decl.split_whitespace().next().unwrap_or_default();
            if ours(name) {
                chains.push(name.to_string());
            }
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let chain = rule.split_whitespace().next().unwrap_or_default();
            if ours(chain) {
                continue; // goes with -F
            }
            let target = rule
                .rsplit_once(" -j ")
                .or_else(|| rule.rsplit_once(" -g "))
                .and_then(|(_, t)| t.split_whitespace().next())
                .unwrap_or_default();
            if ours(target) {
                deletes.push(format!("-D {rule}"));
            }
        }
    }
    if chains.is_empty() && deletes.is_empty() {
        return None;
    }
    let mut s = String::from("*nat\n");
    for d in &deletes {
        s.push_str(d);
        s.push('\n');
    }
    for c in &chains {
        s.push_str(&format!("-F {c}\n"));
    }
    for c in &chains {
        s.push_str(&format!("-X {c}\n"));
    }
    s.push_str("COMMIT\n");
    Some((s, chains))
}

/// Whether a file name in a host-local network dir is an allocation (named by an address), not
/// its `lock` or `last_reserved_ip.N`.
pub fn is_allocation_name(name: &str) -> bool {
    name.parse::<std::net::IpAddr>().is_ok()
}

/// host-local allocation files (in any network) whose content names one of `uuids`.
pub fn allocations_of(uuids: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if uuids.is_empty() {
        return out;
    }
    let Ok(nets) = fs::read_dir(HOST_LOCAL_DIR) else {
        return out;
    };
    for net in nets.flatten() {
        let Ok(files) = fs::read_dir(net.path()) else {
            continue;
        };
        for f in files.flatten() {
            if !is_allocation_name(&f.file_name().to_string_lossy()) {
                continue;
            }
            if let Ok(s) = fs::read_to_string(f.path()) {
                if uuids.iter().any(|u| s.contains(u.as_str())) {
                    out.push(f.path());
                }
            }
        }
    }
    out.sort();
    out
}

/// Remove what the pods `uuids` left of their networking: unmount (detached) and remove their
/// `/run/netns/rkt-<uuid>` (the namespace, and with it the pod ends of its veths, goes once
/// nothing holds it), remove their nat chains and the jumps to them, and their host-local
/// allocations. Call it after the pods' processes are dead and while their UUIDs are still
/// known. Returns what it had to remove ("" when nothing).
pub fn clean_pod_networks(uuids: &[String]) -> String {
    let mut report = Vec::new();
    if uuids.is_empty() {
        return String::new();
    }
    let mut netns = 0;
    for u in uuids {
        let p = netns_path(u);
        if fs::symlink_metadata(&p).is_ok() {
            let _ = umount2(&p, MntFlags::MNT_DETACH);
            if fs::remove_file(&p).is_ok() {
                netns += 1;
            }
        }
    }
    if netns > 0 {
        report.push(format!("removed {netns} netns bind mount(s)"));
    }
    if let Some((batch, chains)) = nat_cleanup_batch(&nat_table(), uuids) {
        if restore_nat(&batch) {
            report.push(format!(
                "removed iptables nat chains {chains:?} and their jumps"
            ));
        } else {
            report.push("FAILED to remove iptables nat rules".to_string());
        }
    }
    let allocs = allocations_of(uuids);
    let mut removed = 0;
    for a in &allocs {
        if fs::remove_file(a).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        report.push(format!("removed {removed} host-local allocation(s)"));
    }
    report.join(", ")
}

fn restore_nat(batch: &str) -> bool {
    let Ok(mut child) = Command::new("iptables-restore")
        .args(["-w", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    if let Some(mut si) = child.stdin.take() {
        let _ = si.write_all(batch.as_bytes());
    }
    child.wait().is_ok_and(|s| s.success())
}

/// Whether a network interface exists in the host's namespace.
pub fn host_link_exists(name: &str) -> bool {
    !name.is_empty() && Path::new("/sys/class/net").join(name).exists()
}

/// Whether host interface `name` exists and is administratively up (`IFF_UP` in its flags).
pub fn link_is_up(name: &str) -> bool {
    let f = Path::new("/sys/class/net").join(name).join("flags");
    fs::read_to_string(f)
        .ok()
        .and_then(|s| u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|flags| flags & 1 != 0)
}

/// `ip link del NAME` (quiet; false when it failed, e.g. already gone).
pub fn delete_link(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "del", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Host-side interface names in a pod's `net-info.json` text: every
/// `networks[].result.interfaces[]` entry without a `sandbox`.
pub fn host_ifaces_in_net_info(json: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    v["networks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|n| n["result"]["interfaces"].as_array().into_iter().flatten())
        .filter(|i| i["sandbox"].as_str().unwrap_or("").is_empty())
        .filter_map(|i| i["name"].as_str().map(str::to_string))
        .collect()
}

/// Host-side interfaces of the pod in `pod_dir` (from its `net-info.json`; empty without one).
pub fn host_ifaces_of_pod(pod_dir: &Path) -> Vec<String> {
    fs::read_to_string(pod_dir.join("net-info.json"))
        .map(|s| host_ifaces_in_net_info(&s))
        .unwrap_or_default()
}

/// What is left on the host of pod `uuid`'s networking: its netns bind mount, nat rules or
/// chains naming its uuid8, host-local allocations naming it, and any of `host_ifs` (its host
/// veths, see [`host_ifaces_of_pod`]) still present. Empty when nothing leaked.
pub fn pod_net_leaks(uuid: &str, host_ifs: &[String]) -> Vec<String> {
    net_leaks(&[(uuid.to_string(), host_ifs.to_vec())])
}

/// [`pod_net_leaks`] of many pods (`(uuid, host interfaces)`), reading iptables once.
pub fn net_leaks(pods: &[(String, Vec<String>)]) -> Vec<String> {
    let mut out = Vec::new();
    let nat = nat_table();
    let uuids: Vec<String> = pods.iter().map(|p| p.0.clone()).collect();
    for (uuid, host_ifs) in pods {
        let p = netns_path(uuid);
        if fs::symlink_metadata(&p).is_ok() {
            out.push(format!("{} exists", p.display()));
        }
        let short = uuid8(uuid);
        for l in nat.lines() {
            if l.contains(&short) {
                out.push(format!("iptables: {l}"));
            }
        }
        for i in host_ifs {
            if host_link_exists(i) {
                out.push(format!("host interface {i} of pod {uuid} exists"));
            }
        }
    }
    for a in allocations_of(&uuids) {
        out.push(format!("host-local allocation {}", a.display()));
    }
    out
}

/// One interface of `ip -j addr`.
#[derive(Debug, Clone, PartialEq)]
pub struct Iface {
    /// Name (`eth0`).
    pub name: String,
    /// IPv4 addresses with their prefix lengths.
    pub ipv4: Vec<(Ipv4Addr, u8)>,
    /// MTU.
    pub mtu: Option<u64>,
}

/// Parse `ip -j addr` output.
pub fn parse_ip_addr(json: &str) -> Vec<Iface> {
    let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .map(|i| Iface {
            name: i["ifname"].as_str().unwrap_or_default().to_string(),
            ipv4: i["addr_info"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["family"] == "inet")
                .filter_map(|a| {
                    Some((
                        a["local"].as_str()?.parse().ok()?,
                        u8::try_from(a["prefixlen"].as_u64()?).ok()?,
                    ))
                })
                .collect(),
            mtu: i["mtu"].as_u64(),
        })
        .collect()
}

/// One route of `ip -j route`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// `default` or a prefix (`172.16.28.0/24`) or an address.
    pub dst: String,
    /// The gateway, if any.
    pub gateway: Option<String>,
    /// The device.
    pub dev: String,
}

/// Parse `ip -j route` output.
pub fn parse_ip_route(json: &str) -> Vec<Route> {
    let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .map(|r| Route {
            dst: r["dst"].as_str().unwrap_or_default().to_string(),
            gateway: r["gateway"].as_str().map(str::to_string),
            dev: r["dev"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

fn ip_json(uuid: &str, what: &str) -> String {
    let name = format!("rkt-{uuid}");
    crate::run_ok(Command::new("ip").args(["-n", &name, "-j", what]))
}

/// `ip -n rkt-<uuid> -j addr`, parsed. Panics when `ip` fails (no such netns).
pub fn netns_ifaces(uuid: &str) -> Vec<Iface> {
    parse_ip_addr(&ip_json(uuid, "addr"))
}

/// `ip -n rkt-<uuid> -j route` (main table, IPv4), parsed. Panics when `ip` fails.
pub fn netns_routes(uuid: &str) -> Vec<Route> {
    parse_ip_route(&ip_json(uuid, "route"))
}

/// The host's main-table routes whose destination is exactly `ip`/32 (`ip -j route show exact`).
pub fn host_routes_to(ip: &str) -> Vec<Route> {
    parse_ip_route(&crate::run_ok(Command::new("ip").args([
        "-j",
        "route",
        "show",
        "exact",
        &format!("{ip}/32"),
    ])))
}

/// Whether `ip` lies in `cidr` (`a.b.c.d/n`).
pub fn in_subnet(ip: Ipv4Addr, cidr: &str) -> bool {
    let Some((net, len)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(len)) = (net.parse::<Ipv4Addr>(), len.parse::<u32>()) else {
        return false;
    };
    if len > 32 {
        return false;
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(ip) & mask == u32::from(net) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9";
    const OTHER: &str = "99999999-0000-4000-8000-000000000000";

    #[test]
    fn pod_chain_names() {
        assert_eq!(uuid8(U), "0a1b2c3d");
        assert!(is_pod_chain("RKT-MASQ-0a1b2c3d", "0a1b2c3d"));
        assert!(is_pod_chain("RKT-PFWD-DNAT-0a1b2c3d", "0a1b2c3d"));
        assert!(!is_pod_chain("RKT-0a1b2c3d", "0a1b2c3d"));
        assert!(!is_pod_chain("CNI-MASQ-0a1b2c3d", "0a1b2c3d"));
        assert!(!is_pod_chain("RKT-MASQ-0a1b2c3dx", "0a1b2c3d"));
        assert!(!is_pod_chain("RKT-MASQ-", ""));
    }

    #[test]
    fn nat_batch_removes_only_the_pods_chains_and_jumps() {
        let saved = format!(
            "# Generated by iptables-save\n*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
             :POSTROUTING ACCEPT [0:0]\n:RKT-MASQ-0a1b2c3d - [0:0]\n:RKT-PFWD-DNAT-0a1b2c3d - [0:0]\n\
             :RKT-MASQ-99999999 - [0:0]\n\
             -A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment \"rkt pod {U}\" -j RKT-PFWD-DNAT-0a1b2c3d\n\
             -A POSTROUTING -s 172.16.28.7/32 -m comment --comment \"rkt pod {U}\" -j RKT-MASQ-0a1b2c3d\n\
             -A POSTROUTING -s 172.16.28.8/32 -m comment --comment \"rkt pod {OTHER}\" -j RKT-MASQ-99999999\n\
             -A POSTROUTING -m comment --comment \"rkt pod {U}\" -j MASQUERADE\n\
             -A RKT-MASQ-0a1b2c3d ! -d 224.0.0.0/4 -j MASQUERADE\n\
             -A RKT-MASQ-99999999 ! -d 224.0.0.0/4 -j MASQUERADE\n\
             COMMIT\n# Completed\n*filter\n:RKT-MASQ-0a1b2c3d - [0:0]\nCOMMIT\n"
        );
        let (b, chains) = nat_cleanup_batch(&saved, &[U.to_string()]).unwrap();
        assert_eq!(chains, ["RKT-MASQ-0a1b2c3d", "RKT-PFWD-DNAT-0a1b2c3d"]);
        assert!(b.starts_with("*nat\n"));
        assert!(b.ends_with("COMMIT\n"));
        assert_eq!(b.matches("-D PREROUTING").count(), 1);
        assert_eq!(b.matches("-D POSTROUTING").count(), 1);
        assert!(
            !b.contains("-j MASQUERADE\n"),
            "a rule that only names the UUID is not ours to judge: {b}"
        );
        assert!(b.contains(&format!(
            "-D POSTROUTING -s 172.16.28.7/32 -m comment --comment \"rkt pod {U}\" -j RKT-MASQ-0a1b2c3d\n"
        )));
        assert!(!b.contains("99999999"), "{b}");
        assert!(
            !b.contains("-D RKT-"),
            "rules inside our chains go with -F: {b}"
        );
        let fx = b.find("-F RKT-MASQ-0a1b2c3d").unwrap();
        assert!(b.find("-D POSTROUTING").unwrap() < fx);
        assert!(fx < b.find("-X RKT-MASQ-0a1b2c3d").unwrap());
        assert!(nat_cleanup_batch(&saved, &[]).is_none());
        assert!(nat_cleanup_batch("*nat\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n", &[U.into()]).is_none());
    }

    #[test]
    fn allocation_names() {
        assert!(is_allocation_name("172.16.28.5"));
        assert!(is_allocation_name("fd00::5"));
        assert!(!is_allocation_name("lock"));
        assert!(!is_allocation_name("last_reserved_ip.0"));
    }

    #[test]
    fn host_ifaces_from_net_info() {
        let j = r#"{"netns":"/run/netns/rkt-x","networks":[
            {"netName":"a","result":{"interfaces":[{"name":"veth1"},{"name":"eth0","sandbox":"/run/netns/rkt-x"}]}},
            {"netName":"b","result":{"interfaces":[{"name":"br0"},{"name":"veth2","mac":"aa"},{"name":"eth1","sandbox":"/x"}]}},
            {"netName":"c"}],"active":true}"#;
        assert_eq!(host_ifaces_in_net_info(j), ["veth1", "br0", "veth2"]);
        assert!(host_ifaces_in_net_info("not json").is_empty());
    }

    #[test]
    fn ip_json_parsing() {
        let a = r#"[{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8},{"family":"inet6","local":"::1","prefixlen":128}]},
            {"ifindex":2,"link_index":58,"ifname":"eth0","mtu":1400,"addr_info":[{"family":"inet","local":"172.16.28.10","prefixlen":24}]}]"#;
        let i = parse_ip_addr(a);
        assert_eq!(i.len(), 2);
        assert_eq!(i[0].name, "lo");
        assert_eq!(i[0].ipv4, [(Ipv4Addr::LOCALHOST, 8)]);
        assert_eq!(i[1].ipv4, [(Ipv4Addr::new(172, 16, 28, 10), 24)]);
        assert_eq!((i[0].mtu, i[1].mtu), (None, Some(1400)));
        let r = parse_ip_route(
            r#"[{"dst":"default","gateway":"172.16.28.1","dev":"eth0","flags":[]},{"dst":"172.16.28.1","dev":"eth0","scope":"link"}]"#,
        );
        assert_eq!(r[0].dst, "default");
        assert_eq!(r[0].gateway.as_deref(), Some("172.16.28.1"));
        assert_eq!(r[1].gateway, None);
        assert!(parse_ip_addr("").is_empty());
    }

    #[test]
    fn subnets() {
        assert!(in_subnet(Ipv4Addr::new(172, 16, 28, 9), "172.16.28.0/24"));
        assert!(!in_subnet(Ipv4Addr::new(172, 16, 29, 9), "172.16.28.0/24"));
        assert!(in_subnet(Ipv4Addr::new(172, 31, 200, 1), "172.31.0.0/16"));
        assert!(in_subnet(Ipv4Addr::new(1, 2, 3, 4), "0.0.0.0/0"));
        assert!(!in_subnet(Ipv4Addr::new(1, 2, 3, 4), "junk"));
    }
}
