//! A latency histogram of plain atomics, rendered in the Prometheus text
//! format: recording is one uncontended atomic add per bucket and sum, never
//! a lock, so the hot path (signing) and the audit writer (its syncs) can
//! afford one per event. `/metrics` walks them when scraped.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Histogram bucket upper bounds, in microseconds (Prometheus `le` in seconds).
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    5_000_000,
];

/// A latency histogram of atomics (cumulative buckets are computed when
/// rendered).
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn record(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let index = LATENCY_BUCKETS_US
            .iter()
            .position(|&bound| us <= bound)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The sum of the observations.
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_us.load(Ordering::Relaxed))
    }

    /// The upper bound of the highest bucket holding an observation: the
    /// largest is at most this (`Duration::MAX` past the last bound, `None`
    /// when empty).
    pub fn max_bound(&self) -> Option<Duration> {
        let highest = self
            .buckets
            .iter()
            .rposition(|b| b.load(Ordering::Relaxed) > 0)?;
        Some(
            LATENCY_BUCKETS_US
                .get(highest)
                .map_or(Duration::MAX, |&us| Duration::from_micros(us)),
        )
    }

    /// Appends the histogram as `name{labels,le=...}` lines.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in LATENCY_BUCKETS_US.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        cumulative += self.buckets[LATENCY_BUCKETS_US.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        // An empty label set is left out: `name_sum 1`, not `name_sum{} 1`.
        let braced = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{braced} {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{braced} {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_renders_cumulative_buckets() {
        let h = LatencyHistogram::default();
        h.record(Duration::from_micros(40));
        h.record(Duration::from_micros(700));
        h.record(Duration::from_secs(10));
        let mut out = String::new();
        h.render(&mut out, "x", "tenant=\"acme\"");
        assert!(
            out.contains("x_bucket{tenant=\"acme\",le=\"0.00005\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{tenant=\"acme\",le=\"0.001\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{tenant=\"acme\",le=\"5\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{tenant=\"acme\",le=\"+Inf\"} 3"),
            "{out}"
        );
        assert!(out.contains("x_count{tenant=\"acme\"} 3"), "{out}");
        assert_eq!(h.count(), 3);
        let mut out = String::new();
        h.render(&mut out, "y", "");
        assert!(out.contains("y_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("\ny_sum 10.00074\ny_count 3\n"), "{out}");
    }
}
