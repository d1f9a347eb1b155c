//! PATCH tests, built on the RFC 7644 §3.5.2.1–3.5.2.3 examples.

use super::*;
use crate::schema::{group, user};
use serde_json::json;

const MEMBER: &str = "2819c223-7f76-453a-919d-413861904646";

fn request(ops: Value) -> Value {
    json!({"schemas": [PATCH_URN], "Operations": ops})
}

fn run(
    resource: &mut Value,
    ops: Value,
    schema: &ResourceSchema,
) -> Result<Vec<String>, ScimError> {
    let ops = parse_request(&request(ops))?;
    apply(resource, &ops, schema)
}

fn tour_guides() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "displayName": "Tour Guides",
        "members": [
            {"value": MEMBER, "display": "Babs Jensen"},
            {"value": "902c246b-6245-4190-8e05-00816be7344a", "display": "Mandy Pepperidge"}
        ]
    })
}

fn babs() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": MEMBER,
        "userName": "bjensen",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
        "addresses": [
            {"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood"},
            {"type": "home", "streetAddress": "456 Hollywood Blvd", "locality": "Hollywood"}
        ]
    })
}

#[test]
fn parse_request_checks_urn_operations_and_ops() {
    assert!(matches!(
        parse_request(&json!({"Operations": []})),
        Err(ScimError::InvalidSyntax(_))
    ));
    assert!(matches!(
        parse_request(&request(json!([]))),
        Err(ScimError::InvalidSyntax(_))
    ));
    assert!(matches!(
        parse_request(&request(json!([{"op": "move", "path": "x"}]))),
        Err(ScimError::InvalidSyntax(_))
    ));
    assert!(matches!(
        parse_request(&request(json!([{"op": "remove"}]))),
        Err(ScimError::NoTarget(_))
    ));
    assert!(matches!(
        parse_request(&request(json!([{"op": "add", "path": "title"}]))),
        Err(ScimError::InvalidValue(_))
    ));
    assert!(matches!(
        parse_request(&request(json!([{"op": "replace", "value": "x"}]))),
        Err(ScimError::InvalidValue(_))
    ));
    assert!(matches!(
        parse_request(&request(json!([{"op": "add", "path": "a b", "value": 1}]))),
        Err(ScimError::InvalidPath(_))
    ));
    let ops = parse_request(&request(json!([
        {"op": "Add", "path": "title", "value": "Boss"},
        {"op": "REPLACE", "value": {"title": "Boss"}},
        {"op": "remove", "path": "members[value eq \"u1\"].display"}
    ])));
    let Ok(ops) = ops else { panic!("{ops:?}") };
    assert_eq!(ops[0].op, Op::Add);
    assert_eq!(ops[1].op, Op::Replace);
    assert_eq!(ops[1].path, None);
    assert_eq!(ops[2].op, Op::Remove);
    let too_many: Vec<Value> = (0..=MAX_OPERATIONS)
        .map(|_| json!({"op": "add", "path": "title", "value": "x"}))
        .collect();
    assert!(matches!(
        parse_request(&request(Value::Array(too_many))),
        Err(ScimError::TooMany(_))
    ));
}

#[test]
fn patch_paths_parse_all_forms() {
    let path = |text: &str| PatchPath::parse(text);
    assert_eq!(
        path("title"),
        Ok(PatchPath {
            attr: AttrPath::new("title", None),
            value_filter: None
        })
    );
    assert_eq!(
        path("name.givenName").map(|p| p.attr),
        Ok(AttrPath::new("name", Some("givenName")))
    );
    let ext = path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value");
    assert_eq!(
        ext.map(|p| (p.attr.urn.is_some(), p.attr.name, p.attr.sub)),
        Ok((true, "manager".into(), Some("value".into())))
    );
    let filtered = path(r#"addresses[type eq "work"].streetAddress"#);
    let Ok(filtered) = filtered else {
        panic!("{filtered:?}")
    };
    assert_eq!(
        filtered.attr,
        AttrPath::new("addresses", Some("streetAddress"))
    );
    assert!(matches!(
        filtered.value_filter,
        Some(Filter::Compare { .. })
    ));
    assert!(path(r#"members[value eq "a]b"]"#).is_ok());
    for bad in [
        "",
        "a b",
        "emails[",
        r#"emails[type eq "x"]x"#,
        r#"emails[type eq "x"].a.b"#,
        r#"emails[type eq]"#,
        "name.given.x",
    ] {
        assert!(matches!(path(bad), Err(ScimError::InvalidPath(_))), "{bad}");
    }
}

#[test]
fn rfc_3_5_2_1_add_member_and_no_path_add() {
    let mut group = tour_guides();
    let changed = run(
        &mut group,
        json!([{
            "op": "add", "path": "members",
            "value": [{"display": "Babs Jensen", "$ref": "https://example.com/v2/Users/2819c223", "value": "b1"}]
        }]),
        group_schema(),
    );
    assert_eq!(changed, Ok(vec!["members".to_string()]));
    assert_eq!(group["members"].as_array().map(Vec::len), Some(3));
    // Adding an element already there changes nothing.
    let again = run(
        &mut group,
        json!([{"op": "add", "path": "members", "value": [{"display": "Babs Jensen", "$ref": "https://example.com/v2/Users/2819c223", "value": "b1"}]}]),
        group_schema(),
    );
    assert_eq!(again, Ok(vec![]));

    let mut user = babs();
    let changed = run(
        &mut user,
        json!([{
            "op": "add",
            "value": {"emails": [{"value": "babs@jensen.org", "type": "home"}], "nickname": "Babs"}
        }]),
        user_schema(),
    );
    assert_eq!(
        changed,
        Ok(vec!["emails".to_string(), "nickName".to_string()])
    );
    assert_eq!(user["emails"].as_array().map(Vec::len), Some(2));
    assert_eq!(user["nickName"], "Babs");
}

#[test]
fn rfc_3_5_2_2_remove_examples() {
    let mut group = tour_guides();
    let changed = run(
        &mut group,
        json!([{"op": "remove", "path": format!("members[value eq \"{MEMBER}\"]")}]),
        group_schema(),
    );
    assert_eq!(changed, Ok(vec!["members".to_string()]));
    assert_eq!(
        group["members"],
        json!([{"value": "902c246b-6245-4190-8e05-00816be7344a", "display": "Mandy Pepperidge"}])
    );

    let mut group = tour_guides();
    assert_eq!(
        run(
            &mut group,
            json!([{"op": "remove", "path": "members"}]),
            group_schema()
        ),
        Ok(vec!["members".to_string()])
    );
    assert!(group.get("members").is_none());

    // Remove all members, then add one: one request, applied in order.
    let mut group = tour_guides();
    let changed = run(
        &mut group,
        json!([
            {"op": "remove", "path": "members"},
            {"op": "add", "path": "members", "value": [{"value": "902c246b", "display": "James Smith"}]}
        ]),
        group_schema(),
    );
    assert_eq!(changed, Ok(vec!["members".to_string()]));
    assert_eq!(
        group["members"],
        json!([{"value": "902c246b", "display": "James Smith"}])
    );

    // Filter that matches nothing: noTarget, resource untouched.
    let mut group = tour_guides();
    let result = run(
        &mut group,
        json!([{"op": "remove", "path": "members[value eq \"nobody\"]"}]),
        group_schema(),
    );
    assert!(matches!(result, Err(ScimError::NoTarget(_))));
    assert_eq!(group, tour_guides());

    // Remove with a value list (what Entra ID sends).
    let mut group = tour_guides();
    let changed = run(
        &mut group,
        json!([{"op": "Remove", "path": "members", "value": [{"value": MEMBER}]}]),
        group_schema(),
    );
    assert_eq!(changed, Ok(vec!["members".to_string()]));
    assert_eq!(group["members"].as_array().map(Vec::len), Some(1));
}

#[test]
fn rfc_3_5_2_3_replace_examples() {
    let mut group = tour_guides();
    let changed = run(
        &mut group,
        json!([{"op": "replace", "path": "members", "value": [{"display": "Babs Jensen", "value": MEMBER}]}]),
        group_schema(),
    );
    assert_eq!(changed, Ok(vec!["members".to_string()]));
    assert_eq!(
        group["members"],
        json!([{"display": "Babs Jensen", "value": MEMBER}])
    );

    let mut user = babs();
    let work = json!({"type": "work", "streetAddress": "911 Universal City Plaza", "locality": "Hollywood", "primary": true});
    let changed = run(
        &mut user,
        json!([{"op": "replace", "path": "addresses[type eq \"work\"]", "value": work}]),
        user_schema(),
    );
    assert_eq!(changed, Ok(vec!["addresses".to_string()]));
    assert_eq!(user["addresses"][0], work);
    assert_eq!(user["addresses"][1]["streetAddress"], "456 Hollywood Blvd");

    let mut user = babs();
    let changed = run(
        &mut user,
        json!([{"op": "replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "1010 Broadway Ave"}]),
        user_schema(),
    );
    assert_eq!(changed, Ok(vec!["addresses".to_string()]));
    assert_eq!(user["addresses"][0]["streetAddress"], "1010 Broadway Ave");
    assert_eq!(user["addresses"][0]["locality"], "Hollywood");

    let mut user = babs();
    let changed = run(
        &mut user,
        json!([{"op": "replace", "value": {
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}, {"value": "babs@jensen.org", "type": "home"}],
            "nickname": "Babs"
        }}]),
        user_schema(),
    );
    assert_eq!(
        changed,
        Ok(vec!["emails".to_string(), "nickName".to_string()])
    );
    assert_eq!(user["emails"].as_array().map(Vec::len), Some(2));

    let mut user = babs();
    let result = run(
        &mut user,
        json!([{"op": "replace", "path": "addresses[type eq \"other\"].locality", "value": "x"}]),
        user_schema(),
    );
    assert!(matches!(result, Err(ScimError::NoTarget(_))));
}

#[test]
fn complex_sub_attributes_merge_and_unassign() {
    let mut user = babs();
    let changed = run(
        &mut user,
        json!([
            {"op": "replace", "path": "name", "value": {"middleName": "J"}},
            {"op": "replace", "value": {"name.givenName": "Babs"}},
            {"op": "remove", "path": "name.familyName"}
        ]),
        user_schema(),
    );
    assert_eq!(changed, Ok(vec!["name".to_string()]));
    assert_eq!(
        user["name"],
        json!({"givenName": "Babs", "middleName": "J"})
    );
}

#[test]
fn filtered_add_creates_the_described_element() {
    let mut user = babs();
    let changed = run(
        &mut user,
        json!([
            {"op": "add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "555-0100"},
            {"op": "add", "path": "emails[type eq \"work\"].display", "value": "Work"}
        ]),
        user_schema(),
    );
    assert_eq!(
        changed,
        Ok(vec!["phoneNumbers".to_string(), "emails".to_string()])
    );
    assert_eq!(
        user["phoneNumbers"],
        json!([{"type": "mobile", "value": "555-0100"}])
    );
    assert_eq!(user["emails"][0]["display"], "Work");
}

#[test]
fn extension_attributes_are_added_with_their_schema() {
    let mut user = babs();
    let changed = run(
        &mut user,
        json!([
            {"op": "add", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "42"}}},
            {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", "value": "m1"}
        ]),
        user_schema(),
    );
    let ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    assert_eq!(
        changed,
        Ok(vec![
            format!("{ext}:employeeNumber"),
            format!("{ext}:manager")
        ])
    );
    assert_eq!(
        user[ext],
        json!({"employeeNumber": "42", "manager": {"value": "m1"}})
    );
    assert_eq!(user["schemas"][1], ext);
}

#[test]
fn read_only_immutable_and_invalid_changes_are_refused_atomically() {
    let cases = [
        (
            json!([{"op": "replace", "path": "id", "value": "other"}]),
            "mutability",
        ),
        (
            json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}]),
            "mutability",
        ),
        (
            json!([{"op": "replace", "path": "meta.created", "value": "2011-05-13T04:42:34Z"}]),
            "mutability",
        ),
        (
            json!([{"op": "add", "path": "title", "value": "x"}, {"op": "remove", "path": "userName"}]),
            "invalidValue",
        ),
        (
            json!([{"op": "replace", "path": "active", "value": "yes"}]),
            "invalidValue",
        ),
        (
            json!([{"op": "add", "path": "favourite", "value": "x"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "add", "path": "title[value eq \"x\"]", "value": "x"}]),
            "invalidPath",
        ),
        (json!([{"op": "remove"}]), "noTarget"),
    ];
    for (ops, kind) in cases {
        let mut user = babs();
        let result = run(&mut user, ops.clone(), user_schema());
        assert_eq!(
            result.as_ref().err().and_then(ScimError::scim_type),
            Some(kind),
            "{ops}: {result:?}"
        );
        assert_eq!(user, babs(), "{ops}");
    }
    let mut group = tour_guides();
    let result = run(
        &mut group,
        json!([{"op": "replace", "path": format!("members[value eq \"{MEMBER}\"].value"), "value": "x"}]),
        group_schema(),
    );
    assert!(matches!(result, Err(ScimError::Mutability(_))));
    // Echoing the current id is harmless.
    let mut user = babs();
    assert_eq!(
        run(
            &mut user,
            json!([{"op": "replace", "value": {"id": MEMBER, "title": "Boss"}}]),
            user_schema()
        ),
        Ok(vec!["title".to_string()])
    );
}

#[test]
fn a_new_primary_value_demotes_the_old_one() {
    let mut user = babs();
    let changed = run(
        &mut user,
        json!([{"op": "add", "path": "emails", "value": [{"value": "babs@jensen.org", "type": "home", "primary": true}]}]),
        user_schema(),
    );
    assert_eq!(changed, Ok(vec!["emails".to_string()]));
    assert_eq!(user["emails"][0]["primary"], false);
    assert_eq!(user["emails"][1]["primary"], true);
    let changed = run(
        &mut user,
        json!([{"op": "replace", "path": "emails[type eq \"work\"].primary", "value": true}]),
        user_schema(),
    );
    assert_eq!(changed, Ok(vec!["emails".to_string()]));
    assert_eq!(user["emails"][0]["primary"], true);
    assert_eq!(user["emails"][1]["primary"], false);
}

#[test]
fn entra_id_value_shapes_are_repaired() {
    let mut user = babs();
    let ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let changed = run(
        &mut user,
        json!([
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": "emails", "value": [{"value": "x@example.com", "type": "other", "primary": "false"}]},
            {"op": "Replace", "path": format!("{ext}:manager"), "value": "26118915"}
        ]),
        user_schema(),
    );
    assert_eq!(
        changed,
        Ok(vec![
            "active".to_string(),
            "emails".to_string(),
            format!("{ext}:manager")
        ])
    );
    assert_eq!(user["active"], false);
    assert_eq!(user["emails"][1]["primary"], false);
    assert_eq!(user[ext]["manager"], json!({"value": "26118915"}));
    let mut user = babs();
    let result = run(
        &mut user,
        json!([{"op": "replace", "path": "active", "value": "maybe"}]),
        user_schema(),
    );
    assert!(matches!(result, Err(ScimError::InvalidValue(_))));
}

fn user_schema() -> &'static ResourceSchema {
    user()
}

fn group_schema() -> &'static ResourceSchema {
    group()
}

proptest::proptest! {
    /// Random operations on random-ish paths either apply or fail with a
    /// SCIM error; a failure leaves the resource untouched.
    #[test]
    fn apply_never_panics_and_failures_change_nothing(
        ops in proptest::collection::vec(
            (
                proptest::sample::select(vec!["add", "replace", "remove"]),
                proptest::sample::select(vec![
                    "", "title", "name", "name.givenName", "emails", "emails.value",
                    "emails[type eq \"work\"]", "emails[type eq \"work\"].value", "addresses[type eq \"home\"].locality",
                    "id", "meta", "groups", "active", "userName",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
                ]),
                proptest::sample::select(vec![
                    json!("x"), json!(true), json!(1), json!(null), json!([]), json!([{"value": "v", "type": "work"}]),
                    json!({"givenName": "G"}), json!({"title": "T", "nickname": "N"}),
                ]),
            ),
            1..6,
        )
    ) {
        let operations: Vec<Value> = ops
            .iter()
            .map(|(op, path, value)| {
                let mut operation = json!({"op": op, "value": value});
                if !path.is_empty() {
                    operation["path"] = json!(path);
                }
                operation
            })
            .collect();
        let mut user = babs();
        if let Ok(parsed) = parse_request(&request(Value::Array(operations))) {
            match apply(&mut user, &parsed, user_schema()) {
                Ok(_) => proptest::prop_assert_eq!(crate::schema::validate(&user, user_schema()), Ok(())),
                Err(_) => proptest::prop_assert_eq!(user, babs()),
            }
        }
    }
}
