//! A tenant as the hot path holds it in memory: its directory row, issuer,
//! rate budget, keys, caches and counters. Loaded by `api/tenants.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use directory::Tenant;

use super::cache::Cache;
use super::issue::{LiveApp, LiveSp, UserRecord};
use super::keys::TenantKeys;
use crate::admission::RateBudget;
use crate::metrics::TenantMetrics;

/// A tenant as the hot path holds it.
pub struct TenantLive {
    /// The directory's row.
    pub tenant: Tenant,
    /// Issuer URL.
    pub issuer: String,
    /// Rate budget.
    pub budget: RateBudget,
    /// Budget of `POST oauth2/introspect` (issue 19): the tenant's rate.
    pub introspect_budget: RateBudget,
    /// Budget of `POST oauth2/revoke` (issue 19): the tenant's rate.
    pub revoke_budget: RateBudget,
    /// Keys and documents (swapped on change).
    pub keys: ArcSwap<TenantKeys>,
    /// Users by login.
    pub users: Cache<UserRecord>,
    /// OIDC apps by name.
    pub apps: Cache<LiveApp>,
    /// SAML SPs by name.
    pub sps: Cache<LiveSp>,
    /// Counters.
    pub metrics: TenantMetrics,
    /// The parsed sign-on policy (issue 18, `api/policy_ops.rs`).
    pub policy: super::policy_ops::PolicySlot,
    /// Derives the tenant's persistent SAML NameIDs.
    pub name_id_key: aws_lc_rs::hmac::Key,
    /// The slug, shared with session records.
    pub slug: Arc<str>,
    /// When a request through the API last used it (unix ms).
    pub last_used_ms: AtomicU64,
}

impl std::fmt::Debug for TenantLive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantLive")
            .field("slug", &self.slug)
            .finish_non_exhaustive()
    }
}

impl TenantLive {
    /// The tenant `tenant` with `keys`, its budget from its row (0: the
    /// node's `default_rate`), persistent NameIDs derived from
    /// `name_id_secret` and its slug, last used at `last_used_ms`.
    pub fn new(
        tenant: Tenant,
        issuer: String,
        keys: TenantKeys,
        default_rate: u32,
        name_id_secret: &[u8],
        last_used_ms: u64,
    ) -> TenantLive {
        let rate = match tenant.rate_per_second {
            0 => default_rate,
            rate => rate,
        };
        let burst = match tenant.rate_burst {
            0 => rate,
            burst => burst,
        };
        let mut secret = name_id_secret.to_vec();
        secret.extend_from_slice(tenant.slug.as_bytes());
        TenantLive {
            issuer,
            budget: RateBudget::new(rate, burst),
            introspect_budget: RateBudget::new(rate, burst),
            revoke_budget: RateBudget::new(rate, burst),
            keys: ArcSwap::from_pointee(keys),
            users: Cache::default(),
            apps: Cache::default(),
            sps: Cache::default(),
            metrics: TenantMetrics::default(),
            policy: super::policy_ops::PolicySlot::default(),
            name_id_key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret),
            slug: Arc::from(tenant.slug.as_str()),
            last_used_ms: AtomicU64::new(last_used_ms),
            tenant,
        }
    }

    /// Notes a use at `now_ms`. Stored at most once a second, so workers on
    /// other cores do not fight over the cache line on every request.
    pub fn touch(&self, now_ms: u64) {
        if now_ms >= self.last_used_ms.load(Ordering::Relaxed) + 1_000 {
            self.last_used_ms.store(now_ms, Ordering::Relaxed);
        }
    }

    /// Drops the cached users, apps, SPs and sign-on policy (read again on
    /// next use).
    pub fn clear_caches(&self) {
        self.policy.clear();
        self.users.clear();
        self.apps.clear();
        self.sps.clear();
    }
}
