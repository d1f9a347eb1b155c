//! PATCH (RFC 7644 §3.5.2): parsing the request body into operations
//! ([`parse_request`]) and applying them to a resource ([`apply`]).
//!
//! [`apply`] is atomic: it works on a copy and writes the result back only
//! when every operation succeeded and the result validates against the
//! schema ([`crate::schema::validate`]: types, required attributes,
//! unknown attributes). Semantics, per operation:
//! - `add` to a multi-valued attribute appends the values not already
//!   present; to a single-valued complex attribute merges sub-attributes;
//!   otherwise sets. With a value filter and a sub-attribute that match
//!   nothing (`emails[type eq "work"].value`), a new element is made from
//!   the filter's `eq` comparisons and the value, as provisioning clients
//!   expect.
//! - `replace` sets (multi-valued: the whole array; complex single-valued:
//!   merges sub-attributes, leaving others unchanged); with a value filter
//!   it replaces the matched elements (or their sub-attribute) and fails
//!   with `noTarget` when nothing matches.
//! - `remove` unassigns; with a value filter removes the matched elements
//!   (`noTarget` when none match); with a `value` on a multi-valued
//!   attribute removes the listed elements (matched by `value`). Without
//!   path it fails with `noTarget`.
//! - readOnly attributes (`id`, `meta`, `groups`, ...) fail with
//!   `mutability` unless the operation would not change them; immutable
//!   sub-attributes (a Group member's `value`, `type`) cannot be targeted
//!   by a path (members are added and removed whole).
//! - a value set `"primary": true` turns the others' `primary` to false.
//!
//! - booleans sent as `"True"`/`"False"` and a single-valued complex
//!   attribute sent as its `value` alone (`manager`) are repaired, as
//!   Entra ID sends them; other wrong types fail validation.
//! - `password` lands in the resource as sent: the server must hash it and
//!   take it out before storing.
//!
//! [`apply`] returns the top-level attributes that changed (schema
//! spelling; extension attributes as `urn:...:name`) for the audit log.

use crate::filter::{self, element_matches, AttrPath, CompareOp, Filter};
use crate::schema::{validate, AttrType, Attribute, Mutability, ResourceSchema};
use crate::{member, member_key, ScimError};
use serde_json::{Map, Value};

#[cfg(test)]
mod tests;

/// The PatchOp message URN.
pub const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Most operations accepted in one request.
pub const MAX_OPERATIONS: usize = 1000;

/// A PATCH operation kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `add`
    Add,
    /// `replace`
    Replace,
    /// `remove`
    Remove,
}

/// A PATCH target: `attr`, `attr.sub`, `urn:...:attr`, `attr[filter]`,
/// `attr[filter].sub`. The sub-attribute of both forms is in `attr.sub`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute (with URN and sub-attribute, if any).
    pub attr: AttrPath,
    /// The value filter selecting elements of a multi-valued attribute.
    pub value_filter: Option<Filter>,
}

impl PatchPath {
    /// Parses a PATCH `path`. Fails with [`ScimError::InvalidPath`].
    pub fn parse(text: &str) -> Result<PatchPath, ScimError> {
        let text = text.trim();
        if text.len() > filter::MAX_FILTER_LEN {
            return Err(ScimError::InvalidPath("path too long".into()));
        }
        let Some(open) = text.find('[') else {
            let attr = AttrPath::parse_with(text, ScimError::InvalidPath)?;
            return Ok(PatchPath {
                attr,
                value_filter: None,
            });
        };
        let close = text
            .rfind(']')
            .filter(|close| *close > open)
            .ok_or_else(|| ScimError::InvalidPath("unbalanced '[' in path".into()))?;
        let sub = match &text[close + 1..] {
            "" => None,
            rest => {
                let sub = rest
                    .strip_prefix('.')
                    .filter(|sub| {
                        AttrPath::parse_with(sub, ScimError::InvalidPath)
                            .is_ok_and(|p| p.urn.is_none() && p.sub.is_none())
                    })
                    .ok_or_else(|| {
                        ScimError::InvalidPath(format!("'{}' after ']'", filter::shorten(rest)))
                    })?;
                Some(sub.to_string())
            }
        };
        match filter::parse(&text[..=close]) {
            Ok(Filter::ValuePath { path, filter }) => Ok(PatchPath {
                attr: AttrPath { sub, ..path },
                value_filter: Some(*filter),
            }),
            Ok(_) => Err(ScimError::InvalidPath(
                "a path holds one attribute[filter]".into(),
            )),
            Err(error) => Err(ScimError::InvalidPath(error.detail().to_string())),
        }
    }
}

/// One PATCH operation.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    /// What to do.
    pub op: Op,
    /// Where; `None` means the resource itself (add/replace only).
    pub path: Option<PatchPath>,
    /// The value (required for add and replace).
    pub value: Option<Value>,
}

/// Parses a PATCH request body. Fails with [`ScimError::InvalidSyntax`]
/// when the PatchOp URN or the `Operations` array is missing or an
/// operation is not an object with a known `op` (case-insensitive),
/// [`ScimError::InvalidPath`] for a malformed path,
/// [`ScimError::InvalidValue`] when add/replace lack a value (or, without
/// path, the value is not an object), [`ScimError::NoTarget`] for a
/// remove without path, [`ScimError::TooMany`] past [`MAX_OPERATIONS`].
pub fn parse_request(body: &Value) -> Result<Vec<PatchOp>, ScimError> {
    let syntax = |detail: &str| ScimError::InvalidSyntax(detail.into());
    if !body.is_object() {
        return Err(syntax("a PATCH body must be a JSON object"));
    }
    let has_urn = member(body, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|urns| {
            urns.iter().any(|u| {
                u.as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(PATCH_URN))
            })
        });
    if !has_urn {
        return Err(syntax(
            "'schemas' must contain urn:ietf:params:scim:api:messages:2.0:PatchOp",
        ));
    }
    let operations = member(body, "Operations")
        .and_then(Value::as_array)
        .filter(|ops| !ops.is_empty())
        .ok_or_else(|| syntax("'Operations' must be a non-empty array"))?;
    if operations.len() > MAX_OPERATIONS {
        return Err(ScimError::TooMany(format!(
            "more than {MAX_OPERATIONS} operations"
        )));
    }
    operations.iter().map(parse_operation).collect()
}

fn parse_operation(operation: &Value) -> Result<PatchOp, ScimError> {
    if !operation.is_object() {
        return Err(ScimError::InvalidSyntax(
            "each operation must be an object".into(),
        ));
    }
    let name = member(operation, "op")
        .and_then(Value::as_str)
        .ok_or_else(|| ScimError::InvalidSyntax("an operation needs 'op'".into()))?;
    let op = [
        ("add", Op::Add),
        ("replace", Op::Replace),
        ("remove", Op::Remove),
    ]
    .into_iter()
    .find(|(known, _)| known.eq_ignore_ascii_case(name))
    .map(|(_, op)| op)
    .ok_or_else(|| ScimError::InvalidSyntax(format!("unknown op '{}'", filter::shorten(name))))?;
    let path = match member(operation, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(PatchPath::parse(text)?),
        Some(_) => return Err(ScimError::InvalidPath("'path' must be a string".into())),
    };
    let value = member(operation, "value").filter(|v| !v.is_null()).cloned();
    match (op, &path, &value) {
        (Op::Remove, None, _) => Err(ScimError::NoTarget("remove needs a path".into())),
        (Op::Add | Op::Replace, _, None) => {
            Err(ScimError::InvalidValue(format!("{name} needs a value")))
        }
        (Op::Add | Op::Replace, None, Some(v)) if !v.is_object() => Err(ScimError::InvalidValue(
            format!("{name} without path needs an object value"),
        )),
        _ => Ok(PatchOp { op, path, value }),
    }
}

/// Applies `ops` to `resource` (atomically, see the module docs) and
/// returns the names of the top-level attributes that changed.
/// `resource` is the stored resource as the server would return it
/// (with `schemas`; `id` and `meta` may be present). Fails with the
/// errors listed in the module docs, or the [`validate`] error of the
/// result; `resource` is then unchanged.
pub fn apply(
    resource: &mut Value,
    ops: &[PatchOp],
    schema: &ResourceSchema,
) -> Result<Vec<String>, ScimError> {
    let mut work = resource.clone();
    if !work.is_object() {
        return Err(ScimError::InvalidSyntax(
            "the resource is not a JSON object".into(),
        ));
    }
    let mut changed = Vec::new();
    for operation in ops {
        match (&operation.path, operation.op) {
            (Some(path), op) => apply_one(
                &mut work,
                op,
                path,
                operation.value.as_ref(),
                schema,
                &mut changed,
            )?,
            (None, Op::Remove) => return Err(ScimError::NoTarget("remove needs a path".into())),
            (None, op) => {
                let members = operation
                    .value
                    .as_ref()
                    .and_then(Value::as_object)
                    .ok_or_else(|| {
                        ScimError::InvalidValue(
                            "add or replace without path needs an object".into(),
                        )
                    })?;
                for (key, value) in members {
                    if key.eq_ignore_ascii_case("schemas") {
                        continue;
                    }
                    if let Some(extension) = schema
                        .extensions
                        .iter()
                        .find(|e| e.id.eq_ignore_ascii_case(key))
                    {
                        let inner = value.as_object().ok_or_else(|| {
                            ScimError::InvalidValue(format!("'{}' must be an object", extension.id))
                        })?;
                        for (name, value) in inner {
                            let path = PatchPath {
                                attr: AttrPath {
                                    urn: Some(extension.id.into()),
                                    name: name.clone(),
                                    sub: None,
                                },
                                value_filter: None,
                            };
                            apply_one(&mut work, op, &path, Some(value), schema, &mut changed)?;
                        }
                        continue;
                    }
                    let path = PatchPath::parse(key).map_err(|_| {
                        ScimError::InvalidValue(format!(
                            "'{}' is not an attribute",
                            filter::shorten(key)
                        ))
                    })?;
                    apply_one(&mut work, op, &path, Some(value), schema, &mut changed)?;
                }
            }
        }
    }
    validate(&work, schema)?;
    *resource = work;
    Ok(changed)
}

fn apply_one(
    work: &mut Value,
    op: Op,
    path: &PatchPath,
    value: Option<&Value>,
    schema: &ResourceSchema,
    changed: &mut Vec<String>,
) -> Result<(), ScimError> {
    let located = schema.locate(&path.attr).ok_or_else(|| {
        ScimError::InvalidPath(format!(
            "unknown attribute '{}'",
            filter::shorten(&path.attr.to_string())
        ))
    })?;
    let attribute = located.attribute;
    let name = match located.extension {
        Some(extension) => format!("{extension}:{}", attribute.name),
        None => attribute.name.to_string(),
    };
    if op != Op::Remove && value.is_none() {
        return Err(ScimError::InvalidValue(format!(
            "{name}: add and replace need a value"
        )));
    }
    let Some(root) = work.as_object_mut() else {
        return Err(ScimError::InvalidSyntax(
            "the resource is not a JSON object".into(),
        ));
    };
    if let Some(extension) = located.extension {
        if op != Op::Remove {
            add_schema(root, extension);
        }
    }
    let container = match located.extension {
        None => root,
        Some(extension) => {
            let key = member_key(root, extension).unwrap_or_else(|| extension.to_string());
            if !root.contains_key(&key) && op == Op::Remove && path.value_filter.is_none() {
                return Ok(());
            }
            let slot = root.entry(key).or_insert_with(|| Value::Object(Map::new()));
            if slot.is_null() {
                *slot = Value::Object(Map::new());
            }
            slot.as_object_mut()
                .ok_or_else(|| ScimError::InvalidValue(format!("'{extension}' is not an object")))?
        }
    };
    let key = member_key(container, attribute.name).unwrap_or_else(|| attribute.name.to_string());
    let before = container.get(&key).cloned();

    let target = located.sub.unwrap_or(attribute);
    let coerced = value.map(|value| coerce(target, value));
    let value = coerced.as_ref();
    if attribute.mutability == Mutability::ReadOnly || target.mutability == Mutability::ReadOnly {
        // Clients echo `id` or `schemas`-level data in no-path replaces;
        // an operation that would not change a readOnly value is a no-op.
        let unchanged = op != Op::Remove
            && path.value_filter.is_none()
            && located.sub.is_none()
            && before.as_ref() == value;
        if unchanged {
            return Ok(());
        }
        return Err(ScimError::Mutability(format!(
            "'{}' is readOnly",
            path.attr
        )));
    }
    if target.mutability == Mutability::Immutable && located.sub.is_some() {
        return Err(ScimError::Mutability(format!(
            "'{}' is immutable",
            path.attr
        )));
    }
    if attribute.mutability == Mutability::Immutable
        && before.as_ref().is_some_and(|v| !v.is_null())
    {
        return Err(ScimError::Mutability(format!(
            "'{}' is immutable",
            attribute.name
        )));
    }

    let sub = located.sub.map(|s| s.name);
    match &path.value_filter {
        None => match sub {
            None => whole(
                container,
                &key,
                attribute.multi_valued,
                attribute.kind,
                op,
                value,
            ),
            Some(sub) => {
                if attribute.multi_valued {
                    let mut items = take_array(container, &key);
                    if items.is_empty() && op != Op::Remove {
                        items.push(Value::Object(Map::new()));
                    }
                    for item in &mut items {
                        set_sub(item, sub, op, value);
                    }
                    put_array(container, &key, items);
                } else {
                    let slot = container
                        .entry(key.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !slot.is_object() {
                        *slot = Value::Object(Map::new());
                    }
                    set_sub(slot, sub, op, value);
                    if slot.as_object().is_some_and(Map::is_empty) {
                        container.remove(&key);
                    }
                }
                Ok(())
            }
        },
        Some(value_filter) => {
            if !attribute.multi_valued || attribute.kind != AttrType::Complex {
                return Err(ScimError::InvalidPath(format!(
                    "'{}' is not a multi-valued complex attribute",
                    attribute.name
                )));
            }
            let mut items = take_array(container, &key);
            let hits: Vec<usize> = items
                .iter()
                .enumerate()
                .filter(|(_, item)| element_matches(value_filter, item, Some(attribute)))
                .map(|(index, _)| index)
                .collect();
            let result = filtered(&mut items, &hits, value_filter, sub, op, value, &path.attr);
            put_array(container, &key, items);
            result
        }
    }?;

    if attribute.multi_valued && attribute.sub("primary").is_some() {
        one_primary(container, &key, before.as_ref());
    }
    if container.get(&key) != before.as_ref() && !changed.contains(&name) {
        changed.push(name);
    }
    Ok(())
}

/// An operation on a whole attribute (no sub-attribute, no filter).
fn whole(
    container: &mut Map<String, Value>,
    key: &str,
    multi: bool,
    kind: AttrType,
    op: Op,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    match (op, value) {
        (Op::Remove, Some(remove)) if multi => {
            let targets: Vec<&Value> = match remove {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            let mut items = take_array(container, key);
            items.retain(|item| !targets.iter().any(|t| same_element(item, t)));
            put_array(container, key, items);
        }
        (Op::Remove, _) => {
            container.remove(key);
        }
        (_, None) => {}
        (Op::Add, Some(value)) if multi => {
            let mut items = take_array(container, key);
            for new in spread(value) {
                if !items.iter().any(|item| item == &new) {
                    items.push(new);
                }
            }
            put_array(container, key, items);
        }
        (Op::Replace, Some(value)) if multi => {
            put_array(container, key, spread(value));
        }
        (_, Some(Value::Object(members))) if kind == AttrType::Complex => {
            let slot = container
                .entry(key.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            match slot.as_object_mut() {
                Some(existing) => {
                    for (name, value) in members {
                        let name = member_key(existing, name).unwrap_or_else(|| name.clone());
                        existing.insert(name, value.clone());
                    }
                }
                None => *slot = Value::Object(members.clone()),
            }
        }
        (_, Some(value)) => {
            container.insert(key.to_string(), value.clone());
        }
    }
    Ok(())
}

/// An operation on the elements a value filter selected (`hits`).
fn filtered(
    items: &mut Vec<Value>,
    hits: &[usize],
    value_filter: &Filter,
    sub: Option<&str>,
    op: Op,
    value: Option<&Value>,
    path: &AttrPath,
) -> Result<(), ScimError> {
    if hits.is_empty() {
        let seed = if op == Op::Add {
            sub.and_then(|_| seed_element(value_filter))
        } else {
            None
        };
        let Some(mut element) = seed else {
            return Err(ScimError::NoTarget(format!(
                "no value of '{}' matches the filter",
                path.name
            )));
        };
        if let Some(sub) = sub {
            set_sub(&mut element, sub, op, value);
        }
        items.push(element);
        return Ok(());
    }
    match (op, sub) {
        (Op::Remove, None) => {
            for index in hits.iter().rev() {
                items.remove(*index);
            }
        }
        (Op::Add | Op::Replace, None) => {
            let replacement = value.filter(|v| v.is_object()).ok_or_else(|| {
                ScimError::InvalidValue(format!("'{path}[...]' needs an object value"))
            })?;
            for index in hits {
                items[*index] = replacement.clone();
            }
        }
        (_, Some(sub)) => {
            for index in hits {
                set_sub(&mut items[*index], sub, op, value);
            }
        }
    }
    Ok(())
}

/// Keeps at most one `"primary": true` value: the one this operation set
/// wins, the others become `false` (RFC 7644 §3.5.2).
fn one_primary(container: &mut Map<String, Value>, key: &str, before: Option<&Value>) {
    let is_primary = |v: &Value| member(v, "primary") == Some(&Value::Bool(true));
    let Some(Value::Array(items)) = container.get_mut(key) else {
        return;
    };
    if items.iter().filter(|v| is_primary(v)).count() <= 1 {
        return;
    }
    let old: Vec<&Value> = before
        .and_then(Value::as_array)
        .map(|list| list.iter().filter(|v| is_primary(v)).collect())
        .unwrap_or_default();
    let winner = items
        .iter()
        .rposition(|v| is_primary(v) && !old.contains(&v))
        .or_else(|| items.iter().rposition(is_primary));
    for (index, item) in items.iter_mut().enumerate() {
        if Some(index) != winner && is_primary(item) {
            set_sub(item, "primary", Op::Replace, Some(&Value::Bool(false)));
        }
    }
}

/// Repairs the two value shapes provisioning clients commonly send
/// (Entra ID): booleans as the strings `"True"`/`"False"`, and a
/// single-valued complex attribute with a `value` sub-attribute given as
/// that value alone (`"manager": "26118915"`). Anything else is left for
/// validation to judge.
fn coerce(definition: &Attribute, value: &Value) -> Value {
    match value {
        Value::Array(items) if definition.multi_valued => Value::Array(
            items
                .iter()
                .map(|item| coerce_single(definition, item))
                .collect(),
        ),
        single => coerce_single(definition, single),
    }
}

fn coerce_single(definition: &Attribute, value: &Value) -> Value {
    match (definition.kind, value) {
        (AttrType::Boolean, Value::String(text)) if text.eq_ignore_ascii_case("true") => {
            Value::Bool(true)
        }
        (AttrType::Boolean, Value::String(text)) if text.eq_ignore_ascii_case("false") => {
            Value::Bool(false)
        }
        (AttrType::Complex, Value::String(_))
            if !definition.multi_valued && definition.sub("value").is_some() =>
        {
            let mut members = Map::new();
            members.insert("value".into(), value.clone());
            Value::Object(members)
        }
        (AttrType::Complex, Value::Object(members)) => Value::Object(
            members
                .iter()
                .map(|(name, member)| {
                    let member = match definition.sub(name) {
                        Some(sub) => coerce(sub, member),
                        None => member.clone(),
                    };
                    (name.clone(), member)
                })
                .collect(),
        ),
        _ => value.clone(),
    }
}

/// The element `emails[type eq "work"]` describes: its `eq` comparisons.
fn seed_element(value_filter: &Filter) -> Option<Value> {
    let mut element = Map::new();
    let mut pending = vec![value_filter];
    while let Some(next) = pending.pop() {
        match next {
            Filter::And(a, b) => pending.extend([a.as_ref(), b.as_ref()]),
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value,
            } => {
                let json = match value {
                    filter::Value::String(s) => Value::from(s.clone()),
                    filter::Value::Bool(b) => Value::from(*b),
                    filter::Value::Number(n) => Value::Number(n.clone()),
                    filter::Value::Null => return None,
                };
                element.insert(path.name.clone(), json);
            }
            _ => return None,
        }
    }
    Some(Value::Object(element))
}

fn set_sub(item: &mut Value, sub: &str, op: Op, value: Option<&Value>) {
    let Some(members) = item.as_object_mut() else {
        return;
    };
    let key = member_key(members, sub).unwrap_or_else(|| sub.to_string());
    match (op, value) {
        (Op::Remove, _) => {
            members.remove(&key);
        }
        (_, Some(value)) => {
            members.insert(key, value.clone());
        }
        (_, None) => {}
    }
}

/// Two elements are the same for `remove` with a value when their `value`
/// sub-attributes are equal (or, for simple values, the values are).
fn same_element(item: &Value, target: &Value) -> bool {
    match (member(item, "value"), member(target, "value")) {
        (Some(a), Some(b)) => a == b,
        _ => item == target,
    }
}

fn spread(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

fn take_array(container: &mut Map<String, Value>, key: &str) -> Vec<Value> {
    match container.remove(key) {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![other],
    }
}

/// Puts an array back; an empty multi-valued attribute is unassigned.
fn put_array(container: &mut Map<String, Value>, key: &str, items: Vec<Value>) {
    if !items.is_empty() {
        container.insert(key.to_string(), Value::Array(items));
    }
}

fn add_schema(root: &mut Map<String, Value>, urn: &str) {
    let key = member_key(root, "schemas").unwrap_or_else(|| "schemas".into());
    if let Some(Value::Array(urns)) = root.get_mut(&key) {
        if !urns
            .iter()
            .any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(urn)))
        {
            urns.push(Value::from(urn));
        }
    }
}
