//! The answers of `sigil/1`: the `{id, result}` / `{id, error}` envelope and
//! one typed result per operation (docs/protocol.md, "Operations"). The node
//! builds these and encodes them; clients decode the result of the operation
//! they asked for with [`crate::Client::call_as`] or the typed calls.
//!
//! Clients must ignore result keys they do not know: a newer node may add
//! keys to any result, never remove or retype one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::WireError;

/// A response as it travels: `{id, result}` or `{id, error}`. The node
/// sends it with a typed [`Reply`]; a client reads the result as a CBOR
/// value first (it only knows which type to expect from the request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "R: Deserialize<'de>"))]
pub struct WireResponse<R = ciborium::Value> {
    /// The request's id. 0 only in the answer that closes a stream: the
    /// last answer on it; a request not answered before it was not
    /// carried out.
    pub id: u64,
    /// The operation's result map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<R>,
    /// Set instead of `result` when the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
}

/// `health`: is the node up, and can it check sessions now?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok` when the node answers.
    pub status: String,
    /// The node's name.
    pub node: String,
    /// Whether it serves session checks now (false while catching up).
    pub ready: bool,
}

/// `id_token` and `access_token`: a signed JWT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// The compact JWS.
    pub token: String,
    /// The signing key's id (the JWS `kid`).
    pub kid: String,
    /// The JWS algorithm, e.g. `ES256`.
    pub alg: String,
    /// When it expires, unix seconds.
    pub expires_at: u64,
    /// With `offline: true`, and from `refresh`: the refresh token (43
    /// characters of base64url: 256 random bits), shown this once (issue 19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the refresh token's family ends (its absolute lifetime), unix
    /// seconds; present with `refresh_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_expires_at: Option<u64>,
}

/// `saml`: a signed SAML Response for an SP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamlResponse {
    /// Base64 of the signed `samlp:Response` XML: the `SAMLResponse` form
    /// value.
    pub response: String,
    /// The signing key's id.
    pub kid: String,
    /// The signature algorithm's JOSE-style name, e.g. `RS256`.
    pub alg: String,
    /// When the assertion stops being valid, unix seconds.
    pub expires_at: u64,
    /// Where to POST it: the SP's assertion consumer service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acs: Option<String>,
}

/// `session_create`: the new session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCreated {
    /// The session id: 43 characters of base64url.
    pub session: String,
    /// Its absolute expiry, unix seconds.
    pub expires_at: u64,
    /// When it expires without activity, unix seconds.
    pub idle_expires_at: u64,
}

/// `session_validate` and `session_touch`: a valid session as it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The user's login.
    pub user: String,
    /// When the user authenticated, unix seconds.
    pub auth_time: u64,
    /// The authentication methods used.
    pub amr: Vec<String>,
    /// Absolute expiry, unix seconds.
    pub expires_at: u64,
    /// Idle expiry (after a touch: extended), unix seconds.
    pub idle_expires_at: u64,
    /// Whether a trusted front end asserted the sign-in (`session_create`:
    /// `amr` starts with `fed`) rather than Sigil proving it
    /// (`authenticate`). Absent from older nodes' answers: false.
    #[serde(default)]
    pub asserted: bool,
}

/// `session_revoke` and `user_revoke_sessions`: returned once no node
/// accepts what was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// Always true.
    pub revoked: bool,
}

/// `user_deactivate`: from now on no token or assertion for the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deactivated {
    /// Always true.
    pub deactivated: bool,
}

// SCIM tokens (issue 17) ----------------------------------------------

/// `scim_token_add`: the new token, shown this once (only its SHA-256 is
/// kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimTokenAdded {
    /// The token's name.
    pub name: String,
    /// The bearer token (`sigil_scim_` and 43 base64url characters).
    pub token: String,
    /// The SCIM base URL of the tenant on this node, when it serves SCIM.
    pub scim_url: Option<String>,
}

/// One SCIM token as `scim_token_list` shows it (never its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimTokenInfo {
    /// The token's name.
    pub name: String,
    /// When it was made, unix seconds.
    pub created_at: u64,
    /// When it was revoked, unix seconds; null while it is valid.
    pub revoked_at: Option<u64>,
}

/// `scim_token_list`: the tenant's tokens, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimTokens {
    /// The tokens.
    pub tokens: Vec<ScimTokenInfo>,
}

/// `scim_token_revoke`: no node accepts the token any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimTokenRevoked {
    /// The revoked token's name.
    pub revoked: String,
}

/// One key a rotation made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewKey {
    /// Its key id.
    pub kid: String,
    /// Its algorithm.
    pub alg: String,
    /// When it starts signing (it is published at once), unix seconds.
    pub activates_at: u64,
}

/// `keys_rotate`: the keys made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysRotated {
    /// One per algorithm rotated.
    pub keys: Vec<NewKey>,
}

/// `keys_revoke`: the key left JWKS and signs nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRevoked {
    /// The revoked key's id.
    pub revoked: String,
    /// The key made to replace it when it was the active one, else null.
    pub replacement: Option<String>,
}

/// One member of the session cluster, as a node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// Its replication address, `host:port`.
    pub address: String,
    /// Whether it is the node answering.
    #[serde(rename = "self")]
    pub is_self: bool,
    /// The node answering: ready. A peer: its last answer granted a lease.
    pub ready: bool,
    /// The node answering only: whether it serves session checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<bool>,
    /// A peer only: whether its lease grant to the node answering is fresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_held: Option<bool>,
    /// A peer only: how long ago a message of it last arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heard_ms_ago: Option<u64>,
}

/// How far replication lags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicationView {
    /// Mean delay from a change to its arrival at a peer, ms.
    pub lag_mean_ms: f64,
    /// The largest such delay, ms.
    pub lag_max_ms: f64,
    /// Frames that could not be sent (a peer too slow or gone).
    pub frames_dropped: u64,
    /// Sessions sent again to peers that lost frames carrying them (absent
    /// from older nodes: 0).
    #[serde(default)]
    pub sessions_resent: u64,
}

/// The newest membership epoch taken in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceView {
    /// The epoch.
    pub epoch: u64,
    /// Whether the change that took it returned.
    pub committed: bool,
}

/// `cluster_status`, `cluster_add`, `cluster_remove`: the session cluster
/// as the node answering sees it (docs/protocol.md, "`cluster_status`").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    /// The node answering.
    pub node: String,
    /// The membership epoch it follows.
    pub epoch: u64,
    /// False once it was removed (or before it was added): it serves
    /// nothing.
    pub member: bool,
    /// It caught up with its peers.
    pub ready: bool,
    /// It checks sessions: it holds fresh grants from `majority` members.
    pub serving: bool,
    /// Members needed for a majority.
    pub majority: u64,
    /// Fresh lease grants held, its own included.
    pub leases_held: u64,
    /// Every member by name.
    pub members: BTreeMap<String, MemberView>,
    /// Replication lag.
    pub replication: ReplicationView,
    /// Decrees (revocations, memberships) it keeps.
    pub decrees: u64,
    /// Decrees not yet settled everywhere.
    pub settling: u64,
    /// Revocations and changes waiting to return.
    pub in_flight: u64,
    /// Bytes of session log on disk.
    pub session_log_bytes: u64,
    /// The directory's fence, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<FenceView>,
}

/// The result of any operation, as the node sends it (each variant encodes
/// as its own map, without a tag).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// `health`.
    Health(Health),
    /// `id_token`, `access_token`, `refresh`.
    Token(Token),
    /// `saml`.
    Saml(SamlResponse),
    /// `session_create`.
    SessionCreated(SessionCreated),
    /// `session_validate`, `session_touch`.
    Session(SessionInfo),
    /// `session_revoke`, `user_revoke_sessions`.
    Revoked(Revoked),
    /// `user_deactivate`.
    Deactivated(Deactivated),
    /// `keys_rotate`.
    KeysRotated(KeysRotated),
    /// `keys_revoke`.
    KeyRevoked(KeyRevoked),
    /// `cluster_status`, `cluster_add`, `cluster_remove`.
    Cluster(Box<ClusterView>),
    /// The onboarding operations (issue 17, [`crate::onboard`]).
    Onboard(crate::onboard::OnboardReply),
    /// `scim_token_add`.
    ScimTokenAdded(ScimTokenAdded),
    /// `scim_token_list`.
    ScimTokens(ScimTokens),
    /// `scim_token_revoke`.
    ScimTokenRevoked(ScimTokenRevoked),
    /// The authentication operations (issue 18, [`crate::auth`]).
    Auth(crate::auth::AuthReply),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{from_cbor, to_cbor};

    #[test]
    fn a_reply_encodes_as_the_bare_result_map_and_decodes_as_its_type() {
        let token = Token {
            token: "eyJ.x.y".into(),
            kid: "k1".into(),
            alg: "ES256".into(),
            expires_at: 1_795_000_000,
            refresh_token: None,
            refresh_expires_at: None,
        };
        let sent = WireResponse {
            id: 7,
            result: Some(Reply::Token(token.clone())),
            error: None,
        };
        let bytes = to_cbor(&sent).unwrap();
        let received: WireResponse = from_cbor(&bytes).unwrap();
        assert_eq!(received.id, 7);
        let value = received.result.unwrap();
        assert_eq!(value.deserialized::<Token>().unwrap(), token);
        // Exactly the documented keys, nothing else.
        let keys: Vec<String> = value
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_text().unwrap().to_owned())
            .collect();
        assert_eq!(keys, ["token", "kid", "alg", "expires_at"]);
    }

    #[test]
    fn clients_ignore_result_keys_they_do_not_know() {
        let newer = ciborium::Value::Map(vec![
            ("revoked".into(), true.into()),
            ("by".into(), "node-9".into()),
        ]);
        assert_eq!(
            newer.deserialized::<Revoked>().unwrap(),
            Revoked { revoked: true }
        );
    }

    #[test]
    fn a_member_is_spelled_self_on_the_wire() {
        let member = MemberView {
            address: "10.0.0.1:4434".into(),
            is_self: true,
            ready: true,
            serving: Some(true),
            lease_held: None,
            last_heard_ms_ago: None,
        };
        let value: ciborium::Value = from_cbor(&to_cbor(&member).unwrap()).unwrap();
        let keys: Vec<&str> = value
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_text().unwrap())
            .collect();
        assert_eq!(keys, ["address", "self", "ready", "serving"]);
    }
}
