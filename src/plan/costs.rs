//! Forms and unit costs: how each turn is shown under a policy (verbatim, long tool output head +
//! tail, or cleared to a placeholder), its exact tokens in that form, and the cost of each unit the
//! selector chooses among. Forms are cached per turn; unit costs until the next push.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::message::Message;
use crate::plan::select::UnitCost;
use crate::policy::Policy;
use crate::store::{Store, header_extra};
use crate::tokens::TokenCounter;
use crate::turn::TurnId;

/// How a turn is shown in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Form {
    /// As pushed.
    Verbatim,
    /// Tool outputs over this many tokens shown head + tail.
    Truncated(usize),
    /// Tool outputs replaced by a placeholder.
    Cleared,
    /// A turn without tool output whose text messages over this many tokens are shown head +
    /// tail: the text of an agent's latest unit under a plan's cut ([`crate::plan::Plan::cuts`]).
    Cut(usize),
}

/// What unit costs depend on besides the history and the clear boundary: the tool output caps
/// (recent, old).
type CostKey = (usize, usize);

/// Unit costs computed for a history of `turns` turns under `key`, tool results before
/// `clear_before` counted as old.
#[derive(Debug)]
struct CachedCosts {
    key: CostKey,
    clear_before: TurnId,
    turns: usize,
    costs: Arc<Vec<UnitCost>>,
}

/// The forms' caches: each turn's messages in a non-verbatim form (with the number of messages the
/// turn had, since closing its calls can add synthetic results), and the per-unit costs.
#[derive(Debug, Default)]
pub(crate) struct Forms {
    messages: FxHashMap<(TurnId, Form), (Vec<Message>, usize, usize)>,
    unit_costs: Option<CachedCosts>,
    /// The turns holding tool results among the first `results_seen` turns, in order.
    results: Vec<TurnId>,
    results_seen: usize,
    /// Tokens the space after a gap marker (and the date header when `dated`) adds in front of
    /// turn `id`'s first message that is not a tool result, by `(id, dated)`: that message is the
    /// same in every form but `Form::Cut` (priced apart), and the marker itself is priced alone
    /// (see [`Forms::marker_extra`]), so one entry serves every gap before the turn.
    marker_extras: FxHashMap<(TurnId, bool), isize>,
    /// Tokens of the marker of a gap of `n` turns, by `n`.
    marker_tokens: FxHashMap<usize, usize>,
}

/// Entries of [`Forms::marker_extras`] past which it is emptied (a few MB at most).
const MARKER_EXTRAS_MAX: usize = 1 << 16;

/// Turn id before which tool results are cleared (keep the latest `keep` result turns). Walks
/// back from the newest turn only as far as the result turn before the kept ones;
/// [`Forms::clear_boundary`] answers from an index instead.
pub(crate) fn clear_boundary(store: &Store, policy: &Policy) -> TurnId {
    let Some(keep) = policy.keep_tool_results else { return 0 };
    if keep == 0 {
        // Keep none: every result is before the boundary.
        return store.len();
    }
    let mut latest = store.turns().iter().enumerate().rev().filter(|(_, t)| t.has_results()).map(|(i, _)| i);
    match (latest.nth(keep - 1), latest.next()) {
        (Some(i), Some(_)) => i,
        _ => 0,
    }
}

/// The form turn `id` takes under `policy`, given where clearing starts, with its tool outputs (or,
/// in a turn without any, its text) cut to at most `cut` tokens when given (a plan's tighter cut
/// of one unit, [`crate::plan::Plan::cuts`]); a cleared output stays cleared.
pub(crate) fn form_cut(store: &Store, id: TurnId, policy: &Policy, clear_before: TurnId, cut: Option<usize>) -> Form {
    let t = match (store.get(id), cut) {
        (Some(t), _) if t.tool_output_tokens() > 0 => t,
        // Pre-checked by bytes (a token is at least one byte), as below.
        (Some(t), Some(c)) if t.messages.iter().any(|m| m.tool_call_id.is_none() && m.content.len() > c) => return Form::Cut(c),
        _ => return Form::Verbatim,
    };
    let max = if id < clear_before {
        match policy.old_tool_output_max_tokens {
            0 => return Form::Cleared,
            old => old,
        }
    } else {
        policy.tool_output_max_tokens
    };
    let max = match (max, cut) {
        (0, Some(c)) => c,
        (m, Some(c)) => m.min(c),
        (m, None) => m,
    };
    // Cheap pre-check by bytes (a token is at least one byte); the exact check is made when cutting.
    if max > 0 && t.messages.iter().any(|m| m.tool_call_id.is_some() && m.content.len() > max) {
        return Form::Truncated(max);
    }
    Form::Verbatim
}

impl Forms {
    /// [`header_extra`] of `prefix` (a gap marker of `gap` turns, then a space and the date header
    /// when `dated`) in front of `content`, the first message of turn `id` that is not a tool
    /// result. The marker ends with `]`, and the tokenizer's pre-split always ends a piece there
    /// when a space follows (`]` can neither start a word piece nor take the space into its
    /// punctuation piece), so the price is exactly the marker's own tokens plus what the rest of
    /// the prefix adds to the content, which depends on the turn alone and is cached per turn: one
    /// entry serves every gap (a query window's gaps differ from one query to the next). A prefix
    /// not of that shape is counted as a whole.
    pub(crate) fn marker_extra(&mut self, counter: &mut TokenCounter, (id, gap, dated): (TurnId, usize, bool), prefix: &str, content: &str) -> usize {
        let Some((marker, rest)) = crate::markers::omitted_len(prefix, gap).map(|n| prefix.split_at(n)).filter(|(_, r)| r.starts_with(' ')) else {
            return header_extra(counter, prefix, content);
        };
        if self.marker_extras.len() >= MARKER_EXTRAS_MAX {
            self.marker_extras.clear();
        }
        // Signed: a space before the content usually merges into its first token for free, and
        // can make it one token shorter (`" Caroline"` is one token, `"Caroline"` two).
        let joint = match self.marker_extras.get(&(id, dated)) {
            Some(&n) => n,
            None => {
                let n = counter.prefix_delta(rest, content);
                self.marker_extras.insert((id, dated), n);
                n
            }
        };
        let own = match self.marker_tokens.get(&gap) {
            Some(&n) => n,
            None => {
                if self.marker_tokens.len() >= MARKER_EXTRAS_MAX {
                    self.marker_tokens.clear();
                }
                let n = counter.count(marker);
                self.marker_tokens.insert(gap, n);
                n
            }
        };
        own.saturating_add_signed(joint)
    }

    /// [`clear_boundary`] from an index of the result turns, extended by the turns pushed since
    /// the last call (the history only grows).
    pub(crate) fn clear_boundary(&mut self, store: &Store, policy: &Policy) -> TurnId {
        let Some(keep) = policy.keep_tool_results else { return 0 };
        if keep == 0 {
            return store.len();
        }
        if self.results_seen > store.len() {
            self.results.clear();
            self.results_seen = 0;
        }
        let from = self.results_seen;
        self.results.extend(store.turns().get(from..).unwrap_or_default().iter().enumerate().filter(|(_, t)| t.has_results()).map(|(i, _)| from + i));
        self.results_seen = store.len();
        if self.results.len() <= keep { 0 } else { self.results[self.results.len() - keep] }
    }

    /// Messages (each with its exact tokens) and exact total tokens of turn `id` in `form`.
    pub(crate) fn messages(&mut self, store: &Store, counter: &mut TokenCounter, id: TurnId, form: Form) -> (Vec<Message>, usize) {
        let Some(t) = store.get(id) else { return (Vec::new(), 0) };
        if form == Form::Verbatim {
            return (t.messages.to_vec(), t.tokens());
        }
        if let Some((msgs, total, _)) = self.messages.get(&(id, form)).filter(|(_, _, n)| *n == t.messages.len()) {
            return (msgs.clone(), *total);
        }
        let mut msgs = t.messages.to_vec();
        for (k, m) in msgs.iter_mut().enumerate().filter(|(_, m)| m.tool_call_id.is_some()) {
            let tokens = counter.count(&m.content);
            match form {
                Form::Truncated(max) if tokens > max => {
                    let lines = store.salient_lines_of(id, k);
                    m.content = crate::plan::lines::salient_cut(counter, &m.content, max, lines);
                }
                Form::Cleared => {
                    let cid = m.tool_call_id.clone().unwrap_or_default();
                    let name = store.call_name(&cid).unwrap_or("tool");
                    m.content = crate::markers::tool_output_cleared(name, &cid, tokens, id);
                }
                Form::Truncated(_) | Form::Cut(_) | Form::Verbatim => {}
            }
        }
        if let Form::Cut(max) = form {
            for m in msgs.iter_mut().filter(|m| m.tool_call_id.is_none()) {
                if counter.count(&m.content) > max {
                    m.content = head_tail(counter, &m.content, max);
                }
            }
        }
        let total: usize = msgs.iter_mut().map(|m| m.counted(counter)).sum();
        self.messages.insert((id, form), (msgs.clone(), total, t.messages.len()));
        (msgs, total)
    }

    /// Per-unit costs under `policy` with clearing from `clear_before`. Cached; after pushes only
    /// the units from the previous last one on are computed again (the last unit can grow, its
    /// calls can be closed, and its pending results are priced), and when the clear boundary has
    /// moved (it moves with every new tool result) only the units between the old and the new
    /// boundary, whose results changed from recent to old: a unit's cost depends on the boundary
    /// only through which of its turns lie before it. So a call costs what was pushed since the
    /// last one, not the whole history.
    pub(crate) fn unit_costs(&mut self, store: &Store, counter: &mut TokenCounter, policy: &Policy, clear_before: TurnId) -> Arc<Vec<UnitCost>> {
        let key = (policy.tool_output_max_tokens, policy.old_tool_output_max_tokens);
        let n_units = store.units().len();
        let mut cached = match self.unit_costs.take() {
            Some(c) if c.key == key && c.turns <= store.len() => c,
            _ => CachedCosts { key, clear_before, turns: 0, costs: Arc::new(Vec::new()) },
        };
        if cached.clear_before != clear_before && !cached.costs.is_empty() {
            let (lo, hi) = (cached.clear_before.min(clear_before), cached.clear_before.max(clear_before));
            // The units holding a turn in lo..hi (units are consecutive ranges in turn order).
            let first = store.units().partition_point(|r| r.end <= lo);
            let last = store.units().partition_point(|r| r.start < hi).min(cached.costs.len());
            let costs = Arc::make_mut(&mut cached.costs);
            for (u, c) in costs.iter_mut().enumerate().take(last).skip(first) {
                *c = self.unit_cost(store, counter, policy, clear_before, u);
            }
        }
        cached.clear_before = clear_before;
        if cached.turns != store.len() || cached.costs.len() != n_units {
            let from = cached.costs.len().saturating_sub(1).min(n_units);
            let costs = Arc::make_mut(&mut cached.costs);
            costs.truncate(from);
            for u in from..n_units {
                let c = self.unit_cost(store, counter, policy, clear_before, u);
                costs.push(c);
            }
            cached.turns = store.len();
        }
        debug_assert!(
            cached.costs.iter().enumerate().all(|(u, c)| *c == self.unit_cost(store, counter, policy, clear_before, u)),
            "cached unit costs differ from a recount"
        );
        let out = Arc::clone(&cached.costs);
        self.unit_costs = Some(cached);
        out
    }

    fn unit_cost(&mut self, store: &Store, counter: &mut TokenCounter, policy: &Policy, clear_before: TurnId, u: usize) -> UnitCost {
        self.unit_cost_cut(store, counter, policy, clear_before, u, None)
    }

    /// The cost of unit `u` with its tool outputs cut to at most `cut` tokens when given (see
    /// [`form_cut`]); not cached here (the forms it renders are).
    pub(crate) fn unit_cost_cut(
        &mut self,
        store: &Store,
        counter: &mut TokenCounter,
        policy: &Policy,
        clear_before: TurnId,
        u: usize,
        cut: Option<usize>,
    ) -> UnitCost {
        let r = store.units().get(u).cloned().unwrap_or(0..0);
        let mut cost = 0;
        let mut prev_ts: Option<u32> = None;
        let mut first_header = 0;
        for id in r.clone() {
            let form = form_cut(store, id, policy, clear_before, cut);
            cost += if form == Form::Verbatim { store.get(id).map_or(0, |t| t.tokens()) } else { self.messages(store, counter, id, form).1 };
            let ts = store.date(id);
            let extra = store.get(id).map_or(0, |t| t.header_extra());
            if id == r.start {
                first_header = extra;
            } else if ts.is_some() && ts != prev_ts {
                cost += extra;
            }
            prev_ts = ts;
        }
        if r.end == store.len() {
            cost += store.pending_results().iter_mut().map(|m| m.counted(counter)).sum::<usize>();
        }
        UnitCost { cost, first_header, first_ts: store.date(r.start), last_ts: store.date(r.end.saturating_sub(1)), turns: r.len() }
    }
}

/// Head and tail of `text` within about `max` tokens, with a visible "… N tokens omitted …" line.
/// Only the edges are tokenized (see [`edge_tokens`]): a 100 kB tool output costs what its head and
/// tail cost, and its total comes from the counter's cache (it was counted at push).
pub(crate) fn head_tail(counter: &mut TokenCounter, text: &str, max: usize) -> String {
    let total = counter.count(text);
    if total <= max {
        return text.to_string();
    }
    let (head_n, tail_n) = head_tail_split(max);
    let edges = Edges::new(counter, text, total, head_n, tail_n);
    head_tail_of(counter, &edges, total, max)
}

/// Tokens of the head and of the tail that [`head_tail`] keeps within `max`.
pub(crate) fn head_tail_split(max: usize) -> (usize, usize) {
    let budget = max.saturating_sub(16);
    let head_n = budget * 3 / 5;
    (head_n, budget - head_n)
}

/// [`head_tail`] of a text of `total` tokens from its `edges` (read for at least
/// [`head_tail_split`]`(max)` tokens).
pub(crate) fn head_tail_of(counter: &mut TokenCounter, edges: &Edges, total: usize, max: usize) -> String {
    let (head_n, tail_n) = head_tail_split(max);
    let omitted = total - head_n - tail_n;
    format!("{}\n{}\n{}", edges.head(counter, head_n), crate::markers::tokens_omitted(omitted), edges.tail(counter, tail_n))
}

/// The first and the last tokens of a text, exactly as the whole text's encoding has them, read
/// once and cut to any length up to the one they were read for.
pub(crate) struct Edges {
    head: Vec<u32>,
    tail: Vec<u32>,
}

impl Edges {
    /// Reads at least `head_n` tokens from the start of `text` (of `total` tokens) and `tail_n`
    /// from its end.
    pub(crate) fn new(counter: &TokenCounter, text: &str, total: usize, head_n: usize, tail_n: usize) -> Self {
        Edges { head: edge_tokens(counter, text, total, head_n, Edge::Head), tail: edge_tokens(counter, text, total, tail_n, Edge::Tail) }
    }

    /// The first `n` tokens, decoded: a prefix of the text. Token boundaries can split a UTF-8
    /// character: then it widens forward until it decodes.
    pub(crate) fn head(&self, counter: &TokenCounter, n: usize) -> String {
        (0..4).find_map(|k| counter.decode(self.head.get(..(n + k).min(self.head.len()))?)).unwrap_or_default()
    }

    /// The last `n` tokens, decoded: a suffix of the text (widened backward to decode).
    pub(crate) fn tail(&self, counter: &TokenCounter, n: usize) -> String {
        (0..4)
            .find_map(|k| {
                let from = self.tail.len().checked_sub(n + k)?;
                counter.decode(&self.tail[from..])
            })
            .unwrap_or_default()
    }
}

/// Which end of a text [`edge_tokens`] reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Edge {
    Head,
    Tail,
}

/// Tokens the decode may widen by, plus a margin.
const EDGE_SLACK: usize = 8;

/// The first (`Head`) or last (`Tail`) tokens of `text`, at least `n` + [`EDGE_SLACK`] of them
/// when it has that many, exactly as the whole text's encoding has them. Only a piece of the
/// text is encoded, cut at a line start where the pre-tokenizer always splits
/// ([`crate::tokens::splits_at_line_start`]), so the pieces on each side, and their tokens, are
/// those of the whole text. Without such a cut, the whole text is encoded.
fn edge_tokens(counter: &TokenCounter, text: &str, total: usize, n: usize, edge: Edge) -> Vec<u32> {
    let b = text.as_bytes();
    let splits = |c: usize| crate::tokens::splits_at_line_start(text, c);
    // Half as many bytes again as the text's own bytes per token would need, so a second read is rare.
    let mut want = (n + EDGE_SLACK).saturating_mul(text.len()) * 3 / (2 * total.max(1)) + 64;
    while want < b.len() {
        let cut = match edge {
            Edge::Head => (want..b.len()).find(|&c| splits(c)),
            Edge::Tail => (1..=b.len() - want).rev().find(|&c| splits(c)),
        };
        let Some(cut) = cut else { break };
        let toks = match edge {
            Edge::Head => counter.encode(&text[..cut]),
            Edge::Tail => counter.encode(&text[cut..]),
        };
        if toks.len() >= n + EDGE_SLACK {
            return toks;
        }
        want = want.saturating_mul(2);
    }
    counter.encode(text)
}

#[cfg(all(test, feature = "replay"))]
mod tests {
    use super::*;
    use crate::tokens::Encoding;

    /// The old way: encode everything, cut, widen until it decodes.
    fn naive(counter: &TokenCounter, text: &str, max: usize) -> String {
        let toks = counter.encode(text);
        if toks.len() <= max {
            return text.to_string();
        }
        let budget = max.saturating_sub(16);
        let (head_n, tail_n) = (budget * 3 / 5, budget - budget * 3 / 5);
        let omitted = toks.len() - head_n - tail_n;
        let decode = |mut s: usize, mut e: usize| -> String {
            for _ in 0..4 {
                if let Some(t) = counter.decode(&toks[s..e]) {
                    return t;
                }
                if e < toks.len() { e += 1 } else { s = s.saturating_sub(1) }
            }
            String::new()
        };
        format!("{}\n{}\n{}", decode(0, head_n), crate::markers::tokens_omitted(omitted), decode(toks.len() - tail_n, toks.len()))
    }

    /// A gap marker's price, the marker's own tokens plus the turn's cached joint, is what counting
    /// marker, space, date header and content together gives: every gap size (1 turn, 2–9, 10 to
    /// 100,000) before contents that start with letters, capitals, digits, spaces, newlines,
    /// punctuation, brackets, slashes, apostrophes, emoji and CJK, dated or not.
    #[test]
    fn marker_prices_split_after_the_marker() {
        let mut counter = TokenCounter::new(Encoding::O200kBase, 1024);
        let mut forms = Forms::default();
        let starts = [
            "Caroline: hi",
            "hello",
            "Hello there",
            "42 apples",
            " leading space",
            "  two spaces",
            "\nnewline first",
            "\n\nx",
            "(paren)",
            "]bracket",
            "[bracket",
            "/path/to",
            "'s quoted",
            "’curly",
            "😀 emoji",
            "日本語のテキスト",
            "-dash",
            "...",
            "\tTab",
            "x",
            "A",
            "é accent",
            "$5",
            "#tag",
            "://",
            "] ",
            " ",
            "a]b",
        ];
        for (id, start) in starts.iter().enumerate() {
            let content = start.replace("\\n", "\n").replace("\\t", "\t");
            for dated in [false, true] {
                for gap in [1, 2, 9, 10, 99, 100, 1000, 12_345, 100_000] {
                    let date = if dated { crate::store::header("2023-05-08 13:56") } else { String::new() };
                    let prefix = format!("{} {date}", crate::markers::omitted(gap));
                    let want = header_extra(&mut counter, &prefix, &content);
                    assert_eq!(forms.marker_extra(&mut counter, (id, gap, dated), &prefix, &content), want, "{content:?} gap {gap} dated {dated}");
                }
            }
        }
    }

    /// Encoding only the edges gives what encoding the whole output gives (naive oracle), on tool
    /// outputs of every shape: lines, one long line, whitespace runs, multi-byte characters.
    #[test]
    fn edges_match_the_whole_encoding() {
        let mut counter = TokenCounter::new(Encoding::O200kBase, 1024);
        let mut rng = crate::replay::synth::Rng::new(7);
        let words =
            ["fn", "let", "x", "Error:", "  ", "\t", "été", "日本語", "src/plan/costs.rs", "42", "0x1f", "!!", "\n", "\n\n", "    ", "a.b", "Foo", "_bar"];
        for case in 0..60 {
            let len = 200 + rng.below(6000);
            let mut text = String::new();
            while text.len() < len {
                text.push_str(words[rng.below(words.len())]);
                if case % 3 != 0 && rng.below(4) == 0 {
                    text.push(' ');
                }
                if case % 5 != 0 && rng.below(9) == 0 {
                    text.push('\n');
                }
            }
            for max in [32, 80, 600] {
                assert_eq!(head_tail(&mut counter, &text, max), naive(&counter, &text, max), "case {case}, max {max}");
            }
        }
    }
}
