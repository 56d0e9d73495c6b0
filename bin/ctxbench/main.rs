//! ctxbench: replays transcripts through ctxwin and the peers' policies, and measures the windows.
//!
//! `main` parses the command line once into typed arguments (`args.rs`) and hands them to one
//! subcommand, each in its own file.

mod args;
mod compare;
mod replay;
mod samples;
mod summarizer;
mod tune;
mod window;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ctxbench", version, about = "Replay transcripts through context-window policies and measure the windows")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compare several policies at several budgets.
    Compare(compare::Args),
    /// Print one window: its messages one line each, then the report of what was left out.
    Window(window::Args),
    /// Tune a policy's knobs on part of the transcripts and check the result on the rest.
    Tune(tune::Args),
    /// Replay one policy at one budget.
    Replay(replay::Args),
    /// Write the generated sample transcripts (the ones under datasets/samples/).
    Samples(samples::Args),
    /// Serve the local summary model (OpenAI-compatible chat completions) on 127.0.0.1.
    SummarizerServer(summarizer::ServerArgs),
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ctxbench: {}", message(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, each cause once: a cause whose text the message already carries
/// (`ctxwin::Error::Io` shows its source) is not repeated.
fn message(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

/// Exit codes: 0 success, 1 a run produced invalid windows, 2 an error (bad arguments included).
fn run() -> anyhow::Result<ExitCode> {
    match Cli::parse().cmd {
        Cmd::Compare(a) => compare::run(&a),
        Cmd::Window(a) => window::run(&a),
        Cmd::Tune(a) => tune::run(&a),
        Cmd::Replay(a) => replay::run(&a),
        Cmd::Samples(a) => samples::run(&a),
        Cmd::SummarizerServer(a) => summarizer::serve(&a),
    }
}
