//! What the appliance audits, as one typed enum: each record's kind (e.g.
//! `issue.id_token`) and detail come from here and nowhere else, so the
//! journal's vocabulary is this file (docs/operations.md lists it for
//! operators).

use directory::audit::Detail;
use sigil_proto::ErrorCode;

/// Which issuing operation signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueKind {
    /// An OIDC ID token.
    IdToken,
    /// An OAuth access token.
    AccessToken,
    /// A SAML Response.
    Saml,
}

impl IssueKind {
    /// Its index in [`crate::metrics::ISSUE_KINDS`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The operation's wire name.
    pub fn name(self) -> &'static str {
        crate::metrics::ISSUE_KINDS[self.index()]
    }
}

/// A credential event's kind (issue 18).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthAction {
    /// A sign-in ended with a session (`authenticate`, `factor_verify`).
    Success,
    /// The password was right; a factor is asked for next.
    MfaRequired,
    /// A wrong password, or an unknown user.
    Failure,
    /// The failure that locked the user out.
    LockedOut,
    /// A sign-in refused because the user is locked out.
    RefusedLocked,
    /// A wrong, replayed or expired one-time code or state.
    FactorFailure,
    /// A factor was enrolled (pending).
    FactorEnrolled,
    /// A factor was activated.
    FactorActivated,
    /// The user changed their password.
    PasswordChanged,
    /// An admin set a password.
    PasswordSet,
    /// An admin imported a password hash.
    PasswordImported,
    /// A stored hash was upgraded (bcrypt, or weaker argon2id).
    PasswordUpgraded,
    /// An admin ended a lockout.
    Unlocked,
    /// The password was right; the policy demands a factor the user has
    /// none of (`MFA_ENROLL`).
    MfaEnroll,
}

impl AuthAction {
    /// The record's kind.
    pub fn kind(self) -> &'static str {
        match self {
            AuthAction::Success => "auth.success",
            AuthAction::MfaRequired => "auth.mfa_required",
            AuthAction::Failure => "auth.failure",
            AuthAction::LockedOut => "auth.lockout",
            AuthAction::RefusedLocked => "auth.locked",
            AuthAction::FactorFailure => "factor.failure",
            AuthAction::FactorEnrolled => "factor.enroll",
            AuthAction::FactorActivated => "factor.activate",
            AuthAction::PasswordChanged => "password.change",
            AuthAction::PasswordSet => "password.set",
            AuthAction::PasswordImported => "password.import",
            AuthAction::PasswordUpgraded => "password.upgrade",
            AuthAction::Unlocked => "user.unlock",
            AuthAction::MfaEnroll => "auth.mfa_enroll",
        }
    }
}

/// One audit record's content. `caller` is the calling front end's name
/// (empty when it has none); `user` a user's stable id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditEvent {
    /// A token or assertion was signed.
    Issued {
        /// What was signed.
        kind: IssueKind,
        /// For whom.
        user: String,
        /// The key that signed.
        kid: String,
        /// The token's `jti` or the Response's ID.
        id: String,
        /// Who asked.
        caller: String,
    },
    /// A session was created.
    SessionCreated {
        /// For whom.
        user: String,
        /// Who asked.
        caller: String,
    },
    /// A session was revoked.
    SessionRevoked {
        /// Who asked.
        caller: String,
    },
    /// A client gave a token back over RFC 7009 (issue 19): an access
    /// token's jti went on the deny list, or a refresh token's family was
    /// revoked. Never the token itself.
    TokenRevoked {
        /// `access_token` or `refresh_token`.
        token_type: &'static str,
        /// The access token's `jti`, or the refresh family (hex).
        id: String,
        /// The app that gave it back (only its own tokens count).
        app: String,
    },
    /// Every session of a user was revoked.
    UserSessionsRevoked {
        /// Whose.
        user: String,
        /// Who asked.
        caller: String,
    },
    /// A user was deactivated.
    UserDeactivated {
        /// Who.
        user: String,
        /// Who asked.
        caller: String,
    },
    /// Keys were rotated.
    KeysRotated {
        /// The new keys' ids.
        kids: Vec<String>,
        /// Who asked.
        caller: String,
    },
    /// A key was revoked.
    KeyRevoked {
        /// Its id.
        kid: String,
        /// The key made to replace it, if it was active.
        replacement: Option<String>,
        /// Who asked.
        caller: String,
    },
    /// An admin changed the directory through an onboarding operation
    /// (issue 17): `tenant_add`, `app_remove`, `frontend_remove`, ...
    Admin {
        /// The operation's wire name.
        op: &'static str,
        /// What it changed: a tenant slug, app, SP or caller name.
        subject: String,
        /// What was set, by field (never secrets).
        changed: Vec<(&'static str, String)>,
        /// The admin caller's name.
        caller: String,
    },
    /// A SCIM write (issue 17).
    Scim(super::scim_ops::ScimChange),
    /// A SCIM token was made or revoked (its name only, never the token).
    ScimToken {
        /// `add` or `revoke`.
        action: &'static str,
        /// The token's name.
        name: String,
        /// Who asked.
        caller: String,
    },
    /// A back-channel logout token was delivered or given up on, or ended
    /// sessions were dropped from a full queue (issue 19).
    Logout {
        /// How it went (the record's kind).
        outcome: super::logout::LogoutOutcome,
        /// The app told (empty for a dropped job).
        app: String,
        /// Whose session: the user's id (a login or `tenant` for a dropped
        /// job, `session` for one session).
        subject: String,
        /// The logout token's `jti` (empty for a dropped job).
        jti: String,
        /// HTTP attempts made.
        attempts: u32,
        /// The last error or answer, in words.
        reason: String,
    },
    /// A retired refresh token was presented again (issue 19): its family
    /// and its session were revoked. Never the token itself.
    RefreshReuseDetected {
        /// The family, hex.
        family: String,
        /// The app it was issued to.
        app: String,
        /// Whose.
        user: String,
        /// Who presented it.
        caller: String,
    },
    /// A credential event (issue 18): a sign-in, a failure, a lockout, a
    /// factor or password change. Never a secret: no password, code, state
    /// or hash.
    Auth {
        /// What happened.
        action: AuthAction,
        /// The user's stable id; empty for an unknown user.
        user: String,
        /// The end user's address, when the front end gave it.
        client_ip: Option<String>,
        /// Who asked.
        caller: String,
    },
    /// The sign-on policy refused a sign-in whose password was right
    /// (issue 18): the rule that did, by name.
    PolicyDenied {
        /// The user's stable id.
        user: String,
        /// The rule's name (`rule N` when it has none).
        rule: String,
        /// The end user's address, when the front end gave it.
        client_ip: Option<String>,
        /// Who asked.
        caller: String,
    },
    /// An admin set a tenant's sign-on policy (`policy.set`) or its
    /// password and lockout settings (`auth_settings.set`) (issue 18).
    AuthConfigSet {
        /// `policy.set` or `auth_settings.set`.
        kind: &'static str,
        /// What was set, by field (the policy's version and rule count).
        changed: Vec<(&'static str, String)>,
        /// The admin caller's name.
        caller: String,
    },
    /// A request was refused (rate and overload refusals are counted, not
    /// audited).
    Refused {
        /// The operation's wire name (`frame` when the frame itself was bad).
        op: String,
        /// The code answered.
        code: ErrorCode,
        /// Why, cut at 200 characters.
        reason: String,
        /// The caller's name, if registered.
        caller: String,
        /// The caller's certificate fingerprint, if it presented one.
        fingerprint: String,
    },
}

impl AuditEvent {
    /// The record's kind, as the journal stores it.
    pub fn kind(&self) -> &'static str {
        match self {
            AuditEvent::Issued { kind, .. } => match kind {
                IssueKind::IdToken => "issue.id_token",
                IssueKind::AccessToken => "issue.access_token",
                IssueKind::Saml => "issue.saml",
            },
            AuditEvent::SessionCreated { .. } => "session.create",
            AuditEvent::SessionRevoked { .. } => "session.revoke",
            AuditEvent::TokenRevoked { .. } => "token.revoke",
            AuditEvent::UserSessionsRevoked { .. } => "session.revoke_user",
            AuditEvent::UserDeactivated { .. } => "user.deactivate",
            AuditEvent::KeysRotated { .. } => "key.rotate",
            AuditEvent::KeyRevoked { .. } => "key.revoke",
            AuditEvent::Admin { .. } => "admin",
            AuditEvent::Refused { .. } => "refused",
            AuditEvent::Logout { outcome, .. } => outcome.kind(),
            AuditEvent::RefreshReuseDetected { .. } => "refresh.reuse_detected",
            AuditEvent::Scim(change) => match change.operation {
                "create" => "scim.create",
                "replace" => "scim.replace",
                "patch" => "scim.patch",
                _ => "scim.delete",
            },
            AuditEvent::Auth { action, .. } => action.kind(),
            AuditEvent::PolicyDenied { .. } => "auth.policy_deny",
            AuditEvent::AuthConfigSet { kind, .. } => kind,
            AuditEvent::ScimToken { action, .. } => match *action {
                "add" => "scim_token.add",
                _ => "scim_token.revoke",
            },
        }
    }

    /// The record's detail, as the journal stores it: canonical bytes
    /// built field by field (keys in ascending order), no JSON.
    pub fn into_detail(self) -> Detail {
        let b = Detail::build();
        match self {
            AuditEvent::Issued {
                user,
                kid,
                id,
                caller,
                ..
            } => b
                .str("caller", &caller)
                .str("id", &id)
                .str("kid", &kid)
                .str("user", &user),
            AuditEvent::SessionCreated { user, caller }
            | AuditEvent::UserSessionsRevoked { user, caller }
            | AuditEvent::UserDeactivated { user, caller } => {
                b.str("caller", &caller).str("user", &user)
            }
            AuditEvent::SessionRevoked { caller } => b.str("caller", &caller),
            AuditEvent::TokenRevoked {
                token_type,
                id,
                app,
            } => b
                .str("app", &app)
                .str("id", &id)
                .str("token_type", token_type),
            AuditEvent::KeysRotated { kids, caller } => {
                b.str("caller", &caller).strs("kids", &kids)
            }
            AuditEvent::KeyRevoked {
                kid,
                replacement,
                caller,
            } => b
                .str("caller", &caller)
                .str("kid", &kid)
                .str("replacement", replacement.as_deref().unwrap_or_default()),
            AuditEvent::Admin {
                op,
                subject,
                changed,
                caller,
            } => b
                .str("caller", &caller)
                .map("changed", &changed)
                .str("op", op)
                .str("subject", &subject),
            AuditEvent::Scim(change) => b
                .strs("attributes", &change.attributes)
                .str("id", &change.id)
                .str("resource", change.resource)
                .str("token", &change.token),
            AuditEvent::ScimToken { name, caller, .. } => {
                b.str("caller", &caller).str("name", &name)
            }
            AuditEvent::Logout {
                app,
                subject,
                jti,
                attempts,
                reason,
                ..
            } => b
                .str("app", &app)
                .int("attempts", i64::from(attempts))
                .str("jti", &jti)
                .str("reason", &reason)
                .str("subject", &subject),
            AuditEvent::RefreshReuseDetected {
                family,
                app,
                user,
                caller,
            } => b
                .str("app", &app)
                .str("caller", &caller)
                .str("family", &family)
                .str("user", &user),
            AuditEvent::Auth {
                user,
                client_ip,
                caller,
                ..
            } => b
                .str("caller", &caller)
                .opt_str("client_ip", client_ip.as_deref())
                .str("user", &user),
            AuditEvent::PolicyDenied {
                user,
                rule,
                client_ip,
                caller,
            } => b
                .str("caller", &caller)
                .opt_str("client_ip", client_ip.as_deref())
                .str("rule", &rule)
                .str("user", &user),
            AuditEvent::AuthConfigSet {
                changed, caller, ..
            } => b.str("caller", &caller).map("changed", &changed),
            AuditEvent::Refused {
                op,
                code,
                reason,
                caller,
                fingerprint,
            } => b
                .str("caller", &caller)
                .str("code", code.as_str())
                .str("fingerprint", &fingerprint)
                .str("op", &op)
                .str("reason", &reason),
        }
        .finish()
    }

    /// The detail as JSON, as it was built before issue 16: the reference
    /// the canonical detail is compared with.
    #[cfg(test)]
    pub fn into_json_detail(self) -> serde_json::Value {
        use serde_json::json;
        match self {
            AuditEvent::Issued {
                user,
                kid,
                id,
                caller,
                ..
            } => json!({"user": user, "kid": kid, "id": id, "caller": caller}),
            AuditEvent::SessionCreated { user, caller }
            | AuditEvent::UserSessionsRevoked { user, caller }
            | AuditEvent::UserDeactivated { user, caller } => {
                json!({"user": user, "caller": caller})
            }
            AuditEvent::SessionRevoked { caller } => json!({"caller": caller}),
            AuditEvent::TokenRevoked {
                token_type,
                id,
                app,
            } => json!({"token_type": token_type, "id": id, "app": app}),
            AuditEvent::KeysRotated { kids, caller } => json!({"kids": kids, "caller": caller}),
            AuditEvent::KeyRevoked {
                kid,
                replacement,
                caller,
            } => json!({
                "kid": kid,
                "replacement": replacement.unwrap_or_default(),
                "caller": caller,
            }),
            AuditEvent::Admin {
                op,
                subject,
                changed,
                caller,
            } => {
                let changed: serde_json::Map<String, serde_json::Value> = changed
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
                    .collect();
                json!({"op": op, "subject": subject, "changed": changed, "caller": caller})
            }
            AuditEvent::Scim(change) => json!({
                "resource": change.resource,
                "id": change.id,
                "attributes": change.attributes,
                "token": change.token,
            }),
            AuditEvent::ScimToken { name, caller, .. } => json!({"name": name, "caller": caller}),
            AuditEvent::Logout {
                app,
                subject,
                jti,
                attempts,
                reason,
                ..
            } => json!({
                "app": app,
                "subject": subject,
                "jti": jti,
                "attempts": attempts,
                "reason": reason,
            }),
            AuditEvent::RefreshReuseDetected {
                family,
                app,
                user,
                caller,
            } => json!({"family": family, "app": app, "user": user, "caller": caller}),
            AuditEvent::Auth {
                user,
                client_ip,
                caller,
                ..
            } => json!({"user": user, "client_ip": client_ip, "caller": caller}),
            AuditEvent::PolicyDenied {
                user,
                rule,
                client_ip,
                caller,
            } => json!({"user": user, "rule": rule, "client_ip": client_ip, "caller": caller}),
            AuditEvent::AuthConfigSet {
                changed, caller, ..
            } => {
                let changed: serde_json::Map<String, serde_json::Value> = changed
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
                    .collect();
                json!({"changed": changed, "caller": caller})
            }
            AuditEvent::Refused {
                op,
                code,
                reason,
                caller,
                fingerprint,
            } => json!({
                "op": op,
                "code": code.as_str(),
                "reason": reason,
                "caller": caller,
                "fingerprint": fingerprint,
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_the_journal_vocabulary() {
        let issued = AuditEvent::Issued {
            kind: IssueKind::Saml,
            user: "u1".into(),
            kid: "k".into(),
            id: "_r".into(),
            caller: "web-1".into(),
        };
        assert_eq!(issued.kind(), "issue.saml");
        assert_eq!(
            issued.into_detail().to_json().unwrap(),
            serde_json::json!({"user": "u1", "kid": "k", "id": "_r", "caller": "web-1"})
        );
        let revoked = AuditEvent::KeyRevoked {
            kid: "k".into(),
            replacement: None,
            caller: String::new(),
        };
        assert_eq!(revoked.kind(), "key.revoke");
        assert_eq!(revoked.into_detail().to_json().unwrap()["replacement"], "");
        for kind in [IssueKind::IdToken, IssueKind::AccessToken, IssueKind::Saml] {
            let event = AuditEvent::Issued {
                kind,
                user: String::new(),
                kid: String::new(),
                id: String::new(),
                caller: String::new(),
            };
            assert_eq!(event.kind(), format!("issue.{}", kind.name()));
        }
    }

    /// Every event's canonical detail is exactly the JSON detail of before
    /// in canonical bytes: what `verify` recomputes from the jsonb row.
    #[test]
    fn every_detail_is_its_json_in_canonical_bytes() {
        use super::super::logout::LogoutOutcome;
        use super::super::scim_ops::ScimChange;
        let s = |v: &str| v.to_owned();
        let events = vec![
            AuditEvent::Issued {
                kind: IssueKind::IdToken,
                user: s("u"),
                kid: s("k"),
                id: s("j"),
                caller: s("c"),
            },
            AuditEvent::SessionCreated {
                user: s("u"),
                caller: s("c"),
            },
            AuditEvent::SessionRevoked { caller: s("c") },
            AuditEvent::TokenRevoked {
                token_type: "access_token",
                id: s("j"),
                app: s("a"),
            },
            AuditEvent::UserSessionsRevoked {
                user: s("u"),
                caller: s("c"),
            },
            AuditEvent::UserDeactivated {
                user: s("u"),
                caller: s("c"),
            },
            AuditEvent::KeysRotated {
                kids: vec![s("k1"), s("k2")],
                caller: s("c"),
            },
            AuditEvent::KeyRevoked {
                kid: s("k"),
                replacement: Some(s("k2")),
                caller: s("c"),
            },
            AuditEvent::KeyRevoked {
                kid: s("k"),
                replacement: None,
                caller: s("c"),
            },
            AuditEvent::Admin {
                op: "app_add",
                subject: s("app"),
                changed: vec![("zeta", s("1")), ("alpha", s("2"))],
                caller: s("c"),
            },
            AuditEvent::Scim(ScimChange {
                operation: "patch",
                resource: "User",
                id: s("i"),
                attributes: vec![s("name"), s("active")],
                token: s("t"),
            }),
            AuditEvent::ScimToken {
                action: "add",
                name: s("n"),
                caller: s("c"),
            },
            AuditEvent::Logout {
                outcome: LogoutOutcome::Failed,
                app: s("a"),
                subject: s("u"),
                jti: s("j"),
                attempts: 3,
                reason: s("r"),
            },
            AuditEvent::RefreshReuseDetected {
                family: s("f"),
                app: s("a"),
                user: s("u"),
                caller: s("c"),
            },
            AuditEvent::Auth {
                action: AuthAction::Failure,
                user: s("u"),
                client_ip: None,
                caller: s("c"),
            },
            AuditEvent::Auth {
                action: AuthAction::Success,
                user: s("u"),
                client_ip: Some(s("10.0.0.1")),
                caller: s("c"),
            },
            AuditEvent::PolicyDenied {
                user: s("u"),
                rule: s("r"),
                client_ip: Some(s("10.0.0.1")),
                caller: s("c"),
            },
            AuditEvent::AuthConfigSet {
                kind: "policy.set",
                changed: vec![("version", s("2")), ("rules", s("3"))],
                caller: s("c"),
            },
            AuditEvent::Refused {
                op: s("issue"),
                code: ErrorCode::BadRequest,
                reason: s("r"),
                caller: s("c"),
                fingerprint: s("f"),
            },
        ];
        for event in events {
            let json = event.clone().into_json_detail();
            assert_eq!(
                event.clone().into_detail(),
                Detail::from(&json),
                "{event:?}"
            );
            assert_eq!(event.into_detail().to_json().unwrap(), json);
        }
    }
}
