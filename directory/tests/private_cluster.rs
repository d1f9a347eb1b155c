//! The private cluster accepts Sigil alone: another local account cannot
//! reach its socket, and without the password nobody gets in, superuser
//! or not; its files are its own. A cluster an older Sigil made with
//! `trust` is converted at its next start. Run as root (as CI does): the
//! server runs as `postgres`, the intruder as `nobody`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use directory::testing::{self, PsqlLogin};
use directory::{running_as_root, PrivateCluster};

/// `SELECT 1` against the cluster as `account` (`None`: this process's).
fn psql(
    cluster: &PrivateCluster,
    account: Option<&str>,
    role: &str,
    password: Option<&str>,
) -> (bool, String) {
    let login = PsqlLogin {
        account,
        role,
        password,
    };
    testing::psql(
        &cluster.socket_dir(),
        cluster.port(),
        "postgres",
        login,
        "SELECT 1",
    )
    .unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn only_sigil_gets_in() {
    if !running_as_root() {
        eprintln!("skipped: needs root to run the server and the intruder as other accounts");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("postgres");
    let cluster = PrivateCluster::start(&root).unwrap();
    let password = cluster.role_password("postgres").unwrap();

    // Another account: the socket directory is closed to it...
    let (ok, why) = psql(&cluster, Some("nobody"), "postgres", None);
    assert!(!ok && why.contains("Permission denied"), "{why}");
    // ...and knowing the password would not open it either.
    let (ok, why) = psql(&cluster, Some("nobody"), "postgres", Some(&password));
    assert!(!ok, "{why}");
    // An account that can enter (root can): no password, no entry.
    let (ok, why) = psql(&cluster, None, "postgres", None);
    assert!(!ok && why.contains("password"), "{why}");
    let (ok, why) = psql(&cluster, None, "postgres", Some("wrong"));
    assert!(
        !ok && why.contains("password authentication failed"),
        "{why}"
    );
    let (ok, why) = psql(&cluster, None, "postgres", Some(&password));
    assert!(ok, "the password in the 0600 file works: {why}");

    assert_eq!(mode(&cluster.socket_dir()), 0o700);
    assert_eq!(mode(&root.join("postgres.log")), 0o600);
    assert_eq!(mode(&root.join("postgres.password")), 0o600);
    assert_eq!(mode(&root.join("port")), 0o600);
    assert_eq!(
        mode(&root) & 0o066,
        0,
        "search only for the server's account"
    );
    let hba = std::fs::read_to_string(root.join("data/pg_hba.conf")).unwrap();
    assert!(
        !hba.contains("trust") && hba.contains("scram-sha-256"),
        "{hba}"
    );
    cluster.stop().unwrap();
}

#[test]
fn a_cluster_made_with_trust_is_converted() {
    if !running_as_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("postgres");
    // An older Sigil's cluster: trust for everyone, no password file.
    let first = PrivateCluster::start(&root).unwrap();
    first.stop().unwrap();
    std::fs::remove_file(root.join("postgres.password")).unwrap();
    std::fs::write(
        root.join("data/pg_hba.conf"),
        "local all all trust\nhost all all 127.0.0.1/32 trust\n",
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("postgres.log"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();

    let cluster = PrivateCluster::start(&root).unwrap();
    let password = cluster.role_password("postgres").unwrap();
    let (ok, why) = psql(&cluster, None, "postgres", None);
    assert!(!ok && why.contains("password"), "trust is gone: {why}");
    let (ok, why) = psql(&cluster, None, "postgres", Some(&password));
    assert!(ok, "{why}");
    assert_eq!(mode(&root.join("postgres.log")), 0o600);
    cluster.stop().unwrap();
}
