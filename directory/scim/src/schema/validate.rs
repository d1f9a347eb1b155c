//! Validation of a resource body (POST, PUT, and the result of a PATCH)
//! against its [`ResourceSchema`].
//!
//! Policy: attributes and sub-attributes the schema does not define are
//! refused with `invalidValue` naming them (Sigil stores only what it can
//! describe in `/Schemas`); `schemas` must list the core schema and only
//! known URNs; types are checked (strings, booleans, numbers, RFC 3339
//! dateTimes, arrays for multi-valued attributes, objects for complex
//! ones); `required` attributes must have a non-empty value. Values of
//! readOnly attributes (`id`, `meta`, `groups`, ...) are not checked: the
//! RFC says they are ignored on input, and [`without_read_only`] removes
//! them before storing.

use super::{AttrType, Attribute, Mutability, ResourceSchema};
use crate::{datetime, member, ScimError};
use serde_json::Value;

/// Checks `resource` against `schema`. Fails with
/// [`ScimError::InvalidValue`] naming the first offending attribute, or
/// [`ScimError::InvalidSyntax`] when the body is not a JSON object.
pub fn validate(resource: &Value, schema: &ResourceSchema) -> Result<(), ScimError> {
    let object = resource
        .as_object()
        .ok_or_else(|| ScimError::InvalidSyntax("a resource must be a JSON object".into()))?;
    check_schemas(resource, schema)?;
    for (key, value) in object {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some(extension) = schema
            .extensions
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case(key))
        {
            if value.is_null() {
                continue;
            }
            let members = value
                .as_object()
                .ok_or_else(|| invalid(format!("'{}' must be an object", extension.id)))?;
            for (name, value) in members {
                let attribute = extension
                    .attributes
                    .iter()
                    .find(|a| a.name.eq_ignore_ascii_case(name))
                    .ok_or_else(|| {
                        invalid(format!(
                            "unknown attribute '{}:{}'",
                            extension.id,
                            shorten(name)
                        ))
                    })?;
                check_value(
                    attribute,
                    value,
                    &format!("{}:{}", extension.id, attribute.name),
                )?;
            }
            continue;
        }
        let attribute = schema
            .top_level()
            .find(|a| a.name.eq_ignore_ascii_case(key))
            .ok_or_else(|| invalid(format!("unknown attribute '{}'", shorten(key))))?;
        check_value(attribute, value, attribute.name)?;
    }
    for attribute in schema.top_level().filter(|a| a.required) {
        let present = member(resource, attribute.name).is_some_and(|v| match v {
            Value::Null => false,
            Value::String(s) => !s.trim().is_empty(),
            _ => true,
        });
        if !present {
            return Err(invalid(format!("'{}' is required", attribute.name)));
        }
    }
    Ok(())
}

/// A copy of `resource` without the readOnly attributes and
/// sub-attributes (`id`, `meta`, `groups`, `manager.displayName`, ...),
/// which clients may send but the service provider sets (RFC 7643 §7).
pub fn without_read_only(resource: &Value, schema: &ResourceSchema) -> Value {
    let mut out = resource.clone();
    let Some(object) = out.as_object_mut() else {
        return out;
    };
    object.retain(|key, value| {
        if let Some(extension) = schema
            .extensions
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case(key))
        {
            if let Some(members) = value.as_object_mut() {
                members.retain(|name, value| {
                    match extension
                        .attributes
                        .iter()
                        .find(|a| a.name.eq_ignore_ascii_case(name))
                    {
                        Some(attribute) => strip(attribute, value),
                        None => true,
                    }
                });
            }
            return true;
        }
        match schema
            .top_level()
            .find(|a| a.name.eq_ignore_ascii_case(key))
        {
            Some(attribute) => strip(attribute, value),
            None => true,
        }
    });
    out
}

/// Removes readOnly sub-attributes; false when the whole attribute goes.
fn strip(attribute: &Attribute, value: &mut Value) -> bool {
    if attribute.mutability == Mutability::ReadOnly {
        return false;
    }
    if attribute.kind == AttrType::Complex {
        let items: Vec<&mut Value> = match value {
            Value::Array(items) => items.iter_mut().collect(),
            other => vec![other],
        };
        for item in items {
            if let Some(members) = item.as_object_mut() {
                members.retain(|name, _| {
                    attribute
                        .sub(name)
                        .is_none_or(|sub| sub.mutability != Mutability::ReadOnly)
                });
            }
        }
    }
    true
}

fn check_schemas(resource: &Value, schema: &ResourceSchema) -> Result<(), ScimError> {
    let urns = member(resource, "schemas")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("'schemas' must be an array of schema URNs".into()))?;
    let mut has_core = false;
    for urn in urns {
        let urn = urn
            .as_str()
            .ok_or_else(|| invalid("'schemas' must hold strings".into()))?;
        if !schema
            .schema_urns()
            .any(|known| known.eq_ignore_ascii_case(urn))
        {
            return Err(invalid(format!("unknown schema '{}'", shorten(urn))));
        }
        has_core |= urn.eq_ignore_ascii_case(schema.core.id);
    }
    if !has_core {
        return Err(invalid(format!(
            "'schemas' must include {}",
            schema.core.id
        )));
    }
    Ok(())
}

/// Checks one attribute's value (an array for multi-valued attributes).
pub(crate) fn check_value(
    attribute: &Attribute,
    value: &Value,
    name: &str,
) -> Result<(), ScimError> {
    if value.is_null() || attribute.mutability == Mutability::ReadOnly {
        return Ok(());
    }
    if attribute.multi_valued {
        let items = value
            .as_array()
            .ok_or_else(|| invalid(format!("'{name}' is multi-valued and must be an array")))?;
        return items
            .iter()
            .try_for_each(|item| check_single(attribute, item, name));
    }
    check_single(attribute, value, name)
}

/// Checks one value of an attribute (an element, for multi-valued ones).
pub(crate) fn check_single(
    attribute: &Attribute,
    value: &Value,
    name: &str,
) -> Result<(), ScimError> {
    let ok = match attribute.kind {
        AttrType::String | AttrType::Reference | AttrType::Binary => value.is_string(),
        AttrType::DateTime => value.as_str().and_then(datetime::parse_millis).is_some(),
        AttrType::Boolean => value.is_boolean(),
        AttrType::Integer => value.is_i64() || value.is_u64(),
        AttrType::Decimal => value.is_number(),
        AttrType::Complex => {
            let members = value
                .as_object()
                .ok_or_else(|| invalid(format!("'{name}' must be an object")))?;
            for (sub_name, sub_value) in members {
                let sub = attribute.sub(sub_name).ok_or_else(|| {
                    invalid(format!("unknown attribute '{name}.{}'", shorten(sub_name)))
                })?;
                check_value(sub, sub_value, &format!("{name}.{}", sub.name))?;
            }
            true
        }
    };
    if value.is_null() || ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "'{name}' must be of type {}",
            attribute.kind.as_str()
        )))
    }
}

fn invalid(detail: String) -> ScimError {
    ScimError::InvalidValue(detail)
}

fn shorten(text: &str) -> String {
    crate::filter::shorten(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{group, user};
    use serde_json::json;

    fn minimal_user() -> Value {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bjensen"})
    }

    #[test]
    fn accepts_a_full_user() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "id": "ignored", "meta": {"anything": 1},
            "externalId": "701984", "UserName": "bjensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "active": true, "password": "t1meMa$heen",
            "emails": [{"value": "b@example.com", "type": "work", "primary": true}],
            "addresses": [{"streetAddress": "100 Universal City Plaza", "type": "work"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "employeeNumber": "701984", "manager": {"value": "26118915", "displayName": "ignored"}
            }
        });
        assert_eq!(validate(&body, user()), Ok(()));
    }

    #[test]
    fn refuses_missing_required_and_schemas() {
        assert!(validate(
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}),
            user()
        )
        .is_err());
        assert!(validate(
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": " "}),
            user()
        )
        .is_err());
        assert!(validate(&json!({"userName": "a"}), user()).is_err());
        assert!(validate(&json!({"schemas": ["urn:x:y"], "userName": "a"}), user()).is_err());
        assert!(validate(&json!([1]), user()).is_err());
        let group_body =
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "members": []});
        assert_eq!(
            validate(&group_body, group()),
            Err(ScimError::InvalidValue("'displayName' is required".into()))
        );
    }

    #[test]
    fn refuses_wrong_types_and_unknown_attributes() {
        let with = |key: &str, value: Value| {
            let mut body = minimal_user();
            body[key] = value;
            validate(&body, user())
        };
        assert_eq!(
            with("active", json!("true")),
            Err(invalid("'active' must be of type boolean".into()))
        );
        assert!(with("emails", json!({"value": "a"})).is_err());
        assert!(with("emails", json!([{"value": 1}])).is_err());
        assert!(with("emails", json!([{"value": "a", "colour": "red"}])).is_err());
        assert!(with("name", json!("Barbara")).is_err());
        assert_eq!(
            with("favourite", json!("x")),
            Err(invalid("unknown attribute 'favourite'".into()))
        );
        assert!(with(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            json!({"badge": "1"})
        )
        .is_err());
        assert_eq!(with("title", Value::Null), Ok(()));
    }

    #[test]
    fn read_only_attributes_are_stripped() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "x", "meta": {}, "userName": "a", "groups": [{"value": "g"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "m", "displayName": "M"}}
        });
        assert_eq!(
            without_read_only(&body, user()),
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "m"}}
            })
        );
    }
}
