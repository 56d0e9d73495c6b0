//! Loader for the openai_chat format (not yet written).

use std::path::Path;

use crate::error::{Error, Result};
use crate::replay::transcript::Transcript;

pub(super) fn load(path: &Path, _text: &str) -> Result<Vec<Transcript>> {
    Err(Error::malformed(path, 0, 0, "the openai_chat loader is not available yet"))
}
