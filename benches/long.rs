//! Long-history benchmarks (issue 9): the per-turn cost on the histories assistants and agents
//! accumulate, where a window must cost what can reach it, not what the history holds.
//!
//! # What is measured
//! - `haystack_assemble/B`: `assemble_for(B, question)` for B = 2,000, 8,000 and 32,000 tokens on
//!   a LongMemEval-shaped haystack (`synth::haystack(42, 50)`: 500 turns, ~130k tokens, assistant
//!   answers of 300–1,000 tokens), the question rotating over its planted questions.
//! - `haystack_push`: pushing one more turn (a request or a long answer) onto that haystack; when
//!   the 100 extra turns run out the engine is rebuilt, untimed.
//! - `agent_long_assemble/N` and `agent_long_assemble_for/N`: on a coding-agent session of N turns
//!   (N = 1k, 10k, 100k; tool outputs of thousands of tokens), the per-call `assemble(8000)` (the
//!   next turns pushed untimed up to the next call, the stable prefix kept as in a live session) and
//!   a one-off `assemble_for(2000, query)` about an identifier seen early in the session.
//!
//! Every iteration checks its result (a window within the budget holding a message; the pushed
//! turn's id). Setup (generating, pushing the history) is not timed. Samples are modest:
//! `cargo bench --bench long -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ctxwin::replay::synth;
use ctxwin::{Engine, EngineConfig, PinLayer, Role, Turn};

mod common;
use common::{check, must};

const SEED: u64 = 42;
/// Sessions of the haystack (ten turns each): the size of a LongMemEval-S instance.
const HAYSTACK_SESSIONS: usize = 50;
const HAYSTACK_BUDGETS: [usize; 3] = [2_000, 8_000, 32_000];
const AGENT_SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const AGENT_BUDGET: usize = 8_000;
const QUERY_BUDGET: usize = 2_000;

fn configure(g: &mut BenchmarkGroup<'_, WallTime>) {
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).throughput(Throughput::Elements(1));
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

fn haystack(c: &mut Criterion) {
    let n = HAYSTACK_SESSIONS * 10;
    let t = synth::haystack(SEED, HAYSTACK_SESSIONS + 10);
    let turns = t.turns().to_vec();
    let questions: Vec<String> = t.qa().iter().filter(|q| q.evidence().iter().flatten().all(|&i| i < n)).map(|q| q.question().to_string()).collect();
    assert!(!questions.is_empty(), "no planted question in the haystack");
    let mut e = engine(&[], &turns[..n]);
    let mut g = c.benchmark_group("haystack_assemble");
    configure(&mut g);
    for budget in HAYSTACK_BUDGETS {
        let mut k = 0usize;
        g.bench_function(BenchmarkId::from_parameter(budget), |b| {
            b.iter(|| {
                let q = &questions[k % questions.len()];
                k += 1;
                let w = must(e.assemble_for(budget, q), "assemble_for");
                check(&w, budget);
                black_box(w)
            });
        });
    }
    g.finish();

    let mut g = c.benchmark_group("haystack_push");
    configure(&mut g);
    let mut next = n;
    g.bench_function("500", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if next == turns.len() {
                    e = engine(&[], &turns[..n]);
                    next = n;
                }
                let turn = turns[next].clone();
                let start = Instant::now();
                let id = e.push(turn);
                total += start.elapsed();
                assert_eq!(must(id, "push"), next);
                next += 1;
            }
            total
        });
    });
    g.finish();
}

/// An agent session of `n` turns and the turns after it, primed with one `assemble`.
struct Agent {
    engine: Engine,
    turns: Vec<Turn>,
    pins: Vec<(PinLayer, String)>,
    n: usize,
    next: usize,
}

impl Agent {
    fn new(n: usize) -> Self {
        let t = synth::agent_session(SEED, n + n / 4);
        let (turns, pins) = (t.turns().to_vec(), t.pins().to_vec());
        let mut engine = engine(&pins, &turns[..n]);
        check(&must(engine.assemble(AGENT_BUDGET), "priming assemble"), AGENT_BUDGET);
        Agent { engine, turns, pins, n, next: n }
    }

    /// Pushes up to the next point where the agent calls the model (untimed).
    fn advance(&mut self) {
        loop {
            if self.next == self.turns.len() {
                self.engine = engine(&self.pins, &self.turns[..self.n]);
                self.next = self.n;
            }
            let turn = self.turns[self.next].clone();
            self.next += 1;
            let ready = turn.role() != Role::Assistant;
            must(self.engine.push(turn), "push during setup");
            if ready {
                break;
            }
        }
    }
}

fn agent(c: &mut Criterion) {
    let mut agents: Vec<(usize, Option<Agent>)> = AGENT_SIZES.iter().map(|&n| (n, None)).collect();
    let mut g = c.benchmark_group("agent_long_assemble");
    configure(&mut g);
    for (n, slot) in &mut agents {
        g.bench_function(BenchmarkId::from_parameter(*n), |b| {
            let a = slot.get_or_insert_with(|| Agent::new(*n));
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    a.advance();
                    let start = Instant::now();
                    let w = a.engine.assemble(AGENT_BUDGET);
                    total += start.elapsed();
                    check(&must(w, "assemble"), AGENT_BUDGET);
                }
                total
            });
        });
    }
    g.finish();
    let mut g = c.benchmark_group("agent_long_assemble_for");
    configure(&mut g);
    let queries =
        ["Which test failed first and what did the error say?", "Where is the parser's error type defined?", "What did the first cargo test run print?"];
    for (n, slot) in &mut agents {
        let mut k = 0usize;
        g.bench_function(BenchmarkId::from_parameter(*n), |b| {
            let a = slot.get_or_insert_with(|| Agent::new(*n));
            b.iter(|| {
                let q = queries[k % queries.len()];
                k += 1;
                let w = must(a.engine.assemble_for(QUERY_BUDGET, q), "assemble_for");
                check(&w, QUERY_BUDGET);
                black_box(w)
            });
        });
    }
    g.finish();
}

criterion_group!(benches, haystack, agent);
criterion_main!(benches);
