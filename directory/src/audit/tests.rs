//! The journal's records on disk: torn tails, corruption, zeroed tails,
//! journals of JSON lines (format 1) continued in binary, and segments
//! (cut, read across, crashed mid-cut, dropped).
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Appends `n` records of tenant 1, one group commit each.
fn append(journal: &AuditJournal, n: i64) -> Vec<Appended> {
    let runtime = runtime();
    (0..n)
        .map(|i| {
            let detail = Detail::build().str("user", "alice").int("n", i).finish();
            runtime
                .block_on(journal.append(1, "issue.id_token", detail, 9))
                .unwrap()
        })
        .collect()
}

/// The sealed segments' file names in `dir`.
fn sealed_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.starts_with("j.0"))
        .collect();
    names.sort();
    names
}

/// Every record of the journal, in order, one chain from genesis.
fn assert_one_chain(path: &Path, records: usize) {
    let (entries, _) = read_journal(path).unwrap();
    assert_eq!(entries.len(), records);
    let mut prev = GENESIS.to_owned();
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry.seq, i as i64 + 1);
        assert_eq!(entry.prev_hash, prev);
        assert_eq!(entry.expected_hash(), entry.hash);
        prev = entry.hash.clone();
    }
}

const SMALL: JournalOptions = JournalOptions {
    segment_bytes: 2048,
};

#[test]
fn a_journal_cut_into_segments_reads_as_one_and_goes_on_after_a_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let journal = AuditJournal::open_with(&path, "n", SMALL).unwrap();
    append(&journal, 100);
    let cut = journal.stats().cut_latency.count();
    drop(journal);
    let sealed = sealed_files(dir.path());
    assert!(sealed.len() >= 4, "{sealed:?}");
    assert_eq!(sealed.len() as u64, cut);
    // Sealed segments hold records only, 0600, and follow one another.
    let segments = segments::Segments::of(&path).unwrap();
    for pair in segments.sealed.windows(2) {
        assert_eq!(pair[0].end(), pair[1].base);
    }
    for name in &sealed {
        let file = dir.path().join(name);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
        assert!(std::fs::metadata(&file).unwrap().len() >= 2048, "{name}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("j.base"))
            .unwrap()
            .trim(),
        segments.live_base.to_string()
    );
    assert_one_chain(&path, 100);
    // Read in small steps, the segments join without a gap.
    let (mut offset, mut read) = (0, 0);
    loop {
        let (entries, end) = read_journal_bounded(&path, offset, 7, u64::MAX).unwrap();
        read += entries.len();
        offset = end;
        if entries.is_empty() {
            break;
        }
    }
    assert_eq!(read, 100);
    // A checkpoint at a segment's boundary fits; one inside a record not.
    let boundary = segments.sealed[2].base;
    let at = |offset| Checkpoint {
        offset,
        ..Checkpoint::default()
    };
    for (offset, fits) in [(boundary, true), (boundary + 1, false)] {
        std::fs::write(
            dir.path().join("j.checkpoint"),
            serde_json::to_vec(&at(offset)).unwrap(),
        )
        .unwrap();
        assert_eq!(Checkpoint::load(&path).is_some(), fits, "{offset}");
    }
    std::fs::remove_file(dir.path().join("j.checkpoint")).unwrap();
    let journal = AuditJournal::open_with(&path, "n", SMALL).unwrap();
    assert_eq!(append(&journal, 1)[0].seq, 101);
    drop(journal);
    assert_one_chain(&path, 101);
}

#[test]
fn a_crash_anywhere_in_a_cut_leaves_a_journal_that_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let unbounded = JournalOptions { segment_bytes: 0 };
    let journal = AuditJournal::open_with(&path, "n", unbounded).unwrap();
    append(&journal, 10);
    drop(journal);
    assert!(sealed_files(dir.path()).is_empty());
    // Crashed before the first rename: only the next file exists.
    std::fs::write(dir.path().join("j.next"), vec![0; 4096]).unwrap();
    let journal = AuditJournal::open_with(&path, "n", unbounded).unwrap();
    assert!(!dir.path().join("j.next").exists());
    append(&journal, 1);
    drop(journal);
    // Crashed between the renames: sealed, no live file, base not yet
    // recorded.
    let (_, end) = read_journal(&path).unwrap();
    let live = OpenOptions::new().write(true).open(&path).unwrap();
    let next = segments::cut(&path, &live, 0, end).unwrap();
    drop((live, next));
    std::fs::rename(&path, dir.path().join("j.next")).unwrap();
    assert_eq!(sealed_files(dir.path()).len(), 1);
    let journal = AuditJournal::open_with(&path, "n", unbounded).unwrap();
    assert_eq!(append(&journal, 1)[0].seq, 12);
    drop(journal);
    assert_one_chain(&path, 12);
    // The base file lost: the last sealed segment still says it.
    let base = std::fs::read_to_string(dir.path().join("j.base")).unwrap();
    assert_eq!(base.trim(), end.to_string());
    std::fs::remove_file(dir.path().join("j.base")).unwrap();
    let journal = AuditJournal::open_with(&path, "n", unbounded).unwrap();
    assert_eq!(append(&journal, 1)[0].seq, 13);
    drop(journal);
    assert_one_chain(&path, 13);
    assert!(dir.path().join("j.base").exists());
}

#[test]
fn dropped_segments_need_the_checkpoint_and_damage_in_a_sealed_one_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let journal = AuditJournal::open_with(&path, "n", SMALL).unwrap();
    append(&journal, 60);
    drop(journal);
    let segments = segments::Segments::of(&path).unwrap();
    assert!(segments.sealed.len() >= 2);
    // A flipped byte in a sealed segment, even in its last record, is
    // corruption (a sealed segment was whole when it was sealed).
    let first = dir.path().join(&sealed_files(dir.path())[0]);
    let whole = std::fs::read(&first).unwrap();
    let mut bad = whole.clone();
    let last = bad.len() - 3;
    bad[last] ^= 1;
    std::fs::write(&first, &bad).unwrap();
    let error = read_journal(&path).unwrap_err().to_string();
    assert!(error.contains("sealed segment"), "{error}");
    std::fs::write(&first, &whole).unwrap();
    // Without a record of the live base, the last sealed segment stays.
    std::fs::remove_file(dir.path().join("j.base")).unwrap();
    let kept = segments.sealed.len() - 1;
    assert_eq!(segments::drop_sealed(&path, u64::MAX, None).unwrap(), kept);
    assert_eq!(sealed_files(dir.path()).len(), 1);
    segments::record_base(&path, segments.live_base).unwrap();
    // Archived: moved, not removed.
    let archive = dir.path().join("archive");
    assert_eq!(
        segments::drop_sealed(&path, u64::MAX, Some(&archive)).unwrap(),
        1
    );
    assert!(sealed_files(dir.path()).is_empty());
    assert_eq!(std::fs::read_dir(&archive).unwrap().count(), 1);
    // Reading from before what is left is refused, and so is a start
    // without the checkpoint that holds the dropped records' chain heads.
    let error = read_journal(&path).unwrap_err().to_string();
    assert!(error.contains("dropped"), "{error}");
    let error = AuditJournal::open_with(&path, "n", SMALL)
        .unwrap_err()
        .to_string();
    assert!(error.contains("restore"), "{error}");
}
