//! Tuning a policy: coordinate ascent over a grid of knob values on part of the transcripts (the
//! training share), checked on the rest (held out), giving a policy file to ship.
//!
//! Each dataset's transcripts are split by a seeded shuffle, so every dataset is in both parts. The
//! objective is the headline recall — evidence recall for QA transcripts, long-range recall for
//! sessions replayed in hindsight — averaged over the budgets and then over the datasets. Each
//! step tries every value of one knob with the others held, in one replay (a transcript is pushed
//! once for all candidates), and keeps the best; a tie keeps the current value. Rounds repeat until
//! one changes nothing or `rounds` is reached. Scores are deterministic (replays are), so the
//! search is too.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::policy::Policy;
use crate::replay::probes::Partial;
use crate::replay::report::mean;
use crate::replay::synth::Rng;
use crate::replay::{CompareConfig, Transcript, evaluate, loaders};

/// What to tune: the replay to run (datasets, the starting policy as its only policy, budgets,
/// format, encoding, embeddings) and the knobs with their candidate values.
#[derive(Debug, Clone)]
pub struct TuneConfig {
    replay: CompareConfig,
    params: Vec<(String, Vec<String>)>,
    holdout: f64,
    seed: u64,
    rounds: usize,
}

impl TuneConfig {
    /// Tunes `params` (dotted knob names, each with its candidate values as TOML/JSON literals) of
    /// the one policy of `replay`. Defaults: 30% held out, seed 1, 2 rounds.
    pub fn new(replay: CompareConfig, params: Vec<(String, Vec<String>)>) -> Self {
        TuneConfig { replay, params, holdout: 0.3, seed: 1, rounds: 2 }
    }
    /// Share of each dataset's transcripts held out (0 to check nothing; below 1).
    pub fn holdout(mut self, share: f64) -> Self {
        self.holdout = share;
        self
    }
    /// Seed of the train / held-out split.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Most rounds of coordinate ascent.
    pub fn rounds(mut self, n: usize) -> Self {
        self.rounds = n;
        self
    }
}

/// One step of the search: the knob tried, each value's training score, and the value kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Round (0-based).
    pub round: usize,
    /// The knob.
    pub param: String,
    /// Each candidate value and its training score.
    pub scores: Vec<(String, f64)>,
    /// The value kept.
    pub kept: String,
}

/// What tuning found.
#[derive(Debug, Clone)]
pub struct TuneReport {
    /// The tuned policy.
    pub policy: Policy,
    /// The value chosen for each knob.
    pub chosen: Vec<(String, String)>,
    /// Every step, in order.
    pub steps: Vec<Step>,
    /// Training score of the starting policy and of the tuned one.
    pub train: (f64, f64),
    /// Held-out score of the starting policy and of the tuned one (None with nothing held out).
    pub held_out: Option<(f64, f64)>,
    /// Transcripts used for training and held out.
    pub transcripts: (usize, usize),
    /// Wall-clock seconds.
    pub wall_s: f64,
}

/// A dataset's transcripts, split.
struct Split {
    train: Vec<Transcript>,
    held: Vec<Transcript>,
}

/// Indices of `n` transcripts held out for `share` and `seed`: a seeded shuffle's first
/// `round(n × share)`, at least one when `share > 0`, and never all of them.
pub(crate) fn held_out_indices(n: usize, share: f64, seed: u64) -> Vec<usize> {
    if share <= 0.0 || n < 2 {
        return Vec::new();
    }
    let k = ((n as f64 * share).round() as usize).clamp(1, n - 1);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (Rng::mix(seed ^ Rng::mix(i as u64)), i));
    let mut held: Vec<usize> = order.into_iter().take(k).collect();
    held.sort_unstable();
    held
}

/// The headline recall of one merged result (None when it measured nothing).
fn headline(p: &Partial) -> Option<f64> {
    mean(p.recall_sum, p.recall_n).or_else(|| mean(p.long_sum, p.long_n)).or_else(|| mean(p.ref_sum, p.ref_n))
}

/// Scores of `candidates` on one part: per candidate, the headline averaged over budgets, then
/// over the datasets that measured something.
fn score(parts: &[Vec<&Transcript>], candidates: &[(String, Policy)], cfg: &TuneConfig) -> Result<Vec<f64>> {
    let r = &cfg.replay;
    let nb = r.budgets.len();
    let mut sums = vec![0.0; candidates.len()];
    let mut counts = vec![0usize; candidates.len()];
    for transcripts in parts.iter().filter(|t| !t.is_empty()) {
        let merged = evaluate(transcripts, candidates, &r.budgets, r.encoding, r.embeddings.as_ref(), None)?;
        for (c, chunk) in merged.chunks(nb).enumerate() {
            let values: Vec<f64> = chunk.iter().filter_map(headline).collect();
            if !values.is_empty() {
                sums[c] += values.iter().sum::<f64>() / values.len() as f64;
                counts[c] += 1;
            }
        }
    }
    Ok(sums.iter().zip(&counts).map(|(s, &n)| if n > 0 { s / n as f64 } else { 0.0 }).collect())
}

fn invalid(message: String) -> Error {
    Error::Policy { source_name: None, message }
}

/// The starting policy, once every setting of the search is checked (every candidate value too),
/// before anything runs.
fn validate(cfg: &TuneConfig) -> Result<&Policy> {
    let r = &cfg.replay;
    if cfg.params.is_empty() || r.budgets.is_empty() || r.datasets.is_empty() {
        return Err(invalid("tune needs at least one dataset, budget and --param".into()));
    }
    let [(_, start_policy)] = r.policies.as_slice() else {
        return Err(invalid(format!("tune starts from one policy, not {}", r.policies.len())));
    };
    if !(0.0..1.0).contains(&cfg.holdout) {
        return Err(invalid(format!("the held-out share must be within 0..1, got {}", cfg.holdout)));
    }
    for (key, values) in &cfg.params {
        if values.is_empty() {
            return Err(invalid(format!("--param {key}: no values to try")));
        }
        for v in values {
            start_policy.clone().set(key, v)?;
        }
    }
    Ok(start_policy)
}

/// Each dataset's transcripts, split by the seeded held-out draw.
fn split(cfg: &TuneConfig) -> Result<Vec<Split>> {
    let r = &cfg.replay;
    let mut splits = Vec::new();
    for path in &r.datasets {
        let all = loaders::load_path(path, r.format)?;
        let held = held_out_indices(all.len(), cfg.holdout, cfg.seed);
        let (mut train, mut held_out) = (Vec::new(), Vec::new());
        for (i, t) in all.into_iter().enumerate() {
            if held.contains(&i) { held_out.push(t) } else { train.push(t) }
        }
        splits.push(Split { train, held: held_out });
    }
    Ok(splits)
}

/// Tunes the policy (see the module docs).
pub fn tune(cfg: &TuneConfig) -> Result<TuneReport> {
    let start = Instant::now();
    let start_policy = validate(cfg)?;
    let splits = split(cfg)?;
    let train: Vec<Vec<&Transcript>> = splits.iter().map(|s| s.train.iter().collect()).collect();
    let held: Vec<Vec<&Transcript>> = splits.iter().map(|s| s.held.iter().collect()).collect();

    let base = start_policy.clone();
    let mut current = base.clone();
    let mut chosen: Vec<(String, String)> = Vec::new();
    let mut steps = Vec::new();
    let base_train = score(&train, &[("base".into(), base.clone())], cfg)?[0];
    let mut best = base_train;
    for round in 0..cfg.rounds.max(1) {
        let mut changed = false;
        for (key, values) in &cfg.params {
            let candidates: Vec<(String, Policy)> = values
                .iter()
                .map(|v| {
                    let mut p = current.clone();
                    p.set(key, v).map(|()| (v.clone(), p))
                })
                .collect::<Result<_>>()?;
            let scores = score(&train, &candidates, cfg)?;
            // The best candidate; a tie keeps the current policy, or the first value tried.
            let mut pick = candidates.iter().position(|(_, p)| *p == current);
            let mut pick_score = pick.map_or(f64::NEG_INFINITY, |i| scores[i]);
            for (i, &s) in scores.iter().enumerate() {
                if s > pick_score + 1e-12 {
                    pick = Some(i);
                    pick_score = s;
                }
            }
            let i = pick.unwrap_or(0);
            changed |= candidates[i].1 != current;
            current = candidates[i].1.clone();
            best = scores[i];
            chosen.retain(|(k, _)| k != key);
            chosen.push((key.clone(), values[i].clone()));
            steps.push(Step { round, param: key.clone(), scores: values.iter().cloned().zip(scores).collect(), kept: values[i].clone() });
        }
        if !changed {
            break;
        }
    }
    let held_out = if held.iter().all(Vec::is_empty) {
        None
    } else {
        let s = score(&held, &[("base".into(), base), ("tuned".into(), current.clone())], cfg)?;
        Some((s[0], s[1]))
    };
    Ok(TuneReport {
        policy: current,
        chosen,
        steps,
        train: (base_train, best),
        held_out,
        transcripts: (train.iter().map(Vec::len).sum(), held.iter().map(Vec::len).sum()),
        wall_s: start.elapsed().as_secs_f64(),
    })
}

impl TuneReport {
    /// The steps and the outcome, for a terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str("round  param                       value -> training score\n");
        for s in &self.steps {
            let tried: Vec<String> = s.scores.iter().map(|(v, x)| format!("{v}: {x:.4}")).collect();
            out.push_str(&format!("{:<6} {:<27} {}  (kept {})\n", s.round, s.param, tried.join("  "), s.kept));
        }
        out.push_str(&format!("training ({} transcripts): {:.4} -> {:.4}\n", self.transcripts.0, self.train.0, self.train.1));
        match self.held_out {
            Some((b, t)) => out.push_str(&format!("held out ({} transcripts): {b:.4} -> {t:.4}\n", self.transcripts.1)),
            None => out.push_str("held out: none\n"),
        }
        let chosen: Vec<String> = self.chosen.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!("chosen: {}\nwall {:.2} s\n", chosen.join(" "), self.wall_s));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_seeded_and_keeps_both_sides() {
        assert_eq!(held_out_indices(10, 0.3, 1), held_out_indices(10, 0.3, 1));
        assert_eq!(held_out_indices(10, 0.3, 1).len(), 3);
        assert_ne!(held_out_indices(10, 0.3, 1), held_out_indices(10, 0.3, 2));
        assert_eq!(held_out_indices(2, 0.9, 1).len(), 1, "never all held out");
        assert_eq!(held_out_indices(3, 0.01, 1).len(), 1, "at least one when asked");
        assert!(held_out_indices(1, 0.5, 1).is_empty());
        assert!(held_out_indices(10, 0.0, 1).is_empty());
        assert!(held_out_indices(10, 0.3, 7).iter().all(|&i| i < 10));
    }

    #[test]
    fn bad_knobs_and_values_are_refused_before_anything_runs() {
        let replay = |p: Vec<(String, Policy)>| {
            CompareConfig::new(vec![std::path::PathBuf::from("/nonexistent/ctxwin-tune")], p, vec![crate::replay::BudgetSpec::Tokens(1000)])
        };
        let one = || replay(vec![("ctxwin".into(), Policy::default())]);
        let knob = |k: &str, v: &str| vec![(k.to_string(), vec![v.to_string()])];
        let e = tune(&TuneConfig::new(one(), knob("weights.bm26", "1"))).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("bm26"), "{e}");
        let e = tune(&TuneConfig::new(one(), knob("context_boost", "2"))).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("context_boost"), "{e}");
        let e = tune(&TuneConfig::new(one(), knob("context_boost", "0.2")).holdout(1.0)).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("held-out"), "{e}");
        let two = replay(vec![("a".into(), Policy::default()), ("b".into(), Policy::default())]);
        let e = tune(&TuneConfig::new(two, knob("context_boost", "0.2"))).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("one policy"), "{e}");
    }
}
