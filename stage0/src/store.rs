//! [`Images`] for the real image store (`image_store::Store`): the one place stage0 touches the
//! store's API.

use image_store::{ImageId, Store};
use std::path::{Path, PathBuf};

use crate::images::{ImageConfig, ImageError, ImageMeta, Images, ResolveOptions};
use crate::{Error, Result};

/// The image store of a data dir, seen through [`Images`].
pub struct StoreImages {
    store: Store,
}

impl StoreImages {
    /// Open the store of data dir `data_dir` (`--dir`).
    pub fn open(data_dir: &Path) -> Result<Self> {
        let store = Store::open(data_dir).map_err(|e| Error::Image(e.to_string()))?;
        Ok(StoreImages { store })
    }
}

fn id(s: &str) -> ImageId {
    ImageId(s.to_string())
}

impl Images for StoreImages {
    fn resolve(&self, image: &str, opts: &ResolveOptions) -> Result<String, ImageError> {
        Ok(self.store.resolve(image, opts)?.0)
    }

    fn meta(&self, id: &str) -> Result<ImageMeta, ImageError> {
        let info = self.store.image(id)?;
        Ok(ImageMeta {
            id: info.id.0,
            name: info.name,
        })
    }

    fn layer_dirs(&self, image: &str) -> Result<Vec<PathBuf>, ImageError> {
        Ok(self.store.layer_dirs(&id(image))?)
    }

    fn config(&self, image: &str) -> Result<ImageConfig, ImageError> {
        Ok(self.store.config(&id(image))?)
    }

    fn pin(&self, image: &str, uuid: &str) -> Result<(), ImageError> {
        Ok(self.store.pin(&id(image), uuid)?)
    }

    fn unpin(&self, uuid: &str) -> Result<(), ImageError> {
        Ok(self.store.unpin(uuid)?)
    }
}
