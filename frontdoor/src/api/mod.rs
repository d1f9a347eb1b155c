//! The appliance: what each `sigil/1` operation does, and the caches the
//! hot path reads (tenants, users, apps, keys, callers), filled from the
//! directory on first use and dropped when it says something changed.
//! Tenants live in [`tenants`] (loaded on the control runtime, one load per
//! tenant, at most `max_loaded` in memory), whose loads [`loading`] orders.
//!
//! Threads: [`Appliance`] is shared by every worker. Its read path is a
//! lock-free snapshot of the tenant map, then per-tenant maps behind their
//! own read-mostly locks; nothing is shared across tenants but the map.

mod callers;
pub mod cluster;
pub mod issue;
pub mod keys;
pub mod loading;
pub mod signing;
pub mod tenants;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use aws_lc_rs::rand::SystemRandom;
use ciborium::Value;
use directory::audit::AuditJournal;
use directory::{Directory, Frontend, Tenant, UserStatus};
use rustls_pki_types::CertificateDer;
use sessions::net::{Replica, ReplicaError};
use sessions::{Mark, Revoked, SessionId, SessionPolicy, SessionTable, Validation};
use signer::jwt::TokenLifetime;
use signer::saml::NameIdFormat;
use signer::{Algorithm, Timestamp};

use self::issue::{Issued, OidcApp, SamlSp, SessionFacts, UserRecord};
use self::keys::{KeyManager, TenantKeys};
use self::loading::{Lane, TenantSettings};
use self::tenants::{LoadContext, Requested, TenantCache};
use crate::admission::RateBudget;
use crate::http::documents::DocumentStore;
use crate::http::exchange::{Loaded, Miss};
use crate::metrics::TenantMetrics;
use crate::quic::Handler;
use sigil_proto::{ErrorCode, Operation, WireError};

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

/// The named thing does not exist in the tenant.
fn not_found(what: &str, name: &str, live: &TenantLive) -> WireError {
    refuse(
        ErrorCode::NotFound,
        format!("no {what} {name} in {}", live.slug),
    )
}

/// A cache hit, if any (a poisoned lock counts as a miss).
fn cached<T>(map: &RwLock<HashMap<String, Arc<T>>>, key: &str) -> Option<Arc<T>> {
    map.read()
        .ok()
        .and_then(|entries| entries.get(key).cloned())
}

/// Keeps `value` under `key` and returns it shared.
fn remember<T>(map: &RwLock<HashMap<String, Arc<T>>>, key: &str, value: T) -> Arc<T> {
    let value = Arc::new(value);
    if let Ok(mut entries) = map.write() {
        entries.insert(key.to_owned(), Arc::clone(&value));
    }
    value
}

fn internal(what: &str, error: &dyn std::fmt::Display) -> WireError {
    tracing::error!(%error, "{what}");
    refuse(ErrorCode::Internal, what)
}

/// A tenant as the hot path holds it.
pub struct TenantLive {
    /// The directory's row.
    pub tenant: Tenant,
    /// Issuer URL.
    pub issuer: String,
    /// Rate budget.
    pub budget: RateBudget,
    /// Keys and documents (swapped on change).
    pub keys: ArcSwap<TenantKeys>,
    users: RwLock<HashMap<String, Arc<UserRecord>>>,
    apps: RwLock<HashMap<String, Arc<OidcApp>>>,
    sps: RwLock<HashMap<String, Arc<SamlSp>>>,
    /// Counters.
    pub metrics: TenantMetrics,
    name_id_key: aws_lc_rs::hmac::Key,
    slug: Arc<str>,
    /// When a request through the API last used it (unix ms).
    last_used_ms: AtomicU64,
}

impl TenantLive {
    /// Notes a use at `now_ms`. Stored at most once a second, so workers on
    /// other cores do not fight over the cache line on every request.
    fn touch(&self, now_ms: u64) {
        if now_ms >= self.last_used_ms.load(Ordering::Relaxed) + 1_000 {
            self.last_used_ms.store(now_ms, Ordering::Relaxed);
        }
    }

    /// Drops the cached users, apps and SPs (read again on next use).
    fn clear_caches(&self) {
        if let Ok(mut users) = self.users.write() {
            users.clear();
        }
        if let Ok(mut apps) = self.apps.write() {
            apps.clear();
        }
        if let Ok(mut sps) = self.sps.write() {
            sps.clear();
        }
    }
}

/// Who is calling, resolved once per connection.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The registered front end, if the certificate is known.
    pub frontend: Option<Frontend>,
    /// The certificate's fingerprint, if one was presented.
    pub fingerprint: Option<String>,
    /// The directory could not say whether the certificate is registered
    /// (it was unreachable): every request asks again, and is answered
    /// `unavailable` while it still cannot say. Never cached.
    pub unresolved: bool,
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

/// The appliance.
pub struct Appliance {
    config: ApplianceConfig,
    directory: Arc<Directory>,
    keys: Arc<KeyManager>,
    replica: Arc<Replica>,
    journal: Arc<AuditJournal>,
    tenants: Arc<TenantCache>,
    frontends: RwLock<HashMap<String, Option<Frontend>>>,
    /// Building and signing, by backend: [software, hsm].
    signing_latency: [crate::metrics::LatencyHistogram; 2],
    /// Where slow keys sign.
    signing: signing::SlowSigning,
    rng: SystemRandom,
    ready: Arc<AtomicBool>,
}

impl std::fmt::Debug for Appliance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appliance")
            .field("node", &self.config.node)
            .finish_non_exhaustive()
    }
}

/// Wall-clock milliseconds since the Unix epoch (what session, audit and
/// tenant-recency times are in).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::Text(k.to_owned()), v))
            .collect(),
    )
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

fn int(n: u64) -> Value {
    Value::Integer(n.into())
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
        let signing = signing::SlowSigning::start(config.signing_threads, config.signing_deadline)?;
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
            replica,
            journal,
            tenants,
            frontends: RwLock::default(),
            signing_latency: Default::default(),
            signing,
            rng: SystemRandom::new(),
            ready: Arc::new(AtomicBool::new(true)),
        })
    }

    /// The sessions: the table, its disk and, in a cluster, replication.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    fn validate_session(
        &self,
        tenant: &str,
        id: &SessionId,
        now: u64,
        touch: bool,
    ) -> Result<Validation, WireError> {
        let checked = if touch {
            self.replica.touch(tenant, id, now)
        } else {
            self.replica.validate(tenant, id, now)
        };
        checked.map_err(|_| {
            refuse(
                ErrorCode::Unavailable,
                "no fresh leases from a majority of the cluster: this node cannot be sure it saw every revocation",
            )
        })
    }

    /// Records how long building and signing took, per key backend.
    fn signed(&self, view: &signer::KeyRingView, algorithm: Algorithm, started: Instant) {
        let backend = view
            .active(algorithm)
            .map_or("unknown", |k| k.key().backend());
        let index = usize::from(backend != signer::SOFTWARE_BACKEND);
        self.signing_latency[index].record(started.elapsed());
    }

    /// Revokes and returns once no node accepts what was revoked.
    async fn revoke_strongly(&self, what: Revoked) -> Result<(), WireError> {
        self.replica
            .revoke(what)
            .await
            .map(drop)
            .map_err(|e| match e {
                ReplicaError::Durable(_) => internal("session store", &e),
                other => refuse(ErrorCode::Unavailable, other.to_string()),
            })
    }

    /// A mark revoking every session of `user` (or of the tenant) created
    /// until `now`, kept as long as any such session could live.
    fn mark(&self, live: &TenantLive, user: Option<&str>, now: u64) -> Mark {
        Mark {
            tenant: Arc::clone(&live.slug),
            user: user.map(Arc::from),
            before_ms: now,
            keep_until_ms: now + self.longest_session_ms(live),
        }
    }

    /// How long a session of the tenant can live: its policy now, or longer
    /// if sessions made under a longer one were seen.
    fn longest_session_ms(&self, live: &TenantLive) -> u64 {
        let policy = u64::from(live.tenant.session_absolute_s) * 1000;
        self.replica.table().longest_lifetime_ms(&live.slug, policy)
    }

    /// Whether the node serves session checks (false while it catches up).
    pub fn ready(&self) -> &Arc<AtomicBool> {
        &self.ready
    }

    /// The session table.
    pub fn sessions(&self) -> &Arc<SessionTable> {
        self.replica.table()
    }

    /// The audit journal.
    pub fn journal(&self) -> &Arc<AuditJournal> {
        &self.journal
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
            live.touch(now_ms());
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

    /// Applies a directory change notification.
    pub async fn apply_change(&self, change: directory::changes::Change) {
        use directory::changes::Change;
        let slug_of = |id: i64| self.tenants.slug_of(id);
        match change {
            Change::Reset => {
                // Anything may have changed while nobody listened: the
                // caches of users, apps and callers go at once; tenants load
                // again in the background (their documents keep serving).
                for live in self.tenants.loaded() {
                    live.clear_caches();
                }
                if let Ok(mut frontends) = self.frontends.write() {
                    frontends.clear();
                }
                self.tenants.refresh_all();
            }
            Change::User {
                tenant_id,
                user_id,
                status,
            } => {
                let Some(slug) = slug_of(tenant_id) else {
                    return;
                };
                let Some(live) = self.tenants.get(&slug) else {
                    return;
                };
                let mut login = None;
                if let Ok(mut users) = live.users.write() {
                    users.retain(|key, user| {
                        if user.id == user_id {
                            login = Some(user.login.clone());
                        }
                        user.id != user_id && *key != user_id
                    });
                }
                if matches!(status.as_deref(), Some("deactivated" | "suspended")) {
                    if login.is_none() {
                        if let Ok(scope) = self.directory.tenant(tenant_id).await {
                            login = scope.user(&user_id).await.ok().flatten().map(|u| u.login);
                        }
                    }
                    if let Some(login) = login {
                        let mark = self.mark(&live, Some(&login), now_ms());
                        if let Err(e) = self.revoke_strongly(Revoked::Mark(mark)).await {
                            tracing::error!(error = %e.message, "revoking the sessions of a deactivated user");
                        }
                    }
                }
            }
            Change::Membership { tenant_id, .. } => {
                if let Some(live) = slug_of(tenant_id).and_then(|s| self.tenants.get(&s)) {
                    if let Ok(mut users) = live.users.write() {
                        users.clear();
                    }
                }
            }
            Change::Apps { tenant_id } => {
                if let Some(live) = slug_of(tenant_id).and_then(|s| self.tenants.get(&s)) {
                    if let Ok(mut apps) = live.apps.write() {
                        apps.clear();
                    }
                    if let Ok(mut sps) = live.sps.write() {
                        sps.clear();
                    }
                }
            }
            Change::Tenant { tenant_id } => {
                // Its row changed (budget, status, key policy): loaded
                // again in place, or forgotten if it is gone.
                if let Some(slug) = slug_of(tenant_id) {
                    self.tenants.refresh(vec![slug]);
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

    async fn scope(&self, live: &TenantLive) -> Result<directory::TenantScope<'_>, WireError> {
        self.directory
            .tenant(live.tenant.id)
            .await
            .map_err(unavailable)
    }

    async fn user(&self, live: &TenantLive, login: &str) -> Result<Arc<UserRecord>, WireError> {
        if let Some(hit) = cached(&live.users, login) {
            return Ok(hit);
        }
        let scope = self.scope(live).await?;
        let user = scope
            .user(login)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| not_found("user", login, live))?;
        let record = UserRecord {
            id: user.user_id,
            login: user.login,
            email: user.email,
            name: user.display_name,
            active: user.status == UserStatus::Active,
            groups: user.groups,
            profile: user.profile,
        };
        Ok(remember(&live.users, login, record))
    }

    async fn app(&self, live: &TenantLive, name: &str) -> Result<Arc<OidcApp>, WireError> {
        if let Some(hit) = cached(&live.apps, name) {
            return Ok(hit);
        }
        let scope = self.scope(live).await?;
        let row = scope
            .oidc_app(name)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| not_found("app", name, live))?;
        let lifetime = |s: u32| {
            TokenLifetime::from_secs(u64::from(s)).map_err(|e| internal("app lifetime", &e))
        };
        let app = OidcApp {
            name: row.name,
            algorithm: row
                .algorithm
                .parse()
                .map_err(|e| internal("app algorithm", &e))?,
            id_token_lifetime: lifetime(row.id_token_ttl_s)?,
            access_token_lifetime: lifetime(row.access_token_ttl_s)?,
            claims: row.claim_mapping,
        };
        Ok(remember(&live.apps, name, app))
    }

    async fn sp(&self, live: &TenantLive, name: &str) -> Result<Arc<SamlSp>, WireError> {
        if let Some(hit) = cached(&live.sps, name) {
            return Ok(hit);
        }
        let scope = self.scope(live).await?;
        let row = scope
            .saml_sp(name)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| not_found("SP", name, live))?;
        let sp = SamlSp {
            name: row.name,
            entity_id: row.entity_id,
            acs_url: row.acs_urls.first().cloned().unwrap_or_default(),
            name_id_format: match row.name_id_format.as_str() {
                "persistent" => NameIdFormat::Persistent,
                "unspecified" => NameIdFormat::Unspecified,
                _ => NameIdFormat::EmailAddress,
            },
            algorithm: row
                .algorithm
                .parse()
                .map_err(|e| internal("sp algorithm", &e))?,
            attributes: row.attribute_mapping,
            sign_assertion: row.sign_assertion,
            sign_response: row.sign_response,
        };
        Ok(remember(&live.sps, name, sp))
    }

    fn session(
        &self,
        live: &TenantLive,
        session: &str,
        user: &UserRecord,
    ) -> Result<SessionFacts, WireError> {
        if !self.ready.load(Ordering::Acquire) {
            return Err(refuse(
                ErrorCode::Unavailable,
                "node is catching up with its peers",
            ));
        }
        let id = SessionId::parse(session)
            .map_err(|_| refuse(ErrorCode::SessionInvalid, "malformed session id"))?;
        match self.validate_session(&live.slug, &id, now_ms(), false)? {
            Validation::Valid(view) if **view.user() == *user.login => Ok(SessionFacts {
                id: session.to_owned(),
                auth_time: Timestamp::from_secs(view.auth_time_ms() / 1000),
                amr: view.amr().to_vec(),
            }),
            Validation::Valid(_) => Err(refuse(
                ErrorCode::SessionInvalid,
                "session belongs to another user",
            )),
            other => Err(refuse(
                ErrorCode::SessionInvalid,
                format!("session {}", validation_name(&other)),
            )),
        }
    }

    async fn audit(
        &self,
        live: &TenantLive,
        kind: &str,
        detail: serde_json::Value,
    ) -> Result<(), WireError> {
        self.journal
            .append(live.tenant.id, kind, detail, now_ms())
            .await
            .map(drop)
            .map_err(|e| internal("audit journal", &e))
    }

    async fn issue(&self, caller: &Caller, operation: &Operation) -> Result<Value, WireError> {
        let started = Instant::now();
        let (tenant, user, session) = match operation {
            Operation::IdToken {
                tenant,
                user,
                session,
                ..
            }
            | Operation::AccessToken {
                tenant,
                user,
                session,
                ..
            }
            | Operation::Saml {
                tenant,
                user,
                session,
                ..
            } => (tenant, user, session),
            _ => return Err(refuse(ErrorCode::Internal, "not an issuing operation")),
        };
        let live = self.tenant(tenant).await?;
        let outcome = self
            .issue_for(&live, caller, operation, user, session)
            .await;
        match &outcome {
            Ok((kind, _)) => {
                live.metrics.issued[*kind].fetch_add(1, Ordering::Relaxed);
                live.metrics.issue_latency.record(started.elapsed());
            }
            Err(error) => live.metrics.refuse(error.code),
        }
        outcome.map(|(_, value)| value)
    }

    async fn issue_for(
        &self,
        live: &TenantLive,
        caller: &Caller,
        operation: &Operation,
        login: &str,
        session: &str,
    ) -> Result<(usize, Value), WireError> {
        if !live.budget.try_acquire(Instant::now()) {
            return Err(refuse(
                ErrorCode::RateLimited,
                format!(
                    "tenant {} is over its budget of {}/s",
                    live.slug,
                    live.budget.rate()
                ),
            ));
        }
        if !live.tenant.active {
            return Err(refuse(
                ErrorCode::Forbidden,
                format!("tenant {} is suspended", live.slug),
            ));
        }
        let user = self.user(live, login).await?;
        let facts = self.session(live, session, &user)?;
        if !user.active {
            return Err(refuse(
                ErrorCode::UserInactive,
                format!("user {login} is not active"),
            ));
        }
        let keys = live.keys.load();
        let now = Timestamp::from_system_time(SystemTime::now());
        let (kind, issued): (usize, Issued) = match operation {
            Operation::IdToken { app, nonce, .. } => {
                let app = self.app(live, app).await?;
                let signing = Instant::now();
                let pending = issue::jwt_to_sign(
                    &keys.view,
                    &live.issuer,
                    &app,
                    &user,
                    &facts,
                    nonce.as_deref(),
                    None,
                    now,
                    &self.rng,
                )
                .map_err(|e| internal("signing", &e))?;
                let issued = self.sign_jwt(pending).await?;
                self.signed(&keys.view, app.algorithm, signing);
                (0, issued)
            }
            Operation::AccessToken { app, scope, .. } => {
                let app = self.app(live, app).await?;
                let signing = Instant::now();
                let pending = issue::jwt_to_sign(
                    &keys.view,
                    &live.issuer,
                    &app,
                    &user,
                    &facts,
                    None,
                    Some(scope),
                    now,
                    &self.rng,
                )
                .map_err(|e| internal("signing", &e))?;
                let issued = self.sign_jwt(pending).await?;
                self.signed(&keys.view, app.algorithm, signing);
                (1, issued)
            }
            Operation::Saml {
                sp, in_response_to, ..
            } => {
                let sp = self.sp(live, sp).await?;
                let signing = Instant::now();
                let issued = self
                    .saml(live, &sp, &user, facts, in_response_to.clone(), now)
                    .await?;
                self.signed(&keys.view, sp.algorithm, signing);
                (2, issued)
            }
            _ => return Err(refuse(ErrorCode::Internal, "not an issuing operation")),
        };
        let caller_name = caller.frontend.as_ref().map_or("", |f| f.name.as_str());
        self.audit(live, &format!("issue.{}", operation.name()), serde_json::json!({"user": user.id, "kid": issued.kid, "id": issued.id, "caller": caller_name}))
            .await?;
        let mut fields = vec![
            (
                if kind == 2 { "response" } else { "token" },
                text(issued.token),
            ),
            ("kid", text(issued.kid)),
            ("alg", text(issued.algorithm.name())),
            ("expires_at", int(issued.expires_at.secs())),
        ];
        if let Some(acs) = issued.acs {
            fields.push(("acs", text(acs)));
        }
        Ok((kind, map(fields)))
    }

    async fn sessions_op(
        &self,
        caller: &Caller,
        operation: &Operation,
    ) -> Result<Value, WireError> {
        let tenant = operation.tenant().unwrap_or_default();
        let live = self.tenant(tenant).await?;
        let caller_name = caller
            .frontend
            .as_ref()
            .map_or("", |f| f.name.as_str())
            .to_owned();
        let now = now_ms();
        let parse = |s: &str| {
            SessionId::parse(s)
                .map_err(|_| refuse(ErrorCode::SessionInvalid, "malformed session id"))
        };
        let outcome = match operation {
            Operation::SessionCreate {
                user, amr, client, ..
            } => {
                let record = self.user(&live, user).await?;
                if !record.active {
                    return Err(refuse(
                        ErrorCode::UserInactive,
                        format!("user {user} is not active"),
                    ));
                }
                let policy = SessionPolicy {
                    absolute_ms: u64::from(live.tenant.session_absolute_s) * 1000,
                    idle_ms: u64::from(live.tenant.session_idle_s) * 1000,
                };
                let created = self
                    .replica
                    .table()
                    .create(
                        &live.slug,
                        &record.login,
                        amr.clone(),
                        client.clone(),
                        policy,
                        now,
                        &self.rng,
                    )
                    .map_err(|e| internal("session id", &e))?;
                self.replica
                    .created(created.clone())
                    .await
                    .map_err(|e| internal("session store", &e))?;
                self.audit(
                    &live,
                    "session.create",
                    serde_json::json!({"user": record.id, "caller": caller_name}),
                )
                .await?;
                map(vec![
                    ("session", text(created.id.to_string())),
                    ("expires_at", int(created.expires_ms / 1000)),
                    (
                        "idle_expires_at",
                        int(
                            (created.last_seen_ms + created.idle_ms).min(created.expires_ms) / 1000,
                        ),
                    ),
                ])
            }
            Operation::SessionValidate { session, .. }
            | Operation::SessionTouch { session, .. } => {
                if !self.ready.load(Ordering::Acquire) {
                    return Err(refuse(
                        ErrorCode::Unavailable,
                        "node is catching up with its peers",
                    ));
                }
                let id = parse(session)?;
                let touch = matches!(operation, Operation::SessionTouch { .. });
                let validation = self.validate_session(&live.slug, &id, now, touch)?;
                match validation {
                    Validation::Valid(view) => map(vec![
                        ("user", text(view.user().to_string())),
                        ("auth_time", int(view.auth_time_ms() / 1000)),
                        (
                            "amr",
                            Value::Array(view.amr().iter().map(|a| text(a.clone())).collect()),
                        ),
                        ("expires_at", int(view.expires_ms / 1000)),
                        ("idle_expires_at", int(view.idle_expires_ms / 1000)),
                    ]),
                    other => {
                        return Err(refuse(
                            ErrorCode::SessionInvalid,
                            format!("session {}", validation_name(&other)),
                        ))
                    }
                }
            }
            Operation::SessionRevoke { session, .. } => {
                let id = parse(session)?;
                let keep_until_ms = match self.replica.table().record(&id) {
                    Some(known) if !known.user.is_empty() => known.expires_ms,
                    _ => now + self.longest_session_ms(&live),
                };
                self.revoke_strongly(Revoked::Session {
                    tenant: Arc::clone(&live.slug),
                    id,
                    keep_until_ms,
                })
                .await?;
                self.audit(
                    &live,
                    "session.revoke",
                    serde_json::json!({"caller": caller_name}),
                )
                .await?;
                map(vec![("revoked", Value::Bool(true))])
            }
            Operation::UserRevokeSessions { user, .. } => {
                let record = self.user(&live, user).await?;
                self.revoke_strongly(Revoked::Mark(self.mark(&live, Some(&record.login), now)))
                    .await?;
                self.audit(
                    &live,
                    "session.revoke_user",
                    serde_json::json!({"user": record.id, "caller": caller_name}),
                )
                .await?;
                map(vec![("revoked", Value::Bool(true))])
            }
            Operation::UserDeactivate { user, .. } => {
                let scope = self.scope(&live).await?;
                let user_id = scope
                    .set_user_status(user, UserStatus::Deactivated)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| not_found("user", user, &live))?;
                scope.commit().await.map_err(unavailable)?;
                // Committed: from here no token. Locally at once; other nodes
                // through the revocation of every session of the user.
                if let Ok(mut users) = live.users.write() {
                    users.retain(|_, u| u.id != user_id);
                }
                let login = self
                    .user(&live, user)
                    .await
                    .map(|u| u.login.clone())
                    .unwrap_or_else(|_| user.clone());
                self.revoke_strongly(Revoked::Mark(self.mark(&live, Some(&login), now)))
                    .await?;
                self.audit(
                    &live,
                    "user.deactivate",
                    serde_json::json!({"user": user_id, "caller": caller_name}),
                )
                .await?;
                map(vec![("deactivated", Value::Bool(true))])
            }
            _ => return Err(refuse(ErrorCode::Internal, "not a session operation")),
        };
        Ok(outcome)
    }

    async fn keys_op(&self, caller: &Caller, operation: &Operation) -> Result<Value, WireError> {
        let tenant = operation.tenant().unwrap_or_default();
        let live = self.tenant(tenant).await?;
        let caller_name = caller
            .frontend
            .as_ref()
            .map_or("", |f| f.name.as_str())
            .to_owned();
        let now = Timestamp::from_system_time(SystemTime::now());
        let result = match operation {
            Operation::KeysRotate { alg, .. } => {
                let only = match alg {
                    Some(name) => Some(name.parse::<Algorithm>().map_err(|_| {
                        refuse(ErrorCode::BadRequest, format!("unknown algorithm {name}"))
                    })?),
                    None => None,
                };
                let made = self
                    .keys
                    .rotate(&self.directory, &live.tenant, only, now)
                    .await
                    .map_err(|e| match e {
                        keys::KeyError::Busy => refuse(ErrorCode::Unavailable, e.to_string()),
                        other => internal("rotation", &other),
                    })?;
                self.audit(&live, "key.rotate", serde_json::json!({"kids": made.iter().map(|m| m.0.clone()).collect::<Vec<_>>(), "caller": caller_name})).await?;
                map(vec![(
                    "keys",
                    Value::Array(
                        made.into_iter()
                            .map(|(kid, algorithm, at)| {
                                map(vec![
                                    ("kid", text(kid)),
                                    ("alg", text(algorithm.name())),
                                    ("activates_at", int(at.secs())),
                                ])
                            })
                            .collect(),
                    ),
                )])
            }
            Operation::KeysRevoke { kid, .. } => {
                let replacement = self
                    .keys
                    .revoke(&self.directory, &live.tenant, kid, now)
                    .await
                    .map_err(|e| match e {
                        keys::KeyError::UnknownKey(k) => {
                            refuse(ErrorCode::NotFound, format!("no key {k} in {}", live.slug))
                        }
                        other => internal("revocation", &other),
                    })?;
                self.audit(&live, "key.revoke", serde_json::json!({"kid": kid, "replacement": replacement.clone().unwrap_or_default(), "caller": caller_name})).await?;
                map(vec![
                    ("revoked", text(kid.clone())),
                    ("replacement", replacement.map_or(Value::Null, text)),
                ])
            }
            _ => return Err(refuse(ErrorCode::Internal, "not a key operation")),
        };
        // Take the change at once here; other nodes hear it through NOTIFY.
        self.reload_keys(tenant).await?;
        Ok(result)
    }

    fn audit_refusal(
        &self,
        tenant_id: i64,
        caller: &Caller,
        operation: &str,
        code: ErrorCode,
        reason: &str,
    ) {
        // Rate and overload refusals are counted, not logged: a flood must
        // not become a flood of audit writes.
        if matches!(code, ErrorCode::RateLimited | ErrorCode::Overloaded) {
            return;
        }
        let journal = Arc::clone(&self.journal);
        let detail = serde_json::json!({
            "op": operation,
            "code": code.as_str(),
            "reason": reason.chars().take(200).collect::<String>(),
            "caller": caller.frontend.as_ref().map_or("", |f| f.name.as_str()),
            "fingerprint": caller.fingerprint.clone().unwrap_or_default(),
        });
        let at = now_ms();
        tokio::spawn(async move {
            if let Err(e) = journal.append(tenant_id, "refused", detail, at).await {
                tracing::error!(error = %e, "audit of a refusal failed");
            }
        });
    }

    async fn authorize(&self, caller: &Caller, operation: &Operation) -> Result<(), WireError> {
        if caller.unresolved {
            return Err(refuse(
                ErrorCode::Unavailable,
                "the directory cannot say whether this client certificate is registered",
            ));
        }
        let Some(frontend) = &caller.frontend else {
            let why = if caller.fingerprint.is_some() {
                "client certificate not registered"
            } else {
                "no client certificate"
            };
            return Err(refuse(ErrorCode::Unauthenticated, why));
        };
        if let Some(tenant) = operation.tenant() {
            if !frontend.allows(tenant) {
                return Err(refuse(
                    ErrorCode::Forbidden,
                    format!("{} may not act for tenant {tenant}", frontend.name),
                ));
            }
        }
        if operation.needs_admin() && !frontend.admin {
            return Err(refuse(
                ErrorCode::Forbidden,
                format!("{} needs an admin certificate", operation.name()),
            ));
        }
        Ok(())
    }

    /// Answers one operation (what the QUIC listener calls).
    ///
    /// # Errors
    /// The refusal, with its code.
    pub async fn call(&self, caller: &Caller, operation: Operation) -> Result<Value, WireError> {
        if let Operation::Health = operation {
            return Ok(map(vec![
                ("status", text("ok")),
                ("node", text(self.config.node.clone())),
                ("ready", Value::Bool(self.ready.load(Ordering::Acquire))),
            ]));
        }
        let resolved;
        let caller = if caller.unresolved {
            resolved = self.resolve_again(caller).await;
            &resolved
        } else {
            caller
        };
        let outcome = match self.authorize(caller, &operation).await {
            Err(e) => Err(e),
            Ok(()) if operation.signs() => self.issue(caller, &operation).await,
            Ok(()) if operation.is_cluster() => {
                cluster::answer(&self.directory, &self.replica, &operation).await
            }
            Ok(()) if operation.needs_admin() => self.keys_op(caller, &operation).await,
            Ok(()) => self.sessions_op(caller, &operation).await,
        };
        if let Err(error) = &outcome {
            let tenant_id = operation
                .tenant()
                .and_then(|t| self.tenants.get(t).map(|l| l.tenant.id))
                .unwrap_or(0);
            self.audit_refusal(
                tenant_id,
                caller,
                operation.name(),
                error.code,
                &error.message,
            );
        }
        outcome
    }
}

fn validation_name(validation: &Validation) -> &'static str {
    match validation {
        Validation::Valid(_) => "valid",
        Validation::NotFound => "unknown",
        Validation::Expired => "expired",
        Validation::IdleExpired => "idle too long",
        Validation::Revoked => "revoked",
    }
}

impl Handler for Appliance {
    type Caller = Caller;

    async fn caller(&self, certificate: Option<CertificateDer<'static>>) -> Caller {
        self.resolve_caller(certificate).await
    }

    async fn handle(&self, caller: &Caller, operation: Operation) -> Result<Value, WireError> {
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
        self.audit_refusal(0, caller, "frame", code, reason);
    }
}

/// Renders the appliance's metrics lines.
pub fn render_metrics(appliance: &Appliance, out: &mut String) {
    use std::fmt::Write;
    for live in appliance.loaded_tenants() {
        if !live.metrics.is_idle() {
            live.metrics.render(out, &live.slug);
        }
    }
    for (index, backend) in ["software", "pkcs11"].iter().enumerate() {
        appliance.signing_latency[index].render(
            out,
            "sigil_signing_latency_seconds",
            &format!("backend=\"{backend}\""),
        );
    }
    {
        let replica = appliance.replica();
        let _ = writeln!(
            out,
            "# TYPE sigil_cluster_lease_fresh gauge\nsigil_cluster_lease_fresh {}",
            u8::from(replica.can_serve())
        );
        let _ = writeln!(out, "sigil_cluster_ready {}", u8::from(replica.is_ready()));
        let lag = replica.lag();
        let _ = writeln!(
            out,
            "# TYPE sigil_replication_lag_seconds summary\nsigil_replication_lag_seconds_sum {}",
            lag.sum_us as f64 / 1e6
        );
        let _ = writeln!(out, "sigil_replication_lag_seconds_count {}", lag.count);
        let _ = writeln!(
            out,
            "sigil_replication_lag_max_seconds {}",
            lag.max_us as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# TYPE sigil_replication_dropped_total counter\nsigil_replication_dropped_total {}",
            lag.dropped
        );
    }
    let cache = appliance.tenant_cache();
    let (loaded, loading, queued) = cache.sizes();
    let loads = cache.stats();
    let _ = writeln!(
        out,
        "# TYPE sigil_tenants_loaded gauge\nsigil_tenants_loaded {loaded}\nsigil_tenant_loads_running {loading}\nsigil_tenant_loads_queued {queued}"
    );
    for (name, value) in [
        (
            "sigil_tenant_loads_total{outcome=\"loaded\"}",
            &loads.loaded,
        ),
        (
            "sigil_tenant_loads_total{outcome=\"failed\"}",
            &loads.failed,
        ),
        (
            "sigil_tenant_loads_total{outcome=\"refused\"}",
            &loads.refused,
        ),
        ("sigil_tenant_evictions_total", &loads.evicted),
    ] {
        let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
    }
    let table = appliance.sessions();
    let stats = appliance.journal().stats();
    let gauges = [
        ("sigil_sessions", table.len() as u64),
        (
            "sigil_sessions_created_total",
            table.stats().created.load(Ordering::Relaxed),
        ),
        (
            "sigil_sessions_reclaimed_total",
            table.stats().reclaimed.load(Ordering::Relaxed),
        ),
        ("sigil_audit_backlog", stats.queued.load(Ordering::Relaxed)),
        (
            "sigil_audit_appended_total",
            stats.appended.load(Ordering::Relaxed),
        ),
        (
            "sigil_audit_syncs_total",
            stats.syncs.load(Ordering::Relaxed),
        ),
        (
            "sigil_ready",
            u64::from(appliance.ready().load(Ordering::Relaxed)),
        ),
    ];
    for (name, value) in gauges {
        let _ = writeln!(out, "{name} {value}");
    }
    let _ = writeln!(
        out,
        "# TYPE sigil_audit_unshipped_records gauge\nsigil_audit_unshipped_records {}",
        stats.unshipped()
    );
    let _ = writeln!(
        out,
        "# TYPE sigil_audit_ship_lag_seconds gauge\nsigil_audit_ship_lag_seconds {}",
        stats.ship_lag(now_ms()).as_secs_f64()
    );
}
