//! Recording outcomes: latency from the intended send time (coordinated
//! omission corrected) into hdrhistogram, overall and per second, and
//! errors by code.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, 1 µs to 10 minutes, 3
/// significant digits.
fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant bounds are valid")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

#[derive(Debug, Clone)]
struct Second {
    sent: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
    latency: Histogram<u64>,
}

impl Second {
    fn new() -> Second {
        Second {
            sent: 0,
            ok: 0,
            errors: BTreeMap::new(),
            latency: histogram(),
        }
    }
}

/// The error codes by which a node refuses load it will not take on
/// (docs/protocol.md): their latencies are also kept apart.
pub const REFUSALS: [&str; 2] = ["overloaded", "rate_limited"];

/// What one load-generator thread saw. Threads record into their own and
/// are merged at the end; nothing is shared while the load runs.
#[derive(Debug, Clone)]
pub struct Recorder {
    latency: Histogram<u64>,
    rejection_latency: Histogram<u64>,
    refused_latency: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    sent: u64,
    ok: u64,
    seconds: Vec<Second>,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder {
            latency: histogram(),
            rejection_latency: histogram(),
            refused_latency: histogram(),
            errors: BTreeMap::new(),
            sent: 0,
            ok: 0,
            seconds: Vec::new(),
        }
    }

    fn second(&mut self, at: Duration) -> &mut Second {
        let index = usize::try_from(at.as_secs())
            .unwrap_or(usize::MAX)
            .min(1_000_000);
        if self.seconds.len() <= index {
            self.seconds.resize_with(index + 1, Second::new);
        }
        &mut self.seconds[index]
    }

    /// A request was sent; `intended` is its scheduled time from the start.
    pub fn sent(&mut self, intended: Duration) {
        self.sent += 1;
        self.second(intended).sent += 1;
    }

    /// A request finished: `intended` as scheduled, `completed` when its
    /// answer arrived (both from the start of the run). `Err(code)` names
    /// the protocol error code or a client-side failure.
    pub fn finished(&mut self, intended: Duration, completed: Duration, outcome: Result<(), &str>) {
        let latency = micros(completed.saturating_sub(intended));
        match outcome {
            Ok(()) => {
                self.ok += 1;
                let _ = self.latency.record(latency);
                let second = self.second(completed);
                second.ok += 1;
                let _ = second.latency.record(latency);
            }
            Err(code) => {
                *self.errors.entry(code.to_owned()).or_insert(0) += 1;
                let _ = self.rejection_latency.record(latency);
                if REFUSALS.contains(&code) {
                    let _ = self.refused_latency.record(latency);
                }
                *self
                    .second(completed)
                    .errors
                    .entry(code.to_owned())
                    .or_insert(0) += 1;
            }
        }
    }

    /// Adds another thread's recording to this one.
    pub fn merge(&mut self, other: &Recorder) {
        let _ = self.latency.add(&other.latency);
        let _ = self.rejection_latency.add(&other.rejection_latency);
        let _ = self.refused_latency.add(&other.refused_latency);
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_insert(0) += n;
        }
        self.sent += other.sent;
        self.ok += other.ok;
        if self.seconds.len() < other.seconds.len() {
            self.seconds.resize_with(other.seconds.len(), Second::new);
        }
        for (mine, theirs) in self.seconds.iter_mut().zip(&other.seconds) {
            mine.sent += theirs.sent;
            mine.ok += theirs.ok;
            let _ = mine.latency.add(&theirs.latency);
            for (code, n) in &theirs.errors {
                *mine.errors.entry(code.clone()).or_insert(0) += n;
            }
        }
    }

    /// Requests sent.
    pub fn sent_count(&self) -> u64 {
        self.sent
    }

    /// Requests answered successfully.
    pub fn ok_count(&self) -> u64 {
        self.ok
    }

    /// Errors by code.
    pub fn errors(&self) -> &BTreeMap<String, u64> {
        &self.errors
    }

    /// Percentiles of successful requests.
    pub fn latency(&self) -> Percentiles {
        Percentiles::of(&self.latency)
    }

    /// Percentiles of refused or failed requests (how fast a refusal comes).
    pub fn rejection_latency(&self) -> Option<Percentiles> {
        (!self.rejection_latency.is_empty()).then(|| Percentiles::of(&self.rejection_latency))
    }

    /// Percentiles of the node's refusals of excess load only
    /// ([`REFUSALS`]): how fast an overloaded node says no, without the
    /// client's own `client_backlog` (counted at once) or `no_answer`.
    pub fn refused_latency(&self) -> Option<Percentiles> {
        (!self.refused_latency.is_empty()).then(|| Percentiles::of(&self.refused_latency))
    }

    /// The latencies of each second of the run (successes by the second
    /// they were answered in), for an interval log.
    pub fn seconds(&self) -> impl Iterator<Item = (u64, &Histogram<u64>)> {
        self.seconds
            .iter()
            .enumerate()
            .map(|(t, s)| (t as u64, &s.latency))
    }

    /// One point per second of the run.
    pub fn timeline(&self) -> Vec<SecondPoint> {
        self.seconds
            .iter()
            .enumerate()
            .map(|(t, s)| SecondPoint {
                t: t as u64,
                sent: s.sent,
                ok: s.ok,
                errors: s.errors.values().sum(),
                errors_by_code: s.errors.clone(),
                p50_us: s.latency.value_at_quantile(0.50),
                p99_us: s.latency.value_at_quantile(0.99),
                p999_us: s.latency.value_at_quantile(0.999),
                max_us: s.latency.max(),
                partial: false,
            })
            .collect()
    }
}

/// Marks the seconds a run of length `run` did not cover in full: the
/// last, partly scheduled second and the seconds after the end, where only
/// late answers land. Their counts are low because the second was short,
/// not because the appliance slowed, so charts leave them out; the JSON
/// keeps them (with `partial: true`) so that every answer is accounted for.
pub fn mark_partial(timeline: &mut [SecondPoint], run: Duration) {
    let run = run.as_secs_f64();
    for point in timeline {
        point.partial = (point.t + 1) as f64 > run;
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest seen.
    pub max: u64,
    /// Mean.
    pub mean: f64,
    /// Number of samples.
    pub count: u64,
}

impl Percentiles {
    /// The percentiles of a histogram.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        Percentiles {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
            count: h.len(),
        }
    }
}

/// One second of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecondPoint {
    /// Seconds from the start.
    pub t: u64,
    /// Requests scheduled in this second.
    pub sent: u64,
    /// Successful answers that arrived in this second.
    pub ok: u64,
    /// Errors that arrived in this second.
    pub errors: u64,
    /// Errors by code.
    pub errors_by_code: BTreeMap<String, u64>,
    /// Median latency of this second's successes (µs).
    pub p50_us: u64,
    /// 99th percentile (µs).
    pub p99_us: u64,
    /// 99.9th percentile (µs).
    pub p999_us: u64,
    /// Largest (µs).
    pub max_us: u64,
    /// The run did not cover this whole second (see [`mark_partial`]);
    /// charts leave it out.
    pub partial: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_counts_from_the_intended_time() {
        let mut r = Recorder::new();
        // Sent late because the generator stalled: the stall is counted.
        r.sent(Duration::from_millis(0));
        r.finished(Duration::from_millis(0), Duration::from_millis(50), Ok(()));
        assert!(r.latency().p50 >= 49_000, "{:?}", r.latency());
    }

    #[test]
    fn merging_adds_everything() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        for i in 0..100u64 {
            a.sent(Duration::from_millis(i * 20));
            a.finished(
                Duration::from_millis(i * 20),
                Duration::from_millis(i * 20 + 1),
                Ok(()),
            );
            b.sent(Duration::from_millis(i * 20));
            b.finished(
                Duration::from_millis(i * 20),
                Duration::from_millis(i * 20 + 1),
                Err("overloaded"),
            );
        }
        a.merge(&b);
        assert_eq!(a.sent_count(), 200);
        assert_eq!(a.ok_count(), 100);
        assert_eq!(a.errors().get("overloaded"), Some(&100));
        let timeline = a.timeline();
        assert_eq!(timeline.len(), 2);
        assert_eq!(timeline[0].sent, 100);
        assert_eq!(timeline[0].ok + timeline[0].errors, 100);
        assert!(a.rejection_latency().is_some());
        assert_eq!(a.refused_latency().map(|p| p.count), Some(100));
    }

    #[test]
    fn refusals_by_the_node_are_timed_apart_from_client_side_failures() {
        let mut r = Recorder::new();
        let at = Duration::from_millis(10);
        // The client's own backlog is counted at once, a lost answer late:
        // neither says how fast the node refuses.
        r.finished(at, at, Err("client_backlog"));
        r.finished(at, at + Duration::from_secs(5), Err("no_answer"));
        assert!(r.refused_latency().is_none());
        r.finished(at, at + Duration::from_millis(3), Err("overloaded"));
        r.finished(at, at + Duration::from_millis(5), Err("rate_limited"));
        let refused = r.refused_latency().expect("two refusals");
        assert_eq!(refused.count, 2);
        assert!(refused.p50 >= 2_990 && refused.max <= 5_010, "{refused:?}");
        assert_eq!(r.rejection_latency().map(|p| p.count), Some(4));
    }

    #[test]
    fn only_seconds_the_run_did_not_cover_in_full_are_partial() {
        let mut r = Recorder::new();
        for ms in [0u64, 1_500, 2_400, 2_600] {
            let at = Duration::from_millis(ms);
            r.sent(at);
            r.finished(at, at + Duration::from_millis(450), Ok(()));
        }
        let mut timeline = r.timeline();
        assert!(timeline.iter().all(|p| !p.partial));
        // A 2.5 s run: seconds 0 and 1 are whole, 2 is cut short, 3 holds
        // only a late answer.
        mark_partial(&mut timeline, Duration::from_millis(2_500));
        let partial: Vec<bool> = timeline.iter().map(|p| p.partial).collect();
        assert_eq!(partial, [false, false, true, true]);
        // A whole-second run: only what came after its end.
        mark_partial(&mut timeline, Duration::from_secs(3));
        let partial: Vec<bool> = timeline.iter().map(|p| p.partial).collect();
        assert_eq!(partial, [false, false, false, true]);
    }
}
