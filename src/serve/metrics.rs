//! Prometheus metrics in the text exposition format, kept by hand (a few counters and histograms
//! behind mutexes): requests by route, method and status; request latency by route; assemble time;
//! sessions open; store errors.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the latency histograms, seconds.
const BUCKETS: [f64; 16] = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];
/// Recent assemble times kept for the quantiles.
const RECENT: usize = 1 << 16;

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, s: f64) {
        for (c, b) in self.counts.iter_mut().zip(BUCKETS) {
            if s <= b {
                *c += 1;
            }
        }
        self.count += 1;
        self.sum += s;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (c, b) in self.counts.iter().zip(BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    assemble: Mutex<(Histogram, VecDeque<f64>)>,
    /// The CPU time of the last assembles (the thread's own, so time spent preempted by other
    /// threads on a saturated machine is not in it).
    assemble_cpu: Mutex<VecDeque<f64>>,
    store_errors: AtomicU64,
}

/// CPU time of the calling thread in seconds (`CLOCK_THREAD_CPUTIME_ID`), where the platform has it.
pub(crate) fn thread_cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `clock_gettime` only writes one `timespec` through the valid pointer it is given.
        let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        (r == 0).then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The `q` quantile of `v` (sorted in place), `None` when empty.
fn quantile(v: &mut [f64], q: f64) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let i = ((v.len().checked_sub(1)?) as f64 * q).round() as usize;
    v.get(i).copied()
}

impl Metrics {
    /// Counts a request to `route` answered with `status` after `seconds`.
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((route.to_string(), method.to_string(), status)).or_default() += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            l.entry(route.to_string()).or_default().observe(seconds);
        }
    }

    /// Records the wall time of one `Session::assemble` (catching up with other writers, then
    /// planning).
    pub fn assemble(&self, seconds: f64) {
        if let Ok(mut a) = self.assemble.lock() {
            a.0.observe(seconds);
            if a.1.len() == RECENT {
                a.1.pop_front();
            }
            a.1.push_back(seconds);
        }
    }

    /// Counts a store failure.
    pub fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The quantile `q` of the recent assemble times, seconds (`None` before the first).
    pub fn assemble_quantile(&self, q: f64) -> Option<f64> {
        let a = self.assemble.lock().ok()?;
        let mut v: Vec<f64> = a.1.iter().copied().collect();
        quantile(&mut v, q)
    }

    /// Records the thread CPU time of one `Session::assemble`.
    pub fn assemble_cpu(&self, seconds: f64) {
        if let Ok(mut a) = self.assemble_cpu.lock() {
            if a.len() == RECENT {
                a.pop_front();
            }
            a.push_back(seconds);
        }
    }

    /// The `q` quantile of the last assembles' CPU time, seconds.
    pub fn assemble_cpu_quantile(&self, q: f64) -> Option<f64> {
        let mut v: Vec<f64> = self.assemble_cpu.lock().ok()?.iter().copied().collect();
        quantile(&mut v, q)
    }

    /// The exposition text; `sessions_open` and `sessions_bytes` are read from the session table.
    pub fn render(&self, sessions_open: usize, sessions_bytes: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP ctxwin_http_requests_total HTTP requests answered, by route, method and status.\n");
        out.push_str("# TYPE ctxwin_http_requests_total counter\n");
        if let Ok(r) = self.requests.lock() {
            for ((route, method, status), n) in r.iter() {
                let _ = writeln!(out, "ctxwin_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}");
            }
        }
        out.push_str("# HELP ctxwin_http_request_duration_seconds Time to answer a request, by route.\n");
        out.push_str("# TYPE ctxwin_http_request_duration_seconds histogram\n");
        if let Ok(l) = self.latency.lock() {
            for (route, h) in l.iter() {
                h.write(&mut out, "ctxwin_http_request_duration_seconds", &format!("route=\"{route}\""));
            }
        }
        out.push_str("# HELP ctxwin_assemble_seconds Time of Session::assemble in the window route (the catch-up with other writers, then planning; rendering excluded).\n");
        out.push_str("# TYPE ctxwin_assemble_seconds histogram\n");
        if let Ok(a) = self.assemble.lock() {
            a.0.write(&mut out, "ctxwin_assemble_seconds", "");
        }
        out.push_str("# HELP ctxwin_assemble_recent_seconds Quantiles of the last 65536 assemble times.\n");
        out.push_str("# TYPE ctxwin_assemble_recent_seconds gauge\n");
        for q in [0.5, 0.9, 0.99] {
            if let Some(v) = self.assemble_quantile(q) {
                let _ = writeln!(out, "ctxwin_assemble_recent_seconds{{quantile=\"{q}\"}} {v}");
            }
        }
        out.push_str("# HELP ctxwin_assemble_cpu_recent_seconds Quantiles of the thread CPU time of the last 65536 assembles.\n");
        out.push_str("# TYPE ctxwin_assemble_cpu_recent_seconds gauge\n");
        for q in [0.5, 0.9, 0.99] {
            if let Some(v) = self.assemble_cpu_quantile(q) {
                let _ = writeln!(out, "ctxwin_assemble_cpu_recent_seconds{{quantile=\"{q}\"}} {v}");
            }
        }
        out.push_str("# HELP ctxwin_sessions_open Sessions held open (hot) in memory.\n# TYPE ctxwin_sessions_open gauge\n");
        let _ = writeln!(out, "ctxwin_sessions_open {sessions_open}");
        out.push_str("# HELP ctxwin_sessions_open_bytes Estimated memory of the open sessions, bytes.\n# TYPE ctxwin_sessions_open_bytes gauge\n");
        let _ = writeln!(out, "ctxwin_sessions_open_bytes {sessions_bytes}");
        out.push_str("# HELP ctxwin_store_errors_total Store failures (locked, full, read-only, unreachable, damaged).\n");
        out.push_str("# TYPE ctxwin_store_errors_total counter\n");
        let _ = writeln!(out, "ctxwin_store_errors_total {}", self.store_errors.load(Ordering::Relaxed));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_quantiles_exact() {
        let m = Metrics::default();
        for s in [0.0002, 0.004, 0.004, 2.0] {
            m.assemble(s);
        }
        m.request("/healthz", "GET", 200, 0.0001);
        let text = m.render(3, 10);
        assert!(text.contains("ctxwin_assemble_seconds_bucket{le=\"0.00025\"} 1\n"), "{text}");
        assert!(text.contains("ctxwin_assemble_seconds_bucket{le=\"0.005\"} 3\n"), "{text}");
        assert!(text.contains("ctxwin_assemble_seconds_bucket{le=\"+Inf\"} 4\n"), "{text}");
        assert!(text.contains("ctxwin_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 1\n"), "{text}");
        assert!(text.contains("ctxwin_sessions_open 3\n"));
        assert_eq!(m.assemble_quantile(0.5), Some(0.004));
        assert_eq!(m.assemble_quantile(1.0), Some(2.0));
    }

    #[test]
    fn thread_cpu_time_counts_work_not_sleep() {
        let m = Metrics::default();
        assert_eq!(m.assemble_cpu_quantile(0.5), None);
        // Sleeping costs (almost) no CPU time; work does, and the clock moves with it.
        let a = thread_cpu_seconds().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let slept = thread_cpu_seconds().unwrap() - a;
        assert!(slept < 0.01, "a 50 ms sleep took {slept} s of CPU");
        let b = thread_cpu_seconds().unwrap();
        let mut x = 0u64;
        while thread_cpu_seconds().unwrap() - b < 0.02 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(x > 0);
        for s in [0.003, 0.001, 0.002] {
            m.assemble_cpu(s);
        }
        assert_eq!(m.assemble_cpu_quantile(0.5), Some(0.002));
        assert!(m.render(0, 0).contains("ctxwin_assemble_cpu_recent_seconds{quantile=\"0.5\"} 0.002\n"));
    }
}
