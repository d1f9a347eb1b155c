//! Evaluation tests on the RFC 7643 §8.2 example User, abridged.

use super::*;
use crate::filter::parse;
use serde_json::json;

fn barbara() -> Json {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "701984",
        "userName": "bjensen@example.com",
        "name": {"formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara"},
        "displayName": "Babs Jensen",
        "title": "Tour Guide",
        "userType": "Employee",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [{"value": "555-555-8377", "type": "work"}],
        "nickName": "",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
        },
        "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z"}
    })
}

fn check(filter: &str) -> bool {
    match parse(filter) {
        Ok(filter) => matches(&filter, &barbara()),
        Err(error) => panic!("{filter}: {error}"),
    }
}

#[test]
fn rfc_examples_on_the_example_user() {
    assert!(check(r#"userName eq "bjensen@example.com""#));
    assert!(check(r#"name.familyName co "ense""#));
    assert!(check(r#"userName sw "B""#));
    assert!(check(
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "bJ""#
    ));
    assert!(check("title pr"));
    assert!(check(r#"meta.lastModified gt "2011-05-13T04:42:33Z""#));
    assert!(check(r#"meta.lastModified ge "2011-05-13T04:42:34Z""#));
    assert!(!check(r#"meta.lastModified lt "2011-05-13T04:42:34Z""#));
    assert!(check(r#"meta.lastModified le "2011-05-13T06:42:34+02:00""#));
    assert!(check(r#"title pr and userType eq "Employee""#));
    assert!(check(r#"title pr or userType eq "Intern""#));
    assert!(check(
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#
    ));
    assert!(check(
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#
    ));
    assert!(!check(
        r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#
    ));
    assert!(check(
        r#"userType eq "Employee" and (emails.type eq "work")"#
    ));
    assert!(check(
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#
    ));
    assert!(check(
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#
    ));
}

#[test]
fn value_path_conditions_hold_for_the_same_element() {
    assert!(!check(
        r#"emails[type eq "home" and value co "example.com"]"#
    ));
    assert!(check(r#"emails[type eq "home" and value co "jensen.org"]"#));
    assert!(check(
        r#"emails.type eq "home" and emails.value co "example.com""#
    ));
    assert!(check(r#"name[givenName eq "barbara"]"#));
}

#[test]
fn dates_compare_as_instants_not_strings() {
    // "2011-05-13T06:00:00+02:00" is 04:00Z, before lastModified (04:42:34Z),
    // though it sorts after it as a string.
    assert!(check(r#"meta.lastModified gt "2011-05-13T06:00:00+02:00""#));
    assert!(!check(r#"meta.lastModified gt "not a date""#));
}

#[test]
fn case_exact_follows_the_schema() {
    assert!(check(r#"USERNAME eq "BJENSEN@EXAMPLE.COM""#));
    assert!(check(r#"externalId eq "701984""#));
    assert!(check(r#"id eq "2819c223-7f76-453a-919d-413861904646""#));
    assert!(!check(r#"id eq "2819C223-7F76-453A-919D-413861904646""#));
    assert!(check(r#"displayName eq "BABS JENSEN""#));
}

#[test]
fn extension_attributes_need_their_urn() {
    assert!(check(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#
    ));
    assert!(check(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value sw "2611""#
    ));
    assert!(!check(r#"employeeNumber eq "701984""#));
}

#[test]
fn present_means_non_empty_and_absent_compares_false() {
    assert!(!check("nickName pr"));
    assert!(!check("locale pr"));
    assert!(check("emails pr"));
    assert!(check("name pr"));
    assert!(!check(r#"locale ne "fr""#));
    assert!(check(r#"not (locale eq "fr")"#));
    assert!(check("locale eq null"));
    assert!(check("title ne null"));
    assert!(!check("title eq null"));
}

#[test]
fn types_must_agree() {
    assert!(check("active eq true"));
    assert!(!check("active eq false"));
    assert!(check("active ne false"));
    assert!(!check(r#"active eq "true""#));
    assert!(!check("active gt false"));
    assert!(!check("userName eq 1"));
    let scored = json!({"schemas": [], "score": 12.5});
    let Ok(filter) = parse("score ge 12") else {
        panic!()
    };
    assert!(matches(&filter, &scored));
}

#[test]
fn password_cannot_be_probed() {
    let mut user = barbara();
    user["password"] = json!("t1meMa$heen");
    for filter in [
        r#"password eq "t1meMa$heen""#,
        r#"password sw "t""#,
        "password pr",
    ] {
        let Ok(filter) = parse(filter) else { panic!() };
        assert!(!matches(&filter, &user));
    }
    let Ok(filter) = parse("password eq null") else {
        panic!()
    };
    assert!(matches(&filter, &user));
}

#[test]
fn group_resources_use_the_group_schema() {
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "e9e30dba", "displayName": "Tour Guides",
        "members": [{"value": "2819c223", "display": "Babs Jensen"}]
    });
    let Ok(filter) = parse(r#"displayName eq "tour guides" and members[value eq "2819c223"]"#)
    else {
        panic!()
    };
    assert!(matches(&filter, &group));
    let Ok(filter) = parse(r#"members eq "2819C223""#) else {
        panic!()
    };
    assert!(
        matches(&filter, &group),
        "members.value is not caseExact in RFC 7643"
    );
}
