//! SCIM 2.0 (RFC 7643, RFC 7644) per tenant at
//! `{control_public_url}/t/{tenant}/scim/v2/...`: routing, bearer-token
//! authentication, SCIM error JSON for every failure, discovery
//! documents, and what the resources share (bodies, ETags, projection,
//! filters).
//!
//! Authentication comes before anything else, discovery included: a
//! missing or wrong token, a revoked one, a token of another tenant and an
//! unknown tenant all get the same 401 (`WWW-Authenticate: Bearer`), so the
//! answer says nothing about other tenants.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
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

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    response
}

fn respond(result: Result<Answer, Failure>) -> Response {
    match result {
        Ok(Answer::NoContent) => StatusCode::NO_CONTENT.into_response(),
        Ok(Answer::Json {
            status,
            body,
            etag,
            location,
        }) => {
            let mut response = json_response(status, &body);
            let headers = response.headers_mut();
            if let Some(value) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
                headers.insert(header::ETAG, value);
            }
            if let Some(value) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
                headers.insert(header::LOCATION, value);
            }
            response
        }
        Err(failure) => {
            let (status, body) = failure.body();
            let mut response = json_response(status, &body);
            if matches!(failure, Failure::Unauthorized) {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"sigil-scim\""),
                );
            }
            response
        }
    }
}

/// The router: every path goes to [`entry`].
pub fn router(scim: Arc<Scim>) -> axum::Router {
    axum::Router::new().fallback(entry).with_state(scim)
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

/// The bearer token of the request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 256)
        .then_some(token)
}

/// The handler of every request.
async fn entry(
    State(scim): State<Arc<Scim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let began = std::time::Instant::now();
    let route = route_of(&method, uri.path());
    let within = scim.request_timeout;
    let response =
        match tokio::time::timeout(within, handle(&scim, method, &uri, headers, body)).await {
            Ok(result) => respond(result),
            Err(_) => respond(Err(Failure::Status(
                StatusCode::SERVICE_UNAVAILABLE,
                "the request took too long".into(),
            ))),
        };
    scim.appliance.scim_metrics().requests[route].record(began.elapsed());
    response
}

/// The [`crate::metrics::SCIM_ROUTES`] index of a request.
fn route_of(method: &Method, path: &str) -> usize {
    let mut segments = path.split('/').filter(|s| !s.is_empty()).skip(4);
    let route = match (segments.next(), segments.next(), method) {
        (Some("Users"), None, &Method::GET) => "users_list",
        (Some("Users"), Some(_), &Method::GET) => "users_read",
        (Some("Users"), _, _) => "users_write",
        (Some("Groups"), _, _) => "groups",
        (Some("Bulk"), _, _) => "bulk",
        _ => "other",
    };
    crate::metrics::SCIM_ROUTES
        .iter()
        .position(|r| *r == route)
        .unwrap_or(crate::metrics::SCIM_ROUTES.len() - 1)
}

async fn handle(
    scim: &Scim,
    method: Method,
    uri: &Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Answer, Failure> {
    let not_found = || Failure::Scim(ScimError::NotFound("no such endpoint".into()));
    let rest = uri.path().strip_prefix("/t/").ok_or_else(not_found)?;
    let (slug, rest) = rest.split_once('/').ok_or_else(not_found)?;
    let rest = rest.strip_prefix("scim/v2").ok_or_else(not_found)?;
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let checking = std::time::Instant::now();
    let authenticated = authenticate(scim, slug, &headers).await;
    scim.appliance
        .scim_metrics()
        .auth
        .record(checking.elapsed());
    let (live, token) = authenticated?;
    let query = Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|_| ScimError::InvalidSyntax("the query string is malformed".into()))?;
    let request = Request {
        base: format!("{}/t/{}/scim/v2", scim.public_url, live.slug),
        live,
        token,
        query,
        headers,
    };
    let read = |body: Body| read_body(body, scim.max_body);
    match (segments.as_slice(), &method) {
        (["ServiceProviderConfig"], &Method::GET) => Ok(ok(service_provider_config(&request.base))),
        (["Schemas"], &Method::GET) => Ok(ok(sigil_scim::schema::schemas_document(&request.base))),
        (["Schemas", id], &Method::GET) => sigil_scim::schema::schema_document(&request.base, id)
            .map(ok)
            .ok_or_else(|| ScimError::NotFound(format!("no schema {id}")).into()),
        (["ResourceTypes"], &Method::GET) => Ok(ok(sigil_scim::schema::resource_types_document(
            &request.base,
        ))),
        (["ResourceTypes", name], &Method::GET) => {
            sigil_scim::schema::resource_type_document(&request.base, name)
                .map(ok)
                .ok_or_else(|| ScimError::NotFound(format!("no resource type {name}")).into())
        }
        (["Users"], &Method::GET) => super::users::list(scim, &request).await,
        (["Users"], &Method::POST) => super::users::create(scim, &request, read(body).await?).await,
        (["Users", id], &Method::GET) => super::users::get(scim, &request, id).await,
        (["Users", id], &Method::PUT) => {
            super::users::replace(scim, &request, id, read(body).await?).await
        }
        (["Users", id], &Method::PATCH) => {
            super::users::patch(scim, &request, id, read(body).await?).await
        }
        (["Users", id], &Method::DELETE) => super::users::delete(scim, &request, id).await,
        (["Groups"], &Method::GET) => super::groups::list(scim, &request).await,
        (["Groups"], &Method::POST) => {
            super::groups::create(scim, &request, read(body).await?).await
        }
        (["Groups", id], &Method::GET) => super::groups::get(scim, &request, id).await,
        (["Groups", id], &Method::PUT) => {
            super::groups::replace(scim, &request, id, read(body).await?).await
        }
        (["Groups", id], &Method::PATCH) => {
            super::groups::patch(scim, &request, id, read(body).await?).await
        }
        (["Groups", id], &Method::DELETE) => super::groups::delete(scim, &request, id).await,
        (["Bulk"], &Method::POST) => super::bulk::bulk(scim, &request, body).await,
        (
            ["ServiceProviderConfig" | "Schemas" | "ResourceTypes" | "Users" | "Groups" | "Bulk", ..],
            _,
        ) => Err(Failure::Status(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not supported here"),
        )),
        _ => Err(not_found()),
    }
}

/// `/ServiceProviderConfig`, as this node implements it.
pub fn service_provider_config(base: &str) -> Value {
    let mut config = sigil_scim::schema::service_provider_config(
        base,
        BULK_MAX_OPERATIONS,
        super::bulk::MAX_PAYLOAD,
        MAX_RESULTS,
    );
    // Passwords are not accepted over SCIM (yet): no hashing here.
    config["changePassword"] = json!({"supported": false});
    config
}

fn ok(body: Value) -> Answer {
    Answer::Json {
        status: StatusCode::OK,
        body,
        etag: None,
        location: None,
    }
}

/// The tenant and the name of the token, or 401.
async fn authenticate(
    scim: &Scim,
    slug: &str,
    headers: &HeaderMap,
) -> Result<(Arc<TenantLive>, String), Failure> {
    let presented = bearer(headers).ok_or(Failure::Unauthorized)?;
    let appliance = &scim.appliance;
    let tenant_id = match appliance.tenant_cache().get(slug) {
        Some(live) => live.tenant.id,
        None => match appliance.directory().tenant_by_slug(slug).await {
            Ok(Some(tenant)) => tenant.id,
            Ok(None) => return Err(Failure::Unauthorized),
            Err(e) => return Err(Failure::directory(e)),
        },
    };
    let name = appliance
        .scim_token_name(tenant_id, presented)
        .await
        .map_err(Failure::wire)?
        .ok_or(Failure::Unauthorized)?;
    let live = appliance.tenant(slug).await.map_err(Failure::wire)?;
    if live.tenant.id != tenant_id {
        return Err(Failure::Unauthorized);
    }
    Ok((live, name))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_timed_by_route() {
        let route =
            |method: Method, path: &str| crate::metrics::SCIM_ROUTES[route_of(&method, path)];
        let base = "/t/acme/scim/v2";
        assert_eq!(route(Method::GET, &format!("{base}/Users")), "users_list");
        assert_eq!(route(Method::GET, &format!("{base}/Users/")), "users_list");
        assert_eq!(
            route(Method::GET, &format!("{base}/Users/abc")),
            "users_read"
        );
        assert_eq!(
            route(Method::PATCH, &format!("{base}/Users/abc")),
            "users_write"
        );
        assert_eq!(route(Method::POST, &format!("{base}/Users")), "users_write");
        assert_eq!(route(Method::GET, &format!("{base}/Groups/g")), "groups");
        assert_eq!(route(Method::POST, &format!("{base}/Bulk")), "bulk");
        assert_eq!(
            route(Method::GET, &format!("{base}/ServiceProviderConfig")),
            "other"
        );
        assert_eq!(route(Method::GET, "/t/acme/Users"), "other");
        assert_eq!(route(Method::GET, "/"), "other");
    }
}
