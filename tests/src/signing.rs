//! The signing test kit: real signers for the trust tests, independent of the product code.
//!
//! * [`Gpg`]: a throw-away GnuPG home with one ed25519 signing key (made by `gpg` itself):
//!   detached `.asc` signatures of ACIs, the key for skopeo's simple signing; an expired-key and
//!   a revoked-key variant.
//! * [`skopeo_sign_push`]: `skopeo copy --sign-by`, the signature written to a `file://`
//!   lookaside dir (containers' *simple signing*, made by containers/image itself).
//! * [`CosignKey`] and [`cosign_sign_push`]: cosign's key-based signature (ECDSA P-256 over the
//!   simple-signing payload), stored as cosign stores it: an OCI image tagged
//!   `sha256-<hex>.sig` whose one layer is the payload and whose layer annotation holds the
//!   signature. Pushed with skopeo, which keeps the manifest byte for byte.

use crate::tarball::digest;
use base64::Engine;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// cosign's media type of the payload layer.
pub const COSIGN_PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// cosign's layer annotation holding the base64 signature.
pub const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// A private GnuPG home holding one signing key. Dropping it stops its gpg-agent and removes
/// the directory.
pub struct Gpg {
    home: tempfile::TempDir,
    uid: String,
    fpr: String,
}

impl Gpg {
    /// A fresh ed25519 signing key for `uid` (`Name <mail>`), no passphrase, no expiry.
    pub fn new(uid: &str) -> Gpg {
        let g = Gpg::empty(uid);
        crate::run_ok(g.gpg().args([
            "--passphrase",
            "",
            "--quick-gen-key",
            uid,
            "ed25519",
            "sign",
            "never",
        ]));
        g.with_fingerprint()
    }

    /// A key that expired long ago and whose signatures were made while it was valid: the key
    /// is made on 2020-01-01 valid for one day, and this home's `gpg.conf` pins gpg's clock to
    /// 2020-01-01 12:00 for everything signed with it (skopeo's gpgme included).
    pub fn new_expired(uid: &str) -> Gpg {
        let g = Gpg::empty(uid);
        fs::write(
            g.home().join("gpg.conf"),
            "faked-system-time 20200101T120000\n",
        )
        .expect("write gpg.conf");
        crate::run_ok(g.gpg().args([
            "--faked-system-time",
            "20200101T000000",
            "--passphrase",
            "",
            "--quick-gen-key",
            uid,
            "ed25519",
            "sign",
            "1d",
        ]));
        g.with_fingerprint()
    }

    /// A key that is revoked: [`Gpg::new`], then its revocation certificate imported, so
    /// [`Gpg::export_public`] exports the key with its revocation. Sign before you call it
    /// if you want signatures made while the key was good: see [`Gpg::revoke`].
    pub fn new_revoked(uid: &str) -> Gpg {
        let g = Gpg::new(uid);
        g.revoke();
        g
    }

    fn empty(uid: &str) -> Gpg {
        let home = tempfile::Builder::new()
            .prefix("rkt-gpg-")
            .tempdir()
            .expect("gnupg home");
        fs::set_permissions(
            home.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod gnupg home");
        Gpg {
            home,
            uid: uid.to_string(),
            fpr: String::new(),
        }
    }

    fn with_fingerprint(mut self) -> Gpg {
        let out = crate::run_ok(self.gpg().args(["--with-colons", "--list-secret-keys"]));
        self.fpr = out
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|l| l.split(':').find(|f| !f.is_empty()))
            .unwrap_or_else(|| panic!("no fingerprint in gpg's listing: {out}"))
            .to_string();
        self
    }

    /// The GnuPG home (`GNUPGHOME`).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The key's user id.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The primary key's fingerprint, upper-case hex as gpg prints it.
    pub fn fingerprint(&self) -> &str {
        &self.fpr
    }

    /// The fingerprint in lower case (as rkt stores and shows it).
    pub fn fingerprint_lower(&self) -> String {
        self.fpr.to_ascii_lowercase()
    }

    /// `gpg --batch --yes` with this home; add arguments.
    pub fn gpg(&self) -> Command {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", self.home()).args(["--batch", "--yes"]);
        c
    }

    /// Write the public key, armored, to `path`.
    pub fn export_public(&self, path: &Path) {
        let out = crate::run_ok(self.gpg().args(["--armor", "--export", &self.fpr]));
        assert!(out.contains("BEGIN PGP PUBLIC KEY BLOCK"), "export: {out}");
        fs::write(path, out).expect("write public key");
    }

    /// Sign `file` detached and armored, as `FILE.asc`; returns that path.
    pub fn detach_sign(&self, file: &Path) -> PathBuf {
        let mut asc = file.as_os_str().to_owned();
        asc.push(".asc");
        let asc = PathBuf::from(asc);
        crate::run_ok(
            self.gpg()
                .args([
                    "--local-user",
                    &self.fpr,
                    "--armor",
                    "--detach-sign",
                    "--output",
                ])
                .arg(&asc)
                .arg(file),
        );
        asc
    }

    /// The revocation certificate gpg made with the key, in importable form (gpg writes it
    /// with a `:` before the armor header so it is not imported by accident).
    pub fn revocation_cert(&self) -> String {
        let p = self
            .home()
            .join("openpgp-revocs.d")
            .join(format!("{}.rev", self.fpr));
        let s = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        s.replace(
            ":-----BEGIN PGP PUBLIC KEY BLOCK-----",
            "-----BEGIN PGP PUBLIC KEY BLOCK-----",
        )
    }

    /// Revoke the key (import its revocation certificate); returns the certificate, which is
    /// also written to `<home>/revocation.asc`. Later exports carry the revocation.
    pub fn revoke(&self) -> PathBuf {
        let p = self.home().join("revocation.asc");
        fs::write(&p, self.revocation_cert()).expect("write revocation");
        crate::run_ok(self.gpg().arg("--import").arg(&p));
        let out = crate::run_ok(self.gpg().args(["--with-colons", "--list-keys", &self.fpr]));
        assert!(
            out.lines().any(|l| l.starts_with("pub:r:")),
            "key not revoked: {out}"
        );
        p
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home())
            .args(["--kill", "all"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// `skopeo copy --sign-by FPR` the image to `docker://ADDR/REPO_TAG` (TLS verification off),
/// with a private `--registries.d` whose `lookaside-staging` for `addr` is `file://LOOKASIDE`:
/// the signature lands as `LOOKASIDE/<repo>@sha256=<hex>/signature-1`. Returns the manifest
/// digest pushed (`sha256:…`).
pub fn skopeo_sign_push(
    image: &crate::tarball::OciImage,
    addr: &str,
    repo_tag: &str,
    gpg: &Gpg,
    lookaside: &Path,
) -> String {
    let tmp = tempfile::tempdir().expect("registries.d dir");
    let regd = tmp.path().join("registries.d");
    fs::create_dir_all(&regd).expect("registries.d");
    fs::create_dir_all(lookaside).expect("lookaside dir");
    let lookaside = fs::canonicalize(lookaside).expect("lookaside path");
    fs::write(
        regd.join("rkt-tests.yaml"),
        format!(
            "docker:\n  {addr}:\n    lookaside-staging: file://{}\n",
            lookaside.display()
        ),
    )
    .expect("write registries.d");
    let digest_file = tmp.path().join("digest");
    crate::run_ok(
        Command::new("skopeo")
            .env("GNUPGHOME", gpg.home())
            .args(["copy", "-q", "--dest-tls-verify=false", "--registries.d"])
            .arg(&regd)
            .args(["--sign-by", gpg.fingerprint(), "--digestfile"])
            .arg(&digest_file)
            .arg(image.oci_ref())
            .arg(format!("docker://{addr}/{repo_tag}")),
    );
    let d = fs::read_to_string(&digest_file).expect("read digest file");
    let d = d.trim().to_string();
    let repo = repo_tag.split([':', '@']).next().unwrap_or(repo_tag);
    let sig = simple_signature_path(&lookaside, repo, &d);
    assert!(
        sig.is_file(),
        "skopeo wrote no signature at {}",
        sig.display()
    );
    d
}

/// Where a lookaside holds the first simple signature of `repo` (the path without the
/// registry) at `manifest_digest`: `BASE/REPO@sha256=HEX/signature-1`.
pub fn simple_signature_path(base: &Path, repo: &str, manifest_digest: &str) -> PathBuf {
    let (algo, hex) = manifest_digest
        .split_once(':')
        .unwrap_or_else(|| panic!("not a digest: {manifest_digest}"));
    base.join(format!("{repo}@{algo}={hex}"))
        .join("signature-1")
}

/// A cosign key pair (ECDSA P-256), made in process.
pub struct CosignKey {
    key: p256::ecdsa::SigningKey,
}

impl CosignKey {
    /// A fresh random key.
    pub fn generate() -> CosignKey {
        CosignKey {
            key: p256::ecdsa::SigningKey::random(&mut rand_core::OsRng),
        }
    }

    /// The public key as PEM (`-----BEGIN PUBLIC KEY-----`, SubjectPublicKeyInfo), as
    /// `cosign generate-key-pair` writes `cosign.pub`.
    pub fn public_pem_string(&self) -> String {
        use p256::pkcs8::EncodePublicKey;
        self.key
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .expect("encode public key")
    }

    /// Write [`Self::public_pem_string`] to `path`.
    pub fn public_pem(&self, path: &Path) {
        fs::write(path, self.public_pem_string()).expect("write cosign.pub");
    }

    /// `sha256:<hex>` of the DER SubjectPublicKeyInfo: the key's id in rkt's records
    /// (`"verification": "cosign:sha256:…"`).
    pub fn key_id(&self) -> String {
        use p256::pkcs8::EncodePublicKey;
        let der = self
            .key
            .verifying_key()
            .to_public_key_der()
            .expect("encode public key");
        digest(der.as_bytes())
    }

    /// The base64 of the DER ECDSA-P256/SHA-256 signature of `payload`, as cosign annotates it.
    pub fn sign(&self, payload: &[u8]) -> String {
        use p256::ecdsa::signature::Signer;
        let sig: p256::ecdsa::Signature = self.key.sign(payload);
        base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
    }
}

/// cosign's simple-signing payload for `docker_reference` (`host/repo[:tag]`) at
/// `manifest_digest`.
pub fn cosign_payload(docker_reference: &str, manifest_digest: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
    .expect("payload JSON")
}

/// The tag cosign stores the signatures of `manifest_digest` under: `sha256-<hex>.sig`.
pub fn cosign_signature_tag(manifest_digest: &str) -> String {
    format!("{}.sig", manifest_digest.replacen(':', "-", 1))
}

/// Sign `manifest_digest` for `docker_reference` with `key` and push the signature to
/// `docker://ADDR/REPO:sha256-<hex>.sig`. Returns the signature image's manifest digest.
pub fn cosign_sign_push(
    key: &CosignKey,
    addr: &str,
    repo: &str,
    manifest_digest: &str,
    docker_reference: &str,
) -> String {
    let payload = cosign_payload(docker_reference, manifest_digest);
    let sig = key.sign(&payload);
    cosign_push_signature(addr, repo, manifest_digest, &payload, &sig)
}

/// Push a cosign signature image made of `payload` and the base64 `signature` (any bytes:
/// tests tamper with them) for `manifest_digest` to `ADDR/REPO`. Returns its manifest digest,
/// checked to be the digest of the manifest written (skopeo changed nothing).
pub fn cosign_push_signature(
    addr: &str,
    repo: &str,
    manifest_digest: &str,
    payload: &[u8],
    signature: &str,
) -> String {
    let tmp = tempfile::tempdir().expect("cosign layout dir");
    let layout = tmp.path().join("layout");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("blobs dir");
    let put = |data: &[u8]| -> String {
        let d = digest(data);
        fs::write(blobs.join(d.trim_start_matches("sha256:")), data).expect("write blob");
        d
    };
    let payload_digest = put(payload);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "",
        "config": {},
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [payload_digest]},
    }))
    .expect("config JSON");
    let config_digest = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": config.len(),
            "digest": config_digest,
        },
        "layers": [{
            "mediaType": COSIGN_PAYLOAD_MEDIA_TYPE,
            "size": payload.len(),
            "digest": payload_digest,
            "annotations": {COSIGN_SIGNATURE_ANNOTATION: signature},
        }],
    }))
    .expect("manifest JSON");
    let sig_manifest_digest = put(&manifest);
    let tag = cosign_signature_tag(manifest_digest);
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "size": manifest.len(),
                "digest": sig_manifest_digest,
                "annotations": {"org.opencontainers.image.ref.name": "sig"},
            }],
        }))
        .expect("index JSON"),
    )
    .expect("write index.json");
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("write oci-layout");
    let digest_file = tmp.path().join("digest");
    crate::run_ok(
        Command::new("skopeo")
            .args(["copy", "-q", "--dest-tls-verify=false", "--digestfile"])
            .arg(&digest_file)
            .arg(format!("oci:{}:sig", layout.display()))
            .arg(format!("docker://{addr}/{repo}:{tag}")),
    );
    let pushed = fs::read_to_string(&digest_file).expect("read digest file");
    assert_eq!(
        pushed.trim(),
        sig_manifest_digest,
        "skopeo rewrote the cosign signature manifest"
    );
    sig_manifest_digest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpg_signs_and_gpg_verifies() {
        let g = Gpg::new("Kit Test <kit@example.com>");
        assert_eq!(g.fingerprint().len(), 40);
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("data");
        fs::write(&f, "hello\n").unwrap();
        let asc = g.detach_sign(&f);
        assert!(fs::read_to_string(&asc)
            .unwrap()
            .starts_with("-----BEGIN PGP SIGNATURE-----"));
        crate::run_ok(g.gpg().arg("--verify").arg(&asc).arg(&f));
        fs::write(&f, "hellO\n").unwrap();
        assert!(!g
            .gpg()
            .arg("--verify")
            .arg(&asc)
            .arg(&f)
            .output()
            .unwrap()
            .status
            .success());
        let pubk = d.path().join("pub.asc");
        g.export_public(&pubk);
        assert!(fs::read_to_string(&pubk).unwrap().contains("PUBLIC KEY"));
    }

    #[test]
    fn expired_key_is_expired_now_and_signed_while_valid() {
        let g = Gpg::new_expired("Expired <exp@example.com>");
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("data");
        fs::write(&f, "x\n").unwrap();
        let asc = g.detach_sign(&f);
        // a home without the pinned clock sees the key as expired
        let other = Gpg::empty("verifier");
        let pubk = d.path().join("pub.asc");
        g.export_public(&pubk);
        crate::run_ok(other.gpg().arg("--import").arg(&pubk));
        let listing = crate::run_ok(other.gpg().args(["--with-colons", "--list-keys"]));
        assert!(
            listing.lines().any(|l| l.starts_with("pub:e:")),
            "{listing}"
        );
        let v = other
            .gpg()
            .arg("--verify")
            .arg(&asc)
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            crate::stderr(&v).contains("expired"),
            "{}",
            crate::stderr(&v)
        );
    }

    #[test]
    fn revoked_key_exports_its_revocation() {
        let g = Gpg::new("Revoked <rev@example.com>");
        let d = tempfile::tempdir().unwrap();
        g.revoke();
        let pubk = d.path().join("pub.asc");
        g.export_public(&pubk);
        let other = Gpg::empty("verifier");
        crate::run_ok(other.gpg().arg("--import").arg(&pubk));
        let listing = crate::run_ok(other.gpg().args(["--with-colons", "--list-keys"]));
        assert!(
            listing.lines().any(|l| l.starts_with("pub:r:")),
            "{listing}"
        );
    }

    #[test]
    fn cosign_signature_verifies_with_the_public_key() {
        use p256::ecdsa::signature::Verifier;
        use p256::pkcs8::DecodePublicKey;
        let k = CosignKey::generate();
        let payload = cosign_payload("127.0.0.1:5000/a/b:v1", &digest(b"m"));
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(v["critical"]["type"], "cosign container image signature");
        assert!(v["optional"].is_null());
        let sig = k.sign(&payload);
        let der = base64::engine::general_purpose::STANDARD
            .decode(&sig)
            .unwrap();
        let sig = p256::ecdsa::Signature::from_der(&der).unwrap();
        let pubk = p256::ecdsa::VerifyingKey::from_public_key_pem(&k.public_pem_string()).unwrap();
        pubk.verify(&payload, &sig).unwrap();
        assert!(pubk.verify(b"other", &sig).is_err());
        assert!(k.key_id().starts_with("sha256:") && k.key_id().len() == 71);
        assert_eq!(cosign_signature_tag("sha256:abcd"), "sha256-abcd.sig");
    }
}
