//! Connections, migrations and the tenant-scoped query API.
//!
//! Isolation in three layers: every tenant table leads with `tenant_id`;
//! row-level security on each is FORCE'd and keyed on the per-transaction
//! setting `sigil.tenant`, and run-time connections log in as `sigil_app`,
//! which owns nothing and cannot become the owner (checked when
//! [`Directory::connect`] opens them); and here, every query on a tenant
//! table is a method of [`TenantScope`], a transaction that set its tenant
//! before anything else, so code cannot forget it. Deployment-level tables
//! (tenants, callers) are read through narrow functions; changing them and
//! migrating is the owner's ([`crate::Owner`]).
//!
//! Every connection is reopened when Postgres goes away (a restart, a
//! failover): a pool slot reconnects on its next use, with a backoff while
//! Postgres stays unreachable (callers get [`Error::Unreachable`] at once
//! meanwhile, never a wait).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio_postgres::{Client, NoTls, Statement};

use crate::model::{Frontend, Tenant};
use crate::Error;

/// The migrations, in order; each runs once, recorded in `schema_migrations`.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../migrations/0001_schema.sql")),
    (2, include_str!("../migrations/0002_posture.sql")),
    (3, include_str!("../migrations/0003_cluster_membership.sql")),
    // Issue 17: admin operations and app assignments.
    (
        4,
        include_str!("../migrations/0004_admin_and_assignments.sql"),
    ),
    // SCIM provisioning (issue 17)
    (5, include_str!("../migrations/0005_scim.sql")),
    // Refresh tokens (issue 19)
    (6, include_str!("../migrations/0006_refresh_tokens.sql")),
    // Client authentication at introspection and revocation (issue 19)
    (7, include_str!("../migrations/0007_client_auth.sql")),
    // Back-channel logout (issue 19)
    (8, include_str!("../migrations/0008_backchannel_logout.sql")),
    // Authentication (issue 18): passwords, lockout, factors, MFA states.
    (9, include_str!("../migrations/0009_credentials.sql")),
    // Sign-on policies (issue 18)
    (10, include_str!("../migrations/0010_signon_policy.sql")),
    // Authentication (issue 18): front ends trusted to assert sign-ins.
    (
        11,
        include_str!("../migrations/0011_trusted_assertions.sql"),
    ),
    // The audit journal's binary records (issue 16): what each row's hash
    // covers.
    (12, include_str!("../migrations/0012_audit_format.sql")),
];

/// The schema version this build needs.
pub fn schema_version() -> i32 {
    MIGRATIONS.last().map_or(0, |(version, _)| *version)
}

/// The run-time role: logs in as itself, owns nothing.
pub const APP_ROLE: &str = "sigil_app";

/// First and longest wait between two attempts to reach Postgres again.
const RECONNECT_FIRST: Duration = Duration::from_millis(50);
const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// Tuning of the run-time pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// Connections. Default 4.
    pub size: usize,
    /// Postgres ends a session left idle inside a transaction this long
    /// (`idle_in_transaction_session_timeout`): a backstop, since a dropped
    /// [`TenantScope`] rolls back at once. Default 15 s.
    pub idle_in_transaction: Duration,
}

impl Default for PoolOptions {
    fn default() -> PoolOptions {
        PoolOptions {
            size: 4,
            idle_in_transaction: Duration::from_secs(15),
        }
    }
}

/// Most statements a pooled connection keeps prepared (see
/// [`TenantScope::prepared`]); the cache is emptied when it is full.
const STATEMENT_CACHE: usize = 256;

/// A pooled connection, whether a scope left a transaction open, and when
/// to try Postgres again after a failed reconnect.
pub(crate) struct Pooled {
    pub(crate) client: Client,
    pub(crate) open_transaction: bool,
    /// Statements prepared on `client`, by SQL text (dropped with it).
    statements: std::sync::Mutex<HashMap<String, Statement>>,
    retry_at: Option<Instant>,
    backoff: Duration,
}

/// The directory at run time: a few connections as `sigil_app`.
pub struct Directory {
    config: tokio_postgres::Config,
    options: PoolOptions,
    pool: Vec<Arc<Mutex<Pooled>>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("pool", &self.pool.len())
            .finish_non_exhaustive()
    }
}

/// Set once this process stops a private cluster ([`crate::PrivateCluster::stop`]):
/// from then on a connection closed by the server's shutdown is the end of
/// a command, not a lost connection. Process-wide because a connection does
/// not know which cluster it talks to; it only quiets a log line.
pub(crate) static STOPPING_PRIVATE_CLUSTER: AtomicBool = AtomicBool::new(false);

pub(crate) async fn open(config: &tokio_postgres::Config) -> Result<Client, Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            // tokio-postgres says only "db error"; the server's reason is
            // its source.
            let error = with_causes(&e);
            if closed_by_our_shutdown(&e) {
                tracing::debug!(%error, "directory connection closed: private cluster stopped");
            } else {
                tracing::warn!(%error, "directory connection ended");
            }
        }
    });
    Ok(client)
}

/// An error and each of its causes, `: `-separated.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

/// Whether a connection ended because this process stopped the private
/// cluster (Postgres' `admin_shutdown`, after [`STOPPING_PRIVATE_CLUSTER`]).
/// A restart of Postgres by someone else while a node serves still warns.
fn closed_by_our_shutdown(error: &tokio_postgres::Error) -> bool {
    let shut_down =
        error.code() == Some(&tokio_postgres::error::SqlState::ADMIN_SHUTDOWN) || error.is_closed();
    shut_down && STOPPING_PRIVATE_CLUSTER.load(Ordering::Relaxed)
}

/// Applies the migrations not yet recorded, under an advisory lock so that
/// nodes starting together do not race. Safe to run any number of times.
/// Run it as the schema's owner ([`crate::Owner::connect`] does).
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

/// Refuses a run-time login that could escape row-level security: a
/// superuser, a role that bypasses RLS, owns a relation, or can become the
/// owner of the tables.
async fn check_posture(client: &Client) -> Result<(), Error> {
    let version: i32 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(|e| {
            Error::Schema(format!(
                "cannot read schema_migrations ({e}): migrate the directory as its owner first"
            ))
        })?
        .get(0);
    if version != schema_version() {
        return Err(Error::Schema(format!(
            "the directory is at version {version}, this Sigil needs {}: migrate it as its owner ([postgres] owner_url)",
            schema_version()
        )));
    }
    let row = client
        .query_one(
            "SELECT current_user::text, r.rolsuper, r.rolbypassrls,
                    EXISTS (SELECT 1 FROM pg_class c WHERE c.relowner = r.oid),
                    pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = 'tenants'::regclass), 'MEMBER')
               FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await?;
    let (user, superuser, bypass, owns, member): (String, bool, bool, bool, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    let problem = if superuser {
        Some("is a superuser")
    } else if bypass {
        Some("bypasses row-level security")
    } else if owns {
        Some("owns tables")
    } else if member {
        Some("can act as the tables' owner")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::Posture(format!(
            "run-time connections log in as {user}, which {problem}: use a role that owns nothing (sigil_app, docs/operations.md)"
        ))),
        None => Ok(()),
    }
}

impl Directory {
    /// Connects `size` run-time connections (default options otherwise).
    /// `config` must log in as a role that owns nothing (`sigil_app`);
    /// the schema must be migrated already (by the owner).
    ///
    /// # Errors
    /// [`Error::Postgres`] when Postgres is unreachable; [`Error::Schema`]
    /// when the schema is not at this build's version; [`Error::Posture`]
    /// when the login could escape row-level security.
    pub async fn connect(config: tokio_postgres::Config, size: usize) -> Result<Directory, Error> {
        Directory::connect_with(
            config,
            PoolOptions {
                size,
                ..PoolOptions::default()
            },
        )
        .await
    }

    /// As [`Directory::connect`], with every option.
    ///
    /// # Errors
    /// As [`Directory::connect`].
    pub async fn connect_with(
        config: tokio_postgres::Config,
        options: PoolOptions,
    ) -> Result<Directory, Error> {
        let mut pool = Vec::new();
        for _ in 0..options.size.max(1) {
            let client = Directory::app_connection(&config, &options).await?;
            if pool.is_empty() {
                check_posture(&client).await?;
            }
            pool.push(Arc::new(Mutex::new(Pooled {
                client,
                open_transaction: false,
                statements: std::sync::Mutex::default(),
                retry_at: None,
                backoff: RECONNECT_FIRST,
            })));
        }
        Ok(Directory {
            config,
            options,
            pool,
            next: AtomicUsize::new(0),
        })
    }

    async fn app_connection(
        config: &tokio_postgres::Config,
        options: &PoolOptions,
    ) -> Result<Client, Error> {
        let client = open(config).await?;
        client
            .batch_execute(&format!(
                "SET idle_in_transaction_session_timeout = {}",
                options.idle_in_transaction.as_millis().max(1)
            ))
            .await?;
        Ok(client)
    }

    /// The connection configuration (for listeners and tools).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// A connection of the pool: the first free one from a rotating start,
    /// or, when every one is busy, whichever is freed first (a caller
    /// holding one connection and asking for another never waits for its
    /// own).
    pub(crate) async fn pooled(&self) -> Result<OwnedMutexGuard<Pooled>, Error> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.pool.len();
        let free = (0..count).find_map(|i| {
            Arc::clone(&self.pool[(start + i) % count])
                .try_lock_owned()
                .ok()
        });
        let mut guard = match free {
            Some(guard) => guard,
            None => {
                let waits = self
                    .pool
                    .iter()
                    .map(|slot| Box::pin(Arc::clone(slot).lock_owned()));
                futures_util::future::select_all(waits).await.0
            }
        };
        if guard.client.is_closed() {
            if guard.retry_at.is_some_and(|at| Instant::now() < at) {
                return Err(Error::Unreachable(
                    "postgres connection lost; reconnecting".into(),
                ));
            }
            match Directory::app_connection(&self.config, &self.options).await {
                Ok(client) => {
                    guard.client = client;
                    guard.open_transaction = false;
                    // Prepared on the lost connection: unknown to this one.
                    guard.statements = std::sync::Mutex::default();
                    guard.retry_at = None;
                    guard.backoff = RECONNECT_FIRST;
                }
                Err(e) => {
                    guard.retry_at = Some(Instant::now() + guard.backoff);
                    guard.backoff = (guard.backoff * 2).min(RECONNECT_MAX);
                    return Err(e);
                }
            }
        }
        if guard.open_transaction {
            // A scope was dropped outside a runtime: undo it before reuse.
            guard.client.batch_execute("ROLLBACK").await?;
            guard.open_transaction = false;
        }
        Ok(guard)
    }

    /// Opens a transaction scoped to tenant `tenant_id`: row-level security
    /// shows it that tenant's rows and nothing else. Commit with
    /// [`TenantScope::commit`]; dropping it rolls back at once.
    ///
    /// # Errors
    /// [`Error::Postgres`], or [`Error::Unreachable`] while reconnecting.
    pub async fn tenant(&self, tenant_id: i64) -> Result<TenantScope<'_>, Error> {
        let scope = self.tenant_unbegun(tenant_id).await?;
        scope.begin().await?;
        Ok(scope)
    }

    /// A scope on a pooled connection whose `BEGIN` is not sent yet: the
    /// caller sends [`TenantScope::begin`] before anything else, joined
    /// with its first reads so that they share one round trip (the
    /// connection sends requests in the order they are first polled, and
    /// Postgres runs them in that order). Should they ever run without it,
    /// row-level security shows them no row (`sigil.tenant` is only ever
    /// set for a transaction).
    pub(crate) async fn tenant_unbegun(&self, tenant_id: i64) -> Result<TenantScope<'_>, Error> {
        let mut guard = self.pooled().await?;
        guard.open_transaction = true;
        Ok(TenantScope {
            guard: Some(guard),
            tenant_id,
            directory: PhantomData,
        })
    }

    /// The tenant with `slug`, if any.
    ///
    /// # Errors
    /// [`Error::Postgres`], or [`Error::Unreachable`] while reconnecting.
    pub async fn tenant_by_slug(&self, slug: &str) -> Result<Option<Tenant>, Error> {
        let guard = self.pooled().await?;
        let row = guard
            .client
            .query_opt(
                &format!("SELECT {} FROM sigil_tenant_by_slug($1)", Tenant::COLUMNS),
                &[&slug],
            )
            .await?;
        row.map(|r| Tenant::from_row(&r)).transpose()
    }

    /// Every tenant.
    ///
    /// # Errors
    /// [`Error::Postgres`], or [`Error::Unreachable`] while reconnecting.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, Error> {
        let guard = self.pooled().await?;
        let rows = guard
            .client
            .query(
                &format!("SELECT {} FROM sigil_tenants()", Tenant::COLUMNS),
                &[],
            )
            .await?;
        rows.iter().map(Tenant::from_row).collect()
    }

    /// The caller whose certificate has SHA-256 `fingerprint` (lowercase
    /// hex): `Ok(None)` means definitely not registered; an error means
    /// the directory could not say.
    ///
    /// # Errors
    /// [`Error::Postgres`], or [`Error::Unreachable`] while reconnecting.
    pub async fn frontend(&self, fingerprint: &str) -> Result<Option<Frontend>, Error> {
        let guard = self.pooled().await?;
        let row = guard
            .client
            .query_opt(
                &format!("SELECT {} FROM sigil_frontend($1)", Frontend::COLUMNS),
                &[&fingerprint],
            )
            .await?;
        row.map(|r| Frontend::from_row(&r)).transpose()
    }

    /// Runs raw SQL as `sigil_app` *without* a tenant scope and returns the
    /// number of rows: only for tests proving that row-level security
    /// hides every tenant row from it (`test-support`).
    ///
    /// # Errors
    /// [`Error::Postgres`].
    #[cfg(any(test, feature = "test-support"))]
    pub async fn danger_raw_app_query(&self, sql: &str) -> Result<usize, Error> {
        let guard = self.pooled().await?;
        Ok(guard.client.query(sql, &[]).await?.len())
    }
}

/// A transaction that sees one tenant's rows. Every tenant query is one of
/// its methods (see [`crate::model`] for what they return). Dropped
/// without [`TenantScope::commit`], it rolls back at once (on the current
/// tokio runtime), so no connection sits idle inside a transaction.
pub struct TenantScope<'a> {
    guard: Option<OwnedMutexGuard<Pooled>>,
    tenant_id: i64,
    directory: PhantomData<&'a Directory>,
}

impl TenantScope<'_> {
    /// The tenant this scope sees.
    pub fn tenant_id(&self) -> i64 {
        self.tenant_id
    }

    pub(crate) fn client(&self) -> &Client {
        &self.pooled().client
    }

    /// Opens the scope's transaction and sets its tenant: one round trip
    /// (a simple query of two statements) where `BEGIN` and a bound
    /// `set_config` took three; the id is an integer written by Rust, never
    /// text from outside.
    pub(crate) async fn begin(&self) -> Result<(), Error> {
        self.client()
            .batch_execute(&format!(
                "BEGIN; SELECT set_config('sigil.tenant', '{}', true)",
                self.tenant_id
            ))
            .await?;
        Ok(())
    }

    fn pooled(&self) -> &Pooled {
        // Taken only by `drop`.
        self.guard.as_ref().expect("scope holds its connection")
    }

    /// `sql` prepared on this scope's connection, from the connection's
    /// cache when it was prepared before: a query run with it takes one
    /// round trip (no Parse/Describe first) and Postgres may keep its plan.
    /// For the hot reads whose SQL text comes in few shapes (values bound
    /// as parameters, never in the text); at most [`STATEMENT_CACHE`]
    /// statements are kept per connection.
    ///
    /// # Errors
    /// [`Error::Postgres`] when Postgres refuses the SQL.
    pub(crate) async fn prepared(&self, sql: &str) -> Result<Statement, Error> {
        let pooled = self.pooled();
        if let Some(statement) = pooled
            .statements
            .lock()
            .ok()
            .and_then(|cache| cache.get(sql).cloned())
        {
            return Ok(statement);
        }
        let statement = pooled.client.prepare(sql).await?;
        if let Ok(mut cache) = pooled.statements.lock() {
            if cache.len() >= STATEMENT_CACHE {
                cache.clear();
            }
            cache.insert(sql.to_owned(), statement.clone());
        }
        Ok(statement)
    }

    /// Commits.
    ///
    /// # Errors
    /// [`Error::Postgres`] when the commit fails (nothing was written).
    pub async fn commit(mut self) -> Result<(), Error> {
        self.client().batch_execute("COMMIT").await?;
        if let Some(guard) = self.guard.as_mut() {
            guard.open_transaction = false;
        }
        Ok(())
    }
}

impl Drop for TenantScope<'_> {
    fn drop(&mut self) {
        let Some(mut guard) = self.guard.take() else {
            return;
        };
        if !guard.open_transaction {
            return;
        }
        // The slot stays locked until the rollback is done; without a
        // runtime the next user of the slot rolls back first.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if guard.client.batch_execute("ROLLBACK").await.is_ok() {
                    guard.open_transaction = false;
                }
            });
        }
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

#[cfg(test)]
mod log_tests {
    #[test]
    fn a_logged_error_carries_its_causes() {
        let inner = std::io::Error::other("terminating connection");
        #[derive(Debug, thiserror::Error)]
        #[error("db error")]
        struct Outer(#[source] std::io::Error);
        assert_eq!(
            super::with_causes(&Outer(inner)),
            "db error: terminating connection"
        );
    }
}
