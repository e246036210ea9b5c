//! [`TestCtx`]: one private rkt world per test (rkt's tests/testutils/ctx.go, in Rust).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A private `--dir`, `--local-config` and `--system-config` under a temp dir. Dropping it kills
/// every process that lives in it, unmounts everything below it, removes the cgroups its pods
/// created and deletes the directory — also when the test failed.
pub struct TestCtx {
    root: tempfile::TempDir,
}

impl TestCtx {
    /// A fresh context under `$TMPDIR` (default /tmp), named `rkt-test-*`.
    pub fn new() -> TestCtx {
        let root = tempfile::Builder::new()
            .prefix("rkt-test-")
            .tempdir()
            .expect("create test dir");
        for d in ["data", "local", "system"] {
            std::fs::create_dir_all(root.path().join(d)).expect("create test subdir");
        }
        TestCtx { root }
    }

    /// The context's root directory.
    pub fn root(&self) -> &Path {
        self.root.path()
    }
    /// `--dir`.
    pub fn dir(&self) -> PathBuf {
        self.root.path().join("data")
    }
    /// `--local-config`.
    pub fn local_config(&self) -> PathBuf {
        self.root.path().join("local")
    }
    /// `--system-config`.
    pub fn system_config(&self) -> PathBuf {
        self.root.path().join("system")
    }

    /// `rkt` with this context's global flags set; add a subcommand and args.
    pub fn rkt(&self) -> Command {
        let mut c = Command::new(crate::rkt_bin());
        c.arg(format!("--dir={}", self.dir().display()))
            .arg(format!("--local-config={}", self.local_config().display()))
            .arg(format!(
                "--system-config={}",
                self.system_config().display()
            ));
        c
    }

    /// Run `rkt --insecure-options=image ARGS…` in this context and collect its output
    /// (signature verification is the trust issue's; digests are always verified).
    pub fn rkt_output(&self, args: &[&str]) -> std::process::Output {
        self.rkt()
            .arg("--insecure-options=image")
            .args(args)
            .output()
            .expect("spawn rkt")
    }

    /// UUIDs of the pods in a phase dir (`run`, `prepared`, …) of this context's data dir.
    pub fn pods_in(&self, phase: &str) -> Vec<String> {
        match std::fs::read_dir(self.dir().join("pods").join(phase)) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => vec![],
        }
    }

    /// Trust a registry CA for `host:port` the containers' way: `certs.d/HOST:PORT/ca.crt`
    /// under the local config.
    pub fn trust_ca(&self, addr: &str, ca_file: &Path) {
        let d = self.local_config().join("certs.d").join(addr);
        std::fs::create_dir_all(&d).expect("create certs.d");
        std::fs::copy(ca_file, d.join("ca.crt")).expect("copy CA");
    }
}

impl Default for TestCtx {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestCtx {
    fn drop(&mut self) {
        let report = crate::cleanup::clean_under(self.root.path());
        if !report.is_empty() && !std::thread::panicking() {
            eprintln!("TestCtx cleanup: {report}");
        }
    }
}
