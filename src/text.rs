//! Cutting text at a byte limit without splitting a character (the one place that does it), and
//! the word scanner the index's analyzer and the reference scanner share.

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn take_bytes_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The longest suffix of `s` of at most `max` bytes that starts on a character boundary.
pub(crate) fn take_last_bytes_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// The next run of word characters in `text` from byte `at`: `(start, end)`, or `None` when no
/// word character is left. ASCII bytes are classed by `class` (0: not a word byte, 1: a word
/// byte; found by searching the slice, no decoding); a non-ASCII character (class 2) is a word
/// character when it is alphanumeric.
#[inline]
pub(crate) fn next_word_run(text: &str, at: usize, class: &[u8; 256]) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut i = at;
    let start = loop {
        i += bytes.get(i..)?.iter().position(|&b| class[b as usize] != 0)?;
        if bytes[i] < 0x80 {
            break i;
        }
        match char_at(text, i) {
            (_, true) => break i,
            (len, false) => i += len,
        }
    };
    let mut end = start;
    loop {
        let rest = bytes.get(end..).unwrap_or_default();
        end += rest.iter().position(|&b| class[b as usize] != 1).unwrap_or(rest.len());
        match bytes.get(end) {
            Some(&b) if b >= 0x80 => match char_at(text, end) {
                (len, true) => end += len,
                (_, false) => break,
            },
            _ => break,
        }
    }
    Some((start, end))
}

/// The length of the character at byte `i` and whether it is alphanumeric (`(1, false)` past the
/// end or off a boundary).
fn char_at(text: &str, i: usize) -> (usize, bool) {
    match text.get(i..).and_then(|s| s.chars().next()) {
        Some(c) => (c.len_utf8(), c.is_alphanumeric()),
        None => (1, false),
    }
}

/// The transcripts the repo ships (`datasets/samples`, every file), JSON escapes of newlines and
/// quotes decoded roughly, in chunks of 50 lines, each with its file: what the tests that compare
/// a fast scanner with its oracle on real text read.
#[cfg(test)]
pub(crate) fn shipped_sample_chunks() -> Vec<(std::path::PathBuf, String)> {
    let mut files = vec![std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/samples"))];
    let mut out = Vec::new();
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).into_iter().flatten().flatten().map(|e| e.path()));
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else { continue };
        let text = text.replace("\\n", "\n").replace("\\\"", "\"");
        for chunk in text.split_inclusive('\n').collect::<Vec<_>>().chunks(50) {
            out.push((p.clone(), chunk.concat()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_never_split_a_character() {
        let s = "aé漢🎉b";
        for max in 0..=s.len() + 1 {
            let head = take_bytes_at_char_boundary(s, max);
            let tail = take_last_bytes_at_char_boundary(s, max);
            assert!(head.len() <= max && s.starts_with(head));
            assert!(tail.len() <= max && s.ends_with(tail));
            // Longest: one more character would exceed `max`.
            assert!(s[head.len()..].chars().next().is_none_or(|c| head.len() + c.len_utf8() > max));
            assert!(s[..s.len() - tail.len()].chars().next_back().is_none_or(|c| tail.len() + c.len_utf8() > max));
        }
    }
}
