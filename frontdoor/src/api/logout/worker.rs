//! The delivery worker: takes ended sessions off the queue, finds the apps
//! to tell, makes their logout tokens and hands each to its own delivery
//! task (at most `max_concurrent` at once; while all are busy the queue
//! fills, and past it jobs are dropped, never waited for).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use sessions::{Revoked, SessionRecord};
use signer::jwt::{new_jti, TokenLifetime};
use signer::logout_token::{logout_token, LogoutClaims};
use tokio::sync::{mpsc, Semaphore};

use super::post::Poster;
use super::{Ended, LogoutOutcome, LogoutSettings};
use crate::api::audit::AuditEvent;
use crate::api::seams::{AuditSink, Clock};
use crate::api::signing::SlowSigning;
use crate::api::{Appliance, TenantLive};

/// One logout token on its way to one app.
struct Delivery {
    live: Arc<TenantLive>,
    app: String,
    uri: String,
    token: String,
    jti: String,
    /// Whose session: the user's stable id (for the audit record).
    subject: String,
}

/// Starts the delivery worker of `appliance` on `runtime` (the control
/// runtime: never a QUIC worker's); from then on ended sessions are queued.
/// Calling it again does nothing.
pub fn start(
    appliance: &Arc<Appliance>,
    runtime: &tokio::runtime::Handle,
    settings: LogoutSettings,
) {
    let (queue, jobs) = mpsc::channel(settings.queue.max(1));
    if appliance.hot.logout.queue.set(queue).is_err() {
        return;
    }
    let poster = Arc::new(Poster::new(&settings));
    let weak = Arc::downgrade(appliance);
    runtime.spawn(run(weak, jobs, settings, poster));
}

async fn run(
    appliance: Weak<Appliance>,
    mut jobs: mpsc::Receiver<Ended>,
    settings: LogoutSettings,
    poster: Arc<Poster>,
) {
    let permits = Arc::new(Semaphore::new(settings.max_concurrent.max(1)));
    let Ok(lifetime) = TokenLifetime::from_secs(settings.token_lifetime_s.clamp(1, 3600)) else {
        tracing::error!("logout.token_lifetime_s is out of bounds: no back-channel logout");
        return;
    };
    while let Some(job) = jobs.recv().await {
        let Some(appliance) = appliance.upgrade() else {
            return;
        };
        let metrics = &appliance.hot.logout.metrics;
        metrics.waiting.fetch_sub(1, Ordering::Relaxed);
        // Let a token issued elsewhere just before the revoke arrive.
        let due = job.at_ms.saturating_add(settings.settle_ms);
        let now = appliance.hot.clock.now_ms();
        if due > now {
            tokio::time::sleep(Duration::from_millis(due - now)).await;
        }
        for delivery in deliveries(&appliance, &job, lifetime).await {
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                return;
            };
            let (appliance, poster) = (Arc::clone(&appliance), Arc::clone(&poster));
            tokio::spawn(async move {
                deliver(&appliance, &poster, delivery).await;
                drop(permit);
            });
        }
    }
}

/// The logout tokens `job` calls for, made and signed.
async fn deliveries(appliance: &Appliance, job: &Ended, lifetime: TokenLifetime) -> Vec<Delivery> {
    let Ok(live) = appliance.tenant(&job.tenant).await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for record in ended_sessions(appliance, job) {
        let hot = &appliance.hot;
        // The session names the user by login; tokens name them by id.
        let subject = match hot.user(&live, &record.user).await {
            Ok(user) => user.id.clone(),
            Err(_) => continue,
        };
        for name in &record.apps {
            let Ok(app) = hot.app(&live, name).await else {
                continue; // removed since: nobody to tell
            };
            let Some(uri) = app.backchannel_logout_uri.clone() else {
                continue;
            };
            let claims = LogoutClaims {
                issuer: live.issuer.clone(),
                audience: app.name.clone(),
                subject: Some(subject.clone()),
                session_id: Some(signer::public_session_id(&record.id.to_string())),
            };
            match sign(appliance, &live, app.algorithm, &claims, lifetime).await {
                Some((token, jti)) => out.push(Delivery {
                    live: Arc::clone(&live),
                    app: app.name.clone(),
                    uri,
                    token,
                    jti,
                    subject: subject.clone(),
                }),
                None => {
                    hot.logout.metrics.unsigned.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    out
}

/// The sessions `job` ended that an app may know of: for one session, its
/// record; for a mark, the tenant's (or user's) sessions created before
/// it that were live when it came (a session revoked alone earlier was
/// told of then).
fn ended_sessions(appliance: &Appliance, job: &Ended) -> Vec<SessionRecord> {
    let table = appliance.hot.replica.table();
    let mut records: Vec<SessionRecord> = match &job.what {
        Revoked::Session { id, .. } => table.record(id).into_iter().collect(),
        Revoked::Mark(mark) => table
            .sessions_of(&mark.tenant, mark.user.as_deref(), mark.before_ms)
            .into_iter()
            .filter(|r| {
                !r.revoked
                    && r.expires_ms > job.at_ms
                    && r.last_seen_ms.saturating_add(r.idle_ms) > mark.before_ms
            })
            .collect(),
    };
    records.retain(|r| *r.tenant == *job.tenant && !r.user.is_empty() && !r.apps.is_empty());
    records
}

/// A signed logout token for `claims` and its `jti`, with the tenant's
/// active key for `algorithm` (slow keys on the signer pool).
async fn sign(
    appliance: &Appliance,
    live: &TenantLive,
    algorithm: signer::Algorithm,
    claims: &LogoutClaims,
    lifetime: TokenLifetime,
) -> Option<(String, String)> {
    let hot = &appliance.hot;
    let keys = live.keys.load();
    let key = Arc::clone(keys.view.active(algorithm).ok()?.key());
    let jti = new_jti(&hot.rng).ok()?;
    let unsigned = logout_token(key.as_ref(), claims, hot.clock.now(), lifetime, &jti)
        .map_err(|e| tracing::error!(error = %e, "logout token"))
        .ok()?;
    let signature = if SlowSigning::is_slow(key.as_ref()) {
        hot.signing
            .sign(&key, unsigned.signing_input())
            .await
            .map_err(|e| tracing::warn!(error = %e.message, "signing a logout token"))
            .ok()?
    } else {
        key.sign(unsigned.signing_input())
            .map_err(|e| tracing::error!(error = %e, "signing a logout token"))
            .ok()?
    };
    Some((unsigned.finish(&signature), jti))
}

/// Posts `delivery`, then audits and counts how it went.
async fn deliver(appliance: &Appliance, poster: &Poster, delivery: Delivery) {
    let hot = &appliance.hot;
    let metrics = &hot.logout.metrics;
    let report = poster
        .deliver(&delivery.uri, &delivery.token, &metrics.attempts)
        .await;
    let counter = match report.outcome {
        LogoutOutcome::Delivered => &metrics.delivered,
        _ => &metrics.failed,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if report.outcome != LogoutOutcome::Delivered {
        tracing::warn!(
            tenant = %delivery.live.slug,
            app = %delivery.app,
            reason = %report.reason,
            "back-channel logout failed"
        );
    }
    let event = AuditEvent::Logout {
        outcome: report.outcome,
        app: delivery.app,
        subject: delivery.subject,
        jti: delivery.jti,
        attempts: report.attempts,
        reason: report.reason,
    };
    let tenant_id = delivery.live.tenant.id;
    if let Err(e) = hot.audit.record(tenant_id, event, hot.clock.now_ms()).await {
        tracing::error!(error = %e, "auditing a back-channel logout");
    }
}
