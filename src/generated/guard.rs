//! The guard against invented content: the identifiers, paths, numbers, quoted strings and names a
//! generated summary mentions that occur nowhere in the turns it summarizes.
//!
//! Terms are the hindsight probe's salient terms (`crate::refs::salient_terms`: paths, identifiers,
//! numbers of 3+ digits, quoted strings), plus numbers of 2 digits and capitalized words that do not
//! begin a sentence or a line (names). A term is supported when it occurs in the run's text, ignoring
//! case. The section headings of the prompt are never counted.

use crate::generated::prompt::SECTIONS;
use crate::refs::salient_terms;

/// Capitalized words that are not names even in mid-sentence.
const NOT_NAMES: &[&str] = &["I", "I'm", "I've", "I'll", "I'd", "OK", "None", "User", "Assistant", "Tool", "Summary", "Turns"];

/// Names and 2-digit numbers: capitalized words that do not start a sentence or a line.
fn names_and_numbers(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut sentence_start = true;
        for raw in line.split_whitespace() {
            let w = raw.trim_matches(|c: char| !c.is_alphanumeric());
            let starts = sentence_start;
            sentence_start = raw.ends_with(['.', '!', '?', ':']) || raw.chars().all(|c| !c.is_alphanumeric());
            if w.is_empty() {
                continue;
            }
            let digits = w.chars().filter(char::is_ascii_digit).count();
            let two_digits = digits == w.len() && digits == 2;
            let name = !starts && w.chars().next().is_some_and(char::is_uppercase) && w.chars().count() >= 2 && !NOT_NAMES.contains(&w);
            if two_digits || name {
                out.push(w);
            }
        }
    }
    out
}

/// The terms of `summary` that do not occur in `source` (case-insensitive), deduplicated, in order.
pub(crate) fn unsupported_terms(summary: &str, source: &str) -> Vec<String> {
    let source = source.to_lowercase();
    let headings: Vec<String> = SECTIONS.iter().flat_map(|s| s.split(' ')).map(str::to_lowercase).collect();
    let mut terms = salient_terms(summary);
    for w in names_and_numbers(summary) {
        if !terms.iter().any(|t| t == w) {
            terms.push(w.to_string());
        }
    }
    terms
        .into_iter()
        .filter(|t| {
            let lower = t.to_lowercase();
            !headings.contains(&lower) && !source.contains(&lower)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_identifiers_paths_numbers_and_names_are_counted() {
        let source = "alice: I moved parse_expr into src/parser.rs and the test took 1500 ms. Bob agreed.";
        let ok = "Decisions\n- Alice moved parse_expr into src/parser.rs; Bob agreed (1500 ms).";
        assert_eq!(unsupported_terms(ok, source), Vec::<String>::new());
        let bad = "Files and identifiers\n- Alice edited src/lexer.rs and renamed tokenize_all; the test took 2300 ms, said Carol.";
        assert_eq!(unsupported_terms(bad, source), vec!["src/lexer.rs", "tokenize_all", "2300", "Carol"]);
    }

    #[test]
    fn sentence_starts_and_headings_are_not_names() {
        let source = "user: fix the bug";
        let s = "Intent and task state\n- Fix the bug.\nNext step\n- Run the tests. Then stop.";
        assert!(unsupported_terms(s, source).is_empty());
    }
}
