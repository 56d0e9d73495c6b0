//! The fuzz targets' other inputs: arbitrary turns for `normalize`, policy text, transcript bytes,
//! each with the invariant its target checks.

use arbitrary::{Arbitrary, Unstructured};
use serde_json::json;

use super::{Checks, Words, check_window, text};
use crate::replay::Format;
use crate::replay::loaders::load_file;
use crate::{Block, Engine, EngineConfig, Error, NormalizeReport, Policy, Role, Turn, normalize};

/// A block with its call id drawn from 8, so that calls and results collide, repeat and miss.
#[derive(Debug, Clone, Arbitrary)]
enum RawBlock {
    Text(Words),
    Call(u8),
    Result(u8, Words, bool),
}

/// A turn of any role and blocks.
#[derive(Debug, Clone, Arbitrary)]
struct RawTurn {
    role: u8,
    blocks: Vec<RawBlock>,
}

/// Arbitrary turns (any role; calls and results with ids `c0`..`c7`, in any order and number).
pub fn raw_turns(data: &[u8]) -> arbitrary::Result<Vec<Turn>> {
    let mut u = Unstructured::new(data);
    let mut out = Vec::new();
    while !u.is_empty() && out.len() < super::MAX_OPS {
        let t = RawTurn::arbitrary(&mut u)?;
        let role = [Role::System, Role::User, Role::Assistant, Role::Tool][usize::from(t.role) % 4];
        let blocks = t
            .blocks
            .into_iter()
            .map(|b| match b {
                RawBlock::Text(w) => Block::text(text(&w)),
                RawBlock::Call(i) => Block::ToolCall { call_id: format!("c{}", i % 8), name: "bash".into(), arguments: json!({"i": i}) },
                RawBlock::Result(i, w, e) => Block::ToolResult { call_id: format!("c{}", i % 8), content: text(&w), is_error: e },
            })
            .collect();
        out.push(Turn::new(role, blocks));
    }
    Ok(out)
}

/// `normalize`'s output is accepted by `push` turn by turn, and normalizing it again changes nothing.
pub fn check_normalize(turns: Vec<Turn>) -> std::result::Result<(), String> {
    let (out, _) = normalize(turns);
    let mut e = Engine::new(EngineConfig::default()).map_err(|e| e.to_string())?;
    for (i, t) in out.iter().enumerate() {
        e.push(t.clone()).map_err(|err| format!("push refused normalized turn {i}: {err}"))?;
    }
    let (again, report) = normalize(out.clone());
    if again != out || report != NormalizeReport::default() {
        return Err(format!("normalize is not idempotent: {report:?}"));
    }
    let w = e.assemble(2000).map_err(|err| err.to_string())?;
    check_window(&w, 2000, &[], e.len(), Checks::ALL)
}

/// Policy text (`toml` or `json`): a policy or `Error::Policy`; a policy round-trips through
/// `to_toml` and its windows keep the invariants.
pub fn check_policy_text(data: &[u8], kind: &str) -> std::result::Result<(), String> {
    let Ok(s) = std::str::from_utf8(data) else { return Ok(()) };
    let r = if kind == "json" { Policy::from_json_str(s, Some("fuzz")) } else { Policy::from_toml_str(s, Some("fuzz")) };
    let p = match r {
        Ok(p) => p,
        Err(Error::Policy { .. }) => return Ok(()),
        Err(other) => return Err(format!("not a policy error: {other}")),
    };
    let toml = p.to_toml();
    let back = Policy::from_toml_str(&toml, None).map_err(|e| format!("to_toml does not parse back: {e}\n{toml}"))?;
    if back.to_toml() != toml {
        return Err(format!("to_toml does not round-trip:\n{toml}\n---\n{}", back.to_toml()));
    }
    let mut e = Engine::new(EngineConfig::default().policy(p)).map_err(|e| e.to_string())?;
    e.push(Turn::user("Where is parse_expr defined?")).map_err(|e| e.to_string())?;
    e.push(Turn::tool_call(None, "c1", "bash", json!({"command": "grep -rn parse_expr src"}))).map_err(|e| e.to_string())?;
    e.push(Turn::tool_result("c1", "src/parse.rs:12: fn parse_expr\n".repeat(200), false)).map_err(|e| e.to_string())?;
    e.push(Turn::assistant("In src/parse.rs, line 12.")).map_err(|e| e.to_string())?;
    for budget in [40, 300, 3000] {
        match e.assemble(budget) {
            Ok(w) => check_window(&w, budget, &[], e.len(), Checks::ALL).map_err(|m| format!("@{budget}: {m}\n{toml}"))?,
            Err(Error::BudgetBelowPins { .. }) => {}
            Err(other) => return Err(format!("assemble({budget}): {other}\n{toml}")),
        }
    }
    Ok(())
}

/// Transcript bytes in `format` (written to a temp file ending in `.ext`): transcripts or a typed
/// error (`Malformed` / `InvalidPath`), and every transcript's turns are accepted by `push`.
pub fn check_loader(data: &[u8], format: Format, ext: &str) -> std::result::Result<(), String> {
    let path = std::env::temp_dir().join(format!("ctxwin-fuzz-{}.{ext}", std::process::id()));
    std::fs::write(&path, data).map_err(|e| e.to_string())?;
    let r = load_file(&path, Some(format));
    let _ = std::fs::remove_file(&path);
    let transcripts = match r {
        Ok(t) => t,
        Err(Error::Malformed { .. } | Error::InvalidPath { .. }) => return Ok(()),
        Err(other) => return Err(format!("not a typed input error: {other}")),
    };
    for t in transcripts {
        let mut e = Engine::new(EngineConfig::default()).map_err(|e| e.to_string())?;
        for (i, turn) in t.turns().iter().enumerate() {
            e.push(turn.clone()).map_err(|err| format!("transcript {}: push refused turn {i}: {err}", t.id()))?;
        }
    }
    Ok(())
}
