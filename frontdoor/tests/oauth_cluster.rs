//! Issue 19 on a three-node cluster behind one public URL: an access token
//! revoked at node 1's `oauth2/revoke` is inactive at nodes 2 and 3 in the
//! very next introspection (the deny list goes through the strongly
//! consistent revoke path); a client assertion used at node 1 is refused
//! as a replay at node 2 (its jti is recorded in Postgres).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use aws_lc_rs::signature::Ed25519KeyPair;
use common::cluster::{specs, Nodes};
use common::oauth::{assertion, call_at, jwks_of, post, set_jwks, ASSERTION_TYPE};
use common::session;
use serde_json::{json, Value};

const PUBLIC_URL: &str = "http://sigil.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_on_one_node_is_inactive_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("public-url.toml");
    std::fs::write(
        &config,
        format!("[listen]\npublic_url = \"{PUBLIC_URL}\"\n"),
    )
    .unwrap();
    let mut nodes = specs(3, |_, _, port| format!("127.0.0.1:{port}"));
    for node in &mut nodes {
        node.args.push("--config".into());
        node.args.push(config.to_str().unwrap().into());
    }
    let owned = dir.path().to_owned();
    let nodes = tokio::task::spawn_blocking(move || Nodes::start(&owned, nodes))
        .await
        .unwrap();
    nodes.until_serving(Duration::from_secs(60)).await;
    let key = Ed25519KeyPair::generate().unwrap();
    set_jwks(dir.path(), "acme", "app-es256", &jwks_of(&key));

    let client = nodes.client(0).await;
    let alice = session(&client, "acme", "alice").await;
    let token = client
        .access_token("acme", "alice", "app-es256", &alice, &["read"])
        .await
        .unwrap()
        .token;
    let introspect = |i: usize| {
        call_at(
            nodes.serve(i),
            PUBLIC_URL,
            &key,
            "acme",
            "app-es256",
            "introspect",
            &token,
        )
    };
    // Every node knows the app's keys (read from the directory) and
    // finds the token active.
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..3 {
        loop {
            let (status, body) = introspect(i);
            if status == 200 && body["active"] == json!(true) {
                break;
            }
            assert!(Instant::now() < deadline, "node {i}: {status} {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Revoked at node 1: inactive at nodes 2 and 3 in the next request.
    let (status, body) = call_at(
        nodes.serve(0),
        PUBLIC_URL,
        &key,
        "acme",
        "app-es256",
        "revoke",
        &token,
    );
    assert_eq!(status, 200, "{body}");
    for i in [1, 2, 0] {
        let (status, body) = introspect(i);
        assert_eq!((status, body), (200, json!({"active": false})), "node {i}");
    }

    // One assertion, two nodes: the second is a replay.
    let aud = format!("{PUBLIC_URL}/t/acme/oauth2/introspect");
    let once = assertion(&key, "app-es256", &aud, 60, "cluster-once");
    let form = [
        ("token", token.as_str()),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", once.as_str()),
    ];
    let (status, _) = post(nodes.serve(0), "acme", "introspect", &form);
    assert_eq!(status, 200);
    for i in [1, 2] {
        let (status, body): (u16, Value) = post(nodes.serve(i), "acme", "introspect", &form);
        assert_eq!(status, 401, "node {i}: {body}");
        assert!(body["error_description"]
            .as_str()
            .unwrap()
            .contains("replay"));
    }
}
