//! Sessions on disk, printed as a table (`cargo bench -p benches --bench
//! session_store`):
//! - the cost of a durable create (table + log entry + group-committed
//!   `fdatasync`) beside an in-memory create measured in the same run, with
//!   256 creates in flight on a single node;
//! - restoring 1,000,000 sessions from the logs, writing them as a
//!   snapshot, and restoring them from the snapshot.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sessions::store::SessionStore;
use sessions::{SessionPolicy, SessionTable, Timing};

use benches::wall_ms;

fn process_cpu() -> Duration {
    // utime + stime of this process, from /proc (clock ticks of 10 ms).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

async fn creates() {
    let tenant: Arc<str> = Arc::from("acme");
    let policy = SessionPolicy::default();
    let total = 100_000usize;
    // Baseline: the table alone.
    let table = SessionTable::new(8);
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let (start, cpu) = (Instant::now(), process_cpu());
    for i in 0..total {
        table
            .create(
                &tenant,
                &format!("user{}", i % 1000),
                vec!["pwd".into()],
                None,
                policy,
                wall_ms(),
                &rng,
            )
            .unwrap();
    }
    let memory_us = start.elapsed().as_secs_f64() * 1e6 / total as f64;
    let memory_cpu_us = (process_cpu() - cpu).as_secs_f64() * 1e6 / total as f64;

    let dir = tempfile::tempdir().unwrap();
    let node = Arc::new(sessions::testing::start_solo(dir.path(), Timing::default()).unwrap());
    let writers = 256usize;
    let (start, cpu) = (Instant::now(), process_cpu());
    let latency = benches::create_durably(&node, total, writers).await;
    let elapsed = start.elapsed();
    let durable_cpu_us = (process_cpu() - cpu).as_secs_f64() * 1e6 / total as f64;
    println!(
        "create in memory:  {memory_us:.2} µs wall, {memory_cpu_us:.2} µs CPU per create (baseline)"
    );
    println!(
        "create durable:    {:.0} creates/s with {writers} in flight, {durable_cpu_us:.2} µs CPU per create ({:.2}x the baseline), latency p50 {} µs p99 {} µs",
        total as f64 / elapsed.as_secs_f64(),
        durable_cpu_us / memory_cpu_us,
        latency.value_at_quantile(0.5),
        latency.value_at_quantile(0.99),
    );
    node.close();
}

fn restore() {
    let tenant: Arc<str> = Arc::from("acme");
    let policy = SessionPolicy::default();
    let total = 1_000_000usize;
    let dir = tempfile::tempdir().unwrap();
    let table = SessionTable::new(8);
    let (store, _) = SessionStore::open(dir.path(), &table, wall_ms()).unwrap();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let start = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    let mut last = None;
    for i in 0..total {
        batch.push(
            table
                .create(
                    &tenant,
                    &format!("user{}", i % 100_000),
                    vec!["pwd".into()],
                    Some("web".into()),
                    policy,
                    wall_ms(),
                    &rng,
                )
                .unwrap(),
        );
        if batch.len() == 1000 {
            last = Some(store.append_sessions(&batch).unwrap());
            batch.clear();
        }
    }
    store.wait_synced(last.unwrap()).unwrap();
    let written = start.elapsed();
    let bytes = store.log_bytes();
    drop(store);

    let restored = SessionTable::new(8);
    let (store, recovered) = SessionStore::open(dir.path(), &restored, wall_ms()).unwrap();
    assert_eq!(recovered.sessions, total);
    println!(
        "1,000,000 sessions: logged in {:.2} s ({} MB); restored from the logs in {:.2} s",
        written.as_secs_f64(),
        bytes / 1_000_000,
        recovered.elapsed.as_secs_f64()
    );
    let cut = store.begin_snapshot().unwrap();
    let stats = store
        .write_snapshot(cut, restored.snapshot().0, &[])
        .unwrap();
    drop(store);
    let again = SessionTable::new(8);
    let (_, recovered) = SessionStore::open(dir.path(), &again, wall_ms()).unwrap();
    assert_eq!(recovered.sessions, total);
    println!(
        "snapshot of 1,000,000 sessions written in {:.2} s ({} MB); restored from it in {:.2} s",
        stats.elapsed.as_secs_f64(),
        stats.bytes / 1_000_000,
        recovered.elapsed.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    creates().await;
    restore();
}
