//! Claude Code session logs (JSON Lines, one event per line, as written under
//! `~/.claude/projects/…/<session>.jsonl`).
//!
//! Events are grouped by `sessionId`, one transcript per session in order of first appearance
//! (id = the session id). An event without a session id (`summary` lines carry only `leafUuid`)
//! joins the session of the event its `leafUuid` names, else the session of the event before it,
//! else the file's first session; a file with no session id at all is one transcript named after
//! the file. Mapping, in file order:
//!
//! - `user` events: string content → a user turn; `tool_result{tool_use_id, content, is_error}`
//!   blocks → tool-result turns (content a string or a list of text blocks; images become
//!   `[image]`); `text` / `image` blocks → a user turn, kept in block order around the results;
//! - `assistant` events: `text` and `tool_use{id, name, input}` blocks → one assistant turn with
//!   text and `ToolCall`s; the several lines Claude Code writes for one streamed message (same
//!   `message.id`) are merged into the turn of the first (a call a later line repeats is kept
//!   once); `thinking` / `redacted_thinking` blocks are not shown and are counted in
//!   `notes.skipped_items`; a `tool_use` id reused by a later message is renamed `<id>#<k>` and
//!   results join the latest call with their id, as in the OpenAI loader;
//! - an event whose `uuid` was already read (a line written twice) is skipped and counted;
//! - `summary` events → a user-visible text turn tagged `summary` (model-written);
//! - `system`, `file-history-snapshot` and events of unknown type → opaque user turns tagged
//!   `opaque` reading `[<type> event] <short JSON excerpt>`, counted in `notes.opaque_items`; content
//!   blocks of unknown type likewise become `[<type> block] …` text, counted;
//! - every turn carries the event's `timestamp` and `uuid` (as source id); sub-agent traffic
//!   (`isSidechain: true`) is kept and tagged `sidechain`; `isMeta` events are tagged `meta`.
//!
//! A line that is not JSON, not an object, or has content of the wrong type is `Malformed` with
//! its real 1-based line number; blank lines are skipped; an empty file is an error at line 1.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::{Map, Value};

use super::Format;
use crate::error::{Error, Result};
use crate::replay::loaders::json_path::{Seg, error_in_line, excerpt, file_stem};
use crate::replay::loaders::{CallIds, EXCERPT_CHARS, parts_text, shown_text};
use crate::replay::transcript::Transcript;
use crate::turn::{Block, Provenance, Role, Turn};

const FORMAT: Format = Format::ClaudeCode;

/// Bookkeeping fields every event repeats; left out of opaque excerpts.
const COMMON_FIELDS: &[&str] = &["uuid", "parentUuid", "sessionId", "timestamp", "cwd", "version", "gitBranch", "userType", "isSidechain", "type"];

/// One parsed line.
struct Event<'a> {
    line_no: usize,
    line: &'a str,
    obj: Map<String, Value>,
}

impl Event<'_> {
    fn str(&self, key: &str) -> Option<&str> {
        self.obj.get(key).and_then(Value::as_str)
    }

    fn err(&self, path: &Path, segs: &[Seg<'_>], msg: impl std::fmt::Display) -> Error {
        error_in_line(path, self.line_no, self.line, segs, msg)
    }
}

/// serde_json's message without its trailing ` at line L column C` (the line is the file's, given
/// separately).
fn json_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

pub(super) fn load(path: &Path, text: &str) -> Result<Vec<Transcript>> {
    let mut events = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        let line_no = i + 1;
        let v: Value =
            serde_json::from_str(line).map_err(|e| Error::malformed(path, line_no, e.column().max(1), format!("invalid JSON event: {}", json_message(&e))))?;
        let Value::Object(obj) = v else {
            return Err(Error::malformed(path, line_no, 1, "expected a JSON object (one event per line)"));
        };
        events.push(Event { line_no, line, obj });
    }
    if events.is_empty() {
        return Err(Error::malformed(path, 1, 1, "empty file: no Claude Code events"));
    }

    // Which session each event belongs to.
    let by_uuid: HashMap<&str, &str> = events.iter().filter_map(|e| Some((e.str("uuid")?, e.str("sessionId")?))).collect();
    let first_session = events.iter().find_map(|e| e.str("sessionId")).map(str::to_string).unwrap_or_else(|| file_stem(path));
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Vec<&Event<'_>>> = HashMap::new();
    let mut current: Option<String> = None;
    for e in &events {
        let session = e
            .str("sessionId")
            .or_else(|| e.str("leafUuid").and_then(|u| by_uuid.get(u).copied()))
            .map(str::to_string)
            .or_else(|| current.clone())
            .unwrap_or_else(|| first_session.clone());
        if e.str("sessionId").is_some() {
            current = Some(session.clone());
        }
        let group = groups.entry(session.clone()).or_default();
        if group.is_empty() {
            order.push(session);
        }
        group.push(e);
    }

    let mut out = Vec::with_capacity(order.len());
    for session in order {
        let mut t = Transcript::new(session.clone(), path, FORMAT);
        let mut state = SessionState::default();
        for e in groups.remove(&session).unwrap_or_default() {
            if e.str("uuid").is_some_and(|u| !state.seen.insert(u.to_string())) {
                // The same event written twice (a duplicated streamed line).
                t.notes.skipped_items += 1;
                continue;
            }
            load_event(path, e, &mut t, &mut state)?;
        }
        t.normalize_turns();
        out.push(t);
    }
    Ok(out)
}

/// What reading one session's events keeps.
#[derive(Default)]
struct SessionState {
    /// The turn of each streamed assistant message, by `message.id`.
    by_message_id: HashMap<String, usize>,
    /// Unique call ids (reused ids renamed).
    ids: CallIds,
    /// Event uuids read so far.
    seen: HashSet<String>,
}

/// Adds the event's tags, timestamp and source id to a turn.
fn decorate(e: &Event<'_>, mut turn: Turn) -> Turn {
    if let Some(ts) = e.str("timestamp") {
        turn = turn.with_timestamp(ts);
    }
    if let Some(u) = e.str("uuid") {
        turn = turn.with_source_id(u);
    }
    if e.obj.get("isSidechain").and_then(Value::as_bool) == Some(true) {
        turn = turn.with_tag("sidechain");
    }
    if e.obj.get("isMeta").and_then(Value::as_bool) == Some(true) {
        turn = turn.with_tag("meta");
    }
    turn
}

fn load_event(path: &Path, e: &Event<'_>, t: &mut Transcript, state: &mut SessionState) -> Result<()> {
    let kind = e.str("type").unwrap_or("untyped");
    match kind {
        "user" | "assistant" => {}
        "summary" => {
            match e.str("summary").filter(|s| !s.trim().is_empty()) {
                Some(s) => {
                    let turn = Turn::user(s).with_provenance(Provenance::Model).with_tag("summary");
                    t.turns.push(decorate(e, turn));
                }
                None => t.notes.skipped_items += 1,
            }
            return Ok(());
        }
        other => {
            let rest: Map<String, Value> = e.obj.iter().filter(|(k, _)| !COMMON_FIELDS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
            t.notes.opaque_items += 1;
            let turn = Turn::user(format!("[{other} event] {}", excerpt(&Value::Object(rest), EXCERPT_CHARS))).with_tag("opaque");
            t.turns.push(decorate(e, turn));
            return Ok(());
        }
    }
    let message = e
        .obj
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| e.err(path, &[Seg::Key("message")], format!("a `{kind}` event needs an object `message`")))?;
    let role = match message.get("role").and_then(Value::as_str) {
        Some("assistant") => Role::Assistant,
        Some("user") => Role::User,
        _ if kind == "assistant" => Role::Assistant,
        _ => Role::User,
    };
    let content_at = [Seg::Key("message"), Seg::Key("content")];
    let blocks = match message.get("content") {
        Some(Value::String(s)) => {
            if s.trim().is_empty() {
                t.notes.skipped_items += 1;
            } else {
                t.turns.push(decorate(e, Turn::new(role, vec![Block::text(s.as_str())])));
            }
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        None | Some(Value::Null) => {
            t.notes.skipped_items += 1;
            return Ok(());
        }
        Some(_) => return Err(e.err(path, &content_at, "must be a string or a list of content blocks")),
    };

    if role == Role::Assistant { assistant_event(path, e, message, blocks, t, state) } else { user_event(path, e, blocks, t, &state.ids) }
}

/// An assistant message's blocks: text and tool calls, one turn, or more blocks for the turn of an
/// earlier line of the same streamed message (same `message.id`).
fn assistant_event(path: &Path, e: &Event<'_>, message: &Value, blocks: &[Value], t: &mut Transcript, state: &mut SessionState) -> Result<()> {
    let message_id = message.get("id").and_then(Value::as_str);
    let merged = message_id.and_then(|id| state.by_message_id.get(id)).copied();
    let mut out = Vec::with_capacity(blocks.len());
    for (i, b) in blocks.iter().enumerate() {
        let at = [Seg::Key("message"), Seg::Key("content"), Seg::Idx(i)];
        match block_kind(e, path, &at, b)? {
            "tool_use" => {
                let id = b.get("id").and_then(Value::as_str).ok_or_else(|| e.err(path, &at, "a `tool_use` block needs a string `id`"))?;
                let name = b.get("name").and_then(Value::as_str).ok_or_else(|| e.err(path, &at, "a `tool_use` block needs a string `name`"))?;
                // A call repeated by a later line of the same streamed message is the same call.
                let current = state.ids.result(id);
                let repeated = merged.and_then(|idx| t.turns.get(idx)).is_some_and(|turn| turn.call_ids().any(|c| c == current));
                if repeated {
                    t.notes.skipped_items += 1;
                    continue;
                }
                let arguments = b.get("input").cloned().unwrap_or_else(|| Value::Object(Map::new()));
                out.push(Block::ToolCall { call_id: state.ids.call(Some(id), "toolu"), name: name.to_string(), arguments });
            }
            other => {
                if let Some(text) = shown_text(other, b, &mut t.notes) {
                    out.push(Block::text(text));
                }
            }
        }
    }
    if let Some(turn) = merged.and_then(|idx| t.turns.get_mut(idx)) {
        turn.blocks_mut().extend(out);
        return Ok(());
    }
    if out.is_empty() {
        return Ok(());
    }
    if let Some(id) = message_id {
        state.by_message_id.insert(id.to_string(), t.turns.len());
    }
    t.turns.push(decorate(e, Turn::new(Role::Assistant, out)));
    Ok(())
}

/// A user event's blocks: results become tool turns, other blocks user turns, in block order.
fn user_event(path: &Path, e: &Event<'_>, blocks: &[Value], t: &mut Transcript, ids: &CallIds) -> Result<()> {
    let mut texts: Vec<Block> = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let at = [Seg::Key("message"), Seg::Key("content"), Seg::Idx(i)];
        match block_kind(e, path, &at, b)? {
            "tool_result" => {
                if !texts.is_empty() {
                    t.turns.push(decorate(e, Turn::new(Role::User, std::mem::take(&mut texts))));
                }
                let id = b.get("tool_use_id").and_then(Value::as_str).ok_or_else(|| e.err(path, &at, "a `tool_result` block needs a string `tool_use_id`"))?;
                let content = result_text(e, path, &at, b.get("content"))?;
                let is_error = b.get("is_error").and_then(Value::as_bool).unwrap_or(false);
                t.turns.push(decorate(e, Turn::tool_result(ids.result(id), content, is_error)));
            }
            other => {
                if let Some(text) = shown_text(other, b, &mut t.notes) {
                    texts.push(Block::text(text));
                }
            }
        }
    }
    if !texts.is_empty() {
        t.turns.push(decorate(e, Turn::new(Role::User, texts)));
    }
    Ok(())
}

/// The `type` of a content block (which must be an object).
fn block_kind<'v>(e: &Event<'_>, path: &Path, at: &[Seg<'_>], b: &'v Value) -> Result<&'v str> {
    if !b.is_object() {
        return Err(e.err(path, at, "a content block must be an object"));
    }
    Ok(b.get("type").and_then(Value::as_str).unwrap_or("untyped"))
}

/// A `tool_result`'s content: a string, a list of blocks (text kept, images `[image]`), or absent.
fn result_text(e: &Event<'_>, path: &Path, at: &[Seg<'_>], content: Option<&Value>) -> Result<String> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => Ok(parts_text(parts)),
        Some(_) => Err(e.err(path, &[at, &[Seg::Key("content")]].concat(), "must be a string or a list of text blocks")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Vec<Transcript>> {
        load(Path::new("s.jsonl"), text)
    }

    #[test]
    fn merges_streamed_lines_and_pairs_results() -> Result<()> {
        let text = [
            r#"{"type":"summary","summary":"Fixing a bug","leafUuid":"u4"}"#,
            r#"{"type":"user","sessionId":"s1","uuid":"u1","timestamp":"t1","message":{"role":"user","content":"fix it"}}"#,
            r#"{"type":"assistant","sessionId":"s1","uuid":"u2","message":{"id":"m1","role":"assistant","content":[{"type":"thinking","thinking":"hmm"}]}}"#,
            r#"{"type":"assistant","sessionId":"s1","uuid":"u3","message":{"id":"m1","role":"assistant","content":[{"type":"text","text":"Looking."}]}}"#,
            r#"{"type":"assistant","sessionId":"s1","uuid":"u4","message":{"id":"m1","role":"assistant","content":[{"type":"tool_use","id":"tu1","name":"Bash","input":{"command":"ls"}}]}}"#,
            "",
            r#"{"type":"user","sessionId":"s1","uuid":"u5","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"tu1","content":[{"type":"text","text":"a.rs"}],"is_error":true},{"type":"text","text":"[Request interrupted]"}]}}"#,
            r#"{"type":"file-history-snapshot","messageId":"u5","snapshot":{}}"#,
        ]
        .join("\n");
        let ts = load_str(&text)?;
        assert_eq!(ts.len(), 1);
        let t = &ts[0];
        assert_eq!(t.id(), "s1");
        let roles: Vec<Role> = t.turns.iter().map(Turn::role).collect();
        assert_eq!(roles, [Role::User, Role::User, Role::Assistant, Role::Tool, Role::User, Role::User]);
        assert_eq!(t.turns[0].tags(), ["summary"]);
        assert_eq!(t.turns[2].blocks().len(), 2);
        assert!(matches!(&t.turns[3].blocks()[0], Block::ToolResult { is_error: true, content, .. } if content == "a.rs"));
        assert_eq!(t.turns[5].tags(), ["opaque"]);
        assert_eq!(t.notes.opaque_items, 1);
        assert_eq!(t.notes.skipped_items, 1);
        assert_eq!(t.notes.normalize, Default::default());
        Ok(())
    }

    #[test]
    fn errors_name_the_line() {
        let err = |s: &str| load_str(s).map(|_| ()).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(err(""), "s.jsonl:1:1: empty file: no Claude Code events");
        assert!(err("{\"type\":\"user\"}\n\n{\"type\":").starts_with("s.jsonl:3:"), "{}", err("{}\n\n{\"type\":"));
        assert_eq!(err("{}\n[1]"), "s.jsonl:2:1: expected a JSON object (one event per line)");
        assert_eq!(err("{\"type\":\"user\",\"message\":{\"content\":5}}"), "s.jsonl:1:37: message.content: must be a string or a list of content blocks");
    }
}
