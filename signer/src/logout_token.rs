//! Logout tokens of OpenID Connect Back-Channel Logout 1.0 (section 2.4):
//! JWTs with the header `typ` `logout+jwt`, the claims `iss`, `aud`,
//! `iat`, `exp`, `jti`, `sid` and/or `sub`, and `events` holding the
//! member `http://schemas.openid.net/event/backchannel-logout` (an empty
//! object); never a `nonce` (so a logout token can never pass for an ID
//! token).
//!
//! Built here, signed by the caller with the tenant's key for the app's
//! algorithm like any other token ([`UnsignedJwt::signing_input`], then
//! [`UnsignedJwt::finish`]).

use serde::Serialize;

use crate::jwt::{TokenLifetime, UnsignedJwt};
use crate::{b64, Error, SigningKey, Timestamp};

/// The `typ` header of a logout token.
pub const LOGOUT_TOKEN_TYPE: &str = "logout+jwt";

/// The event member that makes a JWT a logout token.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Who a logout token logs out: at least one of `sid` and `sub`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutClaims {
    /// `iss`: the tenant's issuer URL.
    pub issuer: String,
    /// `aud`: the app's client id.
    pub audience: String,
    /// `sub`: the user's stable id (as in the app's ID tokens).
    pub subject: Option<String>,
    /// `sid`: the session (as in the app's ID tokens).
    pub session_id: Option<String>,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'static str,
}

#[derive(Serialize)]
struct Events {
    #[serde(rename = "http://schemas.openid.net/event/backchannel-logout")]
    backchannel_logout: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct Payload<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    events: Events,
}

/// The signing input of a logout token for `claims`, to be signed by `key`,
/// issued at `now` and valid for `lifetime`.
///
/// # Errors
/// [`Error::InvalidClaims`] for an empty `iss` or `aud`, neither `sid` nor
/// `sub` (or an empty one), or a `jti` of fewer than 16 characters.
pub fn logout_token(
    key: &dyn SigningKey,
    claims: &LogoutClaims,
    now: Timestamp,
    lifetime: TokenLifetime,
    jti: &str,
) -> Result<UnsignedJwt, Error> {
    if claims.issuer.is_empty() {
        return Err(Error::InvalidClaims("iss is empty"));
    }
    if claims.audience.is_empty() {
        return Err(Error::InvalidClaims("aud is empty"));
    }
    let (sub, sid) = (claims.subject.as_deref(), claims.session_id.as_deref());
    if sub.is_none() && sid.is_none() || sub == Some("") || sid == Some("") {
        return Err(Error::InvalidClaims("a logout token needs sid or sub"));
    }
    if jti.len() < 16 {
        return Err(Error::InvalidClaims("jti is shorter than 16 characters"));
    }
    let header = Header {
        alg: key.algorithm().name(),
        kid: key.kid().as_str(),
        typ: LOGOUT_TOKEN_TYPE,
    };
    let expires_at = now.plus(lifetime.secs());
    let payload = Payload {
        iss: &claims.issuer,
        aud: &claims.audience,
        iat: now.secs(),
        exp: expires_at.secs(),
        jti,
        sub,
        sid,
        events: Events {
            backchannel_logout: serde_json::Map::new(),
        },
    };
    let header = serde_json::to_vec(&header).map_err(|_| Error::InvalidClaims("header"))?;
    let payload = serde_json::to_vec(&payload)
        .map_err(|_| Error::InvalidClaims("claims do not serialize"))?;
    let mut text = b64::encode(header);
    text.push('.');
    b64::encode_into(&payload, &mut text);
    Ok(UnsignedJwt::from_signing_input(text, jti, expires_at))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{KeySpec, SoftwareKey};

    fn decode(part: &str) -> serde_json::Value {
        let bytes = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, part)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn a_logout_token_has_its_type_events_and_no_nonce() {
        let key = SoftwareKey::generate(KeySpec::EdDsa).unwrap();
        let claims = LogoutClaims {
            issuer: "https://sigil.test/t/acme".into(),
            audience: "portal".into(),
            subject: Some("u-1".into()),
            session_id: Some("s-1".into()),
        };
        let unsigned = logout_token(
            &key,
            &claims,
            Timestamp::from_secs(1_000),
            TokenLifetime::from_secs(120).unwrap(),
            "0123456789abcdef0123",
        )
        .unwrap();
        let signature = key.sign(unsigned.signing_input()).unwrap();
        let token = unsigned.finish(&signature);
        let parts: Vec<&str> = token.split('.').collect();
        let (header, payload) = (decode(parts[0]), decode(parts[1]));
        assert_eq!(header["typ"], "logout+jwt");
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(payload["aud"], "portal");
        assert_eq!(payload["exp"], 1_120);
        assert_eq!(payload["sid"], "s-1");
        assert_eq!(
            payload["events"][BACKCHANNEL_LOGOUT_EVENT],
            serde_json::json!({})
        );
        assert!(payload.get("nonce").is_none());
    }

    #[test]
    fn a_logout_token_names_a_session_or_a_user() {
        let key = SoftwareKey::generate(KeySpec::EdDsa).unwrap();
        let claims = LogoutClaims {
            issuer: "https://sigil.test/t/acme".into(),
            audience: "portal".into(),
            subject: None,
            session_id: None,
        };
        let now = Timestamp::from_secs(1);
        let lifetime = TokenLifetime::from_secs(60).unwrap();
        assert!(logout_token(&key, &claims, now, lifetime, "0123456789abcdef").is_err());
    }
}
