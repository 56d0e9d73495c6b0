//! The PostgreSQL backend: the same tables (prefixed `ctxwin_`, so they can share a database),
//! for many worker processes on many machines serving the same sessions.
//!
//! Appends to one session are serialized by a per-session advisory transaction lock
//! (`pg_advisory_xact_lock(hashtextextended(session, 0))`): the writer that holds it catches up
//! with the records it has not seen, then appends the next sequence number. The primary key
//! `(session, seq)` is the backstop: a writer that did not take the lock cannot duplicate a number.
//! A dropped connection (server restart) is reopened on the next call.

use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};

use super::SessionStore;
use super::record::{Derived, EncodedRecords, Entry, Record, Snapshot, SummaryRow};
use crate::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ctxwin_sessions (id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS ctxwin_records (
    session TEXT NOT NULL, seq BIGINT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (session, seq));
CREATE TABLE IF NOT EXISTS ctxwin_plan_state (session TEXT PRIMARY KEY, seq BIGINT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ctxwin_summaries (
    session TEXT NOT NULL, first BIGINT NOT NULL, last BIGINT NOT NULL, allowance BIGINT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (session, first, last, allowance));
CREATE TABLE IF NOT EXISTS ctxwin_token_counts (id BIGSERIAL PRIMARY KEY, session TEXT NOT NULL, body BYTEA NOT NULL);
CREATE INDEX IF NOT EXISTS ctxwin_token_counts_session ON ctxwin_token_counts (session);
";
/// Advisory lock key taken while the schema is created (concurrent `CREATE TABLE IF NOT EXISTS`
/// can otherwise collide).
const SCHEMA_LOCK: i64 = 0x6374_7877;

/// Sessions in a PostgreSQL database.
pub struct PostgresStore {
    name: String,
    config: Config,
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("server", &self.name).finish()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user[:password]@host:port/db`) and creates the tables when
    /// absent.
    pub fn connect(url: &str) -> Result<PostgresStore> {
        let mut config =
            Config::from_str(url).map_err(|e| Error::Store { store: "postgres".into(), session: None, message: format!("bad connection string: {e}") })?;
        config.connect_timeout(Duration::from_secs(5));
        let name = display_name(&config);
        let store = PostgresStore { name, config, client: Mutex::new(None) };
        store.with(None, |c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
            tx.batch_execute(SCHEMA)?;
            tx.commit()
        })?;
        Ok(store)
    }

    /// Runs `f` on the connection, reconnecting first when it was lost.
    fn with<T>(&self, session: Option<&str>, f: impl FnOnce(&mut Client) -> std::result::Result<T, postgres::Error>) -> Result<T> {
        let mut guard: MutexGuard<'_, Option<Client>> = self.client.lock().map_err(|_| Error::Store {
            store: self.name.clone(),
            session: session.map(str::to_string),
            message: "connection poisoned by a panic".into(),
        })?;
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            *guard = Some(self.config.connect(NoTls).map_err(|e| self.map(session, e))?);
        }
        let Some(client) = guard.as_mut() else {
            return Err(Error::Store { store: self.name.clone(), session: session.map(str::to_string), message: "no connection".into() });
        };
        let r = f(client).map_err(|e| self.map(session, e));
        if client.is_closed() {
            *guard = None;
        }
        r
    }

    fn map(&self, session: Option<&str>, e: postgres::Error) -> Error {
        let store = self.name.clone();
        let session = session.map(str::to_string);
        match e.code() {
            Some(c) if *c == SqlState::DISK_FULL || *c == SqlState::OUT_OF_MEMORY => Error::StoreFull { store, session },
            Some(c) if *c == SqlState::READ_ONLY_SQL_TRANSACTION => Error::StoreReadOnly { store, session },
            Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE || *c == SqlState::T_R_DEADLOCK_DETECTED => Error::StoreLocked { store, session },
            Some(c) if *c == SqlState::DATA_CORRUPTED || *c == SqlState::INDEX_CORRUPTED => Error::StoreDamaged { store, session, message: e.to_string() },
            _ => Error::Store { store, session, message: e.to_string() },
        }
    }
}

/// `postgres://user@host:port/db`, without the password.
fn display_name(c: &Config) -> String {
    let host = match c.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!("postgres://{}@{host}:{port}/{}", c.get_user().unwrap_or(""), c.get_dbname().unwrap_or(""))
}

/// Raw rows `(seq, body)` after `after`.
fn rows_since(c: &mut impl postgres::GenericClient, session: &str, after: u64) -> std::result::Result<Vec<(u64, String)>, postgres::Error> {
    let rows = c.query("SELECT seq, body FROM ctxwin_records WHERE session = $1 AND seq > $2 ORDER BY seq", &[&session, &(after as i64)])?;
    Ok(rows.iter().map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, String>(1))).collect())
}

/// Stores the plan state (as of record `seq`, unless a later one is stored) and new summaries.
fn write_derived(tx: &mut postgres::Transaction<'_>, session: &str, seq: u64, derived: &Derived) -> std::result::Result<(), postgres::Error> {
    if let Some(state) = &derived.plan {
        tx.execute(
            "INSERT INTO ctxwin_plan_state (session, seq, body) VALUES ($1, $2, $3)
             ON CONFLICT (session) DO UPDATE SET seq = excluded.seq, body = excluded.body WHERE excluded.seq >= ctxwin_plan_state.seq",
            &[&session, &(seq as i64), state],
        )?;
    }
    if !derived.summaries.is_empty() {
        let st = tx.prepare("INSERT INTO ctxwin_summaries (session, first, last, allowance, body) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")?;
        for r in &derived.summaries {
            tx.execute(&st, &[&session, &(r.first as i64), &(r.last as i64), &(r.allowance as i64), &r.text])?;
        }
    }
    if !derived.counts.is_empty() {
        tx.execute("INSERT INTO ctxwin_token_counts (session, body) VALUES ($1, $2)", &[&session, &derived.counts])?;
    }
    Ok(())
}

impl PostgresStore {
    fn decode(&self, session: &str, rows: Vec<(u64, String)>) -> Result<Vec<Entry>> {
        rows.into_iter().map(|(seq, body)| Ok(Entry { seq, record: Record::decode(&self.name, session, seq, &body)? })).collect()
    }

    fn unknown(&self, session: &str) -> Error {
        Error::UnknownSession { session: session.to_string(), store: self.name.clone() }
    }
}

impl PostgresStore {
    /// Everything stored for the session, its records still encoded (`(seq, JSON)`, in order),
    /// read in one repeatable-read transaction.
    fn load_parts(&self, session: &str) -> Result<(Snapshot, EncodedRecords)> {
        type Raw = (bool, Vec<(u64, String)>, Option<(u64, String)>, Vec<SummaryRow>, Vec<Vec<u8>>);
        let (exists, rows, plan, summaries, counts): Raw = self.with(Some(session), |c| {
            let mut tx = c.build_transaction().isolation_level(postgres::IsolationLevel::RepeatableRead).read_only(true).start()?;
            let exists = tx.query_opt("SELECT 1 FROM ctxwin_sessions WHERE id = $1", &[&session])?.is_some();
            let rows = rows_since(&mut tx, session, 0)?;
            let plan = tx.query_opt("SELECT seq, body FROM ctxwin_plan_state WHERE session = $1", &[&session])?.map(|r| (r.get::<_, i64>(0) as u64, r.get(1)));
            let summaries = tx
                .query("SELECT first, last, allowance, body FROM ctxwin_summaries WHERE session = $1", &[&session])?
                .iter()
                .map(|r| SummaryRow { first: r.get::<_, i64>(0) as u64, last: r.get::<_, i64>(1) as u64, allowance: r.get::<_, i64>(2) as u64, text: r.get(3) })
                .collect();
            let counts = tx.query("SELECT body FROM ctxwin_token_counts WHERE session = $1 ORDER BY id", &[&session])?.iter().map(|r| r.get(0)).collect();
            tx.commit()?;
            Ok((exists, rows, plan, summaries, counts))
        })?;
        if !exists {
            return Err(self.unknown(session));
        }
        Ok((Snapshot { entries: Vec::new(), plan, summaries, counts }, rows))
    }
}

impl SessionStore for PostgresStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn create(&self, session: &str) -> Result<bool> {
        let n = self.with(Some(session), |c| c.execute("INSERT INTO ctxwin_sessions (id) VALUES ($1) ON CONFLICT DO NOTHING", &[&session]))?;
        Ok(n == 1)
    }

    fn load(&self, session: &str) -> Result<Snapshot> {
        let (mut snap, rows) = self.load_parts(session)?;
        snap.entries = self.decode(session, rows)?;
        Ok(snap)
    }

    fn load_encoded(&self, session: &str) -> Result<Option<(Snapshot, EncodedRecords)>> {
        self.load_parts(session).map(Some)
    }

    fn load_since(&self, session: &str, after: u64) -> Result<Vec<Entry>> {
        let rows = self.with(Some(session), |c| rows_since(c, session, after))?;
        self.decode(session, rows)
    }

    fn append(&self, session: &str, after: u64, derived: &Derived, apply: &mut dyn FnMut(&[Entry]) -> Result<Option<Record>>) -> Result<u64> {
        let mut outcome: Result<u64> = Err(self.unknown(session));
        self.with(Some(session), |c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&session])?;
            if tx.query_opt("SELECT 1 FROM ctxwin_sessions WHERE id = $1", &[&session])?.is_none() {
                return Ok(());
            }
            let newer = match self.decode(session, rows_since(&mut tx, session, after)?) {
                Ok(n) => n,
                Err(e) => {
                    outcome = Err(e);
                    return Ok(());
                }
            };
            let mut last = newer.last().map_or(after, |e| e.seq);
            let rec = match apply(&newer).and_then(|r| r.map(|r| r.encode().map(|b| (r.kind(), b))).transpose()) {
                Ok(r) => r,
                Err(e) => {
                    outcome = Err(e);
                    return Ok(());
                }
            };
            if let Some((kind, body)) = rec {
                last += 1;
                tx.execute("INSERT INTO ctxwin_records (session, seq, kind, body) VALUES ($1, $2, $3, $4)", &[&session, &(last as i64), &kind, &body])?;
            }
            write_derived(&mut tx, session, after, derived)?;
            tx.commit()?;
            outcome = Ok(last);
            Ok(())
        })?;
        outcome
    }

    fn save_derived(&self, session: &str, seq: u64, derived: &Derived) -> Result<()> {
        if derived.is_empty() {
            return Ok(());
        }
        let exists = self.with(Some(session), |c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&session])?;
            if tx.query_opt("SELECT 1 FROM ctxwin_sessions WHERE id = $1", &[&session])?.is_none() {
                return Ok(false);
            }
            write_derived(&mut tx, session, seq, derived)?;
            tx.commit()?;
            Ok(true)
        })?;
        if exists { Ok(()) } else { Err(self.unknown(session)) }
    }

    fn delete(&self, session: &str) -> Result<bool> {
        self.with(Some(session), |c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&session])?;
            for table in ["ctxwin_records", "ctxwin_plan_state", "ctxwin_summaries", "ctxwin_token_counts"] {
                tx.execute(&format!("DELETE FROM {table} WHERE session = $1"), &[&session])?;
            }
            let n = tx.execute("DELETE FROM ctxwin_sessions WHERE id = $1", &[&session])?;
            tx.commit()?;
            Ok(n == 1)
        })
    }

    fn sessions(&self) -> Result<Vec<String>> {
        self.with(None, |c| Ok(c.query("SELECT id FROM ctxwin_sessions ORDER BY id", &[])?.iter().map(|r| r.get(0)).collect()))
    }
}
