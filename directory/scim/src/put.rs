//! PUT (RFC 7644 §3.5.1): replacing a resource with the body a client
//! sent. The body is validated ([`crate::schema::validate`]); readOnly
//! values in it are ignored and the stored ones kept (`id`, `meta`,
//! `groups`, readOnly sub-attributes such as `manager.displayName`);
//! immutable attributes may not change once set (left out, they keep
//! their value). Attributes the body
//! leaves out are unassigned, as the RFC says for PUT.
//!
//! `password` in the body ends up in the result as sent: the server must
//! hash it and take it out before storing.

use crate::schema::{validate, without_read_only, Attribute, Mutability, ResourceSchema};
use crate::{member, ScimError};
use serde_json::{Map, Value};

/// Returns the replacement resource and the top-level attributes whose
/// value changed (schema spelling; extension attributes as `urn:...:name`).
/// Fails with [`ScimError::InvalidValue`] / [`ScimError::InvalidSyntax`]
/// when the body does not validate and [`ScimError::Mutability`] when it
/// changes an immutable attribute.
pub fn replace(
    stored: &Value,
    body: &Value,
    schema: &ResourceSchema,
) -> Result<(Value, Vec<String>), ScimError> {
    validate(body, schema)?;
    let mut result = without_read_only(body, schema);
    let Some(out) = result.as_object_mut() else {
        return Err(ScimError::InvalidSyntax(
            "a resource must be a JSON object".into(),
        ));
    };
    for attribute in schema.top_level() {
        keep_stored(out, stored, attribute, None)?;
    }
    for extension in schema.extensions {
        let Some(stored_extension) = member(stored, extension.id).filter(|v| v.is_object()) else {
            continue;
        };
        let key = crate::member_key(out, extension.id).unwrap_or_else(|| extension.id.to_string());
        let slot = out.entry(key).or_insert_with(|| Value::Object(Map::new()));
        if let Some(inner) = slot.as_object_mut() {
            for attribute in extension.attributes {
                keep_stored(inner, stored_extension, attribute, Some(extension.id))?;
            }
        }
        if slot.as_object().is_some_and(Map::is_empty) {
            out.retain(|key, _| !key.eq_ignore_ascii_case(extension.id));
        }
    }
    let changed = changed_attributes(stored, &result, schema);
    Ok((result, changed))
}

/// Copies readOnly values from `stored`, checks immutable ones.
fn keep_stored(
    out: &mut Map<String, Value>,
    stored: &Value,
    attribute: &'static Attribute,
    extension: Option<&str>,
) -> Result<(), ScimError> {
    let old = member(stored, attribute.name).filter(|v| !v.is_null());
    let key = crate::member_key(out, attribute.name);
    match attribute.mutability {
        Mutability::ReadOnly => {
            if let Some(key) = key {
                out.remove(&key);
            }
            if let Some(old) = old {
                out.insert(attribute.name.to_string(), old.clone());
            }
        }
        Mutability::Immutable => {
            let new = key
                .as_ref()
                .and_then(|k| out.get(k))
                .filter(|v| !v.is_null());
            match (old, new) {
                // Left out: the set value stays (it cannot be unassigned).
                (Some(old), None) => {
                    let old = old.clone();
                    if let Some(key) = key {
                        out.remove(&key);
                    }
                    out.insert(attribute.name.to_string(), old);
                }
                (Some(old), Some(new)) if old != new => {
                    let name = match extension {
                        Some(urn) => format!("{urn}:{}", attribute.name),
                        None => attribute.name.to_string(),
                    };
                    return Err(ScimError::Mutability(format!("'{name}' is immutable")));
                }
                _ => {}
            }
        }
        Mutability::ReadWrite | Mutability::WriteOnly => {
            // readOnly sub-attributes of a single-valued complex attribute
            // (manager.displayName) keep their stored value.
            let read_only_subs: Vec<&str> = attribute
                .sub_attributes
                .iter()
                .filter(|s| s.mutability == Mutability::ReadOnly)
                .map(|s| s.name)
                .collect();
            if attribute.multi_valued || read_only_subs.is_empty() {
                return Ok(());
            }
            let (Some(key), Some(old)) = (key, old) else {
                return Ok(());
            };
            if let Some(new) = out.get_mut(&key).and_then(Value::as_object_mut) {
                for sub in read_only_subs {
                    if let Some(value) = member(old, sub) {
                        new.insert(sub.to_string(), value.clone());
                    }
                }
            }
        }
    }
    Ok(())
}

/// The top-level attributes (and extension attributes, as `urn:...:name`)
/// whose values differ between two versions of a resource, in schema
/// order. Names are compared ignoring case; `password` counts as changed
/// whenever `after` carries one.
pub fn changed_attributes(before: &Value, after: &Value, schema: &ResourceSchema) -> Vec<String> {
    let mut changed = Vec::new();
    let differs = |a: Option<&Value>, b: Option<&Value>| {
        a.filter(|v| !v.is_null()) != b.filter(|v| !v.is_null())
    };
    for attribute in schema.top_level() {
        let (old, new) = (
            member(before, attribute.name),
            member(after, attribute.name),
        );
        let write_only =
            attribute.mutability == Mutability::WriteOnly && new.is_some_and(|v| !v.is_null());
        if write_only || differs(old, new) {
            changed.push(attribute.name.to_string());
        }
    }
    for extension in schema.extensions {
        let (old, new) = (member(before, extension.id), member(after, extension.id));
        for attribute in extension.attributes {
            let old = old.and_then(|o| member(o, attribute.name));
            let new = new.and_then(|n| member(n, attribute.name));
            if differs(old, new) {
                changed.push(format!("{}:{}", extension.id, attribute.name));
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{group, user};
    use serde_json::json;

    const EXT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn stored() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", EXT],
            "id": "2819c223", "userName": "bjensen", "title": "Tour Guide",
            "groups": [{"value": "g1", "display": "Tour Guides"}],
            "meta": {"resourceType": "User", "version": "W/\"3\""},
            EXT: {"employeeNumber": "701984", "manager": {"value": "m1", "displayName": "John Smith"}}
        })
    }

    #[test]
    fn put_replaces_and_keeps_read_only_values() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", EXT],
            "id": "forged", "userName": "bjensen", "nickName": "Babs",
            "groups": [{"value": "admins"}],
            EXT: {"employeeNumber": "701984", "manager": {"value": "m2", "displayName": "Forged"}}
        });
        let result = replace(&stored(), &body, user());
        let Ok((resource, changed)) = result else {
            panic!("{result:?}")
        };
        assert_eq!(resource["id"], "2819c223");
        assert_eq!(
            resource["groups"],
            json!([{"value": "g1", "display": "Tour Guides"}])
        );
        assert_eq!(resource["meta"]["version"], "W/\"3\"");
        assert_eq!(
            resource[EXT]["manager"],
            json!({"value": "m2", "displayName": "John Smith"})
        );
        assert!(resource.get("title").is_none(), "left out means unassigned");
        assert_eq!(changed, ["nickName", "title", &format!("{EXT}:manager")]);
    }

    #[test]
    fn put_refuses_invalid_bodies() {
        let invalid =
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "title": "x"});
        assert!(matches!(
            replace(&stored(), &invalid, user()),
            Err(ScimError::InvalidValue(_))
        ));
        let tour = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g1", "displayName": "Tour Guides"});
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Guides", "members": [{"value": "u1"}]});
        let result = replace(&tour, &body, group());
        let Ok((resource, changed)) = result else {
            panic!("{result:?}")
        };
        assert_eq!(resource["id"], "g1");
        assert_eq!(changed, ["displayName", "members"]);
    }

    #[test]
    fn immutable_values_may_be_set_once_but_not_changed() {
        use crate::schema::{AttrType, Returned, Uniqueness};
        // No top-level attribute of the RFC 7643 tables is immutable, so
        // the rule is exercised on one made for the test.
        static BADGE: Attribute = Attribute {
            name: "badge",
            kind: AttrType::String,
            multi_valued: false,
            required: false,
            case_exact: true,
            mutability: Mutability::Immutable,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            description: "",
            canonical_values: &[],
            reference_types: &[],
            sub_attributes: &[],
        };
        let check = |stored: Value, new: Value| {
            let mut out = Map::new();
            out.insert("Badge".into(), new);
            keep_stored(&mut out, &stored, &BADGE, None).map(|()| Value::Object(out))
        };
        assert_eq!(check(json!({}), json!("b1")), Ok(json!({"Badge": "b1"})));
        assert_eq!(
            check(json!({"badge": "b1"}), json!("b1")),
            Ok(json!({"Badge": "b1"}))
        );
        assert_eq!(
            check(json!({"badge": "b1"}), Value::Null),
            Ok(json!({"badge": "b1"}))
        );
        assert_eq!(
            check(json!({"badge": "b1"}), json!("b2")),
            Err(ScimError::Mutability("'badge' is immutable".into()))
        );
    }

    #[test]
    fn changed_attributes_counts_passwords_and_ignores_nulls() {
        let before = json!({"userName": "a", "title": null});
        let after = json!({"userName": "a", "password": "secret"});
        assert_eq!(changed_attributes(&before, &after, user()), ["password"]);
    }
}
