//! Dense embeddings: an [`Embedder`] turns texts into unit vectors, an [`EmbeddingCache`] makes
//! sure each text is embedded once (in memory, and in a file for replays), and a [`VectorIndex`]
//! stores vectors and finds the nearest ones.
//!
//! With the `dense` feature, `FastEmbedder` runs all-MiniLM-L6-v2 on ONNX Runtime from local files
//! fetched by `scripts/fetch-models.sh`; nothing is downloaded at run time. Without the feature
//! there is no built-in embedder: the host brings one, or dense scoring is off.

mod cache;
mod disk;
#[cfg(feature = "dense")]
mod fast;
pub(crate) mod fnv;
mod index;
mod service;

pub use cache::{CacheStats, EmbeddingCache};
pub use disk::DiskCacheStatus;
#[cfg(feature = "dense")]
pub use fast::FastEmbedder;
pub use index::VectorIndex;
pub(crate) use service::EmbedWorker;
pub use service::EmbeddingService;

use crate::error::Result;

/// Something that turns texts into L2-normalised vectors of a fixed dimension.
pub trait Embedder {
    /// Names the model and everything that changes its output (pooling, truncation, weights).
    /// Cached vectors are keyed by it, so two embedders with the same id must agree.
    fn model_id(&self) -> &str;

    /// The number of components of every vector.
    fn dim(&self) -> usize;

    /// One unit vector of [`dim`](Self::dim) components per text, in order.
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::path::{Path, PathBuf};

    /// What tests return, so they can use `?` on any error.
    pub(crate) type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    /// A fresh directory under the system temp dir, removed on drop.
    pub(crate) struct Scratch(PathBuf);

    impl Scratch {
        pub(crate) fn new(name: &str) -> std::io::Result<Self> {
            let path = std::env::temp_dir().join(format!("ctxwin-test-{}-{name}", std::process::id()));
            if path.exists() {
                std::fs::remove_dir_all(&path)?;
            }
            std::fs::create_dir_all(&path)?;
            Ok(Scratch(path))
        }
    }

    impl std::ops::Deref for Scratch {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
