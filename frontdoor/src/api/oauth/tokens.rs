//! Sigil's own access tokens at the OAuth endpoints: reading one (signed by
//! a key of the tenant's ring, `typ` `at+jwt`, the tenant's `iss`),
//! introspecting it and revoking it.
//!
//! The deny list: revoking an access token revokes, through the same
//! strongly consistent path as a session revocation (a majority of the
//! cluster confirms before `revoke` returns, `HotPath::revoke_strongly`),
//! a tombstone in the replicated session table whose id is the SHA-256 of
//! the tenant and the token's `jti` ([`deny_id`]), kept until the token's
//! `exp`. Introspection on any node then finds it revoked. No session can
//! have that id (session ids are random, and a tombstone is never valid).

use std::sync::Arc;

use aws_lc_rs::digest;
use serde_json::{json, Map, Value};
use sessions::{Revoked, SessionId, Validation};

use super::jws::{self, JwsAlg};
use super::{Appliance, OauthError};
use crate::api::audit::AuditEvent;
use crate::api::issue::LiveApp;
use crate::api::TenantLive;

/// An access token this tenant signed, its signature and issuer checked.
struct OurToken {
    claims: Map<String, Value>,
    exp: u64,
    jti: String,
}

impl OurToken {
    fn text(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }
}

fn alg_name(alg: JwsAlg) -> &'static str {
    match alg {
        JwsAlg::Rs256 => "RS256",
        JwsAlg::Ps256 => "PS256",
        JwsAlg::Es256 => "ES256",
        JwsAlg::Es384 => "ES384",
        JwsAlg::EdDsa => "EdDSA",
    }
}

/// `token` as an access token of `live`, or `None` for anything else
/// (garbage, another tenant's, an ID token, a bad signature).
fn read_token(live: &TenantLive, token: &str) -> Option<OurToken> {
    let jws = jws::split(token)?;
    if jws.typ.as_deref() != Some("at+jwt") {
        return None;
    }
    let kid = jws.kid.as_deref()?;
    let keys = live.keys.load();
    let key = keys
        .view
        .published()
        .iter()
        .find(|p| p.key.kid().as_str() == kid)?;
    if key.key.algorithm().name() != alg_name(jws.alg)
        || !key
            .key
            .public_key()
            .verify(jws.signing_input.as_bytes(), &jws.signature)
    {
        return None;
    }
    if jws.claims.get("iss").and_then(Value::as_str) != Some(live.issuer.as_str()) {
        return None;
    }
    let exp = jws.claims.get("exp").and_then(Value::as_u64)?;
    let jti = jws.claims.get("jti").and_then(Value::as_str)?.to_owned();
    Some(OurToken {
        claims: jws.claims,
        exp,
        jti,
    })
}

/// The id of the deny-list tombstone of the token `jti` of `tenant`.
pub fn deny_id(tenant: &str, jti: &str) -> SessionId {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(b"sigil/access-token-deny\0");
    context.update(tenant.as_bytes());
    context.update(b"\0");
    context.update(jti.as_bytes());
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(context.finish().as_ref());
    SessionId::from_bytes(bytes)
}

/// What a revocation did, for metrics.
const REVOKED: &str = "revoked";
const REFRESH_REVOKED: &str = "refresh_revoked";

impl Appliance {
    /// RFC 7662: `{"active": false}` unless `token` is an unexpired, not
    /// revoked access token of `live` issued to `app` (an app sees only
    /// its own tokens), whose session, if it names one, is still valid.
    ///
    /// # Errors
    /// `temporarily_unavailable` when this node cannot be sure it saw every
    /// revocation (no fresh leases from a majority).
    pub(super) fn introspect(
        &self,
        live: &TenantLive,
        app: &LiveApp,
        token: &str,
        now_ms: u64,
    ) -> Result<(Value, &'static str), OauthError> {
        let inactive = |why: &'static str| Ok((json!({"active": false}), why));
        let Some(token) = read_token(live, token) else {
            return inactive("inactive");
        };
        let now_s = now_ms / 1000;
        if token.exp <= now_s
            || token
                .claims
                .get("nbf")
                .and_then(Value::as_u64)
                .is_some_and(|nbf| nbf > now_s)
        {
            return inactive("inactive");
        }
        if token.text("client_id") != Some(app.name.as_str()) {
            return inactive("not_visible");
        }
        let unsure =
            |_| OauthError::unavailable("this node cannot be sure it saw every revocation; retry");
        let denied = self
            .hot
            .replica
            .validate(&live.slug, &deny_id(&live.slug, &token.jti), now_ms)
            .map_err(unsure)?;
        if matches!(denied, Validation::Revoked) {
            return inactive("revoked");
        }
        let mut answer = Map::new();
        answer.insert("active".into(), Value::Bool(true));
        for name in [
            "scope",
            "client_id",
            "sub",
            "exp",
            "iat",
            "nbf",
            "iss",
            "aud",
            "jti",
        ] {
            if let Some(value) = token.claims.get(name) {
                answer.insert(name.into(), value.clone());
            }
        }
        answer.insert("token_type".into(), Value::from("Bearer"));
        Ok((Value::Object(answer), "active"))
    }

    /// RFC 7009: puts `token`'s jti on the replicated deny list until its
    /// `exp` when it is an unexpired access token of `live` issued to
    /// `app`, returning once a majority of the cluster has it; revokes the
    /// family of a refresh token `app` holds; any other token is answered
    /// the same (200) with no effect.
    ///
    /// # Errors
    /// `temporarily_unavailable` when the revocation was not confirmed in
    /// time or the directory cannot be reached.
    pub(super) async fn revoke(
        &self,
        live: &TenantLive,
        app: &LiveApp,
        token: &str,
        now_ms: u64,
    ) -> Result<(Value, &'static str), OauthError> {
        let Some(ours) = read_token(live, token) else {
            // Not one of our access tokens: perhaps a refresh token.
            return self.revoke_refresh_token(live, app, token).await;
        };
        if ours.text("client_id") != Some(app.name.as_str()) {
            return Ok((json!({}), "not_owner"));
        }
        if ours.exp <= now_ms / 1000 {
            return Ok((json!({}), "expired"));
        }
        self.hot
            .revoke_strongly(Revoked::Session {
                tenant: Arc::clone(&live.slug),
                id: deny_id(&live.slug, &ours.jti),
                // Past `exp`, with room for clocks that run behind.
                keep_until_ms: ours.exp.saturating_mul(1000).saturating_add(60_000),
            })
            .await
            .map_err(|e| OauthError::unavailable(e.message))?;
        self.audit_revoked(live, app, "access_token", ours.jti.clone())
            .await?;
        Ok((json!({}), REVOKED))
    }

    /// Records a revocation in the tenant's audit trail (never the token).
    ///
    /// # Errors
    /// `temporarily_unavailable` when the record could not be made durable.
    async fn audit_revoked(
        &self,
        live: &TenantLive,
        app: &LiveApp,
        token_type: &'static str,
        id: String,
    ) -> Result<(), OauthError> {
        let event = AuditEvent::TokenRevoked {
            token_type,
            id,
            app: app.name.clone(),
        };
        self.hot
            .audit(live, event)
            .await
            .map_err(|e| OauthError::unavailable(e.message))
    }

    /// Revokes the family of a refresh token `app` holds (the family's
    /// later tokens included, so a token rotated after this one dies too);
    /// anything else is answered the same, with no effect.
    ///
    /// # Errors
    /// `temporarily_unavailable` when the directory cannot be reached.
    async fn revoke_refresh_token(
        &self,
        live: &TenantLive,
        app: &LiveApp,
        token: &str,
    ) -> Result<(Value, &'static str), OauthError> {
        match self.revoke_refresh_token_of(live, &app.name, token).await {
            Ok(Some(family)) => {
                self.audit_revoked(live, app, "refresh_token", family)
                    .await?;
                Ok((json!({}), REFRESH_REVOKED))
            }
            Ok(None) => Ok((json!({}), "unknown_token")),
            Err(e) => Err(OauthError::unavailable(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::deny_id;

    #[test]
    fn deny_ids_differ_by_tenant_and_jti() {
        let a = deny_id("acme", "j1");
        assert_eq!(a, deny_id("acme", "j1"));
        assert_ne!(a, deny_id("acme", "j2"));
        assert_ne!(a, deny_id("globex", "j1"));
        // No ambiguity from where the tenant ends.
        assert_ne!(deny_id("ab", "c"), deny_id("a", "bc"));
    }
}
