//! Every window of every agent replay is API-valid in both renderings, within budget, and (on a
//! sample of windows) its total equals a from-scratch tiktoken recount of the OpenAI rendering.

use std::path::Path;

use ctxwin::replay::loaders::load_path;
use ctxwin::replay::{BudgetSpec, for_each_window};
use ctxwin::{Encoding, Error, PRESETS, Policy, check_anthropic, check_openai, recount_openai};

fn check_dataset(path: &Path, budgets: &[BudgetSpec], max_transcripts: usize) {
    let ts = match load_path(path, None) {
        Ok(t) => t,
        Err(e) => panic!("{}: {e}", path.display()),
    };
    let mut windows = 0usize;
    for t in ts.iter().take(max_transcripts) {
        for preset in PRESETS {
            let policy = match Policy::preset(preset) {
                Ok(p) => p,
                Err(e) => panic!("{e}"),
            };
            for &b in budgets {
                let r = for_each_window(t, &policy, b, Encoding::O200kBase, |i, w| {
                    let w = match w {
                        Ok(w) => w,
                        Err(Error::BudgetBelowPins { .. }) => return,
                        Err(e) => panic!("{} turn {i}: {e}", t.id()),
                    };
                    windows += 1;
                    let openai = w.to_openai();
                    let at = format!("{} {preset} {b:?} before turn {i}", t.id());
                    assert_eq!(check_openai(&openai), Ok(()), "{at}");
                    assert_eq!(check_anthropic(&w.to_anthropic()), Ok(()), "{at}");
                    assert!(w.total_tokens() <= w.budget(), "{at}: {} > {}", w.total_tokens(), w.budget());
                    if windows.is_multiple_of(23) {
                        assert_eq!(recount_openai(&openai, w.encoding()).ok(), Some(w.total_tokens()), "{at}");
                    }
                });
                if let Err(e) = r {
                    panic!("{}: {e}", t.id());
                }
            }
        }
    }
    assert!(windows > 0, "{}: no windows", path.display());
}

use super::shared;

const SHARES: &[BudgetSpec] = &[BudgetSpec::Share(0.1), BudgetSpec::Share(0.25), BudgetSpec::Share(0.5)];

#[test]
fn mini_swe_agent_windows_are_valid() {
    if let Some(p) = shared("mini-swe-agent") {
        check_dataset(&p, SHARES, usize::MAX);
    }
}

#[test]
fn tau_bench_windows_are_valid() {
    if let Some(p) = shared("tau-bench") {
        check_dataset(&p, SHARES, 60);
    }
}

#[test]
fn swe_agent_and_aider_windows_are_valid() {
    for d in ["swe-agent", "aider"] {
        if let Some(p) = shared(d) {
            check_dataset(&p, SHARES, usize::MAX);
        }
    }
}

#[test]
fn shipped_sample_windows_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/samples");
    for f in ["claude-code-long.jsonl", "claude-code-session.jsonl", "anthropic-messages.json", "openai-chat.json"] {
        check_dataset(&dir.join(f), &[BudgetSpec::Share(0.1), BudgetSpec::Share(0.5), BudgetSpec::Tokens(1500)], usize::MAX);
    }
}
