//! The store: every pushed turn, as given, with what is computed once per turn — its rendered
//! messages, exact token counts, references — and the atomic units (a tool call with its results).
//!
//! The store only stores and finds; it never decides what goes into a window. It keeps the whole
//! history in one process; scaling out is sharding conversations across processes (each engine is
//! independent), and a store that outgrows a process maps onto Quickwit (lexical) and a vector
//! database (dense) behind the same push / get / score interface.

use std::cell::OnceCell;
use std::collections::HashSet;
use std::ops::Range;

use crate::error::{Error, Result};
use crate::refs::references;
use crate::tokens::TokenCounter;
use crate::turn::{Block, PairProblem, Role, Turn, TurnId, MISSING_RESULT_TEXT};

/// Shown for a call whose result has not been pushed yet when a window is assembled.
pub(crate) const PENDING_RESULT_TEXT: &str = "[tool result pending]";
use crate::window::{Message, Origin, ToolCallOut};

/// A sentence (or line) of a turn with what the extractive summarizer needs.
#[derive(Debug, Clone)]
pub(crate) struct Sentence {
    /// Byte range in the turn's `text`.
    pub(crate) range: Range<usize>,
    /// Exact tokens of the sentence.
    pub(crate) tokens: usize,
    /// Information measure (references, numbers, decisions), per the summarizer.
    pub(crate) info: f32,
}

/// A turn and what is computed once for it.
#[derive(Debug)]
pub(crate) struct StoredTurn {
    pub(crate) turn: Turn,
    /// What the model reads of it, as one text (speaker prefix included); indexed and summarized.
    pub(crate) text: String,
    /// Its messages, rendered verbatim without a timestamp header.
    pub(crate) messages: Vec<Message>,
    /// Exact tokens of `messages` (framing included).
    pub(crate) tokens: usize,
    /// Extra tokens when its first message carries the `[timestamp] ` header.
    pub(crate) header_extra: usize,
    /// Its speaker, as an index into the store's speakers.
    pub(crate) speaker: Option<u32>,
    /// How many distinct references it makes (speakers' names aside).
    pub(crate) ref_count: u32,
    /// Tokens of its tool output (0 when it has none).
    pub(crate) tool_output_tokens: usize,
    /// Sentences, computed on first summarization.
    pub(crate) sentences: OnceCell<Vec<Sentence>>,
    /// Salient terms (paths, identifiers, long numbers, quoted strings), computed on first use.
    pub(crate) salient: OnceCell<Vec<String>>,
}

impl StoredTurn {
    /// Whether the turn holds tool results.
    pub(crate) fn has_results(&self) -> bool {
        self.turn.result_ids().next().is_some()
    }
}

/// The history, in push order, grouped into atomic units.
#[derive(Debug, Default)]
pub(crate) struct Store {
    turns: Vec<StoredTurn>,
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
    speakers: Vec<(String, Vec<u64>)>,
}

/// The `[timestamp] ` header shown on the first turn of each date in a window.
pub(crate) fn header(ts: &str) -> String {
    format!("[{ts}] ")
}

/// Renders a turn into messages (no header). User-visible text gets the `speaker: ` prefix.
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
            Block::ToolResult { call_id, content, is_error } => results.push(Message {
                role: Role::Tool,
                content: content.clone(),
                tool_calls: Vec::new(),
                tool_call_id: Some(call_id.clone()),
                is_error: *is_error,
                origin: origin.clone(),
                omitted: None,
            }),
        }
    }
    let body = texts.join("\n");
    let mut msgs = results;
    if !body.is_empty() || !calls.is_empty() {
        let content = if body.is_empty() {
            String::new()
        } else if turn.role() == Role::System {
            format!("[system note] {prefix}{body}")
        } else {
            format!("{prefix}{body}")
        };
        let role = match turn.role() {
            Role::Tool => Role::User,
            r => r,
        };
        msgs.push(Message { role, content, tool_calls: calls, tool_call_id: None, is_error: false, origin, omitted: None });
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
        let results: Vec<&str> = turn.result_ids().collect();
        self.check_pairs(&turn, &results)?;
        let id = self.turns.len();
        let (messages, text) = render_turn(id, &turn);
        let tokens: usize = messages.iter().map(|m| m.tokens(counter)).sum();
        let header_extra = match (turn.timestamp(), messages.last()) {
            (Some(ts), Some(first)) => {
                let first = messages.iter().find(|m| m.tool_call_id.is_none()).unwrap_or(first);
                let with = format!("{}{}", header(ts), first.content);
                counter.count(&with).saturating_sub(counter.count(&first.content))
            }
            _ => 0,
        };
        let tool_output_tokens = messages.iter().filter(|m| m.tool_call_id.is_some()).map(|m| counter.count(&m.content)).sum();
        // References of what was said (not of the speaker label, which half the turns share).
        let speaker = turn.speaker().map(|name| match self.speakers.iter().position(|(n, _)| n == name) {
            Some(i) => i as u32,
            None => {
                let refs = references(name);
                self.speaker_refs.extend(refs.iter().copied());
                self.speakers.push((name.to_string(), refs));
                (self.speakers.len() - 1) as u32
            }
        });
        let mut refs = references(&turn.plain_text());
        refs.retain(|r| !self.speaker_refs.contains(r));
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
            self.open_calls.retain(|c| !results.contains(&c.as_str()));
            if let Some(u) = self.units.last_mut() {
                u.end = id + 1;
            }
        }
        for c in turn.call_ids() {
            self.open_calls.push(c.to_string());
            self.all_calls.insert(c.to_string());
        }
        self.turns.push(StoredTurn {
            turn,
            text,
            messages,
            tokens,
            header_extra,
            speaker,
            ref_count,
            tool_output_tokens,
            sentences: OnceCell::new(),
            salient: OnceCell::new(),
        });
        Ok(id)
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
        if let Some(first) = self.turns.get_mut(first_id) {
            for c in order {
                let m = Message {
                    role: Role::Tool,
                    content: MISSING_RESULT_TEXT.to_string(),
                    tool_calls: Vec::new(),
                    tool_call_id: Some(c),
                    is_error: true,
                    origin: Origin::Turn { turn: first_id },
                    omitted: None,
                };
                let n = m.tokens(counter);
                first.tokens += n;
                first.messages.push(m);
            }
        }
    }

    /// Synthetic "pending" results for calls still open, to render after the last unit.
    pub(crate) fn pending_results(&self) -> Vec<Message> {
        let Some(unit) = self.units.last() else { return Vec::new() };
        self.open_calls
            .iter()
            .map(|c| Message {
                role: Role::Tool,
                content: PENDING_RESULT_TEXT.to_string(),
                tool_calls: Vec::new(),
                tool_call_id: Some(c.to_string()),
                is_error: false,
                origin: Origin::Turn { turn: unit.end - 1 },
                omitted: None,
            })
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
        (0..self.speakers.len() as u32)
            .filter(|&i| self.speakers[i as usize].1.iter().any(|r| refs.binary_search(r).is_ok()))
            .collect()
    }


    pub(crate) fn len(&self) -> usize {
        self.turns.len()
    }

    pub(crate) fn get(&self, id: TurnId) -> Option<&StoredTurn> {
        self.turns.get(id)
    }

    pub(crate) fn turns(&self) -> &[StoredTurn] {
        &self.turns
    }

    pub(crate) fn units(&self) -> &[Range<TurnId>] {
        &self.units
    }

}
