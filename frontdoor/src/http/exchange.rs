//! One HTTP/1.1 request and its answer, as plain functions: parsing under
//! strict limits (httparse), routing, conditional GET. No I/O; the server
//! loop in [`super::server`] moves the bytes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use signer::Timestamp;

use super::documents::DocumentStore;
use super::lookup::{tenant_document, Lookup};
pub use super::lookup::{AfterLoad, Loaded, Miss, TenantWait};
use super::oauth::{oauth_route, OauthHandler, OauthWait};

/// Limits of the HTTP listener that keep one client from hurting a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest request head (request line + headers). Default 8 KiB; larger:
    /// `431`.
    pub max_head_bytes: usize,
    /// Most headers in one request. Default 64; more: `431`.
    pub max_headers: usize,
    /// Time a client has to send a whole request head once it started.
    /// Default 10 s; then the connection is closed.
    pub head_timeout: Duration,
    /// Time a kept-alive connection may sit idle. Default 60 s.
    pub idle_timeout: Duration,
    /// Time to write one answer. Default 10 s.
    pub write_timeout: Duration,
    /// Requests served on one connection before it is closed. Default 1000.
    pub max_requests_per_connection: u32,
    /// Upper bound of `Cache-Control: max-age` for key documents. Default
    /// 3600 s.
    pub cache_cap_secs: u64,
    /// How long a document request waits for its tenant to load before it
    /// is answered `503` with `Retry-After: 1`. Default 2 s.
    pub tenant_load_wait: Duration,
    /// Largest request body (the OAuth endpoints' forms). Default 16 KiB;
    /// larger: `413`.
    pub max_body_bytes: usize,
    /// How long an OAuth endpoint's answer may take (tenant load, directory,
    /// quorum revoke) before `503`. Default 5 s.
    pub oauth_wait: Duration,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            max_head_bytes: 8 * 1024,
            max_headers: 64,
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            max_requests_per_connection: 1000,
            cache_cap_secs: 3600,
            tenant_load_wait: Duration::from_secs(2),
            max_body_bytes: 16 * 1024,
            oauth_wait: Duration::from_secs(5),
        }
    }
}

/// What the HTTP endpoints read. Shared by every worker.
pub struct Site {
    /// Per-tenant JWKS, discovery and metadata.
    pub documents: Arc<DocumentStore>,
    /// Renders `/metrics` (Prometheus text format) when asked.
    pub metrics: Arc<dyn Fn() -> String + Send + Sync>,
    /// Whether `/readyz` says ready (e.g. sessions caught up, keys loaded).
    pub ready: Arc<AtomicBool>,
    /// Asked when a tenant has no documents in memory (tenants load
    /// lazily): starts or joins its load. None: such a tenant is simply
    /// unknown (404).
    pub on_miss: Option<OnMiss>,
    /// Answers `POST /t/{tenant}/oauth2/introspect` and `/revoke` (issue
    /// 19). None: those paths are unknown (404).
    pub oauth: Option<OauthHandler>,
}

/// See [`Site::on_miss`]. Called on an HTTP worker: it must not block.
pub type OnMiss = Arc<dyn Fn(&str) -> Miss + Send + Sync>;

/// The answer to a request, now or once a tenant has loaded.
pub enum Reply {
    /// Ready to be written.
    Now(Response),
    /// Await `wait` (bounded), then [`AfterLoad::answer`].
    AfterLoad {
        /// The tenant's load.
        wait: TenantWait,
        /// What to answer with its outcome.
        then: AfterLoad,
    },
    /// An OAuth endpoint's answer, computed off the worker: await it
    /// (bounded by [`HttpLimits::oauth_wait`]).
    Oauth {
        /// The answer.
        wait: OauthWait,
        /// Whether the client wants the connection kept open.
        keep_alive: bool,
    },
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Now(response) => f.debug_tuple("Now").field(response).finish(),
            Reply::AfterLoad { then, .. } => f.debug_tuple("AfterLoad").field(then).finish(),
            Reply::Oauth { .. } => f.write_str("Oauth"),
        }
    }
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("documents", &self.documents)
            .finish_non_exhaustive()
    }
}

/// The methods the endpoints know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: as GET, without the body.
    Head,
    /// `POST`: only the OAuth endpoints take it, with a form body.
    Post,
    /// Anything else: answered `405`.
    Other,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method.
    pub method: Method,
    /// The path, without the query string.
    pub path: String,
    /// `If-None-Match`, verbatim.
    pub if_none_match: Option<String>,
    /// Whether the client wants the connection kept open.
    pub keep_alive: bool,
    /// `Content-Length` (POST only; required there).
    pub content_length: usize,
    /// `Content-Type`, verbatim (POST).
    pub content_type: Option<String>,
    /// The body, once the server has read `content_length` bytes of it.
    pub body: Bytes,
}

/// The result of parsing what has arrived so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// More bytes are needed (and the limit is not reached).
    Incomplete,
    /// A whole head; `consumed` bytes belong to it.
    Complete {
        /// The request.
        head: RequestHead,
        /// Bytes of the buffer it used.
        consumed: usize,
    },
    /// The request cannot be served; answer this and close.
    Invalid(Response),
}

/// Parses a request head from `buffer`.
pub fn parse(buffer: &[u8], limits: &HttpLimits) -> Parse {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buffer) {
        Ok(httparse::Status::Partial) => {
            if buffer.len() >= limits.max_head_bytes {
                Parse::Invalid(Response::error(431, "request header fields too large"))
            } else {
                Parse::Incomplete
            }
        }
        Err(httparse::Error::TooManyHeaders) => {
            Parse::Invalid(Response::error(431, "too many header fields"))
        }
        Err(_) => Parse::Invalid(Response::error(400, "malformed request")),
        Ok(httparse::Status::Complete(consumed)) => {
            if consumed > limits.max_head_bytes {
                return Parse::Invalid(Response::error(431, "request header fields too large"));
            }
            let method = match request.method {
                Some("GET") => Method::Get,
                Some("HEAD") => Method::Head,
                Some("POST") => Method::Post,
                _ => Method::Other,
            };
            let path = request.path.unwrap_or("/");
            let path = path.split_once('?').map_or(path, |(p, _)| p).to_owned();
            let http10 = request.version == Some(0);
            let mut keep_alive = !http10;
            let mut if_none_match = None;
            let mut content_type = None;
            let mut content_length: Option<usize> = None;
            for header in request.headers.iter() {
                let value = std::str::from_utf8(header.value).unwrap_or("");
                if header.name.eq_ignore_ascii_case("connection") {
                    if value.eq_ignore_ascii_case("close") {
                        keep_alive = false;
                    } else if value.eq_ignore_ascii_case("keep-alive") {
                        keep_alive = true;
                    }
                } else if header.name.eq_ignore_ascii_case("if-none-match") {
                    if_none_match = Some(value.to_owned());
                } else if header.name.eq_ignore_ascii_case("content-type") {
                    content_type = Some(value.to_owned());
                } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                    // Only POST takes a body, sized by one Content-Length and
                    // never chunked: that closes the door on request
                    // smuggling.
                    return Parse::Invalid(Response::error(400, "request bodies are not accepted"));
                } else if header.name.eq_ignore_ascii_case("content-length") {
                    let Ok(n) = value.trim().parse::<usize>() else {
                        return Parse::Invalid(Response::error(400, "bad Content-Length"));
                    };
                    if content_length.is_some_and(|m| m != n) {
                        return Parse::Invalid(Response::error(400, "bad Content-Length"));
                    }
                    if method != Method::Post && n != 0 {
                        return Parse::Invalid(Response::error(
                            400,
                            "request bodies are not accepted",
                        ));
                    }
                    content_length = Some(n);
                }
            }
            if method == Method::Post {
                // Only the OAuth endpoints take a body; anywhere else it is
                // refused before it is read.
                if super::oauth::endpoint_of(&path).is_none()
                    && content_length.is_some_and(|n| n > 0)
                {
                    return Parse::Invalid(Response::error(400, "request bodies are not accepted"));
                }
                match content_length {
                    None => return Parse::Invalid(Response::error(411, "Content-Length required")),
                    Some(n) if n > limits.max_body_bytes => {
                        return Parse::Invalid(super::oauth::too_large(limits.max_body_bytes))
                    }
                    Some(_) => {}
                }
            }
            Parse::Complete {
                head: RequestHead {
                    method,
                    path,
                    if_none_match,
                    keep_alive,
                    content_length: content_length.unwrap_or(0),
                    content_type,
                    body: Bytes::new(),
                },
                consumed,
            }
        }
    }
}

/// An answer, ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body (not sent for HEAD and 304).
    pub body: Bytes,
    /// `ETag`, if any.
    pub etag: Option<String>,
    /// `Cache-Control`, if any.
    pub cache_control: Option<String>,
    /// Close the connection after this answer.
    pub close: bool,
}

impl Response {
    fn ok(content_type: &'static str, body: Bytes) -> Response {
        Response {
            status: 200,
            content_type,
            body,
            etag: None,
            cache_control: Some("no-store".into()),
            close: false,
        }
    }

    /// A short plain-text error; the connection closes after it.
    pub fn error(status: u16, message: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: Bytes::from(format!("{message}\n")),
            etag: None,
            cache_control: Some("no-store".into()),
            close: true,
        }
    }

    fn reason(&self) -> &'static str {
        match self.status {
            200 => "OK",
            304 => "Not Modified",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            401 => "Unauthorized",
            411 => "Length Required",
            413 => "Content Too Large",
            415 => "Unsupported Media Type",
            429 => "Too Many Requests",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "Error",
        }
    }

    /// `503` with `Retry-After: 1`, keeping the connection.
    pub(super) fn unavailable(message: &str) -> Response {
        let mut r = Response::error(503, message);
        r.close = false;
        r
    }

    /// The status line and headers. For HEAD the length is still the GET
    /// length; 304 carries no length.
    pub fn head_bytes(&self) -> Vec<u8> {
        use std::fmt::Write;
        let mut head = String::with_capacity(256);
        let _ = write!(head, "HTTP/1.1 {} {}\r\n", self.status, self.reason());
        if self.status != 304 {
            let _ = write!(
                head,
                "Content-Type: {}\r\nContent-Length: {}\r\n",
                self.content_type,
                self.body.len()
            );
        }
        if let Some(etag) = &self.etag {
            let _ = write!(head, "ETag: {etag}\r\n");
        }
        if let Some(cache) = &self.cache_control {
            let _ = write!(head, "Cache-Control: {cache}\r\n");
        }
        if self.status == 405 {
            head.push_str(if self.content_type == "application/json" {
                "Allow: POST\r\n"
            } else {
                "Allow: GET, HEAD\r\n"
            });
        }
        if self.status == 503 || self.status == 429 {
            head.push_str("Retry-After: 1\r\n");
        }
        head.push_str("X-Content-Type-Options: nosniff\r\n");
        if self.close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        head.into_bytes()
    }

    /// Whether the body goes on the wire.
    pub fn sends_body(&self, method: Method) -> bool {
        method != Method::Head && self.status != 304
    }
}

fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate == etag || candidate.strip_prefix("W/") == Some(etag)
    })
}

/// Answers one request, or says which tenant load it waits for. `jitter`
/// in `0.0..1.0` spreads cache lifetimes.
pub fn respond(
    site: &Site,
    head: &RequestHead,
    limits: &HttpLimits,
    now: Timestamp,
    jitter: f64,
) -> Reply {
    if let Some(reply) = oauth_route(site, head) {
        return match reply {
            Reply::Now(response) => Reply::Now(finish(response, head.keep_alive, None)),
            waiting => waiting,
        };
    }
    if head.method == Method::Other || head.method == Method::Post {
        return Reply::Now(Response::error(405, "only GET and HEAD are served"));
    }
    let response = match head.path.as_str() {
        "/healthz" => Response::ok("text/plain; charset=utf-8", Bytes::from_static(b"ok\n")),
        "/readyz" => {
            if site.ready.load(Ordering::Acquire) {
                Response::ok("text/plain; charset=utf-8", Bytes::from_static(b"ready\n"))
            } else {
                let mut r = Response::error(503, "not ready");
                r.close = false;
                r
            }
        }
        "/metrics" => Response::ok(
            "text/plain; version=0.0.4; charset=utf-8",
            Bytes::from((site.metrics)()),
        ),
        path => match tenant_document(site, path, limits, now, jitter) {
            Lookup::Answer(response) => response,
            Lookup::Wait(wait, tenant, document) => {
                return Reply::AfterLoad {
                    wait,
                    then: AfterLoad {
                        tenant,
                        document,
                        if_none_match: head.if_none_match.clone(),
                        keep_alive: head.keep_alive,
                    },
                }
            }
        },
    };
    Reply::Now(finish(
        response,
        head.keep_alive,
        head.if_none_match.as_deref(),
    ))
}

/// Applies the connection's wishes and conditional GET to an answer.
pub(super) fn finish(
    mut response: Response,
    keep_alive: bool,
    if_none_match: Option<&str>,
) -> Response {
    if !keep_alive {
        response.close = true;
    }
    if let (Some(candidates), Some(etag)) = (if_none_match, &response.etag) {
        if response.status == 200 && etag_matches(candidates, etag) {
            response.status = 304;
            response.body = Bytes::new();
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::documents::{Document, TenantDocuments};

    fn site() -> Site {
        let documents = Arc::new(DocumentStore::new());
        documents.publish(
            "acme",
            TenantDocuments {
                jwks: Document::new(Bytes::from_static(br#"{"keys":[]}"#), "application/json"),
                discovery: Document::new(Bytes::from_static(b"{}"), "application/json"),
                saml_metadata: None,
                next_activation: None,
                prepublish_secs: 86_400,
            },
        );
        Site {
            documents,
            metrics: Arc::new(|| "sigil_up 1\n".to_owned()),
            ready: Arc::new(AtomicBool::new(false)),
            on_miss: None,
            oauth: None,
        }
    }

    /// An answer that needs no tenant load.
    fn answer(
        site: &Site,
        head: &RequestHead,
        limits: &HttpLimits,
        now: Timestamp,
        jitter: f64,
    ) -> Response {
        match respond(site, head, limits, now, jitter) {
            Reply::Now(response) => response,
            other => panic!("waits for a load: {other:?}"),
        }
    }

    fn get(raw: &str) -> RequestHead {
        match parse(raw.as_bytes(), &HttpLimits::default()) {
            Parse::Complete { head, .. } => head,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn serves_jwks_with_etag_and_conditional_get() {
        let site = site();
        let limits = HttpLimits::default();
        let now = Timestamp::from_secs(1);
        let r = answer(
            &site,
            &get("GET /t/acme/.well-known/jwks.json HTTP/1.1\r\nHost: x\r\n\r\n"),
            &limits,
            now,
            0.0,
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.cache_control.as_deref(), Some("public, max-age=3600"));
        let etag = r.etag.clone().expect("etag");
        let raw = format!(
            "GET /t/acme/.well-known/jwks.json HTTP/1.1\r\nIf-None-Match: \"x\", {etag}\r\n\r\n"
        );
        let r = answer(&site, &get(&raw), &limits, now, 0.0);
        assert_eq!(r.status, 304);
        assert!(r.body.is_empty());
    }

    #[test]
    fn unknown_tenants_and_paths_are_404() {
        assert_all_404(
            &site(),
            &[
                "/t/globex/.well-known/jwks.json",
                "/t/acme/.well-known/other",
                "/t/acme/saml/metadata",
                "/t/ACME/.well-known/jwks.json",
                "/t/../etc/passwd",
                "/",
                "/t/",
            ],
        );
    }

    fn assert_all_404(site: &Site, paths: &[&str]) {
        for path in paths {
            let r = answer(
                site,
                &get(&format!("GET {path} HTTP/1.1\r\n\r\n")),
                &HttpLimits::default(),
                Timestamp::from_secs(1),
                0.0,
            );
            assert_eq!(r.status, 404, "{path}");
        }
    }

    #[test]
    fn refuses_bodies_methods_garbage_and_huge_heads() {
        let limits = HttpLimits::default();
        for raw in [
            "GET /healthz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            "POST /healthz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            "POST /t/a/oauth2/revoke HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST /t/a/oauth2/revoke HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(
                matches!(parse(raw.as_bytes(), &limits), Parse::Invalid(r) if r.status == 400),
                "{raw}"
            );
        }
        assert!(
            matches!(parse(b"\x00\x01garbage\r\n\r\n", &limits), Parse::Invalid(r) if r.status == 400)
        );
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(9000));
        assert!(matches!(parse(huge.as_bytes(), &limits), Parse::Invalid(r) if r.status == 431));
        let many: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(parse(raw.as_bytes(), &limits), Parse::Invalid(r) if r.status == 431));
        assert_eq!(
            parse(b"GET /healthz HTTP/1.1\r\nHo", &limits),
            Parse::Incomplete
        );
        let r = answer(
            &site(),
            &get("DELETE /healthz HTTP/1.1\r\n\r\n"),
            &limits,
            Timestamp::from_secs(1),
            0.0,
        );
        assert_eq!(r.status, 405);
    }

    #[test]
    fn health_readiness_and_metrics() {
        let site = site();
        let limits = HttpLimits::default();
        let now = Timestamp::from_secs(1);
        assert_eq!(
            answer(
                &site,
                &get("GET /healthz HTTP/1.1\r\n\r\n"),
                &limits,
                now,
                0.0
            )
            .status,
            200
        );
        assert_eq!(
            answer(
                &site,
                &get("GET /readyz HTTP/1.1\r\n\r\n"),
                &limits,
                now,
                0.0
            )
            .status,
            503
        );
        site.ready.store(true, Ordering::Release);
        assert_eq!(
            answer(
                &site,
                &get("GET /readyz HTTP/1.1\r\n\r\n"),
                &limits,
                now,
                0.0
            )
            .status,
            200
        );
        let metrics = answer(
            &site,
            &get("GET /metrics HTTP/1.1\r\n\r\n"),
            &limits,
            now,
            0.0,
        );
        assert_eq!(&metrics.body[..], b"sigil_up 1\n");
    }

    #[test]
    fn http10_closes_unless_asked_and_close_is_honoured() {
        assert!(!get("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(get("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert!(!get("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
    }

    fn loading_site(miss: fn(&str) -> Miss) -> Site {
        Site {
            on_miss: Some(Arc::new(miss)),
            ..site()
        }
    }

    fn after_load(site: &Site, raw: &str) -> AfterLoad {
        match respond(
            site,
            &get(raw),
            &HttpLimits::default(),
            Timestamp::from_secs(1),
            0.0,
        ) {
            Reply::AfterLoad { then, .. } => then,
            other => panic!("answered without a load: {other:?}"),
        }
    }

    #[test]
    fn a_tenant_not_in_memory_waits_for_its_load_and_gets_the_document() {
        let site = loading_site(|_| Miss::Loading(Box::pin(async { Loaded::Unknown })));
        let limits = HttpLimits::default();
        let now = Timestamp::from_secs(1);
        // Loaded meanwhile: the answer is the document, conditional GET and
        // all, as if it had been there.
        let documents = site.documents.get("acme").expect("fixture");
        site.documents.remove("acme");
        let then = after_load(&site, "GET /t/acme/.well-known/jwks.json HTTP/1.1\r\n\r\n");
        let r = then.clone().answer(
            &site,
            Some(Loaded::Documents(Arc::clone(&documents))),
            &limits,
            now,
            0.0,
        );
        assert_eq!((r.status, &r.body[..]), (200, &br#"{"keys":[]}"#[..]));
        assert!(!r.close);
        let etag = r.etag.expect("etag");
        let raw = format!(
            "GET /t/acme/.well-known/openid-configuration HTTP/1.1\r\nIf-None-Match: {}\r\nConnection: close\r\n\r\n",
            documents.discovery.etag
        );
        let r = after_load(&site, &raw).answer(
            &site,
            Some(Loaded::Documents(Arc::clone(&documents))),
            &limits,
            now,
            0.0,
        );
        assert_eq!(r.status, 304);
        assert!(r.close, "the client asked to close");
        // No SAML keys: 404 once loaded, not before.
        let r = after_load(&site, "GET /t/acme/saml/metadata HTTP/1.1\r\n\r\n").answer(
            &site,
            Some(Loaded::Documents(documents)),
            &limits,
            now,
            0.0,
        );
        assert_eq!(r.status, 404);
        // The directory has no such tenant: 404; it cannot be read, or the
        // wait ran out: 503 with Retry-After, and the connection stays.
        for (loaded, status) in [
            (Some(Loaded::Unknown), 404),
            (Some(Loaded::Unavailable), 503),
            (None, 503),
        ] {
            let r = then.clone().answer(&site, loaded, &limits, now, 0.0);
            assert_eq!(r.status, status);
            assert!(!r.close);
            let head = String::from_utf8(r.head_bytes()).expect("ascii");
            assert_eq!(head.contains("Retry-After: 1\r\n"), status == 503, "{head}");
        }
        assert!(etag.starts_with('"'));
    }

    #[test]
    fn only_tenant_documents_with_valid_names_ask_for_a_load() {
        assert_all_404(
            &loading_site(|_| panic!("no load for this path")),
            &[
                "/t/ACME/.well-known/jwks.json",
                "/t/../etc/passwd",
                "/t/globex/secret",
                "/t/globex",
                "/t/a_b/saml/metadata",
            ],
        );
        let limits = HttpLimits::default();
        // What the loader says at once is answered at once.
        let unknown = loading_site(|_| Miss::Unknown);
        let full = loading_site(|_| Miss::Unavailable);
        let raw = get("GET /t/globex/.well-known/jwks.json HTTP/1.1\r\n\r\n");
        let now = Timestamp::from_secs(1);
        assert_eq!(answer(&unknown, &raw, &limits, now, 0.0).status, 404);
        let r = answer(&full, &raw, &limits, now, 0.0);
        assert_eq!(r.status, 503);
        assert!(String::from_utf8(r.head_bytes())
            .expect("ascii")
            .contains("Retry-After: 1\r\n"));
    }
}
