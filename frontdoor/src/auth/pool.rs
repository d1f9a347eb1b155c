//! The hashing pool: password hashing and verification run here, on
//! threads of their own, never on a QUIC worker. Its queue is bounded: a
//! job that finds it full is handed back at once ([`AuthError::Overloaded`],
//! answered `overloaded`), so a credential-stuffing flood costs at most
//! `threads` cores and never queues without bound.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};

use super::AuthError;

type Job = Box<dyn FnOnce() + Send>;

/// Size of the pool (docs/config.md, `[auth]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSize {
    /// Threads hashing (default 1: half the 2-core development machine
    /// stays with signing even under a flood).
    pub threads: usize,
    /// Jobs waiting beyond those running; one more is refused at once.
    pub queue: usize,
    /// The threads' nice value (0: the workers'; up to 19): above 0 the
    /// kernel gives the cores to the QUIC workers first when both want
    /// them, so a flood hashes on what signing leaves idle.
    pub nice: i32,
}

impl Default for PoolSize {
    fn default() -> PoolSize {
        PoolSize {
            threads: 1,
            queue: 64,
            nice: 0,
        }
    }
}

/// Counters of the pool (for metrics and tests).
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Jobs run.
    pub done: AtomicU64,
    /// Jobs refused because the queue was full.
    pub refused: AtomicU64,
}

/// The pool. Dropping it lets its threads finish the queue and end.
#[derive(Debug)]
pub struct HashPool {
    jobs: Sender<Job>,
    stats: Arc<PoolStats>,
    size: PoolSize,
    /// Sign-ins admitted and not yet hashed ([`HashPool::admit`]).
    admitted: Arc<AtomicUsize>,
}

/// A sign-in's place in the pool, taken before its directory reads and
/// held until its hash is done ([`HashPool::admit`]); dropping it frees it.
#[derive(Debug)]
pub struct Admission {
    admitted: Arc<AtomicUsize>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashPool {
    /// Starts `size.threads` threads (at least one) named `sigil-hash-N`,
    /// each at nice `size.nice`.
    ///
    /// # Errors
    /// When a thread cannot start.
    pub fn start(size: PoolSize) -> std::io::Result<HashPool> {
        let (jobs, queue) = crossbeam_channel::bounded::<Job>(size.queue.max(1));
        let stats = Arc::new(PoolStats::default());
        for n in 0..size.threads.max(1) {
            let queue = queue.clone();
            let stats = Arc::clone(&stats);
            std::thread::Builder::new()
                .name(format!("sigil-hash-{n}"))
                .spawn(move || {
                    if size.nice != 0 {
                        // Linux keeps a nice value per thread: `None` (0)
                        // is the calling thread, not the whole process.
                        if let Err(e) = rustix::process::setpriority_process(None, size.nice) {
                            tracing::warn!("hashing thread nice {}: {e}", size.nice);
                        }
                    }
                    for job in queue {
                        job();
                        stats.done.fetch_add(1, Ordering::Relaxed);
                    }
                })?;
        }
        Ok(HashPool {
            jobs,
            stats,
            size,
            admitted: Arc::default(),
        })
    }

    /// Admits one sign-in, before it reads the directory: at most
    /// `threads + queue` are admitted at once, so a flood is refused at
    /// the door, at once, instead of holding the node's in-flight places
    /// while its reads and hashes wait their turn (which starved other
    /// tenants' requests of them: docs/BENCHMARKING.md, "Authentication
    /// under a credential-stuffing flood").
    ///
    /// # Errors
    /// [`AuthError::Overloaded`] when that many are admitted already.
    pub fn admit(&self) -> Result<Admission, AuthError> {
        let limit = self.size.threads.max(1) + self.size.queue.max(1);
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= limit {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(AuthError::Overloaded);
        }
        Ok(Admission {
            admitted: Arc::clone(&self.admitted),
        })
    }

    /// Runs `work` on the pool and returns its result.
    ///
    /// # Errors
    /// [`AuthError::Overloaded`] at once when the queue is full;
    /// [`AuthError::Stopped`] when the pool is gone.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = answer.send(work());
        });
        match self.jobs.try_send(job) {
            Ok(()) => answered.await.map_err(|_| AuthError::Stopped),
            Err(TrySendError::Full(_)) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                Err(AuthError::Overloaded)
            }
            Err(TrySendError::Disconnected(_)) => Err(AuthError::Stopped),
        }
    }

    /// Its counters.
    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }

    /// Its size.
    pub fn size(&self) -> PoolSize {
        self.size
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_refuses_at_once() {
        let pool = Arc::new(
            HashPool::start(PoolSize {
                threads: 1,
                queue: 1,
                nice: 0,
            })
            .unwrap(),
        );
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        // One job runs (blocked), one waits in the queue...
        let running = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move {
                pool.run(move || {
                    started_tx.send(()).unwrap();
                    hold.recv().unwrap();
                    1
                })
                .await
            }
        });
        tokio::task::yield_now().await;
        started.recv().unwrap();
        let queued = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move { pool.run(|| 2).await }
        });
        tokio::task::yield_now().await;
        // ... and the next is refused without waiting.
        assert!(matches!(pool.run(|| 3).await, Err(AuthError::Overloaded)));
        assert_eq!(pool.stats().refused.load(Ordering::Relaxed), 1);
        release.send(()).unwrap();
        assert_eq!(running.await.unwrap().unwrap(), 1);
        assert_eq!(queued.await.unwrap().unwrap(), 2);
    }

    #[test]
    fn admission_is_bounded_by_the_pools_size_and_freed_on_drop() {
        let pool = HashPool::start(PoolSize {
            threads: 1,
            queue: 2,
            nice: 0,
        })
        .unwrap();
        let held: Vec<Admission> = (0..3).map(|_| pool.admit().unwrap()).collect();
        assert!(matches!(pool.admit(), Err(AuthError::Overloaded)));
        assert_eq!(pool.stats().refused.load(Ordering::Relaxed), 1);
        drop(held);
        let again: Vec<Admission> = (0..3).map(|_| pool.admit().unwrap()).collect();
        assert_eq!(again.len(), 3);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn hashing_threads_run_at_their_nice_value_and_the_caller_keeps_its_own() {
        let before = rustix::process::getpriority_process(None).unwrap();
        let pool = HashPool::start(PoolSize {
            threads: 2,
            queue: 4,
            nice: 7,
        })
        .unwrap();
        for _ in 0..4 {
            let nice = pool
                .run(|| rustix::process::getpriority_process(None).unwrap())
                .await
                .unwrap();
            assert_eq!(nice, 7.max(before));
        }
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), before);
    }
}
