//! Generated summaries through the engine: a stalled endpoint (a real TCP listener that accepts and
//! never answers) and a failing one (real HTTP 500s) leave windows extractive, counted, never
//! blocked or failed; with the `local-llm` feature and the fetched SmolLM2 model, summaries from a
//! real model served on loopback replace the extractive ones and survive a restart through the
//! cache file.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ctxwin::{EndpointConfig, Engine, EngineConfig, GeneratedConfig, Policy, Request, SummaryService, SummarySource, Turn, Window};

/// A conversation long enough that a small window leaves runs out.
fn conversation() -> Vec<Turn> {
    let mut turns = Vec::new();
    for i in 0..24 {
        turns.push(Turn::user(format!("Caroline: on day {i} I worked on module parser_{i} in src/parser_{i}.rs and the build took {} seconds.", 100 + i)));
        turns.push(Turn::assistant(format!("Melanie: good; parser_{i} needs a test for nested input before release {}.", 2000 + i)));
    }
    turns
}

fn engine_with(service: &Arc<SummaryService>) -> Engine {
    let cfg = EngineConfig::default().policy(Policy::default()).generated_summaries(Arc::clone(service));
    let mut e = Engine::new(cfg).unwrap();
    for t in conversation() {
        e.push(t).unwrap();
    }
    e
}

fn window(e: &mut Engine) -> Window {
    // A fresh plan state each time: the next-call window of the whole history (a quarter of the
    // budget may go to summaries).
    let w = e.assemble_with(&mut ctxwin::PlanState::new(Policy::default()), 700, Request::NextCall).unwrap();
    assert!(w.total_tokens() <= 700);
    w
}

fn sources(w: &Window) -> Vec<SummarySource> {
    w.summaries().iter().map(|s| s.source).collect()
}

#[test]
fn a_stalled_endpoint_never_blocks_a_window_and_every_summary_falls_back() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let (a, h) = (Arc::clone(&accepted), Arc::clone(&held));
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            a.fetch_add(1, Ordering::SeqCst);
            h.lock().unwrap().push(s); // accepted, never answered
        }
    });
    let endpoint = EndpointConfig::new(url, "stalled").timeout(Duration::from_secs(30)).retries(0, Duration::ZERO);
    let service = SummaryService::start(GeneratedConfig::new(endpoint)).unwrap();
    let mut e = engine_with(&service);
    let first = window(&mut e);
    assert!(!first.summaries().is_empty());
    // Wait until the worker is inside its request to the stalled endpoint.
    while accepted.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut windows = vec![first];
    for _ in 0..20 {
        windows.push(window(&mut e));
    }
    // The worker is still stuck (30 s timeout, no reply): every window was built without it.
    assert!(!service.wait_idle(Duration::ZERO));
    for w in &windows {
        assert!(sources(w).iter().all(|&s| s == SummarySource::FallbackPending), "{:?}", sources(w));
    }
    let stats = service.stats();
    assert_eq!((stats.accepted, stats.failed), (0, 0));
}

/// Reads one HTTP request from `s` (headers, then `Content-Length` bytes) and returns its body.
fn read_request(s: &std::net::TcpStream) -> Vec<u8> {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut len = 0usize;
    let mut line = String::new();
    while r.read_line(&mut line).is_ok_and(|n| n > 2) {
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        line.clear();
    }
    let mut body = vec![0u8; len];
    let _ = std::io::Read::read_exact(&mut r, &mut body);
    body
}

/// A real HTTP server that answers every request with `500`, counting them.
fn failing_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let _ = read_request(&s);
            c.fetch_add(1, Ordering::SeqCst);
            let _ = s.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, count)
}

#[test]
fn a_failing_endpoint_leaves_summaries_extractive_and_is_counted() {
    let (url, requests) = failing_server();
    let endpoint = EndpointConfig::new(url, "failing").timeout(Duration::from_secs(5)).retries(2, Duration::from_millis(5));
    let service = SummaryService::start(GeneratedConfig::new(endpoint)).unwrap();
    let mut e = engine_with(&service);
    let first = window(&mut e);
    let runs = first.summaries().len();
    assert!(runs > 0 && sources(&first).iter().all(|&s| s == SummarySource::FallbackPending));
    assert!(service.wait_idle(Duration::from_secs(30)));
    let second = window(&mut e);
    assert_eq!(sources(&second), vec![SummarySource::FallbackFailed; runs]);
    // Same text as the extractive summarizer alone would give.
    let mut plain = Engine::new(EngineConfig::default()).unwrap();
    for t in conversation() {
        plain.push(t).unwrap();
    }
    assert_eq!(second.text(), window(&mut plain).text());
    let stats = service.stats();
    assert_eq!(stats.failed, runs);
    assert!(stats.last_error.as_deref().is_some_and(|m| m.contains("HTTP 500")));
    // Each run: one request and two retries.
    assert_eq!(requests.load(Ordering::SeqCst), 3 * runs);
}

/// A real chat-completions endpoint on loopback that answers every request at once with a one-line
/// summary quoted from the run it is given (the first words of its first turn, so the guard accepts it).
fn quoting_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let body = read_request(&s);
            let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let user = req["messages"].as_array().and_then(|m| m.last()).and_then(|m| m["content"].as_str()).unwrap_or_default().to_string();
            let first = user.split("---\n").nth(1).unwrap_or_default();
            let quote: Vec<&str> = first.split_whitespace().take(6).collect();
            let reply = serde_json::json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": quote.join(" ")}, "finish_reason": "stop"}]})
                .to_string();
            let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", reply.len());
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(reply.as_bytes());
        }
    });
    url
}

/// With `--summary-wait`, a replay's measured windows show generated summaries only: a short
/// generated summary leaves room to summarize runs the first untimed window did not ask for, and
/// the probe settles those too instead of measuring them as pending fallbacks.
#[test]
fn a_waiting_replay_measures_windows_with_no_summary_pending() {
    use ctxwin::replay::{BudgetSpec, CompareConfig, GeneratedReplay, compare};
    let service = SummaryService::start(GeneratedConfig::new(EndpointConfig::new(quoting_server(), "quoting"))).unwrap();
    let mut policy = Policy::default();
    policy.set("query_summary_share", "0.25").unwrap();
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/samples/synth-conversation.locomo.json");
    let cfg = CompareConfig::new(vec![data], vec![("ctxwin".into(), policy)], vec![BudgetSpec::Tokens(1000)])
        .threads(1)
        .generated_summaries(GeneratedReplay::new(Arc::clone(&service), Duration::from_secs(60)));
    let report = compare(&cfg).unwrap();
    let s = &report.runs[0].summaries;
    assert!(s.count > 0, "{s:?}");
    assert_eq!((s.fallbacks, s.generated_share), (0, Some(1.0)), "{s:?}");
    assert!(service.stats().accepted > 0);
}

#[cfg(feature = "local-llm")]
mod local {
    use super::*;
    use ctxwin::LocalModelServer;

    /// The pinned SmolLM2 model (scripts/fetch-models.sh), or `None` when absent (a failure with
    /// `CTXWIN_REQUIRE_MODELS=1`).
    fn model() -> Option<std::path::PathBuf> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
        if p.exists() {
            return Some(p);
        }
        assert!(std::env::var_os("CTXWIN_REQUIRE_MODELS").is_none(), "{} is missing: run scripts/fetch-models.sh", p.display());
        eprintln!("skipping: {} is absent", p.display());
        None
    }

    fn config(server: &LocalModelServer) -> GeneratedConfig {
        let endpoint = EndpointConfig::new(server.base_url(), server.model_name()).timeout(Duration::from_secs(300)).max_output_tokens(96);
        // The 135M model invents now and then; these tests are about the plumbing, not its quality.
        GeneratedConfig::new(endpoint).max_unsupported(usize::MAX)
    }

    #[test]
    fn a_real_local_model_writes_the_summaries_and_a_restart_reuses_them() {
        let Some(path) = model() else { return };
        let server = LocalModelServer::start(&path, 0, 2).unwrap();
        let dir = std::env::temp_dir().join(format!("ctxwin-gen-test-{}", std::process::id()));
        let file = dir.join("summaries.bin");
        let _ = std::fs::remove_dir_all(&dir);
        let (text, runs) = {
            let service = SummaryService::start(config(&server).cache_file(&file)).unwrap();
            let mut e = engine_with(&service);
            let first = window(&mut e);
            assert!(sources(&first).iter().all(|&s| s == SummarySource::FallbackPending));
            assert!(service.wait_idle(Duration::from_secs(600)));
            let second = window(&mut e);
            assert_eq!(sources(&second), vec![SummarySource::Generated; first.summaries().len()]);
            assert!(second.summaries().iter().all(|s| s.generation_ms.is_some()));
            let stats = service.stats();
            assert!(stats.requests >= second.summaries().len() && stats.failed == 0, "{stats:?}");
            (second.text(), second.summaries().len())
        };
        // A new service on the same file: the same window at once, without asking the model.
        let service = SummaryService::start(config(&server).cache_file(&file)).unwrap();
        assert!(service.stats().loaded >= runs);
        let mut e = engine_with(&service);
        let again = window(&mut e);
        assert_eq!(again.text(), text);
        assert_eq!(service.stats().requests, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
