//! Summaries that stand in for runs of turns left out of a window.
//!
//! [`Summarizer`] is a trait so a model-backed summarizer can replace the default. The default,
//! [`ExtractiveSummarizer`], needs no model: from the run it keeps the sentences and lines that carry
//! the most information (names, dates, numbers, identifiers, decisions) up to its token allowance,
//! in their original order, each labelled with its speaker; long tool outputs contribute their head
//! and tail lines. Before the lines it lists the run's references — paths, identifiers, long
//! numbers, quoted strings — the ones the model itself wrote first, latest first, then those that
//! recur in tool output: an index of what the left-out turns touched, which the model can recall
//! with search. The engine caches summaries, so the same run is not summarized again each turn.

use crate::refs::references;
use crate::store::{Sentence, StoredTurn};
use crate::tokens::TokenCounter;
use crate::turn::{Role, TurnId};

/// A run of consecutive turns to summarize, with per-turn data computed once.
pub struct Run<'a> {
    pub(crate) first: TurnId,
    pub(crate) turns: &'a [StoredTurn],
    pub(crate) source_tokens: usize,
}

impl Run<'_> {
    /// First turn id of the run.
    pub fn first(&self) -> TurnId {
        self.first
    }
    /// Last turn id of the run.
    pub fn last(&self) -> TurnId {
        self.first + self.turns.len().saturating_sub(1)
    }
    /// Number of turns.
    pub fn len(&self) -> usize {
        self.turns.len()
    }
    /// Whether the run is empty.
    pub fn is_empty(&self) -> bool {
        self.turns.is_empty()
    }
    /// Tokens of the run's turns as rendered verbatim.
    pub fn source_tokens(&self) -> usize {
        self.source_tokens
    }
    /// The text of each turn, as the model would read it.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.turns.iter().map(|t| t.text.as_str())
    }
}

/// Writes the text that stands in for a run of left-out turns.
pub trait Summarizer: Send {
    /// An id for caching (change it when the output for the same input would change).
    fn id(&self) -> &str;
    /// A summary of `run` in at most `max_tokens` tokens as counted by `counter` (message framing
    /// excluded). Returning an empty string means "no summary fits": the window shows a marker.
    fn summarize(&mut self, run: &Run<'_>, max_tokens: usize, counter: &mut TokenCounter) -> String;
}

/// The default summarizer: extractive, deterministic, no model.
#[derive(Debug, Default, Clone)]
pub struct ExtractiveSummarizer;

/// Words that mark a decision, plan or outcome.
const DECISION_WORDS: &[&str] = &[
    "decided", "decide", "will", "plan", "planning", "agreed", "must", "should", "going to", "fixed", "error", "failed",
    "passed", "created", "changed", "moved", "started", "finished", "bought", "adopted", "married", "born", "because",
];

/// Splits `text` into sentences/lines: newlines always split; `. ! ?` followed by a space split.
pub(crate) fn split_sentences(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let end_here = b == b'\n' || (matches!(b, b'.' | b'!' | b'?') && bytes.get(i + 1).is_some_and(|n| *n == b' '));
        if end_here {
            let end = if b == b'\n' { i } else { i + 1 };
            push_trimmed(text, start, end, &mut out);
            start = i + 1;
        }
        i += 1;
    }
    push_trimmed(text, start, text.len(), &mut out);
    out
}

fn push_trimmed(text: &str, start: usize, end: usize, out: &mut Vec<std::ops::Range<usize>>) {
    let Some(s) = text.get(start..end) else { return };
    let lead = s.len() - s.trim_start().len();
    let trail = s.len() - s.trim_end().len();
    if lead + trail < s.len() {
        out.push(start + lead..end - trail);
    }
}

/// Information of a sentence: references (names, numbers, identifiers), decisions, a little for length.
fn information(s: &str) -> f32 {
    let refs = references(s).len() as f32;
    let lower = s.to_lowercase();
    let decisions = DECISION_WORDS.iter().filter(|w| lower.contains(*w)).count() as f32;
    refs + 0.5 * decisions.min(2.0) + 0.1 * (s.len() as f32).sqrt().min(8.0)
}

/// Sentences of a stored turn (computed once, cached in the turn). Long tool outputs contribute their
/// first and last lines only (head and tail), marked by the summarizer.
pub(crate) fn sentences<'a>(t: &'a StoredTurn, counter: &mut TokenCounter) -> &'a [Sentence] {
    t.sentences.get_or_init(|| {
        let ranges = split_sentences(&t.text);
        let tool = t.has_results();
        let keep: Vec<std::ops::Range<usize>> = if tool && ranges.len() > 12 {
            let n = ranges.len();
            ranges.into_iter().enumerate().filter(|(i, _)| *i < 6 || *i >= n - 6).map(|(_, r)| r).collect()
        } else {
            ranges
        };
        keep.into_iter()
            .filter_map(|r| {
                let s = t.text.get(r.clone())?;
                // Overlong single lines are cut at 400 bytes (on a char boundary) to keep summaries diverse.
                let mut end = r.end.min(r.start + 400);
                while !t.text.is_char_boundary(end) {
                    end -= 1;
                }
                let r = r.start..end;
                let s = t.text.get(r.clone()).unwrap_or(s);
                Some(Sentence { tokens: counter.count(s), info: information(s), range: r })
            })
            .collect()
    })
}

/// Turns of a run whose sentences are candidates for a summary, at most.
const MAX_SOURCE_TURNS: usize = 48;

/// Share (percent) of a summary's allowance its reference list may take.
const REFERENCE_SHARE: usize = 80;

/// `Mentioned: a, b, c` — salient terms of the run within `allowance` tokens (estimated per term,
/// the summary is counted exactly afterwards). Terms the model or user wrote come first, latest
/// first; then terms that occur in two or more tool outputs.
fn references_line(run: &Run<'_>, allowance: usize, counter: &mut TokenCounter) -> (String, usize) {
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut ordered: Vec<&str> = Vec::new();
    for t in run.turns.iter().rev().filter(|t| !t.has_results()) {
        for term in t.salient.get_or_init(|| crate::refs::salient_terms(&t.turn.plain_text())) {
            if seen.insert(term.as_str()) {
                ordered.push(term.as_str());
            }
        }
    }
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for t in run.turns.iter().rev().filter(|t| t.has_results()) {
        for term in t.salient.get_or_init(|| crate::refs::salient_terms(&t.turn.plain_text())) {
            *counts.entry(term.as_str()).or_insert(0) += 1;
            if counts[term.as_str()] == 2 && seen.insert(term.as_str()) {
                ordered.push(term.as_str());
            }
        }
    }
    let mut line = String::new();
    let mut used = 0;
    for term in ordered {
        if term.contains('\n') || term.len() > 120 {
            continue;
        }
        let cost = counter.count(term) + 1;
        if used + cost + 2 > allowance {
            if used + 8 > allowance {
                break;
            }
            continue;
        }
        line.push_str(if line.is_empty() { "Mentioned: " } else { ", " });
        line.push_str(term);
        used += cost;
    }
    if line.is_empty() {
        return (line, 0);
    }
    let tokens = counter.count(&line) + 1;
    (line, tokens)
}

fn label(t: &StoredTurn) -> &str {
    match (t.turn.speaker(), t.turn.role()) {
        (Some(_), _) => "",
        (None, Role::User) => "user: ",
        (None, Role::Assistant) => "assistant: ",
        (None, Role::Tool) => "tool: ",
        (None, Role::System) => "note: ",
    }
}

impl Summarizer for ExtractiveSummarizer {
    fn id(&self) -> &str {
        "extractive-v1"
    }

    fn summarize(&mut self, run: &Run<'_>, max_tokens: usize, counter: &mut TokenCounter) -> String {
        let head = format!(
            "[Summary of {} earlier turns ({} tokens) not shown; key lines:]",
            run.len(),
            run.source_tokens()
        );
        let head_tokens = counter.count(&head);
        if head_tokens + 8 > max_tokens {
            return String::new();
        }
        // References first, within `REFERENCE_SHARE` of the allowance.
        let (refs_line, refs_tokens) = references_line(run, (max_tokens - head_tokens) * REFERENCE_SHARE / 100, counter);
        let head = if refs_line.is_empty() { head } else { format!("{head}\n{refs_line}") };
        let head_tokens = head_tokens + refs_tokens;
        // Candidates: (turn index in run, sentence), from the turns that mention the most
        // references (at most `MAX_SOURCE_TURNS` of them, so a long run costs no more than a short one).
        let mut source: Vec<usize> = (0..run.turns.len()).collect();
        if source.len() > MAX_SOURCE_TURNS {
            source.sort_by(|&a, &b| run.turns[b].ref_count.cmp(&run.turns[a].ref_count).then(b.cmp(&a)));
            source.truncate(MAX_SOURCE_TURNS);
            source.sort_unstable();
        }
        let mut cands: Vec<(usize, &Sentence)> = Vec::new();
        for i in source {
            let t = &run.turns[i];
            for s in sentences(t, counter) {
                if s.tokens > 0 {
                    cands.push((i, s));
                }
            }
        }
        // Rank by information per token (sqrt-damped), ties by position.
        let rank = |s: &Sentence| s.info / (s.tokens as f32).sqrt().max(1.0);
        let mut order: Vec<usize> = (0..cands.len()).collect();
        order.sort_by(|&a, &b| rank(cands[b].1).total_cmp(&rank(cands[a].1)).then(a.cmp(&b)));
        let mut picked: Vec<usize> = Vec::new();
        let mut used = head_tokens;
        for k in order {
            let (i, s) = cands[k];
            // Each line costs its tokens + label + newline (estimate; checked exactly below).
            let cost = s.tokens + 3 + run.turns[i].turn.speaker().map_or(0, |_| 0);
            if used + cost <= max_tokens {
                used += cost;
                picked.push(k);
            }
            if max_tokens.saturating_sub(used) < 6 {
                break;
            }
        }
        picked.sort_unstable();
        let build = |picked: &[usize]| {
            let mut out = head.clone();
            for &k in picked {
                let (i, s) = cands[k];
                let t = &run.turns[i];
                out.push('\n');
                out.push_str(label(t));
                out.push_str(&t.text[s.range.clone()]);
            }
            out
        };
        let mut text = build(&picked);
        // Exact check: drop the least informative picked lines until it fits.
        while counter.count(&text) > max_tokens {
            if picked.is_empty() {
                return String::new();
            }
            let worst = picked
                .iter()
                .enumerate()
                .min_by(|a, b| rank(cands[*a.1].1).total_cmp(&rank(cands[*b.1].1)))
                .map(|(pos, _)| pos)
                .unwrap_or(0);
            picked.remove(worst);
            text = build(&picked);
        }
        if picked.is_empty() {
            return String::new();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_sentence_ends_and_lines() {
        let t = "Hello there. I went to Paris in 2021! Why?\nNext line  \n\n3.14 is pi.";
        let parts: Vec<&str> = split_sentences(t).into_iter().map(|r| &t[r]).collect();
        assert_eq!(parts, vec!["Hello there.", "I went to Paris in 2021!", "Why?", "Next line", "3.14 is pi."]);
    }

    #[test]
    fn information_prefers_specifics() {
        assert!(information("Caroline adopted a dog named Rex on 12 May 2023.") > information("that is so nice to hear, really."));
    }
}
