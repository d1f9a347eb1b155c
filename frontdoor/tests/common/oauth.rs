//! Issue 19's OAuth endpoints from the tests' side: `private_key_jwt`
//! client assertions signed here (Ed25519, aws-lc-rs), form posts, and
//! registering an app's JWKS with `sigil admin app set-jwks`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};
use signer::b64;

use super::{sigil, Serve};

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A client assertion of `app` for `aud`, expiring `exp_in` seconds from
/// now, signed by `key`.
pub fn assertion(key: &Ed25519KeyPair, app: &str, aud: &str, exp_in: i64, jti: &str) -> String {
    let header = b64::encode(r#"{"alg":"EdDSA","typ":"JWT"}"#);
    let exp = now().saturating_add_signed(exp_in);
    let claims = json!({"iss": app, "sub": app, "aud": aud, "exp": exp, "iat": now(), "jti": jti});
    let input = format!("{header}.{}", b64::encode(claims.to_string()));
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", b64::encode(sig.as_ref()))
}

pub fn jwks_of(key: &Ed25519KeyPair) -> Value {
    json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "rust-test", "x": b64::encode(key.public_key().as_ref())}]})
}

pub fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish().into_bytes()
}

pub fn post(serve: &Serve, tenant: &str, endpoint: &str, pairs: &[(&str, &str)]) -> (u16, Value) {
    let (status, body) = serve.post(
        &format!("/t/{tenant}/oauth2/{endpoint}"),
        "application/x-www-form-urlencoded",
        &form(pairs),
    );
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Calls `endpoint` of `tenant` as `app` with a fresh valid assertion.
pub fn call(
    serve: &Serve,
    key: &Ed25519KeyPair,
    tenant: &str,
    app: &str,
    endpoint: &str,
    token: &str,
) -> (u16, Value) {
    let public_url = format!("http://{}", serve.endpoints.http);
    call_at(serve, &public_url, key, tenant, app, endpoint, token)
}

/// As [`call`], for a node whose issuers start with `public_url`.
pub fn call_at(
    serve: &Serve,
    public_url: &str,
    key: &Ed25519KeyPair,
    tenant: &str,
    app: &str,
    endpoint: &str,
    token: &str,
) -> (u16, Value) {
    let aud = format!("{public_url}/t/{tenant}/oauth2/{endpoint}");
    let jti = format!("{}-{}", now(), rand_suffix());
    let assertion = assertion(key, app, &aud, 60, &jti);
    post(
        serve,
        tenant,
        endpoint,
        &[
            ("token", token),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ],
    )
}

pub fn rand_suffix() -> String {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; 12];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .unwrap();
    b64::encode(bytes)
}

pub fn set_jwks(dir: &Path, tenant: &str, app: &str, jwks: &Value) {
    let file = dir.join(format!("jwks-{tenant}-{app}.json"));
    std::fs::write(&file, jwks.to_string()).unwrap();
    let (ok, out) = sigil(
        dir,
        &[
            "admin",
            "app",
            "set-jwks",
            "--tenant",
            tenant,
            "--name",
            app,
            "--jwks",
            file.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}");
}
