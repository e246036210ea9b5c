use super::*;

const DOCKER_MANIFEST: &str = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
  "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023,
             "digest": "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7"},
  "layers": [
    {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32654,
     "digest": "sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f"},
    {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "size": 16724,
     "digest": "sha256:3c3a4604a545cdc127456d94e421cd355bca5b528f4a9c1905b15da2eb4a4c6b"}
  ]
}"#;

#[test]
fn docs_are_classified() {
    assert!(
        matches!(classify_doc("i", DOCKER_MANIFEST.as_bytes()).unwrap(),
        Doc::Manifest(m) if m == IMAGE_MANIFEST_MEDIA_TYPE)
    );
    assert!(matches!(
        classify_doc("i", br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#).unwrap(),
        Doc::Index
    ));
    assert!(matches!(
        classify_doc("i", br#"{"schemaVersion":2,"manifests":[]}"#).unwrap(),
        Doc::Index
    ));
    assert!(matches!(
        classify_doc("i", br#"{"schemaVersion":2,"config":{},"layers":[]}"#).unwrap(),
        Doc::Manifest(m) if m == OCI_IMAGE_MEDIA_TYPE
    ));
    let e = classify_doc(
        "reg.example/a:1",
        br#"{"schemaVersion":1,"name":"a","tag":"1","fsLayers":[]}"#,
    )
    .err()
    .unwrap();
    assert!(matches!(e, RegistryError::Schema1 { .. }));
    assert!(e.to_string().contains("schema 1") && e.to_string().contains("reg.example/a:1"));
    assert!(matches!(
        classify_doc(
            "i",
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.artifact.manifest.v1+json"}"#
        ),
        Err(RegistryError::UnsupportedMediaType { .. })
    ));
    assert!(matches!(
        classify_doc("i", b"{}"),
        Err(RegistryError::Invalid { .. })
    ));
    assert!(matches!(
        classify_doc("i", b"not json"),
        Err(RegistryError::Invalid { .. })
    ));
}

#[test]
fn docker_media_types_map_to_oci() {
    let mut m: ImageManifest = serde_json::from_str(DOCKER_MANIFEST).unwrap();
    map_docker_media_types(&mut m);
    assert_eq!(m.media_type(), &Some(MediaType::ImageManifest));
    assert_eq!(m.config().media_type(), &MediaType::ImageConfig);
    assert_eq!(m.layers()[0].media_type(), &MediaType::ImageLayerGzip);
    assert_eq!(
        m.layers()[1].media_type(),
        &MediaType::ImageLayerNonDistributableGzip
    );
    assert_eq!(m.layers()[0].size(), 32654);
}

#[test]
fn digests_and_sizes_are_verified() {
    let body = b"hello";
    let good = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    verify_digest("i", "manifest", good, body).unwrap();
    let bad = verify_digest("img", "config", &good.replace("2cf", "3cf"), body).unwrap_err();
    assert!(
        bad.to_string()
            .contains("config of image \"img\" does not match its digest"),
        "{bad}"
    );
    assert!(verify_digest("i", "m", "md5:00", body).is_err());
    verify_size("i", "m", 5, 5).unwrap();
    assert!(matches!(
        verify_size("i", "m", 5, 6),
        Err(RegistryError::SizeMismatch { .. })
    ));
    assert!(matches!(
        check_size("i", "m", MAX_MANIFEST_SIZE + 1),
        Err(RegistryError::TooLarge { .. })
    ));
}

#[test]
fn endpoints_are_mirrors_then_origin() {
    let mut mirrors = config::Mirrors::default();
    mirrors.mirrors.insert(
        "docker.io".into(),
        vec![
            Endpoint::parse("127.0.0.1:5001").unwrap(),
            Endpoint::parse("https://m.example").unwrap(),
        ],
    );
    let reg = Registry::with_config(RegistryOptions::default(), Default::default(), mirrors);
    let hosts = |s: &str| -> Vec<String> {
        reg.endpoints(&Reference::parse(s).unwrap())
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    };
    assert_eq!(
        hosts("busybox"),
        ["127.0.0.1:5001", "https://m.example", "index.docker.io"]
    );
    assert_eq!(hosts("127.0.0.1:5000/bb:v2"), ["127.0.0.1:5000"]);
    assert_eq!(reg.platform(), &Platform::host());
}

#[test]
fn registry_is_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Registry>();
}

/// Nothing listens on port 1 of loopback: a connection error, after bounded retries, that names
/// the image and the endpoint; and for a mirror that is down, the origin's error.
#[tokio::test]
async fn unreachable_registry_names_image() {
    let reg = Registry::with_config(
        RegistryOptions::default(),
        Default::default(),
        Default::default(),
    );
    let r = Reference::parse("127.0.0.1:1/nothing:here").unwrap();
    let t0 = std::time::Instant::now();
    let e = reg.resolve(&r).await.unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, RegistryError::Connection { .. }), "{s}");
    assert!(
        s.contains("\"127.0.0.1:1/nothing:here\"") && s.contains("127.0.0.1:1"),
        "{s}"
    );
    assert!(
        t0.elapsed() >= std::time::Duration::from_millis(1400),
        "retried with backoff"
    );
}
