//! The scorer: one score per past turn, from BM25 relevance to the query, dense similarity (when
//! embeddings are on), shared references, recency, role and host priority. Every component is kept
//! (for the window's report); the weights come from the policy.

use serde::Serialize;

use crate::policy::{Fusion, Policy, Weights};
use crate::store::Store;
use crate::turn::{Role, TurnId};

/// Score components of a turn (each in `[0, 1]` before weighting) and the weighted total.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct ScoreParts {
    /// BM25 relative to the best turn.
    pub bm25: f32,
    /// Dense similarity (fused), when embeddings are on.
    pub dense: f32,
    /// Shared references with the query.
    pub references: f32,
    /// Recency.
    pub recency: f32,
    /// Role.
    pub role: f32,
    /// Host priority.
    pub priority: f32,
    /// 1 when the turn's speaker is named in the query.
    pub speaker: f32,
    /// Relevance gained from the turn's exchange and session (already weighted; see the policy's
    /// `context_boost` and `session_boost`).
    pub context: f32,
    /// Weighted total (including span expansion from neighbours).
    pub total: f32,
    /// Why the turn was scored: the candidate sources that proposed it. Every turn is scored when
    /// the history has at most the policy's `candidates` turns (omitted from JSON then); on longer
    /// histories a turn no source proposed is left out unscored (all components 0, no source).
    #[serde(skip_serializing_if = "Sources::is_all")]
    pub scored: Sources,
}

/// The candidate sources that proposed a turn for scoring (a small set; see [`ScoreParts::scored`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sources(u8);

impl Sources {
    /// The history is short enough that every turn was scored.
    pub const ALL: Sources = Sources(1);
    /// Among the lexical (BM25) top-k.
    pub const LEXICAL: Sources = Sources(2);
    /// Among the dense (embedding) top-k.
    pub const DENSE: Sources = Sources(4);
    /// Shares a rare reference (name, number, path…) with the query.
    pub const REFERENCE: Sources = Sources(8);
    /// Among the latest turns (the tail and what recency still lifts).
    pub const RECENT: Sources = Sources(16);
    /// A neighbour of a turn proposed by another source (its question or answer).
    pub const NEIGHBOUR: Sources = Sources(32);
    /// In the session of one of the best candidates (the session boost reaches it).
    pub const SESSION: Sources = Sources(64);
    /// Already in the window (the tail taken before scoring).
    pub const WINDOW: Sources = Sources(128);

    const NAMES: [&'static str; 8] = ["all", "lexical", "dense", "reference", "recent", "neighbour", "session", "window"];

    /// No source: the turn was not scored.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
    /// Every turn was scored (no candidate generation).
    pub fn is_all(&self) -> bool {
        *self == Sources::ALL
    }
    /// Whether every source of `other` is in this set.
    pub fn contains(&self, other: Sources) -> bool {
        self.0 & other.0 == other.0
    }
    /// Adds the sources of `other`.
    pub fn insert(&mut self, other: Sources) {
        self.0 |= other.0;
    }
    /// The sources' names (`lexical`, `dense`, `reference`, `recent`, `neighbour`, `session`,
    /// `window`; `all` when every turn was scored).
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        Self::NAMES.iter().enumerate().filter(|(i, _)| self.0 & (1 << i) != 0).map(|(_, n)| *n)
    }
}

impl Serialize for Sources {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

impl ScoreParts {
    /// The relevance to the query: BM25, dense similarity and shared references, fused with the
    /// policy's weights (before context, recency, role, priority and speaker are added).
    pub fn relevance(&self, w: &Weights) -> f32 {
        w.bm25 * self.bm25 + w.dense * self.dense + w.references * self.references
    }
}

/// What the scorer needs to know about the query.
pub(crate) struct Query<'a> {
    /// BM25 scores of matching turns (any order).
    pub(crate) bm25: &'a [(TurnId, f32)],
    /// Dense similarities of the turns embedded so far (cosine in `[-1, 1]`, by turn id), when
    /// embeddings are on; turns not embedded yet get no dense component.
    pub(crate) dense: Option<&'a [f32]>,
    /// Reference hashes of the query (sorted, deduplicated).
    pub(crate) refs: &'a [u64],
    /// Session of each turn (turns sharing a timestamp), when it has one.
    pub(crate) sessions: &'a [Option<u32>],
}

/// Score components of a history's turns: every turn's, or on a long history the candidates'
/// only (the others are not looked at, and read as all-zero parts with no source), plus the
/// totals that turns nobody scored gained from a selected neighbour (span expansion).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TurnScores {
    /// The candidates (sorted) `parts` is aligned with; `None` when `parts` holds every turn.
    ids: Option<Vec<TurnId>>,
    parts: Vec<ScoreParts>,
    /// Unscored turns' totals from span expansion, sorted by turn (candidates only).
    gains: Vec<(TurnId, f32)>,
}

impl TurnScores {
    /// Every turn's parts, by turn id.
    pub(crate) fn every(parts: Vec<ScoreParts>) -> Self {
        TurnScores { ids: None, parts, gains: Vec::new() }
    }

    /// Where turn `id`'s parts are in `parts`, when it was scored.
    fn slot(&self, id: TurnId) -> Option<usize> {
        match &self.ids {
            None => (id < self.parts.len()).then_some(id),
            Some(ids) => ids.binary_search(&id).ok(),
        }
    }

    /// Turn `id`'s parts (all zero, no source, for a turn nobody scored).
    pub(crate) fn get(&self, id: TurnId) -> ScoreParts {
        match self.slot(id) {
            Some(k) => self.parts[k],
            None => match self.gains.binary_search_by_key(&id, |g| g.0) {
                Ok(k) => ScoreParts { total: self.gains[k].1, ..ScoreParts::default() },
                Err(_) => ScoreParts::default(),
            },
        }
    }

    /// The turns scored or reached (sorted) with their parts: every turn when every turn was scored.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (TurnId, ScoreParts)> + '_ {
        let scored: Box<dyn Iterator<Item = (TurnId, ScoreParts)> + '_> = match &self.ids {
            None => Box::new(self.parts.iter().copied().enumerate()),
            Some(ids) => Box::new(ids.iter().copied().zip(self.parts.iter().copied())),
        };
        let mut gains = self.gains.iter().map(|&(id, total)| (id, ScoreParts { total, ..ScoreParts::default() })).peekable();
        let mut scored = scored.peekable();
        std::iter::from_fn(move || match (scored.peek(), gains.peek()) {
            (Some(a), Some(b)) if b.0 < a.0 => gains.next(),
            (Some(_), _) => scored.next(),
            (None, _) => gains.next(),
        })
    }

    /// The scored turns in order, each with its parts (every turn when every turn was scored;
    /// span gains not included).
    pub(crate) fn scored(&self) -> impl Iterator<Item = (TurnId, &ScoreParts)> + '_ {
        let ids: Box<dyn Iterator<Item = TurnId> + '_> = match &self.ids {
            None => Box::new(0..self.parts.len()),
            Some(ids) => Box::new(ids.iter().copied()),
        };
        ids.zip(&self.parts)
    }

    /// Raises each scored turn's total to at least `gain(turn)`, and records `extra` gains of turns
    /// not scored (span gains from selected neighbours).
    pub(crate) fn raise_scored(&mut self, gain: impl Fn(TurnId) -> f32, extra: impl Iterator<Item = (TurnId, f32)>) {
        let ids: Box<dyn Iterator<Item = TurnId>> = match &self.ids {
            None => Box::new(0..self.parts.len()),
            Some(ids) => Box::new(ids.clone().into_iter()),
        };
        for (id, p) in ids.zip(self.parts.iter_mut()) {
            p.total = p.total.max(gain(id));
        }
        self.raise_totals(extra.filter(|&(id, _)| self.slot(id).is_none()).collect::<Vec<_>>().into_iter());
    }

    /// Raises each turn's total to at least the given one (span gains from selected neighbours).
    pub(crate) fn raise_totals(&mut self, raised: impl Iterator<Item = (TurnId, f32)>) {
        for (id, total) in raised {
            match self.slot(id) {
                Some(k) => self.parts[k].total = self.parts[k].total.max(total),
                None if self.ids.is_some() => self.gains.push((id, total)),
                None => {}
            }
        }
        // Sorted by turn, one entry each (its largest gain).
        self.gains.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
        self.gains.dedup_by_key(|g| g.0);
    }
}

/// Scores turns `0..upto` of `store` (every one), by turn id.
pub(crate) fn score(store: &Store, upto: usize, q: &Query<'_>, policy: &Policy) -> Vec<ScoreParts> {
    score_turns(store, upto, None, q, policy).parts
}

/// Scores the candidate turns `ids` (sorted, distinct, each below `upto`, with the sources that
/// proposed each), or with `None` every turn `0..upto`. Turns not scored are not looked at (they
/// read as all-zero parts and no source). With candidates, `q.bm25` must hold the best lexical
/// match (BM25 is relative to it), and a turn's exchange and session context sees only the
/// relevance of other candidates. The work is the candidates', not the history's (except for
/// dense similarities, which come for every turn).
pub(crate) fn score_turns(store: &Store, upto: usize, ids: Option<(&[TurnId], &[Sources])>, q: &Query<'_>, policy: &Policy) -> TurnScores {
    let w = &policy.weights;
    let mut t = match ids {
        None => TurnScores::every(vec![ScoreParts { scored: Sources::ALL, ..ScoreParts::default() }; upto]),
        Some((ids, sources)) => TurnScores {
            ids: Some(ids.to_vec()),
            parts: sources.iter().map(|&scored| ScoreParts { scored, ..ScoreParts::default() }).collect(),
            gains: Vec::new(),
        },
    };
    // The turns scored, in order, with their slot in `t.parts`.
    let turns: Vec<TurnId> = match ids {
        None => (0..upto).collect(),
        Some((ids, _)) => ids.to_vec(),
    };
    lexical_and_dense(&mut t, &turns, upto, q, policy);
    // Each shared reference counts by its rarity; the component is the shared share of the query's.
    // Walking the query's postings touches only the turns that mention one; with candidates, a
    // long postings list is searched for each candidate instead.
    let idf: Vec<(u64, f32)> = q.refs.iter().map(|&r| (r, store.ref_idf(r))).collect();
    let q_total: f32 = idf.iter().map(|x| x.1).sum();
    if q_total > 0.0 {
        for &(r, wr) in &idf {
            let postings = store.ref_postings(r);
            let add = |t: &mut TurnScores, id: TurnId| {
                if let Some(k) = t.slot(id).filter(|&k| !t.parts[k].scored.is_empty()) {
                    t.parts[k].references += wr / q_total;
                }
            };
            match ids {
                // Whichever is shorter: the postings walked against the candidates, or each
                // candidate searched in the postings.
                Some((ids, _)) if postings.len() > ids.len() * 8 => {
                    ids.iter().filter(|id| postings.binary_search(id).is_ok()).for_each(|&id| add(&mut t, id));
                }
                _ => postings.iter().take_while(|&&id| id < upto).for_each(|&id| add(&mut t, id)),
            }
        }
    }
    let named = store.speakers_named(q.refs);
    let half = policy.recency_half_life.max(f32::MIN_POSITIVE);
    for (k, &id) in turns.iter().enumerate() {
        let Some(st) = store.facts(id) else { continue };
        let p = &mut t.parts[k];
        p.references = p.references.min(1.0);
        let age = (upto - 1 - id) as f32;
        p.recency = (0.5f32).powf(age / half);
        p.role = match st.role {
            Role::User => policy.role_user,
            Role::Assistant => policy.role_assistant,
            Role::Tool => policy.role_tool,
            Role::System => policy.role_system,
        };
        p.priority = st.priority;
        p.speaker = f32::from(u8::from(st.speaker.is_some_and(|s| named.contains(&s))));
    }
    let total = |p: &mut ScoreParts, r: f32, c: f32| {
        p.context = c;
        p.total = r + c + w.speaker * p.speaker + w.recency * p.recency + w.role * p.role + w.priority * p.priority;
    };
    match ids {
        None => {
            let relevance: Vec<f32> = t.parts.iter().map(|p| p.relevance(w)).collect();
            let context = context_boosts(&relevance, q.sessions, policy.context_boost, policy.session_boost);
            for ((p, r), c) in t.parts.iter_mut().zip(relevance).zip(context) {
                total(p, r, c);
            }
        }
        Some((ids, _)) => {
            let context = candidate_boosts(&t, ids, q.sessions, policy);
            for (k, c) in context.into_iter().enumerate() {
                let r = t.parts[k].relevance(w);
                total(&mut t.parts[k], r, c);
            }
        }
    }
    t
}

/// The BM25 and dense components (normalised, or fused by rank), of the scored turns `turns`.
fn lexical_and_dense(t: &mut TurnScores, turns: &[TurnId], upto: usize, q: &Query<'_>, policy: &Policy) {
    let slot = |t: &TurnScores, id: usize| t.slot(id).filter(|&k| !t.parts[k].scored.is_empty());
    match (q.dense, policy.fusion) {
        (Some(dense), Fusion::Rrf) => {
            // Reciprocal-rank fusion: both rankings count by rank, not by raw score.
            let k = policy.rrf_k;
            let rrf = |rank: usize| (k + 1.0) / (k + rank as f32);
            let mut lex: Vec<(TurnId, f32)> = q.bm25.iter().copied().filter(|&(id, s)| id < upto && s > 0.0).collect();
            lex.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for (rank, (id, _)) in lex.into_iter().enumerate() {
                if let Some(s) = slot(t, id) {
                    t.parts[s].bm25 = rrf(rank + 1);
                }
            }
            let mut sem: Vec<(TurnId, f32)> = dense.iter().copied().enumerate().take(upto).collect();
            sem.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for (rank, (id, _)) in sem.into_iter().enumerate() {
                if let Some(s) = slot(t, id) {
                    t.parts[s].dense = rrf(rank + 1);
                }
            }
        }
        (dense, _) => {
            let max_bm25 = q.bm25.iter().filter(|(id, _)| *id < upto).map(|x| x.1).fold(0.0f32, f32::max);
            if max_bm25 > 0.0 {
                for &(id, s) in q.bm25 {
                    if let Some(k) = slot(t, id) {
                        t.parts[k].bm25 = s / max_bm25;
                    }
                }
            }
            if let Some(dense) = dense {
                // Min-max normalise over the turns so the component is in [0, 1].
                let (lo, hi) = dense.iter().take(upto).fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
                if hi > lo {
                    for (k, &id) in turns.iter().enumerate() {
                        if let (Some(&x), false) = (dense.get(id), t.parts[k].scored.is_empty()) {
                            t.parts[k].dense = (x - lo) / (hi - lo);
                        }
                    }
                }
            }
        }
    }
}

/// [`context_boosts`] for the candidates `ids` only (sorted, `t`'s slots): a turn's neighbours and
/// session mates count with their relevance when they are candidates too, else with none.
fn candidate_boosts(t: &TurnScores, ids: &[TurnId], sessions: &[Option<u32>], policy: &Policy) -> Vec<f32> {
    let w = &policy.weights;
    // Relevance by slot; a turn's neighbours are candidates exactly when they are the next slots.
    let rel: Vec<f32> = t.parts.iter().map(|p| if p.scored.is_empty() { 0.0 } else { p.relevance(w) }).collect();
    let relevance = |k: usize| rel.get(k).copied().unwrap_or(0.0);
    let (exchange, session) = (policy.context_boost, policy.session_boost);
    let mut boost: Vec<f32> = ids
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let before = k.checked_sub(1).filter(|&j| i.checked_sub(1) == ids.get(j).copied()).map_or(0.0, relevance);
            let after = Some(k + 1).filter(|&j| ids.get(j) == Some(&(i + 1))).map_or(0.0, relevance);
            exchange * before.max(after)
        })
        .collect();
    if session > 0.0 {
        // Per session: the best candidate, its score, and the second-best score.
        let mut best: rustc_hash::FxHashMap<u32, (usize, f32, f32)> = rustc_hash::FxHashMap::default();
        for (k, &i) in ids.iter().enumerate() {
            let Some(Some(s)) = sessions.get(i) else { continue };
            let x = relevance(k) + boost[k];
            let b = best.entry(*s).or_insert((usize::MAX, 0.0, 0.0));
            if b.0 == usize::MAX || x > b.1 {
                *b = (i, x, if b.0 == usize::MAX { 0.0 } else { b.1 });
            } else if x > b.2 {
                b.2 = x;
            }
        }
        for (k, &i) in ids.iter().enumerate() {
            let Some(Some(s)) = sessions.get(i) else { continue };
            if let Some(&(top, first, second)) = best.get(s) {
                boost[k] += session * if top == i { second } else { first };
            }
        }
    }
    boost
}

/// What each turn's relevance gains from its context: `exchange` × the larger relevance of its two
/// neighbours (a question and its answer find each other), then `session` × the largest of the
/// other turns of its session (a session is about a few things; its other turns are likely about
/// the same one). Turns without a session, or alone in theirs, gain nothing from it.
pub(crate) fn context_boosts(relevance: &[f32], sessions: &[Option<u32>], exchange: f32, session: f32) -> Vec<f32> {
    let n = relevance.len();
    let mut boost: Vec<f32> = (0..n)
        .map(|i| {
            let before = i.checked_sub(1).map_or(0.0, |j| relevance[j]);
            let after = relevance.get(i + 1).copied().unwrap_or(0.0);
            exchange * before.max(after)
        })
        .collect();
    if session > 0.0 {
        let with_exchange: Vec<f32> = relevance.iter().zip(&boost).map(|(r, b)| r + b).collect();
        // Per session: the best turn, its score, and the second-best score.
        let n_sessions = sessions.iter().take(n).flatten().map(|&s| s as usize + 1).max().unwrap_or(0);
        let mut best: Vec<(usize, f32, f32)> = vec![(usize::MAX, 0.0, 0.0); n_sessions];
        for (i, s) in sessions.iter().take(n).enumerate() {
            let (Some(s), x) = (s, with_exchange[i]) else { continue };
            let b = &mut best[*s as usize];
            if b.0 == usize::MAX || x > b.1 {
                *b = (i, x, if b.0 == usize::MAX { 0.0 } else { b.1 });
            } else if x > b.2 {
                b.2 = x;
            }
        }
        for (i, s) in sessions.iter().take(n).enumerate() {
            let Some(s) = s else { continue };
            let (top, first, second) = best[*s as usize];
            boost[i] += session * if top == i { second } else { first };
        }
    }
    boost
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::{Encoding, TokenCounter};
    use crate::turn::Turn;

    fn store(texts: &[(&str, bool)]) -> Store {
        let mut s = Store::default();
        let mut c = TokenCounter::new(Encoding::O200kBase, 64);
        for (t, user) in texts {
            let turn = if *user { Turn::user(*t) } else { Turn::assistant(*t) };
            if let Err(e) = s.push(turn, &mut c) {
                panic!("{e}");
            }
        }
        s
    }

    #[test]
    fn components_are_normalised_and_weighted() {
        let s = store(&[("Ana moved to Lisbon in 2021", true), ("nice weather today", false), ("Lisbon again", true)]);
        let bm25 = [(0, 4.0), (2, 2.0)];
        let refs = crate::refs::references("When did Ana move to Lisbon?");
        let p = Policy::default();
        let parts = score(&s, 3, &Query { bm25: &bm25, dense: None, refs: &refs, sessions: &[] }, &p);
        assert_eq!(parts[0].bm25, 1.0);
        assert_eq!(parts[2].bm25, 0.5);
        assert_eq!(parts[1].bm25, 0.0);
        // Ana and Lisbon are both shared by turn 0; Lisbon only by turn 2, and it is the commoner one.
        assert_eq!(parts[0].references, 1.0);
        assert!(parts[2].references > 0.0 && parts[2].references < 0.6, "{}", parts[2].references);
        assert_eq!(parts[1].references, 0.0);
        // Recency halves every `recency_half_life` turns; the newest is 1.
        assert_eq!(parts[2].recency, 1.0);
        assert!(parts[0].recency < parts[1].recency);
        assert_eq!((parts[0].role, parts[1].role), (p.role_user, p.role_assistant));
        let w = &p.weights;
        let expect = w.bm25 * 1.0 + w.references * 1.0 + w.recency * parts[0].recency + w.role * p.role_user;
        assert!((parts[0].total - expect).abs() < 1e-6);
    }

    /// Scoring every turn as candidates gives what scoring every turn gives (only the sources
    /// differ); scoring some leaves the others at zero and gives the candidates the same parts
    /// except the context, which sees candidates only.
    #[test]
    fn candidates_score_like_every_turn() {
        let s = store(&[("Ana moved to Lisbon in 2021", true), ("nice", false), ("Lisbon again", true), ("weather", false), ("Ana", true)]);
        let bm25 = [(0, 4.0), (2, 2.0), (4, 1.0)];
        let refs = crate::refs::references("When did Ana move to Lisbon?");
        let dense = [0.1, 0.5, 0.9, 0.2, 0.4];
        let sessions = [Some(0), Some(0), Some(1), Some(1), Some(1)];
        for (dense, fusion) in [(None, Fusion::Weighted), (Some(&dense[..]), Fusion::Weighted), (Some(&dense[..]), Fusion::Rrf)] {
            let p = Policy { fusion, ..Policy::default() };
            let q = Query { bm25: &bm25, dense, refs: &refs, sessions: &sessions };
            let every = score(&s, 5, &q, &p);
            let ids = [0, 1, 2, 3, 4];
            let some = score_turns(&s, 5, Some((&ids, &[Sources::LEXICAL; 5])), &q, &p);
            for (id, a) in every.iter().enumerate() {
                assert_eq!(ScoreParts { scored: Sources::ALL, ..some.get(id) }, *a);
            }
            let few = score_turns(&s, 5, Some((&[0, 2], &[Sources::LEXICAL, Sources::REFERENCE])), &q, &p);
            let few: Vec<ScoreParts> = (0..5).map(|id| few.get(id)).collect();
            for id in [1, 3, 4] {
                assert_eq!(few[id], ScoreParts::default());
            }
            for id in [0, 2] {
                let (a, b) = (few[id], every[id]);
                assert_eq!((a.bm25, a.dense, a.references, a.recency, a.role, a.speaker), (b.bm25, b.dense, b.references, b.recency, b.role, b.speaker));
            }
            assert!(few[2].scored.contains(Sources::REFERENCE) && !few[2].scored.contains(Sources::LEXICAL));
            // In JSON the sources are names, and omitted when every turn was scored.
            assert_eq!(serde_json::to_value(few[2]).ok().map(|v| v["scored"].clone()), Some(serde_json::json!(["reference"])));
            assert!(serde_json::to_value(every[0]).ok().is_some_and(|v| v.get("scored").is_none()));
        }
    }

    #[test]
    fn rrf_ranks_both_lists_when_dense_is_on() {
        let s = store(&[("a", true), ("b", true), ("c", true)]);
        let bm25 = [(2, 9.0), (0, 1.0)];
        let dense = [0.1, 0.9, 0.5];
        let p = Policy { fusion: Fusion::Rrf, ..Policy::default() };
        let parts = score(&s, 3, &Query { bm25: &bm25, dense: Some(&dense), refs: &[], sessions: &[] }, &p);
        let k = p.rrf_k;
        assert_eq!(parts[2].bm25, 1.0);
        assert!((parts[0].bm25 - (k + 1.0) / (k + 2.0)).abs() < 1e-6);
        assert_eq!(parts[1].bm25, 0.0);
        assert_eq!(parts[1].dense, 1.0);
        assert!((parts[2].dense - (k + 1.0) / (k + 2.0)).abs() < 1e-6);
        assert!((parts[0].dense - (k + 1.0) / (k + 3.0)).abs() < 1e-6);
    }

    #[test]
    fn exchange_and_session_context_lift_turns_near_a_hit() {
        // Turns 0–2 are one session, 3–4 another; turn 5 has no timestamp.
        let relevance = [0.0, 1.0, 0.0, 0.2, 0.0, 0.0];
        let sessions = [Some(0), Some(0), Some(0), Some(1), Some(1), None];
        let b = context_boosts(&relevance, &sessions, 0.5, 0.0);
        assert_eq!(b, vec![0.5, 0.0, 0.5, 0.0, 0.1, 0.0]);
        let b = context_boosts(&relevance, &sessions, 0.0, 0.5);
        // The best of a session gets the second best; the others get the best; no session, nothing.
        assert_eq!(b, vec![0.5, 0.0, 0.5, 0.0, 0.1, 0.0]);
        let b = context_boosts(&relevance, &sessions, 0.5, 0.5);
        // With both, the session term sees the exchange-lifted scores (turn 2 is 0.5 after it).
        assert_eq!(b, vec![0.5 + 0.5, 0.5 * 0.5, 0.5 + 0.5, 0.5 * 0.1, 0.1 + 0.1, 0.0]);
        // Off means off, and turns without sessions never lift each other.
        assert!(context_boosts(&relevance, &sessions, 0.0, 0.0).iter().all(|&x| x == 0.0));
        assert!(context_boosts(&relevance, &[None; 6], 0.0, 1.0).iter().all(|&x| x == 0.0));
    }

    #[test]
    fn a_speaker_named_in_the_query_marks_their_turns() {
        let mut s = Store::default();
        let mut c = TokenCounter::new(Encoding::O200kBase, 64);
        for (who, text) in [("Caroline", "I went hiking"), ("Melanie", "I painted a lake"), ("Caroline", "Caroline again")] {
            if let Err(e) = s.push(Turn::user(text).with_speaker(who), &mut c) {
                panic!("{e}");
            }
        }
        let refs = crate::refs::references("What did Caroline do?");
        let p = Policy::default();
        let parts = score(&s, 3, &Query { bm25: &[], dense: None, refs: &refs, sessions: &[] }, &p);
        assert_eq!([parts[0].speaker, parts[1].speaker, parts[2].speaker], [1.0, 0.0, 1.0]);
        // A speaker's name is not a shared reference (every turn of theirs has it).
        assert_eq!(parts[0].references, 0.0);
        assert!((parts[0].total - parts[1].total - p.weights.speaker).abs() < 0.02, "{parts:?}");
    }
}
