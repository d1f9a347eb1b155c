//! The node's Postgres is stopped and started again under it (`pg_ctl
//! stop -m fast`, then start): the node keeps issuing, the journal grows,
//! the shipping lag shows in /metrics, `sigil audit status` and /readyz;
//! callers the directory cannot look up are answered `unavailable`, never
//! `unauthenticated`, and nothing wrong is remembered; once Postgres is
//! back every connection reopens, shipping catches up, the same QUIC
//! connection is served, and the node stops gracefully. Also: a session
//! id starting with `-` works on the command line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, session, Serve, SIGIL};
use frontdoor::pki::DeploymentCa;
use sigil_proto::client::Client;
use sigil_proto::{ErrorCode, Operation};

fn metric(serve: &Serve, name: &str) -> f64 {
    let (status, body) = serve.http("/metrics");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

fn id_token(session: &str) -> Operation {
    Operation::IdToken {
        tenant: "acme".into(),
        user: "alice".into(),
        app: "app-eddsa".into(),
        session: session.into(),
        nonce: None,
        offline: false,
    }
}

fn rotate() -> Operation {
    Operation::KeysRotate {
        tenant: "acme".into(),
        alg: Some("EdDSA".into()),
    }
}

/// Waits for `check` to hold (20 s at most).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn issued_rows(var: &std::path::Path) -> i64 {
    common::node_database(var)
        .await
        .query_one(
            "SELECT count(*) FROM audit_events WHERE kind = 'issue.id_token'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Postgres stopped under the node: it issues on, callers it cannot look
/// up are answered `unavailable`, the lag shows everywhere. Returns the
/// two connections opened meanwhile (the admin's, a stranger's).
async fn outage(
    serve: &Serve,
    client: &Client,
    alice: &str,
    dir: &std::path::Path,
) -> (Client, Client) {
    let var = serve.var();
    directory::PrivateCluster::start(&var.join("postgres"))
        .unwrap()
        .stop()
        .unwrap();
    for _ in 0..20 {
        client.call(&id_token(alice)).await.unwrap();
    }
    // Callers it cannot look up are not told they are unknown.
    let admin = serve
        .client(Some(&var.join("credentials/admin")))
        .await
        .unwrap();
    let stranger = serve.client(Some(&dir.join("stranger"))).await.unwrap();
    for caller in [&admin, &stranger] {
        let refused = caller.call(&rotate()).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::Unavailable), "{refused}");
    }
    assert!(metric(serve, "sigil_audit_unshipped_records") >= 20.0);
    eventually("the lag past the readiness bound", || {
        metric(serve, "sigil_audit_ship_lag_seconds") > 2.0
    })
    .await;
    eventually("/readyz failing", || serve.http("/readyz").0 == 503).await;
    assert_eq!(serve.http("/healthz").0, 200, "alive, not ready");
    let status = common::audit_status(dir);
    assert!(
        status["unshipped_records"].as_u64().unwrap() >= 20,
        "{status}"
    );
    assert!(
        status["ship_lag_seconds"].as_f64().unwrap() > 2.0,
        "{status}"
    );
    (admin, stranger)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_the_node_loses_nothing_and_lies_about_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        "[audit]\nmax_ship_lag_secs = 2\nhead_interval_secs = 1\n",
    )
    .unwrap();
    let (quic, http, path) = (free_port(), free_port(), dir.path().to_owned());
    let serve = tokio::task::spawn_blocking(move || {
        Serve::start_with(&path, quic, http, &["--config", config.to_str().unwrap()])
    })
    .await
    .unwrap();
    let var = serve.var();
    let client = serve.client(None).await.unwrap();
    let alice = session(&client, "acme", "alice").await;
    for _ in 0..3 {
        client.call(&id_token(&alice)).await.unwrap();
    }
    common::wait_shipped(dir.path());
    assert_eq!(issued_rows(&var).await, 3);

    // A caller certificate of the deployment that nobody registered.
    let ca = DeploymentCa::create_or_load(&var.join("ca")).unwrap();
    ca.issue_client("stranger")
        .unwrap()
        .write(&dir.path().join("stranger"), Some(ca.certificate_pem()))
        .unwrap();

    let (admin, stranger) = outage(&serve, &client, &alice, dir.path()).await;

    // Postgres is back: everything reconnects and catches up.
    directory::PrivateCluster::start(&var.join("postgres")).unwrap();
    eventually("shipping caught up", || {
        metric(&serve, "sigil_audit_unshipped_records") == 0.0
    })
    .await;
    assert_eq!(metric(&serve, "sigil_audit_ship_lag_seconds"), 0.0);
    eventually("/readyz back", || serve.http("/readyz").0 == 200).await;
    assert_eq!(issued_rows(&var).await, 23);
    // The same connections, asked again: the truth, not a remembered error.
    let deadline = Instant::now() + Duration::from_secs(20);
    let rotated = loop {
        match admin.call(&rotate()).await {
            Err(e) if e.code() == Some(ErrorCode::Unavailable) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => break other,
        }
    };
    assert!(rotated.is_ok(), "{rotated:?}");
    let refused = stranger.call(&rotate()).await.unwrap_err();
    assert_eq!(
        refused.code(),
        Some(ErrorCode::Unauthenticated),
        "{refused}"
    );

    hyphenated_session_on_the_command_line(&serve, &client).await;
    let report = common::audit_verify(dir.path(), "acme");
    assert_eq!(report["ok"], true, "{report}");
    drop((client, admin, stranger));
    tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
}

/// base64url ids start with `-` one time in 64: make sessions until one
/// does, then use it with `sigil client ... --session ID`.
async fn hyphenated_session_on_the_command_line(serve: &Serve, client: &Client) {
    let id = loop {
        let id = session(client, "acme", "alice").await;
        if id.starts_with('-') {
            break id;
        }
    };
    let output = Command::new(SIGIL)
        .current_dir(&serve.dir)
        .args(["client", "id-token", "--tenant", "acme", "--user", "alice"])
        .args(["--app", "app-eddsa", "--session", &id])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("\"token\""),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
