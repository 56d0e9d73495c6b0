//! Metrics: latency percentiles, answer normalization, prefix reuse and cache-priced cost, and the
//! structural validity checks run on every window of a replay.

use serde::Serialize;

use crate::message::Message;
use crate::tokens::TokenCounter;
use crate::window::Window;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples` (sorted in place); zeros when empty.
    pub fn of(samples: &mut [f64]) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1]
        };
        Percentiles { p50: at(0.50), p95: at(0.95), p99: at(0.99) }
    }
}

/// Lower-cases, drops punctuation and the articles a/an/the, collapses white space (SQuAD-style).
pub fn normalize_answer(s: &str) -> String {
    let lowered: String = s.to_lowercase().chars().map(|c| if c.is_alphanumeric() || c.is_whitespace() { c } else { ' ' }).collect();
    lowered.split_whitespace().filter(|w| !matches!(*w, "a" | "an" | "the")).collect::<Vec<_>>().join(" ")
}

/// Whether the normalized `answer` occurs in the normalized `text` on word boundaries.
pub fn answer_present(normalized_text: &str, answer: &str) -> bool {
    let a = normalize_answer(answer);
    if a.is_empty() {
        return false;
    }
    let padded = format!(" {normalized_text} ");
    padded.contains(&format!(" {a} "))
}

/// Tool calls not answered right after their call, plus results not following their call.
pub fn pair_violations(messages: &[Message]) -> usize {
    let mut open: Vec<&str> = Vec::new();
    let mut bad = 0;
    for m in messages {
        match m.tool_call_id() {
            Some(id) => match open.iter().position(|o| *o == id) {
                Some(p) => {
                    open.remove(p);
                }
                None => bad += 1,
            },
            None => {
                bad += open.len();
                open.clear();
                open.extend(m.tool_call_ids());
            }
        }
    }
    bad + open.len()
}

fn same_message(a: &Message, b: &Message) -> bool {
    a == b
}

/// Tokens of the longest common prefix of two windows: whole equal messages, plus the common
/// leading text of the first message that differs (counted exactly).
pub fn common_prefix_tokens(prev: &Window, cur: &Window, counter: &mut TokenCounter) -> usize {
    let mut n = 0;
    for (a, b) in prev.messages().iter().zip(cur.messages()) {
        if same_message(a, b) {
            n += a.token_count();
            continue;
        }
        if a.role() == b.role() {
            let common: usize = a.content().char_indices().zip(b.content().chars()).take_while(|((_, x), y)| x == y).map(|((_, x), _)| x.len_utf8()).sum();
            if common > 0 {
                // The common text, minus its last token (which may merge differently).
                n += crate::tokens::MESSAGE_OVERHEAD + counter.count(&a.content()[..common]).saturating_sub(1);
            }
        }
        break;
    }
    n.min(cur.total_tokens())
}

/// Cost units of a window with a prompt cache: the prefix shared with the previous window at
/// 0.1×, the rest written at 1.25× (base input = 1×).
pub fn cost_units(prefix_tokens: usize, window_tokens: usize) -> f64 {
    prefix_tokens as f64 * 0.1 + window_tokens.saturating_sub(prefix_tokens) as f64 * 1.25
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(Percentiles::of(&mut v), Percentiles { p50: 50.0, p95: 95.0, p99: 99.0 });
        assert_eq!(Percentiles::of(&mut []), Percentiles::default());
    }

    #[test]
    fn answers_normalize() {
        assert_eq!(normalize_answer("The  Psychology, counseling-certification!"), "psychology counseling certification");
        let text = normalize_answer("[7 May 2023] Caroline: I went to the support group.");
        assert!(answer_present(&text, "7 May 2023"));
        assert!(!answer_present(&text, "May 20"));
        assert!(!answer_present(&text, ""));
    }
}
