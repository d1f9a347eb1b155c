#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use super::*;
use crate::replication::{Decreed, Revoked};
use crate::table::{Mark, SessionId, SessionPolicy};

fn record(table: &SessionTable, n: u8, now: u64) -> SessionRecord {
    table.create_with_id(
        SessionId::from_bytes([n; 32]),
        &Arc::from("acme"),
        &format!("user{n}"),
        vec!["pwd".into()],
        Some("web".into()),
        SessionPolicy::default(),
        now,
    )
}

fn mark_decree(seq: u64) -> Decree {
    Decree {
        id: DecreeId {
            incarnation: 5,
            seq,
        },
        origin: Arc::from("node-1"),
        what: Decreed::Revoke(Revoked::Mark(Mark {
            tenant: Arc::from("acme"),
            user: Some(Arc::from("user1")),
            before_ms: 1_000,
            keep_until_ms: u64::MAX,
        })),
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn what_was_synced_comes_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let table = SessionTable::new(2);
    let (store, recovered) = SessionStore::open(dir.path(), &table, 0).unwrap();
    assert_eq!(recovered.sessions, 0);
    let mut last = None;
    for n in 0..50 {
        last = Some(store.append_session(&record(&table, n, 1_000)).unwrap());
    }
    store.append_decree(&mark_decree(1)).unwrap();
    let ticket = store.append_decree(&mark_decree(2)).unwrap();
    assert!(ticket > last.unwrap());
    block_on(store.synced(ticket)).unwrap();
    drop(store);

    let again = SessionTable::new(2);
    let (_store, recovered) = SessionStore::open(dir.path(), &again, 2_000).unwrap();
    assert_eq!(recovered.sessions, 50);
    assert_eq!(recovered.decrees, vec![mark_decree(1), mark_decree(2)]);
    assert_eq!(again.len(), 50);
    assert_eq!(
        again.record(&SessionId::from_bytes([7; 32])),
        table.record(&SessionId::from_bytes([7; 32]))
    );
}

#[test]
fn a_torn_tail_is_cut_off_and_appends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let table = SessionTable::new(1);
    let (store, _) = SessionStore::open(dir.path(), &table, 0).unwrap();
    let ticket = store.append_session(&record(&table, 1, 1_000)).unwrap();
    store.wait_synced(ticket).unwrap();
    drop(store);
    // A crash mid-write: half an entry at the end of the log.
    let log = logs_in(dir.path()).unwrap().pop().unwrap();
    let mut file = OpenOptions::new()
        .append(true)
        .open(log_path(dir.path(), log))
        .unwrap();
    let mut torn = Vec::new();
    entry(KIND_SESSION, &[1, 2, 3, 4, 5, 6], &mut torn);
    file.write_all(&torn[..7]).unwrap();
    drop(file);

    let again = SessionTable::new(1);
    let (store, recovered) = SessionStore::open(dir.path(), &again, 0).unwrap();
    assert_eq!((recovered.sessions, recovered.cut), (1, 7));
    let ticket = store.append_session(&record(&again, 2, 1_000)).unwrap();
    store.wait_synced(ticket).unwrap();
    drop(store);
    let third = SessionTable::new(1);
    let (_, recovered) = SessionStore::open(dir.path(), &third, 0).unwrap();
    assert_eq!((recovered.sessions, recovered.cut), (2, 0));
}

#[test]
fn a_flipped_bit_ends_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let table = SessionTable::new(1);
    let (store, _) = SessionStore::open(dir.path(), &table, 0).unwrap();
    store.append_session(&record(&table, 1, 1_000)).unwrap();
    let ticket = store.append_session(&record(&table, 2, 1_000)).unwrap();
    store.wait_synced(ticket).unwrap();
    drop(store);
    let path = log_path(dir.path(), logs_in(dir.path()).unwrap().pop().unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let again = SessionTable::new(1);
    let (_, recovered) = SessionStore::open(dir.path(), &again, 0).unwrap();
    assert_eq!(
        recovered.sessions, 1,
        "the corrupt second entry is not taken"
    );
    assert!(recovered.cut > 0);
}

#[test]
fn a_snapshot_replaces_the_logs_it_covers() {
    let dir = tempfile::tempdir().unwrap();
    let table = SessionTable::new(2);
    let (store, _) = SessionStore::open(dir.path(), &table, 0).unwrap();
    for n in 0..100 {
        store.append_session(&record(&table, n, 1_000)).unwrap();
    }
    let cut = store.begin_snapshot().unwrap();
    // Appended after the cut: in the next log, not in the snapshot.
    let late = store.append_session(&record(&table, 200, 1_000)).unwrap();
    let (records, _) = table.snapshot();
    let stats = store
        .write_snapshot(cut, records, &[mark_decree(1)])
        .unwrap();
    assert_eq!((stats.sessions, stats.decrees), (101, 1));
    store.wait_synced(late).unwrap();
    assert_eq!(
        logs_in(dir.path()).unwrap().len(),
        1,
        "covered logs deleted"
    );
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let mode = file.unwrap().metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "files are private: {mode:o}");
    }
    drop(store);
    let again = SessionTable::new(2);
    let (_, recovered) = SessionStore::open(dir.path(), &again, 0).unwrap();
    assert_eq!(again.len(), 101);
    assert_eq!(recovered.decrees, vec![mark_decree(1)]);
}

#[test]
fn expired_sessions_are_not_restored() {
    let dir = tempfile::tempdir().unwrap();
    let table = SessionTable::new(1);
    let (store, _) = SessionStore::open(dir.path(), &table, 0).unwrap();
    let ticket = store.append_session(&record(&table, 1, 1_000)).unwrap();
    store.wait_synced(ticket).unwrap();
    drop(store);
    let later = 1_000 + SessionPolicy::default().absolute_ms;
    let again = SessionTable::new(1);
    let (_, recovered) = SessionStore::open(dir.path(), &again, later).unwrap();
    assert_eq!((recovered.sessions, again.len()), (0, 0));
}
