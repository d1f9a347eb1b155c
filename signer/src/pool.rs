//! The batched signer pool: signing threads fed by one bounded crossbeam
//! queue.
//!
//! Threads: the pool owns `workers` OS threads named `sigil-signer-N`. Each
//! blocks on the queue, then takes its fair share of what waits (at most
//! `max_batch`) without blocking, signs them one after another and answers each through a oneshot
//! channel that async code awaits (any executor: tokio's oneshot needs no
//! runtime). A full queue hands the job straight back ([`Rejected`]) so the
//! caller can answer `overloaded` at once instead of waiting.
//!
//! [`Signer`] chooses between this pool and signing inline on the calling
//! thread; see `docs/BENCHMARKING.md` for why inline is the default on a
//! machine where every core already runs a front-door worker.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

use crate::{Error, SigningKey};

/// Tuning of a [`SignerPool`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Signing threads. Default: 1.
    pub workers: usize,
    /// Jobs that may wait in the queue; past this, [`SignerPool::try_sign`]
    /// refuses. Default: 4096.
    pub queue_capacity: usize,
    /// Jobs a worker takes per wake-up. Default: 64.
    pub max_batch: usize,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig {
            workers: 1,
            queue_capacity: 4096,
            max_batch: 64,
        }
    }
}

struct Job {
    work: Work,
    /// Not started after this instant.
    deadline: Option<Instant>,
}

enum Work {
    /// Sign `message` with `key`.
    Sign {
        key: Arc<dyn SigningKey>,
        message: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, Error>>,
    },
    /// Work that signs on its own (e.g. a SAML document with two
    /// signatures, each over the result of the last); it answers its
    /// caller itself, and is dropped unrun past its deadline.
    Run(Box<dyn FnOnce() + Send>),
}

/// Why the pool refused a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The queue is full.
    Overloaded,
    /// The pool is shutting down.
    Closed,
}

/// A job the pool refused, handed back whole.
#[derive(Debug)]
pub struct Rejected {
    /// Why.
    pub reason: RejectReason,
    /// The key that was to sign.
    pub key: Arc<dyn SigningKey>,
    /// The message that was to be signed.
    pub message: Vec<u8>,
}

impl From<Rejected> for Error {
    fn from(rejected: Rejected) -> Error {
        match rejected.reason {
            RejectReason::Overloaded => Error::Overloaded,
            RejectReason::Closed => Error::PoolClosed,
        }
    }
}

/// Counters of a pool, readable from any thread.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Signatures made (successful or not).
    pub signed: AtomicU64,
    /// Wake-ups (batches drained).
    pub batches: AtomicU64,
    /// Signatures that failed in the backend.
    pub failures: AtomicU64,
}

/// Signing threads behind a bounded queue. Dropping the pool lets the
/// workers finish what is queued, then joins them.
pub struct SignerPool {
    sender: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    stats: Arc<PoolStats>,
    capacity: usize,
}

impl std::fmt::Debug for SignerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerPool")
            .field("workers", &self.workers.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl SignerPool {
    /// Starts the pool's threads.
    ///
    /// # Errors
    /// [`Error::InvalidPolicy`] for zero workers, capacity or batch;
    /// [`Error::Backend`] if a thread cannot be spawned.
    pub fn start(config: PoolConfig) -> Result<SignerPool, Error> {
        if config.workers == 0 || config.queue_capacity == 0 || config.max_batch == 0 {
            return Err(Error::InvalidPolicy("signer pool sizes must be at least 1"));
        }
        let (sender, receiver) = crossbeam_channel::bounded::<Job>(config.queue_capacity);
        let stats = Arc::new(PoolStats::default());
        let mut workers = Vec::with_capacity(config.workers);
        for n in 0..config.workers {
            let receiver = receiver.clone();
            let stats = Arc::clone(&stats);
            let max_batch = config.max_batch;
            let worker_count = config.workers;
            let handle = std::thread::Builder::new()
                .name(format!("sigil-signer-{n}"))
                .spawn(move || run_worker(&receiver, &stats, max_batch, worker_count))
                .map_err(|e| Error::Backend {
                    backend: "signer-pool",
                    message: format!("cannot spawn a signing thread: {e}"),
                })?;
            workers.push(handle);
        }
        Ok(SignerPool {
            sender: Some(sender),
            workers,
            stats,
            capacity: config.queue_capacity,
        })
    }

    /// Queues `message` to be signed by `key`.
    ///
    /// # Errors
    /// The job comes back in [`Rejected`] at once when the queue is full or
    /// the pool is closed; this never blocks.
    pub fn try_sign(
        &self,
        key: Arc<dyn SigningKey>,
        message: Vec<u8>,
    ) -> Result<PendingSignature, Rejected> {
        self.try_sign_by(key, message, None)
    }

    /// As [`SignerPool::try_sign`], but a job still queued at `deadline`
    /// is not signed: it answers [`Error::DeadlineExceeded`].
    ///
    /// # Errors
    /// As [`SignerPool::try_sign`].
    pub fn try_sign_by(
        &self,
        key: Arc<dyn SigningKey>,
        message: Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<PendingSignature, Rejected> {
        let (reply, receiver) = oneshot::channel();
        let returned = Arc::clone(&key);
        let job = Job {
            work: Work::Sign {
                key,
                message,
                reply,
            },
            deadline,
        };
        match self.submit(job) {
            Ok(()) => Ok(PendingSignature(receiver)),
            Err((reason, job)) => Err(match job.work {
                Work::Sign { key, message, .. } => Rejected {
                    reason,
                    key,
                    message,
                },
                // Not what was sent; kept total without a panic.
                Work::Run(_) => Rejected {
                    reason,
                    key: returned,
                    message: Vec::new(),
                },
            }),
        }
    }

    /// Runs `work` (which signs, e.g. through a slow key) on a pool thread
    /// unless it is still queued at `deadline`. The receiver gets its
    /// result; it errs when the work was dropped unrun (deadline, or the
    /// pool closing).
    ///
    /// # Errors
    /// [`RejectReason`] at once when the queue is full or the pool closed.
    pub fn try_run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
        deadline: Option<Instant>,
    ) -> Result<oneshot::Receiver<T>, RejectReason> {
        let (reply, receiver) = oneshot::channel();
        let job = Job {
            work: Work::Run(Box::new(move || {
                let _ = reply.send(work());
            })),
            deadline,
        };
        self.submit(job)
            .map(|()| receiver)
            .map_err(|(reason, _)| reason)
    }

    fn submit(&self, job: Job) -> Result<(), (RejectReason, Job)> {
        let Some(sender) = &self.sender else {
            return Err((RejectReason::Closed, job));
        };
        sender.try_send(job).map_err(|e| match e {
            TrySendError::Full(job) => (RejectReason::Overloaded, job),
            TrySendError::Disconnected(job) => (RejectReason::Closed, job),
        })
    }

    /// Jobs waiting in the queue now.
    pub fn queue_len(&self) -> usize {
        self.sender.as_ref().map_or(0, Sender::len)
    }

    /// The queue's capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of signing threads.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The pool's counters. A batch is counted after its answers are sent;
    /// once the pool is dropped (workers joined) the counts are final.
    pub fn stats(&self) -> Arc<PoolStats> {
        Arc::clone(&self.stats)
    }
}

impl Drop for SignerPool {
    fn drop(&mut self) {
        self.sender = None;
        for worker in self.workers.drain(..) {
            // A worker that panicked has already answered its jobs with a
            // closed channel; nothing more to do here.
            let _ = worker.join();
        }
    }
}

fn run_worker(receiver: &Receiver<Job>, stats: &PoolStats, max_batch: usize, workers: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    while let Ok(first) = receiver.recv() {
        batch.push(first);
        // Take a fair share of what waits, not everything up to the batch
        // size: with slow keys (RSA, an HSM) a greedy worker would sit on
        // jobs while the others idle.
        let share = (receiver.len() / workers + 1).min(max_batch);
        while batch.len() < share {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Counters are shared by every worker: touch them once per batch,
        // not once per signature, so workers do not fight over the line.
        let (signed, mut failures) = (batch.len() as u64, 0u64);
        for job in batch.drain(..) {
            let late = job.deadline.is_some_and(|d| Instant::now() >= d);
            match job.work {
                Work::Sign {
                    key,
                    message,
                    reply,
                } => {
                    let result = if late {
                        Err(Error::DeadlineExceeded)
                    } else {
                        key.sign(&message)
                    };
                    failures += u64::from(result.is_err());
                    // The caller may have gone away; its answer is simply dropped.
                    let _ = reply.send(result);
                }
                // Dropped unrun, its caller sees the channel close.
                Work::Run(_) if late => failures += 1,
                Work::Run(work) => work(),
            }
        }
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.signed.fetch_add(signed, Ordering::Relaxed);
        if failures > 0 {
            stats.failures.fetch_add(failures, Ordering::Relaxed);
        }
    }
}

/// A signature being made by the pool. Await it, or call
/// [`PendingSignature::wait`] from a plain thread.
#[derive(Debug)]
pub struct PendingSignature(oneshot::Receiver<Result<Vec<u8>, Error>>);

impl PendingSignature {
    /// Blocks the calling thread until the signature is ready. Must not be
    /// called from inside an async runtime.
    ///
    /// # Errors
    /// The signing error, or [`Error::PoolClosed`] if the worker went away.
    pub fn wait(self) -> Result<Vec<u8>, Error> {
        self.0.blocking_recv().unwrap_or(Err(Error::PoolClosed))
    }
}

impl Future for PendingSignature {
    type Output = Result<Vec<u8>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|received| received.unwrap_or(Err(Error::PoolClosed)))
    }
}

/// Where signatures are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SigningMode {
    /// On the thread that built the token (the default: see
    /// `docs/BENCHMARKING.md`, "inline or pool").
    #[default]
    Inline,
    /// Handed to a [`SignerPool`].
    Pool,
}

/// Signs either inline or through a pool, as configured.
#[derive(Debug)]
pub enum Signer {
    /// Sign on the calling thread.
    Inline,
    /// Hand off to the pool.
    Pool(SignerPool),
}

impl Signer {
    /// A signer in `mode`; `config` sizes the pool when there is one.
    ///
    /// # Errors
    /// As [`SignerPool::start`].
    pub fn new(mode: SigningMode, config: PoolConfig) -> Result<Signer, Error> {
        Ok(match mode {
            SigningMode::Inline => Signer::Inline,
            SigningMode::Pool => Signer::Pool(SignerPool::start(config)?),
        })
    }

    /// Which mode this signer runs in.
    pub fn mode(&self) -> SigningMode {
        match self {
            Signer::Inline => SigningMode::Inline,
            Signer::Pool(_) => SigningMode::Pool,
        }
    }

    /// Signs `message` with `key`.
    ///
    /// # Errors
    /// [`Error::Overloaded`] at once when the pool's queue is full;
    /// otherwise the key's signing error.
    pub async fn sign(&self, key: &Arc<dyn SigningKey>, message: &[u8]) -> Result<Vec<u8>, Error> {
        match self {
            Signer::Inline => key.sign(message),
            Signer::Pool(pool) => pool.try_sign(Arc::clone(key), message.to_vec())?.await,
        }
    }
}
