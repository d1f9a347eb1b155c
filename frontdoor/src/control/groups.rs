//! `/Groups`: SCIM groups over the directory's `groups` and `memberships`.
//! A member is a User of the same tenant (by its SCIM `id`); a member that
//! is not is refused (`invalidValue`). A change of members drops this
//! node's cached users of the tenant (their `groups` claims), other nodes
//! on the change notification.

use axum::http::StatusCode;
use serde_json::{json, Value};
use sigil_scim::filter::{AttrPath, SqlColumns, SqlTarget, GROUP_URN};
use sigil_scim::{patch, put, schema, ScimError};

use directory::scim::ScimGroupRow;

use super::types::{self, filter_sql, Answer, Failure, Request, Scim};
use crate::api::scim_ops::ScimChange;

/// Where filterable Group attributes are stored (table alias `g`).
struct GroupColumns;

impl SqlColumns for GroupColumns {
    fn column(&self, path: &AttrPath) -> Option<SqlTarget> {
        match path.key().as_str() {
            "id" => Some(SqlTarget::Text {
                expr: "g.group_id".into(),
                case_exact: true,
            }),
            "displayname" => Some(SqlTarget::Text {
                expr: "g.name".into(),
                case_exact: false,
            }),
            "externalid" => Some(SqlTarget::Text {
                expr: "g.external_id".into(),
                case_exact: true,
            }),
            "meta.lastmodified" => Some(SqlTarget::Timestamp("g.updated_at".into())),
            "meta.created" => Some(SqlTarget::Timestamp("g.created_at".into())),
            "members.value" | "members" => Some(SqlTarget::MultiText {
                exists_subquery_template: "EXISTS (SELECT 1 FROM memberships m WHERE m.tenant_id = g.tenant_id AND m.group_id = g.group_id AND {m.user_id})".into(),
                case_exact: true,
            }),
            _ => None,
        }
    }
}

/// The SCIM resource of a row.
pub fn to_json(row: &ScimGroupRow, base: &str) -> Value {
    let location = format!("{base}/Groups/{}", row.group_id);
    let members: Vec<Value> = row
        .members
        .iter()
        .map(|(id, login)| {
            json!({"value": id, "display": login, "$ref": format!("{base}/Users/{id}"), "type": "User"})
        })
        .collect();
    let mut out = json!({
        "schemas": [GROUP_URN],
        "id": row.group_id,
        "displayName": row.name,
        "members": members,
        "meta": types::meta("Group", row.created_ms, row.updated_ms, &location, row.version),
    });
    if let (Some(external), Some(object)) = (&row.external_id, out.as_object_mut()) {
        object.insert("externalId".into(), Value::from(external.clone()));
    }
    out
}

/// (displayName, externalId, member ids) of a validated resource.
fn to_write(resource: &Value) -> Result<(String, Option<String>, Vec<String>), ScimError> {
    let name = resource
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ScimError::InvalidValue("displayName is required".into()))?
        .to_owned();
    let external = resource
        .get("externalId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut members = Vec::new();
    for member in resource
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let value = member
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| ScimError::InvalidValue("a member needs a value".into()))?;
        members.push(value.to_owned());
    }
    Ok((name, external, members))
}

async fn load(scim: &Scim, request: &Request, id: &str) -> Result<ScimGroupRow, Failure> {
    let scope = scim.scope(request).await?;
    scope
        .scim_group(id)
        .await
        .map_err(Failure::directory)?
        .ok_or_else(|| ScimError::NotFound(format!("no Group {id}")).into())
}

async fn answer(
    scim: &Scim,
    request: &Request,
    id: &str,
    status: StatusCode,
) -> Result<Answer, Failure> {
    let row = load(scim, request, id).await?;
    let location = format!("{}/Groups/{id}", request.base);
    let body = request.project(&to_json(&row, &request.base), schema::group())?;
    Ok(types::resource(status, body, row.version, &location))
}

/// `GET /Groups/{id}`.
///
/// # Errors
/// 404, 503.
pub async fn get(scim: &Scim, request: &Request, id: &str) -> Result<Answer, Failure> {
    answer(scim, request, id, StatusCode::OK).await
}

/// `GET /Groups`.
///
/// # Errors
/// 400 `invalidFilter`, 503.
pub async fn list(scim: &Scim, request: &Request) -> Result<Answer, Failure> {
    let filter = request.filter()?;
    let (clause, params) = filter_sql(filter.as_ref(), &GroupColumns)?;
    let (start, count) = types::paging(request)?;
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let scope = scim.scope(request).await?;
    let page = scope
        .scim_groups(
            (&clause, &refs),
            i64::try_from(start).unwrap_or(i64::MAX),
            i64::try_from(count).unwrap_or(0),
        )
        .await
        .map_err(Failure::directory)?;
    drop(scope);
    let mut resources = Vec::with_capacity(page.rows.len());
    for row in &page.rows {
        resources.push(request.project(&to_json(row, &request.base), schema::group())?);
    }
    let n = resources.len();
    Ok(Answer::Json {
        status: StatusCode::OK,
        body: sigil_scim::list::list_response(
            resources,
            u64::try_from(page.total).unwrap_or(0),
            start,
            n,
        ),
        etag: None,
        location: None,
    })
}

async fn write(
    scim: &Scim,
    request: &Request,
    id: &str,
    resource: &Value,
    operation: &'static str,
    changed: Vec<String>,
) -> Result<(), Failure> {
    let (name, external, members) = to_write(resource)?;
    let scope = scim.scope(request).await?;
    scope
        .write_scim_group(
            id,
            &name,
            external.as_deref(),
            &members,
            operation == "create",
        )
        .await
        .map_err(Failure::directory)?;
    scope.commit().await.map_err(Failure::directory)?;
    scim.appliance.forget_users(&request.live);
    scim.appliance
        .audit_scim(
            &request.live,
            ScimChange {
                operation,
                resource: "Group",
                id: id.to_owned(),
                attributes: changed,
                token: request.token.clone(),
            },
        )
        .await
        .map_err(Failure::wire)
}

/// `POST /Groups`.
///
/// # Errors
/// 400, 409, 503.
pub async fn create(scim: &Scim, request: &Request, body: Value) -> Result<Answer, Failure> {
    let id = create_row(scim, request, body).await?;
    answer(scim, request, &id, StatusCode::CREATED).await
}

/// Creates the group; returns its id (for `/Bulk` too).
///
/// # Errors
/// As [`create`].
pub async fn create_row(scim: &Scim, request: &Request, body: Value) -> Result<String, Failure> {
    schema::validate(&body, schema::group())?;
    let resource = schema::without_read_only(&body, schema::group());
    let id = types::new_id()?;
    let names = resource
        .as_object()
        .map(|o| o.keys().filter(|k| *k != "schemas").cloned().collect())
        .unwrap_or_default();
    write(scim, request, &id, &resource, "create", names).await?;
    Ok(id)
}

/// `PUT /Groups/{id}`.
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

/// PUT without the answer.
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
    let (resource, changed) = put::replace(&to_json(&row, &request.base), &body, schema::group())?;
    write(scim, request, id, &resource, "replace", changed).await
}

/// `PATCH /Groups/{id}` (e.g. `remove` of `members[value eq "..."]`).
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

/// PATCH without the answer.
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
    let changed = patch::apply(&mut resource, &ops, schema::group())?;
    write(scim, request, id, &resource, "patch", changed).await
}

/// `DELETE /Groups/{id}`.
///
/// # Errors
/// 404, 412, 503.
pub async fn delete(scim: &Scim, request: &Request, id: &str) -> Result<Answer, Failure> {
    let row = load(scim, request, id).await?;
    request.if_match(row.version)?;
    let scope = scim.scope(request).await?;
    if scope
        .delete_scim_group(id)
        .await
        .map_err(Failure::directory)?
        .is_none()
    {
        return Err(ScimError::NotFound(format!("no Group {id}")).into());
    }
    scope.commit().await.map_err(Failure::directory)?;
    scim.appliance.forget_users(&request.live);
    scim.appliance
        .audit_scim(
            &request.live,
            ScimChange {
                operation: "delete",
                resource: "Group",
                id: id.to_owned(),
                attributes: Vec::new(),
                token: request.token.clone(),
            },
        )
        .await
        .map_err(Failure::wire)?;
    Ok(Answer::NoContent)
}
