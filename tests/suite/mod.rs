#[cfg(feature = "replay")]
mod adversarial;
#[cfg(feature = "replay")]
mod agent_loaders;
#[cfg(feature = "cli")]
mod cli;
mod dense;
mod engine;
#[cfg(feature = "replay")]
mod fuzz_regressions;
mod generated;
mod props;
#[cfg(feature = "replay")]
mod qa_loaders;
#[cfg(feature = "replay")]
mod replay_validity;
mod sequences;
#[cfg(feature = "serve")]
mod serve;
#[cfg(all(feature = "sqlite", feature = "replay"))]
mod sessions;
#[cfg(feature = "replay")]
mod snapshots;
#[cfg(feature = "replay")]
mod tokens;
#[cfg(feature = "replay")]
mod tune;

#[cfg(feature = "replay")]
/// A file or folder of `../shared/datasets`, or `None` (with a message naming it) when it is absent.
pub(crate) fn shared(rel: &str) -> Option<std::path::PathBuf> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets").join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipping: {} is absent", p.display());
        None
    }
}
