//! 2,000 idle TCP connections against a node started under a lowered
//! open-files limit. With room to grow (1,024 soft, 4,096 hard) the node
//! raises its soft limit and holds them all; held at 1,024 it keeps its
//! HTTP connections under the limit less a reserve, closing the idle ones
//! that make room. Either way `/healthz` answers and the audit journal
//! still ships to Postgres.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::{free_port, session, Serve};
use sigil_proto::Operation;

fn metric(serve: &Serve, name: &str) -> f64 {
    let (_, body) = serve.http("/metrics");
    String::from_utf8(body)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

/// (soft, hard) open-files limits of process `pid`.
fn limits(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// `sigil serve` in `dir` under `prlimit {limit}`.
async fn start_limited(dir: &std::path::Path, limit: &'static str) -> Serve {
    let (quic, http, path) = (free_port(), free_port(), dir.to_owned());
    tokio::task::spawn_blocking(move || {
        Serve::start_wrapped(&path, quic, http, &["prlimit", limit], &[], &[])
    })
    .await
    .unwrap()
}

async fn flood_and_check(serve: &Serve, dir: &std::path::Path) -> Vec<TcpStream> {
    let mut idle = Vec::with_capacity(2_000);
    for _ in 0..2_000 {
        let stream = TcpStream::connect(serve.endpoints.http).unwrap();
        idle.push(stream);
    }
    // Let the node accept what it will.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(serve.http("/healthz").0, 200, "healthz under the flood");
    // Audit shipping still has descriptors: issue, then see it in Postgres.
    let client = serve.client(None).await.unwrap();
    let alice = session(&client, "acme", "alice").await;
    for _ in 0..5 {
        client
            .call(&Operation::IdToken {
                tenant: "acme".into(),
                user: "alice".into(),
                app: "app-eddsa".into(),
                session: alice.clone(),
                nonce: None,
                offline: false,
            })
            .await
            .unwrap();
    }
    common::wait_shipped(dir);
    let log =
        std::fs::read_to_string(dir.join(format!("serve-{}.log", serve.endpoints.quic.port())))
            .unwrap();
    assert!(!log.contains("Too many open files"), "{log}");
    idle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_never_take_the_descriptors_the_node_needs() {
    // This test holds 2,000 sockets itself (as root it may raise its hard
    // limit too).
    let mut own = frontdoor::posture::raise_file_limit();
    if own.soft.is_some_and(|soft| soft <= 2_500) {
        let _ = std::process::Command::new("prlimit")
            .args([
                "--pid",
                &std::process::id().to_string(),
                "--nofile=8192:8192",
            ])
            .status();
        own = frontdoor::posture::raise_file_limit();
    }
    assert!(own.soft.is_none_or(|soft| soft > 2_500), "{own:?}");
    let dir = tempfile::tempdir().unwrap();

    // Room to grow: the node raises its soft limit to the hard one.
    let serve = start_limited(dir.path(), "--nofile=1024:4096").await;
    assert_eq!(limits(serve.child.id()), (4_096, 4_096));
    let idle = flood_and_check(&serve, dir.path()).await;
    assert!(metric(&serve, "sigil_http_connections") >= 1_900.0);
    drop(idle);
    let stop = tokio::task::spawn_blocking(move || serve.stop());
    stop.await.unwrap();

    // Held at 1,024: at most 768 HTTP connections; idle ones make room.
    let serve = start_limited(dir.path(), "--nofile=1024:1024").await;
    let pid = serve.child.id();
    assert_eq!(limits(pid), (1_024, 1_024));
    let idle = flood_and_check(&serve, dir.path()).await;
    assert_eq!(metric(&serve, "sigil_http_connections_max"), 768.0);
    assert!(metric(&serve, "sigil_http_connections") <= 768.0);
    assert!(metric(&serve, "sigil_http_connections_evicted_total") > 1_000.0);
    assert!(
        open_descriptors(pid) < 1_024 - 64,
        "{}",
        open_descriptors(pid)
    );
    drop(idle);
    tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
}
