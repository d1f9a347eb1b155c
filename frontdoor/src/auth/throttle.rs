//! Per-client-IP throttling of failed sign-ins, on this node: each
//! (tenant, address) may fail `burst` times, refilled at `per_minute`; an
//! address past its budget is answered `rate_limited` before any hashing,
//! so one source cannot spend the hashing pool on one tenant's users. The
//! lockout of a user (in the directory) holds across nodes; this holds
//! per node, which bounds a source by nodes × budget.

use std::collections::HashMap;
use std::sync::Mutex;

/// Most addresses remembered; the oldest half is forgotten past it.
const MAX_TRACKED: usize = 100_000;

/// Settings (docs/config.md, `[auth]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures an address may make at once.
    pub burst: u32,
    /// Failures it regains per minute.
    pub per_minute: u32,
}

impl Default for ThrottleSettings {
    fn default() -> ThrottleSettings {
        ThrottleSettings {
            burst: 20,
            per_minute: 20,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

/// The failures per (tenant, client address) on this node.
#[derive(Debug)]
pub struct FailureThrottle {
    settings: ThrottleSettings,
    buckets: Mutex<HashMap<(i64, String), Bucket>>,
}

impl FailureThrottle {
    /// An empty throttle.
    pub fn new(settings: ThrottleSettings) -> FailureThrottle {
        FailureThrottle {
            settings,
            buckets: Mutex::default(),
        }
    }

    fn refilled(&self, bucket: Bucket, now_ms: u64) -> Bucket {
        let gained = now_ms.saturating_sub(bucket.at_ms) as f64 / 60_000.0
            * f64::from(self.settings.per_minute);
        Bucket {
            tokens: (bucket.tokens + gained).min(f64::from(self.settings.burst)),
            at_ms: now_ms,
        }
    }

    /// Whether `address` may try again in `tenant` now (it has failures
    /// left).
    pub fn allows(&self, tenant: i64, address: &str, now_ms: u64) -> bool {
        let Ok(buckets) = self.buckets.lock() else {
            return true;
        };
        buckets
            .get(&(tenant, address.to_owned()))
            .is_none_or(|b| self.refilled(*b, now_ms).tokens >= 1.0)
    }

    /// Counts a failure from `address` in `tenant`.
    pub fn failed(&self, tenant: i64, address: &str, now_ms: u64) {
        let Ok(mut buckets) = self.buckets.lock() else {
            return;
        };
        if buckets.len() >= MAX_TRACKED {
            let mut ages: Vec<u64> = buckets.values().map(|b| b.at_ms).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            buckets.retain(|_, b| b.at_ms > cut);
        }
        let full = Bucket {
            tokens: f64::from(self.settings.burst),
            at_ms: now_ms,
        };
        let key = (tenant, address.to_owned());
        let bucket = buckets.get(&key).copied().unwrap_or(full);
        let mut bucket = self.refilled(bucket, now_ms);
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
        buckets.insert(key, bucket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_past_its_failures_waits_for_the_refill() {
        let throttle = FailureThrottle::new(ThrottleSettings {
            burst: 3,
            per_minute: 6,
        });
        for _ in 0..3 {
            assert!(throttle.allows(1, "10.0.0.1", 0));
            throttle.failed(1, "10.0.0.1", 0);
        }
        assert!(!throttle.allows(1, "10.0.0.1", 0));
        // Another address, another tenant: untouched.
        assert!(throttle.allows(1, "10.0.0.2", 0));
        assert!(throttle.allows(2, "10.0.0.1", 0));
        // One failure regained every 10 s.
        assert!(!throttle.allows(1, "10.0.0.1", 9_000));
        assert!(throttle.allows(1, "10.0.0.1", 10_000));
    }
}
