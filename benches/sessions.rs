//! Durable-session benchmarks (src/session/, SQLite backend, seeded corpus from
//! `ctxwin::replay::synth`, seed 42).
//!
//! - `push/sqlite_normal` and `push/sqlite_full`: one durable `Session::push` of a ~200-token user
//!   turn (WAL, `synchronous=NORMAL` / `FULL`) into a session of a few thousand turns; `push/memory`
//!   the same pushes into a plain engine. Every push's time is also recorded and its p50/p99 printed.
//! - `assemble/memory` and `assemble/sqlite`: the per-turn `assemble(4000)` on a 600-turn
//!   conversation (LoCoMo size), in memory and through a session (which also catches up with
//!   other writers and compares the plan state with the stored one), in one run;
//!   `assemble/for_memory` and `assemble/for_sqlite` the same for `assemble_for(2000, question)`
//!   over the conversation's questions in turn (a chat-memory window). These repeat a window with
//!   nothing pushed in between, so the plan is reused and the window costs ~12 µs.
//! - `assemble/turn_memory` and `assemble/turn_sqlite`: the loop a chat host runs, a turn pushed
//!   (not timed) then `assemble(2000)` (timed), over the second half of the 600-turn conversation.
//! - `reopen/conversation_600` and `reopen/agent_10000`: `Session::open` of a 600-turn conversation
//!   and a 10,000-turn agent session pushed through `Session::push` (so their token counts are
//!   stored, as a host's are): the log read and replayed (references, token counts), the lexical
//!   index resumed from the snapshot the filling handle saved when it was dropped (every turn
//!   committed by then; the agent session's last 784 stay pending, as in any reopen).
//! - `cold_window/10000x100`: 10,000 sessions of 100 turns in one file (built once, cached in
//!   the temp dir), served by `Sessions` with at most 200 hot: a window (open when cold +
//!   `assemble(2000)`) for a random session. p50/p99 and the process's resident memory are printed.
//!
//! `cargo bench --bench sessions -- --warm-up-time 1 --measurement-time 5`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ctxwin::replay::synth;
use ctxwin::session::{Derived, Record, SqliteStore, Synchronous};
use ctxwin::{Engine, EngineConfig, Session, SessionStore, Sessions, SessionsConfig, Turn};

const SEED: u64 = 42;

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("ctxwin-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn store(name: &str, sync: Synchronous) -> Arc<dyn SessionStore> {
    Arc::new(SqliteStore::open_with(tmp(name), sync, Duration::from_secs(5)).unwrap())
}

fn percentiles(label: &str, v: &mut [f64]) {
    if v.is_empty() {
        return; // filtered out
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() as f64 - 1.0) * p) as usize];
    eprintln!("{label}: n={} p50={:.1}us p90={:.1}us p99={:.1}us max={:.1}us", v.len(), q(0.5), q(0.9), q(0.99), q(1.0));
}

/// A ~200-token user turn (o200k_base), varied by `k`.
fn turn_200(k: usize) -> Turn {
    let words = ["parser", "token", "window", "budget", "session", "durable", "index", "summary", "engine", "replay"];
    let text: String = (0..190).map(|i| words[(k * 7 + i * 3) % words.len()]).collect::<Vec<_>>().join(" ");
    Turn::user(format!("{k}: {text}"))
}

fn bench_push(c: &mut Criterion) {
    let mut g = c.benchmark_group("push");
    for (name, sync) in [("sqlite_normal", Synchronous::Normal), ("sqlite_full", Synchronous::Full)] {
        let mut s = Session::create(store(name, sync), "push", EngineConfig::default()).unwrap();
        let mut k = 0;
        let mut all = Vec::new();
        g.bench_function(name, |b| {
            b.iter_custom(|n| {
                let mut total = Duration::ZERO;
                for _ in 0..n {
                    let t = turn_200(k);
                    k += 1;
                    let start = Instant::now();
                    black_box(s.push(t).unwrap());
                    let d = start.elapsed();
                    all.push(d.as_secs_f64() * 1e6);
                    total += d;
                }
                total
            })
        });
        percentiles(&format!("push/{name} ({} turns at the end)", s.engine().len()), &mut all);
    }
    // The same pushes into a plain engine: the part of a durable push's time (and tail) that is
    // the engine's own (token counts, index, references), not the store's.
    let mut e = Engine::new(EngineConfig::default()).unwrap();
    let mut k = 0;
    let mut all = Vec::new();
    g.bench_function("memory", |b| {
        b.iter_custom(|n| {
            let mut total = Duration::ZERO;
            for _ in 0..n {
                let t = turn_200(k);
                k += 1;
                let start = Instant::now();
                black_box(e.push(t).unwrap());
                let d = start.elapsed();
                all.push(d.as_secs_f64() * 1e6);
                total += d;
            }
            total
        })
    });
    percentiles(&format!("push/memory ({} turns at the end)", e.len()), &mut all);
    g.finish();
}

fn bench_assemble(c: &mut Criterion) {
    let t = synth::conversation(SEED, 600);
    let mut e = Engine::new(EngineConfig::default()).unwrap();
    let mut s = Session::create(store("assemble", Synchronous::Normal), "conv", EngineConfig::default()).unwrap();
    for (layer, text) in t.pins() {
        e.pin(*layer, text.clone(), 0);
        s.pin(*layer, text.clone(), 0).unwrap();
    }
    for turn in t.turns() {
        e.push(turn.clone()).unwrap();
        s.push(turn.clone()).unwrap();
    }
    let mut g = c.benchmark_group("assemble");
    g.bench_function("memory", |b| b.iter(|| assert!(black_box(e.assemble(4000).unwrap()).total_tokens() <= 4000)));
    g.bench_function("sqlite", |b| b.iter(|| assert!(black_box(s.assemble(4000).unwrap()).total_tokens() <= 4000)));
    // A chat-memory window: `assemble_for(2000, question)`, the questions in turn.
    let qs: Vec<String> = t.qa().iter().map(|q| q.question().to_string()).collect();
    let (mut i, mut j) = (0, 0);
    g.bench_function("for_memory", |b| {
        b.iter(|| {
            i += 1;
            assert!(black_box(e.assemble_for(2000, &qs[i % qs.len()]).unwrap()).total_tokens() <= 2000)
        })
    });
    g.bench_function("for_sqlite", |b| {
        b.iter(|| {
            j += 1;
            assert!(black_box(s.assemble_for(2000, &qs[j % qs.len()]).unwrap()).total_tokens() <= 2000)
        })
    });
    g.finish();
}

/// What the per-turn loop calls: a plain engine or a durable session.
trait Host {
    fn push_turn(&mut self, t: Turn);
    fn window(&mut self, budget: usize) -> usize;
}

impl Host for Engine {
    fn push_turn(&mut self, t: Turn) {
        self.push(t).unwrap();
    }
    fn window(&mut self, budget: usize) -> usize {
        self.assemble(budget).unwrap().total_tokens()
    }
}

impl Host for Session {
    fn push_turn(&mut self, t: Turn) {
        self.push(t).unwrap();
    }
    fn window(&mut self, budget: usize) -> usize {
        self.assemble(budget).unwrap().total_tokens()
    }
}

/// The loop a chat host runs per turn: push the next turn (not timed), then `assemble(2000)`
/// (timed). The host starts from the first half of a 600-turn conversation and is made again
/// (untimed) when the conversation runs out, so memory and SQLite time windows over the same
/// range of history lengths.
fn per_turn<H: Host>(b: &mut criterion::Bencher<'_>, t: &ctxwin::replay::Transcript, make: &mut dyn FnMut() -> H) {
    let turns = t.turns();
    let half = turns.len() / 2;
    let fresh = |make: &mut dyn FnMut() -> H| {
        let mut h = make();
        for turn in &turns[..half] {
            h.push_turn(turn.clone());
        }
        h.window(2000);
        h
    };
    let mut h = fresh(make);
    let mut k = half;
    b.iter_custom(|iters| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            if k == turns.len() {
                h = fresh(make);
                k = half;
            }
            h.push_turn(turns[k].clone());
            k += 1;
            let start = Instant::now();
            assert!(black_box(h.window(2000)) <= 2000);
            total += start.elapsed();
        }
        total
    });
}

fn bench_per_turn(c: &mut Criterion) {
    let t = synth::conversation(SEED, 600);
    let st = store("per_turn", Synchronous::Normal);
    let mut n = 0;
    let mut g = c.benchmark_group("assemble");
    g.bench_function("turn_memory", |b| per_turn(b, &t, &mut || Engine::new(EngineConfig::default()).unwrap()));
    g.bench_function("turn_sqlite", |b| {
        per_turn(b, &t, &mut || {
            n += 1;
            Session::create(Arc::clone(&st), &format!("conv-{n}"), EngineConfig::default()).unwrap()
        })
    });
    g.finish();
}

/// Writes `turns` into new session `id`, straight through the store (no engine), for fixtures.
/// Fills a session by appending its records directly (fast; no token counts stored).
fn fill(store: &Arc<dyn SessionStore>, id: &str, turns: &[Turn]) {
    store.create(id).unwrap();
    let mut seq = 0;
    for t in turns {
        seq = store.append(id, seq, &Derived::default(), &mut |_| Ok(Some(Record::Push { turn: t.clone() }))).unwrap();
    }
}

/// Fills a session through `Session::push`, as a host does: each append stores the token counts
/// it computed, which a reopen looks up instead of encoding.
fn fill_pushed(store: &Arc<dyn SessionStore>, id: &str, turns: &[Turn]) {
    let mut s = Session::create(Arc::clone(store), id, EngineConfig::default()).unwrap();
    for t in turns {
        s.push(t.clone()).unwrap();
    }
}

fn bench_reopen(c: &mut Criterion) {
    let mut g = c.benchmark_group("reopen");
    g.sample_size(10);
    for (name, t) in [("conversation_600", synth::conversation(SEED, 600)), ("agent_10000", synth::agent_session(SEED, 10_000))] {
        let st = store(name, Synchronous::Normal);
        fill_pushed(&st, name, t.turns());
        g.bench_function(name, |b| {
            b.iter(|| {
                let s = Session::open(Arc::clone(&st), name, EngineConfig::default()).unwrap();
                assert_eq!(s.engine().len(), t.turns().len());
                black_box(s)
            })
        });
    }
    g.finish();
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<f64>().ok()).unwrap_or(0.0) / 1024.0
}

fn bench_cold(c: &mut Criterion) {
    const N: usize = 10_000;
    let path = std::env::temp_dir().join("ctxwin-bench-10000x100.db");
    let fresh = !path.exists();
    let st: Arc<dyn SessionStore> = Arc::new(SqliteStore::open(&path).unwrap());
    if fresh || st.sessions().unwrap().len() < N {
        let start = Instant::now();
        for k in 0..N {
            let id = format!("s{k:05}");
            if store_has(&st, &id) {
                continue;
            }
            fill(&st, &id, synth::conversation(SEED + k as u64, 100).turns());
        }
        eprintln!("cold_window: built {} in {:.0} s", path.display(), start.elapsed().as_secs_f64());
    }
    let sessions = Sessions::new(st, EngineConfig::default(), SessionsConfig { max_hot: 200, max_bytes: 1 << 30 });
    let mut rng = SEED;
    let mut all = Vec::new();
    let mut g = c.benchmark_group("cold_window");
    g.sample_size(20);
    g.bench_function("10000x100", |b| {
        b.iter_custom(|n| {
            let mut total = Duration::ZERO;
            for _ in 0..n {
                rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let id = format!("s{:05}", (rng >> 33) as usize % N);
                let start = Instant::now();
                let w = sessions.with(&id, |s| s.assemble(2000)).unwrap();
                let d = start.elapsed();
                assert!(w.total_tokens() <= 2000);
                all.push(d.as_secs_f64() * 1e6);
                total += d;
            }
            total
        })
    });
    g.finish();
    percentiles(&format!("cold_window ({} opens, {} hot, est. {} MB)", sessions.opens(), sessions.hot(), sessions.hot_bytes() >> 20), &mut all);
    eprintln!("cold_window: resident memory {:.0} MB", rss_mb());
}

fn store_has(st: &Arc<dyn SessionStore>, id: &str) -> bool {
    st.load(id).is_ok_and(|s| s.entries.len() == 100)
}

criterion_group!(benches, bench_push, bench_assemble, bench_per_turn, bench_reopen, bench_cold);
criterion_main!(benches);
