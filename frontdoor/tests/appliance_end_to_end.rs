//! `sigil serve` as a process in an empty directory, on loopback: every
//! operation through the Rust client, tokens verified by PyJWT and jwcrypto
//! against the JWKS it serves over HTTP, SAML Responses by xmlsec1 and
//! pysaml2 against the metadata it serves; the cross-tenant matrix; callers
//! without a certificate, with an unregistered one, with one from another
//! CA; a Python client (aioquic) written from docs/protocol.md; bad frames;
//! deactivation; restart with ./var reused and old tokens still verifying.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use frontdoor::pki::DeploymentCa;
use serde_json::{json, Value};
use sigil_proto::client::CallError;
use sigil_proto::{ErrorCode, Operation};
use signer::conformance::external::{assert_jwts_verify, run_script, xmlsec1_verifies};

mod common;

use common::{free_port, session, Serve, SIGIL};

fn metadata_certificate(metadata: &str) -> Vec<u8> {
    use base64::Engine;
    let start = metadata.find("<ds:X509Certificate>").unwrap() + "<ds:X509Certificate>".len();
    let end = start + metadata[start..].find("</ds:X509Certificate>").unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(metadata[start..end].trim())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_appliance_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let (quic_port, http_port) = (free_port(), free_port());
    let serve = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || Serve::start(&dir, quic_port, http_port)
    })
    .await
    .unwrap();

    // --- HTTP documents.
    let (status, jwks) = serve.http("/t/acme/.well-known/jwks.json");
    assert_eq!(status, 200);
    let jwks: Value = serde_json::from_slice(&jwks).unwrap();
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        5,
        "one key per algorithm of acme's apps"
    );
    let (status, discovery) = serve.http("/t/acme/.well-known/openid-configuration");
    assert_eq!(status, 200);
    let discovery: Value = serde_json::from_slice(&discovery).unwrap();
    let issuer = discovery["issuer"].as_str().unwrap().to_owned();
    assert_eq!(issuer, format!("http://{}/t/acme", serve.endpoints.http));
    let (status, metadata) = serve.http("/t/acme/saml/metadata");
    assert_eq!(status, 200);
    let metadata = String::from_utf8(metadata).unwrap();
    // A tenant the directory lacks: 404 on the first fetch (the lookup is
    // waited for).
    assert_eq!(serve.http("/t/nobody/.well-known/jwks.json").0, 404);

    // --- Every operation, through the Rust client.
    let client = serve.client(None).await.unwrap();
    let health = client.health().await.unwrap();
    assert_eq!((health.status.as_str(), health.ready), ("ok", true));
    let alice = session(&client, "acme", "alice").await;
    let valid = client.session_validate("acme", &alice).await.unwrap();
    assert_eq!(valid.user, "alice");
    let touched = client.session_touch("acme", &alice).await.unwrap();
    assert!(touched.idle_expires_at >= valid.idle_expires_at);
    let mut cases = Vec::new();
    for app in [
        "app-rs256",
        "app-ps256",
        "app-es256",
        "app-es384",
        "app-eddsa",
    ] {
        let id = client
            .id_token("acme", "alice", app, &alice, Some("n-0S6"))
            .await
            .unwrap();
        cases.push(json!({"name": format!("id-{app}"), "token": id.token, "issuer": issuer, "audience": app}));
        let access = client
            .access_token("acme", "alice", app, &alice, &["openid", "profile"])
            .await
            .unwrap();
        cases.push(json!({"name": format!("access-{app}"), "token": access.token, "issuer": issuer, "audience": app}));
    }
    // The `scope` claim of an access token: the request's scopes joined by
    // single spaces, "" for none (docs/protocol.md, "Operations"); a scope
    // holding a space would smuggle a second one and is refused.
    let claims = |token: &str| -> Value {
        use base64::Engine;
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    let granted = claims(cases.last().unwrap()["token"].as_str().unwrap());
    assert_eq!(granted["scope"], "openid profile", "{granted}");
    assert_eq!(granted["client_id"], "app-eddsa", "{granted}");
    assert!(granted.get("sid").is_none(), "{granted}");
    let access = |scope: &'static [&'static str]| {
        client.access_token("acme", "alice", "app-eddsa", &alice, scope)
    };
    let none = access(&[]).await.unwrap();
    assert_eq!(claims(&none.token)["scope"], "");
    let smuggled = access(&["openid", "profile admin"]).await.unwrap_err();
    assert_eq!(smuggled.code(), Some(ErrorCode::BadRequest), "{smuggled}");
    // PyJWT and jwcrypto fetch the JWKS over HTTP, as an SP does.
    let jwks_url = format!(
        "http://{}/t/acme/.well-known/jwks.json",
        serve.endpoints.http
    );
    assert_jwts_verify(&jwks_url, &cases, "");
    // SAML: xmlsec1 with the certificate from the served metadata, pysaml2 with the metadata.
    let mut saml_cases = Vec::new();
    for sp in ["sp-rs256", "sp-es256"] {
        let answer = client
            .saml("acme", "alice", sp, &alice, Some("id-req-1"))
            .await
            .unwrap();
        use base64::Engine;
        let xml = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(&answer.response)
                .unwrap(),
        )
        .unwrap();
        let kid = &answer.kid;
        let certificate = metadata
            .split("<md:KeyDescriptor")
            .skip(1)
            .map(metadata_certificate)
            .find(|der| xmlsec1_verifies(der, &xml, "Assertion"))
            .unwrap_or_else(|| {
                panic!("{sp}: no certificate in the metadata verifies the assertion (kid {kid})")
            });
        assert!(xmlsec1_verifies(&certificate, &xml, "Response"), "{sp}");
        saml_cases.push(json!({"name": sp, "xml": xml, "sp_entity_id": format!("https://{sp}.acme.example/saml"),
            "acs": answer.acs.unwrap_or_default(), "outstanding": "id-req-1", "want_response_signed": true}));
    }
    let results = run_script(
        "saml_sp_check.py",
        &json!({"metadata": metadata, "cases": saml_cases}),
    );
    for sp in ["sp-rs256", "sp-es256"] {
        assert_eq!(results[sp]["ok"], true, "{sp}: {}", results[sp]);
    }

    // --- Metrics an operator pages on.
    let (status, metrics) = serve.http("/metrics");
    assert_eq!(status, 200);
    let metrics = String::from_utf8(metrics).unwrap();
    for line in [
        "sigil_issued_total{tenant=\"acme\",kind=\"id_token\"} 5",
        "sigil_issued_total{tenant=\"acme\",kind=\"access_token\"} 6",
        "sigil_issued_total{tenant=\"acme\",kind=\"saml\"} 2",
        "sigil_signing_latency_seconds_count{backend=\"software\"} 13",
        "sigil_issue_latency_seconds_count{tenant=\"acme\"} 13",
        "sigil_audit_backlog ",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "sigil_in_flight ",
    ] {
        assert!(
            metrics.contains(line),
            "/metrics lacks {line:?}:\n{metrics}"
        );
    }

    // --- Cross-tenant matrix: a front end for acme asks for globex.
    let acme_only = dir.path().join("web-acme");
    let status = Command::new(SIGIL)
        .current_dir(dir.path())
        .args([
            "admin",
            "frontend",
            "add",
            "--name",
            "web-acme",
            "--tenants",
            "acme",
            "--out",
        ])
        .arg(&acme_only)
        .status()
        .unwrap();
    assert!(status.success());
    let acme_client = serve.client(Some(&acme_only)).await.unwrap();
    let carol = session(&client, "globex", "carol").await;
    let globex = |tenant: &str| {
        let (t, u, s) = (tenant.to_owned(), "carol".to_owned(), carol.clone());
        vec![
            Operation::IdToken {
                tenant: t.clone(),
                user: u.clone(),
                app: "app-es256".into(),
                session: s.clone(),
                nonce: None,
                offline: false,
            },
            Operation::AccessToken {
                tenant: t.clone(),
                user: u.clone(),
                app: "app-es256".into(),
                session: s.clone(),
                scope: vec![],
                offline: false,
            },
            Operation::Saml {
                tenant: t.clone(),
                user: u.clone(),
                sp: "sp-rs256".into(),
                session: s.clone(),
                in_response_to: None,
            },
            Operation::SessionCreate {
                tenant: t.clone(),
                user: u.clone(),
                amr: vec![],
                client: None,
            },
            Operation::SessionValidate {
                tenant: t.clone(),
                session: s.clone(),
            },
            Operation::SessionTouch {
                tenant: t.clone(),
                session: s.clone(),
            },
            Operation::SessionRevoke {
                tenant: t.clone(),
                session: s.clone(),
            },
            Operation::UserRevokeSessions {
                tenant: t.clone(),
                user: u.clone(),
            },
            Operation::UserDeactivate {
                tenant: t.clone(),
                user: u.clone(),
            },
            Operation::KeysRotate {
                tenant: t.clone(),
                alg: None,
            },
            Operation::KeysRevoke {
                tenant: t,
                kid: "x".repeat(43),
            },
        ]
    };
    for operation in globex("globex") {
        let refused = acme_client.call(&operation).await.unwrap_err();
        assert_eq!(
            refused.code(),
            Some(ErrorCode::Forbidden),
            "{}",
            operation.name()
        );
    }
    // A session of globex presented under acme is not found there.
    let cross = acme_client
        .call(&Operation::SessionValidate {
            tenant: "acme".into(),
            session: carol.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(cross.code(), Some(ErrorCode::SessionInvalid));
    // Admin operations need the admin certificate.
    let not_admin = client
        .call(&Operation::KeysRotate {
            tenant: "acme".into(),
            alg: None,
        })
        .await
        .unwrap_err();
    assert_eq!(not_admin.code(), Some(ErrorCode::Forbidden));
    // globex is untouched: carol's session still valid.
    client
        .call(&Operation::SessionValidate {
            tenant: "globex".into(),
            session: carol.clone(),
        })
        .await
        .unwrap();

    // --- Callers without, or with unknown, certificates.
    let anonymous = serve
        .client(Some(&dir.path().join("nonexistent")))
        .await
        .unwrap();
    for operation in globex("acme") {
        assert_eq!(
            anonymous.call(&operation).await.unwrap_err().code(),
            Some(ErrorCode::Unauthenticated),
            "{}",
            operation.name()
        );
    }
    assert!(
        anonymous.call(&Operation::Health).await.is_ok(),
        "health needs no certificate"
    );
    let ca = DeploymentCa::create_or_load(&serve.var().join("ca")).unwrap();
    let stranger_dir = dir.path().join("stranger");
    ca.issue_client("stranger")
        .unwrap()
        .write(&stranger_dir, Some(ca.certificate_pem()))
        .unwrap();
    let stranger = serve.client(Some(&stranger_dir)).await.unwrap();
    assert_eq!(
        stranger.call(&globex("acme")[0]).await.unwrap_err().code(),
        Some(ErrorCode::Unauthenticated)
    );
    assert!(
        stranger.call(&Operation::Health).await.is_ok(),
        "health is open to an unregistered certificate too"
    );
    let other_ca = DeploymentCa::create_or_load(&dir.path().join("other-ca")).unwrap();
    let forged_dir = dir.path().join("forged");
    other_ca
        .issue_client("web-acme")
        .unwrap()
        .write(&forged_dir, Some(other_ca.certificate_pem()))
        .unwrap();
    let forged = serve.client(Some(&forged_dir)).await;
    match forged {
        Err(_) => {}
        // TLS 1.3: the client may finish before the server rejects its certificate.
        Ok(client) => assert!(
            client.call(&Operation::Health).await.is_err(),
            "a certificate from another CA is refused"
        ),
    }

    // --- A client in Python (aioquic + cbor2) written from docs/protocol.md.
    let python_session = session(&client, "acme", "alice").await;
    // After the requests, raw frames: a body whose id can be read but
    // whose `op` is no text (answered by id, the stream goes on), a request
    // with the reserved id 0 (closes the stream), and one the node never
    // reads after that.
    let raw_frame = |message: ciborium::Value| {
        let mut frame = bytes::BytesMut::new();
        sigil_proto::write_frame(&sigil_proto::to_cbor(&message).unwrap(), &mut frame).unwrap();
        frame.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let request = |id: u64, op: ciborium::Value| {
        ciborium::Value::Map(vec![("id".into(), id.into()), ("op".into(), op)])
    };
    let python = run_script(
        "sigil_quic_client.py",
        &json!({
            "target": serve.endpoints.quic.to_string(),
            "server_name": "localhost",
            "ca": serve.var().join("ca/ca.pem"),
            "cert": serve.var().join("credentials/frontend/cert.pem"),
            "key": serve.var().join("credentials/frontend/key.pem"),
            "requests": [
                {"op": "health"},
                {"op": "id_token", "tenant": "acme", "user": "alice", "app": "app-eddsa", "session": python_session},
                {"op": "id_token", "tenant": "globex", "user": "carol", "app": "app-eddsa"},
                {"op": "no_such_op", "tenant": "acme"},
            ],
            "raw_frames_hex": [
                raw_frame(request(100, 5.into())),
                raw_frame(request(0, "health".into())),
                raw_frame(request(101, "health".into())),
            ],
        }),
    );
    let answers = python["answers"].as_array().unwrap();
    assert_eq!(answers[0]["result"]["status"], "ok");
    let token = answers[1]["result"]["token"]
        .as_str()
        .expect("the Python client got a token");
    assert_eq!(
        answers[2]["error"]["code"], "bad_request",
        "missing session"
    );
    assert_eq!(answers[3]["error"]["code"], "bad_request");
    let raw = python["raw_answers"].as_array().unwrap();
    assert_eq!(raw.len(), 1, "only the body with id 100 answered: {raw:?}");
    assert_eq!(
        (&raw[0]["id"], &raw[0]["error"]["code"]),
        (&json!(100), &json!("bad_request")),
        "an unreadable request with a readable id is answered by id"
    );
    assert_eq!(
        python["closed"]["error"]["code"], "bad_request",
        "id 0 closes the stream: {python}"
    );
    assert_eq!(python["after_close"], json!([]), "nothing after id 0");
    assert_jwts_verify(
        &format!(
            "http://{}/t/acme/.well-known/jwks.json",
            serve.endpoints.http
        ),
        &[json!({"name": "py", "token": token, "issuer": issuer, "audience": "app-eddsa"})],
        "",
    );
    // The node survived all that.
    assert!(client.call(&Operation::Health).await.is_ok());

    // --- Revocation and deactivation.
    client
        .call(&Operation::SessionRevoke {
            tenant: "acme".into(),
            session: alice.clone(),
        })
        .await
        .unwrap();
    let revoked = client
        .call(&Operation::IdToken {
            tenant: "acme".into(),
            user: "alice".into(),
            app: "app-es256".into(),
            session: alice.clone(),
            nonce: None,
            offline: false,
        })
        .await
        .unwrap_err();
    assert_eq!(revoked.code(), Some(ErrorCode::SessionInvalid));
    let bob = session(&client, "acme", "bob").await;
    client
        .call(&Operation::UserDeactivate {
            tenant: "acme".into(),
            user: "bob".into(),
        })
        .await
        .unwrap();
    let after = client
        .call(&Operation::IdToken {
            tenant: "acme".into(),
            user: "bob".into(),
            app: "app-es256".into(),
            session: bob,
            nonce: None,
            offline: false,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            after.code(),
            Some(ErrorCode::SessionInvalid | ErrorCode::UserInactive)
        ),
        "{after}"
    );
    // Someone else's session id for bob: refused.
    let wrong_user = client
        .call(&Operation::IdToken {
            tenant: "acme".into(),
            user: "alice".into(),
            app: "app-es256".into(),
            session: python_session.clone(),
            nonce: None,
            offline: false,
        })
        .await;
    assert!(wrong_user.is_ok(), "alice's own live session works");

    // --- A user deactivated in Postgres by another tool loses her sessions.
    let carol_session = session(&client, "globex", "carol").await;
    let db = common::node_database(&serve.var()).await;
    db.batch_execute("UPDATE users SET status = 'deactivated' WHERE login = 'carol'")
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let answer = client
            .call(&Operation::SessionValidate {
                tenant: "globex".into(),
                session: carol_session.clone(),
            })
            .await;
        if answer.as_ref().err().and_then(CallError::code) == Some(ErrorCode::SessionInvalid) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "carol's session survived her deactivation in Postgres: {answer:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let refused = client
        .call(&Operation::SessionCreate {
            tenant: "globex".into(),
            user: "carol".into(),
            amr: vec![],
            client: None,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::UserInactive));

    // --- Restart: ./var reused, old tokens still verify.
    let kids_before: Vec<Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    drop((client, acme_client, anonymous, stranger));
    let dir_path = dir.path().to_owned();
    tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
    let serve = tokio::task::spawn_blocking(move || Serve::start(&dir_path, quic_port, http_port))
        .await
        .unwrap();
    let (_, jwks_after) = serve.http("/t/acme/.well-known/jwks.json");
    let jwks_after: Value = serde_json::from_slice(&jwks_after).unwrap();
    for kid in &kids_before {
        assert!(
            jwks_after["keys"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kid"] == *kid),
            "key {kid} kept across restart"
        );
    }
    assert_jwts_verify(
        &format!(
            "http://{}/t/acme/.well-known/jwks.json",
            serve.endpoints.http
        ),
        &cases,
        "after restart: ",
    );
    // The audit chain of acme is whole, and names a tampered link.
    let report = common::audit_verify(dir.path(), "acme");
    assert!(report["records"].as_u64().unwrap() > 20, "{report}");
    // Refused callers were audited: the cross-tenant requests under the
    // tenant they asked for, the certificate-less ones too.
    common::audit_verify(dir.path(), "globex");
    let db = common::node_database(&serve.var()).await;
    let refused = |code: &'static str| {
        let db = &db;
        async move {
            let row = db
                .query_one("SELECT count(*) FROM audit_events WHERE kind = 'refused' AND detail->>'code' = $1", &[&code])
                .await
                .unwrap();
            row.get::<_, i64>(0)
        }
    };
    assert!(
        refused("forbidden").await >= 11,
        "every cross-tenant request is audited"
    );
    assert!(
        refused("unauthenticated").await >= 11,
        "every unauthenticated request is audited"
    );
    tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
}
