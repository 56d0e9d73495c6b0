//! The `compaction` baseline (Claude Code / Codex): once the history passes `compaction_threshold`
//! of the budget, everything but the latest user messages (up to `compaction_user_share`) becomes
//! one summary; later calls add new units after it until the threshold is passed again.

use crate::error::Result;
use crate::plan::gaps::marker_bound;
use crate::plan::select::UnitCost;
use crate::plan::{Compacted, Item, Plan, PlanContext};
use crate::policy::Policy;
use crate::tokens::MESSAGE_OVERHEAD;
use crate::turn::Role;

fn full(c: &UnitCost) -> usize {
    c.cost + c.first_header
}

/// The compaction plan; for the next call, `state` keeps the compaction between calls.
pub(crate) fn plan(ctx: &mut PlanContext<'_>, state: &mut Option<Compacted>, policy: &Policy) -> Result<Plan> {
    let avail = ctx.avail;
    let next_call = ctx.next_call();
    let costs = ctx.forms.unit_costs(ctx.store, ctx.counter, policy, 0);
    let n = costs.len();
    let threshold = ((avail as f32) * policy.compaction_threshold) as usize;
    let prev = if next_call { state.clone() } else { None };
    let live_from = prev.as_ref().map_or(0, |c| c.boundary);
    let head_cost = prev.as_ref().map_or(0, |c| c.summary_tokens + c.kept_users.iter().map(|&u| full(&costs[u])).sum::<usize>());
    let live_cost: usize = (live_from..n).map(|u| full(&costs[u])).sum();
    let current = if head_cost + live_cost <= threshold { prev } else { Some(compact(ctx, &costs, policy)?) };
    let mut items = Vec::new();
    let live_from = current.as_ref().map_or(0, |c| c.boundary);
    if let Some(c) = &current {
        items.extend(c.kept_users.iter().map(|&u| Item::Unit(u)));
        if !c.summary.is_empty() {
            items.push(Item::Summary { first_unit: 0, last_unit: c.boundary.saturating_sub(1), text: c.summary.clone(), tokens: c.summary_tokens });
        }
    }
    // Live units; if even they do not fit, keep the latest that do (recency within live).
    let fixed: usize = items
        .iter()
        .map(|i| match i {
            Item::Unit(u) => full(&costs[*u]),
            Item::Summary { tokens, .. } => *tokens,
            Item::Marker { .. } => 0,
        })
        .sum();
    let all_live: usize = (live_from..n).map(|u| full(&costs[u])).sum();
    // When live units must be left out too, their marker needs room.
    let limit = if fixed + all_live <= avail { avail } else { avail.saturating_sub(marker_bound(ctx.counter, ctx.store.len())) };
    let mut live: Vec<usize> = Vec::new();
    let mut used = fixed;
    for u in (live_from..n).rev() {
        let c = full(&costs[u]);
        if used + c > limit {
            break;
        }
        used += c;
        live.push(u);
    }
    live.reverse();
    items.extend(live.into_iter().map(Item::Unit));
    if next_call {
        *state = current;
    }
    Ok(Plan { items, clear_before: 0, unit_scores: (0..n).map(|u| u as f32).collect(), cuts: Vec::new() })
}

/// Compacts now: the latest user messages up to the user share, everything else one summary.
fn compact(ctx: &mut PlanContext<'_>, costs: &[UnitCost], policy: &Policy) -> Result<Compacted> {
    let avail = ctx.avail;
    let n = costs.len();
    let units = ctx.store.units();
    let user_limit = ((avail as f32) * policy.compaction_user_share) as usize;
    let mut kept = Vec::new();
    let mut used = 0;
    for u in (0..n).rev() {
        let r = &units[u];
        let is_user = r.len() == 1 && ctx.store.get(r.start).is_some_and(|t| t.turn.role() == Role::User && !t.has_results());
        if !is_user {
            continue;
        }
        let c = full(&costs[u]);
        if used + c > user_limit {
            break;
        }
        used += c;
        kept.push(u);
    }
    kept.reverse();
    let allowance = (((avail as f32) * policy.compaction_summary_share) as usize).saturating_sub(MESSAGE_OVERHEAD);
    let last_turn = ctx.store.len().saturating_sub(1);
    let summary = if n > 0 { ctx.summaries.summary(ctx.store, ctx.counter, 0, last_turn, allowance)?.unwrap_or_default() } else { String::new() };
    let summary_tokens = if summary.is_empty() { 0 } else { MESSAGE_OVERHEAD + ctx.counter.count(&summary) };
    Ok(Compacted { boundary: n, kept_users: kept, summary, summary_tokens })
}
