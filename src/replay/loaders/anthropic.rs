//! Anthropic Messages JSON: an object `{system?, messages[{role, content}]}` (a request body, with
//! `model`, `tools`… ignored), or an array of such objects (`<stem>#<n>`; a single object takes the
//! file stem, or its `id`).
//!
//! Mapping: `system` (a string or a list of text blocks) → the System pin. `content` is a string or
//! a list of blocks: `text` → text; `tool_use{id, name, input}` → a `ToolCall` in the assistant's
//! turn; `tool_result{tool_use_id, content, is_error}` (content a string or text/image blocks) → a
//! tool-result turn, placed in block order around the message's other blocks; `image` →
//! `[image]`, `document` → `[document]`; `thinking` / `redacted_thinking` → not shown, counted in
//! `notes.skipped_items`; other block types → `[<type> block] <excerpt>`, counted in
//! `notes.opaque_items`. A message of another role than user/assistant is kept as an opaque user
//! turn (counted). A reused `tool_use` id is renamed `<id>#<k>` for its k-th use and a result joins
//! the latest call with its id, as in the OpenAI loader.

use std::path::Path;

use serde_json::Value;

use super::Format;
use crate::error::Result;
use crate::pins::PinLayer;
use crate::replay::loaders::json_path::Doc;
use crate::replay::loaders::json_path::{Seg, excerpt, file_stem};
use crate::replay::loaders::{CallIds, EXCERPT_CHARS, parse_json, parts_text, shown_text};
use crate::replay::transcript::Transcript;
use crate::turn::{Block, Role, Turn};

const FORMAT: Format = Format::AnthropicMessages;

/// Block types only Anthropic Messages has (OpenAI content parts are `text`, `image_url`,
/// `input_audio`, `file`, `refusal`).
const ANTHROPIC_BLOCKS: [&str; 7] = ["tool_use", "tool_result", "thinking", "redacted_thinking", "image", "document", "server_tool_use"];

/// Whether a parsed object with `messages` and no `system` key is Anthropic Messages rather than
/// OpenAI chat (used by format detection). Any message only OpenAI has (a `system`, `developer`
/// or `tool` role, `tool_calls`, `tool_call_id`, `function_call`) says OpenAI; any block type only
/// Anthropic has says Anthropic, wherever it is; otherwise a first message whose content is a list
/// of blocks says Anthropic.
pub(super) fn looks_like(v: &Value) -> bool {
    let Some(msgs) = v.get("messages").and_then(Value::as_array) else { return false };
    let openai_only = |m: &Value| {
        matches!(m.get("role").and_then(Value::as_str), Some("system" | "developer" | "tool"))
            || ["tool_calls", "tool_call_id", "function_call"].iter().any(|k| m.get(*k).is_some_and(|x| !x.is_null()))
    };
    if msgs.iter().any(openai_only) {
        return false;
    }
    let anthropic_block = |b: &Value| b.get("type").and_then(Value::as_str).is_some_and(|t| ANTHROPIC_BLOCKS.contains(&t));
    let blocks = |m: &Value| m.get("content").and_then(Value::as_array).is_some_and(|c| c.iter().any(anthropic_block));
    msgs.iter().any(blocks) || msgs.first().and_then(|m| m.get("content")).is_some_and(Value::is_array)
}

pub(super) fn load(path: &Path, text: &str) -> Result<Vec<Transcript>> {
    let v = parse_json(path, text)?;
    let doc = Doc { path, text };
    let stem = file_stem(path);
    match &v {
        Value::Object(_) => {
            let id = v.get("id").and_then(Value::as_str).map(str::to_string).unwrap_or(stem);
            Ok(vec![doc.conversation(&[], &v, id)?])
        }
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let id = c.get("id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| format!("{stem}#{}", i + 1));
                doc.conversation(&[Seg::Idx(i)], c, id)
            })
            .collect(),
        _ => Err(doc.err(&[], &[], "expected an object {system?, messages} or a non-empty array of them")),
    }
}

impl Doc<'_> {
    fn conversation(&self, at: &[Seg<'_>], c: &Value, id: String) -> Result<Transcript> {
        if !c.is_object() {
            return Err(self.err(at, &[], "expected an object {system?, messages}"));
        }
        let mut t = Transcript::new(id, self.path, FORMAT);
        match c.get("system") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => {
                if !s.trim().is_empty() {
                    t.pins.push((PinLayer::System, s.clone()));
                }
            }
            Some(Value::Array(blocks)) => {
                let mut parts = Vec::with_capacity(blocks.len());
                for (i, b) in blocks.iter().enumerate() {
                    let s = b
                        .get("text")
                        .and_then(Value::as_str)
                        .or_else(|| b.as_str())
                        .ok_or_else(|| self.err(at, &[Seg::Key("system"), Seg::Idx(i)], "a system block needs a string `text`"))?;
                    parts.push(s);
                }
                let s = parts.join("\n\n");
                if !s.trim().is_empty() {
                    t.pins.push((PinLayer::System, s));
                }
            }
            Some(_) => return Err(self.err(at, &[Seg::Key("system")], "must be a string or a list of text blocks")),
        }
        let msgs = c.get("messages").and_then(Value::as_array).ok_or_else(|| self.err(at, &[Seg::Key("messages")], "must be an array of messages"))?;
        let mut ids = CallIds::default();
        for (i, m) in msgs.iter().enumerate() {
            let here = [at, &[Seg::Key("messages"), Seg::Idx(i)]].concat();
            self.message(&here, m, &mut ids, &mut t)?;
        }
        t.normalize_turns();
        Ok(t)
    }

    fn message(&self, here: &[Seg<'_>], m: &Value, ids: &mut CallIds, t: &mut Transcript) -> Result<()> {
        if !m.is_object() {
            return Err(self.err(here, &[], "a message must be an object"));
        }
        let role_name = m.get("role").and_then(Value::as_str).ok_or_else(|| self.err(here, &[], "a message needs a string `role`"))?;
        let role = match role_name {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                t.notes.opaque_items += 1;
                let text = excerpt(m.get("content").unwrap_or(&Value::Null), EXCERPT_CHARS);
                t.turns.push(Turn::user(format!("[{other} message] {text}")).with_tag("opaque"));
                return Ok(());
            }
        };
        let blocks = match m.get("content") {
            Some(Value::String(s)) => {
                if s.trim().is_empty() {
                    t.notes.skipped_items += 1;
                } else {
                    t.turns.push(Turn::new(role, vec![Block::text(s.as_str())]));
                }
                return Ok(());
            }
            Some(Value::Array(blocks)) => blocks,
            _ => return Err(self.err(here, &[Seg::Key("content")], "must be a string or a list of content blocks")),
        };
        // Blocks of this message not yet pushed (results are pushed as their own turns).
        let mut pending: Vec<Block> = Vec::new();
        let flush = |pending: &mut Vec<Block>, t: &mut Transcript| {
            if !pending.is_empty() {
                t.turns.push(Turn::new(role, std::mem::take(pending)));
            }
        };
        for (k, b) in blocks.iter().enumerate() {
            let bat = [Seg::Key("content"), Seg::Idx(k)];
            if !b.is_object() {
                return Err(self.err(here, &bat, "a content block must be an object"));
            }
            match b.get("type").and_then(Value::as_str).unwrap_or("untyped") {
                "tool_use" | "server_tool_use" => {
                    let id = b.get("id").and_then(Value::as_str).ok_or_else(|| self.err(here, &bat, "a `tool_use` block needs a string `id`"))?;
                    let name = b.get("name").and_then(Value::as_str).ok_or_else(|| self.err(here, &bat, "a `tool_use` block needs a string `name`"))?;
                    let arguments = b.get("input").cloned().unwrap_or_else(|| Value::Object(Default::default()));
                    pending.push(Block::ToolCall { call_id: ids.call(Some(id), "toolu"), name: name.to_string(), arguments });
                }
                "tool_result" => {
                    flush(&mut pending, t);
                    let id = b
                        .get("tool_use_id")
                        .and_then(Value::as_str)
                        .ok_or_else(|| self.err(here, &bat, "a `tool_result` block needs a string `tool_use_id`"))?;
                    let content = self.result_text(&[here, &bat[..]].concat(), b.get("content"))?;
                    let is_error = b.get("is_error").and_then(Value::as_bool).unwrap_or(false);
                    t.turns.push(Turn::tool_result(ids.result(id), content, is_error));
                }
                other => {
                    if let Some(text) = shown_text(other, b, &mut t.notes) {
                        pending.push(Block::text(text));
                    }
                }
            }
        }
        flush(&mut pending, t);
        Ok(())
    }

    fn result_text(&self, at: &[Seg<'_>], content: Option<&Value>) -> Result<String> {
        match content {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Array(parts)) => Ok(parts_text(parts)),
            Some(_) => Err(self.err(at, &[Seg::Key("content")], "must be a string or a list of content blocks")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_system_tools_and_images() -> Result<()> {
        let text = json!({"system": [{"type": "text", "text": "You are terse."}], "messages": [
            {"role": "user", "content": [{"type": "text", "text": "what is in it?"}, {"type": "image", "source": {"type": "base64", "data": "AAAA"}}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Let me check."}, {"type": "tool_use", "id": "t1", "name": "ls", "input": {"p": "."}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "a b"}]}, {"type": "text", "text": "and?"}]},
            {"role": "assistant", "content": "Two files."}
        ]})
        .to_string();
        let ts = load(Path::new("a.json"), &text)?;
        let t = &ts[0];
        assert_eq!(t.id(), "a");
        assert_eq!(t.pins, vec![(PinLayer::System, "You are terse.".to_string())]);
        let roles: Vec<Role> = t.turns.iter().map(Turn::role).collect();
        assert_eq!(roles, [Role::User, Role::Assistant, Role::Tool, Role::User, Role::Assistant]);
        assert_eq!(t.turns[0].plain_text(), "what is in it?\n[image]");
        assert_eq!(t.turns[2].plain_text(), "a b");
        assert!(looks_like(&json!({"messages": [{"role": "user", "content": []}]})));
        assert!(!looks_like(&json!({"messages": [{"role": "user", "content": "x"}]})));
        Ok(())
    }

    #[test]
    fn wrong_types_name_the_position() {
        let e = load(Path::new("a.json"), "{\"messages\": [\n {\"role\": \"user\", \"content\": 42}\n]}").map(|_| ()).err();
        assert_eq!(e.map(|e| e.to_string()).as_deref(), Some("a.json:2:30: messages[0].content: must be a string or a list of content blocks"));
    }
}
