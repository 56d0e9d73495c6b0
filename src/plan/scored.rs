//! The `ctxwin` strategy: pins, the recent tail, the best older units by score with their
//! neighbours, and a summary or marker for each gap. For per-call windows it keeps a stable prefix:
//! the previous plan with the new units appended while that fits, and when it no longer does, a
//! fresh selection that fills only `refill_target` of the budget, so evictions come in batches
//! instead of shifting the prefix every call.

use crate::error::Result;
use std::borrow::Cow;

use crate::plan::costs::form_cut;
use crate::plan::gaps::{GapFill, marker_bound};
use crate::plan::select::{self, Fill, Selection, UnitCost};
use crate::plan::{Item, Plan, PlanContext, PlanState, Prefix};
use crate::policy::{Policy, Strategy};
use crate::scorer::{ScoreParts, TurnScores};
use crate::store::Store;
use crate::tokens::MESSAGE_OVERHEAD;
use crate::turn::TurnId;
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
    let grew = n_units > prev.units;
    let mut plan = prev.plan.clone();
    plan.items.extend((prev.units..n_units).map(Item::Unit));
    plan.unit_scores.resize(n_units, 0.0);
    let mut w = ctx.window(&plan, policy, None);
    if w.total_tokens > ctx.budget {
        // An agent's latest observation is appended cut to what the window has left rather than
        // selecting afresh (issue 10: on SWE-agent at 25% two re-selections in a row rewrote a
        // 1,200-token summary because the new output, whole, did not fit after the previous one).
        let u = n_units - 1;
        if !grew || policy.tail_turns == 0 || plan.cut_of(u).is_some() || super::conversational(ctx.store) {
            return None;
        }
        let full_cost = ctx.forms.unit_cost_cut(ctx.store, ctx.counter, policy, plan.clear_before, u, None).cost as isize;
        let share = ((ctx.avail as f32) * policy.agent_refill_target * policy.agent_latest_share) as isize;
        let allowed = (full_cost - (w.total_tokens - ctx.budget) as isize).min(share.max(MIN_LATEST_CUT as isize));
        let (cap, cut) = cap_to_fit(ctx, policy, plan.clear_before, u, full_cost, allowed)?;
        if cut > allowed {
            return None;
        }
        plan.cuts.push((u, cap));
        w = ctx.window(&plan, policy, None);
        if w.total_tokens > ctx.budget {
            return None;
        }
    }
    plan.keep_shown_scores();
    state.prev = Some(Prefix { plan, units: n_units, last_end: units.last().map_or(0, |u| u.end), fresh_streak: 0 });
    Some(w)
}

/// How a per-call re-selection goes (see [`plan`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Reselect<'p> {
    /// Summaries stay within the refill target too (the degrade rule).
    pub(crate) headroom: bool,
    /// The history is conversational (`refill_target`; else `agent_refill_target`).
    pub(crate) conversational: bool,
    /// The previous per-call plan, whose front is kept.
    pub(crate) prev: Option<&'p Prefix>,
}

/// A fresh `ctxwin` plan and every turn's score components. With `headroom` (a per-call window
/// whose previous prefix could not be extended either), summaries stay within `refill_target` too,
/// so the next call can append instead of selecting afresh again. With `prev` (the previous
/// per-call plan) and a policy that keeps a front, the previous window's leading items stay as
/// they were, within `keep_front` of the budget, and only the units after them are selected anew.
pub(crate) fn plan(ctx: &mut PlanContext<'_>, policy: &Policy, reselect: Reselect<'_>) -> Result<(Plan, Option<TurnScores>)> {
    let Reselect { headroom, conversational, prev } = reselect;
    let avail = ctx.avail;
    let next_call = ctx.next_call();
    let clear_before = ctx.forms.clear_boundary(ctx.store, policy);
    let base_costs = ctx.forms.unit_costs(ctx.store, ctx.counter, policy, clear_before);
    let marker = marker_bound(ctx.counter, ctx.store.len());
    let front = match prev {
        Some(p) if next_call && policy.stable_prefix && policy.keep_front > 0.0 => {
            // The units pushed since the previous plan (the ones that did not fit after it) go in
            // after the front, with the marker of the gap before them.
            let new_units: usize = base_costs.get(p.units.saturating_sub(1)..).unwrap_or_default().iter().map(|c| c.cost + c.first_header).sum();
            let need = new_units + marker + MESSAGE_OVERHEAD;
            let limit = (((avail as f32) * policy.keep_front) as usize).min(avail.saturating_sub(need));
            kept_front(ctx, p, policy, clear_before, &base_costs, marker, limit)
        }
        _ => None,
    };
    let mut cuts = front.as_ref().map_or_else(Vec::new, |f| f.cuts.clone());
    let refill = if conversational { policy.refill_target } else { policy.agent_refill_target };
    // The shares below are of what the front leaves (`base`: the front's tokens, 0 without one).
    let shares = |sel: &Selection<'_>| {
        let base = if front.is_some() { sel.used() } else { 0 };
        let rest = avail.saturating_sub(base);
        let target = if next_call && policy.stable_prefix { base + ((rest as f32) * refill) as usize } else { avail };
        (base, rest, target)
    };
    let tail_turns = if next_call { policy.tail_turns } else { policy.query_tail_turns };
    // An agent's latest observation larger than its share of the refill target is cut to fit it.
    if next_call && policy.stable_prefix && !conversational && tail_turns > 0 {
        let costs = with_cuts(ctx, policy, clear_before, &base_costs, &cuts);
        let sel = started(&costs, marker, front.as_ref());
        let (_, _, target) = shares(&sel);
        let limit = sel.used() + ((target.min(avail).saturating_sub(sel.used()) as f32) * policy.agent_latest_share) as usize;
        // A latest unit already in the kept front keeps the cut it was shown with.
        let latest = base_costs.len().checked_sub(1).filter(|&u| !sel.contains(u));
        if let Some(cut) = latest.and_then(|u| latest_cut(ctx, policy, clear_before, &sel, u, limit)) {
            cuts.push(cut);
        }
    }
    let costs = with_cuts(ctx, policy, clear_before, &base_costs, &cuts);
    let mut sel = started(&costs, marker, front.as_ref());
    let (base, rest, target) = shares(&sel);
    let share = |x: f32| base + ((rest as f32) * x) as usize;
    let tail_share = if next_call { policy.tail_share } else { policy.query_tail_share };
    let tail_limit = share(tail_share);
    select::take_tail(&mut sel, tail_turns, tail_limit.min(target));
    // The latest unit goes in when it fits the refill target; after a kept front, and in an agent
    // session (where it is the observation the model must act on, cut above to fit the target),
    // when it fits the budget (the front was cut to leave it room). In a conversation a latest
    // unit larger than the refill target is left to the summaries (issue 10 report: letting it
    // fill the whole budget raised tau-bench's cost at 10% from 434 to 454).
    if tail_turns > 0 && !costs.is_empty() {
        sel.try_add(costs.len() - 1, if front.is_some() || !conversational { avail } else { target.min(avail) });
    }
    let query = ctx.query().into_owned();
    let units = ctx.store.units();
    let taken: Vec<usize> = sel.selected().filter_map(|u| units.get(u)).flat_map(|r| r.clone()).collect();
    let scores = ctx.retrieval.score_for_window(ctx.store, &query, policy, &taken)?;
    let mut parts = scores.parts;
    let cand_units = scores.candidates.as_deref().map(|ids| candidate_units(ctx.store, ids));
    let unit_scores = unit_totals(ctx.store, &parts, cand_units.as_deref(), |p| p.total);
    let summary_share = if next_call { policy.summary_share } else { policy.query_summary_share };
    let reserve = ((rest as f32) * summary_share) as usize;
    let limit = target.min(avail).saturating_sub(reserve);
    let fill_limit = limit.max(sel.used());
    let how = Fill { neighbours: policy.neighbours, decay: policy.neighbour_decay, top_k: policy.rag_top_k, candidates: cand_units.as_deref() };
    let (eff, raised) = select::fill_by_score_reached(&mut sel, unit_scores, how, fill_limit);
    let summary_room = if headroom { target.min(avail).max(sel.used()) } else { avail };
    let from_unit = front.as_ref().map_or(0, |f| f.end);
    let fill = GapFill {
        avail: summary_room,
        marker,
        summary_tokens: (policy.summary_min_tokens, summary_max(policy, avail, next_call && !conversational)),
        costs: &costs,
        from_unit,
    };
    let fresh = fill.items(&sel, ctx.store, ctx.counter, ctx.summaries)?;
    let items = match front {
        Some(f) => f.items.into_iter().chain(fresh).collect(),
        None => fresh,
    };
    cuts.retain(|&(u, _)| sel.contains(u));
    add_span_gains(ctx.store, &mut parts, &eff, reached(ctx.store, cand_units.as_deref(), raised));
    Ok((Plan { items, clear_before, unit_scores: eff, cuts }, Some(parts)))
}

/// A selection of `costs` with the gap marker after the last unit reserved and, with a kept
/// `front`, its units selected, its summaries' extra reserved and the units before its end closed.
fn started<'c>(costs: &'c [UnitCost], marker: usize, front: Option<&Front>) -> Selection<'c> {
    let mut sel = Selection::new(costs, marker);
    // A gap after the last turn shown has no turn to ride on: its marker is a message.
    sel.reserve(MESSAGE_OVERHEAD);
    if let Some(f) = front {
        for &u in &f.units {
            sel.try_add(u, usize::MAX);
        }
        sel.reserve(f.extra);
        sel.freeze_below(f.end);
    }
    sel
}

/// `costs` with the cut units' costs in their cut form (borrowed when there is no cut).
fn with_cuts<'c>(ctx: &mut PlanContext<'_>, policy: &Policy, clear_before: TurnId, costs: &'c [UnitCost], cuts: &[(usize, usize)]) -> Cow<'c, [UnitCost]> {
    if cuts.is_empty() {
        return Cow::Borrowed(costs);
    }
    let mut out = costs.to_vec();
    for &(u, max) in cuts {
        if let Some(c) = out.get_mut(u) {
            *c = ctx.forms.unit_cost_cut(ctx.store, ctx.counter, policy, clear_before, u, Some(max));
        }
    }
    Cow::Owned(out)
}

/// The smallest cut of an agent's latest observation: below it a tool output says too little to
/// act on, and the unit is shown at this cut when it fits the budget.
const MIN_LATEST_CUT: usize = 128;

/// Cuts are multiples of this many tokens, so that close targets share one rendered form.
const CUT_STEP: usize = 32;

/// For an agent's latest unit `u` that would take `sel` past `limit`: the cut `(u, max tokens per
/// message)` of its tool outputs, or of its text in a turn without any ([`form_cut`]), that makes
/// it fit (the largest multiple of [`CUT_STEP`] found in a few exact steps), at least
/// [`MIN_LATEST_CUT`]. `None` when it fits as it is or a cut would not shorten it. Issue 10: shown
/// whole up to the budget, the observation filled the window and the next call had to select
/// afresh.
fn latest_cut(ctx: &mut PlanContext<'_>, policy: &Policy, clear_before: TurnId, sel: &Selection<'_>, u: usize, limit: usize) -> Option<(usize, usize)> {
    let room = limit as isize - sel.used() as isize;
    let full = sel.marginal(u);
    if full <= room {
        return None;
    }
    let full_cost = sel.cost(u) as isize;
    let (cap, cut) = cap_to_fit(ctx, policy, clear_before, u, full_cost, room - (full - full_cost))?;
    // Outputs within the cut already: cutting changes nothing.
    (cut < full_cost).then_some((u, cap))
}

/// The cap (max tokens per message, [`form_cut`]) that brings unit `u`, costing `full_cost` in the
/// policy's form, to at most `allowed` tokens, and its cost there: the largest multiple of
/// [`CUT_STEP`] found in a few exact steps, at least [`MIN_LATEST_CUT`] (whose cost may still be
/// above `allowed`). `None` for a unit with nothing to cut.
fn cap_to_fit(ctx: &mut PlanContext<'_>, policy: &Policy, clear_before: TurnId, u: usize, full_cost: isize, allowed: isize) -> Option<(usize, isize)> {
    let store = ctx.store;
    let range = store.units().get(u)?.clone();
    let policy_max = if policy.tool_output_max_tokens == 0 { usize::MAX } else { policy.tool_output_max_tokens };
    // The tokens each message a cut shortens takes now: tool outputs (within the policy's cut), and
    // the text of a turn without any (`form_cut`).
    let mut sizes: Vec<usize> = Vec::new();
    for t in range.filter_map(|id| store.get(id)) {
        let tool = t.tool_output_tokens() > 0;
        for m in t.messages.iter().filter(|m| m.tool_call_id.is_some() == tool && !m.content.is_empty()) {
            let n = ctx.counter.count(&m.content);
            sizes.push(if tool { n.min(policy_max) } else { n });
        }
    }
    let largest = sizes.iter().copied().max()?;
    // A cut message takes about its cap: the largest cap whose estimate fits, then exact steps
    // (each cut is a salient cut of a long output: the estimate spares most of them).
    let estimate = |cap: usize| full_cost - sizes.iter().map(|&n| n.saturating_sub(cap) as isize).sum::<isize>();
    let mut cap = (largest / CUT_STEP * CUT_STEP).max(MIN_LATEST_CUT);
    while cap > MIN_LATEST_CUT && estimate(cap) > allowed {
        cap = cap.saturating_sub(CUT_STEP).max(MIN_LATEST_CUT);
    }
    let mut cut = full_cost;
    for _ in 0..3 {
        cut = ctx.forms.unit_cost_cut(store, ctx.counter, policy, clear_before, u, Some(cap)).cost as isize;
        let excess = cut - allowed;
        if excess <= 0 || cap == MIN_LATEST_CUT {
            break;
        }
        cap = (cap.saturating_sub((excess as usize).div_ceil(sizes.len())) / CUT_STEP * CUT_STEP).max(MIN_LATEST_CUT);
    }
    Some((cap, cut))
}

/// The largest summary of one run: `summary_max_tokens`, or in a per-call window of a history that
/// is not conversational (`agent`) `agent_summary_share` of `avail` when that is more (issue 10:
/// on mini-swe-agent at 25%, 0.2 raised long-range recall from 0.951 / 0.939 to 0.958 / 0.962 on
/// the design / held-out splits).
fn summary_max(policy: &Policy, avail: usize, agent: bool) -> usize {
    if !agent {
        return policy.summary_max_tokens;
    }
    policy.summary_max_tokens.max(((avail as f32) * policy.agent_summary_share) as usize)
}

/// The leading items of the previous plan that a re-selection keeps (see [`kept_front`]).
struct Front {
    /// The items, in order, ending with a unit.
    items: Vec<Item>,
    /// Their units.
    units: Vec<usize>,
    /// The first unit after them.
    end: usize,
    /// Tokens their summaries take beyond the marker bound the selection counts for each gap.
    extra: usize,
    /// The previous plan's cuts of these units ([`Plan::cuts`]), kept so they render as they did.
    cuts: Vec<(usize, usize)>,
}

/// The longest run of the previous plan's leading items, ending with a unit, that costs at most
/// `limit` tokens and renders as it did: every unit existed unchanged then and takes the same form
/// under the new clear boundary (a tool output that has since been cleared ends the front). Those
/// messages are the next call's cached prefix; `None` when no unit qualifies.
fn kept_front(
    ctx: &mut PlanContext<'_>,
    prev: &Prefix,
    policy: &Policy,
    clear_before: TurnId,
    costs: &[UnitCost],
    marker: usize,
    limit: usize,
) -> Option<Front> {
    let store = ctx.store;
    let units = store.units();
    // Units the history held unchanged when the previous plan was made.
    let last_same = units.get(prev.units.saturating_sub(1)).is_some_and(|u| u.end == prev.last_end);
    let stable = if last_same { prev.units } else { prev.units.saturating_sub(1) };
    let same_form = |u: usize| {
        let cut = prev.plan.cut_of(u);
        units
            .get(u)
            .is_some_and(|r| r.clone().all(|id| form_cut(store, id, policy, prev.plan.clear_before, cut) == form_cut(store, id, policy, clear_before, cut)))
    };
    let mut cost_of = |u: usize| match prev.plan.cut_of(u) {
        None => costs.get(u).map_or(usize::MAX / 2, |c| c.cost + c.first_header),
        Some(max) => {
            let c = ctx.forms.unit_cost_cut(store, ctx.counter, policy, clear_before, u, Some(max));
            c.cost + c.first_header
        }
    };
    let (mut used, mut extra, mut cut) = (0usize, 0usize, None);
    for (i, it) in prev.plan.items.iter().enumerate() {
        used += match it {
            Item::Unit(u) if *u < stable && same_form(*u) => cost_of(*u),
            Item::Unit(_) => break,
            Item::Summary { tokens, .. } => {
                extra += tokens.saturating_sub(marker);
                *tokens
            }
            Item::Marker { .. } => marker,
        };
        if used > limit {
            break;
        }
        match it {
            Item::Unit(u) => cut = Some((i + 1, *u + 1, extra)),
            // Ending with a summary, the gap after it is a second one the selection does not
            // count: its marker is reserved too.
            Item::Summary { last_unit, .. } => cut = Some((i + 1, *last_unit + 1, extra + marker)),
            Item::Marker { .. } => {}
        }
    }
    let (n, end, extra) = cut?;
    let items: Vec<Item> = prev.plan.items.get(..n)?.to_vec();
    let units = items.iter().filter_map(Item::unit).collect();
    let cuts = prev.plan.cuts.iter().copied().filter(|&(u, _)| u < end).collect();
    Some(Front { items, units, end, extra, cuts })
}

/// The units holding the candidate turns `ids` (sorted), each once, in order (each turn's unit is
/// kept at push: no search through the history's units).
pub(crate) fn candidate_units(store: &Store, ids: &[TurnId]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::with_capacity(ids.len());
    for &id in ids {
        if let Some(u) = store.unit_of(id).filter(|&u| out.last() != Some(&u)) {
            out.push(u);
        }
    }
    out
}

/// Each unit's best turn by `key` (0 for a unit without a scored turn): over every unit, or with
/// candidate units only over those.
pub(crate) fn unit_totals(store: &Store, parts: &TurnScores, cand: Option<&[usize]>, key: impl Fn(&ScoreParts) -> f32) -> Vec<f32> {
    let units = store.units();
    match cand {
        None => units.iter().map(|r| r.clone().map(|i| key(&parts.get(i))).fold(0.0f32, f32::max)).collect(),
        Some(_) => {
            // Each scored turn lifts its unit (the other turns count 0, as a fold from 0 does).
            let mut out = vec![0.0f32; units.len()];
            for (id, p) in parts.scored() {
                if let Some(u) = store.unit_of(id) {
                    out[u] = out[u].max(key(p));
                }
            }
            out
        }
    }
}

/// A turn's reported total is at least its unit's effective score (the unit's best turn, or what it
/// gained from its neighbours); units without one (not scored, not reached) are not visited. With
/// `only` (the candidate units and those their neighbours raised), only those are looked at: no
/// other unit can have a score.
pub(crate) fn add_span_gains(store: &Store, parts: &mut TurnScores, eff: &[f32], raised: Option<Vec<usize>>) {
    let units = store.units();
    let gains = |u: usize| {
        let e = eff.get(u).copied().unwrap_or(0.0);
        units.get(u).cloned().unwrap_or(0..0).filter(move |_| e > 0.0).map(move |i| (i, e))
    };
    match raised {
        None => parts.raise_totals((0..eff.len()).flat_map(gains)),
        Some(mut raised) => {
            // The scored turns through their units; the turns of units a neighbour raised that
            // nobody scored, as gains of their own.
            raised.sort_unstable();
            raised.dedup();
            let unit_gain = |id: TurnId| store.unit_of(id).and_then(|u| eff.get(u)).copied().filter(|&e| e > 0.0).unwrap_or(f32::NEG_INFINITY);
            parts.raise_scored(unit_gain, raised.into_iter().flat_map(gains));
        }
    }
}

/// What [`add_span_gains`] must look at besides the scored turns: the units a neighbour raised and
/// the candidate units of more than one turn, whose other turns were not scored (`None`: every
/// unit, when every turn was scored).
pub(crate) fn reached(store: &Store, cand_units: Option<&[usize]>, raised: Vec<usize>) -> Option<Vec<usize>> {
    let units = store.units();
    cand_units.map(|c| c.iter().copied().filter(|&u| units.get(u).is_some_and(|r| r.len() > 1)).chain(raised).collect())
}

#[cfg(all(test, feature = "replay"))]
mod tests {
    use crate::error::Result;
    use crate::replay::synth;
    use crate::scorer::Sources;
    use crate::window::Fate;
    use crate::{Engine, EngineConfig, Policy};

    fn engine(candidates: usize, t: &crate::replay::Transcript) -> Result<Engine> {
        let mut p = Policy::default();
        p.set("candidates", &candidates.to_string())?;
        let mut e = Engine::new(EngineConfig::default().policy(p))?;
        for turn in t.turns() {
            e.push(turn.clone())?;
        }
        Ok(e)
    }

    /// Issue 10: an agent session's largest summary grows with the window; other histories keep
    /// `summary_max_tokens`.
    #[test]
    fn agent_summaries_grow_with_the_window() -> Result<()> {
        let mut p = Policy::default();
        p.set("agent_summary_share", "0.2")?;
        assert_eq!(super::summary_max(&p, 3_000, true), 1200);
        assert_eq!(super::summary_max(&p, 10_000, true), 2000);
        assert_eq!(super::summary_max(&p, 10_000, false), 1200);
        p.set("agent_summary_share", "0")?;
        assert_eq!(super::summary_max(&p, 10_000, true), 1200);
        Ok(())
    }

    /// On a history longer than `candidates`, a window scores only the candidates (each naming its
    /// sources), keeps a report line for every turn, and recalls the planted evidence that scoring
    /// every turn recalls.
    #[test]
    fn candidates_are_scored_and_find_the_evidence() -> Result<()> {
        let t = synth::conversation(5, 3000);
        let (mut all, mut some) = (engine(0, &t)?, engine(64, &t)?);
        let (mut recall_all, mut recall_some) = (0, 0);
        for q in t.qa().iter().take(12) {
            let evidence = q.evidence()[0][0];
            let kept = |w: &crate::Window| matches!(w.report()[evidence].fate, Fate::Kept);
            let w = all.assemble_for(2000, q.question())?;
            recall_all += usize::from(kept(&w));
            assert!(w.report().iter().all(|l| l.score.scored == Sources::ALL));
            let w = some.assemble_for(2000, q.question())?;
            recall_some += usize::from(kept(&w));
            assert_eq!(w.report().len(), 3000);
            let scored: Vec<_> = w.report().iter().filter(|l| !l.score.scored.is_empty()).collect();
            assert!(scored.len() < 1000, "{} turns scored", scored.len());
            assert!(scored.iter().all(|l| !l.score.scored.contains(Sources::ALL)));
            // The latest turns are always candidates; the unscored have no relevance at all.
            assert!(w.report()[2999].score.scored.contains(Sources::RECENT));
            for l in w.report().iter().filter(|l| l.score.scored.is_empty()) {
                assert_eq!((l.score.bm25, l.score.references, l.score.recency), (0.0, 0.0, 0.0), "turn {}", l.turn);
            }
        }
        assert!(recall_some >= recall_all, "candidates {recall_some} vs every turn {recall_all}");
        assert!(recall_all > 0);
        Ok(())
    }
}
