//! Connections, migrations and the tenant-scoped query API.
//!
//! Isolation in three layers: every tenant table leads with `tenant_id`;
//! row-level security on each is FORCE'd and keyed on the per-transaction
//! setting `sigil.tenant`, and run-time connections act as `sigil_app`,
//! which owns no table; and here, every query on a tenant table is a method
//! of [`TenantScope`], a transaction that set its tenant before anything
//! else, so code cannot forget it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::{Client, NoTls};

use crate::model::{Frontend, Tenant};
use crate::Error;

/// The migrations, in order; each runs once, recorded in `schema_migrations`.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../migrations/0001_schema.sql")),
    (2, include_str!("../migrations/0002_cluster_membership.sql")),
];

/// A pooled connection and whether a scope left a transaction open.
pub(crate) struct Pooled {
    pub(crate) client: Client,
    open_transaction: bool,
}

/// The directory: a few connections acting as `sigil_app`, and one owner
/// connection for migrations and deployment-level changes (tenants, front
/// ends).
pub struct Directory {
    config: tokio_postgres::Config,
    pool: Vec<Mutex<Pooled>>,
    owner: Mutex<Client>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("pool", &self.pool.len())
            .finish_non_exhaustive()
    }
}

pub(crate) async fn open(config: &tokio_postgres::Config) -> Result<Client, Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "directory connection ended");
        }
    });
    Ok(client)
}

/// Applies the migrations not yet recorded, under an advisory lock so that
/// nodes starting together do not race. Safe to run any number of times.
///
/// # Errors
/// [`Error::Postgres`] when a migration fails (it is rolled back whole).
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, Error> {
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        .await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(7000001)", &[])
        .await?;
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS {
        let done = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await?
            .is_some();
        if !done {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[version],
            )
            .await?;
            applied.push(*version);
        }
    }
    tx.commit().await?;
    Ok(applied)
}

impl Directory {
    /// Connects as the owner (the role in `config`), applies migrations,
    /// and opens `pool_size` run-time connections acting as `sigil_app`.
    ///
    /// # Errors
    /// [`Error::Postgres`] when Postgres is unreachable or a migration fails.
    pub async fn connect(
        config: tokio_postgres::Config,
        pool_size: usize,
    ) -> Result<Directory, Error> {
        let mut owner = open(&config).await?;
        migrate(&mut owner).await?;
        let mut pool = Vec::new();
        for _ in 0..pool_size.max(1) {
            pool.push(Mutex::new(Pooled {
                client: Directory::app_connection(&config).await?,
                open_transaction: false,
            }));
        }
        Ok(Directory {
            config,
            pool,
            owner: Mutex::new(owner),
            next: AtomicUsize::new(0),
        })
    }

    /// A new connection acting as `sigil_app` (for LISTEN, or a fresh pool slot).
    pub(crate) async fn app_connection(config: &tokio_postgres::Config) -> Result<Client, Error> {
        let client = open(config).await?;
        client.batch_execute("SET ROLE sigil_app").await?;
        Ok(client)
    }

    /// The connection configuration (for listeners and tools).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    pub(crate) async fn pooled(&self) -> Result<MutexGuard<'_, Pooled>, Error> {
        let slot = &self.pool[self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len()];
        let mut guard = slot.lock().await;
        if guard.client.is_closed() {
            guard.client = Directory::app_connection(&self.config).await?;
            guard.open_transaction = false;
        }
        if guard.open_transaction {
            // A scope was dropped without commit: undo it before reuse.
            guard.client.batch_execute("ROLLBACK").await?;
            guard.open_transaction = false;
        }
        Ok(guard)
    }

    /// Opens a transaction scoped to tenant `tenant_id`: row-level security
    /// shows it that tenant's rows and nothing else. Commit with
    /// [`TenantScope::commit`]; dropping it rolls back.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn tenant(&self, tenant_id: i64) -> Result<TenantScope<'_>, Error> {
        let mut guard = self.pooled().await?;
        guard.open_transaction = true;
        guard.client.batch_execute("BEGIN").await?;
        guard
            .client
            .execute(
                "SELECT set_config('sigil.tenant', $1, true)",
                &[&tenant_id.to_string()],
            )
            .await?;
        Ok(TenantScope { guard, tenant_id })
    }

    /// The tenant with `slug`, if any.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn tenant_by_slug(&self, slug: &str) -> Result<Option<Tenant>, Error> {
        let guard = self.pooled().await?;
        let row = guard
            .client
            .query_opt(
                &format!("SELECT {} FROM tenants WHERE slug = $1", Tenant::COLUMNS),
                &[&slug],
            )
            .await?;
        row.map(|r| Tenant::from_row(&r)).transpose()
    }

    /// Every tenant.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn tenants(&self) -> Result<Vec<Tenant>, Error> {
        let guard = self.pooled().await?;
        let rows = guard
            .client
            .query(
                &format!("SELECT {} FROM tenants ORDER BY tenant_id", Tenant::COLUMNS),
                &[],
            )
            .await?;
        rows.iter().map(Tenant::from_row).collect()
    }

    /// The caller whose certificate has SHA-256 `fingerprint` (lowercase hex).
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn frontend(&self, fingerprint: &str) -> Result<Option<Frontend>, Error> {
        let guard = self.pooled().await?;
        let row = guard
            .client
            .query_opt(
                "SELECT fingerprint, name, tenants, admin FROM frontends WHERE fingerprint = $1",
                &[&fingerprint],
            )
            .await?;
        Ok(row.map(|r| Frontend {
            fingerprint: r.get(0),
            name: r.get(1),
            tenants: r.get(2),
            admin: r.get(3),
        }))
    }

    /// Creates a tenant (deployment-level: runs as the owner). Returns it.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the slug exists; [`Error::Postgres`].
    pub async fn create_tenant(
        &self,
        slug: &str,
        issuer: &str,
        rate_per_second: u32,
    ) -> Result<Tenant, Error> {
        let owner = self.owner.lock().await;
        let rate =
            i32::try_from(rate_per_second).map_err(|_| Error::Invalid("rate too large".into()))?;
        let row = owner
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

    /// Registers a caller certificate (deployment-level: runs as the owner).
    ///
    /// # Errors
    /// [`Error::Conflict`] when the name or fingerprint exists.
    pub async fn register_frontend(&self, frontend: &Frontend) -> Result<(), Error> {
        let owner = self.owner.lock().await;
        let n = owner
            .execute(
                "INSERT INTO frontends (fingerprint, name, tenants, admin) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&frontend.fingerprint, &frontend.name, &frontend.tenants, &frontend.admin],
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

    /// Runs `sql` as the owner: for tests and tools that must bypass the
    /// tenant API (e.g. to show that a raw query without the tenant
    /// setting sees nothing, run it through [`Directory::raw_app_query`]).
    pub(crate) async fn owner(&self) -> MutexGuard<'_, Client> {
        self.owner.lock().await
    }

    /// Runs raw SQL as `sigil_app` *without* a tenant scope and returns the
    /// number of rows: only for tests proving that row-level security
    /// hides every tenant row from it.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn danger_raw_app_query(&self, sql: &str) -> Result<usize, Error> {
        let guard = self.pooled().await?;
        Ok(guard.client.query(sql, &[]).await?.len())
    }
}

/// A transaction that sees one tenant's rows. Every tenant query is one of
/// its methods (see [`crate::model`] for what they return).
pub struct TenantScope<'a> {
    pub(crate) guard: MutexGuard<'a, Pooled>,
    tenant_id: i64,
}

impl TenantScope<'_> {
    /// The tenant this scope sees.
    pub fn tenant_id(&self) -> i64 {
        self.tenant_id
    }

    pub(crate) fn client(&self) -> &Client {
        &self.guard.client
    }

    /// Commits.
    ///
    /// # Errors
    /// [`Error::Postgres`] when the commit fails (nothing was written).
    pub async fn commit(mut self) -> Result<(), Error> {
        self.guard.client.batch_execute("COMMIT").await?;
        self.guard.open_transaction = false;
        Ok(())
    }
}

/// Milliseconds since the Unix epoch of a Postgres timestamp.
pub(crate) fn millis(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A Postgres timestamp from milliseconds since the Unix epoch.
pub(crate) fn time_of(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

impl Directory {
    /// Runs `sql` as the owner, bypassing the tenant API: for tests that
    /// tamper with rows or kill backends, and for operators' repair tools.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn danger_owner_execute(&self, sql: &str) -> Result<(), Error> {
        self.owner.lock().await.batch_execute(sql).await?;
        Ok(())
    }
}
