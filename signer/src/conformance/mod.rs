//! The shared test suite every key backend must pass.
//!
//! Backends (AWS-LC here, PKCS#11 in crate `hw`, any future one) call
//! [`check_backend`] from their tests. It generates a key of every spec the
//! backend supports and checks what the rest of Sigil relies on: the kid is
//! the RFC 7638 thumbprint of the published JWK, signatures have the right
//! length and verify with the published key and fail when anything changes,
//! JWTs signed by the key verify, a stored key loads back only for its own
//! tenant and kid.
//!
//! [`external`] runs the verifiers nobody at Sigil wrote, for every crate's
//! tests alike.

pub mod external;

use serde_json::Value;

use crate::jwt::{encoded_header, new_jti, TokenClaims, TokenLifetime, TokenType, UnsignedJwt};
use crate::{b64, Error, KeyBackend, KeySpec, SigningKey, Timestamp};

/// What failed, for the test's panic message.
#[derive(Debug)]
pub struct Failure {
    /// The spec under test.
    pub spec: KeySpec,
    /// What was wrong.
    pub what: String,
}

fn fail(spec: KeySpec, what: impl Into<String>) -> Failure {
    Failure {
        spec,
        what: what.into(),
    }
}

fn check<T>(spec: KeySpec, step: &str, result: Result<T, Error>) -> Result<T, Failure> {
    result.map_err(|e| fail(spec, format!("{step}: {e}")))
}

/// Runs the suite on every spec in `specs` that `backend` supports and
/// returns the specs that were checked.
///
/// # Errors
/// The first [`Failure`].
pub fn check_backend(backend: &dyn KeyBackend, specs: &[KeySpec]) -> Result<Vec<KeySpec>, Failure> {
    let mut checked = Vec::new();
    for &spec in specs {
        if backend.supports(spec) {
            check_spec(backend, spec)?;
            checked.push(spec);
        }
    }
    Ok(checked)
}

fn check_spec(backend: &dyn KeyBackend, spec: KeySpec) -> Result<(), Failure> {
    let tenant = "conformance-tenant";
    let generated = check(spec, "generate", backend.generate(tenant, spec))?;
    let key = &generated.key;
    let public = key.public_key();
    if public.spec() != spec || key.algorithm() != spec.algorithm() {
        return Err(fail(spec, "generated key has another spec"));
    }
    if generated.stored.backend != backend.name() || key.backend() != backend.name() {
        return Err(fail(spec, "stored key or key names another backend"));
    }

    // The JWK carries the kid, and the kid is the thumbprint of the JWK.
    let jwk: Value = serde_json::from_str(&public.to_jwk_json())
        .map_err(|e| fail(spec, format!("jwk json: {e}")))?;
    if jwk["kid"] != key.kid().as_str()
        || jwk["alg"] != spec.algorithm().name()
        || jwk["use"] != "sig"
    {
        return Err(fail(spec, format!("jwk members wrong: {jwk}")));
    }
    for private_member in ["d", "p", "q", "dp", "dq", "qi"] {
        if jwk.get(private_member).is_some() {
            return Err(fail(
                spec,
                format!("jwk exposes private member {private_member}"),
            ));
        }
    }

    // Signatures verify, have the right length, and fail on any change.
    let message = b"sigil conformance message";
    let signature = check(spec, "sign", key.sign(message))?;
    if signature.len() != spec.signature_len() {
        return Err(fail(
            spec,
            format!(
                "signature is {} bytes, want {}",
                signature.len(),
                spec.signature_len()
            ),
        ));
    }
    if !public.verify(message, &signature) {
        return Err(fail(spec, "signature does not verify"));
    }
    if public.verify(b"sigil conformance messagf", &signature) {
        return Err(fail(spec, "signature verifies a changed message"));
    }
    let mut flipped = signature.clone();
    flipped[signature.len() / 2] ^= 0x01;
    if public.verify(message, &flipped) {
        return Err(fail(spec, "changed signature verifies"));
    }
    let again = check(spec, "sign again", key.sign(message))?;
    let randomized = matches!(spec, KeySpec::Ps256(_) | KeySpec::Es256 | KeySpec::Es384);
    if randomized == (again == signature) {
        return Err(fail(
            spec,
            "signature randomization is not as the algorithm defines",
        ));
    }

    // A JWT signed by the key verifies over header.payload and names the key.
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let claims = TokenClaims {
        issuer: "https://sigil.test/t/conformance-tenant".into(),
        subject: "user-1".into(),
        audience: vec!["app".into()],
        ..TokenClaims::default()
    };
    let header = encoded_header(key.as_ref(), TokenType::IdToken);
    let jti = check(spec, "jti", new_jti(&rng))?;
    let unsigned = check(
        spec,
        "build jwt",
        UnsignedJwt::build(
            &header,
            &claims,
            Timestamp::from_secs(1_700_000_000),
            TokenLifetime::MAX,
            &jti,
        ),
    )?;
    let token = check(spec, "sign jwt", unsigned.sign_inline(key.as_ref()))?;
    check_jwt(spec, key.as_ref(), &token)?;

    // The stored form loads back, for this tenant and kid only.
    let loaded = check(
        spec,
        "load",
        backend.load(tenant, key.kid(), &generated.stored),
    )?;
    if loaded.kid() != key.kid() {
        return Err(fail(spec, "loaded key has another kid"));
    }
    let by_loaded = check(spec, "sign with loaded key", loaded.sign(message))?;
    if !public.verify(message, &by_loaded) {
        return Err(fail(spec, "loaded key's signature does not verify"));
    }
    if backend
        .load("another-tenant", key.kid(), &generated.stored)
        .is_ok()
    {
        return Err(fail(spec, "stored key loads for another tenant"));
    }
    let other = check(spec, "generate second key", backend.generate(tenant, spec))?;
    if other.key.kid() == key.kid() {
        return Err(fail(spec, "two generated keys share a kid"));
    }
    if backend
        .load(tenant, other.key.kid(), &generated.stored)
        .is_ok()
    {
        return Err(fail(spec, "stored key loads under another kid"));
    }
    Ok(())
}

fn check_jwt(spec: KeySpec, key: &dyn SigningKey, token: &str) -> Result<(), Failure> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts.as_slice() else {
        return Err(fail(spec, "jwt does not have three parts"));
    };
    let header_json: Value = b64::decode(header)
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or_else(|| fail(spec, "jwt header is not base64url json"))?;
    if header_json["alg"] != spec.algorithm().name() || header_json["kid"] != key.kid().as_str() {
        return Err(fail(spec, format!("jwt header wrong: {header_json}")));
    }
    let signature =
        b64::decode(signature).ok_or_else(|| fail(spec, "jwt signature is not base64url"))?;
    let signing_input = format!("{header}.{payload}");
    if !key
        .public_key()
        .verify(signing_input.as_bytes(), &signature)
    {
        return Err(fail(spec, "jwt signature does not verify"));
    }
    Ok(())
}
