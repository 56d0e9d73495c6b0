//! Property tests of the window invariants, over random conversations, pins, budgets and presets:
//! the total equals a from-scratch tiktoken recount of the rendered request and is ≤ budget; pins
//! are present, first and in order; tool pairs are intact in both renderings; turns are
//! chronological; the same input gives the same window.

use ctxwin::{Engine, EngineConfig, Error, Origin, PRESETS, PinLayer, PlanState, Policy, Request, Turn, check_anthropic, check_openai, recount_openai};
use proptest::prelude::*;
use serde_json::json;

// The words of the adversarial sequences (`ctxwin::testing`).
use ctxwin::testing::WORDS;

#[derive(Debug, Clone)]
enum Step {
    User(Vec<usize>, Option<u8>),
    Assistant(Vec<usize>),
    /// An assistant call with `n` results, each of `len` words.
    Tools(u8, usize),
}

fn text(ix: &[usize]) -> String {
    ix.iter().map(|&i| WORDS[i % WORDS.len()]).collect::<Vec<_>>().join(" ")
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (prop::collection::vec(0usize..100, 1..30), prop::option::of(0u8..3)).prop_map(|(w, ts)| Step::User(w, ts)),
        3 => prop::collection::vec(0usize..100, 1..30).prop_map(Step::Assistant),
        2 => (1u8..3, 1usize..800).prop_map(|(n, len)| Step::Tools(n, len)),
    ]
}

fn turns(steps: &[Step]) -> Vec<Turn> {
    let mut out = Vec::new();
    for (k, s) in steps.iter().enumerate() {
        match s {
            Step::User(w, ts) => {
                let mut t = Turn::user(text(w)).with_speaker("Ana");
                if let Some(d) = ts {
                    t = t.with_timestamp(format!("{} May, 2023", 1 + d));
                }
                out.push(t);
            }
            Step::Assistant(w) => out.push(Turn::assistant(text(w))),
            Step::Tools(n, len) => {
                let mut blocks = vec![ctxwin::Block::text("running tools")];
                for j in 0..*n {
                    blocks.push(ctxwin::Block::ToolCall {
                        call_id: format!("call_{k}_{j}"),
                        name: "bash".into(),
                        arguments: json!({"command": format!("grep -n parse_expr src/{k}.rs")}),
                    });
                }
                out.push(Turn::new(ctxwin::Role::Assistant, blocks));
                for j in 0..*n {
                    let body: Vec<usize> = (0..*len).map(|i| (i * 7 + k + j as usize) % WORDS.len()).collect();
                    out.push(Turn::tool_result(format!("call_{k}_{j}"), text(&body), j == 1));
                }
            }
        }
    }
    out
}

fn layer(i: u8) -> PinLayer {
    PinLayer::ALL[usize::from(i) % 4]
}

fn build(steps: &[Step], pins: &[(u8, i8, Vec<usize>)], preset: &str) -> Engine {
    let policy = Policy::preset(preset).unwrap_or_default();
    let mut e = match Engine::new(EngineConfig::default().policy(policy).commit_every(7)) {
        Ok(e) => e,
        Err(err) => panic!("{err}"),
    };
    for (l, prio, w) in pins {
        e.pin(layer(*l), format!("PIN {} {}", l, text(w)), i32::from(*prio));
    }
    for t in turns(steps) {
        if let Err(err) = e.push(t) {
            panic!("push: {err}");
        }
    }
    e
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn windows_keep_their_invariants(
        steps in prop::collection::vec(step(), 0..40),
        pins in prop::collection::vec((0u8..4, -2i8..3, prop::collection::vec(0usize..100, 1..20)), 0..4),
        preset_ix in 0usize..5,
        budget in 20usize..4000,
        query in prop::option::of(prop::collection::vec(0usize..100, 1..6)),
        per_turn in any::<bool>(),
    ) {
        let preset = PRESETS[preset_ix];
        let mut e = build(&steps, &pins, preset);
        let q = query.as_deref().map(text);
        let policy = Policy::preset(preset).unwrap_or_default();
        let mut a = PlanState::new(policy.clone());
        // Per-turn use: assemble after a few earlier prefixes too, through the same assembler.
        let result = if per_turn && q.is_none() {
            let mut e2 = build(&[], &pins, preset);
            let mut last = None;
            for t in turns(&steps) {
                if let Err(err) = e2.push(t) { panic!("{err}"); }
                last = Some(e2.assemble_with(&mut a, budget, Request::NextCall));
            }
            match last { Some(r) => r, None => e2.assemble_with(&mut a, budget, Request::NextCall) }
        } else {
            e.assemble_with(&mut a, budget, q.as_deref().map_or(Request::NextCall, Request::Query))
        };
        let w = match result {
            Ok(w) => w,
            Err(Error::BudgetBelowPins { budget: b, needed, shortfall }) => {
                prop_assert_eq!(b, budget);
                prop_assert!(needed > budget);
                prop_assert_eq!(shortfall, needed - budget);
                return Ok(());
            }
            Err(other) => return Err(TestCaseError::fail(format!("{other}"))),
        };
        let openai = w.to_openai();
        // Budget, by a from-scratch recount of what is rendered.
        let recount = recount_openai(&openai, w.encoding()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(recount, w.total_tokens());
        prop_assert!(w.total_tokens() <= budget, "{} > {}", w.total_tokens(), budget);
        // Pins present, first, in layer/priority order.
        if !pins.is_empty() {
            prop_assert_eq!(w.messages()[0].origin(), &Origin::Pins);
            let mut expected: Vec<(u8, i8, usize)> = pins.iter().enumerate().map(|(i, (l, p, _))| (l % 4, *p, i)).collect();
            expected.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
            let content = w.messages()[0].content();
            let mut pos = 0;
            for (_, _, i) in expected {
                let (l, _, words) = &pins[i];
                let needle = format!("PIN {} {}", l, text(words));
                let found = content[pos..].find(&needle);
                prop_assert!(found.is_some(), "pin {} missing or out of order", i);
                pos += found.unwrap_or(0) + needle.len();
            }
        }
        prop_assert!(w.messages().iter().skip(1).all(|m| m.origin() != &Origin::Pins));
        // Tool pairs intact, API-valid in both shapes.
        prop_assert_eq!(check_openai(&openai), Ok(()));
        prop_assert_eq!(check_anthropic(&w.to_anthropic()), Ok(()));
        // Chronological (compaction puts its kept user messages and summary before live turns,
        // which are later than both).
        let turn_ids: Vec<usize> = w.messages().iter().filter_map(|m| match m.origin() { Origin::Turn { turn } => Some(*turn), _ => None }).collect();
        prop_assert!(turn_ids.windows(2).all(|p| p[0] <= p[1]), "{:?}", turn_ids);
        // Report: one line per turn.
        prop_assert_eq!(w.report().len(), e.len());
        // Deterministic: the same input gives the same window.
        if !per_turn || q.is_some() {
            let mut e3 = build(&steps, &pins, preset);
            let again = e3.assemble_with(&mut PlanState::new(policy), budget, q.as_deref().map_or(Request::NextCall, Request::Query)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(again.to_openai(), openai);
        }
    }
}
