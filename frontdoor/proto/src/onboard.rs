//! The onboarding operations of `sigil/1` (issue 17; docs/protocol.md,
//! "Onboarding"): tenants, OIDC apps, SAML SPs and callers, managed over
//! the API by an admin caller, so that they work against a remote node.
//! Each travels as [`crate::Operation::Onboard`] with the fields below in
//! the flat [`WireRequest`] map, and answers one of the typed results of
//! this module.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::request::{check_text, field, list, optional, BadRequest, WireRequest};

/// Most claims an app maps.
pub const MAX_CLAIMS: usize = 64;
/// Most groups, users, redirect URIs or ACS URLs in one request.
pub const MAX_ITEMS: usize = 64;
/// Longest JWKS text an app registers.
pub const MAX_JWKS_BYTES: usize = 16 * 1024;

/// A JWKS as JSON text: at most [`MAX_JWKS_BYTES`]; its keys are checked
/// by the node.
fn jwks(value: Option<String>) -> Result<Option<String>, BadRequest> {
    match value {
        Some(text) if text.len() > MAX_JWKS_BYTES => {
            Err(BadRequest(format!("`jwks` is over {MAX_JWKS_BYTES} bytes")))
        }
        other => Ok(other),
    }
}

/// An onboarding operation (admin only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnboardOp {
    /// `tenant_add`: a new tenant with its group `everyone`; its keys are
    /// made when it is first loaded (at once, by the node that made it).
    TenantAdd {
        /// Slug (`[a-z0-9][a-z0-9-]{0,62}`).
        tenant: String,
        /// Display name.
        name: String,
    },
    /// `tenant_list`: every tenant.
    TenantList,
    /// `tenant_suspend`: the tenant's issuance is refused until resumed.
    TenantSuspend {
        /// Slug.
        tenant: String,
    },
    /// `tenant_resume`: a suspended tenant issues again.
    TenantResume {
        /// Slug.
        tenant: String,
    },
    /// `app_add`: a new OIDC app.
    AppAdd {
        /// Tenant slug.
        tenant: String,
        /// The app's name (its `client_id`).
        app: String,
        /// Signing algorithm.
        alg: String,
        /// Claim name → user attribute.
        claims: BTreeMap<String, String>,
        /// Assigned groups (names; each must exist).
        assign: Vec<String>,
        /// Assigned users (logins or ids; each must exist).
        assign_users: Vec<String>,
        /// Allowed redirect URIs.
        redirect_uris: Vec<String>,
        /// Where the app takes back-channel logout tokens (issue 19): an
        /// absolute `http` or `https` URL, checked by the node.
        backchannel_logout_uri: Option<String>,
        /// Refresh tokens allowed, with these lifetimes (issue 19);
        /// `None`: not allowed.
        refresh: Option<AppRefresh>,
        /// Its JWKS as JSON text (issue 19): the public keys of its
        /// `private_key_jwt` client assertions.
        jwks: Option<String>,
    },
    /// `app_set_jwks`: registers (or with `jwks` absent, removes) an
    /// existing OIDC app's JWKS (issue 19).
    AppSetJwks {
        /// Tenant slug.
        tenant: String,
        /// The app's name.
        app: String,
        /// The JWKS as JSON text; `None` removes it.
        jwks: Option<String>,
    },
    /// `app_list`: the tenant's OIDC apps.
    AppList {
        /// Tenant slug.
        tenant: String,
    },
    /// `app_remove`: removes an OIDC app and its assignments.
    AppRemove {
        /// Tenant slug.
        tenant: String,
        /// The app's name.
        app: String,
    },
    /// `sp_add`: a new SAML SP (the fields of its metadata).
    SpAdd {
        /// Tenant slug.
        tenant: String,
        /// The SP's name in Sigil.
        sp: String,
        /// Signing algorithm.
        alg: String,
        /// Its entity ID.
        entity_id: String,
        /// Its assertion consumer service URLs (HTTP-POST), default first.
        acs_urls: Vec<String>,
        /// `emailAddress`, `persistent` or `unspecified`.
        name_id_format: String,
        /// Sign the Assertion (its metadata's `WantAssertionsSigned`).
        sign_assertion: bool,
        /// Attribute name → user attribute.
        claims: BTreeMap<String, String>,
        /// Assigned groups (names; each must exist).
        assign: Vec<String>,
        /// Assigned users (logins or ids; each must exist).
        assign_users: Vec<String>,
    },
    /// `sp_list`: the tenant's SAML SPs.
    SpList {
        /// Tenant slug.
        tenant: String,
    },
    /// `sp_remove`: removes a SAML SP and its assignments.
    SpRemove {
        /// Tenant slug.
        tenant: String,
        /// The SP's name.
        sp: String,
    },
    /// `frontend_list`: every registered caller.
    FrontendList,
    /// `frontend_remove`: unregisters a caller; every node refuses its
    /// certificate from its next request.
    FrontendRemove {
        /// The caller's name.
        name: String,
    },
}

fn claims(value: Option<BTreeMap<String, String>>) -> Result<BTreeMap<String, String>, BadRequest> {
    let map = value.unwrap_or_default();
    if map.len() > MAX_CLAIMS {
        return Err(BadRequest(format!(
            "`claims` has more than {MAX_CLAIMS} entries"
        )));
    }
    for (key, value) in &map {
        check_text("claims", key)?;
        check_text("claims", value)?;
    }
    Ok(map)
}

impl OnboardOp {
    /// The operation named `op`, from the wire fields; `Ok(None)` when
    /// `op` is not an onboarding operation.
    ///
    /// # Errors
    /// [`BadRequest`] naming the missing or malformed field.
    pub fn from_wire(op: &str, wire: &mut WireRequest) -> Result<Option<OnboardOp>, BadRequest> {
        let w = wire;
        Ok(Some(match op {
            "tenant_add" => OnboardOp::TenantAdd {
                tenant: field("tenant", w.tenant.take())?,
                name: field("name", w.name.take())?,
            },
            "tenant_list" => OnboardOp::TenantList,
            "tenant_suspend" => OnboardOp::TenantSuspend {
                tenant: field("tenant", w.tenant.take())?,
            },
            "tenant_resume" => OnboardOp::TenantResume {
                tenant: field("tenant", w.tenant.take())?,
            },
            "app_add" => OnboardOp::AppAdd {
                tenant: field("tenant", w.tenant.take())?,
                app: field("app", w.app.take())?,
                alg: field("alg", w.alg.take())?,
                claims: claims(w.claims.take())?,
                assign: list("assign", w.assign.take(), MAX_ITEMS)?,
                assign_users: list("assign_users", w.assign_users.take(), MAX_ITEMS)?,
                redirect_uris: list("redirect_uris", w.redirect_uris.take(), MAX_ITEMS)?,
                backchannel_logout_uri: optional(
                    "backchannel_logout_uri",
                    w.backchannel_logout_uri.take(),
                )?,
                refresh: AppRefresh::from_wire(w)?,
                jwks: jwks(w.jwks.take())?,
            },
            "app_set_jwks" => OnboardOp::AppSetJwks {
                tenant: field("tenant", w.tenant.take())?,
                app: field("app", w.app.take())?,
                jwks: jwks(w.jwks.take())?,
            },
            "app_list" => OnboardOp::AppList {
                tenant: field("tenant", w.tenant.take())?,
            },
            "app_remove" => OnboardOp::AppRemove {
                tenant: field("tenant", w.tenant.take())?,
                app: field("app", w.app.take())?,
            },
            "sp_add" => {
                let acs_urls = list("acs_urls", w.acs_urls.take(), MAX_ITEMS)?;
                if acs_urls.is_empty() {
                    return Err(BadRequest("missing field `acs_urls`".into()));
                }
                OnboardOp::SpAdd {
                    tenant: field("tenant", w.tenant.take())?,
                    sp: field("sp", w.sp.take())?,
                    alg: field("alg", w.alg.take())?,
                    entity_id: field("entity_id", w.entity_id.take())?,
                    acs_urls,
                    name_id_format: optional("name_id_format", w.name_id_format.take())?
                        .unwrap_or_else(|| "emailAddress".into()),
                    sign_assertion: w.sign_assertion.unwrap_or(true),
                    claims: claims(w.claims.take())?,
                    assign: list("assign", w.assign.take(), MAX_ITEMS)?,
                    assign_users: list("assign_users", w.assign_users.take(), MAX_ITEMS)?,
                }
            }
            "sp_list" => OnboardOp::SpList {
                tenant: field("tenant", w.tenant.take())?,
            },
            "sp_remove" => OnboardOp::SpRemove {
                tenant: field("tenant", w.tenant.take())?,
                sp: field("sp", w.sp.take())?,
            },
            "frontend_list" => OnboardOp::FrontendList,
            "frontend_remove" => OnboardOp::FrontendRemove {
                name: field("name", w.name.take())?,
            },
            _ => return Ok(None),
        }))
    }

    /// The operation's wire name.
    pub fn name(&self) -> &'static str {
        match self {
            OnboardOp::TenantAdd { .. } => "tenant_add",
            OnboardOp::TenantList => "tenant_list",
            OnboardOp::TenantSuspend { .. } => "tenant_suspend",
            OnboardOp::TenantResume { .. } => "tenant_resume",
            OnboardOp::AppAdd { .. } => "app_add",
            OnboardOp::AppSetJwks { .. } => "app_set_jwks",
            OnboardOp::AppList { .. } => "app_list",
            OnboardOp::AppRemove { .. } => "app_remove",
            OnboardOp::SpAdd { .. } => "sp_add",
            OnboardOp::SpList { .. } => "sp_list",
            OnboardOp::SpRemove { .. } => "sp_remove",
            OnboardOp::FrontendList => "frontend_list",
            OnboardOp::FrontendRemove { .. } => "frontend_remove",
        }
    }

    /// The tenant it acts for; `None` for the deployment-wide ones.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            OnboardOp::TenantList | OnboardOp::FrontendList | OnboardOp::FrontendRemove { .. } => {
                None
            }
            OnboardOp::TenantAdd { tenant, .. }
            | OnboardOp::TenantSuspend { tenant }
            | OnboardOp::TenantResume { tenant }
            | OnboardOp::AppAdd { tenant, .. }
            | OnboardOp::AppSetJwks { tenant, .. }
            | OnboardOp::AppList { tenant }
            | OnboardOp::AppRemove { tenant, .. }
            | OnboardOp::SpAdd { tenant, .. }
            | OnboardOp::SpList { tenant }
            | OnboardOp::SpRemove { tenant, .. } => Some(tenant),
        }
    }

    /// Fills `wire` (whose `op` and `tenant` are set) with its fields.
    pub fn fill_wire(&self, wire: &mut WireRequest) {
        let some_list = |items: &Vec<String>| (!items.is_empty()).then(|| items.clone());
        let some_map = |map: &BTreeMap<String, String>| (!map.is_empty()).then(|| map.clone());
        match self.clone() {
            OnboardOp::TenantList
            | OnboardOp::FrontendList
            | OnboardOp::TenantSuspend { .. }
            | OnboardOp::TenantResume { .. }
            | OnboardOp::AppList { .. }
            | OnboardOp::SpList { .. } => {}
            OnboardOp::TenantAdd { name, .. } | OnboardOp::FrontendRemove { name } => {
                wire.name = Some(name);
            }
            OnboardOp::AppAdd {
                app,
                alg,
                claims,
                assign,
                assign_users,
                redirect_uris,
                backchannel_logout_uri,
                refresh,
                jwks,
                ..
            } => {
                if let Some(refresh) = refresh {
                    wire.refresh_tokens = Some(true);
                    wire.refresh_absolute_s = Some(refresh.absolute_s);
                    wire.refresh_idle_s = Some(refresh.idle_s);
                }
                (wire.app, wire.alg) = (Some(app), Some(alg));
                wire.backchannel_logout_uri = backchannel_logout_uri;
                wire.jwks = jwks;
                wire.claims = some_map(&claims);
                wire.assign = some_list(&assign);
                wire.assign_users = some_list(&assign_users);
                wire.redirect_uris = some_list(&redirect_uris);
            }
            OnboardOp::AppRemove { app, .. } => wire.app = Some(app),
            OnboardOp::AppSetJwks { app, jwks, .. } => (wire.app, wire.jwks) = (Some(app), jwks),
            OnboardOp::SpAdd {
                sp,
                alg,
                entity_id,
                acs_urls,
                name_id_format,
                sign_assertion,
                claims,
                assign,
                assign_users,
                ..
            } => {
                (wire.sp, wire.alg, wire.entity_id) = (Some(sp), Some(alg), Some(entity_id));
                wire.acs_urls = Some(acs_urls);
                wire.name_id_format = Some(name_id_format);
                wire.sign_assertion = Some(sign_assertion);
                wire.claims = some_map(&claims);
                wire.assign = some_list(&assign);
                wire.assign_users = some_list(&assign_users);
            }
            OnboardOp::SpRemove { sp, .. } => wire.sp = Some(sp),
        }
    }
}

/// A tenant (`tenant_add`, `tenant_suspend`, `tenant_resume`, and each
/// entry of `tenant_list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantInfo {
    /// Slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// `active` or `suspended`.
    pub status: String,
    /// Its issuer URL as this node serves it.
    pub issuer: String,
}

/// `tenant_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenants {
    /// Every tenant, oldest first.
    pub tenants: Vec<TenantInfo>,
}

/// An OIDC app (`app_add`, each entry of `app_list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    /// Name (`client_id`).
    pub name: String,
    /// Signing algorithm.
    pub alg: String,
    /// Claim name → user attribute.
    pub claims: BTreeMap<String, String>,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Where it takes back-channel logout tokens (issue 19), or null.
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    /// Assigned group names.
    pub assigned_groups: Vec<String>,
    /// Directly assigned user ids.
    pub assigned_users: Vec<String>,
    /// It may hold refresh tokens (issue 19; absent from older nodes).
    #[serde(default)]
    pub refresh_tokens: bool,
    /// Absolute lifetime of its refresh tokens, seconds.
    #[serde(default)]
    pub refresh_absolute_s: u32,
    /// Idle lifetime of its refresh tokens, seconds.
    #[serde(default)]
    pub refresh_idle_s: u32,
}

/// Refresh-token lifetimes of an app (`app_add` with `refresh_tokens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppRefresh {
    /// Absolute lifetime of a family, seconds (default 30 days).
    pub absolute_s: u32,
    /// Idle lifetime, seconds since the last rotation (default 7 days).
    pub idle_s: u32,
}

impl AppRefresh {
    /// Default absolute lifetime: 30 days.
    pub const DEFAULT_ABSOLUTE_S: u32 = 30 * 24 * 3600;
    /// Default idle lifetime: 7 days.
    pub const DEFAULT_IDLE_S: u32 = 7 * 24 * 3600;
    /// Longest lifetime accepted: 366 days.
    pub const MAX_S: u32 = 366 * 24 * 3600;

    fn from_wire(w: &mut WireRequest) -> Result<Option<AppRefresh>, BadRequest> {
        let (absolute, idle) = (w.refresh_absolute_s.take(), w.refresh_idle_s.take());
        if !w.refresh_tokens.take().unwrap_or(false) {
            if absolute.is_some() || idle.is_some() {
                return Err(BadRequest(
                    "refresh lifetimes need `refresh_tokens: true`".into(),
                ));
            }
            return Ok(None);
        }
        let check = |name: &str, value: u32| {
            if value == 0 || value > AppRefresh::MAX_S {
                Err(BadRequest(format!(
                    "`{name}` must be from 1 to {} seconds",
                    AppRefresh::MAX_S
                )))
            } else {
                Ok(value)
            }
        };
        Ok(Some(AppRefresh {
            absolute_s: check(
                "refresh_absolute_s",
                absolute.unwrap_or(AppRefresh::DEFAULT_ABSOLUTE_S),
            )?,
            idle_s: check("refresh_idle_s", idle.unwrap_or(AppRefresh::DEFAULT_IDLE_S))?,
        }))
    }
}

/// `app_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Apps {
    /// The tenant's apps, by name.
    pub apps: Vec<AppInfo>,
}

/// A SAML SP (`sp_add`, each entry of `sp_list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpInfo {
    /// Name in Sigil.
    pub name: String,
    /// Entity ID.
    pub entity_id: String,
    /// ACS URLs, default first.
    pub acs_urls: Vec<String>,
    /// NameID format (short name).
    pub name_id_format: String,
    /// Signing algorithm.
    pub alg: String,
    /// Whether the Assertion is signed.
    pub sign_assertion: bool,
    /// Whether the Response is signed.
    pub sign_response: bool,
    /// Attribute name → user attribute.
    pub attributes: BTreeMap<String, String>,
    /// Assigned group names.
    pub assigned_groups: Vec<String>,
    /// Directly assigned user ids.
    pub assigned_users: Vec<String>,
}

/// `sp_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sps {
    /// The tenant's SPs, by name.
    pub sps: Vec<SpInfo>,
}

/// A caller (each entry of `frontend_list`, and `frontend_remove`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrontendInfo {
    /// Name.
    pub name: String,
    /// Tenants it may act for (`*`: all).
    pub tenants: Vec<String>,
    /// Whether it is an admin.
    pub admin: bool,
    /// Whether it may assert sign-ins with `session_create` (registered
    /// with `--trusted-assertions`). Absent from older nodes: false.
    #[serde(default)]
    pub trusted_assertions: bool,
    /// SHA-256 of its certificate, lowercase hex.
    pub fingerprint: String,
}

/// `frontend_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frontends {
    /// Every caller, by name.
    pub frontends: Vec<FrontendInfo>,
}

/// `app_remove`, `sp_remove`: what was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// Its name.
    pub removed: String,
}

/// The result of an onboarding operation (each encodes as its own map).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OnboardReply {
    /// `tenant_add`, `tenant_suspend`, `tenant_resume`.
    Tenant(TenantInfo),
    /// `tenant_list`.
    Tenants(Tenants),
    /// `app_add`.
    App(AppInfo),
    /// `app_list`.
    Apps(Apps),
    /// `sp_add`.
    Sp(Box<SpInfo>),
    /// `sp_list`.
    Sps(Sps),
    /// `frontend_list`.
    Frontends(Frontends),
    /// `frontend_remove`.
    Frontend(FrontendInfo),
    /// `app_remove`, `sp_remove`.
    Removed(Removed),
}

/// The typed calls of the onboarding operations: each resolves to its
/// result type.
impl crate::Client {
    /// Calls `op` (any [`OnboardOp`]) and decodes its result as `T`.
    ///
    /// # Errors
    /// As [`crate::Client::call_as`]; e.g. `forbidden` for a caller that
    /// is not an admin, `not_found`, `conflict`.
    pub async fn onboard<T: serde::de::DeserializeOwned>(
        &self,
        op: OnboardOp,
    ) -> Result<T, crate::CallError> {
        self.call_as(&crate::Operation::Onboard(Box::new(op))).await
    }

    /// `tenant_add`.
    ///
    /// # Errors
    /// As [`crate::Client::onboard`]; `conflict` when the slug exists.
    pub async fn tenant_add(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<TenantInfo, crate::CallError> {
        self.onboard(OnboardOp::TenantAdd {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
        })
        .await
    }

    /// `tenant_list`.
    ///
    /// # Errors
    /// As [`crate::Client::onboard`].
    pub async fn tenant_list(&self) -> Result<Tenants, crate::CallError> {
        self.onboard(OnboardOp::TenantList).await
    }

    /// `tenant_suspend` (`active` false) or `tenant_resume` (true).
    ///
    /// # Errors
    /// As [`crate::Client::onboard`]; `not_found`.
    pub async fn tenant_set_active(
        &self,
        tenant: &str,
        active: bool,
    ) -> Result<TenantInfo, crate::CallError> {
        let tenant = tenant.to_owned();
        self.onboard(if active {
            OnboardOp::TenantResume { tenant }
        } else {
            OnboardOp::TenantSuspend { tenant }
        })
        .await
    }

    /// `app_list`.
    ///
    /// # Errors
    /// As [`crate::Client::onboard`].
    pub async fn app_list(&self, tenant: &str) -> Result<Apps, crate::CallError> {
        self.onboard(OnboardOp::AppList {
            tenant: tenant.to_owned(),
        })
        .await
    }

    /// `sp_list`.
    ///
    /// # Errors
    /// As [`crate::Client::onboard`].
    pub async fn sp_list(&self, tenant: &str) -> Result<Sps, crate::CallError> {
        self.onboard(OnboardOp::SpList {
            tenant: tenant.to_owned(),
        })
        .await
    }

    /// `frontend_list`.
    ///
    /// # Errors
    /// As [`crate::Client::onboard`].
    pub async fn frontend_list(&self) -> Result<Frontends, crate::CallError> {
        self.onboard(OnboardOp::FrontendList).await
    }

    /// `frontend_remove`.
    ///
    /// # Errors
    /// As [`crate::Client::onboard`]; `not_found`.
    pub async fn frontend_remove(&self, name: &str) -> Result<FrontendInfo, crate::CallError> {
        self.onboard(OnboardOp::FrontendRemove {
            name: name.to_owned(),
        })
        .await
    }
}
