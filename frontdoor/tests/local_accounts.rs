//! The embedded default on a machine with other accounts: the node runs as
//! root (its Postgres as `postgres`), an intruder as `nobody`. The
//! intruder reaches neither the private Postgres (not its socket, not
//! with a password) nor any file under the data directory; without the
//! password even root's psql is refused. A data directory an older Sigil
//! left readable is closed at the next start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::{free_port, session, Serve};
use directory::testing::{self, PsqlLogin};
use sigil_proto::Operation;

/// psql against the node's cluster as `account` (None: root).
fn psql(var: &Path, account: Option<&str>, role: &str, password: Option<&str>) -> (bool, String) {
    let port = std::fs::read_to_string(var.join("postgres/port")).unwrap();
    let login = PsqlLogin {
        account,
        role,
        password,
    };
    testing::psql(
        &var.join("postgres/run"),
        port.trim().parse().unwrap(),
        "sigil",
        login,
        "SELECT usesuper FROM pg_user WHERE usename = current_user",
    )
    .unwrap()
}

fn nobody_reads(path: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", "nobody", "--", "cat"])
        .arg(path)
        .output()
        .unwrap()
        .status
        .success()
}

/// Every path under `var` that another account could read or list, except
/// what belongs to the Postgres server's own account.
fn open_to_others(var: &Path) -> Vec<String> {
    let postgres_uid = std::fs::metadata(var.join("postgres/data")).unwrap().uid();
    let mut open = Vec::new();
    let mut stack = vec![var.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.uid() == postgres_uid && meta.uid() != 0 {
            continue; // the server's own files (0700 data, 0700 socket dir)
        }
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            if mode & 0o066 != 0 {
                open.push(format!("{} {mode:o}", path.display()));
            }
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else if mode & 0o066 != 0 {
            open.push(format!("{} {mode:o}", path.display()));
        }
    }
    open
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_local_account_reaches_neither_postgres_nor_the_data() {
    if !directory::running_as_root() {
        eprintln!("skipped: needs root to run the node and the intruder as other accounts");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (quic, http, path) = (free_port(), free_port(), dir.path().to_owned());
    let serve = tokio::task::spawn_blocking(move || Serve::start(&path, quic, http))
        .await
        .unwrap();
    let var = serve.var();
    let client = serve.client(None).await.unwrap();
    let alice = session(&client, "acme", "alice").await;
    client
        .call(&Operation::IdToken {
            tenant: "acme".into(),
            user: "alice".into(),
            app: "app-eddsa".into(),
            session: alice,
            nonce: None,
            offline: false,
        })
        .await
        .unwrap();
    common::wait_shipped(dir.path());

    let superuser = std::fs::read_to_string(var.join("postgres/postgres.password")).unwrap();
    let app = std::fs::read_to_string(var.join("postgres/sigil_app.password")).unwrap();
    for (role, password) in [
        ("postgres", None),
        ("sigil_app", None),
        ("postgres", Some(&superuser)),
    ] {
        let (ok, out) = psql(&var, Some("nobody"), role, password.map(String::as_str));
        assert!(!ok, "nobody got into Postgres as {role}: {out}");
    }
    let (ok, out) = psql(&var, None, "postgres", None);
    assert!(
        !ok && out.contains("password"),
        "no password, no entry: {out}"
    );
    let (ok, out) = psql(&var, None, "sigil_app", Some(&app));
    assert!(
        ok && out.contains(" f"),
        "the run-time role is no superuser: {out}"
    );

    assert_eq!(open_to_others(&var), Vec::<String>::new());
    for file in [
        "audit/node-1.journal",
        "audit/node-1.journal.checkpoint",
        "postgres/postgres.log",
        "postgres/postgres.password",
        "master.key",
        "credentials/admin/key.pem",
        "credentials/admin/cert.pem",
    ] {
        assert!(!nobody_reads(&var.join(file)), "nobody read {file}");
    }
    drop(client);
    tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();

    // What an older Sigil left readable is closed at the next start.
    for (path, mode) in [
        ("audit", 0o755),
        ("audit/node-1.journal", 0o644),
        ("postgres/postgres.log", 0o644),
        ("endpoints.json", 0o644),
    ] {
        std::fs::set_permissions(var.join(path), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let (quic, http, path) = (free_port(), free_port(), dir.path().to_owned());
    let serve = tokio::task::spawn_blocking(move || Serve::start(&path, quic, http))
        .await
        .unwrap();
    assert_eq!(open_to_others(&var), Vec::<String>::new());
    for file in [
        "audit/node-1.journal",
        "postgres/postgres.log",
        "endpoints.json",
    ] {
        assert!(!nobody_reads(&var.join(file)), "nobody read {file}");
    }
    tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
}
