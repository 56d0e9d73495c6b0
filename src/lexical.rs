//! The lexical index: Tantivy BM25 over each turn's rendered text, English stemming and stop words.
//!
//! Committing a Tantivy index costs milliseconds (with occasional ~100 ms stalls on the index lock),
//! so `add` does not commit per turn: documents are committed in batches of `commit_every`.
//! Turns not yet committed are kept here, analyzed at `add` (a long tool output is analyzed once,
//! at push, not by the window after it), and scored in memory
//! with the same BM25 formula (Tantivy's, including its quantized field norms) over the statistics
//! of committed + pending documents — Tantivy itself scores committed documents with those same
//! combined statistics — so every pushed turn is findable by the very next query.
//!
//! A session costs almost nothing until it has something to commit: the Tantivy index (in RAM) is
//! created at the first commit, and a writer — ≈9 MB and 7 threads with Tantivy's minimum arena —
//! exists only during a commit: it is made, given the pending documents, committed, and dropped
//! once its merges are done. An empty engine holds no thread and no arena, and a session shorter
//! than `commit_every` turns never builds a Tantivy index at all (its scores are the in-memory BM25
//! above, equal to Tantivy's).

use std::cell::RefCell;
use std::path::Path;

use rustc_hash::FxHashMap;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::fieldnorm::FieldNormReader;
use tantivy::query::{Bm25StatisticsProvider, BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{Language, LowerCaser, RawTokenizer, Stemmer, StopWordFilter, TextAnalyzer, Token, TokenStream, Tokenizer};
use tantivy::{DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Score, SegmentOrdinal, SegmentReader, TantivyDocument, Term};

use crate::error::{Error, Result};
use crate::turn::TurnId;

#[path = "lexical_snapshot.rs"]
mod snapshot;
use snapshot::Trail;

const TOKENIZER: &str = "ctxwin_en";
const K1: f32 = 1.2;
const B: f32 = 0.75;
/// Queries of more distinct terms than this take their top-k from every match instead of Tantivy's
/// top-k collector (measured on agent queries of up to 64 terms, where block-max WAND was twice as
/// slow as collecting every match; questions of a few terms prune well).
const WAND_MAX_TERMS: usize = 12;
/// Indexing memory per engine (Tantivy's minimum arena for one thread).
const WRITER_MEMORY: usize = 15_000_000;

/// The analyzer: Tantivy's `SimpleTokenizer` words (runs of alphanumeric characters), those of 40
/// bytes or more dropped (`RemoveLongFilter::limit(40)`), lower-cased, English stop words dropped,
/// English (Porter/Snowball) stemming; one pass over the text, the last three memoized per word
/// ([`MemoWords`]).
fn analyzer() -> TextAnalyzer {
    TextAnalyzer::from(MemoWords::default())
}

/// What [`MemoWords`] does to one word: Tantivy's own lower-caser, English stop-word filter and
/// stemmer, run on the word as a single token.
fn word_analyzer() -> TextAnalyzer {
    let builder = TextAnalyzer::builder(RawTokenizer::default()).filter(LowerCaser);
    match StopWordFilter::new(Language::English) {
        Some(stop) => builder.filter(stop).filter(Stemmer::new(Language::English)).build(),
        None => builder.filter(Stemmer::new(Language::English)).build(),
    }
}

/// Distinct words a [`MemoWords`] remembers before it starts over (~0.5 MB at most).
const WORD_MEMO_WORDS: usize = 8192;

/// Words longer than this many bytes minus one are dropped (Tantivy's `RemoveLongFilter::limit`).
const LONGEST_WORD: usize = 40;

/// The whole analysis as one tokenizer: it splits words exactly as Tantivy's `SimpleTokenizer`
/// does (same positions and offsets), drops the long ones as `RemoveLongFilter` does, and gives
/// each remaining word the term Tantivy's `LowerCaser`, `StopWordFilter` and `Stemmer` give it
/// (computed by running exactly those filters on the word, so the terms are the same by
/// construction), remembered by the word as written. Stemming was half of the CPU of indexing a
/// turn and lower-casing another seventh, and a history repeats its words (a reopened 10,000-turn
/// agent session: 47% of Tantivy's indexing thread in `frostem`); splitting and looking up in one
/// pass over the bytes copies each word once, where the chain of filters copied it twice and
/// decoded every character. The memo is the thread's ([`WORD_MEMO`]), shared by every engine and
/// index writer on it, so the analyzer Tantivy hands each segment writer and query costs nothing
/// to clone.
#[derive(Clone, Default)]
struct MemoWords {
    token: Token,
}

thread_local! {
    /// Each thread's [`WordMemo`]: a word's term is a pure function of the word, and histories
    /// share most of their words, so one memo serves every engine on the thread. One per engine
    /// (its analyzer's own) cost up to ~250 kB each: 2.5 MB of LoCoMo's ten engines' 14.7 MB of
    /// live heap (issue 9, heaptrack), and as much per hot session of a server.
    static WORD_MEMO: RefCell<WordMemo> = RefCell::new(WordMemo::default());
}

/// A word's term, as remembered: the word unchanged (already lower-case and a stem: most words of
/// a history, kept without a copy), another text, or a stop word (dropped).
enum WordTerm {
    Same,
    Other(Box<str>),
    Stop,
}

/// Each word's [`WordTerm`], bounded by [`WORD_MEMO_WORDS`] (cleared when full), and the analyzer
/// that computes a word not in it (made at the first such word). Words of up to 16 bytes (nearly
/// all) are keyed by [`short_key`]: a lookup hashes and compares two integers instead of hashing
/// the bytes and calling `memcmp` on a key behind a pointer.
#[derive(Default)]
struct WordMemo {
    short: FxHashMap<(u128, u8), WordTerm>,
    long: FxHashMap<Box<str>, WordTerm>,
    word: Option<TextAnalyzer>,
}

/// A word of at most 16 bytes as an integer key: its length, and its bytes read as two
/// little-endian integers from its start and from its end (overlapping when shorter than their
/// sum). The two reads cover every byte, so two words have the same key only when they are equal.
fn short_key(word: &str) -> Option<(u128, u8)> {
    let b = word.as_bytes();
    let n = b.len();
    let u32_at = |at: usize| b.get(at..at + 4).and_then(|s| s.try_into().ok()).map_or(0, u32::from_le_bytes);
    let u64_at = |at: usize| b.get(at..at + 8).and_then(|s| s.try_into().ok()).map_or(0, u64::from_le_bytes);
    let byte = |at: usize| b.get(at).copied().map_or(0, u128::from);
    let key = match n {
        0..=3 => byte(0) | byte(n / 2) << 8 | byte(n.saturating_sub(1)) << 16,
        4..=8 => u128::from(u32_at(0)) | u128::from(u32_at(n - 4)) << 32,
        9..=16 => u128::from(u64_at(0)) | u128::from(u64_at(n - 8)) << 64,
        _ => return None,
    };
    Some((key, n as u8))
}

impl WordMemo {
    /// Writes `word`'s term into `out`; `false` for a stop word (dropped). A word seen before
    /// costs one lookup.
    fn write(&mut self, word: &str, out: &mut String) -> bool {
        let key = short_key(word);
        let seen = match key {
            Some(k) => self.short.get(&k),
            None => self.long.get(word),
        };
        if let Some(term) = seen {
            return put(term, word, out);
        }
        let term = {
            let mut stream = self.word.get_or_insert_with(word_analyzer).token_stream(word);
            match stream.advance() {
                true if stream.token().text == word => WordTerm::Same,
                true => WordTerm::Other(Box::from(stream.token().text.as_str())),
                false => WordTerm::Stop,
            }
        };
        let keep = put(&term, word, out);
        if self.short.len() + self.long.len() >= WORD_MEMO_WORDS {
            self.short.clear();
            self.long.clear();
        }
        match key {
            Some(k) => self.short.insert(k, term),
            None => self.long.insert(Box::from(word), term),
        };
        keep
    }
}

/// Writes `term` (of `word`) into `out`; `false` for a stop word.
fn put(term: &WordTerm, word: &str, out: &mut String) -> bool {
    out.clear();
    match term {
        WordTerm::Same => out.push_str(word),
        WordTerm::Other(t) => out.push_str(t),
        WordTerm::Stop => return false,
    }
    true
}

impl Tokenizer for MemoWords {
    type TokenStream<'a> = MemoWordsStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> MemoWordsStream<'a> {
        self.token.reset();
        // The thread's memo moves into the stream for its lifetime (a word's lookup is then a
        // field access, not a thread-local access per word) and back when the stream is dropped.
        let memo = WORD_MEMO.with_borrow_mut(std::mem::take);
        MemoWordsStream { text, at: 0, token: &mut self.token, memo }
    }
}

struct MemoWordsStream<'a> {
    text: &'a str,
    /// Where the scan goes on (a character boundary).
    at: usize,
    token: &'a mut Token,
    /// The thread's [`WORD_MEMO`], taken for the stream's lifetime (a stream made while another
    /// is alive on the thread starts with an empty one).
    memo: WordMemo,
}

impl Drop for MemoWordsStream<'_> {
    fn drop(&mut self) {
        let memo = std::mem::take(&mut self.memo);
        // At thread exit the memo is simply dropped.
        let _ = WORD_MEMO.try_with(|m| {
            if let Ok(mut slot) = m.try_borrow_mut() {
                *slot = memo;
            }
        });
    }
}

/// Each byte's class for the word scan: 0 an ASCII separator, 1 an ASCII letter or digit, 2 a
/// byte of a non-ASCII character (decoded to decide).
const BYTE_CLASS: [u8; 256] = {
    let mut t = [2u8; 256];
    let mut b = 0;
    while b < 128 {
        t[b] = (b as u8).is_ascii_alphanumeric() as u8;
        b += 1;
    }
    t
};

impl MemoWordsStream<'_> {
    /// The next word's byte range (a run of alphanumeric characters), as `SimpleTokenizer` finds
    /// it: ASCII bytes by table, other characters decoded.
    fn next_word(&mut self) -> Option<(usize, usize)> {
        let (start, end) = crate::text::next_word_run(self.text, self.at, &BYTE_CLASS)?;
        self.at = end;
        Some((start, end))
    }
}

impl TokenStream for MemoWordsStream<'_> {
    fn advance(&mut self) -> bool {
        // Every word takes a position, the dropped ones too (as in Tantivy's chain of filters).
        while let Some((from, to)) = self.next_word() {
            self.token.position = self.token.position.wrapping_add(1);
            let word = &self.text[from..to];
            if word.len() >= LONGEST_WORD || !self.memo.write(word, &mut self.token.text) {
                continue;
            }
            self.token.offset_from = from;
            self.token.offset_to = to;
            return true;
        }
        self.at = self.text.len();
        false
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

/// Where the index reads a document's text: the store of pushed turns, which holds it already.
/// The index keeps no copy of its own (issue 9: the pending documents' copies were 0.8 MB of
/// LoCoMo's ten engines); it reads the text again to analyze a document added in bulk mode and
/// to hand documents to Tantivy at a commit.
pub(crate) trait DocTexts {
    /// The text of document `id` (a turn added to the index, so present).
    fn doc_text(&self, id: TurnId) -> &str;
}

struct PendingDoc {
    id: TurnId,
    /// Whether `len` and its postings are computed (at `add`; in bulk mode at the first query).
    analyzed: bool,
    len: u32,
}

/// The pending documents' postings: for each term, the documents holding it (index into
/// `pending`, in the order they were analyzed) and its frequency there. A query walks the postings
/// of its terms only, not every pending document; the document frequency is kept with the term.
///
/// Packed for memory (issue 9: a map of `String` to `Vec` cost ~150 bytes a term and most of a
/// short turn's footprint, 3.6 MB of LoCoMo's ten engines): the terms' bytes in one arena, looked
/// up through a table of term numbers, and every posting in one vector, each term's chained from
/// its first to its last (12 bytes a posting, no allocation per term).
#[derive(Default)]
struct Postings {
    /// Term numbers, hashed by their text.
    table: hashbrown::HashTable<u32>,
    /// The terms' bytes, one after the other.
    bytes: String,
    /// Per term number: where its bytes end in `bytes`, its first and last posting, its document
    /// frequency.
    terms: Vec<TermPostings>,
    postings: Vec<Posting>,
}

#[derive(Clone, Copy)]
struct TermPostings {
    end: u32,
    first: u32,
    last: u32,
    docs: u32,
}

#[derive(Clone, Copy)]
struct Posting {
    doc: u32,
    tf: u32,
    /// The term's next posting (`NO_POSTING` after its last).
    next: u32,
}

const NO_POSTING: u32 = u32::MAX;

fn term_hash(term: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<rustc_hash::FxHasher>::default().hash_one(term)
}

/// The text of term number `t`: its bytes in the arena, from where the one before it ends.
fn term_text<'a>(bytes: &'a str, terms: &[TermPostings], t: u32) -> &'a str {
    let i = t as usize;
    let start = i.checked_sub(1).and_then(|j| terms.get(j)).map_or(0, |p| p.end as usize);
    bytes.get(start..terms.get(i).map_or(start, |p| p.end as usize)).unwrap_or("")
}

impl Postings {
    fn find(&self, term: &str) -> Option<u32> {
        self.table.find(term_hash(term), |&t| term_text(&self.bytes, &self.terms, t) == term).copied()
    }

    /// Counts one occurrence of `term` in pending document `doc` (a document's terms are counted
    /// one document at a time: a term's last posting is this document's when it was seen in it).
    fn count(&mut self, term: &str, doc: u32) {
        let at = u32::try_from(self.postings.len()).unwrap_or(NO_POSTING);
        match self.find(term).and_then(|t| self.terms.get_mut(t as usize)) {
            Some(entry) => {
                match self.postings.get_mut(entry.last as usize) {
                    Some(p) if p.doc == doc => {
                        p.tf += 1;
                        return;
                    }
                    Some(p) => p.next = at,
                    None => {}
                }
                entry.last = at;
                entry.docs += 1;
            }
            None => {
                let t = u32::try_from(self.terms.len()).unwrap_or(u32::MAX);
                self.bytes.push_str(term);
                let end = u32::try_from(self.bytes.len()).unwrap_or(u32::MAX);
                self.terms.push(TermPostings { end, first: at, last: at, docs: 1 });
                let (bytes, terms) = (&self.bytes, &self.terms);
                self.table.insert_unique(term_hash(term), t, |&u| term_hash(term_text(bytes, terms, u)));
            }
        }
        crate::store::grow_by_quarter(&mut self.postings);
        self.postings.push(Posting { doc, tf: 1, next: NO_POSTING });
    }

    /// How many pending documents hold `term`.
    fn doc_freq(&self, term: &str) -> u64 {
        self.find(term).and_then(|t| self.terms.get(t as usize)).map_or(0, |p| u64::from(p.docs))
    }

    /// The postings of `term`: (document, frequency), in the order the documents were analyzed;
    /// `None` when no pending document holds it.
    fn of<'a>(&'a self, term: &str) -> Option<impl Iterator<Item = (u32, u32)> + 'a> {
        let mut next = self.terms.get(self.find(term)? as usize)?.first;
        Some(std::iter::from_fn(move || {
            let p = self.postings.get(next as usize)?;
            next = p.next;
            Some((p.doc, p.tf))
        }))
    }

    fn clear(&mut self) {
        *self = Postings::default();
    }
}

/// The Tantivy index and its reader, made at the first commit (or at once for a directory).
struct Committed {
    index: Index,
    reader: IndexReader,
    /// The index's files when it is in RAM, as written (a snapshot copies them).
    ram: Option<tantivy::directory::RamDirectory>,
}

/// Tantivy index plus in-memory scoring of not-yet-committed documents.
pub(crate) struct LexicalIndex {
    dir: Option<std::path::PathBuf>,
    committed: Option<Committed>,
    id_field: Field,
    text_field: Field,
    analyzer: TextAnalyzer,
    pending: Vec<PendingDoc>,
    pending_postings: Postings,
    pending_tokens: u64,
    commit_every: usize,
    commits: u64,
    /// Bulk mode (a session rebuilt from its log): `add` does not analyze, and the documents the
    /// per-`commit_every` commits would commit go to Tantivy's indexing thread as they arrive.
    bulk: Option<Bulk>,
    /// `add` leaves a due commit to [`LexicalIndex::commit_due`] (a durable session calls it after
    /// its append, outside the store's write lock).
    defer_commits: bool,
    /// Every text added so far: how many, and their fingerprint (`lexical_snapshot.rs`).
    trail: Trail,
    /// The texts the Tantivy index holds (a snapshot records this).
    committed_trail: Trail,
    /// The texts handed to bulk mode's writer (committed at its next commit).
    sent_trail: Trail,
    /// Resumed from a snapshot holding these texts: `add` skips them.
    resumed: Option<Trail>,
    /// The replayed texts are not the resumed snapshot's.
    resume_failed: bool,
}

/// Bulk mode's writer, made when the first batch is due. Its documents are indexed by Tantivy's
/// thread while the replay goes on, and become visible in one commit at the end (or before a query).
#[derive(Default)]
struct Bulk {
    writer: Option<IndexWriter<TantivyDocument>>,
    /// Whether documents were sent since the writer's last commit.
    uncommitted: bool,
}

impl std::fmt::Debug for LexicalIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LexicalIndex").field("pending", &self.pending.len()).field("commits", &self.commits).finish()
    }
}

/// Statistics over committed (from the searcher) plus pending documents.
struct CombinedStats<'a> {
    searcher: &'a tantivy::Searcher,
    pending_docs: u64,
    pending_tokens: u64,
    pending_postings: &'a Postings,
}

impl Bm25StatisticsProvider for CombinedStats<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        Ok(Bm25StatisticsProvider::total_num_tokens(self.searcher, field)? + self.pending_tokens)
    }
    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(Bm25StatisticsProvider::total_num_docs(self.searcher)? + self.pending_docs)
    }
    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        let extra = term.value().as_str().map_or(0, |s| self.pending_postings.doc_freq(s));
        Ok(self.searcher.doc_freq(term)? + extra)
    }
}

/// Collects every matching document's turn id and score.
struct AllScores;
struct AllScoresSegment {
    ids: Column<u64>,
    out: Vec<(u64, Score)>,
}

impl Collector for AllScores {
    type Fruit = Vec<(u64, Score)>;
    type Child = AllScoresSegment;
    fn for_segment(&self, _ord: SegmentOrdinal, segment: &SegmentReader) -> tantivy::Result<AllScoresSegment> {
        Ok(AllScoresSegment { ids: segment.fast_fields().u64("id")?, out: Vec::new() })
    }
    fn requires_scoring(&self) -> bool {
        true
    }
    fn merge_fruits(&self, fruits: Vec<Vec<(u64, Score)>>) -> tantivy::Result<Vec<(u64, Score)>> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

/// A scored turn in [`BestK`]'s heap, ordered worst first: lower score, then (on a tie) higher id.
#[derive(Debug, Clone, Copy)]
struct Ranked {
    score: Score,
    id: TurnId,
}

impl PartialEq for Ranked {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == std::cmp::Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ranked {
    /// Greater is worse, so a max-heap's top is the turn to evict.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.score.total_cmp(&self.score).then(self.id.cmp(&o.id))
    }
}

/// The best `k` turns by BM25, ties by lower turn id, over every segment with one shared heap, so
/// block-max WAND prunes each segment against the k-th best score found so far in any segment
/// (Tantivy's top-k collector keeps a top-k per segment, and each segment starts from nothing).
/// Scores are [`rounded`]; Tantivy reports a document when it scores above the threshold, so the
/// threshold is the float just below the smallest score that rounds to the k-th: a document tied
/// with it is still seen, and its id decides.
struct BestK {
    k: usize,
    heap: std::sync::Mutex<std::collections::BinaryHeap<Ranked>>,
}

/// A segment's part of [`BestK`] (the work is done in `collect_segment`).
struct BestKSegment;

impl SegmentCollector for BestKSegment {
    type Fruit = ();
    fn collect(&mut self, _doc: DocId, _score: Score) {}
    fn harvest(self) {}
}

impl BestK {
    /// An empty heap for the best `k`, seeded with `seed` (turns scored outside Tantivy).
    fn new(k: usize, seed: &[(TurnId, f32)]) -> Self {
        let mut heap = std::collections::BinaryHeap::with_capacity(k + 1);
        for &(id, score) in seed {
            offer(&mut heap, k, Ranked { score, id });
        }
        BestK { k, heap: std::sync::Mutex::new(heap) }
    }

    /// The best k, best first.
    fn into_sorted(self) -> Vec<(TurnId, f32)> {
        let heap = self.heap.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        heap.into_sorted_vec().into_iter().map(|r| (r.id, r.score)).collect()
    }
}

/// Bits of a BM25 score's mantissa [`rounded`] clears.
const ROUND_BITS: u32 = 8;

/// A BM25 score rounded to 15 significant bits (relative steps of 3e-5). Tantivy's pruned search
/// sums a document's term scores in an order that depends on how it was reached, so the same
/// document can score a few ulps apart from one run (or segment layout) to the next; ranks and
/// ties among the top-k are decided on the rounded score, which those ulps almost never cross.
fn rounded(s: Score) -> Score {
    if !s.is_finite() || s <= 0.0 {
        return s;
    }
    let half = 1u32 << (ROUND_BITS - 1);
    Score::from_bits(s.to_bits().saturating_add(half) & !((1u32 << ROUND_BITS) - 1))
}

/// The pruning threshold for a heap whose worst rounded score is `worst`: just below the smallest
/// raw score that rounds to it, so every document that could tie with it is still reported.
fn below(worst: Score) -> Score {
    if !worst.is_finite() || worst <= 0.0 {
        return Score::MIN;
    }
    Score::from_bits(worst.to_bits().saturating_sub(1u32 << (ROUND_BITS - 1))).next_down()
}

/// Puts `r` (its score rounded) in `heap` (at most `k` entries) if it is among the best `k`;
/// returns the pruning threshold: below the worst kept score once the heap is full, else nothing
/// is pruned.
fn offer(heap: &mut std::collections::BinaryHeap<Ranked>, k: usize, r: Ranked) -> Score {
    let r = Ranked { score: rounded(r.score), ..r };
    if heap.len() < k {
        heap.push(r);
    } else if let Some(mut worst) = heap.peek_mut()
        && r < *worst
    {
        // Replaces the worst in place: one sift down instead of a pop and a push.
        *worst = r;
    }
    threshold(heap, k)
}

/// The pruning threshold of a heap of the best `k` (see [`offer`]).
fn threshold(heap: &std::collections::BinaryHeap<Ranked>, k: usize) -> Score {
    match heap.peek() {
        Some(worst) if heap.len() >= k => below(worst.score),
        _ => Score::MIN,
    }
}

impl Collector for BestK {
    type Fruit = ();
    type Child = BestKSegment;
    fn for_segment(&self, _ord: SegmentOrdinal, _segment: &SegmentReader) -> tantivy::Result<BestKSegment> {
        Ok(BestKSegment)
    }
    fn requires_scoring(&self) -> bool {
        true
    }
    fn merge_fruits(&self, _fruits: Vec<()>) -> tantivy::Result<()> {
        Ok(())
    }
    fn collect_segment(&self, weight: &dyn tantivy::query::Weight, _ord: SegmentOrdinal, reader: &SegmentReader) -> tantivy::Result<()> {
        let ids = reader.fast_fields().u64("id")?;
        let mut heap = self.heap.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let k = self.k;
        let add = |doc: DocId, score: Score, heap: &mut std::collections::BinaryHeap<Ranked>| match ids.first(doc) {
            Some(id) => offer(heap, k, Ranked { score, id: id as TurnId }),
            None => threshold(heap, k),
        };
        match reader.alive_bitset() {
            // Documents are never deleted here; with deletions, every match is looked at.
            Some(alive) => weight.for_each(reader, &mut |doc, score| {
                if alive.is_alive(doc) {
                    add(doc, score, &mut heap);
                }
            })?,
            None => {
                let start = threshold(&heap, k);
                weight.for_each_pruning(start, reader, &mut |doc, score| add(doc, score, &mut heap))?;
            }
        }
        Ok(())
    }
}

impl SegmentCollector for AllScoresSegment {
    type Fruit = Vec<(u64, Score)>;
    fn collect(&mut self, doc: DocId, score: Score) {
        if let Some(id) = self.ids.first(doc) {
            self.out.push((id, score));
        }
    }
    fn harvest(self) -> Vec<(u64, Score)> {
        self.out
    }
}

impl LexicalIndex {
    /// A new index in RAM, or in `dir` (which must not already hold an index; it is created at
    /// once so that a bad directory fails here). In RAM, nothing of Tantivy exists until the first
    /// commit.
    pub(crate) fn new(dir: Option<&Path>, commit_every: usize) -> Result<Self> {
        let mut schema = Schema::builder();
        let id_field = schema.add_u64_field("id", FAST | INDEXED);
        let text_opts =
            TextOptions::default().set_indexing_options(TextFieldIndexing::default().set_tokenizer(TOKENIZER).set_index_option(IndexRecordOption::WithFreqs));
        let text_field = schema.add_text_field("text", text_opts);
        let mut idx = LexicalIndex {
            dir: dir.map(Path::to_path_buf),
            committed: None,
            id_field,
            text_field,
            analyzer: analyzer(),
            pending: Vec::new(),
            pending_postings: Postings::default(),
            pending_tokens: 0,
            commit_every: commit_every.max(1),
            defer_commits: false,
            commits: 0,
            bulk: None,
            trail: Trail::default(),
            committed_trail: Trail::default(),
            sent_trail: Trail::default(),
            resumed: None,
            resume_failed: false,
        };
        if dir.is_some() {
            idx.committed = Some(idx.create_index()?);
        }
        Ok(idx)
    }

    /// Creates the Tantivy index (schema: the turn id and its text) and a manually reloaded reader.
    fn create_index(&self) -> Result<Committed> {
        let schema = self.schema();
        let (index, ram) = match &self.dir {
            None => {
                let ram = tantivy::directory::RamDirectory::create();
                (Index::create(ram.clone(), schema, tantivy::IndexSettings::default())?, Some(ram))
            }
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
                let index = Index::create_in_dir(d, schema)
                    .map_err(|e| Error::InvalidPath { path: d.clone(), message: format!("cannot create a lexical index here: {e}") })?;
                (index, None)
            }
        };
        index.tokenizers().register(TOKENIZER, analyzer());
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(Committed { index, reader, ram })
    }

    /// The Tantivy schema: the turn id and its text.
    fn schema(&self) -> Schema {
        let mut schema = Schema::builder();
        let text_opts =
            TextOptions::default().set_indexing_options(TextFieldIndexing::default().set_tokenizer(TOKENIZER).set_index_option(IndexRecordOption::WithFreqs));
        schema.add_u64_field("id", FAST | INDEXED);
        schema.add_text_field("text", text_opts);
        schema.build()
    }

    /// The analyzed terms of `text`, in order (with repeats).
    pub(crate) fn analyze(&mut self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut stream = self.analyzer.token_stream(text);
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    /// Adds document `id` (its text in `texts`), analyzed for the in-memory scores at once
    /// (outside bulk mode). Commits when `commit_every` documents are pending.
    pub(crate) fn add(&mut self, id: TurnId, texts: &dyn DocTexts) -> Result<()> {
        if self.skip_resumed(texts.doc_text(id)) {
            return Ok(());
        }
        self.pending.push(PendingDoc { id, analyzed: false, len: 0 });
        if self.bulk.is_some() {
            if self.pending.len() >= self.commit_every {
                self.send_pending(texts)?;
            }
            return Ok(());
        }
        if self.pending.len() >= self.commit_every && !self.defer_commits {
            return self.commit(texts);
        }
        let last = self.pending.len() - 1;
        self.analyze_doc(last, texts);
        Ok(())
    }

    /// With `on`, `add` no longer commits when `commit_every` documents are pending: the caller
    /// commits them with [`LexicalIndex::commit_due`] (the same documents at the same points, so
    /// the same index), at a moment of its choosing.
    pub(crate) fn defer_commits(&mut self, on: bool) {
        self.defer_commits = on;
    }

    /// Commits when `commit_every` documents or more are pending (what `add` does itself unless
    /// commits are deferred).
    pub(crate) fn commit_due(&mut self, texts: &dyn DocTexts) -> Result<()> {
        if self.bulk.is_none() && self.pending.len() >= self.commit_every {
            return self.commit(texts);
        }
        Ok(())
    }

    /// Enters bulk mode: the documents added until [`LexicalIndex::end_bulk`] are not analyzed,
    /// and each batch a per-`commit_every` commit would commit is handed to Tantivy at once (its
    /// indexing thread works beside the caller) and committed with the others at the end.
    pub(crate) fn begin_bulk(&mut self) {
        if self.bulk.is_none() {
            self.bulk = Some(Bulk::default());
        }
    }

    /// Leaves bulk mode: commits the batches sent, so the same documents are committed and the
    /// same stay pending as without bulk mode (those are analyzed at the next query).
    pub(crate) fn end_bulk(&mut self) -> Result<()> {
        self.settle_bulk()?;
        if let Some(Bulk { writer: Some(w), .. }) = self.bulk.take() {
            w.wait_merging_threads()?;
        }
        Ok(())
    }

    /// Hands every pending document to bulk mode's writer (made at the first call).
    fn send_pending(&mut self, texts: &dyn DocTexts) -> Result<()> {
        if self.committed.is_none() {
            self.committed = Some(self.create_index()?);
        }
        let (Some(committed), Some(Bulk { writer, uncommitted })) = (&self.committed, self.bulk.as_mut()) else { return Ok(()) };
        let writer = match writer {
            Some(w) => w,
            None => writer.insert(committed.index.writer_with_num_threads(1, WRITER_MEMORY)?),
        };
        for d in self.pending.drain(..) {
            writer.add_document(tantivy_doc(self.id_field, self.text_field, d.id, texts))?;
        }
        *uncommitted = true;
        self.sent_trail = self.trail;
        self.pending_postings.clear();
        self.pending_tokens = 0;
        Ok(())
    }

    /// Commits what bulk mode's writer was sent since its last commit (before a query or at the
    /// end), making it visible to the searcher.
    fn settle_bulk(&mut self) -> Result<()> {
        let Some(Bulk { writer: Some(writer), uncommitted }) = self.bulk.as_mut() else { return Ok(()) };
        if !*uncommitted {
            return Ok(());
        }
        writer.commit()?;
        *uncommitted = false;
        self.committed_trail = self.sent_trail;
        if let Some(c) = &self.committed {
            c.reader.reload()?;
        }
        self.commits += 1;
        Ok(())
    }

    /// Analyzes pending document `i` (if not yet), updating the pending statistics.
    fn analyze_doc(&mut self, i: usize, texts: &dyn DocTexts) {
        let Some(d) = self.pending.get(i).filter(|d| !d.analyzed) else { return };
        let at = u32::try_from(i).unwrap_or(u32::MAX);
        let mut len: u64 = 0;
        let mut stream = self.analyzer.token_stream(texts.doc_text(d.id));
        while stream.advance() {
            len += 1;
            self.pending_postings.count(&stream.token().text, at);
        }
        drop(stream);
        self.pending_tokens += len;
        let d = &mut self.pending[i];
        d.analyzed = true;
        d.len = u32::try_from(len).unwrap_or(u32::MAX);
    }

    fn analyze_pending_if_needed(&mut self, texts: &dyn DocTexts) {
        for i in 0..self.pending.len() {
            self.analyze_doc(i, texts);
        }
    }

    /// Commits pending documents and makes them visible to the searcher.
    pub(crate) fn commit(&mut self, texts: &dyn DocTexts) -> Result<()> {
        if self.bulk.is_some() {
            // One writer at a time: bulk mode's takes the pending documents too.
            if !self.pending.is_empty() {
                self.send_pending(texts)?;
            }
            return self.settle_bulk();
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let committed = match self.committed.take() {
            Some(c) => c,
            None => self.create_index()?,
        };
        // A writer for this commit only: its threads and arena go when it is done.
        let mut writer: IndexWriter<TantivyDocument> = committed.index.writer_with_num_threads(1, WRITER_MEMORY)?;
        for d in &self.pending {
            writer.add_document(tantivy_doc(self.id_field, self.text_field, d.id, texts))?;
        }
        writer.commit()?;
        writer.wait_merging_threads()?;
        committed.reader.reload()?;
        self.committed = Some(committed);
        self.committed_trail = self.trail;
        self.pending.clear();
        self.pending_postings.clear();
        self.pending_tokens = 0;
        self.commits += 1;
        Ok(())
    }

    /// Number of commits so far.
    #[cfg(test)]
    pub(crate) fn commits(&self) -> u64 {
        self.commits
    }

    /// BM25 score of every turn matching any of `terms` (analyzed, deduplicated), committed and pending.
    pub(crate) fn scores(&mut self, terms: &[String], texts: &dyn DocTexts) -> Result<Vec<(TurnId, f32)>> {
        let mut uniq: Vec<&String> = terms.iter().collect();
        uniq.sort();
        uniq.dedup();
        if uniq.is_empty() {
            return Ok(Vec::new());
        }
        self.settle_bulk()?;
        self.analyze_pending_if_needed(texts);
        let searcher = match &self.committed {
            Some(c) => c.reader.searcher(),
            None => {
                let (n, total, postings) = (self.pending.len() as u64, self.pending_tokens, &self.pending_postings);
                return Ok(self.pending_scores(&uniq, n, total, &|t| postings.doc_freq(t)));
            }
        };
        let stats = CombinedStats {
            searcher: &searcher,
            pending_docs: self.pending.len() as u64,
            pending_tokens: self.pending_tokens,
            pending_postings: &self.pending_postings,
        };
        let mut out: Vec<(TurnId, f32)> = Vec::new();
        if searcher.num_docs() > 0 {
            let query = self.query(&uniq);
            for (id, s) in searcher.search_with_statistics_provider(&query, &AllScores, &stats)? {
                out.push((id as TurnId, s));
            }
        }
        out.extend(self.pending_scores_with(&uniq, &stats)?);
        Ok(out)
    }

    /// The `k` best turns for `terms` (analyzed) by BM25, best first (ties: lower id first),
    /// committed and pending: the pending ones scored in memory, then the committed documents
    /// through one heap shared by every segment ([`BestK`]: block-max WAND skips the postings that
    /// cannot beat the k-th best so far), with the same statistics as [`LexicalIndex::scores`].
    pub(crate) fn top(&mut self, terms: &[String], k: usize, texts: &dyn DocTexts) -> Result<Vec<(TurnId, f32)>> {
        let mut uniq: Vec<&String> = terms.iter().collect();
        uniq.sort();
        uniq.dedup();
        if uniq.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        self.settle_bulk()?;
        // Nothing committed, or so many terms that block-max WAND costs more than scoring every
        // match: every score, then the best k.
        let many = uniq.len() > WAND_MAX_TERMS;
        if many || self.committed.is_none() {
            let mut out = self.scores(terms, texts)?;
            if out.len() > k {
                out.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                out.truncate(k);
            }
            out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            return Ok(out);
        }
        self.analyze_pending_if_needed(texts);
        let Some(c) = &self.committed else { return Ok(Vec::new()) };
        let searcher = c.reader.searcher();
        let stats = CombinedStats {
            searcher: &searcher,
            pending_docs: self.pending.len() as u64,
            pending_tokens: self.pending_tokens,
            pending_postings: &self.pending_postings,
        };
        // The pending documents first: their scores raise the threshold the segments prune at.
        let best = BestK::new(k, &self.pending_scores_with(&uniq, &stats)?);
        if searcher.num_docs() > 0 {
            searcher.search_with_statistics_provider(&self.query(&uniq), &best, &stats)?;
        }
        Ok(best.into_sorted())
    }

    /// A disjunction of `uniq`'s terms (BM25, with frequencies).
    fn query(&self, uniq: &[&String]) -> BooleanQuery {
        let clauses: Vec<(Occur, Box<dyn Query>)> = uniq
            .iter()
            .map(|t| {
                let term = Term::from_field_text(self.text_field, t);
                (Occur::Should, Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs)) as Box<dyn Query>)
            })
            .collect();
        BooleanQuery::new(clauses)
    }

    /// BM25 of the pending documents for `uniq`, over `n` documents of `total` tokens in all, with
    /// `df` the document frequency of a term.
    /// BM25 of the pending documents under the combined (committed + pending) statistics.
    fn pending_scores_with(&self, uniq: &[&String], stats: &CombinedStats<'_>) -> Result<Vec<(TurnId, f32)>> {
        if self.pending.is_empty() {
            return Ok(Vec::new());
        }
        let n = stats.total_num_docs()?;
        let total = stats.total_num_tokens(self.text_field)?;
        let field = self.text_field;
        Ok(self.pending_scores(uniq, n, total, &|t| stats.doc_freq(&Term::from_field_text(field, t)).unwrap_or(0)))
    }

    fn pending_scores(&self, uniq: &[&String], n: u64, total: u64, df: &dyn Fn(&str) -> u64) -> Vec<(TurnId, f32)> {
        let avg = total as f32 / n.max(1) as f32;
        // Each document's score sums its terms in `uniq`'s order, as a per-document loop would.
        let mut scores = vec![0.0f32; self.pending.len()];
        for t in uniq {
            let Some(postings) = self.pending_postings.of(t.as_str()) else { continue };
            let w = idf(df(t), n);
            for (i, tf) in postings {
                let (Some(d), Some(s)) = (self.pending.get(i as usize), scores.get_mut(i as usize)) else { continue };
                let norm = FieldNormReader::id_to_fieldnorm(FieldNormReader::fieldnorm_to_id(d.len)) as f32;
                let denom_extra = K1 * (1.0 - B + B * norm / avg.max(f32::MIN_POSITIVE));
                let tf = tf as f32;
                *s += w * (1.0 + K1) * tf / (tf + denom_extra);
            }
        }
        self.pending.iter().zip(scores).filter(|(_, s)| *s > 0.0).map(|(d, s)| (d.id, s)).collect()
    }

    /// The index, for tests.
    #[cfg(test)]
    pub(crate) fn num_committed(&self) -> u64 {
        self.committed.as_ref().map_or(0, |c| c.reader.searcher().num_docs())
    }
}

/// The Tantivy document of pending turn `id`: its id and its text.
fn tantivy_doc(id_field: Field, text_field: Field, id: TurnId, texts: &dyn DocTexts) -> TantivyDocument {
    let mut doc = TantivyDocument::default();
    doc.add_u64(id_field, id as u64);
    doc.add_text(text_field, texts.doc_text(id));
    doc
}

fn idf(df: u64, n: u64) -> f32 {
    let df = df.min(n);
    let x = ((n - df) as f32 + 0.5) / (df as f32 + 0.5);
    (1.0 + x).ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::tokenizer::{RemoveLongFilter, SimpleTokenizer};

    /// An index with the texts of its documents beside it (what the store is to an engine's), with
    /// the calls the tests make taking the text as an engine's store has it.
    pub(super) struct Docs {
        idx: LexicalIndex,
        texts: FxHashMap<TurnId, String>,
    }

    impl DocTexts for FxHashMap<TurnId, String> {
        fn doc_text(&self, id: TurnId) -> &str {
            self.get(&id).map_or("", String::as_str)
        }
    }

    impl std::ops::Deref for Docs {
        type Target = LexicalIndex;
        fn deref(&self) -> &LexicalIndex {
            &self.idx
        }
    }

    impl std::ops::DerefMut for Docs {
        fn deref_mut(&mut self) -> &mut LexicalIndex {
            &mut self.idx
        }
    }

    impl Docs {
        pub(super) fn new(dir: Option<&Path>, commit_every: usize) -> Result<Self> {
            Ok(Docs { idx: LexicalIndex::new(dir, commit_every)?, texts: FxHashMap::default() })
        }
        pub(super) fn add(&mut self, id: TurnId, text: &str) -> Result<()> {
            self.texts.insert(id, text.to_string());
            self.idx.add(id, &self.texts)
        }
        pub(super) fn scores(&mut self, terms: &[String]) -> Result<Vec<(TurnId, f32)>> {
            self.idx.scores(terms, &self.texts)
        }
        pub(super) fn top(&mut self, terms: &[String], k: usize) -> Result<Vec<(TurnId, f32)>> {
            self.idx.top(terms, k, &self.texts)
        }
        pub(super) fn commit(&mut self) -> Result<()> {
            self.idx.commit(&self.texts)
        }
        pub(super) fn commit_due(&mut self) -> Result<()> {
            self.idx.commit_due(&self.texts)
        }
    }

    fn texts() -> Vec<&'static str> {
        vec![
            "Caroline went to the LGBTQ support group yesterday",
            "Melanie painted a sunrise over the lake",
            "The support group was powerful and supportive",
            "We talked about adoption agencies and counseling",
            "Melanie's kids love the beach and camping",
            "Caroline is researching counseling certifications",
        ]
    }

    /// Tantivy's own chain: `SimpleTokenizer`, `RemoveLongFilter::limit(40)`, `LowerCaser`,
    /// `StopWordFilter`, `Stemmer` (English).
    fn tantivy_chain() -> TextAnalyzer {
        let b = TextAnalyzer::builder(SimpleTokenizer::default()).filter(RemoveLongFilter::limit(40)).filter(LowerCaser);
        match StopWordFilter::new(Language::English) {
            Some(stop) => b.filter(stop).filter(Stemmer::new(Language::English)).build(),
            None => b.filter(Stemmer::new(Language::English)).build(),
        }
    }

    /// Each token's term, position and offsets.
    fn tokens(a: &mut TextAnalyzer, text: &str) -> Vec<(String, usize, usize, usize)> {
        let mut out = Vec::new();
        let mut st = a.token_stream(text);
        while st.advance() {
            let t = st.token();
            out.push((t.text.clone(), t.position, t.offset_from, t.offset_to));
        }
        out
    }

    /// Two streams alive at once on one thread (the second starts with an empty memo) give the
    /// chain's tokens, and the thread's memo is usable after both are dropped.
    #[test]
    fn streams_alive_together_give_the_chains_tokens() {
        let text = "Stemming stemmed stems; the quick brown foxes jumped over lazily sleeping dogs.";
        let other = "Caroline went running to the running club's meetings in 2023.";
        let (mut want, mut a, mut b) = (tantivy_chain(), analyzer(), analyzer());
        let mut outer = a.token_stream(text);
        let mut got = Vec::new();
        while outer.advance() {
            got.push(outer.token().text.clone());
            if got.len() == 2 {
                assert_eq!(tokens(&mut b, other), tokens(&mut want, other), "inner stream");
            }
        }
        drop(outer);
        let expect: Vec<String> = tokens(&mut want, text).into_iter().map(|t| t.0).collect();
        assert_eq!(got, expect, "outer stream");
        assert_eq!(tokens(&mut a, text), tokens(&mut want, text), "after both");
    }

    /// Every token Tantivy's own chain of tokenizer and filters gives, the one-pass memoized
    /// analyzer gives, positions and offsets included: on real words, upper-case, stop words,
    /// non-ASCII ones and words of 39–41 bytes, in texts of more distinct words than the memo
    /// holds (so it starts over mid-text), with a warm memo and with a fresh clone.
    #[test]
    fn the_memoized_analysis_gives_the_terms_of_tantivys_filters() {
        let plain = tantivy_chain;
        let words = [
            "running",
            "runs",
            "ran",
            "Generously",
            "connection",
            "connected",
            "ÉTÉ",
            "naïve",
            "studies",
            "studying",
            "agreed",
            "src/main.rs",
            "foo_bar",
            "X11",
            "the",
            "a",
            "abcdefghijklmnopqrstuvwxyzabcdefghijklm",
            "abcdefghijklmnopqrstuvwxyzabcdefghijklmn",
            "Abcdefghijklmnopqrstuvwxyzabcdefghijklmno",
            "ééééééééééééééééééééé",
            "日本語の文章",
            "Ⅻ١٢٣",
            "straße",
            "İstanbul",
        ];
        let mut rng = 12345u64;
        let mut big = String::new();
        for i in 0..(4 * WORD_MEMO_WORDS) {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let w = words[(rng >> 33) as usize % words.len()];
            // Distinct words past the memo's size, and repeats of the common ones.
            if rng.is_multiple_of(3) {
                big.push_str(&format!("{w}{i}ing "))
            } else {
                big.push_str(w);
                big.push(' ')
            }
        }
        let mut texts: Vec<String> = texts().iter().map(|t| t.to_string()).collect();
        texts.push(big);
        texts.push("Stemming stemmed stems; the quick brown foxes jumped over lazily sleeping dogs.".into());
        let (mut want, mut memo) = (plain(), analyzer());
        for round in 0..2 {
            for t in &texts {
                assert_eq!(tokens(&mut memo, t), tokens(&mut want, t), "round {round}");
                assert_eq!(tokens(&mut memo.clone(), t), tokens(&mut want, t), "a fresh clone, round {round}");
            }
        }
    }

    /// And on every file of the transcripts the repo ships (conversations, agent trajectories,
    /// tool outputs), in chunks, through one memo.
    #[test]
    fn the_memoized_analysis_agrees_on_the_shipped_transcripts() {
        let (mut want, mut memo) = (tantivy_chain(), analyzer());
        let mut chunks = 0;
        for (p, chunk) in crate::text::shipped_sample_chunks() {
            assert_eq!(tokens(&mut memo, &chunk), tokens(&mut want, &chunk), "{}", p.display());
            chunks += 1;
        }
        assert!(chunks > 100, "read {chunks} chunks");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// And on arbitrary strings, through one memo and a fresh one.
        #[test]
        fn the_memoized_analysis_agrees_on_any_text(text in "\\PC{0,120}") {
            let mut want = tantivy_chain();
            proptest::prop_assert_eq!(tokens(&mut analyzer(), &text), tokens(&mut want, &text));
        }
    }

    proptest::proptest! {
        /// Two words of up to 16 bytes have the same memo key exactly when they are equal.
        #[test]
        fn short_keys_are_equal_only_for_equal_words(a in "[a-c1é]{0,17}", b in "[a-c1é]{0,17}") {
            match (short_key(&a), short_key(&b)) {
                (Some(x), Some(y)) => proptest::prop_assert_eq!(x == y, a == b),
                (x, y) => proptest::prop_assert_eq!(x.is_none(), a.len() > 16, "{:?} {:?}", x, y),
            }
        }
    }

    proptest::proptest! {
        /// The packed postings hold what a map of term to (document, frequency) list holds: the
        /// same lists in the same order, the same document frequencies, nothing for other terms.
        #[test]
        fn packed_postings_equal_a_map_of_lists(docs in proptest::collection::vec(proptest::collection::vec("[a-e]{1,3}", 0..12), 0..30)) {
            let mut packed = Postings::default();
            let mut naive: std::collections::BTreeMap<String, Vec<(u32, u32)>> = Default::default();
            for (d, words) in docs.iter().enumerate() {
                let d = d as u32;
                for w in words {
                    packed.count(w, d);
                    let list = naive.entry(w.clone()).or_default();
                    match list.last_mut() {
                        Some((doc, tf)) if *doc == d => *tf += 1,
                        _ => list.push((d, 1)),
                    }
                }
            }
            for (term, list) in &naive {
                proptest::prop_assert_eq!(&packed.of(term).map(Iterator::collect::<Vec<_>>).unwrap_or_default(), list);
                proptest::prop_assert_eq!(packed.doc_freq(term), list.len() as u64);
            }
            proptest::prop_assert!(packed.of("zz").is_none());
            proptest::prop_assert_eq!(packed.doc_freq("zz"), 0);
        }
    }

    /// Pending scoring must agree with Tantivy's own scoring of the same documents once committed.
    #[test]
    fn pending_scores_match_committed_scores() -> Result<()> {
        let mut pending = Docs::new(None, 1000)?;
        let mut committed = Docs::new(None, 1000)?;
        for (i, t) in texts().into_iter().enumerate() {
            pending.add(i, t)?;
            committed.add(i, t)?;
        }
        committed.commit()?;
        assert_eq!(committed.num_committed(), 6);
        assert_eq!(pending.num_committed(), 0);
        let q = pending.analyze("Which support group did Caroline attend? counseling");
        let mut a = pending.scores(&q)?;
        let mut b = committed.scores(&q)?;
        a.sort_by_key(|x| x.0);
        b.sort_by_key(|x| x.0);
        assert_eq!(a.len(), b.len());
        for ((ia, sa), (ib, sb)) in a.iter().zip(&b) {
            assert_eq!(ia, ib);
            assert!((sa - sb).abs() < 1e-4, "turn {ia}: pending {sa} vs committed {sb}");
        }
        Ok(())
    }

    /// The top-k are the k best of every score, with equal scores, committed or pending.
    #[test]
    fn top_k_is_the_best_of_all_scores() -> Result<()> {
        let mut idx = Docs::new(None, 3)?;
        for (i, t) in texts().into_iter().chain(["support for Caroline", "counseling group support"]).enumerate() {
            idx.add(i, t)?;
        }
        assert!(idx.commits() > 0 && !idx.pending.is_empty());
        // A few terms (Tantivy's top-k collector) and many (every match, then the best k).
        let many = "support group Caroline counseling Melanie painted sunrise lake adoption agencies beach camping kids certifications";
        for text in ["support group Caroline counseling", many] {
            let q = idx.analyze(text);
            let mut all = idx.scores(&q)?;
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for k in [1, 3, 100] {
                let top = idx.top(&q, k)?;
                assert_eq!(top.len(), k.min(all.len()));
                for ((ia, sa), (ib, sb)) in top.iter().zip(&all) {
                    assert!((sa - sb).abs() < 1e-4 * sb.abs().max(1.0), "{ia} {sa} vs {ib} {sb}");
                }
            }
            assert!(idx.top(&q, 0)?.is_empty());
        }
        assert!(idx.analyze(many).len() > WAND_MAX_TERMS);
        assert!(idx.top(&[], 5)?.is_empty());
        Ok(())
    }

    /// A raw score is reported by the pruned search (above the threshold) exactly when it rounds
    /// to at least the heap's worst rounded score.
    #[test]
    fn the_threshold_lets_through_every_score_that_rounds_to_the_worst() {
        let mut x: u32 = 0x3f80_0000;
        for _ in 0..20_000 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let worst = rounded(Score::from_bits(0x3c00_0000 | (x >> 8)));
            for d in [-300i32, -129, -128, -127, -1, 0, 1, 127, 128, 300] {
                let r = Score::from_bits(worst.to_bits().wrapping_add_signed(d));
                assert_eq!(r > below(worst), rounded(r) >= worst, "worst {worst} raw {r}");
            }
        }
    }

    /// Documents tied at the k-th place are decided by turn id, whatever segment Tantivy met them
    /// in: the same k as sorting every score by score, then id.
    #[test]
    fn ties_at_the_kth_place_go_to_the_lowest_ids() -> Result<()> {
        let mut idx = Docs::new(None, 3)?;
        for i in 0..40 {
            let text = if i % 7 == 3 { "support group support group" } else { "the support group met" };
            idx.add(i, text)?;
        }
        let q = idx.analyze("support group");
        let mut all = idx.scores(&q)?;
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for k in [1, 5, 6, 9, 17, 39, 40, 41] {
            let want: Vec<TurnId> = all.iter().take(k).map(|x| x.0).collect();
            let got: Vec<TurnId> = idx.top(&q, k)?.iter().map(|x| x.0).collect();
            assert_eq!(got, want, "k {k}");
        }
        Ok(())
    }

    /// A rebuild in bulk mode leaves the same documents pending as adding them one by one, and
    /// every score and top-k is bit-identical; a query in the middle of bulk mode sees every turn
    /// (`query_at`: after which document one is asked, if any).
    #[test]
    fn bulk_mode_scores_exactly_as_adding_one_by_one() -> Result<()> {
        for (query_at, commits) in [(None, [0, 1]), (Some(11), [1, 2]), (Some(13), [1, 2]), (Some(0), [0, 1])] {
            bulk_mode_case(query_at, commits)?;
        }
        Ok(())
    }

    fn bulk_mode_case(query_at: Option<usize>, commits: [u64; 2]) -> Result<()> {
        let docs: Vec<String> = (0..23).map(|i| format!("{} number {i} {}", texts()[i % 6], texts()[(i * 5) % 6])).collect();
        let mut one = Docs::new(None, 4)?;
        let mut bulk = Docs::new(None, 4)?;
        bulk.begin_bulk();
        for (i, t) in docs.iter().enumerate() {
            one.add(i, t)?;
            bulk.add(i, t)?;
            if Some(i) == query_at {
                let q = bulk.analyze(&format!("number {i} support"));
                assert!(bulk.scores(&q)?.iter().any(|x| x.0 == i), "{query_at:?}");
            }
        }
        assert_eq!(bulk.commits(), commits[0], "{query_at:?}");
        bulk.end_bulk()?;
        assert_eq!((bulk.commits(), one.commits()), (commits[1], 5), "{query_at:?}");
        let ids = |x: &Docs| x.pending.iter().map(|d| d.id).collect::<Vec<_>>();
        assert_eq!(ids(&bulk), ids(&one));
        assert_eq!(bulk.num_committed(), 20);
        assert_same_scores(&mut one, &mut bulk, &["support group Caroline counseling number 3", "painted sunrise 22", "kids beach camping adoption"])
    }

    /// Every turn's score and the top 5 for each of `queries` are the same in both indexes.
    fn assert_same_scores(a: &mut Docs, b: &mut Docs, queries: &[&str]) -> Result<()> {
        for text in queries {
            let q = a.analyze(text);
            let (mut x, mut y) = (a.scores(&q)?, b.scores(&q)?);
            x.sort_by_key(|s| s.0);
            y.sort_by_key(|s| s.0);
            assert_eq!(x, y, "{text}");
            assert_eq!(a.top(&q, 5)?, b.top(&q, 5)?, "{text}");
        }
        Ok(())
    }

    /// Deferred commits: `add` leaves a due commit to `commit_due`, which commits the same
    /// documents at the same points, so scores and top-k equal those of an index committing itself.
    #[test]
    fn deferred_commits_commit_the_same_documents() -> Result<()> {
        let (mut own, mut deferred) = (Docs::new(None, 3)?, Docs::new(None, 3)?);
        deferred.defer_commits(true);
        for (i, t) in texts().into_iter().enumerate() {
            own.add(i, t)?;
            deferred.add(i, t)?;
            if i == 2 {
                // Due but deferred: nothing committed until the caller asks.
                assert_eq!((own.commits(), deferred.commits()), (1, 0));
                assert_eq!(deferred.pending.len(), 3);
            }
            deferred.commit_due()?;
            assert_eq!(own.commits(), deferred.commits(), "after doc {i}");
            assert_eq!(own.pending.len(), deferred.pending.len(), "after doc {i}");
        }
        deferred.add(6, "painting sunrises is relaxing")?;
        own.add(6, "painting sunrises is relaxing")?;
        deferred.commit_due()?;
        assert_eq!(deferred.commits(), 2, "one pending document is not due");
        assert_same_scores(&mut own, &mut deferred, &["paints sunrise", "support group Caroline", "kids beach camping adoption"])
    }

    #[test]
    fn half_committed_is_consistent_and_stems() -> Result<()> {
        let mut idx = Docs::new(None, 3)?;
        for (i, t) in texts().into_iter().enumerate() {
            idx.add(i, t)?;
        }
        // 6 docs with commit_every 3: two commits, nothing pending.
        assert_eq!(idx.commits(), 2);
        idx.add(6, "painting sunrises is relaxing")?;
        let q = idx.analyze("paints sunrise");
        let s = idx.scores(&q)?;
        let ids: Vec<TurnId> = s.iter().map(|x| x.0).collect();
        assert!(ids.contains(&1) && ids.contains(&6), "{ids:?}");
        assert!(!ids.contains(&0));
        Ok(())
    }
}
