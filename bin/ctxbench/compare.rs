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
    /// Also replay through durable sessions in this store (`sqlite:PATH` or `postgres://…`) and
    /// report their cost (push, assemble, reopen) and that every window equals the in-memory one;
    /// `memory` (the default) replays in memory only.
    #[arg(long, default_value = "memory")]
    store: String,
    /// Also report each transcript's own numbers (assemble p50/p99, cost per window, prefix reuse,
    /// long-range recall): the slowest sessions of each run in the table, all of them in the JSON.
    #[arg(long)]
    per_session: bool,
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let policies = a.policies.load(&a.data.sets)?;
    let loaded = a.summarizer.load()?;
    // A bad store is an error before the replay, not after it.
    let store = ctxwin::StoreSpec::parse(&a.store)?.open()?;
    let code = execute(&a.data, &a.outputs, policies.clone(), a.budgets.0.clone(), loaded.generated.clone(), a.per_session)?;
    match store {
        Some(store) => durable(a, &policies, &store).map(|ok| if ok { code } else { ExitCode::from(1) }),
        None => Ok(code),
    }
}

/// The replay through durable sessions: a table of their cost, added to the JSON as `durable`.
/// `false` when a reopened session's window differed from the in-memory one.
fn durable(a: &Args, policies: &[(String, Policy)], store: &std::sync::Arc<dyn ctxwin::SessionStore>) -> anyhow::Result<bool> {
    let prefix = format!("ctxbench-{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    let costs = ctxwin::session::compare_durable(a.data.datasets(), a.data.format(), policies, &a.budgets.0, a.data.encoding(), store, &prefix)?;
    println!("\ndurable sessions ({}): µs, p50 / p99", store.name());
    println!("{:<22} {:<14} {:>6} {:>17} {:>17} {:>17} {:>9}", "dataset", "policy", "budget", "push", "assemble", "reopen", "differing");
    for c in &costs {
        let pp = |p: &ctxwin::replay::Percentiles| format!("{:.0} / {:.0}", p.p50, p.p99);
        let budget = c.budget.as_str().map_or_else(|| c.budget.to_string(), str::to_string);
        println!(
            "{:<22} {:<14} {:>6} {:>17} {:>17} {:>17} {:>4} / {:<4}",
            c.dataset,
            c.policy,
            budget,
            pp(&c.push_us),
            pp(&c.assemble_us),
            pp(&c.reopen_us),
            c.differing,
            c.windows
        );
    }
    if let Some(p) = &a.outputs.json {
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p)?)?;
        v["durable"] = serde_json::to_value(&costs)?;
        write(p, serde_json::to_string_pretty(&v)?)?;
    }
    let differing: usize = costs.iter().map(|c| c.differing).sum();
    if differing > 0 {
        eprintln!("ctxbench: {differing} windows of reopened sessions differ from the in-memory replay");
    }
    Ok(differing == 0)
}

/// Replays `policies` × `budgets` over the data, prints the table, writes the outputs asked for,
/// and fails the run (exit code 1) when a window was over budget or split a tool pair.
pub fn execute(
    data: &Data,
    outputs: &Outputs,
    policies: Vec<(String, Policy)>,
    budgets: Vec<BudgetSpec>,
    generated: Option<GeneratedReplay>,
    per_session: bool,
) -> anyhow::Result<ExitCode> {
    if let Some(p) = &outputs.plot
        && !p.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg"))
    {
        bail!("--plot {}: the chart is SVG, give the file a .svg name", p.display());
    }
    let mut cfg = data.replay_config(policies, budgets)?.per_session(per_session);
    if let Some(g) = generated {
        cfg = cfg.generated_summaries(g);
    }
    let report = compare(&cfg)?;
    print!("{}", report.table());
    write_outputs(&report, outputs)?;
    // Validity is part of the result: a window over budget, a split tool pair or a turn left out
    // silently fails the run.
    let bad: usize = report.runs.iter().map(|r| r.budget_violations + r.pair_violations + r.silent_drops).sum();
    if bad > 0 {
        eprintln!("ctxbench: {bad} invalid windows or turns (over budget, split tool pairs, silent drops)");
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
