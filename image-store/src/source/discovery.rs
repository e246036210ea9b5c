//! ACIs over http(s): the http client every download outside the registry client uses, appc
//! image names (`appc:NAME[:VERSION][,label=value…]`) and appc discovery (the appc spec's
//! "discovery" section).
//!
//! Discovery: `GET https://<name>?ac-discovery=1`, then each parent path down to the host,
//! until a page holds an `ac-discovery` meta tag whose prefix prefixes the name and whose
//! template renders fully:
//! ```html
//! <meta name="ac-discovery" content="example.com https://example.com/{os}/{arch}/{name}-{version}.{ext}">
//! <meta name="ac-discovery-pubkeys" content="example.com https://example.com/pubkeys.gpg">
//! ```
//! The longest matching prefix wins; `{ext}` is `aci` for the image and `aci.asc` for its
//! signature. Plain http is tried after https only with `--insecure-options=http`.
//!
//! [`HttpClient`]: one reqwest client per `host[:port]`, trusting the system roots plus every
//! `certs.d/<host[:port]>/*.crt` of the config roots (as the registry client does);
//! `http://` URLs are refused unless plain http is allowed (or the URL was configured
//! explicitly, like a lookaside location); redirects are followed (at most
//! [`MAX_REDIRECTS`]) to https, or to http only where http is allowed. A redirect target is
//! verified with the roots of the host first asked.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::Url;

use crate::config;
use crate::error::{Error, Result};
use crate::registry::error_chain;

/// Largest discovery page read.
pub(crate) const MAX_DISCOVERY_PAGE: u64 = 1 << 20;
/// Redirects followed per request.
pub(crate) const MAX_REDIRECTS: usize = 5;
/// Longest appc name accepted.
const MAX_NAME_LEN: usize = 512;
/// Meta tags looked at on one page.
const MAX_META_TAGS: usize = 256;
/// Path levels of a name tried (the name and its parents).
const MAX_LEVELS: usize = 16;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Whole-request limit for small documents (discovery pages, signatures): a server trickling
/// bytes cannot hold a fetch for long.
const SMALL_GET_TIMEOUT: Duration = Duration::from_secs(120);

/// An http(s) client for downloads outside the registry client (lookaside signatures, appc
/// discovery, ACI URLs): per-`host[:port]` CAs from `certs.d`, plus the system roots.
pub(crate) struct HttpClient {
    config_dirs: Vec<PathBuf>,
    insecure_tls: bool,
    allow_http: bool,
    clients: Mutex<HashMap<String, reqwest::Client>>,
}

/// An answer with its body read (bounded), or "not found" (404).
enum Got {
    Body(Vec<u8>),
    NotFound,
}

fn fetch_err(url: &str, reason: impl Into<String>) -> Error {
    Error::Fetch {
        url: url.to_string(),
        reason: reason.into(),
    }
}

/// `host[:port]` as `certs.d` names it (the port only when the URL gives one).
fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

impl HttpClient {
    /// A client reading `certs.d` under `config_dirs` (lowest precedence first).
    /// `insecure_tls`: `--insecure-options=tls`; `allow_http`: `--insecure-options=http`.
    pub(crate) fn new(config_dirs: &[PathBuf], insecure_tls: bool, allow_http: bool) -> Self {
        HttpClient {
            config_dirs: config_dirs.to_vec(),
            insecure_tls,
            allow_http,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Whether plain http may be used for URLs not configured explicitly.
    pub(crate) fn allows_http(&self) -> bool {
        self.allow_http
    }

    /// Parse and check a URL: http(s) only, plain http only when allowed (or `configured`).
    fn check_url(&self, url: &str, configured: bool) -> Result<Url> {
        let u = Url::parse(url).map_err(|e| fetch_err(url, format!("invalid URL: {e}")))?;
        match u.scheme() {
            "https" => {}
            "http" if self.allow_http || configured => {}
            "http" => {
                return Err(fetch_err(
                    url,
                    "refusing plain http (try --insecure-options=http)",
                ))
            }
            s => return Err(fetch_err(url, format!("unsupported URL scheme {s:?}"))),
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err(fetch_err(url, "URL without a host"));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(fetch_err(url, "credentials in URLs are not supported"));
        }
        Ok(u)
    }

    /// The client for a URL's `host[:port]`, with that endpoint's `certs.d` CAs.
    fn client_for(&self, url: &Url) -> Result<reqwest::Client> {
        let key = authority(url);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let allow_http = self.allow_http;
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            match attempt.url().scheme() {
                "https" => attempt.follow(),
                "http" if allow_http => attempt.follow(),
                s => {
                    let msg = format!(
                        "refusing a redirect to {} ({s} is not allowed; try --insecure-options=http)",
                        attempt.url()
                    );
                    attempt.error(msg)
                }
            }
        });
        let mut roots = Vec::new();
        let files = config::ca_files(&self.config_dirs, &key)
            .map_err(|e| fetch_err(url.as_str(), format!("reading certs.d for {key}: {e}")))?;
        for path in files {
            let pem = std::fs::read(&path).map_err(|e| {
                fetch_err(url.as_str(), format!("cannot read CA file {path:?}: {e}"))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                fetch_err(
                    url.as_str(),
                    format!("CA file {path:?}: {}", error_chain(&e)),
                )
            })?;
            if certs.is_empty() {
                return Err(fetch_err(
                    url.as_str(),
                    format!("CA file {path:?} holds no PEM certificate"),
                ));
            }
            roots.extend(certs);
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("rkt/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .redirect(policy)
            .tls_danger_accept_invalid_certs(self.insecure_tls)
            .tls_certs_merge(roots)
            .build()
            .map_err(|e| fetch_err(url.as_str(), format!("http client: {}", error_chain(&e))))?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// Where the user should put a CA for `url`'s endpoint.
    fn ca_hint(&self, url: &Url) -> PathBuf {
        let root = self
            .config_dirs
            .last()
            .cloned()
            .unwrap_or_else(|| PathBuf::from("/etc/rkt"));
        config::certs_dir(&root, &authority(url)).join("ca.crt")
    }

    /// GET a URL: `Ok(None)` on 404, an error on any other non-2xx status.
    async fn send(
        &self,
        url: &str,
        configured: bool,
        timeout: Option<Duration>,
    ) -> Result<Option<reqwest::Response>> {
        let u = self.check_url(url, configured)?;
        let client = self.client_for(&u)?;
        let mut req = client.get(u.clone());
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let detail = error_chain(&e);
                let t = detail.to_ascii_lowercase();
                let reason = if t.contains("certificate") || t.contains("unknownissuer") {
                    format!(
                        "{detail} (put its CA in {:?} or try --insecure-options=tls)",
                        self.ca_hint(&u)
                    )
                } else {
                    detail
                };
                return Err(fetch_err(url, reason));
            }
        };
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(fetch_err(url, format!("http status {status}")));
        }
        Ok(Some(resp))
    }

    async fn get(&self, url: &str, max: u64, configured: bool) -> Result<Got> {
        let Some(mut resp) = self.send(url, configured, Some(SMALL_GET_TIMEOUT)).await? else {
            return Ok(Got::NotFound);
        };
        let too_large = || fetch_err(url, format!("larger than the limit of {max} bytes"));
        if resp.content_length().is_some_and(|n| n > max) {
            return Err(too_large());
        }
        let mut out = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| fetch_err(url, error_chain(&e)))?
        {
            if out.len() as u64 + chunk.len() as u64 > max {
                return Err(too_large());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Got::Body(out))
    }

    /// GET a URL's body (at most `max` bytes); `Ok(None)` when the server answers 404.
    pub(crate) async fn get_bytes(&self, url: &str, max: u64) -> Result<Option<Vec<u8>>> {
        Ok(match self.get(url, max, false).await? {
            Got::Body(b) => Some(b),
            Got::NotFound => None,
        })
    }

    /// [`HttpClient::get_bytes`] for a URL configured explicitly (a lookaside location): an
    /// `http://` one is used as configured, like an explicit `http://` mirror.
    pub(crate) async fn get_configured(&self, url: &str, max: u64) -> Result<Option<Vec<u8>>> {
        Ok(match self.get(url, max, true).await? {
            Got::Body(b) => Some(b),
            Got::NotFound => None,
        })
    }
}

/// Download `url` to `dest` (created or truncated; a temp path the caller owns), at most
/// `max` bytes. On failure the partial file is removed. 404 is an error naming the URL.
pub(crate) async fn download(url: &str, dest: &Path, max: u64, http: &HttpClient) -> Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let Some(mut resp) = http.send(url, false, None).await? else {
        return Err(fetch_err(url, "not found (404)"));
    };
    if resp.content_length().is_some_and(|n| n > max) {
        return Err(fetch_err(
            url,
            format!("larger than the limit of {max} bytes"),
        ));
    }
    let io = |what: &'static str| crate::error::io_err(what, dest);
    let mut file = tokio::fs::File::create(dest)
        .await
        .map_err(io("creating download file"))?;
    let res: Result<()> = async {
        let mut n: u64 = 0;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| fetch_err(url, error_chain(&e)))?
        {
            n += chunk.len() as u64;
            if n > max {
                return Err(fetch_err(
                    url,
                    format!("larger than the limit of {max} bytes"),
                ));
            }
            file.write_all(&chunk)
                .await
                .map_err(io("writing download file"))?;
        }
        file.flush().await.map_err(io("writing download file"))?;
        file.sync_all().await.map_err(io("syncing download file"))?;
        Ok(())
    }
    .await;
    if res.is_err() {
        drop(file);
        let _ = tokio::fs::remove_file(dest).await;
    }
    res
}

// ---------------------------------------------------------------------------------------------
// appc names

/// Whether `s` is an appc AC identifier (`[a-z0-9]+([-._~/][a-z0-9]+)*`).
pub(crate) fn is_ac_identifier(s: &str) -> bool {
    if s.is_empty() || s.len() > MAX_NAME_LEN {
        return false;
    }
    let mut prev_sep = true; // must start with an alphanumeric
    for b in s.bytes() {
        let alnum = b.is_ascii_lowercase() || b.is_ascii_digit();
        let sep = matches!(b, b'-' | b'.' | b'_' | b'~' | b'/');
        if alnum {
            prev_sep = false;
        } else if sep && !prev_sep {
            prev_sep = true;
        } else {
            return false;
        }
    }
    !prev_sep
}

/// Whether `s` is an appc AC name (`[a-z0-9]+(-[a-z0-9]+)*`): label names.
fn is_ac_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Label values go into URLs unescaped, as appc does: keep them to URL-safe characters.
fn is_label_value(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'~'))
}

/// appc's name for the host architecture (appc maps Go's `amd64`, `arm64`, … to these).
pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "i386",
        "aarch64" if cfg!(target_endian = "big") => "aarch64_be",
        "aarch64" => "aarch64",
        "arm" => "armv7l",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        other => other,
    }
}

/// Parse rkt's appc image string `NAME[:VERSION][,label=value…]` (after `appc:`): the name
/// and its labels, with `version` defaulting to `latest`, `os` to `linux` and `arch` to the
/// host's (appc's names).
pub(crate) fn parse_appc(s: &str) -> Result<(String, BTreeMap<String, String>)> {
    let bad = |why: &str| Error::Invalid {
        what: format!("appc image name {s:?}"),
        reason: why.to_string(),
    };
    if s.len() > 4096 {
        return Err(bad("too long"));
    }
    let mut parts = s.split(',');
    let head = parts.next().unwrap_or_default();
    let (name, version) = match head.split_once(':') {
        Some((n, v)) => (n, Some(v)),
        None => (head, None),
    };
    if !is_ac_identifier(name) {
        return Err(bad(
            "the name must be an AC identifier (lower-case letters, digits and -._~/ between them)",
        ));
    }
    let mut labels = BTreeMap::new();
    if let Some(v) = version {
        if !is_label_value(v) {
            return Err(bad("bad version"));
        }
        labels.insert("version".to_string(), v.to_string());
    }
    for kv in parts {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| bad("labels are written label=value"))?;
        if !is_ac_name(k) {
            return Err(bad(&format!("bad label name {k:?}")));
        }
        if k == "name" || k == "ext" {
            return Err(bad(&format!("{k:?} is not a label")));
        }
        if !is_label_value(v) {
            return Err(bad(&format!("bad value for label {k:?}")));
        }
        if labels.insert(k.to_string(), v.to_string()).is_some() {
            return Err(bad(&format!("label {k:?} given twice")));
        }
    }
    if labels.len() > 32 {
        return Err(bad("too many labels"));
    }
    labels
        .entry("version".into())
        .or_insert_with(|| "latest".into());
    labels.entry("os".into()).or_insert_with(|| "linux".into());
    labels
        .entry("arch".into())
        .or_insert_with(|| host_arch().into());
    Ok((name.to_string(), labels))
}

// ---------------------------------------------------------------------------------------------
// discovery

/// Where discovery says an image, its signature and its signers' keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Discovered {
    /// The ACI's URL.
    pub aci: String,
    /// Its detached signature's URL (`.aci.asc`).
    pub signature: String,
    /// `ac-discovery-pubkeys` URLs for the name, longest prefix first.
    pub pubkeys: Vec<String>,
}

/// The `ac-discovery*` meta tags of a page: (prefix, template or URL) pairs.
#[derive(Debug, Default, PartialEq, Eq)]
struct Meta {
    discovery: Vec<(String, String)>,
    pubkeys: Vec<(String, String)>,
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Attributes of one tag's inside (after `<meta`, before `>`): lower-cased names, values with
/// the common entities decoded. Scanned as bytes (every delimiter is ASCII; a step may land
/// inside a multi-byte character, so nothing indexes the `str`).
fn attributes(tag: &str) -> Vec<(String, String)> {
    let b = tag.as_bytes();
    let text = |from: usize, to: usize| String::from_utf8_lossy(&b[from..to]).into_owned();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() && out.len() < 16 {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'/') {
            i += 1;
        }
        let name = text(start, i).to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let vstart = i + 1;
                let vend = b[vstart..]
                    .iter()
                    .position(|&c| c == q)
                    .map_or(b.len(), |p| vstart + p);
                value = decode_entities(&text(vstart, vend));
                i = (vend + 1).min(b.len());
            } else {
                let vstart = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                value = decode_entities(&text(vstart, i));
            }
        }
        if name.is_empty() {
            // a stray '=' or quote: skip a byte so the loop always advances
            i += 1;
            continue;
        }
        out.push((name, value));
    }
    out
}

/// Find `ac-discovery` and `ac-discovery-pubkeys` meta tags in an HTML page (tolerant: no
/// HTML parser, any case, either quote, attributes in any order; bounded).
fn parse_meta(page: &[u8]) -> Meta {
    let text = String::from_utf8_lossy(page);
    let lower = text.to_ascii_lowercase();
    let mut meta = Meta::default();
    let mut pos = 0;
    let mut seen = 0;
    while let Some(off) = lower[pos..].find("<meta") {
        let start = pos + off + "<meta".len();
        let end = lower[start..].find('>').map_or(lower.len(), |e| start + e);
        pos = end;
        // `<metadata>` and the like are not meta tags
        if !lower[start..]
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_whitespace() || c == b'/')
        {
            continue;
        }
        seen += 1;
        if seen > MAX_META_TAGS {
            break;
        }
        let attrs = attributes(&text[start..end]);
        let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let (Some(name), Some(content)) = (get("name"), get("content")) else {
            continue;
        };
        let fields: Vec<&str> = content.split_whitespace().collect();
        let [prefix, url] = fields[..] else { continue };
        let entry = (prefix.to_string(), url.to_string());
        match name.to_ascii_lowercase().as_str() {
            "ac-discovery" => meta.discovery.push(entry),
            "ac-discovery-pubkeys" => meta.pubkeys.push(entry),
            _ => {}
        }
    }
    meta
}

/// Fill a template's `{name}`, `{ext}` and `{label}` placeholders; `None` when one is left
/// unfilled (the template does not apply to these labels), as appc does.
fn render(
    template: &str,
    name: &str,
    ext: &str,
    labels: &BTreeMap<String, String>,
) -> Option<String> {
    let mut s = template.replace("{name}", name).replace("{ext}", ext);
    for (k, v) in labels {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    if s.contains(['{', '}']) {
        return None;
    }
    Some(s)
}

fn is_http_url(s: &str) -> bool {
    Url::parse(s).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    })
}

/// The image and signature URLs from a page's tags: the longest prefix of `name` whose
/// template renders fully to an http(s) URL.
fn pick(meta: &Meta, name: &str, labels: &BTreeMap<String, String>) -> Option<(String, String)> {
    let mut candidates: Vec<&(String, String)> = meta
        .discovery
        .iter()
        .filter(|(p, _)| name.starts_with(p.as_str()))
        .collect();
    candidates.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    candidates.into_iter().find_map(|(_, tpl)| {
        let aci = render(tpl, name, "aci", labels)?;
        let sig = render(tpl, name, "aci.asc", labels)?;
        (is_http_url(&aci) && is_http_url(&sig)).then_some((aci, sig))
    })
}

/// `ac-discovery-pubkeys` URLs for `name`, longest prefix first, without duplicates.
fn pubkeys_for(meta: &Meta, name: &str, out: &mut Vec<String>) {
    let mut keys: Vec<&(String, String)> = meta
        .pubkeys
        .iter()
        .filter(|(p, u)| name.starts_with(p.as_str()) && is_http_url(u))
        .collect();
    keys.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    for (_, u) in keys {
        if !out.contains(u) && out.len() < 16 {
            out.push(u.clone());
        }
    }
}

/// The fuzz target's body (`crate::fuzzing::discovery_page`): a page's tags, and what a fixed
/// name picks from them; true when it names an image.
pub(crate) fn fuzz_page(page: &[u8]) -> bool {
    let meta = parse_meta(page);
    let labels: BTreeMap<String, String> = [("version", "1.0"), ("os", "linux"), ("arch", "amd64")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut keys = Vec::new();
    pubkeys_for(&meta, "example.com/app", &mut keys);
    pick(&meta, "example.com/app", &labels).is_some()
}

/// `name` and its parent paths down to the host: `a.b/c/d`, `a.b/c`, `a.b`.
fn levels(name: &str) -> Vec<&str> {
    let mut out = vec![name];
    let mut cur = name;
    while let Some(i) = cur.rfind('/') {
        cur = &cur[..i];
        out.push(cur);
        if out.len() >= MAX_LEVELS {
            break;
        }
    }
    out
}

/// appc discovery of `name` with `labels` (as [`parse_appc`] gives them).
pub(crate) async fn discover(
    name: &str,
    labels: &BTreeMap<String, String>,
    http: &HttpClient,
) -> Result<Discovered> {
    discover_at(name, labels, http, None).await
}

/// [`discover`], with the pages fetched from `authority` (`host:port`) instead of the name's
/// host (appc's discovery port for tests).
async fn discover_at(
    name: &str,
    labels: &BTreeMap<String, String>,
    http: &HttpClient,
    authority: Option<&str>,
) -> Result<Discovered> {
    if !is_ac_identifier(name) {
        return Err(Error::BadReference(name.to_string()));
    }
    for (k, v) in labels {
        if !is_ac_name(k) || !is_label_value(v) {
            return Err(Error::Invalid {
                what: format!("labels of appc image {name:?}"),
                reason: format!("bad label {k:?}={v:?}"),
            });
        }
    }
    let mut failures = Vec::new();
    let mut pubkeys = Vec::new();
    for level in levels(name) {
        let (host, path) = level.split_once('/').unwrap_or((level, ""));
        let host = authority.unwrap_or(host);
        let mut schemes = vec!["https"];
        if http.allows_http() {
            schemes.push("http");
        }
        for scheme in schemes {
            let url = format!("{scheme}://{host}/{path}?ac-discovery=1");
            let page = match http.get_bytes(&url, MAX_DISCOVERY_PAGE).await {
                Ok(Some(p)) => p,
                Ok(None) => {
                    failures.push(format!("{url}: not found"));
                    continue;
                }
                Err(e) => {
                    tracing::debug!(%url, error = %e, "discovery page failed");
                    failures.push(e.to_string());
                    continue;
                }
            };
            let meta = parse_meta(&page);
            pubkeys_for(&meta, name, &mut pubkeys);
            if let Some((aci, signature)) = pick(&meta, name, labels) {
                tracing::debug!(%url, %aci, "discovered");
                return Ok(Discovered {
                    aci,
                    signature,
                    pubkeys,
                });
            }
            failures.push(format!("{url}: no matching ac-discovery meta tag"));
            // a page was served over this scheme: do not ask the same level over http
            break;
        }
    }
    failures.truncate(8);
    Err(Error::Fetch {
        url: format!("appc discovery of {name}"),
        reason: format!("no ACI found ({})", failures.join("; ")),
    })
}

/// The `ac-discovery-pubkeys` URLs appc discovery names for `name` (a `rkt trust --prefix`
/// without key files): the first level, from the name down to its host, whose page names any.
pub(crate) async fn discover_pubkeys(name: &str, http: &HttpClient) -> Result<Vec<String>> {
    if !is_ac_identifier(name) {
        return Err(Error::BadReference(name.to_string()));
    }
    let mut failures = Vec::new();
    for level in levels(name) {
        let (host, path) = level.split_once('/').unwrap_or((level, ""));
        let mut schemes = vec!["https"];
        if http.allows_http() {
            schemes.push("http");
        }
        for scheme in schemes {
            let url = format!("{scheme}://{host}/{path}?ac-discovery=1");
            match http.get_bytes(&url, MAX_DISCOVERY_PAGE).await {
                Ok(Some(page)) => {
                    let mut keys = Vec::new();
                    pubkeys_for(&parse_meta(&page), name, &mut keys);
                    if !keys.is_empty() {
                        return Ok(keys);
                    }
                    failures.push(format!("{url}: no matching ac-discovery-pubkeys meta tag"));
                    break;
                }
                Ok(None) => failures.push(format!("{url}: not found")),
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    failures.truncate(8);
    Err(Error::Fetch {
        url: format!("appc discovery of {name}"),
        reason: format!("no keys found ({})", failures.join("; ")),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::Arc;

    /// A loopback http server: `routes` maps a request target (path and query) to a body;
    /// anything else is 404. Returns `host:port` and the list of targets asked for.
    pub(crate) fn serve(routes: Vec<(String, Vec<u8>)>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                // a TLS ClientHello (https tried first): hang up, this server speaks http
                let mut first = [0u8; 1];
                if conn
                    .peek(&mut first)
                    .map_or(true, |n| n == 0 || first[0] == 0x16)
                {
                    continue;
                }
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                seen2.lock().unwrap().push(target.clone());
                let resp = match routes.iter().find(|(t, _)| *t == target) {
                    Some((_, body)) => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(body);
                        r
                    }
                    None => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = conn.write_all(&resp);
            }
        });
        (addr, seen)
    }

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_stray_quote_before_a_multibyte_character_is_skipped_not_a_panic() {
        // found by the discovery_page fuzz target: a step over a stray byte landed inside 'ߜ'
        let page = "<meta =\"ac-discovery\"\u{7dc}\u{fffd}tent=\"example.com x\">".as_bytes();
        assert_eq!(parse_meta(page), Meta::default());
        let attrs = attributes(" \"\u{7dc}=\u{e9}\u{e9} name=ac-discovery");
        assert_eq!(
            attrs.last().unwrap(),
            &("name".to_string(), "ac-discovery".to_string())
        );
    }

    #[test]
    fn appc_names() {
        let (n, l) = parse_appc("example.com/app:v1.2+git,os=linux,channel=beta").unwrap();
        assert_eq!(n, "example.com/app");
        assert_eq!(
            l,
            labels(&[
                ("version", "v1.2+git"),
                ("os", "linux"),
                ("arch", host_arch()),
                ("channel", "beta")
            ])
        );
        let (n, l) = parse_appc("localhost/app").unwrap();
        assert_eq!(n, "localhost/app");
        assert_eq!(l["version"], "latest");
        assert_eq!(l["os"], "linux");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(l["arch"], "amd64");
        }
        let (_, l) = parse_appc("coreos.com/etcd,version=v3,arch=aarch64").unwrap();
        assert_eq!(
            (l["version"].as_str(), l["arch"].as_str()),
            ("v3", "aarch64")
        );
        for bad in [
            "",
            "Example.com/app",
            "example.com//app",
            "example.com/app/",
            "-x.com",
            "example.com/app:",
            "example.com/app:v1,version=v2",
            "example.com/app,os",
            "example.com/app,OS=linux",
            "example.com/app,os=",
            "example.com/app,os=a/b",
            "example.com/app,os={arch}",
            "example.com/app,name=x",
            "example.com/app,os=linux,os=linux",
            "example.com/app:v1?x=1",
        ] {
            assert!(parse_appc(bad).is_err(), "{bad:?}");
        }
        assert!(is_ac_identifier("a.b-c_d~e/f9"));
        assert!(!is_ac_identifier("a..b"));
        assert!(!is_ac_identifier(&"a".repeat(600)));
    }

    #[test]
    fn meta_parsing_is_tolerant() {
        let page = br#"<!DOCTYPE html><html><head>
<META NAME="ac-discovery" CONTENT="example.com https://example.com/{os}/{arch}/{name}-{version}.{ext}">
<meta content='example.com/app   https://cdn.example.com/{name}-{version}-{os}-{arch}.{ext}' name='AC-Discovery' />
<meta name=ac-discovery-pubkeys content="example.com https://example.com/pubkeys.gpg">
<meta name="ac-discovery" content="only-one-field">
<meta name="description" content="a b">
<metadata name="ac-discovery" content="x y">
<meta name="ac-discovery" content="example.org https://x/?a=1&amp;b=2">
</head></html>"#;
        let m = parse_meta(page);
        assert_eq!(
            m.discovery,
            vec![
                (
                    "example.com".to_string(),
                    "https://example.com/{os}/{arch}/{name}-{version}.{ext}".to_string()
                ),
                (
                    "example.com/app".to_string(),
                    "https://cdn.example.com/{name}-{version}-{os}-{arch}.{ext}".to_string()
                ),
                ("example.org".to_string(), "https://x/?a=1&b=2".to_string()),
            ]
        );
        assert_eq!(
            m.pubkeys,
            vec![(
                "example.com".to_string(),
                "https://example.com/pubkeys.gpg".to_string()
            )]
        );
    }

    #[test]
    fn meta_parsing_survives_hostile_html() {
        let mut cases: Vec<Vec<u8>> = vec![
            b"<meta".to_vec(),
            b"<meta name=\"ac-discovery\" content=\"a".to_vec(),
            b"<meta name='ac-discovery content=x y>".to_vec(),
            b"<meta ===== '''' \"\"\" >".to_vec(),
            b"<meta name=ac-discovery content=a b c>".to_vec(),
            vec![0xff, 0xfe, b'<', b'm', b'e', b't', b'a', b' ', 0xc3],
            "<meta name=\"ac-discovery\" content=\"é ü\">"
                .as_bytes()
                .to_vec(),
            b"<<<<meta>>>><meta/><meta\t/>".to_vec(),
        ];
        cases.push("<meta name=a content=b>".repeat(10_000).into_bytes());
        cases.push(format!("<meta {}>", "x=y ".repeat(100_000)).into_bytes());
        for c in &cases {
            let _ = parse_meta(c);
        }
        // only the first MAX_META_TAGS tags count
        let page = "<meta name=x content=y>".repeat(MAX_META_TAGS)
            + "<meta name=ac-discovery content=\"a https://a/{name}.{ext}\">";
        assert!(parse_meta(page.as_bytes()).discovery.is_empty());
    }

    #[test]
    fn templates_and_prefixes() {
        let l = labels(&[("version", "v1"), ("os", "linux"), ("arch", "amd64")]);
        assert_eq!(
            render(
                "https://e.com/{os}/{arch}/{name}-{version}.{ext}",
                "e.com/app",
                "aci",
                &l
            )
            .as_deref(),
            Some("https://e.com/linux/amd64/e.com/app-v1.aci")
        );
        assert_eq!(
            render(
                "https://e.com/{name}-{channel}.{ext}",
                "e.com/app",
                "aci",
                &l
            ),
            None
        );
        let meta = Meta {
            discovery: vec![
                (
                    "e.com".into(),
                    "https://e.com/{name}-{version}.{ext}".into(),
                ),
                (
                    "e.com/app".into(),
                    "https://cdn.e.com/{name}-{version}-{channel}.{ext}".into(),
                ),
                ("e.com/ap".into(), "https://ap.e.com/{name}.{ext}".into()),
                ("e.com/app".into(), "ftp://e.com/{name}.{ext}".into()),
                ("other.com".into(), "https://o/{name}.{ext}".into()),
            ],
            pubkeys: vec![
                ("e.com".into(), "https://e.com/keys.gpg".into()),
                ("e.com/app".into(), "https://e.com/app-keys.gpg".into()),
                ("other.com".into(), "https://o/keys.gpg".into()),
                ("e.com".into(), "file:///etc/passwd".into()),
            ],
        };
        // the longest prefix whose template renders (the {channel} one does not, ftp is out)
        assert_eq!(
            pick(&meta, "e.com/app", &l),
            Some((
                "https://ap.e.com/e.com/app.aci".into(),
                "https://ap.e.com/e.com/app.aci.asc".into()
            ))
        );
        let mut with_channel = l.clone();
        with_channel.insert("channel".into(), "beta".into());
        assert_eq!(
            pick(&meta, "e.com/app", &with_channel).unwrap().0,
            "https://cdn.e.com/e.com/app-v1-beta.aci"
        );
        assert_eq!(
            pick(&meta, "e.com/x", &l).unwrap().1,
            "https://e.com/e.com/x-v1.aci.asc"
        );
        assert_eq!(pick(&meta, "nothing.net/x", &l), None);
        let mut keys = Vec::new();
        pubkeys_for(&meta, "e.com/app", &mut keys);
        assert_eq!(
            keys,
            ["https://e.com/app-keys.gpg", "https://e.com/keys.gpg"]
        );
        assert_eq!(levels("a.b/c/d"), ["a.b/c/d", "a.b/c", "a.b"]);
        assert_eq!(levels("a.b"), ["a.b"]);
    }

    #[tokio::test]
    async fn discovery_walks_up_to_the_host() {
        let page = br#"<html><head>
<meta name="ac-discovery" content="localhost/app https://localhost/{name}/{os}-{arch}-{version}.{ext}">
<meta name="ac-discovery-pubkeys" content="localhost https://localhost/keys.asc">
</head></html>"#;
        // only the host level answers: the name and its parent are 404
        let (addr, seen) = serve(vec![("/?ac-discovery=1".into(), page.to_vec())]);
        let http = HttpClient::new(&[], false, true);
        let l = labels(&[("version", "v1"), ("os", "linux"), ("arch", "amd64")]);
        let d = discover_at("localhost/app/sub", &l, &http, Some(&addr))
            .await
            .unwrap();
        assert_eq!(
            d,
            Discovered {
                aci: "https://localhost/localhost/app/sub/linux-amd64-v1.aci".into(),
                signature: "https://localhost/localhost/app/sub/linux-amd64-v1.aci.asc".into(),
                pubkeys: vec!["https://localhost/keys.asc".into()],
            }
        );
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                "/app/sub?ac-discovery=1",
                "/app?ac-discovery=1",
                "/?ac-discovery=1"
            ]
        );

        // nothing anywhere: one error naming the name
        let (addr, _) = serve(vec![]);
        let err = discover_at("localhost/app", &l, &http, Some(&addr))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("appc discovery of localhost/app"), "{err}");
    }

    #[tokio::test]
    async fn http_needs_the_flag_and_bodies_are_capped() {
        let (addr, _) = serve(vec![
            ("/big".into(), vec![b'x'; 2000]),
            ("/ok".into(), b"hi".to_vec()),
        ]);
        let strict = HttpClient::new(&[], false, false);
        let err = strict
            .get_bytes(&format!("http://{addr}/ok"), 100)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("http://{addr}/ok")) && err.contains("--insecure-options=http"),
            "{err}"
        );
        // an explicitly configured http URL is used as configured
        assert_eq!(
            strict
                .get_configured(&format!("http://{addr}/ok"), 100)
                .await
                .unwrap(),
            Some(b"hi".to_vec())
        );
        let err = strict
            .get_bytes("ftp://x/y", 100)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("scheme"), "{err}");

        let http = HttpClient::new(&[], false, true);
        assert_eq!(
            http.get_bytes(&format!("http://{addr}/nope"), 100)
                .await
                .unwrap(),
            None
        );
        let err = http
            .get_bytes(&format!("http://{addr}/big"), 1000)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("limit of 1000"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.aci");
        download(&format!("http://{addr}/big"), &dest, 5000, &http)
            .await
            .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap().len(), 2000);
        let dest = dir.path().join("y.aci");
        let err = download(&format!("http://{addr}/big"), &dest, 100, &http)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("limit of 100"), "{err}");
        assert!(!dest.exists());
        let err = download(&format!("http://{addr}/nope"), &dest, 100, &http)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("404"), "{err}");
    }

    #[test]
    fn bad_ca_file_is_named() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("certs.d/localhost");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("ca.crt"), "not a certificate").unwrap();
        let http = HttpClient::new(&[t.path().to_path_buf()], false, false);
        let err = http
            .client_for(&Url::parse("https://localhost/x").unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("ca.crt"), "{err}");
        // another host has no CA files: fine
        assert!(http
            .client_for(&Url::parse("https://example.com/x").unwrap())
            .is_ok());
    }

    fn openssl(args: &[&str], dir: &Path) {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    struct Child(std::process::Child);
    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[tokio::test]
    #[ignore = "needs openssl"]
    async fn https_trusts_certs_d_of_its_endpoint_only() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        let args = |s: String| -> Vec<String> { s.split(' ').map(str::to_string).collect() };
        let run = |s: String| {
            let a = args(s);
            openssl(&a.iter().map(String::as_str).collect::<Vec<_>>(), d)
        };
        run(format!(
            "req -x509 -days 2 -subj /CN=ca {ec} -keyout ca.key -out ca.crt"
        ));
        run(format!(
            "req -subj /CN=localhost {ec} -keyout tls.key -out tls.csr"
        ));
        std::fs::write(d.join("ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
        run("x509 -req -days 2 -CAcreateserial -in tls.csr -CA ca.crt -CAkey ca.key -extfile ext -out tls.crt".into());
        let www = d.join("www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("hello.txt"), "hello").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let _server = Child(
            std::process::Command::new("openssl")
                .args(["s_server", "-quiet", "-WWW", "-accept"])
                .arg(format!("127.0.0.1:{port}"))
                .arg("-cert")
                .arg(d.join("tls.crt"))
                .arg("-key")
                .arg(d.join("tls.key"))
                .current_dir(&www)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let t0 = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed().as_secs() < 10, "s_server did not come up");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let url = format!("https://localhost:{port}/hello.txt");
        let (good, other) = (d.join("good"), d.join("other"));
        let ca = std::fs::read(d.join("ca.crt")).unwrap();
        for (root, host) in [
            (&good, format!("localhost:{port}")),
            (&other, "localhost".into()),
        ] {
            let dir = root.join("certs.d").join(host);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("ca.crt"), &ca).unwrap();
        }
        // the CA of this host:port is trusted
        let http = HttpClient::new(&[other.clone(), good.clone()], false, false);
        assert_eq!(
            http.get_bytes(&url, 100).await.unwrap(),
            Some(b"hello".to_vec())
        );
        // a CA for another endpoint (no port) is not: the error says where to put it
        let http = HttpClient::new(std::slice::from_ref(&other), false, false);
        let err = http.get_bytes(&url, 100).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!("certs.d/localhost:{port}/ca.crt"))
                && err.contains("--insecure-options=tls"),
            "{err}"
        );
        // --insecure-options=tls
        let http = HttpClient::new(&[], true, false);
        assert_eq!(
            http.get_bytes(&url, 100).await.unwrap(),
            Some(b"hello".to_vec())
        );
    }
}
