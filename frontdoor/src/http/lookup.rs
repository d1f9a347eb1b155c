//! A tenant document request (`/t/{tenant}/…`): answered from the
//! [`DocumentStore`](super::documents::DocumentStore) when the tenant is in
//! memory, else after its load, which [`Site::on_miss`] starts or joins and
//! the HTTP worker awaits (bounded by [`HttpLimits::tenant_load_wait`]). Plain
//! functions and types; the waiting itself is the server loop's.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use signer::Timestamp;

use super::documents::{cache_max_age, Document, TenantDocuments};
use super::exchange::{finish, HttpLimits, Response, Site};

/// The end of a tenant's load, awaited on the HTTP worker that asked (any
/// executor: it only waits for a wake-up); the worker bounds the wait by
/// [`HttpLimits::tenant_load_wait`].
pub type TenantWait = Pin<Box<dyn Future<Output = Loaded>>>;

/// What [`Site::on_miss`] says of a tenant without documents.
pub enum Miss {
    /// The directory has no such tenant: `404`.
    Unknown,
    /// It cannot be loaded now (too many loads waiting): `503` with
    /// `Retry-After: 1`.
    Unavailable,
    /// Its load is running or queued: wait for it.
    Loading(TenantWait),
}

impl std::fmt::Debug for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Miss::Unknown => "Unknown",
            Miss::Unavailable => "Unavailable",
            Miss::Loading(_) => "Loading",
        })
    }
}

/// How a tenant's load ended.
#[derive(Debug, Clone)]
pub enum Loaded {
    /// Loaded: its documents.
    Documents(Arc<TenantDocuments>),
    /// The directory has no such tenant: `404`.
    Unknown,
    /// The directory could not be read (or the keys not loaded): `503`
    /// with `Retry-After: 1`.
    Unavailable,
}

/// A tenant document request waiting for its tenant's load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterLoad {
    pub(super) tenant: String,
    pub(super) document: DocumentKind,
    pub(super) if_none_match: Option<String>,
    pub(super) keep_alive: bool,
}

impl AfterLoad {
    /// The answer once the wait is over: `loaded` is `None` when the wait
    /// reached [`HttpLimits::tenant_load_wait`] (`503`, `Retry-After: 1`; the
    /// load goes on, so a retry finds the tenant).
    pub fn answer(
        self,
        site: &Site,
        loaded: Option<Loaded>,
        limits: &HttpLimits,
        now: Timestamp,
        jitter: f64,
    ) -> Response {
        let response = match loaded {
            Some(Loaded::Documents(documents)) => {
                // The copy in the store, if the tenant is still there (and
                // the fetch noted); else the one the load made: it was
                // evicted meanwhile, which does not make its keys wrong.
                let documents = site
                    .documents
                    .serve(&self.tenant, now.secs().saturating_mul(1000))
                    .unwrap_or(documents);
                document_response(&documents, self.document, limits, now, jitter)
            }
            Some(Loaded::Unknown) => not_found(),
            Some(Loaded::Unavailable) => {
                Response::unavailable("the directory cannot be reached; retry in a second")
            }
            None => Response::unavailable("loading this tenant's keys; retry in a second"),
        };
        finish(response, self.keep_alive, self.if_none_match.as_deref())
    }
}

/// The documents served under `/t/{tenant}/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DocumentKind {
    Jwks,
    Discovery,
    SamlMetadata,
}

/// A tenant slug as it may appear in a URL: 1-63 of `a-z 0-9 -`.
pub(super) fn valid_tenant(slug: &str) -> bool {
    (1..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

pub(super) fn not_found() -> Response {
    let mut r = Response::error(404, "not found");
    r.close = false;
    r
}

/// A tenant document's answer, or the load to wait for first.
pub(super) enum Lookup {
    Answer(Response),
    Wait(TenantWait, String, DocumentKind),
}

pub(super) fn tenant_document(
    site: &Site,
    path: &str,
    limits: &HttpLimits,
    now: Timestamp,
    jitter: f64,
) -> Lookup {
    let Some((tenant, document)) = path
        .strip_prefix("/t/")
        .and_then(|rest| rest.split_once('/'))
    else {
        return Lookup::Answer(not_found());
    };
    let document = match document {
        ".well-known/jwks.json" => DocumentKind::Jwks,
        ".well-known/openid-configuration" => DocumentKind::Discovery,
        "saml/metadata" => DocumentKind::SamlMetadata,
        _ => return Lookup::Answer(not_found()),
    };
    if !valid_tenant(tenant) {
        return Lookup::Answer(not_found());
    }
    let now_ms = now.secs().saturating_mul(1000);
    if let Some(documents) = site.documents.serve(tenant, now_ms) {
        return Lookup::Answer(document_response(&documents, document, limits, now, jitter));
    }
    Lookup::Answer(match site.on_miss.as_ref().map(|miss| miss(tenant)) {
        Some(Miss::Loading(wait)) => return Lookup::Wait(wait, tenant.to_owned(), document),
        Some(Miss::Unavailable) => {
            Response::unavailable("too many tenants are loading; retry in a second")
        }
        Some(Miss::Unknown) | None => not_found(),
    })
}

fn document_response(
    documents: &TenantDocuments,
    document: DocumentKind,
    limits: &HttpLimits,
    now: Timestamp,
    jitter: f64,
) -> Response {
    let chosen: Option<&Document> = match document {
        DocumentKind::Jwks => Some(&documents.jwks),
        DocumentKind::Discovery => Some(&documents.discovery),
        DocumentKind::SamlMetadata => documents.saml_metadata.as_ref(),
    };
    let Some(chosen) = chosen else {
        return not_found();
    };
    let max_age = cache_max_age(documents, now, limits.cache_cap_secs, jitter);
    Response {
        status: 200,
        content_type: chosen.content_type,
        body: chosen.body.clone(),
        etag: Some(chosen.etag.clone()),
        cache_control: Some(format!("public, max-age={max_age}")),
        close: false,
    }
}
