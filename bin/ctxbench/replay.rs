//! `ctxbench replay`: one policy at one budget (a comparison of one).

use std::process::ExitCode;

use ctxwin::replay::BudgetSpec;

use crate::args::{Data, Outputs, PolicySpec, budget};

/// Options of `replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: Data,
    #[command(flatten)]
    outputs: Outputs,
    /// A preset or a policy file.
    #[arg(long, default_value = "ctxwin")]
    policy: PolicySpec,
    /// Budget: tokens or a share (10%).
    #[arg(long, default_value = "2000", value_parser = budget)]
    budget: BudgetSpec,
    /// Also report each transcript's own numbers (see `compare --per-session`).
    #[arg(long)]
    per_session: bool,
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let policy = a.policy.load(&a.data.sets)?;
    crate::compare::execute(&a.data, &a.outputs, vec![policy], vec![a.budget], None, a.per_session)
}
