//! Loader tests for the QA formats (LoCoMo, LongMemEval) on the real files in ../shared/datasets
//! (skipped, with a message, when that folder is absent) and on malformed input.

use std::path::{Path, PathBuf};

use ctxwin::replay::loaders::{Format, load_file, load_path};
use ctxwin::{Error, Role};

use super::shared;

fn tmp(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ctxwin-qa-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("{e}");
    }
    let p = dir.join(name);
    if let Err(e) = std::fs::write(&p, content) {
        panic!("{e}");
    }
    p
}

#[test]
fn locomo_real_file_loads_with_its_messy_evidence_counted() {
    let Some(p) = shared("locomo/locomo10.json") else { return };
    let ts = match load_file(&p, None) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(ts.len(), 10);
    assert!(ts.iter().all(|t| t.format() == Some(Format::Locomo)));
    let turns: usize = ts.iter().map(|t| t.turns().len()).sum();
    assert_eq!(turns, 5882);
    let qa: usize = ts.iter().map(|t| t.qa().len()).sum();
    let mut notes = ctxwin::replay::LoadNotes::default();
    ts.iter().for_each(|t| notes.add(t.notes()));
    // 1,986 QA items; those left without any valid evidence are counted, not silently dropped.
    assert_eq!(qa + notes.qa_without_evidence, 1986);
    // 4 items have no evidence at all; `D:11:26` is repaired, so 1,982 remain (not 1,981).
    assert_eq!(qa, 1982);
    assert_eq!(notes.qa_without_evidence, 4);
    // The 6 strings the README lists, plus the zero-padded `D30:05`.
    assert_eq!(notes.malformed_evidence, 7);
    // The README counts 9 non-existent ids; after repairing `D:11:26` and `D30:05` two remain
    // that name no turn (D10:19 in conv-42, D4:36 in conv-47).
    assert_eq!(notes.unknown_evidence_ids, 2);
    assert!(notes.empty_sessions >= 1, "conv-26 has dates for sessions without turns");
    let conv = &ts[0];
    assert_eq!(conv.id(), "conv-26");
    let t0 = &conv.turns()[0];
    assert_eq!((t0.speaker(), t0.role(), t0.source_id()), (Some("Caroline"), Role::User, Some("D1:1")));
    assert_eq!(t0.timestamp(), Some("1:56 pm on 8 May, 2023"));
    assert_eq!(conv.turns()[1].role(), Role::Assistant);
    // Image turns keep their caption.
    let img = conv.turns().iter().find(|t| t.source_id() == Some("D1:5")).map(|t| t.plain_text()).unwrap_or_default();
    assert!(img.contains("[shares a photo: a photo of a dog walking past a wall"), "{img}");
    // Evidence points at the right turn; category 5 has no answer and is not in the headline.
    let q0 = &conv.qa()[0];
    assert_eq!(q0.question(), "When did Caroline go to the LGBTQ support group?");
    assert_eq!(q0.answer(), Some("7 May 2023"));
    assert_eq!(conv.turns()[q0.evidence()[0][0]].source_id(), Some("D1:3"));
    let cat5 = ts.iter().flat_map(|t| t.qa()).filter(|q| q.category() == "5").count();
    assert!(cat5 > 400);
    assert!(ts.iter().flat_map(|t| t.qa()).filter(|q| q.category() == "5").all(|q| !q.headline() && q.answer().is_none()));
    // Numeric answers become text.
    assert!(conv.qa().iter().any(|q| q.answer() == Some("2022")));
}

#[test]
fn longmemeval_derived_file_loads_with_turn_and_session_evidence() {
    let Some(p) = shared("longmemeval-s-derived") else { return };
    let ts = match load_path(&p, None) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(ts.len(), 3);
    for t in &ts {
        assert_eq!(t.format(), Some(Format::LongMemEval));
        assert!(t.turns().len() > 300, "{} turns", t.turns().len());
        assert!(t.turns().iter().all(|x| x.timestamp().is_some()));
        for q in t.qa() {
            for g in q.evidence() {
                assert!(g.iter().all(|&i| i < t.turns().len()));
            }
        }
    }
    let originals: Vec<_> = ts.iter().flat_map(|t| t.qa()).filter(|q| q.headline()).collect();
    assert!(originals.len() >= 2, "has_answer-evidence questions");
    assert!(originals.iter().all(|q| q.evidence().iter().all(|g| g.len() == 1)));
    let mortgage = ts.iter().find(|t| t.id() == "852ce960").and_then(|t| t.qa().first().cloned());
    assert_eq!(mortgage.as_ref().and_then(|q| q.answer()), Some("$350,000"));
    assert!(ts.iter().flat_map(|t| t.qa()).any(|q| q.category() == "session-level"));
}

fn malformed_message(p: &Path, format: Option<Format>) -> String {
    match load_file(p, format) {
        Err(e @ Error::Malformed { .. }) => e.to_string(),
        Err(other) => panic!("expected Malformed, got {other}"),
        Ok(t) => panic!("expected an error, loaded {} transcripts", t.len()),
    }
}

#[test]
fn malformed_qa_files_name_file_and_position() {
    let p = tmp("truncated.json", "[{\"sample_id\": \"x\", \"conversation\": {\"speaker_a\": \"A\",\n \"session_1\": [");
    let m = malformed_message(&p, Some(Format::Locomo));
    assert!(m.contains("truncated.json:2:"), "{m}");

    let p = tmp(
        "wrongtype.json",
        "[{\"sample_id\": \"s1\", \"conversation\": {\"speaker_a\": \"A\", \"speaker_b\": \"B\", \"session_1\": [{\"speaker\": \"A\", \"dia_id\": \"D1:1\", \"text\": 42}]}, \"qa\": []}]",
    );
    let m = malformed_message(&p, Some(Format::Locomo));
    assert!(m.contains("wrongtype.json") && m.contains("session_1[0]") && m.contains("`text` must be a string"), "{m}");

    let p = tmp("empty.json", "");
    let m = malformed_message(&p, None);
    assert!(m.contains("empty.json:1:1") && m.contains("empty"), "{m}");

    let p = tmp("lme.json", "[{\"question_id\": \"q\", \"haystack_sessions\": [[{\"role\": \"robot\", \"content\": \"hi\"}]]}]");
    let m = malformed_message(&p, None);
    assert!(m.contains("lme.json") && m.contains("unknown role"), "{m}");

    let p = tmp("notjson.json", "{ this is not json }");
    let m = malformed_message(&p, Some(Format::Locomo));
    assert!(m.contains("notjson.json:1:3"), "{m}");
}

#[test]
fn missing_paths_are_io_errors_naming_the_path() {
    let e = load_path(Path::new("/nonexistent/ctxwin/x.json"), None).map(|_| ()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("/nonexistent/ctxwin/x.json"), "{e}");
}
