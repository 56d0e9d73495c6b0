//! `ctxwin serve`: the engine as an HTTP service over durable sessions (feature `serve`).
//!
//! An agent written in any language calls it before every model call: it appends the turns it
//! holds (OpenAI, Anthropic or ctxwin shape), sets its instruction pins, and asks for a window
//! that it sends to the model as the request body. The routes are in [`router`] and in the OpenAPI
//! document [`OPENAPI`] (served at `/openapi.json`). Sessions live in a [`SessionStore`] (SQLite by
//! default, PostgreSQL with `postgres://…`) behind [`Sessions`]: every acknowledged turn was
//! stored before the reply. The engine's work (push, assemble, search) and the store's I/O run on
//! tokio's blocking pool, at most [`ServeConfig::workers`] at a time, except a window on a hot
//! session of a SQLite store, which runs on the async worker (see [`AppState::run`]).

mod api;
mod error;
pub mod ingest;
mod metrics;
mod window;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tokio::sync::Semaphore;
use tower_http::timeout::TimeoutLayer;

pub use error::ApiError;
pub use metrics::Metrics;

use crate::engine::EngineConfig;
use crate::error::{Error, Result};
use crate::session::{SessionStore, Sessions, SessionsConfig};

/// The OpenAPI 3 document of the API (checked in as `src/serve/openapi.json`).
pub const OPENAPI: &str = include_str!("openapi.json");

/// How a server runs. Build it with [`ServeConfig::default`] and set fields.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Bearer token every `/v1` and `/metrics` request must carry (`None`: no authentication).
    pub token: Option<String>,
    /// Largest request body, bytes (413 beyond; default 8 MiB).
    pub max_body_bytes: usize,
    /// Largest message (one turn's JSON), bytes (413 naming the message; default 1 MiB).
    pub max_turn_bytes: usize,
    /// Most messages in one turns request (413 beyond; default 1,000).
    pub max_messages: usize,
    /// Time a request may take before it is answered 408 (default 30 s).
    pub timeout: Duration,
    /// Engine calls (push, assemble, search) and store calls running at once on the blocking pool
    /// (default: 4 per core; windows run inline on the async workers do not count).
    pub workers: usize,
    /// Bounds of the hot sessions kept in memory.
    pub sessions: SessionsConfig,
    /// The engine configuration of every session (the stored policy wins).
    pub engine: EngineConfig,
}

impl Default for ServeConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        ServeConfig {
            token: None,
            max_body_bytes: 8 << 20,
            max_turn_bytes: 1 << 20,
            max_messages: 1000,
            timeout: Duration::from_secs(30),
            workers: 4 * cores,
            sessions: SessionsConfig::default(),
            engine: EngineConfig::default(),
        }
    }
}

/// What the handlers share.
pub(crate) struct AppState {
    pub(crate) sessions: Sessions,
    pub(crate) config: ServeConfig,
    pub(crate) metrics: Metrics,
    workers: Arc<Semaphore>,
    draining: AtomicBool,
}

impl AppState {
    /// Runs `f` on the blocking pool (at most `workers` at once); counts store failures.
    pub(crate) async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&AppState) -> std::result::Result<T, ApiError> + Send + 'static,
    ) -> std::result::Result<T, ApiError> {
        self.run(false, f).await
    }

    /// Runs `f` like [`AppState::blocking`], but on the async worker itself when `inline` and the
    /// store allows it (SQLite; [`crate::session::SessionStore::runs_on_async_workers`]): a window
    /// on a hot session (~0.1 ms of CPU, no store write) costs less than the hand-off to the
    /// blocking pool and back (server CPU per window 619–791 µs inline against 808–896 µs handed
    /// off, `serve_load` at load 4–6, alternating runs). Appends stay on the pool: one may
    /// checkpoint the WAL (copying up to 64 MB and syncing), which must not hold up a worker's other
    /// connections; inlining them too changed nothing measurable (2,010 / 1,906 windows/s against
    /// 1,892 / 1,988, alternating, load 2.2–2.4).
    pub(crate) async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        inline: bool,
        f: impl FnOnce(&AppState) -> std::result::Result<T, ApiError> + Send + 'static,
    ) -> std::result::Result<T, ApiError> {
        // Inline work needs no permit: the async workers bound it already, and a window must not
        // wait behind appends queued for the pool (it did: ~20 ms at the p99 under load).
        if inline && self.sessions.store().runs_on_async_workers() {
            return self.counted(f(self));
        }
        let permit = Arc::clone(&self.workers).acquire_owned().await.map_err(|_| ApiError::unavailable("the server is shutting down"))?;
        let state = Arc::clone(self);
        let r = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&state)
        })
        .await
        .map_err(|e| ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, code: "internal", field: None, message: format!("worker failed: {e}") })?;
        self.counted(r)
    }

    /// Counts a store failure in the metrics.
    fn counted<T>(&self, r: std::result::Result<T, ApiError>) -> std::result::Result<T, ApiError> {
        if let Err(e) = &r
            && e.is_store_error()
        {
            self.metrics.store_error();
        }
        r
    }
}

/// The API's routes over `store`, with authentication, limits, timeouts and metrics.
pub fn router(store: Arc<dyn SessionStore>, config: ServeConfig) -> Router {
    router_with(state(store, config))
}

fn state(store: Arc<dyn SessionStore>, config: ServeConfig) -> Arc<AppState> {
    let sessions = Sessions::new(store, config.engine.clone(), config.sessions);
    let workers = Arc::new(Semaphore::new(config.workers.max(1)));
    Arc::new(AppState { sessions, config, metrics: Metrics::default(), workers, draining: AtomicBool::new(false) })
}

fn router_with(state: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .route("/v1/sessions", get(api::list_sessions))
        .route("/v1/sessions/{id}", get(api::get_session).delete(api::delete_session))
        .route("/v1/sessions/{id}/turns", post(api::post_turns))
        .route("/v1/sessions/{id}/pins/{layer}", put(api::put_pin).delete(api::delete_pin))
        .route("/v1/sessions/{id}/window", post(window::post_window))
        .route("/v1/sessions/{id}/search", get(api::search))
        .route("/metrics", get(api::metrics))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), authenticate));
    Router::new()
        .merge(v1)
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/openapi.json", get(api::openapi))
        .fallback(api::not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), measure))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, state.config.timeout))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

/// Refuses a request without the configured bearer token (401).
async fn authenticate(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(token) = &state.config.token {
        let given = req.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Counts the request and its latency under its route template.
async fn measure(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let method = req.method().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    state.metrics.request(&route, &method, resp.status().as_u16(), start.elapsed().as_secs_f64());
    resp
}

/// A server bound to an address, ready to run.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.listener.local_addr().ok()).finish()
    }
}

impl Server {
    /// Binds `addr` (port 0: any free port) and prepares to serve `store`.
    pub async fn bind(addr: SocketAddr, store: Arc<dyn SessionStore>, config: ServeConfig) -> Result<Server> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| Error::io(format!("listen {addr}"), e))?;
        Ok(Server { listener, state: state(store, config) })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` completes, then stops accepting, finishes the requests in flight
    /// (every turn they acknowledge is already stored), stores what the hot sessions' windows
    /// derived (plan states, summaries; see [`crate::session::Derived`]) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let addr = self.local_addr().map_or_else(|| "listener".to_string(), |a| format!("serve {a}"));
        let state = Arc::clone(&self.state);
        let signal = async move {
            shutdown.await;
            state.draining.store(true, Ordering::SeqCst);
        };
        // Replies go out at once (no Nagle wait for the ACK of the previous one): an agent waits
        // on every window. A socket that refuses the option is served as it is.
        let listener = axum::serve::ListenerExt::tap_io(self.listener, |tcp: &mut tokio::net::TcpStream| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, router_with(Arc::clone(&self.state))).with_graceful_shutdown(signal).await.map_err(|e| Error::io(addr, e))?;
        let sessions = Arc::clone(&self.state);
        tokio::task::spawn_blocking(move || sessions.sessions.flush_all()).await.map_err(|e| Error::Store {
            store: "serve".into(),
            session: None,
            message: format!("flush at shutdown failed: {e}"),
        })??;
        Ok(())
    }
}

impl AppState {
    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}
