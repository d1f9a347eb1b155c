//! Refresh-token theft detection on a three-node cluster (issue 19): a
//! family begun on node 1 is rotated on node 1; the old token presented on
//! node 2 is theft. From node 2's answer on, the family (its newest token
//! included) is refused and the session is invalid on every node: the
//! family is revoked in the shared directory, the session through the
//! strong revoke of `session_revoke` (it returns once no node accepts it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::cluster::{check, specs, until_valid, Nodes};
use common::session;
use sigil_proto::client::CallError;
use sigil_proto::ErrorCode;

const TENANT: &str = "acme";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_rotated_on_node_1_and_reused_on_node_2_is_dead_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let owned = dir.path().to_owned();
    let nodes = tokio::task::spawn_blocking(move || {
        Nodes::start(&owned, specs(3, |_, _, port| format!("127.0.0.1:{port}")))
    })
    .await
    .unwrap();
    nodes.until_serving(Duration::from_secs(60)).await;
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(nodes.client(i).await);
    }
    let refused = |outcome: Result<_, CallError>| match outcome {
        Err(CallError::Refused(e)) => e.code,
        Ok(token) => panic!("expected a refusal, got {token:?}"),
        Err(e) => panic!("transport: {e}"),
    };

    // Two families in one session begun on node 1; a family of another
    // session stays alive throughout.
    let alice = session(&clients[0], TENANT, "alice").await;
    for client in &clients {
        until_valid(client, TENANT, &alice, Duration::from_secs(10)).await;
    }
    let access = clients[0]
        .access_token_offline(TENANT, "alice", "app-es256", &alice, &["openid"])
        .await
        .unwrap();
    let old = access.refresh_token.unwrap();
    let id = clients[0]
        .id_token_offline(TENANT, "alice", "app-eddsa", &alice, None)
        .await
        .unwrap();
    let sibling = id.refresh_token.unwrap();
    let bob = session(&clients[0], TENANT, "bob").await;
    for client in &clients {
        until_valid(client, TENANT, &bob, Duration::from_secs(10)).await;
    }
    let bystander = clients[0]
        .access_token_offline(TENANT, "bob", "app-es256", &bob, &["openid"])
        .await
        .unwrap()
        .refresh_token
        .unwrap();

    // Rotated on node 1; node 3 rotates the next one (any node serves a
    // family: Postgres is shared).
    let new = clients[0]
        .refresh(TENANT, "app-es256", &old, None)
        .await
        .unwrap()
        .refresh_token
        .unwrap();
    let newest = clients[2]
        .refresh(TENANT, "app-es256", &new, None)
        .await
        .unwrap()
        .refresh_token
        .unwrap();

    // The old one again, on node 2: theft.
    let reused = clients[1].refresh(TENANT, "app-es256", &old, None).await;
    assert_eq!(refused(reused), ErrorCode::SessionInvalid);

    // At once, on every node: the family's newest token refused, the
    // session invalid, its other family refused; bob's family untouched.
    for (i, client) in clients.iter().enumerate() {
        assert_eq!(
            check(client, TENANT, &alice).await,
            Ok(false),
            "node {} still accepts the session",
            i + 1
        );
        let newest_again = client.refresh(TENANT, "app-es256", &newest, None).await;
        assert_eq!(
            refused(newest_again),
            ErrorCode::SessionInvalid,
            "node {}",
            i + 1
        );
        let sibling_again = client.refresh(TENANT, "app-eddsa", &sibling, None).await;
        assert_eq!(
            refused(sibling_again),
            ErrorCode::SessionInvalid,
            "node {}",
            i + 1
        );
        let token = client
            .id_token(TENANT, "alice", "app-eddsa", &alice, None)
            .await;
        assert_eq!(refused(token), ErrorCode::SessionInvalid, "node {}", i + 1);
    }
    let mut bystander = bystander;
    for client in &clients {
        bystander = client
            .refresh(TENANT, "app-es256", &bystander, None)
            .await
            .unwrap()
            .refresh_token
            .unwrap();
    }

    // Audited once, in acme's chain, which stays whole.
    let db = common::node_database(&nodes.serve(0).var()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let seen: i64 = db
            .query_one(
                "SELECT count(*) FROM audit_events e JOIN tenants t USING (tenant_id)
                  WHERE t.slug = 'acme' AND e.kind = 'refresh.reuse_detected'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if seen == 1 {
            break;
        }
        assert!(
            seen == 0 && std::time::Instant::now() < deadline,
            "{seen} records"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for client in clients {
        client.close().await;
    }
}
