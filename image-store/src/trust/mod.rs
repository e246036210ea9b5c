//! Image signatures: which keys are trusted to sign which images, and checking an image against
//! that before anything of it is stored (docs/trust.md).
//!
//! - [`keys`]: `rkt trust`'s key store (`trustedkeys/prefix.d/<escaped prefix>/<fingerprint>`,
//!   `trustedkeys/root.d/<fingerprint>`, in every config root).
//! - `pgp`: OpenPGP verification: the detached `.asc` of an ACI, and containers' *simple
//!   signing* signatures (a signed message holding a JSON claim).
//! - `payload`: the JSON claim a simple-signing or cosign signature signs, checked against the
//!   manifest digest actually fetched and the reference that was asked for.
//! - `cosign`: cosign's key-based signatures (ECDSA P-256 or Ed25519 public keys in PEM).
//! - [`policy`]: `policy.json` (the format of containers-policy.json(5)) with the keys of
//!   `rkt trust` as implied `signedBy` requirements of their prefixes.
pub(crate) mod cosign;
pub mod keys;
pub(crate) mod payload;
pub(crate) mod pgp;
pub mod policy;

use std::path::PathBuf;

/// How an image was verified: recorded in the index, shown by `rkt image list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// `--insecure-options=image`: nothing was checked but digests.
    Insecure,
    /// The policy accepts the image's scope without a signature (`insecureAcceptAnything`).
    Accepted,
    /// An OpenPGP signature (ACI `.asc` or simple signing) by this key (primary key's
    /// fingerprint, lower-case hex).
    Gpg {
        /// The signing key's fingerprint.
        fingerprint: String,
    },
    /// A cosign signature verified with this public key (`sha256:` of its DER
    /// SubjectPublicKeyInfo).
    Cosign {
        /// The key's id.
        key: String,
    },
}

/// The transports a policy names scopes under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A registry (`docker://`): scopes are `host[:port][/repo…][:tag|@digest]`, `*.domain`.
    Docker,
    /// An appc image name (ACI by discovery, URL or file): scopes are name prefixes.
    Appc,
    /// An OCI layout directory: scopes are paths.
    Oci,
    /// An OCI archive: scopes are paths.
    OciArchive,
    /// A docker-archive tarball: scopes are paths.
    DockerArchive,
}

impl Transport {
    /// Its name in `policy.json`'s `transports`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Docker => "docker",
            Transport::Appc => "appc",
            Transport::Oci => "oci",
            Transport::OciArchive => "oci-archive",
            Transport::DockerArchive => "docker-archive",
        }
    }
}

/// What a signature must be about.
#[derive(Debug, Clone)]
pub struct Subject {
    /// Its transport.
    pub transport: Transport,
    /// The name as asked for, canonical: `host/repo:tag` or `host/repo@sha256:…` (docker), the
    /// appc name (appc), the absolute path (local transports).
    pub name: String,
    /// The digest of the manifest actually fetched (`sha256:…`); none for ACIs.
    pub manifest_digest: Option<String>,
}

/// A cosign signature as stored in the registry: the payload blob and the base64 signature of
/// its layer's `dev.cosignproject.cosign/signature` annotation.
#[derive(Debug, Clone)]
pub struct CosignSignature {
    /// The simple-signing JSON payload, as stored (its digest verified).
    pub payload: Vec<u8>,
    /// The base64 signature over the payload.
    pub signature: String,
}

/// A detached OpenPGP signature over a whole file (an ACI and its `.asc`).
#[derive(Debug, Clone)]
pub struct Detached {
    /// The signed file.
    pub data: PathBuf,
    /// The signature, armored or binary.
    pub signature: Vec<u8>,
}

/// The signatures found for a subject (fetched only when its requirements ask for them).
#[derive(Debug, Default)]
pub(crate) struct Evidence {
    /// Simple-signing signatures (OpenPGP signed messages) from the lookaside store.
    pub simple: Vec<Vec<u8>>,
    /// Where the simple signatures were looked for (for the error when there are none).
    pub simple_origin: Option<String>,
    /// cosign signatures from the registry.
    pub cosign: Vec<CosignSignature>,
    /// The detached signature of an ACI.
    pub detached: Option<Detached>,
    /// Why there is no detached signature (for the error).
    pub detached_missing: Option<String>,
}

/// Which kinds of signature the requirements of a scope look at.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Needs {
    /// OpenPGP signatures: lookaside (registry images) or the `.asc` (ACIs).
    pub gpg: bool,
    /// cosign signatures in the registry.
    pub cosign: bool,
}

/// The signature rules in force: the policy (with `rkt trust`'s prefixes folded in) and the key
/// store.
pub struct Trust {
    policy: policy::Policy,
    origin: Option<PathBuf>,
    keys: keys::KeyStore,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Trust {
    /// Load `policy.json` and the trusted keys from the config roots (lowest precedence
    /// first).
    pub fn load(config_dirs: &[PathBuf]) -> Result<Trust> {
        let writable = config_dirs.last().cloned().unwrap_or_default();
        let keys = keys::KeyStore::new(config_dirs.to_vec(), writable);
        let (origin, loaded) = match policy::Policy::load(config_dirs)? {
            Some((path, p)) => (Some(path), Some(p)),
            None => (None, None),
        };
        let policy = policy::Policy::effective(loaded, &keys.prefixes()?);
        Ok(Trust {
            policy,
            origin,
            keys,
        })
    }

    /// The effective policy (what `rkt config` shows).
    pub fn policy(&self) -> &policy::Policy {
        &self.policy
    }

    /// The `policy.json` it came from, if any.
    pub fn origin(&self) -> Option<&std::path::Path> {
        self.origin.as_deref()
    }

    /// Which signatures deciding about `subject` needs.
    pub(crate) fn needs(&self, subject: &Subject) -> Needs {
        let (_, reqs) = self.policy.requirements(subject.transport, &subject.name);
        let mut n = Needs::default();
        for r in reqs {
            match r {
                policy::Requirement::SignedBy { .. } | policy::Requirement::RktTrusted => {
                    n.gpg = true
                }
                policy::Requirement::SigstoreSigned { .. } => n.cosign = true,
                policy::Requirement::InsecureAcceptAnything | policy::Requirement::Reject => {}
            }
        }
        n
    }

    /// Refuse early what no signature could satisfy (a `reject` scope, `rkt trust` keys
    /// required and none trusted), before anything is fetched.
    pub(crate) fn precheck(&self, subject: &Subject) -> Result<()> {
        let (_, reqs) = self.policy.requirements(subject.transport, &subject.name);
        let hopeless = reqs.iter().any(|r| match r {
            policy::Requirement::Reject => true,
            policy::Requirement::RktTrusted => self
                .keys
                .keys_for(&trust_prefix(subject))
                .map(|k| k.is_empty())
                .unwrap_or(false),
            _ => false,
        });
        if hopeless {
            // the same refusal `check` gives, with no signature to look at
            self.check(subject, &Evidence::default())?;
        }
        Ok(())
    }

    /// Decide about `subject` given the signatures found: every requirement of its scope must
    /// hold (containers-policy.json(5)).
    pub(crate) fn check(&self, subject: &Subject, evidence: &Evidence) -> Result<Verification> {
        let (scope, reqs) = self.policy.requirements(subject.transport, &subject.name);
        let refuse = |reason: String| {
            Error::Untrusted(Box::new(Untrusted {
                image: subject.name.clone(),
                scope: scope.clone(),
                reason,
                prefix: unsignable(subject).is_none().then(|| trust_prefix(subject)),
            }))
        };
        if reqs.is_empty() {
            return Err(refuse("the policy lists no requirement for it".into()));
        }
        let mut verified = None;
        for r in reqs {
            let v = match r {
                policy::Requirement::InsecureAcceptAnything => Verification::Accepted,
                policy::Requirement::Reject => {
                    return Err(refuse(
                        "the policy rejects every image of this scope".into(),
                    ))
                }
                policy::Requirement::SignedBy {
                    key_path,
                    key_paths,
                    key_data,
                    signed_identity,
                    ..
                } => {
                    let keys = policy_gpg_keys(key_path, key_paths, key_data).map_err(&refuse)?;
                    gpg_verified(subject, evidence, &keys, signed_identity).map_err(&refuse)?
                }
                policy::Requirement::RktTrusted => {
                    let keys: Vec<pgp::PublicKey> = self
                        .keys
                        .keys_for(&trust_prefix(subject))?
                        .into_iter()
                        .map(|k| k.key)
                        .collect();
                    if keys.is_empty() {
                        return Err(refuse(format!(
                            "no key is trusted for {:?} (and no root key)",
                            trust_prefix(subject)
                        )));
                    }
                    gpg_verified(
                        subject,
                        evidence,
                        &keys,
                        &policy::SignedIdentity::MatchRepoDigestOrExact,
                    )
                    .map_err(&refuse)?
                }
                policy::Requirement::SigstoreSigned {
                    key_path,
                    key_data,
                    signed_identity,
                } => {
                    let keys = policy_cosign_keys(key_path, key_data).map_err(&refuse)?;
                    cosign_verified(subject, evidence, &keys, signed_identity).map_err(&refuse)?
                }
            };
            // A signature says more than an accepted scope: report the strongest.
            if verified.is_none() || verified == Some(Verification::Accepted) {
                verified = Some(v);
            }
        }
        Ok(verified.unwrap_or(Verification::Accepted))
    }
}

/// The name `rkt trust --prefix` would take for a subject: its repository (docker, without tag
/// or digest) or its appc name; local paths as they are.
fn trust_prefix(subject: &Subject) -> String {
    match subject.transport {
        Transport::Docker => crate::reference::Reference::parse(&subject.name)
            .map(|r| r.name())
            .unwrap_or_else(|_| subject.name.clone()),
        _ => subject.name.clone(),
    }
}

fn read_key_file(p: &std::path::Path) -> std::result::Result<Vec<u8>, String> {
    crate::file::read_capped(p, pgp::MAX_KEYS_BYTES as u64)
        .map_err(|e| format!("reading key file {p:?}: {e}"))
}

fn key_data(b64: &str) -> std::result::Result<Vec<u8>, String> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("keyData is not base64: {e}"))
}

fn policy_gpg_keys(
    key_path: &Option<PathBuf>,
    key_paths: &[PathBuf],
    data: &Option<String>,
) -> std::result::Result<Vec<pgp::PublicKey>, String> {
    let mut blobs = Vec::new();
    if let Some(p) = key_path {
        blobs.push(read_key_file(p)?);
    }
    for p in key_paths {
        blobs.push(read_key_file(p)?);
    }
    if let Some(d) = data {
        blobs.push(key_data(d)?);
    }
    let mut keys = Vec::new();
    for b in blobs {
        keys.extend(pgp::parse_keys(&b).map_err(|e| format!("policy key: {e}"))?);
    }
    Ok(keys)
}

fn policy_cosign_keys(
    key_path: &Option<PathBuf>,
    data: &Option<String>,
) -> std::result::Result<Vec<cosign::CosignKey>, String> {
    let mut keys = Vec::new();
    if let Some(p) = key_path {
        keys.extend(cosign::CosignKey::from_pem(&read_key_file(p)?)?);
    }
    if let Some(d) = data {
        keys.extend(cosign::CosignKey::from_pem(&key_data(d)?)?);
    }
    Ok(keys)
}

/// Why a signature requirement cannot hold for a subject from a local transport.
fn unsignable(subject: &Subject) -> Option<String> {
    match subject.transport {
        Transport::Docker | Transport::Appc => None,
        t => Some(format!(
            "images from {} carry no signature rkt can check (only insecureAcceptAnything lets them in)",
            t.as_str()
        )),
    }
}

/// An OpenPGP signature by one of `keys`: the ACI's detached one, or a simple-signing one whose
/// claim names this manifest and an identity the rule accepts.
fn gpg_verified(
    subject: &Subject,
    evidence: &Evidence,
    keys: &[pgp::PublicKey],
    identity: &policy::SignedIdentity,
) -> std::result::Result<Verification, String> {
    if let Some(why) = unsignable(subject) {
        return Err(why);
    }
    if subject.transport == Transport::Appc {
        let Some(d) = &evidence.detached else {
            return Err(evidence
                .detached_missing
                .clone()
                .unwrap_or_else(|| "no signature".into()));
        };
        let mut f = std::fs::File::open(&d.data).map_err(|e| format!("{:?}: {e}", d.data))?;
        let fingerprint =
            pgp::verify_detached(&mut f, &d.signature, keys).map_err(|e| e.to_string())?;
        return Ok(Verification::Gpg { fingerprint });
    }
    if evidence.simple.is_empty() {
        return Err(match &evidence.simple_origin {
            Some(o) => format!("no signature found in the lookaside store {o}"),
            None => {
                "no signature found: no lookaside store is configured for it in registries.d".into()
            }
        });
    }
    let mut why = Vec::new();
    for (i, sig) in evidence.simple.iter().enumerate() {
        let r = pgp::verify_message(sig, keys)
            .map_err(|e| e.to_string())
            .and_then(|(data, fpr)| {
                let claim = payload::parse(&data)?;
                payload::check(&claim, subject, identity)?;
                Ok(fpr)
            });
        match r {
            Ok(fingerprint) => return Ok(Verification::Gpg { fingerprint }),
            Err(e) => why.push(format!("signature {}: {e}", i + 1)),
        }
    }
    Err(why.join("; "))
}

/// A cosign signature by one of `keys` whose claim names this manifest and an accepted
/// identity.
fn cosign_verified(
    subject: &Subject,
    evidence: &Evidence,
    keys: &[cosign::CosignKey],
    identity: &policy::SignedIdentity,
) -> std::result::Result<Verification, String> {
    if let Some(why) = unsignable(subject) {
        return Err(why);
    }
    if evidence.cosign.is_empty() {
        return Err("no cosign signature found in the registry".into());
    }
    let mut why = Vec::new();
    for (i, sig) in evidence.cosign.iter().enumerate() {
        let mut last = String::from("no key");
        for key in keys {
            let r = key
                .verify(&sig.payload, &sig.signature)
                .and_then(|()| payload::parse(&sig.payload))
                .and_then(|claim| payload::check(&claim, subject, identity));
            match r {
                Ok(()) => return Ok(Verification::Cosign { key: key.id() }),
                Err(e) => last = e,
            }
        }
        why.push(format!("cosign signature {}: {last}", i + 1));
    }
    Err(why.join("; "))
}

/// Largest key file fetched from a URL.
const MAX_KEY_DOWNLOAD: u64 = 4 << 20;

fn key_client(
    config_dirs: &[PathBuf],
    insecure_tls: bool,
    allow_http: bool,
) -> Result<(tokio::runtime::Runtime, HttpClient)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("starting the async runtime: {e}")))?;
    Ok((rt, HttpClient::new(config_dirs, insecure_tls, allow_http)))
}

/// A key file from a URL for `rkt trust`: https (CAs from `certs.d`), plain http only with
/// `allow_http` (`--insecure-options=pubkey`).
pub fn fetch_key(
    url: &str,
    config_dirs: &[PathBuf],
    insecure_tls: bool,
    allow_http: bool,
) -> Result<Vec<u8>> {
    let (rt, http) = key_client(config_dirs, insecure_tls, allow_http)?;
    rt.block_on(http.get_bytes(url, MAX_KEY_DOWNLOAD))?
        .ok_or_else(|| Error::Fetch {
            url: url.to_string(),
            reason: "not found".into(),
        })
}

/// The key URLs appc discovery names for `prefix` (`ac-discovery-pubkeys`), for `rkt trust
/// --prefix=PREFIX` without key files.
pub fn discover_keys(
    prefix: &str,
    config_dirs: &[PathBuf],
    insecure_tls: bool,
    allow_http: bool,
) -> Result<Vec<String>> {
    let (rt, http) = key_client(config_dirs, insecure_tls, allow_http)?;
    rt.block_on(crate::source::discovery::discover_pubkeys(prefix, &http))
}

/// Why an image is not trusted; the error says what would satisfy the policy.
#[derive(Debug)]
pub struct Untrusted {
    /// The image as asked for.
    pub image: String,
    /// The policy scope that decided.
    pub scope: String,
    /// What failed.
    pub reason: String,
    /// The prefix `rkt trust --prefix` would take (none for local transports, which carry no
    /// signatures).
    pub prefix: Option<String>,
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "image {:?} is not trusted (policy scope {}): {}; to accept it, ",
            self.image, self.scope, self.reason
        )?;
        if let Some(p) = &self.prefix {
            write!(
                f,
                "trust its signer's key with 'rkt trust --prefix={p} KEYFILE', "
            )?;
        }
        write!(
            f,
            "give the scope a policy.json entry, or pass --insecure-options=image"
        )
    }
}

impl Verification {
    /// The text form stored in the index and shown by `rkt image list`.
    pub fn as_text(&self) -> String {
        match self {
            Verification::Insecure => "insecure".into(),
            Verification::Accepted => "accepted".into(),
            Verification::Gpg { fingerprint } => format!("gpg:{fingerprint}"),
            Verification::Cosign { key } => format!("cosign:{key}"),
        }
    }
}

use crate::error::{Error, Result};
use crate::source::discovery::HttpClient;

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    const ED: &str = "6f391f83a1d1f6d3d6454811c95743691db21c59";

    fn testdata(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("src/trust/testdata")
            .join(name)
    }

    /// A config root with `policy` as its policy.json (none when `None`).
    fn trust(policy: Option<serde_json::Value>) -> (tempfile::TempDir, Trust) {
        let d = tempfile::tempdir().unwrap();
        let etc = d.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        if let Some(p) = policy {
            std::fs::write(etc.join("policy.json"), p.to_string()).unwrap();
        }
        let t = Trust::load(&[d.path().join("lib"), etc]).unwrap();
        (d, t)
    }

    fn subject(name: &str) -> Subject {
        Subject {
            transport: Transport::Docker,
            name: name.into(),
            manifest_digest: Some(DIGEST.into()),
        }
    }

    fn signed() -> Evidence {
        Evidence {
            simple: vec![std::fs::read(testdata("claim.ed25519.sig")).unwrap()],
            simple_origin: Some("file:///sigs".into()),
            ..Evidence::default()
        }
    }

    fn signed_by_ed(identity: serde_json::Value) -> serde_json::Value {
        serde_json::json!([{"type": "signedBy", "keyType": "GPGKeys",
            "keyPath": testdata("ed25519.pub.asc"), "signedIdentity": identity}])
    }

    fn refusal(t: &Trust, s: &Subject, e: &Evidence) -> String {
        t.check(s, e).unwrap_err().to_string()
    }

    #[test]
    fn nothing_configured_needs_a_trusted_key_and_says_how_to_get_one() {
        let (_d, t) = trust(None);
        let s = subject("example.com/app:v1");
        assert_eq!(
            t.needs(&s),
            Needs {
                gpg: true,
                cosign: false
            }
        );
        let e = refusal(&t, &s, &signed());
        assert!(
            e.contains("no key is trusted for \"example.com/app\""),
            "{e}"
        );
        assert!(
            e.contains("rkt trust --prefix=example.com/app KEYFILE"),
            "{e}"
        );
        assert!(e.contains("--insecure-options=image"), "{e}");
        // hopeless before anything is fetched
        assert!(t.precheck(&s).is_err());
    }

    #[test]
    fn a_signed_by_scope_checks_key_digest_and_identity() {
        let (_d, t) = trust(Some(serde_json::json!({
            "default": [{"type": "reject"}],
            "transports": {"docker": {"example.com/app": signed_by_ed(serde_json::json!({"type": "matchRepoDigestOrExact"}))}},
        })));
        let s = subject("example.com/app:v1");
        t.precheck(&s).unwrap();
        assert_eq!(
            t.check(&s, &signed()).unwrap(),
            Verification::Gpg {
                fingerprint: ED.into()
            }
        );
        // another tag, another digest, no signature, a tampered one: refused
        let e = refusal(&t, &subject("example.com/app:v2"), &signed());
        assert!(e.contains("does not match"), "{e}");
        let mut other = subject("example.com/app:v1");
        other.manifest_digest = Some(format!("sha256:{}", "1".repeat(64)));
        assert!(refusal(&t, &other, &signed()).contains("another image"));
        let e = refusal(&t, &s, &Evidence::default());
        assert!(e.contains("no lookaside store"), "{e}");
        let mut bad = signed();
        let n = bad.simple[0].len();
        bad.simple[0][n - 5] ^= 0x55;
        assert!(t.check(&s, &bad).is_err());
        // outside the scope: the default rejects, before anything is fetched
        let e = t
            .precheck(&subject("example.com/other:v1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("rejects"), "{e}");
    }

    #[test]
    fn every_requirement_of_a_scope_must_hold_and_the_strongest_is_recorded() {
        let mut reqs = signed_by_ed(serde_json::json!({"type": "matchRepository"}));
        reqs.as_array_mut()
            .unwrap()
            .insert(0, serde_json::json!({"type": "insecureAcceptAnything"}));
        let (_d, t) = trust(Some(serde_json::json!({"default": reqs})));
        let s = subject("example.com/app:v9");
        assert!(matches!(
            t.check(&s, &signed()).unwrap(),
            Verification::Gpg { .. }
        ));
        assert!(t.check(&s, &Evidence::default()).is_err());

        let (_d, t) = trust(Some(serde_json::json!({
            "default": [{"type": "insecureAcceptAnything"}, {"type": "reject"}]
        })));
        assert!(refusal(&t, &s, &signed()).contains("rejects"));

        let (_d, t) = trust(Some(serde_json::json!({
            "default": [{"type": "insecureAcceptAnything"}]
        })));
        assert_eq!(
            t.check(&s, &Evidence::default()).unwrap(),
            Verification::Accepted
        );
        assert_eq!(t.needs(&s), Needs::default());
    }

    #[test]
    fn local_transports_carry_no_signatures() {
        let (_d, t) = trust(Some(serde_json::json!({
            "default": signed_by_ed(serde_json::json!({"type": "matchRepoDigestOrExact"}))
        })));
        let s = Subject {
            transport: Transport::Oci,
            name: "/srv/images/app".into(),
            manifest_digest: None,
        };
        let e = refusal(&t, &s, &Evidence::default());
        assert!(e.contains("carry no signature"), "{e}");
        assert!(!e.contains("rkt trust"), "{e}");
    }

    #[test]
    fn verification_text_forms() {
        assert_eq!(Verification::Insecure.as_text(), "insecure");
        assert_eq!(Verification::Accepted.as_text(), "accepted");
        assert_eq!(
            Verification::Gpg {
                fingerprint: ED.into()
            }
            .as_text(),
            format!("gpg:{ED}")
        );
        assert_eq!(
            Verification::Cosign {
                key: "sha256:ab".into()
            }
            .as_text(),
            "cosign:sha256:ab"
        );
    }
}
