//! Faults in the HSM: a failing session is replaced, the request in flight
//! gets a clear error (never a hang), other requests keep working, and the
//! failures are counted. In its own test binary: a logout affects every
//! session of the process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod softhsm_token;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hw::{Hsm, Pkcs11Backend};
use signer::{KeyBackend, KeySpec, PoolConfig, SignerPool};
use softhsm_token::token;

#[test]
fn failed_sessions_are_replaced_and_counted() {
    let hsm = Hsm::open(&token().config).unwrap();
    let backend = Pkcs11Backend::new(hsm.clone());
    let key = backend.generate("acme", KeySpec::Es256).unwrap().key;
    let counters = hsm.counters().clone();
    assert_eq!(hsm.idle_sessions(), 4);

    // Injected device errors: exactly those requests fail, clearly.
    hsm.danger_inject_failures(2);
    for _ in 0..2 {
        let error = key.sign(b"message").expect_err("injected failure");
        assert!(error.to_string().contains("DeviceError"), "{error}");
    }
    assert!(key
        .public_key()
        .verify(b"message", &key.sign(b"message").unwrap()));
    assert_eq!(counters.failures.load(Ordering::Relaxed), 2);
    assert_eq!(counters.sessions_replaced.load(Ordering::Relaxed), 2);
    assert_eq!(
        hsm.idle_sessions(),
        4,
        "replaced sessions are back in the pool"
    );

    // A real fault: the application is logged out behind the pool's back,
    // so the private key vanishes from every session. The request in flight
    // fails with a clear error; the pool logs back in; the key finds its
    // (renumbered) object again; everything after works.
    hsm.danger_logout().unwrap();
    let error = key.sign(b"message").expect_err("logged out");
    assert!(
        error
            .to_string()
            .starts_with("pkcs11 backend: pkcs#11 sign:"),
        "{error}"
    );
    for _ in 0..20 {
        assert!(key.public_key().verify(b"m", &key.sign(b"m").unwrap()));
    }
    assert_eq!(counters.relogins.load(Ordering::Relaxed), 1);
    assert_eq!(counters.failures.load(Ordering::Relaxed), 3);

    // Under load through the signer pool: failures injected mid-stream hit
    // exactly that many requests; none hangs, the rest succeed.
    let pool = SignerPool::start(PoolConfig {
        workers: 4,
        queue_capacity: 1024,
        max_batch: 8,
    })
    .unwrap();
    let started = Instant::now();
    let pending: Vec<_> = (0..400u32)
        .map(|i| {
            if i == 100 {
                hsm.danger_inject_failures(5);
            }
            pool.try_sign(key.clone(), i.to_be_bytes().to_vec())
                .unwrap()
        })
        .collect();
    let results: Vec<_> = pending
        .into_iter()
        .map(signer::PendingSignature::wait)
        .collect();
    assert!(started.elapsed() < Duration::from_secs(60));
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(
        counters.sessions_replaced.load(Ordering::Relaxed),
        7,
        "2 + 5 injected device errors"
    );
    assert_eq!(failed, 5, "exactly the injected failures");
    for (i, result) in results.iter().enumerate() {
        if let Ok(signature) = result {
            assert!(key
                .public_key()
                .verify(&(i as u32).to_be_bytes(), signature));
        }
    }
    assert_eq!(hsm.idle_sessions(), 4);
}
