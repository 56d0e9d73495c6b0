//! Resident memory and threads of many sessions in one process: N engines, each given the first T
//! turns of a LoCoMo-format transcript (cycled), then one `assemble` each.
//!
//!   cargo run --release --example sessions_mem -- N T [FILE]
//!
//! Prints the process's VmRSS and thread count before, after creating the engines, and after the
//! pushes (from /proc/self/status; Linux only).

use std::path::PathBuf;

use ctxwin::replay::{Format, loaders::load_file};
use ctxwin::{Engine, EngineConfig};

fn status() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| s.lines().find(|l| l.starts_with(k)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0);
    (field("VmRSS:"), field("Threads:"))
}

fn main() -> ctxwin::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let t: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0);
    let file = args.get(3).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("datasets/samples/synth-conversation.locomo.json"));
    let turns: Vec<ctxwin::Turn> = load_file(&file, Some(Format::Locomo))?.into_iter().flat_map(|tr| tr.turns().to_vec()).collect();
    let (rss0, th0) = status();
    let mut engines = Vec::with_capacity(n);
    for _ in 0..n {
        engines.push(Engine::new(EngineConfig::default())?);
    }
    let (rss1, th1) = status();
    println!("{n} empty engines: +{} KB RSS ({:.1} KB each), +{} threads", rss1 - rss0, (rss1 - rss0) as f64 / n as f64, th1 - th0);
    if t > 0 && !turns.is_empty() {
        for e in &mut engines {
            for turn in turns.iter().cycle().take(t) {
                e.push(turn.clone())?;
            }
            e.assemble(2000)?;
        }
        let (rss2, th2) = status();
        println!("{n} engines x {t} turns: {} MB RSS in all, +{} threads", rss2 / 1024, th2 - th0);
    }
    Ok(())
}
