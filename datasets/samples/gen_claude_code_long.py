#!/usr/bin/env python3
"""Generates claude-code-long.jsonl: a long, invented Claude Code session (JSON Lines, one event per
line) on a made-up Rust crate, `tidewater`, a small log-structured key-value store.

The session is written to exercise context-window assembly: ~100 tool calls (Read, Bash, Grep,
Edit, Glob, a Task sub-agent) with large outputs (whole files, cargo test/clippy/bench logs),
identifiers and paths that recur across the session (SegmentWriter::flush_block,
MAX_SEGMENT_BYTES, merge_segments, wal_replay_after_crash, src/compaction.rs:<line>…), and later
turns that refer back to what earlier tool outputs showed. Files are kept in memory and edits are
applied, so a later Read shows the edited text.

Deterministic: fixed seed, fixed clock; running it twice gives byte-identical output.
Usage: python3 gen_claude_code_long.py [OUT]   (default: claude-code-long.jsonl beside this script)
"""

import json
import os
import random
import sys
import uuid
from datetime import datetime, timedelta, timezone

RNG = random.Random(20250914)
ROOT = "/home/dev/tidewater"
SESSION = str(uuid.UUID(int=RNG.getrandbits(128), version=4))
MODEL = "claude-sonnet-4-5-20250929"
VERSION = "2.0.14"
CLOCK = [datetime(2025, 9, 14, 9, 12, 3, 114000, tzinfo=timezone.utc)]

# --------------------------------------------------------------------------------------------
# The project's files (invented). Helpers pad them with plausible, varied code.
# --------------------------------------------------------------------------------------------

def helper_fns(prefix, n):
    out = []
    kinds = ["u32", "u64", "usize", "i64"]
    for i in range(n):
        k = kinds[i % len(kinds)]
        name = f"{prefix}_{['encode', 'decode', 'checked', 'clamp', 'align'][i % 5]}_{k}_{i}"
        out += [
            f"/// Helper {i} for {prefix}: {['encodes', 'decodes', 'checks', 'clamps', 'aligns'][i % 5]} a `{k}`.",
            f"#[inline]",
            f"pub(crate) fn {name}(v: {k}, buf: &mut Vec<u8>) -> usize {{",
            f"    let bytes = v.to_le_bytes();",
            f"    buf.extend_from_slice(&bytes[..{[4, 8, 8, 8][i % 4]}.min(bytes.len())]);",
            f"    bytes.len()",
            f"}}",
            "",
        ]
    return out


FILES = {}

FILES["Cargo.toml"] = """[package]
name = "tidewater"
version = "0.3.1"
edition = "2021"
description = "A small log-structured key-value store with segment compaction"
license = "MIT"

[dependencies]
crc32fast = "1.4"
thiserror = "1"
clap = { version = "4", features = ["derive"] }
tracing = "0.1"

[dev-dependencies]
tempfile = "3"
criterion = "0.5"

[[bench]]
name = "compaction"
harness = false
""".split("\n")

FILES["src/lib.rs"] = """//! tidewater: a log-structured key-value store.
//!
//! Writes go to the write-ahead log (`wal`), then to the active segment (`segment`);
//! full segments are sealed and later merged by the compactor (`compaction`).

pub mod compaction;
pub mod config;
pub mod index;
pub mod segment;
pub mod wal;

pub use compaction::{Compactor, CompactionStats};
pub use config::StoreConfig;
pub use index::SparseIndex;
pub use segment::{Entry, SegmentReader, SegmentWriter, MAX_SEGMENT_BYTES};
pub use wal::WriteAheadLog;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt segment {segment_id}: {reason}")]
    Corrupt { segment_id: u64, reason: String },
    #[error("checksum mismatch in wal record {seq}")]
    Checksum { seq: u64 },
}

pub type Result<T> = std::result::Result<T, StoreError>;
""".split("\n")

FILES["src/segment.rs"] = (
    """//! Segments: append-only files of length-prefixed entries, written in blocks.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::{Result, StoreError};

/// A segment is sealed once it reaches this size.
pub const MAX_SEGMENT_BYTES: u64 = 4 * 1024 * 1024;
/// Entries are buffered and written in blocks of this size.
pub const BLOCK_SIZE: usize = 16 * 1024;
/// Magic bytes at the end of every sealed segment.
pub const FOOTER_MAGIC: u32 = 0x7D3A_11EE;

/// One key-value entry; a tombstone has no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    pub seq: u64,
}

impl Entry {
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }
}

pub struct SegmentWriter {
    id: u64,
    path: PathBuf,
    out: BufWriter<File>,
    block: Vec<u8>,
    written: u64,
    entries: u64,
}

impl SegmentWriter {
    pub fn create(dir: &Path, id: u64) -> Result<Self> {
        let path = dir.join(format!("{id:08}.seg"));
        let out = BufWriter::new(File::create(&path)?);
        Ok(SegmentWriter { id, path, out, block: Vec::with_capacity(BLOCK_SIZE), written: 0, entries: 0 })
    }

    pub fn append(&mut self, e: &Entry) -> Result<()> {
        let vlen = e.value.as_ref().map_or(u32::MAX, |v| v.len() as u32);
        self.block.extend_from_slice(&(e.key.len() as u32).to_le_bytes());
        self.block.extend_from_slice(&vlen.to_le_bytes());
        self.block.extend_from_slice(&e.seq.to_le_bytes());
        self.block.extend_from_slice(&e.key);
        if let Some(v) = &e.value {
            self.block.extend_from_slice(v);
        }
        self.entries += 1;
        if self.block.len() >= BLOCK_SIZE {
            self.flush_block()?;
        }
        Ok(())
    }

    /// Writes the buffered block. The footer is written by `seal`, never here.
    pub fn flush_block(&mut self) -> Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        self.out.write_all(&self.block)?;
        self.written += self.block.len() as u64;
        self.block.clear();
        Ok(())
    }

    pub fn is_full(&self) -> bool {
        self.written + self.block.len() as u64 >= MAX_SEGMENT_BYTES
    }

    pub fn seal(mut self) -> Result<PathBuf> {
        self.flush_block()?;
        self.out.write_all(&self.entries.to_le_bytes())?;
        self.out.write_all(&FOOTER_MAGIC.to_le_bytes())?;
        self.out.flush()?;
        if self.written == 0 && self.entries > 0 {
            return Err(StoreError::Corrupt { segment_id: self.id, reason: "entries but no bytes".into() });
        }
        Ok(self.path)
    }
}

pub struct SegmentReader {
    pub id: u64,
    data: Vec<u8>,
    pos: usize,
}

impl SegmentReader {
    pub fn open(path: &Path, id: u64) -> Result<Self> {
        let data = std::fs::read(path)?;
        if data.len() < 12 || data[data.len() - 4..] != FOOTER_MAGIC.to_le_bytes() {
            return Err(StoreError::Corrupt { segment_id: id, reason: "missing footer".into() });
        }
        Ok(SegmentReader { id, data, pos: 0 })
    }
}

impl Iterator for SegmentReader {
    type Item = Entry;
    fn next(&mut self) -> Option<Entry> {
        let end = self.data.len() - 12;
        if self.pos + 16 > end {
            return None;
        }
        let d = &self.data[self.pos..];
        let klen = u32::from_le_bytes(d[0..4].try_into().ok()?) as usize;
        let vlen = u32::from_le_bytes(d[4..8].try_into().ok()?);
        let seq = u64::from_le_bytes(d[8..16].try_into().ok()?);
        let key = d[16..16 + klen].to_vec();
        let (value, vl) = if vlen == u32::MAX { (None, 0) } else { (Some(d[16 + klen..16 + klen + vlen as usize].to_vec()), vlen as usize) };
        self.pos += 16 + klen + vl;
        Some(Entry { key, value, seq })
    }
}
""".split("\n")
    + helper_fns("segment", 6)
    + """#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_block_writes_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 1).unwrap();
        w.append(&Entry { key: b"a".to_vec(), value: Some(b"1".to_vec()), seq: 1 }).unwrap();
        w.flush_block().unwrap();
        assert!(w.block.is_empty());
    }

    #[test]
    fn seal_writes_footer() {
        let dir = tempfile::tempdir().unwrap();
        let w = SegmentWriter::create(dir.path(), 2).unwrap();
        let p = w.seal().unwrap();
        let data = std::fs::read(p).unwrap();
        assert_eq!(&data[data.len() - 4..], &FOOTER_MAGIC.to_le_bytes());
    }
}
""".split("\n")
)

COMPACTION_BUG = "            if entry.is_tombstone() && !self.config.keep_tombstones {"
FILES["src/compaction.rs"] = (
    """//! Compaction: merges sealed segments, keeping the newest version of every key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::StoreConfig;
use crate::segment::{Entry, SegmentReader, SegmentWriter};
use crate::Result;

/// What one compaction run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactionStats {
    pub segments_in: usize,
    pub segments_out: usize,
    pub entries_in: u64,
    pub entries_out: u64,
    pub tombstones_dropped: u64,
}

pub struct Compactor {
    config: StoreConfig,
    dir: PathBuf,
    next_id: u64,
}

impl Compactor {
    pub fn new(dir: &Path, config: StoreConfig, next_id: u64) -> Self {
        Compactor { config, dir: dir.to_path_buf(), next_id }
    }

    /// Whether the live ratio of the store is low enough to compact.
    pub fn should_compact(&self, live_bytes: u64, total_bytes: u64) -> bool {
        total_bytes > 0 && (live_bytes as f64 / total_bytes as f64) < self.config.compaction_threshold
    }
""".split("\n")
    + helper_fns("compaction", 4)
    + """    /// Merges `inputs` (oldest first) into new segments. A tombstone must survive compaction
    /// unless every older segment that could hold its key is part of this run.
    pub fn merge_segments(&mut self, inputs: Vec<SegmentReader>, is_full_run: bool) -> Result<(Vec<PathBuf>, CompactionStats)> {
        let mut stats = CompactionStats { segments_in: inputs.len(), ..Default::default() };
        let mut newest: BTreeMap<Vec<u8>, Entry> = BTreeMap::new();
        for reader in inputs {
            for entry in reader {
                stats.entries_in += 1;
                match newest.get(&entry.key) {
                    Some(old) if old.seq > entry.seq => {}
                    _ => {
                        newest.insert(entry.key.clone(), entry);
                    }
                }
            }
        }
        let mut outputs = Vec::new();
        let mut writer = SegmentWriter::create(&self.dir, self.next_id)?;
        self.next_id += 1;
        for (_, entry) in newest {
""".split("\n")
    + [COMPACTION_BUG]
    + """                stats.tombstones_dropped += 1;
                continue;
            }
            writer.append(&entry)?;
            stats.entries_out += 1;
            if writer.is_full() {
                outputs.push(writer.seal()?);
                writer = SegmentWriter::create(&self.dir, self.next_id)?;
                self.next_id += 1;
            }
        }
        outputs.push(writer.seal()?);
        stats.segments_out = outputs.len();
        let _ = is_full_run;
        Ok((outputs, stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str, seq: u64) -> Entry {
        Entry { key: k.as_bytes().to_vec(), value: Some(v.as_bytes().to_vec()), seq }
    }
    fn del(k: &str, seq: u64) -> Entry {
        Entry { key: k.as_bytes().to_vec(), value: None, seq }
    }

    #[test]
    fn compaction_keeps_newest_version() {
        let (dir, readers) = crate::testutil::segments(&[&[put("user:0001", "a", 1)], &[put("user:0001", "b", 2)]]);
        let mut c = Compactor::new(dir.path(), StoreConfig::default(), 10);
        let (_, stats) = c.merge_segments(readers, true).unwrap();
        assert_eq!(stats.entries_out, 1);
    }

    #[test]
    fn compaction_preserves_tombstones() {
        let (dir, readers) = crate::testutil::segments(&[&[put("user:0042", "x", 3)], &[del("user:0042", 17)]]);
        let mut c = Compactor::new(dir.path(), StoreConfig::default(), 10);
        let (out, stats) = c.merge_segments(readers, false).unwrap();
        let kept = crate::testutil::read_all(&out).into_iter().find(|e| e.key == b"user:0042");
        assert_eq!(kept.map(|e| e.seq), Some(17), "tombstone for key \\"user:0042\\" was dropped");
        assert_eq!(stats.tombstones_dropped, 0);
    }
}
""".split("\n")
)

FILES["src/config.rs"] = (
    """//! Store configuration, read from `tidewater.toml` or the command line.

use crate::segment::MAX_SEGMENT_BYTES;

#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// Compact when live bytes / total bytes falls below this.
    pub compaction_threshold: f64,
    /// Keep tombstones in partial compactions (required for correctness).
    pub keep_tombstones: bool,
    /// Seal segments at this size.
    pub max_segment_bytes: u64,
    /// fsync the WAL after every record.
    pub sync_every_write: bool,
    /// Sparse index: one entry every `index_interval` keys.
    pub index_interval: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            compaction_threshold: 0.65,
            keep_tombstones: false,
            max_segment_bytes: MAX_SEGMENT_BYTES,
            sync_every_write: true,
            index_interval: 64,
        }
    }
}

impl StoreConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.compaction_threshold) {
            return Err(format!("compaction_threshold {} not in [0, 1]", self.compaction_threshold));
        }
        if self.max_segment_bytes < 4096 {
            return Err("max_segment_bytes must be at least 4096".into());
        }
        if self.index_interval == 0 {
            return Err("index_interval must be positive".into());
        }
        Ok(())
    }
}
""".split("\n")
    + helper_fns("config", 3)
)

FILES["src/index.rs"] = (
    """//! A sparse index over a sealed segment: every `index_interval`-th key and its offset.

use crate::segment::Entry;

pub struct SparseIndex {
    keys: Vec<Vec<u8>>,
    offsets: Vec<u64>,
    interval: usize,
}

impl SparseIndex {
    pub fn build<'a>(entries: impl Iterator<Item = (&'a Entry, u64)>, interval: usize) -> Self {
        let mut keys = Vec::new();
        let mut offsets = Vec::new();
        for (i, (e, off)) in entries.enumerate() {
            if i % interval == 0 {
                keys.push(e.key.clone());
                offsets.push(off);
            }
        }
        SparseIndex { keys, offsets, interval }
    }

    /// The offset to start scanning from for `key`.
    pub fn lookup(&self, key: &[u8]) -> Option<u64> {
        match self.keys.binary_search_by(|k| k.as_slice().cmp(key)) {
            Ok(i) => Some(self.offsets[i]),
            Err(0) => None,
            Err(i) => Some(self.offsets[i - 1]),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn interval(&self) -> usize {
        self.interval
    }
}
""".split("\n")
    + helper_fns("index", 5)
)

WAL_BUG = "        if record.crc != 0 && record.crc != crc32fast::hash(&record.payload) {"
FILES["src/wal.rs"] = (
    """//! The write-ahead log: every write is appended here (with a CRC32) before it reaches a segment.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::Path;

use crate::{Result, StoreError};

pub struct WalRecord {
    pub seq: u64,
    pub crc: u32,
    pub payload: Vec<u8>,
}

pub struct WriteAheadLog {
    file: File,
    next_seq: u64,
    sync_every_write: bool,
}

impl WriteAheadLog {
    pub fn open(path: &Path, sync_every_write: bool) -> Result<Self> {
        let file = OpenOptions::new().create(true).append(true).read(true).open(path)?;
        Ok(WriteAheadLog { file, next_seq: 0, sync_every_write })
    }

    pub fn append(&mut self, payload: &[u8]) -> Result<u64> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let crc = crc32fast::hash(payload);
        self.file.write_all(&seq.to_le_bytes())?;
        self.file.write_all(&crc.to_le_bytes())?;
        self.file.write_all(&(payload.len() as u32).to_le_bytes())?;
        self.file.write_all(payload)?;
        if self.sync_every_write {
            self.file.sync_data()?;
        }
        Ok(seq)
    }
}

/// Replays the log after a crash, stopping at the first torn record.
pub fn replay(path: &Path) -> Result<Vec<WalRecord>> {
    let mut r = BufReader::new(File::open(path)?);
    let mut out = Vec::new();
    loop {
        let mut head = [0u8; 16];
        if r.read_exact(&mut head).is_err() {
            break;
        }
        let seq = u64::from_le_bytes(head[0..8].try_into().unwrap());
        let crc = u32::from_le_bytes(head[8..12].try_into().unwrap());
        let len = u32::from_le_bytes(head[12..16].try_into().unwrap()) as usize;
        let mut payload = vec![0u8; len];
        if r.read_exact(&mut payload).is_err() {
            break;
        }
        let record = WalRecord { seq, crc, payload };
""".split("\n")
    + [WAL_BUG]
    + """            return Err(StoreError::Checksum { seq });
        }
        out.push(record);
    }
    Ok(out)
}
""".split("\n")
    + helper_fns("wal", 4)
)

FILES["src/bin/tidewater.rs"] = """use clap::Parser;
use tidewater::StoreConfig;

/// tidewater: inspect and compact a store directory.
#[derive(Parser)]
struct Args {
    /// The store directory.
    dir: std::path::PathBuf,
    /// Compact now, whatever the live ratio.
    #[arg(long)]
    force: bool,
    /// Compaction threshold (live / total bytes).
    #[arg(long, default_value_t = 0.65)]
    threshold: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = StoreConfig { compaction_threshold: args.threshold, ..StoreConfig::default() };
    config.validate().map_err(anyhow::Error::msg)?;
    println!("store at {}", args.dir.display());
    let _ = args.force;
    Ok(())
}
""".split("\n")

FILES["tests/recovery.rs"] = """use tidewater::wal::{replay, WriteAheadLog};

#[test]
fn wal_replay_after_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    let mut wal = WriteAheadLog::open(&path, false).unwrap();
    for i in 0..1000u32 {
        wal.append(&i.to_le_bytes()).unwrap();
    }
    drop(wal);
    // Simulate a torn write: chop the last 3 bytes.
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 3).unwrap();
    let records = replay(&path).unwrap();
    assert_eq!(records.len(), 999);
}

#[test]
fn wal_rejects_corrupt_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    let mut wal = WriteAheadLog::open(&path, false).unwrap();
    wal.append(b"hello").unwrap();
    drop(wal);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xFF;
    std::fs::write(&path, bytes).unwrap();
    assert!(replay(&path).is_err());
}
""".split("\n")

FILES["benches/compaction.rs"] = """use criterion::{criterion_group, criterion_main, Criterion};

fn bench_merge(c: &mut Criterion) {
    c.bench_function("merge_segments 4x10k", |b| {
        b.iter(|| tidewater_bench::merge_fixture(4, 10_000));
    });
}

criterion_group!(benches, bench_merge);
criterion_main!(benches);
""".split("\n")

# --------------------------------------------------------------------------------------------
# Event writer
# --------------------------------------------------------------------------------------------

EVENTS = []
LAST_UUID = [None]


def tick(lo=1, hi=20):
    CLOCK[0] += timedelta(seconds=RNG.randint(lo, hi), milliseconds=RNG.randint(0, 999))
    return CLOCK[0].strftime("%Y-%m-%dT%H:%M:%S.") + f"{CLOCK[0].microsecond // 1000:03d}Z"


def new_uuid():
    return str(uuid.UUID(int=RNG.getrandbits(128), version=4))


def base(kind, sidechain=False):
    u = new_uuid()
    ev = {
        "parentUuid": LAST_UUID[0],
        "isSidechain": sidechain,
        "userType": "external",
        "cwd": ROOT,
        "sessionId": SESSION,
        "version": VERSION,
        "gitBranch": "fix/compaction-tombstones",
        "type": kind,
        "uuid": u,
        "timestamp": tick(),
    }
    LAST_UUID[0] = u
    return ev


def user_prompt(text):
    ev = base("user")
    ev["message"] = {"role": "user", "content": text}
    EVENTS.append(ev)


TOOL_IDS = [0]


def tool_id():
    TOOL_IDS[0] += 1
    return "toolu_01" + "".join(RNG.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789") for _ in range(22))


def msg_id():
    return "msg_01" + "".join(RNG.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789") for _ in range(22))


def usage():
    return {
        "input_tokens": RNG.randint(3, 12),
        "cache_creation_input_tokens": RNG.randint(0, 4000),
        "cache_read_input_tokens": RNG.randint(20000, 90000),
        "output_tokens": RNG.randint(40, 900),
        "service_tier": "standard",
    }


def assistant_blocks(blocks, sidechain=False):
    """One streamed assistant message: Claude Code writes one line per content block, all with the
    same message.id."""
    mid = msg_id()
    req = "req_011C" + "".join(RNG.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789") for _ in range(18))
    for b in blocks:
        ev = base("assistant", sidechain)
        ev["message"] = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [b],
            "stop_reason": "tool_use" if b["type"] == "tool_use" else None,
            "stop_sequence": None,
            "usage": usage(),
        }
        ev["requestId"] = req
        EVENTS.append(ev)


def tool_result(tid, content, is_error=False, meta=None, sidechain=False):
    ev = base("user", sidechain)
    block = {"tool_use_id": tid, "type": "tool_result", "content": content}
    if is_error:
        block["is_error"] = True
    ev["message"] = {"role": "user", "content": [block]}
    if meta is not None:
        ev["toolUseResult"] = meta
    EVENTS.append(ev)


def call(name, inp, output, is_error=False, text=None, thinking=None, meta=None, sidechain=False):
    blocks = []
    if thinking:
        blocks.append({"type": "thinking", "thinking": thinking, "signature": "Eq" + "".join(RNG.choice("abcdefABCDEF0123456789") for _ in range(40))})
    if text:
        blocks.append({"type": "text", "text": text})
    tid = tool_id()
    blocks.append({"type": "tool_use", "id": tid, "name": name, "input": inp})
    assistant_blocks(blocks, sidechain)
    tool_result(tid, output, is_error, meta, sidechain)
    return tid


def say(text, thinking=None):
    blocks = []
    if thinking:
        blocks.append({"type": "thinking", "thinking": thinking, "signature": "Eq" + "".join(RNG.choice("abcdef0123456789") for _ in range(40))})
    blocks.append({"type": "text", "text": text})
    assistant_blocks(blocks)


def system_event(content, level="info"):
    ev = base("system")
    ev["subtype"] = "informational"
    ev["content"] = content
    ev["isMeta"] = False
    ev["level"] = level
    EVENTS.append(ev)


def snapshot_event():
    u = new_uuid()
    EVENTS.append({
        "type": "file-history-snapshot",
        "messageId": u,
        "snapshot": {"messageId": u, "trackedFileBackups": {}, "timestamp": tick(0, 1)},
        "isSnapshotUpdate": False,
    })

# --------------------------------------------------------------------------------------------
# Tools over the in-memory project
# --------------------------------------------------------------------------------------------

def p(rel):
    return f"{ROOT}/{rel}"


def numbered(lines, start=1):
    return "\n".join(f"{i:>6}\u2192{l}" for i, l in enumerate(lines, start))


def line_of(rel, needle):
    for i, l in enumerate(FILES[rel], 1):
        if needle in l:
            return i
    raise KeyError(needle)


def read(rel, offset=None, limit=None, text=None, thinking=None):
    if rel not in FILES:
        return call("Read", {"file_path": p(rel)}, "<tool_use_error>File does not exist.</tool_use_error>", True, text, thinking)
    lines = FILES[rel]
    start = offset or 1
    chunk = lines[start - 1:(start - 1 + limit) if limit else None]
    inp = {"file_path": p(rel)}
    if offset:
        inp["offset"] = offset
    if limit:
        inp["limit"] = limit
    meta = {"type": "text", "file": {"filePath": p(rel), "numLines": len(chunk), "startLine": start, "totalLines": len(lines)}}
    return call("Read", inp, numbered(chunk, start), False, text, thinking, meta)


def grep(pattern, path=None, glob=None, mode="content", text=None, thinking=None):
    import re
    rx = re.compile(pattern)
    hits = []
    for rel in sorted(FILES):
        if path and not rel.startswith(path):
            continue
        if glob and not rel.endswith(glob.lstrip("*")):
            continue
        for i, l in enumerate(FILES[rel], 1):
            if rx.search(l):
                hits.append((rel, i, l))
    inp = {"pattern": pattern, "output_mode": mode}
    if path:
        inp["path"] = p(path)
    if glob:
        inp["glob"] = glob
    if mode == "content":
        inp["-n"] = True
        out = "\n".join(f"{p(r)}:{i}:{l}" for r, i, l in hits) or "No matches found"
    else:
        files = sorted({r for r, _, _ in hits})
        out = (f"Found {len(files)} files\n" + "\n".join(p(f) for f in files)) if files else "No files found"
    return call("Grep", inp, out, False, text, thinking)


def edit(rel, old, new, text=None, thinking=None, replace_all=False):
    src = "\n".join(FILES[rel])
    inp = {"file_path": p(rel), "old_string": old, "new_string": new}
    if replace_all:
        inp["replace_all"] = True
    if old not in src:
        return call("Edit", inp, "<tool_use_error>String to replace not found in file.\nString: " + old + "</tool_use_error>", True, text, thinking)
    src = src.replace(old, new) if replace_all else src.replace(old, new, 1)
    FILES[rel] = src.split("\n")
    at = line_of(rel, new.split("\n")[0]) if new else 1
    lo = max(1, at - 4)
    snippet = numbered(FILES[rel][lo - 1:lo + 9], lo)
    out = f"The file {p(rel)} has been updated. Here's the result of running `cat -n` on a snippet of the edited file:\n{snippet}"
    return call("Edit", inp, out, False, text, thinking, {"filePath": p(rel), "oldString": old[:80], "newString": new[:80]})


def bash(command, output, exit_code=0, description=None, text=None, thinking=None):
    inp = {"command": command}
    if description:
        inp["description"] = description
    if exit_code != 0:
        content = f"Exit code {exit_code}\n{output}"
    else:
        content = output
    return call("Bash", inp, content, exit_code != 0, text, thinking,
                {"stdout": output[:200], "stderr": "", "interrupted": False, "isImage": False})

# --------------------------------------------------------------------------------------------
# cargo output
# --------------------------------------------------------------------------------------------

UNIT_TESTS = [
    "compaction::tests::compaction_keeps_newest_version",
    "compaction::tests::compaction_preserves_tombstones",
    "config::tests::default_threshold_is_valid",
    "config::tests::rejects_small_segments",
    "index::tests::lookup_before_first_key",
    "index::tests::lookup_exact_key",
    "index::tests::lookup_between_keys",
    "segment::tests::flush_block_writes_buffer",
    "segment::tests::seal_writes_footer",
    "segment::tests::reader_round_trip",
    "segment::tests::reader_rejects_missing_footer",
    "wal::tests::append_assigns_sequence",
    "wal::tests::crc_covers_payload",
] + [f"segment::tests::varint_case_{i:02}" for i in range(18)] + [f"index::tests::interval_{n}" for n in (1, 2, 4, 8, 16, 64)]
INTEGRATION = {"tests/recovery.rs": ["wal_replay_after_crash", "wal_rejects_corrupt_record"], "tests/compaction.rs": ["full_compaction_drops_tombstones", "partial_compaction_keeps_tombstones", "compaction_stats_add_up"]}


def cargo_test(failures, filt=None, secs=None, compile_files=("tidewater",)):
    """failures: {test_name: (panic_location, message_lines)}"""
    out = []
    for c in compile_files:
        out.append(f"   Compiling {c} v0.3.1 ({ROOT})")
    out.append(f"    Finished `test` profile [unoptimized + debuginfo] target(s) in {RNG.uniform(1.5, 9.0):.2f}s")
    out.append(f"     Running unittests src/lib.rs (target/debug/deps/tidewater-3f9c2a1b7d5e8f04)")
    tests = [t for t in UNIT_TESTS if not filt or filt in t]
    out.append("")
    out.append(f"running {len(tests)} tests")
    for t in tests:
        out.append(f"test {t} ... {'FAILED' if t in failures else 'ok'}")
    failed = [t for t in tests if t in failures]
    if failed:
        out += ["", "failures:", ""]
        for t in failed:
            loc, msg = failures[t]
            out.append(f"---- {t} stdout ----")
            out.append("")
            out.append(f"thread '{t}' panicked at {loc}:")
            out += msg
            out.append("note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace")
            out.append("")
        out += ["", "failures:"] + [f"    {t}" for t in failed] + [""]
        out.append(f"test result: FAILED. {len(tests) - len(failed)} passed; {len(failed)} failed; 0 ignored; 0 measured; 0 filtered out; finished in {secs or RNG.uniform(0.1, 0.9):.2f}s")
        out.append("")
        out.append("error: test failed, to rerun pass `--lib`")
        return "\n".join(out), 101
    out.append("")
    out.append(f"test result: ok. {len(tests)} passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in {secs or RNG.uniform(0.1, 0.9):.2f}s")
    for f, names in INTEGRATION.items():
        names = [n for n in names if not filt or filt in n]
        if filt and not names:
            continue
        out.append("")
        out.append(f"     Running {f} (target/debug/deps/{f.split('/')[1][:-3]}-{RNG.getrandbits(64):016x})")
        out.append("")
        out.append(f"running {len(names)} tests")
        for n in names:
            out.append(f"test {n} ... {'FAILED' if n in failures else 'ok'}")
        bad = [n for n in names if n in failures]
        if bad:
            out += ["", "failures:", ""]
            for n in bad:
                loc, msg = failures[n]
                out += [f"---- {n} stdout ----", "", f"thread '{n}' panicked at {loc}:"] + msg + [""]
            out.append(f"test result: FAILED. {len(names) - len(bad)} passed; {len(bad)} failed; 0 ignored; 0 measured; 0 filtered out; finished in {RNG.uniform(0.01, 0.4):.2f}s")
            out.append("")
            out.append(f"error: test failed, to rerun pass `--test {f.split('/')[1][:-3]}`")
            return "\n".join(out), 101
        out.append("")
        out.append(f"test result: ok. {len(names)} passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in {RNG.uniform(0.01, 0.4):.2f}s")
    out += ["", "   Doc-tests tidewater", "", "running 0 tests", "", "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s", ""]
    return "\n".join(out), 0


def git_status(modified):
    return "On branch fix/compaction-tombstones\nChanges not staged for commit:\n  (use \"git add <file>...\" to update what will be committed)\n  (use \"git restore <file>...\" to discard changes in working directory)\n" + "\n".join(f"\tmodified:   {m}" for m in modified) + "\n\nno changes added to commit (use \"git add\" and/or \"git commit -a\")"

# --------------------------------------------------------------------------------------------
# The session
# --------------------------------------------------------------------------------------------

def build():
    snapshot_event()
    user_prompt("cargo test fails since my tombstone change yesterday: `compaction_preserves_tombstones` is red. Can you find out why and fix it? Don't touch the on-disk format.")
    bug_line = line_of("src/compaction.rs", COMPACTION_BUG)
    out, code = cargo_test({"compaction::tests::compaction_preserves_tombstones": (
        f"src/compaction.rs:{line_of('src/compaction.rs', 'assert_eq!(kept.map')}:9",
        ["assertion `left == right` failed: tombstone for key \"user:0042\" was dropped", "  left: None", " right: Some(17)"])})
    bash("cargo test 2>&1 | tail -80", out, code, "Run the test suite",
         text="I'll start by reproducing the failure.",
         thinking="Reproduce first, then read compaction.rs and segment.rs.")
    read("src/compaction.rs", text="The tombstone for `user:0042` (seq 17) disappears after `merge_segments`. Let me read the compactor.")
    read("src/segment.rs", text=None, thinking="Check how tombstones are encoded: vlen == u32::MAX in SegmentWriter::append.")
    grep(r"keep_tombstones", text="`merge_segments` drops tombstones when `!self.config.keep_tombstones`. Where is that flag set?")
    read("src/config.rs")
    grep(r"is_full_run", path="src")
    say(f"Found it. In `src/compaction.rs:{bug_line}` the compactor drops every tombstone unless `keep_tombstones` is set, and `StoreConfig::default()` sets `keep_tombstones: false`. "
        "But a tombstone may only be dropped in a *full* run (when every older segment is part of the merge); in a partial run it must survive, or the older `put` for `user:0042` "
        "in a segment outside the run becomes visible again. The `is_full_run` parameter is already passed in but ignored (`let _ = is_full_run;`). I'll use it.")
    edit("src/compaction.rs", COMPACTION_BUG, "            if entry.is_tombstone() && is_full_run && !self.config.keep_tombstones {")
    edit("src/compaction.rs", "        let _ = is_full_run;\n", "")
    out, code = cargo_test({}, filt="compaction")
    bash("cargo test compaction 2>&1 | tail -40", out, code, "Run compaction tests")
    read("tests/compaction.rs", text="Unit tests pass. There should also be integration tests for compaction; let me check they exist.")
    bash("ls tests/", "recovery.rs", 0, "List integration tests")
    say("`tests/compaction.rs` doesn't exist (only `tests/recovery.rs`), although the test names `full_compaction_drops_tombstones` and `partial_compaction_keeps_tombstones` are referenced in CI. I'll add it.")
    FILES["tests/compaction.rs"] = []
    new_tests = """use tidewater::{Compactor, StoreConfig};

mod util;

#[test]
fn full_compaction_drops_tombstones() {
    let (dir, readers) = util::segments(&[&[util::put("k", "v", 1)], &[util::del("k", 2)]]);
    let mut c = Compactor::new(dir.path(), StoreConfig::default(), 10);
    let (_, stats) = c.merge_segments(readers, true).unwrap();
    assert_eq!(stats.tombstones_dropped, 1);
}

#[test]
fn partial_compaction_keeps_tombstones() {
    let (dir, readers) = util::segments(&[&[util::put("k", "v", 1)], &[util::del("k", 2)]]);
    let mut c = Compactor::new(dir.path(), StoreConfig::default(), 10);
    let (_, stats) = c.merge_segments(readers, false).unwrap();
    assert_eq!(stats.tombstones_dropped, 0);
}

#[test]
fn compaction_stats_add_up() {
    let (dir, readers) = util::segments(&[&[util::put("a", "1", 1), util::put("b", "2", 2)], &[util::put("a", "3", 3)]]);
    let mut c = Compactor::new(dir.path(), StoreConfig::default(), 10);
    let (_, stats) = c.merge_segments(readers, true).unwrap();
    assert_eq!(stats.entries_in, 3);
    assert_eq!(stats.entries_out, 2);
}"""
    FILES["tests/compaction.rs"] = new_tests.split("\n")
    call("Write", {"file_path": p("tests/compaction.rs"), "content": new_tests}, f"File created successfully at: {p('tests/compaction.rs')}")
    out, code = cargo_test({"wal_replay_after_crash": ("tests/recovery.rs:17:5", ["assertion `left == right` failed", "  left: 998", " right: 999"])})
    bash("cargo test 2>&1 | tail -60", out, code, "Run all tests")
    say("All compaction tests pass now, including the three new integration tests. `wal_replay_after_crash` in `tests/recovery.rs` failed this time (998 records instead of 999) — "
        "that test is known to be flaky on this machine according to your CI notes; I'll come back to it after the compaction fix is in. Let me run it again to see if it's deterministic.")
    out, code = cargo_test({}, filt="wal_replay")
    bash("cargo test --test recovery wal_replay 2>&1 | tail -20", out, code, "Re-run the recovery test")
    say("It passed on the second run, so it's flaky rather than broken. Summary of the fix so far:\n\n"
        f"- `src/compaction.rs:{bug_line}`: tombstones are dropped only in full runs (`is_full_run && !keep_tombstones`).\n"
        "- New `tests/compaction.rs` with `full_compaction_drops_tombstones`, `partial_compaction_keeps_tombstones`, `compaction_stats_add_up`.")
    system_event("Running PostToolUse hooks… (1 hook: cargo fmt --check)")

    # ---- Phase 2: a CLI flag -------------------------------------------------------------
    user_prompt("Great. Next: add a `--max-segment-bytes` flag to the CLI in src/bin/tidewater.rs, defaulting to MAX_SEGMENT_BYTES. Validate it like the config does.")
    read("src/bin/tidewater.rs")
    grep(r"MAX_SEGMENT_BYTES", text="`MAX_SEGMENT_BYTES` is defined in `src/segment.rs` (4 MiB) and re-exported from `lib.rs`. Let me see all uses.")
    edit("src/bin/tidewater.rs", "use tidewater::StoreConfig;", "use tidewater::{StoreConfig, MAX_SEGMENT_BYTES};")
    edit("src/bin/tidewater.rs", "    threshold: f64,\n}", "    threshold: f64,\n    /// Seal segments at this size (bytes).\n    #[arg(long, default_value_t = MAX_SEGMENT_BYTES)]\n    max_segment_bytes: u64,\n}")
    edit("src/bin/tidewater.rs", "StoreConfig { compaction_threshold: args.threshold, ..StoreConfig::default() }",
         "StoreConfig { compaction_threshold: args.threshold, max_segment_bytes: args.max_segment_bytes as usize, ..StoreConfig::default() }")
    compile_err = f"""   Compiling tidewater v0.3.1 ({ROOT})
error[E0308]: mismatched types
  --> src/bin/tidewater.rs:24:93
   |
24 |     let config = StoreConfig {{ compaction_threshold: args.threshold, max_segment_bytes: args.max_segment_bytes as usize, ..StoreConfig::default() }};
   |                                                                                             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^ expected `u64`, found `usize`
   |
help: you can convert a `usize` to a `u64` and panic if the converted value doesn't fit
   |
24 |     let config = StoreConfig {{ compaction_threshold: args.threshold, max_segment_bytes: (args.max_segment_bytes as usize).try_into().unwrap(), ..StoreConfig::default() }};
   |                                                                                             +                              +++++++++++++++++++++

error[E0433]: failed to resolve: use of undeclared crate or module `anyhow`
  --> src/bin/tidewater.rs:21:14
   |
21 | fn main() -> anyhow::Result<()> {{
   |              ^^^^^^ use of undeclared crate or module `anyhow`

Some errors have detailed explanations: E0308, E0433.
For more information about an error, try `rustc --explain E0308`.
error: could not compile `tidewater` (bin "tidewater") due to 2 previous errors"""
    bash("cargo build 2>&1 | tail -40", compile_err, 101, "Build the CLI")
    edit("src/bin/tidewater.rs", "max_segment_bytes: args.max_segment_bytes as usize,", "max_segment_bytes: args.max_segment_bytes,",
         text="Two errors: my needless `as usize` cast (the field is `u64` in `StoreConfig`), and `anyhow` is used by `main` but was never a dependency — that one predates my change.")
    read("Cargo.toml")
    edit("Cargo.toml", "tracing = \"0.1\"", "tracing = \"0.1\"\nanyhow = \"1\"")
    bash("cargo build 2>&1 | tail -5", f"   Compiling tidewater v0.3.1 ({ROOT})\n    Finished `dev` profile [unoptimized + debuginfo] target(s) in 6.31s", 0, "Build again")
    bash("cargo run -q -- /tmp/store --max-segment-bytes 1024", "Error: max_segment_bytes must be at least 4096", 1, "Check validation",
         text="Now the validation: `StoreConfig::validate` rejects sizes below 4096.")
    bash("cargo run -q -- /tmp/store --max-segment-bytes 65536", "store at /tmp/store", 0, "Check a valid size")
    say("The flag works: `--max-segment-bytes` defaults to `MAX_SEGMENT_BYTES` (4 MiB) and goes through `StoreConfig::validate`, which rejects values below 4096. I also added the missing `anyhow` dependency that `main` already used.")

    # ---- Phase 3: audit every module for unwrap() ----------------------------------------
    user_prompt("While you're at it: go through every module in src/ and get rid of unwrap() outside tests. Report what you change per file.")
    grep(r"unwrap\(\)", path="src", mode="files_with_matches", thinking="Find all files with unwrap(), then decide per file.")
    grep(r"unwrap\(\)", path="src")
    for rel in ["src/wal.rs", "src/segment.rs", "src/index.rs", "src/config.rs", "src/compaction.rs", "src/lib.rs"]:
        read(rel, text=f"Checking `{rel}`.")
        if rel == "src/wal.rs":
            edit(rel, "let seq = u64::from_le_bytes(head[0..8].try_into().unwrap());", "let seq = u64::from_le_bytes(head[0..8].try_into().map_err(|_| StoreError::Checksum { seq: 0 })?);")
            edit(rel, "let crc = u32::from_le_bytes(head[8..12].try_into().unwrap());", "let crc = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);",
                 text="Slices of a fixed-size array can be indexed directly; no fallible conversion needed.")
            edit(rel, "let seq = u64::from_le_bytes(head[0..8].try_into().map_err(|_| StoreError::Checksum { seq: 0 })?);", "let seq = u64::from_le_bytes([head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7]]);")
            edit(rel, "let len = u32::from_le_bytes(head[12..16].try_into().unwrap()) as usize;", "let len = u32::from_le_bytes([head[12], head[13], head[14], head[15]]) as usize;")
            say(f"`src/wal.rs`: the three `try_into().unwrap()` in `replay` now index the 16-byte header directly. While reading it I noticed something in `replay` (line {line_of('src/wal.rs', WAL_BUG)}): "
                "the checksum is only verified when `record.crc != 0`, so a record whose CRC field was zeroed by a torn write is accepted. That could be related to the flaky `wal_replay_after_crash` — I'll note it and keep going with the unwrap audit.")
        elif rel == "src/segment.rs":
            grep(r"try_into\(\)\.ok\(\)\?", path="src/segment.rs")
            say("`src/segment.rs`: outside tests there is no `unwrap()`; `SegmentReader::next` uses `try_into().ok()?`, which is fine. But it slices `d[16..16 + klen]` without checking the length, which panics on a truncated segment. I'll make it return `None`.")
            edit(rel, "        let key = d[16..16 + klen].to_vec();", "        let key = d.get(16..16 + klen)?.to_vec();")
            edit(rel, "(Some(d[16 + klen..16 + klen + vlen as usize].to_vec()), vlen as usize)", "(Some(d.get(16 + klen..16 + klen + vlen as usize)?.to_vec()), vlen as usize)")
        elif rel == "src/index.rs":
            say("`src/index.rs`: no `unwrap()`. `SparseIndex::lookup` indexes `self.offsets[i]` with an index from the binary search over `keys`, which always has the same length — safe.")
        elif rel == "src/config.rs":
            say("`src/config.rs`: no `unwrap()`. Note `keep_tombstones` still defaults to `false`; with today's compaction fix that is correct (tombstones are dropped only in full runs).")
        elif rel == "src/compaction.rs":
            grep(r"is_full_run", path="src/compaction.rs")
            say("`src/compaction.rs`: no `unwrap()` outside tests; the fix from earlier is in place.")
        else:
            say("`src/lib.rs`: only module declarations and the `StoreError` enum.")
        module = rel.split("/")[1][:-3]
        if module != "lib":
            out, code = cargo_test({}, filt=module)
            bash(f"cargo test -q {module} 2>&1 | tail -30", out, code, f"Run the {module} tests")
    out, code = cargo_test({})
    bash("cargo test 2>&1 | tail -70", out, code, "Run all tests after the audit")
    say("Audit done. Per file:\n\n- `src/wal.rs`: 3 `unwrap()` removed in `replay` (header fields decoded from fixed indices).\n- `src/segment.rs`: no `unwrap()`; made `SegmentReader::next` bounds-checked (`d.get(..)?`) so a truncated segment ends iteration instead of panicking.\n- `src/index.rs`, `src/config.rs`, `src/compaction.rs`, `src/lib.rs`: nothing to change.\n\nAll tests pass.")
    snapshot_event()

    # ---- Phase 4: the flaky WAL test, referring back ---------------------------------------
    user_prompt("You mentioned something odd in wal replay during the audit. Could that explain the flaky wal_replay_after_crash? Investigate properly.")
    grep(r"crc", path="src/wal.rs", text="Yes — the `record.crc != 0` condition in `replay`. Let me look at it again together with how `append` writes records.")
    read("src/wal.rs", offset=line_of("src/wal.rs", "pub fn replay") - 2, limit=30)
    read("tests/recovery.rs")
    loop_out = "\n".join(f"run {i:02}: {'ok' if i not in (4, 11, 17) else 'FAILED (left: 998, right: 999)'}" for i in range(1, 21))
    bash("for i in $(seq -w 1 20); do cargo test -q --test recovery wal_replay_after_crash >/dev/null 2>&1 && echo \"run $i: ok\" || echo \"run $i: FAILED (left: 998, right: 999)\"; done", loop_out, 0, "Run the flaky test 20 times")
    say("3 failures in 20 runs. The test chops 3 bytes off the end of the log, which tears the last record's payload, so replay should return exactly 999 records. "
        "When it returns 998, the *previous* record was rejected too. The payload is `i.to_le_bytes()` and the CRC of some payloads... no — the CRC is never 0 for these. "
        "Let me check whether `append` can interleave: `WriteAheadLog::open` uses `append(true)` but the test drops the log without `sync_data` (`sync_every_write` is `false`), so the flush order is up to the OS.",
        thinking="Torn write semantics: set_len truncation happens after drop; BufWriter? No, File directly; each write_all is separate syscall: head (16 bytes) then payload. Truncating 3 bytes of a 4-byte payload → last record torn. 998 means another record lost… maybe read_exact on header succeeded partially?")
    grep(r"read_exact", path="src")
    say("Found the real cause. `replay` reads the 16-byte header with `read_exact`; when the header itself is complete but the payload is torn it breaks out — fine. But `append` writes the header in *three* `write_all` calls "
        "(seq, crc, len) plus the payload: with `sync_every_write = false` and the test's 3-byte truncation, that is fine too... The flakiness comes from the test: `tempfile::tempdir()` plus `set_len` on a file still open by the dropped `WriteAheadLog`? It is dropped before. "
        "I need more data: I'll add a debug print of the record count and the last seq.")
    edit("tests/recovery.rs", "    let records = replay(&path).unwrap();\n    assert_eq!(records.len(), 999);",
         "    let records = replay(&path).unwrap();\n    let last = records.last().map(|r| r.seq);\n    assert_eq!(records.len(), 999, \"last seq: {last:?}\");")
    loop_out2 = "\n".join(f"run {i:02}: " + ("ok" if i not in (6, 13) else "FAILED: assertion `left == right` failed: last seq: Some(997)\n  left: 998\n right: 999") for i in range(1, 21))
    bash("for i in $(seq -w 1 20); do cargo test -q --test recovery wal_replay_after_crash 2>&1 | grep -E 'panicked|left|right|last seq' | head -3 | sed \"s/^/run $i: /\" || true; done", loop_out2, 0, "Collect failing details")
    say("When it fails, the last replayed seq is 997, so record 998 (complete on disk) was rejected — by the checksum branch, with `StoreError::Checksum`? No: `replay` returned `Ok`. "
        "So record 998 was read as *torn*. That happens when the file has fewer bytes than expected: the test computes `len` from `metadata` **before** the OS has flushed the last writes of the `File` (no `sync_data` since `sync_every_write` is `false`). "
        "The fix belongs in the test: open the WAL with `sync_every_write = true`, or call `sync_all` before measuring. And separately, the `record.crc != 0` shortcut in `replay` is a real bug — a zeroed CRC must not skip verification.")
    edit("tests/recovery.rs", "    let mut wal = WriteAheadLog::open(&path, false).unwrap();\n    for i in 0..1000u32 {", "    let mut wal = WriteAheadLog::open(&path, true).unwrap();\n    for i in 0..1000u32 {")
    edit("src/wal.rs", WAL_BUG, "        if record.crc != crc32fast::hash(&record.payload) {")
    loop_out3 = "\n".join(f"run {i:02}: ok" for i in range(1, 41))
    bash("for i in $(seq -w 1 40); do cargo test -q --test recovery wal_replay_after_crash >/dev/null 2>&1 && echo \"run $i: ok\" || echo \"run $i: FAILED\"; done", loop_out3, 0, "Run it 40 times")
    out, code = cargo_test({})
    bash("cargo test 2>&1 | tail -70", out, code, "Full test run")
    say("40/40 green. Two changes:\n\n1. `tests/recovery.rs`: `wal_replay_after_crash` opens the WAL with `sync_every_write = true`, so the file length it truncates is the real one.\n"
        "2. `src/wal.rs` `replay`: always verify the CRC (the old `record.crc != 0 &&` shortcut accepted records with a zeroed checksum).")

    # ---- Phase 5: clippy --------------------------------------------------------------------
    user_prompt("Run clippy with -D warnings and fix whatever it finds.")
    warn_files = [("src/segment.rs", "needless_range_loop", "the loop variable `i` is only used to index `bytes`"),
                  ("src/index.rs", "len_without_is_empty", "struct `SparseIndex` has a public `len` method, but no `is_empty` method"),
                  ("src/compaction.rs", "cast_precision_loss", "casting `u64` to `f64` causes a loss of precision"),
                  ("src/config.rs", "manual_range_contains", "manual `!RangeInclusive::contains` implementation"),
                  ("src/wal.rs", "unused_io_amount", "read amount is not handled")]
    lines = [f"    Checking tidewater v0.3.1 ({ROOT})"]
    for rel, lint, msg in warn_files:
        ln = RNG.randint(20, max(21, len(FILES[rel]) - 5))
        lines += [f"error: {msg}", f"  --> {rel}:{ln}:{RNG.randint(5, 30)}", "   |", f"{ln:>3} | {FILES[rel][ln - 1]}", "   |", f"   = help: for further information visit https://rust-lang.github.io/rust-clippy/master/index.html#{lint}", f"   = note: `-D clippy::{lint}` implied by `-D warnings`", ""]
    lines.append(f"error: could not compile `tidewater` (lib) due to {len(warn_files)} previous errors")
    bash("cargo clippy --all-targets -- -D warnings 2>&1 | tail -80", "\n".join(lines), 101, "Run clippy")
    read("src/index.rs", text="Five lints. Starting with `SparseIndex::len` without `is_empty` in `src/index.rs`.")
    edit("src/index.rs", "    pub fn len(&self) -> usize {\n        self.keys.len()\n    }", "    pub fn len(&self) -> usize {\n        self.keys.len()\n    }\n\n    pub fn is_empty(&self) -> bool {\n        self.keys.is_empty()\n    }")
    edit("src/config.rs", "if !(0.0..=1.0).contains(&self.compaction_threshold) {", "if !(0.0..=1.0).contains(&self.compaction_threshold) || self.compaction_threshold.is_nan() {",
         text="`manual_range_contains` in `src/config.rs` points at the threshold check, which already uses `contains`; clippy is flagging the NaN case. Making it explicit.")
    edit("src/compaction.rs", "(live_bytes as f64 / total_bytes as f64) < self.config.compaction_threshold",
         "#[allow(clippy::cast_precision_loss)] // sizes below 2^53 bytes are exact\n        let ratio = live_bytes as f64 / total_bytes as f64;\n        total_bytes > 0 && ratio < self.config.compaction_threshold")
    read("src/compaction.rs", offset=line_of("src/compaction.rs", "pub fn should_compact") - 1, limit=8)
    edit("src/compaction.rs", "        total_bytes > 0 && #[allow(clippy::cast_precision_loss)] // sizes below 2^53 bytes are exact\n        let ratio", "        #[allow(clippy::cast_precision_loss)] // sizes below 2^53 bytes are exact\n        let ratio",
         text="That edit produced `total_bytes > 0 && #[allow…] let ratio …` — invalid. Fixing the expression order.")
    read("src/compaction.rs", offset=line_of("src/compaction.rs", "pub fn should_compact") - 1, limit=8)
    for rel in ("src/segment.rs", "src/wal.rs"):
        grep(r"for i in 0\.\.|\.read\(", path=rel)
    say("The `needless_range_loop` and `unused_io_amount` hits were in the padding helpers and an old `read` call that the audit already replaced with `read_exact`; clippy's line numbers were from before the audit. Re-running.")
    bash("cargo clippy --all-targets -- -D warnings 2>&1 | tail -20", f"    Checking tidewater v0.3.1 ({ROOT})\n    Finished `dev` profile [unoptimized + debuginfo] target(s) in 3.02s", 0, "Clippy again")
    out, code = cargo_test({})
    bash("cargo test 2>&1 | tail -70", out, code, "Tests after clippy fixes")

    # ---- Phase 6: a sub-agent -----------------------------------------------------------------
    user_prompt("Before we wrap up: is MAX_SEGMENT_BYTES used consistently everywhere, or are there hard-coded 4 MiB values left? Use a sub-agent if it helps.")
    task_id = tool_id()
    assistant_blocks([{"type": "text", "text": "I'll have a sub-agent search the whole tree for hard-coded segment sizes."},
                      {"type": "tool_use", "id": task_id, "name": "Task", "input": {"description": "Find hard-coded segment sizes", "prompt": "Search the tidewater repo for hard-coded values equal to 4 MiB (4194304, 4 * 1024 * 1024, 0x400000) or other literal segment sizes that should use MAX_SEGMENT_BYTES. Report file:line for each.", "subagent_type": "general-purpose"}}])
    side = base("user", True)
    side["message"] = {"role": "user", "content": "Search the tidewater repo for hard-coded values equal to 4 MiB (4194304, 4 * 1024 * 1024, 0x400000) or other literal segment sizes that should use MAX_SEGMENT_BYTES. Report file:line for each."}
    EVENTS.append(side)
    call("Grep", {"pattern": "4194304|4 \\* 1024 \\* 1024|0x400000", "output_mode": "content", "-n": True},
         "\n".join(f"{p(r)}:{i}:{l}" for r, i, l in [(r, i, l) for r in sorted(FILES) for i, l in enumerate(FILES[r], 1) if "4 * 1024 * 1024" in l]), sidechain=True)
    call("Grep", {"pattern": "max_segment_bytes", "output_mode": "content", "-n": True},
         "\n".join(f"{p(r)}:{i}:{l}" for r in sorted(FILES) for i, l in enumerate(FILES[r], 1) if "max_segment_bytes" in l), sidechain=True)
    call("Glob", {"pattern": "**/*.rs"}, "\n".join(p(r) for r in sorted(FILES) if r.endswith(".rs")), sidechain=True)
    sub_answer = ("Only one literal: `src/segment.rs` defines `MAX_SEGMENT_BYTES = 4 * 1024 * 1024`. Everything else refers to the constant or to `StoreConfig::max_segment_bytes`. "
                  "However `SegmentWriter::is_full` compares against the constant `MAX_SEGMENT_BYTES`, not the configured `max_segment_bytes`, so the new CLI flag has no effect on sealing.")
    ev = base("assistant", True)
    ev["message"] = {"id": msg_id(), "type": "message", "role": "assistant", "model": MODEL, "content": [{"type": "text", "text": sub_answer}], "stop_reason": "end_turn", "stop_sequence": None, "usage": usage()}
    EVENTS.append(ev)
    tool_result(task_id, [{"type": "text", "text": sub_answer}])
    read("src/segment.rs", offset=line_of("src/segment.rs", "pub fn is_full") - 1, limit=4,
         text="The sub-agent found a real gap: `SegmentWriter::is_full` uses the constant, so `--max-segment-bytes` (added earlier) is ignored when sealing. Confirming.")
    edit("src/segment.rs", "    out: BufWriter<File>,\n    block: Vec<u8>,", "    out: BufWriter<File>,\n    max_bytes: u64,\n    block: Vec<u8>,")
    edit("src/segment.rs", "        self.written + self.block.len() as u64 >= MAX_SEGMENT_BYTES", "        self.written + self.block.len() as u64 >= self.max_bytes")
    edit("src/segment.rs", "Ok(SegmentWriter { id, path, out, block", "Ok(SegmentWriter { id, path, out, max_bytes: MAX_SEGMENT_BYTES, block")
    edit("src/segment.rs", "    pub fn is_full(&self) -> bool {", "    /// Seals at `max_bytes` instead of `MAX_SEGMENT_BYTES`.\n    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {\n        self.max_bytes = max_bytes;\n        self\n    }\n\n    pub fn is_full(&self) -> bool {")
    grep(r"SegmentWriter::create", path="src")
    edit("src/compaction.rs", "let mut writer = SegmentWriter::create(&self.dir, self.next_id)?;", "let mut writer = SegmentWriter::create(&self.dir, self.next_id)?.with_max_bytes(self.config.max_segment_bytes);")
    edit("src/compaction.rs", "                writer = SegmentWriter::create(&self.dir, self.next_id)?;", "                writer = SegmentWriter::create(&self.dir, self.next_id)?.with_max_bytes(self.config.max_segment_bytes);")
    out, code = cargo_test({})
    bash("cargo test 2>&1 | tail -70", out, code, "Tests after wiring max_segment_bytes")
    system_event("Context left until auto-compact: 18%", "warning")

    # ---- Phase 7: benchmark -------------------------------------------------------------------
    user_prompt("Does the compaction fix change performance? Run the compaction bench.")
    read("benches/compaction.rs")
    bench = f"""   Compiling tidewater v0.3.1 ({ROOT})
    Finished `bench` profile [optimized] target(s) in 38.12s
     Running benches/compaction.rs (target/release/deps/compaction-9e1d0c3b2a4f5e6d)
Gnuplot not found, using plotters backend
Benchmarking merge_segments 4x10k
Benchmarking merge_segments 4x10k: Warming up for 3.0000 s
Benchmarking merge_segments 4x10k: Collecting 100 samples in estimated 5.4213 s (2525 iterations)
Benchmarking merge_segments 4x10k: Analyzing
merge_segments 4x10k    time:   [2.1312 ms 2.1448 ms 2.1601 ms]
                        change: [+0.8121% +1.4410% +2.0917%] (p = 0.00 < 0.05)
                        Change within noise threshold.
Found 4 outliers among 100 measurements (4.00%)
  3 (3.00%) high mild
  1 (1.00%) high severe"""
    bash("cargo bench --bench compaction 2>&1 | tail -30", bench, 0, "Run the compaction benchmark")
    say("`merge_segments 4x10k`: 2.14 ms, +1.4 % vs the saved baseline, which criterion calls within noise. The extra `is_full_run` check per tombstone costs nothing measurable.")

    # ---- Phase 8: more module work to make the session long --------------------------------
    user_prompt("Add unit tests for SparseIndex::lookup edge cases and for SegmentReader on a truncated file, then show me the final diff stat.")
    read("src/index.rs")
    tests_idx = """
#[cfg(test)]
mod tests {
    use super::*;

    fn idx(keys: &[&str], interval: usize) -> SparseIndex {
        let entries: Vec<Entry> = keys.iter().enumerate().map(|(i, k)| Entry { key: k.as_bytes().to_vec(), value: Some(vec![]), seq: i as u64 }).collect();
        SparseIndex::build(entries.iter().enumerate().map(|(i, e)| (e, i as u64 * 100)), interval)
    }

    #[test]
    fn lookup_before_first_key() {
        assert_eq!(idx(&["b", "c"], 1).lookup(b"a"), None);
    }

    #[test]
    fn lookup_exact_key() {
        assert_eq!(idx(&["a", "b", "c"], 1).lookup(b"b"), Some(100));
    }

    #[test]
    fn lookup_between_keys() {
        assert_eq!(idx(&["a", "c", "e", "g"], 2).lookup(b"d"), Some(100));
    }

    #[test]
    fn empty_index() {
        let i = idx(&[], 4);
        assert!(i.is_empty());
        assert_eq!(i.lookup(b"x"), None);
    }
}"""
    FILES["src/index.rs"] += tests_idx.split("\n")
    call("Edit", {"file_path": p("src/index.rs"), "old_string": "    pub fn interval(&self) -> usize {\n        self.interval\n    }\n}", "new_string": "    pub fn interval(&self) -> usize {\n        self.interval\n    }\n}" + tests_idx},
         f"The file {p('src/index.rs')} has been updated. Here's the result of running `cat -n` on a snippet of the edited file:\n" + numbered(FILES["src/index.rs"][-30:], len(FILES["src/index.rs"]) - 29))
    fail_line = line_of("src/index.rs", 'lookup(b"d")')
    out, code = cargo_test({"index::tests::lookup_between_keys": (f"src/index.rs:{fail_line}:9", ["assertion `left == right` failed", "  left: Some(0)", " right: Some(100)"])}, filt="index")
    bash("cargo test index 2>&1 | tail -40", out, code, "Run index tests")
    read("src/index.rs", offset=1, limit=40,
         text="`lookup_between_keys` fails: `lookup(b\"d\")` returned `Some(0)`, I expected `Some(100)` (the offset of `c`). Let me re-read `SparseIndex::build` and `lookup`.")
    say("The code is right and my test was wrong. With `interval = 2`, `build` keeps only every second key — `a` (offset 0) and `e` (offset 200); `c` is not in the index. "
        "For `d`, `binary_search_by` returns `Err(1)` and `lookup` answers `offsets[0]` = 0: start scanning at `a`, the nearest *indexed* key at or before `d`. That is what a sparse index should do. "
        "Fixing the expectation and adding the case that does land on the second indexed key.")
    edit("src/index.rs", '        assert_eq!(idx(&["a", "c", "e", "g"], 2).lookup(b"d"), Some(100));',
         '        let i = idx(&["a", "c", "e", "g"], 2);\n        assert_eq!(i.len(), 2);\n        assert_eq!(i.lookup(b"d"), Some(0));\n        assert_eq!(i.lookup(b"f"), Some(200));')
    out, code = cargo_test({}, filt="index")
    bash("cargo test index 2>&1 | tail -40", out, code, "Run index tests again")
    read("src/segment.rs", offset=line_of("src/segment.rs", "mod tests"), limit=40)
    edit("src/segment.rs", "    #[test]\n    fn seal_writes_footer() {", """    #[test]
    fn reader_stops_on_truncated_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 3).unwrap();
        for i in 0..100u64 {
            w.append(&Entry { key: format!("user:{i:04}").into_bytes(), value: Some(vec![7; 32]), seq: i }).unwrap();
        }
        let p = w.seal().unwrap();
        let mut data = std::fs::read(&p).unwrap();
        let footer = data.split_off(data.len() - 12);
        data.truncate(data.len() - 20);
        data.extend_from_slice(&footer);
        std::fs::write(&p, data).unwrap();
        let n = SegmentReader::open(&p, 3).unwrap().count();
        assert!(n < 100);
    }

    #[test]
    fn seal_writes_footer() {""")
    out, code = cargo_test({}, filt="segment")
    bash("cargo test segment 2>&1 | tail -60", out, code, "Run segment tests")
    diffstat = """ Cargo.toml           |  1 +
 benches/compaction.rs|  0
 src/bin/tidewater.rs |  7 +++++--
 src/compaction.rs    | 11 ++++++-----
 src/config.rs        |  2 +-
 src/index.rs         | 44 ++++++++++++++++++++++++++++++++++++++++++++
 src/segment.rs       | 36 +++++++++++++++++++++++++++++++-----
 src/wal.rs           | 10 +++++-----
 tests/compaction.rs  | 31 +++++++++++++++++++++++++++++++
 tests/recovery.rs    |  5 +++--
 10 files changed, 128 insertions(+), 17 deletions(-)"""
    bash("git log --oneline -5", "a41c9e2 (HEAD -> fix/compaction-tombstones) compaction: keep_tombstones flag\n7f0b3d1 wal: sync_every_write option\n0c2e8aa segment: block-buffered writer\n93d41f7 index: sparse index over sealed segments\n5be7a10 initial import", 0, "Recent commits")
    bash("git diff --stat", diffstat, 0, "Diff stat")
    bash("git status", git_status(["Cargo.toml", "src/bin/tidewater.rs", "src/compaction.rs", "src/config.rs", "src/index.rs", "src/segment.rs", "src/wal.rs", "tests/recovery.rs"]) + "\n\nUntracked files:\n\ttests/compaction.rs", 0, "Status")
    snapshot_event()

    # ---- Phase 9: a second pass that re-reads early files (so the long tail refers back) -------
    user_prompt("One last review pass: re-read the files you changed and make sure nothing contradicts what we found at the start of the session.")
    for rel in ["src/compaction.rs", "src/segment.rs", "src/wal.rs", "src/config.rs", "src/bin/tidewater.rs", "tests/compaction.rs", "tests/recovery.rs"]:
        read(rel, text=f"Re-reading `{rel}`.")
    grep(r"keep_tombstones|is_full_run", path="src")
    grep(r"MAX_SEGMENT_BYTES|max_segment_bytes|max_bytes", path="src")
    grep(r"crc32fast::hash", path="src")
    grep(r"TODO|FIXME|XXX")
    read("src/bin/tidewaterctl.rs", text="The CI notes mention a `tidewaterctl` binary; checking whether it exists too.")
    call("Glob", {"pattern": "**/*.toml"}, p("Cargo.toml"))
    say("There is no `src/bin/tidewaterctl.rs` (and no other manifest than `Cargo.toml`), so the only CLI is `src/bin/tidewater.rs`, already updated.")
    edit("src/config.rs", "    /// Keep tombstones in partial compactions (required for correctness).", "    /// Keep tombstones even in full compactions (partial runs always keep them; see\n    /// `Compactor::merge_segments`).",
         text="One contradiction: the doc of `keep_tombstones` in `src/config.rs` still says it is *required for correctness* in partial compactions — that was the misunderstanding behind the original bug. Updating it.")
    out, code = cargo_test({})
    bash("cargo test 2>&1 | tail -70", out, code, "Final full test run")
    bash("cargo clippy --all-targets -- -D warnings 2>&1 | tail -5", f"    Checking tidewater v0.3.1 ({ROOT})\n    Finished `dev` profile [unoptimized + debuginfo] target(s) in 2.71s", 0, "Final clippy")
    bash("git add -A && git commit -q -m 'Keep tombstones in partial compactions; WAL CRC always checked; --max-segment-bytes' && git log --oneline -1",
         "e83f5c0 (HEAD -> fix/compaction-tombstones) Keep tombstones in partial compactions; WAL CRC always checked; --max-segment-bytes", 0, "Commit")
    user_prompt("Summarize the whole session for the PR description. Include the original failing assertion verbatim.")
    say("## Fix tombstone loss in partial compactions, and related cleanups\n\n"
        "**Original failure** (`cargo test`, start of session):\n\n"
        "```\nthread 'compaction::tests::compaction_preserves_tombstones' panicked at src/compaction.rs:"
        f"{line_of('src/compaction.rs', 'assert_eq!(kept.map')}:9:\nassertion `left == right` failed: tombstone for key \"user:0042\" was dropped\n  left: None\n right: Some(17)\n```\n\n"
        "**Cause**: `Compactor::merge_segments` dropped every tombstone unless `StoreConfig::keep_tombstones` was set, ignoring its `is_full_run` argument. In a partial run the older `put` for `user:0042` "
        "lives in a segment outside the run, so dropping the tombstone resurrected it.\n\n"
        "**Changes**\n"
        "- `src/compaction.rs`: drop tombstones only when `is_full_run && !keep_tombstones`; writers seal at `config.max_segment_bytes`.\n"
        "- `src/segment.rs`: `SegmentWriter::with_max_bytes`; `is_full` uses it instead of `MAX_SEGMENT_BYTES` (found by the sub-agent: the constant made `--max-segment-bytes` a no-op); `SegmentReader::next` is bounds-checked; new test `reader_stops_on_truncated_segment`.\n"
        "- `src/wal.rs`: `replay` always verifies the CRC32 (the `record.crc != 0` shortcut accepted zeroed checksums); header decoding without `unwrap()`.\n"
        "- `src/bin/tidewater.rs`: `--max-segment-bytes` (default `MAX_SEGMENT_BYTES`, validated by `StoreConfig::validate`); `anyhow` added to `Cargo.toml`.\n"
        "- `src/index.rs`: `is_empty`; unit tests for `SparseIndex::lookup` edge cases.\n"
        "- `tests/compaction.rs` (new): `full_compaction_drops_tombstones`, `partial_compaction_keeps_tombstones`, `compaction_stats_add_up`.\n"
        "- `tests/recovery.rs`: `wal_replay_after_crash` was flaky (3/20) because it truncated an unsynced file; it now opens the WAL with `sync_every_write = true` (40/40 green).\n\n"
        "Bench: `merge_segments 4x10k` 2.14 ms (+1.4 %, within noise).")


def main():
    build()
    # A summary line as Claude Code writes when the session is resumed: it names the last event.
    EVENTS.insert(0, {"type": "summary", "summary": "Fix tombstone loss in tidewater partial compactions; WAL CRC and flaky recovery test", "leafUuid": LAST_UUID[0]})
    if len(EVENTS) < 300:
        raise SystemExit(f"only {len(EVENTS)} events; the sample must have at least 300")
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "claude-code-long.jsonl")
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        for ev in EVENTS:
            f.write(json.dumps(ev, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {len(EVENTS)} events to {out}")


if __name__ == "__main__":
    main()
