//! The attribute tables of RFC 7643 §8.7.1 (User, Group, enterprise User)
//! and §3.1 (common attributes), written with small `const` builders.

use super::{AttrType, Attribute, Mutability, ResourceSchema, Returned, Schema, Uniqueness};
use crate::filter::{ENTERPRISE_URN, GROUP_URN, USER_URN};

const fn attr(name: &'static str, kind: AttrType, description: &'static str) -> Attribute {
    Attribute {
        name,
        kind,
        multi_valued: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        uniqueness: Uniqueness::None,
        description,
        canonical_values: &[],
        reference_types: &[],
        sub_attributes: &[],
    }
}

const fn string(name: &'static str, description: &'static str) -> Attribute {
    attr(name, AttrType::String, description)
}

const fn complex(
    name: &'static str,
    description: &'static str,
    subs: &'static [Attribute],
) -> Attribute {
    Attribute {
        sub_attributes: subs,
        ..attr(name, AttrType::Complex, description)
    }
}

const fn multi(a: Attribute) -> Attribute {
    Attribute {
        multi_valued: true,
        ..a
    }
}

const fn required(a: Attribute) -> Attribute {
    Attribute {
        required: true,
        ..a
    }
}

const fn case_exact(a: Attribute) -> Attribute {
    Attribute {
        case_exact: true,
        ..a
    }
}

const fn read_only(a: Attribute) -> Attribute {
    Attribute {
        mutability: Mutability::ReadOnly,
        ..a
    }
}

const fn immutable(a: Attribute) -> Attribute {
    Attribute {
        mutability: Mutability::Immutable,
        ..a
    }
}

const fn canonical(a: Attribute, values: &'static [&'static str]) -> Attribute {
    Attribute {
        canonical_values: values,
        ..a
    }
}

const fn reference(
    name: &'static str,
    types: &'static [&'static str],
    description: &'static str,
) -> Attribute {
    Attribute {
        reference_types: types,
        ..attr(name, AttrType::Reference, description)
    }
}

const PRIMARY: Attribute = attr(
    "primary",
    AttrType::Boolean,
    "Whether this value is the primary or preferred one.",
);
const DISPLAY: Attribute = string(
    "display",
    "A human-readable name, primarily used for display purposes.",
);

/// `value`, `display`, `type`, `primary`: the shape of most multi-valued
/// attributes (RFC 7643 §2.4).
macro_rules! plural {
    ($value:expr, $types:expr) => {
        &[
            $value,
            DISPLAY,
            canonical(
                string("type", "A label indicating the attribute's function."),
                $types,
            ),
            PRIMARY,
        ]
    };
}

pub(super) static COMMON: &[Attribute] = &[
    Attribute {
        uniqueness: Uniqueness::Server,
        returned: Returned::Always,
        ..case_exact(read_only(string(
            "id",
            "A unique identifier for a SCIM resource, issued by the service provider.",
        )))
    },
    case_exact(string(
        "externalId",
        "An identifier for the resource as defined by the provisioning client.",
    )),
    read_only(complex(
        "meta",
        "A complex attribute containing resource metadata.",
        &[
            case_exact(read_only(string(
                "resourceType",
                "The name of the resource type of the resource.",
            ))),
            read_only(attr(
                "created",
                AttrType::DateTime,
                "The date and time the resource was added.",
            )),
            read_only(attr(
                "lastModified",
                AttrType::DateTime,
                "The most recent date and time the resource was modified.",
            )),
            case_exact(read_only(reference(
                "location",
                &["uri"],
                "The URI of the resource being returned.",
            ))),
            case_exact(read_only(string(
                "version",
                "The version (ETag) of the resource being returned.",
            ))),
        ],
    )),
];

static NAME: &[Attribute] = &[
    string("formatted", "The full name, formatted for display."),
    string("familyName", "The family name of the User."),
    string("givenName", "The given name of the User."),
    string("middleName", "The middle name(s) of the User."),
    string("honorificPrefix", "The honorific prefix(es) of the User."),
    string("honorificSuffix", "The honorific suffix(es) of the User."),
];

static ADDRESS: &[Attribute] = &[
    string(
        "formatted",
        "The full mailing address, formatted for display.",
    ),
    string("streetAddress", "The full street address component."),
    string("locality", "The city or locality component."),
    string("region", "The state or region component."),
    string("postalCode", "The zip code or postal code component."),
    string(
        "country",
        "The country name component (ISO 3166-1 alpha-2).",
    ),
    canonical(
        string("type", "A label indicating the address's function."),
        &["work", "home", "other"],
    ),
    PRIMARY,
];

static USER_ATTRIBUTES: &[Attribute] = &[
    Attribute {
        uniqueness: Uniqueness::Server,
        ..required(string(
            "userName",
            "Unique identifier for the User, used to authenticate.",
        ))
    },
    complex("name", "The components of the user's real name.", NAME),
    string(
        "displayName",
        "The name of the User, suitable for display to end-users.",
    ),
    string("nickName", "The casual way to address the user."),
    reference(
        "profileUrl",
        &["external"],
        "A fully qualified URL pointing to a page representing the User's online profile.",
    ),
    string("title", "The user's title, such as \"Vice President\"."),
    string(
        "userType",
        "Identifies the relationship between the organization and the user.",
    ),
    string(
        "preferredLanguage",
        "The User's preferred written or spoken language (RFC 7231 Accept-Language).",
    ),
    string("locale", "The User's default location for localization."),
    string(
        "timezone",
        "The User's time zone in IANA Time Zone database format.",
    ),
    attr(
        "active",
        AttrType::Boolean,
        "The User's administrative status.",
    ),
    Attribute {
        mutability: Mutability::WriteOnly,
        returned: Returned::Never,
        ..string("password", "The User's cleartext password, never returned.")
    },
    multi(complex(
        "emails",
        "Email addresses for the user.",
        plural!(
            string("value", "Email address for the user."),
            &["work", "home", "other"]
        ),
    )),
    multi(complex(
        "phoneNumbers",
        "Phone numbers for the User.",
        plural!(
            string("value", "Phone number of the User."),
            &["work", "home", "mobile", "fax", "pager", "other"]
        ),
    )),
    multi(complex(
        "ims",
        "Instant messaging addresses for the User.",
        plural!(
            string("value", "Instant messaging address for the User."),
            &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]
        ),
    )),
    multi(complex(
        "photos",
        "URLs of photos of the User.",
        plural!(
            reference("value", &["external"], "URL of a photo of the User."),
            &["photo", "thumbnail"]
        ),
    )),
    multi(complex(
        "addresses",
        "A physical mailing address for this User.",
        ADDRESS,
    )),
    multi(read_only(complex(
        "groups",
        "A list of groups to which the user belongs (managed through the Group resource).",
        &[
            read_only(string("value", "The identifier of the User's group.")),
            read_only(reference(
                "$ref",
                &["User", "Group"],
                "The URI of the corresponding Group resource.",
            )),
            read_only(DISPLAY),
            read_only(canonical(
                string("type", "How the membership was derived."),
                &["direct", "indirect"],
            )),
        ],
    ))),
    multi(complex(
        "entitlements",
        "A list of entitlements for the User.",
        plural!(string("value", "The value of an entitlement."), &[]),
    )),
    multi(complex(
        "roles",
        "A list of roles for the User.",
        plural!(string("value", "The value of a role."), &[]),
    )),
    multi(complex(
        "x509Certificates",
        "A list of certificates issued to the User.",
        plural!(
            attr(
                "value",
                AttrType::Binary,
                "The value of an X.509 certificate (base64 DER)."
            ),
            &[]
        ),
    )),
];

static ENTERPRISE_ATTRIBUTES: &[Attribute] = &[
    string(
        "employeeNumber",
        "Numeric or alphanumeric identifier assigned to a person.",
    ),
    string("costCenter", "Identifies the name of a cost center."),
    string("organization", "Identifies the name of an organization."),
    string("division", "Identifies the name of a division."),
    string("department", "Identifies the name of a department."),
    complex(
        "manager",
        "The User's manager.",
        &[
            string(
                "value",
                "The id of the SCIM resource representing the User's manager.",
            ),
            reference(
                "$ref",
                &["User"],
                "The URI of the SCIM resource representing the User's manager.",
            ),
            read_only(string(
                "displayName",
                "The displayName of the User's manager.",
            )),
        ],
    ),
];

static GROUP_ATTRIBUTES: &[Attribute] = &[
    required(string(
        "displayName",
        "A human-readable name for the Group.",
    )),
    multi(complex(
        "members",
        "A list of members of the Group.",
        &[
            immutable(string("value", "Identifier of the member of this Group.")),
            immutable(reference(
                "$ref",
                &["User", "Group"],
                "The URI corresponding to a SCIM resource that is a member of this Group.",
            )),
            DISPLAY,
            immutable(canonical(
                string("type", "A label indicating the type of resource."),
                &["User", "Group"],
            )),
        ],
    )),
];

pub(super) static USER: ResourceSchema = ResourceSchema {
    resource_type: "User",
    endpoint: "/Users",
    description: "User Account",
    core: Schema {
        id: USER_URN,
        name: "User",
        description: "User Account",
        attributes: USER_ATTRIBUTES,
    },
    extensions: &[Schema {
        id: ENTERPRISE_URN,
        name: "EnterpriseUser",
        description: "Enterprise User",
        attributes: ENTERPRISE_ATTRIBUTES,
    }],
};

pub(super) static GROUP: ResourceSchema = ResourceSchema {
    resource_type: "Group",
    endpoint: "/Groups",
    description: "Group",
    core: Schema {
        id: GROUP_URN,
        name: "Group",
        description: "Group",
        attributes: GROUP_ATTRIBUTES,
    },
    extensions: &[],
};
