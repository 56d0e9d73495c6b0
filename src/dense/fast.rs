//! [`FastEmbedder`]: all-MiniLM-L6-v2 (or another BERT-style ONNX sentence encoder) run by
//! fastembed on ONNX Runtime, entirely from files in one local folder.

use std::fmt;
use std::path::{Path, PathBuf};

use fastembed::{InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel};

use super::Embedder;
use super::fnv::Checksum;
use crate::error::{Error, Result};

/// Tokens per text the model sees; longer texts are truncated. 256 is what sentence-transformers
/// uses for all-MiniLM-L6-v2 (fastembed's own default is 512).
const MAX_LENGTH: usize = 256;

/// Texts per ONNX Runtime call.
const BATCH_SIZE: usize = 32;

/// Mean pooling, then L2 normalisation, over an ONNX sentence encoder loaded from a folder.
///
/// The folder is the one `scripts/fetch-models.sh` fills: see [`FastEmbedder::REQUIRED_FILES`].
/// Loading reads about 23 MB of model and 35 MB of ONNX Runtime and takes a few hundred
/// milliseconds; embedding costs milliseconds per text, so cache the vectors
/// ([`EmbeddingCache`](super::EmbeddingCache)).
pub struct FastEmbedder {
    model: TextEmbedding,
    model_id: String,
    dim: usize,
}

impl fmt::Debug for FastEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FastEmbedder").field("model_id", &self.model_id).field("dim", &self.dim).finish_non_exhaustive()
    }
}

impl FastEmbedder {
    /// The files [`load`](Self::load) needs in its folder.
    pub const REQUIRED_FILES: [&'static str; 6] =
        ["model.onnx", "tokenizer.json", "config.json", "special_tokens_map.json", "tokenizer_config.json", "libonnxruntime.so"];

    /// Loads the model in `dir`.
    ///
    /// ONNX Runtime is loaded first, from `dir/libonnxruntime.so` (it must be 1.24 or newer), so
    /// a missing or too old library is an [`Error::Embeddings`] rather than a panic. ONNX Runtime
    /// can be loaded once per process: later calls reuse the library loaded first, whatever `dir`.
    ///
    /// The model id (the cache key's namespace) is the folder's name, the pooling, the maximum
    /// length and a fingerprint of `model.onnx` and `tokenizer.json`, so a changed model never
    /// reads another's cached vectors.
    pub fn load(dir: &Path) -> Result<Self> {
        let dir = std::path::absolute(dir).map_err(|e| Error::io(dir, e))?;
        if !dir.is_dir() {
            return Err(Error::Embeddings(format!("model folder {} does not exist (run scripts/fetch-models.sh)", dir.display())));
        }
        let missing: Vec<&str> = Self::REQUIRED_FILES.iter().copied().filter(|f| !dir.join(f).is_file()).collect();
        if !missing.is_empty() {
            return Err(Error::Embeddings(format!("model folder {} lacks {} (run scripts/fetch-models.sh)", dir.display(), missing.join(", "))));
        }

        let runtime = dir.join("libonnxruntime.so");
        // The builder this returns is only needed to configure a custom environment; fastembed
        // makes its own default one.
        let _environment = ort::init_from(&runtime).map_err(|e| Error::Embeddings(format!("cannot load ONNX Runtime from {}: {e}", runtime.display())))?;

        let read = |name: &str| -> Result<Vec<u8>> {
            let path: PathBuf = dir.join(name);
            std::fs::read(&path).map_err(|e| Error::io(path, e))
        };
        let onnx = read("model.onnx")?;
        let tokenizer = read("tokenizer.json")?;
        let config = read("config.json")?;
        let dim = hidden_size(&config).map_err(|m| Error::Embeddings(format!("{}: {m}", dir.join("config.json").display())))?;

        let mut fingerprint = Checksum::new();
        fingerprint.update(&onnx);
        fingerprint.update(&tokenizer);
        let name = dir.file_name().map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
        let model_id = format!("{name}:mean:{MAX_LENGTH}:{:016x}", fingerprint.value());

        let files = TokenizerFiles {
            tokenizer_file: tokenizer,
            config_file: config,
            special_tokens_map_file: read("special_tokens_map.json")?,
            tokenizer_config_file: read("tokenizer_config.json")?,
        };
        let user_model = UserDefinedEmbeddingModel::new(onnx, files).with_pooling(Pooling::Mean);
        let options = InitOptionsUserDefined::new().with_max_length(MAX_LENGTH);
        let model = TextEmbedding::try_new_from_user_defined(user_model, options)
            .map_err(|e| Error::Embeddings(format!("cannot load the model in {}: {e}", dir.display())))?;
        Ok(FastEmbedder { model, model_id, dim })
    }

    /// The number of word pieces the model sees for `text`, `[CLS]` and `[SEP]` included, after
    /// truncation to the maximum length (256): a count of 256 means the text was cut.
    pub fn token_count(&self, text: &str) -> Result<usize> {
        let encoding = self.model.tokenizer.encode(text, true).map_err(|e| Error::Embeddings(e.to_string()))?;
        Ok(encoding.get_ids().len())
    }
}

/// `hidden_size` from a BERT `config.json`: the embedding dimension under mean pooling.
fn hidden_size(config: &[u8]) -> std::result::Result<usize, String> {
    let value: serde_json::Value = serde_json::from_slice(config).map_err(|e| e.to_string())?;
    value
        .get("hidden_size")
        .and_then(serde_json::Value::as_u64)
        .and_then(|d| usize::try_from(d).ok())
        .filter(|&d| d > 0)
        .ok_or_else(|| "no positive integer `hidden_size`".to_owned())
}

impl Embedder for FastEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let vectors = self.model.embed(texts, Some(BATCH_SIZE)).map_err(|e| Error::Embeddings(e.to_string()))?;
        if vectors.len() != texts.len() {
            return Err(Error::Embeddings(format!("got {} vectors for {} texts", vectors.len(), texts.len())));
        }
        if let Some(v) = vectors.iter().find(|v| v.len() != self.dim) {
            return Err(Error::Embeddings(format!("the model returned {}-component vectors; config.json says {}", v.len(), self.dim)));
        }
        Ok(vectors)
    }
}

#[cfg(test)]
mod tests {
    //! These load the real model: run `scripts/fetch-models.sh` first, or point `CTXWIN_MODELS`
    //! at a folder holding [`FastEmbedder::REQUIRED_FILES`].

    use std::num::NonZeroUsize;
    use std::sync::Arc;

    use super::*;
    use crate::dense::test_support::{Scratch, TestResult};
    use crate::dense::{DiskCacheStatus, EmbeddingCache, VectorIndex};

    fn model_dir() -> PathBuf {
        std::env::var_os("CTXWIN_MODELS").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2"))
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// Counts the calls that reach the model.
    struct Counting<'a> {
        inner: &'a mut FastEmbedder,
        calls: usize,
    }

    impl Embedder for Counting<'_> {
        fn model_id(&self) -> &str {
            self.inner.model_id()
        }
        fn dim(&self) -> usize {
            self.inner.dim()
        }
        fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
            self.calls += 1;
            self.inner.embed(texts)
        }
    }

    #[test]
    fn real_model_embeds_by_meaning() -> TestResult {
        let mut model = FastEmbedder::load(&model_dir())?;
        assert_eq!(model.dim(), 384);
        assert!(model.model_id().starts_with("all-MiniLM-L6-v2:mean:256:"), "{}", model.model_id());
        let texts = ["my sister's wedding", "Caroline got married last weekend", "the compiler failed with error E0382"];
        let v = model.embed(&texts)?;
        assert_eq!(v.len(), 3);
        for x in &v {
            assert_eq!(x.len(), 384);
            let norm = dot(x, x).sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        }
        let wedding_married = dot(&v[0], &v[1]);
        let wedding_compiler = dot(&v[0], &v[2]);
        eprintln!("cos(wedding, married) = {wedding_married:.4}, cos(wedding, compiler) = {wedding_compiler:.4}");
        assert!(wedding_married > wedding_compiler + 0.1, "{wedding_married} vs {wedding_compiler}");

        assert_eq!(model.token_count("my sister's wedding")?, 7); // [CLS] my sister ' s wedding [SEP]
        assert_eq!(model.token_count(&"word ".repeat(1000))?, 256);

        // Batching does not change a text's vector (up to float noise from padding).
        let alone = model.embed(&texts[..1])?;
        assert!(dot(&alone[0], &v[0]) > 0.9999);

        // Through the index, the wedding finds the marriage first.
        let mut index = VectorIndex::new(model.dim());
        index.push(&v[2])?;
        index.push(&v[1])?;
        assert_eq!(index.top_k(&v[0], 1)?.first().map(|&(row, _)| row), Some(1));
        Ok(())
    }

    #[test]
    fn cache_hits_skip_the_real_model_and_survive_a_corrupted_file() -> TestResult {
        let mut model = FastEmbedder::load(&model_dir())?;
        let dir = Scratch::new("fast-cache")?;
        let path = dir.join("emb.bin");
        let texts = ["my sister's wedding", "Caroline got married last weekend"];

        let mut counting = Counting { inner: &mut model, calls: 0 };
        let (mut cache, status) = EmbeddingCache::try_open(&path, NonZeroUsize::MIN.saturating_add(63), &counting)?;
        assert_eq!(status, DiskCacheStatus::Created);
        let first = cache.get_or_embed(&mut counting, &texts)?;
        assert_eq!(counting.calls, 1);
        let second = cache.get_or_embed(&mut counting, &texts)?;
        assert_eq!(counting.calls, 1, "a cache hit must not call the model");
        assert!(first.iter().zip(&second).all(|(a, b)| Arc::ptr_eq(a, b) && a[..] == b[..]));
        drop(cache);

        // A replay reads the same vectors back from disk, bit for bit, without the model.
        let (mut cache, status) = EmbeddingCache::try_open(&path, NonZeroUsize::MIN, &counting)?;
        assert_eq!(status, DiskCacheStatus::Loaded { records: 2 });
        let replayed = cache.get_or_embed(&mut counting, &texts)?;
        assert_eq!(counting.calls, 1);
        assert!(first.iter().zip(&replayed).all(|(a, b)| a[..] == b[..]));
        drop(cache);

        // Corrupt the file: cut the last record short. It is repaired, and the lost text is
        // embedded again (one call), to the same vector.
        let len = std::fs::metadata(&path)?.len();
        std::fs::OpenOptions::new().write(true).open(&path)?.set_len(len - 100)?;
        let (mut cache, status) = EmbeddingCache::try_open(&path, NonZeroUsize::MIN, &counting)?;
        assert!(matches!(status, DiskCacheStatus::Repaired { kept: 1, .. }), "{status:?}");
        let again = cache.get_or_embed(&mut counting, &texts)?;
        assert_eq!(counting.calls, 2);
        assert!(dot(&again[1], &first[1]) > 0.9999);
        drop(cache);

        // Garbage instead of a header: rebuilt from scratch.
        std::fs::write(&path, b"garbage")?;
        let (mut cache, status) = EmbeddingCache::try_open(&path, NonZeroUsize::MIN, &counting)?;
        assert!(matches!(status, DiskCacheStatus::Rebuilt { .. }), "{status:?}");
        cache.get_or_embed(&mut counting, &texts)?;
        assert_eq!(counting.calls, 3);
        Ok(())
    }

    #[test]
    fn missing_files_are_named() -> TestResult {
        let dir = Scratch::new("fast-missing")?;
        std::fs::write(dir.join("model.onnx"), b"")?;
        let err = FastEmbedder::load(&dir).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("lacks tokenizer.json, config.json"), "{err}");
        assert!(err.contains("libonnxruntime.so"), "{err}");
        let err = FastEmbedder::load(&dir.join("nope")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("does not exist"), "{err}");
        Ok(())
    }

    #[test]
    fn garbage_files_are_errors_not_panics() -> TestResult {
        let dir = Scratch::new("fast-garbage")?;
        for f in FastEmbedder::REQUIRED_FILES {
            std::fs::write(dir.join(f), b"not what it claims to be")?;
        }
        // Whether this process already loaded the real ONNX Runtime (then the model fails to
        // parse) or not (then the library fails to load), the outcome is an error.
        let err = FastEmbedder::load(&dir).err();
        assert!(matches!(err, Some(Error::Embeddings(_))), "{err:?}");
        Ok(())
    }
}
