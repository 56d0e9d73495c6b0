//! The selector: given each unit's cost and score, chooses what goes into the window under the
//! budget. It only chooses; the window renders. Units (a turn, or a tool call with its results) are
//! atomic, so a call is never separated from its result.
//!
//! Costs are exact token counts of the units as rendered, plus the timestamp header a unit's first
//! turn needs when its date differs from the unit before it in the window, plus an upper bound of
//! the marker that stands in for each gap. The window is recounted exactly when it is built.

use std::collections::BinaryHeap;

/// Per-unit facts the selector needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UnitCost {
    /// Tokens of the unit's messages with headers inside the unit, without its first header.
    pub(crate) cost: usize,
    /// Extra tokens of the first turn's header, if the unit's first date is shown.
    pub(crate) first_header: usize,
    /// Date of the unit's first turn.
    pub(crate) first_ts: Option<u32>,
    /// Date of the unit's last turn.
    pub(crate) last_ts: Option<u32>,
    /// Number of turns.
    pub(crate) turns: usize,
}

/// A set of units, one bit each, with a second level (one bit per non-empty word): membership in
/// one word operation, and the nearest member on either side of a unit in a few, however long the
/// history (64 × 64 units per second-level word). The selector asks both for every candidate; a
/// `BTreeSet` answered them with tree walks (issue 9: 5% of a LoCoMo window at 8,000 tokens).
#[derive(Debug, Clone, Default)]
struct UnitBits {
    words: Vec<u64>,
    /// Bit `w` of word `w / 64`: `words[w]` is not empty.
    nonempty: Vec<u64>,
}

impl UnitBits {
    fn new(n: usize) -> Self {
        let w = n.div_ceil(64);
        UnitBits { words: vec![0; w], nonempty: vec![0; w.div_ceil(64)] }
    }

    fn contains(&self, u: usize) -> bool {
        self.words.get(u / 64).is_some_and(|w| w & (1 << (u % 64)) != 0)
    }

    /// Adds `u` (within the size it was made for); returns whether it was not there.
    fn insert(&mut self, u: usize) -> bool {
        let Some(w) = self.words.get_mut(u / 64) else { return false };
        let was = *w & (1 << (u % 64)) != 0;
        *w |= 1 << (u % 64);
        if let Some(s) = self.nonempty.get_mut(u / 4096) {
            *s |= 1 << ((u / 64) % 64);
        }
        !was
    }

    /// Removes `u`; returns whether it was there.
    #[cfg(test)]
    fn remove(&mut self, u: usize) -> bool {
        let Some(w) = self.words.get_mut(u / 64) else { return false };
        let was = *w & (1 << (u % 64)) != 0;
        *w &= !(1 << (u % 64));
        if *w == 0
            && let Some(s) = self.nonempty.get_mut(u / 4096)
        {
            *s &= !(1 << ((u / 64) % 64));
        }
        was
    }

    /// The largest member below `u`: in `u`'s word, else the top bit of the nearest non-empty
    /// word below it.
    fn pred(&self, u: usize) -> Option<usize> {
        below_in_word(&self.words, u).or_else(|| {
            let w = highest_below(&self.nonempty, u / 64)?;
            Some(w * 64 + 63 - self.words.get(w)?.leading_zeros() as usize)
        })
    }

    /// The smallest member above `u`: in `u + 1`'s word, else the bottom bit of the nearest
    /// non-empty word above it.
    fn succ(&self, u: usize) -> Option<usize> {
        above_in_word(&self.words, u).or_else(|| {
            let w = lowest_above(&self.nonempty, (u + 1) / 64)?;
            Some(w * 64 + self.words.get(w)?.trailing_zeros() as usize)
        })
    }

    /// The members in ascending order.
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().filter(|(_, w)| **w != 0).flat_map(|(i, &w)| {
            let mut x = w;
            std::iter::from_fn(move || {
                (x != 0).then(|| {
                    let t = x.trailing_zeros() as usize;
                    x &= x - 1;
                    i * 64 + t
                })
            })
        })
    }
}

/// The highest bit set in `bits` below bit `i`, within `i`'s word.
fn below_in_word(bits: &[u64], i: usize) -> Option<usize> {
    let (w, b) = (i / 64, i % 64);
    let m = bits.get(w)? & ((1u64 << b) - 1);
    (m != 0).then(|| w * 64 + 63 - m.leading_zeros() as usize)
}

/// The lowest bit set in `bits` above bit `i`, within `i + 1`'s word.
fn above_in_word(bits: &[u64], i: usize) -> Option<usize> {
    let (w, b) = ((i + 1) / 64, (i + 1) % 64);
    let m = bits.get(w)? & (u64::MAX << b);
    (m != 0).then(|| w * 64 + m.trailing_zeros() as usize)
}

/// The highest bit set in `bits` below bit `i`.
fn highest_below(bits: &[u64], i: usize) -> Option<usize> {
    below_in_word(bits, i).or_else(|| {
        let k = bits.get(..(i / 64).min(bits.len()))?.iter().rposition(|&x| x != 0)?;
        Some(k * 64 + 63 - bits[k].leading_zeros() as usize)
    })
}

/// The lowest bit set in `bits` above bit `i`.
fn lowest_above(bits: &[u64], i: usize) -> Option<usize> {
    above_in_word(bits, i).or_else(|| {
        let from = (i + 1) / 64 + 1;
        let k = from + bits.get(from..)?.iter().position(|&x| x != 0)?;
        Some(k * 64 + bits[k].trailing_zeros() as usize)
    })
}

/// A set of selected units with its exact-or-upper-bound cost.
pub(crate) struct Selection<'a> {
    units: &'a [UnitCost],
    set: UnitBits,
    used: usize,
    /// Upper bound of one gap marker's tokens; 0 when gaps are not marked (peer baselines).
    marker: usize,
    /// Units before this one are decided (a kept front): no more of them can be selected.
    floor: usize,
}

impl<'a> Selection<'a> {
    pub(crate) fn new(units: &'a [UnitCost], marker: usize) -> Self {
        // With nothing selected, the whole history is one gap.
        let used = if units.is_empty() { 0 } else { marker };
        Selection { units, set: UnitBits::new(units.len()), used, marker, floor: 0 }
    }

    /// Closes the units before `unit` to selection: what is selected among them stays, nothing more
    /// is added (a re-selection that keeps the previous window's front).
    pub(crate) fn freeze_below(&mut self, unit: usize) {
        self.floor = self.floor.max(unit);
    }

    /// Sets `n` tokens aside for something outside the units (counted as used).
    pub(crate) fn reserve(&mut self, n: usize) {
        self.used += n;
    }

    /// Unit `u`'s own cost (without headers and markers).
    pub(crate) fn cost(&self, u: usize) -> usize {
        self.units.get(u).map_or(0, |c| c.cost)
    }

    pub(crate) fn used(&self) -> usize {
        self.used
    }

    pub(crate) fn contains(&self, u: usize) -> bool {
        self.set.contains(u)
    }

    /// The selected units in ascending order.
    pub(crate) fn selected(&self) -> impl Iterator<Item = usize> + '_ {
        self.set.iter()
    }

    fn header(&self, u: usize, prev: Option<usize>) -> usize {
        let unit = &self.units[u];
        match (unit.first_ts, prev.and_then(|p| self.units[p].last_ts)) {
            (Some(a), Some(b)) if a == b => 0,
            (Some(_), _) => unit.first_header,
            (None, _) => 0,
        }
    }

    /// Gaps (runs of unselected units) among `lo..=hi` bounded by selected `pred` and `succ`.
    fn gaps(&self, pred: Option<usize>, succ: Option<usize>) -> usize {
        let n = self.units.len();
        match (pred, succ) {
            (None, None) => usize::from(n > 0),
            (None, Some(s)) => usize::from(s > 0),
            (Some(p), None) => usize::from(p + 1 < n),
            (Some(p), Some(s)) => usize::from(s > p + 1),
        }
    }

    /// Tokens that selecting `u` adds (negative changes are possible: it can close a gap).
    pub(crate) fn marginal(&self, u: usize) -> isize {
        let pred = self.set.pred(u);
        let succ = self.set.succ(u);
        let mut d = self.units[u].cost as isize + self.header(u, pred) as isize;
        if let Some(s) = succ {
            d += self.header(s, Some(u)) as isize - self.header(s, pred) as isize;
        }
        let before = self.gaps(pred, succ) as isize;
        let after = self.gaps(pred, Some(u)) as isize + self.gaps(Some(u), succ) as isize;
        d + self.marker as isize * (after - before)
    }

    /// Selects `u` if it fits in `limit`; returns whether it did.
    pub(crate) fn try_add(&mut self, u: usize, limit: usize) -> bool {
        if self.contains(u) {
            return true;
        }
        if u < self.floor {
            return false;
        }
        let m = self.marginal(u);
        let new = self.used as isize + m;
        if new < 0 || new as usize > limit {
            return false;
        }
        self.used = new as usize;
        self.set.insert(u);
        true
    }

    /// Removes `u`.
    #[cfg(test)]
    pub(crate) fn remove(&mut self, u: usize) {
        if self.set.remove(u) {
            let m = self.marginal(u);
            self.used = (self.used as isize - m).max(0) as usize;
        }
    }
}

/// Takes units from the newest back while they fit in `limit`, at most `max_turns` turns
/// (`usize::MAX`: no limit); stops at the first that does not fit (a contiguous suffix).
pub(crate) fn take_tail(sel: &mut Selection<'_>, max_turns: usize, limit: usize) {
    let mut turns = 0;
    for u in (0..sel.units.len()).rev() {
        let t = sel.units[u].turns;
        if turns > 0 && turns + t > max_turns {
            break;
        }
        if !sel.try_add(u, limit) {
            break;
        }
        turns += t;
        if turns >= max_turns {
            break;
        }
    }
}

#[derive(PartialEq)]
struct Cand {
    score: f32,
    unit: usize,
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Higher score first; on ties the later unit (more recent) first.
        self.score.total_cmp(&o.score).then(self.unit.cmp(&o.unit))
    }
}

/// Greedy best-first selection of units by score with span expansion: when a unit is taken, its
/// neighbours within `neighbours` units become candidates at `score × decay^distance` (if that beats
/// their own score). Units with a score ≤ 0 are never taken. With `candidates` (units, any order),
/// only those and their neighbours are looked at; the others' scores must be 0. Returns each unit's
/// effective score. The work is bounded by the units looked at and the neighbours that exist, not
/// by `neighbours` (which may be `usize::MAX`).
#[cfg(test)]
pub(crate) fn fill_by_score(sel: &mut Selection<'_>, scores: &[f32], fill: Fill<'_>, limit: usize) -> Vec<f32> {
    fill_by_score_reached(sel, scores.to_vec(), fill, limit).0
}

/// [`fill_by_score`] on `scores` taken by value (they become the effective scores in place, no copy
/// of a score per unit), also returning the units whose effective score a neighbour raised (in any
/// order, perhaps repeated): with the candidates, the units whose score can be above 0.
pub(crate) fn fill_by_score_reached(sel: &mut Selection<'_>, scores: Vec<f32>, fill: Fill<'_>, limit: usize) -> (Vec<f32>, Vec<usize>) {
    let n = scores.len();
    let mut raised = Vec::new();
    let Fill { neighbours, decay, top_k, candidates } = fill;
    let mut eff: Vec<f32> = scores;
    let open = |u: usize| u < n && eff[u] > 0.0 && !sel.contains(u);
    let mut heap: BinaryHeap<Cand> = match candidates {
        None => (0..n).filter(|&u| open(u)).map(|u| Cand { score: eff[u], unit: u }).collect(),
        Some(c) => c.iter().copied().filter(|&u| open(u)).map(|u| Cand { score: eff[u], unit: u }).collect(),
    };
    // The cheapest unit that can still be taken: every unit, or with candidates those in the heap
    // (neighbours lower it as they join).
    let cost = |u: usize| sel.units.get(u).map_or(0, |x| x.cost);
    let mut min_cost = match candidates {
        None => sel.units.iter().map(|u| u.cost).min().unwrap_or(0),
        Some(_) => heap.iter().map(|c| cost(c.unit)).min().unwrap_or(0),
    };
    let mut taken = 0;
    while let Some(Cand { score, unit }) = heap.pop() {
        if sel.contains(unit) || score < eff[unit] {
            continue; // stale entry
        }
        if sel.used() + min_cost > limit || (top_k > 0 && taken >= top_k) {
            break;
        }
        if !sel.try_add(unit, limit) {
            continue;
        }
        taken += 1;
        let mut s = score;
        // Distances beyond both ends of the history reach no unit: stop there.
        let reach = neighbours.min(unit.max(n.saturating_sub(unit + 1)));
        for d in 1..=reach {
            s *= decay;
            if s <= 0.0 {
                break;
            }
            for v in [unit.checked_sub(d), unit.checked_add(d).filter(|&v| v < n)].into_iter().flatten() {
                if !sel.contains(v) && s > eff[v] {
                    eff[v] = s;
                    raised.push(v);
                    min_cost = min_cost.min(cost(v));
                    heap.push(Cand { score: s, unit: v });
                }
            }
        }
    }
    (eff, raised)
}

/// How [`fill_by_score`] fills: span expansion, how many units at most, which units to look at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fill<'a> {
    /// Units on each side of a taken unit that become candidates.
    pub(crate) neighbours: usize,
    /// A neighbour at distance d gets the taken unit's score × decay^d.
    pub(crate) decay: f32,
    /// Take at most this many units (0: as many as fit).
    pub(crate) top_k: usize,
    /// The units worth looking at (all units when `None`).
    pub(crate) candidates: Option<&'a [usize]>,
}

/// Runs of unselected units between selected ones: `(first_unit, last_unit)`, in order.
pub(crate) fn gaps(sel: &Selection<'_>, n_units: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut next = 0;
    for u in sel.selected() {
        if u > next {
            out.push((next, u - 1));
        }
        next = u + 1;
    }
    if next < n_units {
        out.push((next, n_units - 1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(costs: &[usize]) -> Vec<UnitCost> {
        costs.iter().map(|&c| UnitCost { cost: c, first_header: 0, first_ts: None, last_ts: None, turns: 1 }).collect()
    }

    proptest::proptest! {
        /// Members, order and nearest neighbours as a `BTreeSet` has them, across word and
        /// second-level boundaries.
        #[test]
        fn unit_bits_answer_as_an_ordered_set_does(
            n in 1usize..9000,
            ops in proptest::collection::vec((0usize..9000, proptest::bool::ANY), 0..60),
            probes in proptest::collection::vec(0usize..9000, 0..40),
        ) {
            let mut bits = UnitBits::new(n);
            let mut set = std::collections::BTreeSet::new();
            for (u, add) in ops {
                let u = u % n;
                if add {
                    proptest::prop_assert_eq!(bits.insert(u), set.insert(u));
                } else {
                    proptest::prop_assert_eq!(bits.remove(u), set.remove(&u));
                }
            }
            proptest::prop_assert_eq!(bits.iter().collect::<Vec<_>>(), set.iter().copied().collect::<Vec<_>>());
            for u in probes.into_iter().map(|p| p % n).chain([0, n - 1]) {
                proptest::prop_assert_eq!(bits.contains(u), set.contains(&u));
                proptest::prop_assert_eq!(bits.pred(u), set.range(..u).next_back().copied(), "pred {}", u);
                proptest::prop_assert_eq!(bits.succ(u), set.range(u + 1..).next().copied(), "succ {}", u);
            }
        }
    }

    /// The incremental cost equals a from-scratch sum for every subset (naive oracle).
    #[test]
    fn marginal_costs_match_naive_totals() {
        let u = units(&[5, 7, 3, 9, 4]);
        let marker = 2;
        for mask in 0u32..32 {
            let mut sel = Selection::new(&u, marker);
            for i in 0..5 {
                if mask & (1 << i) != 0 {
                    assert!(sel.try_add(i, usize::MAX));
                }
            }
            let chosen: Vec<usize> = (0..5).filter(|i| mask & (1 << i) != 0).collect();
            let naive: usize = chosen.iter().map(|&i| u[i].cost).sum::<usize>() + marker * gaps(&sel, 5).len();
            assert_eq!(sel.used(), naive, "mask {mask:05b}");
        }
    }

    #[test]
    fn headers_are_paid_once_per_date_run() {
        let mut u = units(&[10, 10, 10]);
        for (i, ts) in [1, 1, 2].into_iter().enumerate() {
            u[i].first_ts = Some(ts);
            u[i].last_ts = Some(ts);
            u[i].first_header = 4;
        }
        let mut sel = Selection::new(&u, 0);
        assert!(sel.try_add(1, usize::MAX));
        assert_eq!(sel.used(), 14);
        assert!(sel.try_add(0, usize::MAX)); // unit 1 loses its header, unit 0 gets one
        assert_eq!(sel.used(), 24);
        assert!(sel.try_add(2, usize::MAX)); // new date: header
        assert_eq!(sel.used(), 38);
        sel.remove(0);
        assert_eq!(sel.used(), 28);
    }

    #[test]
    fn best_first_with_neighbours() {
        let u = units(&[10, 10, 10, 10, 10, 10]);
        let mut sel = Selection::new(&u, 0);
        let scores = [0.1, 0.0, 0.0, 1.0, 0.0, 0.2];
        fill_by_score(&mut sel, &scores, Fill { neighbours: 1, decay: 0.8, top_k: 0, candidates: None }, 30);
        let got: Vec<usize> = sel.selected().collect();
        // 3 first, then its neighbours 2 and 4 at 0.8 beat 5 (0.2) and 0 (0.1).
        assert_eq!(got, vec![2, 3, 4]);
        // The same from the candidates with a score alone.
        let mut sel = Selection::new(&u, 0);
        fill_by_score(&mut sel, &scores, Fill { neighbours: 1, decay: 0.8, top_k: 0, candidates: Some(&[5, 3, 0]) }, 30);
        assert_eq!(sel.selected().collect::<Vec<_>>(), vec![2, 3, 4]);
    }

    /// Issue 15: `neighbours = usize::MAX` (any decay) ends, bounded by the units that exist, and
    /// spreads over the whole history like a span as wide as it.
    #[test]
    fn unbounded_neighbours_end() {
        let u = units(&[10; 7]);
        for decay in [1.0, 0.8, 0.0] {
            let mut sel = Selection::new(&u, 0);
            let scores = [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
            let eff = fill_by_score(&mut sel, &scores, Fill { neighbours: usize::MAX, decay, top_k: 0, candidates: None }, 1000);
            let mut wide = Selection::new(&u, 0);
            let want = fill_by_score(&mut wide, &scores, Fill { neighbours: 6, decay, top_k: 0, candidates: None }, 1000);
            assert_eq!(eff, want, "decay {decay}");
            assert_eq!(sel.selected().collect::<Vec<_>>(), wide.selected().collect::<Vec<_>>());
            let n_taken = if decay > 0.0 { 7 } else { 1 };
            assert_eq!(sel.selected().count(), n_taken, "decay {decay}");
        }
    }

    #[test]
    fn tail_is_a_contiguous_suffix() {
        let u = units(&[10, 50, 10, 10]);
        let mut sel = Selection::new(&u, 0);
        take_tail(&mut sel, usize::MAX, 40);
        assert_eq!(sel.selected().collect::<Vec<_>>(), vec![2, 3]);
    }
}
