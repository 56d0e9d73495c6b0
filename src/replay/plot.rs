//! A compare as a chart (SVG): for each dataset, its headline recall against the budget, one line
//! per policy. The headline is evidence recall for QA datasets, long-range recall for sessions
//! replayed in hindsight (reference recall when no term was long-range).

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::replay::report::{CompareReport, RunResult};

/// Width and height of one dataset's panel, in pixels.
const PANEL: (u32, u32) = (520, 380);
/// Panels per row.
const COLUMNS: usize = 3;

/// One dataset's panel: the metric, the budgets (x, in first-seen order) and a line per policy.
#[derive(Debug, PartialEq)]
pub(crate) struct Panel {
    pub(crate) dataset: String,
    pub(crate) metric: &'static str,
    pub(crate) budgets: Vec<String>,
    /// Policy name and its value at each budget (None where the run has no value).
    pub(crate) lines: Vec<(String, Vec<Option<f64>>)>,
}

/// The headline metric of a run set, and how to read it from a run.
fn headline(runs: &[&RunResult]) -> (&'static str, fn(&RunResult) -> Option<f64>) {
    if runs.iter().any(|r| r.evidence_recall.is_some()) {
        ("evidence recall", |r| r.evidence_recall)
    } else if runs.iter().any(|r| r.long_range_recall.is_some()) {
        ("long-range recall", |r| r.long_range_recall)
    } else {
        ("reference recall", |r| r.reference_recall)
    }
}

fn budget_label(r: &RunResult) -> String {
    match &r.budget {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Groups the runs into panels, keeping the order the runs came in.
pub(crate) fn panels(report: &CompareReport) -> Vec<Panel> {
    let mut datasets: Vec<&str> = Vec::new();
    for r in &report.runs {
        if !datasets.contains(&r.dataset.as_str()) {
            datasets.push(&r.dataset);
        }
    }
    datasets
        .into_iter()
        .map(|d| {
            let runs: Vec<&RunResult> = report.runs.iter().filter(|r| r.dataset == d).collect();
            let (metric, value) = headline(&runs);
            let mut budgets: Vec<String> = Vec::new();
            let mut policies: Vec<&str> = Vec::new();
            for r in &runs {
                let b = budget_label(r);
                if !budgets.contains(&b) {
                    budgets.push(b);
                }
                if !policies.contains(&r.policy.as_str()) {
                    policies.push(&r.policy);
                }
            }
            let lines = policies
                .iter()
                .map(|p| {
                    let ys = budgets.iter().map(|b| runs.iter().find(|r| r.policy == *p && budget_label(r) == *b).and_then(|r| value(r))).collect();
                    (p.to_string(), ys)
                })
                .collect();
            Panel { dataset: d.to_string(), metric, budgets, lines }
        })
        .collect()
}

fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::Plot(e.to_string())
}

/// The compare as an SVG document.
pub fn svg(report: &CompareReport) -> Result<String> {
    let panels = panels(report);
    if panels.is_empty() {
        return Err(Error::Plot("nothing to plot: the compare has no runs".into()));
    }
    let cols = panels.len().min(COLUMNS);
    let rows = panels.len().div_ceil(COLUMNS);
    let mut out = String::new();
    {
        let size = (PANEL.0 * cols as u32, PANEL.1 * rows as u32);
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let areas = root.split_evenly((rows, cols));
        for (area, p) in areas.iter().zip(&panels) {
            draw_panel(area, p, &report.mode)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(out)
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, plotters::coord::Shift>, p: &Panel, mode: &str) -> Result<()> {
    let n = p.budgets.len() as i32;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{} ({mode})", p.dataset), ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(-1..n, 0f64..1.0)
        .map_err(plot_error)?;
    let labels = p.budgets.clone();
    chart
        .configure_mesh()
        .x_labels(p.budgets.len() + 2)
        .x_label_formatter(&|x| usize::try_from(*x).ok().and_then(|i| labels.get(i)).cloned().unwrap_or_default())
        .x_desc("budget")
        .y_desc(p.metric)
        .draw()
        .map_err(plot_error)?;
    for (i, (policy, ys)) in p.lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(i32, f64)> = ys.iter().enumerate().filter_map(|(x, y)| y.map(|y| (x as i32, y))).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(plot_error)?
            .label(policy.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        chart.draw_series(points.into_iter().map(|pt| Circle::new(pt, 3, color.filled()))).map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dataset: &str, policy: &str, budget: serde_json::Value, evidence: Option<f64>, long: Option<f64>) -> RunResult {
        RunResult { dataset: dataset.into(), policy: policy.into(), budget, evidence_recall: evidence, long_range_recall: long, ..RunResult::default() }
    }

    fn report() -> CompareReport {
        CompareReport {
            runs: vec![
                run("locomo", "ctxwin", 1000.into(), Some(0.75), None),
                run("locomo", "ctxwin", 2000.into(), Some(0.82), None),
                run("locomo", "rag", 1000.into(), Some(0.64), None),
                run("locomo", "rag", 2000.into(), Some(0.71), None),
                run("mini-swe-agent", "ctxwin", "10%".into(), None, Some(0.86)),
                run("mini-swe-agent", "recency", "10%".into(), None, Some(0.73)),
            ],
            wall_s: 1.0,
            encoding: "o200k_base".into(),
            mode: "lexical".into(),
        }
    }

    #[test]
    fn runs_group_into_one_panel_per_dataset_with_its_headline_metric() {
        let p = panels(&report());
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].dataset.as_str(), p[0].metric), ("locomo", "evidence recall"));
        assert_eq!(p[0].budgets, vec!["1000", "2000"]);
        assert_eq!(p[0].lines, vec![("ctxwin".into(), vec![Some(0.75), Some(0.82)]), ("rag".into(), vec![Some(0.64), Some(0.71)])]);
        assert_eq!((p[1].metric, p[1].budgets.clone()), ("long-range recall", vec!["10%".to_string()]));
    }

    #[test]
    fn the_svg_names_every_dataset_policy_and_budget() -> Result<()> {
        let s = svg(&report())?;
        assert!(s.starts_with("<svg"), "{}", &s[..s.len().min(80)]);
        for needle in ["locomo (lexical)", "mini-swe-agent (lexical)", "ctxwin", "rag", "recency", "2000", "10%", "evidence recall", "long-range recall"] {
            assert!(s.contains(needle), "missing {needle}");
        }
        let empty = CompareReport { runs: Vec::new(), wall_s: 0.0, encoding: "o200k_base".into(), mode: "lexical".into() };
        assert!(matches!(svg(&empty), Err(Error::Plot(_))));
        Ok(())
    }
}
