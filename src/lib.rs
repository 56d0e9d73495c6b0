//! ctxwin: token-budgeted context windows, assembled on every turn.
#![deny(missing_docs)]

mod dense;
mod error;
mod pins;
pub mod replay;
mod turn;

#[cfg(feature = "dense")] pub use dense::FastEmbedder;
pub use dense::{CacheStats, DiskCacheStatus, Embedder, EmbeddingCache, VectorIndex};
pub use error::{Error, Result};
pub use pins::{Pin, PinId, PinLayer};
pub use turn::{normalize, Block, NormalizeReport, Provenance, Role, Turn, TurnId, MISSING_RESULT_TEXT};
