//! Image signatures end to end (issue #22, docs/trust.md): `rkt trust` keys, and `rkt fetch`
//! / `rkt run` without `--insecure-options=image` against images signed by real tools — gpg
//! (ACI `.asc`), skopeo (simple signing to a lookaside), cosign's format (P-256 signatures
//! stored as `sha256-<hex>.sig` images) — with `policy.json` scopes.
//!
//! Every refusal is checked the same way ([`assert_refused`]): exit 254, stderr names the
//! image (and, when nothing signed it, says how to trust it or to skip the check), and the
//! store is as it was: same `rkt image list`, no new blob, no pod left.

use rkt_tests::signing::{self, CosignKey, Gpg};
use rkt_tests::static_http::StaticServer;
use rkt_tests::tarball::{self, tar_bytes, write_image, Entry, ImageSpec, OciImage};
use rkt_tests::{images, output_with_stdin, registry, run_ok, stderr, stdout, TestCtx};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

// ---------------------------------------------------------------------------------------------
// helpers

fn out(c: &mut Command) -> Output {
    c.output().unwrap_or_else(|e| panic!("spawning {c:?}: {e}"))
}

fn repo(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "trust-{}-{}/{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn list_json(ctx: &TestCtx) -> Vec<serde_json::Value> {
    let s = run_ok(ctx.rkt().args(["image", "list", "--format=json"]));
    serde_json::from_str::<serde_json::Value>(&s)
        .unwrap_or_else(|e| panic!("image list JSON: {e}: {s}"))
        .as_array()
        .expect("image list is an array")
        .clone()
}

/// Every file under `<dir>/cas/blobs`.
fn blobs(ctx: &TestCtx) -> BTreeSet<PathBuf> {
    fn walk(d: &Path, acc: &mut BTreeSet<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, acc);
                } else {
                    acc.insert(p);
                }
            }
        }
    }
    let mut acc = BTreeSet::new();
    walk(&ctx.dir().join("cas/blobs"), &mut acc);
    acc
}

/// What the store holds: the image list and the blob files.
struct StoreState {
    list: Vec<serde_json::Value>,
    blobs: BTreeSet<PathBuf>,
}

fn store_state(ctx: &TestCtx) -> StoreState {
    StoreState {
        list: list_json(ctx),
        blobs: blobs(ctx),
    }
}

/// A refusal: 254, the image named, the hint when nothing signed it, and nothing stored.
fn assert_refused(ctx: &TestCtx, o: &Output, name: &str, unsigned: bool, before: &StoreState) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(254), "want a refusal; stderr: {e}");
    assert!(e.contains(name), "stderr does not name {name}: {e}");
    if unsigned {
        assert!(
            e.contains("rkt trust --prefix=") || e.contains("--insecure-options=image"),
            "no hint in: {e}"
        );
    }
    let after = store_state(ctx);
    assert_eq!(after.list, before.list, "the image list changed");
    let new: Vec<_> = after.blobs.difference(&before.blobs).collect();
    assert!(new.is_empty(), "blobs stored by a refused fetch: {new:?}");
    ctx.assert_nothing_left();
}

/// An accepted fetch: 0 and the image id printed (`--full`).
fn assert_fetched(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "fetch refused: {}", stderr(o));
    let id = stdout(o).trim().to_string();
    assert!(!id.is_empty(), "no id printed");
    id
}

/// The `"verification"` of the listed image `id`.
fn verification_of(ctx: &TestCtx, id: &str) -> String {
    let list = list_json(ctx);
    let e = list
        .iter()
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {list:?}"));
    e["verification"]
        .as_str()
        .unwrap_or_else(|| panic!("no \"verification\" in {e}"))
        .to_string()
}

/// `rkt fetch --full IMAGE` with no insecure option.
fn fetch(ctx: &TestCtx, image: &str) -> Output {
    out(ctx.rkt().args(["fetch", "--full", image]))
}

/// Export `gpg`'s public key into the context's root (`keys/<fpr>.asc`).
fn key_file(ctx: &TestCtx, gpg: &Gpg) -> PathBuf {
    let d = ctx.root().join("keys");
    std::fs::create_dir_all(&d).unwrap();
    let f = d.join(format!("{}.asc", gpg.fingerprint()));
    gpg.export_public(&f);
    f
}

/// `rkt trust --prefix=PREFIX --skip-fingerprint-review KEY` (or `--root` for `None`).
fn trust_out(ctx: &TestCtx, gpg: &Gpg, prefix: Option<&str>) -> Output {
    let f = key_file(ctx, gpg);
    let mut c = ctx.rkt();
    c.arg("trust");
    match prefix {
        Some(p) => c.arg(format!("--prefix={p}")),
        None => c.arg("--root"),
    };
    out(c.arg("--skip-fingerprint-review").arg(&f))
}

fn trust(ctx: &TestCtx, gpg: &Gpg, prefix: Option<&str>) {
    let o = trust_out(ctx, gpg, prefix);
    assert_eq!(o.status.code(), Some(0), "rkt trust: {}", stderr(&o));
}

/// Files under `<local-config>/trustedkeys/<sub>` named like `fpr` (any case).
fn stored_keys(ctx: &TestCtx, sub: &str, fpr: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, fpr: &str, acc: &mut Vec<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, fpr, acc);
                } else if e.file_name().to_string_lossy().eq_ignore_ascii_case(fpr) {
                    acc.push(p);
                }
            }
        }
    }
    let mut acc = vec![];
    walk(
        &ctx.local_config().join("trustedkeys").join(sub),
        fpr,
        &mut acc,
    );
    acc
}

/// Append `[docker."SCOPE"] lookaside = "URL"` to `<local-config>/registries.d/sigs.toml`.
fn lookaside_conf(ctx: &TestCtx, scope: &str, url: &str) {
    use std::io::Write;
    let d = ctx.local_config().join("registries.d");
    std::fs::create_dir_all(&d).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(d.join("sigs.toml"))
        .unwrap();
    writeln!(f, "[docker.\"{scope}\"]\nlookaside = \"{url}\"\n").unwrap();
}

fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// Write `<local-config>/policy.json`.
fn policy(ctx: &TestCtx, v: &serde_json::Value) {
    std::fs::write(
        ctx.local_config().join("policy.json"),
        serde_json::to_vec_pretty(v).unwrap(),
    )
    .unwrap();
}

/// A small image whose content is unique to `seed` (another manifest digest than busybox).
fn unique_image(seed: &str) -> (tempfile::TempDir, OciImage) {
    let d = tempfile::tempdir().unwrap();
    let layer = tar_bytes(&[
        Entry::dir("etc"),
        Entry::file("etc/unique", format!("{seed}-{}\n", std::process::id())),
    ]);
    let img = write_image(d.path(), "unique", &[layer], &ImageSpec::default());
    (d, img)
}

/// A signed-image setup on the shared registry's TLS endpoint: `image` pushed as `REPO:v1`
/// signed by `gpg` into the context's lookaside dir, the CA trusted, the lookaside configured.
struct Signed {
    /// `ADDR/REPO` (the trust prefix, the policy scope).
    name: String,
    /// `docker://ADDR/REPO:v1`.
    image: String,
    /// The manifest digest.
    digest: String,
    /// The lookaside dir.
    lookaside: PathBuf,
    /// REPO without the registry.
    repo: String,
}

fn addr() -> &'static str {
    registry::shared().tls_addr()
}

fn signed_setup(ctx: &TestCtx, image: &OciImage, gpg: &Gpg, name: &str) -> Signed {
    let reg = registry::shared();
    ctx.trust_ca(reg.tls_addr(), &reg.ca_file());
    let r = repo(name);
    let lookaside = ctx.root().join("lookaside");
    let digest = signing::skopeo_sign_push(image, addr(), &format!("{r}:v1"), gpg, &lookaside);
    let full = format!("{}/{r}", addr());
    lookaside_conf(ctx, &full, &file_url(&lookaside));
    Signed {
        image: format!("docker://{full}:v1"),
        name: full,
        digest,
        lookaside,
        repo: r,
    }
}

/// Replace the image's signatures with one by `gpg` (pushed again, signed with skopeo), and
/// trust `gpg` for its name: the positive control of a refusal test — the same setup, signed
/// right, is accepted, so the refusal was for the reason the test is about.
fn resign_and_trust(ctx: &TestCtx, s: &Signed, gpg: &Gpg) {
    let sig = signing::simple_signature_path(&s.lookaside, &s.repo, &s.digest);
    std::fs::remove_dir_all(sig.parent().unwrap()).unwrap();
    let d = signing::skopeo_sign_push(
        images::busybox(),
        addr(),
        &format!("{}:v1", s.repo),
        gpg,
        &s.lookaside,
    );
    assert_eq!(d, s.digest);
    trust(ctx, gpg, Some(&s.name));
}

/// `IMAGE` pushed unsigned as `REPO:v1` to the TLS endpoint, its CA trusted.
fn unsigned_setup(ctx: &TestCtx, image: &OciImage, name: &str) -> (String, String) {
    let reg = registry::shared();
    ctx.trust_ca(reg.tls_addr(), &reg.ca_file());
    let r = repo(name);
    images::push(image, addr(), &format!("{r}:v1"));
    (format!("{}/{r}", addr()), r)
}

// ---------------------------------------------------------------------------------------------
// the kit against real tools (pass without the trust pipeline)

#[test]
fn kit_skopeo_signature_lands_in_the_lookaside_and_gpg_verifies_it() {
    let gpg = Gpg::new("Kit <kit@example.com>");
    let ctx = TestCtx::new();
    let s = signed_setup(&ctx, images::busybox(), &gpg, "kit");
    assert_eq!(s.digest, images::busybox().manifest_digest());
    let sig = signing::simple_signature_path(&s.lookaside, &s.repo, &s.digest);
    let payload = run_ok(gpg.gpg().arg("--decrypt").arg(&sig));
    let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(
        v["critical"]["identity"]["docker-reference"],
        format!("{}:v1", s.name)
    );
    assert_eq!(v["critical"]["image"]["docker-manifest-digest"], s.digest);
}

#[test]
fn kit_cosign_signature_image_is_stored_as_written() {
    let key = CosignKey::generate();
    let ctx = TestCtx::new();
    let (name, r) = unsigned_setup(&ctx, images::busybox(), "kit-cosign");
    let d = images::busybox().manifest_digest().to_string();
    let sig_digest = signing::cosign_sign_push(&key, addr(), &r, &d, &format!("{name}:v1"));
    let raw = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}:{}", signing::cosign_signature_tag(&d)),
    ]));
    assert_eq!(tarball::digest(raw.as_bytes()), sig_digest);
    let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        m["layers"][0]["mediaType"],
        signing::COSIGN_PAYLOAD_MEDIA_TYPE
    );
    assert!(m["layers"][0]["annotations"][signing::COSIGN_SIGNATURE_ANNOTATION].is_string());
}

#[test]
fn kit_expired_key_signs_with_skopeo() {
    let gpg = Gpg::new_expired("Kit Expired <kexp@example.com>");
    let ctx = TestCtx::new();
    let s = signed_setup(&ctx, images::busybox(), &gpg, "kit-expired");
    assert!(signing::simple_signature_path(&s.lookaside, &s.repo, &s.digest).is_file());
}

// ---------------------------------------------------------------------------------------------
// rkt trust

#[test]
fn trust_stores_lists_and_removes_keys() {
    let ctx = TestCtx::new();
    let a = Gpg::new("Prefix Key <prefix@example.com>");
    let b = Gpg::new("Root Key <root@example.com>");
    trust(&ctx, &a, Some("example.com/app"));
    let stored = stored_keys(&ctx, "prefix.d", a.fingerprint());
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(
        stored[0].starts_with(ctx.local_config().join("trustedkeys/prefix.d")),
        "{stored:?}"
    );
    assert!(
        stored[0].to_string_lossy().contains("example.com"),
        "the prefix is not in the key's path: {stored:?}"
    );
    trust(&ctx, &b, None);
    let root = ctx.local_config().join("trustedkeys/root.d");
    let stored = stored_keys(&ctx, "root.d", b.fingerprint());
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].parent(), Some(root.as_path()), "{stored:?}");

    let l = run_ok(ctx.rkt().args(["trust", "--list"])).to_ascii_lowercase();
    assert!(l.contains(&a.fingerprint_lower()), "{l}");
    assert!(l.contains(&b.fingerprint_lower()), "{l}");
    assert!(l.contains("example.com/app"), "{l}");
    let j = run_ok(ctx.rkt().args(["trust", "list", "--format=json"]));
    let j: serde_json::Value = serde_json::from_str(&j).unwrap_or_else(|e| panic!("{e}: {j}"));
    let j = j.to_string().to_ascii_lowercase();
    assert!(j.contains(&a.fingerprint_lower()), "{j}");
    assert!(j.contains(&b.fingerprint_lower()), "{j}");

    run_ok(ctx.rkt().args(["trust", "rm", &a.fingerprint_lower()]));
    assert!(stored_keys(&ctx, "prefix.d", a.fingerprint()).is_empty());
    let l = run_ok(ctx.rkt().args(["trust", "--list"])).to_ascii_lowercase();
    assert!(!l.contains(&a.fingerprint_lower()), "{l}");
    assert!(l.contains(&b.fingerprint_lower()), "{l}");
    run_ok(ctx.rkt().args(["trust", "rm", b.fingerprint()]));
    assert!(stored_keys(&ctx, "root.d", b.fingerprint()).is_empty());
}

#[test]
fn trust_asks_for_review_and_no_stores_nothing() {
    let ctx = TestCtx::new();
    let a = Gpg::new("Review <review@example.com>");
    let f = key_file(&ctx, &a);
    let o = output_with_stdin(
        ctx.rkt()
            .args(["trust", "--prefix=example.com/review"])
            .arg(&f),
        b"no\n",
    );
    assert_eq!(o.status.code(), Some(254), "{}", stderr(&o));
    // the fingerprint was shown for review
    let shown = format!("{}{}", stdout(&o), stderr(&o)).to_ascii_lowercase();
    let spaced: String = a.fingerprint_lower();
    assert!(
        shown.contains(&spaced) || shown.replace(' ', "").contains(&spaced),
        "fingerprint not shown: {shown}"
    );
    assert!(stored_keys(&ctx, "", a.fingerprint()).is_empty());
    let o = output_with_stdin(
        ctx.rkt()
            .args(["trust", "--prefix=example.com/review"])
            .arg(&f),
        b"yes\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stored_keys(&ctx, "prefix.d", a.fingerprint()).len(), 1);
}

#[test]
fn trust_refuses_what_is_not_a_public_key() {
    let ctx = TestCtx::new();
    let d = ctx.root().join("bad-keys");
    std::fs::create_dir_all(&d).unwrap();
    let signer = Gpg::new("Not A Key <notakey@example.com>");
    let data = d.join("data");
    std::fs::write(&data, "x\n").unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        (
            "garbage",
            b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot base64 !!\n".to_vec(),
        ),
        ("binary", images::prng_bytes(7, 4096)),
        // a signature is not a key
        (
            "signature",
            std::fs::read(signer.detach_sign(&data)).unwrap(),
        ),
    ];
    for (what, bytes) in cases {
        let f = d.join(what);
        std::fs::write(&f, bytes).unwrap();
        let o = out(ctx
            .rkt()
            .args([
                "trust",
                "--prefix=example.com/bad",
                "--skip-fingerprint-review",
            ])
            .arg(&f));
        assert_eq!(o.status.code(), Some(254), "{what}: {}", stderr(&o));
        let mut left = vec![];
        let mut dirs = vec![ctx.local_config().join("trustedkeys")];
        while let Some(dir) = dirs.pop() {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    dirs.push(e.path());
                } else {
                    left.push(e.path());
                }
            }
        }
        assert!(left.is_empty(), "{what}: stored {left:?}");
    }
    // the control: a real key is stored
    trust(&ctx, &signer, Some("example.com/bad"));
}

// ---------------------------------------------------------------------------------------------
// simple signing (skopeo) with a lookaside

#[test]
fn simple_signed_image_is_fetched_and_runs() {
    let gpg = Gpg::new("Signer <signer@example.com>");
    let ctx = TestCtx::new();
    let s = signed_setup(&ctx, images::busybox(), &gpg, "bb");
    // not trusted yet: refused, with the hint
    let before = store_state(&ctx);
    let o = fetch(&ctx, &s.image);
    assert_refused(&ctx, &o, &s.name, true, &before);
    trust(&ctx, &gpg, Some(&s.name));
    let id = assert_fetched(&fetch(&ctx, &s.image));
    assert_eq!(id, s.digest);
    assert_eq!(
        verification_of(&ctx, &id),
        format!("gpg:{}", gpg.fingerprint_lower())
    );
    let o = out(ctx.rkt().args([
        "run",
        "--net=host",
        &s.image,
        "--exec=/bin/sh",
        "--",
        "-c",
        "echo signed-run-ok",
    ]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("signed-run-ok"), "{}", stdout(&o));
}

#[test]
fn simple_signature_from_an_http_lookaside() {
    let gpg = Gpg::new("Http Lookaside <httpl@example.com>");
    let ctx = TestCtx::new();
    let reg = registry::shared();
    ctx.trust_ca(reg.tls_addr(), &reg.ca_file());
    let r = repo("httpl");
    let served = ctx.root().join("served");
    let digest =
        signing::skopeo_sign_push(images::busybox(), addr(), &format!("{r}:v1"), &gpg, &served);
    let srv = StaticServer::http(&served);
    let name = format!("{}/{r}", addr());
    lookaside_conf(&ctx, &name, &format!("{}/", srv.url()));
    trust(&ctx, &gpg, Some(&name));
    let id = assert_fetched(&fetch(&ctx, &format!("docker://{name}:v1")));
    assert_eq!(id, digest);
    let hex = digest.trim_start_matches("sha256:");
    let reqs = srv.requests();
    assert!(
        reqs.iter().any(|q| q.status == 200
            && q.target.trim_start_matches('/') == format!("{r}@sha256={hex}/signature-1")),
        "{reqs:?}"
    );
    assert_eq!(
        verification_of(&ctx, &id),
        format!("gpg:{}", gpg.fingerprint_lower())
    );
}

#[test]
fn unsigned_image_is_refused_by_fetch_and_run() {
    let gpg = Gpg::new("Unused <unused@example.com>");
    let ctx = TestCtx::new();
    let (name, _) = unsigned_setup(&ctx, images::busybox(), "unsigned");
    let lookaside = ctx.root().join("lookaside");
    std::fs::create_dir_all(&lookaside).unwrap();
    lookaside_conf(&ctx, &name, &file_url(&lookaside));
    trust(&ctx, &gpg, Some(&name));
    let image = format!("docker://{name}:v1");
    let before = store_state(&ctx);
    let o = fetch(&ctx, &image);
    assert_refused(&ctx, &o, &name, true, &before);
    let o = out(ctx
        .rkt()
        .args(["run", "--net=host", &image, "--exec=/bin/true"]));
    assert_refused(&ctx, &o, &name, true, &before);
    // without any signature configuration at all, too
    let ctx2 = TestCtx::new();
    ctx2.trust_ca(registry::shared().tls_addr(), &registry::shared().ca_file());
    let before = store_state(&ctx2);
    let o = fetch(&ctx2, &image);
    assert_refused(&ctx2, &o, &name, true, &before);
    // the control: the same fetch with the check skipped is accepted
    assert_fetched(&out(ctx2.rkt().args([
        "--insecure-options=image",
        "fetch",
        "--full",
        &image,
    ])));
}

#[test]
fn signed_by_an_untrusted_key_is_refused() {
    let signer = Gpg::new("Stranger <stranger@example.com>");
    let trusted = Gpg::new("Trusted <trusted@example.com>");
    let ctx = TestCtx::new();
    let s = signed_setup(&ctx, images::busybox(), &signer, "untrusted");
    trust(&ctx, &trusted, Some(&s.name));
    let before = store_state(&ctx);
    let o = fetch(&ctx, &s.image);
    assert_refused(&ctx, &o, &s.name, false, &before);
    trust(&ctx, &signer, Some(&s.name));
    assert_fetched(&fetch(&ctx, &s.image));
}

#[test]
fn signature_of_another_digest_is_refused() {
    let gpg = Gpg::new("Digest <digest@example.com>");
    let ctx = TestCtx::new();
    let s = signed_setup(&ctx, images::busybox(), &gpg, "other-digest");
    trust(&ctx, &gpg, Some(&s.name));
    // another image under the same name, tag v2, unsigned; busybox's signature copied to it
    let (_d, other) = unique_image("other-digest");
    images::push(&other, addr(), &format!("{}:v2", s.repo));
    let from = signing::simple_signature_path(&s.lookaside, &s.repo, &s.digest);
    let to = signing::simple_signature_path(&s.lookaside, &s.repo, other.manifest_digest());
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(&from, &to).unwrap();
    let before = store_state(&ctx);
    let o = fetch(&ctx, &format!("docker://{}:v2", s.name));
    assert_refused(&ctx, &o, &s.name, false, &before);
    // the signed one is still fine
    assert_fetched(&fetch(&ctx, &s.image));
}

#[test]
fn signature_for_another_identity_is_refused() {
    let gpg = Gpg::new("Identity <identity@example.com>");
    let ctx = TestCtx::new();
    let a = signed_setup(&ctx, images::busybox(), &gpg, "identity-a");
    // the same manifest served as repo B, with A's signature copied to B's place
    let (b_name, b_repo) = unsigned_setup(&ctx, images::busybox(), "identity-b");
    let from = signing::simple_signature_path(&a.lookaside, &a.repo, &a.digest);
    let to = signing::simple_signature_path(&a.lookaside, &b_repo, &a.digest);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(&from, &to).unwrap();
    lookaside_conf(&ctx, &b_name, &file_url(&a.lookaside));
    trust(&ctx, &gpg, Some(&b_name));
    let before = store_state(&ctx);
    let o = fetch(&ctx, &format!("docker://{b_name}:v1"));
    assert_refused(&ctx, &o, &b_name, false, &before);
    trust(&ctx, &gpg, Some(&a.name));
    assert_fetched(&fetch(&ctx, &a.image));
}

#[test]
fn tampered_signature_is_refused() {
    let gpg = Gpg::new("Tamper <tamper@example.com>");
    let ctx = TestCtx::new();
    let s = signed_setup(&ctx, images::busybox(), &gpg, "tampered");
    trust(&ctx, &gpg, Some(&s.name));
    let sig = signing::simple_signature_path(&s.lookaside, &s.repo, &s.digest);
    let good = std::fs::read(&sig).unwrap();
    for pos in [good.len() - 1, good.len() / 2] {
        let mut bad = good.clone();
        bad[pos] ^= 0x01;
        std::fs::write(&sig, &bad).unwrap();
        let before = store_state(&ctx);
        let o = fetch(&ctx, &s.image);
        assert_refused(&ctx, &o, &s.name, false, &before);
    }
    std::fs::write(&sig, &good).unwrap();
    assert_fetched(&fetch(&ctx, &s.image));
}

#[test]
fn key_trusted_for_another_prefix_is_refused() {
    let gpg = Gpg::new("Prefix <prefix2@example.com>");
    let ctx = TestCtx::new();
    let s = signed_setup(&ctx, images::busybox(), &gpg, "prefix");
    trust(&ctx, &gpg, Some(&format!("{}/elsewhere", addr())));
    let before = store_state(&ctx);
    let o = fetch(&ctx, &s.image);
    assert_refused(&ctx, &o, &s.name, false, &before);
    trust(&ctx, &gpg, Some(&s.name));
    assert_fetched(&fetch(&ctx, &s.image));
}

#[test]
fn root_key_is_accepted_for_any_name() {
    let gpg = Gpg::new("Root <root2@example.com>");
    let ctx = TestCtx::new();
    let s = signed_setup(&ctx, images::busybox(), &gpg, "root");
    trust(&ctx, &gpg, None);
    let id = assert_fetched(&fetch(&ctx, &s.image));
    assert_eq!(
        verification_of(&ctx, &id),
        format!("gpg:{}", gpg.fingerprint_lower())
    );
}

#[test]
fn expired_key_is_refused() {
    let gpg = Gpg::new_expired("Expired <expired@example.com>");
    let ctx = TestCtx::new();
    let s = signed_setup(&ctx, images::busybox(), &gpg, "expired");
    // rkt trust may refuse the expired key itself; either way the image is refused
    let _ = trust_out(&ctx, &gpg, Some(&s.name));
    let before = store_state(&ctx);
    let o = fetch(&ctx, &s.image);
    assert_refused(&ctx, &o, &s.name, false, &before);
    resign_and_trust(&ctx, &s, &Gpg::new("Fresh <fresh@example.com>"));
    assert_fetched(&fetch(&ctx, &s.image));
}

#[test]
fn revoked_key_is_refused() {
    let gpg = Gpg::new("Revoked <revoked@example.com>");
    let ctx = TestCtx::new();
    // signed while the key was good, then the key is revoked and its export carries that
    let s = signed_setup(&ctx, images::busybox(), &gpg, "revoked");
    gpg.revoke();
    let _ = trust_out(&ctx, &gpg, Some(&s.name));
    let before = store_state(&ctx);
    let o = fetch(&ctx, &s.image);
    assert_refused(&ctx, &o, &s.name, false, &before);
    resign_and_trust(&ctx, &s, &Gpg::new("Fresh <fresh2@example.com>"));
    assert_fetched(&fetch(&ctx, &s.image));
}

#[test]
fn trusted_key_then_revoked_is_refused() {
    let gpg = Gpg::new("Later Revoked <later@example.com>");
    let ctx = TestCtx::new();
    let s = signed_setup(&ctx, images::busybox(), &gpg, "later-revoked");
    trust(&ctx, &gpg, Some(&s.name));
    gpg.revoke();
    // the revoked key replaces the stored one (same fingerprint), or is refused outright;
    // either way the revocation must win
    let o = trust_out(&ctx, &gpg, Some(&s.name));
    if !o.status.success() {
        // a store that refuses revoked keys must not keep trusting the old copy silently:
        // the user removes it
        run_ok(ctx.rkt().args(["trust", "rm", &gpg.fingerprint_lower()]));
    }
    let before = store_state(&ctx);
    let o = fetch(&ctx, &s.image);
    assert_refused(&ctx, &o, &s.name, false, &before);
    resign_and_trust(&ctx, &s, &Gpg::new("Fresh <fresh3@example.com>"));
    assert_fetched(&fetch(&ctx, &s.image));
}

// ---------------------------------------------------------------------------------------------
// policy.json

#[test]
fn policy_reject_scope_refuses_a_signed_image() {
    let gpg = Gpg::new("Policy <policy@example.com>");
    let ctx = TestCtx::new();
    let s = signed_setup(&ctx, images::busybox(), &gpg, "policy-reject");
    trust(&ctx, &gpg, Some(&s.name));
    policy(
        &ctx,
        &serde_json::json!({
            "default": [{"type": "insecureAcceptAnything"}],
            "transports": {"docker": {s.name.clone(): [{"type": "reject"}]}},
        }),
    );
    let before = store_state(&ctx);
    let o = fetch(&ctx, &s.image);
    assert_refused(&ctx, &o, &s.name, false, &before);
    std::fs::remove_file(ctx.local_config().join("policy.json")).unwrap();
    assert_fetched(&fetch(&ctx, &s.image));
}

#[test]
fn policy_insecure_accept_anything_accepts_unsigned() {
    let ctx = TestCtx::new();
    let (name, _) = unsigned_setup(&ctx, images::busybox(), "policy-accept");
    policy(
        &ctx,
        &serde_json::json!({
            "default": [{"type": "reject"}],
            "transports": {"docker": {name.clone(): [{"type": "insecureAcceptAnything"}]}},
        }),
    );
    let id = assert_fetched(&fetch(&ctx, &format!("docker://{name}:v1")));
    assert_eq!(verification_of(&ctx, &id), "accepted");
    // the default still rejects another name
    let (other, _) = unsigned_setup(&ctx, images::busybox(), "policy-other");
    let before = store_state(&ctx);
    let o = fetch(&ctx, &format!("docker://{other}:v1"));
    assert_refused(&ctx, &o, &other, false, &before);
}

#[test]
fn insecure_options_image_accepts_unsigned() {
    let ctx = TestCtx::new();
    let (name, _) = unsigned_setup(&ctx, images::busybox(), "insecure");
    let o = out(ctx.rkt().args([
        "--insecure-options=image",
        "fetch",
        "--full",
        &format!("docker://{name}:v1"),
    ]));
    let id = assert_fetched(&o);
    assert_eq!(verification_of(&ctx, &id), "insecure");
}

// ---------------------------------------------------------------------------------------------
// cosign

/// `policy.json` requiring cosign signatures by `pubkey` for `scope`, rejecting the rest.
fn cosign_policy(ctx: &TestCtx, scope: &str, pubkey: &Path) {
    policy(
        ctx,
        &serde_json::json!({
            "default": [{"type": "reject"}],
            "transports": {"docker": {scope: [{"type": "sigstoreSigned", "keyPath": pubkey}]}},
        }),
    );
}

fn cosign_setup(ctx: &TestCtx, key: &CosignKey, name: &str) -> (String, String) {
    let (full, r) = unsigned_setup(ctx, images::busybox(), name);
    let pubkey = ctx.root().join("cosign.pub");
    key.public_pem(&pubkey);
    cosign_policy(ctx, &full, &pubkey);
    (full, r)
}

#[test]
fn cosign_signed_image_is_fetched_and_runs() {
    let key = CosignKey::generate();
    let ctx = TestCtx::new();
    let (name, r) = cosign_setup(&ctx, &key, "cosign");
    let image = format!("docker://{name}:v1");
    let before = store_state(&ctx);
    let o = fetch(&ctx, &image);
    assert_refused(&ctx, &o, &name, true, &before);
    let d = images::busybox().manifest_digest();
    signing::cosign_sign_push(&key, addr(), &r, d, &format!("{name}:v1"));
    let id = assert_fetched(&fetch(&ctx, &image));
    assert_eq!(id, d);
    assert_eq!(
        verification_of(&ctx, &id),
        format!("cosign:{}", key.key_id())
    );
    let o = out(ctx.rkt().args([
        "run",
        "--net=host",
        &image,
        "--exec=/bin/sh",
        "--",
        "-c",
        "echo cosign-run-ok",
    ]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("cosign-run-ok"), "{}", stdout(&o));
}

#[test]
fn cosign_signature_by_another_key_is_refused() {
    let key = CosignKey::generate();
    let other = CosignKey::generate();
    let ctx = TestCtx::new();
    let (name, r) = cosign_setup(&ctx, &key, "cosign-other-key");
    let d = images::busybox().manifest_digest();
    signing::cosign_sign_push(&other, addr(), &r, d, &format!("{name}:v1"));
    let before = store_state(&ctx);
    let o = fetch(&ctx, &format!("docker://{name}:v1"));
    assert_refused(&ctx, &o, &name, false, &before);
    signing::cosign_sign_push(&key, addr(), &r, d, &format!("{name}:v1"));
    assert_fetched(&fetch(&ctx, &format!("docker://{name}:v1")));
}

#[test]
fn cosign_tampered_signature_or_payload_is_refused() {
    use base64::Engine;
    let key = CosignKey::generate();
    let ctx = TestCtx::new();
    let (name, r) = cosign_setup(&ctx, &key, "cosign-tampered");
    let d = images::busybox().manifest_digest();
    let reference = format!("{name}:v1");
    let image = format!("docker://{reference}");
    let payload = signing::cosign_payload(&reference, d);
    let b64 = base64::engine::general_purpose::STANDARD;
    // a flipped bit in the signature
    let mut der = b64.decode(key.sign(&payload)).unwrap();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    signing::cosign_push_signature(addr(), &r, d, &payload, &b64.encode(&der));
    let before = store_state(&ctx);
    assert_refused(&ctx, &fetch(&ctx, &image), &name, false, &before);
    // a good signature over a payload that is not the one stored
    let sig = key.sign(&payload);
    let mut other = payload.clone();
    other.push(b' ');
    signing::cosign_push_signature(addr(), &r, d, &other, &sig);
    assert_refused(&ctx, &fetch(&ctx, &image), &name, false, &before);
    // a signature for another digest, stored under this one's tag
    let wrong = signing::cosign_payload(&reference, &tarball::digest(b"another manifest"));
    signing::cosign_push_signature(addr(), &r, d, &wrong, &key.sign(&wrong));
    assert_refused(&ctx, &fetch(&ctx, &image), &name, false, &before);
    // and one for another identity
    let elsewhere = signing::cosign_payload(&format!("{}/elsewhere/x:v1", addr()), d);
    signing::cosign_push_signature(addr(), &r, d, &elsewhere, &key.sign(&elsewhere));
    assert_refused(&ctx, &fetch(&ctx, &image), &name, false, &before);
    // the control: signed right, accepted
    signing::cosign_push_signature(addr(), &r, d, &payload, &key.sign(&payload));
    assert_fetched(&fetch(&ctx, &image));
}

// ---------------------------------------------------------------------------------------------
// ACIs and appc discovery

/// A gzipped ACI named `name` (`version` label `v1`, linux/amd64) running busybox's `true`.
fn aci(dir: &Path, name: &str, file: &str) -> PathBuf {
    let manifest = serde_json::json!({
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": name,
        "labels": [
            {"name": "version", "value": "v1"},
            {"name": "os", "value": "linux"},
            {"name": "arch", "value": "amd64"},
        ],
        "app": {"exec": ["/hello"], "user": "0", "group": "0"},
    });
    let tar = tar_bytes(&[
        Entry::file("manifest", manifest.to_string()),
        Entry::dir("rootfs"),
        Entry::file("rootfs/hello", format!("{name}\n")).mode(0o755),
    ]);
    let p = dir.join(file);
    std::fs::write(&p, tarball::gzip(&tar)).unwrap();
    p
}

#[test]
fn aci_with_a_good_asc_is_fetched() {
    let gpg = Gpg::new("Aci <aci@example.com>");
    let ctx = TestCtx::new();
    let d = tempfile::tempdir().unwrap();
    let f = aci(d.path(), "example.com/signed", "signed.aci");
    gpg.detach_sign(&f);
    let image = f.display().to_string();
    let before = store_state(&ctx);
    assert_refused(&ctx, &fetch(&ctx, &image), "signed.aci", true, &before);
    trust(&ctx, &gpg, Some("example.com/signed"));
    let id = assert_fetched(&fetch(&ctx, &image));
    assert!(id.starts_with("sha512-"), "{id}");
    assert_eq!(
        verification_of(&ctx, &id),
        format!("gpg:{}", gpg.fingerprint_lower())
    );
}

#[test]
fn aci_with_a_bad_asc_is_refused() {
    let gpg = Gpg::new("Aci Bad <acibad@example.com>");
    let stranger = Gpg::new("Aci Stranger <acistranger@example.com>");
    let ctx = TestCtx::new();
    trust(&ctx, &gpg, Some("example.com/bad"));
    let d = tempfile::tempdir().unwrap();
    // no .asc at all
    let f = aci(d.path(), "example.com/bad", "nosig.aci");
    let before = store_state(&ctx);
    assert_refused(
        &ctx,
        &fetch(&ctx, &f.display().to_string()),
        "nosig.aci",
        true,
        &before,
    );
    // signed by a key nobody trusts
    let f = aci(d.path(), "example.com/bad", "stranger.aci");
    stranger.detach_sign(&f);
    assert_refused(
        &ctx,
        &fetch(&ctx, &f.display().to_string()),
        "stranger.aci",
        false,
        &before,
    );
    // the ACI changed after it was signed
    let f = aci(d.path(), "example.com/bad", "changed.aci");
    gpg.detach_sign(&f);
    let mut bytes = std::fs::read(&f).unwrap();
    bytes.extend_from_slice(&[0u8; 16]);
    std::fs::write(&f, &bytes).unwrap();
    assert_refused(
        &ctx,
        &fetch(&ctx, &f.display().to_string()),
        "changed.aci",
        false,
        &before,
    );
    // signed by the trusted key, but the name is another prefix's
    let f = aci(d.path(), "example.org/other", "other-name.aci");
    gpg.detach_sign(&f);
    assert_refused(
        &ctx,
        &fetch(&ctx, &f.display().to_string()),
        "other-name.aci",
        false,
        &before,
    );
    // the control: signed right, accepted
    let f = aci(d.path(), "example.com/bad", "good.aci");
    gpg.detach_sign(&f);
    assert_fetched(&fetch(&ctx, &f.display().to_string()));
}

#[test]
fn aci_with_a_signature_flag() {
    let gpg = Gpg::new("Aci Flag <aciflag@example.com>");
    let ctx = TestCtx::new();
    trust(&ctx, &gpg, Some("example.com/flag"));
    let d = tempfile::tempdir().unwrap();
    let f = aci(d.path(), "example.com/flag", "flag.aci");
    let asc = gpg.detach_sign(&f);
    let elsewhere = d.path().join("elsewhere.sig");
    std::fs::rename(&asc, &elsewhere).unwrap();
    let image = f.display().to_string();
    let before = store_state(&ctx);
    // FILE.aci.asc is gone: refused without the flag
    assert_refused(&ctx, &fetch(&ctx, &image), "flag.aci", true, &before);
    let o = out(ctx
        .rkt()
        .args(["fetch", "--full", &image])
        .arg(format!("--signature={}", elsewhere.display())));
    let id = assert_fetched(&o);
    assert_eq!(
        verification_of(&ctx, &id),
        format!("gpg:{}", gpg.fingerprint_lower())
    );
}

/// Tests that bind 127.0.0.1:443 run one at a time.
static PORT_443: Mutex<()> = Mutex::new(());

/// An https server on 127.0.0.1:443 serving `localhost/app`'s discovery page and ACI (signed
/// by `signer`), its CA in the context's `certs.d/localhost/ca.crt`.
fn discovery_server(ctx: &TestCtx, dir: &Path, signer: &Gpg) -> StaticServer {
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::write(
        dir.join("app/index.html"),
        concat!(
            "<html><head>\n",
            "<meta name=\"ac-discovery\" content=\"localhost/app https://localhost/app-{version}-{os}-{arch}.{ext}\">\n",
            "</head></html>\n"
        ),
    )
    .unwrap();
    let f = aci(dir, "localhost/app", "app-v1-linux-amd64.aci");
    signer.detach_sign(&f);
    let ca = ctx.local_config().join("certs.d/localhost/ca.crt");
    StaticServer::https(dir, "127.0.0.1:443", &ca)
}

#[test]
fn appc_discovery_over_https_with_asc() {
    let _g = PORT_443.lock().unwrap_or_else(|e| e.into_inner());
    let gpg = Gpg::new("Discovery <discovery@example.com>");
    let ctx = TestCtx::new();
    let d = tempfile::tempdir().unwrap();
    let srv = discovery_server(&ctx, d.path(), &gpg);
    trust(&ctx, &gpg, Some("localhost/app"));
    let id = assert_fetched(&fetch(&ctx, "appc:localhost/app:v1"));
    assert!(id.starts_with("sha512-"), "{id}");
    assert_eq!(
        verification_of(&ctx, &id),
        format!("gpg:{}", gpg.fingerprint_lower())
    );
    let got: BTreeSet<String> = srv
        .requests()
        .into_iter()
        .filter(|q| q.status == 200)
        .map(|q| q.target)
        .collect();
    let want: BTreeSet<String> = [
        "/app?ac-discovery=1",
        "/app-v1-linux-amd64.aci",
        "/app-v1-linux-amd64.aci.asc",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(got, want, "all requests: {:?}", srv.requests());
}

#[test]
fn appc_discovery_with_an_untrusted_signature_is_refused() {
    let _g = PORT_443.lock().unwrap_or_else(|e| e.into_inner());
    let signer = Gpg::new("Discovery Stranger <dstranger@example.com>");
    let trusted = Gpg::new("Discovery Trusted <dtrusted@example.com>");
    let ctx = TestCtx::new();
    let d = tempfile::tempdir().unwrap();
    let srv = discovery_server(&ctx, d.path(), &signer);
    trust(&ctx, &trusted, Some("localhost/app"));
    let before = store_state(&ctx);
    let o = fetch(&ctx, "appc:localhost/app:v1");
    assert_refused(&ctx, &o, "localhost/app", false, &before);
    assert!(
        srv.requests()
            .iter()
            .any(|q| q.target == "/app?ac-discovery=1"),
        "discovery was not even tried: {:?}",
        srv.requests()
    );
    trust(&ctx, &signer, Some("localhost/app"));
    assert_fetched(&fetch(&ctx, "appc:localhost/app:v1"));
}

/// The discovery server, its page also naming the signer's public key
/// (`ac-discovery-pubkeys`), served at `/pubkeys.asc`.
fn discovery_server_with_keys(ctx: &TestCtx, dir: &Path, signer: &Gpg) -> StaticServer {
    let srv = discovery_server(ctx, dir, signer);
    signer.export_public(&dir.join("pubkeys.asc"));
    std::fs::write(
        dir.join("app/index.html"),
        concat!(
            "<html><head>\n",
            "<meta name=\"ac-discovery\" content=\"localhost/app https://localhost/app-{version}-{os}-{arch}.{ext}\">\n",
            "<meta name=\"ac-discovery-pubkeys\" content=\"localhost/app https://localhost/pubkeys.asc\">\n",
            "</head></html>\n"
        ),
    )
    .unwrap();
    srv
}

#[test]
fn trust_discovers_and_fetches_keys_over_https_only() {
    let _g = PORT_443.lock().unwrap_or_else(|e| e.into_inner());
    let gpg = Gpg::new("Key Discovery <keys@example.com>");
    let ctx = TestCtx::new();
    let d = tempfile::tempdir().unwrap();
    let srv = discovery_server_with_keys(&ctx, d.path(), &gpg);

    // a prefix without key files: the keys its discovery names, reviewed like a file
    let o =
        out(ctx
            .rkt()
            .args(["trust", "--prefix=localhost/app"])
            .stdin(std::process::Stdio::from(
                std::fs::File::open("/dev/null").unwrap(),
            )));
    assert_eq!(
        o.status.code(),
        Some(254),
        "no answer is no: {}",
        stderr(&o)
    );
    assert!(stored_keys(&ctx, "", gpg.fingerprint()).is_empty());
    let o = out(ctx.rkt().args([
        "trust",
        "--prefix=localhost/app",
        "--skip-fingerprint-review",
    ]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stored_keys(&ctx, "prefix.d", gpg.fingerprint()).len(), 1);
    assert!(srv
        .requests()
        .iter()
        .any(|q| q.target == "/pubkeys.asc" && q.status == 200));
    assert_fetched(&fetch(&ctx, "appc:localhost/app:v1"));

    // a key URL: https with the CA of certs.d; plain http needs --insecure-options=pubkey
    let other = Gpg::new("Url Key <url@example.com>");
    other.export_public(&d.path().join("url.asc"));
    let o = out(ctx.rkt().args([
        "trust",
        "--root",
        "--skip-fingerprint-review",
        "https://localhost/url.asc",
    ]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stored_keys(&ctx, "root.d", other.fingerprint()).len(), 1);
    let plain = StaticServer::http(d.path());
    let url = format!("{}/url.asc", plain.url());
    let o = out(ctx.rkt().args([
        "trust",
        "--prefix=example.com/x",
        "--skip-fingerprint-review",
        &url,
    ]));
    assert_eq!(o.status.code(), Some(254), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--insecure-options=pubkey"),
        "{}",
        stderr(&o)
    );
    let o = out(ctx.rkt().args([
        "--insecure-options=pubkey",
        "trust",
        "--prefix=example.com/x",
        "--skip-fingerprint-review",
        &url,
    ]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn trust_keys_from_https_trusts_what_discovery_names_for_the_name() {
    let _g = PORT_443.lock().unwrap_or_else(|e| e.into_inner());
    let gpg = Gpg::new("Tofu <tofu@example.com>");
    let ctx = TestCtx::new();
    let d = tempfile::tempdir().unwrap();
    let _srv = discovery_server_with_keys(&ctx, d.path(), &gpg);
    let before = store_state(&ctx);
    // without the flag the discovered key is not trusted
    assert_refused(
        &ctx,
        &fetch(&ctx, "appc:localhost/app:v1"),
        "localhost/app",
        true,
        &before,
    );
    assert!(stored_keys(&ctx, "", gpg.fingerprint()).is_empty());
    let o = out(ctx.rkt().args([
        "--trust-keys-from-https",
        "fetch",
        "--full",
        "appc:localhost/app:v1",
    ]));
    let id = assert_fetched(&o);
    assert_eq!(
        verification_of(&ctx, &id),
        format!("gpg:{}", gpg.fingerprint_lower())
    );
    assert_eq!(stored_keys(&ctx, "prefix.d", gpg.fingerprint()).len(), 1);
}

#[test]
fn rkt_config_shows_the_effective_policy() {
    let ctx = TestCtx::new();
    let cfg = |ctx: &TestCtx| -> serde_json::Value {
        let o = out(ctx.rkt().arg("config"));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    // nothing configured: a trusted key is required everywhere
    let v = cfg(&ctx);
    assert_eq!(v["policy"]["default"][0]["type"], "rktTrustedKeys", "{v}");
    assert!(v["policyFile"].is_null(), "{v}");
    // a policy file wins, and a trusted prefix adds its scope
    std::fs::create_dir_all(ctx.local_config()).unwrap();
    let file = ctx.local_config().join("policy.json");
    std::fs::write(&file, r#"{"default":[{"type":"reject"}]}"#).unwrap();
    let gpg = Gpg::new("Config <config@example.com>");
    trust(&ctx, &gpg, Some("example.com/app"));
    let v = cfg(&ctx);
    assert_eq!(v["policy"]["default"][0]["type"], "reject", "{v}");
    assert_eq!(v["policyFile"], file.display().to_string(), "{v}");
    assert_eq!(
        v["policy"]["transports"]["docker"]["example.com/app"][0]["type"], "rktTrustedKeys",
        "{v}"
    );
    // a broken policy is an error naming the file, not a silent default
    std::fs::write(&file, r#"{"default":[{"type":"acceptEverything"}]}"#).unwrap();
    let o = out(ctx.rkt().arg("config"));
    assert_eq!(o.status.code(), Some(254));
    assert!(stderr(&o).contains("policy.json"), "{}", stderr(&o));
}
