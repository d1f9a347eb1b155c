//! SQL translation tests: exact clause text and parameters, injection
//! attempts, and a property test that literals only ever travel as params.

use super::*;
use crate::filter::parse;
use proptest::prelude::*;

struct Users;

const EMAILS: &str =
    "EXISTS (SELECT 1 FROM jsonb_array_elements(profile->'emails') e WHERE {e->>'%s'})";

impl SqlColumns for Users {
    fn column(&self, path: &AttrPath) -> Option<SqlTarget> {
        let text = |expr: &str, case_exact| {
            Some(SqlTarget::Text {
                expr: expr.into(),
                case_exact,
            })
        };
        let emails = |sub: &str| {
            Some(SqlTarget::MultiText {
                exists_subquery_template: EMAILS.replace("%s", sub),
                case_exact: false,
            })
        };
        match path.key().as_str() {
            "username" => text("login", false),
            "id" => text("id::text", true),
            "externalid" => text("external_id", true),
            "name.givenname" => text("profile->'name'->>'givenName'", false),
            "name.familyname" => text("profile->'name'->>'familyName'", false),
            "active" => Some(SqlTarget::Bool("active".into())),
            "meta.lastmodified" => Some(SqlTarget::Timestamp("updated_at".into())),
            "emails" | "emails.value" => emails("value"),
            "emails.type" => emails("type"),
            "phonenumbers.value" => Some(SqlTarget::MultiText {
                exists_subquery_template: "EXISTS (SELECT 1 FROM phones p WHERE {p.number})".into(),
                case_exact: true,
            }),
            "broken" => Some(SqlTarget::MultiText {
                exists_subquery_template: "no braces".into(),
                case_exact: false,
            }),
            _ => None,
        }
    }
}

fn sql(filter: &str) -> Result<SqlWhere, ScimError> {
    to_sql(&parse(filter)?, &Users, 1)
}

fn text(value: &str) -> SqlParam {
    SqlParam::Text(value.into())
}

#[test]
fn case_insensitive_eq_uses_lower_on_both_sides() {
    assert_eq!(
        sql(r#"userName eq "BJensen""#),
        Ok(SqlWhere {
            clause: "lower(login) = lower($1)".into(),
            params: vec![text("BJensen")]
        })
    );
}

#[test]
fn case_exact_attributes_compare_directly() {
    assert_eq!(
        sql(r#"externalId eq "AbC" and id ne "x""#),
        Ok(SqlWhere {
            clause: "(external_id = $1 AND id::text <> $2)".into(),
            params: vec![text("AbC"), text("x")],
        })
    );
}

#[test]
fn parameters_start_at_first_param() {
    let filter = parse(r#"userName eq "a" or userName eq "b""#).map_err(|e| e.to_string());
    let Ok(filter) = filter else {
        panic!("{filter:?}")
    };
    assert_eq!(
        to_sql(&filter, &Users, 4),
        Ok(SqlWhere {
            clause: "(lower(login) = lower($4) OR lower(login) = lower($5))".into(),
            params: vec![text("a"), text("b")],
        })
    );
}

#[test]
fn like_operators_escape_metacharacters() {
    assert_eq!(
        sql(r#"userName co "50%_off\\""#),
        Ok(SqlWhere {
            clause: r"lower(login) LIKE lower($1) ESCAPE '\'".into(),
            params: vec![text(r"%50\%\_off\\%")],
        })
    );
    assert_eq!(
        sql(r#"userName sw "J""#).map(|w| w.params),
        Ok(vec![text("J%")])
    );
    assert_eq!(
        sql(r#"userName ew "J""#).map(|w| w.params),
        Ok(vec![text("%J")])
    );
    assert_eq!(
        sql(r#"externalId sw "A_""#),
        Ok(SqlWhere {
            clause: r"external_id LIKE $1 ESCAPE '\'".into(),
            params: vec![text(r"A\_%")]
        })
    );
}

#[test]
fn injection_attempts_stay_in_parameters() {
    let attempts = [
        r#"userName eq "x' OR '1'='1""#,
        r#"userName eq "x\\'; DROP TABLE users; --""#,
        r#"userName co "'); DELETE FROM users; --""#,
        r#"userName eq "$1""#,
    ];
    for attempt in attempts {
        let Ok(filter) = parse(attempt) else {
            panic!("{attempt}")
        };
        let Filter::Compare {
            value: Value::String(value),
            ..
        } = &filter
        else {
            panic!("{attempt}")
        };
        let result = to_sql(&filter, &Users, 1);
        let Ok(result) = result else {
            panic!("{result:?}")
        };
        assert!(
            !result.clause.contains('\'') || result.clause.ends_with(r"ESCAPE '\'"),
            "{}",
            result.clause
        );
        assert!(!result.clause.contains("DROP") && !result.clause.contains("DELETE"));
        match &result.params[..] {
            [SqlParam::Text(param)] => assert!(param.contains(value.trim_matches('%'))),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn booleans_and_timestamps_bind_typed_params() {
    assert_eq!(
        sql("active eq true"),
        Ok(SqlWhere {
            clause: "active = $1".into(),
            params: vec![SqlParam::Bool(true)]
        })
    );
    assert_eq!(
        sql(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#),
        Ok(SqlWhere {
            clause: "updated_at > $1".into(),
            params: vec![SqlParam::TimestampMs(1_305_261_754_000)]
        })
    );
    assert!(matches!(
        sql(r#"active co "t""#),
        Err(ScimError::InvalidFilter(_))
    ));
    assert!(matches!(
        sql("active gt true"),
        Err(ScimError::InvalidFilter(_))
    ));
    assert!(matches!(
        sql(r#"meta.lastModified gt "yesterday""#),
        Err(ScimError::InvalidFilter(_))
    ));
    assert!(matches!(
        sql(r#"meta.lastModified sw "2011""#),
        Err(ScimError::InvalidFilter(_))
    ));
    assert!(matches!(
        sql("userName eq 12"),
        Err(ScimError::InvalidFilter(_))
    ));
    assert!(matches!(
        sql("userName eq true"),
        Err(ScimError::InvalidFilter(_))
    ));
}

#[test]
fn present_and_null() {
    assert_eq!(
        sql("userName pr and active pr"),
        Ok(SqlWhere {
            clause: "((login IS NOT NULL AND login <> '') AND active IS NOT NULL)".into(),
            params: vec![],
        })
    );
    assert_eq!(
        sql("externalId eq null").map(|w| w.clause),
        Ok("external_id IS NULL".into())
    );
    assert_eq!(
        sql("externalId ne null").map(|w| w.clause),
        Ok("external_id IS NOT NULL".into())
    );
    assert!(sql("externalId gt null").is_err());
    assert_eq!(
        sql("emails eq null").map(|w| w.clause),
        Ok("NOT EXISTS (SELECT 1 FROM jsonb_array_elements(profile->'emails') e WHERE e->>'value' IS NOT NULL)".into())
    );
}

#[test]
fn not_treats_unknown_as_false() {
    assert_eq!(
        sql(r#"not (name.givenName eq "Barbara")"#),
        Ok(SqlWhere {
            clause: "NOT COALESCE(lower(profile->'name'->>'givenName') = lower($1), false)".into(),
            params: vec![text("Barbara")],
        })
    );
}

#[test]
fn multi_valued_attributes_use_the_exists_template() {
    assert_eq!(
        sql(r#"emails co "example.com""#),
        Ok(SqlWhere {
            clause: r"EXISTS (SELECT 1 FROM jsonb_array_elements(profile->'emails') e WHERE lower(e->>'value') LIKE lower($1) ESCAPE '\')".into(),
            params: vec![text("%example.com%")],
        })
    );
    assert_eq!(
        sql("emails.value pr").map(|w| w.clause),
        Ok("EXISTS (SELECT 1 FROM jsonb_array_elements(profile->'emails') e WHERE (e->>'value' IS NOT NULL AND e->>'value' <> ''))".into())
    );
}

#[test]
fn value_path_is_one_subquery_over_the_same_element() {
    assert_eq!(
        sql(r#"userType pr or emails[type eq "work" and value co "@example.com"]"#)
            .err()
            .map(|e| e.to_string()),
        Some("invalid filter: cannot filter on attribute 'userType'".into())
    );
    assert_eq!(
        sql(r#"emails[type eq "work" and not (value co "@example.com")]"#),
        Ok(SqlWhere {
            clause: r"EXISTS (SELECT 1 FROM jsonb_array_elements(profile->'emails') e WHERE (lower(e->>'type') = lower($1) AND NOT COALESCE(lower(e->>'value') LIKE lower($2) ESCAPE '\', false)))".into(),
            params: vec![text("work"), text("%@example.com%")],
        })
    );
    // A single-valued complex attribute: no subquery.
    assert_eq!(
        sql(r#"name[givenName eq "a" or familyName eq "b"]"#).map(|w| w.clause),
        Ok("(lower(profile->'name'->>'givenName') = lower($1) OR lower(profile->'name'->>'familyName') = lower($2))".into())
    );
}

#[test]
fn unknown_and_mismatched_storage_is_invalid_filter() {
    assert_eq!(
        sql(r#"nickName eq "x""#),
        Err(ScimError::InvalidFilter(
            "cannot filter on attribute 'nickName'".into()
        ))
    );
    assert!(
        matches!(sql(r#"emails[type eq "a" and bogus eq "b"]"#), Err(ScimError::InvalidFilter(d)) if d.contains("emails.bogus"))
    );
    assert!(matches!(
        sql(r#"broken eq "a""#),
        Err(ScimError::InvalidFilter(_))
    ));
}

proptest! {
    /// Whatever the client puts in a string literal, it reaches the SQL
    /// only as a parameter: the clause text never contains it.
    #[test]
    fn values_never_reach_the_clause(value in "[a-zA-Z0-9'\"\\\\%_;(){}$ -]{0,30}", op in 0usize..6) {
        let marked = format!("Zq9{value}");
        let op = ["eq", "ne", "co", "sw", "ew", "gt"][op];
        let quoted = serde_json::to_string(&marked).unwrap_or_default();
        for attribute in ["userName", "externalId", "emails.value", "phoneNumbers.value"] {
            let filter = parse(&format!("{attribute} {op} {quoted} or not ({attribute} {op} {quoted})"));
            prop_assert!(filter.is_ok());
            let Ok(filter) = filter else { continue };
            let result = to_sql(&filter, &Users, 1);
            prop_assert!(result.is_ok());
            let Ok(result) = result else { continue };
            prop_assert!(!result.clause.contains("Zq9"), "{}", result.clause);
            prop_assert_eq!(result.params.len(), 2);
            for param in &result.params {
                let SqlParam::Text(text) = param else { panic!("{param:?}") };
                prop_assert!(text.contains("Zq9"));
            }
        }
    }
}
