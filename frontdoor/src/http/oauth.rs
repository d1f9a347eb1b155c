//! The OAuth endpoints on the HTTP listener (issue 19):
//! `POST /t/{tenant}/oauth2/introspect` (RFC 7662) and
//! `POST /t/{tenant}/oauth2/revoke` (RFC 7009). Routing, the form body and
//! the error JSON (RFC 6749 §5.2) here, as plain functions; the work
//! (client authentication, token checks, the replicated deny list) is the
//! appliance's (`api/oauth`), run off the HTTP worker by [`Site::oauth`],
//! whose answer the worker awaits like a tenant load.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use super::exchange::{Method, Reply, RequestHead, Response, Site};
use super::lookup::{not_found, valid_tenant};

/// Which endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OauthEndpoint {
    /// `oauth2/introspect`.
    Introspect,
    /// `oauth2/revoke`.
    Revoke,
}

impl OauthEndpoint {
    /// Its last path segment (and metrics label).
    pub fn name(self) -> &'static str {
        match self {
            OauthEndpoint::Introspect => "introspect",
            OauthEndpoint::Revoke => "revoke",
        }
    }
}

/// One request to an OAuth endpoint, its form decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OauthRequest {
    /// The tenant slug from the path (syntactically valid).
    pub tenant: String,
    /// Which endpoint.
    pub endpoint: OauthEndpoint,
    /// The form's parameters, in order; none appears twice.
    pub form: Vec<(String, String)>,
}

/// The answer of an OAuth endpoint, computed off the worker.
pub type OauthWait = Pin<Box<dyn Future<Output = Response>>>;

/// See [`Site::oauth`]. Called on an HTTP worker: it must not block (it
/// hands the work to another runtime and returns what to await).
pub type OauthHandler = Arc<dyn Fn(OauthRequest) -> OauthWait + Send + Sync>;

/// An OAuth error answer (RFC 6749 §5.2): `{"error", "error_description"}`.
pub fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    let body = serde_json::json!({"error": error, "error_description": description});
    Response {
        status,
        content_type: "application/json",
        body: Bytes::from(body.to_string()),
        etag: None,
        cache_control: Some("no-store".into()),
        close: false,
    }
}

/// A `200` JSON answer.
pub fn oauth_json(body: &serde_json::Value) -> Response {
    Response {
        status: 200,
        content_type: "application/json",
        body: Bytes::from(body.to_string()),
        etag: None,
        cache_control: Some("no-store".into()),
        close: false,
    }
}

/// `413` for a body over `max` bytes (the body is not read: the connection
/// closes).
pub(super) fn too_large(max: usize) -> Response {
    let mut r = oauth_error(
        413,
        "invalid_request",
        &format!("request body over {max} bytes"),
    );
    r.close = true;
    r
}

/// The endpoint `path` names, with its tenant.
pub(super) fn endpoint_of(path: &str) -> Option<(&str, OauthEndpoint)> {
    let (tenant, rest) = path.strip_prefix("/t/")?.split_once('/')?;
    let endpoint = match rest {
        "oauth2/introspect" => OauthEndpoint::Introspect,
        "oauth2/revoke" => OauthEndpoint::Revoke,
        _ => return None,
    };
    Some((tenant, endpoint))
}

/// The form of `body`: `application/x-www-form-urlencoded`, UTF-8, no
/// parameter twice (RFC 6749 §3.2).
fn form_of(content_type: Option<&str>, body: &[u8]) -> Result<Vec<(String, String)>, Response> {
    let media = content_type
        .and_then(|t| t.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(oauth_error(
            400,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    if std::str::from_utf8(body).is_err() {
        return Err(oauth_error(400, "invalid_request", "the form is not UTF-8"));
    }
    let mut form: Vec<(String, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(body) {
        if form.iter().any(|(seen, _)| *seen == name) {
            return Err(oauth_error(
                400,
                "invalid_request",
                &format!("parameter `{name}` appears more than once"),
            ));
        }
        form.push((name.into_owned(), value.into_owned()));
    }
    Ok(form)
}

/// The reply to an OAuth endpoint's request, or `None` when `head` is for
/// another path.
pub(super) fn oauth_route(site: &Site, head: &RequestHead) -> Option<Reply> {
    let (tenant, endpoint) = endpoint_of(&head.path)?;
    let Some(handler) = site.oauth.as_ref().filter(|_| valid_tenant(tenant)) else {
        return Some(Reply::Now(not_found()));
    };
    if head.method != Method::Post {
        return Some(Reply::Now(oauth_error(
            405,
            "invalid_request",
            "use POST with an application/x-www-form-urlencoded body",
        )));
    }
    let form = match form_of(head.content_type.as_deref(), &head.body) {
        Ok(form) => form,
        Err(response) => return Some(Reply::Now(response)),
    };
    Some(Reply::Oauth {
        wait: handler(OauthRequest {
            tenant: tenant.to_owned(),
            endpoint,
            form,
        }),
        keep_alive: head.keep_alive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::exchange::{parse, HttpLimits, Parse};

    fn head(raw: &str) -> Result<RequestHead, Response> {
        match parse(raw.as_bytes(), &HttpLimits::default()) {
            Parse::Complete { mut head, consumed } => {
                head.body = Bytes::copy_from_slice(&raw.as_bytes()[consumed..]);
                Ok(head)
            }
            Parse::Invalid(response) => Err(response),
            Parse::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn posts_need_a_bounded_length_and_a_form() {
        let huge = format!(
            "POST /t/a/oauth2/introspect HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            16 * 1024 + 1
        );
        assert_eq!(head(&huge).map(|_| ()).expect_err("too large").status, 413);
        let none = "POST /t/a/oauth2/introspect HTTP/1.1\r\n\r\n";
        assert_eq!(head(none).map(|_| ()).expect_err("no length").status, 411);
        let ok = "POST /t/a/oauth2/introspect HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded; charset=UTF-8\r\nContent-Length: 13\r\n\r\ntoken=a%20b&x";
        let h = head(ok).expect("parses");
        assert_eq!(
            form_of(h.content_type.as_deref(), &h.body).expect("form"),
            vec![("token".into(), "a b".into()), ("x".into(), String::new())]
        );
        for (content_type, body) in [
            (Some("application/json"), &b"{}"[..]),
            (None, &b"token=a"[..]),
            (
                Some("application/x-www-form-urlencoded"),
                &b"token=a&token=b"[..],
            ),
            (
                Some("application/x-www-form-urlencoded"),
                &b"token=\xff"[..],
            ),
        ] {
            let r = form_of(content_type, body).expect_err("refused");
            assert_eq!(r.status, 400);
            assert!(std::str::from_utf8(&r.body)
                .expect("utf-8")
                .contains("\"error\":\"invalid_request\""));
        }
        assert_eq!(
            endpoint_of("/t/acme/oauth2/revoke"),
            Some(("acme", OauthEndpoint::Revoke))
        );
        assert_eq!(endpoint_of("/t/acme/oauth2/token"), None);
    }

    #[test]
    fn refusals_at_once_honour_connection_close_and_forms_go_to_the_handler() {
        use crate::http::exchange::{respond, Reply};
        let site = Site {
            documents: Arc::new(crate::http::documents::DocumentStore::new()),
            metrics: Arc::new(String::new),
            ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            on_miss: None,
            oauth: Some(Arc::new(|request: OauthRequest| {
                Box::pin(async move { oauth_json(&serde_json::json!({"seen": request.form})) })
            })),
        };
        let now = signer::Timestamp::from_secs(1);
        let limits = HttpLimits::default();
        let refused = head("POST /t/a/oauth2/revoke HTTP/1.1\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx")
            .expect("parses");
        match respond(&site, &refused, &limits, now, 0.0) {
            Reply::Now(r) => assert!(r.status == 400 && r.close, "{r:?}"),
            other => panic!("{other:?}"),
        }
        let get = head("GET /t/a/oauth2/introspect HTTP/1.1\r\n\r\n").expect("parses");
        match respond(&site, &get, &limits, now, 0.0) {
            Reply::Now(r) => {
                assert_eq!(r.status, 405);
                assert!(String::from_utf8(r.head_bytes())
                    .expect("ascii")
                    .contains("Allow: POST\r\n"));
            }
            other => panic!("{other:?}"),
        }
        let ok = head("POST /t/a/oauth2/introspect HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\ntoken=t")
            .expect("parses");
        assert!(matches!(
            respond(&site, &ok, &limits, now, 0.0),
            Reply::Oauth {
                keep_alive: true,
                ..
            }
        ));
        let bad_tenant =
            head("POST /t/A_B/oauth2/introspect HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
                .expect("parses");
        assert!(
            matches!(respond(&site, &bad_tenant, &limits, now, 0.0), Reply::Now(r) if r.status == 404)
        );
    }
}
