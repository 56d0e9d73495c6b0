//! The embedded backend: many sessions in one SQLite file (WAL mode).
//!
//! Durability: an append commits before `push` returns. With `synchronous=NORMAL` (the default) a
//! committed append survives a crash of the process at any point; a power loss or OS crash may
//! lose the last appends (never corrupts the file). With `synchronous=FULL` every commit is
//! fsynced, so it also survives power loss.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, TryLockError, mpsc};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use rustc_hash::FxHashMap;

use super::SessionStore;
use super::record::{Derived, EncodedRecords, Entry, Record, Snapshot, SummaryRow, validate_id};
use crate::error::{Error, Result};

/// `PRAGMA application_id` of a ctxwin session file ("ctxw").
const APPLICATION_ID: i32 = 0x6374_7877;
/// Schema version (`PRAGMA user_version`). 2: token counts ride in their append's record row and
/// the plan state lives in a rowid table (see [`SCHEMA`]); a version 1 file is migrated on open.
const SCHEMA_VERSION: i32 = 2;

/// The tables. What one append writes is what the store pays for (each b-tree page a commit
/// touches is a 4 kB WAL frame), so an append touches as few as it can: the record's row, which
/// also carries the token counts computed since the previous append (`counts`), and the session's
/// plan-state row. `plans` is a rowid table because a plan state (~3 kB on LoCoMo) fits in one of
/// its leaf pages, where a `WITHOUT ROWID` table keeps at most ~1 kB of a row in the leaf and
/// spills the rest to overflow pages; updating it in place leaves its `session` index untouched.
/// `token_counts` holds the counts of calls that append no record (a flush, an unpin of nothing).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    session TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL, counts BLOB,
    PRIMARY KEY (session, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS plans (session TEXT NOT NULL UNIQUE, seq INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS summaries (
    session TEXT NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL, allowance INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (session, first, last, allowance)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS token_counts (session TEXT NOT NULL, body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS token_counts_session ON token_counts (session);
";

/// From schema version 1: records gain their `counts` column, and the plan states move from
/// the `WITHOUT ROWID` table `plan_state` to `plans`. Runs in the transaction that opens the file.
const MIGRATE_FROM_1: &str = "
ALTER TABLE records ADD COLUMN counts BLOB;
CREATE TABLE plans (session TEXT NOT NULL UNIQUE, seq INTEGER NOT NULL, body TEXT NOT NULL);
INSERT INTO plans (session, seq, body) SELECT session, seq, body FROM plan_state;
DROP TABLE plan_state;
";

/// How hard SQLite syncs each commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// WAL + `synchronous=NORMAL`: survives a process crash at any point (default).
    #[default]
    Normal,
    /// WAL + `synchronous=FULL`: every commit fsynced; survives power loss too.
    Full,
}

/// Sessions in one SQLite file.
pub struct SqliteStore {
    name: String,
    path: PathBuf,
    /// The `-shm` header's view (see [`WalPeek`]); declared before the connections, so it is
    /// unmapped before they close.
    peek: Option<WalPeek>,
    /// What this store knows of each session's last record. Apart from the connection, so a
    /// catch-up check can use it while an append holds the connection (lock order: `db`, then
    /// `seen`; the check takes `seen` alone).
    seen: Mutex<Seen>,
    db: Mutex<Db>,
    /// A second connection, for catching up while the first one is busy appending.
    reader: Mutex<Connection>,
    _checkpoints: Option<Checkpoints>,
}

/// How often the checkpoint thread copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// How often while the WAL is past a quarter of [`WAL_LIMIT_BYTES`].
const CHECKPOINT_BUSY_EVERY: Duration = Duration::from_millis(10);
/// WAL size past which the append that crosses it checkpoints (SQLite's `wal_autocheckpoint`,
/// raised from its 4 MB); also the size the WAL file is truncated to when it restarts.
const WAL_LIMIT_BYTES: i64 = if cfg!(test) { 1 << 20 } else { 64 << 20 };

/// The store's checkpoint thread: every [`CHECKPOINT_EVERY`] a `PASSIVE` checkpoint (which never
/// blocks appends) copies what it can of the WAL into the file, so appends do not pay for it. Under
/// a steady stream of appends such a checkpoint never reaches the WAL's end, and SQLite restarts
/// the WAL only once every frame is copied: the append that takes the WAL past
/// [`WAL_LIMIT_BYTES`] checkpoints itself (no other append writes meanwhile, so it completes,
/// copying only what the thread has not), and the next append restarts the WAL from its start.
/// While appends fill the WAL fast the thread checks every [`CHECKPOINT_BUSY_EVERY`]. A last
/// checkpoint runs when the store is dropped. A failed checkpoint is retried at the next tick; it
/// loses nothing (committed appends are in the WAL).
struct Checkpoints {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpoints {
    /// `None` when no connection or thread can be had (appends then checkpoint as SQLite does
    /// by default).
    fn start(path: &Path) -> Option<Checkpoints> {
        let conn = Connection::open(path).ok()?;
        conn.busy_timeout(Duration::from_secs(1)).ok()?;
        let (tx, rx) = mpsc::channel::<()>();
        let run = move || {
            let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap_or(4096);
            let mut every = CHECKPOINT_EVERY;
            loop {
                let last = matches!(rx.recv_timeout(every), Err(mpsc::RecvTimeoutError::Disconnected) | Ok(()));
                let frames = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)).unwrap_or(0);
                every = if frames.saturating_mul(page) > WAL_LIMIT_BYTES / 4 { CHECKPOINT_BUSY_EVERY } else { CHECKPOINT_EVERY };
                if last {
                    return;
                }
            }
        };
        let thread = std::thread::Builder::new().name("ctxwin-sqlite-checkpoint".into()).spawn(run).ok()?;
        Some(Checkpoints { stop: Some(tx), thread: Some(thread) })
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The writer connection.
struct Db {
    conn: Connection,
}

/// Bytes of one copy of the WAL-index header at the start of the `-shm` file (SQLite's file
/// format, "WAL-Index Format": `iVersion`, unused, `iChange`, `isInit`, `bigEndCksum`, `szPage`,
/// `mxFrame`, `nPage`, frame checksum, salts, header checksum), kept twice, back to back.
const WAL_HEADER_WORDS: usize = 12;
/// `iVersion` of the WAL index (3007000).
const WAL_INDEX_VERSION: u32 = 3_007_000;

/// A read-only view of the WAL index's header, read without a lock the way SQLite's own readers
/// first read it (`walIndexTryHdr`: the first copy, a barrier, the second; a writer writes them in
/// the other order, so equal copies are a consistent header). Every commit by any connection in
/// any process rewrites the header (its change counter `iChange` at least), so a header equal to
/// one read while the store's knowledge was current means nothing was committed since, and the
/// catch-up check skips `PRAGMA data_version`, whose read transaction takes and drops a file lock
/// on the `-shm` file (two `fcntl` calls, ~2.5 µs here, 3–7 µs just after an append). Anything
/// unexpected (no `-shm` file, a header not initialized or of another version, copies that differ)
/// answers `None`, and the check falls back to the pragma.
struct WalPeek {
    map: memmap2::Mmap,
}

impl WalPeek {
    /// Maps the header of `<db>-shm` (the connection must have read the file, so it exists and is
    /// initialized; it is not truncated while one of this store's connections keeps it open).
    fn open(db: &Path) -> Option<WalPeek> {
        let mut shm = db.as_os_str().to_owned();
        shm.push("-shm");
        let file = std::fs::File::open(shm).ok()?;
        if file.metadata().ok()?.len() < (2 * WAL_HEADER_WORDS * 4) as u64 {
            return None;
        }
        // SAFETY: a read-only shared mapping of a file SQLite keeps at least this long while one
        // of our connections is open (`Db` drops the mapping before its connection); the bytes
        // are only read through atomic loads (`header`), as other processes write them.
        let map = unsafe { memmap2::MmapOptions::new().len(2 * WAL_HEADER_WORDS * 4).map(&file) }.ok()?;
        let peek = WalPeek { map };
        peek.header().map(|_| peek)
    }

    /// The header when both copies agree and it is initialized, else `None`.
    fn header(&self) -> Option<[u32; WAL_HEADER_WORDS]> {
        use std::sync::atomic::{AtomicU32, Ordering, fence};
        let base = self.map.as_ptr();
        if base.align_offset(std::mem::align_of::<AtomicU32>()) != 0 {
            return None;
        }
        // SAFETY: the mapping is 2 × WAL_HEADER_WORDS words long and aligned (checked above);
        // AtomicU32 has the layout of u32, and atomic loads tolerate concurrent writers.
        let word = |i: usize| unsafe { (*base.add(4 * i).cast::<AtomicU32>()).load(Ordering::Relaxed) };
        let mut first = [0u32; WAL_HEADER_WORDS];
        for (i, w) in first.iter_mut().enumerate() {
            *w = word(i);
        }
        fence(Ordering::Acquire);
        let same = (0..WAL_HEADER_WORDS).all(|i| word(WAL_HEADER_WORDS + i) == first[i]);
        // `isInit` is the first byte of word 3 (native order, as SQLite writes it).
        let init = first[3].to_ne_bytes()[0] == 1;
        (same && init && first[0] == WAL_INDEX_VERSION).then_some(first)
    }

    /// The header's change counter (`iChange`), bumped by every commit and WAL restart.
    fn changes(header: &[u32; WAL_HEADER_WORDS]) -> u32 {
        header[2]
    }
}

/// The last record of each session this connection appended or read, valid while no other
/// connection (process or store) has committed: `PRAGMA data_version` changes exactly then. With it
/// a handle that is its session's only writer catches up without reading the log.
#[derive(Default)]
struct Seen {
    version: i64,
    last: FxHashMap<String, u64>,
    /// The WAL-index header as of a moment when `last` was current (see [`WalPeek`]).
    header: Option<[u32; WAL_HEADER_WORDS]>,
}

impl Seen {
    /// Forgets what it knew when another connection has committed since (`version` is the
    /// connection's current `PRAGMA data_version`).
    fn refresh(&mut self, version: i64) {
        if version != self.version {
            self.version = version;
            self.last.clear();
        }
    }

    fn saw(&mut self, session: &str, last: u64) {
        match self.last.get_mut(session) {
            Some(v) => *v = last,
            None => {
                self.last.insert(session.to_string(), last);
            }
        }
    }
}

/// The connection's `PRAGMA data_version`.
fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("PRAGMA data_version")?.query_row([], |r| r.get(0))
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish()
    }
}

impl SqliteStore {
    /// Opens (creating when absent) the session file at `path`, `synchronous=NORMAL`, waiting up
    /// to 5 s for another connection's write lock.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        SqliteStore::open_with(path, Synchronous::Normal, Duration::from_secs(5))
    }

    /// Opens with a sync level and a busy timeout (after which a locked file is
    /// [`Error::StoreLocked`]).
    pub fn open_with(path: impl AsRef<Path>, sync: Synchronous, busy_timeout: Duration) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let name = format!("sqlite:{}", path.display());
        let fail = |e: rusqlite::Error| map_err(&name, &path, None, e);
        let mut conn = Connection::open(&path).map_err(fail)?;
        conn.busy_timeout(busy_timeout).map_err(fail)?;
        check_foreign(&conn, &name).map_err(|e| match e {
            Err2::Sql(e) => fail(e),
            Err2::Ours(e) => e,
        })?;
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(fail)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Store { store: name, session: None, message: format!("cannot use WAL mode (journal_mode is {mode})") });
        }
        let level = match sync {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", level).map_err(fail)?;
        migrate(&mut conn).map_err(fail)?;
        let reader = Connection::open(&path).map_err(fail)?;
        reader.busy_timeout(busy_timeout).map_err(fail)?;
        conn.pragma_update(None, "journal_size_limit", WAL_LIMIT_BYTES).map_err(fail)?;
        let checkpoints = Checkpoints::start(&path);
        if checkpoints.is_some() {
            // Checkpoints (copying the WAL into the file, and the fsync that goes with them) run on
            // that thread; an append checkpoints only when the WAL is past its limit.
            let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).map_err(fail)?;
            conn.pragma_update(None, "wal_autocheckpoint", WAL_LIMIT_BYTES / page.max(512)).map_err(fail)?;
        }
        // Reading the schema version above made the connection open (and initialize) the WAL index.
        let peek = WalPeek::open(&path);
        let db = Mutex::new(Db { conn });
        Ok(SqliteStore { name, path, peek, seen: Mutex::new(Seen::default()), db, reader: Mutex::new(reader), _checkpoints: checkpoints })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where session `session`'s lexical index snapshot is kept: `<file>.lexical/<session>.idx`
    /// beside the database (a valid session id is a file name: `[A-Za-z0-9._-]`, and the suffix
    /// keeps `.` and `..` from naming directories). `None` for an in-memory database or a URI.
    fn lexical_path(&self, session: &str) -> Option<PathBuf> {
        validate_id(session).ok()?;
        let raw = self.path.as_os_str();
        if raw.is_empty() || raw == ":memory:" || raw.to_string_lossy().starts_with("file:") || self.path.file_name().is_none() {
            return None;
        }
        let mut dir = raw.to_owned();
        dir.push(".lexical");
        Some(PathBuf::from(dir).join(format!("{session}.idx")))
    }

    /// Locks what this store knows of each session's last record.
    fn seen(&self) -> Result<MutexGuard<'_, Seen>> {
        self.seen.lock().map_err(|_| self.poisoned())
    }

    fn lock(&self) -> Result<MutexGuard<'_, Db>> {
        self.db.lock().map_err(|_| self.poisoned())
    }

    fn poisoned(&self) -> Error {
        Error::Store { store: self.name.clone(), session: None, message: "connection poisoned by a panic".into() }
    }

    fn err(&self, session: &str) -> impl Fn(rusqlite::Error) -> Error + '_ {
        let session = session.to_string();
        move |e| map_err(&self.name, &self.path, Some(&session), e)
    }
}

/// Creates the schema, or migrates an older one to it, in one transaction.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Read under the write lock: two processes opening a version 1 file migrate it once.
    let version: i32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 1 {
        tx.execute_batch(MIGRATE_FROM_1)?;
    }
    tx.execute_batch(&format!("{SCHEMA} PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"))?;
    tx.commit()
}

enum Err2 {
    Sql(rusqlite::Error),
    Ours(Error),
}

/// Refuses a file that is a SQLite database of another application.
fn check_foreign(conn: &Connection, name: &str) -> std::result::Result<(), Err2> {
    let app: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(Err2::Sql)?;
    let version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(Err2::Sql)?;
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(Err2::Sql)?;
    let foreign = |message: String| Err(Err2::Ours(Error::StoreDamaged { store: name.to_string(), session: None, message }));
    if app == 0 && tables > 0 {
        return foreign(format!("a SQLite database of another application ({tables} schema objects, no ctxwin application id)"));
    }
    if app != 0 && app != APPLICATION_ID {
        return foreign(format!("a SQLite database of another application (application id {app:#x})"));
    }
    if version > SCHEMA_VERSION {
        return foreign(format!("schema version {version} is newer than this ctxwin's ({SCHEMA_VERSION})"));
    }
    Ok(())
}

/// A typed error for a SQLite failure on `path`.
fn map_err(name: &str, path: &Path, session: Option<&str>, e: rusqlite::Error) -> Error {
    let store = name.to_string();
    let session = session.map(str::to_string);
    let code = match &e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    };
    match code {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::StoreLocked { store, session },
        Some(ErrorCode::DiskFull) => Error::StoreFull { store, session },
        Some(ErrorCode::ReadOnly) => Error::StoreReadOnly { store, session },
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => Error::StoreDamaged { store, session, message: e.to_string() },
        Some(ErrorCode::CannotOpen) if dir_read_only(path) => Error::StoreReadOnly { store, session },
        _ => Error::Store { store, session, message: e.to_string() },
    }
}

/// Whether the file's directory refuses a new file because it is read-only.
fn dir_read_only(path: &Path) -> bool {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let probe = dir.join(format!(".ctxwin-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            false
        }
        Err(e) => matches!(e.kind(), std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied),
    }
}

/// The records after `after`, in order; with `counts`, the token counts stored with them are
/// added to it.
fn read_entries(conn: &Connection, name: &str, session: &str, after: u64, counts: Option<&mut Vec<Vec<u8>>>) -> std::result::Result<Vec<Entry>, Err2> {
    let rows = read_encoded(conn, session, after, counts).map_err(Err2::Sql)?;
    rows.into_iter().map(|(seq, body)| Ok(Entry { seq, record: Record::decode(name, session, seq, &body).map_err(Err2::Ours)? })).collect()
}

/// The records after `after`, in order, as stored: `(seq, JSON)`; with `counts`, the token counts
/// stored with them are added to it.
fn read_encoded(conn: &Connection, session: &str, after: u64, mut counts: Option<&mut Vec<Vec<u8>>>) -> rusqlite::Result<EncodedRecords> {
    let mut st = conn.prepare_cached("SELECT seq, body, counts FROM records WHERE session = ?1 AND seq > ?2 ORDER BY seq")?;
    let mut rows = st.query(params![session, after as i64])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        out.push((seq as u64, row.get(1)?));
        if let Some(counts) = counts.as_deref_mut()
            && let Some(batch) = row.get::<_, Option<Vec<u8>>>(2)?
        {
            counts.push(batch);
        }
    }
    Ok(out)
}

/// Stores the plan state (as of record `seq`, unless a later one is stored), new summaries and,
/// unless `counts_stored` (they went into the appended record's row), the token counts.
fn write_derived(conn: &Connection, session: &str, seq: u64, derived: &Derived, counts_stored: bool) -> rusqlite::Result<()> {
    if let Some(state) = &derived.plan {
        conn.prepare_cached(
            "INSERT INTO plans (session, seq, body) VALUES (?1, ?2, ?3)
             ON CONFLICT (session) DO UPDATE SET seq = excluded.seq, body = excluded.body WHERE excluded.seq >= plans.seq",
        )?
        .execute(params![session, seq as i64, state])?;
    }
    if !derived.summaries.is_empty() {
        let mut st = conn.prepare_cached("INSERT OR IGNORE INTO summaries (session, first, last, allowance, body) VALUES (?1, ?2, ?3, ?4, ?5)")?;
        for r in &derived.summaries {
            st.execute(params![session, r.first as i64, r.last as i64, r.allowance as i64, r.text])?;
        }
    }
    if !derived.counts.is_empty() && !counts_stored {
        conn.prepare_cached("INSERT INTO token_counts (session, body) VALUES (?1, ?2)")?.execute(params![session, derived.counts])?;
    }
    Ok(())
}

fn exists(conn: &Connection, session: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM sessions WHERE id = ?1")?.query_row([session], |_| Ok(())).optional().map(|o| o.is_some())
}

impl SqliteStore {
    /// Everything stored for the session, its records still encoded (`(seq, JSON)`, in order):
    /// read in one read transaction, and decoded by the caller after the connection is released.
    fn load_parts(&self, session: &str) -> Result<(Snapshot, EncodedRecords)> {
        let mut db = self.lock()?;
        let fail = self.err(session);
        let conn = &mut db.conn;
        // One read transaction: a consistent view while another connection appends.
        let tx = conn.transaction().map_err(&fail)?;
        // Read before the records: a commit in between makes the next check re-read (safe).
        self.seen()?.refresh(version(&tx).map_err(&fail)?);
        if !exists(&tx, session).map_err(&fail)? {
            return Err(Error::UnknownSession { session: session.to_string(), store: self.name.clone() });
        }
        // Counts of calls that appended nothing first, then those stored with the records (the
        // order does not matter: each is a count of one text).
        let mut st = tx.prepare_cached("SELECT body FROM token_counts WHERE session = ?1 ORDER BY rowid").map_err(&fail)?;
        let mut counts = st.query_map([session], |r| r.get::<_, Vec<u8>>(0)).map_err(&fail)?.collect::<rusqlite::Result<Vec<_>>>().map_err(&fail)?;
        drop(st);
        let encoded = read_encoded(&tx, session, 0, Some(&mut counts)).map_err(&fail)?;
        let plan = tx
            .query_row("SELECT seq, body FROM plans WHERE session = ?1", [session], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?)))
            .optional()
            .map_err(&fail)?;
        let mut st = tx.prepare("SELECT first, last, allowance, body FROM summaries WHERE session = ?1").map_err(&fail)?;
        let rows = st
            .query_map([session], |r| {
                Ok(SummaryRow { first: r.get::<_, i64>(0)? as u64, last: r.get::<_, i64>(1)? as u64, allowance: r.get::<_, i64>(2)? as u64, text: r.get(3)? })
            })
            .map_err(&fail)?;
        let summaries = rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&fail)?;
        drop(st);
        tx.commit().map_err(&fail)?;
        self.seen()?.saw(session, encoded.last().map_or(0, |e| e.0));
        Ok((Snapshot { entries: Vec::new(), plan, summaries, counts }, encoded))
    }
}

impl SessionStore for SqliteStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn create(&self, session: &str) -> Result<bool> {
        let db = self.lock()?;
        let n = db.conn.execute("INSERT OR IGNORE INTO sessions (id) VALUES (?1)", [session]).map_err(self.err(session))?;
        Ok(n == 1)
    }

    fn load(&self, session: &str) -> Result<Snapshot> {
        let (mut snap, encoded) = self.load_parts(session)?;
        snap.entries =
            encoded.into_iter().map(|(seq, body)| Ok(Entry { seq, record: Record::decode(&self.name, session, seq, &body)? })).collect::<Result<_>>()?;
        Ok(snap)
    }

    fn load_encoded(&self, session: &str) -> Result<Option<(Snapshot, EncodedRecords)>> {
        self.load_parts(session).map(Some)
    }

    fn load_since(&self, session: &str, after: u64) -> Result<Vec<Entry>> {
        // Nothing committed since `seen` was current (the header unchanged) and the session's last
        // record is `after`: nothing to read, and no connection needed, so this answers even while
        // an append holds the writer connection. Under load it nearly always does, and reading
        // through the reader connection then was a window's largest cost in the server
        // (`serve_load`: its assemble p50 70–79 µs with that read, 44–59 µs without).
        {
            let seen = self.seen()?;
            let header = self.peek.as_ref().and_then(WalPeek::header);
            if header.is_some() && header == seen.header && seen.last.get(session) == Some(&after) {
                return Ok(Vec::new());
            }
        }
        let fail = self.err(session);
        let decode = |e| match e {
            Err2::Sql(e) => fail(e),
            Err2::Ours(e) => e,
        };
        let mut db = match self.db.try_lock() {
            Ok(db) => db,
            // A writer holds the connection (an append in its transaction): read through the
            // reader connection instead of waiting (WAL lets it read while the writer writes).
            Err(TryLockError::WouldBlock) => {
                let reader = self.reader.lock().map_err(|_| self.poisoned())?;
                return read_entries(&reader, &self.name, session, after, None).map_err(decode);
            }
            Err(TryLockError::Poisoned(_)) => return Err(self.poisoned()),
        };
        let conn = &mut db.conn;
        let mut seen = self.seen()?;
        // Nothing committed since `seen` was current: it still is, without a read transaction.
        let header = self.peek.as_ref().and_then(WalPeek::header);
        if header.is_none() || header != seen.header {
            // Read before the records: a commit in between makes the next check re-read (safe);
            // the header was read before the version, so a commit in between changes it too.
            seen.refresh(version(conn).map_err(&fail)?);
            seen.header = header;
        }
        if seen.last.get(session) == Some(&after) {
            return Ok(Vec::new());
        }
        let newer = read_entries(conn, &self.name, session, after, None).map_err(decode)?;
        // An unknown session reads as no records: only remember sessions seen with records.
        if let Some(e) = newer.last() {
            seen.saw(session, e.seq);
        }
        Ok(newer)
    }

    fn append(&self, session: &str, after: u64, derived: &Derived, apply: &mut dyn FnMut(&[Entry]) -> Result<Option<Record>>) -> Result<u64> {
        let mut db = self.lock()?;
        let fail = self.err(session);
        let conn = &mut db.conn;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&fail)?;
        // Holding the write lock, the version is current: nobody can commit until we do.
        let version = version(&tx).map_err(&fail)?;
        let known = {
            let mut seen = self.seen()?;
            seen.refresh(version);
            seen.last.get(session) == Some(&after)
        };
        let before = self.peek.as_ref().and_then(WalPeek::header);
        let newer = if known {
            Vec::new()
        } else {
            if !exists(&tx, session).map_err(&fail)? {
                return Err(Error::UnknownSession { session: session.to_string(), store: self.name.clone() });
            }
            read_entries(&tx, &self.name, session, after, None).map_err(|e| match e {
                Err2::Sql(e) => fail(e),
                Err2::Ours(e) => e,
            })?
        };
        let mut last = newer.last().map_or(after, |e| e.seq);
        let appended = match apply(&newer)? {
            Some(rec) => {
                last += 1;
                let body = rec.encode()?;
                let counts = (!derived.counts.is_empty()).then_some(&derived.counts);
                tx.prepare_cached("INSERT INTO records (session, seq, kind, body, counts) VALUES (?1, ?2, ?3, ?4, ?5)")
                    .and_then(|mut st| st.execute(params![session, last as i64, rec.kind(), body, counts]))
                    .map_err(&fail)?;
                true
            }
            None => false,
        };
        write_derived(&tx, session, after, derived, appended).map_err(&fail)?;
        tx.commit().map_err(&fail)?;
        let mut seen = self.seen()?;
        seen.saw(session, last);
        // `seen` is current as of this commit. The header read now stands for that moment only if
        // no other connection committed since: our commit bumps the change counter once if it
        // wrote anything, else not at all (a WAL restart in our transaction bumps it again, and
        // then the next check just reads).
        let wrote = u32::from(appended || !derived.is_empty());
        let after_commit = self.peek.as_ref().and_then(WalPeek::header);
        seen.header = match (before, after_commit) {
            (Some(b), Some(a)) if WalPeek::changes(&a).wrapping_sub(WalPeek::changes(&b)) == wrote => Some(a),
            _ => None,
        };
        Ok(last)
    }

    fn save_derived(&self, session: &str, seq: u64, derived: &Derived) -> Result<()> {
        if derived.is_empty() {
            return Ok(());
        }
        let mut db = self.lock()?;
        let fail = self.err(session);
        let tx = db.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&fail)?;
        if !exists(&tx, session).map_err(&fail)? {
            return Err(Error::UnknownSession { session: session.to_string(), store: self.name.clone() });
        }
        write_derived(&tx, session, seq, derived, false).map_err(&fail)?;
        tx.commit().map_err(&fail)
    }

    fn delete(&self, session: &str) -> Result<bool> {
        let mut db = self.lock()?;
        let fail = self.err(session);
        let tx = db.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&fail)?;
        for table in ["records", "plans", "summaries", "token_counts"] {
            tx.execute(&format!("DELETE FROM {table} WHERE session = ?1"), [session]).map_err(&fail)?;
        }
        let n = tx.execute("DELETE FROM sessions WHERE id = ?1", [session]).map_err(&fail)?;
        tx.commit().map_err(&fail)?;
        self.seen()?.last.remove(session);
        // The index snapshot is a cache checked against the log at every reopen: one left behind
        // (this fails, or a handle elsewhere saves one later) is ignored by a session re-created
        // under this id unless it holds exactly that session's turns.
        if let Some(p) = self.lexical_path(session) {
            let _ = std::fs::remove_file(p);
        }
        Ok(n == 1)
    }

    fn keeps_lexical(&self) -> bool {
        self.lexical_path("s").is_some()
    }

    fn load_lexical(&self, session: &str) -> Result<Option<Vec<u8>>> {
        let Some(path) = self.lexical_path(session) else { return Ok(None) };
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Written to a file of its own, then renamed over the old one: a reader sees one or the
    /// other whole (a crash can leave a temporary file, or after a power loss a damaged snapshot,
    /// which the reopen detects and ignores). Not synced: it is a cache.
    fn save_lexical(&self, session: &str, snapshot: &[u8]) -> Result<()> {
        static TMP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let Some(path) = self.lexical_path(session) else { return Ok(()) };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let n = TMP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut tmp = path.clone().into_os_string();
        tmp.push(format!(".tmp-{}-{n}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let written = std::fs::write(&tmp, snapshot).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io(path, e));
        }
        Ok(())
    }

    /// Local file I/O under a mutex, no runtime of its own.
    fn runs_on_async_workers(&self) -> bool {
        true
    }

    fn sessions(&self) -> Result<Vec<String>> {
        let db = self.lock()?;
        let fail = |e| map_err(&self.name, &self.path, None, e);
        let mut st = db.conn.prepare("SELECT id FROM sessions ORDER BY id").map_err(fail)?;
        let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(fail)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::turn::Turn;

    /// An empty directory of this test process named after `name`, and the session file to make in it.
    fn fresh_db(name: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("ctxwin-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.db");
        (dir, path)
    }

    /// A file written by schema version 1 (plan states in `plan_state`, token counts in their own
    /// table) opens migrated: every record, the plan state and the counts are read back, and new
    /// appends store their counts with their record.
    #[test]
    fn a_version_1_file_is_migrated_on_open_and_loses_nothing() {
        let (dir, path) = fresh_db("v1");
        let turn = Record::Push { turn: Turn::user("hello from version 1") };
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&format!(
                "PRAGMA journal_mode = WAL; BEGIN;
                 CREATE TABLE sessions (id TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID;
                 CREATE TABLE records (session TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (session, seq)) WITHOUT ROWID;
                 CREATE TABLE plan_state (session TEXT PRIMARY KEY NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL) WITHOUT ROWID;
                 CREATE TABLE summaries (session TEXT NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL, allowance INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (session, first, last, allowance)) WITHOUT ROWID;
                 CREATE TABLE token_counts (session TEXT NOT NULL, body BLOB NOT NULL);
                 CREATE INDEX token_counts_session ON token_counts (session);
                 PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 1;
                 INSERT INTO sessions VALUES ('old');
                 INSERT INTO plan_state VALUES ('old', 1, '{{\"plan\":1}}');
                 INSERT INTO token_counts VALUES ('old', x'0102');
                 COMMIT;"
            ))
            .unwrap();
            conn.execute("INSERT INTO records VALUES ('old', 1, 'push', ?1)", [turn.encode().unwrap()]).unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let snap = store.load("old").unwrap();
        assert_eq!(snap.entries, vec![Entry { seq: 1, record: turn.clone() }]);
        assert_eq!(snap.plan, Some((1, "{\"plan\":1}".to_string())));
        assert_eq!(snap.counts, vec![vec![1u8, 2]]);
        let derived = Derived { plan: Some("{\"plan\":2}".into()), summaries: Vec::new(), counts: vec![3, 4] };
        assert_eq!(store.append("old", 1, &derived, &mut |_| Ok(Some(turn.clone()))).unwrap(), 2);
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        let snap = store.load("old").unwrap();
        assert_eq!(snap.entries.len(), 2);
        assert_eq!(snap.plan, Some((1, "{\"plan\":2}".to_string())));
        assert_eq!(snap.counts, vec![vec![1u8, 2], vec![3, 4]]);
        let conn = Connection::open(&path).unwrap();
        let version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let in_record: Option<Vec<u8>> = conn.query_row("SELECT counts FROM records WHERE seq = 2", [], |r| r.get(0)).unwrap();
        assert_eq!(in_record, Some(vec![3, 4]), "an append's counts ride in its record's row");
        drop(conn);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A steady stream of appends (never a pause for a passive checkpoint to catch up) does not
    /// grow the WAL with what is written (limit 1 MB in tests): the held checkpoint lets SQLite
    /// restart it. Without it the WAL reached 145 MB in this test.
    #[test]
    fn the_wal_stays_bounded_under_a_steady_stream_of_appends() {
        let (dir, path) = fresh_db("wal");
        let store = SqliteStore::open(&path).unwrap();
        store.create("w").unwrap();
        let body = "lorem ipsum dolor sit amet ".repeat(150);
        let (mut seq, mut largest) = (0, 0);
        let start = std::time::Instant::now();
        // Until 48x the limit is written (a few seconds here; at most a minute on a loaded machine).
        while seq * (body.len() as u64) < 48 * WAL_LIMIT_BYTES as u64 && start.elapsed() < Duration::from_secs(60) {
            let rec = Record::Push { turn: Turn::user(format!("{seq} {body}")) };
            seq = store.append("w", seq, &Derived::default(), &mut |_| Ok(Some(rec.clone()))).unwrap();
            largest = largest.max(std::fs::metadata(dir.join("s.db-wal")).map_or(0, |m| m.len()));
        }
        let written = seq * body.len() as u64;
        assert!(written > 32 * WAL_LIMIT_BYTES as u64, "the test wrote only {written} bytes");
        assert!(largest < 16 * WAL_LIMIT_BYTES as u64, "the WAL reached {largest} bytes after {written} written");
        assert_eq!(store.load("w").unwrap().entries.len() as u64, seq);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The lock-free catch-up check: after its own append a store skips the read transaction (its
    /// header snapshot stands), and every commit of another connection on the same file — another
    /// store, as another process would be — is still seen, in both directions, many times over.
    #[test]
    fn the_header_peek_skips_the_read_only_when_nothing_else_committed() {
        let (dir, path) = fresh_db("peek");
        let (a, b) = (SqliteStore::open(&path).unwrap(), SqliteStore::open(&path).unwrap());
        assert!(a.peek.is_some(), "the -shm header is mapped");
        a.create("s").unwrap();
        let push = |n: u64| Record::Push { turn: Turn::user(format!("turn {n}")) };
        let mut seq = 0;
        for round in 0..50u64 {
            // `a` appends: its snapshot stands for the state after its own commit.
            seq = a
                .append("s", seq, &Derived::default(), &mut |newer| {
                    assert!(newer.is_empty(), "round {round}: a is current");
                    Ok(Some(push(seq + 1)))
                })
                .unwrap();
            assert_eq!(a.seen.lock().unwrap().header, a.peek.as_ref().and_then(WalPeek::header), "round {round}");
            assert!(a.load_since("s", seq).unwrap().is_empty());
            // `b` sees it, then appends; `a` must see that without appending first.
            let got = b.load_since("s", seq - 1).unwrap();
            assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![seq], "round {round}");
            seq = b.append("s", seq, &Derived::default(), &mut |_| Ok(Some(push(seq + 1)))).unwrap();
            let got = a.load_since("s", seq - 1).unwrap();
            assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![seq], "round {round}: a sees b's commit");
        }
        assert_eq!(a.load("s").unwrap().entries.len() as u64, seq);
        drop((a, b));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The check made while the writer connection is busy (an append in its transaction) skips
    /// the read only while nothing else committed: another store's commit is seen through the
    /// reader connection, and so is one of the store's own that `seen` does not stand for yet.
    #[test]
    fn a_check_beside_a_busy_writer_still_sees_other_commits() {
        let (dir, path) = fresh_db("busy");
        let (a, b) = (SqliteStore::open(&path).unwrap(), SqliteStore::open(&path).unwrap());
        a.create("s").unwrap();
        let push = |n: u64| Record::Push { turn: Turn::user(format!("turn {n}")) };
        let mut seq = 0;
        for round in 0..20u64 {
            seq = a.append("s", seq, &Derived::default(), &mut |_| Ok(Some(push(seq + 1)))).unwrap();
            let busy = a.db.lock().unwrap();
            assert!(a.load_since("s", seq).unwrap().is_empty(), "round {round}: a is current");
            assert_eq!(a.load_since("s", seq - 1).unwrap().len(), 1, "round {round}: an older position reads");
            seq = b.append("s", seq, &Derived::default(), &mut |_| Ok(Some(push(seq + 1)))).unwrap();
            let got = a.load_since("s", seq - 1).unwrap();
            assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![seq], "round {round}: a sees b's commit while busy");
            drop(busy);
            // The commit is seen again once the writer is free (no stale knowledge kept).
            assert_eq!(a.load_since("s", seq - 1).unwrap().len(), 1, "round {round}");
            assert!(a.load_since("s", seq).unwrap().is_empty(), "round {round}");
        }
        drop((a, b));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
