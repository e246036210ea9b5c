//! Where the signatures of registry images come from.
//!
//! - Simple signing ("lookaside", containers-signature(5)): a location configured in
//!   `registries.d` ([`crate::config::Lookaside`]) holding
//!   `<base>/<repository>@sha256=<hex>/signature-1`, `signature-2`, … up to the first missing
//!   one, as containers/image lays them out. `file://` and `http(s)://` locations.
//! - cosign: the tag `sha256-<hex>.sig` in the image's repository, whose manifest's layers
//!   (`application/vnd.dev.cosign.simplesigning.v1+json`) are the signed payloads, each with its
//!   signature in the `dev.cosignproject.cosign/signature` annotation.
//!
//! Signature stores are untrusted: counts and sizes are capped, digests checked; what the
//! signatures say is checked by [`crate::trust`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::discovery::HttpClient;
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::registry::Registry;
use crate::trust::CosignSignature;

/// Signatures read per image from a lookaside store.
pub(crate) const MAX_LOOKASIDE_SIGNATURES: usize = 16;
/// Largest lookaside signature accepted.
pub(crate) const MAX_LOOKASIDE_SIZE: u64 = 4 << 20;
/// Signature layers accepted in a cosign `.sig` manifest.
pub(crate) const MAX_COSIGN_SIGNATURES: usize = 16;
/// Largest cosign payload accepted.
pub(crate) const MAX_COSIGN_PAYLOAD: u64 = 1 << 20;
/// Largest base64 signature annotation accepted.
const MAX_COSIGN_SIGNATURE_LEN: usize = 64 << 10;

/// The media type of cosign's signature layers.
pub(crate) const COSIGN_PAYLOAD_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding a layer's base64 signature.
pub(crate) const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Invalid {
        what: what.into(),
        reason: reason.into(),
    }
}

/// `(algorithm, hex)` of a validated manifest digest.
fn split_digest(digest: &str) -> Result<(&str, &str)> {
    crate::reference::validate_digest(digest)
        .map_err(|e| invalid(format!("manifest digest {digest:?}"), e))?;
    Ok(digest.split_once(':').unwrap_or_default())
}

/// The directory (URL) of an image's signatures under a lookaside base:
/// `<base>/<repository>@<alg>=<hex>`.
fn lookaside_dir(base: &str, reference: &Reference, manifest_digest: &str) -> Result<String> {
    let (alg, hex) = split_digest(manifest_digest)?;
    // a repository is already validated; still, nothing of it may climb out of the base
    if reference
        .repository
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(Error::BadReference(reference.to_string()));
    }
    Ok(format!(
        "{}/{}@{alg}={hex}",
        base.trim_end_matches('/'),
        reference.repository
    ))
}

/// Read one lookaside file: `Ok(None)` when it does not exist. Never blocks on a FIFO and
/// reads at most [`MAX_LOOKASIDE_SIZE`].
fn read_signature_file(path: &Path) -> Result<Option<Vec<u8>>> {
    match crate::file::read_capped(path, MAX_LOOKASIDE_SIZE) {
        Ok(sig) => Ok(Some(sig)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(crate::file::CappedError::Io(e)) => {
            Err(crate::error::io_err("reading signature", path)(e))
        }
        Err(e) => Err(Error::Fetch {
            url: format!("file://{}", path.display()),
            reason: e.to_string(),
        }),
    }
}

/// The simple-signing signatures of an image in a lookaside store (`file://`, `http://` or
/// `https://` base, as configured): `signature-1`, `signature-2`, … until the first missing
/// one (a missing file, or 404), at most [`MAX_LOOKASIDE_SIGNATURES`] of at most
/// [`MAX_LOOKASIDE_SIZE`] bytes each. None at all is an empty vec. An explicitly configured
/// `http://` base is used as configured; its TLS roots are the system's plus `certs.d` of its
/// `host[:port]`.
pub(crate) async fn lookaside_signatures(
    base: &str,
    reference: &Reference,
    manifest_digest: &str,
    http: &HttpClient,
) -> Result<Vec<Vec<u8>>> {
    let dir = lookaside_dir(base, reference, manifest_digest)?;
    let mut out = Vec::new();
    if let Some(path) = dir.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(invalid(
                format!("lookaside location {base:?}"),
                "file:// needs an absolute path",
            ));
        }
        let dir = PathBuf::from(path);
        for i in 1..=MAX_LOOKASIDE_SIGNATURES {
            let path = dir.join(format!("signature-{i}"));
            let read = tokio::task::spawn_blocking(move || read_signature_file(&path))
                .await
                .map_err(|e| Error::Internal(format!("reading signatures: {e}")))??;
            match read {
                Some(sig) => out.push(sig),
                None => break,
            }
        }
    } else if dir.starts_with("https://") || dir.starts_with("http://") {
        for i in 1..=MAX_LOOKASIDE_SIGNATURES {
            let url = format!("{dir}/signature-{i}");
            match http.get_configured(&url, MAX_LOOKASIDE_SIZE).await? {
                Some(sig) => out.push(sig),
                None => break,
            }
        }
    } else {
        return Err(invalid(
            format!("lookaside location {base:?}"),
            "want a file://, http:// or https:// URL",
        ));
    }
    if out.len() == MAX_LOOKASIDE_SIGNATURES {
        tracing::warn!(image = %reference, "read only the first {MAX_LOOKASIDE_SIGNATURES} lookaside signatures");
    }
    tracing::debug!(image = %reference, location = %dir, count = out.len(), "lookaside signatures");
    Ok(out)
}

#[derive(serde::Deserialize)]
struct SigManifest {
    #[serde(rename = "schemaVersion")]
    schema_version: i64,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    layers: Vec<SigLayer>,
}

#[derive(serde::Deserialize)]
struct SigLayer {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

/// One signature layer of a cosign `.sig` manifest.
#[derive(Debug, PartialEq, Eq)]
struct SigEntry {
    digest: String,
    size: u64,
    signature: String,
}

/// The signature layers of a cosign `.sig` manifest (OCI or docker schema 2): layers of the
/// simple-signing media type with a signature annotation; others are skipped.
fn parse_sig_manifest(image: &str, bytes: &[u8]) -> Result<Vec<SigEntry>> {
    let what = || format!("cosign signature manifest of {image}");
    let m: SigManifest =
        serde_json::from_slice(bytes).map_err(|e| invalid(what(), e.to_string()))?;
    if m.schema_version != 2 {
        return Err(invalid(
            what(),
            format!("unsupported schemaVersion {}", m.schema_version),
        ));
    }
    if let Some(mt) = &m.media_type {
        if mt != oci_client::manifest::OCI_IMAGE_MEDIA_TYPE
            && mt != oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE
        {
            return Err(invalid(what(), format!("unsupported media type {mt:?}")));
        }
    }
    if m.layers.len() > MAX_COSIGN_SIGNATURES {
        return Err(invalid(
            what(),
            format!(
                "{} layers, more than the {MAX_COSIGN_SIGNATURES} signatures accepted",
                m.layers.len()
            ),
        ));
    }
    let mut out = Vec::new();
    for l in m.layers {
        if l.media_type != COSIGN_PAYLOAD_TYPE {
            tracing::debug!(image, media_type = %l.media_type, "skipping a non-signature layer");
            continue;
        }
        let Some(sig) = l
            .annotations
            .as_ref()
            .and_then(|a| a.get(COSIGN_SIGNATURE_ANNOTATION))
            .filter(|s| !s.is_empty())
        else {
            tracing::debug!(image, digest = %l.digest, "skipping a layer without a signature");
            continue;
        };
        if sig.len() > MAX_COSIGN_SIGNATURE_LEN {
            return Err(invalid(what(), "signature annotation too long"));
        }
        crate::reference::validate_digest(&l.digest).map_err(|e| invalid(what(), e))?;
        if l.size > MAX_COSIGN_PAYLOAD {
            return Err(invalid(
                what(),
                format!(
                    "payload {} has {} bytes, over the limit of {MAX_COSIGN_PAYLOAD}",
                    l.digest, l.size
                ),
            ));
        }
        out.push(SigEntry {
            digest: l.digest,
            size: l.size,
            signature: sig.clone(),
        });
    }
    Ok(out)
}

/// cosign's tag for the signatures of a manifest: `sha256-<hex>.sig`.
fn cosign_tag(manifest_digest: &str) -> Result<String> {
    let (alg, hex) = split_digest(manifest_digest)?;
    Ok(format!("{alg}-{hex}.sig"))
}

/// The cosign signatures of an image: the `sha256-<hex>.sig` tag in the same repository,
/// looked up like the image (mirrors, then the registry); no such tag is an empty vec. Each
/// payload blob is read (≤ [`MAX_COSIGN_PAYLOAD`]) from the endpoint that served the
/// signature manifest and checked against its digest and size.
///
/// OCI 1.1 referrers (`/v2/<name>/referrers/<digest>`) are not consulted: the registries rkt
/// is tested against (docker-registry 2.8) have no referrers API, and cosign still writes the
/// `.sig` tag by default.
pub(crate) async fn cosign_signatures(
    registry: &Registry,
    reference: &Reference,
    manifest_digest: &str,
) -> Result<Vec<CosignSignature>> {
    let tag = cosign_tag(manifest_digest)?;
    let Some((ep, bytes)) = registry.tagged_manifest(reference, &tag).await? else {
        tracing::debug!(image = %reference, %tag, "no cosign signatures");
        return Ok(Vec::new());
    };
    let image = format!("{}:{tag}", reference.name());
    let mut out = Vec::new();
    for entry in parse_sig_manifest(&image, &bytes)? {
        let payload = registry
            .small_blob(
                reference,
                &ep,
                &entry.digest,
                entry.size,
                MAX_COSIGN_PAYLOAD,
            )
            .await?;
        out.push(CosignSignature {
            payload,
            signature: entry.signature,
        });
    }
    tracing::debug!(image = %reference, endpoint = %ep, count = out.len(), "cosign signatures");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn reference(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn lookaside_layout() {
        assert_eq!(
            lookaside_dir("file:///sigs/", &reference("127.0.0.1:5000/a/b:v1"), D).unwrap(),
            format!("file:///sigs/a/b@sha256={HEX}")
        );
        assert_eq!(
            lookaside_dir("https://s.example/x", &reference("busybox"), D).unwrap(),
            format!("https://s.example/x/library/busybox@sha256={HEX}")
        );
        for bad in ["sha256:abc", "md5:0123", "sha256:../../x", ""] {
            assert!(
                lookaside_dir("file:///s", &reference("a.b/c"), bad).is_err(),
                "{bad}"
            );
        }
        assert_eq!(cosign_tag(D).unwrap(), format!("sha256-{HEX}.sig"));
        assert!(cosign_tag("sha256:ABC").is_err());
    }

    #[tokio::test]
    async fn lookaside_file_store() {
        let t = tempfile::tempdir().unwrap();
        let base = format!("file://{}", t.path().display());
        let r = reference("127.0.0.1:5000/app:v1");
        let http = HttpClient::new(&[], false, false);
        // nothing there at all
        assert!(lookaside_signatures(&base, &r, D, &http)
            .await
            .unwrap()
            .is_empty());

        let dir = t.path().join(format!("app@sha256={HEX}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("signature-1"), b"one").unwrap();
        std::fs::write(dir.join("signature-2"), b"two").unwrap();
        // a gap ends the list
        std::fs::write(dir.join("signature-4"), b"four").unwrap();
        let got = lookaside_signatures(&base, &r, D, &http).await.unwrap();
        assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
        // a trailing slash in the base changes nothing
        let got = lookaside_signatures(&format!("{base}/"), &r, D, &http)
            .await
            .unwrap();
        assert_eq!(got.len(), 2);

        // at most MAX_LOOKASIDE_SIGNATURES are read
        for i in 1..=MAX_LOOKASIDE_SIGNATURES + 3 {
            std::fs::write(dir.join(format!("signature-{i}")), b"s").unwrap();
        }
        let got = lookaside_signatures(&base, &r, D, &http).await.unwrap();
        assert_eq!(got.len(), MAX_LOOKASIDE_SIGNATURES);

        // hostile store: a huge file, a FIFO, a directory are errors, never hangs
        let f = std::fs::File::create(dir.join("signature-1")).unwrap();
        f.set_len(MAX_LOOKASIDE_SIZE + 1).unwrap();
        let err = lookaside_signatures(&base, &r, D, &http).await.unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
        std::fs::remove_file(dir.join("signature-1")).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            dir.join("signature-1"),
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let err = lookaside_signatures(&base, &r, D, &http).await.unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        std::fs::remove_file(dir.join("signature-1")).unwrap();
        std::fs::create_dir(dir.join("signature-1")).unwrap();
        assert!(lookaside_signatures(&base, &r, D, &http).await.is_err());

        assert!(lookaside_signatures("ftp://x/y", &r, D, &http)
            .await
            .is_err());
        assert!(lookaside_signatures("file://rel/x", &r, D, &http)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn lookaside_http_store_ends_at_404() {
        let path = |i: u32| format!("/sigs/app@sha256={HEX}/signature-{i}");
        let (addr, seen) = crate::source::discovery::tests::serve(vec![
            (path(1), b"one".to_vec()),
            (path(2), b"two".to_vec()),
            (path(4), b"four".to_vec()),
        ]);
        // an explicitly configured http:// location needs no --insecure-options=http
        let http = HttpClient::new(&[], false, false);
        let r = reference("127.0.0.1:5000/app:v1");
        let got = lookaside_signatures(&format!("http://{addr}/sigs"), &r, D, &http)
            .await
            .unwrap();
        assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(*seen.lock().unwrap(), [path(1), path(2), path(3)]);
    }

    fn layer(mt: &str, digest: &str, size: u64, sig: Option<&str>) -> serde_json::Value {
        let mut l = serde_json::json!({"mediaType": mt, "digest": digest, "size": size});
        if let Some(s) = sig {
            l["annotations"] = serde_json::json!({ COSIGN_SIGNATURE_ANNOTATION: s });
        }
        l
    }

    fn manifest(layers: Vec<serde_json::Value>) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D, "size": 233},
            "layers": layers,
        }))
        .unwrap()
    }

    #[test]
    fn cosign_manifest_parsing() {
        let m = manifest(vec![
            layer(COSIGN_PAYLOAD_TYPE, D, 250, Some("MEUCIQ==")),
            layer("application/vnd.dev.sigstore.bundle+json", D, 10, Some("x")),
            layer(COSIGN_PAYLOAD_TYPE, D, 250, None),
        ]);
        assert_eq!(
            parse_sig_manifest("i", &m).unwrap(),
            [SigEntry {
                digest: D.into(),
                size: 250,
                signature: "MEUCIQ==".into()
            }]
        );
        // docker schema 2 and no mediaType are fine too
        let mut v: serde_json::Value = serde_json::from_slice(&m).unwrap();
        v["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json".into();
        assert_eq!(
            parse_sig_manifest("i", &serde_json::to_vec(&v).unwrap())
                .unwrap()
                .len(),
            1
        );
        v.as_object_mut().unwrap().remove("mediaType");
        assert_eq!(
            parse_sig_manifest("i", &serde_json::to_vec(&v).unwrap())
                .unwrap()
                .len(),
            1
        );

        let many = manifest(
            (0..=MAX_COSIGN_SIGNATURES)
                .map(|_| layer(COSIGN_PAYLOAD_TYPE, D, 1, Some("x")))
                .collect(),
        );
        let big = manifest(vec![layer(
            COSIGN_PAYLOAD_TYPE,
            D,
            MAX_COSIGN_PAYLOAD + 1,
            Some("x"),
        )]);
        let bad_digest = manifest(vec![layer(COSIGN_PAYLOAD_TYPE, "sha256:zz", 1, Some("x"))]);
        let long_sig = manifest(vec![layer(
            COSIGN_PAYLOAD_TYPE,
            D,
            1,
            Some(&"A".repeat(MAX_COSIGN_SIGNATURE_LEN + 1)),
        )]);
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        for (name, bytes) in [
            ("many", many),
            ("big", big),
            ("bad digest", bad_digest),
            ("long sig", long_sig),
            ("index", index.to_vec()),
            ("schema 1", br#"{"schemaVersion":1}"#.to_vec()),
            ("garbage", b"\xff{".to_vec()),
            (
                "negative size",
                br#"{"schemaVersion":2,"layers":[{"mediaType":"x","digest":"y","size":-1}]}"#
                    .to_vec(),
            ),
        ] {
            assert!(parse_sig_manifest("i", &bytes).is_err(), "{name}");
        }
    }

    /// docker-registry (Debian's `docker-registry`) on a free loopback port, plain http.
    struct LiveRegistry {
        addr: String,
        child: std::process::Child,
        _dir: tempfile::TempDir,
    }

    impl Drop for LiveRegistry {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn live_registry() -> LiveRegistry {
        let dir = tempfile::tempdir().unwrap();
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n  secret: s\n",
                dir.path().join("storage").display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry");
        let t0 = std::time::Instant::now();
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(t0.elapsed().as_secs() < 10, "registry did not come up");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        LiveRegistry {
            addr,
            child,
            _dir: dir,
        }
    }

    fn sha(b: &[u8]) -> String {
        use sha2::Digest as _;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
    }

    /// Monolithic blob upload and a manifest PUT, as the distribution API has them.
    async fn put_blob(c: &reqwest::Client, addr: &str, repo: &str, blob: &[u8]) -> String {
        let d = sha(blob);
        let r = c
            .post(format!("http://{addr}/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let loc = if loc.starts_with('/') {
            format!("http://{addr}{loc}")
        } else {
            loc
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = c
            .put(format!("{loc}{sep}digest={d}"))
            .header("content-type", "application/octet-stream")
            .body(blob.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        d
    }

    async fn put_manifest(c: &reqwest::Client, addr: &str, repo: &str, tag: &str, m: &[u8]) {
        let r = c
            .put(format!("http://{addr}/v2/{repo}/manifests/{tag}"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(m.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
    }

    #[tokio::test]
    #[ignore = "needs docker-registry"]
    async fn cosign_signatures_from_a_registry() {
        let reg = live_registry();
        let addr = reg.addr.as_str();
        let c = reqwest::Client::new();
        let registry = Registry::new(crate::registry::RegistryOptions {
            allow_http: true,
            ..Default::default()
        })
        .unwrap();
        let r = reference(&format!("{addr}/app:v1"));
        // no .sig tag: no signatures
        assert!(cosign_signatures(&registry, &r, D)
            .await
            .unwrap()
            .is_empty());

        let config = put_blob(&c, addr, "app", b"{}").await;
        let p1 = br#"{"critical":{"identity":{"docker-reference":"x"},"image":{"docker-manifest-digest":"y"},"type":"cosign container image signature"},"optional":null}"#;
        let p2 = br#"{"critical":{},"optional":{"n":2}}"#;
        let d1 = put_blob(&c, addr, "app", p1).await;
        let d2 = put_blob(&c, addr, "app", p2).await;
        let m = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
            "layers": [
                {"mediaType": COSIGN_PAYLOAD_TYPE, "digest": d1, "size": p1.len(),
                 "annotations": {COSIGN_SIGNATURE_ANNOTATION: "c2lnLTE="}},
                {"mediaType": COSIGN_PAYLOAD_TYPE, "digest": d2, "size": p2.len(),
                 "annotations": {COSIGN_SIGNATURE_ANNOTATION: "c2lnLTI="}},
            ],
        }))
        .unwrap();
        put_manifest(&c, addr, "app", &cosign_tag(D).unwrap(), &m).await;
        let got = cosign_signatures(&registry, &r, D).await.unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].payload.as_slice(), got[0].signature.as_str()),
            (&p1[..], "c2lnLTE=")
        );
        assert_eq!(
            (got[1].payload.as_slice(), got[1].signature.as_str()),
            (&p2[..], "c2lnLTI=")
        );
        // signatures of another digest are not these
        let other = format!("sha256:{}", "1".repeat(64));
        assert!(cosign_signatures(&registry, &r, &other)
            .await
            .unwrap()
            .is_empty());

        // a descriptor whose size lies is refused
        let m = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
            "layers": [{"mediaType": COSIGN_PAYLOAD_TYPE, "digest": d1, "size": 10,
                 "annotations": {COSIGN_SIGNATURE_ANNOTATION: "c2lnLTE="}}],
        }))
        .unwrap();
        put_manifest(&c, addr, "app", &cosign_tag(&other).unwrap(), &m).await;
        assert!(cosign_signatures(&registry, &r, &other).await.is_err());
    }
}
