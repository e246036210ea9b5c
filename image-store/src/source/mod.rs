//! Where images come from: what the user typed, classified, and each kind of source turned into
//! a [`Prepared`] image (verified manifest and config, plus a way to read its layer blobs).

pub(crate) mod aci;
pub(crate) mod discovery;
pub(crate) mod archive;
pub(crate) mod oci;
pub(crate) mod registry;
pub(crate) mod signatures;

use crate::error::{Error, Result};
use crate::layer::TmpGuard;
use crate::manifest::Descriptor;
use crate::reference::Reference;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// An image string, classified (rkt's `DistFromImageString`, extended with OCI transports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// A stored image id or prefix: store only.
    Id(String),
    /// A registry reference.
    Registry(Reference),
    /// `oci:PATH[:TAG]`.
    OciLayout { path: PathBuf, tag: Option<String> },
    /// `oci-archive:FILE[:TAG]`.
    OciArchive { path: PathBuf, tag: Option<String> },
    /// `docker-archive:FILE`.
    DockerArchive { path: PathBuf },
    /// An appc image file.
    Aci(PathBuf),
    /// Anything else: a name to look up in the store.
    Name(String),
}

/// Split `PATH[:TAG]`. The first prefix (up to a `:`) that exists is the path and the rest the
/// tag (which may itself contain `:` and `/`, as `docker-archive:FILE:REPO:TAG` and OCI ref
/// names do); when nothing exists, a final `:x` without `/` is taken as the tag.
fn path_and_tag(s: &str) -> (PathBuf, Option<String>) {
    if Path::new(s).exists() {
        return (PathBuf::from(s), None);
    }
    for (i, _) in s.match_indices(':') {
        if i > 0 && Path::new(&s[..i]).exists() && i + 1 < s.len() {
            return (PathBuf::from(&s[..i]), Some(s[i + 1..].to_string()));
        }
    }
    if let Some(i) = s.rfind(':') {
        let tag = &s[i + 1..];
        if !tag.is_empty() && !tag.contains('/') {
            return (PathBuf::from(&s[..i]), Some(tag.to_string()));
        }
    }
    (PathBuf::from(s), None)
}

fn absolute(p: PathBuf) -> PathBuf {
    std::path::absolute(&p).unwrap_or(p)
}

/// Classify an image string.
pub(crate) fn classify(s: &str) -> Result<Source> {
    if s.is_empty() {
        return Err(Error::BadReference(s.to_string()));
    }
    if let Some(rest) = s.strip_prefix("oci:") {
        let (p, t) = path_and_tag(rest);
        return Ok(Source::OciLayout {
            path: absolute(p),
            tag: t,
        });
    }
    if let Some(rest) = s.strip_prefix("oci-archive:") {
        let (p, t) = path_and_tag(rest);
        return Ok(Source::OciArchive {
            path: absolute(p),
            tag: t,
        });
    }
    if let Some(rest) = s.strip_prefix("docker-archive:") {
        // skopeo allows `docker-archive:FILE:REF`; the reference part only picks a name.
        let (p, _) = path_and_tag(rest);
        return Ok(Source::DockerArchive { path: absolute(p) });
    }
    if let Some(rest) = s.strip_prefix("file://") {
        return Ok(Source::Aci(absolute(PathBuf::from(rest))));
    }
    if s.starts_with("http://") || s.starts_with("https://") {
        return Err(Error::Unsupported(format!(
            "fetching {s:?}: ACI over http(s) is not supported yet"
        )));
    }
    if s.starts_with("sha256:") || s.starts_with("sha512-") {
        return Ok(Source::Id(s.to_string()));
    }
    let p = Path::new(s);
    if s.starts_with('/')
        || s.starts_with("./")
        || s.starts_with("../")
        || s.ends_with(".aci")
        || p.is_file()
    {
        if p.is_dir() && p.join("oci-layout").is_file() {
            return Ok(Source::OciLayout {
                path: absolute(p.to_path_buf()),
                tag: None,
            });
        }
        return Ok(Source::Aci(absolute(p.to_path_buf())));
    }
    if Reference::is_registry_ref(s) {
        return Ok(Source::Registry(
            Reference::parse(s).map_err(|_| Error::BadReference(s.to_string()))?,
        ));
    }
    Ok(Source::Name(s.to_string()))
}

/// How to read the layer blobs of a prepared image.
pub(crate) enum Blobs {
    /// Files named by digest hex in this directory (an OCI layout's `blobs/sha256`).
    Dir(PathBuf),
    /// Explicit files per digest (docker-archive).
    Files(HashMap<String, PathBuf>),
    /// A registry.
    Registry(registry::RegistryBlobs),
}

/// An image whose manifest and config are verified, ready for its layers to be fetched.
pub(crate) struct Prepared {
    /// Name recorded in the index.
    pub name: String,
    /// Which kind of source, for the signature policy ("docker", "oci").
    pub source_kind: &'static str,
    pub manifest_digest: String,
    pub manifest_media_type: String,
    pub manifest_bytes: Vec<u8>,
    pub config_digest: String,
    pub config_bytes: Vec<u8>,
    pub layers: Vec<Descriptor>,
    pub diff_ids: Vec<String>,
    pub blobs: Blobs,
    /// Temporary files (unpacked archives) removed when the import is done.
    pub _tmp: Option<TmpGuard>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_tags() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a.tar");
        std::fs::write(&f, b"").unwrap();
        let fs = f.to_str().unwrap();
        assert_eq!(path_and_tag(fs), (f.clone(), None));
        assert_eq!(
            path_and_tag(&format!("{fs}:rkt-test/bb:latest")),
            (f.clone(), Some("rkt-test/bb:latest".into()))
        );
        assert_eq!(
            path_and_tag("/nonexistent/x:v1"),
            ("/nonexistent/x".into(), Some("v1".into()))
        );
        assert_eq!(
            path_and_tag("/nonexistent/x"),
            ("/nonexistent/x".into(), None)
        );
    }

    #[test]
    fn classification() {
        assert_eq!(
            classify("oci:/tmp/lay:v1").unwrap(),
            Source::OciLayout {
                path: "/tmp/lay".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            classify("oci:/tmp/lay").unwrap(),
            Source::OciLayout {
                path: "/tmp/lay".into(),
                tag: None
            }
        );
        assert_eq!(
            classify("oci-archive:/a/b.tar:latest").unwrap(),
            Source::OciArchive {
                path: "/a/b.tar".into(),
                tag: Some("latest".into())
            }
        );
        assert_eq!(
            classify("docker-archive:/a/d.tar").unwrap(),
            Source::DockerArchive {
                path: "/a/d.tar".into()
            }
        );
        assert_eq!(
            classify("/x/y.aci").unwrap(),
            Source::Aci("/x/y.aci".into())
        );
        assert_eq!(
            classify("file:///x/y.aci").unwrap(),
            Source::Aci("/x/y.aci".into())
        );
        assert!(matches!(classify("sha256:abcd").unwrap(), Source::Id(_)));
        assert!(matches!(
            classify("docker://127.0.0.1:5000/bb:v1").unwrap(),
            Source::Registry(_)
        ));
        assert!(matches!(classify("busybox").unwrap(), Source::Registry(_)));
    }
}
