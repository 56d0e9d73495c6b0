//! The `ctxwin` strategy: pins, the recent tail, the best older units by score with their
//! neighbours, and a summary or marker for each gap. For per-call windows it keeps a stable prefix:
//! the previous plan with the new units appended while that fits, and when it no longer does, a
//! fresh selection that fills only `refill_target` of the budget, so evictions come in batches
//! instead of shifting the prefix every call.

use crate::error::Result;
use crate::plan::gaps::{GapFill, marker_bound};
use crate::plan::select::{self, Selection};
use crate::plan::{Item, Plan, PlanContext, PlanState, Prefix, costs};
use crate::policy::{Policy, Strategy};
use crate::scorer::ScoreParts;
use crate::tokens::MESSAGE_OVERHEAD;
use crate::window::Window;

/// For the next call under a stable-prefix `ctxwin` policy: the previous plan with the units pushed
/// since appended, if the history only grew and that window fits.
pub(crate) fn extend_prefix(ctx: &mut PlanContext<'_>, state: &mut PlanState, policy: &Policy) -> Option<Window> {
    if !(ctx.next_call() && policy.stable_prefix && policy.strategy == Strategy::Scored) {
        return None;
    }
    let prev = state.prev.as_ref()?;
    let units = ctx.store.units();
    let n_units = units.len();
    let last_same = units.get(prev.units.saturating_sub(1)).is_some_and(|u| u.end == prev.last_end);
    if n_units < prev.units || !last_same {
        return None;
    }
    let mut plan = prev.plan.clone();
    plan.items.extend((prev.units..n_units).map(Item::Unit));
    plan.unit_scores.resize(n_units, 0.0);
    let w = ctx.window(&plan, policy, None);
    if w.total_tokens > ctx.budget {
        return None;
    }
    state.prev = Some(Prefix { plan, units: n_units, last_end: units.last().map_or(0, |u| u.end) });
    Some(w)
}

/// A fresh `ctxwin` plan and every turn's score components.
pub(crate) fn plan(ctx: &mut PlanContext<'_>, policy: &Policy) -> Result<(Plan, Option<Vec<ScoreParts>>)> {
    let avail = ctx.avail;
    let next_call = ctx.next_call();
    let target = if next_call && policy.stable_prefix { ((avail as f32) * policy.refill_target) as usize } else { avail };
    let clear_before = costs::clear_boundary(ctx.store, policy);
    let costs = ctx.forms.unit_costs(ctx.store, ctx.counter, policy, clear_before);
    let query = ctx.query().into_owned();
    let scores = ctx.retrieval.score_for_window(ctx.store, &query, policy)?;
    let mut parts = scores.parts;
    let units = ctx.store.units();
    let unit_scores: Vec<f32> = units.iter().map(|r| r.clone().map(|i| parts[i].total).fold(0.0f32, f32::max)).collect();
    let marker = marker_bound(ctx.counter, ctx.store.len());
    let mut sel = Selection::new(&costs, marker);
    // A gap after the last turn shown has no turn to ride on: its marker is a message.
    sel.reserve(MESSAGE_OVERHEAD);
    let (tail_turns, tail_share) = if next_call { (policy.tail_turns, policy.tail_share) } else { (policy.query_tail_turns, policy.query_tail_share) };
    let tail_limit = ((avail as f32) * tail_share) as usize;
    select::take_tail(&mut sel, tail_turns, tail_limit.min(target));
    // The latest unit always goes in when it fits the whole budget.
    if tail_turns > 0 && !costs.is_empty() {
        sel.try_add(costs.len() - 1, target.min(avail));
    }
    let share = if next_call { policy.summary_share } else { policy.query_summary_share };
    let reserve = ((avail as f32) * share) as usize;
    let limit = target.min(avail).saturating_sub(reserve);
    let fill_limit = limit.max(sel.used());
    let eff = select::fill_by_score(&mut sel, &unit_scores, policy.neighbours, policy.neighbour_decay, fill_limit, policy.rag_top_k);
    let fill = GapFill { avail, marker, summary_tokens: (policy.summary_min_tokens, policy.summary_max_tokens), costs: &costs };
    let items = fill.items(&sel, ctx.store, ctx.counter, ctx.summaries)?;
    // A turn's reported total includes what it gained from its neighbours.
    for (u, r) in units.iter().enumerate() {
        for i in r.clone() {
            if let (Some(p), Some(&e)) = (parts.get_mut(i), eff.get(u)) {
                p.total = p.total.max(e.min(unit_scores.get(u).copied().unwrap_or(0.0).max(e)));
            }
        }
    }
    Ok((Plan { items, clear_before, unit_scores: eff }, Some(parts)))
}
