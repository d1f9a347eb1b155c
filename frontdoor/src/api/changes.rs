//! Applying the directory's change notifications (Postgres NOTIFY, heard
//! by `cli/recent.rs`): caches dropped, tenants reloaded, and the sessions
//! of a user deactivated elsewhere revoked.

use directory::changes::Change;
use sessions::Revoked;

use super::seams::Clock;
use super::Appliance;

impl Appliance {
    /// Applies a directory change notification.
    pub async fn apply_change(&self, change: Change) {
        let slug_of = |id: i64| self.tenants.slug_of(id);
        let loaded = |id: i64| slug_of(id).and_then(|slug| self.tenants.get(&slug));
        match change {
            Change::Reset => {
                // Anything may have changed while nobody listened: the
                // caches of users, apps and callers go at once; tenants load
                // again in the background (their documents keep serving).
                for live in self.tenants.loaded() {
                    live.clear_caches();
                }
                self.forget_callers();
                self.scim_tokens.clear();
                self.tenants.forget_unknown();
                self.tenants.refresh_all();
            }
            Change::User {
                tenant_id,
                user_id,
                status,
            } => {
                let Some(live) = loaded(tenant_id) else {
                    return;
                };
                let mut login = None;
                live.users.retain(|key, user| {
                    if user.id == user_id {
                        login = Some(user.login.clone());
                    }
                    user.id != user_id && key != user_id
                });
                if !matches!(status.as_deref(), Some("deactivated" | "suspended")) {
                    return;
                }
                if login.is_none() {
                    if let Ok(scope) = self.directory.tenant(tenant_id).await {
                        login = scope.user(&user_id).await.ok().flatten().map(|u| u.login);
                    }
                }
                if let Some(login) = login {
                    let mark = self.hot.mark(&live, Some(&login), self.hot.clock.now_ms());
                    if let Err(e) = self.hot.revoke_strongly(Revoked::Mark(mark)).await {
                        tracing::error!(error = %e.message, "revoking the sessions of a deactivated user");
                    }
                }
            }
            Change::Membership { tenant_id, user_id } => {
                if let Some(live) = loaded(tenant_id) {
                    live.users.clear();
                    // A group itself changed (renamed, removed): the
                    // assignments cached with apps and SPs name groups.
                    if user_id.is_none() {
                        live.apps.clear();
                        live.sps.clear();
                    }
                }
            }
            Change::Callers => self.forget_callers(),
            Change::Apps { tenant_id } => {
                if let Some(live) = loaded(tenant_id) {
                    live.apps.clear();
                    live.sps.clear();
                }
            }
            Change::Tenant { tenant_id } => {
                // Its row changed (budget, status, key policy): loaded
                // again in place, or forgotten if it is gone. A tenant
                // this node does not hold may be new, under a name it
                // answered not_found for a moment ago: those are asked
                // for again.
                match slug_of(tenant_id) {
                    Some(slug) => self.tenants.refresh(vec![slug]),
                    None => self.tenants.forget_unknown(),
                }
            }
            Change::ScimTokens { tenant_id } => self.scim_tokens.invalidate(tenant_id),
            // Issue 18: the sign-on policy is read again at the next sign-in.
            Change::Policy { tenant_id } => {
                if let Some(live) = loaded(tenant_id) {
                    live.policy.clear();
                }
            }
            Change::Keys { tenant_id } => {
                if let Some(slug) = slug_of(tenant_id) {
                    if let Err(e) = self.tenants.keys_changed(&slug).await {
                        tracing::warn!(tenant = %slug, error = %e.message, "reloading keys failed");
                    }
                }
            }
        }
    }
}
