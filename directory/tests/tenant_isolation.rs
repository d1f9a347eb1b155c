//! Against a real private Postgres: tenant isolation at every layer,
//! idempotent migrations, change notifications (and the reset after a lost
//! connection), the rotation lock, the audit chain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use directory::changes::{listen, Change};
use directory::{migrate, seed, testing, Directory, Owner, UserStatus};
use tokio_postgres::types::ToSql;

async fn demo_directory() -> (Owner, Directory) {
    let (_database, owner, directory) = testing::demo_directory(2)
        .await
        .expect("private postgres (apt-get install postgresql)");
    (owner, directory)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_query_sees_only_its_tenant() {
    let (_owner, directory) = demo_directory().await;
    let acme = directory.tenant_by_slug("acme").await.unwrap().unwrap();
    let globex = directory.tenant_by_slug("globex").await.unwrap().unwrap();
    // Under acme's scope: acme's rows, none of globex's.
    let scope = directory.tenant(acme.id).await.unwrap();
    assert!(scope.user("alice").await.unwrap().is_some());
    assert!(
        scope.user("carol").await.unwrap().is_none(),
        "carol is globex's"
    );
    assert!(
        scope.user("00uglobex0000").await.unwrap().is_none(),
        "not by id either"
    );
    assert!(scope.oidc_app("app-es256").await.unwrap().is_some());
    assert!(scope
        .saml_sp("https://sp-rs256.globex.example/saml")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        scope
            .set_user_status("carol", UserStatus::Deactivated)
            .await
            .unwrap(),
        None,
        "cannot touch globex's user"
    );
    let counts = scope.row_counts().await.unwrap();
    assert_eq!(counts["users"], 2);
    assert_eq!(counts["oidc_apps"], 5);
    drop(scope);
    let scope = directory.tenant(globex.id).await.unwrap();
    assert_eq!(scope.row_counts().await.unwrap()["users"], 1);
    assert_eq!(
        scope.user("carol").await.unwrap().unwrap().status,
        UserStatus::Active
    );
    // Writing another tenant's rows from a scope is refused by the policy.
    let err = scope
        .create_user(&directory::NewUser {
            user_id: "x".into(),
            login: "x".into(),
            ..Default::default()
        })
        .await;
    assert!(err.is_ok(), "its own tenant is fine");
    // A server's refusal says what the server said, once: in the message,
    // not again as a source (a printed cause chain would repeat it).
    let duplicate = scope
        .create_user(&directory::NewUser {
            user_id: "x2".into(),
            login: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let text = duplicate.to_string();
    assert!(text.contains("duplicate key"), "{text}");
    assert!(!text.contains("db error"), "{text}");
    assert!(std::error::Error::source(&duplicate).is_none(), "{text}");
    drop(scope); // rolled back

    // Raw SQL as the run-time role without the setting sees nothing at all.
    for table in directory::TENANT_TABLES {
        assert_eq!(
            directory
                .danger_raw_app_query(&format!("SELECT * FROM {table}"))
                .await
                .unwrap(),
            0,
            "{table}"
        );
    }
    // A scope for a tenant that does not exist sees nothing either.
    let nobody = directory.tenant(999_999).await.unwrap();
    assert!(nobody.row_counts().await.unwrap().values().all(|&n| n == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once() {
    let config = testing::empty_database().await.unwrap();
    let (mut client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let versions: Vec<i32> = directory::MIGRATIONS.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    assert_eq!(migrate(&mut client).await.unwrap(), versions);
    assert!(migrate(&mut client).await.unwrap().is_empty());
    assert!(migrate(&mut client).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_arrive_and_a_lost_listener_resets() {
    let (owner, directory) = demo_directory().await;
    let acme = directory.tenant_by_slug("acme").await.unwrap().unwrap();
    let mut changes = listen(directory.config().clone());
    assert_eq!(changes.recv().await, Some(Change::Reset));
    // Any tool deactivating a user in Postgres yields an event.
    let mut latencies = Vec::new();
    for round in 0..200 {
        let status = if round % 2 == 0 {
            UserStatus::Deactivated
        } else {
            UserStatus::Active
        };
        let scope = directory.tenant(acme.id).await.unwrap();
        scope.set_user_status("bob", status).await.unwrap();
        scope.commit().await.unwrap();
        let committed = Instant::now();
        loop {
            match tokio::time::timeout(Duration::from_secs(5), changes.recv())
                .await
                .unwrap()
                .unwrap()
            {
                Change::User {
                    tenant_id,
                    user_id,
                    status: s,
                } => {
                    assert_eq!(
                        (tenant_id, user_id.as_str(), s.as_deref()),
                        (acme.id, "00uacme0001", Some(status.as_str()))
                    );
                    latencies.push(committed.elapsed());
                    break;
                }
                _ => continue,
            }
        }
    }
    latencies.sort();
    eprintln!(
        "commit to notification (200 changes): p50 {:?}, p99 {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100],
        latencies[latencies.len() - 1]
    );
    eprintln!(
        "notify latency after commit: p50 {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    // Kill the listening backend: the stream says Reset, then works again.
    owner
        .danger_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'",
        )
        .await
        .unwrap();
    let reset = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if changes.recv().await == Some(Change::Reset) {
                return;
            }
        }
    })
    .await;
    assert!(reset.is_ok(), "a reset after the lost connection");
    let scope = directory.tenant(acme.id).await.unwrap();
    scope
        .set_user_status("bob", UserStatus::Suspended)
        .await
        .unwrap();
    scope.commit().await.unwrap();
    let change = tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(change, Change::User { .. }), "{change:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_of_two_nodes_gets_the_rotation_lock() {
    let database = testing::fresh_database().await.unwrap();
    let (owner, first) = database.open(1).await.unwrap();
    seed::create_demo_data(&owner, &first, 1000).await.unwrap();
    let second = Directory::connect(database.app.clone(), 1).await.unwrap();
    let acme = first.tenant_by_slug("acme").await.unwrap().unwrap();
    let a = first.tenant(acme.id).await.unwrap();
    let b = second.tenant(acme.id).await.unwrap();
    let (got_a, got_b) = (
        a.try_rotation_lock().await.unwrap(),
        b.try_rotation_lock().await.unwrap(),
    );
    assert!(got_a ^ got_b, "exactly one: {got_a} {got_b}");
    a.commit().await.unwrap();
    assert!(
        b.try_rotation_lock().await.unwrap(),
        "free once the holder committed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_chain_ships_once_and_verify_names_the_first_broken_link() {
    use directory::audit::{ship, verify_chain, AuditJournal};
    let (owner, directory) = demo_directory().await;
    let acme = directory.tenant_by_slug("acme").await.unwrap().unwrap();
    let globex = directory.tenant_by_slug("globex").await.unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.journal");
    {
        let journal = AuditJournal::open(&path, "node-1").unwrap();
        for i in 0..50u64 {
            let tenant = if i % 3 == 0 { globex.id } else { acme.id };
            let appended = journal
                .append(
                    tenant,
                    "issue.id_token",
                    serde_json::json!({"user": "alice", "n": i}),
                    1_000 + i,
                )
                .await
                .unwrap();
            assert!(appended.seq >= 1);
        }
    }
    // Reopened, the chain continues where it was.
    let journal = AuditJournal::open(&path, "node-1").unwrap();
    let next = journal
        .append(
            acme.id,
            "session.revoke",
            serde_json::json!({"session": "x"}),
            2_000,
        )
        .await
        .unwrap();
    assert_eq!(next.seq, 34, "33 acme records before it");
    drop(journal);
    let mut shipper = directory::audit::Shipper::open(&path);
    assert_eq!(shipper.ship(&directory, 7).await.unwrap(), 51);
    let offset = shipper.offset();
    assert_eq!(
        (shipper.ship(&directory, 7).await.unwrap(), shipper.offset()),
        (0, offset),
        "nothing new past the offset"
    );
    // Without the checkpoint the journal is shipped again from the start.
    std::fs::remove_file(dir.path().join("audit.journal.checkpoint")).unwrap();
    assert_eq!(
        ship(&directory, &path, 7).await.unwrap(),
        0,
        "exactly once, also when shipped again from the start"
    );
    let report = verify_chain(&directory, acme.id).await.unwrap();
    assert_eq!((report.records, report.first_break.clone()), (34, None));
    // Tamper with one record in Postgres: verify names it.
    owner
        .danger_execute(&format!(
            "UPDATE audit_events SET detail = '{{\"user\":\"mallory\",\"n\":4}}' WHERE tenant_id = {} AND seq = 4",
            acme.id
        ))
        .await
        .unwrap();
    let report = verify_chain(&directory, acme.id).await.unwrap();
    let (node, seq, _) = report.first_break.unwrap();
    assert_eq!((node.as_str(), seq), ("node-1", 4));
    assert!(verify_chain(&directory, globex.id)
        .await
        .unwrap()
        .first_break
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_journal_tail_is_dropped_not_fatal() {
    use directory::audit::{read_journal, AuditJournal};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.journal");
    {
        let journal = AuditJournal::open(&path, "n").unwrap();
        journal
            .append(1, "k", serde_json::json!({}), 1)
            .await
            .unwrap();
    }
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"tenant_id\":1,\"no")
        .unwrap();
    let journal = AuditJournal::open(&path, "n").unwrap();
    assert_eq!(
        journal
            .append(1, "k", serde_json::json!({}), 2)
            .await
            .unwrap()
            .seq,
        2
    );
    drop(journal);
    assert_eq!(read_journal(&path).unwrap().0.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_spares_restarts_the_shipped_prefix() {
    use directory::audit::{verify_chain, AuditJournal, Checkpoint, Shipper};
    let (_owner, directory) = demo_directory().await;
    let acme = directory.tenant_by_slug("acme").await.unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node-1.journal");
    let journal = AuditJournal::open(&path, "node-1").unwrap();
    for n in 0..20 {
        journal
            .append(acme.id, "issue.id_token", serde_json::json!({"n": n}), n)
            .await
            .unwrap();
    }
    let durable = journal
        .stats()
        .durable
        .load(std::sync::atomic::Ordering::Acquire);
    drop(journal);
    // Written zeros follow the records (preallocated).
    let length = std::fs::metadata(&path).unwrap().len();
    assert!(length > durable, "{length} {durable}");
    let mut shipper = Shipper::open(&path);
    assert_eq!(shipper.ship(&directory, 6).await.unwrap(), 20);
    let shipped = shipper.offset();
    assert_eq!(shipped, durable);
    let checkpoint = Checkpoint::load(&path).expect("a checkpoint after shipping");
    assert_eq!(checkpoint.offset, shipped);
    assert_eq!(checkpoint.heads[&acme.id].0, 20);

    // Damage a byte inside the shipped prefix: a start that re-read the
    // journal from the beginning would refuse it as corrupt. With the
    // checkpoint neither the journal nor the shipper reads it again (that
    // part is in Postgres, where `verify_chain` guards it).
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] = b'#';
    std::fs::write(&path, &bytes).unwrap();
    let journal = AuditJournal::open(&path, "node-1").unwrap();
    let next = journal
        .append(acme.id, "session.revoke", serde_json::json!({}), 100)
        .await
        .unwrap();
    assert_eq!(
        next.seq, 21,
        "the chain continues from the checkpoint's head"
    );
    drop(journal);
    let mut shipper = Shipper::open(&path);
    assert_eq!(
        shipper.ship(&directory, 6).await.unwrap(),
        1,
        "only the new record"
    );
    let report = verify_chain(&directory, acme.id).await.unwrap();
    assert_eq!((report.records, report.first_break), (21, None));

    // A checkpoint that does not fit the journal (past its end) is ignored:
    // the journal is read from the start, and its damage is reported.
    std::fs::write(
        dir.path().join("node-1.journal.checkpoint"),
        serde_json::to_vec(&serde_json::json!({"offset": 1u64 << 40, "heads": {}})).unwrap(),
    )
    .unwrap();
    assert!(Checkpoint::load(&path).is_none());
    let error = AuditJournal::open(&path, "node-1").unwrap_err();
    assert!(error.to_string().contains("corrupt record"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_leaves_no_trace_in_the_journal_or_the_chain() {
    use directory::audit::{read_journal, ship, verify_chain, AuditJournal};
    let (_owner, directory) = demo_directory().await;
    let acme = directory.tenant_by_slug("acme").await.unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node-1.journal");
    let journal = AuditJournal::open(&path, "node-1").unwrap();
    for n in 0..3 {
        journal
            .append(acme.id, "issue.id_token", serde_json::json!({"n": n}), n)
            .await
            .unwrap();
    }
    let before = journal
        .stats()
        .durable
        .load(std::sync::atomic::Ordering::Acquire);
    // The disk fails the next sync: the request is not answered as done,
    // and its bytes do not stay in the file (cut, zeros written ahead
    // with them).
    journal.danger_fail_syncs(1);
    let failed = journal
        .append(
            acme.id,
            "issue.id_token",
            serde_json::json!({"n": "lost"}),
            3,
        )
        .await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), before);
    let (kept, end) = read_journal(&path).unwrap();
    assert_eq!((kept.len(), end), (3, before));
    assert_eq!(
        journal
            .stats()
            .durable
            .load(std::sync::atomic::Ordering::Acquire),
        before
    );
    // The next record takes the sequence number the failed one had.
    let next = journal
        .append(acme.id, "issue.id_token", serde_json::json!({"n": 3}), 4)
        .await
        .unwrap();
    assert_eq!(next.seq, 4);
    drop(journal);
    let entries = read_journal(&path).unwrap().0;
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert!(entries.iter().all(|e| e.detail["n"] != "lost"));
    assert_eq!(ship(&directory, &path, 100).await.unwrap(), 4);
    let report = verify_chain(&directory, acme.id).await.unwrap();
    assert_eq!((report.records, report.first_break), (4, None));
}

/// SCIM's list reads run from statements each pooled connection keeps
/// prepared, and Postgres switches a statement run often enough to one
/// generic plan: that plan must still see the current scope's tenant
/// alone (the policy's `current_setting` is read at execution, not when
/// planning). Two connections, each running every shape more than the
/// five times after which Postgres may go generic, tenants alternating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_scim_statements_see_only_the_scope_tenant() {
    let (_owner, directory) = demo_directory().await;
    let acme = directory.tenant_by_slug("acme").await.unwrap().unwrap();
    let globex = directory.tenant_by_slug("globex").await.unwrap().unwrap();
    let totals = |tenant_id| {
        let directory = &directory;
        async move {
            let scope = directory.tenant(tenant_id).await.unwrap();
            scope
                .scim_users(("true", &[]), 1, 1000)
                .await
                .unwrap()
                .total
        }
    };
    let (acme_total, globex_total) = (totals(acme.id).await, totals(globex.id).await);
    assert_ne!(acme_total, globex_total, "the tenants are told apart");
    for round in 0..16 {
        for (tenant_id, own, other, total) in [
            (acme.id, "alice", "carol", acme_total),
            (globex.id, "carol", "alice", globex_total),
        ] {
            let scope = directory.tenant(tenant_id).await.unwrap();
            let by_login = "u.login_lower = $1";
            let (own_param, other_param): (&(dyn ToSql + Sync), &(dyn ToSql + Sync)) =
                (&own, &other);
            let page = scope
                .scim_users((by_login, &[own_param]), 1, 100)
                .await
                .unwrap();
            assert_eq!(page.total, 1, "round {round}: {own}");
            assert_eq!(page.rows.len(), 1);
            assert_eq!(page.rows[0].login, own);
            let page = scope
                .scim_users((by_login, &[other_param]), 1, 100)
                .await
                .unwrap();
            assert_eq!(page.total, 0, "round {round}: {other} is not this tenant's");
            assert!(page.rows.is_empty());
            let all = scope.scim_users(("true", &[]), 1, 1000).await.unwrap();
            assert_eq!(all.total, total, "round {round}");
            assert_eq!(i64::try_from(all.rows.len()).unwrap(), total.min(1000));
            // A later page (the statement with OFFSET).
            let second = scope.scim_users(("true", &[]), 2, 1).await.unwrap();
            assert_eq!(second.total, total);
            assert_eq!(second.rows.len(), usize::from(total >= 2));
            if total >= 2 {
                assert_eq!(second.rows[0], all.rows[1], "ordered by id, offset 1");
            }
            let id = &all.rows[0].user_id;
            assert!(scope.scim_user(id).await.unwrap().is_some());
            drop(scope);
            // (The pool has two connections: no scope may be held here.)
            // The same reads with the scope's BEGIN sent along with them.
            let page = directory
                .scim_users_page(tenant_id, (by_login, &[own_param]), 1, 100)
                .await
                .unwrap();
            assert_eq!((page.total, page.rows.len()), (1, 1), "round {round}");
            assert_eq!(page.rows[0].login, own);
            let page = directory
                .scim_users_page(tenant_id, (by_login, &[other_param]), 1, 100)
                .await
                .unwrap();
            assert_eq!(page.total, 0, "round {round}: {other}, one round trip");
            let pipelined = directory
                .scim_users_page(tenant_id, ("true", &[]), 1, 1000)
                .await
                .unwrap();
            assert_eq!(pipelined, all, "round {round}");
            let other_tenant = if tenant_id == acme.id {
                globex.id
            } else {
                acme.id
            };
            let scope = directory.tenant(other_tenant).await.unwrap();
            assert!(
                scope.scim_user(id).await.unwrap().is_none(),
                "round {round}: another tenant's user by id"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_from_a_json_journal_loses_nothing_and_verifies() {
    use directory::audit::{verify_chain, AuditJournal, Shipper};
    let (owner, directory) = demo_directory().await;
    let acme = directory.tenant_by_slug("acme").await.unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node-1.journal");
    // Before the upgrade: 8 records in JSON lines, 5 of them shipped.
    let (mut text, mut prev) = (String::new(), "0".repeat(64));
    for seq in 1..=8 {
        let (line, hash) =
            directory::audit::json_line_before_issue_16(acme.id, "node-1", seq, &prev);
        text.push_str(&line);
        prev = hash;
        if seq == 5 {
            std::fs::write(&path, &text).unwrap();
            assert_eq!(Shipper::open(&path).ship(&directory, 100).await.unwrap(), 5);
        }
    }
    std::fs::write(&path, &text).unwrap();
    // The upgraded node continues the same file and chain in binary.
    let journal = AuditJournal::open(&path, "node-1").unwrap();
    for n in 0..4 {
        let appended = journal
            .append(
                acme.id,
                "session.revoke",
                serde_json::json!({"caller": "web", "n": n}),
                9_000,
            )
            .await
            .unwrap();
        assert_eq!(appended.seq, 9 + n);
    }
    drop(journal);
    let mut shipper = Shipper::open(&path);
    assert_eq!(
        shipper.ship(&directory, 3).await.unwrap(),
        7,
        "3 JSON, 4 binary"
    );
    let report = verify_chain(&directory, acme.id).await.unwrap();
    assert_eq!((report.records, report.first_break), (12, None));
    // Rows name their format: the 8 of before 1, the new ones 2.
    owner
        .danger_execute(&format!(
            "DO $$ BEGIN
               IF (SELECT array_agg(format ORDER BY seq) FROM audit_events WHERE tenant_id = {})
                  IS DISTINCT FROM ARRAY[1,1,1,1,1,1,1,1,2,2,2,2]::smallint[]
               THEN RAISE EXCEPTION 'formats differ'; END IF;
             END $$",
            acme.id
        ))
        .await
        .unwrap();
    // Claiming the other format for a row breaks it; put back, it holds.
    for (format, broken) in [(1, Some(12)), (2, None)] {
        owner
            .danger_execute(&format!(
                "UPDATE audit_events SET format = {format} WHERE tenant_id = {} AND seq = 12",
                acme.id
            ))
            .await
            .unwrap();
        let report = verify_chain(&directory, acme.id).await.unwrap();
        assert_eq!(report.first_break.map(|b| b.1), broken);
    }
    // Tampering with either format's rows is caught where it is.
    for (seq, detail) in [
        (10, r#"{"caller":"web","n":9}"#),
        (3, r#"{"user":"mallory","n":3}"#),
    ] {
        owner
            .danger_execute(&format!(
                "UPDATE audit_events SET detail = '{detail}' WHERE tenant_id = {} AND seq = {seq}",
                acme.id
            ))
            .await
            .unwrap();
        let report = verify_chain(&directory, acme.id).await.unwrap();
        assert_eq!(report.first_break.unwrap().1, seq);
    }
}
