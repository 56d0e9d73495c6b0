//! What the summaries in a replay's windows carry, measured inside the summaries only: answer
//! presence (QA), reference recall (hindsight), their tokens and unsupported terms, which
//! summarizer wrote them, and how long generation took. Reported as the `"summaries"` object of
//! each run.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::generated::SummaryService;
use crate::message::Origin;
use crate::replay::metrics::{Percentiles, answer_present, normalize_answer};
use crate::replay::report::mean;
use crate::window::{SummarySource, Window};

/// Generated summaries in a replay: the service every engine shares, and how long a probe waits
/// for the summaries its window asked for before it builds the window it measures (zero: never;
/// the windows are then what a host sees while the model is still writing).
#[derive(Debug, Clone)]
pub struct GeneratedReplay {
    pub(crate) service: Arc<SummaryService>,
    pub(crate) wait: Duration,
}

impl GeneratedReplay {
    /// Summaries from `service`, each probe waiting at most `wait` for them.
    pub fn new(service: Arc<SummaryService>, wait: Duration) -> Self {
        GeneratedReplay { service, wait }
    }
}

/// Sums over the summaries of a run's windows.
#[derive(Debug, Clone, Default)]
pub(crate) struct SummaryAcc {
    windows_with: usize,
    windows_generated: usize,
    summaries: usize,
    generated: usize,
    fallbacks: usize,
    tokens_sum: f64,
    unsupported_sum: f64,
    latency_ms: Vec<f64>,
    answer_sum: f64,
    answer_n: usize,
    ref_sum: f64,
    ref_n: usize,
}

/// The `"summaries"` object of a run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SummaryResult {
    /// Summaries shown, over all windows.
    pub count: usize,
    /// Share of the windows with at least one summary in which a generated summary was shown.
    pub generated_share: Option<f64>,
    /// Summaries shown extractive although a generated one was wanted (not ready, failed,
    /// rejected by the guard, or too long).
    pub fallbacks: usize,
    /// QA: share of headline questions whose normalized answer occurs inside the window's summaries.
    pub answer_presence: Option<f64>,
    /// Hindsight: share of the needed terms present inside the window's summaries.
    pub reference_recall: Option<f64>,
    /// Mean tokens per summary (message framing included).
    pub tokens_mean: Option<f64>,
    /// Mean unsupported terms per summary.
    pub unsupported_terms_mean: Option<f64>,
    /// Generation latency of the generated summaries shown, ms.
    pub gen_latency_ms: Option<GenLatency>,
}

/// Generation latency percentiles, ms.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct GenLatency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// The text of a window's summaries, joined.
fn summary_text(w: &Window) -> String {
    w.messages().iter().filter(|m| matches!(m.origin, Origin::Summary { .. })).map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n")
}

impl SummaryAcc {
    /// Counts the summaries of a measured window.
    pub(crate) fn window(&mut self, w: &Window) {
        let s = w.summaries();
        if s.is_empty() {
            return;
        }
        self.windows_with += 1;
        self.windows_generated += usize::from(s.iter().any(|x| x.source == SummarySource::Generated));
        for x in s {
            self.summaries += 1;
            self.generated += usize::from(x.source == SummarySource::Generated);
            self.fallbacks += usize::from(x.source.is_fallback());
            self.tokens_sum += x.tokens as f64;
            self.unsupported_sum += x.unsupported_terms as f64;
            if let Some(ms) = x.generation_ms {
                self.latency_ms.push(ms as f64);
            }
        }
    }

    /// QA: whether `answer` occurs inside the window's summaries (headline questions with an answer).
    pub(crate) fn answer(&mut self, w: &Window, answer: &str) {
        self.answer_sum += f64::from(u8::from(answer_present(&normalize_answer(&summary_text(w)), answer)));
        self.answer_n += 1;
    }

    /// Hindsight: the share of `needed` terms inside the window's summaries.
    pub(crate) fn references(&mut self, w: &Window, needed: &[&str]) {
        if needed.is_empty() {
            return;
        }
        let text = summary_text(w);
        self.ref_sum += needed.iter().filter(|t| text.contains(**t)).count() as f64 / needed.len() as f64;
        self.ref_n += 1;
    }

    pub(crate) fn merge(&mut self, o: SummaryAcc) {
        self.windows_with += o.windows_with;
        self.windows_generated += o.windows_generated;
        self.summaries += o.summaries;
        self.generated += o.generated;
        self.fallbacks += o.fallbacks;
        self.tokens_sum += o.tokens_sum;
        self.unsupported_sum += o.unsupported_sum;
        self.latency_ms.extend(o.latency_ms);
        self.answer_sum += o.answer_sum;
        self.answer_n += o.answer_n;
        self.ref_sum += o.ref_sum;
        self.ref_n += o.ref_n;
    }

    pub(crate) fn result(mut self) -> SummaryResult {
        let gen_latency_ms = (!self.latency_ms.is_empty()).then(|| {
            let p = Percentiles::of(&mut self.latency_ms);
            GenLatency { p50: p.p50, p99: p.p99 }
        });
        SummaryResult {
            count: self.summaries,
            generated_share: mean(self.windows_generated as f64, self.windows_with),
            fallbacks: self.fallbacks,
            answer_presence: mean(self.answer_sum, self.answer_n),
            reference_recall: mean(self.ref_sum, self.ref_n),
            tokens_mean: mean(self.tokens_sum, self.summaries),
            unsupported_terms_mean: mean(self.unsupported_sum, self.summaries),
            gen_latency_ms,
        }
    }
}
