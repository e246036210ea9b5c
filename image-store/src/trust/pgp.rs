//! OpenPGP public keys and signature verification (rPGP underneath).
//!
//! Two kinds of signature are checked here:
//! - a *detached* signature over a whole file (an ACI and its `.asc`), [`verify_detached`];
//! - containers' *simple signing*: an OpenPGP signed message (one-pass signature, literal data,
//!   signature; compressed or not) as `skopeo copy --sign-by` (gpg) writes it, whose literal data
//!   is a JSON claim, [`verify_message`].
//!
//! A key is judged the way GnuPG judges it: its newest valid self-signature (a user ID
//! certification or a direct-key signature) gives its expiry and key flags; a key revocation
//! signature made by the key itself revokes it (designated revokers are not honoured); a subkey
//! counts only with a valid binding signature (and, for a signing subkey, a valid embedded
//! back-signature), and a subkey revocation revokes it. A signature by a subkey is reported as
//! the primary key's. Signatures are refused when the key (or subkey) is revoked, has expired by
//! now or had expired when the signature was made, when the signature itself has expired, when
//! it was made with MD5, SHA-1 or RIPEMD-160, and when it does not verify.
//!
//! Inputs are untrusted: every parser here has a size cap and errors, it does not panic.

use std::io::Read;

use chrono::{DateTime, TimeZone, Utc};
use pgp::composed::{Deserializable, DetachedSignature, Message, SignedPublicKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::crypto::public_key::PublicKeyAlgorithm;
use pgp::packet::{self, Signature, SignatureType, SubpacketData};
use pgp::ser::Serialize;
use pgp::types::{Fingerprint, KeyDetails, KeyId, PublicParams, Tag, VerifyingKey};

use crate::error::{Error, Result};

/// The most key material [`parse_keys`] reads (a keyring export of a few keys is far smaller).
pub const MAX_KEYS_BYTES: usize = 4 << 20;
/// The most keys one input may hold.
pub const MAX_KEYS: usize = 256;
/// The most a detached signature may weigh.
pub const MAX_DETACHED_BYTES: usize = 64 << 10;
/// The most signatures one detached signature file may hold.
pub const MAX_DETACHED_SIGNATURES: usize = 16;
/// The most a signed message (simple signing) may weigh.
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;
/// The most literal data a signed message may carry (a JSON claim is a few hundred bytes).
pub const MAX_LITERAL_BYTES: usize = 1 << 20;
/// How far in the future a signature's creation time may be (clock skew), in seconds.
const MAX_CLOCK_SKEW: i64 = 300;
/// How many layers of compression a signed message may have.
const MAX_COMPRESSION_LAYERS: usize = 2;

/// Why a signature was not accepted. Messages are one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// The signature names an issuer that is none of the keys given.
    #[error("signed by unknown key {key_id}")]
    UnknownKey {
        /// The issuer's key id (or fingerprint), lower-case hex.
        key_id: String,
    },
    /// The signature does not verify, or is not acceptable.
    #[error("bad signature: {0}")]
    Invalid(String),
    /// The signing key (or its signing subkey) has expired, or had when it signed.
    #[error("key {fingerprint} has expired")]
    Expired {
        /// The primary key's fingerprint.
        fingerprint: String,
    },
    /// The signing key (or its signing subkey) is revoked.
    #[error("key {fingerprint} is revoked")]
    Revoked {
        /// The primary key's fingerprint.
        fingerprint: String,
    },
    /// The signature (or signed message) cannot be parsed.
    #[error("malformed signature: {0}")]
    Malformed(String),
}

/// One key (primary or subkey) of a [`PublicKey`] that may have made a signature.
#[derive(Debug, Clone)]
struct Signer {
    /// Index in `public_subkeys`, or none for the primary key.
    subkey: Option<usize>,
    key_id: KeyId,
    fingerprint: Fingerprint,
    /// Creation time, seconds since the epoch.
    created: i64,
    /// Expiry, seconds since the epoch.
    expires: Option<i64>,
    revoked: bool,
    /// A subkey with a valid binding signature (the primary key: always).
    bound: bool,
    /// Its key flags allow signing.
    can_sign: bool,
}

/// An OpenPGP public key (certificate), checked and summarised.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// The primary key's fingerprint, lower-case hex.
    pub fingerprint: String,
    /// The user IDs with a valid, unrevoked self-certification.
    pub user_ids: Vec<String>,
    /// The primary key's algorithm (`ed25519`, `rsa3072`, `nistp256`, …).
    pub algorithm: String,
    /// When the primary key was made.
    pub created: DateTime<Utc>,
    /// When it expires (from its newest self-signature), if ever.
    pub expires: Option<DateTime<Utc>>,
    /// A valid key revocation signature is attached.
    pub revoked: bool,
    /// The parsed key.
    pub(crate) key: SignedPublicKey,
    signers: Vec<Signer>,
}

impl PublicKey {
    /// The key as one armored public key block (what the key store writes).
    pub fn to_armored(&self) -> Result<Vec<u8>> {
        self.key
            .to_armored_bytes(Default::default())
            .map_err(|e| invalid_key(format!("serialising key {}: {e}", self.fingerprint)))
    }

    /// Whether the key can be trusted at `now`: not revoked, not expired.
    pub fn check_usable(&self, now: DateTime<Utc>) -> std::result::Result<(), SigError> {
        if self.revoked {
            return Err(SigError::Revoked {
                fingerprint: self.fingerprint.clone(),
            });
        }
        if self.expires.is_some_and(|e| e <= now) {
            return Err(SigError::Expired {
                fingerprint: self.fingerprint.clone(),
            });
        }
        Ok(())
    }

    /// The primary key's or a subkey's verifying key.
    fn verifying_key(&self, signer: &Signer) -> &dyn VerifyingKey {
        match signer.subkey.and_then(|i| self.key.public_subkeys.get(i)) {
            Some(sub) => &sub.key,
            None => &self.key.primary_key,
        }
    }
}

fn invalid_key(reason: impl Into<String>) -> Error {
    Error::Invalid {
        what: "OpenPGP public key".into(),
        reason: reason.into(),
    }
}

fn secs(t: pgp::types::Timestamp) -> i64 {
    i64::from(t.as_secs())
}

fn datetime(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(s, 0).single().unwrap_or_default()
}

/// Parse one or many public keys, armored (one or several blocks) or binary: a key file, a
/// `gpg --export` of several keys. Every key must carry a valid self-signature.
pub fn parse_keys(bytes: &[u8]) -> Result<Vec<PublicKey>> {
    if bytes.len() > MAX_KEYS_BYTES {
        return Err(invalid_key(format!(
            "{} bytes is over the {} byte limit",
            bytes.len(),
            MAX_KEYS_BYTES
        )));
    }
    let mut keys = Vec::new();
    for block in armor_blocks(bytes) {
        let (iter, _) =
            SignedPublicKey::from_reader_many(block).map_err(|e| invalid_key(e.to_string()))?;
        for key in iter {
            let key = key.map_err(|e| invalid_key(e.to_string()))?;
            if keys.len() == MAX_KEYS {
                return Err(invalid_key(format!("more than {MAX_KEYS} keys")));
            }
            keys.push(analyze(key).map_err(invalid_key)?);
        }
    }
    if keys.is_empty() {
        return Err(invalid_key("no OpenPGP public key found"));
    }
    Ok(keys)
}

/// Split concatenated armored blocks (`cat a.asc b.asc`); binary input is one block.
fn armor_blocks(bytes: &[u8]) -> Vec<&[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN PGP ";
    let starts: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i..].starts_with(BEGIN) && (i == 0 || bytes[i - 1] == b'\n'))
        .collect();
    if starts.len() < 2 {
        return vec![bytes];
    }
    let mut blocks = Vec::with_capacity(starts.len());
    for (n, &s) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(bytes.len());
        blocks.push(&bytes[s..end]);
    }
    blocks
}

fn sig_created(sig: &Signature) -> i64 {
    sig.created().map(secs).unwrap_or(i64::MIN)
}

fn newer<'a>(sig: &'a Signature, than: Option<&'a Signature>) -> Option<&'a Signature> {
    match than {
        Some(t) if sig_created(t) >= sig_created(sig) => Some(t),
        _ => Some(sig),
    }
}

fn has_key_flags(sig: &Signature) -> bool {
    sig.config().is_some_and(|c| {
        c.hashed_subpackets()
            .any(|p| matches!(p.data, SubpacketData::KeyFlags(_)))
    })
}

fn expiry(created: i64, sig: &Signature) -> Option<i64> {
    sig.key_expiration_time()
        .map(|d| i64::from(d.as_secs()))
        .filter(|&d| d > 0)
        .map(|d| created + d)
}

fn algorithm_name(key: &packet::PublicKey) -> String {
    match key.public_params() {
        PublicParams::RSA(_) => {
            // The first MPI (n) starts with its length in bits.
            let mut buf = Vec::new();
            match key.public_params().to_writer(&mut buf) {
                Ok(()) if buf.len() >= 2 => format!("rsa{}", u16::from_be_bytes([buf[0], buf[1]])),
                _ => "rsa".into(),
            }
        }
        PublicParams::EdDSALegacy(_) | PublicParams::Ed25519(_) => "ed25519".into(),
        PublicParams::Ed448(_) => "ed448".into(),
        PublicParams::ECDSA(p) => {
            use pgp::types::EcdsaPublicParams as E;
            match p {
                E::P256 { .. } => "nistp256".into(),
                E::P384 { .. } => "nistp384".into(),
                E::P521 { .. } => "nistp521".into(),
                _ => "ecdsa".into(),
            }
        }
        PublicParams::DSA(_) => "dsa".into(),
        _ => match key.algorithm() {
            PublicKeyAlgorithm::Unknown(n) => format!("algorithm {n}"),
            a => format!("{a:?}").to_lowercase(),
        },
    }
}

/// Check a parsed key's self-signatures and subkey bindings and summarise it.
fn analyze(key: SignedPublicKey) -> std::result::Result<PublicKey, String> {
    let primary = &key.primary_key;
    let fingerprint = hex::encode(primary.fingerprint().as_bytes());
    let created = secs(primary.created_at());

    let mut user_ids = Vec::new();
    let mut newest_self: Option<&Signature> = None;
    for user in &key.details.users {
        let mut latest: Option<&Signature> = None;
        for sig in &user.signatures {
            if sig
                .verify_certification(primary, Tag::UserId, &user.id)
                .is_ok()
            {
                latest = newer(sig, latest);
            }
        }
        let Some(latest) = latest else { continue };
        if latest.typ() == Some(SignatureType::CertRevocation) {
            continue;
        }
        user_ids.push(String::from_utf8_lossy(user.id.id()).into_owned());
        newest_self = newer(latest, newest_self);
    }
    for sig in &key.details.direct_signatures {
        if sig.typ() == Some(SignatureType::Key) && sig.verify_key(primary).is_ok() {
            newest_self = newer(sig, newest_self);
        }
    }
    let Some(self_sig) = newest_self else {
        return Err(format!("key {fingerprint} has no valid self-signature"));
    };
    let revoked = key.details.revocation_signatures.iter().any(|sig| {
        sig.typ() == Some(SignatureType::KeyRevocation) && sig.verify_key(primary).is_ok()
    });
    let expires = expiry(created, self_sig);

    let mut signers = vec![Signer {
        subkey: None,
        key_id: primary.legacy_key_id(),
        fingerprint: primary.fingerprint(),
        created,
        expires,
        revoked,
        bound: true,
        // Without key flags, a key of a signing algorithm may sign.
        can_sign: !has_key_flags(self_sig) || self_sig.key_flags().sign(),
    }];
    for (i, sub) in key.public_subkeys.iter().enumerate() {
        let mut binding: Option<&Signature> = None;
        let mut sub_revoked = false;
        for sig in &sub.signatures {
            match sig.typ() {
                Some(SignatureType::SubkeyBinding) => {
                    if sig.verify_subkey_binding(primary, &sub.key).is_err() {
                        continue;
                    }
                    if sig.key_flags().sign() {
                        let back = sig.embedded_signature().is_some_and(|b| {
                            b.verify_primary_key_binding(&sub.key, primary).is_ok()
                        });
                        if !back {
                            continue;
                        }
                    }
                    binding = newer(sig, binding);
                }
                Some(SignatureType::SubkeyRevocation)
                    if sig.verify_subkey_binding(primary, &sub.key).is_ok() =>
                {
                    sub_revoked = true;
                }
                _ => {}
            }
        }
        let sub_created = secs(sub.key.created_at());
        signers.push(Signer {
            subkey: Some(i),
            key_id: sub.key.legacy_key_id(),
            fingerprint: sub.key.fingerprint(),
            created: sub_created,
            expires: binding.and_then(|b| expiry(sub_created, b)),
            revoked: sub_revoked,
            bound: binding.is_some(),
            can_sign: binding.is_some_and(|b| b.key_flags().sign()),
        });
    }

    Ok(PublicKey {
        fingerprint,
        user_ids,
        algorithm: algorithm_name(primary),
        created: datetime(created),
        expires: expires.map(datetime),
        revoked,
        key,
        signers,
    })
}

/// The key and signer a signature names as its issuer.
fn find_signer<'k>(
    sig: &Signature,
    keys: &'k [PublicKey],
) -> std::result::Result<(&'k PublicKey, &'k Signer), SigError> {
    let fps = sig.issuer_fingerprint();
    let ids = sig.issuer_key_id();
    for key in keys {
        for signer in &key.signers {
            if fps.iter().any(|f| **f == signer.fingerprint)
                || ids.iter().any(|i| **i == signer.key_id)
            {
                return Ok((key, signer));
            }
        }
    }
    let key_id = ids
        .first()
        .map(|i| hex::encode(i.as_ref()))
        .or_else(|| fps.first().map(|f| hex::encode(f.as_bytes())))
        .unwrap_or_else(|| "(no issuer)".into());
    Err(SigError::UnknownKey { key_id })
}

/// Everything about a signature but the cryptography: type, hash, times, key state.
fn check_signature(
    sig: &Signature,
    key: &PublicKey,
    signer: &Signer,
    now: i64,
) -> std::result::Result<(), SigError> {
    let fingerprint = || key.fingerprint.clone();
    if key.revoked || signer.revoked {
        return Err(SigError::Revoked {
            fingerprint: fingerprint(),
        });
    }
    let what = match signer.subkey {
        Some(_) => format!(
            "subkey {} of key {}",
            hex::encode(signer.fingerprint.as_bytes()),
            key.fingerprint
        ),
        None => format!("key {}", key.fingerprint),
    };
    if !signer.bound {
        return Err(SigError::Invalid(format!(
            "{what} has no valid binding signature"
        )));
    }
    if !signer.can_sign {
        return Err(SigError::Invalid(format!("{what} is not a signing key")));
    }
    if !matches!(sig.typ(), Some(SignatureType::Binary | SignatureType::Text)) {
        return Err(SigError::Invalid(format!(
            "not a document signature ({:?})",
            sig.typ()
        )));
    }
    match sig.hash_alg() {
        Some(
            HashAlgorithm::Md5
            | HashAlgorithm::Sha1
            | HashAlgorithm::Ripemd160
            | HashAlgorithm::None,
        )
        | None => {
            return Err(SigError::Invalid(format!(
                "weak or unknown hash algorithm {}",
                sig.hash_alg().map(|h| h.to_string()).unwrap_or_default()
            )))
        }
        Some(_) => {}
    }
    let Some(made) = sig.created().map(secs) else {
        return Err(SigError::Invalid("no creation time".into()));
    };
    if made > now + MAX_CLOCK_SKEW {
        return Err(SigError::Invalid(format!(
            "made in the future ({})",
            datetime(made)
        )));
    }
    if made < signer.created || made < secs(key.key.primary_key.created_at()) {
        return Err(SigError::Invalid(format!("made before {what} existed")));
    }
    for exp in [key.signers[0].expires, signer.expires]
        .into_iter()
        .flatten()
    {
        if exp <= now || exp <= made {
            return Err(SigError::Expired {
                fingerprint: fingerprint(),
            });
        }
    }
    if let Some(d) = sig
        .signature_expiration_time()
        .map(|d| i64::from(d.as_secs()))
    {
        if d > 0 && made + d <= now {
            return Err(SigError::Invalid(format!(
                "signature expired at {}",
                datetime(made + d)
            )));
        }
    }
    Ok(())
}

fn now_secs() -> i64 {
    Utc::now().timestamp()
}

/// Verify a detached signature (armored or binary) over `data`, read to its end. Returns the
/// fingerprint of the primary key whose key (or signing subkey) made it.
// Called by the image verification the lead wires in (issue #22); unused until then.
pub fn verify_detached(
    data: &mut dyn Read,
    signature: &[u8],
    keys: &[PublicKey],
) -> std::result::Result<String, SigError> {
    verify_detached_at(data, signature, keys, now_secs())
}

fn verify_detached_at(
    data: &mut dyn Read,
    signature: &[u8],
    keys: &[PublicKey],
    now: i64,
) -> std::result::Result<String, SigError> {
    if signature.len() > MAX_DETACHED_BYTES {
        return Err(SigError::Malformed(format!(
            "{} bytes is over the {MAX_DETACHED_BYTES} byte limit",
            signature.len()
        )));
    }
    let (iter, _) = DetachedSignature::from_reader_many(signature)
        .map_err(|e| SigError::Malformed(e.to_string()))?;
    let mut sigs = Vec::new();
    for sig in iter {
        let sig = sig.map_err(|e| SigError::Malformed(e.to_string()))?;
        if sigs.len() == MAX_DETACHED_SIGNATURES {
            return Err(SigError::Malformed(format!(
                "more than {MAX_DETACHED_SIGNATURES} signatures"
            )));
        }
        sigs.push(sig.signature);
    }
    if sigs.is_empty() {
        return Err(SigError::Malformed("no signature found".into()));
    }
    // The data can be read once: check the first signature by a known key.
    let mut first_err = None;
    let found = sigs.iter().find_map(|sig| match find_signer(sig, keys) {
        Ok(found) => Some((sig, found)),
        Err(e) => {
            first_err.get_or_insert(e);
            None
        }
    });
    let Some((sig, (key, signer))) = found else {
        return Err(first_err.unwrap_or_else(|| SigError::Malformed("no signature found".into())));
    };
    check_signature(sig, key, signer, now)?;
    let verified = match signer.subkey.and_then(|i| key.key.public_subkeys.get(i)) {
        Some(sub) => sig.verify(&sub.key, data),
        None => sig.verify(&key.key.primary_key, data),
    };
    verified.map_err(|e| SigError::Invalid(format!("does not verify: {e}")))?;
    Ok(key.fingerprint.clone())
}

/// Verify a signed message (containers' simple signing, as gpg writes it) and return its
/// literal data and the fingerprint of the primary key that signed it.
// Called by the image verification the lead wires in (issue #22); unused until then.
pub fn verify_message(
    message: &[u8],
    keys: &[PublicKey],
) -> std::result::Result<(Vec<u8>, String), SigError> {
    verify_message_at(message, keys, now_secs())
}

fn verify_message_at(
    message: &[u8],
    keys: &[PublicKey],
    now: i64,
) -> std::result::Result<(Vec<u8>, String), SigError> {
    let malformed = |e: &dyn std::fmt::Display| SigError::Malformed(e.to_string());
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(SigError::Malformed(format!(
            "{} bytes is over the {MAX_MESSAGE_BYTES} byte limit",
            message.len()
        )));
    }
    let (mut msg, _) = Message::from_reader(message).map_err(|e| malformed(&e))?;
    let mut layers = 0;
    while msg.is_compressed() {
        if layers == MAX_COMPRESSION_LAYERS {
            return Err(SigError::Malformed("too many layers of compression".into()));
        }
        msg = msg.decompress().map_err(|e| malformed(&e))?;
        layers += 1;
    }
    match &msg {
        Message::Signed { .. } => {}
        Message::Encrypted { .. } => {
            return Err(SigError::Malformed("message is encrypted".into()))
        }
        Message::Literal { .. } => return Err(SigError::Malformed("message is not signed".into())),
        Message::Compressed { .. } => {
            return Err(SigError::Malformed("unexpected compression".into()))
        }
    }
    let mut literal = Vec::new();
    (&mut msg)
        .take(MAX_LITERAL_BYTES as u64 + 1)
        .read_to_end(&mut literal)
        .map_err(|e| malformed(&e))?;
    if literal.len() > MAX_LITERAL_BYTES {
        return Err(SigError::Malformed(format!(
            "literal data is over the {MAX_LITERAL_BYTES} byte limit"
        )));
    }
    let Message::Signed { reader, .. } = &msg else {
        return Err(SigError::Malformed("message is not signed".into()));
    };
    if !matches!(reader.get_ref(), Message::Literal { .. }) {
        return Err(SigError::Malformed(
            "signed content is not literal data".into(),
        ));
    }
    let count = reader.num_signatures();
    let mut best: Option<SigError> = None;
    for i in 0..count {
        let Some(sig) = reader.signature(i) else {
            continue;
        };
        let result = find_signer(sig, keys).and_then(|(key, signer)| {
            check_signature(sig, key, signer, now)?;
            msg.verify_nested_explicit(i, key.verifying_key(signer))
                .map_err(|e| SigError::Invalid(format!("does not verify: {e}")))?;
            Ok(key.fingerprint.clone())
        });
        match result {
            Ok(fp) => return Ok((literal, fp)),
            // A known key's refusal says more than an unknown issuer.
            Err(e) => {
                if best.is_none() || matches!(best, Some(SigError::UnknownKey { .. })) {
                    best = Some(e);
                }
            }
        }
    }
    Err(best.unwrap_or_else(|| SigError::Malformed("no signature found".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_FP: &str = "6f391f83a1d1f6d3d6454811c95743691db21c59";
    const RSA_FP: &str = "480ad5c2893ba59ec636a42eb1ede9ba8a8d3a03";
    const SUB_FP: &str = "989dc53edc1903cc8cde1959c654355a9769c319";
    const OLD_FP: &str = "657abd2df9e5cbd7339baeb8cc1320c28f56b52b";
    const REV_FP: &str = "0f89645212da94cbb935a6d65a12cb95a3ff3add";
    const REVSUB_FP: &str = "2262fa6d79bc8cc5f9360010222921757e1f35cf";

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/trust/testdata")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn key(name: &str) -> Vec<PublicKey> {
        parse_keys(&fixture(name)).unwrap()
    }

    fn detached(sig: &str, keys: &[PublicKey]) -> std::result::Result<String, SigError> {
        let data = fixture("data.txt");
        verify_detached(&mut data.as_slice(), &fixture(sig), keys)
    }

    #[test]
    fn parses_armored_binary_and_keyrings() {
        let k = key("ed25519.pub.asc");
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].fingerprint, ED_FP);
        assert_eq!(
            k[0].user_ids,
            vec!["Ed Signer <ed@example.com>".to_string()]
        );
        assert_eq!(k[0].algorithm, "ed25519");
        assert!(!k[0].revoked);
        assert_eq!(k[0].expires, None);
        let b = key("ed25519.pub.gpg");
        assert_eq!(b[0].fingerprint, ED_FP);
        let r = key("rsa3072.pub.asc");
        assert_eq!(r[0].algorithm, "rsa3072");
        assert_eq!(r[0].fingerprint, RSA_FP);
        let ring = key("keyring.pub.asc");
        let fps: Vec<_> = ring.iter().map(|k| k.fingerprint.as_str()).collect();
        assert_eq!(fps, vec![ED_FP, RSA_FP]);
        // two armored files concatenated
        let mut cat = fixture("ed25519.pub.asc");
        cat.extend(fixture("subkey.pub.asc"));
        let both = parse_keys(&cat).unwrap();
        assert_eq!(both.len(), 2);
        assert_eq!(both[1].fingerprint, SUB_FP);
        // re-armoring round-trips
        let again = parse_keys(&k[0].to_armored().unwrap()).unwrap();
        assert_eq!(again[0].fingerprint, ED_FP);
    }

    #[test]
    fn key_states() {
        let old = &key("expired.pub.asc")[0];
        assert_eq!(old.fingerprint, OLD_FP);
        assert!(old.expires.is_some_and(|e| e < Utc::now()));
        assert!(matches!(
            old.check_usable(Utc::now()),
            Err(SigError::Expired { .. })
        ));
        let rev = &key("revoked.pub.asc")[0];
        assert!(rev.revoked);
        assert!(matches!(
            rev.check_usable(Utc::now()),
            Err(SigError::Revoked { .. })
        ));
        assert!(key("ed25519.pub.asc")[0].check_usable(Utc::now()).is_ok());
    }

    #[test]
    fn refuses_garbage_keys() {
        for bad in [
            &b""[..],
            b"hello",
            b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n",
            &[0x99, 0x01, 0xff, 0x04],
            &[0xc6; 300],
        ] {
            assert!(parse_keys(bad).is_err(), "{bad:?}");
        }
        // a secret key is not a public one
        assert!(parse_keys(&fixture("ed25519.sec.asc")).is_err());
        // a signature is not a key
        assert!(parse_keys(&fixture("data.txt.ed25519.asc")).is_err());
        // truncated
        let k = fixture("ed25519.pub.gpg");
        for n in [1, 10, k.len() / 2, k.len() - 1] {
            let _ = parse_keys(&k[..n]);
        }
        assert!(parse_keys(&vec![b'a'; MAX_KEYS_BYTES + 1]).is_err());
        // no single-byte change panics; a changed key never keeps its fingerprint with a
        // different user ID (the self-signature covers it)
        for i in 0..k.len() {
            for flip in [0x01, 0x80] {
                let mut m = k.clone();
                m[i] ^= flip;
                if let Ok(keys) = parse_keys(&m) {
                    for key in keys.iter().filter(|key| key.fingerprint == ED_FP) {
                        assert!(
                            key.user_ids.is_empty()
                                || key.user_ids == ["Ed Signer <ed@example.com>"],
                            "byte {i}: {:?}",
                            key.user_ids
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn good_detached_signatures() {
        let all = key("keyring.pub.asc");
        assert_eq!(detached("data.txt.ed25519.asc", &all).unwrap(), ED_FP);
        assert_eq!(detached("data.txt.ed25519.sig", &all).unwrap(), ED_FP);
        assert_eq!(detached("data.txt.rsa3072.asc", &all).unwrap(), RSA_FP);
        // by a signing subkey: reported as the primary key
        assert_eq!(
            detached("data.txt.subkey.asc", &key("subkey.pub.asc")).unwrap(),
            SUB_FP
        );
    }

    #[test]
    fn wrong_key() {
        let err = detached("data.txt.ed25519.asc", &key("rsa3072.pub.asc")).unwrap_err();
        assert_eq!(
            err,
            SigError::UnknownKey {
                key_id: ED_FP[24..].into()
            }
        );
        assert!(err.to_string().contains("unknown key"));
        assert!(matches!(
            detached("data.txt.ed25519.asc", &[]),
            Err(SigError::UnknownKey { .. })
        ));
    }

    #[test]
    fn tampered_data_and_signature() {
        let keys = key("keyring.pub.asc");
        let data = b"hello, signed world!\n";
        for sig in ["data.txt.ed25519.asc", "data.txt.rsa3072.asc"] {
            let err = verify_detached(&mut &data[..], &fixture(sig), &keys).unwrap_err();
            assert!(matches!(err, SigError::Invalid(_)), "{sig}: {err}");
        }
        // flip a byte in the signature's MPIs (the binary signature's last bytes)
        let mut sig = fixture("data.txt.ed25519.sig");
        let n = sig.len() - 5;
        sig[n] ^= 0x01;
        let err = verify_detached(&mut fixture("data.txt").as_slice(), &sig, &keys).unwrap_err();
        assert!(
            matches!(err, SigError::Invalid(_) | SigError::Malformed(_)),
            "{err}"
        );
        // no single-byte change of the binary signature panics (some, in the unhashed
        // subpackets such as the issuer key id, legitimately still verify)
        let orig = fixture("data.txt.ed25519.sig");
        for i in 0..orig.len() {
            let mut s = orig.clone();
            s[i] ^= 0x40;
            let _ = verify_detached(&mut fixture("data.txt").as_slice(), &s, &keys);
        }
    }

    #[test]
    fn expired_and_revoked() {
        assert_eq!(
            detached("data.txt.expired.asc", &key("expired.pub.asc")).unwrap_err(),
            SigError::Expired {
                fingerprint: OLD_FP.into()
            }
        );
        assert_eq!(
            detached("data.txt.revoked.asc", &key("revoked.pub.asc")).unwrap_err(),
            SigError::Revoked {
                fingerprint: REV_FP.into()
            }
        );
        assert_eq!(
            detached("data.txt.revsub.asc", &key("revoked-subkey.pub.asc")).unwrap_err(),
            SigError::Revoked {
                fingerprint: REVSUB_FP.into()
            }
        );
    }

    #[test]
    fn expiry_is_judged_at_signing_time_too() {
        // The expired key signed in 2020-06 while valid (it expired 2021-01): at a time before
        // its expiry the signature is good, after it the key has expired.
        let keys = key("expired.pub.asc");
        let sig = fixture("data.txt.expired.asc");
        let data = fixture("data.txt");
        let mid2020 = Utc
            .with_ymd_and_hms(2020, 7, 1, 0, 0, 0)
            .unwrap()
            .timestamp();
        assert_eq!(
            verify_detached_at(&mut data.as_slice(), &sig, &keys, mid2020).unwrap(),
            OLD_FP
        );
        // a signature from "the future" relative to the clock is refused
        let early = Utc
            .with_ymd_and_hms(2020, 3, 1, 0, 0, 0)
            .unwrap()
            .timestamp();
        assert!(matches!(
            verify_detached_at(&mut data.as_slice(), &sig, &keys, early),
            Err(SigError::Invalid(_))
        ));
    }

    #[test]
    fn garbage_signatures() {
        let keys = key("keyring.pub.asc");
        for bad in [
            &b""[..],
            b"garbage",
            b"-----BEGIN PGP SIGNATURE-----\n\n=AAAA\n-----END PGP SIGNATURE-----\n",
            &[0x88, 0x05, 0x04, 0x00, 0x16, 0x08, 0x00],
        ] {
            let r = verify_detached(&mut &b"x"[..], bad, &keys);
            assert!(r.is_err(), "{bad:?}");
            let r = verify_message(bad, &keys);
            assert!(r.is_err(), "{bad:?}");
        }
        // a key is not a signature
        assert!(verify_detached(&mut &b"x"[..], &fixture("ed25519.pub.asc"), &keys).is_err());
        assert!(verify_message(&fixture("ed25519.pub.gpg"), &keys).is_err());
        // a detached signature is not a signed message
        assert!(verify_message(&fixture("data.txt.ed25519.sig"), &keys).is_err());
        let big = vec![0u8; MAX_DETACHED_BYTES + 1];
        assert!(matches!(
            verify_detached(&mut &b"x"[..], &big, &keys),
            Err(SigError::Malformed(_))
        ));
        let big = vec![0u8; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            verify_message(&big, &keys),
            Err(SigError::Malformed(_))
        ));
    }

    #[test]
    fn signed_messages() {
        let claim = fixture("claim.json");
        let all = key("keyring.pub.asc");
        for (file, fp) in [
            ("claim.ed25519.sig", ED_FP),
            ("claim.ed25519.plain.sig", ED_FP),
            ("claim.ed25519.asc", ED_FP),
            ("claim.rsa3072.sig", RSA_FP),
        ] {
            let (data, who) =
                verify_message(&fixture(file), &all).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(data, claim, "{file}");
            assert_eq!(who, fp, "{file}");
        }
        let (data, who) =
            verify_message(&fixture("claim.subkey.sig"), &key("subkey.pub.asc")).unwrap();
        assert_eq!((data, who.as_str()), (claim.clone(), SUB_FP));
        assert!(matches!(
            verify_message(&fixture("claim.ed25519.sig"), &key("rsa3072.pub.asc")),
            Err(SigError::UnknownKey { .. })
        ));
    }

    #[test]
    fn tampered_messages() {
        let keys = key("keyring.pub.asc");
        // the uncompressed message carries the claim in clear: change one of its bytes
        let orig = fixture("claim.ed25519.plain.sig");
        let claim = fixture("claim.json");
        let at = orig
            .windows(claim.len())
            .position(|w| w == claim.as_slice())
            .expect("claim in message");
        let mut m = orig.clone();
        m[at + 10] ^= 0x01;
        assert!(matches!(
            verify_message(&m, &keys),
            Err(SigError::Invalid(_))
        ));
        // no single-byte change panics; none returns other literal data (the literal packet's
        // file name and date are not signed, so changing them may still verify)
        for comp in [orig.clone(), fixture("claim.ed25519.sig")] {
            for i in 0..comp.len() {
                let mut m = comp.clone();
                m[i] ^= 0x20;
                if let Ok((data, _)) = verify_message(&m, &keys) {
                    assert_eq!(data, claim, "byte {i}");
                }
            }
        }
        // truncations
        for n in 0..orig.len() {
            assert!(verify_message(&orig[..n], &keys).is_err(), "length {n}");
        }
    }
}
