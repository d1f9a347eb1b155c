//! What the directory holds, and the tenant-scoped queries on it.

use std::collections::BTreeMap;
use std::time::SystemTime;

use tokio_postgres::Row;

use crate::admin::{assigned_columns, AppKind};
use crate::db::{millis, time_of, TenantScope};
use crate::Error;

/// Every table whose rows belong to one tenant: each has row-level
/// security, FORCE'd, on the transaction's tenant setting.
pub const TENANT_TABLES: [&str; 16] = [
    "users",
    "groups",
    "memberships",
    "oidc_apps",
    "saml_sps",
    "signing_keys",
    "audit_events",
    "app_group_assignments",
    "app_user_assignments",
    // SCIM (issue 17)
    "scim_tokens",
    // Refresh tokens (issue 19)
    "refresh_tokens",
    // Authentication (issue 18)
    "auth_settings",
    "credentials",
    "user_factors",
    "auth_states",
    "signon_policies",
];

/// A tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// Internal id (the RLS key).
    pub id: i64,
    /// URL name, e.g. `acme`.
    pub slug: String,
    /// `active` or `suspended`.
    pub active: bool,
    /// Issuer override; empty: `{public_url}/t/{slug}`.
    pub issuer: String,
    /// Requests per second; 0: the node's default.
    pub rate_per_second: u32,
    /// Burst; 0: same as the rate.
    pub rate_burst: u32,
    /// Session absolute lifetime, seconds.
    pub session_absolute_s: u32,
    /// Session idle limit, seconds.
    pub session_idle_s: u32,
    /// Algorithms the tenant keeps keys for.
    pub key_algorithms: Vec<String>,
    /// Seconds between rotations.
    pub key_rotation_s: u64,
    /// Seconds a new key is published before it signs.
    pub key_prepublish_s: u64,
    /// Seconds a retired key stays published.
    pub key_retire_grace_s: u64,
    /// Display name (e.g. `Initech, Inc.`); may be empty.
    pub display_name: String,
}

fn to_u32(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Tenant {
    pub(crate) const COLUMNS: &'static str = "tenant_id, slug, status, issuer, rate_per_second, rate_burst, session_absolute_s, session_idle_s, key_algorithms, key_rotation_s, key_prepublish_s, key_retire_grace_s, display_name";

    pub(crate) fn from_row(row: &Row) -> Result<Tenant, Error> {
        Ok(Tenant {
            id: row.try_get(0)?,
            slug: row.try_get(1)?,
            active: row.try_get::<_, String>(2)? == "active",
            issuer: row.try_get(3)?,
            rate_per_second: to_u32(row.try_get(4)?),
            rate_burst: to_u32(row.try_get(5)?),
            session_absolute_s: to_u32(row.try_get(6)?),
            session_idle_s: to_u32(row.try_get(7)?),
            key_algorithms: row.try_get(8)?,
            key_rotation_s: to_u64(row.try_get(9)?),
            key_prepublish_s: to_u64(row.try_get(10)?),
            key_retire_grace_s: to_u64(row.try_get(11)?),
            display_name: row.try_get(12)?,
        })
    }
}

/// A user's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    /// May sign in and get tokens.
    Active,
    /// Temporarily barred.
    Suspended,
    /// Gone for good.
    Deactivated,
}

impl UserStatus {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Suspended => "suspended",
            UserStatus::Deactivated => "deactivated",
        }
    }

    /// Parses the column value.
    pub fn parse(text: &str) -> Option<UserStatus> {
        match text {
            "active" => Some(UserStatus::Active),
            "suspended" => Some(UserStatus::Suspended),
            "deactivated" => Some(UserStatus::Deactivated),
            _ => None,
        }
    }
}

/// A user with the groups it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Stable id (the token subject).
    pub user_id: String,
    /// Login.
    pub login: String,
    /// Email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Status.
    pub status: UserStatus,
    /// Profile attributes.
    pub profile: serde_json::Map<String, serde_json::Value>,
    /// Group names.
    pub groups: Vec<String>,
}

/// A new user.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// Stable id.
    pub user_id: String,
    /// Login.
    pub login: String,
    /// Email.
    pub email: String,
    /// Display name.
    pub display_name: String,
}

/// An OIDC client.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcApp {
    /// Name (client id).
    pub name: String,
    /// Allowed redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Signing algorithm.
    pub algorithm: String,
    /// Claim name → user attribute.
    pub claim_mapping: BTreeMap<String, String>,
    /// ID token lifetime, seconds.
    pub id_token_ttl_s: u32,
    /// Access token lifetime, seconds.
    pub access_token_ttl_s: u32,
    /// Who may use it.
    pub assigned: Assignments,
    /// Where it takes back-channel logout tokens (issue 19), if anywhere.
    pub backchannel_logout_uri: Option<String>,
    /// Refresh tokens (issue 19): allowed, and their lifetimes.
    pub refresh: RefreshSettings,
    /// Its registered JWKS (issue 19): the keys of its `private_key_jwt`
    /// client assertions. None: it cannot call introspection or revocation.
    pub jwks: Option<serde_json::Value>,
}

/// Whether an OIDC app may hold refresh tokens, and for how long (issue 19).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshSettings {
    /// `offline: true` is answered with a refresh token.
    pub allowed: bool,
    /// Absolute lifetime of a family, seconds from its first token.
    pub absolute_s: u32,
    /// Idle lifetime, seconds from the last rotation.
    pub idle_s: u32,
}

impl Default for RefreshSettings {
    /// Not allowed; 30 days absolute, 7 days idle when allowed.
    fn default() -> RefreshSettings {
        RefreshSettings {
            allowed: false,
            absolute_s: 30 * 24 * 3600,
            idle_s: 7 * 24 * 3600,
        }
    }
}

/// A SAML service provider.
#[derive(Debug, Clone, PartialEq)]
pub struct SamlSp {
    /// Name in Sigil.
    pub name: String,
    /// Entity ID.
    pub entity_id: String,
    /// ACS URLs (the first is the default).
    pub acs_urls: Vec<String>,
    /// `emailAddress`, `persistent` or `unspecified`.
    pub name_id_format: String,
    /// Attribute name → user attribute.
    pub attribute_mapping: BTreeMap<String, String>,
    /// Signing algorithm.
    pub algorithm: String,
    /// Sign the Assertion.
    pub sign_assertion: bool,
    /// Sign the Response.
    pub sign_response: bool,
    /// Who may use it.
    pub assigned: Assignments,
}

/// Who may use an OIDC app or SAML SP: members of `groups` and the users
/// in `users`. Empty: nobody (as in Okta).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignments {
    /// Group names.
    pub groups: Vec<String>,
    /// User ids.
    pub users: Vec<String>,
}

impl Assignments {
    /// Assigned to the group `everyone` (every user of the tenant).
    pub fn everyone() -> Assignments {
        Assignments::groups(&["everyone"])
    }

    /// Assigned to the groups named `names`.
    pub fn groups(names: &[&str]) -> Assignments {
        Assignments {
            groups: names.iter().map(|&n| n.to_owned()).collect(),
            users: Vec::new(),
        }
    }

    /// Whether nobody is assigned.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.users.is_empty()
    }
}

/// A stored signing key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRow {
    /// Key id.
    pub kid: String,
    /// Algorithm name.
    pub algorithm: String,
    /// Key spec name (e.g. `RS256-2048`).
    pub key_spec: String,
    /// Backend that can load `blob`.
    pub backend: String,
    /// Wrapped key or HSM reference.
    pub blob: Vec<u8>,
    /// Certificate for SAML metadata.
    pub certificate: Option<Vec<u8>>,
    /// Signs from here (ms since epoch).
    pub activates_at_ms: u64,
    /// Stops signing here.
    pub retires_at_ms: Option<u64>,
    /// Emergency revocation.
    pub revoked_at_ms: Option<u64>,
    /// Created.
    pub created_at_ms: u64,
}

/// A caller of the QUIC API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    /// SHA-256 of its certificate, lowercase hex.
    pub fingerprint: String,
    /// Name.
    pub name: String,
    /// Tenant slugs it may act for (`*`: all).
    pub tenants: Vec<String>,
    /// Whether it may rotate and revoke keys.
    pub admin: bool,
    /// Whether it may assert sign-ins with `session_create` (a federation
    /// or delegation gateway): registered with `--trusted-assertions`.
    pub trusted_assertions: bool,
}

impl Frontend {
    pub(crate) const COLUMNS: &'static str =
        "fingerprint, name, tenants, admin, trusted_assertions";

    pub(crate) fn from_row(row: &Row) -> Result<Frontend, Error> {
        Ok(Frontend {
            fingerprint: row.try_get(0)?,
            name: row.try_get(1)?,
            tenants: row.try_get(2)?,
            admin: row.try_get(3)?,
            trusted_assertions: row.try_get(4)?,
        })
    }

    /// Whether it may act for `tenant`.
    pub fn allows(&self, tenant: &str) -> bool {
        self.tenants.iter().any(|t| t == tenant || t == "*")
    }
}

fn mapping(value: serde_json::Value) -> BTreeMap<String, String> {
    match value {
        serde_json::Value::Object(map) => map
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned())))
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn json_of(map: &BTreeMap<String, String>) -> serde_json::Value {
    serde_json::Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
            .collect(),
    )
}

impl TenantScope<'_> {
    /// The user with `login` (or, failing that, with id `login`).
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn user(&self, login: &str) -> Result<Option<User>, Error> {
        let row = self
            .client()
            .query_opt(
                "SELECT u.user_id, u.login, u.email, u.display_name, u.status, u.profile,
                        coalesce(array_agg(g.name ORDER BY g.name) FILTER (WHERE g.name IS NOT NULL), '{}')
                   FROM users u
                   LEFT JOIN memberships m ON m.tenant_id = u.tenant_id AND m.user_id = u.user_id
                   LEFT JOIN groups g ON g.tenant_id = m.tenant_id AND g.group_id = m.group_id
                  WHERE u.login = $1 OR u.user_id = $1
                  GROUP BY u.tenant_id, u.user_id
                  ORDER BY (u.login = $1) DESC
                  LIMIT 1",
                &[&login],
            )
            .await?;
        row.map(|r| {
            let status: String = r.try_get(4)?;
            let profile: serde_json::Value = r.try_get(5)?;
            Ok(User {
                user_id: r.try_get(0)?,
                login: r.try_get(1)?,
                email: r.try_get(2)?,
                display_name: r.try_get(3)?,
                status: UserStatus::parse(&status).unwrap_or(UserStatus::Suspended),
                profile: match profile {
                    serde_json::Value::Object(map) => map,
                    _ => serde_json::Map::new(),
                },
                groups: r.try_get(6)?,
            })
        })
        .transpose()
    }

    /// Creates a user.
    ///
    /// # Errors
    /// [`Error::Postgres`] (e.g. a duplicate login).
    pub async fn create_user(&self, user: &NewUser) -> Result<(), Error> {
        self.client()
            .execute(
                "INSERT INTO users (tenant_id, user_id, login, email, display_name) VALUES ($1, $2, $3, $4, $5)",
                &[&self.tenant_id(), &user.user_id, &user.login, &user.email, &user.display_name],
            )
            .await?;
        Ok(())
    }

    /// Sets a user's status; returns the user's id, or `None` if unknown.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn set_user_status(
        &self,
        login: &str,
        status: UserStatus,
    ) -> Result<Option<String>, Error> {
        let row = self
            .client()
            .query_opt(
                "UPDATE users SET status = $2, updated_at = now() WHERE login = $1 OR user_id = $1 RETURNING user_id",
                &[&login, &status.as_str()],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Creates a group and puts `members` (logins) in it.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn create_group(
        &self,
        group_id: &str,
        name: &str,
        members: &[&str],
    ) -> Result<(), Error> {
        self.client()
            .execute(
                "INSERT INTO groups (tenant_id, group_id, name) VALUES ($1, $2, $3)",
                &[&self.tenant_id(), &group_id, &name],
            )
            .await?;
        for login in members {
            self.client()
                .execute(
                    "INSERT INTO memberships (tenant_id, group_id, user_id) SELECT $1, $2, user_id FROM users WHERE login = $3",
                    &[&self.tenant_id(), &group_id, login],
                )
                .await?;
        }
        Ok(())
    }

    /// The OIDC app `name`.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn oidc_app(&self, name: &str) -> Result<Option<OidcApp>, Error> {
        let row = self
            .client()
            .query_opt(
                &format!(
                    "SELECT name, redirect_uris, algorithm, claim_mapping, id_token_ttl_s, access_token_ttl_s, {}, backchannel_logout_uri,
                            refresh_tokens, refresh_absolute_s, refresh_idle_s, jwks
                       FROM oidc_apps a WHERE name = $1",
                    assigned_columns("oidc")
                ),
                &[&name],
            )
            .await?;
        row.map(|r| {
            Ok(OidcApp {
                name: r.try_get(0)?,
                redirect_uris: r.try_get(1)?,
                algorithm: r.try_get(2)?,
                claim_mapping: mapping(r.try_get(3)?),
                id_token_ttl_s: to_u32(r.try_get(4)?),
                access_token_ttl_s: to_u32(r.try_get(5)?),
                assigned: Assignments {
                    groups: r.try_get(6)?,
                    users: r.try_get(7)?,
                },
                backchannel_logout_uri: r.try_get(8)?,
                refresh: RefreshSettings {
                    allowed: r.try_get(9)?,
                    absolute_s: to_u32(r.try_get(10)?),
                    idle_s: to_u32(r.try_get(11)?),
                },
                jwks: r.try_get(12)?,
            })
        })
        .transpose()
    }

    /// Creates an OIDC app, assigned as `app.assigned` says (group names,
    /// user logins or ids).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming an unknown group or user;
    /// [`Error::Postgres`] (e.g. the name exists).
    pub async fn create_oidc_app(&self, app: &OidcApp) -> Result<(), Error> {
        let (id_ttl, access_ttl) = (
            i32::try_from(app.id_token_ttl_s).unwrap_or(300),
            i32::try_from(app.access_token_ttl_s).unwrap_or(600),
        );
        let (refresh_absolute, refresh_idle) = (
            i32::try_from(app.refresh.absolute_s).unwrap_or(i32::MAX),
            i32::try_from(app.refresh.idle_s).unwrap_or(i32::MAX),
        );
        self.client()
            .execute(
                "INSERT INTO oidc_apps (tenant_id, name, redirect_uris, algorithm, claim_mapping, id_token_ttl_s, access_token_ttl_s, backchannel_logout_uri,
                                        refresh_tokens, refresh_absolute_s, refresh_idle_s, jwks)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                &[&self.tenant_id(), &app.name, &app.redirect_uris, &app.algorithm, &json_of(&app.claim_mapping), &id_ttl, &access_ttl, &app.backchannel_logout_uri,
                  &app.refresh.allowed, &refresh_absolute, &refresh_idle, &app.jwks],
            )
            .await?;
        self.assign(AppKind::Oidc, &app.name, &app.assigned).await
    }

    /// The SAML SP `name` (or with entity ID `name`).
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn saml_sp(&self, name: &str) -> Result<Option<SamlSp>, Error> {
        let row = self
            .client()
            .query_opt(
                &format!(
                    "SELECT name, entity_id, acs_urls, name_id_format, attribute_mapping, algorithm, sign_assertion, sign_response, {}
                       FROM saml_sps a WHERE name = $1 OR entity_id = $1 ORDER BY (name = $1) DESC LIMIT 1",
                    assigned_columns("saml")
                ),
                &[&name],
            )
            .await?;
        row.map(|r| {
            Ok(SamlSp {
                name: r.try_get(0)?,
                entity_id: r.try_get(1)?,
                acs_urls: r.try_get(2)?,
                name_id_format: r.try_get(3)?,
                attribute_mapping: mapping(r.try_get(4)?),
                algorithm: r.try_get(5)?,
                sign_assertion: r.try_get(6)?,
                sign_response: r.try_get(7)?,
                assigned: Assignments {
                    groups: r.try_get(8)?,
                    users: r.try_get(9)?,
                },
            })
        })
        .transpose()
    }

    /// Creates a SAML SP, assigned as `sp.assigned` says (group names,
    /// user logins or ids).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming an unknown group or user;
    /// [`Error::Postgres`] (e.g. the name or entity ID exists).
    pub async fn create_saml_sp(&self, sp: &SamlSp) -> Result<(), Error> {
        self.client()
            .execute(
                "INSERT INTO saml_sps (tenant_id, name, entity_id, acs_urls, name_id_format, attribute_mapping, algorithm, sign_assertion, sign_response)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &self.tenant_id(),
                    &sp.name,
                    &sp.entity_id,
                    &sp.acs_urls,
                    &sp.name_id_format,
                    &json_of(&sp.attribute_mapping),
                    &sp.algorithm,
                    &sp.sign_assertion,
                    &sp.sign_response,
                ],
            )
            .await?;
        self.assign(AppKind::Saml, &sp.name, &sp.assigned).await
    }

    /// The tenant's stored keys, oldest first.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn keys(&self) -> Result<Vec<KeyRow>, Error> {
        let rows = self
            .client()
            .query(
                "SELECT kid, algorithm, key_spec, backend, key_blob, certificate, activates_at, retires_at, revoked_at, created_at
                   FROM signing_keys ORDER BY created_at, kid COLLATE \"C\"",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(KeyRow {
                    kid: r.try_get(0)?,
                    algorithm: r.try_get(1)?,
                    key_spec: r.try_get(2)?,
                    backend: r.try_get(3)?,
                    blob: r.try_get(4)?,
                    certificate: r.try_get(5)?,
                    activates_at_ms: millis(r.try_get(6)?),
                    retires_at_ms: r.try_get::<_, Option<SystemTime>>(7)?.map(millis),
                    revoked_at_ms: r.try_get::<_, Option<SystemTime>>(8)?.map(millis),
                    created_at_ms: millis(r.try_get(9)?),
                })
            })
            .collect()
    }

    /// Stores a new key.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn insert_key(&self, key: &KeyRow) -> Result<(), Error> {
        self.client()
            .execute(
                "INSERT INTO signing_keys (tenant_id, kid, algorithm, key_spec, backend, key_blob, certificate, activates_at, retires_at, revoked_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                &[
                    &self.tenant_id(),
                    &key.kid,
                    &key.algorithm,
                    &key.key_spec,
                    &key.backend,
                    &key.blob,
                    &key.certificate,
                    &time_of(key.activates_at_ms),
                    &key.retires_at_ms.map(time_of),
                    &key.revoked_at_ms.map(time_of),
                    &time_of(key.created_at_ms),
                ],
            )
            .await?;
        Ok(())
    }

    /// Replaces a key's stored form (a key moved to another binding: the
    /// same key, wrapped or labelled anew). Returns whether it existed.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn replace_key_blob(&self, kid: &str, blob: &[u8]) -> Result<bool, Error> {
        let n = self
            .client()
            .execute(
                "UPDATE signing_keys SET key_blob = $2 WHERE kid = $1",
                &[&kid, &blob],
            )
            .await?;
        Ok(n > 0)
    }

    /// Sets when a key stops signing (if not set earlier).
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn retire_key(&self, kid: &str, at_ms: u64) -> Result<bool, Error> {
        let n = self
            .client()
            .execute(
                "UPDATE signing_keys SET retires_at = $2 WHERE kid = $1 AND (retires_at IS NULL OR retires_at > $2)",
                &[&kid, &time_of(at_ms)],
            )
            .await?;
        Ok(n > 0)
    }

    /// Revokes a key now (emergency): it leaves JWKS at once.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn revoke_key(&self, kid: &str, at_ms: u64) -> Result<bool, Error> {
        let n = self
            .client()
            .execute(
                "UPDATE signing_keys SET revoked_at = $2 WHERE kid = $1 AND revoked_at IS NULL",
                &[&kid, &time_of(at_ms)],
            )
            .await?;
        Ok(n > 0)
    }

    /// Takes this tenant's rotation lock for the transaction: of several
    /// nodes trying at once, one gets it, the others get `false` and skip.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn try_rotation_lock(&self) -> Result<bool, Error> {
        let row = self
            .client()
            .query_one(
                "SELECT pg_try_advisory_xact_lock(7000002, $1::int)",
                &[&i32::try_from(self.tenant_id() % i64::from(i32::MAX)).unwrap_or(0)],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Counts rows this scope can see in each tenant table (for isolation
    /// tests and for `sigil directory` summaries).
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn row_counts(&self) -> Result<BTreeMap<&'static str, i64>, Error> {
        let mut counts = BTreeMap::new();
        for table in TENANT_TABLES {
            let row = self
                .client()
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await?;
            counts.insert(table, row.get(0));
        }
        Ok(counts)
    }
}

impl TenantScope<'_> {
    /// The algorithms the tenant's apps and SPs sign with.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn app_algorithms(&self) -> Result<Vec<String>, Error> {
        let rows = self
            .client()
            .query(
                "SELECT algorithm FROM oidc_apps UNION SELECT algorithm FROM saml_sps",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
