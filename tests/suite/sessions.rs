//! Durable sessions (src/session/): reopen gives the same windows, faults give typed errors,
//! nothing acknowledged is lost.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ctxwin::replay::{BudgetSpec, Transcript, for_each_window, loaders};
use ctxwin::session::{SqliteStore, Synchronous, replay_durable};
use ctxwin::{Encoding, EngineConfig, Error, PinLayer, Policy, Session, SessionStore, Sessions, SessionsConfig, Turn, Window};

use super::shared;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ctxwin-sessions-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sqlite(dir: &Path) -> Arc<dyn SessionStore> {
    Arc::new(SqliteStore::open(dir.join("sessions.db")).unwrap())
}

/// The windows of an uninterrupted in-memory replay, by turn index.
fn in_memory(t: &Transcript, policy: &Policy, budget: usize) -> Vec<(usize, Option<Window>)> {
    let mut out = Vec::new();
    for_each_window(t, policy, BudgetSpec::Tokens(budget), Encoding::O200kBase, |i, w| out.push((i, w.ok().cloned()))).unwrap();
    out
}

/// Replays `t` through a durable session, reopening it at the middle, and checks every window
/// against the uninterrupted in-memory replay.
fn check_reopen(store: &Arc<dyn SessionStore>, id: &str, t: &Transcript, policy: &Policy, budget: usize) {
    let want = in_memory(t, policy, budget);
    let mut got = Vec::new();
    let half = t.turns().len() / 2;
    let times = replay_durable(t, store, id, policy, budget, Encoding::O200kBase, Some(half), |i, w| got.push((i, w.ok().cloned()))).unwrap();
    assert_eq!(times.reopen_us.len(), 1);
    assert_eq!(got.len(), want.len(), "{id}: number of windows");
    assert!(want.iter().filter(|(_, w)| w.is_some()).count() > 2, "{id}: too few windows to compare");
    for ((i, a), (j, b)) in got.iter().zip(&want) {
        assert_eq!(i, j);
        let (Some(a), Some(b)) = (a, b) else {
            assert_eq!(a.is_some(), b.is_some(), "{id}: window before turn {i}");
            continue;
        };
        assert_eq!(a.messages(), b.messages(), "{id}: messages before turn {i} (reopened at {half})");
        assert_eq!(a.total_tokens(), b.total_tokens(), "{id}: tokens before turn {i}");
        assert_eq!(a.report(), b.report(), "{id}: report before turn {i}");
        assert_eq!(a.summaries(), b.summaries(), "{id}: summaries before turn {i}");
    }
    // And the stored log holds every turn, in order, exactly as pushed.
    let s = Session::open(Arc::clone(store), id, EngineConfig::default()).unwrap();
    assert_eq!(s.engine().len(), t.turns().len());
    for (k, turn) in t.turns().iter().enumerate() {
        assert_eq!(s.engine().turn(k), Some(turn), "{id}: turn {k}");
    }
}

fn reopen_suite(store: &Arc<dyn SessionStore>, prefix: &str) {
    let mut checked = 0;
    if let Some(p) = shared("locomo/locomo10.json") {
        let ts = loaders::load_path(&p, None).unwrap();
        for (k, t) in ts.iter().take(2).enumerate() {
            for name in ["ctxwin", "compaction"] {
                check_reopen(store, &format!("{prefix}locomo-{k}-{name}"), t, &Policy::preset(name).unwrap(), 3000);
                checked += 1;
            }
        }
    }
    if let Some(p) = shared("mini-swe-agent") {
        let ts = loaders::load_path(&p, None).unwrap();
        for (k, t) in ts.iter().take(3).enumerate() {
            for name in ["ctxwin", "tool-clearing"] {
                check_reopen(store, &format!("{prefix}swe-{k}-{name}"), t, &Policy::preset(name).unwrap(), 6000);
                checked += 1;
            }
        }
    }
    eprintln!("reopen: {checked} replays compared window by window");
}

#[test]
fn a_reopened_sqlite_session_gives_the_windows_of_an_uninterrupted_one() {
    let dir = tmp("reopen");
    reopen_suite(&sqlite(&dir), "");
}

#[test]
fn a_reopened_postgres_session_gives_the_windows_of_an_uninterrupted_one() {
    let Some(store) = postgres() else { return };
    reopen_suite(&store, &format!("reopen-{}-", std::process::id()));
}

#[cfg(feature = "postgres")]
fn postgres() -> Option<Arc<dyn SessionStore>> {
    match std::env::var("CTXWIN_TEST_POSTGRES") {
        Ok(url) => Some(Arc::new(ctxwin::session::PostgresStore::connect(&url).unwrap())),
        Err(_) => {
            assert!(std::env::var_os("CTXWIN_REQUIRE_POSTGRES").is_none(), "CTXWIN_REQUIRE_POSTGRES is set but CTXWIN_TEST_POSTGRES is not");
            eprintln!("skipping: CTXWIN_TEST_POSTGRES is not set (run under scripts/with-postgres.sh)");
            None
        }
    }
}

#[cfg(not(feature = "postgres"))]
fn postgres() -> Option<Arc<dyn SessionStore>> {
    assert!(std::env::var_os("CTXWIN_REQUIRE_POSTGRES").is_none(), "CTXWIN_REQUIRE_POSTGRES is set but the `postgres` feature is off");
    eprintln!("skipping: built without the `postgres` feature");
    None
}

/// Every summary a session's windows cached is stored with the next append (or when the handle is
/// dropped) exactly as cached, each once: with a cache large enough to keep them all, the store
/// and a reopen hold every one; with a cache of one, what the store holds was cached, and a reopen
/// (which refills the cache from the store, overflowing its list of fresh summaries) keeps them.
#[test]
fn every_cached_summary_is_stored_once_and_restored() {
    type Rows = std::collections::BTreeMap<(usize, usize, usize), String>;
    for cache in [4096, 1] {
        let dir = tmp(&format!("summaries-{cache}"));
        let store = sqlite(&dir);
        let config = || EngineConfig::default().summary_cache(cache);
        let mut s = Session::create(Arc::clone(&store), "chat-1", config()).unwrap();
        let mut cached = Rows::new();
        let turn = |k: usize| Turn::user(format!("question {k} about the parser and lexer {}", "detail ".repeat(k % 7 * 5)));
        for k in 0..80 {
            s.push(turn(k)).unwrap();
            s.push(Turn::assistant(format!("answer {k}: tokens and spans {}", "more ".repeat(k % 5 * 6)))).unwrap();
            for budget in [300, 700] {
                s.assemble(budget).unwrap();
                s.assemble_for(budget, &format!("question {}", k * 7 % 11)).unwrap();
                cached.extend(s.engine().summary_entries().map(|(key, t)| (key, t.to_string())));
            }
        }
        assert!(cached.len() > 20, "{cache}: the windows summarized ({} summaries)", cached.len());
        drop(s);
        let rows = |dir: &Path| -> Vec<((usize, usize, usize), String)> {
            let db = rusqlite::Connection::open(dir.join("sessions.db")).unwrap();
            let mut st = db.prepare("SELECT first, last, allowance, body FROM summaries").unwrap();
            st.query_map([], |r| Ok(((r.get::<_, i64>(0)? as usize, r.get::<_, i64>(1)? as usize, r.get::<_, i64>(2)? as usize), r.get::<_, String>(3)?)))
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        let stored = rows(&dir);
        for (key, text) in &stored {
            assert_eq!(cached.get(key), Some(text), "{cache}: {key:?} stored as cached");
        }
        let mut s = Session::open(Arc::clone(&store), "chat-1", config()).unwrap();
        let restored: Rows = s.engine().summary_entries().map(|(key, t)| (key, t.to_string())).collect();
        if cache == 4096 {
            assert_eq!(stored.len(), cached.len(), "every summary stored once");
            assert_eq!(restored, cached, "every summary restored as it was cached");
        } else {
            assert_eq!(restored.len(), 1, "the cache refilled from the store");
        }
        s.push(turn(80)).unwrap();
        s.assemble(300).unwrap();
        drop(s);
        let again: Rows = rows(&dir).into_iter().collect();
        assert!(stored.iter().all(|(k, t)| again.get(k) == Some(t)), "{cache}: the stored summaries kept after a reopen");
    }
}

#[test]
fn pins_unpins_policy_and_summaries_survive_a_reopen() {
    let dir = tmp("pins");
    let store = sqlite(&dir);
    let mut s = Session::create(Arc::clone(&store), "chat-1", EngineConfig::default()).unwrap();
    let keep = s.pin(PinLayer::System, "Be brief.", 0).unwrap();
    let gone = s.pin(PinLayer::Task, "Old task.", 5).unwrap();
    assert!(s.unpin(gone).unwrap());
    assert!(!s.unpin(gone).unwrap());
    s.set_policy(Policy::preset("compaction").unwrap()).unwrap();
    for k in 0..60 {
        s.push(Turn::user(format!("question {k} about the parser and lexer {}", "detail ".repeat(20)))).unwrap();
        s.push(Turn::assistant(format!("answer {k}: tokens and spans {}", "more ".repeat(20)))).unwrap();
    }
    let w1 = s.assemble(800).unwrap();
    assert!(!w1.summaries().is_empty(), "compaction at this budget summarizes");
    let seq = s.seq();
    drop(s);
    let mut s = Session::open(Arc::clone(&store), "chat-1", EngineConfig::default()).unwrap();
    assert_eq!(s.seq(), seq);
    assert_eq!(s.engine().policy().preset_name(), "compaction");
    assert_eq!(s.engine().pins().len(), 1);
    assert_eq!(s.engine().pins()[0].id(), keep);
    assert!(s.engine().summary_entries().count() >= 1, "summaries restored from the store");
    let w2 = s.assemble(800).unwrap();
    let mut e = ctxwin::Engine::new(EngineConfig::default().policy(Policy::preset("compaction").unwrap())).unwrap();
    e.pin(PinLayer::System, "Be brief.", 0);
    for k in 0..60 {
        e.push(Turn::user(format!("question {k} about the parser and lexer {}", "detail ".repeat(20)))).unwrap();
        e.push(Turn::assistant(format!("answer {k}: tokens and spans {}", "more ".repeat(20)))).unwrap();
    }
    assert_eq!(e.assemble(800).unwrap().messages(), w1.messages());
    assert_eq!(e.assemble(800).unwrap().messages(), w2.messages());
    // A new pin after reopen continues the id sequence.
    assert_ne!(s.pin(PinLayer::Output, "JSON.", 0).unwrap(), gone);
}

#[test]
fn unknown_and_invalid_session_ids_are_typed_errors() {
    let dir = tmp("ids");
    let store = sqlite(&dir);
    match Session::open(Arc::clone(&store), "nope", EngineConfig::default()) {
        Err(Error::UnknownSession { session, store: name }) => {
            assert_eq!(session, "nope");
            assert!(name.contains("sessions.db"), "{name}");
        }
        other => panic!("{other:?}"),
    }
    for bad in ["", "a/b", "../x", "sp ace", &"x".repeat(129)] {
        assert!(matches!(Session::open_or_create(Arc::clone(&store), bad, EngineConfig::default()), Err(Error::InvalidSessionId { .. })), "{bad:?}");
    }
    assert!(store.sessions().unwrap().is_empty(), "nothing created for a bad id");
    Session::create(Arc::clone(&store), "x", EngineConfig::default()).unwrap();
    assert!(matches!(Session::create(Arc::clone(&store), "x", EngineConfig::default()), Err(Error::Store { .. })));
}

#[test]
fn damaged_and_foreign_files_are_refused_untouched() {
    let dir = tmp("damaged");
    let garbage = dir.join("garbage.db");
    let bytes: Vec<u8> = (0..8192u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&garbage, &bytes).unwrap();
    match SqliteStore::open(&garbage) {
        Err(Error::StoreDamaged { store, .. }) => assert!(store.contains("garbage.db"), "{store}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&garbage).unwrap(), bytes, "the damaged file is not written");

    let foreign = dir.join("foreign.db");
    let c = rusqlite::Connection::open(&foreign).unwrap();
    c.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices VALUES (1, 9.5);").unwrap();
    drop(c);
    assert!(matches!(SqliteStore::open(&foreign), Err(Error::StoreDamaged { .. })));
    let c = rusqlite::Connection::open(&foreign).unwrap();
    let n: i64 = c.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1, "no table added to a foreign database");

    // A record damaged inside a valid store: the open names the session and the record.
    let good = dir.join("good.db");
    let store: Arc<dyn SessionStore> = Arc::new(SqliteStore::open(&good).unwrap());
    let mut s = Session::create(Arc::clone(&store), "s1", EngineConfig::default()).unwrap();
    s.push(Turn::user("hello")).unwrap();
    drop(s);
    rusqlite::Connection::open(&good).unwrap().execute("UPDATE records SET body = '{\"kind\":\"push\",\"turn\":' WHERE seq = 2", []).unwrap();
    match Session::open(store, "s1", EngineConfig::default()) {
        Err(Error::StoreDamaged { session: Some(s), message, .. }) => {
            assert_eq!(s, "s1");
            assert!(message.contains("record 2"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_locked_file_is_a_typed_error_and_the_session_continues_after() {
    let dir = tmp("locked");
    let path = dir.join("sessions.db");
    let store: Arc<dyn SessionStore> = Arc::new(SqliteStore::open_with(&path, Synchronous::Normal, std::time::Duration::from_millis(50)).unwrap());
    let mut s = Session::create(Arc::clone(&store), "s", EngineConfig::default()).unwrap();
    s.push(Turn::user("one")).unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    match s.push(Turn::user("two")) {
        Err(Error::StoreLocked { store, session }) => {
            assert!(store.contains("sessions.db"));
            assert_eq!(session.as_deref(), Some("s"));
        }
        other => panic!("{other:?}"),
    }
    other.execute_batch("ROLLBACK").unwrap();
    // The lock was refused before the engine saw "two": the handle goes on, the log has no gap.
    assert_eq!(s.engine().len(), 1);
    s.push(Turn::user("two")).unwrap();
    let s = Session::open(Arc::clone(&store), "s", EngineConfig::default()).unwrap();
    assert_eq!(s.engine().len(), 2);
    assert_eq!(s.engine().turn(1), Some(&Turn::user("two")));
}

#[test]
fn two_handles_on_one_session_append_in_turn_without_loss() {
    let dir = tmp("two");
    let path = dir.join("sessions.db");
    let a: Arc<dyn SessionStore> = Arc::new(SqliteStore::open(&path).unwrap());
    let b: Arc<dyn SessionStore> = Arc::new(SqliteStore::open(&path).unwrap());
    two_writers(a, b, "shared");
}

#[test]
fn two_postgres_connections_append_to_one_session_in_turn_without_loss() {
    let (Some(a), Some(b)) = (postgres(), postgres()) else { return };
    two_writers(a, b, &format!("two-{}", std::process::id()));
}

/// Two handles (separate connections) push alternately; each catches up with the other's turns,
/// the log is 1..n without gaps and every handle sees every turn in the same order.
fn two_writers(a: Arc<dyn SessionStore>, b: Arc<dyn SessionStore>, id: &str) {
    let mut x = Session::create(a, id, EngineConfig::default()).unwrap();
    let mut y = Session::open(b, id, EngineConfig::default()).unwrap();
    for k in 0..50 {
        x.push(Turn::user(format!("x{k}"))).unwrap();
        y.push(Turn::assistant(format!("y{k}"))).unwrap();
    }
    x.sync().unwrap();
    assert_eq!(x.engine().len(), 100);
    assert_eq!(y.engine().len(), 100);
    for k in 0..100 {
        assert_eq!(x.engine().turn(k), y.engine().turn(k));
    }
    assert_eq!(x.engine().turn(1), Some(&Turn::assistant("y0")));
    assert_eq!(x.seq(), 101, "policy record + 100 turns, no gap");
}

#[test]
fn sessions_serve_threads_in_parallel_and_evict_cold_ones() {
    let dir = tmp("lru");
    let store = sqlite(&dir);
    let sessions = Arc::new(Sessions::new(store, EngineConfig::default(), SessionsConfig { max_hot: 3, max_bytes: 1 << 30 }));
    std::thread::scope(|scope| {
        for th in 0..6 {
            let sessions = Arc::clone(&sessions);
            scope.spawn(move || {
                for k in 0..40 {
                    let id = format!("s{}", (th + k) % 8);
                    sessions.with_or_create(&id, |s| s.push(Turn::user(format!("t{th}-{k}"))).map(|_| ())).unwrap();
                    assert!(sessions.hot() <= 3 + 6, "bounded (sessions in use are not evicted)");
                }
            });
        }
    });
    assert!(sessions.hot() <= 3);
    assert!(sessions.opens() > 8, "cold sessions were evicted and reopened ({} opens)", sessions.opens());
    let mut total = 0;
    for k in 0..8 {
        total += sessions.with(&format!("s{k}"), |s| Ok(s.engine().len())).unwrap();
    }
    assert_eq!(total, 240, "every push of every thread is stored once");
    assert!(matches!(sessions.with("missing", |s| Ok(s.seq())), Err(Error::UnknownSession { .. })));
    // A memory bound below one session keeps at most the session in use.
    let tight = Sessions::new(Arc::clone(sessions.store()), EngineConfig::default(), SessionsConfig { max_hot: 100, max_bytes: 1 });
    for k in 0..8 {
        tight.with(&format!("s{k}"), |s| Ok(s.seq())).unwrap();
    }
    assert_eq!(tight.hot(), 0);
}

#[test]
fn a_sessions_memory_estimate_grows_with_its_pushes_and_survives_a_reopen() {
    let dir = tmp("estimate");
    let store = sqlite(&dir);
    let mut s = Session::create(Arc::clone(&store), "est", EngineConfig::default()).unwrap();
    let empty = s.memory_estimate();
    s.pin(PinLayer::System, "You are terse.", 0).unwrap();
    let text = "a turn of forty bytes, give or take a few";
    for _ in 0..100 {
        s.push(Turn::user(text)).unwrap();
    }
    let live = s.memory_estimate();
    // Turns pushed through this handle count as much as turns replayed by a reopen: a server's
    // session table bounds its memory by this estimate.
    assert!(live >= empty + 100 * text.len(), "{empty} -> {live}");
    drop(s);
    let reopened = Session::open(store, "est", EngineConfig::default()).unwrap();
    assert_eq!(reopened.memory_estimate(), live);
}

/// A tmpfs mounted for a test, unmounted on drop; `None` (with a message) when mounting is not
/// allowed here.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Option<Mount> {
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir).status().is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipping: cannot mount a tmpfs on {} (needs root)", dir.display());
            return None;
        }
        Some(Mount(dir.to_path_buf()))
    }
    fn remount_read_only(&self) -> bool {
        Command::new("mount").args(["-o", "remount,ro"]).arg(&self.0).status().is_ok_and(|s| s.success())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_a_typed_error_and_keeps_every_acknowledged_turn() {
    let dir = tmp("full");
    let Some(_m) = Mount::tmpfs(&dir, "2m") else { return };
    // Space the operator frees once the disk is full (below).
    let ballast = dir.join("ballast");
    std::fs::write(&ballast, vec![0u8; 256 * 1024]).unwrap();
    let store = sqlite(&dir);
    let mut s = Session::create(Arc::clone(&store), "big", EngineConfig::default()).unwrap();
    let mut acked = Vec::new();
    let err = loop {
        let turn = Turn::tool_result_text(acked.len());
        match s.push(turn.clone()) {
            Ok(_) => acked.push(turn),
            Err(e) => break e,
        }
        assert!(acked.len() < 10_000, "a 2 MB disk must fill");
    };
    match &err {
        Error::StoreFull { store, session } => {
            assert!(store.contains("sessions.db"));
            assert_eq!(session.as_deref(), Some("big"));
        }
        other => panic!("{other:?}"),
    }
    // The engine may have taken the failed push before the commit failed: then the handle is stale.
    match s.push(Turn::user("after")) {
        Err(Error::SessionStale { session, .. }) => assert_eq!(session, "big"),
        Err(Error::StoreFull { .. }) => {}
        other => panic!("{other:?}"),
    }
    drop(s);
    drop(store);
    // Opening the store on the full disk may need room for its WAL: a typed error if so.
    match SqliteStore::open(dir.join("sessions.db")) {
        Ok(_) | Err(Error::StoreFull { .. }) => {}
        Err(other) => panic!("{other:?}"),
    }
    std::fs::remove_file(&ballast).unwrap();
    let s = Session::open(sqlite(&dir), "big", EngineConfig::default()).unwrap();
    assert_eq!(s.engine().len(), acked.len(), "every acknowledged push, nothing else");
    for (k, t) in acked.iter().enumerate() {
        assert_eq!(s.engine().turn(k), Some(t));
    }
}

trait Filler {
    fn tool_result_text(k: usize) -> Turn;
}
impl Filler for Turn {
    fn tool_result_text(k: usize) -> Turn {
        Turn::user(format!("{k} {}", "log line with some varied words and numbers 12345\n".repeat(60)))
    }
}

#[test]
fn a_read_only_directory_is_a_typed_error_and_the_log_is_readable() {
    let dir = tmp("ro");
    let Some(m) = Mount::tmpfs(&dir, "8m") else { return };
    {
        let mut s = Session::create(sqlite(&dir), "s", EngineConfig::default()).unwrap();
        s.push(Turn::user("kept")).unwrap();
    }
    if !m.remount_read_only() {
        eprintln!("skipping: cannot remount read-only");
        return;
    }
    match SqliteStore::open(dir.join("sessions.db")) {
        Err(Error::StoreReadOnly { store, .. }) => assert!(store.contains("sessions.db")),
        other => panic!("{other:?}"),
    }
    match SqliteStore::open(dir.join("new.db")) {
        Err(Error::StoreReadOnly { store, .. }) => assert!(store.contains("new.db")),
        other => panic!("{other:?}"),
    }
    // Read in place (no writer), the log is intact.
    let uri = format!("file:{}?immutable=1", dir.join("sessions.db").display());
    let c = rusqlite::Connection::open_with_flags(uri, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI).unwrap();
    let n: i64 = c.query_row("SELECT count(*) FROM records WHERE session = 's'", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 2);
}

#[test]
fn compare_through_the_store_times_every_call_and_matches_the_memory_windows() {
    let dir = tmp("compare");
    let store = sqlite(&dir);
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/samples");
    let datasets = vec![samples.join("synth-conversation.locomo.json"), samples.join("synth-agent.openai.json")];
    let policies = vec![("ctxwin".to_string(), Policy::preset("ctxwin").unwrap()), ("recency".to_string(), Policy::preset("recency").unwrap())];
    let budgets = [BudgetSpec::Share(0.25), BudgetSpec::Tokens(3000)];
    let costs = ctxwin::session::compare_durable(&datasets, None, &policies, &budgets, Encoding::O200kBase, &store, "cmp").unwrap();
    assert_eq!(costs.len(), 2 * 2 * 2);
    for c in &costs {
        assert!(c.windows > 0, "{c:?}");
        assert_eq!(c.differing, 0, "{c:?}");
        assert!(c.push_us.p50 > 0.0 && c.assemble_us.p99 >= c.assemble_us.p50, "{c:?}");
    }
}

/// Pushes `turns` through `s`, asking for a window after each; the windows.
fn push_and_assemble(s: &mut Session, turns: &[Turn], budget: usize) -> Vec<Window> {
    turns
        .iter()
        .map(|t| {
            s.push(t.clone()).unwrap();
            s.assemble(budget).unwrap()
        })
        .collect()
}

#[test]
fn a_crash_after_windows_loses_nothing_the_reopened_session_derives_the_same_windows() {
    let dir = tmp("crash-derived");
    let store = sqlite(&dir);
    let t = ctxwin::replay::synth::conversation(7, 160);
    let (turns, budget, half) = (t.turns(), 700, 80);
    // Uninterrupted, with one extra window at `half` (the one asked right after the restart).
    let mut u = Session::create(Arc::clone(&store), "uninterrupted", EngineConfig::default()).unwrap();
    let mut want = push_and_assemble(&mut u, &turns[..half], budget);
    want.push(u.assemble(budget).unwrap());
    want.extend(push_and_assemble(&mut u, &turns[half..], budget));
    // Crashed right after a window: no drop, no flush; what that window derived is not stored.
    let mut c = Session::create(Arc::clone(&store), "crashed", EngineConfig::default()).unwrap();
    let mut got = push_and_assemble(&mut c, &turns[..half], budget);
    std::mem::forget(c);
    let mut c = Session::open(Arc::clone(&store), "crashed", EngineConfig::default()).unwrap();
    let first = c.assemble(budget).unwrap();
    assert_eq!(first.messages(), got[half - 1].messages(), "the first window after the crash is the last one before it");
    got.push(first);
    got.extend(push_and_assemble(&mut c, &turns[half..], budget));
    assert_eq!(got.len(), want.len());
    for (k, (a, b)) in got.iter().zip(&want).enumerate() {
        assert_eq!(a.messages(), b.messages(), "window {k}");
        assert_eq!(a.report(), b.report(), "window {k}");
        assert_eq!(a.summaries(), b.summaries(), "window {k}");
    }
}

#[test]
fn what_windows_derive_is_stored_at_the_next_append_and_when_the_handle_is_dropped() {
    let dir = tmp("derived");
    let store = sqlite(&dir);
    let t = ctxwin::replay::synth::conversation(11, 90);
    let mut s = Session::create(Arc::clone(&store), "d", EngineConfig::default()).unwrap();
    push_and_assemble(&mut s, &t.turns()[..60], 500);
    let at_drop = s.engine().plan_state().clone();
    assert_ne!(at_drop, ctxwin::PlanState::new(Policy::default()), "windows changed the plan state");
    drop(s);
    let mut s = Session::open(Arc::clone(&store), "d", EngineConfig::default()).unwrap();
    assert_eq!(s.engine().plan_state(), &at_drop, "dropping the handle stored the plan state");
    // Stored with the next append: a copy that is never dropped still left it in the store.
    s.assemble(300).unwrap();
    let before_push = s.engine().plan_state().clone();
    s.push(t.turns()[60].clone()).unwrap();
    std::mem::forget(s);
    let s = Session::open(Arc::clone(&store), "d", EngineConfig::default()).unwrap();
    assert_eq!(s.engine().plan_state(), &before_push, "the append stored the plan state as of its record");
    // A deleted session's handle stores nothing into a session made again under its id.
    let sessions = Sessions::new(Arc::clone(&store), EngineConfig::default(), SessionsConfig::default());
    sessions.with("d", |s| s.assemble(200).map(|_| ())).unwrap();
    assert!(sessions.delete("d").unwrap());
    drop(sessions);
    Session::create(Arc::clone(&store), "d", EngineConfig::default()).unwrap();
    let fresh = Session::open(Arc::clone(&store), "d", EngineConfig::default()).unwrap();
    assert_eq!(fresh.engine().len(), 0);
    assert_eq!(fresh.engine().plan_state(), &ctxwin::PlanState::new(Policy::default()));
}

#[test]
fn handles_on_one_connection_and_on_two_see_each_others_turns_in_their_windows() {
    let dir = tmp("catch-up");
    let one = sqlite(&dir);
    let other = sqlite(&dir);
    for (id, b) in [("same-connection", Arc::clone(&one)), ("other-connection", other)] {
        let mut x = Session::create(Arc::clone(&one), id, EngineConfig::default()).unwrap();
        let mut y = Session::open(b, id, EngineConfig::default()).unwrap();
        for k in 0..30 {
            x.push(Turn::user(format!("question {k} about the zebra-{k} file"))).unwrap();
            let w = y.assemble(4000).unwrap();
            assert_eq!(y.engine().len(), 2 * k + 1, "{id}: y caught up before its window {k}");
            assert!(w.messages().iter().any(|m| m.content().contains(&format!("zebra-{k}"))), "{id}: x's turn {k} is in y's window");
            y.push(Turn::assistant(format!("answer {k}"))).unwrap();
            x.assemble(4000).unwrap();
            assert_eq!(x.engine().len(), 2 * k + 2, "{id}: x caught up before its window {k}");
        }
    }
}

/// The engine config of the lexical snapshot tests: a commit every 16 turns, so a short session
/// has a committed index to snapshot.
fn snap_config() -> EngineConfig {
    EngineConfig::default().commit_every(16)
}

/// Where a SQLite store at `dir/sessions.db` keeps session `id`'s lexical index snapshot.
fn snap_file(dir: &Path, id: &str) -> PathBuf {
    dir.join("sessions.db.lexical").join(format!("{id}.idx"))
}

/// Pushes `turns` into session `id` (created when `create`), a window after each; closes the
/// handle by dropping it (flushed: the snapshot is saved) or, with `crash`, by leaking it.
fn snap_run(store: &Arc<dyn SessionStore>, id: &str, create: bool, turns: &[Turn], crash: bool) -> (Vec<Window>, usize) {
    let mut s = match create {
        true => Session::create(Arc::clone(store), id, snap_config()).unwrap(),
        false => Session::open(Arc::clone(store), id, snap_config()).unwrap(),
    };
    let resumed = s.lexical_resumed();
    let w = push_and_assemble(&mut s, turns, 1500);
    match crash {
        true => std::mem::forget(s),
        false => drop(s),
    }
    (w, resumed)
}

fn assert_same_windows(got: &[Window], want: &[Window], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (k, (a, b)) in got.iter().zip(want).enumerate() {
        assert_eq!(a.messages(), b.messages(), "{what}: window {k}");
        assert_eq!(a.total_tokens(), b.total_tokens(), "{what}: window {k}");
        assert_eq!(a.report(), b.report(), "{what}: window {k}");
    }
}

/// Something done to a snapshot file.
type Damage = Box<dyn Fn(&Path)>;

/// A reopen takes the turns the stored lexical snapshot holds instead of indexing them, and gives
/// the windows of an uninterrupted session whether the snapshot is current, behind the log (a
/// crash after later commits), missing, damaged, truncated, another session's, or ahead of the log.
#[test]
fn a_reopen_from_the_lexical_snapshot_gives_the_windows_of_an_uninterrupted_one() {
    let dir = tmp("lexsnap");
    let store = sqlite(&dir);
    let t = ctxwin::replay::synth::agent_session(5, 150);
    let turns = t.turns();
    let (want, _) = snap_run(&store, "uninterrupted", true, turns, false);
    assert!(snap_file(&dir, "uninterrupted").exists(), "the dropped handle saved a snapshot");

    // Current: 50 turns pushed, dropped (snapshot of 48), reopened.
    let (mut got, _) = snap_run(&store, "current", true, &turns[..50], false);
    let (rest, resumed) = snap_run(&store, "current", false, &turns[50..], false);
    assert_eq!(resumed, 48);
    got.extend(rest);
    assert_same_windows(&got, &want, "current");

    // Behind: the snapshot holds 48 turns, the log 100 (a handle committed up to 96 and its
    // snapshot was not saved).
    let (mut got, _) = snap_run(&store, "behind", true, &turns[..50], false);
    let old = std::fs::read(snap_file(&dir, "behind")).unwrap();
    let (more, resumed) = snap_run(&store, "behind", false, &turns[50..100], false);
    assert_eq!(resumed, 48);
    got.extend(more);
    std::fs::write(snap_file(&dir, "behind"), &old).unwrap();
    let (rest, resumed) = snap_run(&store, "behind", false, &turns[100..], false);
    assert_eq!(resumed, 48);
    got.extend(rest);
    assert_same_windows(&got, &want, "behind");

    // Crashed: a handle reopened from the snapshot of 48 turns commits up to 96 and is never
    // dropped; the next reopen resumes from the same snapshot, and its first window is the last
    // one before the crash (what windows derived since the last append is derived again).
    let (mut got, _) = snap_run(&store, "crashed", true, &turns[..50], false);
    let (more, _) = snap_run(&store, "crashed", false, &turns[50..100], true);
    got.extend(more);
    let mut s = Session::open(Arc::clone(&store), "crashed", snap_config()).unwrap();
    assert_eq!(s.lexical_resumed(), 48, "the crashed handle saved no snapshot");
    let first = s.assemble(1500).unwrap();
    assert_eq!(first.messages(), got[99].messages(), "the first window after the crash is the last one before it");
    drop(s);

    // Chained: reopened from a snapshot, committed more, saved a larger one, reopened from it.
    let (mut got, _) = snap_run(&store, "chained", true, &turns[..40], false);
    let (more, resumed) = snap_run(&store, "chained", false, &turns[40..90], false);
    assert_eq!(resumed, 32);
    got.extend(more);
    let (rest, resumed) = snap_run(&store, "chained", false, &turns[90..], false);
    assert_eq!(resumed, 80);
    got.extend(rest);
    assert_same_windows(&got, &want, "chained");

    // Missing, damaged, truncated, another session's (same length, other turns), ahead of the
    // log: ignored (every turn indexed again), windows unchanged, and a valid one saved at drop.
    let other = ctxwin::replay::synth::agent_session(6, 150);
    let (_, _) = snap_run(&store, "other", true, &other.turns()[..50], false);
    let (_, _) = snap_run(&store, "longer", true, &turns[..120], false);
    let damages: [(&str, Damage); 5] = [
        ("missing", Box::new(|p| std::fs::remove_file(p).unwrap())),
        (
            "damaged",
            Box::new(|p| {
                let mut b = std::fs::read(p).unwrap();
                let at = b.len() / 2;
                b[at] ^= 0x5a;
                std::fs::write(p, b).unwrap();
            }),
        ),
        (
            "truncated",
            Box::new(|p| {
                let b = std::fs::read(p).unwrap();
                std::fs::write(p, &b[..b.len() - 100]).unwrap();
            }),
        ),
        ("foreign", Box::new(|p| std::fs::copy(snap_file(p.parent().unwrap().parent().unwrap(), "other"), p).map(|_| ()).unwrap())),
        ("ahead", Box::new(|p| std::fs::copy(snap_file(p.parent().unwrap().parent().unwrap(), "longer"), p).map(|_| ()).unwrap())),
    ];
    for (what, damage) in &damages {
        let (mut got, _) = snap_run(&store, what, true, &turns[..50], false);
        let file = snap_file(&dir, what);
        damage(&file);
        let (rest, resumed) = snap_run(&store, what, false, &turns[50..], false);
        assert_eq!(resumed, 0, "{what}");
        got.extend(rest);
        assert_same_windows(&got, &want, what);
        let s = Session::open(Arc::clone(&store), what, snap_config()).unwrap();
        assert_eq!(s.lexical_resumed(), 144, "{what}: a valid snapshot was saved again");
    }

    // Deleting the session removes its snapshot; one put back is not used by a session re-created
    // under that id with other turns.
    let saved = std::fs::read(snap_file(&dir, "current")).unwrap();
    assert!(store.delete("current").unwrap());
    assert!(!snap_file(&dir, "current").exists());
    std::fs::write(snap_file(&dir, "current"), &saved).unwrap();
    let (_, resumed) = snap_run(&store, "current", true, &other.turns()[..20], false);
    assert_eq!(resumed, 0);
    let s = Session::open(Arc::clone(&store), "current", snap_config()).unwrap();
    assert_eq!(s.lexical_resumed(), 16, "the re-created session saved its own");
}

/// Snapshot files are named from validated session ids only (`.` and `..` included: the suffix
/// keeps them file names).
#[test]
fn lexical_snapshots_live_beside_the_database_under_the_session_id() {
    let dir = tmp("lexsnap-names");
    let store = sqlite(&dir);
    let t = ctxwin::replay::synth::agent_session(3, 40);
    for id in ["..", ".", "a.b-c_d"] {
        snap_run(&store, id, true, t.turns(), false);
        assert!(snap_file(&dir, id).is_file(), "{id}");
    }
    let names: Vec<String> =
        std::fs::read_dir(dir.join("sessions.db.lexical")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 3, "{names:?}: no temporary file left behind");
}

/// On real agent transcripts (mini-swe-agent, SWE-agent), a session reopened halfway from its
/// lexical snapshot (a commit every 16 turns, so there is one) gives every window an
/// uninterrupted session gives.
#[test]
fn a_reopen_from_the_lexical_snapshot_keeps_the_windows_of_real_agent_transcripts() {
    let dir = tmp("lexsnap-real");
    let store = sqlite(&dir);
    let mut compared = 0;
    for name in ["mini-swe-agent", "swe-agent"] {
        let Some(p) = shared(name) else { continue };
        let ts = loaders::load_path(&p, None).unwrap();
        for (k, t) in ts.iter().take(4).enumerate() {
            let turns = t.turns();
            let half = turns.len() / 2;
            if half < 16 {
                continue;
            }
            let id = format!("{name}-{k}");
            let (want, _) = snap_run(&store, &format!("{id}-u"), true, turns, false);
            let (mut got, _) = snap_run(&store, &id, true, &turns[..half], false);
            let (rest, resumed) = snap_run(&store, &id, false, &turns[half..], false);
            assert_eq!(resumed, half / 16 * 16, "{id}");
            got.extend(rest);
            assert_same_windows(&got, &want, &id);
            compared += 1;
        }
    }
    eprintln!("{compared} transcripts compared window by window");
}
