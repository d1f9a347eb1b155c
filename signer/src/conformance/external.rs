//! Running verifiers nobody at Sigil wrote (PyJWT, jwcrypto, pysaml2,
//! xmlsec1, OpenSSL) from the test suites of every crate, the same way.
//!
//! The Python verifiers live in the checkout's `.venv` (made by
//! `scripts/setup.sh`) or wherever `$SIGIL_PYTHON` points; their scripts in
//! `scripts/`. A missing verifier is a failure with a message saying what to
//! install, never a skipped test.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (this crate's parent directory).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python with the verifiers installed.
///
/// # Panics
/// When neither `$SIGIL_PYTHON` nor `.venv/bin/python` exists: run
/// `scripts/setup.sh`.
pub fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("SIGIL_PYTHON") {
        // Relative to the workspace: tests run in their crate's directory.
        return workspace().join(path);
    }
    let venv = workspace().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "the external verifiers are not installed: run `bash scripts/setup.sh` (or scripts/test.sh)"
    );
    venv
}

/// Runs `scripts/{script}` with `input` as its JSON input file and returns
/// the JSON it prints.
///
/// # Panics
/// When the script cannot run, fails, or prints something that is not JSON.
pub fn run_script(script: &str, input: &serde_json::Value) -> serde_json::Value {
    let dir = std::env::temp_dir().join(format!("sigil-verifier-{}-{script}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let file = dir.join(format!("input-{}.json", unique()));
    std::fs::write(&file, serde_json::to_vec(input).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let output = Command::new(python())
        .arg(workspace().join("scripts").join(script))
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{script} printed no JSON: {e}"))
}

/// Has PyJWT and jwcrypto verify each of `cases` (`{name, token, issuer,
/// audience}`) against the JWKS they fetch from `jwks_url`, as an SP does.
///
/// # Panics
/// When a case does not verify with both (named, with `context`).
pub fn assert_jwts_verify(jwks_url: &str, cases: &[serde_json::Value], context: &str) {
    let results = run_script(
        "verify_jwt.py",
        &serde_json::json!({"jwks_url": jwks_url, "cases": cases}),
    );
    for case in cases {
        let name = case["name"].as_str().unwrap_or_default();
        assert_eq!(
            results[name],
            serde_json::json!({"pyjwt": "ok", "jwcrypto": "ok"}),
            "{context}{name}"
        );
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `openssl verify` of a self-signed certificate against itself (checks its
/// signature and validity). Returns whether OpenSSL accepts it.
///
/// # Panics
/// When OpenSSL cannot run (`apt-get install openssl`).
pub fn openssl_verifies_self_signed(certificate_der: &[u8]) -> bool {
    let dir = std::env::temp_dir();
    let path = dir.join(format!(
        "sigil-cert-{}-{}.pem",
        std::process::id(),
        unique()
    ));
    std::fs::write(&path, crate::x509::certificate_pem(certificate_der))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let output = Command::new("openssl")
        .args(["verify", "-check_ss_sig", "-CAfile"])
        .arg(&path)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("openssl: {e} (apt-get install openssl)"));
    let _ = std::fs::remove_file(&path);
    output.status.success()
}

/// `xmlsec1 --verify` of the first Signature inside the element named
/// `parent` (`Assertion` or `Response`), trusting only `certificate_der`.
/// Returns whether xmlsec1 accepts it.
///
/// # Panics
/// When xmlsec1 cannot run (`apt-get install xmlsec1`).
pub fn xmlsec1_verifies(certificate_der: &[u8], xml: &str, parent: &str) -> bool {
    let dir = std::env::temp_dir();
    let n = unique();
    let cert = dir.join(format!("sigil-idp-{}-{n}.pem", std::process::id()));
    let file = dir.join(format!("sigil-response-{}-{n}.xml", std::process::id()));
    std::fs::write(&cert, crate::x509::certificate_pem(certificate_der))
        .unwrap_or_else(|e| panic!("{}: {e}", cert.display()));
    std::fs::write(&file, xml).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let output = Command::new("xmlsec1")
        .args([
            "--verify",
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:protocol:Response",
            "--enabled-reference-uris",
            "same-doc",
            "--pubkey-cert-pem",
        ])
        .arg(&cert)
        .arg("--node-xpath")
        .arg(format!(
            "(//*[local-name()='{parent}']/*[local-name()='Signature'])[1]"
        ))
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("xmlsec1: {e} (apt-get install xmlsec1)"));
    let _ = std::fs::remove_file(&cert);
    let _ = std::fs::remove_file(&file);
    output.status.success()
}
