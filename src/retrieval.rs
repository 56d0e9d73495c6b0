//! Retrieval: the lexical index (Tantivy BM25) and, optionally, dense similarity from embeddings,
//! combined by the scorer into one score per turn for a query. The engine feeds it each pushed turn;
//! the planners and `Engine::search` ask it for scores. It finds; it never chooses.

use std::sync::Arc;
use std::time::Instant;

use rustc_hash::FxHashMap;

use crate::dense::{EmbedWorker, EmbeddingService, VectorIndex};
use crate::error::{Error, Result};
use crate::lexical::LexicalIndex;
use crate::policy::Policy;
use crate::refs::references;
use crate::scorer::{self, Query, Sources, TurnScores};
use crate::store::Store;
use crate::text::take_last_bytes_at_char_boundary;
use crate::turn::TurnId;

/// Distinct query terms scored at most.
const MAX_QUERY_TERMS: usize = 64;

/// Turns before a turn that are embedded with it.
pub(crate) const EXCHANGE_CONTEXT_TURNS: usize = 2;
/// At most this many characters of them (their end, nearest the turn). The model reads 256 word
/// pieces; this leaves at least 100 to the turn itself.
pub(crate) const EXCHANGE_CONTEXT_CHARS: usize = 600;

/// The lexical index and the optional dense state of one history.
#[derive(Debug)]
pub(crate) struct Retrieval {
    pub(crate) lexical: LexicalIndex,
    dense: Option<Dense>,
    /// Microseconds the latest query embedding took (dense only).
    pub(crate) last_query_embed_us: Option<f64>,
}

/// Dense retrieval state: the shared service, this history's background worker, and the vectors of
/// the turns embedded so far (rows of the index are turn ids `0..index.len()`).
struct Dense {
    service: Arc<EmbeddingService>,
    worker: EmbedWorker,
    arrived: FxHashMap<TurnId, Arc<[f32]>>,
    index: VectorIndex,
    /// The query's cosine with each row of `index`, kept between windows so scoring a query
    /// allocates nothing proportional to the history for them.
    exchange_scores: Vec<f32>,
    error: Option<String>,
}

impl std::fmt::Debug for Dense {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dense").field("model", &self.service.model_id()).field("embedded", &self.index.len()).finish()
    }
}

impl Dense {
    /// Takes results (waiting for all of them when `wait`), appending to the index in turn order.
    fn collect(&mut self, wait: bool) -> Result<()> {
        let mut got = self.worker.try_take();
        while wait && self.worker.in_flight > 0 {
            got.push(self.worker.take_one()?);
        }
        for (id, r) in got {
            match r {
                Ok(v) => {
                    self.arrived.insert(id, v);
                }
                Err(e) => self.error = Some(e.to_string()),
            }
        }
        while let Some(v) = self.arrived.remove(&self.index.len()) {
            self.index.push(&v)?;
        }
        match &self.error {
            Some(e) if wait => Err(Error::Embeddings(e.clone())),
            _ => Ok(()),
        }
    }
}

/// Scores of the history's turns for one query.
pub(crate) struct Scores {
    /// Raw BM25 of the turns that share a term with the query (any order).
    pub(crate) bm25: Vec<(TurnId, f32)>,
    /// Dense similarity of each embedded turn, when dense scoring took part.
    pub(crate) dense: Option<Vec<f32>>,
    /// The score components of every turn, or of the candidates only.
    pub(crate) parts: TurnScores,
    /// The turns scored (sorted), when candidate generation left the others out; `None` when every
    /// turn was scored.
    pub(crate) candidates: Option<Vec<TurnId>>,
}

impl Retrieval {
    /// A lexical index (in RAM, or in `index_dir`), with dense retrieval when a service is given.
    pub(crate) fn new(lexical: LexicalIndex, embeddings: Option<Arc<EmbeddingService>>) -> Self {
        let dense = embeddings.map(|service| Dense {
            worker: EmbedWorker::start(Arc::clone(&service)),
            index: VectorIndex::new(service.dim()),
            service,
            arrived: FxHashMap::default(),
            exchange_scores: Vec::new(),
            error: None,
        });
        Retrieval { lexical, dense, last_query_embed_us: None }
    }

    /// Indexes turn `id` of `store` (the latest pushed); with embeddings, queues its exchange for
    /// the background worker (push never waits for the model).
    pub(crate) fn add(&mut self, store: &Store, id: TurnId) -> Result<()> {
        self.lexical.add(id, store)?;
        let text = store.get(id).map_or("", |t| t.text());
        if let Some(d) = &mut self.dense {
            let context: Vec<&str> = (id.saturating_sub(EXCHANGE_CONTEXT_TURNS)..id).filter_map(|p| store.get(p)).map(|t| t.text()).collect();
            d.worker.send(id, exchange_text(&context, text))?;
        }
        Ok(())
    }

    /// Whether dense retrieval is on.
    pub(crate) fn has_embeddings(&self) -> bool {
        self.dense.is_some()
    }

    /// The embedding model's id, when dense retrieval is on.
    pub(crate) fn embedding_model(&self) -> Option<&str> {
        self.dense.as_ref().map(|d| d.service.model_id())
    }

    /// Waits until every pushed turn is embedded (a no-op without embeddings).
    pub(crate) fn wait_for_embeddings(&mut self) -> Result<()> {
        match &mut self.dense {
            Some(d) => d.collect(true),
            None => Ok(()),
        }
    }

    /// Scores of the history's turns for a window's `query` (terms deduplicated and capped),
    /// sessions lifting each other per the policy. With at most [`WHOLE_PER_CANDIDATE`] × `policy.candidates` turns (or
    /// `candidates = 0`) every turn is scored; on longer histories only the candidates are (see
    /// [`candidates`]), `taken` (turns already in the window) among them, and the rest keep
    /// all-zero parts without being looked at.
    pub(crate) fn score_for_window(&mut self, store: &Store, query: &str, policy: &Policy, taken: &[TurnId]) -> Result<Scores> {
        let mut terms = self.lexical.analyze(query);
        terms.sort();
        terms.dedup();
        terms.truncate(MAX_QUERY_TERMS);
        let refs = references(query);
        let dense = self.dense_similarities(query, policy)?;
        let (n, k) = (store.len(), policy.candidates);
        if k == 0 || n <= k.saturating_mul(WHOLE_PER_CANDIDATE) {
            let bm25 = self.lexical.scores(&terms, store)?;
            let q = Query { bm25: &bm25, dense: dense.as_deref(), refs: &refs, sessions: store.dates() };
            let parts = TurnScores::every(scorer::score(store, n, &q, policy));
            return Ok(Scores { bm25, dense, parts, candidates: None });
        }
        let bm25 = self.lexical.top(&terms, k, store)?;
        let (ids, sources) = candidates(store, &bm25, dense.as_deref(), &refs, taken, k);
        let q = Query { bm25: &bm25, dense: dense.as_deref(), refs: &refs, sessions: store.dates() };
        let parts = scorer::score_turns(store, n, Some((&ids, &sources)), &q, policy);
        Ok(Scores { bm25, dense, parts, candidates: Some(ids) })
    }

    /// Scores for [`crate::Engine::search`]: raw BM25 of every term of `query`, and with dense
    /// similarity the fused components (no session context).
    pub(crate) fn score_for_search(&mut self, store: &Store, query: &str, policy: &Policy) -> Result<Scores> {
        let terms = self.lexical.analyze(query);
        let bm25 = self.lexical.scores(&terms, store)?;
        let dense = self.dense_similarities(query, policy)?;
        let parts = match &dense {
            None => TurnScores::default(),
            Some(sims) => {
                let refs = references(query);
                TurnScores::every(scorer::score(store, store.len(), &Query { bm25: &bm25, dense: Some(sims), refs: &refs, sessions: &[] }, policy))
            }
        };
        Ok(Scores { bm25, dense, parts, candidates: None })
    }

    /// Cosine similarity of the query to every embedded turn (None without embeddings, when the
    /// policy gives dense no weight, or for an empty query). Embedding the query is timed apart.
    fn dense_similarities(&mut self, query: &str, policy: &Policy) -> Result<Option<Vec<f32>>> {
        let Some(d) = &mut self.dense else { return Ok(None) };
        if policy.weights.dense <= 0.0 || query.trim().is_empty() {
            return Ok(None);
        }
        d.collect(false)?;
        let t0 = Instant::now();
        let qv = d.service.embed_query(query)?;
        self.last_query_embed_us = Some(t0.elapsed().as_secs_f64() * 1e6);
        d.index.cosine_into(&qv, &mut d.exchange_scores)?;
        Ok(Some(turn_similarities(&d.exchange_scores)))
    }
}

/// Histories of at most this many times `candidates` turns are scored whole: up to there scoring
/// every turn costs no more than generating candidates (`examples/long_history`, `assemble_for(2000)`
/// p50 with `candidates=0` against 512: 550 against 686 µs at 5,000 turns, 1,320 against 1,054 µs at
/// 10,000) and recalls the most.
const WHOLE_PER_CANDIDATE: usize = 16;

/// Candidates scored per window: the best lexical candidates and dense candidates whose sessions
/// are taken whole.
const SESSION_SEEDS: usize = 16;
/// Turns on each side of a seed walked to find its session (sessions are dozens of turns).
const SESSION_REACH: usize = 64;

/// The turns worth scoring for a window of a history longer than `k` turns, sorted, with the
/// sources that proposed each: the lexical top-`k` (`bm25`, best first), the dense top-`k` when
/// `dense` is given, the turns sharing a reference with the query that at most `k` turns mention,
/// the latest `k / 2` turns (recency still lifts them), the turns `taken` already, the sessions of
/// the best [`SESSION_SEEDS`] lexical and dense candidates, and the turn on each side of every one
/// of these (its question or its answer). Bounded by about `4k` plus the sessions, whatever the
/// history's length; only the dense top-k looks at every turn (as the similarities already did).
pub(crate) fn candidates(
    store: &Store,
    bm25: &[(TurnId, f32)],
    dense: Option<&[f32]>,
    refs: &[u64],
    taken: &[TurnId],
    k: usize,
) -> (Vec<TurnId>, Vec<Sources>) {
    let n = store.len();
    // Proposals in any order, merged by turn at the end (a sort, not a map of every insert).
    let mut c: Vec<(TurnId, Sources)> = Vec::new();
    let add = |c: &mut Vec<(TurnId, Sources)>, id: TurnId, s: Sources| {
        if id < n {
            c.push((id, s));
        }
    };
    let mut seeds: Vec<TurnId> = bm25.iter().take(SESSION_SEEDS).map(|x| x.0).collect();
    bm25.iter().for_each(|&(id, _)| add(&mut c, id, Sources::LEXICAL));
    if let Some(d) = dense {
        let mut order: Vec<TurnId> = (0..d.len().min(n)).collect();
        let k = k.min(order.len());
        if k > 0 && k < order.len() {
            order.select_nth_unstable_by(k - 1, |&a, &b| d[b].total_cmp(&d[a]).then(a.cmp(&b)));
        }
        order.truncate(k);
        order.sort_by(|&a, &b| d[b].total_cmp(&d[a]).then(a.cmp(&b)));
        seeds.extend(order.iter().take(SESSION_SEEDS));
        order.into_iter().for_each(|id| add(&mut c, id, Sources::DENSE));
    }
    for &r in refs {
        let postings = store.ref_postings(r);
        if postings.len() <= k && store.ref_idf(r) > 0.0 {
            postings.iter().for_each(|&id| add(&mut c, id, Sources::REFERENCE));
        }
    }
    (n.saturating_sub(k / 2)..n).for_each(|id| add(&mut c, id, Sources::RECENT));
    taken.iter().for_each(|&id| add(&mut c, id, Sources::WINDOW));
    let dates = store.dates();
    for seed in seeds {
        let Some(Some(day)) = dates.get(seed) else { continue };
        let lo = (seed.saturating_sub(SESSION_REACH)..seed).rev().take_while(|&j| dates.get(j) == Some(&Some(*day))).last().unwrap_or(seed);
        let hi = (seed + 1..n.min(seed + 1 + SESSION_REACH)).take_while(|&j| dates.get(j) == Some(&Some(*day))).last().unwrap_or(seed);
        (lo..=hi).for_each(|id| add(&mut c, id, Sources::SESSION));
    }
    let proposed = merge_by_turn(c);
    let mut out = proposed.clone();
    let is_proposed = |v: TurnId| proposed.binary_search_by_key(&v, |x| x.0).is_ok();
    for &(id, _) in &proposed {
        for v in [id.checked_sub(1), Some(id + 1)].into_iter().flatten() {
            if !is_proposed(v) {
                add(&mut out, v, Sources::NEIGHBOUR);
            }
        }
    }
    merge_by_turn(out).into_iter().unzip()
}

/// `c` sorted by turn, each turn once with the union of its sources.
fn merge_by_turn(mut c: Vec<(TurnId, Sources)>) -> Vec<(TurnId, Sources)> {
    c.sort_unstable_by_key(|x| x.0);
    let mut out: Vec<(TurnId, Sources)> = Vec::with_capacity(c.len());
    for (id, s) in c {
        match out.last_mut() {
            Some(last) if last.0 == id => last.1.insert(s),
            _ => out.push((id, s)),
        }
    }
    out
}

/// What is embedded for a turn: the end of the turns before it, then the turn, one per line, as the
/// model would read them. A turn's vector is the exchange that ends with it, so a short answer
/// ("Yes, last Sunday!") carries the question it answers.
pub(crate) fn exchange_text(context: &[&str], text: &str) -> String {
    let before = context.iter().filter(|c| !c.is_empty()).copied().collect::<Vec<_>>().join("\n");
    if before.is_empty() {
        return text.to_string();
    }
    format!("{}\n{text}", take_last_bytes_at_char_boundary(&before, EXCHANGE_CONTEXT_CHARS))
}

/// A turn's dense similarity from the exchanges' (row `i` is the exchange ending with turn `i`):
/// the mean over the exchanges that contain it (the one ending with it and the next
/// [`EXCHANGE_CONTEXT_TURNS`]), so its question and its answer both count. The latest turns are in
/// fewer exchanges so far; the ones they are not in yet count as the average exchange, so a turn
/// is not credited with the context it was embedded after.
///
/// One pass over windows of the exchanges (the latest turns' shorter ones after it), each mean the
/// same float expression for every turn.
pub(crate) fn turn_similarities(exchanges: &[f32]) -> Vec<f32> {
    let n = exchanges.len();
    let prior = exchanges.iter().sum::<f32>() / n.max(1) as f32;
    let span = EXCHANGE_CONTEXT_TURNS + 1;
    let mean = |within: &[f32]| (within.iter().sum::<f32>() + (span - within.len()) as f32 * prior) / span as f32;
    let mut out = Vec::with_capacity(n);
    out.extend(exchanges.windows(span).map(mean));
    let latest = out.len();
    out.extend((latest..n).map(|i| mean(&exchanges[i..])));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_is_embedded_with_the_end_of_the_turns_before_it() {
        assert_eq!(exchange_text(&[], "B: yes"), "B: yes");
        assert_eq!(exchange_text(&["", ""], "B: yes"), "B: yes");
        assert_eq!(exchange_text(&["A: did you go?", "B: where?"], "A: to the lake"), "A: did you go?\nB: where?\nA: to the lake");
        // Long context keeps its end, cut on a character boundary (é is two bytes).
        let long = "é".repeat(EXCHANGE_CONTEXT_CHARS);
        let t = exchange_text(&[&long], "B: yes");
        assert!(t.ends_with("\nB: yes"));
        let context = t.trim_end_matches("\nB: yes");
        assert!(context.len() <= EXCHANGE_CONTEXT_CHARS && context.chars().all(|c| c == 'é'), "{}", context.len());
    }

    #[test]
    fn a_turn_scores_the_mean_of_the_exchanges_it_is_in() {
        // Exchange i holds turns i-2..=i, so turn 0 is in exchanges 0, 1, 2. The exchanges the
        // latest turns are not in yet count as the average, 0.45.
        let s = turn_similarities(&[0.3, 0.6, 0.9, 0.0]);
        let want = [0.6, 0.5, 0.45, 0.3];
        for (a, b) in s.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{s:?}");
        }
        assert!(turn_similarities(&[]).is_empty());
    }

    /// The one-pass means are bitwise the per-turn slices' (the definition before it), at every
    /// length around the span and with signed zeros.
    #[test]
    fn turn_similarities_match_the_per_turn_means_bitwise() {
        let per_turn = |exchanges: &[f32]| -> Vec<f32> {
            let n = exchanges.len();
            let prior = exchanges.iter().sum::<f32>() / n.max(1) as f32;
            let span = EXCHANGE_CONTEXT_TURNS + 1;
            (0..n)
                .map(|i| {
                    let within = &exchanges[i..n.min(i + span)];
                    (within.iter().sum::<f32>() + (span - within.len()) as f32 * prior) / span as f32
                })
                .collect()
        };
        let values = [0.31f32, -0.0, 0.0, -0.27, 0.9, 1e-8, -0.5, 0.123_456_7, 0.7];
        for n in 0..values.len() {
            for start in 0..values.len() - n {
                let x = &values[start..start + n];
                let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
                assert_eq!(bits(turn_similarities(x)), bits(per_turn(x)), "{x:?}");
            }
        }
    }
}
