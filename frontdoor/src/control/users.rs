//! `/Users`: SCIM users over the directory's `users` rows. Columns hold
//! `userName` (login), `displayName`, `externalId`, `active` (status) and
//! the primary email; every other SCIM attribute (name, title, emails,
//! phone numbers, the enterprise extension, ...) is kept in `profile`, so
//! that token claim mappings can name it (`name.givenName`, `title`,
//! `department`).
//!
//! `active: false` and DELETE go through `user_deactivate`'s strong path:
//! when the answer leaves, no node issues for the user and their sessions
//! are revoked. Every write drops this node's cached copy of the user (its
//! next token reads the change); other nodes drop theirs on the change
//! notification. Every write is audited (token name, attribute names).
//!
//! `password` (RFC 7643 §4.1.1: writeOnly, returned never; issue 18) is
//! hashed with the tenant's argon2id parameters on the hashing pool, as
//! `user_password_set` does, and stored as the user's credential in the
//! transaction that writes the user; it is never stored as sent, never
//! answered, and audited as `password.set` (never its value). A PUT or
//! PATCH without it leaves the credential as it was.

use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use sigil_scim::filter::{
    AttrPath, Filter, SqlColumns, SqlTarget, Value as FilterValue, ENTERPRISE_URN, USER_URN,
};
use sigil_scim::{patch, put, schema, ScimError};

use directory::scim::{ScimUserRow, ScimUserWrite};
use sigil_proto::auth::Secret;

use super::types::{self, filter_sql, Answer, Failure, Request, Scim};
use crate::api::scim_ops::ScimChange;

/// Attributes stored in columns (or computed), not in `profile`.
const COLUMN_ATTRIBUTES: [&str; 9] = [
    "schemas",
    "id",
    "meta",
    "userName",
    "displayName",
    "externalId",
    "active",
    "password",
    "groups",
];

/// Where filterable User attributes are stored (table alias `u`).
struct UserColumns;

impl SqlColumns for UserColumns {
    fn column(&self, path: &AttrPath) -> Option<SqlTarget> {
        let text = |expr: &str, case_exact: bool| {
            Some(SqlTarget::Text {
                expr: expr.into(),
                case_exact,
            })
        };
        let multi = |attribute: &str| {
            Some(SqlTarget::MultiText {
                exists_subquery_template: format!(
                    "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(u.profile->'{attribute}') = 'array' THEN u.profile->'{attribute}' ELSE '[]'::jsonb END) e WHERE {{e->>'value'}})"
                ),
                case_exact: false,
            })
        };
        match path.key().as_str() {
            "id" => text("u.user_id", true),
            // Lower-cased by Postgres and indexed; the filter's values
            // are lower-cased by `fold_user_name` (see migration 0005).
            "username" => text("u.login_lower", true),
            "externalid" => text("u.external_id", true),
            "displayname" => text("u.display_name", false),
            "active" => Some(SqlTarget::Bool("(u.status = 'active')".into())),
            "meta.lastmodified" => Some(SqlTarget::Timestamp("u.updated_at".into())),
            "meta.created" => Some(SqlTarget::Timestamp("u.created_at".into())),
            "emails.value" | "emails" => multi("emails"),
            "title" => text("(u.profile->>'title')", false),
            "name.givenname" => text("(u.profile->'name'->>'givenName')", false),
            "name.familyname" => text("(u.profile->'name'->>'familyName')", false),
            _ => None,
        }
    }
}

/// Lower-cases the values compared with `userName`, which the SQL compares
/// with the stored lower-case login (an index Postgres uses under
/// row-level security, where an index on `lower(login)` is not used).
fn fold_user_name(filter: &mut Filter) {
    match filter {
        Filter::And(a, b) | Filter::Or(a, b) => {
            fold_user_name(a);
            fold_user_name(b);
        }
        Filter::Not(inner) => fold_user_name(inner),
        Filter::Compare {
            path,
            value: FilterValue::String(text),
            ..
        } if path.is("userName", None) => *text = text.to_lowercase(),
        _ => {}
    }
}

/// Longest `password` accepted, in bytes: as over the QUIC API, where a
/// longer one is refused before it is hashed.
const MAX_PASSWORD: usize = sigil_proto::request::MAX_FIELD;

/// The `password` of `resource`, if it carries one (null: none), checked;
/// the refusals never repeat it.
///
/// # Errors
/// [`ScimError::InvalidValue`] for an empty or oversized password, or one
/// that is not a string.
fn password(resource: &Value) -> Result<Option<Secret>, ScimError> {
    let value = resource.as_object().and_then(|object| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("password"))
            .map(|(_, v)| v)
    });
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => {
            Err(ScimError::InvalidValue("password must not be empty".into()))
        }
        Some(Value::String(text)) if text.len() > MAX_PASSWORD => Err(ScimError::InvalidValue(
            format!("password: at most {MAX_PASSWORD} bytes"),
        )),
        Some(Value::String(text)) => Ok(Some(Secret(text.clone()))),
        Some(_) => Err(ScimError::InvalidValue("password must be a string".into())),
    }
}

/// The hash of `password` (tenant's parameters, hashing pool), made before
/// the user's transaction opens: a refused hashing writes nothing.
async fn hashed(
    scim: &Scim,
    request: &Request,
    password: Option<&Secret>,
) -> Result<Option<String>, Failure> {
    match password {
        Some(password) => scim
            .appliance
            .scim_password_hash(&request.live, password)
            .await
            .map(Some)
            .map_err(Failure::wire),
        None => Ok(None),
    }
}

/// The SCIM resource of a row.
pub fn to_json(row: &ScimUserRow, base: &str) -> Value {
    let location = format!("{base}/Users/{}", row.user_id);
    let mut out = Map::new();
    let mut schemas = vec![Value::from(USER_URN)];
    if let Value::Object(profile) = &row.profile {
        if profile.contains_key(ENTERPRISE_URN) {
            schemas.push(Value::from(ENTERPRISE_URN));
        }
        for (k, v) in profile {
            out.insert(k.clone(), v.clone());
        }
    }
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert("id".into(), Value::from(row.user_id.clone()));
    if let Some(external) = &row.external_id {
        out.insert("externalId".into(), Value::from(external.clone()));
    }
    out.insert("userName".into(), Value::from(row.login.clone()));
    if !row.display_name.is_empty() {
        out.insert("displayName".into(), Value::from(row.display_name.clone()));
    }
    out.insert("active".into(), Value::from(row.status == "active"));
    if !row.groups.is_empty() {
        let groups: Vec<Value> = row
            .groups
            .iter()
            .map(|(id, name)| {
                json!({"value": id, "display": name, "$ref": format!("{base}/Groups/{id}"), "type": "direct"})
            })
            .collect();
        out.insert("groups".into(), Value::Array(groups));
    }
    out.insert(
        "meta".into(),
        types::meta(
            "User",
            row.created_ms,
            row.updated_ms,
            &location,
            row.version,
        ),
    );
    Value::Object(out)
}

/// What a resource (validated, readOnly values gone) stores.
fn to_write(resource: &Value) -> Result<ScimUserWrite, ScimError> {
    let object = resource
        .as_object()
        .ok_or_else(|| ScimError::InvalidSyntax("a User must be a JSON object".into()))?;
    let get = |name: &str| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let login = get("userName")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ScimError::InvalidValue("userName is required".into()))?
        .to_owned();
    let email = get("emails")
        .and_then(Value::as_array)
        .and_then(|emails| {
            emails
                .iter()
                .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
                .or_else(|| emails.first())
        })
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let profile: Map<String, Value> = object
        .iter()
        .filter(|(k, _)| !COLUMN_ATTRIBUTES.iter().any(|c| c.eq_ignore_ascii_case(k)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(ScimUserWrite {
        login,
        email,
        display_name: get("displayName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        active: get("active").and_then(Value::as_bool).unwrap_or(true),
        profile: Value::Object(profile),
        external_id: get("externalId").and_then(Value::as_str).map(str::to_owned),
    })
}

async fn load(scim: &Scim, request: &Request, id: &str) -> Result<ScimUserRow, Failure> {
    let scope = scim.scope(request).await?;
    scope
        .scim_user(id)
        .await
        .map_err(Failure::directory)?
        .ok_or_else(|| ScimError::NotFound(format!("no User {id}")).into())
}

async fn answer(
    scim: &Scim,
    request: &Request,
    id: &str,
    status: StatusCode,
) -> Result<Answer, Failure> {
    let row = load(scim, request, id).await?;
    let resource = to_json(&row, &request.base);
    let location = format!("{}/Users/{id}", request.base);
    let body = request.project(&resource, schema::user())?;
    Ok(types::resource(status, body, row.version, &location))
}

/// `GET /Users/{id}`.
///
/// # Errors
/// 404, 503.
pub async fn get(scim: &Scim, request: &Request, id: &str) -> Result<Answer, Failure> {
    answer(scim, request, id, StatusCode::OK).await
}

/// `GET /Users` with `filter`, `startIndex`, `count`, projection.
///
/// # Errors
/// 400 `invalidFilter`, 503.
pub async fn list(scim: &Scim, request: &Request) -> Result<Answer, Failure> {
    let mut filter = request.filter()?;
    if let Some(filter) = filter.as_mut() {
        fold_user_name(filter);
    }
    let (clause, params) = filter_sql(filter.as_ref(), &UserColumns)?;
    let (start, count) = types::paging(request)?;
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let reading = std::time::Instant::now();
    // The tenant scope's BEGIN goes with the reads: one round trip.
    let page = scim
        .appliance
        .directory()
        .scim_users_page(
            request.live.tenant.id,
            (&clause, &refs),
            i64::try_from(start).unwrap_or(i64::MAX),
            i64::try_from(count).unwrap_or(0),
        )
        .await
        .map_err(Failure::directory)?;
    scim.appliance
        .scim_metrics()
        .users_list_directory
        .record(reading.elapsed());
    let mut resources = Vec::with_capacity(page.rows.len());
    for row in &page.rows {
        resources.push(request.project(&to_json(row, &request.base), schema::user())?);
    }
    let n = resources.len();
    let body = sigil_scim::list::list_response(
        resources,
        u64::try_from(page.total).unwrap_or(0),
        start,
        n,
    );
    Ok(Answer::Json {
        status: StatusCode::OK,
        body,
        etag: None,
        location: None,
    })
}

fn attribute_names(resource: &Value) -> Vec<String> {
    resource
        .as_object()
        .map(|o| {
            o.keys()
                .filter(|k| !k.eq_ignore_ascii_case("schemas"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// `POST /Users`.
///
/// # Errors
/// 400 (`invalidValue`, `invalidSyntax`), 409 `uniqueness`, 503.
pub async fn create(scim: &Scim, request: &Request, body: Value) -> Result<Answer, Failure> {
    let id = create_row(scim, request, body).await?;
    answer(scim, request, &id, StatusCode::CREATED).await
}

/// Creates the user; returns its id (for `/Bulk` too).
///
/// # Errors
/// As [`create`].
pub async fn create_row(scim: &Scim, request: &Request, body: Value) -> Result<String, Failure> {
    let (id, write, attributes, password) = prepare_create(&body)?;
    let hash = hashed(scim, request, password.as_ref()).await?;
    let scope = scim.scope(request).await?;
    scope
        .insert_scim_user(&id, &write)
        .await
        .map_err(Failure::directory)?;
    if let Some(hash) = &hash {
        scope
            .set_password_hash(&id, hash, true)
            .await
            .map_err(Failure::directory)?;
    }
    scope.commit().await.map_err(Failure::directory)?;
    scim.appliance.forget_user(&request.live, &id);
    audit(scim, request, "create", &id, attributes).await?;
    audit_password(scim, request, &id, hash.is_some()).await?;
    Ok(id)
}

/// A creation's checks, without the directory: the new id, what to
/// store, the attribute names to audit and the password to hash.
///
/// # Errors
/// 400 (`invalidValue`, `invalidSyntax`), 500 when no id can be drawn.
pub fn prepare_create(
    body: &Value,
) -> Result<(String, ScimUserWrite, Vec<String>, Option<Secret>), Failure> {
    schema::validate(body, schema::user())?;
    let resource = schema::without_read_only(body, schema::user());
    let write = to_write(&resource)?;
    let password = password(&resource)?;
    let id = types::new_id()?;
    Ok((id, write, attribute_names(&resource), password))
}

/// Audits a password stored over SCIM as `user_password_set`'s is
/// (`password.set`, the token's name as caller), when one was.
async fn audit_password(
    scim: &Scim,
    request: &Request,
    id: &str,
    stored: bool,
) -> Result<(), Failure> {
    if !stored {
        return Ok(());
    }
    scim.appliance
        .audit_scim_password(&request.live, &request.token, id)
        .await
        .map_err(Failure::wire)
}

async fn audit(
    scim: &Scim,
    request: &Request,
    operation: &'static str,
    id: &str,
    attributes: Vec<String>,
) -> Result<(), Failure> {
    scim.appliance
        .audit_scim(
            &request.live,
            ScimChange {
                operation,
                resource: "User",
                id: id.to_owned(),
                attributes,
                token: request.token.clone(),
            },
        )
        .await
        .map_err(Failure::wire)
}

/// Stores `resource` over user `row`, then deactivates through the strong
/// path when it turned inactive.
async fn store(
    scim: &Scim,
    request: &Request,
    row: &ScimUserRow,
    resource: &Value,
    operation: &'static str,
    changed: Vec<String>,
) -> Result<(), Failure> {
    let write = to_write(resource)?;
    let hash = hashed(scim, request, password(resource)?.as_ref()).await?;
    let scope = scim.scope(request).await?;
    if !scope
        .update_scim_user(&row.user_id, &write)
        .await
        .map_err(Failure::directory)?
    {
        return Err(ScimError::NotFound(format!("no User {}", row.user_id)).into());
    }
    if let Some(hash) = &hash {
        scope
            .set_password_hash(&row.user_id, hash, true)
            .await
            .map_err(Failure::directory)?;
    }
    scope.commit().await.map_err(Failure::directory)?;
    scim.appliance.forget_user(&request.live, &row.user_id);
    if !write.active && row.status != "deactivated" {
        scim.appliance
            .scim_deactivate(&request.live, &request.token, &write.login)
            .await
            .map_err(Failure::wire)?;
    }
    audit(scim, request, operation, &row.user_id, changed).await?;
    audit_password(scim, request, &row.user_id, hash.is_some()).await
}

/// `PUT /Users/{id}`.
///
/// # Errors
/// 400, 404, 409, 412, 503.
pub async fn replace(
    scim: &Scim,
    request: &Request,
    id: &str,
    body: Value,
) -> Result<Answer, Failure> {
    replace_row(scim, request, id, body).await?;
    answer(scim, request, id, StatusCode::OK).await
}

/// PUT without the answer (for `/Bulk` too).
///
/// # Errors
/// As [`replace`].
pub async fn replace_row(
    scim: &Scim,
    request: &Request,
    id: &str,
    body: Value,
) -> Result<(), Failure> {
    let row = load(scim, request, id).await?;
    request.if_match(row.version)?;
    let stored = to_json(&row, &request.base);
    let (resource, changed) = put::replace(&stored, &body, schema::user())?;
    store(scim, request, &row, &resource, "replace", changed).await
}

/// `PATCH /Users/{id}`.
///
/// # Errors
/// 400, 404, 409, 412, 503.
pub async fn patch(
    scim: &Scim,
    request: &Request,
    id: &str,
    body: Value,
) -> Result<Answer, Failure> {
    patch_row(scim, request, id, body).await?;
    answer(scim, request, id, StatusCode::OK).await
}

/// PATCH without the answer (for `/Bulk` too).
///
/// # Errors
/// As [`patch`].
pub async fn patch_row(
    scim: &Scim,
    request: &Request,
    id: &str,
    body: Value,
) -> Result<(), Failure> {
    let ops = patch::parse_request(&body)?;
    let row = load(scim, request, id).await?;
    request.if_match(row.version)?;
    let mut resource = to_json(&row, &request.base);
    let changed = patch::apply(&mut resource, &ops, schema::user())?;
    let resource = schema::without_read_only(&resource, schema::user());
    store(scim, request, &row, &resource, "patch", changed).await
}

/// `DELETE /Users/{id}`: deactivated through the strong path (sessions
/// revoked on every node), then removed with its memberships.
///
/// # Errors
/// 404, 412, 503.
pub async fn delete(scim: &Scim, request: &Request, id: &str) -> Result<Answer, Failure> {
    let row = load(scim, request, id).await?;
    request.if_match(row.version)?;
    scim.appliance
        .scim_deactivate(&request.live, &request.token, &row.login)
        .await
        .map_err(Failure::wire)?;
    let scope = scim.scope(request).await?;
    scope
        .delete_scim_user(&row.user_id)
        .await
        .map_err(Failure::directory)?;
    scope.commit().await.map_err(Failure::directory)?;
    scim.appliance.forget_user(&request.live, &row.user_id);
    audit(scim, request, "delete", &row.user_id, Vec::new()).await?;
    Ok(Answer::NoContent)
}
