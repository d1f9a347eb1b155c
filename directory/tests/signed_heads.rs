//! The audit chain in Postgres against the heads its node signed: cutting
//! off the last records, deleting a tenant's whole chain, or rewriting a
//! record and recomputing every later hash all verify as whole link by
//! link, and all fail against the signed heads. A chain that grew past a
//! head still extends it. Journal segments are dropped only once shipped
//! and covered by a signed head in Postgres, and the chains go on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use directory::audit::{
    read_journal, verify_against_heads, verify_chain, AuditEntry, AuditJournal, HeadSigner,
    HeadSource, HeadVerifier, JournalOptions, Shipper, SignedHead,
};
use directory::{testing, Directory, Owner};

struct TestKey(Ed25519KeyPair);

impl HeadSigner for TestKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, directory::Error> {
        Ok(self.0.sign(message).as_ref().to_vec())
    }
    fn certificate_der(&self) -> &[u8] {
        // Stands in for a certificate: the public key itself.
        self.0.public_key().as_ref()
    }
}

/// Trusts heads signed by one key.
struct TrustOne(Vec<u8>);

impl HeadVerifier for TrustOne {
    fn verify(&self, head: &SignedHead) -> Result<(), String> {
        if head.certificate_der().as_deref() != Some(self.0.as_slice()) {
            return Err("unknown signer".into());
        }
        let signature = head.signature_bytes().ok_or("signature not hex")?;
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&head.message(), &signature)
            .map_err(|_| "bad signature".to_owned())
    }
}

fn new_key() -> TestKey {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    TestKey(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
}

struct Setup {
    database: testing::TestDatabase,
    owner: Owner,
    directory: Directory,
    acme: i64,
    globex: i64,
    shipper: Shipper,
    journal: AuditJournal,
    key: TestKey,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let (database, owner, directory) = testing::demo_directory(2).await.unwrap();
    let acme = directory.tenant_by_slug("acme").await.unwrap().unwrap().id;
    let globex = directory
        .tenant_by_slug("globex")
        .await
        .unwrap()
        .unwrap()
        .id;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node-1.journal");
    let journal = AuditJournal::open(&path, "node-1").unwrap();
    for n in 0..120u64 {
        let tenant = if n % 4 == 0 { globex } else { acme };
        append(&journal, tenant, n, 1).await;
    }
    let mut shipper = Shipper::open(&path).bounded_by(&journal);
    assert_eq!(shipper.ship(&directory, 50).await.unwrap(), 120);
    let key = new_key();
    assert_eq!(shipper.sign_heads(&key, "node-1", 5_000).unwrap(), 2);
    assert_eq!(shipper.publish_heads(&directory).await.unwrap(), 2);
    Setup {
        database,
        owner,
        directory,
        acme,
        globex,
        shipper,
        journal,
        key,
        _dir: dir,
    }
}

/// The checkpoint's head of `tenant`.
fn local(shipper: &Shipper, tenant: i64) -> Vec<(HeadSource, SignedHead)> {
    shipper
        .signed_heads()
        .values()
        .filter(|h| h.tenant_id == tenant)
        .map(|h| (HeadSource::Checkpoint("node-1".into()), h.clone()))
        .collect()
}

async fn problems(setup: &Setup, tenant: i64) -> Vec<String> {
    let verifier = TrustOne(setup.key.0.public_key().as_ref().to_vec());
    let report = verify_against_heads(
        &setup.directory,
        tenant,
        &local(&setup.shipper, tenant),
        &verifier,
    )
    .await
    .unwrap();
    assert_eq!(
        report.heads.len(),
        2,
        "the stored head and the checkpoint's"
    );
    report.heads.into_iter().filter_map(|h| h.problem).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_is_caught_by_the_signed_heads() {
    let setup = setup().await;
    assert!(problems(&setup, setup.acme).await.is_empty());
    // The last 50 records of acme cut off: the rest is a whole chain...
    setup
        .owner
        .danger_execute(&format!(
            "DELETE FROM audit_events WHERE tenant_id = {0} AND seq > (SELECT max(seq) - 50 FROM audit_events WHERE tenant_id = {0})",
            setup.acme
        ))
        .await
        .unwrap();
    let chain = verify_chain(&setup.directory, setup.acme).await.unwrap();
    assert_eq!((chain.records, chain.first_break), (40, None));
    // ...that ends before what the node signed.
    let found = problems(&setup, setup.acme).await;
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("records missing"), "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_chain_is_caught_even_without_its_stored_head() {
    let setup = setup().await;
    setup
        .owner
        .danger_execute(&format!(
            "DELETE FROM audit_events WHERE tenant_id = {0}; DELETE FROM audit_heads WHERE tenant_id = {0}",
            setup.globex
        ))
        .await
        .unwrap();
    let chain = verify_chain(&setup.directory, setup.globex).await.unwrap();
    assert_eq!((chain.records, chain.first_break), (0, None));
    let verifier = TrustOne(setup.key.0.public_key().as_ref().to_vec());
    let report = verify_against_heads(
        &setup.directory,
        setup.globex,
        &local(&setup.shipper, setup.globex),
        &verifier,
    )
    .await
    .unwrap();
    assert!(!report.whole());
    let problem = report.heads[0].problem.clone().unwrap();
    assert!(problem.contains("chain missing"), "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_with_every_later_hash_recomputed_is_caught() {
    let mut setup = setup().await;
    // Rewrite acme's record 10 and re-chain everything after it, as the
    // owner of the private cluster (a superuser: row-level security does
    // not apply to it).
    let (client, connection) = setup
        .database
        .owner
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM audit_events WHERE tenant_id = $1 ORDER BY seq",
                AuditEntry::COLUMNS
            ),
            &[&setup.acme],
        )
        .await
        .unwrap();
    let mut entries: Vec<AuditEntry> = rows
        .iter()
        .map(|r| AuditEntry::from_row(r).unwrap())
        .collect();
    entries[9].detail = serde_json::json!({"n": "forged"});
    for i in 9..entries.len() {
        if i > 9 {
            entries[i].prev_hash = entries[i - 1].hash.clone();
        }
        entries[i].hash = entries[i].expected_hash();
    }
    let mut sql = String::from("BEGIN;");
    for e in &entries[9..] {
        sql.push_str(&format!(
            "UPDATE audit_events SET detail = '{}', prev_hash = decode('{}', 'hex'), hash = decode('{}', 'hex') WHERE tenant_id = {} AND seq = {};",
            e.detail, e.prev_hash, e.hash, e.tenant_id, e.seq
        ));
    }
    sql.push_str("COMMIT;");
    setup.owner.danger_execute(&sql).await.unwrap();
    let chain = verify_chain(&setup.directory, setup.acme).await.unwrap();
    assert_eq!(chain.first_break, None, "link by link it holds");
    let found = problems(&setup, setup.acme).await;
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("rewritten"), "{found:?}");

    // globex is untouched, and a chain that grew past its head extends it.
    for n in 0..5u64 {
        setup
            .journal
            .append(
                setup.globex,
                "session.revoke",
                serde_json::json!({"n": n}),
                9_000 + n,
            )
            .await
            .unwrap();
    }
    setup.shipper.ship(&setup.directory, 50).await.unwrap();
    assert!(problems(&setup, setup.globex).await.is_empty());
}

/// Appends `n` records of `tenant`, numbered from `from`, one group commit
/// each.
async fn append(journal: &AuditJournal, tenant: i64, from: u64, n: u64) {
    for i in from..from + n {
        journal
            .append(
                tenant,
                "issue.id_token",
                serde_json::json!({"n": i}),
                1_000 + i,
            )
            .await
            .unwrap();
    }
}

fn sealed_segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("node-1.journal.0")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_go_once_shipped_and_signed_and_the_chains_go_on() {
    let (_database, _owner, directory) = testing::demo_directory(2).await.unwrap();
    let acme = directory.tenant_by_slug("acme").await.unwrap().unwrap().id;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node-1.journal");
    let options = JournalOptions {
        segment_bytes: 4096,
    };
    let key = new_key();
    let journal = AuditJournal::open_with(&path, "node-1", options).unwrap();
    append(&journal, acme, 0, 200).await;
    let sealed = sealed_segments(dir.path());
    assert!(sealed >= 3, "{sealed}");
    let mut shipper = Shipper::open(&path).bounded_by(&journal);
    assert_eq!(shipper.ship(&directory, 64).await.unwrap(), 200);
    assert_eq!(
        shipper.drop_shipped_segments(None).unwrap(),
        0,
        "not signed"
    );
    assert_eq!(shipper.sign_heads(&key, "node-1", 5_000).unwrap(), 1);
    assert_eq!(
        shipper.drop_shipped_segments(None).unwrap(),
        0,
        "signed, not yet in Postgres"
    );
    assert_eq!(shipper.publish_heads(&directory).await.unwrap(), 1);
    assert_eq!(shipper.drop_shipped_segments(None).unwrap(), sealed);
    assert_eq!(sealed_segments(dir.path()), 0);
    let error = read_journal(&path).unwrap_err().to_string();
    assert!(error.contains("dropped"), "{error}");

    // A restart continues the chain from the checkpoint; what is shipped
    // but not yet signed stays.
    drop((shipper, journal));
    let journal = AuditJournal::open_with(&path, "node-1", options).unwrap();
    append(&journal, acme, 200, 100).await;
    let mut shipper = Shipper::open(&path).bounded_by(&journal);
    assert_eq!(shipper.ship(&directory, 64).await.unwrap(), 100);
    let sealed = sealed_segments(dir.path());
    assert!(sealed >= 2, "{sealed}");
    assert_eq!(shipper.drop_shipped_segments(None).unwrap(), 0);
    shipper.sign_heads(&key, "node-1", 6_000).unwrap();
    shipper.publish_heads(&directory).await.unwrap();
    let archive = dir.path().join("archive");
    assert_eq!(
        shipper.drop_shipped_segments(Some(&archive)).unwrap(),
        sealed
    );
    assert_eq!(std::fs::read_dir(&archive).unwrap().count(), sealed);

    // Every record arrived once, in one chain that reaches the head.
    let chain = verify_chain(&directory, acme).await.unwrap();
    assert_eq!((chain.records, chain.first_break), (300, None));
    let verifier = TrustOne(key.0.public_key().as_ref().to_vec());
    let report = verify_against_heads(&directory, acme, &local(&shipper, acme), &verifier)
        .await
        .unwrap();
    assert!(report.whole(), "{report:?}");

    // Without the checkpoint, the dropped records' chain heads are
    // unknown: the journal refuses to start rather than begin again at 1.
    drop((shipper, journal));
    std::fs::remove_file(dir.path().join("node-1.journal.checkpoint")).unwrap();
    let error = AuditJournal::open_with(&path, "node-1", options)
        .unwrap_err()
        .to_string();
    assert!(error.contains("restore"), "{error}");
}
