//! The replay side: loaders, probes, metrics, reports (what ctxbench runs).

pub mod loaders;
mod transcript;

pub use transcript::{GoldAction, LoadNotes, QaItem, Transcript};
