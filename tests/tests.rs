//! ctxwin's one integration-test binary; each module tests one area.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
