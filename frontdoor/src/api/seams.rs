//! The seams under the hot path: what it reads from the directory, where
//! its audit records go, and what time it is. Production plugs in
//! Postgres ([`Directory`]), the node's [`AuditJournal`] and the system
//! clock; unit tests plug in fakes held in memory (see `api/tests.rs`), so
//! authorise → budget → session → user → claims → sign → audit runs
//! without Postgres.
//!
//! Generic, not `dyn`: the hot path is monomorphised over them and pays no
//! boxing per request.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use directory::audit::AuditJournal;
use directory::{Directory, OidcApp, SamlSp, User};
use signer::Timestamp;

use super::audit::AuditEvent;

/// What issuing and session operations read from the directory, by the
/// tenant's internal id. `Ok(None)`: no such thing in that tenant.
pub trait DirectoryReads: Send + Sync + 'static {
    /// The user with `login`.
    fn user(
        &self,
        tenant_id: i64,
        login: &str,
    ) -> impl Future<Output = Result<Option<User>, directory::Error>> + Send;

    /// The OIDC app (client) `name`.
    fn oidc_app(
        &self,
        tenant_id: i64,
        name: &str,
    ) -> impl Future<Output = Result<Option<OidcApp>, directory::Error>> + Send;

    /// The SAML SP `name` (or with that entity ID).
    fn saml_sp(
        &self,
        tenant_id: i64,
        name: &str,
    ) -> impl Future<Output = Result<Option<SamlSp>, directory::Error>> + Send;
}

impl DirectoryReads for Arc<Directory> {
    async fn user(&self, tenant_id: i64, login: &str) -> Result<Option<User>, directory::Error> {
        self.tenant(tenant_id).await?.user(login).await
    }

    async fn oidc_app(
        &self,
        tenant_id: i64,
        name: &str,
    ) -> Result<Option<OidcApp>, directory::Error> {
        self.tenant(tenant_id).await?.oidc_app(name).await
    }

    async fn saml_sp(
        &self,
        tenant_id: i64,
        name: &str,
    ) -> Result<Option<SamlSp>, directory::Error> {
        self.tenant(tenant_id).await?.saml_sp(name).await
    }
}

/// Where audit records go.
pub trait AuditSink: Send + Sync + 'static {
    /// Records `event` for the tenant; returns once it is durable. An
    /// answer waits for this: no token leaves without its record.
    fn record(
        &self,
        tenant_id: i64,
        event: AuditEvent,
        at_ms: u64,
    ) -> impl Future<Output = Result<(), directory::Error>> + Send;

    /// Records `event` without waiting (refusals: the answer does not
    /// depend on it); a failure is logged.
    fn record_later(&self, tenant_id: i64, event: AuditEvent, at_ms: u64);

    /// Records `events` for the tenant, in order; returns once all are
    /// durable (a sink may make them durable together).
    fn record_many(
        &self,
        tenant_id: i64,
        events: Vec<AuditEvent>,
        at_ms: u64,
    ) -> impl Future<Output = Result<(), directory::Error>> + Send {
        async move {
            for event in events {
                self.record(tenant_id, event, at_ms).await?;
            }
            Ok(())
        }
    }
}

impl AuditSink for Arc<AuditJournal> {
    async fn record(
        &self,
        tenant_id: i64,
        event: AuditEvent,
        at_ms: u64,
    ) -> Result<(), directory::Error> {
        self.append(tenant_id, event.kind(), event.into_detail(), at_ms)
            .await
            .map(drop)
    }

    async fn record_many(
        &self,
        tenant_id: i64,
        events: Vec<AuditEvent>,
        at_ms: u64,
    ) -> Result<(), directory::Error> {
        let records = events
            .into_iter()
            .map(|event| (event.kind().into(), event.into_detail()))
            .collect();
        self.append_many(tenant_id, records, at_ms).await.map(drop)
    }

    fn record_later(&self, tenant_id: i64, event: AuditEvent, at_ms: u64) {
        let journal = Arc::clone(self);
        let kind = event.kind();
        tokio::spawn(async move {
            if let Err(e) = journal
                .append(tenant_id, kind, event.into_detail(), at_ms)
                .await
            {
                tracing::error!(error = %e, kind, "an audit record was lost");
            }
        });
    }
}

/// What time it is, for sessions, tokens and audit records.
pub trait Clock: Send + Sync + 'static {
    /// Wall-clock milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// The same instant in whole seconds, as tokens carry it.
    fn now(&self) -> Timestamp {
        Timestamp::from_secs(self.now_ms() / 1000)
    }
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        wall_ms()
    }
}

/// Wall-clock milliseconds since the Unix epoch (what session, audit and
/// tenant-recency times are in).
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
