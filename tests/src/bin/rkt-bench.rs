//! rkt-bench: rkt side by side with podman, crun, runc and the floors, in one run.
//!
//! Each group's commands are measured **interleaved** (A B C A B C …) after a warm-up, so that
//! machine noise hits every peer alike; we print median, min and max per command and the ratio
//! rkt/peer of the medians. Output: a markdown table on stdout and in `bench/results/<date>.md`.
//!
//! Env: `BENCH_QUICK=1` (fewer runs, skip the slow groups), `RUNS`, `WARMUP`,
//! `RKT_BIN_DIR` (default target/release), `BENCH_WORK` (default /tmp/rkt-bench).
//! Prerequisites: `make bench-deps` (peers) and `make release`.

use anyhow::{bail, Context, Result};
use rkt_tests::{images, registry};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Remove every podman image named `*/bench/large*` by id: the registry's port changes per
/// run, so removing by this run's name alone would only untag an image an earlier run left.
const PODMAN_RMI_LARGE: &str = "podman images --format '{{.ID}} {{.Repository}}' | awk '$2 ~ /bench\\/large/ {print $1}' | sort -u | xargs -r podman rmi -f >/dev/null 2>&1";

/// One command to time, with untimed set-up and clean-up shell snippets.
struct Case {
    name: String,
    setup: Option<String>,
    cmd: String,
    cleanup: Option<String>,
    /// true for rkt's own command: the others are compared against it.
    ours: bool,
}

impl Case {
    fn new(name: &str, cmd: impl Into<String>) -> Case {
        Case {
            name: name.into(),
            setup: None,
            cmd: cmd.into(),
            cleanup: None,
            ours: name.starts_with("rkt"),
        }
    }
    fn setup(mut self, s: impl Into<String>) -> Case {
        self.setup = Some(s.into());
        self
    }
    fn cleanup(mut self, s: impl Into<String>) -> Case {
        self.cleanup = Some(s.into());
        self
    }
}

struct Stats {
    median: f64,
    min: f64,
    max: f64,
    n: usize,
    error: Option<String>,
}

struct Bench {
    runs: usize,
    warmup: usize,
    out: String,
    work: PathBuf,
    bin: PathBuf,
}

fn sh(script: &str) -> Result<()> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            script.chars().take(120).collect::<String>(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    Ok(())
}

fn time_once(c: &Case) -> Result<f64> {
    if let Some(s) = &c.setup {
        sh(s)?;
    }
    let t0 = Instant::now();
    let r = sh(&c.cmd);
    let dt = t0.elapsed().as_secs_f64() * 1000.0;
    if let Some(s) = &c.cleanup {
        let _ = sh(s);
    }
    r.map(|_| dt)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl Bench {
    fn rkt(&self, data: &Path) -> String {
        format!(
            "{} --dir={} --local-config={w}/etc --system-config={w}/lib --insecure-options=image,http",
            self.bin.join("rkt").display(),
            data.display(),
            w = self.work.display()
        )
    }

    fn line(&mut self, s: &str) {
        println!("{s}");
        self.out.push_str(s);
        self.out.push('\n');
    }

    /// Measure cases interleaved and print a table section.
    /// Measure `cases` interleaved and print their table; returns each case's median (None
    /// when it failed).
    fn group(
        &mut self,
        title: &str,
        unit_note: &str,
        cases: Vec<Case>,
        runs: usize,
    ) -> Vec<Option<f64>> {
        let warmup = self.warmup;
        self.group_w(title, unit_note, cases, runs, warmup)
    }

    /// Like [`Bench::group`] with an explicit warm-up count (0 for one-shot commands such as
    /// `rkt gc`, whose warm-up would consume what the timed run measures).
    fn group_w(
        &mut self,
        title: &str,
        unit_note: &str,
        cases: Vec<Case>,
        runs: usize,
        warmup: usize,
    ) -> Vec<Option<f64>> {
        self.line(&format!("\n### {title}\n"));
        if !unit_note.is_empty() {
            self.line(&format!("{unit_note}\n"));
        }
        self.line("| command | median ms | min ms | max ms | runs | rkt / this |");
        self.line("|---|---:|---:|---:|---:|---:|");
        let mut samples: Vec<Vec<f64>> = vec![vec![]; cases.len()];
        let mut errors: Vec<Option<String>> = vec![None; cases.len()];
        for round in 0..(warmup + runs) {
            for (i, c) in cases.iter().enumerate() {
                if errors[i].is_some() {
                    continue;
                }
                match time_once(c) {
                    Ok(ms) if round >= warmup => samples[i].push(ms),
                    Ok(_) => {}
                    Err(e) => errors[i] = Some(e.to_string()),
                }
            }
        }
        let stats: Vec<Stats> = samples
            .iter_mut()
            .zip(errors)
            .map(|(s, error)| Stats {
                n: s.len(),
                min: s.iter().cloned().fold(f64::INFINITY, f64::min),
                max: s.iter().cloned().fold(0.0, f64::max),
                median: median(s),
                error,
            })
            .collect();
        let ours = cases
            .iter()
            .position(|c| c.ours)
            .and_then(|i| (stats[i].error.is_none()).then_some(stats[i].median));
        for (c, s) in cases.iter().zip(&stats) {
            if let Some(e) = &s.error {
                let e: String = e.replace('|', "/").chars().take(140).collect();
                self.line(&format!("| `{}` | n/a | | | 0 | error: {e} |", c.name));
                continue;
            }
            let ratio = match ours {
                Some(o) if !c.ours => format!("{:.2}", o / s.median),
                _ => "—".into(),
            };
            self.line(&format!(
                "| `{}` | {:.1} | {:.1} | {:.1} | {} | {} |",
                c.name, s.median, s.min, s.max, s.n, ratio
            ));
        }
        stats
            .iter()
            .map(|s| s.error.is_none().then_some(s.median))
            .collect()
    }

    fn single(&mut self, name: &str, value: String, note: &str) {
        self.line(&format!("| `{name}` | {value} | {note} |"));
    }
}

fn kib(pid: u32, field: &str) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn have(cmd: &str) -> bool {
    Command::new("bash")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `BENCH_GROUPS=1,3` runs only those groups (default: all).
fn want(group: u32) -> bool {
    match std::env::var("BENCH_GROUPS") {
        Ok(v) if !v.trim().is_empty() => v.split(',').any(|g| g.trim() == group.to_string()),
        _ => true,
    }
}

fn main() -> Result<()> {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 5 } else { 10 });
    let warmup: usize = std::env::var("WARMUP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let root = rkt_tests::workspace_root();
    let bin = std::env::var_os("RKT_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| rkt_tests::target_dir().join("release"));
    let work = std::env::var_os("BENCH_WORK")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/rkt-bench"));
    if bin.join("rkt").exists().then_some(()).is_none() {
        bail!(
            "{} missing: run `make release` first",
            bin.join("rkt").display()
        );
    }
    let _ = sh(&format!(
        "grep -o ' {w}[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l; rm -rf {w}",
        w = work.display()
    ));
    fs::create_dir_all(&work)?;
    let mut b = Bench {
        runs,
        warmup,
        out: String::new(),
        work: work.clone(),
        bin,
    };
    let uname = String::from_utf8_lossy(&Command::new("uname").arg("-r").output()?.stdout)
        .trim()
        .to_string();
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    b.line(&format!(
        "## rkt benchmark — {}\n\nkernel {uname}, {} cores, load {}, runs {runs} (+{warmup} warm-up), interleaved; `rkt / this` > 1 means rkt is slower.",
        chrono_now(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    ));

    // Images and registry.
    let oci = work.join("oci");
    let bb = images::build_busybox(&oci);
    let reg = registry::Registry::start(registry::RegistryOptions::default());
    let addr = reg.http_addr().to_string();
    images::push(&bb, &addr, "bench/busybox:latest");
    let rootfs = work.join("bundle/rootfs");
    fs::create_dir_all(&rootfs)?;
    images::unpack_plain(&bb, &rootfs);
    write_bundle(&work.join("bundle"), &["/bin/true"])?;
    let img = format!("docker://{addr}/bench/busybox:latest");
    let data = work.join("data");
    let rkt = b.rkt(&data);
    let _ = sh(&format!("{rkt} fetch {img} >/dev/null"));
    let ns = root.join("scripts/peers-ns.sh");
    let crun_ok = have("crun") && sh(&format!("{} setup", ns.display())).is_ok();
    let podman_ok = have("podman")
        && sh(&format!(
            "podman pull -q --tls-verify=false {addr}/bench/busybox:latest >/dev/null"
        ))
        .is_ok();

    // 1. warm start -> exit of /bin/true
    if want(1) {
        let mut cases = vec![Case::new(
            "rkt run --net=host",
            format!("{rkt} run --net=host {img} --exec=/bin/true"),
        )];
        if crun_ok {
            cases.push(
                Case::new(
                    "crun run",
                    format!(
                        "{} exec crun run -b {}/bundle bench-crun",
                        ns.display(),
                        work.display()
                    ),
                )
                .cleanup(format!(
                    "{} exec crun delete -f bench-crun 2>/dev/null; true",
                    ns.display()
                )),
            );
        }
        if crun_ok {
            // like for like: rkt applies Docker's default seccomp allow-list to every app, the
            // plain bundle has no filter; this one has exactly the filter rkt generated
            let probe = work.join("seccomp-probe");
            if let Ok(()) = seccomp_bundle(&b.rkt(&probe), &probe, &img, &work) {
                cases.push(
                    Case::new(
                        "crun run (rkt's seccomp filter)",
                        format!(
                            "{} exec crun run -b {}/bundle-seccomp bench-crun-s",
                            ns.display(),
                            work.display()
                        ),
                    )
                    .cleanup(format!(
                        "{} exec crun delete -f bench-crun-s 2>/dev/null; true",
                        ns.display()
                    )),
                );
            }
        }
        if have("runc") {
            cases.push(
                Case::new(
                    "runc run",
                    format!("runc run -b {}/bundle bench-runc", work.display()),
                )
                .cleanup("runc delete -f bench-runc 2>/dev/null; true"),
            );
        }
        if podman_ok {
            cases.push(Case::new(
                "podman run --rm --network none",
                format!(
                    "podman run --rm --network none --tls-verify=false {addr}/bench/busybox true"
                ),
            ));
        }
        cases.push(Case::new(
            "floor: unshare + chroot",
            format!(
                "unshare -m -p -f -n -u -i --mount-proc={r}/proc chroot {r} /bin/true",
                r = rootfs.display()
            ),
        ));
        b.group(
            "1. warm start → exit of /bin/true (image cached)",
            "targets: rkt ≤ 1.0× crun, ≤ 0.1× podman",
            cases,
            runs,
        );
        let _ = sh(&format!("{rkt} gc --grace-period=0s >/dev/null 2>&1"));
    }
    // 2. default network
    if want(2) {
        let mut cases = vec![
            Case::new(
                "rkt run (default net)",
                format!("{rkt} run {img} --exec=/bin/true"),
            ),
            Case::new(
                "rkt-host run --net=host (reference)",
                format!("{rkt} run --net=host {img} --exec=/bin/true"),
            ),
        ];
        cases[1].ours = false;
        if podman_ok {
            cases.push(Case::new(
                "podman run --rm (default net)",
                format!("podman run --rm --tls-verify=false {addr}/bench/busybox true"),
            ));
            cases.push(Case::new(
                "podman run --rm --network none (reference)",
                format!(
                    "podman run --rm --network none --tls-verify=false {addr}/bench/busybox true"
                ),
            ));
        }
        let medians = b.group(
            "2. warm start with the default network",
            "target: the default network (CNI ptp + host-local, masquerade) adds ≤ 30 ms over --net=host",
            cases,
            runs,
        );
        let added = |a: usize, r: usize| match (medians.get(a), medians.get(r)) {
            (Some(Some(x)), Some(Some(y))) => format!("{:+.1} ms", x - y),
            _ => "n/a".into(),
        };
        b.line(&format!(
            "\nadded by the default network: rkt {}, podman {}",
            added(0, 1),
            added(2, 3)
        ));
        let _ = sh(&format!("{rkt} gc --grace-period=0s >/dev/null 2>&1"));
    }
    if !quick && (want(3) || want(4) || want(5)) {
        pull_groups(&mut b, &oci, &reg)?;
    }
    if want(6) {
        memory_group(&mut b, &rkt, &img, &rootfs, podman_ok, &addr)?;
    }
    if !quick && want(7) {
        many_pods_group(&mut b, &rkt, &img, crun_ok, podman_ok, &addr, &ns)?;
    }
    if !quick && want(8) {
        thousand_pods_group(&mut b, &img)?;
    }
    if !quick && want(9) {
        private_users_group(&mut b, &rkt, &reg)?;
    }
    if !quick && want(10) {
        cri_group(&mut b, &root, &addr)?;
    }

    // Clean up podman/crun leftovers.
    if podman_ok {
        let _ = sh("podman rm -af -t 0 >/dev/null 2>&1; true");
        let _ = sh(&format!("{PODMAN_RMI_LARGE}; true"));
    }
    let _ = sh(&format!("{rkt} gc --grace-period=0s >/dev/null 2>&1"));
    drop(reg);
    let _ = sh(&format!(
        "grep -o ' {w}[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l; rm -rf {w}",
        w = work.display()
    ));

    let dir = root.join("bench/results");
    fs::create_dir_all(&dir)?;
    let file = dir.join(format!("{}.md", chrono_now().replace(':', "")));
    fs::write(&file, &b.out)?;
    eprintln!("results: {}", file.display());
    Ok(())
}

/// Group 9, `--private-users`: start and prepare with and without a user namespace
/// (idmapped layers), large image vs busybox as in group 5. The pool is a config range of the
/// bench's own.
fn private_users_group(b: &mut Bench, rkt: &str, reg: &registry::Registry) -> Result<()> {
    let addr = reg.http_addr().to_string();
    let w = b.work.display().to_string();
    let big = b.work.join("oci-large");
    if !big.exists() {
        eprintln!("building the large image (~200 MB gzip, 5 layers)…");
        let (large, _) = images::build_large(&big);
        images::push(&large, &addr, "bench/large:latest");
    }
    fs::create_dir_all(b.work.join("etc/userns.d"))?;
    fs::write(
        b.work.join("etc/userns.d/bench.json"),
        r#"{"rktKind":"userns","rktVersion":"v1","ranges":["2000000000:655360000"]}"#,
    )?;
    let (bb, large) = (
        format!("docker://{addr}/bench/busybox:latest"),
        format!("docker://{addr}/bench/large:latest"),
    );
    sh(&format!("{rkt} fetch {bb} {large} >/dev/null"))?;
    let cases = vec![
        Case::new(
            "rkt run --private-users --net=none",
            format!("{rkt} run --private-users --net=none {bb} --exec=/bin/true"),
        ),
        Case::new(
            "without: rkt run --net=none",
            format!("{rkt} run --net=none {bb} --exec=/bin/true"),
        ),
    ];
    b.group(
        "9a. start → exit of /bin/true with and without --private-users",
        "the ratio column: with / without (a user namespace, its maps, idmapped layers)",
        cases,
        b.runs,
    );
    let _ = sh(&format!("{rkt} gc --grace-period=0s >/dev/null 2>&1"));
    let prep = |name: &str, flags: &str, image: &str, f: &str| {
        Case::new(
            name,
            format!("{rkt} prepare --quiet {flags} {image} > {w}/uuid-{f}"),
        )
        .cleanup(format!("{rkt} rm $(cat {w}/uuid-{f}) >/dev/null 2>&1"))
    };
    let cases = vec![
        prep(
            "rkt prepare --private-users busybox",
            "--private-users",
            &bb,
            "pb",
        ),
        prep(
            "large: prepare --private-users (ratio = busybox/large)",
            "--private-users",
            &large,
            "pl",
        ),
        prep("without: prepare busybox", "", &bb, "b"),
        prep("without: prepare large", "", &large, "l"),
    ];
    b.group(
        "9b. prepare with --private-users: large image vs busybox (idmapped layers, nothing copied)",
        "target: large / busybox ≤ 1.1 with private users, as without (the ratio column shows busybox-with / this)",
        cases,
        b.runs,
    );
    Ok(())
}

fn pull_groups(b: &mut Bench, _oci: &Path, reg: &registry::Registry) -> Result<()> {
    let addr = reg.http_addr().to_string();
    let big = b.work.join("oci-large");
    eprintln!("building the large image (~200 MB gzip, 5 layers)…");
    let (large, shared) = images::build_large(&big);
    images::push(&large, &addr, "bench/large:latest");
    images::push(&shared, &addr, "bench/large-shared:latest");
    let blobs: Vec<String> = large
        .layers
        .iter()
        .map(|l| large.blob_path(&l.digest).display().to_string())
        .collect();
    let digests: Vec<String> = large.layers.iter().map(|l| l.digest.clone()).collect();
    let total: u64 = large.layers.iter().map(|l| l.size).sum();
    let pull_data = b.work.join("pull-data");
    let rkt = b.rkt(&pull_data);
    let w = b.work.display().to_string();
    // the same image signed (skopeo's simple signing), fetched with the signature checked
    // against a trusted key instead of --insecure-options=image: what verification costs
    let gpg = rkt_tests::signing::Gpg::new("rkt bench <bench@rkt.invalid>");
    let sigs = b.work.join("sigs");
    rkt_tests::signing::skopeo_sign_push(&large, &addr, "bench/large-signed:latest", &gpg, &sigs);
    let signed_etc = b.work.join("etc-signed");
    fs::create_dir_all(signed_etc.join("registries.d"))?;
    fs::write(
        signed_etc.join("registries.d/sigs.toml"),
        format!(
            "[docker.\"{addr}\"]\nlookaside = \"file://{}\"\n",
            sigs.display()
        ),
    )?;
    gpg.export_public(&b.work.join("signer.asc"));
    let signed_rkt = format!(
        "{} --dir={} --local-config={} --system-config={w}/lib --insecure-options=http",
        b.bin.join("rkt").display(),
        pull_data.display(),
        signed_etc.display(),
    );
    sh(&format!(
        "{signed_rkt} trust --prefix={addr}/bench/large-signed --skip-fingerprint-review {w}/signer.asc >/dev/null"
    ))?;
    let mut cases = vec![
        Case::new(
            "rkt fetch (empty store)",
            format!("{rkt} fetch docker://{addr}/bench/large:latest >/dev/null"),
        )
        .setup(format!("rm -rf {}; sync", pull_data.display())),
        // whichever of these two runs second measures 10–30 % slower, also with a pause after
        // the removal (bench/results/2026-12-06T181731Z-trust-swapped.md, …T182005Z-trust-pause.md): group 3b isolates what
        // verification costs
        Case::new(
            "rkt fetch, signature verified (empty store)",
            format!("{signed_rkt} fetch docker://{addr}/bench/large-signed:latest >/dev/null"),
        )
        .setup(format!("rm -rf {}; sync", pull_data.display())),
    ];
    if have("podman") {
        cases.push(
            Case::new(
                "podman pull",
                format!("podman pull -q --tls-verify=false {addr}/bench/large:latest >/dev/null"),
            )
            .setup(format!("{PODMAN_RMI_LARGE}; sync")),
        );
    }
    cases.push(
        Case::new(
            "skopeo copy to oci dir",
            format!("skopeo copy -q --src-tls-verify=false docker://{addr}/bench/large:latest oci:{w}/skopeo-oci:large"),
        )
        .setup(format!("rm -rf {w}/skopeo-oci; sync")),
    );
    cases.push(Case::new(
        "floor: download only (curl)",
        format!(
            "for d in {}; do curl -fsS -o /dev/null http://{addr}/v2/bench/large/blobs/$d; done",
            digests.join(" ")
        ),
    ));
    cases.push(Case::new(
        "floor: gzip -dc of the blobs",
        format!(
            "for f in {}; do gzip -dc $f; done >/dev/null",
            blobs.join(" ")
        ),
    ));
    b.group(
        &format!(
            "3. pull of the large image into an empty store ({} MB compressed, 5 layers)",
            total / 1_000_000
        ),
        "targets: rkt ≤ 1.2× `gzip -dc`, ≥ 4× faster than podman pull; verified ≈ unverified",
        cases,
        b.runs.min(9),
    );
    // what verification adds, without the layers' noise: both images already stored, so a
    // fetch asks for the manifest (and the signature) and stores nothing new
    let _ = sh(&format!(
        "rm -rf {d}; {rkt} fetch docker://{addr}/bench/large:latest >/dev/null; \
         {signed_rkt} fetch docker://{addr}/bench/large-signed:latest >/dev/null",
        d = pull_data.display()
    ));
    let cases = vec![
        Case::new(
            "rkt fetch, stored (update policy)",
            format!("{rkt} fetch docker://{addr}/bench/large:latest >/dev/null"),
        ),
        Case::new(
            "rkt fetch, stored (update policy), signature verified",
            format!("{signed_rkt} fetch docker://{addr}/bench/large-signed:latest >/dev/null"),
        ),
    ];
    b.group(
        "3b. fetch of a stored image: manifest, signature policy, nothing new stored",
        "the difference is what checking a simple-signing signature costs",
        cases,
        b.runs,
    );
    let cases = vec![Case::new(
        "rkt fetch (4 of 5 layers present)",
        format!("{rkt} fetch docker://{addr}/bench/large-shared:latest >/dev/null"),
    )
    .setup(format!(
        "rm -rf {d}; {rkt} fetch docker://{addr}/bench/large:latest >/dev/null; sync",
        d = pull_data.display()
    ))];
    b.group_w(
        "4. incremental pull (image sharing 4 of 5 layers)",
        "",
        cases,
        3,
        1,
    );

    // 5. prepare time: large vs busybox
    let _ = sh(&format!(
        "{rkt} fetch docker://{addr}/bench/large:latest docker://{addr}/bench/busybox:latest >/dev/null"
    ));
    let cases = vec![
        Case::new(
            "rkt prepare busybox",
            format!("{rkt} prepare --quiet docker://{addr}/bench/busybox:latest > {w}/uuid-bb"),
        )
        .cleanup(format!("{rkt} rm $(cat {w}/uuid-bb) >/dev/null 2>&1")),
        Case::new(
            "rkt-large prepare large (ratio = busybox/large)",
            format!("{rkt} prepare --quiet docker://{addr}/bench/large:latest > {w}/uuid-l"),
        )
        .cleanup(format!("{rkt} rm $(cat {w}/uuid-l) >/dev/null 2>&1")),
    ];
    b.group(
        "5. prepare time: large image vs busybox (overlay, nothing copied)",
        "target: large / busybox ≤ 1.1 (the ratio column shows busybox / large)",
        cases,
        b.runs,
    );
    let _ = sh(&format!("rm -rf {}", pull_data.display()));
    Ok(())
}

fn memory_group(
    b: &mut Bench,
    rkt: &str,
    img: &str,
    rootfs: &Path,
    podman_ok: bool,
    addr: &str,
) -> Result<()> {
    b.line("\n### 6. resident memory of the per-pod supervisor while `sleep` runs\n");
    b.line("target: rkt's `rkt run` PID ≤ 1 MiB (conmon 2.0 MiB)\n");
    b.line("| supervisor | VmRSS KiB | note |");
    b.line("|---|---:|---|");
    // rkt: the `rkt run` process is the pod's supervisor.
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "exec {rkt} run --net=host {img} --exec=/bin/sleep -- 1000"
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    // stage1 hands a pod that runs for a second to rkt-monitor (same PID)
    let pid = child.id();
    let exe = || fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let t = Instant::now();
    while !exe().ends_with("rkt-monitor") && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let what = exe();
    let what = what.file_name().unwrap_or_default().to_string_lossy();
    match kib(pid, "VmRSS:") {
        Some(k) => b.single(
            &format!("rkt run ({what})"),
            k.to_string(),
            &format!("pid {pid}"),
        ),
        None => b.single("rkt run", "n/a".into(), "process gone"),
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    if podman_ok {
        let out = Command::new("podman")
            .args(["run", "-d", "--network", "none", "--tls-verify=false"])
            .arg(format!("{addr}/bench/busybox"))
            .args(["sleep", "1000"])
            .output()?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        std::thread::sleep(Duration::from_millis(1000));
        let cp = Command::new("podman")
            .args(["inspect", "--format", "{{.State.ConmonPid}}", &id])
            .output()?;
        let cp: u32 = String::from_utf8_lossy(&cp.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        b.single(
            "podman: conmon",
            kib(cp, "VmRSS:")
                .map(|k| k.to_string())
                .unwrap_or("n/a".into()),
            &format!("pid {cp}"),
        );
        let _ = sh(&format!("podman rm -f -t 0 {id} >/dev/null"));
    }
    if have("systemd-nspawn") {
        let mut n = Command::new("systemd-nspawn")
            .arg("-D")
            .arg(rootfs)
            .args(["--register=no", "--keep-unit", "-q", "/bin/sleep", "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        std::thread::sleep(Duration::from_millis(1000));
        b.single(
            "systemd-nspawn",
            kib(n.id(), "VmRSS:")
                .map(|k| k.to_string())
                .unwrap_or("n/a".into()),
            &format!("pid {}", n.id()),
        );
        // SIGTERM: nspawn then SIGKILLs its payload (its default --kill-signal without --boot);
        // a SIGKILLed nspawn would leave `sleep 1000` running as an orphan
        let _ = sh(&format!("kill -TERM {}", n.id()));
        let _ = n.wait();
    }
    let _ = sh(&format!("{rkt} gc --grace-period=0s >/dev/null 2>&1"));
    Ok(())
}

/// A shell command that starts `cmd` `n` times at once (`$i` numbers them) and fails unless
/// every one of them succeeded, so that a peer failing fast is not timed as a fast peer.
fn all_at_once(n: usize, cmd: &str) -> String {
    format!(
        "pids=; for i in $(seq {n}); do {cmd} >/dev/null & pids=\"$pids $!\"; done; \
         rc=0; for p in $pids; do wait $p || rc=1; done; exit $rc"
    )
}

fn many_pods_group(
    b: &mut Bench,
    rkt: &str,
    img: &str,
    crun_ok: bool,
    podman_ok: bool,
    addr: &str,
    ns: &Path,
) -> Result<()> {
    const N: usize = 50;
    let w = b.work.display().to_string();
    let mut cases = vec![Case::new(
        "rkt run ×50 at once",
        all_at_once(N, &format!("{rkt} run --net=host {img} --exec=/bin/true")),
    )
    .cleanup(format!("{rkt} gc --grace-period=0s >/dev/null 2>&1"))];
    if crun_ok {
        cases.push(
            Case::new(
                "crun run -d ×50 at once",
                all_at_once(N, &format!("{ns} exec crun run -d -b {w}/bundle b50-$i", ns = ns.display())),
            )
            .cleanup(format!("sleep 0.3; for i in $(seq {N}); do {ns} exec crun delete -f b50-$i 2>/dev/null; done; true", ns = ns.display())),
        );
    }
    if podman_ok {
        cases.push(
            Case::new(
                "podman run -d ×50 at once",
                all_at_once(
                    N,
                    &format!(
                        "podman run -d --network none --tls-verify=false {addr}/bench/busybox true"
                    ),
                ),
            )
            .cleanup("podman rm -af -t 0 >/dev/null 2>&1; true"),
        );
    }
    b.group(
        "7. 50 pods started at once (each runs /bin/true)",
        "target: rkt ≤ 2× crun",
        cases,
        3,
    );
    Ok(())
}

fn thousand_pods_group(b: &mut Bench, img: &str) -> Result<()> {
    let data = b.work.join("data-1000");
    let rkt = b.rkt(&data);
    eprintln!("running 1,000 pods for the list/gc benchmark…");
    sh(&format!(
        "for i in $(seq 500); do {rkt} run --net=host {img} --exec=/bin/true >/dev/null & {rkt} run --net=host {img} --exec=/bin/true >/dev/null; wait; done"
    ))
    .context("running 1,000 pods")?;
    let count = |rkt: &str| -> usize {
        Command::new("bash")
            .arg("-c")
            .arg(format!("{rkt} list --format=json"))
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .and_then(|v| v.as_array().map(Vec::len))
            .unwrap_or(0)
    };
    let before = count(&rkt);
    let cases = vec![Case::new("rkt list", format!("{rkt} list >/dev/null"))];
    b.group(
        &format!("8a. rkt list with {before} exited pods"),
        "",
        cases,
        b.runs,
    );
    let cases = vec![Case::new(
        "rkt gc",
        format!("{rkt} gc --grace-period=0s >/dev/null"),
    )];
    b.group_w(
        &format!("8b. rkt gc of {before} exited pods (one run, no warm-up)"),
        "",
        cases,
        1,
        0,
    );
    let after = count(&rkt);
    b.line(&format!(
        "\npods listed before gc: {before}; after: {after}"
    ));
    Ok(())
}

/// Group 10, the CRI side by side with containerd 1.6 + runc (`scripts/bench-cri.sh` starts
/// both on scratch dirs): `crictl runp` + `create` + `start` of a busybox `sleep` pod, then
/// `stopp` + `rmp`, and memory: each server idle, then with 10 such pods running, the server
/// plus every per-pod process that is not the app (rkt: the pod's stage1 and its PID 1;
/// containerd: each `containerd-shim-runc-v2` and its pause container).
fn cri_group(b: &mut Bench, root: &Path, reg: &str) -> Result<()> {
    let w = b.work.join("cri");
    let script = root.join("scripts/bench-cri.sh");
    let env = [("RKT_BIN_DIR", b.bin.display().to_string())];
    let run = |args: &[&str]| {
        Command::new(&script)
            .args(args)
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .status()
    };
    if !have("containerd") {
        b.line("\n### 10. CRI\n\ncontainerd missing (`make bench-deps`): n/a");
        return Ok(());
    }
    let wd = w.display().to_string();
    if !run(&["up", &wd, reg])?.success() {
        let _ = run(&["down", &wd]);
        b.line("\n### 10. CRI\n\nthe CRI servers did not start: n/a");
        return Ok(());
    }
    let env_file = fs::read_to_string(w.join("env"))?;
    let var = |k: &str| {
        env_file
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or("")
            .to_string()
    };
    let crictl = var("CRICTL");
    let socks = [
        ("rkt-cri", var("RKT_SOCK"), "rkt"),
        ("containerd 1.6 + runc", var("CTD_SOCK"), "containerd"),
    ];
    let c = |sock: &str| format!("{crictl} -r unix://{sock} -i unix://{sock}");
    let idle: Vec<u64> = [var("RKT_PID"), var("CTD_PID")]
        .iter()
        .map(|p| p.parse().ok().and_then(|p| kib(p, "VmRSS:")).unwrap_or(0))
        .collect();
    let mut cases = Vec::new();
    for (name, sock, k) in &socks {
        let cr = c(sock);
        cases.push(
            Case::new(
                &format!("{name}: crictl runp + create + start"),
                format!(
                    "P=$({cr} runp {wd}/{k}/pod.json) && C=$({cr} create $P {wd}/{k}/ctr.json {wd}/{k}/pod.json) && {cr} start $C >/dev/null && echo $P > {wd}/{k}/last"
                ),
            )
            .cleanup(format!(
                "P=$(cat {wd}/{k}/last); {cr} stopp $P >/dev/null 2>&1; {cr} rmp $P >/dev/null 2>&1; true"
            )),
        );
    }
    b.group(
        "10a. CRI: a busybox `sleep` pod through crictl (runp + create + start)",
        "target: rkt-cri ≤ 0.25× containerd",
        cases,
        b.runs,
    );
    let mut cases = Vec::new();
    for (name, sock, k) in &socks {
        let cr = c(sock);
        cases.push(
            Case::new(
                &format!("{name}: crictl stopp + rmp"),
                format!("P=$(cat {wd}/{k}/last) && {cr} stopp $P >/dev/null && {cr} rmp $P >/dev/null"),
            )
            .setup(format!(
                "P=$({cr} runp {wd}/{k}/pod.json) && C=$({cr} create $P {wd}/{k}/ctr.json {wd}/{k}/pod.json) && {cr} start $C >/dev/null && echo $P > {wd}/{k}/last"
            )),
        );
    }
    b.group(
        "10b. CRI: stopping and removing that pod",
        "",
        cases,
        b.runs,
    );

    // memory with 10 pods running
    const PODS: usize = 10;
    for (_, sock, k) in &socks {
        let cr = c(sock);
        for i in 0..PODS {
            let pod = fs::read_to_string(w.join(k).join("pod.json"))?
                .replace("\"name\":\"bench\"", &format!("\"name\":\"mem{i}\""));
            fs::write(w.join(k).join(format!("pod{i}.json")), pod)?;
            sh(&format!(
                "P=$({cr} runp {wd}/{k}/pod{i}.json) && C=$({cr} create $P {wd}/{k}/ctr.json {wd}/{k}/pod{i}.json) && {cr} start $C >/dev/null"
            ))?;
        }
    }
    // stage1 drops its set-up code from memory once the pod has been quiet for a second
    std::thread::sleep(Duration::from_secs(3));
    let rss = |pids: &[u32]| -> u64 { pids.iter().filter_map(|p| kib(*p, "VmRSS:")).sum() };
    let pids_of = |script: &str| -> Vec<u32> {
        Command::new("bash")
            .arg("-c")
            .arg(script)
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let data = var("RKT_DATA");
    let rkt_pods = pids_of(&format!(
        "cat {data}/pods/run/*/pid {data}/pods/run/*/sandbox-pid"
    ));
    let shims = pids_of("pgrep -f containerd-shim-runc-v2");
    // each shim's children that are not the app: the pause process of its sandbox
    let pauses =
        pids_of("for s in $(pgrep -f containerd-shim-runc-v2); do pgrep -P $s -x pause; done");
    let server = |i: usize| -> u64 {
        [var("RKT_PID"), var("CTD_PID")][i]
            .parse()
            .ok()
            .and_then(|p| kib(p, "VmRSS:"))
            .unwrap_or(0)
    };
    let (rkt_total, ctd_total) = (
        server(0) + rss(&rkt_pods),
        server(1) + rss(&shims) + rss(&pauses),
    );
    b.line("\n### 10c. CRI: memory (RSS, KiB)\n");
    b.line(
        "targets: rkt-cri + all per-pod processes ≤ 1 MiB per pod; idle server ≤ 0.5× containerd\n",
    );
    b.line("| | rkt-cri | containerd 1.6 + runc | rkt / containerd |");
    b.line("|---|---:|---:|---:|");
    let ratio = |a: u64, b: u64| {
        if b > 0 {
            format!("{:.2}", a as f64 / b as f64)
        } else {
            "n/a".into()
        }
    };
    b.line(&format!(
        "| idle server | {} | {} | {} |",
        idle[0],
        idle[1],
        ratio(idle[0], idle[1])
    ));
    b.line(&format!(
        "| server with {PODS} pods | {} | {} | {} |",
        server(0),
        server(1),
        ratio(server(0), server(1))
    ));
    b.line(&format!(
        "| per-pod processes, all {PODS} pods ({} rkt: stage1 + PID 1; {} containerd: shim + pause) | {} | {} | {} |",
        rkt_pods.len(),
        shims.len() + pauses.len(),
        rss(&rkt_pods),
        rss(&shims) + rss(&pauses),
        ratio(rss(&rkt_pods), rss(&shims) + rss(&pauses))
    ));
    b.line(&format!(
        "| server + per-pod processes, per pod | {} | {} | {} |",
        rkt_total / PODS as u64,
        ctd_total / PODS as u64,
        ratio(rkt_total, ctd_total)
    ));
    let _ = run(&["down", &wd]);
    Ok(())
}

/// `work/bundle-seccomp`: the crun bundle plus the `linux.seccomp` object stage1 generated for a
/// default app (read from the bundle of a pod that just ran). crun builds and loads it in the
/// container's init, as libcontainer would; rkt builds it ahead, beside the container's set-up.
fn seccomp_bundle(rkt: &str, data: &Path, img: &str, work: &Path) -> Result<()> {
    sh(&format!(
        "{rkt} fetch {img} >/dev/null 2>&1; {rkt} run --net=host {img} --exec=/bin/true"
    ))?;
    let found = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ls {}/pods/*/*/apps/*/bundle/config.json | head -1",
            data.display()
        ))
        .output()?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    let app: serde_json::Value = serde_json::from_slice(&fs::read(&path)?)?;
    // stage1 records the filter it loads itself in an annotation (stage1/src/security/seccomp.rs)
    let seccomp = match app["annotations"]["io.rkt.stage1.seccomp"].as_str() {
        Some(j) => serde_json::from_str(j)?,
        None => app["linux"]["seccomp"].clone(),
    };
    if seccomp.is_null() {
        bail!("{path}: no seccomp filter");
    }
    let dir = work.join("bundle-seccomp");
    fs::create_dir_all(&dir)?;
    write_bundle(&dir, &["/bin/true"])?;
    let mut cfg: serde_json::Value = serde_json::from_slice(&fs::read(dir.join("config.json"))?)?;
    cfg["root"]["path"] = serde_json::json!(work.join("bundle/rootfs"));
    cfg["linux"]["seccomp"] = seccomp;
    fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&cfg)?)?;
    let _ = sh(&format!(
        "{rkt} gc --grace-period=0s >/dev/null 2>&1; rm -rf {d}",
        d = data.display()
    ));
    Ok(())
}

/// A minimal OCI runtime bundle config for crun/runc over `rootfs`.
fn write_bundle(dir: &Path, args: &[&str]) -> Result<()> {
    let cfg = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": args,
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "cwd": "/",
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
            "noNewPrivileges": true},
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "bench",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}
        ],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
                  "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]}
    });
    fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&cfg)?)?;
    Ok(())
}

fn chrono_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut s = String::new();
    let _ = write!(s, "{out}");
    s
}
