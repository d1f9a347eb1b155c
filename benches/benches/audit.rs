//! What the audit log costs per issuance: appends made durable (group
//! commit, fdatasync) from many concurrent requests, beside one ES256
//! signature measured in the same run.
//!
//! `cargo bench -p benches --bench audit`
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use directory::audit::AuditJournal;
use hdrhistogram::Histogram;
use signer::{KeySpec, SigningKey, SoftwareKey};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Baseline: ES256 signatures on this thread.
    let key = SoftwareKey::generate(KeySpec::Es256).unwrap();
    let start = Instant::now();
    let signatures = 20_000;
    for i in 0..signatures {
        std::hint::black_box(key.sign(format!("payload {i}").as_bytes()).unwrap());
    }
    let sign_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(signatures);

    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(AuditJournal::open(&dir.path().join("audit.journal"), "bench").unwrap());
    for concurrency in [1usize, 64, 512] {
        let per_task = 40_000 / concurrency;
        let before = journal
            .stats()
            .syncs
            .load(std::sync::atomic::Ordering::Relaxed);
        let start = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|t| {
                let journal = Arc::clone(&journal);
                tokio::spawn(async move {
                    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                    for i in 0..per_task {
                        let began = Instant::now();
                        journal
                            .append(
                                (t % 50) as i64 + 1,
                                "issue.id_token",
                                serde_json::json!({"user": "u1", "kid": "k", "id": i}),
                                1,
                            )
                            .await
                            .unwrap();
                        let _ = latency.record(began.elapsed().as_micros() as u64);
                    }
                    latency
                })
            })
            .collect();
        let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for task in tasks {
            latency.add(task.await.unwrap()).unwrap();
        }
        let elapsed = start.elapsed();
        let appended = (per_task * concurrency) as f64;
        let syncs = journal
            .stats()
            .syncs
            .load(std::sync::atomic::Ordering::Relaxed)
            - before;
        println!(
            "audit, {concurrency:>3} concurrent: {:>8.0} appends/s, {:>6.2} µs of wall time per append ({:.2}x an ES256 signature of {sign_us:.1} µs), {:.0} records per fdatasync, latency p50 {} µs p99 {} µs",
            appended / elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e6 / appended,
            elapsed.as_secs_f64() * 1e6 / appended / sign_us,
            appended / syncs.max(1) as f64,
            latency.value_at_quantile(0.5),
            latency.value_at_quantile(0.99),
        );
    }
}
