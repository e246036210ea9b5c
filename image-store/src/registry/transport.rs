//! Per-endpoint oci-client instances, http/https choice, retries with backoff.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};

use super::error::{classify, Failure, RegistryError};
use super::RegistryOptions;
use crate::config::{self, AuthConfig, Credentials, Endpoint, Scheme};

/// Attempts per request on connection errors and 5xx (first try included).
pub(crate) const MAX_TRIES: u32 = 4;
const BACKOFF_START: Duration = Duration::from_millis(200);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) struct Transport {
    pub opts: RegistryOptions,
    pub auth: AuthConfig,
    clients: Mutex<HashMap<(String, Scheme), Client>>,
    /// The scheme that worked for an endpoint without an explicit one.
    learned: Mutex<HashMap<String, Scheme>>,
}

/// Backoff before try number `n` (1-based retries): 200ms, 400ms, 800ms, …
pub(crate) fn backoff(n: u32) -> Duration {
    BACKOFF_START * 2u32.saturating_pow(n.saturating_sub(1)).min(16)
}

impl Transport {
    pub fn new(opts: RegistryOptions, auth: AuthConfig) -> Transport {
        Transport {
            opts,
            auth,
            clients: Mutex::new(HashMap::new()),
            learned: Mutex::new(HashMap::new()),
        }
    }

    /// Where the user should put a CA for `host`: the highest-precedence root's certs.d.
    pub fn ca_hint(&self, host: &str) -> PathBuf {
        let root = self
            .opts
            .config_dirs
            .last()
            .cloned()
            .unwrap_or_else(|| PathBuf::from("/etc/rkt"));
        config::certs_dir(&root, host).join("ca.crt")
    }

    pub fn registry_auth(&self, host: &str) -> RegistryAuth {
        match self.auth.get(host).map(|e| &e.credentials) {
            Some(Credentials::Basic { user, password }) => {
                RegistryAuth::Basic(user.clone(), password.clone())
            }
            Some(Credentials::Bearer { token }) => RegistryAuth::Bearer(token.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    fn client(&self, host: &str, scheme: Scheme) -> Result<Client, RegistryError> {
        let key = (host.to_string(), scheme);
        if let Some(c) = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let mut cfg = ClientConfig {
            protocol: match scheme {
                Scheme::Https => ClientProtocol::Https,
                Scheme::Http => ClientProtocol::Http,
            },
            accept_invalid_certificates: self.opts.insecure_skip_tls_verify,
            platform_resolver: None,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            user_agent: concat!("rkt/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        if scheme == Scheme::Https {
            for path in config::ca_files(&self.opts.config_dirs, host)? {
                let text = std::fs::read_to_string(&path).map_err(|e| RegistryError::Client {
                    endpoint: host.to_string(),
                    detail: format!("cannot read CA file {path:?}: {e}"),
                })?;
                let certs = config::split_pem_certs(&text);
                if certs.is_empty() {
                    return Err(RegistryError::Client {
                        endpoint: host.to_string(),
                        detail: format!("CA file {path:?} holds no PEM certificate"),
                    });
                }
                cfg.extra_root_certificates
                    .extend(certs.into_iter().map(|c| Certificate {
                        encoding: CertificateEncoding::Pem,
                        data: c.into_bytes(),
                    }));
            }
        }
        let client = Client::try_from(cfg).map_err(|e| RegistryError::Client {
            endpoint: host.to_string(),
            detail: super::error::chain(&e),
        })?;
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, client.clone());
        Ok(client)
    }

    fn learned(&self, host: &str) -> Option<Scheme> {
        self.learned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(host)
            .copied()
    }

    fn learn(&self, host: &str, scheme: Scheme) {
        self.learned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(host.to_string(), scheme);
    }

    /// Run `op` against an endpoint: https first (unless the endpoint forces a scheme or one
    /// was learned), with retries; plain http only with `allow_http` (or an explicit
    /// `http://` endpoint). Errors are named for `image`.
    pub async fn call<T, F, Fut>(
        &self,
        image: &str,
        ep: &Endpoint,
        op: F,
    ) -> Result<T, RegistryError>
    where
        F: Fn(Client, RegistryAuth) -> Fut,
        Fut: Future<Output = Result<T, oci_client::errors::OciDistributionError>>,
    {
        let host = ep.host.as_str();
        let first = ep.scheme.or(self.learned(host)).unwrap_or(Scheme::Https);
        let auto = ep.scheme.is_none();
        let auth = self.registry_auth(host);

        let err = match self.with_retries(host, first, &auth, &op).await? {
            Ok(v) => {
                if auto {
                    self.learn(host, first);
                }
                return Ok(v);
            }
            Err(f) => f,
        };
        if !(auto && first == Scheme::Https && err.is_transport()) {
            return Err(err.into_error(image, host, self.ca_hint(host)));
        }
        // https did not come up at all: is this a plain http registry?
        if self.opts.allow_http {
            tracing::debug!(endpoint = host, error = ?err, "https failed, trying plain http");
            match self.with_retries(host, Scheme::Http, &auth, &op).await? {
                Ok(v) => {
                    self.learn(host, Scheme::Http);
                    Ok(v)
                }
                // Report the http answer if there was one, else the https failure.
                Err(f2) if !f2.is_transport() => {
                    Err(f2.into_error(image, host, self.ca_hint(host)))
                }
                Err(_) => Err(err.into_error(image, host, self.ca_hint(host))),
            }
        } else if self.speaks_http(host).await {
            Err(RegistryError::HttpNotAllowed {
                image: image.to_string(),
                endpoint: host.to_string(),
            })
        } else {
            Err(err.into_error(image, host, self.ca_hint(host)))
        }
    }

    async fn with_retries<T, F, Fut>(
        &self,
        host: &str,
        scheme: Scheme,
        auth: &RegistryAuth,
        op: &F,
    ) -> Result<Result<T, Failure>, RegistryError>
    where
        F: Fn(Client, RegistryAuth) -> Fut,
        Fut: Future<Output = Result<T, oci_client::errors::OciDistributionError>>,
    {
        let client = self.client(host, scheme)?;
        let mut tries = 0;
        loop {
            tries += 1;
            match op(client.clone(), auth.clone()).await {
                Ok(v) => return Ok(Ok(v)),
                Err(e) => {
                    let f = classify(&e);
                    if f.retryable() && tries < MAX_TRIES {
                        let wait = backoff(tries);
                        tracing::debug!(endpoint = host, ?scheme, try_ = tries, ?wait, error = ?f, "retrying");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Ok(Err(f));
                }
            }
        }
    }

    /// Whether `host` answers plain http on `/v2/` (any HTTP status counts).
    async fn speaks_http(&self, host: &str) -> bool {
        let Ok(client) = self.client(host, Scheme::Http) else {
            return false;
        };
        let probe = oci_client::Reference::with_tag(host.into(), "rkt-probe".into(), "x".into());
        let res = tokio::time::timeout(
            Duration::from_secs(5),
            client.auth(&probe, &RegistryAuth::Anonymous, RegistryOperation::Pull),
        )
        .await;
        match res {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => !classify(&e).is_transport(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(400));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert!(backoff(30) <= Duration::from_millis(3200));
    }
}
