//! What stands in for each run of turns a plan leaves out: a summary (largest runs first, within what
//! is left of the budget) or a one-line `[N turns omitted]` marker. Summaries come from the
//! [`Summarizer`] and are cached by run and allowance.

use std::sync::Arc;

use lru::LruCache;
use rustc_hash::FxHashMap;

use crate::error::Result;
use crate::generated::{Done, Job, SummaryService};
use crate::plan::Item;
use crate::plan::select::{self, Selection, UnitCost};
use crate::store::Store;
use crate::summarizer::{ExtractiveSummarizer, Run, Summarizer};
use crate::tokens::{MESSAGE_OVERHEAD, TokenCounter};
use crate::turn::TurnId;
use crate::window::SummarySource;

/// Which summarizer wrote the latest summary of a run (for the window's report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Used {
    pub(crate) source: SummarySource,
    pub(crate) unsupported: usize,
    pub(crate) latency_ms: Option<u64>,
}

impl Used {
    const EXTRACTIVE: Used = Used { source: SummarySource::Extractive, unsupported: 0, latency_ms: None };
}

/// The summarizer and its cache of summaries, keyed by `(first, last, allowance)` under the
/// summarizer's id (the cache is cleared when the summarizer changes); with a [`SummaryService`],
/// the generated summary of a run when it is cached, else the extractive one at once while the
/// run is queued for generation (`crate::generated`).
pub(crate) struct Summaries {
    summarizer: Box<dyn Summarizer>,
    /// Unbounded to the `lru` crate, which would size its table for the whole capacity up front
    /// (140 kB an engine at the default 4,096: a short session never fills it); held to `cap` by
    /// [`Summaries::cache_put`].
    cache: LruCache<(TurnId, TurnId, usize), Option<String>>,
    cap: usize,
    generated: Option<Arc<SummaryService>>,
    /// Content key and shared text of each turn (by id), made once: a queued run only counts
    /// references to its turns' texts.
    turn_keys: Vec<u128>,
    turn_texts: Vec<Arc<str>>,
    /// What wrote the latest summary of each run `(first, last)`, with its text's hash.
    used: FxHashMap<(TurnId, TurnId), (u64, Used)>,
    /// Keys cached with a text since [`Summaries::seen`] last cleared them, oldest first, so a
    /// durable session finds what to store without walking the whole cache on every append. Held
    /// to `cap`: past it the list is dropped and `fresh_overflow` set (read every entry instead).
    fresh: Vec<(TurnId, TurnId, usize)>,
    fresh_overflow: bool,
}

impl std::fmt::Debug for Summaries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Summaries").field("summarizer", &self.summarizer.id()).field("cached", &self.cache.len()).finish()
    }
}

fn text_hash(text: &str) -> u64 {
    crate::dense::fnv::checksum(text.as_bytes())
}

/// The longest prefix of `text`'s lines that fits `allowance` tokens, or `None` when no line does.
fn fit_lines(counter: &mut TokenCounter, text: &str, allowance: usize) -> Option<String> {
    if counter.count(text) <= allowance {
        return Some(text.to_string());
    }
    let lines: Vec<&str> = text.lines().collect();
    (1..lines.len()).rev().map(|k| lines[..k].join("\n")).find(|t| counter.count(t) <= allowance)
}

impl Summaries {
    /// The extractive summarizer with a cache of `capacity` summaries, and generated summaries
    /// from `generated` when given.
    pub(crate) fn new(capacity: usize, generated: Option<Arc<SummaryService>>) -> Self {
        Summaries {
            summarizer: Box::new(ExtractiveSummarizer::default()),
            cache: LruCache::unbounded(),
            cap: capacity.max(1),
            generated,
            turn_keys: Vec::new(),
            turn_texts: Vec::new(),
            used: FxHashMap::default(),
            fresh: Vec::new(),
            fresh_overflow: false,
        }
    }

    /// Replaces the summarizer and clears the cache.
    pub(crate) fn set(&mut self, s: Box<dyn Summarizer>) {
        self.summarizer = s;
        self.cache.clear();
        self.fresh.clear();
        self.fresh_overflow = false;
    }

    /// The cached summaries, `((first turn, last turn, allowance), text)`, most recent first (runs
    /// whose summary did not fit are left out). Durable sessions save these.
    pub(crate) fn entries(&self) -> impl Iterator<Item = ((TurnId, TurnId, usize), &str)> + '_ {
        self.cache.iter().filter_map(|(k, v)| v.as_deref().map(|t| (*k, t)))
    }

    /// The keys cached with a text since [`Summaries::seen`], oldest first (some may have been
    /// evicted or cached twice since), and whether more than the cache holds were (then the list
    /// is only the latest, and [`Summaries::entries`] has them all).
    pub(crate) fn fresh(&self) -> (&[(TurnId, TurnId, usize)], bool) {
        (&self.fresh, self.fresh_overflow)
    }

    /// The cached text of `key`, without touching its recency.
    pub(crate) fn peek(&self, key: &(TurnId, TurnId, usize)) -> Option<&str> {
        self.cache.peek(key).and_then(|v| v.as_deref())
    }

    /// Forgets the first `n` fresh keys (read and stored by the caller), and the overflow when
    /// `all` (every entry was read).
    pub(crate) fn seen(&mut self, n: usize, all: bool) {
        self.fresh.drain(..n.min(self.fresh.len()));
        if all {
            self.fresh_overflow = false;
        }
    }

    /// Puts a summary saved by [`Summaries::entries`] back into the cache.
    pub(crate) fn insert(&mut self, key: (TurnId, TurnId, usize), text: String) {
        self.cache_put(key, Some(text));
    }

    /// Caches `value` as the most recent entry, evicting the least recent beyond `cap` (what a
    /// bounded `LruCache` does).
    fn cache_put(&mut self, key: (TurnId, TurnId, usize), value: Option<String>) {
        if value.is_some() {
            if self.fresh.len() >= self.cap {
                self.fresh.clear();
                self.fresh_overflow = true;
            }
            self.fresh.push(key);
        }
        self.cache.put(key, value);
        while self.cache.len() > self.cap {
            self.cache.pop_lru();
        }
    }

    /// Lets the summarizer analyze turn `id` once, at push time.
    pub(crate) fn observe(&mut self, store: &Store, counter: &mut TokenCounter, id: TurnId) {
        if let Some(stored) = store.turns().get(id..=id) {
            let run = Run { first: id, turns: stored, source_tokens: 0, index: None };
            if let Some(t) = run.turn(0) {
                self.summarizer.observe(t, counter);
            }
        }
    }

    /// What wrote the summary `text` of turns `first..=last` (extractive when unknown).
    pub(crate) fn used(&self, first: TurnId, last: TurnId, text: &str) -> Used {
        match self.used.get(&(first, last)) {
            Some(&(h, u)) if h == text_hash(text) => u,
            _ => Used::EXTRACTIVE,
        }
    }

    /// A summary of turns `first..=last` in at most `allowance` tokens, or `None` when none fits:
    /// the generated one when it is cached and fits, else the (cached) extractive one. Never waits.
    pub(crate) fn summary(&mut self, store: &Store, counter: &mut TokenCounter, first: TurnId, last: TurnId, allowance: usize) -> Result<Option<String>> {
        let last = last.min(store.len().saturating_sub(1));
        let Some(service) = self.generated.clone() else {
            return self.extractive(store, counter, first, last, allowance);
        };
        let keys = self.run_keys(store, &service, first, last);
        let Some(&key) = keys.last() else { return self.extractive(store, counter, first, last, allowance) };
        let source = match service.lookup(key) {
            Ok(Done::Stored(s)) if s.accepted => match fit_lines(counter, &s.text, allowance) {
                Some(text) => {
                    let used = Used { source: SummarySource::Generated, unsupported: s.unsupported as usize, latency_ms: Some(u64::from(s.latency_ms)) };
                    self.used.insert((first, last), (text_hash(&text), used));
                    return Ok(Some(text));
                }
                None => SummarySource::FallbackTooLong,
            },
            Ok(Done::Stored(_)) => SummarySource::FallbackRejected,
            Ok(Done::Failed) => SummarySource::FallbackFailed,
            Err(true) => SummarySource::FallbackPending,
            Err(false) => {
                let texts = self.turn_texts.get(first..=last).unwrap_or_default().to_vec();
                let tokens = store.turns().get(first..=last).unwrap_or_default().iter().map(|t| t.tokens()).collect();
                service.request(Job { keys, texts, tokens, max_tokens: allowance });
                SummarySource::FallbackPending
            }
        };
        let s = self.extractive(store, counter, first, last, allowance)?;
        if let Some(text) = &s {
            self.used.insert((first, last), (text_hash(text), Used { source, ..Used::EXTRACTIVE }));
        }
        Ok(s)
    }

    /// The cache keys of the runs `first..=k` for each `k` in `first..=last`.
    fn run_keys(&mut self, store: &Store, service: &SummaryService, first: TurnId, last: TurnId) -> Vec<u128> {
        while self.turn_keys.len() < store.len() {
            let Some(t) = store.get(self.turn_keys.len()) else { break };
            self.turn_keys.push(crate::dense::fnv::text_key("turn", t.text()));
            self.turn_texts.push(Arc::from(t.text()));
        }
        let mut k = service.key_base();
        let turn_keys = self.turn_keys.get(first..=last).unwrap_or_default();
        turn_keys
            .iter()
            .map(|&t| {
                k = SummaryService::chain(k, t);
                k
            })
            .collect()
    }

    /// The extractive summary of turns `first..=last`, cached by run and allowance.
    fn extractive(&mut self, store: &Store, counter: &mut TokenCounter, first: TurnId, last: TurnId, allowance: usize) -> Result<Option<String>> {
        let key = (first, last, allowance);
        if let Some(s) = self.cache.get(&key) {
            return Ok(s.clone());
        }
        let turns = store.turns().get(first..=last.min(store.len().saturating_sub(1))).unwrap_or_default();
        let source_tokens = store.tokens_between(first, last);
        let run = Run { first, turns, source_tokens, index: Some(store.index()) };
        let s = self.summarizer.summarize(&run, allowance, counter)?.map(|s| s.into_text()).filter(|s| !s.is_empty());
        self.cache_put(key, s.clone());
        Ok(s)
    }
}

/// The marker that stands in for a left-out run without a summary.
/// (How many tokens were left out is in the window's report; the model needs only the count.)
pub(crate) fn marker_text(turns: usize) -> String {
    crate::markers::omitted(turns)
}

/// Upper bound of a gap marker's tokens in a history of `n_turns`. A marker begins the content of
/// the turn after the gap, and the space joining them merges into the content's first token (the
/// recount tests check the totals; `assemble`'s fix-up would catch an exception). The one marker
/// that may stand alone pays its message framing from the selection's reserve.
pub(crate) fn marker_bound(counter: &mut TokenCounter, n_turns: usize) -> usize {
    let digits = n_turns.max(1).to_string().len() as u32;
    let nines = 10usize.checked_pow(digits).map_or(usize::MAX, |p| p - 1);
    let widest = counter.count(&crate::markers::omitted(nines));
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
    /// Items start at this unit: the gaps before it belong to a kept front (the caller's items).
    pub(crate) from_unit: usize,
}

impl GapFill<'_> {
    /// The plan's items: selected units in order, each gap's summary or marker in its place.
    pub(crate) fn items(&self, sel: &Selection<'_>, store: &Store, counter: &mut TokenCounter, summaries: &mut Summaries) -> Result<Vec<Item>> {
        let units = store.units();
        // A gap reaching into a kept front is left to it up to `from_unit`.
        let gaps: Vec<(usize, usize)> =
            select::gaps(sel, self.costs.len()).into_iter().map(|(a, b)| (a.max(self.from_unit), b)).filter(|g| g.0 <= g.1).collect();
        let mut left = self.avail.saturating_sub(sel.used());
        let mut gap_items: FxHashMap<usize, Item> = FxHashMap::default();
        let mut by_size: Vec<(usize, usize, usize)> = gaps.iter().map(|&(a, b)| (a, b, store.tokens_between(units[a].start, units[b].end - 1))).collect();
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
        // The selected units and the gaps merged in order (they are disjoint): the work is the
        // selection's and the gaps', not the history's length.
        let mut items = Vec::with_capacity(gaps.len() * 2 + 1);
        let mut shown = sel.selected().filter(|&u| u >= self.from_unit && u < self.costs.len()).peekable();
        let mut next_gap = gaps.iter().peekable();
        loop {
            match (shown.peek().copied(), next_gap.peek().map(|g| g.0)) {
                (Some(u), Some(g)) if u < g => {
                    items.push(Item::Unit(u));
                    shown.next();
                }
                (Some(u), None) => {
                    items.push(Item::Unit(u));
                    shown.next();
                }
                (_, Some(g)) => {
                    if let Some(it) = gap_items.remove(&g) {
                        items.push(it);
                    }
                    next_gap.next();
                }
                (None, None) => break,
            }
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache holds its capacity and no more, evicting the least recently used entry, as a
    /// bounded `LruCache` does (it is unbounded to the crate so its table grows with use).
    #[test]
    fn the_summary_cache_keeps_the_most_recent_entries_up_to_its_capacity() {
        let mut s = Summaries::new(2, None);
        s.insert((0, 1, 10), "a".into());
        s.insert((2, 3, 10), "b".into());
        assert!(s.cache.get(&(0, 1, 10)).is_some(), "touched: now the most recent");
        s.insert((4, 5, 10), "c".into());
        let mut keys: Vec<_> = s.entries().map(|(k, _)| k).collect();
        keys.sort_unstable();
        assert_eq!(keys, vec![(0, 1, 10), (4, 5, 10)]);
        s.insert((4, 5, 10), "c2".into());
        assert_eq!(s.entries().count(), 2);
    }

    /// The fresh keys are what was cached since they were last seen; past the capacity they
    /// overflow (only the latest kept) until every entry is read.
    #[test]
    fn fresh_summary_keys_list_what_was_cached_since_they_were_seen() {
        let mut s = Summaries::new(3, None);
        s.insert((0, 1, 10), "a".into());
        s.cache_put((2, 3, 10), None);
        s.insert((4, 5, 10), "b".into());
        assert_eq!(s.fresh(), (&[(0, 1, 10), (4, 5, 10)][..], false), "a run without a summary is not fresh");
        s.seen(1, false);
        s.insert((6, 7, 10), "c".into());
        assert_eq!(s.fresh(), (&[(4, 5, 10), (6, 7, 10)][..], false));
        assert_eq!(s.peek(&(4, 5, 10)), Some("b"));
        s.seen(2, false);
        for k in 0..5 {
            s.insert((10 + k, 10 + k, 10), format!("t{k}"));
        }
        let (keys, overflow) = s.fresh();
        assert!(overflow, "five keys in a cache of three");
        assert!(keys.len() <= 3);
        let n = keys.len();
        s.insert((20, 20, 10), "after".into());
        s.seen(n, true);
        assert_eq!(s.fresh(), (&[(20, 20, 10)][..], false), "a key cached after the read stays fresh");
        s.set(Box::new(ExtractiveSummarizer::default()));
        assert_eq!(s.fresh(), (&[][..], false));
    }
}
