//! The sign-on policy in the appliance (issue 18): each tenant's parsed
//! policy cached on the node ([`PolicySlot`], dropped by the change
//! notification of `signon_policies`), its evaluation for `authenticate`
//! ([`Appliance::sign_on`]), the end of an `MFA_ENROLL` sign-in
//! (`factor_activate` with its state), and the admin operations
//! `policy_set`, `policy_show`, `auth_settings_set`, `auth_settings_show`.
//! The policy itself (format, evaluation) is `auth/policy.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use directory::credentials::AuthSettings;
use sessions::SessionPolicy;
use sigil_proto::auth::{AuthSettingsChange, AuthSettingsShown, AuthStatus, PolicyShown, Secret};
use sigil_proto::{ErrorCode, WireError};

use super::audit::{AuditEvent, AuthAction};
use super::auth_ops::sha256;
use super::issue::UserRecord;
use super::live::TenantLive;
use super::seams::Clock;
use super::{internal, refuse, unavailable, Appliance};
use crate::auth::policy::{client_address, Decision, FactorDemand, Policy, SignOn};

/// A tenant's parsed sign-on policy on this node: read from the directory
/// at the first sign-in after it was dropped. A load that started before
/// a drop is not kept (the generation counts drops).
#[derive(Debug, Default)]
pub struct PolicySlot {
    current: RwLock<Option<Arc<Policy>>>,
    generation: AtomicU64,
}

impl PolicySlot {
    /// The cached policy, if loaded.
    pub fn get(&self) -> Option<Arc<Policy>> {
        self.current.read().ok().and_then(|p| p.clone())
    }

    /// Drops it (the directory said it changed).
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut current) = self.current.write() {
            *current = None;
        }
    }

    fn store(&self, generation: u64, policy: &Arc<Policy>) {
        if let Ok(mut current) = self.current.write() {
            if self.generation.load(Ordering::Acquire) == generation {
                *current = Some(Arc::clone(policy));
            }
        }
    }
}

/// The session lifetimes a rule set (none: the tenant's), carried in an
/// MFA state to the session made after the factor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Lifetime {
    pub absolute_s: Option<u32>,
    pub idle_s: Option<u32>,
}

impl Lifetime {
    /// The session policy for `live`'s sessions with these lifetimes; none
    /// when the rule set neither (the tenant's, as `session_create`).
    pub(super) fn session_policy(self, live: &TenantLive) -> Option<SessionPolicy> {
        if self.absolute_s.is_none() && self.idle_s.is_none() {
            return None;
        }
        let absolute = self.absolute_s.unwrap_or(live.tenant.session_absolute_s);
        let idle = self
            .idle_s
            .unwrap_or(live.tenant.session_idle_s)
            .min(absolute);
        Some(SessionPolicy {
            absolute_ms: u64::from(absolute) * 1000,
            idle_ms: u64::from(idle) * 1000,
        })
    }
}

/// What the policy asks of a sign-in it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// A code from the active factor (`MFA_REQUIRED`).
    Verify,
    /// A factor the user has none of (`MFA_ENROLL`).
    Enroll,
    /// Nothing more: signed in.
    Done,
}

/// The policy's answer for an allowed sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Allowed {
    pub factor: FactorDemand,
    pub lifetime: Lifetime,
}

impl Allowed {
    /// The next step for a user with (`enrolled`) or without an active
    /// factor.
    pub(super) fn step(self, enrolled: bool) -> Step {
        match (self.factor, enrolled) {
            (FactorDemand::IfEnrolled | FactorDemand::Required, true) => Step::Verify,
            (FactorDemand::Required, false) => Step::Enroll,
            (FactorDemand::IfEnrolled, false) | (FactorDemand::NotRequired, _) => Step::Done,
        }
    }
}

fn seconds(value: Option<u64>) -> Option<u32> {
    value.and_then(|s| u32::try_from(s).ok())
}

fn bad(message: impl Into<String>) -> WireError {
    refuse(ErrorCode::BadRequest, message)
}

impl Appliance {
    /// `live`'s sign-on policy: the node's parsed copy, or read and parsed.
    async fn signon_policy(&self, live: &TenantLive) -> Result<Arc<Policy>, WireError> {
        if let Some(policy) = live.policy.get() {
            return Ok(policy);
        }
        let generation = live.policy.generation.load(Ordering::Acquire);
        let scope = self.scope(live).await?;
        let stored = scope.signon_policy().await.map_err(unavailable)?;
        scope.commit().await.map_err(unavailable)?;
        // Checked when it was set; a text this build refuses fails closed.
        let policy = match stored {
            Some(stored) => {
                Policy::parse(&stored.policy).map_err(|e| internal("sign-on policy", &e))?
            }
            None => Policy::default(),
        };
        let policy = Arc::new(policy);
        live.policy.store(generation, &policy);
        Ok(policy)
    }

    /// Evaluates the sign-on policy for `user`, whose password matched: a
    /// deny is audited (with the rule's name, which the answer never
    /// tells) and answered `forbidden`.
    pub(super) async fn sign_on(
        &self,
        live: &TenantLive,
        caller: &str,
        user: &UserRecord,
        client_ip: Option<&str>,
        target: (Option<&str>, Option<&str>),
    ) -> Result<Allowed, WireError> {
        let policy = self.signon_policy(live).await?;
        let sign_on = SignOn {
            client_ip: client_address(client_ip),
            app: target.0,
            sp: target.1,
            groups: &user.groups,
        };
        match policy.evaluate(&sign_on) {
            Decision::Deny { rule } => {
                let event = AuditEvent::PolicyDenied {
                    user: user.id.clone(),
                    rule: rule.to_owned(),
                    client_ip: client_ip.map(str::to_owned),
                    caller: caller.to_owned(),
                };
                self.hot.audit(live, event).await?;
                Err(refuse(
                    ErrorCode::Forbidden,
                    "the tenant's sign-on policy does not allow this sign-in",
                ))
            }
            Decision::Allow {
                factor,
                lifetime_s,
                idle_s,
                ..
            } => Ok(Allowed {
                factor,
                lifetime: Lifetime {
                    absolute_s: seconds(lifetime_s),
                    idle_s: seconds(idle_s),
                },
            }),
        }
    }

    /// `factor_activate` with the state of an `MFA_ENROLL` answer: the
    /// state (single use, this user's, purpose `enroll`) is taken, the
    /// code activates the pending factor, and the user is signed in with
    /// `amr` `["pwd","otp"]` and the lifetimes of the rule that asked.
    pub(super) async fn enroll_complete(
        &self,
        live: &TenantLive,
        caller: &str,
        login: &str,
        state: &Secret,
        otp: &Secret,
    ) -> Result<AuthStatus, WireError> {
        let now_ms = self.hot.clock.now_ms();
        let user = self.hot.user(live, login).await?;
        let scope = self.scope(live).await?;
        let taken = scope
            .take_auth_state(&sha256(state.expose()), now_ms)
            .await
            .map_err(unavailable)?;
        scope.commit().await.map_err(unavailable)?;
        let Some(taken) = taken.filter(|s| s.purpose == "enroll" && s.user_id == user.id) else {
            self.audit_auth(live, AuthAction::FactorFailure, &user.id, None, caller)
                .await?;
            return Err(refuse(
                ErrorCode::InvalidCredentials,
                "the state is unknown, used, expired or another user's: authenticate again",
            ));
        };
        let client_ip = taken.client.as_deref();
        if !self.accept_code(live, &user.id, otp, true).await? {
            self.audit_auth(live, AuthAction::FactorFailure, &user.id, client_ip, caller)
                .await?;
            return Err(refuse(
                ErrorCode::InvalidCredentials,
                "invalid code, or no pending factor: authenticate again",
            ));
        }
        self.audit_auth(
            live,
            AuthAction::FactorActivated,
            &user.id,
            client_ip,
            caller,
        )
        .await?;
        let mut amr = taken.amr;
        amr.push("otp".into());
        let lifetime = Lifetime {
            absolute_s: taken.session_absolute_s,
            idle_s: taken.session_idle_s,
        };
        self.signed_in(live, caller, &user, amr, client_ip, lifetime)
            .await
    }

    /// `policy_set`: checks `text` (TOML, CIDRs, durations, and that the
    /// apps, SPs and groups it names exist in the tenant), stores it, and
    /// drops this node's copy at once (the others on the notification).
    pub(super) async fn policy_set(
        &self,
        live: &TenantLive,
        caller: &str,
        text: &str,
    ) -> Result<PolicyShown, WireError> {
        let policy = Policy::parse(text).map_err(|e| bad(e.0))?;
        let scope = self.scope(live).await?;
        for (rule, kind, name) in policy.references() {
            let exists = match kind {
                "app" => scope.oidc_app(name).await.map(|a| a.is_some()),
                "sp" => scope.saml_sp(name).await.map(|s| s.is_some()),
                _ => scope.has_group(name).await,
            }
            .map_err(unavailable)?;
            if !exists {
                let what = match kind {
                    "app" => "apps",
                    "sp" => "sps",
                    _ => "groups",
                };
                return Err(bad(format!(
                    "rule `{rule}`: `{what}`: no {kind} `{name}` in tenant {}",
                    live.slug
                )));
            }
        }
        let version = scope.set_signon_policy(text).await.map_err(unavailable)?;
        scope.commit().await.map_err(unavailable)?;
        live.policy.clear();
        let rules = policy.file().rules.len();
        self.hot
            .audit(
                live,
                AuditEvent::AuthConfigSet {
                    kind: "policy.set",
                    changed: vec![
                        ("version", version.to_string()),
                        ("rules", rules.to_string()),
                    ],
                    caller: caller.to_owned(),
                },
            )
            .await?;
        shown(live, version, text.to_owned(), &policy)
    }

    /// `policy_show`.
    pub(super) async fn policy_show(&self, live: &TenantLive) -> Result<PolicyShown, WireError> {
        let scope = self.scope(live).await?;
        let stored = scope.signon_policy().await.map_err(unavailable)?;
        scope.commit().await.map_err(unavailable)?;
        let (version, text) = stored.map_or((0, String::new()), |s| (s.version, s.policy));
        let policy = Policy::parse(&text).map_err(|e| internal("sign-on policy", &e))?;
        shown(live, version, text, &policy)
    }

    /// `auth_settings_set`: the tenant's settings with `change` applied,
    /// checked by the bounds of the `auth_settings` table (and argon2's
    /// own: at least 8 KiB per lane).
    pub(super) async fn auth_settings_set(
        &self,
        live: &TenantLive,
        caller: &str,
        change: &AuthSettingsChange,
    ) -> Result<AuthSettingsShown, WireError> {
        let scope = self.scope(live).await?;
        let mut settings = scope.auth_settings().await.map_err(unavailable)?;
        let mut changed = Vec::new();
        for (field, value, target, range) in [
            (
                "argon2_m_kib",
                change.argon2_m_kib,
                &mut settings.argon2_m_kib,
                8..=4_194_304,
            ),
            ("argon2_t", change.argon2_t, &mut settings.argon2_t, 1..=64),
            ("argon2_p", change.argon2_p, &mut settings.argon2_p, 1..=64),
            (
                "lockout_threshold",
                change.lockout_threshold,
                &mut settings.lockout_threshold,
                1..=1_000_000,
            ),
            (
                "lockout_period_s",
                change.lockout_period_s,
                &mut settings.lockout_s,
                1..=31_536_000,
            ),
        ] {
            let Some(value) = value else { continue };
            if !range.contains(&value) {
                return Err(bad(format!(
                    "`{field}` = {value} is outside {}..={}",
                    range.start(),
                    range.end()
                )));
            }
            *target = value;
            changed.push((field, value.to_string()));
        }
        if changed.is_empty() {
            return Err(bad("nothing to set"));
        }
        if settings.argon2_m_kib < 8 * settings.argon2_p {
            return Err(bad(format!(
                "`argon2_m_kib` = {} is below 8 KiB per lane (`argon2_p` = {})",
                settings.argon2_m_kib, settings.argon2_p
            )));
        }
        scope
            .set_auth_settings(&settings)
            .await
            .map_err(unavailable)?;
        scope.commit().await.map_err(unavailable)?;
        self.hot
            .audit(
                live,
                AuditEvent::AuthConfigSet {
                    kind: "auth_settings.set",
                    changed,
                    caller: caller.to_owned(),
                },
            )
            .await?;
        Ok(settings_shown(&settings))
    }

    /// `auth_settings_show`.
    pub(super) async fn auth_settings_show(
        &self,
        live: &TenantLive,
    ) -> Result<AuthSettingsShown, WireError> {
        let scope = self.scope(live).await?;
        let settings = scope.auth_settings().await.map_err(unavailable)?;
        scope.commit().await.map_err(unavailable)?;
        Ok(settings_shown(&settings))
    }
}

fn settings_shown(settings: &AuthSettings) -> AuthSettingsShown {
    AuthSettingsShown {
        argon2_m_kib: settings.argon2_m_kib,
        argon2_t: settings.argon2_t,
        argon2_p: settings.argon2_p,
        lockout_threshold: settings.lockout_threshold,
        lockout_period_s: settings.lockout_s,
    }
}

fn shown(
    live: &TenantLive,
    version: i64,
    policy: String,
    parsed: &Policy,
) -> Result<PolicyShown, WireError> {
    let rules = parsed
        .file()
        .rules
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| internal("sign-on policy", &e))?;
    Ok(PolicyShown {
        tenant: live.slug.to_string(),
        version,
        policy,
        rules,
    })
}
