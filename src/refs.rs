//! References: the names, dates, numbers, identifiers and paths a text mentions.
//!
//! Two extractors share one word scanner: [`references`] feeds the scorer's shared-reference
//! component and the summarizer's information measure; [`salient_terms`] is the hindsight probe's
//! definition of what a later turn actually used (paths, identifiers with `_`, `::`, `.` or
//! camelCase, numbers of 3+ digits, quoted strings; 4+ characters).

use std::hash::{Hash, Hasher};

/// Capitalized words that start sentences or questions rather than name something.
const NOT_NAMES: &[&str] = &[
    "i", "i'm", "i've", "i'll", "i'd", "the", "a", "an", "and", "but", "or", "so", "if", "it", "it's", "its", "is", "are", "was", "were", "what", "when",
    "where", "who", "whom", "whose", "why", "how", "which", "did", "do", "does", "has", "have", "had", "can", "could", "would", "should", "will", "shall",
    "may", "might", "must", "that", "this", "these", "those", "there", "here", "then", "they", "them", "their", "we", "you", "your", "he", "she", "his", "her",
    "my", "our", "me", "us", "yes", "no", "not", "oh", "hey", "hi", "hello", "thanks", "thank", "wow", "yeah", "ok", "okay", "sure", "well", "just", "also",
    "great", "good", "nice", "let", "let's", "that's", "in", "on", "at", "for", "to", "of", "with", "from", "by", "as", "be", "been", "all", "some", "any",
    "one", "now", "after", "before", "since", "because", "while", "about", "into", "over", "again", "very", "really", "still",
];

/// Splits `text` into candidate words: runs of letters, digits and `_ . / : - '`, trimmed of
/// punctuation at both ends. Scans bytes (ASCII by table, other characters decoded): references
/// are taken of every turn at push, tool outputs of megabytes included.
fn words(text: &str) -> Words<'_> {
    Words { text, at: 0 }
}

/// Each byte's class for the word scan: 0 an ASCII separator, 1 an ASCII byte of a word (letters,
/// digits and `_ . / : - '`), 2 a byte of a non-ASCII character (decoded to decide).
const BYTE_CLASS: [u8; 256] = {
    let mut t = [2u8; 256];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        t[b] = (c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'/' | b':' | b'-' | b'\'')) as u8;
        b += 1;
    }
    t
};

/// Iterator of [`words`].
struct Words<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Words<'a> {
    /// The next run of word characters, untrimmed: ASCII bytes by table (a search over the slice),
    /// other characters decoded.
    fn next_run(&mut self) -> Option<(usize, usize)> {
        let (start, end) = crate::text::next_word_run(self.text, self.at, &BYTE_CLASS)?;
        self.at = end;
        Some((start, end))
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let trimmed = |b: &u8| matches!(b, b'.' | b':' | b'-' | b'\'' | b'/');
        while let Some((start, end)) = self.next_run() {
            // Trimmed by bytes: the punctuation is ASCII, so the cuts are character boundaries.
            let run = self.text.as_bytes().get(start..end).unwrap_or_default();
            let from = start + run.iter().position(|b| !trimmed(b)).unwrap_or(run.len());
            let to = start + run.iter().rposition(|b| !trimmed(b)).map_or(0, |k| k + 1);
            if let Some(w) = self.text.get(from..to).filter(|w| !w.is_empty()) {
                return Some(w);
            }
        }
        self.at = self.text.len();
        None
    }
}

fn has_inner(w: &str, sep: &str) -> bool {
    w.split(sep).filter(|p| !p.is_empty()).count() >= 2
}

fn is_camel(w: &str) -> bool {
    let b = w.as_bytes();
    b.windows(2).any(|p| p[0].is_ascii_lowercase() && p[1].is_ascii_uppercase())
}

/// Identifier-like: `snake_case`, `a::b`, `a.b` (both sides alphanumeric), camelCase, or a path.
fn is_identifier(w: &str) -> bool {
    // Byte pre-checks first: most words have none of these characters.
    let b = w.as_bytes();
    b.contains(&b'_')
        || (b.windows(2).any(|p| p == b"::") && has_inner(w, "::"))
        || (b.contains(&b'/') && w.chars().any(char::is_alphanumeric))
        || (b.contains(&b'.') && has_inner(w, ".") && w.split('.').all(|p| !p.is_empty()) && w.chars().any(|c| c.is_ascii_alphabetic()))
        || is_camel(w)
}

fn hash_key(s: &str) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    s.hash(&mut h);
    h.finish()
}

/// Hashes of the references in `text`, sorted and deduplicated: capitalized names (lower-cased),
/// numbers of 2+ digits, identifiers and paths.
pub(crate) fn references(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let mut lower = String::new();
    for w in words(text) {
        let b = w.as_bytes();
        // Most words are lower-case ASCII letters without `_ / : .`: none of the three kinds.
        let first = b[0];
        let plain = |c: &u8| c.is_ascii_lowercase() || matches!(c, b'-' | b'\'');
        if first.is_ascii_lowercase() && b.iter().all(plain) {
            continue;
        }
        if is_identifier(w) {
            lower_into(w, &mut lower);
            out.push(hash_key(&lower));
        } else if b.iter().all(u8::is_ascii_digit) {
            if b.len() >= 2 {
                out.push(hash_key(w));
            }
        } else if (if first < 0x80 { first.is_ascii_uppercase() } else { w.chars().next().is_some_and(char::is_uppercase) }) && w.chars().nth(1).is_some() {
            lower_into(w, &mut lower);
            let base = lower.strip_suffix("'s").unwrap_or(&lower);
            if !NOT_NAMES.contains(&base) {
                out.push(hash_key(base));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// `w.to_lowercase()` into `out` (without allocating for ASCII words).
fn lower_into(w: &str, out: &mut String) {
    out.clear();
    if w.is_ascii() {
        out.push_str(w);
        out.make_ascii_lowercase();
    } else {
        out.push_str(&w.to_lowercase());
    }
}

/// The salient terms of `text` (hindsight probes): paths, identifiers with `_`, `::`, `.` or
/// camelCase, numbers of 3+ digits, and quoted strings, each of 4+ characters; deduplicated, in
/// order of first appearance.
pub fn salient_terms(text: &str) -> Vec<String> {
    let mut seen: rustc_hash::FxHashSet<&str> = rustc_hash::FxHashSet::default();
    let mut order: Vec<&str> = Vec::new();
    let candidates = words(text).filter(|w| {
        let all_digits = w.bytes().all(|b| b.is_ascii_digit());
        (all_digits && w.len() >= 3) || (!all_digits && is_identifier(w))
    });
    for s in candidates.chain(quoted(text)) {
        if (s.len() >= 16 || s.chars().nth(3).is_some()) && seen.insert(s) {
            order.push(s);
        }
    }
    order.into_iter().map(str::to_string).collect()
}

/// Contents of "double", 'single' and `backtick` quotes on one line, 1–120 characters long.
fn quoted(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for line in text.lines() {
        for quote in ['"', '`', '\''] {
            let mut rest = line;
            while let Some(start) = rest.find(quote) {
                let after = &rest[start + quote.len_utf8()..];
                let Some(end) = after.find(quote) else { break };
                let inner = &after[..end];
                // A single quote inside a word is an apostrophe, not a quote.
                let apostrophe =
                    quote == '\'' && (rest[..start].chars().next_back().is_some_and(char::is_alphanumeric) || inner.starts_with(char::is_whitespace));
                if !apostrophe && !inner.is_empty() && inner.chars().count() <= 120 && !inner.trim().is_empty() {
                    out.push(inner);
                }
                rest = &after[end + quote.len_utf8()..];
            }
        }
    }
    out
}

/// Size of the intersection of two sorted, deduplicated lists.
#[cfg(test)]
pub(crate) fn overlap(a: &[u64], b: &[u64]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salient_terms_follow_the_definition() {
        let t = "Edit src/engine/mod.rs: call `normalize_turns` in Engine::push, see parseConfig and 12345 or 42; \"exact match\" it's";
        let s = salient_terms(t);
        assert_eq!(s, vec!["src/engine/mod.rs", "normalize_turns", "Engine::push", "parseConfig", "12345", "exact match"]);
    }

    #[test]
    fn references_find_names_numbers_and_identifiers() {
        let a = references("When did Caroline go to the LGBTQ support group in 2023?");
        let b = references("Caroline: I went to a LGBTQ support group on 7 May 2023.");
        assert_eq!(overlap(&a, &b), 3, "caroline, lgbtq, 2023");
        assert!(references("What is it? The thing.").is_empty());
        assert_eq!(references("foo_bar Foo_Bar").len(), 1);
    }

    /// The definitions as first written (char by char), the oracle of the byte scanner.
    mod oracle {
        use super::super::{NOT_NAMES, hash_key, is_identifier, quoted};

        pub fn words(text: &str) -> impl Iterator<Item = &str> {
            text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '/' | ':' | '-' | '\'')))
                .map(|w| w.trim_matches(|c: char| matches!(c, '.' | ':' | '-' | '\'' | '/')))
                .filter(|w| !w.is_empty())
        }

        pub fn references(text: &str) -> Vec<u64> {
            let mut out = Vec::new();
            for w in words(text) {
                let first = w.chars().next().unwrap_or(' ');
                let digits = w.chars().filter(char::is_ascii_digit).count();
                if is_identifier(w) {
                    out.push(hash_key(&w.to_lowercase()));
                } else if digits == w.len() {
                    if digits >= 2 {
                        out.push(hash_key(w));
                    }
                } else if first.is_uppercase() && w.chars().count() >= 2 {
                    let lower = w.to_lowercase();
                    let base = lower.strip_suffix("'s").unwrap_or(&lower);
                    if !NOT_NAMES.contains(&base) {
                        out.push(hash_key(base));
                    }
                }
            }
            out.sort_unstable();
            out.dedup();
            out
        }

        pub fn salient_terms(text: &str) -> Vec<String> {
            let mut seen = std::collections::HashSet::new();
            let mut order: Vec<&str> = Vec::new();
            let candidates = words(text).filter(|w| {
                let all_digits = w.bytes().all(|b| b.is_ascii_digit());
                (all_digits && w.len() >= 3) || (!all_digits && is_identifier(w))
            });
            for s in candidates.chain(quoted(text)) {
                if s.chars().count() >= 4 && seen.insert(s) {
                    order.push(s);
                }
            }
            order.into_iter().map(str::to_string).collect()
        }
    }

    /// And on every line of the transcripts the repo ships (conversations, agent trajectories,
    /// tool outputs).
    #[test]
    fn the_scanner_agrees_on_the_shipped_transcripts() {
        let mut lines = 0;
        // JSON escapes decoded roughly: the scanner sees real newlines and quotes.
        for (p, chunk) in crate::text::shipped_sample_chunks() {
            assert_eq!(references(&chunk), oracle::references(&chunk), "{}", p.display());
            assert_eq!(salient_terms(&chunk), oracle::salient_terms(&chunk), "{}", p.display());
            lines += 1;
        }
        assert!(lines > 100, "read {lines} chunks");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// The byte scanner finds the words, references and salient terms the char-by-char
        /// definitions find, on texts of ASCII, accented and non-Latin letters (upper- and
        /// lower-case, with case mappings that change length), digits, marks and separators.
        #[test]
        fn the_scanner_agrees_with_the_definitions(parts in proptest::collection::vec(proptest::sample::select(vec![
            "a", "Z", "q", "Caroline", "I'm", "it's", "Melanie's", "LGBTQ", "parseConfig", "foo_bar", "src/main.rs", "/", "::", "a::b", ".", "..", "x.y",
            "v1.2.3", ":", "-", "'", "\"", "`", " ", "\n", "\t", ",", "(", ")", "42", "2023", "7", "É", "école", "Σίσυφος", "ΣΑΣ", "İstanbul", "ß", "ǅ",
            "日本", "١٢٣", "Ⅻ", "e\u{301}", "\u{a0}", "\u{2028}", "😀", "ﬁ", "Ω", "x", "_", "The", "When", "src", "/etc/hosts", "http://a.b/c",
        ]), 0..40)) {
            let text: String = parts.concat();
            proptest::prop_assert_eq!(words(&text).collect::<Vec<_>>(), oracle::words(&text).collect::<Vec<_>>());
            proptest::prop_assert_eq!(references(&text), oracle::references(&text));
            proptest::prop_assert_eq!(salient_terms(&text), oracle::salient_terms(&text));
        }

        /// And on arbitrary strings.
        #[test]
        fn the_scanner_agrees_on_any_text(text in "\\PC{0,80}") {
            proptest::prop_assert_eq!(words(&text).collect::<Vec<_>>(), oracle::words(&text).collect::<Vec<_>>());
            proptest::prop_assert_eq!(references(&text), oracle::references(&text));
            proptest::prop_assert_eq!(salient_terms(&text), oracle::salient_terms(&text));
        }
    }

    #[test]
    fn overlap_counts_common_items() {
        assert_eq!(overlap(&[1, 3, 5, 7], &[2, 3, 7, 9]), 2);
        assert_eq!(overlap(&[], &[1]), 0);
    }
}
