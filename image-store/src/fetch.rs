//! Fetching: pull policies, the signature-policy stage, and committing a prepared image —
//! its layers in parallel (bounded), skipping those already stored, then the index row.

use crate::error::{io_err, Error, Result};
use crate::index::{BlobRow, ImageRow, LayerRow};
use crate::layer::{fetch_layer, write_blob, TmpGuard};
use crate::manifest::{Descriptor, OCI_CONFIG};
use crate::registry::{Registry, RegistryOptions};
use crate::source::discovery::HttpClient;
use crate::source::{self, Blobs, Prepared, Source};
use crate::store::{now_ns, ImageId, Paths, Store};
use crate::trust::{Detached, Evidence, Needs, Subject, Transport, Trust, Verification};
use futures_util::{StreamExt, TryStreamExt};
use rustix::fs::FlockOperation;
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Layers fetched at once (`RKT_FETCH_JOBS` overrides, for measurements).
fn parallel_layers() -> usize {
    std::env::var("RKT_FETCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3)
}

/// rkt's `--pull-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Use the store when the image is there, else fetch (default of run/prepare).
    #[default]
    New,
    /// Always ask the remote (default of fetch); layers already stored are not downloaded.
    Update,
    /// Store only.
    Never,
}

impl FromStr for PullPolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "new" => Ok(PullPolicy::New),
            "update" => Ok(PullPolicy::Update),
            "never" => Ok(PullPolicy::Never),
            other => Err(Error::Invalid {
                what: "pull policy".into(),
                reason: format!("{other:?} is not one of new, update, never"),
            }),
        }
    }
}

/// How to fetch.
#[derive(Clone, Default)]
pub struct FetchOptions {
    /// When to contact the remote.
    pub pull_policy: PullPolicy,
    /// `--insecure-options=image`: no signature verification.
    pub insecure_image: bool,
    /// `--insecure-options=tls`.
    pub insecure_tls: bool,
    /// `--insecure-options=http`.
    pub allow_http: bool,
    /// rkt config dirs, lowest precedence first (system, local, user).
    pub config_dirs: Vec<PathBuf>,
    /// Where layer downloads report their progress (none: nowhere).
    pub progress: Option<std::sync::Arc<dyn crate::progress::Progress>>,
    /// Credentials for one registry host that win over the configured ones (see
    /// [`crate::registry::RegistryOptions::credentials`]).
    pub credentials: Option<(String, crate::config::Credentials)>,
    /// rkt's `--signature=FILE`: the detached signature of an ACI (default: `IMAGE.asc`).
    pub signature: Option<PathBuf>,
    /// rkt's `--trust-keys-from-https`: trust the keys an appc name's discovery serves over
    /// https for that name, stored in the local config root (`config_dirs[1]`).
    pub trust_keys_from_https: bool,
}

impl std::fmt::Debug for FetchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchOptions")
            .field("pull_policy", &self.pull_policy)
            .field("insecure_image", &self.insecure_image)
            .field("insecure_tls", &self.insecure_tls)
            .field("allow_http", &self.allow_http)
            .field("config_dirs", &self.config_dirs)
            .field("progress", &self.progress.is_some())
            .field("credentials", &self.credentials)
            .field("signature", &self.signature)
            .field("trust_keys_from_https", &self.trust_keys_from_https)
            .finish()
    }
}

/// The signature rules of this fetch: none with `--insecure-options=image`.
fn trust_for(opts: &FetchOptions) -> Result<Option<Trust>> {
    if opts.insecure_image {
        return Ok(None);
    }
    Trust::load(&opts.config_dirs).map(Some)
}

/// The signature-policy stage of the pipeline: the policy decides about `subject` from the
/// signatures `evidence` finds (only those its requirements look at). Runs before anything of
/// the image is committed.
fn verify(
    trust: Option<&Trust>,
    subject: Subject,
    evidence: impl FnOnce(&Subject, Needs) -> Result<Evidence>,
) -> Result<Verification> {
    let Some(trust) = trust else {
        return Ok(Verification::Insecure);
    };
    let needs = trust.needs(&subject);
    let ev = evidence(&subject, needs)?;
    let v = trust.check(&subject, &ev)?;
    tracing::debug!(image = %subject.name, verification = %v.as_text(), "signature policy satisfied");
    Ok(v)
}

/// An image from a local transport: there is no signature to find, so only the policy's
/// `insecureAcceptAnything` (or `--insecure-options=image`) lets it in.
fn verify_local(opts: &FetchOptions, transport: Transport, path: &Path) -> Result<Verification> {
    let subject = Subject {
        transport,
        name: path.display().to_string(),
        manifest_digest: None,
    };
    verify(trust_for(opts)?.as_ref(), subject, |_, _| {
        Ok(Evidence::default())
    })
}

/// The detached signature of an ACI file: `--signature`, else `FILE.asc` next to it.
fn aci_signature(path: &Path, opts: &FetchOptions) -> Evidence {
    let sig = opts.signature.clone().unwrap_or_else(|| {
        let mut s = path.as_os_str().to_owned();
        s.push(".asc");
        PathBuf::from(s)
    });
    match crate::file::read_capped(&sig, MAX_SIGNATURE)
        .map_err(|e| format!("{}: {e}", sig.display()))
    {
        Ok(signature) => Evidence {
            detached: Some(Detached {
                data: path.to_path_buf(),
                signature,
            }),
            ..Evidence::default()
        },
        Err(e) => Evidence {
            detached_missing: Some(format!("no signature: {e}")),
            ..Evidence::default()
        },
    }
}

/// Largest detached signature (or discovered key) read.
const MAX_SIGNATURE: u64 = 1 << 20;
/// Largest ACI downloaded.
const MAX_ACI: u64 = 16 << 30;

impl Store {
    /// Fetch an image according to `opts.pull_policy` and return its id.
    pub fn fetch(&self, image: &str, opts: &FetchOptions) -> Result<ImageId> {
        let _span = tracing::debug_span!("fetch", image).entered();
        let src = source::classify(image)?;
        let found = |s: &str| -> Result<ImageId> {
            match self.lookup(s)? {
                Some(id) => {
                    self.index.borrow().touch(&id, now_ns())?;
                    tracing::debug!("using image from local store for image name {s}");
                    Ok(ImageId(id))
                }
                None => Err(Error::NotInStore(s.to_string())),
            }
        };
        match src {
            Source::Id(s) => match self.lookup(&s)? {
                Some(id) => Ok(ImageId(id)),
                None => Err(Error::NotFound(s)),
            },
            Source::Name(s) => found(&s),
            Source::Registry(r) => {
                let name = r.to_string();
                if opts.pull_policy != PullPolicy::Update {
                    match found(&name) {
                        Err(Error::NotInStore(_)) if opts.pull_policy == PullPolicy::New => {}
                        other => return other,
                    }
                }
                self.fetch_registry(&r, opts)
            }
            Source::OciLayout { path, tag } => {
                let v = verify_local(opts, Transport::Oci, &path)?;
                let name = match &tag {
                    Some(t) => format!("oci:{}:{t}", path.display()),
                    None => format!("oci:{}", path.display()),
                };
                let p = source::oci::prepare(&path, tag.as_deref(), name)?;
                self.import(p, opts, None, &v)
            }
            Source::OciArchive { path, tag } => {
                let v = verify_local(opts, Transport::OciArchive, &path)?;
                let name = match &tag {
                    Some(t) => format!("oci-archive:{}:{t}", path.display()),
                    None => format!("oci-archive:{}", path.display()),
                };
                let p = source::archive::prepare_oci(&self.paths, &path, tag.as_deref(), name)?;
                self.import(p, opts, None, &v)
            }
            Source::DockerArchive { path } => {
                let v = verify_local(opts, Transport::DockerArchive, &path)?;
                let p = source::archive::prepare_docker(&self.paths, &path)?;
                self.import(p, opts, None, &v)
            }
            Source::AciUrl(url) => {
                let sig = format!("{url}.asc");
                let http = HttpClient::new(&opts.config_dirs, opts.insecure_tls, opts.allow_http);
                self.fetch_aci_url(&url, &sig, &http, &Self::runtime()?, opts)
            }
            Source::Appc { name, labels } => {
                let http = HttpClient::new(&opts.config_dirs, opts.insecure_tls, opts.allow_http);
                // one runtime for discovery, the keys and the downloads
                let rt = Self::runtime()?;
                let d = rt.block_on(source::discovery::discover(&name, &labels, &http))?;
                tracing::debug!(aci = %d.aci, signature = %d.signature, "appc discovery");
                if opts.trust_keys_from_https && !opts.insecure_image {
                    self.trust_discovered_keys(&name, &d.pubkeys, &http, &rt, opts)?;
                }
                self.fetch_aci_url(&d.aci, &d.signature, &http, &rt, opts)
            }
            Source::Aci(path) => {
                tracing::debug!("using image from file {}", path.display());
                self.import_aci(&path, opts, || aci_signature(&path, opts))
            }
        }
    }

    /// Resolve an image to an id with pull-policy semantics (`new`: the store first).
    pub fn resolve(&self, image: &str, opts: &FetchOptions) -> Result<ImageId> {
        self.fetch(image, opts)
    }

    fn runtime() -> Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("starting the async runtime: {e}")))
    }

    fn fetch_registry(
        &self,
        r: &crate::reference::Reference,
        opts: &FetchOptions,
    ) -> Result<ImageId> {
        tracing::debug!("remote fetching from URL \"docker://{r}\"");
        let registry = Registry::new(RegistryOptions {
            insecure_skip_tls_verify: opts.insecure_tls,
            allow_http: opts.allow_http,
            config_dirs: opts.config_dirs.clone(),
            platform: None,
            credentials: opts.credentials.clone(),
        })?;
        let rt = Self::runtime()?;
        let trust = trust_for(opts)?;
        let mut subject = Subject {
            transport: Transport::Docker,
            name: r.to_string(),
            manifest_digest: None,
        };
        if let Some(t) = &trust {
            // what no signature could satisfy is refused before the registry is asked
            t.precheck(&subject)?;
        }
        let prepared = rt.block_on(source::registry::prepare(&registry, r))?;
        subject.manifest_digest = Some(prepared.manifest_digest.clone());
        let v = verify(trust.as_ref(), subject, |subject, needs| {
            let digest = &prepared.manifest_digest;
            let mut ev = Evidence::default();
            if needs.gpg {
                if let Some(base) = crate::config::lookaside_for(&opts.config_dirs, r)
                    .map_err(|e| Error::Policy(e.to_string()))?
                {
                    let http =
                        HttpClient::new(&opts.config_dirs, opts.insecure_tls, opts.allow_http);
                    ev.simple = rt.block_on(source::signatures::lookaside_signatures(
                        &base, r, digest, &http,
                    ))?;
                    ev.simple_origin = Some(base);
                }
            }
            if needs.cosign {
                ev.cosign =
                    rt.block_on(source::signatures::cosign_signatures(&registry, r, digest))?;
            }
            tracing::debug!(image = %subject.name, simple = ev.simple.len(), cosign = ev.cosign.len(), "signatures found");
            Ok(ev)
        })?;
        self.import(prepared, opts, Some(&rt), &v)
    }

    /// An ACI over http(s): the file and (unless `--insecure-options=image`) its signature
    /// are downloaded under `cas/tmp`, then imported as a file.
    fn fetch_aci_url(
        &self,
        url: &str,
        sig_url: &str,
        http: &HttpClient,
        rt: &tokio::runtime::Runtime,
        opts: &FetchOptions,
    ) -> Result<ImageId> {
        let file = self.paths.tmp_name("aci-download");
        let _guard = TmpGuard(vec![file.clone()]);
        rt.block_on(source::discovery::download(url, &file, MAX_ACI, http))?;
        let signature = if opts.insecure_image {
            None
        } else {
            rt.block_on(http.get_bytes(sig_url, MAX_SIGNATURE))?
        };
        self.import_aci(&file, opts, || match signature {
            Some(signature) => Evidence {
                detached: Some(Detached {
                    data: file.clone(),
                    signature,
                }),
                ..Evidence::default()
            },
            None => Evidence {
                detached_missing: Some(format!("no signature at {sig_url}")),
                ..Evidence::default()
            },
        })
    }

    /// rkt's `--trust-keys-from-https`: the keys an appc name's discovery names, fetched over
    /// https only, are trusted for the name (trust on first use; `rkt trust` reviews them).
    fn trust_discovered_keys(
        &self,
        name: &str,
        urls: &[String],
        http: &HttpClient,
        rt: &tokio::runtime::Runtime,
        opts: &FetchOptions,
    ) -> Result<()> {
        let Some(local) = opts.config_dirs.get(1) else {
            return Ok(());
        };
        let store = crate::trust::keys::KeyStore::new(opts.config_dirs.clone(), local.clone());
        for url in urls.iter().filter(|u| u.starts_with("https://")) {
            if let Some(bytes) = rt.block_on(http.get_bytes(url, MAX_SIGNATURE))? {
                for k in store.add(&crate::trust::keys::KeyScope::Prefix(name.into()), &bytes)? {
                    tracing::warn!(
                        "trusting key {} for prefix {name:?} from {url} (--trust-keys-from-https)",
                        k.key.fingerprint
                    );
                }
            }
        }
        Ok(())
    }

    /// An ACI file, its detached signature checked once its manifest names it.
    fn import_aci(
        &self,
        path: &Path,
        opts: &FetchOptions,
        signature: impl FnOnce() -> Evidence,
    ) -> Result<ImageId> {
        source::aci::import(self, path, |name| {
            let subject = Subject {
                transport: Transport::Appc,
                name: name.to_string(),
                manifest_digest: None,
            };
            verify(trust_for(opts)?.as_ref(), subject, |_, needs| {
                Ok(if needs.gpg {
                    signature()
                } else {
                    Evidence::default()
                })
            })
        })
    }

    /// Commit a prepared image: missing layers through the pipeline, then blobs, then the index.
    pub(crate) fn import(
        &self,
        p: Prepared,
        opts: &FetchOptions,
        rt: Option<&tokio::runtime::Runtime>,
        verification: &Verification,
    ) -> Result<ImageId> {
        let progress = opts.progress.clone();
        let id = p.manifest_digest.clone();
        // Layers to fetch: each distinct diff id not already extracted.
        let mut seen = HashSet::new();
        let mut todo: Vec<(Descriptor, String)> = Vec::new();
        for (desc, diff) in p.layers.iter().zip(&p.diff_ids) {
            if !seen.insert(diff.clone()) {
                continue;
            }
            if self.paths.layer(diff)?.is_dir() && self.paths.blob(&desc.digest)?.is_file() {
                tracing::debug!(layer = %diff, "layer already stored");
                continue;
            }
            todo.push((desc.clone(), diff.clone()));
        }
        if !todo.is_empty() {
            let own;
            let rt = match rt {
                Some(rt) => rt,
                None => {
                    own = Self::runtime()?;
                    &own
                }
            };
            let blobs = std::sync::Arc::new(p.blobs);
            let paths = self.paths.clone();
            let handle = rt.handle().clone();
            rt.block_on(async {
                futures_util::stream::iter(todo.into_iter().map(|(desc, diff)| {
                    let paths = paths.clone();
                    let blobs = blobs.clone();
                    let handle = handle.clone();
                    let progress = progress.clone();
                    async move {
                        let reader = crate::progress::wrap(
                            progress.as_ref(),
                            &desc.digest,
                            desc.size,
                            open_blob(&handle, &blobs, &desc)?,
                        );
                        tokio::task::spawn_blocking(move || layer_job(&paths, &desc, &diff, reader))
                            .await
                            .map_err(|e| Error::Internal(format!("layer task: {e}")))?
                    }
                }))
                .buffer_unordered(parallel_layers())
                .try_collect::<Vec<LayerRow>>()
                .await
            })?;
        }
        // Manifest and config blobs (verified when prepared).
        write_blob(&self.paths, &p.manifest_digest, &p.manifest_bytes)?;
        write_blob(&self.paths, &p.config_digest, &p.config_bytes)?;
        let layers: Vec<LayerRow> = p
            .layers
            .iter()
            .zip(&p.diff_ids)
            .map(|(d, diff)| LayerRow {
                diff_id: diff.clone(),
                blob_digest: d.digest.clone(),
                media_type: d.media_type.clone(),
                size: d.size,
            })
            .collect();
        let mut blobs: Vec<BlobRow> = p
            .layers
            .iter()
            .map(|d| BlobRow {
                digest: d.digest.clone(),
                size: d.size,
                media_type: d.media_type.clone(),
            })
            .collect();
        blobs.push(BlobRow {
            digest: p.manifest_digest.clone(),
            size: p.manifest_bytes.len() as u64,
            media_type: p.manifest_media_type.clone(),
        });
        blobs.push(BlobRow {
            digest: p.config_digest.clone(),
            size: p.config_bytes.len() as u64,
            media_type: OCI_CONFIG.into(),
        });
        let size = blobs.iter().map(|b| b.size).sum();
        let now = now_ns();
        let row = ImageRow {
            id: id.clone(),
            name: p.name.clone(),
            kind: "oci".into(),
            manifest_digest: p.manifest_digest.clone(),
            manifest_media_type: p.manifest_media_type.clone(),
            config_digest: p.config_digest.clone(),
            size,
            import_time: now,
            last_used: now,
            verification: verification.as_text(),
        };
        self.insert_locked(&row, &layers, &blobs)?;
        tracing::debug!(%id, source = p.source_kind, "image stored");
        Ok(ImageId(id))
    }

    /// Write index rows holding the index lock (`cas/index.lock`) exclusively.
    pub(crate) fn insert_locked(
        &self,
        row: &ImageRow,
        layers: &[LayerRow],
        blobs: &[BlobRow],
    ) -> Result<()> {
        let lock_path = self.paths.cas.join("index.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("opening lock", &lock_path))?;
        rustix::fs::flock(&f, FlockOperation::LockExclusive).map_err(|e| Error::Io {
            what: "locking",
            path: lock_path.clone(),
            source: e.into(),
        })?;
        // The row goes in only if every layer is really there.
        for l in layers {
            if !self.paths.layer(&l.diff_id)?.is_dir() {
                return Err(Error::Layer {
                    digest: l.blob_digest.clone(),
                    reason: "layer vanished before the image was recorded".into(),
                });
            }
        }
        self.index.borrow_mut().insert_image(row, layers, blobs)
    }
}

fn layer_job(
    paths: &Paths,
    desc: &Descriptor,
    diff: &str,
    reader: Box<dyn Read + Send>,
) -> Result<LayerRow> {
    let _span = tracing::debug_span!("layer", digest = %desc.digest).entered();
    fetch_layer(paths, desc, diff, reader)
}

fn open_blob(
    handle: &tokio::runtime::Handle,
    blobs: &Blobs,
    desc: &Descriptor,
) -> Result<Box<dyn Read + Send>> {
    match blobs {
        Blobs::Dir(dir) => {
            let p = dir.join(crate::digest::sha256_hex(&desc.digest)?);
            let f = std::fs::File::open(&p).map_err(io_err("opening blob", &p))?;
            Ok(Box::new(f))
        }
        Blobs::Files(map) => {
            let p = map
                .get(&desc.digest)
                .ok_or_else(|| Error::Internal(format!("no file for blob {}", desc.digest)))?;
            let f = std::fs::File::open(p).map_err(io_err("opening blob", p))?;
            Ok(Box::new(f))
        }
        Blobs::Registry(rb) => Ok(source::registry::reader(handle, rb, &desc.digest)),
    }
}
