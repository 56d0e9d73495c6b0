//! Writers that save a transcript in a format a loader reads back: LoCoMo JSON and OpenAI chat
//! JSON. They make the project's own samples (`ctxbench samples`) and the loaders' round-trip tests.

use serde_json::{Map, Value, json};

use crate::pins::PinLayer;
use crate::replay::transcript::Transcript;
use crate::turn::{Block, Role, Turn};

fn speaker_of(turn: &Turn) -> String {
    turn.speaker().map_or_else(|| turn.role().as_str().to_string(), str::to_string)
}

/// Writes a transcript in the LoCoMo format (a one-sample array) that the LoCoMo loader reads back
/// to the same turns and QA items.
///
/// Sessions are runs of turns with the same timestamp (`session_<n>_date_time` is that
/// timestamp; turns without one make sessions without a date). Turns get `dia_id`s `D<n>:<k>`,
/// their speaker's name (the role's name when a turn has none) and their plain text; QA evidence
/// is written as the `dia_id`s of the evidence turns (session-level groups become one id per
/// turn), numeric categories as numbers. The first `user` turn's speaker is `speaker_a`. LoCoMo
/// has no pins, tool blocks or provenance: pins are not written and tool turns become text.
pub fn to_locomo_json(t: &Transcript) -> Value {
    let speaker_a = t.turns.iter().find(|x| x.role() == Role::User).or(t.turns.first()).map_or_else(|| "user".to_string(), speaker_of);
    let speaker_b = t.turns.iter().map(speaker_of).find(|s| *s != speaker_a).unwrap_or_else(|| "assistant".to_string());
    let mut conv = Map::new();
    conv.insert("speaker_a".into(), Value::String(speaker_a));
    conv.insert("speaker_b".into(), Value::String(speaker_b));
    let mut dia: Vec<String> = Vec::with_capacity(t.turns.len());
    let mut session = 0usize;
    let mut k = 0usize;
    let mut current: Vec<Value> = Vec::new();
    let mut prev_ts: Option<Option<&str>> = None;
    for turn in &t.turns {
        let ts = turn.timestamp();
        if prev_ts != Some(ts) {
            if session > 0 {
                conv.insert(format!("session_{session}"), Value::Array(std::mem::take(&mut current)));
            }
            session += 1;
            k = 0;
            if let Some(d) = ts {
                conv.insert(format!("session_{session}_date_time"), Value::String(d.to_string()));
            }
            prev_ts = Some(ts);
        }
        k += 1;
        let id = format!("D{session}:{k}");
        current.push(json!({"speaker": speaker_of(turn), "dia_id": id, "text": turn.plain_text()}));
        dia.push(id);
    }
    if session > 0 {
        conv.insert(format!("session_{session}"), Value::Array(current));
    }
    let qa: Vec<Value> =
        t.qa.iter()
            .map(|q| {
                let evidence: Vec<&String> = q.evidence.iter().flatten().filter_map(|&i| dia.get(i)).collect();
                let category = q.category.parse::<u64>().map_or_else(|_| Value::String(q.category.clone()), Value::from);
                let mut item = Map::new();
                item.insert("question".into(), Value::String(q.question.clone()));
                if let Some(a) = &q.answer {
                    item.insert("answer".into(), Value::String(a.clone()));
                }
                item.insert("evidence".into(), json!(evidence));
                item.insert("category".into(), category);
                Value::Object(item)
            })
            .collect();
    json!([{"sample_id": t.id, "conversation": conv, "qa": qa}])
}

/// Whether `s` is a valid OpenAI message `name` (letters, digits, `_`, `-`; up to 64).
fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Writes a transcript as an OpenAI chat object `{"id", "messages": [...]}` that the OpenAI-chat
/// loader reads back to the same turns.
///
/// The pins, in layer order and separated by blank lines, form the first `system` message (the
/// format has one instruction slot, so a Task pin loads back as part of the System pin). When
/// there are no pins but the transcript has system turns, an empty first system message keeps them
/// turns. Assistant turns carry their text (or `null`) and `tool_calls` (`type: function`,
/// arguments as a JSON string); each tool result is a `role: tool` message with its
/// `tool_call_id`. Speakers that are valid OpenAI names become `name`. Not representable, so not
/// written: timestamps, tags, provenance, priorities, and a result's error flag (tool output text
/// is kept as is).
pub fn to_openai_json(t: &Transcript) -> Value {
    let mut messages: Vec<Value> = Vec::with_capacity(t.turns.len() + 1);
    let mut pins: Vec<&(PinLayer, String)> = t.pins.iter().collect();
    pins.sort_by_key(|p| p.0);
    if !pins.is_empty() {
        let text = pins.iter().map(|p| p.1.as_str()).collect::<Vec<_>>().join("\n\n");
        messages.push(json!({"role": "system", "content": text}));
    } else if t.turns.iter().any(|x| x.role() == Role::System) {
        messages.push(json!({"role": "system", "content": ""}));
    }
    for turn in &t.turns {
        let mut texts: Vec<&str> = Vec::new();
        let mut calls: Vec<Value> = Vec::new();
        let mut results: Vec<Value> = Vec::new();
        for b in turn.blocks() {
            match b {
                Block::Text { text } => texts.push(text),
                Block::ToolCall { call_id, name, arguments } => calls.push(json!({
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments.to_string()},
                })),
                Block::ToolResult { call_id, content, .. } => results.push(json!({"role": "tool", "tool_call_id": call_id, "content": content})),
            }
        }
        if !texts.is_empty() || !calls.is_empty() {
            let role = match turn.role() {
                Role::System => "system",
                Role::User | Role::Tool => "user",
                Role::Assistant => "assistant",
            };
            let role = if calls.is_empty() { role } else { "assistant" };
            let mut m = Map::new();
            m.insert("role".into(), Value::String(role.into()));
            m.insert("content".into(), if texts.is_empty() { Value::Null } else { Value::String(texts.join("\n")) });
            if !calls.is_empty() {
                m.insert("tool_calls".into(), Value::Array(calls));
            }
            if let Some(s) = turn.speaker().filter(|s| valid_name(s)) {
                m.insert("name".into(), Value::String(s.to_string()));
            }
            messages.push(Value::Object(m));
        }
        messages.extend(results);
    }
    json!({"id": t.id, "messages": messages})
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::replay::loaders::{Format, load_file};
    use crate::replay::synth::{agent_session, conversation};

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    /// A file in the temp directory, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str) -> Self {
            TempFile(std::env::temp_dir().join(format!("ctxwin-writers-{}-{name}", std::process::id())))
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            if let Err(e) = std::fs::remove_file(&self.0) {
                eprintln!("could not remove {}: {e}", self.0.display());
            }
        }
    }

    /// How sample files are written: pretty JSON and a final newline.
    fn render(v: &Value) -> Result<String, serde_json::Error> {
        Ok(serde_json::to_string_pretty(v)? + "\n")
    }

    fn same(a: &Transcript, b: &Transcript) -> bool {
        a.id == b.id && a.turns == b.turns && a.pins == b.pins && a.qa == b.qa
    }

    #[test]
    fn locomo_round_trip() -> TestResult {
        for (name, t) in [("conv", conversation(5, 300)), ("agent", agent_session(5, 120))] {
            let f = TempFile::new(&format!("{name}.locomo.json"));
            std::fs::write(&f.0, render(&to_locomo_json(&t))?)?;
            let loaded = load_file(&f.0, None)?;
            assert_eq!(loaded.len(), 1);
            let l = &loaded[0];
            assert_eq!((l.format, l.id.as_str()), (Some(Format::Locomo), t.id.as_str()));
            assert_eq!(l.turns.len(), t.turns.len());
            assert_eq!(l.qa.len(), t.qa.len());
            assert_eq!(l.notes, Default::default());
            if name == "conv" {
                // A generated conversation is exactly what LoCoMo holds: whole values survive.
                assert!(same(l, &t));
            }
        }
        Ok(())
    }

    #[test]
    fn openai_round_trip() -> TestResult {
        for (name, t) in [("agent", agent_session(5, 200)), ("conv", conversation(5, 120))] {
            let f = TempFile::new(&format!("{name}.openai.json"));
            std::fs::write(&f.0, render(&to_openai_json(&t))?)?;
            let loaded = load_file(&f.0, None)?;
            assert_eq!(loaded.len(), 1);
            let l = &loaded[0];
            assert_eq!((l.format, l.id.as_str()), (Some(Format::OpenAiChat), t.id.as_str()));
            assert_eq!(l.turns.len(), t.turns.len());
            if name == "agent" {
                assert_eq!(l.qa.len(), t.qa.len());
                assert_eq!(l.turns, t.turns);
                let pins: Vec<&str> = t.pins.iter().map(|p| p.1.as_str()).collect();
                assert_eq!(l.pins, vec![(PinLayer::System, pins.join("\n\n"))]);
            } else {
                // OpenAI chat has no place for QA items: a conversation's are not written.
                assert!(l.qa.is_empty());
            }
        }
        Ok(())
    }
}
