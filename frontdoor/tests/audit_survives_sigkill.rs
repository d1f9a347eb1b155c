//! The node is killed with SIGKILL while issuing under load; after a
//! restart, every issuance it acknowledged has its audit record in
//! Postgres, and the chain verifies. Its journal is cut into small
//! segments, so the kill may land in a cut; once shipped and signed, the
//! sealed segments are dropped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{free_port, session, Serve};

/// Small segments (64 KiB: a few hundred records each) and heads signed
/// every second.
const CONFIG: &str = "[audit]\nsegment_bytes = 65536\nhead_interval_secs = 1\n";

fn start(dir: &std::path::Path, quic: u16, http: u16) -> Serve {
    let config = dir.join("serve.toml");
    std::fs::write(&config, CONFIG).unwrap();
    Serve::start_with(dir, quic, http, &["--config", config.to_str().unwrap()])
}

/// Sealed segments of the node's journal on disk.
fn sealed_segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("var/audit"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("node-1.journal.0")
        })
        .count()
}

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
    let mut serve = tokio::task::spawn_blocking(move || start(&path, quic, http))
        .await
        .unwrap();
    let client = Arc::new(serve.client(None).await.unwrap());
    let session = session(&client, "acme", "alice").await;
    // Enough records first for a few segments, whatever the load reaches.
    let mut acknowledged = Vec::new();
    for _ in 0..1_000 {
        let issued = client
            .id_token("acme", "alice", "app-eddsa", &session, None)
            .await
            .unwrap();
        acknowledged.push(jti(&issued.token));
    }
    // Load: 64 callers issuing back to back; the kill lands in the middle.
    let acknowledged = Arc::new(std::sync::Mutex::new(acknowledged));
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
        acknowledged.len() > 1_100,
        "load ran before the kill: {}",
        acknowledged.len()
    );
    let sealed = sealed_segments(dir.path());
    assert!(sealed >= 2, "the journal was cut: {sealed} sealed segments");
    drop(client);
    drop(serve);

    // Restart: the journal is shipped from the start; then every
    // acknowledged id must be in Postgres.
    let path = dir.path().to_owned();
    let serve = tokio::task::spawn_blocking(move || start(&path, quic, http))
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
        "{} issuances acknowledged before SIGKILL, all recorded ({} records, {sealed} sealed segments)",
        acknowledged.len(),
        recorded.len()
    );
    // Shipped and signed (every second), the sealed segments go.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = common::audit_status(dir.path());
        let node = &status["nodes"][0];
        if node["sealed_segments"] == 0 || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let node = &status["nodes"][0];
    assert_eq!(node["sealed_segments"], 0, "{status}");
    assert!(
        node["dropped_bytes"].as_u64().unwrap() > 2 * 65_536,
        "{status}"
    );
    assert_eq!(sealed_segments(dir.path()), 0);
    tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
}
