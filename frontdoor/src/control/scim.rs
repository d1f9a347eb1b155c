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

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sigil_scim::ScimError;

use super::types::{
    read_body, Answer, Failure, Request, Scim, BULK_MAX_OPERATIONS, MAX_RESULTS, SCIM_JSON,
};
use crate::api::TenantLive;

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
    // `changePassword.supported`: `password` is written (hashed with the
    // tenant's parameters; users.rs), never returned.
    sigil_scim::schema::service_provider_config(
        base,
        BULK_MAX_OPERATIONS,
        super::bulk::MAX_PAYLOAD,
        MAX_RESULTS,
    )
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
