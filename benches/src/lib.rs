//! criterion micro-benchmarks of Sigil's hot-path pieces. The benchmarks
//! live in `benches/benches/`; this library holds the workloads more than
//! one of them runs. See `docs/BENCHMARKING.md` for how to run them and the
//! measured tables.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use sessions::net::Replica;
use sessions::SessionPolicy;

/// Wall-clock milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Creates `total` sessions of tenant `acme` on `node`, each made durable
/// (and replicated) before the next of its writer, `writers` at a time, as
/// front ends' `session_create` requests do. Returns each create's latency
/// in µs.
///
/// # Panics
/// When a create fails (a benchmark cannot go on then).
#[allow(clippy::unwrap_used)]
pub async fn create_durably(node: &Arc<Replica>, total: usize, writers: usize) -> Histogram<u64> {
    let tenant: Arc<str> = Arc::from("acme");
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (node, tenant) = (Arc::clone(node), Arc::clone(&tenant));
        tasks.push(tokio::spawn(async move {
            let rng = aws_lc_rs::rand::SystemRandom::new();
            let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            for i in (w..total).step_by(writers) {
                let began = Instant::now();
                let record = node
                    .table()
                    .create(
                        &tenant,
                        &format!("user{}", i % 1000),
                        vec!["pwd".into()],
                        None,
                        SessionPolicy::default(),
                        wall_ms(),
                        &rng,
                    )
                    .unwrap();
                node.created(record).await.unwrap();
                let _ = latency.record(began.elapsed().as_micros() as u64);
            }
            latency
        }));
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for task in tasks {
        latency.add(task.await.unwrap()).unwrap();
    }
    latency
}
