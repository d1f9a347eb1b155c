//! Parser tests: the RFC 7644 §3.4.2.2 examples, precedence, escapes,
//! limits, and a property test that the parser never panics.

use super::*;
use proptest::prelude::*;

fn cmp(name: &str, sub: Option<&str>, op: CompareOp, value: Value) -> Filter {
    Filter::Compare {
        path: AttrPath::new(name, sub),
        op,
        value,
    }
}

fn s(text: &str) -> Value {
    Value::String(text.into())
}

fn and(a: Filter, b: Filter) -> Filter {
    Filter::And(Box::new(a), Box::new(b))
}

fn or(a: Filter, b: Filter) -> Filter {
    Filter::Or(Box::new(a), Box::new(b))
}

fn present(name: &str) -> Filter {
    Filter::Present {
        path: AttrPath::new(name, None),
    }
}

#[test]
fn rfc_7644_examples_parse() {
    let examples = [
        r#"userName eq "bjensen""#,
        r#"name.familyName co "O'Malley""#,
        r#"userName sw "J""#,
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
        r#"title pr"#,
        r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
        r#"title pr and userType eq "Employee""#,
        r#"title pr or userType eq "Intern""#,
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType eq "Employee" and (emails.type eq "work")"#,
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
    ];
    for example in examples {
        assert!(parse(example).is_ok(), "{example}: {:?}", parse(example));
    }
}

#[test]
fn simple_comparison_and_sub_attribute() {
    assert_eq!(
        parse(r#"userName eq "bjensen""#),
        Ok(cmp("userName", None, CompareOp::Eq, s("bjensen")))
    );
    assert_eq!(
        parse(r#"name.familyName co "O'Malley""#),
        Ok(cmp(
            "name",
            Some("familyName"),
            CompareOp::Co,
            s("O'Malley")
        ))
    );
}

#[test]
fn urn_prefixed_paths_split_at_the_last_colon() {
    let filter = parse(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
    );
    let Ok(Filter::Compare { path, .. }) = filter else {
        panic!("{filter:?}")
    };
    assert_eq!(path.urn.as_deref(), Some(ENTERPRISE_URN));
    assert_eq!(path.name, "manager");
    assert_eq!(path.sub.as_deref(), Some("value"));
    assert_eq!(
        path.key(),
        format!("{}:manager.value", ENTERPRISE_URN.to_ascii_lowercase())
    );
    let core = parse(r#"URN:IETF:params:scim:schemas:core:2.0:User:UserName sw "J""#);
    let Ok(Filter::Compare { path, .. }) = core else {
        panic!("{core:?}")
    };
    assert!(path.is("username", None));
    assert_eq!(path.key(), "username");
}

#[test]
fn operators_and_keywords_are_case_insensitive() {
    assert_eq!(
        parse(r#"userName EQ "x" AND title Pr"#),
        Ok(and(
            cmp("userName", None, CompareOp::Eq, s("x")),
            present("title")
        ))
    );
    assert_eq!(
        parse("active Eq TRUE"),
        Ok(cmp("active", None, CompareOp::Eq, Value::Bool(true)))
    );
    assert_eq!(
        parse("title eq NULL"),
        Ok(cmp("title", None, CompareOp::Eq, Value::Null))
    );
    assert!(matches!(
        parse("x ge 1.5e3"),
        Ok(Filter::Compare {
            value: Value::Number(_),
            op: CompareOp::Ge,
            ..
        })
    ));
}

#[test]
fn long_chains_become_balanced_trees() {
    let chain = |n: usize| vec!["a pr"; n].join(" or ");
    fn depth(filter: &Filter) -> usize {
        match filter {
            Filter::And(a, b) | Filter::Or(a, b) => 1 + depth(a).max(depth(b)),
            Filter::Not(inner) => 1 + depth(inner),
            Filter::ValuePath { filter, .. } => 1 + depth(filter),
            _ => 1,
        }
    }
    assert_eq!(
        parse(&chain(3)),
        Ok(or(or(present("a"), present("a")), present("a")))
    );
    assert_eq!(parse(&chain(512)).map(|f| depth(&f)), Ok(10));
}

#[test]
fn and_binds_tighter_than_or() {
    assert_eq!(
        parse("a pr or b pr and c pr"),
        Ok(or(present("a"), and(present("b"), present("c"))))
    );
    assert_eq!(
        parse("a pr and b pr or c pr"),
        Ok(or(and(present("a"), present("b")), present("c")))
    );
    assert_eq!(
        parse("(a pr or b pr) and c pr"),
        Ok(and(or(present("a"), present("b")), present("c")))
    );
}

#[test]
fn not_requires_parentheses_and_negates_the_group() {
    assert_eq!(
        parse("not (a pr or b pr) and c pr"),
        Ok(and(
            Filter::Not(Box::new(or(present("a"), present("b")))),
            present("c")
        ))
    );
    assert_eq!(parse("not(a pr)"), Ok(Filter::Not(Box::new(present("a")))));
    // `not` without a group is an attribute named "not".
    assert!(parse("not a pr").is_err());
}

#[test]
fn value_paths_hold_sub_attribute_filters() {
    assert_eq!(
        parse(r#"emails[type eq "work" and value co "@example.com"]"#),
        Ok(Filter::ValuePath {
            path: AttrPath::new("emails", None),
            filter: Box::new(and(
                cmp("type", None, CompareOp::Eq, s("work")),
                cmp("value", None, CompareOp::Co, s("@example.com"))
            )),
        })
    );
    assert!(parse(r#"emails[type[value pr]]"#).is_err());
    assert!(parse(r#"emails[name.x eq "a"]"#).is_err());
    assert!(parse(r#"emails.value[type eq "a"]"#).is_err());
    assert!(parse(r#"emails[type eq "a""#).is_err());
}

#[test]
fn strings_use_json_escapes() {
    assert_eq!(
        parse(r#"displayName eq "a\"b\\c\u00e9\n""#),
        Ok(cmp("displayName", None, CompareOp::Eq, s("a\"b\\cé\n")))
    );
    assert!(parse(r#"displayName eq "bad \q escape""#).is_err());
    assert!(parse(r#"displayName eq "unterminated"#).is_err());
    assert_eq!(
        parse(r#"displayName eq "it's (not) [a] filter""#),
        Ok(cmp(
            "displayName",
            None,
            CompareOp::Eq,
            s("it's (not) [a] filter")
        ))
    );
}

#[test]
fn malformed_filters_are_invalid_filter_errors() {
    for bad in [
        "",
        "userName",
        "userName eq",
        r#"userName xx "a""#,
        "userName eq bjensen",
        r#"userName eq 'bjensen'"#,
        r#"(userName eq "a""#,
        r#"userName eq "a")"#,
        r#"userName eq "a" and"#,
        r#"userName eq "a" "b""#,
        r#"1name eq "a""#,
        r#"user name eq "a""#,
        r#"name.given.x eq "a""#,
        r#"urn: eq "a""#,
        r#"éname eq "a""#,
        "a pr or or b pr",
    ] {
        match parse(bad) {
            Err(ScimError::InvalidFilter(_)) => {}
            other => panic!("{bad:?} gave {other:?}"),
        }
    }
}

#[test]
fn length_and_nesting_limits() {
    let long = format!(r#"userName eq "{}""#, "a".repeat(MAX_FILTER_LEN));
    assert!(matches!(parse(&long), Err(ScimError::InvalidFilter(d)) if d.contains("longer")));
    let nest = |n: usize| format!("{}a pr{}", "(".repeat(n), ")".repeat(n));
    assert!(parse(&nest(MAX_NESTING)).is_ok());
    assert!(
        matches!(parse(&nest(MAX_NESTING + 1)), Err(ScimError::InvalidFilter(d)) if d.contains("nesting"))
    );
    let nots = |n: usize| format!("{}a pr{}", "not (".repeat(n), ")".repeat(n));
    assert!(parse(&nots(MAX_NESTING)).is_ok());
    assert!(parse(&nots(MAX_NESTING + 1)).is_err());
    // A long flat chain is not nesting and is parsed without recursion.
    let chain = vec!["a pr"; 400].join(" and ");
    assert!(parse(&chain).is_ok());
}

#[test]
fn attr_path_key_and_display() {
    let path = AttrPath::new("Emails", Some("Value"));
    assert_eq!(path.key(), "emails.value");
    assert_eq!(path.to_string(), "Emails.Value");
    assert!(path.is("emails", Some("value")));
    assert!(!path.is("emails", None));
    let with_urn = AttrPath::parse_with("urn:x:y:z:attr", ScimError::InvalidPath);
    assert_eq!(
        with_urn.map(|p| (p.urn, p.name)),
        Ok((Some("urn:x:y:z".into()), "attr".into()))
    );
    assert!(AttrPath::parse_with("$ref", ScimError::InvalidPath).is_ok());
    assert!(AttrPath::parse_with("$other", ScimError::InvalidPath).is_err());
}

proptest! {
    #[test]
    fn parser_never_panics(text in "\\PC{0,200}") {
        let _ = parse(&text);
    }

    #[test]
    fn parser_never_panics_on_filter_shaped_input(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("("), Just(")"), Just("["), Just("]"), Just("not"), Just("and"),
                Just("or"), Just("eq"), Just("pr"), Just("\"x\\\"\""), Just("emails"),
                Just("name.givenName"), Just("urn:a:b:c"), Just("true"), Just("12"), Just("\"")
            ],
            0..60,
        )
    ) {
        let _ = parse(&parts.join(" "));
        let _ = parse(&parts.concat());
    }

    #[test]
    fn any_string_value_round_trips(value in "\\PC{0,40}") {
        let quoted = serde_json::to_string(&value).unwrap_or_default();
        let filter = parse(&format!("userName eq {quoted}"));
        prop_assert_eq!(filter, Ok(cmp("userName", None, CompareOp::Eq, Value::String(value))));
    }
}

/// Maps every path to some storage, so random filters reach the translator.
struct Anything;

impl SqlColumns for Anything {
    fn column(&self, path: &AttrPath) -> Option<SqlTarget> {
        Some(match path.key().len() % 4 {
            0 => SqlTarget::Text {
                expr: "t".into(),
                case_exact: false,
            },
            1 => SqlTarget::Bool("b".into()),
            2 => SqlTarget::Timestamp("ts".into()),
            _ => SqlTarget::MultiText {
                exists_subquery_template: "EXISTS (x WHERE {e})".into(),
                case_exact: true,
            },
        })
    }
}

proptest! {
    /// Whatever parses can be evaluated and translated without panicking,
    /// and the translation numbers exactly as many parameters as it binds.
    #[test]
    fn evaluation_and_translation_never_panic(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("("), Just(")"), Just("not ("), Just("and"), Just("or"),
                Just("emails["), Just("]"), Just("type eq \"work\""), Just("value co \"@\""),
                Just("userName sw \"b\""), Just("meta.lastModified gt \"2011-05-13T04:42:34Z\""),
                Just("active eq true"), Just("title pr"), Just("x lt 3"), Just("name.givenName ne null")
            ],
            1..20,
        )
    ) {
        if let Ok(filter) = parse(&parts.join(" ")) {
            let resource = serde_json::json!({
                "schemas": [USER_URN], "userName": "bjensen", "active": true, "x": 2,
                "emails": [{"value": "a@b", "type": "work"}], "name": {"givenName": "B"},
                "meta": {"lastModified": "2011-05-13T04:42:34Z"}
            });
            let _ = matches(&filter, &resource);
            if let Ok(sql) = to_sql(&filter, &Anything, 3) {
                let highest = (3..3 + sql.params.len()).last();
                if let Some(highest) = highest {
                    let placeholder = format!("${highest}");
                    prop_assert!(sql.clause.contains(&placeholder));
                }
                let beyond = format!("${}", 3 + sql.params.len());
                prop_assert!(!sql.clause.contains(&beyond));
            }
        }
    }
}

#[test]
fn the_longest_flat_filter_fits_a_small_stack() {
    // 4 KiB of `a pr or ...` would be 500 levels deep as a left-deep
    // tree; balanced, it evaluates, translates and drops on a 256 KiB
    // stack, an eighth of a tokio worker's. The deepest nesting allowed
    // must fit too.
    let mut text = String::from("a pr");
    while text.len() + 8 <= MAX_FILTER_LEN {
        text.push_str(" or a pr");
    }
    let deepest = format!(
        "{}{}emails[(value pr or value eq \"x\")]{}{}",
        "(a pr or ".repeat(20),
        "not (".repeat(10),
        ")".repeat(10),
        ")".repeat(20)
    );
    let worker = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let resource = serde_json::json!({"a": "x"});
            let flat = parse(&text).map_err(|e| e.to_string())?;
            let matched = matches(&flat, &resource);
            let sql = to_sql(&flat, &Anything, 1).map_err(|e| e.to_string())?;
            let deepest = parse(&deepest).map_err(|e| e.to_string())?;
            let deep_matched = matches(&deepest, &resource);
            to_sql(&deepest, &Anything, 1).map_err(|e| e.to_string())?;
            Ok::<_, String>((matched && deep_matched, sql.clause.len()))
        });
    let result = worker
        .map_err(|e| e.to_string())
        .and_then(|handle| handle.join().map_err(|_| "panicked".to_string()));
    assert!(
        matches!(result, Ok(Ok((true, len))) if len > 4000),
        "{result:?}"
    );
    // One more level is refused.
    let too_deep = format!(
        "({})",
        "(a pr or ".repeat(20) + &"not (".repeat(10) + "emails[(value pr)]" + &")".repeat(30)
    );
    assert!(matches!(parse(&too_deep), Err(ScimError::InvalidFilter(d)) if d.contains("nesting")));
}

fn arbitrary_path(inner: bool) -> impl Strategy<Value = AttrPath> {
    let name = prop_oneof![
        Just("userName"),
        Just("emails"),
        Just("x-y_1"),
        Just("$ref"),
        Just("Name")
    ];
    let sub = proptest::option::of(prop_oneof![Just("value"), Just("givenName")]);
    let urn = proptest::option::of(Just(ENTERPRISE_URN));
    (name, sub, urn).prop_map(move |(name, sub, urn)| AttrPath {
        urn: urn.filter(|_| !inner).map(str::to_string),
        name: name.to_string(),
        sub: sub.filter(|_| !inner).map(str::to_string),
    })
}

fn arbitrary_leaf(inner: bool) -> impl Strategy<Value = Filter> {
    let value = prop_oneof![
        "\\PC{0,12}".prop_map(Value::String),
        any::<i32>().prop_map(|n| Value::Number(n.into())),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    let op = proptest::sample::select(vec![
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ]);
    prop_oneof![
        (arbitrary_path(inner), op, value).prop_map(|(path, op, value)| Filter::Compare {
            path,
            op,
            value
        }),
        arbitrary_path(inner).prop_map(|path| Filter::Present { path }),
    ]
}

fn arbitrary_filter(inner: bool) -> BoxedStrategy<Filter> {
    let leaf = if inner {
        arbitrary_leaf(true).boxed()
    } else {
        prop_oneof![
            3 => arbitrary_leaf(false),
            1 => (arbitrary_path(true), arbitrary_filter(true)).prop_map(|(path, filter)| Filter::ValuePath { path, filter: Box::new(filter) }),
        ]
        .boxed()
    };
    leaf.prop_recursive(4, 16, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| and(a, b)),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| or(a, b)),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
    .boxed()
}

proptest! {
    /// Display is canonical filter text: it parses back to the same tree.
    #[test]
    fn display_round_trips(filter in arbitrary_filter(false)) {
        let text = filter.to_string();
        prop_assert_eq!(parse(&text), Ok(filter), "{}", text);
    }
}
