//! ctxbench: replays transcripts through ctxwin and the peers' policies, and measures the windows.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use ctxwin::replay::{compare, BudgetSpec, CompareConfig, CompareReport, Format};
use ctxwin::{Encoding, Policy};

#[derive(Parser)]
#[command(name = "ctxbench", version, about = "Replay transcripts through context-window policies and measure the windows")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct Data {
    /// Transcript file or folder (every recognized file in it); repeat for several.
    #[arg(long = "dataset", required = true)]
    datasets: Vec<PathBuf>,
    /// Transcript format: auto, locomo, longmemeval, openai-chat, mini-swe-agent, claude-code, anthropic, aider.
    #[arg(long, default_value = "auto")]
    format: String,
    /// Token encoding: o200k_base or cl100k_base.
    #[arg(long, default_value = "o200k_base")]
    encoding: String,
    /// Override a policy knob for every policy: KEY=VALUE (e.g. weights.bm25=0.8); repeatable.
    #[arg(long = "set")]
    sets: Vec<String>,
    /// Hybrid retrieval: the embedding model folder written by scripts/fetch-models.sh
    /// (e.g. models/all-MiniLM-L6-v2). Needs a build with `--features dense`.
    #[arg(long)]
    embeddings: Option<PathBuf>,
    /// Disk cache of embeddings for replays (default: embeddings.cache in the model folder).
    #[arg(long)]
    embeddings_cache: Option<PathBuf>,
}

#[derive(clap::Args)]
struct Common {
    #[command(flatten)]
    data: Data,
    /// Write the runs as JSON (`{"runs": [...]}`) to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the runs as CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Draw each dataset's recall against the budget, a line per policy, to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compare several policies at several budgets.
    Compare {
        #[command(flatten)]
        common: Common,
        /// Comma-separated presets or policy files (.toml/.json).
        #[arg(long, default_value = "ctxwin,recency,rag")]
        policies: String,
        /// Comma-separated budgets: tokens (2000) or shares of each transcript (10%).
        #[arg(long, default_value = "1000,2000,4000,8000")]
        budgets: String,
    },
    /// Print one window: its messages one line each, then the report of what was left out.
    Window {
        /// Transcript file or folder.
        #[arg(long)]
        dataset: PathBuf,
        /// Transcript format.
        #[arg(long, default_value = "auto")]
        format: String,
        /// Which transcript of the dataset (0-based).
        #[arg(long, default_value_t = 0)]
        transcript: usize,
        /// Which QA item is the query (0-based); without it, the default per-turn query.
        #[arg(long)]
        question: Option<usize>,
        /// A preset or a policy file.
        #[arg(long, default_value = "ctxwin")]
        policy: String,
        /// Budget in tokens.
        #[arg(long, default_value_t = 2000)]
        budget: usize,
        /// Print the request as JSON in this shape instead: openai or anthropic.
        #[arg(long)]
        render: Option<String>,
        /// Hybrid retrieval with the embedding model in this folder (see `compare --embeddings`).
        #[arg(long)]
        embeddings: Option<PathBuf>,
        /// Disk cache of embeddings (default: embeddings.cache in the model folder).
        #[arg(long)]
        embeddings_cache: Option<PathBuf>,
    },
    /// Tune a policy's knobs on part of the transcripts and check the result on the rest.
    Tune {
        #[command(flatten)]
        data: Data,
        /// The policy to start from: a preset or a policy file.
        #[arg(long, default_value = "ctxwin")]
        policy: String,
        /// Comma-separated budgets the objective averages over: tokens or shares (10%).
        #[arg(long, default_value = "2000")]
        budgets: String,
        /// A knob and the values to try: KEY=V1,V2,... (e.g. context_boost=0,0.3,0.6); repeatable.
        #[arg(long = "param", required = true)]
        params: Vec<String>,
        /// Share of each dataset's transcripts held out to check the tuned policy (0: none).
        #[arg(long, default_value_t = 0.3)]
        holdout: f64,
        /// Seed of the train / held-out split.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Most rounds of coordinate ascent over the knobs.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Write the tuned policy (TOML) to this file; without it, it is printed.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Replay one policy at one budget.
    Replay {
        #[command(flatten)]
        common: Common,
        /// A preset or a policy file.
        #[arg(long, default_value = "ctxwin")]
        policy: String,
        /// Budget: tokens or a share (10%).
        #[arg(long, default_value = "2000")]
        budget: String,
    },
}

fn load_policy(spec: &str, sets: &[String]) -> anyhow::Result<(String, Policy)> {
    let path = PathBuf::from(spec);
    let (name, mut policy) = if ctxwin::PRESETS.contains(&spec) {
        (spec.to_string(), Policy::preset(spec)?)
    } else if path.extension().is_some_and(|e| e == "toml" || e == "json") {
        if !path.is_file() {
            bail!("policy file {} does not exist", path.display());
        }
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or(spec).to_string();
        (name, Policy::load(&path)?)
    } else {
        bail!("unknown policy `{spec}`: use a preset ({}) or a .toml/.json file", ctxwin::PRESETS.join(", "));
    };
    for s in sets {
        let (k, v) = s.split_once('=').with_context(|| format!("--set {s}: expected KEY=VALUE"))?;
        policy.set(k.trim(), v.trim())?;
    }
    Ok((name, policy))
}

fn budgets(spec: &str) -> anyhow::Result<Vec<BudgetSpec>> {
    spec.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| BudgetSpec::parse(s).with_context(|| format!("budget `{s}`: expected tokens (2000) or a share (10%)")))
        .collect()
}

/// The replay the data options ask for (every dataset known to exist, embeddings loaded).
fn replay_config(data: &Data, policies: Vec<(String, Policy)>, budgets: Vec<BudgetSpec>) -> anyhow::Result<CompareConfig> {
    let format = Format::parse(&data.format)
        .with_context(|| format!("unknown --format `{}` (one of: {})", data.format, Format::NAMES.join(", ")))?;
    let encoding = Encoding::parse(&data.encoding).with_context(|| format!("unknown --encoding `{}`", data.encoding))?;
    for d in &data.datasets {
        if !d.exists() {
            bail!("dataset {} does not exist", d.display());
        }
    }
    let mut cfg = CompareConfig::new(data.datasets.clone(), policies, budgets).format(format).encoding(encoding);
    if let Some(dir) = &data.embeddings {
        cfg = cfg.embeddings(load_embeddings(dir, data.embeddings_cache.as_deref())?);
    }
    Ok(cfg)
}

fn run(common: &Common, policies: Vec<(String, Policy)>, budgets: Vec<BudgetSpec>) -> anyhow::Result<CompareReport> {
    if let Some(p) = &common.plot
        && !p.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg"))
    {
        bail!("--plot {}: the chart is SVG, give the file a .svg name", p.display());
    }
    let report = compare(&replay_config(&common.data, policies, budgets)?)?;
    print!("{}", report.table());
    if let Some(p) = &common.json {
        std::fs::write(p, report.to_json()).with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &common.csv {
        std::fs::write(p, report.to_csv()).with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &common.plot {
        let svg = ctxwin::replay::plot::svg(&report)?;
        std::fs::write(p, svg).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(report)
}

#[cfg(feature = "dense")]
fn load_embeddings(dir: &std::path::Path, cache: Option<&std::path::Path>) -> anyhow::Result<std::sync::Arc<ctxwin::EmbeddingService>> {
    let cache = cache.map(PathBuf::from).unwrap_or_else(|| dir.join("embeddings.cache"));
    let t0 = std::time::Instant::now();
    let (service, status) = ctxwin::EmbeddingService::load(dir, Some(&cache))?;
    eprintln!(
        "ctxbench: hybrid retrieval with {} (loaded in {:.2} s); embedding cache {}: {:?}",
        service.model_id(),
        t0.elapsed().as_secs_f64(),
        cache.display(),
        status
    );
    Ok(service)
}

#[cfg(not(feature = "dense"))]
fn load_embeddings(_dir: &std::path::Path, _cache: Option<&std::path::Path>) -> anyhow::Result<std::sync::Arc<ctxwin::EmbeddingService>> {
    bail!("this ctxbench was built without the `dense` feature: rebuild with `cargo build --release --features dense` (and run scripts/fetch-models.sh)")
}

/// `KEY=V1,V2,...` into the knob and its values.
fn param(spec: &str) -> anyhow::Result<(String, Vec<String>)> {
    let (k, v) = spec.split_once('=').with_context(|| format!("--param {spec}: expected KEY=V1,V2,..."))?;
    let values: Vec<String> = v.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect();
    if k.trim().is_empty() || values.is_empty() {
        bail!("--param {spec}: expected KEY=V1,V2,...");
    }
    Ok((k.trim().to_string(), values))
}

#[allow(clippy::too_many_arguments)]
fn tune(data: &Data, policy: &str, b: &str, params: &[String], holdout: f64, seed: u64, rounds: usize, out: Option<&std::path::Path>) -> anyhow::Result<()> {
    let (_, start) = load_policy(policy, &data.sets)?;
    let params = params.iter().map(|p| param(p)).collect::<anyhow::Result<Vec<_>>>()?;
    let replay = replay_config(data, vec![("start".into(), start)], budgets(b)?)?;
    let cfg = ctxwin::replay::TuneConfig::new(replay, params).holdout(holdout).seed(seed).rounds(rounds);
    let report = ctxwin::replay::tune(&cfg)?;
    print!("{}", report.table());
    let toml = report.policy.to_toml();
    match out {
        Some(p) => {
            std::fs::write(p, &toml).with_context(|| format!("writing {}", p.display()))?;
            println!("tuned policy written to {}", p.display());
        }
        None => print!("{toml}"),
    }
    Ok(())
}

fn main() -> ExitCode {
    match try_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ctxbench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn try_main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let report = match &cli.cmd {
        Cmd::Compare { common, policies, budgets: b } => {
            let ps = policies.split(',').filter(|s| !s.trim().is_empty()).map(|s| load_policy(s.trim(), &common.data.sets)).collect::<anyhow::Result<Vec<_>>>()?;
            run(common, ps, budgets(b)?)?
        }
        Cmd::Window { dataset, format, transcript, question, policy, budget, render, embeddings, embeddings_cache } => {
            let format = Format::parse(format).with_context(|| format!("unknown --format `{format}`"))?;
            let (_, p) = load_policy(policy, &[])?;
            let dense = embeddings.as_deref().map(|dir| load_embeddings(dir, embeddings_cache.as_deref())).transpose()?;
            let (w, e, qa) = ctxwin::replay::inspect_window(dataset, format, *transcript, *question, &p, *budget, Encoding::O200kBase, dense)?;
            match render.as_deref() {
                Some("openai") => println!("{}", serde_json::to_string_pretty(&w.to_openai())?),
                Some("anthropic") => println!("{}", serde_json::to_string_pretty(&w.to_anthropic())?),
                Some(other) => bail!("unknown --render `{other}` (openai or anthropic)"),
                None => {
                    match e.embedding_model() {
                        Some(m) => println!("mode: hybrid ({m})"),
                        None => println!("mode: lexical"),
                    }
                    if let Some(q) = &qa {
                        println!("question: {}
answer: {:?}
evidence: {:?}", q.question(), q.answer(), q.evidence());
                    }
                    print!("{}", w.outline());
                    let kept = w.kept_turns().count();
                    println!("total {} / budget {} tokens; {} turns kept, {} summaries, {} turns in history", w.total_tokens(), w.budget(), kept, w.summaries().len(), w.report().len());
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Replay { common, policy, budget } => run(common, vec![load_policy(policy, &common.data.sets)?], budgets(budget)?)?,
        Cmd::Tune { data, policy, budgets: b, params, holdout, seed, rounds, out } => {
            tune(data, policy, b, params, *holdout, *seed, *rounds, out.as_deref())?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    // Validity is part of the result: a window over budget or a split tool pair fails the run.
    let bad: usize = report.runs.iter().map(|r| r.budget_violations + r.pair_violations).sum();
    if bad > 0 {
        eprintln!("ctxbench: {bad} invalid windows (over budget or split tool pairs)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
