//! Replicas on loopback over quinn with mutual TLS, each with its store on
//! disk: a revoke on one is honoured by the others; when one node dies the
//! other two keep serving and revoking; a restarted node catches up before
//! it serves; sessions survive restarts of one node and of all of them; a
//! stranger without a cluster certificate cannot join; a peer that stops
//! reading costs bounded memory; sessions a peer missed are sent again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sessions::net::{Replica, ReplicaError};
use sessions::testing::ClusterCa as Cluster;
use sessions::{Revoked, SessionPolicy, Timing, Validation};

const TIMING: Timing = Timing {
    heartbeat_ms: 20,
    lease_ms: 400,
    drift_ppm: 10_000,
};

fn start(cluster: &Cluster, me: usize, addresses: &[SocketAddr], dir: &Path) -> Replica {
    start_with_queue(
        cluster,
        me,
        addresses,
        dir,
        sessions::net::DEFAULT_PEER_QUEUE_BYTES,
    )
}

fn start_with_queue(
    cluster: &Cluster,
    me: usize,
    addresses: &[SocketAddr],
    dir: &Path,
    peer_queue_bytes: usize,
) -> Replica {
    try_start(cluster, me, addresses, dir, peer_queue_bytes).unwrap()
}

fn try_start(
    cluster: &Cluster,
    me: usize,
    addresses: &[SocketAddr],
    dir: &Path,
    peer_queue_bytes: usize,
) -> Result<Replica, ReplicaError> {
    sessions::testing::start_member(cluster, me, addresses, dir, TIMING, peer_queue_bytes)
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Creates a session of `user` on `node` and replicates it.
async fn sign_in(node: &Replica, user: &str) -> sessions::SessionRecord {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let record = node
        .table()
        .create(
            &Arc::from("acme"),
            user,
            vec!["pwd".into()],
            None,
            SessionPolicy::default(),
            wall_ms(),
            &rng,
        )
        .unwrap();
    node.created(record.clone()).await.unwrap();
    record
}

/// Revokes session `id` on `node`; returns how long the revoke took to
/// return (a majority settled it).
async fn revoke_session(node: &Replica, id: sessions::SessionId) -> Duration {
    let started = Instant::now();
    node.revoke(Revoked::Session {
        tenant: Arc::from("acme"),
        id,
        keep_until_ms: wall_ms() + 3_600_000,
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

fn valid(node: &Replica, id: &sessions::SessionId) -> bool {
    matches!(
        node.validate("acme", id, wall_ms()),
        Ok(Validation::Valid(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_holds_across_three_nodes_a_death_and_a_restart() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cluster = Cluster::new();
    let dir = tempfile::tempdir().unwrap();
    let addresses = free_addresses(3);
    let mut nodes: Vec<Option<Replica>> = (0..3)
        .map(|i| Some(start(&cluster, i, &addresses, dir.path())))
        .collect();
    until("every node serves", Duration::from_secs(10), || {
        nodes.iter().all(|n| n.as_ref().unwrap().can_serve())
    })
    .await;

    // A session created on node 0 is seen on 1 and 2.
    let record = sign_in(nodes[0].as_ref().unwrap(), "alice").await;
    until(
        "the session reaches every node",
        Duration::from_secs(5),
        || nodes.iter().all(|n| valid(n.as_ref().unwrap(), &record.id)),
    )
    .await;

    // Revoke on 0: when it returns, a majority holds it, and 1 and 2
    // refuse it as soon as they check (each holds a lease only with it).
    let took = revoke_session(nodes[0].as_ref().unwrap(), record.id).await;
    assert!(
        took < Duration::from_millis(300),
        "with every node up a revoke is a round trip or two: {took:?}"
    );
    for node in nodes.iter().flatten() {
        assert!(!valid(node, &record.id));
    }

    // Kill node 2: the others keep serving and revoking.
    let live = sign_in(nodes[0].as_ref().unwrap(), "bob").await;
    let second = sign_in(nodes[0].as_ref().unwrap(), "carol").await;
    until(
        "carol's and bob's sessions reach node 2",
        Duration::from_secs(5),
        || {
            valid(nodes[2].as_ref().unwrap(), &second.id)
                && valid(nodes[2].as_ref().unwrap(), &live.id)
        },
    )
    .await;
    nodes[2].take().unwrap().close();
    let took = revoke_session(nodes[1].as_ref().unwrap(), second.id).await;
    assert!(
        took <= Duration::from_millis(TIMING.revoke_wait_ms() + 300),
        "a dead node delays a revoke by at most its lease: {took:?}"
    );
    for _ in 0..50 {
        assert!(nodes[0].as_ref().unwrap().can_serve() && nodes[1].as_ref().unwrap().can_serve());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Restart node 2 from its disk: it catches up before it serves, knows
    // the revocation made while it was down, and still has bob.
    let restarted = start(&cluster, 2, &addresses, dir.path());
    assert!(
        !restarted.can_serve(),
        "a restarted node serves only once caught up"
    );
    nodes[2] = Some(restarted);
    until("the cluster serves again", Duration::from_secs(10), || {
        nodes.iter().all(|n| n.as_ref().unwrap().can_serve())
    })
    .await;
    let third = nodes[2].as_ref().unwrap();
    assert!(!valid(third, &record.id));
    assert_eq!(
        third.validate("acme", &second.id, wall_ms()),
        Ok(Validation::Revoked)
    );
    assert!(valid(third, &live.id), "the live session survived");
    for node in nodes.into_iter().flatten() {
        node.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_restart_of_the_whole_cluster() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cluster = Cluster::new();
    let dir = tempfile::tempdir().unwrap();
    let addresses = free_addresses(3);
    let nodes: Vec<Replica> = (0..3)
        .map(|i| start(&cluster, i, &addresses, dir.path()))
        .collect();
    until("every node serves", Duration::from_secs(10), || {
        nodes.iter().all(Replica::can_serve)
    })
    .await;
    let mut sessions = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for n in 0..20 {
            sessions.push(sign_in(node, &format!("u{i}-{n}")).await);
        }
    }
    let revoked = sessions.pop().unwrap();
    revoke_session(&nodes[0], revoked.id).await;
    // One node stops gracefully (a snapshot), the other two are killed.
    nodes[0].snapshot().await.unwrap();
    for node in &nodes {
        node.close();
    }
    drop(nodes);
    // A closed endpoint frees its port once its connections have drained.
    let mut nodes = Vec::new();
    for i in 0..3 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let queue = sessions::net::DEFAULT_PEER_QUEUE_BYTES;
            match try_start(&cluster, i, &addresses, dir.path(), queue) {
                Ok(node) => break nodes.push(node),
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("restarting n{i}: {e}"),
            }
        }
    }
    until("every node serves again", Duration::from_secs(10), || {
        nodes.iter().all(Replica::can_serve)
    })
    .await;
    until(
        "every live session is back on every node",
        Duration::from_secs(10),
        || {
            nodes
                .iter()
                .all(|node| sessions.iter().all(|s| valid(node, &s.id)))
        },
    )
    .await;
    for node in &nodes {
        assert_eq!(
            node.validate("acme", &revoked.id, wall_ms()),
            Ok(Validation::Revoked)
        );
        node.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_keeps_its_sessions_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let open = || sessions::testing::start_solo(dir.path(), TIMING).unwrap();
    let node = open();
    assert!(node.can_serve(), "a sole member serves at once");
    let kept = sign_in(&node, "alice").await;
    let gone = sign_in(&node, "bob").await;
    node.revoke(Revoked::Session {
        tenant: Arc::from("acme"),
        id: gone.id,
        keep_until_ms: wall_ms() + 60_000,
    })
    .await
    .unwrap();
    // Alone it stays: it could never reach a member it added.
    let refused = node
        .propose(
            node.status()
                .await
                .unwrap()
                .membership
                .with_added("n1", "127.0.0.1:9")
                .unwrap(),
        )
        .await;
    assert_eq!(refused, Err(ReplicaError::NoNetwork));
    node.close();
    drop(node);
    let node = open();
    assert!(node.can_serve(), "it restarts as the sole member it was");
    assert!(valid(&node, &kept.id));
    assert_eq!(
        node.validate("acme", &gone.id, wall_ms()),
        Ok(Validation::Revoked)
    );
    node.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_cluster_certificate_cannot_join() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cluster = Cluster::new();
    let stranger_ca = Cluster::new();
    let dir = tempfile::tempdir().unwrap();
    let addresses = free_addresses(2);
    let good = start(&cluster, 0, &addresses, dir.path());
    // The impostor claims to be node 1 but its certificate is from another CA.
    let impostor = start(&stranger_ca, 1, &addresses, dir.path());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!good.can_serve(), "no lease from an impostor");
    assert!(!impostor.can_serve());
    assert_eq!(
        good.validate("acme", &sessions::SessionId::from_bytes([1; 32]), wall_ms()),
        Err(ReplicaError::Unavailable)
    );
    good.close();
    impostor.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_costs_bounded_memory() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cluster = Cluster::new();
    let dir = tempfile::tempdir().unwrap();
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
    // A small bound, so the test need not queue the default 256 MiB.
    let node = start_with_queue(&cluster, 0, &addresses, dir.path(), 1 << 20);
    for i in 0..20_000u32 {
        let record = node
            .table()
            .create(
                &Arc::from("acme"),
                "alice",
                vec![],
                None,
                SessionPolicy::default(),
                wall_ms(),
                &aws_lc_rs::rand::SystemRandom::new(),
            )
            .unwrap();
        node.try_replicate(record);
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
    assert!(node.table().len() >= 20_000);
    node.close();
    holder.abort();
}

/// Frames a peer did not get (here: dropped because its queue, kept tiny,
/// was full) are not lost for good: once the peer has room, every session
/// changed since the oldest lost one is sent again, so a burst of sign-ins
/// on one node ends up valid on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_a_peer_missed_are_sent_again() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cluster = Cluster::new();
    let dir = tempfile::tempdir().unwrap();
    let addresses = free_addresses(3);
    // 16 KiB: a few dozen sessions; a burst of thousands overflows it.
    let nodes: Vec<Replica> = (0..3)
        .map(|i| start_with_queue(&cluster, i, &addresses, dir.path(), 16 << 10))
        .collect();
    until("every node serves", Duration::from_secs(10), || {
        nodes.iter().all(Replica::can_serve)
    })
    .await;
    let burst: Vec<sessions::SessionRecord> = sign_in_many(&nodes[0], 5_000).await;
    until(
        "every session of the burst is valid on every node",
        Duration::from_secs(60),
        || {
            nodes[1..]
                .iter()
                .all(|node| burst.iter().all(|record| valid(node, &record.id)))
        },
    )
    .await;
    let lag = nodes[0].lag();
    assert!(lag.dropped > 0, "the burst overflowed the queues: {lag:?}");
    assert!(
        lag.resent > 0,
        "and what was dropped was sent again: {lag:?}"
    );
    for node in nodes {
        node.close();
    }
}

/// Creates `n` sessions on `node` and hands them to replication at once
/// (as touches are: without waiting for room), so that they queue faster
/// than a tiny queue drains.
async fn sign_in_many(node: &Replica, n: usize) -> Vec<sessions::SessionRecord> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut burst = Vec::with_capacity(n);
    for i in 0..n {
        let record = node
            .table()
            .create(
                &Arc::from("acme"),
                &format!("user{i}"),
                vec!["pwd".into()],
                None,
                SessionPolicy::default(),
                wall_ms(),
                &rng,
            )
            .unwrap();
        node.try_replicate(record.clone());
        burst.push(record);
        if i % 64 == 63 {
            tokio::task::yield_now().await;
        }
    }
    burst
}
