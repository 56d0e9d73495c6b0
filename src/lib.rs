//! ctxwin: token-budgeted context windows, assembled on every turn.
#![deny(missing_docs)]

mod error;
mod pins;
pub mod replay;
mod turn;

pub use error::{Error, Result};
pub use pins::{Pin, PinId, PinLayer};
pub use turn::{normalize, Block, NormalizeReport, Provenance, Role, Turn, TurnId, MISSING_RESULT_TEXT};
mod lexical;
mod refs;
mod tokens;
pub use refs::salient_terms;
pub use tokens::{count_reference, Encoding, TokenCounter, MESSAGE_OVERHEAD, REPLY_PRIMING, TOOL_CALL_OVERHEAD};
mod engine;
mod policy;
mod scorer;
mod selector;
mod store;
mod summarizer;
mod window;
pub use engine::{Assembler, Engine, EngineConfig, SearchHit};
pub use policy::{Policy, Strategy, Weights, PRESETS};
pub use summarizer::{ExtractiveSummarizer, Run, Summarizer};
pub use window::{check_anthropic, check_openai, recount_openai, Fate, Message, Origin, ReportLine, ScoreParts, SummaryInfo, Window};
