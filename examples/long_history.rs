//! Profiling driver for long histories. `long_history N Q` builds an engine holding N turns of the
//! seeded synthetic conversation (default 100,000), then assembles `assemble_for(2000, question)`
//! for each of the first Q questions and prints the median time. `long_history N Q agent` pushes N
//! turns of the seeded agent session, then for the next Q model calls pushes up to the call and
//! assembles `assemble(8000)`. `long_history N Q haystack` pushes a LongMemEval-shaped haystack of
//! N turns (`synth::haystack`, N/10 sessions, long answers) and assembles `assemble_for(2000,
//! question)` for its first Q planted questions; a fourth argument sets the budget of the
//! conversation, haystack and chat modes (`long_history 500 50 haystack 32000`). `long_history N Q
//! chat` pushes N conversation turns, then Q times pushes the next turn and assembles
//! `assemble(budget)` without a query (the per-turn load `benches/serve_load.rs` puts on a server). Each mode prints the bytes of text it pushed (to
//! compare with the peak resident memory, e.g. under `/usr/bin/time -v`). Run it under callgrind to see where a window's time goes, counting
//! only the windows (`LONG_HISTORY_SET=candidates=512` sets policy knobs as `ctxbench --set` does):
//!
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*long_history::measured*' target/release/examples/long_history 20000 50`
use std::time::Instant;

use ctxwin::replay::synth;
use ctxwin::{Engine, EngineConfig};

fn main() -> ctxwin::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let q: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let mode = args.next();
    let budget: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let t = match mode.as_deref() {
        Some("agent") => return agent(n, q),
        Some("chat") => return chat(n, q, budget),
        Some("haystack") => synth::haystack(42, n / 10),
        _ => synth::conversation(42, n),
    };
    let mut e = Engine::new(config()?)?;
    for turn in t.turns() {
        e.push(turn.clone())?;
    }
    let mut times = Vec::new();
    let (mut evidence, mut kept) = (0usize, 0usize);
    for item in t.qa().iter().take(q) {
        let t0 = Instant::now();
        let w = measured(&mut e, Some(item.question()), budget)?;
        times.push(t0.elapsed().as_secs_f64() * 1e6);
        assert!(w.total_tokens() <= budget);
        digest(&w);
        for &id in item.evidence().iter().flatten() {
            evidence += 1;
            kept += usize::from(w.report().get(id).is_some_and(|l| l.shown_tokens > 0));
        }
    }
    if std::env::var_os("LONG_HISTORY_DIGEST").is_some() {
        println!("evidence shown {kept} of {evidence}");
    }
    times.sort_by(f64::total_cmp);
    let p50 = times.get(times.len() / 2).copied().unwrap_or(0.0);
    println!("{} turns ({} bytes of text), {} windows, assemble_for({budget}) p50 {p50:.0} us", t.turns().len(), text_bytes(t.turns()), times.len());
    Ok(())
}

/// The default config, with the policy knobs of `LONG_HISTORY_SET` (`key=value,key=value`, as
/// `ctxbench --set`) applied, to compare knobs on the same history.
fn config() -> ctxwin::Result<EngineConfig> {
    let mut policy = ctxwin::Policy::default();
    for kv in std::env::var("LONG_HISTORY_SET").unwrap_or_default().split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        policy.set(k, v)?;
    }
    Ok(EngineConfig::default().policy(policy))
}

fn agent(n: usize, q: usize) -> ctxwin::Result<()> {
    let t = synth::agent_session(42, n + n / 4);
    let mut e = Engine::new(config()?)?;
    for (layer, text) in t.pins() {
        e.pin(*layer, text.clone(), 0);
    }
    let turns = t.turns();
    for turn in &turns[..n] {
        e.push(turn.clone())?;
    }
    e.assemble(8000)?;
    let mut times = Vec::new();
    let mut next = n;
    while times.len() < q && next < turns.len() {
        // Push up to the next point where the agent calls the model.
        while next < turns.len() {
            let role = turns[next].role();
            e.push(turns[next].clone())?;
            next += 1;
            if role != ctxwin::Role::Assistant && turns.get(next).is_some_and(|t| t.role() == ctxwin::Role::Assistant) {
                break;
            }
        }
        let t0 = Instant::now();
        let w = measured(&mut e, None, 8000)?;
        times.push(t0.elapsed().as_secs_f64() * 1e6);
        assert!(w.total_tokens() <= 8000);
        digest(&w);
    }
    times.sort_by(f64::total_cmp);
    let p50 = times.get(times.len() / 2).copied().unwrap_or(0.0);
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    println!(
        "agent session of {n} turns ({} bytes of text), {} calls, assemble(8000) p50 {p50:.0} us, mean {mean:.0} us",
        text_bytes(&turns[..next]),
        times.len()
    );
    Ok(())
}

/// A chat served per turn (the load of `benches/serve_load.rs`): `n` turns of the seeded
/// conversation, then `q` steps that each push the next turn and assemble `assemble(budget)`.
fn chat(n: usize, q: usize, budget: usize) -> ctxwin::Result<()> {
    let t = synth::conversation(42, n + q);
    let mut e = Engine::new(config()?)?;
    let turns = t.turns();
    for turn in &turns[..n] {
        e.push(turn.clone())?;
    }
    e.assemble(budget)?;
    let mut times = Vec::new();
    for turn in &turns[n..] {
        e.push(turn.clone())?;
        let t0 = Instant::now();
        let w = measured(&mut e, None, budget)?;
        times.push(t0.elapsed().as_secs_f64() * 1e6);
        assert!(w.total_tokens() <= budget);
    }
    times.sort_by(f64::total_cmp);
    let p50 = times.get(times.len() / 2).copied().unwrap_or(0.0);
    println!("chat of {n} turns, {} push + assemble({budget}) steps, assemble p50 {p50:.0} us", times.len());
    Ok(())
}

/// With `LONG_HISTORY_DIGEST` set, prints a hash of the window (its outline, total and every
/// report line), to compare the windows of two builds.
fn digest(w: &ctxwin::Window) {
    use std::hash::{Hash, Hasher};
    if std::env::var_os("LONG_HISTORY_DIGEST").is_none() {
        return;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    w.outline().hash(&mut h);
    w.total_tokens().hash(&mut h);
    for m in w.messages() {
        m.content().hash(&mut h);
    }
    for l in w.report() {
        format!("{:?}", l).hash(&mut h);
    }
    println!("window {:016x} {} tokens {} report lines", h.finish(), w.total_tokens(), w.report().len());
}

/// Bytes of the turns' text as pushed.
fn text_bytes(turns: &[ctxwin::Turn]) -> usize {
    turns.iter().map(|t| t.plain_text().len()).sum()
}

/// The measured call (a function of its own so a profiler can count only it).
#[inline(never)]
fn measured(e: &mut Engine, query: Option<&str>, budget: usize) -> ctxwin::Result<ctxwin::Window> {
    match query {
        Some(q) => e.assemble_for(budget, q),
        None => e.assemble(budget),
    }
}
