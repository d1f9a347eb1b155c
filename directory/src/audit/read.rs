//! Reading the journal: its segments in order, from a logical offset,
//! dropping a torn tail and refusing corruption.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::segments::{sealed_path, Place, Segments};
use super::{record, AuditEntry};
use crate::Error;

/// Reads a journal, dropping a torn tail (a write the crash cut short: it
/// was never synced, so never acknowledged). Returns the entries and the
/// length of the good prefix.
///
/// # Errors
/// [`Error::Journal`] when the file cannot be read, or a record in the
/// middle is corrupt (that is tampering or disk failure, not a crash).
pub fn read_journal(path: &Path) -> Result<(Vec<AuditEntry>, u64), Error> {
    read_journal_bounded(path, 0, usize::MAX, u64::MAX)
}

/// Like [`read_journal`], from logical byte `offset` (the end of what was
/// read before), at most `max` entries (so a long journal is read in
/// bounded memory), and no record that ends past byte `limit` (what the
/// writer has synced: later bytes may yet be undone). Returns the entries
/// and the offset after the last whole one. Reads on across segments
/// (see [`super::segments`]).
///
/// A damaged record ends the journal (a torn tail) unless a record of a
/// later group commit follows it: each binary record names the byte its
/// group commit began at, and a group is written only after the one
/// before it is synced, so damage before a later group is corruption.
/// A damaged JSON line (format 1) followed by anything is corruption, and
/// so is any damage in a sealed segment (it was whole when sealed).
///
/// # Errors
/// As [`read_journal`], and when `offset` lies in a segment already
/// dropped.
pub fn read_journal_bounded(
    path: &Path,
    offset: u64,
    max: usize,
    limit: u64,
) -> Result<(Vec<AuditEntry>, u64), Error> {
    let io = |e: std::io::Error| Error::Journal(format!("{}: {e}", path.display()));
    let mut entries = Vec::new();
    let mut at = offset;
    // A cut between listing the segments and opening the live one is seen
    // and the segments listed again; three cuts in that time is a writer
    // cutting after every few bytes.
    let mut moved = 0;
    while entries.len() < max && at < limit {
        let segments = Segments::of(path)?;
        match segments.locate(at) {
            Place::Dropped { first } => {
                return Err(Error::Journal(format!(
                    "{}: byte {at} was in a segment dropped after it was shipped and signed (the journal now starts at byte {first})",
                    path.display()
                )));
            }
            Place::Sealed(segment) => {
                let sealed = sealed_path(path, segment.base);
                let file = File::open(&sealed).map_err(|e| {
                    Error::Journal(format!(
                        "{}: {e} (dropped while reading?)",
                        sealed.display()
                    ))
                })?;
                let end = read_segment(&sealed, file, segment.base, at, max, limit, &mut entries)?;
                if end < segment.end() && entries.len() < max && end < limit {
                    return Err(corrupt(&sealed, end, "damaged record in a sealed segment"));
                }
                at = end;
                if end < segment.end() {
                    break;
                }
            }
            Place::Live { base } => {
                let file = match File::open(path) {
                    Ok(file) => file,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) => return Err(io(e)),
                };
                if sealed_path(path, base).exists() {
                    // Cut meanwhile: this may be the next segment.
                    moved += 1;
                    if moved > 3 {
                        return Err(Error::Journal(format!(
                            "{}: cut three times while being read",
                            path.display()
                        )));
                    }
                    continue;
                }
                at = read_segment(path, file, base, at, max, limit, &mut entries)?;
                break;
            }
        }
    }
    Ok((entries, at))
}

/// Reads records from the segment `file` (named `path`, starting at
/// logical byte `base`) from logical byte `offset` into `entries` (up to
/// `max` in all, none ending past `limit`). Returns the logical offset
/// after the last whole record.
fn read_segment(
    path: &Path,
    file: File,
    base: u64,
    offset: u64,
    max: usize,
    limit: u64,
    entries: &mut Vec<AuditEntry>,
) -> Result<u64, Error> {
    let io = |e: std::io::Error| Error::Journal(format!("{}: {e}", path.display()));
    let mut reader = BufReader::with_capacity(1 << 16, file);
    reader.seek(SeekFrom::Start(offset - base)).map_err(io)?;
    let mut good = offset;
    let mut line = Vec::new();
    let mut header = [0u8; record::HEADER];
    let mut body = Vec::new();
    while entries.len() < max {
        let Some(&first) = reader.fill_buf().map_err(io)?.first() else {
            break;
        };
        if first == b'{' {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(io)?;
            if good + n as u64 > limit || line.last() != Some(&b'\n') {
                break; // not yet synced, or a torn tail
            }
            match serde_json::from_slice::<AuditEntry>(&line) {
                Ok(entry) => entries.push(entry),
                Err(e) => {
                    if reader.fill_buf().map_err(io)?.is_empty() {
                        break; // torn tail that happened to end in a newline
                    }
                    return Err(corrupt(path, good, &e.to_string()));
                }
            }
            good += n as u64;
            continue;
        }
        if good + record::HEADER as u64 > limit {
            break;
        }
        let whole = if first == record::MAGIC[0] && reader.read_exact(&mut header).is_ok() {
            match record::body_len(&header) {
                Some(len) if good + (record::HEADER + len) as u64 > limit => break,
                Some(len) => {
                    body.resize(len, 0);
                    match reader.read_exact(&mut body) {
                        Ok(()) => record::parse(&header, &body),
                        Err(_) => None,
                    }
                }
                None => None,
            }
        } else {
            None
        };
        match whole {
            Some(parsed) => {
                entries.push(parsed.entry);
                good += (record::HEADER + body.len()) as u64;
            }
            None => {
                if later_group_after(path, reader.get_ref(), base, good)? {
                    return Err(corrupt(path, good, "damaged, and later records follow"));
                }
                break; // a torn tail (or the zeroed rest)
            }
        }
    }
    Ok(good)
}

fn corrupt(path: &Path, at: u64, why: &str) -> Error {
    Error::Journal(format!(
        "{}: corrupt record at byte {at}: {why}",
        path.display()
    ))
}

/// Whether a whole binary record of a group commit that began after
/// logical byte `at` lies past it in the segment `file` (named `path`,
/// based at `base`).
fn later_group_after(path: &Path, file: &File, base: u64, at: u64) -> Result<bool, Error> {
    use std::os::unix::fs::FileExt;
    let io = |e: std::io::Error| Error::Journal(format!("{}: {e}", path.display()));
    let from = at - base;
    let size = file.metadata().map_err(io)?.len().saturating_sub(from);
    let mut rest = vec![0; usize::try_from(size).map_err(|e| Error::Journal(e.to_string()))?];
    file.read_exact_at(&mut rest, from).map_err(io)?;
    let mut i = 1;
    while let Some(found) = rest
        .get(i..)
        .and_then(|tail| tail.windows(4).position(|w| w == record::MAGIC))
    {
        let start = i + found;
        let tail = &rest[start..];
        if let Some(len) = record::body_len(tail) {
            if let Some(body) = tail.get(record::HEADER..record::HEADER + len) {
                if let Some(parsed) = record::parse(&tail[..record::HEADER], body) {
                    if parsed.batch > at {
                        return Ok(true);
                    }
                }
            }
        }
        i = start + 1;
    }
    Ok(false)
}
