//! A generated coding-agent session: an agent fixing failing tests in a generated Rust crate
//! (the crate is in `krate.rs`, the tools' outputs in `tools.rs`), with user messages that refer
//! back to identifiers seen much earlier.

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

use super::krate::{Failure, Module};
use super::rng::Rng;
use super::words::{CRATES, MODULE_NAMES};
use crate::pins::PinLayer;
use crate::replay::transcript::Transcript;
use crate::turn::Turn;

/// The generator's state: the crate, what is broken, what the agent has seen, the turns so far.
pub(super) struct AgentGen {
    pub(super) rng: Rng,
    pub(super) seed: u64,
    pub(super) krate: String,
    pub(super) env_var: String,
    pub(super) modules: Vec<Module>,
    pub(super) failing: Vec<Failure>,
    /// Identifiers and paths shown so far, in first-seen order.
    pub(super) seen: Vec<String>,
    pub(super) seen_set: HashSet<String>,
    pub(super) calls: usize,
    pub(super) edits: Vec<(String, String, String)>,
    pub(super) turns: Vec<Turn>,
}

/// A coding-agent session of exactly `turns` turns: a System and a Task pin, then assistant turns
/// calling `bash`, `read_file`, `edit_file` and `grep` (JSON arguments, unique deterministic call
/// ids `call_<seed>_<n>`), each followed directly by its result, occasional user messages and
/// assistant progress notes.
///
/// The agent works on a generated Rust crate of a dozen modules: whole-file reads return a few
/// hundred lines of code, full test runs return logs of thousands of tokens with failing
/// assertions, `grep` finds identifiers across files, and edits change the files later reads show.
/// Identifiers and paths seen early (the failing test, its constant, an environment variable) are
/// mentioned again much later by the user and the agent, so recalling old turns matters.
/// The turns are normalized ([`crate::normalize`] finds nothing to repair). The same
/// `(seed, turns)` always gives the same transcript.
pub fn agent_session(seed: u64, turns: usize) -> Transcript {
    let mut g = AgentGen::new(seed);
    let mut t = Transcript::generated(format!("synth-agent-{seed}"), Path::new("<synth>"));
    t.pins.push((
        PinLayer::System,
        format!(
            "You are a careful coding agent working in the repository /workspace/{}. Tools: bash (run a shell \
             command), read_file (path, optional start_line/end_line), edit_file (path, old, new: replace one exact \
             occurrence) and grep (pattern, path). Make small, verified changes, run the tests after every edit, and \
             never rewrite a file wholesale.",
            g.krate
        ),
    ));
    let first = g.failing.first().cloned();
    let task = match &first {
        Some(f) => format!(
            "Task: `cargo test` fails on main since the last release: `{}::tests::{}` and {} other test(s). Find the \
             cause and fix it without changing the public API. Deployments set `{}`; it must keep working.",
            g.modules[f.module].name,
            f.test,
            g.failing.len() - 1,
            g.env_var
        ),
        None => format!("Task: make `cargo test` pass in {}.", g.krate),
    };
    t.pins.push((PinLayer::Task, task));
    g.run(turns);
    t.turns = std::mem::take(&mut g.turns);
    t.normalize_turns();
    t
}

impl AgentGen {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0xA6E7_5E55);
        let krate = rng.pick(CRATES).to_string();
        let env_var = format!("{}_{}", krate.to_uppercase(), rng.pick(&["CACHE_DIR", "LOG_LEVEL", "DATA_ROOT", "MAX_WORKERS", "LEASE_FILE"]));
        let n_modules = rng.range(10, 14);
        let mut names: Vec<&str> = Vec::new();
        while names.len() < n_modules {
            let m = rng.pick(MODULE_NAMES);
            if !names.contains(&m) {
                names.push(m);
            }
        }
        let mut g = AgentGen {
            rng,
            seed,
            krate,
            env_var,
            modules: Vec::new(),
            failing: Vec::new(),
            seen: Vec::new(),
            seen_set: HashSet::new(),
            calls: 0,
            edits: Vec::new(),
            turns: Vec::new(),
        };
        for name in &names {
            let m = g.make_module(name, &names);
            g.modules.push(m);
        }
        for _ in 0..2 {
            g.add_failure();
        }
        g
    }

    pub(super) fn see(&mut self, id: impl Into<String>) {
        let id = id.into();
        if self.seen_set.insert(id.clone()) {
            self.seen.push(id);
        }
    }

    pub(super) fn see_module(&mut self, mi: usize) {
        let m = self.modules[mi].clone();
        self.see(m.path.clone());
        for s in &m.structs {
            self.see(s.clone());
        }
        for (c, _) in &m.consts {
            self.see(c.clone());
        }
        for f in &m.fns {
            self.see(f.clone());
        }
    }

    /// Something seen before, half the time from the oldest fifth: long-range references.
    pub(super) fn old_ref(&mut self) -> String {
        if self.seen.is_empty() {
            return self.env_var.clone();
        }
        let n = if self.rng.chance(0.5) { (self.seen.len() / 5).max(1) } else { self.seen.len() };
        self.seen[self.rng.below(n)].clone()
    }

    fn next_call_id(&mut self) -> String {
        self.calls += 1;
        format!("call_{}_{:05}", self.seed, self.calls)
    }

    pub(super) fn call(&mut self, text: Option<String>, name: &str, args: Value, output: String) {
        let id = self.next_call_id();
        self.turns.push(Turn::tool_call(text, id.clone(), name, args));
        self.turns.push(Turn::tool_result(id, output, false));
    }

    fn run(&mut self, turns: usize) {
        // The opening moves every agent makes: look around, run the tests, read the failing module.
        let mut script: Vec<u8> = vec![b'u', b'l', b'c', b't', b'r'];
        script.reverse();
        let mut since_user = 0usize;
        let mut next_user = self.rng.range(15, 40);
        while self.turns.len() < turns {
            let left = turns - self.turns.len();
            let step = match script.pop() {
                Some(s) => s,
                None if since_user >= next_user => b'u',
                None => match self.rng.below(100) {
                    0..=7 => b'n',
                    8..=27 => b'r',
                    28..=37 => b'R',
                    38..=55 => b'g',
                    56..=67 => b'e',
                    68..=79 => b'T',
                    80..=85 => b't',
                    86..=92 => b'k',
                    93..=97 => b'd',
                    _ => b'l',
                },
            };
            if left == 1 || step == b'n' {
                self.note();
                since_user += 1;
                continue;
            }
            if step == b'u' {
                let about = self.user_message();
                since_user = 0;
                next_user = self.rng.range(15, 40);
                // Usually the agent answers before it goes on.
                if let Some(r) = about.filter(|_| self.turns.len() < turns && self.rng.chance(0.6)) {
                    self.reply(&r);
                }
                continue;
            }
            match step {
                b'l' => self.ls(),
                b'c' => self.cargo_toml(),
                b't' => self.test_all(),
                b'T' => self.test_module(),
                b'r' => self.read_file(false),
                b'R' => self.read_file(true),
                b'g' => self.grep(),
                b'e' => self.edit(),
                b'k' => self.clippy(),
                _ => self.diff(),
            }
            since_user += 2;
        }
    }

    /// A user message; returns what it asks about, if anything.
    fn user_message(&mut self) -> Option<String> {
        let (text, about) = if self.turns.is_empty() {
            ("Go ahead. CI is red on main; the run log is long, so start from `cargo test`.".to_string(), None)
        } else {
            match self.rng.below(6) {
                0 => {
                    let r = self.old_ref();
                    (format!("How is it going? Does any of this touch `{r}`?"), Some(r))
                }
                1 => {
                    let r = self.old_ref();
                    (format!("Heads up: `{r}` is also used by the deploy scripts, please don't rename or remove it."), Some(r))
                }
                2 => (format!("Reminder: `{}` must keep working after your change.", self.env_var), Some(self.env_var.clone())),
                3 => match self.add_failure() {
                    Some(f) => {
                        let name = format!("{}::tests::{}", self.modules[f.module].name, f.test);
                        (format!("New failure from the nightly CI: `{name}`. Can you look at it after the current one?"), Some(name))
                    }
                    None => ("Take your time, but please run the whole suite before you stop.".to_string(), None),
                },
                4 => {
                    let m = self.rng.below(self.modules.len());
                    let s = self.modules[m].structs[0].clone();
                    (format!("Please keep the public API of `{s}` in `{}` unchanged.", self.modules[m].path), Some(s))
                }
                _ => {
                    let r = self.old_ref();
                    (format!("What did you find about `{r}` earlier? Summarize before you continue."), Some(r))
                }
            }
        };
        self.turns.push(Turn::user(text));
        about
    }

    /// The agent's answer to a user message about `about`.
    fn reply(&mut self, about: &str) {
        let other = self.old_ref();
        let status = self.status();
        let text = match self.rng.below(3) {
            0 => format!("Understood, I won't touch `{about}`. So far I have looked at `{other}`. {status}"),
            1 => format!("Noted about `{about}`; it is related to what I saw in `{other}`. {status}"),
            _ => format!("`{about}`: I checked it earlier together with `{other}`, nothing to change there. {status}"),
        };
        self.turns.push(Turn::assistant(text));
    }

    pub(super) fn status(&self) -> String {
        match self.failing.first() {
            Some(f) => format!(
                "Still failing: `{}::tests::{}`, which expects `{}` in `{}` to be {}.",
                self.modules[f.module].name, f.test, f.constant, self.modules[f.module].path, f.expected
            ),
            None => "All the tests I know of pass now.".to_string(),
        }
    }

    /// An assistant progress note (no tool call), naming old identifiers.
    fn note(&mut self) {
        let r1 = self.old_ref();
        let r2 = self.old_ref();
        let status = self.status();
        self.turns.push(Turn::assistant(format!("Progress so far: I looked at `{r1}` and `{r2}`. {status}")));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::refs::salient_terms;
    use crate::tokens::{Encoding, TokenCounter};
    use crate::turn::{Block, Role};

    #[test]
    fn agent_session_pairs_calls_and_recalls_old_identifiers() {
        let t = agent_session(11, 300);
        assert_eq!(t.pins.iter().map(|p| p.0).collect::<Vec<_>>(), [PinLayer::System, PinLayer::Task]);
        assert_eq!(t.notes.normalize, Default::default());
        let mut ids = HashSet::new();
        for (i, turn) in t.turns.iter().enumerate() {
            for id in turn.call_ids() {
                assert!(ids.insert(id.to_string()), "call id {id} is unique");
                let next: Vec<&str> = t.turns.get(i + 1).map(|n| n.result_ids().collect()).unwrap_or_default();
                assert_eq!(next, [id], "the result of {id} follows its call");
            }
        }
        let names: HashSet<String> = t
            .turns
            .iter()
            .flat_map(|x| x.blocks())
            .filter_map(|b| match b {
                Block::ToolCall { name, .. } => Some(name.clone()),
                Block::Text { .. } | Block::ToolResult { .. } => None,
            })
            .collect();
        assert_eq!(names, ["bash", "read_file", "edit_file", "grep"].map(String::from).into_iter().collect());
        assert!(t.turns.iter().filter(|x| x.role() == Role::User).count() >= 5);

        let mut counter = TokenCounter::new(Encoding::O200kBase, 1024);
        let long = t.turns.iter().filter(|x| x.role() == Role::Tool && counter.count(&x.plain_text()) > 2000).count();
        assert!(long >= 5, "{long} tool results over 2,000 tokens");

        // Long range: assistant turns in the last third use identifiers first seen in the first tenth
        // and not in the 20 turns before.
        let texts: Vec<String> = t.turns.iter().map(Turn::plain_text).collect();
        let early = texts[..30].join("\n");
        let far = (200..300)
            .filter(|&i| t.turns[i].role() == Role::Assistant)
            .filter(|&i| salient_terms(&texts[i]).iter().any(|w| early.contains(w.as_str()) && !texts[i - 20..i].iter().any(|x| x.contains(w.as_str()))))
            .count();
        assert!(far >= 5, "{far} late assistant turns recall early identifiers");
    }
}
