//! When requests are meant to be sent: an open-loop arrival schedule.
//!
//! The schedule is computed from the rate profile alone, never from how fast
//! the server answers: a slow answer does not delay the next send, and
//! latency is measured from the intended send time, so a stall shows up in
//! the histogram instead of being hidden by the load generator waiting
//! (coordinated omission).

use std::time::Duration;

/// How the arrival rate changes over a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateProfile {
    /// The same rate for the whole run.
    Constant {
        /// Requests per second.
        rate: f64,
        /// Run length.
        duration: Duration,
    },
    /// Monday 9 AM: a steady base rate, a ramp up to the peak, the peak held,
    /// a ramp down, and the base again.
    Monday {
        /// Steady rate before and after the spike (requests per second).
        base: f64,
        /// Peak rate.
        peak: f64,
        /// Time at base before the spike.
        before: Duration,
        /// Length of each ramp (up and down).
        ramp: Duration,
        /// Time held at the peak.
        hold: Duration,
        /// Time at base after the spike.
        after: Duration,
    },
}

impl RateProfile {
    /// Total length of the run.
    pub fn duration(&self) -> Duration {
        match *self {
            RateProfile::Constant { duration, .. } => duration,
            RateProfile::Monday {
                before,
                ramp,
                hold,
                after,
                ..
            } => before + ramp + hold + ramp + after,
        }
    }

    /// The intended rate (requests per second) at `t` after the start.
    pub fn rate_at(&self, t: Duration) -> f64 {
        match *self {
            RateProfile::Constant { rate, .. } => rate,
            RateProfile::Monday {
                base,
                peak,
                before,
                ramp,
                hold,
                ..
            } => {
                let t = t.as_secs_f64();
                let up_start = before.as_secs_f64();
                let up_end = up_start + ramp.as_secs_f64();
                let down_start = up_end + hold.as_secs_f64();
                let down_end = down_start + ramp.as_secs_f64();
                let ramp_secs = ramp.as_secs_f64().max(f64::EPSILON);
                if t < up_start || t >= down_end {
                    base
                } else if t < up_end {
                    base + (peak - base) * (t - up_start) / ramp_secs
                } else if t < down_start {
                    peak
                } else {
                    peak - (peak - base) * (t - down_start) / ramp_secs
                }
            }
        }
    }

    /// The highest rate anywhere in the run.
    pub fn peak_rate(&self) -> f64 {
        match *self {
            RateProfile::Constant { rate, .. } => rate,
            RateProfile::Monday { base, peak, .. } => base.max(peak),
        }
    }
}

/// The intended send times of a run, in order: each gap is the inverse of
/// the rate at that moment. Iterating yields offsets from the start.
#[derive(Debug, Clone)]
pub struct Arrivals {
    profile: RateProfile,
    next: Duration,
    end: Duration,
}

impl Arrivals {
    /// The arrivals of `profile`.
    pub fn new(profile: RateProfile) -> Arrivals {
        Arrivals {
            profile,
            next: Duration::ZERO,
            end: profile.duration(),
        }
    }
}

impl Iterator for Arrivals {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        while self.next < self.end {
            let at = self.next;
            let rate = self.profile.rate_at(at);
            if rate <= 0.0 {
                // Nothing to send at this moment: look again in a millisecond.
                self.next += Duration::from_millis(1);
                continue;
            }
            self.next += Duration::from_secs_f64(1.0 / rate);
            return Some(at);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_sends_rate_times_duration() {
        let arrivals = Arrivals::new(RateProfile::Constant {
            rate: 1000.0,
            duration: Duration::from_secs(3),
        });
        let count = arrivals.count();
        assert!((2999..=3001).contains(&count), "{count}");
    }

    #[test]
    fn monday_profile_ramps_holds_and_returns() {
        let profile = RateProfile::Monday {
            base: 100.0,
            peak: 1000.0,
            before: Duration::from_secs(10),
            ramp: Duration::from_secs(10),
            hold: Duration::from_secs(10),
            after: Duration::from_secs(10),
        };
        assert_eq!(profile.duration(), Duration::from_secs(50));
        assert_eq!(profile.rate_at(Duration::from_secs(5)), 100.0);
        assert!((profile.rate_at(Duration::from_secs(15)) - 550.0).abs() < 1e-9);
        assert_eq!(profile.rate_at(Duration::from_secs(25)), 1000.0);
        assert!((profile.rate_at(Duration::from_secs(35)) - 550.0).abs() < 1e-9);
        assert_eq!(profile.rate_at(Duration::from_secs(45)), 100.0);
        // Integral: 20 s at 100 + 2 ramps of 10 s averaging 550 + 10 s at 1000.
        let expected = 20.0 * 100.0 + 2.0 * 10.0 * 550.0 + 10.0 * 1000.0;
        let count = Arrivals::new(profile).count() as f64;
        assert!(
            (count - expected).abs() / expected < 0.01,
            "{count} vs {expected}"
        );
    }

    #[test]
    fn arrivals_are_strictly_increasing() {
        let times: Vec<Duration> = Arrivals::new(RateProfile::Constant {
            rate: 50_000.0,
            duration: Duration::from_millis(100),
        })
        .collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]));
    }
}
