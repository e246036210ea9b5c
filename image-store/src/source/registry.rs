//! Registry images: resolve through [`crate::registry::Registry`], then stream each layer blob
//! into the (blocking) layer pipeline through a bounded channel.

use super::{Blobs, Prepared};
use crate::digest::sha256_of;
use crate::error::{Error, Result};
use crate::manifest::Descriptor;
use crate::reference::Reference;
use crate::registry::{Registry, ResolvedImage};
use bytes::Bytes;
use futures_util::StreamExt;
use std::io::{self, Read};
use std::sync::Arc;

/// What the layer pipeline needs to stream blobs of one resolved image.
#[derive(Clone)]
pub(crate) struct RegistryBlobs {
    pub registry: Registry,
    pub resolved: Arc<ResolvedImage>,
}

/// Resolve `r` (manifest and config, verified) without touching layers.
pub(crate) async fn prepare(registry: &Registry, r: &Reference) -> Result<Prepared> {
    let resolved = registry.resolve(r).await?;
    let got = sha256_of(&resolved.manifest_bytes);
    if got != resolved.manifest_digest {
        return Err(Error::BlobMismatch {
            digest: resolved.manifest_digest.clone(),
            reason: format!("manifest digest mismatch: got {got}"),
        });
    }
    // Pulled by digest, the registry client checked the digest of what it fetched (an index
    // digest resolves to the host platform's manifest, so the ids may differ).
    let resolved = Arc::new(resolved);
    let config = resolved.config_bytes.clone();
    let blobs = Blobs::Registry(RegistryBlobs {
        registry: registry.clone(),
        resolved: resolved.clone(),
    });
    super::oci::from_manifest(
        r.to_string(),
        "docker",
        resolved.manifest_digest.clone(),
        resolved.manifest_bytes.clone(),
        |d: &Descriptor| {
            let got = sha256_of(&config);
            if got != d.digest || config.len() as u64 != d.size {
                return Err(Error::BlobMismatch {
                    digest: d.digest.clone(),
                    reason: format!("config digest mismatch: got {got}"),
                });
            }
            Ok(config)
        },
        blobs,
    )
}

/// A blocking reader fed by an async task streaming the blob.
pub(crate) fn reader(
    rt: &tokio::runtime::Handle,
    blobs: &RegistryBlobs,
    digest: &str,
) -> Box<dyn Read + Send> {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(64);
    let b = blobs.clone();
    let digest = digest.to_string();
    rt.spawn(async move {
        let mut stream = match b.registry.blob_stream(&b.resolved, &digest, 0).await {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                return;
            }
        };
        while let Some(item) = stream.next().await {
            let item = item.map_err(|e| io::Error::other(e.to_string()));
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                return;
            }
        }
    });
    Box::new(ChannelReader {
        rx,
        cur: Bytes::new(),
    })
}

struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}
