//! The scorer: one score per past turn, from BM25 relevance to the query, dense similarity (when
//! embeddings are on), shared references, recency, role and host priority. Every component is kept
//! (for the window's report); the weights come from the policy.

use crate::policy::{Fusion, Policy};
use crate::store::Store;
use crate::turn::{Role, TurnId};
use crate::window::ScoreParts;

/// What the scorer needs to know about the query.
pub(crate) struct Query<'a> {
    /// BM25 scores of matching turns (any order).
    pub(crate) bm25: &'a [(TurnId, f32)],
    /// Dense similarities of the turns embedded so far (cosine in `[-1, 1]`, by turn id), when
    /// embeddings are on; turns not embedded yet get no dense component.
    pub(crate) dense: Option<&'a [f32]>,
    /// Reference hashes of the query (sorted, deduplicated).
    pub(crate) refs: &'a [u64],
}

/// Scores turns `0..upto` of `store`.
pub(crate) fn score(store: &Store, upto: usize, q: &Query<'_>, policy: &Policy) -> Vec<ScoreParts> {
    let w = &policy.weights;
    let mut parts = vec![ScoreParts::default(); upto];
    match (q.dense, policy.fusion) {
        (Some(dense), Fusion::Rrf) => {
            // Reciprocal-rank fusion: both rankings count by rank, not by raw score.
            let k = policy.rrf_k;
            let rrf = |rank: usize| (k + 1.0) / (k + rank as f32);
            let mut lex: Vec<(TurnId, f32)> = q.bm25.iter().copied().filter(|&(id, s)| id < upto && s > 0.0).collect();
            lex.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for (rank, (id, _)) in lex.into_iter().enumerate() {
                parts[id].bm25 = rrf(rank + 1);
            }
            let mut sem: Vec<(TurnId, f32)> = dense.iter().copied().enumerate().take(upto).collect();
            sem.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for (rank, (id, _)) in sem.into_iter().enumerate() {
                parts[id].dense = rrf(rank + 1);
            }
        }
        (dense, _) => {
            let max_bm25 = q.bm25.iter().filter(|(id, _)| *id < upto).map(|x| x.1).fold(0.0f32, f32::max);
            if max_bm25 > 0.0 {
                for &(id, s) in q.bm25 {
                    if let Some(p) = parts.get_mut(id) {
                        p.bm25 = s / max_bm25;
                    }
                }
            }
            if let Some(dense) = dense {
                // Min-max normalise over the turns so the component is in [0, 1].
                let (lo, hi) = dense.iter().take(upto).fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
                if hi > lo {
                    for (p, &x) in parts.iter_mut().zip(dense) {
                        p.dense = (x - lo) / (hi - lo);
                    }
                }
            }
        }
    }
    // Each shared reference counts by its rarity; the component is the shared share of the query's.
    let idf: Vec<(u64, f32)> = q.refs.iter().map(|&r| (r, store.ref_idf(r))).collect();
    let q_total: f32 = idf.iter().map(|x| x.1).sum();
    let half = policy.recency_half_life.max(f32::MIN_POSITIVE);
    for (id, p) in parts.iter_mut().enumerate() {
        let Some(t) = store.get(id) else { continue };
        if q_total > 0.0 && !t.refs.is_empty() {
            let shared: f32 = idf.iter().filter(|(r, _)| t.refs.binary_search(r).is_ok()).map(|x| x.1).sum();
            p.references = (shared / q_total).min(1.0);
        }
        let age = (upto - 1 - id) as f32;
        p.recency = (0.5f32).powf(age / half);
        p.role = match t.turn.role() {
            Role::User => policy.role_user,
            Role::Assistant => policy.role_assistant,
            Role::Tool => policy.role_tool,
            Role::System => policy.role_system,
        };
        p.priority = t.turn.priority();
        p.total = w.bm25 * p.bm25
            + w.dense * p.dense
            + w.references * p.references
            + w.recency * p.recency
            + w.role * p.role
            + w.priority * p.priority;
    }
    parts
}
