//! A real local registry: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1, one
//! plain-HTTP and one TLS endpoint over one storage dir, TLS with a CA generated per run.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Path of Debian's registry binary.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// Options of a registry instance.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Require basic auth with this `(user, password)` (htpasswd, bcrypt via apache2-utils).
    pub basic_auth: Option<(String, String)>,
}

/// A running registry pair (http + https) sharing one storage dir. Stopped on drop; the
/// processes also exit on their own when the test process is gone.
pub struct Registry {
    dir: tempfile::TempDir,
    http_addr: String,
    tls_addr: String,
    children: Vec<Child>,
}

impl Registry {
    /// Start a registry pair and wait until both answer `GET /v2/`.
    pub fn start(opts: RegistryOptions) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("rkt-registry-")
            .tempdir_in(crate::images::scratch())
            .expect("registry dir");
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage).expect("registry storage");
        write_certs(dir.path());
        let auth = opts.basic_auth.as_ref().map(|(u, p)| {
            let out = crate::run_ok(Command::new("htpasswd").args(["-Bbn", u, p]));
            let f = dir.path().join("htpasswd");
            fs::write(&f, out).expect("write htpasswd");
            f
        });
        let mut reg = Registry {
            http_addr: String::new(),
            tls_addr: String::new(),
            children: vec![],
            dir,
        };
        for tls in [false, true] {
            let mut last_err = String::new();
            let mut started = false;
            for _attempt in 0..5 {
                let addr = free_addr();
                let cfg = reg
                    .dir
                    .path()
                    .join(if tls { "tls.yml" } else { "http.yml" });
                fs::write(
                    &cfg,
                    config(
                        &storage,
                        &addr,
                        tls.then(|| reg.dir.path()),
                        auth.as_deref(),
                    ),
                )
                .expect("write registry config");
                let mut child = spawn_tied(
                    &cfg,
                    &reg.dir
                        .path()
                        .join(if tls { "tls.log" } else { "http.log" }),
                );
                match wait_up(&addr, tls, &reg.ca_file(), &mut child) {
                    Ok(()) => {
                        reg.children.push(child);
                        if tls {
                            reg.tls_addr = addr;
                        } else {
                            reg.http_addr = addr;
                        }
                        started = true;
                        break;
                    }
                    Err(e) => {
                        last_err = e;
                        kill_group(&mut child);
                    }
                }
            }
            assert!(started, "registry did not start: {last_err}");
        }
        reg
    }

    /// `127.0.0.1:PORT` of the plain-HTTP endpoint.
    pub fn http_addr(&self) -> &str {
        &self.http_addr
    }
    /// `127.0.0.1:PORT` of the TLS endpoint.
    pub fn tls_addr(&self) -> &str {
        &self.tls_addr
    }
    /// PEM file of the CA that signed the TLS endpoint's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }
    /// The registry's storage dir (to tamper with blobs in tests).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }
    /// Path of a blob's data file in the storage dir.
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage_dir()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for c in &mut self.children {
            kill_group(c);
        }
    }
}

/// The registry shared by every test of this test binary (no auth).
pub fn shared() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Registry::start(RegistryOptions::default()))
}

fn config(storage: &Path, addr: &str, tls_dir: Option<&Path>, htpasswd: Option<&Path>) -> String {
    let mut c = format!(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: {addr}\n  secret: rkt-tests-secret\n",
        storage.display()
    );
    if let Some(d) = tls_dir {
        c.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            d.join("server.crt").display(),
            d.join("server.key").display()
        ));
    }
    if let Some(h) = htpasswd {
        c.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: rkt-tests\n    path: {}\n",
            h.display()
        ));
    }
    c
}

/// A CA and a server certificate for 127.0.0.1/localhost signed by it.
fn write_certs(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "rkt-tests CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
    fs::write(dir.join("ca.crt"), ca.pem()).expect("write ca");
    fs::write(dir.join("server.crt"), cert.pem()).expect("write cert");
    fs::write(dir.join("server.key"), key.serialize_pem()).expect("write key");
}

fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("local addr").to_string()
}

/// Start the registry under a small shell that stops it when this test process is gone, in its
/// own process group so Drop can stop both.
fn spawn_tied(cfg: &Path, log: &Path) -> Child {
    use std::os::unix::process::CommandExt;
    let log = fs::File::create(log).expect("registry log");
    Command::new("sh")
        .arg("-c")
        .arg(r#""$1" serve "$2" & r=$!; trap 'kill $r 2>/dev/null; wait $r; exit 0' TERM; while kill -0 "$3" 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.3; done; kill $r 2>/dev/null; wait $r"#)
        .arg("sh")
        .arg(REGISTRY_BIN)
        .arg(cfg)
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log fd"))
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {REGISTRY_BIN}: {e} (apt-get install docker-registry)"))
}

fn kill_group(c: &mut Child) {
    let pgid = c.id() as i32;
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = c.wait();
}

fn wait_up(addr: &str, tls: bool, ca: &Path, child: &mut Child) -> Result<(), String> {
    let url = format!("{}://{addr}/v2/", if tls { "https" } else { "http" });
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(15) {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("registry exited with {st}"));
        }
        let mut c = Command::new("curl");
        c.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]);
        if tls {
            c.arg("--cacert").arg(ca);
        }
        if let Ok(out) = c.arg(&url).output() {
            let code = String::from_utf8_lossy(&out.stdout).to_string();
            // 200 without auth, 401 with auth: either way it is up.
            if code == "200" || code == "401" {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("registry at {url} did not answer within 15s"))
}
