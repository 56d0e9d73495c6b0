//! The sectioned prompt: a fresh summary of a run, or an extension of a previous summary with the
//! turns that followed it. The sections are the ones people ask compaction to keep (Factory's
//! sectioned summaries, Claude Code's compaction prompt): intent and task state, decisions, files
//! and identifiers, open questions, next step.

use crate::text::{take_bytes_at_char_boundary, take_last_bytes_at_char_boundary};

/// Changes whenever the prompt's wording changes: it is part of the summary cache key.
pub(crate) const PROMPT_VERSION: u32 = 1;

/// Longest text taken from one turn (head and tail of a long one, with the cut marked).
const TURN_CHARS: usize = 1200;

/// The section headings, in order (the guard does not count them as invented terms).
pub(crate) const SECTIONS: [&str; 5] = ["Intent and task state", "Decisions", "Files and identifiers", "Open questions", "Next step"];

/// The system message.
pub(crate) fn system() -> String {
    format!(
        "You summarize part of a conversation for an assistant that can no longer see it. \
         Write only facts stated in the turns: names, dates, numbers, file paths and identifiers exactly as written. \
         Never invent anything. Use these sections, each a heading line followed by short bullet points \
         (write 'none' when a section has nothing): {}.",
        SECTIONS.join("; ")
    )
}

/// One turn as the model reads it: its rendered text, long ones cut to head and tail.
fn turn_text(text: &str) -> String {
    if text.len() <= TURN_CHARS {
        return text.to_string();
    }
    let head = take_bytes_at_char_boundary(text, TURN_CHARS * 2 / 3);
    let tail = take_last_bytes_at_char_boundary(text, TURN_CHARS / 3);
    format!("{head}\n[… {} characters cut …]\n{tail}", text.len() - head.len() - tail.len())
}

fn turns_block(turns: &[&str]) -> String {
    let mut out = String::new();
    for t in turns {
        out.push_str(&turn_text(t));
        out.push_str("\n---\n");
    }
    out
}

/// The user message asking for a fresh summary of `turns` in about `words` words.
pub(crate) fn fresh(turns: &[&str], words: usize) -> String {
    format!("Turns:\n---\n{}\nSummarize these turns in at most {words} words.", turns_block(turns))
}

/// The user message asking to extend `previous` (the summary of the turns before) with `turns`.
pub(crate) fn extend(previous: &str, turns: &[&str], words: usize) -> String {
    format!(
        "Summary of the earlier turns:\n{previous}\n\nTurns that followed:\n---\n{}\nRewrite the summary so it also covers the turns that followed, in at most {words} words.",
        turns_block(turns)
    )
}

/// Roughly how many words fit in `tokens` output tokens (English prose: ~0.75 words per token).
pub(crate) fn words_for(tokens: usize) -> usize {
    (tokens * 3 / 4).max(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_turns_keep_head_and_tail_with_the_cut_marked() {
        let long = format!("START {} END", "x".repeat(5000));
        let t = turn_text(&long);
        assert!(t.starts_with("START ") && t.ends_with(" END"));
        assert!(t.contains("characters cut"));
        assert!(t.len() < TURN_CHARS + 100);
        assert_eq!(turn_text("short"), "short");
    }

    #[test]
    fn extension_carries_the_previous_summary_and_only_the_new_turns() {
        let p = extend("Decisions\n- use sqlite", &["user: now add WAL"], 100);
        assert!(p.contains("use sqlite") && p.contains("now add WAL") && p.contains("100 words"));
        assert!(system().contains("Open questions"));
    }
}
