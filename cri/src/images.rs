//! The image service on rkt's image store: the same store, registries, mirrors, credentials
//! (`auth.d`), certificates and verification rules as `rkt fetch`.
//!
//! CRI names images as Docker does: `RepoTags` are the `host/repo:tag` names an image was
//! pulled as, `RepoDigests` the same repositories with the manifest digest, and the image id is
//! the store's (the manifest digest). Requests name an image by id, id prefix, tag or digest
//! reference; a missing image is `None` for status and no error for remove, as the kubelet
//! expects.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use image_store::config::Credentials;
use image_store::reference::Reference;
use image_store::{FetchOptions, ImageInfo, PullPolicy, Store};
use tonic::{Request, Response, Status};

use crate::proto::image_service_server::ImageService;
use crate::proto::{
    FilesystemIdentifier, FilesystemUsage, Image, ImageFsInfoRequest, ImageFsInfoResponse,
    ImageSpec, ImageStatusRequest, ImageStatusResponse, Int64Value, ListImagesRequest,
    ListImagesResponse, PullImageRequest, PullImageResponse, RemoveImageRequest,
    RemoveImageResponse, UInt64Value,
};

/// The image service.
#[derive(Clone)]
pub struct Images {
    store: Arc<Mutex<Store>>,
    config_dirs: Vec<PathBuf>,
    insecure: stage0::Insecure,
}

impl Images {
    /// The service on `store`, reading registry configuration from `config_dirs` (lowest
    /// precedence first) and skipping the checks `insecure` turns off.
    pub fn new(store: Store, config_dirs: Vec<PathBuf>, insecure: stage0::Insecure) -> Self {
        Images {
            store: Arc::new(Mutex::new(store)),
            config_dirs,
            insecure,
        }
    }

    /// Run `f` on the store in a blocking thread (the store does file and registry I/O).
    async fn on_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let s = store
                .lock()
                .map_err(|_| Status::internal("image store lock poisoned"))?;
            f(&s)
        })
        .await
        .map_err(|e| Status::internal(format!("image task: {e}")))?
    }
}

impl Images {
    /// The store id of the image a CRI request names (id, id prefix, tag or digest reference),
    /// if it is in the store.
    pub async fn resolve_id(&self, name: &str) -> Result<Option<String>, Status> {
        let name = name.to_string();
        self.on_store(move |s| Ok(find(s, &name)?.map(|i| i.id.to_string())))
            .await
    }
}

/// A store error as a gRPC status.
fn status(e: image_store::Error) -> Status {
    use image_store::Error as E;
    match e {
        E::BadReference(_) | E::Invalid { .. } | E::Ambiguous(_) => {
            Status::invalid_argument(e.to_string())
        }
        E::NotFound(_) | E::NotInStore(_) => Status::not_found(e.to_string()),
        E::Untrusted(_) | E::Policy(_) => Status::permission_denied(e.to_string()),
        E::Unsupported(_) => Status::unimplemented(e.to_string()),
        e => Status::unknown(e.to_string()),
    }
}

fn image_name(spec: Option<&ImageSpec>) -> Result<&str, Status> {
    match spec.map(|s| s.image.trim()) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(Status::invalid_argument("no image named in the request")),
    }
}

/// The stored image `name` refers to, if any.
fn find(store: &Store, name: &str) -> Result<Option<ImageInfo>, Status> {
    match store.image(name) {
        Ok(i) => Ok(Some(i)),
        Err(image_store::Error::NotFound(_)) => Ok(None),
        Err(e) => Err(status(e)),
    }
}

/// `(uid, username)` of an image config's `User` (`uid[:gid]` or `name[:group]`), as
/// containerd reports them: a number goes to `uid`, a name to `username`, nothing to neither.
fn image_user(user: &str) -> (Option<Int64Value>, String) {
    let u = user.split(':').next().unwrap_or("");
    match u.parse::<i64>() {
        Ok(v) => (Some(Int64Value { value: v }), String::new()),
        Err(_) => (None, u.to_string()),
    }
}

/// The CRI view of a stored image.
fn cri_image(store: &Store, info: &ImageInfo) -> Result<Image, Status> {
    let mut repo_tags = Vec::new();
    let mut repo_digests: Vec<String> = Vec::new();
    for n in store.names(&info.id).map_err(status)? {
        if !Reference::is_registry_ref(&n) {
            continue;
        }
        let Ok(r) = Reference::parse(&n) else {
            continue;
        };
        if r.tag.is_some() && r.digest.is_none() {
            repo_tags.push(n.clone());
        }
        let d = format!("{}/{}@{}", r.registry, r.repository, info.manifest_digest);
        if !repo_digests.contains(&d) {
            repo_digests.push(d);
        }
    }
    let cfg = store.config(&info.id).map_err(status)?;
    let (uid, username) = image_user(&cfg.user);
    Ok(Image {
        id: info.id.0.clone(),
        repo_tags,
        repo_digests,
        size: info.size,
        uid,
        username,
        spec: Some(ImageSpec {
            image: info.id.0.clone(),
            ..Default::default()
        }),
        pinned: false,
    })
}

/// The credentials of a `PullImage`'s `AuthConfig`, for its `server_address` (else the image's
/// registry): a registry token, a user and password, or `auth` (base64 of `user:password`).
/// An identity token needs OAuth2's refresh flow, which is not supported.
fn credentials(
    a: &crate::proto::AuthConfig,
    image_registry: &str,
) -> Result<Option<(String, Credentials)>, Status> {
    let host = match a.server_address.trim() {
        "" => image_registry.to_string(),
        s => image_store::config::registry_of_address(s),
    };
    let creds = if !a.identity_token.is_empty() {
        return Err(Status::unimplemented(
            "identity tokens (OAuth2 refresh) in AuthConfig are not supported: \
             give a registry token, a user and password, or auth",
        ));
    } else if !a.registry_token.is_empty() {
        Credentials::Bearer {
            token: a.registry_token.clone(),
        }
    } else if !a.username.is_empty() {
        Credentials::Basic {
            user: a.username.clone(),
            password: a.password.clone(),
        }
    } else if !a.auth.is_empty() {
        image_store::config::basic_from_auth(&a.auth)
            .map_err(|e| Status::invalid_argument(format!("AuthConfig.auth {e}")))?
    } else {
        return Ok(None);
    };
    Ok(Some((host, creds)))
}

/// Bytes and inodes used below `dir` (files counted once per inode).
fn usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut bytes, mut inodes) = (0u64, 0u64);
    let mut seen = std::collections::HashSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if !seen.insert((m.dev(), m.ino())) {
                continue;
            }
            inodes += 1;
            bytes += m.blocks() * 512;
            if m.is_dir() {
                todo.push(e.path());
            }
        }
    }
    (bytes, inodes)
}

#[tonic::async_trait]
impl ImageService for Images {
    async fn list_images(
        &self,
        req: Request<ListImagesRequest>,
    ) -> Result<Response<ListImagesResponse>, Status> {
        let filter = req
            .into_inner()
            .filter
            .and_then(|f| f.image)
            .map(|s| s.image)
            .filter(|s| !s.trim().is_empty());
        let images = self
            .on_store(move |store| {
                let infos = match &filter {
                    Some(name) => find(store, name)?.into_iter().collect(),
                    None => store.list().map_err(status)?,
                };
                infos
                    .iter()
                    .filter(|i| i.kind == "oci")
                    .map(|i| cri_image(store, i))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(Response::new(ListImagesResponse { images }))
    }

    async fn image_status(
        &self,
        req: Request<ImageStatusRequest>,
    ) -> Result<Response<ImageStatusResponse>, Status> {
        let req = req.into_inner();
        let name = image_name(req.image.as_ref())?.to_string();
        let verbose = req.verbose;
        let (image, info) = self
            .on_store(move |store| {
                let Some(i) = find(store, &name)? else {
                    return Ok((None, Default::default()));
                };
                let mut info = std::collections::HashMap::new();
                if verbose {
                    let v = serde_json::json!({
                        "name": i.name,
                        "kind": i.kind,
                        "manifestDigest": i.manifest_digest,
                        "importTime": i.import_time.to_rfc3339(),
                        "lastUsed": i.last_used.to_rfc3339(),
                    });
                    info.insert("info".to_string(), v.to_string());
                }
                Ok((Some(cri_image(store, &i)?), info))
            })
            .await?;
        Ok(Response::new(ImageStatusResponse { image, info }))
    }

    async fn pull_image(
        &self,
        req: Request<PullImageRequest>,
    ) -> Result<Response<PullImageResponse>, Status> {
        let req = req.into_inner();
        let name = image_name(req.image.as_ref())?.to_string();
        if !Reference::is_registry_ref(&name) {
            return Err(Status::invalid_argument(format!(
                "{name:?} is not a registry image reference"
            )));
        }
        let registry = Reference::parse(&name)
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            .registry;
        let credentials = match &req.auth {
            Some(a) => credentials(a, &registry)?,
            None => None,
        };
        let opts = FetchOptions {
            // the kubelet asks to pull when its policy says so: always ask the registry
            pull_policy: PullPolicy::Update,
            insecure_image: self.insecure.image,
            insecure_tls: self.insecure.tls,
            allow_http: self.insecure.http,
            config_dirs: self.config_dirs.clone(),
            progress: None,
            credentials,
            signature: None,
            trust_keys_from_https: false,
        };
        let id = self
            .on_store(move |store| store.fetch(&name, &opts).map_err(status))
            .await?;
        Ok(Response::new(PullImageResponse { image_ref: id.0 }))
    }

    async fn remove_image(
        &self,
        req: Request<RemoveImageRequest>,
    ) -> Result<Response<RemoveImageResponse>, Status> {
        let name = image_name(req.get_ref().image.as_ref())?.to_string();
        self.on_store(move |store| match store.remove(&name) {
            // already gone is success: the kubelet retries removals
            Ok(_) | Err(image_store::Error::NotFound(_)) => Ok(()),
            Err(e) => Err(status(e)),
        })
        .await?;
        Ok(Response::new(RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _req: Request<ImageFsInfoRequest>,
    ) -> Result<Response<ImageFsInfoResponse>, Status> {
        let fs = self
            .on_store(|store| {
                let cas = store.cas_dir().to_path_buf();
                let (bytes, inodes) = usage(&cas);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as i64)
                    .unwrap_or(0);
                Ok(FilesystemUsage {
                    timestamp: now,
                    fs_id: Some(FilesystemIdentifier {
                        mountpoint: cas.display().to_string(),
                    }),
                    used_bytes: Some(UInt64Value { value: bytes }),
                    inodes_used: Some(UInt64Value { value: inodes }),
                })
            })
            .await?;
        Ok(Response::new(ImageFsInfoResponse {
            image_filesystems: vec![fs],
            container_filesystems: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_users_as_containerd_reports_them() {
        assert_eq!(image_user(""), (None, String::new()));
        assert_eq!(
            image_user("1000:50"),
            (Some(Int64Value { value: 1000 }), String::new())
        );
        assert_eq!(image_user("nobody"), (None, "nobody".to_string()));
    }

    #[test]
    fn store_errors_become_grpc_codes() {
        use tonic::Code;
        let e = |x| status(x).code();
        assert_eq!(e(image_store::Error::NotFound("x".into())), Code::NotFound);
        assert_eq!(
            e(image_store::Error::BadReference("x".into())),
            Code::InvalidArgument
        );
        assert_eq!(e(image_store::Error::Internal("x".into())), Code::Unknown);
    }

    #[test]
    fn pull_credentials_from_every_form_of_auth_config() {
        use crate::proto::AuthConfig;
        let basic = |u: &str, p: &str| Credentials::Basic {
            user: u.into(),
            password: p.into(),
        };
        let c = |a: AuthConfig| credentials(&a, "reg.example:5000");
        assert_eq!(c(AuthConfig::default()).unwrap(), None);
        let a = AuthConfig {
            username: "u".into(),
            password: "p".into(),
            ..Default::default()
        };
        assert_eq!(
            c(a).unwrap(),
            Some(("reg.example:5000".into(), basic("u", "p")))
        );
        let a = AuthConfig {
            auth: "dTpwOnE=".into(), // u:p:q
            server_address: "https://other.example/v2/".into(),
            ..Default::default()
        };
        assert_eq!(
            c(a).unwrap(),
            Some(("other.example".into(), basic("u", "p:q")))
        );
        let a = AuthConfig {
            registry_token: "t".into(),
            ..Default::default()
        };
        assert!(matches!(
            c(a).unwrap(),
            Some((_, Credentials::Bearer { .. }))
        ));
        let bad = AuthConfig {
            auth: "not base64!".into(),
            ..Default::default()
        };
        assert_eq!(c(bad).unwrap_err().code(), tonic::Code::InvalidArgument);
        let oauth = AuthConfig {
            identity_token: "i".into(),
            ..Default::default()
        };
        assert_eq!(c(oauth).unwrap_err().code(), tonic::Code::Unimplemented);
    }

    #[test]
    fn usage_counts_bytes_and_inodes_once() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("a")).unwrap();
        std::fs::write(d.path().join("a/f"), vec![1u8; 10_000]).unwrap();
        std::fs::hard_link(d.path().join("a/f"), d.path().join("g")).unwrap();
        let (bytes, inodes) = usage(d.path());
        assert_eq!(inodes, 2, "the dir and the file, once");
        assert!(bytes >= 10_000, "{bytes}");
    }
}
