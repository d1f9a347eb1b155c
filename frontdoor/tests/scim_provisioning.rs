//! SCIM 2.0 provisioning end to end on a `sigil serve` process: SCIM
//! tokens made with `sigil admin scim-token`, the endpoint driven by
//! scim2-client with every answer validated by scim2-models
//! (scripts/scim_check.py), an ID token for the SCIM-created user verified
//! by PyJWT and jwcrypto against the served JWKS and carrying the SCIM
//! attributes its app maps; the tenants × tokens × resources × methods
//! matrix; deactivation over SCIM revoking sessions and refusing tokens at
//! once; revocation of a SCIM token refused at once by the node that
//! revoked it; protocol errors as SCIM error JSON (412, 413, 400).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sigil_proto::ErrorCode;
use signer::conformance::external::{assert_jwts_verify, python};

mod common;

use common::{free_port, session, sigil, Serve};

/// One HTTP/1.1 request to the control listener: (status, headers, body).
fn http(
    serve: &Serve,
    method: &str,
    path: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Value) {
    let url = serve.endpoints.control_url.clone().unwrap();
    let address = url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before reading a large body whole.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, head.to_ascii_lowercase(), json)
}

fn scim_token(dir: &Path, tenant: &str, name: &str) -> String {
    let (ok, out) = sigil(
        dir,
        &[
            "admin",
            "scim-token",
            "add",
            "--tenant",
            tenant,
            "--name",
            name,
        ],
    );
    assert!(ok, "{out}");
    let token = out["result"]["token"].as_str().unwrap().to_owned();
    assert!(
        token.starts_with("sigil_scim_") && token.len() == 11 + 43,
        "{token}"
    );
    token
}

fn base(tenant: &str) -> String {
    format!("/t/{tenant}/scim/v2")
}

fn start() -> (tempfile::TempDir, Serve) {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), free_port(), free_port());
    (dir, serve)
}

fn new_user(serve: &Serve, tenant: &str, token: &str, name: &str) -> Value {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "emails": [{"value": format!("{name}@example.com"), "primary": true}],
    });
    let (status, _, user) = http(
        serve,
        "POST",
        &format!("{}/Users", base(tenant)),
        Some(token),
        &[],
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 201, "{user}");
    user
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_client_provisions_a_user_whose_token_carries_scim_claims() {
    let (dir, serve) = tokio::task::spawn_blocking(start).await.unwrap();
    let token = scim_token(dir.path(), "acme", "okta");
    let control = serve.endpoints.control_url.clone().unwrap();
    let output = std::process::Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/scim_check.py"
        ))
        .arg(format!("{control}{}", base("acme")))
        .arg(&token)
        .args(["--user-name", "peter"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "scim_check.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let made: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(made["userName"], "peter");

    // The app maps SCIM attributes into claims (behind Sigil's back: no
    // admin command for claim mappings on this branch).
    let db = common::node_database(&serve.var()).await;
    db.execute(
        "UPDATE oidc_apps SET claim_mapping = $1 WHERE name = 'app-es256'",
        &[&json!({"given_name": "name.givenName", "title": "title", "department": "department", "groups": "groups"})],
    )
    .await
    .unwrap();
    let client = serve.client(None).await.unwrap();
    let peter = session(&client, "acme", "peter").await;
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
    // The mapping change reaches the node through the change notification.
    let deadline = Instant::now() + Duration::from_secs(20);
    let token = loop {
        let issued = client
            .id_token("acme", "peter", "app-es256", &peter, None)
            .await
            .unwrap();
        if claims(&issued.token).get("given_name").is_some() || Instant::now() > deadline {
            break issued.token;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mapped = claims(&token);
    assert_eq!(mapped["given_name"], "Peter", "{mapped}");
    assert_eq!(mapped["title"], "Senior Engineer", "{mapped}");
    assert_eq!(mapped["department"], "TPS", "{mapped}");
    // The groups claim lists only groups the app is assigned to: Peter's
    // SCIM group `peter-group` is not one of them, `everyone` is.
    assert_eq!(mapped["groups"], json!(["everyone"]), "{mapped}");
    let issuer = format!("http://{}/t/acme", serve.endpoints.http);
    let jwks = format!(
        "http://{}/t/acme/.well-known/jwks.json",
        serve.endpoints.http
    );
    assert_jwts_verify(
        &jwks,
        &[json!({"name": "scim-user", "token": token, "issuer": issuer, "audience": "app-es256"})],
        "",
    );

    // A SCIM change is in the very next token from this node.
    let (status, _, _) = http(
        &serve,
        "PATCH",
        &format!("{}/Users/{}", base("acme"), made["id"].as_str().unwrap()),
        Some(&scim_token(dir.path(), "acme", "hr")),
        &[],
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations": [{"op": "replace", "path": "title", "value": "Manager"}]})
        .to_string()
        .as_bytes(),
    );
    assert_eq!(status, 200);
    let next = client
        .id_token("acme", "peter", "app-es256", &peter, None)
        .await
        .unwrap();
    assert_eq!(claims(&next.token)["title"], "Manager");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_tokens_reach_only_their_tenant_and_lifecycle_is_strong() {
    let (dir, serve) = tokio::task::spawn_blocking(start).await.unwrap();
    let acme = scim_token(dir.path(), "acme", "okta");
    let globex = scim_token(dir.path(), "globex", "okta");
    let revoked = scim_token(dir.path(), "acme", "old");
    let probe = new_user(&serve, "acme", &revoked, "probe");
    let (ok, out) = sigil(
        dir.path(),
        &[
            "admin",
            "scim-token",
            "revoke",
            "--tenant",
            "acme",
            "--name",
            "old",
        ],
    );
    assert!(ok, "{out}");
    let (ok, listed) = sigil(
        dir.path(),
        &["admin", "scim-token", "list", "--tenant", "acme"],
    );
    assert!(ok, "{listed}");
    let tokens = listed["result"]["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2, "{listed}");
    assert!(tokens
        .iter()
        .all(|t| t.get("token").is_none() && t.get("token_hash").is_none()));
    assert!(tokens
        .iter()
        .any(|t| t["name"] == "old" && t["revoked_at"].is_u64()));
    let globex_user = new_user(&serve, "globex", &globex, "gina");

    // The matrix: every tenant URL × every token × resources × methods.
    let ids = [
        ("acme", probe["id"].as_str().unwrap()),
        ("globex", globex_user["id"].as_str().unwrap()),
    ];
    let user =
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "intruder"})
            .to_string();
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                       "Operations": [{"op": "replace", "path": "title", "value": "x"}]})
    .to_string();
    for (tenant, id) in ids {
        let own = if tenant == "acme" { &acme } else { &globex };
        let other_id = ids.iter().find(|(t, _)| *t != tenant).unwrap().1;
        let requests: Vec<(&str, String, &str)> = vec![
            ("GET", "/Users".into(), ""),
            ("GET", format!("/Users/{id}"), ""),
            ("GET", format!("/Users/{other_id}"), ""),
            ("POST", "/Users".into(), user.as_str()),
            ("PATCH", format!("/Users/{other_id}"), patch.as_str()),
            ("PUT", format!("/Users/{other_id}"), user.as_str()),
            ("DELETE", format!("/Users/{other_id}"), ""),
            ("GET", "/Groups".into(), ""),
            ("GET", "/ServiceProviderConfig".into(), ""),
            ("GET", "/Schemas".into(), ""),
            (
                "POST",
                "/Bulk".into(),
                r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[]}"#,
            ),
        ];
        for (method, path, body) in &requests {
            let url = format!("{}{path}", base(tenant));
            for (token, allowed) in [
                (Some(own.as_str()), true),
                (Some(if tenant == "acme" { &globex } else { &acme }), false),
                (Some(revoked.as_str()), false),
                (Some("sigil_scim_not-a-token"), false),
                (None, false),
            ] {
                let (status, head, answer) =
                    http(&serve, method, &url, token, &[], body.as_bytes());
                if allowed {
                    assert_ne!(status, 401, "{method} {url}: {answer}");
                    // Another tenant's user is not found from here.
                    if path.contains(other_id) {
                        assert_eq!(status, 404, "{method} {url}: {answer}");
                    }
                } else {
                    assert_eq!(status, 401, "{method} {url} with {token:?}: {answer}");
                    assert!(head.contains("www-authenticate: bearer"), "{head}");
                    assert_eq!(answer["status"], "401");
                    assert!(answer.get("Resources").is_none() && answer.get("id").is_none());
                }
            }
        }
    }
    // An unknown tenant answers as a wrong token does.
    let (status, _, _) = http(
        &serve,
        "GET",
        &format!("{}/Users", base("nobody")),
        Some(&acme),
        &[],
        b"",
    );
    assert_eq!(status, 401);

    // /Bulk: a user and a group naming it by bulkId; failOnErrors stops.
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "failOnErrors": 1,
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "u1",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bulky"}},
            {"method": "POST", "path": "/Groups", "bulkId": "g1",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "bulk-group",
                      "members": [{"value": "bulkId:u1"}]}},
            {"method": "POST", "path": "/Users",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "BULKY"}},
            {"method": "POST", "path": "/Users",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "never"}},
        ]
    });
    let (status, _, answer) = http(
        &serve,
        "POST",
        &format!("{}/Bulk", base("acme")),
        Some(&acme),
        &[],
        bulk.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    let results = answer["Operations"].as_array().unwrap();
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["201", "201", "409"], "{answer}");
    let group_url = results[1]["location"].as_str().unwrap();
    let group_path = &group_url[group_url.find("/t/").unwrap()..];
    let (_, _, group) = http(&serve, "GET", group_path, Some(&acme), &[], b"");
    let user_url = results[0]["location"].as_str().unwrap();
    assert!(
        user_url.ends_with(group["members"][0]["value"].as_str().unwrap()),
        "{group}"
    );
    // failOnErrors stopped before "never": it was not written.
    let (_, _, never) = http(
        &serve,
        "GET",
        &format!("{}/Users?filter=userName%20eq%20%22never%22", base("acme")),
        Some(&acme),
        &[],
        b"",
    );
    assert_eq!(never["totalResults"], 0, "{never}");
    // Creations written together keep their own outcomes: an invalid one
    // and a duplicate (of an earlier one in the same request) fail alone.
    let user = |name: &str| {
        json!({"method": "POST", "path": "/Users",
        "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}})
    };
    let batch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [user("batch-a"), {"method": "POST", "path": "/Users",
            "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}},
            user("BATCH-A"), user("batch-b")],
    });
    let (status, _, answer) = http(
        &serve,
        "POST",
        &format!("{}/Bulk", base("acme")),
        Some(&acme),
        &[],
        batch.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    let statuses: Vec<&str> = answer["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["201", "400", "409", "201"], "{answer}");
    let (_, _, b) = http(
        &serve,
        "GET",
        &format!(
            "{}/Users?filter=userName%20eq%20%22batch-b%22",
            base("acme")
        ),
        Some(&acme),
        &[],
        b"",
    );
    assert_eq!(b["totalResults"], 1, "{b}");
    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({"method": "DELETE", "path": "/Users/x"}))
        .collect();
    let (status, _, _) = http(&serve, "POST", &format!("{}/Bulk", base("acme")), Some(&acme), &[],
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": too_many}).to_string().as_bytes());
    assert_eq!(status, 413);

    // Protocol errors, as SCIM error JSON.
    let users = format!("{}/Users", base("acme"));
    let (status, _, e) = http(&serve, "POST", &users, Some(&acme), &[], b"{not json");
    assert_eq!(
        (status, e["scimType"].as_str()),
        (400, Some("invalidSyntax")),
        "{e}"
    );
    let (status, _, e) = http(
        &serve,
        "GET",
        &format!("{users}?filter=userName%20eq"),
        Some(&acme),
        &[],
        b"",
    );
    assert_eq!(
        (status, e["scimType"].as_str()),
        (400, Some("invalidFilter")),
        "{e}"
    );
    let big = vec![b' '; (1 << 20) + 1];
    let (status, _, e) = http(&serve, "POST", &users, Some(&acme), &[], &big);
    assert_eq!((status, e["status"].as_str()), (413, Some("413")), "{e}");
    let with_password = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "pw", "password": ""});
    let (status, _, e) = http(
        &serve,
        "POST",
        &users,
        Some(&acme),
        &[],
        with_password.to_string().as_bytes(),
    );
    assert_eq!(
        (status, e["scimType"].as_str()),
        (400, Some("invalidValue")),
        "{e}"
    );
    let (status, _, e) = http(
        &serve,
        "POST",
        &users,
        Some(&acme),
        &[],
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "PROBE"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(
        (status, e["scimType"].as_str()),
        (409, Some("uniqueness")),
        "{e}"
    );
    let probe_url = format!("{users}/{}", probe["id"].as_str().unwrap());
    let (status, head, fetched) = http(&serve, "GET", &probe_url, Some(&acme), &[], b"");
    assert_eq!(status, 200);
    let version = fetched["meta"]["version"].as_str().unwrap().to_owned();
    assert!(
        head.contains(&format!("etag: {}", version.to_ascii_lowercase())),
        "{head}"
    );
    let (status, _, e) = http(
        &serve,
        "PATCH",
        &probe_url,
        Some(&acme),
        &[("If-Match", "W/\"999\"")],
        patch.as_bytes(),
    );
    assert_eq!(status, 412, "{e}");
    let (status, _, _) = http(
        &serve,
        "PATCH",
        &probe_url,
        Some(&acme),
        &[("If-Match", &version)],
        patch.as_bytes(),
    );
    assert_eq!(status, 200);

    // Deactivation over SCIM: sessions revoked, no token, once it answers.
    let client = serve.client(None).await.unwrap();
    let dora = new_user(&serve, "acme", &acme, "dora");
    let dora_url = format!("{users}/{}", dora["id"].as_str().unwrap());
    let s = session(&client, "acme", "dora").await;
    client
        .id_token("acme", "dora", "app-es256", &s, None)
        .await
        .unwrap();
    let off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                     "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let (status, _, answer) = http(
        &serve,
        "PATCH",
        &dora_url,
        Some(&acme),
        &[],
        off.to_string().as_bytes(),
    );
    assert_eq!(
        (status, &answer["active"]),
        (200, &json!(false)),
        "{answer}"
    );
    let refused = client.session_validate("acme", &s).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::SessionInvalid), "{refused}");
    let refused = client
        .id_token("acme", "dora", "app-es256", &s, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused.code(),
            Some(ErrorCode::SessionInvalid | ErrorCode::UserInactive)
        ),
        "{refused}"
    );
    let refused = client
        .session_create("acme", "dora", &["pwd"], None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::UserInactive), "{refused}");

    // DELETE: deactivated, sessions revoked, then gone.
    let s = session(&client, "acme", "probe").await;
    let (status, _, _) = http(&serve, "DELETE", &probe_url, Some(&acme), &[], b"");
    assert_eq!(status, 204);
    let refused = client.session_validate("acme", &s).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::SessionInvalid), "{refused}");
    let (status, _, e) = http(&serve, "GET", &probe_url, Some(&acme), &[], b"");
    assert_eq!((status, e["status"].as_str()), (404, Some("404")), "{e}");

    // Every change is in the tenant's chain, by token name, without values.
    common::audit_verify(dir.path(), "acme");
    let db = common::node_database(&serve.var()).await;
    let rows = db
        .query(
            "SELECT kind, detail::text FROM audit_events WHERE kind LIKE 'scim%' AND tenant_id = (SELECT tenant_id FROM tenants WHERE slug = 'acme')",
            &[],
        )
        .await
        .unwrap();
    let events: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    for kind in [
        "scim_token.add",
        "scim_token.revoke",
        "scim.create",
        "scim.patch",
        "scim.delete",
    ] {
        assert!(kinds.contains(&kind), "{kind} not audited: {kinds:?}");
    }
    let patched = events
        .iter()
        .find(|(k, d)| k == "scim.patch" && d.contains("active"))
        .unwrap();
    assert!(patched.1.contains("\"token\": \"okta\""), "{patched:?}");
    for (_, detail) in &events {
        assert!(
            !detail.contains(&acme) && !detail.contains("sigil_scim_"),
            "{detail}"
        );
    }
}

/// Issue 18: `password` is writeOnly and returned never (RFC 7643
/// §4.1.1). A SCIM client sets it on POST, PUT, PATCH and in `/Bulk`; it is
/// hashed with the tenant's parameters and `authenticate` checks it; no
/// answer carries it; an empty or oversized one is refused as SCIM error
/// JSON and writes nothing; it is audited as `password.set` by token name,
/// never its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_passwords_are_write_only_and_authenticate_checks_them() {
    const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
    const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
    let (dir, serve) = tokio::task::spawn_blocking(start).await.unwrap();
    let acme = scim_token(dir.path(), "acme", "okta");
    let globex = scim_token(dir.path(), "globex", "okta");
    let users = format!("{}/Users", base("acme"));
    let client = serve.client(None).await.unwrap();
    let secrets = [
        "first secret of mallory",
        "second secret of mallory",
        "third secret of mallory",
        "secret of the bulk user",
    ];
    let mut answers: Vec<Value> = Vec::new();
    let send = |method: &str, path: &str, token: &str, body: &Value| {
        http(
            &serve,
            method,
            path,
            Some(token),
            &[],
            body.to_string().as_bytes(),
        )
    };
    let signs_in = |user: &'static str, password: &'static str| {
        let client = &client;
        async move {
            match client.authenticate("acme", user, password, None).await {
                Ok(status) => {
                    assert_eq!(status.status, "SUCCESS", "{status:?}");
                    assert_eq!(status.amr, Some(vec!["pwd".to_owned()]));
                    true
                }
                Err(refused) => {
                    assert_eq!(refused.code(), Some(ErrorCode::InvalidCredentials));
                    false
                }
            }
        }
    };

    // POST with a password: `authenticate` checks it.
    let body = json!({"schemas": [USER], "userName": "mallory", "password": secrets[0]});
    let (status, _, made) = send("POST", &users, &acme, &body);
    assert_eq!(status, 201, "{made}");
    let url = format!("{users}/{}", made["id"].as_str().unwrap());
    answers.push(made);
    assert!(signs_in("mallory", secrets[0]).await);

    // PATCH replace: the old one fails, the new one works.
    let patch = json!({"schemas": [PATCH],
        "Operations": [{"op": "replace", "path": "password", "value": secrets[1]}]});
    let (status, _, patched) = send("PATCH", &url, &acme, &patch);
    assert_eq!(status, 200, "{patched}");
    answers.push(patched);
    assert!(!signs_in("mallory", secrets[0]).await);
    assert!(signs_in("mallory", secrets[1]).await);

    // PUT with one replaces it; a PUT without one (it is never returned,
    // so a client cannot send it back) leaves it.
    let put = json!({"schemas": [USER], "userName": "mallory", "password": secrets[2]});
    let (status, _, replaced) = send("PUT", &url, &acme, &put);
    assert_eq!(status, 200, "{replaced}");
    answers.push(replaced);
    assert!(!signs_in("mallory", secrets[1]).await);
    let put = json!({"schemas": [USER], "userName": "mallory", "displayName": "Mallory"});
    let (status, _, replaced) = send("PUT", &url, &acme, &put);
    assert_eq!(status, 200, "{replaced}");
    assert!(signs_in("mallory", secrets[2]).await);

    // Another tenant's token reaches none of it: refused at acme's
    // endpoint, and the id is no user at its own.
    let (status, _, e) = send("PATCH", &url, &globex, &patch);
    assert_eq!(status, 401, "{e}");
    let elsewhere = url.replace(&base("acme"), &base("globex"));
    let (status, _, e) = send("PATCH", &elsewhere, &globex, &patch);
    assert_eq!(status, 404, "{e}");
    assert!(signs_in("mallory", secrets[2]).await);

    // `/Bulk`: a creation with a password among plain ones.
    let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
    "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"schemas": [USER], "userName": "bulk-plain"}},
        {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"schemas": [USER], "userName": "bulk-pw", "password": secrets[3]}},
        {"method": "POST", "path": "/Users", "bulkId": "c", "data": {"schemas": [USER], "userName": "bulk-plain-2"}},
    ]});
    let (status, _, done) = send("POST", &format!("{}/Bulk", base("acme")), &acme, &bulk);
    assert_eq!(status, 200, "{done}");
    let statuses: Vec<&str> = done["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["201", "201", "201"], "{done}");
    answers.push(done);
    assert!(signs_in("bulk-pw", secrets[3]).await);
    assert!(!signs_in("bulk-plain", secrets[3]).await);

    // Refused as SCIM errors, and nothing written: empty, oversized, not a
    // string (a new user, and over an existing one).
    for (name, password) in [
        ("empty", json!("")),
        ("long", json!("x".repeat(513))),
        ("number", json!(12345)),
    ] {
        let body = json!({"schemas": [USER], "userName": name, "password": password});
        let (status, _, e) = send("POST", &users, &acme, &body);
        assert_eq!(
            (status, e["scimType"].as_str()),
            (400, Some("invalidValue")),
            "{name}: {e}"
        );
        assert!(!e.to_string().contains("xxxxxxxx"), "{e}");
        let patch = json!({"schemas": [PATCH],
            "Operations": [{"op": "replace", "path": "password", "value": password}]});
        let (status, _, e) = send("PATCH", &url, &acme, &patch);
        assert_eq!(status, 400, "{name}: {e}");
    }
    let (status, _, found) = http(
        &serve,
        "GET",
        &format!("{users}?filter=userName%20eq%20%22long%22"),
        Some(&acme),
        &[],
        b"",
    );
    assert_eq!(
        (status, &found["totalResults"]),
        (200, &json!(0)),
        "{found}"
    );
    assert!(signs_in("mallory", secrets[2]).await);

    // Never answered: not by the writes above, a GET, a list, nor when
    // asked for by name.
    for path in [
        url.clone(),
        format!("{url}?attributes=password,userName"),
        format!("{users}?filter=userName%20eq%20%22mallory%22"),
        format!("{users}?attributes=password"),
    ] {
        let (status, _, read) = http(&serve, "GET", &path, Some(&acme), &[], b"");
        assert_eq!(status, 200, "{path}: {read}");
        answers.push(read);
    }
    for answer in &answers {
        let text = answer.to_string();
        assert!(!text.contains("\"password\""), "{text}");
        assert!(secrets.iter().all(|s| !text.contains(s)), "{text}");
    }
    // Discovery says so.
    let (status, _, schema) = http(
        &serve,
        "GET",
        &format!("{}/Schemas/{USER}", base("acme")),
        Some(&acme),
        &[],
        b"",
    );
    assert_eq!(status, 200, "{schema}");
    let password = schema["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "password")
        .unwrap();
    assert_eq!(
        (&password["mutability"], &password["returned"]),
        (&json!("writeOnly"), &json!("never"))
    );
    let (_, _, config) = http(
        &serve,
        "GET",
        &format!("{}/ServiceProviderConfig", base("acme")),
        Some(&acme),
        &[],
        b"",
    );
    assert_eq!(config["changePassword"]["supported"], true, "{config}");

    // Audited as `password.set` (four: POST, PATCH, PUT, bulk), by the
    // token's name, never with a value.
    common::audit_verify(dir.path(), "acme");
    let db = common::node_database(&serve.var()).await;
    let rows = db
        .query(
            "SELECT kind, detail::text FROM audit_events WHERE tenant_id = (SELECT tenant_id FROM tenants WHERE slug = 'acme')",
            &[],
        )
        .await
        .unwrap();
    let set: Vec<String> = rows
        .iter()
        .filter(|r| r.get::<_, String>(0) == "password.set")
        .map(|r| r.get(1))
        .collect();
    assert_eq!(set.len(), 4, "{set:?}");
    assert!(
        set.iter().all(|d| d.contains("\"caller\": \"okta\"")),
        "{set:?}"
    );
    for row in &rows {
        let detail: String = row.get(1);
        assert!(secrets.iter().all(|s| !detail.contains(s)), "{detail}");
    }
}
