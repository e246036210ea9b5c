//! The registry client seen through `rkt fetch`: tags and digests, plain http only with
//! `--insecure-options=http`, TLS with a `certs.d` CA (and the hint without it), basic auth
//! from `auth.d`, mirrors from `registries.d`, and clear 404s.
//!
//! (Platform selection from an index, retries and Range resumption are covered by the live
//! tests in image-store/src/registry/live_tests.rs.)

use std::process::Output;

use rkt_tests::images::{busybox, push, push_with};
use rkt_tests::registry::{self, Registry, RegistryOptions};
use rkt_tests::TestCtx;

fn fetch(ctx: &TestCtx, insecure: &str, image: &str) -> Output {
    ctx.rkt()
        .arg(format!("--insecure-options={insecure}"))
        .args(["fetch", "--full"])
        .arg(image)
        .output()
        .expect("run rkt fetch")
}

fn ok_id(out: &Output) -> String {
    assert!(
        out.status.success(),
        "rkt fetch failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn failed(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(254),
        "expected rkt-side failure, stdout: {} stderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Push busybox once per test binary under `repo_tag` on the shared registry.
fn pushed(repo_tag: &str) -> &'static Registry {
    let reg = registry::shared();
    push(busybox(), reg.http_addr(), repo_tag);
    reg
}

#[test]
fn http_by_tag_and_digest_needs_insecure_http() {
    let reg = pushed("rc/bb:v1");
    let ctx = TestCtx::new();
    let by_tag = format!("docker://{}/rc/bb:v1", reg.http_addr());

    let err = failed(&fetch(&ctx, "image", &by_tag));
    assert!(err.contains("--insecure-options=http"), "{err}");

    let id = ok_id(&fetch(&ctx, "image,http", &by_tag));
    assert_eq!(id, busybox().manifest_digest());

    let ctx2 = TestCtx::new();
    let by_digest = format!("{}/rc/bb@{}", reg.http_addr(), busybox().manifest_digest());
    assert_eq!(ok_id(&fetch(&ctx2, "image,http", &by_digest)), id);
}

#[test]
fn not_found_names_the_image() {
    let reg = pushed("rc/bb:v1");
    let ctx = TestCtx::new();
    let image = format!("{}/rc/bb:nosuchtag", reg.http_addr());
    let err = failed(&fetch(&ctx, "image,http", &image));
    assert!(
        err.contains(&format!("image \"{image}\" not found in registry")),
        "{err}"
    );
}

#[test]
fn tls_with_certs_d_ca_and_without() {
    let reg = pushed("rc/tls:v1");
    let image = format!("docker://{}/rc/tls:v1", reg.tls_addr());

    let ctx = TestCtx::new();
    let err = failed(&fetch(&ctx, "image", &image));
    assert!(
        err.contains("certs.d") && err.contains("--insecure-options=tls"),
        "{err}"
    );
    // allow_http must not turn a TLS failure into plain http
    failed(&fetch(&ctx, "image,http", &image));

    ctx.trust_ca(reg.tls_addr(), &reg.ca_file());
    assert_eq!(
        ok_id(&fetch(&ctx, "image", &image)),
        busybox().manifest_digest()
    );

    let ctx2 = TestCtx::new();
    assert_eq!(
        ok_id(&fetch(&ctx2, "image,tls", &image)),
        busybox().manifest_digest()
    );
}

#[test]
fn basic_auth_from_auth_d() {
    let reg = Registry::start(RegistryOptions {
        basic_auth: Some(("alice".into(), "s3cret".into())),
    });
    push_with(
        busybox(),
        reg.http_addr(),
        "private/bb:v1",
        Some("alice:s3cret"),
    );
    let image = format!("{}/private/bb:v1", reg.http_addr());

    let ctx = TestCtx::new();
    let err = failed(&fetch(&ctx, "image,http", &image));
    assert!(err.contains("not authorized"), "{err}");

    let auth_d = ctx.local_config().join("auth.d");
    std::fs::create_dir_all(&auth_d).unwrap();
    std::fs::write(
        auth_d.join("test.json"),
        format!(
            r#"{{"rktKind":"dockerAuth","rktVersion":"v1","registries":["{}"],"credentials":{{"user":"alice","password":"s3cret"}}}}"#,
            reg.http_addr()
        ),
    )
    .unwrap();
    assert_eq!(
        ok_id(&fetch(&ctx, "image,http", &image)),
        busybox().manifest_digest()
    );
}

#[test]
fn mirror_serves_an_unreachable_registry() {
    let reg = pushed("rc/mirrored:v1");
    let ctx = TestCtx::new();
    let d = ctx.local_config().join("registries.d");
    std::fs::create_dir_all(&d).unwrap();
    // First mirror is down, second has the image; the origin does not exist.
    std::fs::write(
        d.join("mirrors.toml"),
        format!(
            "[[mirror]]\nregistry = \"origin.invalid:5000\"\nendpoints = [\"127.0.0.1:9\", \"{}\"]\n",
            reg.http_addr()
        ),
    )
    .unwrap();
    let id = ok_id(&fetch(
        &ctx,
        "image,http",
        "docker://origin.invalid:5000/rc/mirrored:v1",
    ));
    assert_eq!(id, busybox().manifest_digest());
}
