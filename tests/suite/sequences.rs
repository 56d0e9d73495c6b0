//! The adversarial host of `ctxwin::testing` (the same generator and checks as the `engine_ops`
//! fuzz target) as a property test: random push / pin / unpin / assemble / search sequences with
//! parallel calls, interleaved and out-of-order results, duplicate and missing call ids, with and
//! without `normalize`, every preset, budgets 0..=usize::MAX; every window checked (recount ≤
//! budget, both API shapes valid, pins first and ordered, a report line per turn, kept turns
//! shown) and every run replayed for determinism. `CTXWIN_SEQUENCES=N` sets the number of
//! sequences (default 10,000). Then the minimized regressions the fuzzing found.

use ctxwin::testing::{Checks, Scenario, check_window, run_twice};
use ctxwin::{Block, Engine, EngineConfig, Error, PairProblem, Policy, Role, Turn, check_anthropic, check_openai};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

fn cases(default: u32) -> u32 {
    std::env::var("CTXWIN_SEQUENCES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn sequences(n: u32, checks: Checks) {
    let mut runner = TestRunner::new(Config { cases: n, failure_persistence: None, ..Config::default() });
    let bytes = prop::collection::vec(any::<u8>(), 0..160);
    let ops = std::cell::Cell::new(0usize);
    let r = runner.run(&bytes, |data| {
        let Ok(s) = Scenario::from_bytes(&data) else { return Ok(()) };
        ops.set(ops.get() + s.ops.len());
        run_twice(&s, checks).map_err(|m| TestCaseError::fail(format!("{m}\n{s:?}")))
    });
    if let Err(e) = r {
        panic!("{e}");
    }
    eprintln!("{n} sequences, {} operations (each played twice), every window checked", ops.get());
}

#[test]
fn adversarial_sequences_keep_every_window_invariant() {
    sequences(cases(10_000), Checks::ALL);
}

fn engine(preset: &str) -> Engine {
    let policy = Policy::preset(preset).unwrap();
    Engine::new(EngineConfig::default().policy(policy)).unwrap()
}

fn call(id: &str) -> Block {
    Block::ToolCall { call_id: id.into(), name: "bash".into(), arguments: json!({"command": "grep -rn parse_expr src"}) }
}

fn result(id: &str, text: &str) -> Block {
    Block::ToolResult { call_id: id.into(), content: text.into(), is_error: false }
}

/// Found by fuzzing: a call closed by the next turn got its synthetic result appended to the last
/// result turn, whose truncated form was cached by an earlier window without it: the next window
/// showed the call unanswered ("tool calls [c2] not answered before a user message").
#[test]
fn a_closed_call_stays_answered_after_its_unit_was_truncated() {
    for preset in ctxwin::PRESETS {
        let mut e = engine(preset);
        e.push(Turn::user("find the parser bug")).unwrap();
        e.push(Turn::new(Role::Assistant, vec![call("c1"), call("c2")])).unwrap();
        e.push(Turn::tool_result("c1", "src/parse.rs:12: parse_expr(depth + 1)\n".repeat(400), false)).unwrap();
        for budget in [600, 1500, 3000] {
            let w = e.assemble(budget).unwrap();
            check_window(&w, budget, &[], e.len(), Checks::ALL).unwrap();
        }
        e.push(Turn::user("and now?")).unwrap();
        for budget in [600, 1500, 3000, 100_000] {
            let w = e.assemble(budget).unwrap();
            assert_eq!(check_openai(&w.to_openai()), Ok(()), "{preset} @ {budget}");
            assert_eq!(check_anthropic(&w.to_anthropic()), Ok(()), "{preset} @ {budget}");
        }
    }
}

fn refused(e: &mut Engine, t: Turn) -> (String, PairProblem) {
    let before = e.len();
    match e.push(t) {
        Err(Error::ToolPair { call_id, problem, turn }) => {
            assert_eq!((turn, e.len()), (before, before), "nothing is stored");
            (call_id, problem)
        }
        other => panic!("not refused: {other:?}"),
    }
}

/// What `push` refuses, each with the call id: the shapes the fuzzing found rendering invalid.
#[test]
fn push_refuses_what_cannot_render_valid_naming_the_call() {
    let mut e = engine("ctxwin");
    assert_eq!(refused(&mut e, Turn::new(Role::User, vec![call("u1")])), ("u1".into(), PairProblem::CallOutsideAssistant));
    assert_eq!(refused(&mut e, Turn::new(Role::Assistant, vec![call("d"), call("d")])), ("d".into(), PairProblem::DuplicateCallId));
    e.push(Turn::new(Role::Assistant, vec![call("a"), call("b"), call("c")])).unwrap();
    assert_eq!(refused(&mut e, Turn::new(Role::Tool, vec![result("a", "1"), result("a", "2")])), ("a".into(), PairProblem::ResultWithoutOpenCall));
    assert_eq!(refused(&mut e, Turn::new(Role::Assistant, vec![result("a", "1"), call("z")])), ("z".into(), PairProblem::CallWithResults));
    assert_eq!(refused(&mut e, Turn::new(Role::User, vec![result("a", "1"), Block::text("note")])), ("b".into(), PairProblem::CallLeftOpen));
    e.push(Turn::new(Role::Tool, vec![result("b", "2")])).unwrap();
    // Results answering every open call may carry text after them.
    e.push(Turn::new(Role::User, vec![result("a", "1"), result("c", "3"), Block::text("note")])).unwrap();
    e.push(Turn::assistant("done")).unwrap();
    assert_eq!(refused(&mut e, Turn::tool_result("c", "late", false)), ("c".into(), PairProblem::ResultWithoutOpenCall));
    let w = e.assemble(2000).unwrap();
    check_window(&w, 2000, &[], e.len(), Checks::ALL).unwrap();
}

fn chat(n: usize) -> Vec<Turn> {
    (0..n).map(|i| if i % 2 == 0 { Turn::user(format!("question {i} about the parser")) } else { Turn::assistant(format!("answer {i}: parse_expr")) }).collect()
}

/// Minimized from the fuzzing: `recency` (and `tool-clearing`, same planner) keeps the tail and
/// leaves the older turns out with no marker. Fix in plan/: `plan_recency` reserves the marker
/// bound and pushes `Item::Marker { first_unit: 0, last_unit: first_kept - 1 }` before the tail.
#[test]

fn recency_marks_what_it_leaves_out() {
    for preset in ["recency", "tool-clearing"] {
        let mut e = engine(preset);
        for t in chat(6) {
            e.push(t).unwrap();
        }
        let w = e.assemble(40).unwrap();
        check_window(&w, 40, &[], e.len(), Checks::ALL).unwrap();
    }
}

/// Minimized from the fuzzing: `rag` shows the retrieved units only, with no marker for the gaps.
/// Fix in plan/: in `plan_scored`, the `rag` branch builds gap items like the scored one (markers
/// at least; `marker` must then be `marker_bound()` for rag too, and `sel.reserve(MESSAGE_OVERHEAD)`).
#[test]

fn rag_marks_what_it_leaves_out() {
    let mut e = engine("rag");
    for t in chat(6) {
        e.push(t).unwrap();
    }
    let w = e.assemble_for(60, "question 2").unwrap();
    check_window(&w, 60, &[], e.len(), Checks::ALL).unwrap();
}

/// Minimized from the fuzzing: a few tokens above the pins, `ctxwin` and `compaction` leave turns
/// out with no marker (the fix-up loop in `assemble_inner` pops the marker, and compaction's live
/// tail never had one). Fix in plan/: when the budget left after the pins cannot hold the marker
/// of the leading gap, `assemble` returns a typed error (e.g. `BudgetBelowPins` with `needed` =
/// pins + framing + the marker's message); the fix-up never pops a marker or summary.
#[test]

fn a_budget_just_above_the_pins_marks_or_refuses() {
    for preset in ["ctxwin", "compaction"] {
        for budget in 3..40 {
            let mut e = engine(preset);
            for t in chat(8) {
                e.push(t).unwrap();
            }
            match e.assemble(budget) {
                Ok(w) => check_window(&w, budget, &[], e.len(), Checks::ALL).unwrap_or_else(|m| panic!("{preset} @ {budget}: {m}")),
                Err(Error::BudgetBelowPins { .. }) => {}
                Err(other) => panic!("{other}"),
            }
        }
    }
}

/// Found by the `policy_toml` fuzz target (`preset = "tool-clearing"` + `keep_tool_results = 0`):
/// `assemble` panics, index out of bounds in `Engine::clear_boundary`
/// (`result_turns[result_turns.len() - keep]` with keep 0). Fix in plan/: keep 0 means clear every
/// result turn (`return store.len()` when `keep == 0`), or `Policy::validate` refuses 0.
#[test]
fn keep_tool_results_zero_does_not_panic() {
    ctxwin::testing::check_policy_text(b"preset = \"tool-clearing\"\nkeep_tool_results = 0\n", "toml").unwrap();
}
