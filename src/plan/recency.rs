//! The `recency` baseline (LangChain `trim_messages`, strategy last) and `tool-clearing` (Anthropic
//! `clear_tool_uses`): the latest units that fit, with tool results before the clear boundary
//! replaced by placeholders when the policy keeps only the last few. What is left out is marked.

use crate::plan::gaps::marker_bound;
use crate::plan::select::{self, Selection};
use crate::plan::{Item, Plan, PlanContext, costs};
use crate::policy::Policy;

/// The latest units that fit.
pub(crate) fn plan(ctx: &mut PlanContext<'_>, policy: &Policy) -> Plan {
    let clear_before = costs::clear_boundary(ctx.store, policy);
    let costs = ctx.forms.unit_costs(ctx.store, ctx.counter, policy, clear_before);
    // The turns before the tail are marked (the marker rides on the first turn shown).
    let mut sel = Selection::new(&costs, marker_bound(ctx.counter, ctx.store.len()));
    select::take_tail(&mut sel, usize::MAX, ctx.avail);
    let items = sel.selected().map(Item::Unit).collect();
    Plan { items, clear_before, unit_scores: (0..costs.len()).map(|u| u as f32).collect(), cuts: Vec::new() }
}
