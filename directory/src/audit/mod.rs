//! The audit log: per tenant, append-only, hash-chained.
//!
//! A record is durable in the node's journal (an append-only file of
//! binary records, written and `fdatasync`ed in groups by one writer
//! thread; see [`record`] for the layout) before [`AuditJournal::append`]
//! returns, so the request it records is answered only after that. Each
//! record carries the hash of its tenant's previous record on this node:
//! `hash = SHA-256(prev_hash ‖ canonical(record))`, over canonical bytes
//! (format 2, [`FORMAT_BINARY`]); journals and rows written before issue 16
//! hold JSON lines hashed over their text (format 1, [`FORMAT_JSON`]), and
//! still read, ship and verify: a journal of JSON lines continues with
//! binary records in the same file. The file is kept [`PREALLOCATE`]
//! bytes longer than its records in written zeros, so the syncs of group
//! commits change no file metadata; a reader stops at the zeros.
//! [`ship`] ([`Shipper`]) copies the journal into Postgres in batches (one
//! transaction; per tenant, under its scope, an insert that skips what is
//! there already), as the run-time role, so every record arrives exactly
//! once by `(tenant, node, seq)`, also when a crash repeats a batch. A
//! [`Checkpoint`] beside the journal records how far it is shipped, the
//! chain heads there and the heads the node signed
//! ([`SignedHead`], [`Shipper::sign_heads`]), so neither a start nor a
//! shipper reads the journal from its beginning again.
//! [`verify_chain`] recomputes the chain in Postgres and names the first
//! broken link; [`verify_against_heads`] also fails when the chain does not
//! reach or does not match a head a node signed (truncation, a deleted
//! chain, a rewrite with recomputed hashes).
//!
//! Files are created readable by their owner only (0600).

mod heads;
mod read;
mod record;
mod segments;
mod ship;
mod verify;

pub use heads::{HeadSigner, HeadVerifier, SignedHead};
pub use read::{read_journal, read_journal_bounded};
pub use record::{Detail, DetailBuilder, Kind, FORMAT_BINARY, FORMAT_JSON};
pub use segments::{summary as segment_summary, SegmentSummary};
pub use ship::{ship, Checkpoint, Shipper};
pub use verify::{
    stored_heads, verify_against_heads, verify_chain, ChainReport, HeadSource, HeadVerdict,
};

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::Error;

/// One journal record (and one row of `audit_events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Tenant.
    pub tenant_id: i64,
    /// Node that wrote it.
    pub node: String,
    /// Position in this tenant's chain on this node, from 1.
    pub seq: i64,
    /// When, ms since epoch.
    pub at_ms: i64,
    /// What: `issue.id_token`, `session.revoke`, `key.rotate`, `refused`, ...
    pub kind: String,
    /// Details (strings and integers only, so the canonical form survives jsonb).
    pub detail: serde_json::Value,
    /// Previous record's hash, hex (64 zeros for the first).
    pub prev_hash: String,
    /// This record's hash, hex.
    pub hash: String,
    /// What its hash covers: [`FORMAT_JSON`] (a journal line of before
    /// issue 16) or [`FORMAT_BINARY`].
    #[serde(default = "format_json")]
    pub format: i16,
}

fn format_json() -> i16 {
    FORMAT_JSON
}

impl AuditEntry {
    /// The text a format 1 hash covers after `prev_hash`.
    fn canonical_text(&self) -> String {
        // serde_json maps are sorted by key: one text per value.
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            self.tenant_id, self.node, self.seq, self.at_ms, self.kind, self.detail
        )
    }

    /// The columns of `audit_events` that [`AuditEntry::from_row`] reads, in
    /// its order (hashes as hex).
    pub const COLUMNS: &'static str =
        "tenant_id, node, seq, at_ms, kind, detail, encode(prev_hash, 'hex'), encode(hash, 'hex'), format";

    /// An entry from a row of `SELECT {COLUMNS} FROM audit_events`.
    ///
    /// # Errors
    /// [`Error::Postgres`] when a column does not have its type.
    pub fn from_row(row: &tokio_postgres::Row) -> Result<AuditEntry, Error> {
        Ok(AuditEntry {
            tenant_id: row.try_get(0)?,
            node: row.try_get(1)?,
            seq: row.try_get(2)?,
            at_ms: row.try_get(3)?,
            kind: row.try_get(4)?,
            detail: row.try_get(5)?,
            prev_hash: row.try_get(6)?,
            hash: row.try_get(7)?,
            format: row.try_get(8)?,
        })
    }

    /// The hash this entry should carry given its `prev_hash`, by its
    /// format (empty for an unknown format or a malformed `prev_hash`:
    /// it matches no hash).
    pub fn expected_hash(&self) -> String {
        match self.format {
            FORMAT_JSON => {
                let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
                context.update(self.prev_hash.as_bytes());
                context.update(self.canonical_text().as_bytes());
                record::hex(context.finish().as_ref())
            }
            FORMAT_BINARY => match record::unhex32(&self.prev_hash) {
                Some(prev) => record::hex(&record::chain_hash(&prev, &record::canonical(self))),
                None => String::new(),
            },
            _ => String::new(),
        }
    }
}

pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an append returns once the record is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The record's sequence number in its tenant's chain on this node.
    pub seq: i64,
    /// Its hash.
    pub hash: [u8; 32],
}

struct Job {
    tenant_id: i64,
    kind: Kind,
    detail: Detail,
    at_ms: i64,
    done: oneshot::Sender<Result<Appended, String>>,
}

/// Counters for metrics and the audit-cost measurement.
#[derive(Debug, Default)]
pub struct JournalStats {
    /// Records made durable.
    pub appended: AtomicU64,
    /// fdatasync calls (records per sync = group commit factor).
    pub syncs: AtomicU64,
    /// How long each batch's write and fdatasync took: every token waits
    /// for one, so this disk's sync time is a floor under its latency.
    pub sync_latency: crate::latency::LatencyHistogram,
    /// Records waiting for the writer now.
    pub queued: AtomicU64,
    /// How long each cut took (records queued meanwhile wait for it); its
    /// count is the segments sealed since the journal was opened.
    pub cut_latency: crate::latency::LatencyHistogram,
    /// Bytes of the journal known durable (synced): what may be shipped.
    pub durable: AtomicU64,
    /// Records durable in the journal, counted from the same base as
    /// `shipped` (the checkpoint's record count at open).
    pub records: AtomicU64,
    /// Records shipped into Postgres (kept by the bound [`Shipper`]).
    pub shipped: AtomicU64,
    /// When the oldest record not yet in Postgres was written (ms since
    /// the epoch); 0 when the shipper has caught up.
    pub unshipped_since_ms: AtomicU64,
    /// Tests only: fail this many coming syncs as if the disk had
    /// (see [`AuditJournal::danger_fail_syncs`]).
    #[cfg(any(test, feature = "test-support"))]
    fail_syncs: AtomicU64,
}

impl JournalStats {
    /// Whether the coming sync is one [`AuditJournal::danger_fail_syncs`]
    /// asked to fail (and counts it).
    #[cfg(any(test, feature = "test-support"))]
    fn take_injected_failure(&self) -> bool {
        self.fail_syncs
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Without `test-support` nothing can make a sync fail on purpose.
    #[cfg(not(any(test, feature = "test-support")))]
    fn take_injected_failure(&self) -> bool {
        false
    }

    /// Records durable in the journal but not yet in Postgres.
    pub fn unshipped(&self) -> u64 {
        self.records
            .load(Ordering::Acquire)
            .saturating_sub(self.shipped.load(Ordering::Acquire))
    }

    /// How long the oldest record not yet in Postgres has waited, at
    /// `now_ms`: zero when everything durable is shipped.
    pub fn ship_lag(&self, now_ms: u64) -> std::time::Duration {
        match self.unshipped_since_ms.load(Ordering::Acquire) {
            0 => std::time::Duration::ZERO,
            since => std::time::Duration::from_millis(now_ms.saturating_sub(since)),
        }
    }
}

/// The node's journal. Cheap to share behind an `Arc`.
pub struct AuditJournal {
    sender: Option<crossbeam_channel::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    path: PathBuf,
    stats: Arc<JournalStats>,
}

impl std::fmt::Debug for AuditJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditJournal")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}
/// How a journal is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalOptions {
    /// The live segment is sealed and a new one begun once its records
    /// reach this many bytes (0: never; see [`segments`]).
    pub segment_bytes: u64,
}

impl Default for JournalOptions {
    fn default() -> JournalOptions {
        JournalOptions {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

/// A segment's size unless configured: about ten seconds of records at
/// 50,000 a second, one cut's extra syncs among thousands of group commits.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

impl AuditJournal {
    /// Opens (or creates) the journal at `path` for node `node`, recovering
    /// each tenant's chain position from what is in it, with the default
    /// [`JournalOptions`].
    ///
    /// # Errors
    /// As [`AuditJournal::open_with`].
    pub fn open(path: &Path, node: &str) -> Result<AuditJournal, Error> {
        AuditJournal::open_with(path, node, JournalOptions::default())
    }

    /// Opens (or creates) the journal at `path` for node `node`, recovering
    /// each tenant's chain position from its checkpoint and the records
    /// after it.
    ///
    /// # Errors
    /// [`Error::Journal`] when the file cannot be opened or is corrupt, or
    /// segments were dropped and the checkpoint that holds the chain heads
    /// of their records is missing or does not fit.
    pub fn open_with(
        path: &Path,
        node: &str,
        options: JournalOptions,
    ) -> Result<AuditJournal, Error> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .and_then(|()| {
                    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))
                })
                .map_err(|e| Error::Journal(format!("{}: {e}", parent.display())))?;
        }
        segments::remove_unfinished_cut(path)?;
        let layout = segments::Segments::of(path)?;
        // Chain heads: from the checkpoint (what was shipped), then every
        // record after it, read in bounded chunks.
        let checkpoint = match Checkpoint::load(path) {
            Some(checkpoint) => checkpoint,
            None if layout.first() > 0 => {
                return Err(Error::Journal(format!(
                    "{}: bytes before {} were shipped, signed and dropped, and the checkpoint holding their chain heads is missing or does not fit: restore {}.checkpoint from the backup of the data directory",
                    path.display(),
                    layout.first(),
                    path.display()
                )))
            }
            None => Checkpoint::default(),
        };
        let shipped = checkpoint.records;
        let mut records = checkpoint.records;
        let mut chains: HashMap<i64, (i64, [u8; 32])> = HashMap::new();
        for (tenant, (seq, hash)) in &checkpoint.heads {
            chains.insert(*tenant, (*seq, head_hash(hash)?));
        }
        let mut good = checkpoint.offset;
        loop {
            let (entries, end) = read_journal_bounded(path, good, SCAN_CHUNK, u64::MAX)?;
            for entry in entries.iter() {
                chains.insert(entry.tenant_id, (entry.seq, head_hash(&entry.hash)?));
            }
            records += entries.len() as u64;
            good = end;
            if entries.len() < SCAN_CHUNK {
                break;
            }
        }
        let base = layout.live_base;
        if good < base {
            // Only a sealed segment's damage stops a read before its end,
            // and that is an error: this is a journal changed meanwhile.
            return Err(Error::Journal(format!(
                "{}: read ended at byte {good}, before the live segment at {base}",
                path.display()
            )));
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::Journal(format!("{}: {e}", path.display())))?;
        // A journal made by an older Sigil may be world-readable.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::Journal(format!("{}: {e}", path.display())))?;
        // Drops a torn tail and the zeros written ahead (the writer
        // writes them again).
        file.set_len(good - base)
            .map_err(|e| Error::Journal(e.to_string()))?;
        segments::record_base(path, base)?;
        let (sender, receiver) = crossbeam_channel::bounded::<Job>(65_536);
        let stats = Arc::new(JournalStats::default());
        stats.durable.store(good, Ordering::Release);
        stats.records.store(records, Ordering::Release);
        stats.shipped.store(shipped, Ordering::Release);
        let writer_stats = Arc::clone(&stats);
        let live = Live {
            journal: path.to_owned(),
            file,
            base,
            segment_bytes: options.segment_bytes,
        };
        let node = node.to_owned();
        let writer = std::thread::Builder::new()
            .name("sigil-audit".into())
            .spawn(move || write_loop(live, good, node, chains, receiver, writer_stats))
            .map_err(|e| Error::Journal(e.to_string()))?;
        Ok(AuditJournal {
            sender: Some(sender),
            writer: Some(writer),
            path: path.to_owned(),
            stats,
        })
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Counters.
    pub fn stats(&self) -> &Arc<JournalStats> {
        &self.stats
    }

    /// Appends a record and returns once it is on disk (fdatasync'd).
    ///
    /// # Errors
    /// [`Error::Journal`] when the journal is full (the writer is behind by
    /// 65,536 records: refuse the request rather than answer it without
    /// its record) or the disk write failed.
    pub async fn append(
        &self,
        tenant_id: i64,
        kind: impl Into<Kind>,
        detail: impl Into<Detail>,
        at_ms: u64,
    ) -> Result<Appended, Error> {
        let (done, result) = oneshot::channel();
        self.send(Job {
            tenant_id,
            kind: kind.into(),
            detail: detail.into(),
            at_ms: i64::try_from(at_ms).unwrap_or(i64::MAX),
            done,
        })?;
        result
            .await
            .map_err(|_| Error::Journal("journal writer stopped".into()))?
            .map_err(Error::Journal)
    }

    fn send(&self, job: Job) -> Result<(), Error> {
        let sender = self
            .sender
            .as_ref()
            .ok_or_else(|| Error::Journal("closed".into()))?;
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        sender.try_send(job).map_err(|e| {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            Error::Journal(match e {
                crossbeam_channel::TrySendError::Full(_) => "journal queue full".into(),
                crossbeam_channel::TrySendError::Disconnected(_) => "journal writer stopped".into(),
            })
        })
    }

    /// Appends `records` (kind, detail) for one tenant, in order, and
    /// returns once all are on disk: queued together, they share the
    /// writer's group commit (one fdatasync for many). Each record is its
    /// own link of the chain, as with [`AuditJournal::append`].
    ///
    /// # Errors
    /// As [`AuditJournal::append`]; on an error some records of the call
    /// may be durable and others not.
    pub async fn append_many(
        &self,
        tenant_id: i64,
        records: Vec<(Kind, Detail)>,
        at_ms: u64,
    ) -> Result<Vec<Appended>, Error> {
        let mut waiting = Vec::with_capacity(records.len());
        for (kind, detail) in records {
            let (done, result) = oneshot::channel();
            self.send(Job {
                tenant_id,
                kind,
                detail,
                at_ms: i64::try_from(at_ms).unwrap_or(i64::MAX),
                done,
            })?;
            waiting.push(result);
        }
        let mut appended = Vec::with_capacity(waiting.len());
        for result in waiting {
            appended.push(
                result
                    .await
                    .map_err(|_| Error::Journal("journal writer stopped".into()))?
                    .map_err(Error::Journal)?,
            );
        }
        Ok(appended)
    }

    /// Tests only (`test-support`): the next `n` group commits fail as a
    /// failing disk would make them (after the write, at the sync).
    #[cfg(any(test, feature = "test-support"))]
    pub fn danger_fail_syncs(&self, n: u64) {
        self.stats.fail_syncs.store(n, Ordering::Relaxed);
    }

    /// Stops the writer after it has written everything queued.
    pub fn close(&mut self) {
        self.sender = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Drop for AuditJournal {
    fn drop(&mut self) {
        self.close();
    }
}

/// A tenant's chain head: its last sequence number and hash.
type ChainHead = (i64, [u8; 32]);

/// A chain head's hash from its hex.
/// Tests only (`test-support`): a format 1 journal line (JSON, hashed over
/// its text) of `tenant` on `node` at `seq` after `prev` (hex), as Sigil
/// wrote it before issue 16 (no `format` field), and its hash: for tests
/// of reading, shipping and verifying journals of earlier versions.
#[cfg(any(test, feature = "test-support"))]
pub fn json_line_before_issue_16(
    tenant: i64,
    node: &str,
    seq: i64,
    prev: &str,
) -> (String, String) {
    let mut entry = AuditEntry {
        tenant_id: tenant,
        node: node.to_owned(),
        seq,
        at_ms: 500 + seq,
        kind: "issue.id_token".into(),
        detail: serde_json::json!({"user": "alice", "n": seq}),
        prev_hash: prev.to_owned(),
        hash: String::new(),
        format: FORMAT_JSON,
    };
    entry.hash = entry.expected_hash();
    let mut value = serde_json::to_value(&entry).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("format");
    }
    (format!("{value}\n"), entry.hash)
}

fn head_hash(hex: &str) -> Result<[u8; 32], Error> {
    record::unhex32(hex).ok_or_else(|| Error::Journal(format!("malformed chain hash {hex:?}")))
}

/// The live segment, as the writer holds it.
struct Live {
    journal: PathBuf,
    file: File,
    /// The logical offset of its first byte.
    base: u64,
    /// Cut it once its records reach this many bytes (0: never).
    segment_bytes: u64,
}

impl Live {
    /// Seals the live segment when its records (up to logical `length`)
    /// have reached the segment size and starts the next. Returns, when it
    /// tried, the file's new length (logical, zeros included) and whether
    /// it cut; a failure that leaves the journal usable is logged and
    /// tried again a little later, one that does not is returned.
    fn cut_when_full(
        &mut self,
        length: u64,
        retry_at: &mut u64,
    ) -> Result<Option<(u64, bool)>, String> {
        if self.segment_bytes == 0 || length - self.base < self.segment_bytes || length < *retry_at
        {
            return Ok(None);
        }
        match segments::cut(&self.journal, &self.file, self.base, length) {
            Ok(next) => {
                self.file = next;
                self.base = length;
                if let Err(e) = segments::record_base(&self.journal, length) {
                    // The sealed segment still says where this one begins;
                    // it is not dropped until the base is recorded.
                    tracing::warn!(error = %e, "audit journal: recording the new segment's base failed; retried at the next cut or start");
                }
                Ok(Some((length + PREALLOCATE, true)))
            }
            Err(segments::CutFailed::Retry(e)) => {
                tracing::warn!(error = %e, "audit journal: cutting a segment failed; the live one grows and the cut is tried again");
                *retry_at = length + PREALLOCATE;
                Ok(Some((length, false)))
            }
            Err(segments::CutFailed::Broken(e)) => Err(format!("journal unusable: {e}")),
        }
    }
}

fn write_loop(
    mut live: Live,
    mut length: u64,
    node: String,
    mut chains: HashMap<i64, (i64, [u8; 32])>,
    receiver: crossbeam_channel::Receiver<Job>,
    stats: Arc<JournalStats>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(4096);
    let mut buffer = Vec::with_capacity(1 << 20);
    let mut broken: Option<String> = None;
    // The file's length (logical): records up to `length`, written zeros
    // after.
    let mut allocated = length;
    let mut retry_cut_at = 0;
    let mut saved: Vec<(i64, Option<ChainHead>)> = Vec::with_capacity(4096);
    let mut results: Vec<Appended> = Vec::with_capacity(4096);
    while let Ok(first) = receiver.recv() {
        batch.push(first);
        while batch.len() < 4096 {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        stats
            .queued
            .fetch_sub(batch.len() as u64, Ordering::Relaxed);
        if let Some(reason) = &broken {
            for job in batch.drain(..) {
                let _ = job.done.send(Err(reason.clone()));
            }
            continue;
        }
        buffer.clear();
        results.clear();
        saved.clear();
        saved.extend(
            batch
                .iter()
                .map(|j| (j.tenant_id, chains.get(&j.tenant_id).copied())),
        );
        for job in &batch {
            let (seq, prev) = chains.get(&job.tenant_id).copied().unwrap_or((0, [0; 32]));
            let seq = seq + 1;
            let hash = record::put_record(
                &mut buffer,
                length,
                job.tenant_id,
                &node,
                seq,
                job.at_ms,
                &job.kind,
                &job.detail,
                &prev,
            );
            chains.insert(job.tenant_id, (seq, hash));
            results.push(Appended { seq, hash });
        }
        let injected = stats.take_injected_failure();
        let started = std::time::Instant::now();
        let end = length + buffer.len() as u64;
        // Past the zeros written ahead: write the next ones with this
        // batch (its sync then carries the file's new size, once per
        // `PREALLOCATE` bytes; the syncs in between change no metadata).
        let ahead = (end > allocated).then(|| (end / PREALLOCATE + 2) * PREALLOCATE);
        let file = &live.file;
        let base = live.base;
        let outcome = file
            .write_all_at(&buffer, length - base)
            .and_then(|()| match ahead {
                Some(ahead) => write_zeros(file, end - base, ahead - base),
                None => Ok(()),
            })
            .and_then(|()| {
                if injected {
                    Err(std::io::Error::other("injected sync failure"))
                } else {
                    file.sync_data()
                }
            });
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        stats.sync_latency.record(started.elapsed());
        match outcome {
            Ok(()) => {
                length = end;
                allocated = allocated.max(ahead.unwrap_or(0));
                stats.durable.store(length, Ordering::Release);
                stats
                    .records
                    .fetch_add(batch.len() as u64, Ordering::Release);
                stats
                    .appended
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                for (job, appended) in batch.drain(..).zip(results.drain(..)) {
                    let _ = job.done.send(Ok(appended));
                }
                let started = std::time::Instant::now();
                match live.cut_when_full(length, &mut retry_cut_at) {
                    Ok(Some((now, cut))) => {
                        allocated = now;
                        if cut {
                            stats.cut_latency.record(started.elapsed());
                        }
                    }
                    Ok(None) => {}
                    Err(reason) => broken = Some(reason),
                }
            }
            Err(e) => {
                // Nothing of this batch is acknowledged: cut its bytes off
                // the file (their sequence numbers are given again) and put
                // the chains back. If the file cannot be cut, no later
                // record could follow its chain: refuse every append.
                allocated = length;
                let cut = file.set_len(length - base).and_then(|()| file.sync_data());
                if let Err(cut) = cut {
                    broken = Some(format!(
                        "journal unusable: a failed write could not be undone ({cut})"
                    ));
                }
                for (tenant, previous) in saved.drain(..).rev() {
                    match previous {
                        Some(p) => chains.insert(tenant, p),
                        None => chains.remove(&tenant),
                    };
                }
                let message = format!("write failed: {e}");
                for job in batch.drain(..) {
                    let _ = job.done.send(Err(message.clone()));
                }
            }
        }
    }
    let _ = live.file.sync_all();
}

/// Zeros written ahead of the records: the journal's file is this much
/// longer than its records, in written zeros (not `fallocate`'s unwritten
/// extents, which a write converts in metadata the sync then journals).
pub(crate) const PREALLOCATE: u64 = 1 << 20;

fn write_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64);
        file.write_all_at(&ZEROS[..n as usize], at)?;
        at += n;
    }
    Ok(())
}

/// Records read per step when scanning or shipping a journal.
pub(crate) const SCAN_CHUNK: usize = 50_000;

#[cfg(test)]
mod tests;
