//! Tokens of every algorithm verify with software nobody here wrote (PyJWT,
//! jwcrypto, the `jsonwebtoken` crate) given the JWKS as Sigil renders it;
//! tampered tokens, swapped `kid`, `alg: none` and `HS256` key confusion fail
//! all of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::SystemTime;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use serde_json::{json, Value};
use signer::conformance::external::run_script;
use signer::jwt::{new_jti, TokenClaims, TokenLifetime, TokenType, UnsignedJwt};
use signer::{b64, KeyPolicy, KeyRing, KeySpec, SigningKey, SoftwareKey, Timestamp};

const ISSUER: &str = "https://sigil.test/t/acme";
const AUDIENCE: &str = "app-under-test";

fn claims() -> TokenClaims {
    let mut custom = serde_json::Map::new();
    custom.insert("groups".into(), json!(["eng", "<b>\"O'Brien\" & Co</b>"]));
    custom.insert("email".into(), json!("alice@acme.test"));
    TokenClaims {
        issuer: ISSUER.into(),
        subject: "00u1alice".into(),
        audience: vec![AUDIENCE.into()],
        auth_time: Some(Timestamp::from_system_time(SystemTime::now())),
        nonce: Some("n-0S6_WzA2Mj".into()),
        amr: vec!["pwd".into(), "otp".into()],
        session_id: Some("sid-1".into()),
        authorized_party: Some(AUDIENCE.into()),
        scope: Some("openid email".into()),
        client_id: None,
        custom,
    }
}

fn issue(
    key: &dyn SigningKey,
    claims: &TokenClaims,
    now: Timestamp,
    token_type: TokenType,
) -> String {
    let header = signer::jwt::encoded_header(key, token_type);
    let jti = new_jti(&SystemRandom::new()).unwrap();
    UnsignedJwt::build(
        &header,
        claims,
        now,
        TokenLifetime::from_secs(600).unwrap(),
        &jti,
    )
    .unwrap()
    .sign_inline(key)
    .unwrap()
}

/// Re-encodes a token's header or payload JSON, keeping the other parts.
fn rewrite(token: &str, part: usize, edit: impl FnOnce(&mut Value)) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut value: Value = serde_json::from_slice(&b64::decode(&parts[part]).unwrap()).unwrap();
    edit(&mut value);
    parts[part] = b64::encode(serde_json::to_vec(&value).unwrap());
    parts.join(".")
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

struct Case {
    name: String,
    token: String,
    must_verify: bool,
}

fn cases() -> (Value, Vec<Case>, Vec<Arc<dyn SigningKey>>) {
    let now = Timestamp::from_system_time(SystemTime::now());
    let mut ring = KeyRing::new("acme", KeyPolicy::default());
    let keys: Vec<Arc<dyn SigningKey>> = KeySpec::ALL
        .iter()
        .map(|&spec| Arc::new(SoftwareKey::generate(spec).unwrap()) as Arc<dyn SigningKey>)
        .collect();
    for key in &keys {
        // Two keys per algorithm (the RSA sizes) both in JWKS: the newer
        // active, the older retiring.
        ring.add_active(Arc::clone(key), now).unwrap();
    }
    let view = ring.view(now);
    assert_eq!(view.published().len(), keys.len(), "every key is published");
    let jwks: Value = serde_json::from_slice(view.jwks()).unwrap();

    let mut cases = Vec::new();
    let claims = claims();
    for (i, key) in keys.iter().enumerate() {
        let spec = key.public_key().spec();
        let good = issue(key.as_ref(), &claims, now, TokenType::IdToken);
        let access = issue(key.as_ref(), &claims, now, TokenType::AccessToken);
        let other = &keys[(i + 1) % keys.len()];

        let tampered_payload = rewrite(&good, 1, |p| p["sub"] = json!("00u1mallory"));
        let swapped_kid = rewrite(&good, 0, |h| h["kid"] = json!(other.kid().as_str()));
        let alg_none = {
            let unsigned = rewrite(&good, 0, |h| h["alg"] = json!("none"));
            let mut parts: Vec<&str> = unsigned.split('.').collect();
            parts[2] = "";
            parts.join(".")
        };
        // Key confusion: HS256 keyed with the public key the verifier holds.
        let hs256 = {
            let unsigned = rewrite(&good, 0, |h| h["alg"] = json!("HS256"));
            let input = unsigned.rsplit_once('.').unwrap().0.to_owned();
            let secret = pem("PUBLIC KEY", key.public_key().spki_der());
            let tag = hmac::sign(
                &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
                input.as_bytes(),
            );
            format!("{input}.{}", b64::encode(tag.as_ref()))
        };
        // Issued two hours ago with a ten-minute lifetime.
        let expired = issue(
            key.as_ref(),
            &claims,
            Timestamp::from_secs(now.secs() - 7200),
            TokenType::IdToken,
        );
        let wrong_audience = {
            let mut c = claims.clone();
            c.audience = vec!["someone-else".into()];
            issue(key.as_ref(), &c, now, TokenType::IdToken)
        };
        let truncated_signature = {
            let mut t = good.clone();
            t.truncate(t.len() - 4);
            t
        };

        for (what, token, must_verify) in [
            ("id-token", good, true),
            ("access-token", access, true),
            ("tampered-payload", tampered_payload, false),
            ("swapped-kid", swapped_kid, false),
            ("alg-none", alg_none, false),
            ("alg-hs256-key-confusion", hs256, false),
            ("expired", expired, false),
            ("wrong-audience", wrong_audience, false),
            ("truncated-signature", truncated_signature, false),
        ] {
            cases.push(Case {
                name: format!("{spec}/{what}"),
                token,
                must_verify,
            });
        }
    }
    (jwks, cases, keys)
}

#[test]
fn pyjwt_and_jwcrypto_accept_good_tokens_and_refuse_forgeries() {
    let (jwks, cases, _keys) = cases();
    let cases_json: Vec<Value> = cases
        .iter()
        .map(|c| json!({"name": c.name, "token": c.token, "issuer": ISSUER, "audience": AUDIENCE}))
        .collect();
    let results = run_script("verify_jwt.py", &json!({"jwks": jwks, "cases": cases_json}));
    let mut wrong = Vec::new();
    for case in &cases {
        for verifier in ["pyjwt", "jwcrypto"] {
            let outcome = results[&case.name][verifier].as_str().unwrap_or("missing");
            let verified = outcome == "ok";
            if verified != case.must_verify {
                wrong.push(format!("{} with {verifier}: {outcome}", case.name));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "verifiers disagree with expectations:\n{}",
        wrong.join("\n")
    );
    // 7 key specs x 9 shapes, each judged by two verifiers.
    assert_eq!(cases.len(), 63);
}

#[test]
fn jsonwebtoken_crate_accepts_good_tokens_and_refuses_forgeries() {
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};

    let (jwks, cases, _keys) = cases();
    let set: JwkSet = serde_json::from_value(jwks).unwrap();
    let mut wrong = Vec::new();
    for case in &cases {
        let verified = (|| {
            let header = decode_header(&case.token).ok()?;
            let jwk = set.find(header.kid.as_deref()?)?;
            let alg = jwk.common.key_algorithm?.to_string().parse().ok()?;
            let key = DecodingKey::from_jwk(jwk).ok()?;
            let mut validation = Validation::new(alg);
            validation.set_audience(&[AUDIENCE]);
            validation.set_issuer(&[ISSUER]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            decode::<Value>(&case.token, &key, &validation).ok()
        })()
        .is_some();
        if verified != case.must_verify {
            wrong.push(case.name.clone());
        }
    }
    assert!(wrong.is_empty(), "jsonwebtoken disagrees on: {wrong:?}");
}
