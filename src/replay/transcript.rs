//! What a loader produces: the turns of one conversation or session, the pins its format makes
//! clear, its probes (QA items, gold tool calls) and what the loader had to repair.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::pins::PinLayer;
use crate::replay::loaders::Format;
use crate::turn::{NormalizeReport, Turn, TurnId};

/// One question with its gold answer and evidence (LoCoMo, LongMemEval).
#[derive(Debug, Clone, PartialEq)]
pub struct QaItem {
    pub(crate) question: String,
    /// `None` for questions without an answer (LoCoMo category 5, adversarial).
    pub(crate) answer: Option<String>,
    /// Evidence groups: a group is recalled when any of its turns is in the window verbatim.
    /// Turn-level evidence is one turn per group; session-level evidence is a session's turns.
    pub(crate) evidence: Vec<Vec<TurnId>>,
    /// Category label used in `by_category` ("1".."5" for LoCoMo, the question type otherwise).
    pub(crate) category: String,
    /// Whether the item counts in the headline `evidence_recall` / `answer_presence`.
    pub(crate) headline: bool,
}

impl QaItem {
    /// The question.
    pub fn question(&self) -> &str {
        &self.question
    }
    /// The gold answer, if any.
    pub fn answer(&self) -> Option<&str> {
        self.answer.as_deref()
    }
    /// Evidence groups (turn indices into the transcript's turns).
    pub fn evidence(&self) -> &[Vec<TurnId>] {
        &self.evidence
    }
    /// Category label.
    pub fn category(&self) -> &str {
        &self.category
    }
    /// Whether it counts in the headline metrics.
    pub fn headline(&self) -> bool {
        self.headline
    }
}

/// A gold tool call (tau-bench `info.task.actions`).
#[derive(Debug, Clone, PartialEq)]
pub struct GoldAction {
    pub(crate) name: String,
    pub(crate) arguments: serde_json::Value,
}

impl GoldAction {
    /// The tool's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The gold arguments.
    pub fn arguments(&self) -> &serde_json::Value {
        &self.arguments
    }
}

/// Counts of what a loader found wrong or unusual and handled, reported in ctxbench's output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LoadNotes {
    /// Evidence strings that held several ids or junk and were split or discarded.
    pub malformed_evidence: usize,
    /// Evidence ids that do not exist in their conversation.
    pub unknown_evidence_ids: usize,
    /// QA items with no usable evidence.
    pub qa_without_evidence: usize,
    /// Sessions that have a date but no turns.
    pub empty_sessions: usize,
    /// Items of unknown type kept as opaque text turns.
    pub opaque_items: usize,
    /// Items skipped because they carry nothing to show (e.g. empty messages), counted here.
    pub skipped_items: usize,
    /// What `normalize` repaired in tool pairs.
    pub normalize: NormalizeReport,
}

impl LoadNotes {
    /// Adds another file's counts to these.
    pub fn add(&mut self, o: &LoadNotes) {
        self.malformed_evidence += o.malformed_evidence;
        self.unknown_evidence_ids += o.unknown_evidence_ids;
        self.qa_without_evidence += o.qa_without_evidence;
        self.empty_sessions += o.empty_sessions;
        self.opaque_items += o.opaque_items;
        self.skipped_items += o.skipped_items;
        self.normalize.orphan_results += o.normalize.orphan_results;
        self.normalize.missing_results += o.normalize.missing_results;
        self.normalize.moved_results += o.normalize.moved_results;
        self.normalize.invalid_calls += o.normalize.invalid_calls;
        self.normalize.empty_turns += o.normalize.empty_turns;
    }
}

/// One conversation or agent session ready to replay.
#[derive(Debug, Clone)]
pub struct Transcript {
    pub(crate) id: String,
    pub(crate) source: PathBuf,
    /// The format it was loaded from (`None` for a generated transcript).
    pub(crate) format: Option<Format>,
    pub(crate) turns: Vec<Turn>,
    pub(crate) pins: Vec<(PinLayer, String)>,
    pub(crate) qa: Vec<QaItem>,
    pub(crate) gold_actions: Vec<GoldAction>,
    pub(crate) notes: LoadNotes,
}

impl Transcript {
    /// An empty transcript for `id` loaded from `source` in `format`.
    pub fn new(id: impl Into<String>, source: &Path, format: Format) -> Self {
        Transcript { format: Some(format), ..Transcript::generated(id, source) }
    }
    /// An empty transcript for `id` that no loader read (made by a generator; `source` names it).
    pub(crate) fn generated(id: impl Into<String>, source: &Path) -> Self {
        Transcript {
            id: id.into(),
            source: source.to_path_buf(),
            format: None,
            turns: Vec::new(),
            pins: Vec::new(),
            qa: Vec::new(),
            gold_actions: Vec::new(),
            notes: LoadNotes::default(),
        }
    }
    /// Its id (sample id, instance id, file stem…).
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The file it came from.
    pub fn source(&self) -> &Path {
        &self.source
    }
    /// The format it was loaded from (`None` for a generated transcript).
    pub fn format(&self) -> Option<Format> {
        self.format
    }
    /// The turns, in order, normalized.
    pub fn turns(&self) -> &[Turn] {
        &self.turns
    }
    /// Pins the format makes clear (system prompt, task statement).
    pub fn pins(&self) -> &[(PinLayer, String)] {
        &self.pins
    }
    /// QA items.
    pub fn qa(&self) -> &[QaItem] {
        &self.qa
    }
    /// Gold tool calls.
    pub fn gold_actions(&self) -> &[GoldAction] {
        &self.gold_actions
    }
    /// What the loader repaired or counted.
    pub fn notes(&self) -> &LoadNotes {
        &self.notes
    }

    /// Runs [`crate::normalize`] over the turns, recording the report. QA evidence indices must be
    /// set after this (normalize can move turns).
    pub(crate) fn normalize_turns(&mut self) {
        let turns = std::mem::take(&mut self.turns);
        let (turns, report) = crate::turn::normalize(turns);
        self.turns = turns;
        self.notes.normalize = report;
    }
}
