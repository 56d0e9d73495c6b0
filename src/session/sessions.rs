//! Many sessions in one process: [`Sessions`] opens them on demand and keeps the hot ones in an
//! LRU bounded by count and by estimated memory. Evicting costs nothing durable: every call was
//! stored when it returned.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;

use super::{Session, SessionStore, validate_id};
use crate::engine::EngineConfig;
use crate::error::{Error, Result};

/// Bounds of a [`Sessions`] handle.
#[derive(Debug, Clone, Copy)]
pub struct SessionsConfig {
    /// Hot sessions kept at most (default 200).
    pub max_hot: usize,
    /// Estimated memory of the hot sessions at most, bytes (default 1 GiB; see
    /// [`Session::memory_estimate`]).
    pub max_bytes: usize,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig { max_hot: 200, max_bytes: 1 << 30 }
    }
}

/// A hot session and its last memory estimate.
struct Slot {
    session: Mutex<Session>,
    bytes: AtomicUsize,
}

/// Serves many sessions of one store to many threads: one caller per session at a time
/// (a `Mutex` per session), different sessions in parallel.
pub struct Sessions {
    store: Arc<dyn SessionStore>,
    config: EngineConfig,
    bounds: SessionsConfig,
    hot: Mutex<LruCache<String, Arc<Slot>>>,
    opens: AtomicUsize,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("store", &self.store.name()).field("bounds", &self.bounds).finish()
    }
}

impl Sessions {
    /// Sessions of `store`, each engine made with `config` (the stored policy wins).
    pub fn new(store: Arc<dyn SessionStore>, config: EngineConfig, bounds: SessionsConfig) -> Self {
        Sessions { store, config, bounds, hot: Mutex::new(LruCache::unbounded()), opens: AtomicUsize::new(0) }
    }

    /// Runs `f` on session `id` (opened when cold; [`Error::UnknownSession`] when it does not exist).
    /// Calls on one session wait for each other; calls on different sessions run in parallel.
    /// After a store failure the handle is dropped, so the next call reopens it from its log.
    pub fn with<T>(&self, id: &str, f: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        self.run(id, false, f)
    }

    /// Like [`Sessions::with`], creating the session when it does not exist.
    pub fn with_or_create<T>(&self, id: &str, f: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        self.run(id, true, f)
    }

    /// Whether session `id` is open (a call on it does not reopen it, unless it is evicted first).
    pub fn is_hot(&self, id: &str) -> bool {
        self.hot.lock().is_ok_and(|h| h.contains(id))
    }

    fn run<T>(&self, id: &str, create: bool, f: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        validate_id(id)?;
        let result = {
            let slot = self.slot(id, create)?;
            let mut s = slot.session.lock().map_err(|_| self.poisoned(id))?;
            let r = f(&mut s);
            slot.bytes.store(s.memory_estimate(), Ordering::Relaxed);
            if matches!(r, Err(Error::SessionStale { .. })) || s.stale.is_some() {
                drop(s);
                self.lock_hot()?.pop(id);
            }
            r
        };
        self.evict()?;
        result
    }

    fn poisoned(&self, id: &str) -> Error {
        Error::Store { store: self.store.name().to_string(), session: Some(id.to_string()), message: "a caller panicked while holding the session".into() }
    }

    fn lock_hot(&self) -> Result<MutexGuard<'_, LruCache<String, Arc<Slot>>>> {
        self.hot.lock().map_err(|_| Error::Store { store: self.store.name().to_string(), session: None, message: "session table poisoned by a panic".into() })
    }

    /// The hot slot of `id`, opening the session (outside the table's lock) when it is cold.
    fn slot(&self, id: &str, create: bool) -> Result<Arc<Slot>> {
        if let Some(s) = self.lock_hot()?.get(id) {
            return Ok(Arc::clone(s));
        }
        let session = if create {
            Session::open_or_create(Arc::clone(&self.store), id, self.config.clone())?
        } else {
            Session::open(Arc::clone(&self.store), id, self.config.clone())?
        };
        self.opens.fetch_add(1, Ordering::Relaxed);
        let bytes = session.memory_estimate();
        let fresh = Arc::new(Slot { session: Mutex::new(session), bytes: AtomicUsize::new(bytes) });
        let mut hot = self.lock_hot()?;
        // Another thread may have opened it meanwhile: keep theirs (ours has appended nothing).
        if let Some(s) = hot.get(id) {
            return Ok(Arc::clone(s));
        }
        hot.put(id.to_string(), Arc::clone(&fresh));
        Ok(fresh)
    }

    /// Evicts the least recently used sessions nobody is using until both bounds hold.
    fn evict(&self) -> Result<()> {
        // Evicted handles are dropped (and so flushed) after the table's lock is released.
        let mut evicted = Vec::new();
        {
            let mut hot = self.lock_hot()?;
            loop {
                let total: usize = hot.iter().map(|(_, s)| s.bytes.load(Ordering::Relaxed)).sum();
                if hot.len() <= self.bounds.max_hot.max(1) && total <= self.bounds.max_bytes {
                    break;
                }
                let victim = hot.iter().rev().find(|(_, s)| Arc::strong_count(s) == 1).map(|(k, _)| k.clone());
                match victim.and_then(|k| hot.pop(&k)) {
                    Some(slot) => evicted.push(slot),
                    None => break,
                }
            }
        }
        drop(evicted);
        Ok(())
    }

    /// Stores what the hot sessions derived since their last append (see
    /// [`super::Session::flush`]), e.g. before the process exits; returns how many sessions were
    /// flushed, or the first error (the others are still tried).
    pub fn flush_all(&self) -> Result<usize> {
        let slots: Vec<Arc<Slot>> = self.lock_hot()?.iter().map(|(_, s)| Arc::clone(s)).collect();
        let mut first = None;
        for slot in &slots {
            let r = match slot.session.lock() {
                Ok(mut s) if s.stale.is_none() => s.flush(),
                Ok(_) => Ok(()),
                Err(_) => {
                    Err(Error::Store { store: self.store.name().to_string(), session: None, message: "a caller panicked while holding a session".into() })
                }
            };
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(slots.len()),
        }
    }

    /// Deletes session `id` from the store (waiting for a call in flight on it to finish) and
    /// forgets its hot handle; `Ok(false)` when it did not exist.
    pub fn delete(&self, id: &str) -> Result<bool> {
        validate_id(id)?;
        let slot = self.lock_hot()?.pop(id);
        // Hold the handle's lock while deleting, so no call on it runs meanwhile.
        let mut guard = match &slot {
            Some(s) => Some(s.session.lock().map_err(|_| self.poisoned(id))?),
            None => None,
        };
        let existed = self.store.delete(id)?;
        // The handle must not store its derived state into a session made again with this id.
        if let Some(g) = guard.as_mut() {
            g.discard("the session was deleted");
        }
        drop(guard);
        Ok(existed)
    }

    /// Hot sessions now.
    pub fn hot(&self) -> usize {
        self.lock_hot().map(|h| h.len()).unwrap_or(0)
    }

    /// Their estimated memory, bytes.
    pub fn hot_bytes(&self) -> usize {
        self.lock_hot().map(|h| h.iter().map(|(_, s)| s.bytes.load(Ordering::Relaxed)).sum()).unwrap_or(0)
    }

    /// Sessions opened from the store so far (cold hits).
    pub fn opens(&self) -> usize {
        self.opens.load(Ordering::Relaxed)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }
}
