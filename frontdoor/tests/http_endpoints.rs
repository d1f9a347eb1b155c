//! The HTTP endpoints on a real listener on loopback: JWKS, discovery,
//! conditional GET, 404 for unknown tenants, requests that wait for their
//! tenant's load without holding up their worker, and clients that misbehave
//! (garbage, oversized heads, slowness) get refused while the workers keep
//! serving. Tokens verify with PyJWT and jwcrypto against the JWKS fetched
//! over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use frontdoor::http::exchange::{Loaded, Miss};
use frontdoor::http::{
    openid_configuration, Document, DocumentStore, HttpConfig, HttpLimits, HttpServer, Site,
    TenantDocuments,
};
use serde_json::{json, Value};
use signer::conformance::external::assert_jwts_verify;
use signer::jwt::{new_jti, TokenClaims, TokenLifetime, TokenType, UnsignedJwt};
use signer::{Algorithm, KeyPolicy, KeyRing, KeySpec, SoftwareKey, Timestamp};

struct Fixture {
    server: HttpServer,
    ring: KeyRing,
    store: Arc<DocumentStore>,
}

fn publish(store: &DocumentStore, ring: &KeyRing, base: &str, now: Timestamp) {
    let view = ring.view(now);
    let issuer = format!("{base}/t/{}", ring.tenant());
    let algorithms: Vec<Algorithm> = view
        .active_keys()
        .iter()
        .map(|k| k.key().algorithm())
        .collect();
    store.publish(
        ring.tenant(),
        TenantDocuments {
            jwks: Document::new(view.jwks().clone(), "application/json"),
            discovery: Document::new(
                openid_configuration(
                    &issuer,
                    &format!("{issuer}/.well-known/jwks.json"),
                    &algorithms,
                ),
                "application/json",
            ),
            saml_metadata: None,
            next_activation: view.next_activation(),
            prepublish_secs: ring.policy().prepublish_secs(),
        },
    );
}

fn start(limits: HttpLimits) -> Fixture {
    let store = Arc::new(DocumentStore::new());
    let site = Arc::new(Site {
        documents: Arc::clone(&store),
        metrics: Arc::new(|| "sigil_test_metric 1\n".to_owned()),
        ready: Arc::new(AtomicBool::new(true)),
        on_miss: None,
        oauth: None,
    });
    let mut config = HttpConfig::new("127.0.0.1:0".parse().unwrap());
    config.workers = 2;
    config.pin_to_cores = false;
    config.limits = limits;
    let server = HttpServer::start(config, site).unwrap();
    let now = Timestamp::from_system_time(SystemTime::now());
    let mut ring = KeyRing::new("acme", KeyPolicy::default());
    for spec in KeySpec::ALL {
        ring.add_active(Arc::new(SoftwareKey::generate(spec).unwrap()), now)
            .unwrap();
    }
    publish(
        &store,
        &ring,
        &format!("http://{}", server.local_addr()),
        now,
    );
    Fixture {
        server,
        ring,
        store,
    }
}

/// Sends raw bytes, reads until the server closes, returns (status, head, body).
fn exchange(addr: SocketAddr, raw: &[u8]) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(raw).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, response[split + 4..].to_vec())
}

fn get(addr: SocketAddr, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}\r\n").as_bytes(),
    )
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn jwks_discovery_and_conditional_get() {
    let f = start(HttpLimits::default());
    let addr = f.server.local_addr();
    let (status, head, body) = get(addr, "/t/acme/.well-known/jwks.json", "");
    assert_eq!(status, 200);
    let jwks: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), KeySpec::ALL.len());
    let etag = header(&head, "etag").unwrap().to_owned();
    let cache = header(&head, "cache-control").unwrap();
    let max_age: u64 = cache
        .strip_prefix("public, max-age=")
        .unwrap()
        .parse()
        .unwrap();
    assert!((3240..=3600).contains(&max_age), "{cache}");

    let (status, _, body) = get(
        addr,
        "/t/acme/.well-known/jwks.json",
        &format!("If-None-Match: {etag}\r\n"),
    );
    assert_eq!(status, 304);
    assert!(body.is_empty());

    let (status, _, body) = get(addr, "/t/acme/.well-known/openid-configuration", "");
    assert_eq!(status, 200);
    let discovery: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(discovery["issuer"], format!("http://{addr}/t/acme"));
    assert_eq!(
        discovery["jwks_uri"],
        format!("http://{addr}/t/acme/.well-known/jwks.json")
    );

    assert_eq!(get(addr, "/t/globex/.well-known/jwks.json", "").0, 404);
    assert_eq!(get(addr, "/healthz", "").0, 200);
    assert_eq!(get(addr, "/readyz", "").0, 200);
    let (status, _, body) = get(addr, "/metrics", "");
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"sigil_test_metric 1\n"[..])
    );

    // HEAD: the GET's headers, no body.
    let (status, head, body) = exchange(
        addr,
        b"HEAD /t/acme/.well-known/jwks.json HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(body.is_empty());
    assert!(
        header(&head, "content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    );
    drop(f.store);
}

#[test]
fn revoked_key_leaves_the_served_jwks_at_once_and_etag_changes() {
    let mut f = start(HttpLimits::default());
    let addr = f.server.local_addr();
    let (_, head, _) = get(addr, "/t/acme/.well-known/jwks.json", "");
    let etag = header(&head, "etag").unwrap().to_owned();
    let now = Timestamp::from_system_time(SystemTime::now());
    let victim = f.ring.entries()[0].key.kid().clone();
    f.ring.revoke(&victim, now).unwrap();
    publish(&f.store, &f.ring, &format!("http://{addr}"), now);
    let (status, head, body) = get(
        addr,
        "/t/acme/.well-known/jwks.json",
        &format!("If-None-Match: {etag}\r\n"),
    );
    assert_eq!(status, 200, "the old ETag no longer matches");
    assert!(!String::from_utf8_lossy(&body).contains(victim.as_str()));
    assert_ne!(header(&head, "etag").unwrap(), etag);
}

#[test]
fn misbehaving_clients_are_refused_and_workers_survive() {
    let limits = HttpLimits {
        head_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_millis(400),
        ..HttpLimits::default()
    };
    let f = start(limits);
    let addr = f.server.local_addr();

    let (status, _, _) = exchange(
        addr,
        b"\x16\x03\x01\x02\x00garbage that is not http\r\n\r\n",
    );
    assert_eq!(status, 400);
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let (status, _, _) = exchange(addr, huge.as_bytes());
    assert_eq!(status, 431);
    let (status, _, _) = exchange(
        addr,
        b"POST /healthz HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(status, 400);
    let (status, head, _) = exchange(
        addr,
        b"DELETE /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 405);
    assert_eq!(header(&head, "allow"), Some("GET, HEAD"));

    // A slow client: half a request head, then silence. It is cut off
    // after the head timeout with 408, not held forever.
    let started = Instant::now();
    let (status, _, _) = exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: slow");
    assert_eq!(status, 408);
    assert!(started.elapsed() < Duration::from_secs(5));

    // A connection that says nothing is closed after the idle timeout.
    let mut silent = TcpStream::connect(addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        silent.read(&mut buf).unwrap_or(0),
        0,
        "closed without an answer"
    );

    // Keep-alive: several requests on one connection, then the workers
    // still serve fresh connections on both sockets.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for _ in 0..3 {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut answer = [0u8; 512];
        let n = stream.read(&mut answer).unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200 OK"));
    }
    for _ in 0..20 {
        assert_eq!(get(addr, "/healthz", "").0, 200);
    }
}

#[test]
fn pyjwt_and_jwcrypto_verify_tokens_against_the_jwks_served_over_http() {
    let f = start(HttpLimits::default());
    let addr = f.server.local_addr();
    let issuer = format!("http://{addr}/t/acme");
    let now = Timestamp::from_system_time(SystemTime::now());
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let view = f.ring.view(now);
    let mut cases = Vec::new();
    for active in view.active_keys() {
        let claims = TokenClaims {
            issuer: issuer.clone(),
            subject: "00u1alice".into(),
            audience: vec!["app".into()],
            ..TokenClaims::default()
        };
        let token = UnsignedJwt::build(
            active.header(TokenType::IdToken),
            &claims,
            now,
            TokenLifetime::from_secs(300).unwrap(),
            &new_jti(&rng).unwrap(),
        )
        .unwrap()
        .sign_inline(active.key().as_ref())
        .unwrap();
        cases.push(json!({
            "name": active.key().algorithm().name(),
            "token": token,
            "issuer": issuer,
            "audience": "app",
        }));
    }
    assert_eq!(cases.len(), 5, "one active key per algorithm");
    assert_jwts_verify(
        &format!("http://{addr}/t/acme/.well-known/jwks.json"),
        &cases,
        "",
    );
}

#[test]
fn a_request_waiting_for_its_tenant_does_not_hold_up_its_worker() {
    let f = start(HttpLimits::default());
    let documents = f.store.get("acme").unwrap();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let released = std::sync::Mutex::new(Some(released));
    let site = Arc::new(Site {
        documents: Arc::new(DocumentStore::new()),
        metrics: Arc::new(String::new),
        ready: Arc::new(AtomicBool::new(true)),
        on_miss: Some(Arc::new(move |slug: &str| match slug {
            // Loads once the test says so.
            "slow" => {
                let released = released.lock().unwrap().take();
                let documents = Arc::clone(&documents);
                Miss::Loading(Box::pin(async move {
                    if let Some(released) = released {
                        let _ = released.await;
                    }
                    Loaded::Documents(documents)
                }))
            }
            // Never loads.
            "stuck" => Miss::Loading(Box::pin(std::future::pending())),
            _ => Miss::Unknown,
        })),
        oauth: None,
    });
    // One worker: the waiting request and every other share it.
    let mut config = HttpConfig::new("127.0.0.1:0".parse().unwrap());
    config.workers = 1;
    config.pin_to_cores = false;
    config.limits = HttpLimits {
        tenant_load_wait: Duration::from_millis(1500),
        ..HttpLimits::default()
    };
    let server = HttpServer::start(config, site).unwrap();
    let addr = server.local_addr();
    let waiting = std::thread::spawn(move || get(addr, "/t/slow/.well-known/jwks.json", ""));
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(get(addr, "/healthz", "").0, 200);
        assert_eq!(get(addr, "/t/nobody/.well-known/jwks.json", "").0, 404);
        assert!(started.elapsed() < Duration::from_millis(500));
    }
    assert!(!waiting.is_finished(), "still waiting for its tenant");
    release.send(()).unwrap();
    let (status, head, body) = waiting.join().unwrap();
    assert_eq!(status, 200, "{head}");
    let jwks: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), KeySpec::ALL.len());
    // A load that does not end in time: 503 with Retry-After at the bound.
    let started = Instant::now();
    let (status, head, _) = get(addr, "/t/stuck/saml/metadata", "");
    let waited = started.elapsed();
    assert_eq!(status, 503);
    assert_eq!(header(&head, "retry-after"), Some("1"));
    assert!(
        (Duration::from_millis(1400)..Duration::from_secs(5)).contains(&waited),
        "{waited:?}"
    );
    assert_eq!(
        server
            .stats()
            .tenant_wait_timeouts
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(get(addr, "/healthz", "").0, 200);
}
