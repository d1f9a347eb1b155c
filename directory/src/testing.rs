//! For tests: one private cluster per test binary (reused across runs, in
//! the system temp directory), a fresh database per test.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::{find_binaries, seed, Directory, Error, Owner, PrivateCluster, APP_ROLE};

static CLUSTER: OnceLock<Mutex<Option<PrivateCluster>>> = OnceLock::new();

fn root() -> PathBuf {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "tests".into());
    // Test binaries are named crate-hash: one cluster per binary.
    std::env::temp_dir().join(format!("sigil-pg-{exe}"))
}

/// Stops and removes the clusters earlier builds of this test binary left
/// running (same test name, another build hash, whose owning process has
/// exited): each build would otherwise keep one Postgres alive for good.
/// A cluster without an owner file, or whose owner still runs (another
/// checkout testing at the same time), is left alone.
fn reap_stale_clusters(root: &Path) {
    let (Some(name), Some(parent)) = (root.file_name().and_then(|n| n.to_str()), root.parent())
    else {
        return;
    };
    let Some((stem, _build)) = name.rsplit_once('-') else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(other) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if other == name || other.rsplit_once('-').map(|(s, _)| s) != Some(stem) {
            continue;
        }
        let owner = std::fs::read_to_string(path.join("owner.pid"))
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok());
        let Some(owner) = owner else {
            continue;
        };
        if Path::new("/proc").join(owner.to_string()).exists() {
            continue;
        }
        if let Ok(stale) = PrivateCluster::start(&path) {
            let _ = stale.stop();
        }
        let _ = std::fs::remove_dir_all(&path);
    }
}

/// A migrated database of its own in the shared cluster.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// As the owner of its tables (the cluster's superuser).
    pub owner: tokio_postgres::Config,
    /// As the run-time role (`sigil_app`, with its password).
    pub app: tokio_postgres::Config,
}

impl TestDatabase {
    /// The owner's connection and a run-time directory of `pool`
    /// connections.
    ///
    /// # Errors
    /// When Postgres refuses either.
    pub async fn open(&self, pool: usize) -> Result<(Owner, Directory), Error> {
        let owner = Owner::connect(&self.owner).await?;
        let directory = Directory::connect(self.app.clone(), pool).await?;
        Ok((owner, directory))
    }
}

fn shared_cluster() -> Result<(tokio_postgres::Config, String, PrivateClusterAddress), Error> {
    let slot = CLUSTER.get_or_init(|| Mutex::new(None));
    let mut guard = slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if guard.is_none() {
        let root = root();
        reap_stale_clusters(&root);
        let cluster = PrivateCluster::start(&root)?;
        // Marks the cluster as this process's while it runs.
        let _ = std::fs::write(root.join("owner.pid"), std::process::id().to_string());
        *guard = Some(cluster);
    }
    match guard.as_ref() {
        Some(cluster) => Ok((
            cluster.config("postgres"),
            cluster.role_password(APP_ROLE)?,
            PrivateClusterAddress {
                socket_dir: cluster.socket_dir(),
                port: cluster.port(),
            },
        )),
        None => Err(Error::Cluster("not started".into())),
    }
}

struct PrivateClusterAddress {
    socket_dir: PathBuf,
    port: u16,
}

/// The shared cluster's connection configuration (as its superuser) for a
/// new, empty database made for the caller: no schema yet.
///
/// # Errors
/// [`Error`] when the cluster cannot start or the database cannot be made.
pub async fn empty_database() -> Result<tokio_postgres::Config, Error> {
    Ok(new_database().await?.0)
}

async fn new_database() -> Result<(tokio_postgres::Config, String, PrivateClusterAddress), Error> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let (config, app_password, address) = shared_cluster()?;
    let name = format!(
        "t_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let admin = crate::db::open(&config).await?;
    if NEXT.load(Ordering::Relaxed) == 1 {
        // First database of this run: drop what earlier runs left.
        let stale: Vec<String> = admin
            .query("SELECT datname FROM pg_database WHERE datname LIKE 't\\_%' AND datname NOT LIKE $1", &[&format!("t\\_{}\\_%", std::process::id())])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for db in stale {
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                .await;
        }
    }
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    let mut config = config;
    config.dbname(&name);
    Ok((config, app_password, address))
}

/// A new database of its own, migrated by its owner, whose run-time role
/// may log in.
///
/// # Errors
/// [`Error`] when the cluster cannot start, the database cannot be made
/// or migrated.
pub async fn fresh_database() -> Result<TestDatabase, Error> {
    let (owner, app_password, address) = new_database().await?;
    let migrated = Owner::connect(&owner).await?;
    // Once per process: the role is the cluster's, and tests run at once.
    static APP_LOGIN: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    APP_LOGIN
        .get_or_try_init(|| migrated.allow_app_login(&app_password))
        .await?;
    let mut app = tokio_postgres::Config::new();
    app.host_path(&address.socket_dir)
        .port(address.port)
        .user(APP_ROLE)
        .password(app_password)
        .dbname(owner.get_dbname().unwrap_or_default());
    Ok(TestDatabase { owner, app })
}

/// A fresh database with the demo data, its owner's connection and a
/// run-time directory of `pool` connections.
///
/// # Errors
/// As [`fresh_database`].
pub async fn demo_directory(pool: usize) -> Result<(TestDatabase, Owner, Directory), Error> {
    let database = fresh_database().await?;
    let (owner, directory) = database.open(pool).await?;
    seed::create_demo_data(&owner, &directory, 1000).await?;
    Ok((database, owner, directory))
}

/// Who runs a `psql`: the local `account` (`None`: this process's), the
/// Postgres `role`, its `password` (none: no prompt, no `PGPASSWORD`).
#[derive(Debug, Clone, Copy)]
pub struct PsqlLogin<'a> {
    /// Local account (through `runuser`, so the caller must be root).
    pub account: Option<&'a str>,
    /// Postgres role.
    pub role: &'a str,
    /// Its password.
    pub password: Option<&'a str>,
}

/// Runs `psql -c sql` on database `dbname` through the Unix socket in
/// `socket_dir` (port `port`) as `login`: whether it succeeded, and what
/// it printed (stdout then stderr).
///
/// # Errors
/// [`Error::MissingBinary`] without psql; [`Error::Cluster`] when it
/// cannot be run.
pub fn psql(
    socket_dir: &Path,
    port: u16,
    dbname: &str,
    login: PsqlLogin<'_>,
    sql: &str,
) -> Result<(bool, String), Error> {
    let psql = find_binaries()?.join("psql");
    let mut command = match login.account {
        Some(account) => {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", account, "--"]).arg(psql);
            command
        }
        None => std::process::Command::new(psql),
    };
    command
        .arg("-h")
        .arg(socket_dir)
        .args([
            "-p",
            &port.to_string(),
            "-U",
            login.role,
            "-d",
            dbname,
            "-w",
        ])
        .args(["-c", sql])
        .env_remove("PGPASSWORD")
        .current_dir("/");
    if let Some(password) = login.password {
        command.env("PGPASSWORD", password);
    }
    let output = command
        .output()
        .map_err(|e| Error::Cluster(format!("psql: {e}")))?;
    Ok((
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    ))
}
