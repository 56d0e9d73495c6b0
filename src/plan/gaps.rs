//! What stands in for each run of turns a plan leaves out: a summary (largest runs first, within what
//! is left of the budget) or a one-line `[N turns omitted]` marker. Summaries come from the
//! [`Summarizer`] and are cached by run and allowance.

use std::num::NonZeroUsize;

use lru::LruCache;
use rustc_hash::FxHashMap;

use crate::error::Result;
use crate::plan::select::{self, Selection, UnitCost};
use crate::plan::Item;
use crate::store::Store;
use crate::summarizer::{ExtractiveSummarizer, Run, Summarizer};
use crate::tokens::{TokenCounter, MESSAGE_OVERHEAD};
use crate::turn::TurnId;

/// The summarizer and its cache of summaries, keyed by `(first, last, allowance)` under the
/// summarizer's id (the cache is cleared when the summarizer changes).
pub(crate) struct Summaries {
    summarizer: Box<dyn Summarizer>,
    cache: LruCache<(TurnId, TurnId, usize), Option<String>>,
}

impl std::fmt::Debug for Summaries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Summaries").field("summarizer", &self.summarizer.id()).field("cached", &self.cache.len()).finish()
    }
}

impl Summaries {
    /// The extractive summarizer with a cache of `capacity` summaries.
    pub(crate) fn new(capacity: usize) -> Self {
        let cap = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        Summaries { summarizer: Box::new(ExtractiveSummarizer::default()), cache: LruCache::new(cap) }
    }

    /// Replaces the summarizer and clears the cache.
    pub(crate) fn set(&mut self, s: Box<dyn Summarizer>) {
        self.summarizer = s;
        self.cache.clear();
    }

    /// Lets the summarizer analyze turn `id` once, at push time.
    pub(crate) fn observe(&mut self, store: &Store, counter: &mut TokenCounter, id: TurnId) {
        if let Some(stored) = store.turns().get(id..=id) {
            let run = Run { first: id, turns: stored, source_tokens: 0 };
            if let Some(t) = run.turn(0) {
                self.summarizer.observe(t, counter);
            }
        }
    }

    /// A cached summary of turns `first..=last` in at most `allowance` tokens, or `None` when none fits.
    pub(crate) fn summary(&mut self, store: &Store, counter: &mut TokenCounter, first: TurnId, last: TurnId, allowance: usize) -> Result<Option<String>> {
        let key = (first, last, allowance);
        if let Some(s) = self.cache.get(&key) {
            return Ok(s.clone());
        }
        let turns = store.turns().get(first..=last.min(store.len().saturating_sub(1))).unwrap_or_default();
        let source_tokens = store.tokens_between(first, last);
        let run = Run { first, turns, source_tokens };
        let s = self.summarizer.summarize(&run, allowance, counter)?.map(|s| s.into_text()).filter(|s| !s.is_empty());
        self.cache.put(key, s.clone());
        Ok(s)
    }
}

/// The marker that stands in for a left-out run without a summary.
/// (How many tokens were left out is in the window's report; the model needs only the count.)
pub(crate) fn marker_text(turns: usize) -> String {
    if turns == 1 { "[1 turn omitted]".to_string() } else { format!("[{turns} turns omitted]") }
}

/// Upper bound of a gap marker's tokens in a history of `n_turns`. A marker begins the content of
/// the turn after the gap, and the space joining them merges into the content's first token (the
/// recount tests check the totals; `assemble`'s fix-up would catch an exception). The one marker
/// that may stand alone pays its message framing from the selection's reserve.
pub(crate) fn marker_bound(counter: &mut TokenCounter, n_turns: usize) -> usize {
    let nines = "9".repeat(n_turns.max(1).to_string().len());
    let widest = counter.count(&format!("[{nines} turns omitted]"));
    widest.max(counter.count(&marker_text(1)))
}

/// What the gaps of a selection are filled with, in window order with the selected units: for each
/// run of left-out units a summary (the largest runs first, each within `summary_max_tokens` and
/// what is left of `avail`) or a marker.
pub(crate) struct GapFill<'a> {
    /// Tokens available to history (pins and priming paid).
    pub(crate) avail: usize,
    /// Upper bound of one marker (already counted in the selection for each gap).
    pub(crate) marker: usize,
    /// Smallest and largest summary allowance.
    pub(crate) summary_tokens: (usize, usize),
    /// The per-unit costs.
    pub(crate) costs: &'a [UnitCost],
}

impl GapFill<'_> {
    /// The plan's items: selected units in order, each gap's summary or marker in its place.
    pub(crate) fn items(&self, sel: &Selection<'_>, store: &Store, counter: &mut TokenCounter, summaries: &mut Summaries) -> Result<Vec<Item>> {
        let units = store.units();
        let gaps = select::gaps(sel, self.costs.len());
        let mut left = self.avail.saturating_sub(sel.used());
        let mut gap_items: FxHashMap<usize, Item> = FxHashMap::default();
        let mut by_size: Vec<(usize, usize, usize)> = gaps
            .iter()
            .map(|&(a, b)| (a, b, store.tokens_between(units[a].start, units[b].end - 1)))
            .collect();
        by_size.sort_by(|x, y| y.2.cmp(&x.2).then(x.0.cmp(&y.0)));
        let (min, max) = self.summary_tokens;
        for (a, b, _) in by_size {
            let allowance = max.min((left + self.marker).saturating_sub(MESSAGE_OVERHEAD));
            let mut item = Item::Marker { first_unit: a, last_unit: b };
            let text = if allowance >= min { summaries.summary(store, counter, units[a].start, units[b].end - 1, allowance)? } else { None };
            if let Some(text) = text {
                let tokens = MESSAGE_OVERHEAD + counter.count(&text);
                if tokens <= left + self.marker {
                    left = (left + self.marker) - tokens;
                    item = Item::Summary { first_unit: a, last_unit: b, text, tokens };
                }
            }
            gap_items.insert(a, item);
        }
        let mut items = Vec::new();
        let mut next_gap = gaps.iter().peekable();
        for u in 0..self.costs.len() {
            if sel.contains(u) {
                items.push(Item::Unit(u));
            } else if next_gap.peek().is_some_and(|g| g.0 == u) {
                if let Some(it) = gap_items.remove(&u) {
                    items.push(it);
                }
                next_gap.next();
            }
        }
        Ok(items)
    }
}
