//! OpenAI chat messages with `tool_calls` and `role: tool`, in four containers:
//!
//! - a bare messages array (one transcript, id = file stem);
//! - an object with `messages` (id = its `id`, else the file stem), or an array of such objects
//!   (`<stem>#<n>`);
//! - tau-bench runs: an array of `{task_id, trial, reward, info{task{actions}}, traj[]}`, one
//!   transcript per run with id `task<task_id>-trial<trial>`; `info.task.actions[{name, kwargs}]`
//!   become the transcript's gold actions;
//! - SWE-agent `.traj`: an object with `history[]` (id = file name without `.traj`).
//!
//! Mapping: a `system` (or `developer`) message that opens the conversation becomes the System pin,
//! not a turn; any later one (after a user, assistant or tool message, or a second one) stays a
//! system turn in the history. For SWE-agent the user message that opens the conversation after
//! that system message (the issue text with the harness's instructions) becomes the Task pin and is
//! not repeated as a turn; a user message after an assistant or tool message is never pinned. Only
//! the host's opening instructions become pins, never text from later in the log. `content` may be a
//! string, `null`, or a list of parts (`{type:"text", text}`; image parts become `[image]`; parts of
//! unknown type are kept as `[<type> part]` and counted as opaque). An assistant message becomes one
//! turn holding its text and one `ToolCall` per `tool_calls[]` entry; `function.arguments` is a
//! JSON string, parsed to a value, or kept as a string value when it is not valid JSON. A `tool`
//! message (`tool_call_id`, or SWE-agent's `tool_call_ids`) becomes a tool-result turn. The legacy
//! `function_call` / `role: function` pair is read the same way (ids `function-call-<n>`).
//! Messages of an unknown role are kept as opaque user turns (counted); empty messages are skipped
//! (counted).
//!
//! Call ids must be unique within a transcript for calls and results to pair, but tau-bench's
//! recorded runs reuse ids (the same `call_…` id for two different calls, 73 times over the 200
//! runs). A reused id is renamed `<id>#<k>` for its k-th use, and a result is joined to the latest
//! call with its id, which is how the run itself answered them (one call at a time).

use std::collections::VecDeque;
use std::path::Path;

use serde_json::Value;

use super::Format;
use crate::error::Result;
use crate::pins::PinLayer;
use crate::replay::loaders::json_path::{Doc, Seg, file_stem};
use crate::replay::loaders::{CallIds, parse_json};
use crate::replay::transcript::{GoldAction, LoadNotes, Transcript};
use crate::turn::{Block, Role, Turn};

const FORMAT: Format = Format::OpenAiChat;

pub(super) fn load(path: &Path, text: &str) -> Result<Vec<Transcript>> {
    let v = parse_json(path, text)?;
    let doc = Doc { path, text };
    let stem = file_stem(path);
    match &v {
        Value::Array(items) => {
            let Some(first) = items.first() else {
                return Err(doc.err(&[], &[], "empty array: no messages or runs to load"));
            };
            if first.get("role").is_some() {
                let mut t = Transcript::new(stem, path, FORMAT);
                convert(&doc, &[], items, &mut t, false)?;
                t.normalize_turns();
                return Ok(vec![t]);
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(load_object(&doc, &[Seg::Idx(i)], item, format!("{stem}#{}", i + 1))?);
            }
            Ok(out)
        }
        Value::Object(_) => {
            let stem = stem.strip_suffix(".traj").unwrap_or(&stem).to_string();
            Ok(vec![load_object(&doc, &[], &v, stem)?])
        }
        _ => Err(doc.err(&[], &[], "expected a messages array, an object with `messages`, tau-bench runs or a SWE-agent trajectory")),
    }
}

/// Text of a JSON scalar used in an id (`3` or `"3"` → `3`).
fn id_part(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn load_object(doc: &Doc<'_>, at: &[Seg<'_>], obj: &Value, default_id: String) -> Result<Transcript> {
    if !obj.is_object() {
        return Err(doc.err(at, &[], "expected an object with `messages`, `traj` or `history`"));
    }
    let (key, task_pin) = if obj.get("traj").is_some() {
        ("traj", false)
    } else if obj.get("history").is_some() {
        ("history", true)
    } else if obj.get("messages").is_some() {
        ("messages", false)
    } else {
        return Err(doc.err(at, &[], "expected an object with `messages`, `traj` or `history`"));
    };
    let id = if key == "traj" {
        match (obj.get("task_id").and_then(id_part), obj.get("trial").and_then(id_part)) {
            (Some(task), Some(trial)) => format!("task{task}-trial{trial}"),
            (Some(task), None) => format!("task{task}"),
            _ => default_id,
        }
    } else {
        obj.get("id").and_then(Value::as_str).map(str::to_string).unwrap_or(default_id)
    };
    let msgs = obj.get(key).and_then(Value::as_array).ok_or_else(|| doc.err(at, &[Seg::Key(key)], "must be an array of messages"))?;
    let mut t = Transcript::new(id, doc.path, FORMAT);
    convert(doc, &[at, &[Seg::Key(key)]].concat(), msgs, &mut t, task_pin)?;
    if key == "traj" {
        t.gold_actions = gold_actions(doc, at, obj)?;
    }
    t.normalize_turns();
    Ok(t)
}

/// tau-bench's `info.task.actions[{name, kwargs}]`.
fn gold_actions(doc: &Doc<'_>, at: &[Seg<'_>], run: &Value) -> Result<Vec<GoldAction>> {
    let Some(actions) = run.get("info").and_then(|i| i.get("task")).and_then(|t| t.get("actions")) else {
        return Ok(Vec::new());
    };
    let base = [at, &[Seg::Key("info"), Seg::Key("task"), Seg::Key("actions")]].concat();
    let actions = actions.as_array().ok_or_else(|| doc.err(&base, &[], "must be an array of actions"))?;
    let mut out = Vec::with_capacity(actions.len());
    for (i, a) in actions.iter().enumerate() {
        let name = a.get("name").and_then(Value::as_str).ok_or_else(|| doc.err(&base, &[Seg::Idx(i)], "an action needs a string `name`"))?;
        let arguments = a.get("kwargs").or_else(|| a.get("arguments")).cloned().unwrap_or_else(|| Value::Object(Default::default()));
        out.push(GoldAction { name: name.to_string(), arguments });
    }
    Ok(out)
}

/// The text of a message's `content`: a string, `null`/absent, or a list of parts.
fn content_text(doc: &Doc<'_>, at: &[Seg<'_>], content: Option<&Value>, notes: &mut LoadNotes) -> Result<String> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (i, p) in parts.iter().enumerate() {
                match p {
                    Value::String(s) => texts.push(s.clone()),
                    Value::Object(o) => {
                        let kind = o.get("type").and_then(Value::as_str).unwrap_or("text");
                        if let Some(s) = o.get("text").and_then(Value::as_str) {
                            texts.push(s.to_string());
                        } else if kind.contains("image") {
                            texts.push("[image]".to_string());
                        } else {
                            notes.opaque_items += 1;
                            texts.push(format!("[{kind} part]"));
                        }
                    }
                    _ => {
                        return Err(doc.err(at, &[Seg::Key("content"), Seg::Idx(i)], "a content part must be a string or an object"));
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        Some(_) => Err(doc.err(at, &[Seg::Key("content")], "must be a string, a list of content parts or null")),
    }
}

/// `function.arguments`: a JSON string parsed to a value (kept as a string when it is not JSON).
fn arguments(v: Option<&Value>) -> Value {
    match v {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(Value::String(s)) if s.trim().is_empty() => Value::Object(Default::default()),
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
        Some(other) => other.clone(),
    }
}

/// Appends the turns (and pins) of `msgs`, found at `at` in the file, to `t`.
fn convert(doc: &Doc<'_>, at: &[Seg<'_>], msgs: &[Value], t: &mut Transcript, task_pin: bool) -> Result<()> {
    let mut system_pinned = false;
    let mut task_pinned = false;
    // Whether anything but the opening system message has been read (pins are taken only before).
    let mut conversation_started = false;
    let mut ids = CallIds::default();
    let mut open_function_calls: VecDeque<String> = VecDeque::new();
    for (i, m) in msgs.iter().enumerate() {
        let here = [at, &[Seg::Idx(i)]].concat();
        if !m.is_object() {
            return Err(doc.err(&here, &[], "a message must be an object"));
        }
        let role = m.get("role").and_then(Value::as_str).ok_or_else(|| doc.err(&here, &[], "a message needs a string `role`"))?;
        let text = content_text(doc, &here, m.get("content"), &mut t.notes)?;
        let opening = !conversation_started;
        conversation_started |= !matches!(role, "system" | "developer") || system_pinned;
        match role {
            "system" | "developer" => {
                if opening && !system_pinned {
                    system_pinned = true;
                    if !text.trim().is_empty() {
                        t.pins.push((PinLayer::System, text));
                    } else {
                        t.notes.skipped_items += 1;
                    }
                } else if text.trim().is_empty() {
                    t.notes.skipped_items += 1;
                } else {
                    t.turns.push(Turn::new(Role::System, vec![Block::text(text)]));
                }
            }
            "user" => {
                if task_pin && opening && !task_pinned {
                    task_pinned = true;
                    t.pins.push((PinLayer::Task, text));
                } else if text.trim().is_empty() {
                    t.notes.skipped_items += 1;
                } else {
                    t.turns.push(Turn::user(text));
                }
            }
            "assistant" => assistant_turn(doc, &here, m, text, &mut ids, &mut open_function_calls, t)?,
            "tool" => tool_turn(m, text, &mut ids, t),
            "function" => {
                let call_id = open_function_calls.pop_front().unwrap_or_default();
                t.turns.push(Turn::tool_result(call_id, text, false));
            }
            other => {
                t.notes.opaque_items += 1;
                t.turns.push(Turn::user(format!("[{other} message] {text}")).with_tag("opaque"));
            }
        }
    }
    Ok(())
}

/// An assistant message: its text and its calls (`tool_calls[]` and the legacy `function_call`,
/// whose id is queued for the `role: function` message that answers it).
fn assistant_turn(
    doc: &Doc<'_>,
    here: &[Seg<'_>],
    m: &Value,
    text: String,
    ids: &mut CallIds,
    open_function_calls: &mut VecDeque<String>,
    t: &mut Transcript,
) -> Result<()> {
    let mut blocks = Vec::new();
    if !text.trim().is_empty() {
        blocks.push(Block::text(text));
    }
    match m.get("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(calls)) => {
            for (k, c) in calls.iter().enumerate() {
                let cat = [Seg::Key("tool_calls"), Seg::Idx(k)];
                let f = c.get("function").unwrap_or(c);
                let name = f.get("name").and_then(Value::as_str).ok_or_else(|| doc.err(here, &cat, "a tool call needs a string `function.name`"))?;
                let call_id = ids.call(c.get("id").and_then(Value::as_str), "call");
                blocks.push(Block::ToolCall { call_id, name: name.to_string(), arguments: arguments(f.get("arguments")) });
            }
        }
        Some(_) => return Err(doc.err(here, &[Seg::Key("tool_calls")], "must be an array of tool calls")),
    }
    if let Some(fc) = m.get("function_call").filter(|v| !v.is_null()) {
        let name = fc.get("name").and_then(Value::as_str).ok_or_else(|| doc.err(here, &[Seg::Key("function_call")], "needs a string `name`"))?;
        let call_id = ids.call(None, "function-call");
        open_function_calls.push_back(call_id.clone());
        blocks.push(Block::ToolCall { call_id, name: name.to_string(), arguments: arguments(fc.get("arguments")) });
    }
    if blocks.is_empty() {
        t.notes.skipped_items += 1;
    } else {
        t.turns.push(Turn::new(Role::Assistant, blocks));
    }
    Ok(())
}

/// A `role: tool` message: the result of the call it names (`tool_call_id`, or SWE-agent's
/// `tool_call_ids`: the output then answers the first, and the others point to it).
fn tool_turn(m: &Value, text: String, ids: &mut CallIds, t: &mut Transcript) {
    let mut raw_ids: Vec<&str> = Vec::new();
    if let Some(id) = m.get("tool_call_id").and_then(Value::as_str) {
        raw_ids.push(id);
    } else if let Some(list) = m.get("tool_call_ids").and_then(Value::as_array) {
        raw_ids.extend(list.iter().filter_map(Value::as_str));
    }
    match raw_ids.split_first() {
        // No id: `normalize` keeps it as text and counts it as an orphan result.
        None => t.turns.push(Turn::tool_result("", text, false)),
        Some((first, rest)) => {
            let first = ids.result(first);
            let mut blocks = vec![Block::ToolResult { call_id: first.clone(), content: text, is_error: false }];
            for r in rest {
                blocks.push(Block::ToolResult {
                    call_id: ids.result(r),
                    content: format!("[one output answered several calls: see the result of {first}]"),
                    is_error: false,
                });
            }
            t.turns.push(Turn::new(Role::Tool, blocks));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load_str(text: &str) -> Result<Vec<Transcript>> {
        load(Path::new("t.json"), text)
    }

    #[test]
    fn bare_array_pairs_calls_and_pins_system() -> Result<()> {
        let text = json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}},
                {"id": "c2", "type": "function", "function": {"name": "bad", "arguments": "{not json"}}
            ]},
            {"role": "tool", "tool_call_id": "c2", "content": "x"},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "assistant", "content": [{"type": "text", "text": "Sunny."}]}
        ])
        .to_string();
        let ts = load_str(&text)?;
        assert_eq!(ts.len(), 1);
        let t = &ts[0];
        assert_eq!(t.pins, vec![(PinLayer::System, "be brief".to_string())]);
        let roles: Vec<Role> = t.turns.iter().map(Turn::role).collect();
        assert_eq!(roles, [Role::User, Role::Assistant, Role::Tool, Role::Tool, Role::Assistant]);
        match &t.turns[1].blocks()[1] {
            Block::ToolCall { arguments, .. } => assert_eq!(arguments, &Value::String("{not json".into())),
            other => panic!("unexpected block {other:?}"),
        }
        match &t.turns[1].blocks()[0] {
            Block::ToolCall { arguments, .. } => assert_eq!(arguments, &json!({"city": "Oslo"})),
            other => panic!("unexpected block {other:?}"),
        }
        assert_eq!(t.turns[2].result_ids().collect::<Vec<_>>(), ["c1"]);
        assert_eq!(t.notes.normalize, Default::default());
        Ok(())
    }

    #[test]
    fn reused_call_ids_are_renamed() -> Result<()> {
        let text = json!([{"task_id": 3, "trial": 1, "info": {"task": {"actions": [{"name": "a", "kwargs": {"x": 1}}]}}, "traj": [
            {"role": "assistant", "content": null, "tool_calls": [{"id": "k", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "k", "content": "1"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "k", "function": {"name": "g", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "k", "content": "2"}
        ]}])
        .to_string();
        let ts = load_str(&text)?;
        let t = &ts[0];
        assert_eq!(t.id(), "task3-trial1");
        assert_eq!(t.gold_actions.len(), 1);
        assert_eq!(t.turns[3].result_ids().collect::<Vec<_>>(), ["k#2"]);
        assert_eq!(t.notes.normalize, Default::default());
        Ok(())
    }

    #[test]
    fn bad_shapes_name_the_position() {
        let e = load_str("{\n \"messages\": [\n  {\"role\": \"assistant\", \"tool_calls\": 5}\n ]\n}").map(|_| ()).err();
        let msg = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.starts_with("t.json:3:39: messages[0].tool_calls"), "{msg}");
        let e = load_str("[]").map(|_| ()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("empty array"), "{e}");
        let e = load_str("{\"x\": 1}").map(|_| ()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("t.json:1:1:"), "{e}");
    }
}
