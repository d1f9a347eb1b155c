//! The client's typed calls against a fake node on loopback: each method
//! sends its operation with the fields given and decodes the node's answer
//! into that operation's result type; refusals keep their code; an answer
//! of the wrong shape is `Malformed`, not a panic or a default.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::BytesMut;
use sigil_proto::auth::{AuthOp, AuthReply, AuthStatus};
use sigil_proto::client::{CallError, Client, ClientConfig};
use sigil_proto::onboard::{FrontendInfo, OnboardOp, OnboardReply, TenantInfo};
use sigil_proto::results::{
    ClusterView, Deactivated, Health, KeyRevoked, KeysRotated, MemberView, NewKey, ReplicationView,
    Revoked, SamlResponse, SessionCreated, SessionInfo, Token,
};
use sigil_proto::results::{ScimTokenAdded, ScimTokenInfo, ScimTokenRevoked, ScimTokens};
use sigil_proto::{
    from_cbor, to_cbor, write_frame, ErrorCode, FrameDecoder, Operation, Reply, WireError,
    WireRequest, WireResponse, ALPN,
};

/// What the fake node answers: the fields it was sent, echoed where a
/// result has room for them, so a test sees the request arrived whole.
fn answer(operation: Operation) -> Result<Reply, WireError> {
    let token = |text: String| {
        Reply::Token(Token {
            token: text,
            kid: "k1".into(),
            alg: "EdDSA".into(),
            expires_at: 1_800_000_000,
            refresh_token: None,
            refresh_expires_at: None,
        })
    };
    let session = |user: &str, idle: u64| {
        Reply::Session(SessionInfo {
            user: user.into(),
            auth_time: 1_700_000_000,
            amr: vec!["pwd".into()],
            expires_at: 1_700_036_000,
            idle_expires_at: idle,
            asserted: false,
        })
    };
    Ok(match operation {
        Operation::Health => Reply::Health(Health {
            status: "ok".into(),
            node: "fake".into(),
            ready: true,
        }),
        Operation::IdToken {
            tenant,
            user,
            app,
            session,
            nonce,
            ..
        } => token(format!(
            "id:{tenant}:{user}:{app}:{session}:{}",
            nonce.unwrap_or_default()
        )),
        Operation::AccessToken {
            tenant,
            user,
            app,
            session,
            scope,
            ..
        } => token(format!(
            "access:{tenant}:{user}:{app}:{session}:{}",
            scope.join(" ")
        )),
        Operation::Refresh {
            tenant,
            app,
            refresh_token,
            scope,
        } => token(format!(
            "refresh:{tenant}:{app}:{refresh_token}:{}",
            scope.unwrap_or_default().join(" ")
        )),
        Operation::Saml {
            sp, in_response_to, ..
        } => Reply::Saml(SamlResponse {
            response: "PHNhbWxwOlJlc3BvbnNlLz4=".into(),
            kid: "k2".into(),
            alg: "RS256".into(),
            expires_at: 1_800_000_000,
            acs: in_response_to.map(|id| format!("https://{sp}.example/acs#{id}")),
        }),
        Operation::SessionCreate {
            user, amr, client, ..
        } => Reply::SessionCreated(SessionCreated {
            session: format!("{user}:{}:{}", amr.join("+"), client.unwrap_or_default()),
            expires_at: 1_700_036_000,
            idle_expires_at: 1_700_001_800,
        }),
        Operation::SessionValidate { session, .. } if session == "gone" => {
            return Err(WireError {
                code: ErrorCode::SessionInvalid,
                message: "session is not valid".into(),
            })
        }
        Operation::SessionValidate { .. } => session("alice", 1_700_001_800),
        Operation::SessionTouch { .. } => session("alice", 1_700_003_600),
        Operation::SessionRevoke { .. } | Operation::UserRevokeSessions { .. } => {
            Reply::Revoked(Revoked { revoked: true })
        }
        Operation::UserDeactivate { .. } => Reply::Deactivated(Deactivated { deactivated: true }),
        Operation::KeysRotate { alg, .. } => Reply::KeysRotated(KeysRotated {
            keys: vec![NewKey {
                kid: "k3".into(),
                alg: alg.unwrap_or_else(|| "ES256".into()),
                activates_at: 1_700_086_400,
            }],
        }),
        Operation::KeysRevoke { kid, .. } => Reply::KeyRevoked(KeyRevoked {
            revoked: kid,
            replacement: Some("k4".into()),
        }),
        Operation::ClusterStatus => Reply::Cluster(Box::new(cluster(None))),
        Operation::ClusterAdd { node, address } => {
            Reply::Cluster(Box::new(cluster(Some((node, address)))))
        }
        Operation::ClusterRemove { .. } => Reply::Cluster(Box::new(cluster(None))),
        Operation::ScimTokenAdd { tenant, name } => Reply::ScimTokenAdded(ScimTokenAdded {
            token: format!("sigil_scim_{tenant}"),
            scim_url: Some(format!("https://sigil.example/t/{tenant}/scim/v2")),
            name,
        }),
        Operation::ScimTokenList { tenant } => Reply::ScimTokens(ScimTokens {
            tokens: vec![ScimTokenInfo {
                name: tenant,
                created_at: 1_700_000_000,
                revoked_at: None,
            }],
        }),
        Operation::ScimTokenRevoke { name, .. } => {
            Reply::ScimTokenRevoked(ScimTokenRevoked { revoked: name })
        }
        // Issue 18: the password's length comes back in the session, so
        // the test sees it arrived whole (never the password itself).
        Operation::Auth(op) => match *op {
            AuthOp::Authenticate {
                user,
                password,
                client_ip,
                ..
            } => Reply::Auth(AuthReply::Status(AuthStatus {
                status: "SUCCESS".into(),
                session: Some(format!(
                    "{user}:{}:{}",
                    password.expose().len(),
                    client_ip.unwrap_or_default()
                )),
                expires_at: Some(1_700_036_000),
                idle_expires_at: Some(1_700_001_800),
                amr: Some(vec!["pwd".into()]),
                state: None,
                factors: None,
                locked_until: None,
            })),
            other => {
                return Err(WireError {
                    code: ErrorCode::InvalidCredentials,
                    message: format!("{} answered nothing here", other.name()),
                })
            }
        },
        Operation::Onboard(op) => match *op {
            OnboardOp::TenantAdd { tenant, name } => {
                Reply::Onboard(OnboardReply::Tenant(TenantInfo {
                    issuer: format!("https://fake/t/{tenant}"),
                    slug: tenant,
                    name,
                    status: "active".into(),
                }))
            }
            OnboardOp::FrontendRemove { name } => {
                Reply::Onboard(OnboardReply::Frontend(FrontendInfo {
                    name,
                    tenants: vec!["*".into()],
                    admin: false,
                    trusted_assertions: false,
                    fingerprint: "0".repeat(64),
                }))
            }
            other => {
                return Err(WireError {
                    code: ErrorCode::NotFound,
                    message: format!("{} answered nothing here", other.name()),
                })
            }
        },
    })
}

fn cluster(added: Option<(String, String)>) -> ClusterView {
    let mut members = BTreeMap::new();
    members.insert(
        "node-1".to_owned(),
        MemberView {
            address: "127.0.0.1:4434".into(),
            is_self: true,
            ready: true,
            serving: Some(true),
            lease_held: None,
            last_heard_ms_ago: None,
        },
    );
    if let Some((name, address)) = added {
        members.insert(
            name,
            MemberView {
                address,
                is_self: false,
                ready: false,
                serving: None,
                lease_held: Some(false),
                last_heard_ms_ago: None,
            },
        );
    }
    ClusterView {
        node: "node-1".into(),
        epoch: members.len() as u64 - 1,
        member: true,
        ready: true,
        serving: true,
        majority: 1,
        leases_held: 1,
        members,
        replication: ReplicationView {
            lag_mean_ms: 0.5,
            lag_max_ms: 2.0,
            frames_dropped: 0,
            sessions_resent: 0,
        },
        decrees: 0,
        settling: 0,
        in_flight: 0,
        session_log_bytes: 4096,
        fence: None,
    }
}

/// Serves one stream: every request answered, in order.
async fn serve_stream(mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
    let mut decoder = FrameDecoder::new();
    while let Ok(Some(chunk)) = recv.read_chunk(64 * 1024, true).await {
        decoder.extend(&chunk.bytes);
        let mut out = BytesMut::new();
        while let Ok(Some(frame)) = decoder.next_frame() {
            let request: WireRequest = from_cbor(&frame).expect("a request");
            let id = request.id;
            let response = match Operation::from_wire(request) {
                Ok(operation) => match answer(operation) {
                    Ok(reply) => WireResponse {
                        id,
                        result: Some(reply),
                        error: None,
                    },
                    Err(error) => WireResponse {
                        id,
                        result: None,
                        error: Some(error),
                    },
                },
                Err(bad) => WireResponse {
                    id,
                    result: None,
                    error: Some(WireError {
                        code: ErrorCode::BadRequest,
                        message: bad.0,
                    }),
                },
            };
            write_frame(&to_cbor(&response).unwrap(), &mut out).unwrap();
        }
        if send.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// A node on loopback that answers with [`answer`], and a client of it.
async fn fake_node() -> Client {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let certificate = certified.cert.der().clone();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let mut tls = rustls::ServerConfig::builder_with_provider(sigil_proto::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate.clone()], key)
        .unwrap();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let server = quinn::Endpoint::server(
        quinn::ServerConfig::with_crypto(Arc::new(crypto)),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let target = server.local_addr().unwrap();
    tokio::spawn(async move {
        while let Some(incoming) = server.accept().await {
            tokio::spawn(async move {
                let Ok(connection) = incoming.await else {
                    return;
                };
                while let Ok((send, recv)) = connection.accept_bi().await {
                    tokio::spawn(serve_stream(send, recv));
                }
            });
        }
    });
    Client::connect(ClientConfig {
        target,
        server_name: "localhost".into(),
        ca: certificate,
        identity: None,
        streams: 2,
        ack_threshold: sigil_proto::tls::ACK_THRESHOLD,
    })
    .await
    .expect("connects to the fake node")
}

#[tokio::test]
async fn each_typed_call_sends_its_operation_and_decodes_its_result() {
    let client = fake_node().await;
    assert_eq!(
        client.health().await.unwrap(),
        Health {
            status: "ok".into(),
            node: "fake".into(),
            ready: true
        }
    );
    let created = client
        .session_create("acme", "alice", &["pwd", "otp"], Some("laptop"))
        .await
        .unwrap();
    assert_eq!(created.session, "alice:pwd+otp:laptop");
    assert_eq!(created.idle_expires_at, 1_700_001_800);
    let id = client
        .id_token("acme", "alice", "app-eddsa", &created.session, Some("n0"))
        .await
        .unwrap();
    assert_eq!(id.token, "id:acme:alice:app-eddsa:alice:pwd+otp:laptop:n0");
    assert_eq!((id.kid.as_str(), id.alg.as_str()), ("k1", "EdDSA"));
    let access = client
        .access_token("acme", "bob", "app-es256", "s1", &["openid", "email"])
        .await
        .unwrap();
    assert_eq!(access.token, "access:acme:bob:app-es256:s1:openid email");
    let refreshed = client
        .refresh("acme", "app-es256", "r1", Some(&["openid"]))
        .await
        .unwrap();
    assert_eq!(refreshed.token, "refresh:acme:app-es256:r1:openid");
    let saml = client
        .saml("acme", "alice", "sp-rs256", "s1", Some("_req1"))
        .await
        .unwrap();
    assert_eq!(
        saml.acs.as_deref(),
        Some("https://sp-rs256.example/acs#_req1")
    );
    assert_eq!(
        client.session_validate("acme", "s1").await.unwrap().user,
        "alice"
    );
    assert_eq!(
        client
            .session_touch("acme", "s1")
            .await
            .unwrap()
            .idle_expires_at,
        1_700_003_600
    );
    assert!(client.session_revoke("acme", "s1").await.unwrap().revoked);
    assert!(
        client
            .user_revoke_sessions("acme", "alice")
            .await
            .unwrap()
            .revoked
    );
    assert!(
        client
            .user_deactivate("acme", "alice")
            .await
            .unwrap()
            .deactivated
    );
    let rotated = client.keys_rotate("acme", Some("RS256")).await.unwrap();
    assert_eq!(rotated.keys[0].alg, "RS256");
    let revoked = client.keys_revoke("acme", "k1").await.unwrap();
    assert_eq!(
        (revoked.revoked.as_str(), revoked.replacement.as_deref()),
        ("k1", Some("k4"))
    );
    let status = client.cluster_status().await.unwrap();
    assert!(status.members["node-1"].is_self && status.serving);
    let added = client.cluster_add("node-2", "10.0.0.2:4434").await.unwrap();
    assert_eq!(added.members["node-2"].address, "10.0.0.2:4434");
    assert_eq!(added.members["node-2"].lease_held, Some(false));
    assert_eq!(client.cluster_remove("node-2").await.unwrap().epoch, 0);
    let tenant = client.tenant_add("initech", "Initech, Inc.").await.unwrap();
    assert_eq!(
        (
            tenant.slug.as_str(),
            tenant.name.as_str(),
            tenant.issuer.as_str()
        ),
        ("initech", "Initech, Inc.", "https://fake/t/initech")
    );
    assert_eq!(client.frontend_remove("web-2").await.unwrap().name, "web-2");
    let signed_in = client
        .authenticate("acme", "alice", "pässword", Some("192.0.2.1"))
        .await
        .unwrap();
    assert_eq!(
        (signed_in.status.as_str(), signed_in.session.as_deref()),
        ("SUCCESS", Some("alice:9:192.0.2.1"))
    );
    assert_eq!(signed_in.amr, Some(vec!["pwd".to_owned()]));
    let refused = client.tenant_list().await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NotFound));
    let added = client.scim_token_add("acme", "okta").await.unwrap();
    assert_eq!(
        (added.name.as_str(), added.token.as_str()),
        ("okta", "sigil_scim_acme")
    );
    let listed = client.scim_token_list("globex").await.unwrap();
    assert_eq!(listed.tokens[0].name, "globex");
    let revoked = client.scim_token_revoke("acme", "okta").await.unwrap();
    assert_eq!(revoked.revoked, "okta");
    client.close().await;
}

#[tokio::test]
async fn refusals_keep_their_code_and_a_result_of_another_shape_is_malformed() {
    let client = fake_node().await;
    let refused = client.session_validate("acme", "gone").await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::SessionInvalid));
    assert_eq!(refused.to_string(), "session_invalid: session is not valid");
    // A health answer is no token: the caller learns so, with no default.
    let wrong = client
        .call_as::<Token>(&Operation::Health)
        .await
        .unwrap_err();
    assert!(matches!(wrong, CallError::Malformed(_)), "{wrong:?}");
    assert_eq!(wrong.code(), None);
    // `call` hands back the map as the node sent it.
    let raw = client.call(&Operation::Health).await.unwrap();
    let keys: Vec<&str> = raw
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_text().unwrap())
        .collect();
    assert_eq!(keys, ["status", "node", "ready"]);
    client.close().await;
}

#[tokio::test]
async fn pipelined_typed_calls_each_get_their_own_answer() {
    let client = Arc::new(fake_node().await);
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let client = Arc::clone(&client);
            tokio::spawn(async move {
                let user = format!("user{i}");
                let created = client
                    .session_create("acme", &user, &["pwd"], None)
                    .await
                    .unwrap();
                (user, created.session)
            })
        })
        .collect();
    for call in calls {
        let (user, session) = call.await.unwrap();
        assert_eq!(session, format!("{user}:pwd:"));
    }
}
