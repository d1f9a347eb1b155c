//! Rotating refresh tokens (issue 19) on `sigil serve`: `offline: true`
//! hands one out; `refresh` rotates it and the old one is refused; a
//! retired token presented again revokes its family and its session and
//! is audited as `refresh.reuse_detected`; the wrong app, another tenant,
//! a malformed token, an app not allowed, a wider scope are refused; the
//! idle and absolute lifetimes hold; ending the session, revoking the
//! user's sessions and deactivating the user end the refresh tokens; only
//! hashes reach Postgres; PyJWT and jwcrypto verify the refreshed tokens
//! against the served JWKS; `sigil client` speaks it all as JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use sigil_proto::client::{CallError, Client};
use sigil_proto::ErrorCode;

mod common;

use common::{free_port, node_database, session, sigil, Serve};

fn code<T: std::fmt::Debug>(outcome: Result<T, CallError>) -> ErrorCode {
    match outcome {
        Err(CallError::Refused(e)) => e.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Claims of a compact JWS (not verified: for reading them).
fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

fn sha256(text: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes())
        .as_ref()
        .to_vec()
}

async fn start() -> (tempfile::TempDir, Serve) {
    let dir = tempfile::tempdir().unwrap();
    let serve = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || Serve::start(&dir, free_port(), free_port())
    })
    .await
    .unwrap();
    (dir, serve)
}

/// `sigil admin app add` in acme, assigned to everyone, with `extra` flags.
fn app_add(dir: &Path, name: &str, extra: &[&str]) {
    let mut args = vec![
        "admin", "app", "add", "--tenant", "acme", "--name", name, "--alg", "ES256", "--assign",
        "everyone",
    ];
    args.extend_from_slice(extra);
    let (ok, added) = sigil(dir, &args);
    assert!(ok, "{added}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_rotate_and_a_reused_one_kills_family_and_session() {
    let (dir, serve) = start().await;
    let client = serve.client(None).await.unwrap();
    let alice = session(&client, "acme", "alice").await;
    let issuer = format!("http://{}/t/acme", serve.endpoints.http);

    // Without `offline` no refresh token; with it, one: 43 characters of
    // base64url, its family ending in 30 days (the demo apps' default).
    let plain = client
        .access_token("acme", "alice", "app-es256", &alice, &["openid"])
        .await
        .unwrap();
    assert_eq!(plain.refresh_token, None);
    let first = client
        .access_token_offline("acme", "alice", "app-es256", &alice, &["openid", "email"])
        .await
        .unwrap();
    let r1 = first.refresh_token.clone().unwrap();
    assert_eq!(r1.len(), 43);
    assert!(signer::b64::decode(&r1).is_some_and(|b| b.len() == 32));
    let now = signer::Timestamp::from_system_time(std::time::SystemTime::now()).secs();
    let ends = first.refresh_expires_at.unwrap();
    assert!(ends.abs_diff(now + 30 * 86_400) < 60, "{ends} vs {now}");

    // Rotation: a new access token with the granted scopes, a new refresh
    // token; the old one is refused from then on.
    let second = client
        .refresh("acme", "app-es256", &r1, None)
        .await
        .unwrap();
    let r2 = second.refresh_token.clone().unwrap();
    assert_ne!(r2, r1);
    assert_eq!(second.refresh_expires_at, first.refresh_expires_at);
    let seen = claims(&second.token);
    assert_eq!(seen["scope"], "openid email", "{seen}");
    assert_eq!(seen["sub"], "00uacme0000", "{seen}");
    assert_eq!(seen["aud"], "app-es256", "{seen}");
    assert_ne!(seen["jti"], claims(&first.token)["jti"]);
    // Narrower scope: granted; wider: refused, and the token stays good.
    let wider = client
        .refresh("acme", "app-es256", &r2, Some(&["openid", "admin"]))
        .await;
    assert_eq!(code(wider), ErrorCode::BadRequest);
    let third = client
        .refresh("acme", "app-es256", &r2, Some(&["email"]))
        .await
        .unwrap();
    assert_eq!(claims(&third.token)["scope"], "email");
    let r3 = third.refresh_token.clone().unwrap();

    // Refused without rotating: the wrong app, another tenant, malformed.
    let wrong_app = client.refresh("acme", "app-rs256", &r3, None).await;
    assert_eq!(code(wrong_app), ErrorCode::SessionInvalid);
    let other_tenant = client.refresh("globex", "app-es256", &r3, None).await;
    assert_eq!(code(other_tenant), ErrorCode::SessionInvalid);
    for bad in ["not-a-token", &r3[..42], &format!("{r3}A")] {
        let refused = client.refresh("acme", "app-es256", bad, None).await;
        assert_eq!(code(refused), ErrorCode::SessionInvalid, "{bad}");
    }
    // ... so r3 is still the family's live token (a narrower scope asked
    // once does not narrow the grant).
    let fourth = client
        .refresh("acme", "app-es256", &r3, None)
        .await
        .unwrap();
    assert_eq!(claims(&fourth.token)["scope"], "openid email");
    let r4 = fourth.refresh_token.clone().unwrap();

    // An ID-token family: a refresh answers an ID token of the session.
    let id_first = client
        .id_token_offline("acme", "alice", "app-eddsa", &alice, Some("n-1"))
        .await
        .unwrap();
    let id_r1 = id_first.refresh_token.clone().unwrap();
    let id_second = client
        .refresh("acme", "app-eddsa", &id_r1, None)
        .await
        .unwrap();
    let id_claims = claims(&id_second.token);
    assert_eq!(id_claims["aud"], "app-eddsa", "{id_claims}");
    assert_eq!(id_claims["sid"], claims(&id_first.token)["sid"]);
    assert!(id_claims.get("nonce").is_none(), "{id_claims}");
    assert!(id_claims.get("scope").is_none(), "{id_claims}");
    let id_scope = client
        .refresh(
            "acme",
            "app-eddsa",
            id_second.refresh_token.as_ref().unwrap(),
            Some(&["openid"]),
        )
        .await;
    assert_eq!(code(id_scope), ErrorCode::BadRequest);

    // PyJWT and jwcrypto verify the refreshed tokens against the JWKS the
    // node serves.
    signer::conformance::external::assert_jwts_verify(
        &format!(
            "http://{}/t/acme/.well-known/jwks.json",
            serve.endpoints.http
        ),
        &[
            json!({"name": "refreshed-access", "token": fourth.token, "issuer": issuer, "audience": "app-es256"}),
            json!({"name": "refreshed-id", "token": id_second.token, "issuer": issuer, "audience": "app-eddsa"}),
        ],
        "refreshed: ",
    );

    // An app not allowed refresh tokens: `forbidden`, and no token.
    app_add(dir.path(), "closed", &[]);
    let closed = client
        .access_token_offline("acme", "alice", "closed", &alice, &[])
        .await;
    assert_eq!(code(closed), ErrorCode::Forbidden);

    // Postgres holds hashes only.
    let db = node_database(&serve.var()).await;
    for token in [&r1, &r2, &r3, &r4] {
        let rows: i64 = db
            .query_one(
                "SELECT count(*) FROM refresh_tokens WHERE token_hash = $1",
                &[&sha256(token)],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, 1);
        let text: i64 = db
            .query_one(
                "SELECT count(*) FROM refresh_tokens r WHERE strpos(row_to_json(r)::text, $1) > 0",
                &[token],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(text, 0, "a token in clear in Postgres");
    }

    // Theft: r1 (retired) presented again. The family is revoked (r4, its
    // live token, is refused), the session too (on every node before the
    // answer), so the other family of the session is dead as well.
    let reused = client.refresh("acme", "app-es256", &r1, None).await;
    assert_eq!(code(reused), ErrorCode::SessionInvalid);
    let after = client.refresh("acme", "app-es256", &r4, None).await;
    assert_eq!(code(after), ErrorCode::SessionInvalid);
    // Presented once more: refused as revoked, not a second theft record.
    let twice = client.refresh("acme", "app-es256", &r1, None).await;
    assert!(
        matches!(&twice, Err(CallError::Refused(e)) if e.message == "refresh token revoked"),
        "{twice:?}"
    );
    assert_eq!(
        code(client.session_validate("acme", &alice).await),
        ErrorCode::SessionInvalid
    );
    let sibling = client
        .refresh(
            "acme",
            "app-eddsa",
            id_second.refresh_token.as_ref().unwrap(),
            None,
        )
        .await;
    assert_eq!(code(sibling), ErrorCode::SessionInvalid);
    let live: i64 = db
        .query_one(
            "SELECT count(*) FROM refresh_tokens WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1) AND revoked_at IS NULL",
            &[&sha256(&r1)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 0);

    // Audited in acme's chain, which stays whole, never with the token.
    common::audit_verify(dir.path(), "acme");
    let records = db
        .query(
            "SELECT e.detail::text FROM audit_events e JOIN tenants t USING (tenant_id)
              WHERE t.slug = 'acme' AND e.kind = 'refresh.reuse_detected'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    let detail: String = records[0].get(0);
    assert!(
        detail.contains("app-es256") && detail.contains("00uacme0000"),
        "{detail}"
    );
    assert!(!detail.contains(&r1), "{detail}");
    let leaked: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_events WHERE strpos(detail::text, $1) > 0",
            &[&r1],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leaked, 0);
    client.close().await;
}

/// Issues an access-token family for `user` in a new session.
async fn family(client: &Client, user: &str, app: &str) -> (String, String) {
    let session = session(client, "acme", user).await;
    let token = client
        .access_token_offline("acme", user, app, &session, &["openid"])
        .await
        .unwrap();
    (session, token.refresh_token.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_sessions_and_users_and_lifetimes_end_refresh_tokens() {
    let (dir, serve) = start().await;
    let d = dir.path();
    let client = serve.client(None).await.unwrap();
    let refused = |outcome| code(outcome) == ErrorCode::SessionInvalid;

    // A revoked session: its refresh tokens are refused.
    let (alice, token) = family(&client, "alice", "app-es256").await;
    let token = client
        .refresh("acme", "app-es256", &token, None)
        .await
        .unwrap()
        .refresh_token
        .unwrap();
    client.session_revoke("acme", &alice).await.unwrap();
    assert!(refused(
        client.refresh("acme", "app-es256", &token, None).await
    ));

    // Every session of the user revoked.
    let (_, token) = family(&client, "alice", "app-es256").await;
    client.user_revoke_sessions("acme", "alice").await.unwrap();
    assert!(refused(
        client.refresh("acme", "app-es256", &token, None).await
    ));
    // A new session after that works again.
    let (_, token) = family(&client, "alice", "app-es256").await;
    client
        .refresh("acme", "app-es256", &token, None)
        .await
        .unwrap();

    // A deactivated user.
    let (_, token) = family(&client, "bob", "app-es256").await;
    client.user_deactivate("acme", "bob").await.unwrap();
    assert!(refused(
        client.refresh("acme", "app-es256", &token, None).await
    ));
    let db = node_database(&serve.var()).await;
    let live: i64 = db
        .query_one(
            "SELECT count(*) FROM refresh_tokens WHERE user_id = '00uacme0001' AND revoked_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 0, "bob's refresh tokens are marked revoked");

    // Lifetimes: idle 4 s, absolute 7 s.
    app_add(
        d,
        "short",
        &[
            "--refresh-tokens",
            "--refresh-absolute",
            "7s",
            "--refresh-idle",
            "4s",
        ],
    );
    let (ok, apps) = sigil(d, &["admin", "app", "list", "--tenant", "acme"]);
    assert!(ok, "{apps}");
    let short = apps["result"]["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "short")
        .cloned()
        .unwrap();
    assert_eq!(
        (
            &short["refresh_tokens"],
            &short["refresh_absolute_s"],
            &short["refresh_idle_s"]
        ),
        (&json!(true), &json!(7), &json!(4)),
        "{short}"
    );
    // Lifetimes without --refresh-tokens: refused before anything is sent.
    let lone = common::sigil_output(
        d,
        &[
            "admin",
            "app",
            "add",
            "--tenant",
            "acme",
            "--name",
            "lone",
            "--alg",
            "ES256",
            "--refresh-idle",
            "1d",
        ],
    );
    assert!(!lone.status.success());
    let (_, idle) = family(&client, "alice", "short").await;
    let (_, mut rotating) = family(&client, "alice", "short").await;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        rotating = client
            .refresh("acme", "short", &rotating, None)
            .await
            .unwrap()
            .refresh_token
            .unwrap();
    }
    // 5 s and more since `idle` was used: idle too long.
    let idle_refused = client.refresh("acme", "short", &idle, None).await;
    assert!(
        matches!(&idle_refused, Err(CallError::Refused(e)) if e.message.contains("idle")),
        "{idle_refused:?}"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // 7.5 s and more since the family began, 2.5 s since its last use.
    let expired = client.refresh("acme", "short", &rotating, None).await;
    assert!(
        matches!(&expired, Err(CallError::Refused(e)) if e.message.contains("expired")),
        "{expired:?}"
    );

    // `sigil client`: --offline and refresh, as JSON.
    let (ok, issued) = sigil(
        d,
        &[
            "client",
            "access-token",
            "--tenant",
            "acme",
            "--user",
            "alice",
            "--app",
            "app-eddsa",
            "--scope",
            "openid,email",
            "--offline",
        ],
    );
    assert!(ok, "{issued}");
    let first = issued[1]["result"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        issued[1]["result"]["refresh_expires_at_rfc3339"].is_string(),
        "{issued}"
    );
    let (ok, refreshed) = sigil(
        d,
        &[
            "client",
            "refresh",
            "--tenant",
            "acme",
            "--app",
            "app-eddsa",
            "--refresh-token",
            &first,
            "--scope",
            "email",
        ],
    );
    assert!(ok, "{refreshed}");
    assert_eq!(refreshed["op"], "refresh");
    assert_eq!(
        claims(refreshed["result"]["token"].as_str().unwrap())["scope"],
        "email"
    );
    assert_ne!(refreshed["result"]["refresh_token"], first.as_str());
    let (ok, again) = sigil(
        d,
        &[
            "client",
            "refresh",
            "--tenant",
            "acme",
            "--app",
            "app-eddsa",
            "--refresh-token",
            &first,
        ],
    );
    assert!(!ok);
    assert_eq!(again["error"]["code"], "session_invalid", "{again}");
    let (ok, id) = sigil(
        d,
        &[
            "client",
            "id-token",
            "--tenant",
            "acme",
            "--user",
            "alice",
            "--app",
            "app-rs256",
            "--offline",
        ],
    );
    assert!(ok, "{id}");
    assert!(id[1]["result"]["refresh_token"].is_string(), "{id}");

    // Two refreshes racing with one token: one rotates it, the other
    // presents a retired token, which is theft: the winner's new token
    // dies with the family.
    let (racing_session, racing) = family(&client, "alice", "app-es256").await;
    let (a, b) = tokio::join!(
        client.refresh("acme", "app-es256", &racing, None),
        client.refresh("acme", "app-es256", &racing, None)
    );
    let winner = match (a, b) {
        (Ok(won), lost) | (lost, Ok(won)) => {
            assert_eq!(code(lost), ErrorCode::SessionInvalid);
            won.refresh_token.unwrap()
        }
        (a, b) => panic!("neither rotated: {a:?} {b:?}"),
    };
    assert_eq!(
        code(client.refresh("acme", "app-es256", &winner, None).await),
        ErrorCode::SessionInvalid
    );
    assert_eq!(
        code(client.session_validate("acme", &racing_session).await),
        ErrorCode::SessionInvalid
    );
    client.close().await;
}
