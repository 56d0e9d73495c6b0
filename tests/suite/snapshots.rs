//! Snapshots of whole windows, one line per message (`Window::outline`), for fixed inputs the repo
//! ships: a LoCoMo-format question, an agent's next call, and a compaction. A change to selection,
//! forms, markers or summaries shows here line by line (`cargo insta review` to accept one).

use std::path::Path;

use ctxwin::replay::{Transcript, loaders};
use ctxwin::{Engine, EngineConfig, PlanState, Policy, Request, Window, check_anthropic, check_openai};

fn sample(name: &str) -> Transcript {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/samples").join(name);
    match loaders::load_path(&path, None) {
        Ok(mut ts) if !ts.is_empty() => ts.swap_remove(0),
        Ok(_) => panic!("{}: no transcript", path.display()),
        Err(e) => panic!("{e}"),
    }
}

fn engine(t: &Transcript, preset: &str) -> Engine {
    let policy = match Policy::preset(preset) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let mut e = match Engine::new(EngineConfig::default().policy(policy)) {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    };
    for (layer, text) in t.pins() {
        e.pin(*layer, text.clone(), 0);
    }
    e
}

fn valid(w: &Window) {
    assert_eq!(check_openai(&w.to_openai()), Ok(()));
    assert_eq!(check_anthropic(&w.to_anthropic()), Ok(()));
}

#[test]
fn a_locomo_question_window() {
    let t = sample("synth-conversation.locomo.json");
    let mut e = engine(&t, "ctxwin");
    for turn in t.turns() {
        if let Err(err) = e.push(turn.clone()) {
            panic!("{err}");
        }
    }
    let q = match t.qa().first() {
        Some(q) => q.question().to_string(),
        None => panic!("the sample has questions"),
    };
    let w = match e.assemble_for(1000, &q) {
        Ok(w) => w,
        Err(err) => panic!("{err}"),
    };
    valid(&w);
    insta::assert_snapshot!(format!("question: {q}\n{}", w.outline()));
}

/// The agent's windows before each of the first assistant turns after `from`, at `budget`; the last one.
fn agent_window(preset: &str, budget: usize, upto: usize) -> Window {
    let t = sample("synth-agent.openai.json");
    let mut e = engine(&t, preset);
    let mut state = PlanState::new(e.policy().clone());
    let mut last = None;
    for (i, turn) in t.turns().iter().enumerate().take(upto) {
        if i > 0 && turn.role() == ctxwin::Role::Assistant {
            match e.assemble_with(&mut state, budget, Request::NextCall) {
                Ok(w) => last = Some(w),
                Err(err) => panic!("{err}"),
            }
        }
        if let Err(err) = e.push(turn.clone()) {
            panic!("{err}");
        }
    }
    match last {
        Some(w) => w,
        None => panic!("no assistant turn in the first {upto} turns"),
    }
}

#[test]
fn an_agent_next_call_window() {
    let w = agent_window("ctxwin", 3000, 120);
    valid(&w);
    insta::assert_snapshot!(w.outline());
}

#[test]
fn a_compaction_window() {
    let w = agent_window("compaction", 3000, 120);
    valid(&w);
    insta::assert_snapshot!(w.outline());
}
