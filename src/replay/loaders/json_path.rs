//! Positions of values inside JSON text, so a loader that finds a value of the wrong shape can
//! report the file's line and column, not just a path.
//!
//! `serde_json::Value` keeps no spans; instead, on the error path only, [`locate`] re-scans the text
//! along a path of keys and indices. The scanner is a small tolerant skipper: it never panics, and
//! returns `None` when the text does not hold the path (the caller then reports line 0).

use std::fmt::Write as _;
use std::path::Path;

use crate::error::Error;
use crate::replay::loaders::line_col;

/// One step of a path into a JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seg<'a> {
    /// An object member.
    Key(&'a str),
    /// An array element.
    Idx(usize),
}

/// `messages[3].content` style rendering of a path (`$` for the root).
pub(crate) fn render(segs: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for s in segs {
        match s {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Idx(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    if out.is_empty() { "$".to_string() } else { out }
}

/// A `Malformed` error for the value at `segs` in `text` (a whole JSON file): the message is
/// prefixed with the rendered path, and line/column are those of the value (0 when not found).
pub(crate) fn error_at(path: &Path, text: &str, segs: &[Seg<'_>], msg: impl std::fmt::Display) -> Error {
    let (line, col) = match locate(text, segs) {
        Some(off) => line_col(text.as_bytes(), off),
        None => (0, 0),
    };
    Error::malformed(path, line, col, format!("{}: {msg}", render(segs)))
}

/// Like [`error_at`] for one line of a JSON Lines file: `line_text` is that line, `line_no` its
/// 1-based number in the file; the column is the value's within the line.
pub(crate) fn error_in_line(path: &Path, line_no: usize, line_text: &str, segs: &[Seg<'_>], msg: impl std::fmt::Display) -> Error {
    let col = locate(line_text, segs).map_or(1, |off| line_col(line_text.as_bytes(), off).1);
    Error::malformed(path, line_no, col, format!("{}: {msg}", render(segs)))
}

/// A short one-line excerpt of a JSON value (at most `max` characters, `…` when cut), for opaque
/// turns: enough to tell what the item was without copying a large payload into the window.
pub(crate) fn excerpt(v: &serde_json::Value, max: usize) -> String {
    let s = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    truncate_chars(&s, max)
}

/// `s` cut to at most `max` characters (on a character boundary), with `…` when cut.
pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// The file's name without its extension (`x.traj.json` → `x.traj`), for transcript ids.
pub(crate) fn file_stem(path: &Path) -> String {
    path.file_stem().and_then(|s| s.to_str()).unwrap_or("transcript").to_string()
}

/// Byte offset where the value at `segs` starts in `text`, if the text holds it.
pub(crate) fn locate(text: &str, segs: &[Seg<'_>]) -> Option<usize> {
    let b = text.as_bytes();
    let mut pos = skip_ws(b, 0);
    for seg in segs {
        match (seg, b.get(pos)?) {
            (Seg::Key(want), b'{') => {
                pos = skip_ws(b, pos + 1);
                loop {
                    if *b.get(pos)? == b'}' {
                        return None;
                    }
                    let key_start = pos;
                    let key_end = skip_string(b, pos)?;
                    let key = decode_key(text.get(key_start..key_end)?);
                    pos = skip_ws(b, key_end);
                    if *b.get(pos)? != b':' {
                        return None;
                    }
                    pos = skip_ws(b, pos + 1);
                    if key.as_deref() == Some(*want) {
                        break;
                    }
                    pos = skip_ws(b, skip_value(b, pos)?);
                    match b.get(pos)? {
                        b',' => pos = skip_ws(b, pos + 1),
                        _ => return None,
                    }
                }
            }
            (Seg::Idx(want), b'[') => {
                pos = skip_ws(b, pos + 1);
                if *b.get(pos)? == b']' {
                    return None;
                }
                for _ in 0..*want {
                    pos = skip_ws(b, skip_value(b, pos)?);
                    match b.get(pos)? {
                        b',' => pos = skip_ws(b, pos + 1),
                        _ => return None,
                    }
                }
            }
            _ => return None,
        }
    }
    Some(pos)
}

fn skip_ws(b: &[u8], mut pos: usize) -> usize {
    while pos < b.len() && matches!(b[pos], b' ' | b'\t' | b'\n' | b'\r') {
        pos += 1;
    }
    pos
}

/// `pos` is at an opening quote; returns the offset just past the closing quote.
fn skip_string(b: &[u8], pos: usize) -> Option<usize> {
    if b.get(pos) != Some(&b'"') {
        return None;
    }
    let mut i = pos + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Decodes a quoted key (with its quotes); keys without escapes are taken as they are.
fn decode_key(quoted: &str) -> Option<String> {
    if !quoted.contains('\\') {
        return quoted.get(1..quoted.len().saturating_sub(1)).map(str::to_string);
    }
    serde_json::from_str::<String>(quoted).ok()
}

/// `pos` is at the start of a value; returns the offset just past it.
fn skip_value(b: &[u8], pos: usize) -> Option<usize> {
    match b.get(pos)? {
        b'"' => skip_string(b, pos),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = pos;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        i = skip_string(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            let mut i = pos;
            while i < b.len() && !matches!(b[i], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                i += 1;
            }
            (i > pos).then_some(i)
        }
    }
}

/// The file being read, for errors that name a position in it.
pub(crate) struct Doc<'a> {
    pub(crate) path: &'a Path,
    pub(crate) text: &'a str,
}

impl Doc<'_> {
    /// An error at the JSON value reached by `base` then `extra`.
    pub(crate) fn err(&self, base: &[Seg<'_>], extra: &[Seg<'_>], msg: impl std::fmt::Display) -> Error {
        error_at(self.path, self.text, &[base, extra].concat(), msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_values() {
        let text = "{\n  \"a\": [1, {\"b\": \"x,]}\"}, {\"c\": 42}],\n  \"d\\u0065\": null\n}";
        let off = locate(text, &[Seg::Key("a"), Seg::Idx(2), Seg::Key("c")]);
        assert_eq!(off.map(|o| &text[o..o + 2]), Some("42"));
        let off = locate(text, &[Seg::Key("a"), Seg::Idx(1), Seg::Key("b")]);
        assert_eq!(off.map(|o| &text[o..o + 6]), Some("\"x,]}\""));
        let off = locate(text, &[Seg::Key("de")]);
        assert_eq!(off.map(|o| &text[o..o + 4]), Some("null"));
        assert_eq!(locate(text, &[Seg::Key("zz")]), None);
        assert_eq!(locate(text, &[Seg::Key("a"), Seg::Idx(9)]), None);
        assert_eq!(locate(text, &[Seg::Idx(0)]), None);
        assert_eq!(locate("", &[Seg::Idx(0)]), None);
        assert_eq!(locate("[1, 2", &[Seg::Idx(5)]), None);
    }

    #[test]
    fn excerpts_cut_on_char_boundaries() {
        assert_eq!(truncate_chars("héllo", 2), "hé…");
        assert_eq!(truncate_chars("hé", 2), "hé");
        assert_eq!(excerpt(&serde_json::json!({"a": 1}), 100), "{\"a\":1}");
    }

    #[test]
    fn renders_paths() {
        assert_eq!(render(&[]), "$");
        assert_eq!(render(&[Seg::Idx(2), Seg::Key("traj"), Seg::Idx(0), Seg::Key("content")]), "[2].traj[0].content");
    }

    #[test]
    fn error_names_line_and_column() {
        let text = "{\n  \"messages\": 7\n}";
        let e = error_at(Path::new("x.json"), text, &[Seg::Key("messages")], "must be an array");
        assert_eq!(e.to_string(), "x.json:2:15: messages: must be an array");
    }
}
