//! A transcript replayed through a durable session (what `ctxbench compare --store` runs, and the
//! reopen tests): pins, then turn by turn, a per-turn window before each assistant turn.

use std::sync::Arc;
use std::time::Instant;

use super::{Session, SessionStore};
use crate::engine::EngineConfig;
use crate::error::Result;
use crate::policy::Policy;
use crate::replay::{BudgetSpec, Percentiles, Transcript};
use crate::tokens::Encoding;
use crate::turn::Role;
use crate::window::Window;

/// Timings of a durable replay, microseconds per call.
#[derive(Debug, Clone, Default)]
pub struct DurableReplay {
    /// Each `push`.
    pub push_us: Vec<f64>,
    /// Each `assemble`.
    pub assemble_us: Vec<f64>,
    /// Each reopen.
    pub reopen_us: Vec<f64>,
}

/// Replays `t` into new session `id` of `store` with `policy` at `budget`, as
/// [`crate::replay::for_each_window`] does in memory: pins, then before each assistant turn (but
/// the first turn) `visit(turn_index, window)`, then the push. When `reopen_at` is given, the
/// session is dropped and reopened from the store before turn `reopen_at`.
#[allow(clippy::too_many_arguments)]
pub fn replay_durable(
    t: &Transcript,
    store: &Arc<dyn SessionStore>,
    id: &str,
    policy: &Policy,
    budget: usize,
    encoding: Encoding,
    reopen_at: Option<usize>,
    mut visit: impl FnMut(usize, Result<&Window>),
) -> Result<DurableReplay> {
    let config = || EngineConfig::default().encoding(encoding).policy(policy.clone());
    let mut s = Session::create(Arc::clone(store), id, config())?;
    for (layer, text) in t.pins() {
        s.pin(*layer, text.clone(), 0)?;
    }
    let mut times = DurableReplay::default();
    for (i, turn) in t.turns().iter().enumerate() {
        if Some(i) == reopen_at {
            drop(s);
            let start = Instant::now();
            s = Session::open(Arc::clone(store), id, config())?;
            times.reopen_us.push(start.elapsed().as_secs_f64() * 1e6);
        }
        if i > 0 && turn.role() == Role::Assistant {
            let start = Instant::now();
            let w = s.assemble(budget);
            times.assemble_us.push(start.elapsed().as_secs_f64() * 1e6);
            match w {
                Ok(w) => visit(i, Ok(&w)),
                Err(e @ crate::Error::BudgetBelowPins { .. }) => visit(i, Err(e)),
                Err(e) => return Err(e),
            }
        }
        let start = Instant::now();
        s.push(turn.clone())?;
        times.push_us.push(start.elapsed().as_secs_f64() * 1e6);
    }
    Ok(times)
}

/// The durable path's cost on one dataset × policy × budget (what `ctxbench compare --store`
/// reports next to the recall tables).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DurableCost {
    /// The dataset (file or folder name).
    pub dataset: String,
    /// The policy's name.
    pub policy: String,
    /// The budget as given (`2000` or `"10%"`).
    pub budget: serde_json::Value,
    /// Transcripts replayed.
    pub transcripts: usize,
    /// Durable `push`, µs.
    pub push_us: Percentiles,
    /// `assemble` through the session, µs.
    pub assemble_us: Percentiles,
    /// Reopening each session halfway, µs.
    pub reopen_us: Percentiles,
    /// Windows compared with the uninterrupted in-memory replay.
    pub windows: usize,
    /// Windows that differed from it (messages, tokens or report): 0 expected.
    pub differing: usize,
}

/// Replays every transcript of `datasets` with every policy at every budget through new sessions
/// of `store` (reopened halfway), timing push, assemble and reopen, and checks each window
/// against the in-memory replay. Sessions are named `{prefix}-{n}`.
pub fn compare_durable(
    datasets: &[std::path::PathBuf],
    format: Option<crate::replay::Format>,
    policies: &[(String, Policy)],
    budgets: &[BudgetSpec],
    encoding: Encoding,
    store: &Arc<dyn SessionStore>,
    prefix: &str,
) -> Result<Vec<DurableCost>> {
    let mut out = Vec::new();
    let mut n = 0;
    for path in datasets {
        let transcripts = crate::replay::loaders::load_path(path, format)?;
        let dataset = path.file_name().and_then(|f| f.to_str()).unwrap_or("dataset").to_string();
        for (name, policy) in policies {
            for spec in budgets {
                let mut times = DurableReplay::default();
                let (mut windows, mut differing) = (0, 0);
                for t in &transcripts {
                    let budget = resolve(spec, t, encoding)?;
                    let mut want = Vec::new();
                    crate::replay::for_each_window(t, policy, BudgetSpec::Tokens(budget), encoding, |i, w| want.push((i, w.ok().cloned())))?;
                    let mut k = 0;
                    n += 1;
                    let half = Some(t.turns().len() / 2);
                    let r = replay_durable(t, store, &format!("{prefix}-{n}"), policy, budget, encoding, half, |i, w| {
                        let same = want.get(k).is_some_and(|(j, b)| *j == i && same_window(w.ok(), b.as_ref()));
                        windows += 1;
                        differing += usize::from(!same);
                        k += 1;
                    })?;
                    times.push_us.extend(r.push_us);
                    times.assemble_us.extend(r.assemble_us);
                    times.reopen_us.extend(r.reopen_us);
                }
                out.push(DurableCost {
                    dataset: dataset.clone(),
                    policy: name.clone(),
                    budget: spec.label(),
                    transcripts: transcripts.len(),
                    push_us: Percentiles::of(&mut times.push_us),
                    assemble_us: Percentiles::of(&mut times.assemble_us),
                    reopen_us: Percentiles::of(&mut times.reopen_us),
                    windows,
                    differing,
                });
            }
        }
    }
    Ok(out)
}

fn same_window(a: Option<&Window>, b: Option<&Window>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.messages() == b.messages() && a.total_tokens() == b.total_tokens() && a.report() == b.report(),
        (None, None) => true,
        _ => false,
    }
}

/// A budget for `t`, as the in-memory replay resolves it (pins + framing + a share of history).
fn resolve(spec: &BudgetSpec, t: &Transcript, encoding: Encoding) -> Result<usize> {
    let mut e = crate::replay::engine_for(t, encoding, None, None)?;
    let (pins, history) = crate::replay::budget_basis(t, &mut e);
    Ok(spec.resolve(pins, history))
}
