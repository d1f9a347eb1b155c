//! `session_create` is for front ends registered with
//! `--trusted-assertions` (issue 18): the pure check, and the `amr` an
//! asserted session carries.

use sigil_proto::request::MAX_AMR;
use sigil_proto::{ErrorCode, Operation};

use super::super::session_ops::asserted_amr;
use super::{authorize, caller, world, Caller};

fn session_create(tenant: &str, amr: &[&str]) -> Operation {
    Operation::SessionCreate {
        tenant: tenant.into(),
        user: "alice".into(),
        amr: amr.iter().map(|m| m.to_string()).collect(),
        client: None,
    }
}

fn untrusted(tenants: &[&str], admin: bool) -> Caller {
    let mut caller = caller(tenants, admin);
    if let Some(frontend) = caller.frontend.as_mut() {
        frontend.trusted_assertions = false;
    }
    caller
}

#[test]
fn only_a_trusted_front_end_may_create_sessions() {
    let web = untrusted(&["acme"], false);
    let refused = authorize(&web, &session_create("acme", &["pwd"])).unwrap_err();
    assert_eq!(refused.code, ErrorCode::Forbidden);
    assert_eq!(
        refused.message,
        "front end web-1 is not registered with --trusted-assertions; use authenticate"
    );
    // Refused whatever else it may do: an admin, or one for every tenant.
    for other in [untrusted(&["acme"], true), untrusted(&["*"], false)] {
        let refused = authorize(&other, &session_create("acme", &[])).unwrap_err();
        assert_eq!(refused.code, ErrorCode::Forbidden);
    }
    // The refusal is audited like the others.
    assert!(web
        .refusal("session_create", refused.code, &refused.message)
        .is_some());
    // Its other operations stay open to it.
    let sign_in = Operation::Auth(Box::new(sigil_proto::auth::AuthOp::Authenticate {
        tenant: "acme".into(),
        user: "alice".into(),
        password: sigil_proto::auth::Secret("pw".into()),
        client_ip: None,
        app: None,
        sp: None,
    }));
    assert!(authorize(&web, &sign_in).is_ok());
    // A trusted one may, for its own tenants only.
    let gateway = caller(&["acme"], false);
    assert!(authorize(&gateway, &session_create("acme", &["pwd"])).is_ok());
    let elsewhere = authorize(&gateway, &session_create("globex", &["pwd"])).unwrap_err();
    assert_eq!(elsewhere.code, ErrorCode::Forbidden);
    assert!(
        elsewhere.message.contains("may act only for tenant acme"),
        "{}",
        elsewhere.message
    );
}

#[test]
fn an_asserted_amr_starts_with_fed_and_keeps_the_claim_once() {
    let amr = |claimed: &[&str]| asserted_amr(claimed.iter().map(|m| m.to_string()).collect());
    assert_eq!(amr(&[]).unwrap(), ["fed"]);
    assert_eq!(amr(&["pwd", "otp"]).unwrap(), ["fed", "pwd", "otp"]);
    assert_eq!(
        amr(&["otp", "fed", "pwd", "otp"]).unwrap(),
        ["fed", "otp", "pwd"]
    );
    // Eight in all at most, `fed` included.
    let seven: Vec<String> = (0..MAX_AMR - 1).map(|i| format!("m{i}")).collect();
    assert_eq!(asserted_amr(seven.clone()).unwrap().len(), MAX_AMR);
    let mut eight = seven;
    eight.push("m7".into());
    let refused = asserted_amr(eight.clone()).unwrap_err();
    assert_eq!(refused.code, ErrorCode::BadRequest);
    // Eight whose duplicates leave room still fit.
    eight[7] = "m0".into();
    assert_eq!(asserted_amr(eight).unwrap().len(), MAX_AMR);
}

#[tokio::test(flavor = "current_thread")]
async fn an_asserted_session_says_so_and_a_proven_one_does_not() {
    let w = world(1, true);
    let asserted = w
        .hot
        .session_assert(&w.live, "web-1", "alice", vec!["pwd".into()], None)
        .await
        .unwrap();
    let info = w
        .hot
        .session_check(&w.live, &asserted.session, false)
        .unwrap();
    assert_eq!(info.amr, ["fed", "pwd"]);
    assert!(info.asserted);
    let proven = w.session("alice").await;
    let info = w.hot.session_check(&w.live, &proven, false).unwrap();
    assert_eq!(info.amr, ["pwd"]);
    assert!(!info.asserted);
}
