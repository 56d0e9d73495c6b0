//! Policies: every knob of window assembly as serde data (TOML or JSON), with named presets.
//!
//! A policy file names a `preset` and overrides any knob; unknown fields, wrong types and values out
//! of range are errors naming the field. Presets:
//! - `ctxwin` — ctxwin's own: scored selection (BM25 + references + recency + role + priority),
//!   contiguous spans around the best turns, a short recent tail, extractive summaries of what is
//!   left out, head+tail of long tool outputs, old tool outputs cleared to placeholders, and a stable
//!   prefix across turns (evictions batched).
//! - `recency` — LangChain `trim_messages(strategy="last")`: pins plus as many latest turns as fit.
//! - `rag` — BM25 top-k only, in chronological order.
//! - `compaction` — Claude Code / Codex: once history passes 90% of the budget, everything but the
//!   most recent user messages (up to 20% of the budget) becomes one summary; pins re-applied.
//! - `tool-clearing` — Anthropic `clear_tool_uses`: keep the last 3 tool results, placeholders for
//!   older ones, otherwise recency.
//! - `masking` — observation masking ("The Complexity Trap", JetBrains 2025): keep the last 10 tool
//!   outputs verbatim, placeholders for older ones, otherwise recency.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a policy selects what goes into the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Scored spans + tail + summaries (ctxwin).
    Scored,
    /// Latest turns that fit.
    Recency,
    /// BM25 top-k, chronological.
    Rag,
    /// One summary plus the latest user messages once the history passes a threshold.
    Compaction,
    /// Recency, with all but the last N tool results cleared to placeholders.
    ToolClearing,
}

/// How BM25 and dense similarity are combined when embeddings are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fusion {
    /// Reciprocal-rank fusion: each component is `(k + 1) / (k + rank)` of its ranking.
    Rrf,
    /// Each score divided by the best (BM25) or min-max normalised (cosine), then weighted.
    Weighted,
}

/// Weights of the score components (each component is in `[0, 1]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    /// BM25 relevance to the query, divided by the best BM25 score among the turns.
    pub bm25: f32,
    /// Dense (embedding) similarity to the query, when embeddings are on (see `fusion`).
    pub dense: f32,
    /// Shared references (names, dates, numbers, identifiers, paths) with the query.
    pub references: f32,
    /// Recency: `0.5^(age / recency_half_life)` with age in turns.
    pub recency: f32,
    /// Role (see `role_*` in the policy).
    pub role: f32,
    /// Host-given turn priority.
    pub priority: f32,
    /// The turn's speaker is named in the query: a question about a participant of a conversation
    /// is answered mostly by their own turns.
    pub speaker: f32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights { bm25: 1.0, dense: 1.0, references: 0.35, recency: 0.05, role: 0.05, priority: 0.5, speaker: 0.3 }
    }
}

/// Every knob of window assembly. Build one with [`Policy::preset`] or [`Policy::from_toml_str`] /
/// [`Policy::from_json_str`] / [`Policy::load`]; change knobs with [`Policy::set`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Preset the policy starts from (a file's other fields override it).
    pub(crate) preset: Preset,
    /// Selection strategy.
    pub(crate) strategy: Strategy,
    /// Score weights.
    pub(crate) weights: Weights,
    /// How BM25 and dense similarity are fused (embeddings on only; lexical scoring is unchanged).
    pub(crate) fusion: Fusion,
    /// The `k` of reciprocal-rank fusion.
    pub(crate) rrf_k: f32,
    /// Turns after which the recency component halves.
    pub(crate) recency_half_life: f32,
    /// Role component for user turns.
    pub(crate) role_user: f32,
    /// Role component for assistant turns.
    pub(crate) role_assistant: f32,
    /// Role component for tool turns.
    pub(crate) role_tool: f32,
    /// Role component for system turns found in a transcript.
    pub(crate) role_system: f32,
    /// Recent tail of per-turn windows (no explicit query): at most this many latest turns are
    /// kept before scored selection.
    pub(crate) tail_turns: usize,
    /// Recent tail of per-turn windows: at most this share of the budget left after pins.
    pub(crate) tail_share: f32,
    /// Recent tail of windows for an explicit query (e.g. a question about the history): turns.
    pub(crate) query_tail_turns: usize,
    /// Recent tail of windows for an explicit query: share of the budget left after pins.
    pub(crate) query_tail_share: f32,
    /// Span expansion: turns on each side of a selected turn that become candidates.
    pub(crate) neighbours: usize,
    /// Span expansion: a neighbour at distance d gets the selected turn's score × decay^d.
    pub(crate) neighbour_decay: f32,
    /// Exchange context: a turn's relevance gains this share of its more relevant neighbour's (an
    /// answer is found through its question and the reverse).
    pub(crate) context_boost: f32,
    /// Session context: a turn's relevance gains this share of the most relevant other turn of its
    /// session (turns sharing a timestamp, as a chat session's turns share its date).
    pub(crate) session_boost: f32,
    /// Per-turn windows: share of the budget left after pins reserved for summaries of left-out runs.
    pub(crate) summary_share: f32,
    /// Windows for an explicit query: the same share.
    pub(crate) query_summary_share: f32,
    /// Largest summary of one run, in tokens.
    pub(crate) summary_max_tokens: usize,
    /// Smallest summary worth writing; below this a run gets a one-line marker.
    pub(crate) summary_min_tokens: usize,
    /// Tool outputs longer than this many tokens are shown head + tail (0: never).
    pub(crate) tool_output_max_tokens: usize,
    /// Keep this many latest tool results at `tool_output_max_tokens`; older ones are condensed to
    /// `old_tool_output_max_tokens` (absent: never condense).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) keep_tool_results: Option<usize>,
    /// Older tool results (see `keep_tool_results`) are shown head + tail within this many tokens;
    /// 0 clears them to a placeholder naming the tool, the call and how to recall it.
    pub(crate) old_tool_output_max_tokens: usize,
    /// `rag`: number of turns to take (0: as many as fit).
    pub(crate) rag_top_k: usize,
    /// Candidate generation (`ctxwin`, `rag`): on a history of more than `16 × candidates` turns, a
    /// window scores only the lexical and dense top-`candidates` turns, the turns sharing a rare
    /// reference with the query, the latest `candidates / 2`, the tail, the sessions of the best of
    /// these and their neighbours; the rest are left out unscored. Shorter histories are scored
    /// whole (cheaper there than generating candidates). 0 scores every turn; else 32–1,000,000.
    pub(crate) candidates: usize,
    /// `compaction`: history share of the budget that triggers a compaction.
    pub(crate) compaction_threshold: f32,
    /// `compaction`: share of the budget for the latest user messages kept verbatim.
    pub(crate) compaction_user_share: f32,
    /// `compaction`: share of the budget the summary may take.
    pub(crate) compaction_summary_share: f32,
    /// Keep the previous window's prefix and append new turns while they fit (per-turn windows
    /// without an explicit query); when they do not, re-select down to `refill_target`.
    pub(crate) stable_prefix: bool,
    /// Share of the budget a re-selection fills, leaving room to append before the next one.
    pub(crate) refill_target: f32,
    /// The same in a history that is not conversational (an agent session following one task,
    /// ARCHITECTURE.md §4 step 2): there summaries of what is left out carry what later steps use
    /// again, so the scored units take less and the summaries more of the window.
    pub(crate) agent_refill_target: f32,
    /// In a history that is not conversational, the largest summary of one run is this share of
    /// the budget left after pins when that is more than `summary_max_tokens` (0: always
    /// `summary_max_tokens`). A larger window holds a larger summary, whose reference list is what
    /// an agent session's long-range recall is made of (ARCHITECTURE.md §4, step 6).
    pub(crate) agent_summary_share: f32,
    /// In a history that is not conversational, the share of what a re-selection's refill target
    /// leaves that the latest unit (the observation the model acts on) may take: a larger one is
    /// shown cut (its tool outputs, or the text of a turn without any, head + tail) to fit it
    /// (ARCHITECTURE.md §4, step 2). The rest of the target is the recent tail's.
    pub(crate) agent_latest_share: f32,
    /// Share of the budget a re-selection may keep of the previous window's leading items (the
    /// kept front, ARCHITECTURE.md §4 step 2) so the prompt cache still covers them; 0 re-selects
    /// the whole window.
    pub(crate) keep_front: f32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            preset: Preset::Ctxwin,
            strategy: Strategy::Scored,
            weights: Weights::default(),
            fusion: Fusion::Weighted,
            rrf_k: 60.0,
            recency_half_life: 40.0,
            role_user: 1.0,
            role_assistant: 0.8,
            role_tool: 0.4,
            role_system: 1.0,
            tail_turns: 16,
            tail_share: 0.4,
            query_tail_turns: 2,
            query_tail_share: 0.15,
            neighbours: 1,
            neighbour_decay: 0.8,
            context_boost: 0.3,
            session_boost: 0.3,
            summary_share: 0.25,
            query_summary_share: 0.02,
            summary_max_tokens: 1200,
            summary_min_tokens: 24,
            tool_output_max_tokens: 500,
            keep_tool_results: Some(3),
            old_tool_output_max_tokens: 80,
            rag_top_k: 0,
            candidates: 512,
            compaction_threshold: 0.9,
            compaction_user_share: 0.2,
            compaction_summary_share: 0.15,
            stable_prefix: true,
            refill_target: 0.6,
            agent_refill_target: 0.175,
            agent_summary_share: 0.2,
            agent_latest_share: 0.5,
            keep_front: 1.0,
        }
    }
}

/// Names of the built-in presets.
pub const PRESETS: &[&str] = &["ctxwin", "recency", "rag", "compaction", "tool-clearing", "masking"];

/// A built-in preset: ctxwin's own default and the peers' behaviours as baselines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// ctxwin: scored spans, recent tail, summaries, stable prefix.
    Ctxwin,
    /// LangChain `trim_messages(strategy="last")`.
    Recency,
    /// BM25 top-k, chronological.
    Rag,
    /// Claude Code / Codex compaction.
    Compaction,
    /// Anthropic `clear_tool_uses`.
    ToolClearing,
    /// Observation masking ("The Complexity Trap", JetBrains 2025): the last 10 tool outputs
    /// verbatim, older ones replaced by a placeholder.
    Masking,
}

impl Preset {
    /// Every preset, in [`PRESETS`] order.
    pub const ALL: [Preset; 6] = [Preset::Ctxwin, Preset::Recency, Preset::Rag, Preset::Compaction, Preset::ToolClearing, Preset::Masking];

    /// Its name, as in policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Ctxwin => "ctxwin",
            Preset::Recency => "recency",
            Preset::Rag => "rag",
            Preset::Compaction => "compaction",
            Preset::ToolClearing => "tool-clearing",
            Preset::Masking => "masking",
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = Error;
    fn from_str(name: &str) -> Result<Preset> {
        Preset::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| Error::Policy { source_name: None, message: format!("unknown preset `{name}` (known: {})", PRESETS.join(", ")) })
    }
}

impl Policy {
    /// A built-in preset by name (see [`PRESETS`]).
    pub fn preset(name: &str) -> Result<Policy> {
        Ok(Policy::from_preset(name.parse()?))
    }

    /// A built-in preset.
    pub fn from_preset(preset: Preset) -> Policy {
        let base = Policy::default();
        let plain = Policy {
            preset,
            weights: Weights { bm25: 0.0, dense: 0.0, references: 0.0, recency: 0.0, role: 0.0, priority: 0.0, speaker: 0.0 },
            tail_turns: 0,
            tail_share: 0.0,
            query_tail_turns: 0,
            query_tail_share: 0.0,
            neighbours: 0,
            context_boost: 0.0,
            session_boost: 0.0,
            summary_share: 0.0,
            query_summary_share: 0.0,
            tool_output_max_tokens: 0,
            keep_tool_results: None,
            stable_prefix: false,
            ..base.clone()
        };
        match preset {
            Preset::Ctxwin => base,
            Preset::Recency => Policy { strategy: Strategy::Recency, ..plain },
            Preset::Rag => Policy { strategy: Strategy::Rag, weights: Weights { bm25: 1.0, ..plain.weights.clone() }, ..plain },
            Preset::Compaction => Policy { strategy: Strategy::Compaction, ..plain },
            Preset::ToolClearing => Policy { strategy: Strategy::ToolClearing, keep_tool_results: Some(3), old_tool_output_max_tokens: 0, ..plain },
            Preset::Masking => Policy { strategy: Strategy::ToolClearing, keep_tool_results: Some(10), old_tool_output_max_tokens: 0, ..plain },
        }
    }

    /// Parses a policy from TOML: `preset = "…"` first, then any knob.
    pub fn from_toml_str(text: &str, source_name: Option<&str>) -> Result<Policy> {
        let value: toml::Value = toml::from_str(text).map_err(|e| policy_error(source_name, e.to_string()))?;
        let json = serde_json::to_value(value).map_err(|e| policy_error(source_name, e.to_string()))?;
        Policy::from_value(json, source_name)
    }

    /// Parses a policy from JSON.
    pub fn from_json_str(text: &str, source_name: Option<&str>) -> Result<Policy> {
        let json: serde_json::Value = serde_json::from_str(text).map_err(|e| policy_error(source_name, e.to_string()))?;
        Policy::from_value(json, source_name)
    }

    /// Loads a `.toml` or `.json` policy file.
    pub fn load(path: &Path) -> Result<Policy> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let name = path.display().to_string();
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Policy::from_json_str(&text, Some(&name)),
            _ => Policy::from_toml_str(&text, Some(&name)),
        }
    }

    /// Builds a policy from a JSON value: starts from the named preset and overlays the fields.
    fn from_value(value: serde_json::Value, source_name: Option<&str>) -> Result<Policy> {
        let serde_json::Value::Object(fields) = value else {
            return Err(policy_error(source_name, "a policy must be a table/object".into()));
        };
        let preset = match fields.get("preset") {
            None => Preset::Ctxwin,
            Some(serde_json::Value::String(s)) => s.parse().map_err(|e: Error| policy_error(source_name, e.to_string()))?,
            Some(_) => return Err(policy_error(source_name, "field `preset` must be a string".into())),
        };
        let base = Policy::from_preset(preset);
        let mut merged = serde_json::to_value(&base).map_err(|e| policy_error(source_name, e.to_string()))?;
        overlay(&mut merged, serde_json::Value::Object(fields));
        let policy: Policy = serde_json::from_value(merged).map_err(|e| policy_error(source_name, e.to_string()))?;
        policy.validate().map_err(|m| policy_error(source_name, m))?;
        Ok(policy)
    }

    /// Sets one knob by its dotted name (`weights.bm25`, `tail_turns`, …) from a TOML/JSON literal.
    pub fn set(&mut self, key: &str, literal: &str) -> Result<()> {
        let value: serde_json::Value = serde_json::from_str(literal)
            .or_else(|_| toml::from_str::<toml::Value>(&format!("v = {literal}")).map(|t| serde_json::to_value(&t["v"]).unwrap_or_default()))
            .unwrap_or_else(|_| serde_json::Value::String(literal.to_string()));
        let mut patch = value;
        for part in key.split('.').rev() {
            let mut m = serde_json::Map::new();
            m.insert(part.to_string(), patch);
            patch = serde_json::Value::Object(m);
        }
        let mut merged = serde_json::to_value(&*self).map_err(|e| policy_error(None, e.to_string()))?;
        overlay(&mut merged, patch);
        let p: Policy = serde_json::from_value(merged).map_err(|e| policy_error(None, format!("{key}: {e}")))?;
        p.validate().map_err(|m| policy_error(None, m))?;
        *self = p;
        Ok(())
    }

    /// The policy as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// The preset it started from.
    pub fn preset_name(&self) -> &str {
        self.preset.as_str()
    }

    /// The preset it started from.
    pub fn preset_kind(&self) -> Preset {
        self.preset
    }

    /// Sets the score weights (each must be finite and ≥ 0).
    pub fn set_weights(&mut self, weights: Weights) -> Result<()> {
        self.typed_change(|p| p.weights = weights)
    }

    /// Sets the recent tail of per-call windows: at most `turns` turns within `share` of the budget.
    pub fn set_tail(&mut self, turns: usize, share: f32) -> Result<()> {
        self.typed_change(|p| {
            p.tail_turns = turns;
            p.tail_share = share;
        })
    }

    /// Sets the share of the budget kept for summaries in per-call windows.
    pub fn set_summary_share(&mut self, share: f32) -> Result<()> {
        self.typed_change(|p| p.summary_share = share)
    }

    /// Sets the cap on a tool output's tokens before it is shown head + tail (0: no cap).
    pub fn set_tool_output_max_tokens(&mut self, tokens: usize) {
        self.tool_output_max_tokens = tokens;
    }

    /// Keeps (or not) a stable prefix between per-call windows.
    pub fn set_stable_prefix(&mut self, on: bool) {
        self.stable_prefix = on;
    }

    /// Sets how BM25 and dense similarity are fused.
    pub fn set_fusion(&mut self, fusion: Fusion) {
        self.fusion = fusion;
    }

    /// Applies `change` to a copy, validates it, and keeps it only if valid.
    fn typed_change(&mut self, change: impl FnOnce(&mut Policy)) -> Result<()> {
        let mut p = self.clone();
        change(&mut p);
        p.validate().map_err(|m| policy_error(None, m))?;
        *self = p;
        Ok(())
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The score weights.
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let unit = |name: &str, v: f32| -> std::result::Result<(), String> {
            if (0.0..=1.0).contains(&v) { Ok(()) } else { Err(format!("field `{name}` must be within 0..=1, got {v}")) }
        };
        let nonneg = |name: &str, v: f32| -> std::result::Result<(), String> {
            if v.is_finite() && v >= 0.0 { Ok(()) } else { Err(format!("field `{name}` must be a finite number ≥ 0, got {v}")) }
        };
        let w = &self.weights;
        for (n, v) in [
            ("weights.bm25", w.bm25),
            ("weights.dense", w.dense),
            ("weights.references", w.references),
            ("weights.recency", w.recency),
            ("weights.role", w.role),
            ("weights.priority", w.priority),
            ("weights.speaker", w.speaker),
            ("role_user", self.role_user),
            ("role_assistant", self.role_assistant),
            ("role_tool", self.role_tool),
            ("role_system", self.role_system),
        ] {
            nonneg(n, v)?;
        }
        if !(self.rrf_k.is_finite() && self.rrf_k >= 0.0) {
            return Err(format!("field `rrf_k` must be a finite number ≥ 0, got {}", self.rrf_k));
        }
        if !(self.recency_half_life.is_finite() && self.recency_half_life > 0.0) {
            return Err(format!("field `recency_half_life` must be > 0, got {}", self.recency_half_life));
        }
        unit("tail_share", self.tail_share)?;
        unit("query_tail_share", self.query_tail_share)?;
        if self.old_tool_output_max_tokens != 0 && self.old_tool_output_max_tokens < 32 {
            return Err(format!("field `old_tool_output_max_tokens` must be 0 (clear) or ≥ 32, got {}", self.old_tool_output_max_tokens));
        }
        unit("neighbour_decay", self.neighbour_decay)?;
        if self.candidates != 0 && !(32..=1_000_000).contains(&self.candidates) {
            return Err(format!("field `candidates` must be 0 (score every turn) or within 32..=1000000, got {}", self.candidates));
        }
        unit("context_boost", self.context_boost)?;
        unit("session_boost", self.session_boost)?;
        unit("summary_share", self.summary_share)?;
        unit("query_summary_share", self.query_summary_share)?;
        unit("compaction_threshold", self.compaction_threshold)?;
        unit("compaction_user_share", self.compaction_user_share)?;
        unit("compaction_summary_share", self.compaction_summary_share)?;
        unit("refill_target", self.refill_target)?;
        unit("agent_refill_target", self.agent_refill_target)?;
        unit("agent_summary_share", self.agent_summary_share)?;
        unit("agent_latest_share", self.agent_latest_share)?;
        unit("keep_front", self.keep_front)?;
        if self.summary_min_tokens > self.summary_max_tokens {
            return Err(format!("field `summary_min_tokens` ({}) must not exceed `summary_max_tokens` ({})", self.summary_min_tokens, self.summary_max_tokens));
        }
        if self.tool_output_max_tokens != 0 && self.tool_output_max_tokens < 32 {
            return Err(format!("field `tool_output_max_tokens` must be 0 (off) or ≥ 32, got {}", self.tool_output_max_tokens));
        }
        // Counts get ranges too: the work of a window is bounded by the data, never by a knob.
        for (name, v, max) in [
            ("neighbours", self.neighbours, MAX_NEIGHBOURS),
            ("tail_turns", self.tail_turns, MAX_COUNT),
            ("query_tail_turns", self.query_tail_turns, MAX_COUNT),
            ("rag_top_k", self.rag_top_k, MAX_COUNT),
            ("keep_tool_results", self.keep_tool_results.unwrap_or(0), MAX_COUNT),
            ("summary_max_tokens", self.summary_max_tokens, MAX_TOKENS),
            ("tool_output_max_tokens", self.tool_output_max_tokens, MAX_TOKENS),
            ("old_tool_output_max_tokens", self.old_tool_output_max_tokens, MAX_TOKENS),
        ] {
            if v > max {
                return Err(format!("field `{name}` must be within 0..={max}, got {v}"));
            }
        }
        Ok(())
    }
}

/// Largest `neighbours`: how far from a selected unit its neighbours are taken.
const MAX_NEIGHBOURS: usize = 64;
/// Largest turn count a policy may name (`tail_turns`, `rag_top_k`, `keep_tool_results`…).
const MAX_COUNT: usize = 1_000_000;
/// Largest token allowance a policy may name (summaries, tool outputs).
const MAX_TOKENS: usize = 10_000_000;

fn policy_error(source_name: Option<&str>, message: String) -> Error {
    Error::Policy { source_name: source_name.map(str::to_string), message }
}

/// Deep-merges `patch` into `base` (objects merge key by key; anything else replaces).
fn overlay(base: &mut serde_json::Value, patch: serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(&k) {
                    Some(slot) => overlay(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_load_and_round_trip() -> Result<()> {
        for name in PRESETS {
            let p = Policy::preset(name)?;
            let again = Policy::from_toml_str(&p.to_toml(), None)?;
            assert_eq!(p, again, "{name}");
        }
        Ok(())
    }

    #[test]
    fn file_overrides_preset() -> Result<()> {
        let p = Policy::from_toml_str("preset = \"rag\"\nrag_top_k = 7\n[weights]\nreferences = 0.5\n", None)?;
        assert_eq!(p.strategy, Strategy::Rag);
        assert_eq!(p.rag_top_k, 7);
        assert_eq!(p.weights.references, 0.5);
        assert_eq!(p.weights.bm25, 1.0);
        Ok(())
    }

    #[test]
    fn bad_fields_are_named() {
        let e = Policy::from_toml_str("tail_turnz = 3", Some("p.toml")).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("tail_turnz") && e.contains("p.toml"), "{e}");
        let e = Policy::from_toml_str("tail_turns = \"many\"", None).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("tail_turns") || e.contains("invalid type"), "{e}");
        let e = Policy::from_json_str("{\"summary_share\": 1.5}", None).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("summary_share"), "{e}");
        let e = Policy::from_toml_str("preset = \"nope\"", None).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("unknown preset `nope`"), "{e}");
        let e = Policy::from_toml_str("[weights]\nbm26 = 1", None).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("bm26"), "{e}");
    }

    #[test]
    fn set_by_dotted_key() -> Result<()> {
        let mut p = Policy::default();
        p.set("weights.recency", "0.3")?;
        p.set("tail_turns", "9")?;
        assert_eq!(p.weights.recency, 0.3);
        assert_eq!(p.tail_turns, 9);
        assert!(p.set("weights.recency", "-1").is_err());
        assert!(p.set("nope", "1").is_err());
        Ok(())
    }
}
