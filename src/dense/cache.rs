//! The embedding cache: each text is embedded once per model. Vectors are kept in an in-memory
//! LRU and, optionally, in an append-only file that outlives the process (for replays).

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;

use lru::LruCache;
use rustc_hash::FxHashMap;

use super::Embedder;
use super::disk::{DiskCache, DiskCacheStatus};
use super::fnv::text_key;
use crate::error::{Error, Result};

/// Vectors by content: a key is a 128-bit hash of (model id, text).
///
/// Lookups go memory → disk file (when one is open) → embedder. All misses of one
/// [`get_or_embed`](Self::get_or_embed) call are embedded in a single call to the embedder, and a
/// text that appears twice in a call is embedded once.
#[derive(Debug)]
pub struct EmbeddingCache {
    memory: LruCache<u128, Arc<[f32]>>,
    disk: Option<DiskCache>,
    stats: CacheStats,
}

/// Counters of an [`EmbeddingCache`], since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    memory_hits: u64,
    disk_hits: u64,
    embedded: u64,
    embed_calls: u64,
}

impl CacheStats {
    /// Texts found in memory.
    pub fn memory_hits(&self) -> u64 {
        self.memory_hits
    }

    /// Texts found in the disk file (and then kept in memory too).
    pub fn disk_hits(&self) -> u64 {
        self.disk_hits
    }

    /// Distinct texts handed to the embedder.
    pub fn embedded(&self) -> u64 {
        self.embedded
    }

    /// Calls made to [`Embedder::embed`].
    pub fn embed_calls(&self) -> u64 {
        self.embed_calls
    }
}

impl EmbeddingCache {
    /// A memory-only cache holding up to `capacity` vectors (least recently used go first).
    pub fn new(capacity: NonZeroUsize) -> Self {
        EmbeddingCache { memory: LruCache::new(capacity), disk: None, stats: CacheStats::default() }
    }

    /// A cache backed by the file at `path`, for `embedder`'s model and dimension, with up to
    /// `capacity` vectors in memory.
    ///
    /// The file is created when absent. A damaged file, or one written for another model or
    /// dimension, is repaired or started afresh rather than refused: the returned
    /// [`DiskCacheStatus`] says which. Fails only on I/O errors.
    pub fn try_open<E: Embedder + ?Sized>(path: &Path, capacity: NonZeroUsize, embedder: &E) -> Result<(Self, DiskCacheStatus)> {
        let (disk, status) = DiskCache::open(path, embedder.model_id(), embedder.dim())?;
        Ok((EmbeddingCache { memory: LruCache::new(capacity), disk: Some(disk), stats: CacheStats::default() }, status))
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Vectors held in memory.
    pub fn len_in_memory(&self) -> usize {
        self.memory.len()
    }

    /// Distinct texts stored in the disk file (0 without one).
    pub fn len_on_disk(&self) -> usize {
        self.disk.as_ref().map_or(0, DiskCache::len)
    }

    /// The vector of each of `texts`, in order, embedding only those not cached, in one call.
    ///
    /// Fails when the embedder fails, returns the wrong number of vectors or a vector that is not
    /// `embedder.dim()` finite numbers, when it is not the model the disk file was opened for, or
    /// on an I/O error of the disk file. Nothing is cached from a failed call.
    pub fn get_or_embed<E: Embedder + ?Sized>(&mut self, embedder: &mut E, texts: &[&str]) -> Result<Vec<Arc<[f32]>>> {
        let model_id = embedder.model_id().to_owned();
        let dim = embedder.dim();
        let lookup = self.lookup(&model_id, dim, texts)?;
        let vectors = if lookup.misses().is_empty() {
            Vec::new()
        } else {
            let miss_texts: Vec<&str> = lookup.misses().iter().map(|&i| texts[i]).collect();
            embedder.embed(&miss_texts)?
        };
        self.complete(lookup, vectors)
    }

    /// First half of [`get_or_embed`](Self::get_or_embed), for callers that embed without holding
    /// the cache: what is cached already, and which texts (indices into `texts`, one per distinct
    /// text) still need a vector.
    pub(crate) fn lookup(&mut self, model_id: &str, dim: usize, texts: &[&str]) -> Result<Lookup> {
        if let Some(disk) = &self.disk
            && (disk.model_id() != model_id || disk.dim() != dim)
        {
            return Err(Error::Embeddings(format!(
                "cache file {} is for model {:?} (dim {}), not {model_id:?} (dim {dim})",
                disk.path().display(),
                disk.model_id(),
                disk.dim()
            )));
        }
        let mut l = Lookup { model_id: model_id.to_owned(), dim, out: vec![None; texts.len()], ..Lookup::default() };
        for (slot, text) in texts.iter().enumerate() {
            let key = text_key(model_id, text);
            if let Some(v) = self.memory.get(&key) {
                self.stats.memory_hits += 1;
                l.out[slot] = Some(Arc::clone(v));
                continue;
            }
            if let Some(slots) = l.slots.get_mut(&key) {
                slots.push(slot);
                continue;
            }
            if let Some(disk) = &mut self.disk
                && let Some(v) = disk.get(key)?
                && v.len() == dim
            {
                self.stats.disk_hits += 1;
                self.memory.put(key, Arc::clone(&v));
                l.out[slot] = Some(v);
                continue;
            }
            l.slots.insert(key, vec![slot]);
            l.misses.push(slot);
            l.keys.push(key);
        }
        Ok(l)
    }

    /// Second half: checks the vectors embedded for `lookup`'s misses (in order), caches them and
    /// returns every text's vector. A text another caller cached meanwhile is not stored twice.
    pub(crate) fn complete(&mut self, lookup: Lookup, vectors: Vec<Vec<f32>>) -> Result<Vec<Arc<[f32]>>> {
        let Lookup { model_id, dim, mut out, misses, keys, slots } = lookup;
        if !misses.is_empty() {
            if vectors.len() != misses.len() {
                return Err(Error::Embeddings(format!("{model_id} returned {} vectors for {} texts", vectors.len(), misses.len())));
            }
            for v in &vectors {
                if v.len() != dim {
                    return Err(Error::Embeddings(format!("{model_id} returned a {}-component vector, expected {dim}", v.len())));
                }
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(Error::Embeddings(format!("{model_id} returned a vector with NaN or infinity")));
                }
            }
            self.stats.embed_calls += 1;
            self.stats.embedded += misses.len() as u64;
            let fresh: Vec<(u128, Arc<[f32]>)> = keys.into_iter().zip(vectors).map(|(k, v)| (k, Arc::<[f32]>::from(v))).collect();
            if let Some(disk) = &mut self.disk {
                let records: Vec<(u128, &[f32])> = fresh.iter().filter(|(k, _)| !self.memory.contains(k)).map(|(k, v)| (*k, &v[..])).collect();
                disk.append(&records)?;
            }
            for (key, v) in fresh {
                for &slot in slots.get(&key).map(Vec::as_slice).unwrap_or_default() {
                    out[slot] = Some(Arc::clone(&v));
                }
                self.memory.put(key, v);
            }
        }
        out.into_iter().map(|v| v.ok_or_else(|| Error::Embeddings("internal: a text was left without a vector".into()))).collect()
    }
}

/// A lookup in progress (see [`EmbeddingCache::lookup`]).
#[derive(Debug, Default)]
pub(crate) struct Lookup {
    model_id: String,
    dim: usize,
    out: Vec<Option<Arc<[f32]>>>,
    /// One slot per distinct missing text, in first-seen order.
    misses: Vec<usize>,
    keys: Vec<u128>,
    slots: FxHashMap<u128, Vec<usize>>,
}

impl Lookup {
    /// Indices (into the texts looked up) of the texts to embed, one per distinct text.
    pub(crate) fn misses(&self) -> &[usize] {
        &self.misses
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dense::test_support::{Scratch, TestResult};

    /// A test double: a lookup table of hand-made unit vectors, counting calls.
    struct Table {
        id: &'static str,
        calls: usize,
        texts_seen: Vec<String>,
    }

    impl Table {
        fn new(id: &'static str) -> Self {
            Table { id, calls: 0, texts_seen: Vec::new() }
        }
    }

    fn hand_made(text: &str) -> Vec<f32> {
        match text {
            "north" => vec![0.0, 1.0, 0.0],
            "east" => vec![1.0, 0.0, 0.0],
            "up" => vec![0.0, 0.0, 1.0],
            _ => vec![0.6, 0.8, 0.0],
        }
    }

    impl Embedder for Table {
        fn model_id(&self) -> &str {
            self.id
        }
        fn dim(&self) -> usize {
            3
        }
        fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
            self.calls += 1;
            self.texts_seen.extend(texts.iter().map(|t| t.to_string()));
            Ok(texts.iter().map(|t| hand_made(t)).collect())
        }
    }

    fn cap(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
    }

    fn plain(vs: &[Arc<[f32]>]) -> Vec<Vec<f32>> {
        vs.iter().map(|v| v.to_vec()).collect()
    }

    #[test]
    fn misses_are_embedded_once_in_one_call() -> TestResult {
        let mut table = Table::new("t");
        let mut cache = EmbeddingCache::new(cap(16));
        let got = cache.get_or_embed(&mut table, &["north", "east", "north"])?;
        assert_eq!(plain(&got), vec![hand_made("north"), hand_made("east"), hand_made("north")]);
        assert_eq!(table.calls, 1);
        assert_eq!(table.texts_seen, vec!["north", "east"]);

        let again = cache.get_or_embed(&mut table, &["east", "up", "north"])?;
        assert_eq!(table.calls, 2);
        assert_eq!(table.texts_seen, vec!["north", "east", "up"]);
        assert!(Arc::ptr_eq(&again[0], &got[1]), "a hit hands back the cached vector itself");
        assert_eq!((cache.stats().memory_hits(), cache.stats().embedded(), cache.stats().embed_calls()), (2, 3, 2));

        cache.get_or_embed(&mut table, &["up", "east"])?;
        assert_eq!(table.calls, 2, "all hits: the embedder is not called");
        assert_eq!(cache.get_or_embed(&mut table, &[])?.len(), 0);
        assert_eq!(table.calls, 2);
        Ok(())
    }

    #[test]
    fn models_do_not_share_entries() -> TestResult {
        let mut a = Table::new("a");
        let mut b = Table::new("b");
        let mut cache = EmbeddingCache::new(cap(16));
        cache.get_or_embed(&mut a, &["north"])?;
        cache.get_or_embed(&mut b, &["north"])?;
        assert_eq!((a.calls, b.calls), (1, 1));
        Ok(())
    }

    #[test]
    fn lru_evicts_but_stays_correct() -> TestResult {
        let mut table = Table::new("t");
        let mut cache = EmbeddingCache::new(cap(1));
        let got = cache.get_or_embed(&mut table, &["north", "east", "up"])?;
        assert_eq!(plain(&got), vec![hand_made("north"), hand_made("east"), hand_made("up")]);
        assert_eq!(cache.len_in_memory(), 1);
        cache.get_or_embed(&mut table, &["north"])?;
        assert_eq!(table.calls, 2);
        Ok(())
    }

    struct Broken(usize);

    impl Embedder for Broken {
        fn model_id(&self) -> &str {
            "broken"
        }
        fn dim(&self) -> usize {
            3
        }
        fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
            Ok(texts.iter().map(|_| vec![f32::NAN; self.0]).collect())
        }
    }

    #[test]
    fn bad_embedder_output_is_an_error_and_not_cached() {
        let mut cache = EmbeddingCache::new(cap(4));
        assert!(matches!(cache.get_or_embed(&mut Broken(3), &["x"]), Err(Error::Embeddings(_))));
        assert!(matches!(cache.get_or_embed(&mut Broken(2), &["x"]), Err(Error::Embeddings(_))));
        assert_eq!(cache.len_in_memory(), 0);
    }

    #[test]
    fn disk_file_serves_a_second_process() -> TestResult {
        let dir = Scratch::new("cache-disk")?;
        let path = dir.join("emb.bin");
        let mut table = Table::new("t");
        let (mut cache, status) = EmbeddingCache::try_open(&path, cap(8), &table)?;
        assert_eq!(status, DiskCacheStatus::Created);
        let first = cache.get_or_embed(&mut table, &["north", "east"])?;
        drop(cache);

        // A "replay": a new cache over the same file, and a fresh embedder that must not be called.
        let mut fresh = Table::new("t");
        let (mut cache, status) = EmbeddingCache::try_open(&path, cap(8), &fresh)?;
        assert_eq!(status, DiskCacheStatus::Loaded { records: 2 });
        let second = cache.get_or_embed(&mut fresh, &["east", "north"])?;
        assert_eq!(fresh.calls, 0);
        assert_eq!(plain(&second), vec![first[1].to_vec(), first[0].to_vec()]);
        assert_eq!(cache.stats().disk_hits(), 2);

        // The wrong model for this file is refused, not mixed in.
        let mut other = Table::new("other");
        assert!(matches!(cache.get_or_embed(&mut other, &["north"]), Err(Error::Embeddings(_))));
        Ok(())
    }

    #[test]
    fn corrupted_disk_file_is_rebuilt_and_refilled() -> TestResult {
        let dir = Scratch::new("cache-corrupt")?;
        let path = dir.join("emb.bin");
        let mut table = Table::new("t");
        let (mut cache, _) = EmbeddingCache::try_open(&path, cap(8), &table)?;
        cache.get_or_embed(&mut table, &["north", "east"])?;
        drop(cache);
        let mut bytes = std::fs::read(&path)?;
        bytes[3] ^= 0xff;
        std::fs::write(&path, &bytes)?;

        let (mut cache, status) = EmbeddingCache::try_open(&path, cap(8), &table)?;
        assert!(matches!(status, DiskCacheStatus::Rebuilt { .. }), "{status:?}");
        let got = cache.get_or_embed(&mut table, &["north"])?;
        assert_eq!(plain(&got), vec![hand_made("north")]);
        assert_eq!(table.calls, 2);
        Ok(())
    }
}
