//! rkt's iptables rules (nat table). A network rkt masquerades itself (the built-in `default`)
//! gets one chain for its subnet, `RKT-MASQ-NET-<subnet hash>`, installed by the first pod that
//! finds it missing and left in place, as Docker and netavark keep one masquerade rule per
//! network: a pod's start only checks it (beside its CNI ADD) and its end has nothing to
//! remove, where a per-pod chain cost an `iptables-restore` each way and the removal, an
//! nftables deletion, waits for an RCU grace period (13–24 ms here). The `--port` forwards are
//! the pod's own chains, named as rkt named them (`RKT-PFWD-DNAT-<uuid8>`, …), applied and
//! removed with one `iptables-restore --noflush` each. (Pods of rkt before 2026-12-02 have a
//! per-pod `RKT-MASQ-<uuid8>` chain, which their recorded removal still undoes.)

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};

use stage1_abi::NatRecord;

use super::NetError;
use crate::Error;

/// One `--port` forward, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Only this host address forwards (any local address when None).
    pub host_ip: Option<Ipv4Addr>,
    /// Host port.
    pub host_port: u16,
    /// Pod address the traffic goes to.
    pub pod_ip: Ipv4Addr,
    /// Port in the pod.
    pub container_port: u16,
}

/// What to install for one pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Port forwards.
    pub forwards: Vec<Forward>,
}

/// The masquerade chain of a network with subnet `subnet` (≤ 28 characters, iptables' limit).
pub fn network_masq_chain(subnet: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = hex::encode(Sha256::digest(subnet.as_bytes()));
    format!("RKT-MASQ-NET-{}", &h[..12])
}

/// The POSTROUTING rule (without `-A`/`-C`) sending `subnet`'s traffic to its chain.
fn masq_jump(subnet: &str) -> Vec<String> {
    [
        "POSTROUTING",
        "-s",
        subnet,
        "-m",
        "comment",
        "--comment",
        &format!("rkt network {subnet}"),
        "-j",
        &network_masq_chain(subnet),
    ]
    .map(str::to_string)
    .to_vec()
}

/// The iptables-restore input installing `subnet`'s masquerade: traffic from the subnet to
/// itself is left alone, traffic leaving it (but multicast) is masqueraded. Declaring the chain
/// flushes it if it exists, so a chain that lost its jump is refilled, not doubled.
pub fn masq_batch(subnet: &str) -> String {
    let chain = network_masq_chain(subnet);
    let jump = restore_words(&masq_jump(subnet));
    format!(
        "*nat\n:{chain} - [0:0]\n-A {chain} -d {subnet} -j ACCEPT\n\
         -A {chain} ! -d 224.0.0.0/4 -j MASQUERADE\n-A {jump}\nCOMMIT\n"
    )
}

/// Where concurrent pods serialise installing a shared rule (check, then install).
const MASQ_LOCK: &str = "/run/rkt/masquerade.lock";

/// The filter chain dropping packets for the host's loopback range that arrive on any other
/// interface (CVE-2020-8558): `--port` sets `route_localnet=1` on the pod's host-side link so
/// that the host's `127.0.0.1:PORT` forwards into the pod, which would also let the pod (with
/// `CAP_NET_RAW`, a default capability) reach services bound to the host's 127.0.0.1. The rule is
/// the kubelet's: only new connections are dropped, so replies of a forward still come back.
pub const LOCALNET_CHAIN: &str = "RKT-LOCALNET";

/// The INPUT rule (without `-A`/`-C`/`-I`) sending packets to [`LOCALNET_CHAIN`].
fn localnet_jump() -> Vec<String> {
    [
        "INPUT",
        "-m",
        "comment",
        "--comment",
        "rkt: no host loopback from pods",
        "-j",
        LOCALNET_CHAIN,
    ]
    .map(str::to_string)
    .to_vec()
}

/// Words joined for iptables-restore, quoting those with spaces.
fn restore_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if w.contains(' ') {
                format!("\"{w}\"")
            } else {
                w.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The iptables-restore input installing [`LOCALNET_CHAIN`] first in INPUT. Declaring the chain
/// flushes it if it exists, so a chain that lost its jump is refilled, not doubled.
pub fn localnet_batch() -> String {
    let jump = restore_words(&localnet_jump()[1..]);
    format!(
        "*filter\n:{LOCALNET_CHAIN} - [0:0]\n\
         -A {LOCALNET_CHAIN} ! -i lo -d 127.0.0.0/8 -m conntrack \
         ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP\n-I INPUT 1 {jump}\nCOMMIT\n"
    )
}

/// The check that a shared rule (a network's masquerade, the loopback guard) is in place, started
/// beside the pod's CNI ADD; [`RuleCheck::finish`] installs it when the check found it missing.
pub struct RuleCheck {
    table: &'static str,
    jump: Vec<String>,
    batch: String,
    child: Option<Child>,
}

impl RuleCheck {
    /// Start `iptables -C` of `subnet`'s masquerade jump (which exists only with its chain).
    pub fn masquerade(subnet: &str) -> RuleCheck {
        RuleCheck::start("nat", masq_jump(subnet), masq_batch(subnet))
    }

    /// Start `iptables -C` of the [`LOCALNET_CHAIN`] jump.
    pub fn localnet() -> RuleCheck {
        RuleCheck::start("filter", localnet_jump(), localnet_batch())
    }

    fn start(table: &'static str, jump: Vec<String>, batch: String) -> RuleCheck {
        let child = spawn_check(table, &jump);
        RuleCheck {
            table,
            jump,
            batch,
            child,
        }
    }

    /// Install the rule if the check found it missing. Concurrent pods take turns; the one that
    /// waited checks again.
    pub fn finish(mut self) -> Result<(), Error> {
        if passed(self.child.take()) {
            return Ok(());
        }
        let lock = lock_masq()?;
        if passed(spawn_check(self.table, &self.jump)) {
            return Ok(());
        }
        run("iptables-restore", &["-w", "--noflush"], Some(&self.batch))?;
        tracing::debug!(table = self.table, jump = ?self.jump, "shared rule installed");
        drop(lock);
        Ok(())
    }
}

impl Drop for RuleCheck {
    /// Not finished (the set-up failed first): collect the check.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }
}

/// Whether a started check found the jump (a check that could not start did not).
fn passed(check: Option<Child>) -> bool {
    check.is_some_and(|c| wait("iptables", c).is_ok())
}

fn spawn_check(table: &str, jump: &[String]) -> Option<Child> {
    let mut args = vec!["-w", "-t", table, "-C"];
    args.extend(jump.iter().map(String::as_str));
    spawn("iptables", &args, None).ok()
}

fn lock_masq() -> Result<nix::fcntl::Flock<std::fs::File>, Error> {
    let p = std::path::Path::new(MASQ_LOCK);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(p)
        .map_err(|e| Error::io(p, e))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::io(p, e.into()))
}

/// The chain names of pod `uuid`: masquerade (only pods of rkt before 2026-12-02 have it; gc
/// still looks for it), DNAT, SNAT.
pub fn chain_names(uuid: &str) -> [String; 3] {
    let short: String = uuid.chars().filter(|c| *c != '-').take(8).collect();
    [
        format!("RKT-MASQ-{short}"),
        format!("RKT-PFWD-DNAT-{short}"),
        format!("RKT-PFWD-SNAT-{short}"),
    ]
}

/// The iptables-restore input installing `plan`; also returns what it creates.
pub fn add_batch(uuid: &str, plan: &Plan) -> (String, NatRecord) {
    let [_, dnat, snat] = chain_names(uuid);
    let comment = format!("-m comment --comment \"rkt pod {uuid}\"");
    let mut chains = Vec::new();
    let mut rules = Vec::new();
    if !plan.forwards.is_empty() {
        chains.push(dnat.clone());
        chains.push(snat.clone());
        for hook in ["PREROUTING", "OUTPUT"] {
            rules.push(format!(
                "-A {hook} -m addrtype --dst-type LOCAL {comment} -j {dnat}"
            ));
        }
        rules.push(format!("-A POSTROUTING {comment} -j {snat}"));
        for f in &plan.forwards {
            let dst = f
                .host_ip
                .map(|ip| format!(" -d {ip}/32"))
                .unwrap_or_default();
            let p = &f.protocol;
            rules.push(format!(
                "-A {dnat}{dst} -p {p} -m {p} --dport {} -j DNAT --to-destination {}:{}",
                f.host_port, f.pod_ip, f.container_port
            ));
            // connections from the host's 127.0.0.1 need a source the pod can answer
            rules.push(format!(
                "-A {snat} -s 127.0.0.1/32 -d {}/32 -p {p} -m {p} --dport {} -j MASQUERADE",
                f.pod_ip, f.container_port
            ));
        }
    }
    let mut s = String::from("*nat\n");
    for c in &chains {
        s.push_str(&format!(":{c} - [0:0]\n"));
    }
    for r in &rules {
        s.push_str(r);
        s.push('\n');
    }
    s.push_str("COMMIT\n");
    let jumps = rules
        .iter()
        .filter_map(|r| r.strip_prefix("-A "))
        .filter(|r| !chains.iter().any(|c| r.starts_with(&format!("{c} "))))
        .map(str::to_string)
        .collect();
    (s, NatRecord { chains, jumps })
}

/// The iptables-restore input undoing exactly `rec`.
pub fn exact_del_batch(rec: &NatRecord) -> String {
    removal_batch(&rec.jumps, &rec.chains)
}

/// `*nat`: delete the rules `jumps` (`-A` rule specs without the `-A`), then flush and delete
/// `chains`.
fn removal_batch(jumps: &[String], chains: &[String]) -> String {
    let mut s = String::from("*nat\n");
    for j in jumps {
        s.push_str(&format!("-D {j}\n"));
    }
    for c in chains {
        s.push_str(&format!("-F {c}\n"));
    }
    for c in chains {
        s.push_str(&format!("-X {c}\n"));
    }
    s.push_str("COMMIT\n");
    s
}

/// The iptables-restore input removing `chains` and every rule that jumps to them, from the
/// current `iptables-save -t nat` output. None when nothing of them is left.
pub fn del_batch(saved: &str, chains: &[String]) -> Option<String> {
    let ours = |name: &str| chains.iter().any(|c| c == name);
    let mut present = Vec::new();
    let mut jumps = Vec::new();
    for line in saved.lines() {
        if let Some(decl) = line.strip_prefix(':') {
            let name = decl.split_whitespace().next().unwrap_or_default();
            if ours(name) {
                present.push(name.to_string());
            }
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let mut words = rule.split_whitespace();
            let chain = words.next().unwrap_or_default();
            let target = rule
                .rsplit_once(" -j ")
                .map(|(_, t)| t.split_whitespace().next().unwrap_or_default())
                .unwrap_or_default();
            if !ours(chain) && ours(target) {
                jumps.push(rule.to_string());
            }
        }
    }
    if present.is_empty() && jumps.is_empty() {
        return None;
    }
    Some(removal_batch(&jumps, &present))
}

fn spawn(cmd: &str, args: &[&str], input: Option<&str>) -> Result<Child, Error> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NetError::IptablesRun {
            cmd: cmd.to_string(),
            source,
        })?;
    if let (Some(i), Some(mut si)) = (input, child.stdin.take()) {
        let _ = si.write_all(i.as_bytes());
    }
    Ok(child)
}

fn wait(cmd: &str, child: Child) -> Result<String, Error> {
    let out = child
        .wait_with_output()
        .map_err(|source| NetError::IptablesWait {
            cmd: cmd.to_string(),
            source,
        })?;
    if !out.status.success() {
        let e = String::from_utf8_lossy(&out.stderr);
        return Err(NetError::Iptables {
            cmd: cmd.to_string(),
            msg: e
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("failed")
                .to_string(),
        }
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run(cmd: &str, args: &[&str], input: Option<&str>) -> Result<String, Error> {
    wait(cmd, spawn(cmd, args, input)?)
}

/// Install `plan` (iptables-restore applies a table atomically: all of it or nothing); returns
/// what was installed.
pub fn apply(uuid: &str, plan: &Plan) -> Result<NatRecord, Error> {
    let (batch, rec) = add_batch(uuid, plan);
    if !rec.chains.is_empty() {
        run("iptables-restore", &["-w", "--noflush"], Some(&batch))?;
    }
    Ok(rec)
}

/// A removal running in the background (a deletion waits for the kernel's RCU grace period).
pub struct Removal {
    child: Option<Child>,
    chains: Vec<String>,
}

/// Start removing the pod's rules: exactly what `installed` says when known, else (stage1 died
/// before recording it) whatever of `chains` exists. [`Removal::wait`] finishes it.
pub fn start_removal(installed: Option<&NatRecord>, chains: &[String]) -> Removal {
    let child = match installed {
        Some(rec) if rec.chains.is_empty() => {
            return Removal {
                child: None,
                chains: vec![],
            }
        }
        Some(rec) => spawn(
            "iptables-restore",
            &["-w", "--noflush"],
            Some(&exact_del_batch(rec)),
        )
        .ok(),
        None => None,
    };
    Removal {
        child,
        chains: chains.to_vec(),
    }
}

impl Removal {
    /// Wait for the removal; if the exact batch failed (someone removed a rule by hand), fall
    /// back to removing what is left of the chains.
    pub fn wait(self) -> Result<(), Error> {
        if let Some(c) = self.child {
            match wait("iptables-restore", c) {
                Ok(_) => return Ok(()),
                Err(e) => tracing::debug!("exact removal failed, scanning: {e}"),
            }
        }
        remove(&self.chains)
    }
}

/// Remove `chains` and every jump to them, as found in `iptables-save`. Idempotent.
pub fn remove(chains: &[String]) -> Result<(), Error> {
    if chains.is_empty() {
        return Ok(());
    }
    let saved = run("iptables-save", &["-t", "nat"], None)?;
    match del_batch(&saved, chains) {
        Some(b) => run("iptables-restore", &["-w", "--noflush"], Some(&b)).map(drop),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9";

    #[test]
    fn the_loopback_guard_drops_only_new_traffic_from_other_links() {
        let b = localnet_batch();
        let lines: Vec<&str> = b.lines().collect();
        assert_eq!(lines[0], "*filter");
        assert_eq!(lines[1], ":RKT-LOCALNET - [0:0]");
        assert_eq!(
            lines[2],
            "-A RKT-LOCALNET ! -i lo -d 127.0.0.0/8 -m conntrack \
             ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
        );
        // first in INPUT, so no ACCEPT of the host's own rules comes before it
        assert_eq!(
            lines[3],
            "-I INPUT 1 -m comment --comment \"rkt: no host loopback from pods\" -j RKT-LOCALNET"
        );
        assert_eq!(lines[4], "COMMIT");
        // the jump that is checked is the one that is installed
        assert_eq!(localnet_jump()[0], "INPUT");
        assert!(lines[3].ends_with(&restore_words(&localnet_jump()[1..])));
    }

    #[test]
    fn batches_name_chains_per_pod_and_undo_themselves() {
        let plan = Plan {
            forwards: vec![Forward {
                protocol: "tcp".into(),
                host_ip: Some(Ipv4Addr::LOCALHOST),
                host_port: 8080,
                pod_ip: Ipv4Addr::new(172, 16, 28, 7),
                container_port: 80,
            }],
        };
        let (b, rec) = add_batch(UUID, &plan);
        let chains = rec.chains.clone();
        assert_eq!(rec.jumps.len(), 3, "{:?}", rec.jumps);
        assert!(rec.jumps.iter().all(|j| !j.starts_with("RKT-")));
        let exact = exact_del_batch(&rec);
        assert!(exact.contains("-D OUTPUT -m addrtype --dst-type LOCAL"));
        assert_eq!(exact.matches("-X ").count(), 2);
        assert_eq!(chains, ["RKT-PFWD-DNAT-0a1b2c3d", "RKT-PFWD-SNAT-0a1b2c3d"]);
        assert!(chains.iter().all(|c| c.len() <= 28));
        assert!(b.starts_with("*nat\n:RKT-PFWD-DNAT-0a1b2c3d - [0:0]\n"));
        assert!(b.contains(
            "-A RKT-PFWD-DNAT-0a1b2c3d -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.16.28.7:80"
        ));
        assert!(b.ends_with("COMMIT\n"));

        // what iptables-save prints after the batch (plus a stranger's rule)
        let saved = format!(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:CNI-x - [0:0]\n{}-A POSTROUTING -s 10.0.0.1/32 -j CNI-x\nCOMMIT\n",
            b.lines()
                .filter(|l| l.starts_with(':') || l.starts_with("-A"))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        );
        let d = del_batch(&saved, &chains).unwrap();
        assert_eq!(d.matches("-D POSTROUTING").count(), 1);
        assert_eq!(d.matches("-D PREROUTING").count(), 1);
        assert_eq!(d.matches("-D OUTPUT").count(), 1);
        assert_eq!(d.matches("-X ").count(), 2);
        assert!(!d.contains("CNI-x"));
        assert!(!d.contains("-D RKT-"), "rules inside our chains go with -F");
        assert!(del_batch("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", &chains).is_none());
        assert_eq!(add_batch(UUID, &Plan::default()).1, NatRecord::default());
    }

    fn nat_rules() -> Vec<String> {
        let o = Command::new("iptables")
            .args(["-w", "-t", "nat", "-S"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// On the host's real iptables, with a subnet of this test's own (so the integration tests
    /// running beside it keep theirs): racing pods install one masquerade; a chain that lost
    /// its jump (a firewall reload, a hand) gets it back, once, with its rules not doubled.
    #[test]
    fn masquerade_is_installed_once_and_repaired() {
        const SUBNET: &str = "10.255.254.0/24";
        let chain = network_masq_chain(SUBNET);
        let count = || {
            let rules = nat_rules();
            let jumps = rules
                .iter()
                .filter(|l| l.starts_with("-A POSTROUTING") && l.ends_with(&format!("-j {chain}")))
                .count();
            let own = rules
                .iter()
                .filter(|l| l.starts_with(&format!("-A {chain} ")))
                .count();
            (jumps, own)
        };
        let racers: Vec<_> = (0..3)
            .map(|_| std::thread::spawn(|| RuleCheck::masquerade(SUBNET).finish()))
            .collect();
        for r in racers {
            r.join().unwrap().unwrap();
        }
        assert_eq!(count(), (1, 2));
        RuleCheck::masquerade(SUBNET).finish().unwrap();
        assert_eq!(count(), (1, 2), "a present masquerade is left alone");
        let mut del = vec!["-w".to_string(), "-t".into(), "nat".into(), "-D".into()];
        del.extend(masq_jump(SUBNET));
        assert!(Command::new("iptables")
            .args(&del)
            .status()
            .unwrap()
            .success());
        assert_eq!(count(), (0, 2));
        RuleCheck::masquerade(SUBNET).finish().unwrap();
        assert_eq!(count(), (1, 2), "repaired");
        assert!(Command::new("iptables")
            .args(&del)
            .status()
            .unwrap()
            .success());
        remove(std::slice::from_ref(&chain)).unwrap();
        assert_eq!(count(), (0, 0));
    }

    #[test]
    fn a_network_masquerade_is_one_chain_per_subnet() {
        let a = network_masq_chain("172.16.28.0/24");
        assert!(a.starts_with("RKT-MASQ-NET-") && a.len() <= 28, "{a}");
        assert_eq!(a, network_masq_chain("172.16.28.0/24"));
        assert_ne!(a, network_masq_chain("172.16.29.0/24"));
        // not mistaken for a pod's chain (RKT-MASQ-<8 hex>)
        assert_ne!(a.len(), "RKT-MASQ-0a1b2c3d".len());
        let b = masq_batch("172.16.28.0/24");
        assert_eq!(
            b,
            format!(
                "*nat\n:{a} - [0:0]\n-A {a} -d 172.16.28.0/24 -j ACCEPT\n\
                 -A {a} ! -d 224.0.0.0/4 -j MASQUERADE\n\
                 -A POSTROUTING -s 172.16.28.0/24 -m comment --comment \"rkt network 172.16.28.0/24\" -j {a}\n\
                 COMMIT\n"
            )
        );
        // the check names the same jump the batch appends
        let jump = masq_jump("172.16.28.0/24").join(" ");
        assert!(b.contains(&format!(
            "-A {}",
            jump.replace(
                "rkt network 172.16.28.0/24",
                "\"rkt network 172.16.28.0/24\""
            )
        )));
    }
}
