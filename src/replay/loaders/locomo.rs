//! LoCoMo (`locomo10.json`): long two-person dialogues in sessions, with QA items whose evidence
//! names turns by `dia_id` (`D<session>:<index>`).
//!
//! Turns keep their speaker's name and carry their session's date as timestamp (the window shows it
//! once per session as `[date] speaker: text`); image turns keep their caption. The first speaker is
//! the `user` role, the second the `assistant`. Messy evidence (several ids in one string, junk, ids
//! that do not exist, no evidence) is repaired where possible and counted in the notes.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::Format;
use crate::error::{Error, Result};
use crate::replay::loaders::parse_json;
use crate::replay::transcript::{LoadNotes, QaItem, Transcript};
use crate::turn::{Role, Turn};

pub(super) fn load(path: &Path, text: &str) -> Result<Vec<Transcript>> {
    let v = parse_json(path, text)?;
    let samples = v.as_array().ok_or_else(|| Error::malformed(path, 1, 1, "expected a JSON array of LoCoMo samples"))?;
    let mut out = Vec::with_capacity(samples.len());
    for (i, s) in samples.iter().enumerate() {
        out.push(load_sample(path, i, s)?);
    }
    Ok(out)
}

fn field<'a>(path: &Path, at: &str, v: &'a Value, key: &str) -> Result<&'a Value> {
    v.get(key).ok_or_else(|| Error::malformed(path, 0, 0, format!("{at}: missing field `{key}`")))
}

fn str_of<'a>(path: &Path, at: &str, v: &'a Value, key: &str) -> Result<&'a str> {
    field(path, at, v, key)?.as_str().ok_or_else(|| Error::malformed(path, 0, 0, format!("{at}: field `{key}` must be a string")))
}

fn load_sample(path: &Path, index: usize, s: &Value) -> Result<Transcript> {
    let at0 = format!("sample [{index}]");
    let id = s.get("sample_id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| format!("sample-{index}"));
    let at = format!("{at0} ({id})");
    let conv = field(path, &at, s, "conversation")?;
    let conv_obj = conv.as_object().ok_or_else(|| Error::malformed(path, 0, 0, format!("{at}: `conversation` must be an object")))?;
    let speaker_a = str_of(path, &at, conv, "speaker_a")?;
    let mut t = Transcript::new(id.clone(), path, Format::Locomo);
    let dia_index = load_sessions(path, &at, conv_obj, speaker_a, &mut t)?;
    let qa = s.get("qa").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for (k, q) in qa.iter().enumerate() {
        let qat = format!("{at}, qa[{k}]");
        let question = str_of(path, &qat, q, "question")?.to_string();
        let category = q.get("category").map(|c| match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let category = category.ok_or_else(|| Error::malformed(path, 0, 0, format!("{qat}: missing field `category`")))?;
        let answer = q.get("answer").and_then(|a| match a {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        });
        let evidence = evidence_of(q, &dia_index, &mut t.notes);
        if evidence.is_empty() {
            t.notes.qa_without_evidence += 1;
            continue;
        }
        let headline = category != "5";
        t.qa.push(QaItem { question, answer: if headline { answer } else { None }, evidence, category, headline });
    }
    Ok(t)
}

/// Pushes every session's turns (in session order, from both `session_<n>` and
/// `session_<n>_date_time` keys) onto `t`; returns each turn's index by `dia_id`.
fn load_sessions(path: &Path, at: &str, conv: &Map<String, Value>, speaker_a: &str, t: &mut Transcript) -> Result<HashMap<String, usize>> {
    let mut numbers: Vec<u32> =
        conv.keys().filter_map(|k| k.strip_prefix("session_")).filter_map(|rest| rest.split('_').next()).filter_map(|n| n.parse().ok()).collect();
    numbers.sort_unstable();
    numbers.dedup();

    let mut dia_index: HashMap<String, usize> = HashMap::new();
    for n in numbers {
        let date = conv.get(&format!("session_{n}_date_time")).and_then(Value::as_str);
        let turns = match conv.get(&format!("session_{n}")) {
            Some(Value::Array(a)) if !a.is_empty() => a,
            Some(Value::Array(_)) | None => {
                t.notes.empty_sessions += 1;
                continue;
            }
            Some(_) => return Err(Error::malformed(path, 0, 0, format!("{at}: `session_{n}` must be an array of turns"))),
        };
        for (j, turn) in turns.iter().enumerate() {
            let tat = format!("{at}, session_{n}[{j}]");
            let speaker = str_of(path, &tat, turn, "speaker")?;
            let mut text = str_of(path, &tat, turn, "text")?.to_string();
            if let Some(caption) = turn.get("blip_caption").and_then(Value::as_str) {
                text.push_str(&format!(" [shares a photo: {caption}]"));
            }
            let role = if speaker == speaker_a { Role::User } else { Role::Assistant };
            let mut tt = Turn::new(role, vec![crate::turn::Block::text(text)]).with_speaker(speaker);
            if let Some(d) = date {
                tt = tt.with_timestamp(d);
            }
            if let Some(dia) = turn.get("dia_id").and_then(Value::as_str) {
                tt = tt.with_source_id(dia);
                dia_index.insert(dia.to_string(), t.turns.len());
            }
            t.turns.push(tt);
        }
    }
    Ok(dia_index)
}

/// A QA item's evidence groups (one turn each), repaired where possible; what is malformed or
/// unknown is counted in `notes`.
fn evidence_of(q: &Value, dia_index: &HashMap<String, usize>, notes: &mut LoadNotes) -> Vec<Vec<usize>> {
    let mut evidence = Vec::new();
    for e in q.get("evidence").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
        let Some(e) = e.as_str() else {
            notes.malformed_evidence += 1;
            continue;
        };
        let parts: Vec<&str> = e.split(|c: char| c == ';' || c.is_whitespace()).filter(|p| !p.is_empty()).collect();
        let well_formed = parts.len() == 1 && is_dia_id(parts[0]) && canonical(parts[0]).as_deref() == Some(parts[0]);
        if !well_formed {
            notes.malformed_evidence += 1;
        }
        for p in parts {
            // Repairs `D:11:26` and zero-padded `D30:05`; junk like `D` is dropped (counted above).
            let Some(p) = canonical(p) else { continue };
            match dia_index.get(&p) {
                Some(&i) => {
                    if !evidence.contains(&vec![i]) {
                        evidence.push(vec![i]);
                    }
                }
                None => notes.unknown_evidence_ids += 1,
            }
        }
    }
    evidence
}

/// The canonical `D<session>:<turn>` form of an evidence id (`D:11:26` → `D11:26`, `D30:05` →
/// `D30:5`), or `None` for junk.
fn canonical(s: &str) -> Option<String> {
    let rest = s.strip_prefix('D')?;
    let nums: Vec<u32> = rest.split(':').filter(|p| !p.is_empty()).map(|p| p.parse().ok()).collect::<Option<_>>()?;
    match nums.as_slice() {
        [a, b] => Some(format!("D{a}:{b}")),
        _ => None,
    }
}

/// `D<digits>:<digits>`.
fn is_dia_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('D') else { return false };
    let mut it = rest.splitn(2, ':');
    let (Some(a), Some(b)) = (it.next(), it.next()) else { return false };
    !a.is_empty() && !b.is_empty() && a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dia_ids() {
        assert!(is_dia_id("D1:3"));
        assert!(is_dia_id("D12:30"));
        assert!(!is_dia_id("D"));
        assert!(!is_dia_id("D:11:26"));
        assert!(!is_dia_id("D1:"));
        assert!(!is_dia_id("d1:2"));
    }

    #[test]
    fn evidence_ids_are_repaired_where_possible() {
        assert_eq!(canonical("D:11:26").as_deref(), Some("D11:26"));
        assert_eq!(canonical("D30:05").as_deref(), Some("D30:5"));
        assert_eq!(canonical("D1:3").as_deref(), Some("D1:3"));
        assert_eq!(canonical("D"), None);
        assert_eq!(canonical("D1:2:3"), None);
    }
}
