//! `sigil serve --config` on a database of its own (an "external"
//! Postgres, set up with the roles docs/operations.md describes): the
//! directory starts empty — no demo tenant, no caller, no credential on
//! the node's disk; the first admin comes from `sigil admin bootstrap`,
//! once; a configuration whose run-time login owns the tables is refused;
//! a tenant renamed by the operator keeps its keys across a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, sigil_output, wait_for_status, Serve, SIGIL};
use directory::PrivateCluster;
use serde_json::Value;

/// The operator's setup of a fresh database: an owner role for the
/// schema, a run-time role that owns nothing (docs/operations.md).
async fn external_database(root: &Path) -> (PrivateCluster, String, String) {
    let cluster = PrivateCluster::start(root).unwrap();
    let (admin, connection) = cluster
        .config("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    for statement in [
        "CREATE ROLE sigil_owner LOGIN PASSWORD 'owner-secret'",
        "CREATE ROLE sigil_app LOGIN PASSWORD 'app-secret'",
        "CREATE DATABASE sigil OWNER sigil_owner",
        "REVOKE TEMPORARY ON DATABASE sigil FROM PUBLIC",
    ] {
        admin.batch_execute(statement).await.unwrap();
    }
    let url = |who: &str, password: &str| {
        format!(
            "postgresql://{who}:{password}@/sigil?host={}&port={}",
            cluster.socket_dir().display(),
            cluster.port()
        )
    };
    let (app, owner) = (
        url("sigil_app", "app-secret"),
        url("sigil_owner", "owner-secret"),
    );
    (cluster, app, owner)
}

async fn owner_sql(url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
}

async fn count(url: &str, sql: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// `sigil serve` expected to refuse to start; its stderr.
fn serve_refuses(dir: &Path, config: &Path) -> String {
    let mut child = Command::new(SIGIL)
        .current_dir(dir)
        .args(["serve", "--config", config.to_str().unwrap()])
        .args(["--quic-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--http-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--control-listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "sigil serve was expected to refuse");
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return stderr;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sigil serve started where it should have refused");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn jwks_kids(serve: &Serve, tenant: &str) -> Vec<String> {
    let path = format!("/t/{tenant}/.well-known/jwks.json");
    let body = wait_for_status(serve, &path, 200, Duration::from_secs(30));
    let jwks: Value = serde_json::from_slice(&body).unwrap();
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

fn rotate(serve: &Serve, credentials: &Path, tenant: &str) -> Output {
    let target = serve.endpoints.quic.to_string();
    sigil_output(
        &serve.dir,
        &[
            "keys",
            "rotate",
            "--tenant",
            tenant,
            "--alg",
            "EdDSA",
            "--target",
            &target,
            "--server-name",
            "localhost",
            "--cert-dir",
            credentials.to_str().unwrap(),
        ],
    )
}

/// A fresh production node: no tenant, no caller, no demo credential.
async fn assert_nothing_but_the_schema(serve: &Serve, owner_url: &str) {
    assert_eq!(count(owner_url, "SELECT count(*) FROM tenants").await, 0);
    assert_eq!(count(owner_url, "SELECT count(*) FROM frontends").await, 0);
    let mut credentials: Vec<String> = std::fs::read_dir(serve.var().join("credentials"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    credentials.sort();
    assert_eq!(credentials, vec!["node-node-1".to_owned()]);
    wait_for_status(
        serve,
        "/t/acme/.well-known/jwks.json",
        404,
        Duration::from_secs(10),
    );
    let log = std::fs::read_to_string(
        serve
            .dir
            .join(format!("serve-{}.log", serve.endpoints.quic.port())),
    )
    .unwrap();
    assert!(!log.contains("demo"), "{log}");
}

/// The first admin, when the operator asks; never a second this way.
/// Returns where its credentials are.
async fn bootstrap_once(dir: &Path, config: &str, owner_url: &str) -> std::path::PathBuf {
    let admin = dir.join("admin");
    let made = sigil_output(
        dir,
        &[
            "admin",
            "bootstrap",
            "--config",
            config,
            "--out",
            admin.to_str().unwrap(),
        ],
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let second = dir.join("second");
    let again = sigil_output(
        dir,
        &[
            "admin",
            "bootstrap",
            "--config",
            config,
            "--out",
            second.to_str().unwrap(),
        ],
    );
    let why = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && why.contains("admin caller exists"),
        "{why}"
    );
    assert!(
        !second.join("key.pem").exists(),
        "no credential for a refused bootstrap"
    );
    assert_eq!(
        count(owner_url, "SELECT count(*) FROM frontends WHERE admin").await,
        1
    );
    admin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_production_directory_starts_empty_and_gets_one_bootstrapped_admin() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, app_url, owner_url) = external_database(&dir.path().join("external")).await;
    let config = dir.path().join("prod.toml");
    std::fs::write(
        &config,
        format!("[postgres]\nurl = {app_url:?}\nowner_url = {owner_url:?}\n"),
    )
    .unwrap();
    let config_arg = config.to_str().unwrap().to_owned();
    let (quic, http, path) = (free_port(), free_port(), dir.path().to_owned());
    let arg = config_arg.clone();
    let serve = tokio::task::spawn_blocking(move || {
        Serve::start_with(&path, quic, http, &["--config", &arg])
    })
    .await
    .unwrap();

    assert_nothing_but_the_schema(&serve, &owner_url).await;
    let admin = bootstrap_once(dir.path(), &config_arg, &owner_url).await;

    // The operator onboards a tenant; the bootstrapped admin rotates its keys.
    owner_sql(&owner_url, "INSERT INTO tenants (slug) VALUES ('initech')").await;
    let rotated = rotate(&serve, &admin, "initech");
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stdout)
    );
    let kids = jwks_kids(&serve, "initech");
    assert!(kids.len() >= 4, "{kids:?}");
    tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();

    // Renamed while the node was down: its keys are bound to its id, not
    // its name; the next start serves them under the new name.
    owner_sql(
        &owner_url,
        "UPDATE tenants SET slug = 'initrode' WHERE slug = 'initech'",
    )
    .await;
    let (quic, http, path) = (free_port(), free_port(), dir.path().to_owned());
    let arg = config_arg.clone();
    let serve = tokio::task::spawn_blocking(move || {
        Serve::start_with(&path, quic, http, &["--config", &arg])
    })
    .await
    .unwrap();
    assert_eq!(jwks_kids(&serve, "initrode"), kids);
    let rotated = rotate(&serve, &admin, "initrode");
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stdout)
    );
    assert_eq!(
        count(
            &owner_url,
            "SELECT count(*) FROM tenants WHERE slug IN ('acme', 'globex')"
        )
        .await,
        0,
        "no demo tenant made at any start"
    );
    tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();

    // A run-time login that owns the tables is refused at start.
    let careless = dir.path().join("careless.toml");
    std::fs::write(&careless, format!("[postgres]\nurl = {owner_url:?}\n")).unwrap();
    let stderr = serve_refuses(dir.path(), &careless);
    assert!(
        stderr.contains("owns tables") || stderr.contains("owner"),
        "{stderr}"
    );
    cluster.stop().unwrap();
}
