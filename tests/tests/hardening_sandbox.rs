//! Hardening of the pod sandbox (the pod's PID 1) and of the pod's process lifetime, attacked
//! from inside pods with the real `rkt` binary:
//!
//! * an app granted CAP_SYS_PTRACE (and one with CAP_SYS_ADMIN on top) looks through every
//!   process of its pid namespace (`/proc/N/{root,cwd,fd,map_files,environ,exe}`, PID 1's
//!   mount namespace) for a marker file and an environment variable of the host;
//! * a fork bomb under `--pids-limit`, and processes that outlive `rkt stop --force` + `rkt gc`.

use rkt_tests::{images, stderr, stdout, TestCtx};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

fn bb() -> String {
    images::busybox().oci_ref()
}

/// A string nobody else has.
fn unique(what: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{}-{t:x}", std::process::id())
}

/// The attacker's script: for every process of the pod's pid namespace, try to reach the host's
/// marker file through its root, cwd, directory descriptors and mapped files (straight and with
/// `..` walks), print its environment, try to write its executable; then join PID 1's mount
/// namespace and read the marker there. `WITNESS` lines prove it saw PID 1.
fn attack_script(marker: &Path) -> String {
    let m = marker.display();
    format!(
        r#"
M={m}
UP=../../../../../../../../..
try() {{ cat "$1" 2>/dev/null && echo "LEAK $1"; }}
for p in /proc/[0-9]*; do
  [ "$p" = /proc/self ] && continue
  echo "WITNESS $p $(cat $p/comm 2>/dev/null)"
  echo "EXE $p $(readlink $p/exe 2>/dev/null)"
  for l in root cwd; do
    try "$p/$l$M"
    try "$p/$l/$UP$M"
    ls "$p/$l/" 2>/dev/null | sed "s|^|LIST $p/$l: |"
  done
  for f in $p/fd/* $p/map_files/*; do
    [ -e "$f" ] || continue
    echo "SEEN $f -> $(readlink $f)"
    # opening for append writes nothing: a safe probe of write access
    ( : >> "$f" ) 2>/dev/null && echo "WRITABLE $f -> $(readlink $f)"
    if [ -d "$f" ]; then try "$f/$UP$M"; fi
  done
  tr '\0' '\n' < $p/environ 2>/dev/null | sed "s|^|ENV $p: |"
  if [ "$p" = /proc/1 ]; then
    ( : >> $p/exe ) 2>/dev/null && echo "LEAK $p/exe opened for writing"
    ( : >> $p/root/x ) 2>/dev/null && echo "LEAK created $p/root/x"
  fi
done
nsenter -t 1 -m cat $M 2>/dev/null && echo "LEAK nsenter -m"
nsenter -t 1 -m ls / 2>/dev/null | sed "s|^|NSLIST |"
exit 0
"#
    )
}

/// Run the attack in a pod whose app keeps `caps`; the host has a marker file and an
/// environment variable with secrets. Returns the attacker's output and the two secrets.
fn attack(ctx: &TestCtx, caps: &str) -> (Output, String, String) {
    let marker = ctx.root().join("host-marker");
    let marker_secret = unique("marker");
    std::fs::write(&marker, &marker_secret).unwrap();
    let env_secret = unique("env");
    let o = ctx
        .rkt()
        .arg("--insecure-options=image")
        .env("RKT_TEST_HOST_SECRET", &env_secret)
        .args([
            "run",
            "--net=none",
            &bb(),
            &format!("--caps-retain={caps}"),
            "--exec=/bin/sh",
            "--",
            "-c",
            &attack_script(&marker),
        ])
        .output()
        .expect("spawn rkt");
    (o, marker_secret, env_secret)
}

fn assert_nothing_of_the_host(o: &Output, marker_secret: &str, env_secret: &str) {
    let out = stdout(o);
    assert_eq!(o.status.code(), Some(0), "stderr: {}\n{out}", stderr(o));
    // the attacker did look at the sandbox
    assert!(
        out.lines().any(|l| l == "WITNESS /proc/1 rkt-pause"),
        "PID 1 not seen:\n{out}"
    );
    assert!(!out.contains(marker_secret), "host marker read:\n{out}");
    assert!(!out.contains(env_secret), "host environment read:\n{out}");
    let leaks: Vec<&str> = out.lines().filter(|l| l.starts_with("LEAK")).collect();
    assert!(leaks.is_empty(), "{leaks:?}\n{out}");
    // PID 1's root, cwd and mount namespace are empty (the host's / lists etc, usr, …)
    let listed: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("LIST /proc/1/") || l.starts_with("NSLIST "))
        .collect();
    assert!(listed.is_empty(), "PID 1's root is not empty: {listed:?}");
    // PID 1 is the pause program from a sealed memfd (`rkt-monitor --pause`): its executable
    // and mapped files (visible with CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE) are no host file
    let exe = out
        .lines()
        .find_map(|l| l.strip_prefix("EXE /proc/1 "))
        .unwrap_or("");
    assert!(
        exe.starts_with("/memfd:rkt-pause"),
        "PID 1 runs {exe:?}, not the pause program (needs rkt-monitor next to rkt-stage1: \
         `make build`)\n{out}"
    );
    let seen: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("SEEN /proc/1/"))
        .filter(|l| {
            !(l.starts_with("SEEN /proc/1/map_files/") && l.contains(" -> /memfd:rkt-pause"))
        })
        .collect();
    assert!(
        seen.is_empty(),
        "PID 1 descriptors/mappings visible: {seen:?}\n{out}"
    );
    // (the app's own stdio, /proc/2/fd/*, is writable, as it should be)
    let writable: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("WRITABLE /proc/1/"))
        .collect();
    assert!(writable.is_empty(), "{writable:?}\n{out}");
}

/// Item 1: an app with CAP_SYS_PTRACE (Docker and the kubelet hand it to debugging sidecars)
/// finds nothing of the host through any process of its pod.
#[test]
fn ptrace_app_cannot_reach_the_host_through_pid_1() {
    let ctx = TestCtx::new();
    let (o, m, e) = attack(&ctx, "CAP_SYS_PTRACE");
    assert_nothing_of_the_host(&o, &m, &e);
}

/// Item 1, stronger attacker: CAP_SYS_ADMIN on top opens `/proc/N/map_files` and lets the app
/// join PID 1's mount namespace (nsenter -m), which before held a copy of the host's tree.
/// PID 1 must map no host file: a fork of rkt-stage1 mapped that binary and, linked dynamically,
/// the host's libc, writable through map_files by a root app. Needs `rkt-monitor` next to
/// rkt-stage1 (`make build`), whose pause mode PID 1 becomes.
#[test]
fn admin_app_cannot_reach_the_host_through_pid_1s_mount_namespace() {
    let ctx = TestCtx::new();
    let (o, m, e) = attack(&ctx, "CAP_SYS_PTRACE,CAP_SYS_ADMIN,CAP_SYS_CHROOT");
    assert_nothing_of_the_host(&o, &m, &e);
}

// ---- item 9: pids limit, and nothing of a pod outlives `stop --force` / `gc` ----

/// A pod started in the background: the `rkt run` child, its UUID and pod dir.
struct BgPod {
    child: std::process::Child,
    uuid: String,
    dir: PathBuf,
}

impl Drop for BgPod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rkt run --net=none [pod_flags] busybox [app_flags] EXEC…` in the
/// background; returns once the pod's app runs (its cgroups are listed and the app cgroup holds
/// a process).
fn start_bg(ctx: &TestCtx, pod_flags: &[&str], app_flags: &[&str], exec: &[&str]) -> BgPod {
    let uf = ctx.root().join(unique("uuid"));
    let img = bb();
    let child = ctx
        .rkt()
        .arg("--insecure-options=image")
        .arg("run")
        .arg("--net=none")
        .arg(format!("--uuid-file-save={}", uf.display()))
        .args(pod_flags)
        .arg(&img)
        .args(app_flags)
        .args(exec)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn rkt");
    let mut pod = BgPod {
        child,
        uuid: String::new(),
        dir: PathBuf::new(),
    };
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < until, "pod did not start");
        if let Ok(st) = pod.child.try_wait() {
            assert!(st.is_none(), "rkt run exited: {st:?}");
        }
        if pod.uuid.is_empty() {
            if let Ok(u) = std::fs::read_to_string(&uf) {
                if u.trim().len() == 36 {
                    pod.uuid = u.trim().to_string();
                    pod.dir = ctx.dir().join("pods/run").join(&pod.uuid);
                }
            }
        }
        if !pod.uuid.is_empty() && pod.dir.join("ready").exists() {
            return pod;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The verifier's fork bomb: CPU spinners forked as fast as the limit lets it, retrying
/// failed forks forever (a shell exits at its first failed fork).
const FORK_BOMB: &[&str] = &["--exec=/usr/bin/rkt-verifier", "--", "forkbomb"];

/// The cgroup dirs the pod recorded.
fn listed_cgroups(pod_dir: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string(pod_dir.join("cgroups"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(PathBuf::from)
        .collect()
}

/// The pod's cgroup in the v1 `pids` hierarchy (the shortest listed dir there).
fn pids_cgroup(pod_dir: &Path) -> PathBuf {
    listed_cgroups(pod_dir)
        .into_iter()
        .filter(|d| d.starts_with("/sys/fs/cgroup/pids"))
        .min_by_key(|d| d.components().count())
        .expect("no pids cgroup listed (this test needs the v1 pids hierarchy)")
}

fn read_num(p: &Path) -> u64 {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(0)
}

/// `PF_EXITING` of a task's flags (include/linux/sched.h).
const PF_EXITING: u64 = 0x4;

/// Host PIDs of live (not zombie, not exiting) processes whose cgroup path names `uuid`, plus those of
/// `pids` (stage1, the pod's PID 1) still alive.
fn live_processes_of(uuid: &str, pids: &[i32]) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if !cg.contains(uuid) && !pids.contains(&pid) {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rfind(')')
            .map(|i| stat[i + 1..].split_whitespace().collect())
            .unwrap_or_default();
        // fields[0] is the state (field 3), fields[6] the flags (field 9)
        let (Some(state), Some(flags)) = (fields.first(), fields.get(6)) else {
            continue; // gone meanwhile
        };
        // PF_EXITING: killed and in the kernel's exit path, running no code of its own. A pod's
        // PID 1 stays there until every process of its namespace is reaped, which for the apps
        // (orphans of stage1, reparented to the host's init) is the host init's business.
        let exiting = flags.parse::<u64>().is_ok_and(|f| f & PF_EXITING != 0);
        if *state != "Z" && *state != "X" && !exiting {
            out.push((pid, stat.chars().take(60).collect()));
        }
    }
    out
}

/// Throttle the pod hard from the host: 1 ms of CPU per second in each of its v1 cpu cgroups
/// (what `--cpu=1m` would give), so that its processes can hardly run, also to die.
fn throttle(pod_dir: &Path) {
    let mut n = 0;
    let mut dirs = listed_cgroups(pod_dir);
    // children first: a v1 parent's quota may not be below a child's
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        if d.join("cpu.cfs_quota_us").exists() {
            std::fs::write(d.join("cpu.cfs_period_us"), "1000000").unwrap();
            std::fs::write(d.join("cpu.cfs_quota_us"), "1000").unwrap();
            n += 1;
        }
    }
    assert!(
        n > 0,
        "no cpu cgroup listed (this test needs the v1 cpu hierarchy)"
    );
}

fn pid_file(pod_dir: &Path, f: &str) -> i32 {
    read_num(&pod_dir.join(f)) as i32
}

/// A fork bomb of CPU spinners stays at `--pids-limit`, and `rkt stop --force` returns only once
/// every process of the pod is gone and its cgroups with them (the spinners are CPU-throttled
/// with `--cpu`: before, such processes lived ≈ 15 s after stop and gc reported success).
#[test]
fn fork_bomb_stays_at_the_pids_limit_and_dies_with_stop_force() {
    let ctx = TestCtx::new();
    let limit = 48;
    let pod = start_bg(
        &ctx,
        &[&format!("--pids-limit={limit}")],
        &["--cpu=300m"],
        FORK_BOMB,
    );
    let pids = pids_cgroup(&pod.dir);
    assert_eq!(read_num(&pids.join("pids.max")), limit);
    // the bomb reaches the limit and stays there
    let until = Instant::now() + Duration::from_secs(40);
    while read_num(&pids.join("pids.current")) < limit && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let current = read_num(&pids.join("pids.current"));
    assert_eq!(current, limit, "pids.current");
    let in_cgroup = live_processes_of(&pod.uuid, &[]).len() as u64;
    assert!(
        in_cgroup <= limit,
        "{in_cgroup} processes in the pod's cgroups"
    );

    throttle(&pod.dir);
    let stage1 = pid_file(&pod.dir, "pid");
    let sandbox = pid_file(&pod.dir, "sandbox-pid");
    let cgroups = listed_cgroups(&pod.dir);
    let t = Instant::now();
    let o = ctx.rkt_output(&["stop", "--force", &pod.uuid]);
    let took = t.elapsed();
    assert_eq!(o.status.code(), Some(0), "stop: {}", stderr(&o));
    // at once: nothing of the pod runs, and its cgroups are gone
    let live = live_processes_of(&pod.uuid, &[stage1, sandbox]);
    assert!(
        live.is_empty(),
        "alive after stop --force ({took:?}): {live:?}"
    );
    let left: Vec<&PathBuf> = cgroups.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "cgroups left after stop --force: {left:?}");
    let o = ctx.rkt_output(&["gc", "--grace-period=0s"]);
    assert_eq!(o.status.code(), Some(0), "gc: {}", stderr(&o));
    assert!(ctx.pods_in("run").is_empty() && ctx.pods_in("exited-garbage").is_empty());
}

/// The same bomb, throttled, after its `rkt run` was SIGKILLed (stage1 died without teardown):
/// `rkt gc` returns only once every process of the pod is gone and its cgroups with them.
#[test]
fn gc_kills_what_a_killed_pod_left_before_it_reports() {
    let ctx = TestCtx::new();
    let mut pod = start_bg(&ctx, &["--pids-limit=32"], &["--cpu=300m"], FORK_BOMB);
    let pids = pids_cgroup(&pod.dir);
    let until = Instant::now() + Duration::from_secs(40);
    while read_num(&pids.join("pids.current")) < 32 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(read_num(&pids.join("pids.current")), 32, "pids.current");
    throttle(&pod.dir);
    let stage1 = pid_file(&pod.dir, "pid");
    let sandbox = pid_file(&pod.dir, "sandbox-pid");
    let cgroups = listed_cgroups(&pod.dir);
    pod.child.kill().unwrap();
    pod.child.wait().unwrap();
    let o = ctx.rkt_output(&["gc", "--grace-period=0s"]);
    assert_eq!(o.status.code(), Some(0), "gc: {}", stderr(&o));
    let live = live_processes_of(&pod.uuid, &[stage1, sandbox]);
    assert!(live.is_empty(), "alive after gc: {live:?}");
    let left: Vec<&PathBuf> = cgroups.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "cgroups left after gc: {left:?}");
    assert!(!pod.dir.exists() && ctx.pods_in("exited-garbage").is_empty());
}

/// rkt's default limit is on every pod; 0 and -1 lift it; a bad value is a one-line 254.
#[test]
fn pids_limit_default_unlimited_and_bad_values() {
    let ctx = TestCtx::new();
    for (flags, want) in [
        (vec![], "4096"),
        (vec!["--pids-limit=0"], "max"),
        (vec!["--pids-limit=-1"], "max"),
        (vec!["--pids-limit=100"], "100"),
    ] {
        let pod = start_bg(&ctx, &flags, &[], &["--exec=/bin/sleep", "--", "1000"]);
        let max = std::fs::read_to_string(pids_cgroup(&pod.dir).join("pids.max")).unwrap();
        assert_eq!(max.trim(), want, "{flags:?}");
        let o = ctx.rkt_output(&["stop", "--force", &pod.uuid]);
        assert_eq!(o.status.code(), Some(0), "stop: {}", stderr(&o));
    }
    for bad in ["--pids-limit=-2", "--pids-limit=lots"] {
        let o = ctx.rkt_output(&["run", "--net=none", bad, &bb(), "--exec=/bin/true"]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(254), "{bad}: {e}");
        assert!(e.contains("--pids-limit"), "{bad}: {e}");
        assert_eq!(e.trim().lines().count(), 1, "{bad}: {e}");
    }
}
