//! The image store through the real `rkt` binary: registry pulls (tag, digest, TLS, corrupted
//! and truncated blobs), OCI layout / archive / docker-archive / ACI imports, hostile layers,
//! whiteout rendering, pull policies, list/rm/gc/export/verify, concurrency and killed fetches.

use rkt_tests::tarball::{self, tar_bytes, write_image, Entry, ImageSpec, OciImage};
use rkt_tests::{images, registry, run_ok, stderr, TestCtx};
use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

const INSECURE: &str = "--insecure-options=image,http";

fn out(c: &mut Command) -> Output {
    c.output().unwrap_or_else(|e| panic!("spawning {c:?}: {e}"))
}

fn fetch_full(ctx: &TestCtx, image: &str) -> String {
    run_ok(ctx.rkt().arg(INSECURE).args(["fetch", "--full", image]))
        .trim()
        .to_string()
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn list_json(ctx: &TestCtx) -> Vec<serde_json::Value> {
    let s = run_ok(ctx.rkt().args(["image", "list", "--format=json"]));
    serde_json::from_str::<serde_json::Value>(&s)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// A small image with content unique to `seed`, so tests can tamper with its blobs in the
/// shared registry without affecting others.
fn unique_image(seed: &str) -> (tempfile::TempDir, OciImage) {
    let d = tempfile::tempdir().unwrap();
    let layer = tar_bytes(&[
        Entry::dir("etc"),
        Entry::file("etc/unique", format!("{seed}-{}\n", std::process::id())),
        Entry::file(
            "payload",
            images::prng_bytes(seed.len() as u64 + std::process::id() as u64, 300_000),
        ),
    ]);
    let img = write_image(d.path(), "unique", &[layer], &ImageSpec::default());
    (d, img)
}

fn repo(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "store-{}-{}/{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[test]
fn pull_by_tag_and_digest_over_http() {
    let reg = registry::shared();
    let img = images::busybox();
    let r = repo("bb");
    images::push(img, reg.http_addr(), &format!("{r}:v1"));
    let ctx = TestCtx::new();
    let by_tag = format!("docker://{}/{r}:v1", reg.http_addr());
    let id = fetch_full(&ctx, &by_tag);
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    // Short form by default: 32 hex digits.
    let short = run_ok(ctx.rkt().arg(INSECURE).args(["fetch", &by_tag]));
    assert_eq!(short.trim(), &id[..7 + 32]);
    let by_digest = format!("{}/{r}@{id}", reg.http_addr());
    assert_eq!(fetch_full(&ctx, &by_digest), id);
    let list = list_json(&ctx);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    // Layers stored once, blobs verified.
    assert_eq!(count(&ctx.dir().join("cas/layers")), img.layers.len());
    let m = run_ok(ctx.rkt().args(["image", "cat-manifest", &id[..20]]));
    let m: serde_json::Value = serde_json::from_str(&m).unwrap();
    assert_eq!(m["schemaVersion"], 2);
}

#[test]
fn signature_and_http_flags_are_required() {
    let reg = registry::shared();
    let r = repo("bb");
    images::push(images::busybox(), reg.http_addr(), &format!("{r}:v1"));
    let ctx = TestCtx::new();
    let image = format!("docker://{}/{r}:v1", reg.http_addr());
    let o = out(ctx.rkt().args(["fetch", &image]));
    assert_eq!(o.status.code(), Some(254));
    // nothing trusted: refused before the (plain-http) registry is asked
    assert!(
        stderr(&o).contains("not trusted") && stderr(&o).contains("--insecure-options=image"),
        "{}",
        stderr(&o)
    );
    let o = out(ctx
        .rkt()
        .args(["--insecure-options=image", "fetch", &image]));
    assert_eq!(o.status.code(), Some(254));
    assert!(
        stderr(&o).contains("--insecure-options=http"),
        "{}",
        stderr(&o)
    );
    assert!(list_json(&ctx).is_empty());
}

#[test]
fn tls_registry_needs_its_ca() {
    let reg = registry::shared();
    let r = repo("bb");
    images::push(images::busybox(), reg.tls_addr(), &format!("{r}:v1"));
    let ctx = TestCtx::new();
    let image = format!("docker://{}/{r}:v1", reg.tls_addr());
    let o = out(ctx
        .rkt()
        .args(["--insecure-options=image", "fetch", &image]));
    assert_eq!(o.status.code(), Some(254), "{}", stderr(&o));
    ctx.trust_ca(reg.tls_addr(), &reg.ca_file());
    let id = run_ok(
        ctx.rkt()
            .args(["--insecure-options=image", "fetch", "--full", &image]),
    );
    assert!(id.trim().starts_with("sha256:"));
}

#[test]
fn corrupted_blob_is_refused_and_nothing_stored() {
    let reg = registry::shared();
    let (_d, img) = unique_image("corrupt");
    let r = repo("corrupt");
    images::push(&img, reg.http_addr(), &format!("{r}:v1"));
    let data = reg.blob_data_path(&img.layers[0].digest);
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&data, &bytes).unwrap();
    let ctx = TestCtx::new();
    let o = out(ctx
        .rkt()
        .arg(INSECURE)
        .args(["fetch", &format!("{}/{r}:v1", reg.http_addr())]));
    assert_eq!(o.status.code(), Some(254));
    let e = stderr(&o);
    assert!(
        e.contains(&img.layers[0].digest) && e.contains("digest"),
        "{e}"
    );
    assert!(list_json(&ctx).is_empty());
    assert_eq!(count(&ctx.dir().join("cas/layers")), 0);
    assert_eq!(count(&ctx.dir().join("cas/tmp")), 0);
}

#[test]
fn truncated_blob_is_refused() {
    let reg = registry::shared();
    let (_d, img) = unique_image("truncated");
    let r = repo("trunc");
    images::push(&img, reg.http_addr(), &format!("{r}:v1"));
    let data = reg.blob_data_path(&img.layers[0].digest);
    let bytes = std::fs::read(&data).unwrap();
    std::fs::write(&data, &bytes[..bytes.len() / 2]).unwrap();
    let ctx = TestCtx::new();
    let o = out(ctx
        .rkt()
        .arg(INSECURE)
        .args(["fetch", &format!("{}/{r}:v1", reg.http_addr())]));
    assert_eq!(o.status.code(), Some(254));
    assert!(stderr(&o).contains(&img.layers[0].digest), "{}", stderr(&o));
    assert!(list_json(&ctx).is_empty());
    assert_eq!(count(&ctx.dir().join("cas/layers")), 0);
}

#[test]
fn oci_layout_archive_and_docker_archive_imports() {
    let img = images::busybox();
    let ctx = TestCtx::new();
    let id = fetch_full(&ctx, &img.oci_ref());
    assert_eq!(id, img.manifest_digest());
    let tmp = tempfile::tempdir().unwrap();
    let oa = tmp.path().join("bb-oci.tar");
    images::archive(img, "oci-archive", &oa);
    let ctx2 = TestCtx::new();
    assert_eq!(
        fetch_full(&ctx2, &format!("oci-archive:{}", oa.display())),
        id
    );
    let da = tmp.path().join("bb-docker.tar");
    images::archive(img, "docker-archive", &da);
    let did = fetch_full(&ctx2, &format!("docker-archive:{}", da.display()));
    assert!(did.starts_with("sha256:"));
    // skopeo's FILE:REF form names the same archive.
    assert_eq!(
        fetch_full(
            &ctx2,
            &format!("docker-archive:{}:rkt-test/busybox:latest", da.display())
        ),
        did
    );
    // Same layer content: still one extracted layer.
    assert_eq!(count(&ctx2.dir().join("cas/layers")), 1);
    // A re-import of a docker archive is stable.
    assert_eq!(
        fetch_full(&ctx2, &format!("docker-archive:{}", da.display())),
        did
    );
    let rootfs = tmp.path().join("r");
    run_ok(
        ctx2.rkt()
            .args(["image", "render", "--rootfs-only", &did])
            .arg(&rootfs),
    );
    assert!(rootfs.join("bin/busybox").is_file());
}

#[test]
fn aci_import_has_rkt_id() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = r#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/hello",
        "labels":[{"name":"version","value":"1.0"},{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}],
        "app":{"exec":["/hello"],"user":"0","group":"0"}}"#;
    let tar = tar_bytes(&[
        Entry::file("manifest", manifest),
        Entry::dir("rootfs"),
        Entry::file("rootfs/hello", "hi\n").mode(0o755),
    ]);
    let aci = tmp.path().join("hello.aci");
    std::fs::write(&aci, tarball::gzip(&tar)).unwrap();
    let ctx = TestCtx::new();
    let id = fetch_full(&ctx, &format!("file://{}", aci.display()));
    use sha2::Digest;
    let want = format!("sha512-{}", &hex::encode(sha2::Sha512::digest(&tar))[..64]);
    assert_eq!(id, want);
    let list = list_json(&ctx);
    assert_eq!(list[0]["name"], "example.com/hello:1.0");
    let out_dir = tmp.path().join("x");
    run_ok(
        ctx.rkt()
            .args(["image", "extract", &id[..20]])
            .arg(&out_dir),
    );
    assert!(out_dir.join("manifest").is_file());
    assert_eq!(
        std::fs::read(out_dir.join("rootfs/hello")).unwrap(),
        b"hi\n"
    );
    // Export gives back the stored (uncompressed) ACI.
    let exp = tmp.path().join("out.aci");
    run_ok(ctx.rkt().args(["image", "export", &id]).arg(&exp));
    assert_eq!(std::fs::read(&exp).unwrap(), tar);
}

fn hostile(entries: Vec<Entry>) -> (TestCtx, Output, tempfile::TempDir) {
    let d = tempfile::tempdir().unwrap();
    let img = write_image(
        d.path(),
        "hostile",
        &[tar_bytes(&entries)],
        &ImageSpec::default(),
    );
    let ctx = TestCtx::new();
    let o = out(ctx.rkt().arg(INSECURE).args(["fetch", &img.oci_ref()]));
    (ctx, o, d)
}

#[test]
fn hostile_layers_are_refused_and_host_untouched() {
    let victim = tempfile::tempdir().unwrap();
    let vpath = victim.path().to_str().unwrap().to_string();
    let shadow_before = std::fs::metadata("/etc/shadow")
        .map(|m| (m.nlink(), m.mode()))
        .ok();
    let cases: Vec<(&str, Vec<Entry>)> = vec![
        (
            "dotdot",
            vec![Entry::file("../../../../../../tmp/rkt-escaped", "x")],
        ),
        (
            "symlink-write-through",
            vec![
                Entry::symlink("evil", &vpath),
                Entry::file("evil/planted", "x"),
            ],
        ),
        (
            "hardlink-shadow",
            vec![Entry::hardlink("shadow", "/etc/shadow")],
        ),
        (
            "absolute-symlink-dir",
            vec![
                Entry::symlink("etc", "/etc"),
                Entry::file("etc/rkt-planted", "x"),
            ],
        ),
    ];
    for (name, entries) in cases {
        let (ctx, o, _d) = hostile(entries);
        assert_eq!(o.status.code(), Some(254), "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("unsafe tar entry"),
            "{name}: {}",
            stderr(&o)
        );
        assert!(list_json(&ctx).is_empty(), "{name}");
        assert_eq!(count(&ctx.dir().join("cas/layers")), 0, "{name}");
    }
    assert!(!Path::new("/tmp/rkt-escaped").exists());
    assert!(!victim.path().join("planted").exists());
    assert!(!Path::new("/etc/rkt-planted").exists());
    let shadow_after = std::fs::metadata("/etc/shadow")
        .map(|m| (m.nlink(), m.mode()))
        .ok();
    assert_eq!(shadow_before, shadow_after);
}

#[test]
fn whiteout_image_renders_as_a_pod_sees_it() {
    let img = images::whiteout();
    let ctx = TestCtx::new();
    let id = fetch_full(&ctx, &img.oci_ref());
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("render");
    run_ok(ctx.rkt().args(["image", "render", &id]).arg(&out_dir));
    let root = out_dir.join("rootfs");
    assert!(out_dir.join("manifest").is_file());
    let want: BTreeSet<String> = [
        "added",
        "keep",
        "keep-hardlink",
        "keep-symlink",
        "owned",
        "setuid",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(names(&root.join("data")), want);
    assert_eq!(names(&root.join("opaque")), ["new".to_string()].into());
    let keep = std::fs::metadata(root.join("data/keep")).unwrap();
    assert_eq!(
        keep.ino(),
        std::fs::metadata(root.join("data/keep-hardlink"))
            .unwrap()
            .ino()
    );
    assert_eq!(
        std::fs::metadata(root.join("data/setuid"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4755
    );
    assert_eq!(
        std::fs::metadata(root.join("data/owned")).unwrap().uid(),
        1000
    );
    assert_eq!(
        std::fs::read_link(root.join("data/keep-symlink")).unwrap(),
        PathBuf::from("keep")
    );
    // In the store, layers are in overlay format: a whiteout is a 0:0 char device.
    let layers = ctx.dir().join("cas/layers");
    let mut whiteouts = 0;
    for l in names(&layers) {
        let p = layers.join(&l).join("data/delete-me");
        if let Ok(m) = std::fs::symlink_metadata(&p) {
            use std::os::unix::fs::FileTypeExt;
            if m.file_type().is_char_device() && m.rdev() == 0 {
                whiteouts += 1;
            }
        }
    }
    assert_eq!(whiteouts, 1);
    // --overwrite is needed for a non-empty target.
    let o = out(ctx.rkt().args(["image", "render", &id]).arg(&out_dir));
    assert_eq!(o.status.code(), Some(254));
    run_ok(
        ctx.rkt()
            .args(["image", "render", "--overwrite", &id])
            .arg(&out_dir),
    );
}

#[test]
fn pull_policies() {
    let reg = registry::shared();
    let r = repo("bb");
    let image = format!("docker://{}/{r}:v1", reg.http_addr());
    let ctx = TestCtx::new();
    let o = out(ctx
        .rkt()
        .arg(INSECURE)
        .args(["fetch", "--pull-policy=never", &image]));
    assert_eq!(o.status.code(), Some(254));
    assert!(
        stderr(&o).contains("not found in the store"),
        "{}",
        stderr(&o)
    );
    images::push(images::busybox(), reg.http_addr(), &format!("{r}:v1"));
    let id = fetch_full(&ctx, &image);
    let never =
        run_ok(
            ctx.rkt()
                .arg(INSECURE)
                .args(["fetch", "--full", "--pull-policy=never", &image]),
        );
    assert_eq!(never.trim(), id);
    let new =
        run_ok(
            ctx.rkt()
                .arg(INSECURE)
                .args(["fetch", "--full", "--pull-policy=new", &image]),
        );
    assert_eq!(new.trim(), id);
}

#[test]
fn list_rm_gc_export_verify() {
    let img = images::busybox();
    let ctx = TestCtx::new();
    let id = fetch_full(&ctx, &img.oci_ref());
    let list = list_json(&ctx);
    assert_eq!(list.len(), 1);
    let keys: BTreeSet<&str> = list[0]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "import_time",
            "last_used_time",
            "name",
            "size",
            "verification"
        ]
        .into()
    );
    assert!(list[0]["size"].as_u64().unwrap() > 0);
    let table = run_ok(ctx.rkt().args(["image", "list"]));
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains(&id[..7 + 12]));
    let nl = run_ok(
        ctx.rkt()
            .args(["image", "list", "--no-legend", "--full", "--fields=id,name"]),
    );
    assert!(nl.starts_with(&id), "{nl}");

    // verify re-hashes and repairs a damaged layer.
    let layer = ctx
        .dir()
        .join("cas/layers")
        .join(img.layers[0].diff_id.trim_start_matches("sha256:"));
    std::fs::remove_file(layer.join("bin/busybox")).unwrap();
    let v = run_ok(ctx.rkt().args(["image", "verify", &id]));
    assert!(v.contains("successfully verified checksum"), "{v}");
    assert!(layer.join("bin/busybox").is_file());

    // export → re-import elsewhere gives the same id.
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("bb.tar");
    run_ok(ctx.rkt().args(["image", "export", &id]).arg(&f));
    let ctx2 = TestCtx::new();
    assert_eq!(
        fetch_full(&ctx2, &format!("oci-archive:{}", f.display())),
        id
    );

    // rm by prefix, unknown names fail.
    let o = out(ctx.rkt().args(["image", "rm", "sha256:ffffffff"]));
    assert_eq!(o.status.code(), Some(254));
    let rm = run_ok(ctx.rkt().args(["image", "rm", &id[..15]]));
    assert_eq!(
        rm.trim(),
        format!("successfully removed aci for image: {id:?}")
    );
    assert!(list_json(&ctx).is_empty());
    // gc removes the now unreferenced layers and blobs.
    let gc = run_ok(
        ctx.rkt()
            .args(["image", "gc", "--grace-period=0s", "--format=json"]),
    );
    let gc: serde_json::Value = serde_json::from_str(&gc).unwrap();
    assert_eq!(gc["removed_layers"], 1);
    assert_eq!(count(&ctx.dir().join("cas/layers")), 0);
    assert_eq!(count(&ctx.dir().join("cas/blobs/sha256")), 0);

    // gc keeps recent images (default grace period 24h).
    let id2 = fetch_full(&ctx2, &img.oci_ref());
    let gc = run_ok(ctx2.rkt().args(["image", "gc", "--format=json"]));
    let gc: serde_json::Value = serde_json::from_str(&gc).unwrap();
    assert_eq!(gc["removed_images"].as_array().unwrap().len(), 0);
    assert_eq!(list_json(&ctx2)[0]["id"], id2.as_str());
}

#[test]
fn concurrent_fetches_store_one_copy() {
    let img = images::whiteout();
    let ctx = TestCtx::new();
    let children: Vec<_> = (0..3)
        .map(|_| {
            ctx.rkt()
                .arg(INSECURE)
                .args(["fetch", "--full", &img.oci_ref()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            img.manifest_digest()
        );
    }
    assert_eq!(list_json(&ctx).len(), 1);
    assert_eq!(count(&ctx.dir().join("cas/layers")), img.layers.len());
    assert_eq!(count(&ctx.dir().join("cas/tmp")), 0);
}

#[test]
fn killed_fetch_leaves_only_tmp_debris_for_gc() {
    let reg = registry::shared();
    let d = tempfile::tempdir().unwrap();
    let big = tar_bytes(&[Entry::file("big", images::prng_bytes(7, 64 << 20))]);
    let img = write_image(d.path(), "big", &[big], &ImageSpec::default());
    let r = repo("big");
    images::push(&img, reg.http_addr(), &format!("{r}:v1"));
    let ctx = TestCtx::new();
    let mut child = ctx
        .rkt()
        .arg(INSECURE)
        .args(["fetch", &format!("{}/{r}:v1", reg.http_addr())])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the layer is being written, then kill -9.
    let tmp = ctx.dir().join("cas/tmp");
    let start = std::time::Instant::now();
    while count(&tmp) == 0 && start.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert!(list_json(&ctx).is_empty());
    assert_eq!(count(&ctx.dir().join("cas/layers")), 0);
    run_ok(ctx.rkt().args(["image", "gc", "--grace-period=0s"]));
    assert_eq!(count(&tmp), 0);
    // The next fetch works.
    let id = fetch_full(&ctx, &format!("{}/{r}:v1", reg.http_addr()));
    assert!(id.starts_with("sha256:"));
}

#[test]
fn gc_waits_for_an_in_progress_fetch() {
    let reg = registry::shared();
    let d = tempfile::tempdir().unwrap();
    let big = tar_bytes(&[Entry::file("big", images::prng_bytes(11, 48 << 20))]);
    let img = write_image(d.path(), "big", &[big], &ImageSpec::default());
    let r = repo("gcwait");
    images::push(&img, reg.http_addr(), &format!("{r}:v1"));
    let ctx = TestCtx::new();
    let fetch = ctx
        .rkt()
        .arg(INSECURE)
        .args(["fetch", "--full", &format!("{}/{r}:v1", reg.http_addr())])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let tmp = ctx.dir().join("cas/tmp");
    let start = std::time::Instant::now();
    while count(&tmp) == 0 && start.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // gc (default grace period) must not pull the fetch's work from under it.
    let gc = out(ctx.rkt().args(["image", "gc", "--format=json"]));
    assert!(gc.status.success(), "{}", stderr(&gc));
    let f = fetch.wait_with_output().unwrap();
    assert!(f.status.success(), "{}", stderr(&f));
    assert_eq!(
        String::from_utf8_lossy(&f.stdout).trim(),
        img.manifest_digest()
    );
    let gc: serde_json::Value = serde_json::from_slice(&gc.stdout).unwrap();
    assert_eq!(gc["removed_layers"], 0, "{gc}");
    assert_eq!(list_json(&ctx).len(), 1);
    let layer = ctx
        .dir()
        .join("cas/layers")
        .join(img.layers[0].diff_id.trim_start_matches("sha256:"));
    assert!(layer.join("big").is_file());
}

#[test]
fn basic_auth_from_auth_d() {
    let reg = registry::Registry::start(registry::RegistryOptions {
        basic_auth: Some(("rkt".into(), "s3cret".into())),
    });
    images::push_with(
        images::busybox(),
        reg.http_addr(),
        "auth/bb:v1",
        Some("rkt:s3cret"),
    );
    let ctx = TestCtx::new();
    let image = format!("docker://{}/auth/bb:v1", reg.http_addr());
    let o = out(ctx.rkt().arg(INSECURE).args(["fetch", &image]));
    assert_eq!(o.status.code(), Some(254));
    assert!(stderr(&o).contains("401"), "{}", stderr(&o));
    let auth = ctx.local_config().join("auth.d");
    std::fs::create_dir_all(&auth).unwrap();
    std::fs::write(
        auth.join("test.json"),
        format!(
            r#"{{"rktKind":"dockerAuth","rktVersion":"v1","registries":["{}"],"credentials":{{"user":"rkt","password":"s3cret"}}}}"#,
            reg.http_addr()
        ),
    )
    .unwrap();
    let id = fetch_full(&ctx, &image);
    assert_eq!(id, images::busybox().manifest_digest());
}

#[test]
fn mirrors_from_registries_d() {
    let reg = registry::shared();
    let r = repo("mirrored");
    images::push(images::busybox(), reg.http_addr(), &format!("{r}:v1"));
    let ctx = TestCtx::new();
    let d = ctx.local_config().join("registries.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("mirror.toml"),
        format!(
            "[[mirror]]\nregistry = \"registry.invalid\"\nendpoints = [\"http://{}\"]\n",
            reg.http_addr()
        ),
    )
    .unwrap();
    let image = format!("docker://registry.invalid/{r}:v1");
    let id = fetch_full(&ctx, &image);
    assert_eq!(id, images::busybox().manifest_digest());
    // Recorded under the name asked for, found again by it.
    assert_eq!(
        list_json(&ctx)[0]["name"],
        format!("registry.invalid/{r}:v1")
    );
    let never = run_ok(
        ctx.rkt()
            .args(["fetch", "--full", "--pull-policy=never", &image]),
    );
    assert_eq!(never.trim(), id);
}

/// A copy of the busybox layout whose tag `multi` is an image index: linux/s390x first, then
/// the host's platform (both entries point at busybox's manifest).
fn multi_platform_layout() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let lay = d.path().join("multi");
    let bb = images::busybox();
    run_ok(Command::new("cp").arg("-a").arg(bb.layout_dir()).arg(&lay));
    let msize = std::fs::metadata(bb.blob_path(bb.manifest_digest()))
        .unwrap()
        .len();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let entry = |a: &str| {
        serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": bb.manifest_digest(), "size": msize, "platform": {"os": "linux", "architecture": a}})
    };
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry("s390x"), entry(arch)]})
    .to_string();
    let digest = tarball::digest(index.as_bytes());
    std::fs::write(
        lay.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
        &index,
    )
    .unwrap();
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": digest, "size": index.len(), "annotations": {"org.opencontainers.image.ref.name": "multi"}}]});
    std::fs::write(lay.join("index.json"), top.to_string()).unwrap();
    (d, lay)
}

#[test]
fn image_index_picks_the_host_platform() {
    let (_d, lay) = multi_platform_layout();
    let ctx = TestCtx::new();
    let id = fetch_full(&ctx, &format!("oci:{}:multi", lay.display()));
    assert_eq!(id, images::busybox().manifest_digest());
    // Through a registry too.
    let reg = registry::shared();
    let r = repo("multi");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "-q", "--all", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:multi", lay.display()))
            .arg(format!("docker://{}/{r}:v1", reg.http_addr())),
    );
    let ctx2 = TestCtx::new();
    let id2 = fetch_full(&ctx2, &format!("{}/{r}:v1", reg.http_addr()));
    assert_eq!(id2, images::busybox().manifest_digest());
}

/// Several rkt processes opening a fresh store at once all succeed (switching the new index to
/// WAL and migrating it used to fail with "database is locked" for the loser).
#[test]
fn concurrent_first_open_of_a_fresh_store() {
    for _round in 0..5 {
        let ctx = TestCtx::new();
        let children: Vec<_> = (0..4)
            .map(|_| {
                ctx.rkt()
                    .args(["image", "list", "--no-legend"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
