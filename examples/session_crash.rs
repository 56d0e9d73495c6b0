//! Crash test of durable sessions: a child process pushes the turns of real transcripts
//! (../shared/datasets: LoCoMo and mini-swe-agent) into a store in a loop, printing `ACK session
//! index` after each push that returned `Ok`; the parent SIGKILLs it at random moments, then
//! checks the store: every acknowledged push present, in order, nothing else (at most the one push
//! in flight may be stored unacknowledged), and every open succeeds. Each kill comes 30 ms to
//! `--max-wait-ms` (400) after the child has loaded the transcripts (uniformly, seeded).
//!
//! ```text
//! cargo run --release --example session_crash -- --store sqlite:/tmp/crash.db --kills 200 --seed 1
//! scripts/with-postgres.sh cargo run --release --features postgres --example session_crash -- \
//!     --store "$CTXWIN_TEST_POSTGRES" --kills 200 --restart-server   # (inside the script's env)
//! ```
//! `--concurrent N`: two child processes append N turns each to one session at the same time;
//! the parent checks 2·N turns are stored, numbered 1..=2·N+1 (the policy record first) without
//! gaps or duplicates, each child's turns in its own order.
//!
//! With `--restart-server` (PostgreSQL; needs CTXWIN_TEST_POSTGRES_CTL from
//! scripts/with-postgres.sh) the server is also restarted (`-m immediate`) mid-stream in a third
//! of the rounds; the child reconnects and continues.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctxwin::replay::loaders;
use ctxwin::session::{Record, SessionStore};
use ctxwin::{EngineConfig, Session, StoreSpec, Turn};

/// The transcripts pushed: session `crash-J` holds the turns of transcript `J % len`.
fn transcripts() -> Vec<Vec<Turn>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets");
    let mut out = Vec::new();
    for (rel, take) in [("locomo/locomo10.json", 2), ("mini-swe-agent", 4)] {
        let p = root.join(rel);
        if !p.exists() {
            eprintln!("session_crash: {} is absent", p.display());
            continue;
        }
        out.extend(loaders::load_path(&p, None).unwrap().iter().take(take).map(|t| t.turns().to_vec()));
    }
    assert!(!out.is_empty(), "no dataset found");
    out
}

fn open_store(spec: &str) -> ctxwin::Result<Arc<dyn SessionStore>> {
    StoreSpec::parse(spec)?.open()?.ok_or_else(|| ctxwin::Error::Store {
        store: spec.into(),
        session: None,
        message: "memory has nothing to crash-test".into(),
    })
}

/// The session to continue: the last `crash-J`, or the next one when it is complete.
fn position(store: &Arc<dyn SessionStore>, all: &[Vec<Turn>]) -> ctxwin::Result<(usize, Session)> {
    let laps = store.sessions()?.iter().filter(|s| s.starts_with("crash-")).count();
    let lap = laps.saturating_sub(1);
    let s = Session::open_or_create(Arc::clone(store), &format!("crash-{lap}"), EngineConfig::default())?;
    if s.engine().len() >= all[lap % all.len()].len() {
        let next = Session::open_or_create(Arc::clone(store), &format!("crash-{}", lap + 1), EngineConfig::default())?;
        return Ok((lap + 1, next));
    }
    Ok((lap, s))
}

fn child(spec: &str) {
    let all = transcripts();
    let out = std::io::stdout();
    // Loading the transcripts is not what is tested: the parent's random delay starts here.
    writeln!(out.lock(), "READY").ok();
    out.lock().flush().ok();
    loop {
        // (Re)connect and continue where the store is; a lost server is retried.
        let step = || -> ctxwin::Result<()> {
            let store = open_store(spec)?;
            loop {
                let (lap, mut s) = position(&store, &all)?;
                let turns = &all[lap % all.len()];
                while s.engine().len() < turns.len() {
                    let i = s.engine().len();
                    s.push(turns[i].clone())?;
                    let mut o = out.lock();
                    writeln!(o, "ACK {lap} {i}").ok();
                    o.flush().ok();
                }
            }
        };
        if let Err(e) = step() {
            eprintln!("child: {e}; retrying");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[derive(Default, Debug)]
struct Tally {
    acked: usize,
    lost: usize,
    duplicated_or_wrong: usize,
    corrupt_opens: usize,
    stored_unacked: usize,
    server_restarts: usize,
}

/// Checks lap `lap` of the store against the acknowledgements.
fn check(store: &Arc<dyn SessionStore>, turns: &[Turn], lap: usize, last_acked: Option<usize>, full_open: bool, t: &mut Tally) {
    let id = format!("crash-{lap}");
    let snap = match store.load(&id) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("open of {id} failed: {e}");
            t.corrupt_opens += 1;
            return;
        }
    };
    let pushed: Vec<&Turn> = snap.entries.iter().filter_map(|e| if let Record::Push { turn } = &e.record { Some(turn) } else { None }).collect();
    let seqs_ok = snap.entries.iter().enumerate().all(|(k, e)| e.seq == k as u64 + 1);
    let wrong = pushed.iter().enumerate().filter(|(k, tr)| turns.get(*k) != Some(**tr)).count() + usize::from(!seqs_ok);
    t.duplicated_or_wrong += wrong;
    let want = last_acked.map_or(0, |a| a + 1);
    t.lost += want.saturating_sub(pushed.len());
    t.stored_unacked += pushed.len().saturating_sub(want).min(1);
    if pushed.len() > want + 1 {
        t.duplicated_or_wrong += pushed.len() - want - 1;
    }
    if full_open && Session::open(Arc::clone(store), &id, EngineConfig::default()).is_err() {
        t.corrupt_opens += 1;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let spec = arg("--store").unwrap_or_else(|| "sqlite:/tmp/ctxwin-crash.db".into());
    if args.iter().any(|a| a == "--child") {
        child(&spec);
        return;
    }
    if let (Some(n), Some(id)) = (arg("--append"), arg("--session")) {
        append_child(&spec, &id, n.parse().unwrap(), arg("--tag").unwrap_or_default().as_str());
        return;
    }
    if let Some(n) = arg("--concurrent") {
        concurrent(&spec, n.parse().unwrap());
        return;
    }
    let kills: usize = arg("--kills").map_or(200, |k| k.parse().unwrap());
    let mut rng = Rng(arg("--seed").map_or(1, |s| s.parse().unwrap()));
    let restart = args.iter().any(|a| a == "--restart-server");
    let max_wait: u64 = arg("--max-wait-ms").map_or(400, |k| k.parse().unwrap());
    let ctl = std::env::var("CTXWIN_TEST_POSTGRES_CTL").ok();
    let all = transcripts();
    let store = open_store(&spec).unwrap();
    let mut t = Tally::default();
    let start = Instant::now();
    for round in 0..kills {
        let mut c = Command::new(std::env::current_exe().unwrap()).args(["--child", "--store", &spec]).stdout(Stdio::piped()).spawn().unwrap();
        let stdout = c.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for l in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if l == "READY" {
                    tx.send(()).ok();
                }
                lines.push(l);
            }
            lines
        });
        rx.recv_timeout(Duration::from_secs(60)).ok();
        let wait = 30 + rng.next() % max_wait;
        if restart
            && rng.next().is_multiple_of(3)
            && let Some(ctl) = &ctl
        {
            std::thread::sleep(Duration::from_millis(wait / 2));
            let ok = Command::new("sh").arg("-c").arg(format!("{ctl} -m immediate restart >/dev/null 2>&1")).status().is_ok_and(|s| s.success());
            t.server_restarts += usize::from(ok);
        }
        std::thread::sleep(Duration::from_millis(wait));
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        let lines = reader.join().unwrap();
        let mut last: std::collections::BTreeMap<usize, usize> = std::collections::BTreeMap::new();
        for l in &lines {
            let mut p = l.split_whitespace().skip(1).map(|x| x.parse::<usize>().unwrap());
            if let (Some(lap), Some(i)) = (p.next(), p.next()) {
                last.insert(lap, i);
                t.acked += 1;
            }
        }
        let laps = store.sessions().map(|v| v.iter().filter(|s| s.starts_with("crash-")).count()).unwrap_or(0);
        for lap in 0..laps {
            // Laps the child did not touch this round were checked before (their acks are final).
            if last.contains_key(&lap) || lap + 1 == laps {
                let prev = last.get(&lap).copied();
                let acked = prev.or_else(|| stored_len(&store, lap).checked_sub(1));
                check(&store, &all[lap % all.len()], lap, acked, round % 10 == 0, &mut t);
            }
        }
    }
    println!("{kills} kills in {:.1} s: {t:?}", start.elapsed().as_secs_f64());
}

fn stored_len(store: &Arc<dyn SessionStore>, lap: usize) -> usize {
    store.load(&format!("crash-{lap}")).map(|s| s.entries.iter().filter(|e| matches!(e.record, Record::Push { .. })).count()).unwrap_or(0)
}

/// Appends `n` turns tagged `tag` to session `id`, retrying a lost connection.
fn append_child(spec: &str, id: &str, n: usize, tag: &str) {
    let store = open_store(spec).unwrap();
    let mut s = Session::open_or_create(Arc::clone(&store), id, EngineConfig::default()).unwrap();
    for k in 0..n {
        s.push(Turn::user(format!("{tag} {k}"))).unwrap();
    }
}

fn concurrent(spec: &str, n: usize) {
    let store = open_store(spec).unwrap();
    let id = format!("concurrent-{}", std::process::id());
    Session::create(Arc::clone(&store), &id, EngineConfig::default()).unwrap();
    let start = Instant::now();
    let kids: Vec<_> = ["a", "b"]
        .iter()
        .map(|tag| {
            Command::new(std::env::current_exe().unwrap()).args(["--store", spec, "--session", &id, "--append", &n.to_string(), "--tag", tag]).spawn().unwrap()
        })
        .collect();
    for mut k in kids {
        assert!(k.wait().unwrap().success());
    }
    let snap = store.load(&id).unwrap();
    let gaps_or_dups = snap.entries.iter().enumerate().filter(|(k, e)| e.seq != *k as u64 + 1).count();
    let mut next = std::collections::HashMap::new();
    let mut out_of_order = 0;
    let mut turns = 0;
    for e in &snap.entries {
        if let Record::Push { turn } = &e.record {
            turns += 1;
            let text = serde_json::to_value(turn).unwrap()["blocks"][0]["text"].as_str().unwrap().to_string();
            let (tag, k) = text.split_once(' ').unwrap();
            let want = next.entry(tag.to_string()).or_insert(0usize);
            out_of_order += usize::from(k.parse::<usize>().unwrap() != *want);
            *want += 1;
        }
    }
    println!(
        "concurrent: 2 processes x {n} turns in {:.1} s: {turns} turns stored, {} records, {gaps_or_dups} gaps/duplicates, {out_of_order} out of order",
        start.elapsed().as_secs_f64(),
        snap.entries.len()
    );
}
