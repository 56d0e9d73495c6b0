//! The messages a window is made of, in ctxwin's neutral form: what the store renders each turn into
//! once and what the window renders to a provider's request shape. Both the store and the window
//! use these types, so they live below both.

use serde::Serialize;

use crate::tokens::{MESSAGE_OVERHEAD, TOOL_CALL_OVERHEAD, TokenCounter};
use crate::turn::{Role, TurnId};

/// A tool call as it appears in a rendered assistant message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCallOut {
    pub(crate) id: String,
    pub(crate) name: String,
    /// JSON text of the arguments.
    pub(crate) arguments: String,
}

impl ToolCallOut {
    /// The call id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The tool's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The arguments, as JSON text.
    pub fn arguments(&self) -> &str {
        &self.arguments
    }
}

/// Where a message in the window comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// The pinned layers.
    Pins,
    /// A turn of the history (verbatim, truncated or cleared: see the report).
    Turn {
        /// The turn.
        turn: TurnId,
    },
    /// A generated summary standing in for turns `first..=last`.
    Summary {
        /// First turn summarized.
        first: TurnId,
        /// Last turn summarized.
        last: TurnId,
    },
    /// A one-line marker for turns `first..=last` that were left out without a summary.
    Marker {
        /// First turn left out.
        first: TurnId,
        /// Last turn left out.
        last: TurnId,
    },
}

/// One message of the window, in ctxwin's neutral form (rendered to a provider's shape on demand).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub(crate) role: Role,
    pub(crate) content: String,
    pub(crate) tool_calls: Vec<ToolCallOut>,
    /// For tool results: the call answered.
    pub(crate) tool_call_id: Option<String>,
    pub(crate) is_error: bool,
    pub(crate) origin: Origin,
    /// Turns `first..=last` left out just before this turn, marked by the `[N turns omitted]` that
    /// begins its content (a marker rides on the next turn rather than costing a message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) omitted: Option<(TurnId, TurnId)>,
    /// Exact tokens of this message as billed in the OpenAI chat format (framing included), set
    /// when the message is put in a window; 0 before.
    #[serde(skip)]
    pub(crate) tokens: usize,
}

impl Message {
    pub(crate) fn text(role: Role, content: String, origin: Origin) -> Self {
        Message { role, content, tool_calls: Vec::new(), tool_call_id: None, is_error: false, origin, omitted: None, tokens: 0 }
    }
    /// A tool result answering `call_id`.
    pub(crate) fn tool_result(call_id: String, content: String, is_error: bool, origin: Origin) -> Self {
        Message { role: Role::Tool, content, tool_calls: Vec::new(), tool_call_id: Some(call_id), is_error, origin, omitted: None, tokens: 0 }
    }
    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// The text content.
    pub fn content(&self) -> &str {
        &self.content
    }
    /// Where it comes from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }
    /// The left-out turns `(first, last)` whose marker begins this message's content, if any (a
    /// stand-alone marker message has [`Origin::Marker`] instead).
    pub fn omitted(&self) -> Option<(TurnId, TurnId)> {
        self.omitted
    }
    /// The tool calls it makes (name, id, JSON arguments), in order.
    pub fn tool_calls(&self) -> &[ToolCallOut] {
        &self.tool_calls
    }
    /// Ids of the tool calls it makes.
    pub fn tool_call_ids(&self) -> impl Iterator<Item = &str> {
        self.tool_calls.iter().map(|c| c.id.as_str())
    }
    /// The call it answers, for tool results.
    pub fn tool_call_id(&self) -> Option<&str> {
        self.tool_call_id.as_deref()
    }
    /// Whether it is a tool result that reports an error.
    pub fn is_error(&self) -> bool {
        self.is_error
    }
    /// Exact tokens of this message in its window as billed in the OpenAI chat format (framing
    /// included; see [`crate::MESSAGE_OVERHEAD`]). The window's total is the sum of these plus
    /// [`crate::REPLY_PRIMING`].
    pub fn token_count(&self) -> usize {
        self.tokens
    }

    /// Exact tokens of this message as billed in the OpenAI chat format (see [`crate::tokens`]).
    pub(crate) fn count_tokens(&self, counter: &mut TokenCounter) -> usize {
        self.count_parts(counter).0
    }

    /// Its tokens, framing included, and those of its content alone.
    fn count_parts(&self, counter: &mut TokenCounter) -> (usize, usize) {
        let content = counter.count(&self.content);
        let mut n = MESSAGE_OVERHEAD + content;
        for c in &self.tool_calls {
            n += TOOL_CALL_OVERHEAD + counter.count(&c.id) + counter.count(&c.name) + counter.count(&c.arguments);
        }
        if let Some(id) = &self.tool_call_id {
            n += counter.count(id);
        }
        (n, content)
    }

    /// Counts the message and keeps the count in it; returns the count.
    pub(crate) fn counted(&mut self, counter: &mut TokenCounter) -> usize {
        self.counted_parts(counter).0
    }

    /// Counts the message and keeps the count in it; returns the count and that of its content
    /// alone (a long tool output is then looked up once, not twice).
    pub(crate) fn counted_parts(&mut self, counter: &mut TokenCounter) -> (usize, usize) {
        let (n, content) = self.count_parts(counter);
        self.tokens = n;
        (n, content)
    }
}
