//! Request messages → [`Turn`]s: OpenAI chat messages (with `tool_calls` and `tool` results),
//! Anthropic Messages (`tool_use` / `tool_result` blocks) or ctxwin's own turn JSON.
//!
//! Every failure names the JSON path of the field at fault (`messages[3].tool_calls[0].function.arguments`).
//! Message content never becomes a pin: a `system` (or `developer`) message is a system-role turn
//! of the history, rendered as user-visible text; pins come only from the pins route.

use serde_json::Value;

use super::error::ApiError;
use crate::turn::{Block, Role, Turn};

/// The shape of the messages of a turns request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenAI chat completions `messages`.
    OpenAi,
    /// Anthropic Messages `messages`.
    Anthropic,
    /// ctxwin's [`Turn`] JSON.
    Ctxwin,
}

impl Format {
    /// Parses `openai`, `anthropic` or `ctxwin` (the value of the field `field`).
    pub fn parse(v: Option<&Value>, field: &str, default: Format, allow_ctxwin: bool) -> Result<Format, ApiError> {
        match v {
            None | Some(Value::Null) => Ok(default),
            Some(Value::String(s)) if s == "openai" => Ok(Format::OpenAi),
            Some(Value::String(s)) if s == "anthropic" => Ok(Format::Anthropic),
            Some(Value::String(s)) if s == "ctxwin" && allow_ctxwin => Ok(Format::Ctxwin),
            Some(other) => {
                let known = if allow_ctxwin { "openai, anthropic or ctxwin" } else { "openai or anthropic" };
                Err(ApiError::bad(field, format!("must be {known}, not {other}")))
            }
        }
    }
}

/// One message's turns, and the index of the message they came from.
#[derive(Debug)]
pub struct Ingested {
    /// The turns, in push order.
    pub turns: Vec<Turn>,
    /// For each turn, the index in `messages` of the message it came from.
    pub from: Vec<usize>,
}

/// Converts `messages` (already known to be an array) in `format` into turns. `max_bytes` bounds each
/// message's text (413 naming the message when over).
pub fn ingest(format: Format, messages: &[Value], max_bytes: usize) -> Result<Ingested, ApiError> {
    let mut out = Ingested { turns: Vec::new(), from: Vec::new() };
    for (i, m) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let size = m.to_string().len();
        if size > max_bytes {
            return Err(ApiError::too_large(&at, format!("message is {size} bytes; the limit per turn is {max_bytes}")));
        }
        if !m.is_object() {
            return Err(ApiError::bad(&at, "a message must be an object"));
        }
        let turns = match format {
            Format::OpenAi => openai(&at, m)?,
            Format::Anthropic => anthropic(&at, m)?,
            Format::Ctxwin => vec![ctxwin(&at, m)?],
        };
        out.from.extend(std::iter::repeat_n(i, turns.len()));
        out.turns.extend(turns);
    }
    Ok(out)
}

fn string<'a>(m: &'a Value, at: &str, key: &str) -> Result<&'a str, ApiError> {
    m.get(key).and_then(Value::as_str).ok_or_else(|| ApiError::bad(&format!("{at}.{key}"), "must be a string"))
}

/// Text of an OpenAI `content`: a string, null, or a list of parts (`text` parts joined; others
/// shown as `[type]`).
fn parts(at: &str, v: Option<&Value>) -> Result<String, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(items)) => {
            let mut texts = Vec::with_capacity(items.len());
            for (k, p) in items.iter().enumerate() {
                let kind = p.get("type").and_then(Value::as_str);
                match (kind, p.get("text").and_then(Value::as_str), p.as_str()) {
                    (_, _, Some(s)) => texts.push(s.to_string()),
                    (Some("text" | "input_text" | "output_text"), Some(t), _) => texts.push(t.to_string()),
                    (Some("text" | "input_text" | "output_text"), None, _) => return Err(ApiError::bad(&format!("{at}[{k}].text"), "must be a string")),
                    (Some(other), _, _) => texts.push(format!("[{other}]")),
                    (None, _, _) => return Err(ApiError::bad(&format!("{at}[{k}].type"), "a content part needs a string `type`")),
                }
            }
            Ok(texts.join("\n"))
        }
        Some(_) => Err(ApiError::bad(at, "must be a string, null or a list of content parts")),
    }
}

fn openai(at: &str, m: &Value) -> Result<Vec<Turn>, ApiError> {
    let role = string(m, at, "role")?;
    let content_at = format!("{at}.content");
    let text = parts(&content_at, m.get("content"))?;
    let speaker = m.get("name").and_then(Value::as_str);
    let turn = match role {
        "system" | "developer" => Turn::new(Role::System, vec![Block::text(text)]),
        "user" => Turn::user(text),
        "tool" => Turn::tool_result(string(m, at, "tool_call_id")?, text, false),
        "assistant" => {
            let mut blocks = Vec::new();
            if !text.is_empty() {
                blocks.push(Block::text(text));
            }
            match m.get("tool_calls") {
                None | Some(Value::Null) => {}
                Some(Value::Array(calls)) => {
                    for (j, c) in calls.iter().enumerate() {
                        blocks.push(openai_call(&format!("{at}.tool_calls[{j}]"), c)?);
                    }
                }
                Some(_) => return Err(ApiError::bad(&format!("{at}.tool_calls"), "must be a list of tool calls")),
            }
            if blocks.is_empty() {
                return Err(ApiError::bad(&content_at, "an assistant message needs content or tool_calls"));
            }
            Turn::new(Role::Assistant, blocks)
        }
        other => return Err(ApiError::bad(&format!("{at}.role"), format!("unknown role {other:?} (system, developer, user, assistant or tool)"))),
    };
    Ok(vec![match speaker {
        Some(s) if !s.is_empty() => turn.with_speaker(s),
        _ => turn,
    }])
}

fn openai_call(at: &str, c: &Value) -> Result<Block, ApiError> {
    let id = string(c, at, "id")?;
    if id.is_empty() {
        return Err(ApiError::bad(&format!("{at}.id"), "must not be empty"));
    }
    let f = c.get("function").filter(|f| f.is_object()).ok_or_else(|| ApiError::bad(&format!("{at}.function"), "must be an object {name, arguments}"))?;
    let fat = format!("{at}.function");
    let name = string(f, &fat, "name")?;
    let arguments = match f.get("arguments") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(Value::String(s)) if s.trim().is_empty() => Value::Object(Default::default()),
        Some(Value::String(s)) => {
            serde_json::from_str(s).map_err(|e| ApiError::bad(&format!("{fat}.arguments"), format!("must be a JSON document in a string: {e}")))?
        }
        Some(_) => return Err(ApiError::bad(&format!("{fat}.arguments"), "must be a string holding JSON")),
    };
    Ok(Block::ToolCall { call_id: id.to_string(), name: name.to_string(), arguments })
}

fn anthropic(at: &str, m: &Value) -> Result<Vec<Turn>, ApiError> {
    let role = match string(m, at, "role")? {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "system" => Role::System,
        other => return Err(ApiError::bad(&format!("{at}.role"), format!("unknown role {other:?} (user, assistant, or system as history)"))),
    };
    let blocks = match m.get("content") {
        Some(Value::String(s)) => return Ok(vec![Turn::new(role, vec![Block::text(s.as_str())])]),
        Some(Value::Array(blocks)) => blocks,
        _ => return Err(ApiError::bad(&format!("{at}.content"), "must be a string or a list of content blocks")),
    };
    let mut turns = Vec::new();
    // Blocks not yet pushed: a tool result is its own turn, placed in block order.
    let mut pending: Vec<Block> = Vec::new();
    for (k, b) in blocks.iter().enumerate() {
        let bat = format!("{at}.content[{k}]");
        if !b.is_object() {
            return Err(ApiError::bad(&bat, "a content block must be an object"));
        }
        match string(b, &bat, "type")? {
            "text" => pending.push(Block::text(string(b, &bat, "text")?)),
            "tool_use" if role == Role::Assistant => {
                let input = match b.get("input") {
                    None | Some(Value::Null) => Value::Object(Default::default()),
                    Some(v @ Value::Object(_)) => v.clone(),
                    Some(_) => return Err(ApiError::bad(&format!("{bat}.input"), "must be an object")),
                };
                pending.push(Block::ToolCall { call_id: string(b, &bat, "id")?.to_string(), name: string(b, &bat, "name")?.to_string(), arguments: input });
            }
            "tool_result" if role == Role::User => {
                if !pending.is_empty() {
                    turns.push(Turn::new(role, std::mem::take(&mut pending)));
                }
                let id = string(b, &bat, "tool_use_id")?;
                let content = result_text(&format!("{bat}.content"), b.get("content"))?;
                let is_error = match b.get("is_error") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(e)) => *e,
                    Some(_) => return Err(ApiError::bad(&format!("{bat}.is_error"), "must be a boolean")),
                };
                turns.push(Turn::tool_result(id, content, is_error));
            }
            "tool_use" | "tool_result" => {
                return Err(ApiError::bad(&format!("{bat}.type"), "tool_use blocks belong in assistant messages, tool_result blocks in user messages"));
            }
            "image" | "document" => pending.push(Block::text(format!("[{}]", string(b, &bat, "type")?))),
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(ApiError::bad(
                    &format!("{bat}.type"),
                    format!("unsupported block type {other:?} (text, tool_use, tool_result, image, document, thinking)"),
                ));
            }
        }
    }
    if !pending.is_empty() {
        turns.push(Turn::new(role, pending));
    }
    Ok(turns)
}

/// A `tool_result`'s content: a string, or a list of blocks (text joined, others as `[type]`).
fn result_text(at: &str, v: Option<&Value>) -> Result<String, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(items)) => {
            let mut texts = Vec::with_capacity(items.len());
            for (k, b) in items.iter().enumerate() {
                let bat = format!("{at}[{k}]");
                match string(b, &bat, "type")? {
                    "text" => texts.push(string(b, &bat, "text")?.to_string()),
                    other => texts.push(format!("[{other}]")),
                }
            }
            Ok(texts.join("\n"))
        }
        Some(_) => Err(ApiError::bad(at, "must be a string or a list of content blocks")),
    }
}

fn ctxwin(at: &str, m: &Value) -> Result<Turn, ApiError> {
    serde_json::from_value::<Turn>(m.clone()).map_err(|e| ApiError::bad(at, format!("not a ctxwin turn: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(r: Result<Ingested, ApiError>) -> String {
        r.err().and_then(|e| e.field).unwrap_or_default()
    }

    #[test]
    fn openai_tool_round_and_system_as_history() {
        let msgs = json!([
            {"role": "system", "content": "ignore the pins"},
            {"role": "user", "content": [{"type": "text", "text": "run it"}], "name": "ann"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "bash", "arguments": "{\"cmd\":\"ls\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "a.txt"},
        ]);
        let got = ingest(Format::OpenAi, msgs.as_array().unwrap(), 1 << 20).unwrap();
        assert_eq!(got.from, vec![0, 1, 2, 3]);
        assert_eq!(got.turns[0], Turn::new(Role::System, vec![Block::text("ignore the pins")]));
        assert_eq!(got.turns[1], Turn::user("run it").with_speaker("ann"));
        assert_eq!(
            got.turns[2],
            Turn::new(Role::Assistant, vec![Block::ToolCall { call_id: "c1".into(), name: "bash".into(), arguments: json!({"cmd": "ls"}) }])
        );
        assert_eq!(got.turns[3], Turn::tool_result("c1", "a.txt", false));
    }

    #[test]
    fn anthropic_results_become_their_own_turns_in_block_order() {
        let msgs = json!([
            {"role": "assistant", "content": [{"type": "text", "text": "look"}, {"type": "tool_use", "id": "t1", "name": "read", "input": {"p": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "ok"}], "is_error": true}, {"type": "text", "text": "next"}]},
        ]);
        let got = ingest(Format::Anthropic, msgs.as_array().unwrap(), 1 << 20).unwrap();
        assert_eq!(got.from, vec![0, 1, 1]);
        assert_eq!(got.turns[1], Turn::tool_result("t1", "ok", true));
        assert_eq!(got.turns[2], Turn::user("next"));
    }

    #[test]
    fn errors_name_the_json_path() {
        let bad_args = json!([{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{nope"}}]}]);
        assert_eq!(field(ingest(Format::OpenAi, bad_args.as_array().unwrap(), 1 << 20)), "messages[0].tool_calls[0].function.arguments");
        let no_role = json!([{"role": "user", "content": "x"}, {"content": "y"}]);
        assert_eq!(field(ingest(Format::OpenAi, no_role.as_array().unwrap(), 1 << 20)), "messages[1].role");
        let bad_block = json!([{"role": "user", "content": [{"type": "video"}]}]);
        assert_eq!(field(ingest(Format::Anthropic, bad_block.as_array().unwrap(), 1 << 20)), "messages[0].content[0].type");
        let bad_turn = json!([{"role": "user"}]);
        assert_eq!(field(ingest(Format::Ctxwin, bad_turn.as_array().unwrap(), 1 << 20)), "messages[0]");
        let big = json!([{"role": "user", "content": "x".repeat(100)}]);
        let e = ingest(Format::OpenAi, big.as_array().unwrap(), 50).err().unwrap();
        assert_eq!((e.status.as_u16(), e.field.as_deref()), (413, Some("messages[0]")));
    }
}
