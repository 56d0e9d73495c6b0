//! Measures the real model's cost: load time, then the cost per text of a short text (18 tokens)
//! and a long one (189 tokens), one text per call and in batches of 8 and 32, as wall time and as CPU
//! time of all threads (ONNX Runtime uses every core; on a busy machine wall time also counts
//! waiting for one).
//!
//! Needs the `dense` feature and the files from `scripts/fetch-models.sh`:
//! `cargo run --profile test --features dense --example embed_speed [MODEL_DIR]` (default:
//! `models/all-MiniLM-L6-v2`, or `$CTXWIN_MODELS`). Use an optimised profile (`test` is opt-level 2
//! here, and reuses the test build) so tokenisation is not timed unoptimised; the model itself runs
//! in ONNX Runtime, which is always optimised.

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

/// This process's CPU time (user + system, all threads) in milliseconds, from /proc (Linux only).
/// On a shared machine wall time includes waiting for a core; CPU time does not.
fn cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10.0) // USER_HZ is 100 on Linux
}

/// (wall ms, CPU ms) per text.
fn time_per_text(model: &mut FastEmbedder, text: &str, batch: usize, rounds: usize) -> ctxwin::Result<(f64, f64)> {
    let texts: Vec<&str> = vec![text; batch];
    model.embed(&texts)?; // warm-up
    let cpu0 = cpu_ms().unwrap_or(f64::NAN);
    let start = Instant::now();
    for _ in 0..rounds {
        let v = model.embed(&texts)?;
        assert_eq!(v.len(), batch);
    }
    let n = (rounds * batch) as f64;
    let wall = start.elapsed().as_secs_f64() * 1e3 / n;
    let cpu = (cpu_ms().unwrap_or(f64::NAN) - cpu0) / n;
    Ok((wall, cpu))
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
        println!("{name:>5} ({} chars, {} tokens), per text:", text.len(), model.token_count(text)?);
        for (batch, rounds) in [(1, 40), (8, 6), (32, 3)] {
            let (wall, cpu) = time_per_text(&mut model, text, batch, rounds)?;
            println!("       batches of {batch:>2}: {wall:.1} ms wall / {cpu:.1} ms CPU");
        }
    }
    Ok(())
}
