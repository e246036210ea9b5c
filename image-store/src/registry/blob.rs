//! Streaming blobs, resuming with HTTP Range after a dropped connection.

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use oci_client::client::BlobResponse;

use super::transport::backoff;
use super::{Registry, RegistryError, ResolvedImage};
use crate::config::Endpoint;

/// Resumptions of one blob download after mid-stream failures.
const MAX_RESUMES: u32 = 8;

type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

struct State {
    reg: Registry,
    image: String,
    repository: String,
    ep: Endpoint,
    digest: String,
    /// Absolute offset of the next byte to deliver.
    pos: u64,
    inner: ByteStream,
    resumes: u32,
    done: bool,
}

impl Registry {
    /// Stream a blob from `offset` (HTTP Range when offset > 0, so a broken download can
    /// resume), from the endpoint (mirror or registry) that [`Registry::resolve`] used. A
    /// connection dropped mid-stream is resumed from the last byte delivered (bounded). The
    /// bytes are not verified here: the caller hashes them.
    pub async fn blob_stream(
        &self,
        img: &ResolvedImage,
        digest: &str,
        offset: u64,
    ) -> Result<BoxStream<'static, Result<Bytes, RegistryError>>, RegistryError> {
        let image = img.reference.to_string();
        crate::reference::validate_digest(digest).map_err(|detail| RegistryError::Invalid {
            image: image.clone(),
            what: "blob digest".into(),
            detail,
        })?;
        let ep = self
            .endpoints(&img.reference)
            .into_iter()
            .find(|e| e.host == img.endpoint)
            .unwrap_or_else(|| Endpoint {
                host: img.endpoint.clone(),
                scheme: None,
            });
        let repository = img.reference.repository.clone();
        let inner = self
            .open_blob(&image, &repository, &ep, digest, offset)
            .await?;
        let state = State {
            reg: self.clone(),
            image,
            repository,
            ep,
            digest: digest.to_string(),
            pos: offset,
            inner,
            resumes: 0,
            done: false,
        };
        Ok(stream::unfold(state, step).boxed())
    }

    async fn open_blob(
        &self,
        image: &str,
        repository: &str,
        ep: &Endpoint,
        digest: &str,
        offset: u64,
    ) -> Result<ByteStream, RegistryError> {
        let oref = oci_client::Reference::with_digest(
            ep.host.clone(),
            repository.to_string(),
            digest.to_string(),
        );
        let res = self
            .inner
            .transport
            .call(image, ep, |c, auth| {
                let oref = oref.clone();
                async move {
                    c.store_auth_if_needed(oref.resolve_registry(), &auth).await;
                    // Always ask for a range (also from 0): a 206 answer is not re-hashed by
                    // oci-client, the caller hashes anyway.
                    c.pull_blob_stream_partial(
                        &oref,
                        oref.digest().unwrap_or_default(),
                        offset,
                        None,
                    )
                    .await
                }
            })
            .await
            .map_err(|e| e.of_blob(digest))?;
        Ok(match res {
            BlobResponse::Partial(s) => s.stream,
            // The server ignored the range: drop what the caller already has.
            BlobResponse::Full(s) if offset > 0 => skip_bytes(s.stream, offset),
            BlobResponse::Full(s) => s.stream,
        })
    }
}

fn skip_bytes(s: ByteStream, n: u64) -> ByteStream {
    let mut remaining = n;
    s.try_filter_map(move |b| {
        let out = if remaining >= b.len() as u64 {
            remaining -= b.len() as u64;
            None
        } else {
            let b = b.slice(remaining as usize..);
            remaining = 0;
            Some(b)
        };
        futures_util::future::ready(Ok(out))
    })
    .boxed()
}

async fn step(mut st: State) -> Option<(Result<Bytes, RegistryError>, State)> {
    if st.done {
        return None;
    }
    loop {
        match st.inner.next().await {
            Some(Ok(b)) => {
                st.pos += b.len() as u64;
                return Some((Ok(b), st));
            }
            None => return None,
            Some(Err(e)) => {
                let detail = super::error::chain(&e);
                if st.resumes >= MAX_RESUMES {
                    st.done = true;
                    let err = RegistryError::BlobStream {
                        image: st.image.clone(),
                        endpoint: st.ep.host.clone(),
                        digest: st.digest.clone(),
                        detail: format!("{detail} (gave up after {MAX_RESUMES} resumptions)"),
                    };
                    return Some((Err(err), st));
                }
                st.resumes += 1;
                tracing::warn!(digest = %st.digest, offset = st.pos, error = %detail, "blob download broke, resuming");
                tokio::time::sleep(backoff(st.resumes.min(4))).await;
                match st
                    .reg
                    .open_blob(&st.image, &st.repository, &st.ep, &st.digest, st.pos)
                    .await
                {
                    Ok(s) => st.inner = s,
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn skip_bytes_across_chunks() {
        let chunks = [&b"abc"[..], b"defg", b"h"];
        for (n, want) in [(0, "abcdefgh"), (3, "defgh"), (5, "fgh"), (8, ""), (20, "")] {
            let s: ByteStream = stream::iter(chunks.map(|c| Ok(Bytes::from_static(c)))).boxed();
            let got: Vec<Bytes> = skip_bytes(s, n).try_collect().await.unwrap();
            assert_eq!(got.concat(), want.as_bytes(), "skip {n}");
        }
    }
}
