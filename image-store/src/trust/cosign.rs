//! cosign's key-based signatures: a public key as `cosign generate-key-pair` writes it
//! (`cosign.pub`, a PEM "PUBLIC KEY" holding a SubjectPublicKeyInfo) and the base64 signature
//! over a payload stored in the registry. ECDSA P-256 (cosign's default) and Ed25519 keys.

use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePublicKey, EncodePublicKey};
use p256::pkcs8::der::Decode;
use p256::pkcs8::spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};
use sha2::{Digest, Sha256};

/// The largest PEM input read.
const MAX_PEM: usize = 1 << 20;
/// The most keys one PEM input may hold.
const MAX_KEYS: usize = 64;
/// The longest base64 signature accepted (an ECDSA P-256 DER signature is at most 72 bytes).
const MAX_SIGNATURE: usize = 4096;

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_ED25519: &str = "1.3.101.112";

/// A public key cosign signatures are checked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CosignKey {
    /// ECDSA over NIST P-256 with SHA-256 (`cosign generate-key-pair`'s).
    P256(p256::ecdsa::VerifyingKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl CosignKey {
    /// The public keys of PEM text: one or several "PUBLIC KEY" blocks (text around them is
    /// ignored). Private keys, certificates and other algorithms are refused by name.
    pub fn from_pem(bytes: &[u8]) -> Result<Vec<CosignKey>, String> {
        if bytes.len() > MAX_PEM {
            return Err(format!(
                "public key file of {} bytes is larger than the limit of {MAX_PEM} bytes",
                bytes.len()
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| "public key file is not PEM text")?;
        let blocks = pem_blocks(text)?;
        if blocks.is_empty() {
            return Err("no PEM \"PUBLIC KEY\" block found".into());
        }
        if blocks.len() > MAX_KEYS {
            return Err(format!("more than {MAX_KEYS} keys in one file"));
        }
        blocks
            .into_iter()
            .enumerate()
            .map(|(i, (label, der))| {
                if label != "PUBLIC KEY" {
                    let hint = if label.contains("PRIVATE KEY") {
                        " (a private key: give the public key, e.g. cosign.pub)"
                    } else {
                        ""
                    };
                    return Err(format!(
                        "PEM block {} is a {label:?}, not a \"PUBLIC KEY\"{hint}",
                        i + 1
                    ));
                }
                CosignKey::from_spki_der(&der).map_err(|e| format!("PEM block {}: {e}", i + 1))
            })
            .collect()
    }

    fn from_spki_der(der: &[u8]) -> Result<CosignKey, String> {
        let spki = SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| format!("not a SubjectPublicKeyInfo: {e}"))?;
        let oid = spki.algorithm.oid.to_string();
        match oid.as_str() {
            OID_EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters_oid()
                    .map(|o: ObjectIdentifier| o.to_string())
                    .unwrap_or_default();
                if curve != OID_P256 {
                    return Err(format!(
                        "ECDSA key on curve {} is not supported (only P-256)",
                        curve_name(&curve)
                    ));
                }
                p256::ecdsa::VerifyingKey::from_public_key_der(der)
                    .map(CosignKey::P256)
                    .map_err(|e| format!("bad P-256 public key: {e}"))
            }
            OID_ED25519 => ed25519_dalek::VerifyingKey::from_public_key_der(der)
                .map(CosignKey::Ed25519)
                .map_err(|e| format!("bad Ed25519 public key: {e}")),
            other => Err(format!(
                "{} public keys are not supported (only ECDSA P-256 and Ed25519)",
                algorithm_name(other)
            )),
        }
    }

    /// `sha256:<hex>` of the key's DER SubjectPublicKeyInfo (canonical encoding).
    pub fn id(&self) -> String {
        let der = match self {
            CosignKey::P256(k) => k.to_public_key_der(),
            CosignKey::Ed25519(k) => k.to_public_key_der(),
        };
        // encoding a valid key cannot fail; an empty input keeps this total anyway
        let bytes = der.map(|d| d.as_bytes().to_vec()).unwrap_or_default();
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    /// Check `signature_b64` (standard base64, as in the `dev.cosignproject.cosign/signature`
    /// annotation) over `payload`: ECDSA/SHA-256 with a DER or fixed 64-byte signature, or
    /// Ed25519 over the payload itself.
    pub fn verify(&self, payload: &[u8], signature_b64: &str) -> Result<(), String> {
        let sig_text = signature_b64.trim();
        if sig_text.len() > MAX_SIGNATURE {
            return Err("signature is too long".into());
        }
        let sig = base64::engine::general_purpose::STANDARD
            .decode(sig_text)
            .map_err(|e| format!("signature is not valid base64: {e}"))?;
        let bad = || format!("signature does not verify with key {}", self.id());
        match self {
            CosignKey::P256(key) => {
                use p256::ecdsa::signature::Verifier;
                let sig = p256::ecdsa::Signature::from_der(&sig)
                    .or_else(|_| p256::ecdsa::Signature::from_slice(&sig))
                    .map_err(|_| "signature is not an ECDSA P-256 signature".to_string())?;
                key.verify(payload, &sig).map_err(|_| bad())
            }
            CosignKey::Ed25519(key) => {
                let sig = ed25519_dalek::Signature::from_slice(&sig)
                    .map_err(|_| "signature is not an Ed25519 signature".to_string())?;
                key.verify_strict(payload, &sig).map_err(|_| bad())
            }
        }
    }
}

fn curve_name(oid: &str) -> String {
    match oid {
        "1.3.132.0.34" => "P-384".into(),
        "1.3.132.0.35" => "P-521".into(),
        "1.3.132.0.10" => "secp256k1".into(),
        "" => "(unnamed)".into(),
        o => o.into(),
    }
}

fn algorithm_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.1" => "RSA".into(),
        "1.3.101.113" => "Ed448".into(),
        "1.2.840.10040.4.1" => "DSA".into(),
        o => format!("algorithm {o}"),
    }
}

/// The `(label, decoded body)` of each `-----BEGIN X-----` … `-----END X-----` block.
fn pem_blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut closed = false;
        for l in lines.by_ref() {
            if l == end {
                closed = true;
                break;
            }
            if l.starts_with("-----") {
                return Err(format!("PEM block {label:?} is not closed by {end:?}"));
            }
            // RFC 1421 headers (`Proc-Type: …`) only come with encryption
            if l.contains(':') {
                return Err(format!("PEM block {label:?} has headers (encrypted?)"));
            }
            body.push_str(l);
        }
        if !closed {
            return Err(format!("PEM block {label:?} is not closed by {end:?}"));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(&body)
            .map_err(|e| format!("PEM block {label:?} is not valid base64: {e}"))?;
        out.push((label.to_string(), der));
        if out.len() > MAX_KEYS {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use p256::ecdsa::signature::Signer;

    const PAYLOAD: &[u8] = br#"{"critical":{"identity":{"docker-reference":"a.io/b:c"},"image":{"docker-manifest-digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},"type":"cosign container image signature"},"optional":null}"#;

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    fn p256_key(seed: u8) -> p256::ecdsa::SigningKey {
        p256::ecdsa::SigningKey::from_bytes(&[seed; 32].into()).unwrap()
    }

    fn ed_key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    fn p256_pem(k: &p256::ecdsa::SigningKey) -> String {
        k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap()
    }

    fn ed_pem(k: &ed25519_dalek::SigningKey) -> String {
        k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap()
    }

    #[test]
    fn p256_good_bad_and_other_key() {
        let sk = p256_key(7);
        let keys = CosignKey::from_pem(p256_pem(&sk).as_bytes()).unwrap();
        assert!(matches!(keys[..], [CosignKey::P256(_)]));
        let key = &keys[0];
        let sig: p256::ecdsa::Signature = sk.sign(PAYLOAD);
        // DER (what cosign writes) and fixed-size encodings
        key.verify(PAYLOAD, &b64(sig.to_der().as_bytes())).unwrap();
        key.verify(PAYLOAD, &b64(&sig.to_bytes())).unwrap();
        // a high-S twin is as valid for Go's verifier
        let (r, s) = sig.split_scalars();
        let high = p256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
        key.verify(PAYLOAD, &b64(high.to_der().as_bytes())).unwrap();
        // tampered payload, other key, garbage
        let mut tampered = PAYLOAD.to_vec();
        tampered[20] ^= 1;
        let e = key
            .verify(&tampered, &b64(sig.to_der().as_bytes()))
            .unwrap_err();
        assert!(e.contains("does not verify"), "{e}");
        let other = &CosignKey::from_pem(p256_pem(&p256_key(8)).as_bytes()).unwrap()[0];
        assert!(other
            .verify(PAYLOAD, &b64(sig.to_der().as_bytes()))
            .is_err());
        assert!(key
            .verify(PAYLOAD, "not base64!")
            .unwrap_err()
            .contains("base64"));
        assert!(key
            .verify(PAYLOAD, &b64(b"short"))
            .unwrap_err()
            .contains("not an ECDSA P-256 signature"));
        assert!(key.verify(PAYLOAD, &"A".repeat(10_000)).is_err());
        // an Ed25519 signature is not a P-256 one
        let ed_sig = ed25519_dalek::Signer::sign(&ed_key(1), PAYLOAD);
        assert!(key.verify(PAYLOAD, &b64(&ed_sig.to_bytes())).is_err());
    }

    #[test]
    fn ed25519_good_bad_and_other_key() {
        let sk = ed_key(9);
        let keys = CosignKey::from_pem(ed_pem(&sk).as_bytes()).unwrap();
        assert!(matches!(keys[..], [CosignKey::Ed25519(_)]));
        let key = &keys[0];
        let sig = ed25519_dalek::Signer::sign(&sk, PAYLOAD);
        key.verify(PAYLOAD, &b64(&sig.to_bytes())).unwrap();
        // with the line break a file or annotation may carry
        key.verify(PAYLOAD, &format!("{}\n", b64(&sig.to_bytes())))
            .unwrap();
        assert!(key.verify(b"other", &b64(&sig.to_bytes())).is_err());
        let other = &CosignKey::from_pem(ed_pem(&ed_key(10)).as_bytes()).unwrap()[0];
        assert!(other.verify(PAYLOAD, &b64(&sig.to_bytes())).is_err());
        assert!(key
            .verify(PAYLOAD, &b64(&[0u8; 63]))
            .unwrap_err()
            .contains("not an Ed25519"));
        let mut bad = sig.to_bytes();
        bad[0] ^= 1;
        assert!(key.verify(PAYLOAD, &b64(&bad)).is_err());
    }

    #[test]
    fn several_keys_and_their_ids() {
        let a = p256_key(1);
        let b = ed_key(2);
        let text = format!(
            "cosign public keys\n{}\nsome comment\n{}",
            p256_pem(&a),
            ed_pem(&b)
        );
        let keys = CosignKey::from_pem(text.as_bytes()).unwrap();
        assert_eq!(keys.len(), 2);
        let der = a.verifying_key().to_public_key_der().unwrap();
        assert_eq!(
            keys[0].id(),
            format!("sha256:{}", hex::encode(Sha256::digest(der.as_bytes())))
        );
        assert_ne!(keys[0].id(), keys[1].id());
        assert_eq!(keys[0].id().len(), "sha256:".len() + 64);
        // the id does not depend on the point's encoding: a compressed point is the same key
        let compressed = p256::PublicKey::from(a.verifying_key())
            .to_public_key_der()
            .unwrap();
        assert_eq!(
            CosignKey::from_spki_der(compressed.as_bytes())
                .unwrap()
                .id(),
            keys[0].id()
        );
        // CRLF line ends
        let crlf = p256_pem(&a).replace('\n', "\r\n");
        assert_eq!(
            CosignKey::from_pem(crlf.as_bytes()).unwrap()[0].id(),
            keys[0].id()
        );
    }

    #[test]
    fn refuses_what_is_not_a_supported_public_key() {
        let pem = |label: &str, der: &[u8]| {
            format!(
                "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
                b64(der)
            )
        };
        let p256_der = p256_key(3).verifying_key().to_public_key_der().unwrap();
        // a P-384 SPKI: the P-256 one with the curve OID's last arc changed is not valid, so
        // build the prefix by hand: SEQ { SEQ { ecPublicKey, secp384r1 }, BIT STRING }
        let mut p384 = vec![
            0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00, 0x04,
        ];
        p384.extend([1u8; 96]);
        // an RSA SPKI header with a dummy key
        let mut rsa = vec![
            0x30, 0x1f, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
            0x01, 0x05, 0x00, 0x03, 0x0e, 0x00,
        ];
        rsa.extend([0u8; 13]);
        let cases: Vec<(String, &str)> =
            vec![
            ("".into(), "no PEM"),
            ("hello".into(), "no PEM"),
            (
                pem("ENCRYPTED SIGSTORE PRIVATE KEY", b"x"),
                "\"ENCRYPTED SIGSTORE PRIVATE KEY\", not a \"PUBLIC KEY\" (a private key",
            ),
            (pem("CERTIFICATE", b"x"), "\"CERTIFICATE\", not a \"PUBLIC KEY\""),
            (pem("PUBLIC KEY", b"garbage"), "not a SubjectPublicKeyInfo"),
            (pem("PUBLIC KEY", &p384), "curve P-384 is not supported"),
            (pem("PUBLIC KEY", &rsa), "RSA public keys are not supported"),
            (
                pem("PUBLIC KEY", p256_der.as_bytes()).replace("-----END PUBLIC KEY-----\n", ""),
                "not closed",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n".into(),
                "not valid base64",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nProc-Type: 4,ENCRYPTED\n\n-----END PUBLIC KEY-----\n"
                    .into(),
                "headers",
            ),
            (
                format!(
                    "{}{}",
                    pem("PUBLIC KEY", p256_der.as_bytes()),
                    pem("PRIVATE KEY", b"x")
                ),
                "PEM block 2",
            ),
        ];
        for (text, want) in cases {
            let e = CosignKey::from_pem(text.as_bytes()).unwrap_err();
            assert!(e.contains(want), "{text:.60}: {e}");
        }
        // a point not on the curve
        let mut off_curve = p256_der.as_bytes().to_vec();
        let n = off_curve.len();
        off_curve[n - 1] ^= 1;
        let e = CosignKey::from_pem(pem("PUBLIC KEY", &off_curve).as_bytes()).unwrap_err();
        assert!(e.contains("bad P-256 public key"), "{e}");
        assert!(CosignKey::from_pem(&[0xff, 0xfe]).is_err());
        assert!(CosignKey::from_pem(&vec![b'a'; MAX_PEM + 1]).is_err());
        let many = pem("PUBLIC KEY", p256_der.as_bytes()).repeat(MAX_KEYS + 1);
        assert!(CosignKey::from_pem(many.as_bytes())
            .unwrap_err()
            .contains("more than"));
    }
}
