//! Journal segments: the journal is cut into files at a size, so that what
//! is shipped and covered by a signed head can be dropped or archived
//! instead of growing until an operator archives it by hand.
//!
//! Offsets are logical: bytes since the journal's first record, across
//! files (a record's group offset, the checkpoint's offset and
//! [`super::JournalStats::durable`] are all logical). The live segment is
//! the journal's own path; a sealed one is `{journal}.{base:020}`, named
//! for the offset of its first byte and cut to its records' exact length.
//! `{journal}.base` records the live segment's base (absent: 0, a journal
//! never cut), written after each cut is durable; a start takes the larger
//! of it and the end of the last sealed segment, so a crash anywhere in a
//! cut leaves a journal that reads.
//!
//! A cut ([`cut`]): prepare `{journal}.next` (zeros ahead, synced), cut
//! the live file to its records, rename it to its sealed name, rename the
//! next file to the journal's path, sync the directory, record the new
//! base. A crash before the first rename leaves only `.next` (zeros: a
//! start removes it); between the renames, no live file (a start makes a
//! new one, empty, at the sealed segment's end).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{write_zeros, PREALLOCATE};
use crate::Error;

/// One sealed segment: its first byte's logical offset and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sealed {
    pub base: u64,
    pub len: u64,
}

impl Sealed {
    pub fn end(&self) -> u64 {
        self.base + self.len
    }
}

/// Where a journal's bytes are: its sealed segments, in order, and the
/// live segment's base.
#[derive(Debug, Clone, Default)]
pub(crate) struct Segments {
    pub sealed: Vec<Sealed>,
    pub live_base: u64,
}

/// Where a logical offset lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// Before the first segment kept: shipped, signed and dropped.
    Dropped { first: u64 },
    /// In this sealed segment.
    Sealed(Sealed),
    /// In the live segment (the journal's path), whose base this is.
    Live { base: u64 },
}

impl Segments {
    /// The segments of `journal` as they are on disk now.
    ///
    /// # Errors
    /// [`Error::Journal`] when the directory cannot be read, the base file
    /// is malformed, or a segment between two kept ones is missing.
    pub fn of(journal: &Path) -> Result<Segments, Error> {
        let sealed = sealed(journal)?;
        for pair in sealed.windows(2) {
            if pair[0].end() != pair[1].base {
                return Err(missing(journal, pair[0].end(), pair[1].base));
            }
        }
        let recorded = recorded_base(journal)?;
        let last_end = sealed.last().map_or(0, Sealed::end);
        if !sealed.is_empty() && recorded > last_end {
            return Err(missing(journal, last_end, recorded));
        }
        Ok(Segments {
            live_base: recorded.max(last_end),
            sealed,
        })
    }

    /// The first offset still on disk (0 unless segments were dropped).
    pub fn first(&self) -> u64 {
        self.sealed.first().map_or(self.live_base, |s| s.base)
    }

    /// Where `offset` lies. The end of a sealed segment is the start of
    /// the next one.
    pub fn locate(&self, offset: u64) -> Place {
        if offset < self.first() {
            return Place::Dropped {
                first: self.first(),
            };
        }
        match self.sealed.iter().find(|s| offset < s.end()) {
            Some(segment) if offset < self.live_base => Place::Sealed(*segment),
            _ => Place::Live {
                base: self.live_base,
            },
        }
    }
}

/// What a journal keeps on disk, for `sigil audit status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSummary {
    /// Sealed segments kept (not yet shipped and signed, or not yet
    /// dropped).
    pub sealed: usize,
    /// Bytes they hold.
    pub sealed_bytes: u64,
    /// The first logical offset still on disk: bytes before it were
    /// shipped, signed and dropped.
    pub first_offset: u64,
    /// Where the live segment (the journal's own path) begins.
    pub live_base: u64,
}

/// The segments of `journal` as they are on disk now.
///
/// # Errors
/// [`Error::Journal`] when they cannot be listed or one is missing.
pub fn summary(journal: &Path) -> Result<SegmentSummary, Error> {
    let segments = Segments::of(journal)?;
    Ok(SegmentSummary {
        sealed: segments.sealed.len(),
        sealed_bytes: segments.sealed.iter().map(|s| s.len).sum(),
        first_offset: segments.first(),
        live_base: segments.live_base,
    })
}

fn missing(journal: &Path, from: u64, to: u64) -> Error {
    Error::Journal(format!(
        "{}: the segment holding bytes {from}..{to} is missing (segments are dropped only oldest first)",
        journal.display()
    ))
}

fn with_suffix(journal: &Path, suffix: &str) -> PathBuf {
    let mut name = journal.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A sealed segment's file.
pub(crate) fn sealed_path(journal: &Path, base: u64) -> PathBuf {
    with_suffix(journal, &format!(".{base:020}"))
}

fn base_path(journal: &Path) -> PathBuf {
    with_suffix(journal, ".base")
}

fn next_path(journal: &Path) -> PathBuf {
    with_suffix(journal, ".next")
}

fn directory_of(journal: &Path) -> &Path {
    match journal.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Journal(format!("{}: {e}", path.display()))
}

/// The sealed segments of `journal`, by base.
fn sealed(journal: &Path) -> Result<Vec<Sealed>, Error> {
    let directory = directory_of(journal);
    let Some(prefix) = journal.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let entries = match std::fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(directory)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error(directory))?;
        let name = entry.file_name();
        let Some(base) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|n| n.strip_prefix('.'))
            .filter(|digits| digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            continue;
        };
        let len = match entry.metadata() {
            Ok(metadata) => metadata.len(),
            // Dropped since the listing (oldest first: no gap is left).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(&entry.path())(e)),
        };
        found.push(Sealed { base, len });
    }
    found.sort_by_key(|s| s.base);
    Ok(found)
}

/// The live segment's base as last recorded (0: never cut).
fn recorded_base(journal: &Path) -> Result<u64, Error> {
    let path = base_path(journal);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|_| {
            Error::Journal(format!(
                "{}: not a byte offset: {:?}",
                path.display(),
                text.trim()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io_error(&path)(e)),
    }
}

/// Records `base` as the live segment's, durably (a temporary file
/// renamed over the old one, then the directory synced).
pub(crate) fn record_base(journal: &Path, base: u64) -> Result<(), Error> {
    if recorded_base(journal).ok() == Some(base) {
        return Ok(());
    }
    let path = base_path(journal);
    let temporary = with_suffix(&path, ".tmp");
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        writeln!(file, "{base}")?;
        file.sync_data()?;
        std::fs::rename(&temporary, &path)?;
        sync_directory(journal)
    };
    write().map_err(io_error(&path))
}

fn sync_directory(journal: &Path) -> std::io::Result<()> {
    File::open(directory_of(journal))?.sync_all()
}

/// Removes what a cut that crashed before its first rename left: the next
/// file (zeros only: nothing is written to it before it is the journal).
pub(crate) fn remove_unfinished_cut(journal: &Path) -> Result<(), Error> {
    let next = next_path(journal);
    match std::fs::remove_file(&next) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(&next)(e)),
        _ => Ok(()),
    }
}

/// Why a cut did not happen.
#[derive(Debug)]
pub(crate) enum CutFailed {
    /// Nothing changed: keep writing the live segment, try again later.
    Retry(String),
    /// The journal's files are in a state no later record may follow.
    Broken(String),
}

/// Seals the live segment `file` (logical bytes `base..length`, records
/// only) and returns the next live segment, its base `length`, with
/// [`PREALLOCATE`] zeros written. The new base is not yet recorded: the
/// caller does that ([`record_base`]) and retries it until it succeeds.
pub(crate) fn cut(journal: &Path, file: &File, base: u64, length: u64) -> Result<File, CutFailed> {
    let retry = |what: &str, e: std::io::Error| CutFailed::Retry(format!("{what}: {e}"));
    let next_path = next_path(journal);
    let next = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&next_path)
        .and_then(|next| {
            write_zeros(&next, 0, PREALLOCATE)?;
            next.sync_all()?;
            Ok(next)
        })
        .map_err(|e| {
            let _ = std::fs::remove_file(&next_path);
            retry("preparing the next segment", e)
        })?;
    file.set_len(length - base)
        .and_then(|()| file.sync_all())
        .map_err(|e| retry("cutting the zeros off the sealed segment", e))?;
    let sealed = sealed_path(journal, base);
    std::fs::rename(journal, &sealed).map_err(|e| retry("sealing the segment", e))?;
    if let Err(e) = std::fs::rename(&next_path, journal) {
        return Err(match std::fs::rename(&sealed, journal) {
            Ok(()) => retry("starting the next segment", e),
            Err(undo) => CutFailed::Broken(format!(
                "starting the next segment failed ({e}) and the sealed one could not be put back ({undo})"
            )),
        });
    }
    sync_directory(journal).map_err(|e| {
        CutFailed::Broken(format!(
            "the journal's directory could not be synced after a cut ({e})"
        ))
    })?;
    Ok(next)
}

/// Drops the sealed segments of `journal` that end at or before `upto`
/// (shipped and covered by signed heads): removes them, or moves them into
/// `archive` when given. Keeps the last sealed segment while the recorded
/// base does not yet cover it (it is then what says where the live one
/// begins). Returns how many it dropped.
///
/// # Errors
/// [`Error::Journal`] when a segment cannot be removed or archived; those
/// before it are gone, it and later ones stay for the next try.
pub(crate) fn drop_sealed(
    journal: &Path,
    upto: u64,
    archive: Option<&Path>,
) -> Result<usize, Error> {
    let segments = Segments::of(journal)?;
    let recorded = recorded_base(journal)?;
    let count = segments.sealed.len();
    let mut dropped = 0;
    for (i, segment) in segments.sealed.iter().enumerate() {
        let last = i + 1 == count;
        if segment.end() > upto || (last && segment.end() > recorded) {
            break;
        }
        let path = sealed_path(journal, segment.base);
        match archive {
            Some(archive) => move_into(&path, archive)?,
            None => std::fs::remove_file(&path).map_err(io_error(&path))?,
        }
        dropped += 1;
    }
    if dropped > 0 {
        sync_directory(journal).map_err(io_error(directory_of(journal)))?;
    }
    Ok(dropped)
}

/// Moves a sealed segment into `archive` (0700): a rename, or a copy that
/// is synced before the original is removed when `archive` is on another
/// file system.
fn move_into(path: &Path, archive: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(archive)
        .and_then(|()| std::fs::set_permissions(archive, std::fs::Permissions::from_mode(0o700)))
        .map_err(io_error(archive))?;
    let Some(name) = path.file_name() else {
        return Err(Error::Journal(format!("{}: no file name", path.display())));
    };
    let target = archive.join(name);
    if std::fs::rename(path, &target).is_ok() {
        return File::open(archive)
            .and_then(|d| d.sync_all())
            .map_err(io_error(archive));
    }
    let copy = || -> std::io::Result<()> {
        std::fs::copy(path, &target)?;
        File::open(&target)?.sync_all()?;
        File::open(archive)?.sync_all()?;
        std::fs::remove_file(path)
    };
    copy().map_err(io_error(&target))
}
