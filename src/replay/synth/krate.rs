//! The generated Rust crate an agent session works on: modules with constants, structs, functions
//! and tests, and the failures planted in them (a constant with a wrong value).

use super::agent::AgentGen;
use super::rng::Rng;
use super::words::{CONST_DOCS, ERR_VARIANTS, FN_DOCS, MEN, MODULE_DOCS, NOUNS, STRUCT_DOCS, TEST_CASES, VERBS};

/// One generated source file.
#[derive(Debug, Clone)]
pub(super) struct Module {
    pub(super) name: String,
    pub(super) path: String,
    pub(super) lines: Vec<String>,
    pub(super) structs: Vec<String>,
    pub(super) fns: Vec<String>,
    /// (name, value)
    pub(super) consts: Vec<(String, u64)>,
    pub(super) tests: Vec<String>,
}

impl Module {
    /// The file's text (a final newline).
    pub(super) fn content(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }
    /// 1-based line of the first line containing `needle` (1 when absent).
    pub(super) fn line_of(&self, needle: &str) -> usize {
        self.lines.iter().position(|l| l.contains(needle)).map_or(1, |i| i + 1)
    }
}

/// A failing test and the constant whose value breaks it.
#[derive(Debug, Clone)]
pub(super) struct Failure {
    pub(super) module: usize,
    pub(super) test: String,
    pub(super) constant: String,
    pub(super) expected: u64,
}

/// What a module declares, drawn before its source is written.
struct Parts {
    base: String,
    err: String,
    structs: Vec<String>,
    consts: Vec<(String, u64)>,
    fns: Vec<String>,
    fields: Vec<String>,
    dep: String,
}

/// What the log lines of a module's functions name.
struct Logs<'a> {
    krate: &'a str,
    env_var: &'a str,
    name: &'a str,
    /// Whether the first function reads the environment variable (the first module's does).
    opens_root: bool,
}

fn camel(s: &str) -> String {
    s.split('_')
        .map(|p| {
            let mut c = p.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

/// Structs, constants, functions and fields of module `name`, and the module it uses.
fn parts(rng: &mut Rng, name: &str, all: &[&str]) -> Parts {
    let base = camel(name);
    let mut structs = vec![base.clone()];
    for suffix in ["Config", "Handle", "State", "Entry"] {
        if rng.chance(0.4) {
            structs.push(format!("{base}{suffix}"));
        }
    }
    let err = format!("{base}Error");
    let mut consts: Vec<(String, u64)> = Vec::new();
    let want_consts = rng.range(2, 4);
    while consts.len() < want_consts {
        let noun = rng.pick(NOUNS).to_uppercase();
        let c = match rng.below(4) {
            0 => format!("MAX_{noun}_SIZE"),
            1 => format!("DEFAULT_{noun}_TIMEOUT_MS"),
            2 => format!("{noun}_TTL_SECS"),
            _ => format!("MIN_{noun}_COUNT"),
        };
        if !consts.iter().any(|(n, _)| *n == c) {
            consts.push((c, rng.range(100, 65_535) as u64));
        }
    }
    let mut fns: Vec<String> = Vec::new();
    let want = rng.range(4, 8);
    while fns.len() < want {
        let f = format!("{}_{}", rng.pick(VERBS), rng.pick(NOUNS));
        if !fns.contains(&f) {
            fns.push(f);
        }
    }
    let fields: Vec<String> =
        (0..rng.range(3, 6)).map(|k| format!("{}_{}", rng.pick(NOUNS), ["count", "limit", "len", "id", "epoch", "budget"][k % 6])).collect();
    let others: Vec<&str> = all.iter().copied().filter(|o| *o != name).collect();
    let dep = rng.pick(&others).to_string();
    Parts { base, err, structs, consts, fns, fields, dep }
}

/// The module's doc, imports, constants, error enum and structs.
fn header(rng: &mut Rng, name: &str, p: &Parts) -> Vec<String> {
    let mut l: Vec<String> = Vec::new();
    l.push(format!("//! The {name} subsystem: {}.", rng.pick(MODULE_DOCS)));
    l.push(String::new());
    l.push("use std::time::Duration;".into());
    l.push(String::new());
    l.push(format!("use crate::{}::{};", p.dep, camel(&p.dep)));
    l.push(String::new());
    for (c, v) in &p.consts {
        l.push(format!("/// {}", rng.pick(CONST_DOCS)));
        l.push(format!("pub const {c}: u64 = {v};"));
    }
    l.push(String::new());
    l.push(format!("/// Errors of the {name} subsystem."));
    l.push("#[derive(Debug, Clone, PartialEq, Eq)]".into());
    l.push(format!("pub enum {} {{", p.err));
    for (v, doc) in ERR_VARIANTS {
        l.push(format!("    /// {doc}"));
        l.push(format!("    {v},"));
    }
    l.push("}".into());
    for s in &p.structs {
        l.push(String::new());
        l.push(format!("/// {}", rng.pick(STRUCT_DOCS)));
        l.push("#[derive(Debug, Clone, Default)]".into());
        l.push(format!("pub struct {s} {{"));
        for f in &p.fields {
            l.push(format!("    pub(crate) {f}: u64,"));
        }
        l.push("}".into());
    }
    l
}

/// The `impl` of the module's main struct: each function a few statements over its fields.
fn impl_block(rng: &mut Rng, logs: &Logs<'_>, p: &Parts, l: &mut Vec<String>) {
    let (name, err, consts, fns) = (logs.name, &p.err, &p.consts, &p.fns);
    l.push(String::new());
    l.push(format!("impl {} {{", p.base));
    for (k, f) in fns.iter().enumerate() {
        if k > 0 {
            l.push(String::new());
        }
        l.push(format!("    /// {}", rng.pick(FN_DOCS)));
        l.push(format!("    pub fn {f}(&mut self, input: &[u8]) -> Result<u64, {err}> {{"));
        if k == 0 && logs.opens_root {
            l.push(format!("        let root = std::env::var(\"{}\").unwrap_or_else(|_| \"/var/lib/{}\".into());", logs.env_var, logs.krate));
            l.push(format!("        tracing::info!(target: \"{}::{name}\", %root, \"{f}\");", logs.krate));
        }
        for _ in 0..rng.range(3, 9) {
            let field = rng.pick(&p.fields.iter().map(String::as_str).collect::<Vec<_>>()).to_string();
            let (c, _) = &consts[rng.below(consts.len())];
            let other_fn = &fns[rng.below(fns.len())];
            let line = match rng.below(6) {
                0 => format!("        let {field} = self.{field}.saturating_sub({c});"),
                1 => format!("        if self.{field} > {c} {{ return Err({err}::Overflow); }}"),
                2 => format!("        self.{field} = self.{field}.wrapping_add(input.len() as u64);"),
                3 => format!("        let _ = self.{other_fn}(&input[..input.len().min({c} as usize)]);"),
                4 => format!("        tracing::debug!(target: \"{}::{name}\", {field} = self.{field}, \"{f}\");", logs.krate),
                _ => format!("        // TODO({}): revisit once #{} lands", rng.pick(MEN).to_lowercase(), rng.range(1000, 9999)),
            };
            l.push(line);
        }
        let (c, _) = &consts[rng.below(consts.len())];
        l.push(format!("        Ok({c}.min(input.len() as u64))"));
        l.push("    }".into());
    }
    l.push("}".into());
}

/// The module's unit tests (one to three per function); returns their names.
fn test_module(rng: &mut Rng, p: &Parts, l: &mut Vec<String>) -> Vec<String> {
    l.push(String::new());
    l.push("#[cfg(test)]".into());
    l.push("mod tests {".into());
    l.push("    use super::*;".into());
    let mut tests = Vec::new();
    for f in &p.fns {
        for _ in 0..rng.range(1, 4) {
            let t = format!("{f}_{}", rng.pick(TEST_CASES));
            if tests.contains(&t) {
                continue;
            }
            let (c, _) = &p.consts[rng.below(p.consts.len())];
            l.push(String::new());
            l.push("    #[test]".into());
            l.push(format!("    fn {t}() {{"));
            l.push(format!("        let mut s = {}::default();", p.base));
            l.push(format!("        let input = vec![0u8; {c} as usize + 1];"));
            l.push(format!("        assert_eq!(s.{f}(&input), Ok({c}));"));
            l.push("    }".into());
            tests.push(t);
        }
    }
    l.push("}".into());
    tests
}

impl AgentGen {
    /// One source file of the crate, named `name`, using a type of another module of `all`.
    pub(super) fn make_module(&mut self, name: &str, all: &[&str]) -> Module {
        let rng = &mut self.rng;
        let p = parts(rng, name, all);
        let mut l = header(rng, name, &p);
        let logs = Logs { krate: &self.krate, env_var: &self.env_var, name, opens_root: all.first() == Some(&name) };
        impl_block(rng, &logs, &p, &mut l);
        let tests = test_module(rng, &p, &mut l);
        let Parts { structs, fns, consts, .. } = p;
        Module { name: name.to_string(), path: format!("src/{name}.rs"), lines: l, structs, fns, consts, tests }
    }

    /// Makes one more test fail: a constant of its module gets a wrong value.
    pub(super) fn add_failure(&mut self) -> Option<Failure> {
        for _ in 0..16 {
            let mi = self.rng.below(self.modules.len());
            let m = &self.modules[mi];
            let test = m.tests[self.rng.below(m.tests.len())].clone();
            let (constant, value) = m.consts[self.rng.below(m.consts.len())].clone();
            if self.failing.iter().any(|f| f.test == test || f.constant == constant) {
                continue;
            }
            let f = Failure { module: mi, test, constant, expected: value };
            // Break the constant in the source: the test expects the old value.
            let wrong = value * 2 + 1;
            self.set_const(mi, &f.constant, wrong);
            self.failing.push(f.clone());
            return Some(f);
        }
        None
    }

    pub(super) fn const_value(&self, mi: usize, name: &str) -> u64 {
        self.modules[mi].consts.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v)
    }

    /// Sets a constant's value; returns the old and new source lines.
    pub(super) fn set_const(&mut self, mi: usize, name: &str, value: u64) -> (String, String) {
        let m = &mut self.modules[mi];
        let prefix = format!("pub const {name}: u64 = ");
        let new = format!("{prefix}{value};");
        let mut old = String::new();
        if let Some(line) = m.lines.iter_mut().find(|l| l.starts_with(&prefix)) {
            old = std::mem::replace(line, new.clone());
        }
        if let Some(c) = m.consts.iter_mut().find(|(n, _)| n == name) {
            c.1 = value;
        }
        (old, new)
    }
}
