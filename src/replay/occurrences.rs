//! Where each term a hindsight probe asks about occurs: built once per transcript with one
//! Aho-Corasick pass over every turn, so a probe's "which of these terms occurred earlier, and how
//! long ago" costs a binary search per term instead of a scan of the whole history before it (which
//! made a replay quadratic in the transcript's length).

use aho_corasick::AhoCorasick;
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};

/// Turns (by index) containing each term, and whether the pins do.
pub(crate) struct Occurrences {
    index: FxHashMap<String, usize>,
    /// Per term: the turns whose text contains it, ascending, each once.
    turns: Vec<Vec<u32>>,
    /// Per term: whether the pins' text contains it.
    in_pins: Vec<bool>,
}

/// Turns before the probed one that count as recent (a term seen only earlier is long-range).
const RECENT_TURNS: usize = 4;

impl Occurrences {
    /// Indexes where each of `terms` occurs (as a substring) in `texts` and in `pin_text`.
    pub(crate) fn new<'a>(terms: impl IntoIterator<Item = &'a str>, texts: &[String], pin_text: &str) -> Result<Self> {
        let mut index: FxHashMap<String, usize> = FxHashMap::default();
        let mut patterns: Vec<&str> = Vec::new();
        for t in terms {
            if !t.is_empty() && !index.contains_key(t) {
                index.insert(t.to_string(), patterns.len());
                patterns.push(t);
            }
        }
        let mut turns: Vec<Vec<u32>> = vec![Vec::new(); patterns.len()];
        let mut in_pins = vec![false; patterns.len()];
        if !patterns.is_empty() {
            let ac = AhoCorasick::new(&patterns).map_err(|e| Error::Replay(format!("term index: {e}")))?;
            for (i, text) in texts.iter().enumerate() {
                for m in ac.find_overlapping_iter(text.as_str()) {
                    let list = &mut turns[m.pattern().as_usize()];
                    if list.last() != Some(&(i as u32)) {
                        list.push(i as u32);
                    }
                }
            }
            for m in ac.find_overlapping_iter(pin_text) {
                in_pins[m.pattern().as_usize()] = true;
            }
        }
        Ok(Occurrences { index, turns, in_pins })
    }

    /// The `terms` turn `i` used that occur before it (in turns `..i` or the pins), each with
    /// whether it is long-range: not in the last [`RECENT_TURNS`] turns before `i`. A term that
    /// was not indexed is not needed.
    pub(crate) fn needed<'t>(&self, terms: &'t [String], i: usize) -> Vec<(&'t str, bool)> {
        let recent_from = i.saturating_sub(RECENT_TURNS) as u32;
        let i = i as u32;
        let mut out = Vec::new();
        for term in terms {
            let Some(&k) = self.index.get(term.as_str()) else { continue };
            let list = &self.turns[k];
            let first_recent = list.partition_point(|&t| t < recent_from);
            let in_recent = list.get(first_recent).is_some_and(|&t| t < i);
            let in_old = self.in_pins[k] || first_recent > 0;
            if in_recent || in_old {
                out.push((term.as_str(), !in_recent));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan the index replaces.
    fn needed_by_scan<'a>(terms: &'a [String], texts: &[String], pin_text: &str, i: usize) -> Vec<(&'a str, bool)> {
        let recent_from = i.saturating_sub(RECENT_TURNS);
        let mut needed = Vec::new();
        for term in terms {
            let in_recent = texts[recent_from..i].iter().any(|x| x.contains(term.as_str()));
            let in_old = pin_text.contains(term.as_str()) || texts[..recent_from].iter().any(|x| x.contains(term.as_str()));
            if in_recent || in_old {
                needed.push((term.as_str(), !in_recent));
            }
        }
        needed
    }

    #[test]
    fn matches_the_scan_on_overlapping_and_repeated_terms() -> Result<()> {
        let words = ["src/a.rs", "a.rs", "parse_expr", "parse", "ERR42", "x", "src/a.rs:12"];
        let mut texts = Vec::new();
        for k in 0..60usize {
            let t: Vec<&str> = (0..(k % 5)).map(|j| words[(k * 3 + j * 5) % words.len()]).collect();
            texts.push(t.join(" then "));
        }
        let pins = "see ERR42 in the pins";
        let terms: Vec<String> = words.iter().map(|w| w.to_string()).chain(["absent".to_string()]).collect();
        let occ = Occurrences::new(terms.iter().map(String::as_str), &texts, pins)?;
        for i in 0..texts.len() {
            assert_eq!(occ.needed(&terms, i), needed_by_scan(&terms, &texts, pins, i), "turn {i}");
        }
        Ok(())
    }
}
