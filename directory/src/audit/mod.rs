//! The audit log: per tenant, append-only, hash-chained.
//!
//! A record is durable in the node's journal (an append-only file of JSON
//! lines, written and `fdatasync`ed in groups by one writer thread) before
//! [`AuditJournal::append`] returns, so the request it records is answered
//! only after that. Each record carries the hash of its tenant's previous
//! record on this node: `hash = SHA-256(prev_hash ‖ canonical(record))`.
//! [`ship`] ([`Shipper`]) copies the journal into Postgres in batches (COPY into a
//! temporary table, then one insert per tenant under its scope that skips
//! what is there already), so every record arrives exactly once by
//! `(tenant, node, seq)`, also when a crash repeats a batch. A
//! [`Checkpoint`] beside the journal records how far it is shipped and the
//! chain heads there, so neither a start nor a shipper reads the journal
//! from its beginning again.
//! [`verify_chain`] recomputes the chain in Postgres and names the first
//! broken link.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::{Directory, Error};

/// One journal line (and one row of `audit_events`).
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
}

impl AuditEntry {
    /// The bytes the hash covers after `prev_hash`.
    fn canonical(&self) -> String {
        // serde_json maps are sorted by key: one text per value.
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            self.tenant_id, self.node, self.seq, self.at_ms, self.kind, self.detail
        )
    }

    /// The hash this entry should carry given its `prev_hash`.
    pub fn expected_hash(&self) -> String {
        let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        context.update(self.prev_hash.as_bytes());
        context.update(self.canonical().as_bytes());
        hex(context.finish().as_ref())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an append returns once the record is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The record's sequence number in its tenant's chain on this node.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
}

struct Job {
    tenant_id: i64,
    kind: String,
    detail: serde_json::Value,
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
    /// Records waiting for the writer now.
    pub queued: AtomicU64,
    /// Bytes of the journal known durable (synced): what may be shipped.
    pub durable: AtomicU64,
    /// Tests only: fail this many coming syncs as if the disk had
    /// (see [`AuditJournal::danger_fail_syncs`]).
    fail_syncs: AtomicU64,
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

/// Reads a journal, dropping a torn last line (a write the crash cut short:
/// it was never synced, so never acknowledged). Returns the entries and the
/// length of the good prefix.
///
/// # Errors
/// [`Error::Journal`] when the file cannot be read, or a line in the middle
/// is corrupt (that is tampering or disk failure, not a crash).
pub fn read_journal(path: &Path) -> Result<(Vec<AuditEntry>, u64), Error> {
    read_journal_bounded(path, 0, usize::MAX, u64::MAX)
}

/// Like [`read_journal`], from byte `offset` (the end of what was read
/// before), at most `max` entries (so a long journal is read in bounded
/// memory), and no record that ends past byte `limit` (what the writer has
/// synced: later bytes may yet be undone). Returns the entries and the
/// offset after the last whole one.
///
/// # Errors
/// As [`read_journal`].
pub fn read_journal_bounded(
    path: &Path,
    offset: u64,
    max: usize,
    limit: u64,
) -> Result<(Vec<AuditEntry>, u64), Error> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(Error::Journal(format!("{}: {e}", path.display()))),
    };
    let mut reader = BufReader::new(file);
    reader
        .seek(SeekFrom::Start(offset))
        .map_err(|e| Error::Journal(e.to_string()))?;
    let mut entries = Vec::new();
    let mut good = offset;
    let mut line = String::new();
    while entries.len() < max {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| Error::Journal(e.to_string()))?;
        if n == 0 || good + n as u64 > limit {
            break;
        }
        if !line.ends_with('\n') {
            break; // torn tail
        }
        match serde_json::from_str::<AuditEntry>(line.trim_end()) {
            Ok(entry) => entries.push(entry),
            Err(e) => {
                // Corrupt in the middle? Look for anything after it.
                let mut rest = String::new();
                let _ = reader.read_line(&mut rest);
                if rest.is_empty() {
                    break; // torn tail that happened to end in a newline
                }
                return Err(Error::Journal(format!(
                    "{}: corrupt record at byte {good}: {e}",
                    path.display()
                )));
            }
        }
        good += n as u64;
    }
    Ok((entries, good))
}

impl AuditJournal {
    /// Opens (or creates) the journal at `path` for node `node`, recovering
    /// each tenant's chain position from what is in it.
    ///
    /// # Errors
    /// [`Error::Journal`] when the file cannot be opened or is corrupt.
    pub fn open(path: &Path, node: &str) -> Result<AuditJournal, Error> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::Journal(format!("{}: {e}", parent.display())))?;
        }
        // Chain heads: from the checkpoint (what was shipped), then every
        // record after it, read in bounded chunks.
        let checkpoint = Checkpoint::load(path).unwrap_or_default();
        let mut chains = checkpoint.heads;
        let mut good = checkpoint.offset;
        loop {
            let (entries, end) = read_journal_bounded(path, good, SCAN_CHUNK, u64::MAX)?;
            for entry in entries.iter() {
                chains.insert(entry.tenant_id, (entry.seq, entry.hash.clone()));
            }
            good = end;
            if entries.len() < SCAN_CHUNK {
                break;
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::Journal(format!("{}: {e}", path.display())))?;
        file.set_len(good)
            .map_err(|e| Error::Journal(e.to_string()))?;
        file.seek(SeekFrom::End(0))
            .map_err(|e| Error::Journal(e.to_string()))?;
        let (sender, receiver) = crossbeam_channel::bounded::<Job>(65_536);
        let stats = Arc::new(JournalStats::default());
        stats.durable.store(good, Ordering::Release);
        let writer_stats = Arc::clone(&stats);
        let node = node.to_owned();
        let writer = std::thread::Builder::new()
            .name("sigil-audit".into())
            .spawn(move || write_loop(file, good, node, chains, receiver, writer_stats))
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
        kind: &str,
        detail: serde_json::Value,
        at_ms: u64,
    ) -> Result<Appended, Error> {
        let (done, result) = oneshot::channel();
        let job = Job {
            tenant_id,
            kind: kind.to_owned(),
            detail,
            at_ms: i64::try_from(at_ms).unwrap_or(i64::MAX),
            done,
        };
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
        })?;
        result
            .await
            .map_err(|_| Error::Journal("journal writer stopped".into()))?
            .map_err(Error::Journal)
    }

    /// Tests only: the next `n` group commits fail as a failing disk would
    /// make them (after the write, at the sync).
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

fn write_loop(
    mut file: File,
    mut length: u64,
    node: String,
    mut chains: HashMap<i64, (i64, String)>,
    receiver: crossbeam_channel::Receiver<Job>,
    stats: Arc<JournalStats>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(4096);
    let mut buffer = Vec::with_capacity(1 << 20);
    let mut broken: Option<String> = None;
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
        let mut results = Vec::with_capacity(batch.len());
        let saved: Vec<(i64, Option<(i64, String)>)> = batch
            .iter()
            .map(|j| (j.tenant_id, chains.get(&j.tenant_id).cloned()))
            .collect();
        for job in &batch {
            let (seq, prev) = chains
                .get(&job.tenant_id)
                .cloned()
                .unwrap_or((0, GENESIS.to_owned()));
            let mut entry = AuditEntry {
                tenant_id: job.tenant_id,
                node: node.clone(),
                seq: seq + 1,
                at_ms: job.at_ms,
                kind: job.kind.clone(),
                detail: job.detail.clone(),
                prev_hash: prev,
                hash: String::new(),
            };
            entry.hash = entry.expected_hash();
            let _ = serde_json::to_writer(&mut buffer, &entry);
            buffer.push(b'\n');
            chains.insert(job.tenant_id, (entry.seq, entry.hash.clone()));
            results.push(Appended {
                seq: entry.seq,
                hash: entry.hash,
            });
        }
        let injected = stats
            .fail_syncs
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        let outcome = file.write_all(&buffer).and_then(|()| {
            if injected {
                Err(std::io::Error::other("injected sync failure"))
            } else {
                file.sync_data()
            }
        });
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(()) => {
                length += buffer.len() as u64;
                stats.durable.store(length, Ordering::Release);
                stats
                    .appended
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                for (job, appended) in batch.drain(..).zip(results) {
                    let _ = job.done.send(Ok(appended));
                }
            }
            Err(e) => {
                // Nothing of this batch is acknowledged: cut its bytes off
                // the file (their sequence numbers are given again) and put
                // the chains back. If the file cannot be cut, no later
                // record could follow its chain: refuse every append.
                let cut = file
                    .set_len(length)
                    .and_then(|()| file.seek(SeekFrom::Start(length)).map(drop))
                    .and_then(|()| file.sync_data());
                if let Err(cut) = cut {
                    broken = Some(format!(
                        "journal unusable: a failed write could not be undone ({cut})"
                    ));
                }
                for (tenant, previous) in saved.into_iter().rev() {
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
    let _ = file.sync_all();
}

/// Ships the journal at `path` into Postgres, from the start (records
/// already there are skipped by their key), in batches of `batch` records.
/// Returns how many were new.
///
/// # Errors
/// [`Error::Journal`] or [`Error::Postgres`]; a failed batch is rolled back
/// whole and shipped again next time.
pub async fn ship(directory: &Directory, path: &Path, batch: usize) -> Result<u64, Error> {
    Shipper::open(path).ship(directory, batch).await
}

/// Records read per step when scanning or shipping a journal.
const SCAN_CHUNK: usize = 50_000;

/// How far the journal is in Postgres: the byte offset after the last
/// shipped record and each tenant's chain head at that point. Kept beside
/// the journal (`<journal>.checkpoint`), replaced atomically after each
/// batch commits. It only saves work: a missing, stale or damaged one
/// means reading from the start, and records shipped twice are skipped by
/// their key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Bytes of the journal shipped (a record boundary).
    pub offset: u64,
    /// Each tenant's (seq, hash) after those bytes.
    pub heads: HashMap<i64, (i64, String)>,
}

impl Checkpoint {
    fn path(journal: &Path) -> PathBuf {
        let mut name = journal.as_os_str().to_owned();
        name.push(".checkpoint");
        PathBuf::from(name)
    }

    /// The checkpoint of `journal`, if there is one that fits it: its
    /// offset within the file and just after a record's newline.
    pub fn load(journal: &Path) -> Option<Checkpoint> {
        use std::io::Read;
        let text = std::fs::read(Checkpoint::path(journal)).ok()?;
        let checkpoint: Checkpoint = serde_json::from_slice(&text).ok()?;
        if checkpoint.offset == 0 {
            return Some(checkpoint);
        }
        let mut file = File::open(journal).ok()?;
        if file.metadata().ok()?.len() < checkpoint.offset {
            return None;
        }
        file.seek(SeekFrom::Start(checkpoint.offset - 1)).ok()?;
        let mut last = [0u8; 1];
        file.read_exact(&mut last).ok()?;
        (last[0] == b'\n').then_some(checkpoint)
    }

    fn save(&self, journal: &Path) -> Result<(), Error> {
        let path = Checkpoint::path(journal);
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let body = serde_json::to_vec(self).map_err(|e| Error::Journal(e.to_string()))?;
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&temporary)?;
            file.write_all(&body)?;
            file.sync_data()?;
            std::fs::rename(&temporary, &path)
        };
        write().map_err(|e| Error::Journal(format!("{}: {e}", path.display())))
    }
}

/// Ships a journal into Postgres from where it last stopped (its
/// [`Checkpoint`]), in batches, saving the checkpoint after each.
#[derive(Debug)]
pub struct Shipper {
    path: PathBuf,
    state: Checkpoint,
    bound: Option<Arc<JournalStats>>,
}

impl Shipper {
    /// A shipper for the journal at `path`, resuming at its checkpoint.
    pub fn open(path: &Path) -> Shipper {
        Shipper {
            path: path.to_owned(),
            state: Checkpoint::load(path).unwrap_or_default(),
            bound: None,
        }
    }

    /// Ships only what `journal` has synced (while it writes: bytes of a
    /// batch whose sync fails are cut off the file again).
    pub fn bounded_by(mut self, journal: &AuditJournal) -> Shipper {
        self.bound = Some(Arc::clone(&journal.stats));
        self
    }

    /// Bytes of the journal known to be in Postgres.
    pub fn offset(&self) -> u64 {
        self.state.offset
    }

    /// Ships everything written so far, `batch` records per transaction.
    /// Returns how many records were new to Postgres.
    ///
    /// # Errors
    /// [`Error::Journal`] or [`Error::Postgres`]; what was committed before
    /// the failure stays shipped, the rest goes next time.
    pub async fn ship(&mut self, directory: &Directory, batch: usize) -> Result<u64, Error> {
        let batch = batch.max(1);
        let mut inserted = 0;
        loop {
            let limit = self
                .bound
                .as_ref()
                .map_or(u64::MAX, |stats| stats.durable.load(Ordering::Acquire));
            let (entries, end) = read_journal_bounded(&self.path, self.state.offset, batch, limit)?;
            if entries.is_empty() {
                return Ok(inserted);
            }
            inserted += directory.insert_audit(&entries).await?;
            for entry in entries.iter() {
                self.state
                    .heads
                    .insert(entry.tenant_id, (entry.seq, entry.hash.clone()));
            }
            self.state.offset = end;
            self.state.save(&self.path)?;
            if entries.len() < batch {
                return Ok(inserted);
            }
        }
    }
}

/// The result of checking a tenant's chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Records checked.
    pub records: u64,
    /// Nodes whose chains were checked.
    pub nodes: Vec<String>,
    /// The first broken link: (node, seq, what is wrong).
    pub first_break: Option<(String, i64, String)>,
}

/// Checks every chain of `tenant_id` in Postgres.
///
/// # Errors
/// [`Error::Postgres`].
pub async fn verify_chain(directory: &Directory, tenant_id: i64) -> Result<ChainReport, Error> {
    let scope = directory.tenant(tenant_id).await?;
    let rows = scope
        .client()
        .query("SELECT tenant_id, node, seq, at_ms, kind, detail, encode(prev_hash, 'hex'), encode(hash, 'hex') FROM audit_events ORDER BY node, seq", &[])
        .await?;
    let mut report = ChainReport {
        records: 0,
        nodes: Vec::new(),
        first_break: None,
    };
    let mut previous: Option<(String, i64, String)> = None;
    for row in rows {
        let entry = AuditEntry {
            tenant_id: row.try_get(0)?,
            node: row.try_get(1)?,
            seq: row.try_get(2)?,
            at_ms: row.try_get(3)?,
            kind: row.try_get(4)?,
            detail: row.try_get(5)?,
            prev_hash: row.try_get(6)?,
            hash: row.try_get(7)?,
        };
        report.records += 1;
        let (expected_seq, expected_prev) = match &previous {
            Some((node, seq, hash)) if *node == entry.node => (seq + 1, hash.clone()),
            _ => {
                report.nodes.push(entry.node.clone());
                (1, GENESIS.to_owned())
            }
        };
        let problem = if entry.seq != expected_seq {
            Some(format!("expected seq {expected_seq}: records missing"))
        } else if entry.prev_hash != expected_prev {
            Some("prev_hash does not match the previous record's hash".to_owned())
        } else if entry.hash != entry.expected_hash() {
            Some("hash does not match the record's contents".to_owned())
        } else {
            None
        };
        if let Some(problem) = problem {
            report.first_break = Some((entry.node.clone(), entry.seq, problem));
            break;
        }
        previous = Some((entry.node, entry.seq, entry.hash));
    }
    Ok(report)
}

impl Directory {
    /// Inserts journal entries; existing `(tenant, node, seq)` are skipped.
    /// Returns how many were new.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn insert_audit(&self, entries: &[AuditEntry]) -> Result<u64, Error> {
        use futures_util::SinkExt;
        let mut tenants: Vec<i64> = entries.iter().map(|e| e.tenant_id).collect();
        tenants.sort_unstable();
        tenants.dedup();
        let owner = self.owner().await;
        owner
            .batch_execute("BEGIN; CREATE TEMP TABLE IF NOT EXISTS audit_incoming (LIKE audit_events) ON COMMIT DELETE ROWS")
            .await?;
        let result: Result<u64, Error> = async {
            let sink = owner.copy_in("COPY audit_incoming FROM STDIN WITH (FORMAT text)").await?;
            let mut text = String::new();
            for e in entries {
                use std::fmt::Write;
                let detail = e.detail.to_string().replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n");
                let _ = writeln!(
                    text,
                    "{}\t{}\t{}\t{}\t{}\t{}\t\\\\x{}\t\\\\x{}",
                    e.tenant_id,
                    copy_text(&e.node),
                    e.seq,
                    e.at_ms,
                    copy_text(&e.kind),
                    detail,
                    e.prev_hash,
                    e.hash
                );
            }
            let mut sink = Box::pin(sink);
            sink.send(bytes::Bytes::from(text)).await?;
            sink.as_mut().finish().await?;
            let mut inserted = 0;
            for tenant in &tenants {
                owner.execute("SELECT set_config('sigil.tenant', $1, true)", &[&tenant.to_string()]).await?;
                inserted += owner
                    .execute("INSERT INTO audit_events SELECT * FROM audit_incoming WHERE tenant_id = $1 ON CONFLICT DO NOTHING", &[tenant])
                    .await?;
            }
            Ok(inserted)
        }
        .await;
        match result {
            Ok(inserted) => {
                owner.batch_execute("COMMIT").await?;
                Ok(inserted)
            }
            Err(e) => {
                let _ = owner.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }
}

fn copy_text(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}
