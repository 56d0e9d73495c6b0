//! The slow path of issue 10: an agent session at a small budget (10% of its tokens) whose tool
//! outputs are sometimes very long, as in the mini-swe-agent runs where a window took 0.6–1.8 ms.
//!
//! # What is measured
//! - `small_budget_assemble/10%`: the per-call `assemble(B)` of a 240-turn coding-agent session
//!   (`synth::agent_session(42, 300)`, every 8th tool output replaced by a seeded ~60 kB listing of
//!   `path:line: code` lines), B = pins + 10% of the session's tokens, the next turns pushed untimed
//!   up to each call and the stable prefix kept as in a live session.
//! - `long_output_first_window/60kB`: the first `assemble(B)` after a new ~60 kB tool output
//!   arrives (its head + tail form is made then); the output differs each iteration, so no cache
//!   holds it, and it is pushed untimed.
//!
//! Every iteration checks its window (within the budget, not empty). Setup is not timed:
//! `cargo bench --bench small_budget -- --warm-up-time 1 --measurement-time 3`.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ctxwin::replay::synth::{self, Rng};
use ctxwin::{Block, Engine, EngineConfig, PinLayer, Role, Turn};

mod common;
use common::{check, must};

const SEED: u64 = 42;
/// Turns pushed before the first measured call, and turns generated in all.
const START: usize = 240;
const TOTAL: usize = 300;
/// Every this many tool outputs is a long one.
const LONG_EVERY: usize = 8;
/// Bytes of a long tool output.
const LONG_BYTES: usize = 60_000;

/// A seeded listing like `grep -rn` prints: `path:line: code`, about `bytes` long.
fn listing(rng: &mut Rng, bytes: usize) -> String {
    let words = ["def", "parse_args", "self", "return", "ValueError", "config", "items", "None", "import", "os.path", "=", "(", ")", "assert"];
    let mut out = String::with_capacity(bytes + 128);
    while out.len() < bytes {
        out.push_str(&format!("src/pkg/module_{}.py:{}:", rng.below(90), rng.below(4000)));
        for _ in 0..rng.range(4, 12) {
            out.push(' ');
            out.push_str(words[rng.below(words.len())]);
        }
        out.push('\n');
    }
    out
}

/// The session's turns with every `LONG_EVERY`th tool output replaced by a long listing.
fn session() -> (Vec<(PinLayer, String)>, Vec<Turn>) {
    let t = synth::agent_session(SEED, TOTAL);
    let mut rng = Rng::new(SEED);
    let mut results = 0;
    let turns = t
        .turns()
        .iter()
        .map(|turn| {
            let Some(id) = turn.result_ids().next().map(str::to_string) else { return turn.clone() };
            results += 1;
            if results % LONG_EVERY != 0 || turn.blocks().len() != 1 || !matches!(turn.blocks()[0], Block::ToolResult { .. }) {
                return turn.clone();
            }
            Turn::tool_result(id, listing(&mut rng, LONG_BYTES), false)
        })
        .collect();
    (t.pins().to_vec(), turns)
}

fn engine(pins: &[(PinLayer, String)], turns: &[Turn]) -> Engine {
    let mut e = must(Engine::new(EngineConfig::default()), "engine");
    for (layer, text) in pins {
        e.pin(*layer, text.clone(), 0);
    }
    for t in turns {
        must(e.push(t.clone()), "push during setup");
    }
    e
}

/// Pins + 10% of the whole session's tokens, as `ctxbench --budgets 10%` resolves it.
fn budget(pins: &[(PinLayer, String)], turns: &[Turn]) -> usize {
    let mut e = must(Engine::new(EngineConfig::default()), "engine");
    let pin_text: Vec<&str> = pins.iter().map(|(_, s)| s.as_str()).collect();
    let pin_tokens = 3 + e.count_tokens(&pin_text.join("\n\n"));
    let history: usize = turns.iter().map(|t| e.count_turn(t)).sum();
    pin_tokens + 3 + history / 10
}

fn small_budget(c: &mut Criterion) {
    let (pins, turns) = session();
    let b = budget(&pins, &turns);
    let mut g = c.benchmark_group("small_budget_assemble");
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).throughput(Throughput::Elements(1));
    let mut e = engine(&pins, &turns[..START]);
    let mut next = START;
    g.bench_function(BenchmarkId::from_parameter("10%"), |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // Push up to the next model call (untimed); start over at the end of the session.
                loop {
                    if next == turns.len() {
                        e = engine(&pins, &turns[..START]);
                        next = START;
                    }
                    let turn = turns[next].clone();
                    next += 1;
                    let ready = turn.role() != Role::Assistant;
                    must(e.push(turn), "push");
                    if ready {
                        break;
                    }
                }
                let start = Instant::now();
                let w = e.assemble(b);
                total += start.elapsed();
                check(&must(w, "assemble"), b);
            }
            total
        });
    });
    g.finish();

    let mut g = c.benchmark_group("long_output_first_window");
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).throughput(Throughput::Elements(1));
    let mut rng = Rng::new(SEED + 1);
    let mut e = engine(&pins, &turns[..START]);
    let mut k = 0usize;
    g.bench_function(BenchmarkId::from_parameter("60kB"), |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if k % 200 == 199 {
                    e = engine(&pins, &turns[..START]);
                }
                k += 1;
                let id = format!("bench-call-{k}");
                let call = Turn::tool_call(None, id.clone(), "bash", serde_json::json!({"command": "grep -rn parse_args src"}));
                must(e.push(call), "push call");
                must(e.push(Turn::tool_result(id, listing(&mut rng, LONG_BYTES), false)), "push output");
                let start = Instant::now();
                let w = e.assemble(b);
                total += start.elapsed();
                check(&must(w, "assemble"), b);
            }
            total
        });
    });
    g.finish();
}

criterion_group!(benches, small_budget);
criterion_main!(benches);
