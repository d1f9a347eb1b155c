//! Tests of the wire request: operations round-trip through CBOR, bad
//! requests name their problem, error codes are spelled as documented.

use super::*;
use crate::onboard::OnboardOp;
use crate::{from_cbor, to_cbor, ErrorCode};
use std::collections::BTreeMap;

fn sample() -> Vec<Operation> {
    let t = || "acme".to_string();
    vec![
        Operation::Health,
        Operation::IdToken {
            tenant: t(),
            user: "alice".into(),
            app: "app-es256".into(),
            session: "s".into(),
            nonce: Some("n".into()),
            offline: false,
        },
        Operation::AccessToken {
            tenant: t(),
            user: "alice".into(),
            app: "app-eddsa".into(),
            session: "s".into(),
            scope: vec!["openid".into()],
            offline: true,
        },
        Operation::Refresh {
            tenant: t(),
            app: "app-eddsa".into(),
            refresh_token: "r".into(),
            scope: Some(vec!["openid".into()]),
        },
        Operation::Saml {
            tenant: t(),
            user: "alice".into(),
            sp: "sp-rs256".into(),
            session: "s".into(),
            in_response_to: None,
        },
        Operation::SessionCreate {
            tenant: t(),
            user: "alice".into(),
            amr: vec!["pwd".into(), "otp".into()],
            client: Some("curl".into()),
        },
        Operation::SessionValidate {
            tenant: t(),
            session: "s".into(),
        },
        Operation::SessionTouch {
            tenant: t(),
            session: "s".into(),
        },
        Operation::SessionRevoke {
            tenant: t(),
            session: "s".into(),
        },
        Operation::UserRevokeSessions {
            tenant: t(),
            user: "bob".into(),
        },
        Operation::UserDeactivate {
            tenant: t(),
            user: "bob".into(),
        },
        Operation::KeysRotate {
            tenant: t(),
            alg: Some("ES256".into()),
        },
        Operation::KeysRevoke {
            tenant: t(),
            kid: "k".into(),
        },
        Operation::ClusterStatus,
        Operation::ClusterAdd {
            node: "node-4".into(),
            address: "10.0.0.4:4434".into(),
        },
        Operation::ClusterRemove {
            node: "node-3".into(),
        },
        Operation::Onboard(Box::new(OnboardOp::TenantAdd {
            tenant: "initech".into(),
            name: "Initech, Inc.".into(),
        })),
        Operation::Onboard(Box::new(OnboardOp::TenantList)),
        Operation::Onboard(Box::new(OnboardOp::AppAdd {
            tenant: t(),
            app: "portal".into(),
            alg: "ES256".into(),
            claims: [("groups".to_string(), "groups".to_string())].into(),
            assign: vec!["everyone".into()],
            assign_users: vec![],
            redirect_uris: vec!["https://portal.test/cb".into()],
            backchannel_logout_uri: Some("https://portal.test/bcl".into()),
            refresh: Some(crate::onboard::AppRefresh {
                absolute_s: 3600,
                idle_s: 600,
            }),
            jwks: Some(r#"{"keys":[]}"#.into()),
        })),
        Operation::Onboard(Box::new(OnboardOp::AppSetJwks {
            tenant: t(),
            app: "portal".into(),
            jwks: Some(r#"{"keys":[]}"#.into()),
        })),
        Operation::Onboard(Box::new(OnboardOp::AppSetJwks {
            tenant: t(),
            app: "portal".into(),
            jwks: None,
        })),
        Operation::Onboard(Box::new(OnboardOp::SpAdd {
            tenant: t(),
            sp: "wiki".into(),
            alg: "RS256".into(),
            entity_id: "https://wiki.test/saml".into(),
            acs_urls: vec!["https://wiki.test/acs".into()],
            name_id_format: "persistent".into(),
            sign_assertion: false,
            claims: BTreeMap::new(),
            assign: vec![],
            assign_users: vec!["peter".into()],
        })),
        Operation::Onboard(Box::new(OnboardOp::FrontendRemove {
            name: "web-2".into(),
        })),
        Operation::ScimTokenAdd {
            tenant: t(),
            name: "okta".into(),
        },
        Operation::ScimTokenList { tenant: t() },
        Operation::ScimTokenRevoke {
            tenant: t(),
            name: "okta".into(),
        },
    ]
}

#[test]
fn operations_round_trip_through_cbor() {
    for (i, op) in sample().into_iter().enumerate() {
        let bytes = to_cbor(&op.to_wire(i as u64)).unwrap();
        let wire: WireRequest = from_cbor(&bytes).unwrap();
        assert_eq!(wire.id, i as u64);
        assert_eq!(Operation::from_wire(wire).unwrap(), op);
    }
}

#[test]
fn bad_requests_name_the_problem() {
    let wire = |op: &str| WireRequest {
        id: 1,
        op: op.into(),
        tenant: Some("acme".into()),
        ..WireRequest::default()
    };
    assert_eq!(
        Operation::from_wire(wire("id_token")).unwrap_err().0,
        "missing field `user`"
    );
    assert!(Operation::from_wire(wire("mint_money"))
        .unwrap_err()
        .0
        .contains("unknown operation"));
    let mut long = wire("session_validate");
    long.session = Some("x".repeat(MAX_FIELD + 1));
    assert!(Operation::from_wire(long)
        .unwrap_err()
        .0
        .contains("exceeds"));
    let mut empty = wire("session_validate");
    empty.session = Some(String::new());
    assert!(Operation::from_wire(empty).unwrap_err().0.contains("empty"));
    let mut amr = wire("session_create");
    amr.user = Some("alice".into());
    amr.amr = Some(vec!["pwd".into(); MAX_AMR + 1]);
    assert!(Operation::from_wire(amr)
        .unwrap_err()
        .0
        .contains("more than"));
    assert!(from_cbor::<WireRequest>(b"\xff\x00garbage").is_err());
    let mut trailing = to_cbor(&wire("health")).unwrap();
    trailing.push(0);
    assert!(from_cbor::<WireRequest>(&trailing).is_err());
}

#[test]
fn error_codes_are_spelled_as_documented() {
    for code in ErrorCode::ALL {
        let bytes = to_cbor(&code).unwrap();
        let text: String = from_cbor(&bytes).unwrap();
        assert_eq!(text, code.as_str());
    }
}

use proptest::prelude::*;

fn text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        Just(String::new()),
        "[a-z0-9-]{1,20}",
        ".{0,40}",
        Just("x".repeat(MAX_FIELD + 1))
    ])
}

proptest! {
    /// The same property as the cargo-fuzz target `frames`, in CI: any
    /// bytes decode without panicking, and any request that passes the
    /// checks survives a re-encoding unchanged.
    #[test]
    fn arbitrary_bytes_and_requests_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = from_cbor::<WireRequest>(&bytes);
    }

    #[test]
    fn checked_requests_round_trip(
        op in prop_oneof![
            proptest::sample::select(vec!["health", "id_token", "access_token", "saml", "session_create", "session_validate",
                "session_touch", "session_revoke", "user_revoke_sessions", "user_deactivate", "keys_rotate", "keys_revoke"])
                .prop_map(str::to_owned),
            "[a-z_]{0,12}",
        ],
        tenant in text(), user in text(), app in text(), session in text(), nonce in text(), kid in text(),
        scope in proptest::option::of(proptest::collection::vec("[a-z]{1,8}", 0..40)),
        id in any::<u64>(),
    ) {
        let wire = WireRequest { id, op, tenant, user, app: app.clone(), sp: app, session, nonce, scope, kid, ..WireRequest::default() };
        let bytes = to_cbor(&wire).unwrap();
        let decoded: WireRequest = from_cbor(&bytes).unwrap();
        prop_assert_eq!(&decoded, &wire);
        if let Ok(operation) = Operation::from_wire(decoded) {
            let again: WireRequest = from_cbor(&to_cbor(&operation.to_wire(id)).unwrap()).unwrap();
            prop_assert_eq!(Operation::from_wire(again).unwrap(), operation);
        }
    }
}
