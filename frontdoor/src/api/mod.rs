//! The appliance: what each `sigil/1` operation does. One room per concern:
//!
//! - this file: the [`Appliance`], and [`Appliance::call`], the one place
//!   an [`Operation`] is matched, handing each variant's fields to its own
//!   function;
//! - [`callers`]: who is calling, and [`callers::authorize`];
//! - [`hot_path`] over [`seams`] (directory reads, audit sink, clock):
//!   what issuing and session operations share; [`issuance`] (`id_token`,
//!   `access_token`, `saml`, built by the pure functions of [`issue`] and
//!   signed per [`signing`]) and [`session_ops`];
//! - [`key_ops`] over [`keys`] (tenants' key rings, rotation, documents);
//!   [`cluster`] (membership operations); [`changes`] (the directory's
//!   change notifications);
//! - [`tenants`] (loaded on the control runtime, at most `max_loaded` in
//!   memory; their loads ordered by [`loading`]) holding [`live`] tenants
//!   with their [`cache`]s of users, apps and SPs; [`audit`] names every
//!   audit record.
//!
//! Threads: [`Appliance`] is shared by every worker. Its read path is a
//! lock-free snapshot of the tenant map, then per-tenant maps behind their
//! own read-mostly locks; nothing is shared across tenants but the map.

pub mod audit;
// Authentication (issue 18)
mod auth_ops;
pub mod cache;
mod callers;
mod changes;
pub mod cluster;
mod factor_ops;
pub mod hot_path;
pub mod issuance;
pub mod issue;
mod key_ops;
pub mod keys;
pub mod live;
pub mod loading;
pub mod logout;
mod onboard;
// Sign-on policy (issue 18)
mod policy_ops;
// Refresh tokens (issue 19)
mod refresh;
// Introspection and revocation over HTTP (issue 19)
pub mod oauth;
pub mod seams;
mod session_ops;
// SCIM (issue 17)
pub mod scim_ops;
pub mod signing;
pub mod tenants;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use directory::audit::AuditJournal;
use directory::{Directory, Frontend, Tenant};
use rustls_pki_types::CertificateDer;
use sessions::net::Replica;
use sessions::SessionTable;
use sigil_proto::results::Health;
use sigil_proto::{ErrorCode, Operation, Reply, WireError};
use signer::Timestamp;

pub use self::auth_ops::{AuthConfig, Authentication};
pub use self::callers::{authorize, Caller};
use self::hot_path::HotPath;
use self::keys::KeyManager;
pub use self::live::TenantLive;
use self::loading::{Lane, TenantSettings};
pub use self::seams::wall_ms;
use self::seams::{AuditSink, Clock, SystemClock};
use self::tenants::{LoadContext, Requested, TenantCache};
use crate::http::documents::DocumentStore;
use crate::http::exchange::{Loaded, Miss};
use crate::quic::Handler;

/// A refusal with its code.
fn refuse(code: ErrorCode, message: impl Into<String>) -> WireError {
    WireError {
        code,
        message: message.into(),
    }
}

/// The directory failed: the node cannot answer safely.
fn unavailable(error: directory::Error) -> WireError {
    refuse(ErrorCode::Unavailable, format!("directory: {error}"))
}

/// A failure inside Sigil: logged whole, answered with `what` only.
fn internal(what: &str, error: &dyn std::fmt::Display) -> WireError {
    tracing::error!(%error, "{what}");
    refuse(ErrorCode::Internal, what)
}

/// Node-wide settings of the appliance.
#[derive(Debug, Clone)]
pub struct ApplianceConfig {
    /// This node's name.
    pub node: String,
    /// Issuer prefix.
    pub public_url: String,
    /// Requests/s for tenants without a budget.
    pub default_tenant_rate: u32,
    /// Threads signing for slow keys (HSM, RSA).
    pub signing_threads: usize,
    /// How long a slow signature may take before `unavailable`.
    pub signing_deadline: std::time::Duration,
    /// Loading and keeping tenants in memory.
    pub tenants: TenantSettings,
}

/// The hot path as the node runs it: Postgres, the audit journal, the
/// system clock.
type NodeHotPath = HotPath<Arc<Directory>, Arc<AuditJournal>, SystemClock>;

/// The appliance.
pub struct Appliance {
    config: ApplianceConfig,
    directory: Arc<Directory>,
    keys: Arc<KeyManager>,
    journal: Arc<AuditJournal>,
    tenants: Arc<TenantCache>,
    frontends: RwLock<HashMap<String, Option<Frontend>>>,
    /// Moves on each time resolved callers are forgotten.
    callers_epoch: std::sync::atomic::AtomicU64,
    hot: NodeHotPath,
    // SCIM (issue 17): tokens' hashes per tenant, and where SCIM is served.
    scim_tokens: scim_ops::ScimTokenCache,
    control_url: std::sync::OnceLock<String>,
    scim_metrics: crate::metrics::ScimMetrics,
    oauth_metrics: oauth::OauthMetrics,
    // Authentication (issue 18): the hashing pool and the master key.
    auth: std::sync::OnceLock<Authentication>,
}

impl std::fmt::Debug for Appliance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appliance")
            .field("node", &self.config.node)
            .finish_non_exhaustive()
    }
}

impl Appliance {
    /// An appliance over a connected directory, sessions (a replica: alone,
    /// or in a cluster), journal and key manager, publishing tenants'
    /// documents in `documents`. `name_id_secret` derives persistent SAML
    /// NameIDs; tenant loads run on `control` (the control-plane runtime).
    ///
    /// # Errors
    /// When the signer pool's threads cannot start.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: ApplianceConfig,
        directory: Arc<Directory>,
        keys: KeyManager,
        replica: Arc<Replica>,
        journal: Arc<AuditJournal>,
        documents: Arc<DocumentStore>,
        name_id_secret: [u8; 32],
        control: tokio::runtime::Handle,
    ) -> Result<Appliance, signer::Error> {
        let hot = HotPath::new(
            Arc::clone(&directory),
            Arc::clone(&journal),
            SystemClock,
            replica,
            config.signing_threads,
            config.signing_deadline,
        )?;
        let keys = Arc::new(keys);
        let tenants = Arc::new(TenantCache::new(
            Arc::clone(&directory),
            Arc::clone(&keys),
            documents,
            LoadContext {
                public_url: config.public_url.clone(),
                default_tenant_rate: config.default_tenant_rate,
                name_id_secret,
            },
            config.tenants,
            control,
        ));
        Ok(Appliance {
            config,
            directory,
            keys,
            journal,
            tenants,
            frontends: RwLock::default(),
            callers_epoch: std::sync::atomic::AtomicU64::new(0),
            hot,
            scim_tokens: scim_ops::ScimTokenCache::default(),
            control_url: std::sync::OnceLock::new(),
            scim_metrics: crate::metrics::ScimMetrics::default(),
            oauth_metrics: oauth::OauthMetrics::default(),
            auth: std::sync::OnceLock::new(),
        })
    }

    /// How back-channel logout deliveries went (issue 19).
    pub fn logout_metrics(&self) -> &logout::LogoutMetrics {
        self.hot.logout.metrics()
    }

    /// Gives the node its authentication (issue 18): the hashing pool and
    /// the master key that wraps TOTP secrets. Until then the
    /// authentication operations answer `unavailable`; a second call
    /// changes nothing.
    pub fn start_authentication(&self, authentication: Authentication) {
        let _ = self.auth.set(authentication);
    }

    /// The node's authentication, once started.
    pub fn authentication_started(&self) -> Option<&Authentication> {
        self.auth.get()
    }

    /// The sessions: the table, its disk and, in a cluster, replication.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.hot.replica
    }

    /// Whether the node serves session checks (false while it catches up).
    pub fn ready(&self) -> &Arc<AtomicBool> {
        &self.hot.ready
    }

    /// The session table.
    pub fn sessions(&self) -> &Arc<SessionTable> {
        self.hot.replica.table()
    }

    /// The audit journal.
    pub fn journal(&self) -> &Arc<AuditJournal> {
        &self.journal
    }

    /// How long building and signing took, by backend: [software, pkcs11].
    pub fn signing_latency(&self) -> &[crate::metrics::LatencyHistogram; 2] {
        &self.hot.signing_latency
    }

    /// Starts the rotations that are due for `tenant` (scheduled rotation).
    ///
    /// # Errors
    /// When the directory or backend fails, or another node is rotating.
    pub async fn rotate_due(
        &self,
        directory: &Directory,
        tenant: &Tenant,
        now: Timestamp,
    ) -> Result<usize, keys::KeyError> {
        self.keys.rotate_due(directory, tenant, now).await
    }

    /// Loaded tenants (for metrics).
    pub fn loaded_tenants(&self) -> Vec<Arc<TenantLive>> {
        self.tenants.loaded()
    }

    /// The loaded tenants and their loads.
    pub fn tenant_cache(&self) -> &Arc<TenantCache> {
        &self.tenants
    }

    /// The tenant `slug`, loaded on first use (keys generated if missing),
    /// on the control runtime; requests for a tenant already loading wait
    /// for that load.
    ///
    /// # Errors
    /// `not_found` for an unknown tenant; `unavailable` if the directory is
    /// unreachable; `overloaded` when too many loads wait.
    pub async fn tenant(&self, slug: &str) -> Result<Arc<TenantLive>, WireError> {
        if let Some(live) = self.tenants.get(slug) {
            live.touch(self.hot.clock.now_ms());
            return Ok(live);
        }
        self.tenants.tenant(slug).await
    }

    /// For an SP asking for the documents of a tenant that has none in
    /// memory: starts or joins its load and says what to wait for (the
    /// HTTP worker bounds the wait).
    pub fn documents_miss(&self, slug: &str) -> Miss {
        let loaded = |result: Result<Arc<TenantLive>, WireError>| match result {
            Ok(live) => Loaded::Documents(Arc::new(live.keys.load().documents.clone())),
            Err(e) if e.code == ErrorCode::NotFound => Loaded::Unknown,
            Err(_) => Loaded::Unavailable,
        };
        match self.tenants.request(slug, Lane::OnDemand) {
            Ok(Requested::Ready(live)) => {
                let ready = loaded(Ok(live));
                Miss::Loading(Box::pin(async move { ready }))
            }
            Ok(Requested::Loading(receiver)) => {
                Miss::Loading(Box::pin(
                    async move { loaded(tenants::wait(receiver).await) },
                ))
            }
            Err(e) if e.code == ErrorCode::NotFound => Miss::Unknown,
            Err(_) => Miss::Unavailable,
        }
    }

    /// Reloads a tenant's keys (after a rotation anywhere in the cluster).
    ///
    /// # Errors
    /// When the directory or backend fails.
    pub async fn reload_keys(&self, slug: &str) -> Result<(), WireError> {
        self.tenants.reload_keys(slug).await
    }

    /// Answers one operation (what the QUIC listener calls): authorises
    /// it, answers it, and audits a refusal.
    ///
    /// # Errors
    /// The refusal, with its code.
    pub async fn call(&self, caller: &Caller, operation: Operation) -> Result<Reply, WireError> {
        let resolved;
        let caller = if self.stale(caller) && !matches!(operation, Operation::Health) {
            resolved = self.resolve_again(caller).await;
            &resolved
        } else {
            caller
        };
        let outcome = match authorize(caller, &operation) {
            Ok(()) => self.answer(caller, &operation).await,
            // Issue 20: an admin limited to some tenants may learn that a
            // name does not exist; every other limited caller may not
            // (callers::may_know_tenants).
            Err(refused) => match operation.tenant() {
                Some(tenant)
                    if refused.code == ErrorCode::Forbidden
                        && callers::may_know_tenants(caller)
                        && caller.frontend.as_ref().is_some_and(|f| !f.allows(tenant)) =>
                {
                    Err(self.refusal_for_admin(tenant, refused).await)
                }
                _ => Err(refused),
            },
        };
        if let Err(error) = &outcome {
            if let Some(event) = caller.refusal(operation.name(), error.code, &error.message) {
                let tenant_id = operation
                    .tenant()
                    .and_then(|t| self.tenants.get(t).map(|l| l.tenant.id))
                    .unwrap_or(0);
                self.journal
                    .record_later(tenant_id, event, self.hot.clock.now_ms());
            }
        }
        outcome
    }

    /// Answers an authorised operation: each variant's fields go to its
    /// own function.
    async fn answer(&self, caller: &Caller, operation: &Operation) -> Result<Reply, WireError> {
        let (hot, who) = (&self.hot, caller.name());
        Ok(match operation {
            Operation::Health => Reply::Health(Health {
                status: "ok".into(),
                node: self.config.node.clone(),
                ready: hot.ready.load(Ordering::Acquire),
            }),
            Operation::IdToken {
                tenant,
                user,
                app,
                session,
                nonce,
                offline,
            } => {
                let live = self.tenant(tenant).await?;
                let offline_app = match offline {
                    true => Some(self.offline_app(&live, app).await?),
                    false => None,
                };
                let token = hot.id_token(&live, who, user, app, session, nonce.as_deref());
                let token = token.await?;
                Reply::Token(match offline_app {
                    Some(app) => {
                        let kind = refresh::Kind::IdToken;
                        self.with_refresh(&live, &app, user, session, kind, &[], token)
                            .await?
                    }
                    None => token,
                })
            }
            Operation::AccessToken {
                tenant,
                user,
                app,
                session,
                scope,
                offline,
            } => {
                let live = self.tenant(tenant).await?;
                let offline_app = match offline {
                    true => Some(self.offline_app(&live, app).await?),
                    false => None,
                };
                let token = hot.access_token(&live, who, user, app, session, scope);
                let token = token.await?;
                Reply::Token(match offline_app {
                    Some(app) => {
                        let kind = refresh::Kind::AccessToken;
                        self.with_refresh(&live, &app, user, session, kind, scope, token)
                            .await?
                    }
                    None => token,
                })
            }
            Operation::Refresh {
                tenant,
                app,
                refresh_token,
                scope,
            } => {
                let live = self.tenant(tenant).await?;
                let token = self.refresh(&live, who, app, refresh_token, scope.as_deref());
                Reply::Token(token.await?)
            }
            Operation::Saml {
                tenant,
                user,
                sp,
                session,
                in_response_to,
            } => {
                let live = self.tenant(tenant).await?;
                let response = hot.saml(&live, who, user, sp, session, in_response_to.as_deref());
                Reply::Saml(response.await?)
            }
            Operation::SessionCreate {
                tenant,
                user,
                amr,
                client,
            } => {
                let live = self.tenant(tenant).await?;
                let created = hot.session_assert(&live, who, user, amr.clone(), client.clone());
                Reply::SessionCreated(created.await?)
            }
            Operation::SessionValidate { tenant, session } => {
                let live = self.tenant(tenant).await?;
                Reply::Session(hot.session_check(&live, session, false)?)
            }
            Operation::SessionTouch { tenant, session } => {
                let live = self.tenant(tenant).await?;
                Reply::Session(hot.session_check(&live, session, true)?)
            }
            Operation::SessionRevoke { tenant, session } => {
                let live = self.tenant(tenant).await?;
                let revoked = hot.session_revoke(&live, who, session).await?;
                self.revoke_refresh_of(&live, Some(session), None).await;
                Reply::Revoked(revoked)
            }
            Operation::UserRevokeSessions { tenant, user } => {
                let live = self.tenant(tenant).await?;
                let revoked = hot.user_revoke_sessions(&live, who, user).await?;
                if let Ok(record) = hot.user(&live, user).await {
                    self.revoke_refresh_of(&live, None, Some(&record.id)).await;
                }
                Reply::Revoked(revoked)
            }
            Operation::UserDeactivate { tenant, user } => {
                let live = self.tenant(tenant).await?;
                Reply::Deactivated(self.user_deactivate(&live, who, user).await?)
            }
            Operation::KeysRotate { tenant, alg } => {
                let live = self.tenant(tenant).await?;
                Reply::KeysRotated(self.keys_rotate(&live, who, alg.as_deref()).await?)
            }
            Operation::KeysRevoke { tenant, kid } => {
                let live = self.tenant(tenant).await?;
                Reply::KeyRevoked(self.keys_revoke(&live, who, kid).await?)
            }
            Operation::ClusterStatus => {
                let status = cluster::status(&self.directory, &hot.replica).await?;
                Reply::Cluster(Box::new(status))
            }
            Operation::ClusterAdd { node, address } => {
                let status = cluster::add(&self.directory, &hot.replica, node, address).await?;
                Reply::Cluster(Box::new(status))
            }
            Operation::ClusterRemove { node } => {
                let status = cluster::remove(&self.directory, &hot.replica, node).await?;
                Reply::Cluster(Box::new(status))
            }
            // Issue 17: onboarding (api/onboard.rs).
            Operation::Onboard(op) => Reply::Onboard(self.onboard(caller, op).await?),
            // SCIM tokens (issue 17)
            Operation::ScimTokenAdd { tenant, name } => {
                let live = self.tenant(tenant).await?;
                Reply::ScimTokenAdded(self.scim_token_add(&live, who, name).await?)
            }
            Operation::ScimTokenList { tenant } => {
                let live = self.tenant(tenant).await?;
                Reply::ScimTokens(self.scim_token_list(&live).await?)
            }
            Operation::ScimTokenRevoke { tenant, name } => {
                let live = self.tenant(tenant).await?;
                Reply::ScimTokenRevoked(self.scim_token_revoke(&live, who, name).await?)
            }
            // Issue 18: authentication (api/auth_ops.rs).
            Operation::Auth(op) => {
                let live = self.tenant(op.tenant()).await?;
                Reply::Auth(self.auth_op(&live, who, op).await?)
            }
        })
    }
}

impl Handler for Appliance {
    type Caller = Caller;

    async fn caller(&self, certificate: Option<CertificateDer<'static>>) -> Caller {
        self.resolve_caller(certificate).await
    }

    async fn handle(&self, caller: &Caller, operation: Operation) -> Result<Reply, WireError> {
        use tracing::Instrument;
        // Every record logged while serving the request names its tenant,
        // operation and caller (the span is at error level so that it is
        // on whenever the node logs at all).
        let span = tracing::error_span!(
            "request",
            tenant = operation.tenant().unwrap_or("-"),
            op = operation.name(),
            caller = caller.frontend.as_ref().map_or("-", |f| f.name.as_str()),
        );
        self.call(caller, operation).instrument(span).await
    }

    fn refused(&self, caller: &Caller, code: ErrorCode, reason: &str) {
        if let Some(event) = caller.refusal("frame", code, reason) {
            self.journal.record_later(0, event, self.hot.clock.now_ms());
        }
    }
}
