//! Onboarding at run time (issue 17): what the node does for the admin
//! operations of `sigil/1` (`tenant_*`, `app_*`, `sp_*`, `frontend_*`).
//! Deployment-level changes go through the narrow SECURITY DEFINER
//! functions of migration 0004 (the run-time role has no right on
//! `tenants` or `frontends` themselves); tenant contents through a
//! [`TenantScope`], like every tenant query.

use crate::db::{Directory, TenantScope};
use crate::model::{Assignments, Frontend, OidcApp, SamlSp, Tenant};
use crate::Error;

/// Which kind of relying party an assignment is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// An OIDC app (`oidc_apps`).
    Oidc,
    /// A SAML SP (`saml_sps`).
    Saml,
}

impl AppKind {
    /// The `kind` column value.
    pub fn as_str(self) -> &'static str {
        match self {
            AppKind::Oidc => "oidc",
            AppKind::Saml => "saml",
        }
    }

    fn table(self) -> &'static str {
        match self {
            AppKind::Oidc => "oidc_apps",
            AppKind::Saml => "saml_sps",
        }
    }
}

/// The two columns (assigned group names, assigned user ids) a query on
/// `oidc_apps a` or `saml_sps a` of `kind` adds to load the assignments
/// with the app in the same round trip.
pub(crate) fn assigned_columns(kind: &str) -> String {
    format!(
        "coalesce((SELECT array_agg(g.name ORDER BY g.name) FROM app_group_assignments x
                     JOIN groups g ON g.tenant_id = x.tenant_id AND g.group_id = x.group_id
                    WHERE x.tenant_id = a.tenant_id AND x.kind = '{kind}' AND x.app = a.name), '{{}}'),
         coalesce((SELECT array_agg(x.user_id ORDER BY x.user_id) FROM app_user_assignments x
                    WHERE x.tenant_id = a.tenant_id AND x.kind = '{kind}' AND x.app = a.name), '{{}}')"
    )
}

impl Directory {
    /// Creates the tenant `slug` with display name `display_name` (its
    /// group `everyone` comes with it). Its keys are made when a node
    /// first loads it.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the slug exists; [`Error::Postgres`] (e.g.
    /// a slug the schema refuses).
    pub async fn create_tenant(&self, slug: &str, display_name: &str) -> Result<Tenant, Error> {
        let guard = self.pooled().await?;
        let row = guard
            .client
            .query_opt(
                &format!(
                    "SELECT {} FROM sigil_create_tenant($1, $2)",
                    Tenant::COLUMNS
                ),
                &[&slug, &display_name],
            )
            .await?
            .ok_or_else(|| Error::Conflict(format!("tenant {slug} exists")))?;
        Tenant::from_row(&row)
    }

    /// Sets the status of tenant `slug`; `None` when there is none.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn set_tenant_active(
        &self,
        slug: &str,
        active: bool,
    ) -> Result<Option<Tenant>, Error> {
        let status = if active { "active" } else { "suspended" };
        let guard = self.pooled().await?;
        let row = guard
            .client
            .query_opt(
                &format!(
                    "SELECT {} FROM sigil_set_tenant_status($1, $2)",
                    Tenant::COLUMNS
                ),
                &[&slug, &status],
            )
            .await?;
        row.map(|r| Tenant::from_row(&r)).transpose()
    }

    /// Every registered caller, by name.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn frontends(&self) -> Result<Vec<Frontend>, Error> {
        let guard = self.pooled().await?;
        let rows = guard
            .client
            .query(
                &format!("SELECT {} FROM sigil_frontends()", Frontend::COLUMNS),
                &[],
            )
            .await?;
        rows.iter().map(Frontend::from_row).collect()
    }

    /// Removes the caller `name`; returns it, or `None` when there is none.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn remove_frontend(&self, name: &str) -> Result<Option<Frontend>, Error> {
        let guard = self.pooled().await?;
        let row = guard
            .client
            .query_opt(
                &format!(
                    "SELECT {} FROM sigil_remove_frontend($1)",
                    Frontend::COLUMNS
                ),
                &[&name],
            )
            .await?;
        row.map(|r| Frontend::from_row(&r)).transpose()
    }
}

impl TenantScope<'_> {
    /// Assigns the app or SP `app` of `kind` to `assigned`'s groups (by
    /// name) and users (by login or id), in addition to what it has.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the first unknown group or user;
    /// [`Error::Postgres`].
    pub async fn assign(
        &self,
        kind: AppKind,
        app: &str,
        assigned: &Assignments,
    ) -> Result<(), Error> {
        let kind = kind.as_str();
        for group in &assigned.groups {
            let n = self
                .client()
                .execute(
                    "INSERT INTO app_group_assignments (tenant_id, kind, app, group_id)
                     SELECT $1, $2, $3, group_id FROM groups WHERE name = $4
                     ON CONFLICT DO NOTHING",
                    &[&self.tenant_id(), &kind, &app, group],
                )
                .await?;
            if n == 0 && !self.has_group(group).await? {
                return Err(Error::Invalid(format!("no group {group} in this tenant")));
            }
        }
        for user in &assigned.users {
            let n = self
                .client()
                .execute(
                    "INSERT INTO app_user_assignments (tenant_id, kind, app, user_id)
                     SELECT $1, $2, $3, user_id FROM users WHERE login = $4 OR user_id = $4
                     ORDER BY (login = $4) DESC LIMIT 1
                     ON CONFLICT DO NOTHING",
                    &[&self.tenant_id(), &kind, &app, user],
                )
                .await?;
            if n == 0 {
                let known = self.user(user).await?.is_some();
                if !known {
                    return Err(Error::Invalid(format!("no user {user} in this tenant")));
                }
            }
        }
        Ok(())
    }

    /// Whether the group `name` exists.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn has_group(&self, name: &str) -> Result<bool, Error> {
        let row = self
            .client()
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM groups WHERE name = $1)",
                &[&name],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Every OIDC app, by name, with its assignments.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn oidc_apps(&self) -> Result<Vec<OidcApp>, Error> {
        let rows = self
            .client()
            .query("SELECT name FROM oidc_apps ORDER BY name", &[])
            .await?;
        let mut apps = Vec::with_capacity(rows.len());
        for row in rows {
            let name: String = row.try_get(0)?;
            if let Some(app) = self.oidc_app(&name).await? {
                apps.push(app);
            }
        }
        Ok(apps)
    }

    /// Every SAML SP, by name, with its assignments.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn saml_sps(&self) -> Result<Vec<SamlSp>, Error> {
        let rows = self
            .client()
            .query("SELECT name FROM saml_sps ORDER BY name", &[])
            .await?;
        let mut sps = Vec::with_capacity(rows.len());
        for row in rows {
            let name: String = row.try_get(0)?;
            if let Some(sp) = self.saml_sp(&name).await? {
                sps.push(sp);
            }
        }
        Ok(sps)
    }

    /// Removes the app or SP `name` of `kind` and its assignments; returns
    /// whether it existed.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn remove_app(&self, kind: AppKind, name: &str) -> Result<bool, Error> {
        for table in ["app_group_assignments", "app_user_assignments"] {
            self.client()
                .execute(
                    &format!("DELETE FROM {table} WHERE kind = $1 AND app = $2"),
                    &[&kind.as_str(), &name],
                )
                .await?;
        }
        let n = self
            .client()
            .execute(
                &format!("DELETE FROM {} WHERE name = $1", kind.table()),
                &[&name],
            )
            .await?;
        Ok(n > 0)
    }
}
