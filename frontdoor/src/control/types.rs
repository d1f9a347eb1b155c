//! What the SCIM resources and the router share: the service, a request
//! and its answer or failure, bodies, ETags and `meta`, paging and the
//! filter's SQL. The router (`scim`) and the resources (`users`,
//! `groups`, `bulk`) depend on this module, not on each other's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use serde_json::{json, Value};
use sigil_scim::filter::{self, AttrPath};
use sigil_scim::schema::ResourceSchema;
use sigil_scim::{projection, ScimError, ERROR_URN};

use crate::api::{Appliance, TenantLive};

/// The SCIM media type.
pub const SCIM_JSON: &str = "application/scim+json";
/// Most resources in one list answer (`filter.maxResults`).
pub const MAX_RESULTS: usize = 1000;
/// Most operations in one `/Bulk` request.
pub const BULK_MAX_OPERATIONS: usize = 1000;

/// The SCIM service of a node.
#[derive(Debug)]
pub struct Scim {
    /// The appliance (tenants, directory, strong deactivation, audit).
    pub appliance: Arc<Appliance>,
    /// The control listener's public base URL.
    pub public_url: String,
    /// Largest request body.
    pub max_body: usize,
    /// Deadline of one request.
    pub request_timeout: Duration,
}

/// A SCIM answer: a status and a JSON body, or a bare status.
#[derive(Debug)]
pub enum Answer {
    /// A resource or message, with its ETag and Location when it has them.
    Json {
        /// HTTP status.
        status: StatusCode,
        /// The body.
        body: Value,
        /// `ETag`.
        etag: Option<String>,
        /// `Location`.
        location: Option<String>,
    },
    /// 204.
    NoContent,
}

/// A failure, answered as SCIM error JSON.
#[derive(Debug)]
pub enum Failure {
    /// A protocol error with its status and `scimType`.
    Scim(ScimError),
    /// 401, with `WWW-Authenticate: Bearer`.
    Unauthorized,
    /// Another status (405, 503, 500) with its detail.
    Status(StatusCode, String),
}

impl From<ScimError> for Failure {
    fn from(error: ScimError) -> Failure {
        Failure::Scim(error)
    }
}

impl Failure {
    /// The directory failed.
    pub fn directory(error: directory::Error) -> Failure {
        match error {
            directory::Error::Conflict(m) => Failure::Scim(ScimError::Uniqueness(m)),
            directory::Error::Invalid(m) => Failure::Scim(ScimError::InvalidValue(m)),
            other => {
                tracing::warn!(error = %other, "scim: directory");
                Failure::Status(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the directory is unavailable; try again".into(),
                )
            }
        }
    }

    /// The appliance refused (deactivation, audit).
    pub fn wire(error: sigil_proto::WireError) -> Failure {
        use sigil_proto::ErrorCode;
        match error.code {
            ErrorCode::NotFound => Failure::Scim(ScimError::NotFound(error.message)),
            ErrorCode::Internal => {
                Failure::Status(StatusCode::INTERNAL_SERVER_ERROR, error.message)
            }
            _ => Failure::Status(StatusCode::SERVICE_UNAVAILABLE, error.message),
        }
    }

    /// The SCIM error body and its status.
    pub fn body(&self) -> (StatusCode, Value) {
        let plain = |status: StatusCode, detail: &str| json!({"schemas": [ERROR_URN], "status": status.as_u16().to_string(), "detail": detail});
        match self {
            Failure::Scim(e) => (
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                e.body(),
            ),
            Failure::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                plain(
                    StatusCode::UNAUTHORIZED,
                    "a valid SCIM bearer token of this tenant is required",
                ),
            ),
            Failure::Status(status, detail) => (*status, plain(*status, detail)),
        }
    }
}

/// One authenticated request.
#[derive(Debug)]
pub struct Request {
    /// The tenant.
    pub live: Arc<TenantLive>,
    /// The SCIM token's name (audited as who changed what).
    pub token: String,
    /// `{public_url}/t/{tenant}/scim/v2`.
    pub base: String,
    /// Query parameters.
    pub query: HashMap<String, String>,
    /// Headers.
    pub headers: HeaderMap,
}

impl Scim {
    /// A transaction scoped to the request's tenant.
    ///
    /// # Errors
    /// 503 while the directory is unreachable.
    pub async fn scope(&self, request: &Request) -> Result<directory::TenantScope<'_>, Failure> {
        self.appliance
            .directory()
            .tenant(request.live.tenant.id)
            .await
            .map_err(Failure::directory)
    }
}

impl Request {
    /// `If-Match` against `version`: 412 on a mismatch.
    ///
    /// # Errors
    /// [`ScimError::PreconditionFailed`], [`ScimError::InvalidVersion`].
    pub fn if_match(&self, version: i64) -> Result<(), ScimError> {
        match self.headers.get(header::IF_MATCH) {
            None => Ok(()),
            Some(value) => {
                let text = value
                    .to_str()
                    .map_err(|_| ScimError::InvalidVersion("If-Match is not text".into()))?;
                sigil_scim::if_match(text, u64::try_from(version).unwrap_or(0))
            }
        }
    }

    /// A query parameter, matched without regard to case.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `attributes` / `excludedAttributes` applied to `resource`.
    ///
    /// # Errors
    /// [`ScimError::InvalidValue`] for a malformed list.
    pub fn project(&self, resource: &Value, schema: &ResourceSchema) -> Result<Value, ScimError> {
        let list = |name: &str| -> Result<Vec<AttrPath>, ScimError> {
            match self.param(name) {
                Some(text) if !text.is_empty() => projection::parse_attribute_list(text),
                _ => Ok(Vec::new()),
            }
        };
        let (attributes, excluded) = (list("attributes")?, list("excludedAttributes")?);
        Ok(projection::project(
            resource,
            &attributes,
            &excluded,
            schema,
        ))
    }

    /// The `filter` parameter, parsed.
    ///
    /// # Errors
    /// [`ScimError::InvalidFilter`].
    pub fn filter(&self) -> Result<Option<filter::Filter>, ScimError> {
        match self.param("filter") {
            Some(text) if !text.trim().is_empty() => filter::parse(text).map(Some),
            _ => Ok(None),
        }
    }
}

/// A text bind parameter list for a filter's SQL.
pub type Params = Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>>;

/// The SQL of a filter (values bound, never spliced), or `true`.
///
/// # Errors
/// [`ScimError::InvalidFilter`].
pub fn filter_sql(
    filter: Option<&filter::Filter>,
    columns: &dyn sigil_scim::filter::SqlColumns,
) -> Result<(String, Params), ScimError> {
    use sigil_scim::filter::SqlParam;
    let Some(filter) = filter else {
        return Ok(("true".into(), Vec::new()));
    };
    let sql = sigil_scim::filter::to_sql(filter, columns, 1)?;
    let params = sql
        .params
        .into_iter()
        .map(|p| -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
            match p {
                SqlParam::Text(t) => Box::new(t),
                SqlParam::Bool(b) => Box::new(b),
                SqlParam::TimestampMs(ms) => Box::new(
                    std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
                ),
            }
        })
        .collect();
    Ok((sql.clause, params))
}

/// `meta` of a resource.
pub fn meta(
    resource_type: &str,
    created_ms: u64,
    updated_ms: u64,
    location: &str,
    version: i64,
) -> Value {
    let when = |ms: u64| sigil_scim::datetime::format_millis(i64::try_from(ms).unwrap_or(0));
    json!({
        "resourceType": resource_type,
        "created": when(created_ms),
        "lastModified": when(updated_ms),
        "location": location,
        "version": sigil_scim::etag(u64::try_from(version).unwrap_or(0)),
    })
}

/// Reads a JSON body of at most `max` bytes.
///
/// # Errors
/// 413 beyond `max`; 400 `invalidSyntax` for a body that is not JSON.
pub async fn read_body(body: Body, max: usize) -> Result<Value, Failure> {
    let bytes = axum::body::to_bytes(body, max).await.map_err(|_| {
        ScimError::PayloadTooLarge(format!("the request body is larger than {max} bytes"))
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ScimError::InvalidSyntax(format!("the body is not JSON: {e}")).into())
}

/// A created or fetched resource's answer.
pub fn resource(status: StatusCode, body: Value, version: i64, location: &str) -> Answer {
    Answer::Json {
        status,
        body,
        etag: Some(sigil_scim::etag(u64::try_from(version).unwrap_or(0))),
        location: (status == StatusCode::CREATED).then(|| location.to_owned()),
    }
}

/// A new resource id: 128 random bits, hex.
///
/// # Errors
/// 500 when the random generator fails.
pub fn new_id() -> Result<String, Failure> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| {
        Failure::Status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "random generator failed".into(),
        )
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The paging parameters: (startIndex, count).
///
/// # Errors
/// [`ScimError::InvalidValue`] for a non-integer.
pub fn paging(request: &Request) -> Result<(u64, usize), ScimError> {
    sigil_scim::list::paging(
        request.param("startIndex"),
        request.param("count"),
        MAX_RESULTS,
    )
}
