//! The claim a simple-signing (`atomic container signature`) or cosign (`cosign container image
//! signature`) signature signs, and checking it against the image actually fetched.
//!
//! The payload is JSON:
//!
//! ```json
//! {"critical": {"type": "atomic container signature",
//!               "image": {"docker-manifest-digest": "sha256:…"},
//!               "identity": {"docker-reference": "quay.io/app:v1"}},
//!  "optional": {"creator": "…", "timestamp": 1700000000}}
//! ```
//!
//! Parsing is as strict as containers/image's: every `critical` field is required, unknown
//! fields there (or at the top level) and duplicated fields refuse the payload; `optional` is
//! ignored (cosign writes `null` there).

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::policy::SignedIdentity;
use super::Subject;
use crate::reference::{validate_digest, validate_host, Reference};

/// The largest payload parsed.
pub(crate) const MAX_PAYLOAD: usize = 1 << 20;

/// Which kind of signature a claim was written for (its `critical.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimKind {
    /// `atomic container signature`: containers' simple signing (OpenPGP).
    Atomic,
    /// `cosign container image signature`: cosign / sigstore.
    Cosign,
}

impl ClaimKind {
    /// The `critical.type` string.
    pub fn type_str(self) -> &'static str {
        match self {
            ClaimKind::Atomic => "atomic container signature",
            ClaimKind::Cosign => "cosign container image signature",
        }
    }
}

/// What a signature says: this manifest digest is the image of this reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// `critical.image.docker-manifest-digest` (validated `sha256:…` etc.).
    pub docker_manifest_digest: String,
    /// `critical.identity.docker-reference`, as signed (a valid docker reference).
    pub docker_reference: String,
    /// `critical.type`.
    pub kind: ClaimKind,
}

/// Parse a signature payload (at most [`MAX_PAYLOAD`] bytes).
pub fn parse(bytes: &[u8]) -> Result<Claim, String> {
    if bytes.len() > MAX_PAYLOAD {
        return Err(format!(
            "signature payload of {} bytes is larger than the limit of {MAX_PAYLOAD} bytes",
            bytes.len()
        ));
    }
    let v = strict_json(bytes).map_err(|e| format!("signature payload is not valid JSON: {e}"))?;
    let top = v
        .as_object()
        .ok_or("signature payload is not a JSON object")?;
    exact_fields(top, "signature payload", &["critical"], &["optional"])?;
    match top.get("optional") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(_) => return Err("signature payload: \"optional\" is not an object".into()),
    }
    let critical = object(&top["critical"], "critical")?;
    exact_fields(critical, "critical", &["type", "image", "identity"], &[])?;
    let ty = string(&critical["type"], "critical.type")?;
    let kind = [ClaimKind::Atomic, ClaimKind::Cosign]
        .into_iter()
        .find(|k| k.type_str() == ty)
        .ok_or_else(|| format!("signature payload: unknown critical.type {ty:?}"))?;

    let image = object(&critical["image"], "critical.image")?;
    exact_fields(image, "critical.image", &["docker-manifest-digest"], &[])?;
    let digest = string(
        &image["docker-manifest-digest"],
        "critical.image.docker-manifest-digest",
    )?;
    validate_digest(digest)
        .map_err(|e| format!("signature payload: critical.image.docker-manifest-digest: {e}"))?;

    let identity = object(&critical["identity"], "critical.identity")?;
    exact_fields(identity, "critical.identity", &["docker-reference"], &[])?;
    let reference = string(
        &identity["docker-reference"],
        "critical.identity.docker-reference",
    )?;
    DockerRef::parse(reference)
        .map_err(|e| format!("signature payload: critical.identity.docker-reference: {e}"))?;

    Ok(Claim {
        docker_manifest_digest: digest.to_string(),
        docker_reference: reference.to_string(),
        kind,
    })
}

/// Check a claim against the image fetched: the digest must be the manifest's, and the signed
/// reference must satisfy the policy's identity rule for the name that was asked for.
pub fn check(claim: &Claim, subject: &Subject, identity: &SignedIdentity) -> Result<(), String> {
    let want = subject.manifest_digest.as_deref().ok_or_else(|| {
        format!(
            "{} has no manifest digest to check the signature against",
            subject.name
        )
    })?;
    if claim.docker_manifest_digest != want {
        return Err(format!(
            "signature is for another image (digest {}, not {want})",
            claim.docker_manifest_digest
        ));
    }
    let signed = DockerRef::parse(&claim.docker_reference)
        .map_err(|e| format!("signature identity: {e}"))?;
    // the rules that compare with a fixed reference do not need the asked-for one
    let intended = || {
        DockerRef::parse(&subject.name).map_err(|e| {
            format!(
                "{} has no registry reference to match the signature's identity against: {e}",
                subject.name
            )
        })
    };
    let ok = match identity {
        SignedIdentity::MatchExact => match_exact(&intended()?, &signed),
        SignedIdentity::MatchRepoDigestOrExact => match_repo_digest_or_exact(&intended()?, &signed),
        SignedIdentity::MatchRepository => intended()?.r.name() == signed.r.name(),
        SignedIdentity::ExactReference { docker_reference } => {
            let given = DockerRef::parse(docker_reference)
                .map_err(|e| format!("policy's dockerReference: {e}"))?;
            match_exact(&given, &signed)
        }
        SignedIdentity::ExactRepository { docker_repository } => {
            let given = DockerRef::parse(docker_repository)
                .map_err(|e| format!("policy's dockerRepository: {e}"))?;
            given.r.name() == signed.r.name()
        }
        SignedIdentity::RemapIdentity {
            prefix,
            signed_prefix,
        } => {
            let intended = intended()?;
            let s = intended.r.to_string();
            let remapped = if ref_matches_prefix(&intended.r.name(), prefix) {
                let new = format!("{signed_prefix}{}", &s[prefix.len()..]);
                DockerRef::parse(&new).map_err(|e| {
                    format!("remapping {s} with prefix {prefix} to {signed_prefix}: {e}")
                })?
            } else {
                intended
            };
            match_repo_digest_or_exact(&remapped, &signed)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "signature is for {} which does not match {} ({})",
            claim.docker_reference,
            subject.name,
            identity.type_str()
        ))
    }
}

/// A docker reference as a signature or policy names it, remembering whether it had a tag or
/// digest (`Reference::parse` adds `latest` to a bare name).
#[derive(Debug, Clone)]
pub(crate) struct DockerRef {
    pub(crate) r: Reference,
    pub(crate) name_only: bool,
}

impl DockerRef {
    pub(crate) fn parse(s: &str) -> Result<DockerRef, String> {
        if s.starts_with("docker://") || s.trim() != s || s.is_empty() {
            return Err(format!("{s:?} is not a docker reference"));
        }
        let r = Reference::parse(s).map_err(|e| e.to_string())?;
        // `Reference` takes a `docker:` scheme off; a signed or configured name has none
        if s.starts_with("docker:") && !r.registry.starts_with("docker:") {
            return Err(format!(
                "{s:?} is not a docker reference (no scheme allowed)"
            ));
        }
        let last = s.rsplit('/').next().unwrap_or(s);
        let name_only = !last.contains(':') && !s.contains('@');
        Ok(DockerRef { r, name_only })
    }
}

/// Both have a tag or digest and they are the same reference.
fn match_exact(intended: &DockerRef, signed: &DockerRef) -> bool {
    !intended.name_only && !signed.name_only && intended.r == signed.r
}

/// Asked for by digest (only): the same repository is enough (the digest itself is checked
/// against the claim's); otherwise exact.
fn match_repo_digest_or_exact(intended: &DockerRef, signed: &DockerRef) -> bool {
    if signed.name_only || intended.name_only {
        return false;
    }
    if intended.r.tag.is_none() && intended.r.digest.is_some() {
        intended.r.name() == signed.r.name()
    } else {
        intended.r == signed.r
    }
}

/// A repository `name` (`host/repo`, no tag or digest) is `prefix` or under it: the next
/// character is `/` (a host prefix does not match the same host with a port).
fn ref_matches_prefix(name: &str, prefix: &str) -> bool {
    match name.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// A remapIdentity prefix: `host[:port]` or a fully qualified repository/namespace without tag
/// or digest, in canonical form.
pub(crate) fn valid_remap_prefix(s: &str) -> bool {
    if !s.contains('/') {
        return is_qualified_host(s) && validate_host(s).is_ok();
    }
    match DockerRef::parse(s) {
        Ok(d) => {
            d.name_only && d.r.name() == s && s.split('/').next().is_some_and(is_qualified_host)
        }
        Err(_) => false,
    }
}

/// A first component that `Reference` takes for a registry host.
pub(crate) fn is_qualified_host(c: &str) -> bool {
    c.contains('.') || c.contains(':') || c == "localhost"
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("signature payload: {what} is not an object"))
}

fn string<'a>(v: &'a Value, what: &str) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("signature payload: {what} is not a string"))
}

/// `obj` has every field of `required`, maybe those of `optional`, and nothing else.
fn exact_fields(
    obj: &Map<String, Value>,
    what: &str,
    required: &[&str],
    optional: &[&str],
) -> Result<(), String> {
    for r in required {
        if !obj.contains_key(*r) {
            return Err(format!("{what}: missing field {r:?}"));
        }
    }
    for k in obj.keys() {
        if !required.contains(&k.as_str()) && !optional.contains(&k.as_str()) {
            return Err(format!("{what}: unknown field {k:?}"));
        }
    }
    Ok(())
}

/// Parse JSON refusing duplicated object keys (serde_json's `Value` keeps the last one).
/// Nesting is limited by serde_json's recursion limit.
pub(crate) fn strict_json(bytes: &[u8]) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Strict::deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(v.0)
}

/// A JSON value read by [`strict_json`]'s rules.
pub(crate) struct Strict(pub(crate) Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
        Ok(Strict(
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }
    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Strict, D::Error> {
        Strict::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Strict(Value::Array(out)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(de::Error::custom(format!("duplicate field {k:?}")));
            }
            let Strict(v) = map.next_value()?;
            out.insert(k, v);
        }
        Ok(Strict(Value::Object(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::Transport;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn payload(ty: &str, digest: &str, reference: &str) -> String {
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"{ty}"}},"optional":{{"creator":"test","timestamp":1}}}}"#
        )
    }

    fn claim(reference: &str) -> Claim {
        Claim {
            docker_manifest_digest: D1.into(),
            docker_reference: reference.into(),
            kind: ClaimKind::Atomic,
        }
    }

    fn subject(name: &str) -> Subject {
        Subject {
            transport: Transport::Docker,
            name: name.into(),
            manifest_digest: Some(D1.into()),
        }
    }

    #[test]
    fn parses_atomic_and_cosign_payloads() {
        let c =
            parse(payload("atomic container signature", D1, "quay.io/app:v1").as_bytes()).unwrap();
        assert_eq!(c, {
            let mut c = claim("quay.io/app:v1");
            c.kind = ClaimKind::Atomic;
            c
        });
        // cosign writes "optional": null
        let p = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1:5000/bb"}},"image":{{"docker-manifest-digest":"{D1}"}},"type":"cosign container image signature"}},"optional":null}}"#
        );
        let c = parse(p.as_bytes()).unwrap();
        assert_eq!(c.kind, ClaimKind::Cosign);
        assert_eq!(c.docker_reference, "127.0.0.1:5000/bb");
        // optional may be absent, and its content is not looked at
        let p = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"a.io/b:c"}},"image":{{"docker-manifest-digest":"{D1}"}},"type":"atomic container signature"}}}}"#
        );
        parse(p.as_bytes()).unwrap();
        let p = payload("atomic container signature", D1, "a.io/b:c")
            .replace(r#""creator":"test""#, r#""anything":[1,{"x":2}]"#);
        parse(p.as_bytes()).unwrap();
    }

    #[test]
    fn refuses_malformed_payloads() {
        let good = payload("atomic container signature", D1, "quay.io/app:v1");
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "not valid JSON"),
            ("[]".into(), "not a JSON object"),
            (
                good.replace("atomic container", "other"),
                "unknown critical.type",
            ),
            (good.replace(D1, "sha256:12"), "docker-manifest-digest"),
            (
                good.replace("quay.io/app:v1", "Bad Ref"),
                "docker-reference",
            ),
            (
                good.replace("quay.io/app:v1", "docker://q.io/a:1"),
                "docker-reference",
            ),
            (
                good.replace(r#""type":"#, r#""extra":1,"type":"#),
                "critical: unknown field \"extra\"",
            ),
            (
                good.replace(r#","type":"atomic container signature""#, ""),
                "critical: missing field \"type\"",
            ),
            (
                good.replace(r#"{"critical""#, r#"{"x":1,"critical""#),
                "unknown field \"x\"",
            ),
            (
                good.replace(
                    r#""docker-manifest-digest""#,
                    r#""x":1,"docker-manifest-digest""#,
                ),
                "critical.image: unknown field",
            ),
            (
                good.replace(r#""docker-reference""#, r#""x":1,"docker-reference""#),
                "critical.identity: unknown field",
            ),
            (
                good.replace(r#""type":"#, r#""type":"x","type":"#),
                "duplicate field \"type\"",
            ),
            (
                good.replace(
                    r#""optional":{"creator":"test","timestamp":1}"#,
                    r#""optional":3"#,
                ),
                "\"optional\" is not an object",
            ),
            (
                good.replace(r#""identity":{"#, r#""identity":[{"#)
                    .replace(r#"},"image""#, r#"}],"image""#),
                "not an object",
            ),
            (format!("{good} x"), "not valid JSON"),
            ("[".repeat(10_000), "not valid JSON"),
        ];
        for (p, want) in cases {
            let e = parse(p.as_bytes()).unwrap_err();
            assert!(e.contains(want), "{p:.80}: {e}");
        }
        let big = vec![b' '; MAX_PAYLOAD + 1];
        assert!(parse(&big).unwrap_err().contains("larger than the limit"));
    }

    #[test]
    fn digest_must_be_the_fetched_manifests() {
        let c = claim("quay.io/app:v1");
        let mut s = subject("quay.io/app:v1");
        check(&c, &s, &SignedIdentity::MatchExact).unwrap();
        s.manifest_digest = Some(D2.into());
        let e = check(&c, &s, &SignedIdentity::MatchExact).unwrap_err();
        assert!(e.contains("signature is for another image (digest"), "{e}");
        s.manifest_digest = None;
        assert!(check(&c, &s, &SignedIdentity::MatchExact).is_err());
    }

    #[test]
    fn identity_rules() {
        use SignedIdentity::*;
        let dig = format!("quay.io/ns/app@{D1}");
        let exact_ref = |r: &str| ExactReference {
            docker_reference: r.into(),
        };
        let exact_repo = |r: &str| ExactRepository {
            docker_repository: r.into(),
        };
        let remap_dig = format!("mirror:5000/vendor/app@{D1}");
        let remap = RemapIdentity {
            prefix: "mirror:5000/vendor".into(),
            signed_prefix: "vendor.example.com".into(),
        };
        // (rule, asked for, signed, ok)
        let cases: Vec<(SignedIdentity, &str, &str, bool)> = vec![
            (MatchExact, "quay.io/ns/app:v1", "quay.io/ns/app:v1", true),
            (MatchExact, "quay.io/ns/app:v1", "quay.io/ns/app:v2", false),
            (
                MatchExact,
                "quay.io/ns/app:v1",
                "quay.io/ns/other:v1",
                false,
            ),
            (MatchExact, &dig, &dig, true),
            (MatchExact, &dig, "quay.io/ns/app:v1", false),
            (MatchExact, "quay.io/ns/app:latest", "quay.io/ns/app", false),
            // docker.io/library folding
            (
                MatchExact,
                "docker.io/library/busybox:latest",
                "busybox:latest",
                true,
            ),
            (
                MatchExact,
                "docker.io/library/busybox:1",
                "index.docker.io/busybox:1",
                true,
            ),
            (
                MatchRepoDigestOrExact,
                "quay.io/ns/app:v1",
                "quay.io/ns/app:v1",
                true,
            ),
            (
                MatchRepoDigestOrExact,
                "quay.io/ns/app:v1",
                "quay.io/ns/app:v2",
                false,
            ),
            (MatchRepoDigestOrExact, &dig, "quay.io/ns/app:v9", true),
            (MatchRepoDigestOrExact, &dig, "quay.io/ns/app", false),
            (MatchRepoDigestOrExact, &dig, "quay.io/ns/other:v9", false),
            (
                MatchRepository,
                "quay.io/ns/app:v1",
                "quay.io/ns/app:v2",
                true,
            ),
            (MatchRepository, "quay.io/ns/app:v1", "quay.io/ns/app", true),
            (
                MatchRepository,
                "quay.io/ns/app:v1",
                "quay.io/ns/app2:v1",
                false,
            ),
            (exact_ref("q.io/a:1"), "quay.io/ns/app:v1", "q.io/a:1", true),
            (
                exact_ref("q.io/a:1"),
                "quay.io/ns/app:v1",
                "q.io/a:2",
                false,
            ),
            (
                exact_ref("q.io/a:1"),
                "quay.io/ns/app:v1",
                "quay.io/ns/app:v1",
                false,
            ),
            (exact_repo("q.io/a"), "quay.io/ns/app:v1", "q.io/a:7", true),
            (exact_repo("q.io/a"), "quay.io/ns/app:v1", "q.io/b:7", false),
            (
                remap.clone(),
                "mirror:5000/vendor/app:v1",
                "vendor.example.com/app:v1",
                true,
            ),
            (
                remap.clone(),
                "mirror:5000/vendor/app:v1",
                "vendor.example.com/app:v2",
                false,
            ),
            (
                remap.clone(),
                "mirror:5000/vendor/app:v1",
                "mirror:5000/vendor/app:v1",
                false,
            ),
            (
                RemapIdentity {
                    prefix: "mirror:5000/vendor/app".into(),
                    signed_prefix: "vendor.example.com/app".into(),
                },
                "mirror:5000/vendor/app:v1",
                "vendor.example.com/app:v1",
                true,
            ),
            (
                remap.clone(),
                &remap_dig,
                "vendor.example.com/app:any",
                true,
            ),
            (
                remap.clone(),
                &remap_dig,
                "mirror:5000/vendor/app:any",
                false,
            ),
            // a name outside the prefix is compared as it is
            (remap.clone(), "other.io/app:v1", "other.io/app:v1", true),
            (
                remap.clone(),
                "mirror:5000/vendorx/app:v1",
                "vendor.example.com/x/app:v1",
                false,
            ),
        ];
        for (rule, asked, signed, ok) in cases {
            let got = check(&claim(signed), &subject(asked), &rule);
            assert_eq!(got.is_ok(), ok, "{rule:?} {asked} {signed}: {got:?}");
            if let Err(e) = got {
                assert!(e.contains("does not match"), "{e}");
                assert!(e.contains(rule.type_str()), "{e}");
            }
        }
    }

    #[test]
    fn a_good_payload_round_trips_through_parse_and_check() {
        let p = payload("atomic container signature", D1, "quay.io/ns/app:v1");
        let c = parse(p.as_bytes()).unwrap();
        check(
            &c,
            &subject("quay.io/ns/app:v1"),
            &SignedIdentity::default(),
        )
        .unwrap();
        // tampered: another digest or another reference in the same payload
        let c = parse(p.replace(D1, D2).as_bytes()).unwrap();
        assert!(check(
            &c,
            &subject("quay.io/ns/app:v1"),
            &SignedIdentity::default()
        )
        .is_err());
        let c = parse(p.replace(":v1", ":v2").as_bytes()).unwrap();
        assert!(check(
            &c,
            &subject("quay.io/ns/app:v1"),
            &SignedIdentity::default()
        )
        .is_err());
    }

    #[test]
    fn a_subject_without_a_registry_name() {
        let s = Subject {
            transport: Transport::Oci,
            name: "/var/lib/images/app".into(),
            manifest_digest: Some(D1.into()),
        };
        let c = claim("q.io/a:1");
        assert!(check(&c, &s, &SignedIdentity::MatchExact)
            .unwrap_err()
            .contains("no registry reference"));
        let rule = SignedIdentity::ExactReference {
            docker_reference: "q.io/a:1".into(),
        };
        check(&c, &s, &rule).unwrap();
    }

    #[test]
    fn remap_prefixes() {
        for ok in [
            "mirror:5000",
            "quay.io",
            "localhost",
            "quay.io/ns",
            "mirror:5000/a/b",
            "docker.io/library/busybox",
        ] {
            assert!(valid_remap_prefix(ok), "{ok}");
        }
        for bad in [
            "",
            "busybox",
            "quay.io/app:v1",
            "quay.io/Ns",
            "*.quay.io",
            "docker.io/busybox",
            "docker.io/library",
            "quay.io/",
        ] {
            assert!(!valid_remap_prefix(bad), "{bad}");
        }
        assert!(ref_matches_prefix("quay.io/a", "quay.io"));
        assert!(!ref_matches_prefix("quay.io:5000/a", "quay.io"));
        assert!(ref_matches_prefix("quay.io/a", "quay.io/a"));
        assert!(ref_matches_prefix("quay.io/a/b", "quay.io/a"));
        assert!(!ref_matches_prefix("quay.io/ab", "quay.io/a"));
    }

    #[test]
    fn mangled_payloads_do_not_panic() {
        let good = payload("cosign container image signature", D1, "quay.io/app:v1");
        let good = good.as_bytes();
        for i in 0..good.len() {
            let _ = parse(&good[..i]);
            for b in [b'"', b'{', b'}', b'[', b':', b',', b'\\', 0xff, b'0'] {
                let mut m = good.to_vec();
                m[i] = b;
                if let Ok(c) = parse(&m) {
                    let _ = check(&c, &subject("quay.io/app:v1"), &SignedIdentity::default());
                }
            }
        }
    }

    #[test]
    fn strict_json_keeps_values() {
        let v = strict_json(br#"{"a":[1,-2,3.5,true,null,"s"],"b":{}}"#).unwrap();
        assert_eq!(v, serde_json::json!({"a":[1,-2,3.5,true,null,"s"],"b":{}}));
        assert!(strict_json(br#"{"a":{"b":1,"b":2}}"#).is_err());
    }
}
