//! Durable sessions: an [`Engine`] whose every state-changing call (`push`, `pin`, `unpin`, a
//! policy change) is appended to a [`SessionStore`] before it returns, and that [`Session::open`]
//! rebuilds by replaying the log. Backends: SQLite (one file, many sessions; feature `sqlite`, on by
//! default) and PostgreSQL (many workers on many machines; feature `postgres`). [`Sessions`] serves
//! many sessions from one process through an LRU of hot ones.

#[cfg(feature = "postgres")]
mod postgres;
mod record;
#[cfg(feature = "replay")]
mod replay;
mod sessions;
mod spec;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::sync::Arc;

use rustc_hash::FxHashSet;

#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use record::{Derived, EncodedRecords, Entry, Record, Snapshot, SummaryRow, validate_id};
#[cfg(feature = "replay")]
pub use replay::{DurableCost, DurableReplay, compare_durable, replay_durable};
pub use sessions::{Sessions, SessionsConfig};
pub use spec::StoreSpec;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteStore, Synchronous};

use crate::engine::{Engine, EngineConfig, SearchHit};
use crate::error::{Error, Result};
use crate::pins::{PinId, PinLayer};
use crate::plan::PlanState;
use crate::policy::Policy;
use crate::turn::{Turn, TurnId};
use crate::window::Window;

/// Where sessions are kept. Implementations serialize appends to one session (SQLite: the
/// database write lock; PostgreSQL: a per-session advisory lock) and number them 1, 2, 3, … with a
/// uniqueness constraint on `(session, seq)` as a backstop.
pub trait SessionStore: Send + Sync {
    /// The store's name in errors: `sqlite:PATH` or `postgres://host:port/db` (no password).
    fn name(&self) -> &str;
    /// Creates the session; `Ok(false)` when it already existed.
    fn create(&self, session: &str) -> Result<bool>;
    /// Everything stored for the session ([`Error::UnknownSession`] when it does not exist).
    fn load(&self, session: &str) -> Result<Snapshot>;
    /// [`SessionStore::load`] with the records left encoded: everything but the records, and the
    /// records as `(seq, JSON)` in order, which [`Session::open`] decodes one by one as its replay
    /// reaches them (so the lexical index's thread starts on the first turns while the rest are
    /// still being decoded, and the store's connection is not held while they are). `Ok(None)`
    /// when the store does not offer it (the default): the reopen then calls `load`.
    fn load_encoded(&self, session: &str) -> Result<Option<(Snapshot, EncodedRecords)>> {
        let _ = session;
        Ok(None)
    }
    /// Whether the store keeps snapshots of sessions' lexical indexes ([`SessionStore::save_lexical`]).
    /// False by default (PostgreSQL: a reopen indexes every turn).
    fn keeps_lexical(&self) -> bool {
        false
    }
    /// The snapshot of the session's lexical index saved by [`SessionStore::save_lexical`], if any
    /// (a cache: [`Session::open`] checks it against the log and ignores it when it does not
    /// match). `Ok(None)` by default: the reopen indexes every turn.
    fn load_lexical(&self, session: &str) -> Result<Option<Vec<u8>>> {
        let _ = session;
        Ok(None)
    }
    /// Keeps `snapshot` (the session's lexical index, committed part) for the next
    /// [`Session::open`], replacing an older one atomically. A no-op by default.
    fn save_lexical(&self, session: &str, snapshot: &[u8]) -> Result<()> {
        let _ = (session, snapshot);
        Ok(())
    }
    /// The records after `after`, in order (to catch up with other writers).
    fn load_since(&self, session: &str, after: u64) -> Result<Vec<Entry>>;
    /// In one transaction holding the session's write lock: reads the records after `after`,
    /// hands them to `apply` (which applies them and returns the record to append, if any),
    /// appends that record with the next sequence number, stores `derived` (its plan state as of
    /// record `after`), and commits. Durable when it returns `Ok(last seq)`. When `apply` fails,
    /// nothing is appended or stored and its error is returned.
    fn append(&self, session: &str, after: u64, derived: &Derived, apply: &mut dyn FnMut(&[Entry]) -> Result<Option<Record>>) -> Result<u64>;
    /// Stores `derived` in one transaction: its plan state as of record `seq` (unless a later one is
    /// stored) and its summaries (ignoring ones already stored). [`Error::UnknownSession`] when the
    /// session does not exist (nothing is stored for it).
    fn save_derived(&self, session: &str, seq: u64, derived: &Derived) -> Result<()>;
    /// The ids of all sessions, sorted.
    fn sessions(&self) -> Result<Vec<String>>;
    /// Deletes the session and everything stored for it, in one transaction holding its write
    /// lock; `Ok(false)` when it did not exist.
    fn delete(&self, session: &str) -> Result<bool>;
    /// Whether a quick call may run on an async runtime's worker thread (`ctxwin serve` runs a hot
    /// session's window there). False by default: the PostgreSQL client drives its own runtime,
    /// which cannot be entered from inside another one.
    fn runs_on_async_workers(&self) -> bool {
        false
    }
}

/// A durable conversation or agent session: an [`Engine`] plus its log in a [`SessionStore`].
/// Every state-changing call is stored before it returns; [`Session::open`] continues where the
/// last handle stopped, windows included (same messages, tokens, report and stable prefix).
pub struct Session {
    id: String,
    store: Arc<dyn SessionStore>,
    engine: Engine,
    seq: u64,
    /// A window changed the plan state since it was last stored.
    plan_dirty: bool,
    saved_summaries: FxHashSet<(TurnId, TurnId, usize)>,
    /// Fresh summary keys the last `derived` read, and whether it read every cached entry.
    summaries_read: (usize, bool),
    stale: Option<String>,
    bytes: usize,
    /// Turns the lexical index snapshot in the store holds (loaded at open or saved since).
    lexical_saved: usize,
    /// Turns the open took from that snapshot.
    lexical_resumed: usize,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("id", &self.id).field("store", &self.store.name()).field("seq", &self.seq).finish()
    }
}

/// Per-session memory not proportional to its history (engine, index writer, caches), bytes.
const SESSION_BASE_BYTES: usize = 256 * 1024;
/// Encoded bytes from which a reopen decodes on a thread of its own ([`Session::replay_encoded`]):
/// ~5 ms of JSON, well above the cost of a thread and its first scheduling on a busy machine.
const DECODE_THREAD_MIN_BYTES: usize = 1 << 20;
/// Records per batch handed from the decoding thread to the replay.
const DECODE_BATCH: usize = 32;
/// Batches the decoding thread may run ahead of the replay.
const DECODE_BATCHES_AHEAD: usize = 16;
/// Memory per stored byte of history (turn, rendered messages, index, references), estimated.
const BYTES_PER_LOG_BYTE: usize = 4;

impl Session {
    /// Creates session `id` (which must not exist) with `config`; its policy is stored as the
    /// first record.
    pub fn create(store: Arc<dyn SessionStore>, id: &str, config: EngineConfig) -> Result<Session> {
        validate_id(id)?;
        if !store.create(id)? {
            return Err(Error::Store { store: store.name().to_string(), session: Some(id.to_string()), message: "session already exists".into() });
        }
        let mut s = Session::open(store, id, config)?;
        let policy = s.engine.policy().clone();
        s.set_policy(policy)?;
        Ok(s)
    }

    /// Opens session `id`, creating it when it does not exist.
    pub fn open_or_create(store: Arc<dyn SessionStore>, id: &str, config: EngineConfig) -> Result<Session> {
        validate_id(id)?;
        if store.create(id)? {
            let mut s = Session::open(store, id, config)?;
            let policy = s.engine.policy().clone();
            s.set_policy(policy)?;
            return Ok(s);
        }
        Session::open(store, id, config)
    }

    /// Opens existing session `id`: replays its log through a new engine made with `config`
    /// (the stored policy replaces the config's), restores the plan state and the summaries.
    pub fn open(store: Arc<dyn SessionStore>, id: &str, config: EngineConfig) -> Result<Session> {
        validate_id(id)?;
        let (snap, encoded) = match store.load_encoded(id)? {
            Some(loaded) => loaded,
            None => (store.load(id)?, Vec::new()),
        };
        let mut s = Session {
            id: id.to_string(),
            engine: Engine::new(config)?,
            seq: 0,
            plan_dirty: false,
            saved_summaries: FxHashSet::default(),
            summaries_read: (0, false),
            stale: None,
            bytes: 0,
            lexical_saved: 0,
            lexical_resumed: 0,
            store,
        };
        let plan = match &snap.plan {
            Some((seq, json)) => {
                let state: PlanState = serde_json::from_str(json).map_err(|e| s.damaged(format!("plan state does not parse: {e}")))?;
                Some((*seq, state))
            }
            None => None,
        };
        // Counts stored by earlier handles: replaying the turns looks them up instead of encoding.
        for batch in &snap.counts {
            s.engine.prime_token_counts(batch);
        }
        s.engine.record_token_counts();
        let mut plan = plan;
        if plan.as_ref().is_some_and(|(seq, _)| *seq == 0)
            && let Some((_, p)) = plan.take()
        {
            s.engine.set_plan_state(p);
        }
        // The lexical index's committed part as an earlier handle saved it: the turns it holds are
        // not indexed again (checked against the log as the replay goes; ignored when it differs).
        // A snapshot that cannot be read is only a cache missed.
        let lexical = if s.store.keeps_lexical() { s.store.load_lexical(id).ok().flatten() } else { None };
        s.lexical_saved = s.engine.begin_rebuild(lexical.as_deref());
        drop(lexical);
        // Records the store decoded, or (one or the other) records still encoded, decoded as the
        // replay goes (on a thread of their own for a long log).
        for e in snap.entries {
            s.replay_one(e, &mut plan)?;
        }
        s.replay_encoded(encoded, &mut plan)?;
        if !s.engine.end_rebuild()? {
            s.lexical_saved = 0;
        }
        s.lexical_resumed = s.lexical_saved;
        // The index's periodic commit (milliseconds, every `commit_every` turns) runs after an
        // append has released the store's write lock, not under it (see `Session::append`).
        s.engine.defer_commits(true);
        for r in snap.summaries {
            let key = (r.first as TurnId, r.last as TurnId, r.allowance as usize);
            s.saved_summaries.insert(key);
            s.engine.insert_summary(key, r.text);
        }
        Ok(s)
    }

    /// Applies one replayed record, then the saved plan state if it follows that record.
    fn replay_one(&mut self, e: Entry, plan: &mut Option<(u64, PlanState)>) -> Result<()> {
        let seq = e.seq;
        self.apply_owned(e)?;
        if plan.as_ref().is_some_and(|(at, _)| *at == seq)
            && let Some((_, p)) = plan.take()
        {
            self.engine.set_plan_state(p);
        }
        Ok(())
    }

    /// Decodes and replays `encoded`. A long log is decoded on a second thread while this one
    /// replays (the two halves of a reopen's CPU once the lexical index is resumed from its
    /// snapshot: JSON decoding ~a third, the replay — references, token counts — the rest), handed
    /// over in batches; a short one (under [`DECODE_THREAD_MIN_BYTES`]) here: a thread costs more than it saves.
    fn replay_encoded(&mut self, encoded: EncodedRecords, plan: &mut Option<(u64, PlanState)>) -> Result<()> {
        let store_name = self.store.name().to_string();
        let id = self.id.clone();
        let decode = |(seq, body): (u64, String)| -> Result<Entry> { Ok(Entry { seq, record: Record::decode(&store_name, &id, seq, &body)? }) };
        if encoded.iter().map(|(_, body)| body.len()).sum::<usize>() < DECODE_THREAD_MIN_BYTES {
            for e in encoded {
                self.replay_one(decode(e)?, plan)?;
            }
            return Ok(());
        }
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Result<Entry>>>(DECODE_BATCHES_AHEAD);
            let decode = &decode;
            let decoder = std::thread::Builder::new().name("ctxwin-decode".into()).spawn_scoped(scope, move || {
                let mut batch = Vec::with_capacity(DECODE_BATCH);
                for e in encoded {
                    let r = decode(e);
                    let failed = r.is_err();
                    batch.push(r);
                    if batch.len() == DECODE_BATCH || failed {
                        // A failed record ends the batch and the decoding; so does a replay that stopped.
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(DECODE_BATCH));
                        if tx.send(full).is_err() || failed {
                            return;
                        }
                    }
                }
                let _ = tx.send(batch);
            });
            if let Err(e) = decoder {
                return Err(Error::ThreadPool(format!("reopening {}: {e}", self.id)));
            }
            // Dropping `rx` on an error stops the decoder at its next batch.
            for batch in rx {
                for e in batch {
                    self.replay_one(e?, plan)?;
                }
            }
            Ok(())
        })
    }

    fn damaged(&self, message: String) -> Error {
        Error::StoreDamaged { store: self.store.name().to_string(), session: Some(self.id.clone()), message }
    }

    /// Applies a stored record to the engine (catch-up; the caller keeps the record).
    fn apply(&mut self, e: &Entry) -> Result<()> {
        self.apply_owned(e.clone())
    }

    /// Applies a stored record to the engine, moving its turn or text in (replay).
    fn apply_owned(&mut self, e: Entry) -> Result<()> {
        if e.seq != self.seq + 1 {
            return Err(self.damaged(format!("record {} follows record {} (a gap)", e.seq, self.seq)));
        }
        self.bytes += record_bytes(&e.record);
        match e.record {
            Record::Push { turn } => {
                if let Err(err) = self.engine.push(turn) {
                    return Err(self.damaged(format!("record {} does not replay: {err}", e.seq)));
                }
            }
            Record::Pin { id, layer, priority, text } => {
                let got = self.engine.pin(layer, text, priority);
                if got.0 != id {
                    return Err(self.damaged(format!("record {} pins id {id} but replay gave {}", e.seq, got.0)));
                }
            }
            Record::Unpin { id } => {
                self.engine.unpin(PinId(id));
            }
            Record::Policy { policy } => self.engine.set_policy(policy),
        }
        self.seq = e.seq;
        Ok(())
    }

    fn check(&self) -> Result<()> {
        match &self.stale {
            Some(m) => Err(Error::SessionStale { session: self.id.clone(), store: self.store.name().to_string(), message: m.clone() }),
            None => Ok(()),
        }
    }

    /// Appends the record `make` returns after catching up; marks the handle stale when the engine
    /// took the call but the store did not.
    fn append<T>(&mut self, mut make: impl FnMut(&mut Engine) -> Result<(Option<Record>, T)>) -> Result<T> {
        self.check()?;
        let store = Arc::clone(&self.store);
        let id = self.id.clone();
        let mut took = false;
        let mut made = 0;
        let mut out = None;
        let mut caught_up = Ok(());
        let after = self.seq;
        let derived = self.derived()?;
        // A deferred index commit that failed after the last append is retried (and its error
        // returned) before anything more is stored.
        self.engine.commit_due()?;
        let r = store.append(&id, after, &derived, &mut |newer| {
            for e in newer {
                if let Err(err) = self.apply(e) {
                    caught_up = Err(err.to_string());
                    return Err(err);
                }
            }
            let (rec, v) = make(&mut self.engine)?;
            took = rec.is_some();
            made = rec.as_ref().map_or(0, record_bytes);
            out = Some(v);
            Ok(rec)
        });
        match (r, out) {
            (Ok(seq), Some(v)) => {
                self.seq = seq;
                self.bytes += made;
                self.stored(derived);
                // The index commit `push` deferred, now that the store's write lock is released
                // (other sessions' appends do not wait for it). The record is stored either way;
                // if the commit fails its documents stay pending (scored in memory, so windows are
                // unchanged) and the next append retries it first.
                let _ = self.engine.commit_due();
                Ok(v)
            }
            (Ok(_), None) => Err(self.damaged("append returned without applying".into())),
            (Err(e), _) => {
                if took || caught_up.is_err() {
                    self.stale = Some(e.to_string());
                }
                Err(e)
            }
        }
    }

    /// Pushes a turn (see [`Engine::push`]); durable when it returns `Ok`.
    pub fn push(&mut self, turn: Turn) -> Result<TurnId> {
        let mut turn = Some(turn);
        self.append(|engine| {
            let t = turn.take().ok_or_else(|| Error::InvalidTurn("push retried".into()))?;
            // Refused before it is cloned or serialized (both recurse into the arguments).
            let t = crate::turn::refuse_deep_arguments(t, engine.len())?;
            let record = Record::Push { turn: t.clone() };
            let id = engine.push(t)?;
            Ok((Some(record), id))
        })
    }

    /// Pins instruction text (see [`Engine::pin`]); durable when it returns.
    pub fn pin(&mut self, layer: PinLayer, text: impl Into<String>, priority: i32) -> Result<PinId> {
        let text = text.into();
        self.append(|engine| {
            let id = engine.pin(layer, text.clone(), priority);
            Ok((Some(Record::Pin { id: id.0, layer, priority, text: text.clone() }), id))
        })
    }

    /// Removes a pin; returns whether it existed (only then is anything stored).
    pub fn unpin(&mut self, id: PinId) -> Result<bool> {
        self.append(|engine| {
            let existed = engine.unpin(id);
            Ok((existed.then_some(Record::Unpin { id: id.0 }), existed))
        })
    }

    /// Changes the policy (the per-turn plan state starts over); durable when it returns.
    pub fn set_policy(&mut self, policy: Policy) -> Result<()> {
        self.append(|engine| {
            engine.set_policy(policy.clone());
            Ok((Some(Record::Policy { policy: policy.clone() }), ()))
        })
    }

    /// Applies what other writers appended since this handle's last call; returns how many records.
    pub fn sync(&mut self) -> Result<usize> {
        self.check()?;
        let newer = self.store.load_since(&self.id, self.seq)?;
        for e in &newer {
            if let Err(err) = self.apply(e) {
                self.stale = Some(err.to_string());
                return Err(err);
            }
        }
        Ok(newer.len())
    }

    /// Assembles the per-turn window (see [`Engine::assemble`]) after catching up with other
    /// writers. Touches the store only to catch up, and not at all when this handle is known to be
    /// its session's only writer since its last call (SQLite): the plan state and new summaries are
    /// stored with the next append or by [`Session::flush`] (see [`Derived`]).
    pub fn assemble(&mut self, budget: usize) -> Result<Window> {
        self.sync()?;
        let w = self.engine.assemble(budget)?;
        self.plan_dirty = true;
        Ok(w)
    }

    /// Assembles a window for `query` (see [`Engine::assemble_for`]), like [`Session::assemble`].
    pub fn assemble_for(&mut self, budget: usize, query: &str) -> Result<Window> {
        self.sync()?;
        let w = self.engine.assemble_for(budget, query)?;
        self.plan_dirty = true;
        Ok(w)
    }

    /// Stores what windows derived since the last append (plan state, new summaries), so a reopened
    /// session starts from it. Called when the handle is dropped (errors ignored there); call it
    /// yourself to see them. A stale or deleted handle stores nothing.
    ///
    /// It also saves a snapshot of the lexical index when its committed part grew since the last
    /// one (every 1,024 turns), so the next [`Session::open`] does not index those turns again
    /// (SQLite; see [`SessionStore::save_lexical`]).
    pub fn flush(&mut self) -> Result<()> {
        self.check()?;
        let derived = self.derived()?;
        if !derived.is_empty() {
            self.store.save_derived(&self.id, self.seq, &derived)?;
        }
        self.stored(derived);
        self.save_lexical()
    }

    /// Saves the lexical index's snapshot if it holds more turns than the stored one.
    fn save_lexical(&mut self) -> Result<()> {
        let turns = self.engine.lexical_committed_turns();
        if turns <= self.lexical_saved || !self.store.keeps_lexical() {
            return Ok(());
        }
        if let Some(snapshot) = self.engine.lexical_snapshot()? {
            self.store.save_lexical(&self.id, &snapshot)?;
        }
        self.lexical_saved = turns;
        Ok(())
    }

    /// What is derived and not stored yet (the token counts are handed over: if storing them
    /// fails they are only counted again at the next reopen).
    fn derived(&mut self) -> Result<Derived> {
        let plan = match self.plan_dirty {
            true => Some(serde_json::to_string(self.engine.plan_state()).map_err(|e| self.damaged(format!("cannot serialize plan state: {e}")))?),
            false => None,
        };
        let row = |((first, last, allowance), text): ((TurnId, TurnId, usize), &str)| SummaryRow {
            first: first as u64,
            last: last as u64,
            allowance: allowance as u64,
            text: text.to_string(),
        };
        // The summaries cached since the last append (walking the whole cache, up to 4,096
        // entries, on every append was ~4% of a server's CPU), or all of them after an overflow.
        let (fresh, n) = self.engine.fresh_summaries();
        self.summaries_read = (n, fresh.is_none());
        let summaries = match fresh {
            Some(fresh) => fresh.into_iter().filter(|(k, _)| !self.saved_summaries.contains(k)).map(row).collect(),
            None => self.engine.summary_entries().filter(|(k, _)| !self.saved_summaries.contains(k)).map(row).collect(),
        };
        Ok(Derived { plan, summaries, counts: self.engine.take_token_counts() })
    }

    /// Notes `derived` as stored.
    fn stored(&mut self, derived: Derived) {
        if derived.plan.is_some() {
            self.plan_dirty = false;
        }
        self.engine.summaries_seen(self.summaries_read.0, self.summaries_read.1);
        self.saved_summaries.extend(derived.summaries.iter().map(|r| (r.first as TurnId, r.last as TurnId, r.allowance as usize)));
    }

    /// Marks the handle unusable: its session was deleted (nothing more is stored through it).
    pub(crate) fn discard(&mut self, why: &str) {
        self.stale = Some(why.to_string());
    }

    /// The `k` turns that best match `query` (see [`Engine::search`]).
    pub fn search(&mut self, query: &str, k: usize) -> Result<Vec<SearchHit<'_>>> {
        self.check()?;
        self.engine.search(query, k)
    }

    /// The engine (read-only: changes go through the session so they are stored).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The session's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The sequence number of the last record applied.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// How many turns of the lexical index this handle took from the store's snapshot of it
    /// instead of indexing them when it opened (0: there was none, or it did not match the log).
    pub fn lexical_resumed(&self) -> usize {
        self.lexical_resumed
    }

    /// The store's name.
    pub fn store_name(&self) -> &str {
        self.store.name()
    }

    /// An estimate of the memory the session holds, in bytes (for [`Sessions`]' bound).
    pub fn memory_estimate(&self) -> usize {
        SESSION_BASE_BYTES + BYTES_PER_LOG_BYTE * self.bytes
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Best effort: what is derived is a cache a later window recomputes; a failure here loses
        // no turn.
        if self.stale.is_none() {
            let _ = self.flush();
        }
    }
}

/// The history bytes a record adds (text of its turn or pin), for [`Session::memory_estimate`].
fn record_bytes(r: &Record) -> usize {
    match r {
        Record::Push { turn } => turn.blocks().iter().map(block_bytes).sum(),
        Record::Pin { text, .. } => text.len(),
        _ => 0,
    }
}

fn block_bytes(b: &crate::turn::Block) -> usize {
    match b {
        crate::turn::Block::Text { text } => text.len(),
        crate::turn::Block::ToolCall { call_id, name, arguments } => call_id.len() + name.len() + arguments.to_string().len(),
        crate::turn::Block::ToolResult { call_id, content, .. } => call_id.len() + content.len(),
    }
}
