//! Registry-related configuration: `auth.d`, docker `config.json`, `certs.d`, `registries.d`.
//!
//! Every function takes the rkt configuration roots in increasing precedence (system, local,
//! user); a later root overrides an earlier one per registry.
//!
//! # Credentials (`<root>/auth.d/*.json`, files read in name order)
//! ```json
//! {"rktKind":"dockerAuth","rktVersion":"v1","registries":["127.0.0.1:5000"],
//!  "credentials":{"user":"u","password":"p"}}
//! {"rktKind":"auth","rktVersion":"v1","domains":["quay.io"],"type":"basic",
//!  "credentials":{"user":"u","password":"p"}}
//! {"rktKind":"auth","rktVersion":"v1","domains":["ghcr.io"],"type":"oauth",
//!  "credentials":{"token":"…"}}
//! ```
//! A docker `config.json` (`$REGISTRY_AUTH_FILE`, else `$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`) is read first, with the lowest precedence: `auths.<host>.auth`
//! (base64 `user:password`) or `auths.<host>.username`/`password`, or `registrytoken`.
//!
//! # Registry CAs (`<root>/certs.d/HOST[:PORT]/*.crt`)
//! Every `*.crt` (PEM, bundles allowed) under the directory named after the registry
//! endpoint, in all roots, is trusted in addition to the system roots.
//!
//! # Mirrors (`<root>/registries.d/*.toml` or `*.json`, files read in name order)
//! ```toml
//! [[mirror]]
//! registry = "docker.io"
//! endpoints = ["127.0.0.1:5001", "https://mirror.example:5000", "http://10.0.0.1:5000"]
//! ```
//! (JSON: `{"mirror":[{"registry":"docker.io","endpoints":[…]}]}`.) Endpoints are tried in
//! order with the original repository name, then the registry itself (containerd's
//! `registry.mirrors` semantics). An endpoint without scheme is treated like a registry
//! (https; http only with `--insecure-options=http`); an explicit `http://` is trusted as
//! configured. A later definition for the same registry replaces an earlier one.
//!
//! # Lookaside signatures (the same `registries.d` files)
//! containers-registries.d(5) keys: `[default-docker] lookaside = "file:///…"` and
//! `[docker."host[:port][/repo…]"] lookaside = "https://…"` (`sigstore` is the old name); see
//! [`Lookaside`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::reference::{normalise_registry, Reference};

/// A configuration file that cannot be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path:?}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path:?}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Credentials for one registry. `Debug` never shows secrets.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic { user: String, password: String },
    Bearer { token: String },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { user, .. } => write!(f, "Basic({user:?}, <redacted>)"),
            Credentials::Bearer { .. } => write!(f, "Bearer(<redacted>)"),
        }
    }
}

/// Where a registry's credentials came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEntry {
    pub registry: String,
    pub credentials: Credentials,
    pub source: PathBuf,
}

/// Credentials per registry host (`host[:port]`, Docker Hub as `docker.io`).
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    entries: BTreeMap<String, AuthEntry>,
}

/// What `rkt config` may print about credentials: no secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthSummary {
    pub registry: String,
    /// `basic` or `bearer`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub source: PathBuf,
}

impl AuthConfig {
    /// Credentials for a registry host (normalised like references).
    pub fn get(&self, registry: &str) -> Option<&AuthEntry> {
        self.entries.get(&normalise_registry(registry))
    }

    /// All entries without secrets, sorted by registry.
    pub fn view(&self) -> Vec<AuthSummary> {
        self.entries
            .values()
            .map(|e| AuthSummary {
                registry: e.registry.clone(),
                kind: match e.credentials {
                    Credentials::Basic { .. } => "basic",
                    Credentials::Bearer { .. } => "bearer",
                },
                user: match &e.credentials {
                    Credentials::Basic { user, .. } => Some(user.clone()),
                    Credentials::Bearer { .. } => None,
                },
                source: e.source.clone(),
            })
            .collect()
    }

    /// Use `credentials` for `registry` (given with a request, not read from a file).
    pub fn set(&mut self, registry: &str, credentials: Credentials) {
        self.insert(registry, credentials, Path::new("<request>"));
    }

    fn insert(&mut self, registry: &str, credentials: Credentials, source: &Path) {
        let registry = normalise_registry(registry);
        self.entries.insert(
            registry.clone(),
            AuthEntry {
                registry,
                credentials,
                source: source.to_path_buf(),
            },
        );
    }
}

/// The docker `config.json` to read: `$REGISTRY_AUTH_FILE`, else `$DOCKER_CONFIG/config.json`,
/// else `$HOME/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(p) = env("REGISTRY_AUTH_FILE") {
        return Some(PathBuf::from(p));
    }
    if let Some(d) = env("DOCKER_CONFIG") {
        return Some(PathBuf::from(d).join("config.json"));
    }
    env("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// Load credentials from the docker config (see [`docker_config_path`]) and from
/// `auth.d` under each root.
pub fn load_auth(dirs: &[PathBuf]) -> Result<AuthConfig, ConfigError> {
    load_auth_from(dirs, docker_config_path().as_deref())
}

/// [`load_auth`] with an explicit docker config file (missing file = none).
pub fn load_auth_from(
    dirs: &[PathBuf],
    docker_config: Option<&Path>,
) -> Result<AuthConfig, ConfigError> {
    let mut cfg = AuthConfig::default();
    if let Some(path) = docker_config {
        if let Some(text) = read_optional(path)? {
            parse_docker_config(&text, path, &mut cfg)?;
        }
    }
    for dir in dirs {
        for path in files_with_ext(&dir.join("auth.d"), &["json"])? {
            let text = read(&path)?;
            parse_rkt_auth(&text, &path, &mut cfg)?;
        }
    }
    Ok(cfg)
}

#[derive(Deserialize)]
struct RktHeader {
    #[serde(rename = "rktKind")]
    kind: String,
    #[serde(rename = "rktVersion")]
    version: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RktCreds {
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

#[derive(Deserialize)]
struct DockerAuthKind {
    registries: Vec<String>,
    credentials: RktCreds,
}

#[derive(Deserialize)]
struct AuthKind {
    domains: Vec<String>,
    #[serde(rename = "type")]
    kind: String,
    credentials: RktCreds,
}

fn invalid(path: &Path, reason: impl fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn basic(c: RktCreds, path: &Path) -> Result<Credentials, ConfigError> {
    match (c.user, c.password) {
        (Some(user), Some(password)) if !user.is_empty() => {
            Ok(Credentials::Basic { user, password })
        }
        _ => Err(invalid(path, "credentials need \"user\" and \"password\"")),
    }
}

fn parse_rkt_auth(text: &str, path: &Path, cfg: &mut AuthConfig) -> Result<(), ConfigError> {
    let header: RktHeader = serde_json::from_str(text).map_err(|e| invalid(path, e))?;
    if header.version != "v1" {
        return Err(invalid(
            path,
            format_args!("unsupported rktVersion {:?}", header.version),
        ));
    }
    match header.kind.as_str() {
        "dockerAuth" => {
            let k: DockerAuthKind = serde_json::from_str(text).map_err(|e| invalid(path, e))?;
            if k.registries.is_empty() {
                return Err(invalid(path, "\"registries\" is empty"));
            }
            let creds = basic(k.credentials, path)?;
            for r in &k.registries {
                cfg.insert(r, creds.clone(), path);
            }
        }
        "auth" => {
            let k: AuthKind = serde_json::from_str(text).map_err(|e| invalid(path, e))?;
            if k.domains.is_empty() {
                return Err(invalid(path, "\"domains\" is empty"));
            }
            let creds = match k.kind.as_str() {
                "basic" => basic(k.credentials, path)?,
                "oauth" => match k.credentials.token {
                    Some(token) if !token.is_empty() => Credentials::Bearer { token },
                    _ => return Err(invalid(path, "oauth credentials need \"token\"")),
                },
                other => {
                    return Err(invalid(
                        path,
                        format_args!("unsupported auth type {other:?} (basic, oauth)"),
                    ))
                }
            };
            for d in &k.domains {
                cfg.insert(d, creds.clone(), path);
            }
        }
        other => {
            return Err(invalid(
                path,
                format_args!("unexpected rktKind {other:?} in auth.d (auth, dockerAuth)"),
            ))
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuthEntry>,
}

#[derive(Deserialize)]
struct DockerAuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    registrytoken: Option<String>,
    identitytoken: Option<String>,
}

/// The registry a docker-style address names, as credentials are kept under it (a docker
/// config's `auths` key, a CRI `AuthConfig.server_address`): `https://index.docker.io/v1/` →
/// `docker.io`, `quay.io/` → `quay.io`.
pub fn registry_of_address(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k);
    normalise_registry(host)
}

/// Basic credentials from a docker-style `auth` (base64 of `user:password`; the password may
/// hold `:`). The error says what is wrong with it.
pub fn basic_from_auth(auth: &str) -> Result<Credentials, String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|e| format!("is not base64: {e}"))?;
    let s = String::from_utf8(raw).map_err(|_| "is not utf-8".to_string())?;
    let (user, password) = s
        .split_once(':')
        .ok_or_else(|| "is not user:password".to_string())?;
    Ok(Credentials::Basic {
        user: user.to_string(),
        password: password.to_string(),
    })
}

fn parse_docker_config(text: &str, path: &Path, cfg: &mut AuthConfig) -> Result<(), ConfigError> {
    let dc: DockerConfig = serde_json::from_str(text).map_err(|e| invalid(path, e))?;
    for (key, e) in dc.auths {
        let host = registry_of_address(&key);
        let creds = if let Some(a) = e.auth.filter(|a| !a.is_empty()) {
            basic_from_auth(&a)
                .map_err(|err| invalid(path, format_args!("auths.{key}.auth {err}")))?
        } else if let (Some(user), Some(password)) = (e.username, e.password) {
            Credentials::Basic { user, password }
        } else if let Some(token) = e.registrytoken.filter(|t| !t.is_empty()) {
            Credentials::Bearer { token }
        } else {
            if e.identitytoken.is_some() {
                tracing::warn!(registry = %host, file = ?path, "identitytoken in docker config is not supported; ignored");
            }
            continue;
        };
        cfg.insert(&host, creds, path);
    }
    Ok(())
}

/// How to reach a mirror endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Https,
    Http,
}

/// A registry endpoint (`host[:port]`) with an optional forced scheme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub host: String,
    /// `None`: like a registry (https, http only if allowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<Scheme>,
}

impl Endpoint {
    /// Parse `host[:port]`, `https://host[:port][/]` or `http://host[:port][/]`.
    pub fn parse(s: &str) -> Result<Endpoint, String> {
        let (scheme, rest) = if let Some(r) = s.strip_prefix("https://") {
            (Some(Scheme::Https), r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (Some(Scheme::Http), r)
        } else if s.contains("://") {
            return Err(format!("endpoint {s:?}: unsupported scheme"));
        } else {
            (None, s)
        };
        let host = rest.strip_suffix('/').unwrap_or(rest);
        if host.is_empty() || host.contains('/') {
            return Err(format!(
                "endpoint {s:?}: want host[:port] with optional http:// or https://, no path"
            ));
        }
        crate::reference::validate_host(host).map_err(|e| format!("endpoint {s:?}: {e}"))?;
        Ok(Endpoint {
            host: host.to_ascii_lowercase(),
            scheme,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheme {
            Some(Scheme::Https) => write!(f, "https://{}", self.host),
            Some(Scheme::Http) => write!(f, "http://{}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// Mirror endpoints per registry, as loaded from `registries.d`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Mirrors {
    pub mirrors: BTreeMap<String, Vec<Endpoint>>,
}

impl Mirrors {
    /// Mirror endpoints for a registry host, in the order to try them.
    pub fn for_registry(&self, registry: &str) -> &[Endpoint] {
        self.mirrors
            .get(&normalise_registry(registry))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// One `registries.d` file: mirrors and lookaside (simple signing) locations live together.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistriesFile {
    #[serde(default)]
    mirror: Vec<MirrorEntry>,
    #[serde(default, rename = "default-docker")]
    default_docker: Option<LookasideEntry>,
    #[serde(default)]
    docker: BTreeMap<String, LookasideEntry>,
}

/// containers-registries.d(5) keys of one scope. The `*-staging` locations are where signing
/// tools write; rkt only reads, so they are accepted and ignored.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct LookasideEntry {
    lookaside: Option<String>,
    /// The old name of `lookaside`.
    sigstore: Option<String>,
    #[serde(rename = "lookaside-staging")]
    _lookaside_staging: Option<String>,
    #[serde(rename = "sigstore-staging")]
    _sigstore_staging: Option<String>,
    #[serde(rename = "use-sigstore-attachments")]
    _use_sigstore_attachments: Option<bool>,
}

impl LookasideEntry {
    /// The read location (`lookaside` wins over the old `sigstore`), validated.
    fn location(&self, path: &Path, scope: &str) -> Result<Option<String>, ConfigError> {
        let Some(url) = self.lookaside.as_ref().or(self.sigstore.as_ref()) else {
            return Ok(None);
        };
        validate_lookaside_url(url).map_err(|e| invalid(path, format_args!("{scope}: {e}")))?;
        Ok(Some(url.clone()))
    }
}

fn parse_registries_file(text: &str, path: &Path) -> Result<RegistriesFile, ConfigError> {
    if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(text).map_err(|e| invalid(path, e))
    } else {
        toml::from_str(text).map_err(|e| invalid(path, e.message()))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MirrorEntry {
    registry: String,
    endpoints: Vec<String>,
}

/// Load `registries.d/*.toml` and `*.json` from each root.
pub fn load_mirrors(dirs: &[PathBuf]) -> Result<Mirrors, ConfigError> {
    let mut m = Mirrors::default();
    for dir in dirs {
        for path in files_with_ext(&dir.join("registries.d"), &["toml", "json"])? {
            let text = read(&path)?;
            parse_mirror_file(&text, &path, &mut m)?;
        }
    }
    Ok(m)
}

fn parse_mirror_file(text: &str, path: &Path, m: &mut Mirrors) -> Result<(), ConfigError> {
    let file = parse_registries_file(text, path)?;
    for entry in file.mirror {
        let host = normalise_registry(&entry.registry);
        if host.is_empty() || host.contains('/') {
            return Err(invalid(
                path,
                format_args!("bad registry {:?}", entry.registry),
            ));
        }
        let endpoints = entry
            .endpoints
            .iter()
            .map(|e| Endpoint::parse(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(path, e))?;
        m.mirrors.insert(host, endpoints);
    }
    Ok(())
}

/// Where simple-signing signatures of registry images are looked up ("lookaside"), as loaded
/// from `registries.d` (containers-registries.d(5) keys in rkt's TOML or JSON files):
/// ```toml
/// [default-docker]
/// lookaside = "file:///var/lib/rkt/sigstore"   # `sigstore` is the old name
/// [docker."127.0.0.1:5000/app"]                # host[:port][/repo…][:tag|@digest], *.domain
/// lookaside = "http://127.0.0.1:8080/sigs"
/// ```
/// A later file (name order) or root overrides an earlier one for the same scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookaside {
    /// `default-docker`'s location.
    pub default: Option<String>,
    /// Locations per scope (host normalised like references).
    pub scopes: BTreeMap<String, String>,
}

impl Lookaside {
    /// The location for a reference: the most specific scope first, as containers/image looks
    /// it up: `host/repo:tag` (or `@digest`), `host/repo`, each parent namespace, `host`, then
    /// `*.domain` wildcards from the longest, then `default-docker`.
    pub fn for_reference(&self, r: &Reference) -> Option<&str> {
        scope_candidates(r)
            .iter()
            .find_map(|s| self.scopes.get(s))
            .or(self.default.as_ref())
            .map(String::as_str)
    }
}

/// Scopes that may configure `r`, most specific first.
fn scope_candidates(r: &Reference) -> Vec<String> {
    let name = r.name();
    let mut out = Vec::new();
    if let Some(d) = &r.digest {
        out.push(format!("{name}@{d}"));
    } else if let Some(t) = &r.tag {
        out.push(format!("{name}:{t}"));
    }
    let mut ns = name.as_str();
    loop {
        out.push(ns.to_string());
        match ns.rfind('/') {
            Some(i) => ns = &ns[..i],
            None => break,
        }
    }
    // wildcards match host names, never ports or IP addresses' parts
    let host = r.registry.split(':').next().unwrap_or_default();
    if !host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let mut rest = host;
        while let Some((_, tail)) = rest.split_once('.') {
            out.push(format!("*.{tail}"));
            rest = tail;
        }
    }
    out
}

/// Normalise a `docker` scope key: the host part folded like references.
fn normalise_scope(scope: &str) -> Result<String, String> {
    let scope = scope.trim();
    if scope.is_empty() || scope.chars().any(char::is_whitespace) {
        return Err(format!("bad scope {scope:?}"));
    }
    if let Some(domain) = scope.strip_prefix("*.") {
        if domain.is_empty() || domain.contains(['/', ':', '*']) {
            return Err(format!("bad wildcard scope {scope:?}"));
        }
        return Ok(format!("*.{}", domain.to_ascii_lowercase()));
    }
    let (host, rest) = match scope.split_once('/') {
        Some((h, r)) => (h, Some(r)),
        None => (scope, None),
    };
    crate::reference::validate_host(host).map_err(|e| format!("scope {scope:?}: {e}"))?;
    let host = normalise_registry(host);
    Ok(match rest {
        Some(r) if !r.is_empty() => format!("{host}/{r}"),
        Some(_) => return Err(format!("bad scope {scope:?}")),
        None => host,
    })
}

/// A lookaside location must be an absolute `file://`, `http://` or `https://` URL.
fn validate_lookaside_url(url: &str) -> Result<(), String> {
    if let Some(p) = url.strip_prefix("file://") {
        if !p.starts_with('/') {
            return Err(format!("lookaside {url:?}: file:// needs an absolute path"));
        }
        return Ok(());
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("lookaside {url:?}: want a file://, http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || url.contains(['?', '#']) {
        return Err(format!(
            "lookaside {url:?}: want scheme://host[:port][/path] without query"
        ));
    }
    Ok(())
}

/// Load the lookaside locations of `registries.d/*.toml` and `*.json` from each root.
pub fn load_lookaside(dirs: &[PathBuf]) -> Result<Lookaside, ConfigError> {
    let mut l = Lookaside::default();
    for dir in dirs {
        for path in files_with_ext(&dir.join("registries.d"), &["toml", "json"])? {
            let text = read(&path)?;
            let file = parse_registries_file(&text, &path)?;
            if let Some(d) = &file.default_docker {
                if let Some(url) = d.location(&path, "default-docker")? {
                    l.default = Some(url);
                }
            }
            for (scope, entry) in &file.docker {
                let key = normalise_scope(scope).map_err(|e| invalid(&path, e))?;
                if let Some(url) = entry.location(&path, scope)? {
                    l.scopes.insert(key, url);
                }
            }
        }
    }
    Ok(l)
}

/// The lookaside location configured for a registry image, if any (see [`Lookaside`]).
pub fn lookaside_for(
    config_dirs: &[PathBuf],
    reference: &Reference,
) -> Result<Option<String>, ConfigError> {
    Ok(load_lookaside(config_dirs)?
        .for_reference(reference)
        .map(str::to_string))
}

/// The directory holding CAs for an endpoint in one root: `<root>/certs.d/<host[:port]>`.
pub fn certs_dir(root: &Path, host: &str) -> PathBuf {
    root.join("certs.d").join(host)
}

/// All `*.crt` files for `host` under `certs.d` of every root, lowest precedence first.
pub fn ca_files(dirs: &[PathBuf], host: &str) -> Result<Vec<PathBuf>, ConfigError> {
    let mut out = Vec::new();
    for dir in dirs {
        out.extend(files_with_ext(&certs_dir(dir, host), &["crt"])?);
    }
    Ok(out)
}

/// Split a PEM file into its certificates (each a PEM block of its own).
pub fn split_pem_certs(text: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(b) = rest.find(BEGIN) {
        let Some(e) = rest[b..].find(END) else { break };
        let end = b + e + END.len();
        out.push(format!("{}\n", &rest[b..end]));
        rest = &rest[end..];
    }
    out
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_optional(path: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Regular files in `dir` with one of the extensions, sorted by name; a missing dir is empty.
fn files_with_ext(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>, ConfigError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|source| ConfigError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = ent.path();
        let ext_ok = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| exts.contains(&e));
        if ext_ok && path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn basic_of(cfg: &AuthConfig, host: &str) -> (String, String) {
        match &cfg.get(host).unwrap().credentials {
            Credentials::Basic { user, password } => (user.clone(), password.clone()),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn auth_kinds_and_precedence() {
        let t = tempfile::tempdir().unwrap();
        let (sys, local) = (t.path().join("sys"), t.path().join("local"));
        write(
            &sys,
            "auth.d/a.json",
            r#"{"rktKind":"dockerAuth","rktVersion":"v1","registries":["127.0.0.1:5000","index.docker.io"],"credentials":{"user":"sys","password":"pw-1"}}"#,
        );
        write(
            &sys,
            "auth.d/b.json",
            r#"{"rktKind":"auth","rktVersion":"v1","domains":["quay.io"],"type":"basic","credentials":{"user":"q","password":"pw-q"}}"#,
        );
        write(&sys, "auth.d/ignored.txt", "not json");
        write(
            &local,
            "auth.d/x.json",
            r#"{"rktKind":"dockerAuth","rktVersion":"v1","registries":["127.0.0.1:5000"],"credentials":{"user":"local","password":"pw-2"}}"#,
        );
        write(
            &local,
            "auth.d/y.json",
            r#"{"rktKind":"auth","rktVersion":"v1","domains":["ghcr.io"],"type":"oauth","credentials":{"token":"tok-en"}}"#,
        );
        let docker = t.path().join("docker.json");
        // "dXNlcjpwYXNz" = user:pass
        std::fs::write(&docker, r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},"127.0.0.1:5000":{"auth":"ZDpk"},"reg.example:8443":{"username":"u","password":"p"},"other.example":{}},"credsStore":"x"}"#).unwrap();

        let cfg = load_auth_from(&[sys.clone(), local.clone()], Some(&docker)).unwrap();
        assert_eq!(
            basic_of(&cfg, "127.0.0.1:5000"),
            ("local".into(), "pw-2".into())
        );
        // auth.d overrides docker config.json; Docker Hub aliases fold to docker.io
        assert_eq!(basic_of(&cfg, "docker.io"), ("sys".into(), "pw-1".into()));
        assert_eq!(
            basic_of(&cfg, "registry-1.docker.io"),
            ("sys".into(), "pw-1".into())
        );
        assert_eq!(basic_of(&cfg, "quay.io"), ("q".into(), "pw-q".into()));
        assert_eq!(basic_of(&cfg, "reg.example:8443"), ("u".into(), "p".into()));
        assert!(matches!(
            cfg.get("ghcr.io").unwrap().credentials,
            Credentials::Bearer { .. }
        ));
        assert!(cfg.get("other.example").is_none());

        let only_docker = load_auth_from(&[], Some(&docker)).unwrap();
        assert_eq!(
            basic_of(&only_docker, "docker.io"),
            ("user".into(), "pass".into())
        );
        assert_eq!(
            basic_of(&only_docker, "127.0.0.1:5000"),
            ("d".into(), "d".into())
        );

        // secrets with a '-', which no random temp dir name in the file paths can contain
        let view = serde_json::to_string(&cfg.view()).unwrap();
        assert!(
            !view.contains("pw-2") && !view.contains("tok-en") && !view.contains("pw-q"),
            "{view}"
        );
        assert!(view.contains(r#""user":"local""#), "{view}");
        assert!(!format!("{cfg:?}").contains("pw-2"));

        // missing docker config and missing dirs are fine
        let none =
            load_auth_from(&[t.path().join("nope")], Some(&t.path().join("nope.json"))).unwrap();
        assert!(none.view().is_empty());
    }

    #[test]
    fn auth_errors_name_the_file() {
        let t = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("kind.json", r#"{"rktKind":"paths","rktVersion":"v1"}"#),
            ("ver.json", r#"{"rktKind":"auth","rktVersion":"v2"}"#),
            (
                "type.json",
                r#"{"rktKind":"auth","rktVersion":"v1","domains":["a.b"],"type":"aws","credentials":{}}"#,
            ),
            (
                "nouser.json",
                r#"{"rktKind":"dockerAuth","rktVersion":"v1","registries":["a.b"],"credentials":{"password":"x"}}"#,
            ),
            ("garbage.json", "{"),
        ] {
            let d = t.path().join(name.trim_end_matches(".json"));
            write(&d, &format!("auth.d/{name}"), text);
            let err = load_auth_from(&[d], None).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn mirrors_toml_json_precedence() {
        let t = tempfile::tempdir().unwrap();
        let (sys, local) = (t.path().join("sys"), t.path().join("local"));
        write(&sys, "registries.d/10-hub.toml", "[[mirror]]\nregistry = \"docker.io\"\nendpoints = [\"127.0.0.1:5001\", \"https://mirror.example:5000/\"]\n\n[[mirror]]\nregistry = \"quay.io\"\nendpoints = [\"http://10.0.0.1:5000\"]\n");
        write(
            &local,
            "registries.d/q.json",
            r#"{"mirror":[{"registry":"quay.io","endpoints":["localhost:6000"]}]}"#,
        );
        let m = load_mirrors(&[sys, local]).unwrap();
        assert_eq!(
            m.for_registry("index.docker.io"),
            &[
                Endpoint {
                    host: "127.0.0.1:5001".into(),
                    scheme: None
                },
                Endpoint {
                    host: "mirror.example:5000".into(),
                    scheme: Some(Scheme::Https)
                },
            ]
        );
        assert_eq!(
            m.for_registry("quay.io"),
            &[Endpoint {
                host: "localhost:6000".into(),
                scheme: None
            }]
        );
        assert!(m.for_registry("127.0.0.1:5000").is_empty());
        assert_eq!(
            Endpoint::parse("http://10.0.0.1:5000").unwrap().scheme,
            Some(Scheme::Http)
        );
    }

    #[test]
    fn mirror_errors() {
        for (name, text) in [
            ("a.toml", "[[mirror]]\nregistry = \"docker.io\"\nendpoints = [\"ftp://x\"]\n"),
            ("b.toml", "[[mirror]]\nregistry = \"docker.io\"\nendpoints = [\"https://x.example/v2/path\"]\n"),
            ("c.toml", "[[mirror]]\nregistry = \"docker.io\"\nendpoint = [\"x.example\"]\n"),
            ("d.json", "{\"mirror\": 3}"),
            ("e.toml", "[[mirror]\n"),
        ] {
            let t = tempfile::tempdir().unwrap();
            write(t.path(), &format!("registries.d/{name}"), text);
            let err = load_mirrors(&[t.path().to_path_buf()]).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn certs_lookup_and_pem_split() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        write(&a, "certs.d/127.0.0.1:5443/ca.crt", "x");
        write(&b, "certs.d/127.0.0.1:5443/extra.crt", "y");
        write(&b, "certs.d/127.0.0.1:5443/client.key", "k");
        let files = ca_files(&[a.clone(), b.clone()], "127.0.0.1:5443").unwrap();
        assert_eq!(
            files,
            vec![
                a.join("certs.d/127.0.0.1:5443/ca.crt"),
                b.join("certs.d/127.0.0.1:5443/extra.crt"),
            ]
        );
        let pem = "junk\n-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n";
        let certs = split_pem_certs(pem);
        assert_eq!(certs.len(), 2);
        assert!(certs[1].contains("BBB"));
    }

    fn reference(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn lookaside_scopes_and_precedence() {
        let t = tempfile::tempdir().unwrap();
        let (sys, local) = (t.path().join("sys"), t.path().join("local"));
        write(
            &sys,
            "registries.d/10.toml",
            "[[mirror]]\nregistry = \"docker.io\"\nendpoints = [\"127.0.0.1:5001\"]\n\n[default-docker]\nsigstore = \"file:///var/lib/rkt/sigstore\"\nsigstore-staging = \"file:///tmp/staging\"\n\n[docker.\"127.0.0.1:5000/app\"]\nlookaside = \"http://127.0.0.1:8080/sigs\"\n\n[docker.\"127.0.0.1:5000\"]\nlookaside = \"file:///srv/host\"\n\n[docker.\"*.example.com\"]\nlookaside = \"https://sigs.example.com/\"\n\n[docker.\"index.docker.io/library/busybox:1\"]\nlookaside = \"file:///srv/bb1\"\n\n[docker.\"quay.io/x\"]\nlookaside-staging = \"file:///only/staging\"\n",
        );
        write(
            &local,
            "registries.d/20.json",
            r#"{"docker": {"127.0.0.1:5000/app": {"lookaside": "file:///srv/local-app"}}}"#,
        );
        let dirs = [sys.clone(), local.clone()];
        let l = load_lookaside(&dirs).unwrap();
        let at = |r: &str| l.for_reference(&reference(r)).map(str::to_string);
        // the later root wins for the same scope; sub-repositories inherit it
        assert_eq!(
            at("127.0.0.1:5000/app:v1").as_deref(),
            Some("file:///srv/local-app")
        );
        assert_eq!(
            at("127.0.0.1:5000/app/sub:v1").as_deref(),
            Some("file:///srv/local-app")
        );
        // not a path-component prefix: falls back to the host scope
        assert_eq!(
            at("127.0.0.1:5000/apple").as_deref(),
            Some("file:///srv/host")
        );
        assert_eq!(
            at("127.0.0.1:5000/other").as_deref(),
            Some("file:///srv/host")
        );
        assert_eq!(
            at("reg.example.com/x/y").as_deref(),
            Some("https://sigs.example.com/")
        );
        assert_eq!(
            at("a.b.example.com:5000/x").as_deref(),
            Some("https://sigs.example.com/")
        );
        // tag-specific scope, with the Docker Hub alias folded
        assert_eq!(at("busybox:1").as_deref(), Some("file:///srv/bb1"));
        assert_eq!(
            at("busybox:2").as_deref(),
            Some("file:///var/lib/rkt/sigstore")
        );
        // an entry with only a staging location does not hide the default
        assert_eq!(
            at("quay.io/x/y").as_deref(),
            Some("file:///var/lib/rkt/sigstore")
        );
        // mirrors in the same file still load
        assert_eq!(
            load_mirrors(&dirs).unwrap().for_registry("docker.io").len(),
            1
        );
        assert_eq!(
            lookaside_for(&dirs, &reference("127.0.0.1:5000/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")).unwrap().as_deref(),
            Some("file:///srv/local-app")
        );
        // nothing configured
        assert_eq!(
            lookaside_for(&[local], &reference("quay.io/a/b")).unwrap(),
            None
        );
        assert_eq!(lookaside_for(&[], &reference("quay.io/a/b")).unwrap(), None);
    }

    #[test]
    fn scope_candidate_order() {
        assert_eq!(
            scope_candidates(&reference("reg.example.com:5000/a/b:v1")),
            [
                "reg.example.com:5000/a/b:v1",
                "reg.example.com:5000/a/b",
                "reg.example.com:5000/a",
                "reg.example.com:5000",
                "*.example.com",
                "*.com",
            ]
        );
        assert_eq!(
            scope_candidates(&reference("127.0.0.1:5000/a")),
            [
                "127.0.0.1:5000/a:latest",
                "127.0.0.1:5000/a",
                "127.0.0.1:5000"
            ]
        );
    }

    #[test]
    fn lookaside_errors_name_the_file() {
        for (name, text) in [
            ("a.toml", "[default-docker]\nlookaside = \"ftp://x/y\"\n"),
            (
                "b.toml",
                "[default-docker]\nlookaside = \"file://relative/p\"\n",
            ),
            ("c.toml", "[docker.\"a b\"]\nlookaside = \"file:///x\"\n"),
            (
                "d.toml",
                "[docker.\"x.example\"]\nlookasid = \"file:///x\"\n",
            ),
            (
                "e.json",
                r#"{"docker": {"*.": {"lookaside": "file:///x"}}}"#,
            ),
            (
                "f.json",
                r#"{"default-docker": {"lookaside": "https://?x"}}"#,
            ),
            (
                "g.toml",
                "[docker.\"bad host!/x\"]\nlookaside = \"file:///x\"\n",
            ),
        ] {
            let t = tempfile::tempdir().unwrap();
            write(t.path(), &format!("registries.d/{name}"), text);
            let err = load_lookaside(&[t.path().to_path_buf()])
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{err}");
        }
    }
}
