//! Test harness for rkt's integration tests.
//!
//! * [`TestCtx`]: a private `--dir`, `--local-config` and `--system-config` per test, and a Drop
//!   guard that kills the test's processes, removes its pods' networking (netns bind mounts,
//!   iptables chains, host-local allocations, the bridges its network configurations named),
//!   unmounts everything under it and removes its cgroups — even when the test panics.
//! * [`net`]: pod networking seen from the host (`ip -n rkt-<uuid> -j`, nat chains, host-local
//!   allocations, leak checks), independent of the product code.
//! * [`registry`]: Debian's `docker-registry` on 127.0.0.1 (plain HTTP and TLS with a CA made per
//!   run; optionally with htpasswd auth).
//! * [`signing`]: real signers for the trust tests (gpg keys and `.asc`, skopeo simple signing,
//!   cosign signatures); [`static_http`]: a counting static file server (http and https).
//! * [`images`]: reproducible OCI image layouts built with no network (busybox from Debian's
//!   busybox-static, a multi-layer whiteout image, a large image on demand), pushed with skopeo.
//! * [`booted`]: a real systemd booted in systemd-nspawn for one test (`scripts/booted-systemd.sh`).
//! * [`verifier_path`]: the static in-pod verifier binary (tests/verifier/main.rs).
#![deny(unsafe_code)]

pub mod booted;
pub mod cleanup;
pub mod ctx;
pub mod hostile_enter;
pub mod hostile_limits;
pub mod hostile_paths;
pub mod images;
pub mod net;
pub mod registry;
pub mod signing;
pub mod static_http;
pub mod tarball;
pub mod terminal;

pub use ctx::TestCtx;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Root of the cargo workspace.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate lives in the workspace")
        .to_path_buf()
}

/// The cargo target dir (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Directory holding the `rkt` and `rkt-stage1` binaries under test: `$RKT_BIN_DIR`, else
/// `target/debug`.
pub fn bin_dir() -> PathBuf {
    std::env::var_os("RKT_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug"))
}

/// The `rkt` binary under test. Panics with a hint when it was not built.
pub fn rkt_bin() -> PathBuf {
    let p = bin_dir().join("rkt");
    // rkt-monitor too: without it stage1 would quietly supervise pods itself
    for bin in [p.clone(), bin_dir().join("rkt-monitor")] {
        assert!(
            bin.exists(),
            "{} missing: run `make build` before the integration tests",
            bin.display()
        );
    }
    p
}

/// Build (once per process, and only when the source is newer) the static in-pod verifier and
/// return its path: `target/rkt-verifier`.
pub fn verifier_path() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let src = workspace_root().join("tests/verifier/main.rs");
        let out = target_dir().join("rkt-verifier");
        let fresh = match (out.metadata(), src.metadata()) {
            (Ok(o), Ok(s)) => o.modified().ok() >= s.modified().ok(),
            _ => false,
        };
        if !fresh {
            std::fs::create_dir_all(target_dir()).expect("create target dir");
            let tmp = target_dir().join(format!("rkt-verifier.tmp.{}", std::process::id()));
            let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
            let st = Command::new(rustc)
                .args([
                    "--edition",
                    "2021",
                    "-O",
                    "-C",
                    "target-feature=+crt-static",
                ])
                .args(["-C", "strip=symbols", "-o"])
                .arg(&tmp)
                .arg(&src)
                .status()
                .expect("run rustc for the verifier");
            assert!(st.success(), "building the verifier failed");
            std::fs::rename(&tmp, &out).expect("install verifier");
        }
        out
    })
}

/// Run a command, panic with its stderr unless it succeeds; return stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run a command with `input` on its stdin (then closed) and collect its output.
pub fn output_with_stdin(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input)
        .expect("writing stdin");
    child.wait_with_output().expect("waiting for the command")
}

/// A command's stdout as text.
pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A command's stderr as text.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Spawn `cmd` with stdout piped and stderr discarded, and wait for its first line, which must
/// be `want` (with its newline): for a pod that says when it is up. Returns the child.
pub fn spawn_until_line(cmd: &mut Command, want: &str) -> std::process::Child {
    use std::io::BufRead;
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().expect("piped stdout"))
        .read_line(&mut line)
        .expect("reading the first line");
    assert_eq!(line, want, "first line of {cmd:?}");
    child
}
