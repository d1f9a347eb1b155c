//! SCIM filters (RFC 7644 §3.4.2.2): the parser, the AST, evaluation on a
//! JSON resource ([`matches()`]) and translation to a parameterised SQL
//! `WHERE` clause ([`to_sql`]).
//!
//! The grammar is the RFC's ABNF, parsed by recursive descent: `or` binds
//! weaker than `and`, which binds weaker than `not (...)` and parentheses;
//! operators and the literals `true`, `false`, `null` are case-insensitive;
//! strings are JSON strings with JSON escapes; attribute paths may carry a
//! schema URN prefix and one sub-attribute. Filters longer than
//! [`MAX_FILTER_LEN`] bytes or nested deeper than [`MAX_NESTING`] are
//! refused, so a hostile filter cannot exhaust the stack.

mod eval;
mod sql;

pub(crate) use eval::element_matches;
pub use eval::{matches, matches_in};
pub use sql::{to_sql, SqlColumns, SqlParam, SqlTarget, SqlWhere};

use crate::ScimError;
use std::fmt;

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// Deepest nesting of parentheses, `not` and value paths accepted.
pub const MAX_NESTING: usize = 32;

/// The core User schema URN; a path prefixed with it names a core attribute.
pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema URN.
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The enterprise User extension URN (RFC 7643 §4.3).
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A parsed filter. Its `Display` form is canonical filter text that
/// parses back to the same tree (used in logs and audit details).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Both filters match.
    And(Box<Filter>, Box<Filter>),
    /// Either filter matches.
    Or(Box<Filter>, Box<Filter>),
    /// The filter does not match.
    Not(Box<Filter>),
    /// `path op value`.
    Compare {
        /// The attribute compared.
        path: AttrPath,
        /// The comparison.
        op: CompareOp,
        /// The literal compared with.
        value: Value,
    },
    /// `path pr`: the attribute has a non-empty value.
    Present {
        /// The attribute tested.
        path: AttrPath,
    },
    /// `path[filter]`: some value of the complex attribute `path` matches
    /// `filter`, whose paths name sub-attributes of `path`.
    ValuePath {
        /// The complex attribute.
        path: AttrPath,
        /// The filter applied to each of its values.
        filter: Box<Filter>,
    },
}

/// An attribute path: `[urn:]name[.sub]`, spelled as the client wrote it.
/// Compare with [`AttrPath::is`] or [`AttrPath::key`], which ignore case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URN prefix, if any (without the final `:`).
    pub urn: Option<String>,
    /// The attribute name.
    pub name: String,
    /// The sub-attribute name, if any.
    pub sub: Option<String>,
}

impl AttrPath {
    /// A path without URN.
    pub fn new(name: &str, sub: Option<&str>) -> AttrPath {
        AttrPath {
            urn: None,
            name: name.to_string(),
            sub: sub.map(str::to_string),
        }
    }

    /// Parses `[urn:]name[.sub]`. Fails with the error `error` builds
    /// (the caller picks `InvalidFilter` or `InvalidPath`).
    pub fn parse_with(text: &str, error: fn(String) -> ScimError) -> Result<AttrPath, ScimError> {
        let bad = || error(format!("'{}' is not an attribute path", shorten(text)));
        let has_urn = text
            .get(..4)
            .is_some_and(|head| head.eq_ignore_ascii_case("urn:"));
        let (urn, rest) = if has_urn {
            let colon = text.rfind(':').ok_or_else(bad)?;
            (Some(&text[..colon]), &text[colon + 1..])
        } else {
            (None, text)
        };
        if let Some(urn) = urn {
            if urn.len() <= 4 || urn.contains(|c: char| c.is_whitespace() || c.is_control()) {
                return Err(bad());
            }
        }
        let (name, sub) = match rest.split_once('.') {
            Some((name, sub)) => (name, Some(sub)),
            None => (rest, None),
        };
        if !is_attr_name(name) || !sub.is_none_or(is_attr_name) {
            return Err(bad());
        }
        Ok(AttrPath {
            urn: urn.map(str::to_string),
            name: name.to_string(),
            sub: sub.map(str::to_string),
        })
    }

    /// True when this path names `name` (and `sub`), ignoring case and a
    /// core User/Group URN prefix. Use [`AttrPath::key`] for extensions.
    pub fn is(&self, name: &str, sub: Option<&str>) -> bool {
        self.urn.as_deref().is_none_or(is_core_urn)
            && self.name.eq_ignore_ascii_case(name)
            && match (&self.sub, sub) {
                (None, None) => true,
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            }
    }

    /// The lowercase-normalised key: `name` or `name.sub`, prefixed with
    /// `urn:` and a colon when the URN is not the core User or Group schema
    /// (e.g. `emails.value`, `username`,
    /// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:employeenumber`).
    pub fn key(&self) -> String {
        let mut key = String::new();
        if let Some(urn) = self.urn.as_deref().filter(|urn| !is_core_urn(urn)) {
            key.push_str(&urn.to_ascii_lowercase());
            key.push(':');
        }
        key.push_str(&self.name.to_ascii_lowercase());
        if let Some(sub) = &self.sub {
            key.push('.');
            key.push_str(&sub.to_ascii_lowercase());
        }
        key
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        write!(f, "{}", self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Operands of and/or that are themselves and/or are parenthesised,
        // so the text needs no precedence rules to read back.
        let operand = |f: &mut fmt::Formatter<'_>, filter: &Filter| match filter {
            Filter::And(..) | Filter::Or(..) => write!(f, "({filter})"),
            other => write!(f, "{other}"),
        };
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => {
                operand(f, a)?;
                f.write_str(if matches!(self, Filter::And(..)) {
                    " and "
                } else {
                    " or "
                })?;
                operand(f, b)
            }
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Filter::Present { path } => write!(f, "{path} pr"),
            Filter::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
        }
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        })
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(text) => {
                write!(f, "{}", serde_json::Value::from(text.as_str()))
            }
            Value::Number(number) => write!(f, "{number}"),
            Value::Bool(flag) => write!(f, "{flag}"),
            Value::Null => f.write_str("null"),
        }
    }
}

/// True for the core User and Group schema URNs, ignoring case.
pub fn is_core_urn(urn: &str) -> bool {
    urn.eq_ignore_ascii_case(USER_URN) || urn.eq_ignore_ascii_case(GROUP_URN)
}

/// ATTRNAME = ALPHA *(nameChar), plus `$ref` (RFC 7643 errata).
fn is_attr_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some('$') => name.eq_ignore_ascii_case("$ref"),
        Some(c) if c.is_ascii_alphabetic() => {
            chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        }
        _ => false,
    }
}

/// Cuts client text quoted back in error details to a readable length.
pub(crate) fn shorten(text: &str) -> String {
    if text.chars().count() <= 64 {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(64).collect();
        cut.push('…');
        cut
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// equal
    Eq,
    /// not equal
    Ne,
    /// contains
    Co,
    /// starts with
    Sw,
    /// ends with
    Ew,
    /// greater than
    Gt,
    /// greater than or equal
    Ge,
    /// less than
    Lt,
    /// less than or equal
    Le,
}

impl CompareOp {
    fn from_word(word: &str) -> Option<CompareOp> {
        const OPS: [(&str, CompareOp); 9] = [
            ("eq", CompareOp::Eq),
            ("ne", CompareOp::Ne),
            ("co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("ew", CompareOp::Ew),
            ("gt", CompareOp::Gt),
            ("ge", CompareOp::Ge),
            ("lt", CompareOp::Lt),
            ("le", CompareOp::Le),
        ];
        OPS.iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(word))
            .map(|(_, op)| *op)
    }
}

/// A comparison literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A JSON string, escapes decoded.
    String(String),
    /// A JSON number.
    Number(serde_json::Number),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// Parses a filter. Fails with [`ScimError::InvalidFilter`] on syntax
/// errors, on filters over [`MAX_FILTER_LEN`] bytes and on nesting deeper
/// than [`MAX_NESTING`]. Attribute names are not checked against a schema
/// here; [`to_sql`] refuses the ones the server does not store.
pub fn parse(text: &str) -> Result<Filter, ScimError> {
    if text.len() > MAX_FILTER_LEN {
        return Err(invalid(format!(
            "filter longer than {MAX_FILTER_LEN} bytes"
        )));
    }
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let filter = parser.or_expr(false)?;
    match parser.peek() {
        None => Ok(filter),
        Some(token) => Err(invalid(format!("unexpected {}", token.describe()))),
    }
}

fn invalid(detail: String) -> ScimError {
    ScimError::InvalidFilter(detail)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Str(String),
    Word(String),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
            Token::OpenBracket => "'['".into(),
            Token::CloseBracket => "']'".into(),
            Token::Str(_) => "string".into(),
            Token::Word(word) => format!("'{}'", shorten(word)),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, ScimError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | '[' | ']' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '[' => Token::OpenBracket,
                    _ => Token::CloseBracket,
                });
            }
            '"' => {
                chars.next();
                let mut end = None;
                let mut escaped = false;
                for (at, c) in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        end = Some(at);
                        break;
                    }
                }
                let end = end.ok_or_else(|| invalid("unterminated string".into()))?;
                let decoded: String = serde_json::from_str(&text[start..=end])
                    .map_err(|_| invalid("malformed string escape".into()))?;
                tokens.push(Token::Str(decoded));
            }
            _ => {
                let mut end = text.len();
                while let Some(&(at, c)) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '"') {
                        end = at;
                        break;
                    }
                    chars.next();
                }
                tokens.push(Token::Word(text[start..end].to_string()));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn expect(&mut self, want: Token) -> Result<(), ScimError> {
        match self.next() {
            Some(token) if token == want => Ok(()),
            Some(token) => Err(invalid(format!(
                "expected {}, found {}",
                want.describe(),
                token.describe()
            ))),
            None => Err(invalid(format!(
                "expected {}, found the end",
                want.describe()
            ))),
        }
    }

    fn enter(&mut self) -> Result<(), ScimError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(invalid(format!("nesting deeper than {MAX_NESTING}")));
        }
        Ok(())
    }

    /// `inner` is true inside `attr[...]`, where paths are sub-attributes.
    fn or_expr(&mut self, inner: bool) -> Result<Filter, ScimError> {
        let mut terms = vec![self.and_expr(inner)?];
        while self.peek_keyword("or") {
            self.pos += 1;
            terms.push(self.and_expr(inner)?);
        }
        Ok(balanced(terms, &Filter::Or))
    }

    fn and_expr(&mut self, inner: bool) -> Result<Filter, ScimError> {
        let mut terms = vec![self.unary(inner)?];
        while self.peek_keyword("and") {
            self.pos += 1;
            terms.push(self.unary(inner)?);
        }
        Ok(balanced(terms, &Filter::And))
    }

    fn unary(&mut self, inner: bool) -> Result<Filter, ScimError> {
        if self.peek_keyword("not") && self.tokens.get(self.pos + 1) == Some(&Token::Open) {
            self.pos += 2;
            self.enter()?;
            let filter = self.or_expr(inner)?;
            self.expect(Token::Close)?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(filter)));
        }
        if self.peek() == Some(&Token::Open) {
            self.pos += 1;
            self.enter()?;
            let filter = self.or_expr(inner)?;
            self.expect(Token::Close)?;
            self.depth -= 1;
            return Ok(filter);
        }
        self.attr_expr(inner)
    }

    fn attr_expr(&mut self, inner: bool) -> Result<Filter, ScimError> {
        let path = match self.next() {
            Some(Token::Word(word)) => AttrPath::parse_with(&word, invalid)?,
            Some(token) => {
                return Err(invalid(format!(
                    "expected an attribute, found {}",
                    token.describe()
                )))
            }
            None => return Err(invalid("expected an attribute, found the end".into())),
        };
        if inner && (path.urn.is_some() || path.sub.is_some()) {
            return Err(invalid(format!(
                "'{path}' inside a value filter must be a plain sub-attribute name"
            )));
        }
        if self.peek() == Some(&Token::OpenBracket) {
            if inner {
                return Err(invalid("value filters cannot be nested".into()));
            }
            if path.sub.is_some() {
                return Err(invalid(format!("'{path}[...]' filters a sub-attribute")));
            }
            self.pos += 1;
            self.enter()?;
            let filter = self.or_expr(true)?;
            self.expect(Token::CloseBracket)?;
            self.depth -= 1;
            return Ok(Filter::ValuePath {
                path,
                filter: Box::new(filter),
            });
        }
        let op_word = match self.next() {
            Some(Token::Word(word)) => word,
            Some(token) => {
                return Err(invalid(format!(
                    "expected an operator after '{path}', found {}",
                    token.describe()
                )))
            }
            None => return Err(invalid(format!("expected an operator after '{path}'"))),
        };
        if op_word.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present { path });
        }
        let op = CompareOp::from_word(&op_word)
            .ok_or_else(|| invalid(format!("unknown operator '{}'", shorten(&op_word))))?;
        let value = match self.next() {
            Some(Token::Str(text)) => Value::String(text),
            Some(Token::Word(word)) => literal(&word)?,
            Some(token) => {
                return Err(invalid(format!(
                    "expected a value, found {}",
                    token.describe()
                )))
            }
            None => {
                return Err(invalid(format!(
                    "expected a value after '{path} {op_word}'"
                )))
            }
        };
        Ok(Filter::Compare { path, op, value })
    }
}

/// Joins a chain `a or b or c ...` into a balanced tree (the operators
/// are associative), so that a 4 KiB chain is about 9 levels deep rather
/// than 500 and evaluating, translating or dropping it needs little
/// stack. Chains of two or three keep the left-to-right shape.
fn balanced(mut terms: Vec<Filter>, join: &dyn Fn(Box<Filter>, Box<Filter>) -> Filter) -> Filter {
    if terms.len() == 1 {
        if let Some(only) = terms.pop() {
            return only;
        }
    }
    let right = terms.split_off(terms.len().div_ceil(2));
    join(
        Box::new(balanced(terms, join)),
        Box::new(balanced(right, join)),
    )
}

fn literal(word: &str) -> Result<Value, ScimError> {
    if word.eq_ignore_ascii_case("true") {
        return Ok(Value::Bool(true));
    }
    if word.eq_ignore_ascii_case("false") {
        return Ok(Value::Bool(false));
    }
    if word.eq_ignore_ascii_case("null") {
        return Ok(Value::Null);
    }
    if word.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        if let Ok(number) = serde_json::from_str::<serde_json::Number>(word) {
            return Ok(Value::Number(number));
        }
    }
    Err(invalid(format!(
        "'{}' is not a value (strings need double quotes)",
        shorten(word)
    )))
}

#[cfg(test)]
mod tests;
