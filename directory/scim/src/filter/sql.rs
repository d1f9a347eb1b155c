//! Translation of a filter into a parameterised SQL `WHERE` clause for
//! PostgreSQL. The server describes how each attribute is stored
//! ([`SqlColumns`]); every literal becomes a bind parameter ([`SqlParam`]),
//! never SQL text.
//!
//! Generated forms (`$n` is the next parameter):
//! - case-insensitive text: `lower(expr) = lower($n)` (also `<>`, `>`,
//!   `>=`, `<`, `<=`), `lower(expr) LIKE lower($n) ESCAPE '\'` for
//!   `co`/`sw`/`ew` with `%`, `_` and `\` in the value escaped. The server
//!   should index `lower(expr)` for the attributes clients filter on with
//!   `eq` (in practice `lower(login)` for `userName`, `lower(display_name)`
//!   for a Group's `displayName`); a `text_pattern_ops` index on the same
//!   expression serves `sw`.
//!   `gt`/`ge`/`lt`/`le` on text follow the column's collation, which may
//!   order differently from [`super::matches()`] (code point order).
//! - caseExact text (`id`, `externalId`): `expr = $n`, `expr LIKE $n ESCAPE '\'`.
//! - booleans: `expr = $n` / `expr <> $n` only.
//! - timestamps: `expr > $n` etc.; the server binds [`SqlParam::TimestampMs`]
//!   as a `timestamptz` and `expr` must be a `timestamptz` expression.
//! - `pr`: `(expr IS NOT NULL AND expr <> '')` for text, `expr IS NOT NULL`
//!   otherwise; `eq null` / `ne null`: `expr IS NULL` / `expr IS NOT NULL`.
//! - `not (f)`: `NOT COALESCE((f), false)`, so that an absent attribute
//!   (SQL NULL) counts as "does not match" inside `not` as it does in
//!   [`super::matches()`]. `ne` on an absent attribute does not match, in
//!   both.
//! - multi-valued text ([`SqlTarget::MultiText`]): the template's `{...}`
//!   part is the element expression; it is replaced by the condition on
//!   that expression. A value path `emails[type eq "work" and value co "x"]`
//!   becomes ONE subquery with both conditions, so they hold for the same
//!   element; its sub-attributes' templates must agree outside the braces.
//!
//! The clause assumes `standard_conforming_strings = on` (the default), so
//! `'\'` is one backslash.

use super::{shorten, AttrPath, CompareOp, Filter, Value};
use crate::{datetime, ScimError};

/// How the server stores filterable attributes.
pub trait SqlColumns {
    /// The storage of `path`, or `None` when it cannot be filtered on
    /// (the filter is then refused as `invalidFilter`). Compare with
    /// [`AttrPath::key`] or [`AttrPath::is`], which ignore case.
    fn column(&self, path: &AttrPath) -> Option<SqlTarget>;
}

/// The storage of one attribute, as SQL expressions written by the server
/// (trusted text, never client input). Each `expr` is spliced as an
/// operand (`expr = $1`, `expr IS NULL`), so it must be a column, a
/// function call, a `->>` chain or a parenthesised expression. A
/// `MultiText` template must hold no braces outside its `{...}` part
/// (braces inside it, as in `#>> '{a,b}'`, are fine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlTarget {
    /// A text expression, e.g. `login`.
    Text {
        /// The SQL expression.
        expr: String,
        /// Whether comparisons are case-sensitive (RFC 7643 caseExact).
        case_exact: bool,
    },
    /// A boolean expression, e.g. `active`.
    Bool(String),
    /// A `timestamptz` expression, e.g. `updated_at`.
    Timestamp(String),
    /// A text value inside a multi-valued attribute: an `EXISTS (...)`
    /// template whose `{...}` part (first `{` to last `}`) is the element
    /// expression, e.g. `EXISTS (SELECT 1 FROM jsonb_array_elements(profile->'emails') e WHERE {e->>'value'})`.
    MultiText {
        /// The template.
        exists_subquery_template: String,
        /// Whether comparisons are case-sensitive.
        case_exact: bool,
    },
}

/// A SQL condition with its parameters, numbered from `first_param`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlWhere {
    /// The condition, to be put after `WHERE` (or `AND`).
    pub clause: String,
    /// The parameters, to be bound as `$first_param`, `$first_param + 1`, ...
    pub params: Vec<SqlParam>,
}

/// A bind parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlParam {
    /// A text parameter.
    Text(String),
    /// A boolean parameter.
    Bool(bool),
    /// An instant in milliseconds since the Unix epoch, to bind as `timestamptz`.
    TimestampMs(i64),
}

/// Translates `filter` into a SQL condition. Fails with
/// [`ScimError::InvalidFilter`] when an attribute is unknown to `columns`
/// (naming it), when a value does not fit the attribute's type (e.g.
/// `active co "x"`, `meta.lastModified gt "yesterday"`), or when a value
/// path mixes storages.
pub fn to_sql(
    filter: &Filter,
    columns: &dyn SqlColumns,
    first_param: usize,
) -> Result<SqlWhere, ScimError> {
    let mut out = Translator {
        params: Vec::new(),
        first_param,
    };
    let mut resolve = |path: &AttrPath| -> Result<Column, ScimError> {
        let target = columns.column(path).ok_or_else(|| {
            ScimError::InvalidFilter(format!(
                "cannot filter on attribute '{}'",
                shorten(&path.to_string())
            ))
        })?;
        Column::from_target(target, path)
    };
    let clause = out.filter(filter, columns, &mut resolve)?;
    Ok(SqlWhere {
        clause,
        params: out.params,
    })
}

/// A resolved attribute: where its value is and how to compare it.
enum Column {
    Text {
        expr: String,
        case_exact: bool,
    },
    Bool(String),
    Timestamp(String),
    Multi {
        prefix: String,
        elem: String,
        suffix: String,
        case_exact: bool,
    },
}

impl Column {
    fn from_target(target: SqlTarget, path: &AttrPath) -> Result<Column, ScimError> {
        Ok(match target {
            SqlTarget::Text { expr, case_exact } => Column::Text { expr, case_exact },
            SqlTarget::Bool(expr) => Column::Bool(expr),
            SqlTarget::Timestamp(expr) => Column::Timestamp(expr),
            SqlTarget::MultiText {
                exists_subquery_template: template,
                case_exact,
            } => {
                let (open, close) = template
                    .find('{')
                    .zip(template.rfind('}'))
                    .filter(|(open, close)| open < close)
                    .ok_or_else(|| {
                        ScimError::InvalidFilter(format!(
                            "attribute '{path}' has no element expression in its storage template"
                        ))
                    })?;
                Column::Multi {
                    prefix: template[..open].to_string(),
                    elem: template[open + 1..close].to_string(),
                    suffix: template[close + 1..].to_string(),
                    case_exact,
                }
            }
        })
    }
}

struct Translator {
    params: Vec<SqlParam>,
    first_param: usize,
}

type Resolve<'a> = dyn FnMut(&AttrPath) -> Result<Column, ScimError> + 'a;

impl Translator {
    fn bind(&mut self, param: SqlParam) -> String {
        let n = self.first_param + self.params.len();
        self.params.push(param);
        format!("${n}")
    }

    fn filter(
        &mut self,
        filter: &Filter,
        columns: &dyn SqlColumns,
        resolve: &mut Resolve<'_>,
    ) -> Result<String, ScimError> {
        Ok(match filter {
            Filter::And(a, b) => {
                let (a, b) = (
                    self.filter(a, columns, resolve)?,
                    self.filter(b, columns, resolve)?,
                );
                format!("({a} AND {b})")
            }
            Filter::Or(a, b) => {
                let (a, b) = (
                    self.filter(a, columns, resolve)?,
                    self.filter(b, columns, resolve)?,
                );
                format!("({a} OR {b})")
            }
            Filter::Not(inner) => format!(
                "NOT COALESCE({}, false)",
                self.filter(inner, columns, resolve)?
            ),
            Filter::Present { path } => match resolve(path)? {
                Column::Text { expr, .. } => text_present(&expr),
                Column::Bool(expr) | Column::Timestamp(expr) => format!("{expr} IS NOT NULL"),
                Column::Multi {
                    prefix,
                    elem,
                    suffix,
                    ..
                } => format!("{prefix}{}{suffix}", text_present(&elem)),
            },
            Filter::Compare { path, op, value } => {
                let column = resolve(path)?;
                self.compare(path, column, *op, value)?
            }
            Filter::ValuePath { path, filter } => self.value_path(path, filter, columns)?,
        })
    }

    fn value_path(
        &mut self,
        parent: &AttrPath,
        filter: &Filter,
        columns: &dyn SqlColumns,
    ) -> Result<String, ScimError> {
        // Each sub-attribute resolves to its element expression; the
        // subquery around them must be the same for all, and is written once.
        let mut shared: Option<(String, String)> = None;
        let mut plain = false;
        let mut resolve = |leaf: &AttrPath| -> Result<Column, ScimError> {
            let full = AttrPath {
                urn: parent.urn.clone(),
                name: parent.name.clone(),
                sub: Some(leaf.name.clone()),
            };
            let target = columns.column(&full).ok_or_else(|| {
                ScimError::InvalidFilter(format!(
                    "cannot filter on attribute '{}'",
                    shorten(&full.to_string())
                ))
            })?;
            match Column::from_target(target, &full)? {
                Column::Multi {
                    prefix,
                    elem,
                    suffix,
                    case_exact,
                } => {
                    match &shared {
                        None if !plain => shared = Some((prefix, suffix)),
                        Some((p, s)) if *p == prefix && *s == suffix => {}
                        _ => return Err(mixed(parent)),
                    }
                    Ok(Column::Text {
                        expr: elem,
                        case_exact,
                    })
                }
                single => {
                    if shared.is_some() {
                        return Err(mixed(parent));
                    }
                    plain = true;
                    Ok(single)
                }
            }
        };
        let condition = self.filter(filter, columns, &mut resolve)?;
        Ok(match shared {
            Some((prefix, suffix)) => format!("{prefix}{condition}{suffix}"),
            None => condition,
        })
    }

    fn compare(
        &mut self,
        path: &AttrPath,
        column: Column,
        op: CompareOp,
        value: &Value,
    ) -> Result<String, ScimError> {
        let wrong = |what: &str| ScimError::InvalidFilter(format!("'{path}' {what}"));
        if *value == Value::Null {
            let is = match op {
                CompareOp::Eq => "IS NULL",
                CompareOp::Ne => "IS NOT NULL",
                _ => return Err(wrong("can only be compared with null using eq or ne")),
            };
            return Ok(match column {
                Column::Text { expr, .. } | Column::Bool(expr) | Column::Timestamp(expr) => {
                    format!("{expr} {is}")
                }
                Column::Multi {
                    prefix,
                    elem,
                    suffix,
                    ..
                } => {
                    let any = format!("{prefix}{elem} IS NOT NULL{suffix}");
                    if op == CompareOp::Eq {
                        format!("NOT {any}")
                    } else {
                        any
                    }
                }
            });
        }
        match column {
            Column::Text { expr, case_exact } => {
                let Value::String(text) = value else {
                    return Err(wrong("takes a string value"));
                };
                Ok(self.text_compare(&expr, case_exact, op, text))
            }
            Column::Multi {
                prefix,
                elem,
                suffix,
                case_exact,
            } => {
                let Value::String(text) = value else {
                    return Err(wrong("takes a string value"));
                };
                Ok(format!(
                    "{prefix}{}{suffix}",
                    self.text_compare(&elem, case_exact, op, text)
                ))
            }
            Column::Bool(expr) => {
                let Value::Bool(flag) = value else {
                    return Err(wrong("takes true or false"));
                };
                let sql_op = match op {
                    CompareOp::Eq => "=",
                    CompareOp::Ne => "<>",
                    _ => return Err(wrong("is boolean: only eq and ne apply")),
                };
                let n = self.bind(SqlParam::Bool(*flag));
                Ok(format!("{expr} {sql_op} {n}"))
            }
            Column::Timestamp(expr) => {
                let millis = match value {
                    Value::String(text) => datetime::parse_millis(text),
                    _ => None,
                }
                .ok_or_else(|| wrong("takes an RFC 3339 dateTime string"))?;
                let sql_op = ordering_op(op)
                    .ok_or_else(|| wrong("is a dateTime: co, sw and ew do not apply"))?;
                let n = self.bind(SqlParam::TimestampMs(millis));
                Ok(format!("{expr} {sql_op} {n}"))
            }
        }
    }

    fn text_compare(&mut self, expr: &str, case_exact: bool, op: CompareOp, text: &str) -> String {
        let (sql_op, param) = match ordering_op(op) {
            Some(sql_op) => (sql_op, text.to_string()),
            None => {
                let escaped = like_escape(text);
                let pattern = match op {
                    CompareOp::Co => format!("%{escaped}%"),
                    CompareOp::Sw => format!("{escaped}%"),
                    _ => format!("%{escaped}"),
                };
                ("LIKE", pattern)
            }
        };
        let n = self.bind(SqlParam::Text(param));
        let escape = if sql_op == "LIKE" { " ESCAPE '\\'" } else { "" };
        if case_exact {
            format!("{expr} {sql_op} {n}{escape}")
        } else {
            format!("lower({expr}) {sql_op} lower({n}){escape}")
        }
    }
}

fn mixed(parent: &AttrPath) -> ScimError {
    ScimError::InvalidFilter(format!("'{parent}[...]' mixes sub-attributes stored apart"))
}

fn text_present(expr: &str) -> String {
    format!("({expr} IS NOT NULL AND {expr} <> '')")
}

fn ordering_op(op: CompareOp) -> Option<&'static str> {
    Some(match op {
        CompareOp::Eq => "=",
        CompareOp::Ne => "<>",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => return None,
    })
}

/// Escapes the LIKE metacharacters `\`, `%` and `_` with `\`.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
