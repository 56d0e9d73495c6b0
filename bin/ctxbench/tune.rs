//! `ctxbench tune`: coordinate ascent over given knob values on a seeded training split, checked
//! on the held-out transcripts; writes the tuned policy as TOML.

use std::path::PathBuf;
use std::process::ExitCode;

use ctxwin::replay::TuneConfig;

use crate::args::{BudgetList, CostRatio, Data, Param, PolicySpec, write};

/// Options of `tune`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: Data,
    /// The policy to start from: a preset or a policy file.
    #[arg(long, default_value = "ctxwin")]
    policy: PolicySpec,
    /// Comma-separated budgets the objective averages over: tokens or shares (10%).
    #[arg(long, default_value = "2000")]
    budgets: BudgetList,
    /// A knob and the values to try: KEY=V1,V2,... (e.g. context_boost=0,0.3,0.6); repeatable.
    #[arg(long = "param", required = true)]
    params: Vec<Param>,
    /// Share of each dataset's transcripts held out to check the tuned policy (0: none).
    #[arg(long, default_value_t = 0.3)]
    holdout: f64,
    /// Seed of the train / held-out split.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Most rounds of coordinate ascent over the knobs.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// k-fold cross-validation by session across every dataset at once (k ≥ 2): the search on
    /// k-1 folds, scored on the other, for each fold; the policy written is the search on all.
    #[arg(long)]
    folds: Option<usize>,
    /// Cost constraint: cost per window ≤ RATIO × the recency preset's at every budget; `RATIO`
    /// for every dataset, `NAME=RATIO` for one (its folder or file name); repeatable.
    #[arg(long = "max-cost-ratio")]
    max_cost: Vec<CostRatio>,
    /// Write the tuned policy (TOML) to this file; without it, it is printed.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let (_, start) = a.policy.load(&a.data.sets)?;
    let params = a.params.iter().map(|p| (p.key.clone(), p.values.clone())).collect();
    let replay = a.data.replay_config(vec![("start".into(), start)], a.budgets.0.clone())?;
    let mut cfg = TuneConfig::new(replay, params).holdout(a.holdout).seed(a.seed).rounds(a.rounds).folds(a.folds.unwrap_or(0));
    for c in &a.max_cost {
        cfg = cfg.max_cost_ratio(c.dataset.clone(), c.ratio);
    }
    let report = ctxwin::replay::tune(&cfg)?;
    print!("{}", report.table());
    let toml = report.policy.to_toml();
    match &a.out {
        Some(p) => {
            write(p, &toml)?;
            println!("tuned policy written to {}", p.display());
        }
        None => print!("{toml}"),
    }
    Ok(ExitCode::SUCCESS)
}
