//! Attribute projection (RFC 7644 §3.4.2.5, §3.9): the `attributes` and
//! `excludedAttributes` query parameters applied to a resource about to be
//! returned, under the `returned` characteristic of each attribute
//! (RFC 7643 §7):
//! - `always` (`id`; `schemas` is always kept too) survives everything;
//! - `never` (`password`) is always removed;
//! - `default` is returned unless `attributes` is given and does not name
//!   it, or `excludedAttributes` names it;
//! - `request` only when `attributes` names it.
//!
//! Naming a sub-attribute (`name.givenName`, `emails.value`) keeps only
//! that sub-attribute of the complex attribute (of each element, for a
//! multi-valued one); naming an extension URN keeps the whole extension.
//! Attributes the schema does not describe are treated as `default`.

use crate::filter::{is_core_urn, AttrPath};
use crate::schema::{Attribute, ResourceSchema, Returned};
use crate::ScimError;
use serde_json::{Map, Value};

/// Parses a comma-separated attribute list (`attributes=userName,name.givenName`).
/// Empty items are skipped. Fails with [`ScimError::InvalidPath`] on a
/// malformed name.
pub fn parse_attribute_list(text: &str) -> Result<Vec<AttrPath>, ScimError> {
    if text.len() > crate::filter::MAX_FILTER_LEN {
        return Err(ScimError::InvalidPath("attribute list too long".into()));
    }
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| AttrPath::parse_with(item, ScimError::InvalidPath))
        .collect()
}

/// A normalised selector: which object (top or an extension), which
/// attribute (`None`: the whole extension), which sub-attribute.
struct Selector {
    container: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn selectors(paths: &[AttrPath], schema: &ResourceSchema) -> Vec<Selector> {
    paths
        .iter()
        .map(
            |path| match path.urn.as_deref().filter(|urn| !is_core_urn(urn)) {
                Some(urn) => {
                    let full = format!("{urn}:{}", path.name);
                    if path.sub.is_none()
                        && schema
                            .extensions
                            .iter()
                            .any(|e| e.id.eq_ignore_ascii_case(&full))
                    {
                        Selector {
                            container: Some(full.to_ascii_lowercase()),
                            name: None,
                            sub: None,
                        }
                    } else {
                        Selector {
                            container: Some(urn.to_ascii_lowercase()),
                            name: Some(path.name.to_ascii_lowercase()),
                            sub: path.sub.as_deref().map(str::to_ascii_lowercase),
                        }
                    }
                }
                None => Selector {
                    container: None,
                    name: Some(path.name.to_ascii_lowercase()),
                    sub: path.sub.as_deref().map(str::to_ascii_lowercase),
                },
            },
        )
        .collect()
}

/// What the selectors say about one attribute.
enum Named {
    Not,
    Whole,
    Subs(Vec<String>),
}

fn named(selectors: &[Selector], container: Option<&str>, name: &str) -> Named {
    let mut subs = Vec::new();
    for selector in selectors
        .iter()
        .filter(|s| s.container.as_deref() == container)
    {
        match (&selector.name, &selector.sub) {
            (None, _) => return Named::Whole,
            (Some(n), None) if n == name => return Named::Whole,
            (Some(n), Some(sub)) if n == name => subs.push(sub.clone()),
            _ => {}
        }
    }
    if subs.is_empty() {
        Named::Not
    } else {
        Named::Subs(subs)
    }
}

/// Returns the projection of `resource` (see the module docs). With
/// `attributes` empty the default set is returned, minus `excluded`.
pub fn project(
    resource: &Value,
    attributes: &[AttrPath],
    excluded: &[AttrPath],
    schema: &ResourceSchema,
) -> Value {
    let Some(object) = resource.as_object() else {
        return resource.clone();
    };
    let wanted = selectors(attributes, schema);
    let unwanted = selectors(excluded, schema);
    let choose = Choice {
        wanted: &wanted,
        unwanted: &unwanted,
        select: !attributes.is_empty(),
    };
    let mut out = Map::new();
    for (key, value) in object {
        if key.eq_ignore_ascii_case("schemas") {
            out.insert(key.clone(), value.clone());
            continue;
        }
        if let Some(extension) = schema
            .extensions
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case(key))
        {
            let Some(members) = value.as_object() else {
                continue;
            };
            let container = extension.id.to_ascii_lowercase();
            let mut kept = Map::new();
            for (name, value) in members {
                let definition = extension
                    .attributes
                    .iter()
                    .find(|a| a.name.eq_ignore_ascii_case(name));
                if let Some(value) = choose.attribute(Some(&container), name, definition, value) {
                    kept.insert(name.clone(), value);
                }
            }
            if !kept.is_empty() {
                out.insert(key.clone(), Value::Object(kept));
            }
            continue;
        }
        let definition = schema
            .top_level()
            .find(|a| a.name.eq_ignore_ascii_case(key));
        if let Some(value) = choose.attribute(None, key, definition, value) {
            out.insert(key.clone(), value);
        }
    }
    Value::Object(out)
}

struct Choice<'a> {
    wanted: &'a [Selector],
    unwanted: &'a [Selector],
    select: bool,
}

impl Choice<'_> {
    fn attribute(
        &self,
        container: Option<&str>,
        name: &str,
        definition: Option<&'static Attribute>,
        value: &Value,
    ) -> Option<Value> {
        let returned = definition.map_or(Returned::Default, |d| d.returned);
        let lower = name.to_ascii_lowercase();
        let value = match returned {
            Returned::Never => return None,
            Returned::Always => return Some(value.clone()),
            Returned::Request | Returned::Default => {
                match (named(self.wanted, container, &lower), self.select, returned) {
                    (Named::Whole, _, _) => value.clone(),
                    (Named::Subs(subs), _, _) => keep_subs(value, &subs),
                    (Named::Not, false, Returned::Default) => value.clone(),
                    (Named::Not, _, _) => return None,
                }
            }
        };
        let value = match named(self.unwanted, container, &lower) {
            Named::Whole => return None,
            Named::Subs(subs) => drop_subs(value, &subs, definition),
            Named::Not => value,
        };
        let value = drop_never_subs(value, definition);
        (!is_empty(&value)).then_some(value)
    }
}

fn each_object(value: Value, f: &dyn Fn(Map<String, Value>) -> Map<String, Value>) -> Value {
    match value {
        Value::Object(members) => Value::Object(f(members)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| match item {
                    Value::Object(members) => Value::Object(f(members)),
                    other => other,
                })
                .filter(|item| !is_empty(item))
                .collect(),
        ),
        other => other,
    }
}

fn keep_subs(value: &Value, subs: &[String]) -> Value {
    each_object(value.clone(), &|mut members| {
        members.retain(|name, _| subs.iter().any(|s| s.eq_ignore_ascii_case(name)));
        members
    })
}

fn drop_subs(value: Value, subs: &[String], definition: Option<&'static Attribute>) -> Value {
    each_object(value, &|mut members| {
        members.retain(|name, _| {
            let always = definition
                .and_then(|d| d.sub(name))
                .is_some_and(|s| s.returned == Returned::Always);
            always || !subs.iter().any(|s| s.eq_ignore_ascii_case(name))
        });
        members
    })
}

fn drop_never_subs(value: Value, definition: Option<&'static Attribute>) -> Value {
    let Some(definition) = definition.filter(|d| {
        d.sub_attributes
            .iter()
            .any(|s| s.returned == Returned::Never)
    }) else {
        return value;
    };
    each_object(value, &|mut members| {
        members.retain(|name, _| {
            definition
                .sub(name)
                .is_none_or(|s| s.returned != Returned::Never)
        });
        members
    })
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Object(members) => members.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{group, user};
    use serde_json::json;

    const EXT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn babs() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", EXT],
            "id": "2819c223",
            "userName": "bjensen",
            "password": "t1meMa$heen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "displayName": "Babs Jensen",
            "emails": [{"value": "b@example.com", "type": "work"}, {"value": "babs@jensen.org", "type": "home"}],
            "meta": {"resourceType": "User", "version": "W/\"3\""},
            EXT: {"employeeNumber": "701984", "department": "Tour Operations"}
        })
    }

    fn list(text: &str) -> Vec<AttrPath> {
        match parse_attribute_list(text) {
            Ok(list) => list,
            Err(error) => panic!("{text}: {error}"),
        }
    }

    #[test]
    fn parse_attribute_list_accepts_paths_and_skips_blanks() {
        assert_eq!(
            parse_attribute_list(" userName, name.givenName ,,"),
            Ok(vec![
                AttrPath::new("userName", None),
                AttrPath::new("name", Some("givenName"))
            ])
        );
        assert_eq!(parse_attribute_list(""), Ok(vec![]));
        assert!(parse_attribute_list("user name").is_err());
        assert!(parse_attribute_list("a.b.c").is_err());
    }

    #[test]
    fn default_set_drops_password_only() {
        let mut expected = babs();
        if let Some(object) = expected.as_object_mut() {
            object.remove("password");
        }
        assert_eq!(project(&babs(), &[], &[], user()), expected);
    }

    #[test]
    fn attributes_keep_the_named_ones_and_the_always_ones() {
        assert_eq!(
            project(
                &babs(),
                &list("userName,name.givenName,emails.value"),
                &[],
                user()
            ),
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", EXT],
                "id": "2819c223",
                "userName": "bjensen",
                "name": {"givenName": "Barbara"},
                "emails": [{"value": "b@example.com"}, {"value": "babs@jensen.org"}]
            })
        );
        // Asking for the password does not return it.
        assert_eq!(
            project(&babs(), &list("password"), &[], user()).get("password"),
            None
        );
    }

    #[test]
    fn extensions_by_urn_or_attribute() {
        let whole = project(&babs(), &list(EXT), &[], user());
        assert_eq!(
            whole[EXT],
            json!({"employeeNumber": "701984", "department": "Tour Operations"})
        );
        assert!(whole.get("userName").is_none());
        let one = project(&babs(), &list(&format!("{EXT}:department")), &[], user());
        assert_eq!(one[EXT], json!({"department": "Tour Operations"}));
        let excluded = project(
            &babs(),
            &[],
            &list(&format!("{EXT}:department,{EXT}:employeeNumber")),
            user(),
        );
        assert!(excluded.get(EXT).is_none());
    }

    #[test]
    fn excluded_attributes_cannot_remove_always_ones() {
        let projected = project(
            &babs(),
            &[],
            &list("id,emails,name.familyName,meta,schemas"),
            user(),
        );
        assert_eq!(projected["id"], "2819c223");
        assert!(projected.get("schemas").is_some());
        assert!(projected.get("emails").is_none());
        assert!(projected.get("meta").is_none());
        assert_eq!(projected["name"], json!({"givenName": "Barbara"}));
        assert_eq!(projected["userName"], "bjensen");
    }

    #[test]
    fn names_are_case_insensitive_and_groups_work() {
        let projected = project(&babs(), &list("USERNAME,Name.GivenName"), &[], user());
        assert_eq!(projected["userName"], "bjensen");
        assert_eq!(projected["name"], json!({"givenName": "Barbara"}));
        let tour = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g1",
            "displayName": "Tour Guides", "members": [{"value": "u1", "display": "Babs"}]
        });
        assert_eq!(
            project(&tour, &[], &list("members"), group()),
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g1", "displayName": "Tour Guides"})
        );
        assert_eq!(
            project(&tour, &list("members.value"), &[], group())["members"],
            json!([{"value": "u1"}])
        );
    }
}
