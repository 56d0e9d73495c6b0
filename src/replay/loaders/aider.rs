//! Aider chat histories (`.aider.chat.history.md`), the markdown log Aider appends to.
//!
//! `# aider chat started at <date>` starts a session: one transcript per session, id
//! `<name>#<n>` (n from 1; `<name>` is the file name without `.aider.chat.history.md`, or its stem
//! for other names), every turn carrying the session's date as timestamp and `L<line>` (its first
//! line in the file) as source id. Text before the first header, if any, is a session without a
//! date. Within a session, line by line:
//!
//! - `#### <text>` lines are the user's input; consecutive ones are one message (a blank line
//!   ends it), with the two trailing spaces Aider adds for markdown line breaks removed;
//! - `> <text>` lines are Aider's own output (command echoes, confirmations, token counts, lint
//!   and test output, errors); consecutive ones are one turn with role `User`, provenance `Tool`,
//!   tagged `tool-output` (there is no tool call to pair them with);
//! - everything else is the assistant's reply, blank lines included, up to the next `####` / `>`
//!   line or header. Reasoning blocks Aider writes for thinking models
//!   (`<thinking-content-…>…</thinking-content-…>`) are removed, as Aider removes them from the
//!   chat it sends back, and counted in `notes.skipped_items`; an unclosed one (the reply was
//!   interrupted with ^C) runs to the end of the reply. A reply that was only reasoning leaves no
//!   turn (counted as well).
//!
//! A session whose header is followed by nothing is kept as a transcript without turns, counted in
//! `notes.empty_sessions`. Any text parses, so this loader returns no errors of its own.

use std::path::Path;

use super::Format;
use crate::error::Result;
use crate::replay::loaders::json_path::file_stem;
use crate::replay::transcript::Transcript;
use crate::turn::{Provenance, Turn};

const FORMAT: Format = Format::Aider;
const SESSION_HEADER: &str = "# aider chat started at";
const THINKING_OPEN: &str = "<thinking-content-";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    User,
    Output,
    Reply,
}

/// The block being collected.
struct Block {
    kind: Kind,
    first_line: usize,
    lines: Vec<String>,
}

struct Builder {
    name: String,
    path: std::path::PathBuf,
    out: Vec<Transcript>,
    current: Option<(Transcript, Option<String>)>,
    block: Option<Block>,
}

impl Builder {
    fn start_session(&mut self, date: Option<String>) {
        self.finish_session();
        let n = self.out.len() + 1;
        let t = Transcript::new(format!("{}#{n}", self.name), &self.path, FORMAT);
        self.current = Some((t, date));
    }

    fn finish_session(&mut self) {
        self.flush();
        if let Some((mut t, _)) = self.current.take() {
            if t.turns.is_empty() {
                t.notes.empty_sessions += 1;
            }
            t.normalize_turns();
            self.out.push(t);
        }
    }

    fn push_line(&mut self, kind: Kind, line_no: usize, text: String) {
        if self.current.is_none() {
            self.start_session(None);
        }
        match &mut self.block {
            Some(b) if b.kind == kind => b.lines.push(text),
            _ => {
                self.flush();
                self.block = Some(Block { kind, first_line: line_no, lines: vec![text] });
            }
        }
    }

    fn flush(&mut self) {
        let Some(b) = self.block.take() else { return };
        let Some((t, date)) = &mut self.current else { return };
        let joined = b.lines.join("\n");
        let text = match b.kind {
            Kind::Reply => {
                let (text, removed) = strip_thinking(&joined);
                t.notes.skipped_items += removed;
                text.trim().to_string()
            }
            Kind::User | Kind::Output => joined.trim_matches('\n').to_string(),
        };
        if text.trim().is_empty() {
            t.notes.skipped_items += 1;
            return;
        }
        let mut turn = match b.kind {
            Kind::User => Turn::user(text),
            Kind::Output => Turn::user(text).with_provenance(Provenance::Tool).with_tag("tool-output"),
            Kind::Reply => Turn::assistant(text),
        };
        if let Some(d) = date {
            turn = turn.with_timestamp(d.clone());
        }
        t.turns.push(turn.with_source_id(format!("L{}", b.first_line)));
    }
}

/// Removes `<thinking-content-…>…</thinking-content-…>` spans; returns the text and how many.
fn strip_thinking(text: &str) -> (String, usize) {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut removed = 0;
    while let Some(start) = rest.find(THINKING_OPEN) {
        let after = &rest[start..];
        out.push_str(&rest[..start]);
        removed += 1;
        // An unclosed block (the reply was interrupted) runs to the end of the reply.
        let close = after.find('>').map(|tag_end| format!("</{}>", &after[1..tag_end]));
        match close.and_then(|c| after.find(&c).map(|at| at + c.len())) {
            Some(end) => rest = &after[end..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    (out, removed)
}

pub(super) fn load(path: &Path, text: &str) -> Result<Vec<Transcript>> {
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let name = file_name.strip_suffix(".aider.chat.history.md").filter(|s| !s.is_empty()).map(str::to_string).unwrap_or_else(|| file_stem(path));
    let mut b = Builder { name, path: path.to_path_buf(), out: Vec::new(), current: None, block: None };
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if let Some(date) = line.strip_prefix(SESSION_HEADER) {
            let date = date.trim();
            b.start_session((!date.is_empty()).then(|| date.to_string()));
        } else if line == "####" || line.starts_with("#### ") {
            b.push_line(Kind::User, line_no, line.get(5..).unwrap_or_default().trim_end().to_string());
        } else if line == ">" || line.starts_with("> ") {
            b.push_line(Kind::Output, line_no, line.get(2..).unwrap_or_default().trim_end().to_string());
        } else if line.trim().is_empty() {
            // A blank line ends user input and tool output; inside a reply it is part of it.
            match &mut b.block {
                Some(block) if block.kind == Kind::Reply => block.lines.push(String::new()),
                _ => b.flush(),
            }
        } else {
            b.push_line(Kind::Reply, line_no, line.to_string());
        }
    }
    b.finish_session();
    Ok(b.out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::turn::Role;

    #[test]
    fn sessions_users_output_and_replies() -> Result<()> {
        let text = "\n# aider chat started at 2025-01-02 03:04:05\n\n> Aider v0.85.1  \n> Git repo: .git  \n\n#### fix  \n####   \n####   the bug  \n\n<thinking-content-ab12>\nhmm\n</thinking-content-ab12>\n\nHere is the fix:\n\n```python\n# a comment\n```\n\n> Tokens: 1k sent  \n\n# aider chat started at 2025-01-03 00:00:00\n\n#### hi  \n";
        let ts = load(Path::new("/x/proj.aider.chat.history.md"), text)?;
        assert_eq!(ts.len(), 2);
        let t = &ts[0];
        assert_eq!(t.id(), "proj#1");
        let roles: Vec<Role> = t.turns.iter().map(Turn::role).collect();
        assert_eq!(roles, [Role::User, Role::User, Role::Assistant, Role::User]);
        assert_eq!(t.turns[0].tags(), ["tool-output"]);
        assert_eq!(t.turns[0].provenance(), Provenance::Tool);
        assert_eq!(t.turns[0].plain_text(), "Aider v0.85.1\nGit repo: .git");
        assert_eq!(t.turns[1].plain_text(), "fix\n\n  the bug");
        assert_eq!(t.turns[1].provenance(), Provenance::Host);
        assert_eq!(t.turns[2].plain_text(), "Here is the fix:\n\n```python\n# a comment\n```");
        assert_eq!(t.turns[2].timestamp(), Some("2025-01-02 03:04:05"));
        assert_eq!(t.turns[2].source_id(), Some("L11"));
        assert_eq!(t.notes.skipped_items, 1);
        assert_eq!(ts[1].id(), "proj#2");
        assert_eq!(ts[1].turns.len(), 1);
        Ok(())
    }

    #[test]
    fn unclosed_thinking_runs_to_the_end() {
        assert_eq!(strip_thinking("a <thinking-content-1> b"), ("a ".to_string(), 1));
        assert_eq!(strip_thinking("a <thinking-content-1"), ("a ".to_string(), 1));
        assert_eq!(strip_thinking("a<thinking-content-1>b</thinking-content-1>c"), ("ac".to_string(), 1));
    }
}
