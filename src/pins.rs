//! Pinned instruction layers: system → project → task → output preferences.
//!
//! Pins are created only through [`crate::Engine::pin`] — the engine never turns pushed content into
//! a pin; a host (such as ctxbench, mapping a transcript's system prompt and task statement) decides
//! what to pin. They are never
//! summarized or dropped; `assemble` fails with [`crate::Error::BudgetBelowPins`] when they do not fit.

use serde::{Deserialize, Serialize};

/// The layers of the prompt hierarchy, in the order they are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinLayer {
    /// System constraints.
    System,
    /// Project context (CLAUDE.md / AGENTS.md-like).
    Project,
    /// Task context (the request being worked on).
    Task,
    /// Output preferences.
    Output,
}

impl PinLayer {
    /// All layers in rendering order.
    pub const ALL: [PinLayer; 4] = [PinLayer::System, PinLayer::Project, PinLayer::Task, PinLayer::Output];

    /// Name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            PinLayer::System => "system",
            PinLayer::Project => "project",
            PinLayer::Task => "task",
            PinLayer::Output => "output",
        }
    }
}

/// Identifies a pin so it can be removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PinId(pub(crate) u64);

/// One pinned piece of instruction text.
#[derive(Debug, Clone, PartialEq)]
pub struct Pin {
    pub(crate) id: PinId,
    pub(crate) layer: PinLayer,
    pub(crate) priority: i32,
    pub(crate) text: String,
}

impl Pin {
    /// The pin's id.
    pub fn id(&self) -> PinId {
        self.id
    }
    /// Its layer.
    pub fn layer(&self) -> PinLayer {
        self.layer
    }
    /// Its priority within the layer (higher first).
    pub fn priority(&self) -> i32 {
        self.priority
    }
    /// Its text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The engine's pins, kept in rendering order: by layer, then priority (higher first), then insertion.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pins {
    pins: Vec<Pin>,
    next_id: u64,
}

impl Pins {
    pub(crate) fn add(&mut self, layer: PinLayer, text: String, priority: i32) -> PinId {
        let id = PinId(self.next_id);
        self.next_id += 1;
        self.pins.push(Pin { id, layer, priority, text });
        // Stable sort keeps insertion order among equals.
        self.pins.sort_by(|a, b| a.layer.cmp(&b.layer).then(b.priority.cmp(&a.priority)));
        id
    }

    pub(crate) fn remove(&mut self, id: PinId) -> bool {
        let before = self.pins.len();
        self.pins.retain(|p| p.id != id);
        before != self.pins.len()
    }

    pub(crate) fn ordered(&self) -> &[Pin] {
        &self.pins
    }

    /// The system text all pins render to: each pin's text in order, separated by a blank line.
    pub(crate) fn render(&self) -> Option<String> {
        if self.pins.is_empty() {
            return None;
        }
        let mut out = String::new();
        for p in &self.pins {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(&p.text);
        }
        Some(out)
    }
}
