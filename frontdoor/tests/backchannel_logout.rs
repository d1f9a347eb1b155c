//! OpenID Connect Back-Channel Logout 1.0 (issue 19) on a running node:
//! apps registered with `--backchannel-logout-uri` are sent a logout token
//! when a session they got a token in ends (session revoke, user revoke,
//! deactivation), and only they; each token is checked by PyJWT against
//! the served JWKS in a receiver on loopback (scripts/logout_receiver.py).
//! A dead receiver and a slow one slow neither issuance nor the revoke
//! answer; their attempts are bounded, counted in /metrics and audited.
//! Another tenant's apps are never told, even of a user of the same login.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, node_database, session, sigil, wait_shipped, Serve};
use serde_json::Value;
use signer::conformance::external::python;

/// The receiver: a Python process, killed with the test.
struct Receiver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    fn start(dir: &Path, jwks_url: &str, issuer: &str) -> Receiver {
        Receiver::start_tls(dir, "plain", jwks_url, issuer, None)
    }

    /// A receiver named `name` (its files in `dir`), HTTPS with `tls`
    /// (certificate and key PEM files).
    fn start_tls(
        dir: &Path,
        name: &str,
        jwks_url: &str,
        issuer: &str,
        tls: Option<(&Path, &Path)>,
    ) -> Receiver {
        let log = dir.join(format!("logout-received-{name}.jsonl"));
        let config = dir.join(format!("receiver-{name}.json"));
        let tls = tls.map(|(cert, key)| serde_json::json!({"cert": cert, "key": key}));
        let input = serde_json::json!({
            "jwks_url": jwks_url, "issuer": issuer, "log": log, "slow_s": 3, "tls": tls,
        });
        std::fs::write(&config, input.to_string()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/logout_receiver.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(&config)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let port = serde_json::from_str::<Value>(&first)
            .unwrap_or_else(|_| panic!("receiver said {first:?}"))["port"]
            .as_u64()
            .unwrap() as u16;
        Receiver { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn https_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// Every POST received so far.
    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// Waits (20 s at most) until `count` tokens for `session` (their
    /// `sid` derived from it) reached `path`.
    fn until(&self, path: &str, session: &str, count: usize) -> Vec<Value> {
        let sid = signer::public_session_id(session);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got: Vec<Value> = self
                .received()
                .into_iter()
                .filter(|e| e["path"] == path && e["claims"]["sid"] == sid)
                .collect();
            if got.len() >= count {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "no logout token for {sid} at {path}: {:?}",
                self.received()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn admin(dir: &Path, args: &[&str]) -> Value {
    let mut full = vec!["admin"];
    full.extend_from_slice(args);
    let (ok, out) = sigil(dir, &full);
    assert!(ok, "{args:?}: {out}");
    out
}

fn add_app(dir: &Path, tenant: &str, name: &str, logout_uri: Option<&str>) {
    let mut args = vec![
        "app", "add", "--tenant", tenant, "--name", name, "--alg", "ES256", "--assign", "everyone",
    ];
    if let Some(uri) = logout_uri {
        args.extend(["--backchannel-logout-uri", uri]);
    }
    admin(dir, &args);
}

/// A counter's value in /metrics.
fn metric(serve: &Serve, line: &str) -> u64 {
    let (_, body) = serve.http("/metrics");
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or(0)
}

fn sid_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_sessions_are_told_to_the_apps_that_got_tokens_in_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    let config = d.join("serve.toml");
    std::fs::write(
        &config,
        "[logout]\nattempts = 3\ntimeout_ms = 1000\nbackoff_ms = 100\nsettle_ms = 100\n",
    )
    .unwrap();
    let (quic, http, path) = (free_port(), free_port(), d.clone());
    let serve = tokio::task::spawn_blocking(move || {
        Serve::start_with(&path, quic, http, &["--config", config.to_str().unwrap()])
    })
    .await
    .unwrap();
    let client = serve.client(None).await.unwrap();

    // The issuer as tokens carry it; the JWKS the receiver verifies with.
    let s0 = session(&client, "acme", "alice").await;
    let probe = client
        .id_token("acme", "alice", "app-es256", &s0, None)
        .await
        .unwrap();
    let issuer = sid_of(&probe.token)["iss"].as_str().unwrap().to_owned();
    let jwks = format!(
        "http://127.0.0.1:{}/t/acme/.well-known/jwks.json",
        serve.endpoints.http.port()
    );
    let receiver = Receiver::start(&d, &jwks, &issuer);

    // Apps: one told, one registered that never gets a token, a dead one
    // (a closed port), a slow one; and globex's app of the same name.
    let dead_port = free_port();
    add_app(
        &d,
        "acme",
        "rp-bcl",
        Some(&receiver.url("/bcl/rp-bcl/acme")),
    );
    add_app(
        &d,
        "acme",
        "rp-quiet",
        Some(&receiver.url("/bcl/rp-quiet/acme")),
    );
    add_app(
        &d,
        "acme",
        "rp-dead",
        Some(&format!("http://127.0.0.1:{dead_port}/bcl")),
    );
    add_app(
        &d,
        "acme",
        "rp-slow",
        Some(&receiver.url("/slow/rp-slow/acme")),
    );
    add_app(&d, "acme", "rp-none", None);
    add_app(
        &d,
        "globex",
        "rp-bcl",
        Some(&receiver.url("/bcl/rp-bcl/globex")),
    );

    // A URI that is not an absolute http(s) URL is refused.
    for bad in [
        "ftp://rp.test/x",
        "/relative",
        "https://rp.test/x#f",
        "https://u:p@rp.test/",
    ] {
        let (ok, out) = sigil(
            &d,
            &[
                "admin",
                "app",
                "add",
                "--tenant",
                "acme",
                "--name",
                "rp-bad",
                "--alg",
                "ES256",
                "--backchannel-logout-uri",
                bad,
            ],
        );
        assert!(!ok, "{bad} accepted");
        assert_eq!(out["error"]["code"], "bad_request", "{bad}: {out}");
    }
    let listed = admin(&d, &["app", "list", "--tenant", "acme"]);
    let rp = listed["result"]["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "rp-bcl")
        .unwrap()
        .clone();
    assert_eq!(
        rp["backchannel_logout_uri"],
        receiver.url("/bcl/rp-bcl/acme")
    );

    // globex: carol gets a token from its rp-bcl; her session stays.
    let carol = session(&client, "globex", "carol").await;
    client
        .id_token("globex", "carol", "rp-bcl", &carol, None)
        .await
        .unwrap();

    // 1. session_revoke: rp-bcl got an ID token (with a nonce) and an
    // access token, rp-none one; rp-quiet none.
    let s1 = session(&client, "acme", "alice").await;
    let id = client
        .id_token("acme", "alice", "rp-bcl", &s1, Some("n-123"))
        .await
        .unwrap();
    let sid = sid_of(&id.token)["sid"].as_str().unwrap().to_owned();
    assert_eq!(sid, signer::public_session_id(&s1), "ID tokens carry sid");
    assert_ne!(sid, s1.as_str(), "never the session id, a bearer secret");
    client
        .access_token("acme", "alice", "rp-bcl", &s1, &["openid"])
        .await
        .unwrap();
    client
        .id_token("acme", "alice", "rp-none", &s1, None)
        .await
        .unwrap();
    client.session_revoke("acme", &s1).await.unwrap();
    let told = receiver.until("/bcl/rp-bcl/acme", &s1, 1);
    assert!(told.iter().all(|e| e["ok"] == true), "{told:?}");
    let claims = &told[0]["claims"];
    assert_eq!(claims["aud"], "rp-bcl");
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["sub"], sid_of(&id.token)["sub"]);
    assert!(claims.get("nonce").is_none());
    assert_eq!(told[0]["header"]["typ"], "logout+jwt");

    // 2. user_revoke_sessions: both of bob's sessions with tokens.
    let (b1, b2) = (
        session(&client, "acme", "bob").await,
        session(&client, "acme", "bob").await,
    );
    for s in [&b1, &b2] {
        client
            .id_token("acme", "bob", "rp-bcl", s, None)
            .await
            .unwrap();
    }
    client.user_revoke_sessions("acme", "bob").await.unwrap();
    receiver.until("/bcl/rp-bcl/acme", &b1, 1);
    receiver.until("/bcl/rp-bcl/acme", &b2, 1);

    // 3. A dead and a slow receiver: the revoke answers at once, issuance
    // goes on at its pace while they are tried.
    let s3 = session(&client, "acme", "alice").await;
    for app in ["rp-dead", "rp-slow"] {
        client
            .id_token("acme", "alice", app, &s3, None)
            .await
            .unwrap();
    }
    let failed_before = metric(&serve, "sigil_logout_tokens_total{outcome=\"failed\"}");
    let attempts_before = metric(&serve, "sigil_logout_attempts_total");
    let started = Instant::now();
    client.session_revoke("acme", &s3).await.unwrap();
    let revoke_took = started.elapsed();
    assert!(
        revoke_took < Duration::from_millis(900),
        "revoke took {revoke_took:?}"
    );
    let s4 = session(&client, "acme", "alice").await;
    let mut slowest = Duration::ZERO;
    let until = Instant::now() + Duration::from_millis(2_500);
    while Instant::now() < until {
        let t = Instant::now();
        client
            .id_token("acme", "alice", "app-es256", &s4, None)
            .await
            .unwrap();
        slowest = slowest.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        slowest < Duration::from_millis(500),
        "an issuance took {slowest:?}"
    );
    // Both given up on after exactly three attempts each.
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&serve, "sigil_logout_tokens_total{outcome=\"failed\"}") < failed_before + 2 {
        assert!(Instant::now() < deadline, "never gave up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metric(&serve, "sigil_logout_attempts_total") - attempts_before,
        6,
        "three attempts per token"
    );

    // 4. user_deactivate: told with the user's id as sub.
    let s5 = session(&client, "acme", "bob").await;
    let bob = client
        .id_token("acme", "bob", "rp-bcl", &s5, None)
        .await
        .unwrap();
    client.user_deactivate("acme", "bob").await.unwrap();
    let told = receiver.until("/bcl/rp-bcl/acme", &s5, 1);
    assert_eq!(told[0]["claims"]["sub"], sid_of(&bob.token)["sub"]);

    // 5. globex: alice of acme ended everywhere, yet globex's app of the
    // same name was never told; neither was rp-quiet, which got no token.
    client.user_revoke_sessions("acme", "alice").await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let all = receiver.received();
    assert!(
        all.iter()
            .all(|e| e["path"] != "/bcl/rp-bcl/globex" && e["path"] != "/bcl/rp-quiet/acme"),
        "told an app that must not be: {all:?}"
    );
    assert!(
        all.iter()
            .filter(|e| e["path"].as_str().unwrap().starts_with("/bcl/"))
            .all(|e| e["ok"] == true),
        "a logout token failed the receiver's checks: {all:?}"
    );
    assert!(metric(&serve, "sigil_logout_tokens_total{outcome=\"delivered\"}") >= 4);

    // Outcomes are in acme's audit chain, none in globex's.
    wait_shipped(&d);
    let db = node_database(&serve.var()).await;
    let rows = db
        .query(
            "SELECT t.slug, e.kind, e.detail FROM audit_events e JOIN tenants t ON t.tenant_id = e.tenant_id
              WHERE e.kind LIKE 'logout.%' ORDER BY e.at_ms",
            &[],
        )
        .await
        .unwrap();
    let kinds: Vec<(String, String, Value)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert!(kinds.iter().all(|(slug, ..)| slug == "acme"), "{kinds:?}");
    assert!(kinds.iter().any(|(_, kind, detail)| kind == "logout.failed"
        && detail["app"] == "rp-dead"
        && detail["attempts"] == 3));
    assert!(kinds
        .iter()
        .any(|(_, kind, detail)| kind == "logout.delivered" && detail["app"] == "rp-bcl"));
}

/// Three nodes: the token is issued on node-2, the session revoked on
/// node-1; node-1 knows the app from the replicated session and tells it,
/// once (node-2, which issued, sends nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_issued_on_one_node_is_told_by_the_node_that_ends_the_session() {
    use common::cluster::{specs, Nodes};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    let config = d.join("serve.toml");
    std::fs::write(
        &config,
        "[logout]\nattempts = 3\ntimeout_ms = 1000\nsettle_ms = 300\n",
    )
    .unwrap();
    let mut nodes = specs(3, |_, _, port| format!("127.0.0.1:{port}"));
    for spec in &mut nodes {
        spec.args
            .extend(["--config".into(), config.display().to_string()]);
    }
    let owned = d.clone();
    let nodes = tokio::task::spawn_blocking(move || Nodes::start(&owned, nodes))
        .await
        .unwrap();
    nodes.until_serving(Duration::from_secs(60)).await;
    let (one, two) = (nodes.client(0).await, nodes.client(1).await);

    let s0 = session(&one, "acme", "alice").await;
    let probe = one
        .id_token("acme", "alice", "app-es256", &s0, None)
        .await
        .unwrap();
    let issuer = sid_of(&probe.token)["iss"].as_str().unwrap().to_owned();
    let jwks = format!(
        "http://127.0.0.1:{}/t/acme/.well-known/jwks.json",
        nodes.serve(0).endpoints.http.port()
    );
    let receiver = Receiver::start(&d, &jwks, &issuer);
    add_app(
        &d,
        "acme",
        "rp-bcl",
        Some(&receiver.url("/bcl/rp-bcl/acme")),
    );

    // Issued on node-2 (which must know the new app first).
    let s = session(&two, "acme", "alice").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while two
        .id_token("acme", "alice", "rp-bcl", &s, None)
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "node-2 never saw rp-bcl");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The session reaches node-1 (created on node-2), then node-1 ends it.
    common::cluster::until_valid(&one, "acme", &s, Duration::from_secs(10)).await;
    one.session_revoke("acme", &s).await.unwrap();
    let told = receiver.until("/bcl/rp-bcl/acme", &s, 1);
    assert_eq!(told[0]["ok"], true, "{told:?}");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let all: Vec<Value> = receiver
        .received()
        .into_iter()
        .filter(|e| e["claims"]["sid"] == signer::public_session_id(&s).as_str())
        .collect();
    assert_eq!(all.len(), 1, "told once: {all:?}");
}

/// `https` logout URIs: the receiver's certificate is checked against
/// `[logout] ca_file`; a receiver whose certificate is not trusted is never
/// sent the token (the TLS handshake fails; counted as failed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_receivers_are_checked_against_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    let write_pair = |name: &str| {
        let pair = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let (cert, key) = (
            d.join(format!("{name}.pem")),
            d.join(format!("{name}-key.pem")),
        );
        std::fs::write(&cert, pair.cert.pem()).unwrap();
        std::fs::write(&key, pair.signing_key.serialize_pem()).unwrap();
        (cert, key)
    };
    let (trusted, trusted_key) = write_pair("trusted");
    let (untrusted, untrusted_key) = write_pair("untrusted");
    let config = d.join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "[logout]\nattempts = 2\ntimeout_ms = 1000\nbackoff_ms = 100\nsettle_ms = 100\nca_file = {:?}\n",
            trusted.display().to_string()
        ),
    )
    .unwrap();
    let (quic, http, path) = (free_port(), free_port(), d.clone());
    let serve = tokio::task::spawn_blocking(move || {
        Serve::start_with(&path, quic, http, &["--config", config.to_str().unwrap()])
    })
    .await
    .unwrap();
    let client = serve.client(None).await.unwrap();
    let s0 = session(&client, "acme", "alice").await;
    let probe = client
        .id_token("acme", "alice", "app-es256", &s0, None)
        .await
        .unwrap();
    let issuer = sid_of(&probe.token)["iss"].as_str().unwrap().to_owned();
    let jwks = format!(
        "http://127.0.0.1:{}/t/acme/.well-known/jwks.json",
        serve.endpoints.http.port()
    );
    let good = Receiver::start_tls(
        &d,
        "trusted",
        &jwks,
        &issuer,
        Some((&trusted, &trusted_key)),
    );
    let bad = Receiver::start_tls(
        &d,
        "untrusted",
        &jwks,
        &issuer,
        Some((&untrusted, &untrusted_key)),
    );
    add_app(
        &d,
        "acme",
        "rp-tls",
        Some(&good.https_url("/bcl/rp-tls/acme")),
    );
    add_app(
        &d,
        "acme",
        "rp-untrusted",
        Some(&bad.https_url("/bcl/rp-untrusted/acme")),
    );

    let s = session(&client, "acme", "alice").await;
    for app in ["rp-tls", "rp-untrusted"] {
        client
            .id_token("acme", "alice", app, &s, None)
            .await
            .unwrap();
    }
    client.session_revoke("acme", &s).await.unwrap();
    let told = good.until("/bcl/rp-tls/acme", &s, 1);
    assert_eq!(told[0]["ok"], true, "{told:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&serve, "sigil_logout_tokens_total{outcome=\"failed\"}") < 1 {
        assert!(
            Instant::now() < deadline,
            "the untrusted receiver was never given up on"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(bad.received().is_empty(), "{:?}", bad.received());
    assert_eq!(
        metric(&serve, "sigil_logout_tokens_total{outcome=\"delivered\"}"),
        1
    );
}

/// A full queue drops ended sessions at once (the revoke does not wait),
/// counted in /metrics and audited as `logout.dropped` in the tenant's
/// chain: one delivery at a time to a slow receiver, a queue of one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_counted_and_audited_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    let config = d.join("serve.toml");
    std::fs::write(
        &config,
        "[logout]\nqueue = 1\nmax_concurrent = 1\nattempts = 1\ntimeout_ms = 5000\nsettle_ms = 0\n",
    )
    .unwrap();
    let (quic, http, path) = (free_port(), free_port(), d.clone());
    let serve = tokio::task::spawn_blocking(move || {
        Serve::start_with(&path, quic, http, &["--config", config.to_str().unwrap()])
    })
    .await
    .unwrap();
    let client = serve.client(None).await.unwrap();
    let s0 = session(&client, "acme", "alice").await;
    let probe = client
        .id_token("acme", "alice", "app-es256", &s0, None)
        .await
        .unwrap();
    let issuer = sid_of(&probe.token)["iss"].as_str().unwrap().to_owned();
    let jwks = format!(
        "http://127.0.0.1:{}/t/acme/.well-known/jwks.json",
        serve.endpoints.http.port()
    );
    let receiver = Receiver::start(&d, &jwks, &issuer);
    add_app(
        &d,
        "acme",
        "rp-slow",
        Some(&receiver.url("/slow/rp-slow/acme")),
    );
    let mut ended = Vec::new();
    for _ in 0..6 {
        let s = session(&client, "acme", "alice").await;
        client
            .id_token("acme", "alice", "rp-slow", &s, None)
            .await
            .unwrap();
        ended.push(s);
    }
    for s in &ended {
        let started = Instant::now();
        client.session_revoke("acme", s).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
    }
    // One in delivery, one waiting for it, one queued: the rest dropped.
    let dropped = metric(&serve, "sigil_logout_jobs_total{outcome=\"dropped\"}");
    assert!(dropped >= 1, "nothing dropped");
    wait_shipped(&d);
    let db = node_database(&serve.var()).await;
    let rows = db
        .query(
            "SELECT count(*) FROM audit_events e JOIN tenants t ON t.tenant_id = e.tenant_id
              WHERE e.kind = 'logout.dropped' AND t.slug = 'acme'",
            &[],
        )
        .await
        .unwrap();
    let audited: i64 = rows[0].get(0);
    assert_eq!(audited, dropped as i64, "every drop audited");
}
