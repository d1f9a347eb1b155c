//! The journal's records on disk: torn tails, corruption, zeroed tails,
//! and journals of JSON lines (format 1) continued in binary.
#![allow(clippy::unwrap_used)]

use super::record::{put_record, Detail};
use super::*;

/// A journal's bytes: `batches` group commits of records of tenant 1,
/// each record's `batch` the offset its group began at.
fn journal_bytes(batches: &[usize]) -> (Vec<u8>, Vec<u64>) {
    let mut out = Vec::new();
    let mut starts = Vec::new();
    let mut prev = [0u8; 32];
    let mut seq = 0;
    for &records in batches {
        let batch = out.len() as u64;
        for _ in 0..records {
            starts.push(out.len() as u64);
            seq += 1;
            let detail = Detail::build().int("n", seq).finish();
            prev = put_record(
                &mut out,
                batch,
                1,
                "n",
                seq,
                1_000 + seq,
                "k",
                &detail,
                &prev,
            );
        }
    }
    (out, starts)
}

#[test]
fn damage_in_the_last_group_commit_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let (mut bytes, starts) = journal_bytes(&[2, 1, 3]);
    // The crash wrote the last group's later pages, not its first record.
    let first_of_last = starts[3] as usize;
    for b in &mut bytes[first_of_last + 30..first_of_last + 40] {
        *b = 0;
    }
    std::fs::write(&path, &bytes).unwrap();
    let (entries, good) = read_journal(&path).unwrap();
    assert_eq!((entries.len(), good), (3, starts[3]));
    // A start drops the torn group and gives its numbers again.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let journal = AuditJournal::open(&path, "n").unwrap();
    let next = runtime
        .block_on(journal.append(1, "k", Detail::build().finish(), 9))
        .unwrap();
    assert_eq!(next.seq, 4);
    drop(journal);
    let (entries, _) = read_journal(&path).unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[3].prev_hash, entries[2].hash);
}

#[test]
fn damage_before_a_later_group_commit_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let (bytes, starts) = journal_bytes(&[2, 1, 3]);
    for at in [starts[0], starts[1] + 25, starts[2] + 60] {
        let mut bad = bytes.clone();
        bad[at as usize] ^= 0x40;
        std::fs::write(&path, &bad).unwrap();
        let error = read_journal(&path).unwrap_err().to_string();
        assert!(error.contains("corrupt record"), "{at}: {error}");
        assert!(AuditJournal::open(&path, "n").is_err());
        // What the journal held is still there for an operator.
        assert_eq!(std::fs::read(&path).unwrap(), bad);
    }
    // Zeroed pages in the middle are damage too.
    let mut zeroed = bytes.clone();
    for b in &mut zeroed[starts[1] as usize..starts[2] as usize] {
        *b = 0;
    }
    std::fs::write(&path, &zeroed).unwrap();
    assert!(read_journal(&path).is_err());
}

#[test]
fn a_zeroed_tail_ends_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let (mut bytes, _) = journal_bytes(&[4, 4]);
    let end = bytes.len() as u64;
    bytes.resize(bytes.len() + (1 << 20), 0);
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(read_journal(&path).unwrap().0.len(), 8);
    assert_eq!(read_journal(&path).unwrap().1, end);
}

#[test]
fn a_journal_of_json_lines_continues_in_binary_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let mut text = String::new();
    let mut prev = GENESIS.to_owned();
    for seq in 1..=5 {
        let (line, hash) = super::json_line_before_issue_16(1, "n", seq, &prev);
        text.push_str(&line);
        prev = hash;
    }
    std::fs::write(&path, &text).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let journal = AuditJournal::open(&path, "n").unwrap();
    for n in 0..3 {
        let appended = runtime
            .block_on(journal.append(1, "k", Detail::build().int("n", n).finish(), 9))
            .unwrap();
        assert_eq!(appended.seq, 6 + n);
    }
    drop(journal);
    let (_, good) = read_journal(&path).unwrap();
    // Records, then written zeros up to a multiple of `PREALLOCATE`.
    let length = std::fs::metadata(&path).unwrap().len();
    assert!(
        length >= good + PREALLOCATE && length % PREALLOCATE == 0,
        "{length} {good}"
    );
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes[good as usize..].iter().all(|&b| b == 0));
    // Reopened, the mixed journal reads whole and its chain holds (a
    // start cuts the zeros; the next group commit writes them again).
    let journal = AuditJournal::open(&path, "n").unwrap();
    drop(journal);
    let (entries, good) = read_journal(&path).unwrap();
    let formats: Vec<i16> = entries.iter().map(|e| e.format).collect();
    assert_eq!(formats, [1, 1, 1, 1, 1, 2, 2, 2]);
    let mut prev = GENESIS.to_owned();
    for entry in &entries {
        assert_eq!(entry.prev_hash, prev);
        assert_eq!(entry.expected_hash(), entry.hash, "{entry:?}");
        prev = entry.hash.clone();
    }
    // A checkpoint at the records' end (before the zeros) fits.
    let checkpoint = Checkpoint {
        offset: good,
        ..Checkpoint::default()
    };
    std::fs::write(
        dir.path().join("j.checkpoint"),
        serde_json::to_vec(&checkpoint).unwrap(),
    )
    .unwrap();
    assert_eq!(Checkpoint::load(&path), Some(checkpoint));
    // A torn JSON line in the middle of the old part is still corruption.
    let mut bytes = std::fs::read(&path).unwrap();
    let second = text.find('\n').unwrap() + 1;
    bytes[second + 3] = b'#';
    std::fs::write(&path, &bytes).unwrap();
    assert!(read_journal(&path).is_err());
}
