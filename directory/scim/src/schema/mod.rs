//! The SCIM resource schemas Sigil serves (RFC 7643): core User (§4.1)
//! with the enterprise extension (§4.3), Group (§4.2), and the common
//! attributes `id`, `externalId`, `meta` (§3.1), as static tables of
//! attribute characteristics; resource validation ([`validate`]) and the
//! discovery documents ([`schemas_document`], [`resource_types_document`],
//! [`service_provider_config`]).

mod discovery;
mod tables;
mod validate;

pub use discovery::{
    resource_type_document, resource_types_document, schema_document, schemas_document,
    service_provider_config, RESOURCE_TYPE_URN, SCHEMA_URN, SERVICE_PROVIDER_CONFIG_URN,
};
pub use validate::{validate, without_read_only};

use crate::filter::{is_core_urn, AttrPath};

/// An attribute's data type (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    /// `string`
    String,
    /// `boolean`
    Boolean,
    /// `decimal`
    Decimal,
    /// `integer`
    Integer,
    /// `dateTime` (RFC 3339)
    DateTime,
    /// `binary` (base64)
    Binary,
    /// `reference` (a URI)
    Reference,
    /// `complex`
    Complex,
}

impl AttrType {
    /// The RFC 7643 name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

/// Whether and when an attribute may be written (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    /// Set by the service provider only.
    ReadOnly,
    /// Freely writable.
    ReadWrite,
    /// Written once (on creation or when first added), then never changed.
    Immutable,
    /// Writable, never returned.
    WriteOnly,
}

impl Mutability {
    /// The RFC 7643 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

/// When an attribute is returned in responses (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// Always, even when `excludedAttributes` names it.
    Always,
    /// Never (e.g. `password`).
    Never,
    /// Unless `attributes` leaves it out or `excludedAttributes` names it.
    Default,
    /// Only when `attributes` names it.
    Request,
}

impl Returned {
    /// The RFC 7643 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

/// How unique an attribute's value is (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    /// No uniqueness.
    None,
    /// Unique within the tenant (Sigil's service provider scope).
    Server,
    /// Globally unique.
    Global,
}

impl Uniqueness {
    /// The RFC 7643 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

/// One attribute's characteristics (RFC 7643 §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The name, as the RFC spells it.
    pub name: &'static str,
    /// The data type.
    pub kind: AttrType,
    /// Whether the attribute holds an array of values.
    pub multi_valued: bool,
    /// Whether a resource must carry it.
    pub required: bool,
    /// Whether string comparisons are case-sensitive.
    pub case_exact: bool,
    /// Who may write it.
    pub mutability: Mutability,
    /// When it is returned.
    pub returned: Returned,
    /// How unique it is.
    pub uniqueness: Uniqueness,
    /// A short description (the RFC's, abridged).
    pub description: &'static str,
    /// Suggested values (`type` of emails, ...).
    pub canonical_values: &'static [&'static str],
    /// For references: the resource types or `external`/`uri`.
    pub reference_types: &'static [&'static str],
    /// The sub-attributes of a complex attribute.
    pub sub_attributes: &'static [Attribute],
}

impl Attribute {
    /// The sub-attribute `name`, ignoring case.
    pub fn sub(&self, name: &str) -> Option<&'static Attribute> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

/// One schema (core or extension): its URN and attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// The schema URN.
    pub id: &'static str,
    /// A short name (`User`, `Group`, `EnterpriseUser`).
    pub name: &'static str,
    /// A description.
    pub description: &'static str,
    /// The attributes it defines (common attributes excluded).
    pub attributes: &'static [Attribute],
}

/// A resource type: its core schema, its extensions, its endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSchema {
    /// The resource type name (`User`, `Group`).
    pub resource_type: &'static str,
    /// The endpoint relative to the SCIM base URL (`/Users`).
    pub endpoint: &'static str,
    /// A description of the resource type.
    pub description: &'static str,
    /// The core schema.
    pub core: Schema,
    /// Schema extensions, held under their URN in a resource.
    pub extensions: &'static [Schema],
}

/// Where an attribute path points in a resource's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// The extension URN whose object holds the attribute, or `None` for
    /// core and common attributes (at the top of the resource).
    pub extension: Option<&'static str>,
    /// The top-level attribute.
    pub attribute: &'static Attribute,
    /// The sub-attribute, when the path names one.
    pub sub: Option<&'static Attribute>,
}

impl ResourceSchema {
    /// Finds a top-level attribute by optional schema URN and name,
    /// ignoring case. Without URN, core and common attributes are searched;
    /// extension attributes need their URN (RFC 7644 §3.10).
    pub fn attribute(
        &self,
        urn: Option<&str>,
        name: &str,
    ) -> Option<(Option<&'static str>, &'static Attribute)> {
        let find =
            |list: &'static [Attribute]| list.iter().find(|a| a.name.eq_ignore_ascii_case(name));
        match urn {
            None => find(self.core.attributes)
                .or_else(|| find(tables::COMMON))
                .map(|a| (None, a)),
            Some(urn) if urn.eq_ignore_ascii_case(self.core.id) => find(self.core.attributes)
                .or_else(|| find(tables::COMMON))
                .map(|a| (None, a)),
            Some(urn) => {
                let extension = self
                    .extensions
                    .iter()
                    .find(|e| e.id.eq_ignore_ascii_case(urn))?;
                find(extension.attributes).map(|a| (Some(extension.id), a))
            }
        }
    }

    /// Resolves a full attribute path (with its sub-attribute, if any).
    /// `None` when the attribute or sub-attribute is not defined, or a
    /// core URN of another resource type is used.
    pub fn locate(&self, path: &AttrPath) -> Option<Located> {
        if let Some(urn) = &path.urn {
            if is_core_urn(urn) && !urn.eq_ignore_ascii_case(self.core.id) {
                return None;
            }
        }
        let (extension, attribute) = self.attribute(path.urn.as_deref(), &path.name)?;
        let sub = match &path.sub {
            None => None,
            Some(sub) => Some(attribute.sub(sub)?),
        };
        Some(Located {
            extension,
            attribute,
            sub,
        })
    }

    /// The URNs that may appear in this resource's `schemas` member.
    pub fn schema_urns(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.core.id).chain(self.extensions.iter().map(|e| e.id))
    }

    /// The attributes at the top level of a resource: core then common.
    pub fn top_level(&self) -> impl Iterator<Item = &'static Attribute> + '_ {
        self.core.attributes.iter().chain(tables::COMMON.iter())
    }
}

/// The User resource type: core User schema plus the enterprise extension.
pub fn user() -> &'static ResourceSchema {
    &tables::USER
}

/// The Group resource type.
pub fn group() -> &'static ResourceSchema {
    &tables::GROUP
}

/// The common attributes `id`, `externalId` and `meta` (RFC 7643 §3.1).
pub fn common_attributes() -> &'static [Attribute] {
    tables::COMMON
}
