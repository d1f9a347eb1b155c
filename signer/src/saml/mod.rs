//! SAML 2.0 for SSO: signed `samlp:Response`s holding one `saml:Assertion`
//! ([`build_signed_response`]) and per-tenant IdP metadata
//! ([`render_metadata`]).
//!
//! Everything is written directly in exclusive canonical form
//! ([`xml`]), so signing needs no XML parser: the Assertion is built
//! without its Signature, digested, the Signature is built and signed over
//! its canonical SignedInfo, and put in right after the Issuer (schema
//! order). Where the SP asks, the Response is then signed the same way,
//! around the signed Assertion.
//!
//! Keys: RSA-SHA256 with RS256 keys (the default SPs expect) and
//! ECDSA-SHA256 with ES256 keys, where the SP allows it. The signature
//! value of ECDSA in XML-DSig is `r || s`, what [`crate::SigningKey::sign`]
//! returns.

mod metadata;
mod response;
pub mod xml;

pub use metadata::{metadata_keys, render_metadata, SsoLocations};
pub use response::{
    build_signed_response, persistent_name_id, signature_method, Attribute, NameId, NameIdFormat,
    ResponseSpec, SignedResponse, DEFAULT_VALIDITY_SECS,
};

/// `urn:oasis:names:tc:SAML:2.0:assertion`.
pub const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
/// `urn:oasis:names:tc:SAML:2.0:protocol`.
pub const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
/// `urn:oasis:names:tc:SAML:2.0:metadata`.
pub const NS_METADATA: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
/// `http://www.w3.org/2000/09/xmldsig#`.
pub const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
