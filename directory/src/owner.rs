//! The schema owner's connection: migrations and the deployment-level
//! changes the run-time role may not make (tenants, front-end callers, the
//! first admin). A node holds it only while it starts (the embedded
//! default, or a production node given `owner_url` to migrate); operator
//! commands (`sigil admin ...`, `sigil directory seed`) use it and exit.

use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::Client;

use crate::db::{migrate, open, APP_ROLE};
use crate::model::{Frontend, Tenant};
use crate::Error;

/// A connection as the owner of the directory's tables.
pub struct Owner {
    client: Mutex<Client>,
}

impl std::fmt::Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owner").finish_non_exhaustive()
    }
}

impl Owner {
    /// Connects as the role in `config` and applies the migrations not yet
    /// applied (the role becomes, or must already be, the tables' owner).
    ///
    /// # Errors
    /// [`Error::Postgres`] when Postgres is unreachable or a migration fails.
    pub async fn connect(config: &tokio_postgres::Config) -> Result<Owner, Error> {
        let mut client = open(config).await?;
        migrate(&mut client).await?;
        Ok(Owner {
            client: Mutex::new(client),
        })
    }

    pub(crate) async fn client(&self) -> MutexGuard<'_, Client> {
        self.client.lock().await
    }

    /// Lets the run-time role log in with `password` (the embedded
    /// default's private cluster; in production the operator makes the
    /// role, docs/operations.md). The password is hex, made by Sigil.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a password that is not hex;
    /// [`Error::Postgres`] (e.g. the owner may not alter roles).
    pub async fn allow_app_login(&self, password: &str) -> Result<(), Error> {
        if password.is_empty() || !password.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::Invalid("the run-time password must be hex".into()));
        }
        let statement = format!(
            "ALTER ROLE {APP_ROLE} WITH LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD '{password}'"
        );
        let client = self.client().await;
        // Roles belong to the whole cluster: two processes altering the
        // same one at once make one of them fail with "tuple concurrently
        // updated" (XX000). Its outcome is the same; try again.
        let mut attempts = 0;
        loop {
            match client.batch_execute(&statement).await {
                Ok(()) => return Ok(()),
                Err(e)
                    if attempts < 10
                        && e.code() == Some(&tokio_postgres::error::SqlState::INTERNAL_ERROR) =>
                {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempts)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Whether the directory has no tenant at all (a fresh directory).
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn is_empty(&self) -> Result<bool, Error> {
        let row = self
            .client()
            .await
            .query_one("SELECT NOT EXISTS (SELECT 1 FROM tenants)", &[])
            .await?;
        Ok(row.get(0))
    }

    /// The tenant with `slug`, if any.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn tenant_by_slug(&self, slug: &str) -> Result<Option<Tenant>, Error> {
        let row = self
            .client()
            .await
            .query_opt(
                &format!("SELECT {} FROM tenants WHERE slug = $1", Tenant::COLUMNS),
                &[&slug],
            )
            .await?;
        row.map(|r| Tenant::from_row(&r)).transpose()
    }

    /// Creates a tenant. Returns it.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the slug exists; [`Error::Postgres`].
    pub async fn create_tenant(
        &self,
        slug: &str,
        issuer: &str,
        rate_per_second: u32,
    ) -> Result<Tenant, Error> {
        let rate =
            i32::try_from(rate_per_second).map_err(|_| Error::Invalid("rate too large".into()))?;
        let row = self
            .client()
            .await
            .query_opt(
                &format!(
                    "INSERT INTO tenants (slug, issuer, rate_per_second, rate_burst) VALUES ($1, $2, $3, $3) ON CONFLICT (slug) DO NOTHING RETURNING {}",
                    Tenant::COLUMNS
                ),
                &[&slug, &issuer, &rate],
            )
            .await?
            .ok_or_else(|| Error::Conflict(format!("tenant {slug} exists")))?;
        Tenant::from_row(&row)
    }

    /// Registers a caller certificate.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the name or fingerprint exists.
    pub async fn register_frontend(&self, frontend: &Frontend) -> Result<(), Error> {
        let n = self
            .client()
            .await
            .execute(
                "INSERT INTO frontends (fingerprint, name, tenants, admin, trusted_assertions)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[
                    &frontend.fingerprint,
                    &frontend.name,
                    &frontend.tenants,
                    &frontend.admin,
                    &frontend.trusted_assertions,
                ],
            )
            .await?;
        if n == 0 {
            return Err(Error::Conflict(format!(
                "front end {} or its certificate is registered already",
                frontend.name
            )));
        }
        Ok(())
    }

    /// Sets whether the caller with `fingerprint` may assert sign-ins
    /// (`session_create`). Every node forgets its resolved callers on the
    /// change notification (0004's trigger), so it holds from their next
    /// request.
    ///
    /// # Errors
    /// [`Error::Invalid`] when no caller has it; [`Error::Postgres`].
    pub async fn set_trusted_assertions(
        &self,
        fingerprint: &str,
        trusted: bool,
    ) -> Result<(), Error> {
        let n = self
            .client()
            .await
            .execute(
                "UPDATE frontends SET trusted_assertions = $2 WHERE fingerprint = $1",
                &[&fingerprint, &trusted],
            )
            .await?;
        if n == 0 {
            return Err(Error::Invalid(format!(
                "no caller with certificate {fingerprint}"
            )));
        }
        Ok(())
    }

    /// The caller registered with `fingerprint`, if any.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn frontend(&self, fingerprint: &str) -> Result<Option<Frontend>, Error> {
        let row = self
            .client()
            .await
            .query_opt(
                &format!(
                    "SELECT {} FROM frontends WHERE fingerprint = $1",
                    Frontend::COLUMNS
                ),
                &[&fingerprint],
            )
            .await?;
        row.map(|r| Frontend::from_row(&r)).transpose()
    }

    /// Registers the deployment's first admin caller (`admin` must be
    /// set), unless an admin exists already; two bootstraps at once make
    /// one admin.
    ///
    /// # Errors
    /// [`Error::Conflict`] when an admin caller exists; [`Error::Invalid`]
    /// when `frontend` is not an admin; [`Error::Postgres`].
    pub async fn bootstrap_admin(&self, frontend: &Frontend) -> Result<(), Error> {
        if !frontend.admin {
            return Err(Error::Invalid(
                "the bootstrap caller must be an admin".into(),
            ));
        }
        let client = self.client().await;
        client
            .batch_execute("BEGIN; LOCK TABLE frontends IN SHARE ROW EXCLUSIVE MODE")
            .await?;
        let inserted = client
            .execute(
                "INSERT INTO frontends (fingerprint, name, tenants, admin, trusted_assertions)
                 SELECT $1, $2, $3, true, $4 WHERE NOT EXISTS (SELECT 1 FROM frontends WHERE admin)",
                &[
                    &frontend.fingerprint,
                    &frontend.name,
                    &frontend.tenants,
                    &frontend.trusted_assertions,
                ],
            )
            .await;
        match inserted {
            Ok(1) => {
                client.batch_execute("COMMIT").await?;
                Ok(())
            }
            Ok(_) => {
                client.batch_execute("ROLLBACK").await?;
                Err(Error::Conflict(
                    "an admin caller exists already: add callers with `sigil admin frontend add` as an admin".into(),
                ))
            }
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(e.into())
            }
        }
    }

    /// Runs `sql` as the owner, bypassing the tenant API: for tests that
    /// tamper with rows or kill backends (`test-support`).
    ///
    /// # Errors
    /// [`Error::Postgres`].
    #[cfg(any(test, feature = "test-support"))]
    pub async fn danger_execute(&self, sql: &str) -> Result<(), Error> {
        self.client().await.batch_execute(sql).await?;
        Ok(())
    }
}
