//! How a node and the operator commands reach the directory: the embedded
//! default's private cluster (made, migrated, its run-time role let in,
//! its demo data and callers made once), or a production database given
//! by URL (the run-time role; the owner only to migrate and for `sigil
//! admin`).

use anyhow::Context;
use directory::{Directory, Frontend, Owner, PrivateCluster, APP_ROLE};

use super::Layout;
use crate::config::Config;
use sigil_proto::credentials::Credentials;
use sigil_proto::target::credentials_dir;

/// The node's directory: in the embedded default with its demo data and
/// demo callers (made once, in a directory without tenants), the owner's
/// connection closed again before the node serves.
pub(crate) async fn open_node_directory(
    config: &Config,
    layout: &Layout,
) -> anyhow::Result<(Directory, Option<PrivateCluster>)> {
    if !config.embedded() {
        return open_directory(config, 4).await.context("directory");
    }
    let (owner, directory, cluster) = open_embedded(config, 4).await.context("directory")?;
    let cluster = StartedCluster(Some(cluster));
    let demo =
        directory::seed::create_demo_data(&owner, &directory, config.limits.default_tenant_rate)
            .await?;
    if demo {
        eprintln!("sigil: created demo tenants acme and globex");
    }
    register_demo_callers(layout, &owner).await?;
    Ok((directory, cluster.keep()))
}

/// Connects to the directory the configuration names, as the run-time
/// role: its URL (after migrating with `owner_url`, when given), or the
/// private cluster under the data directory (started if needed, migrated,
/// its run-time role allowed in).
///
/// # Errors
/// When Postgres cannot be started or reached, the schema is not current,
/// or the URL logs in as a role that could escape row-level security.
pub async fn open_directory(
    config: &Config,
    pool: usize,
) -> anyhow::Result<(Directory, Option<PrivateCluster>)> {
    if config.embedded() {
        let (_owner, directory, cluster) = open_embedded(config, pool).await?;
        return Ok((directory, Some(cluster)));
    }
    if !config.postgres.owner_url.is_empty() {
        let owner: tokio_postgres::Config = config
            .postgres
            .owner_url
            .parse()
            .context("postgres.owner_url")?;
        Owner::connect(&owner)
            .await
            .context("migrating as postgres.owner_url")?;
    }
    let app: tokio_postgres::Config = config.postgres.url.parse().context("postgres.url")?;
    Ok((Directory::connect(app, pool).await?, None))
}

/// Connects as the owner of the directory's tables (migrating): the
/// private cluster's superuser, or `[postgres] owner_url`.
///
/// # Errors
/// When Postgres cannot be reached, or a production configuration has no
/// `owner_url`.
pub async fn open_owner(config: &Config) -> anyhow::Result<(Owner, Option<PrivateCluster>)> {
    if config.embedded() {
        let (owner, _directory, cluster) = open_embedded(config, 1).await?;
        return Ok((owner, Some(cluster)));
    }
    anyhow::ensure!(
        !config.postgres.owner_url.is_empty(),
        "this needs the schema owner: set [postgres] owner_url (docs/operations.md)"
    );
    let owner: tokio_postgres::Config = config
        .postgres
        .owner_url
        .parse()
        .context("postgres.owner_url")?;
    Ok((Owner::connect(&owner).await?, None))
}

/// The embedded default's private cluster: started, database `sigil`
/// made, migrated by the superuser, the run-time role allowed in with its
/// generated password; the owner's and the run-time connections.
async fn open_embedded(
    config: &Config,
    pool: usize,
) -> anyhow::Result<(Owner, Directory, PrivateCluster)> {
    let root = Layout {
        root: config.data_dir.clone(),
    }
    .postgres();
    let cluster = tokio::task::spawn_blocking(move || PrivateCluster::start(&root)).await??;
    // Stopped again if what follows fails and this process started it.
    let started = StartedCluster(Some(cluster));
    let cluster = started.0.as_ref().context("private cluster")?;
    create_database(cluster).await?;
    let owner = Owner::connect(&cluster.config("sigil")).await?;
    let password = cluster.role_password(APP_ROLE)?;
    owner.allow_app_login(&password).await?;
    let directory =
        Directory::connect(cluster.config_as(APP_ROLE, &password, "sigil"), pool).await?;
    let cluster = started.keep().context("private cluster")?;
    Ok((owner, directory, cluster))
}

async fn create_database(cluster: &PrivateCluster) -> anyhow::Result<()> {
    let (client, connection) = cluster
        .config("postgres")
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(connection);
    if client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = 'sigil'", &[])
        .await?
        .is_none()
    {
        client.batch_execute("CREATE DATABASE sigil").await?;
    }
    // Temporary tables are not the run-time role's to make (it owns nothing).
    client
        .batch_execute("REVOKE TEMPORARY ON DATABASE sigil FROM PUBLIC")
        .await?;
    Ok(())
}

/// Registers the demo callers' certificates (idempotent): the embedded
/// default's only. The demo front end stands for the federated SSO front
/// ends the demo and `sigil-perf` model: it asserts sign-ins with
/// `session_create`, so it is registered with `trusted_assertions` (and
/// given it when a directory from before the flag has it without).
///
/// # Errors
/// When the directory fails.
pub async fn register_demo_callers(layout: &Layout, owner: &Owner) -> anyhow::Result<()> {
    for (who, tenants, admin, trusted_assertions) in [
        (
            "frontend",
            vec!["acme".to_owned(), "globex".to_owned()],
            false,
            true,
        ),
        ("admin", vec!["*".to_owned()], true, false),
    ] {
        let credentials = Credentials::load(&credentials_dir(&layout.root, who))?;
        let fingerprint = credentials.fingerprint();
        match owner.frontend(&fingerprint).await? {
            None => {
                owner
                    .register_frontend(&Frontend {
                        fingerprint,
                        name: format!("demo-{who}"),
                        tenants,
                        admin,
                        trusted_assertions,
                    })
                    .await?;
            }
            Some(known) if known.trusted_assertions != trusted_assertions => {
                owner
                    .set_trusted_assertions(&fingerprint, trusted_assertions)
                    .await?;
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The private cluster while a node starts: stopped again if the start
/// fails (and this process started it), kept once the node runs.
pub(crate) struct StartedCluster(pub(crate) Option<PrivateCluster>);

impl StartedCluster {
    pub(crate) fn keep(mut self) -> Option<PrivateCluster> {
        self.0.take()
    }
}

impl Drop for StartedCluster {
    fn drop(&mut self) {
        if let Some(cluster) = self.0.take().filter(PrivateCluster::started_here) {
            let _ = cluster.stop();
        }
    }
}
