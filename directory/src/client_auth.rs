//! Client authentication of OAuth apps (issue 19, migration 7): an app's
//! registered JWKS, and the cluster-wide record of client-assertion `jti`s
//! that refuses a replayed assertion on every node.

use crate::db::TenantScope;
use crate::Error;

impl TenantScope<'_> {
    /// Sets (or with `None` clears) the registered JWKS of the OIDC app
    /// `app`; returns whether the app exists.
    ///
    /// # Errors
    /// [`Error::Postgres`] (e.g. a value that is not `{"keys": [...]}`).
    pub async fn set_oidc_app_jwks(
        &self,
        app: &str,
        jwks: Option<&serde_json::Value>,
    ) -> Result<bool, Error> {
        let n = self
            .client()
            .execute(
                "UPDATE oidc_apps SET jwks = $2 WHERE name = $1",
                &[&app, &jwks],
            )
            .await?;
        Ok(n == 1)
    }

    /// Records the client assertion of `app` whose `jti` hashes to
    /// `jti_hash` (SHA-256), valid until `expires_ms` (unix ms). Returns
    /// `false` when the same jti was already recorded and has not expired:
    /// a replay. One statement: of two nodes inserting the same jti at the
    /// same time, Postgres lets exactly one win. Rows of the tenant past
    /// their expiry are deleted on the way.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn claim_assertion_jti(
        &self,
        app: &str,
        jti_hash: &[u8; 32],
        expires_ms: u64,
    ) -> Result<bool, Error> {
        let expires_s = i64::try_from(expires_ms / 1000).unwrap_or(i64::MAX);
        let statement = self
            .prepared(
                "INSERT INTO client_assertion_jtis (tenant_id, app, jti_hash, expires_at)
                 VALUES (current_setting('sigil.tenant')::bigint, $1, $2, to_timestamp($3::bigint))
                 ON CONFLICT (tenant_id, app, jti_hash) DO UPDATE SET expires_at = excluded.expires_at
                   WHERE client_assertion_jtis.expires_at < now()
                 RETURNING 1",
            )
            .await?;
        let claimed = self
            .client()
            .query_opt(&statement, &[&app, &jti_hash.as_slice(), &expires_s])
            .await?
            .is_some();
        if claimed && jti_hash[0] == 0 {
            // About one insert in 256 sweeps the tenant's expired rows.
            self.client()
                .execute(
                    "DELETE FROM client_assertion_jtis WHERE expires_at < now() - interval '1 minute'",
                    &[],
                )
                .await?;
        }
        Ok(claimed)
    }
}
