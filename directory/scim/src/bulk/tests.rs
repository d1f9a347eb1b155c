//! Bulk tests, built on the RFC 7644 §3.7.2 and §3.7.3 examples.

use super::*;

fn rfc_request() -> Value {
    json!({
        "schemas": [BULK_REQUEST_URN],
        "failOnErrors": 1,
        "Operations": [
            {
                "method": "POST", "path": "/Users", "bulkId": "qwerty",
                "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "Alice"}
            },
            {
                "method": "PUT", "path": "/Users/b7c14771-226c-4d05-8860-134711653041",
                "version": "W/\"3694e05e9dff591\"",
                "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "b7c14771", "userName": "Bob"}
            },
            {
                "method": "PATCH", "path": "/Users/5d8d29d3-342c-4b5f-8683-a3cb6763ffcc",
                "version": "W/\"edac3253e2c0ef2\"",
                "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                         "Operations": [{"op": "remove", "path": "nickName"}]}
            },
            {"method": "DELETE", "path": "/Users/e9025315-6bea-44e1-899c-1e07454e468b", "version": "W/\"0ee8add0a938e1a\""},
            {
                "method": "POST", "path": "/Groups", "bulkId": "ytrewq",
                "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Tour Guides",
                         "members": [{"type": "User", "value": "bulkId:qwerty"}]}
            }
        ]
    })
}

#[test]
fn rfc_bulk_request_parses() {
    let parsed = parse_request(&rfc_request(), 10);
    let Ok(request) = parsed else {
        panic!("{parsed:?}")
    };
    assert_eq!(request.fail_on_errors, Some(1));
    let methods: Vec<Method> = request.operations.iter().map(|o| o.method).collect();
    assert_eq!(
        methods,
        [
            Method::Post,
            Method::Put,
            Method::Patch,
            Method::Delete,
            Method::Post
        ]
    );
    assert_eq!(request.operations[0].endpoint, Endpoint::Users);
    assert_eq!(request.operations[0].bulk_id.as_deref(), Some("qwerty"));
    assert_eq!(
        request.operations[1].id.as_deref(),
        Some("b7c14771-226c-4d05-8860-134711653041")
    );
    assert_eq!(
        request.operations[1].version.as_deref(),
        Some("W/\"3694e05e9dff591\"")
    );
    assert_eq!(request.operations[3].data, None);
    assert_eq!(request.operations[4].endpoint, Endpoint::Groups);
}

#[test]
fn too_many_operations_is_413() {
    let result = parse_request(&rfc_request(), 4);
    assert!(
        matches!(&result, Err(e @ ScimError::PayloadTooLarge(_)) if e.status() == 413),
        "{result:?}"
    );
}

#[test]
fn malformed_operations_are_refused() {
    let with = |operation: Value| {
        parse_request(
            &json!({"schemas": [BULK_REQUEST_URN], "Operations": [operation]}),
            10,
        )
    };
    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a"});
    for bad in [
        json!({"method": "GET", "path": "/Users/1"}),
        json!({"method": "POST", "path": "/Users", "data": user}),
        json!({"method": "POST", "path": "/Users/1", "bulkId": "a", "data": user}),
        json!({"method": "PUT", "path": "/Users", "data": user}),
        json!({"method": "PATCH", "path": "/Users/1"}),
        json!({"method": "DELETE", "path": "/Devices/1"}),
        json!({"method": "DELETE", "path": "Users/1"}),
        json!({"method": "DELETE", "path": "/Users/1/x"}),
        json!({"method": "DELETE", "path": "/Users/"}),
        json!({"method": 1, "path": "/Users/1"}),
        json!("DELETE /Users/1"),
    ] {
        assert!(
            matches!(with(bad.clone()), Err(ScimError::InvalidSyntax(_))),
            "{bad}"
        );
    }
    assert!(with(json!({"method": "delete", "path": "/users/1"})).is_ok());
    let twice = json!({"schemas": [BULK_REQUEST_URN], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "a", "data": user},
        {"method": "POST", "path": "/Users", "bulkId": "a", "data": user}
    ]});
    assert!(
        matches!(parse_request(&twice, 10), Err(ScimError::InvalidSyntax(d)) if d.contains("twice"))
    );
    assert!(parse_request(&json!({"Operations": []}), 10).is_err());
    let zero = json!({"schemas": [BULK_REQUEST_URN], "failOnErrors": 0, "Operations": []});
    assert!(matches!(
        parse_request(&zero, 10),
        Err(ScimError::InvalidValue(_))
    ));
}

#[test]
fn bulk_ids_resolve_to_created_ids() {
    let Ok(request) = parse_request(&rfc_request(), 10) else {
        panic!()
    };
    let mut data = request.operations[4].data.clone().unwrap_or_default();
    let mut created = HashMap::new();
    assert!(
        matches!(resolve_bulk_ids(&mut data.clone(), &created), Err(ScimError::InvalidValue(d)) if d.contains("qwerty"))
    );
    created.insert("qwerty".to_string(), "92b725cd".to_string());
    assert_eq!(resolve_bulk_ids(&mut data, &created), Ok(()));
    assert_eq!(data["members"][0]["value"], "92b725cd");
    assert_eq!(data["displayName"], "Tour Guides");
}

#[test]
fn bulk_response_matches_the_rfc_shape() {
    let Ok(request) = parse_request(&rfc_request(), 10) else {
        panic!()
    };
    let results = [
        BulkResult {
            method: Method::Post,
            bulk_id: Some("qwerty".into()),
            location: Some("https://example.com/v2/Users/92b725cd".into()),
            version: Some("W/\"oY4m4wn58tkVjJxK\"".into()),
            status: 201,
            response: None,
        },
        BulkResult::failed(
            &request.operations[1],
            &ScimError::PreconditionFailed("changed".into()),
        ),
    ];
    assert_eq!(
        response(&results),
        json!({
            "schemas": [BULK_RESPONSE_URN],
            "Operations": [
                {"method": "POST", "bulkId": "qwerty", "location": "https://example.com/v2/Users/92b725cd",
                 "version": "W/\"oY4m4wn58tkVjJxK\"", "status": "201"},
                {"method": "PUT", "status": "412", "response": {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "412", "detail": "changed"}}
            ]
        })
    );
}
