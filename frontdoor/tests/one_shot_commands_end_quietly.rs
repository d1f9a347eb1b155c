//! A one-shot command on the embedded default starts the private Postgres,
//! does its work and stops it again. Its connections then end because
//! Postgres shuts down: that is the normal end of the command and prints no
//! `WARN directory::db: directory connection ended` (a connection lost
//! while a node serves still warns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{free_port, Serve, SIGIL};

#[test]
fn one_shot_commands_print_no_warning_when_they_stop_postgres() {
    let dir = tempfile::tempdir().unwrap();
    // A first `sigil serve` makes the state (CA, Postgres, demo tenant).
    Serve::start(dir.path(), free_port(), free_port()).stop();
    let commands: [&[&str]; 3] = [
        &["audit", "status"],
        &["audit", "verify", "--tenant", "acme"],
        &[
            "admin",
            "frontend",
            "add",
            "--name",
            "quiet",
            "--tenants",
            "acme",
            "--out",
            "quiet",
        ],
    ];
    for args in commands {
        let output = Command::new(SIGIL)
            .current_dir(dir.path())
            .env("RUST_LOG", "warn")
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?}: {stderr}");
        assert!(!stderr.contains("WARN"), "{args:?}: {stderr}");
    }
}
