//! LongMemEval-S haystacks (and the derived three-haystack file): a list of
//! `{question_id, question_type, question(s), answer(s), haystack_dates, haystack_session_ids,
//! haystack_sessions}`.
//!
//! Each haystack becomes one transcript; each session's turns carry its date as timestamp. The
//! original question (`question`, or `questions[0]`) takes the `has_answer` turns as turn-level
//! evidence when the haystack marks any; questions added by third parties (`questions[1..]`) only
//! name answer sessions, so their evidence is session-level (a session counts as recalled when any of
//! its turns is in the window), reported under their own category and not in the headline.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use super::Format;
use crate::error::{Error, Result};
use crate::replay::loaders::parse_json;
use crate::replay::transcript::{QaItem, Transcript};
use crate::turn::{Block, Role, Turn};

pub(super) fn load(path: &Path, text: &str) -> Result<Vec<Transcript>> {
    let v = parse_json(path, text)?;
    let items: Vec<&Value> = match &v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![&v],
        _ => return Err(Error::malformed(path, 1, 1, "expected a JSON array of LongMemEval haystacks")),
    };
    items.into_iter().enumerate().map(|(i, h)| load_one(path, i, h)).collect()
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A haystack's questions, answers and answer sessions: `questions[]`/`answers[]`/
/// `answer_session_ids[]` (derived file) or the original single `question`/`answer`/
/// `answer_session_ids` (`None` when there is no question at all).
fn questions_of(h: &Value) -> Option<Questions> {
    Some(if let Some(qs) = h.get("questions").and_then(Value::as_array) {
        let ans = h.get("answers").and_then(Value::as_array).cloned().unwrap_or_default();
        let sess = h.get("answer_session_ids").and_then(Value::as_array).cloned().unwrap_or_default();
        (
            qs.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            (0..qs.len()).map(|i| ans.get(i).and_then(as_text)).collect(),
            (0..qs.len())
                .map(|i| sess.get(i).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default())
                .collect(),
        )
    } else {
        let q = h.get("question").and_then(Value::as_str)?;
        let sess =
            h.get("answer_session_ids").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default();
        (vec![q.to_string()], vec![h.get("answer").and_then(as_text)], vec![sess])
    })
}

/// Questions, their answers, and the ids of the sessions that answer each.
type Questions = (Vec<String>, Vec<Option<String>>, Vec<Vec<String>>);

fn load_one(path: &Path, index: usize, h: &Value) -> Result<Transcript> {
    let id = h.get("question_id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| format!("haystack-{index}"));
    let at = format!("haystack [{index}] ({id})");
    let bad = |msg: String| Error::malformed(path, 0, 0, format!("{at}: {msg}"));
    let sessions = h.get("haystack_sessions").and_then(Value::as_array).ok_or_else(|| bad("missing array `haystack_sessions`".into()))?;
    let dates: Vec<Option<&str>> = h.get("haystack_dates").and_then(Value::as_array).map(|a| a.iter().map(Value::as_str).collect()).unwrap_or_default();
    let session_ids: Vec<Option<&str>> =
        h.get("haystack_session_ids").and_then(Value::as_array).map(|a| a.iter().map(Value::as_str).collect()).unwrap_or_default();

    let mut t = Transcript::new(id.clone(), path, Format::LongMemEval);
    let mut has_answer_turns = Vec::new();
    let mut session_turns: HashMap<String, Vec<usize>> = HashMap::new();
    for (si, s) in sessions.iter().enumerate() {
        let s = s.as_array().ok_or_else(|| bad(format!("haystack_sessions[{si}] must be an array of turns")))?;
        if s.is_empty() {
            t.notes.empty_sessions += 1;
            continue;
        }
        let sid = session_ids.get(si).copied().flatten().map(str::to_string).unwrap_or_else(|| format!("session-{si}"));
        for (ti, turn) in s.iter().enumerate() {
            let role = match turn.get("role").and_then(Value::as_str) {
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                Some("system") => Role::System,
                other => return Err(bad(format!("haystack_sessions[{si}][{ti}]: unknown role {other:?}"))),
            };
            let content =
                turn.get("content").and_then(Value::as_str).ok_or_else(|| bad(format!("haystack_sessions[{si}][{ti}]: `content` must be a string")))?;
            let idx = t.turns.len();
            let mut tt = Turn::new(role, vec![Block::text(content)]).with_source_id(format!("{sid}:{ti}"));
            if let Some(d) = dates.get(si).copied().flatten() {
                tt = tt.with_timestamp(d);
            }
            if turn.get("has_answer").and_then(Value::as_bool) == Some(true) {
                has_answer_turns.push(idx);
            }
            session_turns.entry(sid.clone()).or_default().push(idx);
            t.turns.push(tt);
        }
    }

    let qtype = h.get("question_type").and_then(Value::as_str).unwrap_or("unknown").to_string();
    let (questions, answers, answer_sessions) = questions_of(h).ok_or_else(|| bad("missing `question` or `questions`".into()))?;
    for (qi, question) in questions.into_iter().enumerate() {
        let answer = answers.get(qi).cloned().flatten();
        if qi == 0 && !has_answer_turns.is_empty() {
            let evidence = has_answer_turns.iter().map(|&i| vec![i]).collect();
            t.qa.push(QaItem { question, answer, evidence, category: qtype.clone(), headline: true });
            continue;
        }
        let mut evidence = Vec::new();
        for sid in answer_sessions.get(qi).map(Vec::as_slice).unwrap_or_default() {
            match session_turns.get(sid) {
                Some(turns) => evidence.push(turns.clone()),
                None => t.notes.unknown_evidence_ids += 1,
            }
        }
        if evidence.is_empty() {
            t.notes.qa_without_evidence += 1;
            continue;
        }
        t.qa.push(QaItem { question, answer, evidence, category: "session-level".into(), headline: false });
    }
    Ok(t)
}
