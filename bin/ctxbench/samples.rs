//! `ctxbench samples`: writes the generated sample transcripts (`synth-conversation.locomo.json`,
//! `synth-agent.openai.json`); into `datasets/samples/` they reproduce the committed files byte for
//! byte.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::args::write;

/// Options of `samples`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder to write them to (created if missing).
    #[arg(long, default_value = "datasets/samples")]
    out: PathBuf,
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    for s in ctxwin::replay::synth::samples() {
        let path = a.out.join(s.name());
        write(&path, s.text())?;
        let t = s.transcript();
        println!("{}: {} turns, {} QA items, {} bytes", path.display(), t.turns().len(), t.qa().len(), s.text().len());
    }
    Ok(ExitCode::SUCCESS)
}
