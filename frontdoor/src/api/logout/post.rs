//! Posting one logout token (OpenID Connect Back-Channel Logout 1.0,
//! section 2.5): `POST` with `Content-Type:
//! application/x-www-form-urlencoded` and the body `logout_token=…`, over
//! HTTP/1.1 by hyper's client connection, TLS (rustls, AWS-LC) for
//! `https`. One connection per attempt: logout tokens are rare, and a
//! pooled connection to a receiver that died would cost a failed attempt.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{LogoutOutcome, LogoutSettings};

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Report {
    pub outcome: LogoutOutcome,
    /// Attempts made.
    pub attempts: u32,
    /// The last answer or error, in words (empty when delivered at once).
    pub reason: String,
}

/// Why one attempt did not deliver.
enum Attempt {
    /// Worth trying again: no connection, a timeout, a 5xx.
    Retry(String),
    /// The receiver refused the token (4xx): trying again changes nothing.
    Refused(String),
}

/// Posts logout tokens with the node's settings.
pub(super) struct Poster {
    attempts: u32,
    timeout: Duration,
    backoff: Duration,
    /// For `https` URIs; `Err` says why there is none.
    tls: Result<TlsConnector, String>,
}

impl Poster {
    pub(super) fn new(settings: &LogoutSettings) -> Poster {
        Poster {
            attempts: settings.attempts.max(1),
            timeout: Duration::from_millis(settings.timeout_ms.max(1)),
            backoff: Duration::from_millis(settings.backoff_ms),
            tls: tls_connector(&settings.ca_file),
        }
    }

    /// Posts `token` to `uri` until a 2xx, a 4xx, or the attempts run out,
    /// counting each attempt in `attempts`.
    pub(super) async fn deliver(&self, uri: &str, token: &str, attempts: &AtomicU64) -> Report {
        let body = Bytes::from(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("logout_token", token)
                .finish(),
        );
        let mut wait = self.backoff;
        let mut reason = String::new();
        for attempt in 1..=self.attempts {
            if attempt > 1 {
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
            }
            attempts.fetch_add(1, Ordering::Relaxed);
            let once = tokio::time::timeout(self.timeout, self.post(uri, body.clone())).await;
            match once {
                Ok(Ok(())) => {
                    return Report {
                        outcome: LogoutOutcome::Delivered,
                        attempts: attempt,
                        reason,
                    }
                }
                Ok(Err(Attempt::Refused(why))) => {
                    return Report {
                        outcome: LogoutOutcome::Failed,
                        attempts: attempt,
                        reason: why,
                    }
                }
                Ok(Err(Attempt::Retry(why))) => reason = why,
                Err(_) => {
                    reason = format!("no answer within {} ms", self.timeout.as_millis());
                }
            }
        }
        Report {
            outcome: LogoutOutcome::Failed,
            attempts: self.attempts,
            reason,
        }
    }

    /// One attempt.
    async fn post(&self, uri: &str, body: Bytes) -> Result<(), Attempt> {
        let retry = |what: &str, e: &dyn std::fmt::Display| Attempt::Retry(format!("{what}: {e}"));
        let parsed: Uri = uri
            .parse()
            .map_err(|e| Attempt::Refused(format!("bad uri: {e}")))?;
        let https = parsed.scheme_str() == Some("https");
        let authority = parsed
            .authority()
            .ok_or_else(|| Attempt::Refused("uri has no host".into()))?
            .clone();
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = parsed
            .path_and_query()
            .map_or("/", hyper::http::uri::PathAndQuery::as_str);
        let request = Request::post(path)
            .header(HOST, authority.as_str())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(CACHE_CONTROL, "no-store")
            .body(Full::new(body))
            .map_err(|e| Attempt::Refused(format!("request: {e}")))?;
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| retry("connect", &e))?;
        let _ = tcp.set_nodelay(true);
        let status = if https {
            let connector = self.tls.as_ref().map_err(|e| Attempt::Retry(e.clone()))?;
            let name = ServerName::try_from(host.to_owned())
                .map_err(|e| Attempt::Refused(format!("server name: {e}")))?;
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(|e| retry("tls", &e))?;
            exchange(TokioIo::new(stream), request).await?
        } else {
            exchange(TokioIo::new(tcp), request).await?
        };
        if status.is_success() {
            Ok(())
        } else if status.is_client_error() {
            Err(Attempt::Refused(format!("answered {status}")))
        } else {
            Err(Attempt::Retry(format!("answered {status}")))
        }
    }
}

/// Sends `request` on a fresh HTTP/1.1 connection over `io`; its status.
async fn exchange<I>(io: I, request: Request<Full<Bytes>>) -> Result<StatusCode, Attempt>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| Attempt::Retry(format!("http: {e}")))?;
    let connection = tokio::spawn(connection);
    let answer = sender.send_request(request).await;
    connection.abort();
    answer
        .map(|response| response.status())
        .map_err(|e| Attempt::Retry(format!("http: {e}")))
}

/// A TLS client trusting the CA certificates in `ca_file`.
fn tls_connector(ca_file: &std::path::Path) -> Result<TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| format!("https: CA file {}: {e}", ca_file.display()))?;
    for certificate in certificates.flatten() {
        let _ = roots.add(certificate);
    }
    if roots.is_empty() {
        return Err(format!("https: no CA certificate in {}", ca_file.display()));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("https: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}
