//! `--summarizer` for `compare` (extractive, an OpenAI-compatible endpoint, or the local model),
//! and `ctxbench summarizer-server` (feature `local-llm`): the local model on loopback.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ctxwin::replay::GeneratedReplay;
use ctxwin::{EndpointConfig, GeneratedConfig, SummaryService};

/// The pinned local model (scripts/fetch-models.sh).
const LOCAL_MODEL: &str = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// `--summarizer`: which summarizer writes the summaries of left-out runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// The extractive summarizer (no model).
    Extractive,
    /// An OpenAI-compatible endpoint at this base URL (e.g. `http://127.0.0.1:8080/v1`).
    Endpoint(String),
    /// The local model (feature `local-llm`), served on loopback for the run.
    Local,
}

impl FromStr for Which {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "extractive" => Ok(Which::Extractive),
            "local" => Ok(Which::Local),
            _ => match s.strip_prefix("endpoint:") {
                Some(url) if url.starts_with("http://") || url.starts_with("https://") => Ok(Which::Endpoint(url.to_string())),
                _ => Err(format!("--summarizer {s}: expected extractive, endpoint:http://HOST:PORT/v1 or local")),
            },
        }
    }
}

/// Summarizer options.
#[derive(Debug, clap::Args)]
pub struct SummarizerArgs {
    /// extractive | endpoint:URL (OpenAI-compatible, e.g. endpoint:http://127.0.0.1:8080/v1) | local
    #[arg(long, default_value = "extractive")]
    summarizer: Which,
    /// Model name sent to the endpoint.
    #[arg(long, default_value = "default")]
    summary_model: String,
    /// Environment variable holding the endpoint's API key.
    #[arg(long)]
    summary_api_key_env: Option<String>,
    /// The local model file (`--summarizer local`).
    #[arg(long, default_value = LOCAL_MODEL)]
    local_model: PathBuf,
    /// File of generated summaries kept across replays (append-only).
    #[arg(long, default_value = "ctxbench-summaries.bin")]
    summary_cache: PathBuf,
    /// Seconds a probe waits in all for the summaries its windows ask for (untimed windows are built
    /// until one has nothing pending, at most 16; 0: never; windows are then what a host sees while
    /// the model is still writing).
    #[arg(long, default_value_t = 600.0)]
    summary_wait: f64,
    /// Seconds before one request to the endpoint times out.
    #[arg(long, default_value_t = 120.0)]
    summary_timeout: f64,
    /// Guard: most unsupported terms a generated summary may mention.
    #[arg(long, default_value_t = 3)]
    summary_max_unsupported: usize,
}

/// What `--summarizer` started: the replay's summaries and, for `local`, the server to keep alive.
pub struct Loaded {
    /// The generated summaries, if any.
    pub generated: Option<GeneratedReplay>,
    #[cfg(feature = "local-llm")]
    _server: Option<ctxwin::LocalModelServer>,
}

impl SummarizerArgs {
    /// Starts what the options ask for.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        #[cfg(feature = "local-llm")]
        let mut server = None;
        let endpoint = match &self.summarizer {
            Which::Extractive => None,
            Which::Endpoint(url) => Some(EndpointConfig::new(url.clone(), self.summary_model.clone())),
            Which::Local => Some(self.local(
                #[cfg(feature = "local-llm")]
                &mut server,
            )?),
        };
        let generated = match endpoint {
            None => None,
            Some(mut ep) => {
                ep = ep.timeout(Duration::from_secs_f64(self.summary_timeout.max(0.001)));
                if let Some(var) = &self.summary_api_key_env {
                    ep = ep.api_key_env(var.clone());
                }
                let cfg = GeneratedConfig::new(ep).cache_file(&self.summary_cache).max_unsupported(self.summary_max_unsupported);
                let service: Arc<SummaryService> = SummaryService::start(cfg).with_context(|| format!("summary cache {}", self.summary_cache.display()))?;
                eprintln!("ctxbench: generated summaries; {} cached in {}", service.stats().loaded, self.summary_cache.display());
                Some(GeneratedReplay::new(service, Duration::from_secs_f64(self.summary_wait.max(0.0))))
            }
        };
        Ok(Loaded {
            generated,
            #[cfg(feature = "local-llm")]
            _server: server,
        })
    }

    #[cfg(feature = "local-llm")]
    fn local(&self, server: &mut Option<ctxwin::LocalModelServer>) -> anyhow::Result<EndpointConfig> {
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let s = ctxwin::LocalModelServer::start(&self.local_model, 0, threads)?;
        eprintln!("ctxbench: local model {} at {}", self.local_model.display(), s.base_url());
        let ep = EndpointConfig::new(s.base_url(), s.model_name());
        *server = Some(s);
        Ok(ep)
    }

    #[cfg(not(feature = "local-llm"))]
    fn local(&self) -> anyhow::Result<EndpointConfig> {
        anyhow::bail!("--summarizer local needs a ctxbench built with `--features local-llm` (and scripts/fetch-models.sh)")
    }
}

/// Options of `summarizer-server`.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// The GGUF model file.
    #[arg(long, default_value = LOCAL_MODEL)]
    model: PathBuf,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Threads for the model.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// Serves the local model until the process is stopped.
#[cfg(feature = "local-llm")]
pub fn serve(a: &ServerArgs) -> anyhow::Result<std::process::ExitCode> {
    let server = ctxwin::LocalModelServer::start(&a.model, a.port, a.threads)?;
    println!("{}", server.base_url());
    loop {
        std::thread::park();
    }
}

/// Without the `local-llm` feature there is no local model to serve.
#[cfg(not(feature = "local-llm"))]
pub fn serve(a: &ServerArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("summarizer-server {}: this ctxbench was built without `--features local-llm`", a.model.display())
}
