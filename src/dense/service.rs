//! A shared embedding service: one embedder and its cache behind a lock, used by many engines
//! (one per conversation) and by their background embedding workers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::dense::{Embedder, EmbeddingCache};
use crate::error::{Error, Result};

/// An embedder plus its cache, shareable across threads and engines (one per conversation) and their
/// background workers.
///
/// Queries go first. With a second instance of the model for queries ([`with_query_embedder`](Self::with_query_embedder);
/// [`load`](Self::load) makes one), a query never waits for background work, only for other
/// queries. Without one, background workers hold back while a query waits, so it waits for at most
/// the small batch in progress. The cache is locked only to look up and to store, never while a
/// model runs.
pub struct EmbeddingService {
    cache: Mutex<EmbeddingCache>,
    background: Mutex<Box<dyn Embedder + Send>>,
    query: Option<Mutex<Box<dyn Embedder + Send>>>,
    /// Queries waiting for (or holding) the background model.
    queries: AtomicUsize,
    model_id: String,
    dim: usize,
}

impl std::fmt::Debug for EmbeddingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingService").field("model_id", &self.model_id).field("dim", &self.dim).field("query_model", &self.query.is_some()).finish()
    }
}

fn poisoned() -> Error {
    Error::Embeddings("the embedding service's lock is poisoned".into())
}

/// Which model a call may use.
#[derive(Clone, Copy, PartialEq)]
enum Lane {
    Query,
    Background,
}

impl EmbeddingService {
    /// A service around `embedder` and `cache`.
    pub fn new(embedder: Box<dyn Embedder + Send>, cache: EmbeddingCache) -> Arc<Self> {
        Arc::new(Self::plain(embedder, cache))
    }

    /// A service with a second instance of the same model that only embeds queries, so queries
    /// never queue behind background batches. Fails when the two are not the same model.
    pub fn with_query_embedder(embedder: Box<dyn Embedder + Send>, query: Box<dyn Embedder + Send>, cache: EmbeddingCache) -> Result<Arc<Self>> {
        if query.model_id() != embedder.model_id() || query.dim() != embedder.dim() {
            return Err(Error::Embeddings(format!(
                "the query model {:?} (dim {}) is not the model {:?} (dim {})",
                query.model_id(),
                query.dim(),
                embedder.model_id(),
                embedder.dim()
            )));
        }
        let mut s = Self::plain(embedder, cache);
        s.query = Some(Mutex::new(query));
        Ok(Arc::new(s))
    }

    fn plain(embedder: Box<dyn Embedder + Send>, cache: EmbeddingCache) -> Self {
        let model_id = embedder.model_id().to_string();
        let dim = embedder.dim();
        EmbeddingService { cache: Mutex::new(cache), background: Mutex::new(embedder), query: None, queries: AtomicUsize::new(0), model_id, dim }
    }

    /// Loads all-MiniLM-L6-v2 from `dir` (see `scripts/fetch-models.sh`) twice, for background
    /// work and for queries, with an in-memory cache and, when `cache_file` is given, a disk cache
    /// for replays. Returns the service and what was found in the disk cache.
    #[cfg(feature = "dense")]
    pub fn load(dir: &std::path::Path, cache_file: Option<&std::path::Path>) -> Result<(Arc<Self>, Option<crate::dense::DiskCacheStatus>)> {
        let embedder = crate::dense::FastEmbedder::load(dir)?;
        let query = crate::dense::FastEmbedder::load(dir)?;
        let cap = std::num::NonZeroUsize::new(1 << 16).unwrap_or(std::num::NonZeroUsize::MIN);
        let (cache, status) = match cache_file {
            Some(p) => {
                let (c, s) = EmbeddingCache::try_open(p, cap, &embedder)?;
                (c, Some(s))
            }
            None => (EmbeddingCache::new(cap), None),
        };
        Ok((EmbeddingService::with_query_embedder(Box::new(embedder), Box::new(query), cache)?, status))
    }

    /// The model's id.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The vectors' dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Unit vectors of `texts`, embedding only the ones not cached, as background work: waiting
    /// queries go first.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Arc<[f32]>>> {
        self.embed_on(Lane::Background, texts)
    }

    /// The unit vector of a query, ahead of any background work.
    pub fn embed_query(&self, text: &str) -> Result<Arc<[f32]>> {
        self.embed_on(Lane::Query, &[text])?.pop().ok_or_else(|| Error::Embeddings("the embedder returned no vector".into()))
    }

    fn embed_on(&self, lane: Lane, texts: &[&str]) -> Result<Vec<Arc<[f32]>>> {
        let lookup = self.cache.lock().map_err(|_| poisoned())?.lookup(&self.model_id, self.dim, texts)?;
        let vectors = if lookup.misses().is_empty() {
            Vec::new()
        } else {
            let miss: Vec<&str> = lookup.misses().iter().map(|&i| texts[i]).collect();
            match (lane, &self.query) {
                (Lane::Query, Some(model)) => model.lock().map_err(|_| poisoned())?.embed(&miss)?,
                (Lane::Query, None) => {
                    /// Counts the query as waiting until it is done, whatever happens.
                    struct Waiting<'a>(&'a AtomicUsize);
                    impl Drop for Waiting<'_> {
                        fn drop(&mut self) {
                            self.0.fetch_sub(1, Ordering::AcqRel);
                        }
                    }
                    self.queries.fetch_add(1, Ordering::AcqRel);
                    let _waiting = Waiting(&self.queries);
                    self.background.lock().map_err(|_| poisoned())?.embed(&miss)?
                }
                (Lane::Background, _) => {
                    while self.queries.load(Ordering::Acquire) > 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    self.background.lock().map_err(|_| poisoned())?.embed(&miss)?
                }
            }
        };
        self.cache.lock().map_err(|_| poisoned())?.complete(lookup, vectors)
    }

    /// Cache counters so far.
    pub fn stats(&self) -> Option<crate::dense::CacheStats> {
        self.cache.lock().ok().map(|c| c.stats())
    }
}

/// A background worker embedding pushed turns, so `push` and `assemble` never wait for the model.
pub(crate) struct EmbedWorker {
    tx: Option<std::sync::mpsc::Sender<(usize, String)>>,
    rx: std::sync::mpsc::Receiver<(usize, Result<Arc<[f32]>>)>,
    handle: Option<std::thread::JoinHandle<()>>,
    /// Turns sent and not yet received.
    pub(crate) in_flight: usize,
}

/// Texts embedded per model call at most. Small, so a query waits for little: per text, batches of
/// 8 cost no more than batches of 32 here (`examples/embed_speed.rs`).
const BATCH: usize = 8;

impl EmbedWorker {
    pub(crate) fn start(service: Arc<EmbeddingService>) -> Self {
        let (tx, jobs) = std::sync::mpsc::channel::<(usize, String)>();
        let (done, rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new().name("ctxwin-embed".into()).spawn(move || {
            while let Ok(first) = jobs.recv() {
                let mut batch = vec![first];
                while batch.len() < BATCH {
                    match jobs.try_recv() {
                        Ok(j) => batch.push(j),
                        Err(_) => break,
                    }
                }
                let texts: Vec<&str> = batch.iter().map(|(_, t)| t.as_str()).collect();
                match service.embed(&texts) {
                    Ok(vs) => {
                        for ((id, _), v) in batch.iter().zip(vs) {
                            if done.send((*id, Ok(v))).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        for (id, _) in &batch {
                            if done.send((*id, Err(Error::Embeddings(e.to_string())))).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        EmbedWorker { tx: Some(tx), rx, handle: handle.ok(), in_flight: 0 }
    }

    pub(crate) fn send(&mut self, id: usize, text: String) -> Result<()> {
        let tx = self.tx.as_ref().ok_or_else(|| Error::Embeddings("the embedding worker has stopped".into()))?;
        tx.send((id, text)).map_err(|_| Error::Embeddings("the embedding worker has stopped".into()))?;
        self.in_flight += 1;
        Ok(())
    }

    /// Results ready now (never blocks).
    pub(crate) fn try_take(&mut self) -> Vec<(usize, Result<Arc<[f32]>>)> {
        let mut out = Vec::new();
        while let Ok(r) = self.rx.try_recv() {
            self.in_flight -= 1;
            out.push(r);
        }
        out
    }

    /// Waits for one result.
    pub(crate) fn take_one(&mut self) -> Result<(usize, Result<Arc<[f32]>>)> {
        let r = self.rx.recv().map_err(|_| Error::Embeddings("the embedding worker has stopped".into()))?;
        self.in_flight -= 1;
        Ok(r)
    }
}

impl Drop for EmbedWorker {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroUsize;

    /// Takes 20 ms a call and records the first text of each call.
    struct Slow {
        calls: Arc<Mutex<Vec<String>>>,
    }

    impl Embedder for Slow {
        fn model_id(&self) -> &str {
            "slow"
        }
        fn dim(&self) -> usize {
            2
        }
        fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
            std::thread::sleep(Duration::from_millis(20));
            if let (Ok(mut c), Some(t)) = (self.calls.lock(), texts.first()) {
                c.push((*t).to_string());
            }
            Ok(texts.iter().map(|_| vec![1.0, 0.0]).collect())
        }
    }

    #[test]
    fn a_query_goes_ahead_of_queued_background_batches() -> Result<()> {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let cache = EmbeddingCache::new(NonZeroUsize::MIN.saturating_add(1000));
        let service = EmbeddingService::new(Box::new(Slow { calls: Arc::clone(&calls) }), cache);
        let mut worker = EmbedWorker::start(Arc::clone(&service));
        // Six batches of background work (about 120 ms), then a query while the first runs.
        for i in 0..6 * BATCH {
            worker.send(i, format!("turn {i}"))?;
        }
        std::thread::sleep(Duration::from_millis(5));
        let v = service.embed_query("the query")?;
        assert_eq!(&*v, &[1.0, 0.0]);
        while worker.in_flight > 0 {
            worker.take_one()?.1?;
        }
        let calls = calls.lock().map_err(|_| Error::Embeddings("poisoned".into()))?.clone();
        let at = calls.iter().position(|c| c == "the query");
        // The query waited for at most the batch in progress (and one that raced it), not the queue.
        assert!(matches!(at, Some(1..=2)), "{calls:?}");
        assert_eq!(calls.len(), 7, "six batches and the query: {calls:?}");
        Ok(())
    }

    #[test]
    fn background_work_holds_back_while_a_query_waits() -> Result<()> {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let cache = EmbeddingCache::new(NonZeroUsize::MIN.saturating_add(10));
        let service = EmbeddingService::new(Box::new(Slow { calls: Arc::clone(&calls) }), cache);
        // A query is waiting for the model (as if blocked on the lock).
        service.queries.fetch_add(1, Ordering::AcqRel);
        let bg = Arc::clone(&service);
        let handle = std::thread::spawn(move || bg.embed(&["background"]).map(|v| v.len()));
        std::thread::sleep(Duration::from_millis(60));
        let held_back = calls.lock().map(|c| c.is_empty()).unwrap_or(false);
        service.queries.fetch_sub(1, Ordering::AcqRel);
        let done = handle.join().map_err(|_| Error::Embeddings("background thread panicked".into()))??;
        assert!(held_back, "background work started while a query waited");
        assert_eq!(done, 1);
        assert_eq!(calls.lock().map(|c| c.len()).unwrap_or(0), 1);
        Ok(())
    }

    #[test]
    fn with_a_query_model_a_query_never_waits_for_background_work() -> Result<()> {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let cache = EmbeddingCache::new(NonZeroUsize::MIN.saturating_add(10));
        let service = EmbeddingService::with_query_embedder(Box::new(Slow { calls: Arc::clone(&calls) }), Box::new(Slow { calls: Arc::clone(&calls) }), cache)?;
        // Background work holds the background model for as long as it likes.
        let held = service.background.lock().map_err(|_| poisoned())?;
        let s = Arc::clone(&service);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(s.embed_query("the query").map(|v| v.len()));
        });
        let got = rx.recv_timeout(Duration::from_secs(5)).map_err(|_| Error::Embeddings("the query waited".into()))??;
        drop(held);
        assert_eq!(got, 2);
        // Cached now, for both lanes.
        assert_eq!(service.embed(&["the query"])?.len(), 1);
        assert_eq!(calls.lock().map(|c| c.len()).unwrap_or(0), 1);
        Ok(())
    }

    #[test]
    fn a_query_model_must_be_the_same_model() {
        struct Other;
        impl Embedder for Other {
            fn model_id(&self) -> &str {
                "other"
            }
            fn dim(&self) -> usize {
                2
            }
            fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
                Ok(texts.iter().map(|_| vec![0.0, 1.0]).collect())
            }
        }
        let cache = EmbeddingCache::new(NonZeroUsize::MIN);
        let calls = Arc::new(Mutex::new(Vec::new()));
        let err = EmbeddingService::with_query_embedder(Box::new(Slow { calls }), Box::new(Other), cache).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("\"other\""), "{err}");
    }
}
