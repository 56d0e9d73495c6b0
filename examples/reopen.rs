//! Reopens a durable session N times (issue 11's reopen target), for profiling:
//!
//!   cargo run --release --example reopen -- /tmp/agent.db agent 10000 5
//!
//! Fills `PATH` with a generated session (`agent N` or `conversation N` turns, through
//! `Session::push` as a host would) when it does not hold one yet, then times `Session::open`.
//! A handle dropped after 1,024 turns or more saves its lexical index's snapshot beside the file
//! (`PATH.lexical/`), which the next opens resume from: delete that folder before a run to time a
//! reopen without one.

use std::sync::Arc;
use std::time::Instant;

use ctxwin::EngineConfig;
use ctxwin::replay::synth;
use ctxwin::session::{Session, SessionStore, SqliteStore};

fn main() -> ctxwin::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).map_or("/tmp/ctxwin-reopen.db", String::as_str);
    let kind = args.get(2).map_or("agent", String::as_str);
    let n: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let times: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(5);
    let store: Arc<dyn SessionStore> = Arc::new(SqliteStore::open(path)?);
    let id = format!("{kind}-{n}");
    if !store.sessions()?.contains(&id) {
        let t = if kind == "agent" { synth::agent_session(42, n) } else { synth::conversation(42, n) };
        let mut s = Session::create(Arc::clone(&store), &id, EngineConfig::default())?;
        for turn in t.turns() {
            s.push(turn.clone())?;
        }
        println!("filled {id}");
    }
    for _ in 0..times {
        let start = Instant::now();
        let mut s = Session::open(Arc::clone(&store), &id, EngineConfig::default())?;
        let opened = start.elapsed();
        let len = s.engine().len();
        // The first window after the reopen: what a reopen leaves for later (turns not committed to
        // the index yet, analyses made on first use) is paid here.
        let w0 = Instant::now();
        let tokens = s.assemble(8000)?.total_tokens();
        let first = w0.elapsed();
        drop(s);
        println!(
            "open {id}: {len} turns in {:.1} ms, first assemble(8000) {:.1} ms ({tokens} tokens), dropped after {:.1} ms",
            opened.as_secs_f64() * 1e3,
            first.as_secs_f64() * 1e3,
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    Ok(())
}
