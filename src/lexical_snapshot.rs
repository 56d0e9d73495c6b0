//! Snapshots of the lexical index's committed part, so a reopened session does not index its whole
//! history again (issue 11: Tantivy's indexing was half the CPU of a reopen, and its longer half).
//!
//! A snapshot is one byte string: a header naming what the index holds — the first `turns` texts
//! added, and a fingerprint of them (a running hash of every text, in order) — and the Tantivy
//! files of its last commit, then a hash of everything before it. A reopen that is given one
//! ([`LexicalIndex::resume`]) loads the files into a RAM directory and skips those turns when the
//! replay adds them, hashing their texts as it goes; when it reaches the last one, the hash must
//! equal the snapshot's, or the snapshot is not this log's (another session under a reused id, a
//! log restored from an older copy, text rendered differently by another build) and the engine
//! indexes everything again ([`LexicalIndex::resume_ok`]). A snapshot that does not decode
//! (damaged, truncated, another format or Tantivy version, another analysis) is ignored the same
//! way: it is a cache, the log stays the truth.
//!
//! Child module of `lexical` (it reads the index's private fields); the pending documents and their
//! in-memory scoring are not touched here.

use std::hash::Hasher;
use std::path::{Path, PathBuf};

use rustc_hash::FxHasher;
use tantivy::directory::RamDirectory;
use tantivy::{Directory, Index, ReloadPolicy};

use super::{Committed, LexicalIndex, TOKENIZER, analyzer};
use crate::error::{Error, Result};

/// The format's first bytes.
const MAGIC: &[u8; 8] = b"CTXWLEX\x01";
/// Bump when what is indexed changes without the texts changing (schema, analysis): older
/// snapshots are then ignored. The analysis is also checked by [`analysis_probe`].
const FORMAT: u32 = 1;
/// Tantivy's bookkeeping files.
const META: &str = "meta.json";
const MANAGED: &str = ".managed.json";

/// How many texts were added, and a running hash of them in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Trail {
    pub(super) turns: usize,
    pub(super) hash: u64,
}

impl Default for Trail {
    fn default() -> Self {
        Trail { turns: 0, hash: 0x6c65_7869_6361_6c31 }
    }
}

impl Trail {
    /// The trail after `text`.
    pub(super) fn feed(&mut self, text: &str) {
        let mut h = FxHasher::default();
        h.write_u64(self.hash);
        h.write_usize(text.len());
        h.write(text.as_bytes());
        self.hash = h.finish();
        self.turns += 1;
    }
}

/// A hash of the analysis of a fixed text (stop words, stemming, case, long words, non-ASCII), so a
/// build whose analysis differs ignores another build's snapshots.
fn analysis_probe(index: &mut LexicalIndex) -> u64 {
    let probe = "The runners were running quickly; RUNS ran Générations café x86_64 fooBar HTTPServer \
                 1234 a_b don't it's connection connected connecting \
                 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut h = FxHasher::default();
    for t in index.analyze(probe) {
        h.write(t.as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

/// A hash of `bytes` (the snapshot's check against damage).
fn checksum(bytes: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(bytes);
    h.finish()
}

/// Reads `n` bytes at `*at`, advancing it; `None` past the end.
fn take<'a>(bytes: &'a [u8], at: &mut usize, n: usize) -> Option<&'a [u8]> {
    let end = at.checked_add(n)?;
    let out = bytes.get(*at..end)?;
    *at = end;
    Some(out)
}

fn take_u16(bytes: &[u8], at: &mut usize) -> Option<usize> {
    take(bytes, at, 2).and_then(|b| b.try_into().ok()).map(|b| u16::from_le_bytes(b) as usize)
}

fn take_u32(bytes: &[u8], at: &mut usize) -> Option<u32> {
    take(bytes, at, 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes)
}

fn take_u64(bytes: &[u8], at: &mut usize) -> Option<u64> {
    take(bytes, at, 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
}

/// A snapshot that cannot be made or read.
fn snap_err(e: impl std::fmt::Display) -> Error {
    Error::Index(tantivy::TantivyError::InternalError(format!("lexical snapshot: {e}")))
}

/// A decoded snapshot: what it holds and Tantivy's files.
struct Decoded<'a> {
    trail: Trail,
    files: Vec<(&'a str, &'a [u8])>,
}

impl LexicalIndex {
    /// Turns the Tantivy index holds (committed), in the order added.
    pub(crate) fn committed_turns(&self) -> usize {
        self.committed_trail.turns
    }

    /// A snapshot of the committed part (see the module doc), `None` when nothing is committed.
    /// Not in bulk mode (its writer may still be indexing).
    pub(crate) fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        if self.bulk.is_some() || self.dir.is_some() || self.committed_trail.turns == 0 {
            return Ok(None);
        }
        let probe = analysis_probe(self);
        let Some(Committed { index, ram: Some(dir), .. }) = &self.committed else { return Ok(None) };
        let meta = index.load_metas()?;
        let mut names: Vec<PathBuf> = meta.list_segment_files().into_iter().collect();
        names.sort();
        let mut files: Vec<(String, Vec<u8>)> = Vec::with_capacity(names.len() + 2);
        for name in names {
            // Candidate components a segment did not write are absent. The files as written (the
            // RAM directory's, with the footers Tantivy's managed directory strips).
            let Ok(slice) = dir.open_read(&name) else { continue };
            let bytes = slice.read_bytes().map_err(snap_err)?;
            files.push((name.to_string_lossy().into_owned(), bytes.as_slice().to_vec()));
        }
        // Only these files are the imported index's (its garbage collection may delete them once merged).
        let managed: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        let managed = serde_json::to_vec(&managed).map_err(snap_err)?;
        files.push((MANAGED.to_string(), managed));
        let meta_bytes = dir.atomic_read(Path::new(META)).map_err(snap_err)?;
        files.push((META.to_string(), meta_bytes));

        let size: usize = files.iter().map(|(n, b)| n.len() + b.len() + 10).sum();
        let mut out = Vec::with_capacity(size + 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        put_name(&mut out, tantivy::version_string());
        out.extend_from_slice(&probe.to_le_bytes());
        out.extend_from_slice(&(self.committed_trail.turns as u64).to_le_bytes());
        out.extend_from_slice(&self.committed_trail.hash.to_le_bytes());
        out.extend_from_slice(&(files.len() as u32).to_le_bytes());
        for (name, bytes) in &files {
            put_name(&mut out, name);
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        let sum = checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        Ok(Some(out))
    }

    /// Decodes `bytes`; `None` when it is not a snapshot this build can use.
    fn decode_snapshot<'a>(&mut self, bytes: &'a [u8]) -> Option<Decoded<'a>> {
        let body_len = bytes.len().checked_sub(8)?;
        let (body, sum) = bytes.split_at(body_len);
        if u64::from_le_bytes(sum.try_into().ok()?) != checksum(body) {
            return None;
        }
        let mut at = 0;
        if take(body, &mut at, MAGIC.len())? != MAGIC || take_u32(body, &mut at)? != FORMAT {
            return None;
        }
        let n = take_u16(body, &mut at)?;
        if take(body, &mut at, n)? != tantivy::version_string().as_bytes() {
            return None;
        }
        if take_u64(body, &mut at)? != analysis_probe(self) {
            return None;
        }
        let turns = usize::try_from(take_u64(body, &mut at)?).ok()?;
        let hash = take_u64(body, &mut at)?;
        let count = take_u32(body, &mut at)?;
        let mut files = Vec::new();
        for _ in 0..count {
            let n = take_u16(body, &mut at)?;
            let name = std::str::from_utf8(take(body, &mut at, n)?).ok()?;
            // File names of one directory level only.
            if name.is_empty() || name.contains(['/', '\\']) || name == ".." || name == "." {
                return None;
            }
            let len = usize::try_from(take_u64(body, &mut at)?).ok()?;
            files.push((name, take(body, &mut at, len)?));
        }
        (at == body.len()).then_some(Decoded { trail: Trail { turns, hash }, files })
    }

    /// Starts from `snapshot` (a fresh index in RAM, before anything is added): its index becomes
    /// the committed part, and `add` skips the first turns it holds (see the module doc). Returns
    /// how many turns it holds; 0 when it cannot be used (then nothing changed).
    pub(crate) fn resume(&mut self, snapshot: &[u8]) -> usize {
        let fresh = self.dir.is_none() && self.committed.is_none() && self.pending.is_empty() && self.trail.turns == 0;
        if !fresh {
            return 0;
        }
        let Some(d) = self.decode_snapshot(snapshot) else { return 0 };
        // The uninterrupted engine commits every `commit_every` turns: resuming elsewhere would
        // leave other turns pending than it does.
        if d.trail.turns == 0 || !d.trail.turns.is_multiple_of(self.commit_every) {
            return 0;
        }
        let Ok(committed) = self.open_files(&d.files) else { return 0 };
        if committed.reader.searcher().num_docs() != d.trail.turns as u64 {
            return 0;
        }
        self.committed = Some(committed);
        self.committed_trail = d.trail;
        self.resumed = Some(d.trail);
        d.trail.turns
    }

    /// A Tantivy index in RAM made of `files`, with this index's schema and analyzer.
    fn open_files(&self, files: &[(&str, &[u8])]) -> Result<Committed> {
        let dir = RamDirectory::create();
        // `meta.json` is written last, so nothing reads a directory that lacks its segments.
        for (name, bytes) in files.iter().filter(|(n, _)| *n != META).chain(files.iter().filter(|(n, _)| *n == META)) {
            dir.atomic_write(Path::new(name), bytes).map_err(snap_err)?;
        }
        let index = Index::open(dir.clone())?;
        if index.schema() != self.schema() {
            return Err(snap_err("another schema"));
        }
        index.tokenizers().register(TOKENIZER, analyzer());
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(Committed { index, reader, ram: Some(dir) })
    }

    /// Counts `text` into the trail; true when it is one of the turns a resumed snapshot holds
    /// (then `add` has nothing more to do with it). Checks the fingerprint at the last of them.
    pub(super) fn skip_resumed(&mut self, text: &str) -> bool {
        self.trail.feed(text);
        let Some(r) = self.resumed else { return false };
        if self.trail.turns == r.turns && self.trail.hash != r.hash {
            self.resume_failed = true;
        }
        self.trail.turns <= r.turns
    }

    /// False when a resumed snapshot turned out not to hold this log's turns (another fingerprint,
    /// or fewer turns replayed than it holds): the caller indexes every turn again.
    pub(crate) fn resume_ok(&self) -> bool {
        match self.resumed {
            Some(r) => !self.resume_failed && self.trail.turns >= r.turns,
            None => true,
        }
    }

    /// A fresh, empty index like this one (in RAM, same commit interval).
    pub(crate) fn fresh(&self) -> Result<LexicalIndex> {
        LexicalIndex::new(None, self.commit_every)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexical::tests::Docs;
    use crate::turn::TurnId;

    fn docs() -> Vec<String> {
        let words = ["support group counseling", "painted a sunrise by the lake", "kids camping trip", "adoption agency papers", "the runners were running"];
        (0..23).map(|i| format!("{} number {i} {}", words[i % 5], words[(i * 3) % 5])).collect()
    }

    /// Every score and top-k of `a` and `b`, bit for bit.
    fn assert_same(a: &mut Docs, b: &mut Docs) -> Result<()> {
        for q in ["support group number 3", "painted sunrise 22", "kids camping adoption run", "number"] {
            let q = a.analyze(q);
            let sorted = |mut v: Vec<(TurnId, f32)>| {
                v.sort_by_key(|x| x.0);
                v.into_iter().map(|(id, s)| (id, s.to_bits())).collect::<Vec<_>>()
            };
            assert_eq!(sorted(a.scores(&q)?), sorted(b.scores(&q)?), "{q:?}");
            for k in [1, 3, 10] {
                assert_eq!(a.top(&q, k)?, b.top(&q, k)?, "{q:?} top {k}");
            }
        }
        Ok(())
    }

    /// An index resumed from a snapshot of 8 committed documents, given the 23 texts as a reopen
    /// gives them, scores exactly as the index that added them one by one, with the same split
    /// between committed and pending documents; a snapshot of other texts, or of more than are
    /// given, is detected; a damaged one is refused.
    #[test]
    fn a_resumed_index_scores_exactly_as_the_uninterrupted_one() -> Result<()> {
        let docs = docs();
        let mut first = Docs::new(None, 4)?;
        for (i, t) in docs.iter().take(10).enumerate() {
            first.add(i, t)?;
        }
        assert_eq!(first.committed_turns(), 8);
        let Some(snap) = first.snapshot()? else { panic!("no snapshot") };

        let mut one = Docs::new(None, 4)?;
        let mut resumed = Docs::new(None, 4)?;
        assert_eq!(resumed.resume(&snap), 8);
        resumed.begin_bulk();
        for (i, t) in docs.iter().enumerate() {
            one.add(i, t)?;
            resumed.add(i, t)?;
        }
        resumed.end_bulk()?;
        assert!(resumed.resume_ok());
        assert_eq!((resumed.committed_turns(), one.committed_turns()), (20, 20));
        assert_eq!((resumed.pending.len(), resumed.num_committed()), (3, 20));
        assert_same(&mut one, &mut resumed)?;

        // Other texts (one word changed in the 6th) or fewer than the snapshot holds.
        let mut other = Docs::new(None, 4)?;
        assert_eq!(other.resume(&snap), 8);
        for (i, t) in docs.iter().enumerate() {
            other.add(i, &if i == 5 { t.replace("number", "numbers") } else { t.clone() })?;
        }
        assert!(!other.resume_ok());
        let mut fewer = Docs::new(None, 4)?;
        assert_eq!(fewer.resume(&snap), 8);
        for (i, t) in docs.iter().take(7).enumerate() {
            fewer.add(i, t)?;
        }
        assert!(!fewer.resume_ok());

        // Damaged anywhere, truncated, or for another commit interval: refused, nothing changed.
        for at in [0, 9, snap.len() / 2, snap.len() - 1] {
            let mut bad = snap.clone();
            bad[at] ^= 1;
            assert_eq!(Docs::new(None, 4)?.resume(&bad), 0, "byte {at}");
        }
        assert_eq!(Docs::new(None, 4)?.resume(&snap[..snap.len() - 9]), 0);
        assert_eq!(Docs::new(None, 4)?.resume(&[]), 0);
        let mut three = Docs::new(None, 3)?;
        assert_eq!(three.resume(&snap), 0);
        assert!(three.committed.is_none());
        Ok(())
    }
}
