//! `private_key_jwt` client authentication (RFC 7523 §2.2, OpenID Connect
//! Core §9): the app names itself in `iss` and `sub` of a JWT signed with
//! a key of the JWKS it registered; `aud` is the endpoint's URL or the
//! tenant's issuer; `exp` is required and at most
//! [`MAX_ASSERTION_LIFETIME_S`] ahead; `jti` is recorded in the directory
//! until `exp`, so a replay is refused on every node of the cluster.

use std::sync::Arc;

use aws_lc_rs::digest;
use serde_json::Value;
use sigil_proto::ErrorCode;

use super::jws;
use super::{Appliance, Form, OauthError, ASSERTION_TYPE};
use crate::api::issue::LiveApp;
use crate::api::TenantLive;

/// Longest an assertion may live, from now to its `exp`.
pub const MAX_ASSERTION_LIFETIME_S: u64 = 300;
/// Clock skew allowed between the client and this node.
const SKEW_S: u64 = 30;
/// Longest `jti` accepted.
const MAX_JTI: usize = 256;

impl Appliance {
    /// The app that `form`'s client assertion authenticates, at the
    /// endpoint `endpoint_url` of `live`, at `now_ms`.
    ///
    /// # Errors
    /// `invalid_client` (401) naming what is wrong;
    /// `temporarily_unavailable` when the directory cannot record the jti.
    pub(super) async fn authenticate_client(
        &self,
        live: &TenantLive,
        form: &Form,
        endpoint_url: &str,
        now_ms: u64,
    ) -> Result<Arc<LiveApp>, OauthError> {
        match form.get("client_assertion_type") {
            Some(ASSERTION_TYPE) => {}
            Some(_) => {
                return Err(OauthError::client(
                    "unsupported client_assertion_type: this endpoint accepts private_key_jwt only",
                ))
            }
            None => {
                return Err(OauthError::client(
                    "client authentication required: private_key_jwt (client_assertion_type and client_assertion)",
                ))
            }
        }
        let assertion = form
            .get("client_assertion")
            .ok_or_else(|| OauthError::client("client_assertion is missing"))?;
        let jws = jws::split(assertion)
            .ok_or_else(|| OauthError::client("client_assertion is not a signed JWT"))?;
        let claim = |name: &str| jws.claims.get(name).and_then(Value::as_str);
        let (Some(iss), Some(sub)) = (claim("iss"), claim("sub")) else {
            return Err(OauthError::client("client_assertion needs iss and sub"));
        };
        if iss != sub {
            return Err(OauthError::client(
                "client_assertion iss and sub must both be the client_id",
            ));
        }
        if form.get("client_id").is_some_and(|id| id != iss) {
            return Err(OauthError::client(
                "client_id differs from the assertion's iss",
            ));
        }
        let app = match self.hot.app(live, iss).await {
            Ok(app) => app,
            Err(e) if e.code == ErrorCode::NotFound => {
                return Err(OauthError::client("unknown client"))
            }
            Err(_) => return Err(OauthError::unavailable("the directory cannot be read")),
        };
        let Some(keys) = app.client_keys.as_ref() else {
            return Err(OauthError::client("this client has no registered JWKS"));
        };
        if !keys.verify(&jws) {
            return Err(OauthError::client(
                "client_assertion signature does not verify with the client's registered keys",
            ));
        }
        // Signed by the app: from here on its claims are its word.
        let audience_ok = match jws.claims.get("aud") {
            Some(Value::String(aud)) => aud == endpoint_url || *aud == live.issuer,
            Some(Value::Array(auds)) => auds
                .iter()
                .filter_map(Value::as_str)
                .any(|aud| aud == endpoint_url || aud == live.issuer),
            _ => false,
        };
        if !audience_ok {
            return Err(OauthError::client(format!(
                "client_assertion aud must be {endpoint_url} or {}",
                live.issuer
            )));
        }
        let now_s = now_ms / 1000;
        let exp = jws
            .claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or_else(|| OauthError::client("client_assertion needs exp"))?;
        if exp.saturating_add(SKEW_S) <= now_s {
            return Err(OauthError::client("client_assertion has expired"));
        }
        if exp > now_s + MAX_ASSERTION_LIFETIME_S + SKEW_S {
            return Err(OauthError::client(format!(
                "client_assertion exp is more than {MAX_ASSERTION_LIFETIME_S} s ahead"
            )));
        }
        let not_yet = |name: &str| {
            jws.claims
                .get(name)
                .and_then(Value::as_u64)
                .is_some_and(|t| t > now_s + SKEW_S)
        };
        if not_yet("nbf") || not_yet("iat") {
            return Err(OauthError::client("client_assertion is not valid yet"));
        }
        let jti = claim("jti")
            .filter(|j| (1..=MAX_JTI).contains(&j.len()))
            .ok_or_else(|| OauthError::client("client_assertion needs a jti"))?;
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest::digest(&digest::SHA256, jti.as_bytes()).as_ref());
        let fresh = self
            .claim_jti(live, &app.name, &hash, exp.saturating_add(SKEW_S) * 1000)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "client assertion jti not recorded");
                OauthError::unavailable("the directory cannot record the assertion")
            })?;
        if !fresh {
            return Err(OauthError::client(
                "client_assertion jti was already used (replay)",
            ));
        }
        Ok(app)
    }

    async fn claim_jti(
        &self,
        live: &TenantLive,
        app: &str,
        hash: &[u8; 32],
        expires_ms: u64,
    ) -> Result<bool, directory::Error> {
        let scope = self.directory.tenant(live.tenant.id).await?;
        let fresh = scope.claim_assertion_jti(app, hash, expires_ms).await?;
        scope.commit().await?;
        Ok(fresh)
    }
}
