//! What the agent's tools return: directory listings, files, test logs with failures and
//! backtraces, grep hits, edits, clippy warnings and diffs, each pushed as a call and its result.

use std::collections::HashMap;

use serde_json::json;

use super::agent::AgentGen;
use super::krate::Failure;
use super::words::{BACKTRACE, CLIPPY};

impl AgentGen {
    pub(super) fn ls(&mut self) {
        let mut out = String::from(".\n./Cargo.toml\n./Cargo.lock\n./README.md\n./benches\n./benches/throughput.rs\n./src\n./src/lib.rs\n");
        let mut paths: Vec<String> = self.modules.iter().map(|m| format!("./{}", m.path)).collect();
        paths.sort();
        for p in paths {
            out.push_str(&p);
            out.push('\n');
        }
        out.push_str("./tests\n./tests/integration.rs\n");
        let text = if self.calls == 0 { Some("Let me look at the layout of the repository first.".to_string()) } else { None };
        self.call(text, "bash", json!({"command": "find . -path ./target -prune -o -print | sort"}), out);
        for i in 0..self.modules.len() {
            let p = self.modules[i].path.clone();
            self.see(p);
        }
    }

    pub(super) fn cargo_toml(&mut self) {
        let v = format!("0.{}.{}", self.rng.range(1, 9), self.rng.range(0, 12));
        let out = format!(
            "[package]\nname = \"{k}\"\nversion = \"{v}\"\nedition = \"2021\"\n\n[dependencies]\ntracing = \"0.1\"\nserde = {{ version = \"1\", features = [\"derive\"] }}\nbytes = \"1\"\n\n[dev-dependencies]\nproptest = \"1\"\n",
            k = self.krate
        );
        self.call(None, "read_file", json!({"path": "Cargo.toml"}), out);
    }

    fn test_header(&mut self) -> String {
        format!(
            "   Compiling {k} v0.4.2 (/workspace/{k})\n    Finished `test` profile [unoptimized + debuginfo] target(s) in {}.{:02}s\n     Running unittests src/lib.rs (target/debug/deps/{k}-{:016x})\n",
            self.rng.range(3, 40),
            self.rng.below(100),
            self.rng.next_u64(),
            k = self.krate
        )
    }

    fn test_log(&mut self, modules: &[usize]) -> String {
        let mut out = self.test_header();
        let mut names: Vec<(usize, String)> = Vec::new();
        for &mi in modules {
            for t in &self.modules[mi].tests {
                names.push((mi, t.clone()));
            }
        }
        out.push_str(&format!("\nrunning {} tests\n", names.len()));
        let failing: Vec<Failure> = self.failing.iter().filter(|f| modules.contains(&f.module)).cloned().collect();
        for (mi, t) in &names {
            let bad = failing.iter().any(|f| f.module == *mi && f.test == *t);
            out.push_str(&format!("test {}::tests::{t} ... {}\n", self.modules[*mi].name, if bad { "FAILED" } else { "ok" }));
        }
        let backtrace = self.rng.chance(0.3);
        if !failing.is_empty() {
            out.push_str("\nfailures:\n");
            for f in &failing {
                let m = &self.modules[f.module];
                let line = m.line_of(&format!("fn {}()", f.test)) + 3;
                let actual = self.const_value(f.module, &f.constant);
                out.push_str(&format!(
                    "\n---- {n}::tests::{t} stdout ----\n\nthread '{n}::tests::{t}' panicked at {p}:{line}:9:\nassertion `left == right` failed\n  left: Err(Overflow)\n right: Ok({actual})\n",
                    n = m.name,
                    t = f.test,
                    p = m.path
                ));
                if backtrace {
                    out.push_str("stack backtrace:\n");
                    for (k, frame) in BACKTRACE.iter().enumerate() {
                        out.push_str(&format!("  {k:>2}: {frame}\n"));
                    }
                    let fname = m.fns.iter().find(|x| f.test.starts_with(x.as_str())).cloned().unwrap_or_default();
                    out.push_str(&format!(
                        "  {:>2}: {k}::{n}::{s}::{fname}\n             at ./{p}:{l}:13\n  {:>2}: {k}::{n}::tests::{t}\n             at ./{p}:{line}:9\n",
                        BACKTRACE.len(),
                        BACKTRACE.len() + 1,
                        k = self.krate,
                        n = m.name,
                        s = m.structs[0],
                        p = m.path,
                        l = m.line_of(&format!("fn {fname}(")) + 1,
                        t = f.test
                    ));
                } else {
                    out.push_str("note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n");
                }
            }
            out.push_str("\n\nfailures:\n");
            for f in &failing {
                out.push_str(&format!("    {}::tests::{}\n", self.modules[f.module].name, f.test));
            }
        }
        let passed = names.len() - failing.len();
        let verdict = if failing.is_empty() { "ok" } else { "FAILED" };
        out.push_str(&format!(
            "\ntest result: {verdict}. {passed} passed; {} failed; 0 ignored; 0 measured; 0 filtered out; finished in {}.{:02}s\n",
            failing.len(),
            self.rng.below(3),
            self.rng.below(100)
        ));
        if !failing.is_empty() {
            out.push_str("\nerror: test failed, to rerun pass `--lib`\n[exit status: 101]\n");
        }
        out
    }

    pub(super) fn test_all(&mut self) {
        let all: Vec<usize> = (0..self.modules.len()).collect();
        let backtrace = if self.rng.chance(0.3) { "RUST_BACKTRACE=1 " } else { "" };
        let out = self.test_log(&all);
        let tests: Vec<String> = self.failing.iter().map(|f| f.test.clone()).collect();
        for t in tests {
            self.see(t);
        }
        self.call(Some("Running the whole test suite.".into()), "bash", json!({"command": format!("{backtrace}cargo test 2>&1")}), out);
    }

    pub(super) fn test_module(&mut self) {
        let mi = match self.failing.first() {
            Some(f) if self.rng.chance(0.6) => f.module,
            _ => self.rng.below(self.modules.len()),
        };
        let out = self.test_log(&[mi]);
        let name = self.modules[mi].name.clone();
        self.call(None, "bash", json!({"command": format!("cargo test {name}::tests 2>&1")}), out);
    }

    pub(super) fn read_file(&mut self, range: bool) {
        let mi = match self.failing.first() {
            Some(f) if self.rng.chance(0.4) => f.module,
            _ => self.rng.below(self.modules.len()),
        };
        let m = self.modules[mi].clone();
        if range {
            let start = self.rng.range(1, m.lines.len().saturating_sub(20).max(1));
            let end = (start + self.rng.range(15, 60)).min(m.lines.len());
            let mut out = String::new();
            for (k, l) in m.lines.iter().enumerate().take(end).skip(start - 1) {
                out.push_str(&format!("{:>5}\t{l}\n", k + 1));
            }
            let f = self.old_ref();
            let text = format!("Checking how `{}` handles this; I saw `{f}` earlier.", m.path);
            self.call(Some(text), "read_file", json!({"path": m.path, "start_line": start, "end_line": end}), out);
        } else {
            self.call(None, "read_file", json!({"path": m.path}), m.content());
        }
        self.see_module(mi);
    }

    pub(super) fn grep(&mut self) {
        let pattern = match self.rng.below(3) {
            0 => {
                let m = &self.modules[self.rng.below(self.modules.len())];
                m.fns[self.rng.below(m.fns.len())].clone()
            }
            _ => self.old_ref(),
        };
        let pattern = pattern.rsplit('/').next().unwrap_or(&pattern).trim_end_matches(".rs").to_string();
        let mut out = String::new();
        let mut hits = 0;
        for m in &self.modules {
            for (k, l) in m.lines.iter().enumerate() {
                if l.contains(&pattern) && hits < 40 {
                    out.push_str(&format!("{}:{}:{l}\n", m.path, k + 1));
                    hits += 1;
                }
            }
        }
        if hits == 0 {
            out.push_str("[no matches]\n");
        }
        self.call(None, "grep", json!({"pattern": pattern, "path": "src"}), out);
    }

    pub(super) fn edit(&mut self) {
        // Fix the first failure when its module was read; otherwise tighten a guard somewhere.
        let fix = self.failing.first().cloned().filter(|f| self.seen_set.contains(&f.constant));
        match fix {
            Some(f) => {
                let (old, new) = self.set_const(f.module, &f.constant, f.expected);
                let path = self.modules[f.module].path.clone();
                let line = self.modules[f.module].line_of(&new);
                self.failing.retain(|x| x.test != f.test);
                let text = format!("`{}` expects `{}` to be {}; the release bumped it. Restoring the value in `{path}`.", f.test, f.constant, f.expected);
                self.edits.push((path.clone(), old.clone(), new.clone()));
                self.call(
                    Some(text),
                    "edit_file",
                    json!({"path": path, "old": old, "new": new}),
                    format!("Edited {path}: replaced 1 occurrence at line {line}."),
                );
            }
            None => {
                let mi = self.rng.below(self.modules.len());
                let m = &self.modules[mi];
                let candidates: Vec<usize> = m.lines.iter().enumerate().filter(|(_, l)| l.contains("saturating_sub(")).map(|(k, _)| k).collect();
                let Some(&k) = candidates.get(self.rng.below(candidates.len().max(1))) else {
                    let path = m.path.clone();
                    self.call(
                        None,
                        "edit_file",
                        json!({"path": path, "old": "wrapping_add(", "new": "saturating_add("}),
                        format!("Error: `wrapping_add(` occurs more than once in {path}; give more context."),
                    );
                    return;
                };
                let old = m.lines[k].clone();
                let new = old.replace("saturating_sub(", "saturating_sub(1 + ");
                let path = m.path.clone();
                self.modules[mi].lines[k] = new.clone();
                self.edits.push((path.clone(), old.clone(), new.clone()));
                self.call(
                    Some("Tightening this bound while I'm here.".into()),
                    "edit_file",
                    json!({"path": path, "old": old.trim(), "new": new.trim()}),
                    format!("Edited {path}: replaced 1 occurrence at line {}.", k + 1),
                );
            }
        }
    }

    pub(super) fn clippy(&mut self) {
        let mut out = format!("    Checking {k} v0.4.2 (/workspace/{k})\n", k = self.krate);
        let n = self.rng.range(1, 6);
        for _ in 0..n {
            let m = &self.modules[self.rng.below(self.modules.len())];
            let k = self.rng.below(m.lines.len());
            let (lint, msg) = CLIPPY[self.rng.below(CLIPPY.len())];
            out.push_str(&format!(
                "warning: {msg}\n   --> {}:{}:9\n    |\n{:>3} | {}\n    |\n    = help: for further information visit https://rust-lang.github.io/rust-clippy/master/index.html#{lint}\n\n",
                m.path,
                k + 1,
                k + 1,
                m.lines[k]
            ));
        }
        out.push_str(&format!(
            "warning: `{}` (lib) generated {n} warnings\n    Finished `dev` profile [unoptimized + debuginfo] target(s) in 2.31s\n",
            self.krate
        ));
        self.call(None, "bash", json!({"command": "cargo clippy --all-targets 2>&1"}), out);
    }

    pub(super) fn diff(&mut self) {
        let mut out = String::new();
        let mut by_path: HashMap<&str, Vec<(&str, &str)>> = HashMap::new();
        for (p, o, n) in &self.edits {
            by_path.entry(p.as_str()).or_default().push((o.as_str(), n.as_str()));
        }
        let mut paths: Vec<&&str> = by_path.keys().collect();
        paths.sort();
        for p in paths {
            out.push_str(&format!("diff --git a/{p} b/{p}\n--- a/{p}\n+++ b/{p}\n"));
            for (o, n) in &by_path[*p] {
                out.push_str(&format!("@@ -1 +1 @@\n-{o}\n+{n}\n"));
            }
        }
        if out.is_empty() {
            out.push_str("[no changes]\n");
        }
        self.call(None, "bash", json!({"command": "git diff"}), out);
    }
}
