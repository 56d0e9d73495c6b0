//! Loader tests for agent transcript formats (written with the loaders).
