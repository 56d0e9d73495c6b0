//! The engine: the per-turn API. `push` turns, `pin` instruction layers, `assemble` a window for a
//! token budget, `search` the history. One engine per conversation or session.
//!
//! The engine only wires the steps together: the store keeps the turns, retrieval scores them, a
//! planner (`crate::plan`) chooses, the window renders.

use std::path::PathBuf;
use std::sync::Arc;

use crate::dense::EmbeddingService;
use crate::error::Result;
use crate::generated::SummaryService;
use crate::lexical::LexicalIndex;
use crate::message::Message;
use crate::pins::{Pin, PinId, PinLayer, Pins};
use crate::plan::costs::Forms;
use crate::plan::gaps::Summaries;
use crate::plan::{self, PlanContext, PlanState, Request};
use crate::policy::Policy;
use crate::retrieval::Retrieval;
use crate::store::{Store, render_turn};
use crate::summarizer::Summarizer;
use crate::tokens::{Encoding, MESSAGE_OVERHEAD, TokenCounter};
use crate::turn::{Turn, TurnId};
use crate::window::Window;

/// A cached summary: `((first turn, last turn, token allowance), text)`.
pub(crate) type CachedSummary<'a> = ((TurnId, TurnId, usize), &'a str);

/// Engine settings. Every field has a default; change them with the builder-style methods.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    encoding: Encoding,
    token_cache: usize,
    index_dir: Option<PathBuf>,
    commit_every: usize,
    policy: Policy,
    summary_cache: usize,
    embeddings: Option<Arc<EmbeddingService>>,
    generated: Option<Arc<SummaryService>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            encoding: Encoding::O200kBase,
            token_cache: 65_536,
            index_dir: None,
            commit_every: 1024,
            policy: Policy::default(),
            summary_cache: 4096,
            embeddings: None,
            generated: None,
        }
    }
}

impl EngineConfig {
    /// The token encoding (default `o200k_base`).
    pub fn encoding(mut self, e: Encoding) -> Self {
        self.encoding = e;
        self
    }
    /// Distinct texts whose token counts are cached (default 65,536).
    pub fn token_cache(mut self, n: usize) -> Self {
        self.token_cache = n;
        self
    }
    /// Keep the lexical index in this directory instead of RAM. It must not already hold an index.
    pub fn index_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.index_dir = Some(dir.into());
        self
    }
    /// Commit the lexical index every this many pushed turns (default 1,024); turns not yet committed
    /// are searched in memory.
    pub fn commit_every(mut self, n: usize) -> Self {
        self.commit_every = n.max(1);
        self
    }
    /// The policy `assemble` uses (default: the `ctxwin` preset).
    pub fn policy(mut self, p: Policy) -> Self {
        self.policy = p;
        self
    }
    /// Turn on dense retrieval with this embedding service (shared across engines): each pushed
    /// turn is embedded once in the background, the query at `assemble`, and BM25 and cosine are
    /// fused as the policy says. Without it, scoring is lexical.
    pub fn embeddings(mut self, service: Arc<EmbeddingService>) -> Self {
        self.embeddings = Some(service);
        self
    }
    /// Generated summaries from this service (shared across engines): a left-out run shows its
    /// generated summary once the service has written it, and the extractive one until then (or
    /// when the endpoint fails or the guard rejects it). `assemble` never waits for the model.
    pub fn generated_summaries(mut self, service: Arc<SummaryService>) -> Self {
        self.generated = Some(service);
        self
    }
    /// Summaries cached (default 4,096).
    pub fn summary_cache(mut self, n: usize) -> Self {
        self.summary_cache = n;
        self
    }
}

/// A hit of [`Engine::search`].
#[derive(Debug, Clone)]
pub struct SearchHit<'a> {
    /// The turn's id.
    pub turn_id: TurnId,
    /// What it was ranked by: its BM25 score, or with embeddings the fused relevance.
    pub score: f32,
    /// Its BM25 score (0 when it shares no term with the query).
    pub bm25: f32,
    /// Its dense similarity to the query (the mean cosine of the exchanges it is in), with
    /// embeddings and once it is embedded.
    pub dense: Option<f32>,
    /// The original turn, as pushed.
    pub turn: &'a Turn,
}

/// The per-conversation engine.
pub struct Engine {
    counter: TokenCounter,
    store: Store,
    retrieval: Retrieval,
    pins: Pins,
    summaries: Summaries,
    forms: Forms,
    state: PlanState,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("turns", &self.store.len()).field("retrieval", &self.retrieval).finish()
    }
}

impl Engine {
    /// A new engine with `config`.
    pub fn new(config: EngineConfig) -> Result<Self> {
        let lexical = LexicalIndex::new(config.index_dir.as_deref(), config.commit_every)?;
        Ok(Engine {
            counter: TokenCounter::new(config.encoding, config.token_cache),
            store: Store::default(),
            retrieval: Retrieval::new(lexical, config.embeddings),
            pins: Pins::default(),
            summaries: Summaries::new(config.summary_cache, config.generated),
            forms: Forms::default(),
            state: PlanState::new(config.policy),
        })
    }

    /// Replaces the summarizer (clears the summary cache).
    pub fn set_summarizer(&mut self, s: Box<dyn Summarizer>) {
        self.summaries.set(s);
    }

    /// Pins instruction text on a layer. Pins are rendered first (by layer, then priority, higher
    /// first), never summarized or dropped. Only this method creates pins.
    pub fn pin(&mut self, layer: PinLayer, text: impl Into<String>, priority: i32) -> PinId {
        self.pins.add(layer, text.into(), priority)
    }

    /// Removes a pin; returns whether it existed.
    pub fn unpin(&mut self, id: PinId) -> bool {
        self.pins.remove(id)
    }

    /// The pins, in rendering order.
    pub fn pins(&self) -> &[Pin] {
        self.pins.ordered()
    }

    /// Exact tokens of the pins as rendered into the window's system message (framing included);
    /// 0 without pins.
    pub fn pin_tokens(&mut self) -> usize {
        self.pins.render().map_or(0, |t| MESSAGE_OVERHEAD + self.counter.count(&t))
    }

    /// Adds a turn to the history: stored, counted once, indexed (searchable by the next
    /// `assemble` even before the index commits). Tool results must come right after their call.
    pub fn push(&mut self, turn: Turn) -> Result<TurnId> {
        let id = self.store.push(turn, &mut self.counter)?;
        self.retrieval.add(&self.store, id)?;
        // A turn's sentences and salient terms are analyzed at push so that windows do not wait
        // for them; a reopen leaves them to the first window that summarizes the turn (the
        // summarizer caches them on first use: the same analysis, so the same windows).
        if !self.store.rebuilding() {
            self.summaries.observe(&self.store, &mut self.counter, id);
        }
        Ok(id)
    }

    /// Whether dense retrieval is on.
    pub fn has_embeddings(&self) -> bool {
        self.retrieval.has_embeddings()
    }

    /// The embedding model's id, when dense retrieval is on.
    pub fn embedding_model(&self) -> Option<&str> {
        self.retrieval.embedding_model()
    }

    /// Waits until every pushed turn is embedded (a no-op without embeddings). `assemble` never
    /// waits: turns not embedded yet are scored lexically. Replays call this for determinism.
    pub fn wait_for_embeddings(&mut self) -> Result<()> {
        self.retrieval.wait_for_embeddings()
    }

    /// Number of turns pushed.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no turn was pushed.
    pub fn is_empty(&self) -> bool {
        self.store.len() == 0
    }

    /// A pushed turn, as given.
    pub fn turn(&self, id: TurnId) -> Option<&Turn> {
        self.store.get(id).map(|t| &t.turn)
    }

    /// Exact tokens of a pushed turn as rendered verbatim (framing included).
    pub fn turn_tokens(&self, id: TurnId) -> Option<usize> {
        self.store.get(id).map(|t| t.tokens())
    }

    /// Exact tokens `turn` would take rendered verbatim (framing included), without pushing it.
    pub fn count_turn(&mut self, turn: &Turn) -> usize {
        render_turn(0, turn).0.iter().map(|m: &Message| m.count_tokens(&mut self.counter)).sum()
    }

    /// Exact tokens of `text` in the engine's encoding (no framing).
    pub fn count_tokens(&mut self, text: &str) -> usize {
        self.counter.count(text)
    }

    /// The engine's token encoding.
    pub fn encoding(&self) -> Encoding {
        self.counter.encoding()
    }

    /// The engine's policy.
    pub fn policy(&self) -> &Policy {
        self.state.policy()
    }

    /// Replaces the engine's policy; the per-call memory (stable prefix, compaction) starts over.
    pub fn set_policy(&mut self, policy: Policy) {
        self.state = PlanState::new(policy);
    }

    /// The plan state `assemble` keeps between calls (policy, previous plan, last compaction).
    pub fn plan_state(&self) -> &PlanState {
        &self.state
    }

    /// Restores a plan state saved from [`Engine::plan_state`], so the next `assemble` continues
    /// the same stable prefix.
    pub fn set_plan_state(&mut self, state: PlanState) {
        self.state = state;
    }

    /// The cached summaries: `((first turn, last turn, token allowance), text)`, most recent first.
    pub fn summary_entries(&self) -> impl Iterator<Item = ((TurnId, TurnId, usize), &str)> + '_ {
        self.summaries.entries()
    }

    /// The summaries cached since [`Engine::summaries_seen`], most recent first, each key once
    /// (those still cached), or `None` when more were cached than the cache holds (read
    /// [`Engine::summary_entries`]); and the count of keys this covers, for `summaries_seen`.
    pub(crate) fn fresh_summaries(&self) -> (Option<Vec<CachedSummary<'_>>>, usize) {
        let (keys, overflow) = self.summaries.fresh();
        if overflow {
            return (None, keys.len());
        }
        let mut once = rustc_hash::FxHashSet::default();
        let out = keys.iter().rev().filter(|k| once.insert(**k)).filter_map(|k| self.summaries.peek(k).map(|t| (*k, t))).collect();
        (Some(out), keys.len())
    }

    /// Marks the first `n` fresh summaries as read ([`Engine::fresh_summaries`]), and all of
    /// them when `all` (every entry was read after an overflow).
    pub(crate) fn summaries_seen(&mut self, n: usize, all: bool) {
        self.summaries.seen(n, all);
    }

    /// Puts a summary into the cache (as [`Engine::summary_entries`] gave it), so it is not
    /// recomputed.
    pub fn insert_summary(&mut self, key: (TurnId, TurnId, usize), text: String) {
        self.summaries.insert(key, text);
    }

    /// Starts recording the token counts this engine computes (a durable session stores them).
    pub(crate) fn record_token_counts(&mut self) {
        self.counter.record_fresh(true);
    }

    /// The token counts computed since the last call, encoded for storage (empty when none).
    pub(crate) fn take_token_counts(&mut self) -> Vec<u8> {
        self.counter.take_fresh()
    }

    /// Caches stored token counts (of this encoding), so replaying turns looks them up.
    pub(crate) fn prime_token_counts(&mut self, batch: &[u8]) -> usize {
        self.counter.prime(batch)
    }

    /// Rebuilding from a log (a session's reopen): the lexical index takes the turns pushed until
    /// [`Engine::end_rebuild`] without analyzing them or committing per batch, the summarizer
    /// analyzes a turn only when a window first summarizes it, and a tool output's lines are
    /// scored when a window first cuts it.
    ///
    /// With `lexical`, a snapshot of the index's committed part (`Engine::lexical_snapshot`, saved
    /// by an earlier handle), the index starts from it and the turns it holds are not indexed
    /// again; returns how many (0 when it cannot be used).
    pub(crate) fn begin_rebuild(&mut self, lexical: Option<&[u8]>) -> usize {
        let resumed = lexical.map_or(0, |s| self.retrieval.lexical.resume(s));
        self.retrieval.lexical.begin_bulk();
        self.store.set_rebuilding(true);
        resumed
    }

    /// Ends a rebuild: commits in one batch what the per-batch commits would have committed. When
    /// the snapshot it began from turned out not to hold these turns, indexes them all again
    /// (returns false then).
    pub(crate) fn end_rebuild(&mut self) -> Result<bool> {
        self.store.set_rebuilding(false);
        self.retrieval.lexical.end_bulk()?;
        if self.retrieval.lexical.resume_ok() {
            return Ok(true);
        }
        let mut lexical = self.retrieval.lexical.fresh()?;
        lexical.begin_bulk();
        for id in 0..self.store.len() {
            lexical.add(id, &self.store)?;
        }
        lexical.end_bulk()?;
        self.retrieval.lexical = lexical;
        Ok(false)
    }

    /// Turns the lexical index holds committed (what [`Engine::lexical_snapshot`] would save).
    pub(crate) fn lexical_committed_turns(&self) -> usize {
        self.retrieval.lexical.committed_turns()
    }

    /// A snapshot of the lexical index's committed part, for [`Engine::begin_rebuild`] after a
    /// restart; `None` when nothing is committed (or the index is kept in a directory).
    pub(crate) fn lexical_snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        self.retrieval.lexical.snapshot()
    }

    /// Commits the lexical index now (normally automatic).
    pub fn commit(&mut self) -> Result<()> {
        self.retrieval.lexical.commit(&self.store)
    }

    /// With `on`, `push` leaves the lexical index's periodic commit (every `commit_every` turns,
    /// the slow push) to [`Engine::commit_due`]. Windows are the same either way: documents not
    /// committed yet are scored in memory exactly as committed ones.
    pub(crate) fn defer_commits(&mut self, on: bool) {
        self.retrieval.lexical.defer_commits(on);
    }

    /// Makes the commit `push` deferred, if one is due (see [`Engine::defer_commits`]).
    pub(crate) fn commit_due(&mut self) -> Result<()> {
        self.retrieval.lexical.commit_due(&self.store)
    }

    /// The `k` turns that best match `query`, best first, as originally pushed — so anything left
    /// out of a window can be recalled. Lexically, by BM25 (turns sharing no term are not hits).
    /// With embeddings, by BM25 and dense similarity fused as the policy fuses them for windows,
    /// so a paraphrase is found too.
    pub fn search(&mut self, query: &str, k: usize) -> Result<Vec<SearchHit<'_>>> {
        let policy = self.state.policy().clone();
        let scores = self.retrieval.score_for_search(&self.store, query, &policy)?;
        let mut hits: Vec<(TurnId, f32, f32, Option<f32>)> = match &scores.dense {
            None => scores.bm25.iter().map(|&(id, s)| (id, s, s, None)).collect(),
            Some(sims) => {
                let raw: rustc_hash::FxHashMap<TurnId, f32> = scores.bm25.iter().copied().collect();
                let w = &policy.weights;
                scores.parts.iter().map(|(id, p)| (id, p.relevance(w), raw.get(&id).copied().unwrap_or(0.0), sims.get(id).copied())).collect()
            }
        };
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hits.truncate(k);
        Ok(hits
            .into_iter()
            .filter_map(|(id, score, bm25, dense)| self.store.get(id).map(|t| SearchHit { turn_id: id, score, bm25, dense, turn: &t.turn }))
            .collect())
    }

    /// Assembles a window for `budget` tokens with the engine's policy, for the next model call:
    /// the query is the latest user turn (and the latest turn). Consecutive calls keep a stable
    /// prefix when the policy asks for it.
    pub fn assemble(&mut self, budget: usize) -> Result<Window> {
        let mut state = std::mem::replace(&mut self.state, PlanState::new(Policy::default()));
        let r = self.assemble_with(&mut state, budget, Request::NextCall);
        self.state = state;
        r
    }

    /// Assembles a window for `budget` tokens relevant to `query`, with the engine's policy.
    pub fn assemble_for(&mut self, budget: usize, query: &str) -> Result<Window> {
        let mut state = PlanState::new(self.state.policy().clone());
        self.assemble_with(&mut state, budget, Request::Query(query))
    }

    /// Assembles a window with an explicit plan state (policy + its per-call memory). For
    /// [`Request::NextCall`] the state carries the stable prefix and compaction between calls.
    pub fn assemble_with(&mut self, state: &mut PlanState, budget: usize, request: Request<'_>) -> Result<Window> {
        self.retrieval.last_query_embed_us = None;
        let pins = self.pins.render();
        let fixed = plan::fixed_tokens(&mut self.counter, pins.as_deref(), budget, self.store.len())?;
        let mut ctx = PlanContext {
            store: &self.store,
            counter: &mut self.counter,
            forms: &mut self.forms,
            summaries: &mut self.summaries,
            retrieval: &mut self.retrieval,
            pins: pins.as_deref(),
            budget,
            avail: budget - fixed,
            request,
        };
        let mut w = plan::assemble(&mut ctx, state)?;
        w.query_embed_us = self.retrieval.last_query_embed_us;
        Ok(w)
    }
}
