mod agent_loaders;
mod cli;
mod dense;
mod engine;
mod fuzz_regressions;
mod props;
mod qa_loaders;
mod replay_validity;
mod sequences;
mod tokens;
mod tune;

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
