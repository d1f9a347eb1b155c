//! Bulk requests (RFC 7644 §3.7): parsing the request into typed
//! operations, resolving `bulkId:` references in their data, and building
//! the BulkResponse. The server runs the operations in order, as it would
//! single requests, and stops after `failOnErrors` failures.
//!
//! Operations are not reordered: a `bulkId:` reference to an operation
//! that comes later (or failed) is refused with `invalidValue` when it is
//! resolved ([`resolve_bulk_ids`]).

use crate::{member, ScimError};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The BulkRequest message URN.
pub const BULK_REQUEST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// The BulkResponse message URN.
pub const BULK_RESPONSE_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// The HTTP method of one bulk operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Create.
    Post,
    /// Replace.
    Put,
    /// Modify.
    Patch,
    /// Delete.
    Delete,
}

impl Method {
    /// The method name as written in responses.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// The resource type an operation addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/Users`
    Users,
    /// `/Groups`
    Groups,
}

/// One parsed bulk operation.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkOperation {
    /// The method.
    pub method: Method,
    /// `/Users` or `/Groups`.
    pub endpoint: Endpoint,
    /// The resource id (`/Users/{id}`); `None` for POST.
    pub id: Option<String>,
    /// The client's id for the resource a POST creates (required for POST).
    pub bulk_id: Option<String>,
    /// The ETag the client expects (`If-Match` of the operation).
    pub version: Option<String>,
    /// The body (required for POST, PUT and PATCH).
    pub data: Option<Value>,
}

/// A parsed bulk request.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkRequest {
    /// Stop after this many failed operations (`None`: run them all).
    pub fail_on_errors: Option<u64>,
    /// The operations, in the client's order.
    pub operations: Vec<BulkOperation>,
}

/// Parses a BulkRequest body. Fails with [`ScimError::PayloadTooLarge`]
/// (413, RFC 7644 §3.7.4) past `max_operations`, with
/// [`ScimError::InvalidSyntax`] for a malformed message or operation
/// (unknown method, path outside `/Users` and `/Groups`, POST without
/// `bulkId`, POST with an id, other methods without one, missing `data`,
/// duplicate `bulkId`), and [`ScimError::InvalidValue`] for a bad
/// `failOnErrors`. The payload size is the server's to check before
/// parsing the JSON.
pub fn parse_request(body: &Value, max_operations: usize) -> Result<BulkRequest, ScimError> {
    let syntax = |detail: String| ScimError::InvalidSyntax(detail);
    let has_urn = member(body, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|urns| {
            urns.iter().any(|u| {
                u.as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(BULK_REQUEST_URN))
            })
        });
    if !has_urn {
        return Err(syntax(format!("'schemas' must contain {BULK_REQUEST_URN}")));
    }
    let fail_on_errors = match member(body, "failOnErrors") {
        None | Some(Value::Null) => None,
        Some(value) => Some(value.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
            ScimError::InvalidValue("failOnErrors must be a positive integer".into())
        })?),
    };
    let operations = member(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| syntax("'Operations' must be an array".into()))?;
    if operations.len() > max_operations {
        return Err(ScimError::PayloadTooLarge(format!(
            "{} operations, the limit is {max_operations}",
            operations.len()
        )));
    }
    let mut seen = Vec::new();
    let mut parsed = Vec::with_capacity(operations.len());
    for (index, operation) in operations.iter().enumerate() {
        let operation = parse_operation(operation)
            .map_err(|detail| syntax(format!("operation {index}: {detail}")))?;
        if let Some(bulk_id) = &operation.bulk_id {
            if seen.contains(bulk_id) {
                return Err(syntax(format!(
                    "operation {index}: bulkId '{}' used twice",
                    crate::filter::shorten(bulk_id)
                )));
            }
            seen.push(bulk_id.clone());
        }
        parsed.push(operation);
    }
    Ok(BulkRequest {
        fail_on_errors,
        operations: parsed,
    })
}

fn parse_operation(operation: &Value) -> Result<BulkOperation, String> {
    let text = |name: &str| -> Result<Option<String>, String> {
        match member(operation, name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("'{name}' must be a string")),
        }
    };
    let method = text("method")?.ok_or("'method' is missing")?;
    let method = [Method::Post, Method::Put, Method::Patch, Method::Delete]
        .into_iter()
        .find(|m| m.as_str().eq_ignore_ascii_case(&method))
        .ok_or_else(|| format!("unknown method '{}'", crate::filter::shorten(&method)))?;
    let path = text("path")?.ok_or("'path' is missing")?;
    let (endpoint, id) = parse_path(&path)?;
    let bulk_id = text("bulkId")?;
    let version = text("version")?;
    let data = member(operation, "data").filter(|v| !v.is_null()).cloned();
    match method {
        Method::Post if id.is_some() => return Err("POST goes to /Users or /Groups".into()),
        Method::Post if bulk_id.as_deref().is_none_or(str::is_empty) => {
            return Err("POST needs a bulkId".into())
        }
        Method::Put | Method::Patch | Method::Delete if id.is_none() => {
            return Err(format!(
                "{} needs a resource path such as /Users/{{id}}",
                method.as_str()
            ))
        }
        _ => {}
    }
    if method != Method::Delete && !data.as_ref().is_some_and(Value::is_object) {
        return Err(format!("{} needs an object 'data'", method.as_str()));
    }
    Ok(BulkOperation {
        method,
        endpoint,
        id,
        bulk_id,
        version,
        data,
    })
}

fn parse_path(path: &str) -> Result<(Endpoint, Option<String>), String> {
    let rest = path.strip_prefix('/').ok_or("'path' must start with '/'")?;
    let (kind, id) = match rest.split_once('/') {
        Some((kind, id)) => (kind, Some(id)),
        None => (rest, None),
    };
    let endpoint = if kind.eq_ignore_ascii_case("Users") {
        Endpoint::Users
    } else if kind.eq_ignore_ascii_case("Groups") {
        Endpoint::Groups
    } else {
        return Err(format!(
            "unknown endpoint '/{}'",
            crate::filter::shorten(kind)
        ));
    };
    match id {
        Some(id) if id.is_empty() || id.contains(['/', '?', '#']) => Err(format!(
            "'{}' is not a resource path",
            crate::filter::shorten(path)
        )),
        Some(id) => Ok((endpoint, Some(id.to_string()))),
        None => Ok((endpoint, None)),
    }
}

/// Replaces every string `"bulkId:<id>"` in `data` with the resource id
/// created for that bulkId. Fails with [`ScimError::InvalidValue`] naming
/// a bulkId that `created` does not hold (unknown, later, or failed).
pub fn resolve_bulk_ids(
    data: &mut Value,
    created: &HashMap<String, String>,
) -> Result<(), ScimError> {
    match data {
        Value::String(text) => {
            if let Some(bulk_id) = text.strip_prefix("bulkId:") {
                let id = created.get(bulk_id).ok_or_else(|| {
                    ScimError::InvalidValue(format!(
                        "bulkId '{}' does not name a created resource",
                        crate::filter::shorten(bulk_id)
                    ))
                })?;
                *text = id.clone();
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter_mut()
            .try_for_each(|item| resolve_bulk_ids(item, created)),
        Value::Object(members) => members
            .values_mut()
            .try_for_each(|item| resolve_bulk_ids(item, created)),
        _ => Ok(()),
    }
}

/// The outcome of one operation, for the BulkResponse.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkResult {
    /// The operation's method.
    pub method: Method,
    /// The operation's bulkId, if it had one.
    pub bulk_id: Option<String>,
    /// The resource's URL (on success, except DELETE).
    pub location: Option<String>,
    /// The resource's new ETag (on success, except DELETE).
    pub version: Option<String>,
    /// The HTTP status the single request would have had.
    pub status: u16,
    /// The error body on failure ([`ScimError::body`]).
    pub response: Option<Value>,
}

impl BulkResult {
    /// The failed outcome of an operation.
    pub fn failed(operation: &BulkOperation, error: &ScimError) -> BulkResult {
        BulkResult {
            method: operation.method,
            bulk_id: operation.bulk_id.clone(),
            location: None,
            version: None,
            status: error.status(),
            response: Some(error.body()),
        }
    }
}

/// The BulkResponse for the operations that ran (status as a string, as
/// in RFC 7644 §3.7.3's examples).
pub fn response(results: &[BulkResult]) -> Value {
    let operations: Vec<Value> = results
        .iter()
        .map(|result| {
            let mut out = Map::new();
            out.insert("method".into(), Value::from(result.method.as_str()));
            let optional = [
                ("bulkId", &result.bulk_id),
                ("location", &result.location),
                ("version", &result.version),
            ];
            for (name, value) in optional {
                if let Some(value) = value {
                    out.insert(name.into(), Value::from(value.as_str()));
                }
            }
            out.insert("status".into(), Value::from(result.status.to_string()));
            if let Some(response) = &result.response {
                out.insert("response".into(), response.clone());
            }
            Value::Object(out)
        })
        .collect();
    json!({"schemas": [BULK_RESPONSE_URN], "Operations": operations})
}

#[cfg(test)]
mod tests;
