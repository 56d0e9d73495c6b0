//! Replays every input kept under tests/fuzz-regressions/<target>/ (crashes found by
//! `scripts/fuzz.sh`) through the check of its fuzz target, so a fixed crash stays fixed without
//! nightly.

use std::path::Path;

use ctxwin::replay::Format;
use ctxwin::testing::{Checks, Scenario, check_loader, check_normalize, check_policy_text, raw_turns, run_twice};

fn replay(target: &str, data: &[u8]) -> Result<(), String> {
    let loader = |f: Format, ext: &str| check_loader(data, f, ext);
    match target {
        "engine_ops" => Scenario::from_bytes(data).map_or(Ok(()), |s| run_twice(&s, Checks::ALL)),
        "normalize" => raw_turns(data).map_or(Ok(()), check_normalize),
        "policy_toml" => check_policy_text(data, "toml"),
        "policy_json" => check_policy_text(data, "json"),
        "load_locomo" => loader(Format::Locomo, "json"),
        "load_longmemeval" => loader(Format::LongMemEval, "json"),
        "load_openai_chat" => loader(Format::OpenAiChat, "json"),
        "load_mini_swe_agent" => loader(Format::MiniSweAgent, "json"),
        "load_claude_code" => loader(Format::ClaudeCode, "jsonl"),
        "load_anthropic" => loader(Format::AnthropicMessages, "json"),
        "load_aider" => loader(Format::Aider, "md"),
        other => Err(format!("no fuzz target named {other}")),
    }
}

#[test]
fn every_kept_crash_input_passes_its_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut failures = Vec::new();
    let mut n = 0;
    for dir in std::fs::read_dir(&root).unwrap().flatten().filter(|d| d.path().is_dir()) {
        let target = dir.file_name().to_string_lossy().to_string();
        for f in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let data = std::fs::read(f.path()).unwrap();
            n += 1;
            let r = std::panic::catch_unwind(|| replay(&target, &data)).unwrap_or_else(|_| Err("panicked".into()));
            if let Err(m) = r {
                failures.push(format!("{}: {m}", f.path().display()));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {n} kept inputs fail:\n{}", failures.len(), failures.join("\n"));
}
