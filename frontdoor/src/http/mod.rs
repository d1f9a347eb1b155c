//! The HTTP endpoints SPs and operators talk to:
//! `GET /t/{tenant}/.well-known/jwks.json`,
//! `/t/{tenant}/.well-known/openid-configuration`, `/t/{tenant}/saml/metadata`,
//! `/metrics`, `/healthz`, `/readyz`; and `POST /t/{tenant}/oauth2/introspect`
//! and `/revoke` ([`oauth`], issue 19).
//!
//! [`exchange`] is the protocol as plain functions (parse, route, conditional
//! GET, cache lifetimes); [`lookup`] answers tenant documents, from memory or
//! once the tenant's load (started or joined through [`Site::on_miss`]) is
//! over; [`server`] is the thin thread-per-core monoio loop, which awaits
//! such a load without blocking its other connections;
//! [`documents`] holds the pre-rendered per-tenant documents that the control
//! plane swaps on key-ring change.

mod connections;
pub mod documents;
pub mod exchange;
pub mod lookup;
pub mod oauth;
pub mod server;

pub use documents::{
    cache_max_age, openid_configuration, Document, DocumentStore, TenantDocuments,
};
pub use exchange::{HttpLimits, Site};
pub use server::{HttpConfig, HttpServer, HttpStats};
