//! Shipping the journal into Postgres, the checkpoint that remembers how
//! far it went, and the heads the node signs over what it shipped.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::segments::{sealed_path, Place, Segments};
use super::{read_journal_bounded, AuditEntry, AuditJournal, HeadSigner, JournalStats, SignedHead};
use crate::{Directory, Error};

/// Ships the journal at `path` into Postgres, from its checkpoint (records
/// already there are skipped by their key), in batches of `batch` records.
/// Returns how many were new.
///
/// # Errors
/// [`Error::Journal`] or [`Error::Postgres`]; a failed batch is rolled back
/// whole and shipped again next time.
pub async fn ship(directory: &Directory, path: &Path, batch: usize) -> Result<u64, Error> {
    Shipper::open(path).ship(directory, batch).await
}

/// How far the journal is in Postgres: the byte offset after the last
/// shipped record, the records up to it, each tenant's chain head at that
/// point, and the newest head the node signed per tenant. Kept beside the
/// journal (`<journal>.checkpoint`, 0600), replaced atomically after each
/// batch commits. As a record of what was shipped it only saves work: a
/// missing, stale or damaged one means reading from the start, and
/// records shipped twice are skipped by their key. Its signed heads are
/// the node's anchor for `sigil audit verify`: back them up with the
/// journal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Bytes of the journal shipped (a record boundary).
    pub offset: u64,
    /// Each tenant's (seq, hash) after those bytes.
    pub heads: HashMap<i64, (i64, String)>,
    /// Records in those bytes (from 0 when the checkpoint predates the
    /// count: it is then counted from where this one started).
    #[serde(default)]
    pub records: u64,
    /// The newest signed head of each tenant.
    #[serde(default)]
    pub signed: HashMap<i64, SignedHead>,
}

impl Checkpoint {
    fn path(journal: &Path) -> PathBuf {
        let mut name = journal.as_os_str().to_owned();
        name.push(".checkpoint");
        PathBuf::from(name)
    }

    /// The checkpoint of `journal`, if there is one that fits it: its
    /// offset within the journal's segments kept, at a segment's start,
    /// just after a JSON line's newline, at the end, at the start of a
    /// binary record or of the zeros after them.
    pub fn load(journal: &Path) -> Option<Checkpoint> {
        let text = std::fs::read(Checkpoint::path(journal)).ok()?;
        let checkpoint: Checkpoint = serde_json::from_slice(&text).ok()?;
        let segments = Segments::of(journal).ok()?;
        let (file, local) = match segments.locate(checkpoint.offset) {
            Place::Dropped { .. } => return None,
            Place::Sealed(segment) => (
                sealed_path(journal, segment.base),
                checkpoint.offset - segment.base,
            ),
            Place::Live { base } => (journal.to_owned(), checkpoint.offset - base),
        };
        if local == 0 {
            return Some(checkpoint);
        }
        let file = File::open(file).ok()?;
        if file.metadata().ok()?.len() < local {
            return None;
        }
        let mut probe = [0u8; 1 + super::record::HEADER];
        let mut read = 0;
        while read < probe.len() {
            match file
                .read_at(&mut probe[read..], local - 1 + read as u64)
                .ok()?
            {
                0 => break,
                n => read += n,
            }
        }
        // Zeros: the journal's preallocated tail.
        let fits = probe[0] == b'\n'
            || read == 1
            || super::record::body_len(&probe[1..read]).is_some()
            || (read == probe.len() && probe[1..].iter().all(|&b| b == 0));
        fits.then_some(checkpoint)
    }

    fn save(&self, journal: &Path) -> Result<(), Error> {
        let path = Checkpoint::path(journal);
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let body = serde_json::to_vec(self).map_err(|e| Error::Journal(e.to_string()))?;
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)?;
            file.write_all(&body)?;
            file.sync_data()?;
            std::fs::rename(&temporary, &path)
        };
        write().map_err(|e| Error::Journal(format!("{}: {e}", path.display())))
    }
}

/// Ships a journal into Postgres from where it last stopped (its
/// [`Checkpoint`]), in batches, saving the checkpoint after each; signs
/// the heads of what it shipped ([`Shipper::sign_heads`]) and publishes
/// them ([`Shipper::publish_heads`]).
#[derive(Debug)]
pub struct Shipper {
    path: PathBuf,
    state: Checkpoint,
    bound: Option<Arc<JournalStats>>,
    /// Signed heads not yet in Postgres (all of them after a start).
    unpublished: Vec<SignedHead>,
}

impl Shipper {
    /// A shipper for the journal at `path`, resuming at its checkpoint.
    pub fn open(path: &Path) -> Shipper {
        let state = Checkpoint::load(path).unwrap_or_default();
        let mut unpublished: Vec<SignedHead> = state.signed.values().cloned().collect();
        unpublished.sort_by_key(|h| h.tenant_id);
        Shipper {
            path: path.to_owned(),
            state,
            bound: None,
            unpublished,
        }
    }

    /// Ships only what `journal` has synced (while it writes: bytes of a
    /// batch whose sync fails are cut off the file again), and keeps the
    /// journal's shipping counters ([`JournalStats::unshipped`],
    /// [`JournalStats::ship_lag`]).
    pub fn bounded_by(mut self, journal: &AuditJournal) -> Shipper {
        let stats = Arc::clone(journal.stats());
        stats.shipped.store(self.state.records, Ordering::Release);
        self.bound = Some(stats);
        self
    }

    /// Bytes of the journal known to be in Postgres.
    pub fn offset(&self) -> u64 {
        self.state.offset
    }

    /// The newest signed head of each tenant.
    pub fn signed_heads(&self) -> &HashMap<i64, SignedHead> {
        &self.state.signed
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
            let read = read_journal_bounded(&self.path, self.state.offset, batch, limit);
            let (entries, end) = match read {
                Ok(read) => read,
                Err(e) => {
                    self.lagging(None);
                    return Err(e);
                }
            };
            if entries.is_empty() {
                self.caught_up();
                return Ok(inserted);
            }
            match directory.insert_audit(&entries).await {
                Ok(n) => inserted += n,
                Err(e) => {
                    self.lagging(entries.first());
                    return Err(e);
                }
            }
            for entry in entries.iter() {
                self.state
                    .heads
                    .insert(entry.tenant_id, (entry.seq, entry.hash.clone()));
            }
            self.state.offset = end;
            self.state.records += entries.len() as u64;
            self.state.save(&self.path)?;
            if let Some(stats) = &self.bound {
                stats.shipped.store(self.state.records, Ordering::Release);
            }
            if entries.len() < batch {
                self.caught_up();
                return Ok(inserted);
            }
        }
    }

    fn caught_up(&self) {
        if let Some(stats) = &self.bound {
            stats.unshipped_since_ms.store(0, Ordering::Release);
        }
    }

    /// Shipping stopped at `oldest` (unknown: now, unless already lagging).
    fn lagging(&self, oldest: Option<&AuditEntry>) {
        let Some(stats) = &self.bound else {
            return;
        };
        let since = match oldest {
            Some(entry) => u64::try_from(entry.at_ms).unwrap_or(0).max(1),
            None => match stats.unshipped_since_ms.load(Ordering::Acquire) {
                0 => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(1)),
                since => since,
            },
        };
        stats.unshipped_since_ms.store(since, Ordering::Release);
    }

    /// Signs, as `node` with `signer` at `now_ms`, every shipped chain head
    /// that moved since its last signed head, keeps the new heads in the
    /// checkpoint and queues them for [`Shipper::publish_heads`]. Returns
    /// how many it signed.
    ///
    /// # Errors
    /// The signer's error, or [`Error::Journal`] when the checkpoint
    /// cannot be saved.
    pub fn sign_heads(
        &mut self,
        signer: &dyn HeadSigner,
        node: &str,
        now_ms: u64,
    ) -> Result<usize, Error> {
        let mut tenants: Vec<i64> = self
            .state
            .heads
            .iter()
            .filter(|(tenant, (seq, _))| {
                self.state.signed.get(tenant).is_none_or(|h| h.seq != *seq)
            })
            .map(|(tenant, _)| *tenant)
            .collect();
        tenants.sort_unstable();
        let mut signed = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            let Some((seq, hash)) = self.state.heads.get(&tenant) else {
                continue;
            };
            signed.push(SignedHead::sign(signer, tenant, node, *seq, hash, now_ms)?);
        }
        if signed.is_empty() {
            return Ok(0);
        }
        for head in &signed {
            self.state.signed.insert(head.tenant_id, head.clone());
        }
        self.state.save(&self.path)?;
        let count = signed.len();
        self.unpublished
            .retain(|h| !signed.iter().any(|s| s.tenant_id == h.tenant_id));
        self.unpublished.extend(signed);
        Ok(count)
    }

    /// Stores the signed heads not yet in Postgres. Returns how many.
    ///
    /// # Errors
    /// [`Error::Postgres`]; they are stored next time.
    pub async fn publish_heads(&mut self, directory: &Directory) -> Result<usize, Error> {
        if self.unpublished.is_empty() {
            return Ok(0);
        }
        directory.store_heads(&self.unpublished).await?;
        let count = self.unpublished.len();
        self.unpublished.clear();
        Ok(count)
    }

    /// Drops the journal's sealed segments whose every record is shipped
    /// and covered by a signed head stored in Postgres: removes them, or
    /// moves them into `archive` when given. Drops nothing while a shipped
    /// head is unsigned or a signed one unpublished. Returns how many it
    /// dropped.
    ///
    /// # Errors
    /// [`Error::Journal`] when a segment cannot be removed or moved; it
    /// stays for the next call.
    pub fn drop_shipped_segments(&self, archive: Option<&Path>) -> Result<usize, Error> {
        let covered =
            self.state.heads.iter().all(|(tenant, (seq, _))| {
                self.state.signed.get(tenant).is_some_and(|h| h.seq == *seq)
            });
        if !covered || !self.unpublished.is_empty() {
            return Ok(0);
        }
        super::segments::drop_sealed(&self.path, self.state.offset, archive)
    }
}

impl Directory {
    /// Inserts journal entries, in one transaction, each tenant's under its
    /// scope, as the run-time role; existing `(tenant, node, seq)` are
    /// skipped. Returns how many were new.
    ///
    /// # Errors
    /// [`Error::Postgres`] (nothing of the batch is written), or
    /// [`Error::Unreachable`] while reconnecting.
    pub async fn insert_audit(&self, entries: &[AuditEntry]) -> Result<u64, Error> {
        let mut by_tenant: Vec<(i64, Vec<&AuditEntry>)> = Vec::new();
        for entry in entries {
            match by_tenant.iter_mut().find(|(t, _)| *t == entry.tenant_id) {
                Some((_, list)) => list.push(entry),
                None => by_tenant.push((entry.tenant_id, vec![entry])),
            }
        }
        let mut guard = self.pooled().await?;
        // Marked first: if neither COMMIT nor ROLLBACK gets through, the
        // slot's next user rolls back.
        guard.open_transaction = true;
        let client = &guard.client;
        client.batch_execute("BEGIN").await?;
        let result: Result<u64, Error> = async {
            let mut inserted = 0;
            for (tenant, list) in &by_tenant {
                client
                    .execute(
                        "SELECT set_config('sigil.tenant', $1, true)",
                        &[&tenant.to_string()],
                    )
                    .await?;
                let tenants: Vec<i64> = list.iter().map(|e| e.tenant_id).collect();
                let nodes: Vec<&str> = list.iter().map(|e| e.node.as_str()).collect();
                let seqs: Vec<i64> = list.iter().map(|e| e.seq).collect();
                let ats: Vec<i64> = list.iter().map(|e| e.at_ms).collect();
                let kinds: Vec<&str> = list.iter().map(|e| e.kind.as_str()).collect();
                let details: Vec<&serde_json::Value> = list.iter().map(|e| &e.detail).collect();
                let prevs: Vec<&str> = list.iter().map(|e| e.prev_hash.as_str()).collect();
                let hashes: Vec<&str> = list.iter().map(|e| e.hash.as_str()).collect();
                let formats: Vec<i16> = list.iter().map(|e| e.format).collect();
                inserted += client
                    .execute(
                        "INSERT INTO audit_events (tenant_id, node, seq, at_ms, kind, detail, prev_hash, hash, format)
                         SELECT t, n, s, a, k, d, decode(p, 'hex'), decode(h, 'hex'), f
                           FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::jsonb[], $7::text[], $8::text[], $9::smallint[])
                             AS u(t, n, s, a, k, d, p, h, f)
                         ON CONFLICT DO NOTHING",
                        &[&tenants, &nodes, &seqs, &ats, &kinds, &details, &prevs, &hashes, &formats],
                    )
                    .await?;
            }
            Ok(inserted)
        }
        .await;
        match result {
            Ok(inserted) => {
                client.batch_execute("COMMIT").await?;
                guard.open_transaction = false;
                Ok(inserted)
            }
            Err(e) => {
                if client.batch_execute("ROLLBACK").await.is_ok() {
                    guard.open_transaction = false;
                }
                Err(e)
            }
        }
    }

    /// Stores signed heads (one row per tenant and node), never moving a
    /// stored head backwards.
    ///
    /// # Errors
    /// [`Error::Postgres`], or [`Error::Unreachable`] while reconnecting.
    pub async fn store_heads(&self, heads: &[SignedHead]) -> Result<(), Error> {
        let mut guard = self.pooled().await?;
        // Marked first: if neither COMMIT nor ROLLBACK gets through, the
        // slot's next user rolls back.
        guard.open_transaction = true;
        let client = &guard.client;
        client.batch_execute("BEGIN").await?;
        let result: Result<(), Error> = async {
            for head in heads {
                client
                    .execute(
                        "SELECT set_config('sigil.tenant', $1, true)",
                        &[&head.tenant_id.to_string()],
                    )
                    .await?;
                let at = i64::try_from(head.at_ms).unwrap_or(i64::MAX);
                client
                    .execute(
                        "INSERT INTO audit_heads (tenant_id, node, seq, hash, at_ms, signature, certificate)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)
                         ON CONFLICT (tenant_id, node) DO UPDATE
                           SET seq = excluded.seq, hash = excluded.hash, at_ms = excluded.at_ms,
                               signature = excluded.signature, certificate = excluded.certificate
                           WHERE audit_heads.seq <= excluded.seq",
                        &[&head.tenant_id, &head.node, &head.seq, &head.hash, &at, &head.signature, &head.certificate],
                    )
                    .await?;
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                client.batch_execute("COMMIT").await?;
                guard.open_transaction = false;
                Ok(())
            }
            Err(e) => {
                if client.batch_execute("ROLLBACK").await.is_ok() {
                    guard.open_transaction = false;
                }
                Err(e)
            }
        }
    }
}
