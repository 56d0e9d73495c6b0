//! The MiniSweAgent loader: any bytes give transcripts or a typed error (`Malformed` naming the file), never
//! a panic; each transcript normalizes into turns `Engine::push` accepts.
#![no_main]
use ctxwin::replay::Format;
use ctxwin::testing::check_loader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(m) = check_loader(data, Format::MiniSweAgent, "json") {
        panic!("{m}");
    }
});
