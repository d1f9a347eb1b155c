//! Slow signatures leave the I/O workers. An HSM signature can wait for a
//! free token session and RSA costs hundreds of microseconds: made on a
//! QUIC worker, either stalls every connection of that core. They go to
//! the batched [`SignerPool`] with a deadline; past it the request is
//! answered `unavailable` (the pool skips a job it would start too late).
//! EdDSA and ECDSA in software stay inline: cheaper than any hand-off
//! (docs/BENCHMARKING.md, "inline or pool").

use std::sync::Arc;
use std::time::{Duration, Instant};

use signer::{Algorithm, PoolConfig, RejectReason, SignerPool, SigningKey, SOFTWARE_BACKEND};

use super::refuse;
use sigil_proto::{ErrorCode, WireError};

/// The pool for slow signatures and how long a request waits for one.
#[derive(Debug)]
pub struct SlowSigning {
    pool: SignerPool,
    deadline: Duration,
}

impl SlowSigning {
    /// Starts `threads` signing threads; a signature not made within
    /// `deadline` is answered `unavailable`.
    ///
    /// # Errors
    /// As [`SignerPool::start`].
    pub fn start(threads: usize, deadline: Duration) -> Result<SlowSigning, signer::Error> {
        Ok(SlowSigning {
            pool: SignerPool::start(PoolConfig {
                workers: threads.max(1),
                queue_capacity: 1_024,
                max_batch: 64,
            })?,
            deadline,
        })
    }

    /// Whether `key` signs on the pool: any key outside this process (an
    /// HSM) and RSA in software.
    pub fn is_slow(key: &dyn SigningKey) -> bool {
        key.backend() != SOFTWARE_BACKEND
            || matches!(key.algorithm(), Algorithm::Rs256 | Algorithm::Ps256)
    }

    fn timed_out(&self) -> WireError {
        refuse(
            ErrorCode::Unavailable,
            format!(
                "the signature was not made within {} ms",
                self.deadline.as_millis()
            ),
        )
    }

    fn rejected(reason: RejectReason) -> WireError {
        match reason {
            RejectReason::Overloaded => refuse(ErrorCode::Overloaded, "the signer pool is full"),
            RejectReason::Closed => refuse(ErrorCode::Unavailable, "the signer pool is closed"),
        }
    }

    /// Signs `message` with `key` on the pool, within the deadline.
    ///
    /// # Errors
    /// `unavailable` past the deadline, `overloaded` when the pool's queue
    /// is full, `internal` when the backend fails.
    pub async fn sign(
        &self,
        key: &Arc<dyn SigningKey>,
        message: &[u8],
    ) -> Result<Vec<u8>, WireError> {
        let deadline = Instant::now() + self.deadline;
        let pending = self
            .pool
            .try_sign_by(Arc::clone(key), message.to_vec(), Some(deadline))
            .map_err(|rejected| SlowSigning::rejected(rejected.reason))?;
        match tokio::time::timeout_at(deadline.into(), pending).await {
            Err(_) | Ok(Err(signer::Error::DeadlineExceeded)) => Err(self.timed_out()),
            Ok(Err(e)) => {
                tracing::error!(error = %e, backend = key.backend(), "signing");
                Err(refuse(ErrorCode::Internal, "signing"))
            }
            Ok(Ok(signature)) => Ok(signature),
        }
    }

    /// Runs `work` (which signs with a slow key, e.g. a SAML Response) on
    /// the pool, within the deadline.
    ///
    /// # Errors
    /// `unavailable` past the deadline, `overloaded` when the pool's queue
    /// is full.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, WireError> {
        let deadline = Instant::now() + self.deadline;
        let done = self
            .pool
            .try_run(work, Some(deadline))
            .map_err(SlowSigning::rejected)?;
        match tokio::time::timeout_at(deadline.into(), done).await {
            Ok(Ok(result)) => Ok(result),
            // Dropped unrun (too late) or timed out waiting.
            Ok(Err(_)) | Err(_) => Err(self.timed_out()),
        }
    }
}
