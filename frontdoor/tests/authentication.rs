//! Issue 18 end to end on `sigil serve`: Sigil verifies passwords itself,
//! and a session's `amr` (and every token's) says what was proven. Hashes
//! are made and checked by software nobody here wrote (argon2-cffi,
//! bcrypt, PyJWT: scripts/auth_check.py), and the tests try to break it:
//! wrong password, unknown user (same answer, similar time), cross-tenant,
//! lockout (on one node and across two), oversized password, a flood
//! answered `overloaded` at once. TOTP is in `second_factor.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::auth::{
    authenticate, op, python, refused, set_password, set_tenant_settings, sigil_stdin, start,
    stored_hash,
};
use common::node_database;
use serde_json::json;
use sigil_proto::auth::{AuthOp, AuthStatus, CredentialChanged, FactorEnrolled, Secret};
use sigil_proto::client::CallError;
use sigil_proto::ErrorCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_verified_upgraded_and_lock_out() {
    let dir = tempfile::tempdir().unwrap();
    let serve = start(dir.path(), "queue = 64\nip_failures_burst = 1000");
    let client = serve.client(None).await.unwrap();
    let db = node_database(&serve.var()).await;

    // An admin sets alice's password from stdin.
    set_password(&serve, "acme", "alice", "correct horse battery");
    let sigil_hash = stored_hash(&db, "acme", "alice").await;
    assert!(
        sigil_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{sigil_hash}"
    );

    // The CLI signs alice in: SUCCESS, a session proving "pwd".
    let (ok, out) = sigil_stdin(
        &serve,
        &[
            "client",
            "authenticate",
            "--tenant",
            "acme",
            "--user",
            "alice",
            "--password-stdin",
            "--client-ip",
            "192.0.2.7",
            "--app",
            "app-eddsa",
        ],
        "correct horse battery\n",
    );
    assert!(ok, "{out}");
    assert_eq!(out["result"]["status"], "SUCCESS", "{out}");
    assert_eq!(out["result"]["amr"], json!(["pwd"]));
    let session = out["result"]["session"].as_str().unwrap().to_owned();
    let info = client.session_validate("acme", &session).await.unwrap();
    assert_eq!(
        (info.user.as_str(), info.amr.clone()),
        ("alice", vec!["pwd".to_owned()])
    );

    // PyJWT: the ID token of that session carries amr and auth_time as proven.
    let token = client
        .id_token("acme", "alice", "app-eddsa", &session, Some("n1"))
        .await
        .unwrap();
    let issuer = format!("http://{}/t/acme", serve.endpoints.http);
    let jwks_url = format!("{issuer}/.well-known/jwks.json");
    // argon2-cffi verifies Sigil's hash; Sigil verifies argon2-cffi's
    // (weaker than the tenant's: upgraded at the sign-in) and bcrypt's.
    let results = python(vec![
        json!({"do": "jwt_claims", "jwks_url": jwks_url, "token": token.token, "audience": "app-eddsa", "issuer": issuer}),
        json!({"do": "argon2_verify", "hash": sigil_hash, "password": "correct horse battery"}),
        json!({"do": "argon2_verify", "hash": sigil_hash, "password": "correct horse batterY"}),
        json!({"do": "argon2_hash", "password": "bob's argon", "m": 8192, "t": 1, "p": 1}),
        json!({"do": "bcrypt_hash", "password": "carol's bcrypt", "rounds": 5}),
    ]);
    assert_eq!(results[0]["amr"], json!(["pwd"]), "{results:?}");
    assert_eq!(results[0]["auth_time"].as_u64().unwrap(), info.auth_time);
    assert_eq!(
        (results[1].clone(), results[2].clone()),
        (json!(true), json!(false))
    );
    let (cffi_hash, bcrypt_hash) = (results[3].as_str().unwrap(), results[4].as_str().unwrap());
    assert!(
        cffi_hash.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"),
        "{cffi_hash}"
    );
    assert!(bcrypt_hash.starts_with("$2b$05$"), "{bcrypt_hash}");

    // Import: bob (acme) with argon2-cffi's hash, carol (globex) with
    // bcrypt's.
    let users = dir.path().join("users.jsonl");
    std::fs::write(
        &users,
        format!("{}\n", json!({"user": "bob", "password_hash": cffi_hash})),
    )
    .unwrap();
    let (ok, out) = sigil_stdin(
        &serve,
        &[
            "admin",
            "user",
            "import",
            "--tenant",
            "acme",
            "--file",
            users.to_str().unwrap(),
        ],
        "",
    );
    assert!(ok, "{out}");
    let globex_users = dir.path().join("globex.jsonl");
    std::fs::write(
        &globex_users,
        format!(
            "{}\n{}\n",
            json!({"user": "carol", "password_hash": bcrypt_hash}),
            json!({"user": "alice", "password_hash": "plain text"}),
        ),
    )
    .unwrap();
    let (ok, out) = sigil_stdin(
        &serve,
        &[
            "admin",
            "user",
            "import",
            "--tenant",
            "globex",
            "--file",
            globex_users.to_str().unwrap(),
        ],
        "",
    );
    assert!(!ok, "a plain-text password is refused: {out}");
    assert_eq!(out[0]["result"]["password_set"], true, "{out}");
    assert_eq!(out[1]["error"]["code"], "bad_request", "{out}");

    for (tenant, user, password, before) in [
        (
            "acme",
            "bob",
            "bob's argon",
            "$argon2id$v=19$m=8192,t=1,p=1$",
        ),
        ("globex", "carol", "carol's bcrypt", "$2b$05$"),
    ] {
        assert!(stored_hash(&db, tenant, user).await.starts_with(before));
        let status = authenticate(&client, tenant, user, password).await.unwrap();
        assert_eq!(status.status, "SUCCESS", "{tenant}");
        let upgraded = stored_hash(&db, tenant, user).await;
        assert!(
            upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{tenant}: {upgraded}"
        );
        assert_eq!(
            authenticate(&client, tenant, user, password)
                .await
                .unwrap()
                .status,
            "SUCCESS"
        );
        let check = python(vec![
            json!({"do": "argon2_verify", "hash": upgraded, "password": password}),
        ]);
        assert_eq!(check[0], json!(true));
    }

    // Cross-tenant: acme's password is not globex's, whatever the login.
    let (code, message) =
        refused(authenticate(&client, "globex", "alice", "correct horse battery").await);
    assert_eq!(code, ErrorCode::InvalidCredentials);
    // A wrong password and an unknown user: the same answer.
    let (code2, message2) = refused(authenticate(&client, "acme", "alice", "wrong").await);
    let (code3, message3) = refused(authenticate(&client, "acme", "nobody", "wrong").await);
    assert_eq!(
        (code2, code3),
        (ErrorCode::InvalidCredentials, ErrorCode::InvalidCredentials)
    );
    assert_eq!(
        (message.as_str(), message2.as_str()),
        (message3.as_str(), message3.as_str())
    );

    // An oversized password is a bad request, never hashed.
    let (code, _) = refused(authenticate(&client, "acme", "alice", &"x".repeat(513)).await);
    assert_eq!(code, ErrorCode::BadRequest);

    // Lockout: 3 failures in a row (the tenant's threshold), then even the
    // right password is LOCKED_OUT until an admin unlocks.
    set_tenant_settings(&db, "acme", 3).await;
    assert!(
        authenticate(&client, "acme", "alice", "correct horse battery")
            .await
            .is_ok(),
        "a success resets the count"
    );
    for _ in 0..2 {
        refused(authenticate(&client, "acme", "alice", "wrong").await);
    }
    let third = authenticate(&client, "acme", "alice", "wrong")
        .await
        .unwrap();
    assert_eq!(third.status, "LOCKED_OUT");
    let locked = authenticate(&client, "acme", "alice", "correct horse battery")
        .await
        .unwrap();
    assert_eq!(locked.status, "LOCKED_OUT");
    assert!(locked.session.is_none());
    let (ok, out) = sigil_stdin(
        &serve,
        &[
            "admin", "user", "unlock", "--tenant", "acme", "--user", "alice",
        ],
        "",
    );
    assert!(ok, "{out}");
    assert_eq!(
        authenticate(&client, "acme", "alice", "correct horse battery")
            .await
            .unwrap()
            .status,
        "SUCCESS"
    );

    // password_change: the old proves the user, the new works from then on.
    let (ok, out) = sigil_stdin(
        &serve,
        &[
            "client",
            "password-change",
            "--tenant",
            "acme",
            "--user",
            "alice",
        ],
        "correct horse battery\nstaple 2\n",
    );
    assert!(ok, "{out}");
    refused(authenticate(&client, "acme", "alice", "correct horse battery").await);
    assert_eq!(
        authenticate(&client, "acme", "alice", "staple 2")
            .await
            .unwrap()
            .status,
        "SUCCESS"
    );
    let changed: Result<CredentialChanged, _> = op(
        &client,
        AuthOp::PasswordChange {
            tenant: "acme".into(),
            user: "alice".into(),
            old: Secret("wrong".into()),
            new: Secret("x".into()),
        },
    )
    .await;
    assert_eq!(refused(changed).0, ErrorCode::InvalidCredentials);

    // The audit chain holds every sign-in event, never a secret.
    common::wait_shipped(&serve.dir);
    let rows = db
        .query("SELECT kind, detail::text FROM audit_events WHERE kind LIKE 'auth.%' OR kind LIKE 'password.%' OR kind = 'user.unlock'", &[])
        .await
        .unwrap();
    let kinds: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    for kind in [
        "auth.success",
        "auth.failure",
        "auth.lockout",
        "auth.locked",
        "user.unlock",
        "password.set",
        "password.import",
        "password.upgrade",
        "password.change",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} audited: {kinds:?}");
    }
    for row in &rows {
        let detail: String = row.get(1);
        for secret in ["correct horse", "staple", "wrong", "argon2id$", "$2b$"] {
            assert!(!detail.contains(secret), "a secret in the audit: {detail}");
        }
    }
    common::audit_verify(&serve.dir, "acme");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_cost_what_wrong_passwords_cost_and_floods_get_overloaded() {
    let dir = tempfile::tempdir().unwrap();
    let serve = start(
        dir.path(),
        "pool_threads = 1\nqueue = 2\nip_failures_burst = 3\nip_failures_per_minute = 1",
    );
    let client = std::sync::Arc::new(serve.client(None).await.unwrap());
    let db = node_database(&serve.var()).await;
    set_password(&serve, "acme", "alice", "right");
    set_tenant_settings(&db, "acme", 10_000).await;

    // Timing: median of repeated tries, alternated; a generous bound (the
    // hash dominates both; a missing dummy verification would be ~100x).
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..24 {
        for (user, times) in [("alice", &mut known), ("nobody-at-all", &mut unknown)] {
            let started = Instant::now();
            let (code, _) =
                refused(authenticate(&client, "acme", user, &format!("wrong-{i}")).await);
            times.push(started.elapsed());
            assert_eq!(code, ErrorCode::InvalidCredentials);
        }
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[12].as_secs_f64(), unknown[12].as_secs_f64());
    eprintln!(
        "{}",
        json!({"median_wrong_password_s": k, "median_unknown_user_s": u, "p90_wrong_password_s": known[21].as_secs_f64(), "p90_unknown_user_s": unknown[21].as_secs_f64()})
    );
    assert!(k > 0.002 && u > 0.002, "both hash: {k} {u}");
    assert!(
        u / k > 0.5 && u / k < 2.0,
        "median wrong password {k:.4}s, unknown user {u:.4}s"
    );

    // Per-address throttling: 3 failures from one address, then
    // rate_limited before any hashing; another address goes on.
    for _ in 0..3 {
        refused(
            client
                .authenticate("acme", "alice", "wrong", Some("198.51.100.9"))
                .await,
        );
    }
    let (code, _) = refused(
        client
            .authenticate("acme", "alice", "right", Some("198.51.100.9"))
            .await,
    );
    assert_eq!(code, ErrorCode::RateLimited);
    assert_eq!(
        client
            .authenticate("acme", "alice", "right", Some("198.51.100.10"))
            .await
            .unwrap()
            .status,
        "SUCCESS"
    );

    // A flood: 40 at once on a pool of 1 thread and 2 queued; the rest are
    // answered overloaded at once; signing goes on meanwhile.
    let session = common::session(&client, "acme", "alice").await;
    let flood: Vec<_> = (0..40)
        .map(|i| {
            let client = std::sync::Arc::clone(&client);
            tokio::spawn(async move {
                let started = Instant::now();
                let outcome = client
                    .authenticate("acme", "nobody", &format!("x{i}"), None)
                    .await;
                (
                    outcome.err().map(|e| match e {
                        CallError::Refused(w) => w.code,
                        other => panic!("{other:?}"),
                    }),
                    started.elapsed(),
                )
            })
        })
        .collect();
    let signed = client
        .id_token("acme", "alice", "app-eddsa", &session, None)
        .await;
    assert!(signed.is_ok(), "signing during the flood: {signed:?}");
    let mut overloaded = 0;
    for task in flood {
        let (code, took) = task.await.unwrap();
        match code {
            Some(ErrorCode::Overloaded) => {
                overloaded += 1;
                assert!(
                    took < Duration::from_secs(2),
                    "overloaded at once: {took:?}"
                );
            }
            Some(ErrorCode::InvalidCredentials) => {}
            other => panic!("{other:?}"),
        }
    }
    eprintln!("{}", json!({"flood": 40, "overloaded": overloaded}));
    assert!(overloaded >= 20, "{overloaded} of 40 overloaded");
}

/// Two nodes on one directory: failures on either count towards one
/// lockout (the counter is in Postgres, changed atomically), which holds
/// on both; an unlock on one ends it on both; a TOTP step accepted on one
/// is refused on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_and_replay_refusal_hold_across_nodes() {
    use common::cluster::{specs, Nodes};
    let dir = tempfile::tempdir().unwrap();
    let owned = dir.path().to_owned();
    let nodes = tokio::task::spawn_blocking(move || {
        Nodes::start(&owned, specs(2, |_, _, port| format!("127.0.0.1:{port}")))
    })
    .await
    .unwrap();
    nodes.until_serving(Duration::from_secs(60)).await;
    let (one, two) = (nodes.client(0).await, nodes.client(1).await);
    let admin = nodes.admin(1).await;
    let set: CredentialChanged = op(
        &admin,
        AuthOp::UserPasswordSet {
            tenant: "acme".into(),
            user: "alice".into(),
            password: Secret("pw".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(set.password_set, Some(true));
    assert_eq!(
        authenticate(&one, "acme", "alice", "pw")
            .await
            .unwrap()
            .status,
        "SUCCESS"
    );

    // Ten failures (the default threshold), alternating nodes.
    for i in 0..9 {
        let node = if i % 2 == 0 { &one } else { &two };
        assert_eq!(
            refused(authenticate(node, "acme", "alice", "nope").await).0,
            ErrorCode::InvalidCredentials
        );
    }
    assert_eq!(
        authenticate(&two, "acme", "alice", "nope")
            .await
            .unwrap()
            .status,
        "LOCKED_OUT"
    );
    for node in [&one, &two] {
        let locked = authenticate(node, "acme", "alice", "pw").await.unwrap();
        assert_eq!(locked.status, "LOCKED_OUT");
        assert!(
            locked.locked_until.unwrap()
                > std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs()
                    + 800
        );
    }
    let unlocked: CredentialChanged = op(
        &admin,
        AuthOp::UserUnlock {
            tenant: "acme".into(),
            user: "alice".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(unlocked.unlocked, Some(true));
    assert_eq!(
        authenticate(&one, "acme", "alice", "pw")
            .await
            .unwrap()
            .status,
        "SUCCESS"
    );

    // TOTP: enrolled and activated on node 1; a code accepted on node 2 is
    // refused on node 1 (same step), whichever state carries it.
    let enrolled: FactorEnrolled = op(
        &one,
        AuthOp::FactorEnroll {
            tenant: "acme".into(),
            user: "alice".into(),
            factor_type: "totp".into(),
        },
    )
    .await
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let codes = python(vec![
        json!({"do": "totp", "uri": enrolled.otpauth_uri, "at": now}),
        json!({"do": "totp", "uri": enrolled.otpauth_uri, "at": now + 30}),
    ]);
    let activated: CredentialChanged = op(
        &one,
        AuthOp::FactorActivate {
            tenant: "acme".into(),
            user: "alice".into(),
            otp: Secret(codes[0]["code"].as_str().unwrap().into()),
            state: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(activated.activated, Some(true));
    let state_a = authenticate(&one, "acme", "alice", "pw")
        .await
        .unwrap()
        .state
        .unwrap();
    let state_b = authenticate(&two, "acme", "alice", "pw")
        .await
        .unwrap()
        .state
        .unwrap();
    let next = codes[1]["code"].as_str().unwrap().to_owned();
    let first: AuthStatus = op(
        &two,
        AuthOp::FactorVerify {
            tenant: "acme".into(),
            state: Secret(state_a),
            otp: Secret(next.clone()),
        },
    )
    .await
    .unwrap();
    assert_eq!(first.amr, Some(vec!["pwd".to_owned(), "otp".to_owned()]));
    let replay: Result<AuthStatus, _> = op(
        &one,
        AuthOp::FactorVerify {
            tenant: "acme".into(),
            state: Secret(state_b),
            otp: Secret(next),
        },
    )
    .await;
    assert_eq!(refused(replay).0, ErrorCode::InvalidCredentials);
}
