//! [`TestCtx`]: one private rkt world per test (rkt's tests/testutils/ctx.go, in Rust).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// A private `--dir`, `--local-config` and `--system-config` under a temp dir. Dropping it kills
/// every process that lives in it, removes its pods' networking (see
/// [`crate::net::clean_pod_networks`]), unmounts everything below it, removes the cgroups its
/// pods created, deletes the links and host-local stores of the networks it configured
/// ([`TestCtx::add_net_conf`]) and deletes the directory — also when the test failed.
pub struct TestCtx {
    root: tempfile::TempDir,
    /// Host links (bridges) to `ip link del` on drop.
    links: Mutex<Vec<String>>,
    /// Networks whose host-local store dir is removed on drop (when no allocation is left).
    nets: Mutex<Vec<String>>,
}

/// Networks whose host-local store other contexts share: never removed.
const SHARED_NETS: &[&str] = &["default", "default-restricted"];

impl TestCtx {
    /// A fresh context under `$TMPDIR` (default /tmp), named `rkt-test-*`.
    pub fn new() -> TestCtx {
        Self::new_in(&std::env::temp_dir())
    }

    /// A fresh context in `parent` (e.g. a dir bound into a booted systemd at the same path,
    /// [`crate::booted`]), named `rkt-test-*`.
    pub fn new_in(parent: &Path) -> TestCtx {
        let root = tempfile::Builder::new()
            .prefix("rkt-test-")
            .tempdir_in(parent)
            .expect("create test dir");
        for d in ["data", "local", "system"] {
            std::fs::create_dir_all(root.path().join(d)).expect("create test subdir");
        }
        TestCtx {
            root,
            links: Mutex::new(Vec::new()),
            nets: Mutex::new(Vec::new()),
        }
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

    /// [`Self::rkt`] run through a wrapper command, e.g. `["setsid", "-c", "-w"]`: the
    /// wrapper's words, then rkt's path and this context's flags.
    pub fn rkt_under(&self, wrapper: &[&str]) -> Command {
        let rkt = self.rkt();
        let mut c = Command::new(wrapper[0]);
        c.args(&wrapper[1..])
            .arg(rkt.get_program())
            .args(rkt.get_args());
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

    /// `rkt run --uuid-file-save=… IMAGE --exec=/bin/sh -- -c SCRIPT` in this context: its output
    /// and the pod's UUID (empty if none was saved).
    pub fn run_sh(&self, image: &str, script: &str) -> (std::process::Output, String) {
        let uf = self.root().join("run-sh.uuid");
        let _ = std::fs::remove_file(&uf);
        let o = self.rkt_output(&[
            "run",
            &format!("--uuid-file-save={}", uf.display()),
            image,
            "--exec=/bin/sh",
            "--",
            "-c",
            script,
        ]);
        let uuid = std::fs::read_to_string(&uf).unwrap_or_default();
        (o, uuid.trim().to_string())
    }

    /// Start `rkt CMD --uuid-file-save=UUID_FILE IMAGE --exec=/bin/sleep -- 30` (`run` or
    /// `prepare`), SIGKILL it after `delay` and reap it; returns the pod's UUID if it got as far
    /// as saving one. What the pod set up is left for gc.
    pub fn kill_sleeper_after(
        &self,
        cmd: &str,
        image: &str,
        uuid_file: &Path,
        delay: std::time::Duration,
    ) -> Option<String> {
        let mut c = self
            .rkt()
            .arg("--insecure-options=image")
            .arg(cmd)
            .arg(format!("--uuid-file-save={}", uuid_file.display()))
            .args([image, "--exec=/bin/sleep", "--", "30"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn rkt");
        std::thread::sleep(delay);
        let _ = c.kill();
        let _ = c.wait();
        let u = std::fs::read_to_string(uuid_file).ok()?;
        (u.trim().len() == 36).then(|| u.trim().to_string())
    }

    /// `rkt [--insecure-options=image] run --uuid-file-save=F RUN_ARGS…` (image, app flags and
    /// `--exec=…` included in `run_args`), spawned through `wrapper` (empty: directly) with
    /// stdin closed, stdout `out` and no stderr, in the background. Returns the child and the
    /// pod's UUID once the pod is running and ready (`rkt status --wait-ready`); kills it and
    /// panics if that takes over 20 s or `rkt run` exits first. The caller waits for the child.
    #[allow(clippy::zombie_processes)]
    pub fn spawn_pod(
        &self,
        wrapper: &[&str],
        run_args: &[&str],
        out: std::process::Stdio,
    ) -> (std::process::Child, String) {
        use std::sync::atomic::{AtomicU32, Ordering};
        use std::time::{Duration, Instant};
        static N: AtomicU32 = AtomicU32::new(0);
        let uf = self.root().join(format!(
            "spawned-{}.uuid",
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let mut cmd = if wrapper.is_empty() {
            self.rkt()
        } else {
            self.rkt_under(wrapper)
        };
        let mut child = cmd
            .arg("--insecure-options=image")
            .arg("run")
            .arg(format!("--uuid-file-save={}", uf.display()))
            .args(run_args)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn rkt run");
        let start = Instant::now();
        loop {
            if let Ok(u) = std::fs::read_to_string(&uf) {
                let u = u.trim().to_string();
                if u.len() == 36
                    && self
                        .rkt_output(&["status", "--wait-ready=10s", &u])
                        .status
                        .success()
                {
                    return (child, u);
                }
            }
            if start.elapsed() > Duration::from_secs(20)
                || child.try_wait().ok().flatten().is_some()
            {
                let _ = child.kill();
                let _ = child.wait();
                panic!("pod {run_args:?} did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Assert that no pod dir is left in any phase and nothing is mounted under the data dir:
    /// what every refused or failed `rkt run`/`prepare` must leave.
    pub fn assert_nothing_left(&self) {
        for phase in [
            "embryo",
            "prepare",
            "prepared",
            "run",
            "exited-garbage",
            "garbage",
        ] {
            assert!(
                self.pods_in(phase).is_empty(),
                "pod left in {phase}: {:?}",
                self.pods_in(phase)
            );
        }
        crate::cleanup::assert_no_mounts_under(&self.dir(), "mounts left");
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

    /// Write a CNI network configuration (a `.conf` or `.conflist` object) to
    /// `<local-config>/net.d/<file>`. Every `"bridge"` its plugins name is deleted on drop, and
    /// so is the network's host-local store dir (`/var/lib/cni/networks/<name>`, unless that
    /// is `default` or `default-restricted`, which other tests share) once it holds no
    /// allocation. Give every test its own network name, bridge and subnet: tests run in
    /// parallel.
    pub fn add_net_conf(&self, file: &str, conf: &serde_json::Value) -> PathBuf {
        let d = self.local_config().join("net.d");
        std::fs::create_dir_all(&d).expect("create net.d");
        let p = d.join(file);
        std::fs::write(&p, serde_json::to_vec_pretty(conf).expect("conf JSON"))
            .expect("write conf");
        let plugins: Vec<&serde_json::Value> = match conf["plugins"].as_array() {
            Some(list) => list.iter().collect(),
            None => vec![conf],
        };
        for b in plugins.iter().filter_map(|p| p["bridge"].as_str()) {
            self.delete_link_on_drop(b);
        }
        if let Some(n) = conf["name"].as_str() {
            if !SHARED_NETS.contains(&n) {
                self.nets.lock().unwrap().push(n.to_string());
            }
        }
        p
    }

    /// `ip link del NAME` when the context is dropped (after its pods are gone).
    pub fn delete_link_on_drop(&self, name: &str) {
        let mut l = self.links.lock().unwrap();
        if !l.iter().any(|x| x == name) {
            l.push(name.to_string());
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
        let mut report = crate::cleanup::clean_under(self.root.path());
        // links are expected to be there (the test made them): not a leak, no report
        for l in self.links.lock().map(|l| l.clone()).unwrap_or_default() {
            if crate::net::host_link_exists(&l) {
                crate::net::delete_link(&l);
            }
        }
        for n in self.nets.lock().map(|n| n.clone()).unwrap_or_default() {
            let d = Path::new(crate::net::HOST_LOCAL_DIR).join(&n);
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            let names: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if names.iter().any(|f| crate::net::is_allocation_name(f)) {
                if !report.is_empty() {
                    report.push_str(", ");
                }
                report.push_str(&format!("kept {} (allocations left)", d.display()));
            } else {
                let _ = std::fs::remove_dir_all(&d);
            }
        }
        if !report.is_empty() && !std::thread::panicking() {
            eprintln!("TestCtx cleanup: {report}");
        }
    }
}
