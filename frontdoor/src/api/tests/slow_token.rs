//! An injected slow token (every signature takes 400 ms) on the same
//! node as software EdDSA keys, all requests on one current-thread
//! runtime as on a QUIC worker: EdDSA keeps its latency, slow
//! signatures past the deadline are answered `unavailable`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use directory::audit::AuditJournal;
use directory::{seed, testing, Frontend};
use signer::{
    GeneratedKey, KeyBackend, KeySpec, Kid, MasterKey, PublicKey, SigningKey, SoftwareBackend,
    StoredKey,
};

use crate::api::keys::{Backends, KeyManager};
use crate::api::{Appliance, ApplianceConfig, Caller};
use crate::http::documents::DocumentStore;
use sigil_proto::{ErrorCode, Operation};

const SLOW: Duration = Duration::from_millis(400);

/// A key in a token that takes [`SLOW`] per signature.
#[derive(Debug)]
struct SlowKey(Arc<dyn SigningKey>);

impl SigningKey for SlowKey {
    fn public_key(&self) -> &PublicKey {
        self.0.public_key()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, signer::Error> {
        std::thread::sleep(SLOW);
        self.0.sign(message)
    }
    fn backend(&self) -> &'static str {
        "slow-token"
    }
}

/// A token that makes ES256 keys only, each slow.
struct SlowToken(SoftwareBackend);

impl KeyBackend for SlowToken {
    fn name(&self) -> &'static str {
        "slow-token"
    }
    fn supports(&self, spec: KeySpec) -> bool {
        spec == KeySpec::Es256
    }
    fn generate(&self, tenant: &str, spec: KeySpec) -> Result<GeneratedKey, signer::Error> {
        let made = self.0.generate(tenant, spec)?;
        Ok(GeneratedKey {
            key: Arc::new(SlowKey(made.key)),
            stored: StoredKey {
                backend: "slow-token".into(),
                blob: made.stored.blob,
            },
        })
    }
    fn load(
        &self,
        tenant: &str,
        kid: &Kid,
        stored: &StoredKey,
    ) -> Result<Arc<dyn SigningKey>, signer::Error> {
        let software = StoredKey {
            backend: signer::SOFTWARE_BACKEND.into(),
            blob: stored.blob.clone(),
        };
        Ok(Arc::new(SlowKey(self.0.load(tenant, kid, &software)?)))
    }
    fn rebind(
        &self,
        _from: &str,
        _to: &str,
        _kid: &Kid,
        _stored: &StoredKey,
    ) -> Result<StoredKey, signer::Error> {
        Err(signer::Error::KeyRejected)
    }
}

fn id_token(app: &str, session: &str) -> Operation {
    Operation::IdToken {
        tenant: "acme".into(),
        user: "alice".into(),
        app: app.into(),
        session: session.into(),
        nonce: None,
        offline: false,
    }
}

/// An appliance whose ES256 keys live in the slow token (one signing
/// thread, a 1 s deadline), a caller for acme, alice's session.
async fn appliance_with_slow_token() -> (Appliance, Caller, String, tempfile::TempDir) {
    let database = testing::fresh_database().await.unwrap();
    let (owner, directory) = database.open(2).await.unwrap();
    seed::create_demo_data(&owner, &directory, 1_000_000)
        .await
        .unwrap();
    let software = SoftwareBackend::new(Arc::new(MasterKey::from_bytes(&[9u8; 32]).unwrap()));
    let backends = Backends::new(
        Arc::new(SlowToken(software.clone())),
        Some(Arc::new(software)),
        Vec::new(),
    );
    let dir = tempfile::tempdir().unwrap();
    let appliance = Appliance::new(
        ApplianceConfig {
            node: "node-1".into(),
            public_url: "http://127.0.0.1:1".into(),
            default_tenant_rate: 1_000_000,
            signing_threads: 1,
            signing_deadline: Duration::from_millis(1_000),
            tenants: Default::default(),
        },
        Arc::new(directory),
        KeyManager::new(Arc::new(backends), "http://127.0.0.1:1"),
        Arc::new(
            sessions::testing::start_solo(&dir.path().join("sessions"), Default::default())
                .unwrap(),
        ),
        Arc::new(AuditJournal::open(&dir.path().join("node-1.journal"), "node-1").unwrap()),
        Arc::new(DocumentStore::new()),
        [1u8; 32],
        tokio::runtime::Handle::current(),
    )
    .unwrap();
    let caller = Caller {
        frontend: Some(Frontend {
            fingerprint: "f".repeat(64),
            name: "web-1".into(),
            tenants: vec!["acme".into()],
            admin: false,
            trusted_assertions: true,
        }),
        fingerprint: Some("f".repeat(64)),
        unresolved: false,
        epoch: 0,
    };
    let created = appliance
        .call(
            &caller,
            Operation::SessionCreate {
                tenant: "acme".into(),
                user: "alice".into(),
                amr: vec!["pwd".into()],
                client: None,
            },
        )
        .await
        .unwrap();
    let sigil_proto::Reply::SessionCreated(created) = created else {
        panic!("session_create answered {created:?}");
    };
    let session = created.session;
    (appliance, caller, session, dir)
}

#[tokio::test(flavor = "current_thread")]
async fn a_slow_token_does_not_stall_software_eddsa_on_the_same_worker() {
    let (appliance, caller, session, _dir) = appliance_with_slow_token().await;
    // Warm the caches; the ES256 key is the slow token's.
    appliance
        .call(&caller, id_token("app-eddsa", &session))
        .await
        .unwrap();
    let started = Instant::now();
    appliance
        .call(&caller, id_token("app-es256", &session))
        .await
        .unwrap();
    assert!(started.elapsed() >= SLOW, "ES256 signs in the slow token");

    // Six slow signatures at once (one signing thread: three fit in the
    // deadline), while EdDSA tokens are issued one after another.
    // EdDSA tokens on a schedule, one every 10 ms for 1.3 s, each
    // timed from when it was due (a stalled worker shows however the
    // stall falls); 100 ms in, six slow signatures at once (one
    // signing thread: two or three fit in the deadline).
    let begin = Instant::now();
    let slow = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        futures_util::future::join_all((0..6).map(|_| {
            let (appliance, caller, session) = (&appliance, &caller, &session);
            async move {
                let started = Instant::now();
                let answer = appliance.call(caller, id_token("app-es256", session)).await;
                (answer.map(drop).map_err(|e| e.code), started.elapsed())
            }
        }))
        .await
    };
    let fast = async {
        let mut latencies = Vec::new();
        for n in 0..130u32 {
            let due = begin + Duration::from_millis(10) * n;
            tokio::time::sleep_until(due.into()).await;
            appliance
                .call(&caller, id_token("app-eddsa", &session))
                .await
                .unwrap();
            latencies.push(due.elapsed());
        }
        latencies
    };
    let (slow, mut fast) = tokio::join!(slow, fast);
    fast.sort();
    let (p50, p90, max) = (
        fast[fast.len() / 2],
        fast[fast.len() * 9 / 10],
        fast[fast.len() - 1],
    );
    eprintln!(
        "EdDSA beside a {SLOW:?} token: {} issued, p50 {p50:?}, p90 {p90:?}, max {max:?}; slow: {slow:?}",
        fast.len()
    );
    // Inline, every token due during the stall waits it out (p90 2.3 s
    // when forced inline); beside it, a few may meet a disk sync or the
    // scheduler of a shared machine (a loaded CI machine showed p90 228 ms
    // with none waiting 400 ms), none waits for the token. Counted, not
    // timed against a percentile: what fails is waiting for the token.
    let stalled = fast.iter().filter(|l| **l >= SLOW).count();
    assert!(
        stalled * 20 < fast.len(),
        "EdDSA waited for the slow token: p90 {p90:?}, max {max:?}, {stalled} waited {SLOW:?} or more"
    );
    let served = slow.iter().filter(|(answer, _)| answer.is_ok()).count();
    let late = slow
        .iter()
        .filter(|(answer, _)| *answer == Err(ErrorCode::Unavailable))
        .count();
    assert!(served >= 1 && late >= 1 && served + late == 6, "{slow:?}");
    assert!(
        slow.iter()
            .all(|(_, took)| *took < Duration::from_millis(1_400)),
        "every slow request answered by its deadline: {slow:?}"
    );
}
