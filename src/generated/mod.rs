//! Generated summaries: a model writes them in the background, the window never waits.
//!
//! A [`SummaryService`] (shared by every engine of a process, like the embedding service) owns one
//! worker thread, the [`EndpointConfig`]'s client and a cache of generated summaries keyed by the
//! model, the prompt version and the run's content (in memory, and in an append-only file when
//! [`GeneratedConfig::cache_file`] is set, so replays and restarts do not generate again).
//!
//! When a plan leaves a run out, `crate::plan::gaps::Summaries` looks the run up here: a cached,
//! accepted summary that fits the allowance is used at once; otherwise the extractive summary is
//! used at once (a *fallback*, counted in the window's report) and the run is queued. The worker
//! asks the model; a run that extends one already summarized (the same first turns plus a few more)
//! is summarized from the previous summary and the new turns only, and a run too long for one
//! request is summarized in parts, each extending the last. Every summary goes through the guard
//! (`guard.rs`): one that mentions more than [`GeneratedConfig::max_unsupported`] terms found
//! nowhere in its run is rejected (remembered, never shown). A failing or hung endpoint only ever
//! leaves runs extractive: `assemble` takes a lock held for a map lookup, never the model's time.

pub(crate) mod client;
mod disk;
mod guard;
#[cfg(feature = "local-llm")]
mod local;
pub(crate) mod prompt;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

pub use client::EndpointConfig;
#[cfg(feature = "local-llm")]
pub use local::LocalModelServer;

use crate::dense::fnv::{chain_key, text_key};
use crate::error::{Error, Result};
use client::Client;
use disk::{Stored, SummaryDisk};

/// Settings of the generated summarizer. Build with [`GeneratedConfig::new`] and the setters.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedConfig {
    endpoint: EndpointConfig,
    cache_file: Option<PathBuf>,
    max_unsupported: usize,
    chunk_tokens: usize,
    queue_limit: usize,
}

impl GeneratedConfig {
    /// Summaries from `endpoint`; defaults: no cache file, at most 3 unsupported terms, 1,500 run
    /// tokens per request, 256 runs queued.
    pub fn new(endpoint: EndpointConfig) -> Self {
        GeneratedConfig { endpoint, cache_file: None, max_unsupported: 3, chunk_tokens: 1500, queue_limit: 256 }
    }
    /// Keep generated summaries in this append-only file too (created if absent).
    pub fn cache_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.cache_file = Some(path.into());
        self
    }
    /// A summary mentioning more terms (identifiers, paths, numbers, names) absent from its run
    /// than this is rejected and the extractive one is used.
    pub fn max_unsupported(mut self, n: usize) -> Self {
        self.max_unsupported = n;
        self
    }
    /// Largest part of a run (in tokens as rendered) sent in one request; longer runs are
    /// summarized part by part, each part extending the summary of the parts before.
    pub fn chunk_tokens(mut self, n: usize) -> Self {
        self.chunk_tokens = n.max(1);
        self
    }
    /// Most runs waiting for the worker; beyond it the oldest request is dropped (and counted).
    pub fn queue_limit(mut self, n: usize) -> Self {
        self.queue_limit = n.max(1);
        self
    }
    /// The endpoint.
    pub fn endpoint(&self) -> &EndpointConfig {
        &self.endpoint
    }
}

/// What the service has done so far (all engines sharing it).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GenerationStats {
    /// Requests sent to the model (parts of long runs count one each; retries do not).
    pub requests: usize,
    /// Requests that extended a previous summary instead of starting over.
    pub extensions: usize,
    /// Summaries accepted by the guard.
    pub accepted: usize,
    /// Summaries rejected by the guard.
    pub rejected: usize,
    /// Runs whose generation failed (endpoint error or timeout after the retries).
    pub failed: usize,
    /// Runs dropped from a full queue.
    pub dropped: usize,
    /// Summaries loaded from the cache file when the service started.
    pub loaded: usize,
    /// Latency of each request, ms.
    pub latency_ms: Vec<u64>,
    /// The last endpoint error, if any.
    pub last_error: Option<String>,
}

/// What the cache knows about a run.
#[derive(Debug, Clone)]
pub(crate) enum Done {
    /// Generated (accepted or rejected by the guard).
    Stored(Stored),
    /// The endpoint failed for it (not retried within this process).
    Failed,
}

/// A run to generate: per turn, its cache key (of the run up to and including it), its text and tokens.
pub(crate) struct Job {
    pub(crate) keys: Vec<u128>,
    pub(crate) texts: Vec<Arc<str>>,
    pub(crate) tokens: Vec<usize>,
    pub(crate) max_tokens: usize,
}

struct State {
    done: FxHashMap<u128, Done>,
    queue: VecDeque<Job>,
    queued: FxHashSet<u128>,
    busy: bool,
    shutdown: bool,
    stats: GenerationStats,
    disk: Option<SummaryDisk>,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    idle: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The background generator of summaries, shared by engines (see the module docs).
pub struct SummaryService {
    key_base: u128,
    config: GeneratedConfig,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SummaryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SummaryService").field("endpoint", &self.config.endpoint.base_url).field("model", &self.config.endpoint.model).finish()
    }
}

impl SummaryService {
    /// Starts the worker (and reads the cache file, if any). No request is made until a run is queued.
    pub fn start(config: GeneratedConfig) -> Result<Arc<SummaryService>> {
        let (disk, done) = match &config.cache_file {
            Some(p) => {
                let (d, found) = SummaryDisk::open(p)?;
                (Some(d), found.into_iter().map(|(k, s)| (k, Done::Stored(s))).collect())
            }
            None => (None, FxHashMap::default()),
        };
        let stats = GenerationStats { loaded: done.len(), ..GenerationStats::default() };
        let state = State { done, queue: VecDeque::new(), queued: FxHashSet::default(), busy: false, shutdown: false, stats, disk };
        let shared = Arc::new(Shared { state: Mutex::new(state), work: Condvar::new(), idle: Condvar::new() });
        let key_base = text_key(&config.endpoint.model, &format!("ctxwin-summary-prompt-v{}", prompt::PROMPT_VERSION));
        let worker = Worker { shared: Arc::clone(&shared), client: Client::new(config.endpoint.clone()), config: config.clone() };
        std::thread::Builder::new().name("ctxwin-summaries".into()).spawn(move || worker.run()).map_err(|e| Error::Endpoint {
            url: config.endpoint.base_url.clone(),
            attempts: 0,
            message: format!("cannot start the worker thread: {e}"),
        })?;
        Ok(Arc::new(SummaryService { key_base, config, shared }))
    }

    /// The key of a run that starts with nothing (chain turn keys onto it with [`Self::chain`]).
    pub(crate) fn key_base(&self) -> u128 {
        self.key_base
    }

    /// The key of a run extended by one turn whose content key is `turn`.
    pub(crate) fn chain(prev: u128, turn: u128) -> u128 {
        chain_key(prev, turn)
    }

    /// What the cache holds for the run `key`: `Ok(done)`, or `Err(queued)` when it has nothing yet.
    pub(crate) fn lookup(&self, key: u128) -> std::result::Result<Done, bool> {
        let st = self.shared.lock();
        st.done.get(&key).cloned().ok_or_else(|| st.queued.contains(&key))
    }

    /// Queues `job` unless its run is cached or already queued.
    pub(crate) fn request(&self, job: Job) {
        let Some(&key) = job.keys.last() else { return };
        let mut st = self.shared.lock();
        if st.shutdown || st.done.contains_key(&key) || !st.queued.insert(key) {
            return;
        }
        if st.queue.len() >= self.config.queue_limit
            && let Some(old) = st.queue.pop_front()
        {
            if let Some(k) = old.keys.last() {
                st.queued.remove(k);
            }
            st.stats.dropped += 1;
        }
        st.queue.push_back(job);
        self.shared.work.notify_one();
    }

    /// Waits until the queue is empty and the worker idle, at most `timeout`; whether it is.
    /// (Replays call it so that their windows do not depend on timing; hosts never need to.)
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        while st.busy || !st.queue.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self.shared.idle.wait_timeout(st, left).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0);
        }
        true
    }

    /// Counters so far.
    pub fn stats(&self) -> GenerationStats {
        self.shared.lock().stats.clone()
    }

    /// The settings.
    pub fn config(&self) -> &GeneratedConfig {
        &self.config
    }
}

impl Drop for SummaryService {
    fn drop(&mut self) {
        // The worker may be inside a request (a hung endpoint): it is told to stop and left to
        // finish on its own, never waited for.
        self.shared.lock().shutdown = true;
        self.shared.work.notify_all();
    }
}

struct Worker {
    shared: Arc<Shared>,
    client: Client,
    config: GeneratedConfig,
}

impl Worker {
    fn run(self) {
        loop {
            let job = {
                let mut st = self.shared.lock();
                loop {
                    if st.shutdown {
                        return;
                    }
                    if let Some(j) = st.queue.pop_back() {
                        st.busy = true;
                        break j;
                    }
                    self.shared.idle.notify_all();
                    st = self.shared.work.wait(st).unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            };
            self.generate(&job);
            let mut st = self.shared.lock();
            if let Some(k) = job.keys.last() {
                st.queued.remove(k);
            }
            st.busy = false;
            if st.queue.is_empty() {
                self.shared.idle.notify_all();
            }
        }
    }

    /// The longest proper prefix of the job's run with an accepted summary: (turns covered, text).
    fn cached_prefix(&self, job: &Job) -> Option<(usize, String)> {
        let st = self.shared.lock();
        let n = job.keys.len();
        (0..n.saturating_sub(1)).rev().find_map(|j| match st.done.get(&job.keys[j]) {
            Some(Done::Stored(s)) if s.accepted => Some((j + 1, s.text.clone())),
            _ => None,
        })
    }

    /// Generates the job's run part by part (starting from a cached prefix), storing each part's
    /// summary under the key of the run up to it.
    fn generate(&self, job: &Job) {
        let n = job.keys.len();
        let (mut start, mut prev) = match self.cached_prefix(job) {
            Some((k, text)) => (k, Some(text)),
            None => (0, None),
        };
        let system = prompt::system();
        let words = prompt::words_for(job.max_tokens);
        while start < n {
            let mut end = start + 1;
            let mut tokens = job.tokens[start];
            while end < n && tokens + job.tokens[end] <= self.config.chunk_tokens {
                tokens += job.tokens[end];
                end += 1;
            }
            let texts: Vec<&str> = job.texts[start..end].iter().map(|t| &**t).collect();
            let user = match &prev {
                Some(p) => prompt::extend(p, &texts, words),
                None => prompt::fresh(&texts, words),
            };
            let t0 = Instant::now();
            let reply = self.client.complete(&system, &user, job.max_tokens);
            let latency_ms = t0.elapsed().as_millis() as u64;
            let text = match reply {
                Ok(t) => t,
                Err(e) => {
                    let mut st = self.shared.lock();
                    st.stats.requests += 1;
                    st.stats.failed += 1;
                    st.stats.last_error = Some(e.to_string());
                    st.done.insert(job.keys[n - 1], Done::Failed);
                    return;
                }
            };
            let source = job.texts[..end].join("\n");
            let unsupported = guard::unsupported_terms(&text, &source).len();
            let accepted = unsupported <= self.config.max_unsupported && !text.trim().is_empty();
            let stored = Stored { accepted, unsupported: unsupported as u32, latency_ms: latency_ms as u32, text };
            self.store(job.keys[end - 1], &stored, Some((prev.is_some(), latency_ms)));
            if !accepted {
                if end < n {
                    // The whole run is remembered as rejected too, so it is not queued again.
                    self.store(job.keys[n - 1], &stored, None);
                }
                return;
            }
            prev = Some(stored.text);
            start = end;
        }
    }

    /// Caches (and persists) `s` as the summary of the run `key`; `request` is (extension, latency)
    /// when it is the reply to a request of its own (counted in the stats).
    fn store(&self, key: u128, s: &Stored, request: Option<(bool, u64)>) {
        let mut st = self.shared.lock();
        if let Some((extension, latency_ms)) = request {
            st.stats.requests += 1;
            st.stats.extensions += usize::from(extension);
            st.stats.latency_ms.push(latency_ms);
            if s.accepted {
                st.stats.accepted += 1;
            } else {
                st.stats.rejected += 1;
            }
        }
        if st.done.contains_key(&key) {
            return;
        }
        if let Some(d) = st.disk.as_mut()
            && let Err(e) = d.append(key, s)
        {
            st.stats.last_error = Some(e.to_string());
            st.disk = None;
        }
        st.done.insert(key, Done::Stored(s.clone()));
    }
}

#[cfg(all(test, feature = "local-llm"))]
mod tests {
    use super::*;

    #[test]
    fn a_run_grown_by_two_turns_extends_its_previous_summary() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
        if !path.exists() {
            assert!(std::env::var_os("CTXWIN_REQUIRE_MODELS").is_none(), "{} is missing", path.display());
            return;
        }
        let server = LocalModelServer::start(&path, 0, 2).unwrap();
        let endpoint = EndpointConfig::new(server.base_url(), server.model_name()).timeout(Duration::from_secs(300));
        let service = SummaryService::start(GeneratedConfig::new(endpoint).max_unsupported(usize::MAX)).unwrap();
        let texts: Vec<String> = (0..6).map(|i| format!("user: step {i}: I edited src/mod_{i}.rs and ran the tests.")).collect();
        let mut k = service.key_base();
        let keys: Vec<u128> = texts
            .iter()
            .map(|t| {
                k = SummaryService::chain(k, text_key("turn", t));
                k
            })
            .collect();
        let job =
            |n: usize| Job { keys: keys[..n].to_vec(), texts: texts[..n].iter().map(|t| Arc::from(t.as_str())).collect(), tokens: vec![20; n], max_tokens: 64 };
        service.request(job(4));
        assert!(service.wait_idle(Duration::from_secs(300)));
        assert_eq!((service.stats().requests, service.stats().extensions), (1, 0));
        service.request(job(6));
        assert!(service.wait_idle(Duration::from_secs(300)));
        let stats = service.stats();
        assert_eq!((stats.requests, stats.extensions, stats.failed), (2, 1, 0));
        assert!(matches!(service.lookup(keys[5]), Ok(Done::Stored(s)) if s.accepted && !s.text.is_empty()));
        // Asking again for a cached run makes no request.
        service.request(job(6));
        assert!(service.wait_idle(Duration::from_secs(5)));
        assert_eq!(service.stats().requests, 2);
    }
}
