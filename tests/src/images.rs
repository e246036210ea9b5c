//! Test images, built locally and reproducibly (no network): see [`busybox`], [`whiteout`],
//! [`large`]. Pushed to a registry with skopeo ([`push`]), an external writer, so rkt's pull is
//! never tested only against our own writer.

use crate::tarball::{tar_bytes, write_image, Entry, ImageSpec, OciImage};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where the verifier sits inside test images.
pub const VERIFIER_IN_IMAGE: &str = "/usr/bin/rkt-verifier";

/// Path of the static busybox the images are made from (Debian's busybox-static).
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// Per-process scratch dir for what a test binary keeps for its whole run (built images, the
/// shared registry's storage): statics are never dropped, so the dirs of test processes that
/// are gone are removed here, by the next test process.
pub fn scratch() -> &'static Path {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let base = crate::target_dir().join("rkt-test-images");
        fs::create_dir_all(&base).expect("create image scratch");
        if let Ok(rd) = fs::read_dir(&base) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("run-") {
                    if !Path::new(&format!("/proc/{pid}")).exists() {
                        let _ = fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let d = base.join(format!("run-{}", std::process::id()));
        fs::create_dir_all(&d).expect("create image scratch");
        d
    })
}

/// Entries of the busybox base layer: FHS dirs, busybox with its applet links, passwd/group,
/// and the in-pod verifier.
pub fn busybox_entries() -> Vec<Entry> {
    let bb = fs::read(HOST_BUSYBOX)
        .unwrap_or_else(|e| panic!("{HOST_BUSYBOX}: {e} (apt-get install busybox-static)"));
    let verifier = fs::read(crate::verifier_path()).expect("read verifier");
    let mut e = vec![];
    for d in [
        "bin", "dev", "etc", "home", "proc", "sbin", "sys", "usr", "usr/bin", "usr/sbin", "var",
        "var/log", "run",
    ] {
        e.push(Entry::dir(d));
    }
    e.push(Entry::dir("root").mode(0o700));
    e.push(Entry::dir("tmp").mode(0o1777));
    e.push(Entry::file("bin/busybox", bb).mode(0o755));
    for a in applets() {
        let path = format!("bin/{a}");
        if a != "busybox" {
            e.push(Entry::symlink(&path, "busybox"));
        }
    }
    e.push(Entry::file(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    ));
    e.push(Entry::file(
        "etc/group",
        "root:x:0:\nuser:x:1000:\nstaff:x:50:user\nnogroup:x:65534:\n",
    ));
    e.push(Entry::file("etc/nsswitch.conf", "hosts: files dns\n"));
    e.push(Entry::file(VERIFIER_IN_IMAGE.trim_start_matches('/'), verifier).mode(0o755));
    e.sort_by(|a, b| a.path.cmp(&b.path));
    e
}

/// busybox's applets, sorted (from `busybox --list`).
fn applets() -> BTreeSet<String> {
    let out = Command::new(HOST_BUSYBOX)
        .arg("--list")
        .output()
        .expect("busybox --list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty() && !l.contains('/'))
        .map(str::to_string)
        .collect()
}

/// Build the busybox image (one layer) into the OCI layout `layout` under tag `busybox`.
pub fn build_busybox(layout: &Path) -> OciImage {
    write_image(
        layout,
        "busybox",
        &[tar_bytes(&busybox_entries())],
        &ImageSpec::default(),
    )
}

/// The layers of the multi-layer image (above busybox): whiteouts of a file, of a directory and
/// an opaque directory, plus a hardlink, a symlink, a setuid file and an xattr.
pub fn whiteout_layers() -> Vec<Vec<u8>> {
    let base = vec![
        Entry::dir("data"),
        Entry::file("data/delete-me", "delete-me\n"),
        Entry::dir("data/gone-dir"),
        Entry::file("data/gone-dir/x", "x\n"),
        Entry::file("data/keep", "keep\n").xattr("user.rkt-test", b"kept"),
        Entry::hardlink("data/keep-hardlink", "data/keep"),
        Entry::symlink("data/keep-symlink", "keep"),
        Entry::file("data/setuid", "#!/bin/sh\n").mode(0o4755),
        Entry::file("data/owned", "owned by 1000\n").owner(1000, 1000),
        Entry::dir("opaque"),
        Entry::file("opaque/a", "a\n"),
        Entry::file("opaque/b", "b\n"),
        Entry::dir("opaque/sub"),
        Entry::file("opaque/sub/c", "c\n"),
    ];
    let upper = vec![
        Entry::dir("data"),
        Entry::file("data/.wh.delete-me", ""),
        Entry::dir("opaque"),
        Entry::file("opaque/.wh..wh..opq", ""),
        Entry::file("opaque/new", "new\n"),
    ];
    let top = vec![
        Entry::dir("data"),
        Entry::file("data/.wh.gone-dir", ""),
        Entry::file("data/added", "added\n"),
    ];
    vec![tar_bytes(&base), tar_bytes(&upper), tar_bytes(&top)]
}

/// Build the whiteout image (busybox + 3 layers) into `layout` under tag `whiteout`.
/// Rendered, `/data` holds `added keep keep-hardlink keep-symlink owned setuid` and `/opaque`
/// only `new`.
pub fn build_whiteout(layout: &Path) -> OciImage {
    let mut layers = vec![tar_bytes(&busybox_entries())];
    layers.extend(whiteout_layers());
    write_image(layout, "whiteout", &layers, &ImageSpec::default())
}

/// The busybox image, built once per process.
pub fn busybox() -> &'static OciImage {
    static I: OnceLock<OciImage> = OnceLock::new();
    I.get_or_init(|| build_busybox(&scratch().join("oci")))
}

/// The whiteout image, built once per process (same layout as [`busybox`]).
pub fn whiteout() -> &'static OciImage {
    static I: OnceLock<OciImage> = OnceLock::new();
    I.get_or_init(|| {
        busybox();
        build_whiteout(&scratch().join("oci"))
    })
}

/// Build busybox (the same layer) exposing `80/tcp` — the pod manifest's port `80-tcp`, for
/// `--port` — into `layout` under tag `busybox-ports`.
pub fn build_busybox_with_ports(layout: &Path) -> OciImage {
    write_image(
        layout,
        "busybox-ports",
        &[tar_bytes(&busybox_entries())],
        &ImageSpec {
            exposed_ports: vec!["80/tcp".into()],
            ..ImageSpec::default()
        },
    )
}

/// [`build_busybox_with_ports`], built once per process (same layout as [`busybox`]).
pub fn busybox_with_ports() -> &'static OciImage {
    static I: OnceLock<OciImage> = OnceLock::new();
    I.get_or_init(|| {
        busybox();
        build_busybox_with_ports(&scratch().join("oci"))
    })
}

/// Deterministic pseudo-random bytes (splitmix64), for incompressible layer content.
pub fn prng_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The large image's first three layers above busybox, like shared/peers/make-images.sh: a
/// 128 MiB random blob, 1536 x 32 KiB random files, 64 MiB of compressible text.
pub fn large_common_layers() -> Vec<Vec<u8>> {
    let blob = vec![
        Entry::dir("opt"),
        Entry::dir("opt/blob"),
        Entry::file("opt/blob/blob.bin", prng_bytes(1, 128 << 20)),
    ];
    let mut small = vec![Entry::dir("opt"), Entry::dir("opt/small")];
    for i in 0..1536 {
        if i % 100 == 0 {
            small.push(Entry::dir(&format!("opt/small/d{:02}", i / 100)));
        }
        small.push(Entry::file(
            &format!("opt/small/d{:02}/f{i}.bin", i / 100),
            prng_bytes(1000 + i, 32 << 10),
        ));
    }
    small.sort_by(|a, b| a.path.cmp(&b.path));
    let mut text = vec![
        Entry::dir("var"),
        Entry::dir("var/log"),
        Entry::dir("var/log/synthetic"),
    ];
    for i in 0..8 {
        let mut s = String::with_capacity(8 << 20);
        let mut n = 1u64;
        while s.len() < 8 << 20 {
            s.push_str(&format!(
                "{n:012} INFO component=rkt-bench msg=\"synthetic log line for compression\" shard={i}\n"
            ));
            n += 1;
        }
        s.truncate(8 << 20);
        text.push(Entry::file(&format!("var/log/synthetic/log{i}.txt"), s));
    }
    vec![tar_bytes(&blob), tar_bytes(&small), tar_bytes(&text)]
}

/// The large image's top layer: 2000 x 16 KiB text files. `variant` changes its content, so two
/// variants share the 4 layers below it (the incremental-pull benchmark).
pub fn large_top_layer(variant: u32) -> Vec<u8> {
    let mut tree = vec![
        Entry::dir("usr"),
        Entry::dir("usr/share"),
        Entry::dir("usr/share/synthetic"),
    ];
    for i in 0..2000u32 {
        if i % 50 == 0 {
            tree.push(Entry::dir(&format!("usr/share/synthetic/pkg{}", i / 50)));
        }
        let mut s = String::with_capacity(16 << 10);
        let mut n = 1;
        while s.len() < 16 << 10 {
            s.push_str(&format!(
                "{n:08}  /usr/share/doc/file{i} line text content v{variant}\n"
            ));
            n += 1;
        }
        s.truncate(16 << 10);
        tree.push(Entry::file(
            &format!("usr/share/synthetic/pkg{}/file{i}.txt", i / 50),
            s,
        ));
    }
    tree.sort_by(|a, b| a.path.cmp(&b.path));
    tar_bytes(&tree)
}

/// Build `large` (5 layers, ~290 MB raw) and `large-shared` (the same 4 lower layers, another
/// top layer) into `layout`. Slow (tens of seconds): for benchmarks, built only on demand.
pub fn build_large(layout: &Path) -> (OciImage, OciImage) {
    let mut layers = vec![tar_bytes(&busybox_entries())];
    layers.extend(large_common_layers());
    layers.push(large_top_layer(0));
    let large = write_image(layout, "large", &layers, &ImageSpec::default());
    layers.pop();
    layers.push(large_top_layer(1));
    let shared = write_image(layout, "large-shared", &layers, &ImageSpec::default());
    (large, shared)
}

/// `skopeo copy` an image to `docker://ADDR/REPO:TAG` (TLS verification off: the test registry
/// is plain HTTP or uses the per-run CA). `creds` = `user:password` for an auth registry.
pub fn push_with(image: &OciImage, addr: &str, repo_tag: &str, creds: Option<&str>) {
    let mut c = Command::new("skopeo");
    c.args(["copy", "-q", "--dest-tls-verify=false"]);
    if let Some(cr) = creds {
        c.arg(format!("--dest-creds={cr}"));
    }
    c.arg(image.oci_ref())
        .arg(format!("docker://{addr}/{repo_tag}"));
    crate::run_ok(&mut c);
}

/// Push without credentials.
pub fn push(image: &OciImage, addr: &str, repo_tag: &str) {
    push_with(image, addr, repo_tag, None);
}

/// Write the image as an archive with skopeo: `kind` is `oci-archive` or `docker-archive`.
pub fn archive(image: &OciImage, kind: &str, file: &Path) {
    let dest = match kind {
        "docker-archive" => format!(
            "docker-archive:{}:rkt-test/{}:latest",
            file.display(),
            image.tag
        ),
        _ => format!("{kind}:{}:{}", file.display(), image.tag),
    };
    crate::run_ok(
        Command::new("skopeo")
            .args(["copy", "-q"])
            .arg(image.oci_ref())
            .arg(dest),
    );
}

/// Unpack an image's layers (no whiteout handling: for the plain busybox rootfs used to test
/// the harness itself) into `dir`.
pub fn unpack_plain(image: &OciImage, dir: &Path) {
    for l in &image.layers {
        let f = fs::File::open(image.blob_path(&l.digest)).expect("open layer");
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
        ar.set_preserve_permissions(true);
        ar.set_preserve_ownerships(true);
        ar.unpack(dir).expect("unpack layer");
    }
}
