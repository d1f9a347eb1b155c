//! Running `sigil serve` as a process for the end-to-end tests.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::zombie_processes
)]

// Issue 18: the authentication tests' helpers.
pub mod auth;
pub mod cluster;
pub mod oauth;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sigil_proto::client::{CallError, Client, ClientConfig};
use sigil_proto::credentials::{load_ca_certificate, Credentials};
use sigil_proto::target::Endpoints;

pub const SIGIL: &str = env!("CARGO_BIN_EXE_sigil");

/// A port free for both UDP (QUIC) and TCP (HTTP) on loopback right now.
/// A port free for UDP and TCP on 127.0.0.1, below Linux's ephemeral
/// range (32768-60999): a port from that range, once a node that held it
/// is killed, can be taken at once as the local port of some process's
/// outgoing connection, and the node restarted on it cannot bind it again.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    loop {
        let mut random = std::collections::hash_map::RandomState::new().build_hasher();
        random.write_u32(std::process::id());
        let port = 20_000 + (random.finish() % 12_768) as u16;
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if udp.is_ok() && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Reads an HTTP/1.1 answer to its end: the status (0: no HTTP answer at
/// all, e.g. from a TLS port) and the body.
fn status_and_body(stream: &mut std::net::TcpStream) -> (u16, Vec<u8>) {
    use std::io::Read;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.as_bytes().to_vec())
        .unwrap_or_default();
    (status, body)
}

pub struct Serve {
    pub child: Child,
    pub dir: PathBuf,
    pub endpoints: Endpoints,
}

impl Drop for Serve {
    fn drop(&mut self) {
        // A failed test must not leave the node running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Serve {
    pub fn start(dir: &Path, quic: u16, http: u16) -> Serve {
        Serve::start_with(dir, quic, http, &[])
    }

    /// Starts with extra arguments (e.g. `--config FILE`).
    pub fn start_with(dir: &Path, quic: u16, http: u16, extra: &[&str]) -> Serve {
        Serve::start_with_env(dir, quic, http, extra, &[])
    }

    /// `sigil serve` with `env` added to its environment.
    pub fn start_with_env(
        dir: &Path,
        quic: u16,
        http: u16,
        extra: &[&str],
        env: &[(&str, &Path)],
    ) -> Serve {
        Serve::start_wrapped(dir, quic, http, &[], extra, env)
    }

    /// `sigil serve` run by `wrapper` (e.g. `["prlimit", "--nofile=1024:1024"]`,
    /// which execs it: the child's pid is the node's).
    pub fn start_wrapped(
        dir: &Path,
        quic: u16,
        http: u16,
        wrapper: &[&str],
        extra: &[&str],
        env: &[(&str, &Path)],
    ) -> Serve {
        let _ = std::fs::remove_file(dir.join("var/endpoints.json"));
        let log = std::fs::File::create(dir.join(format!("serve-{quic}.log"))).unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(SIGIL);
                command
            }
            None => Command::new(SIGIL),
        };
        let mut child = command
            .envs(env.iter().copied())
            .current_dir(dir)
            .args([
                "serve",
                "--quic-listen",
                &format!("127.0.0.1:{quic}"),
                "--http-listen",
                &format!("127.0.0.1:{http}"),
                "--control-listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(endpoints) = Endpoints::load(&dir.join("var")) {
                return Serve {
                    child,
                    dir: dir.to_owned(),
                    endpoints,
                };
            }
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            assert!(
                Instant::now() < deadline && !exited,
                "sigil serve did not start: {}",
                std::fs::read_to_string(dir.join(format!("serve-{quic}.log"))).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "graceful shutdown exits 0: {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("sigil serve did not stop on SIGTERM");
    }

    pub fn var(&self) -> PathBuf {
        self.dir.join("var")
    }

    pub fn http(&self, path: &str) -> (u16, Vec<u8>) {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(self.endpoints.http).unwrap();
        // A server that refuses the request (a TLS port reading plain text)
        // may close before the write lands: a broken pipe or reset is "no
        // HTTP answer", the same as an empty read.
        if write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        .is_err()
        {
            return (0, Vec::new());
        }
        status_and_body(&mut stream)
    }

    /// `POST path` with `body` of `content_type` (issue 19's OAuth
    /// endpoints): the status and the body.
    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> (u16, Vec<u8>) {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(self.endpoints.http).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        // The node may answer (413) and close before reading a large body.
        if stream.write_all(head.as_bytes()).is_err() {
            return (0, Vec::new());
        }
        let _ = stream.write_all(body);
        status_and_body(&mut stream)
    }

    pub async fn client(&self, cert_dir: Option<&Path>) -> Result<Client, CallError> {
        let cert_dir = cert_dir.map_or_else(
            || self.var().join("credentials/frontend"),
            Path::to_path_buf,
        );
        Client::connect(ClientConfig {
            target: self.endpoints.quic,
            server_name: "localhost".into(),
            ca: load_ca_certificate(&self.var().join("ca/ca.pem")).unwrap(),
            identity: Credentials::load(&cert_dir).ok(),
            streams: 2,
            ack_threshold: sigil_proto::tls::ACK_THRESHOLD,
        })
        .await
    }
}

/// Signs `user` of `tenant` in and returns the session id.
pub async fn session(client: &Client, tenant: &str, user: &str) -> String {
    client
        .session_create(tenant, user, &["pwd"], None)
        .await
        .unwrap()
        .session
}

/// `sigil audit status` in `dir`, as JSON.
pub fn audit_status(dir: &Path) -> serde_json::Value {
    let status = Command::new(SIGIL)
        .current_dir(dir)
        .args(["audit", "status"])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "audit status: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    serde_json::from_slice(&status.stdout).unwrap()
}

/// Waits (30 s at most) until the running node in `dir` has shipped every
/// journal record to Postgres.
pub fn wait_shipped(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = audit_status(dir);
        if status["unshipped_records"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "never shipped: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `sigil audit verify --tenant T` in `dir`, once the running node has
/// shipped its journal (verify itself ships nothing): asserts the chain is
/// whole and returns the report.
pub fn audit_verify(dir: &Path, tenant: &str) -> serde_json::Value {
    wait_shipped(dir);
    let verify = Command::new(SIGIL)
        .current_dir(dir)
        .args(["audit", "verify", "--tenant", tenant])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "audit chain of {tenant}: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    serde_json::from_slice(&verify.stdout).unwrap()
}

/// A superuser connection to the node's private Postgres (`var/postgres`),
/// for what a test does behind Sigil's back.
pub async fn node_database(var: &Path) -> tokio_postgres::Client {
    let postgres = directory::PrivateCluster::start(&var.join("postgres")).unwrap();
    let (db, connection) = postgres
        .config("sigil")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    db
}

/// Polls `path` until it answers `want`, while it answers 503 (for
/// `within` at most); returns the body.
pub fn wait_for_status(serve: &Serve, path: &str, want: u16, within: Duration) -> Vec<u8> {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = serve.http(path);
        if status == want {
            return body;
        }
        assert!(
            status == 503 && Instant::now() < deadline,
            "{path}: {status} while waiting for {want}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Mints a caller with `sigil admin frontend add` in `dir` (a node's
/// directory): `name`, for `tenants` (comma-separated or `*`), with
/// `flags` (`--admin`, `--trusted-assertions`: a front end that asserts
/// sign-ins with `session_create`). Returns its credentials' directory
/// and what the command printed.
pub fn frontend_add(
    dir: &Path,
    name: &str,
    tenants: &str,
    flags: &[&str],
) -> (PathBuf, serde_json::Value) {
    let out = dir.join(name);
    let out_text = out.to_str().unwrap().to_owned();
    let mut args = vec![
        "admin",
        "frontend",
        "add",
        "--name",
        name,
        "--tenants",
        tenants,
        "--out",
        &out_text,
    ];
    args.extend_from_slice(flags);
    let (ok, printed) = sigil(dir, &args);
    assert!(ok, "{printed}");
    (out, printed)
}

/// Runs `sigil` in `dir` and returns what it printed and its exit status.
pub fn sigil_output(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(SIGIL)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

/// Runs `sigil` in `dir` and returns whether it succeeded and its stdout
/// as JSON (panicking with its output when that is not JSON).
pub fn sigil(dir: &Path, args: &[&str]) -> (bool, serde_json::Value) {
    let output = sigil_output(dir, args);
    let value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "{args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.success(), value)
}
