//! The `rag` baseline: the top-k units by BM25, in chronological order, no tail and no summaries
//! (the peer's behaviour); the runs left out are marked, since a window never drops silently.

use crate::error::Result;
use crate::plan::gaps::marker_bound;
use crate::plan::scored;
use crate::plan::select::{self, Fill, Selection};
use crate::plan::{Item, Plan, PlanContext};
use crate::policy::Policy;
use crate::scorer::TurnScores;
use crate::tokens::MESSAGE_OVERHEAD;

/// The top-k plan and every turn's score components.
pub(crate) fn plan(ctx: &mut PlanContext<'_>, policy: &Policy) -> Result<(Plan, Option<TurnScores>)> {
    let avail = ctx.avail;
    let clear_before = ctx.forms.clear_boundary(ctx.store, policy);
    let costs = ctx.forms.unit_costs(ctx.store, ctx.counter, policy, clear_before);
    let query = ctx.query().into_owned();
    let scores = ctx.retrieval.score_for_window(ctx.store, &query, policy, &[])?;
    let mut parts = scores.parts;
    let cand_units = scores.candidates.as_deref().map(|ids| scored::candidate_units(ctx.store, ids));
    let bm25 = scored::unit_totals(ctx.store, &parts, cand_units.as_deref(), |p| p.bm25);
    // Each gap between the units retrieved is marked; a gap after the last has no turn to ride on.
    let mut sel = Selection::new(&costs, marker_bound(ctx.counter, ctx.store.len()));
    sel.reserve(MESSAGE_OVERHEAD);
    let limit = avail.max(sel.used());
    let how = Fill { neighbours: 0, decay: policy.neighbour_decay, top_k: policy.rag_top_k, candidates: cand_units.as_deref() };
    let (eff, raised) = select::fill_by_score_reached(&mut sel, bm25, how, limit);
    let items = sel.selected().map(Item::Unit).collect();
    scored::add_span_gains(ctx.store, &mut parts, &eff, scored::reached(ctx.store, cand_units.as_deref(), raised));
    Ok((Plan { items, clear_before, unit_scores: eff, cuts: Vec::new() }, Some(parts)))
}
