//! `rkt trust`: the OpenPGP keys trusted to sign images, kept in the runtime's config roots
//! (`trustedkeys/root.d/<fingerprint>`, `trustedkeys/prefix.d/<prefix>/<fingerprint>`; see
//! `image_store::trust::keys`). Keys are written to the local config root; the system root's
//! keys are read, and masked by the local root when removed.

use std::path::PathBuf;

use image_store::trust::keys::{normalize_fingerprint, KeyStore};
pub use image_store::trust::keys::{KeyScope, PublicKey, TrustedKey};

use crate::{Error, Result};

fn store_err(e: image_store::Error) -> Error {
    Error::Image(e.to_string())
}

/// The scope of `--prefix` (validated) or `--root`.
pub fn scope(prefix: Option<&str>) -> Result<KeyScope> {
    match prefix {
        Some(p) => KeyScope::prefix(p).map_err(|e| Error::usage(e.to_string())),
        None => Ok(KeyScope::Root),
    }
}

/// A fingerprint as typed (any case, spaces) in the store's form, or a usage error.
pub fn fingerprint(fp: &str) -> Result<String> {
    normalize_fingerprint(fp).map_err(|e| Error::usage(e.to_string()))
}

impl crate::Runtime {
    fn key_store(&self) -> KeyStore {
        let dirs = self.dirs();
        KeyStore::new(dirs.config_roots(), dirs.local_config.clone())
    }

    /// The keys of `bytes` (a key file or URL's content), for review before they are trusted.
    pub fn trust_inspect(&self, bytes: &[u8]) -> Result<Vec<PublicKey>> {
        KeyStore::inspect(bytes).map_err(store_err)
    }

    /// Trust every key of `bytes` for `scope` (refused whole if one is invalid, expired or
    /// revoked); returns where each was stored.
    pub fn trust_add(&self, scope: &KeyScope, bytes: &[u8]) -> Result<Vec<TrustedKey>> {
        self.key_store().add(scope, bytes).map_err(store_err)
    }

    /// A key file from a URL, for review: https (CAs from `certs.d`); plain http only with
    /// `--insecure-options=pubkey`.
    pub fn trust_fetch_key(&self, url: &str) -> Result<Vec<u8>> {
        let insecure = self.insecure();
        if url.starts_with("http://") && !insecure.pubkey {
            return Err(Error::usage(format!(
                "refusing to fetch key {url:?} over plain http (try --insecure-options=pubkey)"
            )));
        }
        image_store::trust::fetch_key(
            url,
            &self.dirs().config_roots(),
            insecure.tls,
            insecure.pubkey,
        )
        .map_err(store_err)
    }

    /// The key URLs appc discovery names for `prefix` (`ac-discovery-pubkeys`).
    pub fn trust_discover_keys(&self, prefix: &str) -> Result<Vec<String>> {
        let insecure = self.insecure();
        image_store::trust::discover_keys(
            prefix,
            &self.dirs().config_roots(),
            insecure.tls,
            insecure.pubkey,
        )
        .map_err(store_err)
    }

    /// Every trusted key, root keys first.
    pub fn trust_list(&self) -> Result<Vec<TrustedKey>> {
        self.key_store().list().map_err(store_err)
    }

    /// The keys trusted for the image `name` (root keys and those of covering prefixes).
    pub fn trust_keys_for(&self, name: &str) -> Result<Vec<TrustedKey>> {
        self.key_store().keys_for(name).map_err(store_err)
    }

    /// Stop trusting `fingerprint` (for `scope`, or everywhere); returns the files removed or
    /// the masks written.
    pub fn trust_remove(
        &self,
        fingerprint: &str,
        scope: Option<&KeyScope>,
    ) -> Result<Vec<PathBuf>> {
        self.key_store()
            .remove(fingerprint, scope)
            .map_err(store_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dirs, Runtime};

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../image-store/src/trust/testdata")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn facade_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = Dirs {
            data: tmp.path().join("data"),
            system_config: tmp.path().join("sys"),
            local_config: tmp.path().join("local"),
            user_config: None,
        };
        let rt = Runtime::open(dirs).unwrap();
        let key = fixture("ed25519.pub.asc");
        let seen = rt.trust_inspect(&key).unwrap();
        assert_eq!(
            seen[0].fingerprint,
            "6f391f83a1d1f6d3d6454811c95743691db21c59"
        );
        let s = scope(Some("example.com/app")).unwrap();
        let added = rt.trust_add(&s, &key).unwrap();
        assert!(added[0]
            .path
            .starts_with(tmp.path().join("local/trustedkeys/prefix.d")));
        assert_eq!(rt.trust_list().unwrap().len(), 1);
        assert_eq!(rt.trust_keys_for("example.com/app:v1").unwrap().len(), 1);
        assert!(rt.trust_keys_for("example.com/apple").unwrap().is_empty());
        let fp = fingerprint(&seen[0].fingerprint.to_uppercase()).unwrap();
        assert_eq!(rt.trust_remove(&fp, Some(&s)).unwrap().len(), 1);
        assert!(rt.trust_list().unwrap().is_empty());
        assert!(matches!(scope(Some("../x")), Err(Error::Usage(_))));
        assert!(matches!(fingerprint("zz"), Err(Error::Usage(_))));
        assert!(matches!(
            rt.trust_add(&KeyScope::Root, b"junk"),
            Err(Error::Image(_))
        ));
    }
}
