//! SCIM 2.0 protocol pieces (RFC 7643 core schema, RFC 7644 protocol) with
//! no I/O: filter parsing, in-memory evaluation and translation to a
//! parameterised SQL `WHERE` clause, PATCH parsing and application,
//! attribute projection, the static discovery documents, list responses,
//! paging and ETags.
//!
//! It does not talk HTTP, read clocks or touch a database: the SCIM server
//! in `frontdoor` hands it JSON bodies and query strings and gets typed
//! values or a [`ScimError`] back, whose [`ScimError::status`] and
//! [`ScimError::body`] are the RFC 7644 §3.12 error response.
//!
//! Modules:
//! - [`filter`]: `filter=` parsing ([`filter::parse`]), evaluation on a JSON
//!   resource ([`filter::matches()`]) and translation to SQL
//!   ([`filter::to_sql`]), values always bound as parameters.
//! - [`patch`]: PATCH request parsing and RFC 7644 §3.5.2 application.
//! - [`put`]: PUT replacement (readOnly values kept, immutable ones
//!   checked) and the changed-attribute list for the audit log.
//! - [`projection`]: `attributes=` / `excludedAttributes=`.
//! - [`schema`]: User, enterprise User and Group attribute tables,
//!   validation of resources and the discovery documents.
//! - [`list`]: ListResponse and paging parameters.
//! - [`datetime`]: RFC 3339 `dateTime` values to and from Unix milliseconds.
//!
//! A server turns a `filter=` query into SQL like this:
//!
//! ```
//! use sigil_scim::filter::{self, AttrPath, SqlColumns, SqlParam, SqlTarget};
//!
//! struct Users;
//! impl SqlColumns for Users {
//!     fn column(&self, path: &AttrPath) -> Option<SqlTarget> {
//!         match path.key().as_str() {
//!             "username" => Some(SqlTarget::Text { expr: "login".into(), case_exact: false }),
//!             "emails" | "emails.value" => Some(SqlTarget::MultiText {
//!                 exists_subquery_template:
//!                     "EXISTS (SELECT 1 FROM jsonb_array_elements(profile->'emails') e WHERE {e->>'value'})".into(),
//!                 case_exact: false,
//!             }),
//!             _ => None,
//!         }
//!     }
//! }
//!
//! let parsed = filter::parse(r#"userName eq "bjensen" or emails co "@example.com""#)?;
//! let sql = filter::to_sql(&parsed, &Users, 2)?; // $1 is the tenant
//! assert_eq!(
//!     sql.clause,
//!     "(lower(login) = lower($2) OR EXISTS (SELECT 1 FROM jsonb_array_elements(profile->'emails') e \
//!      WHERE lower(e->>'value') LIKE lower($3) ESCAPE '\\'))"
//! );
//! assert_eq!(sql.params, [SqlParam::Text("bjensen".into()), SqlParam::Text("%@example.com%".into())]);
//! # Ok::<(), sigil_scim::ScimError>(())
//! ```
//!
//! Deviations from the brief, and why:
//! - [`filter::AttrPath`] keeps the three public fields (`urn`, `name`,
//!   `sub`) as written by the client; the lowercase-normalised form is
//!   computed by [`filter::AttrPath::key`] and compared by
//!   [`filter::AttrPath::is`] rather than stored in extra public fields, so
//!   that a path built by hand can never disagree with its normalised form.
//! - [`ScimError`] has one extra variant, [`ScimError::PayloadTooLarge`]
//!   (413, RFC 7644 §3.7.4); `TooMany` is 400 `tooMany` as §3.12 says.
//! - [`filter::matches()`] picks the User or Group table from the resource's
//!   `schemas`; [`filter::matches_in`] takes the table explicitly.
#![forbid(unsafe_code)]

pub mod datetime;
pub mod filter;
pub mod list;
pub mod patch;
pub mod projection;
pub mod put;

pub mod schema;

use serde_json::{json, Value};

/// The URN of the SCIM error message (RFC 7644 §3.12).
pub const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A SCIM protocol error. Each variant carries a human-readable detail that
/// goes into the `detail` member of the error response; none of them carry
/// secrets (the detail names attributes and syntax, never stored values).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScimError {
    /// The filter syntax is invalid or names an unknown attribute (400).
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    /// The PATCH path is malformed or names an unknown attribute (400).
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// A value is missing, of the wrong type or not allowed (400).
    #[error("invalid value: {0}")]
    InvalidValue(String),
    /// The request body is not a valid SCIM message (400).
    #[error("invalid syntax: {0}")]
    InvalidSyntax(String),
    /// The request tried to change a readOnly or immutable attribute (400).
    #[error("mutability: {0}")]
    Mutability(String),
    /// A PATCH path with a value filter matched nothing (400).
    #[error("no target: {0}")]
    NoTarget(String),
    /// A unique attribute already has this value (409).
    #[error("uniqueness: {0}")]
    Uniqueness(String),
    /// The query would return more results than the server allows (400).
    #[error("too many results: {0}")]
    TooMany(String),
    /// The If-Match / version value is malformed (400).
    #[error("invalid version: {0}")]
    InvalidVersion(String),
    /// The resource does not exist (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The resource changed since the ETag the client sent (412).
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// The request carried sensitive data in the URL (400, §7.5.2).
    #[error("sensitive: {0}")]
    Sensitive(String),
    /// The request body is larger than the server accepts (413, §3.7.4).
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
}

impl ScimError {
    /// The HTTP status RFC 7644 §3.12 assigns to this error.
    pub fn status(&self) -> u16 {
        match self {
            ScimError::Uniqueness(_) => 409,
            ScimError::NotFound(_) => 404,
            ScimError::PreconditionFailed(_) => 412,
            ScimError::PayloadTooLarge(_) => 413,
            _ => 400,
        }
    }

    /// The `scimType` keyword of RFC 7644 §3.12 table 9, when there is one.
    pub fn scim_type(&self) -> Option<&'static str> {
        match self {
            ScimError::InvalidFilter(_) => Some("invalidFilter"),
            ScimError::InvalidPath(_) => Some("invalidPath"),
            ScimError::InvalidValue(_) => Some("invalidValue"),
            ScimError::InvalidSyntax(_) => Some("invalidSyntax"),
            ScimError::Mutability(_) => Some("mutability"),
            ScimError::NoTarget(_) => Some("noTarget"),
            ScimError::Uniqueness(_) => Some("uniqueness"),
            ScimError::TooMany(_) => Some("tooMany"),
            ScimError::InvalidVersion(_) => Some("invalidVers"),
            ScimError::Sensitive(_) => Some("sensitive"),
            ScimError::NotFound(_)
            | ScimError::PreconditionFailed(_)
            | ScimError::PayloadTooLarge(_) => None,
        }
    }

    /// The detail text given when the error was made.
    pub fn detail(&self) -> &str {
        match self {
            ScimError::InvalidFilter(d)
            | ScimError::InvalidPath(d)
            | ScimError::InvalidValue(d)
            | ScimError::InvalidSyntax(d)
            | ScimError::Mutability(d)
            | ScimError::NoTarget(d)
            | ScimError::Uniqueness(d)
            | ScimError::TooMany(d)
            | ScimError::InvalidVersion(d)
            | ScimError::NotFound(d)
            | ScimError::PreconditionFailed(d)
            | ScimError::Sensitive(d)
            | ScimError::PayloadTooLarge(d) => d,
        }
    }

    /// The RFC 7644 §3.12 error body: `schemas`, `status` (a string, as the
    /// RFC's examples have it), `scimType` when defined, and `detail`.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "schemas": [ERROR_URN],
            "status": self.status().to_string(),
            "detail": self.detail(),
        });
        if let (Some(kind), Some(object)) = (self.scim_type(), body.as_object_mut()) {
            object.insert("scimType".into(), Value::from(kind));
        }
        body
    }
}

/// The weak ETag for a resource version: `W/"<version>"`.
pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// Checks an `If-Match` header against the current version.
///
/// `*` matches any existing resource; otherwise the header is a
/// comma-separated list of entity tags, weak (`W/"3"`) or strong (`"3"`),
/// compared by their opaque part (SCIM versions are weak tags and RFC 7644
/// §3.14 uses them with If-Match). Fails with
/// [`ScimError::PreconditionFailed`] when no tag names `version`, and with
/// [`ScimError::InvalidVersion`] when the header is not a list of entity tags.
pub fn if_match(header: &str, version: u64) -> Result<(), ScimError> {
    let header = header.trim();
    if header == "*" {
        return Ok(());
    }
    let current = version.to_string();
    let mut any = false;
    for tag in header.split(',') {
        let tag = tag.trim();
        if tag.is_empty() {
            continue;
        }
        let opaque = tag.strip_prefix("W/").unwrap_or(tag);
        let inner = opaque
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .filter(|inner| !inner.contains('"'))
            .ok_or_else(|| ScimError::InvalidVersion("If-Match must list entity tags".into()))?;
        any = true;
        if inner == current {
            return Ok(());
        }
    }
    if !any {
        return Err(ScimError::InvalidVersion("If-Match is empty".into()));
    }
    Err(ScimError::PreconditionFailed(
        "the resource changed since the version given in If-Match".into(),
    ))
}

/// Finds a member of a JSON object by name, ignoring ASCII case (SCIM
/// attribute names and schema URNs are case-insensitive, RFC 7643 §2.1).
pub(crate) fn member<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    object
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

/// The actual key under which `name` is stored in `object`, ignoring case.
pub(crate) fn member_key(object: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    object
        .keys()
        .find(|key| key.eq_ignore_ascii_case(name))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_status_and_type_follow_rfc_7644_table() {
        assert_eq!(ScimError::InvalidFilter("x".into()).status(), 400);
        assert_eq!(ScimError::Uniqueness("x".into()).status(), 409);
        assert_eq!(ScimError::PreconditionFailed("x".into()).status(), 412);
        assert_eq!(ScimError::NotFound("x".into()).status(), 404);
        assert_eq!(ScimError::PayloadTooLarge("x".into()).status(), 413);
        assert_eq!(ScimError::TooMany("x".into()).status(), 400);
        assert_eq!(
            ScimError::InvalidVersion("x".into()).scim_type(),
            Some("invalidVers")
        );
        assert_eq!(ScimError::NotFound("x".into()).scim_type(), None);
        assert_eq!(
            ScimError::Mutability("x".into()).scim_type(),
            Some("mutability")
        );
    }

    #[test]
    fn error_body_has_string_status_and_scim_type() {
        let body = ScimError::Uniqueness("userName taken".into()).body();
        assert_eq!(
            body,
            json!({
                "schemas": [ERROR_URN],
                "status": "409",
                "scimType": "uniqueness",
                "detail": "userName taken",
            })
        );
        let body = ScimError::NotFound("no such user".into()).body();
        assert_eq!(body["status"], "404");
        assert!(body.get("scimType").is_none());
    }

    #[test]
    fn etag_is_weak() {
        assert_eq!(etag(7), "W/\"7\"");
    }

    #[test]
    fn if_match_accepts_star_lists_and_strong_tags() {
        assert_eq!(if_match("*", 3), Ok(()));
        assert_eq!(if_match("W/\"3\"", 3), Ok(()));
        assert_eq!(if_match("\"3\"", 3), Ok(()));
        assert_eq!(if_match("W/\"1\", W/\"3\"", 3), Ok(()));
    }

    #[test]
    fn if_match_refuses_other_versions_and_garbage() {
        assert!(matches!(
            if_match("W/\"2\"", 3),
            Err(ScimError::PreconditionFailed(_))
        ));
        assert!(matches!(
            if_match("W/\"33\"", 3),
            Err(ScimError::PreconditionFailed(_))
        ));
        assert!(matches!(
            if_match("3", 3),
            Err(ScimError::InvalidVersion(_))
        ));
        assert!(matches!(if_match("", 3), Err(ScimError::InvalidVersion(_))));
        assert!(matches!(
            if_match("W/\"3", 3),
            Err(ScimError::InvalidVersion(_))
        ));
    }
}
