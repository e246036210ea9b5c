//! Hand-built pod dirs for running the real `rkt-stage1` binary as root.
#![allow(dead_code)]

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use stage1_abi::*;

pub const APPLETS: &[&str] = &[
    "sh", "true", "false", "sleep", "cat", "id", "hostname", "readlink", "echo", "ls", "kill",
    "mkdir", "touch", "grep", "ps", "wc", "head", "stat", "test", "mount",
];

/// A busybox root filesystem at `root`.
pub fn busybox_rootfs(root: &Path) {
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\nuser:x:1000:\nstaff:x:50:\n",
    )
    .unwrap();
}

pub fn app(name: &str, exec: &[&str]) -> App {
    App {
        environment: vec![("PATH".into(), "/bin".into())],
        ..App::new(
            name,
            ImageRef {
                id: "sha256:00".into(),
                name: "busybox".into(),
            },
            exec.iter().map(|s| s.to_string()).collect(),
        )
    }
}

pub fn runtime() -> RuntimeConfig {
    RuntimeConfig {
        stop_timeout_secs: 2,
        ..RuntimeConfig::new(NetConfig::None, "rkt-test")
    }
}

/// A pod dir plus the stage1 process running it; cleans up on drop.
pub struct Pod {
    pub dir: tempfile::TempDir,
    pub uuid: String,
    pub child: Option<Child>,
    lock: Option<std::fs::File>,
}

impl Pod {
    pub fn new(apps: Vec<App>, volumes: Vec<Volume>, rc: RuntimeConfig) -> Pod {
        let dir = tempfile::Builder::new()
            .prefix("stage1-test")
            .tempdir()
            .unwrap();
        let uuid = format!(
            "{:08x}-0000-4000-8000-{:012x}",
            std::process::id(),
            (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
                & 0xffff_ffff_ffff) as u64
        );
        for a in &apps {
            busybox_rootfs(&dir.path().join(paths::app_rootfs(&a.name)));
        }
        let pod = PodManifest {
            abi_version: ABI_VERSION,
            uuid: uuid.clone(),
            apps,
            volumes,
            annotations: vec![],
            private_users: None,
            mutable: false,
        };
        write_json_atomic(&dir.path().join(paths::POD_MANIFEST), &pod).unwrap();
        write_json_atomic(&dir.path().join(paths::RUNTIME_CONFIG), &rc).unwrap();
        Pod {
            dir,
            uuid,
            child: None,
            lock: None,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn spawn(&mut self) -> &mut Child {
        // the lock fd is inheritable until it is closed right after the spawn: tests run in
        // parallel, and another test's stage1 must not inherit (and hold) this pod's lock
        static SPAWNING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let spawning = SPAWNING.lock().unwrap_or_else(|e| e.into_inner());
        let f = std::fs::File::open(self.path()).unwrap();
        #[allow(deprecated)]
        nix::fcntl::flock(f.as_raw_fd(), nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
        nix::fcntl::fcntl(
            f.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .unwrap();
        let bin = std::env::var("STAGE1_TEST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_rkt-stage1").to_string());
        let child = Command::new(bin)
            .arg("run")
            .current_dir(self.path())
            .env(env::LOCK_FD, f.as_raw_fd().to_string())
            .env(
                env::DEBUG,
                std::env::var("STAGE1_TEST_DEBUG").unwrap_or_default(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(f);
        drop(spawning);
        self.child = Some(child);
        self.child.as_mut().unwrap()
    }

    /// Run to completion with a timeout; returns (status, stdout, stderr).
    pub fn run(&mut self, timeout: Duration) -> (ExitStatus, String, String) {
        self.spawn();
        self.wait(timeout)
    }

    pub fn wait(&mut self, timeout: Duration) -> (ExitStatus, String, String) {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(_st) = child.try_wait().unwrap() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("stage1 did not finish within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let out = self.child.take().unwrap().wait_with_output().unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn status(&self, app: &str) -> AppStatus {
        read_json(&self.path().join(paths::app_status(app))).unwrap()
    }

    /// Wait until `ready` exists (stage1 started all apps).
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.path().join(paths::READY).exists() {
            if let Some(c) = self.child.as_mut() {
                if let Some(st) = c.try_wait().unwrap() {
                    let out = self.child.take().unwrap().wait_with_output().unwrap();
                    panic!(
                        "stage1 exited early: {st}; stderr: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
            assert!(Instant::now() < deadline, "pod not ready in time");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn cgroup_list(&self) -> Vec<PathBuf> {
        std::fs::read_to_string(self.path().join(paths::CGROUPS))
            .unwrap_or_default()
            .lines()
            .map(PathBuf::from)
            .collect()
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = stage1::cgroups::remove_listed(&self.path().join(paths::CGROUPS));
        drop(self.lock.take());
    }
}

pub fn code(st: &ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}

pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}
