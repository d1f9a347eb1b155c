//! What a run shows while it runs, on stderr: an indicatif bar on a
//! terminal, and a plain line every few seconds when stderr is a file or a
//! pipe (a bar there shows nothing until the end, or garbage).

use std::time::Duration;

/// How often the plain progress line is printed when stderr is not a
/// terminal (shorter runs: see [`plain_every`]).
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// The plain line's interval for a run of `total`: [`PLAIN_EVERY`], or
/// half the run when that is shorter (a 2 s run still shows its progress),
/// but not under a second.
pub fn plain_every(total: Duration) -> Duration {
    PLAIN_EVERY.min(total / 2).max(Duration::from_secs(1))
}

/// Counters at one moment of the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    /// Time since the load started.
    pub elapsed: Duration,
    /// Planned run length.
    pub total: Duration,
    /// Requests sent so far.
    pub sent: u64,
    /// Successful answers so far.
    pub ok: u64,
    /// Errors so far.
    pub errors: u64,
}

/// One plain progress line: elapsed of planned seconds, the counters, and
/// the achieved rate since the previous line (`ok_before` successes
/// `interval` ago).
pub fn plain_line(now: &Snapshot, ok_before: u64, interval: Duration) -> String {
    let seconds = interval.as_secs_f64();
    let rate = if seconds > 0.0 {
        now.ok.saturating_sub(ok_before) as f64 / seconds
    } else {
        0.0
    };
    format!(
        "[{:>4.0}s/{:.0}s] sent {}  ok {}  errors {}  achieved {:.0}/s",
        now.elapsed.as_secs_f64(),
        now.total.as_secs_f64(),
        now.sent,
        now.ok,
        now.errors,
        rate
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_line_shows_counters_and_the_rate_since_the_last_line() {
        let now = Snapshot {
            elapsed: Duration::from_secs(10),
            total: Duration::from_secs(30),
            sent: 10_000,
            ok: 9_990,
            errors: 10,
        };
        assert_eq!(
            plain_line(&now, 4_990, Duration::from_secs(5)),
            "[  10s/30s] sent 10000  ok 9990  errors 10  achieved 1000/s"
        );
        assert_eq!(plain_every(Duration::from_secs(30)), PLAIN_EVERY);
        assert_eq!(plain_every(Duration::from_secs(4)), Duration::from_secs(2));
        assert_eq!(
            plain_every(Duration::from_millis(500)),
            Duration::from_secs(1)
        );
        // No interval yet: no rate rather than a division by zero.
        assert!(plain_line(&now, 0, Duration::ZERO).ends_with("achieved 0/s"));
    }
}
