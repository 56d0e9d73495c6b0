//! Engine benchmarks: the per-turn costs of `push` and `assemble` as the history grows.
//!
//! # What is measured
//! - `push/N`: pushing one more turn into an engine that already holds N turns (N = 1k, 10k, 100k)
//!   of a generated conversation: exact token count, references, the in-memory index entry, and the
//!   Tantivy commit every 256 turns (amortized over the pushes, as in real use).
//! - `assemble/N`: one `assemble_for(2000, question)` on an engine holding N conversation turns
//!   (N = 1k, 10k, 100k), the question rotating over the conversation's QA questions: scoring,
//!   selection under the budget, summaries of what is left out, and rendering the window.
//! - `assemble_agent/N`: the per-model-call `assemble(8000)` on a coding-agent session holding N
//!   turns (N = 1k, 10k): before each timed call the session's next turns are pushed (untimed) up to
//!   the next tool result or user message, the point where an agent calls the model; the engine's
//!   assembler keeps its stable prefix between calls as in a live session (each engine assembles
//!   once, untimed, right after it is built). Most calls extend the previous window; now and then
//!   one re-plans the whole history, so this group's spread is wide by nature.
//!
//! Every iteration checks its result (the pushed turn's id; a window within the budget that holds
//! at least one message), so the work cannot be optimized away or silently fail.
//!
//! # Corpus
//! `ctxwin::replay::synth` with seed 42: `conversation(42, N + N/4)` (two speakers, dated sessions,
//! planted facts with QA items and distractors; ~30 tokens a turn) and `agent_session(42, N + N/4)`
//! (System and Task pins, `bash`/`read_file`/`edit_file`/`grep` calls and results, test logs of
//! thousands of tokens; ~370 tokens a turn). The first N turns are pushed before timing; the other
//! N/4 are what the `push` and `assemble_agent` iterations push, so those engines hold between N
//! and 1.25·N turns while measured. When they run out the engine is rebuilt to N turns, untimed
//! (the count is printed after each group).
//!
//! # Setup is not timed
//! Generating the corpus and building each engine happen once per size, outside the measurement
//! (`iter_custom` times only the call under test). Samples are modest (20 samples, 3 s) so the whole
//! run takes a few minutes on two cores:
//! `cargo bench --bench engine -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ctxwin::replay::Transcript;
use ctxwin::replay::synth;
use ctxwin::{Engine, EngineConfig, PinLayer, Role, Turn};

mod common;
use common::{check, must};

const SEED: u64 = 42;
const CONVERSATION_SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const AGENT_SIZES: [usize; 2] = [1_000, 10_000];
/// Budget of `assemble/N` (tokens).
const QA_BUDGET: usize = 2_000;
/// Budget of `assemble_agent/N` (tokens): agent windows hold whole tool outputs.
const AGENT_BUDGET: usize = 8_000;

/// An engine holding the first `n` turns of a generated transcript, the turns after them to push,
/// and the QA questions about the first `n` turns.
struct Live {
    turns: Vec<Turn>,
    questions: Vec<String>,
    pins: Vec<(PinLayer, String)>,
    n: usize,
    /// Budget of one untimed `assemble` after each build: a live session has assembled before.
    prime: Option<usize>,
    engine: Engine,
    next: usize,
    rebuilds: usize,
    most: usize,
}

impl Live {
    fn new(t: &Transcript, n: usize, prime: Option<usize>) -> Self {
        let turns = t.turns().to_vec();
        let pins = t.pins().to_vec();
        let questions = t.qa().iter().filter(|q| q.evidence().iter().flatten().all(|&i| i < n)).map(|q| q.question().to_string()).collect();
        let engine = Self::build(&turns[..n], &pins, prime);
        Live { turns, questions, pins, n, prime, engine, next: n, rebuilds: 0, most: n }
    }

    fn build(turns: &[Turn], pins: &[(PinLayer, String)], prime: Option<usize>) -> Engine {
        let mut e = must(Engine::new(EngineConfig::default()), "engine");
        for (layer, text) in pins {
            e.pin(*layer, text.clone(), 0);
        }
        for t in turns {
            must(e.push(t.clone()), "push during setup");
        }
        if let Some(budget) = prime {
            check(&must(e.assemble(budget), "priming assemble"), budget);
        }
        e
    }

    /// The next turn to push; rebuilds the engine to `n` turns (untimed) when they run out.
    fn next_turn(&mut self) -> Turn {
        if self.next == self.turns.len() {
            self.engine = Self::build(&self.turns[..self.n], &self.pins, self.prime);
            self.next = self.n;
            self.rebuilds += 1;
        }
        let t = self.turns[self.next].clone();
        self.next += 1;
        self.most = self.most.max(self.next);
        t
    }

    fn report(&self, group: &str) {
        eprintln!("{group}/{}: engine held {}..={} turns while measured; rebuilt {} times", self.n, self.n, self.most, self.rebuilds);
    }
}

fn configure(g: &mut BenchmarkGroup<'_, WallTime>) {
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).throughput(Throughput::Elements(1));
}

fn conversation(c: &mut Criterion) {
    // Built lazily (a filtered-out size costs nothing), once per size, shared by both groups.
    let mut live: Vec<(usize, Option<Live>)> = CONVERSATION_SIZES.iter().map(|&n| (n, None)).collect();
    let setup = |n: usize| {
        let l = Live::new(&synth::conversation(SEED, n + n / 4), n, None);
        assert!(!l.questions.is_empty(), "no QA item within the first {n} turns");
        l
    };

    let mut g = c.benchmark_group("assemble");
    configure(&mut g);
    for (n, slot) in &mut live {
        let mut k = 0usize;
        g.bench_function(BenchmarkId::from_parameter(*n), |b| {
            let l = slot.get_or_insert_with(|| setup(*n));
            b.iter(|| {
                let q = &l.questions[k % l.questions.len()];
                k += 1;
                let w = must(l.engine.assemble_for(QA_BUDGET, q), "assemble_for");
                check(&w, QA_BUDGET);
                black_box(w)
            });
        });
    }
    g.finish();

    let mut g = c.benchmark_group("push");
    configure(&mut g);
    for (n, slot) in &mut live {
        g.bench_function(BenchmarkId::from_parameter(*n), |b| {
            let l = slot.get_or_insert_with(|| setup(*n));
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let turn = l.next_turn();
                    let expected = l.engine.len();
                    let start = Instant::now();
                    let id = l.engine.push(turn);
                    total += start.elapsed();
                    assert_eq!(must(id, "push"), expected);
                }
                total
            });
        });
        if let Some(l) = slot {
            l.report("push");
        }
    }
    g.finish();
}

fn agent(c: &mut Criterion) {
    let mut g = c.benchmark_group("assemble_agent");
    configure(&mut g);
    for n in AGENT_SIZES {
        let mut slot: Option<Live> = None;
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            let l = slot.get_or_insert_with(|| Live::new(&synth::agent_session(SEED, n + n / 4), n, Some(AGENT_BUDGET)));
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Push up to the next point where the agent calls the model.
                    loop {
                        let turn = l.next_turn();
                        let ready = turn.role() != Role::Assistant;
                        must(l.engine.push(turn), "push during setup");
                        if ready {
                            break;
                        }
                    }
                    let start = Instant::now();
                    let w = l.engine.assemble(AGENT_BUDGET);
                    total += start.elapsed();
                    check(&must(w, "assemble"), AGENT_BUDGET);
                }
                total
            });
        });
        if let Some(l) = &slot {
            l.report("assemble_agent");
        }
    }
    g.finish();
}

criterion_group!(benches, conversation, agent);
criterion_main!(benches);
