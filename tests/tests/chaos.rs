//! Chaos: `kill -9` of `rkt run`, `prepare`, `fetch` and `gc` at random moments, each followed
//! by one gc of each kind (`rkt gc`, `rkt image gc`), then the invariants of a clean host:
//! no pod dir, mount, process, cgroup, netns, veth, iptables rule or host-local address of any
//! pod, no store debris, and `rkt image verify` passes. `make test` runs a few rounds
//! (`RKT_CHAOS_ROUNDS`, default 12); `make chaos` runs 100 per operation and prints the figures
//! docs/reliability.md records. `RKT_CHAOS_SEED` replays a run (the seed is printed).

use rkt_tests::{cleanup, images, net, registry, stderr, TestCtx};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// xorshift64*: reproducible delays without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn ok(c: &mut Command, what: &str) {
    let o = c.output().unwrap();
    assert!(o.status.success(), "{what}: {}", stderr(&o));
}

/// Spawn `c`, SIGKILL it after `delay` (if it still runs) and reap it; whether it was killed.
fn kill_after(mut c: Command, delay: Duration) -> bool {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < delay {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let killed = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    killed
}

/// Cgroup directories named after `uuid` in any mounted hierarchy.
fn cgroups_named(uuid: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, uuid: &str, depth: u32, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p = e.path();
            if e.file_name().to_string_lossy().contains(uuid) {
                out.push(p);
            } else if depth > 0 {
                walk(&p, uuid, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), uuid, 8, &mut out);
    out
}

/// Everything of the pods `uuids` (with their host veths) still on the host, after one gc.
fn leaks(ctx: &TestCtx, pods: &[(String, Vec<String>)]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    v.extend(
        cleanup::pod_dirs(&ctx.dir())
            .iter()
            .map(|p| format!("pod dir {}", p.display())),
    );
    v.extend(
        cleanup::mounts_under(ctx.root())
            .iter()
            .map(|p| format!("mount {}", p.display())),
    );
    v.extend(
        cleanup::pids_of(ctx.root())
            .iter()
            .map(|p| format!("process {p}")),
    );
    for (uuid, _) in pods {
        v.extend(
            cgroups_named(uuid)
                .iter()
                .map(|p| format!("cgroup {}", p.display())),
        );
    }
    v.extend(net::net_leaks(pods));
    let tmp = ctx.dir().join("cas/tmp");
    if let Ok(rd) = std::fs::read_dir(&tmp) {
        v.extend(
            rd.flatten()
                .map(|e| format!("store debris {}", e.path().display())),
        );
    }
    v
}

/// `rkt image verify` of every image in the store passes.
fn verify_store(rkt: &dyn Fn(&[&str]) -> Command) -> usize {
    let o = rkt(&["image", "list", "--format=json"]).output().unwrap();
    assert!(o.status.success(), "image list: {}", stderr(&o));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let ids: Vec<&str> = list.iter().filter_map(|i| i["id"].as_str()).collect();
    if !ids.is_empty() {
        let mut args = vec!["image", "verify"];
        args.extend(&ids);
        ok(&mut rkt(&args), "image verify");
    }
    ids.len()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Run,
    Prepare,
    Fetch,
    Gc,
}

#[test]
fn kill_9_at_random_moments_then_one_gc_leaves_nothing() {
    let rounds = env_u64("RKT_CHAOS_ROUNDS", 12);
    let seed = env_u64(
        "RKT_CHAOS_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1,
    );
    eprintln!("chaos: RKT_CHAOS_SEED={seed} RKT_CHAOS_ROUNDS={rounds}");
    let mut rng = Rng(seed);
    let ctx = TestCtx::new();
    let reg = registry::shared();
    let remote = format!("{}/chaos-{}/busybox:1", reg.http_addr(), std::process::id());
    images::push(
        images::busybox_with_ports(),
        reg.http_addr(),
        remote.split_once('/').unwrap().1,
    );
    let local = images::busybox().oci_ref();
    let ports = images::busybox_with_ports().oci_ref();
    let rkt = |args: &[&str]| {
        let mut c = ctx.rkt();
        c.arg("--insecure-options=image,http").args(args);
        c
    };
    ok(&mut rkt(&["fetch", &local]), "warm fetch");
    let ops = [Op::Run, Op::Prepare, Op::Fetch, Op::Gc];
    let (mut killed, mut total) = ([0u32; 4], [0u32; 4]);
    let t_all = Instant::now();
    let mut verified = 0;
    for round in 0..rounds * ops.len() as u64 {
        let i = (round % ops.len() as u64) as usize;
        let op = ops[i];
        let uuid_file = ctx.root().join(format!("uuid-{round}"));
        let save = format!("--uuid-file-save={}", uuid_file.display());
        let (cmd, window_ms) = match op {
            Op::Run => {
                // every other run forwards a port: nat chains, route_localnet, the loopback guard
                let port = format!("--port=80-tcp:{}", 20000 + round % 20000);
                let mut args = vec!["run", save.as_str()];
                if round % 2 == 0 {
                    args.extend([port.as_str(), ports.as_str()]);
                } else {
                    args.push(local.as_str());
                }
                args.extend(["--exec=/bin/sleep", "--", "30"]);
                (rkt(&args), 250)
            }
            // windows of about the operation's own length, so most kills land inside it
            Op::Prepare => (rkt(&["prepare", &save, &local, "--exec=/bin/true"]), 25),
            Op::Fetch => {
                let _ = rkt(&["image", "rm", &remote]).output();
                (rkt(&["fetch", "--pull-policy=update", &remote]), 80)
            }
            Op::Gc => {
                // garbage to collect: an exited pod and a prepared one
                let _ = rkt(&["run", "--net=host", &local, "--exec=/bin/true"]).output();
                let _ = rkt(&["prepare", &local, "--exec=/bin/true"]).output();
                (
                    rkt(&["gc", "--grace-period=0s", "--expire-prepared=0s"]),
                    60,
                )
            }
        };
        let delay = Duration::from_millis(rng.below(window_ms));
        total[i] += 1;
        if kill_after(cmd, delay) {
            killed[i] += 1;
        }
        // the pods' host veths, as recorded, before gc removes the records
        let mut pods: Vec<(String, Vec<String>)> = cleanup::pod_dirs(&ctx.dir())
            .iter()
            .map(|d| {
                let u = d.file_name().unwrap().to_string_lossy().into_owned();
                (u, net::host_ifaces_of_pod(d))
            })
            .collect();
        if let Ok(u) = std::fs::read_to_string(&uuid_file) {
            if u.trim().len() == 36 && !pods.iter().any(|p| p.0 == u.trim()) {
                pods.push((u.trim().to_string(), vec![]));
            }
        }
        // a killed pod's lock goes with its last process, which the kernel reaps just after
        std::thread::sleep(Duration::from_millis(50));
        ok(
            &mut rkt(&["gc", "--grace-period=0s", "--expire-prepared=0s"]),
            &format!("gc after {op:?} (round {round})"),
        );
        // a killed fetch (or a run or prepare importing its image) leaves `cas/tmp` debris,
        // which image gc removes whatever the grace period; the images stay for the next round
        ok(&mut rkt(&["image", "gc", "--grace-period=24h"]), "image gc");
        // the kernel frees a dead namespace's links asynchronously
        let t0 = Instant::now();
        let mut left = leaks(&ctx, &pods);
        while !left.is_empty() && t0.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(100));
            left = leaks(&ctx, &pods);
        }
        assert!(
            left.is_empty(),
            "round {round}: {op:?} killed after {delay:?} (seed {seed}) left {left:#?}"
        );
        verified += verify_store(&rkt);
    }
    eprintln!(
        "chaos: {} rounds in {:.1} s; killed mid-way / rounds: run {}/{}, prepare {}/{}, \
         fetch {}/{}, gc {}/{}; {verified} image verifications",
        rounds * 4,
        t_all.elapsed().as_secs_f64(),
        killed[0],
        total[0],
        killed[1],
        total[1],
        killed[2],
        total[2],
        killed[3],
        total[3]
    );
}
