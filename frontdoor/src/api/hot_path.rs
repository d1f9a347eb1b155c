//! The hot path: what issuing (`api/issuance.rs`) and session operations
//! (`api/session_ops.rs`) share, over the seams of `api/seams.rs`: the
//! cached reads of users, apps and SPs, the session check, strong
//! revocation, signing and the audit record.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use sessions::net::{Replica, ReplicaError};
use sessions::{Mark, Revoked, SessionId, Validation};
use sigil_proto::{ErrorCode, WireError};
use signer::{Algorithm, Timestamp};

use super::audit::AuditEvent;
use super::issue::{LiveApp, LiveSp, SessionFacts, UserRecord};
use super::live::TenantLive;
use super::seams::{AuditSink, Clock, DirectoryReads};
use super::signing::SlowSigning;
use super::{internal, refuse};
use crate::metrics::LatencyHistogram;

/// Issuing and session operations for loaded tenants, generic over what
/// they read (`R`), where they audit (`A`) and the clock (`C`).
pub struct HotPath<R, A, C> {
    pub(super) reads: R,
    pub(super) audit: A,
    pub(super) clock: C,
    pub(super) replica: Arc<Replica>,
    pub(super) signing: SlowSigning,
    pub(super) rng: SystemRandom,
    pub(super) ready: Arc<AtomicBool>,
    /// Building and signing, by backend: [software, hsm].
    pub(super) signing_latency: [LatencyHistogram; 2],
    /// Ended sessions on their way to back-channel logout (issue 19).
    pub(super) logout: super::logout::Outbox,
}

impl<R, A, C> std::fmt::Debug for HotPath<R, A, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotPath").finish_non_exhaustive()
    }
}

impl<R: DirectoryReads, A: AuditSink, C: Clock> HotPath<R, A, C> {
    /// A hot path over `reads`, `audit` and `clock`, checking sessions in
    /// `replica`; slow keys sign on `signing_threads` threads within
    /// `signing_deadline`.
    ///
    /// # Errors
    /// When the signer pool's threads cannot start.
    pub fn new(
        reads: R,
        audit: A,
        clock: C,
        replica: Arc<Replica>,
        signing_threads: usize,
        signing_deadline: Duration,
    ) -> Result<HotPath<R, A, C>, signer::Error> {
        Ok(HotPath {
            reads,
            audit,
            clock,
            replica,
            signing: SlowSigning::start(signing_threads, signing_deadline)?,
            rng: SystemRandom::new(),
            ready: Arc::new(AtomicBool::new(true)),
            signing_latency: Default::default(),
            logout: super::logout::Outbox::default(),
        })
    }

    /// The user `login`, cached.
    pub(super) async fn user(
        &self,
        live: &TenantLive,
        login: &str,
    ) -> Result<Arc<UserRecord>, WireError> {
        // A copy read before a mark revoking the user's sessions may predate
        // their deactivation on another node (the strong revoke reaches
        // this node before the deactivation returns; the change
        // notification may come later): read it again.
        if let Some(hit) = live.users.get(login) {
            if hit.loaded_ms <= self.replica.table().user_mark_ms(&live.slug, &hit.login) {
                live.users.retain(|_, user| user.id != hit.id);
            }
        }
        let started = self.clock.now_ms();
        let fetch = || self.reads.user(live.tenant.id, login);
        live.users
            .get_or_load(login, "user", &live.slug, fetch, |row| {
                Ok(UserRecord {
                    loaded_ms: started,
                    ..UserRecord::from(row)
                })
            })
            .await
    }

    /// The OIDC app `name`, cached.
    pub(super) async fn app(
        &self,
        live: &TenantLive,
        name: &str,
    ) -> Result<Arc<LiveApp>, WireError> {
        let fetch = || self.reads.oidc_app(live.tenant.id, name);
        live.apps
            .get_or_load(name, "app", &live.slug, fetch, |row| {
                LiveApp::from_row(row).map_err(|e| internal("app settings", &e))
            })
            .await
    }

    /// The SAML SP `name`, cached.
    pub(super) async fn sp(&self, live: &TenantLive, name: &str) -> Result<Arc<LiveSp>, WireError> {
        let fetch = || self.reads.saml_sp(live.tenant.id, name);
        live.sps
            .get_or_load(name, "SP", &live.slug, fetch, |row| {
                LiveSp::from_row(row).map_err(|e| internal("SP settings", &e))
            })
            .await
    }

    /// Refuses while the node catches up with its peers.
    pub(super) fn serving(&self) -> Result<(), WireError> {
        if self.ready.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(refuse(
                ErrorCode::Unavailable,
                "node is catching up with its peers",
            ))
        }
    }

    /// Checks (and with `touch`, extends) the session `id` at `now`.
    pub(super) fn check_session(
        &self,
        tenant: &str,
        id: &SessionId,
        now: u64,
        touch: bool,
    ) -> Result<Validation, WireError> {
        let checked = if touch {
            self.replica.touch(tenant, id, now)
        } else {
            self.replica.validate(tenant, id, now)
        };
        checked.map_err(|_| {
            refuse(
                ErrorCode::Unavailable,
                "no fresh leases from a majority of the cluster: this node cannot be sure it saw every revocation",
            )
        })
    }

    /// The facts a token repeats from `user`'s valid session `session`.
    pub(super) fn session_of(
        &self,
        live: &TenantLive,
        session: &str,
        user: &UserRecord,
    ) -> Result<SessionFacts, WireError> {
        self.serving()?;
        let id = parse_session(session)?;
        match self.check_session(&live.slug, &id, self.clock.now_ms(), false)? {
            Validation::Valid(view) if **view.user() == *user.login => Ok(SessionFacts {
                id: session.to_owned(),
                auth_time: Timestamp::from_secs(view.auth_time_ms() / 1000),
                amr: view.amr().to_vec(),
            }),
            Validation::Valid(_) => Err(refuse(
                ErrorCode::SessionInvalid,
                "session belongs to another user",
            )),
            other => Err(invalid(&other)),
        }
    }

    /// Revokes and returns once no node accepts what was revoked.
    pub(super) async fn revoke_strongly(&self, what: Revoked) -> Result<(), WireError> {
        self.replica
            .revoke(what)
            .await
            .map(drop)
            .map_err(|e| match e {
                ReplicaError::Durable(_) => internal("session store", &e),
                other => refuse(ErrorCode::Unavailable, other.to_string()),
            })
    }

    /// A mark revoking every session of `user` (or of the tenant) created
    /// until `now`, kept as long as any such session could live.
    pub(super) fn mark(&self, live: &TenantLive, user: Option<&str>, now: u64) -> Mark {
        Mark {
            tenant: Arc::clone(&live.slug),
            user: user.map(Arc::from),
            before_ms: now,
            keep_until_ms: now + self.longest_session_ms(live),
        }
    }

    /// How long a session of the tenant can live: its policy now, or longer
    /// if sessions made under a longer one were seen.
    pub(super) fn longest_session_ms(&self, live: &TenantLive) -> u64 {
        let policy = u64::from(live.tenant.session_absolute_s) * 1000;
        self.replica.table().longest_lifetime_ms(&live.slug, policy)
    }

    /// Makes `event` durable in the tenant's audit trail.
    pub(super) async fn audit(
        &self,
        live: &TenantLive,
        event: AuditEvent,
    ) -> Result<(), WireError> {
        self.audit
            .record(live.tenant.id, event, self.clock.now_ms())
            .await
            .map_err(|e| internal("audit journal", &e))
    }

    /// Records `events` in order, made durable together.
    pub(super) async fn audit_many(
        &self,
        live: &TenantLive,
        events: Vec<AuditEvent>,
    ) -> Result<(), WireError> {
        self.audit
            .record_many(live.tenant.id, events, self.clock.now_ms())
            .await
            .map_err(|e| internal("audit journal", &e))
    }

    /// Records how long building and signing took, per key backend.
    pub(super) fn signed(
        &self,
        view: &signer::KeyRingView,
        algorithm: Algorithm,
        started: Instant,
    ) {
        let backend = view
            .active(algorithm)
            .map_or("unknown", |k| k.key().backend());
        let index = usize::from(backend != signer::SOFTWARE_BACKEND);
        self.signing_latency[index].record(started.elapsed());
    }
}

/// A session id from the wire.
pub(super) fn parse_session(text: &str) -> Result<SessionId, WireError> {
    SessionId::parse(text).map_err(|_| refuse(ErrorCode::SessionInvalid, "malformed session id"))
}

/// The refusal for a session that is not valid.
pub(super) fn invalid(validation: &Validation) -> WireError {
    let why = match validation {
        Validation::Valid(_) => "valid",
        Validation::NotFound => "unknown",
        Validation::Expired => "expired",
        Validation::IdleExpired => "idle too long",
        Validation::Revoked => "revoked",
    };
    refuse(ErrorCode::SessionInvalid, format!("session {why}"))
}
