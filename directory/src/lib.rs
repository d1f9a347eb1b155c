//! Sigil's directory in Postgres.
//!
//! What it does: the schema and its migrations; tenant isolation (tenant
//! first in every key, FORCE'd row-level security on a per-transaction
//! setting, and a Rust API where every tenant query is a method of a
//! tenant-scoped transaction, [`TenantScope`], on connections that log in
//! as a role owning nothing; the owner's connection for migrations and
//! deployment-level changes, [`Owner`]); a private Postgres cluster
//! for development, tests and the embedded default ([`PrivateCluster`]);
//! change notifications ([`changes`]); the hash-chained audit journal
//! ([`audit`]); the embedded default's demo tenants and synthetic tenants
//! for load tests ([`seed`]).
//!
//! What it does not do: sit on the request path. The front door reads it
//! into caches and is told of changes.
//!
//! Who calls it: `frontdoor` (control plane runtime), `sigil` commands.
//!
//! For tests only, behind the `test-support` feature: a shared private
//! cluster with a fresh database per test (`testing`) and the hooks that
//! bypass the tenant API or fail the journal on purpose (`danger_*`).
#![forbid(unsafe_code)]

mod admin;
pub mod audit;
pub mod changes;
mod client_auth;
mod cluster;
// Authentication (issue 18)
pub mod credentials;
mod db;
mod fence;
pub mod latency;
mod model;
mod owner;
pub mod policy;
pub mod refresh;
pub mod scim;
pub mod seed;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

pub use admin::AppKind;
pub use cluster::{find_binaries, running_as_root, PrivateCluster};
pub use db::{migrate, schema_version, Directory, PoolOptions, TenantScope, APP_ROLE, MIGRATIONS};
pub use fence::MembershipFence;
pub use model::{
    Assignments, Frontend, KeyRow, NewUser, OidcApp, RefreshSettings, SamlSp, Tenant, User,
    UserStatus, TENANT_TABLES,
};
pub use owner::Owner;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Postgres binary is missing; the message names the package.
    #[error("{0}")]
    MissingBinary(String),
    /// The private cluster could not be created, started or stopped.
    #[error("private postgres: {0}")]
    Cluster(String),
    /// A query failed. The message carries the server's own words; the
    /// error is not also given as a source, so a cause chain prints them
    /// once.
    #[error("postgres: {}", postgres_message(.0))]
    Postgres(tokio_postgres::Error),
    /// Postgres cannot be reached now (a connection was lost and the last
    /// attempt to reopen it failed); try again later.
    #[error("postgres unreachable: {0}")]
    Unreachable(String),
    /// The schema is not the version this build needs.
    #[error("directory schema: {0}")]
    Schema(String),
    /// Run-time connections log in as a role that could escape row-level
    /// security.
    #[error("directory role: {0}")]
    Posture(String),
    /// Something exists already.
    #[error("{0}")]
    Conflict(String),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// The audit journal failed.
    #[error("audit journal: {0}")]
    Journal(String),
}

impl From<tokio_postgres::Error> for Error {
    fn from(error: tokio_postgres::Error) -> Error {
        Error::Postgres(error)
    }
}

/// tokio-postgres displays a server's refusal as just "db error" and keeps
/// the server's message in its source: both, on one line.
fn postgres_message(error: &tokio_postgres::Error) -> String {
    match (error.as_db_error(), std::error::Error::source(error)) {
        (Some(db), _) => db.to_string(),
        (None, Some(cause)) => format!("{error}: {cause}"),
        (None, None) => error.to_string(),
    }
}
