//! `tune` on real data: coordinate ascent keeps the best value of each knob on the training
//! transcripts, checks the result on the held-out ones, and is deterministic.

use ctxwin::Policy;
use ctxwin::replay::{BudgetSpec, CompareConfig, TuneConfig, tune};

#[test]
fn tuning_keeps_the_best_value_and_checks_it_on_held_out_conversations() {
    let Some(locomo) = super::shared("locomo") else { return };
    let start = match Policy::preset("ctxwin") {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let replay = CompareConfig::new(vec![locomo], vec![("ctxwin".into(), start)], vec![BudgetSpec::Tokens(1000)]);
    let params = vec![("weights.speaker".into(), vec!["0".into(), "0.3".into()]), ("neighbours".into(), vec!["0".into(), "1".into()])];
    let cfg = TuneConfig::new(replay, params).rounds(1);
    let a = match tune(&cfg) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(a.transcripts, (7, 3), "30% of LoCoMo's 10 conversations held out");
    assert_eq!(a.steps.len(), 2);
    for s in &a.steps {
        let best = s.scores.iter().map(|x| x.1).fold(f64::MIN, f64::max);
        let kept = s.scores.iter().find(|x| x.0 == s.kept).map(|x| x.1);
        assert_eq!(kept, Some(best), "{s:?}");
        assert!(s.scores.iter().all(|x| (0.0..=1.0).contains(&x.1)), "{s:?}");
    }
    // The tuned policy is what the last step kept, and scores what it scored.
    assert_eq!(a.train.1, a.steps[1].scores.iter().map(|x| x.1).fold(f64::MIN, f64::max));
    assert_eq!(a.policy.weights().speaker, if a.chosen[0].1 == "0" { 0.0 } else { 0.3 });
    let Some((base, tuned)) = a.held_out else { panic!("nothing held out") };
    assert!(base > 0.5 && tuned > 0.5, "{base} {tuned}");
    // Replays are deterministic, so the search is.
    let b = match tune(&cfg) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!((a.steps, a.chosen, a.train, a.held_out), (b.steps, b.chosen, b.train, b.held_out));
}
