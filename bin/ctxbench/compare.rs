//! `ctxbench compare`: several policies at several budgets over the datasets.

use std::process::ExitCode;

use anyhow::bail;
use ctxwin::Policy;
use ctxwin::replay::{BudgetSpec, CompareReport, GeneratedReplay, compare};

use crate::args::{BudgetList, Data, Outputs, PolicyList, write};

/// Options of `compare`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: Data,
    #[command(flatten)]
    outputs: Outputs,
    /// Comma-separated presets or policy files (.toml/.json).
    #[arg(long, default_value = "ctxwin,recency,rag")]
    policies: PolicyList,
    /// Comma-separated budgets: tokens (2000) or shares of each transcript (10%).
    #[arg(long, default_value = "1000,2000,4000,8000")]
    budgets: BudgetList,
    #[command(flatten)]
    summarizer: crate::summarizer::SummarizerArgs,
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let policies = a.policies.load(&a.data.sets)?;
    let loaded = a.summarizer.load()?;
    execute(&a.data, &a.outputs, policies, a.budgets.0.clone(), loaded.generated.clone())
}

/// Replays `policies` × `budgets` over the data, prints the table, writes the outputs asked for,
/// and fails the run (exit code 1) when a window was over budget or split a tool pair.
pub fn execute(
    data: &Data,
    outputs: &Outputs,
    policies: Vec<(String, Policy)>,
    budgets: Vec<BudgetSpec>,
    generated: Option<GeneratedReplay>,
) -> anyhow::Result<ExitCode> {
    if let Some(p) = &outputs.plot
        && !p.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg"))
    {
        bail!("--plot {}: the chart is SVG, give the file a .svg name", p.display());
    }
    let mut cfg = data.replay_config(policies, budgets)?;
    if let Some(g) = generated {
        cfg = cfg.generated_summaries(g);
    }
    let report = compare(&cfg)?;
    print!("{}", report.table());
    write_outputs(&report, outputs)?;
    // Validity is part of the result: a window over budget or a split tool pair fails the run.
    let bad: usize = report.runs.iter().map(|r| r.budget_violations + r.pair_violations).sum();
    if bad > 0 {
        eprintln!("ctxbench: {bad} invalid windows (over budget or split tool pairs)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn write_outputs(report: &CompareReport, outputs: &Outputs) -> anyhow::Result<()> {
    if let Some(p) = &outputs.json {
        write(p, report.to_json())?;
    }
    if let Some(p) = &outputs.csv {
        write(p, report.to_csv())?;
    }
    if let Some(p) = &outputs.plot {
        write(p, ctxwin::replay::plot::svg(report)?)?;
    }
    Ok(())
}
