//! `sigil serve --https`: the SP-facing endpoints over TLS with the node's
//! certificate, fetched by curl trusting only the deployment CA; a client
//! speaking plain HTTP to the TLS port is refused and the node goes on. And
//! (over plain HTTP) a tenant not loaded at start loads when an SP asks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{free_port, wait_for_status, Serve};

fn curl(serve: &Serve, path: &str) -> (bool, String) {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--cacert"])
        .arg(serve.var().join("ca/ca.pem"))
        .args([
            "--resolve",
            &format!("localhost:{}:127.0.0.1", serve.endpoints.http.port()),
        ])
        .arg(format!(
            "https://localhost:{}{path}",
            serve.endpoints.http.port()
        ))
        .output()
        .expect("curl runs (apt-get install curl)");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn https_serves_the_documents_and_refuses_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start_with(dir.path(), free_port(), free_port(), &["--https"]);
    let (ok, jwks) = curl(&serve, "/t/acme/.well-known/jwks.json");
    assert!(ok, "{jwks}");
    let jwks: serde_json::Value = serde_json::from_str(&jwks).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 5);
    let (ok, discovery) = curl(&serve, "/t/acme/.well-known/openid-configuration");
    assert!(ok);
    let discovery: serde_json::Value = serde_json::from_str(&discovery).unwrap();
    assert!(
        discovery["issuer"]
            .as_str()
            .unwrap()
            .starts_with("https://"),
        "{discovery}"
    );
    assert!(curl(&serve, "/t/acme/saml/metadata")
        .1
        .contains("EntityDescriptor"));
    // Plain HTTP to the TLS port: refused, and the node still serves TLS.
    let (status, _) = serve.http("/healthz");
    assert_eq!(status, 0, "no HTTP answer on the TLS port");
    assert!(curl(&serve, "/healthz").0);
    serve.stop();
}

#[test]
fn tenants_not_loaded_at_start_load_when_an_sp_asks() {
    let dir = tempfile::tempdir().unwrap();
    // 25 seeded tenants beside acme and globex: only the first 20 tenants
    // are loaded at start.
    Serve::start(dir.path(), free_port(), free_port()).stop();
    let seed = std::process::Command::new(common::SIGIL)
        .current_dir(dir.path())
        .args(["directory", "seed", "--tenants", "25", "--users", "100"])
        .output()
        .unwrap();
    assert!(
        seed.status.success(),
        "{}",
        String::from_utf8_lossy(&seed.stderr)
    );
    let serve = Serve::start(dir.path(), free_port(), free_port());
    let late = "/t/seed-25/.well-known/jwks.json";
    let (status, _) = serve.http(late);
    assert_eq!(status, 503, "the first request starts the load");
    let jwks: serde_json::Value =
        serde_json::from_slice(&wait_for_status(&serve, late, 200, Duration::from_secs(30)))
            .unwrap();
    assert!(jwks["keys"].is_array(), "{jwks}");
    assert_eq!(
        serve.http("/t/seed-25/.well-known/openid-configuration").0,
        200
    );
    // A made-up tenant: one lookup, then 404 (remembered, no more lookups).
    let made_up = "/t/no-such-tenant/.well-known/jwks.json";
    wait_for_status(&serve, made_up, 404, Duration::from_secs(30));
    assert_eq!(serve.http(made_up).0, 404);
    // Paths that are not tenant documents never reach the directory.
    assert_eq!(serve.http("/t/seed-24/secret").0, 404);
    serve.stop();
}
