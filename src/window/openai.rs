//! The OpenAI chat shape: rendering a window to `messages`, checking that a `messages` array is
//! API-valid, and recounting one from scratch.

use serde_json::{Value, json};

use crate::error::Result;
use crate::message::{Message, Origin};
use crate::tokens::{Encoding, MESSAGE_OVERHEAD, REPLY_PRIMING, TOOL_CALL_OVERHEAD, count_reference};
use crate::turn::Role;
use crate::window::{Api, Problem, RequestError};

/// The messages as OpenAI chat `messages` (system first; each tool result right after its call).
pub(crate) fn render(messages: &[Message]) -> Value {
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        let role = if m.origin == Origin::Pins { "system" } else { wire_role(m.role) };
        let mut o = json!({ "role": role, "content": m.content });
        if !m.tool_calls.is_empty() {
            if m.content.is_empty() {
                o["content"] = Value::Null;
            }
            o["tool_calls"] = Value::Array(
                m.tool_calls.iter().map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}})).collect(),
            );
        }
        if let Some(id) = &m.tool_call_id {
            o["tool_call_id"] = json!(id);
        }
        out.push(o);
    }
    Value::Array(out)
}

fn wire_role(r: Role) -> &'static str {
    match r {
        // History system turns are content, not instructions: they are sent as user text.
        Role::System | Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

fn error(message: Option<usize>, problem: Problem) -> RequestError {
    RequestError { api: Api::OpenAi, message, problem }
}

/// Recounts an OpenAI chat `messages` array from scratch with tiktoken-rs, using ctxwin's framing
/// constants: the independent check that a window's reported total is what it renders to.
pub fn recount_openai(messages: &Value, encoding: Encoding) -> Result<usize> {
    recount_openai_with(messages, &mut |text| count_reference(encoding, text))
}

/// [`recount_openai`] with the count of each text given by `count` (the checks in
/// `ctxwin::testing` memoize tiktoken's counts of texts that recur across windows).
pub(crate) fn recount_openai_with(messages: &Value, count: &mut dyn FnMut(&str) -> usize) -> Result<usize> {
    let arr = messages.as_array().ok_or_else(|| error(None, Problem::NotAnArray))?;
    let mut n = REPLY_PRIMING;
    for m in arr {
        n += MESSAGE_OVERHEAD;
        if let Some(c) = m.get("content").and_then(Value::as_str) {
            n += count(c);
        }
        if let Some(id) = m.get("tool_call_id").and_then(Value::as_str) {
            n += count(id);
        }
        for c in m.get("tool_calls").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
            let f = &c["function"];
            n += TOOL_CALL_OVERHEAD
                + count(c["id"].as_str().unwrap_or_default())
                + count(f["name"].as_str().unwrap_or_default())
                + count(f["arguments"].as_str().unwrap_or_default());
        }
    }
    Ok(n)
}

/// Checks that an OpenAI `messages` array is API-valid: every assistant `tool_calls` entry is
/// answered by `tool` messages immediately after it, every `tool` message answers a call of the
/// assistant message before it, system messages only at the start. Returns the first problem.
pub fn check_openai(messages: &Value) -> std::result::Result<(), RequestError> {
    let arr = messages.as_array().ok_or_else(|| error(None, Problem::NotAnArray))?;
    let mut open: Vec<String> = Vec::new();
    let mut seen_non_system = false;
    for (i, m) in arr.iter().enumerate() {
        let role = m["role"].as_str().ok_or_else(|| error(Some(i), Problem::NoRole))?;
        if role != "tool" && !open.is_empty() {
            return Err(error(Some(i), Problem::CallsNotAnswered { calls: open, before: role.to_string() }));
        }
        match role {
            "system" if seen_non_system => return Err(error(Some(i), Problem::SystemAfterStart)),
            "system" => {}
            "tool" => {
                let id = m["tool_call_id"].as_str().ok_or_else(|| error(Some(i), Problem::ResultWithoutCallId))?;
                let pos = open.iter().position(|o| o == id).ok_or_else(|| error(Some(i), Problem::ResultWithoutCall(id.to_string())))?;
                open.remove(pos);
                seen_non_system = true;
            }
            "assistant" => {
                seen_non_system = true;
                for c in m.get("tool_calls").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
                    open.push(c["id"].as_str().ok_or_else(|| error(Some(i), Problem::CallWithoutId))?.to_string());
                }
            }
            "user" => seen_non_system = true,
            other => return Err(error(Some(i), Problem::UnknownRole(other.to_string()))),
        }
    }
    if open.is_empty() { Ok(()) } else { Err(error(None, Problem::NeverAnswered(open))) }
}
