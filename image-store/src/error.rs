//! The one error type of the image store.

use std::path::PathBuf;

/// Everything that can go wrong in the image store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed on a path.
    #[error("{what} {path:?}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The sqlite index failed.
    #[error("image index: {0}")]
    Index(#[from] rusqlite::Error),
    /// The index was written by a newer rkt.
    #[error("image index schema version {found} is newer than supported version {supported}")]
    IndexVersion {
        /// Version found on disk.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// A blob did not hash to its descriptor's digest or size.
    #[error("blob {digest}: {reason}")]
    BlobMismatch {
        /// The expected digest.
        digest: String,
        /// What did not match.
        reason: String,
    },
    /// A layer failed extraction or verification.
    #[error("layer {digest}: {reason}")]
    Layer {
        /// The layer's blob digest.
        digest: String,
        /// What went wrong.
        reason: String,
    },
    /// A tar entry is unsafe or malformed.
    #[error("unsafe tar entry {path:?}: {reason}")]
    UnsafeEntry {
        /// The entry's path as found in the archive.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// Bad JSON in a manifest, config, index or archive.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which document.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An image reference or name the store cannot make sense of.
    #[error("invalid image reference {0:?}")]
    BadReference(String),
    /// No image matches.
    #[error("image {0:?} not found in the store")]
    NotFound(String),
    /// A prefix matches several images.
    #[error("image id prefix {0:?} is ambiguous")]
    Ambiguous(String),
    /// Pull policy `never` and nothing in the store.
    #[error("unable to fetch image from {0:?}: either image was not found in the store or store was disabled and fetching from remote yielded nothing or it was disabled")]
    NotInStore(String),
    /// The signature policy refuses the image.
    #[error("{0}")]
    Untrusted(Box<crate::trust::Untrusted>),
    /// The signature configuration (policy.json, trusted keys) is unusable.
    #[error("signature policy: {0}")]
    Policy(String),
    /// Unsupported feature of an image.
    #[error("unsupported {0}")]
    Unsupported(String),
    /// An http(s) or file download (lookaside signatures, appc discovery, ACI URLs) failed.
    #[error("fetching {url}: {reason}")]
    Fetch {
        /// The URL (or file) asked for.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The registry client failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// A worker thread or task died.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Build an `Error::Io` from a path and a description.
pub(crate) fn io_err(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { what, path, source }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
