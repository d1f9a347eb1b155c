//! Admission control: per-tenant rate budgets that workers share without a
//! lock. Each budget is a GCRA (generic cell rate algorithm, the token
//! bucket as one number): a single atomic "theoretical arrival time",
//! advanced with compare-and-swap, so a tenant far over its budget is
//! refused in a few nanoseconds and never slows anyone else down.
//!
//! The global in-flight limit lives in the QUIC listener
//! ([`crate::quic::QuicLimits`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A tenant's rate budget: `rate` requests per second on average, bursts of
/// up to `burst` at once.
#[derive(Debug)]
pub struct RateBudget {
    origin: Instant,
    /// Nanoseconds between requests at the sustained rate.
    interval_ns: u64,
    /// How far ahead of `now` the arrival time may run: the burst.
    tolerance_ns: u64,
    /// Theoretical arrival time, nanoseconds since `origin`.
    arrival_ns: AtomicU64,
}

impl RateBudget {
    /// A budget of `rate` per second (at least 1) with bursts of `burst`
    /// (at least 1).
    pub fn new(rate: u32, burst: u32) -> RateBudget {
        let interval_ns = 1_000_000_000 / u64::from(rate.max(1));
        RateBudget {
            origin: Instant::now(),
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(u64::from(burst.max(1)).saturating_sub(1)),
            arrival_ns: AtomicU64::new(0),
        }
    }

    /// The sustained rate, per second.
    pub fn rate(&self) -> u64 {
        1_000_000_000 / self.interval_ns.max(1)
    }

    /// Takes one request's worth of budget at `now`; `false` means refuse
    /// (`rate_limited`), and nothing was taken.
    pub fn try_acquire(&self, now: Instant) -> bool {
        let now_ns = u64::try_from(now.saturating_duration_since(self.origin).as_nanos())
            .unwrap_or(u64::MAX);
        let mut arrival = self.arrival_ns.load(Ordering::Relaxed);
        loop {
            let start = arrival.max(now_ns);
            if start - now_ns > self.tolerance_ns {
                return false;
            }
            match self.arrival_ns.compare_exchange_weak(
                arrival,
                start + self.interval_ns,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(current) => arrival = current,
            }
        }
    }

    /// How long until one more request would be admitted (zero if now).
    pub fn wait_hint(&self, now: Instant) -> Duration {
        let now_ns = u64::try_from(now.saturating_duration_since(self.origin).as_nanos())
            .unwrap_or(u64::MAX);
        let arrival = self.arrival_ns.load(Ordering::Relaxed);
        Duration::from_nanos(
            arrival
                .saturating_sub(now_ns)
                .saturating_sub(self.tolerance_ns),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_the_burst_then_the_rate() {
        let budget = RateBudget::new(1000, 10);
        let t0 = Instant::now();
        let admitted = (0..50).filter(|_| budget.try_acquire(t0)).count();
        assert_eq!(admitted, 10, "a burst of 10 at one instant");
        // One more per millisecond after that.
        assert!(!budget.try_acquire(t0 + Duration::from_micros(500)));
        assert!(budget.try_acquire(t0 + Duration::from_millis(1)));
        // Over one simulated second at 3x the rate, about the rate gets in.
        let mut admitted = 0;
        for i in 0..3000u64 {
            if budget.try_acquire(t0 + Duration::from_millis(2) + Duration::from_micros(i * 333)) {
                admitted += 1;
            }
        }
        assert!((990..=1012).contains(&admitted), "admitted {admitted}");
    }

    #[test]
    fn threads_share_one_budget_exactly() {
        let budget = std::sync::Arc::new(RateBudget::new(1, 1000));
        let t0 = Instant::now();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let budget = std::sync::Arc::clone(&budget);
                std::thread::spawn(move || (0..1000).filter(|_| budget.try_acquire(t0)).count())
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
        assert_eq!(
            total, 1000,
            "exactly the burst, however the threads interleave"
        );
    }
}
