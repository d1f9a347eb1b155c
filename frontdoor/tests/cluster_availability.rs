//! A three-node cluster of `sigil serve` processes keeps serving when one
//! node dies (quorum leases), honours a revoke made while that node was
//! down once it is back, loses no live session in a rolling restart, fails
//! closed on the minority side of a partition, and keeps a removed node out
//! until it is added again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{check, specs, until_valid, Nodes, Relay};
use common::session;
use sigil_proto::results::ClusterView;
use sigil_proto::Operation;

/// `lease_ms` of the embedded default, and the wait it allows for drift.
const LEASE: Duration = Duration::from_millis(2_000);
const REVOKE_WAIT: Duration = Duration::from_millis(2_060);

fn report(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_stops_nothing_and_misses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Nodes::start(
        dir.path(),
        specs(3, |_, _, port| format!("127.0.0.1:{port}")),
    );
    nodes.until_serving(Duration::from_secs(60)).await;
    let first = nodes.client(0).await;
    let live = session(&first, "acme", "alice").await;
    let doomed = session(&first, "acme", "bob").await;
    let third = nodes.client(2).await;
    until_valid(&third, "acme", &doomed, Duration::from_secs(10)).await;
    third.close().await;

    // A light load spread over the two nodes that survive.
    let json = dir.path().join("load.json");
    let mut load = nodes.load(&[0, 1], 1_000, 12, "id-token=90,session-validate=10", &json);
    tokio::time::sleep(Duration::from_secs(3)).await;
    nodes.kill(2);
    let killed = Instant::now();

    // The survivors never stop answering; a revoke made now returns once
    // node 3's grants ran out.
    let second = nodes.client(1).await;
    let started = Instant::now();
    first
        .call(&Operation::SessionRevoke {
            tenant: "acme".into(),
            session: doomed.clone(),
        })
        .await
        .unwrap();
    let revoke_took = started.elapsed();
    assert!(
        revoke_took < REVOKE_WAIT + Duration::from_secs(2),
        "a revoke with a node down returns within the lease (+2 s): {revoke_took:?}"
    );
    let mut refusals = 0;
    while killed.elapsed() < LEASE + Duration::from_secs(3) {
        for client in [&first, &second] {
            match check(client, "acme", &live).await {
                Ok(true) => {}
                other => refusals += usize::from(other.is_err()),
            }
            assert_eq!(check(client, "acme", &doomed).await, Ok(false));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(refusals, 0, "the survivors served every check");
    assert!(load.wait().unwrap().success());
    let load = report(&json);
    assert_eq!(load["errors"], serde_json::json!({}), "{load}");
    assert!(load["achieved_rps"].as_f64().unwrap() > 900.0, "{load}");

    // Node 3 restarts from its disk: it refuses the session revoked while it
    // was down and accepts the live one.
    nodes.start_node(2);
    nodes.until_serving(Duration::from_secs(30)).await;
    let third = nodes.client(2).await;
    assert_eq!(check(&third, "acme", &doomed).await, Ok(false));
    assert_eq!(check(&third, "acme", &live).await, Ok(true));
    eprintln!(
        "figures: revoke with a node down {revoke_took:?}; survivors refused {refusals} checks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_loses_no_live_session() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Nodes::start(
        dir.path(),
        specs(3, |_, _, port| format!("127.0.0.1:{port}")),
    );
    nodes.until_serving(Duration::from_secs(60)).await;
    let mut live = Vec::new();
    for i in 0..3 {
        let client = nodes.client(i).await;
        for user in ["alice", "bob", "alice"] {
            live.push(session(&client, "acme", user).await);
        }
        client.close().await;
    }
    for restarting in 0..3 {
        // Logins go on against the other two while this one restarts.
        let others: Vec<usize> = (0..3).filter(|i| *i != restarting).collect();
        let json = dir.path().join(format!("restart-{restarting}.json"));
        let mut load = nodes.load(&others, 1_000, 8, "login", &json);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let down = Instant::now();
        nodes.stop(restarting);
        nodes.start_node(restarting);
        nodes.until_serving(Duration::from_secs(30)).await;
        eprintln!(
            "figures: node-{} back after {:?}",
            restarting + 1,
            down.elapsed()
        );
        assert!(load.wait().unwrap().success());
        let load = report(&json);
        assert_eq!(
            load["errors"],
            serde_json::json!({}),
            "logins on the other nodes never failed: {load}"
        );
        // A session made on the restarted node's peers meanwhile, and every
        // earlier one, is known everywhere.
        let client = nodes.client(restarting).await;
        for id in &live {
            assert_eq!(
                check(&client, "acme", id).await,
                Ok(true),
                "session survived"
            );
        }
        live.push(session(&client, "acme", "bob").await);
        client.close().await;
    }
    for i in 0..3 {
        let client = nodes.client(i).await;
        for id in &live {
            assert_eq!(check(&client, "acme", id).await, Ok(true));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_majority_fails_closed_and_the_majority_serves() {
    let dir = tempfile::tempdir().unwrap();
    // Every byte of node 3's cluster traffic goes through a relay.
    let cut = Arc::new(AtomicBool::new(false));
    let specs = specs(3, |i, j, port| {
        let direct = format!("127.0.0.1:{port}");
        if i == 2 || j == 2 {
            // The relay's threads own its sockets: it runs for the test.
            Relay::start(direct.parse().unwrap(), Arc::clone(&cut))
                .address
                .to_string()
        } else {
            direct
        }
    });
    let nodes = Nodes::start(dir.path(), specs);
    nodes.until_serving(Duration::from_secs(60)).await;
    let clients = [
        nodes.client(0).await,
        nodes.client(1).await,
        nodes.client(2).await,
    ];
    let id = session(&clients[0], "acme", "alice").await;
    until_valid(&clients[2], "acme", &id, Duration::from_secs(10)).await;

    cut.store(true, Ordering::Release);
    let since = Instant::now();
    let mut closed_after = None;
    while since.elapsed() < LEASE + Duration::from_secs(3) {
        for majority in &clients[..2] {
            assert_eq!(
                check(majority, "acme", &id).await,
                Ok(true),
                "the majority serves"
            );
        }
        match check(&clients[2], "acme", &id).await {
            Err(e) if e.contains("unavailable") => {
                closed_after.get_or_insert(since.elapsed());
            }
            Ok(true) => assert!(
                closed_after.is_none(),
                "it never serves again while cut off"
            ),
            other => panic!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let closed_after = closed_after.expect("the isolated node failed closed");
    assert!(
        closed_after <= LEASE + Duration::from_millis(200),
        "{closed_after:?}"
    );

    cut.store(false, Ordering::Release);
    let healed = Instant::now();
    while check(&clients[2], "acme", &id).await != Ok(true) {
        assert!(
            healed.elapsed() < LEASE + Duration::from_secs(3),
            "serves again once healed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "figures: isolated node failed closed after {closed_after:?}; served again {:?} after the heal",
        healed.elapsed()
    );
}

/// Runs `sigil ARGS` against node `quic` as the admin; returns whether it
/// succeeded and its `result` (or the whole output when it failed).
fn cli(dir: &std::path::Path, quic: u16, args: &[&str]) -> (bool, serde_json::Value) {
    let output = std::process::Command::new(common::SIGIL)
        .current_dir(dir)
        .args(args)
        .args([
            "--target",
            &format!("127.0.0.1:{quic}"),
            "--server-name",
            "localhost",
        ])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| serde_json::json!({"stderr": String::from_utf8_lossy(&output.stderr)}));
    let ok = output.status.success();
    (ok, if ok { json["result"].clone() } else { json })
}

/// A cluster result as `sigil client` printed it, read as the typed view
/// (which also checks that the printed JSON is one).
fn cluster_view(result: &serde_json::Value) -> ClusterView {
    serde_json::from_value(result.clone())
        .unwrap_or_else(|e| panic!("not a cluster view ({e}): {result}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_node_is_refused_until_added_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Nodes::start(
        dir.path(),
        specs(3, |_, _, port| format!("127.0.0.1:{port}")),
    );
    nodes.until_serving(Duration::from_secs(60)).await;
    let (quic, third_cluster) = (nodes.specs[0].quic, nodes.specs[2].cluster);
    nodes.kill(2);

    let (ok, removed) = cli(dir.path(), quic, &["cluster", "remove", "--node", "node-3"]);
    assert!(ok, "{removed}");
    let removed = cluster_view(&removed);
    assert_eq!(removed.epoch, 1, "{removed:?}");
    assert!(!removed.members.contains_key("node-3"), "{removed:?}");
    let (ok, again) = cli(dir.path(), quic, &["cluster", "remove", "--node", "node-3"]);
    assert!(!ok, "removing a non-member is refused: {again}");
    let (ok, itself) = cli(dir.path(), quic, &["cluster", "remove", "--node", "node-1"]);
    assert!(!ok, "a node does not remove itself: {itself}");

    // Node 3 comes back with its old view: it is told it was removed.
    nodes.start_node(2);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = nodes.status(2).await;
        if !status.member {
            assert!(!status.serving, "{status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = nodes.client(0).await;
    let id = session(&first, "acme", "alice").await;
    let third = nodes.client(2).await;
    assert!(
        check(&third, "acme", &id)
            .await
            .unwrap_err()
            .contains("unavailable"),
        "a removed node serves nothing"
    );

    let (ok, added) = cli(
        dir.path(),
        quic,
        &[
            "cluster",
            "add",
            "--node",
            "node-3",
            "--address",
            &format!("127.0.0.1:{third_cluster}"),
        ],
    );
    assert!(ok, "{added}");
    assert_eq!(cluster_view(&added).epoch, 2, "{added}");
    nodes.until_serving(Duration::from_secs(30)).await;
    assert_eq!(check(&third, "acme", &id).await, Ok(true));
    let (ok, status) = cli(dir.path(), quic, &["cluster", "status"]);
    assert!(ok);
    let status = cluster_view(&status);
    assert_eq!(status.members.len(), 3, "{status:?}");
    assert_eq!(status.fence.map(|f| f.committed), Some(true), "{status:?}");
}

#[test]
fn relay_forwards_both_ways_until_cut() {
    let echo = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 1500];
        while let Ok((n, from)) = echo.recv_from(&mut buffer) {
            let _ = echo.send_to(&buffer[..n], from);
        }
    });
    let cut = Arc::new(AtomicBool::new(false));
    let relay = Relay::start(to, Arc::clone(&cut));
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    client.send_to(b"ping", relay.address).unwrap();
    let mut buffer = [0u8; 16];
    let (n, from) = client.recv_from(&mut buffer).unwrap();
    assert_eq!((&buffer[..n], from), (&b"ping"[..], relay.address));
    cut.store(true, Ordering::Release);
    client.send_to(b"ping", relay.address).unwrap();
    assert!(
        client.recv_from(&mut buffer).is_err(),
        "cut: nothing comes back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_alone_refuses_membership_changes_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (quic, http) = (common::free_port(), common::free_port());
    let serve = common::Serve::start(dir.path(), quic, http);
    let (ok, refused) = cli(
        dir.path(),
        quic,
        &[
            "cluster",
            "add",
            "--node",
            "node-2",
            "--address",
            "127.0.0.1:9",
        ],
    );
    assert!(!ok, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("--peers"),
        "the message names the fix: {refused}"
    );
    let (ok, status) = cli(dir.path(), quic, &["cluster", "status"]);
    assert!(ok, "{status}");
    let status = cluster_view(&status);
    assert_eq!((status.epoch, status.serving), (0, true), "{status:?}");
    assert!(status.fence.is_none(), "no epoch was taken: {status:?}");
    serve.stop();
}
