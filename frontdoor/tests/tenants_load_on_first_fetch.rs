//! SPs fetching the documents of tenants a node has not loaded, on a seeded
//! directory: the first fetch of JWKS, discovery or SAML metadata answers
//! 200 (the request waits for the load; requests for a tenant already
//! loading join that load), PyJWT's `PyJWKClient`, which does not retry,
//! resolves a token's key on its first fetch; an unknown tenant is 404 at
//! once, and served as soon as it is added; with Postgres stopped a loaded tenant still answers 200 and one not
//! loaded 503 with `Retry-After`. A restarted node loads the tenants it
//! served recently before it listens; past `max_loaded` the least recently
//! used tenants are evicted, and a fetch loads them again, same keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, frontend_add, Serve, SIGIL};
use serde_json::{json, Value};
use signer::conformance::external::assert_jwts_verify;

fn metric(serve: &Serve, name: &str) -> f64 {
    let (status, body) = serve.http("/metrics");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

const LOADED: &str = "sigil_tenant_loads_total{outcome=\"loaded\"}";

/// `GET path` on a fresh connection: (status, head, body).
fn fetch(serve: &Serve, path: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(serve.endpoints.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

fn jwks(n: u32) -> String {
    format!("/t/seed-{n}/.well-known/jwks.json")
}

/// A node on `dir` with a `[tenants]` configuration, on the same ports
/// every time (a token's issuer names the HTTP port).
fn serve(dir: &Path, ports: (u16, u16), tenants: &str) -> Serve {
    let config = dir.join("sigil.toml");
    std::fs::write(&config, format!("[tenants]\n{tenants}")).unwrap();
    Serve::start_with(
        dir,
        ports.0,
        ports.1,
        &["--config", config.to_str().unwrap()],
    )
}

/// An ID token of `user1` of `tenant` for `app-es256`, through the QUIC API
/// as the `seeded` caller (every tenant, trusted to assert sign-ins).
async fn id_token(serve: &Serve, tenant: &str) -> String {
    let client = serve.client(Some(&serve.dir.join("seeded"))).await.unwrap();
    let session = common::session(&client, tenant, "user1").await;
    client
        .id_token(tenant, "user1", "app-es256", &session, None)
        .await
        .unwrap()
        .token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sps_get_documents_of_tenants_not_loaded_on_their_first_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let ports = (free_port(), free_port());
    // 25 seeded tenants beside acme and globex, seeded after the first
    // start (which loaded acme and globex, and used none).
    tokio::task::spawn_blocking({
        let root = root.clone();
        move || {
            Serve::start(&root, free_port(), free_port()).stop();
            let seed = Command::new(SIGIL)
                .current_dir(&root)
                .args(["directory", "seed", "--tenants", "25", "--users", "100"])
                .output()
                .unwrap();
            assert!(
                seed.status.success(),
                "{}",
                String::from_utf8_lossy(&seed.stderr)
            );
            frontend_add(&root, "seeded", "*", &["--trusted-assertions"]);
        }
    })
    .await
    .unwrap();

    // --- Run 1: tenants never loaded, their keys made on the first fetch.
    let node = serve(&root, ports, "");
    assert_eq!(
        metric(&node, "sigil_tenants_loaded"),
        0.0,
        "none served recently"
    );
    let loads = metric(&node, LOADED);
    // Eight SPs at once for one tenant: one load, eight 200s, one key set.
    let bodies: Vec<(u16, String)> = std::thread::scope(|scope| {
        let fetches: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| fetch(&node, &jwks(25))))
            .collect();
        fetches
            .into_iter()
            .map(|f| {
                let (status, _, body) = f.join().unwrap();
                (status, body)
            })
            .collect()
    });
    assert!(
        bodies.iter().all(|(status, _)| *status == 200),
        "{bodies:?}"
    );
    assert!(bodies.iter().all(|(_, body)| *body == bodies[0].1));
    let keys: Value = serde_json::from_str(&bodies[0].1).unwrap();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 5, "{keys}");
    assert_eq!(metric(&node, LOADED), loads + 1.0, "one load for eight SPs");
    let (status, _, discovery) = fetch(&node, "/t/seed-24/.well-known/openid-configuration");
    assert_eq!(status, 200);
    let discovery: Value = serde_json::from_str(&discovery).unwrap();
    assert_eq!(
        discovery["jwks_uri"],
        format!(
            "http://{}/t/seed-24/.well-known/jwks.json",
            node.endpoints.http
        )
    );
    let (status, _, metadata) = fetch(&node, "/t/seed-23/saml/metadata");
    assert_eq!(status, 200);
    assert!(metadata.contains("EntityDescriptor"), "{metadata}");
    // A name the directory lacks: 404 on the first fetch, and after.
    for _ in 0..2 {
        assert_eq!(
            fetch(&node, "/t/no-such-tenant/.well-known/jwks.json").0,
            404
        );
    }
    assert_eq!(fetch(&node, "/t/seed-21/secret").0, 404);
    // A name added after it was asked for (as another node's `sigil admin
    // tenant add` adds it): the change notification makes this node ask
    // again at once, not when its 30 s memory of the name expires.
    assert_eq!(fetch(&node, "/t/newco/.well-known/jwks.json").0, 404);
    let db = common::node_database(&node.var()).await;
    db.batch_execute("INSERT INTO tenants (slug, display_name) VALUES ('newco', 'Arrived')")
        .await
        .unwrap();
    let added = Instant::now();
    while fetch(&node, "/t/newco/.well-known/jwks.json").0 != 200 {
        assert!(
            added.elapsed() < Duration::from_secs(15),
            "a tenant added elsewhere is still unknown here"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = id_token(&node, "seed-22").await;
    let node = tokio::task::spawn_blocking(move || {
        node.stop();
    });
    node.await.unwrap();

    // The tenants served in run 1 are the recently served ones; the 20
    // loaded at the first start but never used are not.
    let recent = std::fs::read_to_string(root.join("var/recent-tenants-node-1")).unwrap();
    let names: Vec<&str> = recent
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert_eq!(names[0], "seed-22", "most recent first: {recent}");
    for name in ["seed-23", "seed-24", "seed-25", "newco"] {
        assert!(names.contains(&name), "{recent}");
    }
    assert!(!names.contains(&"no-such-tenant"));

    // --- Run 2: a restart loads them before it listens, and only them.
    let node = serve(&root, ports, "");
    assert_eq!(metric(&node, "sigil_tenants_loaded"), 5.0);
    let loads = metric(&node, LOADED);
    assert_eq!(fetch(&node, &jwks(25)).0, 200);
    assert_eq!(metric(&node, LOADED), loads, "answered from memory");

    // Postgres stops: a loaded tenant's documents still answer 200; a
    // tenant not loaded 503 with Retry-After, remembered as nothing.
    let cluster = directory::PrivateCluster::start(&node.var().join("postgres")).unwrap();
    cluster.stop().unwrap();
    let (status, _, body) = fetch(&node, &jwks(25));
    assert_eq!((status, body.as_str()), (200, bodies[0].1.as_str()));
    let started = Instant::now();
    let (status, head, _) = fetch(&node, &jwks(10));
    assert_eq!(status, 503, "{head}");
    assert!(head.contains("Retry-After: 1"), "{head}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "within the wait bound"
    );
    assert_eq!(
        fetch(&node, "/t/no-such-tenant/.well-known/jwks.json").0,
        503
    );
    // Postgres is back: the same tenant loads on its next fetch.
    let cluster = directory::PrivateCluster::start(&node.var().join("postgres")).unwrap();
    let (status, _, _) = fetch(&node, &jwks(10));
    assert_eq!(status, 200);
    drop(cluster);
    tokio::task::spawn_blocking(move || node.stop())
        .await
        .unwrap();

    // --- Run 3: no recently-served file (a node whose list was lost: it
    // loads the directory's first 20 tenants, acme, globex, seed-1 …
    // seed-18, as on a first start): seed-22 is not in memory; PyJWKClient, which does not retry, gets its key set
    // on the first fetch and resolves the token's key. At most 3 tenants in
    // memory: the least recently used go, and come back, same keys.
    std::fs::remove_file(root.join("var/recent-tenants-node-1")).unwrap();
    let node = serve(&root, ports, "max_loaded = 3\n");
    assert!(metric(&node, "sigil_tenants_loaded") <= 3.0);
    let loads = metric(&node, LOADED);
    let issuer = format!("http://{}/t/seed-22", node.endpoints.http);
    let url = format!("{issuer}/.well-known/jwks.json");
    let case =
        json!({"name": "seed-22", "token": token, "issuer": issuer, "audience": "app-es256"});
    tokio::task::spawn_blocking(move || assert_jwts_verify(&url, &[case], "first fetch: "))
        .await
        .unwrap();
    assert_eq!(
        metric(&node, LOADED),
        loads + 1.0,
        "seed-22 was loaded for it"
    );
    let evicted = metric(&node, "sigil_tenant_evictions_total");
    let first = fetch(&node, &jwks(19));
    assert_eq!(first.0, 200);
    for n in [20, 21, 24] {
        assert_eq!(fetch(&node, &jwks(n)).0, 200);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(metric(&node, "sigil_tenants_loaded"), 3.0);
    assert!(metric(&node, "sigil_tenant_evictions_total") >= evicted + 2.0);
    let again = fetch(&node, &jwks(19));
    assert_eq!(again.0, 200, "evicted, then loaded again");
    assert_eq!(again.2, first.2, "the same keys");
    tokio::task::spawn_blocking(move || node.stop())
        .await
        .unwrap();
}
