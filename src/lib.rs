//! ctxwin decides, on every turn of an LLM conversation or agent session, what goes into the
//! model's context window: `push` each turn, `pin` the instruction layers, and before each model call
//! `assemble` a window that fits an exact token budget — pinned layers, the recent tail, the older
//! spans that matter now, and summaries standing in for what is left out — then render it as OpenAI
//! or Anthropic request messages.
//!
//! ```
//! use ctxwin::{Engine, EngineConfig, PinLayer, Turn, Fate};
//! use serde_json::json;
//!
//! # fn main() -> ctxwin::Result<()> {
//! let mut engine = Engine::new(EngineConfig::default())?; // the `ctxwin` policy, o200k_base
//! engine.pin(PinLayer::System, "You are a careful coding agent.", 0);
//! engine.pin(PinLayer::Task, "Fix the failing parser test.", 0);
//!
//! engine.push(Turn::user("The test parse_expr_nested fails since yesterday."))?;
//! engine.push(Turn::tool_call(None, "call_1", "bash", json!({"command": "cargo test parse_expr"})))?;
//! engine.push(Turn::tool_result("call_1", "test parse_expr_nested ... FAILED\n".repeat(300), true))?;
//! engine.push(Turn::assistant("The nested case overflows the stack; I will make it iterative."))?;
//!
//! let window = engine.assemble(4000)?;           // never over budget, pairs intact
//! assert!(window.total_tokens() <= 4000);
//! let request = window.to_openai();              // or window.to_anthropic()
//! assert_eq!(request[0]["role"], "system");
//! // Every turn's fate is in the report; the long tool output is shown head + tail.
//! assert!(window.report().iter().any(|line| line.fate == Fate::Truncated));
//! // And anything left out can be recalled from the store.
//! assert_eq!(engine.search("nested FAILED", 1)?[0].turn_id, 2);
//! # Ok(())
//! # }
//! ```
//!
//! `ctxbench` (in `bin/`) replays real transcripts through the engine and the peers' policies (see
//! [`replay`]).
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod dense;
mod engine;
mod error;
mod generated;
mod lexical;
mod markers;
mod message;
mod pins;
mod plan;
mod policy;
mod refs;
#[cfg(feature = "replay")]
pub mod replay;
mod retrieval;
mod scorer;
#[cfg(feature = "serve")]
pub mod serve;
/// Durable sessions: SQLite by default, PostgreSQL with the `postgres` feature.
pub mod session;
mod store;
mod summarizer;
#[cfg(feature = "testing")]
pub mod testing;
mod text;
mod tokens;
mod turn;
mod window;

#[cfg(feature = "dense")]
pub use dense::FastEmbedder;
pub use dense::{CacheStats, DiskCacheStatus, Embedder, EmbeddingCache, EmbeddingService, VectorIndex};
pub use engine::{Engine, EngineConfig, SearchHit};
pub use error::{Error, Result};
#[cfg(feature = "local-llm")]
pub use generated::LocalModelServer;
pub use generated::{EndpointConfig, GeneratedConfig, GenerationStats, SummaryService};
pub use message::{Message, Origin, ToolCallOut};
pub use pins::{Pin, PinId, PinLayer};
pub use plan::{PlanState, Request};
pub use policy::{Fusion, PRESETS, Policy, Preset, Strategy, Weights};
pub use refs::salient_terms;
pub use scorer::{ScoreParts, Sources};
#[cfg(feature = "sqlite")]
pub use session::{Session, SessionStore, Sessions, SessionsConfig, StoreSpec};
pub use summarizer::{ExtractiveSummarizer, Run, RunTurn, Summarizer, Summary};
pub use tokens::{Encoding, MESSAGE_OVERHEAD, REPLY_PRIMING, TOOL_CALL_OVERHEAD, TokenCounter, count_reference};
pub use turn::{Block, MAX_ARGUMENT_DEPTH, MISSING_RESULT_TEXT, NormalizeReport, PairProblem, Provenance, Role, Turn, TurnId, normalize};
pub use window::anthropic::check_anthropic;
pub use window::openai::{check_openai, recount_openai};
pub use window::{Api, Fate, Problem, ReportLine, RequestError, SummaryInfo, SummarySource, Window};
