//! The fuzz targets of rkt: one function per parser of untrusted bytes, called by the
//! cargo-fuzz targets in `fuzz/libfuzzer/fuzz_targets/` and, over the checked-in corpus in
//! `fuzz/corpus/<target>/`, by this crate's tests (so `make test` replays every input the
//! fuzzers found interesting, crashes included once fixed). docs/security.md says how to run them.
//!
//! Each function panics only when the code under test is wrong: a parser that panics, or a
//! property that fails (a reference that does not survive its own canonical form, a layer that
//! wrote outside its root).

use std::path::Path;

/// A target's body: one input, a panic when the code under test is wrong.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory and cargo-fuzz binary.
pub const TARGETS: &[(&str, Target)] = &[
    ("reference", reference),
    ("manifest", manifest),
    ("image_config", image_config),
    ("aci_manifest", aci_manifest),
    ("layer_tar", layer_tar),
    ("aci_tar", aci_tar),
    ("cni_result", cni_result),
    ("seccomp_flag", seccomp_flag),
    ("auth_challenge", auth_challenge),
    ("signature_claim", signature_claim),
    ("openpgp", openpgp),
    ("cosign_key", cosign_key),
    ("discovery_page", discovery_page),
    ("policy", policy),
    ("spdy_frames", spdy_frames),
    ("ws_frame", ws_frame),
];

/// What a streaming client (kubectl, anyone who reaches the streaming port) sends over SPDY: a
/// sequence of frames through one decoder, as a session reads them (the header compression
/// context carries over from frame to frame).
pub fn spdy_frames(data: &[u8]) {
    use rkt_cri_streaming::spdy::frame::{split_frame, FrameDecoder};
    let mut dec = FrameDecoder::new();
    let mut rest = data;
    while let Ok(Some((raw, used))) = split_frame(rest) {
        assert!(
            used > 0 && used <= rest.len(),
            "frame of {used} bytes in {}",
            rest.len()
        );
        let _ = dec.decode(raw);
        rest = &rest[used..];
    }
    let _ = rkt_cri_streaming::decode_frame(data);
}

/// A WebSocket frame header from a streaming client: what it claims fits what it parsed.
pub fn ws_frame(data: &[u8]) {
    let _ = rkt_cri_streaming::ws::parse_frame_header(data);
}

/// An image reference as typed by a user or found in a pod manifest: parsing is total, and an
/// accepted reference parses again from its canonical form to the same canonical form.
pub fn reference(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = image_store::reference::Reference::is_registry_ref(s);
    if let Ok(r) = image_store::reference::Reference::parse(s) {
        let canon = r.to_string();
        let again = image_store::reference::Reference::parse(&canon)
            .unwrap_or_else(|e| panic!("{s:?} → {canon:?} does not parse: {e}"));
        assert_eq!(again.to_string(), canon, "canonical form of {s:?} moved");
        let _ = (r.name(), r.tag_or_digest());
    }
}

/// A manifest or index from a registry or an OCI layout (and the platform pick of an index).
pub fn manifest(data: &[u8]) {
    let _ = image_store::fuzzing::manifest(data);
}

/// An OCI image config blob.
pub fn image_config(data: &[u8]) {
    let _ = image_store::fuzzing::config(data);
}

/// The `manifest` of an appc ACI.
pub fn aci_manifest(data: &[u8]) {
    let _ = image_store::fuzzing::aci_manifest(data);
}

/// Extract `tar` into an empty `root` beside a sibling dir; nothing may appear outside `root`.
fn extract_contained(tar: &[u8], aci: bool) {
    let t = tempfile::tempdir().expect("temp dir");
    let root = t.path().join("root");
    std::fs::create_dir(&root).expect("root");
    std::fs::create_dir(t.path().join("beside")).expect("beside");
    let _ = image_store::fuzzing::layer(tar, &root, aci);
    let stray = outside_root(t.path());
    assert!(
        stray.is_empty(),
        "a layer wrote outside its root: {stray:?}"
    );
}

/// What is in `dir` besides `root/` and an empty `beside/`.
fn outside_root(dir: &Path) -> Vec<String> {
    let mut stray = Vec::new();
    for e in std::fs::read_dir(dir).expect("read temp dir") {
        let name = e.expect("entry").file_name().to_string_lossy().into_owned();
        if name != "root" && name != "beside" {
            stray.push(name);
        }
    }
    if let Ok(d) = std::fs::read_dir(dir.join("beside")) {
        stray.extend(d.map(|e| format!("beside/{:?}", e.expect("entry").file_name())));
    }
    stray
}

/// A layer tarball (whiteouts, links, modes, xattrs) extracted as the store extracts it.
pub fn layer_tar(data: &[u8]) {
    extract_contained(data, false);
}

/// An ACI tarball (`rootfs/` stripped, `manifest` captured).
pub fn aci_tar(data: &[u8]) {
    extract_contained(data, true);
}

/// A CNI plugin's result (stdout of ADD): any JSON a plugin may print is summarised.
pub fn cni_result(data: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = stage1::network::cni::summarize(&v);
    }
}

/// The value of `--seccomp` (and of a pod manifest's seccomp isolator as stage0 reads it).
pub fn seccomp_flag(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = stage0::flags::parse_seccomp(s);
    }
}

/// A registry's `WWW-Authenticate` header, parsed as the registry client (oci-client) does:
/// every challenge, every parameter unescaped, and the basic-auth choice.
pub fn auth_challenge(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for c in http_auth::parser::ChallengeParser::new(s).flatten() {
        for (_, v) in &c.params {
            let _ = v.to_unescaped();
        }
    }
    let _ = http_auth::PasswordClient::try_from(s);
}

/// The JSON claim a simple-signing or cosign signature signs (from a lookaside store or a
/// registry), and its identity checks.
pub fn signature_claim(data: &[u8]) {
    let _ = image_store::fuzzing::signature_claim(data);
}

/// OpenPGP bytes from anywhere (a lookaside signature, an `.asc`, a key file, a key a
/// discovery page names): parsed as keys, and as a signed message and a detached signature
/// checked against a fixed key.
pub fn openpgp(data: &[u8]) {
    let _ = image_store::fuzzing::openpgp(data);
}

/// A cosign public key file (PEM).
pub fn cosign_key(data: &[u8]) {
    let _ = image_store::fuzzing::cosign_key(data);
}

/// An appc discovery page: meta tags and the template picked from them.
pub fn discovery_page(data: &[u8]) {
    let _ = image_store::fuzzing::discovery_page(data);
}

/// A `policy.json` (config, but often copied from elsewhere): parsing is total.
pub fn policy(data: &[u8]) {
    let _ = image_store::fuzzing::policy(data);
}

#[cfg(test)]
mod replay {
    use super::TARGETS;
    use std::path::PathBuf;

    fn corpus(target: &str) -> Vec<PathBuf> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }

    /// Every checked-in input of every target runs through it without a panic.
    #[test]
    fn the_corpus_replays_cleanly() {
        let mut total = 0;
        for (name, target) in TARGETS {
            let files = corpus(name);
            assert!(!files.is_empty(), "no corpus for {name}");
            for f in files {
                let data = std::fs::read(&f).unwrap();
                let r = std::panic::catch_unwind(|| target(&data));
                assert!(r.is_ok(), "{name}: {} panics", f.display());
                total += 1;
            }
        }
        assert!(total >= TARGETS.len());
    }

    /// The containment check can fail: it names what a layer left beside its root.
    #[test]
    fn the_layer_property_notices_a_write_outside() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("root/ok")).unwrap();
        std::fs::create_dir(t.path().join("beside")).unwrap();
        assert!(super::outside_root(t.path()).is_empty());
        std::fs::write(t.path().join("beside/pwned"), b"x").unwrap();
        std::fs::write(t.path().join("stray"), b"x").unwrap();
        let mut got = super::outside_root(t.path());
        got.sort();
        assert_eq!(got, ["beside/\"pwned\"", "stray"]);
    }
}
