//! Pod networking end to end, through Debian's CNI plugins: rkt's built-in `default` and
//! `default-restricted` networks, `--net=none|host`, user networks from `net.d` (`.conf`,
//! `.conflist`, one named `default`), `--net=NAME:IP=…`, `--port` forwards, DNS and hosts files,
//! what `list`/`status` show, and what is left on the host after pods exit, are killed and
//! collected. Host state is read with iproute2's JSON, `iptables-save` and host-local's store
//! ([`rkt_tests::net`]); traffic stays on loopback and in the pods' own namespaces.
//!
//! Tests run in parallel: every user network has its own name (`nt-…`), bridge (`rktnt<N>`) and
//! subnet (`10.233.<N>.0/24`), and leak checks only look at the test's own pod UUIDs.

use rkt_tests::net::{self, Iface};
use rkt_tests::{images, stderr, stdout, TestCtx};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const DEFAULT_SUBNET: &str = "172.16.28.0/24";
const DEFAULT_GW: &str = "172.16.28.1";
const RESTRICTED_SUBNET: &str = "172.31.0.0/16";
const DEFAULT_RESTRICTED_GW: &str = "172.31.0.1";
const SLEEP: &[&str] = &["--exec=/bin/sleep", "--", "300"];

fn bb() -> String {
    images::busybox().oci_ref()
}

fn ok(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(o));
    stdout(o)
}

fn one_line_254(o: &Output, want: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(254), "stderr: {err}");
    assert!(err.contains(want), "want {want:?} in {err:?}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
}

/// A fresh file name under the context (uuid files, logs).
fn fresh(ctx: &TestCtx, what: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    ctx.root()
        .join(format!("{what}-{}", N.fetch_add(1, Ordering::Relaxed)))
}

/// A pod `rkt run` runs in the background. TestCtx's drop kills it if the test panics.
struct Pod {
    child: Child,
    uuid: String,
    log: PathBuf,
}

impl Pod {
    fn dir(&self, ctx: &TestCtx) -> PathBuf {
        ctx.dir().join("pods/run").join(&self.uuid)
    }
    /// The pod's host-side interfaces, from its net-info.json.
    fn host_ifs(&self, ctx: &TestCtx) -> Vec<String> {
        net::host_ifaces_of_pod(&self.dir(ctx))
    }
}

/// `rkt run FLAGS IMAGE APP…` in the background; returns once the pod is ready (apps started).
fn start(ctx: &TestCtx, flags: &[&str], image: &str, app: &[&str]) -> Pod {
    let uf = fresh(ctx, "uuid");
    let log = fresh(ctx, "log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = ctx
        .rkt()
        .arg("--insecure-options=image")
        .arg("run")
        .arg(format!("--uuid-file-save={}", uf.display()))
        .args(flags)
        .arg(image)
        .args(app)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let uuid = loop {
        let u = std::fs::read_to_string(&uf).unwrap_or_default();
        if u.trim().len() == 36 {
            break u.trim().to_string();
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!(
                "rkt run {flags:?} exited with {st}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no uuid file");
        std::thread::sleep(Duration::from_millis(20));
    };
    // the UUID is saved before the pod is listed: retry until status knows it
    let o = loop {
        let o = ctx.rkt_output(&["status", "--wait-ready=20s", &uuid]);
        if o.status.success()
            || !stderr(&o).contains("no matches found")
            || t0.elapsed() > Duration::from_secs(20)
        {
            break o;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if !o.status.success() {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "pod {uuid} did not get ready: {}\nrkt run: {}",
            stderr(&o),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    Pod { child, uuid, log }
}

/// SIGKILL `rkt run` (which is stage1 by then) and wait until the pod shows as exited.
fn kill_9(ctx: &TestCtx, pod: &mut Pod) {
    pod.child.kill().unwrap();
    pod.child.wait().unwrap();
    let t0 = Instant::now();
    loop {
        let st = ok(&ctx.rkt_output(&["status", &pod.uuid]));
        if st.lines().any(|l| l == "state=exited") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "still: {st}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `rkt stop` the pod and wait for `rkt run` to return.
fn stop(ctx: &TestCtx, mut pod: Pod) {
    ok(&ctx.rkt_output(&["stop", &pod.uuid]));
    let t0 = Instant::now();
    while pod.child.try_wait().unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "rkt run did not return after stop: {}",
            std::fs::read_to_string(&pod.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`stop`] the pod, then check that nothing of its networking is left. `bridge`: the bridge of
/// the test's own network, which outlives its pods.
fn stop_leaving_no_network(ctx: &TestCtx, pod: Pod, bridge: Option<&str>) {
    let host_ifs: Vec<String> = pod
        .host_ifs(ctx)
        .into_iter()
        .filter(|i| Some(i.as_str()) != bridge)
        .collect();
    let uuid = pod.uuid.clone();
    stop(ctx, pod);
    assert_no_net_leaks(&[(uuid, host_ifs)]);
}

/// `rkt run FLAGS IMAGE --exec=/bin/sh -- -c SCRIPT` to completion; (output, uuid).
fn run_sh(ctx: &TestCtx, flags: &[&str], script: &str) -> (Output, String) {
    let uf = fresh(ctx, "uuid");
    let mut args = vec![
        "run".to_string(),
        format!("--uuid-file-save={}", uf.display()),
    ];
    args.extend(flags.iter().map(|s| s.to_string()));
    args.extend([bb(), "--exec=/bin/sh".into(), "--".into(), "-c".into()]);
    args.push(script.into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = ctx.rkt_output(&args);
    let uuid = std::fs::read_to_string(&uf)
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    (o, uuid)
}

fn names(ifs: &[Iface]) -> Vec<&str> {
    let mut v: Vec<&str> = ifs.iter().map(|i| i.name.as_str()).collect();
    v.sort_unstable();
    v
}

/// The first IPv4 address of interface `name`.
fn v4(ifs: &[Iface], name: &str) -> (Ipv4Addr, u8) {
    ifs.iter()
        .find(|i| i.name == name)
        .and_then(|i| i.ipv4.first().copied())
        .unwrap_or_else(|| panic!("no IPv4 address on {name}: {ifs:?}"))
}

fn has_chain(nat: &str, chain: &str) -> bool {
    nat.lines().any(|l| {
        l.strip_prefix(':')
            .and_then(|d| d.split_whitespace().next())
            == Some(chain)
    })
}

/// The chains the POSTROUTING jumps for traffic from `subnet` go to (rkt's network
/// masquerade: one, whose rules leave the subnet alone and masquerade the rest).
fn masq_jumps(nat: &str, subnet: &str) -> Vec<String> {
    let from = format!("-A POSTROUTING -s {subnet} ");
    nat.lines()
        .filter(|l| l.starts_with(&from))
        .filter_map(|l| l.rsplit_once(" -j ").map(|(_, c)| c.trim().to_string()))
        .collect()
}

/// `subnet`'s traffic is masqueraded by exactly one chain of rkt's, with the rules it needs.
fn assert_masqueraded(subnet: &str) {
    let nat = net::nat_table();
    let jumps = masq_jumps(&nat, subnet);
    assert_eq!(jumps.len(), 1, "jumps for {subnet}: {jumps:?} in:\n{nat}");
    let c = &jumps[0];
    assert!(
        c.starts_with("RKT-MASQ-NET-") && has_chain(&nat, c),
        "{c} in:\n{nat}"
    );
    for rule in [
        format!("-A {c} -d {subnet} -j ACCEPT"),
        format!("-A {c} ! -d 224.0.0.0/4 -j MASQUERADE"),
    ] {
        assert!(nat.lines().any(|l| l == rule), "no {rule:?} in:\n{nat}");
    }
}

/// Nothing of the pods' networking is left. A pod's veths go with its network namespace,
/// which the kernel frees asynchronously once the last reference is gone, so links alone get
/// [`LINK_GRACE`] to disappear; everything else must be gone at once.
/// ([`a_held_netns_does_not_keep_the_exited_pods_veth_and_route`] checks the veth when
/// something else still holds the namespace.)
fn assert_no_net_leaks(pods: &[(String, Vec<String>)]) {
    let t0 = Instant::now();
    loop {
        let leaks = net::net_leaks(pods);
        let only_links = leaks.iter().all(|l| l.starts_with("host interface "));
        if leaks.is_empty() || !only_links || t0.elapsed() > LINK_GRACE {
            assert!(leaks.is_empty(), "network leaks: {leaks:#?}");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How long a dead pod's veth may take to go with its namespace.
const LINK_GRACE: Duration = Duration::from_secs(2);

/// Check a running pod is on rkt's built-in `default` network; returns its address.
fn assert_on_default(uuid: &str) -> Ipv4Addr {
    assert!(
        net::netns_path(uuid).exists(),
        "{} missing",
        net::netns_path(uuid).display()
    );
    let ifs = net::netns_ifaces(uuid);
    assert_eq!(names(&ifs), ["eth0", "lo"], "{ifs:?}");
    let (ip, len) = v4(&ifs, "eth0");
    assert!(net::in_subnet(ip, DEFAULT_SUBNET), "eth0 {ip}");
    assert_eq!(len, 24);
    let routes = net::netns_routes(uuid);
    assert!(
        routes
            .iter()
            .any(|r| r.dst == "default" && r.gateway.as_deref() == Some(DEFAULT_GW)),
        "no default route via {DEFAULT_GW}: {routes:?}"
    );
    assert_masqueraded(DEFAULT_SUBNET);
    ip
}

/// A `bridge` network on `10.233.<n>.0/<prefix>` with bridge `rktnt<n>` (deleted on drop).
fn bridge_conf(name: &str, n: u8, prefix: u8) -> Value {
    json!({
        "cniVersion": "0.4.0",
        "name": name,
        "type": "bridge",
        "bridge": format!("rktnt{n}"),
        "ipam": {"type": "host-local", "subnet": format!("10.233.{n}.0/{prefix}")},
    })
}

fn subnet(n: u8) -> String {
    format!("10.233.{n}.0/24")
}

/// A free TCP port on 127.0.0.1 (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.0 GET of `path` at `addr`: the whole response.
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())?;
    let mut r = String::new();
    s.read_to_string(&mut r)?;
    Ok(r)
}

/// [`http_get`] until it answers (the server in the pod may still be starting), up to 10 s.
fn http_get_retry(addr: SocketAddr, path: &str) -> String {
    let t0 = Instant::now();
    loop {
        match http_get(addr, path) {
            Ok(r) if r.starts_with("HTTP/1.") => return r,
            other => {
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "GET http://{addr}{path}: {other:?}"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A host dir with `file` in it, and the flags that serve it with busybox httpd on port 80:
/// (pod flags, app flags).
fn www(ctx: &TestCtx, content: &str) -> (Vec<String>, Vec<String>) {
    let d = fresh(ctx, "www");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("file"), content).unwrap();
    (
        vec![format!("--volume=www,kind=host,source={}", d.display())],
        [
            "--mount=volume=www,target=/www",
            "--exec=/bin/httpd",
            "--",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    )
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn default_network_whether_net_is_omitted_bare_or_named() {
    let ctx = TestCtx::new();
    for flags in [&[][..], &["--net"][..], &["--net=default"][..]] {
        let pod = start(&ctx, flags, &bb(), SLEEP);
        assert_on_default(&pod.uuid);
        let host_ifs = pod.host_ifs(&ctx);
        assert!(!host_ifs.is_empty(), "{flags:?}: no host veth recorded");
        assert!(
            host_ifs.iter().all(|i| net::host_link_exists(i)),
            "{host_ifs:?}"
        );
        let uuid = pod.uuid.clone();
        stop(&ctx, pod);
        assert_no_net_leaks(&[(uuid, host_ifs)]);
    }
}

#[test]
fn list_and_status_show_the_pods_address() {
    let ctx = TestCtx::new();
    let pod = start(&ctx, &[], &bb(), SLEEP);
    let ip = assert_on_default(&pod.uuid).to_string();
    let want = format!("default:ip4={ip}");

    let st = ok(&ctx.rkt_output(&["status", &pod.uuid]));
    assert!(st.lines().any(|l| l == format!("networks={want}")), "{st}");
    let list = ok(&ctx.rkt_output(&["list"]));
    let row = list
        .lines()
        .find(|l| l.starts_with(&pod.uuid[..8]))
        .unwrap_or_else(|| panic!("no row for {}: {list}", pod.uuid));
    assert!(row.split_whitespace().any(|w| w == want), "{row}");

    let list: Value =
        serde_json::from_str(&ok(&ctx.rkt_output(&["list", "--format=json"]))).expect("list JSON");
    let p = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == pod.uuid.as_str())
        .unwrap_or_else(|| panic!("{list}"));
    let n = &p["networks"][0];
    assert_eq!(n["netName"], "default", "{n}");
    assert_eq!(n["ip"], ip.as_str(), "{n}");
    assert_eq!(n["ifName"], "eth0", "{n}");
    assert_eq!(n["mask"], "255.255.255.0", "{n}");
    assert_eq!(n["hostIP"], DEFAULT_GW, "{n}");
    assert_eq!(p["networks"].as_array().unwrap().len(), 1, "{p}");
    let st: Value = serde_json::from_str(&ok(&ctx.rkt_output(&[
        "status",
        "--format=json",
        &pod.uuid,
    ])))
    .expect("status JSON");
    assert_eq!(st["networks"][0]["ip"], ip.as_str(), "{st}");
    stop(&ctx, pod);
}

#[test]
fn default_restricted_none_and_host() {
    let ctx = TestCtx::new();
    let pod = start(&ctx, &["--net=default-restricted"], &bb(), SLEEP);
    let ifs = net::netns_ifaces(&pod.uuid);
    assert_eq!(names(&ifs), ["eth0", "lo"], "{ifs:?}");
    let (ip, len) = v4(&ifs, "eth0");
    assert!(net::in_subnet(ip, RESTRICTED_SUBNET), "eth0 {ip}");
    assert_eq!(len, 16);
    let routes = net::netns_routes(&pod.uuid);
    assert!(
        !routes.iter().any(|r| r.dst == "default"),
        "default-restricted has no default route: {routes:?}"
    );
    assert!(masq_jumps(&net::nat_table(), RESTRICTED_SUBNET).is_empty());
    stop_leaving_no_network(&ctx, pod, None);

    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let host_ns = host_ns.to_string_lossy();
    let script = "readlink /proc/self/ns/net; ip -o link | cut -d: -f2";
    // none: an own namespace with only lo
    let (o, uuid) = run_sh(&ctx, &["--net=none"], script);
    let out = ok(&o);
    let mut lines = out.lines();
    let ns = lines.next().unwrap_or_default();
    assert!(ns.starts_with("net:[") && ns != host_ns, "{out}");
    assert_eq!(lines.map(str::trim).collect::<Vec<_>>(), ["lo"], "{out}");
    assert!(!net::netns_path(&uuid).exists());
    // host: the host's namespace
    let (o, _) = run_sh(&ctx, &["--net=host"], script);
    let out = ok(&o);
    assert_eq!(out.lines().next(), Some(host_ns.as_ref()), "{out}");
    assert!(out.lines().count() > 2, "host links: {out}");
}

#[test]
fn user_networks_from_conf_and_conflist_come_with_default_restricted() {
    let ctx = TestCtx::new();
    ctx.add_net_conf("10-nt-conf.conf", &bridge_conf("nt-conf", 71, 24));
    ctx.add_net_conf(
        "20-nt-list.conflist",
        &json!({
            "cniVersion": "0.4.0",
            "name": "nt-list",
            "plugins": [
                {"type": "bridge", "bridge": "rktnt72",
                 "ipam": {"type": "host-local", "subnet": subnet(72)}},
                {"type": "tuning", "mtu": 1400},
            ],
        }),
    );
    // all: every user network (file order), then the built-in default
    let pod = start(&ctx, &["--net=all"], &bb(), SLEEP);
    let ifs = net::netns_ifaces(&pod.uuid);
    assert_eq!(names(&ifs), ["eth0", "eth1", "eth2", "lo"], "{ifs:?}");
    assert!(net::in_subnet(v4(&ifs, "eth0").0, &subnet(71)), "{ifs:?}");
    assert!(net::in_subnet(v4(&ifs, "eth1").0, &subnet(72)), "{ifs:?}");
    assert!(
        net::in_subnet(v4(&ifs, "eth2").0, DEFAULT_SUBNET),
        "{ifs:?}"
    );
    stop(&ctx, pod);
    for (net_name, n, mtu) in [("nt-conf", 71, None), ("nt-list", 72, Some(1400))] {
        let pod = start(&ctx, &[&format!("--net={net_name}")], &bb(), SLEEP);
        let ifs = net::netns_ifaces(&pod.uuid);
        assert_eq!(names(&ifs), ["eth0", "eth1", "lo"], "{ifs:?}");
        let (ip, _) = v4(&ifs, "eth0");
        assert!(net::in_subnet(ip, &subnet(n)), "{net_name}: eth0 {ip}");
        let (ip1, _) = v4(&ifs, "eth1");
        assert!(
            net::in_subnet(ip1, RESTRICTED_SUBNET),
            "{net_name}: eth1 {ip1}"
        );
        if let Some(m) = mtu {
            let eth0 = ifs.iter().find(|i| i.name == "eth0").unwrap();
            assert_eq!(eth0.mtu, Some(m), "the chain's tuning plugin ran: {eth0:?}");
        }
        let st = ok(&ctx.rkt_output(&["status", &pod.uuid]));
        assert!(
            st.contains(&format!("{net_name}:ip4={ip}")) && st.contains("default-restricted:ip4="),
            "{st}"
        );
        stop_leaving_no_network(&ctx, pod, Some(&format!("rktnt{n}")));
    }
}

#[test]
fn a_user_network_named_default_replaces_the_builtin_one() {
    let ctx = TestCtx::new();
    ctx.add_net_conf("50-default.conf", &bridge_conf("default", 73, 24));
    let pod = start(&ctx, &[], &bb(), SLEEP);
    let ifs = net::netns_ifaces(&pod.uuid);
    assert_eq!(names(&ifs), ["eth0", "lo"], "{ifs:?}");
    let (ip, _) = v4(&ifs, "eth0");
    assert!(net::in_subnet(ip, &subnet(73)), "eth0 {ip}");
    stop_leaving_no_network(&ctx, pod, Some("rktnt73"));
}

#[test]
fn requested_ip_is_given_and_a_taken_one_is_refused() {
    let ctx = TestCtx::new();
    ctx.add_net_conf("10-nt-ip.conf", &bridge_conf("nt-ip", 74, 24));
    let pod = start(&ctx, &["--net=nt-ip:IP=10.233.74.50"], &bb(), SLEEP);
    let ifs = net::netns_ifaces(&pod.uuid);
    assert_eq!(v4(&ifs, "eth0"), (Ipv4Addr::new(10, 233, 74, 50), 24));
    let (o, uuid2) = run_sh(&ctx, &["--net=nt-ip:IP=10.233.74.50"], "true");
    one_line_254(
        &o,
        "requested IP address \"10.233.74.50\" is not available in network: nt-ip",
    );
    assert_no_net_leaks(&[(uuid2, vec![])]);
    // the first pod still has its address
    assert_eq!(
        v4(&net::netns_ifaces(&pod.uuid), "eth0").0,
        Ipv4Addr::new(10, 233, 74, 50)
    );
    let uuid = pod.uuid.clone();
    stop(&ctx, pod);
    assert_no_net_leaks(&[(uuid, vec![])]);
    // and the address is free again
    let (o, _) = run_sh(
        &ctx,
        &["--net=nt-ip:IP=10.233.74.50"],
        "ip -o -4 addr show eth0",
    );
    assert!(ok(&o).contains("10.233.74.50/24"), "{}", stdout(&o));
}

#[test]
fn an_exhausted_subnet_fails_the_next_pod_naming_the_plugin() {
    let ctx = TestCtx::new();
    // a /30 holds the gateway and one pod
    ctx.add_net_conf("10-nt-tiny.conf", &bridge_conf("nt-tiny", 75, 30));
    let pod = start(&ctx, &["--net=nt-tiny"], &bb(), SLEEP);
    assert_eq!(
        v4(&net::netns_ifaces(&pod.uuid), "eth0"),
        (Ipv4Addr::new(10, 233, 75, 2), 30)
    );
    let (o, uuid2) = run_sh(&ctx, &["--net=nt-tiny"], "true");
    one_line_254(&o, "CNI plugin bridge");
    assert!(stderr(&o).contains("nt-tiny"), "{}", stderr(&o));
    assert_no_net_leaks(&[(uuid2, vec![])]);
    stop(&ctx, pod);
}

#[test]
fn bad_net_and_port_flags_exit_254_and_leave_nothing() {
    let ctx = TestCtx::new();
    let img = images::busybox_with_ports().oci_ref();
    let cases: &[(&[&str], &str, &str)] = &[
        (&["--net=nosuch"], &bb(), "\"nosuch\""),
        (&["--net=default,default"], &bb(), "\"default\" given twice"),
        (&["--net=host,default"], &bb(), "cannot be combined"),
        (&["--net=none,default"], &bb(), "cannot be combined"),
        (&["--net=host", "--port=80-tcp:18080"], &img, "--port"),
        (&["--net=none", "--port=80-tcp:18080"], &img, "--port"),
        (&["--port=nosuch-tcp:18080"], &bb(), "nosuch-tcp"),
        (&["--port=nosuch-tcp:18080"], &img, "nosuch-tcp"),
    ];
    for (flags, image, want) in cases {
        let uf = fresh(&ctx, "uuid");
        let mut args = vec![
            "run".to_string(),
            format!("--uuid-file-save={}", uf.display()),
        ];
        args.extend(flags.iter().map(|s| s.to_string()));
        args.extend([image.to_string(), "--exec=/bin/true".into()]);
        let o = ctx.rkt_output(&strs(&args));
        one_line_254(&o, want);
        if let Ok(u) = std::fs::read_to_string(&uf) {
            assert_no_net_leaks(&[(u.trim().to_string(), vec![])]);
        }
    }
}

/// rkt masquerades the default network with one rule for its subnet, as Docker and netavark
/// keep one per network: pods starting at once do not double it, and it stays when they are
/// gone (a pod's end has no iptables rule to remove). Installing it when missing, also by pods
/// racing, is covered by stage1's `network::nat` tests on a subnet of their own.
#[test]
fn pods_on_default_share_one_network_masquerade() {
    let ctx = TestCtx::new();
    let run = || {
        ctx.rkt()
            .args(["--insecure-options=image", "run", &bb(), "--exec=/bin/true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // the first run fetches the image into the context's store
    let o = run().wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let runs: Vec<_> = (0..3).map(|_| run()).collect();
    for r in runs {
        let o = r.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    }
    assert_masqueraded(DEFAULT_SUBNET);
}

#[test]
fn two_pods_on_default_reach_each_other() {
    let ctx = TestCtx::new();
    let (pod_flags, app) = www(&ctx, "hello from pod A\n");
    let a = start(&ctx, &strs(&pod_flags), &bb(), &strs(&app));
    let st: Value =
        serde_json::from_str(&ok(&ctx.rkt_output(&["status", "--format=json", &a.uuid]))).unwrap();
    let ip = st["networks"][0]["ip"].as_str().unwrap().to_string();
    assert_eq!(ip, assert_on_default(&a.uuid).to_string());
    let (o, _) = run_sh(
        &ctx,
        &[],
        &format!(
            "for i in $(seq 100); do wget -q -O - http://{ip}/file && exit 0; sleep 0.1; done; exit 1"
        ),
    );
    assert_eq!(ok(&o), "hello from pod A\n");
    stop(&ctx, a);
}

/// Serve a file with `--port=80-tcp:PORTSPEC` from a pod; returns the pod and the host port.
fn serve_forwarded(ctx: &TestCtx, host_ip: Option<&str>) -> (Pod, u16) {
    let port = free_port();
    let spec = match host_ip {
        Some(ip) => format!("--port=80-tcp:{ip}:{port}"),
        None => format!("--port=80-tcp:{port}"),
    };
    let (mut pod_flags, app) = www(ctx, "forwarded\n");
    pod_flags.push(spec);
    let img = images::busybox_with_ports().oci_ref();
    let pod = start(ctx, &strs(&pod_flags), &img, &strs(&app));
    (pod, port)
}

fn assert_served(addr: SocketAddr) {
    let r = http_get_retry(addr, "/file");
    assert!(
        r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200"),
        "{addr}: {r}"
    );
    assert!(r.ends_with("\r\n\r\nforwarded\n"), "{addr}: {r}");
}

#[test]
fn port_forward_answers_on_loopback_and_the_gateway() {
    let ctx = TestCtx::new();
    let (pod, port) = serve_forwarded(&ctx, None);
    let nat = net::nat_table();
    let u8 = net::uuid8(&pod.uuid);
    assert!(has_chain(&nat, &format!("RKT-PFWD-DNAT-{u8}")), "{nat}");
    assert_served(SocketAddr::from(([127, 0, 0, 1], port)));
    let gw: Ipv4Addr = DEFAULT_GW.parse().unwrap();
    assert_served(SocketAddr::from((gw, port)));
    stop_leaving_no_network(&ctx, pod, None);
    assert!(
        http_get(SocketAddr::from(([127, 0, 0, 1], port)), "/file").is_err(),
        "the forward outlived the pod"
    );
}

#[test]
fn port_forward_bound_to_loopback_is_not_on_the_gateway() {
    let ctx = TestCtx::new();
    let (pod, port) = serve_forwarded(&ctx, Some("127.0.0.1"));
    assert_served(SocketAddr::from(([127, 0, 0, 1], port)));
    let gw: Ipv4Addr = DEFAULT_GW.parse().unwrap();
    let r = http_get(SocketAddr::from((gw, port)), "/file");
    assert!(r.is_err(), "{DEFAULT_GW}:{port} answered: {r:?}");
    stop(&ctx, pod);
}

/// `cat FILE` in a one-shot pod, None when the pod has no such file.
fn pod_file(ctx: &TestCtx, flags: &[&str], file: &str) -> Option<String> {
    let (o, _) = run_sh(
        ctx,
        flags,
        &format!("if [ -e {file} ]; then cat {file}; else echo NOFILE; fi"),
    );
    let out = ok(&o);
    (out != "NOFILE\n").then_some(out)
}

#[test]
fn resolv_conf_from_flags_host_none_and_a_plugin() {
    let ctx = TestCtx::new();
    let rc = "/etc/resolv.conf";
    assert_eq!(
        pod_file(
            &ctx,
            &[
                "--dns=1.2.3.4",
                "--dns=5.6.7.8",
                "--dns-search=a.example",
                "--dns-search=b.example",
                "--dns-opt=ndots:3",
                "--dns-domain=example",
            ],
            rc
        )
        .as_deref(),
        Some(
            "nameserver 1.2.3.4\nnameserver 5.6.7.8\nsearch a.example b.example\noptions ndots:3\ndomain example\n"
        )
    );
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap();
    assert_eq!(pod_file(&ctx, &["--dns=host"], rc), Some(host));
    // busybox has no resolv.conf, and none means none
    assert_eq!(pod_file(&ctx, &["--dns=none"], rc), None);
    assert_eq!(pod_file(&ctx, &[], rc), None, "default has no DNS");

    // DNS from the CNI result (ptp copies its configuration's into it)
    ctx.add_net_conf(
        "10-nt-dns.conf",
        &json!({
            "cniVersion": "0.4.0",
            "name": "nt-dns",
            "type": "ptp",
            "ipam": {"type": "host-local", "subnet": subnet(77)},
            "dns": {"nameservers": ["10.9.9.9"], "search": ["cni.example"]},
        }),
    );
    let from_plugin = pod_file(&ctx, &["--net=nt-dns"], rc).expect("resolv.conf from the plugin");
    let lines: Vec<&str> = from_plugin.lines().collect();
    assert!(lines.contains(&"nameserver 10.9.9.9"), "{from_plugin}");
    assert!(lines.contains(&"search cni.example"), "{from_plugin}");
    assert_eq!(pod_file(&ctx, &["--net=nt-dns", "--dns=none"], rc), None);
    // flags win over the plugin
    assert_eq!(
        pod_file(&ctx, &["--net=nt-dns", "--dns=1.2.3.4"], rc).as_deref(),
        Some("nameserver 1.2.3.4\n")
    );
}

#[test]
fn hosts_file_from_entries_host_and_fallback() {
    let ctx = TestCtx::new();
    let localhost4 = "127.0.0.1\tlocalhost localhost.domain localhost4 localhost4.localdomain4";
    let localhost6 = "::1\tip6-localhost ip6-loopback localhost6 localhost6.localdomain6";
    let hosts = pod_file(
        &ctx,
        &[
            "--hostname=nethost",
            "--hosts-entry=10.1.1.1=foo",
            "--hosts-entry=10.2.2.2=bar",
        ],
        "/etc/hosts",
    )
    .expect("/etc/hosts");
    let has = |ip: &str, name: &str| {
        hosts.lines().any(|l| {
            let mut w = l.split_whitespace();
            w.next() == Some(ip) && w.any(|n| n == name)
        })
    };
    assert!(has("10.1.1.1", "foo") && has("10.2.2.2", "bar"), "{hosts}");
    assert!(
        has("127.0.0.1", "localhost") && has("::1", "ip6-localhost"),
        "{hosts}"
    );

    let host = std::fs::read_to_string("/etc/hosts").unwrap();
    assert_eq!(
        pod_file(&ctx, &["--hosts-entry=host"], "/etc/hosts"),
        Some(host)
    );

    let (o, uuid) = run_sh(&ctx, &[], "cat /etc/hosts");
    assert_eq!(
        ok(&o),
        format!("{localhost4} rkt-{uuid}\n{localhost6}\n"),
        "fallback hosts"
    );
}

#[test]
fn fifty_runs_on_default_leave_no_network_behind() {
    let ctx = TestCtx::new();
    let mut pods = Vec::new();
    for i in 0..50 {
        let (o, uuid) = run_sh(&ctx, &[], "true");
        assert_eq!(o.status.code(), Some(0), "run {i}: {}", stderr(&o));
        let host_ifs = net::host_ifaces_of_pod(&ctx.dir().join("pods/run").join(&uuid));
        assert!(
            !host_ifs.is_empty(),
            "run {i}: no host veth in net-info.json"
        );
        pods.push((uuid, host_ifs));
    }
    assert_no_net_leaks(&pods);
    ok(&ctx.rkt_output(&["gc", "--grace-period=0s"]));
    assert!(ctx.pods_in("run").is_empty(), "{:?}", ctx.pods_in("run"));
    assert_no_net_leaks(&pods);
}

#[test]
fn kill_9_of_rkt_run_then_gc_leaves_no_network_behind() {
    let ctx = TestCtx::new();
    let port = free_port();
    let img = images::busybox_with_ports().oci_ref();
    let mut pod = start(&ctx, &[&format!("--port=80-tcp:{port}")], &img, SLEEP);
    assert_on_default(&pod.uuid);
    let nat = net::nat_table();
    let u8 = net::uuid8(&pod.uuid);
    // the pod's own chains; its masquerade is the network's (assert_on_default)
    for c in ["PFWD-DNAT", "PFWD-SNAT"] {
        assert!(
            has_chain(&nat, &format!("RKT-{c}-{u8}")),
            "RKT-{c}-{u8}: {nat}"
        );
    }
    let host_ifs = pod.host_ifs(&ctx);
    assert!(!host_ifs.is_empty());
    kill_9(&ctx, &mut pod); // stage1 tears nothing down
    let o = ok(&ctx.rkt_output(&["gc", "--grace-period=0s"]));
    assert!(o.contains(&pod.uuid), "{o}");
    assert!(ctx.pods_in("run").is_empty() && ctx.pods_in("exited-garbage").is_empty());
    assert_no_net_leaks(&[(pod.uuid.clone(), host_ifs)]);
}

/// The harness: a test that dies with a killed pod on a user bridge network and on `default`
/// with a port forward leaks nothing once its TestCtx is dropped (no gc).
#[test]
fn test_ctx_drop_removes_a_killed_pods_networking() {
    let ctx = TestCtx::new();
    ctx.add_net_conf("10-nt-drop.conf", &bridge_conf("nt-drop", 78, 24));
    let port = free_port();
    let img = images::busybox_with_ports().oci_ref();
    let mut pod = start(
        &ctx,
        &["--net=default,nt-drop", &format!("--port=80-tcp:{port}")],
        &img,
        SLEEP,
    );
    let ifs = net::netns_ifaces(&pod.uuid);
    assert_eq!(names(&ifs), ["eth0", "eth1", "lo"], "{ifs:?}");
    assert!(net::host_link_exists("rktnt78"));
    let host_ifs: Vec<String> = pod
        .host_ifs(&ctx)
        .into_iter()
        .filter(|i| i != "rktnt78")
        .collect();
    assert_eq!(host_ifs.len(), 2, "a veth per network: {host_ifs:?}");
    let uuid = pod.uuid.clone();
    assert!(!net::allocations_of(std::slice::from_ref(&uuid)).is_empty());
    pod.child.kill().unwrap();
    pod.child.wait().unwrap();
    assert!(
        net::netns_path(&uuid).exists(),
        "a killed stage1 leaves its netns for gc"
    );
    drop(ctx);
    // the pod's veths go with its namespace, which the kernel frees asynchronously
    let t0 = Instant::now();
    while host_ifs.iter().any(|i| net::host_link_exists(i)) && t0.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_no_net_leaks(&[(uuid, host_ifs)]);
    assert!(!net::host_link_exists("rktnt78"), "bridge left");
    assert!(
        !std::path::Path::new(net::HOST_LOCAL_DIR)
            .join("nt-drop")
            .exists(),
        "host-local store left"
    );
}

/// kill -9 of `rkt run` at many moments of pod start-up (before, during and after CNI ADD and
/// the iptables batch), then `rkt gc`: nothing of any pod's networking is left.
#[test]
fn kill_9_during_network_setup_then_gc_leaves_no_network_behind() {
    let ctx = TestCtx::new();
    ok(&ctx.rkt_output(&["fetch", &bb()]));
    let mut uuids = Vec::new();
    // start-up takes ~60-100 ms here: most kills land in or around the network set-up
    for delay in (0u64..=120).step_by(8).chain([160, 250]) {
        let uf = fresh(&ctx, "uuid");
        uuids.extend(ctx.kill_sleeper_after("run", &bb(), &uf, Duration::from_millis(delay)));
    }
    // host veths as recorded (pods killed before their ADD returned have none yet)
    let pods: Vec<(String, Vec<String>)> = uuids
        .iter()
        .map(|u| {
            let ifs = rkt_tests::cleanup::pod_dirs(&ctx.dir())
                .into_iter()
                .find(|d| d.ends_with(u))
                .map(|d| net::host_ifaces_of_pod(&d))
                .unwrap_or_default();
            (u.clone(), ifs)
        })
        .collect();
    // pods killed while starting may need a moment for the kernel to drop their locks
    std::thread::sleep(Duration::from_millis(200));
    let o = ctx.rkt_output(&["gc", "--grace-period=0s", "--expire-prepared=0s"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        rkt_tests::cleanup::pod_dirs(&ctx.dir()).is_empty(),
        "{:?}",
        rkt_tests::cleanup::pod_dirs(&ctx.dir())
    );
    assert_no_net_leaks(&pods);
}

/// A plugin from `<local-config>/net.d/plugins` (a logging wrapper of ptp) runs for ADD, for DEL
/// at pod exit, and for DEL by `rkt gc` after kill -9: no address or veth is left.
#[test]
fn a_plugin_in_net_d_plugins_runs_for_add_and_del() {
    let ctx = TestCtx::new();
    let plugins = ctx.local_config().join("net.d/plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let log = ctx.root().join("plugin.log");
    let wrapper = plugins.join("rkt-test-ptp");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$CNI_COMMAND $CNI_CONTAINERID\" >> {}\nexec /usr/lib/cni/ptp\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    ctx.add_net_conf(
        "10-nt-wrap.conf",
        &json!({
            "cniVersion": "0.4.0",
            "name": "nt-wrap",
            "type": "rkt-test-ptp",
            "ipam": {"type": "host-local", "subnet": subnet(79)},
        }),
    );
    let calls = |uuid: &str| -> Vec<String> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.ends_with(uuid))
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
            .collect()
    };

    let (o, uuid) = run_sh(&ctx, &["--net=nt-wrap"], "ip -o -4 addr show eth0");
    assert!(ok(&o).contains("10.233.79."), "{}", stdout(&o));
    assert_eq!(calls(&uuid), ["ADD", "DEL"]);
    let host_ifs = net::host_ifaces_of_pod(&ctx.dir().join("pods/run").join(&uuid));
    assert!(!host_ifs.is_empty());
    assert_no_net_leaks(&[(uuid, host_ifs)]);

    let mut pod = start(&ctx, &["--net=nt-wrap"], &bb(), SLEEP);
    let host_ifs = pod.host_ifs(&ctx);
    kill_9(&ctx, &mut pod);
    assert_eq!(calls(&pod.uuid), ["ADD"]);
    ok(&ctx.rkt_output(&["gc", "--grace-period=0s"]));
    assert_eq!(calls(&pod.uuid), ["ADD", "DEL"]);
    assert_no_net_leaks(&[(pod.uuid.clone(), host_ifs)]);
}

/// A process holding the pod's network namespace when the pod exits (`ip netns exec`,
/// `nsenter`, a monitoring agent) keeps the namespace and so the pod's veth, which rkt leaves to
/// the kernel. It must not keep the host route: host-local has released the address, and the
/// next pod given it would be routed to the dead pod's veth (ptp ignores an existing host
/// route). So the veth is down and routeless while held, the next pod with the address is
/// reachable through its own veth, and the old veth goes once the holder lets go. Here the test
/// process holds the namespace.
#[test]
fn a_held_netns_keeps_no_route_to_the_exited_pods_address() {
    let ctx = TestCtx::new();
    let ip = "172.31.250.76";
    let flags = [format!("--net=default-restricted:IP={ip}")];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let pod = start(&ctx, &flags, &bb(), SLEEP);
    assert_eq!(v4(&net::netns_ifaces(&pod.uuid), "eth0").0.to_string(), ip);
    let old_ifs = pod.host_ifs(&ctx);
    assert!(!old_ifs.is_empty());
    assert!(!net::host_routes_to(ip).is_empty(), "no host route to {ip}");
    let holder = std::fs::File::open(net::netns_path(&pod.uuid)).unwrap();
    let old_uuid = pod.uuid.clone();
    stop(&ctx, pod);
    for i in &old_ifs {
        assert!(!net::link_is_up(i), "{i} of the exited pod is still up");
    }
    let routes = net::host_routes_to(ip);
    assert!(routes.is_empty(), "host route left: {routes:?}");

    // the address is free again, and routed to the pod that has it now
    let next = start(&ctx, &flags, &bb(), SLEEP);
    let new_ifs = next.host_ifs(&ctx);
    let devs: Vec<String> = net::host_routes_to(ip).into_iter().map(|r| r.dev).collect();
    assert_eq!(devs.len(), 1, "routes to {ip}: {devs:?}");
    assert!(
        new_ifs.contains(&devs[0]),
        "{ip} routed to {devs:?}, not {new_ifs:?}"
    );
    let o = ctx.rkt_output(&[
        "enter",
        &next.uuid,
        "/bin/ping",
        "-c1",
        "-W2",
        DEFAULT_RESTRICTED_GW,
    ]);
    assert_eq!(o.status.code(), Some(0), "ping the gateway: {}", stderr(&o));

    drop(holder);
    let t0 = Instant::now();
    while old_ifs.iter().any(|i| net::host_link_exists(i)) && t0.elapsed() < LINK_GRACE {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_no_net_leaks(&[(old_uuid, old_ifs)]);
    stop_leaving_no_network(&ctx, next, None);
}

/// Python (Debian's python3) run in pod `uuid`'s network namespace, standing in for an app with
/// `CAP_NET_RAW` (a default capability): it writes IPv4/UDP frames with any source and
/// destination straight onto the pod's `eth0`, addressed to the MAC of the host's side of the
/// link, so neither the pod's routes nor its own loopback get in the way.
const RAW_UDP: &str = r#"
import socket, struct, sys
src, dst, dport, mac, payload = sys.argv[1:6]
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff
data = payload.encode()
udp = struct.pack('!HHHH', 40000, int(dport), 8 + len(data), 0) + data
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0x4000, 64, 17, 0,
                 socket.inet_aton(src), socket.inet_aton(dst))
ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
for _ in range(3):
    s.sendto(ip + udp, ('eth0', 0x0800, 0, 0, bytes.fromhex(mac.replace(':', ''))))
"#;

/// Send forged frames from pod `uuid` (see [`RAW_UDP`]) to `dst:dport`, claiming `src`.
fn forge_udp(uuid: &str, host_mac: &str, src: &str, dst: &str, dport: u16, payload: &str) {
    let netns = format!("rkt-{uuid}");
    rkt_tests::run_ok(std::process::Command::new("ip").args([
        "netns",
        "exec",
        &netns,
        "python3",
        "-c",
        RAW_UDP,
        src,
        dst,
        &dport.to_string(),
        host_mac,
        payload,
    ]));
}

/// The datagrams `sock` receives within a second.
fn received(sock: &std::net::UdpSocket) -> Vec<String> {
    sock.set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while let Ok(n) = sock.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    got
}

/// A host-side interface of the pod and its MAC address.
fn host_link(ctx: &TestCtx, pod: &Pod) -> (String, String) {
    let dev = pod.host_ifs(ctx).into_iter().next().expect("a host veth");
    let mac = std::fs::read_to_string(format!("/sys/class/net/{dev}/address")).unwrap();
    (dev.clone(), mac.trim().to_string())
}

/// CVE-2020-8558: `--port` sets `route_localnet=1` on the pod's host-side link (so the host's
/// `127.0.0.1:PORT` forwards into the pod), which also lets the kernel accept the pod's packets
/// for 127.0.0.0/8. A pod with `CAP_NET_RAW` must still not reach a service bound to the host's
/// loopback; the same frames to the gateway's address arrive (the attack itself works).
/// Traffic: frames inside the pod's own link, to the host's side of it.
#[test]
fn port_forward_does_not_open_the_hosts_loopback_to_the_pod() {
    let ctx = TestCtx::new();
    let port = free_port();
    let img = images::busybox_with_ports().oci_ref();
    let pod = start(&ctx, &[&format!("--port=80-tcp:{port}")], &img, SLEEP);
    let (dev, mac) = host_link(&ctx, &pod);
    let localnet = std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{dev}/route_localnet"));
    assert_eq!(
        localnet.unwrap().trim(),
        "1",
        "the premise: forwards need it"
    );
    let ip = assert_on_default(&pod.uuid).to_string();
    let loopback = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let gateway = std::net::UdpSocket::bind((DEFAULT_GW, 0)).unwrap();
    let lport = loopback.local_addr().unwrap().port();
    let gport = gateway.local_addr().unwrap().port();
    forge_udp(&pod.uuid, &mac, &ip, "127.0.0.1", lport, "to-loopback");
    forge_udp(&pod.uuid, &mac, &ip, DEFAULT_GW, gport, "to-gateway");
    assert_eq!(received(&gateway), vec!["to-gateway"; 3], "control");
    assert_eq!(
        received(&loopback),
        Vec::<String>::new(),
        "host loopback reached"
    );
    // (the forwards from the host's loopback still work: port_forward_answers_on_loopback_…)
    stop(&ctx, pod);
}

/// A pod must not send with another pod's (or any foreign) source address: the host's side of
/// a `ptp` link filters by reverse path, strictly.
#[test]
fn a_pod_cannot_forge_its_source_address() {
    let ctx = TestCtx::new();
    let pod = start(&ctx, &[], &bb(), SLEEP);
    let (dev, mac) = host_link(&ctx, &pod);
    let ip = assert_on_default(&pod.uuid).to_string();
    let gateway = std::net::UdpSocket::bind((DEFAULT_GW, 0)).unwrap();
    let gport = gateway.local_addr().unwrap().port();
    // an address of the subnet no pod has, as another pod's would be
    forge_udp(
        &pod.uuid,
        &mac,
        "172.16.28.254",
        DEFAULT_GW,
        gport,
        "forged",
    );
    forge_udp(&pod.uuid, &mac, &ip, DEFAULT_GW, gport, "own");
    assert_eq!(received(&gateway), vec!["own"; 3]);
    let rp = std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{dev}/rp_filter"));
    assert_eq!(rp.unwrap().trim(), "1");
    stop(&ctx, pod);
}
