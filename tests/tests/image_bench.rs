//! Fetch speed (a measurement, not a pass/fail test): `cargo test -p rkt-tests --release
//! --test image_bench -- --ignored --nocapture` (set RKT_BIN_DIR=target/release for a release
//! rkt). Prints rkt fetch of the large image vs `gzip -dc` of its blobs (and podman pull when
//! installed), and the incremental fetch of an image sharing 4 of its 5 layers.

use rkt_tests::{images, registry, run_ok, TestCtx};
use std::process::Command;
use std::time::Instant;

fn time(label: &str, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    let s = t.elapsed().as_secs_f64();
    eprintln!("{label:<45} {s:>7.2} s");
    s
}

#[test]
#[ignore]
fn fetch_speed() {
    let reg = registry::shared();
    let tmp = tempfile::tempdir().unwrap();
    let layout = std::env::var_os("BENCH_LAYOUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("oci"));
    let (large, shared) = images::build_large(&layout);
    images::push(&large, reg.http_addr(), "bench/large:latest");
    images::push(&shared, reg.http_addr(), "bench/large-shared:latest");
    let blobs: Vec<String> = large
        .layers
        .iter()
        .map(|l| large.blob_path(&l.digest).display().to_string())
        .collect();
    let mb: u64 = large.layers.iter().map(|l| l.size).sum::<u64>() >> 20;
    eprintln!(
        "large image: {} layers, {mb} MB compressed",
        large.layers.len()
    );
    let gz = time("gzip -dc of the blobs", || {
        run_ok(Command::new("sh").arg("-c").arg(format!(
            "for f in {}; do gzip -dc $f; done >/dev/null",
            blobs.join(" ")
        )));
    });
    if std::env::var("BENCH_OCI").is_ok() {
        for _ in 0..2 {
            let c = TestCtx::new();
            time("rkt fetch oci: layout (empty store)", || {
                run_ok(
                    c.rkt()
                        .args(["--insecure-options=image", "fetch", &large.oci_ref()]),
                );
            });
            time("gzip -dc of the blobs", || {
                run_ok(Command::new("sh").arg("-c").arg(format!(
                    "for f in {}; do gzip -dc $f; done >/dev/null",
                    blobs.join(" ")
                )));
            });
        }
    }
    let ctx = TestCtx::new();
    let img = format!("docker://{}/bench/large:latest", reg.http_addr());
    // BENCH_PERF=FILE: also record one fetch with `perf record -g`.
    if let Some(out) = std::env::var_os("BENCH_PERF") {
        let c = TestCtx::new();
        let cmd = c.rkt();
        run_ok(
            Command::new("perf")
                .args(["record", "-g", "-o"])
                .arg(&out)
                .arg(cmd.get_program())
                .args(cmd.get_args())
                .args(["--insecure-options=image,http", "fetch", &img]),
        );
    }
    let rkt = time("rkt fetch (empty store)", || {
        run_ok(
            ctx.rkt()
                .args(["--insecure-options=image,http", "fetch", &img]),
        );
    });
    time("rkt fetch (4 of 5 layers present)", || {
        run_ok(ctx.rkt().args([
            "--insecure-options=image,http",
            "fetch",
            &format!("docker://{}/bench/large-shared:latest", reg.http_addr()),
        ]));
    });
    time("rkt fetch (all present, update policy)", || {
        run_ok(
            ctx.rkt()
                .args(["--insecure-options=image,http", "fetch", &img]),
        );
    });
    eprintln!("rkt / gzip -dc = {:.2} (target ≤ 1.2)", rkt / gz);
    if Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let root = tmp.path().join("podman-root");
        let runroot = tmp.path().join("podman-run");
        let p = time("podman pull", || {
            run_ok(
                Command::new("podman")
                    .arg(format!("--root={}", root.display()))
                    .arg(format!("--runroot={}", runroot.display()))
                    .args(["pull", "-q", "--tls-verify=false"])
                    .arg(format!("{}/bench/large:latest", reg.http_addr())),
            );
        });
        eprintln!("podman / rkt = {:.2} (target ≥ 4)", p / rkt);
        let _ = Command::new("podman")
            .arg(format!("--root={}", root.display()))
            .arg(format!("--runroot={}", runroot.display()))
            .args(["system", "reset", "-f"])
            .output();
    }
}

#[test]
#[ignore]
fn fetch_overhead_trace() {
    use std::io::BufRead;
    let reg = registry::shared();
    let tmp = tempfile::tempdir().unwrap();
    let (large, _shared) = images::build_large(&tmp.path().join("oci"));
    images::push(&large, reg.http_addr(), "bench/large:latest");
    let ctx = TestCtx::new();
    let img = format!("docker://{}/bench/large:latest", reg.http_addr());
    for _ in 0..2 {
        let t = Instant::now();
        let mut c = ctx
            .rkt()
            .args(["--insecure-options=image,http", "fetch", &img])
            .env("RKT_LOG", "debug")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let r = std::io::BufReader::new(c.stderr.take().unwrap());
        for l in r.lines() {
            eprintln!("{:>8.3} {}", t.elapsed().as_secs_f64(), l.unwrap());
        }
        c.wait().unwrap();
        eprintln!("{:>8.3} done", t.elapsed().as_secs_f64());
    }
}
