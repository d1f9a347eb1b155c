//! Issue 18: `session_create` takes the caller's word for who signed in,
//! so only front ends registered with `--trusted-assertions` (federation
//! and delegation gateways) may ask for it, on `sigil serve`. Their
//! sessions carry `amr` `["fed", ...claimed]` and say they were asserted
//! (`session_validate`'s `asserted`); PyJWT reads `fed` in their tokens and
//! finds none in the tokens of a session `authenticate` proved. Every other
//! front end is refused, audited, and still signs users in with
//! `authenticate`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::auth::{authenticate, python, refused, set_password, start};
use common::{free_port, frontend_add, node_database, session, sigil, wait_shipped, Serve};
use serde_json::json;
use sigil_proto::ErrorCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_trusted_front_ends_assert_sign_ins_and_their_sessions_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let serve = start(dir.path(), "queue = 64\nip_failures_burst = 1000");
    let (plain_dir, printed) = frontend_add(&serve.dir, "web-plain", "acme", &[]);
    assert_eq!(printed["trusted_assertions"], false, "{printed}");
    let (gateway_dir, printed) =
        frontend_add(&serve.dir, "sso-gateway", "acme", &["--trusted-assertions"]);
    assert_eq!(printed["trusted_assertions"], true, "{printed}");
    let plain = serve.client(Some(&plain_dir)).await.unwrap();
    let gateway = serve.client(Some(&gateway_dir)).await.unwrap();
    set_password(&serve, "acme", "alice", "correct horse battery");

    // A front end without the flag: refused, told why and what to use.
    let (code, message) = refused(plain.session_create("acme", "alice", &["pwd"], None).await);
    assert_eq!(code, ErrorCode::Forbidden);
    assert_eq!(
        message,
        "front end web-plain is not registered with --trusted-assertions; use authenticate"
    );
    // Its sign-ins go through authenticate, proven, not asserted.
    let proven = authenticate(&plain, "acme", "alice", "correct horse battery")
        .await
        .unwrap();
    assert_eq!(proven.status, "SUCCESS", "{proven:?}");
    let proven = proven.session.unwrap();
    let info = plain.session_validate("acme", &proven).await.unwrap();
    assert_eq!(
        (info.amr.clone(), info.asserted),
        (vec!["pwd".to_owned()], false)
    );

    // A trusted one: `fed` first, then its claim once each, asserted.
    let created = gateway
        .session_create("acme", "alice", &["pwd", "otp", "pwd", "fed"], Some("idp"))
        .await
        .unwrap();
    let asserted = gateway
        .session_validate("acme", &created.session)
        .await
        .unwrap();
    assert_eq!(asserted.amr, ["fed", "pwd", "otp"]);
    assert!(asserted.asserted);
    // Any caller of the tenant sees it asserted (the mark is the session's).
    let seen = plain
        .session_validate("acme", &created.session)
        .await
        .unwrap();
    assert!(seen.asserted);
    // A claim that leaves no room for `fed` (8 at most) is refused.
    let eight = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"];
    let (code, _) = refused(gateway.session_create("acme", "alice", &eight, None).await);
    assert_eq!(code, ErrorCode::BadRequest);
    // Still bound to its tenants.
    let (code, message) = refused(
        gateway
            .session_create("globex", "carol", &["pwd"], None)
            .await,
    );
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(
        message.contains("may act only for tenant acme"),
        "{message}"
    );

    // PyJWT: the ID token of the asserted session carries `fed`; the one of
    // the proven session does not.
    let issuer = format!("http://{}/t/acme", serve.endpoints.http);
    let jwks_url = format!("{issuer}/.well-known/jwks.json");
    let mut tasks = Vec::new();
    for session in [&created.session, &proven] {
        let token = plain
            .id_token("acme", "alice", "app-eddsa", session, None)
            .await
            .unwrap();
        tasks.push(json!({"do": "jwt_claims", "jwks_url": jwks_url, "token": token.token, "audience": "app-eddsa", "issuer": issuer}));
    }
    let claims = python(tasks);
    assert_eq!(claims[0]["amr"], json!(["fed", "pwd", "otp"]), "{claims:?}");
    assert_eq!(claims[1]["amr"], json!(["pwd"]), "{claims:?}");

    // The flag survives listing.
    let (ok, listed) = sigil(&serve.dir, &["admin", "frontend", "list"]);
    assert!(ok, "{listed}");
    let flag = |name: &str| {
        listed["result"]["frontends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| f["trusted_assertions"].clone())
    };
    assert_eq!(flag("web-plain"), Some(json!(false)), "{listed}");
    assert_eq!(flag("sso-gateway"), Some(json!(true)), "{listed}");
    // The embedded demo front end stands for the federated SSO front ends.
    assert_eq!(flag("demo-frontend"), Some(json!(true)), "{listed}");
    assert_eq!(flag("demo-admin"), Some(json!(false)), "{listed}");

    // The refusal is in the tenant's audit chain, like every refusal.
    wait_shipped(&serve.dir);
    let db = node_database(&serve.var()).await;
    let refusals: Vec<String> = db
        .query(
            "SELECT detail::text FROM audit_events WHERE kind = 'refused'
               AND detail->>'op' = 'session_create'
               AND tenant_id = (SELECT tenant_id FROM tenants WHERE slug = 'acme')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        refusals
            .iter()
            .any(|d| d.contains("web-plain") && d.contains("--trusted-assertions")),
        "{refusals:?}"
    );
    serve.stop();
}

/// A directory from before the flag has its callers without it. Taken
/// away, the flag is refused from a following request on a connection
/// already open (the change notification makes every node resolve its
/// callers again), and the embedded default gives its demo front end the
/// flag back at its next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_front_end_is_trusted_again_after_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), free_port(), free_port());
    let client = serve.client(None).await.unwrap();
    session(&client, "acme", "alice").await;
    let db = node_database(&serve.var()).await;
    let changed = db
        .execute(
            "UPDATE frontends SET trusted_assertions = false WHERE name = 'demo-frontend'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match client.session_create("acme", "alice", &["pwd"], None).await {
            Err(refused) if refused.code() == Some(ErrorCode::Forbidden) => break,
            Ok(_) => {
                assert!(
                    Instant::now() < deadline,
                    "the flag taken away is not heard"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("{other}"),
        }
    }
    client.close().await;
    drop(db);
    serve.stop();

    let serve = Serve::start(dir.path(), free_port(), free_port());
    let client = serve.client(None).await.unwrap();
    let created = client
        .session_create("acme", "alice", &["pwd"], None)
        .await
        .unwrap();
    let info = client
        .session_validate("acme", &created.session)
        .await
        .unwrap();
    assert_eq!(
        (info.amr, info.asserted),
        (vec!["fed".to_owned(), "pwd".to_owned()], true)
    );
    client.close().await;
    serve.stop();
}
