//! The narrow view stage0 has of the image store: resolve (fetching per the pull policy), read
//! an image's config and its extracted layer dirs, and pin images to pods so image GC keeps
//! them. The real implementation wraps `image_store::Store`; unit tests use a fake.

use std::path::PathBuf;

/// Boxed error of an image-store call; its message is shown to the user as is.
pub type ImageError = Box<dyn std::error::Error + Send + Sync>;

/// rkt's `--pull-policy` and how to resolve images (from the global `--insecure-options` and
/// the run flags): the image store's own fetch options.
pub use image_store::progress::{LayerProgress, Progress};
pub use image_store::{FetchOptions as ResolveOptions, PullPolicy};

/// An image's name and id as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMeta {
    /// `sha256:<hex>` (or `sha512-…` for ACIs).
    pub id: String,
    /// Normalised name (`registry/repo:tag`).
    pub name: String,
}

/// The parts of an image config stage0 maps into the pod manifest: the image store's plain type,
/// so the store adapter and the test fake speak the same struct.
pub use image_store::ImageConfig;

/// What stage0 needs from the image store.
pub trait Images {
    /// Resolve an image string to a stored image id, fetching per `opts`.
    fn resolve(&self, image: &str, opts: &ResolveOptions) -> Result<String, ImageError>;
    /// Name and id of a stored image.
    fn meta(&self, id: &str) -> Result<ImageMeta, ImageError>;
    /// Extracted layer dirs, top layer first (overlay `lowerdir` order).
    fn layer_dirs(&self, id: &str) -> Result<Vec<PathBuf>, ImageError>;
    /// The image config.
    fn config(&self, id: &str) -> Result<ImageConfig, ImageError>;
    /// Record that pod `uuid` uses image `id` (image GC keeps it).
    fn pin(&self, id: &str, uuid: &str) -> Result<(), ImageError>;
    /// Forget every image pin of pod `uuid`.
    fn unpin(&self, uuid: &str) -> Result<(), ImageError>;
}

#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    type Entry = (String, ImageConfig, Vec<PathBuf>);

    /// In-memory images: name → (id, config, layers).
    #[derive(Default)]
    pub struct FakeImages {
        pub images: BTreeMap<String, Entry>,
        pub pins: RefCell<Vec<(String, String)>>,
    }

    impl FakeImages {
        pub fn add(&mut self, name: &str, cfg: ImageConfig, layers: Vec<PathBuf>) {
            let id = format!("sha256:{:0>64}", self.images.len() + 1);
            self.images.insert(name.to_string(), (id, cfg, layers));
        }
        fn by_id(&self, id: &str) -> Result<(&String, &Entry), ImageError> {
            self.images
                .iter()
                .find(|(_, v)| v.0 == id)
                .ok_or_else(|| format!("image {id:?} not found").into())
        }
    }

    impl Images for FakeImages {
        fn resolve(&self, image: &str, _: &ResolveOptions) -> Result<String, ImageError> {
            self.images
                .get(image)
                .map(|v| v.0.clone())
                .ok_or_else(|| format!("image {image:?} not found").into())
        }
        fn meta(&self, id: &str) -> Result<ImageMeta, ImageError> {
            let (name, v) = self.by_id(id)?;
            Ok(ImageMeta {
                id: v.0.clone(),
                name: name.clone(),
            })
        }
        fn layer_dirs(&self, id: &str) -> Result<Vec<PathBuf>, ImageError> {
            Ok(self.by_id(id)?.1 .2.clone())
        }
        fn config(&self, id: &str) -> Result<ImageConfig, ImageError> {
            Ok(self.by_id(id)?.1 .1.clone())
        }
        fn pin(&self, id: &str, uuid: &str) -> Result<(), ImageError> {
            self.pins.borrow_mut().push((id.into(), uuid.into()));
            Ok(())
        }
        fn unpin(&self, uuid: &str) -> Result<(), ImageError> {
            self.pins.borrow_mut().retain(|p| p.1 != uuid);
            Ok(())
        }
    }
}
