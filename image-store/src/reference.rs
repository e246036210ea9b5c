//! Image references as users type them.
//!
//! Accepted forms (normalised the way containerd and podman do it):
//!
//! | input                                   | registry        | repository        | tag      |
//! |-----------------------------------------|-----------------|-------------------|----------|
//! | `busybox`                               | `docker.io`     | `library/busybox` | `latest` |
//! | `docker:busybox:1.36`                   | `docker.io`     | `library/busybox` | `1.36`   |
//! | `docker://quay.io/coreos/etcd@sha256:…` | `quay.io`       | `coreos/etcd`     | –        |
//! | `127.0.0.1:5000/bb:v2`                  | `127.0.0.1:5000`| `bb`              | `v2`     |
//! | `localhost/app`                         | `localhost`     | `app`             | `latest` |
//!
//! The first path component is a registry host iff it contains `.` or `:` or is `localhost`.
//! `index.docker.io` and `registry-1.docker.io` are folded into `docker.io`.

use std::fmt;

/// Default registry when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// Default tag when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;

/// Why a string is not a valid registry reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("image reference is empty")]
    Empty,
    #[error("invalid image reference {input:?}: {reason}")]
    Invalid { input: String, reason: String },
}

/// A normalised registry image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `HOST[:PORT]`, `docker.io` when none was given.
    pub registry: String,
    /// Repository path inside the registry, e.g. `library/busybox`.
    pub repository: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// Pinned manifest digest (`sha256:…`).
    pub digest: Option<String>,
}

impl Reference {
    /// Accepts `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`, `docker:NAME`, and bare
    /// `HOST[:PORT]/REPO[:TAG][@DIGEST]`, `REPO[:TAG]`.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let rest = strip_docker_scheme(s).unwrap_or(s);
        if rest.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let bad = |reason: &str| ReferenceError::Invalid {
            input: s.to_string(),
            reason: reason.to_string(),
        };

        let (name_tag, digest) = match rest.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (rest, None),
        };
        if let Some(d) = digest {
            validate_digest(d).map_err(|r| bad(&r))?;
        }
        // A tag is a ':' after the last '/'.
        let last_slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                (&name_tag[..i], Some(&name_tag[i + 1..]))
            }
            None => (name_tag, None),
        };
        if let Some(t) = tag {
            validate_tag(t).map_err(|r| bad(&r))?;
        }
        if name.is_empty() {
            return Err(bad("missing repository name"));
        }

        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if is_host(first) => {
                validate_host(first).map_err(|r| bad(&r))?;
                (normalise_registry(first), rest.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        validate_repository(&repository).map_err(|r| bad(&r))?;

        let tag = match (tag, digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (t, _) => t.map(str::to_string),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest: digest.map(str::to_string),
        })
    }

    /// Whether `s` names an image in a registry (as opposed to a file, an OCI layout, an
    /// archive or a stored image id). True for `docker://`, `docker:` and bare names that
    /// parse as references; false for `oci:`, `oci-archive:`, `docker-archive:`, `file://`,
    /// `http(s)://`, paths (leading `/`, `./`, `../`, `~`, or a `.aci` suffix) and image ids
    /// (`sha256:…`, `sha512-…`).
    pub fn is_registry_ref(s: &str) -> bool {
        if strip_docker_scheme(s).is_some() {
            return true;
        }
        const NOT_REGISTRY: [&str; 7] = [
            "oci:",
            "oci-archive:",
            "docker-archive:",
            "file://",
            "http://",
            "https://",
            "cimd:",
        ];
        if NOT_REGISTRY.iter().any(|p| s.starts_with(p))
            || s.starts_with('/')
            || s.starts_with("./")
            || s.starts_with("../")
            || s.starts_with('~')
            || s == "."
            || s == ".."
            || s.contains("/./")
            || s.contains("/../")
            || s.ends_with(".aci")
            || is_image_id(s)
        {
            return false;
        }
        Reference::parse(s).is_ok()
    }

    /// The tag or digest part as the registry API wants it (digest wins).
    pub fn tag_or_digest(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// `HOST/REPO` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for Reference {
    /// `HOST[:PORT]/REPO[:TAG][@DIGEST]`: the canonical name the store records.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

fn strip_docker_scheme(s: &str) -> Option<&str> {
    if let Some(rest) = s.strip_prefix("docker://") {
        return Some(rest);
    }
    let rest = s.strip_prefix("docker:")?;
    // `docker:5000/app` is the registry host `docker` on port 5000 (a CI service is often
    // called that), and it is how such a reference is written back: not the scheme
    match rest.split_once('/') {
        Some((port, _)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => None,
        _ => Some(rest),
    }
}

/// `sha256:<hex>` / `sha512-<hex>` style image ids (also short prefixes).
fn is_image_id(s: &str) -> bool {
    ["sha256:", "sha256-", "sha384:", "sha512:", "sha512-"]
        .iter()
        .any(|p| {
            s.strip_prefix(p)
                .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
        })
}

fn is_host(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

/// Fold Docker Hub's aliases into `docker.io`, lower-case the host name.
pub(crate) fn normalise_registry(host: &str) -> String {
    let h = host.to_ascii_lowercase();
    match h.as_str() {
        "index.docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY.to_string(),
        _ => h,
    }
}

pub(crate) fn validate_host(host: &str) -> Result<(), String> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        // [ipv6]:port
        let (addr, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("bad registry host {host:?}"))?;
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(format!("bad registry host {host:?}"));
        }
        match after {
            "" => return Ok(()),
            p => (
                "ipv6",
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("bad registry host {host:?}"))?,
                ),
            ),
        }
    } else {
        match host.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("bad port in registry host {host:?}"));
        }
        if p.parse::<u32>().map_or(true, |n| n == 0 || n > 65535) {
            return Err(format!("bad port in registry host {host:?}"));
        }
    }
    if name.is_empty() {
        return Err(format!("bad registry host {host:?}"));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("bad registry host {host:?}"));
        }
    }
    Ok(())
}

/// Repository components: `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn validate_repository(repo: &str) -> Result<(), String> {
    if repo.len() > MAX_NAME_LEN {
        return Err(format!(
            "repository name longer than {MAX_NAME_LEN} characters"
        ));
    }
    for comp in repo.split('/') {
        if comp.is_empty() {
            return Err("empty path component in repository name".into());
        }
        if comp.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!("repository name {repo:?} must be lower-case"));
        }
        let bytes = comp.as_bytes();
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
            return Err(format!("bad repository path component {comp:?}"));
        }
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if alnum(b) {
                i += 1;
                continue;
            }
            // separator run
            let start = i;
            while i < bytes.len() && !alnum(bytes[i]) {
                i += 1;
            }
            let sep = &comp[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
            if !ok {
                return Err(format!("bad repository path component {comp:?}"));
            }
        }
    }
    Ok(())
}

/// Tags: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn validate_tag(tag: &str) -> Result<(), String> {
    let bytes = tag.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    if bytes.is_empty()
        || bytes.len() > 128
        || !word(bytes[0])
        || !bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
    {
        return Err(format!("bad tag {tag:?}"));
    }
    Ok(())
}

/// Digests: `sha256:<64 hex>`, `sha384:<96 hex>`, `sha512:<128 hex>` (lower-case hex).
pub(crate) fn validate_digest(d: &str) -> Result<(), String> {
    let (alg, hex) = d
        .split_once(':')
        .ok_or_else(|| format!("bad digest {d:?}"))?;
    let want = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(format!("unsupported digest algorithm {alg:?}")),
    };
    if hex.len() != want
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!("bad digest {d:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn r(reg: &str, repo: &str, tag: Option<&str>, digest: Option<&str>) -> Reference {
        Reference {
            registry: reg.into(),
            repository: repo.into(),
            tag: tag.map(Into::into),
            digest: digest.map(Into::into),
        }
    }

    #[test]
    fn a_host_named_docker_with_a_port_is_not_the_scheme() {
        // found by the `reference` fuzz target: the canonical form must parse back to itself
        let r = Reference::parse("Docker:15/s").unwrap();
        assert_eq!(r.to_string(), "docker:15/s:latest");
        assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
        let r = Reference::parse("docker:5000/app:1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker:5000", "app")
        );
        // the scheme still works, also for a repository that starts with digits
        let r = Reference::parse("docker:busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        let r = Reference::parse("docker:123abc/x").unwrap();
        assert_eq!(r.to_string(), "docker.io/123abc/x:latest");
    }

    #[test]
    fn parse_table() {
        let d = D;
        let cases: Vec<(String, Reference)> = vec![
            (
                "busybox".into(),
                r("docker.io", "library/busybox", Some("latest"), None),
            ),
            (
                "busybox:1.36".into(),
                r("docker.io", "library/busybox", Some("1.36"), None),
            ),
            (
                "docker:busybox".into(),
                r("docker.io", "library/busybox", Some("latest"), None),
            ),
            (
                "docker://busybox".into(),
                r("docker.io", "library/busybox", Some("latest"), None),
            ),
            (
                "user/app:v1".into(),
                r("docker.io", "user/app", Some("v1"), None),
            ),
            (
                "docker.io/busybox".into(),
                r("docker.io", "library/busybox", Some("latest"), None),
            ),
            (
                "index.docker.io/library/busybox".into(),
                r("docker.io", "library/busybox", Some("latest"), None),
            ),
            (
                "registry-1.docker.io/busybox".into(),
                r("docker.io", "library/busybox", Some("latest"), None),
            ),
            (
                "127.0.0.1:5000/bb:v2".into(),
                r("127.0.0.1:5000", "bb", Some("v2"), None),
            ),
            (
                "docker://127.0.0.1:5000/bb:v2".into(),
                r("127.0.0.1:5000", "bb", Some("v2"), None),
            ),
            (
                "localhost/app".into(),
                r("localhost", "app", Some("latest"), None),
            ),
            (
                "localhost:5000/a/b/c:x_y.z-1".into(),
                r("localhost:5000", "a/b/c", Some("x_y.z-1"), None),
            ),
            (
                "quay.io/coreos/etcd".into(),
                r("quay.io", "coreos/etcd", Some("latest"), None),
            ),
            (
                "Quay.IO/coreos/etcd".into(),
                r("quay.io", "coreos/etcd", Some("latest"), None),
            ),
            (
                format!("quay.io/coreos/etcd@{d}"),
                r("quay.io", "coreos/etcd", None, Some(d)),
            ),
            (
                format!("docker://quay.io/coreos/etcd:v3@{d}"),
                r("quay.io", "coreos/etcd", Some("v3"), Some(d)),
            ),
            (
                format!("busybox@{d}"),
                r("docker.io", "library/busybox", None, Some(d)),
            ),
            (
                "my-registry.example.com:443/team/app_x:1".into(),
                r("my-registry.example.com:443", "team/app_x", Some("1"), None),
            ),
            (
                "[::1]:5000/app".into(),
                r("[::1]:5000", "app", Some("latest"), None),
            ),
            (
                "a__b/c-----d:t".into(),
                r("docker.io", "a__b/c-----d", Some("t"), None),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(Reference::parse(&input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn parse_rejects() {
        for bad in [
            "",
            "docker://",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "busybox@sha256:1234",
            "busybox@md5:0123456789abcdef0123456789abcdef",
            "127.0.0.1:5000/",
            "127.0.0.1:99999/app",
            "host:port/app",
            "a//b",
            "a/-b",
            "a/b_",
            "a/b...c",
            "bad_host.com/x/../y",
            "-bad.example.com/app",
            &format!("busybox:{}", "t".repeat(129)),
            &format!("x/{}", "a".repeat(256)),
            "with space",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should fail");
        }
        assert_eq!(Reference::parse(""), Err(ReferenceError::Empty));
    }

    #[test]
    fn display_roundtrip() {
        for s in [
            "docker.io/library/busybox:latest",
            "127.0.0.1:5000/bb:v2",
            &format!("quay.io/coreos/etcd@{D}"),
            &format!("quay.io/coreos/etcd:v3@{D}"),
        ] {
            let p = Reference::parse(s).unwrap();
            assert_eq!(p.to_string(), s);
            assert_eq!(Reference::parse(&p.to_string()).unwrap(), p);
        }
        assert_eq!(
            Reference::parse("busybox").unwrap().to_string(),
            "docker.io/library/busybox:latest"
        );
        let p = Reference::parse(&format!("busybox:1@{D}")).unwrap();
        assert_eq!(p.tag_or_digest(), D);
        assert_eq!(p.name(), "docker.io/library/busybox");
    }

    #[test]
    fn registry_ref_detection() {
        for yes in [
            "busybox",
            "docker://busybox",
            "docker:busybox",
            "127.0.0.1:5000/bb:v2",
            "quay.io/coreos/etcd:v3",
        ] {
            assert!(Reference::is_registry_ref(yes), "{yes}");
        }
        for no in [
            "oci:/tmp/layout:tag",
            "oci-archive:/tmp/a.tar",
            "docker-archive:/tmp/a.tar",
            "file:///tmp/a.aci",
            "https://example.com/a.aci",
            "/tmp/a.aci",
            "./a.aci",
            "../dir/img",
            "a.aci",
            "dir/./img",
            "sha512-0123abcd",
            "sha256:0123abcd",
            "Not A Ref",
        ] {
            assert!(!Reference::is_registry_ref(no), "{no}");
        }
    }
}
