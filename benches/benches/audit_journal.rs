//! Records per second through the audit journal's writer (issue 16 item
//! 2): appends from 64 concurrent tasks on two runtime threads, made
//! durable in group commits, the record an ID token's (`issue.id_token`
//! with user, kid, jti and caller, built the way `AuditEvent` builds it).
//! Criterion times the appends; after it, a fixed run of records prints
//! the user and kernel CPU per record of the whole process and of the
//! writer thread alone (`/proc/self/task/*/stat`).
//!
//! The journal lives in `SIGIL_BENCH_DIR` (default: a temporary directory
//! under /tmp, on disk); `/dev/shm` leaves the CPU without the disk.
//! `SIGIL_BENCH_SEGMENT_BYTES` sets its segment size (default: the
//! journal's, 64 MiB; 0: never cut), to measure what cutting costs.
//!
//! `cargo bench -p benches --bench audit_journal`
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use directory::audit::{AuditJournal, JournalOptions};

const CONCURRENCY: u64 = 64;

/// The detail of an ID token's record, as the worker makes it.
fn record(i: u64) -> (&'static str, directory::audit::Detail) {
    let user = format!("user{}", i % 1000);
    let id = format!("jti-{i:018}");
    (
        "issue.id_token",
        directory::audit::Detail::build()
            .str("caller", "web-1")
            .str("id", &id)
            .str("kid", "kid-2026-eddsa")
            .str("user", &user)
            .finish(),
    )
}

/// Appends `n` records from `CONCURRENCY` tasks; returns the wall time.
fn run(runtime: &tokio::runtime::Runtime, journal: &Arc<AuditJournal>, n: u64) -> Duration {
    let start = Instant::now();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..CONCURRENCY)
            .map(|t| {
                let journal = Arc::clone(journal);
                tokio::spawn(async move {
                    let mut i = t;
                    while i < n {
                        let (kind, detail) = record(i);
                        journal
                            .append((t % 50) as i64 + 1, kind, detail, 1_800_000_000_000 + i)
                            .await
                            .unwrap();
                        i += CONCURRENCY;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    start.elapsed()
}

/// (user, kernel) clock ticks of the process and of the `sigil-audit`
/// thread.
fn cpu_ticks() -> ((u64, u64), (u64, u64)) {
    fn ticks(stat: &str) -> (u64, u64) {
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        (fields[11].parse().unwrap(), fields[12].parse().unwrap())
    }
    let process = ticks(&std::fs::read_to_string("/proc/self/stat").unwrap());
    let mut writer = (0, 0);
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap().path();
        if std::fs::read_to_string(task.join("comm")).unwrap().trim() == "sigil-audit" {
            let (u, s) = ticks(&std::fs::read_to_string(task.join("stat")).unwrap());
            writer = (writer.0 + u, writer.1 + s);
        }
    }
    (process, writer)
}

fn journal_writer(c: &mut Criterion) {
    let base = std::env::var_os("SIGIL_BENCH_DIR").map(std::path::PathBuf::from);
    let dir = match &base {
        Some(base) => tempfile::tempdir_in(base).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let options = JournalOptions {
        segment_bytes: std::env::var("SIGIL_BENCH_SEGMENT_BYTES")
            .map_or(directory::audit::DEFAULT_SEGMENT_BYTES, |v| {
                v.parse().unwrap()
            }),
    };
    let journal = Arc::new(
        AuditJournal::open_with(&dir.path().join("bench.journal"), "bench", options).unwrap(),
    );
    let mut group = c.benchmark_group("audit_journal");
    group.throughput(Throughput::Elements(1));
    group.bench_function("append_64_concurrent", |b| {
        b.iter_custom(|iters| run(&runtime, &journal, iters));
    });
    group.finish();

    // CPU per record over a fixed run (clock ticks are 10 ms: enough
    // records that each figure is many ticks).
    let records = 400_000u64;
    let hz = 100.0;
    let (p0, w0) = cpu_ticks();
    let syncs0 = journal
        .stats()
        .syncs
        .load(std::sync::atomic::Ordering::Relaxed);
    let wall = run(&runtime, &journal, records);
    let (p1, w1) = cpu_ticks();
    let syncs = journal
        .stats()
        .syncs
        .load(std::sync::atomic::Ordering::Relaxed)
        - syncs0;
    let cuts = &journal.stats().cut_latency;
    let per = |a: u64, b: u64| (b - a) as f64 / hz * 1e6 / records as f64;
    println!(
        "audit_journal cpu: {records} records in {:.2} s ({:.0}/s), {:.0} records per fdatasync; \
         process user {:.2} µs kernel {:.2} µs per record; writer thread user {:.2} µs kernel {:.2} µs per record; \
         {} segments cut (segment_bytes {}), {:.1} ms each on average, the longest <= {:?}",
        wall.as_secs_f64(),
        records as f64 / wall.as_secs_f64(),
        records as f64 / syncs.max(1) as f64,
        per(p0.0, p1.0),
        per(p0.1, p1.1),
        per(w0.0, w1.0),
        per(w0.1, w1.1),
        cuts.count(),
        options.segment_bytes,
        cuts.sum().as_secs_f64() * 1e3 / cuts.count().max(1) as f64,
        cuts.max_bound().unwrap_or_default(),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = journal_writer
}
criterion_main!(benches);
