//! `--private-users`: a pod in its own user namespace. What the pod sees (its uid_map, root
//! inside, the image's files owned by its root) comes from the verifier run inside; what the
//! host sees (the app's host uid, owners of what it wrote to its writable layer and volumes,
//! the claimed ranges) is read on the host. Each test gives its context a pool of its own
//! (`userns.d`), so tests running in parallel never share host ids.

use rkt_tests::{cleanup, images, stderr, stdout, TestCtx};
use serde_json::Value;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

/// The pod's ids: `auto` gives each pod this many.
const POD_IDS: u32 = 65536;

fn bb() -> String {
    images::busybox().oci_ref()
}

/// A context whose pool is `pods` ranges of 65536 ids from `base`, and whose root others may
/// search (the pod's root must reach its files from inside its namespace).
fn ctx_with_pool(base: u32, pods: u32) -> TestCtx {
    let ctx = TestCtx::new();
    open_to_others(ctx.root());
    let d = ctx.local_config().join("userns.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("pool.json"),
        format!(
            r#"{{"rktKind":"userns","rktVersion":"v1","ranges":["{base}:{}"]}}"#,
            pods * POD_IDS
        ),
    )
    .unwrap();
    ctx
}

fn open_to_others(p: &Path) {
    let m = std::fs::metadata(p).unwrap().permissions().mode();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m | 0o001)).unwrap();
}

/// A host dir anyone may write (a volume for the pod's results).
fn out_dir(ctx: &TestCtx, name: &str) -> PathBuf {
    let d = ctx.root().join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    d
}

fn one_line_254(o: &Output, want: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(254), "stderr: {err}");
    assert!(err.contains(want), "want {want:?} in {err:?}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
}

fn json(s: &str) -> Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("{e}: {s:?}"))
}

fn pod_dir(ctx: &TestCtx, uuid: &str) -> PathBuf {
    for phase in ["run", "prepared", "exited-garbage", "prepare"] {
        let d = ctx.dir().join("pods").join(phase).join(uuid);
        if d.is_dir() {
            return d;
        }
    }
    panic!("no pod dir for {uuid}");
}

/// The range a pod claimed (its `private-users` file).
fn claim_of(ctx: &TestCtx, uuid: &str) -> (u32, u32) {
    let v = json(&std::fs::read_to_string(pod_dir(ctx, uuid).join("private-users")).unwrap());
    (
        v["shift"].as_u64().unwrap() as u32,
        v["count"].as_u64().unwrap() as u32,
    )
}

/// PIDs and command names of the processes whose real uid is in `start..start+count`.
fn processes_of(start: u32, count: u32) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let uid: u32 = match field("Uid:").split_whitespace().next().map(str::parse) {
            Some(Ok(u)) => u,
            _ => continue,
        };
        if uid >= start && uid - start < count && field("State:") != "Z (zombie)" {
            out.push(format!(
                "{} {} {}",
                e.file_name().to_string_lossy(),
                field("Name:"),
                field("State:")
            ));
        }
    }
    out
}

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.uid(), m.gid())
}

#[test]
fn the_pods_root_is_an_unprivileged_host_id_and_sees_its_image_as_its_own() {
    let base = 3_000_000;
    let ctx = ctx_with_pool(base, 2);
    let out = out_dir(&ctx, "out");
    let vol = format!("out,kind=host,source={}", out.display());
    let uf = ctx.root().join("uuid");
    let o = ctx.rkt_output(&[
        "run",
        "--private-users",
        "--net=none",
        &format!("--uuid-file-save={}", uf.display()),
        "--volume",
        &vol,
        "--volume=e,kind=empty,mode=0750,uid=7,gid=8",
        &bb(),
        "--mount=volume=out,target=/out",
        "--mount=volume=e,target=/e",
        "--exec=/bin/sh",
        "--",
        "-c",
        "rkt-verifier > /out/report.json && \
         rkt-verifier stat / /bin /usr/bin/rkt-verifier /etc/passwd /e > /out/stat.json && \
         touch /made-here && mkdir /dir-here && echo x > /out/from-pod && \
         mkdir /e/sub && cat /proc/self/uid_map > /out/map",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let uuid = std::fs::read_to_string(&uf).unwrap();
    let (shift, count) = claim_of(&ctx, &uuid);
    assert_eq!((shift, count), (base, POD_IDS), "the pool's first range");

    // inside: the pod's root is root, through the mapping
    let r = json(&std::fs::read_to_string(out.join("report.json")).unwrap());
    assert_eq!(r["uid"], 0, "{r}");
    assert_eq!(r["gid"], 0, "{r}");
    let line = format!("0 {shift} {count}");
    assert_eq!(r["uid_map"], serde_json::json!([line]), "{r}");
    assert_eq!(r["gid_map"], serde_json::json!([line]), "{r}");
    let host_userns = std::fs::read_link("/proc/self/ns/user").unwrap();
    assert_ne!(
        r["namespaces"]["user"].as_str().unwrap(),
        host_userns.to_str().unwrap()
    );
    // the image's files, root-owned in the store, are the pod root's; the empty volume has the
    // owner the manifest gave it, in the pod's ids
    let st = json(&std::fs::read_to_string(out.join("stat.json")).unwrap());
    for p in ["/", "/bin", "/usr/bin/rkt-verifier", "/etc/passwd"] {
        assert_eq!(
            (st[p]["uid"].as_i64(), st[p]["gid"].as_i64()),
            (Some(0), Some(0)),
            "{p}: {st}"
        );
    }
    assert_eq!(
        (st["/e"]["uid"].as_i64(), st["/e"]["gid"].as_i64()),
        (Some(7), Some(8)),
        "{st}"
    );

    // from the host: what the pod made belongs to the mapped ids
    let dir = pod_dir(&ctx, &uuid);
    let upper = dir.join("apps/busybox/upper");
    assert_eq!(owner(&upper.join("made-here")), (shift, shift));
    assert_eq!(owner(&upper.join("dir-here")), (shift, shift));
    assert_eq!(owner(&out.join("from-pod")), (shift, shift));
    assert_eq!(owner(&dir.join("volumes/e")), (shift + 7, shift + 8));
    assert_eq!(owner(&dir.join("volumes/e/sub")), (shift, shift));
    // ... and nothing in the store changed owner: the layers were idmapped, not chowned
    let layers = ctx.dir().join("cas/layers");
    for l in std::fs::read_dir(&layers).unwrap() {
        let l = l.unwrap().path();
        assert_eq!(owner(&l.join("bin")).0, 0, "{}", l.display());
    }
    cleanup::assert_no_mounts_under(&ctx.dir(), "mounts left by an exited pod");

    // rkt export gives the pod's ids back: fetched again and run without private users, what
    // the pod made is root's
    let archive = ctx.root().join("exported.tar");
    let o = ctx.rkt_output(&["export", &uuid, archive.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let aref = format!("oci-archive:{}", archive.display());
    let o = ctx.rkt_output(&["fetch", &aref]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = ctx.rkt_output(&[
        "run",
        "--net=none",
        &aref,
        "--exec=/usr/bin/rkt-verifier",
        "--",
        "stat",
        "/made-here",
        "/bin",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let st = json(&stdout(&o));
    for p in ["/made-here", "/bin"] {
        assert_eq!(st[p]["uid"].as_i64(), Some(0), "{p}: {st}");
    }
}

#[test]
fn a_running_apps_processes_run_as_mapped_ids_and_enter_joins_the_namespace() {
    let base = 3_300_000;
    let ctx = ctx_with_pool(base, 1);
    // the default network: its namespace belongs to the pod's user namespace
    let img = bb();
    let (mut child, uuid) = ctx.spawn_pod(
        &[],
        &[
            "--private-users",
            &img,
            "--name=a",
            "--exec=/bin/sleep",
            "--",
            "30",
            "---",
            &img,
            "--name=b",
            "--user=1000",
            "--exec=/bin/sleep",
            "--",
            "30",
        ],
        Stdio::null(),
    );
    // rkt status says which ids the pod has
    let o = ctx.rkt_output(&["status", "--format=json", &uuid]);
    let st = json(&stdout(&o));
    assert_eq!(st["private_users"]["shift"], base, "{st}");
    assert_eq!(st["private_users"]["count"], POD_IDS, "{st}");
    let dir = pod_dir(&ctx, &uuid);
    for (app, id) in [("a", 0), ("b", 1000)] {
        let st = json(&std::fs::read_to_string(dir.join("status").join(app)).unwrap());
        let pid = st["pid"].as_i64().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        let want = (base + id).to_string();
        assert!(
            uid_line.split_whitespace().skip(1).all(|u| u == want),
            "{app}: {uid_line}"
        );
    }
    // the pod's PID 1 is the pod's root, not the host's
    let sb: i64 = std::fs::read_to_string(dir.join("sandbox-pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let sb_uid = std::fs::metadata(format!("/proc/{sb}")).unwrap().uid();
    assert_eq!(sb_uid, base);

    // rkt enter runs in the pod's user namespace: root there is not root here
    let o = ctx.rkt_output(&["enter", "--app=a", &uuid, "/usr/bin/rkt-verifier"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = json(&stdout(&o));
    assert_eq!(r["uid_map"], serde_json::json!([format!("0 {base} 65536")]));
    assert_eq!(r["uid"], 0);
    // networking inside: the pod's root may use raw sockets in its own network namespace
    let o = ctx.rkt_output(&[
        "enter",
        "--app=a",
        &uuid,
        "/bin/sh",
        "-c",
        "ip -4 addr show eth0 | grep -q inet && ping -c1 -W2 127.0.0.1 >/dev/null",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let o = ctx.rkt_output(&["stop", &uuid]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let _ = child.wait();
}

#[test]
fn auto_ranges_are_disjoint_an_empty_pool_is_an_error_and_gc_releases_them() {
    let base = 3_500_000;
    let ctx = ctx_with_pool(base, 2);
    let prepare = |ctx: &TestCtx| {
        ctx.rkt_output(&["prepare", "--private-users=auto", &bb(), "--exec=/bin/true"])
    };
    // two at once: the claims are made one at a time
    let (o1, o2) = std::thread::scope(|s| {
        let a = s.spawn(|| prepare(&ctx));
        let b = s.spawn(|| prepare(&ctx));
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut uuids = Vec::new();
    for o in [o1, o2] {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        uuids.push(stdout(&o).trim().to_string());
    }
    uuids.sort_by_key(|u| claim_of(&ctx, u).0);
    let a = claim_of(&ctx, &uuids[0]);
    let b = claim_of(&ctx, &uuids[1]);
    assert_eq!(a, (base, POD_IDS));
    assert_eq!(b, (base + POD_IDS, POD_IDS));
    // a third: nothing left, said in one line, nothing created
    let o = prepare(&ctx);
    one_line_254(&o, "no free range of 65536 ids");
    assert_eq!(ctx.pods_in("prepared").len(), 2);
    assert!(ctx.pods_in("prepare").is_empty() && ctx.pods_in("garbage").is_empty());
    // a range asked for that overlaps one taken: refused, naming the pod that has it
    let o = ctx.rkt_output(&[
        "prepare",
        &format!("--private-users={}:10", base + 5),
        &bb(),
        "--exec=/bin/true",
    ]);
    one_line_254(&o, &uuids[0]);

    // rm releases a range: the next pod gets it
    let o = ctx.rkt_output(&["rm", &uuids[0]]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = prepare(&ctx);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let c = stdout(&o).trim().to_string();
    assert_eq!(claim_of(&ctx, &c), (base, POD_IDS));

    // a prepared pod with private users runs (run-prepared mounts its idmapped layers again)
    let o = ctx.rkt_output(&["run-prepared", "--net=none", &c]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // kill -9 of a running pod's rkt, then gc: its range is free again, nothing left
    let o = ctx.rkt_output(&["rm", &uuids[1]]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (mut child, killed) = ctx.spawn_pod(
        &[],
        &[
            "--private-users",
            "--net=none",
            &bb(),
            "--exec=/bin/sleep",
            "--",
            "30",
        ],
        Stdio::null(),
    );
    assert_eq!(claim_of(&ctx, &killed), (base + POD_IDS, POD_IDS));
    child.kill().unwrap();
    child.wait().unwrap();
    for _ in 0..2 {
        let o = ctx.rkt_output(&["gc", "--grace-period=0s"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    ctx.assert_nothing_left();
    // ... and no process of its ids: the pod's PID 1 died with the killed rkt (its parent-death
    // signal survives becoming the namespace's root), and its apps with it
    // (the kernel finishes a SIGKILL of a pid namespace's init asynchronously: 5 s for that)
    let t = std::time::Instant::now();
    let mut left = processes_of(base + POD_IDS, POD_IDS);
    while !left.is_empty() && t.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(20));
        left = processes_of(base + POD_IDS, POD_IDS);
    }
    assert!(
        left.is_empty(),
        "processes of the killed pod's ids: {left:?}"
    );
    // both ranges are free: two new pods get them again
    for want in [base, base + POD_IDS] {
        let o = prepare(&ctx);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(claim_of(&ctx, stdout(&o).trim()), (want, POD_IDS));
    }
}

#[test]
fn root_in_the_pod_cannot_use_host_root_through_a_volume() {
    let ctx = ctx_with_pool(3_700_000, 1);
    // a host dir as an admin shares it: root's, world-readable, one file root-only
    let shared = ctx.root().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(shared.join("config"), "host\n").unwrap();
    std::fs::write(shared.join("secret"), "key\n").unwrap();
    std::fs::set_permissions(
        shared.join("secret"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let vol = format!("shared,kind=host,source={}", shared.display());
    let attack = "rkt-verifier write /shared/config; a=$?; rkt-verifier write /shared/new; b=$?; \
                  rkt-verifier read /shared/secret; c=$?; chmod 777 /shared; d=$?; \
                  echo $a$b$c$d; [ $a$b$c$d = 1111 ]";
    let run = |private: bool| {
        let mut args = vec!["run", "--net=none", "--volume", &vol];
        if private {
            args.insert(1, "--private-users");
        }
        let tail = [
            bb(),
            "--mount=volume=shared,target=/shared".into(),
            "--exec=/bin/sh".into(),
            "--".into(),
            "-c".into(),
            attack.into(),
        ];
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(tail);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        ctx.rkt_output(&refs)
    };
    // the host's root would succeed at each (so the test can fail) ...
    let o = run(false);
    assert_ne!(
        o.status.code(),
        Some(0),
        "root without private users: {}",
        stdout(&o)
    );
    let last = |o: &Output| {
        stdout(o)
            .trim()
            .lines()
            .last()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(last(&o), "0000", "{}", stderr(&o));
    std::fs::write(shared.join("config"), "host\n").unwrap();
    let _ = std::fs::remove_file(shared.join("new"));
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    // ... the pod's root fails at every one: the host's files are nobody's in the pod
    let o = run(true);
    assert_eq!(o.status.code(), Some(0), "{} {}", stdout(&o), stderr(&o));
    assert_eq!(last(&o), "1111");
    assert_eq!(
        std::fs::read_to_string(shared.join("config")).unwrap(),
        "host\n"
    );
    assert!(!shared.join("new").exists());
    assert_eq!(
        std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777,
        0o755
    );
}

#[test]
fn ids_outside_the_range_and_unreachable_data_dirs_are_clear_errors() {
    let ctx = ctx_with_pool(3_900_000, 1);
    // a user the 65536 ids do not cover
    let o = ctx.rkt_output(&[
        "run",
        "--private-users",
        "--net=none",
        &bb(),
        "--user=70000",
        "--exec=/bin/true",
    ]);
    one_line_254(
        &o,
        "uid 70000 is outside the pod's user namespace (ids 0 to 65535)",
    );
    // a range of 1000 ids: gid 1000 (and more) is outside
    let o = ctx.rkt_output(&[
        "run",
        "--private-users=3990000:1000",
        "--net=none",
        &bb(),
        "--user=999",
        "--group=1000",
        "--exec=/bin/true",
    ]);
    one_line_254(&o, "gid 1000 is outside");
    for bad in ["0:65536", "1:0", "many", "5"] {
        let o = ctx.rkt_output(&[
            "run",
            &format!("--private-users={bad}"),
            &bb(),
            "--exec=/bin/true",
        ]);
        one_line_254(&o, "--private-users");
    }
    for _ in 0..2 {
        let o = ctx.rkt_output(&["gc", "--grace-period=0s"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    ctx.assert_nothing_left();

    // no pool at all: the subuid files give user rkt nothing here
    let ctx2 = TestCtx::new();
    open_to_others(ctx2.root());
    let has_rkt = |f: &str| {
        std::fs::read_to_string(f).is_ok_and(|s| s.lines().any(|l| l.starts_with("rkt:")))
    };
    if !has_rkt("/etc/subuid") || !has_rkt("/etc/subgid") {
        let o = ctx2.rkt_output(&["prepare", "--private-users", &bb(), "--exec=/bin/true"]);
        one_line_254(&o, "/etc/subuid");
        assert!(ctx2.pods_in("prepared").is_empty());
    }

    // a data dir others cannot search: named before anything runs
    let ctx3 = TestCtx::new();
    std::fs::set_permissions(ctx3.root(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let o = ctx3.rkt_output(&[
        "run",
        "--private-users=4100000:65536",
        "--net=none",
        &bb(),
        "--exec=/bin/true",
    ]);
    one_line_254(&o, &format!("chmod o+x {}", ctx3.root().display()));
    let o = ctx3.rkt_output(&["gc", "--grace-period=0s"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    ctx3.assert_nothing_left();
}

#[test]
fn the_hosts_network_and_ipc_namespaces_work_with_private_users() {
    let ctx = ctx_with_pool(4_300_000, 1);
    // a user namespace cannot mount a sysfs or mqueue of namespaces it does not own: the
    // host's are bound instead (sysfs read-only)
    let o = ctx.rkt_output(&[
        "run",
        "--private-users",
        "--net=host",
        "--ipc=parent",
        &bb(),
        "--exec=/bin/sh",
        "--",
        "-c",
        "ls /sys/class/net | grep -qx lo && ! touch /sys/kernel/x 2>/dev/null && rkt-verifier",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = json(stdout(&o).lines().last().unwrap_or_default());
    let host = |n: &str| {
        std::fs::read_link(format!("/proc/self/ns/{n}"))
            .unwrap()
            .display()
            .to_string()
    };
    assert_eq!(r["namespaces"]["net"].as_str(), Some(host("net").as_str()));
    assert_eq!(r["namespaces"]["ipc"].as_str(), Some(host("ipc").as_str()));
    assert_ne!(
        r["namespaces"]["user"].as_str(),
        Some(host("user").as_str())
    );
    assert_eq!(r["uid_map"], serde_json::json!(["0 4300000 65536"]));
}

#[test]
fn an_idmapped_host_volume_shows_the_hosts_owners_and_is_asked_for_explicitly() {
    let base = 4_500_000;
    let ctx = ctx_with_pool(base, 1);
    // a dir the host's root owns, with a file of a host user
    let shared = ctx.root().join("idmapped");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(shared.join("users"), "1000\n").unwrap();
    std::os::unix::fs::chown(shared.join("users"), Some(1000), Some(1000)).unwrap();
    let vol = format!("sh,kind=host,source={},idmap=true", shared.display());
    let o = ctx.rkt_output(&[
        "run",
        "--private-users",
        "--net=none",
        "--volume",
        &vol,
        &bb(),
        "--mount=volume=sh,target=/sh",
        "--exec=/bin/sh",
        "--",
        "-c",
        "rkt-verifier stat /sh /sh/users && echo new > /sh/made-by-pod-root",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // through the mapping the pod sees the host's owners ...
    let st = json(stdout(&o).lines().next().unwrap_or_default());
    assert_eq!(st["/sh"]["uid"].as_i64(), Some(0), "{st}");
    assert_eq!(st["/sh/users"]["uid"].as_i64(), Some(1000), "{st}");
    // ... and what its root makes there is the host root's: that is what idmap=true hands over
    assert_eq!(owner(&shared.join("made-by-pod-root")), (0, 0));
    // the idmapped clone was the app's helper's alone: nothing of it on the host
    cleanup::assert_no_mounts_under(&ctx.dir(), "mounts left");
    cleanup::assert_no_mounts_under(&shared, "idmapped volume visible on the host");
    // without private users there is no mapping to apply: refused before anything is made
    let o = ctx.rkt_output(&[
        "run",
        "--net=none",
        "--volume",
        &vol,
        &bb(),
        "--mount=volume=sh,target=/sh",
        "--exec=/bin/true",
    ]);
    one_line_254(&o, "idmap=true needs --private-users");
    assert_eq!(ctx.pods_in("run").len(), 1);
}
