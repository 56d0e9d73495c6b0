//! The Anthropic Messages shape: rendering a window to `{system, messages}` with typed content
//! blocks, and checking that a request is API-valid.

use serde::Serialize;
use serde_json::{Value, json};

use crate::message::{Message, Origin};
use crate::turn::Role;
use crate::window::{Api, Problem, RequestError};

/// A content block of an Anthropic message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text { text: String },
    ToolUse { id: String, name: String, input: Value },
    ToolResult { tool_use_id: String, content: String, is_error: bool },
}

/// A message's role on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum WireRole {
    User,
    Assistant,
}

#[derive(Debug, Serialize)]
struct WireMessage {
    role: WireRole,
    content: Vec<Block>,
}

/// The blocks a message contributes, and the role of the wire message they go in.
fn blocks(m: &Message) -> (WireRole, Vec<Block>) {
    let (role, blocks) = match (m.role, &m.tool_call_id) {
        (Role::Tool, Some(id)) => (WireRole::User, vec![Block::ToolResult { tool_use_id: id.clone(), content: m.content.clone(), is_error: m.is_error }]),
        (Role::Assistant, _) => {
            let mut b = vec![Block::Text { text: m.content.clone() }];
            for c in &m.tool_calls {
                let input: Value = serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({ "input": c.arguments }));
                let input = if input.is_object() { input } else { json!({ "input": input }) };
                b.push(Block::ToolUse { id: c.id.clone(), name: c.name.clone(), input });
            }
            (WireRole::Assistant, b)
        }
        _ => (WireRole::User, vec![Block::Text { text: m.content.clone() }]),
    };
    // The API rejects empty text blocks.
    (role, blocks.into_iter().filter(|b| !matches!(b, Block::Text { text } if text.is_empty())).collect())
}

/// The messages as an Anthropic Messages request `{system, messages}`: the pins go in `system`,
/// consecutive same-role messages merge into one (tool results become `tool_result` blocks of a
/// user message right after the assistant's `tool_use`, before any text), and roles alternate
/// starting with `user`.
pub(crate) fn render(messages: &[Message]) -> Value {
    let mut system: Option<&str> = None;
    let mut msgs: Vec<WireMessage> = Vec::new();
    for m in messages {
        if m.origin == Origin::Pins {
            system = Some(&m.content);
            continue;
        }
        let (role, blocks) = blocks(m);
        if blocks.is_empty() {
            continue;
        }
        match msgs.last_mut() {
            Some(last) if last.role == role => {
                // Tool results must come first in a user message that answers tool calls.
                if matches!(blocks[0], Block::ToolResult { .. }) {
                    let n = last.content.iter().take_while(|b| matches!(b, Block::ToolResult { .. })).count();
                    last.content.splice(n..n, blocks);
                } else {
                    last.content.extend(blocks);
                }
            }
            _ => msgs.push(WireMessage { role, content: blocks }),
        }
    }
    if msgs.first().is_some_and(|m| m.role == WireRole::Assistant) {
        msgs.insert(0, WireMessage { role: WireRole::User, content: vec![Block::Text { text: crate::markers::CONVERSATION_CONTINUES.into() }] });
    }
    let mut out = json!({ "messages": msgs });
    if let Some(s) = system {
        out["system"] = json!(s);
    }
    out
}

fn error(message: Option<usize>, problem: Problem) -> RequestError {
    RequestError { api: Api::Anthropic, message, problem }
}

/// Checks that an Anthropic request is API-valid: no system role inside `messages`, roles alternate
/// starting with `user`, each `tool_use` is answered by a `tool_result` in the very next (user)
/// message, and each `tool_result` answers a `tool_use` of the message before.
pub fn check_anthropic(request: &Value) -> std::result::Result<(), RequestError> {
    let msgs = request["messages"].as_array().ok_or_else(|| error(None, Problem::NotAnArray))?;
    let mut prev_role = "";
    let mut open: Vec<String> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let role = m["role"].as_str().ok_or_else(|| error(Some(i), Problem::NoRole))?;
        if role != "user" && role != "assistant" {
            return Err(error(Some(i), Problem::UnknownRole(role.to_string())));
        }
        if i == 0 && role != "user" {
            return Err(error(Some(i), Problem::FirstNotUser));
        }
        if role == prev_role {
            return Err(error(Some(i), Problem::SameRoleTwice(role.to_string())));
        }
        let blocks = m["content"].as_array().ok_or_else(|| error(Some(i), Problem::ContentNotBlocks))?;
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
            return Err(error(Some(i), Problem::ResultsMismatch { results: answered, uses: want }));
        }
        open = calls;
        prev_role = if role == "user" { "user" } else { "assistant" };
    }
    if open.is_empty() { Ok(()) } else { Err(error(None, Problem::NeverAnswered(open))) }
}
