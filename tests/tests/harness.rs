//! The harness itself: registry fixture, image builder, verifier, cleanup guard.

use rkt_tests::{images, registry, run_ok, tarball, TestCtx};
use sha2::{Digest, Sha256};
use std::process::Command;

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn curl(url: &str, extra: &[&str]) -> Vec<u8> {
    let out = Command::new("curl")
        .args([
            "-fsS",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
        ])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn registry_serves_skopeo_pushed_image_by_digest_over_http_and_tls() {
    let reg = registry::shared();
    let img = images::busybox();
    images::push(img, reg.http_addr(), "harness/busybox:v1");
    let m = curl(
        &format!(
            "http://{}/v2/harness/busybox/manifests/{}",
            reg.http_addr(),
            img.manifest_digest
        ),
        &[],
    );
    assert_eq!(sha256(&m), img.manifest_digest);
    let layer = &img.layers[0];
    let blob = curl(
        &format!(
            "http://{}/v2/harness/busybox/blobs/{}",
            reg.http_addr(),
            layer.digest
        ),
        &[],
    );
    assert_eq!(sha256(&blob), layer.digest);
    assert_eq!(blob.len() as u64, layer.size);
    // Same storage behind the TLS endpoint, verified with the per-run CA.
    let ca = reg.ca_file();
    let m2 = curl(
        &format!("https://{}/v2/harness/busybox/manifests/v1", reg.tls_addr()),
        &["--cacert", ca.to_str().unwrap()],
    );
    assert_eq!(sha256(&m2), img.manifest_digest);
    // And TLS without the CA is refused.
    let st = Command::new("curl")
        .args(["-fsS", "-o", "/dev/null"])
        .arg(format!("https://{}/v2/", reg.tls_addr()))
        .status()
        .unwrap();
    assert!(!st.success(), "TLS must fail without the CA");
}

#[test]
fn registry_with_basic_auth_refuses_anonymous_and_accepts_credentials() {
    let reg = registry::Registry::start(registry::RegistryOptions {
        basic_auth: Some(("alice".into(), "s3cret".into())),
    });
    let url = format!("http://{}/v2/", reg.http_addr());
    let code = |extra: &[&str]| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(extra)
            .arg(&url)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(code(&[]), "401");
    assert_eq!(code(&["-u", "alice:s3cret"]), "200");
    images::push_with(
        images::busybox(),
        reg.http_addr(),
        "auth/bb:latest",
        Some("alice:s3cret"),
    );
}

#[test]
fn image_builder_is_reproducible() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (ba, bb) = (
        images::build_busybox(a.path()),
        images::build_busybox(b.path()),
    );
    assert_eq!(ba.manifest_digest, bb.manifest_digest);
    assert_eq!(ba.layers, bb.layers);
    let (wa, wb) = (
        images::build_whiteout(a.path()),
        images::build_whiteout(b.path()),
    );
    assert_eq!(wa.manifest_digest, wb.manifest_digest);
    assert_eq!(wa.layers.len(), 4);
    // The busybox layer is shared, byte for byte.
    assert_eq!(wa.layers[0], ba.layers[0]);
    // And the layout is valid for an external reader: skopeo inspects it.
    let out = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(wa.oci_ref()),
    );
    assert_eq!(sha256(out.as_bytes()), wa.manifest_digest);
}

#[test]
fn whiteout_layers_carry_the_special_entries() {
    let layers = images::whiteout_layers();
    let names = |t: &[u8]| -> Vec<String> {
        tar::Archive::new(t)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert!(names(&layers[1]).iter().any(|n| n == "data/.wh.delete-me"));
    assert!(names(&layers[1]).iter().any(|n| n == "opaque/.wh..wh..opq"));
    assert!(names(&layers[2]).iter().any(|n| n == "data/.wh.gone-dir"));
    let mut ar = tar::Archive::new(layers[0].as_slice());
    let mut saw = (false, false, false);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        if p == "data/setuid" {
            saw.0 = e.header().mode().unwrap() & 0o4000 != 0;
        }
        if p == "data/keep-hardlink" {
            saw.1 = e.header().entry_type() == tar::EntryType::Link;
        }
        if p == "data/keep" {
            saw.2 = e
                .pax_extensions()
                .unwrap()
                .unwrap()
                .any(|x| x.unwrap().key().unwrap() == "SCHILY.xattr.user.rkt-test");
        }
    }
    assert_eq!(saw, (true, true, true));
    let _ = tarball::MTIME;
}

#[test]
fn verifier_reports_from_inside_unshare_chroot() {
    let ctx = TestCtx::new();
    let rootfs = ctx.root().join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    images::unpack_plain(images::busybox(), &rootfs);
    let out = run_ok(
        Command::new("unshare")
            .args(["-m", "-p", "-f", "-u", "-i"])
            .arg(format!("--mount-proc={}/proc", rootfs.display()))
            .arg("chroot")
            .arg(&rootfs)
            .args([
                "/bin/sh",
                "-c",
                "hostname verifier-test && exec /usr/bin/rkt-verifier",
            ]),
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("verifier prints JSON");
    assert_eq!(v["pid"], 1, "PID 1 of the new pid namespace");
    assert_eq!(v["uid"], 0);
    assert_eq!(v["hostname"], "verifier-test");
    assert_eq!(v["cwd"], "/");
    let host_pidns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    assert_ne!(
        v["namespaces"]["pid"],
        host_pidns.to_string_lossy().as_ref()
    );
    assert!(v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["target"] == "/proc"));
    // Probes: exit code and write checks.
    let st = Command::new("chroot")
        .arg(&rootfs)
        .args(["/usr/bin/rkt-verifier", "exit", "7"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(7));
    let st = Command::new("chroot")
        .arg(&rootfs)
        .args(["/usr/bin/rkt-verifier", "write", "/nonexistent-dir/x"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(1));
}

#[test]
fn test_ctx_drop_kills_processes_and_unmounts() {
    let ctx = TestCtx::new();
    let mnt = ctx.root().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    run_ok(
        Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(&mnt),
    );
    let mut child = Command::new("sleep")
        .arg("600")
        .current_dir(&mnt)
        .spawn()
        .unwrap();
    let pid = child.id();
    let root = ctx.root().to_path_buf();
    assert_eq!(rkt_tests::cleanup::mounts_under(&root).len(), 1);
    drop(ctx);
    let _ = child.wait();
    assert!(rkt_tests::cleanup::mounts_under(&root).is_empty());
    assert!(!root.exists(), "the context dir is removed");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "sleep still alive"
    );
}
