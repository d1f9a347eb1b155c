//! The documents SPs fetch, pre-rendered per tenant and swapped whole on
//! key-ring change: workers read them without a lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use signer::Timestamp;

/// One pre-rendered document with its strong ETag (quoted).
#[derive(Debug, Clone)]
pub struct Document {
    /// The body.
    pub body: Bytes,
    /// `Content-Type` header value.
    pub content_type: &'static str,
    /// Strong ETag, with quotes.
    pub etag: String,
}

impl Document {
    /// A document whose ETag is the SHA-256 of its body (first 18 bytes,
    /// base64url).
    pub fn new(body: Bytes, content_type: &'static str) -> Document {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body);
        let etag = format!("\"{}\"", signer::b64::encode(&digest.as_ref()[..18]));
        Document {
            body,
            content_type,
            etag,
        }
    }
}

/// Everything served under `/t/{tenant}/`.
#[derive(Debug, Clone)]
pub struct TenantDocuments {
    /// `/.well-known/jwks.json`.
    pub jwks: Document,
    /// `/.well-known/openid-configuration`.
    pub discovery: Document,
    /// `/saml/metadata`, if the tenant has SAML signing keys.
    pub saml_metadata: Option<Document>,
    /// When the next pending key starts to sign: caches must not reach past it.
    pub next_activation: Option<Timestamp>,
    /// The tenant's pre-publication time: no cache may outlive it, or an SP
    /// could miss a key added after its fetch.
    pub prepublish_secs: u64,
}

/// One tenant's documents and when an SP last fetched them.
#[derive(Debug, Clone)]
struct Entry {
    documents: Arc<TenantDocuments>,
    /// Unix milliseconds of the last fetch (0: none yet); kept across
    /// republication, so a key change does not make a tenant look unused.
    served_ms: Arc<AtomicU64>,
}

/// The documents of every tenant. Readers take a snapshot (`load`), writers
/// replace one tenant's entry; neither blocks the other.
#[derive(Debug, Default)]
pub struct DocumentStore {
    tenants: ArcSwap<HashMap<String, Entry>>,
}

impl DocumentStore {
    /// An empty store.
    pub fn new() -> DocumentStore {
        DocumentStore::default()
    }

    /// The documents of `tenant`, if it exists.
    pub fn get(&self, tenant: &str) -> Option<Arc<TenantDocuments>> {
        self.tenants
            .load()
            .get(tenant)
            .map(|entry| Arc::clone(&entry.documents))
    }

    /// The documents of `tenant` for an SP fetching them at `now_ms`: as
    /// [`DocumentStore::get`], and notes the fetch (at most once a second,
    /// so workers on other cores do not fight over the cache line).
    pub fn serve(&self, tenant: &str, now_ms: u64) -> Option<Arc<TenantDocuments>> {
        let tenants = self.tenants.load();
        let entry = tenants.get(tenant)?;
        if now_ms >= entry.served_ms.load(Ordering::Relaxed) + 1_000 {
            entry.served_ms.store(now_ms, Ordering::Relaxed);
        }
        Some(Arc::clone(&entry.documents))
    }

    /// When an SP last fetched a document of `tenant` (unix ms; 0: never,
    /// or not published).
    pub fn last_served_ms(&self, tenant: &str) -> u64 {
        self.tenants
            .load()
            .get(tenant)
            .map_or(0, |entry| entry.served_ms.load(Ordering::Relaxed))
    }

    /// Publishes (or replaces) the documents of `tenant`.
    pub fn publish(&self, tenant: &str, documents: TenantDocuments) {
        let documents = Arc::new(documents);
        self.tenants.rcu(|current| {
            let mut next = HashMap::clone(current);
            let served_ms = current
                .get(tenant)
                .map_or_else(Arc::default, |entry| Arc::clone(&entry.served_ms));
            next.insert(
                tenant.to_owned(),
                Entry {
                    documents: Arc::clone(&documents),
                    served_ms,
                },
            );
            next
        });
    }

    /// Removes `tenant` (its URLs answer 404 from now on).
    pub fn remove(&self, tenant: &str) {
        self.remove_all(&[tenant]);
    }

    /// Removes every tenant of `tenants` at once.
    pub fn remove_all<S: AsRef<str>>(&self, tenants: &[S]) {
        if tenants.is_empty() {
            return;
        }
        self.tenants.rcu(|current| {
            let mut next = HashMap::clone(current);
            for tenant in tenants {
                next.remove(tenant.as_ref());
            }
            next
        });
    }

    /// Tenants currently served.
    pub fn tenants(&self) -> Vec<String> {
        self.tenants.load().keys().cloned().collect()
    }
}

/// Renders a tenant's OpenID Provider metadata (OIDC Discovery 1.0 §3) for
/// what Sigil does: the issuer, where its keys are, and the algorithms its
/// ID tokens are signed with. Endpoints Sigil does not serve itself (the
/// SSO web tier's authorization and token endpoints) are under `issuer`.
pub fn openid_configuration(
    issuer: &str,
    jwks_uri: &str,
    algorithms: &[signer::Algorithm],
) -> Bytes {
    let issuer = issuer.trim_end_matches('/');
    let algorithms: Vec<&str> = algorithms.iter().map(|a| a.name()).collect();
    let document = serde_json::json!({
        "issuer": issuer,
        "jwks_uri": jwks_uri,
        "authorization_endpoint": format!("{issuer}/oauth2/v1/authorize"),
        "token_endpoint": format!("{issuer}/oauth2/v1/token"),
        "response_types_supported": ["code", "id_token", "code id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algorithms,
        "scopes_supported": ["openid", "email", "profile", "groups"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "auth_time", "nonce", "amr", "sid", "azp", "email", "name", "groups"],
        // Introspection and revocation (issue 19).
        "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "introspection_endpoint_auth_methods_supported": ["private_key_jwt"],
        "revocation_endpoint_auth_methods_supported": ["private_key_jwt"],
        "introspection_endpoint_auth_signing_alg_values_supported": crate::api::oauth::ASSERTION_ALGORITHMS,
        "revocation_endpoint_auth_signing_alg_values_supported": crate::api::oauth::ASSERTION_ALGORITHMS,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    });
    // A json! value of strings and arrays always serializes.
    Bytes::from(serde_json::to_vec(&document).unwrap_or_default())
}

/// `Cache-Control: max-age` for a tenant's key documents at `now`.
///
/// The base is the smallest of: the operator's cap, the tenant's
/// pre-publication time (a key added right after an SP's fetch must still
/// reach it before it signs), and the time left until the next pending key
/// starts to sign. `jitter` in `0.0..1.0` then shortens it by up to 10 %, so
/// thousands of SPs that fetched together do not refresh in lock-step. The
/// jitter only ever shortens, so the bound holds.
pub fn cache_max_age(
    documents: &TenantDocuments,
    now: Timestamp,
    cap_secs: u64,
    jitter: f64,
) -> u64 {
    let mut base = cap_secs.min(documents.prepublish_secs);
    if let Some(next) = documents.next_activation {
        base = base.min(next.since(now));
    }
    let jitter = jitter.clamp(0.0, 1.0);
    // Truncation toward zero keeps the result at or below the bound.
    let shave = (base as f64 * 0.10 * jitter) as u64;
    base - shave
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(next: Option<u64>, prepublish: u64) -> TenantDocuments {
        let d = Document::new(Bytes::from_static(b"{}"), "application/json");
        TenantDocuments {
            jwks: d.clone(),
            discovery: d,
            saml_metadata: None,
            next_activation: next.map(Timestamp::from_secs),
            prepublish_secs: prepublish,
        }
    }

    #[test]
    fn max_age_never_reaches_past_the_next_activation() {
        let now = Timestamp::from_secs(1000);
        assert_eq!(cache_max_age(&docs(None, 86_400), now, 3600, 0.0), 3600);
        assert_eq!(
            cache_max_age(&docs(Some(1600), 86_400), now, 3600, 0.0),
            600
        );
        assert_eq!(cache_max_age(&docs(Some(900), 86_400), now, 3600, 0.0), 0);
        assert_eq!(cache_max_age(&docs(None, 120), now, 3600, 0.0), 120);
        for step in 0..=100 {
            let jitter = f64::from(step) / 100.0;
            let age = cache_max_age(&docs(Some(1600), 86_400), now, 3600, jitter);
            assert!((540..=600).contains(&age), "{age}");
        }
    }

    #[test]
    fn discovery_names_issuer_keys_and_algorithms() {
        let body = openid_configuration(
            "https://sigil.test/t/acme/",
            "https://sigil.test/t/acme/.well-known/jwks.json",
            &[signer::Algorithm::EdDsa, signer::Algorithm::Rs256],
        );
        let value: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(value["issuer"], "https://sigil.test/t/acme");
        assert_eq!(
            value["id_token_signing_alg_values_supported"],
            serde_json::json!(["EdDSA", "RS256"])
        );
    }

    #[test]
    fn store_swaps_whole_documents() {
        let store = DocumentStore::new();
        assert!(store.get("acme").is_none());
        store.publish("acme", docs(None, 1));
        let before = store.get("acme").expect("published");
        store.publish("acme", docs(Some(5), 1));
        assert_eq!(before.next_activation, None, "readers keep their snapshot");
        assert_eq!(
            store.get("acme").expect("still there").next_activation,
            Some(Timestamp::from_secs(5))
        );
        store.remove("acme");
        assert!(store.get("acme").is_none());
    }

    #[test]
    fn fetches_are_noted_and_survive_republication() {
        let store = DocumentStore::new();
        assert!(store.serve("acme", 5_000).is_none());
        store.publish("acme", docs(None, 1));
        assert_eq!(store.last_served_ms("acme"), 0, "published, never fetched");
        assert!(store.get("acme").is_some());
        assert_eq!(store.last_served_ms("acme"), 0, "get is not a fetch");
        assert!(store.serve("acme", 5_000).is_some());
        assert_eq!(store.last_served_ms("acme"), 5_000);
        store.serve("acme", 5_500);
        assert_eq!(store.last_served_ms("acme"), 5_000, "at most once a second");
        store.serve("acme", 6_000);
        assert_eq!(store.last_served_ms("acme"), 6_000);
        store.serve("acme", 1_000);
        assert_eq!(
            store.last_served_ms("acme"),
            6_000,
            "a clock step back is ignored"
        );
        store.publish("acme", docs(Some(5), 1));
        assert_eq!(store.last_served_ms("acme"), 6_000, "new keys, same tenant");
        store.publish("globex", docs(None, 1));
        store.remove_all(&["acme", "globex", "initech"]);
        assert!(store.tenants().is_empty());
        assert_eq!(store.last_served_ms("acme"), 0);
    }
}
