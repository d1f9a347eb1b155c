//! Building what the issuing operations return, as plain functions: the
//! inputs are the tenant's key-ring view and what the directory says about
//! the user and the app; no I/O, time and randomness passed in.

use std::collections::BTreeMap;

use aws_lc_rs::rand::SecureRandom;
use signer::jwt::{new_jti, TokenClaims, TokenLifetime, TokenType, UnsignedJwt};
use signer::saml::{build_signed_response, Attribute, NameId, NameIdFormat, ResponseSpec};
use signer::{Algorithm, KeyRingView, Timestamp};

/// An OIDC app as the hot path needs it (from the directory's
/// [`directory::OidcApp`] row).
#[derive(Debug, Clone, PartialEq)]
pub struct LiveApp {
    /// Its name (`client_id`), the token audience.
    pub name: String,
    /// The algorithm its tokens are signed with.
    pub algorithm: Algorithm,
    /// ID token lifetime.
    pub id_token_lifetime: TokenLifetime,
    /// Access token lifetime.
    pub access_token_lifetime: TokenLifetime,
    /// Which user attributes become which claims: claim name → attribute
    /// (`email`, `name`, `login`, `groups`, or a profile key).
    pub claims: BTreeMap<String, String>,
    /// Who may use it.
    pub access: Access,
    /// Where it takes back-channel logout tokens (issue 19), if anywhere.
    pub backchannel_logout_uri: Option<String>,
    /// Refresh tokens: allowed, and their lifetimes (issue 19).
    pub refresh: directory::RefreshSettings,
    /// Its registered JWKS, parsed (issue 19): the keys of its client
    /// assertions. None: it cannot call introspection or revocation.
    pub client_keys: Option<std::sync::Arc<crate::api::oauth::ClientJwks>>,
}

/// A SAML SP as the hot path needs it (from the directory's
/// [`directory::SamlSp`] row).
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSp {
    /// Its name in Sigil (e.g. `sp-rs256`).
    pub name: String,
    /// Its entity ID, the assertion's audience.
    pub entity_id: String,
    /// Where the browser posts the Response.
    pub acs_url: String,
    /// The NameID format it wants.
    pub name_id_format: NameIdFormat,
    /// The algorithm that signs for it.
    pub algorithm: Algorithm,
    /// Attribute name → user attribute.
    pub attributes: BTreeMap<String, String>,
    /// Sign the Assertion.
    pub sign_assertion: bool,
    /// Sign the Response.
    pub sign_response: bool,
    /// Who may use it.
    pub access: Access,
}

/// Who may use an app or SP, from its assignments: the members of
/// `groups` and the users in `users`. Nobody when both are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Assigned group names.
    pub groups: Vec<String>,
    /// Directly assigned user ids.
    pub users: Vec<String>,
}

impl Access {
    /// Whether `user` is assigned, directly or through a group.
    pub fn allows(&self, user: &UserRecord) -> bool {
        self.users.contains(&user.id) || user.groups.iter().any(|g| self.groups.contains(g))
    }

    /// The value of `attribute` of `user` as this app may see it: the
    /// `groups` attribute lists only the assigned groups the user is in.
    pub fn attribute(&self, user: &UserRecord, attribute: &str) -> Option<serde_json::Value> {
        if attribute == "groups" {
            let visible: Vec<serde_json::Value> = user
                .groups
                .iter()
                .filter(|g| self.groups.contains(g))
                .map(|g| serde_json::Value::from(g.as_str()))
                .collect();
            return Some(serde_json::Value::Array(visible));
        }
        user.attribute(attribute)
    }
}

impl From<directory::Assignments> for Access {
    fn from(assigned: directory::Assignments) -> Access {
        Access {
            groups: assigned.groups,
            users: assigned.users,
        }
    }
}

/// A user as the hot path needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    /// Stable id (the `sub`).
    pub id: String,
    /// Login name.
    pub login: String,
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Whether the user may get tokens.
    pub active: bool,
    /// Group names.
    pub groups: Vec<String>,
    /// Further profile attributes.
    pub profile: serde_json::Map<String, serde_json::Value>,
    /// When this node began reading this copy from the directory (ms since
    /// the epoch; 0 when not read by a node). A revocation mark of the user
    /// at or after it makes the copy stale (a deactivation elsewhere).
    pub loaded_ms: u64,
}

impl UserRecord {
    /// The value of a user attribute for a claim or SAML attribute: `id`,
    /// `login`, `email`, `name`, `groups`, or an attribute of the profile,
    /// where SCIM keeps what it provisions: a top-level attribute
    /// (`title`), a SCIM path (`name.givenName`, `emails`), or an
    /// attribute of the enterprise extension (`department`,
    /// `manager.value`, or with its full URN prefix).
    pub fn attribute(&self, name: &str) -> Option<serde_json::Value> {
        use serde_json::Value;
        match name {
            "id" => Some(Value::from(self.id.clone())),
            "login" => Some(Value::from(self.login.clone())),
            "email" => Some(Value::from(self.email.clone())),
            "name" => Some(Value::from(self.name.clone())),
            "groups" => Some(Value::from(self.groups.clone())),
            other => self.profile_attribute(other),
        }
    }

    /// A profile attribute by name or SCIM path (see [`UserRecord::attribute`]).
    fn profile_attribute(&self, path: &str) -> Option<serde_json::Value> {
        const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        if let Some(value) = self.profile.get(path) {
            return Some(value.clone());
        }
        let walk = |object: &serde_json::Map<String, serde_json::Value>, path: &str| {
            let (head, sub) = path
                .split_once('.')
                .map_or((path, None), |(h, s)| (h, Some(s)));
            let value = object.get(head)?;
            match sub {
                None => Some(value.clone()),
                Some(sub) => value.get(sub).cloned(),
            }
        };
        if let Some(rest) = path
            .strip_prefix(ENTERPRISE)
            .and_then(|r| r.strip_prefix(':'))
        {
            return walk(self.profile.get(ENTERPRISE)?.as_object()?, rest);
        }
        walk(&self.profile, path).or_else(|| walk(self.profile.get(ENTERPRISE)?.as_object()?, path))
    }
}

impl From<directory::User> for UserRecord {
    fn from(user: directory::User) -> UserRecord {
        UserRecord {
            active: user.status == directory::UserStatus::Active,
            id: user.user_id,
            login: user.login,
            email: user.email,
            name: user.display_name,
            groups: user.groups,
            profile: user.profile,
            loaded_ms: 0,
        }
    }
}

impl LiveApp {
    /// The app as the directory's row describes it.
    ///
    /// # Errors
    /// [`IssueError::Unusable`] for an unknown algorithm or a lifetime out
    /// of bounds.
    pub fn from_row(row: directory::OidcApp) -> Result<LiveApp, IssueError> {
        let unusable =
            |e: &dyn std::fmt::Display| IssueError::Unusable(format!("app {}: {e}", row.name));
        let lifetime = |s: u32| TokenLifetime::from_secs(u64::from(s)).map_err(|e| unusable(&e));
        Ok(LiveApp {
            algorithm: row.algorithm.parse().map_err(|e| unusable(&e))?,
            id_token_lifetime: lifetime(row.id_token_ttl_s)?,
            access_token_lifetime: lifetime(row.access_token_ttl_s)?,
            claims: row.claim_mapping.clone(),
            access: Access::from(row.assigned.clone()),
            backchannel_logout_uri: row.backchannel_logout_uri,
            refresh: row.refresh,
            client_keys: match &row.jwks {
                None => None,
                Some(jwks) => Some(std::sync::Arc::new(
                    crate::api::oauth::ClientJwks::parse(jwks).map_err(|e| unusable(&e))?,
                )),
            },
            name: row.name,
        })
    }
}

impl LiveSp {
    /// The SP as the directory's row describes it.
    ///
    /// # Errors
    /// [`IssueError::Unusable`] for an unknown algorithm.
    pub fn from_row(row: directory::SamlSp) -> Result<LiveSp, IssueError> {
        let algorithm = row
            .algorithm
            .parse()
            .map_err(|e| IssueError::Unusable(format!("SP {}: {e}", row.name)))?;
        Ok(LiveSp {
            acs_url: row.acs_urls.first().cloned().unwrap_or_default(),
            name_id_format: match row.name_id_format.as_str() {
                "persistent" => NameIdFormat::Persistent,
                "unspecified" => NameIdFormat::Unspecified,
                _ => NameIdFormat::EmailAddress,
            },
            algorithm,
            attributes: row.attribute_mapping,
            sign_assertion: row.sign_assertion,
            sign_response: row.sign_response,
            access: Access::from(row.assigned),
            entity_id: row.entity_id,
            name: row.name,
        })
    }
}

/// The session facts a token repeats.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionFacts {
    /// The session id.
    pub id: String,
    /// When the user authenticated.
    pub auth_time: Timestamp,
    /// How.
    pub amr: Vec<String>,
}

/// What an issuing operation returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Issued {
    /// The compact JWS, or the base64 SAMLResponse.
    pub token: String,
    /// The key that signed.
    pub kid: String,
    /// Its algorithm.
    pub algorithm: Algorithm,
    /// `exp` (or the assertion's NotOnOrAfter).
    pub expires_at: Timestamp,
    /// Token id (`jti`) or Response ID, for the audit record.
    pub id: String,
    /// Where to post a SAML Response.
    pub acs: Option<String>,
}

/// Why issuing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The tenant has no active key for the algorithm.
    #[error("no active {0} key")]
    NoActiveKey(Algorithm),
    /// Building or signing failed.
    #[error(transparent)]
    Signer(#[from] signer::Error),
    /// The directory's row for the app or SP cannot be used as it is.
    #[error("{0}")]
    Unusable(String),
}

fn claims_for(app: &LiveApp, user: &UserRecord) -> serde_json::Map<String, serde_json::Value> {
    app.claims
        .iter()
        .filter_map(|(claim, attribute)| {
            app.access
                .attribute(user, attribute)
                .map(|value| (claim.clone(), value))
        })
        .collect()
}

/// A token built and waiting for its signature: sign
/// [`PendingJwt::signing_input`] with [`PendingJwt::key`] (inline, or on
/// the signer pool for a slow key), then [`PendingJwt::finish`].
pub struct PendingJwt {
    unsigned: UnsignedJwt,
    key: std::sync::Arc<dyn signer::SigningKey>,
    algorithm: Algorithm,
    jti: String,
}

impl std::fmt::Debug for PendingJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingJwt")
            .field("jti", &self.jti)
            .finish_non_exhaustive()
    }
}

impl PendingJwt {
    /// The key that must sign.
    pub fn key(&self) -> &std::sync::Arc<dyn signer::SigningKey> {
        &self.key
    }

    /// The bytes to sign.
    pub fn signing_input(&self) -> &[u8] {
        self.unsigned.signing_input()
    }

    /// The token with `signature` appended.
    pub fn finish(self, signature: &[u8]) -> Issued {
        let expires_at = self.unsigned.expires_at();
        Issued {
            kid: self.key.kid().as_str().to_owned(),
            token: self.unsigned.finish(signature),
            algorithm: self.algorithm,
            expires_at,
            id: self.jti,
            acs: None,
        }
    }
}

/// An ID token (or access token when `scope` is `Some`) for `user` and
/// `app`, built for the tenant's active key for the app's algorithm and
/// waiting for its signature.
///
/// # Errors
/// [`IssueError::NoActiveKey`], or the signer's error.
#[allow(clippy::too_many_arguments)]
pub fn jwt_to_sign(
    view: &KeyRingView,
    issuer: &str,
    app: &LiveApp,
    user: &UserRecord,
    session: &SessionFacts,
    nonce: Option<&str>,
    scope: Option<&[String]>,
    now: Timestamp,
    rng: &dyn SecureRandom,
) -> Result<PendingJwt, IssueError> {
    let active = view
        .active(app.algorithm)
        .map_err(|_| IssueError::NoActiveKey(app.algorithm))?;
    let (token_type, lifetime) = match scope {
        None => (TokenType::IdToken, app.id_token_lifetime),
        Some(_) => (TokenType::AccessToken, app.access_token_lifetime),
    };
    let claims = TokenClaims {
        issuer: issuer.to_owned(),
        subject: user.id.clone(),
        audience: vec![app.name.clone()],
        auth_time: Some(session.auth_time),
        nonce: nonce.map(str::to_owned),
        amr: session.amr.clone(),
        session_id: scope
            .is_none()
            .then(|| signer::public_session_id(&session.id)),
        authorized_party: None,
        scope: scope.map(|s| s.join(" ")),
        client_id: scope.map(|_| app.name.clone()),
        custom: claims_for(app, user),
    };
    let jti = new_jti(rng)?;
    let unsigned = UnsignedJwt::build(active.header(token_type), &claims, now, lifetime, &jti)?;
    Ok(PendingJwt {
        unsigned,
        key: std::sync::Arc::clone(active.key()),
        algorithm: app.algorithm,
        jti,
    })
}

/// A signed SAML Response for `user` at `sp`. `certificate` is the
/// certificate of the tenant's active key for the SP's algorithm (the one
/// in the tenant's metadata); `name_id_key` derives persistent NameIDs.
///
/// # Errors
/// [`IssueError::NoActiveKey`], or the signer's error.
#[allow(clippy::too_many_arguments)]
pub fn saml(
    view: &KeyRingView,
    certificate: &dyn Fn(&str) -> Option<Vec<u8>>,
    issuer: &str,
    sp: &LiveSp,
    user: &UserRecord,
    session: &SessionFacts,
    in_response_to: Option<&str>,
    name_id_key: &aws_lc_rs::hmac::Key,
    now: Timestamp,
    rng: &dyn SecureRandom,
) -> Result<Issued, IssueError> {
    let active = view
        .active(sp.algorithm)
        .map_err(|_| IssueError::NoActiveKey(sp.algorithm))?;
    let kid = active.key().kid().as_str().to_owned();
    let certificate = certificate(&kid).ok_or(IssueError::NoActiveKey(sp.algorithm))?;
    let name_id = NameId {
        format: sp.name_id_format,
        value: match sp.name_id_format {
            NameIdFormat::EmailAddress => user.email.clone(),
            NameIdFormat::Persistent => {
                signer::saml::persistent_name_id(name_id_key, &user.id, &sp.entity_id)
            }
            NameIdFormat::Unspecified => user.login.clone(),
        },
    };
    let attributes: Vec<Attribute> = sp
        .attributes
        .iter()
        .filter_map(|(name, source)| {
            let values = match sp.access.attribute(user, source)? {
                serde_json::Value::Array(items) => items.iter().map(json_text).collect(),
                other => vec![json_text(&other)],
            };
            Some(Attribute {
                name: name.clone(),
                values,
            })
        })
        .collect();
    // The session index must not reveal the session id (a bearer secret).
    let session_index = signer::public_session_id(&session.id);
    let response = build_signed_response(
        &ResponseSpec {
            issuer,
            destination: &sp.acs_url,
            audience: &sp.entity_id,
            in_response_to,
            name_id: &name_id,
            session_index: &session_index,
            authn_instant: session.auth_time,
            authn_context_class:
                "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
            attributes: &attributes,
            validity_secs: 300,
            sign_assertion: sp.sign_assertion,
            sign_response: sp.sign_response,
        },
        active.key().as_ref(),
        &certificate,
        now,
        rng,
    )?;
    use base64::Engine;
    Ok(Issued {
        token: base64::engine::general_purpose::STANDARD.encode(response.xml.as_bytes()),
        kid,
        algorithm: sp.algorithm,
        expires_at: response.not_on_or_after,
        id: response.response_id,
        acs: Some(sp.acs_url.clone()),
    })
}

fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(id: &str, groups: &[&str]) -> UserRecord {
        UserRecord {
            id: id.into(),
            login: id.into(),
            email: format!("{id}@acme.test"),
            name: id.to_uppercase(),
            active: true,
            groups: groups.iter().map(|&g| g.to_owned()).collect(),
            profile: serde_json::Map::new(),
            loaded_ms: 0,
        }
    }

    #[test]
    fn assigned_through_a_group_or_directly_and_nobody_without_assignments() {
        let access = Access {
            groups: vec!["ops".into()],
            users: vec!["u-bob".into()],
        };
        assert!(access.allows(&user("u-alice", &["everyone", "ops"])));
        assert!(access.allows(&user("u-bob", &["everyone"])));
        assert!(!access.allows(&user("u-erin", &["everyone"])));
        assert!(!Access::default().allows(&user("u-alice", &["everyone", "ops"])));
    }

    #[test]
    fn the_groups_attribute_shows_only_assigned_groups() {
        let access = Access {
            groups: vec!["ops".into(), "everyone".into()],
            users: Vec::new(),
        };
        let alice = user("u-alice", &["engineering", "everyone", "ops"]);
        assert_eq!(
            access.attribute(&alice, "groups"),
            Some(serde_json::json!(["everyone", "ops"]))
        );
        assert_eq!(
            access.attribute(&alice, "email"),
            Some(serde_json::json!("u-alice@acme.test"))
        );
        assert_eq!(
            Access::default().attribute(&alice, "groups"),
            Some(serde_json::json!([]))
        );
    }

    #[test]
    fn claims_map_scim_paths_of_the_profile() {
        let profile = json!({
            "title": "Engineer",
            "name": {"givenName": "Peter", "familyName": "Gibbons"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "department": "TPS",
                "manager": {"value": "m1"}
            }
        });
        let user = UserRecord {
            active: true,
            id: "u1".into(),
            login: "peter".into(),
            email: "peter@initech.example".into(),
            name: "Peter Gibbons".into(),
            groups: vec!["everyone".into()],
            profile: profile.as_object().cloned().unwrap_or_default(),
            loaded_ms: 0,
        };
        assert_eq!(user.attribute("title"), Some(json!("Engineer")));
        assert_eq!(user.attribute("name.givenName"), Some(json!("Peter")));
        assert_eq!(user.attribute("department"), Some(json!("TPS")));
        assert_eq!(user.attribute("manager.value"), Some(json!("m1")));
        assert_eq!(
            user.attribute("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"),
            Some(json!("TPS"))
        );
        // The columns keep their names; unknown paths map to nothing.
        assert_eq!(user.attribute("name"), Some(json!("Peter Gibbons")));
        assert_eq!(user.attribute("name.middleName"), None);
        assert_eq!(user.attribute("costCenter"), None);
    }
}
