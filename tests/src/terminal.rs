//! A shell driven through a terminal of its caller, as an admin at a keyboard would: for the
//! relays of `rkt run --interactive` and `rkt enter` (raw mode, SIGWINCH, Ctrl-C, exit codes).

use std::io::{Read, Write};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Output read from the master side of the caller's terminal.
struct PtyOutput(Arc<Mutex<String>>);

impl PtyOutput {
    fn start(mut master: std::fs::File) -> PtyOutput {
        let buf = Arc::new(Mutex::new(String::new()));
        let b = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            // EIO once the slave side is closed everywhere
            while let Ok(n @ 1..) = master.read(&mut chunk) {
                b.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        PtyOutput(buf)
    }

    /// Whether a line of the output is exactly `line` (the terminal also echoes what was typed,
    /// so markers are computed by the shell and never typed literally).
    fn has_line(&self, line: &str) -> bool {
        self.0
            .lock()
            .unwrap()
            .lines()
            .any(|l| l.trim_end_matches('\r') == line)
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

/// Run `rkt` (a `Command` from `TestCtx::rkt_under(&["setsid", "-c", "-w"])`, so that the
/// terminal is its controlling one, with the arguments that start a shell on it) on a new pty
/// as the caller's terminal, then, as a user typing: check the shell answers; resize the
/// terminal to `rows`×`cols` and check the shell's terminal follows (SIGWINCH relayed); run a
/// foreground `sleep`, press Ctrl-C and check the job died of SIGINT (130) while the shell
/// lives on; `exit 3`. Returns rkt's exit status code; panics with the output on a timeout.
pub fn drive_shell(rkt: &mut Command, rows: u16, cols: u16) -> Option<i32> {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave_path = nix::unistd::ttyname(&pty.slave).expect("ttyname");
    let slave = std::fs::File::from(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    let mut child = rkt
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .expect("spawn rkt on a terminal");
    let out = PtyOutput::start(master.try_clone().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut wait_for = |line: &str, master: &mut std::fs::File, again: &[u8]| {
        while !out.has_line(line) {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("no {line:?} from the shell; output: {:?}", out.text());
            }
            master.write_all(again).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    // the shell runs
    wait_for("S2", &mut master, b"echo S$((1+1))\n");
    // resize the caller's terminal: the kernel sends SIGWINCH to rkt, which resizes the shell's
    let st = Command::new("stty")
        .arg("-F")
        .arg(&slave_path)
        .args(["rows", &rows.to_string(), "cols", &cols.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let size = format!("W{rows}x{cols}");
    wait_for(&size, &mut master, b"echo W$(stty size | tr ' ' x)\n");
    // Ctrl-C while the shell runs a foreground job: the job dies of SIGINT (the shell reports
    // 130), the shell and rkt live on
    master.write_all(b"echo G$((0+1)); sleep 100\n").unwrap();
    wait_for("G1", &mut master, b"");
    std::thread::sleep(Duration::from_millis(200));
    // again until it shows: under load a Ctrl-C can land before the shell started `sleep`
    // (then it only clears the shell's line, and `sleep` runs on), and the Ctrl-C that kills
    // `sleep` also flushes what was typed meanwhile
    wait_for("C130", &mut master, b"\x03echo C$?\n");
    master.write_all(b"exit 3\n").unwrap();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        assert!(
            Instant::now() < deadline,
            "rkt did not exit: {:?}",
            out.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
