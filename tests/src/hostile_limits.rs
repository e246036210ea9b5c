//! Hostile images for the image-config limits (hardening item 8): configs too big, too many
//! `Env` entries, an environment `execve` cannot take. Each image gets an OCI layout of its
//! own under the per-process scratch dir (tests build them in parallel), built once per
//! process.

use crate::images::{busybox_entries, scratch};
use crate::tarball::{tar_bytes, write_image, Entry, ImageSpec, OciImage};
use std::path::PathBuf;
use std::sync::OnceLock;

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn layout(name: &str) -> PathBuf {
    scratch().join(format!("hostile-limits-{name}"))
}

/// A one-file layer, for images that must be refused before any layer is looked at.
fn tiny_layer() -> Vec<u8> {
    tar_bytes(&[Entry::file("hello", "hello\n")])
}

/// busybox whose config has `PATH` and `V0=1` … `V{n-1}=1`: `n + 1` variables, ≈ 16 n bytes
/// of `execve` space (100 000 fit the default 2 MiB).
pub fn many_env(n: usize) -> OciImage {
    let mut env = vec![PATH.to_string()];
    env.extend((0..n).map(|i| format!("V{i}=1")));
    write_image(
        &layout(&format!("env-{n}")),
        "many-env",
        &[tar_bytes(&busybox_entries())],
        &ImageSpec {
            env,
            ..ImageSpec::default()
        },
    )
}

/// [`many_env`] with 100 000 variables, built once per process.
pub fn env_100k() -> &'static OciImage {
    static I: OnceLock<OciImage> = OnceLock::new();
    I.get_or_init(|| many_env(100_000))
}

/// A config of 2 300 000 `Env` entries (≈ 26 MB, under the 32 MiB size limit) on a tiny
/// layer: more variables than any `execve` can take.
pub fn env_2_3m() -> &'static OciImage {
    static I: OnceLock<OciImage> = OnceLock::new();
    I.get_or_init(|| {
        let mut env = vec![PATH.to_string()];
        env.extend((0..2_300_000).map(|i| format!("E{i:07}=x")));
        write_image(
            &layout("env-2.3m"),
            "env-2.3m",
            &[tiny_layer()],
            &ImageSpec {
                env,
                ..ImageSpec::default()
            },
        )
    })
}

/// A config of just over 33 MiB (a few hundred 100 KiB variables) on a tiny layer.
pub fn config_33m() -> &'static OciImage {
    static I: OnceLock<OciImage> = OnceLock::new();
    I.get_or_init(|| {
        let mut env = vec![PATH.to_string()];
        let value = "x".repeat(100 << 10);
        env.extend((0..340).map(|i| format!("BIG{i}={value}")));
        let img = write_image(
            &layout("config-33m"),
            "config-33m",
            &[tiny_layer()],
            &ImageSpec {
                env,
                ..ImageSpec::default()
            },
        );
        let len = std::fs::metadata(img.blob_path(&img.config_digest))
            .unwrap()
            .len();
        assert!(len > 33 << 20, "config is {len} bytes");
        img
    })
}

/// busybox whose environment is too large for `execve` under the default 8 MiB stack limit
/// (2 MiB for arguments and environment) but fits an unlimited one (6 MiB): 30 variables of
/// 100 KiB, each under the kernel's 128 KiB per string.
pub fn env_3m() -> &'static OciImage {
    static I: OnceLock<OciImage> = OnceLock::new();
    I.get_or_init(|| {
        let mut env = vec![PATH.to_string()];
        let value = "y".repeat(100 << 10);
        env.extend((0..30).map(|i| format!("HUGE{i}={value}")));
        write_image(
            &layout("env-3m"),
            "env-3m",
            &[tar_bytes(&busybox_entries())],
            &ImageSpec {
                env,
                ..ImageSpec::default()
            },
        )
    })
}

/// Write `image` as an `oci-archive:` tar of its layout (GNU tar; skopeo refuses configs over
/// 4 MiB, so it cannot write these).
pub fn oci_archive(image: &OciImage, file: &std::path::Path) {
    crate::run_ok(
        std::process::Command::new("tar")
            .arg("-C")
            .arg(image.layout_dir())
            .arg("-cf")
            .arg(file)
            .arg("."),
    );
}

/// Write `image` as a `docker-archive:` (`docker save` layout: manifest.json, the config as
/// `<hex>.json`, each layer blob as `<hex>/layer.tar`).
pub fn docker_archive(image: &OciImage, file: &std::path::Path) {
    let dir = file.with_extension("d");
    std::fs::create_dir_all(&dir).unwrap();
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
    let config = format!("{}.json", hex(&image.config_digest));
    std::fs::copy(image.blob_path(&image.config_digest), dir.join(&config)).unwrap();
    let mut layers = Vec::new();
    for l in &image.layers {
        let rel = format!("{}/layer.tar", hex(&l.digest));
        std::fs::create_dir_all(dir.join(hex(&l.digest))).unwrap();
        std::fs::copy(image.blob_path(&l.digest), dir.join(&rel)).unwrap();
        layers.push(rel);
    }
    let manifest = serde_json::json!([{
        "Config": config,
        "RepoTags": [format!("rkt-test/{}:latest", image.tag)],
        "Layers": layers,
    }]);
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    crate::run_ok(
        std::process::Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .arg("-cf")
            .arg(file)
            .arg("."),
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Push `image` to the registry at `addr` (plain HTTP) as `repo:tag` with the distribution
/// API through curl: monolithic blob uploads, then the manifest (skopeo refuses configs over
/// 4 MiB).
pub fn push_raw(image: &OciImage, addr: &str, repo: &str, tag: &str) {
    let curl = |args: &[&str]| -> String {
        crate::run_ok(std::process::Command::new("curl").args(["-sSf"]).args(args))
    };
    let mut blobs = vec![image.config_digest.clone()];
    blobs.extend(image.layers.iter().map(|l| l.digest.clone()));
    for d in &blobs {
        let headers = curl(&[
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-X",
            "POST",
            &format!("http://{addr}/v2/{repo}/blobs/uploads/"),
        ]);
        let location = headers
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                    .map(|(_, v)| v.trim().to_string())
            })
            .expect("upload location");
        let url = if location.starts_with("http") {
            location
        } else {
            format!("http://{addr}{location}")
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        curl(&[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", image.blob_path(d).display()),
            &format!("{url}{sep}digest={d}"),
        ]);
    }
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &format!("@{}", image.blob_path(&image.manifest_digest).display()),
        &format!("http://{addr}/v2/{repo}/manifests/{tag}"),
    ]);
}
