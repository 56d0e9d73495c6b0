//! Tuning a policy: coordinate ascent over a grid of knob values on part of the transcripts (the
//! training share), checked on the rest (held out), giving a policy file to ship.
//!
//! Two ways to hold out: a seeded share of each dataset (`holdout`), or k-fold cross-validation by
//! session (`folds`): each dataset's transcripts are dealt by a seeded shuffle into k folds, and for
//! each fold the search runs on the other folds of every dataset at once and is scored on that
//! fold. With folds, the policy shipped is the search's result on every transcript; the folds say
//! how well such a search generalizes (train vs held-out, per fold).
//!
//! The objective is the headline recall — evidence recall for QA transcripts, long-range recall for
//! sessions replayed in hindsight — averaged over the budgets and then over the datasets. A cost
//! constraint (`max_cost_ratio`) compares each dataset's cost per window at each budget with the
//! `recency` preset's on the same transcripts: every 1% above `ratio × recency` costs 0.1 of
//! objective, so a policy within the constraint beats any policy outside it by recall alone.
//! Each step tries every value of one knob with the others held, in one replay (a transcript is
//! pushed once for all candidates), and keeps the best; a tie keeps the current value. Rounds
//! repeat until one changes nothing or `rounds` is reached. Scores are deterministic (replays
//! are), so the search is too.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::policy::{Policy, Preset};
use crate::replay::probes::Partial;
use crate::replay::report::mean;
use crate::replay::synth::Rng;
use crate::replay::{CompareConfig, Transcript, dataset_name, evaluate, loaders};

/// Objective penalty per unit of relative cost above the constraint (0.1 per 1%).
const COST_PENALTY: f64 = 10.0;

/// What to tune: the replay to run (datasets, the starting policy as its only policy, budgets,
/// format, encoding, embeddings) and the knobs with their candidate values.
#[derive(Debug, Clone)]
pub struct TuneConfig {
    replay: CompareConfig,
    params: Vec<(String, Vec<String>)>,
    holdout: f64,
    seed: u64,
    rounds: usize,
    folds: usize,
    max_cost: Vec<(Option<String>, f64)>,
}

impl TuneConfig {
    /// Tunes `params` (dotted knob names, each with its candidate values as TOML/JSON literals) of
    /// the one policy of `replay`. Defaults: 30% held out, seed 1, 2 rounds, no folds, no cost
    /// constraint.
    pub fn new(replay: CompareConfig, params: Vec<(String, Vec<String>)>) -> Self {
        TuneConfig { replay, params, holdout: 0.3, seed: 1, rounds: 2, folds: 0, max_cost: Vec::new() }
    }
    /// Share of each dataset's transcripts held out (0 to check nothing; below 1).
    pub fn holdout(mut self, share: f64) -> Self {
        self.holdout = share;
        self
    }
    /// Seed of the train / held-out split (and of the folds).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Most rounds of coordinate ascent.
    pub fn rounds(mut self, n: usize) -> Self {
        self.rounds = n;
        self
    }
    /// k-fold cross-validation by session (k ≥ 2; 0 uses the `holdout` split instead).
    pub fn folds(mut self, k: usize) -> Self {
        self.folds = k;
        self
    }
    /// The cost constraint: cost per window ≤ `ratio` × the `recency` preset's, at every budget, on
    /// `dataset` (a dataset's folder or file name) or, with `None`, on every dataset without a
    /// ratio of its own.
    pub fn max_cost_ratio(mut self, dataset: Option<String>, ratio: f64) -> Self {
        self.max_cost.retain(|(d, _)| *d != dataset);
        self.max_cost.push((dataset, ratio));
        self
    }
    fn ratio_for(&self, dataset: &str) -> Option<f64> {
        let own = self.max_cost.iter().find(|(d, _)| d.as_deref() == Some(dataset));
        own.or_else(|| self.max_cost.iter().find(|(d, _)| d.is_none())).map(|(_, r)| *r)
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

/// A policy measured on some transcripts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// The objective: recall less the cost penalty.
    pub objective: f64,
    /// The headline recall (mean over budgets, then datasets).
    pub recall: f64,
    /// The highest ratio of its cost per window to `recency`'s over datasets and budgets (None
    /// without a cost constraint).
    pub worst_cost_ratio: Option<f64>,
}

/// One fold of a cross-validation: the search on the other folds, scored on this one.
#[derive(Debug, Clone, PartialEq)]
pub struct Fold {
    /// Fold index (0-based).
    pub fold: usize,
    /// Transcripts trained on and held out.
    pub transcripts: (usize, usize),
    /// The value chosen for each knob on the training folds.
    pub chosen: Vec<(String, String)>,
    /// The starting and the tuned policy on the training folds.
    pub train: (Measured, Measured),
    /// The starting and the tuned policy on this fold.
    pub held_out: (Measured, Measured),
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
    /// Held-out score of the starting policy and of the tuned one (None with nothing held out, and
    /// with folds: see `folds`).
    pub held_out: Option<(f64, f64)>,
    /// Transcripts used for training and held out.
    pub transcripts: (usize, usize),
    /// Cross-validation folds (empty without `folds`).
    pub folds: Vec<Fold>,
    /// Wall-clock seconds.
    pub wall_s: f64,
}

/// Indices of `n` transcripts held out for `share` and `seed`: a seeded shuffle's first
/// `round(n × share)`, at least one when `share > 0`, and never all of them.
pub(crate) fn held_out_indices(n: usize, share: f64, seed: u64) -> Vec<usize> {
    if share <= 0.0 || n < 2 {
        return Vec::new();
    }
    let k = ((n as f64 * share).round() as usize).clamp(1, n - 1);
    let mut held: Vec<usize> = shuffled(n, seed).into_iter().take(k).collect();
    held.sort_unstable();
    held
}

/// `0..n` in a seeded order.
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (Rng::mix(seed ^ Rng::mix(i as u64)), i));
    order
}

/// The fold of each of `n` transcripts: dealt round-robin in a seeded order, so fold sizes differ
/// by at most one and every fold gets a share of every dataset that has k transcripts.
pub(crate) fn fold_of(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut out = vec![0; n];
    for (pos, i) in shuffled(n, seed).into_iter().enumerate() {
        out[i] = pos % k.max(1);
    }
    out
}

/// The headline recall of one merged result (None when it measured nothing).
fn headline(p: &Partial) -> Option<f64> {
    mean(p.recall_sum, p.recall_n).or_else(|| mean(p.long_sum, p.long_n)).or_else(|| mean(p.ref_sum, p.ref_n))
}

/// Some transcripts of each dataset (named), with the recency preset's cost per window at each
/// budget on them when a cost constraint applies.
struct Part<'a> {
    sets: Vec<(String, Vec<&'a Transcript>)>,
    recency_cost: Vec<Vec<Option<f64>>>,
}

impl<'a> Part<'a> {
    fn new(sets: Vec<(String, Vec<&'a Transcript>)>, cfg: &TuneConfig) -> Result<Part<'a>> {
        let mut recency_cost = Vec::new();
        let recency = [("recency".to_string(), Policy::from_preset(Preset::Recency))];
        for (name, transcripts) in &sets {
            let costs = match cfg.ratio_for(name) {
                Some(_) if !transcripts.is_empty() => evaluate(transcripts, &recency, &cfg.replay)?.iter().map(|p| mean(p.cost_sum, p.cost_n)).collect(),
                _ => Vec::new(),
            };
            recency_cost.push(costs);
        }
        Ok(Part { sets, recency_cost })
    }

    fn len(&self) -> usize {
        self.sets.iter().map(|(_, t)| t.len()).sum()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each candidate measured on this part.
    fn measure(&self, candidates: &[(String, Policy)], cfg: &TuneConfig) -> Result<Vec<Measured>> {
        let nb = cfg.replay.budgets.len();
        let mut recall = vec![(0.0, 0usize); candidates.len()];
        let mut penalty = vec![0.0; candidates.len()];
        let mut worst: Vec<Option<f64>> = vec![None; candidates.len()];
        for ((name, transcripts), base) in self.sets.iter().zip(&self.recency_cost).filter(|((_, t), _)| !t.is_empty()) {
            let merged = evaluate(transcripts, candidates, &cfg.replay)?;
            for (c, chunk) in merged.chunks(nb).enumerate() {
                let values: Vec<f64> = chunk.iter().filter_map(headline).collect();
                if !values.is_empty() {
                    recall[c].0 += values.iter().sum::<f64>() / values.len() as f64;
                    recall[c].1 += 1;
                }
                let Some(ratio) = cfg.ratio_for(name) else { continue };
                for (p, b) in chunk.iter().zip(base) {
                    let (Some(cost), Some(b)) = (mean(p.cost_sum, p.cost_n), *b) else { continue };
                    if b <= 0.0 {
                        continue;
                    }
                    let r = cost / b;
                    worst[c] = Some(worst[c].map_or(r, |w: f64| w.max(r)));
                    penalty[c] += COST_PENALTY * (r / ratio - 1.0).max(0.0);
                }
            }
        }
        Ok(recall
            .iter()
            .zip(penalty)
            .zip(worst)
            .map(|(((sum, n), pen), worst_cost_ratio)| {
                let recall = if *n > 0 { sum / *n as f64 } else { 0.0 };
                Measured { objective: recall - pen, recall, worst_cost_ratio }
            })
            .collect())
    }
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
    if cfg.folds == 1 {
        return Err(invalid("--folds must be 0 (a held-out share instead) or at least 2".into()));
    }
    if let Some((_, r)) = cfg.max_cost.iter().find(|(_, r)| !(r.is_finite() && *r > 0.0)) {
        return Err(invalid(format!("a cost ratio must be a finite number > 0, got {r}")));
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

/// Every dataset's transcripts, by name.
fn load(cfg: &TuneConfig) -> Result<Vec<(String, Vec<Transcript>)>> {
    cfg.replay.datasets.iter().map(|path| Ok((dataset_name(path), loaders::load_path(path, cfg.replay.format)?))).collect()
}

/// Splits each dataset's transcripts by `held(dataset, index, count)` into (train, held out).
fn split_by<'a>(all: &'a [(String, Vec<Transcript>)], held: impl Fn(usize, usize, usize) -> bool) -> (Sets<'a>, Sets<'a>) {
    let (mut train, mut out) = (Vec::new(), Vec::new());
    for (d, (name, ts)) in all.iter().enumerate() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (i, t) in ts.iter().enumerate() {
            if held(d, i, ts.len()) { b.push(t) } else { a.push(t) }
        }
        train.push((name.clone(), a));
        out.push((name.clone(), b));
    }
    (train, out)
}

type Sets<'a> = Vec<(String, Vec<&'a Transcript>)>;

/// The result of one coordinate ascent.
struct Ascent {
    policy: Policy,
    chosen: Vec<(String, String)>,
    steps: Vec<Step>,
    base: Measured,
    best: Measured,
}

/// Coordinate ascent from `start` on `part`.
fn ascend(part: &Part<'_>, start: &Policy, cfg: &TuneConfig) -> Result<Ascent> {
    let base = part.measure(&[("base".into(), start.clone())], cfg)?[0];
    let (mut current, mut best) = (start.clone(), base);
    let mut chosen: Vec<(String, String)> = Vec::new();
    let mut steps = Vec::new();
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
            let scores = part.measure(&candidates, cfg)?;
            // The best candidate; a tie keeps the current policy, or the first value tried.
            let mut pick = candidates.iter().position(|(_, p)| *p == current);
            let mut pick_score = pick.map_or(f64::NEG_INFINITY, |i| scores[i].objective);
            for (i, s) in scores.iter().enumerate() {
                if s.objective > pick_score + 1e-12 {
                    pick = Some(i);
                    pick_score = s.objective;
                }
            }
            let i = pick.unwrap_or(0);
            changed |= candidates[i].1 != current;
            current = candidates[i].1.clone();
            best = scores[i];
            chosen.retain(|(k, _)| k != key);
            chosen.push((key.clone(), values[i].clone()));
            let tried = values.iter().cloned().zip(scores.iter().map(|s| s.objective)).collect();
            steps.push(Step { round, param: key.clone(), scores: tried, kept: values[i].clone() });
        }
        if !changed {
            break;
        }
    }
    Ok(Ascent { policy: current, chosen, steps, base, best })
}

/// Tunes the policy (see the module docs).
pub fn tune(cfg: &TuneConfig) -> Result<TuneReport> {
    let start = Instant::now();
    let start_policy = validate(cfg)?;
    let all = load(cfg)?;
    let mut folds = Vec::new();
    if cfg.folds >= 2 {
        let assign: Vec<Vec<usize>> = all.iter().map(|(_, ts)| fold_of(ts.len(), cfg.folds, cfg.seed)).collect();
        for f in 0..cfg.folds {
            let (train, held) = split_by(&all, |d, i, _| assign[d][i] == f);
            let (train, held) = (Part::new(train, cfg)?, Part::new(held, cfg)?);
            if held.is_empty() || train.is_empty() {
                continue;
            }
            let a = ascend(&train, start_policy, cfg)?;
            let h = held.measure(&[("base".into(), start_policy.clone()), ("tuned".into(), a.policy.clone())], cfg)?;
            folds.push(Fold { fold: f, transcripts: (train.len(), held.len()), chosen: a.chosen, train: (a.base, a.best), held_out: (h[0], h[1]) });
        }
        let (every, _) = split_by(&all, |_, _, _| false);
        let every = Part::new(every, cfg)?;
        let a = ascend(&every, start_policy, cfg)?;
        let n = every.len();
        return Ok(report(a, None, (n, 0), folds, start));
    }
    let (train, held) = split_by(&all, |_, i, n| held_out_indices(n, cfg.holdout, cfg.seed).contains(&i));
    let (train, held) = (Part::new(train, cfg)?, Part::new(held, cfg)?);
    let a = ascend(&train, start_policy, cfg)?;
    let held_out = if held.is_empty() {
        None
    } else {
        let s = held.measure(&[("base".into(), start_policy.clone()), ("tuned".into(), a.policy.clone())], cfg)?;
        Some((s[0].objective, s[1].objective))
    };
    Ok(report(a, held_out, (train.len(), held.len()), folds, start))
}

fn report(a: Ascent, held_out: Option<(f64, f64)>, transcripts: (usize, usize), folds: Vec<Fold>, start: Instant) -> TuneReport {
    TuneReport {
        policy: a.policy,
        chosen: a.chosen,
        steps: a.steps,
        train: (a.base.objective, a.best.objective),
        held_out,
        transcripts,
        folds,
        wall_s: start.elapsed().as_secs_f64(),
    }
}

fn measured(m: &Measured) -> String {
    match m.worst_cost_ratio {
        Some(r) => format!("{:.4} (recall {:.4}, cost ≤ {r:.2}× recency)", m.objective, m.recall),
        None => format!("{:.4}", m.objective),
    }
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
            None if self.folds.is_empty() => out.push_str("held out: none\n"),
            None => {}
        }
        for f in &self.folds {
            let chosen: Vec<String> = f.chosen.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!(
                "fold {} ({} train / {} held out): chosen {}\n  train    {} -> {}\n  held out {} -> {}\n",
                f.fold,
                f.transcripts.0,
                f.transcripts.1,
                chosen.join(" "),
                measured(&f.train.0),
                measured(&f.train.1),
                measured(&f.held_out.0),
                measured(&f.held_out.1)
            ));
        }
        if !self.folds.is_empty() {
            let n = self.folds.len() as f64;
            let avg = |g: &dyn Fn(&Fold) -> f64| self.folds.iter().map(g).sum::<f64>() / n;
            out.push_str(&format!(
                "folds mean: train {:.4} -> {:.4}, held out {:.4} -> {:.4}\n",
                avg(&|f| f.train.0.objective),
                avg(&|f| f.train.1.objective),
                avg(&|f| f.held_out.0.objective),
                avg(&|f| f.held_out.1.objective)
            ));
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
    fn folds_are_seeded_balanced_and_cover_every_transcript() {
        let f = fold_of(11, 5, 3);
        assert_eq!(f, fold_of(11, 5, 3));
        let mut sizes = [0usize; 5];
        for &x in &f {
            sizes[x] += 1;
        }
        assert_eq!(sizes.iter().sum::<usize>(), 11);
        assert!(sizes.iter().all(|&s| s == 2 || s == 3), "{sizes:?}");
        assert_ne!(fold_of(11, 5, 3), fold_of(11, 5, 4));
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
        let e = tune(&TuneConfig::new(one(), knob("context_boost", "0.2")).folds(1)).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("--folds"), "{e}");
        let e = tune(&TuneConfig::new(one(), knob("context_boost", "0.2")).max_cost_ratio(None, 0.0)).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("cost ratio"), "{e}");
        let two = replay(vec![("a".into(), Policy::default()), ("b".into(), Policy::default())]);
        let e = tune(&TuneConfig::new(two, knob("context_boost", "0.2"))).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("one policy"), "{e}");
    }
}
