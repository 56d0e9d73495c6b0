//! Plan → window: messages in chronological order, the date header on the first turn of each date,
//! each gap's marker at the start of the next turn's content (a message of its own only after the
//! last turn shown), exact counts per message and in total, and one report line per turn.

use crate::message::{Message, Origin};
use crate::plan::costs::{Form, form_cut};
use crate::plan::gaps::marker_text;
use crate::plan::{Item, Plan, PlanContext};
use crate::policy::Policy;
use crate::scorer::TurnScores;
use crate::store::{header, header_extra};
use crate::tokens::REPLY_PRIMING;
use crate::turn::{Role, TurnId};
use crate::window::{Event, Fate, Report, SummaryInfo, Window};

/// The window being built.
struct Builder {
    messages: Vec<Message>,
    total: usize,
    /// What happened to the turns touched, in order (the report's lines are made from it).
    events: Vec<Event>,
    summaries: Vec<SummaryInfo>,
    /// Date of the last turn shown.
    last_ts: Option<u32>,
    /// A gap's marker, waiting for the next turn to begin with it.
    pending_marker: Option<(TurnId, TurnId)>,
}

impl Builder {
    fn push(&mut self, m: Message) {
        self.total += m.tokens;
        self.messages.push(m);
    }

    /// A marker of its own for turns `first..=last` (when no turn follows to carry it).
    fn flush_marker(&mut self, ctx: &mut PlanContext<'_>) {
        if let Some((first, last)) = self.pending_marker.take() {
            let mut m = Message::text(Role::User, marker_text(last - first + 1), Origin::Marker { first, last });
            m.counted(ctx.counter);
            self.push(m);
        }
    }

    /// Turn `id` in its form, with the date header and a pending marker on its first message that
    /// is not a tool result.
    fn turn(&mut self, ctx: &mut PlanContext<'_>, id: TurnId, form: Form) {
        let (mut msgs, cost) = ctx.forms.messages(ctx.store, ctx.counter, id, form);
        let mut cost = cost;
        let mut date_header = None;
        if let (Some(t), Some(date)) = (ctx.store.get(id).and_then(|t| t.turn.timestamp()), ctx.store.date(id)) {
            if Some(date) != self.last_ts {
                date_header = Some(header(t));
            }
            self.last_ts = Some(date);
        }
        let marker = self.pending_marker.take();
        if date_header.is_some() || marker.is_some() {
            match msgs.iter_mut().find(|m| m.tool_call_id.is_none()) {
                Some(m) => {
                    let before = m.tokens;
                    let dated = date_header.is_some();
                    let mut prefix = date_header.unwrap_or_default();
                    if let Some((first, last)) = marker {
                        let mut text = marker_text(last - first + 1);
                        if !(prefix.is_empty() && m.content.is_empty()) {
                            text.push(' ');
                            text.push_str(&prefix);
                        }
                        prefix = text;
                        m.omitted = Some((first, last));
                    }
                    // The prefix's tokens without recounting the content (a long turn's would be
                    // encoded again for every distinct marker): exact, see `header_extra`. The
                    // date header alone was priced at push; a marker's price is cached per gap.
                    let extra = match (marker, ctx.store.get(id)) {
                        _ if m.content.is_empty() => ctx.counter.count(&prefix),
                        // Cut text: its price was not taken at push, nor cached for this form.
                        _ if matches!(form, Form::Cut(_)) => header_extra(ctx.counter, &prefix, &m.content),
                        (None, Some(t)) => t.header_extra(),
                        (Some((first, last)), _) => ctx.forms.marker_extra(ctx.counter, (id, last - first + 1, dated), &prefix, &m.content),
                        (None, None) => header_extra(ctx.counter, &prefix, &m.content),
                    };
                    // One allocation of the final size (this runs for every dated turn of a window).
                    let mut content = String::with_capacity(prefix.len() + m.content.len());
                    content.push_str(&prefix);
                    content.push_str(&m.content);
                    m.content = content;
                    m.tokens = before + extra;
                    debug_assert_eq!(m.tokens, m.count_tokens(ctx.counter), "prefix {extra} tokens");
                    cost += extra;
                }
                None => {
                    self.pending_marker = marker;
                    self.flush_marker(ctx);
                }
            }
        }
        let fate = match form {
            Form::Verbatim => Fate::Kept,
            Form::Truncated(_) | Form::Cut(_) => Fate::Truncated,
            Form::Cleared => Fate::Cleared,
        };
        self.events.push(Event::Shown(id, fate, cost));
        self.total += cost;
        self.messages.extend(msgs);
    }

    fn summary(&mut self, ctx: &mut PlanContext<'_>, (first, last): (TurnId, TurnId), text: &str, tokens: usize) {
        self.flush_marker(ctx);
        let k = self.summaries.len();
        let source_tokens = ctx.store.tokens_between(first, last);
        self.events.push(Event::Summary(first, last, k));
        let used = ctx.summaries.used(first, last, text);
        self.summaries.push(SummaryInfo {
            first,
            last,
            tokens,
            source_tokens,
            source: used.source,
            unsupported_terms: used.unsupported,
            generation_ms: used.latency_ms,
        });
        let mut m = Message::text(Role::User, text.to_string(), Origin::Summary { first, last });
        m.tokens = tokens;
        self.push(m);
    }
}

/// Renders `plan` into a window with exact counts and a report line per turn.
pub(crate) fn build(ctx: &mut PlanContext<'_>, plan: &Plan, policy: &Policy, scores: Option<&TurnScores>) -> Window {
    let n_turns = ctx.store.len();
    let units = ctx.store.units();
    // Room for every message and event the plan makes, allocated once (a turn is about one message).
    let room = 2 + plan.items.iter().map(|it| if let Item::Unit(u) = it { units.get(*u).map_or(0, |r| r.len()) } else { 1 }).sum::<usize>();
    let mut b = Builder {
        messages: Vec::with_capacity(room),
        total: REPLY_PRIMING,
        events: Vec::with_capacity(room),
        summaries: Vec::new(),
        last_ts: None,
        pending_marker: None,
    };
    if let Some(p) = ctx.pins {
        let mut m = Message::text(Role::System, p.to_string(), Origin::Pins);
        m.counted(ctx.counter);
        b.push(m);
    }
    for item in &plan.items {
        match item {
            Item::Unit(u) => {
                let Some(r) = units.get(*u).cloned() else { continue };
                let cut = plan.cut_of(*u);
                for id in r.clone() {
                    let form = form_cut(ctx.store, id, policy, plan.clear_before, cut);
                    b.turn(ctx, id, form);
                }
                if r.end == n_turns {
                    for mut m in ctx.store.pending_results() {
                        m.counted(ctx.counter);
                        b.push(m);
                    }
                }
            }
            Item::Summary { first_unit, last_unit, text, tokens } => {
                let (Some(a), Some(z)) = (units.get(*first_unit), units.get(*last_unit)) else { continue };
                b.summary(ctx, (a.start, z.end - 1), text, *tokens);
            }
            Item::Marker { first_unit, last_unit } => {
                let (Some(a), Some(z)) = (units.get(*first_unit), units.get(*last_unit)) else { continue };
                b.pending_marker = Some((a.start, z.end - 1));
            }
        }
    }
    b.flush_marker(ctx);
    let report = Report::new(ctx.store.turn_tokens().to_vec(), b.events, scores.cloned());
    Window {
        messages: b.messages,
        total_tokens: b.total,
        budget: ctx.budget,
        encoding: ctx.counter.encoding(),
        report,
        summaries: b.summaries,
        query_embed_us: None,
    }
}
