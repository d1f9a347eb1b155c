//! Token introspection (RFC 7662) and revocation (RFC 7009) on a `sigil
//! serve` process (issue 19): Authlib makes the `private_key_jwt`
//! assertions and runs its introspection and revocation clients
//! (scripts/introspection_check.py); assertions made here try to break
//! client authentication (wrong key, wrong aud, expired, too long, replayed
//! jti, none at all) and the token checks (another app's token, another
//! tenant's, tampered, garbage); bodies that are too large or not forms;
//! revoke then introspect; discovery and metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::signature::Ed25519KeyPair;
use serde_json::{json, Value};
use signer::b64;
use signer::conformance::external::python;

mod common;

use common::oauth::{assertion, call, jwks_of, now, post, rand_suffix, set_jwks, ASSERTION_TYPE};
use common::{free_port, node_database, session, sigil, Serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_and_revocation_hold_against_authlib_and_attacks() {
    let dir = tempfile::tempdir().unwrap();
    let serve = {
        let dir = dir.path().to_owned();
        tokio::task::spawn_blocking(move || Serve::start(&dir, free_port(), free_port()))
            .await
            .unwrap()
    };
    let d = dir.path();
    let issuer = format!("http://{}/t/acme", serve.endpoints.http);

    // Authlib's keys, registered with a new app by `app add --jwks`.
    let keys = d.join("authlib");
    std::fs::create_dir_all(&keys).unwrap();
    let made = std::process::Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/introspection_check.py"
        ))
        .arg("keys")
        .arg(&keys)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (ok, out) = sigil(
        d,
        &[
            "admin",
            "app",
            "add",
            "--tenant",
            "acme",
            "--name",
            "resource-api",
            "--alg",
            "ES256",
            "--assign",
            "everyone",
            "--jwks",
            keys.join("jwks.json").to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}");
    // A key of this test's own for two seeded apps, by `app set-jwks`.
    let key = Ed25519KeyPair::generate().unwrap();
    let stranger = Ed25519KeyPair::generate().unwrap();
    for app in ["app-es256", "app-eddsa"] {
        set_jwks(d, "acme", app, &jwks_of(&key));
    }
    set_jwks(d, "globex", "app-es256", &jwks_of(&key));

    let client = serve.client(None).await.unwrap();
    let alice = session(&client, "acme", "alice").await;
    let token_of = |app: &'static str| {
        let client = &client;
        let alice = &alice;
        async move {
            client
                .access_token("acme", "alice", app, alice, &["read", "write"])
                .await
                .unwrap()
                .token
        }
    };

    // Authlib: introspection with RS256, ES256 and EdDSA assertions, a
    // replayed assertion refused, revocation, then inactive.
    let token = token_of("resource-api").await;
    let checked = std::process::Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/introspection_check.py"
        ))
        .args(["check", &issuer, "resource-api"])
        .arg(&keys)
        .arg(&token)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "introspection_check.py: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // Active for its own app, with the RFC 7662 members.
    let mine = token_of("app-es256").await;
    let (status, body) = call(&serve, &key, "acme", "app-es256", "introspect", &mine);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["client_id"], "app-es256");
    assert_eq!(body["scope"], "read write");
    assert_eq!(body["iss"], issuer);
    assert_eq!(body["token_type"], "Bearer");
    assert!(
        body["exp"].as_u64().unwrap() > now() && body["iat"].is_u64() && body["sub"].is_string()
    );
    // The issuer URL as aud works too.
    let by_issuer = assertion(&key, "app-es256", &issuer, 60, &rand_suffix());
    let (status, body) = post(
        &serve,
        "acme",
        "introspect",
        &[
            ("token", &mine),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &by_issuer),
        ],
    );
    assert_eq!((status, &body["active"]), (200, &json!(true)), "{body}");

    // Client authentication, broken every way: 401 invalid_client.
    let aud = format!("{issuer}/oauth2/introspect");
    let refused = |assertion: &str| {
        let (status, body) = post(
            &serve,
            "acme",
            "introspect",
            &[
                ("token", &mine),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", assertion),
            ],
        );
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "invalid_client", "{body}");
        body["error_description"].as_str().unwrap().to_owned()
    };
    refused(&assertion(&stranger, "app-es256", &aud, 60, &rand_suffix()));
    refused(&assertion(
        &key,
        "app-es256",
        "https://elsewhere.example/token",
        60,
        &rand_suffix(),
    ));
    refused(&assertion(
        &key,
        "app-es256",
        &format!("{issuer}/oauth2/revoke"),
        60,
        &rand_suffix(),
    ));
    refused(&assertion(&key, "app-es256", &aud, -120, &rand_suffix()));
    refused(&assertion(&key, "app-es256", &aud, 3600, &rand_suffix()));
    refused(&assertion(&key, "resource-api", &aud, 60, &rand_suffix()));
    refused(&assertion(&key, "no-such-app", &aud, 60, &rand_suffix()));
    refused(&assertion(&key, "app-rs256", &aud, 60, &rand_suffix())); // no JWKS
    refused("not.a.jwt");
    // An exp at the edge of u64 is refused, not an overflow.
    let header = b64::encode(r#"{"alg":"EdDSA"}"#);
    let claims =
        json!({"iss": "app-es256", "sub": "app-es256", "aud": aud, "exp": u64::MAX, "jti": "x"});
    let input = format!("{header}.{}", b64::encode(claims.to_string()));
    let huge_exp = format!(
        "{input}.{}",
        b64::encode(key.sign(input.as_bytes()).as_ref())
    );
    refused(&huge_exp);
    let once = assertion(&key, "app-es256", &aud, 60, "only-once");
    let (status, _) = post(
        &serve,
        "acme",
        "introspect",
        &[
            ("token", &mine),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &once),
        ],
    );
    assert_eq!(status, 200);
    assert!(refused(&once).contains("replay"));
    for pairs in [
        vec![("token", mine.as_str())],
        vec![
            ("token", mine.as_str()),
            ("client_id", "app-es256"),
            ("client_secret", "guess"),
        ],
        vec![
            ("token", mine.as_str()),
            ("client_assertion_type", "urn:other"),
            ("client_assertion", &once),
        ],
    ] {
        let (status, body) = post(&serve, "acme", "introspect", &pairs);
        assert_eq!(
            (status, &body["error"]),
            (401, &json!("invalid_client")),
            "{body}"
        );
    }

    // Tokens an app may not see, and tokens that are not tokens: inactive.
    let others = token_of("app-eddsa").await;
    let (_, body) = call(&serve, &key, "acme", "app-es256", "introspect", &others);
    assert_eq!(body, json!({"active": false}));
    let (_, body) = call(&serve, &key, "acme", "app-eddsa", "introspect", &others);
    assert_eq!(body["active"], true, "{body}");
    let carol = session(&client, "globex", "carol").await;
    let globex = client
        .access_token("globex", "carol", "app-es256", &carol, &["read"])
        .await
        .unwrap()
        .token;
    let (_, body) = call(&serve, &key, "acme", "app-es256", "introspect", &globex);
    assert_eq!(body, json!({"active": false}), "another tenant's token");
    let (_, body) = call(&serve, &key, "globex", "app-es256", "introspect", &globex);
    assert_eq!(body["active"], true, "{body}");
    let (_, body) = call(&serve, &key, "globex", "app-es256", "introspect", &mine);
    assert_eq!(body, json!({"active": false}), "acme's token at globex");
    let mut parts: Vec<String> = mine.split('.').map(str::to_owned).collect();
    let mut claims: Value = serde_json::from_slice(&b64::decode(&parts[1]).unwrap()).unwrap();
    claims["client_id"] = json!("app-eddsa");
    claims["exp"] = json!(now() + 86_400);
    parts[1] = b64::encode(claims.to_string());
    let tampered = parts.join(".");
    for token in [tampered.as_str(), "garbage", "a.b.c"] {
        let (status, body) = call(&serve, &key, "acme", "app-eddsa", "introspect", token);
        assert_eq!((status, body), (200, json!({"active": false})), "{token}");
    }

    // Bad input: RFC 6749 §5.2 error JSON.
    let (status, body) = serve.post("/t/acme/oauth2/introspect", "application/json", b"{}");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("invalid_request"));
    let (status, _) = serve.post(
        "/t/acme/oauth2/introspect",
        "application/x-www-form-urlencoded",
        &vec![b'a'; 17 * 1024],
    );
    assert_eq!(status, 413);
    let (status, body) = serve.post(
        "/t/acme/oauth2/revoke",
        "application/x-www-form-urlencoded",
        b"token=a&token=b",
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, body) = call(&serve, &key, "acme", "app-es256", "introspect", "");
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_request")),
        "{body}"
    );
    let (status, _) = call(&serve, &key, "nosuch", "app-es256", "introspect", &mine);
    assert_eq!(status, 404);
    assert_eq!(serve.http("/t/acme/oauth2/introspect").0, 405);

    // Revocation: another app's token is not touched; its own is dead,
    // and stays dead; refresh tokens are not handled here.
    let (status, _) = call(&serve, &key, "acme", "app-es256", "revoke", &others);
    assert_eq!(status, 200);
    let (_, body) = call(&serve, &key, "acme", "app-eddsa", "introspect", &others);
    assert_eq!(body["active"], true, "another app cannot revoke it: {body}");
    let (status, _) = call(&serve, &key, "acme", "app-es256", "revoke", &mine);
    assert_eq!(status, 200);
    let (_, body) = call(&serve, &key, "acme", "app-es256", "introspect", &mine);
    assert_eq!(body, json!({"active": false}));
    let (status, _) = call(&serve, &key, "acme", "app-es256", "revoke", "unknown-token");
    assert_eq!(status, 200);
    // RFC 7009 for refresh tokens: an opaque token that is none of ours is
    // answered 200 with no effect, whatever the hint; a refresh token the
    // app holds revokes its family at once (the next refresh is refused),
    // and another app cannot revoke it.
    let aud = format!("{issuer}/oauth2/revoke");
    let revoke_refresh = |app: &str, token: &str, hint: &str| {
        post(
            &serve,
            "acme",
            "revoke",
            &[
                ("token", token),
                ("token_type_hint", hint),
                ("client_assertion_type", ASSERTION_TYPE),
                (
                    "client_assertion",
                    &assertion(&key, app, &aud, 60, &rand_suffix()),
                ),
            ],
        )
    };
    assert_eq!(
        revoke_refresh("app-es256", "opaque-refresh", "refresh_token").0,
        200
    );
    let offline = client
        .access_token_offline("acme", "alice", "app-es256", &alice, &["read"])
        .await
        .unwrap();
    let refresh_token = offline.refresh_token.expect("a refresh token");
    // Another app's revoke is a no-op: the token still rotates.
    assert_eq!(
        revoke_refresh("app-eddsa", &refresh_token, "refresh_token").0,
        200
    );
    let rotated = client
        .refresh("acme", "app-es256", &refresh_token, None)
        .await
        .unwrap()
        .refresh_token
        .expect("rotated");
    // The owner revokes the rotated one with a wrong hint: the family dies.
    let (status, body) = revoke_refresh("app-es256", &rotated, "access_token");
    assert_eq!(status, 200, "{body}");
    let refused = client
        .refresh("acme", "app-es256", &rotated, None)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("revoked"), "{refused}");
    // The session was not stolen: it stays valid.
    client.session_validate("acme", &alice).await.unwrap();

    // Both revocations are in acme's audit chain, which stays whole: the
    // access token by its jti, the refresh token by its family; never a
    // token itself.
    common::audit_verify(d, "acme");
    let db = node_database(&serve.var()).await;
    let revoked: Vec<String> = db
        .query(
            "SELECT e.detail::text FROM audit_events e JOIN tenants t USING (tenant_id)
              WHERE t.slug = 'acme' AND e.kind = 'token.revoke'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        revoked.iter().any(|d| d.contains("\"access_token\"")),
        "{revoked:?}"
    );
    assert!(
        revoked
            .iter()
            .any(|d| d.contains("\"refresh_token\"") && d.contains("app-es256")),
        "{revoked:?}"
    );
    assert!(
        revoked
            .iter()
            .all(|d| !d.contains(&rotated) && !d.contains(&mine)),
        "{revoked:?}"
    );

    // Discovery and metrics.
    let (_, discovery) = serve.http("/t/acme/.well-known/openid-configuration");
    let discovery: Value = serde_json::from_slice(&discovery).unwrap();
    assert_eq!(
        discovery["introspection_endpoint"],
        format!("{issuer}/oauth2/introspect")
    );
    assert_eq!(
        discovery["revocation_endpoint"],
        format!("{issuer}/oauth2/revoke")
    );
    assert_eq!(
        discovery["introspection_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );
    assert_eq!(
        discovery["revocation_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );
    assert_eq!(discovery["backchannel_logout_supported"], true);
    assert_eq!(discovery["backchannel_logout_session_supported"], true);
    let metrics = String::from_utf8(serve.http("/metrics").1).unwrap();
    for line in [
        "sigil_oauth_requests_total{endpoint=\"introspect\",outcome=\"active\"}",
        "sigil_oauth_requests_total{endpoint=\"introspect\",outcome=\"invalid_client\"}",
        "sigil_oauth_requests_total{endpoint=\"revoke\",outcome=\"revoked\"}",
        "sigil_oauth_request_seconds_count{endpoint=\"introspect\"}",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    serve.stop();
}
