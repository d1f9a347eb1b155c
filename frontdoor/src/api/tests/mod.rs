//! The hot path without Postgres: authorise → budget → session → user →
//! claims → sign → audit over in-memory fakes of the seams (directory
//! reads, audit sink, clock), a real session replica on a temp directory
//! and real software keys. The end-to-end tests (frontdoor/tests) run the
//! same path over Postgres and QUIC.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod slow_token;
mod trusted;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use directory::{Frontend, OidcApp, SamlSp, Tenant, User, UserStatus};
use sigil_proto::{ErrorCode, Operation, WireError};
use signer::{KeyPolicy, KeyRing, KeySpec, MasterKey, SoftwareBackend, SoftwareKey, Timestamp};

use super::audit::{AuditEvent, IssueKind};
use super::hot_path::HotPath;
use super::keys::KeyManager;
use super::seams::{wall_ms, AuditSink, Clock, DirectoryReads};
use super::{authorize, Caller, TenantLive};

const TENANT_ID: i64 = 7;

/// The directory as a few maps; `down` makes every read fail.
#[derive(Default)]
struct FakeDirectory {
    users: HashMap<String, User>,
    apps: HashMap<String, OidcApp>,
    sps: HashMap<String, SamlSp>,
    down: AtomicBool,
    reads: AtomicU64,
}

impl FakeDirectory {
    fn read<T: Clone>(
        &self,
        tenant_id: i64,
        map: &HashMap<String, T>,
        key: &str,
    ) -> Result<Option<T>, directory::Error> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        if self.down.load(Ordering::Relaxed) {
            return Err(directory::Error::Journal("connection refused".into()));
        }
        Ok((tenant_id == TENANT_ID)
            .then(|| map.get(key).cloned())
            .flatten())
    }
}

impl DirectoryReads for Arc<FakeDirectory> {
    async fn user(&self, tenant_id: i64, login: &str) -> Result<Option<User>, directory::Error> {
        self.read(tenant_id, &self.users, login)
    }
    async fn oidc_app(
        &self,
        tenant_id: i64,
        name: &str,
    ) -> Result<Option<OidcApp>, directory::Error> {
        self.read(tenant_id, &self.apps, name)
    }
    async fn saml_sp(
        &self,
        tenant_id: i64,
        name: &str,
    ) -> Result<Option<SamlSp>, directory::Error> {
        self.read(tenant_id, &self.sps, name)
    }
}

/// Records in a list; `full` refuses them as a full journal does.
#[derive(Default)]
struct FakeAudit {
    records: Mutex<Vec<(i64, AuditEvent)>>,
    full: AtomicBool,
}

impl AuditSink for Arc<FakeAudit> {
    async fn record(
        &self,
        tenant_id: i64,
        event: AuditEvent,
        _at_ms: u64,
    ) -> Result<(), directory::Error> {
        if self.full.load(Ordering::Relaxed) {
            return Err(directory::Error::Journal("journal queue full".into()));
        }
        self.records.lock().unwrap().push((tenant_id, event));
        Ok(())
    }
    fn record_later(&self, tenant_id: i64, event: AuditEvent, _at_ms: u64) {
        self.records.lock().unwrap().push((tenant_id, event));
    }
}

/// A clock the test moves.
struct FakeClock(AtomicU64);

impl Clock for Arc<FakeClock> {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

type TestPath = HotPath<Arc<FakeDirectory>, Arc<FakeAudit>, Arc<FakeClock>>;

struct World {
    hot: TestPath,
    live: TenantLive,
    directory: Arc<FakeDirectory>,
    audit: Arc<FakeAudit>,
    clock: Arc<FakeClock>,
    _dir: tempfile::TempDir,
}

fn user(id: &str, login: &str, status: UserStatus) -> User {
    User {
        user_id: id.into(),
        login: login.into(),
        email: format!("{login}@acme.test"),
        display_name: login.to_uppercase(),
        status,
        profile: serde_json::Map::new(),
        groups: vec!["everyone".into()],
    }
}

fn tenant(rate: u32, active: bool) -> Tenant {
    Tenant {
        id: TENANT_ID,
        slug: "acme".into(),
        active,
        issuer: String::new(),
        rate_per_second: rate,
        rate_burst: rate,
        session_absolute_s: 3_600,
        session_idle_s: 1_800,
        key_algorithms: vec!["EdDSA".into(), "ES256".into()],
        key_rotation_s: 86_400,
        key_prepublish_s: 0,
        key_retire_grace_s: 3_600,
        display_name: String::new(),
    }
}

/// acme with alice (active) and mallory (suspended), an EdDSA app and an
/// ES256 SP, keys for both, a budget of `rate`/s.
fn world(rate: u32, active: bool) -> World {
    let mut directory = FakeDirectory::default();
    for u in [
        user("u-alice", "alice", UserStatus::Active),
        user("u-bob", "bob", UserStatus::Active),
        user("u-mallory", "mallory", UserStatus::Suspended),
    ] {
        directory.users.insert(u.login.clone(), u);
    }
    directory.apps.insert(
        "app-eddsa".into(),
        OidcApp {
            name: "app-eddsa".into(),
            redirect_uris: vec![],
            algorithm: "EdDSA".into(),
            claim_mapping: [("email".to_string(), "email".to_string())].into(),
            id_token_ttl_s: 300,
            access_token_ttl_s: 600,
            assigned: directory::Assignments::everyone(),
            backchannel_logout_uri: None,
            refresh: directory::RefreshSettings::default(),
            jwks: None,
        },
    );
    directory.sps.insert(
        "sp-es256".into(),
        SamlSp {
            name: "sp-es256".into(),
            entity_id: "https://sp.test/metadata".into(),
            acs_urls: vec!["https://sp.test/acs".into()],
            name_id_format: "emailAddress".into(),
            attribute_mapping: [("mail".to_string(), "email".to_string())].into(),
            algorithm: "ES256".into(),
            sign_assertion: true,
            sign_response: true,
            assigned: directory::Assignments::everyone(),
        },
    );
    let now_ms = wall_ms();
    let now = Timestamp::from_secs(now_ms / 1000);
    let row = tenant(rate, active);
    let mut ring = KeyRing::new("acme", KeyPolicy::new(0, 3_600).unwrap());
    let mut certificates = HashMap::new();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    for spec in [KeySpec::EdDsa, KeySpec::Es256] {
        let key: Arc<dyn signer::SigningKey> = Arc::new(SoftwareKey::generate(spec).unwrap());
        let certificate =
            signer::x509::self_signed_certificate(key.as_ref(), "acme", now, 30, &rng).unwrap();
        certificates.insert(key.kid().as_str().to_owned(), certificate);
        ring.add_active(key, now).unwrap();
    }
    let master = Arc::new(MasterKey::from_bytes(&[3u8; 32]).unwrap());
    let manager = KeyManager::new(Arc::new(SoftwareBackend::new(master)), "https://idp.test");
    let keys = manager.publish(&row, &ring, certificates, now);
    let live = TenantLive::new(
        row,
        "https://idp.test/t/acme".into(),
        keys,
        1_000,
        &[1u8; 32],
        now_ms,
    );
    let dir = tempfile::tempdir().unwrap();
    let replica =
        sessions::testing::start_solo(&dir.path().join("sessions"), Default::default()).unwrap();
    let (directory, audit) = (Arc::new(directory), Arc::new(FakeAudit::default()));
    let clock = Arc::new(FakeClock(AtomicU64::new(now_ms)));
    let hot = HotPath::new(
        Arc::clone(&directory),
        Arc::clone(&audit),
        Arc::clone(&clock),
        Arc::new(replica),
        1,
        Duration::from_secs(2),
    )
    .unwrap();
    World {
        hot,
        live,
        directory,
        audit,
        clock,
        _dir: dir,
    }
}

fn caller(tenants: &[&str], admin: bool) -> Caller {
    Caller {
        frontend: Some(Frontend {
            fingerprint: "f".repeat(64),
            name: "web-1".into(),
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
            admin,
            trusted_assertions: true,
        }),
        fingerprint: Some("f".repeat(64)),
        unresolved: false,
        epoch: 0,
    }
}

fn id_token_op(tenant: &str) -> Operation {
    Operation::IdToken {
        tenant: tenant.into(),
        user: "alice".into(),
        app: "app-eddsa".into(),
        session: "s".into(),
        nonce: None,
        offline: false,
    }
}

impl World {
    async fn session(&self, login: &str) -> String {
        self.hot
            .session_create(&self.live, "web-1", login, vec!["pwd".into()], None)
            .await
            .unwrap()
            .session
    }

    async fn id_token(&self, session: &str) -> Result<sigil_proto::results::Token, WireError> {
        self.hot
            .id_token(
                &self.live,
                "web-1",
                "alice",
                "app-eddsa",
                session,
                Some("n-1"),
            )
            .await
    }

    fn audited(&self) -> Vec<AuditEvent> {
        let records = self.audit.records.lock().unwrap();
        records.iter().map(|(_, event)| event.clone()).collect()
    }
}

fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn an_id_token_runs_the_whole_path_and_its_record_is_durable_first() {
    let w = world(1_000, true);
    authorize(&caller(&["acme"], false), &id_token_op("acme")).unwrap();
    let session = w.session("alice").await;
    let token = w.id_token(&session).await.unwrap();

    let keys = w.live.keys.load();
    let active = keys.view.active(signer::Algorithm::EdDsa).unwrap();
    assert_eq!(token.kid, active.key().kid().as_str());
    assert_eq!(token.alg, "EdDSA");
    let (signing_input, signature) = token.token.rsplit_once('.').unwrap();
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature)
        .unwrap();
    assert!(active
        .key()
        .public_key()
        .verify(signing_input.as_bytes(), &signature));
    let claims = claims(&token.token);
    assert_eq!(claims["sub"], "u-alice");
    assert_eq!(claims["aud"], "app-eddsa");
    assert_eq!(claims["iss"], "https://idp.test/t/acme");
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(
        claims["email"], "alice@acme.test",
        "the app's claim mapping"
    );
    assert_eq!(claims["sid"], session.as_str());
    assert_eq!(token.expires_at, w.clock.now_ms() / 1000 + 300);

    let audited = w.audited();
    assert!(matches!(&audited[0], AuditEvent::SessionCreated { user, .. } if user == "u-alice"));
    assert!(matches!(
        &audited[1],
        AuditEvent::Issued { kind: IssueKind::IdToken, user, kid, id, caller }
            if user == "u-alice" && *kid == token.kid && *id == claims["jti"] && caller == "web-1"
    ));
    assert_eq!(w.live.metrics.issued[0].load(Ordering::Relaxed), 1);
    // Cached: the second token reads nothing from the directory.
    let reads = w.directory.reads.load(Ordering::Relaxed);
    w.id_token(&session).await.unwrap();
    assert_eq!(w.directory.reads.load(Ordering::Relaxed), reads);
}

#[tokio::test(flavor = "current_thread")]
async fn no_token_leaves_without_its_audit_record() {
    let w = world(1_000, true);
    let session = w.session("alice").await;
    w.audit.full.store(true, Ordering::Relaxed);
    let refused = w.id_token(&session).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::Internal);
    assert_eq!(refused.message, "audit journal");
    assert_eq!(w.live.metrics.issued[0].load(Ordering::Relaxed), 0);
}

#[test]
fn authorisation_refuses_strangers_other_tenants_and_non_admins() {
    let code = |c: &Caller, op: &Operation| authorize(c, op).map_err(|e| e.code);
    let anonymous = Caller {
        frontend: None,
        fingerprint: None,
        unresolved: false,
        epoch: 0,
    };
    assert_eq!(
        code(&anonymous, &id_token_op("acme")),
        Err(ErrorCode::Unauthenticated)
    );
    assert_eq!(code(&anonymous, &Operation::Health), Ok(()));
    let unregistered = Caller {
        fingerprint: Some("a".repeat(64)),
        ..anonymous.clone()
    };
    let refused = authorize(&unregistered, &id_token_op("acme")).unwrap_err();
    assert_eq!(refused.code, ErrorCode::Unauthenticated);
    assert_eq!(refused.message, "client certificate not registered");
    let unresolved = Caller {
        unresolved: true,
        ..unregistered
    };
    assert_eq!(
        code(&unresolved, &id_token_op("acme")),
        Err(ErrorCode::Unavailable)
    );
    let web = caller(&["acme"], false);
    assert_eq!(code(&web, &id_token_op("acme")), Ok(()));
    assert_eq!(
        code(&web, &id_token_op("globex")),
        Err(ErrorCode::Forbidden)
    );
    let rotate = Operation::KeysRotate {
        tenant: "acme".into(),
        alg: None,
    };
    assert_eq!(code(&web, &rotate), Err(ErrorCode::Forbidden));
    assert_eq!(
        code(&web, &Operation::ClusterStatus),
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(code(&caller(&["acme"], true), &rotate), Ok(()));
    assert_eq!(code(&caller(&["*"], false), &id_token_op("globex")), Ok(()));
    // Refusals are audited, rate and overload refusals only counted.
    assert!(web.refusal("id_token", ErrorCode::Forbidden, "x").is_some());
    assert!(web
        .refusal("id_token", ErrorCode::RateLimited, "x")
        .is_none());
}

/// A caller limited to some tenants is refused every other name in the
/// same words, whether the name exists or not (the pure check reads no
/// directory, so no other path can tell them apart); the message names its
/// own list, or its size when long, never the name asked for as a tenant.
#[test]
fn a_limited_caller_is_refused_other_names_alike_and_told_its_list() {
    let message = |c: &Caller, tenant: &str| authorize(c, &id_token_op(tenant)).unwrap_err();
    let two = caller(&["demo", "acme"], false);
    for tenant in ["globex", "nosuch"] {
        let refused = message(&two, tenant);
        assert_eq!(refused.code, ErrorCode::Forbidden);
        assert_eq!(
            refused.message,
            format!("web-1 may act only for tenants demo, acme: {tenant} is not one of them")
        );
    }
    assert_eq!(
        message(&caller(&["acme"], false), "nosuch").message,
        "web-1 may act only for tenant acme: nosuch is not it"
    );
    let many: Vec<String> = (1..=12).map(|i| format!("seed-{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let refused = message(&caller(&many, false), "nosuch");
    assert_eq!(
        refused.message,
        "web-1 may act only for its 12 tenants: nosuch is not one of them"
    );
    assert!(!refused.message.contains("seed-1"), "{}", refused.message);
    // Who may learn that a name does not exist: admins and `*` callers.
    assert!(!super::callers::may_know_tenants(&two));
    assert!(super::callers::may_know_tenants(&caller(&["*"], false)));
    assert!(super::callers::may_know_tenants(&caller(&["acme"], true)));
}

#[tokio::test(flavor = "current_thread")]
async fn the_budget_and_a_suspended_tenant_refuse_before_anything_is_read() {
    let w = world(1, true);
    let session = w.session("alice").await;
    w.id_token(&session).await.unwrap();
    let reads = w.directory.reads.load(Ordering::Relaxed);
    let refused = w.id_token(&session).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::RateLimited);
    assert_eq!(w.directory.reads.load(Ordering::Relaxed), reads);
    assert_eq!(
        w.live.metrics.refused[ErrorCode::ALL
            .iter()
            .position(|c| *c == ErrorCode::RateLimited)
            .unwrap()]
        .load(Ordering::Relaxed),
        1
    );

    let suspended = world(1_000, false);
    let refused = suspended.id_token("anything").await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::Forbidden);
    assert_eq!(refused.message, "tenant acme is suspended");
}

#[tokio::test(flavor = "current_thread")]
async fn sessions_that_are_not_valid_and_the_users_own_are_refused() {
    let w = world(1_000, true);
    let code = |r: Result<sigil_proto::results::Token, WireError>| r.unwrap_err();
    assert_eq!(
        code(w.id_token("not-a-session").await).message,
        "malformed session id"
    );
    let bobs = w.session("bob").await;
    let refused = code(w.id_token(&bobs).await);
    assert_eq!(refused.code, ErrorCode::SessionInvalid);
    assert_eq!(refused.message, "session belongs to another user");

    let revoked = w.session("alice").await;
    w.hot
        .session_revoke(&w.live, "web-1", &revoked)
        .await
        .unwrap();
    assert_eq!(code(w.id_token(&revoked).await).message, "session revoked");
    assert!(w
        .audited()
        .iter()
        .any(|e| matches!(e, AuditEvent::SessionRevoked { .. })));

    let all = w.session("alice").await;
    w.hot
        .user_revoke_sessions(&w.live, "web-1", "alice")
        .await
        .unwrap();
    assert_eq!(code(w.id_token(&all).await).message, "session revoked");
    // The mark covers sessions created until it was made, not later ones.
    w.clock.0.fetch_add(1_000, Ordering::Relaxed);
    let later = w.session("alice").await;
    w.id_token(&later).await.unwrap();

    let idle = w.session("alice").await;
    w.clock.0.fetch_add(1_801_000, Ordering::Relaxed);
    assert_eq!(
        code(w.id_token(&idle).await).message,
        "session idle too long"
    );
    let old = w.session("alice").await;
    w.clock.0.fetch_add(3_601_000, Ordering::Relaxed);
    let refused = code(w.id_token(&old).await);
    assert_eq!(refused.code, ErrorCode::SessionInvalid);
    assert_eq!(refused.message, "session expired");
}

#[tokio::test(flavor = "current_thread")]
async fn inactive_users_unknown_apps_and_an_unreachable_directory_are_refused() {
    let w = world(1_000, true);
    let refused = w
        .hot
        .session_create(&w.live, "web-1", "mallory", vec![], None)
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::UserInactive);
    let session = w.session("alice").await;
    let refused = w
        .hot
        .id_token(&w.live, "web-1", "alice", "app-nope", &session, None)
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::NotFound);
    assert_eq!(refused.message, "no app app-nope in acme");
    let refused = w
        .hot
        .id_token(&w.live, "web-1", "nobody", "app-eddsa", &session, None)
        .await
        .unwrap_err();
    assert_eq!(refused.message, "no user nobody in acme");

    w.directory.down.store(true, Ordering::Relaxed);
    w.live.clear_caches();
    let refused = w.id_token(&session).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::Unavailable);
    assert!(refused.message.starts_with("directory: "), "{refused:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn access_tokens_carry_scopes_and_saml_responses_their_acs() {
    let w = world(1_000, true);
    let session = w.session("alice").await;
    let scope = vec!["openid".to_string(), "profile".to_string()];
    let token = w
        .hot
        .access_token(&w.live, "web-1", "alice", "app-eddsa", &session, &scope)
        .await
        .unwrap();
    let claims = claims(&token.token);
    assert_eq!(claims["scope"], "openid profile");
    assert_eq!(claims["client_id"], "app-eddsa");
    assert!(claims.get("sid").is_none());
    assert_eq!(token.expires_at, w.clock.now_ms() / 1000 + 600);

    let response = w
        .hot
        .saml(
            &w.live,
            "web-1",
            "alice",
            "sp-es256",
            &session,
            Some("_req-1"),
        )
        .await
        .unwrap();
    assert_eq!(response.acs.as_deref(), Some("https://sp.test/acs"));
    assert_eq!(response.alg, "ES256");
    let xml = base64::engine::general_purpose::STANDARD
        .decode(&response.response)
        .unwrap();
    let xml = String::from_utf8(xml).unwrap();
    assert!(xml.contains("InResponseTo=\"_req-1\""), "{xml}");
    assert!(xml.contains("alice@acme.test"));
    assert!(matches!(
        w.audited().last(),
        Some(AuditEvent::Issued { kind: IssueKind::Saml, kid, .. }) if *kid == response.kid
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn a_touch_extends_the_idle_expiry() {
    let w = world(1_000, true);
    let session = w.session("alice").await;
    let before = w.hot.session_check(&w.live, &session, false).unwrap();
    assert_eq!(before.user, "alice");
    assert_eq!(before.amr, ["pwd"]);
    w.clock.0.fetch_add(60_000, Ordering::Relaxed);
    let touched = w.hot.session_check(&w.live, &session, true).unwrap();
    assert_eq!(touched.idle_expires_at, before.idle_expires_at + 60);
    assert_eq!(touched.expires_at, before.expires_at);
}
