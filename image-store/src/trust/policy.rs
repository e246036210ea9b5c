//! `policy.json`: which images need which signatures, in the format of containers-policy.json(5),
//! read from rkt's config roots, with the keys of `rkt trust` as implied requirements.
//!
//! ```json
//! {"default": [{"type": "reject"}],
//!  "transports": {"docker": {"quay.io/coreos": [{"type": "signedBy", "keyType": "GPGKeys",
//!                                                "keyPath": "/etc/pki/coreos.gpg"}],
//!                            "*.internal.example": [{"type": "insecureAcceptAnything"}]},
//!                 "appc": {"coreos.com/etcd": [{"type": "rktTrustedKeys"}]}}}
//! ```
//!
//! Parsing is strict as containers' is: unknown or duplicated fields, unknown requirement
//! types and invalid scopes refuse the whole file. Requirements of one scope must all be
//! satisfied; the most specific scope that the image's name matches is the one used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::payload::{is_qualified_host, strict_json, valid_remap_prefix, DockerRef, Strict};
use super::Transport;
use crate::error::{io_err, Error, Result};
use crate::reference::{validate_host, Reference};

/// The largest `policy.json` read.
pub const MAX_POLICY_SIZE: u64 = 1 << 20;

/// A whole policy: the global default and the per-transport scopes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Requirements of images no scope matches.
    pub default: Vec<Requirement>,
    /// Transport name (`docker`, `appc`, `oci`, …) → scope → requirements; the scope `""` is
    /// the transport's default.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub transports: BTreeMap<String, BTreeMap<String, Vec<Requirement>>>,
}

/// One requirement; all of a scope's must be satisfied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
pub enum Requirement {
    /// `{"type":"insecureAcceptAnything"}`: no signature needed.
    #[serde(rename = "insecureAcceptAnything")]
    InsecureAcceptAnything,
    /// `{"type":"reject"}`: never.
    #[serde(rename = "reject")]
    Reject,
    /// `{"type":"signedBy", "keyType":"GPGKeys", "keyPath"|"keyPaths"|"keyData": …}`: an OpenPGP
    /// signature by one of these keys (exactly one of the three is set).
    #[serde(rename = "signedBy", rename_all = "camelCase")]
    SignedBy {
        /// Always `GPGKeys`.
        key_type: String,
        /// One keyring file.
        #[serde(skip_serializing_if = "Option::is_none")]
        key_path: Option<PathBuf>,
        /// Several keyring files.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        key_paths: Vec<PathBuf>,
        /// A keyring, base64.
        #[serde(skip_serializing_if = "Option::is_none")]
        key_data: Option<String>,
        /// What the signed reference must be.
        signed_identity: SignedIdentity,
    },
    /// `{"type":"sigstoreSigned", "keyPath"|"keyData": …}`: a cosign signature by this public
    /// key (exactly one of the two is set; keyless Fulcio/Rekor verification is not supported).
    #[serde(rename = "sigstoreSigned", rename_all = "camelCase")]
    SigstoreSigned {
        /// A PEM public key file.
        #[serde(skip_serializing_if = "Option::is_none")]
        key_path: Option<PathBuf>,
        /// A PEM public key, base64.
        #[serde(skip_serializing_if = "Option::is_none")]
        key_data: Option<String>,
        /// What the signed reference must be.
        signed_identity: SignedIdentity,
    },
    /// `{"type":"rktTrustedKeys"}`: an OpenPGP signature by a key `rkt trust` stored for a prefix
    /// of the image's name, or by a root key.
    #[serde(rename = "rktTrustedKeys")]
    RktTrusted,
}

/// How the reference a signature names must relate to the image's (`signedIdentity`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SignedIdentity {
    /// The same repository and the same tag or digest.
    MatchExact,
    /// Asked for by digest: the same repository; otherwise as `matchExact`. The default.
    #[default]
    MatchRepoDigestOrExact,
    /// The same repository.
    MatchRepository,
    /// The signed reference is this one (with a tag or digest).
    #[serde(rename_all = "camelCase")]
    ExactReference {
        /// The reference.
        docker_reference: String,
    },
    /// The signed reference is in this repository.
    #[serde(rename_all = "camelCase")]
    ExactRepository {
        /// The repository.
        docker_repository: String,
    },
    /// Names starting with `prefix` are matched as if they started with `signed_prefix`
    /// (a mirror of signed images), then as `matchRepoDigestOrExact`.
    #[serde(rename_all = "camelCase")]
    RemapIdentity {
        /// The local prefix (`host[:port]` or a repository namespace).
        prefix: String,
        /// The prefix the signatures were made for.
        signed_prefix: String,
    },
}

impl SignedIdentity {
    /// Its `type` in the policy.
    pub fn type_str(&self) -> &'static str {
        match self {
            SignedIdentity::MatchExact => "matchExact",
            SignedIdentity::MatchRepoDigestOrExact => "matchRepoDigestOrExact",
            SignedIdentity::MatchRepository => "matchRepository",
            SignedIdentity::ExactReference { .. } => "exactReference",
            SignedIdentity::ExactRepository { .. } => "exactRepository",
            SignedIdentity::RemapIdentity { .. } => "remapIdentity",
        }
    }
}

impl<'de> Deserialize<'de> for Policy {
    /// The same strict checks as [`Policy::parse`].
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = Strict::deserialize(d)?.0;
        policy(&v).map_err(serde::de::Error::custom)
    }
}

impl Policy {
    /// Parse a `policy.json`; `origin` names it in errors.
    pub fn parse(bytes: &[u8], origin: &Path) -> Result<Policy> {
        let invalid = |reason: String| Error::Invalid {
            what: format!("policy {}", origin.display()),
            reason,
        };
        if bytes.len() as u64 > MAX_POLICY_SIZE {
            return Err(invalid(format!(
                "larger than the limit of {MAX_POLICY_SIZE} bytes"
            )));
        }
        let v = strict_json(bytes).map_err(invalid)?;
        policy(&v).map_err(invalid)
    }

    /// `<root>/policy.json` of the highest-precedence root that has one (`config_dirs` are in
    /// increasing precedence); `None` when none has one.
    pub fn load(config_dirs: &[PathBuf]) -> Result<Option<(PathBuf, Policy)>> {
        for dir in config_dirs.iter().rev() {
            let path = dir.join("policy.json");
            let bytes = match crate::file::read_capped(&path, MAX_POLICY_SIZE) {
                Ok(b) => b,
                Err(e) if e.is_not_found() => continue,
                Err(crate::file::CappedError::TooLarge(_)) => {
                    // the refusal `parse` gives for an oversized policy
                    return Err(Error::Invalid {
                        what: format!("policy {}", path.display()),
                        reason: format!("larger than the limit of {MAX_POLICY_SIZE} bytes"),
                    });
                }
                Err(e) => return Err(io_err("read", &path)(e.into_io())),
            };
            let policy = Policy::parse(&bytes, &path)?;
            return Ok(Some((path, policy)));
        }
        Ok(None)
    }

    /// The policy in force: the loaded one, or without a `policy.json` a signature by a key of
    /// `rkt trust` for everything (rkt's behaviour); and each prefix `rkt trust` has keys for is
    /// an `appc` and a `docker` scope requiring them, unless the policy names that scope.
    pub fn effective(loaded: Option<Policy>, trusted_prefixes: &[String]) -> Policy {
        let mut p = loaded.unwrap_or_else(|| Policy {
            default: vec![Requirement::RktTrusted],
            transports: BTreeMap::new(),
        });
        for prefix in trusted_prefixes.iter().filter(|p| !p.is_empty()) {
            for t in [Transport::Appc, Transport::Docker] {
                p.transports
                    .entry(t.as_str().to_string())
                    .or_default()
                    .entry(prefix.clone())
                    .or_insert_with(|| vec![Requirement::RktTrusted]);
            }
        }
        p
    }

    /// The requirements for an image of `transport` named `name` (canonical, see
    /// [`super::Subject::name`]), and the scope that chose them: `docker:HOST/REPO`,
    /// `docker (transport default)` or `default`. The most specific matching scope wins.
    pub fn requirements(&self, transport: Transport, name: &str) -> (String, &[Requirement]) {
        let t = transport.as_str();
        if let Some(scopes) = self.transports.get(t) {
            for scope in candidate_scopes(transport, name) {
                if let Some(r) = scopes.get(&scope) {
                    return (format!("{t}:{scope}"), r);
                }
            }
            if let Some(r) = scopes.get("") {
                return (format!("{t} (transport default)"), r);
            }
        }
        ("default".to_string(), &self.default)
    }
}

/// The scopes a name is in, most specific first (the transport default `""` excluded).
fn candidate_scopes(transport: Transport, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    match transport {
        Transport::Docker => {
            let Ok(r) = Reference::parse(name) else {
                return out;
            };
            out.push(r.to_string());
            if let (Some(tag), Some(digest)) = (&r.tag, &r.digest) {
                out.push(format!("{}@{digest}", r.name()));
                out.push(format!("{}:{tag}", r.name()));
            }
            let mut n = r.name();
            loop {
                out.push(n.clone());
                match n.rfind('/') {
                    Some(i) => n.truncate(i),
                    None => break,
                }
            }
            // sub-domain wildcards of the host without its port: a.b.c → *.b.c, *.c
            let host = match n.rsplit_once(':') {
                Some((h, _)) if !n.starts_with('[') => h.to_string(),
                _ => n,
            };
            let mut rest = host.as_str();
            while let Some((_, tail)) = rest.split_once('.') {
                out.push(format!("*.{tail}"));
                rest = tail;
            }
        }
        Transport::Appc => {
            out.push(name.to_string());
            // a version label (`name:v1`) off, then path components
            let mut n = name.split(':').next().unwrap_or(name).to_string();
            while !n.is_empty() {
                if out.last() != Some(&n) {
                    out.push(n.clone());
                }
                match n.rfind('/') {
                    Some(i) => n.truncate(i),
                    None => break,
                }
            }
        }
        Transport::Oci | Transport::OciArchive | Transport::DockerArchive => {
            let mut n = name.trim_end_matches('/').to_string();
            if !n.starts_with('/') {
                return out;
            }
            // the path, then its parents; `/` is the transport default's business
            while !n.is_empty() {
                out.push(n.clone());
                match n.rfind('/') {
                    Some(i) => n.truncate(i),
                    None => break,
                }
            }
        }
    }
    out
}

type Fields<'a> = &'a Map<String, Value>;

fn policy(v: &Value) -> std::result::Result<Policy, String> {
    let top = v.as_object().ok_or("not a JSON object")?;
    only_fields(top, "policy", &["default", "transports"])?;
    let default = requirements(
        top.get("default")
            .ok_or("\"default\" is missing (use [{\"type\":\"reject\"}] to refuse by default)")?,
        "default",
    )?;
    let mut transports = BTreeMap::new();
    if let Some(t) = top.get("transports") {
        let t = t.as_object().ok_or("\"transports\" is not an object")?;
        for (transport, scopes) in t {
            let loc = format!("transports.{transport}");
            let scopes = scopes
                .as_object()
                .ok_or_else(|| format!("{loc}: not an object"))?;
            let mut map = BTreeMap::new();
            for (scope, reqs) in scopes {
                let loc = format!("{loc}[{scope:?}]");
                validate_scope(transport, scope).map_err(|e| format!("{loc}: {e}"))?;
                map.insert(scope.clone(), requirements(reqs, &loc)?);
            }
            transports.insert(transport.clone(), map);
        }
    }
    Ok(Policy {
        default,
        transports,
    })
}

fn requirements(v: &Value, loc: &str) -> std::result::Result<Vec<Requirement>, String> {
    let list = v
        .as_array()
        .ok_or_else(|| format!("{loc}: not a list of requirements"))?;
    if list.is_empty() {
        return Err(format!("{loc}: the list of requirements is empty"));
    }
    list.iter()
        .enumerate()
        .map(|(i, r)| requirement(r, &format!("{loc}[{i}]")))
        .collect()
}

fn requirement(v: &Value, loc: &str) -> std::result::Result<Requirement, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{loc}: a requirement must be an object"))?;
    let ty = str_field(obj, "type", loc)?.ok_or_else(|| format!("{loc}: \"type\" is missing"))?;
    let outer = loc;
    let loc = &format!("{loc} ({ty})");
    match ty {
        "insecureAcceptAnything" => {
            only_fields(obj, loc, &["type"])?;
            Ok(Requirement::InsecureAcceptAnything)
        }
        "reject" => {
            only_fields(obj, loc, &["type"])?;
            Ok(Requirement::Reject)
        }
        "rktTrustedKeys" => {
            only_fields(obj, loc, &["type"])?;
            Ok(Requirement::RktTrusted)
        }
        "signedBy" => {
            only_fields(
                obj,
                loc,
                &[
                    "type",
                    "keyType",
                    "keyPath",
                    "keyPaths",
                    "keyData",
                    "signedIdentity",
                ],
            )?;
            let key_type = str_field(obj, "keyType", loc)?
                .ok_or_else(|| format!("{loc}: \"keyType\" is missing"))?;
            if key_type != "GPGKeys" {
                return Err(format!(
                    "{loc}: keyType {key_type:?} is not supported (only \"GPGKeys\")"
                ));
            }
            let key_path = path_field(obj, "keyPath", loc)?;
            let key_paths = match obj.get("keyPaths") {
                None => Vec::new(),
                Some(v) => {
                    let list = v
                        .as_array()
                        .filter(|l| !l.is_empty())
                        .ok_or_else(|| format!("{loc}: \"keyPaths\" is not a list of paths"))?;
                    list.iter()
                        .map(|p| match p.as_str() {
                            Some(s) if !s.is_empty() => Ok(PathBuf::from(s)),
                            _ => Err(format!("{loc}: \"keyPaths\" is not a list of paths")),
                        })
                        .collect::<std::result::Result<_, _>>()?
                }
            };
            let key_data = data_field(obj, "keyData", loc)?;
            let given = [
                key_path.is_some(),
                obj.contains_key("keyPaths"),
                key_data.is_some(),
            ];
            if given.iter().filter(|&&g| g).count() != 1 {
                return Err(format!(
                    "{loc}: exactly one of \"keyPath\", \"keyPaths\" and \"keyData\" must be given"
                ));
            }
            Ok(Requirement::SignedBy {
                key_type: key_type.to_string(),
                key_path,
                key_paths,
                key_data,
                signed_identity: signed_identity(obj, loc)?,
            })
        }
        "sigstoreSigned" => {
            for keyless in [
                "fulcio",
                "rekorPublicKeyPath",
                "rekorPublicKeyPaths",
                "rekorPublicKeyData",
                "rekorPublicKeyDatas",
                "pki",
            ] {
                if obj.contains_key(keyless) {
                    return Err(format!(
                        "{loc}: {keyless:?} is not supported: only key-based cosign signatures \
                         (\"keyPath\" or \"keyData\") can be verified"
                    ));
                }
            }
            for several in ["keyPaths", "keyDatas"] {
                if obj.contains_key(several) {
                    return Err(format!(
                        "{loc}: {several:?} is not supported: give one key in \"keyPath\" or \
                         \"keyData\""
                    ));
                }
            }
            only_fields(obj, loc, &["type", "keyPath", "keyData", "signedIdentity"])?;
            let key_path = path_field(obj, "keyPath", loc)?;
            let key_data = data_field(obj, "keyData", loc)?;
            if key_path.is_some() == key_data.is_some() {
                return Err(format!(
                    "{loc}: exactly one of \"keyPath\" and \"keyData\" must be given"
                ));
            }
            Ok(Requirement::SigstoreSigned {
                key_path,
                key_data,
                signed_identity: signed_identity(obj, loc)?,
            })
        }
        other => Err(format!("{outer}: unknown requirement type {other:?}")),
    }
}

fn signed_identity(obj: Fields, loc: &str) -> std::result::Result<SignedIdentity, String> {
    let Some(v) = obj.get("signedIdentity") else {
        return Ok(SignedIdentity::default());
    };
    let loc = &format!("{loc}.signedIdentity");
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{loc}: not an object"))?;
    let ty = str_field(obj, "type", loc)?.ok_or_else(|| format!("{loc}: \"type\" is missing"))?;
    let required = |name: &str| -> std::result::Result<String, String> {
        str_field(obj, name, loc)?
            .map(str::to_string)
            .ok_or_else(|| format!("{loc}: \"{name}\" is missing"))
    };
    let id = match ty {
        "matchExact" | "matchRepoDigestOrExact" | "matchRepository" => {
            only_fields(obj, loc, &["type"])?;
            match ty {
                "matchExact" => SignedIdentity::MatchExact,
                "matchRepository" => SignedIdentity::MatchRepository,
                _ => SignedIdentity::MatchRepoDigestOrExact,
            }
        }
        "exactReference" => {
            only_fields(obj, loc, &["type", "dockerReference"])?;
            let r = required("dockerReference")?;
            match DockerRef::parse(&r) {
                Ok(d) if !d.name_only => {}
                Ok(_) => {
                    return Err(format!(
                        "{loc}: dockerReference {r:?} has neither a tag nor a digest"
                    ))
                }
                Err(e) => return Err(format!("{loc}: dockerReference: {e}")),
            }
            SignedIdentity::ExactReference {
                docker_reference: r,
            }
        }
        "exactRepository" => {
            only_fields(obj, loc, &["type", "dockerRepository"])?;
            let r = required("dockerRepository")?;
            DockerRef::parse(&r).map_err(|e| format!("{loc}: dockerRepository: {e}"))?;
            SignedIdentity::ExactRepository {
                docker_repository: r,
            }
        }
        "remapIdentity" => {
            only_fields(obj, loc, &["type", "prefix", "signedPrefix"])?;
            let prefix = required("prefix")?;
            let signed_prefix = required("signedPrefix")?;
            for (name, p) in [("prefix", &prefix), ("signedPrefix", &signed_prefix)] {
                if !valid_remap_prefix(p) {
                    return Err(format!(
                        "{loc}: {name} {p:?} is not a registry host or a fully qualified \
                         repository namespace"
                    ));
                }
            }
            SignedIdentity::RemapIdentity {
                prefix,
                signed_prefix,
            }
        }
        other => return Err(format!("{loc}: unknown signedIdentity type {other:?}")),
    };
    Ok(id)
}

fn only_fields(obj: Fields, loc: &str, allowed: &[&str]) -> std::result::Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("{loc}: unknown field {k:?}")),
        None => Ok(()),
    }
}

fn str_field<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    loc: &str,
) -> std::result::Result<Option<&'a str>, String> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{loc}: \"{name}\" is not a string")),
    }
}

fn path_field(obj: Fields, name: &str, loc: &str) -> std::result::Result<Option<PathBuf>, String> {
    match str_field(obj, name, loc)? {
        Some("") => Err(format!("{loc}: \"{name}\" is empty")),
        s => Ok(s.map(PathBuf::from)),
    }
}

fn data_field(obj: Fields, name: &str, loc: &str) -> std::result::Result<Option<String>, String> {
    let Some(s) = str_field(obj, name, loc)? else {
        return Ok(None);
    };
    match base64::engine::general_purpose::STANDARD.decode(s) {
        Ok(d) if !d.is_empty() => Ok(Some(s.to_string())),
        Ok(_) => Err(format!("{loc}: \"{name}\" is empty")),
        Err(e) => Err(format!("{loc}: \"{name}\" is not valid base64: {e}")),
    }
}

/// Scopes the transports this rkt knows define; others' are kept unchecked (containers accepts
/// transports it does not know, they just never match).
fn validate_scope(transport: &str, scope: &str) -> std::result::Result<(), String> {
    if scope.is_empty() {
        return Ok(());
    }
    match transport {
        "docker" => {
            if let Some(domain) = scope.strip_prefix("*.") {
                if domain.contains('*') || domain.contains(':') || domain.contains('/') {
                    return Err("a wildcard scope is \"*.\" and a domain, no port or path".into());
                }
                return validate_host(domain).map_err(|e| format!("invalid scope: {e}"));
            }
            if scope.contains('*') {
                return Err("\"*\" is allowed only as a leading \"*.\" of a domain".into());
            }
            let first = scope.split('/').next().unwrap_or(scope);
            if !is_qualified_host(first) || scope.contains("://") {
                return Err(format!(
                    "a docker scope starts with the registry host (e.g. docker.io/library/busybox, \
                     not busybox): {scope:?}"
                ));
            }
            if !scope.contains('/') {
                return validate_host(scope).map_err(|e| format!("invalid scope: {e}"));
            }
            if scope.ends_with('/') {
                return Err("a docker scope does not end with \"/\"".into());
            }
            Reference::parse(scope)
                .map(|_| ())
                .map_err(|e| format!("invalid scope: {e}"))
        }
        "appc" => {
            let ok = scope
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~/:".contains(&b))
                && !scope.starts_with('/')
                && !scope.ends_with('/')
                && !scope.contains("//");
            if ok {
                Ok(())
            } else {
                Err(
                    "an appc scope is an image name or a prefix of one (lower-case, \
                     path components)"
                        .into(),
                )
            }
        }
        "oci" | "oci-archive" | "docker-archive" => {
            if !scope.starts_with('/') {
                return Err("a path scope must be absolute".into());
            }
            if scope == "/" {
                return Err("\"/\" is not a scope: use the transport default \"\"".into());
            }
            let clean = !scope.ends_with('/')
                && scope[1..]
                    .split('/')
                    .all(|c| !c.is_empty() && c != "." && c != "..");
            if clean {
                Ok(())
            } else {
                Err(
                    "a path scope must be clean (no \"//\", \".\", \"..\" or trailing \"/\")"
                        .into(),
                )
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn parse(s: &str) -> Result<Policy> {
        Policy::parse(s.as_bytes(), Path::new("/etc/rkt/policy.json"))
    }

    fn err(s: &str) -> String {
        match parse(s) {
            Ok(p) => panic!("{s} parsed: {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// The example of containers-policy.json(5), with the `atomic` transport left out and an
    /// unknown transport (`dir`) kept.
    const MAN_EXAMPLE: &str = r#"{
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {
                "private-registry.example.com/allowed": [{"type": "insecureAcceptAnything"}],
                "docker.io/openshift": [{"type": "insecureAcceptAnything"}],
                "registry.access.redhat.com": [
                    {"type": "signedBy", "keyType": "GPGKeys",
                     "keyPath": "/etc/pki/rpm-gpg/RPM-GPG-KEY-redhat-release"}
                ],
                "registry.redhat.io/redhat/redhat-openjdk-18": [
                    {"type": "signedBy", "keyType": "GPGKeys",
                     "keyPath": "/etc/pki/rpm-gpg/RPM-GPG-KEY-redhat-release",
                     "signedIdentity": {"type": "matchExact"}}
                ],
                "private-mirror:5000/vendor-mirror": [
                    {"type": "signedBy", "keyType": "GPGKeys",
                     "keyPath": "/keys/vendor-pubkey.gpg",
                     "signedIdentity": {"type": "remapIdentity",
                                        "prefix": "private-mirror:5000/vendor-mirror",
                                        "signedPrefix": "vendor.example.com"}}
                ],
                "*.access.redhat.com": [
                    {"type": "signedBy", "keyType": "GPGKeys",
                     "keyPaths": ["/etc/pki/rpm-gpg/RPM-GPG-KEY-redhat-release",
                                  "/etc/pki/rpm-gpg/RPM-GPG-KEY-redhat-beta"]}
                ],
                "*.redhat.com": [
                    {"type": "signedBy", "keyType": "GPGKeys", "keyData": "a2V5cmluZw=="}
                ],
                "*.com": [{"type": "reject"}],
                "bogus-signer.example.com/acme-malicious": [{"type": "reject"}],
                "private-registry.example.com/acme-signed": [
                    {"type": "sigstoreSigned", "keyPath": "/path/to/sigstore-pubkey.pub"}
                ],
                "private-registry.example.com/acme-exact": [
                    {"type": "sigstoreSigned", "keyData": "a2V5",
                     "signedIdentity": {"type": "exactReference",
                                        "dockerReference": "vendor.example.com/acme:v1"}}
                ],
                "private-registry.example.com/acme-repo": [
                    {"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k",
                     "signedIdentity": {"type": "exactRepository",
                                        "dockerRepository": "vendor.example.com/acme"}},
                    {"type": "sigstoreSigned", "keyPath": "/c.pub",
                     "signedIdentity": {"type": "matchRepository"}}
                ],
                "": [{"type": "insecureAcceptAnything"}]
            },
            "dir": {"": [{"type": "insecureAcceptAnything"}]},
            "appc": {"coreos.com/etcd": [{"type": "rktTrustedKeys"}]},
            "oci": {"/srv/images": [{"type": "insecureAcceptAnything"}]}
        }
    }"#;

    #[test]
    fn parses_the_man_page_example() {
        let p = parse(MAN_EXAMPLE).unwrap();
        assert_eq!(p.default, vec![Requirement::Reject]);
        let docker = &p.transports["docker"];
        assert_eq!(
            docker["registry.redhat.io/redhat/redhat-openjdk-18"],
            vec![Requirement::SignedBy {
                key_type: "GPGKeys".into(),
                key_path: Some("/etc/pki/rpm-gpg/RPM-GPG-KEY-redhat-release".into()),
                key_paths: vec![],
                key_data: None,
                signed_identity: SignedIdentity::MatchExact,
            }]
        );
        assert_eq!(
            docker["private-mirror:5000/vendor-mirror"][0],
            Requirement::SignedBy {
                key_type: "GPGKeys".into(),
                key_path: Some("/keys/vendor-pubkey.gpg".into()),
                key_paths: vec![],
                key_data: None,
                signed_identity: SignedIdentity::RemapIdentity {
                    prefix: "private-mirror:5000/vendor-mirror".into(),
                    signed_prefix: "vendor.example.com".into(),
                },
            }
        );
        let Requirement::SignedBy { key_paths, .. } = &docker["*.access.redhat.com"][0] else {
            panic!()
        };
        assert_eq!(key_paths.len(), 2);
        assert_eq!(
            docker["private-registry.example.com/acme-signed"][0],
            Requirement::SigstoreSigned {
                key_path: Some("/path/to/sigstore-pubkey.pub".into()),
                key_data: None,
                signed_identity: SignedIdentity::MatchRepoDigestOrExact,
            }
        );
        assert_eq!(docker["private-registry.example.com/acme-repo"].len(), 2);
        assert_eq!(
            p.transports["appc"]["coreos.com/etcd"],
            vec![Requirement::RktTrusted]
        );
        assert!(p.transports.contains_key("dir"));
    }

    #[test]
    fn serializes_back_to_the_same_policy() {
        let p = parse(MAN_EXAMPLE).unwrap();
        let json = serde_json::to_vec(&p).unwrap();
        assert_eq!(parse(std::str::from_utf8(&json).unwrap()).unwrap(), p);
        let back: Policy = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, p);
        let text = String::from_utf8(json).unwrap();
        assert!(text.contains(r#"{"type":"rktTrustedKeys"}"#), "{text}");
        assert!(
            text.contains(r#""signedPrefix":"vendor.example.com""#),
            "{text}"
        );
        assert!(text.contains(r#""keyType":"GPGKeys""#), "{text}");
        // serde's Deserialize is as strict as parse
        assert!(serde_json::from_str::<Policy>(r#"{"default":[{"type":"x"}]}"#).is_err());
        assert!(serde_json::from_str::<Policy>(
            r#"{"default":[{"type":"reject"}],"default":[{"type":"reject"}]}"#
        )
        .unwrap_err()
        .to_string()
        .contains("duplicate field"));
    }

    #[test]
    fn scopes_of_the_docker_transport() {
        let p = parse(MAN_EXAMPLE).unwrap();
        let scope = |name: &str| p.requirements(Transport::Docker, name).0;
        let cases = [
            // a repository, and a namespace of docker.io
            (
                "private-registry.example.com/allowed:v1",
                "docker:private-registry.example.com/allowed",
            ),
            (
                "docker.io/openshift/origin:latest",
                "docker:docker.io/openshift",
            ),
            // a host, not the host's wildcard; and not a host that only starts alike
            (
                "registry.access.redhat.com/ubi8/ubi:8",
                "docker:registry.access.redhat.com",
            ),
            // the more specific repository wins over its host's wildcards
            (
                "registry.redhat.io/redhat/redhat-openjdk-18:1.0",
                "docker:registry.redhat.io/redhat/redhat-openjdk-18",
            ),
            // more labels: the more specific wildcard
            ("a.access.redhat.com/x:1", "docker:*.access.redhat.com"),
            ("x.y.access.redhat.com/x:1", "docker:*.access.redhat.com"),
            ("www.redhat.com/other:1", "docker:*.redhat.com"),
            ("registry.redhat.io/other:1", "docker (transport default)"),
            // *.redhat.com does not match redhat.com itself
            ("redhat.com/x:1", "docker:*.com"),
            // wildcards ignore the port
            ("a.redhat.com:8443/x:1", "docker:*.redhat.com"),
            (
                "private-mirror:5000/vendor-mirror/app:v1",
                "docker:private-mirror:5000/vendor-mirror",
            ),
            // no wildcard for a name without dots: the transport default
            ("localhost:5000/app:1", "docker (transport default)"),
            (
                "docker.io/library/busybox:latest",
                "docker (transport default)",
            ),
        ];
        for (name, want) in cases {
            assert_eq!(scope(name), want, "{name}");
        }
        // no transport default: the global default
        let p = parse(r#"{"default":[{"type":"reject"}],"transports":{"docker":{"a.io":[{"type":"reject"}]}}}"#).unwrap();
        assert_eq!(p.requirements(Transport::Docker, "b.io/x:1").0, "default");
        assert_eq!(p.requirements(Transport::Appc, "b.io/x").0, "default");
    }

    #[test]
    fn docker_tags_and_digests_are_the_most_specific_scopes() {
        let policy = format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{
                "127.0.0.1:5000/app:v1":[{{"type":"insecureAcceptAnything"}}],
                "127.0.0.1:5000/app@{D1}":[{{"type":"rktTrustedKeys"}}],
                "127.0.0.1:5000/app":[{{"type":"reject"}}],
                "127.0.0.1:5000":[{{"type":"reject"}}]}}}}}}"#
        );
        let p = parse(&policy).unwrap();
        let r = |n: &str| p.requirements(Transport::Docker, n);
        assert_eq!(
            r("127.0.0.1:5000/app:v1"),
            (
                "docker:127.0.0.1:5000/app:v1".to_string(),
                &[Requirement::InsecureAcceptAnything][..]
            )
        );
        assert_eq!(
            r(&format!("127.0.0.1:5000/app@{D1}")).0,
            format!("docker:127.0.0.1:5000/app@{D1}")
        );
        assert_eq!(
            r(&format!("127.0.0.1:5000/app:v1@{D1}")).0,
            format!("docker:127.0.0.1:5000/app@{D1}")
        );
        assert_eq!(r("127.0.0.1:5000/app:v2").0, "docker:127.0.0.1:5000/app");
        assert_eq!(r("127.0.0.1:5000/apple:v1").0, "docker:127.0.0.1:5000");
        assert_eq!(
            r("127.0.0.1:5000/app/sub:v1").0,
            "docker:127.0.0.1:5000/app"
        );
        assert_eq!(r("127.0.0.2:5000/app:v1").0, "default");
    }

    #[test]
    fn scopes_of_appc_and_paths() {
        let p = parse(
            r#"{"default":[{"type":"reject"}],"transports":{
                "appc":{"example.com/app":[{"type":"rktTrustedKeys"}],
                        "example.com":[{"type":"reject"}],
                        "example.com/app/sub:v2":[{"type":"insecureAcceptAnything"}]},
                "oci":{"/srv/images":[{"type":"insecureAcceptAnything"}],
                       "/srv/images/app":[{"type":"reject"}],
                       "":[{"type":"rktTrustedKeys"}]},
                "oci-archive":{"/tmp/a.tar":[{"type":"insecureAcceptAnything"}]}}}"#,
        )
        .unwrap();
        let appc = |n: &str| p.requirements(Transport::Appc, n).0;
        assert_eq!(appc("example.com/app"), "appc:example.com/app");
        assert_eq!(appc("example.com/app/sub"), "appc:example.com/app");
        assert_eq!(appc("example.com/app:v1"), "appc:example.com/app");
        assert_eq!(
            appc("example.com/app/sub:v2"),
            "appc:example.com/app/sub:v2"
        );
        assert_eq!(appc("example.com/apple"), "appc:example.com");
        assert_eq!(appc("other.com/app"), "default");
        let oci = |n: &str| p.requirements(Transport::Oci, n).0;
        assert_eq!(oci("/srv/images"), "oci:/srv/images");
        assert_eq!(oci("/srv/images/x"), "oci:/srv/images");
        assert_eq!(oci("/srv/images/app/"), "oci:/srv/images/app");
        assert_eq!(oci("/srv/images-2"), "oci (transport default)");
        assert_eq!(oci("relative"), "oci (transport default)");
        assert_eq!(
            p.requirements(Transport::OciArchive, "/tmp/a.tar").0,
            "oci-archive:/tmp/a.tar"
        );
        assert_eq!(
            p.requirements(Transport::OciArchive, "/tmp/b.tar").0,
            "default"
        );
        assert_eq!(
            p.requirements(Transport::DockerArchive, "/tmp/a.tar").0,
            "default"
        );
    }

    #[test]
    fn invalid_policies_name_the_entry() {
        let r = r#"[{"type":"reject"}]"#;
        let with_docker = |scope: &str, req: &str| {
            format!(r#"{{"default":{r},"transports":{{"docker":{{"{scope}":[{req}]}}}}}}"#)
        };
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "policy /etc/rkt/policy.json"),
            ("[]".into(), "not a JSON object"),
            ("{}".into(), "\"default\" is missing"),
            (
                r#"{"default":[]}"#.into(),
                "default: the list of requirements is empty",
            ),
            (
                format!(r#"{{"default":{r},"x":1}}"#),
                "policy: unknown field \"x\"",
            ),
            (
                format!(r#"{{"default":{r},"default":{r}}}"#),
                "duplicate field \"default\"",
            ),
            (
                r#"{"default":[{"type":"accept"}]}"#.into(),
                "default[0]: unknown requirement type \"accept\"",
            ),
            (
                r#"{"default":[{}]}"#.into(),
                "default[0]: \"type\" is missing",
            ),
            (
                r#"{"default":[{"type":"reject","x":1}]}"#.into(),
                "default[0] (reject): unknown field \"x\"",
            ),
            (
                with_docker("a.io", r#"{"type":"signedBy","keyPath":"/k"}"#),
                r#"transports.docker["a.io"][0] (signedBy): "keyType" is missing"#,
            ),
            (
                with_docker(
                    "a.io",
                    r#"{"type":"signedBy","keyType":"X509Certificates","keyPath":"/k"}"#,
                ),
                "keyType \"X509Certificates\" is not supported",
            ),
            (
                with_docker("a.io", r#"{"type":"signedBy","keyType":"GPGKeys"}"#),
                "exactly one of \"keyPath\", \"keyPaths\" and \"keyData\"",
            ),
            (
                with_docker(
                    "a.io",
                    r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","keyData":"YQ=="}"#,
                ),
                "exactly one of",
            ),
            (
                with_docker(
                    "a.io",
                    r#"{"type":"signedBy","keyType":"GPGKeys","keyPaths":[]}"#,
                ),
                "\"keyPaths\" is not a list of paths",
            ),
            (
                with_docker(
                    "a.io",
                    r#"{"type":"signedBy","keyType":"GPGKeys","keyData":"!!"}"#,
                ),
                "\"keyData\" is not valid base64",
            ),
            (
                with_docker(
                    "a.io",
                    r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":""}"#,
                ),
                "\"keyPath\" is empty",
            ),
            (
                with_docker(
                    "a.io",
                    r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","keyId":"x"}"#,
                ),
                "unknown field \"keyId\"",
            ),
            (
                with_docker("a.io", r#"{"type":"sigstoreSigned","fulcio":{}}"#),
                "\"fulcio\" is not supported",
            ),
            (
                with_docker(
                    "a.io",
                    r#"{"type":"sigstoreSigned","keyPath":"/k","rekorPublicKeyPath":"/r"}"#,
                ),
                "\"rekorPublicKeyPath\" is not supported",
            ),
            (
                with_docker("a.io", r#"{"type":"sigstoreSigned","keyPaths":["/k"]}"#),
                "\"keyPaths\" is not supported",
            ),
            (
                with_docker("a.io", r#"{"type":"sigstoreSigned"}"#),
                "exactly one of \"keyPath\" and \"keyData\"",
            ),
            (
                with_docker(
                    "a.io",
                    r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"matchAnything"}}"#,
                ),
                "signedIdentity: unknown signedIdentity type",
            ),
            (
                with_docker(
                    "a.io",
                    r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"matchExact","x":1}}"#,
                ),
                "signedIdentity: unknown field \"x\"",
            ),
            (
                with_docker(
                    "a.io",
                    r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactReference","dockerReference":"a.io/b"}}"#,
                ),
                "has neither a tag nor a digest",
            ),
            (
                with_docker(
                    "a.io",
                    r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactReference"}}"#,
                ),
                "\"dockerReference\" is missing",
            ),
            (
                with_docker(
                    "a.io",
                    r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactRepository","dockerRepository":"A B"}}"#,
                ),
                "dockerRepository",
            ),
            (
                with_docker(
                    "a.io",
                    r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"remapIdentity","prefix":"a.io/x:1","signedPrefix":"b.io"}}"#,
                ),
                "prefix \"a.io/x:1\" is not a registry host",
            ),
            (
                with_docker("busybox", r#"{"type":"reject"}"#),
                "starts with the registry host",
            ),
            (with_docker("*.a*.io", r#"{"type":"reject"}"#), "wildcard"),
            (
                with_docker("*.a.io:5000", r#"{"type":"reject"}"#),
                "wildcard",
            ),
            (
                with_docker("a.io/*", r#"{"type":"reject"}"#),
                "\"*\" is allowed only",
            ),
            (
                with_docker("a.io/B", r#"{"type":"reject"}"#),
                "invalid scope",
            ),
            (
                with_docker("a.io/", r#"{"type":"reject"}"#),
                "does not end with",
            ),
            (
                format!(r#"{{"default":{r},"transports":{{"docker":{{"a.io":[]}}}}}}"#),
                r#"transports.docker["a.io"]: the list of requirements is empty"#,
            ),
            (
                format!(r#"{{"default":{r},"transports":{{"docker":[]}}}}"#),
                "transports.docker: not an object",
            ),
            (
                format!(r#"{{"default":{r},"transports":{{"oci":{{"rel/x":{r}}}}}}}"#),
                "must be absolute",
            ),
            (
                format!(r#"{{"default":{r},"transports":{{"oci":{{"/":{r}}}}}}}"#),
                "use the transport default",
            ),
            (
                format!(r#"{{"default":{r},"transports":{{"oci-archive":{{"/a/../b":{r}}}}}}}"#),
                "must be clean",
            ),
            (
                format!(r#"{{"default":{r},"transports":{{"appc":{{"Example.com":{r}}}}}}}"#),
                "an appc scope",
            ),
        ];
        for (policy, want) in cases {
            let e = err(&policy);
            assert!(e.contains(want), "{policy}: {e}");
            assert!(
                e.starts_with("invalid policy /etc/rkt/policy.json: "),
                "{e}"
            );
        }
    }

    #[test]
    fn mangled_policies_do_not_panic() {
        let good = MAN_EXAMPLE.as_bytes();
        let origin = Path::new("p");
        for i in (0..good.len()).step_by(3) {
            let _ = Policy::parse(&good[..i], origin);
            for b in [b'"', b'{', b']', b'*', b'/', b':', 0xff] {
                let mut m = good.to_vec();
                m[i] = b;
                if let Ok(p) = Policy::parse(&m, origin) {
                    for t in [Transport::Docker, Transport::Appc, Transport::Oci] {
                        let _ = p.requirements(t, "registry.redhat.io/redhat/redhat-openjdk-18:1");
                        let _ = p.requirements(t, "/srv/images/x");
                    }
                }
            }
        }
        for name in [
            "",
            "/",
            ":",
            "@",
            "[::1]:5000/a:1",
            "a..b/c",
            "*.com",
            "//x//",
        ] {
            for t in [Transport::Docker, Transport::Appc, Transport::Oci] {
                let _ = parse(MAN_EXAMPLE).unwrap().requirements(t, name);
            }
        }
    }

    #[test]
    fn load_takes_the_highest_precedence_root() {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let roots: Vec<PathBuf> = dirs.iter().map(|d| d.path().to_path_buf()).collect();
        assert!(Policy::load(&roots).unwrap().is_none());
        std::fs::write(
            roots[0].join("policy.json"),
            r#"{"default":[{"type":"reject"}]}"#,
        )
        .unwrap();
        let (path, p) = Policy::load(&roots).unwrap().unwrap();
        assert_eq!(path, roots[0].join("policy.json"));
        assert_eq!(p.default, vec![Requirement::Reject]);
        std::fs::write(
            roots[1].join("policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .unwrap();
        let (path, p) = Policy::load(&roots).unwrap().unwrap();
        assert_eq!(path, roots[1].join("policy.json"));
        assert_eq!(p.default, vec![Requirement::InsecureAcceptAnything]);
        // a broken file in the winning root is an error, not skipped
        std::fs::write(roots[2].join("policy.json"), "{").unwrap();
        let e = Policy::load(&roots).unwrap_err().to_string();
        assert!(
            e.contains(&roots[2].join("policy.json").display().to_string()),
            "{e}"
        );
        let big = vec![b' '; MAX_POLICY_SIZE as usize + 1];
        std::fs::write(roots[2].join("policy.json"), big).unwrap();
        let e = Policy::load(&roots).unwrap_err().to_string();
        assert!(e.contains("larger than the limit"), "{e}");
    }

    #[test]
    fn effective_policy() {
        let prefixes = vec!["example.com/app".to_string(), "quay.io/ns".to_string()];
        // no policy.json: a signature by a trusted key for everything
        let p = Policy::effective(None, &prefixes);
        assert_eq!(p.default, vec![Requirement::RktTrusted]);
        assert_eq!(
            p.requirements(Transport::Appc, "example.com/app/x"),
            (
                "appc:example.com/app".to_string(),
                &[Requirement::RktTrusted][..]
            )
        );
        assert_eq!(
            p.requirements(Transport::Docker, "quay.io/ns/x:1").0,
            "docker:quay.io/ns"
        );
        assert_eq!(p.requirements(Transport::Oci, "/x").0, "default");
        assert!(Policy::effective(None, &[]).transports.is_empty());
        // a policy: its own scopes stay, the prefixes are added
        let loaded = parse(
            r#"{"default":[{"type":"reject"}],"transports":{"docker":{
                "quay.io/ns":[{"type":"insecureAcceptAnything"}]}}}"#,
        )
        .unwrap();
        let p = Policy::effective(Some(loaded), &prefixes);
        assert_eq!(p.default, vec![Requirement::Reject]);
        assert_eq!(
            p.requirements(Transport::Docker, "quay.io/ns/x:1").1,
            &[Requirement::InsecureAcceptAnything]
        );
        assert_eq!(
            p.requirements(Transport::Docker, "example.com/app:1").1,
            &[Requirement::RktTrusted]
        );
        assert_eq!(
            p.requirements(Transport::Appc, "quay.io/ns/x").1,
            &[Requirement::RktTrusted]
        );
        assert_eq!(p.requirements(Transport::Appc, "other.io/x").0, "default");
    }
}
