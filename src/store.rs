//! The store: every pushed turn, as given, with what is computed once per turn — its rendered
//! messages, exact token counts, references — and the atomic units (a tool call with its results).
//!
//! The store only stores and finds; it never decides what goes into a window. It keeps the whole
//! history in one process; scaling out is sharding conversations across processes (each engine is
//! independent), and a store that outgrows a process maps onto Quickwit (lexical) and a vector
//! database (dense) behind the same push / get / score interface.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::markers::escape_lookalikes;
use crate::message::{Message, Origin, ToolCallOut};
use crate::refs::references;
use crate::tokens::TokenCounter;
use crate::turn::{Block, MISSING_RESULT_TEXT, PairProblem, Role, Turn, TurnId};

/// Shown for a call whose result has not been pushed yet when a window is assembled.
pub(crate) const PENDING_RESULT_TEXT: &str = crate::markers::PENDING_RESULT;

/// A turn and what is computed once for it.
#[derive(Debug)]
pub(crate) struct StoredTurn {
    pub(crate) turn: Turn,
    /// What the model reads of it, as one text (speaker prefix included), when that differs from
    /// its first message's content; `None` for the usual turn of one message without tool calls,
    /// whose text is that content (kept once, not twice: see [`StoredTurn::text`]).
    text: Option<Box<str>>,
    /// Its messages, rendered verbatim without a timestamp header (exactly as many as it has: a
    /// `Vec` would keep room for four).
    pub(crate) messages: Box<[Message]>,
    /// Exact tokens of `messages` (framing included). The counts are `u32`s (saturating, as the
    /// store's `turn_tokens`) and the lists boxed slices: the store holds one of these per turn,
    /// and a `Vec` of them keeps up to as much again in spare capacity.
    tokens: u32,
    /// Extra tokens when its first message carries the `[timestamp] ` header.
    header_extra: u32,
    /// How many distinct references it makes (speakers' names aside).
    pub(crate) ref_count: u32,
    /// Tokens of its tool output (0 when it has none).
    tool_output_tokens: u32,
    /// For each long tool-result message (by index in `messages`), its lines worth keeping from a
    /// cut, scored against the turn that made the call (`plan::lines::score_lines`): at push, or
    /// for a session's reopen when a window first cuts the output ([`Store::salient_lines_of`]).
    salient_lines: std::sync::OnceLock<SalientLines>,
}

/// For each long tool-result message (by index), its scored lines (`plan::lines::score_lines`).
type SalientLines = Box<[(u32, Box<[(u32, u16)]>)]>;

/// `n` as a `u32`, saturating.
fn small(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl StoredTurn {
    /// A stored turn; `text` is kept only when it is not `messages[0]`'s content.
    fn new(turn: Turn, text: String, messages: Vec<Message>) -> Self {
        let same = matches!(messages.as_slice(), [m] if m.content == text);
        let text = if same { None } else { Some(text.into_boxed_str()) };
        let messages = messages.into_iter().map(shrunk).collect::<Vec<_>>().into_boxed_slice();
        StoredTurn { turn, text, messages, tokens: 0, header_extra: 0, ref_count: 0, tool_output_tokens: 0, salient_lines: std::sync::OnceLock::new() }
    }

    /// Exact tokens of its messages as rendered verbatim (framing included).
    pub(crate) fn tokens(&self) -> usize {
        self.tokens as usize
    }

    /// Extra tokens when its first message carries the `[timestamp] ` header.
    pub(crate) fn header_extra(&self) -> usize {
        self.header_extra as usize
    }

    /// Tokens of its tool output (0 when it has none).
    pub(crate) fn tool_output_tokens(&self) -> usize {
        self.tool_output_tokens as usize
    }

    /// What the model reads of it, as one text (speaker prefix, tool calls and results included);
    /// indexed and summarized.
    pub(crate) fn text(&self) -> &str {
        match &self.text {
            Some(t) => t,
            None => self.messages.first().map_or("", |m| m.content.as_str()),
        }
    }

    /// Whether the turn holds tool results.
    pub(crate) fn has_results(&self) -> bool {
        self.turn.result_ids().next().is_some()
    }
}

/// The text of a turn of one text or tool-result block: its plain text ([`Turn::plain_text`]),
/// without a copy.
fn sole_text(turn: &Turn) -> Option<&str> {
    match turn.blocks() {
        [Block::Text { text }] => Some(text),
        [Block::ToolResult { content, .. }] => Some(content),
        _ => None,
    }
}

/// `m` without spare capacity in its strings (they are kept for the whole history).
fn shrunk(mut m: Message) -> Message {
    m.content.shrink_to_fit();
    m
}

/// The history, in push order, grouped into atomic units.
#[derive(Debug, Default)]
pub(crate) struct Store {
    turns: Vec<StoredTurn>,
    /// `token_prefix[i]`: tokens of turns `0..i` as rendered verbatim (one entry more than turns).
    token_prefix: Vec<usize>,
    units: Vec<Range<TurnId>>,
    /// Calls of the last unit still waiting for their results, in call order (the calls of every
    /// turn of the unit, not only its first).
    open_calls: Vec<String>,
    all_calls: HashSet<String>,
    /// The turns mentioning each reference, in order (its postings; their number is its document
    /// frequency). Scoring walks the query's postings instead of every turn.
    ref_turns: rustc_hash::FxHashMap<u64, Vec<TurnId>>,
    /// References that are speakers' names: shared by most turns, they carry no signal.
    speaker_refs: HashSet<u64>,
    /// Each distinct speaker: its name and the references of its name.
    speakers: Vec<(Arc<str>, Vec<u64>)>,
    /// Each distinct timestamp (a session, or a date), interned.
    dates: FxHashMap<Arc<str>, u32>,
    /// The interned timestamps, by number.
    date_names: Vec<Arc<str>>,
    /// The interned timestamp of each turn, by turn id.
    turn_dates: Vec<Option<u32>>,
    /// The tool's name of each call, by call id.
    call_names: FxHashMap<String, String>,
    /// Per-kind lists of turn ids, kept at push so a window never walks the whole history.
    index: TurnIndex,
    /// Each turn's tokens as rendered verbatim (a window's report copies them: 4 bytes a turn).
    turn_tokens: Vec<u32>,
    /// The unit holding each turn.
    unit_of: Vec<u32>,
    /// What the scorer reads of each turn, packed (a window reads it for thousands of candidates).
    facts: Vec<TurnFacts>,
    /// Rebuilding from a log (a session's reopen): tool outputs' lines are scored when first cut,
    /// not at push, and the summarizer analyzes a turn when first summarizing it.
    rebuilding: bool,
    /// While rebuilding: the references of each distinct one-block text seen, by a hash of the
    /// text, with the turn that had it (compared exactly on a hit). An agent history repeats its
    /// tool outputs (the same file read, the same test run: 35% of a synthetic 10,000-turn
    /// session's bytes), and a reopen scans every turn. Emptied when the rebuild ends.
    refs_memo: FxHashMap<u64, (TurnId, Box<[u64]>)>,
}

/// What the scorer reads of a turn, by id, in a compact array.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TurnFacts {
    pub(crate) role: Role,
    pub(crate) priority: f32,
    /// Its speaker, as an index into the store's speakers.
    pub(crate) speaker: Option<u32>,
}

/// Turn ids by kind, in order, kept at push: what a window would otherwise find by walking every
/// turn (whether the history is conversational, the latest request, the turns a summary of a long
/// run reads).
#[derive(Debug, Default)]
pub(crate) struct TurnIndex {
    /// User turns that are not tool results (requests).
    pub(crate) requests: Vec<TurnId>,
    /// How many assistant turns there are.
    pub(crate) assistant_turns: usize,
    /// Turns without tool results, in order.
    pub(crate) said: Vec<TurnId>,
    /// Turns with tool results, in order.
    pub(crate) outputs: Vec<TurnId>,
    /// The turns making each number of distinct references, in order.
    pub(crate) by_ref_count: std::collections::BTreeMap<u32, Vec<TurnId>>,
}

impl TurnIndex {
    fn push(&mut self, id: TurnId, role: Role, has_results: bool, ref_count: u32) {
        match role {
            Role::User if !has_results => self.requests.push(id),
            Role::Assistant => self.assistant_turns += 1,
            Role::User | Role::System | Role::Tool => {}
        }
        if has_results { &mut self.outputs } else { &mut self.said }.push(id);
        self.by_ref_count.entry(ref_count).or_default().push(id);
    }
}

/// The ids of `ids` (sorted) within `first..=last`.
pub(crate) fn within(ids: &[TurnId], first: TurnId, last: TurnId) -> &[TurnId] {
    let lo = ids.partition_point(|&i| i < first);
    let hi = ids.partition_point(|&i| i <= last);
    ids.get(lo..hi.max(lo)).unwrap_or_default()
}

/// The `[timestamp] ` header shown on the first turn of each date in a window.
pub(crate) fn header(ts: &str) -> String {
    // Not `format!`: a window makes one per dated turn it shows.
    let mut h = String::with_capacity(ts.len() + 3);
    h.push('[');
    h.push_str(ts);
    h.push_str("] ");
    h
}

/// Extra tokens `content` costs with `header` in front of it: `count(header + content) -
/// count(content)`, exactly, counting only the pieces before the tokenizer's splits of the two
/// texts meet (see [`TokenCounter::prefix_extra`]): a long content is not encoded again.
pub(crate) fn header_extra(counter: &mut TokenCounter, header: &str, content: &str) -> usize {
    counter.prefix_extra(header, content)
}

/// Renders a turn into messages (no header). User-visible text gets the `speaker: ` prefix; lines
/// that would imitate an engine marker are escaped.
pub(crate) fn render_turn(id: TurnId, turn: &Turn) -> (Vec<Message>, String) {
    let prefix = turn.speaker().map(|s| format!("{s}: ")).unwrap_or_default();
    let origin = Origin::Turn { turn: id };
    let mut texts: Vec<&str> = Vec::new();
    let mut calls = Vec::new();
    let mut results = Vec::new();
    for b in turn.blocks() {
        match b {
            Block::Text { text } => texts.push(text),
            Block::ToolCall { call_id, name, arguments } => {
                calls.push(ToolCallOut { id: call_id.clone(), name: name.clone(), arguments: arguments.to_string() })
            }
            Block::ToolResult { call_id, content, is_error } => {
                results.push(Message::tool_result(call_id.clone(), escape_lookalikes(content).into_owned(), *is_error, origin.clone()))
            }
        }
    }
    let body = texts.join("\n");
    let mut msgs = results;
    if !body.is_empty() || !calls.is_empty() {
        // Turn text never starts a line the way the engine's markers do (see `markers`).
        let said = format!("{prefix}{body}");
        let content = if body.is_empty() {
            String::new()
        } else if turn.role() == Role::System {
            format!("{}{}", crate::markers::SYSTEM_NOTE, escape_lookalikes(&said))
        } else {
            escape_lookalikes(&said).into_owned()
        };
        let role = match turn.role() {
            Role::Tool => Role::User,
            r => r,
        };
        let mut m = Message::text(role, content, origin);
        m.tool_calls = calls;
        msgs.push(m);
    }
    let mut text = String::new();
    for m in &msgs {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&m.content);
        for c in &m.tool_calls {
            text.push_str(&format!("\n{} {}", c.name, c.arguments));
        }
    }
    (msgs, text)
}

impl Store {
    /// Validates and stores a turn, counting it once. Returns its id.
    pub(crate) fn push(&mut self, turn: Turn, counter: &mut TokenCounter) -> Result<TurnId> {
        if turn.blocks().is_empty() {
            return Err(Error::InvalidTurn("a turn needs at least one content block".into()));
        }
        let mut turn = crate::turn::refuse_deep_arguments(turn, self.turns.len())?;
        let results: Vec<&str> = turn.result_ids().collect();
        self.check_pairs(&turn, &results)?;
        let id = self.turns.len();
        let (mut messages, text) = render_turn(id, &turn);
        // Each message counted once: a tool result's content count is also its output's tokens.
        let (mut tokens, mut tool_output_tokens) = (0, 0);
        for m in messages.iter_mut() {
            let (n, content) = m.counted_parts(counter);
            tokens += n;
            if m.tool_call_id.is_some() {
                tool_output_tokens += content;
            }
        }
        let header_extra = match (turn.timestamp(), messages.last()) {
            (Some(ts), Some(first)) => {
                let first = messages.iter().find(|m| m.tool_call_id.is_none()).unwrap_or(first);
                header_extra(counter, &header(ts), &first.content)
            }
            _ => 0,
        };
        let salient_lines = std::sync::OnceLock::new();
        if !self.rebuilding {
            let _ = salient_lines.set(self.salient_lines(&messages, id));
        }
        // References of what was said (not of the speaker label, which half the turns share).
        let speaker = turn.shared_speaker().map(|name| match self.speakers.iter().position(|(n, _)| n == name) {
            Some(i) => i as u32,
            None => {
                let refs = references(name);
                self.speaker_refs.extend(refs.iter().copied());
                self.speakers.push((Arc::clone(name), refs));
                (self.speakers.len() - 1) as u32
            }
        });
        let mut refs = self.turn_references(&turn, id);
        if !self.speaker_refs.is_empty() {
            refs.retain(|r| !self.speaker_refs.contains(r));
        }
        let ref_count = refs.len() as u32;
        for r in refs {
            self.ref_turns.entry(r).or_default().push(id);
        }
        // Units: results extend the open unit; anything else starts a new one and closes calls
        // still open with a synthetic error result (their results can no longer arrive in order).
        if results.is_empty() {
            self.close_open_calls(counter);
            self.units.push(id..id + 1);
        } else {
            // A result never opens a unit: `check_pairs` made sure a call of the open one waits.
            self.open_calls.retain(|c| !results.contains(&c.as_str()));
            if let Some(u) = self.units.last_mut() {
                u.end = id + 1;
            }
        }
        for c in turn.call_ids() {
            self.open_calls.push(c.to_string());
            self.all_calls.insert(c.to_string());
        }
        for b in turn.blocks() {
            if let Block::ToolCall { call_id, name, .. } = b {
                self.call_names.insert(call_id.clone(), name.clone());
            }
        }
        let date = turn.shared_timestamp().map(|t| match self.dates.get_key_value(&**t) {
            Some((_, &i)) => i,
            None => {
                let next = self.dates.len() as u32;
                self.dates.insert(Arc::clone(t), next);
                self.date_names.push(Arc::clone(t));
                next
            }
        });
        // The turn keeps the store's copy of its date and speaker, not one of its own.
        let shared_date = date.and_then(|d| self.date_names.get(d as usize)).cloned();
        let shared_speaker = speaker.and_then(|s| self.speakers.get(s as usize)).map(|(n, _)| Arc::clone(n));
        self.turn_dates.push(date);
        let before = self.token_prefix.last().copied().unwrap_or(0);
        if self.token_prefix.is_empty() {
            self.token_prefix.push(0);
        }
        self.token_prefix.push(before + tokens);
        self.index.push(id, turn.role(), !results.is_empty(), ref_count);
        self.turn_tokens.push(u32::try_from(tokens).unwrap_or(u32::MAX));
        self.facts.push(TurnFacts { role: turn.role(), priority: turn.priority(), speaker });
        self.unit_of.push(u32::try_from(self.units.len().saturating_sub(1)).unwrap_or(u32::MAX));
        turn.share(shared_date, shared_speaker);
        grow_by_quarter(&mut self.turns);
        self.turns.push(StoredTurn {
            tokens: small(tokens),
            header_extra: small(header_extra),
            ref_count,
            tool_output_tokens: small(tool_output_tokens),
            salient_lines,
            ..StoredTurn::new(turn, text, messages)
        });
        Ok(id)
    }

    /// The scored lines of each long tool result among `messages` (of turn `id`), for the
    /// query-aware cut: scored against the references of the turn of its unit, before it, that
    /// made the call. At push `id`'s unit is the last one (a result extends the open unit).
    fn salient_lines(&self, messages: &[Message], id: TurnId) -> SalientLines {
        let mut out = Vec::new();
        for (k, m) in messages.iter().enumerate() {
            let Some(cid) = m.tool_call_id.as_deref().filter(|_| m.content.len() >= crate::plan::lines::SCORED_MIN_BYTES) else { continue };
            let unit = match self.unit_of.get(id) {
                Some(&u) => self.units.get(u as usize).cloned().unwrap_or(0..0),
                None => self.units.last().cloned().unwrap_or(0..0),
            };
            let caller = (unit.start..id.min(unit.end)).rev().filter_map(|t| self.turns.get(t)).find(|t| t.turn.call_ids().any(|c| c == cid));
            let query = caller.map(|t| references(t.text())).unwrap_or_default();
            let lines = crate::plan::lines::score_lines(&m.content, &query);
            if !lines.is_empty() {
                out.push((small(k), lines.into_boxed_slice()));
            }
        }
        out.into_boxed_slice()
    }

    /// The scored lines of message `k` of turn `id` (empty when it is not a long tool result).
    pub(crate) fn salient_lines_of(&self, id: TurnId, k: usize) -> &[(u32, u16)] {
        let Some(t) = self.turns.get(id) else { return &[] };
        let all = t.salient_lines.get_or_init(|| self.salient_lines(&t.messages, id));
        all.iter().find(|(i, _)| *i as usize == k).map_or(&[][..], |(_, l)| l)
    }

    /// Starts or ends a rebuild from a log: what only windows read is analyzed on first use.
    pub(crate) fn set_rebuilding(&mut self, on: bool) {
        self.rebuilding = on;
        if !on {
            self.refs_memo = FxHashMap::default();
        }
    }

    /// The references of `turn` (to be turn `id`): of its plain text, read in place when it is one
    /// block of text; while rebuilding, a one-block text seen before takes the references found
    /// for it then (the same text, so the same references).
    fn turn_references(&mut self, turn: &Turn, id: TurnId) -> Vec<u64> {
        let Some(text) = sole_text(turn) else { return references(&turn.plain_text()) };
        if !self.rebuilding {
            return references(text);
        }
        let key = {
            let mut h = rustc_hash::FxHasher::default();
            std::hash::Hash::hash(text, &mut h);
            std::hash::Hasher::finish(&h)
        };
        if let Some((at, refs)) = self.refs_memo.get(&key)
            && self.turns.get(*at).and_then(|t| sole_text(&t.turn)) == Some(text)
        {
            return refs.to_vec();
        }
        let refs = references(text);
        self.refs_memo.insert(key, (id, refs.clone().into_boxed_slice()));
        refs
    }

    /// Whether a rebuild from a log is under way.
    pub(crate) fn rebuilding(&self) -> bool {
        self.rebuilding
    }

    /// Refuses a turn that could not be rendered with every call answered right after it (see
    /// the rules in `turn`'s module docs), naming the call.
    fn check_pairs(&self, turn: &Turn, results: &[&str]) -> Result<()> {
        let fail = |call_id: &str, problem| Err(Error::ToolPair { turn: self.turns.len(), call_id: call_id.to_string(), problem });
        let mut answered: Vec<&str> = Vec::with_capacity(results.len());
        for &r in results {
            if answered.contains(&r) || !self.open_calls.iter().any(|c| c == r) {
                return fail(r, PairProblem::ResultWithoutOpenCall);
            }
            answered.push(r);
        }
        let mut new_calls: Vec<&str> = Vec::new();
        for c in turn.call_ids() {
            if turn.role() != Role::Assistant {
                return fail(c, PairProblem::CallOutsideAssistant);
            }
            if self.all_calls.contains(c) || new_calls.contains(&c) {
                return fail(c, PairProblem::DuplicateCallId);
            }
            new_calls.push(c);
        }
        if let (false, Some(c)) = (results.is_empty(), new_calls.first()) {
            return fail(c, PairProblem::CallWithResults);
        }
        let more_than_results = turn.blocks().iter().any(|b| !matches!(b, Block::ToolResult { .. }));
        let left_open = self.open_calls.iter().find(|c| !answered.contains(&c.as_str()));
        if let (false, true, Some(c)) = (results.is_empty(), more_than_results, left_open) {
            return fail(c, PairProblem::CallLeftOpen);
        }
        Ok(())
    }

    /// Gives every open call a synthetic "no result" tool message, appended to the messages of the
    /// unit's first turn — the one that made the calls (a turn with results makes none). That turn
    /// has no tool output, so it is always rendered verbatim from these messages: no cached form
    /// of it can miss the results added here.
    fn close_open_calls(&mut self, counter: &mut TokenCounter) {
        if self.open_calls.is_empty() {
            return;
        }
        let Some(unit) = self.units.last() else { return };
        let order = std::mem::take(&mut self.open_calls);
        let first_id = unit.start;
        let mut added = 0;
        if let Some(first) = self.turns.get_mut(first_id) {
            let mut messages = std::mem::take(&mut first.messages).into_vec();
            for c in order {
                let mut m = Message::tool_result(c, MISSING_RESULT_TEXT.to_string(), true, Origin::Turn { turn: first_id });
                let n = m.counted(counter);
                first.tokens = first.tokens.saturating_add(small(n));
                if let Some(t) = self.turn_tokens.get_mut(first_id) {
                    *t = first.tokens;
                }
                messages.push(m);
                added += n;
            }
            first.messages = messages.into_boxed_slice();
        }
        // The unit is the history's last: the running totals from its first turn on move.
        for total in self.token_prefix.iter_mut().skip(first_id + 1) {
            *total += added;
        }
    }

    /// Synthetic "pending" results for calls still open, to render after the last unit (uncounted).
    pub(crate) fn pending_results(&self) -> Vec<Message> {
        let Some(unit) = self.units.last() else { return Vec::new() };
        self.open_calls
            .iter()
            .map(|c| Message::tool_result(c.to_string(), PENDING_RESULT_TEXT.to_string(), false, Origin::Turn { turn: unit.end - 1 }))
            .collect()
    }

    /// Inverse document frequency of a reference, `ln(1 + N / df)`; 0 for speakers' names.
    pub(crate) fn ref_idf(&self, r: u64) -> f32 {
        if self.speaker_refs.contains(&r) {
            return 0.0;
        }
        let df = self.ref_turns.get(&r).map_or(0, Vec::len) as f32;
        (1.0 + self.turns.len() as f32 / (df + 1.0)).ln()
    }

    /// The turns mentioning reference `r`, in order.
    pub(crate) fn ref_postings(&self, r: u64) -> &[TurnId] {
        self.ref_turns.get(&r).map_or(&[], Vec::as_slice)
    }

    /// The speakers (indices) whose name is among the references `refs` (sorted).
    pub(crate) fn speakers_named(&self, refs: &[u64]) -> Vec<u32> {
        (0..self.speakers.len() as u32).filter(|&i| self.speakers[i as usize].1.iter().any(|r| refs.binary_search(r).is_ok())).collect()
    }

    /// The interned timestamp (session or date) of each turn, by turn id.
    pub(crate) fn dates(&self) -> &[Option<u32>] {
        &self.turn_dates
    }

    /// The interned timestamp of turn `id`.
    pub(crate) fn date(&self, id: TurnId) -> Option<u32> {
        self.turn_dates.get(id).copied().flatten()
    }

    /// The tool's name of call `call_id`, when a call with that id was pushed.
    pub(crate) fn call_name(&self, call_id: &str) -> Option<&str> {
        self.call_names.get(call_id).map(String::as_str)
    }

    /// Tokens of turns `first..=last` as rendered verbatim (0 for an empty or unknown range).
    pub(crate) fn tokens_between(&self, first: TurnId, last: TurnId) -> usize {
        match (self.token_prefix.get(first), self.token_prefix.get(last + 1)) {
            (Some(a), Some(b)) if b >= a => b - a,
            _ => 0,
        }
    }

    /// The number of turns.
    pub(crate) fn len(&self) -> usize {
        self.turns.len()
    }

    /// Turn `id`.
    pub(crate) fn get(&self, id: TurnId) -> Option<&StoredTurn> {
        self.turns.get(id)
    }

    /// All turns, in push order.
    pub(crate) fn turns(&self) -> &[StoredTurn] {
        &self.turns
    }

    /// Each turn's tokens as rendered verbatim, by id.
    pub(crate) fn turn_tokens(&self) -> &[u32] {
        &self.turn_tokens
    }

    /// What the scorer reads of turn `id`.
    pub(crate) fn facts(&self, id: TurnId) -> Option<TurnFacts> {
        self.facts.get(id).copied()
    }

    /// The unit holding turn `id`.
    pub(crate) fn unit_of(&self, id: TurnId) -> Option<usize> {
        self.unit_of.get(id).map(|&u| u as usize)
    }

    /// Turn ids by kind (requests, turns with and without tool results, by reference count).
    pub(crate) fn index(&self) -> &TurnIndex {
        &self.index
    }

    /// The atomic units (a turn, or a tool call with its results), in order.
    pub(crate) fn units(&self) -> &[Range<TurnId>] {
        &self.units
    }
}

impl crate::lexical::DocTexts for Store {
    fn doc_text(&self, id: TurnId) -> &str {
        self.get(id).map_or("", StoredTurn::text)
    }
}

/// Makes room for one more element in `v`, growing it by a quarter (at least 16) rather than the
/// doubling `push` does: for the vectors that grow with every turn (the stored turns, 160 bytes a
/// turn; the lexical index's pending postings), doubling left up to half of them spare (issue 9:
/// ~1.1 MB of LoCoMo's ten engines for the turns alone, heaptrack). The copies stay amortized O(1)
/// per push (each element is moved about four times on average).
pub(crate) fn grow_by_quarter<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact((v.capacity() / 4).max(16));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::Encoding;

    /// The header's price from the pieces before the splits meet equals the price from the whole
    /// content (naive oracle), on texts with lines of every kind (code, prose, indentation,
    /// unicode, blank lines), of every length, starting with any of them, behind date headers and
    /// gap markers (with and without a trailing space).
    #[test]
    fn header_extra_from_a_prefix_equals_the_whole_recount() {
        let lines = [
            "fn main() {",
            "    let x = 1;",
            "",
            "Caroline went to the lake.",
            "  indented",
            "\t tabbed",
            "über straße 漢字 🎉",
            "12345 67",
            "a::b::c src/lib.rs",
            "}",
            "- item",
            "> quoted",
            "    ",
            "end.",
        ];
        for enc in [Encoding::O200kBase, Encoding::Cl100kBase] {
            let mut c = TokenCounter::new(enc, 1024);
            let mut seed = 7u64;
            for round in 0..300 {
                let mut text = String::new();
                let len = [3000, 40, 1, 300][round % 4];
                while text.len() < len {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    text.push_str(lines[(seed >> 33) as usize % lines.len()]);
                    text.push('\n');
                }
                if round % 3 == 0 {
                    text.pop();
                }
                for h in ["[1:56 pm on 8 May, 2023] ", "[2024-01-01] ", "[3 turns omitted] [2024-01-01] ", "[12 turns omitted]", " ", "\n", "x"] {
                    let whole = c.count(&format!("{h}{text}")).saturating_sub(c.count(&text));
                    assert_eq!(header_extra(&mut c, h, &text), whole, "{enc:?} {h:?}");
                }
            }
        }
    }
}
