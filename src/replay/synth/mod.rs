//! Seeded generators of long sessions with planted facts — the project's own test, bench and
//! sample data.
//!
//! - [`conversation`]: a two-person chat in dated sessions of 20–40 turns, small talk from templates
//!   and word lists, with facts planted at random turns ("My sister Ana moved to Lisbon in March
//!   2021", "the wifi password at my cabin is tulip-4821") and one QA item per fact (category
//!   `planted`, evidence = the planting turn). Distractor turns share the question's words without
//!   the answer: the owner on the same subject ("I need to change the wifi password at my cabin"),
//!   mentions of the hook, and near misses stating the same kind of fact about someone else ("Joel's
//!   sister moved to Porto"), so retrieval has to rank, not just match a word.
//! - [`agent_session`]: a coding agent fixing failing tests in a generated Rust crate: System and
//!   Task pins, `bash` / `read_file` / `edit_file` / `grep` calls each followed by its result (file
//!   listings, whole source files, test logs of thousands of tokens), and occasional user messages.
//!   Identifiers and paths seen early are referred to again much later.
//! - [`samples`]: the two generated files under `datasets/samples/` (`ctxbench samples` writes
//!   them), saved by the writers next to the loaders ([`crate::replay::loaders::to_locomo_json`],
//!   [`crate::replay::loaders::to_openai_json`]).
//!
//! Everything is a pure function of `(seed, turns)`: the generators draw from [`Rng`] (SplitMix64,
//! the crate's one seeded generator), so the same call gives the same transcript on every platform
//! and release.

mod agent;
mod conversation;
mod facts;
mod haystack;
mod krate;
mod rng;
mod tools;
mod words;

pub use agent::agent_session;
pub use conversation::conversation;
pub use haystack::haystack;
pub use rng::Rng;

use crate::replay::loaders::{to_locomo_json, to_openai_json};
use crate::replay::transcript::Transcript;

/// One generated sample file: its name under `datasets/samples/`, the transcript, and the file's
/// exact content.
#[derive(Debug, Clone)]
pub struct Sample {
    name: &'static str,
    transcript: Transcript,
    text: String,
}

impl Sample {
    /// The file name (`synth-conversation.locomo.json`, `synth-agent.openai.json`).
    pub fn name(&self) -> &'static str {
        self.name
    }
    /// The generated transcript the file holds.
    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }
    /// The file's content: pretty JSON and a final newline.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The generated samples the repository ships under `datasets/samples/`: `conversation(7, 600)` as
/// LoCoMo JSON and `agent_session(11, 300)` as OpenAI chat JSON.
pub fn samples() -> Vec<Sample> {
    let c = conversation(7, 600);
    let a = agent_session(11, 300);
    let (cj, aj) = (pretty(&to_locomo_json(&c)), pretty(&to_openai_json(&a)));
    vec![Sample { name: "synth-conversation.locomo.json", transcript: c, text: cj }, Sample { name: "synth-agent.openai.json", transcript: a, text: aj }]
}

/// Pretty JSON and a final newline (serializing a `Value` cannot fail: its keys are strings).
fn pretty(v: &serde_json::Value) -> String {
    let mut s = format!("{v:#}");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &Transcript, b: &Transcript) -> bool {
        a.id == b.id && a.turns == b.turns && a.pins == b.pins && a.qa == b.qa
    }

    #[test]
    fn same_seed_same_transcript() {
        assert!(same(&conversation(3, 400), &conversation(3, 400)));
        assert!(same(&agent_session(3, 200), &agent_session(3, 200)));
        assert!(conversation(3, 400).turns != conversation(4, 400).turns);
        assert!(agent_session(3, 200).turns != agent_session(4, 200).turns);
    }

    #[test]
    fn exact_turn_counts() {
        for n in [0, 1, 2, 3, 37, 250] {
            assert_eq!(conversation(9, n).turns.len(), n, "conversation of {n}");
            assert_eq!(agent_session(9, n).turns.len(), n, "agent session of {n}");
        }
    }

    /// `{v:#}` is what `serde_json::to_string_pretty` writes (the committed samples were written
    /// with it).
    #[test]
    fn pretty_is_serde_pretty() -> serde_json::Result<()> {
        for s in samples() {
            let v: serde_json::Value = serde_json::from_str(s.text())?;
            assert_eq!(s.text(), serde_json::to_string_pretty(&v)? + "\n");
        }
        Ok(())
    }
}
