//! `sigil serve` with `[hsm]` (a SoftHSM2 token): every new key is made in
//! the token, tokens it signs verify with PyJWT and jwcrypto against the
//! JWKS served over HTTP, the metrics show the PKCS#11 backend signing; an
//! algorithm the token cannot make stops the start unless software fallback
//! is allowed; and a node started without `[hsm]` on a directory whose keys
//! live in the token refuses to start, naming the backend it lacks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hw::{Pkcs11Backend, SoftHsmToken};
use serde_json::json;
use signer::conformance::external::assert_jwts_verify;
use signer::{KeyBackend, KeySpec};

mod common;

use common::{free_port, session, Serve, SIGIL};

/// Runs `sigil serve` expecting it to fail; returns its stderr.
fn serve_fails(dir: &Path, args: &[&str], conf: &Path) -> String {
    let mut child = Command::new(SIGIL)
        .current_dir(dir)
        .env("SOFTHSM2_CONF", conf)
        .args(["serve", "--quic-listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--http-listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .args(["--control-listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "sigil serve was expected to fail");
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return stderr;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sigil serve kept running where it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn write_config(path: &Path, token: &SoftHsmToken, software_fallback: bool) {
    let hw::PinSource::File(pin) = &token.config.pin else {
        panic!("SoftHsmToken keeps its pin in a file")
    };
    std::fs::write(
        path,
        format!(
            "[hsm]\nmodule = {:?}\ntoken_label = {:?}\npin_file = {:?}\nsessions = 2\n\
             software_fallback = {software_fallback}\n",
            token.config.module.display().to_string(),
            token.config.token_label,
            pin.display().to_string(),
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn keys_are_made_and_used_in_the_hsm() {
    let dir = tempfile::tempdir().unwrap();
    let hsm_dir = dir.path().join("hsm");
    std::fs::create_dir_all(&hsm_dir).unwrap();
    let token = SoftHsmToken::create(&hsm_dir, "sigil").unwrap();
    // SoftHSM reads SOFTHSM2_CONF once, when this process first opens it;
    // this is the binary's only test, so no other thread reads the variable.
    std::env::set_var("SOFTHSM2_CONF", &token.conf);
    let makes_eddsa = {
        let backend = Pkcs11Backend::new(hw::Hsm::open(&token.config).unwrap());
        backend.supports(KeySpec::EdDsa)
    };
    let (strict, lenient) = (
        dir.path().join("strict.toml"),
        dir.path().join("lenient.toml"),
    );
    write_config(&strict, &token, false);
    write_config(&lenient, &token, true);

    // Without software fallback, an app the token cannot sign for stops the
    // start, naming the algorithm (SoftHSM builds without Ed25519 exist).
    let config = if makes_eddsa {
        &strict
    } else {
        let stderr = serve_fails(
            dir.path(),
            &["--config", strict.to_str().unwrap()],
            &token.conf,
        );
        assert!(
            stderr.contains("cannot make EdDSA keys") && stderr.contains("software_fallback"),
            "{stderr}"
        );
        &lenient
    };

    let serve = Serve::start_with_env(
        dir.path(),
        free_port(),
        free_port(),
        &["--config", config.to_str().unwrap()],
        &[("SOFTHSM2_CONF", &token.conf)],
    );
    let client = serve.client(None).await.unwrap();
    let alice = session(&client, "acme", "alice").await;
    let issuer = format!("http://{}/t/acme", serve.endpoints.http);
    let mut cases = Vec::new();
    for app in ["app-es256", "app-rs256", "app-ps256", "app-es384"] {
        let token = client
            .id_token("acme", "alice", app, &alice, None)
            .await
            .unwrap()
            .token;
        cases.push(json!({"name": app, "token": token, "issuer": issuer, "audience": app}));
    }
    assert_jwts_verify(
        &format!(
            "http://{}/t/acme/.well-known/jwks.json",
            serve.endpoints.http
        ),
        &cases,
        "",
    );
    // Those four signatures were made by the PKCS#11 backend.
    let (status, metrics) = serve.http("/metrics");
    assert_eq!(status, 200);
    let metrics = String::from_utf8(metrics).unwrap();
    let pkcs11_count = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sigil_signing_latency_seconds_count{backend=\"pkcs11\"} "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        pkcs11_count >= 4,
        "pkcs11 signatures: {pkcs11_count}\n{metrics}"
    );
    drop(client);
    serve.stop();

    // The same directory without `[hsm]`: its keys live in the token, so the
    // node refuses to start rather than sign with anything else.
    let stderr = serve_fails(dir.path(), &[], &token.conf);
    assert!(stderr.contains("held by the `pkcs11` backend"), "{stderr}");
}
