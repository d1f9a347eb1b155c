//! Same-run ratios of the signer pool to raw AWS-LC signing, robust to a
//! shared, noisy machine: raw, pool (1 and 2 workers) and inline-on-2-threads
//! are measured in short interleaved rounds, and the median of the per-round
//! ratios is reported. Criterion's sequential groups run minutes apart, and
//! the machine's load drifts more than the effect being measured.
//!
//! Run: `cargo bench -p benches --bench pool_ratio` (about a minute).
#![allow(missing_docs, clippy::print_stdout)] // a report printer: its table goes to stdout

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use signer::jwt::{encoded_header, TokenClaims, TokenLifetime, TokenType, UnsignedJwt};
use signer::{
    KeySpec, PendingSignature, PoolConfig, RsaBits, SignerPool, SigningKey, SoftwareKey, Timestamp,
};

const ROUNDS: usize = 9;
const ROUND: Duration = Duration::from_millis(250);

fn message(key: &dyn SigningKey) -> Vec<u8> {
    let claims = TokenClaims {
        issuer: "https://sigil.example/t/acme".into(),
        subject: "00u1a2b3c4d5e6f7g8h9".into(),
        audience: vec!["app".into()],
        ..TokenClaims::default()
    };
    let header = encoded_header(key, TokenType::IdToken);
    UnsignedJwt::build(
        &header,
        &claims,
        Timestamp::from_secs(1),
        TokenLifetime::MAX,
        "AAAAAAAAAAAAAAAAAAAAAA",
    )
    .map(|j| j.signing_input().to_vec())
    .unwrap_or_default()
}

/// Signatures per second on this thread during one round.
fn raw_rate(key: &dyn SigningKey, message: &[u8]) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < ROUND {
        let _ = key.sign(message);
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Signatures per second on `threads` threads signing inline.
fn inline_rate(key: &Arc<dyn SigningKey>, message: &[u8], threads: usize) -> f64 {
    let start = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0u64;
                    while start.elapsed() < ROUND {
                        let _ = key.sign(message);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

/// Signatures per second through the pool from one submitting thread that
/// keeps a window of jobs in flight (as a busy front door does).
fn pool_rate(pool: &SignerPool, key: &Arc<dyn SigningKey>, message: &[u8]) -> f64 {
    const WINDOW: usize = 1024;
    let start = Instant::now();
    let mut in_flight: VecDeque<PendingSignature> = VecDeque::with_capacity(WINDOW);
    let mut done = 0u64;
    while start.elapsed() < ROUND {
        if in_flight.len() == WINDOW {
            if let Some(last) = in_flight.remove(WINDOW / 2 - 1) {
                let _ = last.wait();
            }
            for p in in_flight.drain(..WINDOW / 2 - 1) {
                let _ = p.wait();
            }
            done += WINDOW as u64 / 2;
        }
        match pool.try_sign(Arc::clone(key), message.to_vec()) {
            Ok(p) => in_flight.push_back(p),
            Err(_) => std::thread::yield_now(),
        }
    }
    done += in_flight.len() as u64;
    for p in in_flight {
        let _ = p.wait();
    }
    done as f64 / start.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let specs = [
        KeySpec::Rs256(RsaBits::B2048),
        KeySpec::Es256,
        KeySpec::Es384,
        KeySpec::EdDsa,
    ];
    println!("| key | raw (1 thread) | pool 1 ÷ raw | pool 2 per worker ÷ raw | inline 2 per thread ÷ raw | pool 2 ÷ inline 2 |");
    println!("|---|---|---|---|---|---|");
    for spec in specs {
        let Ok(key) = SoftwareKey::generate(spec) else {
            eprintln!("cannot generate {spec}");
            std::process::exit(1);
        };
        let key: Arc<dyn SigningKey> = Arc::new(key);
        let message = message(key.as_ref());
        let pools = [1usize, 2].map(|workers| {
            SignerPool::start(PoolConfig {
                workers,
                queue_capacity: 4096,
                max_batch: 64,
            })
        });
        let [Ok(pool1), Ok(pool2)] = pools else {
            eprintln!("cannot start the pools");
            std::process::exit(1);
        };
        let (mut raws, mut p1, mut p2, mut i2, mut p2i2) = (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            let raw = raw_rate(key.as_ref(), &message);
            let one = pool_rate(&pool1, &key, &message);
            let two = pool_rate(&pool2, &key, &message);
            let inline = inline_rate(&key, &message, 2);
            raws.push(raw);
            p1.push(one / raw);
            p2.push(two / 2.0 / raw);
            i2.push(inline / 2.0 / raw);
            p2i2.push(two / inline);
        }
        println!(
            "| {spec} | {:.0}/s | {:.2} | {:.2} | {:.2} | {:.2} |",
            median(raws),
            median(p1),
            median(p2),
            median(i2),
            median(p2i2)
        );
    }
    println!(
        "\n{ROUNDS} interleaved rounds of {} ms per measurement; medians of per-round ratios.",
        ROUND.as_millis()
    );
}
