//! `rkt enter` and the pod's reach into the caller's world (issue 18, items 2 and 3): each test
//! is an attack from inside a pod — a hostile command run by `rkt enter`, or a hostile app — and
//! asserts it fails.
//!
//! - the terminal: TIOCSTI on fds 0-2 and `/dev/tty` must never reach the admin's terminal;
//! - file descriptors and cwd (CVE-2024-21626): a host dir open at fd 7 in `rkt run`'s and
//!   `rkt enter`'s caller must not be open in the app or the entered command, nor become their
//!   cwd through a `/proc/self/fd/7` working dir;
//! - the runtime binary (CVE-2019-5736): no runtime binary a pod process can grab through
//!   `/proc/<pid>/exe` may be opened for writing;
//! - confinement (CVE-2019-10144/10145/10147): the entered command has the app's capability
//!   sets, no_new_privs, seccomp mode and filters, and cgroups.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::termios::{self, LocalFlags, SetArg};
use rkt_tests::{images, stderr, stdout, TestCtx};
use serde_json::Value;

const MARKER: &str = "touch /tmp/rkt-enter-pwned-by-tiocsti";

fn bb() -> String {
    images::busybox().oci_ref()
}

fn status_field(ctx: &TestCtx, uuid: &str, key: &str) -> Option<String> {
    let o = ctx.rkt_output(&["status", uuid]);
    stdout(&o)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}

/// `rkt run` of busybox with `args` (app flags and `--exec=…`), spawned through `wrapper`
/// (empty: directly) with stdout `out`; returns once the pod runs.
fn start_pod(ctx: &TestCtx, wrapper: &[&str], args: &[&str], out: Stdio) -> (Child, String) {
    start_pod_of(ctx, &bb(), wrapper, args, out)
}

/// [`start_pod`] of `image`.
fn start_pod_of(
    ctx: &TestCtx,
    image: &str,
    wrapper: &[&str],
    args: &[&str],
    out: Stdio,
) -> (Child, String) {
    ctx.spawn_pod(wrapper, &[&[image], args].concat(), out)
}

fn sleeper(ctx: &TestCtx, flags: &[&str]) -> (Child, String) {
    let mut args = flags.to_vec();
    args.extend(["--exec=/bin/sleep", "--", "300"]);
    start_pod(ctx, &[], &args, Stdio::null())
}

fn stop(ctx: &TestCtx, uuid: &str, mut child: Child) {
    let _ = ctx.rkt_output(&["stop", uuid]);
    let _ = child.wait();
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        + std::process::id() as u64
}

/// The first line of `s` that parses as a JSON object with key `key`.
fn json_line(s: &str, key: &str) -> Value {
    s.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim_end_matches('\r')).ok())
        .find(|v| v.get(key).is_some())
        .unwrap_or_else(|| panic!("no JSON with {key:?} in {s:?}"))
}

/// The app's host PID (from its status file).
fn app_pid(ctx: &TestCtx, uuid: &str) -> i64 {
    let v: Value = serde_json::from_slice(
        &std::fs::read(ctx.dir().join("pods/run").join(uuid).join("status/busybox")).unwrap(),
    )
    .unwrap();
    v["pid"].as_i64().unwrap()
}

/// (st_dev, major, minor) of the terminal `fd`: its devpts instance and its number there.
fn tty_dev(fd: &OwnedFd) -> (u64, u64, u64) {
    let m = std::fs::File::from(fd.try_clone().unwrap())
        .metadata()
        .unwrap();
    let d = m.rdev();
    (m.dev(), libc::major(d) as u64, libc::minor(d) as u64)
}

/// Run `rkt ARGS…` (`enter …`, `run …`) as the admin would from a terminal: a fresh pty (the admin's terminal)
/// is the controlling terminal of its session (`setsid -c`); stdin is that terminal unless
/// `stdin_null`, stdout and stderr always. Returns the exit code, what the terminal showed, and
/// what was left unread in the terminal's input queue afterwards (input someone typed — or
/// injected — that no one read), and the terminal's local flags before and after.
fn enter_on_a_terminal(ctx: &TestCtx, args: &[&str], stdin_null: bool, input: &[u8]) -> Session {
    let pty = nix::pty::openpty(None, None).unwrap();
    let before = termios::tcgetattr(pty.slave.as_fd()).unwrap().local_flags;
    let dev = tty_dev(&pty.slave);
    let master = std::fs::File::from(pty.master);
    let mut writer = master.try_clone().unwrap();
    let mut reader = master.try_clone().unwrap();
    let relay = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        out
    });
    let sl = |p: &OwnedFd| Stdio::from(p.try_clone().unwrap());
    // the terminal is the session's controlling terminal either way (setsid -c takes it from
    // stdin); with stdin_null, rkt itself then gets /dev/null as stdin
    let mut wrapper = vec!["setsid", "-c", "-w"];
    if stdin_null {
        wrapper.extend(["sh", "-c", "exec 0</dev/null; exec \"$@\"", "sh"]);
    }
    let mut cmd = ctx.rkt_under(&wrapper);
    cmd.args(args);
    let mut child = cmd
        .stdin(sl(&pty.slave))
        .stdout(sl(&pty.slave))
        .stderr(sl(&pty.slave))
        .spawn()
        .unwrap();
    drop(cmd); // its copies of the slave
    std::io::Write::write_all(&mut writer, input).unwrap();
    let start = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "rkt enter hangs");
        std::thread::sleep(Duration::from_millis(20));
    };
    let after = termios::tcgetattr(pty.slave.as_fd()).unwrap().local_flags;
    // what is left in the admin terminal's input queue: read it raw and without blocking
    let mut raw = termios::tcgetattr(pty.slave.as_fd()).unwrap();
    termios::cfmakeraw(&mut raw);
    raw.control_chars[libc::VMIN] = 0;
    raw.control_chars[libc::VTIME] = 0;
    termios::tcsetattr(pty.slave.as_fd(), SetArg::TCSANOW, &raw).unwrap();
    let mut left = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(pty.slave.as_raw_fd(), &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => left.extend_from_slice(&buf[..n]),
        }
    }
    drop(pty.slave);
    drop(master);
    let shown = String::from_utf8_lossy(&relay.join().unwrap()).into_owned();
    Session {
        code,
        shown,
        left,
        admin: dev,
        flags: [before, after],
    }
}

/// What [`enter_on_a_terminal`] saw.
struct Session {
    /// rkt's exit code.
    code: Option<i32>,
    /// What the terminal showed.
    shown: String,
    /// What was left unread in the terminal's input queue.
    left: Vec<u8>,
    /// The terminal (see [`tty_dev`]).
    admin: (u64, u64, u64),
    /// Its local flags before and after.
    flags: [LocalFlags; 2],
}

/// `rkt ARGS` on a terminal (stdin `/dev/null` if `stdin_null`) running the verifier's
/// `tty-attack`: it must exit 0 and inject nothing into the admin's terminal. Its report and
/// the session.
fn tty_attack_on_a_terminal(ctx: &TestCtx, args: &[&str], stdin_null: bool) -> (Value, Session) {
    let s = enter_on_a_terminal(ctx, args, stdin_null, b"");
    assert_eq!(s.code, Some(0), "{}", s.shown);
    let report = json_line(&s.shown, "ttys");
    check_tty_attack(&report, s.admin, &s.left);
    (report, s)
}

/// `rkt enter UUID` of the verifier's `tty-attack`.
fn enter_tty_attack(uuid: &str) -> [&str; 5] {
    ["enter", uuid, "/usr/bin/rkt-verifier", "tty-attack", MARKER]
}

fn check_tty_attack(report: &Value, admin: (u64, u64, u64), left: &[u8]) {
    check_tty_attack_of(report, admin, left, MARKER)
}

fn check_tty_attack_of(report: &Value, admin: (u64, u64, u64), left: &[u8], marker: &str) {
    let leftover = String::from_utf8_lossy(left);
    assert!(
        !leftover.contains(&format!("{marker}\n")),
        "TIOCSTI from the pod reached the admin's terminal input: {leftover:?} ({report})"
    );
    // a session of its own: the admin's terminal is not its controlling terminal
    assert_eq!(report["sid"], report["pid"], "{report}");
    let ttys = report["ttys"].as_array().unwrap();
    let num = |t: &Value| (t["major"].as_u64(), t["minor"].as_u64());
    for t in ttys {
        if let (Some(d), (Some(ma), Some(mi))) = (t["st_dev"].as_u64(), num(t)) {
            assert_ne!(
                (d, ma, mi),
                admin,
                "the process holds the admin's terminal: {t}"
            );
        }
    }
    // /dev/tty (no devpts identity of its own) is one of its own stdio terminals, or at least
    // not numbered as the admin's
    if let Some(t) = ttys.iter().find(|t| t["name"] == "/dev/tty") {
        let own = ttys
            .iter()
            .any(|o| o["name"] != "/dev/tty" && o["st_dev"].is_u64() && num(o) == num(t));
        assert!(
            own || num(t) != (Some(admin.1), Some(admin.2)),
            "/dev/tty is the admin's terminal: {report}"
        );
    }
}

#[test]
fn enter_on_a_terminal_gets_its_own_pty_and_tiocsti_stays_in_the_pod() {
    let ctx = TestCtx::new();
    let (child, uuid) = sleeper(&ctx, &[]);
    let (report, Session { flags, .. }) =
        tty_attack_on_a_terminal(&ctx, &enter_tty_attack(&uuid), false);
    let ttys = report["ttys"].as_array().unwrap();
    // stdio and /dev/tty are the pod's own pty, and injecting into it works (it is harmless)
    assert_eq!(ttys.len(), 4, "/dev/tty must open (the pty): {report}");
    let dev = |t: &Value| (t["major"].as_u64(), t["minor"].as_u64());
    for t in ttys {
        assert_eq!(t["isatty"], 1, "{report}");
        assert_eq!(dev(t), dev(&ttys[0]), "one pty for all: {report}");
        assert_eq!(t["tiocsti"], "ok", "{report}");
    }
    // the terminal was raw while relayed and is restored
    assert!(flags[0].contains(LocalFlags::ICANON | LocalFlags::ECHO));
    assert_eq!(flags[0], flags[1], "terminal not restored");
    // exit codes pass through
    let Session { code, .. } = enter_on_a_terminal(
        &ctx,
        &["enter", &uuid, "/bin/sh", "-c", "exit 7"],
        false,
        b"",
    );
    assert_eq!(code, Some(7));
    let Session { code, .. } = enter_on_a_terminal(
        &ctx,
        &["enter", &uuid, "/bin/sh", "-c", "kill -9 $$"],
        false,
        b"",
    );
    assert_eq!(code, Some(128 + 9));
    // and what the admin types reaches the command (the default shell), through the pty
    let Session { code, shown, .. } = enter_on_a_terminal(
        &ctx,
        &["enter", &uuid],
        false,
        b"echo typed-$((6*7)) $(tty); exit 5\n",
    );
    assert_eq!(code, Some(5), "{shown}");
    assert!(shown.contains("typed-42"), "{shown}");
    stop(&ctx, &uuid, child);
}

#[test]
fn a_hostile_default_shell_cannot_reach_the_admins_terminal() {
    // the image's /bin/sh, which `rkt enter UUID` runs, pushes keystrokes with TIOCSTI
    let ctx = TestCtx::new();
    let image = rkt_tests::hostile_enter::hostile_shell().oci_ref();
    let (child, uuid) = start_pod_of(
        &ctx,
        &image,
        &[],
        &["--exec=/bin/sleep", "--", "300"],
        Stdio::null(),
    );
    let Session {
        code,
        shown,
        left,
        admin,
        flags,
    } = enter_on_a_terminal(&ctx, &["enter", &uuid], false, b"");
    assert_eq!(code, Some(0), "{shown}");
    let report = json_line(&shown, "ttys");
    check_tty_attack_of(
        &report,
        admin,
        &left,
        rkt_tests::hostile_enter::SHELL_MARKER,
    );
    assert_eq!(flags[0], flags[1], "terminal not restored");
    stop(&ctx, &uuid, child);
}

#[test]
fn enter_with_only_stdout_on_a_terminal_gets_a_pty_for_it() {
    let ctx = TestCtx::new();
    let (child, uuid) = sleeper(&ctx, &[]);
    let (report, _) = tty_attack_on_a_terminal(&ctx, &enter_tty_attack(&uuid), true);
    let ttys = report["ttys"].as_array().unwrap();
    assert_eq!(ttys[0]["isatty"], 0, "stdin stays /dev/null: {report}");
    assert_eq!(ttys[1]["isatty"], 1, "{report}");
    stop(&ctx, &uuid, child);
}

#[test]
fn interactive_run_on_a_terminal_gets_its_own_pty() {
    // `rkt run --interactive`: libcontainer makes the app a session leader with a pty of the
    // pod's as its controlling terminal, which stage1 relays
    let ctx = TestCtx::new();
    let image = bb();
    let (report, Session { flags, .. }) = tty_attack_on_a_terminal(
        &ctx,
        &[
            "--insecure-options=image",
            "run",
            "--interactive",
            &image,
            "--exec=/usr/bin/rkt-verifier",
            "--",
            "tty-attack",
            MARKER,
        ],
        false,
    );
    assert_eq!(report["ttys"].as_array().unwrap().len(), 4, "{report}");
    assert_eq!(flags[0], flags[1], "terminal not restored");
    // a plain run on a terminal hands the app the terminal itself as stdio (as rkt did), but
    // in a session of its own: without CAP_SYS_ADMIN it cannot inject into it
    let Session {
        code, shown, left, ..
    } = enter_on_a_terminal(
        &ctx,
        &[
            "--insecure-options=image",
            "run",
            &bb(),
            "--exec=/usr/bin/rkt-verifier",
            "--",
            "tty-attack",
            MARKER,
        ],
        false,
        b"",
    );
    assert_eq!(code, Some(0), "{shown}");
    let report = json_line(&shown, "ttys");
    assert!(!String::from_utf8_lossy(&left).contains(MARKER), "{report}");
    assert_eq!(report["sid"], report["pid"], "{report}");
    assert_eq!(report["devtty_errno"], libc::ENXIO, "{report}");
    let _ = ctx.rkt_output(&["gc", "--grace-period=0s"]);
}

#[test]
fn enter_without_a_terminal_has_no_controlling_terminal() {
    let ctx = TestCtx::new();
    let (child, uuid) = sleeper(&ctx, &[]);
    let o = ctx
        .rkt()
        .args([
            "enter",
            &uuid,
            "/usr/bin/rkt-verifier",
            "tty-attack",
            MARKER,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report = json_line(&stdout(&o), "ttys");
    assert_eq!(report["sid"], report["pid"], "{report}");
    assert_eq!(report["devtty_errno"], libc::ENXIO, "{report}");
    stop(&ctx, &uuid, child);
}

/// `sh -c 'exec 7<DIR; exec "$@"'`: the command then runs with a host directory open at fd 7
/// (not close-on-exec), as an fd inherited from the admin's shell would be.
fn with_fd7_on(dir: &std::path::Path) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("exec 7<'{}' && exec \"$@\"", dir.display()),
        "sh".into(),
    ]
}

fn fds_of(report: &Value) -> Vec<i64> {
    report["fds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fd"].as_i64().unwrap())
        .collect()
}

#[test]
fn an_inherited_host_fd_reaches_neither_the_app_nor_the_entered_command() {
    let ctx = TestCtx::new();
    let secret = ctx.root().join("host-secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("key"), "host secret").unwrap();
    let wrap = with_fd7_on(&secret);
    let wrap: Vec<&str> = wrap.iter().map(String::as_str).collect();

    // rkt run with fd 7 open: the app sees fds 0-2 only
    let (child, uuid) = start_pod(
        &ctx,
        &wrap,
        &[
            "--working-dir=/tmp",
            "--exec=/bin/sh",
            "--",
            "-c",
            "/usr/bin/rkt-verifier fds; exec sleep 300",
        ],
        Stdio::piped(),
    );
    let mut child = child;
    let mut line = Vec::new();
    let mut out = child.stdout.take().unwrap();
    let mut b = [0u8; 1];
    while out.read(&mut b).unwrap_or(0) == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    let app = json_line(&String::from_utf8_lossy(&line), "fds");
    assert_eq!(fds_of(&app), vec![0, 1, 2], "app: {app}");
    assert_eq!(app["cwd_under_root"], true, "{app}");

    // with a plain working dir the command runs and has fds 0-2 only
    let o = cmd_output(
        &wrap,
        &ctx,
        &["enter", &uuid, "/usr/bin/rkt-verifier", "fds"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = json_line(&stdout(&o), "fds");
    assert_eq!(fds_of(&e), vec![0, 1, 2], "entered: {e}");
    assert_eq!(e["cwd_under_root"], true, "entered: {e}");
    // rkt enter with fd 7 open: neither the fd nor, through a working dir the app turned into
    // a link to /proc/self/fd/7, the cwd
    let o = ctx.rkt_output(&[
        "enter",
        &uuid,
        "/bin/sh",
        "-c",
        "cd / && rm -rf /tmp && ln -s /proc/self/fd/7 /tmp",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = cmd_output(
        &wrap,
        &ctx,
        &["enter", &uuid, "/usr/bin/rkt-verifier", "fds"],
    );
    // failing to enter the vanished working dir is fine; entering the host dir is not
    if o.status.code() == Some(0) {
        let e = json_line(&stdout(&o), "fds");
        assert_eq!(fds_of(&e), vec![0, 1, 2], "entered: {e}");
        assert_eq!(e["cwd_under_root"], true, "entered: {e}");
    } else {
        assert_eq!(o.status.code(), Some(254), "{}", stderr(&o));
    }
    stop(&ctx, &uuid, child);
}

fn cmd_output(wrap: &[&str], ctx: &TestCtx, args: &[&str]) -> Output {
    let rkt = ctx.rkt();
    Command::new(wrap[0])
        .args(&wrap[1..])
        .arg(rkt.get_program())
        .args(rkt.get_args())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn working_dir_through_a_runtime_fd_does_not_escape() {
    // CVE-2024-21626: a working dir of /proc/self/fd/N names whatever the runtime had open at
    // N when it changed directory; it must fail or stay in the pod
    let ctx = TestCtx::new();
    for n in 3..=12 {
        let o = ctx.rkt_output(&[
            "--insecure-options=image",
            "run",
            &bb(),
            &format!("--working-dir=/proc/self/fd/{n}"),
            "--exec=/usr/bin/rkt-verifier",
            "--",
            "fds",
        ]);
        if o.status.code() == Some(0) {
            let r = json_line(&stdout(&o), "fds");
            assert_eq!(r["cwd_under_root"], true, "fd {n}: {r}");
            assert_eq!(fds_of(&r), vec![0, 1, 2], "fd {n}: {r}");
        }
    }
    let _ = ctx.rkt_output(&["gc", "--grace-period=0s"]);
}

/// `/proc/<pid>/status` lines that describe confinement.
fn confinement(status: &str) -> Vec<String> {
    status
        .lines()
        .filter(|l| {
            [
                "Uid:",
                "Gid:",
                "Groups:",
                "CapInh:",
                "CapPrm:",
                "CapEff:",
                "CapBnd:",
                "CapAmb:",
                "NoNewPrivs:",
                "Seccomp:",
                "Seccomp_filters:",
            ]
            .iter()
            .any(|k| l.starts_with(k))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn entered_command_is_confined_like_the_app() {
    // CVE-2019-10144 (capabilities), CVE-2019-10145 (seccomp), CVE-2019-10147 (cgroups,
    // no_new_privs): compare with the app itself
    for flags in [
        &[][..],
        &["--user=1000", "--group=1000"][..],
        &["--caps-retain=CAP_CHOWN,CAP_NET_BIND_SERVICE"][..],
    ] {
        let ctx = TestCtx::new();
        let (child, uuid) = sleeper(&ctx, flags);
        let pid = app_pid(&ctx, &uuid);
        let app_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let ns_pid = app_status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|v| v.split_whitespace().last())
            .unwrap()
            .to_string();
        let o = ctx.rkt_output(&["enter", &uuid, "/bin/cat", "/proc/self/status"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(
            confinement(&stdout(&o)),
            confinement(&app_status),
            "flags {flags:?}"
        );
        // cgroups as seen in the pod: the entered command's and the app's
        let o = ctx.rkt_output(&[
            "enter",
            &uuid,
            "/bin/sh",
            "-c",
            &format!("cat /proc/self/cgroup; echo --; cat /proc/{ns_pid}/cgroup"),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let out = stdout(&o);
        let (mine, app) = out.split_once("--\n").unwrap();
        assert_eq!(mine, app, "flags {flags:?}");
        // and what the missing capability forbids fails
        let o = ctx.rkt_output(&["enter", &uuid, "/bin/sh", "-c", "mount -t tmpfs none /mnt"]);
        assert_ne!(
            o.status.code(),
            Some(0),
            "mount worked in an entered command"
        );
        stop(&ctx, &uuid, child);
    }
}

#[test]
fn runtime_binary_cannot_be_opened_for_writing_from_the_pod() {
    // CVE-2019-5736: a hostile app grabs /proc/<pid>/exe of every process whose binary is not
    // the pod's (the entered command before its exec, stage1 exec'd again through a
    // `#!/proc/self/exe` script) and tries to open it for writing, then and at the end
    let ctx = TestCtx::new();
    let (mut child, uuid) = start_pod(
        &ctx,
        &[],
        &["--exec=/usr/bin/rkt-verifier", "--", "exe-watch", "6"],
        Stdio::piped(),
    );
    let o = ctx.rkt_output(&[
        "enter",
        &uuid,
        "/bin/sh",
        "-c",
        "printf '#!/proc/self/exe\\n' > /tmp/evil && chmod +x /tmp/evil",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        let _ = ctx.rkt_output(&["enter", &uuid, "/usr/bin/rkt-verifier", "exit", "0"]);
        let _ = ctx.rkt_output(&["enter", &uuid, "/tmp/evil"]);
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = child.wait();
    let lines: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        lines.iter().any(|v| v["done"] == true),
        "watcher did not finish: {out}"
    );
    eprintln!("exe-watch: {out}");
    for v in lines.iter().filter(|v| v.get("exe").is_some()) {
        // protected: a read-only mount (opening for writing then fails with EROFS, or first
        // with ETXTBSY while the binary runs), or the open is refused outright. ETXTBSY on a
        // writable mount is no protection: it lasts only as long as some process runs it.
        // (each binary shows up twice: grabbed, with write_open; at the end, write_open_later)
        let refused = |k: &str| {
            v[k].is_null()
                || [libc::EROFS, libc::EACCES, libc::EPERM]
                    .iter()
                    .any(|e| v[k].as_str() == Some(&e.to_string()))
        };
        assert!(
            v["read_only_mount"] == true || (refused("write_open") && refused("write_open_later")),
            "a pod process holds a writable runtime binary: {v}"
        );
        assert_ne!(v["write_open"], "ok", "{v}");
        assert_ne!(v["write_open_later"], "ok", "{v}");
    }
    let _ = ctx.rkt_output(&["gc", "--grace-period=0s"]);
}

/// Whether `/proc/PID/exe` of `pid` is the installed `rkt-stage1`, and if so, whether it is on
/// a read-only mount (`None`: the process runs another binary).
fn stage1_exe_read_only(pid: &str) -> Option<bool> {
    let exe = format!("/proc/{}/exe", pid.trim());
    let running = std::fs::metadata(&exe).ok()?;
    let installed = std::fs::metadata(rkt_tests::bin_dir().join("rkt-stage1")).unwrap();
    if (running.dev(), running.ino()) != (installed.dev(), installed.ino()) {
        return None;
    }
    // while it runs, a write open fails with ETXTBSY first; the mount is what lasts
    let st = nix::sys::statvfs::statvfs(exe.as_str()).unwrap();
    Some(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// CVE-2019-5736, deterministically: stage0 execs stage1 (`rkt run`, `rkt enter`) from a
/// detached read-only mount of its binary, so every stage1 process — and every fork of one a
/// pod can see: an app's init before its exec, stage1 exec'd again inside the pod by a
/// `#!/proc/self/exe` entrypoint, the entered command before its exec — has a `/proc/PID/exe`
/// that cannot be opened for writing (EROFS once nothing runs it, not merely ETXTBSY while
/// something does). The pod's PID 1 runs a sealed memfd, not the binary.
#[test]
fn stage1_runs_from_a_read_only_mount() {
    let ctx = TestCtx::new();
    let (mut child, uuid) = sleeper(&ctx, &[]);
    // `rkt run` is stage1 until it hands the pod to rkt-monitor, a second after it is ready
    let pid = status_field(&ctx, &uuid, "pid").unwrap();
    assert_ne!(stage1_exe_read_only(&pid), Some(false), "rkt run's stage1");
    // `rkt enter` is stage1 for the command's whole life
    let mut enter = ctx
        .rkt()
        .args(["enter", &uuid, "/bin/sleep", "5"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let enter_pid = enter.id().to_string();
    let t0 = Instant::now();
    let mut seen = None;
    while seen.is_none() && t0.elapsed() < Duration::from_secs(5) {
        seen = stage1_exe_read_only(&enter_pid);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        seen,
        Some(true),
        "rkt enter's stage1 runs from a writable mount"
    );
    let _ = enter.kill();
    let _ = enter.wait();
    // the pod's PID 1 runs a sealed copy of rkt-monitor: nothing to write either
    let sandbox =
        std::fs::read_to_string(ctx.dir().join("pods/run").join(&uuid).join("sandbox-pid"))
            .unwrap();
    let exe = format!("/proc/{}/exe", sandbox.trim());
    assert!(std::fs::OpenOptions::new().write(true).open(&exe).is_err());
    let _ = child.kill();
    let _ = child.wait();
    let _ = ctx.rkt_output(&["gc", "--grace-period=0s"]);
}

/// The same attack as an app would make it: apps whose entrypoint is `#!/proc/self/exe` make
/// their container init exec stage1 again inside the pod, and another app grabs it.
#[test]
fn runtime_binary_of_an_app_start_cannot_be_opened_for_writing_from_the_pod() {
    // CVE-2019-5736 against `rkt run`: the entrypoint of apps b* is `#!/proc/self/exe`, so
    // their container init (a fork of stage1) execs the host's rkt-stage1 as a pod process;
    // app a grabs its /proc/<pid>/exe. The first app to fail stops the pod, sometimes before
    // the watcher printed anything: a few tries.
    for attempt in 0..5 {
        if app_start_attack(attempt == 4) {
            return;
        }
    }
}

/// One try of the attack above; false when the pod ended before the watcher ran.
fn app_start_attack(last: bool) -> bool {
    let ctx = TestCtx::new();
    let image = rkt_tests::hostile_enter::hostile_shell().oci_ref();
    let mut rkt = ctx.rkt();
    rkt.args(["--insecure-options=image", "run", &image, "--name=a"])
        .args([
            "--exec=/usr/bin/rkt-verifier",
            "--",
            "exe-watch",
            "4",
            "---",
        ]);
    // several tries at the race: each app runs stage1 once, for a millisecond or two
    for i in 0..8 {
        rkt.args([&image, &format!("--name=b{i}"), "--exec=/evil"]);
    }
    let mut child = rkt
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut text = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut text);
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    let _ = child.wait();
    // the first app to fail stops the pod, the watcher with it: it prints each grab at once
    let _ = ctx.rkt_output(&["gc", "--grace-period=0s"]);
    if !(text.contains("\"exe\"") || text.contains("\"done\"")) {
        assert!(!last, "the watcher did not run: {text} {err}");
        return false;
    }
    for v in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("exe").is_some())
    {
        assert!(
            v["read_only_mount"] == true,
            "a pod process holds a writable runtime binary: {v}"
        );
    }
    true
}

#[test]
fn enter_relays_window_size_and_ctrl_c_to_its_pty() {
    let ctx = TestCtx::new();
    let (child, uuid) = sleeper(&ctx, &[]);
    // the admin's terminal is resized: rkt gets SIGWINCH and resizes the command's pty; Ctrl-C
    // reaches the command's foreground job through its own pty; the shell lives on
    let mut rkt = ctx.rkt_under(&["setsid", "-c", "-w"]);
    rkt.args(["enter", &uuid, "/bin/sh"]);
    assert_eq!(rkt_tests::terminal::drive_shell(&mut rkt, 31, 79), Some(3));
    stop(&ctx, &uuid, child);
}

// enter2
/// CVE-2019-10144 class, the ptrace way: an app granted CAP_SYS_PTRACE (as Docker and the
/// kubelet grant debugging sidecars; a pod has no user namespace, so the capability counts in
/// the host's) watches its pid namespace and attaches to every process that appears in
/// it (PTRACE_SEIZE) — the command `rkt enter` makes, from its first instruction there. Whatever it gets hold
/// of must be no more than the app itself is: the app's effective capabilities (not host root's
/// full set, which injected system calls would turn into an escape), and nothing of the admin's
/// environment (`RKT_ENTER_SECRET` set for `rkt enter`).
#[test]
fn an_app_with_cap_sys_ptrace_cannot_catch_an_entered_command_unconfined() {
    let ctx = TestCtx::new();
    let (mut child, uuid) = start_pod(
        &ctx,
        &[],
        &[
            "--caps-retain=CAP_SYS_PTRACE,CAP_CHOWN",
            // the default profile refuses ptrace; an app given CAP_SYS_PTRACE for debugging
            // gets it allowed too
            "--seccomp=mode=retain,@docker/default-whitelist,ptrace",
            "--exec=/usr/bin/rkt-verifier",
            "--",
            "ptrace-watch",
            "8",
        ],
        Stdio::piped(),
    );
    // a failure before the exec is still reported (by the command, through the intermediate)
    let o = ctx.rkt_output(&["enter", &uuid, "/no/such/command"]);
    assert_eq!(o.status.code(), Some(254), "{}", stderr(&o));
    assert!(stderr(&o).contains("/no/such/command"), "{}", stderr(&o));
    let secret = format!("RKT_ENTER_SECRET={}-{}", rand_suffix(), std::process::id());
    let start = Instant::now();
    let mut entered = 0;
    let mut codes = Vec::new();
    while start.elapsed() < Duration::from_secs(5) {
        for cmd in [&["/bin/true"][..], &["/bin/sleep", "1"][..]] {
            let o = ctx
                .rkt()
                .arg("--insecure-options=image")
                .args(["enter", &uuid])
                .args(cmd)
                .env("RKT_ENTER_SECRET", &secret)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            codes.push((cmd.to_vec(), o.status.code(), stderr(&o)));
            entered += 1;
        }
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = child.wait();
    let _ = ctx.rkt_output(&["gc", "--grace-period=0s"]);
    eprintln!("ptrace-watch ({entered} enters): {out}");
    for (cmd, code, err) in &codes {
        assert_eq!(*code, Some(0), "{cmd:?}: {err}");
    }
    let lines: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        lines.iter().any(|v| v["done"] == true),
        "watcher did not finish: {out}"
    );
    let own = json_line(&out, "own_capeff")["own_capeff"]
        .as_str()
        .unwrap()
        .to_string();
    // CAP_SYS_PTRACE (bit 19) and CAP_CHOWN (bit 0), nothing else
    assert_eq!(own, "0000000000080001", "the app's own capabilities");
    let seen: Vec<&Value> = lines.iter().filter(|v| v.get("pid").is_some()).collect();
    // not vacuous: the watcher caught entered commands and could attach to them
    assert!(
        seen.iter().any(|v| v["attached"] == true),
        "the watcher attached to no entered command: {out}"
    );
    for v in &seen {
        if let Some(c) = v["capeff"].as_str() {
            assert_eq!(
                c, own,
                "a process of `rkt enter` was visible in the pod with more than the app's \
                 capabilities: {v}"
            );
        }
        assert_ne!(
            v["environ_secret"], true,
            "the admin's environment was readable in the pod: {v}"
        );
        assert_ne!(
            v["mem_secret"], true,
            "the admin's environment was in the memory of a pod process: {v}"
        );
    }
}

// enter2
/// The command now takes its session and pty after it became the app's user (it is born
/// confined): a non-root app's entered command on a terminal still gets the pty as stdio and
/// controlling terminal, and the caller's terminal is restored.
#[test]
fn a_non_root_apps_entered_command_takes_its_pty_after_confinement() {
    let ctx = TestCtx::new();
    let (child, uuid) = sleeper(&ctx, &["--user=1000", "--group=1000"]);
    let s = enter_on_a_terminal(
        &ctx,
        &[
            "enter",
            &uuid,
            "/usr/bin/rkt-verifier",
            "tty-attack",
            MARKER,
        ],
        false,
        b"",
    );
    assert_eq!(s.code, Some(0), "{}", s.shown);
    let report = json_line(&s.shown, "ttys");
    check_tty_attack(&report, s.admin, &s.left);
    assert_eq!(
        report["ttys"].as_array().unwrap().len(),
        4,
        "/dev/tty must open (the pty): {report}"
    );
    assert_eq!(s.flags[0], s.flags[1], "terminal not restored");
    stop(&ctx, &uuid, child);
}
