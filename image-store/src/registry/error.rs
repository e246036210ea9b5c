//! Registry errors, and the classification of oci-client failures behind them.

use std::path::PathBuf;

use oci_client::errors::{OciDistributionError, OciErrorCode};

use crate::config::ConfigError;

/// Why a registry operation failed. Messages name the image (as asked) and the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("image \"{image}\" not found in registry {endpoint}")]
    NotFound { image: String, endpoint: String },
    #[error("blob {digest} of image \"{image}\" not found in registry {endpoint}")]
    BlobNotFound {
        image: String,
        endpoint: String,
        digest: String,
    },
    #[error("not authorized to pull image \"{image}\" from {endpoint} (401): configure credentials in auth.d or a docker config.json")]
    Unauthorized { image: String, endpoint: String },
    #[error("access to image \"{image}\" denied by registry {endpoint} (403)")]
    Forbidden { image: String, endpoint: String },
    #[error("registry {endpoint} speaks plain http only, refusing it for image \"{image}\" (try --insecure-options=http)")]
    HttpNotAllowed { image: String, endpoint: String },
    #[error("tls verification of registry {endpoint} failed for image \"{image}\": {detail} (put the registry's CA in {ca_hint:?} or try --insecure-options=tls)")]
    Tls {
        image: String,
        endpoint: String,
        detail: String,
        ca_hint: PathBuf,
    },
    #[error("cannot reach registry {endpoint} for image \"{image}\": {detail}")]
    Connection {
        image: String,
        endpoint: String,
        detail: String,
    },
    #[error("registry {endpoint} failed for image \"{image}\": {detail}")]
    Server {
        image: String,
        endpoint: String,
        status: Option<u16>,
        detail: String,
    },
    #[error("image \"{image}\" has a docker schema 1 manifest, which is not supported (push it again as docker schema 2 or OCI)")]
    Schema1 { image: String },
    #[error("image \"{image}\" has an unsupported {what} media type {media_type:?}")]
    UnsupportedMediaType {
        image: String,
        what: &'static str,
        media_type: String,
    },
    #[error("image \"{image}\" has no manifest for platform {platform} (available: {available})")]
    NoPlatform {
        image: String,
        platform: String,
        available: String,
    },
    #[error(
        "{what} of image \"{image}\" does not match its digest: expected {expected}, got {actual}"
    )]
    DigestMismatch {
        image: String,
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what} of image \"{image}\" has {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        image: String,
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("invalid {what} of image \"{image}\": {detail}")]
    Invalid {
        image: String,
        what: String,
        detail: String,
    },
    #[error(
        "{what} of image \"{image}\" is too large ({size} bytes, over the limit of {limit} bytes)"
    )]
    TooLarge {
        image: String,
        what: String,
        size: u64,
        limit: u64,
    },
    #[error("download of blob {digest} of image \"{image}\" from {endpoint} failed: {detail}")]
    BlobStream {
        image: String,
        endpoint: String,
        digest: String,
        detail: String,
    },
    #[error("registry client for {endpoint}: {detail}")]
    Client { endpoint: String, detail: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl RegistryError {
    /// 401/403/404 and content errors are final; connection and server trouble may pass.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RegistryError::Connection { .. }
                | RegistryError::Server { .. }
                | RegistryError::BlobStream { .. }
        )
    }
}

/// What an oci-client error means to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    NotFound,
    Unauthorized,
    Forbidden,
    /// Certificate verification failed.
    TlsVerify(String),
    /// The TLS session did not come up (e.g. the server speaks plain http).
    TlsHandshake(String),
    /// Could not connect / connection dropped / timed out.
    Connect(String),
    /// 5xx and 429.
    Server(Option<u16>, String),
    Digest(String, String),
    Other(String),
}

impl Failure {
    pub(crate) fn retryable(&self) -> bool {
        matches!(self, Failure::Connect(_) | Failure::Server(..))
    }

    /// No HTTP exchange happened at all: worth trying plain http (or a probe) instead.
    pub(crate) fn is_transport(&self) -> bool {
        matches!(self, Failure::Connect(_) | Failure::TlsHandshake(_))
    }

    /// Turn into the public error for an image at an endpoint.
    pub(crate) fn into_error(self, image: &str, endpoint: &str, ca_hint: PathBuf) -> RegistryError {
        let (image, endpoint) = (image.to_string(), endpoint.to_string());
        match self {
            Failure::NotFound => RegistryError::NotFound { image, endpoint },
            Failure::Unauthorized => RegistryError::Unauthorized { image, endpoint },
            Failure::Forbidden => RegistryError::Forbidden { image, endpoint },
            Failure::TlsVerify(detail) => RegistryError::Tls {
                image,
                endpoint,
                detail,
                ca_hint,
            },
            Failure::TlsHandshake(detail) | Failure::Connect(detail) => RegistryError::Connection {
                image,
                endpoint,
                detail,
            },
            Failure::Server(status, detail) => RegistryError::Server {
                image,
                endpoint,
                status,
                detail,
            },
            Failure::Digest(expected, actual) => RegistryError::DigestMismatch {
                image,
                what: "manifest".into(),
                expected,
                actual,
            },
            Failure::Other(detail) => RegistryError::Server {
                image,
                endpoint,
                status: None,
                detail,
            },
        }
    }
}

impl RegistryError {
    /// A "not found" from a blob request names the blob.
    pub(crate) fn of_blob(self, digest: &str) -> RegistryError {
        match self {
            RegistryError::NotFound { image, endpoint } => RegistryError::BlobNotFound {
                image,
                endpoint,
                digest: digest.to_string(),
            },
            e => e,
        }
    }
}

/// The error and all its sources, joined by ": ".
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Classify a transport-level error text (reqwest/hyper/rustls chain).
pub(crate) fn classify_transport(text: String, is_timeout: bool) -> Failure {
    let t = text.to_ascii_lowercase();
    if t.contains("certificate") || t.contains("unknownissuer") || t.contains("notvalidforname") {
        Failure::TlsVerify(text)
    } else if t.contains("corrupt message")
        || t.contains("invalidcontenttype")
        || t.contains("handshake")
        || t.contains("tls")
        || t.contains("ssl")
        || t.contains("peer is incompatible")
    {
        Failure::TlsHandshake(text)
    } else if is_timeout {
        Failure::Connect(format!("timed out: {text}"))
    } else {
        Failure::Connect(text)
    }
}

fn from_status(code: u16, detail: String) -> Failure {
    match code {
        401 => Failure::Unauthorized,
        403 => Failure::Forbidden,
        404 => Failure::NotFound,
        429 | 500..=599 => Failure::Server(Some(code), detail),
        _ => Failure::Other(format!("http status {code}: {detail}")),
    }
}

/// Map an oci-client error.
pub(crate) fn classify(e: &OciDistributionError) -> Failure {
    use OciDistributionError as E;
    match e {
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => Failure::Unauthorized,
        E::RegistryError { envelope, .. } => {
            let detail = envelope
                .errors
                .iter()
                .map(|x| format!("{:?}: {}", x.code, x.message))
                .collect::<Vec<_>>()
                .join("; ");
            match envelope.errors.first().map(|x| &x.code) {
                Some(
                    OciErrorCode::ManifestUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::NotFound
                    | OciErrorCode::BlobUnknown,
                ) => Failure::NotFound,
                Some(OciErrorCode::Unauthorized) => Failure::Unauthorized,
                Some(OciErrorCode::Denied) => Failure::Forbidden,
                Some(OciErrorCode::Toomanyrequests) => Failure::Server(Some(429), detail),
                _ => Failure::Other(detail),
            }
        }
        E::ServerError { code, message, .. } => {
            from_status(*code, message.chars().take(300).collect())
        }
        E::RequestError(re) => {
            if let Some(status) = re.status() {
                return from_status(status.as_u16(), chain(re));
            }
            classify_transport(chain(re), re.is_timeout())
        }
        E::IoError(io) => classify_transport(chain(io), false),
        E::DigestError(d) => match d {
            oci_client::errors::DigestError::VerificationError { expected, actual } => {
                Failure::Digest(expected.clone(), actual.clone())
            }
            other => Failure::Other(other.to_string()),
        },
        other => Failure::Other(chain(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_classes() {
        let c = |s: &str| classify_transport(s.to_string(), false);
        assert!(matches!(
            c("error sending request: client error (Connect): invalid peer certificate: UnknownIssuer"),
            Failure::TlsVerify(_)
        ));
        assert!(matches!(
            c("client error (Connect): received corrupt message of type InvalidContentType"),
            Failure::TlsHandshake(_)
        ));
        let refused =
            c("client error (Connect): tcp connect error: Connection refused (os error 111)");
        assert!(matches!(refused, Failure::Connect(_)));
        assert!(refused.retryable() && refused.is_transport());
        assert!(!Failure::NotFound.retryable());
        assert!(Failure::Server(Some(502), String::new()).retryable());
        assert_eq!(from_status(404, String::new()), Failure::NotFound);
        assert_eq!(from_status(403, String::new()), Failure::Forbidden);
    }

    #[test]
    fn messages_name_image_and_hints() {
        let e =
            Failure::NotFound.into_error("127.0.0.1:5000/bb:v2", "127.0.0.1:5000", PathBuf::new());
        assert_eq!(
            e.to_string(),
            "image \"127.0.0.1:5000/bb:v2\" not found in registry 127.0.0.1:5000"
        );
        let e = Failure::TlsVerify("UnknownIssuer".into()).into_error(
            "127.0.0.1:5443/bb:v2",
            "127.0.0.1:5443",
            PathBuf::from("/etc/rkt/certs.d/127.0.0.1:5443/ca.crt"),
        );
        let s = e.to_string();
        assert!(
            s.contains("/etc/rkt/certs.d/127.0.0.1:5443/ca.crt")
                && s.contains("--insecure-options=tls"),
            "{s}"
        );
    }
}
