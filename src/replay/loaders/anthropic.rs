//! Loader for the anthropic format (not yet written).

use std::path::Path;

use crate::error::{Error, Result};
use crate::replay::transcript::Transcript;

pub(super) fn load(path: &Path, _text: &str) -> Result<Vec<Transcript>> {
    Err(Error::malformed(path, 0, 0, "the anthropic loader is not available yet"))
}
pub(super) fn looks_like(v: &serde_json::Value) -> bool { v.get("messages").and_then(|m| m.as_array()).and_then(|m| m.first()).and_then(|m| m.get("content")).is_some_and(|c| c.is_array()) }
