//! `/Bulk` (RFC 7644 §3.7): up to [`super::types::BULK_MAX_OPERATIONS`]
//! operations in a body of at most [`MAX_PAYLOAD`] bytes (413 beyond
//! either), run in order, each as its own request would be (same checks,
//! same strong deactivation, same audit; consecutive user creations are
//! written together by [`super::bulk_create`], each with its own outcome
//! and audit record); `failOnErrors` stops after that
//! many failures; `bulkId:` references in paths and data are replaced by
//! the ids the earlier operations made. An operation's `version` is its
//! `If-Match`.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use serde_json::{json, Value};
use sigil_scim::ScimError;

use super::types::{read_body, Answer, Failure, Request, Scim, BULK_MAX_OPERATIONS};
use super::{bulk_create, groups, users};

/// Largest `/Bulk` body, in bytes (`bulk.maxPayloadSize`).
pub const MAX_PAYLOAD: usize = 1 << 20;
/// The BulkRequest message URN.
pub const BULK_REQUEST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// The BulkResponse message URN.
pub const BULK_RESPONSE_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// Replaces `bulkId:NAME` strings (whole values or path segments).
fn resolve(value: &mut Value, ids: &HashMap<String, String>) -> Result<(), ScimError> {
    match value {
        Value::String(text) => {
            if let Some(name) = text.strip_prefix("bulkId:") {
                let id = ids.get(name).ok_or_else(|| {
                    ScimError::InvalidValue(format!("bulkId {name} is not defined before its use"))
                })?;
                *text = id.clone();
            }
        }
        Value::Array(items) => {
            for item in items {
                resolve(item, ids)?;
            }
        }
        Value::Object(members) => {
            for item in members.values_mut() {
                resolve(item, ids)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// `POST /Bulk`.
///
/// # Errors
/// 413 beyond the limits, 400 for a malformed request.
pub async fn bulk(scim: &Scim, request: &Request, body: Body) -> Result<Answer, Failure> {
    let body = read_body(body, MAX_PAYLOAD.min(scim.max_body)).await?;
    let schemas_ok = body
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|u| u == BULK_REQUEST_URN));
    if !schemas_ok {
        return Err(
            ScimError::InvalidSyntax(format!("schemas must list {BULK_REQUEST_URN}")).into(),
        );
    }
    let operations = body
        .get("Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::InvalidSyntax("Operations must be an array".into()))?;
    if operations.len() > BULK_MAX_OPERATIONS {
        return Err(ScimError::PayloadTooLarge(format!(
            "at most {BULK_MAX_OPERATIONS} operations per request"
        ))
        .into());
    }
    let fail_on_errors = body.get("failOnErrors").and_then(Value::as_u64);
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut results = Vec::with_capacity(operations.len());
    let mut errors = 0u64;
    let mut next = 0;
    while next < operations.len() {
        if fail_on_errors.is_some_and(|limit| errors >= limit) {
            break;
        }
        // Consecutive user creations without `bulkId:` references are
        // written together (see `bulk_create`), each keeping its outcome.
        let run = operations[next..]
            .iter()
            .take_while(|o| batchable(o))
            .count();
        if run > 1 {
            let group = &operations[next..next + run];
            let bodies: Vec<Value> = group
                .iter()
                .map(|o| o.get("data").cloned().unwrap_or(Value::Null))
                .collect();
            let budget = fail_on_errors.map(|limit| limit.saturating_sub(errors));
            let outcomes = bulk_create::create_users(scim, request, &bodies, budget).await;
            for (operation, outcome) in group.iter().zip(outcomes) {
                let bulk_id = operation.get("bulkId").and_then(Value::as_str);
                let outcome = outcome.map(|id| {
                    let location = Some(format!("{}/Users/{id}", request.base));
                    (StatusCode::CREATED, location, Some(id))
                });
                if outcome.is_err() {
                    errors += 1;
                }
                results.push(report("POST", bulk_id, outcome, &mut ids));
            }
            next += run;
            continue;
        }
        let operation = &operations[next];
        next += 1;
        let method = operation
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_uppercase();
        let bulk_id = operation.get("bulkId").and_then(Value::as_str);
        let outcome = one(scim, request, operation, &method, &ids).await;
        if outcome.is_err() {
            errors += 1;
        }
        results.push(report(&method, bulk_id, outcome, &mut ids));
    }
    Ok(Answer::Json {
        status: StatusCode::OK,
        body: json!({"schemas": [BULK_RESPONSE_URN], "Operations": results}),
        etag: None,
        location: None,
    })
}

type Done = (StatusCode, Option<String>, Option<String>);

/// Whether `value` holds a `bulkId:` reference anywhere.
fn refers(value: &Value) -> bool {
    match value {
        Value::String(text) => text.starts_with("bulkId:"),
        Value::Array(items) => items.iter().any(refers),
        Value::Object(members) => members.values().any(refers),
        _ => false,
    }
}

/// Whether `operation` is a user creation that needs no earlier id.
fn batchable(operation: &Value) -> bool {
    let method_ok = operation
        .get("method")
        .and_then(Value::as_str)
        .is_some_and(|m| m.eq_ignore_ascii_case("POST"));
    let path_ok = operation
        .get("path")
        .and_then(Value::as_str)
        .is_some_and(|p| p.split('/').filter(|s| !s.is_empty()).eq(["Users"]));
    // A password is hashed on the hashing pool before its user is written
    // (users::create_row): such a creation runs on its own.
    let password = operation
        .get("data")
        .and_then(Value::as_object)
        .is_some_and(|data| data.keys().any(|k| k.eq_ignore_ascii_case("password")));
    method_ok
        && path_ok
        && operation.get("version").is_none()
        && !operation.get("data").is_some_and(refers)
        && !password
}

/// One operation's entry of the BulkResponse; records its `bulkId`.
fn report(
    method: &str,
    bulk_id: Option<&str>,
    outcome: Result<Done, Failure>,
    ids: &mut HashMap<String, String>,
) -> Value {
    let mut result = json!({"method": method});
    if let Some(bulk_id) = bulk_id {
        result["bulkId"] = Value::from(bulk_id);
    }
    match outcome {
        Ok((status, location, id)) => {
            if let (Some(bulk_id), Some(id)) = (bulk_id, id) {
                ids.insert(bulk_id.to_owned(), id);
            }
            if let Some(location) = location {
                result["location"] = Value::from(location);
            }
            result["status"] = Value::from(status.as_u16().to_string());
        }
        Err(failure) => {
            let (status, body) = failure.body();
            result["status"] = Value::from(status.as_u16().to_string());
            result["response"] = body;
        }
    }
    result
}

async fn one(
    scim: &Scim,
    request: &Request,
    operation: &Value,
    method: &str,
    ids: &HashMap<String, String>,
) -> Result<Done, Failure> {
    let path_text = operation
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| ScimError::InvalidSyntax("an operation needs a path".into()))?;
    let mut data = operation.get("data").cloned().unwrap_or(Value::Null);
    resolve(&mut data, ids)?;
    let segments: Vec<String> = path_text
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mut v = Value::from(s);
            resolve(&mut v, ids).map(|()| v.as_str().unwrap_or_default().to_owned())
        })
        .collect::<Result<_, _>>()?;
    let mut headers = request.headers.clone();
    headers.remove(header::IF_MATCH);
    if let Some(version) = operation.get("version").and_then(Value::as_str) {
        let value = HeaderValue::from_str(version)
            .map_err(|_| ScimError::InvalidVersion("version is not an entity tag".into()))?;
        headers.insert(header::IF_MATCH, value);
    }
    let sub = Request {
        live: request.live.clone(),
        token: request.token.clone(),
        base: request.base.clone(),
        query: HashMap::new(),
        headers,
    };
    let location = |kind: &str, id: &str| Some(format!("{}/{kind}/{id}", request.base));
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method, parts.as_slice()) {
        ("POST", ["Users"]) => {
            let id = users::create_row(scim, &sub, data).await?;
            Ok((StatusCode::CREATED, location("Users", &id), Some(id)))
        }
        ("POST", ["Groups"]) => {
            let id = groups::create_row(scim, &sub, data).await?;
            Ok((StatusCode::CREATED, location("Groups", &id), Some(id)))
        }
        ("PUT", ["Users", id]) => {
            users::replace_row(scim, &sub, id, data).await?;
            Ok((StatusCode::OK, location("Users", id), None))
        }
        ("PATCH", ["Users", id]) => {
            users::patch_row(scim, &sub, id, data).await?;
            Ok((StatusCode::OK, location("Users", id), None))
        }
        ("DELETE", ["Users", id]) => {
            users::delete(scim, &sub, id).await?;
            Ok((StatusCode::NO_CONTENT, location("Users", id), None))
        }
        ("PUT", ["Groups", id]) => {
            groups::replace_row(scim, &sub, id, data).await?;
            Ok((StatusCode::OK, location("Groups", id), None))
        }
        ("PATCH", ["Groups", id]) => {
            groups::patch_row(scim, &sub, id, data).await?;
            Ok((StatusCode::OK, location("Groups", id), None))
        }
        ("DELETE", ["Groups", id]) => {
            groups::delete(scim, &sub, id).await?;
            Ok((StatusCode::NO_CONTENT, location("Groups", id), None))
        }
        _ => Err(ScimError::InvalidValue(format!(
            "{method} {path_text} is not a bulk operation this server runs"
        ))
        .into()),
    }
}
