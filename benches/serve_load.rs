//! Load on `ctxwin serve` over loopback (not a criterion bench: a fixed-duration load run).
//!
//! What is measured: the real `ctxwin` binary (built with this bench, same profile) serving a
//! SQLite store in a temp dir; `--clients` concurrent clients (tasks on one event-loop thread, as
//! wrk and oha run them, one keep-alive HTTP/1.1 connection each, request bodies serialized before
//! the clock), each on its own LoCoMo-size session: a LoCoMo conversation
//! (`../shared/datasets/locomo/locomo10.json`, client `c` takes conversation `c % 10`; the seeded
//! `ctxwin::replay::synth::conversation(42 + c, 600)` when the dataset is absent) whose first half is
//! appended, and its first window asked, before the clock starts. Timed: each client in a loop
//! appends the next turn of its conversation (`POST /turns`, ctxwin format) then asks for a
//! `--budget`-token window (`POST /window`, OpenAI format), for `--secs` seconds; when the
//! conversation runs out the session goes on with the next one, and past 1,000 turns it starts
//! again from an empty session (see [`client`]). Printed: windows/s, window and append latency
//! p50/p99 as the client sees them and as the server's own latency histograms have them (over the
//! timed phase), and the server's own assemble p50/p99 (from
//! `/metrics`); then, in the same run, the library's `Engine::assemble` p50 on the same mix (as many
//! engines as clients, same conversations and history lengths, interleaved: each in turn takes one
//! push then one assemble), measured twice: during the load (one engine step every 2 ms on a thread
//! of this process, so it runs under the same contention for the two cores and their caches as the
//! server, each engine first taking the turns its client appended since, so it holds what the
//! client's session holds; compared with the server's quantiles over the same span, and with
//! `--rss-every` at every sample) and after it (the machine otherwise idle). `CTXWIN_BIN=path` serves with another build. Every window is checked:
//! status 200, `total_tokens <= budget`.
//!
//! `--report none` asks windows without the per-turn report (the API's `"report": "none"`; by
//! default each reply carries one report line per turn, ~35 kB on these sessions).
//!
//! `--rate R` runs an open loop instead (as wrk2 does): the clients together start `R` turns per
//! second, client `c` on a fixed schedule (one turn every `clients / R` s, the clients' slots
//! spread evenly), and each turn is also timed from its scheduled slot to the window's reply, so a
//! server that falls behind shows it in that latency rather than in fewer requests.
//!
//! `cargo bench --bench serve_load -- --clients 64 --secs 20 --budget 2000 [--rate 2000]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use ctxwin::replay::{Transcript, loaders, synth};
use ctxwin::{Engine, EngineConfig};
use serde_json::{Value, json};

struct Args {
    clients: usize,
    secs: u64,
    budget: usize,
    store: Option<String>,
    rss_every: u64,
    /// The window request's `report`: `turns` (one line per turn, the API's default) or `none`.
    report: &'static str,
    /// Open loop: the clients together start this many turns (append + window) per second, each
    /// on its own fixed schedule, instead of each starting its next turn when the last one ends.
    rate: Option<f64>,
    /// `--refill bulk`: the earlier rounds' refill (see [`client`]).
    bulk: bool,
}

fn args() -> Args {
    let mut a = Args { clients: 64, secs: 20, budget: 2000, store: None, rss_every: 0, report: "turns", rate: None, bulk: false };
    let v: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < v.len() {
        let next = v.get(i + 1).cloned().unwrap_or_default();
        match v[i].as_str() {
            "--clients" => a.clients = next.parse().unwrap(),
            "--secs" => a.secs = next.parse().unwrap(),
            "--budget" => a.budget = next.parse().unwrap(),
            "--store" => a.store = Some(next),
            "--rss-every" => a.rss_every = next.parse().unwrap(),
            "--report" => a.report = if next == "none" { "none" } else { "turns" },
            "--rate" => a.rate = Some(next.parse().unwrap()),
            "--refill" => a.bulk = next == "bulk",
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn conversations(n: usize) -> Vec<Transcript> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/locomo/locomo10.json");
    if path.exists() {
        let t = loaders::load_path(&path, None).unwrap();
        eprintln!("corpus: {} LoCoMo conversations, {} turns on average", t.len(), t.iter().map(|t| t.turns().len()).sum::<usize>() / t.len().max(1));
        t
    } else {
        eprintln!("corpus: {} absent; seeded synth conversations of 600 turns", path.display());
        (0..n.min(10)).map(|c| synth::conversation(42 + c as u64, 600)).collect()
    }
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server: the `ctxwin` built with this bench, or the binary `CTXWIN_BIN` names (to
/// compare two builds under the same load generator).
fn start(store: &str, workers: usize) -> Server {
    let bin = std::env::var_os("CTXWIN_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_ctxwin").into());
    let mut child = Command::new(bin)
        .args(["serve", "--addr", "127.0.0.1:0", "--store", store, "--max-hot", "1000", "--workers", &workers.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_string();
    Server { child, base }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(60))).build().into()
}

fn post(agent: &ureq::Agent, url: &str, body: &Value) -> (u16, Value) {
    let mut r = agent.post(url).send_json(body).unwrap();
    (r.status().as_u16(), r.body_mut().read_json().unwrap_or(Value::Null))
}

/// Creates session `id` holding the first half of `turns`, and asks its first window (the
/// session's one full selection, which later windows extend or re-select from), untimed.
fn fill(agent: &ureq::Agent, base: &str, id: &str, t: &Transcript, budget: usize) {
    for (layer, text) in t.pins() {
        let mut r = agent.put(&format!("{base}/v1/sessions/{id}/pins/{}", layer.as_str())).send_json(json!({"text": text})).unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}", r.body_mut().read_to_string().unwrap_or_default());
    }
    for chunk in t.turns()[..t.turns().len() / 2].chunks(200) {
        let msgs: Vec<Value> = chunk.iter().map(|t| serde_json::to_value(t).unwrap()).collect();
        let (s, v) = post(agent, &format!("{base}/v1/sessions/{id}/turns"), &json!({"format": "ctxwin", "messages": msgs}));
        assert_eq!(s, 200, "{v}");
    }
    let (s, v) = post(agent, &format!("{base}/v1/sessions/{id}/window"), &json!({"budget": budget, "report": "none"}));
    assert_eq!(s, 200, "{v}");
}

/// One HTTP/1.1 exchange on a keep-alive connection: writes the request, reads the status and a
/// `Content-Length` body into `buf` (a chunked or close-delimited reply is an error: the server
/// answers every route with a length, or 204 without a body).
async fn exchange(stream: &mut TcpStream, buf: &mut Vec<u8>, method: &str, path: &str, body: &[u8]) -> std::io::Result<u16> {
    let head = format!("{method} {path} HTTP/1.1\r\nhost: load\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len());
    let mut req = Vec::with_capacity(head.len() + body.len());
    req.extend_from_slice(head.as_bytes());
    req.extend_from_slice(body);
    stream.write_all(&req).await?;
    buf.clear();
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut chunk = [0u8; 16384];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("connection closed before the reply's headers"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..header_end]).map_err(|_| bad("reply headers are not UTF-8"))?;
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status"))?;
    let len: usize = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.trim().parse().unwrap_or(0)))
        .or((status == 204).then_some(0))
        .ok_or_else(|| bad("reply without content-length"))?;
    buf.drain(..header_end);
    while buf.len() < len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("connection closed in the reply's body"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(status)
}

/// A client's requests, serialized once before the clock (like an agent that already holds its
/// messages as JSON): the append body of every turn, the window body and the paths.
/// The append bodies of one conversation's turns.
type Bodies = Arc<Vec<Vec<u8>>>;

struct Requests {
    turns: Bodies,
    window: Vec<u8>,
    append_path: String,
    window_path: String,
}

impl Requests {
    fn new(id: &str, turns: Bodies, budget: usize, report: &str) -> Requests {
        Requests {
            turns,
            window: serde_json::to_vec(&json!({"budget": budget, "report": report})).unwrap(),
            append_path: format!("/v1/sessions/{id}/turns"),
            window_path: format!("/v1/sessions/{id}/window"),
        }
    }
}

/// The append body of every turn of every conversation (no session id in them, so the clients
/// share them), serialized once before the clock.
fn bodies(convs: &[Transcript]) -> Vec<Bodies> {
    convs.iter().map(|t| Arc::new(t.turns().iter().map(|t| serde_json::to_vec(&json!({"format": "ctxwin", "messages": [t]})).unwrap()).collect())).collect()
}

/// One client's measured loop on its own keep-alive connection: (window latencies µs, append
/// latencies µs, errors). When its conversation runs out, the session goes on with the next one
/// (client `c` then takes conversation `c + 1`, …) if it still holds at most `MAX_TURNS` turns
/// with it, else it is deleted and started again from the next conversation's first turn (its pins
/// set again, untimed), so every turn the server takes during the clock is one of the mix's and
/// the sessions stay LoCoMo-size (0 to 1,000 turns) however long the run. `--refill bulk` instead
/// deletes the session at the end of its conversation and appends the first half again in
/// 200-turn requests (untimed on the client, but the server does that work beside the mix: the
/// earlier rounds' bench).
async fn client(
    addr: String,
    base: String,
    id: String,
    (convs, bodies): (Arc<Vec<Transcript>>, Arc<Vec<Bodies>>),
    c: usize,
    (budget, report, pace, bulk): (usize, &'static str, Option<Pace>, bool),
    (stop, progress): (Arc<AtomicBool>, Arc<AtomicUsize>),
) -> Measured {
    let mut conv = c;
    let mut reqs = Requests::new(&id, Arc::clone(&bodies[conv % convs.len()]), budget, report);
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut m = Measured::default();
    let mut k = reqs.turns.len() / 2;
    let mut held = k;
    let mut due = pace.map(|p| p.first);
    let mut prev_end = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // Open loop: wait for this turn's slot. A turn that could not start at its slot because
        // the previous one was still running is timed from its slot (as wrk2 does), so a slow
        // reply is not hidden by the turns it delayed; one that waited only for the timer (tokio's
        // ticks are 1 ms) is timed from when it was sent.
        let mut from = None;
        if let (Some(at), Some(p)) = (due, pace) {
            tokio::time::sleep_until(at.into()).await;
            from = Some(if prev_end > at { at } else { Instant::now() });
            due = Some(at + p.period);
        }
        if k == reqs.turns.len() {
            if bulk {
                let s = exchange(&mut stream, &mut buf, "DELETE", &format!("/v1/sessions/{id}"), b"").await.unwrap();
                m.errors += usize::from(s != 204);
                let (base, id, convs) = (base.clone(), id.clone(), Arc::clone(&convs));
                tokio::task::spawn_blocking(move || fill(&agent(), &base, &id, &convs[c % convs.len()], budget)).await.unwrap();
                k = reqs.turns.len() / 2;
                held = k;
            } else {
                conv += 1;
                let next = &convs[conv % convs.len()];
                reqs = Requests::new(&id, Arc::clone(&bodies[conv % convs.len()]), budget, report);
                k = 0;
                if starts_again(held, next) {
                    let s = exchange(&mut stream, &mut buf, "DELETE", &format!("/v1/sessions/{id}"), b"").await.unwrap();
                    m.errors += usize::from(s != 204);
                    for (layer, text) in next.pins() {
                        let body = serde_json::to_vec(&json!({"text": text})).unwrap();
                        let s = exchange(&mut stream, &mut buf, "PUT", &format!("/v1/sessions/{id}/pins/{}", layer.as_str()), &body).await.unwrap();
                        m.errors += usize::from(s != 200);
                    }
                    held = 0;
                }
            }
            // The switch is not part of the load: the schedule starts again after it.
            due = pace.map(|p| Instant::now() + p.period);
            from = from.map(|_| Instant::now());
        }
        let t0 = Instant::now();
        let s = exchange(&mut stream, &mut buf, "POST", &reqs.append_path, &reqs.turns[k]).await.unwrap();
        m.appends.push(t0.elapsed().as_secs_f64() * 1e6);
        m.errors += usize::from(s != 200);
        k += 1;
        held += 1;
        progress.fetch_add(1, Ordering::Relaxed);
        let t1 = Instant::now();
        // Like an agent that forwards the messages: the reply is read whole; only the total is
        // read from it (the reply's third top-level field, before the messages and the report).
        let s = exchange(&mut stream, &mut buf, "POST", &reqs.window_path, &reqs.window).await.unwrap();
        let total = total_tokens(&buf).unwrap_or(usize::MAX);
        m.windows.push(t1.elapsed().as_secs_f64() * 1e6);
        m.held.push(held as f64);
        prev_end = Instant::now();
        if let Some(from) = from {
            m.turns.push((prev_end - from).as_secs_f64() * 1e6);
        }
        if s != 200 || total > budget {
            m.errors += 1;
        }
    }
    m
}

/// Turns a session may reach by going on with the next conversation; one that would pass it starts
/// again instead (under the engine's `commit_every`, 1,024, as every LoCoMo conversation is: a
/// longer session would start a Tantivy writer, which no LoCoMo-size session does).
const MAX_TURNS: usize = 1000;

/// Whether a session holding `held` turns starts again rather than going on with `next`.
fn starts_again(held: usize, next: &Transcript) -> bool {
    held + next.turns().len() > MAX_TURNS
}

/// A client's open-loop schedule: its first turn's slot, then one every `period`.
#[derive(Clone, Copy)]
struct Pace {
    first: Instant,
    period: Duration,
}

/// What one client measured, µs: window and append latency from sending each request, and (open
/// loop only) each turn's latency to the window's reply, from its slot when the client was behind
/// its schedule, else from sending its append; and its errors.
#[derive(Default)]
struct Measured {
    windows: Vec<f64>,
    /// The turns the session held at each window.
    held: Vec<f64>,
    appends: Vec<f64>,
    turns: Vec<f64>,
    errors: usize,
}

/// The `total_tokens` of a window reply: the value after the first `"total_tokens":` (a top-level
/// field the server writes before `messages`, whose strings cannot hold an unescaped quote).
fn total_tokens(body: &[u8]) -> Option<usize> {
    const KEY: &[u8] = b"\"total_tokens\":";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits: Vec<u8> = body[at..].iter().copied().take_while(u8::is_ascii_digit).collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

fn q(v: &[f64], p: f64) -> f64 {
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

/// The cumulative buckets `(le, count)` of the histogram lines starting with `prefix` (`le` in
/// seconds, `+Inf` last).
fn buckets(text: &str, prefix: &str) -> Vec<(f64, f64)> {
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|rest| {
            let (le, n) = rest.split_once("\"} ")?;
            let le = le.trim_start_matches('"');
            Some((if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? }, n.trim().parse().ok()?))
        })
        .collect()
}

/// One of the library's engines, on the same mix as a server session: client `c`'s conversation
/// from its half, then the next conversations under the clients' rule (see [`client`]).
struct Lib<'a> {
    engine: Engine,
    convs: &'a [Transcript],
    conv: usize,
    k: usize,
    held: usize,
    /// Turns pushed since it was filled (a client's count of appends, for the same engine).
    steps: usize,
}

/// A new engine holding `t`'s pins and its first `turns` turns.
fn engine(t: &Transcript, turns: usize) -> Engine {
    let mut e = Engine::new(EngineConfig::default()).unwrap();
    for (layer, text) in t.pins() {
        e.pin(*layer, text.clone(), 0);
    }
    for turn in &t.turns()[..turns] {
        e.push(turn.clone()).unwrap();
    }
    e
}

/// The library's engines, one per client, each filled like the client's session.
fn engines(convs: &[Transcript], clients: usize) -> Vec<Lib<'_>> {
    (0..clients)
        .map(|c| {
            let t = &convs[c % convs.len()];
            let half = t.turns().len() / 2;
            Lib { engine: engine(t, half), convs, conv: c, k: half, held: half, steps: 0 }
        })
        .collect()
}

/// One step of the library's mix for engine `e`: push its next turn, then `assemble(budget)`;
/// returns the assemble time, µs. When its conversation runs out it goes on with the next one, or
/// starts a new engine, as the clients' sessions do (untimed), so its sizes match the server's.
fn library_step(e: &mut Lib<'_>, budget: usize) -> f64 {
    advance(e);
    let t0 = Instant::now();
    let w = e.engine.assemble(budget).unwrap();
    let us = t0.elapsed().as_secs_f64() * 1e6;
    assert!(w.total_tokens() <= budget);
    us
}

/// Pushes engine `e`'s next turn (untimed), going on with the next conversation or starting a new
/// engine as the clients' sessions do.
fn advance(e: &mut Lib<'_>) {
    if e.k == e.convs[e.conv % e.convs.len()].turns().len() {
        e.conv += 1;
        e.k = 0;
        let next = &e.convs[e.conv % e.convs.len()];
        if starts_again(e.held, next) {
            e.engine = engine(next, 0);
            e.held = 0;
        }
    }
    let turn = e.convs[e.conv % e.convs.len()].turns()[e.k].clone();
    e.engine.push(turn).unwrap();
    e.k += 1;
    e.held += 1;
    e.steps += 1;
}

/// The library's assemble time on the same mix, after the load (the machine otherwise idle):
/// `steps` rounds in which every engine in turn takes one push and one `assemble(budget)`
/// (interleaved like the server's clients, so caches are as cold); sorted, µs.
fn library(convs: &[Transcript], clients: usize, steps: usize, budget: usize) -> Vec<f64> {
    let mut engines = engines(convs, clients);
    let mut out = Vec::new();
    for _ in 0..steps {
        for e in &mut engines {
            out.push(library_step(e, budget));
        }
    }
    out.sort_by(f64::total_cmp);
    out
}

/// One timed library assemble during the load: when it ended, its time (µs) and the turns its
/// engine held.
struct LibSample {
    at: Instant,
    us: f64,
    held: usize,
}

/// The library's assemble time on the same mix *during* the load, on the same two cores: the
/// engines (built before the clock) take turns, one timed push and `assemble(budget)` every 2 ms,
/// until `stop`. The server's assemble and this one then run under the same contention for cores
/// and caches. With `progress` (each client's count of appends), the engines follow the clients'
/// sessions: half a round (~64 ms) before engine `i`'s timed step, it takes the turns client `i`
/// appended since its last step, untimed (pushes, then one assemble, as the server's session had
/// a window one turn before), so at its timed step it holds what the client's session holds, and
/// its data has been out of use as long as a session's between two of its client's turns (an
/// assemble right after the catch-up ran on warm caches: 26–38 µs against the server's ~110).
/// That costs one push per turn of the load beside the server (~5% of a core at 2,000 turns/s).
fn library_under_load(engines: &mut [Lib<'_>], progress: Option<&[Arc<AtomicUsize>]>, budget: usize, stop: &AtomicBool) -> Vec<LibSample> {
    let mut out = Vec::new();
    let n = engines.len();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let ahead = (i + n / 2) % n;
        if let Some(done) = progress.and_then(|p| p.get(ahead)).map(|p| p.load(Ordering::Relaxed)) {
            let e = &mut engines[ahead];
            let behind = e.steps + 1 < done;
            while e.steps + 1 < done {
                advance(e);
            }
            if behind {
                e.engine.assemble(budget).unwrap();
            }
        }
        let e = &mut engines[i % n];
        let us = library_step(e, budget);
        out.push(LibSample { at: Instant::now(), us, held: e.held });
        i += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    out
}

/// Assembles the server's `ctxwin_assemble_recent_seconds` quantiles are of (its `RECENT`).
const RECENT: usize = 1 << 16;

/// What [`sample_rss`] reads at one moment.
struct Sample {
    at: Instant,
    /// Seconds since the clock started.
    t: u64,
    /// The server's resident memory, kB.
    rss: u64,
    /// Its estimate of the open sessions' memory (`ctxwin_sessions_open_bytes`), kB.
    held: u64,
    /// Its assemble p50 over its last [`RECENT`] assembles, µs.
    assemble_p50: f64,
    /// Assembles it has timed so far (`ctxwin_assemble_seconds_count`).
    assembles: f64,
}

/// The server's memory and assemble p50 (see [`Sample`]) every `every` seconds for `secs` seconds
/// (just sleeps when `every` is 0).
fn sample_rss(pid: u32, base: &str, secs: u64, every: u64) -> Vec<Sample> {
    let start = Instant::now();
    let mut out = Vec::new();
    let agent = agent();
    while start.elapsed().as_secs() < secs {
        if every == 0 {
            std::thread::sleep(Duration::from_secs(secs));
            break;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kb = status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0);
        let metrics = agent.get(&format!("{base}/metrics")).call().ok().and_then(|mut r| r.body_mut().read_to_string().ok()).unwrap_or_default();
        let held = metric(&metrics, "ctxwin_sessions_open_bytes").map_or(0, |b| (b / 1024.0) as u64);
        let assemble_p50 = metric(&metrics, "ctxwin_assemble_recent_seconds{quantile=\"0.5\"}").unwrap_or(f64::NAN) * 1e6;
        let assembles = metric(&metrics, "ctxwin_assemble_seconds_count").unwrap_or(f64::NAN);
        out.push(Sample { at: Instant::now(), t: start.elapsed().as_secs(), rss: kb, held, assemble_p50, assembles });
        eprintln!("rss t={}s {} kB sessions {} kB", start.elapsed().as_secs(), kb, held);
        std::thread::sleep(Duration::from_secs(every).min(Duration::from_secs(secs.saturating_sub(start.elapsed().as_secs()).max(1))));
    }
    out
}

/// (min, max, last/first − 1, (max − min)/min) of a series.
fn spread(v: &[f64]) -> (f64, f64, f64, f64) {
    let (lo, hi) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    (lo, hi, v[v.len() - 1] / v[0] - 1.0, (hi - lo) / lo)
}

/// Prints how flat the RSS was after warm-up: the first 60 s (every session grows from half its
/// conversation to all of it and is recycled once) or the first 10% of the run, whichever is longer.
/// The sessions themselves grow and shrink as they are recycled, so it also prints the server's
/// estimate of what they hold and the RSS beside it (RSS minus that estimate: the server's own
/// memory, which a leak would make grow), with the same statistics.
/// The samples after warm-up: the first 60 s or the first 10% of the run, whichever is longer.
fn after_warm_up(rss: &[Sample]) -> &[Sample] {
    let total = rss.last().map_or(0, |r| r.t);
    let warm = rss.iter().position(|r| r.t >= (total / 10).max(60)).unwrap_or(rss.len());
    &rss[warm..]
}

/// The server/library assemble p50 ratio at every sample after warm-up: the server's p50 over its
/// last [`RECENT`] assembles then, against the library's p50 over the same span (from the
/// server's assembles since the previous sample), so a long run is compared period by period
/// rather than the server's last half-minute against the library's whole run.
fn report_ratio_over_time(rss: &[Sample], lib: &[LibSample]) {
    if rss.len() < 2 {
        return;
    }
    let warm = rss.len() - after_warm_up(rss).len();
    let mut ratios = Vec::new();
    for w in rss[warm.max(1)..].iter().zip(&rss[warm.max(1) - 1..]) {
        let (now, prev) = w;
        let per_sec = (now.assembles - prev.assembles) / now.at.duration_since(prev.at).as_secs_f64();
        let span = RECENT as f64 / per_sec.max(1.0);
        let mut us: Vec<f64> = lib.iter().filter(|s| s.at <= now.at && now.at.duration_since(s.at).as_secs_f64() <= span).map(|s| s.us).collect();
        if us.len() < 100 {
            continue;
        }
        us.sort_by(f64::total_cmp);
        ratios.push(now.assemble_p50 / q(&us, 0.5));
    }
    if ratios.len() < 3 {
        return;
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "server/library assemble p50 under the same load at each sample after warm-up ({} samples): min {:.2}x, median {:.2}x, p90 {:.2}x, max {:.2}x",
        ratios.len(),
        ratios[0],
        q(&ratios, 0.5),
        q(&ratios, 0.9),
        ratios[ratios.len() - 1]
    );
}

fn report_rss(rss: &[Sample]) {
    let after = after_warm_up(rss);
    if after.len() < 3 {
        return;
    }
    let mb = |kb: u64| kb as f64 / 1024.0;
    let (lo, hi, trend, width) = spread(&after.iter().map(|r| mb(r.rss)).collect::<Vec<_>>());
    println!(
        "server RSS after warm-up (t>={}s, {} samples): first {:.1} MB, min {lo:.1} MB, max {hi:.1} MB, last {:.1} MB, last/first {:+.1}%, (max-min)/min {:.1}%",
        after[0].t,
        after.len(),
        mb(after[0].rss),
        mb(after[after.len() - 1].rss),
        trend * 100.0,
        width * 100.0
    );
    let (lo, hi, trend, width) = spread(&after.iter().map(|r| mb(r.held)).collect::<Vec<_>>());
    println!("sessions held (server's estimate): min {lo:.1} MB, max {hi:.1} MB, last/first {:+.1}%, (max-min)/min {:.1}%", trend * 100.0, width * 100.0);
    let (lo, hi, trend, width) = spread(&after.iter().map(|r| mb(r.rss.saturating_sub(r.held))).collect::<Vec<_>>());
    println!("RSS minus sessions held: min {lo:.1} MB, max {hi:.1} MB, last/first {:+.1}%, (max-min)/min {:.1}%", trend * 100.0, width * 100.0);
}

fn main() {
    let a = args();
    let convs = Arc::new(conversations(a.clients));
    let dir = std::env::temp_dir().join(format!("ctxwin-serve-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = a.store.clone().unwrap_or_else(|| format!("sqlite:{}", dir.join("load.db").display()));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let srv = start(&store, 2 * cores);
    let setup = agent();
    let run = std::process::id();
    for c in 0..a.clients {
        fill(&setup, &srv.base, &format!("load-{run}-{c}"), &convs[c % convs.len()], a.budget);
    }
    eprintln!("setup: {} sessions of {} turns on average", a.clients, convs.iter().map(|t| t.turns().len() / 2).sum::<usize>() / convs.len());
    let stop = Arc::new(AtomicBool::new(false));
    let progress: Vec<Arc<AtomicUsize>> = (0..a.clients).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    // The library's engines for the in-run comparison, built before the clock starts; they follow
    // the clients' sessions (not with `--refill bulk`, whose refills they do not replay).
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let paced = {
        let (convs, stop, clients, budget) = (Arc::clone(&convs), Arc::clone(&stop), a.clients, a.budget);
        let follow = (!a.bulk).then(|| progress.clone());
        std::thread::spawn(move || {
            let mut e = engines(&convs, clients);
            ready_tx.send(()).unwrap();
            library_under_load(&mut e, follow.as_deref(), budget, &stop)
        })
    };
    ready_rx.recv().unwrap();
    let addr = srv.base.trim_start_matches("http://").trim_end_matches('/').to_string();
    // The clients: one OS thread running every client as a task (an event loop, as wrk and oha
    // do), so the load generator takes as little of the two cores as it can.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let bodies = Arc::new(bodies(&convs));
    let metrics0 = setup.get(&format!("{}/metrics", srv.base)).call().unwrap().body_mut().read_to_string().unwrap();
    let started = Instant::now();
    let server_cpu0 = cpu_seconds(&format!("/proc/{}/stat", srv.child.id()));
    let own_cpu0 = cpu_seconds("/proc/self/stat");
    // Open loop: client `c` starts a turn every `clients / rate` seconds, the clients' slots
    // spread evenly over that period.
    let pace = |c: usize| {
        a.rate.map(|r| {
            let period = Duration::from_secs_f64(a.clients as f64 / r);
            Pace { first: started + period.mul_f64(c as f64 / a.clients as f64), period }
        })
    };
    let tasks: Vec<_> = (0..a.clients)
        .map(|c| {
            rt.spawn(client(
                addr.clone(),
                srv.base.clone(),
                format!("load-{run}-{c}"),
                (Arc::clone(&convs), Arc::clone(&bodies)),
                c,
                (a.budget, a.report, pace(c), a.bulk),
                (Arc::clone(&stop), Arc::clone(&progress[c])),
            ))
        })
        .collect();
    let runner = std::thread::spawn(move || {
        rt.block_on(async {
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        })
    });
    let rss = sample_rss(srv.child.id(), &srv.base, a.secs, a.rss_every);
    stop.store(true, Ordering::Relaxed);
    let under_load = paced.join().unwrap();
    let (mut windows, mut appends, mut turns, mut errors) = (Vec::new(), Vec::new(), Vec::new(), 0);
    let mut held = Vec::new();
    for m in runner.join().unwrap() {
        windows.extend(m.windows);
        held.extend(m.held);
        appends.extend(m.appends);
        turns.extend(m.turns);
        errors += m.errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(&format!("/proc/{}/stat", srv.child.id())) - server_cpu0;
    let own_cpu = cpu_seconds("/proc/self/stat") - own_cpu0;
    let metrics = setup.get(&format!("{}/metrics", srv.base)).call().unwrap().body_mut().read_to_string().unwrap();
    let scraped = Instant::now();
    drop(srv);
    windows.sort_by(f64::total_cmp);
    appends.sort_by(f64::total_cmp);
    turns.sort_by(f64::total_cmp);
    let server_side = |route: &str| {
        let name = format!("ctxwin_http_request_duration_seconds_bucket{{route=\"/v1/sessions/{{id}}/{route}\",le=");
        let (after, before) = (buckets(&metrics, &name), buckets(&metrics0, &name));
        let diff: Vec<(f64, f64)> = after.iter().map(|&(le, n)| (le, n - before.iter().find(|b| b.0 == le).map_or(0.0, |b| b.1))).collect();
        let total = diff.last().map_or(0.0, |d| d.1).max(1.0);
        let share = |le: f64| diff.iter().find(|d| d.0 == le).map_or(f64::NAN, |d| d.1 / total * 100.0);
        let bound = |p: f64| diff.iter().find(|d| d.1 >= p * total).map_or(f64::INFINITY, |d| d.0 * 1e3);
        format!("p50<={}ms p99<={}ms, {:.2}% <=5ms, {:.2}% <=10ms", bound(0.5), bound(0.99), share(0.005), share(0.01))
    };
    let server_p50 = metric(&metrics, "ctxwin_assemble_recent_seconds{quantile=\"0.5\"}").unwrap_or(f64::NAN) * 1e6;
    let server_p99 = metric(&metrics, "ctxwin_assemble_recent_seconds{quantile=\"0.99\"}").unwrap_or(f64::NAN) * 1e6;
    let mode = a.rate.map_or("closed loop".to_string(), |r| format!("open loop at {r:.0} turns/s"));
    let refill = if a.bulk { "bulk" } else { "continue" };
    println!("clients={} secs={:.1} budget={} report={} refill={refill} cores={cores} {mode}", a.clients, elapsed, a.budget, a.report);
    println!("windows: {} ({:.0}/s), errors {errors}", windows.len(), windows.len() as f64 / elapsed);
    held.sort_by(f64::total_cmp);
    let mean = held.iter().sum::<f64>() / held.len() as f64;
    println!("session size at each window: mean {mean:.0} turns, p50 {}, max {}", q(&held, 0.5), q(&held, 1.0));
    let per_window = |cpu: f64| cpu / windows.len().max(1) as f64 * 1e6;
    println!(
        "CPU per window (append + window): server {:.0}us, load process {:.0}us (clients and the paced library thread)",
        per_window(server_cpu),
        per_window(own_cpu)
    );
    println!("window latency (client): p50={:.2}ms p99={:.2}ms max={:.2}ms", q(&windows, 0.5) / 1e3, q(&windows, 0.99) / 1e3, q(&windows, 1.0) / 1e3);
    println!("append latency (client): p50={:.2}ms p99={:.2}ms", q(&appends, 0.5) / 1e3, q(&appends, 0.99) / 1e3);
    // The server's own time per request (its latency histogram over the timed phase, so bucket
    // bounds): from the request's arrival in the router to its reply, without the kernel's loopback
    // and the client's scheduling.
    println!("window latency (server, histogram): {}", server_side("window"));
    println!("append latency (server, histogram): {}", server_side("turns"));
    if !turns.is_empty() {
        println!(
            "turn latency (append + window; from the slot when behind schedule): p50={:.2}ms p99={:.2}ms p99.9={:.2}ms max={:.2}ms",
            q(&turns, 0.5) / 1e3,
            q(&turns, 0.99) / 1e3,
            q(&turns, 0.999) / 1e3,
            q(&turns, 1.0) / 1e3
        );
    }
    println!("server assemble (Session::assemble, wall): p50={server_p50:.0}us p99={server_p99:.0}us");
    let cpu_p50 = metric(&metrics, "ctxwin_assemble_cpu_recent_seconds{quantile=\"0.5\"}").unwrap_or(f64::NAN) * 1e6;
    let cpu_p99 = metric(&metrics, "ctxwin_assemble_cpu_recent_seconds{quantile=\"0.99\"}").unwrap_or(f64::NAN) * 1e6;
    println!("server assemble (Session::assemble, thread CPU time): p50={cpu_p50:.0}us p99={cpu_p99:.0}us");
    let steps = windows.len() / a.clients.max(1);
    let lib = library(&convs, a.clients, steps.clamp(1, 400), a.budget);
    println!("library assemble (Engine::assemble, same mix, {} samples): p50={:.0}us p99={:.0}us", lib.len(), q(&lib, 0.5), q(&lib, 0.99));
    println!("server/library assemble p50: wall {:.2}x, CPU {:.2}x", server_p50 / q(&lib, 0.5), cpu_p50 / q(&lib, 0.5));
    if !under_load.is_empty() {
        // The server's quantiles are of its last RECENT assembles: the library's samples of the
        // same span are compared with them (the whole run when it had fewer).
        let span = elapsed * (RECENT as f64 / windows.len().max(1) as f64).min(1.0);
        let same: Vec<&LibSample> = under_load.iter().filter(|s| scraped.duration_since(s.at).as_secs_f64() <= span).collect();
        let mut us: Vec<f64> = same.iter().map(|s| s.us).collect();
        us.sort_by(f64::total_cmp);
        let (p50, p99) = (q(&us, 0.5), q(&us, 0.99));
        let mean_held = same.iter().map(|s| s.held as f64).sum::<f64>() / same.len().max(1) as f64;
        println!(
            "library assemble during the load (same run, one engine step every 2 ms, the last {span:.0} s as the server's quantiles, {} samples, sessions of {mean_held:.0} turns on average): p50={p50:.0}us p99={p99:.0}us",
            us.len()
        );
        println!("server/library assemble p50 under the same load: wall {:.2}x, CPU {:.2}x", server_p50 / p50, cpu_p50 / p50);
        report_ratio_over_time(&rss, &under_load);
    }
    report_rss(&rss);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(errors, 0, "every request answered 200 and every window within budget");
}

/// User + system CPU seconds of the process whose `/proc/PID/stat` is `path` (0 if unreadable).
fn cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces): utime and
    // stime are the 12th and 13th, in clock ticks.
    let rest: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, r)| r).split_whitespace().collect();
    let field = |i: usize| rest.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // Clock ticks of 1/100 s (USER_HZ, 100 on every Linux this runs on).
    (field(11) + field(12)) / 100.0
}
