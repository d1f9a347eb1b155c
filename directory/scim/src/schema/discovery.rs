//! The discovery documents (RFC 7644 §4, RFC 7643 §5–§8.7): `/Schemas`,
//! `/ResourceTypes` and `/ServiceProviderConfig`, built from the same
//! attribute tables that validation and projection use, so what the
//! server advertises is what it enforces.

use super::{group, user, Attribute, ResourceSchema, Schema};
use crate::list::list_response;
use serde_json::{json, Map, Value};

/// The Schema resource URN.
pub const SCHEMA_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
/// The ResourceType resource URN.
pub const RESOURCE_TYPE_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
/// The ServiceProviderConfig resource URN.
pub const SERVICE_PROVIDER_CONFIG_URN: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";

fn resource_schemas() -> [&'static ResourceSchema; 2] {
    [user(), group()]
}

fn all_schemas() -> Vec<&'static Schema> {
    resource_schemas()
        .into_iter()
        .flat_map(|r| std::iter::once(&r.core).chain(r.extensions.iter()))
        .collect()
}

/// `GET /Schemas`: a ListResponse of the User, enterprise User and Group
/// Schema resources, each with `meta.location` under `base_url`.
pub fn schemas_document(base_url: &str) -> Value {
    let resources: Vec<Value> = all_schemas()
        .into_iter()
        .map(|s| schema_resource(base_url, s))
        .collect();
    let count = resources.len();
    list_response(resources, count as u64, 1, count)
}

/// `GET /Schemas/{id}`: one Schema resource, `None` for an unknown URN
/// (compared ignoring case).
pub fn schema_document(base_url: &str, id: &str) -> Option<Value> {
    all_schemas()
        .into_iter()
        .find(|s| s.id.eq_ignore_ascii_case(id))
        .map(|s| schema_resource(base_url, s))
}

fn schema_resource(base_url: &str, schema: &Schema) -> Value {
    json!({
        "schemas": [SCHEMA_URN],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": schema.attributes.iter().map(attribute).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": format!("{}/Schemas/{}", base(base_url), schema.id),
        },
    })
}

fn attribute(attribute: &Attribute) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), Value::from(attribute.name));
    out.insert("type".into(), Value::from(attribute.kind.as_str()));
    out.insert("multiValued".into(), Value::from(attribute.multi_valued));
    out.insert("description".into(), Value::from(attribute.description));
    out.insert("required".into(), Value::from(attribute.required));
    if !attribute.sub_attributes.is_empty() {
        out.insert(
            "subAttributes".into(),
            Value::Array(
                attribute
                    .sub_attributes
                    .iter()
                    .map(self::attribute)
                    .collect(),
            ),
        );
    } else {
        out.insert("caseExact".into(), Value::from(attribute.case_exact));
    }
    if !attribute.canonical_values.is_empty() {
        out.insert("canonicalValues".into(), json!(attribute.canonical_values));
    }
    if !attribute.reference_types.is_empty() {
        out.insert("referenceTypes".into(), json!(attribute.reference_types));
    }
    out.insert(
        "mutability".into(),
        Value::from(attribute.mutability.as_str()),
    );
    out.insert("returned".into(), Value::from(attribute.returned.as_str()));
    out.insert(
        "uniqueness".into(),
        Value::from(attribute.uniqueness.as_str()),
    );
    Value::Object(out)
}

/// `GET /ResourceTypes`: a ListResponse of the User and Group resource types.
pub fn resource_types_document(base_url: &str) -> Value {
    let resources: Vec<Value> = resource_schemas()
        .into_iter()
        .map(|r| resource_type(base_url, r))
        .collect();
    let count = resources.len();
    list_response(resources, count as u64, 1, count)
}

/// `GET /ResourceTypes/{name}`: one ResourceType, `None` when unknown.
pub fn resource_type_document(base_url: &str, name: &str) -> Option<Value> {
    resource_schemas()
        .into_iter()
        .find(|r| r.resource_type.eq_ignore_ascii_case(name))
        .map(|r| resource_type(base_url, r))
}

fn resource_type(base_url: &str, resource: &ResourceSchema) -> Value {
    let extensions: Vec<Value> = resource
        .extensions
        .iter()
        .map(|e| json!({"schema": e.id, "required": false}))
        .collect();
    let mut out = json!({
        "schemas": [RESOURCE_TYPE_URN],
        "id": resource.resource_type,
        "name": resource.resource_type,
        "endpoint": resource.endpoint,
        "description": resource.description,
        "schema": resource.core.id,
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{}/ResourceTypes/{}", base(base_url), resource.resource_type),
        },
    });
    if let (false, Some(object)) = (extensions.is_empty(), out.as_object_mut()) {
        object.insert("schemaExtensions".into(), Value::Array(extensions));
    }
    out
}

/// `GET /ServiceProviderConfig`: PATCH, bulk (with the given limits),
/// filter (with `maxResults`), ETags and password change supported, sort
/// not supported, OAuth bearer token authentication.
pub fn service_provider_config(
    base_url: &str,
    bulk_max_operations: usize,
    bulk_max_payload: usize,
    filter_max_results: usize,
) -> Value {
    json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_URN],
        "patch": {"supported": true},
        "bulk": {"supported": true, "maxOperations": bulk_max_operations, "maxPayloadSize": bulk_max_payload},
        "filter": {"supported": true, "maxResults": filter_max_results},
        "changePassword": {"supported": true},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication scheme using the OAuth Bearer Token Standard",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{}/ServiceProviderConfig", base(base_url)),
        },
    })
}

fn base(base_url: &str) -> &str {
    base_url.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{ENTERPRISE_URN, GROUP_URN, USER_URN};

    const BASE: &str = "https://sigil.example/scim/v2/";

    fn find<'a>(attributes: &'a Value, name: &str) -> &'a Value {
        attributes
            .as_array()
            .and_then(|list| list.iter().find(|a| a["name"] == name))
            .unwrap_or(&Value::Null)
    }

    #[test]
    fn schemas_document_lists_three_schemas_with_locations() {
        let document = schemas_document(BASE);
        assert_eq!(document["schemas"][0], crate::list::LIST_URN);
        assert_eq!(document["totalResults"], 3);
        let ids: Vec<&str> = document["Resources"]
            .as_array()
            .map(|r| r.iter().filter_map(|s| s["id"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(ids, [USER_URN, ENTERPRISE_URN, GROUP_URN]);
        let user_schema = &document["Resources"][0];
        assert_eq!(user_schema["schemas"][0], SCHEMA_URN);
        assert_eq!(
            user_schema["meta"]["location"],
            format!("https://sigil.example/scim/v2/Schemas/{USER_URN}")
        );
        let user_name = find(&user_schema["attributes"], "userName");
        assert_eq!(user_name["required"], true);
        assert_eq!(user_name["caseExact"], false);
        assert_eq!(user_name["uniqueness"], "server");
        let password = find(&user_schema["attributes"], "password");
        assert_eq!(
            (&password["mutability"], &password["returned"]),
            (&json!("writeOnly"), &json!("never"))
        );
        let emails = find(&user_schema["attributes"], "emails");
        assert_eq!(emails["multiValued"], true);
        assert_eq!(
            find(&emails["subAttributes"], "type")["canonicalValues"],
            json!(["work", "home", "other"])
        );
        let groups = find(&user_schema["attributes"], "groups");
        assert_eq!(groups["mutability"], "readOnly");
        let manager = find(&document["Resources"][1]["attributes"], "manager");
        assert_eq!(
            find(&manager["subAttributes"], "$ref")["referenceTypes"],
            json!(["User"])
        );
        assert_eq!(
            schema_document(BASE, &GROUP_URN.to_ascii_lowercase()).map(|s| s["name"].clone()),
            Some(json!("Group"))
        );
        assert_eq!(schema_document(BASE, "urn:nope"), None);
    }

    #[test]
    fn resource_types_name_endpoints_and_extensions() {
        let document = resource_types_document(BASE);
        assert_eq!(document["totalResults"], 2);
        let user_type = &document["Resources"][0];
        assert_eq!(user_type["endpoint"], "/Users");
        assert_eq!(user_type["schema"], USER_URN);
        assert_eq!(
            user_type["schemaExtensions"],
            json!([{"schema": ENTERPRISE_URN, "required": false}])
        );
        assert_eq!(
            user_type["meta"]["location"],
            "https://sigil.example/scim/v2/ResourceTypes/User"
        );
        assert!(document["Resources"][1].get("schemaExtensions").is_none());
        assert_eq!(
            resource_type_document(BASE, "group").map(|r| r["endpoint"].clone()),
            Some(json!("/Groups"))
        );
        assert_eq!(resource_type_document(BASE, "Device"), None);
    }

    #[test]
    fn service_provider_config_advertises_what_is_supported() {
        let config = service_provider_config(BASE, 1000, 1_048_576, 200);
        assert_eq!(config["schemas"][0], SERVICE_PROVIDER_CONFIG_URN);
        assert_eq!(config["patch"]["supported"], true);
        assert_eq!(
            config["bulk"],
            json!({"supported": true, "maxOperations": 1000, "maxPayloadSize": 1_048_576})
        );
        assert_eq!(
            config["filter"],
            json!({"supported": true, "maxResults": 200})
        );
        assert_eq!(config["etag"]["supported"], true);
        assert_eq!(config["changePassword"]["supported"], true);
        assert_eq!(config["sort"]["supported"], false);
        assert_eq!(
            config["authenticationSchemes"][0]["type"],
            "oauthbearertoken"
        );
        assert_eq!(
            config["meta"]["location"],
            "https://sigil.example/scim/v2/ServiceProviderConfig"
        );
    }
}
