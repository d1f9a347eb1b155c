//! Per-tenant sign-on policies (issue 18): the `policy.toml` an admin set,
//! with its version. The front door checks a policy before it stores it
//! and parses it into its per-node cache; this crate only stores text.
//! Every change notifies `sigil_changes` (table `signon_policies`).
//!
//! Who calls it: `frontdoor`'s `policy_set` / `policy_show` and the cache
//! that `authenticate` evaluates.

use std::time::SystemTime;

use crate::db::{millis, TenantScope};
use crate::Error;

/// A tenant's stored sign-on policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    /// The `policy.toml` text, as set.
    pub policy: String,
    /// Bumped by every set, from 1.
    pub version: i64,
    /// When it was last set, unix ms.
    pub updated_ms: u64,
}

impl TenantScope<'_> {
    /// The tenant's sign-on policy, if one was ever set.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn signon_policy(&self) -> Result<Option<StoredPolicy>, Error> {
        let row = self
            .client()
            .query_opt(
                "SELECT policy, version, updated_at FROM signon_policies",
                &[],
            )
            .await?;
        row.map(|r| {
            let updated: SystemTime = r.try_get(2)?;
            Ok(StoredPolicy {
                policy: r.try_get(0)?,
                version: r.try_get(1)?,
                updated_ms: millis(updated),
            })
        })
        .transpose()
    }

    /// Stores `policy` as the tenant's (checked by the caller), bumping
    /// its version; returns the new version.
    ///
    /// # Errors
    /// [`Error::Postgres`] (e.g. a text over 64 KiB).
    pub async fn set_signon_policy(&self, policy: &str) -> Result<i64, Error> {
        let row = self
            .client()
            .query_one(
                "INSERT INTO signon_policies (tenant_id, policy) VALUES ($1, $2)
                 ON CONFLICT (tenant_id) DO UPDATE
                   SET policy = $2, version = signon_policies.version + 1, updated_at = now()
                 RETURNING version",
                &[&self.tenant_id(), &policy],
            )
            .await?;
        Ok(row.try_get(0)?)
    }
}
