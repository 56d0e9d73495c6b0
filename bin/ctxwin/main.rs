//! `ctxwin`: the engine as a program. `ctxwin serve` runs the HTTP service over durable sessions
//! (see `ctxwin::serve` and the README's "Service" section).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use ctxwin::StoreSpec;
use ctxwin::serve::{ServeConfig, Server};

#[derive(Parser, Debug)]
#[command(name = "ctxwin", version, about = "Token-budgeted context windows for LLM agents, as a service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serves the JSON API (routes in /openapi.json) until SIGTERM or ctrl-c, then finishes the
    /// requests in flight.
    Serve(ServeArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Address to listen on (loopback by default; port 0 picks a free port and prints it).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Where sessions are kept: sqlite:PATH or postgres://user@host:port/db.
    #[arg(long, default_value = "sqlite:sessions.db")]
    store: String,
    /// Bearer token required on /v1 and /metrics (or the CTXWIN_TOKEN environment variable).
    #[arg(long)]
    token: Option<String>,
    /// Largest request body, bytes.
    #[arg(long, default_value_t = 8 << 20)]
    max_body_bytes: usize,
    /// Largest single message (turn), bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_turn_bytes: usize,
    /// Seconds a request may take before it is answered 408.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// Engine and store calls running at once on the blocking pool (default: 4 per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Sessions kept open in memory at most.
    #[arg(long, default_value_t = 200)]
    max_hot: usize,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ctxwin: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers = args.workers.map_or_else(|| ServeConfig::default().workers, |w| w.max(1));
    // Before the store starts its checkpoint thread.
    limit_malloc_arenas(cores + workers + 1);
    let spec = StoreSpec::parse(&args.store)?;
    let Some(store) = spec.open()? else {
        bail!("--store memory keeps nothing; use sqlite:PATH or postgres://…");
    };
    let mut config = ServeConfig {
        token: args.token.or_else(|| std::env::var("CTXWIN_TOKEN").ok()).filter(|t| !t.is_empty()),
        max_body_bytes: args.max_body_bytes,
        max_turn_bytes: args.max_turn_bytes,
        timeout: Duration::from_secs(args.timeout_secs.max(1)),
        ..ServeConfig::default()
    };
    config.workers = workers;
    config.sessions.max_hot = args.max_hot.max(1);
    // The blocking pool runs at most `workers` engine and store calls at once (a semaphore), so
    // `workers` threads and one spare (the flush at shutdown) serve it. Left to tokio's default
    // (up to 512, a new thread whenever none is idle at the instant of the hand-off) it grew to 16
    // threads for 4 permits, each filling its own token and word memos.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .max_blocking_threads(config.workers + 1)
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let name = store.name().to_string();
        let server = Server::bind(args.addr, store, config).await?;
        let addr = server.local_addr().map_or_else(|| args.addr.to_string(), |a| a.to_string());
        // Tests and scripts read this line to learn the port.
        println!("ctxwin serve: listening on http://{addr} (store {name})");
        server.run(shutdown_signal()).await?;
        eprintln!("ctxwin serve: stopped; requests in flight finished");
        Ok(())
    })
}

/// Caps glibc's malloc at one arena per thread that allocates (`threads`: the async workers and
/// the blocking pool), unless `MALLOC_ARENA_MAX` says otherwise. Each arena keeps the high-water
/// mark of the threads that used it: with glibc's default (up to 8 per core) and tokio's unbounded
/// blocking pool (21 threads) the resident memory of a 12-minute `serve_load` run (64 clients,
/// 2 cores) grew 255 → 285 MB from minute 4 on. One arena per core held it flat, but 8 threads
/// then shared 2 arenas: with the pool bounded (see `serve`), one arena per thread cost 10% less
/// server CPU per turn than one per core (843–877 µs against 943–966 µs, 1,696–1,756 windows/s
/// against 1,530–1,562, alternating 40-s runs).
fn limit_malloc_arenas(threads: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt sets one of the allocator's parameters; it is called before the server
        // starts any thread, and an arena cap only changes where later allocations are served.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, threads.clamp(1, 256) as libc::c_int);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = threads;
}

/// Completes on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
