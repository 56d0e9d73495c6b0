//! Planning: which units of the history a window shows, in which form, and what stands in for the
//! rest. The policy is the recipe; a [`PlanContext`] binds it to this history (unit costs, scores,
//! marker bound, clear boundary); each strategy (one file each) produces a [`Plan`]; the window
//! renders the plan (`crate::window::build`).
//!
//! A new strategy is a new file here and one line in [`assemble`]'s dispatch.
//!
//! The tool-call unit is an invariant of the store: a call and its results are one unit, and plans
//! are made of whole units, so no strategy can split a pair.

mod compaction;
pub(crate) mod costs;
pub(crate) mod gaps;
pub(crate) mod lines;
mod rag;
mod recency;
mod scored;
pub(crate) mod select;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::costs::Forms;
use crate::plan::gaps::Summaries;
use crate::policy::{Policy, Strategy};
use crate::retrieval::Retrieval;
use crate::scorer::TurnScores;
use crate::store::Store;
use crate::text::take_bytes_at_char_boundary;
use crate::tokens::{MESSAGE_OVERHEAD, REPLY_PRIMING, TokenCounter};
use crate::turn::TurnId;
use crate::window::Window;

/// What a window is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'q> {
    /// The next model call of the session: the query is the latest user turn and the latest turn,
    /// and the plan state carries over between calls (stable prefix, compaction).
    NextCall,
    /// A one-off window relevant to this query; the plan state is neither used nor changed.
    Query(&'q str),
}

/// A piece of a planned window, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Item {
    /// A unit of the history (a turn, or a tool call with its results), in its policy form.
    Unit(usize),
    /// A summary standing in for units `first_unit..=last_unit`.
    Summary { first_unit: usize, last_unit: usize, text: String, tokens: usize },
    /// A marker standing in for units `first_unit..=last_unit`.
    Marker { first_unit: usize, last_unit: usize },
}

impl Item {
    /// The unit this item shows, if it is one.
    pub(crate) fn unit(&self) -> Option<usize> {
        match self {
            Item::Unit(u) => Some(*u),
            Item::Summary { .. } | Item::Marker { .. } => None,
        }
    }
}

/// Unit scores holding `scores` for the units `items` show, in item order, and 0 for every other
/// unit (a unit past the end reads as 0 too).
fn shown_unit_scores(items: &[Item], scores: impl IntoIterator<Item = f32>) -> Vec<f32> {
    let end = items.iter().filter_map(Item::unit).max().map_or(0, |u| u + 1);
    let mut out = vec![0.0; end];
    for (u, score) in items.iter().filter_map(Item::unit).zip(scores) {
        if let Some(slot) = out.get_mut(u) {
            *slot = score;
        }
    }
    out
}

/// A planned window: its items in order, where tool-output clearing starts, and each unit's
/// effective score (what the budget fix-up drops first). Stored (in a durable session's plan
/// state) as [`StoredPlan`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "StoredPlan", try_from = "StoredPlan")]
pub(crate) struct Plan {
    pub(crate) items: Vec<Item>,
    /// Tool results in turns before this id are cleared.
    pub(crate) clear_before: TurnId,
    /// Effective score per unit (for the report and for the fix-up).
    pub(crate) unit_scores: Vec<f32>,
    /// Units shown with their tool outputs cut tighter than the policy's form, as `(unit, max
    /// tokens per tool output)`, in unit order: an agent's latest observation that is larger than
    /// what a re-selection leaves it (`scored::plan`). A plan extended on the next call keeps them,
    /// so the unit renders as it did.
    pub(crate) cuts: Vec<(usize, usize)>,
}

impl Plan {
    /// Keeps the scores of the units the plan shows, the only ones a kept plan is read for (the
    /// budget fix-up picks among shown units), and drops the rest: the plan state then holds, and
    /// stores, what grows with the window, not with the history, and reads back equal.
    fn keep_shown_scores(&mut self) {
        let own: Vec<f32> = self.items.iter().filter_map(Item::unit).map(|u| self.unit_scores.get(u).copied().unwrap_or(0.0)).collect();
        self.unit_scores = shown_unit_scores(&self.items, own);
    }

    /// The tighter cut unit `u` is shown with, if any (see [`Plan::cuts`]).
    pub(crate) fn cut_of(&self, u: usize) -> Option<usize> {
        self.cuts.iter().find(|(c, _)| *c == u).map(|&(_, max)| max)
    }
}

/// How a [`Plan`] is stored: consecutive units as one `[first, last]` run, and the scores of the
/// units the plan shows only (the fix-up reads no other; the rest read as 0), so what a durable
/// session writes after each window grows with the window, not with the history. The dense
/// `unit_scores` and single `Unit` items of earlier versions still read.
#[derive(Serialize, Deserialize)]
struct StoredPlan {
    items: Vec<StoredItem>,
    clear_before: TurnId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    unit_scores: Vec<f32>,
    /// Scores of the units in `items`, in item order.
    #[serde(default)]
    shown_scores: Vec<f32>,
    /// [`Plan::cuts`] (absent in earlier versions: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    cuts: Vec<(usize, usize)>,
}

#[derive(Serialize, Deserialize)]
enum StoredItem {
    Unit(usize),
    Units(usize, usize),
    Summary { first_unit: usize, last_unit: usize, text: String, tokens: usize },
    Marker { first_unit: usize, last_unit: usize },
}

impl From<Plan> for StoredPlan {
    fn from(p: Plan) -> Self {
        let mut items: Vec<StoredItem> = Vec::new();
        let mut shown_scores = Vec::new();
        for it in p.items {
            match it {
                Item::Unit(u) => {
                    shown_scores.push(p.unit_scores.get(u).copied().unwrap_or(0.0));
                    match items.last_mut() {
                        Some(StoredItem::Units(_, last)) if *last + 1 == u => *last = u,
                        _ => items.push(StoredItem::Units(u, u)),
                    }
                }
                Item::Summary { first_unit, last_unit, text, tokens } => items.push(StoredItem::Summary { first_unit, last_unit, text, tokens }),
                Item::Marker { first_unit, last_unit } => items.push(StoredItem::Marker { first_unit, last_unit }),
            }
        }
        StoredPlan { items, clear_before: p.clear_before, unit_scores: Vec::new(), shown_scores, cuts: p.cuts }
    }
}

/// Units a stored plan may show (a damaged state must not allocate at will).
const STORED_PLAN_MAX_UNITS: usize = 1 << 24;

impl TryFrom<StoredPlan> for Plan {
    type Error = String;

    fn try_from(s: StoredPlan) -> std::result::Result<Self, String> {
        let mut items = Vec::new();
        for it in s.items {
            match it {
                StoredItem::Unit(u) => items.push(Item::Unit(u)),
                StoredItem::Units(first, last) if first <= last && last - first < STORED_PLAN_MAX_UNITS.saturating_sub(items.len()) => {
                    items.extend((first..=last).map(Item::Unit));
                }
                StoredItem::Units(first, last) => return Err(format!("unit run {first}..={last} is reversed or too long")),
                StoredItem::Summary { first_unit, last_unit, text, tokens } => items.push(Item::Summary { first_unit, last_unit, text, tokens }),
                StoredItem::Marker { first_unit, last_unit } => items.push(Item::Marker { first_unit, last_unit }),
            }
        }
        if let Some(u) = items.iter().filter_map(Item::unit).find(|&u| u >= STORED_PLAN_MAX_UNITS) {
            return Err(format!("unit {u} is past the {STORED_PLAN_MAX_UNITS} a plan may show"));
        }
        let unit_scores = if s.unit_scores.is_empty() { shown_unit_scores(&items, s.shown_scores) } else { s.unit_scores };
        if s.cuts.len() > items.len() {
            return Err(format!("{} cuts for a plan of {} items", s.cuts.len(), items.len()));
        }
        Ok(Plan { items, clear_before: s.clear_before, unit_scores, cuts: s.cuts })
    }
}

/// The previous per-call plan, kept so the next call can extend it (a stable prompt-cache prefix).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Prefix {
    plan: Plan,
    /// Units in the history when it was made.
    units: usize,
    /// End (exclusive turn id) of the last unit then, to tell whether that unit has grown since.
    last_end: TurnId,
    /// Consecutive calls, up to this one, that ended in a fresh selection (0: it extended the
    /// prefix before it).
    #[serde(default)]
    fresh_streak: u32,
}

/// A compaction already done (the `compaction` strategy, per-call windows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Compacted {
    /// Units before this one are compacted.
    pub(crate) boundary: usize,
    pub(crate) kept_users: Vec<usize>,
    pub(crate) summary: String,
    pub(crate) summary_tokens: usize,
}

/// A session's plan state: the policy and what it remembers between per-call windows (the previous
/// plan for a stable prefix; the last compaction). One per policy and budget being replayed.
/// Serializable, so a durable session continues the same prefix after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanState {
    policy: Policy,
    prev: Option<Prefix>,
    compacted: Option<Compacted>,
}

impl PlanState {
    /// A fresh plan state for `policy`.
    pub fn new(policy: Policy) -> Self {
        PlanState { policy, prev: None, compacted: None }
    }
    /// Its policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

/// A plan's bindings to this history and this call.
pub(crate) struct PlanContext<'a> {
    pub(crate) store: &'a Store,
    pub(crate) counter: &'a mut TokenCounter,
    pub(crate) forms: &'a mut Forms,
    pub(crate) summaries: &'a mut Summaries,
    pub(crate) retrieval: &'a mut Retrieval,
    /// The rendered pins, if any.
    pub(crate) pins: Option<&'a str>,
    pub(crate) budget: usize,
    /// Tokens left for the history once pins and framing are paid.
    pub(crate) avail: usize,
    pub(crate) request: Request<'a>,
}

/// Bytes of the default query taken from the latest turns.
const DEFAULT_QUERY_BYTES: usize = 4000;

impl PlanContext<'_> {
    /// Whether this is a per-call window (the plan state carries over).
    pub(crate) fn next_call(&self) -> bool {
        self.request == Request::NextCall
    }

    /// The query: the one asked for, or for the next call the latest user turn and the latest turn.
    pub(crate) fn query(&self) -> Cow<'_, str> {
        if let Request::Query(q) = self.request {
            return Cow::Borrowed(q);
        }
        let turns = self.store.turns();
        let last_user = self.store.index().requests.last().copied();
        let mut q = String::new();
        if let Some(i) = last_user {
            q.push_str(take_bytes_at_char_boundary(turns[i].text(), DEFAULT_QUERY_BYTES));
        }
        if let Some(last) = turns.len().checked_sub(1).filter(|&l| Some(l) != last_user) {
            q.push('\n');
            q.push_str(take_bytes_at_char_boundary(turns[last].text(), DEFAULT_QUERY_BYTES));
        }
        Cow::Owned(q)
    }

    /// Renders `plan` into a window (exact counts, a report line per turn).
    pub(crate) fn window(&mut self, plan: &Plan, policy: &Policy, scores: Option<&TurnScores>) -> Window {
        crate::window::build::build(self, plan, policy, scores)
    }
}

/// Tokens the pins and the request's framing need on their own (what the history's share of the
/// budget is measured from). A window must also say what it leaves out, so with any history the
/// smallest window is the pins plus one marker standing for every turn: a budget below that is an
/// error saying by how much.
pub(crate) fn fixed_tokens(counter: &mut TokenCounter, pins: Option<&str>, budget: usize, n_turns: usize) -> Result<usize> {
    let pin_tokens = pins.map_or(0, |t| MESSAGE_OVERHEAD + counter.count(t));
    let fixed = pin_tokens + REPLY_PRIMING;
    let needed = fixed + if n_turns > 0 { MESSAGE_OVERHEAD + counter.count(&gaps::marker_text(n_turns)) } else { 0 };
    if needed > budget {
        return Err(Error::BudgetBelowPins { budget, needed, shortfall: needed - budget });
    }
    Ok(fixed)
}

/// Plans and builds a window with `state`'s policy; for the next call, updates `state`.
pub(crate) fn assemble(ctx: &mut PlanContext<'_>, state: &mut PlanState) -> Result<Window> {
    let policy = state.policy.clone();
    let n_units = ctx.store.units().len();
    if let Some(w) = scored::extend_prefix(ctx, state, &policy) {
        return Ok(w);
    }
    // The degrade rule (ARCHITECTURE.md, "Stable prefix"): when the previous call could not extend
    // its prefix either, and the history holds user requests besides the task (a chat, an Aider
    // history), the re-selection leaves room to append instead of filling the budget.
    let streak = if ctx.next_call() { state.prev.as_ref().map_or(0, |p| p.fresh_streak) } else { 0 };
    let conv = policy.strategy == Strategy::Scored && conversational(ctx.store);
    let headroom = streak >= 1 && conv;
    // The kept front (ARCHITECTURE.md, "Stable prefix"): a re-selection keeps the leading items of
    // the previous window, except every other one from the third of a run of re-selections in a
    // row, which selects the whole window afresh so a front that keeps leaving no room is renewed.
    let front_from = state.prev.as_ref().filter(|_| ctx.next_call() && keeps_front(streak));
    let (mut plan, scores) = match policy.strategy {
        Strategy::Scored => scored::plan(ctx, &policy, scored::Reselect { headroom, conversational: conv, prev: front_from })?,
        Strategy::Rag => rag::plan(ctx, &policy)?,
        Strategy::Recency | Strategy::ToolClearing => (recency::plan(ctx, &policy), None),
        Strategy::Compaction => (compaction::plan(ctx, &mut state.compacted, &policy)?, None),
    };
    let w = fit(ctx, &mut plan, &policy, scores.as_ref());
    if ctx.next_call() {
        let last_end = ctx.store.units().last().map_or(0, |u| u.end);
        plan.keep_shown_scores();
        state.prev = Some(Prefix { plan, units: n_units, last_end, fresh_streak: streak.saturating_add(1) });
    }
    Ok(w)
}

/// Whether a re-selection keeps the previous window's front, given how many calls in a row before
/// it ended in a re-selection (`streak`): the 1st and 2nd of a run do, then every other one
/// (streak 2, 4, … select the whole window afresh).
fn keeps_front(streak: u32) -> bool {
    streak < 2 || streak % 2 == 1
}

/// Whether the history is a conversation: at least two user requests (user turns that are not
/// tool results), and one for every [`TURNS_PER_REQUEST`] assistant turns or fewer. New requests
/// keep changing the query and bring turns that are large against a small budget, unlike an agent
/// session following its one pinned task (whose few user messages are format reminders).
/// Counted at push (`store::TurnIndex`), so asking costs nothing on a long history.
fn conversational(store: &Store) -> bool {
    let index = store.index();
    let (requests, assistant) = (index.requests.len(), index.assistant_turns);
    requests >= 2 && requests * TURNS_PER_REQUEST >= assistant
}

/// Assistant turns per user request at most in a conversational history (see [`conversational`]).
const TURNS_PER_REQUEST: usize = 4;

/// Builds the window, every left-out run covered by a summary or a marker. If it is over budget
/// (selection costs are exact or upper bounds, so this should not happen), drops the lowest-scored
/// unit, marking its run, until it fits; with no unit left, one marker stands for everything (the
/// smallest window, which [`fixed_tokens`] made sure fits).
fn fit(ctx: &mut PlanContext<'_>, plan: &mut Plan, policy: &Policy, scores: Option<&TurnScores>) -> Window {
    let n_units = ctx.store.units().len();
    cover(plan, n_units);
    let mut w = ctx.window(plan, policy, scores);
    while w.total_tokens > ctx.budget {
        let victim = plan
            .items
            .iter()
            .enumerate()
            .filter_map(|(i, it)| match it {
                Item::Unit(u) => Some((i, *u)),
                Item::Summary { .. } | Item::Marker { .. } => None,
            })
            .min_by(|a, b| plan.unit_scores.get(a.1).unwrap_or(&0.0).total_cmp(plan.unit_scores.get(b.1).unwrap_or(&0.0)));
        match victim {
            Some((i, _)) => {
                plan.items.remove(i);
            }
            None if plan.items.iter().any(|it| matches!(it, Item::Summary { .. })) || plan.items.len() > 1 => {
                plan.items.clear();
            }
            None => break,
        }
        cover(plan, n_units);
        w = ctx.window(plan, policy, scores);
    }
    w
}

/// Gives every run of units the plan leaves out, that no summary stands for, one marker, placed in
/// order before the next unit shown (existing markers are rebuilt, so adjacent runs merge).
pub(crate) fn cover(plan: &mut Plan, n_units: usize) {
    plan.items.retain(|it| !matches!(it, Item::Marker { .. }));
    // The covered spans in order; the runs between them are the uncovered ones (the work is the
    // plan's items, not the history's units).
    let mut spans: Vec<(usize, usize)> = plan
        .items
        .iter()
        .map(|it| match it {
            Item::Unit(u) => (*u, *u),
            Item::Summary { first_unit, last_unit, .. } | Item::Marker { first_unit, last_unit } => (*first_unit, *last_unit),
        })
        .collect();
    spans.sort_unstable();
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut next = 0;
    for (a, b) in spans {
        if a > next && next < n_units {
            runs.push((next, a.min(n_units) - 1));
        }
        next = next.max(b.saturating_add(1));
    }
    if next < n_units {
        runs.push((next, n_units - 1));
    }
    if runs.is_empty() {
        return;
    }
    // Each run's marker goes before the first item whose first unit comes after the run's start.
    // That position only moves forward as the starts grow (and a marker put in never comes after a
    // later start), so one merge pass places them all.
    let first = |it: &Item| match it {
        Item::Unit(x) => *x,
        Item::Summary { first_unit, .. } | Item::Marker { first_unit, .. } => *first_unit,
    };
    let old = std::mem::take(&mut plan.items);
    let mut items = Vec::with_capacity(old.len() + runs.len());
    let mut runs = runs.into_iter().peekable();
    for it in old {
        while let Some((start, last)) = runs.next_if(|&(start, _)| first(&it) > start) {
            items.push(Item::Marker { first_unit: start, last_unit: last });
        }
        items.push(it);
    }
    items.extend(runs.map(|(start, last)| Item::Marker { first_unit: start, last_unit: last }));
    plan.items = items;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan stores its unit runs and the scores of the units it shows, reads back to the same
    /// items and the same scores for those units (0 for the others), still reads the dense format
    /// of earlier versions, and refuses a damaged run instead of allocating it.
    #[test]
    fn plans_store_runs_and_shown_scores_and_read_earlier_states() {
        let plan = Plan {
            items: vec![
                Item::Unit(0),
                Item::Unit(1),
                Item::Unit(2),
                Item::Summary { first_unit: 3, last_unit: 5, text: "[Summary]".into(), tokens: 3 },
                Item::Unit(6),
                Item::Marker { first_unit: 7, last_unit: 7 },
                Item::Unit(8),
                Item::Unit(9),
            ],
            clear_before: 4,
            unit_scores: (0..12).map(|u| u as f32 / 4.0).collect(),
            cuts: vec![(9, 200)],
        };
        let json = serde_json::to_string(&plan).unwrap();
        assert!(json.contains(r#"{"Units":[0,2]}"#) && json.contains(r#"{"Units":[8,9]}"#), "{json}");
        let back: Plan = serde_json::from_str(&json).unwrap();
        assert_eq!(back.items, plan.items);
        assert_eq!((back.clear_before, back.cuts.clone()), (4, vec![(9, 200)]));
        for u in 0..12 {
            let shown = plan.items.contains(&Item::Unit(u));
            let want = if shown { plan.unit_scores[u] } else { 0.0 };
            assert_eq!(back.unit_scores.get(u).copied().unwrap_or(0.0), want, "unit {u}");
        }
        let earlier = r#"{"items":[{"Unit":0},{"Unit":2}],"clear_before":0,"unit_scores":[0.5,0.25,0.125]}"#;
        let old: Plan = serde_json::from_str(earlier).unwrap();
        assert!(old.cuts.is_empty());
        assert_eq!((old.items, old.unit_scores), (vec![Item::Unit(0), Item::Unit(2)], vec![0.5, 0.25, 0.125]));
        for damaged in [
            r#"{"items":[{"Units":[5,2]}],"clear_before":0}"#,
            r#"{"items":[{"Units":[0,99999999999]}],"clear_before":0}"#,
            r#"{"items":[{"Unit":99999999999}],"clear_before":0}"#,
        ] {
            assert!(serde_json::from_str::<Plan>(damaged).is_err(), "{damaged}");
        }
    }

    fn plan(items: Vec<Item>) -> Plan {
        Plan { items, clear_before: 0, unit_scores: Vec::new(), cuts: Vec::new() }
    }

    /// Issue 15: a fix-up that drops the unit between two gaps must leave one marker for the
    /// merged run, never a marker for only the later gap.
    #[test]
    fn dropping_a_unit_between_two_gaps_merges_their_markers() {
        let mut p = plan(vec![Item::Unit(0), Item::Unit(3), Item::Unit(5)]);
        cover(&mut p, 7);
        assert_eq!(
            p.items,
            [
                Item::Unit(0),
                Item::Marker { first_unit: 1, last_unit: 2 },
                Item::Unit(3),
                Item::Marker { first_unit: 4, last_unit: 4 },
                Item::Unit(5),
                Item::Marker { first_unit: 6, last_unit: 6 }
            ]
        );
        p.items.retain(|it| *it != Item::Unit(3));
        cover(&mut p, 7);
        assert_eq!(p.items, [Item::Unit(0), Item::Marker { first_unit: 1, last_unit: 4 }, Item::Unit(5), Item::Marker { first_unit: 6, last_unit: 6 }]);
    }

    #[test]
    fn a_summary_keeps_its_run_and_only_the_rest_gets_markers() {
        let mut p = plan(vec![Item::Summary { first_unit: 0, last_unit: 2, text: "s".into(), tokens: 1 }, Item::Unit(4)]);
        cover(&mut p, 5);
        assert_eq!(p.items[1], Item::Marker { first_unit: 3, last_unit: 3 });
        p.items.clear();
        cover(&mut p, 5);
        assert_eq!(p.items, [Item::Marker { first_unit: 0, last_unit: 4 }]);
    }
}
