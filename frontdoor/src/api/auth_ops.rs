//! The authentication operations (issue 18): `authenticate`,
//! `factor_verify`, `factor_enroll`, `factor_activate`, `password_change`
//! and the admin ones (`user_password_set`, `user_password_import`,
//! `user_unlock`). Hashing runs on the hashing pool ([`crate::auth::pool`]),
//! durable state (hashes, failure counters, factors, states) in the
//! directory, where every counter shared by nodes changes atomically. A
//! sign-in ends in a session made by `HotPath::session_create`, the path
//! `session_create` takes, with the `amr` proven here.

use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use directory::credentials::{AuthSettings, AuthState, Credential};
use directory::TenantScope;
use sigil_proto::auth::{AuthOp, AuthReply, AuthStatus, CredentialChanged, Secret};
use sigil_proto::{ErrorCode, WireError};
use signer::MasterKey;

use super::audit::{AuditEvent, AuthAction};
use super::issue::UserRecord;
use super::live::TenantLive;
use super::policy_ops::{Lifetime, Step};
use super::seams::Clock;
use super::{internal, refuse, unavailable, Appliance};
use crate::auth::password::{self, HashParams};
use crate::auth::pool::{HashPool, PoolSize};
use crate::auth::throttle::{FailureThrottle, ThrottleSettings};
use crate::auth::AuthError;

/// How long an MFA state lives.
pub(super) const STATE_MS: u64 = 5 * 60 * 1000;
/// The one factor type.
pub(super) const TOTP: &str = "totp";

/// The node's authentication settings (docs/config.md, `[auth]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// The hashing pool.
    pub pool: PoolSize,
    /// Per-address throttling of failures.
    pub throttle: ThrottleSettings,
}

/// What the authentication operations need beside the appliance: the
/// hashing pool, the master key that wraps TOTP secrets, the throttle,
/// and the dummy hashes verified for unknown users.
#[derive(Debug)]
pub struct Authentication {
    pool: HashPool,
    pub(super) master: Arc<MasterKey>,
    throttle: FailureThrottle,
    dummies: Mutex<Vec<(HashParams, Arc<String>)>>,
}

impl Authentication {
    /// Starts the hashing pool.
    ///
    /// # Errors
    /// When its threads cannot start.
    pub fn start(config: AuthConfig, master: Arc<MasterKey>) -> std::io::Result<Authentication> {
        Ok(Authentication {
            pool: HashPool::start(config.pool)?,
            master,
            throttle: FailureThrottle::new(config.throttle),
            dummies: Mutex::default(),
        })
    }

    /// The hashing pool (metrics, tests).
    pub fn pool(&self) -> &HashPool {
        &self.pool
    }

    /// A dummy hash with `params`, made once per parameter set (on the pool).
    async fn dummy(&self, params: HashParams) -> Result<Arc<String>, WireError> {
        let known = self.dummies.lock().ok().and_then(|d| {
            d.iter()
                .find(|(p, _)| *p == params)
                .map(|(_, h)| Arc::clone(h))
        });
        if let Some(hash) = known {
            return Ok(hash);
        }
        let made = Arc::new(hashing(
            self.pool.run(move || password::dummy_hash(params)).await,
        )?);
        if let Ok(mut dummies) = self.dummies.lock() {
            if dummies.len() < 16 {
                dummies.push((params, Arc::clone(&made)));
            }
        }
        Ok(made)
    }

    pub(super) fn wrap_context(tenant_id: i64, user_id: &str) -> Vec<u8> {
        format!("totp\0{tenant_id}\0{user_id}").into_bytes()
    }
}

/// A pool outcome as an answer: a full queue is `overloaded`.
fn hashing<T>(outcome: Result<Result<T, AuthError>, AuthError>) -> Result<T, WireError> {
    match outcome.and_then(|inner| inner) {
        Ok(value) => Ok(value),
        Err(AuthError::Overloaded) => Err(refuse(
            ErrorCode::Overloaded,
            "password hashing is at capacity; retry later",
        )),
        Err(AuthError::UnsupportedHash(why)) => Err(refuse(
            ErrorCode::BadRequest,
            format!("unsupported password hash: {why}"),
        )),
        Err(other) => Err(internal("password hashing", &other)),
    }
}

fn params(settings: &AuthSettings) -> HashParams {
    HashParams {
        m_kib: settings.argon2_m_kib,
        t: settings.argon2_t,
        p: settings.argon2_p,
    }
}

pub(super) fn invalid_credentials() -> WireError {
    refuse(ErrorCode::InvalidCredentials, "invalid user or password")
}

fn status(status: &str) -> AuthStatus {
    AuthStatus {
        status: status.to_owned(),
        session: None,
        expires_at: None,
        idle_expires_at: None,
        amr: None,
        state: None,
        factors: None,
        locked_until: None,
    }
}

pub(super) fn sha256(text: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// What a password check found (before any answer).
struct Checked {
    user: Option<Arc<UserRecord>>,
    settings: AuthSettings,
    credential: Option<Credential>,
    matches: bool,
    upgrade: bool,
}

impl Appliance {
    pub(super) fn authentication(&self) -> Result<&Authentication, WireError> {
        self.auth.get().ok_or_else(|| {
            refuse(
                ErrorCode::Unavailable,
                "authentication is not started on this node",
            )
        })
    }

    pub(super) async fn scope(&self, live: &TenantLive) -> Result<TenantScope<'_>, WireError> {
        self.directory
            .tenant(live.tenant.id)
            .await
            .map_err(unavailable)
    }

    /// Answers one authentication operation.
    ///
    /// # Errors
    /// The refusal, with its code.
    pub(super) async fn auth_op(
        &self,
        live: &TenantLive,
        caller: &str,
        op: &AuthOp,
    ) -> Result<AuthReply, WireError> {
        Ok(match op {
            AuthOp::Authenticate {
                user,
                password,
                client_ip,
                app,
                sp,
                ..
            } => AuthReply::Status(
                self.authenticate(
                    live,
                    caller,
                    user,
                    password,
                    client_ip.as_deref(),
                    (app.as_deref(), sp.as_deref()),
                )
                .await?,
            ),
            AuthOp::FactorVerify { state, otp, .. } => {
                AuthReply::Status(self.factor_verify(live, caller, state, otp).await?)
            }
            AuthOp::FactorEnroll {
                user, factor_type, ..
            } => AuthReply::Enrolled(self.factor_enroll(live, caller, user, factor_type).await?),
            AuthOp::FactorActivate {
                user,
                otp,
                state: None,
                ..
            } => AuthReply::Changed(self.factor_activate(live, caller, user, otp).await?),
            // Issue 18, sign-on policy (api/policy_ops.rs).
            AuthOp::FactorActivate {
                user,
                otp,
                state: Some(state),
                ..
            } => AuthReply::Status(self.enroll_complete(live, caller, user, state, otp).await?),
            AuthOp::PolicySet { policy, .. } => {
                AuthReply::Policy(self.policy_set(live, caller, policy).await?)
            }
            AuthOp::PolicyShow { .. } => AuthReply::Policy(self.policy_show(live).await?),
            AuthOp::AuthSettingsSet { settings, .. } => {
                AuthReply::Settings(self.auth_settings_set(live, caller, settings).await?)
            }
            AuthOp::AuthSettingsShow { .. } => {
                AuthReply::Settings(self.auth_settings_show(live).await?)
            }
            AuthOp::PasswordChange { user, old, new, .. } => {
                AuthReply::Changed(self.password_change(live, caller, user, old, new).await?)
            }
            AuthOp::UserPasswordSet { user, password, .. } => {
                AuthReply::Changed(self.password_set(live, caller, user, password).await?)
            }
            AuthOp::UserPasswordImport {
                user,
                password_hash,
                ..
            } => AuthReply::Changed(
                self.password_import(live, caller, user, password_hash)
                    .await?,
            ),
            AuthOp::UserUnlock { user, .. } => {
                AuthReply::Changed(self.user_unlock(live, caller, user).await?)
            }
        })
    }

    /// Looks `login` up, reads its credential and the tenant's settings,
    /// and verifies `password` on the hashing pool: against the stored
    /// hash, or a dummy hash with the tenant's parameters for an unknown
    /// user (or one without a password), so that both take the same
    /// work. A locked user is not verified (`matches` false, no hashing).
    async fn check_password(
        &self,
        live: &TenantLive,
        login: &str,
        password: &Secret,
        now_ms: u64,
    ) -> Result<Checked, WireError> {
        let auth = self.authentication()?;
        // Admitted before any read: past the pool's size, refused at once.
        let _admitted = hashing(Ok(auth.pool.admit()))?;
        let user = match self.hot.user(live, login).await {
            Ok(user) => Some(user),
            Err(e) if e.code == ErrorCode::NotFound => None,
            Err(e) => return Err(e),
        };
        // The same reads for an unknown user (by an id no user has).
        let user_id = user.as_ref().map_or("", |u| u.id.as_str());
        let scope = self.scope(live).await?;
        let settings = scope.auth_settings().await.map_err(unavailable)?;
        let credential = scope.credential(user_id).await.map_err(unavailable)?;
        scope.commit().await.map_err(unavailable)?;
        let locked = credential
            .as_ref()
            .and_then(|c| c.locked_until_ms)
            .is_some_and(|until| until > now_ms);
        if locked {
            return Ok(Checked {
                user,
                settings,
                credential,
                matches: false,
                upgrade: false,
            });
        }
        let params = params(&settings);
        let stored = match &credential {
            Some(c) => Arc::new(c.password_hash.clone()),
            None => auth.dummy(params).await?,
        };
        let secret = password.expose().as_bytes().to_vec();
        let verified = hashing(
            auth.pool
                .run(move || password::verify(&secret, &stored, params))
                .await,
        )?;
        let known = user.is_some() && credential.is_some();
        Ok(Checked {
            user,
            settings,
            credential,
            matches: verified.matches && known,
            upgrade: verified.upgrade,
        })
    }

    /// Counts a failure for `user_id` ("" for none: the same statement,
    /// touching no row) and says whether it locked the user.
    pub(super) async fn failed(
        &self,
        live: &TenantLive,
        user_id: &str,
        settings: &AuthSettings,
        now_ms: u64,
    ) -> Result<Option<u64>, WireError> {
        let lock_ms = u64::from(settings.lockout_s) * 1000;
        let scope = self.scope(live).await?;
        let failure = scope
            .record_failure(user_id, settings.lockout_threshold, now_ms, lock_ms)
            .await
            .map_err(unavailable)?;
        scope.commit().await.map_err(unavailable)?;
        Ok(failure
            .filter(|f| f.locked_now)
            .map(|_| (now_ms + lock_ms) / 1000))
    }

    pub(super) async fn audit_auth(
        &self,
        live: &TenantLive,
        action: AuthAction,
        user: &str,
        client_ip: Option<&str>,
        caller: &str,
    ) -> Result<(), WireError> {
        self.hot
            .audit(
                live,
                AuditEvent::Auth {
                    action,
                    user: user.to_owned(),
                    client_ip: client_ip.map(str::to_owned),
                    caller: caller.to_owned(),
                },
            )
            .await
    }

    /// A wrong password (or unknown user): counted, throttled, audited;
    /// `LOCKED_OUT` when this failure locked the user, else
    /// `invalid_credentials`.
    async fn refuse_password(
        &self,
        live: &TenantLive,
        caller: &str,
        checked: &Checked,
        client_ip: Option<&str>,
        now_ms: u64,
    ) -> Result<AuthStatus, WireError> {
        let auth = self.authentication()?;
        let user_id = checked.user.as_ref().map_or("", |u| u.id.as_str());
        if let Some(until) = checked.credential.as_ref().and_then(|c| c.locked_until_ms) {
            if until > now_ms {
                self.audit_auth(live, AuthAction::RefusedLocked, user_id, client_ip, caller)
                    .await?;
                return Ok(AuthStatus {
                    locked_until: Some(until / 1000),
                    ..status("LOCKED_OUT")
                });
            }
        }
        let user_with_credential = if checked.credential.is_some() {
            user_id
        } else {
            ""
        };
        let locked = self
            .failed(live, user_with_credential, &checked.settings, now_ms)
            .await?;
        if let Some(ip) = client_ip {
            auth.throttle.failed(live.tenant.id, ip, now_ms);
        }
        self.audit_auth(live, AuthAction::Failure, user_id, client_ip, caller)
            .await?;
        match locked {
            Some(until) => {
                self.audit_auth(live, AuthAction::LockedOut, user_id, client_ip, caller)
                    .await?;
                Ok(AuthStatus {
                    locked_until: Some(until),
                    ..status("LOCKED_OUT")
                })
            }
            None => Err(invalid_credentials()),
        }
    }

    /// Replaces a bcrypt or weaker argon2id hash once the password is
    /// known to be right; best effort (a full pool skips it: the next
    /// sign-in upgrades).
    async fn upgrade(
        &self,
        live: &TenantLive,
        caller: &str,
        checked: &Checked,
        password: &Secret,
    ) -> Result<(), WireError> {
        let (Some(user), Some(credential)) = (&checked.user, &checked.credential) else {
            return Ok(());
        };
        let auth = self.authentication()?;
        let params = params(&checked.settings);
        let secret = password.expose().as_bytes().to_vec();
        let Ok(Ok(new)) = auth.pool.run(move || password::hash(&secret, params)).await else {
            return Ok(());
        };
        let scope = self.scope(live).await?;
        let replaced = scope
            .upgrade_password_hash(&user.id, &credential.password_hash, &new)
            .await
            .map_err(unavailable)?;
        scope.commit().await.map_err(unavailable)?;
        if replaced {
            self.audit_auth(live, AuthAction::PasswordUpgraded, &user.id, None, caller)
                .await?;
        }
        Ok(())
    }

    /// `authenticate`; `target` is the app or SP signed in to, for the
    /// sign-on policy.
    async fn authenticate(
        &self,
        live: &TenantLive,
        caller: &str,
        login: &str,
        password: &Secret,
        client_ip: Option<&str>,
        target: (Option<&str>, Option<&str>),
    ) -> Result<AuthStatus, WireError> {
        let auth = self.authentication()?;
        let now_ms = self.hot.clock.now_ms();
        if let Some(ip) = client_ip {
            if !auth.throttle.allows(live.tenant.id, ip, now_ms) {
                return Err(refuse(
                    ErrorCode::RateLimited,
                    "too many failed sign-ins from this address; retry later",
                ));
            }
        }
        let checked = self.check_password(live, login, password, now_ms).await?;
        let Some(user) = checked.user.clone().filter(|_| checked.matches) else {
            return self
                .refuse_password(live, caller, &checked, client_ip, now_ms)
                .await;
        };
        if !user.active {
            return Err(refuse(
                ErrorCode::UserInactive,
                format!("user {login} is not active"),
            ));
        }
        // The sign-on policy (api/policy_ops.rs): a deny ends here.
        let allowed = self.sign_on(live, caller, &user, client_ip, target).await?;
        let scope = self.scope(live).await?;
        scope.record_success(&user.id).await.map_err(unavailable)?;
        let factors = scope.factors(&user.id).await.map_err(unavailable)?;
        scope.commit().await.map_err(unavailable)?;
        if checked.upgrade {
            self.upgrade(live, caller, &checked, password).await?;
        }
        let active: Vec<String> = factors
            .iter()
            .filter(|f| f.active)
            .map(|f| f.kind.clone())
            .collect();
        // The policy's factor demand (the default: a factor whenever the
        // user has an active one).
        let lifetime = allowed.lifetime;
        match allowed.step(!active.is_empty()) {
            Step::Verify => {
                let state = self.new_state(live, &user.id, client_ip, now_ms, "mfa", lifetime);
                let state = state.await?;
                self.audit_auth(live, AuthAction::MfaRequired, &user.id, client_ip, caller)
                    .await?;
                Ok(AuthStatus {
                    state: Some(state),
                    factors: Some(active),
                    ..status("MFA_REQUIRED")
                })
            }
            Step::Enroll => {
                let state = self.new_state(live, &user.id, client_ip, now_ms, "enroll", lifetime);
                let state = state.await?;
                self.audit_auth(live, AuthAction::MfaEnroll, &user.id, client_ip, caller)
                    .await?;
                Ok(AuthStatus {
                    state: Some(state),
                    factors: Some(vec![TOTP.into()]),
                    ..status("MFA_ENROLL")
                })
            }
            Step::Done => {
                let amr = vec!["pwd".into()];
                self.signed_in(live, caller, &user, amr, client_ip, lifetime)
                    .await
            }
        }
    }

    /// A new MFA state for `user_id` (`purpose` `mfa` or `enroll`, with
    /// the session lifetimes the policy set): 256 random bits, base64url;
    /// only its SHA-256 is stored.
    async fn new_state(
        &self,
        live: &TenantLive,
        user_id: &str,
        client_ip: Option<&str>,
        now_ms: u64,
        purpose: &str,
        lifetime: Lifetime,
    ) -> Result<String, WireError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| internal("state", &"no randomness"))?;
        let state = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let scope = self.scope(live).await?;
        scope
            .add_auth_state(
                &sha256(&state),
                &AuthState {
                    user_id: user_id.to_owned(),
                    purpose: purpose.into(),
                    amr: vec!["pwd".into()],
                    client: client_ip.map(str::to_owned),
                    expires_ms: now_ms + STATE_MS,
                    session_absolute_s: lifetime.absolute_s,
                    session_idle_s: lifetime.idle_s,
                },
            )
            .await
            .map_err(unavailable)?;
        scope.commit().await.map_err(unavailable)?;
        Ok(state)
    }

    /// The session that ends a sign-in, made on the path `session_create`
    /// takes, with `amr` as proven and the lifetimes the sign-on policy set.
    pub(super) async fn signed_in(
        &self,
        live: &TenantLive,
        caller: &str,
        user: &UserRecord,
        amr: Vec<String>,
        client_ip: Option<&str>,
        lifetime: Lifetime,
    ) -> Result<AuthStatus, WireError> {
        let created = self
            .hot
            .session_create_within(
                live,
                caller,
                &user.login,
                amr.clone(),
                client_ip.map(str::to_owned),
                lifetime.session_policy(live),
            )
            .await?;
        self.audit_auth(live, AuthAction::Success, &user.id, client_ip, caller)
            .await?;
        Ok(AuthStatus {
            session: Some(created.session),
            expires_at: Some(created.expires_at),
            idle_expires_at: Some(created.idle_expires_at),
            amr: Some(amr),
            ..status("SUCCESS")
        })
    }

    /// The hash of `password` with the tenant's parameters, made on the
    /// hashing pool (`overloaded` when its queue is full).
    pub(super) async fn hash_password(
        &self,
        live: &TenantLive,
        password: &Secret,
    ) -> Result<String, WireError> {
        let auth = self.authentication()?;
        let scope = self.scope(live).await?;
        let settings = scope.auth_settings().await.map_err(unavailable)?;
        drop(scope);
        let params = params(&settings);
        let secret = password.expose().as_bytes().to_vec();
        hashing(auth.pool.run(move || password::hash(&secret, params)).await)
    }

    /// Hashes `password` with the tenant's parameters and stores it for
    /// `user_id`, clearing failures and lockout.
    async fn store_password(
        &self,
        live: &TenantLive,
        user_id: &str,
        password: &Secret,
    ) -> Result<(), WireError> {
        let hash = self.hash_password(live, password).await?;
        let scope = self.scope(live).await?;
        scope
            .set_password_hash(user_id, &hash, true)
            .await
            .map_err(unavailable)?;
        scope.commit().await.map_err(unavailable)
    }

    /// `password_change`: the old password proves the user (counted like a
    /// sign-in: failures lock), the new one is stored.
    async fn password_change(
        &self,
        live: &TenantLive,
        caller: &str,
        login: &str,
        old: &Secret,
        new: &Secret,
    ) -> Result<CredentialChanged, WireError> {
        let now_ms = self.hot.clock.now_ms();
        let checked = self.check_password(live, login, old, now_ms).await?;
        let Some(user) = checked.user.clone().filter(|_| checked.matches) else {
            let answer = self
                .refuse_password(live, caller, &checked, None, now_ms)
                .await?;
            // LOCKED_OUT is a refusal here: no status to answer with.
            return Err(refuse(
                ErrorCode::InvalidCredentials,
                match answer.locked_until {
                    Some(_) => "the user is locked out",
                    None => "invalid user or password",
                },
            ));
        };
        self.store_password(live, &user.id, new).await?;
        self.audit_auth(live, AuthAction::PasswordChanged, &user.id, None, caller)
            .await?;
        Ok(CredentialChanged {
            activated: None,
            password_set: Some(true),
            unlocked: None,
        })
    }

    /// `user_password_set` (admin).
    async fn password_set(
        &self,
        live: &TenantLive,
        caller: &str,
        login: &str,
        password: &Secret,
    ) -> Result<CredentialChanged, WireError> {
        let user = self.hot.user(live, login).await?;
        self.store_password(live, &user.id, password).await?;
        self.audit_auth(live, AuthAction::PasswordSet, &user.id, None, caller)
            .await?;
        Ok(CredentialChanged {
            activated: None,
            password_set: Some(true),
            unlocked: None,
        })
    }

    /// `user_password_import` (admin): an argon2id or bcrypt `$2b$` hash,
    /// stored as it is (upgraded at the next successful sign-in when it
    /// is bcrypt or weaker than the tenant's parameters).
    async fn password_import(
        &self,
        live: &TenantLive,
        caller: &str,
        login: &str,
        hash: &Secret,
    ) -> Result<CredentialChanged, WireError> {
        password::check_importable(hash.expose())
            .map_err(|e| refuse(ErrorCode::BadRequest, e.to_string()))?;
        let user = self.hot.user(live, login).await?;
        let scope = self.scope(live).await?;
        scope
            .set_password_hash(&user.id, hash.expose(), true)
            .await
            .map_err(unavailable)?;
        scope.commit().await.map_err(unavailable)?;
        self.audit_auth(live, AuthAction::PasswordImported, &user.id, None, caller)
            .await?;
        Ok(CredentialChanged {
            activated: None,
            password_set: Some(true),
            unlocked: None,
        })
    }

    /// `user_unlock` (admin).
    async fn user_unlock(
        &self,
        live: &TenantLive,
        caller: &str,
        login: &str,
    ) -> Result<CredentialChanged, WireError> {
        let user = self.hot.user(live, login).await?;
        let scope = self.scope(live).await?;
        let unlocked = scope.unlock(&user.id).await.map_err(unavailable)?;
        scope.commit().await.map_err(unavailable)?;
        if !unlocked {
            return Err(refuse(
                ErrorCode::NotFound,
                format!("user {login} has no password"),
            ));
        }
        self.audit_auth(live, AuthAction::Unlocked, &user.id, None, caller)
            .await?;
        Ok(CredentialChanged {
            activated: None,
            password_set: None,
            unlocked: Some(true),
        })
    }
}
