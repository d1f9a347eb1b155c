//! HSM signing through the pool against a bare single-session cryptoki loop,
//! and AWS-LC in software beside them: interleaved rounds, medians of the
//! per-round ratios (the machine is shared and noisy).
//!
//! Run: `cargo bench -p benches --bench hsm` (SoftHSM2 must be installed;
//! the bench makes its own private token in a temporary directory).
#![allow(missing_docs, clippy::print_stdout)] // a report printer: its table goes to stdout

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use hw::{Hsm, HsmConfig, Pkcs11Backend, SoftHsmToken};
use signer::{
    KeyBackend, KeySpec, PendingSignature, PoolConfig, RsaBits, SignerPool, SigningKey, SoftwareKey,
};

const ROUNDS: usize = 7;
const ROUND: Duration = Duration::from_millis(400);
const MESSAGE: &[u8] = b"eyJhbGciOiJFUzI1NiIsImtpZCI6IngiLCJ0eXAiOiJKV1QifQ.eyJpc3MiOiJodHRwczovL3NpZ2lsLmV4YW1wbGUvdC9hY21lIiwic3ViIjoiMDB1MSJ9";

fn fail(what: impl std::fmt::Display) -> ! {
    eprintln!("hsm bench: {what}");
    std::process::exit(1);
}

/// Signatures per second of a bare loop on one session: no pool, no trait,
/// just C_Sign on a handle.
fn bare_rate(hsm: &Hsm, spec: KeySpec, label: &str) -> f64 {
    let result = hsm.with_session("bare loop", |session| {
        let handle = session.find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])?[0];
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < ROUND {
            match spec {
                KeySpec::Es256 => session.sign(
                    &Mechanism::Ecdsa,
                    handle,
                    digest::digest(&digest::SHA256, MESSAGE).as_ref(),
                )?,
                _ => session.sign(&Mechanism::Sha256RsaPkcs, handle, MESSAGE)?,
            };
            n += 1;
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    });
    result.unwrap_or_else(|e| fail(e))
}

/// Signatures per second through a signer pool whose workers each hold an
/// HSM session.
fn pool_rate(pool: &SignerPool, key: &Arc<dyn SigningKey>) -> f64 {
    const WINDOW: usize = 64;
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
        match pool.try_sign(Arc::clone(key), MESSAGE.to_vec()) {
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

fn software_rate(key: &SoftwareKey) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < ROUND {
        let _ = key.sign(MESSAGE);
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| fail(e));
    let token = SoftHsmToken::create(dir.path(), "sigil-bench").unwrap_or_else(|e| fail(e));
    std::env::set_var("SOFTHSM2_CONF", &token.conf);
    let open = |sessions: usize| {
        Hsm::open(&HsmConfig {
            sessions,
            ..token.config.clone()
        })
        .unwrap_or_else(|e| fail(e))
    };
    let control = Pkcs11Backend::new(open(1));
    println!("| key | bare cryptoki, 1 session | pool 1 ÷ bare | pool 2 ÷ bare | pool 4 ÷ bare | AWS-LC software ÷ bare |");
    println!("|---|---|---|---|---|---|");
    for spec in [KeySpec::Es256, KeySpec::Rs256(RsaBits::B2048)] {
        let generated = control.generate("bench", spec).unwrap_or_else(|e| fail(e));
        let kid = generated.key.kid().clone();
        let label = format!("sigil/bench/{kid}");
        let software = SoftwareKey::generate(spec).unwrap_or_else(|e| fail(e));
        let setups: Vec<(SignerPool, Arc<dyn SigningKey>)> = [1usize, 2, 4]
            .into_iter()
            .map(|sessions| {
                let backend = Pkcs11Backend::new(open(sessions));
                let key = backend
                    .load("bench", &kid, &generated.stored)
                    .unwrap_or_else(|e| fail(e));
                let pool = SignerPool::start(PoolConfig {
                    workers: sessions,
                    queue_capacity: 1024,
                    max_batch: 8,
                })
                .unwrap_or_else(|e| fail(e));
                (pool, key)
            })
            .collect();
        let (mut bares, mut ratios, mut soft) = (vec![], vec![vec![]; 3], vec![]);
        for _ in 0..ROUNDS {
            let bare = bare_rate(control.hsm(), spec, &label);
            bares.push(bare);
            for (i, (pool, key)) in setups.iter().enumerate() {
                ratios[i].push(pool_rate(pool, key) / bare);
            }
            soft.push(software_rate(&software) / bare);
        }
        let [one, two, four] = [0, 1, 2].map(|i| median(ratios[i].clone()));
        println!(
            "| {spec} | {:.0}/s | {one:.2} | {two:.2} | {four:.2} | {:.1} |",
            median(bares),
            median(soft)
        );
    }
    println!(
        "\n{ROUNDS} interleaved rounds of {} ms per measurement; medians of per-round ratios.",
        ROUND.as_millis()
    );
}
