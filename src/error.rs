//! The library's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in ctxwin, with variants a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pinned layers plus the window's fixed framing — and, with any history, one marker saying
    /// the history is left out (a window never drops turns silently) — do not fit the budget.
    #[error("budget of {budget} tokens is too small: pinned layers and framing need {needed} tokens ({shortfall} short)")]
    BudgetBelowPins {
        /// The budget that was asked for.
        budget: usize,
        /// Tokens the pins and framing (and with history, the smallest marker) need on their own.
        needed: usize,
        /// `needed - budget`.
        shortfall: usize,
    },
    /// A transcript file could not be parsed.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What was wrong.
        message: String,
    },
    /// A policy file or value is invalid.
    #[error("invalid policy{}: {message}", source_name.as_ref().map(|s| format!(" in {s}")).unwrap_or_default())]
    Policy {
        /// The file (or preset) the policy came from, when known.
        source_name: Option<String>,
        /// What was wrong, naming the field.
        message: String,
    },
    /// A chart of a compare could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
    /// A turn handed to `push` breaks the turn model (e.g. a duplicate tool call id).
    #[error("invalid turn: {0}")]
    InvalidTurn(String),
    /// A turn handed to `push` cannot be rendered with every tool call answered right after it:
    /// `call_id` names the call, `problem` says what is wrong. Nothing was stored.
    #[error("invalid turn {turn}: tool call `{call_id}`: {problem}")]
    ToolPair {
        /// The id the turn would have had.
        turn: usize,
        /// The call (or the result's call) at fault.
        call_id: String,
        /// What is wrong.
        problem: crate::turn::PairProblem,
    },
    /// A user-given path is not acceptable.
    #[error("invalid path {}: {message}", path.display())]
    InvalidPath {
        /// The path.
        path: PathBuf,
        /// Why it was refused.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The full-text index failed.
    #[error("lexical index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// A dataset has no transcript (or a transcript no QA item) at the index asked for.
    #[error("{}: no {what} {index} (it has {count})", path.display())]
    NoSuchItem {
        /// The dataset.
        path: PathBuf,
        /// What was asked for: `transcript` or `question`.
        what: &'static str,
        /// The 0-based index asked for.
        index: usize,
        /// How many there are.
        count: usize,
    },
    /// The replay's worker threads could not be started.
    #[error("cannot start replay threads: {0}")]
    ThreadPool(String),
    /// A rendered request is not what the provider's API accepts (see [`crate::check_openai`]).
    #[error(transparent)]
    InvalidRequest(#[from] crate::window::RequestError),
    /// The dense embedding backend failed or is unavailable.
    #[error("embeddings: {0}")]
    Embeddings(String),
    /// A summary endpoint failed (after its retries). The generated summarizer never lets this
    /// reach `assemble`: the run is summarized extractively and the failure counted.
    #[error("summary endpoint {url}: {message} (after {attempts} attempt(s))")]
    Endpoint {
        /// The URL requested.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        message: String,
    },
    /// The local summary model could not be loaded or served (feature `local-llm`).
    #[error("local model {}: {message}", path.display())]
    LocalModel {
        /// The model file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    // --- Durable sessions (src/session/). `store` names the file or the server. ---
    /// A session id is not 1–128 characters of `[A-Za-z0-9._-]`.
    #[error("invalid session id {id:?}: {message}")]
    InvalidSessionId {
        /// The id given.
        id: String,
        /// Why it was refused.
        message: String,
    },
    /// No session with this id exists in the store.
    #[error("session {session:?} does not exist in {store}")]
    UnknownSession {
        /// The session id.
        session: String,
        /// The store (file or server).
        store: String,
    },
    /// The store is damaged or is not a ctxwin session store (a foreign file, a corrupt page or
    /// record). Nothing is written to it.
    #[error("{store} is damaged or not a ctxwin session store{}: {message}", session_suffix(session))]
    StoreDamaged {
        /// The store (file or server).
        store: String,
        /// The session being read, when one was.
        session: Option<String>,
        /// What was found.
        message: String,
    },
    /// Another connection holds the store's write lock longer than the busy timeout. Retry later.
    #[error("{store} is locked by another connection{}", session_suffix(session))]
    StoreLocked {
        /// The store.
        store: String,
        /// The session being written, when one was.
        session: Option<String>,
    },
    /// The disk (or the server's) is full; the failed call stored nothing, everything acknowledged
    /// before it is kept.
    #[error("{store}: disk full{}", session_suffix(session))]
    StoreFull {
        /// The store.
        store: String,
        /// The session being written, when one was.
        session: Option<String>,
    },
    /// The store cannot be written (read-only file, directory or mount).
    #[error("{store} is read-only{}", session_suffix(session))]
    StoreReadOnly {
        /// The store.
        store: String,
        /// The session being written, when one was.
        session: Option<String>,
    },
    /// A session handle's memory no longer matches its log (a write failed after the engine took
    /// the call, or another writer interfered). Reopen the session: its log is intact.
    #[error("session {session:?} in {store} must be reopened: {message}")]
    SessionStale {
        /// The session id.
        session: String,
        /// The store.
        store: String,
        /// The failure that made it stale.
        message: String,
    },
    /// The replay harness could not build what it measures with (an index over a transcript's
    /// terms too large for memory).
    #[error("replay: {0}")]
    Replay(String),
    /// Replaying a transcript failed: the file and the transcript's id, then what failed (a turn
    /// the engine refused, a budget below the pins…).
    #[error("{}: transcript {transcript:?}: {source}", path.display())]
    InTranscript {
        /// The file the transcript came from.
        path: PathBuf,
        /// The transcript's id.
        transcript: String,
        /// What failed.
        source: Box<Error>,
    },
    /// Any other store failure (connection refused or lost, server restart, I/O error).
    #[error("{store}{}: {message}", session_suffix(session))]
    Store {
        /// The store.
        store: String,
        /// The session concerned, when one was.
        session: Option<String>,
        /// The underlying error.
        message: String,
    },
}

fn session_suffix(session: &Option<String>) -> String {
    session.as_ref().map(|s| format!(" (session {s:?})")).unwrap_or_default()
}

/// `Result` with ctxwin's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A `Malformed` error for `path` at `line:column`.
    pub fn malformed(path: impl Into<PathBuf>, line: usize, column: usize, message: impl Into<String>) -> Self {
        Error::Malformed { path: path.into(), line, column, message: message.into() }
    }

    /// A `Malformed` error from a serde_json error (which carries line and column).
    pub fn from_json(path: impl Into<PathBuf>, err: &serde_json::Error) -> Self {
        Error::Malformed { path: path.into(), line: err.line(), column: err.column(), message: err.to_string() }
    }

    /// This error, said of transcript `transcript` of `path` (an error that already names a
    /// file is returned as it is).
    pub fn in_transcript(self, path: &std::path::Path, transcript: &str) -> Self {
        match self {
            e @ (Error::InTranscript { .. } | Error::Malformed { .. } | Error::Io { .. } | Error::InvalidPath { .. } | Error::NoSuchItem { .. }) => e,
            e => Error::InTranscript { path: path.to_path_buf(), transcript: transcript.to_string(), source: Box::new(e) },
        }
    }

    /// An `Io` error for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
