//! The node is killed with SIGKILL while issuing under load; after a
//! restart, every issuance it acknowledged has its audit record in
//! Postgres, and the chain verifies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{free_port, session, Serve};

fn jti(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_issuance_has_its_record_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (quic, http) = (free_port(), free_port());
    let path = dir.path().to_owned();
    let mut serve = tokio::task::spawn_blocking(move || Serve::start(&path, quic, http))
        .await
        .unwrap();
    let client = Arc::new(serve.client(None).await.unwrap());
    let session = session(&client, "acme", "alice").await;
    // Load: 64 callers issuing back to back; the kill lands in the middle.
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop_at = Instant::now() + Duration::from_millis(1_500);
    let mut callers = Vec::new();
    for _ in 0..64 {
        let (client, session, acknowledged) = (
            Arc::clone(&client),
            session.clone(),
            Arc::clone(&acknowledged),
        );
        callers.push(tokio::spawn(async move {
            while Instant::now() < stop_at + Duration::from_secs(1) {
                let answer = client
                    .id_token("acme", "alice", "app-eddsa", &session, None)
                    .await;
                match answer {
                    Ok(issued) => acknowledged.lock().unwrap().push(jti(&issued.token)),
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep_until((stop_at).into()).await;
    serve.child.kill().unwrap(); // SIGKILL
    let _ = serve.child.wait();
    // Calls in flight at the kill never get an answer: they were not
    // acknowledged, so they are not counted.
    for caller in callers {
        caller.abort();
        let _ = caller.await;
    }
    let acknowledged: Vec<String> = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 100,
        "load ran before the kill: {}",
        acknowledged.len()
    );
    drop(client);
    drop(serve);

    // Restart: the journal is shipped from the start; then every
    // acknowledged id must be in Postgres.
    let path = dir.path().to_owned();
    let serve = tokio::task::spawn_blocking(move || Serve::start(&path, quic, http))
        .await
        .unwrap();
    common::audit_verify(dir.path(), "acme");
    let db = common::node_database(&dir.path().join("var")).await;
    let rows = db
        .query(
            "SELECT detail->>'id' FROM audit_events WHERE kind = 'issue.id_token'",
            &[],
        )
        .await
        .unwrap();
    let recorded: HashSet<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !recorded.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged issuances lack a record: {:?}",
        missing.len(),
        acknowledged.len(),
        &missing[..missing.len().min(5)]
    );
    eprintln!(
        "{} issuances acknowledged before SIGKILL, all recorded ({} records)",
        acknowledged.len(),
        recorded.len()
    );
    tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
}
