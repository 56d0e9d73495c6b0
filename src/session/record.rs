//! What a session's log holds: one [`Record`] per state-changing call, serialized as JSON.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pins::PinLayer;
use crate::policy::Policy;
use crate::turn::Turn;

/// One appended call. Replaying a session's records in sequence order through an engine rebuilds
/// it exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// `push(turn)`, the turn exactly as pushed.
    Push {
        /// The turn.
        turn: Turn,
    },
    /// `pin(layer, text, priority)`, and the id the engine gave the pin.
    Pin {
        /// The pin's id (checked on replay).
        id: u64,
        /// Its layer.
        layer: PinLayer,
        /// Its priority.
        priority: i32,
        /// Its text.
        text: String,
    },
    /// `unpin(id)` of a pin that existed.
    Unpin {
        /// The pin's id.
        id: u64,
    },
    /// A policy change (the per-turn plan state starts over).
    Policy {
        /// The new policy.
        policy: Policy,
    },
}

impl Record {
    /// The record's kind as stored in the `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Push { .. } => "push",
            Record::Pin { .. } => "pin",
            Record::Unpin { .. } => "unpin",
            Record::Policy { .. } => "policy",
        }
    }

    /// The record as JSON.
    pub fn encode(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::InvalidTurn(format!("cannot serialize record: {e}")))
    }

    /// Parses a stored record; a record that does not parse means the store is damaged.
    pub fn decode(store: &str, session: &str, seq: u64, body: &str) -> Result<Record> {
        let damaged = |e: String| Error::StoreDamaged {
            store: store.to_string(),
            session: Some(session.to_string()),
            message: format!("record {seq} does not parse: {e}"),
        };
        let flat: FlatRecord = serde_json::from_str(body).map_err(|e| damaged(e.to_string()))?;
        flat.record().map_err(|field| damaged(format!("missing field `{field}`")))
    }
}

/// A record's JSON read as one flat struct, its `kind` one field among the others: what the
/// internally tagged [`Record`] reads, without serde first buffering the whole record (its turn's
/// every string) into an intermediate tree to find the tag. A reopen decodes every record.
#[derive(Deserialize)]
struct FlatRecord {
    kind: Kind,
    turn: Option<Turn>,
    id: Option<u64>,
    layer: Option<PinLayer>,
    priority: Option<i32>,
    text: Option<String>,
    policy: Option<Policy>,
}

/// [`Record`]'s kinds, as its `kind` field names them.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Push,
    Pin,
    Unpin,
    Policy,
}

impl FlatRecord {
    /// The record its kind and fields make, or the name of a field its kind needs and it lacks.
    fn record(self) -> std::result::Result<Record, &'static str> {
        Ok(match self.kind {
            Kind::Push => Record::Push { turn: self.turn.ok_or("turn")? },
            Kind::Pin => Record::Pin {
                id: self.id.ok_or("id")?,
                layer: self.layer.ok_or("layer")?,
                priority: self.priority.ok_or("priority")?,
                text: self.text.ok_or("text")?,
            },
            Kind::Unpin => Record::Unpin { id: self.id.ok_or("id")? },
            Kind::Policy => Record::Policy { policy: self.policy.ok_or("policy")? },
        })
    }
}

/// Records as stored, `(sequence number, JSON)`, in order: what [`Record::decode`] reads.
pub type EncodedRecords = Vec<(u64, String)>;

/// A stored record and its per-session sequence number (1, 2, 3, … without gaps).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Sequence number within the session.
    pub seq: u64,
    /// The record.
    pub record: Record,
}

/// Everything stored for one session.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The log, in sequence order.
    pub entries: Vec<Entry>,
    /// The last saved plan state (JSON of [`crate::PlanState`]) and the sequence number it follows.
    pub plan: Option<(u64, String)>,
    /// Cached summaries: `(first turn, last turn, allowance)` and text.
    pub summaries: Vec<SummaryRow>,
    /// Stored batches of token counts (see [`Derived::counts`]), oldest first.
    pub counts: Vec<Vec<u8>>,
}

/// One cached summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    /// First turn summarized.
    pub first: u64,
    /// Last turn summarized.
    pub last: u64,
    /// The token allowance it was written for.
    pub allowance: u64,
    /// The summary.
    pub text: String,
}

/// What a session derives from its log and its calls: the plan state that keeps the prompt-cache
/// prefix stable, and new summaries. A cache: it is written in the transaction of the session's
/// next append, or by [`crate::session::Session::flush`] (on close, eviction, shutdown), never on
/// the window path. A crash loses at most what was derived since the last append, and the next
/// window derives it again from the same log (the same window, since planning is deterministic).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Derived {
    /// The plan state (JSON of [`crate::PlanState`]) as of the record it is stored with.
    pub plan: Option<String>,
    /// Summaries not stored yet.
    pub summaries: Vec<SummaryRow>,
    /// Token counts computed since the last store, as one opaque batch (empty when none): a
    /// reopened session looks them up instead of encoding its turns again.
    pub counts: Vec<u8>,
}

impl Derived {
    /// Nothing to store.
    pub fn is_empty(&self) -> bool {
        self.plan.is_none() && self.summaries.is_empty() && self.counts.is_empty()
    }
}

/// Checks a session id: 1–128 characters of `[A-Za-z0-9._-]`.
pub fn validate_id(id: &str) -> Result<()> {
    let bad = |message: &str| Err(Error::InvalidSessionId { id: id.chars().take(160).collect(), message: message.to_string() });
    if id.is_empty() {
        return bad("empty");
    }
    if id.len() > 128 {
        return bad("longer than 128 characters");
    }
    match id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        Some(c) => bad(&format!("character {c:?} is not one of [A-Za-z0-9._-]")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_are_checked() {
        assert!(validate_id("chat-42_a.b").is_ok());
        assert!(matches!(validate_id(""), Err(Error::InvalidSessionId { .. })));
        assert!(matches!(validate_id(&"a".repeat(129)), Err(Error::InvalidSessionId { .. })));
        assert!(validate_id(&"a".repeat(128)).is_ok());
        assert!(matches!(validate_id("a/b"), Err(Error::InvalidSessionId { .. })));
        assert!(matches!(validate_id("é"), Err(Error::InvalidSessionId { .. })));
    }

    /// Every kind of record decodes (through the flat struct) to what the derived, internally
    /// tagged decoding gives, fields in any order, unknown fields ignored; a record lacking a
    /// field its kind needs, or of an unknown kind, is refused by both.
    #[test]
    fn the_flat_decoding_agrees_with_the_tagged_one() {
        let records = vec![
            Record::Push { turn: Turn::user("hello").with_priority(0.5).with_timestamp("2024-01-01") },
            Record::Push {
                turn: Turn::new(
                    crate::turn::Role::Assistant,
                    vec![crate::turn::Block::ToolCall {
                        call_id: "c1".into(),
                        name: "bash".into(),
                        arguments: serde_json::json!({"cmd": "ls -la", "n": [1, 2]}),
                    }],
                ),
            },
            Record::Push { turn: Turn::tool_result("c1", "a\n\"quoted\"\ttab \u{e9}", true) },
            Record::Pin { id: 3, layer: PinLayer::Task, priority: -2, text: "fix it".into() },
            Record::Unpin { id: 3 },
            Record::Policy { policy: Policy::default() },
        ];
        for r in records {
            let body = r.encode().unwrap();
            assert_eq!(Record::decode("s", "x", 1, &body).unwrap(), r);
            let tagged: Record = serde_json::from_str(&body).unwrap();
            assert_eq!(tagged, r);
            // The kind last, and an unknown field.
            let mut v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let kind = v.as_object_mut().unwrap().remove("kind").unwrap();
            v.as_object_mut().unwrap().insert("extra".into(), serde_json::json!(1));
            v.as_object_mut().unwrap().insert("kind".into(), kind);
            let moved = serde_json::to_string(&v).unwrap();
            assert_eq!(Record::decode("s", "x", 1, &moved).unwrap(), r);
            assert_eq!(serde_json::from_str::<Record>(&moved).unwrap(), r);
        }
        for bad in [r#"{"kind":"push"}"#, r#"{"kind":"pin","id":1,"layer":"task","text":"t"}"#, r#"{"kind":"nope"}"#, r#"{"turn":null}"#, "[]", "x"] {
            assert!(matches!(Record::decode("s", "x", 7, bad), Err(Error::StoreDamaged { .. })), "{bad}");
            assert!(serde_json::from_str::<Record>(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn a_pushed_turn_round_trips_exactly(text in ".{0,200}", ts in proptest::option::of("[0-9: -]{1,20}"), p in 0.0f32..1.0) {
            let mut turn = Turn::user(text).with_priority(p);
            if let Some(ts) = ts { turn = turn.with_timestamp(ts); }
            let r = Record::Push { turn };
            let back = Record::decode("s", "x", 1, &r.encode().unwrap()).unwrap();
            prop_assert_eq!(back, r);
        }
    }
}
