//! The embedded default's demo data: tenants `acme` (users alice, bob) and
//! `globex` (user carol); in each, the demo apps and SPs. Only the
//! embedded default and `sigil demo` make it; a production directory
//! starts empty.

use std::collections::BTreeMap;

use super::{DEMO_APPS, DEMO_SPS};
use crate::{Assignments, Directory, Error, NewUser, OidcApp, Owner, RefreshSettings, SamlSp};

/// A demo user: login, display name, groups.
pub type DemoUser = (&'static str, &'static str, &'static [&'static str]);

/// The demo tenants and their users.
pub const DEMO_TENANTS: [(&str, &[DemoUser]); 2] = [
    (
        "acme",
        &[
            ("alice", "Alice Anders", &["engineering", "everyone"]),
            ("bob", "Bob Berg", &["everyone"]),
        ],
    ),
    ("globex", &[("carol", "Carol Chen", &["everyone"])]),
];

/// Creates the demo data in a directory that has no tenant yet (tenants
/// through the owner, their contents through the run-time role). Returns
/// whether it did: a directory with any tenant, e.g. one whose `acme` was
/// renamed, is left alone.
///
/// # Errors
/// [`Error::Postgres`].
pub async fn create_demo_data(
    owner: &Owner,
    directory: &Directory,
    rate_per_second: u32,
) -> Result<bool, Error> {
    if !owner.is_empty().await? {
        return Ok(false);
    }
    for (slug, users) in DEMO_TENANTS {
        let tenant = owner.create_tenant(slug, "", rate_per_second).await?;
        let scope = directory.tenant(tenant.id).await?;
        for (i, (login, name, _)) in users.iter().enumerate() {
            scope
                .create_user(&NewUser {
                    user_id: format!("00u{slug}{i:04}"),
                    login: (*login).to_owned(),
                    email: format!("{login}@{slug}.example"),
                    display_name: (*name).to_owned(),
                })
                .await?;
        }
        let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (login, _, member_of) in users.iter() {
            for group in member_of.iter() {
                groups.entry(group).or_default().push(login);
            }
        }
        // Every demo app and SP is for every demo user (group `everyone`)
        // and assigned to each demo group, so that the `groups` claim
        // names them (it lists only assigned groups, docs/admin.md).
        let assigned = Assignments {
            groups: groups.keys().map(|&g| g.to_owned()).collect(),
            users: Vec::new(),
        };
        // `everyone` comes with the tenant, and every user joins it.
        groups.remove("everyone");
        for (i, (group, members)) in groups.iter().enumerate() {
            scope
                .create_group(&format!("00g{slug}{i:04}"), group, members)
                .await?;
        }
        let claims: BTreeMap<String, String> =
            [("email", "email"), ("name", "name"), ("groups", "groups")]
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect();
        for (name, algorithm) in DEMO_APPS {
            scope
                .create_oidc_app(&OidcApp {
                    name: name.into(),
                    redirect_uris: vec![format!("https://{name}.{slug}.example/callback")],
                    algorithm: algorithm.into(),
                    claim_mapping: claims.clone(),
                    id_token_ttl_s: 300,
                    access_token_ttl_s: 600,
                    assigned: assigned.clone(),
                    backchannel_logout_uri: None,
                    // The demo shows refresh tokens (issue 19).
                    refresh: RefreshSettings {
                        allowed: true,
                        ..RefreshSettings::default()
                    },
                    jwks: None,
                })
                .await?;
        }
        for (name, algorithm) in DEMO_SPS {
            scope
                .create_saml_sp(&SamlSp {
                    name: name.into(),
                    entity_id: format!("https://{name}.{slug}.example/saml"),
                    acs_urls: vec![format!("https://{name}.{slug}.example/acs")],
                    name_id_format: "emailAddress".into(),
                    attribute_mapping: [("email", "email"), ("groups", "groups")]
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect(),
                    algorithm: algorithm.into(),
                    sign_assertion: true,
                    sign_response: true,
                    assigned: assigned.clone(),
                })
                .await?;
        }
        scope.commit().await?;
    }
    Ok(true)
}
