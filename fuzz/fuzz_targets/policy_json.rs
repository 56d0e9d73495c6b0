//! Policy parsing from json: any bytes give a policy or a typed `Error::Policy`, never a panic; a
//! parsed policy round-trips through `to_toml`.
#![no_main]
use ctxwin::testing::check_policy_text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(m) = check_policy_text(data, "json") {
        panic!("{m}");
    }
});
