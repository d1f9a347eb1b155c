//! What `sigil directory seed` tells a person once it is done: the
//! tenants, users, apps and SPs it made, a call to try, and how to get a
//! caller that may act for the seeded tenants (the demo front end may not);
//! and the one password hash the seed stores for its users.

use directory::seed::{
    tenant_slug, user_login, DEMO_APPS, DEMO_SPS, PASSWORD_USERS, SEED_PASSWORD,
};

use crate::auth::password::{self, HashParams};

/// The PHC string of [`SEED_PASSWORD`] at the default argon2id parameters
/// (a tenant without `auth_settings` verifies at these, so no sign-in
/// upgrades it): made once per seeding, stored for the first
/// [`PASSWORD_USERS`] users of every tenant. One hash means one salt for
/// all of them: acceptable in a load-test directory only.
///
/// # Errors
/// When argon2 or the random source fails.
pub fn password_hash() -> anyhow::Result<String> {
    password::hash(SEED_PASSWORD.as_bytes(), HashParams::default())
        .map_err(|e| anyhow::anyhow!("hashing the seed password: {e}"))
}

/// How many of the largest tenants are named with their user counts.
const LARGEST_NAMED: usize = 5;

/// The report of a seeding of `sizes.len()` tenants (users per tenant,
/// largest first, as `SeedPlan::sizes` gives them) and `users` in total,
/// done in `seconds`.
pub fn summary(sizes: &[u64], users: u64, seconds: f64) -> serde_json::Value {
    let tenants = sizes.len() as u64;
    let largest: Vec<serde_json::Value> = sizes
        .iter()
        .take(LARGEST_NAMED)
        .enumerate()
        .map(|(index, size)| {
            serde_json::json!({"tenant": tenant_slug(index as u64 + 1), "users": size})
        })
        .collect();
    let first = tenant_slug(1);
    let smallest = sizes.last().copied().unwrap_or(0);
    let app = DEMO_APPS
        .iter()
        .find(|(_, alg)| *alg == "EdDSA")
        .map_or(DEMO_APPS[0].0, |(name, _)| *name);
    serde_json::json!({
        "tenants": tenants,
        "users": users,
        "largest_tenants": sizes.iter().take(LARGEST_NAMED).collect::<Vec<_>>(),
        "median_tenant": sizes.get(sizes.len() / 2).copied().unwrap_or(0),
        "seconds": seconds,
        "tenant_names": format!("{first} … {} (largest first)", tenant_slug(tenants)),
        "largest": largest,
        "user_names": format!(
            "{} … {} in {first}; every tenant's users are {} … user<its user count> (at least {smallest})",
            user_login(1),
            user_login(sizes.first().copied().unwrap_or(0)),
            user_login(1)
        ),
        "passwords": format!(
            "{} … {} of every tenant (all of a smaller one's) have the load-test password {SEED_PASSWORD:?} (one argon2id hash, one salt: a load-test directory only); the others have none",
            user_login(1),
            user_login(PASSWORD_USERS)
        ),
        "auth_load": format!(
            "sigil-perf load --cert-dir var/credentials/seeded --seeded {tenants},{users},{},{} --mix authenticate --rate 20 --duration 30s",
            tenants.min(20),
            users.min(200)
        ),
        "apps": DEMO_APPS.iter().map(|(name, alg)| serde_json::json!({"name": name, "alg": alg})).collect::<Vec<_>>(),
        "sps": DEMO_SPS.iter().map(|(name, alg)| serde_json::json!({"name": name, "alg": alg})).collect::<Vec<_>>(),
        "caller": "the demo front end may act only for the demo tenants (seeded ones answer forbidden); mint a caller that may act for all tenants, then pass --cert-dir:",
        "make_caller": "sigil admin frontend add --name seeded --tenants '*' --trusted-assertions --out var/credentials/seeded",
        "try": format!(
            "sigil client id-token --cert-dir var/credentials/seeded --tenant {first} --user {} --app {app}",
            user_login(1)
        ),
        "load": format!(
            "sigil-perf load --cert-dir var/credentials/seeded --seeded {tenants},{users},{},{} --rate 1000 --duration 30s",
            tenants.min(20),
            users.min(200)
        ),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use directory::seed::SeedPlan;

    #[test]
    fn the_summary_names_what_was_made_and_how_to_call_it() {
        let sizes = SeedPlan::new(100, 10_000).sizes();
        let printed = summary(&sizes, 10_000, 1.5);
        // What it printed before stays.
        assert_eq!(printed["tenants"], 100);
        assert_eq!(printed["users"], 10_000);
        assert_eq!(printed["largest_tenants"][0], sizes[0]);
        assert_eq!(printed["tenant_names"], "seed-1 … seed-100 (largest first)");
        assert_eq!(printed["largest"][0]["tenant"], "seed-1");
        assert_eq!(printed["largest"][0]["users"], sizes[0]);
        assert_eq!(printed["largest"].as_array().map(Vec::len), Some(5));
        assert!(printed["user_names"]
            .as_str()
            .is_some_and(|s| s.starts_with(&format!("user1 … user{} in seed-1", sizes[0]))));
        assert_eq!(
            printed["apps"].as_array().map(Vec::len),
            Some(DEMO_APPS.len())
        );
        assert_eq!(printed["sps"][0]["name"], DEMO_SPS[0].0);
        assert_eq!(
            printed["try"],
            "sigil client id-token --cert-dir var/credentials/seeded --tenant seed-1 --user user1 --app app-eddsa"
        );
        assert!(printed["passwords"].as_str().is_some_and(|s| s
            .starts_with("user1 … user256 of every tenant")
            && s.contains(SEED_PASSWORD)));
        let hash = password_hash().unwrap();
        assert!(
            password::verify(SEED_PASSWORD.as_bytes(), &hash, HashParams::default())
                .unwrap()
                .matches
        );
        assert!(printed["make_caller"]
            .as_str()
            .is_some_and(|s| s.contains("--tenants '*'")));
    }
}
