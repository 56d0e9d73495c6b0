//! Reports: the `{"runs": [...]}` JSON (field names are a contract: scripts read them), CSV, and the
//! terminal table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::replay::metrics::Percentiles;
use crate::replay::probes::Partial;
use crate::replay::summaries::SummaryResult;
use crate::replay::transcript::LoadNotes;

/// Per-category QA results.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CategoryResult {
    /// Probes in the category.
    pub probes: usize,
    /// Mean evidence recall.
    pub evidence_recall: Option<f64>,
    /// Share of probes whose answer is present (probes with an answer only).
    pub answer_presence: Option<f64>,
}

/// One (dataset, policy, budget) run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RunResult {
    /// Dataset name (file or folder name).
    pub dataset: String,
    /// Policy name.
    pub policy: String,
    /// Budget: tokens, or `"10%"`.
    pub budget: Value,
    /// Probes measured (windows scored).
    pub probes: usize,
    /// QA: mean evidence recall over headline probes (LoCoMo categories 1–4).
    pub evidence_recall: Option<f64>,
    /// QA: share of headline probes whose normalized answer occurs in the window.
    pub answer_presence: Option<f64>,
    /// QA: per category.
    pub by_category: BTreeMap<String, CategoryResult>,
    /// Windows over budget (must be 0).
    pub budget_violations: usize,
    /// Tool calls separated from their results (must be 0).
    pub pair_violations: usize,
    /// Turns left out with no marker or summary standing in for them, over all windows (must be 0).
    pub silent_drops: usize,
    /// Probes refused with a typed "budget below pins" error (never an over-budget window).
    pub budget_errors: usize,
    /// Mean window tokens.
    pub tokens_mean: Option<f64>,
    /// Assemble latency, µs.
    pub assemble_us: Percentiles,
    /// Push latency, µs, every turn.
    pub push_us: Percentiles,
    /// Push latency, µs, of the turns up to 2,000 tokens (issue 9's push target is on these).
    pub push_short_us: Percentiles,
    /// Push latency, µs, of the turns over 2,000 tokens, when there are any, and how many.
    pub push_long_us: Option<Percentiles>,
    /// Turns over 2,000 tokens pushed.
    pub long_turns: usize,
    /// Time spent pushing and assembling for this run, seconds (runs share the wall clock).
    pub wall_s: f64,
    /// Hindsight: mean reference recall.
    pub reference_recall: Option<f64>,
    /// Hindsight: mean long-range recall.
    pub long_range_recall: Option<f64>,
    /// Gold tool-call arguments present at the call's turn (tau-bench).
    pub gold_args_recall: Option<f64>,
    /// Mean common prefix ÷ window tokens over consecutive windows.
    pub prefix_reuse: Option<f64>,
    /// Mean cost units per window (cached prefix 0.1×, the rest 1.25×).
    pub cost_units: Option<f64>,
    /// Transcripts replayed.
    pub transcripts: usize,
    /// Retrieval mode (`lexical` or `hybrid`).
    pub mode: String,
    /// Hybrid mode: time to embed a query, µs (not included in `assemble_us`).
    pub query_embed_us: Option<Percentiles>,
    /// Hybrid mode: embedding time per pushed turn, µs (in the background of `push`).
    pub embed_us_per_turn: Option<f64>,
    /// What the loaders repaired or counted in this dataset.
    pub load_notes: LoadNotes,
    /// What the windows' summaries carry (measured inside the summaries only).
    pub summaries: SummaryResult,
    /// Each transcript's own numbers (with `--per-session`; omitted from the JSON otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<SessionResult>,
}

/// One transcript's numbers within a run (`compare --per-session`): where a slow path or a costly
/// window hides, which the run's pooled numbers average away.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SessionResult {
    /// The transcript's id.
    pub id: String,
    /// Windows built.
    pub windows: usize,
    /// Assemble latency of its windows, µs.
    pub assemble_us: Percentiles,
    /// Mean cost units per window.
    pub cost_units: Option<f64>,
    /// Mean prefix reuse.
    pub prefix_reuse: Option<f64>,
    /// Mean long-range recall.
    pub long_range_recall: Option<f64>,
    /// Mean reference recall.
    pub reference_recall: Option<f64>,
    /// QA: mean evidence recall.
    pub evidence_recall: Option<f64>,
}

impl SessionResult {
    pub(crate) fn of(id: &str, p: &Partial) -> SessionResult {
        SessionResult {
            id: id.to_string(),
            windows: p.windows,
            assemble_us: Percentiles::of(&mut p.assemble_us.clone()),
            cost_units: mean(p.cost_sum, p.cost_n),
            prefix_reuse: mean(p.reuse_sum, p.reuse_n),
            long_range_recall: mean(p.long_sum, p.long_n),
            reference_recall: mean(p.ref_sum, p.ref_n),
            evidence_recall: mean(p.recall_sum, p.recall_n),
        }
    }
}

pub(crate) fn mean(sum: f64, n: usize) -> Option<f64> {
    (n > 0).then(|| sum / n as f64)
}

impl RunResult {
    pub(crate) fn from_partial(dataset: &str, policy: &str, budget: Value, mut p: Partial, transcripts: usize, mode: &str, notes: &LoadNotes) -> RunResult {
        let by_category = p
            .by_category
            .iter()
            .map(|(k, c)| {
                (k.clone(), CategoryResult { probes: c.probes, evidence_recall: mean(c.recall_sum, c.probes), answer_presence: mean(c.answer_sum, c.answer_n) })
            })
            .collect();
        let push_total: f64 = p.push_us.iter().chain(&p.push_long_us).sum::<f64>() / 1e6;
        let mut push_all: Vec<f64> = p.push_us.iter().chain(&p.push_long_us).copied().collect();
        RunResult {
            dataset: dataset.to_string(),
            policy: policy.to_string(),
            budget,
            probes: p.probes,
            evidence_recall: mean(p.recall_sum, p.recall_n),
            answer_presence: mean(p.answer_sum, p.answer_n),
            by_category,
            budget_violations: p.budget_violations,
            pair_violations: p.pair_violations,
            silent_drops: p.silent_drops,
            budget_errors: p.budget_errors,
            tokens_mean: mean(p.tokens_sum, p.windows),
            assemble_us: Percentiles::of(&mut p.assemble_us),
            push_us: Percentiles::of(&mut push_all),
            push_short_us: Percentiles::of(&mut p.push_us),
            push_long_us: (!p.push_long_us.is_empty()).then(|| Percentiles::of(&mut p.push_long_us)),
            long_turns: p.push_long_us.len(),
            wall_s: p.time_s + push_total,
            reference_recall: mean(p.ref_sum, p.ref_n),
            long_range_recall: mean(p.long_sum, p.long_n),
            gold_args_recall: mean(p.gold_sum, p.gold_n),
            prefix_reuse: mean(p.reuse_sum, p.reuse_n),
            cost_units: mean(p.cost_sum, p.cost_n),
            transcripts,
            mode: mode.to_string(),
            query_embed_us: (!p.query_embed_us.is_empty()).then(|| Percentiles::of(&mut p.query_embed_us)),
            embed_us_per_turn: (p.embedded_turns > 0).then(|| p.embed_s * 1e6 / p.embedded_turns as f64),
            load_notes: notes.clone(),
            summaries: std::mem::take(&mut p.summaries).result(),
            sessions: Vec::new(),
        }
    }
}

/// A whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    /// One entry per (dataset, policy, budget).
    pub runs: Vec<RunResult>,
    /// Wall-clock seconds of the whole comparison.
    pub wall_s: f64,
    /// Token encoding.
    pub encoding: String,
    /// `lexical`, or `hybrid (<model id>)`.
    pub mode: String,
}

fn f3(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.3}"))
}

fn budget_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl CompareReport {
    /// The terminal table: one row per run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let qa = self.runs.iter().any(|r| r.evidence_recall.is_some());
        let agent = self.runs.iter().any(|r| r.reference_recall.is_some());
        let _ = write!(out, "{:<22} {:<14} {:>7} {:>6}", "dataset", "policy", "budget", "probes");
        if qa {
            let _ = write!(out, " {:>8} {:>8}", "evid_rec", "answer");
        }
        if agent {
            let _ = write!(out, " {:>8} {:>8} {:>8} {:>7} {:>9}", "ref_rec", "long_rec", "gold_arg", "prefix", "cost/win");
        }
        let _ = writeln!(out, " {:>8} {:>5} {:>5} {:>6} {:>5} {:>8} {:>8} {:>8}", "tokens", "over", "split", "silent", "err", "asm_p50", "asm_p99", "push_p99");
        for r in &self.runs {
            let name: String = r.dataset.chars().take(22).collect();
            let _ = write!(out, "{:<22} {:<14} {:>7} {:>6}", name, r.policy, budget_str(&r.budget), r.probes);
            if qa {
                let _ = write!(out, " {:>8} {:>8}", f3(r.evidence_recall), f3(r.answer_presence));
            }
            if agent {
                let _ = write!(
                    out,
                    " {:>8} {:>8} {:>8} {:>7} {:>9}",
                    f3(r.reference_recall),
                    f3(r.long_range_recall),
                    f3(r.gold_args_recall),
                    f3(r.prefix_reuse),
                    r.cost_units.map_or_else(|| "-".into(), |x| format!("{x:.0}"))
                );
            }
            let _ = writeln!(
                out,
                " {:>8} {:>5} {:>5} {:>6} {:>5} {:>8.1} {:>8.1} {:>8.1}",
                r.tokens_mean.map_or_else(|| "-".into(), |x| format!("{x:.0}")),
                r.budget_violations,
                r.pair_violations,
                r.silent_drops,
                r.budget_errors,
                r.assemble_us.p50,
                r.assemble_us.p99,
                r.push_us.p99
            );
        }
        let _ = writeln!(out, "wall {:.2} s, {} runs, encoding {}, mode {}", self.wall_s, self.runs.len(), self.encoding, self.mode);
        self.slowest_sessions(&mut out);
        out
    }

    /// With per-session results: each run's sessions with the slowest median assemble (at most 3).
    fn slowest_sessions(&self, out: &mut String) {
        if self.runs.iter().all(|r| r.sessions.is_empty()) {
            return;
        }
        let _ = writeln!(out, "\nslowest sessions per run (assemble p50 / p99 µs, cost/win, long_rec):");
        for r in self.runs.iter().filter(|r| !r.sessions.is_empty()) {
            let mut s: Vec<&SessionResult> = r.sessions.iter().collect();
            s.sort_by(|a, b| b.assemble_us.p50.total_cmp(&a.assemble_us.p50).then(a.id.cmp(&b.id)));
            let top: Vec<String> = s
                .iter()
                .take(3)
                .map(|x| {
                    let cost = x.cost_units.map_or_else(|| "-".into(), |c| format!("{c:.0}"));
                    format!("{} {:.0}/{:.0} {} {}", x.id, x.assemble_us.p50, x.assemble_us.p99, cost, f3(x.long_range_recall))
                })
                .collect();
            let name: String = r.dataset.chars().take(22).collect();
            let _ = writeln!(out, "{:<22} {:<14} {:>7}  {}", name, r.policy, budget_str(&r.budget), top.join("; "));
        }
    }

    /// `{"runs": [...], "wall_s": …, "encoding": …}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// CSV, one row per run (per-category results flattened as `cat_<k>_evidence_recall`).
    pub fn to_csv(&self) -> String {
        let cats: std::collections::BTreeSet<&String> = self.runs.iter().flat_map(|r| r.by_category.keys()).collect();
        let mut out = String::from(
            "dataset,policy,budget,probes,evidence_recall,answer_presence,budget_violations,pair_violations,silent_drops,budget_errors,tokens_mean,assemble_p50_us,assemble_p95_us,assemble_p99_us,push_p50_us,push_p95_us,push_p99_us,wall_s,reference_recall,long_range_recall,gold_args_recall,prefix_reuse,cost_units,mode",
        );
        for c in &cats {
            let _ = write!(out, ",cat_{c}_evidence_recall,cat_{c}_answer_presence");
        }
        out.push('\n');
        let o = |v: Option<f64>| v.map_or_else(String::new, |x| format!("{x:.6}"));
        for r in &self.runs {
            let _ = write!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{:.3},{},{},{},{},{},{}",
                csv_field(&r.dataset),
                csv_field(&r.policy),
                budget_str(&r.budget),
                r.probes,
                o(r.evidence_recall),
                o(r.answer_presence),
                r.budget_violations,
                r.pair_violations,
                r.silent_drops,
                r.budget_errors,
                o(r.tokens_mean),
                r.assemble_us.p50,
                r.assemble_us.p95,
                r.assemble_us.p99,
                r.push_us.p50,
                r.push_us.p95,
                r.push_us.p99,
                r.wall_s,
                o(r.reference_recall),
                o(r.long_range_recall),
                o(r.gold_args_recall),
                o(r.prefix_reuse),
                o(r.cost_units),
                r.mode
            );
            for c in &cats {
                let cr = r.by_category.get(*c);
                let _ = write!(out, ",{},{}", o(cr.and_then(|x| x.evidence_recall)), o(cr.and_then(|x| x.answer_presence)));
            }
            out.push('\n');
        }
        out
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}
