//! Against real registries (Debian's docker-registry, images pushed with skopeo). Needs
//! `docker-registry`, `skopeo`, `openssl`, `htpasswd` (apache2-utils); ignored by default:
//! `cargo test -p image-store --lib registry::live_tests -- --ignored --test-threads=1`

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use sha2::{Digest as _, Sha256};

use super::*;

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

struct Reg {
    addr: String,
    child: Child,
}

impl Drop for Reg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start docker-registry on a free port; `tls` = (cert, key); `htpasswd` file.
fn start(dir: &Path, name: &str, tls: Option<(&Path, &Path)>, htpasswd: Option<&Path>) -> Reg {
    let addr = free_addr();
    let storage = dir.join(format!("{name}-storage"));
    std::fs::create_dir_all(&storage).unwrap();
    let mut cfg = format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n  secret: s\n",
        storage.display()
    );
    if let Some((c, k)) = tls {
        cfg += &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            c.display(),
            k.display()
        );
    }
    if let Some(h) = htpasswd {
        cfg += &format!(
            "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
            h.display()
        );
    }
    let cfg_path = dir.join(format!("{name}.yml"));
    std::fs::write(&cfg_path, cfg).unwrap();
    let child = Command::new("/usr/bin/docker-registry")
        .arg("serve")
        .arg(&cfg_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry");
    let t0 = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "registry {name} did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Reg { addr, child }
}

/// Write an OCI layout with one image per platform; with more than one platform the tag
/// points to an image index. Returns (layer bytes of the first image, manifest digests).
fn layout(dir: &Path, tag: &str, arches: &[&str]) -> (Vec<u8>, Vec<String>) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let d = sha(b);
        std::fs::write(blobs.join(&d[7..]), b).unwrap();
        d
    };
    let mut first_layer = Vec::new();
    let mut manifests = Vec::new();
    let mut entries = Vec::new();
    for arch in arches {
        let mut tar = tar::Builder::new(Vec::new());
        // Text plus 150 KB that does not compress, so layers are big enough to cut mid-way.
        let mut data = format!("hello from {arch}\n").repeat(5000).into_bytes();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ arch.len() as u64;
        data.extend((0..150_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        }));
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "hello.txt", &data[..]).unwrap();
        let raw = tar.into_inner().unwrap();
        let diff_id = sha(&raw);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).unwrap();
        let layer = gz.finish().unwrap();
        let layer_d = put(&layer);
        let config = serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Cmd": ["/hello"], "Env": ["A=1"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]}
        })
        .to_string();
        let config_d = put(config.as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_d, "size": layer.len()}]
        })
        .to_string();
        let md = put(manifest.as_bytes());
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len(),
            "platform": {"architecture": arch, "os": "linux"}
        }));
        manifests.push(md);
        if first_layer.is_empty() {
            first_layer = layer;
        }
    }
    let top = if arches.len() == 1 {
        let mut e = entries[0].clone();
        e.as_object_mut().unwrap().remove("platform");
        e
    } else {
        let index = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries
        })
        .to_string();
        let d = put(index.as_bytes());
        serde_json::json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d, "size": index.len()})
    };
    let mut top = top;
    top["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [top]}).to_string(),
    )
    .unwrap();
    (first_layer, manifests)
}

fn push(layout: &Path, tag: &str, dest: &str, creds: Option<&str>) {
    let mut c = Command::new("skopeo");
    c.args(["copy", "-q", "--all", "--dest-tls-verify=false"]);
    if let Some(cr) = creds {
        c.args(["--dest-creds", cr]);
    }
    c.arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{dest}"));
    run(&mut c);
}

fn registry(opts: RegistryOptions) -> Registry {
    Registry::new(opts).unwrap()
}

struct World {
    tmp: tempfile::TempDir,
    http: Reg,
    layer: Vec<u8>,
    manifest_digest: String,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let http = start(tmp.path(), "http", None, None);
    let lay = tmp.path().join("layout");
    let (layer, m) = layout(&lay, "v1", &["amd64"]);
    push(&lay, "v1", &format!("{}/bb:v1", http.addr), None);
    World {
        tmp,
        http,
        layer,
        manifest_digest: m[0].clone(),
    }
}

#[tokio::test]
#[ignore = "needs docker-registry and skopeo"]
async fn http_registry_tag_digest_blobs() {
    let w = world();
    let r = Reference::parse(&format!("{}/bb:v1", w.http.addr)).unwrap();

    let e = registry(RegistryOptions::default())
        .resolve(&r)
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::HttpNotAllowed { .. }), "{e}");
    assert!(e.to_string().contains("--insecure-options=http"), "{e}");

    let reg = registry(RegistryOptions {
        allow_http: true,
        ..Default::default()
    });
    let img = reg.resolve(&r).await.unwrap();
    assert_eq!(img.manifest_digest, w.manifest_digest);
    assert_eq!(img.endpoint, w.http.addr);
    assert_eq!(img.config.rootfs().diff_ids().len(), 1);
    assert_eq!(
        sha(&img.config_bytes),
        img.manifest.config().digest().to_string()
    );

    // by digest
    let rd = Reference::parse(&format!("{}/bb@{}", w.http.addr, w.manifest_digest)).unwrap();
    assert_eq!(
        reg.resolve(&rd).await.unwrap().manifest_digest,
        w.manifest_digest
    );

    // full blob and a resumed tail
    let ld = img.manifest.layers()[0].digest().to_string();
    let all: Vec<bytes::Bytes> = reg
        .blob_stream(&img, &ld, 0)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.concat(), w.layer);
    let tail: Vec<bytes::Bytes> = reg
        .blob_stream(&img, &ld, 1000)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(tail.concat(), w.layer[1000..]);

    // not found: tag, repo, blob
    let nf = Reference::parse(&format!("{}/bb:v2", w.http.addr)).unwrap();
    let e = reg.resolve(&nf).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "image \"{}/bb:v2\" not found in registry {}",
            w.http.addr, w.http.addr
        )
    );
    let nf = Reference::parse(&format!("{}/nope:v1", w.http.addr)).unwrap();
    assert!(matches!(
        reg.resolve(&nf).await.unwrap_err(),
        RegistryError::NotFound { .. }
    ));
    let missing = format!("sha256:{}", "0".repeat(64));
    let e = reg.blob_stream(&img, &missing, 0).await.err().unwrap();
    assert!(matches!(e, RegistryError::BlobNotFound { .. }), "{e}");
}

#[tokio::test]
#[ignore = "needs docker-registry, skopeo and openssl"]
async fn tls_with_and_without_certs_d() {
    let tmp = tempfile::tempdir().unwrap();
    // A CA and a leaf signed by it (rustls refuses a self-signed CA used as the server cert).
    let t = tmp.path();
    let (ca, crt, key) = (t.join("ca.crt"), t.join("tls.crt"), t.join("tls.key"));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .args(["req", "-x509", "-days", "2", "-subj", "/CN=test CA"])
        .args(ec)
        .arg("-keyout")
        .arg(t.join("ca.key"))
        .arg("-out")
        .arg(&ca));
    run(Command::new("openssl")
        .args(["req", "-subj", "/CN=127.0.0.1"])
        .args(ec)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(t.join("tls.csr")));
    std::fs::write(t.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(t.join("tls.csr"))
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(t.join("ca.key"))
        .arg("-extfile")
        .arg(t.join("ext"))
        .arg("-out")
        .arg(&crt));
    let tls = start(tmp.path(), "tls", Some((&crt, &key)), None);
    let lay = tmp.path().join("layout");
    layout(&lay, "v1", &["amd64"]);
    push(&lay, "v1", &format!("{}/bb:v1", tls.addr), None);
    let r = Reference::parse(&format!("{}/bb:v1", tls.addr)).unwrap();
    let (sys, local) = (tmp.path().join("sys"), tmp.path().join("local"));

    let dirs = vec![sys.clone(), local.clone()];
    let e = registry(RegistryOptions {
        config_dirs: dirs.clone(),
        ..Default::default()
    })
    .resolve(&r)
    .await
    .unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, RegistryError::Tls { .. }), "{s}");
    let hint = local.join("certs.d").join(&tls.addr).join("ca.crt");
    assert!(
        s.contains(&hint.display().to_string()) && s.contains("--insecure-options=tls"),
        "{s}"
    );
    // allow_http does not paper over a TLS failure
    let e = registry(RegistryOptions {
        config_dirs: dirs.clone(),
        allow_http: true,
        ..Default::default()
    })
    .resolve(&r)
    .await
    .unwrap_err();
    assert!(matches!(e, RegistryError::Tls { .. }), "{e}");

    let skip = RegistryOptions {
        insecure_skip_tls_verify: true,
        ..Default::default()
    };
    registry(skip).resolve(&r).await.unwrap();

    std::fs::create_dir_all(sys.join("certs.d").join(&tls.addr)).unwrap();
    std::fs::copy(&ca, sys.join("certs.d").join(&tls.addr).join("ca.crt")).unwrap();
    let reg = registry(RegistryOptions {
        config_dirs: dirs,
        ..Default::default()
    });
    let img = reg.resolve(&r).await.unwrap();
    assert_eq!(img.endpoint, tls.addr);
    let ld = img.manifest.layers()[0].digest().to_string();
    let n: usize = reg
        .blob_stream(&img, &ld, 0)
        .await
        .unwrap()
        .map_ok(|b| b.len())
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .iter()
        .sum();
    assert_eq!(n as u64, img.manifest.layers()[0].size());
}

#[tokio::test]
#[ignore = "needs docker-registry, skopeo and htpasswd"]
async fn basic_auth_from_auth_d() {
    let tmp = tempfile::tempdir().unwrap();
    let hp = tmp.path().join("htpasswd");
    let out = Command::new("htpasswd")
        .args(["-Bbn", "alice", "s3cret"])
        .output()
        .unwrap();
    std::fs::write(&hp, out.stdout).unwrap();
    let reg_ = start(tmp.path(), "auth", None, Some(&hp));
    let lay = tmp.path().join("layout");
    layout(&lay, "v1", &["amd64"]);
    push(
        &lay,
        "v1",
        &format!("{}/priv:v1", reg_.addr),
        Some("alice:s3cret"),
    );
    let r = Reference::parse(&format!("{}/priv:v1", reg_.addr)).unwrap();
    let conf = tmp.path().join("conf");
    let base = RegistryOptions {
        allow_http: true,
        config_dirs: vec![conf.clone()],
        ..Default::default()
    };

    let e = registry(base.clone()).resolve(&r).await.unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");

    std::fs::create_dir_all(conf.join("auth.d")).unwrap();
    let write = |pw: &str| {
        std::fs::write(
            conf.join("auth.d/reg.json"),
            format!(r#"{{"rktKind":"dockerAuth","rktVersion":"v1","registries":["{}"],"credentials":{{"user":"alice","password":"{pw}"}}}}"#, reg_.addr),
        )
        .unwrap()
    };
    write("wrong");
    let e = registry(base.clone()).resolve(&r).await.unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");
    write("s3cret");
    let reg = registry(base);
    let img = reg.resolve(&r).await.unwrap();
    let ld = img.manifest.layers()[0].digest().to_string();
    let got: Vec<bytes::Bytes> = reg
        .blob_stream(&img, &ld, 0)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(sha(&got.concat()), ld);
}

#[tokio::test]
#[ignore = "needs docker-registry and skopeo"]
async fn index_picks_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let http = start(tmp.path(), "idx", None, None);
    let lay = tmp.path().join("layout");
    let (_, ms) = layout(&lay, "multi", &["amd64", "arm64"]);
    push(&lay, "multi", &format!("{}/multi:v1", http.addr), None);
    let r = Reference::parse(&format!("{}/multi:v1", http.addr)).unwrap();
    for (p, want) in [("linux/amd64", &ms[0]), ("linux/arm64", &ms[1])] {
        let reg = registry(RegistryOptions {
            allow_http: true,
            platform: Some(Platform::parse(p).unwrap()),
            ..Default::default()
        });
        let img = reg.resolve(&r).await.unwrap();
        assert_eq!(&img.manifest_digest, want, "{p}");
        assert_eq!(
            img.config.architecture().to_string(),
            p.split('/').nth(1).unwrap()
        );
    }
    let reg = registry(RegistryOptions {
        allow_http: true,
        platform: Some(Platform::parse("linux/s390x").unwrap()),
        ..Default::default()
    });
    let e = reg.resolve(&r).await.unwrap_err();
    assert!(matches!(e, RegistryError::NoPlatform { .. }), "{e}");
    assert!(e.to_string().contains("linux/arm64"), "{e}");
}

#[tokio::test]
#[ignore = "needs docker-registry and skopeo"]
async fn mirror_then_origin() {
    let w = world();
    let conf: PathBuf = w.tmp.path().join("conf");
    std::fs::create_dir_all(conf.join("registries.d")).unwrap();
    // The "origin" does not exist; the first mirror is down; the second has the image.
    std::fs::write(
        conf.join("registries.d/m.toml"),
        format!("[[mirror]]\nregistry = \"origin.invalid:5000\"\nendpoints = [\"127.0.0.1:9\", \"http://{}\"]\n", w.http.addr),
    )
    .unwrap();
    let reg = registry(RegistryOptions {
        config_dirs: vec![conf],
        ..Default::default()
    });
    let r = Reference::parse("origin.invalid:5000/bb:v1").unwrap();
    let img = reg.resolve(&r).await.unwrap();
    assert_eq!(img.endpoint, w.http.addr);
    assert_eq!(img.reference, r);
    assert_eq!(img.manifest_digest, w.manifest_digest);
    let ld = img.manifest.layers()[0].digest().to_string();
    let got: Vec<bytes::Bytes> = reg
        .blob_stream(&img, &ld, 0)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(got.concat(), w.layer);
    // not on the mirror: origin's error
    let e = reg
        .resolve(&Reference::parse("origin.invalid:5000/bb:nope").unwrap())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("origin.invalid:5000"), "{e}");
}

/// A TCP proxy to `upstream` that cuts every connection after `limit` bytes sent back.
fn flaky_proxy(upstream: String, limit: usize) -> String {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpStream};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(down) = conn else { break };
            let Ok(up) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut d2, mut u2) = (down.try_clone().unwrap(), up.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut d2, &mut u2);
                let _ = u2.shutdown(Shutdown::Write);
            });
            std::thread::spawn(move || {
                let (mut up, mut down) = (up, down);
                let (mut sent, mut buf) = (0, [0u8; 4096]);
                while sent < limit {
                    let n = match up.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n.min(limit - sent),
                    };
                    if down.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n;
                }
                let _ = down.shutdown(Shutdown::Both);
                let _ = up.shutdown(Shutdown::Both);
            });
        }
    });
    addr
}

#[tokio::test]
#[ignore = "needs docker-registry and skopeo"]
async fn broken_blob_download_resumes_with_range() {
    let w = world();
    assert!(w.layer.len() > 140_000, "layer {} bytes", w.layer.len());
    let proxy = flaky_proxy(w.http.addr.clone(), 40_000);
    let reg = registry(RegistryOptions {
        allow_http: true,
        ..Default::default()
    });
    let r = Reference::parse(&format!("{proxy}/bb:v1")).unwrap();
    let img = reg.resolve(&r).await.unwrap();
    assert_eq!(img.endpoint, proxy);
    let ld = img.manifest.layers()[0].digest().to_string();
    let got: Vec<bytes::Bytes> = reg
        .blob_stream(&img, &ld, 0)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(sha(&got.concat()), ld);
    assert_eq!(got.concat(), w.layer);
}

/// Not a check, a figure: blob_stream throughput over loopback for a 128 MiB blob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; needs docker-registry and curl"]
async fn blob_stream_throughput() {
    let tmp = tempfile::tempdir().unwrap();
    let http = start(tmp.path(), "bench", None, None);
    let blob: Vec<u8> = (0..128u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let d = sha(&blob);
    let f = tmp.path().join("blob");
    std::fs::write(&f, &blob).unwrap();
    // Monolithic upload: POST then PUT with the digest.
    let out = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", "-X", "POST"])
        .arg(format!("http://{}/v2/bench/blobs/uploads/", http.addr))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&out.stdout).to_string();
    let loc = headers
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .unwrap()
        .trim()
        .to_string();
    let sep = if loc.contains('?') { '&' } else { '?' };
    run(Command::new("curl")
        .args([
            "-sSf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
        ])
        .arg(format!("@{}", f.display()))
        .arg(format!("{loc}{sep}digest={d}")));
    let reg = registry(RegistryOptions {
        allow_http: true,
        ..Default::default()
    });
    let img = ResolvedImage {
        reference: Reference::parse(&format!("{}/bench:x", http.addr)).unwrap(),
        endpoint: http.addr.clone(),
        manifest_digest: String::new(),
        manifest_media_type: String::new(),
        manifest_bytes: vec![],
        manifest: serde_json::from_str(r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#).unwrap(),
        config_bytes: vec![],
        config: serde_json::from_str(r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#).unwrap(),
    };
    let t0 = Instant::now();
    let n = reg
        .blob_stream(&img, &d, 0)
        .await
        .unwrap()
        .try_fold(0usize, |n, b| async move { Ok(n + b.len()) })
        .await
        .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(n, blob.len());
    eprintln!(
        "blob_stream: {} MiB in {secs:.2}s = {:.0} MiB/s",
        n >> 20,
        (n >> 20) as f64 / secs
    );
}
