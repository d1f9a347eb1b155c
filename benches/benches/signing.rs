//! Signing benchmarks: raw AWS-LC signing per algorithm (the baseline), JWT
//! build + sign, the signer pool at 1 and 2 workers, and inline signing on 2
//! threads (the alternative to the pool on a 2-core machine).
//!
//! Run: `cargo bench -p benches --bench signing`; `scripts/bench_table.py
//! signing` turns the results into the ratio table in docs/BENCHMARKING.md.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use signer::jwt::{encoded_header, new_jti, TokenClaims, TokenLifetime, TokenType, UnsignedJwt};
use signer::{KeySpec, PoolConfig, RsaBits, SignerPool, SigningKey, SoftwareKey, Timestamp};

const SPECS: [KeySpec; 5] = [
    KeySpec::Rs256(RsaBits::B2048),
    KeySpec::Ps256(RsaBits::B2048),
    KeySpec::Es256,
    KeySpec::Es384,
    KeySpec::EdDsa,
];

fn claims() -> TokenClaims {
    let mut custom = serde_json::Map::new();
    custom.insert("email".into(), "alice@acme.example".into());
    custom.insert(
        "groups".into(),
        serde_json::json!(["engineering", "everyone"]),
    );
    TokenClaims {
        issuer: "https://sigil.example/t/acme".into(),
        subject: "00u1a2b3c4d5e6f7g8h9".into(),
        audience: vec!["app-eddsa".into()],
        auth_time: Some(Timestamp::from_secs(1_800_000_000)),
        nonce: Some("n-0S6_WzA2Mj".into()),
        amr: vec!["pwd".into(), "otp".into()],
        session_id: Some("sid-5xK3mB2Q".into()),
        authorized_party: Some("app-eddsa".into()),
        scope: None,
        client_id: None,
        custom,
    }
}

/// A representative signing input: header.payload of an ID token.
fn signing_input(key: &dyn SigningKey) -> Vec<u8> {
    let header = encoded_header(key, TokenType::IdToken);
    UnsignedJwt::build(
        &header,
        &claims(),
        Timestamp::from_secs(1_800_000_000),
        TokenLifetime::MAX,
        "AAAAAAAAAAAAAAAAAAAAAA",
    )
    .map(|jwt| jwt.signing_input().to_vec())
    .unwrap_or_default()
}

fn keys() -> Vec<Arc<dyn SigningKey>> {
    SPECS
        .iter()
        .filter_map(|&spec| SoftwareKey::generate(spec).ok())
        .map(|k| Arc::new(k) as Arc<dyn SigningKey>)
        .collect()
}

fn raw_and_jwt(c: &mut Criterion) {
    let rng = SystemRandom::new();
    for key in keys() {
        let spec = key.public_key().spec();
        let message = signing_input(key.as_ref());
        let mut raw = c.benchmark_group("raw");
        raw.throughput(Throughput::Elements(1));
        raw.bench_function(BenchmarkId::from_parameter(spec), |b| {
            b.iter(|| key.sign(&message));
        });
        raw.finish();

        let header = encoded_header(key.as_ref(), TokenType::IdToken);
        let claims = claims();
        let mut jwt = c.benchmark_group("jwt");
        jwt.throughput(Throughput::Elements(1));
        jwt.bench_function(BenchmarkId::from_parameter(spec), |b| {
            b.iter(|| {
                let jti = new_jti(&rng).unwrap_or_default();
                UnsignedJwt::build(
                    &header,
                    &claims,
                    Timestamp::from_secs(1_800_000_000),
                    TokenLifetime::MAX,
                    &jti,
                )
                .and_then(|t| t.sign_inline(key.as_ref()))
            });
        });
        jwt.finish();
    }
}

/// Signs `iters` messages through the pool from one caller thread, keeping
/// up to `window` in flight, and returns the wall time. When the window is
/// full the caller collects the older half, waiting once for its last job: a
/// busy front door has many requests in flight and its runtime is rarely
/// parked, so the worker is not made to wake the caller for every signature.
fn through_pool(
    pool: &SignerPool,
    key: &Arc<dyn SigningKey>,
    message: &[u8],
    iters: u64,
    window: usize,
) -> Duration {
    let start = Instant::now();
    let mut in_flight: std::collections::VecDeque<signer::PendingSignature> =
        std::collections::VecDeque::with_capacity(window);
    for _ in 0..iters {
        if in_flight.len() == window {
            // Wait for the last of the older half first (one park), then
            // collect the rest, which are done by then.
            if let Some(last) = in_flight.remove(window / 2 - 1) {
                let _ = last.wait();
            }
            for p in in_flight.drain(..window / 2 - 1) {
                let _ = p.wait();
            }
        }
        match pool.try_sign(Arc::clone(key), message.to_vec()) {
            Ok(p) => in_flight.push_back(p),
            Err(_) => unreachable_overload(),
        }
    }
    for p in in_flight {
        let _ = p.wait();
    }
    start.elapsed()
}

fn unreachable_overload() {
    // The window is smaller than the queue, so the pool never refuses here;
    // if it did, the measurement would be wrong, so stop loudly.
    eprintln!("signer pool refused a job inside the window: benchmark invalid");
    std::process::exit(1);
}

fn pool(c: &mut Criterion) {
    for key in keys() {
        let spec = key.public_key().spec();
        let message = signing_input(key.as_ref());
        let mut group = c.benchmark_group(format!("pool/{spec}"));
        group.throughput(Throughput::Elements(1));
        for workers in [1usize, 2] {
            let pool = match SignerPool::start(PoolConfig {
                workers,
                queue_capacity: 4096,
                max_batch: 64,
            }) {
                Ok(pool) => pool,
                Err(e) => panic!("pool: {e}"),
            };
            group.bench_function(BenchmarkId::new("workers", workers), |b| {
                b.iter_custom(|iters| through_pool(&pool, &key, &message, iters, 1024));
            });
        }
        // Inline on two threads: what the front door does when each of its
        // two workers signs its own requests.
        group.bench_function(BenchmarkId::new("inline-threads", 2), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for share in [iters / 2, iters - iters / 2] {
                        let key = &key;
                        let message = &message;
                        s.spawn(move || {
                            for _ in 0..share {
                                let _ = key.sign(message);
                            }
                        });
                    }
                });
                start.elapsed()
            });
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = raw_and_jwt, pool
}
criterion_main!(benches);
