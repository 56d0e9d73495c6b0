//! The ctxbench binary end to end: compare on data the repo ships and on the real datasets, JSON
//! and CSV outputs with the field names scripts read, and clear errors for bad arguments.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn ctxbench(args: &[&str]) -> (i32, String, String) {
    let out = match Command::new(env!("CARGO_BIN_EXE_ctxbench")).args(args).current_dir(root()).output() {
        Ok(o) => o,
        Err(e) => panic!("running ctxbench: {e}"),
    };
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ctxwin-cli-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&d) {
        panic!("{e}");
    }
    d.join(name)
}

const RUN_FIELDS: &[&str] = &[
    "dataset",
    "policy",
    "budget",
    "probes",
    "evidence_recall",
    "answer_presence",
    "by_category",
    "budget_violations",
    "pair_violations",
    "silent_drops",
    "tokens_mean",
    "assemble_us",
    "push_us",
    "wall_s",
    "reference_recall",
    "long_range_recall",
    "gold_args_recall",
    "prefix_reuse",
    "cost_units",
];

#[test]
fn compare_on_shipped_agent_samples_writes_json_and_csv() {
    let json = tmp("agent.json");
    let csv = tmp("agent.csv");
    let (code, out, err) = ctxbench(&[
        "compare",
        "--dataset",
        "datasets/samples/claude-code-long.jsonl",
        "--dataset",
        "datasets/samples/openai-chat.json",
        "--policies",
        "ctxwin,recency,rag,compaction,tool-clearing",
        "--budgets",
        "10%,50%,4000",
        "--json",
        json.to_str().unwrap_or_default(),
        "--csv",
        csv.to_str().unwrap_or_default(),
    ]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("claude-code-long.jsonl") && out.contains("tool-clearing") && out.contains("wall"), "{out}");
    let v: serde_json::Value = match std::fs::read_to_string(&json).map(|s| serde_json::from_str(&s)) {
        Ok(Ok(v)) => v,
        other => panic!("json: {other:?}"),
    };
    let runs = v["runs"].as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 2 * 5 * 3);
    for r in &runs {
        for f in RUN_FIELDS {
            assert!(r.get(*f).is_some(), "field {f} missing in {r}");
        }
        assert_eq!(r["budget_violations"], 0);
        assert_eq!(r["pair_violations"], 0);
        assert_eq!(r["silent_drops"], 0);
        assert!(r["evidence_recall"].is_null(), "no QA labels in agent sessions");
        assert!(r["reference_recall"].as_f64().is_some_and(|x| (0.0..=1.0).contains(&x)));
        for p in ["p50", "p95", "p99"] {
            assert!(r["assemble_us"][p].as_f64().is_some());
        }
    }
    assert!(runs.iter().any(|r| r["budget"] == "10%") && runs.iter().any(|r| r["budget"] == 4000));
    let csv_text = std::fs::read_to_string(&csv).unwrap_or_default();
    assert!(csv_text.starts_with("dataset,policy,budget,probes,evidence_recall"));
    assert_eq!(csv_text.lines().count(), 1 + 30);
}

#[test]
fn compare_on_locomo_reports_recall_by_category() {
    let p = root().join("../shared/datasets/locomo/locomo10.json");
    if !p.exists() {
        eprintln!("skipping: {} is absent", p.display());
        return;
    }
    let json = tmp("locomo.json");
    let (code, out, err) = ctxbench(&[
        "compare",
        "--dataset",
        p.to_str().unwrap_or_default(),
        "--policies",
        "ctxwin,rag",
        "--budgets",
        "2000",
        "--json",
        json.to_str().unwrap_or_default(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap_or_default()).unwrap_or_default();
    let runs = v["runs"].as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 2);
    let ours = &runs[0];
    assert_eq!(ours["policy"], "ctxwin");
    assert_eq!(ours["probes"], 1982);
    let er = ours["evidence_recall"].as_f64().unwrap_or(0.0);
    let rag = runs[1]["evidence_recall"].as_f64().unwrap_or(1.0);
    assert!(er >= 0.78 && er > rag, "ctxwin {er} vs rag {rag}");
    for c in ["1", "2", "3", "4", "5"] {
        assert!(ours["by_category"][c]["evidence_recall"].as_f64().is_some(), "category {c}");
    }
    assert_eq!(ours["load_notes"]["malformed_evidence"], 7);
}

#[test]
fn bad_arguments_give_clear_errors() {
    let (code, _, err) = ctxbench(&["compare", "--dataset", "datasets/samples/openai-chat.json", "--policies", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown policy `nope`"), "{err}");
    let (code, _, err) = ctxbench(&["compare", "--dataset", "no/such/file.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("no/such/file.json"), "{err}");
    let (code, _, err) = ctxbench(&["compare", "--dataset", "datasets/samples/openai-chat.json", "--budgets", "lots"]);
    assert_eq!(code, 2);
    assert!(err.contains("budget `lots`"), "{err}");
    let (code, _, err) = ctxbench(&["replay", "--dataset", "datasets/samples/malformed/truncated.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("truncated.json:"), "{err}");
    let (code, _, err) = ctxbench(&["compare", "--dataset", "datasets/samples/openai-chat.json", "--set", "weights.bm25=-3"]);
    assert_eq!(code, 2);
    assert!(err.contains("weights.bm25"), "{err}");
}

#[test]
fn window_subcommand_prints_one_line_per_message() {
    let (code, out, err) = ctxbench(&["window", "--dataset", "datasets/samples/openai-chat.json", "--budget", "400"]);
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("mode: lexical"), "{out}");
    assert!(lines.next().is_some_and(|l| l.starts_with("system") && l.contains("pins")), "{out}");
    assert!(out.contains("/ budget 400 tokens"), "{out}");
    let (code, out, _) = ctxbench(&["window", "--dataset", "datasets/samples/openai-chat.json", "--budget", "400", "--render", "anthropic"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    assert_eq!(ctxwin::check_anthropic(&v), Ok(()));
    // A question the transcript does not have is an error, not a window for another query.
    let (code, _, err) = ctxbench(&["window", "--dataset", "datasets/samples/synth-conversation.locomo.json", "--question", "9999"]);
    assert_eq!(code, 2);
    assert!(err.contains("no question 9999"), "{err}");
}

#[cfg(feature = "dense")]
#[test]
fn window_with_embeddings_runs_hybrid_and_stays_valid() {
    let cache = tmp("window.cache");
    let args = ["window", "--dataset", "datasets/samples/synth-conversation.locomo.json", "--question", "0", "--budget", "600", "--render", "openai"];
    let (code, lexical, err) = ctxbench(&args);
    assert_eq!(code, 0, "{err}");
    let mut hybrid_args = args.to_vec();
    hybrid_args.extend(["--embeddings", "models/all-MiniLM-L6-v2", "--embeddings-cache", cache.to_str().unwrap_or_default()]);
    let (code, hybrid, err) = ctxbench(&hybrid_args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("hybrid retrieval with all-MiniLM-L6-v2"), "{err}");
    for out in [&lexical, &hybrid] {
        let v: serde_json::Value = serde_json::from_str(out).unwrap_or_default();
        assert_eq!(ctxwin::check_openai(&v), Ok(()));
    }
    // The outline says which mode built the window.
    let outline_args: Vec<&str> = hybrid_args.iter().copied().filter(|a| *a != "--render" && *a != "openai").collect();
    let (code, out, err) = ctxbench(&outline_args);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l.starts_with("mode: hybrid (all-MiniLM-L6-v2")), "{out}");
}

/// Parallel replays merge in a fixed order: two runs give the same results but for timings.
#[test]
fn compare_is_deterministic() {
    use ctxwin::replay::{BudgetSpec, CompareConfig, compare};
    let policies: Vec<(String, ctxwin::Policy)> = ctxwin::PRESETS.iter().map(|p| (p.to_string(), ctxwin::Policy::preset(p).unwrap_or_default())).collect();
    let cfg = CompareConfig::new(
        vec![root().join("datasets/samples/synth-conversation.locomo.json"), root().join("datasets/samples/claude-code-long.jsonl")],
        policies,
        vec![BudgetSpec::Share(0.1), BudgetSpec::Tokens(3000)],
    );
    let strip = |r: ctxwin::replay::CompareReport| -> Vec<serde_json::Value> {
        r.runs
            .into_iter()
            .map(|run| {
                let mut v = serde_json::to_value(run).unwrap_or_default();
                for k in ["assemble_us", "push_us", "push_short_us", "push_long_us", "wall_s", "query_embed_us", "embed_us_per_turn"] {
                    v[k] = serde_json::Value::Null;
                }
                v
            })
            .collect()
    };
    let a = compare(&cfg).map(strip);
    let b = compare(&cfg).map(strip);
    assert!(a.is_ok());
    assert_eq!(a.ok(), b.ok());
}

#[cfg(feature = "dense")]
#[test]
fn compare_with_embeddings_runs_hybrid_and_says_so() {
    let cache = tmp("hybrid.cache");
    let (code, out, err) = ctxbench(&[
        "compare",
        "--dataset",
        "datasets/samples/openai-chat.json",
        "--policies",
        "ctxwin",
        "--budgets",
        "25%",
        "--embeddings",
        "models/all-MiniLM-L6-v2",
        "--embeddings-cache",
        cache.to_str().unwrap_or_default(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("mode hybrid (all-MiniLM-L6-v2"), "{out}");
    assert!(cache.exists(), "the disk cache is written");
    // A model folder without the model is a clear error, not a lexical run.
    let (code, _, err) = ctxbench(&["compare", "--dataset", "datasets/samples/openai-chat.json", "--embeddings", "datasets/samples"]);
    assert_eq!(code, 2);
    assert!(err.contains("datasets/samples"), "{err}");
}

#[cfg(not(feature = "dense"))]
#[test]
fn embeddings_without_the_dense_feature_say_how_to_build_it() {
    let (code, _, err) = ctxbench(&["compare", "--dataset", "datasets/samples/openai-chat.json", "--embeddings", "models/all-MiniLM-L6-v2"]);
    assert_eq!(code, 2);
    assert!(err.contains("--features dense"), "{err}");
}

#[test]
fn compare_draws_a_chart_per_dataset() {
    let svg = tmp("chart.svg");
    let (code, _, err) = ctxbench(&[
        "compare",
        "--dataset",
        "datasets/samples/synth-conversation.locomo.json",
        "--dataset",
        "datasets/samples/claude-code-long.jsonl",
        "--policies",
        "ctxwin,recency",
        "--budgets",
        "10%,2000",
        "--plot",
        svg.to_str().unwrap_or_default(),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&svg).unwrap_or_default();
    assert!(text.starts_with("<svg"), "{}", text.chars().take(80).collect::<String>());
    for needle in
        ["synth-conversation.locomo.json (lexical)", "claude-code-long.jsonl (lexical)", "evidence recall", "long-range recall", "recency", "10%", "2000"]
    {
        assert!(text.contains(needle), "chart lacks {needle}");
    }
    // Only SVG is drawn, and the name says so before anything runs.
    let (code, _, err) = ctxbench(&["compare", "--dataset", "datasets/samples/openai-chat.json", "--plot", "chart.png"]);
    assert_eq!(code, 2);
    assert!(err.contains("chart.png") && err.contains(".svg"), "{err}");
}

#[test]
fn tune_writes_a_policy_that_compare_loads() {
    let Some(locomo) = super::shared("locomo") else { return };
    let locomo = locomo.to_str().unwrap_or_default().to_string();
    let out = tmp("tuned.toml");
    let out_s = out.to_str().unwrap_or_default().to_string();
    let (code, stdout, err) =
        ctxbench(&["tune", "--dataset", &locomo, "--budgets", "1000", "--param", "context_boost=0,0.3", "--rounds", "1", "--out", &out_s]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("held out (3 transcripts)"), "{stdout}");
    let chosen = stdout.lines().find_map(|l| l.strip_prefix("chosen: context_boost=")).map(str::trim).unwrap_or_default();
    let toml = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(toml.contains(&format!("context_boost = {chosen}")), "{chosen:?} in\n{toml}");
    // The file is a policy like any other.
    let (code, stdout, err) = ctxbench(&["compare", "--dataset", "datasets/samples/openai-chat.json", "--policies", &out_s, "--budgets", "25%"]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("tuned"), "{stdout}");
    // Bad knobs and bad syntax are errors before anything runs.
    let (code, _, err) = ctxbench(&["tune", "--dataset", &locomo, "--param", "weights.bm26=1"]);
    assert_eq!(code, 2);
    assert!(err.contains("bm26"), "{err}");
    let (code, _, err) = ctxbench(&["tune", "--dataset", &locomo, "--param", "context_boost"]);
    assert_eq!(code, 2);
    assert!(err.contains("KEY=V1"), "{err}");
}

/// `--per-session`: each transcript's own numbers in the JSON (its windows add up to the run's) and
/// the slowest sessions of each run in the table; without it the JSON has no `sessions`.
#[test]
fn per_session_numbers_add_up_to_the_run() {
    let json = tmp("per-session.json");
    let (code, stdout, err) = ctxbench(&[
        "compare",
        "--dataset",
        "datasets/samples/claude-code-long.jsonl",
        "--dataset",
        "datasets/samples/openai-chat.json",
        "--policies",
        "ctxwin,recency",
        "--budgets",
        "25%",
        "--per-session",
        "--threads",
        "1",
        "--json",
        json.to_str().unwrap_or_default(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("slowest sessions per run"), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap_or_default()).unwrap_or_default();
    let runs = v["runs"].as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 4);
    for run in &runs {
        let sessions = run["sessions"].as_array().cloned().unwrap_or_default();
        assert_eq!(sessions.len() as u64, run["transcripts"].as_u64().unwrap_or(0), "{run}");
        let windows: u64 = sessions.iter().map(|s| s["windows"].as_u64().unwrap_or(0)).sum();
        assert_eq!(windows, run["probes"].as_u64().unwrap_or(u64::MAX), "{run}");
        assert!(sessions.iter().all(|s| s["id"].as_str().is_some_and(|id| !id.is_empty()) && s["assemble_us"]["p50"].as_f64().is_some()));
    }
    let (code, _, err) =
        ctxbench(&["compare", "--dataset", "datasets/samples/openai-chat.json", "--budgets", "25%", "--json", json.to_str().unwrap_or_default()]);
    assert_eq!(code, 0, "{err}");
    assert!(!std::fs::read_to_string(&json).unwrap_or_default().contains("\"sessions\""));
}

/// `ctxbench samples` regenerates the generated samples the repository ships, byte for byte.
#[test]
fn samples_subcommand_reproduces_the_committed_samples() {
    let out = tmp("samples");
    let (code, stdout, err) = ctxbench(&["samples", "--out", out.to_str().unwrap_or_default()]);
    assert_eq!(code, 0, "{err}");
    for name in ["synth-conversation.locomo.json", "synth-agent.openai.json"] {
        let made = std::fs::read(out.join(name)).unwrap_or_default();
        let committed = std::fs::read(root().join("datasets/samples").join(name)).unwrap_or_default();
        assert!(!committed.is_empty(), "{name} is committed");
        assert!(
            made == committed,
            "{name} differs from what `ctxbench samples` writes now: regenerate it with `cargo run --bin ctxbench -- samples` and commit the result"
        );
        assert!(stdout.contains(name), "{stdout}");
    }
}

/// The numbers of `compare --json` on the samples, minus timings, as they were before the
/// restructuring of issue 8 (`tests/snapshots/compare-samples.json`, written by the ctxbench of
/// commit 13d1362; ctxwin's runs on the three small chat samples re-written for issue 10's degrade
/// rule, which makes their windows cheaper, and ctxwin's agent-sample runs for issue 10's kept front
/// and `agent_refill_target`; every run that shows an extractive summary — ctxwin's and
/// compaction's — re-written for issue 10's reference list, ranked by recurrence, and
/// `agent_refill_target` 0.2; ctxwin's 10% runs of the two small tool-using chats for the latest
/// unit being shown whenever it fits in a history that is not conversational; ctxwin's 10% and
/// 25% runs of the Claude Code and synthetic agent samples for that latest unit cut to fit
/// `agent_latest_share` of the refill target, and `agent_refill_target` 0.175): a change of
/// behaviour shows up here as a changed number.
#[test]
fn compare_on_the_samples_matches_the_snapshot() {
    let snapshot: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("tests/snapshots/compare-samples.json")).unwrap_or_default()).unwrap_or_default();
    let runs: [(&str, &[&str], &str, &str); 2] = [
        ("locomo_sample", &["datasets/samples/synth-conversation.locomo.json"], "ctxwin,recency,rag", "1000,2000,4000,8000"),
        (
            "agent_samples",
            &[
                "datasets/samples/claude-code-long.jsonl",
                "datasets/samples/synth-agent.openai.json",
                "datasets/samples/openai-chat.json",
                "datasets/samples/anthropic-messages.json",
                "datasets/samples/claude-code-session.jsonl",
            ],
            "ctxwin,recency,rag,compaction,tool-clearing",
            "10%,25%,50%",
        ),
    ];
    for (key, datasets, policies, budgets) in runs {
        let json = tmp(&format!("snapshot-{key}.json"));
        let mut args = vec!["compare", "--policies", policies, "--budgets", budgets, "--json", json.to_str().unwrap_or_default()];
        for d in datasets {
            args.extend(["--dataset", d]);
        }
        let (code, _, err) = ctxbench(&args);
        assert_eq!(code, 0, "{err}");
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap_or_default()).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("wall_s");
        }
        for run in v["runs"].as_array_mut().into_iter().flatten() {
            if let Some(o) = run.as_object_mut() {
                for k in ["assemble_us", "push_us", "push_short_us", "push_long_us", "wall_s", "query_embed_us", "embed_us_per_turn"] {
                    o.remove(k);
                }
            }
        }
        assert!(v["runs"].as_array().is_some_and(|r| !r.is_empty()), "{key}: no runs");
        for (i, (got, want)) in v["runs"].as_array().into_iter().flatten().zip(snapshot[key]["runs"].as_array().into_iter().flatten()).enumerate() {
            assert_eq!(got, want, "{key}: run {i} differs from the snapshot");
        }
        assert_eq!(v, snapshot[key], "{key}: the report differs from the snapshot");
    }
}

/// `compare --store sqlite:PATH` replays through durable sessions too, reports their cost, and every
/// window of a session reopened halfway equals the in-memory one; a bad store is refused up front.
#[cfg(feature = "sqlite")]
#[test]
fn compare_through_a_sqlite_store_reports_the_durable_cost() {
    let db = tmp("durable.db");
    let json = tmp("durable.json");
    std::fs::remove_file(&db).ok();
    let store = format!("sqlite:{}", db.display());
    let (code, out, err) = ctxbench(&[
        "compare",
        "--dataset",
        "datasets/samples/claude-code-session.jsonl",
        "--policies",
        "ctxwin,recency",
        "--budgets",
        "25%",
        "--store",
        &store,
        "--json",
        json.to_str().unwrap_or_default(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("durable sessions (") && out.contains("claude-code-session.jsonl"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap_or_default()).unwrap_or_default();
    let durable = v["durable"].as_array().cloned().unwrap_or_default();
    assert_eq!(durable.len(), 2, "{v}");
    for d in &durable {
        assert!(d["windows"].as_u64().is_some_and(|n| n > 0), "{d}");
        assert_eq!(d["differing"], 0, "{d}");
        assert!(d["push_us"]["p50"].as_f64().is_some_and(|p| p > 0.0), "{d}");
    }
    assert!(v["runs"].as_array().is_some_and(|r| r.len() == 2));
    let (code, _, err) = ctxbench(&["compare", "--dataset", "datasets/samples/openai-chat.json", "--store", "redis://x"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown store"), "{err}");
}
