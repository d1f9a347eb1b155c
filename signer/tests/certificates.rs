//! Certificates signed through the key-backend trait verify with OpenSSL
//! (software nobody here wrote) and carry the key's own public key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use aws_lc_rs::rand::SystemRandom;
use signer::x509::self_signed_certificate;
use signer::{KeySpec, RsaBits, SigningKey, SoftwareKey, Timestamp};

fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// `openssl verify` of a self-signed certificate against itself checks its
/// signature; `openssl x509 -pubkey` shows the key it certifies.
pub fn check_with_openssl(key: &dyn SigningKey, der: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cert.pem");
    std::fs::write(&path, pem(der)).unwrap();
    let verify = Command::new("openssl")
        .args(["verify", "-check_ss_sig", "-CAfile"])
        .arg(&path)
        .arg(&path)
        .output()
        .expect("openssl runs");
    assert!(
        verify.status.success(),
        "{}: {}{}",
        key.algorithm(),
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let pubkey = Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(&path)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&pubkey.stdout);
    let body: String = shown.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine;
    let spki = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    assert_eq!(spki, key.public_key().spki_der(), "{}", key.algorithm());
}

#[test]
fn certificates_of_software_keys_verify_with_openssl() {
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    for spec in [
        KeySpec::Rs256(RsaBits::B2048),
        KeySpec::Es256,
        KeySpec::Es384,
        KeySpec::EdDsa,
    ] {
        let key = SoftwareKey::generate(spec).unwrap();
        let der = self_signed_certificate(
            &key,
            "https://sigil.test/t/acme",
            now,
            3650,
            &SystemRandom::new(),
        )
        .unwrap();
        check_with_openssl(&key, &der);
        // A tampered certificate does not verify.
        let mut bad = der.clone();
        let at = bad.len() - 10;
        bad[at] ^= 0x01;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.pem");
        std::fs::write(&path, pem(&bad)).unwrap();
        let out = Command::new("openssl")
            .args(["verify", "-check_ss_sig", "-CAfile"])
            .arg(&path)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{spec}: tampered certificate verified"
        );
    }
    let pss = SoftwareKey::generate(KeySpec::Ps256(RsaBits::B2048)).unwrap();
    assert!(self_signed_certificate(&pss, "x", now, 1, &SystemRandom::new()).is_err());
}
