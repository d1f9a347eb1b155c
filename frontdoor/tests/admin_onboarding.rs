//! Onboarding a customer with the admin commands alone, as docs/admin.md
//! walks through it, against a running node: tenant `initech`, an OIDC app
//! with mapped claims, a SAML SP from its metadata, a caller for the
//! tenant, a first token verified by PyJWT against the served JWKS,
//! suspend and resume, removal; a non-admin caller is refused every admin
//! operation; bad metadata fails clearly. And app assignments: only users
//! assigned (through a group or directly) get tokens, and the `groups`
//! claim shows only assigned groups.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{free_port, node_database, session, sigil, sigil_output, Serve};
use sigil_proto::client::CallError;
use sigil_proto::onboard::OnboardOp;
use sigil_proto::{Client, ErrorCode};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `sigil admin ...` (or any command) in the test's directory, as the
/// node's admin caller unless the arguments say otherwise.
fn admin(dir: &Path, args: &[&str]) -> (bool, serde_json::Value) {
    let mut full = vec!["admin"];
    full.extend_from_slice(args);
    sigil(dir, &full)
}

fn code(outcome: Result<impl std::fmt::Debug, CallError>) -> ErrorCode {
    match outcome {
        Err(CallError::Refused(e)) => e.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Claims of a compact JWS (not verified: for reading them).
fn claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn id_token(
    client: &Client,
    tenant: &str,
    user: &str,
    app: &str,
) -> Result<String, CallError> {
    let session = client
        .session_create(tenant, user, &["pwd"], None)
        .await?
        .session;
    client
        .id_token(tenant, user, app, &session, None)
        .await
        .map(|t| t.token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_onboards_initech_with_the_admin_commands() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), free_port(), free_port());
    let d = dir.path();

    // The tenant: its JWKS, discovery and SAML metadata served at once.
    let (ok, added) = admin(
        d,
        &[
            "tenant",
            "add",
            "--slug",
            "initech",
            "--name",
            "Initech, Inc.",
        ],
    );
    assert!(ok, "{added}");
    assert_eq!(added["result"]["slug"], "initech");
    assert_eq!(added["result"]["name"], "Initech, Inc.");
    assert_eq!(added["result"]["status"], "active");
    for path in [
        "/t/initech/.well-known/jwks.json",
        "/t/initech/.well-known/openid-configuration",
        "/t/initech/saml/metadata",
    ] {
        let (status, _) = serve.http(path);
        assert_eq!(status, 200, "{path}");
    }
    let (ok, again) = admin(
        d,
        &["tenant", "add", "--slug", "initech", "--name", "Twice"],
    );
    assert!(!ok);
    assert_eq!(again["error"]["code"], "conflict");
    let (ok, list) = admin(d, &["tenant", "list"]);
    assert!(ok);
    let slugs: Vec<&str> = list["result"]["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert!(
        slugs.contains(&"initech") && slugs.contains(&"acme"),
        "{list}"
    );

    // Peter arrives (SCIM's job; here straight into Postgres) and joins
    // `everyone` on his own.
    let db = node_database(&serve.var()).await;
    db.batch_execute(
        "INSERT INTO users (tenant_id, user_id, login, email, display_name)
         SELECT tenant_id, '00upeter', 'peter', 'peter@initech.example', 'Peter Gibbons'
           FROM tenants WHERE slug = 'initech'",
    )
    .await
    .unwrap();

    let (ok, app) = admin(
        d,
        &[
            "app",
            "add",
            "--tenant",
            "initech",
            "--name",
            "portal",
            "--alg",
            "ES256",
            "--claims",
            "email=email,name=name,groups=groups",
            "--assign",
            "everyone",
            "--redirect-uri",
            "https://portal.initech.example/callback",
        ],
    );
    assert!(ok, "{app}");
    assert_eq!(
        app["result"]["assigned_groups"],
        serde_json::json!(["everyone"])
    );
    let metadata = fixture("initech-wiki-metadata.xml");
    let (ok, sp) = admin(
        d,
        &[
            "sp",
            "add",
            "--tenant",
            "initech",
            "--name",
            "wiki",
            "--metadata",
            metadata.to_str().unwrap(),
            "--assign",
            "everyone",
            "--attributes",
            "mail=email",
        ],
    );
    assert!(ok, "{sp}");
    assert_eq!(
        sp["result"]["entity_id"],
        "https://wiki.initech.example/shibboleth"
    );
    assert_eq!(
        sp["result"]["acs_urls"],
        serde_json::json!(["https://wiki.initech.example/Shibboleth.sso/SAML2/POST"])
    );
    assert_eq!(sp["result"]["name_id_format"], "emailAddress");
    assert_eq!(sp["result"]["sign_assertion"], true);
    let (ok, apps) = admin(d, &["app", "list", "--tenant", "initech"]);
    assert!(
        ok && apps["result"]["apps"][0]["name"] == "portal",
        "{apps}"
    );
    let (ok, sps) = admin(d, &["sp", "list", "--tenant", "initech"]);
    assert!(ok && sps["result"]["sps"][0]["name"] == "wiki", "{sps}");

    // A caller for the tenant, and a first token, verified by PyJWT and
    // jwcrypto against the JWKS the node serves.
    let web = d.join("initech-web");
    let (ok, caller) = admin(
        d,
        &[
            "frontend",
            "add",
            "--name",
            "initech-web",
            "--tenants",
            "initech",
            // It signs users in by asserting them (session_create).
            "--trusted-assertions",
            "--out",
            web.to_str().unwrap(),
        ],
    );
    assert!(ok, "{caller}");
    let (ok, token) = sigil(
        d,
        &[
            "client",
            "--cert-dir",
            web.to_str().unwrap(),
            "id-token",
            "--tenant",
            "initech",
            "--user",
            "peter",
            "--app",
            "portal",
        ],
    );
    assert!(ok, "{token}");
    let token = token[1]["result"]["token"].as_str().unwrap().to_owned();
    let issuer = format!("http://{}/t/initech", serve.endpoints.http);
    let seen = claims(&token);
    assert_eq!(seen["iss"], issuer);
    assert_eq!(seen["email"], "peter@initech.example");
    assert_eq!(seen["groups"], serde_json::json!(["everyone"]));
    signer::conformance::external::assert_jwts_verify(
        &format!(
            "http://{}/t/initech/.well-known/jwks.json",
            serve.endpoints.http
        ),
        &[
            serde_json::json!({"name": "peter", "token": token, "issuer": issuer, "audience": "portal"}),
        ],
        "initech: ",
    );
    let (ok, saml) = sigil(
        d,
        &[
            "client",
            "--cert-dir",
            web.to_str().unwrap(),
            "saml",
            "--tenant",
            "initech",
            "--user",
            "peter",
            "--sp",
            "wiki",
        ],
    );
    assert!(ok, "{saml}");
    assert_eq!(
        saml[1]["result"]["acs"],
        "https://wiki.initech.example/Shibboleth.sso/SAML2/POST"
    );

    // Suspended: refused; resumed: issues again.
    let web_client = serve.client(Some(&web)).await.unwrap();
    assert!(id_token(&web_client, "initech", "peter", "portal")
        .await
        .is_ok());
    let (ok, suspended) = admin(d, &["tenant", "suspend", "--slug", "initech"]);
    assert!(
        ok && suspended["result"]["status"] == "suspended",
        "{suspended}"
    );
    assert_eq!(
        code(id_token(&web_client, "initech", "peter", "portal").await),
        ErrorCode::Forbidden
    );
    let (ok, resumed) = admin(d, &["tenant", "resume", "--slug", "initech"]);
    assert!(ok && resumed["result"]["status"] == "active", "{resumed}");
    assert!(id_token(&web_client, "initech", "peter", "portal")
        .await
        .is_ok());

    // A caller that is not an admin is refused every admin operation.
    let t = || "initech".to_owned();
    let ops = [
        OnboardOp::TenantAdd {
            tenant: "hooli".into(),
            name: "Hooli".into(),
        },
        OnboardOp::TenantList,
        OnboardOp::TenantSuspend { tenant: t() },
        OnboardOp::TenantResume { tenant: t() },
        OnboardOp::AppAdd {
            tenant: t(),
            app: "x".into(),
            alg: "ES256".into(),
            claims: Default::default(),
            assign: vec![],
            assign_users: vec![],
            redirect_uris: vec![],
            backchannel_logout_uri: None,
            refresh: None,
            jwks: None,
        },
        OnboardOp::AppSetJwks {
            tenant: t(),
            app: "portal".into(),
            jwks: None,
        },
        OnboardOp::AppList { tenant: t() },
        OnboardOp::AppRemove {
            tenant: t(),
            app: "portal".into(),
        },
        OnboardOp::SpAdd {
            tenant: t(),
            sp: "x".into(),
            alg: "RS256".into(),
            entity_id: "https://x".into(),
            acs_urls: vec!["https://x/acs".into()],
            name_id_format: "emailAddress".into(),
            sign_assertion: true,
            claims: Default::default(),
            assign: vec![],
            assign_users: vec![],
        },
        OnboardOp::SpList { tenant: t() },
        OnboardOp::SpRemove {
            tenant: t(),
            sp: "wiki".into(),
        },
        OnboardOp::FrontendList,
        OnboardOp::FrontendRemove {
            name: "demo-admin".into(),
        },
    ];
    for op in ops {
        let name = op.name();
        let refused = web_client.onboard::<serde_json::Value>(op).await;
        assert_eq!(code(refused), ErrorCode::Forbidden, "{name}");
    }
    let output = sigil_output(
        d,
        &[
            "admin",
            "tenant",
            "list",
            "--cert-dir",
            web.to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(3));

    // The app removed: its tokens are refused.
    let (ok, removed) = admin(
        d,
        &["app", "remove", "--tenant", "initech", "--name", "portal"],
    );
    assert!(ok && removed["result"]["removed"] == "portal", "{removed}");
    assert_eq!(
        code(id_token(&web_client, "initech", "peter", "portal").await),
        ErrorCode::NotFound
    );
    let (ok, removed) = admin(
        d,
        &["sp", "remove", "--tenant", "initech", "--name", "wiki"],
    );
    assert!(ok, "{removed}");

    // The caller removed: refused at once, on the connection it holds.
    let (ok, frontends) = admin(d, &["frontend", "list"]);
    assert!(ok);
    assert!(frontends["result"]["frontends"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "initech-web"));
    assert!(web_client
        .session_create("initech", "peter", &["pwd"], None)
        .await
        .is_ok());
    let (ok, gone) = admin(d, &["frontend", "remove", "--name", "initech-web"]);
    assert!(ok && gone["result"]["name"] == "initech-web", "{gone}");
    assert_eq!(
        code(
            web_client
                .session_create("initech", "peter", &["pwd"], None)
                .await
        ),
        ErrorCode::Unauthenticated
    );

    // Bad metadata: a clear error and a failing exit code.
    let bad = d.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let cases = [
        ("no-acs.xml", std::fs::read_to_string(&metadata).unwrap().replace("AssertionConsumerService", "ArtifactResolutionService"), "no AssertionConsumerService"),
        ("dtd.xml", r#"<?xml version="1.0"?><!DOCTYPE md [<!ENTITY x SYSTEM "file:///etc/passwd">]><md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="&x;"/>"#.to_owned(), "DTD"),
        ("not.xml", "entityID=https://nope".to_owned(), "not usable SAML metadata XML"),
    ];
    for (file, text, says) in cases {
        let path = bad.join(file);
        std::fs::write(&path, text).unwrap();
        let output = sigil_output(
            d,
            &[
                "admin",
                "sp",
                "add",
                "--tenant",
                "initech",
                "--name",
                "bad",
                "--metadata",
                path.to_str().unwrap(),
            ],
        );
        assert_eq!(output.status.code(), Some(1), "{file}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{file}: {stderr}");
    }

    // Every admin change is in initech's chain, naming the admin.
    let admin_changes: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_events e JOIN tenants t USING (tenant_id)
              WHERE t.slug = 'initech' AND e.kind = 'admin' AND e.detail->>'caller' = 'demo-admin'",
            &[],
        )
        .await
        .map(|r| r.get(0))
        .unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = admin_changes;
    while seen < 7 {
        assert!(Instant::now() < deadline, "admin records shipped: {seen}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        seen = db
            .query_one(
                "SELECT count(*) FROM audit_events e JOIN tenants t USING (tenant_id)
                  WHERE t.slug = 'initech' AND e.kind = 'admin' AND e.detail->>'caller' = 'demo-admin'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
    }
    common::audit_verify(d, "initech");
    web_client.close().await;
    serve.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_assigned_users_get_tokens_and_see_assigned_groups() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), free_port(), free_port());
    let d = dir.path();
    let db = node_database(&serve.var()).await;
    // acme: group `ops` with alice; erin, in no group but `everyone`.
    db.batch_execute(
        "INSERT INTO groups (tenant_id, group_id, name) SELECT tenant_id, '00gops', 'ops' FROM tenants WHERE slug = 'acme';
         INSERT INTO memberships (tenant_id, group_id, user_id)
           SELECT tenant_id, '00gops', u.user_id FROM users u JOIN tenants t USING (tenant_id)
            WHERE t.slug = 'acme' AND u.login = 'alice';
         INSERT INTO users (tenant_id, user_id, login, email, display_name)
           SELECT tenant_id, '00uerin', 'erin', 'erin@acme.example', 'Erin' FROM tenants WHERE slug = 'acme'",
    )
    .await
    .unwrap();
    let (ok, app) = admin(
        d,
        &[
            "app",
            "add",
            "--tenant",
            "acme",
            "--name",
            "ops-console",
            "--alg",
            "ES256",
            "--claims",
            "groups=groups",
            "--assign",
            "ops",
            "--assign-users",
            "bob",
        ],
    );
    assert!(ok, "{app}");
    let metadata = fixture("initech-wiki-metadata.xml");
    let (ok, sp) = admin(
        d,
        &[
            "sp",
            "add",
            "--tenant",
            "acme",
            "--name",
            "ops-wiki",
            "--alg",
            "ES256",
            "--metadata",
            metadata.to_str().unwrap(),
            "--assign",
            "ops",
            "--attributes",
            "groups=groups",
        ],
    );
    assert!(ok, "{sp}");
    let (ok, unknown) = admin(
        d,
        &[
            "app", "add", "--tenant", "acme", "--name", "x", "--alg", "ES256", "--assign", "nosuch",
        ],
    );
    assert!(!ok);
    assert_eq!(unknown["error"]["code"], "not_found");
    assert!(unknown["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no group nosuch"));

    // The demo front end (acme, globex; trusted to assert sign-ins).
    let client = serve.client(None).await.unwrap();
    // Through a group: alice; the claim lists only assigned groups (she is
    // in engineering and everyone too).
    let alice = id_token(&client, "acme", "alice", "ops-console")
        .await
        .unwrap();
    assert_eq!(claims(&alice)["groups"], serde_json::json!(["ops"]));
    // Directly: bob, in no assigned group.
    let bob = id_token(&client, "acme", "bob", "ops-console")
        .await
        .unwrap();
    assert_eq!(claims(&bob)["groups"], serde_json::json!([]));
    // Not assigned: erin, for every kind of issue.
    let erin = session(&client, "acme", "erin").await;
    assert_eq!(
        code(
            client
                .id_token("acme", "erin", "ops-console", &erin, None)
                .await
        ),
        ErrorCode::NotAssigned
    );
    assert_eq!(
        code(
            client
                .access_token("acme", "erin", "ops-console", &erin, &["openid"])
                .await
        ),
        ErrorCode::NotAssigned
    );
    assert_eq!(
        code(client.saml("acme", "erin", "ops-wiki", &erin, None).await),
        ErrorCode::NotAssigned
    );
    let alice_session = session(&client, "acme", "alice").await;
    assert!(client
        .saml("acme", "alice", "ops-wiki", &alice_session, None)
        .await
        .is_ok());
    // The demo apps are everyone's: erin gets their tokens.
    assert!(client
        .id_token("acme", "erin", "app-es256", &erin, None)
        .await
        .is_ok());

    // alice leaves ops: refused once the change notification arrives.
    db.batch_execute("DELETE FROM memberships WHERE group_id = '00gops'")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client
            .id_token("acme", "alice", "ops-console", &alice_session, None)
            .await
        {
            Err(CallError::Refused(e)) if e.code == ErrorCode::NotAssigned => break,
            Ok(_) => {}
            other => panic!("{other:?}"),
        }
        assert!(Instant::now() < deadline, "alice still got a token");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.close().await;
    serve.stop();
}
