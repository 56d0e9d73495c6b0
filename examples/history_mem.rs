//! Resident memory of a replay against the transcript bytes it holds (issue 9's memory target:
//! ≤ 4×). Each transcript goes into its own engine (as `ctxbench compare` replays it), every turn
//! pushed, then one `assemble(2000)` per engine (its caches built). The transcripts themselves are
//! loaded (and their bytes counted) before the baseline is taken, and so are the process-wide
//! tokenizer tables, so the growth is the engines'.
//!
//!   cargo run --release --example history_mem -- locomo ../shared/datasets/locomo/locomo10.json
//!   cargo run --release --example history_mem -- conversation 100000
//!   cargo run --release --example history_mem -- agent 10000
//!   cargo run --release --example history_mem -- haystack 100000
//!
//! Prints the transcript bytes (turn text, tool arguments and outputs, call ids), the process's
//! resident memory before and after (from /proc/self/status; Linux only), and their ratio; and the
//! engines' live heap (bytes allocated and not freed, counted by a wrapper around the system
//! allocator), so what the engines hold and what the allocator keeps resident besides are told
//! apart.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use ctxwin::replay::{Format, Transcript, loaders::load_file, synth};
use ctxwin::{Block, Engine, EngineConfig};

/// The system allocator, counting the bytes live (allocated and not yet freed).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only the counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    fn malloc_trim(pad: usize) -> i32;
}

/// Returns the allocator's free pages to the system (glibc's `malloc_trim`), to tell what it kept.
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases free memory; it takes no pointer.
    unsafe {
        malloc_trim(0);
    }
}

fn rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn bytes(t: &Transcript) -> usize {
    let block = |b: &Block| match b {
        Block::Text { text } => text.len(),
        Block::ToolCall { call_id, name, arguments } => call_id.len() + name.len() + arguments.to_string().len(),
        Block::ToolResult { call_id, content, .. } => call_id.len() + content.len(),
    };
    t.turns().iter().flat_map(|turn| turn.blocks()).map(block).sum()
}

fn main() -> ctxwin::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map_or("conversation", String::as_str);
    let transcripts: Vec<Transcript> = match what {
        "locomo" => load_file(&PathBuf::from(args.get(2).map_or("../shared/datasets/locomo/locomo10.json", String::as_str)), Some(Format::Locomo))?,
        "agent" => vec![synth::agent_session(42, args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000))],
        // LongMemEval-shaped: sessions of 10 turns with long answers; N turns = N / 10 sessions.
        "haystack" => vec![synth::haystack(42, args.get(2).and_then(|a| a.parse::<usize>().ok()).unwrap_or(100_000).div_ceil(10))],
        _ => vec![synth::conversation(42, args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100_000))],
    };
    let held: usize = transcripts.iter().map(bytes).sum();
    let turns: usize = transcripts.iter().map(|t| t.turns().len()).sum();
    // The tokenizer's tables (~35 MB, once per process) and the analyzers' statics are loaded by a
    // first engine before the baseline: they are not the engines' cost.
    let mut warm = Engine::new(EngineConfig::default())?;
    warm.push(ctxwin::Turn::user("Warm-up: Caroline went to src/main.rs on 12 May 2023."))?;
    warm.assemble(2000)?;
    drop(warm);
    let before = rss_kb();
    let live_before = LIVE.load(Ordering::Relaxed);
    let mut engines = Vec::with_capacity(transcripts.len());
    for t in &transcripts {
        let mut e = Engine::new(EngineConfig::default())?;
        for turn in t.turns() {
            e.push(turn.clone())?;
        }
        e.assemble(2000)?;
        engines.push(e);
    }
    if std::env::var_os("HISTORY_MEM_TRIM").is_some() {
        trim();
    }
    let after = rss_kb();
    let live = LIVE.load(Ordering::Relaxed).saturating_sub(live_before) as f64;
    let grown = after.saturating_sub(before) as f64 * 1024.0;
    println!(
        "{what}: {} transcripts, {turns} turns, {:.1} MiB of transcript; resident {:.1} MiB before the engines, {:.1} MiB after: engines {:.1} MiB = {:.2}x the transcript bytes; live heap {:.1} MiB = {:.2}x",
        transcripts.len(),
        held as f64 / 1_048_576.0,
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        grown / 1_048_576.0,
        grown / held as f64,
        live / 1_048_576.0,
        live / held as f64
    );
    // Not dropped: under `heaptrack`, its "leaked" cost is then what the engines hold at the end.
    std::mem::forget(engines);
    Ok(())
}
