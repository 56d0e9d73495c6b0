//! Exact token counts.
//!
//! Counting uses `bpe-openai` on the hot path (it gives the same counts as tiktoken, faster); the
//! equivalence is checked against `tiktoken-rs` in the tests, and [`count_reference`] exposes the
//! tiktoken-rs count for recounts. Each distinct text is counted once: counts are cached by content
//! hash in an LRU.
//!
//! # Chat framing
//! A window's size is what the OpenAI chat format bills for it: every message costs
//! [`MESSAGE_OVERHEAD`] tokens (`<|im_start|>`, the role, `<|im_sep|>`/`<|im_end|>`) plus its content,
//! and the whole request [`REPLY_PRIMING`] tokens for the assistant reply's start — the constants of
//! OpenAI's published counting recipe for gpt-4o-class models. A tool call adds
//! [`TOOL_CALL_OVERHEAD`] tokens plus its name and JSON arguments. Provider-side tool formatting is not
//! published, so the tool-call term is ctxwin's accounting; it is exact against ctxwin's own recount.
//! The Anthropic rendering merges consecutive same-role messages, so it never needs more framing.

use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

/// Tokens each message costs beyond its content.
pub const MESSAGE_OVERHEAD: usize = 3;
/// Tokens a request costs once, for priming the reply.
pub const REPLY_PRIMING: usize = 3;
/// Tokens a tool call costs beyond its name and arguments.
pub const TOOL_CALL_OVERHEAD: usize = 3;

/// A BPE encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// `o200k_base` (gpt-4o, gpt-4.1, o-series).
    #[default]
    O200kBase,
    /// `cl100k_base` (gpt-4, gpt-3.5).
    Cl100kBase,
}

impl Encoding {
    /// Parses `o200k_base` / `o200k` / `cl100k_base` / `cl100k`.
    pub fn parse(s: &str) -> Option<Encoding> {
        match s {
            "o200k_base" | "o200k" => Some(Encoding::O200kBase),
            "cl100k_base" | "cl100k" => Some(Encoding::Cl100kBase),
            _ => None,
        }
    }

    /// The encoding's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }

    fn bpe(self) -> &'static bpe_openai::Tokenizer {
        match self {
            Encoding::O200kBase => bpe_openai::o200k_base(),
            Encoding::Cl100kBase => bpe_openai::cl100k_base(),
        }
    }
}

/// Token counts by 128-bit content hash, at most `cap` of them, in two generations: new and
/// looked-up counts go into the young one; when it holds half the bound it becomes the old one and
/// the previous old one is dropped. So the counts used within the last half-bound insertions
/// stay, as in an LRU, at 24 bytes an entry in a flat table instead of a linked node (~90 bytes)
/// each.
#[derive(Debug)]
struct CountCache {
    young: rustc_hash::FxHashMap<(u64, u64), u32>,
    old: rustc_hash::FxHashMap<(u64, u64), u32>,
    cap: usize,
}

/// The table key of a content hash (two `u64`s: a `u128` would pad each entry to 32 bytes).
fn split(key: u128) -> (u64, u64) {
    ((key >> 64) as u64, key as u64)
}

impl CountCache {
    fn new(cap: usize) -> Self {
        CountCache { young: Default::default(), old: Default::default(), cap: cap.max(1) }
    }

    /// The cached count of `key`; a count found in the old generation moves to the young one.
    fn get(&mut self, key: u128) -> Option<u32> {
        let k = split(key);
        if let Some(&n) = self.young.get(&k) {
            return Some(n);
        }
        let n = self.old.remove(&k)?;
        self.put(key, n);
        Some(n)
    }

    /// The cached count of `key`, without moving it.
    #[cfg(test)]
    fn peek(&self, key: &u128) -> Option<&u32> {
        let k = split(*key);
        self.young.get(&k).or_else(|| self.old.get(&k))
    }

    /// Caches `n` for `key`, keeping at most `cap` counts.
    fn put(&mut self, key: u128, n: u32) {
        let k = split(key);
        if !self.young.contains_key(&k) {
            if self.young.len() >= (self.cap / 2).max(1) {
                self.old = std::mem::take(&mut self.young);
            }
            if self.young.len() + self.old.len() >= self.cap {
                self.old.clear();
            }
        }
        self.old.remove(&k);
        self.young.insert(k, n);
    }

    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

/// Distinct pieces a thread's [`PIECES`] memo keeps before it starts over (~60 bytes each with the
/// table's overhead, so ≤ ~0.5 MB per counting thread).
const PIECE_MEMO_PIECES: usize = 8192;
/// Pieces longer than this are counted, never memoized (they rarely repeat).
const PIECE_MEMO_MAX_LEN: usize = 32;

std::thread_local! {
    /// Each pre-tokenizer piece's token count, per encoding ([`counts_tag`] − 1), memoized per
    /// thread. A text's count is the sum of its pieces' counts, each a function of the piece's
    /// bytes alone (BPE runs within a piece), so a memo is exact by construction; and texts repeat
    /// their pieces (words with their leading space, punctuation, indentation) far more than
    /// whole texts repeat, so most pieces of a text never seen before are looked up instead of
    /// encoded. Per thread, so counters on different threads share nothing and take no lock.
    static PIECES: std::cell::RefCell<[rustc_hash::FxHashMap<Box<str>, u32>; 2]> = std::cell::RefCell::new(Default::default());
}

/// Exact token count of `text` in `encoding`: the sum of its pieces' counts, each looked up in this
/// thread's [`PIECES`] memo or encoded (and remembered when short). Equal to
/// `bpe_openai::Tokenizer::count` (neither encoding normalizes; a test compares them).
fn count_pieces(encoding: Encoding, bpe: &bpe_openai::Tokenizer, text: &str) -> usize {
    with_piece_memo(encoding, |memo| bpe.split(text).map(|piece| piece_count(memo, bpe, piece)).sum())
}

/// Runs `f` on this thread's piece memo for `encoding`.
fn with_piece_memo<T>(encoding: Encoding, f: impl FnOnce(&mut rustc_hash::FxHashMap<Box<str>, u32>) -> T) -> T {
    let slot = usize::from(counts_tag(encoding) - 1);
    PIECES.with_borrow_mut(|memos| match memos.get_mut(slot) {
        Some(memo) => f(memo),
        None => f(&mut rustc_hash::FxHashMap::default()),
    })
}

/// The token count of one pre-tokenizer piece, from `memo` or encoded (and then remembered if short).
fn piece_count(memo: &mut rustc_hash::FxHashMap<Box<str>, u32>, bpe: &bpe_openai::Tokenizer, piece: &str) -> usize {
    if piece.len() > PIECE_MEMO_MAX_LEN {
        return bpe.bpe.count(piece.as_bytes());
    }
    if let Some(&n) = memo.get(piece) {
        return n as usize;
    }
    let n = bpe.bpe.count(piece.as_bytes());
    if memo.len() >= PIECE_MEMO_PIECES {
        memo.clear();
    }
    memo.insert(piece.into(), u32::try_from(n).unwrap_or(u32::MAX));
    n
}

/// Counts tokens with a cache keyed by a 128-bit content hash.
pub struct TokenCounter {
    encoding: Encoding,
    bpe: &'static bpe_openai::Tokenizer,
    /// Grows as texts are counted (a preallocated cache would cost every session memory before
    /// its first turn); bounded, the least recently used counts go first (see [`CountCache`]).
    cache: CountCache,
    /// Counts computed since the last [`TokenCounter::take_fresh`], when recording (a durable
    /// session stores them, so a reopened one looks them up instead of encoding again).
    fresh: Option<Vec<(u128, u32)>>,
}

/// Header of a stored batch of counts: the scheme (the content hash) and then the encoding's byte.
const COUNTS_MAGIC: &[u8; 8] = b"ctxwtc01";

impl std::fmt::Debug for TokenCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCounter").field("encoding", &self.encoding).field("cached", &self.cache.len()).finish()
    }
}

/// The encoding's byte in a stored batch of counts (fixed: a stored batch outlives this binary).
fn counts_tag(e: Encoding) -> u8 {
    match e {
        Encoding::O200kBase => 1,
        Encoding::Cl100kBase => 2,
    }
}

/// 128-bit content hash (two independent 64-bit hashes) used as a cache key.
pub(crate) fn content_hash(text: &str) -> u128 {
    let mut a = rustc_hash::FxHasher::default();
    text.hash(&mut a);
    let mut b = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

impl TokenCounter {
    /// A counter for `encoding` caching up to `capacity` distinct texts (at least 1).
    pub fn new(encoding: Encoding, capacity: usize) -> Self {
        TokenCounter { encoding, bpe: encoding.bpe(), cache: CountCache::new(capacity), fresh: None }
    }

    /// The encoding.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Exact count of `text`, cached.
    pub fn count(&mut self, text: &str) -> usize {
        if text.is_empty() {
            return 0;
        }
        // Short texts are cheaper to count than to hash twice and look up.
        if text.len() <= 16 {
            return count_pieces(self.encoding, self.bpe, text);
        }
        let key = content_hash(text);
        if let Some(n) = self.cache.get(key) {
            return n as usize;
        }
        let n = count_pieces(self.encoding, self.bpe, text);
        self.put(key, u32::try_from(n).unwrap_or(u32::MAX));
        n
    }

    fn put(&mut self, key: u128, n: u32) {
        self.cache.put(key, n);
        if let Some(f) = &mut self.fresh {
            f.push((key, n));
        }
    }

    /// Starts (or stops) recording the counts it computes, for [`TokenCounter::take_fresh`].
    pub(crate) fn record_fresh(&mut self, on: bool) {
        self.fresh = on.then(Vec::new);
    }

    /// The counts computed since the last call, encoded for storage (empty when there are none).
    pub(crate) fn take_fresh(&mut self) -> Vec<u8> {
        let Some(f) = self.fresh.as_mut().filter(|f| !f.is_empty()) else { return Vec::new() };
        let mut out = Vec::with_capacity(9 + f.len() * 20);
        out.extend_from_slice(COUNTS_MAGIC);
        out.push(counts_tag(self.encoding));
        for (k, n) in f.drain(..) {
            out.extend_from_slice(&k.to_le_bytes());
            out.extend_from_slice(&n.to_le_bytes());
        }
        out
    }

    /// Caches the counts of a batch [`TokenCounter::take_fresh`] encoded; returns how many. A batch
    /// of another encoding or scheme, or cut short, is skipped (it is a cache: the texts are
    /// counted again).
    pub(crate) fn prime(&mut self, batch: &[u8]) -> usize {
        let Some(body) = batch.strip_prefix(COUNTS_MAGIC.as_slice()) else { return 0 };
        let Some((&enc, entries)) = body.split_first() else { return 0 };
        if enc != counts_tag(self.encoding) || entries.len() % 20 != 0 {
            return 0;
        }
        let mut n = 0;
        for e in entries.chunks_exact(20) {
            let (k, c) = e.split_at(16);
            let (Ok(k), Ok(c)) = (<[u8; 16]>::try_from(k), <[u8; 4]>::try_from(c)) else { continue };
            self.cache.put(u128::from_le_bytes(k), u32::from_le_bytes(c));
            n += 1;
        }
        n
    }

    /// Caches `tokens` as the count of `text`, for a caller that computed it exactly another way
    /// (the summarizer sums a summary's lines), so counting `text` later is a lookup.
    pub(crate) fn remember(&mut self, text: &str, tokens: usize) {
        debug_assert_eq!(self.bpe.count(text), tokens, "remembered count of {text:?}");
        if text.len() <= 16 {
            return;
        }
        self.put(content_hash(text), u32::try_from(tokens).unwrap_or(u32::MAX));
    }

    /// Exactly `count(header + content) - count(content)` (0 when negative), without encoding all of
    /// `content`. A count is the sum of the byte-pair counts of the pre-tokenizer's pieces, and a
    /// piece is matched from where the previous one ended, looking only at the text from there on
    /// (o200k_base and cl100k_base apply no normalization across pieces). So once the pieces of
    /// `header + content` and of `content` both end at the same byte of `content`, every piece
    /// after it is the same in both: only the pieces before that point are counted, usually the
    /// header's and the first one or two of the content. The splitting is lazy, so a 19k-token
    /// turn costs a copy, not an encoding.
    pub(crate) fn prefix_extra(&mut self, header: &str, content: &str) -> usize {
        usize::try_from(self.prefix_delta(header, content)).unwrap_or(0)
    }

    /// `count(header + content) - count(content)`, signed (a header ending in a space can make the
    /// content's first piece cheaper), counted as [`TokenCounter::prefix_extra`] counts.
    pub(crate) fn prefix_delta(&mut self, header: &str, content: &str) -> isize {
        let signed = |n: usize| isize::try_from(n).unwrap_or(isize::MAX);
        if header.is_empty() {
            return 0;
        }
        if content.is_empty() {
            return signed(self.count(header));
        }
        let joined = [header, content].concat();
        let h = header.len();
        let mut with = self.bpe.split(&joined);
        let mut without = self.bpe.split(content);
        // Ends of the pieces taken so far (in `joined`'s and `content`'s bytes) and their tokens.
        let (mut end_with, mut end_without, mut with_tokens, mut without_tokens) = (0usize, 0usize, 0usize, 0usize);
        loop {
            if end_with > 0 && end_with == end_without + h {
                return signed(with_tokens) - signed(without_tokens);
            }
            // Advance whichever split is behind.
            let (split, end, tokens) =
                if end_with < end_without + h { (&mut with, &mut end_with, &mut with_tokens) } else { (&mut without, &mut end_without, &mut without_tokens) };
            let Some(piece) = split.next() else { break };
            *end += piece.len();
            *tokens += with_piece_memo(self.encoding, |memo| piece_count(memo, self.bpe, piece));
        }
        // Unreachable (both splits end at the end of `content`), counted whole if it ever is.
        signed(self.count(&joined)) - signed(self.count(content))
    }

    /// Exact count of `text`, not cached.
    pub fn count_uncached(&self, text: &str) -> usize {
        self.bpe.count(text)
    }

    /// Token ids of `text` (for head/tail truncation).
    pub(crate) fn encode(&self, text: &str) -> Vec<u32> {
        self.bpe.encode(text)
    }

    /// Text of token ids; `None` if they split a UTF-8 character.
    pub(crate) fn decode(&self, tokens: &[u32]) -> Option<String> {
        self.bpe.decode(tokens)
    }
}

/// Whether the pre-tokenizer of o200k_base and cl100k_base always splits `text` at byte `at`, so
/// that `text[..at]` and `text[at..]`, each encoded alone, give exactly the tokens `text` has on
/// either side: true where a line starts (`at` follows a newline) that [`line_start_splits`].
pub(crate) fn splits_at_line_start(text: &str, at: usize) -> bool {
    at > 0 && text.as_bytes().get(at - 1) == Some(&b'\n') && text.get(at..).is_some_and(line_start_splits)
}

/// Whether a newline in front of `line` always ends a piece of the pre-tokenizer of o200k_base and
/// cl100k_base (so counting `…\n` and `line…` apart gives the count of the whole): `line` starts
/// with a character that is neither whitespace nor `/`, or with spaces and tabs followed by one
/// that is not whitespace. No pattern of either encoding runs a newline into such a line: a piece
/// holding a newline is either whitespace ending at the last newline of its run, or punctuation
/// followed by newlines and slashes (o200k), and the patterns only look ahead, never behind.
pub(crate) fn line_start_splits(line: &str) -> bool {
    let rest = line.trim_start_matches([' ', '\t']);
    match rest.chars().next() {
        None => false,
        Some(c) if rest.len() < line.len() => !c.is_whitespace(),
        Some(c) => !c.is_whitespace() && c != '/',
    }
}

/// The tiktoken-rs count of `text` (the reference implementation), for recounts and tests.
pub fn count_reference(encoding: Encoding, text: &str) -> usize {
    let bpe = match encoding {
        Encoding::O200kBase => tiktoken_rs::o200k_base_singleton(),
        Encoding::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
    };
    bpe.encode_ordinary(text).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_counts_prime_another_counter_of_the_same_encoding_only() {
        let texts = ["a text long enough to be cached, with words", "another one, with a path src/lib.rs and numbers 12345"];
        let mut a = TokenCounter::new(Encoding::O200kBase, 64);
        a.record_fresh(true);
        let want: Vec<usize> = texts.iter().map(|t| a.count(t)).collect();
        a.count(texts[0]); // a hit: not recorded again
        let batch = a.take_fresh();
        assert_eq!(batch.len(), 9 + 2 * 20);
        assert!(a.take_fresh().is_empty(), "taken");
        let mut b = TokenCounter::new(Encoding::O200kBase, 64);
        assert_eq!(b.prime(&batch), 2);
        assert_eq!(texts.iter().map(|t| *b.cache.peek(&content_hash(t)).unwrap() as usize).collect::<Vec<_>>(), want);
        let mut c = TokenCounter::new(Encoding::Cl100kBase, 64);
        assert_eq!(c.prime(&batch), 0, "another encoding's counts are not used");
        assert_eq!(c.prime(&batch[..batch.len() - 3]), 0, "a batch cut short is skipped");
        assert_eq!(c.prime(b"not a batch"), 0);
        let mut small = TokenCounter::new(Encoding::O200kBase, 1);
        assert_eq!(small.prime(&batch), 2);
        assert_eq!(small.cache.len(), 1, "priming keeps the bound");
    }

    #[test]
    fn matches_tiktoken_on_mixed_text() {
        let samples = [
            "Hello, world!",
            "fn main() { println!(\"{}\", x.unwrap_or(42)); }",
            "  indented\n\tand tabs\r\nCRLF   trailing   ",
            "Ünïcödé — “quotes” and emoji 🎉🚀 and CJK 漢字かなカナ",
            "/usr/local/lib/python3.11/site-packages/foo_bar/baz.py:123: DeprecationWarning",
            "12345678901234567890 3.14159 1e-9 0xDEADBEEF",
            "[1:56 pm on 8 May, 2023] Caroline: I went to a LGBTQ support group yesterday.",
            "",
            " ",
            "a",
        ];
        for enc in [Encoding::O200kBase, Encoding::Cl100kBase] {
            let mut c = TokenCounter::new(enc, 16);
            for s in samples {
                assert_eq!(c.count(s), count_reference(enc, s), "{enc:?} {s:?}");
                assert_eq!(c.count(s), count_reference(enc, s), "cached {enc:?} {s:?}");
            }
        }
    }

    /// Wherever `splits_at_line_start` holds, the two sides encoded alone give the whole text's
    /// count (tiktoken-rs, both encodings), on random text made of what makes splits hard:
    /// newlines, indentation, slashes, punctuation, contractions, non-ASCII letters and spaces.
    #[test]
    fn line_start_splits_agree_with_tiktoken() {
        let parts = [
            "\n", "\n", "\n\n", " ", "  ", "\t", "/", "./", ".", ":", "-", "a", "Foo", "12", "1234", "é", "漢字", "\r\n", "\r", "\u{a0}", "'s", "x/y", "#",
            "!", "_",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut checked = 0;
        for _ in 0..400 {
            let len = 5 + next(60);
            let text: String = (0..len).map(|_| parts[next(parts.len())]).collect();
            for at in (1..text.len()).filter(|&at| splits_at_line_start(&text, at)) {
                for enc in [Encoding::O200kBase, Encoding::Cl100kBase] {
                    let whole = count_reference(enc, &text);
                    assert_eq!(whole, count_reference(enc, &text[..at]) + count_reference(enc, &text[at..]), "{enc:?} {text:?} at {at}");
                }
                checked += 1;
            }
        }
        assert!(checked > 500, "only {checked} splits checked");
    }

    /// Counting through the per-thread piece memo gives `bpe-openai`'s own count of the whole
    /// text, on every line of the shipped transcripts and on random texts of hard pieces, across
    /// the memo's clearing when full and for both encodings on one thread.
    #[test]
    fn the_piece_memo_counts_exactly_as_the_whole_text_encoded() {
        let mut texts: Vec<String> = Vec::new();
        for f in ["openai-chat.json", "anthropic-messages.json", "claude-code-long.jsonl", "synth-agent.openai.json", "synth-conversation.locomo.json"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/samples").join(f);
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            texts.extend(text.lines().map(str::to_string));
            texts.push(text);
        }
        let parts = ["\n", "\n", " ", "  ", "\t", "/", ".", "'s", "é", "漢字", "12", "12345", "Foo", "bar", "_x", "\r\n", "🎉", "#!", " the"];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..3000 {
            let len = 1 + (state % 40) as usize;
            let text: String = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    parts[(state % parts.len() as u64) as usize]
                })
                .collect();
            texts.push(text);
        }
        // Distinct numbers fill the memo past its bound, so counts after a clearing are checked too.
        texts.extend((0..PIECE_MEMO_PIECES + 100).map(|i| format!("item {i}x{i} done")));
        for enc in [Encoding::O200kBase, Encoding::Cl100kBase] {
            let bpe = enc.bpe();
            for t in &texts {
                assert_eq!(count_pieces(enc, bpe, t), bpe.count(t.as_str()), "{enc:?} {t:?}");
            }
        }
    }

    #[test]
    fn encode_decode_roundtrip() {
        let c = TokenCounter::new(Encoding::O200kBase, 4);
        let t = "some text with ümlauts and 🎉";
        assert_eq!(c.decode(&c.encode(t)).as_deref(), Some(t));
    }
}
