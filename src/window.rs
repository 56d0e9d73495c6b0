//! The window: ordered messages, exact token total, an itemised report; rendering to the OpenAI chat
//! and Anthropic Messages request shapes; and a from-scratch recount of a rendered request.

use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::tokens::{count_reference, Encoding, TokenCounter, MESSAGE_OVERHEAD, REPLY_PRIMING, TOOL_CALL_OVERHEAD};
use crate::turn::{Role, TurnId};

/// A tool call as it appears in a rendered assistant message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCallOut {
    pub(crate) id: String,
    pub(crate) name: String,
    /// JSON text of the arguments.
    pub(crate) arguments: String,
}

/// Where a message in the window comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// The pinned layers.
    Pins,
    /// A turn of the history (verbatim, truncated or cleared: see the report).
    Turn {
        /// The turn.
        turn: TurnId,
    },
    /// A generated summary standing in for turns `first..=last`.
    Summary {
        /// First turn summarized.
        first: TurnId,
        /// Last turn summarized.
        last: TurnId,
    },
    /// A one-line marker for turns `first..=last` that were left out without a summary.
    Marker {
        /// First turn left out.
        first: TurnId,
        /// Last turn left out.
        last: TurnId,
    },
}

/// One message of the window, in ctxwin's neutral form (rendered to a provider's shape on demand).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub(crate) role: Role,
    pub(crate) content: String,
    pub(crate) tool_calls: Vec<ToolCallOut>,
    /// For tool results: the call answered.
    pub(crate) tool_call_id: Option<String>,
    pub(crate) is_error: bool,
    pub(crate) origin: Origin,
    /// Turns `first..=last` left out just before this turn, marked by the `[N turns omitted]` that
    /// begins its content (a marker rides on the next turn rather than costing a message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) omitted: Option<(TurnId, TurnId)>,
}

impl Message {
    pub(crate) fn text(role: Role, content: String, origin: Origin) -> Self {
        Message { role, content, tool_calls: Vec::new(), tool_call_id: None, is_error: false, origin, omitted: None }
    }
    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// The text content.
    pub fn content(&self) -> &str {
        &self.content
    }
    /// Where it comes from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }
    /// The left-out turns `(first, last)` whose marker begins this message's content, if any (a
    /// stand-alone marker message has [`Origin::Marker`] instead).
    pub fn omitted(&self) -> Option<(TurnId, TurnId)> {
        self.omitted
    }
    /// Ids of the tool calls it makes.
    pub fn tool_call_ids(&self) -> impl Iterator<Item = &str> {
        self.tool_calls.iter().map(|c| c.id.as_str())
    }
    /// The call it answers, for tool results.
    pub fn tool_call_id(&self) -> Option<&str> {
        self.tool_call_id.as_deref()
    }

    /// Exact tokens of this message as billed in the OpenAI chat format (see [`crate::tokens`]).
    pub(crate) fn tokens(&self, counter: &mut TokenCounter) -> usize {
        let mut n = MESSAGE_OVERHEAD + counter.count(&self.content);
        for c in &self.tool_calls {
            n += TOOL_CALL_OVERHEAD + counter.count(&c.id) + counter.count(&c.name) + counter.count(&c.arguments);
        }
        if let Some(id) = &self.tool_call_id {
            n += counter.count(id);
        }
        n
    }
}

/// What happened to a turn in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "fate", rename_all = "snake_case")]
pub enum Fate {
    /// In the window as it is.
    Kept,
    /// In the window with long tool output shown head + tail.
    Truncated,
    /// In the window with tool output replaced by a placeholder (recallable with `search`).
    Cleared,
    /// Left out; summary number `summary` (index into [`Window::summaries`]) stands in for it.
    Summarized {
        /// Index of the summary.
        summary: usize,
    },
    /// Left out; a marker (or, for peer baselines, nothing) stands in for it.
    Dropped,
}

/// Score components of a turn (each in `[0, 1]` before weighting) and the weighted total.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct ScoreParts {
    /// BM25 relative to the best turn.
    pub bm25: f32,
    /// Dense similarity (fused), when embeddings are on.
    pub dense: f32,
    /// Shared references with the query.
    pub references: f32,
    /// Recency.
    pub recency: f32,
    /// Role.
    pub role: f32,
    /// Host priority.
    pub priority: f32,
    /// 1 when the turn's speaker is named in the query.
    pub speaker: f32,
    /// Relevance gained from the turn's exchange and session (already weighted; see the policy's
    /// `context_boost` and `session_boost`).
    pub context: f32,
    /// Weighted total (including span expansion from neighbours).
    pub total: f32,
}

/// One line of the window's report: a turn, its fate, its tokens and its score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportLine {
    /// The turn.
    pub turn: TurnId,
    /// What happened to it.
    pub fate: Fate,
    /// Its tokens as rendered verbatim (with framing).
    pub tokens: usize,
    /// Tokens it takes in this window (0 when left out).
    pub shown_tokens: usize,
    /// Its score.
    pub score: ScoreParts,
}

/// A summary in the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryInfo {
    /// First turn summarized.
    pub first: TurnId,
    /// Last turn summarized.
    pub last: TurnId,
    /// Tokens of the summary message.
    pub tokens: usize,
    /// Tokens of the turns it stands in for.
    pub source_tokens: usize,
}

/// An assembled window.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub(crate) messages: Vec<Message>,
    pub(crate) total_tokens: usize,
    pub(crate) budget: usize,
    pub(crate) encoding: Encoding,
    pub(crate) report: Vec<ReportLine>,
    pub(crate) summaries: Vec<SummaryInfo>,
    pub(crate) query_embed_us: Option<f64>,
}

impl Window {
    /// The messages, pins first, then history in chronological order.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }
    /// Exact total tokens of the rendered request (framing included).
    pub fn total_tokens(&self) -> usize {
        self.total_tokens
    }
    /// The budget it was assembled for.
    pub fn budget(&self) -> usize {
        self.budget
    }
    /// The encoding it was counted in.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }
    /// One line per turn of the history.
    pub fn report(&self) -> &[ReportLine] {
        &self.report
    }
    /// Microseconds spent embedding the query (dense retrieval only; part of the assemble time).
    pub fn query_embed_us(&self) -> Option<f64> {
        self.query_embed_us
    }
    /// The summaries in the window.
    pub fn summaries(&self) -> &[SummaryInfo] {
        &self.summaries
    }
    /// Turns present verbatim (fate `Kept`).
    pub fn kept_turns(&self) -> impl Iterator<Item = TurnId> + '_ {
        self.report.iter().filter(|l| l.fate == Fate::Kept).map(|l| l.turn)
    }
    /// All the window's text, messages joined by newlines (tool calls included).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for m in &self.messages {
            out.push_str(&m.content);
            out.push('\n');
            for c in &m.tool_calls {
                out.push_str(&c.name);
                out.push(' ');
                out.push_str(&c.arguments);
                out.push('\n');
            }
        }
        out
    }

    /// The request as OpenAI chat `messages` (system first; each tool result right after its call).
    pub fn to_openai(&self) -> Value {
        let mut out = Vec::with_capacity(self.messages.len());
        for m in &self.messages {
            let role = if m.origin == Origin::Pins { "system" } else { wire_role(m.role) };
            let mut o = json!({ "role": role, "content": m.content });
            if !m.tool_calls.is_empty() {
                if m.content.is_empty() {
                    o["content"] = Value::Null;
                }
                o["tool_calls"] = Value::Array(
                    m.tool_calls
                        .iter()
                        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
                        .collect(),
                );
            }
            if let Some(id) = &m.tool_call_id {
                o["tool_call_id"] = json!(id);
            }
            out.push(o);
        }
        Value::Array(out)
    }

    /// The request as Anthropic Messages `{system, messages}`: the pins go in `system`, consecutive
    /// same-role messages merge into one (tool results become `tool_result` blocks of a user message
    /// right after the assistant's `tool_use`), and roles alternate starting with `user`.
    pub fn to_anthropic(&self) -> Value {
        let mut system: Option<String> = None;
        let mut msgs: Vec<(String, Vec<Value>)> = Vec::new();
        for m in &self.messages {
            if m.origin == Origin::Pins {
                system = Some(m.content.clone());
                continue;
            }
            let (role, blocks) = match (m.role, &m.tool_call_id) {
                (Role::Tool, Some(id)) => (
                    "user",
                    vec![json!({"type": "tool_result", "tool_use_id": id, "content": m.content, "is_error": m.is_error})],
                ),
                (Role::Assistant, _) => {
                    let mut b = Vec::new();
                    if !m.content.is_empty() {
                        b.push(json!({"type": "text", "text": m.content}));
                    }
                    for c in &m.tool_calls {
                        let input: Value = serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({ "input": c.arguments }));
                        let input = if input.is_object() { input } else { json!({ "input": input }) };
                        b.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
                    }
                    ("assistant", b)
                }
                _ => ("user", vec![json!({"type": "text", "text": m.content})]),
            };
            let blocks: Vec<Value> = blocks.into_iter().filter(|b| b.get("text").is_none_or(|t| t.as_str() != Some(""))).collect();
            if blocks.is_empty() {
                continue;
            }
            match msgs.last_mut() {
                Some((r, b)) if r == role => {
                    // Tool results must come first in a user message that answers tool calls.
                    if role == "user" && blocks[0]["type"] == "tool_result" {
                        let n = b.iter().take_while(|x| x["type"] == "tool_result").count();
                        for (k, blk) in blocks.into_iter().enumerate() {
                            b.insert(n + k, blk);
                        }
                    } else {
                        b.extend(blocks);
                    }
                }
                _ => msgs.push((role.to_string(), blocks)),
            }
        }
        if msgs.first().is_some_and(|(r, _)| r == "assistant") {
            msgs.insert(0, ("user".into(), vec![json!({"type": "text", "text": "[conversation continues]"})]));
        }
        let messages: Vec<Value> = msgs.into_iter().map(|(r, b)| json!({"role": r, "content": b})).collect();
        let mut out = json!({ "messages": messages });
        if let Some(s) = system {
            out["system"] = json!(s);
        }
        out
    }

    /// One line per message, for snapshots and debugging: `role origin tokens: first 60 chars`.
    pub fn outline(&self, counter: &mut TokenCounter) -> String {
        let mut out = String::new();
        for m in &self.messages {
            let origin = match &m.origin {
                Origin::Pins => "pins".to_string(),
                Origin::Turn { turn } => match m.omitted {
                    Some((a, b)) => format!("turn {turn} gap {a}-{b}"),
                    None => format!("turn {turn}"),
                },
                Origin::Summary { first, last } => format!("summary {first}-{last}"),
                Origin::Marker { first, last } => format!("marker {first}-{last}"),
            };
            let head: String = m.content.chars().take(60).collect::<String>().replace('\n', " ");
            let calls: Vec<&str> = m.tool_calls.iter().map(|c| c.name.as_str()).collect();
            out.push_str(&format!("{:<9} {:<16} {:>5}  {}{}\n", m.role.as_str(), origin, m.tokens(counter), head, if calls.is_empty() { String::new() } else { format!(" calls {}", calls.join(",")) }));
        }
        out
    }
}

fn wire_role(r: Role) -> &'static str {
    match r {
        // History system turns are content, not instructions: they are sent as user text.
        Role::System | Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

/// Recounts an OpenAI chat `messages` array from scratch with tiktoken-rs, using ctxwin's framing
/// constants: the independent check that a window's reported total is what it renders to.
pub fn recount_openai(messages: &Value, encoding: Encoding) -> Result<usize> {
    let arr = messages.as_array().ok_or_else(|| Error::InvalidTurn("recount: messages must be an array".into()))?;
    let mut n = REPLY_PRIMING;
    for m in arr {
        n += MESSAGE_OVERHEAD;
        if let Some(c) = m.get("content").and_then(Value::as_str) {
            n += count_reference(encoding, c);
        }
        if let Some(id) = m.get("tool_call_id").and_then(Value::as_str) {
            n += count_reference(encoding, id);
        }
        for c in m.get("tool_calls").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
            let f = &c["function"];
            n += TOOL_CALL_OVERHEAD
                + count_reference(encoding, c["id"].as_str().unwrap_or_default())
                + count_reference(encoding, f["name"].as_str().unwrap_or_default())
                + count_reference(encoding, f["arguments"].as_str().unwrap_or_default());
        }
    }
    Ok(n)
}

/// Checks that an OpenAI `messages` array is API-valid: every assistant `tool_calls` entry is
/// answered by `tool` messages immediately after it, every `tool` message answers a call of the
/// assistant message before it, system messages only at the start. Returns the first problem.
pub fn check_openai(messages: &Value) -> std::result::Result<(), String> {
    let arr = messages.as_array().ok_or("messages must be an array")?;
    let mut open: Vec<String> = Vec::new();
    let mut seen_non_system = false;
    for (i, m) in arr.iter().enumerate() {
        let role = m["role"].as_str().ok_or(format!("message {i}: no role"))?;
        if role != "tool" && !open.is_empty() {
            return Err(format!("message {i}: tool calls {open:?} not answered before a {role} message"));
        }
        match role {
            "system" if seen_non_system => return Err(format!("message {i}: system message after the start")),
            "system" => {}
            "tool" => {
                let id = m["tool_call_id"].as_str().ok_or(format!("message {i}: tool message without tool_call_id"))?;
                let pos = open.iter().position(|o| o == id).ok_or(format!("message {i}: tool result {id} does not follow its call"))?;
                open.remove(pos);
                seen_non_system = true;
            }
            "assistant" => {
                seen_non_system = true;
                for c in m.get("tool_calls").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
                    open.push(c["id"].as_str().ok_or(format!("message {i}: tool call without id"))?.to_string());
                }
            }
            "user" => seen_non_system = true,
            other => return Err(format!("message {i}: unknown role {other}")),
        }
    }
    if open.is_empty() { Ok(()) } else { Err(format!("tool calls {open:?} never answered")) }
}

/// Checks that an Anthropic request is API-valid: no system role inside `messages`, roles alternate
/// starting with `user`, each `tool_use` is answered by a `tool_result` in the very next (user)
/// message, and each `tool_result` answers a `tool_use` of the message before.
pub fn check_anthropic(request: &Value) -> std::result::Result<(), String> {
    let msgs = request["messages"].as_array().ok_or("messages must be an array")?;
    let mut prev_role = "";
    let mut open: Vec<String> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let role = m["role"].as_str().ok_or(format!("message {i}: no role"))?;
        if role != "user" && role != "assistant" {
            return Err(format!("message {i}: role {role} not allowed in messages"));
        }
        if i == 0 && role != "user" {
            return Err("first message must be from the user".into());
        }
        if role == prev_role {
            return Err(format!("message {i}: two {role} messages in a row"));
        }
        let blocks = m["content"].as_array().ok_or(format!("message {i}: content must be blocks"))?;
        let mut answered = Vec::new();
        let mut calls = Vec::new();
        for b in blocks {
            match b["type"].as_str() {
                Some("tool_result") => answered.push(b["tool_use_id"].as_str().unwrap_or_default().to_string()),
                Some("tool_use") => calls.push(b["id"].as_str().unwrap_or_default().to_string()),
                _ => {}
            }
        }
        let mut want = open.clone();
        want.sort();
        answered.sort();
        if want != answered {
            return Err(format!("message {i}: tool results {answered:?} do not match the previous tool uses {want:?}"));
        }
        open = calls;
        prev_role = if role == "user" { "user" } else { "assistant" };
    }
    if open.is_empty() { Ok(()) } else { Err(format!("tool uses {open:?} never answered")) }
}
