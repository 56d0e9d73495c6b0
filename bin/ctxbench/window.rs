//! `ctxbench window`: one window, its messages one line each, then the report of what was left
//! out — or the request it renders to.

use std::path::PathBuf;
use std::process::ExitCode;

use ctxwin::replay::{InspectConfig, inspect_window};

use crate::args::{Embeddings, FormatArg, PolicySpec, Render};

/// Options of `window`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Transcript file or folder.
    #[arg(long)]
    dataset: PathBuf,
    /// Transcript format.
    #[arg(long, value_enum, ignore_case = true, default_value = "auto")]
    format: FormatArg,
    /// Which transcript of the dataset (0-based).
    #[arg(long, default_value_t = 0)]
    transcript: usize,
    /// Which QA item is the query (0-based); without it, the default per-turn query.
    #[arg(long)]
    question: Option<usize>,
    /// A preset or a policy file.
    #[arg(long, default_value = "ctxwin")]
    policy: PolicySpec,
    /// Budget in tokens.
    #[arg(long, default_value_t = 2000)]
    budget: usize,
    /// Print the request as JSON in this shape instead.
    #[arg(long, value_enum)]
    render: Option<Render>,
    #[command(flatten)]
    embeddings: Embeddings,
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let (_, policy) = a.policy.load(&[])?;
    let mut cfg = InspectConfig::new(&a.dataset, policy, a.budget).transcript(a.transcript);
    if let Some(f) = a.format.format() {
        cfg = cfg.format(f);
    }
    if let Some(q) = a.question {
        cfg = cfg.question(q);
    }
    if let Some(service) = a.embeddings.load()? {
        cfg = cfg.embeddings(service);
    }
    let (w, e, qa) = inspect_window(&cfg)?;
    match a.render {
        Some(Render::Openai) => println!("{}", serde_json::to_string_pretty(&w.to_openai())?),
        Some(Render::Anthropic) => println!("{}", serde_json::to_string_pretty(&w.to_anthropic())?),
        None => {
            match e.embedding_model() {
                Some(m) => println!("mode: hybrid ({m})"),
                None => println!("mode: lexical"),
            }
            if let Some(q) = &qa {
                println!("question: {}\nanswer: {:?}\nevidence: {:?}", q.question(), q.answer(), q.evidence());
            }
            print!("{}", w.outline());
            let kept = w.kept_turns().count();
            println!(
                "total {} / budget {} tokens; {} turns kept, {} summaries, {} turns in history",
                w.total_tokens(),
                w.budget(),
                kept,
                w.summaries().len(),
                w.report().len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
