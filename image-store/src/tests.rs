//! Store-level tests: OCI layouts built in-test, imported, rendered, exported, collected.

use crate::{FetchOptions, ImageId, PullPolicy, RenderOptions, Store};
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use tar::{Builder, EntryType, Header};

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn entry(b: &mut Builder<Vec<u8>>, path: &str, t: EntryType, data: &[u8]) {
    let mut h = Header::new_gnu();
    h.set_entry_type(t);
    h.set_mode(if t == EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_size(data.len() as u64);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_path(path).unwrap();
    h.set_cksum();
    b.append(&h, data).unwrap();
}

/// Layer 1: /data/{keep,gone}, /opaque/old. Layer 2: /data/added, whiteout gone, opaque /opaque
/// with /opaque/new.
fn layers() -> Vec<Vec<u8>> {
    let mut b = Builder::new(Vec::new());
    entry(&mut b, "data/", EntryType::Directory, b"");
    entry(&mut b, "data/keep", EntryType::Regular, b"keep");
    entry(&mut b, "data/gone", EntryType::Regular, b"gone");
    entry(&mut b, "opaque/", EntryType::Directory, b"");
    entry(&mut b, "opaque/old", EntryType::Regular, b"old");
    let l1 = b.into_inner().unwrap();
    let mut b = Builder::new(Vec::new());
    entry(&mut b, "data/", EntryType::Directory, b"");
    entry(&mut b, "data/added", EntryType::Regular, b"added");
    entry(&mut b, "data/.wh.gone", EntryType::Regular, b"");
    entry(&mut b, "opaque/", EntryType::Directory, b"");
    entry(&mut b, "opaque/.wh..wh..opq", EntryType::Regular, b"");
    entry(&mut b, "opaque/new", EntryType::Regular, b"new");
    let l2 = b.into_inner().unwrap();
    vec![l1, l2]
}

fn gz(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// Write an OCI layout; returns the manifest digest.
fn layout(dir: &Path, tars: &[Vec<u8>], corrupt_layer: bool) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let d = sha(b);
        std::fs::write(blobs.join(&d[7..]), b).unwrap();
        d
    };
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    for t in tars {
        let z = gz(t);
        let d = put(&z);
        diff_ids.push(sha(t));
        layer_descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": z.len()}));
        if corrupt_layer {
            let mut bad = z.clone();
            let n = bad.len();
            bad[n / 2] ^= 0xff;
            std::fs::write(blobs.join(&d[7..]), bad).unwrap();
        }
    }
    let config = serde_json::json!({"architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}})
    .to_string();
    let cd = put(config.as_bytes());
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": layer_descs})
    .to_string();
    let md = put(manifest.as_bytes());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    md
}

fn insecure() -> FetchOptions {
    FetchOptions {
        insecure_image: true,
        pull_policy: PullPolicy::Update,
        ..Default::default()
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn signature_policy_refuses_without_insecure_image() {
    let d = tempfile::tempdir().unwrap();
    let lay = d.path().join("lay");
    layout(&lay, &layers()[..1], false);
    let s = Store::open(&d.path().join("data")).unwrap();
    let e = s
        .fetch(
            &format!("oci:{}:v1", lay.display()),
            &FetchOptions::default(),
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("not trusted") && e.to_string().contains("--insecure-options=image"),
        "{e}"
    );
    assert!(s.list().unwrap().is_empty());

    // a policy that accepts the layout's directory unsigned lets it in, recorded as such
    let etc = d.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let policy = serde_json::json!({
        "default": [{"type": "reject"}],
        "transports": {"oci": {d.path().display().to_string(): [{"type": "insecureAcceptAnything"}]}},
    });
    std::fs::write(etc.join("policy.json"), policy.to_string()).unwrap();
    let opts = FetchOptions {
        config_dirs: vec![d.path().join("lib"), etc],
        ..Default::default()
    };
    let id = s
        .fetch(&format!("oci:{}:v1", lay.display()), &opts)
        .unwrap();
    assert_eq!(s.row(&id).unwrap().verification, "accepted");
    // another directory falls to the default: reject
    let other = tempfile::tempdir().unwrap();
    layout(&other.path().join("lay"), &layers()[..1], false);
    let e = s
        .fetch(
            &format!("oci:{}:v1", other.path().join("lay").display()),
            &opts,
        )
        .unwrap_err();
    assert!(e.to_string().contains("rejects"), "{e}");
}

#[test]
fn oci_layout_import_render_export_gc() {
    if !is_root() {
        return; // whiteouts are device nodes
    }
    let d = tempfile::tempdir().unwrap();
    let lay = d.path().join("lay");
    let md = layout(&lay, &layers(), false);
    let s = Store::open(&d.path().join("data")).unwrap();
    let id = s
        .fetch(&format!("oci:{}:v1", lay.display()), &insecure())
        .unwrap();
    assert_eq!(id.0, md);
    let dirs = s.layer_dirs(&id).unwrap();
    assert_eq!(dirs.len(), 2);
    // Top layer first, in overlay format.
    assert!(dirs[0].join("data/added").is_file());
    assert!(dirs[1].join("data/keep").is_file());
    assert_eq!(s.config(&id).unwrap().entrypoint, vec!["/bin/sh"]);
    assert_eq!(s.image(&id.short(12)).unwrap().id, id);

    // Re-import: same id, nothing re-extracted.
    let m = std::fs::metadata(dirs[0].join("data/added")).unwrap();
    let id2 = s
        .fetch(&format!("oci:{}:v1", lay.display()), &insecure())
        .unwrap();
    assert_eq!(id, id2);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(dirs[0].join("data/added")).unwrap().ino(),
        m.ino()
    );

    // Render: whiteouts applied.
    let out = d.path().join("render");
    s.render(
        &id,
        &out,
        RenderOptions {
            rootfs_only: true,
            overwrite: false,
        },
    )
    .unwrap();
    let names = |p: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&out.join("data")), vec!["added", "keep"]);
    assert_eq!(names(&out.join("opaque")), vec!["new"]);
    assert!(s.render(&id, &out, RenderOptions::default()).is_err());

    // Verify repairs a damaged layer.
    std::fs::remove_file(dirs[1].join("data/keep")).unwrap();
    let rep = s.verify(&id).unwrap();
    assert_eq!(rep.layers_repaired.len(), 1);
    assert!(dirs[1].join("data/keep").is_file());

    // Export and re-import into another store: same id.
    let arch = d.path().join("img.tar");
    s.export(&id, &arch, false).unwrap();
    let s2 = Store::open(&d.path().join("data2")).unwrap();
    let id3 = s2
        .fetch(&format!("oci-archive:{}", arch.display()), &insecure())
        .unwrap();
    assert_eq!(id3, id);

    // GC: pinned survives, then goes.
    s.pin(&id, "pod-1").unwrap();
    let r = s.gc(std::time::Duration::ZERO).unwrap();
    assert!(r.removed_images.is_empty());
    s.unpin("pod-1").unwrap();
    let r = s.gc(std::time::Duration::ZERO).unwrap();
    assert_eq!(r.removed_images, vec![ImageId(md)]);
    assert_eq!(r.removed_layers, 2);
    assert!(s.list().unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(s.cas_dir().join("layers"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(s.cas_dir().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn corrupted_layer_is_a_digest_error_and_stores_nothing() {
    let d = tempfile::tempdir().unwrap();
    let lay = d.path().join("lay");
    let tars = layers();
    layout(&lay, &tars[..1], true);
    let s = Store::open(&d.path().join("data")).unwrap();
    let e = s
        .fetch(&format!("oci:{}:v1", lay.display()), &insecure())
        .unwrap_err();
    assert!(e.to_string().contains("digest mismatch"), "{e}");
    assert!(s.list().unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(s.cas_dir().join("layers"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(s.cas_dir().join("tmp")).unwrap().count(),
        0
    );
}

#[test]
fn pull_policy_never_and_new() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(&d.path().join("data")).unwrap();
    let mut o = insecure();
    o.pull_policy = PullPolicy::Never;
    let e = s.fetch("127.0.0.1:1/nothing:here", &o).unwrap_err();
    assert!(e.to_string().contains("not found in the store"), "{e}");
}

#[test]
fn rm_of_a_pinned_image_keeps_its_layers_until_unpinned() {
    let d = tempfile::tempdir().unwrap();
    let lay = d.path().join("lay");
    layout(&lay, &layers()[..1], false);
    let s = Store::open(&d.path().join("data")).unwrap();
    let name = format!("oci:{}:v1", lay.display());
    let id = s.fetch(&name, &insecure()).unwrap();
    s.pin(&id, "pod-a").unwrap();
    assert_eq!(s.remove(&name).unwrap(), id);
    assert!(s.list().unwrap().is_empty());
    assert!(s.image(&name).is_err());
    let r = s.gc(std::time::Duration::ZERO).unwrap();
    assert!(r.removed_images.is_empty());
    // The pod still gets its layers by id.
    assert_eq!(s.layer_dirs(&id).unwrap().len(), 1);
    s.unpin("pod-a").unwrap();
    let r = s.gc(std::time::Duration::from_secs(3600)).unwrap();
    assert_eq!(r.removed_images, vec![id.clone()]);
    assert_eq!(r.removed_layers, 1);
    assert!(s.layer_dirs(&id).is_err());
}
