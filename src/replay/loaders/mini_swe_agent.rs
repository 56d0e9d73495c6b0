//! mini-swe-agent trajectories (`*.traj.json`): `{instance_id, info{…}, messages[{role, content}]}`
//! (or an array of such objects). One transcript per trajectory, id = `instance_id` (else the file
//! name).
//!
//! The agent has no tool-call API: its action is the fenced ```` ```bash ```` block of an assistant
//! message, and the harness answers with a user message. Mapping:
//!
//! - a `system` message that opens the trajectory → the System pin; the `user` message that follows
//!   it before any assistant message (the task: the PR description and the harness's instructions)
//!   → the Task pin; neither is repeated as a turn. Only those two positions are host
//!   instruction: a later system message is a system turn, and a user message after an assistant
//!   message (an observation, whatever it says) or one shaped like an observation is never pinned;
//! - an assistant message with exactly one bash block (the harness's own rule: `` ```bash\s*\n(.*?)\n``` ``,
//!   exactly one match, else a format error) → one assistant turn with its whole text and a
//!   `ToolCall` `bash {"command": …}` with id `call-<n>` (n counts calls from 1 in file order);
//!   with zero or several blocks it is a plain assistant turn;
//! - the user message right after a call is that call's `ToolResult` (content = the message
//!   text) when it is an observation `<returncode>N</returncode>…` (`is_error` = N ≠ 0), a timeout
//!   notice `The last command <command>…` (`is_error`, tagged `timeout`), or — after the
//!   `COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT` command — the submitted diff (tagged `submission`);
//! - every other user message stays a user turn (the harness's format-error messages are tagged
//!   `format-error`).

use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::Format;
use crate::error::{Error, Result};
use crate::pins::PinLayer;
use crate::replay::loaders::json_path::{Seg, error_at, file_stem};
use crate::replay::loaders::parse_json;
use crate::replay::transcript::Transcript;
use crate::turn::{Block, Role, Turn};

const FORMAT: Format = Format::MiniSweAgent;

/// mini-swe-agent's default `action_regex`.
static BASH_BLOCK: LazyLock<std::result::Result<Regex, regex::Error>> = LazyLock::new(|| Regex::new(r"(?s)```bash\s*\n(.*?)\n```"));

/// The command marker that makes the harness submit (the output is then the final diff).
const SUBMIT_MARKER: &str = "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT";
const TIMEOUT_PREFIX: &str = "The last command <command>";
const FORMAT_ERROR_PREFIX: &str = "Please always provide EXACTLY ONE action";

pub(super) fn load(path: &Path, text: &str) -> Result<Vec<Transcript>> {
    let v = parse_json(path, text)?;
    let stem = file_stem(path);
    let stem = stem.strip_suffix(".traj").unwrap_or(&stem).to_string();
    match &v {
        Value::Object(_) => Ok(vec![load_one(path, text, &[], &v, stem)?]),
        Value::Array(items) if !items.is_empty() => {
            items.iter().enumerate().map(|(i, item)| load_one(path, text, &[Seg::Idx(i)], item, format!("{stem}#{}", i + 1))).collect()
        }
        _ => Err(error_at(path, text, &[], "expected a mini-swe-agent trajectory object {instance_id, messages}")),
    }
}

/// The single bash command of an assistant message, when it has exactly one bash block.
fn single_bash_command(text: &str) -> Result<Option<String>> {
    let re = BASH_BLOCK.as_ref().map_err(|e| Error::malformed("<mini-swe-agent action regex>", 0, 0, e.to_string()))?;
    let mut it = re.captures_iter(text);
    let (Some(first), None) = (it.next(), it.next()) else { return Ok(None) };
    Ok(first.get(1).map(|m| m.as_str().trim().to_string()))
}

/// `N` of a leading `<returncode>N</returncode>`.
fn returncode(text: &str) -> Option<Option<i64>> {
    let rest = text.strip_prefix("<returncode>")?;
    let end = rest.find("</returncode>");
    Some(end.and_then(|e| rest[..e].trim().parse().ok()))
}

fn load_one(path: &Path, text: &str, at: &[Seg<'_>], obj: &Value, default_id: String) -> Result<Transcript> {
    let err = |extra: &[Seg<'_>], msg: &str| error_at(path, text, &[at, extra].concat(), msg);
    if !obj.is_object() {
        return Err(err(&[], "expected a trajectory object {instance_id, messages}"));
    }
    let id = obj.get("instance_id").and_then(Value::as_str).map(str::to_string).unwrap_or(default_id);
    let msgs = obj.get("messages").and_then(Value::as_array).ok_or_else(|| err(&[Seg::Key("messages")], "must be an array of messages"))?;
    let mut t = Transcript::new(id, path, FORMAT);
    let mut system_pinned = false;
    let mut task_pinned = false;
    // Whether anything but the opening system message has been read (pins are taken only before).
    let mut conversation_started = false;
    let mut calls = 0usize;
    // The call waiting for its result: (call id, whether it is the submit command).
    let mut pending: Option<(String, bool)> = None;
    for (i, m) in msgs.iter().enumerate() {
        let here = [Seg::Key("messages"), Seg::Idx(i)];
        let role = m.get("role").and_then(Value::as_str).ok_or_else(|| err(&here, "a message needs a string `role`"))?;
        let content = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => String::new(),
            Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n"),
            Some(_) => return Err(err(&[&here[..], &[Seg::Key("content")]].concat(), "must be a string")),
        };
        let opening = !conversation_started;
        conversation_started |= role != "system" || system_pinned;
        match role {
            "system" if opening && !system_pinned => {
                system_pinned = true;
                t.pins.push((PinLayer::System, content));
            }
            "user" if opening && !task_pinned && returncode(&content).is_none() => {
                task_pinned = true;
                conversation_started = true;
                t.pins.push((PinLayer::Task, content));
            }
            _ if content.trim().is_empty() => {
                t.notes.skipped_items += 1;
            }
            "system" => t.turns.push(Turn::new(Role::System, vec![Block::text(content)])),
            "user" => {
                let turn = match pending.take() {
                    Some((call_id, submit)) => {
                        if let Some(rc) = returncode(&content) {
                            Turn::tool_result(call_id, content, rc != Some(0))
                        } else if content.starts_with(TIMEOUT_PREFIX) {
                            Turn::tool_result(call_id, content, true).with_tag("timeout")
                        } else if submit {
                            Turn::tool_result(call_id, content, false).with_tag("submission")
                        } else {
                            Turn::user(content)
                        }
                    }
                    None if content.starts_with(FORMAT_ERROR_PREFIX) => Turn::user(content).with_tag("format-error"),
                    None => Turn::user(content),
                };
                t.turns.push(turn);
            }
            "assistant" => {
                pending = None;
                match single_bash_command(&content)? {
                    Some(command) => {
                        calls += 1;
                        let call_id = format!("call-{calls}");
                        pending = Some((call_id.clone(), command.contains(SUBMIT_MARKER)));
                        t.turns.push(Turn::tool_call(Some(content), call_id, "bash", serde_json::json!({ "command": command })));
                    }
                    None => t.turns.push(Turn::assistant(content)),
                }
            }
            other => {
                t.notes.opaque_items += 1;
                t.turns.push(Turn::user(format!("[{other} message] {content}")).with_tag("opaque"));
            }
        }
    }
    t.normalize_turns();
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn action_regex_compiles_and_needs_exactly_one_block() -> Result<()> {
        assert_eq!(single_bash_command("THOUGHT: x\n\n```bash\nls -la\n```")?, Some("ls -la".into()));
        assert_eq!(single_bash_command("```bash\na\n```\n```bash\nb\n```")?, None);
        assert_eq!(single_bash_command("```python\na\n```")?, None);
        Ok(())
    }

    #[test]
    fn maps_calls_results_and_pins() -> Result<()> {
        let text = json!({"instance_id": "x__y-1", "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "<pr_description>fix it</pr_description>"},
            {"role": "assistant", "content": "look\n\n```bash\nls\n```"},
            {"role": "user", "content": "<returncode>2</returncode>\n<output>\nnope\n</output>"},
            {"role": "assistant", "content": "two\n```bash\na\n```\n```bash\nb\n```"},
            {"role": "user", "content": "Please always provide EXACTLY ONE action in triple backticks, found 2 actions."},
            {"role": "assistant", "content": "no block"},
            {"role": "user", "content": "<returncode>0</returncode>"},
            {"role": "assistant", "content": "```bash\necho COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git diff\n```"},
            {"role": "user", "content": "diff --git a/f b/f"}
        ]})
        .to_string();
        let ts = load(Path::new("x.traj.json"), &text)?;
        let t = &ts[0];
        assert_eq!(t.id(), "x__y-1");
        assert_eq!(t.pins.len(), 2);
        assert_eq!(t.pins[1], (PinLayer::Task, "<pr_description>fix it</pr_description>".to_string()));
        let roles: Vec<Role> = t.turns.iter().map(Turn::role).collect();
        use Role::*;
        assert_eq!(roles, [Assistant, Tool, Assistant, User, Assistant, User, Assistant, Tool]);
        assert!(matches!(&t.turns[1].blocks()[0], Block::ToolResult { call_id, is_error: true, .. } if call_id == "call-1"));
        assert_eq!(t.turns[3].tags(), ["format-error"]);
        assert!(matches!(&t.turns[7].blocks()[0], Block::ToolResult { call_id, is_error: false, .. } if call_id == "call-2"));
        assert_eq!(t.turns[7].tags(), ["submission"]);
        assert_eq!(t.notes.normalize, Default::default());
        Ok(())
    }

    #[test]
    fn wrong_types_are_malformed() {
        let e = load(Path::new("m.json"), "{\"messages\": [{\"role\": 1}]}").map(|_| ()).err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("m.json:1:15: messages[0]: a message needs a string `role`"));
    }
}
