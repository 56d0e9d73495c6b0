//! The `rag` baseline: the top-k units by BM25, in chronological order, no tail and no summaries
//! (the peer's behaviour); the runs left out are marked, since a window never drops silently.

use crate::error::Result;
use crate::plan::gaps::marker_bound;
use crate::plan::select::{self, Selection};
use crate::plan::{Item, Plan, PlanContext, costs};
use crate::policy::Policy;
use crate::scorer::ScoreParts;
use crate::tokens::MESSAGE_OVERHEAD;

/// The top-k plan and every turn's score components.
pub(crate) fn plan(ctx: &mut PlanContext<'_>, policy: &Policy) -> Result<(Plan, Option<Vec<ScoreParts>>)> {
    let avail = ctx.avail;
    let clear_before = costs::clear_boundary(ctx.store, policy);
    let costs = ctx.forms.unit_costs(ctx.store, ctx.counter, policy, clear_before);
    let query = ctx.query().into_owned();
    let mut parts = ctx.retrieval.score_for_window(ctx.store, &query, policy)?.parts;
    let units = ctx.store.units();
    let unit_scores: Vec<f32> = units.iter().map(|r| r.clone().map(|i| parts[i].total).fold(0.0f32, f32::max)).collect();
    let bm25: Vec<f32> = units.iter().map(|r| r.clone().map(|i| parts[i].bm25).fold(0.0f32, f32::max)).collect();
    // Each gap between the units retrieved is marked; a gap after the last has no turn to ride on.
    let mut sel = Selection::new(&costs, marker_bound(ctx.counter, ctx.store.len()));
    sel.reserve(MESSAGE_OVERHEAD);
    let limit = avail.max(sel.used());
    let eff = select::fill_by_score(&mut sel, &bm25, 0, policy.neighbour_decay, limit, policy.rag_top_k);
    let items = sel.selected().map(Item::Unit).collect();
    for (u, r) in units.iter().enumerate() {
        for i in r.clone() {
            if let (Some(p), Some(&e)) = (parts.get_mut(i), eff.get(u)) {
                p.total = p.total.max(e.min(unit_scores.get(u).copied().unwrap_or(0.0).max(e)));
            }
        }
    }
    Ok((Plan { items, clear_before, unit_scores: eff }, Some(parts)))
}
