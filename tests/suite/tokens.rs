//! bpe-openai (the hot path) against tiktoken-rs (the reference) on every text of the real
//! datasets, in both encodings: the counts must be identical.

use std::path::Path;

use ctxwin::replay::loaders::load_path;
use ctxwin::{Encoding, TokenCounter, count_reference};

#[test]
fn bpe_openai_counts_equal_tiktoken_on_real_transcripts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets");
    let mut texts: Vec<String> = Vec::new();
    for d in ["locomo", "mini-swe-agent", "tau-bench", "swe-agent", "aider", "longmemeval-s-derived"] {
        let p = root.join(d);
        if !p.exists() {
            eprintln!("skipping {}: absent", p.display());
            continue;
        }
        match load_path(&p, None) {
            Ok(ts) => {
                for t in ts {
                    texts.extend(t.pins().iter().map(|(_, s)| s.clone()));
                    texts.extend(t.turns().iter().map(|x| x.plain_text()));
                }
            }
            Err(e) => panic!("{e}"),
        }
    }
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/samples");
    if let Ok(ts) = load_path(&samples, None) {
        for t in ts {
            texts.extend(t.turns().iter().map(|x| x.plain_text()));
        }
    }
    assert!(!texts.is_empty());
    for enc in [Encoding::O200kBase, Encoding::Cl100kBase] {
        let c = TokenCounter::new(enc, 1);
        let mut total = 0usize;
        for (i, t) in texts.iter().enumerate() {
            let fast = c.count_uncached(t);
            let reference = count_reference(enc, t);
            assert_eq!(fast, reference, "{enc:?} text {i}: {:?}", t.chars().take(80).collect::<String>());
            total += reference;
        }
        eprintln!("{enc:?}: {} texts, {total} tokens, identical counts", texts.len());
    }
}
