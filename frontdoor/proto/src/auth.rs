//! The authentication operations of `sigil/1` (issue 18; docs/protocol.md,
//! "Authentication"): Sigil verifies passwords and TOTP codes itself, so a
//! session's `amr` says what was proven. Each travels as
//! [`crate::Operation::Auth`] with its fields in the flat [`WireRequest`]
//! map; secrets ([`Secret`]) never show in `Debug` output.

use serde::{Deserialize, Serialize};

use crate::request::{field, optional, BadRequest, WireRequest};

/// A secret from the wire (a password, a one-time code): its `Debug` shows
/// nothing of it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// The secret's text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn secret(name: &str, value: Option<Secret>) -> Result<Secret, BadRequest> {
    field(name, value.map(|s| s.0)).map(Secret)
}

/// An authentication operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOp {
    /// `authenticate`: verifies a password; answers a status.
    Authenticate {
        /// Tenant slug.
        tenant: String,
        /// User login.
        user: String,
        /// The password.
        password: Secret,
        /// The end user's address, for per-address throttling and policy.
        client_ip: Option<String>,
        /// The OIDC app signed in to (for policy), if any.
        app: Option<String>,
        /// The SAML SP signed in to (for policy), if any.
        sp: Option<String>,
    },
    /// `factor_verify`: the second step after `MFA_REQUIRED`.
    FactorVerify {
        /// Tenant slug.
        tenant: String,
        /// The opaque state `authenticate` answered.
        state: Secret,
        /// The one-time code.
        otp: Secret,
    },
    /// `factor_enroll`: a new (pending) factor; answers its `otpauth_uri`.
    FactorEnroll {
        /// Tenant slug.
        tenant: String,
        /// User login.
        user: String,
        /// The factor type: `totp`.
        factor_type: String,
    },
    /// `factor_activate`: proves a first code of the pending factor; with
    /// the `state` of an `MFA_ENROLL` answer, also ends that sign-in
    /// (answers a status with a session).
    FactorActivate {
        /// Tenant slug.
        tenant: String,
        /// User login.
        user: String,
        /// The one-time code.
        otp: Secret,
        /// The `MFA_ENROLL` state, if this activation ends a sign-in.
        state: Option<Secret>,
    },
    /// `password_change`: the user's own change, proving the old one.
    PasswordChange {
        /// Tenant slug.
        tenant: String,
        /// User login.
        user: String,
        /// The current password.
        old: Secret,
        /// The new password.
        new: Secret,
    },
    /// `user_password_set`: an admin sets a password (admin only).
    UserPasswordSet {
        /// Tenant slug.
        tenant: String,
        /// User login.
        user: String,
        /// The new password.
        password: Secret,
    },
    /// `user_password_import`: an admin imports an argon2id or bcrypt
    /// `$2b$` hash (admin only).
    UserPasswordImport {
        /// Tenant slug.
        tenant: String,
        /// User login.
        user: String,
        /// The hash (PHC string or `$2b$...`).
        password_hash: Secret,
    },
    /// `user_unlock`: ends a user's lockout (admin only).
    UserUnlock {
        /// Tenant slug.
        tenant: String,
        /// User login.
        user: String,
    },
    /// `policy_set`: replaces the tenant's sign-on policy (admin only).
    PolicySet {
        /// Tenant slug.
        tenant: String,
        /// The `policy.toml` text (at most 64 KiB).
        policy: String,
    },
    /// `policy_show`: the tenant's sign-on policy (admin only).
    PolicyShow {
        /// Tenant slug.
        tenant: String,
    },
    /// `auth_settings_set`: changes the tenant's password hashing and
    /// lockout settings; what is not given stays (admin only).
    AuthSettingsSet {
        /// Tenant slug.
        tenant: String,
        /// The changes.
        settings: AuthSettingsChange,
    },
    /// `auth_settings_show`: the tenant's settings (admin only).
    AuthSettingsShow {
        /// Tenant slug.
        tenant: String,
    },
}

/// `auth_settings_set`: the settings to change (each optional).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthSettingsChange {
    /// argon2id memory cost, KiB (8..=4194304).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argon2_m_kib: Option<u32>,
    /// argon2id iterations (1..=64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argon2_t: Option<u32>,
    /// argon2id parallelism (1..=64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argon2_p: Option<u32>,
    /// Consecutive failures that lock a user (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockout_threshold: Option<u32>,
    /// How long a lockout lasts, seconds (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockout_period_s: Option<u32>,
}

/// The most bytes of a `policy_set` policy.
pub const MAX_POLICY: usize = 64 * 1024;

impl AuthOp {
    /// The operation named `op`, from the wire fields; `Ok(None)` when
    /// `op` is not an authentication operation.
    ///
    /// # Errors
    /// [`BadRequest`] naming the missing or malformed field (a password
    /// over 512 bytes is one).
    pub fn from_wire(op: &str, wire: &mut WireRequest) -> Result<Option<AuthOp>, BadRequest> {
        let w = wire;
        Ok(Some(match op {
            "authenticate" => {
                let (app, sp) = (optional("app", w.app.take())?, optional("sp", w.sp.take())?);
                if app.is_some() && sp.is_some() {
                    return Err(BadRequest("give `app` or `sp`, not both".into()));
                }
                AuthOp::Authenticate {
                    tenant: field("tenant", w.tenant.take())?,
                    user: field("user", w.user.take())?,
                    password: secret("password", w.password.take())?,
                    client_ip: optional("client_ip", w.client_ip.take())?,
                    app,
                    sp,
                }
            }
            "factor_verify" => AuthOp::FactorVerify {
                tenant: field("tenant", w.tenant.take())?,
                state: secret("state", w.state.take())?,
                otp: secret("otp", w.otp.take())?,
            },
            "factor_enroll" => AuthOp::FactorEnroll {
                tenant: field("tenant", w.tenant.take())?,
                user: field("user", w.user.take())?,
                factor_type: field("type", w.factor_type.take())?,
            },
            "factor_activate" => AuthOp::FactorActivate {
                tenant: field("tenant", w.tenant.take())?,
                user: field("user", w.user.take())?,
                otp: secret("otp", w.otp.take())?,
                state: optional("state", w.state.take().map(|s| s.0))?.map(Secret),
            },
            "password_change" => AuthOp::PasswordChange {
                tenant: field("tenant", w.tenant.take())?,
                user: field("user", w.user.take())?,
                old: secret("old", w.old.take())?,
                new: secret("new", w.new.take())?,
            },
            "user_password_set" => AuthOp::UserPasswordSet {
                tenant: field("tenant", w.tenant.take())?,
                user: field("user", w.user.take())?,
                password: secret("password", w.password.take())?,
            },
            "user_password_import" => AuthOp::UserPasswordImport {
                tenant: field("tenant", w.tenant.take())?,
                user: field("user", w.user.take())?,
                password_hash: secret("password_hash", w.password_hash.take())?,
            },
            "user_unlock" => AuthOp::UserUnlock {
                tenant: field("tenant", w.tenant.take())?,
                user: field("user", w.user.take())?,
            },
            "policy_set" => {
                let policy = w
                    .policy
                    .take()
                    .ok_or_else(|| BadRequest("missing field `policy`".into()))?;
                if policy.len() > MAX_POLICY {
                    return Err(BadRequest(format!(
                        "field `policy` exceeds {MAX_POLICY} bytes"
                    )));
                }
                AuthOp::PolicySet {
                    tenant: field("tenant", w.tenant.take())?,
                    policy,
                }
            }
            "policy_show" => AuthOp::PolicyShow {
                tenant: field("tenant", w.tenant.take())?,
            },
            "auth_settings_set" => AuthOp::AuthSettingsSet {
                tenant: field("tenant", w.tenant.take())?,
                settings: AuthSettingsChange {
                    argon2_m_kib: w.argon2_m_kib.take(),
                    argon2_t: w.argon2_t.take(),
                    argon2_p: w.argon2_p.take(),
                    lockout_threshold: w.lockout_threshold.take(),
                    lockout_period_s: w.lockout_period_s.take(),
                },
            },
            "auth_settings_show" => AuthOp::AuthSettingsShow {
                tenant: field("tenant", w.tenant.take())?,
            },
            _ => return Ok(None),
        }))
    }

    /// The operation's wire name.
    pub fn name(&self) -> &'static str {
        match self {
            AuthOp::Authenticate { .. } => "authenticate",
            AuthOp::FactorVerify { .. } => "factor_verify",
            AuthOp::FactorEnroll { .. } => "factor_enroll",
            AuthOp::FactorActivate { .. } => "factor_activate",
            AuthOp::PasswordChange { .. } => "password_change",
            AuthOp::UserPasswordSet { .. } => "user_password_set",
            AuthOp::UserPasswordImport { .. } => "user_password_import",
            AuthOp::UserUnlock { .. } => "user_unlock",
            AuthOp::PolicySet { .. } => "policy_set",
            AuthOp::PolicyShow { .. } => "policy_show",
            AuthOp::AuthSettingsSet { .. } => "auth_settings_set",
            AuthOp::AuthSettingsShow { .. } => "auth_settings_show",
        }
    }

    /// The tenant it acts for.
    pub fn tenant(&self) -> &str {
        match self {
            AuthOp::Authenticate { tenant, .. }
            | AuthOp::FactorVerify { tenant, .. }
            | AuthOp::FactorEnroll { tenant, .. }
            | AuthOp::FactorActivate { tenant, .. }
            | AuthOp::PasswordChange { tenant, .. }
            | AuthOp::UserPasswordSet { tenant, .. }
            | AuthOp::UserPasswordImport { tenant, .. }
            | AuthOp::UserUnlock { tenant, .. }
            | AuthOp::PolicySet { tenant, .. }
            | AuthOp::PolicyShow { tenant }
            | AuthOp::AuthSettingsSet { tenant, .. }
            | AuthOp::AuthSettingsShow { tenant } => tenant,
        }
    }

    /// Whether only admin callers may ask for it.
    pub fn needs_admin(&self) -> bool {
        matches!(
            self,
            AuthOp::UserPasswordSet { .. }
                | AuthOp::UserPasswordImport { .. }
                | AuthOp::UserUnlock { .. }
                | AuthOp::PolicySet { .. }
                | AuthOp::PolicyShow { .. }
                | AuthOp::AuthSettingsSet { .. }
                | AuthOp::AuthSettingsShow { .. }
        )
    }

    /// Fills `wire` (whose `op` and `tenant` are set) with its fields.
    pub fn fill_wire(&self, wire: &mut WireRequest) {
        match self.clone() {
            AuthOp::Authenticate {
                user,
                password,
                client_ip,
                app,
                sp,
                ..
            } => {
                (wire.user, wire.password, wire.client_ip) =
                    (Some(user), Some(password), client_ip);
                (wire.app, wire.sp) = (app, sp);
            }
            AuthOp::FactorVerify { state, otp, .. } => {
                (wire.state, wire.otp) = (Some(state), Some(otp));
            }
            AuthOp::FactorEnroll {
                user, factor_type, ..
            } => (wire.user, wire.factor_type) = (Some(user), Some(factor_type)),
            AuthOp::FactorActivate {
                user, otp, state, ..
            } => {
                (wire.user, wire.otp, wire.state) = (Some(user), Some(otp), state);
            }
            AuthOp::PasswordChange { user, old, new, .. } => {
                (wire.user, wire.old, wire.new) = (Some(user), Some(old), Some(new));
            }
            AuthOp::UserPasswordSet { user, password, .. } => {
                (wire.user, wire.password) = (Some(user), Some(password));
            }
            AuthOp::UserPasswordImport {
                user,
                password_hash,
                ..
            } => (wire.user, wire.password_hash) = (Some(user), Some(password_hash)),
            AuthOp::UserUnlock { user, .. } => wire.user = Some(user),
            AuthOp::PolicySet { policy, .. } => wire.policy = Some(policy),
            AuthOp::PolicyShow { .. } | AuthOp::AuthSettingsShow { .. } => {}
            AuthOp::AuthSettingsSet { settings, .. } => {
                (wire.argon2_m_kib, wire.argon2_t, wire.argon2_p) =
                    (settings.argon2_m_kib, settings.argon2_t, settings.argon2_p);
                (wire.lockout_threshold, wire.lockout_period_s) =
                    (settings.lockout_threshold, settings.lockout_period_s);
            }
        }
    }
}

/// `authenticate` and `factor_verify`: where the sign-in stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthStatus {
    /// `SUCCESS`, `MFA_REQUIRED`, `MFA_ENROLL` or `LOCKED_OUT`.
    pub status: String,
    /// `SUCCESS`: the new session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// `SUCCESS`: its absolute expiry, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// `SUCCESS`: its idle expiry, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_expires_at: Option<u64>,
    /// `SUCCESS`: what was proven, e.g. `["pwd"]`, `["pwd","otp"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// `MFA_REQUIRED`, `MFA_ENROLL`: the opaque, single-use state
    /// (5 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// `MFA_REQUIRED`: the factor types the user may verify, e.g. `["totp"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factors: Option<Vec<String>>,
    /// `LOCKED_OUT`: until when, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<u64>,
}

/// `factor_enroll`: the pending factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactorEnrolled {
    /// `totp`.
    #[serde(rename = "type")]
    pub factor_type: String,
    /// `otpauth://totp/...` (RFC 6238: SHA-1, 6 digits, 30 s): shown once,
    /// for the user's authenticator app.
    pub otpauth_uri: String,
}

/// The operations that change a credential: what they did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialChanged {
    /// `factor_activate`: the factor is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated: Option<bool>,
    /// `password_change`, `user_password_set`, `user_password_import`:
    /// the password (hash) is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_set: Option<bool>,
    /// `user_unlock`: the user is no longer locked out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlocked: Option<bool>,
}

/// `policy_set`, `policy_show`: the tenant's sign-on policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyShown {
    /// The tenant slug.
    pub tenant: String,
    /// Bumped by every `policy_set` (0: none was ever set).
    pub version: i64,
    /// The `policy.toml` text as set (empty: none).
    pub policy: String,
    /// The rules, in order, as JSON (`name`, `zones`, `apps`, `sps`,
    /// `groups`, `action`, `require_factor`, `session_lifetime`,
    /// `idle_timeout`); empty: the default policy.
    pub rules: Vec<serde_json::Value>,
}

/// `auth_settings_set`, `auth_settings_show`: the tenant's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthSettingsShown {
    /// argon2id memory cost, KiB.
    pub argon2_m_kib: u32,
    /// argon2id iterations.
    pub argon2_t: u32,
    /// argon2id parallelism.
    pub argon2_p: u32,
    /// Consecutive failures that lock a user.
    pub lockout_threshold: u32,
    /// How long a lockout lasts, seconds.
    pub lockout_period_s: u32,
}

/// The result of an authentication operation (each encodes as its own map).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AuthReply {
    /// `authenticate`, `factor_verify`.
    Status(AuthStatus),
    /// `factor_enroll`.
    Enrolled(FactorEnrolled),
    /// `factor_activate`, `password_change`, `user_password_set`,
    /// `user_password_import`, `user_unlock`.
    Changed(CredentialChanged),
    /// `policy_set`, `policy_show`.
    Policy(PolicyShown),
    /// `auth_settings_set`, `auth_settings_show`.
    Settings(AuthSettingsShown),
}

/// The typed calls of the authentication operations.
impl crate::Client {
    /// Calls `op` (any [`AuthOp`]) and decodes its result as `T`.
    ///
    /// # Errors
    /// As [`crate::Client::call_as`]; e.g. `invalid_credentials`,
    /// `overloaded`, `rate_limited`.
    pub async fn auth<T: serde::de::DeserializeOwned>(
        &self,
        op: AuthOp,
    ) -> Result<T, crate::CallError> {
        self.call_as(&crate::Operation::Auth(Box::new(op))).await
    }

    /// `authenticate` with a password.
    ///
    /// # Errors
    /// As [`crate::Client::auth`].
    pub async fn authenticate(
        &self,
        tenant: &str,
        user: &str,
        password: &str,
        client_ip: Option<&str>,
    ) -> Result<AuthStatus, crate::CallError> {
        self.auth(AuthOp::Authenticate {
            tenant: tenant.to_owned(),
            user: user.to_owned(),
            password: Secret(password.to_owned()),
            client_ip: client_ip.map(str::to_owned),
            app: None,
            sp: None,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Operation;

    #[test]
    fn secrets_travel_but_never_show_in_debug() {
        let op = Operation::Auth(Box::new(AuthOp::PasswordChange {
            tenant: "acme".into(),
            user: "alice".into(),
            old: Secret("old-secret".into()),
            new: Secret("new-secret".into()),
        }));
        let shown = format!("{op:?} {:?}", op.to_wire(1));
        assert!(
            !shown.contains("old-secret") && !shown.contains("new-secret"),
            "{shown}"
        );
        let back = Operation::from_wire(op.to_wire(1)).unwrap();
        assert_eq!(back, op);
    }

    #[test]
    fn an_oversized_password_is_a_bad_request() {
        let mut wire = Operation::Auth(Box::new(AuthOp::Authenticate {
            tenant: "acme".into(),
            user: "alice".into(),
            password: Secret("x".repeat(513)),
            client_ip: None,
            app: None,
            sp: None,
        }))
        .to_wire(1);
        assert!(Operation::from_wire(wire.clone()).is_err());
        wire.password = Some(Secret("x".repeat(512)));
        assert!(Operation::from_wire(wire.clone()).is_ok());
        wire.app = Some("a".into());
        wire.sp = Some("s".into());
        assert!(Operation::from_wire(wire).is_err());
    }
}
