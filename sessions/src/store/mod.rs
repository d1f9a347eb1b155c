//! The node's session state on disk, so that a restart (one node, or the
//! whole cluster at once) signs nobody out: a snapshot plus append-only
//! logs of created sessions, sessions received from peers, and decrees
//! (revocations and memberships), group-committed by one writer thread.
//!
//! What it does not do: touches are not logged (last-seen times reach the
//! disk with the next snapshot, taken periodically and at a graceful stop;
//! after a crash a session's idle clock restarts from its last snapshot).
//!
//! Layout of the directory: `snapshot` (everything up to log `N`, written
//! to `snapshot.tmp` and renamed), and `log-{N+1}`, `log-{N+2}`... Every
//! entry is `[length u32][crc32 u32][kind u8][payload]`; a torn or corrupt
//! tail of the last log (a crash mid-write, never acknowledged) is cut off
//! at the next open. Files are 0600.
//!
//! Threads: `append_*` from any thread; one writer thread owns the log
//! file; [`SessionStore::synced`] waits (async) for the group commit.

mod codec;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::replication::{Decree, DecreeId};
use crate::table::{SessionRecord, SessionTable};

pub use codec::{decode_record, encode_record};

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing the disk failed.
    #[error("session store: {0}")]
    Io(String),
    /// The writer thread stopped.
    #[error("session store: closed")]
    Closed,
}

fn io(context: &str, error: &std::io::Error) -> StoreError {
    StoreError::Io(format!("{context}: {error}"))
}

const KIND_SNAPSHOT_HEADER: u8 = 0;
const KIND_SESSION: u8 = 1;
const KIND_DECREE: u8 = 2;
/// Entries larger than this are corrupt.
const MAX_ENTRY: usize = 16 << 20;

/// What [`SessionStore::open`] found on disk.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// Sessions merged into the table (expired ones skipped).
    pub sessions: usize,
    /// Decrees to hand to the replication state machine.
    pub decrees: Vec<Decree>,
    /// Bytes read.
    pub bytes: u64,
    /// Bytes of a torn or corrupt tail that were cut off.
    pub cut: u64,
    /// How long reading took.
    pub elapsed: Duration,
}

/// A position in the store's appends: [`SessionStore::synced`] waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

enum Chunk {
    Bytes(Vec<u8>),
    /// Close the current log (synced) and open `log-{n}`.
    Rotate(u64),
}

struct Queue {
    chunks: Vec<Chunk>,
    /// The last ticket handed out.
    appended: u64,
    closing: bool,
}

/// Progress the writer publishes.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// Every ticket up to this is processed (synced, or failed).
    done: u64,
    /// Tickets in `(failed_after, failed_upto]` failed most recently.
    failed_after: u64,
    failed_upto: u64,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    progress: tokio::sync::watch::Sender<Progress>,
    /// Bytes in the logs since the last snapshot.
    log_bytes: std::sync::atomic::AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The durable session state of one node.
pub struct SessionStore {
    dir: PathBuf,
    shared: Arc<Shared>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The number of the log being written.
    current_log: Mutex<u64>,
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn log_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("log-{n:08}"))
}

fn create_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

fn entry(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(payload);
    out.extend_from_slice(&((payload.len() + 1) as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
}

/// Reads entries from `reader` until the end or the first torn or corrupt
/// one; returns the bytes of good entries.
fn read_entries(mut reader: impl Read, mut each: impl FnMut(u8, &[u8])) -> std::io::Result<u64> {
    let mut good = 0u64;
    let mut header = [0u8; 8];
    let mut body = Vec::new();
    loop {
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(good),
            Err(e) => return Err(e),
        }
        let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if length == 0 || length > MAX_ENTRY {
            return Ok(good);
        }
        body.resize(length, 0);
        match reader.read_exact(&mut body) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(good),
            Err(e) => return Err(e),
        }
        if crc32fast::hash(&body) != crc {
            return Ok(good);
        }
        each(body[0], &body[1..]);
        good += 8 + length as u64;
    }
}

fn logs_in(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut logs: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("log-")?.parse().ok())
        .collect();
    logs.sort_unstable();
    Ok(logs)
}

impl SessionStore {
    /// Opens (or creates) the store in `dir` and loads it: sessions not
    /// expired at wall-clock `now_ms` are merged into `table`, decrees are
    /// returned. Appends go to a new log.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the directory cannot be read or written.
    pub fn open(
        dir: &Path,
        table: &SessionTable,
        now_ms: u64,
    ) -> Result<(SessionStore, Recovered), StoreError> {
        let started = Instant::now();
        std::fs::create_dir_all(dir).map_err(|e| io("creating the directory", &e))?;
        restrict(dir);
        let mut recovered = Recovered::default();
        let mut decrees: HashMap<DecreeId, Decree> = HashMap::new();
        let mut covers = 0u64;
        let mut apply =
            |kind: u8, payload: &[u8], covers: &mut u64, recovered: &mut Recovered| match kind {
                KIND_SNAPSHOT_HEADER if payload.len() == 8 => {
                    let mut n = [0u8; 8];
                    n.copy_from_slice(payload);
                    *covers = u64::from_le_bytes(n);
                }
                KIND_SESSION => {
                    if let Some(record) = decode_record(payload) {
                        if record.expires_ms > now_ms {
                            table.merge(&record);
                            recovered.sessions += 1;
                        }
                    }
                }
                KIND_DECREE => {
                    if let Ok(decree) = ciborium::from_reader::<Decree, _>(payload) {
                        decrees.insert(decree.id, decree);
                    }
                }
                _ => {}
            };
        let snapshot = dir.join("snapshot");
        if let Ok(file) = File::open(&snapshot) {
            recovered.bytes += read_entries(BufReader::with_capacity(1 << 20, file), |k, p| {
                apply(k, p, &mut covers, &mut recovered)
            })
            .map_err(|e| io("reading the snapshot", &e))?;
        }
        let logs = logs_in(dir).map_err(|e| io("listing logs", &e))?;
        let mut last = covers;
        for n in logs {
            let path = log_path(dir, n);
            if n <= covers {
                // Left over from a snapshot that did not get to delete it.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let file = File::open(&path).map_err(|e| io("opening a log", &e))?;
            let size = file.metadata().map_err(|e| io("a log's size", &e))?.len();
            let good = read_entries(BufReader::with_capacity(1 << 20, file), |k, p| {
                let mut ignored = 0;
                apply(k, p, &mut ignored, &mut recovered)
            })
            .map_err(|e| io("reading a log", &e))?;
            if good < size {
                recovered.cut += size - good;
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(good).and_then(|()| f.sync_all()))
                    .map_err(|e| io("cutting a torn log", &e))?;
            }
            recovered.bytes += good;
            last = n;
        }
        recovered.decrees = decrees.into_values().collect();
        recovered.decrees.sort_by_key(|d| d.id);
        let current = last + 1;
        let file = create_private(&log_path(dir, current)).map_err(|e| io("creating a log", &e))?;
        let (progress, _) = tokio::sync::watch::channel(Progress::default());
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                chunks: Vec::new(),
                appended: 0,
                closing: false,
            }),
            wake: Condvar::new(),
            progress,
            log_bytes: std::sync::atomic::AtomicU64::new(recovered.bytes),
        });
        let writer_shared = Arc::clone(&shared);
        let writer_dir = dir.to_owned();
        let writer = std::thread::Builder::new()
            .name("sigil-sessions-disk".into())
            .spawn(move || write_loop(&writer_shared, &writer_dir, file))
            .map_err(|e| io("starting the writer", &e))?;
        recovered.elapsed = started.elapsed();
        Ok((
            SessionStore {
                dir: dir.to_owned(),
                shared,
                writer: Mutex::new(Some(writer)),
                current_log: Mutex::new(current),
            },
            recovered,
        ))
    }

    fn push(&self, chunk: Chunk) -> Result<Ticket, StoreError> {
        let mut queue = lock(&self.shared.queue);
        if queue.closing {
            return Err(StoreError::Closed);
        }
        queue.chunks.push(chunk);
        queue.appended += 1;
        let ticket = Ticket(queue.appended);
        drop(queue);
        self.shared.wake.notify_one();
        Ok(ticket)
    }

    /// Appends a session (created here, or received from a peer).
    ///
    /// # Errors
    /// [`StoreError::Closed`].
    pub fn append_session(&self, record: &SessionRecord) -> Result<Ticket, StoreError> {
        let mut payload = Vec::with_capacity(160);
        encode_record(record, &mut payload);
        let mut bytes = Vec::with_capacity(payload.len() + 9);
        entry(KIND_SESSION, &payload, &mut bytes);
        self.push(Chunk::Bytes(bytes))
    }

    /// Appends sessions in one entry each, under one ticket.
    ///
    /// # Errors
    /// [`StoreError::Closed`].
    pub fn append_sessions(&self, records: &[SessionRecord]) -> Result<Ticket, StoreError> {
        let mut bytes = Vec::with_capacity(records.len() * 170);
        let mut payload = Vec::with_capacity(160);
        for record in records {
            payload.clear();
            encode_record(record, &mut payload);
            entry(KIND_SESSION, &payload, &mut bytes);
        }
        self.push(Chunk::Bytes(bytes))
    }

    /// Appends a decree (without what a membership decree carries).
    ///
    /// # Errors
    /// [`StoreError::Io`] if it cannot be encoded, [`StoreError::Closed`].
    pub fn append_decree(&self, decree: &Decree) -> Result<Ticket, StoreError> {
        let mut payload = Vec::with_capacity(128);
        ciborium::into_writer(&decree.without_carried(), &mut payload)
            .map_err(|e| StoreError::Io(format!("encoding a decree: {e}")))?;
        let mut bytes = Vec::with_capacity(payload.len() + 9);
        entry(KIND_DECREE, &payload, &mut bytes);
        self.push(Chunk::Bytes(bytes))
    }

    /// Waits until everything up to `ticket` is on disk.
    ///
    /// # Errors
    /// [`StoreError::Io`] if the write or sync of its batch failed (the
    /// batch was cut off the log again); [`StoreError::Closed`].
    pub async fn synced(&self, ticket: Ticket) -> Result<(), StoreError> {
        let mut progress = self.shared.progress.subscribe();
        let seen = progress
            .wait_for(|p| p.done >= ticket.0)
            .await
            .map_err(|_| StoreError::Closed)?;
        outcome(*seen, ticket)
    }

    /// [`SessionStore::synced`], blocking the calling thread.
    ///
    /// # Errors
    /// As [`SessionStore::synced`].
    pub fn wait_synced(&self, ticket: Ticket) -> Result<(), StoreError> {
        let mut progress = self.shared.progress.subscribe();
        loop {
            let seen = *progress.borrow_and_update();
            if seen.done >= ticket.0 {
                return outcome(seen, ticket);
            }
            // The writer publishes every batch; a short sleep bounds the wait
            // for a blocking caller without a runtime.
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Bytes in the logs since the last snapshot.
    pub fn log_bytes(&self) -> u64 {
        self.shared
            .log_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Starts a snapshot: later appends go to a new log. Capture the state
    /// (table and decrees) after this returns, then hand it to
    /// [`SessionStore::write_snapshot`] with the returned cut.
    ///
    /// # Errors
    /// [`StoreError::Closed`], or the sync of the closed log failed.
    pub fn begin_snapshot(&self) -> Result<SnapshotCut, StoreError> {
        let mut current = lock(&self.current_log);
        let covers = *current;
        *current += 1;
        let ticket = self.push(Chunk::Rotate(*current))?;
        drop(current);
        self.wait_synced(ticket)?;
        Ok(SnapshotCut { covers })
    }

    /// Writes the snapshot of everything up to the cut (blocking: run it
    /// off the runtime's threads), then deletes the logs it covers.
    ///
    /// # Errors
    /// [`StoreError::Io`]; the logs stay, so nothing is lost.
    pub fn write_snapshot(
        &self,
        cut: SnapshotCut,
        records: impl IntoIterator<Item = SessionRecord>,
        decrees: &[Decree],
    ) -> Result<SnapshotStats, StoreError> {
        let started = Instant::now();
        let tmp = self.dir.join("snapshot.tmp");
        let _ = std::fs::remove_file(&tmp);
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io("creating the snapshot", &e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut bytes = Vec::with_capacity(1 << 16);
        let mut payload = Vec::with_capacity(256);
        entry(KIND_SNAPSHOT_HEADER, &cut.covers.to_le_bytes(), &mut bytes);
        let mut stats = SnapshotStats::default();
        for decree in decrees {
            payload.clear();
            ciborium::into_writer(&decree.without_carried(), &mut payload)
                .map_err(|e| StoreError::Io(format!("encoding a decree: {e}")))?;
            entry(KIND_DECREE, &payload, &mut bytes);
            stats.decrees += 1;
        }
        for record in records {
            payload.clear();
            encode_record(&record, &mut payload);
            entry(KIND_SESSION, &payload, &mut bytes);
            stats.sessions += 1;
            if bytes.len() >= 1 << 16 {
                out.write_all(&bytes)
                    .map_err(|e| io("writing the snapshot", &e))?;
                stats.bytes += bytes.len() as u64;
                bytes.clear();
            }
        }
        out.write_all(&bytes)
            .map_err(|e| io("writing the snapshot", &e))?;
        stats.bytes += bytes.len() as u64;
        let file = out
            .into_inner()
            .map_err(|e| io("writing the snapshot", e.error()))?;
        file.sync_all()
            .map_err(|e| io("syncing the snapshot", &e))?;
        std::fs::rename(&tmp, self.dir.join("snapshot"))
            .map_err(|e| io("renaming the snapshot", &e))?;
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        for n in logs_in(&self.dir).map_err(|e| io("listing logs", &e))? {
            if n <= cut.covers {
                let _ = std::fs::remove_file(log_path(&self.dir, n));
            }
        }
        self.shared
            .log_bytes
            .store(0, std::sync::atomic::Ordering::Relaxed);
        stats.elapsed = started.elapsed();
        Ok(stats)
    }

    /// Stops the writer after what is queued is on disk.
    pub fn close(&self) {
        lock(&self.shared.queue).closing = true;
        self.shared.wake.notify_one();
        if let Some(writer) = lock(&self.writer).take() {
            let _ = writer.join();
        }
    }
}

impl Drop for SessionStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn outcome(progress: Progress, ticket: Ticket) -> Result<(), StoreError> {
    if ticket.0 > progress.failed_after && ticket.0 <= progress.failed_upto {
        Err(StoreError::Io(
            "a write or sync of the session log failed".into(),
        ))
    } else {
        Ok(())
    }
}

/// Where a snapshot starts (see [`SessionStore::begin_snapshot`]).
#[derive(Debug, Clone, Copy)]
pub struct SnapshotCut {
    covers: u64,
}

/// What a snapshot wrote.
#[derive(Debug, Clone, Copy, Default)]
pub struct SnapshotStats {
    /// Sessions.
    pub sessions: usize,
    /// Decrees.
    pub decrees: usize,
    /// Bytes.
    pub bytes: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// Makes the directory readable by this account only (best effort: a
/// directory made by the operator with other modes is left as it is when
/// it is not ours).
fn restrict(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}

/// The writer thread: takes what is queued, writes it, syncs once, and
/// publishes progress; a failed batch is cut off the log again.
fn write_loop(shared: &Shared, dir: &Path, mut file: File) {
    let mut length = file.metadata().map(|m| m.len()).unwrap_or(0);
    loop {
        let (chunks, upto, closing) = {
            let mut queue = lock(&shared.queue);
            while queue.chunks.is_empty() && !queue.closing {
                queue = shared
                    .wake
                    .wait(queue)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            (
                std::mem::take(&mut queue.chunks),
                queue.appended,
                queue.closing,
            )
        };
        let mut failed = false;
        let mut written = 0u64;
        for chunk in chunks {
            match chunk {
                Chunk::Bytes(bytes) => {
                    if !failed {
                        failed = file.write_all(&bytes).is_err();
                        written += bytes.len() as u64;
                    }
                }
                Chunk::Rotate(n) => {
                    failed = failed || file.sync_data().is_err();
                    if failed {
                        let _ = file.set_len(length);
                    } else {
                        length += written;
                    }
                    written = 0;
                    match create_private(&log_path(dir, n)) {
                        Ok(next) => {
                            file = next;
                            length = 0;
                        }
                        Err(_) => failed = true,
                    }
                }
            }
        }
        if !failed {
            failed = file.sync_data().is_err();
        }
        if failed {
            // Nothing of the batch counts: cut it off so a later batch
            // does not land after a hole.
            let _ = file.set_len(length);
        } else {
            length += written;
            shared
                .log_bytes
                .fetch_add(written, std::sync::atomic::Ordering::Relaxed);
        }
        shared.progress.send_modify(|p| {
            if failed {
                p.failed_after = p.done;
                p.failed_upto = upto;
            }
            p.done = upto;
        });
        if closing {
            let _ = file.sync_all();
            return;
        }
    }
}

#[cfg(test)]
mod tests;
