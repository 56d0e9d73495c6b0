//! One session's window cost alone and among 1,000 live sessions in the same process (issue 14):
//! `assemble_for(2000)` on an engine of 200 LoCoMo-size turns, measured alone, then again after 999
//! more engines of 200 turns each are built beside it. Prints the process's resident memory and
//! thread count once all 1,000 are alive.
//!
//!   cargo bench --bench many_sessions -- --warm-up-time 1 --measurement-time 5
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ctxwin::replay::{Format, loaders::load_file};
use ctxwin::{Engine, EngineConfig, Turn};

const TURNS: usize = 200;
const SESSIONS: usize = 1000;

fn status() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| s.lines().find(|l| l.starts_with(k)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0);
    (field("VmRSS:"), field("Threads:"))
}

/// An engine holding `TURNS` turns of the sample conversation, starting at turn `offset` (cycled).
fn engine(turns: &[Turn], offset: usize) -> Engine {
    let mut e = Engine::new(EngineConfig::default()).unwrap();
    for t in turns.iter().cycle().skip(offset % turns.len()).take(TURNS) {
        e.push(t.clone()).unwrap();
    }
    e
}

fn bench(c: &mut Criterion) {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/samples/synth-conversation.locomo.json");
    let turns: Vec<Turn> = load_file(&file, Some(Format::Locomo)).unwrap().into_iter().flat_map(|t| t.turns().to_vec()).collect();
    let query = "When did Caroline go to the support group, and what did she say about it?";
    let mut measured = engine(&turns, 0);
    let mut g = c.benchmark_group("assemble_for_2000_of_200_turns");
    g.bench_function("alone", |b| b.iter(|| black_box(measured.assemble_for(2000, query).unwrap().total_tokens())));
    let (rss0, th0) = status();
    let others: Vec<Engine> = (1..SESSIONS)
        .map(|k| {
            let mut e = engine(&turns, k * 7);
            e.assemble_for(2000, query).unwrap();
            e
        })
        .collect();
    let (rss1, th1) = status();
    eprintln!(
        "{SESSIONS} sessions of {TURNS} turns: {} MB resident ({} MB for the {} added), {th1} threads (+{})",
        rss1 / 1024,
        (rss1 - rss0) / 1024,
        others.len(),
        th1 - th0
    );
    g.bench_function("among_1000", |b| b.iter(|| black_box(measured.assemble_for(2000, query).unwrap().total_tokens())));
    g.finish();
    drop(others);
}

criterion_group!(benches, bench);
criterion_main!(benches);
