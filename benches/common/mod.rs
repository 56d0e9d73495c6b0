//! Helpers shared by the benches (`mod common;` in each).

use ctxwin::Window;

/// Unwraps a setup or measured result, naming what failed (a bench has no caller to report to).
pub fn must<T>(r: ctxwin::Result<T>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Checks a window: within its budget and not empty.
pub fn check(w: &Window, budget: usize) {
    assert!(w.total_tokens() <= budget, "window of {} tokens over the budget of {budget}", w.total_tokens());
    assert!(!w.messages().is_empty(), "empty window");
}
