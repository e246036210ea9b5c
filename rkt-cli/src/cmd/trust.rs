//! `rkt trust`: trust OpenPGP keys to sign images (for a name prefix or every image), list
//! them, stop trusting them. Adapters to `stage0::Runtime::trust_*`.

use std::io::{BufRead, Read, Write};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde::Serialize;
use stage0::trust::{KeyScope, PublicKey, TrustedKey};

use super::Ctx;
use crate::output::{print_json, print_table, Format};

/// The most a key file may weigh.
const MAX_KEY_FILE: u64 = 4 << 20;

/// `rkt trust`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TrustArgs {
    /// list, rm (without one: trust the keys given)
    #[command(subcommand)]
    pub command: Option<TrustCommand>,
    /// trust the keys for the images whose names start with this prefix
    #[arg(long)]
    pub prefix: Option<String>,
    /// trust the keys for every image (root keys)
    #[arg(long, conflicts_with = "prefix")]
    pub root: bool,
    /// trust the keys without asking
    #[arg(long = "skip-fingerprint-review")]
    pub skip_fingerprint_review: bool,
    /// list the trusted keys (as `rkt trust list`)
    #[arg(long, conflicts_with_all = ["prefix", "root", "skip_fingerprint_review", "keys"])]
    pub list: bool,
    /// output format of --list: json or json-pretty
    #[arg(long, value_enum, default_value = "")]
    pub format: Format,
    /// key files (`-` for stdin) or https URLs
    #[arg(value_name = "PUBKEY")]
    pub keys: Vec<String>,
}

/// `rkt trust` subcommands.
#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// List the trusted keys
    #[command(visible_alias = "ls")]
    List(TrustListArgs),
    /// Stop trusting a key
    Rm(TrustRmArgs),
}

/// `rkt trust list`.
#[derive(Debug, Args)]
pub struct TrustListArgs {
    /// output format: json or json-pretty
    #[arg(long, value_enum, default_value = "")]
    pub format: Format,
}

/// `rkt trust rm`.
#[derive(Debug, Args)]
pub struct TrustRmArgs {
    /// the key's fingerprint (as `rkt trust list` shows it; case and spaces do not matter)
    #[arg(value_name = "FINGERPRINT")]
    pub fingerprint: String,
    /// only the key trusted for this prefix
    #[arg(long)]
    pub prefix: Option<String>,
    /// only the root key
    #[arg(long, conflicts_with = "prefix")]
    pub root: bool,
}

/// Run `rkt trust …`.
pub fn run(ctx: &Ctx, a: &TrustArgs) -> anyhow::Result<i32> {
    match &a.command {
        Some(TrustCommand::List(l)) => list(ctx, l.format),
        Some(TrustCommand::Rm(r)) => rm(ctx, r),
        None if a.list => list(ctx, a.format),
        None if a.format != Format::Table => bail!("--format goes with --list"),
        None => add(ctx, a),
    }
}

/// Where a key comes from, read.
struct Source {
    name: String,
    bytes: Vec<u8>,
}

fn read_source(
    name: &str,
    stdin: &mut dyn Read,
    rt: Option<&stage0::Runtime>,
) -> anyhow::Result<Source> {
    if name.starts_with("https://") || name.starts_with("http://") {
        let Some(rt) = rt else {
            bail!("fetching key {name:?}: no runtime to fetch it with");
        };
        let bytes = rt
            .trust_fetch_key(name)
            .with_context(|| format!("fetching key {name:?}"))?;
        return Ok(Source {
            name: name.to_string(),
            bytes,
        });
    }
    let mut bytes = Vec::new();
    if name == "-" {
        stdin
            .take(MAX_KEY_FILE + 1)
            .read_to_end(&mut bytes)
            .context("reading key from stdin")?;
    } else {
        std::fs::File::open(name)
            .and_then(|f| f.take(MAX_KEY_FILE + 1).read_to_end(&mut bytes))
            .with_context(|| format!("reading key file {name:?}"))?;
    }
    if bytes.len() as u64 > MAX_KEY_FILE {
        bail!("key file {name:?} is over {MAX_KEY_FILE} bytes");
    }
    Ok(Source {
        name: name.to_string(),
        bytes,
    })
}

/// What the review shows of a key (rkt's wording).
fn describe(scope: &KeyScope, source: &str, key: &PublicKey) -> String {
    let mut s = String::new();
    match scope {
        KeyScope::Root => s.push_str("Root key\n"),
        KeyScope::Prefix(p) => s.push_str(&format!("Prefix: {p:?}\n")),
    }
    s.push_str(&format!("Key: {source:?}\n"));
    s.push_str(&format!(
        "GPG key fingerprint is: {}\n",
        spaced(&key.fingerprint)
    ));
    s.push_str(&format!(
        "\t{} created {}{}\n",
        key.algorithm,
        key.created.format("%Y-%m-%d"),
        key.expires
            .map(|e| format!(", expires {}", e.format("%Y-%m-%d")))
            .unwrap_or_default()
    ));
    for uid in &key.user_ids {
        s.push_str(&format!("\t{uid}\n"));
    }
    s
}

/// A fingerprint in groups of four, upper-case, as gpg prints it.
fn spaced(fp: &str) -> String {
    let up = fp.to_ascii_uppercase();
    let groups: Vec<&str> = up
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect();
    groups.join(" ")
}

/// Ask whether to trust a key; only `yes` is yes.
fn confirm(input: &mut dyn BufRead, out: &mut dyn Write) -> anyhow::Result<bool> {
    write!(out, "Are you sure you want to trust this key (yes/no)? ")?;
    out.flush()?;
    let mut line = String::new();
    input.read_line(&mut line).context("reading the answer")?;
    Ok(line.trim() == "yes")
}

fn add(ctx: &Ctx, a: &TrustArgs) -> anyhow::Result<i32> {
    let scope = match (&a.prefix, a.root) {
        (Some(p), _) => stage0::trust::scope(Some(p))?,
        (None, true) => KeyScope::Root,
        (None, false) => bail!("--root required for non-prefixed (root) keys, or --prefix=PREFIX"),
    };
    let rt = ctx.runtime()?;
    let mut names = a.keys.clone();
    if names.is_empty() {
        match &scope {
            // rkt: the keys appc discovery names for the prefix (`ac-discovery-pubkeys`)
            KeyScope::Prefix(p) => {
                names = rt
                    .trust_discover_keys(p)
                    .with_context(|| format!("discovering the keys of prefix {p:?}"))?;
            }
            KeyScope::Root => bail!("--root requires key files"),
        }
    }
    if a.keys.iter().filter(|k| *k == "-").count() > 1 {
        bail!("stdin ('-') can be given once");
    }
    if a.keys.iter().any(|k| k == "-") && !a.skip_fingerprint_review {
        bail!("a key on stdin ('-') needs --skip-fingerprint-review: stdin answers the review");
    }
    let stdin = std::io::stdin();
    let mut sources = Vec::with_capacity(names.len());
    for name in &names {
        sources.push(read_source(name, &mut stdin.lock(), Some(&rt))?);
    }
    // every key is parsed and reviewed before anything is written
    let mut out = std::io::stdout().lock();
    for src in &sources {
        let keys = rt
            .trust_inspect(&src.bytes)
            .with_context(|| format!("key {:?}", src.name))?;
        for key in &keys {
            // an unusable key is refused before anyone is asked about it
            key.check_usable(chrono::Utc::now())
                .with_context(|| format!("key {:?}", src.name))?;
            write!(out, "{}", describe(&scope, &src.name, key))?;
            if !a.skip_fingerprint_review && !confirm(&mut stdin.lock(), &mut out)? {
                bail!("key not trusted");
            }
        }
    }
    for src in &sources {
        let added = rt
            .trust_add(&scope, &src.bytes)
            .with_context(|| format!("key {:?}", src.name))?;
        for k in added {
            match &k.scope {
                KeyScope::Root => writeln!(out, "Added root key at {:?}", k.path)?,
                KeyScope::Prefix(p) => writeln!(out, "Added key for prefix {p:?} at {:?}", k.path)?,
            }
        }
    }
    Ok(0)
}

/// `rkt trust list --format=json` entry.
#[derive(Debug, Serialize)]
struct JsonKey {
    /// none for a root key
    prefix: Option<String>,
    root: bool,
    fingerprint: String,
    user_ids: Vec<String>,
    algorithm: String,
    created: String,
    expires: Option<String>,
    path: String,
}

fn json_key(k: &TrustedKey) -> JsonKey {
    JsonKey {
        prefix: match &k.scope {
            KeyScope::Root => None,
            KeyScope::Prefix(p) => Some(p.clone()),
        },
        root: k.scope == KeyScope::Root,
        fingerprint: k.key.fingerprint.clone(),
        user_ids: k.key.user_ids.clone(),
        algorithm: k.key.algorithm.clone(),
        created: k.key.created.to_rfc3339(),
        expires: k.key.expires.map(|e| e.to_rfc3339()),
        path: k.path.display().to_string(),
    }
}

fn table_rows(keys: &[TrustedKey]) -> Vec<Vec<String>> {
    keys.iter()
        .map(|k| {
            vec![
                match &k.scope {
                    KeyScope::Root => "(root)".to_string(),
                    KeyScope::Prefix(p) => p.clone(),
                },
                k.key.fingerprint.clone(),
                k.key.user_ids.join(", "),
                k.path.display().to_string(),
            ]
        })
        .collect()
}

fn list(ctx: &Ctx, format: Format) -> anyhow::Result<i32> {
    let keys = ctx.runtime()?.trust_list()?;
    if format == Format::Table {
        print_table(
            Some(&["PREFIX", "FINGERPRINT", "USER IDS", "PATH"]),
            &table_rows(&keys),
        );
    } else {
        let v: Vec<JsonKey> = keys.iter().map(json_key).collect();
        print_json(&v, format == Format::JsonPretty)?;
    }
    Ok(0)
}

fn rm(ctx: &Ctx, a: &TrustRmArgs) -> anyhow::Result<i32> {
    let fp = stage0::trust::fingerprint(&a.fingerprint)?;
    let scope = match (&a.prefix, a.root) {
        (Some(p), _) => Some(stage0::trust::scope(Some(p))?),
        (None, true) => Some(KeyScope::Root),
        (None, false) => None,
    };
    let done = ctx.runtime()?.trust_remove(&fp, scope.as_ref())?;
    for p in done {
        println!("Removed key {fp} ({})", p.display());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<TrustArgs, clap::Error> {
        let mut argv = vec!["rkt", "trust"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|c| match c.command {
            Command::Trust(t) => t,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn grammar() {
        let t = parse(&["--prefix=example.com/app", "key.asc", "b.asc"]).unwrap();
        assert_eq!(t.prefix.as_deref(), Some("example.com/app"));
        assert_eq!(t.keys, vec!["key.asc", "b.asc"]);
        assert!(!t.skip_fingerprint_review);
        let t = parse(&["--root", "--skip-fingerprint-review", "k"]).unwrap();
        assert!(t.root && t.skip_fingerprint_review);
        assert!(parse(&["--root", "--prefix=x", "k"]).is_err());
        let t = parse(&["--list", "--format=json"]).unwrap();
        assert!(t.list && t.format == Format::Json);
        assert!(parse(&["--list", "--root"]).is_err());
        assert!(parse(&["--list", "k"]).is_err());
        let c = ctx(&TempDir::new().path().join("x"), &[]);
        assert!(run(&c, &parse(&["--format=json", "--root", "k"]).unwrap()).is_err());
        let t = parse(&["list", "--format=json-pretty"]).unwrap();
        assert!(
            matches!(t.command, Some(TrustCommand::List(ref l)) if l.format == Format::JsonPretty)
        );
        let t = parse(&["rm", "ABCD", "--prefix=example.com"]).unwrap();
        match t.command {
            Some(TrustCommand::Rm(r)) => {
                assert_eq!(r.fingerprint, "ABCD");
                assert_eq!(r.prefix.as_deref(), Some("example.com"));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["rm"]).is_err());
        assert!(parse(&["rm", "x", "--root", "--prefix=a"]).is_err());
    }

    #[test]
    fn confirmation_takes_only_yes() {
        for (answer, want) in [
            ("yes\n", true),
            ("  yes  \n", true),
            ("y\n", false),
            ("no\n", false),
            ("YES\n", false),
            ("", false),
        ] {
            let mut out = Vec::new();
            let got = confirm(&mut answer.as_bytes(), &mut out).unwrap();
            assert_eq!(got, want, "{answer:?}");
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "Are you sure you want to trust this key (yes/no)? "
            );
        }
    }

    #[test]
    fn fingerprints_are_grouped() {
        assert_eq!(
            spaced("6f391f83a1d1f6d3d6454811c95743691db21c59"),
            "6F39 1F83 A1D1 F6D3 D645 4811 C957 4369 1DB2 1C59"
        );
    }

    #[test]
    fn key_sources() {
        let err = read_source("/nonexistent/key.asc", &mut std::io::empty(), None)
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent/key.asc"));
        let s = read_source("-", &mut &b"abc"[..], None).unwrap();
        assert_eq!(s.bytes, b"abc");
    }

    fn ctx(tmp: &std::path::Path, extra: &[&str]) -> Ctx {
        let mut argv = vec![
            "rkt".to_string(),
            format!("--dir={}", tmp.join("data").display()),
            format!("--local-config={}", tmp.join("etc").display()),
            format!("--system-config={}", tmp.join("usr").display()),
            "trust".to_string(),
        ];
        argv.extend(extra.iter().map(|s| s.to_string()));
        let cli = Cli::try_parse_from(&argv).unwrap();
        Ctx {
            insecure: stage0::Insecure::default(),
            global: cli.global,
            argv,
        }
    }

    /// A temporary directory, removed on drop (rkt-cli has no tempfile dev-dependency).
    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!("rkt-cli-trust-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }

        fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn fixture(name: &str) -> String {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../image-store/src/trust/testdata")
            .join(name)
            .display()
            .to_string()
    }

    #[test]
    fn add_list_rm() {
        let tmp = TempDir::new();
        let key = fixture("ed25519.pub.asc");
        let args = parse(&[
            "--prefix=example.com/app",
            "--skip-fingerprint-review",
            &key,
        ])
        .unwrap();
        let c = ctx(tmp.path(), &[]);
        assert_eq!(run(&c, &args).unwrap(), 0);
        let stored = tmp.path().join(
            "etc/trustedkeys/prefix.d/example.com/app/6f391f83a1d1f6d3d6454811c95743691db21c59",
        );
        assert!(stored.is_file());
        let keys = c.runtime().unwrap().trust_list().unwrap();
        let rows = table_rows(&keys);
        assert_eq!(rows[0][0], "example.com/app");
        assert_eq!(rows[0][2], "Ed Signer <ed@example.com>");
        let j = serde_json::to_value(json_key(&keys[0])).unwrap();
        assert_eq!(j["prefix"], "example.com/app");
        assert_eq!(j["root"], false);
        assert_eq!(j["user_ids"][0], "Ed Signer <ed@example.com>");
        assert_eq!(
            run(&c, &parse(&["list", "--format=json"]).unwrap()).unwrap(),
            0
        );
        // bad input: nothing written
        let bad = parse(&["--root", "--skip-fingerprint-review", &fixture("data.txt")]).unwrap();
        assert!(run(&c, &bad).is_err());
        let expired = parse(&[
            "--root",
            "--skip-fingerprint-review",
            &fixture("expired.pub.asc"),
        ])
        .unwrap();
        assert!(run(&c, &expired).is_err());
        assert!(!tmp.path().join("etc/trustedkeys/root.d").exists());
        // neither scope, or no key file
        assert!(run(&c, &parse(&[&key]).unwrap()).is_err());
        assert!(run(&c, &parse(&["--root"]).unwrap()).is_err());
        assert!(run(&c, &parse(&["--prefix=a.b", "-"]).unwrap()).is_err());
        let rm = parse(&["rm", "6F39 1F83 A1D1 F6D3 D645 4811 C957 4369 1DB2 1C59"]).unwrap();
        assert_eq!(run(&c, &rm).unwrap(), 0);
        assert!(!stored.exists());
        assert!(run(&c, &rm).is_err());
    }

    #[test]
    fn review_shows_fingerprint_and_uids() {
        let bytes = std::fs::read(fixture("ed25519.pub.asc")).unwrap();
        let keys = stage0::Runtime::open(stage0::Dirs::default())
            .map(|rt| rt.trust_inspect(&bytes).unwrap())
            .unwrap();
        let text = describe(&KeyScope::Prefix("example.com".into()), "k.asc", &keys[0]);
        assert!(text.contains("Prefix: \"example.com\""), "{text}");
        assert!(
            text.contains("6F39 1F83 A1D1 F6D3 D645 4811 C957 4369 1DB2 1C59"),
            "{text}"
        );
        assert!(text.contains("\tEd Signer <ed@example.com>"), "{text}");
        assert!(text.contains("ed25519"), "{text}");
    }
}
