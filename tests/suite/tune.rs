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

/// `folds`: each fold's search runs on the other folds and is scored on its own, with the cost
/// constraint against recency measured on both sides; the objective is the recall less the penalty
/// for cost above the ratio, so it equals the recall exactly when the constraint holds.
#[test]
fn folds_score_each_held_out_fold_with_the_cost_constraint() {
    let Some(aider) = super::shared("aider/Todofine0__storm_con_aider.aider.chat.history.md") else { return };
    let start = match Policy::preset("ctxwin") {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let replay = CompareConfig::new(vec![aider], vec![("ctxwin".into(), start)], vec![BudgetSpec::Share(0.25)]);
    let params = vec![("refill_target".into(), vec!["0.5".into(), "0.6".into()])];
    let cfg = TuneConfig::new(replay, params).rounds(1).folds(2).max_cost_ratio(None, 1.0);
    let r = match tune(&cfg) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(r.folds.len(), 2, "two sessions, two folds");
    assert_eq!(r.transcripts, (2, 0), "the policy written is the search on everything");
    assert!(r.held_out.is_none());
    for f in &r.folds {
        assert_eq!(f.transcripts, (1, 1));
        for m in [f.train.0, f.train.1, f.held_out.0, f.held_out.1] {
            let ratio = m.worst_cost_ratio.unwrap_or_else(|| panic!("no cost ratio in {f:?}"));
            assert!((0.0..=1.0).contains(&m.recall), "{m:?}");
            let penalty = m.recall - m.objective;
            assert!(penalty >= -1e-12, "{m:?}");
            if ratio <= 1.0 {
                assert!(penalty.abs() < 1e-12, "within the constraint, no penalty: {m:?}");
            } else {
                assert!(penalty > 0.0, "above the constraint, a penalty: {m:?}");
            }
        }
    }
    assert!(r.table().contains("fold 1 (1 train / 1 held out)"), "{}", r.table());
}
