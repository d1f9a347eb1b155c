//! In-memory filter evaluation on a SCIM JSON resource (RFC 7644
//! §3.4.2.2): attribute names ignore case; strings compare ignoring case
//! unless the schema marks the attribute caseExact; a multi-valued
//! attribute matches when any of its values does (a complex one without
//! sub-attribute compares its `value`); `dateTime` attributes compare as
//! instants; `pr` needs a value that is not null, `""`, `[]` or `{}`.
//!
//! `returned: never` attributes (`password`) never match, so a filter
//! cannot be used to guess them.
//!
//! A comparison on an absent attribute is false, `ne` included; `not`
//! inverts that (the SQL translation does the same).

use super::{AttrPath, CompareOp, Filter, Value};
use crate::schema::{self, AttrType, Attribute, ResourceSchema, Returned};
use crate::{datetime, member};
use serde_json::Value as Json;
use std::cmp::Ordering;

/// True when `resource` matches `filter`. The schema (User or Group) is
/// chosen from the resource's `schemas`; see [`matches_in`].
pub fn matches(filter: &Filter, resource: &Json) -> bool {
    let is_group = member(resource, "schemas")
        .and_then(Json::as_array)
        .is_some_and(|urns| {
            urns.iter().any(|u| {
                u.as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(super::GROUP_URN))
            })
        });
    matches_in(
        filter,
        resource,
        if is_group {
            schema::group()
        } else {
            schema::user()
        },
    )
}

/// True when `resource` matches `filter`, reading attribute
/// characteristics (caseExact, dateTime) from `schema`. Attributes the
/// schema does not define are still compared, as case-insensitive values.
pub fn matches_in(filter: &Filter, resource: &Json, schema: &ResourceSchema) -> bool {
    eval(filter, &|path: &AttrPath| top_level(resource, schema, path))
}

/// True when one value of a complex attribute (an element of `emails`,
/// `members`, ...) matches a value filter whose paths are sub-attribute
/// names; `parent` gives their definitions. Used by PATCH paths.
pub(crate) fn element_matches(
    filter: &Filter,
    element: &Json,
    parent: Option<&'static Attribute>,
) -> bool {
    eval(filter, &|leaf: &AttrPath| {
        (
            spread(member(element, &leaf.name)),
            parent.and_then(|p| p.sub(&leaf.name)),
        )
    })
}

/// The values a path selects, and the definition of the compared leaf.
type Selected<'a> = (Vec<&'a Json>, Option<&'static Attribute>);

fn eval<'a>(filter: &Filter, select: &dyn Fn(&AttrPath) -> Selected<'a>) -> bool {
    match filter {
        Filter::And(a, b) => eval(a, select) && eval(b, select),
        Filter::Or(a, b) => eval(a, select) || eval(b, select),
        Filter::Not(inner) => !eval(inner, select),
        Filter::Present { path } => select(path).0.into_iter().any(is_present),
        Filter::Compare { path, op, value } => {
            let (values, definition) = select(path);
            compare_all(&values, *op, value, definition)
        }
        Filter::ValuePath { path, filter } => {
            let (elements, parent) = select(&AttrPath {
                sub: None,
                ..path.clone()
            });
            elements.into_iter().any(|element| {
                eval(filter, &|leaf: &AttrPath| {
                    let definition = parent.and_then(|p| p.sub(&leaf.name));
                    (spread(member(element, &leaf.name)), definition)
                })
            })
        }
    }
}

/// Top-level selection. For `emails` (complex, multi-valued, no
/// sub-attribute) the elements themselves are returned here; comparisons
/// then look at their `value` (see [`compare_all`]).
fn top_level<'a>(resource: &'a Json, schema: &ResourceSchema, path: &AttrPath) -> Selected<'a> {
    let located = schema.locate(path);
    // `returned: never` attributes (password) cannot be probed by filters.
    let never = located.is_some_and(|l| {
        l.attribute.returned == Returned::Never
            || l.sub.is_some_and(|s| s.returned == Returned::Never)
    });
    if never {
        return (Vec::new(), None);
    }
    let container = match (located.and_then(|l| l.extension), &path.urn) {
        (Some(extension), _) => member(resource, extension),
        (None, Some(urn)) if !super::is_core_urn(urn) => member(resource, urn),
        _ => Some(resource),
    };
    let Some(raw) = container.and_then(|c| member(c, &path.name)) else {
        return (Vec::new(), located.map(|l| l.sub.unwrap_or(l.attribute)));
    };
    match &path.sub {
        None => (spread(Some(raw)), located.map(|l| l.attribute)),
        Some(sub) => {
            let values = spread(Some(raw))
                .into_iter()
                .flat_map(|item| spread(member(item, sub)))
                .collect();
            (values, located.and_then(|l| l.sub))
        }
    }
}

/// An array's elements, or the value itself; nothing for absent or null.
fn spread(value: Option<&Json>) -> Vec<&Json> {
    match value {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(items)) => items.iter().filter(|v| !v.is_null()).collect(),
        Some(other) => vec![other],
    }
}

fn is_present(value: &Json) -> bool {
    match value {
        Json::Null => false,
        Json::String(s) => !s.is_empty(),
        Json::Array(items) => items.iter().any(is_present),
        Json::Object(members) => members.values().any(is_present),
        _ => true,
    }
}

fn compare_all(
    values: &[&Json],
    op: CompareOp,
    literal: &Value,
    definition: Option<&'static Attribute>,
) -> bool {
    // A complex attribute compared without sub-attribute compares `value`.
    let (values, definition): (Vec<&Json>, _) = match definition {
        Some(d) if d.kind == AttrType::Complex => (
            values
                .iter()
                .filter_map(|v| member(v, "value"))
                .filter(|v| !v.is_null())
                .collect(),
            d.sub("value"),
        ),
        _ => (
            values
                .iter()
                .map(|v| match v {
                    Json::Object(_) => member(v, "value").unwrap_or(v),
                    _ => v,
                })
                .filter(|v| !v.is_null())
                .collect(),
            definition,
        ),
    };
    if *literal == Value::Null {
        return match op {
            CompareOp::Eq => values.is_empty(),
            CompareOp::Ne => !values.is_empty(),
            _ => false,
        };
    }
    let case_exact = definition.is_some_and(|d| d.case_exact);
    let instant = definition.is_some_and(|d| d.kind == AttrType::DateTime);
    values
        .iter()
        .any(|value| compare(value, op, literal, case_exact, instant))
}

fn compare(value: &Json, op: CompareOp, literal: &Value, case_exact: bool, instant: bool) -> bool {
    match (value, literal) {
        (Json::String(have), Value::String(want)) => {
            if instant && !matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
                return match (datetime::parse_millis(have), datetime::parse_millis(want)) {
                    (Some(have), Some(want)) => ordered(have.cmp(&want), op),
                    _ => false,
                };
            }
            let (have, want) = if case_exact {
                (have.clone(), want.clone())
            } else {
                (have.to_lowercase(), want.to_lowercase())
            };
            match op {
                CompareOp::Co => have.contains(&want),
                CompareOp::Sw => have.starts_with(&want),
                CompareOp::Ew => have.ends_with(&want),
                _ => ordered(have.cmp(&want), op),
            }
        }
        (Json::Number(have), Value::Number(want)) => match (have.as_f64(), want.as_f64()) {
            (Some(have), Some(want)) => have
                .partial_cmp(&want)
                .is_some_and(|order| ordered(order, op)),
            _ => false,
        },
        (Json::Bool(have), Value::Bool(want)) => match op {
            CompareOp::Eq => have == want,
            CompareOp::Ne => have != want,
            _ => false,
        },
        _ => false,
    }
}

fn ordered(order: Ordering, op: CompareOp) -> bool {
    match op {
        CompareOp::Eq => order == Ordering::Equal,
        CompareOp::Ne => order != Ordering::Equal,
        CompareOp::Gt => order == Ordering::Greater,
        CompareOp::Ge => order != Ordering::Less,
        CompareOp::Lt => order == Ordering::Less,
        CompareOp::Le => order != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

#[cfg(test)]
mod tests;
