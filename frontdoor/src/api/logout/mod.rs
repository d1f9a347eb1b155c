//! OpenID Connect Back-Channel Logout 1.0 (issue 19): when a session ends
//! (`session_revoke`, `user_revoke_sessions`, `user_deactivate`, and
//! whatever else ends sessions through [`HotPath::end_sessions`]), every
//! app of the tenant with a registered `backchannel_logout_uri` that
//! received a token in that session is sent a signed logout token.
//!
//! - Which apps: the session record's grow-only set of apps
//!   (`sessions/src/table/apps.rs`), added to by every issuance the first
//!   time an app gets a token in a session, replicated between nodes with
//!   the session. The node that ended the session delivers; it reads the
//!   set [`LogoutSettings::settle_ms`] after the revoke returned, so that a
//!   token issued on another node just before it has reached this one.
//! - Where it runs: the session operation only puts a job on a bounded
//!   queue ([`Outbox`], never waiting); one task on the control runtime
//!   takes jobs, signs tokens (on the signer pool for slow keys) and hands
//!   each delivery to its own task, at most
//!   [`LogoutSettings::max_concurrent`] at once. Nothing of it runs on a
//!   QUIC worker, and no issuance or session answer waits for it. A full
//!   queue drops the job: counted, and audited as `logout.dropped`.
//! - Delivery ([`post`]): `POST` of `application/x-www-form-urlencoded`
//!   `logout_token=…` by hyper, each attempt within
//!   [`LogoutSettings::timeout_ms`], at most [`LogoutSettings::attempts`]
//!   attempts with doubling backoff; a 2xx answer is delivered, a 4xx is
//!   final (the app refused the token), anything else is tried again.
//!   Each outcome is audited in the tenant's chain (`logout.delivered`,
//!   `logout.failed`) and counted in `/metrics`.

mod post;
mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use sessions::Revoked;
use tokio::sync::mpsc;

use super::audit::AuditEvent;
use super::hot_path::HotPath;
use super::live::TenantLive;
use super::seams::{AuditSink, Clock, DirectoryReads};
use sigil_proto::WireError;

pub use worker::start;

/// Tuning of back-channel logout (`[logout]` in the node's configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogoutSettings {
    /// Ended sessions waiting for delivery; past it they are dropped
    /// (counted and audited). Default 1,024.
    pub queue: usize,
    /// Deliveries in flight at once. Default 32.
    pub max_concurrent: usize,
    /// Attempts per logout token, the first included. Default 4.
    pub attempts: u32,
    /// One attempt (connect, send, answer) must end within this. Default
    /// 5,000 ms.
    pub timeout_ms: u64,
    /// The wait before the second attempt, doubled before each next one.
    /// Default 1,000 ms.
    pub backoff_ms: u64,
    /// How long a logout token is valid (`exp` − `iat`). Default 120 s.
    pub token_lifetime_s: u64,
    /// How long after the revoke returned the set of apps is read (lets a
    /// token issued on another node just before arrive). Default 500 ms.
    pub settle_ms: u64,
    /// The CA certificates (PEM) that `https` logout URIs are checked
    /// against. Default `/etc/ssl/certs/ca-certificates.crt`.
    pub ca_file: std::path::PathBuf,
}

impl Default for LogoutSettings {
    fn default() -> LogoutSettings {
        LogoutSettings {
            queue: 1_024,
            max_concurrent: 32,
            attempts: 4,
            timeout_ms: 5_000,
            backoff_ms: 1_000,
            token_lifetime_s: 120,
            settle_ms: 500,
            ca_file: "/etc/ssl/certs/ca-certificates.crt".into(),
        }
    }
}

/// How logout deliveries went on this node, for `/metrics`.
#[derive(Debug, Default)]
pub struct LogoutMetrics {
    /// Jobs queued (ended sessions, or marks ending many).
    pub queued: AtomicU64,
    /// Jobs dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Logout tokens delivered (a 2xx answer).
    pub delivered: AtomicU64,
    /// Logout tokens given up on (attempts exhausted, or a 4xx answer).
    pub failed: AtomicU64,
    /// Logout tokens that could not be made (no active key, app gone).
    pub unsigned: AtomicU64,
    /// HTTP attempts made, first ones included.
    pub attempts: AtomicU64,
    /// Jobs on the queue now.
    pub waiting: AtomicU64,
}

impl LogoutMetrics {
    /// Appends the `sigil_logout_*` lines.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let _ = writeln!(out, "# TYPE sigil_logout_tokens_total counter");
        for (outcome, counter) in [
            ("delivered", &self.delivered),
            ("failed", &self.failed),
            ("unsigned", &self.unsigned),
        ] {
            let _ = writeln!(
                out,
                "sigil_logout_tokens_total{{outcome=\"{outcome}\"}} {}",
                load(counter)
            );
        }
        let _ = writeln!(
            out,
            "# TYPE sigil_logout_jobs_total counter\nsigil_logout_jobs_total{{outcome=\"queued\"}} {}\nsigil_logout_jobs_total{{outcome=\"dropped\"}} {}",
            load(&self.queued),
            load(&self.dropped)
        );
        let _ = writeln!(
            out,
            "# TYPE sigil_logout_attempts_total counter\nsigil_logout_attempts_total {}",
            load(&self.attempts)
        );
        let _ = writeln!(
            out,
            "# TYPE sigil_logout_queue_depth gauge\nsigil_logout_queue_depth {}",
            load(&self.waiting)
        );
    }
}

/// Sessions that ended: what the worker resolves into logout tokens.
#[derive(Debug)]
pub(super) struct Ended {
    /// The tenant's slug.
    tenant: Arc<str>,
    what: Revoked,
    /// When the revoke returned (wall-clock ms).
    at_ms: u64,
}

/// Where session operations leave ended sessions: a bounded queue to the
/// delivery worker, once it is started ([`start`]); before that (unit
/// tests of the hot path, one-shot commands) nothing is queued.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: OnceLock<mpsc::Sender<Ended>>,
    metrics: Arc<LogoutMetrics>,
}

impl Outbox {
    /// The counters shown in `/metrics`.
    pub fn metrics(&self) -> &LogoutMetrics {
        &self.metrics
    }

    /// Queues `what` of `live` without waiting. Returns `false` when the
    /// queue is full (the job is dropped and counted); `true` when queued
    /// or when no worker runs.
    fn send(&self, live: &TenantLive, what: Revoked, at_ms: u64) -> bool {
        let Some(queue) = self.queue.get() else {
            return true;
        };
        let job = Ended {
            tenant: Arc::clone(&live.slug),
            what,
            at_ms,
        };
        match queue.try_send(job) {
            Ok(()) => {
                self.metrics.queued.fetch_add(1, Ordering::Relaxed);
                self.metrics.waiting.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

impl<R: DirectoryReads, A: AuditSink, C: Clock> HotPath<R, A, C> {
    /// Ends sessions: revokes `what` strongly (returns once no node accepts
    /// them), then queues their back-channel logout without waiting for
    /// it. The one path by which sessions end.
    ///
    /// # Errors
    /// As [`HotPath::revoke_strongly`].
    pub(in crate::api) async fn end_sessions(
        &self,
        live: &TenantLive,
        what: Revoked,
    ) -> Result<(), WireError> {
        self.revoke_strongly(what.clone()).await?;
        let now = self.clock.now_ms();
        let subject = match &what {
            Revoked::Session { .. } => "session".to_owned(),
            Revoked::Mark(mark) => mark.user.as_deref().unwrap_or("tenant").to_owned(),
        };
        if !self.logout.send(live, what, now) {
            self.audit.record_later(
                live.tenant.id,
                AuditEvent::Logout {
                    outcome: LogoutOutcome::Dropped,
                    app: String::new(),
                    subject,
                    jti: String::new(),
                    attempts: 0,
                    reason: "the logout queue is full".into(),
                },
                now,
            );
        }
        Ok(())
    }
}

/// How one logout went, as audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutOutcome {
    /// The app answered 2xx.
    Delivered,
    /// Attempts exhausted, or the app refused the token (4xx).
    Failed,
    /// The ended sessions were not queued: the queue was full.
    Dropped,
}

impl LogoutOutcome {
    /// The audit record's kind.
    pub fn kind(self) -> &'static str {
        match self {
            LogoutOutcome::Delivered => "logout.delivered",
            LogoutOutcome::Failed => "logout.failed",
            LogoutOutcome::Dropped => "logout.dropped",
        }
    }
}

/// Checks a `backchannel_logout_uri`: an absolute `http` or `https` URL
/// with a host, no user information and no fragment (OpenID Connect
/// Back-Channel Logout 1.0, section 2.2).
///
/// # Errors
/// Why not, in words for a `bad_request`.
pub fn check_logout_uri(text: &str) -> Result<(), String> {
    let refuse = |why: &str| Err(format!("backchannel_logout_uri {why}"));
    if text.contains('#') {
        return refuse("must not have a fragment");
    }
    let Ok(uri) = text.parse::<hyper::Uri>() else {
        return refuse("is not a URL");
    };
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return refuse("must be an http or https URL"),
    }
    let Some(authority) = uri.authority() else {
        return refuse("has no host");
    };
    if authority.as_str().contains('@') {
        return refuse("must not carry user information");
    }
    if authority.host().is_empty() {
        return refuse("has no host");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_logout_uri;

    #[test]
    fn only_absolute_http_urls_are_logout_uris() {
        for good in [
            "https://rp.example/logout",
            "http://127.0.0.1:8080/bcl?x=1",
            "https://rp.example",
        ] {
            assert_eq!(check_logout_uri(good), Ok(()), "{good}");
        }
        for bad in [
            "ftp://rp.example/logout",
            "/logout",
            "rp.example/logout",
            "https://rp.example/logout#frag",
            "https://user:pw@rp.example/logout",
            "javascript:alert(1)",
            "https:///nohost",
            "",
        ] {
            assert!(check_logout_uri(bad).is_err(), "{bad}");
        }
    }
}
