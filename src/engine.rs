//! The engine: the per-turn API. `push` turns, `pin` instruction layers, `assemble` a window for a
//! token budget, `search` the history. One engine per conversation or session.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use lru::LruCache;
use rustc_hash::FxHashMap;

use crate::dense::{EmbedWorker, EmbeddingService, VectorIndex};
use crate::error::{Error, Result};
use crate::lexical::LexicalIndex;
use crate::pins::{PinId, PinLayer, Pins};
use crate::policy::{Policy, Strategy};
use crate::refs::references;
use crate::scorer::{self, Query};
use crate::selector::{self, Selection, UnitCost};
use crate::store::{header, Store};
use crate::summarizer::{ExtractiveSummarizer, Run, Summarizer};
use crate::tokens::{Encoding, TokenCounter, MESSAGE_OVERHEAD, REPLY_PRIMING};
use crate::turn::{Block, Role, Turn, TurnId};
use crate::window::{Fate, Message, Origin, ReportLine, ScoreParts, SummaryInfo, Window};

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
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            encoding: Encoding::O200kBase,
            token_cache: 65_536,
            index_dir: None,
            commit_every: 256,
            policy: Policy::default(),
            summary_cache: 4096,
            embeddings: None,
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
    /// Commit the lexical index every this many pushed turns (default 256); turns not yet committed
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

/// How a turn is shown in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
enum Form {
    Verbatim,
    /// Tool outputs over this many tokens shown head + tail.
    Truncated(usize),
    /// Tool outputs replaced by a placeholder.
    Cleared,
}

/// A piece of a planned window, in order.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum Item {
    Unit(usize),
    Summary { first_unit: usize, last_unit: usize, text: String, tokens: usize },
    Marker { first_unit: usize, last_unit: usize },
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Plan {
    items: Vec<Item>,
    /// Tool results in turns before this id are cleared.
    clear_before: TurnId,
    /// Effective score per unit (for the report and for fix-ups).
    unit_scores: Vec<f32>,
}

/// A compaction already done (the `compaction` strategy, per-turn windows).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Compacted {
    /// Units before this one are compacted.
    boundary: usize,
    kept_users: Vec<usize>,
    summary: String,
    summary_tokens: usize,
}

/// A policy plus what it remembers between per-turn windows (the previous window for a stable
/// prefix; the last compaction). One per policy and budget being replayed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Assembler {
    policy: Policy,
    prev: Option<(Plan, usize, usize)>,
    compacted: Option<Compacted>,
}

impl Assembler {
    /// An assembler for `policy`.
    pub fn new(policy: Policy) -> Self {
        Assembler { policy, prev: None, compacted: None }
    }
    /// Its policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

/// The per-conversation engine.
pub struct Engine {
    counter: TokenCounter,
    store: Store,
    lexical: LexicalIndex,
    pins: Pins,
    summarizer: Box<dyn Summarizer>,
    summary_cache: LruCache<(TurnId, TurnId, usize), String>,
    form_cache: FxHashMap<(TurnId, Form), (Vec<Message>, usize)>,
    ts_ids: FxHashMap<String, u32>,
    turn_ts: Vec<Option<u32>>,
    call_names: FxHashMap<String, String>,
    assembler: Assembler,
    dense: Option<Dense>,
    last_query_embed_us: Option<f64>,
    /// Per-unit costs keyed by (turns, clear boundary, tool output caps).
    unit_cost_cache: Option<((usize, TurnId, usize, usize), Arc<Vec<UnitCost>>)>,
}

/// Dense retrieval state: the shared service, this engine's background worker, and the vectors of
/// the turns embedded so far (rows of the index are turn ids `0..index.len()`).
struct Dense {
    service: Arc<EmbeddingService>,
    worker: EmbedWorker,
    arrived: FxHashMap<TurnId, Arc<[f32]>>,
    index: VectorIndex,
    error: Option<String>,
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

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("turns", &self.store.len()).field("lexical", &self.lexical).finish()
    }
}

/// Bytes of the default query taken from the latest turns.
const DEFAULT_QUERY_BYTES: usize = 4000;
/// Distinct query terms scored at most.
const MAX_QUERY_TERMS: usize = 64;

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn nines(n: usize) -> String {
    "9".repeat(n.max(1).to_string().len())
}

impl Engine {
    /// A new engine with `config`.
    pub fn new(config: EngineConfig) -> Result<Self> {
        let lexical = LexicalIndex::new(config.index_dir.as_deref(), config.commit_every)?;
        let cap = NonZeroUsize::new(config.summary_cache.max(1)).unwrap_or(NonZeroUsize::MIN);
        Ok(Engine {
            counter: TokenCounter::new(config.encoding, config.token_cache),
            store: Store::default(),
            lexical,
            pins: Pins::default(),
            summarizer: Box::new(ExtractiveSummarizer),
            summary_cache: LruCache::new(cap),
            form_cache: FxHashMap::default(),
            ts_ids: FxHashMap::default(),
            turn_ts: Vec::new(),
            call_names: FxHashMap::default(),
            assembler: Assembler::new(config.policy),
            dense: config.embeddings.map(|service| Dense {
                worker: EmbedWorker::start(Arc::clone(&service)),
                index: VectorIndex::new(service.dim()),
                service,
                arrived: FxHashMap::default(),
                error: None,
            }),
            last_query_embed_us: None,
            unit_cost_cache: None,
        })
    }

    /// Replaces the summarizer (clears the summary cache).
    pub fn set_summarizer(&mut self, s: Box<dyn Summarizer>) {
        self.summarizer = s;
        self.summary_cache.clear();
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
    pub fn pins(&self) -> &[crate::pins::Pin] {
        self.pins.ordered()
    }

    /// Adds a turn to the history: stored, counted once, indexed (searchable by the next
    /// `assemble` even before the index commits). Tool results must come right after their call.
    pub fn push(&mut self, turn: Turn) -> Result<TurnId> {
        for b in turn.blocks() {
            if let Block::ToolCall { call_id, name, .. } = b {
                self.call_names.insert(call_id.clone(), name.clone());
            }
        }
        let ts = turn.timestamp().map(|t| {
            let next = self.ts_ids.len() as u32;
            *self.ts_ids.entry(t.to_string()).or_insert(next)
        });
        let id = self.store.push(turn, &mut self.counter)?;
        self.turn_ts.push(ts);

        let text = self.store.get(id).map_or("", |t| t.text.as_str());
        self.lexical.add(id, text)?;
        if let Some(d) = &mut self.dense {
            // Embedded in the background: push and assemble never wait for the model.
            let context: Vec<&str> =
                (id.saturating_sub(EXCHANGE_CONTEXT_TURNS)..id).filter_map(|p| self.store.get(p)).map(|t| t.text.as_str()).collect();
            d.worker.send(id, exchange_text(&context, text))?;
        }
        Ok(id)
    }

    /// Whether dense retrieval is on.
    pub fn has_embeddings(&self) -> bool {
        self.dense.is_some()
    }

    /// The embedding model's id, when dense retrieval is on.
    pub fn embedding_model(&self) -> Option<&str> {
        self.dense.as_ref().map(|d| d.service.model_id())
    }

    /// Waits until every pushed turn is embedded (a no-op without embeddings). `assemble` never
    /// waits: turns not embedded yet are scored lexically. Replays call this for determinism.
    pub fn wait_for_embeddings(&mut self) -> Result<()> {
        match &mut self.dense {
            Some(d) => d.collect(true),
            None => Ok(()),
        }
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
        self.store.get(id).map(|t| t.tokens)
    }

    /// The token counter (its encoding and cache).
    pub fn counter(&mut self) -> &mut TokenCounter {
        &mut self.counter
    }

    /// Commits the lexical index now (normally automatic).
    pub fn commit(&mut self) -> Result<()> {
        self.lexical.commit()
    }

    /// The `k` turns that best match `query`, best first, as originally pushed — so anything left
    /// out of a window can be recalled. Lexically, by BM25 (turns sharing no term are not hits).
    /// With embeddings, by BM25 and dense similarity fused as the policy fuses them for windows,
    /// so a paraphrase is found too.
    pub fn search(&mut self, query: &str, k: usize) -> Result<Vec<SearchHit<'_>>> {
        let terms = self.lexical.analyze(query);
        let bm25 = self.lexical.scores(&terms)?;
        let policy = self.assembler.policy.clone();
        let mut hits: Vec<(TurnId, f32, f32, Option<f32>)> = match self.dense_similarities(query, &policy)? {
            None => bm25.iter().map(|&(id, s)| (id, s, s, None)).collect(),
            Some(sims) => {
                let refs = references(query);
                let q = Query { bm25: &bm25, dense: Some(&sims), refs: &refs, sessions: &[] };
                let parts = scorer::score(&self.store, self.store.len(), &q, &policy);
                let raw: FxHashMap<TurnId, f32> = bm25.iter().copied().collect();
                let w = &policy.weights;
                parts
                    .iter()
                    .enumerate()
                    .map(|(id, p)| {
                        let fused = w.bm25 * p.bm25 + w.dense * p.dense + w.references * p.references;
                        (id, fused, raw.get(&id).copied().unwrap_or(0.0), sims.get(id).copied())
                    })
                    .collect()
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
        let mut a = std::mem::replace(&mut self.assembler, Assembler::new(Policy::default()));
        let r = self.assemble_with(&mut a, budget, None);
        self.assembler = a;
        r
    }

    // --- Durable sessions (src/session/) need these; small and self-contained. ---

    /// The engine's policy.
    pub fn policy(&self) -> &Policy {
        &self.assembler.policy
    }

    /// Replaces the engine's policy; the per-turn memory (stable prefix, compaction) starts over.
    pub fn set_policy(&mut self, policy: Policy) {
        self.assembler = Assembler::new(policy);
    }

    /// The per-turn plan state `assemble` keeps (policy, previous plan, last compaction).
    pub fn plan_state(&self) -> &Assembler {
        &self.assembler
    }

    /// Restores a plan state saved by [`Engine::plan_state`], so the next `assemble` continues the
    /// same stable prefix.
    pub fn set_plan_state(&mut self, state: Assembler) {
        self.assembler = state;
    }

    /// The cached summaries: `((first turn, last turn, token allowance), text)`, most recent first.
    pub fn summary_entries(&self) -> impl Iterator<Item = ((TurnId, TurnId, usize), &str)> + '_ {
        self.summary_cache.iter().map(|(k, v)| (*k, v.as_str()))
    }

    /// Puts a summary into the cache (as [`Engine::summary_entries`] gave it), so it is not
    /// recomputed.
    pub fn insert_summary(&mut self, key: (TurnId, TurnId, usize), text: String) {
        self.summary_cache.put(key, text);
    }

    /// Assembles a window for `budget` tokens relevant to `query`, with the engine's policy.
    pub fn assemble_for(&mut self, budget: usize, query: &str) -> Result<Window> {
        let mut a = Assembler::new(self.assembler.policy.clone());
        self.assemble_with(&mut a, budget, Some(query))
    }

    /// Assembles a window with an explicit assembler (policy + its per-turn memory). `query: None`
    /// means the default query (latest turns) and allows the stable-prefix / compaction memory.
    pub fn assemble_with(&mut self, a: &mut Assembler, budget: usize, query: Option<&str>) -> Result<Window> {
        self.last_query_embed_us = None;
        let mut w = self.assemble_inner(a, budget, query)?;
        w.query_embed_us = self.last_query_embed_us;
        Ok(w)
    }

    fn assemble_inner(&mut self, a: &mut Assembler, budget: usize, query: Option<&str>) -> Result<Window> {
        let pins_text = self.pins.render();
        let pin_tokens = pins_text.as_deref().map_or(0, |t| MESSAGE_OVERHEAD + self.counter.count(t));
        let needed = pin_tokens + REPLY_PRIMING;
        if needed > budget {
            return Err(Error::BudgetBelowPins { budget, needed, shortfall: needed - budget });
        }
        let avail = budget - needed;
        let policy = a.policy.clone();
        let n_units = self.store.units().len();
        let per_turn = query.is_none();

        // Stable prefix: keep the previous plan and append the new units while they fit.
        if per_turn && policy.stable_prefix && policy.strategy == Strategy::Scored {
            if let Some((prev, prev_units, prev_last_end)) = &a.prev {
                let last_same = self.store.units().get(prev_units.saturating_sub(1)).is_some_and(|u| u.end == *prev_last_end);
                if n_units >= *prev_units && last_same {
                    let mut plan = prev.clone();
                    plan.items.extend((*prev_units..n_units).map(Item::Unit));
                    plan.unit_scores.resize(n_units, 0.0);
                    let w = self.build(&plan, &policy, pins_text.as_deref(), budget, None)?;
                    if w.total_tokens <= budget {
                        a.prev = Some((plan, n_units, self.store.units().last().map_or(0, |u| u.end)));
                        return Ok(w);
                    }
                }
            }
        }

        let query_text = match query {
            Some(q) => q.to_string(),
            None => self.default_query(),
        };
        let (plan, scores) = match policy.strategy {
            Strategy::Compaction => (self.plan_compaction(a, &policy, avail, per_turn), None),
            Strategy::Recency | Strategy::ToolClearing => (self.plan_recency(&policy, avail), None),
            Strategy::Rag | Strategy::Scored => {
                let target = if per_turn && policy.stable_prefix && policy.strategy == Strategy::Scored {
                    ((avail as f32) * policy.refill_target) as usize
                } else {
                    avail
                };
                let (plan, scores) = self.plan_scored(&policy, &query_text, avail, target, per_turn)?;
                (plan, Some(scores))
            }
        };
        let mut plan = plan;
        let mut w = self.build(&plan, &policy, pins_text.as_deref(), budget, scores.as_deref())?;
        // Fix-up: selection costs are exact or upper bounds, so this should not trigger; if it does,
        // drop the lowest-scored unit until the window fits.
        while w.total_tokens > budget {
            let victim = plan
                .items
                .iter()
                .enumerate()
                .filter_map(|(i, it)| match it {
                    Item::Unit(u) => Some((i, *u)),
                    _ => None,
                })
                .min_by(|a, b| plan.unit_scores.get(a.1).unwrap_or(&0.0).total_cmp(plan.unit_scores.get(b.1).unwrap_or(&0.0)));
            match victim {
                Some((i, _)) => {
                    plan.items.remove(i);
                }
                None => {
                    // Only summaries/markers left: drop them, the report still says what was left out.
                    if plan.items.is_empty() {
                        break;
                    }
                    plan.items.pop();
                }
            }
            w = self.build(&plan, &policy, pins_text.as_deref(), budget, scores.as_deref())?;
        }
        if per_turn {
            a.prev = Some((plan, n_units, self.store.units().last().map_or(0, |u| u.end)));
        }
        Ok(w)
    }

    fn default_query(&self) -> String {
        let turns = self.store.turns();
        let last_user = turns.iter().rposition(|t| t.turn.role() == Role::User && !t.has_results());
        let mut q = String::new();
        if let Some(i) = last_user {
            q.push_str(cut(&turns[i].text, DEFAULT_QUERY_BYTES));
        }
        if let Some(last) = turns.len().checked_sub(1) {
            if Some(last) != last_user {
                q.push('\n');
                q.push_str(cut(&turns[last].text, DEFAULT_QUERY_BYTES));
            }
        }
        q
    }

    /// The form each turn takes under `policy`, given where clearing starts.
    fn form_of(&self, id: TurnId, policy: &Policy, clear_before: TurnId) -> Form {
        let t = match self.store.get(id) {
            Some(t) if t.tool_output_tokens > 0 => t,
            _ => return Form::Verbatim,
        };
        let max = if id < clear_before {
            match policy.old_tool_output_max_tokens {
                0 => return Form::Cleared,
                old => old,
            }
        } else {
            policy.tool_output_max_tokens
        };
        if max > 0 && t.messages.iter().any(|m| m.tool_call_id.is_some() && self_count_over(m, max)) {
            return Form::Truncated(max);
        }
        let _ = t;
        Form::Verbatim
    }

    /// Turn id before which tool results are cleared (keep the latest `keep` result turns).
    fn clear_boundary(&self, policy: &Policy) -> TurnId {
        let Some(keep) = policy.keep_tool_results else { return 0 };
        let result_turns: Vec<TurnId> = self.store.turns().iter().enumerate().filter(|(_, t)| t.has_results()).map(|(i, _)| i).collect();
        if result_turns.len() <= keep {
            return 0;
        }
        result_turns[result_turns.len() - keep]
    }

    /// Messages and exact tokens of a turn in a form (cached for non-verbatim forms).
    fn form_messages(&mut self, id: TurnId, form: Form) -> (Vec<Message>, usize) {
        let Some(t) = self.store.get(id) else { return (Vec::new(), 0) };
        if form == Form::Verbatim {
            return (t.messages.clone(), t.tokens);
        }
        if let Some(v) = self.form_cache.get(&(id, form)) {
            return v.clone();
        }
        let mut msgs = t.messages.clone();
        for m in msgs.iter_mut().filter(|m| m.tool_call_id.is_some()) {
            let tokens = self.counter.count(&m.content);
            match form {
                Form::Truncated(max) if tokens > max => {
                    m.content = head_tail(&self.counter, &m.content, max);
                }
                Form::Cleared => {
                    let cid = m.tool_call_id.clone().unwrap_or_default();
                    let name = self.call_names.get(&cid).cloned().unwrap_or_else(|| "tool".into());
                    m.content = format!(
                        "[tool output cleared: {name} call {cid}, {tokens} tokens; it is kept as turn {id} and can be recalled with search]"
                    );
                }
                _ => {}
            }
        }
        let total: usize = msgs.iter().map(|m| m.tokens(&mut self.counter)).sum();
        self.form_cache.insert((id, form), (msgs.clone(), total));
        (msgs, total)
    }

    /// Per-unit costs under `policy` with clearing from `clear_before`, cached until the next push
    /// or a change of the forms' parameters.
    fn unit_costs(&mut self, policy: &Policy, clear_before: TurnId) -> Arc<Vec<UnitCost>> {
        let key = (self.store.len(), clear_before, policy.tool_output_max_tokens, policy.old_tool_output_max_tokens);
        if let Some((k, v)) = &self.unit_cost_cache {
            if *k == key {
                return Arc::clone(v);
            }
        }
        let v = Arc::new(self.compute_unit_costs(policy, clear_before));
        self.unit_cost_cache = Some((key, Arc::clone(&v)));
        v
    }

    fn compute_unit_costs(&mut self, policy: &Policy, clear_before: TurnId) -> Vec<UnitCost> {
        let units: Vec<std::ops::Range<TurnId>> = self.store.units().to_vec();
        let mut out = Vec::with_capacity(units.len());
        for r in units {
            let mut cost = 0;
            let mut prev_ts: Option<u32> = None;
            let mut first_header = 0;
            for id in r.clone() {
                let form = self.form_of(id, policy, clear_before);
                let c = if form == Form::Verbatim {
                    self.store.get(id).map_or(0, |t| t.tokens)
                } else {
                    self.form_messages(id, form).1
                };
                cost += c;
                let ts = self.turn_ts.get(id).copied().flatten();
                let extra = self.store.get(id).map_or(0, |t| t.header_extra);
                if id == r.start {
                    first_header = extra;
                } else if ts.is_some() && ts != prev_ts {
                    cost += extra;
                }
                prev_ts = ts;
            }
            if r.end == self.store.len() {
                cost += self.store.pending_results().iter().map(|m| m.tokens(&mut self.counter)).sum::<usize>();
            }
            out.push(UnitCost {
                cost,
                first_header,
                first_ts: self.turn_ts.get(r.start).copied().flatten(),
                last_ts: self.turn_ts.get(r.end.saturating_sub(1)).copied().flatten(),
                turns: r.len(),
            });
        }
        out
    }

    /// Upper bound of a gap marker's tokens in this history. A marker begins the content of the
    /// turn after the gap, and the space joining them merges into the content's first token (the
    /// recount tests check the totals; `assemble`'s fix-up would catch an exception). The one
    /// marker that may stand alone pays its message framing from the selection's reserve.
    fn marker_bound(&mut self) -> usize {
        let widest = self.counter.count(&marker_text(&nines(self.store.len())));
        widest.max(self.counter.count(&marker_text("1")))
    }

    fn plan_recency(&mut self, policy: &Policy, avail: usize) -> Plan {
        let clear_before = self.clear_boundary(policy);
        let costs = self.unit_costs(policy, clear_before);
        let mut sel = Selection::new(&costs, 0);
        selector::take_tail(&mut sel, usize::MAX, avail);
        let items = sel.selected().map(Item::Unit).collect();
        let n = costs.len();
        Plan { items, clear_before, unit_scores: (0..n).map(|u| u as f32).collect() }
    }

    fn plan_scored(
        &mut self,
        policy: &Policy,
        query: &str,
        avail: usize,
        target: usize,
        per_turn: bool,
    ) -> Result<(Plan, Vec<ScoreParts>)> {
        let clear_before = self.clear_boundary(policy);
        let costs = self.unit_costs(policy, clear_before);
        let n_turns = self.store.len();
        let mut terms = self.lexical.analyze(query);
        terms.sort();
        terms.dedup();
        terms.truncate(MAX_QUERY_TERMS);
        let bm25 = self.lexical.scores(&terms)?;
        let qrefs = references(query);
        let sims = self.dense_similarities(query, policy)?;
        let parts = scorer::score(&self.store, n_turns, &Query { bm25: &bm25, dense: sims.as_deref(), refs: &qrefs, sessions: &self.turn_ts }, policy);
        let units = self.store.units().to_vec();
        let unit_scores: Vec<f32> =
            units.iter().map(|r| r.clone().map(|i| parts[i].total).fold(0.0f32, f32::max)).collect();
        let rag = policy.strategy == Strategy::Rag;
        let marker = if rag { 0 } else { self.marker_bound() };
        let mut sel = Selection::new(&costs, marker);
        if !rag {
            // A gap after the last turn shown has no turn to ride on: its marker is a message.
            sel.reserve(MESSAGE_OVERHEAD);
            let (tail_turns, tail_share) =
                if per_turn { (policy.tail_turns, policy.tail_share) } else { (policy.query_tail_turns, policy.query_tail_share) };
            let tail_limit = ((avail as f32) * tail_share) as usize;
            selector::take_tail(&mut sel, tail_turns, tail_limit.min(target));
            // The latest unit always goes in when it fits the whole budget.
            if tail_turns > 0 && !costs.is_empty() {
                sel.try_add(costs.len() - 1, target.min(avail));
            }
        }
        let share = if per_turn { policy.summary_share } else { policy.query_summary_share };
        let reserve = if rag { 0 } else { ((avail as f32) * share) as usize };
        let limit = target.min(avail).saturating_sub(reserve);
        let scores_for_fill: Vec<f32> = if rag {
            units.iter().map(|r| r.clone().map(|i| parts[i].bm25).fold(0.0f32, f32::max)).collect()
        } else {
            unit_scores.clone()
        };
        let fill_limit = limit.max(sel.used());
        let eff = selector::fill_by_score(
            &mut sel,
            &scores_for_fill,
            if rag { 0 } else { policy.neighbours },
            policy.neighbour_decay,
            fill_limit,
            policy.rag_top_k,
        );
        let mut items: Vec<Item> = Vec::new();
        if rag {
            items.extend(sel.selected().map(Item::Unit));
        } else {
            // Gaps: summaries for the largest, markers for the rest, within what is left of `avail`.
            let gaps = selector::gaps(&sel, costs.len());
            let mut left = avail.saturating_sub(sel.used());
            let mut gap_items: FxHashMap<usize, Item> = FxHashMap::default();
            let mut by_size: Vec<(usize, usize, usize)> = gaps
                .iter()
                .map(|&(a, b)| (a, b, units[a].start..units[b].end))
                .map(|(a, b, r)| (a, b, r.map(|i| self.store.get(i).map_or(0, |t| t.tokens)).sum()))
                .collect();
            by_size.sort_by(|x, y| y.2.cmp(&x.2).then(x.0.cmp(&y.0)));
            for (a, b, _) in by_size {
                let allowance = policy.summary_max_tokens.min((left + marker).saturating_sub(MESSAGE_OVERHEAD));
                let mut item = Item::Marker { first_unit: a, last_unit: b };
                if allowance >= policy.summary_min_tokens {
                    let text = self.summary(units[a].start, units[b].end - 1, allowance);
                    if !text.is_empty() {
                        let tokens = MESSAGE_OVERHEAD + self.counter.count(&text);
                        if tokens <= left + marker {
                            left = (left + marker) - tokens;
                            item = Item::Summary { first_unit: a, last_unit: b, text, tokens };
                        }
                    }
                }
                gap_items.insert(a, item);
            }
            let mut next_gap = gaps.iter().peekable();
            for u in 0..costs.len() {
                if sel.contains(u) {
                    items.push(Item::Unit(u));
                } else if next_gap.peek().is_some_and(|g| g.0 == u) {
                    if let Some(it) = gap_items.remove(&u) {
                        items.push(it);
                    }
                    next_gap.next();
                }
            }
        }
        let mut parts = parts;
        for (u, r) in units.iter().enumerate() {
            for i in r.clone() {
                if let (Some(p), Some(&e)) = (parts.get_mut(i), eff.get(u)) {
                    p.total = p.total.max(e.min(unit_scores.get(u).copied().unwrap_or(0.0).max(e)));
                }
            }
        }
        Ok((Plan { items, clear_before, unit_scores: eff }, parts))
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
        Ok(Some(turn_similarities(&d.index.cosine_all(&qv)?)))
    }

    fn plan_compaction(&mut self, a: &mut Assembler, policy: &Policy, avail: usize, per_turn: bool) -> Plan {
        let costs = self.unit_costs(policy, 0);
        let n = costs.len();
        let units = self.store.units().to_vec();
        let threshold = ((avail as f32) * policy.compaction_threshold) as usize;
        let state = if per_turn { a.compacted.clone() } else { None };
        let live_from = state.as_ref().map_or(0, |c| c.boundary);
        let head_cost = state.as_ref().map_or(0, |c| c.summary_tokens + c.kept_users.iter().map(|&u| costs[u].cost + costs[u].first_header).sum::<usize>());
        let live_cost: usize = (live_from..n).map(|u| costs[u].cost + costs[u].first_header).sum();
        let state = if head_cost + live_cost <= threshold {
            state
        } else {
            // Compact now: latest user messages up to the user share, everything else one summary.
            let user_limit = ((avail as f32) * policy.compaction_user_share) as usize;
            let mut kept = Vec::new();
            let mut used = 0;
            for u in (0..n).rev() {
                let r = &units[u];
                let is_user = r.len() == 1 && self.store.get(r.start).is_some_and(|t| t.turn.role() == Role::User && !t.has_results());
                if !is_user {
                    continue;
                }
                let c = costs[u].cost + costs[u].first_header;
                if used + c > user_limit {
                    break;
                }
                used += c;
                kept.push(u);
            }
            kept.reverse();
            let allowance = (((avail as f32) * policy.compaction_summary_share) as usize).saturating_sub(MESSAGE_OVERHEAD);
            let last_turn = self.store.len().saturating_sub(1);
            let summary = if n > 0 { self.summary(0, last_turn, allowance) } else { String::new() };
            let summary_tokens = if summary.is_empty() { 0 } else { MESSAGE_OVERHEAD + self.counter.count(&summary) };
            Some(Compacted { boundary: n, kept_users: kept, summary, summary_tokens })
        };
        let mut items = Vec::new();
        let live_from = state.as_ref().map_or(0, |c| c.boundary);
        if let Some(c) = &state {
            items.extend(c.kept_users.iter().map(|&u| Item::Unit(u)));
            if !c.summary.is_empty() {
                items.push(Item::Summary { first_unit: 0, last_unit: c.boundary.saturating_sub(1), text: c.summary.clone(), tokens: c.summary_tokens });
            }
        }
        // Live units; if even they do not fit, keep the latest that do (recency within live).
        let fixed: usize = items
            .iter()
            .map(|i| match i {
                Item::Unit(u) => costs[*u].cost + costs[*u].first_header,
                Item::Summary { tokens, .. } => *tokens,
                Item::Marker { .. } => 0,
            })
            .sum();
        let mut live: Vec<usize> = Vec::new();
        let mut used = fixed;
        for u in (live_from..n).rev() {
            let c = costs[u].cost + costs[u].first_header;
            if used + c > avail {
                break;
            }
            used += c;
            live.push(u);
        }
        live.reverse();
        items.extend(live.into_iter().map(Item::Unit));
        if per_turn {
            a.compacted = state;
        }
        Plan { items, clear_before: 0, unit_scores: (0..n).map(|u| u as f32).collect() }
    }

    /// A cached summary of turns `first..=last` in at most `allowance` tokens.
    fn summary(&mut self, first: TurnId, last: TurnId, allowance: usize) -> String {
        let key = (first, last, allowance);
        if let Some(s) = self.summary_cache.get(&key) {
            return s.clone();
        }
        let turns = &self.store.turns()[first..=last.min(self.store.len().saturating_sub(1))];
        let source_tokens = turns.iter().map(|t| t.tokens).sum();
        let run = Run { first, turns, source_tokens };
        let s = self.summarizer.summarize(&run, allowance, &mut self.counter);
        self.summary_cache.put(key, s.clone());
        s
    }

    /// A marker of its own for turns `first..=last` (when no turn follows to carry it), and its tokens.
    fn marker_message(&mut self, first: TurnId, last: TurnId) -> (Message, usize) {
        let text = marker_text(&(last - first + 1).to_string());
        let tokens = MESSAGE_OVERHEAD + self.counter.count(&text);
        (Message::text(Role::User, text, Origin::Marker { first, last }), tokens)
    }

    /// Renders a plan into a window with exact counts and a report line per turn.
    fn build(&mut self, plan: &Plan, policy: &Policy, pins: Option<&str>, budget: usize, scores: Option<&[ScoreParts]>) -> Result<Window> {
        let units = self.store.units().to_vec();
        let n_turns = self.store.len();
        let mut messages: Vec<Message> = Vec::new();
        let mut total = REPLY_PRIMING;
        if let Some(p) = pins {
            total += MESSAGE_OVERHEAD + self.counter.count(p);
            messages.push(Message::text(Role::System, p.to_string(), Origin::Pins));
        }
        let mut fates: Vec<(Fate, usize)> = vec![(Fate::Dropped, 0); n_turns];
        let mut summaries = Vec::new();
        let mut last_ts: Option<u32> = None;
        // A gap's marker, waiting for the next turn to begin with it.
        let mut pending_marker: Option<(TurnId, TurnId)> = None;
        for item in &plan.items {
            match item {
                Item::Unit(u) => {
                    let Some(r) = units.get(*u).cloned() else { continue };
                    for id in r.clone() {
                        let form = self.form_of(id, policy, plan.clear_before);
                        let (mut msgs, mut cost) = self.form_messages(id, form);
                        // The first turn of a date carries its header; the turn after a gap, the
                        // gap's marker before that. Both go on its first message that is not a
                        // tool result, counted once.
                        let mut date_header = None;
                        if let (Some(t), Some(tsid)) = (self.store.get(id).and_then(|t| t.turn.timestamp()), self.turn_ts.get(id).copied().flatten()) {
                            if Some(tsid) != last_ts {
                                date_header = Some(header(t));
                            }
                            last_ts = Some(tsid);
                        }
                        let marker = pending_marker.take();
                        if date_header.is_some() || marker.is_some() {
                            match msgs.iter_mut().find(|m| m.tool_call_id.is_none()) {
                                Some(m) => {
                                    let before = self.counter.count(&m.content);
                                    let mut content = date_header.unwrap_or_default() + &m.content;
                                    if let Some((first, last)) = marker {
                                        let text = marker_text(&(last - first + 1).to_string());
                                        content = if content.is_empty() { text } else { format!("{text} {content}") };
                                        m.omitted = Some((first, last));
                                    }
                                    m.content = content;
                                    cost = (cost + self.counter.count(&m.content)).saturating_sub(before);
                                }
                                None => {
                                    if let Some((first, last)) = marker {
                                        let (m, n) = self.marker_message(first, last);
                                        total += n;
                                        messages.push(m);
                                    }
                                }
                            }
                        }
                        total += cost;
                        let fate = match form {
                            Form::Verbatim => Fate::Kept,
                            Form::Truncated(_) => Fate::Truncated,
                            Form::Cleared => Fate::Cleared,
                        };
                        fates[id] = (fate, cost);
                        messages.extend(msgs);
                    }
                    if r.end == n_turns {
                        for m in self.store.pending_results() {
                            total += m.tokens(&mut self.counter);
                            messages.push(m);
                        }
                    }
                }
                Item::Summary { first_unit, last_unit, text, tokens } => {
                    if let Some((first, last)) = pending_marker.take() {
                        let (m, n) = self.marker_message(first, last);
                        total += n;
                        messages.push(m);
                    }
                    let (Some(a), Some(b)) = (units.get(*first_unit), units.get(*last_unit)) else { continue };
                    let (first, last) = (a.start, b.end - 1);
                    let k = summaries.len();
                    let source_tokens: usize = (first..=last).map(|i| self.store.get(i).map_or(0, |t| t.tokens)).sum();
                    for id in first..=last {
                        if fates[id].0 == Fate::Dropped {
                            fates[id] = (Fate::Summarized { summary: k }, 0);
                        }
                    }
                    summaries.push(SummaryInfo { first, last, tokens: *tokens, source_tokens });
                    total += *tokens;
                    messages.push(Message::text(Role::User, text.clone(), Origin::Summary { first, last }));
                }
                Item::Marker { first_unit, last_unit } => {
                    let (Some(a), Some(b)) = (units.get(*first_unit), units.get(*last_unit)) else { continue };
                    pending_marker = Some((a.start, b.end - 1));
                }
            }
        }
        if let Some((first, last)) = pending_marker {
            let (m, n) = self.marker_message(first, last);
            total += n;
            messages.push(m);
        }
        let report = fates
            .into_iter()
            .enumerate()
            .map(|(id, (fate, shown))| ReportLine {
                turn: id,
                fate,
                tokens: self.store.get(id).map_or(0, |t| t.tokens),
                shown_tokens: shown,
                score: scores.and_then(|s| s.get(id)).copied().unwrap_or_default(),
            })
            .collect();
        Ok(Window { messages, total_tokens: total, budget, encoding: self.counter.encoding(), report, summaries, query_embed_us: None })
    }
}

fn self_count_over(m: &Message, max: usize) -> bool {
    // Cheap pre-check by bytes (a token is at least one byte), exact check done when truncating.
    m.content.len() > max
}

/// The marker that stands in for a left-out run without a summary.
/// (How many tokens were left out is in the window's report; the model needs only the count.)
fn marker_text(turns: &str) -> String {
    if turns == "1" { "[1 turn omitted]".to_string() } else { format!("[{turns} turns omitted]") }
}

/// Turns before a turn that are embedded with it.
pub(crate) const EXCHANGE_CONTEXT_TURNS: usize = 2;
/// At most this many characters of them (their end, nearest the turn). The model reads 256 word
/// pieces; this leaves at least 100 to the turn itself.
pub(crate) const EXCHANGE_CONTEXT_CHARS: usize = 600;

/// What is embedded for a turn: the end of the turns before it, then the turn, one per line, as the
/// model would read them. A turn's vector is the exchange that ends with it, so a short answer
/// ("Yes, last Sunday!") carries the question it answers.
pub(crate) fn exchange_text(context: &[&str], text: &str) -> String {
    let before = context.iter().filter(|c| !c.is_empty()).copied().collect::<Vec<_>>().join("\n");
    if before.is_empty() {
        return text.to_string();
    }
    let mut start = before.len().saturating_sub(EXCHANGE_CONTEXT_CHARS);
    while !before.is_char_boundary(start) {
        start += 1;
    }
    format!("{}\n{text}", &before[start..])
}

/// A turn's dense similarity from the exchanges' (row `i` is the exchange ending with turn `i`):
/// the mean over the exchanges that contain it (the one ending with it and the next
/// [`EXCHANGE_CONTEXT_TURNS`]), so its question and its answer both count. The latest turns are in
/// fewer exchanges so far; the ones they are not in yet count as the average exchange, so a turn
/// is not credited with the context it was embedded after.
pub(crate) fn turn_similarities(exchanges: &[f32]) -> Vec<f32> {
    let n = exchanges.len();
    let prior = exchanges.iter().sum::<f32>() / n.max(1) as f32;
    let span = EXCHANGE_CONTEXT_TURNS + 1;
    (0..n)
        .map(|i| {
            let within = &exchanges[i..n.min(i + span)];
            (within.iter().sum::<f32>() + (span - within.len()) as f32 * prior) / span as f32
        })
        .collect()
}

/// Head and tail of `text` within about `max` tokens, with a visible "… N tokens omitted …" line.
pub(crate) fn head_tail(counter: &TokenCounter, text: &str, max: usize) -> String {
    let toks = counter.encode(text);
    if toks.len() <= max {
        return text.to_string();
    }
    let budget = max.saturating_sub(16);
    let head_n = budget * 3 / 5;
    let tail_n = budget - head_n;
    let omitted = toks.len() - head_n - tail_n;
    let decode = |mut s: usize, mut e: usize| -> String {
        // Token boundaries can split a UTF-8 character: widen until it decodes.
        for _ in 0..4 {
            if let Some(t) = counter.decode(&toks[s..e]) {
                return t;
            }
            if e < toks.len() {
                e += 1;
            } else if s > 0 {
                s -= 1;
            }
        }
        String::from_utf8_lossy(text.as_bytes()).chars().take(0).collect()
    };
    let head = decode(0, head_n);
    let tail = decode(toks.len() - tail_n, toks.len());
    format!("{head}\n… {omitted} tokens omitted …\n{tail}")
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
}
