//! JWS compact serialization (RFC 7515) and JWTs (RFC 7519) as Sigil issues
//! them: ID tokens (OIDC Core §2) and access tokens (RFC 9068).
//!
//! Building and signing are split so the signing input can go to the signer
//! pool: [`UnsignedJwt::signing_input`] is what gets signed, and
//! [`UnsignedJwt::finish`] appends the signature.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{b64, Error, SigningKey, Timestamp};

/// The longest lifetime any token may have, in seconds (one hour).
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 3600;

/// Claims Sigil sets itself; a claim mapping may not produce them.
pub const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "auth_time",
    "nonce",
    "amr",
    "sid",
    "azp",
    "scope",
    "client_id",
    "at_hash",
    "c_hash",
    "acr",
    "cnf",
];

/// A token lifetime within 1 second ..= one hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenLifetime(u64);

impl TokenLifetime {
    /// The one-hour cap.
    pub const MAX: TokenLifetime = TokenLifetime(MAX_TOKEN_LIFETIME_SECS);

    /// Accepts a lifetime in seconds.
    ///
    /// # Errors
    /// [`Error::InvalidLifetime`] for zero or more than one hour.
    pub fn from_secs(secs: u64) -> Result<TokenLifetime, Error> {
        if secs == 0 || secs > MAX_TOKEN_LIFETIME_SECS {
            return Err(Error::InvalidLifetime {
                requested: secs,
                cap: MAX_TOKEN_LIFETIME_SECS,
            });
        }
        Ok(TokenLifetime(secs))
    }

    /// The lifetime in seconds.
    pub fn secs(self) -> u64 {
        self.0
    }
}

/// Which kind of token, which sets the JOSE `typ` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    /// An OIDC ID token, `typ: JWT`.
    IdToken,
    /// An OAuth access token in JWT form, `typ: at+jwt` (RFC 9068).
    AccessToken,
}

impl TokenType {
    /// The `typ` header value.
    pub fn typ(self) -> &'static str {
        match self {
            TokenType::IdToken => "JWT",
            TokenType::AccessToken => "at+jwt",
        }
    }
}

/// The claims of one token, before `iat`, `nbf`, `exp` and `jti` are set.
#[derive(Clone, Debug, Default)]
pub struct TokenClaims {
    /// `iss`: the tenant's issuer URL.
    pub issuer: String,
    /// `sub`: the user's stable id.
    pub subject: String,
    /// `aud`: one or more audiences (client ids or resource URLs).
    pub audience: Vec<String>,
    /// `auth_time`: when the user authenticated.
    pub auth_time: Option<Timestamp>,
    /// `nonce`: echoed from the authentication request.
    pub nonce: Option<String>,
    /// `amr`: authentication methods (`pwd`, `otp`, `hwk`, ...).
    pub amr: Vec<String>,
    /// `sid`: the session id.
    pub session_id: Option<String>,
    /// `azp`: the authorized party.
    pub authorized_party: Option<String>,
    /// `scope`: space-separated scopes.
    pub scope: Option<String>,
    /// `client_id` (access tokens, RFC 9068).
    pub client_id: Option<String>,
    /// Claims from the app's claim mapping; must not use reserved names.
    pub custom: Map<String, Value>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Audience<'a> {
    One(&'a str),
    Many(&'a [String]),
}

#[derive(Serialize)]
struct Payload<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: Audience<'a>,
    exp: u64,
    iat: u64,
    nbf: u64,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    amr: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    azp: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(flatten)]
    custom: &'a Map<String, Value>,
}

/// The base64url JOSE header for a key and token type:
/// `{"alg":..,"kid":..,"typ":..}`. Cache it per key; it never changes.
pub fn encoded_header(key: &dyn SigningKey, token_type: TokenType) -> String {
    #[derive(Serialize)]
    struct Header<'a> {
        alg: &'static str,
        kid: &'a str,
        typ: &'static str,
    }
    let header = Header {
        alg: key.algorithm().name(),
        kid: key.kid().as_str(),
        typ: token_type.typ(),
    };
    // A struct of strings always serializes.
    b64::encode(serde_json::to_vec(&header).unwrap_or_default())
}

/// A JWT whose signing input is built and which waits for its signature.
#[derive(Debug, Clone)]
pub struct UnsignedJwt {
    /// `base64url(header) . base64url(payload)`; the signature will follow.
    text: String,
    /// `jti` of the token, for audit records.
    jti: String,
    /// `exp` of the token.
    expires_at: Timestamp,
}

impl UnsignedJwt {
    /// Builds the signing input of a token.
    ///
    /// `encoded_header` comes from [`encoded_header`]; `jti` must be unique
    /// (e.g. 128 random bits in base64url).
    ///
    /// # Errors
    /// [`Error::InvalidClaims`] for an empty `iss`, `sub` or `aud`, or a
    /// `jti` of fewer than 16 characters; [`Error::ReservedClaim`] if a custom
    /// claim uses a reserved name.
    pub fn build(
        encoded_header: &str,
        claims: &TokenClaims,
        now: Timestamp,
        lifetime: TokenLifetime,
        jti: &str,
    ) -> Result<UnsignedJwt, Error> {
        if claims.issuer.is_empty() {
            return Err(Error::InvalidClaims("iss is empty"));
        }
        if claims.subject.is_empty() {
            return Err(Error::InvalidClaims("sub is empty"));
        }
        if claims.audience.is_empty() || claims.audience.iter().any(String::is_empty) {
            return Err(Error::InvalidClaims("aud is empty"));
        }
        if jti.len() < 16 {
            return Err(Error::InvalidClaims("jti is shorter than 16 characters"));
        }
        if let Some(name) = claims
            .custom
            .keys()
            .find(|k| RESERVED_CLAIMS.contains(&k.as_str()))
        {
            return Err(Error::ReservedClaim(name.clone()));
        }
        let expires_at = now.plus(lifetime.secs());
        let payload = Payload {
            iss: &claims.issuer,
            sub: &claims.subject,
            aud: match claims.audience.as_slice() {
                [one] => Audience::One(one),
                many => Audience::Many(many),
            },
            exp: expires_at.secs(),
            iat: now.secs(),
            nbf: now.secs(),
            jti,
            auth_time: claims.auth_time.map(Timestamp::secs),
            nonce: claims.nonce.as_deref(),
            amr: &claims.amr,
            sid: claims.session_id.as_deref(),
            azp: claims.authorized_party.as_deref(),
            scope: claims.scope.as_deref(),
            client_id: claims.client_id.as_deref(),
            custom: &claims.custom,
        };
        let json = serde_json::to_vec(&payload)
            .map_err(|_| Error::InvalidClaims("claims do not serialize"))?;
        let mut text = String::with_capacity(encoded_header.len() + json.len() * 4 / 3 + 100);
        text.push_str(encoded_header);
        text.push('.');
        b64::encode_into(&json, &mut text);
        Ok(UnsignedJwt {
            text,
            jti: jti.to_owned(),
            expires_at,
        })
    }

    /// A token of another shape ([`crate::logout_token`]) whose signing
    /// input `text` was built by its module.
    pub(crate) fn from_signing_input(text: String, jti: &str, expires_at: Timestamp) -> Self {
        UnsignedJwt {
            text,
            jti: jti.to_owned(),
            expires_at,
        }
    }

    /// The bytes to sign.
    pub fn signing_input(&self) -> &[u8] {
        self.text.as_bytes()
    }

    /// The token's `jti`.
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// The token's `exp`.
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }

    /// Appends the signature and returns the compact JWS.
    pub fn finish(mut self, signature: &[u8]) -> String {
        self.text.push('.');
        b64::encode_into(signature, &mut self.text);
        self.text
    }

    /// Signs on the calling thread and returns the compact JWS.
    ///
    /// # Errors
    /// Whatever the key's [`SigningKey::sign`] returns.
    pub fn sign_inline(self, key: &dyn SigningKey) -> Result<String, Error> {
        let signature = key.sign(self.signing_input())?;
        Ok(self.finish(&signature))
    }
}

/// A fresh `jti`: 128 random bits, base64url.
///
/// # Errors
/// [`Error::Random`] if the generator fails.
pub fn new_jti(rng: &dyn aws_lc_rs::rand::SecureRandom) -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes).map_err(|_| Error::Random)?;
    Ok(b64::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> TokenClaims {
        TokenClaims {
            issuer: "https://acme.example/t/acme".into(),
            subject: "u1".into(),
            audience: vec!["app-es256".into()],
            ..TokenClaims::default()
        }
    }

    #[test]
    fn lifetime_is_capped_at_one_hour() {
        assert!(TokenLifetime::from_secs(3600).is_ok());
        assert!(TokenLifetime::from_secs(3601).is_err());
        assert!(TokenLifetime::from_secs(0).is_err());
    }

    #[test]
    fn reserved_custom_claims_are_refused() {
        for name in ["exp", "iss", "aud", "sub", "nbf"] {
            let mut c = claims();
            c.custom.insert(name.into(), Value::from(1));
            let err = UnsignedJwt::build(
                "h",
                &c,
                Timestamp::from_secs(1),
                TokenLifetime::MAX,
                "0123456789abcdef",
            )
            .expect_err("reserved");
            assert!(matches!(err, Error::ReservedClaim(_)), "{name}");
        }
    }

    #[test]
    fn payload_has_the_registered_claims() {
        let mut c = claims();
        c.custom
            .insert("groups".into(), serde_json::json!(["eng", "ops"]));
        let jwt = UnsignedJwt::build(
            "h",
            &c,
            Timestamp::from_secs(1000),
            TokenLifetime::from_secs(300).expect("ok"),
            "0123456789abcdef",
        )
        .expect("build");
        let text = std::str::from_utf8(jwt.signing_input()).expect("ascii");
        let payload = text.split('.').nth(1).expect("payload");
        let value: Value =
            serde_json::from_slice(&b64::decode(payload).expect("b64")).expect("json");
        assert_eq!(value["exp"], 1300);
        assert_eq!(value["iat"], 1000);
        assert_eq!(value["nbf"], 1000);
        assert_eq!(value["aud"], "app-es256");
        assert_eq!(value["groups"][1], "ops");
        assert!(!text.contains('='), "no padding");
    }

    #[test]
    fn empty_required_claims_are_refused() {
        let mut c = claims();
        c.audience.clear();
        assert!(UnsignedJwt::build(
            "h",
            &c,
            Timestamp::from_secs(1),
            TokenLifetime::MAX,
            "0123456789abcdef"
        )
        .is_err());
        let mut c = claims();
        c.subject.clear();
        assert!(UnsignedJwt::build(
            "h",
            &c,
            Timestamp::from_secs(1),
            TokenLifetime::MAX,
            "0123456789abcdef"
        )
        .is_err());
        assert!(UnsignedJwt::build(
            "h",
            &claims(),
            Timestamp::from_secs(1),
            TokenLifetime::MAX,
            "short"
        )
        .is_err());
    }
}
