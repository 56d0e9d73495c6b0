//! A shared embedding service: one embedder and its cache behind a lock, used by many engines
//! (one per conversation) and by their background embedding workers.

use std::sync::{Arc, Mutex};

use crate::dense::{Embedder, EmbeddingCache};
use crate::error::{Error, Result};

/// An embedder plus its cache, shareable across threads and engines.
pub struct EmbeddingService {
    inner: Mutex<(Box<dyn Embedder + Send>, EmbeddingCache)>,
    model_id: String,
    dim: usize,
}

impl std::fmt::Debug for EmbeddingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingService").field("model_id", &self.model_id).field("dim", &self.dim).finish()
    }
}

impl EmbeddingService {
    /// A service around `embedder` and `cache`.
    pub fn new(embedder: Box<dyn Embedder + Send>, cache: EmbeddingCache) -> Arc<Self> {
        let model_id = embedder.model_id().to_string();
        let dim = embedder.dim();
        Arc::new(EmbeddingService { inner: Mutex::new((embedder, cache)), model_id, dim })
    }

    /// Loads all-MiniLM-L6-v2 from `dir` (see `scripts/fetch-models.sh`), with an in-memory cache
    /// and, when `cache_file` is given, a disk cache for replays. Returns the service and what was
    /// found in the disk cache.
    #[cfg(feature = "dense")]
    pub fn load(dir: &std::path::Path, cache_file: Option<&std::path::Path>) -> Result<(Arc<Self>, Option<crate::dense::DiskCacheStatus>)> {
        let embedder = crate::dense::FastEmbedder::load(dir)?;
        let cap = std::num::NonZeroUsize::new(1 << 16).unwrap_or(std::num::NonZeroUsize::MIN);
        let (cache, status) = match cache_file {
            Some(p) => {
                let (c, s) = EmbeddingCache::try_open(p, cap, &embedder)?;
                (c, Some(s))
            }
            None => (EmbeddingCache::new(cap), None),
        };
        Ok((EmbeddingService::new(Box::new(embedder), cache), status))
    }

    /// The model's id.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The vectors' dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Unit vectors of `texts`, embedding only the ones not cached.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Arc<[f32]>>> {
        let mut guard = self.inner.lock().map_err(|_| Error::Embeddings("the embedding service's lock is poisoned".into()))?;
        let (embedder, cache) = &mut *guard;
        cache.get_or_embed(embedder.as_mut(), texts)
    }

    /// Cache counters so far.
    pub fn stats(&self) -> Option<crate::dense::CacheStats> {
        self.inner.lock().ok().map(|g| g.1.stats())
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

/// Texts embedded per model call at most.
const BATCH: usize = 32;

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
