//! Replication on loopback (quinn, mutual TLS), printed as a table:
//! - how long until a revocation is visible on all three nodes (p50, p99
//!   over 500 revocations; visibility polled every 20 µs);
//! - create replication throughput from one node to another (sessions/s).
//!
//! `cargo bench -p benches --bench replication`
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sessions::net::Replica;
use sessions::{Revoked, SessionPolicy, Timing, Validation};

use benches::wall_ms;

async fn cluster(n: usize) -> Vec<Replica> {
    let ca = sessions::testing::ClusterCa::new();
    let sockets: Vec<std::net::UdpSocket> = (0..n)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let addresses: Vec<SocketAddr> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
    drop(sockets);
    let timing = Timing {
        heartbeat_ms: 50,
        lease_ms: 1_000,
        drift_ppm: 10_000,
    };
    let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
    let replicas: Vec<Replica> = (0..n)
        .map(|me| {
            sessions::testing::start_member(
                &ca,
                me,
                &addresses,
                dir.path(),
                timing,
                sessions::net::DEFAULT_PEER_QUEUE_BYTES,
            )
            .unwrap()
        })
        .collect();
    let start = Instant::now();
    while !replicas.iter().all(Replica::can_serve) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "cluster did not form"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    replicas
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let tenant: Arc<str> = Arc::from("acme");
    let policy = SessionPolicy::default();

    // Revocation visibility on three nodes.
    let nodes = cluster(3).await;
    let mut visible = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
    let mut returned = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
    for _ in 0..500 {
        let record = nodes[0]
            .table()
            .create(&tenant, "alice", vec![], None, policy, wall_ms(), &rng)
            .unwrap();
        for node in &nodes[1..] {
            node.table().merge(&record);
        }
        let start = Instant::now();
        let revoke = nodes[0].revoke(Revoked::Session {
            tenant: Arc::clone(&tenant),
            id: record.id,
            keep_until_ms: u64::MAX,
        });
        let poll = async {
            while !nodes
                .iter()
                .all(|n| n.table().validate("acme", &record.id, wall_ms()) == Validation::Revoked)
            {
                tokio::time::sleep(Duration::from_micros(20)).await;
            }
            start.elapsed()
        };
        let (done, seen) = tokio::join!(revoke, poll);
        done.unwrap();
        let _ = visible.record(seen.as_micros() as u64);
        let _ = returned.record(start.elapsed().as_micros() as u64);
    }
    println!(
        "revocation visible on all 3 nodes (µs): p50 {}  p99 {}  max {}",
        visible.value_at_quantile(0.5),
        visible.value_at_quantile(0.99),
        visible.max()
    );
    println!(
        "revoke returned (majority settled) (µs): p50 {}  p99 {}  max {}",
        returned.value_at_quantile(0.5),
        returned.value_at_quantile(0.99),
        returned.max()
    );
    for node in nodes {
        node.close();
    }

    // Create replication throughput, node 0 → node 1: 256 front-end
    // requests at a time, each made durable (group commit) and replicated.
    let nodes: Vec<Arc<Replica>> = cluster(2).await.into_iter().map(Arc::new).collect();
    let total = 200_000usize;
    let start = Instant::now();
    benches::create_durably(&nodes[0], total, 256).await;
    let created = start.elapsed();
    while nodes[1].table().len() < total {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "replication stalled at {} ({} frames dropped)",
            nodes[1].table().len(),
            nodes[0].lag().dropped
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let replicated = start.elapsed();
    println!(
        "create replication: {total} sessions created in {:.2} s, all on the peer after {:.2} s: {:.0} sessions/s ({} dropped)",
        created.as_secs_f64(),
        replicated.as_secs_f64(),
        total as f64 / replicated.as_secs_f64(),
        nodes[0].lag().dropped
    );
    for node in &nodes {
        node.close();
    }
}
