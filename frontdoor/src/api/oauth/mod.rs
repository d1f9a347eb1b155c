//! The OAuth endpoints' work (issue 19): token introspection (RFC 7662)
//! and revocation (RFC 7009) for the tenant's apps, each authenticated by a
//! `private_key_jwt` client assertion (RFC 7523, [`client_auth`]) against
//! the JWKS it registered ([`jws`]); tokens are read and revoked per
//! [`tokens`]. The HTTP listener parses the request
//! ([`crate::http::oauth`]) and awaits [`Appliance::oauth`], which runs on
//! the control runtime.

mod client_auth;
pub mod jws;
mod tokens;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;
use sigil_proto::ErrorCode;

pub use self::jws::{ClientJwks, JwksError, ASSERTION_ALGORITHMS};
use super::seams::Clock;
use super::Appliance;
use crate::http::exchange::Response;
use crate::http::oauth::{oauth_error, oauth_json, OauthEndpoint, OauthRequest};
use crate::metrics::LatencyHistogram;

/// `client_assertion_type` of `private_key_jwt` (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A refusal as RFC 6749 §5.2 words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OauthError {
    /// HTTP status.
    pub status: u16,
    /// `error`.
    pub error: &'static str,
    /// `error_description`.
    pub description: String,
}

impl OauthError {
    fn new(status: u16, error: &'static str, description: impl Into<String>) -> OauthError {
        OauthError {
            status,
            error,
            description: description.into(),
        }
    }

    /// `400 invalid_request`.
    fn request(description: impl Into<String>) -> OauthError {
        OauthError::new(400, "invalid_request", description)
    }

    /// `401 invalid_client`.
    fn client(description: impl Into<String>) -> OauthError {
        OauthError::new(401, "invalid_client", description)
    }

    /// `503 temporarily_unavailable`.
    fn unavailable(description: impl Into<String>) -> OauthError {
        OauthError::new(503, "temporarily_unavailable", description)
    }
}

/// The form's parameters by name.
struct Form(HashMap<String, String>);

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Requests answered and their latency, per endpoint, for `/metrics`.
#[derive(Debug, Default)]
pub struct OauthMetrics {
    latency: [LatencyHistogram; 2],
    outcomes: Mutex<HashMap<(&'static str, &'static str), u64>>,
}

impl OauthMetrics {
    fn record(&self, endpoint: OauthEndpoint, outcome: &'static str, started: Instant) {
        self.latency[usize::from(endpoint == OauthEndpoint::Revoke)].record(started.elapsed());
        if let Ok(mut outcomes) = self.outcomes.lock() {
            *outcomes.entry((endpoint.name(), outcome)).or_default() += 1;
        }
    }

    /// Appends `sigil_oauth_requests_total{endpoint,outcome}` and
    /// `sigil_oauth_request_seconds{endpoint}` (nothing before the first
    /// request).
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let mut outcomes: Vec<_> = self
            .outcomes
            .lock()
            .map(|o| o.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default();
        if outcomes.is_empty() {
            return;
        }
        outcomes.sort_unstable();
        let _ = writeln!(out, "# TYPE sigil_oauth_requests_total counter");
        for ((endpoint, outcome), n) in outcomes {
            let _ = writeln!(
                out,
                "sigil_oauth_requests_total{{endpoint=\"{endpoint}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        for (histogram, endpoint) in self.latency.iter().zip(["introspect", "revoke"]) {
            if histogram.count() > 0 {
                histogram.render(
                    out,
                    "sigil_oauth_request_seconds",
                    &format!("endpoint=\"{endpoint}\""),
                );
            }
        }
    }
}

impl Appliance {
    /// The OAuth endpoints' counters.
    pub fn oauth_metrics(&self) -> &OauthMetrics {
        &self.oauth_metrics
    }

    /// Answers one request to `POST /t/{tenant}/oauth2/introspect` or
    /// `/revoke`. Runs on the control runtime (directory, quorum revoke).
    pub async fn oauth(&self, request: OauthRequest) -> Response {
        let started = Instant::now();
        let endpoint = request.endpoint;
        let (response, outcome) = match self.oauth_answer(request).await {
            Ok((body, outcome)) => (oauth_json(&body), outcome),
            Err(e) => {
                let mut response = oauth_error(e.status, e.error, &e.description);
                if e.status == 429 {
                    response.close = false;
                }
                (response, e.error)
            }
        };
        self.oauth_metrics.record(endpoint, outcome, started);
        response
    }

    async fn oauth_answer(
        &self,
        request: OauthRequest,
    ) -> Result<(Value, &'static str), OauthError> {
        let live = self.tenant(&request.tenant).await.map_err(|e| {
            if e.code == ErrorCode::NotFound {
                OauthError::new(404, "invalid_request", "no such tenant")
            } else {
                OauthError::unavailable("the tenant cannot be loaded now; retry")
            }
        })?;
        let budget = match request.endpoint {
            OauthEndpoint::Introspect => &live.introspect_budget,
            OauthEndpoint::Revoke => &live.revoke_budget,
        };
        if !budget.try_acquire(Instant::now()) {
            return Err(OauthError::new(
                429,
                "temporarily_unavailable",
                format!(
                    "over this tenant's {} budget; retry later",
                    request.endpoint.name()
                ),
            ));
        }
        let form = Form(request.form.into_iter().collect());
        let now_ms = self.hot.clock.now_ms();
        let endpoint_url = format!("{}/oauth2/{}", live.issuer, request.endpoint.name());
        let app = self
            .authenticate_client(&live, &form, &endpoint_url, now_ms)
            .await?;
        let token = form
            .get("token")
            .ok_or_else(|| OauthError::request("`token` is required"))?;
        // `token_type_hint` only speeds a search up (RFC 7009 §2.1, RFC 7662
        // §2.1); each endpoint here tells the kinds apart by their form, so
        // it is read by neither.
        match request.endpoint {
            OauthEndpoint::Introspect => self.introspect(&live, &app, token, now_ms),
            OauthEndpoint::Revoke => self.revoke(&live, &app, token, now_ms).await,
        }
    }
}
