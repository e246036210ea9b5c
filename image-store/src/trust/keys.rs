//! `rkt trust`'s key store: the OpenPGP keys trusted to sign images, for every image (root keys)
//! or for the images whose names start with a prefix.
//!
//! # Layout (rkt's)
//! In every config root (system `/usr/lib/rkt`, local `/etc/rkt`, user …):
//! - `trustedkeys/root.d/<fingerprint>`: a key trusted for every image;
//! - `trustedkeys/prefix.d/<prefix>/<fingerprint>`: a key trusted for the images under a prefix.
//!   As in rkt, the prefix is not escaped into one file name: its `/`-separated components are
//!   nested directories (`prefix.d/example.com/app/<fingerprint>`), which is why a prefix is
//!   validated (no empty, `.` or `..` component, no NUL, lower-case, a name's characters only).
//!
//! A key file holds one armored public key; its name is the primary key's fingerprint in
//! lower-case hex, and a file whose content is another key is an error. Files whose names are
//! not fingerprints are ignored (a temporary file of an interrupted add, a README).
//!
//! # Precedence and masking (rkt's)
//! Config roots are read lowest precedence first. For one scope, a key file in a later root
//! replaces the same fingerprint's file of an earlier root, and an *empty* file named after a
//! fingerprint masks (distrusts) that key as found in earlier roots: this is how the local root
//! removes a key the system root ships ([`KeyStore::remove`] writes such a mask when the key
//! is in a lower root). When the keys for an image are gathered ([`KeyStore::keys_for`]), files
//! are taken in rkt's order — `root.d` of every root, then the matching prefixes of every root,
//! shorter prefixes first — and an empty file removes that fingerprint from everything gathered
//! before it: a mask in a prefix directory also distrusts a root key for the images under that
//! prefix.
//!
//! # Prefix matching
//! Prefix `example.com/app` covers `example.com/app`, `example.com/app/x` and
//! `example.com/app:v1` / `example.com/app@sha256:…`, but not `example.com/apple`: prefixes
//! match whole name components, the last one possibly followed by a tag or digest. Names and
//! prefixes are compared as given, case-sensitively (rkt's names are lower-case only).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::Utc;

use super::pgp;
pub use super::pgp::PublicKey;
use crate::error::{io_err, Error, Result};

/// The most prefix components (directory depth) the store reads or writes.
const MAX_DEPTH: usize = 32;
/// The longest prefix accepted.
const MAX_PREFIX_LEN: usize = 1024;

/// Which images a key is trusted for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyScope {
    /// Every image.
    Root,
    /// The images whose names start with this prefix (by whole components).
    Prefix(String),
}

impl KeyScope {
    /// A prefix scope, validated.
    pub fn prefix(prefix: &str) -> Result<KeyScope> {
        validate_prefix(prefix)?;
        Ok(KeyScope::Prefix(prefix.to_string()))
    }

    /// Whether this scope covers the image `name`.
    pub fn covers(&self, name: &str) -> bool {
        match self {
            KeyScope::Root => true,
            KeyScope::Prefix(p) => prefix_matches(p, name),
        }
    }
}

impl std::fmt::Display for KeyScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyScope::Root => f.write_str("root"),
            KeyScope::Prefix(p) => f.write_str(p),
        }
    }
}

/// A key of the store and where it is.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// What it is trusted for.
    pub scope: KeyScope,
    /// Its file.
    pub path: PathBuf,
    /// The key (fingerprint, user IDs, …).
    pub key: PublicKey,
}

/// The trusted keys of a set of config roots.
#[derive(Debug, Clone)]
pub struct KeyStore {
    /// Lowest precedence first.
    config_dirs: Vec<PathBuf>,
    /// Where `add` and `remove` write (the local config root).
    writable: PathBuf,
}

/// A key file (or mask) found by a scan, not yet parsed.
#[derive(Debug, Clone)]
struct Entry {
    /// Index in `config_dirs` (`usize::MAX` for the writable root when it is not one).
    root: usize,
    scope: KeyScope,
    fingerprint: String,
    path: PathBuf,
    /// An empty file: a mask.
    mask: bool,
}

fn invalid(what: &str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        what: what.into(),
        reason: reason.into(),
    }
}

/// Check a prefix: components of a name's characters, none empty, `.` or `..`.
fn validate_prefix(prefix: &str) -> Result<()> {
    let bad = |why: &str| Err(invalid("key prefix", format!("{prefix:?}: {why}")));
    if prefix.is_empty() {
        return bad("empty");
    }
    if prefix.len() > MAX_PREFIX_LEN {
        return bad("too long");
    }
    if prefix.contains('\0') {
        return bad("contains NUL");
    }
    if prefix.chars().any(|c| c.is_ascii_uppercase()) {
        return bad("must be lower-case");
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._~:@/".contains(*c)))
    {
        return bad(&format!("character {c:?} is not allowed"));
    }
    let components: Vec<&str> = prefix.split('/').collect();
    if components.len() > MAX_DEPTH {
        return bad("too many components");
    }
    for c in components {
        match c {
            "" => return bad("empty component"),
            "." | ".." => return bad("'.' or '..' component"),
            _ if c.len() > 255 => return bad("component too long"),
            _ => {}
        }
    }
    Ok(())
}

/// Whether `prefix` covers `name` by whole components (the last may carry `:tag` / `@digest`
/// when it is the name's last).
fn prefix_matches(prefix: &str, name: &str) -> bool {
    let p: Vec<&str> = prefix.split('/').collect();
    let n: Vec<&str> = name.split('/').collect();
    if p.len() > n.len() {
        return false;
    }
    let last = p.len() - 1;
    for (i, (pc, nc)) in p.iter().zip(&n).enumerate() {
        if pc == nc {
            continue;
        }
        let suffixed = i == last
            && i == n.len() - 1
            && nc
                .strip_prefix(pc)
                .is_some_and(|rest| rest.starts_with(':') || rest.starts_with('@'));
        if !suffixed {
            return false;
        }
    }
    true
}

/// A fingerprint as typed (any case, spaces, `0x`) in the store's form: lower-case hex, 40
/// (v4) or 64 (v6) digits.
pub fn normalize_fingerprint(fp: &str) -> Result<String> {
    let s: String = fp.chars().filter(|c| !c.is_whitespace()).collect();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(&s)
        .to_ascii_lowercase();
    if is_fingerprint(&s) {
        Ok(s)
    } else {
        Err(invalid(
            "key fingerprint",
            format!("{fp:?}: expected 40 or 64 hexadecimal digits"),
        ))
    }
}

fn is_fingerprint(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn trusted_dir(root: &Path) -> PathBuf {
    root.join("trustedkeys")
}

fn scope_dir(root: &Path, scope: &KeyScope) -> PathBuf {
    match scope {
        KeyScope::Root => trusted_dir(root).join("root.d"),
        KeyScope::Prefix(p) => {
            let mut d = trusted_dir(root).join("prefix.d");
            d.extend(p.split('/'));
            d
        }
    }
}

/// Read one key file: `None` for a mask; the key named by the file otherwise.
fn load_key(path: &Path, fingerprint: &str) -> Result<Option<PublicKey>> {
    let bytes = match crate::file::read_capped(path, pgp::MAX_KEYS_BYTES as u64) {
        Ok(b) => b,
        Err(crate::file::CappedError::TooLarge(_)) => {
            return Err(invalid(
                "trusted key",
                format!("{}: over {} bytes", path.display(), pgp::MAX_KEYS_BYTES),
            ))
        }
        Err(e) => return Err(io_err("reading trusted key", path)(e.into_io())),
    };
    if bytes.is_empty() {
        return Ok(None);
    }
    let keys = pgp::parse_keys(&bytes)
        .map_err(|e| invalid("trusted key", format!("{}: {e}", path.display())))?;
    keys.into_iter()
        .find(|k| k.fingerprint == fingerprint)
        .map(Some)
        .ok_or_else(|| {
            invalid(
                "trusted key",
                format!(
                    "{}: fingerprint mismatch, the file holds another key",
                    path.display()
                ),
            )
        })
}

/// Create `dir` and its missing parents below `base` with mode 0755.
fn create_dirs(base: &Path, dir: &Path) -> Result<()> {
    let rel = dir.strip_prefix(base).unwrap_or(dir);
    let mut cur = base.to_path_buf();
    fs::create_dir_all(&cur).map_err(io_err("creating directory", &cur))?;
    for c in rel.components() {
        cur.push(c);
        match fs::create_dir(&cur) {
            Ok(()) => fs::set_permissions(&cur, fs::Permissions::from_mode(0o755))
                .map_err(io_err("setting mode of", &cur))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && cur.is_dir() => {}
            Err(e) => return Err(io_err("creating directory", &cur)(e)),
        }
    }
    Ok(())
}

/// Write `path` atomically (a temporary file in the same directory, renamed), mode 0644.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(0o644))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("writing trusted key", path)(e)
    })
}

impl KeyStore {
    /// A store over `config_dirs` (lowest precedence first) that writes in `writable` (the
    /// local config dir).
    pub fn new(config_dirs: Vec<PathBuf>, writable: PathBuf) -> KeyStore {
        KeyStore {
            config_dirs,
            writable,
        }
    }

    /// Parse key material (a file or URL's content) for review before it is trusted.
    pub fn inspect(bytes: &[u8]) -> Result<Vec<PublicKey>> {
        pgp::parse_keys(bytes)
    }

    /// Trust every key of `bytes` for `scope`: each is written to its own file in the writable
    /// root (atomically, mode 0644, directories 0755). Nothing is written unless every key is
    /// valid, unexpired and unrevoked.
    pub fn add(&self, scope: &KeyScope, bytes: &[u8]) -> Result<Vec<TrustedKey>> {
        if let KeyScope::Prefix(p) = scope {
            validate_prefix(p)?;
        }
        let keys = pgp::parse_keys(bytes)?;
        let now = Utc::now();
        for k in &keys {
            k.check_usable(now)
                .map_err(|e| invalid("OpenPGP public key", e.to_string()))?;
        }
        let dir = scope_dir(&self.writable, scope);
        create_dirs(&self.writable, &dir)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let path = dir.join(&key.fingerprint);
            write_atomic(&path, &key.to_armored()?)?;
            out.push(TrustedKey {
                scope: scope.clone(),
                path,
                key,
            });
        }
        Ok(out)
    }

    /// The roots in precedence order, with their indexes (the writable one included).
    fn roots(&self) -> Vec<(usize, &Path)> {
        let mut v: Vec<(usize, &Path)> = self
            .config_dirs
            .iter()
            .enumerate()
            .map(|(i, p)| (i, p.as_path()))
            .collect();
        if !self.config_dirs.contains(&self.writable) {
            v.push((usize::MAX, self.writable.as_path()));
        }
        v
    }

    /// Every key file and mask of every root, in precedence order (roots lowest first; within
    /// a root, `root.d` then prefixes, shorter first).
    fn scan(&self) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for (idx, root) in self.roots() {
            let mut entries = Vec::new();
            scan_dir(
                &scope_dir(root, &KeyScope::Root),
                idx,
                &KeyScope::Root,
                &mut entries,
            )?;
            scan_prefixes(
                &trusted_dir(root).join("prefix.d"),
                idx,
                "",
                0,
                &mut entries,
            )?;
            entries.sort_by(|a, b| {
                depth(&a.scope)
                    .cmp(&depth(&b.scope))
                    .then_with(|| a.scope.cmp(&b.scope))
                    .then_with(|| a.fingerprint.cmp(&b.fingerprint))
            });
            out.extend(entries);
        }
        Ok(out)
    }

    /// The effective entries per (scope, fingerprint): a later root's file replaces an
    /// earlier one's, a mask removes it.
    fn effective(&self) -> Result<BTreeMap<(KeyScope, String), Entry>> {
        let mut map = BTreeMap::new();
        for e in self.scan()? {
            let k = (e.scope.clone(), e.fingerprint.clone());
            if e.mask {
                map.remove(&k);
            } else {
                map.insert(k, e);
            }
        }
        Ok(map)
    }

    /// Every trusted key (masks applied), root keys first, then by prefix and fingerprint.
    pub fn list(&self) -> Result<Vec<TrustedKey>> {
        let mut out = Vec::new();
        for ((scope, fp), e) in self.effective()? {
            if let Some(key) = load_key(&e.path, &fp)? {
                out.push(TrustedKey {
                    scope,
                    path: e.path,
                    key,
                });
            }
        }
        Ok(out)
    }

    /// Every prefix that has a trusted key (for the policy's implied requirements).
    pub fn prefixes(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for (scope, _) in self.effective()?.keys() {
            if let KeyScope::Prefix(p) = scope {
                if out.last() != Some(p) {
                    out.push(p.clone());
                }
            }
        }
        Ok(out)
    }

    /// The keys trusted to sign the image `name`: the root keys and those of every prefix
    /// covering it, masks applied in rkt's order (see the module's documentation).
    pub fn keys_for(&self, name: &str) -> Result<Vec<TrustedKey>> {
        if name.is_empty() || name.contains('\0') {
            return Err(invalid("image name", format!("{name:?}")));
        }
        let entries = self.scan()?;
        let mut order: Vec<&Entry> = Vec::new();
        // root.d of every root, then the covering prefixes of every root
        order.extend(entries.iter().filter(|e| e.scope == KeyScope::Root));
        order.extend(
            entries
                .iter()
                .filter(|e| e.scope != KeyScope::Root && e.scope.covers(name)),
        );
        let mut chosen: BTreeMap<String, &Entry> = BTreeMap::new();
        for e in order {
            if e.mask {
                chosen.remove(&e.fingerprint);
            } else {
                chosen.insert(e.fingerprint.clone(), e);
            }
        }
        let mut out = Vec::with_capacity(chosen.len());
        for (fp, e) in chosen {
            if let Some(key) = load_key(&e.path, &fp)? {
                out.push(TrustedKey {
                    scope: e.scope.clone(),
                    path: e.path.clone(),
                    key,
                });
            }
        }
        out.sort_by(|a, b| (&a.scope, &a.key.fingerprint).cmp(&(&b.scope, &b.key.fingerprint)));
        Ok(out)
    }

    /// Stop trusting the key `fingerprint` (for `scope`, or in every scope it has): its files in
    /// the writable root are removed, and where a lower-precedence root (the system one) has
    /// it too, an empty mask file is written in its place. Returns the paths removed or
    /// written; a key found nowhere to remove is an error naming it.
    pub fn remove(&self, fingerprint: &str, scope: Option<&KeyScope>) -> Result<Vec<PathBuf>> {
        let fp = normalize_fingerprint(fingerprint)?;
        if let Some(KeyScope::Prefix(p)) = scope {
            validate_prefix(p)?;
        }
        let writable_idx = self
            .config_dirs
            .iter()
            .position(|d| *d == self.writable)
            .unwrap_or(usize::MAX);
        let entries: Vec<Entry> = self
            .scan()?
            .into_iter()
            .filter(|e| e.fingerprint == fp && scope.is_none_or(|s| *s == e.scope))
            .collect();
        let mut scopes: Vec<&KeyScope> = entries.iter().map(|e| &e.scope).collect();
        scopes.sort();
        scopes.dedup();
        let mut done = Vec::new();
        for s in scopes {
            let path = scope_dir(&self.writable, s).join(&fp);
            let in_writable = entries
                .iter()
                .find(|e| e.scope == *s && e.root == writable_idx);
            // the state the lower roots leave, which the writable root overrides
            let mut lower_has = false;
            for e in entries
                .iter()
                .filter(|e| e.scope == *s && e.root < writable_idx)
            {
                lower_has = !e.mask;
            }
            if lower_has {
                if in_writable.is_some_and(|e| e.mask) {
                    continue;
                }
                create_dirs(&self.writable, &scope_dir(&self.writable, s))?;
                write_atomic(&path, b"")?;
                done.push(path);
            } else if let Some(e) = in_writable {
                fs::remove_file(&e.path).map_err(io_err("removing trusted key", &e.path))?;
                if let KeyScope::Prefix(_) = s {
                    self.prune(&path);
                }
                if !e.mask {
                    done.push(e.path.clone());
                }
            }
        }
        if done.is_empty() {
            let scope = scope.map(|s| format!(" for {s}")).unwrap_or_default();
            return Err(invalid(
                "trusted key",
                format!(
                    "no key {fp}{scope} to remove in {}",
                    trusted_dir(&self.writable).display()
                ),
            ));
        }
        Ok(done)
    }

    /// Remove the empty prefix directories left above a removed key file (best effort).
    fn prune(&self, key_path: &Path) {
        let top = trusted_dir(&self.writable).join("prefix.d");
        let mut dir = key_path.parent();
        while let Some(d) = dir {
            if d == top || !d.starts_with(&top) || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
}

fn depth(scope: &KeyScope) -> usize {
    match scope {
        KeyScope::Root => 0,
        KeyScope::Prefix(p) => p.split('/').count(),
    }
}

/// The key files (named by fingerprints) of one directory.
fn scan_dir(dir: &Path, root: usize, scope: &KeyScope, out: &mut Vec<Entry>) -> Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("reading trusted keys", dir)(e)),
    };
    for entry in rd {
        let entry = entry.map_err(io_err("reading trusted keys", dir))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !is_fingerprint(&name) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        out.push(Entry {
            root,
            scope: scope.clone(),
            fingerprint: name,
            path,
            mask: meta.len() == 0,
        });
    }
    Ok(())
}

/// The key files of `dir` (the prefix `prefix`) and of its subdirectories (longer prefixes).
fn scan_prefixes(
    dir: &Path,
    root: usize,
    prefix: &str,
    depth: usize,
    out: &mut Vec<Entry>,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    if !prefix.is_empty() {
        scan_dir(dir, root, &KeyScope::Prefix(prefix.to_string()), out)?;
    }
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("reading trusted keys", dir)(e)),
    };
    for entry in rd {
        let entry = entry.map_err(io_err("reading trusted keys", dir))?;
        // real directories only: a symlink loop must not be followed
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let sub = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if validate_prefix(&sub).is_err() {
            continue;
        }
        scan_prefixes(&entry.path(), root, &sub, depth + 1, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_FP: &str = "6f391f83a1d1f6d3d6454811c95743691db21c59";
    const RSA_FP: &str = "480ad5c2893ba59ec636a42eb1ede9ba8a8d3a03";

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("src/trust/testdata")
                .join(name),
        )
        .unwrap()
    }

    struct Setup {
        _tmp: tempfile::TempDir,
        system: PathBuf,
        local: PathBuf,
        store: KeyStore,
    }

    fn setup() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let system = tmp.path().join("usr-lib-rkt");
        let local = tmp.path().join("etc-rkt");
        let store = KeyStore::new(vec![system.clone(), local.clone()], local.clone());
        Setup {
            _tmp: tmp,
            system,
            local,
            store,
        }
    }

    fn prefix(p: &str) -> KeyScope {
        KeyScope::prefix(p).unwrap()
    }

    fn fps(keys: &[TrustedKey]) -> Vec<(String, String)> {
        keys.iter()
            .map(|k| (k.scope.to_string(), k.key.fingerprint.clone()))
            .collect()
    }

    #[test]
    fn prefixes_are_validated() {
        for ok in [
            "example.com",
            "example.com/app",
            "localhost:5000/a/b",
            "a-b_c~d.e/f@g",
        ] {
            assert!(KeyScope::prefix(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/",
            "../etc",
            "a/../b",
            "a/./b",
            ".",
            "a\0b",
            "Example.com",
            "a b",
            "a\\b",
            "*.example.com",
        ] {
            assert!(KeyScope::prefix(bad).is_err(), "{bad:?}");
        }
        assert!(KeyScope::prefix(&"a/".repeat(40)).is_err());
    }

    #[test]
    fn prefix_matching_is_by_component() {
        let p = "example.com/app";
        for yes in [
            "example.com/app",
            "example.com/app/x",
            "example.com/app:v1",
            "example.com/app@sha256:00",
        ] {
            assert!(prefix_matches(p, yes), "{yes}");
        }
        for no in [
            "example.com/apple",
            "example.com",
            "example.com/ap",
            "other.com/app",
            "example.com/app:v1/x",
            "example.com/app-x",
        ] {
            assert!(!prefix_matches(p, no), "{no}");
        }
        assert!(prefix_matches("example.com", "example.com/anything/deep"));
        assert!(!prefix_matches("example.com", "example.com:5000/x"));
    }

    #[test]
    fn fingerprints_are_normalized() {
        assert_eq!(
            normalize_fingerprint("6F39 1F83 A1D1 F6D3 D645  4811 C957 4369 1DB2 1C59").unwrap(),
            ED_FP
        );
        assert_eq!(normalize_fingerprint(&format!("0x{ED_FP}")).unwrap(), ED_FP);
        for bad in [
            "",
            "xyz",
            "6f391f83",
            &format!("{ED_FP}0"),
            "../../etc/passwd",
        ] {
            assert!(normalize_fingerprint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn add_list_and_layout() {
        let s = setup();
        let added = s
            .store
            .add(&prefix("example.com/app"), &fixture("ed25519.pub.asc"))
            .unwrap();
        assert_eq!(added.len(), 1);
        let want = s
            .local
            .join("trustedkeys/prefix.d/example.com/app")
            .join(ED_FP);
        assert_eq!(added[0].path, want);
        let meta = fs::metadata(&want).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        let dmeta = fs::metadata(want.parent().unwrap()).unwrap();
        assert_eq!(dmeta.permissions().mode() & 0o777, 0o755);
        let root = s
            .store
            .add(&KeyScope::Root, &fixture("rsa3072.pub.asc"))
            .unwrap();
        assert_eq!(
            root[0].path,
            s.local.join("trustedkeys/root.d").join(RSA_FP)
        );
        let list = s.store.list().unwrap();
        assert_eq!(
            fps(&list),
            vec![
                ("root".into(), RSA_FP.into()),
                ("example.com/app".into(), ED_FP.into())
            ]
        );
        assert_eq!(
            list[1].key.user_ids,
            vec!["Ed Signer <ed@example.com>".to_string()]
        );
        assert_eq!(
            s.store.prefixes().unwrap(),
            vec!["example.com/app".to_string()]
        );
        // a keyring export stores one file per key
        let both = s
            .store
            .add(&prefix("b.example"), &fixture("keyring.pub.asc"))
            .unwrap();
        assert_eq!(both.len(), 2);
        assert!(s
            .local
            .join("trustedkeys/prefix.d/b.example")
            .join(RSA_FP)
            .is_file());
        // no stray temporary files
        let names: Vec<_> = fs::read_dir(s.local.join("trustedkeys/prefix.d/b.example"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn add_refuses_bad_input() {
        let s = setup();
        for bad in [
            &b"not a key"[..],
            &fixture("data.txt.ed25519.asc"),
            &fixture("ed25519.sec.asc"),
        ] {
            assert!(s.store.add(&KeyScope::Root, bad).is_err());
        }
        let e = s
            .store
            .add(&KeyScope::Root, &fixture("expired.pub.asc"))
            .unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        let e = s
            .store
            .add(&KeyScope::Root, &fixture("revoked.pub.asc"))
            .unwrap_err();
        assert!(e.to_string().contains("revoked"), "{e}");
        // one bad key in the input: nothing written
        let mut mixed = fixture("ed25519.pub.asc");
        mixed.extend(fixture("revoked.pub.asc"));
        assert!(s.store.add(&KeyScope::Root, &mixed).is_err());
        assert!(s
            .store
            .add(
                &KeyScope::Prefix("../x".into()),
                &fixture("ed25519.pub.asc")
            )
            .is_err());
        assert!(s.store.list().unwrap().is_empty());
        assert!(!s.local.join("trustedkeys/root.d").join(ED_FP).exists());
    }

    #[test]
    fn keys_for_names() {
        let s = setup();
        s.store
            .add(&prefix("example.com/app"), &fixture("ed25519.pub.asc"))
            .unwrap();
        s.store
            .add(&KeyScope::Root, &fixture("rsa3072.pub.asc"))
            .unwrap();
        let got = |n: &str| fps(&s.store.keys_for(n).unwrap());
        let both = vec![
            ("root".to_string(), RSA_FP.to_string()),
            ("example.com/app".to_string(), ED_FP.to_string()),
        ];
        assert_eq!(got("example.com/app"), both);
        assert_eq!(got("example.com/app:v1"), both);
        assert_eq!(got("example.com/app/sub"), both);
        assert_eq!(got("example.com/apple"), vec![both[0].clone()]);
        assert_eq!(got("other.org/x"), vec![both[0].clone()]);
        assert!(s.store.keys_for("").is_err());
    }

    #[test]
    fn system_keys_local_overrides_and_masks() {
        let s = setup();
        // a system-wide key, as a distribution would ship it
        let sys = KeyStore::new(vec![s.system.clone()], s.system.clone());
        sys.add(&KeyScope::Root, &fixture("ed25519.pub.asc"))
            .unwrap();
        sys.add(&prefix("example.com"), &fixture("rsa3072.pub.asc"))
            .unwrap();
        let list = s.store.list().unwrap();
        assert_eq!(list.len(), 2);
        assert!(list[0].path.starts_with(&s.system));
        // the same key added locally: the local file is the one listed
        s.store
            .add(&KeyScope::Root, &fixture("ed25519.pub.asc"))
            .unwrap();
        let list = s.store.list().unwrap();
        assert_eq!(list.len(), 2);
        assert!(list[0].path.starts_with(&s.local));
        // removing it removes the local file and masks the system one
        let removed = s.store.remove(ED_FP, Some(&KeyScope::Root)).unwrap();
        assert_eq!(
            removed,
            vec![s.local.join("trustedkeys/root.d").join(ED_FP)]
        );
        assert_eq!(fs::metadata(&removed[0]).unwrap().len(), 0);
        assert_eq!(
            fps(&s.store.list().unwrap()),
            vec![("example.com".into(), RSA_FP.into())]
        );
        assert_eq!(fps(&s.store.keys_for("example.com/x").unwrap()).len(), 1);
        // removing again: nothing left to remove
        let e = s.store.remove(ED_FP, None).unwrap_err();
        assert!(e.to_string().contains(ED_FP), "{e}");
        // a prefix mask distrusts a root key for that prefix only (rkt's order)
        sys.add(&KeyScope::Root, &fixture("rsa3072.pub.asc"))
            .unwrap();
        assert_eq!(s.store.keys_for("example.com/x").unwrap().len(), 1);
        let masked = s
            .store
            .remove(RSA_FP, Some(&prefix("example.com")))
            .unwrap();
        assert_eq!(masked.len(), 1);
        assert!(s.store.keys_for("example.com/x").unwrap().is_empty());
        assert_eq!(s.store.keys_for("other.org/y").unwrap().len(), 1);
        assert_eq!(s.store.prefixes().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn remove_local_keys() {
        let s = setup();
        s.store
            .add(&prefix("example.com/app"), &fixture("ed25519.pub.asc"))
            .unwrap();
        s.store
            .add(&KeyScope::Root, &fixture("ed25519.pub.asc"))
            .unwrap();
        assert!(s.store.remove(RSA_FP, None).is_err());
        assert!(s.store.remove(ED_FP, Some(&prefix("example.com"))).is_err());
        assert!(s.store.remove("nonsense", None).is_err());
        let removed = s.store.remove(&ED_FP.to_uppercase(), None).unwrap();
        assert_eq!(removed.len(), 2);
        assert!(s.store.list().unwrap().is_empty());
        // the emptied prefix directories are gone
        assert!(!s.local.join("trustedkeys/prefix.d/example.com").exists());
        assert!(s.local.join("trustedkeys/prefix.d").is_dir());
    }

    #[test]
    fn bad_files_in_the_store() {
        let s = setup();
        let dir = s.local.join("trustedkeys/root.d");
        fs::create_dir_all(&dir).unwrap();
        // not fingerprint names: ignored
        fs::write(dir.join("README"), "hello").unwrap();
        fs::write(dir.join(format!(".{ED_FP}.tmp1")), "partial").unwrap();
        assert!(s.store.list().unwrap().is_empty());
        // a key file holding another key: an error naming it
        fs::write(dir.join(RSA_FP), fixture("ed25519.pub.asc")).unwrap();
        let e = s.store.list().unwrap_err();
        assert!(e.to_string().contains("mismatch"), "{e}");
        fs::write(dir.join(RSA_FP), "garbage").unwrap();
        assert!(s.store.keys_for("a/b").is_err());
        fs::remove_file(dir.join(RSA_FP)).unwrap();
        // a symlink loop under prefix.d is not followed
        let p = s.local.join("trustedkeys/prefix.d/a");
        fs::create_dir_all(&p).unwrap();
        std::os::unix::fs::symlink(&p, p.join("loop")).unwrap();
        assert!(s.store.list().unwrap().is_empty());
        // directories with names no prefix may have are skipped
        fs::create_dir_all(s.local.join("trustedkeys/prefix.d/UPPER")).unwrap();
        fs::write(
            s.local.join("trustedkeys/prefix.d/UPPER").join(ED_FP),
            fixture("ed25519.pub.asc"),
        )
        .unwrap();
        assert!(s.store.list().unwrap().is_empty());
    }
}
