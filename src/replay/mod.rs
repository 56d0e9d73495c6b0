//! The replay side (what ctxbench runs): loaders, probes, metrics, reports, and [`compare`].

pub mod loaders;
mod metrics;
mod occurrences;
pub mod plot;
mod probes;
mod report;
mod summaries;
pub mod synth;
mod transcript;
mod tune;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

pub use loaders::Format;
pub use metrics::{Percentiles, answer_present, normalize_answer, pair_violations};
pub use probes::BudgetSpec;
pub(crate) use probes::budget_basis;
pub use report::{CategoryResult, CompareReport, RunResult, SessionResult};
pub use summaries::{GenLatency, GeneratedReplay, SummaryResult};
pub use transcript::{GoldAction, LoadNotes, QaItem, Transcript};
pub use tune::{Fold, Measured, Step, TuneConfig, TuneReport, tune};

use crate::dense::EmbeddingService;
use crate::error::{Error, Result};
use crate::policy::Policy;
use crate::tokens::Encoding;

/// What to compare: datasets × policies × budgets.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    datasets: Vec<PathBuf>,
    format: Option<Format>,
    policies: Vec<(String, Policy)>,
    budgets: Vec<BudgetSpec>,
    encoding: Encoding,
    embeddings: Option<Arc<EmbeddingService>>,
    generated: Option<GeneratedReplay>,
    threads: Option<usize>,
    per_session: bool,
}

impl CompareConfig {
    /// A comparison of `policies` (name, policy) at `budgets` over `datasets` (files or folders).
    pub fn new(datasets: Vec<PathBuf>, policies: Vec<(String, Policy)>, budgets: Vec<BudgetSpec>) -> Self {
        CompareConfig {
            datasets,
            format: None,
            policies,
            budgets,
            encoding: Encoding::O200kBase,
            embeddings: None,
            generated: None,
            threads: None,
            per_session: false,
        }
    }
    /// Replay threads (default: rayon's, one per core). One thread makes latencies comparable.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n.max(1));
        self
    }
    /// Also report every transcript's own numbers in each run (`RunResult::sessions`).
    pub fn per_session(mut self, on: bool) -> Self {
        self.per_session = on;
        self
    }
    /// The transcript format (default: detected per file).
    pub fn format(mut self, f: Format) -> Self {
        self.format = Some(f);
        self
    }
    /// The token encoding (default `o200k_base`).
    pub fn encoding(mut self, e: Encoding) -> Self {
        self.encoding = e;
        self
    }
    /// Hybrid retrieval with this embedding service (default: lexical only).
    pub fn embeddings(mut self, service: Arc<EmbeddingService>) -> Self {
        self.embeddings = Some(service);
        self
    }
    /// Generated summaries (default: extractive only).
    pub fn generated_summaries(mut self, g: GeneratedReplay) -> Self {
        self.generated = Some(g);
        self
    }
}

/// The dataset's display name: the file or folder name.
fn dataset_name(p: &Path) -> String {
    p.file_name().and_then(|n| n.to_str()).map(str::to_string).unwrap_or_else(|| p.display().to_string())
}

/// Replays every transcript of every dataset with every policy at every budget, in parallel across
/// transcripts (rayon); results are deterministic (merged in a fixed order).
pub fn compare(cfg: &CompareConfig) -> Result<CompareReport> {
    if cfg.policies.is_empty() || cfg.budgets.is_empty() || cfg.datasets.is_empty() {
        return Err(Error::Policy { source_name: None, message: "compare needs at least one dataset, policy and budget".into() });
    }
    let start = Instant::now();
    let mut runs = Vec::new();
    for path in &cfg.datasets {
        let transcripts = loaders::load_path(path, cfg.format)?;
        let mut notes = LoadNotes::default();
        for t in &transcripts {
            notes.add(t.notes());
        }
        let refs: Vec<&Transcript> = transcripts.iter().collect();
        let per = evaluate_each(&refs, &cfg.policies, cfg)?;
        let n_runs = cfg.policies.len() * cfg.budgets.len();
        // Per session, per run: what each transcript alone measured (before merging).
        let mut sessions: Vec<Vec<SessionResult>> = vec![Vec::new(); if cfg.per_session { n_runs } else { 0 }];
        for (t, parts) in refs.iter().zip(&per) {
            for (k, p) in parts.iter().enumerate().filter(|_| cfg.per_session) {
                sessions[k].push(SessionResult::of(t.id(), p));
            }
        }
        let merged = merge(per, n_runs);
        let name = dataset_name(path);
        for (k, m) in merged.into_iter().enumerate() {
            let (pi, bi) = (k / cfg.budgets.len(), k % cfg.budgets.len());
            let mut run = RunResult::from_partial(
                &name,
                &cfg.policies[pi].0,
                cfg.budgets[bi].label(),
                m,
                transcripts.len(),
                if cfg.embeddings.is_some() { "hybrid" } else { "lexical" },
                &notes,
            );
            run.sessions = sessions.get_mut(k).map(std::mem::take).unwrap_or_default();
            runs.push(run);
        }
    }
    let mode = match &cfg.embeddings {
        Some(s) => format!("hybrid ({})", s.model_id()),
        None => "lexical".to_string(),
    };
    Ok(CompareReport { runs, wall_s: start.elapsed().as_secs_f64(), encoding: cfg.encoding.as_str().to_string(), mode })
}

/// Replays `transcripts` with every policy at every budget of `cfg` (its encoding, embeddings,
/// summaries and threads), in parallel across transcripts, and merges the results per (policy,
/// budget), in `policies × budgets` order (deterministic).
pub(crate) fn evaluate(transcripts: &[&Transcript], policies: &[(String, Policy)], cfg: &CompareConfig) -> Result<Vec<probes::Partial>> {
    let per = evaluate_each(transcripts, policies, cfg)?;
    Ok(merge(per, policies.len() * cfg.budgets.len()))
}

/// Each transcript's results (in `transcripts` order), each in `policies × budgets` order.
fn evaluate_each(transcripts: &[&Transcript], policies: &[(String, Policy)], cfg: &CompareConfig) -> Result<Vec<Vec<probes::Partial>>> {
    let (budgets, encoding, dense, generated) = (&cfg.budgets, cfg.encoding, cfg.embeddings.as_ref(), cfg.generated.as_ref());
    // Replays run in their own pool: an embedding model may use rayon's global pool, which must
    // stay free while replay threads wait for embeddings.
    let mut builder = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("ctxbench-replay-{i}"));
    if let Some(n) = cfg.threads {
        builder = builder.num_threads(n);
    }
    let pool = builder.build().map_err(|e| Error::ThreadPool(e.to_string()))?;
    pool.install(|| {
        transcripts
            .par_iter()
            .map(|t| {
                let run = if t.qa().is_empty() {
                    probes::run_hindsight(t, policies, budgets, encoding, dense, generated)
                } else {
                    probes::run_qa(t, policies, budgets, encoding, dense, generated)
                };
                run.map_err(|e| e.in_transcript(t.source(), t.id()))
            })
            .collect::<Result<Vec<_>>>()
    })
}

/// Merges per-transcript results into `n_runs` results, in a fixed order.
fn merge(per: Vec<Vec<probes::Partial>>, n_runs: usize) -> Vec<probes::Partial> {
    let mut merged: Vec<probes::Partial> = vec![probes::Partial::default(); n_runs];
    for parts in per {
        for (m, p) in merged.iter_mut().zip(parts) {
            m.merge(p);
        }
    }
    merged
}

/// Which window to build for inspection: transcript `transcript` (0-based) of the dataset at
/// `path`, pushed whole, then assembled for `budget` tokens with `policy` — the query being QA item
/// `question` of the transcript when given, else the default per-turn query.
#[derive(Debug, Clone)]
pub struct InspectConfig {
    path: PathBuf,
    format: Option<Format>,
    transcript: usize,
    question: Option<usize>,
    policy: Policy,
    budget: usize,
    encoding: Encoding,
    embeddings: Option<Arc<EmbeddingService>>,
}

impl InspectConfig {
    /// The first transcript of `path`, the default query, `o200k_base`, lexical retrieval.
    pub fn new(path: impl Into<PathBuf>, policy: Policy, budget: usize) -> Self {
        InspectConfig { path: path.into(), format: None, transcript: 0, question: None, policy, budget, encoding: Encoding::O200kBase, embeddings: None }
    }
    /// The transcript format (default: detected).
    pub fn format(mut self, f: Format) -> Self {
        self.format = Some(f);
        self
    }
    /// Which transcript of the dataset (0-based; default 0).
    pub fn transcript(mut self, index: usize) -> Self {
        self.transcript = index;
        self
    }
    /// The QA item whose question is the query (default: the per-turn query).
    pub fn question(mut self, index: usize) -> Self {
        self.question = Some(index);
        self
    }
    /// The token encoding (default `o200k_base`).
    pub fn encoding(mut self, e: Encoding) -> Self {
        self.encoding = e;
        self
    }
    /// Hybrid retrieval with this embedding service (default: lexical only).
    pub fn embeddings(mut self, service: Arc<EmbeddingService>) -> Self {
        self.embeddings = Some(service);
        self
    }
}

/// Assembles the window `cfg` names (waiting for embeddings, so it is deterministic). Returns the
/// window, its engine (to render or outline it) and the QA item asked, if any.
pub fn inspect_window(cfg: &InspectConfig) -> Result<(crate::window::Window, crate::engine::Engine, Option<QaItem>)> {
    let (path, index) = (cfg.path.as_path(), cfg.transcript);
    let transcripts = loaders::load_path(path, cfg.format)?;
    let t = transcripts.get(index).ok_or_else(|| Error::NoSuchItem { path: path.to_path_buf(), what: "transcript", index, count: transcripts.len() })?;
    let in_t = |e: Error| e.in_transcript(t.source(), t.id());
    let mut e = engine_for(t, cfg.encoding, cfg.embeddings.as_ref(), None).map_err(in_t)?;
    for turn in t.turns() {
        e.push(turn.clone()).map_err(in_t)?;
    }
    e.wait_for_embeddings().map_err(in_t)?;
    let qa = match cfg.question {
        Some(q) => {
            Some(t.qa().get(q).cloned().ok_or_else(|| Error::NoSuchItem { path: path.to_path_buf(), what: "question", index: q, count: t.qa().len() })?)
        }
        None => None,
    };
    let mut a = crate::plan::PlanState::new(cfg.policy.clone());
    let request = qa.as_ref().map_or(crate::plan::Request::NextCall, |q| crate::plan::Request::Query(q.question()));
    let w = e.assemble_with(&mut a, cfg.budget, request).map_err(in_t)?;
    Ok((w, e, qa))
}

/// A fresh engine holding the transcript's pins (with dense retrieval when a service is given):
/// every replay starts from one.
pub(crate) fn engine_for(
    t: &Transcript,
    encoding: Encoding,
    dense: Option<&Arc<EmbeddingService>>,
    generated: Option<&GeneratedReplay>,
) -> Result<crate::engine::Engine> {
    let mut cfg = crate::engine::EngineConfig::default().encoding(encoding);
    if let Some(s) = dense {
        cfg = cfg.embeddings(Arc::clone(s));
    }
    if let Some(g) = generated {
        cfg = cfg.generated_summaries(Arc::clone(&g.service));
    }
    let mut e = crate::engine::Engine::new(cfg)?;
    for (layer, text) in t.pins() {
        e.pin(*layer, text.clone(), 0);
    }
    Ok(e)
}

/// Replays `t` turn by turn with one policy and budget, as the hindsight probes do, and calls
/// `visit(turn_index, window)` with the window built before each assistant turn (a typed
/// "budget below pins" error is passed on as `Err`). For checks over every window of a replay.
pub fn for_each_window(
    t: &Transcript,
    policy: &Policy,
    budget: BudgetSpec,
    encoding: Encoding,
    mut visit: impl FnMut(usize, Result<&crate::window::Window>),
) -> Result<()> {
    let mut e = engine_for(t, encoding, None, None)?;
    let (pins, history) = probes::budget_basis(t, &mut e);
    let budget = budget.resolve(pins, history);
    let mut a = crate::plan::PlanState::new(policy.clone());
    for (i, turn) in t.turns().iter().enumerate() {
        if i > 0 && turn.role() == crate::turn::Role::Assistant {
            match e.assemble_with(&mut a, budget, crate::plan::Request::NextCall) {
                Ok(w) => visit(i, Ok(&w)),
                Err(err) => visit(i, Err(err)),
            }
        }
        e.push(turn.clone()).map_err(|err| err.in_transcript(t.source(), t.id()))?;
    }
    Ok(())
}
