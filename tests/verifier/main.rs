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
//!   rkt-verifier stat PATH...    JSON {PATH: {"uid","gid","mode"}} as seen in the pod (lstat)
//!   rkt-verifier exit N          exit with code N
//!   rkt-verifier sleep SECS      sleep, then print the report
//!   rkt-verifier swap-loop PATH TARGET   rename PATH between a dir and a link to TARGET forever
//!   rkt-verifier syscall PROBE   make a raw syscall the seccomp filter restricts and print
//!                                {"probe","ok","errno"}; exit 0 if it worked, 1 otherwise.
//!                                PROBE: clone-newuser, clone-newnet, clone (plain fork),
//!                                clone3, io-uring-setup, thread (a std thread)
//!   rkt-verifier tty-attack MARKER  try TIOCSTI of "MARKER\n" on fds 0-2 and /dev/tty; JSON
//!   rkt-verifier fds             JSON of the open fds (readlink) and whether cwd is under /
//!   rkt-verifier exe-watch SECS  for SECS, grab /proc/<pid>/exe of every process whose binary
//!                                is not on the pod's root fs and try to open it for writing
//!   rkt-verifier ptrace-watch SECS  for SECS, PTRACE_SEIZE every new process of the pod
//!                                and read its CapEff and environ (JSON per process)
//!   rkt-verifier notify MSG…     one datagram "MSG\nMSG…" to $NOTIFY_SOCKET, then 2 s of sleep
//!                                (systemd ignores a sender gone by then); exit 1 on failure
//!   rkt-verifier serve-fds       socket activation: answer every connection on the listening
//!                                fds 3..3+$LISTEN_FDS with a JSON line (pid, LISTEN_*, the
//!                                accepting fd, the fds open at start, the netns), forever

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
        Some("stat") => stat_paths(&args[2..]),
        Some("exit") => std::process::exit(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0)),
        Some("sleep") => {
            let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
            std::thread::sleep(std::time::Duration::from_secs(secs));
            report();
        }
        // hardening (paths): the CVE-2021-30465 attacker — swap PATH between a directory and a
        // symlink to TARGET, forever, so a concurrent mount onto PATH races with it
        Some("swap-loop") => swap_loop(args.get(2), args.get(3)),
        // seccomp hardening (limits)
        Some("syscall") => syscall_probe(args.get(2).map(String::as_str).unwrap_or("")),
        // enter hardening
        Some("tty-attack") => enter_hardening::tty_attack(args.get(2).map_or("", String::as_str)),
        Some("fds") => enter_hardening::fds(),
        Some("exe-watch") => {
            enter_hardening::exe_watch(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5))
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
        // enter2
        Some("ptrace-watch") => {
            enter2::ptrace_watch(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5))
        }
        // systemd tests
        Some("notify") => notify(&args[2..]),
        Some("serve-fds") => serve_fds(),
        Some(other) => {
            eprintln!("rkt-verifier: unknown command {other:?}");
            std::process::exit(2);
        }
    }
}

fn notify(msgs: &[String]) {
    let sock = std::env::var("NOTIFY_SOCKET").unwrap_or_default();
    let r = std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.send_to(msgs.join("\n").as_bytes(), &sock));
    if let Err(e) = r {
        eprintln!("rkt-verifier: notify {sock:?}: {e}");
        std::process::exit(1);
    }
    // systemd finds the sender's unit from its PID when it reads the datagram: a sender that
    // is gone by then is ignored (what sd_notify_barrier(3) is for), so linger a little
    std::thread::sleep(std::time::Duration::from_secs(2));
}

fn serve_fds() {
    use std::io::Read as _;
    let n: i32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // the fds the app was started with (the dir fd of the listing is gone once it is read)
    let mut fds: Vec<String> = fs::read_dir("/proc/self/fd")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    fds.retain(|f| fs::read_link(format!("/proc/self/fd/{f}")).is_ok());
    fds.sort_by_key(|f| f.parse::<i64>().unwrap_or(-1));
    let fds = std::sync::Arc::new(fds);
    let mut threads = vec![];
    for fd in 3..3 + n {
        let fds = std::sync::Arc::clone(&fds);
        threads.push(std::thread::spawn(move || {
            let l = own_listener(fd);
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                let env = |k: &str| js(&std::env::var(k).unwrap_or_default());
                let netns = fs::read_link("/proc/self/ns/net")
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let line = format!(
                    "{{\"pid\":{},\"listen_pid\":{},\"listen_fds\":{},\"listen_fdnames\":{},\"fd\":{fd},\"fds_at_start\":[{}],\"netns\":{}}}\n",
                    std::process::id(),
                    env("LISTEN_PID"),
                    env("LISTEN_FDS"),
                    env("LISTEN_FDNAMES"),
                    fds.join(","),
                    js(&netns)
                );
                let _ = c.write_all(line.as_bytes());
                let _ = c.shutdown(std::net::Shutdown::Write);
                let _ = c.read(&mut [0u8; 1]);
            }
        }));
    }
    for t in threads {
        let _ = t.join();
    }
}

/// Own a listening TCP socket inherited at `fd` (socket activation).
fn own_listener(fd: i32) -> std::net::TcpListener {
    use std::os::fd::FromRawFd;
    // SAFETY: systemd passed fd (3..3+LISTEN_FDS) to this process for it to own; nothing else
    // in this program uses it.
    unsafe { std::net::TcpListener::from_raw_fd(fd) }
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
    for (k, f) in [("uid_map", "/proc/self/uid_map"), ("gid_map", "/proc/self/gid_map")] {
        // the lines' fields (inside, outside, count), spaces squeezed
        let m = fs::read_to_string(f).unwrap_or_default();
        let lines: Vec<String> = m
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        o.raw(k, &arr_str(&lines));
    }
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

/// `stat PATH...`: owner and mode of each path (not followed) as the pod sees them.
fn stat_paths(paths: &[String]) {
    use std::os::unix::fs::MetadataExt;
    let mut o = Obj::default();
    for p in paths {
        let mut e = Obj::default();
        match fs::symlink_metadata(p) {
            Ok(m) => {
                e.num("uid", i64::from(m.uid()));
                e.num("gid", i64::from(m.gid()));
                e.num("mode", i64::from(m.mode() & 0o7777));
            }
            Err(err) => e.str("error", &err.to_string()),
        }
        o.raw(p, &e.finish());
    }
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

/// `swap-loop PATH TARGET` (hardening, paths): PATH is a directory, then a symlink to TARGET,
/// then a directory again, … (two renames each way, through `PATH.dir` and `PATH.lnk`).
fn swap_loop(path: Option<&String>, target: Option<&String>) {
    let (Some(p), Some(t)) = (path, target) else {
        eprintln!("rkt-verifier: swap-loop PATH TARGET");
        std::process::exit(2);
    };
    let (dir, lnk) = (format!("{p}.dir"), format!("{p}.lnk"));
    let _ = fs::create_dir(p);
    let _ = std::os::unix::fs::symlink(t, &lnk);
    println!("swapping");
    let _ = std::io::stdout().flush();
    loop {
        let _ = fs::rename(p, &dir);
        let _ = fs::rename(&lnk, p);
        let _ = fs::rename(p, &lnk);
        let _ = fs::rename(&dir, p);
    }
}

// ---- seccomp hardening (limits) ----

extern "C" {
    // glibc's (linked statically): a raw system call, -1 and errno on failure
    fn syscall(number: i64, ...) -> i64;
    fn _exit(code: i32) -> !;
    fn __errno_location() -> *mut i32;
}

#[cfg(target_arch = "x86_64")]
const SYS: (i64, i64, i64) = (56, 435, 425); // clone, clone3, io_uring_setup
#[cfg(target_arch = "aarch64")]
const SYS: (i64, i64, i64) = (220, 435, 425);

/// Make one raw syscall of the kind the default seccomp profile restricts; a child that gets
/// made exits at once and is reaped, an io_uring fd that gets made is closed.
fn syscall_probe(what: &str) {
    const SIGCHLD: i64 = 17;
    const CLONE_NEWUSER: i64 = 0x1000_0000;
    const CLONE_NEWNET: i64 = 0x4000_0000;
    let (clone, clone3, uring) = SYS;
    let mut clone3_args = [0u64; 8]; // struct clone_args, version 0: exit_signal at [4]
    clone3_args[4] = SIGCHLD as u64;
    let mut params = [0u8; 120]; // struct io_uring_params
    // SAFETY: each call passes the kernel only integers and pointers to the locals above,
    // which live across the call. The clone variants have no CLONE_VM and no stack: the child
    // gets its own copy of memory, returns 0, and only calls _exit.
    let r = unsafe {
        match what {
            "clone-newuser" => syscall(clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
            "clone-newnet" => syscall(clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0),
            "clone" => syscall(clone, SIGCHLD, 0, 0, 0, 0),
            "clone3" => syscall(clone3, clone3_args.as_mut_ptr(), 64i64),
            "io-uring-setup" => syscall(uring, 1i64, params.as_mut_ptr()),
            // a second thread (glibc tries clone3, then clone without namespace flags)
            "thread" => match std::thread::spawn(|| 7).join() {
                Ok(7) => 1,
                _ => -1,
            },
            _ => {
                eprintln!("rkt-verifier: unknown probe {what:?}");
                std::process::exit(2);
            }
        }
    };
    // SAFETY: reading this thread's errno right after the call.
    let errno = if r < 0 { unsafe { *__errno_location() } } else { 0 };
    if r == 0 && what.starts_with("clone") {
        // SAFETY: in the child: leave without touching the parent's state.
        unsafe { _exit(0) };
    }
    if r > 0 && what != "thread" {
        if what == "io-uring-setup" {
            drop(own_fd(r));
        } else {
            // wait until the child has exited (std has no waitpid; the pod's init reaps it)
            while fs::read_to_string(format!("/proc/{r}/stat"))
                .map(|s| !s.contains(") Z "))
                .unwrap_or(false)
            {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
    println!(
        "{{\"probe\":{},\"ok\":{},\"errno\":{}}}",
        js(what),
        r >= 0,
        errno
    );
    std::process::exit(if r >= 0 { 0 } else { 1 });
}

/// Own fd `fd` (an io_uring the probe made), so that dropping it closes it.
fn own_fd(fd: i64) -> std::fs::File {
    use std::os::fd::FromRawFd;
    // SAFETY: the fd was just returned by the kernel to this thread; nothing else owns it.
    unsafe { std::fs::File::from_raw_fd(fd as i32) }
}

// enter hardening
/// Attacks of a hostile process in a pod on the terminal it was given, its fds and the runtime's
/// binary (`rkt enter` hardening tests).
#[allow(unsafe_code)]
mod enter_hardening {
    use super::{js, Obj};
    use std::fs;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::io::AsRawFd;

    extern "C" {
        fn ioctl(fd: i32, req: u64, ...) -> i32;
        fn getsid(pid: i32) -> i32;
        fn isatty(fd: i32) -> i32;
        fn fstatvfs(fd: i32, buf: *mut u64) -> i32;
    }
    const TIOCSTI: u64 = 0x5412;
    const TIOCGDEV: u64 = 0x8004_5432;

    fn errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    /// For fds 0-2 and /dev/tty: is it a terminal, which one (TIOCGDEV), and did TIOCSTI of
    /// every byte of `MARKER\n` work ("ok", else the errno).
    pub fn tty_attack(marker: &str) {
        let mut o = Obj::default();
        o.num("pid", std::process::id() as i64);
        // SAFETY: getsid takes an integer.
        o.num("sid", unsafe { getsid(0) } as i64);
        let devtty = fs::OpenOptions::new().read(true).write(true).open("/dev/tty");
        let mut list = Vec::new();
        let mut targets: Vec<(String, i32)> = (0..3).map(|fd| (fd.to_string(), fd)).collect();
        match &devtty {
            Ok(f) => targets.push(("/dev/tty".into(), f.as_raw_fd())),
            Err(e) => o.num("devtty_errno", e.raw_os_error().unwrap_or(0) as i64),
        }
        for (name, fd) in targets {
            let mut t = Obj::default();
            t.str("name", &name);
            // SAFETY: isatty takes an integer.
            t.num("isatty", unsafe { isatty(fd) } as i64);
            let mut dev: u32 = 0;
            // SAFETY: TIOCGDEV writes one unsigned int into `dev`, which lives across the call.
            if unsafe { ioctl(fd, TIOCGDEV, &mut dev as *mut u32) } == 0 {
                t.num("major", ((dev & 0xfff00) >> 8) as i64);
                t.num("minor", ((dev & 0xff) | ((dev >> 12) & 0xfff00)) as i64);
            }
            if name != "/dev/tty" {
                // which devpts instance: pty numbers repeat across instances
                if let Ok(m) = fs::metadata(format!("/proc/self/fd/{fd}")) {
                    t.num("st_dev", m.dev() as i64);
                }
            }
            let mut res = "ok".to_string();
            for b in marker.bytes().chain(std::iter::once(b'\n')) {
                let c = b as libc_char;
                // SAFETY: TIOCSTI reads one byte from the pointer we pass, which lives across
                // the call.
                if unsafe { ioctl(fd, TIOCSTI, &c as *const libc_char) } != 0 {
                    res = errno().to_string();
                    break;
                }
            }
            t.str("tiocsti", &res);
            list.push(t.finish());
        }
        o.raw("ttys", &format!("[{}]", list.join(",")));
        println!("{}", o.finish());
    }
    #[allow(non_camel_case_types)]
    type libc_char = i8;

    /// The open fds (with what they point at) and the cwd: is it under this process's root?
    pub fn fds() {
        let mut o = Obj::default();
        let mut list = Vec::new();
        if let Ok(d) = fs::read_dir("/proc/self/fd") {
            let mut fds: Vec<i32> = d
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect();
            fds.sort_unstable();
            for fd in fds {
                let target = fs::read_link(format!("/proc/self/fd/{fd}"))
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                // the fd read_dir itself used is gone by now
                if target.is_empty() {
                    continue;
                }
                let mut f = Obj::default();
                f.num("fd", fd as i64);
                f.str("target", &target);
                list.push(f.finish());
            }
        }
        o.raw("fds", &format!("[{}]", list.join(",")));
        o.str(
            "cwd",
            &fs::read_link("/proc/self/cwd")
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        );
        o.raw("cwd_under_root", if cwd_under_root() { "true" } else { "false" });
        println!("{}", o.finish());
    }

    /// Walk `..` from the cwd up to where `..` is itself: is that this process's root?
    fn cwd_under_root() -> bool {
        let id = |p: &str| fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
        let root = id("/");
        let mut p = String::from(".");
        for _ in 0..256 {
            let up = format!("{p}/..");
            if id(&p) == id(&up) {
                return id(&p) == root;
            }
            p = up;
        }
        false
    }

    /// For `secs` seconds, grab (O_PATH) `/proc/<pid>/exe` of every process of the pod whose
    /// binary is not on the pod's root file system (a runtime binary), and try to open it for
    /// writing right away and once more at the end, when the process may be gone — the
    /// CVE-2019-5736 attack, minus the write. Prints a JSON object per grabbed binary at once
    /// (`write_open`) and again at the end (`write_open_later`).
    pub fn exe_watch(secs: u64) {
        let me = std::process::id().to_string();
        let root_dev = fs::metadata("/").map(|m| m.dev()).unwrap_or(0);
        let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let mut seen: Vec<String> = Vec::new();
        let mut grabbed: Vec<(String, fs::File, String)> = Vec::new();
        let mut denied = 0u64;
        while std::time::Instant::now() < end {
            let Ok(d) = fs::read_dir("/proc") else {
                break;
            };
            for e in d.flatten() {
                let pid = e.file_name().to_string_lossy().into_owned();
                if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me || seen.contains(&pid) {
                    continue;
                }
                // its root first: the pair is consistent even if the process exits meanwhile
                let Ok(its_root) = opath(&format!("/proc/{pid}/root")).and_then(|r| r.metadata())
                else {
                    denied += 1;
                    continue;
                };
                let path = format!("/proc/{pid}/exe");
                let f = match opath(&path) {
                    Ok(f) => f,
                    Err(_) => {
                        denied += 1;
                        continue;
                    }
                };
                seen.push(pid.clone());
                let Ok(m) = f.metadata() else {
                    continue;
                };
                // a binary of the pod's own: on the file system of that process's root
                if m.dev() == its_root.dev() || m.dev() == root_dev {
                    continue;
                }
                let target = fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let mut o = Obj::default();
                o.str("pid", &pid);
                o.str("exe", &target);
                o.raw("read_only_mount", if on_read_only_mount(&f) { "true" } else { "false" });
                o.str("write_open", &try_write_open(&f));
                // at once: the pod may be stopped before the end
                println!("{}", o.finish());
                grabbed.push((pid, f, target));
            }
        }
        for (pid, f, target) in &grabbed {
            let mut o = Obj::default();
            o.str("pid", pid);
            o.str("exe", target);
            o.raw("read_only_mount", if on_read_only_mount(f) { "true" } else { "false" });
            o.str("write_open_later", &try_write_open(f));
            println!("{}", o.finish());
        }
        println!("{{\"done\":true,\"grabbed\":{},\"denied\":{denied}}}", grabbed.len());
        let _ = js;
    }

    fn opath(path: &str) -> std::io::Result<fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        const O_PATH: i32 = 0o10000000;
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(O_PATH)
            .open(path)
    }

    /// Whether `f` is on a read-only mount (ST_RDONLY of fstatvfs; glibc's x86_64 layout, where
    /// f_flag is the tenth unsigned long). While the binary runs somewhere, opening it for
    /// writing fails with ETXTBSY before the mount is looked at.
    fn on_read_only_mount(f: &fs::File) -> bool {
        let mut buf = [0u64; 16];
        // SAFETY: struct statvfs is 112 bytes on x86_64; the buffer has 128 and lives across
        // the call.
        unsafe { fstatvfs(f.as_raw_fd(), buf.as_mut_ptr()) == 0 && buf[9] & 1 == 1 }
    }

    /// Reopen the O_PATH `f` for writing (no O_TRUNC, nothing written): "ok" or the errno.
    fn try_write_open(f: &fs::File) -> String {
        match fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{}", f.as_raw_fd()))
        {
            Ok(_) => "ok".into(),
            Err(e) => e.raw_os_error().unwrap_or(0).to_string(),
        }
    }
}

// enter2
/// The CVE-2019-10144-class attacker of `rkt enter`: an app with CAP_SYS_PTRACE attaches to every
/// process that appears in its pid namespace — the entered command, before and after its exec —
/// and looks at what it could inject system calls with and what it could read.
#[allow(unsafe_code)]
mod enter2 {
    use super::{js, Obj};
    use std::fs;

    extern "C" {
        fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    }
    #[cfg(target_arch = "x86_64")]
    const SYS_PTRACE: i64 = 101;
    #[cfg(target_arch = "aarch64")]
    const SYS_PTRACE: i64 = 117;
    const PTRACE_DETACH: i64 = 17;
    const PTRACE_SEIZE: i64 = 0x4206;
    const PTRACE_INTERRUPT: i64 = 0x4207;
    const PTRACE_EVENT_STOP: i32 = 128;
    const WALL: i32 = 0x4000_0000;

    fn cap_eff(pid: &str) -> Option<String> {
        fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_string()))
    }

    /// Read every writable mapping of `pid` through /proc/PID/mem: (bytes read, whether
    /// RKT_ENTER_SECRET occurs in them).
    fn scan_mem(pid: &str) -> (u64, bool) {
        use std::os::unix::fs::FileExt;
        let (Ok(maps), Ok(mem)) = (
            fs::read_to_string(format!("/proc/{pid}/maps")),
            fs::File::open(format!("/proc/{pid}/mem")),
        ) else {
            return (0, false);
        };
        let mut total = 0u64;
        for l in maps.lines() {
            let mut it = l.split_whitespace();
            let (Some(range), Some(perms)) = (it.next(), it.next()) else {
                continue;
            };
            if !perms.starts_with("rw") || l.ends_with("[vvar]") {
                continue;
            }
            let Some((a, b)) = range.split_once('-') else {
                continue;
            };
            let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
                continue;
            };
            let mut buf = vec![0u8; (b - a).min(256 << 20) as usize];
            let Ok(n) = mem.read_at(&mut buf, a) else {
                continue;
            };
            total += n as u64;
            if buf[..n].windows(16).any(|w| w == b"RKT_ENTER_SECRET") {
                return (total, true);
            }
        }
        (total, false)
    }

    /// For `secs` seconds, for every process that was not there at the start: PTRACE_SEIZE and
    /// PTRACE_INTERRUPT (and wait for it to stop), then read its CapEff, whether its environ or its writable
    /// memory names RKT_ENTER_SECRET, its exe; detach. One JSON object per process, then `{"done":true}`.
    pub fn ptrace_watch(secs: u64) {
        let me = std::process::id().to_string();
        let own = cap_eff("self").unwrap_or_default();
        println!("{{\"own_capeff\":{}}}", js(&own));
        let list = || -> Vec<String> {
            fs::read_dir("/proc")
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut seen = list();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let mut n = 0;
        while std::time::Instant::now() < end {
            for pid in list() {
                if pid == me || seen.contains(&pid) {
                    continue;
                }
                seen.push(pid.clone());
                let Ok(p) = pid.parse::<i32>() else {
                    continue;
                };
                n += 1;
                // PTRACE_SEIZE + PTRACE_INTERRUPT rather than PTRACE_ATTACH: no SIGSTOP that
                // could outlive the detach (a tracee caught in execve reports its exec SIGTRAP
                // first, and the SIGSTOP would then stop it for good once detached)
                // SAFETY: PTRACE_SEIZE and PTRACE_INTERRUPT take integers only.
                let r = unsafe {
                    let r = super::syscall(SYS_PTRACE, PTRACE_SEIZE, p as i64, 0i64, 0i64);
                    if r == 0 {
                        super::syscall(SYS_PTRACE, PTRACE_INTERRUPT, p as i64, 0i64, 0i64);
                    }
                    r
                };
                let mut o = Obj::default();
                o.str("pid", &pid);
                // the signal to hand back on detach (a signal-delivery-stop's own signal)
                let mut pass = 0i64;
                if r == 0 {
                    let mut st = 0i32;
                    // SAFETY: `st` lives across the call; the tracee stops (or exits).
                    let w = unsafe { waitpid(p, &mut st, WALL) };
                    o.raw("attached", "true");
                    o.num("wait", w as i64);
                    o.num("wait_status", st as i64);
                    let stopped = st & 0xff == 0x7f;
                    if stopped && st >> 16 != PTRACE_EVENT_STOP {
                        pass = ((st >> 8) & 0xff) as i64;
                    }
                } else {
                    // SAFETY: errno is thread-local and always valid to read.
                    let e = unsafe { *super::__errno_location() };
                    o.raw("attached", "false");
                    o.num("attach_errno", e as i64);
                }
                if let Some(c) = cap_eff(&pid) {
                    o.str("capeff", &c);
                }
                if let Ok(env) = fs::read(format!("/proc/{pid}/environ")) {
                    let secret = env.windows(16).any(|w| w == b"RKT_ENTER_SECRET");
                    o.raw("environ_read", "true");
                    o.raw("environ_secret", if secret { "true" } else { "false" });
                }
                if r == 0 {
                    // its writable memory (heap, stack, data) while it is stopped
                    let (read, secret) = scan_mem(&pid);
                    o.num("mem_read", read as i64);
                    o.raw("mem_secret", if secret { "true" } else { "false" });
                }
                o.str(
                    "exe",
                    &fs::read_link(format!("/proc/{pid}/exe"))
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                );
                if r == 0 {
                    // SAFETY: PTRACE_DETACH takes integers only.
                    let d = unsafe { super::syscall(SYS_PTRACE, PTRACE_DETACH, p as i64, 0i64, pass) };
                    o.num("detach", d);
                }
                println!("{}", o.finish());
            }
        }
        println!("{{\"done\":true,\"seen\":{n}}}");
    }
}
