//! The command line's values, parsed once into types: formats, encodings and renderings are clap
//! `ValueEnum`s; policy lists, budget lists, `--set` and `--param` have their own parsers, so a bad
//! value is a usage error (exit code 2) before anything runs.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::ValueEnum;
use ctxwin::replay::{BudgetSpec, CompareConfig, Format};
use ctxwin::{EmbeddingService, Encoding, Policy};

/// `--format`: a transcript format, or `auto` to detect each file's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Detect from the file's content.
    Auto,
    /// LoCoMo.
    Locomo,
    /// LongMemEval-S.
    #[value(name = "longmemeval", alias = "longmemeval-s", alias = "longmemeval_s")]
    LongMemEval,
    /// OpenAI chat messages (also tau-bench runs and SWE-agent trajectories).
    #[value(
        name = "openai-chat",
        alias = "openai_chat",
        alias = "openai",
        alias = "tau-bench",
        alias = "tau_bench",
        alias = "taubench",
        alias = "swe-agent",
        alias = "swe_agent",
        alias = "sweagent"
    )]
    OpenAiChat,
    /// mini-swe-agent trajectories.
    #[value(name = "mini-swe-agent", alias = "mini_swe_agent", alias = "mini-swe_agent", alias = "mini_swe-agent", alias = "minisweagent")]
    MiniSweAgent,
    /// Claude Code session JSONL.
    #[value(name = "claude-code", alias = "claude_code", alias = "claudecode")]
    ClaudeCode,
    /// Anthropic Messages JSON.
    #[value(name = "anthropic", alias = "anthropic-messages", alias = "anthropic_messages")]
    Anthropic,
    /// Aider chat history markdown.
    Aider,
}

impl FormatArg {
    /// The format to load with (`None`: detect).
    pub fn format(self) -> Option<Format> {
        match self {
            FormatArg::Auto => None,
            FormatArg::Locomo => Some(Format::Locomo),
            FormatArg::LongMemEval => Some(Format::LongMemEval),
            FormatArg::OpenAiChat => Some(Format::OpenAiChat),
            FormatArg::MiniSweAgent => Some(Format::MiniSweAgent),
            FormatArg::ClaudeCode => Some(Format::ClaudeCode),
            FormatArg::Anthropic => Some(Format::AnthropicMessages),
            FormatArg::Aider => Some(Format::Aider),
        }
    }
}

/// `--encoding`: the tokenizer budgets are counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EncodingArg {
    /// GPT-4o and later.
    #[value(name = "o200k_base", alias = "o200k")]
    O200kBase,
    /// GPT-4 and GPT-3.5.
    #[value(name = "cl100k_base", alias = "cl100k")]
    Cl100kBase,
}

impl From<EncodingArg> for Encoding {
    fn from(e: EncodingArg) -> Encoding {
        match e {
            EncodingArg::O200kBase => Encoding::O200kBase,
            EncodingArg::Cl100kBase => Encoding::Cl100kBase,
        }
    }
}

/// `--render`: the request shape a window is printed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Render {
    /// OpenAI chat messages.
    Openai,
    /// Anthropic Messages (`system` + `messages`).
    Anthropic,
}

/// A policy named on the command line: a preset, or a policy file (.toml/.json) that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySpec {
    /// One of [`ctxwin::PRESETS`].
    Preset(String),
    /// A policy file; its stem names it in reports.
    File(PathBuf),
}

impl FromStr for PolicySpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        if ctxwin::PRESETS.contains(&spec) {
            return Ok(PolicySpec::Preset(spec.to_string()));
        }
        let path = PathBuf::from(spec);
        if !path.extension().is_some_and(|e| e == "toml" || e == "json") {
            return Err(format!("unknown policy `{spec}`: use a preset ({}) or a .toml/.json file", ctxwin::PRESETS.join(", ")));
        }
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(format!("policy file {} does not exist", path.display())),
            Err(e) => return Err(format!("policy file {}: {e}", path.display())),
            Ok(m) if !m.is_file() => return Err(format!("policy file {} is not a regular file", path.display())),
            Ok(_) => {}
        }
        Ok(PolicySpec::File(path))
    }
}

impl PolicySpec {
    /// The policy and its name in reports, with the `--set` overrides applied.
    pub fn load(&self, sets: &[Set]) -> anyhow::Result<(String, Policy)> {
        let (name, mut policy) = match self {
            PolicySpec::Preset(p) => (p.clone(), Policy::preset(p)?),
            PolicySpec::File(path) => {
                let name = path.file_stem().and_then(|s| s.to_str()).map_or_else(|| path.display().to_string(), str::to_string);
                (name, Policy::load(path)?)
            }
        };
        for s in sets {
            policy.set(&s.key, &s.value)?;
        }
        Ok((name, policy))
    }
}

/// `--policies`: comma-separated presets or policy files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyList(pub Vec<PolicySpec>);

impl FromStr for PolicyList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(PolicySpec::from_str).collect::<Result<_, _>>().map(PolicyList)
    }
}

impl PolicyList {
    /// Every policy with its name, `--set` applied to each.
    pub fn load(&self, sets: &[Set]) -> anyhow::Result<Vec<(String, Policy)>> {
        self.0.iter().map(|p| p.load(sets)).collect()
    }
}

/// A budget: tokens (`2000`) or a share of each transcript (`10%`).
pub fn budget(s: &str) -> Result<BudgetSpec, String> {
    BudgetSpec::parse(s).ok_or_else(|| format!("budget `{s}`: expected tokens (2000) or a share (10%)"))
}

/// `--budgets`: comma-separated budgets.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetList(pub Vec<BudgetSpec>);

impl FromStr for BudgetList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',').filter(|b| !b.trim().is_empty()).map(budget).collect::<Result<_, _>>().map(BudgetList)
    }
}

/// `--set KEY=VALUE`: a policy knob override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    key: String,
    value: String,
}

impl FromStr for Set {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (k, v) = s.split_once('=').ok_or_else(|| format!("--set {s}: expected KEY=VALUE"))?;
        Ok(Set { key: k.trim().to_string(), value: v.trim().to_string() })
    }
}

/// `--param KEY=V1,V2,...`: a knob and the values `tune` tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The knob.
    pub key: String,
    /// Its candidate values (at least one).
    pub values: Vec<String>,
}

impl FromStr for Param {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let expected = || format!("--param {spec}: expected KEY=V1,V2,...");
        let (k, v) = spec.split_once('=').ok_or_else(expected)?;
        let values: Vec<String> = v.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect();
        if k.trim().is_empty() || values.is_empty() {
            return Err(expected());
        }
        Ok(Param { key: k.trim().to_string(), values })
    }
}

/// `--max-cost-ratio [NAME=]RATIO`: a cost constraint relative to the recency preset.
#[derive(Debug, Clone, PartialEq)]
pub struct CostRatio {
    /// The dataset it applies to (its folder or file name); `None`: every other dataset.
    pub dataset: Option<String>,
    /// Cost per window ≤ this × recency's.
    pub ratio: f64,
}

impl FromStr for CostRatio {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let (dataset, r) = match spec.rsplit_once('=') {
            Some((d, r)) if !d.trim().is_empty() => (Some(d.trim().to_string()), r),
            Some(_) => return Err(format!("--max-cost-ratio {spec}: expected RATIO or NAME=RATIO")),
            None => (None, spec),
        };
        match r.trim().parse::<f64>() {
            Ok(ratio) if ratio.is_finite() && ratio > 0.0 => Ok(CostRatio { dataset, ratio }),
            _ => Err(format!("--max-cost-ratio {spec}: expected RATIO or NAME=RATIO with a number > 0")),
        }
    }
}

/// Hybrid retrieval options.
#[derive(Debug, clap::Args)]
pub struct Embeddings {
    /// Hybrid retrieval: the embedding model folder written by scripts/fetch-models.sh
    /// (e.g. models/all-MiniLM-L6-v2). Needs a build with `--features dense`.
    #[arg(long)]
    embeddings: Option<PathBuf>,
    /// Disk cache of embeddings for replays (default: embeddings.cache in the model folder).
    #[arg(long)]
    embeddings_cache: Option<PathBuf>,
}

impl Embeddings {
    /// The embedding service asked for, loaded (`None`: lexical retrieval).
    pub fn load(&self) -> anyhow::Result<Option<Arc<EmbeddingService>>> {
        self.embeddings.as_deref().map(|dir| load_embeddings(dir, self.embeddings_cache.as_deref())).transpose()
    }
}

#[cfg(feature = "dense")]
fn load_embeddings(dir: &Path, cache: Option<&Path>) -> anyhow::Result<Arc<EmbeddingService>> {
    let cache = cache.map_or_else(|| dir.join("embeddings.cache"), Path::to_path_buf);
    let t0 = std::time::Instant::now();
    let (service, status) = EmbeddingService::load(dir, Some(&cache))?;
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
fn load_embeddings(_dir: &Path, _cache: Option<&Path>) -> anyhow::Result<Arc<EmbeddingService>> {
    bail!("this ctxbench was built without the `dense` feature: rebuild with `cargo build --release --features dense` (and run scripts/fetch-models.sh)")
}

/// The transcripts to replay and how to read them.
#[derive(Debug, clap::Args)]
pub struct Data {
    /// Transcript file or folder (every recognized file in it); repeat for several.
    #[arg(long = "dataset", required = true)]
    datasets: Vec<PathBuf>,
    /// Transcript format.
    #[arg(long, value_enum, ignore_case = true, default_value = "auto")]
    format: FormatArg,
    /// Token encoding.
    #[arg(long, value_enum, default_value = "o200k_base")]
    encoding: EncodingArg,
    /// Override a policy knob for every policy: KEY=VALUE (e.g. weights.bm25=0.8); repeatable.
    #[arg(long = "set")]
    pub sets: Vec<Set>,
    #[command(flatten)]
    embeddings: Embeddings,
    /// Replay threads (default: one per core); 1 makes latencies comparable between runs.
    #[arg(long)]
    threads: Option<usize>,
}

impl Data {
    /// The datasets given.
    pub fn datasets(&self) -> &[PathBuf] {
        &self.datasets
    }
    /// The transcript format (`None`: detected).
    pub fn format(&self) -> Option<ctxwin::replay::Format> {
        self.format.format()
    }
    /// The token encoding.
    pub fn encoding(&self) -> ctxwin::Encoding {
        self.encoding.into()
    }
    /// The replay these options ask for (every dataset known to exist, embeddings loaded).
    pub fn replay_config(&self, policies: Vec<(String, Policy)>, budgets: Vec<BudgetSpec>) -> anyhow::Result<CompareConfig> {
        for d in &self.datasets {
            // The OS's reason (missing, a symlink loop, no permission), not a guess.
            if let Err(e) = std::fs::metadata(d) {
                bail!("dataset {}: {e}", d.display());
            }
        }
        let mut cfg = CompareConfig::new(self.datasets.clone(), policies, budgets).encoding(self.encoding.into());
        if let Some(f) = self.format.format() {
            cfg = cfg.format(f);
        }
        if let Some(service) = self.embeddings.load()? {
            cfg = cfg.embeddings(service);
        }
        if let Some(n) = self.threads {
            cfg = cfg.threads(n);
        }
        Ok(cfg)
    }
}

/// Where a comparison's results go besides the terminal table.
#[derive(Debug, clap::Args)]
pub struct Outputs {
    /// Write the runs as JSON (`{"runs": [...]}`) to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the runs as CSV to this file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Draw each dataset's recall against the budget, a line per policy, to this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// Writes `text` to `path`, the error naming the file.
pub fn write(path: &Path, text: impl AsRef<[u8]>) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_once_into_types() {
        assert_eq!("ctxwin, rag,,".parse::<PolicyList>(), Ok(PolicyList(vec![PolicySpec::Preset("ctxwin".into()), PolicySpec::Preset("rag".into())])));
        assert!("nope".parse::<PolicyList>().is_err_and(|e| e.starts_with("unknown policy `nope`")));
        assert!("missing.toml".parse::<PolicySpec>().is_err_and(|e| e == "policy file missing.toml does not exist"));
        assert_eq!("10%,2_000".parse::<BudgetList>(), Ok(BudgetList(vec![BudgetSpec::Share(0.1), BudgetSpec::Tokens(2000)])));
        assert!("lots".parse::<BudgetList>().is_err_and(|e| e.starts_with("budget `lots`")));
        assert_eq!("a.b = 1".parse::<Set>(), Ok(Set { key: "a.b".into(), value: "1".into() }));
        assert!("a.b".parse::<Set>().is_err());
        assert_eq!("k=1, 2,".parse::<Param>(), Ok(Param { key: "k".into(), values: vec!["1".into(), "2".into()] }));
        for bad in ["k", "k=", "=1", " =1,2"] {
            assert!(bad.parse::<Param>().is_err_and(|e| e.contains("KEY=V1")), "{bad}");
        }
        assert_eq!("0.5".parse::<CostRatio>(), Ok(CostRatio { dataset: None, ratio: 0.5 }));
        assert_eq!("mini-swe-agent=0.5".parse::<CostRatio>(), Ok(CostRatio { dataset: Some("mini-swe-agent".into()), ratio: 0.5 }));
        for bad in ["0", "x", "=1", "a=-1", "a=inf"] {
            assert!(bad.parse::<CostRatio>().is_err_and(|e| e.contains("NAME=RATIO")), "{bad}");
        }
    }

    #[test]
    fn format_names_and_aliases() {
        let parse = |s: &str| FormatArg::from_str(s, true).map(FormatArg::format);
        assert_eq!(parse("auto"), Ok(None));
        assert_eq!(parse("tau_bench"), Ok(Some(Format::OpenAiChat)));
        assert_eq!(parse("Mini_Swe_Agent"), Ok(Some(Format::MiniSweAgent)));
        assert_eq!(parse("anthropic-messages"), Ok(Some(Format::AnthropicMessages)));
        assert!(parse("csv").is_err());
        // Every format is reachable by its canonical name.
        for f in Format::ALL {
            assert_eq!(parse(f.name()), Ok(Some(f)), "{}", f.name());
        }
    }
}
