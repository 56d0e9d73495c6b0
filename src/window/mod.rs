//! The window: ordered messages, exact token total, an itemised report (this file); the step that
//! turns a plan into a window (`build.rs`); the OpenAI and Anthropic request shapes, each with its
//! renderer and checker (`openai.rs`, `anthropic.rs`).
//!
//! The window owns rendering: it reads the store's turns and the plan's items, never chooses.

pub(crate) mod anthropic;
pub(crate) mod build;
pub(crate) mod openai;

use serde::Serialize;
use serde_json::Value;

use crate::message::{Message, Origin};
use crate::scorer::{ScoreParts, TurnScores};
use crate::tokens::Encoding;
use crate::turn::TurnId;

/// What happened to a turn in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "fate", rename_all = "snake_case")]
pub enum Fate {
    /// In the window as it is.
    Kept,
    /// In the window with long tool output shown head + tail.
    Truncated,
    /// In the window with tool output replaced by a placeholder (recallable with `search`).
    Cleared,
    /// Left out; summary number `summary` (index into [`Window::summaries`]) stands in for it.
    Summarized {
        /// Index of the summary.
        summary: usize,
    },
    /// Left out; a marker (or, for peer baselines, nothing) stands in for it.
    Dropped,
}

/// One line of the window's report: a turn, its fate, its tokens and its score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportLine {
    /// The turn.
    pub turn: TurnId,
    /// What happened to it.
    pub fate: Fate,
    /// Its tokens as rendered verbatim (with framing).
    pub tokens: usize,
    /// Tokens it takes in this window (0 when left out).
    pub shown_tokens: usize,
    /// Its score.
    pub score: ScoreParts,
}

/// What the window did with the turns it touched, in the order it did it (see [`Report`]).
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// Turn `0` shown with fate `1`, taking `2` tokens.
    Shown(TurnId, Fate, usize),
    /// Summary `2` stands for the turns `0..=1` not shown.
    Summary(TurnId, TurnId, usize),
}

/// The window's report, kept as what the window did (the turns it showed, the runs its summaries
/// stand for, the score table) over every turn's tokens; every other turn was dropped. The line per
/// turn is made the first time it is asked for ([`Window::report`]), so a window of a long history
/// costs what it shows, not a line for each of its turns, when nobody reads the report.
#[derive(Debug, Clone, Default)]
pub(crate) struct Report {
    /// Each turn's verbatim tokens, by id (one entry per turn of the history).
    tokens: Vec<u32>,
    events: Vec<Event>,
    scores: Option<TurnScores>,
    lines: std::sync::OnceLock<Vec<ReportLine>>,
}

impl Report {
    /// A report over turns with these `tokens`, from the window's `events` and the turns' scores.
    pub(crate) fn new(tokens: Vec<u32>, events: Vec<Event>, scores: Option<TurnScores>) -> Self {
        Report { tokens, events, scores, lines: std::sync::OnceLock::new() }
    }

    /// A report of these lines as they are.
    #[cfg(test)]
    pub(crate) fn of_lines(lines: Vec<ReportLine>) -> Self {
        Report { tokens: lines.iter().map(|l| l.tokens as u32).collect(), lines: std::sync::OnceLock::from(lines), ..Report::default() }
    }

    /// One line per turn (made once).
    pub(crate) fn lines(&self) -> &[ReportLine] {
        self.lines.get_or_init(|| {
            let mut fates: Vec<(Fate, usize)> = vec![(Fate::Dropped, 0); self.tokens.len()];
            for e in &self.events {
                match e {
                    Event::Shown(id, fate, shown) => {
                        if let Some(f) = fates.get_mut(*id) {
                            *f = (fate.clone(), *shown);
                        }
                    }
                    Event::Summary(first, last, k) => {
                        for f in fates.iter_mut().take(last + 1).skip(*first) {
                            if f.0 == Fate::Dropped {
                                *f = (Fate::Summarized { summary: *k }, 0);
                            }
                        }
                    }
                }
            }
            let mut scores = self.scores.as_ref().map(|s| s.iter().peekable());
            fates
                .into_iter()
                .zip(&self.tokens)
                .enumerate()
                .map(|(id, ((fate, shown), &tokens))| {
                    let mut score = ScoreParts::default();
                    if let Some(s) = scores.as_mut() {
                        while s.peek().is_some_and(|x| x.0 < id) {
                            s.next();
                        }
                        if let Some((_, p)) = s.next_if(|x| x.0 == id) {
                            score = p;
                        }
                    }
                    ReportLine { turn: id, fate, tokens: tokens as usize, shown_tokens: shown, score }
                })
                .collect()
        })
    }

    /// The turns shown verbatim, in order, without making the lines.
    fn kept(&self) -> Vec<TurnId> {
        if let Some(lines) = self.lines.get() {
            return lines.iter().filter(|l| l.fate == Fate::Kept).map(|l| l.turn).collect();
        }
        let mut fates: std::collections::BTreeMap<TurnId, bool> = std::collections::BTreeMap::new();
        for e in &self.events {
            if let Event::Shown(id, fate, _) = e {
                fates.insert(*id, *fate == Fate::Kept);
            }
        }
        fates.into_iter().filter(|x| x.1).map(|x| x.0).collect()
    }
}

impl Serialize for Report {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.lines())
    }
}

/// Which summarizer wrote a summary, and why the extractive one did when a generated one was wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SummarySource {
    /// The extractive summarizer (no generated summaries configured).
    Extractive,
    /// A model (the generated summarizer), accepted by the guard.
    Generated,
    /// Extractive because the generated one is not ready yet (queued or being written).
    FallbackPending,
    /// Extractive because the endpoint failed for this run.
    FallbackFailed,
    /// Extractive because the guard rejected the generated one (too many unsupported terms).
    FallbackRejected,
    /// Extractive because not even the first line of the generated one fits the allowance.
    FallbackTooLong,
}

impl SummarySource {
    /// Whether a generated summary was wanted but the extractive one stood in.
    pub fn is_fallback(self) -> bool {
        !matches!(self, SummarySource::Extractive | SummarySource::Generated)
    }
}

/// A summary in the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryInfo {
    /// First turn summarized.
    pub first: TurnId,
    /// Last turn summarized.
    pub last: TurnId,
    /// Tokens of the summary message.
    pub tokens: usize,
    /// Tokens of the turns it stands in for.
    pub source_tokens: usize,
    /// Which summarizer wrote it.
    pub source: SummarySource,
    /// Terms (identifiers, paths, numbers, names) it mentions that occur nowhere in its turns
    /// (0 for extractive summaries, which only quote them).
    pub unsupported_terms: usize,
    /// For a generated summary, how long the model took to write it, ms.
    pub generation_ms: Option<u64>,
}

/// An assembled window.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub(crate) messages: Vec<Message>,
    pub(crate) total_tokens: usize,
    pub(crate) budget: usize,
    pub(crate) encoding: Encoding,
    pub(crate) report: Report,
    pub(crate) summaries: Vec<SummaryInfo>,
    pub(crate) query_embed_us: Option<f64>,
}

impl Window {
    /// The messages, pins first, then history in chronological order.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }
    /// Exact total tokens of the rendered request (framing included).
    pub fn total_tokens(&self) -> usize {
        self.total_tokens
    }
    /// The budget it was assembled for.
    pub fn budget(&self) -> usize {
        self.budget
    }
    /// The encoding it was counted in.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }
    /// One line per turn of the history (made the first time it is asked for).
    pub fn report(&self) -> &[ReportLine] {
        self.report.lines()
    }
    /// Microseconds spent embedding the query (dense retrieval only; part of the assemble time).
    pub fn query_embed_us(&self) -> Option<f64> {
        self.query_embed_us
    }
    /// The summaries in the window.
    pub fn summaries(&self) -> &[SummaryInfo] {
        &self.summaries
    }
    /// Turns left out with nothing standing in for them: reported `Dropped` with no gap marker
    /// covering them, or `Summarized` by a summary that does not cover them. Always empty for the
    /// engine's windows (an invariant the fuzz target, the `sequences` property test and every
    /// `ctxbench` replay check); a host can check it too.
    pub fn silent_drops(&self) -> Vec<TurnId> {
        let mut marked: Vec<(TurnId, TurnId)> = Vec::new();
        for m in &self.messages {
            if let Origin::Marker { first, last } = m.origin() {
                marked.push((*first, *last));
            }
            if let Some(gap) = m.omitted() {
                marked.push(gap);
            }
        }
        marked.sort_unstable();
        let covered = |i: TurnId| {
            let k = marked.partition_point(|&(a, _)| a <= i);
            marked[..k].iter().rev().any(|&(_, b)| i <= b)
        };
        self.report
            .lines()
            .iter()
            .filter(|l| match &l.fate {
                Fate::Dropped => !covered(l.turn),
                Fate::Summarized { summary } => !self.summaries.get(*summary).is_some_and(|s| s.first <= l.turn && l.turn <= s.last),
                _ => false,
            })
            .map(|l| l.turn)
            .collect()
    }
    /// Turns present verbatim (fate `Kept`).
    pub fn kept_turns(&self) -> impl Iterator<Item = TurnId> + '_ {
        self.report.kept().into_iter()
    }
    /// All the window's text, messages joined by newlines (tool calls included).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for m in &self.messages {
            out.push_str(&m.content);
            out.push('\n');
            for c in &m.tool_calls {
                out.push_str(&c.name);
                out.push(' ');
                out.push_str(&c.arguments);
                out.push('\n');
            }
        }
        out
    }

    /// The request as OpenAI chat `messages` (system first; each tool result right after its call).
    pub fn to_openai(&self) -> Value {
        openai::render(&self.messages)
    }

    /// The request as Anthropic Messages `{system, messages}`: the pins go in `system`, consecutive
    /// same-role messages merge into one (tool results become `tool_result` blocks of a user message
    /// right after the assistant's `tool_use`), and roles alternate starting with `user`.
    pub fn to_anthropic(&self) -> Value {
        anthropic::render(&self.messages)
    }

    /// One line per message, for snapshots and debugging: `role origin tokens: first 60 chars`.
    pub fn outline(&self) -> String {
        let mut out = String::new();
        for m in &self.messages {
            let origin = match &m.origin {
                Origin::Pins => "pins".to_string(),
                Origin::Turn { turn } => match m.omitted {
                    Some((a, b)) => format!("turn {turn} gap {a}-{b}"),
                    None => format!("turn {turn}"),
                },
                Origin::Summary { first, last } => format!("summary {first}-{last}"),
                Origin::Marker { first, last } => format!("marker {first}-{last}"),
            };
            let head: String = m.content.chars().take(60).collect::<String>().replace('\n', " ");
            let calls: Vec<&str> = m.tool_calls.iter().map(|c| c.name.as_str()).collect();
            let calls = if calls.is_empty() { String::new() } else { format!(" calls {}", calls.join(",")) };
            out.push_str(&format!("{:<9} {:<16} {:>5}  {}{}\n", m.role.as_str(), origin, m.tokens, head, calls));
        }
        out
    }
}

/// Which provider's request shape a [`RequestError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// OpenAI chat completions `messages`.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}

/// What is wrong with a rendered request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The messages are not a JSON array.
    NotAnArray,
    /// A message has no role.
    NoRole,
    /// A role the API does not know (or does not allow there).
    UnknownRole(String),
    /// A system message after the first non-system one.
    SystemAfterStart,
    /// A tool message without a call id.
    ResultWithoutCallId,
    /// A tool call without an id.
    CallWithoutId,
    /// A tool result whose call is not open (it does not follow its call).
    ResultWithoutCall(String),
    /// Tool calls still open before a message of another role.
    CallsNotAnswered {
        /// The open calls.
        calls: Vec<String>,
        /// The role of the message that came before their results.
        before: String,
    },
    /// Tool calls never answered.
    NeverAnswered(Vec<String>),
    /// The first message is not from the user.
    FirstNotUser,
    /// Two messages of this role in a row.
    SameRoleTwice(String),
    /// A message's content is not a list of blocks.
    ContentNotBlocks,
    /// The tool results of a message do not answer exactly the previous message's tool uses.
    ResultsMismatch {
        /// The results' call ids, sorted.
        results: Vec<String>,
        /// The previous message's tool-use ids, sorted.
        uses: Vec<String>,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::NotAnArray => write!(f, "messages must be an array"),
            Problem::NoRole => write!(f, "no role"),
            Problem::UnknownRole(r) => write!(f, "role {r} not allowed"),
            Problem::SystemAfterStart => write!(f, "system message after the start"),
            Problem::ResultWithoutCallId => write!(f, "tool message without tool_call_id"),
            Problem::CallWithoutId => write!(f, "tool call without id"),
            Problem::ResultWithoutCall(id) => write!(f, "tool result {id} does not follow its call"),
            Problem::CallsNotAnswered { calls, before } => write!(f, "tool calls {calls:?} not answered before a {before} message"),
            Problem::NeverAnswered(calls) => write!(f, "tool calls {calls:?} never answered"),
            Problem::FirstNotUser => write!(f, "first message must be from the user"),
            Problem::SameRoleTwice(r) => write!(f, "two {r} messages in a row"),
            Problem::ContentNotBlocks => write!(f, "content must be blocks"),
            Problem::ResultsMismatch { results, uses } => write!(f, "tool results {results:?} do not match the previous tool uses {uses:?}"),
        }
    }
}

/// A rendered request that the provider's API would reject: which API, which message (0-based,
/// when one message is at fault) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{api:?} request{}: {problem}", message.map(|i| format!(", message {i}")).unwrap_or_default())]
pub struct RequestError {
    /// The API whose rules were checked.
    pub api: Api,
    /// The message at fault, when one is.
    pub message: Option<usize>,
    /// What is wrong.
    pub problem: Problem,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::turn::Role;

    fn line(turn: TurnId, fate: Fate) -> ReportLine {
        ReportLine { turn, fate, tokens: 5, shown_tokens: 0, score: ScoreParts::default() }
    }

    /// A dropped turn no marker covers is a silent drop; one a marker covers is not, whether the
    /// marker is a message of its own or begins a turn's message.
    #[test]
    fn silent_drops_are_the_left_out_turns_nothing_stands_in_for() {
        let marker = Message::text(Role::User, "[2 turns omitted]".into(), Origin::Marker { first: 0, last: 1 });
        let mut shown = Message::text(Role::User, "[1 turn omitted] hi".into(), Origin::Turn { turn: 5 });
        shown.omitted = Some((4, 4));
        let w = Window {
            messages: vec![marker, shown],
            total_tokens: 0,
            budget: 100,
            encoding: Encoding::O200kBase,
            report: Report::of_lines(vec![
                line(0, Fate::Dropped),
                line(1, Fate::Dropped),
                line(2, Fate::Dropped),
                line(3, Fate::Summarized { summary: 0 }),
                line(4, Fate::Dropped),
                line(5, Fate::Kept),
            ]),
            summaries: Vec::new(),
            query_embed_us: None,
        };
        assert_eq!(w.silent_drops(), vec![2, 3]);
    }
}
