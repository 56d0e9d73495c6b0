//! Transcript loaders, one file per format, with format detection.
//!
//! Every loader reads a file, returns one [`Transcript`] per conversation/session in it, and reports
//! bad input as [`Error::Malformed`] naming the file, line and column. Nothing a loader cannot place is
//! dropped silently: it is kept as an opaque text turn or counted in [`crate::replay::LoadNotes`].

mod aider;
mod anthropic;
mod claude_code;
mod json_path;
mod locomo;
mod longmemeval;
mod mini_swe_agent;
mod openai_chat;
mod writers;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::replay::transcript::Transcript;

pub use writers::{to_locomo_json, to_openai_json};

/// A transcript format ctxbench can read. Where a format is optional (`None`), it is detected
/// from the file ([`detect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// LoCoMo (`locomo10.json`).
    Locomo,
    /// LongMemEval-S (and the derived haystack files).
    LongMemEval,
    /// OpenAI chat messages with `tool_calls` / `role: tool`: a messages array, an object with
    /// `messages`, tau-bench runs (`traj`), or SWE-agent `.traj` (`history`).
    OpenAiChat,
    /// mini-swe-agent trajectories (`messages` with bash blocks and `<returncode>` results).
    MiniSweAgent,
    /// Claude Code session JSONL.
    ClaudeCode,
    /// Anthropic Messages JSON (`system` + `messages` with `tool_use` / `tool_result` blocks).
    AnthropicMessages,
    /// Aider `.aider.chat.history.md`.
    Aider,
}

impl Format {
    /// Every format, in the order `--format` lists them.
    pub const ALL: [Format; 7] =
        [Format::Locomo, Format::LongMemEval, Format::OpenAiChat, Format::MiniSweAgent, Format::ClaudeCode, Format::AnthropicMessages, Format::Aider];

    /// The format's canonical name (what `--format` takes).
    pub fn name(self) -> &'static str {
        match self {
            Format::Locomo => "locomo",
            Format::LongMemEval => "longmemeval",
            Format::OpenAiChat => "openai-chat",
            Format::MiniSweAgent => "mini-swe-agent",
            Format::ClaudeCode => "claude-code",
            Format::AnthropicMessages => "anthropic",
            Format::Aider => "aider",
        }
    }
}

/// Characters of an unknown item's JSON kept in its opaque text turn.
/// Gives every call a unique id within a transcript: a reused id is renamed `<id>#<k>` for its k-th
/// use, and a result is joined to the latest call with its id (how the runs that reuse ids answered
/// them, one call at a time). Calls without an id get `<prefix>-<n>`.
#[derive(Default)]
pub(crate) struct CallIds {
    uses: HashMap<String, usize>,
    current: HashMap<String, String>,
    synthesized: usize,
}

impl CallIds {
    pub(crate) fn call(&mut self, raw: Option<&str>, prefix: &str) -> String {
        let raw = match raw.filter(|s| !s.is_empty()) {
            Some(r) => r.to_string(),
            None => {
                self.synthesized += 1;
                format!("{prefix}-{}", self.synthesized)
            }
        };
        let n = self.uses.entry(raw.clone()).or_insert(0);
        *n += 1;
        let id = if *n == 1 { raw.clone() } else { format!("{raw}#{n}") };
        self.current.insert(raw, id.clone());
        id
    }

    pub(crate) fn result(&self, raw: &str) -> String {
        self.current.get(raw).cloned().unwrap_or_else(|| raw.to_string())
    }
}

pub(crate) const EXCERPT_CHARS: usize = 240;

/// What a non-tool content block (Anthropic / Claude Code shape) shows as text: `None` for blocks
/// that are not shown (thinking, empty text), counted as skipped; unknown blocks become opaque text,
/// counted.
pub(crate) fn shown_text(kind: &str, b: &serde_json::Value, notes: &mut crate::replay::LoadNotes) -> Option<String> {
    use serde_json::Value;
    match kind {
        "text" => match b.get("text").and_then(Value::as_str).filter(|s| !s.trim().is_empty()) {
            Some(s) => Some(s.to_string()),
            None => {
                notes.skipped_items += 1;
                None
            }
        },
        "thinking" | "redacted_thinking" => {
            notes.skipped_items += 1;
            None
        }
        "image" => Some("[image]".to_string()),
        "document" => Some("[document]".to_string()),
        other => {
            notes.opaque_items += 1;
            Some(format!("[{other} block] {}", json_path::excerpt(b, EXCERPT_CHARS)))
        }
    }
}

/// The text of a list of content parts (a tool result's blocks): text kept, images and documents
/// as `[image]` / `[document]`, anything else as a short excerpt of its JSON.
pub(crate) fn parts_text(parts: &[serde_json::Value]) -> String {
    use serde_json::Value;
    let mut texts = Vec::with_capacity(parts.len());
    for p in parts {
        match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
            (_, Some(s)) => texts.push(s.to_string()),
            (Some("image"), None) => texts.push("[image]".to_string()),
            (Some("document"), None) => texts.push("[document]".to_string()),
            (_, None) => texts.push(json_path::excerpt(p, EXCERPT_CHARS)),
        }
    }
    texts.join("\n")
}

/// Largest file a loader reads (1 GiB): a guard against pointing ctxbench at the wrong thing.
const MAX_FILE_BYTES: u64 = 1 << 30;

/// Reads a file as UTF-8, with errors naming it.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::InvalidPath { path: path.to_path_buf(), message: "not a regular file".into() });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::InvalidPath { path: path.to_path_buf(), message: format!("larger than {MAX_FILE_BYTES} bytes") });
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        let (line, col) = line_col(e.as_bytes(), e.utf8_error().valid_up_to());
        Error::malformed(path, line, col, format!("not UTF-8 at byte {}", e.utf8_error().valid_up_to()))
    })
}

/// 1-based line and column of byte `offset` in `bytes` (line 0 when the bytes are not given).
pub(crate) fn line_col(bytes: &[u8], offset: usize) -> (usize, usize) {
    if bytes.is_empty() {
        return (0, 0);
    }
    let upto = &bytes[..offset.min(bytes.len())];
    let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = upto.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
}

/// Parses JSON, mapping errors to `Malformed` with the file's line and column.
pub(crate) fn parse_json(path: &Path, text: &str) -> Result<serde_json::Value> {
    if text.trim().is_empty() {
        return Err(Error::malformed(path, 1, 1, "empty file"));
    }
    serde_json::from_str(text).map_err(|e| Error::from_json(path, &e))
}

/// Guesses the format of a file from its name and first bytes / parsed shape.
pub fn detect(path: &Path, text: &str) -> Result<Format> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if name.ends_with(".md") {
        return Ok(Format::Aider);
    }
    if name.ends_with(".jsonl") {
        return Ok(Format::ClaudeCode);
    }
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(Error::malformed(path, 1, 1, "empty file"));
    }
    if trimmed.starts_with("# aider chat started at") {
        return Ok(Format::Aider);
    }
    let v = match parse_json(path, text) {
        Ok(v) => v,
        Err(e) => {
            // JSON Lines: every line its own object.
            let first = trimmed.lines().next().unwrap_or_default();
            if serde_json::from_str::<serde_json::Value>(first).is_ok_and(|v| v.is_object()) {
                return Ok(Format::ClaudeCode);
            }
            return Err(e);
        }
    };
    let first = match &v {
        serde_json::Value::Array(a) => a.first(),
        other => Some(other),
    };
    let Some(first) = first else {
        return Err(Error::malformed(path, 1, 1, "empty JSON array: nothing to load"));
    };
    let has = |k: &str| first.get(k).is_some();
    Ok(if has("conversation") && has("qa") {
        Format::Locomo
    } else if has("haystack_sessions") {
        Format::LongMemEval
    } else if has("traj") || has("history") {
        Format::OpenAiChat
    } else if has("messages") && has("instance_id") {
        Format::MiniSweAgent
    } else if has("messages") && (has("system") || anthropic::looks_like(first)) {
        Format::AnthropicMessages
    } else if has("messages") || has("role") {
        Format::OpenAiChat
    } else if has("type") && (has("sessionId") || has("uuid")) {
        Format::ClaudeCode
    } else {
        return Err(Error::malformed(path, 1, 1, "unrecognized transcript format (pass --format)"));
    })
}

/// Loads every transcript in one file, in `format` (`None`: detected from the file).
pub fn load_file(path: &Path, format: Option<Format>) -> Result<Vec<Transcript>> {
    let text = read_text(path)?;
    let format = match format {
        Some(f) => f,
        None => detect(path, &text)?,
    };
    match format {
        Format::Locomo => locomo::load(path, &text),
        Format::LongMemEval => longmemeval::load(path, &text),
        Format::OpenAiChat => openai_chat::load(path, &text),
        Format::MiniSweAgent => mini_swe_agent::load(path, &text),
        Format::ClaudeCode => claude_code::load(path, &text),
        Format::AnthropicMessages => anthropic::load(path, &text),
        Format::Aider => aider::load(path, &text),
    }
}

/// File endings a directory scan picks up.
const KNOWN_ENDINGS: &[&str] = &[".json", ".jsonl", ".traj", ".md"];

/// Loads a file, or every recognized file in a directory (sorted by name; not recursive). In a
/// directory, files that are not transcripts (READMEs, licences) are skipped; a file that looks
/// like a transcript but fails to parse is an error. `format: None` detects each file's format.
pub fn load_path(path: &Path, format: Option<Format>) -> Result<Vec<Transcript>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        return load_file(path, format);
    }
    if !meta.is_dir() {
        return Err(Error::InvalidPath { path: path.to_path_buf(), message: "not a regular file or a directory (a device, FIFO or socket?)".into() });
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Error::io(path, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            KNOWN_ENDINGS.iter().any(|e| n.ends_with(e)) && !is_doc_file(n)
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::InvalidPath { path: path.to_path_buf(), message: "no transcript files in this directory".into() });
    }
    let mut out = Vec::new();
    for f in files {
        out.extend(load_file(&f, format)?);
    }
    Ok(out)
}

fn is_doc_file(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("README") || upper.starts_with("LICENSE") || upper.starts_with("CHANGELOG")
}
