//! Slow signatures leave the I/O workers. An HSM signature can wait for a
//! free token session and RSA costs hundreds of microseconds: made on a
//! QUIC worker, either stalls every connection of that core. They go to
//! the batched [`SignerPool`] with a deadline; past it the request is
//! answered `unavailable` (the pool skips a job it would start too late).
//! EdDSA and ECDSA in software stay inline: cheaper than any hand-off
//! (docs/BENCHMARKING.md, "inline or pool").

use std::sync::Arc;
use std::time::{Duration, Instant};

use signer::{Algorithm, PoolConfig, RejectReason, SignerPool, SigningKey, SOFTWARE_BACKEND};

use super::hot_path::HotPath;
use super::issue::{self, Issued, LiveSp, SessionFacts, UserRecord};
use super::live::TenantLive;
use super::seams::{AuditSink, Clock, DirectoryReads};
use super::{internal, refuse};
use sigil_proto::{ErrorCode, WireError};

/// The pool for slow signatures and how long a request waits for one.
#[derive(Debug)]
pub struct SlowSigning {
    pool: SignerPool,
    deadline: Duration,
}

impl SlowSigning {
    /// Starts `threads` signing threads; a signature not made within
    /// `deadline` is answered `unavailable`.
    ///
    /// # Errors
    /// As [`SignerPool::start`].
    pub fn start(threads: usize, deadline: Duration) -> Result<SlowSigning, signer::Error> {
        Ok(SlowSigning {
            pool: SignerPool::start(PoolConfig {
                workers: threads.max(1),
                queue_capacity: 1_024,
                max_batch: 64,
            })?,
            deadline,
        })
    }

    /// Whether `key` signs on the pool: any key outside this process (an
    /// HSM) and RSA in software.
    pub fn is_slow(key: &dyn SigningKey) -> bool {
        key.backend() != SOFTWARE_BACKEND
            || matches!(key.algorithm(), Algorithm::Rs256 | Algorithm::Ps256)
    }

    fn timed_out(&self) -> WireError {
        refuse(
            ErrorCode::Unavailable,
            format!(
                "the signature was not made within {} ms",
                self.deadline.as_millis()
            ),
        )
    }

    fn rejected(reason: RejectReason) -> WireError {
        match reason {
            RejectReason::Overloaded => refuse(ErrorCode::Overloaded, "the signer pool is full"),
            RejectReason::Closed => refuse(ErrorCode::Unavailable, "the signer pool is closed"),
        }
    }

    /// Signs `message` with `key` on the pool, within the deadline.
    ///
    /// # Errors
    /// `unavailable` past the deadline, `overloaded` when the pool's queue
    /// is full, `internal` when the backend fails.
    pub async fn sign(
        &self,
        key: &Arc<dyn SigningKey>,
        message: &[u8],
    ) -> Result<Vec<u8>, WireError> {
        let deadline = Instant::now() + self.deadline;
        let pending = self
            .pool
            .try_sign_by(Arc::clone(key), message.to_vec(), Some(deadline))
            .map_err(|rejected| SlowSigning::rejected(rejected.reason))?;
        match tokio::time::timeout_at(deadline.into(), pending).await {
            Err(_) | Ok(Err(signer::Error::DeadlineExceeded)) => Err(self.timed_out()),
            Ok(Err(e)) => {
                tracing::error!(error = %e, backend = key.backend(), "signing");
                Err(refuse(ErrorCode::Internal, "signing"))
            }
            Ok(Ok(signature)) => Ok(signature),
        }
    }

    /// Runs `work` (which signs with a slow key, e.g. a SAML Response) on
    /// the pool, within the deadline.
    ///
    /// # Errors
    /// `unavailable` past the deadline, `overloaded` when the pool's queue
    /// is full.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, WireError> {
        let deadline = Instant::now() + self.deadline;
        let done = self
            .pool
            .try_run(work, Some(deadline))
            .map_err(SlowSigning::rejected)?;
        match tokio::time::timeout_at(deadline.into(), done).await {
            Ok(Ok(result)) => Ok(result),
            // Dropped unrun (too late) or timed out waiting.
            Ok(Err(_)) | Err(_) => Err(self.timed_out()),
        }
    }
}

impl<R: DirectoryReads, A: AuditSink, C: Clock> HotPath<R, A, C> {
    /// A signed SAML Response; built and signed on the signer pool when
    /// the SP's key is slow (its two signatures follow one another).
    pub(super) async fn saml_response(
        &self,
        live: &TenantLive,
        sp: &Arc<LiveSp>,
        user: &Arc<UserRecord>,
        facts: SessionFacts,
        in_response_to: Option<&str>,
    ) -> Result<Issued, WireError> {
        let keys = live.keys.load_full();
        let slow = keys
            .view
            .active(sp.algorithm)
            .is_ok_and(|active| SlowSigning::is_slow(active.key().as_ref()));
        let (issuer, name_id_key, rng, now) = (
            live.issuer.clone(),
            live.name_id_key.clone(),
            self.rng.clone(),
            self.clock.now(),
        );
        let (sp, user) = (Arc::clone(sp), Arc::clone(user));
        let in_response_to = in_response_to.map(str::to_owned);
        let build = move || {
            let certificate = |kid: &str| keys.certificates.get(kid).cloned();
            issue::saml(
                &keys.view,
                &certificate,
                &issuer,
                &sp,
                &user,
                &facts,
                in_response_to.as_deref(),
                &name_id_key,
                now,
                &rng,
            )
        };
        let built = if slow {
            self.signing.run(build).await?
        } else {
            build()
        };
        built.map_err(|e| internal("signing", &e))
    }
}

#[cfg(test)]
mod tests {
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
            }),
            fingerprint: Some("f".repeat(64)),
            unresolved: false,
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
        // scheduler of a shared machine, none waits for the token.
        let stalled = fast.iter().filter(|l| **l >= SLOW).count();
        assert!(
            p90 < Duration::from_millis(100) && stalled * 20 < fast.len(),
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
}
