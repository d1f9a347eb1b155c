//! Three `sigil serve` processes sharing one directory (the embedded
//! default's private Postgres, started by the test so that no node stops
//! it when it stops), replicating sessions with each other; and a UDP
//! relay that can cut one node's cluster traffic.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sigil_proto::client::{CallError, Client};
use sigil_proto::results::ClusterView;
use sigil_proto::ErrorCode;

use super::{free_port, Serve, SIGIL};

/// One node's ports and the arguments it is started with.
#[derive(Clone)]
pub struct NodeSpec {
    pub name: String,
    pub quic: u16,
    pub http: u16,
    pub cluster: u16,
    pub args: Vec<String>,
}

/// A loopback cluster of `sigil serve` processes in `dir`.
pub struct Nodes {
    pub dir: PathBuf,
    pub specs: Vec<NodeSpec>,
    pub serves: Vec<Option<Serve>>,
    postgres: Option<directory::PrivateCluster>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for serve in self.serves.iter_mut() {
            drop(serve.take());
        }
        if let Some(postgres) = self.postgres.take() {
            let _ = postgres.stop();
        }
    }
}

/// Node names `node-1`.. with their cluster ports; `peer_address(i, j)`
/// says where node `i` dials node `j` (a relay, or `j`'s own port).
pub fn specs(n: usize, peer_address: impl Fn(usize, usize, u16) -> String) -> Vec<NodeSpec> {
    let ports: Vec<(u16, u16, u16)> = (0..n)
        .map(|_| (free_port(), free_port(), free_port()))
        .collect();
    (0..n)
        .map(|i| {
            let peers: Vec<String> = (0..n)
                .filter(|j| *j != i)
                .map(|j| format!("node-{}={}", j + 1, peer_address(i, j, ports[j].2)))
                .collect();
            NodeSpec {
                name: format!("node-{}", i + 1),
                quic: ports[i].0,
                http: ports[i].1,
                cluster: ports[i].2,
                args: vec![
                    "--node".into(),
                    format!("node-{}", i + 1),
                    "--cluster-listen".into(),
                    format!("127.0.0.1:{}", ports[i].2),
                    "--peers".into(),
                    peers.join(","),
                ],
            }
        })
        .collect()
}

impl Nodes {
    /// Starts the private Postgres, then the nodes one after another.
    pub fn start(dir: &Path, specs: Vec<NodeSpec>) -> Nodes {
        let postgres = directory::PrivateCluster::start(&dir.join("var/postgres"))
            .expect("private postgres (apt-get install postgresql)");
        let mut nodes = Nodes {
            dir: dir.to_owned(),
            serves: specs.iter().map(|_| None).collect(),
            specs,
            postgres: Some(postgres),
        };
        for i in 0..nodes.specs.len() {
            nodes.start_node(i);
        }
        nodes
    }

    pub fn start_node(&mut self, i: usize) {
        let spec = &self.specs[i];
        let args: Vec<&str> = spec.args.iter().map(String::as_str).collect();
        self.serves[i] = Some(Serve::start_with(&self.dir, spec.quic, spec.http, &args));
    }

    pub fn serve(&self, i: usize) -> &Serve {
        self.serves[i].as_ref().expect("the node runs")
    }

    /// SIGKILL: no shutdown, no snapshot.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut serve) = self.serves[i].take() {
            serve.child.kill().unwrap();
            serve.child.wait().unwrap();
        }
    }

    /// SIGTERM, and waits for a clean exit.
    pub fn stop(&mut self, i: usize) {
        if let Some(serve) = self.serves[i].take() {
            serve.stop();
        }
    }

    pub async fn client(&self, i: usize) -> Client {
        self.serve(i).client(None).await.unwrap()
    }

    pub async fn admin(&self, i: usize) -> Client {
        let admin = self.dir.join("var/credentials/admin");
        self.serve(i).client(Some(&admin)).await.unwrap()
    }

    /// `cluster_status` of node `i`. A node at its in-flight limit may
    /// refuse it `overloaded` (admission is for every caller): asked
    /// again for up to 10 s.
    pub async fn status(&self, i: usize) -> ClusterView {
        let admin = self.admin(i).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            match admin.cluster_status().await {
                Err(CallError::Refused(e))
                    if e.code == ErrorCode::Overloaded && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                answer => break answer.unwrap(),
            }
        };
        admin.close().await;
        status
    }

    /// Waits until every running node serves (holds a majority of leases).
    pub async fn until_serving(&self, within: Duration) {
        let deadline = Instant::now() + within;
        for i in 0..self.serves.len() {
            if self.serves[i].is_none() {
                continue;
            }
            loop {
                let status = self.status(i).await;
                if status.serving {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {} does not serve: {status:?}\n{}",
                    i + 1,
                    self.logs()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// The last lines each node logged.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for spec in &self.specs {
            let log = std::fs::read_to_string(self.dir.join(format!("serve-{}.log", spec.quic)))
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            out.push_str(&format!("--- {} ---\n", spec.name));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// The path of `sigil-perf`, built beside `sigil` by `cargo test --workspace`.
    pub fn perf() -> PathBuf {
        let perf = Path::new(SIGIL).with_file_name("sigil-perf");
        assert!(
            perf.exists(),
            "{} not built: run the workspace's tests (cargo test --workspace) or cargo build -p perf",
            perf.display()
        );
        perf
    }

    /// Starts `sigil-perf load` against the nodes `targets` (indices) in
    /// the background; its report lands in `json`.
    pub fn load(
        &self,
        targets: &[usize],
        rate: u32,
        seconds: u32,
        mix: &str,
        json: &Path,
    ) -> std::process::Child {
        let list: Vec<String> = targets
            .iter()
            .map(|i| format!("127.0.0.1:{}", self.specs[*i].quic))
            .collect();
        Command::new(Nodes::perf())
            .current_dir(&self.dir)
            .args([
                "load",
                "--target",
                &list.join(","),
                "--server-name",
                "localhost",
            ])
            .args([
                "--rate",
                &rate.to_string(),
                "--duration",
                &format!("{seconds}s"),
            ])
            .args(["--mix", mix, "--app", "app-eddsa", "--users", "alice,bob"])
            .args([
                "--threads",
                "1",
                "--connections",
                "2",
                "--sessions-per-user",
                "4",
            ])
            .arg("--json")
            .arg(json)
            .arg("--charts")
            .arg(self.dir.join("charts"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }
}

/// A session check: `Ok(true)` valid, `Ok(false)` `session_invalid`,
/// `Err(code)` any other refusal.
pub async fn check(client: &Client, tenant: &str, session: &str) -> Result<bool, String> {
    match client.session_validate(tenant, session).await {
        Ok(_) => Ok(true),
        Err(CallError::Refused(e)) if e.code == ErrorCode::SessionInvalid => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

/// Waits until `session` is valid on the node behind `client` (it has
/// replicated there), failing the test after `within`.
pub async fn until_valid(client: &Client, tenant: &str, session: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let seen = check(client, tenant, session).await;
        if seen == Ok(true) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "session {session} not valid within {within:?}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A UDP relay in front of one node's cluster port: everything it gets from
/// a source goes on to the node from a socket of its own, and the answers
/// back; while `cut`, it drops both ways. Its threads own its sockets: it
/// runs until the test process ends.
pub struct Relay {
    pub address: SocketAddr,
}

impl Relay {
    pub fn start(to: SocketAddr, cut: Arc<AtomicBool>) -> Relay {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let address = front.local_addr().unwrap();
        let relay = Relay { address };
        std::thread::spawn(move || {
            // One socket towards the node per source, so its answers can
            // be told apart.
            let mut backs: Vec<(SocketAddr, Arc<UdpSocket>)> = Vec::new();
            let mut buffer = vec![0u8; 65_536];
            while let Ok((n, source)) = front.recv_from(&mut buffer) {
                let back = match backs.iter().find(|(s, _)| *s == source) {
                    Some((_, back)) => Arc::clone(back),
                    None => {
                        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
                        back.connect(to).unwrap();
                        backs.push((source, Arc::clone(&back)));
                        let (front, reader, cut) =
                            (Arc::clone(&front), Arc::clone(&back), Arc::clone(&cut));
                        std::thread::spawn(move || answer(&reader, &front, source, &cut));
                        back
                    }
                };
                if !cut.load(Ordering::Acquire) {
                    // Refused (the node is not up yet): QUIC resends.
                    let _ = back.send(&buffer[..n]);
                }
            }
        });
        relay
    }
}

/// Relays the node's answers from `back` to `source` through `front`.
fn answer(back: &UdpSocket, front: &UdpSocket, source: SocketAddr, cut: &AtomicBool) {
    let mut buffer = vec![0u8; 65_536];
    loop {
        match back.recv(&mut buffer) {
            Ok(n) => {
                if !cut.load(Ordering::Acquire) {
                    let _ = front.send_to(&buffer[..n], source);
                }
            }
            // The node was not up yet (an ICMP port unreachable): go on.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(_) => return,
        }
    }
}
