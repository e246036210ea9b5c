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
