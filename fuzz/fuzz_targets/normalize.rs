//! `normalize` over arbitrary turns (any role, calls and results with colliding ids, text): the
//! output is accepted by `Engine::push` turn by turn, and normalizing it again changes nothing.
#![no_main]
use ctxwin::testing::{check_normalize, raw_turns};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(turns) = raw_turns(data) else { return };
    if let Err(m) = check_normalize(turns.clone()) {
        panic!("{m}\n{turns:?}");
    }
});
