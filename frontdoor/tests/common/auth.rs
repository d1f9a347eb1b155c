//! What the authentication tests (issue 18) share: the external tools
//! (scripts/auth_check.py: argon2-cffi, bcrypt, pyotp, PyJWT), `sigil`
//! with standard input, typed calls, and a node started with an `[auth]`
//! table.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use sigil_proto::auth::{AuthOp, AuthStatus};
use sigil_proto::client::CallError;
use sigil_proto::{Client, ErrorCode};
use signer::conformance::external::run_script;

use super::{free_port, Serve, SIGIL};

/// Runs scripts/auth_check.py with `tasks`; returns their results.
pub fn python(tasks: Vec<Value>) -> Vec<Value> {
    let out = run_script("auth_check.py", &json!({ "tasks": tasks }));
    out["results"].as_array().unwrap().clone()
}

/// `sigil ARGS` in the node's directory with `stdin`; (exit ok, JSON).
pub fn sigil_stdin(serve: &Serve, args: &[&str], stdin: &str) -> (bool, Value) {
    let mut child = Command::new(SIGIL)
        .current_dir(&serve.dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "{args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.success(), value)
}

pub fn refused(outcome: Result<impl std::fmt::Debug, CallError>) -> (ErrorCode, String) {
    match outcome {
        Err(CallError::Refused(e)) => (e.code, e.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

pub async fn authenticate(
    client: &Client,
    tenant: &str,
    user: &str,
    password: &str,
) -> Result<AuthStatus, CallError> {
    client.authenticate(tenant, user, password, None).await
}

pub async fn op<T: serde::de::DeserializeOwned>(
    client: &Client,
    op: AuthOp,
) -> Result<T, CallError> {
    client.auth(op).await
}

/// The stored hash of `login` in `tenant`, read behind Sigil's back.
pub async fn stored_hash(db: &tokio_postgres::Client, tenant: &str, login: &str) -> String {
    db.query_one(
        "SELECT c.password_hash FROM credentials c JOIN users u USING (tenant_id, user_id)
           JOIN tenants t USING (tenant_id) WHERE t.slug = $1 AND u.login = $2",
        &[&tenant, &login],
    )
    .await
    .unwrap()
    .get(0)
}

pub async fn set_tenant_settings(db: &tokio_postgres::Client, tenant: &str, threshold: i32) {
    db.execute(
        "INSERT INTO auth_settings (tenant_id, lockout_threshold)
         SELECT tenant_id, $2 FROM tenants WHERE slug = $1
         ON CONFLICT (tenant_id) DO UPDATE SET lockout_threshold = $2",
        &[&tenant, &threshold],
    )
    .await
    .unwrap();
}

pub fn start(dir: &std::path::Path, auth: &str) -> Serve {
    let config = dir.join("sigil.toml");
    std::fs::write(&config, format!("[auth]\n{auth}\n")).unwrap();
    Serve::start_with(
        dir,
        free_port(),
        free_port(),
        &["--config", config.to_str().unwrap()],
    )
}

/// Sets `login`'s password in `tenant` with `sigil admin user set-password`
/// (the node's admin caller).
pub fn set_password(serve: &Serve, tenant: &str, login: &str, password: &str) {
    let (ok, out) = sigil_stdin(
        serve,
        &[
            "admin",
            "user",
            "set-password",
            "--tenant",
            tenant,
            "--user",
            login,
            "--password-stdin",
        ],
        &format!("{password}\n"),
    );
    assert!(ok && out["result"]["password_set"] == true, "{out}");
}
