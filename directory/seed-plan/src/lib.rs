//! The shape of a seeded directory: how many users each synthetic tenant
//! gets (a Zipf-like spread: a few with hundreds of thousands of users,
//! most with tens) and what the tenants and users are called.
//!
//! Pure arithmetic and naming, no I/O. `directory::seed` loads a directory
//! in this shape (`sigil directory seed`); `sigil-perf --seeded` picks its
//! load's tenants and users from the same plan without depending on the
//! directory or Postgres.
#![forbid(unsafe_code)]

/// How much to seed.
#[derive(Debug, Clone, Copy)]
pub struct SeedPlan {
    /// Tenants to create (`seed-{n}`).
    pub tenants: u64,
    /// Users in total.
    pub users: u64,
    /// Zipf exponent of tenant sizes (1.2 by default).
    pub exponent: f64,
    /// Users every tenant gets before the Zipf share (10 by default).
    pub floor: u64,
}

impl SeedPlan {
    /// `tenants` and `users` with the default spread.
    pub fn new(tenants: u64, users: u64) -> SeedPlan {
        SeedPlan {
            tenants,
            users,
            exponent: 1.2,
            floor: 10,
        }
    }

    /// The number of users of each tenant, largest first; sums to `users`.
    pub fn sizes(&self) -> Vec<u64> {
        let n = self.tenants.max(1);
        let floor = self.floor.min(self.users / n);
        let rest = self.users - floor * n;
        let weights: Vec<f64> = (1..=n)
            .map(|rank| 1.0 / (rank as f64).powf(self.exponent))
            .collect();
        let total: f64 = weights.iter().sum();
        let mut sizes: Vec<u64> = weights
            .iter()
            .map(|w| floor + (rest as f64 * w / total) as u64)
            .collect();
        let assigned: u64 = sizes.iter().sum();
        // Rounding leftovers go to the smallest tenants, one each.
        let mut short = self.users.saturating_sub(assigned);
        for size in sizes.iter_mut().rev() {
            if short == 0 {
                break;
            }
            *size += 1;
            short -= 1;
        }
        sizes
    }
}

/// The slug of seeded tenant `n` (from 1).
pub fn tenant_slug(n: u64) -> String {
    format!("seed-{n}")
}

/// The login of seeded user `n` (from 1) of any seeded tenant.
pub fn user_login(n: u64) -> String {
    format!("user{n}")
}

/// The password of every seeded user that has one: a load-test password,
/// published here so that `sigil-perf --mix authenticate` can sign in.
/// A seeded directory is for load tests only.
pub const SEED_PASSWORD: &str = "sigil-seed-load-test";

/// How many users of each seeded tenant get [`SEED_PASSWORD`]: `user1` …
/// `user256` (all of a smaller tenant's). argon2id at the default
/// parameters costs tens of milliseconds per hash, so the seed hashes the
/// password once per run and stores that one PHC string (one salt) for
/// these users; the rest have no password (`authenticate` answers them
/// `invalid_credentials`, after a full verification against a dummy hash).
pub const PASSWORD_USERS: u64 = 256;

/// The password of seeded user `n` (from 1) of any seeded tenant, if the
/// seed gave it one.
pub fn password_of(n: u64) -> Option<&'static str> {
    (1..=PASSWORD_USERS).contains(&n).then_some(SEED_PASSWORD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_zipf_like_and_sum_up() {
        let plan = SeedPlan::new(19_000, 1_000_000);
        let sizes = plan.sizes();
        assert_eq!(sizes.iter().sum::<u64>(), 1_000_000);
        assert!(
            sizes[0] > 100_000,
            "the largest tenant has hundreds of thousands: {}",
            sizes[0]
        );
        let median = sizes[sizes.len() / 2];
        assert!(
            (10..100).contains(&median),
            "most have tens: median {median}"
        );
        assert!(sizes.windows(2).all(|w| w[0] + 1 >= w[1]));
    }

    #[test]
    fn names_are_those_the_directory_is_seeded_with() {
        assert_eq!(tenant_slug(1), "seed-1");
        assert_eq!(user_login(42), "user42");
        assert_eq!(password_of(1), Some(SEED_PASSWORD));
        assert_eq!(password_of(PASSWORD_USERS), Some(SEED_PASSWORD));
        assert_eq!(password_of(PASSWORD_USERS + 1), None);
        assert_eq!(password_of(0), None);
    }
}
