//! rkt-verifier: a tiny static binary copied into test images and run *inside* pods, so
//! isolation tests assert on facts seen from within (model: youki's runtimetest, crun's
//! tests/init.c).
//!
//! Std only, so the harness builds it with one `rustc -C target-feature=+crt-static` call.
//!
//! Usage:
//!   rkt-verifier                 print a JSON report of the process's view of the world
//!   rkt-verifier write PATH      try to create/append PATH; exit 0 if it worked, 1 otherwise
//!   rkt-verifier read PATH       try to read PATH; exit 0 if it worked, 1 otherwise
//!   rkt-verifier exit N          exit with code N
//!   rkt-verifier sleep SECS      sleep, then print the report

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        None | Some("report") => report(),
        Some("write") => probe(args.get(2), |p| {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .and_then(|mut f| f.write_all(b"x"))
        }),
        Some("read") => probe(args.get(2), |p| fs::read(p).map(|_| ())),
        Some("exit") => std::process::exit(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0)),
        Some("sleep") => {
            let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
            std::thread::sleep(std::time::Duration::from_secs(secs));
            report();
        }
        // sandbox hardening (pids limit): a fork bomb of CPU spinners that survives failed
        // forks (busy-looping retries) instead of exiting like a shell does
        Some("forkbomb") => loop {
            match std::process::Command::new("/proc/self/exe").arg("spin").spawn() {
                Ok(c) => std::mem::forget(c),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        },
        Some("spin") => loop {
            std::hint::spin_loop();
        },
        Some(other) => {
            eprintln!("rkt-verifier: unknown command {other:?}");
            std::process::exit(2);
        }
    }
}

fn probe(path: Option<&String>, f: impl Fn(&str) -> std::io::Result<()>) {
    let Some(p) = path else {
        eprintln!("rkt-verifier: missing PATH");
        std::process::exit(2);
    };
    match f(p) {
        Ok(()) => println!("{{\"path\":{},\"ok\":true}}", js(p)),
        Err(e) => {
            println!(
                "{{\"path\":{},\"ok\":false,\"errno\":{},\"error\":{}}}",
                js(p),
                e.raw_os_error().unwrap_or(0),
                js(&e.to_string())
            );
            std::process::exit(1);
        }
    }
}

fn report() {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> String {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    let ids = |name: &str| -> Vec<u64> {
        field(name)
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect()
    };
    let uids = ids("Uid:");
    let gids = ids("Gid:");
    let mut o = Obj::default();
    o.num("pid", std::process::id() as i64);
    o.num("uid", *uids.first().unwrap_or(&u64::MAX) as i64);
    o.num("euid", *uids.get(1).unwrap_or(&u64::MAX) as i64);
    o.num("gid", *gids.first().unwrap_or(&u64::MAX) as i64);
    o.num("egid", *gids.get(1).unwrap_or(&u64::MAX) as i64);
    o.raw("groups", &arr_num(&ids("Groups:")));
    for (k, f) in [
        ("cap_eff", "CapEff:"),
        ("cap_prm", "CapPrm:"),
        ("cap_bnd", "CapBnd:"),
        ("cap_inh", "CapInh:"),
        ("cap_amb", "CapAmb:"),
    ] {
        o.str(k, &field(f));
    }
    o.num(
        "no_new_privs",
        field("NoNewPrivs:").parse::<i64>().unwrap_or(-1),
    );
    o.num("seccomp", field("Seccomp:").parse::<i64>().unwrap_or(-1));
    o.str(
        "hostname",
        fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim(),
    );
    let mut ns = Obj::default();
    for n in ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"] {
        ns.str(
            n,
            &fs::read_link(format!("/proc/self/ns/{n}"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
    }
    o.raw("namespaces", &ns.finish());
    let cg = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    o.raw(
        "cgroups",
        &arr_str(&cg.lines().map(str::to_string).collect::<Vec<_>>()),
    );
    o.raw("cgroup_limits", &cgroup_limits().finish());
    o.raw("mounts", &mounts());
    let mut env = Obj::default();
    for (k, v) in std::env::vars() {
        env.str(&k, &v);
    }
    o.raw("env", &env.finish());
    o.str(
        "cwd",
        &std::env::current_dir()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    o.str(
        "oom_score_adj",
        fs::read_to_string("/proc/self/oom_score_adj")
            .unwrap_or_default()
            .trim(),
    );
    o.raw(
        "args",
        &arr_str(&std::env::args().collect::<Vec<_>>()),
    );
    println!("{}", o.finish());
}

/// Limits of the cgroups the process sits in, v1 and v2 file names alike.
fn cgroup_limits() -> Obj {
    let mut o = Obj::default();
    let files = [
        ("memory_limit_v1", "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
        ("memory_max_v2", "/sys/fs/cgroup/memory.max"),
        ("cpu_quota_v1", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
        ("cpu_period_v1", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
        ("cpu_shares_v1", "/sys/fs/cgroup/cpu/cpu.shares"),
        ("cpu_max_v2", "/sys/fs/cgroup/cpu.max"),
        ("cpu_weight_v2", "/sys/fs/cgroup/cpu.weight"),
        ("pids_max_v1", "/sys/fs/cgroup/pids/pids.max"),
        ("pids_max_v2", "/sys/fs/cgroup/pids.max"),
    ];
    for (k, p) in files {
        if let Ok(v) = fs::read_to_string(p) {
            o.str(k, v.trim());
        }
    }
    o
}

fn mounts() -> String {
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in mi.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        let mut m = Obj::default();
        m.str("target", &unescape(pre.get(4).copied().unwrap_or("")));
        m.str("root", &unescape(pre.get(3).copied().unwrap_or("")));
        m.str("options", pre.get(5).copied().unwrap_or(""));
        m.str("fstype", post.first().copied().unwrap_or(""));
        m.str("source", &unescape(post.get(1).copied().unwrap_or("")));
        m.str("super_options", post.get(2).copied().unwrap_or(""));
        out.push(m.finish());
    }
    format!("[{}]", out.join(","))
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit)
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Default)]
struct Obj {
    fields: Vec<String>,
}

impl Obj {
    fn str(&mut self, k: &str, v: &str) {
        self.fields.push(format!("{}:{}", js(k), js(v)));
    }
    fn num(&mut self, k: &str, v: i64) {
        self.fields.push(format!("{}:{}", js(k), v));
    }
    fn raw(&mut self, k: &str, v: &str) {
        self.fields.push(format!("{}:{}", js(k), v));
    }
    fn finish(self) -> String {
        format!("{{{}}}", self.fields.join(","))
    }
}

fn arr_num(v: &[u64]) -> String {
    format!(
        "[{}]",
        v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
    )
}

fn arr_str(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter().map(|s| js(s)).collect::<Vec<_>>().join(",")
    )
}

/// A JSON string literal.
fn js(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}
