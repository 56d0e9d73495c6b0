//! `ctxbench compare --json` on the samples the repo ships, timing fields removed, equals the
//! snapshot in `tests/data/compare-samples.json`: recorded before the structural move of the engine
//! into `plan/` and `window/`, so a change of any window's content shows up here as a changed
//! number. Regenerate it only for a change meant to move the numbers (and say so in the commit).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Fields that measure time, not windows.
const TIMING: &[&str] = &["assemble_us", "push_us", "wall_s", "query_embed_us", "embed_us_per_turn", "embed_s", "gen_latency_ms"];

fn strip(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !TIMING.contains(&k.as_str()));
            m.values_mut().for_each(strip);
        }
        Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

fn read(path: &Path) -> Value {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => panic!("{}: {e}", path.display()),
    };
    match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

#[test]
fn compare_on_the_samples_matches_the_snapshot() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("ctxwin-compare-snapshot-{}.json", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_ctxbench"))
        .args(["compare", "--dataset", "datasets/samples", "--policies", "ctxwin,recency,compaction,tool-clearing,rag", "--budgets", "10%,2000", "--json"])
        .arg(&out)
        .current_dir(root)
        .output();
    match status {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("ctxbench failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => panic!("running ctxbench: {e}"),
    }
    let mut got = read(&out);
    strip(&mut got);
    let want = read(&root.join("tests/data/compare-samples.json"));
    let (Some(g), Some(w)) = (got["runs"].as_array(), want["runs"].as_array()) else { panic!("no runs") };
    assert_eq!(g.len(), w.len());
    for (g, w) in g.iter().zip(w) {
        assert_eq!(g, w, "{} {} {}", w["dataset"], w["policy"], w["budget"]);
    }
    let _ = std::fs::remove_file(&out);
}
