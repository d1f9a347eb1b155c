//! `sigil serve --https`: the SP-facing endpoints over TLS with the node's
//! certificate, fetched by curl trusting only the deployment CA; a client
//! speaking plain HTTP to the TLS port is refused and the node goes on.
//! (Tenants not loaded when an SP asks: tenants_load_on_first_fetch.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{free_port, Serve};

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
