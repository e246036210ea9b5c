//! [`Booted`]: a real systemd, booted in `systemd-nspawn` for one test, with the binaries under
//! test, the test images and a private [`TestCtx`] bound in at the same paths as on the host.
//!
//! The host's PID 1 is not systemd, so tests of rkt under systemd (units, notify, socket
//! activation, delegation, the generator) run in a Debian 12 root booted by
//! `scripts/booted-systemd.sh`: debootstrapped once from the host's apt mirror and cached in
//! `$BOOT_DIR` (default `/var/tmp/rkt-booted-systemd`, ≈ 40 s the first time), booted in ≈ 1 s.
//! One instance at a time: a process-wide mutex serializes the tests of a binary and an `flock`
//! on `$BOOT_DIR/lock` the test binaries (and anyone else using the script with that dir).
//!
//! Paths are the same inside and outside: `rkt` and its stage1/monitor (`bin_dir()`), the image
//! layouts ([`crate::images::scratch`]), the CNI plugins (`/usr/lib/cni`) are bound read-only,
//! a fresh dir under `/tmp` read-write with the test's [`TestCtx`] in it. So `ctx.rkt()`'s
//! command line works inside, and a test reads the pod dirs from the host.
//!
//! Dropping a [`Booted`] (also after a panic) powers the container off — every process, mount,
//! cgroup, network namespace and iptables rule made inside goes with it — then drops the
//! context and removes the bound dir.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::TestCtx;

/// The boot script, in the repository.
pub fn script() -> PathBuf {
    crate::workspace_root().join("scripts/booted-systemd.sh")
}

/// Where the cached root lives (`$BOOT_DIR`, as the script reads it).
pub fn boot_dir() -> PathBuf {
    std::env::var_os("BOOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/rkt-booted-systemd"))
}

/// Cgroup layout of the booted container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupLayout {
    /// Pure cgroup v2, writable, without controllers on this host (they are bound to v1).
    Unified,
    /// The host's hybrid layout: v1 controllers mounted read-only, a cgroup2 for systemd.
    Hybrid,
}

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A booted systemd for one test; see the module docs.
pub struct Booted {
    ctx: Option<TestCtx>,
    base: PathBuf,
    layout: CgroupLayout,
    _flock: nix::fcntl::Flock<File>,
    _guard: MutexGuard<'static, ()>,
}

fn script_cmd() -> Command {
    let mut c = Command::new(script());
    c.env("BOOT_DIR", boot_dir());
    c
}

fn take_flock() -> nix::fcntl::Flock<File> {
    std::fs::create_dir_all(boot_dir()).expect("create BOOT_DIR");
    let f = File::create(boot_dir().join("lock")).expect("create BOOT_DIR/lock");
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("flock BOOT_DIR/lock: {e}"))
}

impl Booted {
    /// Boot with a pure cgroup2 tree (delegation works; no controllers).
    pub fn start() -> Booted {
        Self::start_with(CgroupLayout::Unified)
    }

    /// Build the root if needed and boot it with `layout`; panics (with the boot log's tail)
    /// if systemd does not reach `running`.
    pub fn start_with(layout: CgroupLayout) -> Booted {
        let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            Path::new("/usr/bin/systemd-nspawn").exists(),
            "systemd-nspawn missing: apt-get install systemd-container (make deps)"
        );
        let flock = take_flock();
        // images first: the layouts must exist before their dir is bound
        crate::images::busybox();
        let out = script_cmd()
            .arg("build")
            .output()
            .expect("run booted-systemd.sh build");
        assert!(
            out.status.success(),
            "booted-systemd.sh build failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // a container left running by a killed test process: stop it first
        let _ = script_cmd().arg("stop").output();
        let base = tempfile::Builder::new()
            .prefix("rkt-booted-")
            .tempdir_in("/tmp")
            .expect("create bound dir")
            .keep();
        let mut ro = vec![crate::bin_dir(), crate::images::scratch().to_path_buf()];
        if Path::new("/usr/lib/cni").is_dir() {
            ro.push(PathBuf::from("/usr/lib/cni"));
        }
        let binds = |v: &[PathBuf]| {
            v.iter()
                .map(|p| format!("{0}:{0}", p.display()))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let out = script_cmd()
            .arg("start")
            .env("BINDS", binds(&ro))
            .env("BINDS_RW", binds(std::slice::from_ref(&base)))
            .env(
                "BOOT_CGMODE",
                match layout {
                    CgroupLayout::Unified => "1",
                    CgroupLayout::Hybrid => "hybrid",
                },
            )
            .output()
            .expect("run booted-systemd.sh start");
        let b = Booted {
            ctx: Some(TestCtx::new_in(&base)),
            base,
            layout,
            _flock: flock,
            _guard: guard,
        };
        assert!(
            out.status.success(),
            "booting systemd failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        b
    }

    /// The container's cgroup layout.
    pub fn layout(&self) -> CgroupLayout {
        self.layout
    }

    /// The test's rkt context (its dirs are bound in at the same paths).
    pub fn ctx(&self) -> &TestCtx {
        self.ctx.as_ref().expect("context lives until drop")
    }

    /// `CMD…` inside the container (nsenter into its PID 1's namespaces, outside any unit),
    /// killed after 120 s.
    pub fn exec(&self, args: &[&str]) -> Output {
        self.exec_cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("run booted-systemd.sh exec")
    }

    /// The command [`Self::exec`] runs, to add stdin or spawn it.
    pub fn exec_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("timeout");
        c.args(["120"])
            .arg(script())
            .env("BOOT_DIR", boot_dir())
            .arg("exec")
            .args(args);
        c
    }

    /// `bash -c SCRIPT` inside.
    pub fn sh(&self, script: &str) -> Output {
        self.exec(&["bash", "-c", script])
    }

    /// [`Self::sh`], which must succeed; its stdout.
    pub fn sh_ok(&self, script: &str) -> String {
        let o = self.sh(script);
        assert!(
            o.status.success(),
            "{script:?} in the booted systemd: {}: {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `rkt` with the context's global flags and `--insecure-options=image`, as words for a
    /// unit's `ExecStart=` or `systemd-run` (no word has spaces: the paths are ours).
    pub fn rkt_words(&self) -> Vec<String> {
        let c = self.ctx().rkt();
        let mut w = vec![c.get_program().to_string_lossy().into_owned()];
        w.extend(c.get_args().map(|a| a.to_string_lossy().into_owned()));
        w.push("--insecure-options=image".into());
        w
    }

    /// [`Self::rkt_words`] joined by spaces.
    pub fn rkt_line(&self) -> String {
        self.rkt_words().join(" ")
    }

    /// Install `/run/systemd/system/NAME` with `content` and reload systemd.
    pub fn install_unit(&self, name: &str, content: &str) {
        let path = format!("/run/systemd/system/{name}");
        let o = crate::output_with_stdin(
            &mut self.exec_cmd(&["sh", "-c", &format!("cat > {path}")]),
            content.as_bytes(),
        );
        assert!(o.status.success(), "writing {path}");
        self.sh_ok("systemctl daemon-reload");
    }

    /// `systemctl show -P PROP UNIT`.
    pub fn prop(&self, unit: &str, prop: &str) -> String {
        let o = self.exec(&["systemctl", "show", "-P", prop, unit]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// Poll the unit's `ActiveState` until it is one of `want` (returned) or `timeout` passes
    /// (panics naming the last state).
    pub fn wait_active_state(&self, unit: &str, want: &[&str], timeout: Duration) -> String {
        let t = Instant::now();
        loop {
            let s = self.prop(unit, "ActiveState");
            if want.contains(&s.as_str()) {
                return s;
            }
            if t.elapsed() > timeout {
                let st = self.exec(&["systemctl", "status", "--no-pager", "-l", unit]);
                panic!(
                    "{unit}: ActiveState {s:?}, want one of {want:?} after {timeout:?}\n{}",
                    String::from_utf8_lossy(&st.stdout)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The unit's main PID as seen inside (0: none).
    pub fn main_pid(&self, unit: &str) -> u32 {
        self.prop(unit, "MainPID").parse().unwrap_or(0)
    }

    /// What a pod left inside the container: processes whose cwd is under its pod dir, cgroups
    /// named after it, mounts under its pod dir, its netns, iptables lines naming it (other
    /// pods of the context may run on). Empty when nothing is left.
    pub fn pod_leftovers(&self, uuid: &str) -> Vec<String> {
        let uuid8 = &uuid[..8];
        let dir = self.ctx().root().display().to_string();
        let script = format!(
            r#"for p in /proc/[0-9]*; do
  c=$(readlink $p/cwd 2>/dev/null); case $c in {dir}*{uuid}*) echo "process ${{p#/proc/}} (cwd $c)";; esac
done
find /sys/fs/cgroup -name 'rkt-{uuid}*' -type d 2>/dev/null | sed 's/^/cgroup /'
find /sys/fs/cgroup -path '*/rkt/{uuid}' -type d 2>/dev/null | sed 's/^/cgroup /'
awk '$5 ~ "^{dir}" && $5 ~ "{uuid}" {{print "mount " $5}}' /proc/1/mountinfo
[ -e /run/netns/rkt-{uuid} ] && echo "netns /run/netns/rkt-{uuid}"
iptables-save 2>/dev/null | grep -i -- '{uuid8}' | sed 's/^/iptables /'
true"#
        );
        self.sh_ok(&script)
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// `journalctl -b -o cat ARGS…`: message texts.
    pub fn journal(&self, args: &[&str]) -> String {
        let mut a = vec!["journalctl", "-b", "--no-pager", "-o", "cat"];
        a.extend_from_slice(args);
        String::from_utf8_lossy(&self.exec(&a).stdout).into_owned()
    }
}

impl Drop for Booted {
    fn drop(&mut self) {
        let out = script_cmd().arg("stop").output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "booted-systemd.sh stop: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("booted-systemd.sh stop: {e}"),
        }
        // everything inside is gone with the container: the context only has files left
        self.ctx.take();
        let _ = std::fs::remove_dir_all(&self.base);
    }
}
