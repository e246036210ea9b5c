//! [`StaticServer`]: a small static file server for the trust tests (lookaside signatures over
//! http, ACIs with their `.asc`, appc discovery pages over https), counting what it serves.
//!
//! Blocking std sockets and one thread per connection; every response closes its connection.
//! Only `GET` and `HEAD`; a path with a `..` or `.` segment, or one that is not a regular file,
//! is a 404. A request whose query has `ac-discovery=1` is answered with `<path>/index.html`
//! (the meta tags of appc discovery); a directory with an `index.html` is answered with it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The most of a request head read before giving up on it.
const MAX_HEAD: usize = 16 << 10;

/// One request as served: its target (path and query, as sent) and the status answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// `GET` or `HEAD` (or what else was asked).
    pub method: String,
    /// The request target, e.g. `/app?ac-discovery=1`.
    pub target: String,
    /// The status code answered.
    pub status: u16,
}

/// A static file server on 127.0.0.1, stopped on drop.
pub struct StaticServer {
    addr: SocketAddr,
    tls: bool,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Served>>>,
    thread: Option<JoinHandle<()>>,
}

impl StaticServer {
    /// Serve `dir` over plain HTTP on `127.0.0.1:<free port>`.
    pub fn http(dir: &Path) -> StaticServer {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        StaticServer::start(dir, l, None)
    }

    /// Serve `dir` over HTTPS on `addr` (e.g. `127.0.0.1:443`), with a certificate for
    /// `localhost` and `127.0.0.1` signed by a CA made here, whose PEM is written to `ca`
    /// (for `<local-config>/certs.d/localhost/ca.crt`).
    pub fn https(dir: &Path, addr: &str, ca: &Path) -> StaticServer {
        let cfg = tls_config(ca);
        let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        StaticServer::start(dir, l, Some(cfg))
    }

    fn start(
        dir: &Path,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> StaticServer {
        let addr = listener.local_addr().expect("local addr");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let root = std::fs::canonicalize(dir).expect("served dir");
        let is_tls = tls.is_some();
        let thread = {
            let stop = stop.clone();
            let log = log.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            let root = root.clone();
                            let log = log.clone();
                            let tls = tls.clone();
                            std::thread::spawn(move || serve_conn(s, &root, tls, &log));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        StaticServer {
            addr,
            tls: is_tls,
            stop,
            log,
            thread: Some(thread),
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` or `https://…` (no trailing slash).
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.addr
        )
    }

    /// Every request served so far, in order.
    pub fn requests(&self) -> Vec<Served> {
        self.log.lock().unwrap().clone()
    }

    /// How many requests were served so far.
    pub fn request_count(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn tls_config(ca_out: &Path) -> Arc<rustls::ServerConfig> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "rkt-tests static CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
    if let Some(p) = ca_out.parent() {
        std::fs::create_dir_all(p).expect("CA dir");
    }
    std::fs::write(ca_out, ca.pem()).expect("write CA");
    let chain = vec![cert.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        key.serialize_der(),
    ));
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server cert config");
    Arc::new(cfg)
}

fn serve_conn(
    s: TcpStream,
    root: &Path,
    tls: Option<Arc<rustls::ServerConfig>>,
    log: &Mutex<Vec<Served>>,
) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
    match tls {
        None => serve_stream(s, root, log),
        Some(cfg) => {
            let Ok(conn) = rustls::ServerConnection::new(cfg) else {
                return;
            };
            serve_stream(rustls::StreamOwned::new(conn, s), root, log)
        }
    }
}

fn serve_stream<S: Read + Write>(s: S, root: &Path, log: &Mutex<Vec<Served>>) {
    let mut r = BufReader::new(s);
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        match (&mut r).take(MAX_HEAD as u64).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let end = line == b"\r\n" || line == b"\n";
        head.extend_from_slice(&line);
        if end {
            break;
        }
        if head.len() > MAX_HEAD {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut first = head.lines().next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("").to_string();
    let (status, body) = if method == "GET" || method == "HEAD" {
        match resolve(root, &target) {
            Some(p) => match std::fs::read(&p) {
                Ok(b) => (200, b),
                Err(_) => (404, b"not found\n".to_vec()),
            },
            None => (404, b"not found\n".to_vec()),
        }
    } else {
        (405, b"method not allowed\n".to_vec())
    };
    log.lock().unwrap().push(Served {
        method: method.clone(),
        target: target.clone(),
        status,
    });
    let ctype = if target.contains("ac-discovery=1") || target.ends_with(".html") {
        "text/html; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    let mut s = r.into_inner();
    let hdr = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(hdr.as_bytes());
    if method != "HEAD" {
        let _ = s.write_all(&body);
    }
    let _ = s.flush();
}

/// The file a request target names under `root`, if it is one.
fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = percent_decode(path.strip_prefix('/')?)?;
    let mut p = root.to_path_buf();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        if seg == ".." || seg == "." || seg.contains('\0') {
            return None;
        }
        p.push(seg);
    }
    let discovery = query.split('&').any(|kv| kv == "ac-discovery=1");
    if discovery || p.is_dir() {
        p.push("index.html");
    }
    // no symlinks out of the served tree
    let real = std::fs::canonicalize(&p).ok()?;
    (real.starts_with(root) && real.is_file()).then_some(real)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curl(args: &[&str]) -> (String, String) {
        let o = std::process::Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}"])
            .args(args)
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&o.stdout).into_owned();
        let (body, code) = s.rsplit_once('\n').unwrap();
        (body.to_string(), code.to_string())
    }

    #[test]
    fn serves_files_discovery_pages_and_counts() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("app")).unwrap();
        std::fs::write(d.path().join("app/index.html"), "<meta>").unwrap();
        std::fs::write(d.path().join("a b.txt"), "spaced").unwrap();
        std::fs::write(d.path().join("f"), "file").unwrap();
        let s = StaticServer::http(d.path());
        let u = s.url();
        assert_eq!(curl(&[&format!("{u}/f")]), ("file".into(), "200".into()));
        assert_eq!(
            curl(&[&format!("{u}/app?ac-discovery=1")]),
            ("<meta>".into(), "200".into())
        );
        assert_eq!(curl(&[&format!("{u}/a%20b.txt")]).0, "spaced");
        assert_eq!(curl(&[&format!("{u}/missing")]).1, "404");
        assert_eq!(
            curl(&["--path-as-is", &format!("{u}/../../etc/passwd")]).1,
            "404"
        );
        assert_eq!(s.request_count(), 5);
        assert_eq!(s.requests()[1].target, "/app?ac-discovery=1");
        assert_eq!(s.requests()[3].status, 404);
    }

    #[test]
    fn https_with_its_ca() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), "secure").unwrap();
        let ca = d.path().join("ca/ca.crt");
        let s = StaticServer::https(d.path(), "127.0.0.1:0", &ca);
        let port = s.addr().port();
        let url = format!("https://localhost:{port}/f");
        let resolve = format!("localhost:{port}:127.0.0.1");
        assert_eq!(
            curl(&[
                "--resolve",
                &resolve,
                "--cacert",
                ca.to_str().unwrap(),
                &url
            ]),
            ("secure".into(), "200".into())
        );
        // without the CA: refused by the client, nothing served
        assert_ne!(curl(&["--resolve", &resolve, &url]).1, "200");
        assert_eq!(s.request_count(), 1);
    }
}
