//! Three replicas on loopback over quinn with mutual TLS: a revoke on one
//! is honoured by the others; a killed node stalls revokes only until its
//! lease runs out; a restarted node catches up before it serves; a stranger
//! without a cluster certificate cannot join.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sessions::net::{Replica, ReplicaConfig};
use sessions::testing::ClusterCa as Cluster;
use sessions::{Revoked, SessionPolicy, SessionTable, Timing, Validation};

const TIMING: Timing = Timing {
    heartbeat_ms: 20,
    lease_ms: 400,
    drift_ppm: 10_000,
};

fn start(cluster: &Cluster, me: u16, addresses: &[SocketAddr], incarnation: u64) -> Replica {
    start_with_queue(
        cluster,
        me,
        addresses,
        incarnation,
        sessions::net::DEFAULT_PEER_QUEUE_BYTES,
    )
}

fn start_with_queue(
    cluster: &Cluster,
    me: u16,
    addresses: &[SocketAddr],
    incarnation: u64,
    peer_queue_bytes: usize,
) -> Replica {
    let (server, client) = cluster.tls();
    let peers = addresses
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as u16 != me)
        .map(|(i, a)| (i as u16, *a))
        .collect();
    Replica::start(
        ReplicaConfig {
            me,
            listen: addresses[usize::from(me)],
            peers,
            timing: TIMING,
            server,
            client,
            server_name: "localhost".into(),
            recovered: Vec::new(),
            durable: None,
            peer_queue_bytes,
        },
        Arc::new(SessionTable::new(2)),
        incarnation,
    )
    .unwrap()
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Creates a session of alice on `node` and replicates it.
async fn sign_in_alice(
    node: &Replica,
    tenant: &Arc<str>,
    policy: SessionPolicy,
    rng: &aws_lc_rs::rand::SystemRandom,
) -> sessions::SessionRecord {
    let record = node
        .table()
        .create(
            tenant,
            "alice",
            vec!["pwd".into()],
            None,
            policy,
            wall_ms(),
            rng,
        )
        .unwrap();
    node.replicate(record.clone()).await;
    record
}

/// Revokes session `id` on `node`; returns how long the revoke took to
/// return (every peer acknowledged, or its lease ran out).
async fn revoke_session(node: &Replica, tenant: &Arc<str>, id: sessions::SessionId) -> Duration {
    let started = Instant::now();
    node.revoke(Revoked::Session {
        tenant: Arc::clone(tenant),
        id,
        keep_until_ms: u64::MAX,
    })
    .await
    .unwrap();
    started.elapsed()
}

async fn until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn free_addresses(n: usize) -> Vec<SocketAddr> {
    let sockets: Vec<std::net::UdpSocket> = (0..n)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    sockets.iter().map(|s| s.local_addr().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_holds_across_three_nodes_a_death_and_a_restart() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cluster = Cluster::new();
    let addresses = free_addresses(3);
    let mut nodes: Vec<Option<Replica>> = (0..3)
        .map(|i| Some(start(&cluster, i, &addresses, 1)))
        .collect();
    until("every node serves", Duration::from_secs(10), || {
        nodes.iter().all(|n| n.as_ref().unwrap().can_serve())
    })
    .await;
    let tenant: Arc<str> = Arc::from("acme");
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let policy = SessionPolicy::default();

    // A session created on node 0 is seen on 1 and 2.
    let first = nodes[0].as_ref().unwrap();
    let record = sign_in_alice(first, &tenant, policy, &rng).await;
    until(
        "the session reaches every node",
        Duration::from_secs(5),
        || {
            nodes.iter().all(|n| {
                matches!(
                    n.as_ref().unwrap().validate("acme", &record.id, wall_ms()),
                    Ok(Validation::Valid(_))
                )
            })
        },
    )
    .await;

    // Revoke on 0: when it returns, 1 and 2 refuse it.
    let took = revoke_session(nodes[0].as_ref().unwrap(), &tenant, record.id).await;
    for (n, node) in nodes.iter().enumerate().skip(1) {
        assert_eq!(
            node.as_ref()
                .unwrap()
                .validate("acme", &record.id, wall_ms()),
            Ok(Validation::Revoked),
            "node {n}"
        );
    }
    assert!(
        took < Duration::from_millis(200),
        "with every peer up a revoke is a round trip: {took:?}"
    );

    // Kill node 2: revokes still complete, after its lease ran out; the
    // others fail closed meanwhile (no lease from node 2).
    nodes[2].take().unwrap().stop();
    let second = nodes[0]
        .as_ref()
        .unwrap()
        .table()
        .create(&tenant, "bob", vec![], None, policy, wall_ms(), &rng)
        .unwrap();
    nodes[0].as_ref().unwrap().replicate(second.clone()).await;
    let took = revoke_session(nodes[0].as_ref().unwrap(), &tenant, second.id).await;
    assert!(
        took <= Duration::from_millis(TIMING.revoke_wait_ms() + 300),
        "a dead peer delays a revoke by at most its lease: {took:?}"
    );
    until("the survivors fail closed", Duration::from_secs(5), || {
        !nodes[0].as_ref().unwrap().can_serve() && !nodes[1].as_ref().unwrap().can_serve()
    })
    .await;
    assert_eq!(
        nodes[1]
            .as_ref()
            .unwrap()
            .validate("acme", &second.id, wall_ms()),
        Err(sessions::net::ReplicaError::Unavailable)
    );

    // Restart node 2 (new incarnation, empty memory): it catches up from a
    // peer before it serves, and then knows both revocations.
    let restarted = start(&cluster, 2, &addresses, 2);
    assert!(
        !restarted.can_serve(),
        "a restarted node does not serve before it caught up"
    );
    nodes[2] = Some(restarted);
    until("the cluster serves again", Duration::from_secs(10), || {
        nodes.iter().all(|n| n.as_ref().unwrap().can_serve())
    })
    .await;
    let third = nodes[2].as_ref().unwrap();
    assert!(third.is_ready());
    assert_eq!(
        third.validate("acme", &record.id, wall_ms()),
        Ok(Validation::Revoked)
    );
    assert_eq!(
        third.validate("acme", &second.id, wall_ms()),
        Ok(Validation::Revoked)
    );
    for node in nodes.into_iter().flatten() {
        node.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_cluster_certificate_cannot_join() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cluster = Cluster::new();
    let stranger_ca = Cluster::new();
    let addresses = free_addresses(2);
    let good = start(&cluster, 0, &addresses, 1);
    // The impostor claims to be node 1 but its certificate is from another CA.
    let impostor = start(&stranger_ca, 1, &addresses, 1);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!good.can_serve(), "no lease from an impostor");
    assert!(!impostor.can_serve());
    good.stop();
    impostor.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_costs_bounded_memory() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cluster = Cluster::new();
    let addresses = free_addresses(2);
    // Peer 1: a member of the cluster (its certificate is good) that takes
    // the replication stream and never reads from it.
    let (mut server, _) = cluster.tls();
    server.alpn_protocols = vec![sessions::net::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(server).unwrap();
    let silent = quinn::Endpoint::server(
        quinn::ServerConfig::with_crypto(Arc::new(crypto)),
        addresses[1],
    )
    .unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(incoming) = silent.accept().await {
            let Ok(connection) = incoming.await else {
                continue;
            };
            let streams = connection.clone();
            held.push((
                connection,
                tokio::spawn(async move {
                    let mut unread = Vec::new();
                    while let Ok(stream) = streams.accept_uni().await {
                        unread.push(stream);
                    }
                }),
            ));
        }
    });
    // A small bound, so the test need not queue the default 64 MiB.
    let node = start_with_queue(&cluster, 0, &addresses, 1, 1 << 20);
    let tenant: Arc<str> = Arc::from("acme");
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let policy = SessionPolicy::default();
    for i in 0..50_000u32 {
        sign_in_alice(&node, &tenant, policy, &rng).await;
        if i % 16 == 15 {
            tokio::task::yield_now().await;
        }
    }
    // Flow control stopped the writer; the queues filled and then dropped
    // instead of growing: the node counts what it dropped and keeps going.
    until(
        "frames dropped for the silent peer",
        Duration::from_secs(30),
        || node.lag().dropped > 0,
    )
    .await;
    assert!(node.table().len() >= 50_000);
    node.stop();
    holder.abort();
}
