//! Engine operation sequences (`ctxwin::testing::Scenario`) with every window invariant checked and
//! each scenario played twice (determinism), every window checked for silent drops too.
//! Prints a running count of the operations played (each scenario's ops, played twice counted once)
//! every 100,000, so a run's log says how many operations it checked.
#![no_main]
use std::sync::atomic::{AtomicU64, Ordering};

use ctxwin::testing::{run_twice, Checks, Scenario};
use libfuzzer_sys::fuzz_target;

static OPS: AtomicU64 = AtomicU64::new(0);
const EVERY: u64 = 100_000;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = Scenario::from_bytes(data) else { return };
    let checks = Checks::ALL;
    if let Err(m) = run_twice(&s, checks) {
        panic!("{m}\n{s:?}");
    }
    let n = s.ops.len() as u64;
    let before = OPS.fetch_add(n, Ordering::Relaxed);
    if (before + n) / EVERY > before / EVERY {
        eprintln!("#ops {}", before + n);
    }
});
