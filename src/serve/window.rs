//! `POST /v1/sessions/{id}/window`: a window for a budget (tokens or `N%`), an optional query, in
//! the OpenAI or Anthropic request shape, under the session's policy or one the request names.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::AppState;
use super::api::{body_object, finite, session_id};
use super::error::ApiError;
use super::ingest::Format;
use super::metrics::thread_cpu_seconds;
use crate::policy::Policy;
use crate::session::Session;
use crate::tokens::{MESSAGE_OVERHEAD, REPLY_PRIMING, count_reference};
use crate::window::{Fate, ReportLine, Window};

/// A budget as asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Budget {
    /// This many tokens.
    Tokens(usize),
    /// The pins and framing plus this share (0–10) of the session's history tokens.
    Share(f64),
}

impl Budget {
    /// Parses `2000`, `"2000"` or `"25%"`.
    pub(crate) fn parse(v: Option<&Value>) -> std::result::Result<Budget, ApiError> {
        let bad = || ApiError::bad("budget", "must be a positive number of tokens or a string \"N%\" (0 < N <= 1000)");
        match v {
            Some(Value::Number(n)) => n.as_u64().filter(|&n| n > 0).and_then(|n| usize::try_from(n).ok()).map(Budget::Tokens).ok_or_else(bad),
            Some(Value::String(s)) => {
                let s = s.trim();
                if let Some(p) = s.strip_suffix('%') {
                    let p: f64 = p.trim().parse().map_err(|_| bad())?;
                    return if p > 0.0 && p <= 1000.0 { Ok(Budget::Share(p / 100.0)) } else { Err(bad()) };
                }
                s.parse::<usize>().ok().filter(|&n| n > 0).map(Budget::Tokens).ok_or_else(bad)
            }
            _ => Err(bad()),
        }
    }

    /// Tokens for `session`: a share counts the pins' text, the framing and that share of the
    /// history's tokens (each turn as rendered verbatim).
    fn resolve(self, s: &Session) -> usize {
        match self {
            Budget::Tokens(n) => n,
            Budget::Share(f) => {
                let e = s.engine();
                let pins: usize = e.pins().iter().map(|p| count_reference(e.encoding(), p.text())).sum();
                let pins = if pins > 0 { pins + MESSAGE_OVERHEAD } else { 0 };
                let history: usize = (0..e.len()).filter_map(|t| e.turn_tokens(t)).sum();
                pins + REPLY_PRIMING + (history as f64 * f).round() as usize
            }
        }
    }
}

/// The policy a request names: a preset name, or an inline policy object (starting from its
/// `preset`, default `ctxwin`).
fn policy(v: Option<&Value>) -> std::result::Result<Option<Policy>, ApiError> {
    let p = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(name)) => Policy::preset(name),
        Some(o @ Value::Object(_)) => Policy::from_json_str(&o.to_string(), Some("the request")),
        Some(_) => return Err(ApiError::bad("policy", "must be a preset name or a policy object")),
    };
    p.map(Some).map_err(|e| ApiError::from_lib(e, Some("policy")))
}

/// What a window request asks for.
struct Ask {
    budget: Budget,
    query: Option<String>,
    format: Format,
    policy: Option<Policy>,
    /// One report line per turn (`"turns"`, the default) or none (`"none"`).
    report: bool,
}

fn ask(map: &serde_json::Map<String, Value>) -> std::result::Result<Ask, ApiError> {
    let budget = Budget::parse(map.get("budget"))?;
    let query = match map.get("query") {
        None | Some(Value::Null) => None,
        Some(Value::String(q)) => Some(q.clone()).filter(|q| !q.trim().is_empty()),
        Some(_) => return Err(ApiError::bad("query", "must be a string")),
    };
    let format = Format::parse(map.get("format"), "format", Format::OpenAi, false)?;
    let report = match map.get("report") {
        None | Some(Value::Null) => true,
        Some(Value::String(r)) if r == "turns" => true,
        Some(Value::String(r)) if r == "none" => false,
        Some(_) => return Err(ApiError::bad("report", "must be \"turns\" (one line per turn, the default) or \"none\"")),
    };
    Ok(Ask { budget, query, format, policy: policy(map.get("policy"))?, report })
}

/// `POST /v1/sessions/{id}/window`. A `policy` different from the session's is stored as the
/// session's policy (like `Session::set_policy`) before the window is assembled.
pub(crate) async fn post_window(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    session_id(&id)?;
    let map = body_object(body, &["budget", "query", "format", "policy", "report"])?;
    let ask = ask(&map)?;
    let inline = st.sessions.is_hot(&id);
    let reply = st
        .run(inline, move |st| {
            let mut assemble_s = 0.0;
            let mut assemble_cpu = None;
            let r = st.sessions.with(&id, |s| {
                if let Some(p) = ask.policy
                    && &p != s.engine().policy()
                {
                    s.set_policy(p)?;
                }
                let budget = ask.budget.resolve(s);
                let cpu = thread_cpu_seconds();
                let start = Instant::now();
                let w = match &ask.query {
                    Some(q) => s.assemble_for(budget, q),
                    None => s.assemble(budget),
                };
                assemble_s = start.elapsed().as_secs_f64();
                assemble_cpu = cpu.zip(thread_cpu_seconds()).map(|(a, b)| b - a);
                w
            });
            let w = r.map_err(|e| ApiError::from_lib(e, None))?;
            st.metrics.assemble(assemble_s);
            if let Some(c) = assemble_cpu {
                st.metrics.assemble_cpu(c);
            }
            render(&id, &w, ask.format, ask.report)
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], reply).into_response())
}

fn fate(f: &Fate) -> (&'static str, Option<usize>) {
    match f {
        Fate::Kept => ("kept", None),
        Fate::Truncated => ("truncated", None),
        Fate::Cleared => ("cleared", None),
        Fate::Summarized { summary } => ("summarized", Some(*summary)),
        Fate::Dropped => ("dropped", None),
    }
}

/// The reply's head: the request body for the model (`messages`, and `system` for Anthropic), the
/// exact token total and the budget. The per-turn `report` and the `summaries` follow it (see
/// [`render`]).
#[derive(Serialize)]
struct Head<'a> {
    session: &'a str,
    format: &'static str,
    total_tokens: usize,
    budget: usize,
    encoding: &'static str,
    messages: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<Value>,
}

/// One line of the report, as serialized.
#[derive(Serialize)]
struct LineOut {
    turn: usize,
    fate: &'static str,
    tokens: usize,
    shown_tokens: usize,
    score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<usize>,
}

impl LineOut {
    fn of(l: &ReportLine) -> LineOut {
        let (fate, summary) = fate(&l.fate);
        LineOut { turn: l.turn, fate, tokens: l.tokens, shown_tokens: l.shown_tokens, score: finite(l.score.total), summary }
    }

    /// Appends the line's JSON to `out`: the bytes `serde_json` writes for it (a test checks), without
    /// its per-field machinery. The report has a line per turn of the session, and encoding it was
    /// the largest part of rendering a reply (README, "Service": the profile under load).
    fn write(&self, out: &mut Vec<u8>) {
        let mut n = itoa::Buffer::new();
        out.extend_from_slice(b"{\"turn\":");
        out.extend_from_slice(n.format(self.turn).as_bytes());
        out.extend_from_slice(b",\"fate\":\"");
        out.extend_from_slice(self.fate.as_bytes());
        out.extend_from_slice(b"\",\"tokens\":");
        out.extend_from_slice(n.format(self.tokens).as_bytes());
        out.extend_from_slice(b",\"shown_tokens\":");
        out.extend_from_slice(n.format(self.shown_tokens).as_bytes());
        out.extend_from_slice(b",\"score\":");
        // serde_json's own float encoding (shortest round trip; finite by construction).
        let _ = serde_json::to_writer(&mut *out, &self.score);
        if let Some(s) = self.summary {
            out.extend_from_slice(b",\"summary\":");
            out.extend_from_slice(n.format(s).as_bytes());
        }
        out.push(b'}');
    }
}

#[derive(Serialize)]
struct SummaryOut {
    first: usize,
    last: usize,
    tokens: usize,
    source_tokens: usize,
}

/// The reply body (JSON bytes): the head, then `"report"` (a line per turn) and `"summaries"`.
fn render(id: &str, w: &Window, format: Format, report: bool) -> std::result::Result<Vec<u8>, ApiError> {
    let (messages, system) = match format {
        Format::Anthropic => {
            let mut a = w.to_anthropic();
            let system = a.get_mut("system").map(Value::take);
            (a.get_mut("messages").map(Value::take).unwrap_or(Value::Array(Vec::new())), system)
        }
        Format::OpenAi | Format::Ctxwin => (w.to_openai(), None),
    };
    let head = Head {
        session: id,
        format: if format == Format::Anthropic { "anthropic" } else { "openai" },
        total_tokens: w.total_tokens(),
        budget: w.budget(),
        encoding: w.encoding().as_str(),
        messages,
        system,
    };
    let internal = |e: serde_json::Error| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "internal",
        field: None,
        message: format!("cannot serialize the window: {e}"),
    };
    let mut out = serde_json::to_vec(&head).map_err(internal)?;
    // The head is an object: reopen it for the two last fields.
    out.pop();
    let lines = if report { w.report() } else { &[] };
    out.reserve(lines.len() * 80 + 64);
    out.extend_from_slice(b",\"report\":[");
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        LineOut::of(l).write(&mut out);
    }
    out.extend_from_slice(b"],\"summaries\":");
    let summaries: Vec<SummaryOut> =
        w.summaries().iter().map(|s| SummaryOut { first: s.first, last: s.last, tokens: s.tokens, source_tokens: s.source_tokens }).collect();
    serde_json::to_writer(&mut out, &summaries).map_err(internal)?;
    out.push(b'}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn budgets_parse_and_refuse_by_field() {
        assert_eq!(Budget::parse(Some(&json!(2000))).unwrap(), Budget::Tokens(2000));
        assert_eq!(Budget::parse(Some(&json!("2000"))).unwrap(), Budget::Tokens(2000));
        assert_eq!(Budget::parse(Some(&json!("25%"))).unwrap(), Budget::Share(0.25));
        for bad in [json!(0), json!(-5), json!(1.5), json!("0%"), json!("x%"), json!(null), json!([1])] {
            assert_eq!(Budget::parse(Some(&bad)).unwrap_err().field.as_deref(), Some("budget"), "{bad}");
        }
        assert_eq!(Budget::parse(None).unwrap_err().field.as_deref(), Some("budget"));
    }

    #[test]
    fn report_lines_encode_as_serde_json_does() {
        let scores = [0.0, 1.0, 0.5, 0.12345, 1e-4, 123456.789, 3.0e-5];
        for (i, &score) in scores.iter().enumerate() {
            for summary in [None, Some(0), Some(i * 1_000_003)] {
                let l = LineOut { turn: i * 9_999_991, fate: "summarized", tokens: i, shown_tokens: usize::MAX >> i, score, summary };
                let mut mine = Vec::new();
                l.write(&mut mine);
                assert_eq!(String::from_utf8(mine).unwrap(), serde_json::to_string(&l).unwrap());
            }
        }
    }

    #[test]
    fn policies_by_name_or_inline() {
        assert_eq!(policy(Some(&json!("recency"))).unwrap().unwrap().preset_name(), "recency");
        assert_eq!(policy(Some(&json!({"preset": "rag"}))).unwrap().unwrap().preset_name(), "rag");
        assert_eq!(policy(Some(&json!("nope"))).unwrap_err().field.as_deref(), Some("policy"));
        assert_eq!(policy(Some(&json!(3))).unwrap_err().field.as_deref(), Some("policy"));
        assert!(policy(None).unwrap().is_none());
    }
}
