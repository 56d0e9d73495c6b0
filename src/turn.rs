//! The turn model: roles, content blocks, provenance, and the one `normalize` step that keeps
//! tool calls and their results paired.
//!
//! # What `Engine::push` accepts
//!
//! The tool-call unit (an assistant turn with calls, then the turns holding their results) is an
//! invariant of the store: every sequence `push` accepts renders, in every window and in both the
//! OpenAI and the Anthropic shape, with each call answered right after it. There is no third
//! outcome — a turn is either stored so that this holds, or refused with [`crate::Error::ToolPair`]
//! naming the call id and the [`PairProblem`], and nothing of it is stored. `push` accepts:
//!
//! - tool calls only in assistant turns, each call id used once in the whole history;
//! - tool results only for calls still open in the latest unit, each answered once, and never in a
//!   turn that also makes calls (no API message does both);
//! - a turn holding results and also text only when its results answer every call still open (its
//!   text follows the results, so no call may remain unanswered before it);
//! - a call whose result never comes: the next turn that is not a result closes it with a
//!   synthetic error result ([`MISSING_RESULT_TEXT`]; it is rendered with the calling turn, which
//!   is never truncated or cleared), and a window assembled while it is open shows
//!   a `[tool result pending]` result. Its result can no longer be pushed after that.
//!
//! Transcripts that break these rules (results late, out of order, duplicated or without a call;
//! calls in user turns; duplicate call ids) go through [`normalize`] first, whose output `push`
//! always accepts.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Position of a turn in an engine's history (0-based, in push order).
pub type TurnId = usize;

/// Who a turn is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A system message pushed as history. The engine never promotes turn content to a pin (it is
    /// rendered as user-visible `[system note]` text); a host that wants a transcript's system
    /// prompt pinned calls `Engine::pin` itself, as ctxbench's loaders do.
    System,
    /// The user (or, in a two-person chat, the first speaker).
    User,
    /// The model (or the second speaker).
    Assistant,
    /// A tool's output.
    Tool,
}

impl Role {
    /// Lower-case name, as in the OpenAI chat format.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// Where a turn's content came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Provenance {
    /// Given by the host application or the person using it.
    #[default]
    Host,
    /// Produced by a model.
    Model,
    /// Produced by a tool.
    Tool,
}

/// One piece of a turn's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// A call of a tool by the model.
    ToolCall {
        /// The id that joins the call to its result.
        call_id: String,
        /// The tool's name.
        name: String,
        /// The arguments, as JSON.
        arguments: serde_json::Value,
    },
    /// A tool's result.
    ToolResult {
        /// The id of the call this answers.
        call_id: String,
        /// The output.
        content: String,
        /// Whether the tool reported an error.
        is_error: bool,
    },
}

impl Block {
    /// A text block.
    pub fn text(text: impl Into<String>) -> Self {
        Block::Text { text: text.into() }
    }
}

/// One turn of a conversation or agent session.
///
/// Kept compact, since an engine holds every turn it was given: the timestamp and the speaker are
/// shared strings (the store makes every turn of a date or a speaker point at one copy), the tags
/// and the source id boxed (96 bytes a turn instead of 128). Serialized as plain strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    role: Role,
    blocks: Vec<Block>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timestamp: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    speaker: Option<Arc<str>>,
    #[serde(default)]
    provenance: Provenance,
    #[serde(default, skip_serializing_if = "no_tags")]
    tags: Box<[String]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source_id: Option<Box<str>>,
    #[serde(default)]
    priority: f32,
}

/// Whether a turn has no tags (they are then not serialized).
fn no_tags(tags: &[String]) -> bool {
    tags.is_empty()
}

impl Turn {
    /// A turn with the given role and blocks. Provenance defaults by role: user and system turns are
    /// host-given, assistant turns model-produced, tool turns tool-produced.
    pub fn new(role: Role, blocks: Vec<Block>) -> Self {
        let provenance = match role {
            Role::System | Role::User => Provenance::Host,
            Role::Assistant => Provenance::Model,
            Role::Tool => Provenance::Tool,
        };
        Turn { role, blocks, timestamp: None, speaker: None, provenance, tags: Box::default(), source_id: None, priority: 0.0 }
    }

    /// A user turn holding one text block.
    pub fn user(text: impl Into<String>) -> Self {
        Turn::new(Role::User, vec![Block::text(text)])
    }

    /// An assistant turn holding one text block.
    pub fn assistant(text: impl Into<String>) -> Self {
        Turn::new(Role::Assistant, vec![Block::text(text)])
    }

    /// An assistant turn that calls one tool (with optional text before the call).
    pub fn tool_call(text: Option<String>, call_id: impl Into<String>, name: impl Into<String>, arguments: serde_json::Value) -> Self {
        let mut blocks = Vec::new();
        if let Some(t) = text.filter(|t| !t.is_empty()) {
            blocks.push(Block::Text { text: t });
        }
        blocks.push(Block::ToolCall { call_id: call_id.into(), name: name.into(), arguments });
        Turn::new(Role::Assistant, blocks)
    }

    /// A tool turn holding the result of one call.
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>, is_error: bool) -> Self {
        Turn::new(Role::Tool, vec![Block::ToolResult { call_id: call_id.into(), content: content.into(), is_error }])
    }

    /// Sets the timestamp (free text, shown as the transcript gives it).
    pub fn with_timestamp(mut self, ts: impl Into<String>) -> Self {
        self.timestamp = Some(Arc::from(ts.into()));
        self
    }

    /// Sets the speaker's name, shown as `name: text`.
    pub fn with_speaker(mut self, name: impl Into<String>) -> Self {
        self.speaker = Some(Arc::from(name.into()));
        self
    }

    /// Sets the provenance.
    pub fn with_provenance(mut self, p: Provenance) -> Self {
        self.provenance = p;
        self
    }

    /// Adds a tag.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        let mut tags = std::mem::take(&mut self.tags).into_vec();
        tags.push(tag.into());
        self.tags = tags.into_boxed_slice();
        self
    }

    /// Sets the id the turn had in its source transcript (e.g. LoCoMo's `D1:3`).
    pub fn with_source_id(mut self, id: impl Into<String>) -> Self {
        self.source_id = Some(id.into().into_boxed_str());
        self
    }

    /// Sets a host-given priority in `[0, 1]` that the scorer adds (weighted) to the turn's score.
    /// Values outside the range are clamped; NaN becomes 0.
    pub fn with_priority(mut self, p: f32) -> Self {
        self.priority = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        self
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// The content blocks.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }
    /// The timestamp, if any.
    pub fn timestamp(&self) -> Option<&str> {
        self.timestamp.as_deref()
    }
    /// The speaker's name, if any.
    pub fn speaker(&self) -> Option<&str> {
        self.speaker.as_deref()
    }
    /// The provenance.
    pub fn provenance(&self) -> Provenance {
        self.provenance
    }
    /// The tags.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
    /// The id in the source transcript, if any.
    pub fn source_id(&self) -> Option<&str> {
        self.source_id.as_deref()
    }
    /// The host-given priority in `[0, 1]`.
    pub fn priority(&self) -> f32 {
        self.priority
    }

    /// The timestamp as the shared string it is kept in.
    pub(crate) fn shared_timestamp(&self) -> Option<&Arc<str>> {
        self.timestamp.as_ref()
    }

    /// The speaker's name as the shared string it is kept in.
    pub(crate) fn shared_speaker(&self) -> Option<&Arc<str>> {
        self.speaker.as_ref()
    }

    /// Makes the turn point at `timestamp` and `speaker` (equal to its own: the store's shared
    /// copies), and drops spare room in its blocks, since the store keeps it for the whole history.
    pub(crate) fn share(&mut self, timestamp: Option<Arc<str>>, speaker: Option<Arc<str>>) {
        debug_assert!(timestamp.as_deref() == self.timestamp.as_deref() && speaker.as_deref() == self.speaker.as_deref());
        self.timestamp = timestamp;
        self.speaker = speaker;
        self.blocks.shrink_to_fit();
    }

    /// Ids of the tool calls this turn makes.
    pub fn call_ids(&self) -> impl Iterator<Item = &str> {
        self.blocks.iter().filter_map(|b| match b {
            Block::ToolCall { call_id, .. } => Some(call_id.as_str()),
            _ => None,
        })
    }

    /// Ids of the calls this turn holds results for.
    pub fn result_ids(&self) -> impl Iterator<Item = &str> {
        self.blocks.iter().filter_map(|b| match b {
            Block::ToolResult { call_id, .. } => Some(call_id.as_str()),
            _ => None,
        })
    }

    /// All the turn's searchable text: text blocks, tool names and arguments, tool outputs.
    pub fn plain_text(&self) -> String {
        let mut out = String::new();
        for b in &self.blocks {
            if !out.is_empty() {
                out.push('\n');
            }
            match b {
                Block::Text { text } => out.push_str(text),
                Block::ToolCall { name, arguments, .. } => {
                    out.push_str(name);
                    out.push(' ');
                    out.push_str(&arguments.to_string());
                }
                Block::ToolResult { content, .. } => out.push_str(content),
            }
        }
        out
    }

    fn into_blocks(self) -> Vec<Block> {
        self.blocks
    }

    #[cfg(feature = "replay")]
    pub(crate) fn blocks_mut(&mut self) -> &mut Vec<Block> {
        &mut self.blocks
    }
}

/// Why `push` refused a turn (see the module docs for what it accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PairProblem {
    /// A tool call in a turn that is not the assistant's.
    #[error("tool calls are only allowed in assistant turns")]
    CallOutsideAssistant,
    /// The call id was already used, earlier or in the same turn.
    #[error("the call id was already used")]
    DuplicateCallId,
    /// A result for a call that is not open in the latest unit (unknown, already answered or
    /// closed, or answered twice in the turn).
    #[error("the result does not answer a call still open in the latest unit (run `normalize` on transcripts)")]
    ResultWithoutOpenCall,
    /// A turn with results and text leaves this earlier call unanswered before its text.
    #[error("the call is still unanswered when this turn's text follows its results")]
    CallLeftOpen,
    /// A turn holding tool results also makes this call (no API message does both).
    #[error("a turn holding tool results cannot also make tool calls")]
    CallWithResults,
}

/// What [`normalize`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NormalizeReport {
    /// Results whose call was never seen: turned into text so nothing is lost.
    pub orphan_results: usize,
    /// Calls that never got a result: a synthetic error result was added right after them.
    pub missing_results: usize,
    /// Results that arrived after an unrelated turn: moved up to follow their call.
    pub moved_results: usize,
    /// Turns with no content blocks, removed.
    pub empty_turns: usize,
    /// Calls outside assistant turns or reusing an id already used: turned into text (their
    /// results then have no call and become text too).
    pub invalid_calls: usize,
}

/// The text of the synthetic result added for a call that never got one.
pub const MISSING_RESULT_TEXT: &str = "[no result was recorded for this tool call]";

/// Enforces the tool-pair invariant on a transcript, as codex-rs's context manager does:
/// every call is followed (after its own turn, before any unrelated turn) by its result;
/// a result without a call is turned into plain text (kept, counted); a call without a result
/// gets a synthetic error result; a call `push` would refuse (outside an assistant turn, or with an
/// id already used) is turned into text; empty turns are removed. `Engine::push` accepts every
/// turn of the output. Returns the normalized turns and a report.
pub fn normalize(turns: Vec<Turn>) -> (Vec<Turn>, NormalizeReport) {
    let mut report = NormalizeReport::default();
    let turns = calls_as_text_where_invalid(turns, &mut report);
    let (staged, results) = take_results(turns, &mut report);
    let out = reemit(staged, results, &mut report);
    (out, report)
}

/// Results by call id (each as a turn of its own, with where it was staged), taken out of their
/// turns; the other turns in order. Results whose call never appears, and second results for a
/// call, become text.
fn take_results(turns: Vec<Turn>, report: &mut NormalizeReport) -> (Vec<Turn>, HashMap<String, (Turn, usize)>) {
    let all_call_ids: HashSet<String> = turns.iter().flat_map(|t| t.call_ids().map(str::to_string)).collect();
    let mut results: HashMap<String, (Turn, usize)> = HashMap::new();
    let mut staged: Vec<Turn> = Vec::with_capacity(turns.len());
    for t in turns {
        if t.blocks.is_empty() {
            report.empty_turns += 1;
            continue;
        }
        if t.result_ids().next().is_none() {
            staged.push(t);
            continue;
        }
        // Split a multi-result turn into its results; turn orphans into text.
        let mut rest = Vec::new();
        for b in t.blocks.iter() {
            match b {
                Block::ToolResult { call_id, content, is_error } if all_call_ids.contains(call_id) => {
                    if results.contains_key(call_id) {
                        // A second result for the same call: keep it as text.
                        report.orphan_results += 1;
                        rest.push(Block::text(format!("[extra tool result for call {call_id}] {content}")));
                    } else {
                        let mut r = t.clone();
                        r.blocks = vec![Block::ToolResult { call_id: call_id.clone(), content: content.clone(), is_error: *is_error }];
                        r.role = Role::Tool;
                        results.insert(call_id.clone(), (r, staged.len()));
                    }
                }
                Block::ToolResult { call_id, content, .. } => {
                    report.orphan_results += 1;
                    rest.push(Block::text(format!("[tool result for unknown call {call_id}] {content}")));
                }
                other => rest.push(other.clone()),
            }
        }
        if !rest.is_empty() {
            let mut r = t.clone();
            r.blocks = rest;
            if r.role == Role::Tool {
                r.role = Role::User;
            }
            staged.push(r);
        }
    }
    (staged, results)
}

/// Each call turn followed by its results in call order (a missing one gets the synthetic error
/// result); results left over become text.
fn reemit(staged: Vec<Turn>, mut results: HashMap<String, (Turn, usize)>, report: &mut NormalizeReport) -> Vec<Turn> {
    let mut out = Vec::with_capacity(staged.len() + results.len());
    let mut seen_positions: HashMap<String, usize> = HashMap::new();
    for (i, t) in staged.iter().enumerate() {
        for id in t.call_ids() {
            seen_positions.entry(id.to_string()).or_insert(i);
        }
    }
    for t in staged {
        let ids: Vec<String> = t.call_ids().map(str::to_string).collect();
        out.push(t);
        for id in ids {
            match results.remove(&id) {
                Some((r, staged_at)) => {
                    if seen_positions.get(&id).is_some_and(|&p| staged_at > p + 1) {
                        report.moved_results += 1;
                    }
                    out.push(r)
                }
                None => {
                    report.missing_results += 1;
                    out.push(Turn::tool_result(id, MISSING_RESULT_TEXT, true));
                }
            }
        }
    }
    // Whatever is left in `results` had a call id that appeared only in a duplicate position; keep as text.
    let mut left: Vec<(String, (Turn, usize))> = results.into_iter().collect();
    left.sort_by(|a, b| a.0.cmp(&b.0));
    for (id, (r, _)) in left {
        report.orphan_results += 1;
        let text = r.plain_text();
        out.push(Turn::user(format!("[tool result for unknown call {id}] {text}")));
    }
    out
}

/// Turns the calls `push` would refuse into text: calls outside assistant turns, and calls whose id
/// was already used (earlier, or in the same turn).
fn calls_as_text_where_invalid(mut turns: Vec<Turn>, report: &mut NormalizeReport) -> Vec<Turn> {
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for t in &mut turns {
        let assistant = t.role == Role::Assistant;
        for b in &mut t.blocks {
            let Block::ToolCall { call_id, name, arguments } = b else { continue };
            if assistant && seen.insert(call_id.clone()) {
                continue;
            }
            report.invalid_calls += 1;
            *b = Block::text(format!("[tool call {call_id} not made by the assistant or with a reused id] {name} {arguments}"));
        }
    }
    turns
}

/// Deepest nesting of arrays and objects accepted in a tool call's arguments. Rendering and
/// dropping JSON recurse once per level; far deeper values (possible through the library API,
/// where no parser limits them) would overflow the stack.
pub const MAX_ARGUMENT_DEPTH: usize = 128;

/// The first tool call of `turn` whose arguments nest deeper than [`MAX_ARGUMENT_DEPTH`]
/// (measured without recursion).
fn too_deep_call(turn: &Turn) -> Option<&str> {
    turn.blocks().iter().find_map(|b| match b {
        Block::ToolCall { call_id, arguments, .. } if json_depth_exceeds(arguments, MAX_ARGUMENT_DEPTH) => Some(call_id.as_str()),
        _ => None,
    })
}

fn json_depth_exceeds(v: &serde_json::Value, limit: usize) -> bool {
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match v {
            serde_json::Value::Array(a) => Box::new(a.iter()),
            serde_json::Value::Object(o) => Box::new(o.values()),
            _ => continue,
        };
        if d + 1 > limit {
            return true;
        }
        stack.extend(children.map(|c| (c, d + 1)));
    }
    false
}

/// `turn` back, or `Error::InvalidTurn` naming the call whose arguments nest deeper than
/// [`MAX_ARGUMENT_DEPTH`] (the turn is then dropped without recursion). `id` is the id the turn
/// would have had.
pub(crate) fn refuse_deep_arguments(turn: Turn, id: usize) -> crate::error::Result<Turn> {
    let Some(call_id) = too_deep_call(&turn) else { return Ok(turn) };
    let e = crate::error::Error::InvalidTurn(format!("turn {id}: the arguments of tool call `{call_id}` are nested deeper than {MAX_ARGUMENT_DEPTH} levels"));
    dismantle(turn);
    Err(e)
}

/// Drops a refused turn without recursing into its JSON (a deep value's own drop would).
fn dismantle(turn: Turn) {
    let mut stack: Vec<serde_json::Value> = turn
        .into_blocks()
        .into_iter()
        .filter_map(|b| match b {
            Block::ToolCall { arguments, .. } => Some(arguments),
            _ => None,
        })
        .collect();
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Array(a) => stack.extend(a),
            serde_json::Value::Object(o) => stack.extend(o.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roles(ts: &[Turn]) -> Vec<(Role, Vec<String>, Vec<String>)> {
        ts.iter().map(|t| (t.role(), t.call_ids().map(str::to_string).collect(), t.result_ids().map(str::to_string).collect())).collect()
    }

    #[test]
    fn clean_transcripts_are_unchanged() {
        let ts = vec![Turn::user("go"), Turn::tool_call(None, "a", "bash", json!({})), Turn::tool_result("a", "ok", false), Turn::assistant("done")];
        let (out, report) = normalize(ts.clone());
        assert_eq!(out, ts);
        assert_eq!(report, NormalizeReport::default());
    }

    #[test]
    fn orphan_result_becomes_text_and_is_counted() {
        let (out, report) = normalize(vec![Turn::user("hi"), Turn::tool_result("ghost", "secret output", false)]);
        assert_eq!(report.orphan_results, 1);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].role(), Role::User);
        assert_eq!(out[1].plain_text(), "[tool result for unknown call ghost] secret output");
        assert_eq!(out[1].result_ids().count(), 0);
    }

    #[test]
    fn call_without_result_gets_a_synthetic_error_result() {
        let (out, report) = normalize(vec![Turn::tool_call(None, "a", "bash", json!({})), Turn::user("next")]);
        assert_eq!(report.missing_results, 1);
        assert_eq!(roles(&out), vec![(Role::Assistant, vec!["a".into()], vec![]), (Role::Tool, vec![], vec!["a".into()]), (Role::User, vec![], vec![]),]);
        assert!(matches!(&out[1].blocks()[0], Block::ToolResult { content, is_error: true, .. } if content == MISSING_RESULT_TEXT));
    }

    #[test]
    fn late_results_move_up_and_multi_result_turns_split() {
        let call = Turn::new(
            Role::Assistant,
            vec![
                Block::ToolCall { call_id: "a".into(), name: "x".into(), arguments: json!({}) },
                Block::ToolCall { call_id: "b".into(), name: "y".into(), arguments: json!({}) },
            ],
        );
        let both = Turn::new(
            Role::User,
            vec![
                Block::ToolResult { call_id: "b".into(), content: "B".into(), is_error: false },
                Block::ToolResult { call_id: "a".into(), content: "A".into(), is_error: false },
                Block::text("and a note"),
            ],
        );
        let (out, report) = normalize(vec![call, Turn::assistant("thinking"), both]);
        assert_eq!(report.moved_results, 2);
        // Results follow the call in call order; the note stays as a user turn after.
        assert_eq!(
            roles(&out),
            vec![
                (Role::Assistant, vec!["a".into(), "b".into()], vec![]),
                (Role::Tool, vec![], vec!["a".into()]),
                (Role::Tool, vec![], vec!["b".into()]),
                (Role::Assistant, vec![], vec![]),
                (Role::User, vec![], vec![]),
            ]
        );
        assert_eq!(out[4].plain_text(), "and a note");
    }

    #[test]
    fn duplicate_results_and_empty_turns() {
        let (out, report) = normalize(vec![
            Turn::tool_call(None, "a", "bash", json!({})),
            Turn::tool_result("a", "first", false),
            Turn::tool_result("a", "again", false),
            Turn::new(Role::User, vec![]),
        ]);
        assert_eq!((report.orphan_results, report.empty_turns), (1, 1));
        assert_eq!(out.len(), 3);
        assert!(out[2].plain_text().contains("again"));
    }

    #[test]
    fn calls_push_would_refuse_become_text() {
        let (out, report) = normalize(vec![
            Turn::new(Role::User, vec![Block::ToolCall { call_id: "u".into(), name: "x".into(), arguments: json!({}) }]),
            Turn::tool_call(None, "a", "bash", json!({})),
            Turn::tool_call(None, "a", "bash", json!({"again": 1})),
            Turn::tool_result("a", "ok", false),
            Turn::tool_result("u", "from a user call", false),
        ]);
        assert_eq!(report.invalid_calls, 2);
        assert_eq!(report.orphan_results, 1);
        let calls: Vec<String> = out.iter().flat_map(|t| t.call_ids().map(str::to_string).collect::<Vec<_>>()).collect();
        assert_eq!(calls, vec!["a".to_string()]);
        assert_eq!(roles(&out)[2], (Role::Tool, vec![], vec!["a".into()]));
    }
}
