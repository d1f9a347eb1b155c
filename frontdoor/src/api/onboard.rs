//! The onboarding operations (issue 17): tenants, OIDC apps, SAML SPs and
//! callers, changed by an admin caller through the API. Each change is
//! audited in the tenant's hash chain (callers, which belong to no tenant,
//! in the deployment's chain, tenant 0), naming the admin; and takes
//! effect on this node before the answer (caches dropped, the tenant
//! loaded again), on the others through the directory's change
//! notifications.

use directory::{AppKind, Assignments, OidcApp, RefreshSettings, SamlSp, Tenant};
use sigil_proto::onboard::{
    AppInfo, Apps, FrontendInfo, Frontends, OnboardOp, OnboardReply, Removed, SpInfo, Sps,
    TenantInfo, Tenants,
};
use sigil_proto::{ErrorCode, WireError};
use signer::Algorithm;

use super::audit::AuditEvent;
use super::seams::{AuditSink, Clock};
use super::{refuse, unavailable, Appliance, Caller};

/// The NameID formats an SP may ask for, by their stored short names.
pub const NAME_ID_FORMATS: [&str; 3] = ["emailAddress", "persistent", "unspecified"];

/// An app or SP to register ([`Appliance::add_app`]).
enum NewApp {
    Oidc(OidcApp),
    Saml(SamlSp),
}

/// A directory failure as the admin sees it.
fn refused(error: directory::Error) -> WireError {
    use tokio_postgres::error::SqlState;
    match error {
        directory::Error::Conflict(message) => refuse(ErrorCode::Conflict, message),
        // The only invalid input the directory finds here: an unknown
        // group or user to assign.
        directory::Error::Invalid(message) => refuse(ErrorCode::NotFound, message),
        directory::Error::Postgres(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => refuse(
            ErrorCode::Conflict,
            "exists already (the name, or the SP's entity ID, is taken)",
        ),
        directory::Error::Postgres(e) if e.code() == Some(&SqlState::CHECK_VIOLATION) => {
            refuse(ErrorCode::BadRequest, "a value the directory refuses")
        }
        other => unavailable(other),
    }
}

/// `[a-z0-9][a-z0-9-]{0,62}`, as the directory's check has it.
fn check_slug(slug: &str) -> Result<(), WireError> {
    let mut chars = slug.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if first_ok && rest_ok && slug.len() <= 63 {
        Ok(())
    } else {
        Err(refuse(
            ErrorCode::BadRequest,
            format!("tenant slug {slug:?}: lowercase letters, digits and '-', at most 63, not starting with '-'"),
        ))
    }
}

fn check_algorithm(alg: &str, allowed: &[&str]) -> Result<(), WireError> {
    if alg.parse::<Algorithm>().is_ok() && allowed.contains(&alg) {
        Ok(())
    } else {
        Err(refuse(
            ErrorCode::BadRequest,
            format!("algorithm {alg}: one of {}", allowed.join(", ")),
        ))
    }
}

fn assignments(groups: &[String], users: &[String]) -> Assignments {
    Assignments {
        groups: groups.to_vec(),
        users: users.to_vec(),
    }
}

fn app_info(app: OidcApp) -> AppInfo {
    AppInfo {
        name: app.name,
        alg: app.algorithm,
        claims: app.claim_mapping,
        redirect_uris: app.redirect_uris,
        backchannel_logout_uri: app.backchannel_logout_uri,
        assigned_groups: app.assigned.groups,
        assigned_users: app.assigned.users,
        refresh_tokens: app.refresh.allowed,
        refresh_absolute_s: app.refresh.absolute_s,
        refresh_idle_s: app.refresh.idle_s,
    }
}

fn sp_info(sp: SamlSp) -> SpInfo {
    SpInfo {
        name: sp.name,
        entity_id: sp.entity_id,
        acs_urls: sp.acs_urls,
        name_id_format: sp.name_id_format,
        alg: sp.algorithm,
        sign_assertion: sp.sign_assertion,
        sign_response: sp.sign_response,
        attributes: sp.attribute_mapping,
        assigned_groups: sp.assigned.groups,
        assigned_users: sp.assigned.users,
    }
}

/// A JWKS from `app_add` or `app_set_jwks`, every key checked (issue 19).
fn client_jwks(text: Option<&str>) -> Result<Option<serde_json::Value>, WireError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let bad = |why: String| refuse(ErrorCode::BadRequest, format!("jwks: {why}"));
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    super::oauth::ClientJwks::parse(&value).map_err(|e| bad(e.to_string()))?;
    Ok(Some(value))
}

/// How the audit record names a JWKS change: its keys' count, or `none`.
fn jwks_change(jwks: &Option<serde_json::Value>) -> String {
    jwks.as_ref()
        .and_then(|j| j.get("keys"))
        .and_then(serde_json::Value::as_array)
        .map_or_else(|| "none".to_owned(), |keys| format!("{} keys", keys.len()))
}

fn frontend_info(frontend: directory::Frontend) -> FrontendInfo {
    FrontendInfo {
        name: frontend.name,
        tenants: frontend.tenants,
        admin: frontend.admin,
        trusted_assertions: frontend.trusted_assertions,
        fingerprint: frontend.fingerprint,
    }
}

impl Appliance {
    fn tenant_info(&self, tenant: &Tenant) -> TenantInfo {
        TenantInfo {
            slug: tenant.slug.clone(),
            name: tenant.display_name.clone(),
            status: if tenant.active { "active" } else { "suspended" }.into(),
            issuer: super::keys::issuer(&self.config.public_url, tenant),
        }
    }

    /// Makes an admin change durable in tenant `tenant_id`'s audit chain.
    async fn audit_admin(
        &self,
        tenant_id: i64,
        op: &OnboardOp,
        subject: &str,
        changed: Vec<(&'static str, String)>,
        caller: &Caller,
    ) -> Result<(), WireError> {
        let event = AuditEvent::Admin {
            op: op.name(),
            subject: subject.to_owned(),
            changed,
            caller: caller.name().to_owned(),
        };
        self.journal()
            .record(tenant_id, event, self.hot.clock.now_ms())
            .await
            .map_err(|e| super::internal("audit journal", &e))
    }

    /// Answers an onboarding operation (authorised: an admin caller).
    ///
    /// # Errors
    /// `bad_request`, `not_found`, `conflict`, or `unavailable` when the
    /// directory fails.
    pub(super) async fn onboard(
        &self,
        caller: &Caller,
        op: &OnboardOp,
    ) -> Result<OnboardReply, WireError> {
        Ok(match op {
            OnboardOp::TenantAdd { tenant, name } => {
                check_slug(tenant)?;
                let row = self
                    .directory
                    .create_tenant(tenant, name)
                    .await
                    .map_err(refused)?;
                let changed = vec![("name", name.clone())];
                self.audit_admin(row.id, op, tenant, changed, caller)
                    .await?;
                // Loaded now: keys made, JWKS, discovery and metadata
                // published before the answer.
                self.tenants.load_now(tenant).await?;
                OnboardReply::Tenant(self.tenant_info(&row))
            }
            OnboardOp::TenantList => {
                let rows = self.directory.tenants().await.map_err(unavailable)?;
                OnboardReply::Tenants(Tenants {
                    tenants: rows.iter().map(|t| self.tenant_info(t)).collect(),
                })
            }
            OnboardOp::TenantSuspend { tenant } | OnboardOp::TenantResume { tenant } => {
                let active = matches!(op, OnboardOp::TenantResume { .. });
                let row = self
                    .directory
                    .set_tenant_active(tenant, active)
                    .await
                    .map_err(refused)?
                    .ok_or_else(|| refuse(ErrorCode::NotFound, format!("no tenant {tenant}")))?;
                let status = if active { "active" } else { "suspended" };
                self.audit_admin(row.id, op, tenant, vec![("status", status.into())], caller)
                    .await?;
                self.tenants.load_now(tenant).await?;
                OnboardReply::Tenant(self.tenant_info(&row))
            }
            OnboardOp::AppAdd {
                tenant,
                app,
                alg,
                claims,
                assign,
                assign_users,
                redirect_uris,
                backchannel_logout_uri,
                refresh,
                jwks,
            } => {
                check_algorithm(alg, &["RS256", "PS256", "ES256", "ES384", "EdDSA"])?;
                if let Some(uri) = backchannel_logout_uri {
                    super::logout::check_logout_uri(uri)
                        .map_err(|why| refuse(ErrorCode::BadRequest, why))?;
                }
                let jwks = client_jwks(jwks.as_deref())?;
                let row = OidcApp {
                    name: app.clone(),
                    redirect_uris: redirect_uris.clone(),
                    algorithm: alg.clone(),
                    claim_mapping: claims.clone(),
                    id_token_ttl_s: 300,
                    access_token_ttl_s: 600,
                    assigned: assignments(assign, assign_users),
                    backchannel_logout_uri: backchannel_logout_uri.clone(),
                    refresh: refresh.map_or_else(RefreshSettings::default, |r| RefreshSettings {
                        allowed: true,
                        absolute_s: r.absolute_s,
                        idle_s: r.idle_s,
                    }),
                    jwks,
                };
                let mut changed = vec![
                    ("alg", alg.clone()),
                    ("assign", assign.join(",")),
                    ("assign_users", assign_users.join(",")),
                    ("refresh_tokens", row.refresh.allowed.to_string()),
                    ("jwks", jwks_change(&row.jwks)),
                ];
                if let Some(uri) = backchannel_logout_uri {
                    changed.push(("backchannel_logout_uri", uri.clone()));
                }
                self.add_app(caller, op, tenant, NewApp::Oidc(row), changed)
                    .await?
            }
            OnboardOp::AppList { tenant } => {
                let (_, scope) = self.tenant_scope(tenant).await?;
                let apps = scope.oidc_apps().await.map_err(unavailable)?;
                OnboardReply::Apps(Apps {
                    apps: apps.into_iter().map(app_info).collect(),
                })
            }
            OnboardOp::AppSetJwks { tenant, app, jwks } => {
                let jwks = client_jwks(jwks.as_deref())?;
                let (live, scope) = self.tenant_scope(tenant).await?;
                if !scope
                    .set_oidc_app_jwks(app, jwks.as_ref())
                    .await
                    .map_err(refused)?
                {
                    return Err(refuse(
                        ErrorCode::NotFound,
                        format!("no app {app} in {tenant}"),
                    ));
                }
                let stored = scope.oidc_app(app).await.map_err(unavailable)?;
                scope.commit().await.map_err(unavailable)?;
                let changed = vec![("jwks", jwks_change(&jwks))];
                self.audit_admin(live.tenant.id, op, app, changed, caller)
                    .await?;
                live.apps.clear();
                let stored = stored.ok_or_else(|| {
                    refuse(ErrorCode::NotFound, format!("no app {app} in {tenant}"))
                })?;
                OnboardReply::App(app_info(stored))
            }
            OnboardOp::AppRemove { tenant, app } => {
                self.remove(caller, op, tenant, AppKind::Oidc, app).await?
            }
            OnboardOp::SpAdd {
                tenant,
                sp,
                alg,
                entity_id,
                acs_urls,
                name_id_format,
                sign_assertion,
                claims,
                assign,
                assign_users,
            } => {
                check_algorithm(alg, &["RS256", "ES256", "ES384", "EdDSA"])?;
                if !NAME_ID_FORMATS.contains(&name_id_format.as_str()) {
                    return Err(refuse(
                        ErrorCode::BadRequest,
                        format!(
                            "NameID format {name_id_format}: one of {}",
                            NAME_ID_FORMATS.join(", ")
                        ),
                    ));
                }
                let row = SamlSp {
                    name: sp.clone(),
                    entity_id: entity_id.clone(),
                    acs_urls: acs_urls.clone(),
                    name_id_format: name_id_format.clone(),
                    attribute_mapping: claims.clone(),
                    algorithm: alg.clone(),
                    sign_assertion: *sign_assertion,
                    sign_response: true,
                    assigned: assignments(assign, assign_users),
                };
                let changed = vec![
                    ("entity_id", entity_id.clone()),
                    ("acs_urls", acs_urls.join(",")),
                    ("alg", alg.clone()),
                    ("assign", assign.join(",")),
                    ("assign_users", assign_users.join(",")),
                ];
                self.add_app(caller, op, tenant, NewApp::Saml(row), changed)
                    .await?
            }
            OnboardOp::SpList { tenant } => {
                let (_, scope) = self.tenant_scope(tenant).await?;
                let sps = scope.saml_sps().await.map_err(unavailable)?;
                OnboardReply::Sps(Sps {
                    sps: sps.into_iter().map(sp_info).collect(),
                })
            }
            OnboardOp::SpRemove { tenant, sp } => {
                self.remove(caller, op, tenant, AppKind::Saml, sp).await?
            }
            OnboardOp::FrontendList => {
                let rows = self.directory.frontends().await.map_err(unavailable)?;
                OnboardReply::Frontends(Frontends {
                    frontends: rows.into_iter().map(frontend_info).collect(),
                })
            }
            OnboardOp::FrontendRemove { name } => {
                if caller.name() == name {
                    return Err(refuse(
                        ErrorCode::Conflict,
                        "a caller cannot remove itself: ask as another admin",
                    ));
                }
                let gone = self
                    .directory
                    .remove_frontend(name)
                    .await
                    .map_err(refused)?
                    .ok_or_else(|| refuse(ErrorCode::NotFound, format!("no front end {name}")))?;
                // Refused here from its next request; elsewhere once the
                // notification arrives.
                self.forget_callers();
                let changed = vec![("fingerprint", gone.fingerprint.clone())];
                self.audit_admin(0, op, name, changed, caller).await?;
                OnboardReply::Frontend(frontend_info(gone))
            }
        })
    }

    /// The tenant `tenant` (loaded) and a transaction scoped to it.
    async fn tenant_scope(
        &self,
        tenant: &str,
    ) -> Result<
        (
            std::sync::Arc<super::TenantLive>,
            directory::TenantScope<'_>,
        ),
        WireError,
    > {
        let live = self.tenant(tenant).await?;
        let scope = self
            .directory
            .tenant(live.tenant.id)
            .await
            .map_err(unavailable)?;
        Ok((live, scope))
    }

    /// Registers an OIDC app or SAML SP of `tenant`: created and read
    /// back in one transaction, audited (naming `changed`), the tenant's
    /// cache of them dropped, and a key made for its algorithm if the
    /// tenant had none.
    async fn add_app(
        &self,
        caller: &Caller,
        op: &OnboardOp,
        tenant: &str,
        row: NewApp,
        changed: Vec<(&'static str, String)>,
    ) -> Result<OnboardReply, WireError> {
        let (live, scope) = self.tenant_scope(tenant).await?;
        let (name, reply) = match row {
            NewApp::Oidc(row) => {
                scope.create_oidc_app(&row).await.map_err(refused)?;
                let stored = scope.oidc_app(&row.name).await.map_err(unavailable)?;
                (
                    row.name.clone(),
                    OnboardReply::App(app_info(stored.unwrap_or(row))),
                )
            }
            NewApp::Saml(row) => {
                scope.create_saml_sp(&row).await.map_err(refused)?;
                let stored = scope.saml_sp(&row.name).await.map_err(unavailable)?;
                let name = row.name.clone();
                (
                    name,
                    OnboardReply::Sp(Box::new(sp_info(stored.unwrap_or(row)))),
                )
            }
        };
        scope.commit().await.map_err(unavailable)?;
        self.audit_admin(live.tenant.id, op, &name, changed, caller)
            .await?;
        match reply {
            OnboardReply::App(_) => live.apps.clear(),
            _ => live.sps.clear(),
        }
        self.reload_keys(tenant).await?;
        Ok(reply)
    }

    /// `app_remove`, `sp_remove`.
    async fn remove(
        &self,
        caller: &Caller,
        op: &OnboardOp,
        tenant: &str,
        kind: AppKind,
        name: &str,
    ) -> Result<OnboardReply, WireError> {
        let (live, scope) = self.tenant_scope(tenant).await?;
        if !scope.remove_app(kind, name).await.map_err(refused)? {
            let what = match kind {
                AppKind::Oidc => "app",
                AppKind::Saml => "SP",
            };
            return Err(refuse(
                ErrorCode::NotFound,
                format!("no {what} {name} in {tenant}"),
            ));
        }
        scope.commit().await.map_err(unavailable)?;
        self.audit_admin(live.tenant.id, op, name, Vec::new(), caller)
            .await?;
        live.apps.clear();
        live.sps.clear();
        Ok(OnboardReply::Removed(Removed {
            removed: name.to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_directory_rule() {
        for good in ["initech", "a", "acme-2", "0x"] {
            assert!(check_slug(good).is_ok(), "{good}");
        }
        for bad in ["", "-acme", "Acme", "ac me", "acme_2", &"a".repeat(64)] {
            assert_eq!(
                check_slug(bad).map_err(|e| e.code),
                Err(ErrorCode::BadRequest),
                "{bad}"
            );
        }
    }

    #[test]
    fn algorithms_are_checked_per_kind() {
        assert!(check_algorithm("ES256", &["ES256"]).is_ok());
        assert!(check_algorithm("PS256", &["RS256", "ES256"]).is_err());
        assert!(check_algorithm("none", &["none"]).is_err());
    }
}
