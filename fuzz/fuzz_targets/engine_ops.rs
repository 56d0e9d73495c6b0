//! Engine operation sequences (`ctxwin::testing::Scenario`) with every window invariant checked and
//! each scenario played twice (determinism), every window checked for silent drops too.
#![no_main]
use ctxwin::testing::{run_twice, Checks, Scenario};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = Scenario::from_bytes(data) else { return };
    let checks = Checks::ALL;
    if let Err(m) = run_twice(&s, checks) {
        panic!("{m}\n{s:?}");
    }
});
