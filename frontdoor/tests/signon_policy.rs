//! Issue 18: per-tenant sign-on policies on `sigil serve`, set with
//! `sigil admin policy set`, evaluated by `authenticate` after the
//! password matched. The test tries to break it: a rule for the office
//! zone against an address outside it, a denied app, a group rule, a user
//! asked to enroll (completed with pyotp's code, the state then replayed
//! and used for another user), lifetimes from a rule, bad policy files, a
//! policy of one tenant against another, callers who may not set it, and
//! the tenant's lockout threshold set by `sigil admin auth-settings`. A
//! policy set on one node of a cluster applies on the other without a
//! restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::auth::{op, python, refused, set_password, sigil_stdin, start};
use common::node_database;
use serde_json::json;
use sigil_proto::auth::{AuthOp, AuthStatus, FactorEnrolled, PolicyShown, Secret};
use sigil_proto::{Client, ErrorCode};

const POLICY: &str = r#"
# acme's sign-on policy: payroll closed, the office without a factor,
# engineers with one everywhere else, the wiki on short sessions.
[[rule]]
name = "payroll-closed"
apps = ["app-rs256"]
action = "deny"

[[rule]]
name = "office"
zones = ["192.0.2.0/24", "2001:db8::/32"]
action = "allow"
require_factor = false
session_lifetime = "2h"
idle_timeout = "20m"

[[rule]]
name = "engineers"
groups = ["engineering"]
action = "allow"
require_factor = true

[[rule]]
name = "wiki"
sps = ["sp-es256"]
action = "allow"
session_lifetime = "10m"
"#;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The code a `factor_activate` of `user` with `otp` and `state` is
/// refused with (it panics if it is not refused).
async fn activate(client: &Client, user: &str, otp: Secret, state: String) -> ErrorCode {
    let outcome: Result<AuthStatus, _> = op(
        client,
        AuthOp::FactorActivate {
            tenant: "acme".into(),
            user: user.into(),
            otp,
            state: Some(Secret(state)),
        },
    )
    .await;
    refused(outcome).0
}

async fn sign_in(
    client: &Client,
    tenant: &str,
    user: &str,
    password: &str,
    ip: &str,
    target: (Option<&str>, Option<&str>),
) -> Result<AuthStatus, sigil_proto::client::CallError> {
    op(
        client,
        AuthOp::Authenticate {
            tenant: tenant.into(),
            user: user.into(),
            password: Secret(password.into()),
            client_ip: Some(ip.into()),
            app: target.0.map(str::to_owned),
            sp: target.1.map(str::to_owned),
        },
    )
    .await
}

fn admin(serve: &common::Serve, args: &[&str]) -> (bool, serde_json::Value) {
    let mut all = vec!["admin"];
    all.extend_from_slice(args);
    sigil_stdin(serve, &all, "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_decide_by_zone_app_group_and_set_lifetimes() {
    let dir = tempfile::tempdir().unwrap();
    let serve = start(dir.path(), "queue = 64\nip_failures_burst = 1000");
    let client = serve.client(None).await.unwrap();
    let db = node_database(&serve.var()).await;
    for (tenant, user) in [("acme", "alice"), ("acme", "bob"), ("globex", "carol")] {
        set_password(&serve, tenant, user, &format!("pw-{user}"));
    }

    // No policy: the default (no factor for users without one).
    let (ok, shown) = admin(&serve, &["policy", "show", "--tenant", "acme"]);
    assert!(ok, "{shown}");
    assert_eq!(
        (
            shown["result"]["version"].clone(),
            shown["result"]["rules"].clone()
        ),
        (json!(0), json!([]))
    );
    let outside = sign_in(
        &client,
        "acme",
        "alice",
        "pw-alice",
        "198.51.100.1",
        (None, None),
    );
    assert_eq!(outside.await.unwrap().status, "SUCCESS");

    // Bad files are refused, naming what is wrong; nothing is stored.
    for (text, says) in [
        (
            "[[rule]]\naction = \"allow\"\nrequire_mfa = true\n",
            "line 3",
        ),
        (
            "[[rule]]\nzones = [\"10.0.0.0/33\"]\naction = \"allow\"\n",
            "10.0.0.0/33",
        ),
        (
            "[[rule]]\napps = [\"payroll\"]\naction = \"deny\"\n",
            "no app `payroll`",
        ),
        (
            "[[rule]]\nsps = [\"app-rs256\"]\naction = \"deny\"\n",
            "no sp `app-rs256`",
        ),
        (
            "[[rule]]\ngroups = [\"admins\"]\naction = \"deny\"\n",
            "no group `admins`",
        ),
        (
            "[[rule]]\naction = \"allow\"\nidle_timeout = \"forever\"\n",
            "idle_timeout",
        ),
    ] {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let file = file.to_str().unwrap();
        let (ok, out) = admin(
            &serve,
            &["policy", "set", "--tenant", "acme", "--file", file],
        );
        assert!(!ok, "{text}: {out}");
        assert_eq!(out["error"]["code"], "bad_request", "{out}");
        let message = out["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{text}: {message}");
    }

    let file = dir.path().join("policy.toml");
    std::fs::write(&file, POLICY).unwrap();
    let file = file.to_str().unwrap();
    let (ok, out) = admin(
        &serve,
        &["policy", "set", "--tenant", "acme", "--file", file],
    );
    assert!(ok, "{out}");
    let set: PolicyShown = serde_json::from_value(out["result"].clone()).unwrap();
    assert_eq!((set.version, set.rules.len()), (1, 4));
    assert_eq!(
        set.rules[1]["zones"],
        json!(["192.0.2.0/24", "2001:db8::/32"])
    );
    let (ok, shown) = admin(&serve, &["policy", "show", "--tenant", "acme"]);
    assert!(ok && shown["result"]["policy"] == POLICY, "{shown}");

    // The office zone: the password alone, the rule's lifetimes.
    let office = sign_in(&client, "acme", "bob", "pw-bob", "192.0.2.5", (None, None));
    let office = office.await.unwrap();
    assert_eq!(
        (office.status.as_str(), office.amr.clone()),
        ("SUCCESS", Some(vec!["pwd".to_owned()]))
    );
    let info = client
        .session_validate("acme", office.session.as_ref().unwrap())
        .await
        .unwrap();
    assert!(info.expires_at.abs_diff(now() + 7200) <= 5, "{info:?}");
    assert!(info.idle_expires_at.abs_diff(now() + 1200) <= 5, "{info:?}");
    // The SP rule's lifetime outside the office; the default lifetime
    // without a rule (the tenant's: hours, not minutes).
    let wiki = sign_in(
        &client,
        "acme",
        "bob",
        "pw-bob",
        "198.51.100.1",
        (None, Some("sp-es256")),
    );
    let wiki = wiki.await.unwrap();
    assert!(
        wiki.expires_at.unwrap().abs_diff(now() + 600) <= 5,
        "{wiki:?}"
    );
    let plain = sign_in(
        &client,
        "acme",
        "bob",
        "pw-bob",
        "198.51.100.1",
        (None, None),
    );
    let plain = plain.await.unwrap();
    assert!(plain.expires_at.unwrap() > now() + 3600, "{plain:?}");

    // The denied app: forbidden (from the office too: the first rule),
    // never saying which rule; audited with the rule's name.
    for ip in ["198.51.100.1", "192.0.2.5"] {
        let denied = sign_in(
            &client,
            "acme",
            "bob",
            "pw-bob",
            ip,
            (Some("app-rs256"), None),
        );
        let (code, message) = refused(denied.await);
        assert_eq!(code, ErrorCode::Forbidden);
        assert!(!message.contains("payroll-closed"), "{message}");
    }
    // A wrong password to the denied app is still a wrong password.
    let wrong = sign_in(
        &client,
        "acme",
        "bob",
        "nope",
        "198.51.100.1",
        (Some("app-rs256"), None),
    );
    assert_eq!(refused(wrong.await).0, ErrorCode::InvalidCredentials);
    // globex has no policy: acme's does not apply to it.
    let carol = sign_in(
        &client,
        "globex",
        "carol",
        "pw-carol",
        "198.51.100.1",
        (Some("app-rs256"), None),
    );
    assert_eq!(carol.await.unwrap().status, "SUCCESS");

    // The group rule outside the office: alice has no factor, so she is
    // asked to enroll; the state ends her sign-in with the first code.
    let enroll = sign_in(
        &client,
        "acme",
        "alice",
        "pw-alice",
        "198.51.100.1",
        (None, None),
    );
    let enroll = enroll.await.unwrap();
    assert_eq!(enroll.status, "MFA_ENROLL", "{enroll:?}");
    assert!(enroll.session.is_none());
    let state = enroll.state.unwrap();
    let enrolled: FactorEnrolled = op(
        &client,
        AuthOp::FactorEnroll {
            tenant: "acme".into(),
            user: "alice".into(),
            factor_type: "totp".into(),
        },
    )
    .await
    .unwrap();
    let codes = python(vec![
        json!({"do": "totp", "uri": enrolled.otpauth_uri, "at": now()}),
        json!({"do": "totp", "uri": enrolled.otpauth_uri, "at": now() + 30}),
    ]);
    let code = |i: usize| Secret(codes[i]["code"].as_str().unwrap().to_owned());
    // Another user cannot use alice's state (and it is spent by trying).
    let other = sign_in(
        &client,
        "acme",
        "alice",
        "pw-alice",
        "198.51.100.1",
        (None, None),
    );
    let other_state = other.await.unwrap().state.unwrap();
    assert_eq!(
        activate(&client, "bob", code(0), other_state).await,
        ErrorCode::InvalidCredentials
    );
    let (ok, out) = sigil_stdin(
        &serve,
        &[
            "client",
            "factor-activate",
            "--tenant",
            "acme",
            "--user",
            "alice",
            "--otp",
            codes[0]["code"].as_str().unwrap(),
            "--state",
            &state,
        ],
        "",
    );
    assert!(ok, "{out}");
    assert_eq!(out["result"]["status"], "SUCCESS", "{out}");
    assert_eq!(out["result"]["amr"], json!(["pwd", "otp"]));
    let session = out["result"]["session"].as_str().unwrap();
    let info = client.session_validate("acme", session).await.unwrap();
    assert_eq!(
        (info.user.as_str(), info.amr.clone()),
        ("alice", vec!["pwd".to_owned(), "otp".to_owned()])
    );
    // The state is single use.
    assert_eq!(
        activate(&client, "alice", code(1), state).await,
        ErrorCode::InvalidCredentials
    );
    // Now enrolled: outside, a code; in the office, the password alone.
    let mfa = sign_in(
        &client,
        "acme",
        "alice",
        "pw-alice",
        "198.51.100.1",
        (None, None),
    );
    let mfa = mfa.await.unwrap();
    assert_eq!(mfa.status, "MFA_REQUIRED");
    // An MFA_REQUIRED state, or a made-up one, does not complete an
    // enrollment (nor sign in).
    for state in [mfa.state.unwrap(), "A".repeat(43)] {
        assert_eq!(
            activate(&client, "alice", code(1), state).await,
            ErrorCode::InvalidCredentials
        );
    }
    let v6 = sign_in(
        &client,
        "acme",
        "alice",
        "pw-alice",
        "2001:db8::7",
        (None, None),
    );
    assert_eq!(v6.await.unwrap().status, "SUCCESS");

    // Audited: the denial with its rule, the enrollment request, the set.
    common::wait_shipped(&serve.dir);
    let kinds: Vec<(String, serde_json::Value)> = db
        .query(
            "SELECT kind, detail FROM audit_events
              WHERE kind IN ('auth.policy_deny', 'auth.mfa_enroll', 'policy.set') ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(kinds[0].0, "policy.set");
    assert_eq!(kinds[0].1["changed"], json!({"version": "1", "rules": "4"}));
    let denials: Vec<_> = kinds
        .iter()
        .filter(|(k, _)| k == "auth.policy_deny")
        .collect();
    assert_eq!(denials.len(), 2, "{kinds:?}");
    assert_eq!(denials[0].1["rule"], "payroll-closed");
    assert!(kinds.iter().any(|(k, _)| k == "auth.mfa_enroll"));

    // Who may set it: not a front end that is no admin, not an admin of
    // another tenant.
    let plain: Result<PolicyShown, _> = op(
        &client,
        AuthOp::PolicySet {
            tenant: "acme".into(),
            policy: String::new(),
        },
    )
    .await;
    assert_eq!(refused(plain).0, ErrorCode::Forbidden);
    let globex_admin = dir.path().join("globex-admin");
    let (ok, out) = admin(
        &serve,
        &[
            "frontend",
            "add",
            "--name",
            "globex-admin",
            "--tenants",
            "globex",
            "--admin",
            "--out",
            globex_admin.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}");
    let other = serve.client(Some(&globex_admin)).await.unwrap();
    for tenant_op in [
        AuthOp::PolicySet {
            tenant: "acme".into(),
            policy: String::new(),
        },
        AuthOp::PolicyShow {
            tenant: "acme".into(),
        },
    ] {
        let refusal: Result<PolicyShown, _> = op(&other, tenant_op).await;
        assert_eq!(refused(refusal).0, ErrorCode::Forbidden);
    }
    let own: PolicyShown = op(
        &other,
        AuthOp::PolicyShow {
            tenant: "globex".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(own.version, 0);
    // acme's policy is unchanged.
    let (_, shown) = admin(&serve, &["policy", "show", "--tenant", "acme"]);
    assert_eq!(shown["result"]["version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_settings_are_set_checked_and_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let serve = start(dir.path(), "queue = 64\nip_failures_burst = 1000");
    let client = serve.client(None).await.unwrap();
    set_password(&serve, "acme", "bob", "pw-bob");
    let (ok, shown) = admin(&serve, &["auth-settings", "show", "--tenant", "acme"]);
    assert!(ok, "{shown}");
    assert_eq!(
        shown["result"],
        json!({"argon2_m_kib": 19456, "argon2_t": 2, "argon2_p": 1,
               "lockout_threshold": 10, "lockout_period_s": 900})
    );
    for (args, says) in [
        (vec!["--argon2-t", "0"], "argon2_t"),
        (vec!["--argon2-p", "65"], "argon2_p"),
        (
            vec!["--argon2-m-kib", "8", "--argon2-p", "2"],
            "8 KiB per lane",
        ),
        (vec!["--lockout-threshold", "0"], "lockout_threshold"),
    ] {
        let mut all = vec!["auth-settings", "set", "--tenant", "acme"];
        all.extend(args);
        let (ok, out) = admin(&serve, &all);
        assert!(!ok && out["error"]["code"] == "bad_request", "{out}");
        assert!(
            out["error"]["message"].as_str().unwrap().contains(says),
            "{out}"
        );
    }
    let (ok, out) = admin(
        &serve,
        &[
            "auth-settings",
            "set",
            "--tenant",
            "acme",
            "--lockout-threshold",
            "3",
            "--lockout-period",
            "2m",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(out["result"]["lockout_threshold"], 3);
    assert_eq!(out["result"]["lockout_period_s"], 120);
    assert_eq!(out["result"]["argon2_m_kib"], 19456);
    // globex keeps the defaults.
    let (_, globex) = admin(&serve, &["auth-settings", "show", "--tenant", "globex"]);
    assert_eq!(globex["result"]["lockout_threshold"], 10);

    for _ in 0..2 {
        let wrong = common::auth::authenticate(&client, "acme", "bob", "nope").await;
        assert_eq!(refused(wrong).0, ErrorCode::InvalidCredentials);
    }
    let locked = common::auth::authenticate(&client, "acme", "bob", "nope")
        .await
        .unwrap();
    assert_eq!(locked.status, "LOCKED_OUT");
    assert!(
        locked.locked_until.unwrap().abs_diff(now() + 120) <= 5,
        "{locked:?}"
    );

    // A stronger hashing parameter applies to the next hash made.
    let (ok, out) = admin(
        &serve,
        &[
            "auth-settings",
            "set",
            "--tenant",
            "acme",
            "--argon2-t",
            "3",
        ],
    );
    assert!(ok, "{out}");
    set_password(&serve, "acme", "bob", "pw-bob-2");
    let db = node_database(&serve.var()).await;
    let hash = common::auth::stored_hash(&db, "acme", "bob").await;
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=3,p=1$"),
        "{hash}"
    );
    // Not for a caller that is no admin.
    let plain: Result<sigil_proto::auth::AuthSettingsShown, _> = op(
        &client,
        AuthOp::AuthSettingsShow {
            tenant: "acme".into(),
        },
    )
    .await;
    assert_eq!(refused(plain).0, ErrorCode::Forbidden);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_set_on_one_node_applies_on_the_other() {
    use common::cluster::{specs, Nodes};
    let dir = tempfile::tempdir().unwrap();
    let owned = dir.path().to_owned();
    let nodes = tokio::task::spawn_blocking(move || {
        Nodes::start(&owned, specs(2, |_, _, port| format!("127.0.0.1:{port}")))
    })
    .await
    .unwrap();
    nodes.until_serving(Duration::from_secs(60)).await;
    let (one, admin_two) = (nodes.client(0).await, nodes.admin(1).await);
    let _: sigil_proto::auth::CredentialChanged = op(
        &admin_two,
        AuthOp::UserPasswordSet {
            tenant: "acme".into(),
            user: "bob".into(),
            password: Secret("pw".into()),
        },
    )
    .await
    .unwrap();
    // Node one reads (and caches) the default policy.
    let first = sign_in(&one, "acme", "bob", "pw", "203.0.113.9", (None, None));
    assert_eq!(first.await.unwrap().status, "SUCCESS");
    let set = |policy: &str| {
        op::<PolicyShown>(
            &admin_two,
            AuthOp::PolicySet {
                tenant: "acme".into(),
                policy: policy.to_owned(),
            },
        )
    };
    let outside = "[[rule]]\nname = \"lan-only\"\nzones = [\"10.0.0.0/8\"]\naction = \"allow\"\n\n[[rule]]\naction = \"deny\"\n";
    assert_eq!(set(outside).await.unwrap().version, 1);
    until(&one, Some(ErrorCode::Forbidden)).await;
    let lan = sign_in(&one, "acme", "bob", "pw", "10.1.1.1", (None, None));
    assert_eq!(lan.await.unwrap().status, "SUCCESS");
    // An empty file: the default policy again, on node one too.
    assert_eq!(set("").await.unwrap().version, 2);
    until(&one, None).await;
}

/// Signs bob in from outside every zone on `node` until the answer is
/// `want` (a refusal's code, or none for an answer): 10 s at most.
async fn until(node: &Client, want: Option<ErrorCode>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = sign_in(node, "acme", "bob", "pw", "203.0.113.9", (None, None)).await;
        let code = got.as_ref().err().map(|e| match e {
            sigil_proto::client::CallError::Refused(w) => w.code,
            other => panic!("{other:?}"),
        });
        if code == want {
            return;
        }
        assert!(Instant::now() < deadline, "node one still answers {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
