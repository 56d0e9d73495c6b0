//! Probes: replaying a transcript through the engine and measuring each window.
//!
//! - **QA probes** (transcripts with questions: LoCoMo, LongMemEval): the whole conversation is
//!   pushed, then for each question `assemble(query = question, budget)`. *Evidence recall* is the
//!   share of the question's evidence groups present verbatim; *answer presence* whether the
//!   normalized gold answer occurs in the window text (summaries included).
//! - **Hindsight probes** (transcripts without labels: agent sessions, chats): at every assistant
//!   turn t the window is built from the turns before t. The salient terms of turn t that occur
//!   earlier in the session (pins included) are what the model actually used; *reference recall* is
//!   the share of them present in the window, *long-range recall* the same for terms whose earlier
//!   occurrences all lie outside the last 4 turns. With gold tool calls (tau-bench), *gold-args
//!   recall* is the share of a gold call's argument values present in the window at the turn where
//!   the agent makes that call. Consecutive windows also give *prefix reuse* and cache-priced cost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use crate::TurnId;
use crate::dense::EmbeddingService;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::plan::{PlanState, Request};
use crate::policy::Policy;
use crate::refs::salient_terms;
use crate::replay::engine_for;
use crate::replay::metrics::{answer_present, common_prefix_tokens, cost_units, normalize_answer, pair_violations};
use crate::replay::occurrences::Occurrences;
use crate::replay::summaries::{GeneratedReplay, SummaryAcc};
use crate::replay::transcript::Transcript;
use crate::tokens::{Encoding, MESSAGE_OVERHEAD, REPLY_PRIMING};
use crate::turn::{Block, Role};
use crate::window::{Fate, SummarySource, Window};

/// A budget: absolute tokens, or a share of the transcript's tokens on top of its pins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BudgetSpec {
    /// This many tokens.
    Tokens(usize),
    /// Pins + framing + this share (0–1) of the transcript's other tokens.
    Share(f32),
}

impl BudgetSpec {
    /// Parses `2000` or `10%`.
    pub fn parse(s: &str) -> Option<BudgetSpec> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let v: f32 = p.trim().parse().ok()?;
            return (v > 0.0 && v <= 1000.0).then_some(BudgetSpec::Share(v / 100.0));
        }
        s.replace('_', "").parse().ok().filter(|&n: &usize| n > 0).map(BudgetSpec::Tokens)
    }

    /// As shown in reports: a number, or `"10%"`.
    pub fn label(&self) -> Value {
        match self {
            BudgetSpec::Tokens(n) => Value::from(*n),
            BudgetSpec::Share(f) => Value::from(format!("{}%", (f * 100.0 * 1000.0).round() / 1000.0)),
        }
    }

    pub(crate) fn resolve(&self, pin_tokens: usize, history_tokens: usize) -> usize {
        match self {
            BudgetSpec::Tokens(n) => *n,
            BudgetSpec::Share(f) => pin_tokens + REPLY_PRIMING + (history_tokens as f64 * f64::from(*f)).round() as usize,
        }
    }
}

/// Sums for one category of QA probes.
#[derive(Debug, Clone, Default)]
pub(crate) struct CatAcc {
    pub(crate) probes: usize,
    pub(crate) recall_sum: f64,
    pub(crate) answer_sum: f64,
    pub(crate) answer_n: usize,
}

/// What one transcript contributes to one (policy, budget) run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Partial {
    pub(crate) probes: usize,
    pub(crate) recall_sum: f64,
    pub(crate) recall_n: usize,
    pub(crate) answer_sum: f64,
    pub(crate) answer_n: usize,
    pub(crate) by_category: BTreeMap<String, CatAcc>,
    pub(crate) windows: usize,
    pub(crate) budget_violations: usize,
    pub(crate) pair_violations: usize,
    pub(crate) silent_drops: usize,
    pub(crate) budget_errors: usize,
    pub(crate) tokens_sum: f64,
    pub(crate) assemble_us: Vec<f64>,
    /// Push latencies of turns up to [`LONG_TURN_TOKENS`] (issue 9's push target is theirs).
    pub(crate) push_us: Vec<f64>,
    /// Push latencies of longer turns, reported apart.
    pub(crate) push_long_us: Vec<f64>,
    pub(crate) time_s: f64,
    pub(crate) ref_sum: f64,
    pub(crate) ref_n: usize,
    pub(crate) long_sum: f64,
    pub(crate) long_n: usize,
    pub(crate) gold_sum: f64,
    pub(crate) gold_n: usize,
    pub(crate) reuse_sum: f64,
    pub(crate) reuse_n: usize,
    pub(crate) cost_sum: f64,
    pub(crate) cost_n: usize,
    pub(crate) query_embed_us: Vec<f64>,
    pub(crate) embed_s: f64,
    pub(crate) embedded_turns: usize,
    pub(crate) summaries: SummaryAcc,
}

/// Turns longer than this many tokens have their push latency reported apart (issue 9: "push p99
/// ≤ 1 ms, turns over 2,000 tokens excepted and reported apart").
pub(crate) const LONG_TURN_TOKENS: usize = 2_000;

/// Push latencies of one replay, split by the pushed turn's length.
#[derive(Default)]
struct PushTimes {
    short: Vec<f64>,
    long: Vec<f64>,
}

impl PushTimes {
    /// Records the push of turn `id` of `e`, started at `t0`.
    fn record(&mut self, e: &Engine, id: TurnId, t0: Instant) {
        let us = t0.elapsed().as_secs_f64() * 1e6;
        match e.turn_tokens(id) {
            Some(n) if n > LONG_TURN_TOKENS => self.long.push(us),
            _ => self.short.push(us),
        }
    }

    fn copy_to(&self, p: &mut Partial) {
        p.push_us.clone_from(&self.short);
        p.push_long_us.clone_from(&self.long);
    }
}

impl Partial {
    pub(crate) fn merge(&mut self, o: Partial) {
        self.probes += o.probes;
        self.recall_sum += o.recall_sum;
        self.recall_n += o.recall_n;
        self.answer_sum += o.answer_sum;
        self.answer_n += o.answer_n;
        for (k, v) in o.by_category {
            let c = self.by_category.entry(k).or_default();
            c.probes += v.probes;
            c.recall_sum += v.recall_sum;
            c.answer_sum += v.answer_sum;
            c.answer_n += v.answer_n;
        }
        self.windows += o.windows;
        self.budget_violations += o.budget_violations;
        self.pair_violations += o.pair_violations;
        self.silent_drops += o.silent_drops;
        self.budget_errors += o.budget_errors;
        self.tokens_sum += o.tokens_sum;
        self.assemble_us.extend(o.assemble_us);
        self.push_us.extend(o.push_us);
        self.push_long_us.extend(o.push_long_us);
        self.time_s += o.time_s;
        self.ref_sum += o.ref_sum;
        self.ref_n += o.ref_n;
        self.long_sum += o.long_sum;
        self.long_n += o.long_n;
        self.gold_sum += o.gold_sum;
        self.gold_n += o.gold_n;
        self.reuse_sum += o.reuse_sum;
        self.reuse_n += o.reuse_n;
        self.cost_sum += o.cost_sum;
        self.cost_n += o.cost_n;
        self.query_embed_us.extend(o.query_embed_us);
        self.embed_s += o.embed_s;
        self.embedded_turns += o.embedded_turns;
        self.summaries.merge(o.summaries);
    }

    fn record_window(&mut self, w: &Window, budget: usize, us: f64) {
        // The query's embedding is reported apart from the assemble time.
        let q = w.query_embed_us().unwrap_or(0.0);
        if w.query_embed_us().is_some() {
            self.query_embed_us.push(q);
        }
        let us = (us - q).max(0.0);
        self.windows += 1;
        self.assemble_us.push(us);
        self.time_s += us / 1e6;
        self.tokens_sum += w.total_tokens() as f64;
        if w.total_tokens() > budget {
            self.budget_violations += 1;
        }
        self.pair_violations += pair_violations(w.messages());
        self.silent_drops += w.silent_drops().len();
    }
}

impl Partial {
    /// Reference and long-range recall of one window's `text` for the terms its turn `needed`
    /// (each with whether it is a long-range one).
    fn record_references(&mut self, text: &str, needed: &[(&str, bool)]) {
        if needed.is_empty() {
            return;
        }
        let present = needed.iter().filter(|(s, _)| text.contains(*s)).count();
        self.ref_sum += present as f64 / needed.len() as f64;
        self.ref_n += 1;
        let long: Vec<&str> = needed.iter().filter(|(_, l)| *l).map(|(s, _)| *s).collect();
        if !long.is_empty() {
            let lp = long.iter().filter(|s| text.contains(**s)).count();
            self.long_sum += lp as f64 / long.len() as f64;
            self.long_n += 1;
        }
    }
}

/// Most untimed windows [`settle`] builds for one probe.
const SETTLE_ROUNDS: usize = 16;

/// With generated summaries, builds the window untimed on a copy of the plan state (which queues
/// the runs it leaves out) and waits for the service, so the measured window shows the generated
/// summaries that are ready by then. A generated summary is usually shorter than the extractive one
/// it replaces, so the next window has room to summarize runs the first one did not ask for: this
/// repeats until a window has no summary still pending, at most [`SETTLE_ROUNDS`] windows and
/// `g.wait` in all for the probe. Without generated summaries, does nothing.
fn settle(e: &mut Engine, a: &PlanState, budget: usize, query: Option<&str>, g: Option<&GeneratedReplay>) {
    let Some(g) = g.filter(|g| !g.wait.is_zero()) else { return };
    let deadline = Instant::now() + g.wait;
    for _ in 0..SETTLE_ROUNDS {
        let mut warm = a.clone();
        let pending = e
            .assemble_with(&mut warm, budget, query.map_or(Request::NextCall, Request::Query))
            .is_ok_and(|w| w.summaries().iter().any(|s| s.source == SummarySource::FallbackPending));
        let left = deadline.saturating_duration_since(Instant::now());
        if !pending || left.is_zero() || !g.service.wait_idle(left) {
            return;
        }
    }
}

/// Assembles one probe's window, timing it and recording its validity in `p`; `None` when the
/// budget is below the pins (a typed error, counted, never an over-budget window).
fn probe_window(e: &mut Engine, a: &mut PlanState, budget: usize, query: Option<&str>, p: &mut Partial) -> Result<Option<Window>> {
    let t0 = Instant::now();
    let request = query.map_or(Request::NextCall, Request::Query);
    let w = match e.assemble_with(a, budget, request) {
        Ok(w) => w,
        Err(Error::BudgetBelowPins { .. }) => {
            p.budget_errors += 1;
            return Ok(None);
        }
        Err(other) => return Err(other),
    };
    p.record_window(&w, budget, t0.elapsed().as_secs_f64() * 1e6);
    p.probes += 1;
    Ok(Some(w))
}

/// Whether a window holds a turn verbatim.
fn kept(w: &Window, id: usize) -> bool {
    w.report().get(id).is_some_and(|l| l.fate == Fate::Kept)
}

/// What share budgets are shares of: the pins' tokens and the history's tokens (verbatim, framing
/// included) of the whole transcript, counted by `e` (which holds the transcript's pins).
pub(crate) fn budget_basis(t: &Transcript, e: &mut Engine) -> (usize, usize) {
    let pins: Vec<&str> = t.pins().iter().map(|(_, s)| s.as_str()).collect();
    let pin_tokens = if pins.is_empty() { 0 } else { MESSAGE_OVERHEAD + e.count_tokens(&pins.join("\n\n")) };
    let history = t.turns().iter().map(|x| e.count_turn(x)).sum();
    (pin_tokens, history)
}

/// QA probes over one transcript for every (policy, budget); results in `policies × budgets` order.
pub(crate) fn run_qa(
    t: &Transcript,
    policies: &[(String, Policy)],
    budgets: &[BudgetSpec],
    encoding: Encoding,
    dense: Option<&Arc<EmbeddingService>>,
    generated: Option<&GeneratedReplay>,
) -> Result<Vec<Partial>> {
    let mut e = engine_for(t, encoding, dense, generated)?;
    let mut pushes = PushTimes::default();
    for turn in t.turns() {
        let t0 = Instant::now();
        let id = e.push(turn.clone())?;
        pushes.record(&e, id, t0);
    }
    // Embedding runs in the background; wait for it so results do not depend on timing.
    let t0 = Instant::now();
    e.wait_for_embeddings()?;
    let embed_s = if dense.is_some() { t0.elapsed().as_secs_f64() } else { 0.0 };
    let (pins, history) = budget_basis(t, &mut e);
    let mut out = Vec::with_capacity(policies.len() * budgets.len());
    for (_, policy) in policies {
        for b in budgets {
            let budget = b.resolve(pins, history);
            let mut p = Partial { embed_s, embedded_turns: if dense.is_some() { t.turns().len() } else { 0 }, ..Partial::default() };
            pushes.copy_to(&mut p);
            for q in t.qa() {
                let mut a = PlanState::new(policy.clone());
                settle(&mut e, &a, budget, Some(q.question()), generated);
                let Some(w) = probe_window(&mut e, &mut a, budget, Some(q.question()), &mut p)? else { continue };
                p.summaries.window(&w);
                let groups = q.evidence();
                let hit = groups.iter().filter(|g| g.iter().any(|&id| kept(&w, id))).count();
                let recall = if groups.is_empty() { 0.0 } else { hit as f64 / groups.len() as f64 };
                let answer = q.answer().map(|a| answer_present(&normalize_answer(&w.text()), a));
                let cat = p.by_category.entry(q.category().to_string()).or_default();
                cat.probes += 1;
                cat.recall_sum += recall;
                if let Some(a) = answer {
                    cat.answer_sum += f64::from(u8::from(a));
                    cat.answer_n += 1;
                }
                if q.headline() {
                    p.recall_sum += recall;
                    p.recall_n += 1;
                    if let Some(a) = answer {
                        p.answer_sum += f64::from(u8::from(a));
                        p.answer_n += 1;
                    }
                    if let Some(gold) = q.answer() {
                        p.summaries.answer(&w, gold);
                    }
                }
            }
            out.push(p);
        }
    }
    Ok(out)
}

/// Values of a gold call's arguments, as strings to look for (nested arrays/objects flattened).
fn arg_values(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if !s.trim().is_empty() => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(a) => a.iter().for_each(|x| arg_values(x, out)),
        Value::Object(o) => o.values().for_each(|x| arg_values(x, out)),
        _ => {}
    }
}

/// Gold calls matched to the turn where the agent makes them (first unused call of that name),
/// with their argument values.
fn gold_calls(t: &Transcript) -> Vec<(usize, Vec<String>)> {
    let turns = t.turns();
    let mut gold_at: Vec<(usize, Vec<String>)> = Vec::new();
    let mut used_turns = std::collections::HashSet::new();
    for g in t.gold_actions() {
        let at = turns
            .iter()
            .enumerate()
            .position(|(i, turn)| !used_turns.contains(&i) && turn.blocks().iter().any(|b| matches!(b, Block::ToolCall { name, .. } if name == g.name())));
        if let Some(i) = at {
            used_turns.insert(i);
            let mut vals = Vec::new();
            arg_values(g.arguments(), &mut vals);
            if !vals.is_empty() {
                gold_at.push((i, vals));
            }
        }
    }
    gold_at
}

/// Hindsight probes over one agent/chat transcript for every (policy, budget).
pub(crate) fn run_hindsight(
    t: &Transcript,
    policies: &[(String, Policy)],
    budgets: &[BudgetSpec],
    encoding: Encoding,
    dense: Option<&Arc<EmbeddingService>>,
    generated: Option<&GeneratedReplay>,
) -> Result<Vec<Partial>> {
    let mut e = engine_for(t, encoding, dense, generated)?;
    let turns = t.turns();
    // Budgets resolve against the whole session's tokens, known to the replay.
    let (pins, history) = budget_basis(t, &mut e);
    let mut scratch = crate::tokens::TokenCounter::new(encoding, 1 << 14);
    let pin_text: String = t.pins().iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>().join("\n");
    let texts: Vec<String> = turns.iter().map(|x| x.plain_text()).collect();
    // What each probed turn used: its salient terms that occur earlier (see `Occurrences`).
    let probed = |i: usize| i > 0 && turns[i].role() == Role::Assistant;
    let terms_at: Vec<Vec<String>> = (0..turns.len()).map(|i| if probed(i) { salient_terms(&texts[i]) } else { Vec::new() }).collect();
    let occurrences = Occurrences::new(terms_at.iter().flatten().map(String::as_str), &texts, &pin_text)?;

    let gold_at = gold_calls(t);

    let combos: Vec<(usize, usize)> = (0..policies.len()).flat_map(|p| (0..budgets.len()).map(move |b| (p, b))).collect();
    let mut assemblers: Vec<PlanState> = combos.iter().map(|&(p, _)| PlanState::new(policies[p].1.clone())).collect();
    let mut prev: Vec<Option<Window>> = vec![None; combos.len()];
    let mut parts: Vec<Partial> = vec![Partial::default(); combos.len()];
    let mut pushes = PushTimes::default();
    let mut embed_s = 0.0;

    for (i, turn) in turns.iter().enumerate() {
        if probed(i) {
            let needed = occurrences.needed(&terms_at[i], i);
            let golds: Vec<&Vec<String>> = gold_at.iter().filter(|(at, _)| *at == i).map(|(_, v)| v).collect();
            for (k, &(_, b)) in combos.iter().enumerate() {
                let budget = budgets[b].resolve(pins, history);
                let p = &mut parts[k];
                settle(&mut e, &assemblers[k], budget, None, generated);
                let Some(w) = probe_window(&mut e, &mut assemblers[k], budget, None, p)? else { continue };
                p.summaries.window(&w);
                let terms: Vec<&str> = needed.iter().map(|(s, _)| *s).collect();
                p.summaries.references(&w, &terms);
                let text = w.text();
                p.record_references(&text, &needed);
                for vals in &golds {
                    let present = vals.iter().filter(|v| text.contains(v.as_str())).count();
                    p.gold_sum += present as f64 / vals.len() as f64;
                    p.gold_n += 1;
                }
                let prefix = prev[k].as_ref().map_or(0, |pw| common_prefix_tokens(pw, &w, &mut scratch));
                if prev[k].is_some() && w.total_tokens() > 0 {
                    p.reuse_sum += prefix as f64 / w.total_tokens() as f64;
                    p.reuse_n += 1;
                }
                p.cost_sum += cost_units(prefix, w.total_tokens());
                p.cost_n += 1;
                prev[k] = Some(w);
            }
        }
        let t0 = Instant::now();
        let id = e.push(turn.clone())?;
        pushes.record(&e, id, t0);
        let t0 = Instant::now();
        e.wait_for_embeddings()?;
        embed_s += t0.elapsed().as_secs_f64();
    }
    for p in &mut parts {
        pushes.copy_to(p);
        if dense.is_some() {
            p.embed_s = embed_s;
            p.embedded_turns = turns.len();
        }
    }
    Ok(parts)
}
