//! Hybrid retrieval through the engine: what is embedded for each turn, the dense component in the
//! report, and (with the `dense` feature and the fetched model) a paraphrase that only the real
//! model finds, and ctxbench in hybrid mode.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use ctxwin::{Embedder, EmbeddingCache, EmbeddingService, Engine, EngineConfig, Policy, Turn};

/// A deterministic stand-in for a model: a bag of lowercase words hashed into 64 buckets,
/// normalised. It records every text it is asked to embed.
struct Words {
    seen: Arc<Mutex<Vec<String>>>,
}

impl Embedder for Words {
    fn model_id(&self) -> &str {
        "test-words-64"
    }
    fn dim(&self) -> usize {
        64
    }
    fn embed(&mut self, texts: &[&str]) -> ctxwin::Result<Vec<Vec<f32>>> {
        let mut out = Vec::new();
        for t in texts {
            if let Ok(mut seen) = self.seen.lock() {
                seen.push((*t).to_string());
            }
            let mut v = vec![0.0f32; 64];
            for w in t.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 3) {
                let h = w.to_lowercase().bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
                v[(h % 64) as usize] += 1.0;
            }
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
            out.push(v.into_iter().map(|x| x / norm).collect());
        }
        Ok(out)
    }
}

fn lines() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Caroline", "I spent the whole weekend repainting the fence."),
        ("Melanie", "Did you pick a colour in the end?"),
        ("Caroline", "Dark green, it goes with the garden."),
        ("Melanie", "My pottery class starts again on Tuesday."),
        ("Caroline", "What will you make first?"),
        ("Melanie", "Probably a big serving bowl for the kitchen."),
    ]
}

fn chat_engine(service: Option<Arc<EmbeddingService>>) -> Engine {
    let mut cfg = EngineConfig::default().policy(match Policy::preset("ctxwin") {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    });
    if let Some(s) = service {
        cfg = cfg.embeddings(s);
    }
    let mut e = match Engine::new(cfg) {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    };
    for (i, (who, text)) in lines().into_iter().enumerate() {
        let t = if i % 2 == 0 { Turn::user(text) } else { Turn::assistant(text) };
        if let Err(err) = e.push(t.with_speaker(who)) {
            panic!("{err}");
        }
    }
    e
}

#[test]
fn each_turn_is_embedded_with_the_turns_before_it_and_scored_by_its_exchanges() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let cache = EmbeddingCache::new(NonZeroUsize::MIN.saturating_add(63));
    let service = EmbeddingService::new(Box::new(Words { seen: Arc::clone(&seen) }), cache);
    let mut e = chat_engine(Some(service));
    assert!(e.has_embeddings());
    if let Err(err) = e.wait_for_embeddings() {
        panic!("{err}");
    }
    let texts = match seen.lock() {
        Ok(s) => s.clone(),
        Err(_) => panic!("poisoned"),
    };
    // The first turn alone; every later one after (the end of) the two before it.
    assert_eq!(texts[0], "Caroline: I spent the whole weekend repainting the fence.");
    assert_eq!(
        texts[3],
        "Melanie: Did you pick a colour in the end?\nCaroline: Dark green, it goes with the garden.\nMelanie: My pottery class starts again on Tuesday."
    );
    assert_eq!(texts.len(), 6, "one text per turn: {texts:?}");

    let w = match e.assemble_for(400, "a serving bowl from the pottery class") {
        Ok(w) => w,
        Err(err) => panic!("{err}"),
    };
    assert!(w.query_embed_us().is_some(), "the query is embedded and timed apart");
    let dense: Vec<f32> = w.report().iter().map(|l| l.score.dense).collect();
    // Turn 5 (the bowl) and turn 3 (the class) are in the exchanges most like the query; the fence
    // turn, in none of them, is least like it.
    let best = dense.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|x| x.0);
    assert!(matches!(best, Some(3..=5)), "{dense:?}");
    assert!(dense[0] < dense[4], "{dense:?}");
    assert!(w.report().iter().all(|l| l.score.bm25 >= 0.0 && l.score.total.is_finite()));
}

/// The fetched all-MiniLM-L6-v2 (see `scripts/fetch-models.sh`): `$CTXWIN_MODELS` or `models/`.
#[cfg(feature = "dense")]
fn model_dir() -> std::path::PathBuf {
    std::env::var_os("CTXWIN_MODELS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2"))
}

#[cfg(feature = "dense")]
#[test]
fn the_real_model_finds_a_paraphrase_that_bm25_cannot() {
    let service = match ctxwin::FastEmbedder::load(&model_dir()) {
        Ok(m) => EmbeddingService::new(Box::new(m), EmbeddingCache::new(NonZeroUsize::MIN.saturating_add(255))),
        Err(e) => panic!("{e} (run scripts/fetch-models.sh)"),
    };
    let wedding = "My sister finally tied the knot on Saturday; the ceremony was on the beach.";
    let build = |service: Option<Arc<EmbeddingService>>| {
        let mut e = chat_engine(service);
        for (i, text) in
            ["How was your weekend?", wedding, "That sounds lovely, congratulations to her!", "Back to work tomorrow, sadly."].into_iter().enumerate()
        {
            let t = if i % 2 == 0 { Turn::user(text) } else { Turn::assistant(text) };
            if let Err(err) = e.push(t.with_speaker(if i % 2 == 0 { "Caroline" } else { "Melanie" })) {
                panic!("{err}");
            }
        }
        if let Err(err) = e.wait_for_embeddings() {
            panic!("{err}");
        }
        e
    };
    // No word of the question is in the wedding turn (turn 7, an assistant turn, which lexical
    // scoring ranks below the user turns when nothing matches); only its meaning is.
    let question = "Who got married recently?";
    let budget = 90;
    let kept = |e: &mut Engine| match e.assemble_for(budget, question) {
        Ok(w) => {
            assert!(w.total_tokens() <= budget);
            (w.report()[7].fate == ctxwin::Fate::Kept, w.report()[7].score)
        }
        Err(err) => panic!("{err}"),
    };
    let mut lexical = build(None);
    let mut hybrid = build(Some(service));
    let (lexical_kept, _) = kept(&mut lexical);
    let (hybrid_kept, score) = kept(&mut hybrid);
    assert!(!lexical_kept, "BM25 alone has nothing to go on");
    assert!(hybrid_kept, "the model sees a wedding in `tied the knot`: {score:?}");
    assert!(score.dense > 0.5 && score.bm25 == 0.0, "{score:?}");
    // `search` (how anything left out is recalled) finds it too, with embeddings only.
    match lexical.search(question, 3) {
        Ok(hits) => assert!(hits.is_empty(), "{:?}", hits.iter().map(|h| h.turn_id).collect::<Vec<_>>()),
        Err(e) => panic!("{e}"),
    }
    match hybrid.search(question, 3) {
        Ok(hits) => {
            assert_eq!(hits.first().map(|h| (h.turn_id, h.bm25)), Some((7, 0.0)));
            assert!(hits[0].dense.is_some_and(|d| d > 0.0) && hits[0].score > hits[1].score);
        }
        Err(e) => panic!("{e}"),
    }
}
