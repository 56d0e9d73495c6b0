//! Loader tests for agent transcript formats (written with the loaders): the real datasets in
//! `../shared/datasets` (skipped, with a message, when that folder is absent), the samples in
//! `datasets/samples`, and the malformed files in `datasets/samples/malformed`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ctxwin::replay::Transcript;
use ctxwin::replay::loaders::{Format, detect, load_file, load_path};
use ctxwin::{Block, Error, PinLayer, Provenance, Role};

type TestResult = Result<(), Box<dyn std::error::Error>>;

use super::shared;

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/samples").join(name)
}

fn calls(ts: &[Transcript]) -> usize {
    ts.iter().flat_map(|t| t.turns()).map(|t| t.call_ids().count()).sum()
}

fn results(ts: &[Transcript]) -> usize {
    ts.iter().flat_map(|t| t.turns()).map(|t| t.result_ids().count()).sum()
}

fn error_results(ts: &[Transcript]) -> usize {
    ts.iter().flat_map(|t| t.turns()).flat_map(|t| t.blocks()).filter(|b| matches!(b, Block::ToolResult { is_error: true, .. })).count()
}

fn turns_with(ts: &[Transcript], role: Role) -> usize {
    ts.iter().flat_map(|t| t.turns()).filter(|t| t.role() == role).count()
}

fn tagged(ts: &[Transcript], tag: &str) -> usize {
    ts.iter().flat_map(|t| t.turns()).filter(|t| t.tags().iter().any(|x| x == tag)).count()
}

/// Every call is followed, right after its own turn, by one tool turn per call holding exactly its
/// result, in call order; and every result is placed that way (none stray elsewhere).
fn assert_pairs_intact(t: &Transcript) {
    let turns = t.turns();
    let mut placed = 0;
    let mut i = 0;
    while i < turns.len() {
        let ids: Vec<&str> = turns[i].call_ids().collect();
        for (k, id) in ids.iter().enumerate() {
            let r = turns.get(i + 1 + k).unwrap_or_else(|| panic!("{}: call {id} at turn {i} has no result turn", t.id()));
            assert_eq!(r.role(), Role::Tool, "{}: turn {} after call {id} is not a tool turn", t.id(), i + 1 + k);
            assert_eq!(r.result_ids().collect::<Vec<_>>(), [*id], "{}: turn {} does not hold the result of {id}", t.id(), i + 1 + k);
            assert_eq!(r.blocks().len(), 1, "{}: result turn {} holds more than its result", t.id(), i + 1 + k);
            placed += 1;
        }
        i += 1 + ids.len();
    }
    let total: usize = turns.iter().map(|t| t.result_ids().count()).sum();
    assert_eq!(placed, total, "{}: some results are not right after their call", t.id());
}

/// The system prompt is a pin and appears in no turn; no turn has the system role.
fn assert_system_pinned(t: &Transcript) {
    let sys: Vec<&String> = t.pins().iter().filter(|(l, _)| *l == PinLayer::System).map(|(_, s)| s).collect();
    assert_eq!(sys.len(), 1, "{}: expected one System pin", t.id());
    assert!(!sys[0].trim().is_empty(), "{}: empty System pin", t.id());
    assert!(t.turns().iter().all(|x| x.role() != Role::System), "{}: a system turn is left", t.id());
    assert!(t.turns().iter().all(|x| !x.plain_text().contains(sys[0].as_str())), "{}: the system prompt is repeated in a turn", t.id());
}

fn assert_clean_notes(t: &Transcript) {
    let n = t.notes();
    assert_eq!(n.normalize, Default::default(), "{}: normalize repaired something", t.id());
    assert_eq!((n.opaque_items, n.skipped_items, n.empty_sessions), (0, 0, 0), "{}: {n:?}", t.id());
}

fn detect_file(p: &Path) -> Result<Format, Error> {
    let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
    detect(p, &text)
}

/// The data files of a dataset folder (what a directory scan picks up).
fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    v.retain(|p| {
        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_ascii_uppercase();
        !n.starts_with("LICENSE") && !n.starts_with("README")
    });
    v.sort();
    v
}

// ------------------------------------------------------------------------------------------------
// Real datasets
// ------------------------------------------------------------------------------------------------

#[test]
fn tau_bench_runs() -> TestResult {
    let Some(dir) = shared("tau-bench") else { return Ok(()) };
    for f in data_files(&dir) {
        assert_eq!(detect_file(&f)?, Format::OpenAiChat, "{}", f.display());
    }
    let ts = load_path(&dir, None)?;
    assert_eq!(ts.len(), 200);
    let ids: HashSet<&str> = ts.iter().map(Transcript::id).collect();
    assert_eq!(ids.len(), 200, "run ids are unique");
    assert!(ids.contains("task0-trial0") && ids.contains("task49-trial3"));
    for t in &ts {
        assert_eq!(t.format(), Some(Format::OpenAiChat));
        assert_system_pinned(t);
        assert!(t.pins().iter().all(|(l, _)| *l == PinLayer::System), "tau-bench has no task pin");
        assert_pairs_intact(t);
        assert_clean_notes(t);
    }
    assert_eq!(ts.iter().map(|t| t.turns().len()).sum::<usize>(), 5108);
    assert_eq!((calls(&ts), results(&ts)), (1164, 1164));
    assert_eq!((turns_with(&ts, Role::User), turns_with(&ts, Role::Assistant), turns_with(&ts, Role::Tool)), (1490, 2454, 1164));
    // tau-bench reuses call ids within a run; the loader renames the reuses so pairs stay intact.
    let renamed = ts.iter().flat_map(|t| t.turns()).flat_map(|t| t.call_ids()).filter(|i| i.contains('#')).count();
    assert_eq!(renamed, 73);
    // Arguments are JSON strings in the file: all of them parse to objects.
    for b in ts.iter().flat_map(|t| t.turns()).flat_map(|t| t.blocks()) {
        if let Block::ToolCall { arguments, .. } = b {
            assert!(arguments.is_object(), "{arguments}");
        }
    }
    // Gold actions from info.task.actions.
    let gold: usize = ts.iter().map(|t| t.gold_actions().len()).sum();
    assert_eq!(gold, 632);
    assert_eq!(ts.iter().filter(|t| !t.gold_actions().is_empty()).count(), 172);
    let t0 = ts.iter().find(|t| t.id() == "task0-trial0").ok_or("task0-trial0 missing")?;
    assert_eq!(t0.gold_actions()[0].name(), "book_reservation");
    assert_eq!(t0.gold_actions()[0].arguments()["user_id"], "mia_li_3668");
    assert!(t0.pins()[0].1.starts_with("# Airline Agent Policy"));
    assert_eq!(t0.turns()[0].role(), Role::User);
    Ok(())
}

/// Every run of the folder (however many there are) loads into one transcript per file, with the
/// task as a pin, intact pairs, nothing repaired, `bash` calls with deterministic ids, and the
/// submitted diff as the last turn.
#[test]
fn mini_swe_agent_trajectories() -> TestResult {
    let Some(dir) = shared("mini-swe-agent") else { return Ok(()) };
    let files = data_files(&dir);
    assert!(files.len() >= 8, "{} runs: the folder holds at least the 8 long ones", files.len());
    for f in &files {
        assert_eq!(detect_file(f)?, Format::MiniSweAgent, "{}", f.display());
    }
    let ts = load_path(&dir, None)?;
    let ids: Vec<&str> = ts.iter().map(Transcript::id).collect();
    let expected: Vec<String> = files.iter().filter_map(|f| f.file_name()?.to_str()?.strip_suffix(".traj.json").map(str::to_string)).collect();
    assert_eq!(ids, expected, "one transcript per file, named by its instance");
    for t in &ts {
        assert_mini_swe_agent_run(t)?;
    }
    let (user, format_errors) = (turns_with(&ts, Role::User), tagged(&ts, "format-error"));
    assert_eq!(calls(&ts), results(&ts));
    assert!(error_results(&ts) < results(&ts));
    assert_eq!(user, format_errors, "every user turn between the task and the submission is a format error from the harness");
    eprintln!(
        "mini-swe-agent: {} runs, {} turns, {} calls ({} failed), {format_errors} format errors, {} timeouts",
        ts.len(),
        ts.iter().map(|t| t.turns().len()).sum::<usize>(),
        calls(&ts),
        error_results(&ts),
        tagged(&ts, "timeout")
    );
    Ok(())
}

fn assert_mini_swe_agent_run(t: &Transcript) -> TestResult {
    assert_eq!(t.format(), Some(Format::MiniSweAgent));
    assert_system_pinned(t);
    let layers: Vec<PinLayer> = t.pins().iter().map(|(l, _)| *l).collect();
    assert_eq!(layers, [PinLayer::System, PinLayer::Task], "{}", t.id());
    let task = &t.pins()[1].1;
    assert!(task.starts_with("<pr_description>"), "{}", t.id());
    assert!(t.turns().iter().all(|x| !x.plain_text().contains("<pr_description>")), "{}: task repeated as a turn", t.id());
    assert!(t.turns().len() >= 2, "{}: {} turns", t.id(), t.turns().len());
    assert_eq!(t.turns()[0].role(), Role::Assistant, "{}", t.id());
    assert_pairs_intact(t);
    assert_clean_notes(t);
    // Every call is `bash {"command": "..."}` with a deterministic id.
    let mut n = 0;
    for b in t.turns().iter().flat_map(|x| x.blocks()) {
        if let Block::ToolCall { call_id, name, arguments } = b {
            n += 1;
            assert_eq!(call_id, &format!("call-{n}"));
            assert_eq!(name, "bash");
            assert!(arguments["command"].as_str().is_some_and(|c| !c.is_empty()));
        }
    }
    assert!(n >= 1, "{}: no calls", t.id());
    // The run ends with the submitted diff as the submit command's result.
    let last = t.turns().last().ok_or("no turns")?;
    assert_eq!(last.tags(), ["submission"], "{}", t.id());
    assert!(last.plain_text().starts_with("diff --git"), "{}", t.id());
    Ok(())
}

#[test]
fn swe_agent_trajectory() -> TestResult {
    let Some(dir) = shared("swe-agent") else { return Ok(()) };
    for f in data_files(&dir) {
        assert_eq!(detect_file(&f)?, Format::OpenAiChat, "{}", f.display());
    }
    let ts = load_path(&dir, None)?;
    assert_eq!(ts.len(), 1);
    let t = &ts[0];
    assert_eq!(t.id(), "marshmallow-code__marshmallow-1867.function_calling");
    assert_system_pinned(t);
    let layers: Vec<PinLayer> = t.pins().iter().map(|(l, _)| *l).collect();
    assert_eq!(layers, [PinLayer::System, PinLayer::Task]);
    assert!(t.pins()[1].1.contains("TimeDelta serialization precision"));
    assert!(t.turns().iter().all(|x| x.role() != Role::User), "the problem statement is a pin, not a turn");
    assert_eq!(t.turns().len(), 26);
    assert_eq!((calls(&ts), results(&ts)), (13, 13));
    assert_pairs_intact(t);
    assert_clean_notes(t);
    let names: Vec<&str> = t
        .turns()
        .iter()
        .flat_map(|x| x.blocks())
        .filter_map(|b| match b {
            Block::ToolCall { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(names.first(), Some(&"bash"));
    assert_eq!(names.last(), Some(&"submit"));
    assert!(t.turns().iter().all(|x| x.role() != Role::Assistant || x.provenance() == Provenance::Model));
    assert!(t.turns().iter().all(|x| x.role() != Role::Tool || x.provenance() == Provenance::Tool));
    Ok(())
}

/// Every history of the folder loads into its sessions, each with turns of one date and no marker
/// left in a turn; the two histories the loader was written against keep their exact shape.
#[test]
fn aider_histories() -> TestResult {
    let Some(dir) = shared("aider") else { return Ok(()) };
    let files = data_files(&dir);
    assert!(files.len() >= 2, "{} histories", files.len());
    for f in &files {
        assert_eq!(detect_file(f)?, Format::Aider, "{}", f.display());
    }
    let ts = load_path(&dir, None)?;
    // Sessions are numbered `<history>#1..#n` in file order; every history has at least one.
    let mut stems: Vec<&str> = Vec::new();
    for (t, k) in ts.iter().zip(session_numbers(&ts)) {
        let (stem, n) = t.id().rsplit_once('#').ok_or("id without #")?;
        assert_eq!(n.parse::<usize>()?, k, "{}", t.id());
        if k == 1 {
            stems.push(stem);
        }
    }
    let expected: Vec<String> = files.iter().filter_map(|f| f.file_name()?.to_str()?.strip_suffix(".aider.chat.history.md").map(str::to_string)).collect();
    assert_eq!(stems, expected, "every history loads");
    for t in &ts {
        assert_aider_session(t);
    }
    assert_eq!(calls(&ts), 0, "Aider histories hold no tool calls");
    let with_turns = ts.iter().filter(|t| !t.turns().is_empty()).count();
    assert!(with_turns * 2 > ts.len(), "{with_turns} of {} sessions have turns", ts.len());
    eprintln!(
        "aider: {} histories, {} sessions, {} turns, {} tool outputs, {} skipped items, {} empty sessions",
        files.len(),
        ts.len(),
        ts.iter().map(|t| t.turns().len()).sum::<usize>(),
        tagged(&ts, "tool-output"),
        ts.iter().map(|t| t.notes().skipped_items).sum::<usize>(),
        ts.iter().map(|t| t.notes().empty_sessions).sum::<usize>()
    );
    aider_first_histories(&ts)
}

/// Each transcript's 1-based number within its history (counting restarts at a new history).
fn session_numbers(ts: &[Transcript]) -> Vec<usize> {
    let mut out = Vec::with_capacity(ts.len());
    let mut prev: Option<&str> = None;
    for t in ts {
        let stem = t.id().rsplit_once('#').map(|(s, _)| s);
        let k = if stem == prev { out.last().copied().unwrap_or(0) + 1 } else { 1 };
        out.push(k);
        prev = stem;
    }
    out
}

/// A session has turns of one date, no marker left in a turn, and nothing to repair; a session
/// whose header is followed by nothing has no turns and is counted as empty.
fn assert_aider_session(t: &Transcript) {
    assert_eq!(t.format(), Some(Format::Aider));
    assert_eq!(t.notes().normalize, Default::default());
    assert_eq!(t.notes().empty_sessions, usize::from(t.turns().is_empty()), "{}", t.id());
    if t.turns().is_empty() {
        return;
    }
    let date = t.turns()[0].timestamp();
    assert!(date.is_some() && t.turns().iter().all(|x| x.timestamp() == date), "{}: one date per session", t.id());
    for x in t.turns() {
        let text = x.plain_text();
        assert!(!text.contains("thinking-content-"), "{}: reasoning left in a turn", t.id());
        // (A user may type a line starting with `> ` after `#### `: that one is kept.)
        assert!(!text.starts_with("#### ") && !text.contains("\n#### "), "{}: marker left in {text:?}", t.id());
        if x.tags().iter().any(|g| g == "tool-output") {
            assert_eq!((x.role(), x.provenance()), (Role::User, Provenance::Tool));
            assert!(!text.starts_with("> ") && !text.contains("\n> "), "{}: marker left in {text:?}", t.id());
        }
    }
}

/// The first two histories (afi-core and mozgoslav), exactly as the loader reads them.
fn aider_first_histories(all: &[Transcript]) -> TestResult {
    let ts: Vec<Transcript> =
        all.iter().filter(|t| t.id().starts_with("AFI-Protocol__afi-core#") || t.id().starts_with("AlexShchuka__mozgoslav#")).cloned().collect();
    if ts.is_empty() {
        eprintln!("skipping the afi-core / mozgoslav checks: those histories are absent");
        return Ok(());
    }
    let ids: Vec<&str> = ts.iter().map(Transcript::id).collect();
    assert_eq!(ts.len(), 12);
    assert_eq!(ids[0], "AFI-Protocol__afi-core#1");
    assert_eq!(ids[8], "AFI-Protocol__afi-core#9");
    assert_eq!(ids[9], "AlexShchuka__mozgoslav#1");
    assert_eq!(ids[11], "AlexShchuka__mozgoslav#3");
    assert_eq!(ts[0].turns()[0].timestamp(), Some("2025-07-15 11:38:37"));
    assert_eq!(ts[11].turns()[0].timestamp(), Some("2026-04-22 23:13:03"));
    assert_eq!(ts.iter().map(|t| t.turns().len()).sum::<usize>(), 232);
    assert_eq!(tagged(&ts, "tool-output"), 106);
    assert_eq!(turns_with(&ts, Role::User) - tagged(&ts, "tool-output"), 70);
    assert_eq!(turns_with(&ts, Role::Assistant), 56);
    // 16 reasoning blocks removed (2 of them unclosed, ^C), 2 replies that were only reasoning.
    assert_eq!(ts.iter().map(|t| t.notes().skipped_items).sum::<usize>(), 18);
    // The first user message of the second AFI session, and Aider's output right after a reply.
    let s2 = &ts[1];
    assert_eq!(s2.turns()[1].plain_text(), "chmod +x ~/AFI_Modular_Repos/*.sh");
    assert_eq!(s2.turns()[1].role(), Role::User);
    assert_eq!(s2.turns()[2].role(), Role::Assistant);
    assert!(s2.turns()[3].plain_text().starts_with("Tokens: 3.2k sent, 66 received."));
    // Consecutive `####` lines are one message.
    assert_eq!(s2.turns()[4].plain_text(), "sync-afi\naider-afi");
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Samples written by the project
// ------------------------------------------------------------------------------------------------

#[test]
fn samples_detect_and_load_as_a_directory() -> TestResult {
    for (name, format) in [
        ("claude-code-session.jsonl", Format::ClaudeCode),
        ("claude-code-long.jsonl", Format::ClaudeCode),
        ("anthropic-messages.json", Format::AnthropicMessages),
        ("openai-chat.json", Format::OpenAiChat),
    ] {
        assert_eq!(detect_file(&sample(name))?, format, "{name}");
    }
    let ts = load_path(&sample(""), None)?;
    let formats: Vec<&str> = ts.iter().map(|t| t.format().map_or("generated", Format::name)).collect();
    // Sorted by file name: the hand-written samples, then the generated agent session and chat.
    assert_eq!(formats, ["anthropic", "claude-code", "claude-code", "openai-chat", "openai-chat", "locomo"]);
    for t in &ts {
        assert_pairs_intact(t);
    }
    Ok(())
}

#[test]
fn claude_code_short_session() -> TestResult {
    let ts = load_file(&sample("claude-code-session.jsonl"), None)?;
    assert_eq!(ts.len(), 1);
    let t = &ts[0];
    assert_eq!(t.id(), "3c1f9a52-7b0e-4d6a-9f41-2e8d5b7c0a19");
    assert_eq!(t.format(), Some(Format::ClaudeCode));
    assert_pairs_intact(t);
    let shape: Vec<(Role, usize, Vec<&str>)> = t.turns().iter().map(|x| (x.role(), x.blocks().len(), x.tags().iter().map(String::as_str).collect())).collect();
    use Role::*;
    let side = vec!["sidechain"];
    assert_eq!(
        shape,
        [
            (User, 1, vec!["summary"]),
            (User, 1, vec![]),
            (User, 1, vec!["opaque"]), // file-history-snapshot
            (Assistant, 2, vec![]),    // three streamed lines merged: thinking (hidden), text, Bash call
            (Tool, 1, vec![]),
            (Assistant, 1, vec![]), // Read
            (Tool, 1, vec![]),
            (Assistant, 2, vec![]), // text + Task
            (Tool, 1, vec![]),      // the Task's result, moved up to follow its call
            (User, 1, side.clone()),
            (Assistant, 1, side.clone()),
            (Tool, 1, side.clone()),
            (Assistant, 1, side.clone()),
            (Assistant, 1, vec![]), // Edit
            (Tool, 1, vec![]),
            (User, 1, vec!["opaque"]), // system event
            (User, 1, vec!["opaque"]), // unknown event type
            (Assistant, 1, vec![]),
        ]
    );
    assert_eq!(t.turns()[0].plain_text(), "Fix UTF-8 BOM crash in ledgerline CSV import");
    assert_eq!(t.turns()[0].provenance(), Provenance::Model);
    assert!(t.turns()[15].plain_text().starts_with("[system event] "));
    assert!(t.turns()[16].plain_text().starts_with("[queue-operation event] "));
    assert!(t.turns().iter().all(|x| !x.plain_text().contains("smells like a UTF-8 BOM")), "thinking is not shown");
    assert!(matches!(&t.turns()[4].blocks()[0], Block::ToolResult { is_error: true, content, .. } if content.contains("KeyError: 'date'")));
    assert_eq!(error_results(&ts), 1);
    assert_eq!(t.turns()[1].timestamp(), Some("2025-10-02T14:03:11.204Z"));
    assert!(t.turns()[1].source_id().is_some());
    let n = t.notes();
    assert_eq!((n.opaque_items, n.skipped_items), (3, 1));
    assert_eq!(n.normalize.moved_results, 1);
    assert_eq!((n.normalize.orphan_results, n.normalize.missing_results), (0, 0));
    Ok(())
}

#[test]
fn claude_code_long_session() -> TestResult {
    let path = sample("claude-code-long.jsonl");
    let events = std::fs::read_to_string(&path)?.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(events >= 300, "{events} events");
    let ts = load_file(&path, None)?;
    assert_eq!(ts.len(), 1);
    let t = &ts[0];
    assert_pairs_intact(t);
    assert_eq!(t.turns().len(), 269);
    assert_eq!((calls(&ts), results(&ts), error_results(&ts)), (115, 115, 8));
    let n = t.notes();
    assert_eq!((n.opaque_items, n.skipped_items), (5, 4));
    assert_eq!(n.normalize.moved_results, 1, "the Task result follows its sub-agent's traffic in the file");
    assert_eq!(tagged(&ts, "sidechain"), 8);
    // Large outputs: whole files and test logs.
    let longest = t
        .turns()
        .iter()
        .flat_map(|x| x.blocks())
        .filter_map(|b| match b {
            Block::ToolResult { content, .. } => Some(content.len()),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    assert!(longest > 5000, "{longest}");
    // The last turns refer back to what the first tool outputs showed.
    let early: String = t.turns()[..8].iter().map(|x| x.plain_text()).collect();
    let last = t.turns().last().ok_or("no turns")?.plain_text();
    for needle in ["compaction_preserves_tombstones", "tombstone for key \"user:0042\" was dropped", "merge_segments"] {
        assert!(early.contains(needle), "{needle} not in the first turns");
        assert!(last.contains(needle), "{needle} not in the last turn");
    }
    Ok(())
}

#[test]
fn anthropic_sample() -> TestResult {
    let ts = load_file(&sample("anthropic-messages.json"), None)?;
    assert_eq!(ts.len(), 1);
    let t = &ts[0];
    assert_eq!((t.id(), t.format()), ("anthropic-messages", Some(Format::AnthropicMessages)));
    assert_system_pinned(t);
    assert_pairs_intact(t);
    let roles: Vec<Role> = t.turns().iter().map(|x| x.role()).collect();
    use Role::*;
    assert_eq!(roles, [User, Assistant, Tool, Assistant, Tool, Tool, User, Assistant, User, Assistant, Tool, Assistant]);
    assert_eq!(t.turns()[6].plain_text(), "Here's a photo of the confirmation email we got, in case it helps.\n[image]");
    assert!(matches!(&t.turns()[5].blocks()[0], Block::ToolResult { is_error: true, .. }));
    assert_eq!(t.notes().skipped_items, 1, "one thinking block");
    assert_eq!(t.notes().normalize, Default::default());
    Ok(())
}

#[test]
fn openai_sample() -> TestResult {
    let ts = load_file(&sample("openai-chat.json"), None)?;
    assert_eq!(ts.len(), 1);
    let t = &ts[0];
    assert_eq!((t.id(), t.format()), ("openai-chat", Some(Format::OpenAiChat)));
    assert_system_pinned(t);
    assert_pairs_intact(t);
    assert_clean_notes(t);
    let roles: Vec<Role> = t.turns().iter().map(|x| x.role()).collect();
    use Role::*;
    assert_eq!(roles, [User, Assistant, Tool, Tool, Assistant, User, Assistant, Tool, Assistant, Tool, Assistant]);
    // Arguments that are not valid JSON are kept as a string.
    match t.turns()[6].blocks() {
        [Block::Text { text }, Block::ToolCall { arguments, .. }] => {
            assert_eq!(text, "Opening one now.");
            assert!(arguments.as_str().is_some_and(|s| s.starts_with("{\"title\"")), "{arguments}");
        }
        other => panic!("unexpected blocks {other:?}"),
    }
    match t.turns()[8].blocks() {
        [Block::ToolCall { arguments, .. }] => assert_eq!(arguments["labels"][1], "release-2.4.0"),
        other => panic!("unexpected blocks {other:?}"),
    }
    assert_eq!(t.turns()[10].plain_text(), "Issue #1417 is open with both broken links, labelled docs and release-2.4.0.");
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Malformed files
// ------------------------------------------------------------------------------------------------

#[test]
fn malformed_files_name_file_and_line() {
    for (name, line, needle) in [
        ("truncated.json", 4, "EOF while parsing"),
        ("wrong-types.json", 5, "messages[1].content: must be a string or a list of content blocks"),
        ("wrong-types-openai.json", 5, "messages[2].tool_calls: must be an array of tool calls"),
        ("tau-bench-bad-action.json", 6, "[0].info.task.actions[1]: an action needs a string `name`"),
        ("empty.json", 1, "empty file"),
        ("empty.jsonl", 1, "empty file"),
        ("bad-line.jsonl", 3, "invalid JSON event"),
        ("wrong-types.jsonl", 2, "message.content: must be a string or a list of content blocks"),
    ] {
        let path = sample("malformed").join(name);
        let err = match load_file(&path, None) {
            Ok(ts) => panic!("{name}: loaded {} transcripts", ts.len()),
            Err(e) => e,
        };
        assert!(matches!(&err, Error::Malformed { line: l, .. } if *l == line), "{name}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains(name), "{name}: {msg}");
        assert!(msg.contains(&format!(":{line}:")), "{name}: {msg}");
        assert!(msg.contains(needle), "{name}: {msg}");
    }
}

#[test]
fn malformed_files_fail_with_an_explicit_format_too() {
    for (name, format) in [
        ("wrong-types.json", Format::AnthropicMessages),
        ("wrong-types-openai.json", Format::OpenAiChat),
        ("empty.json", Format::MiniSweAgent),
        ("empty.json", Format::OpenAiChat),
        ("empty.json", Format::AnthropicMessages),
        ("empty.jsonl", Format::ClaudeCode),
        ("truncated.json", Format::MiniSweAgent),
    ] {
        let path = sample("malformed").join(name);
        match load_file(&path, Some(format)) {
            Err(Error::Malformed { line, .. }) => assert!(line >= 1, "{name}"),
            other => panic!("{name} as {format:?}: {other:?}"),
        }
    }
    // A file of another format is refused, not half-read.
    assert!(matches!(load_file(&sample("claude-code-session.jsonl"), Some(Format::OpenAiChat)), Err(Error::Malformed { .. })));
}

/// Cut and corrupted copies of every sample, through every loader: each load returns a transcript
/// or an error, never a panic.
#[test]
fn damaged_samples_never_panic_any_loader() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/samples");
    let scratch = std::env::temp_dir().join(format!("ctxwin-damaged-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let formats: Vec<Option<Format>> = std::iter::once(None).chain(Format::ALL.map(Some)).collect();
    let mut loads = 0;
    for name in ["claude-code-session.jsonl", "anthropic-messages.json", "openai-chat.json"] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        for k in 1..=12 {
            // A cut at k/13 of the file, and a copy with one byte changed there.
            let at = bytes.len() * k / 13;
            let mut flipped = bytes.clone();
            flipped[at] = match flipped[at] {
                b'"' => b'{',
                b'{' | b'[' => b'"',
                b':' => b',',
                _ => b'}',
            };
            for (tag, data) in [("cut", &bytes[..at]), ("flip", &flipped[..])] {
                let p = scratch.join(format!("{tag}-{k}-{name}"));
                std::fs::write(&p, data).unwrap();
                for &f in &formats {
                    let r = std::panic::catch_unwind(|| load_file(&p, f).map(|t| t.len()));
                    assert!(r.is_ok(), "{tag} {k} {name} as {f:?} panicked");
                    loads += 1;
                }
            }
        }
    }
    assert_eq!(loads, 3 * 12 * 2 * 8);
    std::fs::remove_dir_all(&scratch).unwrap();
}
