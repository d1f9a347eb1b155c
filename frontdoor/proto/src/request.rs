//! The requests of `sigil/1`: the flat wire map other languages send
//! (docs/protocol.md, "Requests") and the checked [`Operation`] it becomes.
//!
//! Two stages, as the spec has them: decoding ([`crate::from_cbor`] into a
//! [`WireRequest`]) checks the type of every key the spec lists, in every
//! request, and ignores unknown keys whatever their value;
//! [`Operation::from_wire`] checks the text rules (non-empty, at most
//! [`MAX_FIELD`] bytes, no control characters) and list sizes of the keys
//! the operation reads, and of no other key.

use std::num::NonZeroU64;

use serde::{Deserialize, Serialize};

/// Longest accepted text field (tenant, user, app, session, nonce, ...), in
/// bytes.
pub const MAX_FIELD: usize = 512;
/// Most authentication-method references (`amr`) on one session.
pub const MAX_AMR: usize = 8;
/// Most scopes on one access token.
pub const MAX_SCOPES: usize = 32;

/// A request as it travels: one flat CBOR map. Which fields an operation
/// needs is in docs/protocol.md; [`Operation::from_wire`] checks them.
/// A key given as null counts as absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireRequest {
    /// Chosen by the client from 1 up, unique among its requests in flight
    /// on this stream; echoed in the response. 0 is reserved for the
    /// answer that closes a stream: the node closes a stream that sends it.
    pub id: u64,
    /// The operation's name, e.g. `id_token`.
    pub op: String,
    /// Tenant slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// User login (or id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// OIDC client (app) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// SAML SP name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp: Option<String>,
    /// Session id (base64url, 43 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// OIDC nonce to copy into the ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Access-token scopes, each an RFC 6749 scope-token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Vec<String>>,
    /// Authentication methods used for a new session (`pwd`, `otp`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// Free-form client description for a new session (user agent, IP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The AuthnRequest ID a SAML Response answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_response_to: Option<String>,
    /// Key id (keys_revoke).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Algorithm name (keys_rotate), e.g. `ES256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// A cluster node's name (cluster_add, cluster_remove).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// A cluster node's replication address `host:port` (cluster_add).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    // Onboarding operations (issue 17, crate::onboard).
    /// A display name (tenant_add), a caller's name (frontend_remove) or a
    /// SCIM token's name (scim_token_add, scim_token_revoke).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Claim (or SAML attribute) name → user attribute (app_add, sp_add).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<std::collections::BTreeMap<String, String>>,
    /// Assigned group names (app_add, sp_add).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assign: Option<Vec<String>>,
    /// Assigned users, logins or ids (app_add, sp_add).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assign_users: Option<Vec<String>>,
    /// Redirect URIs (app_add).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uris: Option<Vec<String>>,
    /// Where an OIDC app takes back-channel logout tokens (app_add, issue 19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// An OIDC app's JWKS, as JSON text (app_add, app_set_jwks; issue 19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// A SAML SP's entity ID (sp_add).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    /// A SAML SP's ACS URLs, default first (sp_add).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acs_urls: Option<Vec<String>>,
    /// `emailAddress`, `persistent` or `unspecified` (sp_add).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_id_format: Option<String>,
    /// Sign the Assertion (sp_add; default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_assertion: Option<bool>,
    // Refresh tokens (issue 19).
    /// Ask for a refresh token with the token (id_token, access_token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<bool>,
    /// The refresh token presented (refresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The app may hold refresh tokens (app_add; default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_tokens: Option<bool>,
    /// Absolute lifetime of its refresh tokens, seconds (app_add).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_absolute_s: Option<u32>,
    /// Idle lifetime of its refresh tokens, seconds (app_add).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_idle_s: Option<u32>,
    // Authentication operations (issue 18, crate::auth).
    /// A password (authenticate, user_password_set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<crate::auth::Secret>,
    /// The end user's address (authenticate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// The opaque MFA state (factor_verify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<crate::auth::Secret>,
    /// A one-time code (factor_verify, factor_activate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp: Option<crate::auth::Secret>,
    /// A factor type, `totp` (factor_enroll).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub factor_type: Option<String>,
    /// The current password (password_change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<crate::auth::Secret>,
    /// The new password (password_change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<crate::auth::Secret>,
    /// An imported password hash (user_password_import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<crate::auth::Secret>,
    // Sign-on policy and auth settings (issue 18, crate::auth).
    /// A `policy.toml` text (policy_set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// argon2id memory cost, KiB (auth_settings_set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argon2_m_kib: Option<u32>,
    /// argon2id iterations (auth_settings_set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argon2_t: Option<u32>,
    /// argon2id parallelism (auth_settings_set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argon2_p: Option<u32>,
    /// Consecutive failures that lock a user (auth_settings_set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockout_threshold: Option<u32>,
    /// Lockout period, seconds (auth_settings_set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockout_period_s: Option<u32>,
}

/// The operations of `sigil/1`, checked. Text fields are non-empty and at
/// most [`MAX_FIELD`] bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Is the node up, and is it ready to serve session checks?
    Health,
    /// An OIDC ID token for `user`, audience `app`.
    IdToken {
        /// Tenant slug.
        tenant: String,
        /// User login.
        user: String,
        /// OIDC app.
        app: String,
        /// The user's session, which must be valid.
        session: String,
        /// Copied into the token's `nonce` claim.
        nonce: Option<String>,
        /// Also a refresh token (issue 19), for apps allowed to hold them.
        offline: bool,
    },
    /// An OAuth access token (JWT) for `user`, audience `app`.
    AccessToken {
        /// Tenant slug.
        tenant: String,
        /// User login.
        user: String,
        /// OIDC app.
        app: String,
        /// The user's session, which must be valid.
        session: String,
        /// Granted scopes, each an RFC 6749 scope-token (printable ASCII
        /// without space, `"` or `\`); the token's `scope` claim is them
        /// joined by single spaces.
        scope: Vec<String>,
        /// Also a refresh token (issue 19), for apps allowed to hold them.
        offline: bool,
    },
    /// A refresh token exchanged for a new token of the kind its family
    /// began with and a new refresh token; the presented one is retired
    /// (issue 19).
    Refresh {
        /// Tenant slug.
        tenant: String,
        /// The OIDC app it was issued to.
        app: String,
        /// The refresh token.
        refresh_token: String,
        /// Access-token families only: a subset of the granted scopes;
        /// `None`: all of them.
        scope: Option<Vec<String>>,
    },
    /// A signed SAML Response for SP `sp`.
    Saml {
        /// Tenant slug.
        tenant: String,
        /// User login.
        user: String,
        /// SAML SP.
        sp: String,
        /// The user's session, which must be valid.
        session: String,
        /// The AuthnRequest ID answered, if SP-initiated.
        in_response_to: Option<String>,
    },
    /// A new session for `user`.
    SessionCreate {
        /// Tenant slug.
        tenant: String,
        /// User login.
        user: String,
        /// Authentication methods used.
        amr: Vec<String>,
        /// Client description.
        client: Option<String>,
    },
    /// Is the session valid now?
    SessionValidate {
        /// Tenant slug.
        tenant: String,
        /// Session id.
        session: String,
    },
    /// Records activity on a session (extends its idle expiry).
    SessionTouch {
        /// Tenant slug.
        tenant: String,
        /// Session id.
        session: String,
    },
    /// Revokes one session; returns once no node accepts it.
    SessionRevoke {
        /// Tenant slug.
        tenant: String,
        /// Session id.
        session: String,
    },
    /// Revokes every session of a user; returns once no node accepts them.
    UserRevokeSessions {
        /// Tenant slug.
        tenant: String,
        /// User login.
        user: String,
    },
    /// Deactivates a user: no token or assertion for them once it returns.
    UserDeactivate {
        /// Tenant slug.
        tenant: String,
        /// User login.
        user: String,
    },
    /// Starts a key rotation now (admin only).
    KeysRotate {
        /// Tenant slug.
        tenant: String,
        /// Only this algorithm's key, or all when absent.
        alg: Option<String>,
    },
    /// Emergency revocation of a key: it leaves JWKS at once (admin only).
    KeysRevoke {
        /// Tenant slug.
        tenant: String,
        /// Key id.
        kid: String,
    },
    /// The session cluster as this node sees it (admin only).
    ClusterStatus,
    /// Adds a node to the session cluster's membership (admin only).
    ClusterAdd {
        /// The node's name (as in its `--node`).
        node: String,
        /// Its replication address, `host:port`.
        address: String,
    },
    /// Removes a node from the session cluster's membership for good; it
    /// is refused until added again (admin only).
    ClusterRemove {
        /// The node's name.
        node: String,
    },
    /// Onboarding: tenants, apps, SPs, callers (admin only; issue 17).
    Onboard(Box<crate::onboard::OnboardOp>),
    /// Authentication: passwords, factors, lockout (issue 18).
    Auth(Box<crate::auth::AuthOp>),
    // SCIM tokens (issue 17) ------------------------------------------
    /// Makes a SCIM bearer token for `tenant`, answered once (admin only).
    ScimTokenAdd {
        /// Tenant slug.
        tenant: String,
        /// The token's name (audited as who made each SCIM change).
        name: String,
    },
    /// The tenant's SCIM tokens: names and dates, never secrets (admin only).
    ScimTokenList {
        /// Tenant slug.
        tenant: String,
    },
    /// Revokes a SCIM token on every node (admin only).
    ScimTokenRevoke {
        /// Tenant slug.
        tenant: String,
        /// The token's name.
        name: String,
    },
}

/// Why a wire request is not an operation; answered as `bad_request`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

/// The id to answer a frame body with when it is not a valid request:
/// `Some` when the body is one well-formed CBOR map with text keys whose
/// `id` is an unsigned integer from 1 (whatever else is wrong with it).
/// `None`: the body cannot be answered, and the node closes the stream
/// with the id-0 answer (docs/protocol.md, "Streams and framing").
///
/// Decodes the body again: for the refusal path only.
pub fn answerable_id(body: &[u8]) -> Option<NonZeroU64> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: u64,
    }
    crate::from_cbor::<IdOnly>(body)
        .ok()
        .and_then(|request| NonZeroU64::new(request.id))
}

pub(crate) fn field(name: &str, value: Option<String>) -> Result<String, BadRequest> {
    let value = value.ok_or_else(|| BadRequest(format!("missing field `{name}`")))?;
    check_text(name, &value)?;
    Ok(value)
}

pub(crate) fn optional(name: &str, value: Option<String>) -> Result<Option<String>, BadRequest> {
    if let Some(text) = &value {
        check_text(name, text)?;
    }
    Ok(value)
}

pub(crate) fn list(
    name: &str,
    value: Option<Vec<String>>,
    max: usize,
) -> Result<Vec<String>, BadRequest> {
    let items = value.unwrap_or_default();
    if items.len() > max {
        return Err(BadRequest(format!("`{name}` has more than {max} entries")));
    }
    for item in &items {
        check_text(name, item)?;
    }
    Ok(items)
}

/// Scopes: a list whose entries are RFC 6749 scope-tokens (section 3.3),
/// so that joining them with spaces in the token's `scope` claim gives
/// back exactly these scopes, never one more.
fn scopes(value: Option<Vec<String>>) -> Result<Vec<String>, BadRequest> {
    let items = list("scope", value, MAX_SCOPES)?;
    if let Some(bad) = items.iter().find(|scope| !is_scope_token(scope)) {
        let shown: String = bad.chars().take(40).collect();
        return Err(BadRequest(format!(
            "scope `{shown}` is not a scope-token (printable ASCII without space, '\"' or '\\')"
        )));
    }
    Ok(items)
}

/// RFC 6749 section 3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// Text rules: non-empty, at most [`MAX_FIELD`] bytes, and no control
/// character: none of Unicode general category Cc (`char::is_control`),
/// U+0000-U+001F and U+007F-U+009F. Other characters (format characters
/// such as U+200B included) are accepted.
pub(crate) fn check_text(name: &str, text: &str) -> Result<(), BadRequest> {
    if text.is_empty() {
        return Err(BadRequest(format!("field `{name}` is empty")));
    }
    if text.len() > MAX_FIELD {
        return Err(BadRequest(format!(
            "field `{name}` exceeds {MAX_FIELD} bytes"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(BadRequest(format!(
            "field `{name}` contains control characters"
        )));
    }
    Ok(())
}

impl Operation {
    /// Checks a wire request and returns the operation it asks for.
    ///
    /// # Errors
    /// [`BadRequest`] naming the unknown operation or the missing, empty,
    /// oversized or malformed field.
    pub fn from_wire(mut wire: WireRequest) -> Result<Operation, BadRequest> {
        let op = std::mem::take(&mut wire.op);
        if let Some(onboard) = crate::onboard::OnboardOp::from_wire(&op, &mut wire)? {
            return Ok(Operation::Onboard(Box::new(onboard)));
        }
        if let Some(auth) = crate::auth::AuthOp::from_wire(&op, &mut wire)? {
            return Ok(Operation::Auth(Box::new(auth)));
        }
        let WireRequest {
            tenant,
            user,
            app,
            sp,
            session,
            nonce,
            scope,
            amr,
            client,
            in_response_to,
            kid,
            alg,
            node,
            address,
            name,
            offline,
            refresh_token,
            ..
        } = wire;
        let offline = offline.unwrap_or(false);
        Ok(match op.as_str() {
            "health" => Operation::Health,
            "id_token" => Operation::IdToken {
                tenant: field("tenant", tenant)?,
                user: field("user", user)?,
                app: field("app", app)?,
                session: field("session", session)?,
                nonce: optional("nonce", nonce)?,
                offline,
            },
            "access_token" => Operation::AccessToken {
                tenant: field("tenant", tenant)?,
                user: field("user", user)?,
                app: field("app", app)?,
                session: field("session", session)?,
                scope: scopes(scope)?,
                offline,
            },
            "refresh" => Operation::Refresh {
                tenant: field("tenant", tenant)?,
                app: field("app", app)?,
                refresh_token: field("refresh_token", refresh_token)?,
                scope: match scope {
                    Some(scope) => Some(scopes(Some(scope))?),
                    None => None,
                },
            },
            "saml" => Operation::Saml {
                tenant: field("tenant", tenant)?,
                user: field("user", user)?,
                sp: field("sp", sp)?,
                session: field("session", session)?,
                in_response_to: optional("in_response_to", in_response_to)?,
            },
            "session_create" => Operation::SessionCreate {
                tenant: field("tenant", tenant)?,
                user: field("user", user)?,
                amr: list("amr", amr, MAX_AMR)?,
                client: optional("client", client)?,
            },
            "session_validate" => Operation::SessionValidate {
                tenant: field("tenant", tenant)?,
                session: field("session", session)?,
            },
            "session_touch" => Operation::SessionTouch {
                tenant: field("tenant", tenant)?,
                session: field("session", session)?,
            },
            "session_revoke" => Operation::SessionRevoke {
                tenant: field("tenant", tenant)?,
                session: field("session", session)?,
            },
            "user_revoke_sessions" => Operation::UserRevokeSessions {
                tenant: field("tenant", tenant)?,
                user: field("user", user)?,
            },
            "user_deactivate" => Operation::UserDeactivate {
                tenant: field("tenant", tenant)?,
                user: field("user", user)?,
            },
            "keys_rotate" => Operation::KeysRotate {
                tenant: field("tenant", tenant)?,
                alg: optional("alg", alg)?,
            },
            "keys_revoke" => Operation::KeysRevoke {
                tenant: field("tenant", tenant)?,
                kid: field("kid", kid)?,
            },
            "cluster_status" => Operation::ClusterStatus,
            "cluster_add" => Operation::ClusterAdd {
                node: field("node", node)?,
                address: field("address", address)?,
            },
            "cluster_remove" => Operation::ClusterRemove {
                node: field("node", node)?,
            },
            "scim_token_add" => Operation::ScimTokenAdd {
                tenant: field("tenant", tenant)?,
                name: field("name", name)?,
            },
            "scim_token_list" => Operation::ScimTokenList {
                tenant: field("tenant", tenant)?,
            },
            "scim_token_revoke" => Operation::ScimTokenRevoke {
                tenant: field("tenant", tenant)?,
                name: field("name", name)?,
            },
            other => {
                let shown: String = other.chars().take(40).collect();
                return Err(BadRequest(format!("unknown operation `{shown}`")));
            }
        })
    }

    /// The operation's wire name.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Health => "health",
            Operation::IdToken { .. } => "id_token",
            Operation::AccessToken { .. } => "access_token",
            Operation::Refresh { .. } => "refresh",
            Operation::Saml { .. } => "saml",
            Operation::SessionCreate { .. } => "session_create",
            Operation::SessionValidate { .. } => "session_validate",
            Operation::SessionTouch { .. } => "session_touch",
            Operation::SessionRevoke { .. } => "session_revoke",
            Operation::UserRevokeSessions { .. } => "user_revoke_sessions",
            Operation::UserDeactivate { .. } => "user_deactivate",
            Operation::KeysRotate { .. } => "keys_rotate",
            Operation::KeysRevoke { .. } => "keys_revoke",
            Operation::ClusterStatus => "cluster_status",
            Operation::ClusterAdd { .. } => "cluster_add",
            Operation::ClusterRemove { .. } => "cluster_remove",
            Operation::Onboard(op) => op.name(),
            Operation::Auth(op) => op.name(),
            Operation::ScimTokenAdd { .. } => "scim_token_add",
            Operation::ScimTokenList { .. } => "scim_token_list",
            Operation::ScimTokenRevoke { .. } => "scim_token_revoke",
        }
    }

    /// The tenant the operation acts for; `None` for `health` and the
    /// cluster operations.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Operation::Health
            | Operation::ClusterStatus
            | Operation::ClusterAdd { .. }
            | Operation::ClusterRemove { .. } => None,
            Operation::IdToken { tenant, .. }
            | Operation::AccessToken { tenant, .. }
            | Operation::Refresh { tenant, .. }
            | Operation::Saml { tenant, .. }
            | Operation::SessionCreate { tenant, .. }
            | Operation::SessionValidate { tenant, .. }
            | Operation::SessionTouch { tenant, .. }
            | Operation::SessionRevoke { tenant, .. }
            | Operation::UserRevokeSessions { tenant, .. }
            | Operation::UserDeactivate { tenant, .. }
            | Operation::KeysRotate { tenant, .. }
            | Operation::KeysRevoke { tenant, .. }
            | Operation::ScimTokenAdd { tenant, .. }
            | Operation::ScimTokenList { tenant }
            | Operation::ScimTokenRevoke { tenant, .. } => Some(tenant),
            Operation::Onboard(op) => op.tenant(),
            Operation::Auth(op) => Some(op.tenant()),
        }
    }

    /// Whether only admin callers may ask for it.
    pub fn needs_admin(&self) -> bool {
        matches!(
            self,
            Operation::KeysRotate { .. }
                | Operation::KeysRevoke { .. }
                | Operation::ScimTokenAdd { .. }
                | Operation::ScimTokenList { .. }
                | Operation::ScimTokenRevoke { .. }
                | Operation::ClusterStatus
                | Operation::ClusterAdd { .. }
                | Operation::ClusterRemove { .. }
                | Operation::Onboard(_)
        ) || matches!(self, Operation::Auth(op) if op.needs_admin())
    }

    /// Whether it is about the session cluster rather than a tenant.
    pub fn is_cluster(&self) -> bool {
        matches!(
            self,
            Operation::ClusterStatus
                | Operation::ClusterAdd { .. }
                | Operation::ClusterRemove { .. }
        )
    }

    /// Whether it produces a signature (counts against the signing budget).
    pub fn signs(&self) -> bool {
        matches!(
            self,
            Operation::IdToken { .. }
                | Operation::AccessToken { .. }
                | Operation::Refresh { .. }
                | Operation::Saml { .. }
        )
    }

    /// The wire form of this operation with request id `id`.
    pub fn to_wire(&self, id: u64) -> WireRequest {
        let mut wire = WireRequest {
            id,
            op: self.name().to_owned(),
            tenant: self.tenant().map(str::to_owned),
            ..WireRequest::default()
        };
        match self.clone() {
            Operation::Health | Operation::ClusterStatus => {}
            Operation::ClusterAdd { node, address } => {
                (wire.node, wire.address) = (Some(node), Some(address));
            }
            Operation::ClusterRemove { node } => wire.node = Some(node),
            Operation::IdToken {
                user,
                app,
                session,
                nonce,
                offline,
                ..
            } => {
                (wire.user, wire.app, wire.session, wire.nonce) =
                    (Some(user), Some(app), Some(session), nonce);
                wire.offline = offline.then_some(true);
            }
            Operation::AccessToken {
                user,
                app,
                session,
                scope,
                offline,
                ..
            } => {
                (wire.user, wire.app, wire.session) = (Some(user), Some(app), Some(session));
                wire.scope = (!scope.is_empty()).then_some(scope);
                wire.offline = offline.then_some(true);
            }
            Operation::Refresh {
                app,
                refresh_token,
                scope,
                ..
            } => {
                (wire.app, wire.refresh_token, wire.scope) =
                    (Some(app), Some(refresh_token), scope);
            }
            Operation::Saml {
                user,
                sp,
                session,
                in_response_to,
                ..
            } => {
                (wire.user, wire.sp, wire.session, wire.in_response_to) =
                    (Some(user), Some(sp), Some(session), in_response_to);
            }
            Operation::SessionCreate {
                user, amr, client, ..
            } => {
                (wire.user, wire.client) = (Some(user), client);
                wire.amr = (!amr.is_empty()).then_some(amr);
            }
            Operation::SessionValidate { session, .. }
            | Operation::SessionTouch { session, .. }
            | Operation::SessionRevoke { session, .. } => wire.session = Some(session),
            Operation::UserRevokeSessions { user, .. } | Operation::UserDeactivate { user, .. } => {
                wire.user = Some(user);
            }
            Operation::KeysRotate { alg, .. } => wire.alg = alg,
            Operation::KeysRevoke { kid, .. } => wire.kid = Some(kid),
            Operation::Onboard(op) => op.fill_wire(&mut wire),
            Operation::Auth(op) => op.fill_wire(&mut wire),
            Operation::ScimTokenList { .. } => {}
            Operation::ScimTokenAdd { name, .. } | Operation::ScimTokenRevoke { name, .. } => {
                wire.name = Some(name);
            }
        }
        wire
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
