//! The batched signer pool: signs correctly from many callers, drains in
//! batches, hands a job back at once when full, and finishes queued work on
//! shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};

use signer::{
    Error, KeySpec, PoolConfig, PublicKey, RejectReason, Signer, SignerPool, SigningKey,
    SigningMode, SoftwareKey,
};

#[test]
fn pool_signatures_verify_and_are_batched() {
    let key: Arc<dyn SigningKey> = Arc::new(SoftwareKey::generate(KeySpec::EdDsa).unwrap());
    let pool = SignerPool::start(PoolConfig {
        workers: 2,
        queue_capacity: 2048,
        max_batch: 64,
    })
    .unwrap();
    let pending: Vec<_> = (0..1000u32)
        .map(|i| {
            (
                i,
                pool.try_sign(Arc::clone(&key), i.to_be_bytes().to_vec())
                    .unwrap(),
            )
        })
        .collect();
    for (i, p) in pending {
        let signature = p.wait().unwrap();
        assert!(
            key.public_key().verify(&i.to_be_bytes(), &signature),
            "job {i}"
        );
    }
    let stats = pool.stats();
    drop(pool);
    assert_eq!(stats.signed.load(Ordering::Relaxed), 1000);
    assert_eq!(stats.failures.load(Ordering::Relaxed), 0);
    assert!(
        stats.batches.load(Ordering::Relaxed) < 1000,
        "1000 queued jobs must be drained in fewer wake-ups"
    );
}

/// A key whose signing blocks until the test opens a gate, so the queue can
/// be filled deterministically.
#[derive(Debug)]
struct GatedKey {
    inner: SoftwareKey,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

impl SigningKey for GatedKey {
    fn public_key(&self) -> &PublicKey {
        self.inner.public_key()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let (lock, cvar) = &*self.gate;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = cvar.wait(open).unwrap();
        }
        self.inner.sign(message)
    }
    fn backend(&self) -> &'static str {
        "gated-test"
    }
}

#[test]
fn a_full_queue_hands_the_job_back_at_once_and_shutdown_drains() {
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let key: Arc<dyn SigningKey> = Arc::new(GatedKey {
        inner: SoftwareKey::generate(KeySpec::Es256).unwrap(),
        gate: Arc::clone(&gate),
    });
    let pool = SignerPool::start(PoolConfig {
        workers: 1,
        queue_capacity: 4,
        max_batch: 1,
    })
    .unwrap();
    // One job is taken by the blocked worker, four wait in the queue; keep
    // submitting until the queue refuses, which must happen within a few.
    let mut accepted = Vec::new();
    let rejected = loop {
        match pool.try_sign(Arc::clone(&key), vec![accepted.len() as u8]) {
            Ok(p) => accepted.push(p),
            Err(rejected) => break rejected,
        }
        assert!(
            accepted.len() <= 5,
            "a queue of 4 plus one in the worker cannot take more"
        );
    };
    assert_eq!(rejected.reason, RejectReason::Overloaded);
    assert_eq!(
        rejected.message,
        vec![accepted.len() as u8],
        "the job comes back whole"
    );
    assert!(accepted.len() >= 4);
    assert!(matches!(Error::from(rejected), Error::Overloaded));

    // Open the gate, drop the pool: every accepted job still completes.
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    drop(pool);
    for (i, p) in accepted.into_iter().enumerate() {
        let signature = p.wait().unwrap();
        assert!(key.public_key().verify(&[i as u8], &signature));
    }
}

#[test]
fn zero_sized_pools_are_refused() {
    for config in [
        PoolConfig {
            workers: 0,
            ..PoolConfig::default()
        },
        PoolConfig {
            queue_capacity: 0,
            ..PoolConfig::default()
        },
        PoolConfig {
            max_batch: 0,
            ..PoolConfig::default()
        },
    ] {
        assert!(SignerPool::start(config).is_err());
    }
}

#[tokio::test(flavor = "current_thread")]
async fn async_callers_get_the_same_signatures_in_both_modes() {
    let key: Arc<dyn SigningKey> = Arc::new(SoftwareKey::generate(KeySpec::EdDsa).unwrap());
    for mode in [SigningMode::Inline, SigningMode::Pool] {
        let signer = Signer::new(mode, PoolConfig::default()).unwrap();
        assert_eq!(signer.mode(), mode);
        let signature = signer.sign(&key, b"message").await.unwrap();
        // Ed25519 is deterministic: both modes give the same bytes.
        assert_eq!(signature, key.sign(b"message").unwrap());
    }
}
