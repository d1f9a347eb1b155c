//! Data Sigil itself puts into a directory, none of it a customer's: the
//! embedded default's demo tenants ([`create_demo_data`]: `acme` and
//! `globex`, made once for `sigil serve` without a database and `sigil
//! demo`), and synthetic tenants for load tests ([`run`], `sigil directory
//! seed`): many tenants with a Zipf-like spread of sizes (a few with
//! hundreds of thousands of users, most with tens), loaded with COPY;
//! users are `user{n}` with `n` from 1. Both get the same apps and SPs
//! ([`DEMO_APPS`], [`DEMO_SPS`]), assigned to the group `everyone` that
//! every user is in, so a load can pick any tenant and user.
//! The shape of a seeded directory (sizes and names) is the `seed-plan`
//! crate's, which `sigil-perf` shares.

use futures_util::SinkExt;
pub use seed_plan::{
    password_of, tenant_slug, user_login, SeedPlan, PASSWORD_USERS, SEED_PASSWORD,
};

use crate::{Error, Owner};

mod demo;
pub use demo::{create_demo_data, DemoUser, DEMO_TENANTS};

/// The demo OIDC apps: name and algorithm.
pub const DEMO_APPS: [(&str, &str); 5] = [
    ("app-rs256", "RS256"),
    ("app-ps256", "PS256"),
    ("app-es256", "ES256"),
    ("app-es384", "ES384"),
    ("app-eddsa", "EdDSA"),
];

/// The demo SAML SPs: name and algorithm.
pub const DEMO_SPS: [(&str, &str); 2] = [("sp-rs256", "RS256"), ("sp-es256", "ES256")];

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

async fn copy(client: &tokio_postgres::Client, statement: &str, data: String) -> Result<(), Error> {
    let sink = client.copy_in(statement).await?;
    let mut sink = Box::pin(sink);
    sink.send(bytes::Bytes::from(data)).await?;
    sink.as_mut().finish().await?;
    Ok(())
}

/// Loads the credentials of users already loaded (none: nothing to do).
async fn copy_credentials(client: &tokio_postgres::Client, rows: String) -> Result<(), Error> {
    if rows.is_empty() {
        return Ok(());
    }
    copy(
        client,
        "COPY credentials (tenant_id, user_id, password_hash) FROM STDIN",
        rows,
    )
    .await
}

/// Seeds the directory. `progress(done, total)` is called as users load.
/// `password_hash`, when given, is the PHC string of [`SEED_PASSWORD`]
/// (hashed once by the caller) stored as the credential of the users
/// [`password_of`] gives a password: the same hash, and so the same salt,
/// for all of them, which is acceptable in a load-test directory only.
/// Needs a connection that may bypass row-level security (the private
/// cluster's superuser; elsewhere a role with BYPASSRLS).
///
/// # Errors
/// [`Error::Invalid`] without the privilege; [`Error::Conflict`] when
/// seeded tenants exist already; [`Error::Postgres`].
pub async fn run(
    owner: &Owner,
    plan: SeedPlan,
    password_hash: Option<&str>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<(), Error> {
    let owner = owner.client().await;
    let may: bool = owner
        .query_one(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await?
        .get(0);
    if !may {
        return Err(Error::Invalid("seeding loads with COPY past row-level security: connect as a superuser or a role with BYPASSRLS".into()));
    }
    let existing: i64 = owner
        .query_one("SELECT count(*) FROM tenants WHERE slug LIKE 'seed-%'", &[])
        .await?
        .get(0);
    if existing > 0 {
        return Err(Error::Conflict(format!(
            "{existing} seeded tenants exist already"
        )));
    }
    let sizes = plan.sizes();
    let mut tenants = String::new();
    for n in 1..=plan.tenants {
        tenants.push_str(&format!("{}\n", tenant_slug(n)));
    }
    owner.batch_execute("BEGIN").await?;
    copy(&owner, "COPY tenants (slug) FROM STDIN", tenants).await?;
    let ids: Vec<(i64, String)> = owner
        .query(
            "SELECT tenant_id, slug FROM tenants WHERE slug LIKE 'seed-%'",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let id_of: std::collections::HashMap<String, i64> =
        ids.into_iter().map(|(id, slug)| (slug, id)).collect();
    // Apps and SPs of every tenant.
    let mut apps = String::new();
    let mut sps = String::new();
    for n in 1..=plan.tenants {
        let slug = tenant_slug(n);
        let id = id_of
            .get(&slug)
            .copied()
            .ok_or_else(|| Error::Invalid(format!("{slug} vanished")))?;
        for (name, alg) in DEMO_APPS {
            apps.push_str(&format!("{id}\t{name}\t{alg}\t{{\"email\":\"email\",\"name\":\"name\",\"groups\":\"groups\"}}\tt\n"));
        }
        for (name, alg) in DEMO_SPS {
            sps.push_str(&format!(
                "{id}\t{name}\thttps://{name}.{slug}.example/saml\t{{https://{name}.{slug}.example/acs}}\t{alg}\t{{\"email\":\"email\",\"groups\":\"groups\"}}\n"
            ));
        }
    }
    copy(
        &owner,
        "COPY oidc_apps (tenant_id, name, algorithm, claim_mapping, refresh_tokens) FROM STDIN",
        apps,
    )
    .await?;
    copy(&owner, "COPY saml_sps (tenant_id, name, entity_id, acs_urls, algorithm, attribute_mapping) FROM STDIN", sps).await?;
    // Every app and SP is for every user: assigned to the group
    // `everyone`, which each tenant got with its row (and each user joins).
    for (kind, table) in [("oidc", "oidc_apps"), ("saml", "saml_sps")] {
        owner
            .batch_execute(&format!(
                "INSERT INTO app_group_assignments (tenant_id, kind, app, group_id)
                 SELECT a.tenant_id, '{kind}', a.name, g.group_id
                   FROM {table} a
                   JOIN groups g ON g.tenant_id = a.tenant_id AND g.name = 'everyone'
                   JOIN tenants t ON t.tenant_id = a.tenant_id
                  WHERE t.slug LIKE 'seed-%'"
            ))
            .await?;
    }
    // Users, in chunks so progress moves.
    let total = plan.users;
    let mut done = 0u64;
    let mut chunk = String::with_capacity(8 << 20);
    let mut in_chunk = 0u64;
    let mut credentials = String::new();
    for (index, size) in sizes.iter().enumerate() {
        let slug = tenant_slug(index as u64 + 1);
        let id = id_of
            .get(&slug)
            .copied()
            .ok_or_else(|| Error::Invalid(format!("{slug} vanished")))?;
        for u in 1..=*size {
            let login = user_login(u);
            chunk.push_str(&format!(
                "{id}\tu{id}-{u}\t{login}\t{login}@{}\tUser {u}\n",
                escape(&format!("{slug}.example"))
            ));
            if let (Some(hash), Some(_)) = (password_hash, password_of(u)) {
                credentials.push_str(&format!("{id}\tu{id}-{u}\t{}\n", escape(hash)));
            }
            in_chunk += 1;
            if in_chunk == 50_000 {
                copy(
                    &owner,
                    "COPY users (tenant_id, user_id, login, email, display_name) FROM STDIN",
                    std::mem::take(&mut chunk),
                )
                .await?;
                copy_credentials(&owner, std::mem::take(&mut credentials)).await?;
                done += in_chunk;
                in_chunk = 0;
                progress(done, total);
            }
        }
    }
    if in_chunk > 0 {
        copy(
            &owner,
            "COPY users (tenant_id, user_id, login, email, display_name) FROM STDIN",
            chunk,
        )
        .await?;
        done += in_chunk;
        progress(done, total);
    }
    copy_credentials(&owner, credentials).await?;
    owner.batch_execute("COMMIT").await?;
    Ok(())
}
