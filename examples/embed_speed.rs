//! Measures the real model's cost: load time, then wall time per text for a short text (about 20
//! tokens) and a long one (about 190 tokens), one text per call and in batches of 32.
//!
//! Needs the `dense` feature and the files from `scripts/fetch-models.sh`:
//! `cargo run --features dense --example embed_speed [MODEL_DIR]` (default: `models/all-MiniLM-L6-v2`,
//! or `$CTXWIN_MODELS`). Build it in release mode for numbers worth quoting; the model itself runs in
//! ONNX Runtime, which is always optimised.

use std::path::PathBuf;
use std::time::Instant;

use ctxwin::{Embedder, FastEmbedder};

const SHORT: &str = "Caroline said she finally booked the venue for her sister's wedding next June.";

fn long_text() -> String {
    // About 190 word pieces: a paragraph of agent-session prose.
    [
        "The build failed again after the dependency upgrade, so I went back through the log line by line.",
        "The first error was a borrow-checker complaint in the cache module: a value moved into a closure was",
        "used after the move, which is error E0382. Fixing it by cloning the key was easy, but then the tests",
        "for the disk cache started failing because the file header now carried the model identifier, and the",
        "old fixtures were written before that change. I regenerated the fixtures, reran the suite, and checked",
        "that a truncated file is repaired instead of crashing the replay. The benchmark numbers moved by less",
        "than the noise on this two-core machine, so I left the inner loop alone and wrote down the medians.",
        "Tomorrow I want to look at the ranking code, because the top results for long questions still favour",
        "short tool outputs that repeat the query's words without answering it.",
    ]
    .join(" ")
}

fn time_per_text(model: &mut FastEmbedder, text: &str, batch: usize, rounds: usize) -> ctxwin::Result<f64> {
    let texts: Vec<&str> = vec![text; batch];
    model.embed(&texts)?; // warm-up
    let start = Instant::now();
    for _ in 0..rounds {
        let v = model.embed(&texts)?;
        assert_eq!(v.len(), batch);
    }
    Ok(start.elapsed().as_secs_f64() * 1e3 / (rounds * batch) as f64)
}

fn main() -> ctxwin::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .or_else(|| std::env::var_os("CTXWIN_MODELS"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2"));
    let start = Instant::now();
    let mut model = FastEmbedder::load(&dir)?;
    println!("load: {:.0} ms ({})", start.elapsed().as_secs_f64() * 1e3, model.model_id());

    let long = long_text();
    for (name, text) in [("short", SHORT), ("long", long.as_str())] {
        let one = time_per_text(&mut model, text, 1, 40)?;
        let batched = time_per_text(&mut model, text, 32, 3)?;
        println!("{name:>5} ({} chars): {one:.2} ms/text one at a time, {batched:.2} ms/text in batches of 32", text.len());
    }
    Ok(())
}
