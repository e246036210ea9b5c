//! OCI distribution client (oci-client): auth, TLS, mirrors, retries.
//!
//! [`Registry::resolve`] turns a [`Reference`] into one verified single-platform manifest and
//! its config; [`Registry::blob_stream`] streams layer blobs (from an offset, resuming by itself
//! after a dropped connection). Blob bytes are *not* verified here: the caller hashes them
//! while it stores them.
//!
//! Endpoints: the mirrors configured for the reference's registry (`registries.d`, see
//! [`crate::config`]) in order, then the registry itself. Each is tried over https first; plain
//! http only with [`RegistryOptions::allow_http`] (or an explicit `http://` mirror). Connection
//! errors and 5xx are retried with exponential backoff ([`transport::MAX_TRIES`] tries);
//! 401/403/404 are not.

mod blob;
mod error;
pub(crate) use error::chain as error_chain;
mod platform;
mod transport;

use std::path::PathBuf;
use std::sync::Arc;

use oci_client::manifest::{
    IMAGE_DOCKER_CONFIG_MEDIA_TYPE, IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest, MediaType};
use sha2::Digest as _;

pub use self::error::RegistryError;
pub use self::platform::Platform;
use self::transport::Transport;
use crate::config::{self, Endpoint};
use crate::reference::Reference;
pub use crate::reference::ReferenceError;

/// Largest manifest or index accepted.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// Largest image config accepted (the same limit as for every other source).
pub const MAX_CONFIG_SIZE: u64 = crate::manifest::MAX_CONFIG_SIZE;

const SCHEMA1_TYPES: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];
const ACCEPT: [&str; 4] = [
    OCI_IMAGE_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// How to talk to registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// `--insecure-options=tls`: do not verify registry certificates.
    pub insecure_skip_tls_verify: bool,
    /// `--insecure-options=http`: fall back to plain http when https does not come up.
    pub allow_http: bool,
    /// rkt config roots in increasing precedence (system, local, user); `certs.d/`, `auth.d/`
    /// and `registries.d/` are looked up under each.
    pub config_dirs: Vec<PathBuf>,
    /// Platform to pick from an image index; `None` = the host's.
    pub platform: Option<Platform>,
    /// Credentials for one registry host given with the request (a CRI `PullImage`'s
    /// `AuthConfig`); they win over `auth.d` and the docker config for that host.
    pub credentials: Option<(String, config::Credentials)>,
}

/// A registry client. Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    mirrors: config::Mirrors,
    platform: Platform,
}

/// One resolved single-platform image.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The reference as asked.
    pub reference: Reference,
    /// `host[:port]` actually used (a mirror or the registry).
    pub endpoint: String,
    /// `sha256:…` of `manifest_bytes`.
    pub manifest_digest: String,
    /// Media type of `manifest_bytes` (OCI or Docker schema 2 image manifest).
    pub manifest_media_type: String,
    /// The manifest exactly as served.
    pub manifest_bytes: Vec<u8>,
    /// The manifest parsed; Docker schema 2 media types are mapped to their OCI equivalents
    /// (`…docker.image.rootfs.diff.tar.gzip` → `…oci.image.layer.v1.tar+gzip`, …).
    pub manifest: ImageManifest,
    /// The config blob, verified against the manifest's descriptor.
    pub config_bytes: Vec<u8>,
    pub config: ImageConfiguration,
}

enum Doc {
    Manifest(String),
    Index,
}

impl Registry {
    /// Load auth and mirror configuration from `opts.config_dirs` (and the docker config.json).
    pub fn new(opts: RegistryOptions) -> Result<Registry, RegistryError> {
        let mut auth = config::load_auth(&opts.config_dirs)?;
        if let Some((host, creds)) = &opts.credentials {
            auth.set(host, creds.clone());
        }
        let mirrors = config::load_mirrors(&opts.config_dirs)?;
        Ok(Self::with_config(opts, auth, mirrors))
    }

    /// Like [`Registry::new`] with configuration already loaded.
    pub fn with_config(
        opts: RegistryOptions,
        auth: config::AuthConfig,
        mirrors: config::Mirrors,
    ) -> Registry {
        let platform = opts.platform.clone().unwrap_or_else(Platform::host);
        Registry {
            inner: Arc::new(Inner {
                transport: Transport::new(opts, auth),
                mirrors,
                platform,
            }),
        }
    }

    /// The platform picked from image indexes.
    pub fn platform(&self) -> &Platform {
        &self.inner.platform
    }

    /// Endpoints for a reference: mirrors in order, then the registry itself.
    pub fn endpoints(&self, r: &Reference) -> Vec<Endpoint> {
        let mut v = self.inner.mirrors.for_registry(&r.registry).to_vec();
        v.push(Endpoint {
            host: origin_host(&r.registry),
            scheme: None,
        });
        v
    }

    /// Resolve to one single-platform image manifest: fetch the manifest (OCI or Docker
    /// schema 2); if it is an index/manifest list pick the platform; fetch the config blob and
    /// verify its digest and size. Mirrors first, then the registry. Verifies the manifest
    /// digest when the reference pins one.
    #[tracing::instrument(skip(self), fields(image = %r))]
    pub async fn resolve(&self, r: &Reference) -> Result<ResolvedImage, RegistryError> {
        let endpoints = self.endpoints(r);
        let last = endpoints.len() - 1;
        for (i, ep) in endpoints.iter().enumerate() {
            match self.resolve_at(r, ep).await {
                Ok(img) => return Ok(img),
                Err(e) if i < last => {
                    tracing::warn!(mirror = %ep, error = %e, "mirror failed, trying the next endpoint");
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("endpoints always end with the registry itself")
    }

    async fn resolve_at(
        &self,
        r: &Reference,
        ep: &Endpoint,
    ) -> Result<ResolvedImage, RegistryError> {
        let image = r.to_string();
        let t = &self.inner.transport;
        let oref = match &r.digest {
            Some(d) => {
                oci_client::Reference::with_digest(ep.host.clone(), r.repository.clone(), d.clone())
            }
            None => oci_client::Reference::with_tag(
                ep.host.clone(),
                r.repository.clone(),
                r.tag_or_digest().into(),
            ),
        };
        let mut bytes = t
            .call(&image, ep, |c, auth| {
                let oref = oref.clone();
                async move { c.pull_manifest_raw(&oref, &auth, &ACCEPT).await }
            })
            .await?
            .0
            .to_vec();
        check_size(&image, "manifest", bytes.len() as u64)?;
        if let Some(pinned) = &r.digest {
            verify_digest(&image, "manifest", pinned, &bytes)?;
        }

        let mut depth = 0;
        let media_type = loop {
            match classify_doc(&image, &bytes)? {
                Doc::Manifest(mt) => break mt,
                Doc::Index if depth < 2 => {
                    depth += 1;
                    let idx: platform::IndexDoc =
                        serde_json::from_slice(&bytes).map_err(|e| RegistryError::Invalid {
                            image: image.clone(),
                            what: "image index".into(),
                            detail: e.to_string(),
                        })?;
                    let want = &self.inner.platform;
                    let entry = platform::select(&idx.manifests, want).ok_or_else(|| {
                        RegistryError::NoPlatform {
                            image: image.clone(),
                            platform: want.to_string(),
                            available: platform::describe(&idx.manifests),
                        }
                    })?;
                    tracing::debug!(digest = %entry.digest, platform = %want, "picked manifest from index");
                    crate::reference::validate_digest(&entry.digest).map_err(|detail| {
                        RegistryError::Invalid {
                            image: image.clone(),
                            what: "image index".into(),
                            detail,
                        }
                    })?;
                    check_size(&image, "manifest", entry.size)?;
                    let by_digest = oref.clone_with_digest(entry.digest.clone());
                    let got = t
                        .call(&image, ep, |c, auth| {
                            let oref = by_digest.clone();
                            async move { c.pull_manifest_raw(&oref, &auth, &ACCEPT).await }
                        })
                        .await?
                        .0;
                    verify_size(&image, "manifest", entry.size, got.len() as u64)?;
                    verify_digest(&image, "manifest", &entry.digest, &got)?;
                    if let Some(mt) = &entry.media_type {
                        tracing::trace!(media_type = %mt, "index entry media type");
                    }
                    bytes = got.to_vec();
                }
                Doc::Index => {
                    return Err(RegistryError::Invalid {
                        image,
                        what: "image index".into(),
                        detail: "indexes nested too deeply".into(),
                    })
                }
            }
        };

        let manifest_digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
        let mut manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::Invalid {
                image: image.clone(),
                what: "manifest".into(),
                detail: e.to_string(),
            })?;
        map_docker_media_types(&mut manifest);
        let cdesc = manifest.config().clone();
        if *cdesc.media_type() != MediaType::ImageConfig {
            return Err(RegistryError::UnsupportedMediaType {
                image,
                what: "config",
                media_type: cdesc.media_type().to_string(),
            });
        }
        let config_bytes = self.fetch_config(&image, ep, &oref, &cdesc).await?;
        // the limits every source's config has, before a full parse
        crate::manifest::parse_config(&config_bytes).map_err(|e| RegistryError::Invalid {
            image: image.clone(),
            what: "image config".into(),
            detail: match e {
                crate::Error::Invalid { reason, .. } => reason,
                e => e.to_string(),
            },
        })?;
        let config: ImageConfiguration =
            serde_json::from_slice(&config_bytes).map_err(|e| RegistryError::Invalid {
                image: image.clone(),
                what: "image config".into(),
                detail: e.to_string(),
            })?;
        Ok(ResolvedImage {
            reference: r.clone(),
            endpoint: ep.host.clone(),
            manifest_digest,
            manifest_media_type: media_type,
            manifest_bytes: bytes,
            manifest,
            config_bytes,
            config,
        })
    }

    async fn fetch_config(
        &self,
        image: &str,
        ep: &Endpoint,
        oref: &oci_client::Reference,
        desc: &Descriptor,
    ) -> Result<Vec<u8>, RegistryError> {
        let digest = desc.digest().to_string();
        crate::reference::validate_digest(&digest).map_err(|detail| RegistryError::Invalid {
            image: image.to_string(),
            what: "config descriptor".into(),
            detail,
        })?;
        let size = desc.size();
        if size > MAX_CONFIG_SIZE {
            return Err(RegistryError::TooLarge {
                image: image.into(),
                what: "config".into(),
                size,
                limit: MAX_CONFIG_SIZE,
            });
        }
        let res = self
            .inner
            .transport
            .call(image, ep, |c, auth| {
                let (oref, digest) = (oref.clone(), digest.clone());
                async move {
                    c.store_auth_if_needed(oref.resolve_registry(), &auth).await;
                    let mut out = Vec::with_capacity(size as usize);
                    c.pull_blob(&oref, digest.as_str(), &mut out)
                        .await
                        .map(|()| out)
                }
            })
            .await;
        let bytes = match res {
            Ok(b) => b,
            Err(RegistryError::NotFound { image, endpoint }) => {
                return Err(RegistryError::BlobNotFound {
                    image,
                    endpoint,
                    digest,
                })
            }
            Err(RegistryError::DigestMismatch {
                image,
                expected,
                actual,
                ..
            }) => {
                return Err(RegistryError::DigestMismatch {
                    image,
                    what: "config".into(),
                    expected,
                    actual,
                })
            }
            Err(e) => return Err(e),
        };
        verify_size(image, "config", size, bytes.len() as u64)?;
        verify_digest(image, "config", &digest, &bytes)?;
        Ok(bytes)
    }
}

/// Signature artifacts (cosign's `sha256-<hex>.sig` tags): small documents next to an image.
impl Registry {
    /// The manifest tagged `tag` in `r`'s repository, as served (at most
    /// [`MAX_MANIFEST_SIZE`]), from the first endpoint (mirrors, then the registry) that has
    /// it, with that endpoint. `Ok(None)` when the registry itself does not have it (404). Not
    /// parsed or verified here.
    pub(crate) async fn tagged_manifest(
        &self,
        r: &Reference,
        tag: &str,
    ) -> Result<Option<(Endpoint, Vec<u8>)>, RegistryError> {
        let image = format!("{}:{tag}", r.name());
        let endpoints = self.endpoints(r);
        let last = endpoints.len() - 1;
        for (i, ep) in endpoints.into_iter().enumerate() {
            let oref =
                oci_client::Reference::with_tag(ep.host.clone(), r.repository.clone(), tag.into());
            let res = self
                .inner
                .transport
                .call(&image, &ep, |c, auth| {
                    let oref = oref.clone();
                    async move { c.pull_manifest_raw(&oref, &auth, &ACCEPT).await }
                })
                .await;
            match res {
                Ok((bytes, _)) => {
                    check_size(&image, "manifest", bytes.len() as u64)?;
                    return Ok(Some((ep, bytes.to_vec())));
                }
                Err(RegistryError::NotFound { .. }) if i == last => return Ok(None),
                Err(e) if i < last => {
                    tracing::debug!(mirror = %ep, error = %e, "mirror has no {tag}, trying the next endpoint");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// A small blob of `r`'s repository from `ep`, read whole: at most `max` bytes, checked
    /// against the descriptor's `size` and `digest`.
    pub(crate) async fn small_blob(
        &self,
        r: &Reference,
        ep: &Endpoint,
        digest: &str,
        size: u64,
        max: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        use futures_util::StreamExt as _;
        let image = r.to_string();
        let invalid = |detail: String| RegistryError::Invalid {
            image: image.clone(),
            what: "blob descriptor".into(),
            detail,
        };
        crate::reference::validate_digest(digest).map_err(invalid)?;
        if size > max {
            return Err(RegistryError::TooLarge {
                image: image.clone(),
                what: format!("blob {digest}"),
                size,
                limit: max,
            });
        }
        let oref = oci_client::Reference::with_digest(
            ep.host.clone(),
            r.repository.clone(),
            digest.to_string(),
        );
        let mut stream = self
            .inner
            .transport
            .call(&image, ep, |c, auth| {
                let oref = oref.clone();
                async move {
                    c.store_auth_if_needed(oref.resolve_registry(), &auth).await;
                    c.pull_blob_stream(&oref, oref.digest().unwrap_or_default())
                        .await
                }
            })
            .await
            .map_err(|e| e.of_blob(digest))?
            .stream;
        let mut out = Vec::with_capacity(size as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| RegistryError::BlobStream {
                image: image.clone(),
                endpoint: ep.host.clone(),
                digest: digest.to_string(),
                detail: self::error::chain(&e),
            })?;
            if out.len() as u64 + chunk.len() as u64 > size {
                return Err(RegistryError::SizeMismatch {
                    image,
                    what: format!("blob {digest}"),
                    expected: size,
                    actual: out.len() as u64 + chunk.len() as u64,
                });
            }
            out.extend_from_slice(&chunk);
        }
        verify_size(&image, &format!("blob {digest}"), size, out.len() as u64)?;
        verify_digest(&image, &format!("blob {digest}"), digest, &out)?;
        Ok(out)
    }
}

/// Docker Hub's API host for `docker.io`.
fn origin_host(registry: &str) -> String {
    if registry == crate::reference::DEFAULT_REGISTRY {
        "index.docker.io".to_string()
    } else {
        registry.to_string()
    }
}

fn check_size(image: &str, what: &str, size: u64) -> Result<(), RegistryError> {
    if size > MAX_MANIFEST_SIZE {
        return Err(RegistryError::TooLarge {
            image: image.into(),
            what: what.into(),
            size,
            limit: MAX_MANIFEST_SIZE,
        });
    }
    Ok(())
}

fn verify_size(image: &str, what: &str, expected: u64, actual: u64) -> Result<(), RegistryError> {
    if expected != actual {
        return Err(RegistryError::SizeMismatch {
            image: image.into(),
            what: what.into(),
            expected,
            actual,
        });
    }
    Ok(())
}

/// Check `bytes` against `sha256:…`/`sha384:…`/`sha512:…`.
fn verify_digest(
    image: &str,
    what: &str,
    expected: &str,
    bytes: &[u8],
) -> Result<(), RegistryError> {
    let (alg, _) = expected.split_once(':').unwrap_or(("", ""));
    let actual = match alg {
        "sha256" => format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes))),
        "sha384" => format!("sha384:{}", hex::encode(sha2::Sha384::digest(bytes))),
        "sha512" => format!("sha512:{}", hex::encode(sha2::Sha512::digest(bytes))),
        _ => {
            return Err(RegistryError::Invalid {
                image: image.into(),
                what: what.into(),
                detail: format!("unsupported digest {expected:?}"),
            })
        }
    };
    if actual != expected {
        return Err(RegistryError::DigestMismatch {
            image: image.into(),
            what: what.into(),
            expected: expected.into(),
            actual,
        });
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct Versioned {
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<i64>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    layers: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

/// What a manifest document is, from its own `schemaVersion`/`mediaType`/shape.
fn classify_doc(image: &str, bytes: &[u8]) -> Result<Doc, RegistryError> {
    let v: Versioned = serde_json::from_slice(bytes).map_err(|e| RegistryError::Invalid {
        image: image.into(),
        what: "manifest".into(),
        detail: e.to_string(),
    })?;
    let mt = v.media_type.as_deref();
    if v.schema_version == Some(1) || mt.is_some_and(|m| SCHEMA1_TYPES.contains(&m)) {
        return Err(RegistryError::Schema1 {
            image: image.into(),
        });
    }
    match mt {
        Some(OCI_IMAGE_INDEX_MEDIA_TYPE | IMAGE_MANIFEST_LIST_MEDIA_TYPE) => Ok(Doc::Index),
        Some(m @ (OCI_IMAGE_MEDIA_TYPE | IMAGE_MANIFEST_MEDIA_TYPE)) => {
            Ok(Doc::Manifest(m.to_string()))
        }
        Some(other) => Err(RegistryError::UnsupportedMediaType {
            image: image.into(),
            what: "manifest",
            media_type: other.into(),
        }),
        // OCI allows omitting mediaType: go by shape.
        None if v.manifests.is_some() => Ok(Doc::Index),
        None if v.layers.is_some() && v.config.is_some() => {
            Ok(Doc::Manifest(OCI_IMAGE_MEDIA_TYPE.into()))
        }
        None => Err(RegistryError::Invalid {
            image: image.into(),
            what: "manifest".into(),
            detail: "neither an image manifest nor an index".into(),
        }),
    }
}

/// Map Docker schema 2 media types in a parsed manifest to their OCI equivalents.
fn map_docker_media_types(m: &mut ImageManifest) {
    fn map(mt: &MediaType) -> Option<MediaType> {
        let MediaType::Other(s) = mt else { return None };
        Some(match s.as_str() {
            IMAGE_MANIFEST_MEDIA_TYPE => MediaType::ImageManifest,
            IMAGE_DOCKER_CONFIG_MEDIA_TYPE => MediaType::ImageConfig,
            "application/vnd.docker.image.rootfs.diff.tar.gzip" => MediaType::ImageLayerGzip,
            "application/vnd.docker.image.rootfs.diff.tar.zstd" => MediaType::ImageLayerZstd,
            "application/vnd.docker.image.rootfs.diff.tar" => MediaType::ImageLayer,
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                MediaType::ImageLayerNonDistributableGzip
            }
            "application/vnd.docker.image.rootfs.foreign.diff.tar" => {
                MediaType::ImageLayerNonDistributable
            }
            _ => return None,
        })
    }
    if let Some(mt) = m.media_type().as_ref().and_then(map) {
        m.set_media_type(Some(mt));
    }
    if let Some(mt) = map(m.config().media_type()) {
        let mut c = m.config().clone();
        c.set_media_type(mt);
        m.set_config(c);
    }
    for l in m.layers_mut() {
        if let Some(mt) = map(l.media_type()) {
            l.set_media_type(mt);
        }
    }
}

#[cfg(test)]
mod live_tests;
#[cfg(test)]
mod tests;
