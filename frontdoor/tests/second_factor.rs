//! Issue 18: TOTP as a second factor on `sigil serve`. Codes come from
//! pyotp, the token's `amr` is read by PyJWT (scripts/auth_check.py); the
//! test tries to break it: a wrong code, a replayed code (same step, on a
//! new state), a reused state, an expired state, another tenant's state,
//! a second enrollment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::auth::{authenticate, op, python, refused, set_password, sigil_stdin, start};
use common::node_database;
use serde_json::json;
use sigil_proto::auth::{AuthOp, AuthStatus, CredentialChanged, FactorEnrolled, Secret};
use sigil_proto::client::CallError;
use sigil_proto::ErrorCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_is_a_second_factor_once_per_step() {
    let dir = tempfile::tempdir().unwrap();
    let serve = start(dir.path(), "queue = 64");
    let client = serve.client(None).await.unwrap();
    let db = node_database(&serve.var()).await;
    let set: CredentialChanged = op(
        &client,
        AuthOp::UserPasswordSet {
            tenant: "acme".into(),
            user: "bob".into(),
            password: Secret("pw-bob".into()),
        },
    )
    .await
    .map(|c: CredentialChanged| c)
    .unwrap_or_else(|e| {
        // The demo front end is no admin: set it through the CLI.
        assert!(
            matches!(&e, CallError::Refused(w) if w.code == ErrorCode::Forbidden),
            "{e:?}"
        );
        set_password(&serve, "acme", "bob", "pw-bob");
        CredentialChanged {
            activated: None,
            password_set: Some(true),
            unlocked: None,
        }
    });
    assert_eq!(set.password_set, Some(true));

    // Enroll (the CLI), then activate with pyotp's code.
    let (ok, out) = sigil_stdin(
        &serve,
        &[
            "client",
            "factor-enroll",
            "--tenant",
            "acme",
            "--user",
            "bob",
            "--type",
            "totp",
        ],
        "",
    );
    assert!(ok, "{out}");
    let enrolled: FactorEnrolled = serde_json::from_value(out["result"].clone()).unwrap();
    let uri = enrolled.otpauth_uri;
    let stored: Vec<u8> = db
        .query_one("SELECT secret FROM user_factors", &[])
        .await
        .unwrap()
        .get(0);
    let secret_b32 = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&stored).contains(secret_b32),
        "the secret is wrapped"
    );
    // Pending: a password alone still signs in.
    assert_eq!(
        authenticate(&client, "acme", "bob", "pw-bob")
            .await
            .unwrap()
            .status,
        "SUCCESS"
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let codes = python(vec![
        json!({"do": "totp", "uri": uri, "at": now}),
        json!({"do": "totp", "uri": uri, "at": now + 30}),
    ]);
    assert_eq!(
        (
            codes[0]["digits"].clone(),
            codes[0]["interval"].clone(),
            codes[0]["digest"].clone()
        ),
        (json!(6), json!(30), json!("sha1"))
    );
    let (now_code, next_code) = (
        codes[0]["code"].as_str().unwrap().to_owned(),
        codes[1]["code"].as_str().unwrap().to_owned(),
    );
    let bad: Result<CredentialChanged, _> = op(
        &client,
        AuthOp::FactorActivate {
            tenant: "acme".into(),
            user: "bob".into(),
            otp: Secret("000000".into()),
            state: None,
        },
    )
    .await;
    if now_code != "000000" {
        assert_eq!(refused(bad).0, ErrorCode::InvalidCredentials);
    }
    let (ok, out) = sigil_stdin(
        &serve,
        &[
            "client",
            "factor-activate",
            "--tenant",
            "acme",
            "--user",
            "bob",
            "--otp",
            &now_code,
        ],
        "",
    );
    assert!(ok, "{out}");
    assert_eq!(out["result"]["activated"], true);

    // Now the password alone asks for the factor.
    let first = authenticate(&client, "acme", "bob", "pw-bob")
        .await
        .unwrap();
    assert_eq!(first.status, "MFA_REQUIRED");
    assert_eq!(first.factors, Some(vec!["totp".to_owned()]));
    assert!(first.session.is_none());
    let state = first.state.unwrap();
    // The activation's step cannot be used again (replay), on any state.
    let replay: Result<AuthStatus, _> = op(
        &client,
        AuthOp::FactorVerify {
            tenant: "acme".into(),
            state: Secret(state.clone()),
            otp: Secret(now_code.clone()),
        },
    )
    .await;
    let (code, message) = refused(replay);
    assert_eq!(code, ErrorCode::InvalidCredentials);
    assert!(message.contains("already used code"), "{message}");
    // ... and the state was single use.
    let second = authenticate(&client, "acme", "bob", "pw-bob")
        .await
        .unwrap();
    let state2 = second.state.unwrap();
    let used: Result<AuthStatus, _> = op(
        &client,
        AuthOp::FactorVerify {
            tenant: "acme".into(),
            state: Secret(state),
            otp: Secret(next_code.clone()),
        },
    )
    .await;
    let (code, message) = refused(used);
    assert_eq!(code, ErrorCode::InvalidCredentials);
    assert!(
        message.contains("state is unknown, used or expired"),
        "{message}"
    );
    // The next step's code (skew +1) with a fresh state: SUCCESS, pwd + otp.
    let (ok, out) = sigil_stdin(
        &serve,
        &[
            "client",
            "factor-verify",
            "--tenant",
            "acme",
            "--state",
            &state2,
            "--otp",
            &next_code,
        ],
        "",
    );
    assert!(ok, "{out}");
    assert_eq!(out["result"]["status"], "SUCCESS");
    assert_eq!(out["result"]["amr"], json!(["pwd", "otp"]));
    let session = out["result"]["session"].as_str().unwrap().to_owned();
    assert_eq!(
        client.session_validate("acme", &session).await.unwrap().amr,
        vec!["pwd", "otp"]
    );
    let token = client
        .id_token("acme", "bob", "app-eddsa", &session, None)
        .await
        .unwrap();
    let issuer = format!("http://{}/t/acme", serve.endpoints.http);
    let claims = python(vec![
        json!({"do": "jwt_claims", "jwks_url": format!("{issuer}/.well-known/jwks.json"), "token": token.token, "audience": "app-eddsa", "issuer": issuer}),
    ]);
    assert_eq!(claims[0]["amr"], json!(["pwd", "otp"]), "{claims:?}");

    // The same code again, with a new state: refused (once per step).
    let third = authenticate(&client, "acme", "bob", "pw-bob")
        .await
        .unwrap();
    let again: Result<AuthStatus, _> = op(
        &client,
        AuthOp::FactorVerify {
            tenant: "acme".into(),
            state: Secret(third.state.unwrap()),
            otp: Secret(next_code),
        },
    )
    .await;
    let (code, message) = refused(again);
    assert_eq!(code, ErrorCode::InvalidCredentials);
    assert!(message.contains("already used code"), "{message}");

    // An expired state is refused.
    let fourth = authenticate(&client, "acme", "bob", "pw-bob")
        .await
        .unwrap();
    db.execute(
        "UPDATE auth_states SET expires_at = now() - interval '1 second'",
        &[],
    )
    .await
    .unwrap();
    let late = python(vec![json!({"do": "totp", "uri": uri, "at": now + 60})]);
    let expired: Result<AuthStatus, _> = op(
        &client,
        AuthOp::FactorVerify {
            tenant: "acme".into(),
            state: Secret(fourth.state.unwrap()),
            otp: Secret(late[0]["code"].as_str().unwrap().into()),
        },
    )
    .await;
    // Refused for the state, whatever the code (the code's refusal says
    // "code").
    let (code, message) = refused(expired);
    assert_eq!(code, ErrorCode::InvalidCredentials);
    assert!(
        message.contains("state is unknown, used or expired"),
        "{message}"
    );
    // A state of acme is nothing in globex.
    let fifth = authenticate(&client, "acme", "bob", "pw-bob")
        .await
        .unwrap();
    let cross: Result<AuthStatus, _> = op(
        &client,
        AuthOp::FactorVerify {
            tenant: "globex".into(),
            state: Secret(fifth.state.unwrap()),
            otp: Secret("123456".into()),
        },
    )
    .await;
    let (code, message) = refused(cross);
    assert_eq!(code, ErrorCode::InvalidCredentials);
    assert!(
        message.contains("state is unknown, used or expired"),
        "{message}"
    );
    // A second enrollment while active is a conflict.
    let twice: Result<FactorEnrolled, _> = op(
        &client,
        AuthOp::FactorEnroll {
            tenant: "acme".into(),
            user: "bob".into(),
            factor_type: "totp".into(),
        },
    )
    .await;
    assert_eq!(refused(twice).0, ErrorCode::Conflict);
}
