//! Tampering with the audit log in Postgres behind a running node, as an
//! operator with the database's keys could: cutting off the last records,
//! rewriting one and recomputing every later hash, deleting a tenant's
//! whole chain with its stored heads. Each is whole link by link; `sigil
//! audit verify` fails on each against the heads the node signed (kept in
//! its checkpoint and in Postgres) or against a head the operator kept
//! (`sigil audit head` / `verify --head`), which a longer log still
//! extends and a forged one does not pass for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{free_port, session, sigil, Serve};
use directory::audit::AuditEntry;
use serde_json::Value;
use sigil_proto::Operation;

fn verify(dir: &Path, tenant: &str, head: Option<&Path>) -> (bool, Value) {
    let mut args = vec!["audit", "verify", "--tenant", tenant];
    if let Some(head) = head {
        args.extend(["--head", head.to_str().unwrap()]);
    }
    let (ok, report) = sigil(dir, &args);
    assert_eq!(
        ok,
        report["ok"] == true,
        "exit status and report agree: {report}"
    );
    (ok, report)
}

fn problems(report: &Value) -> String {
    report["heads"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["problem"].as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

async fn issue(client: &sigil_proto::client::Client, tenant: &str, user: &str, n: usize) {
    let id = session(client, tenant, user).await;
    for _ in 0..n {
        client
            .call(&Operation::IdToken {
                tenant: tenant.into(),
                user: user.into(),
                app: "app-eddsa".into(),
                session: id.clone(),
                nonce: None,
                offline: false,
            })
            .await
            .unwrap();
    }
}

/// Waits until the node shipped everything and its signed head of
/// `tenant` covers every record of it in Postgres; returns the head as
/// `sigil audit head` prints it.
async fn head_covering(dir: &Path, db: &tokio_postgres::Client, tenant: &str) -> Value {
    common::wait_shipped(dir);
    let records = count(db, tenant).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, head) = sigil(dir, &["audit", "head", "--tenant", tenant]);
        if ok && head["seq"] == records {
            return head;
        }
        assert!(Instant::now() < deadline, "no head at {records}: {head}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn count(db: &tokio_postgres::Client, tenant: &str) -> i64 {
    db.query_one(
        "SELECT count(*) FROM audit_events e JOIN tenants t USING (tenant_id) WHERE t.slug = $1",
        &[&tenant],
    )
    .await
    .unwrap()
    .get(0)
}

async fn entries(db: &tokio_postgres::Client, tenant: &str) -> Vec<AuditEntry> {
    db.query(
        &format!(
            "SELECT {} FROM audit_events WHERE tenant_id = (SELECT tenant_id FROM tenants WHERE slug = $1) ORDER BY seq",
            AuditEntry::COLUMNS
        ),
        &[&tenant],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| AuditEntry::from_row(r).unwrap())
    .collect()
}

async fn put_back(db: &tokio_postgres::Client, rows: &[AuditEntry]) {
    for e in rows {
        db.execute(
            "INSERT INTO audit_events VALUES ($1, $2, $3, $4, $5, $6, decode($7, 'hex'), decode($8, 'hex'))",
            &[&e.tenant_id, &e.node, &e.seq, &e.at_ms, &e.kind, &e.detail, &e.prev_hash, &e.hash],
        )
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_rewritten_or_deleted_chains_fail_verification() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("serve.toml");
    std::fs::write(&config, "[audit]\nhead_interval_secs = 1\n").unwrap();
    let (quic, http, path) = (free_port(), free_port(), dir.path().to_owned());
    let serve = tokio::task::spawn_blocking(move || {
        Serve::start_with(&path, quic, http, &["--config", config.to_str().unwrap()])
    })
    .await
    .unwrap();
    let client = serve.client(None).await.unwrap();
    issue(&client, "acme", "alice", 80).await;
    issue(&client, "globex", "carol", 10).await;
    let db = common::node_database(&serve.var()).await;
    let here = dir.path();
    let head = head_covering(here, &db, "acme").await;
    head_covering(here, &db, "globex").await;
    let head_file = here.join("acme-head.json");
    std::fs::write(&head_file, serde_json::to_vec_pretty(&head).unwrap()).unwrap();
    let (ok, report) = verify(here, "acme", Some(&head_file));
    assert!(ok, "{report}");
    assert_eq!(report["heads"].as_array().unwrap().len(), 3, "{report}");

    // 1. The last 50 records cut off: whole link by link, short of the heads.
    let all = entries(&db, "acme").await;
    let cut = &all[all.len() - 50..];
    db.batch_execute(&format!(
        "DELETE FROM audit_events WHERE tenant_id = {} AND seq > {}",
        cut[0].tenant_id,
        cut[0].seq - 1
    ))
    .await
    .unwrap();
    let (ok, report) = verify(here, "acme", Some(&head_file));
    assert!(!ok && report["first_broken_link"].is_null(), "{report}");
    assert!(problems(&report).contains("records missing"), "{report}");
    put_back(&db, cut).await;
    assert!(verify(here, "acme", Some(&head_file)).0, "restored");

    // A longer log still extends the head kept earlier.
    issue(&client, "acme", "alice", 5).await;
    head_covering(here, &db, "acme").await;
    let (ok, report) = verify(here, "acme", Some(&head_file));
    assert!(ok, "{report}");

    // A forged head (moved forward, signature kept) is not taken for one.
    let mut forged = head.clone();
    forged["seq"] = Value::from(forged["seq"].as_i64().unwrap() - 1);
    let forged_file = here.join("forged.json");
    std::fs::write(&forged_file, serde_json::to_vec(&forged).unwrap()).unwrap();
    let (ok, report) = verify(here, "acme", Some(&forged_file));
    assert!(
        !ok && problems(&report).contains("not a genuine head"),
        "{report}"
    );

    // 2. One record rewritten, every later hash recomputed.
    let mut all = entries(&db, "acme").await;
    all[4].detail = serde_json::json!({"user": "mallory"});
    for i in 4..all.len() {
        if i > 4 {
            all[i].prev_hash = all[i - 1].hash.clone();
        }
        all[i].hash = all[i].expected_hash();
        db.execute(
            "UPDATE audit_events SET detail = $1, prev_hash = decode($2, 'hex'), hash = decode($3, 'hex') WHERE tenant_id = $4 AND node = $5 AND seq = $6",
            &[&all[i].detail, &all[i].prev_hash, &all[i].hash, &all[i].tenant_id, &all[i].node, &all[i].seq],
        )
        .await
        .unwrap();
    }
    let (ok, report) = verify(here, "acme", Some(&head_file));
    assert!(!ok && report["first_broken_link"].is_null(), "{report}");
    assert!(problems(&report).contains("rewritten"), "{report}");

    // 3. globex's whole chain gone, its stored heads too: the node's
    // checkpoint still holds what it signed.
    db.batch_execute(
        "DELETE FROM audit_events WHERE tenant_id = (SELECT tenant_id FROM tenants WHERE slug = 'globex');
         DELETE FROM audit_heads WHERE tenant_id = (SELECT tenant_id FROM tenants WHERE slug = 'globex')",
    )
    .await
    .unwrap();
    let (ok, report) = verify(here, "globex", None);
    assert!(!ok && report["records"] == 0, "{report}");
    assert!(problems(&report).contains("chain missing"), "{report}");

    drop(client);
    tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
}
