//! Certificates signed through the key-backend trait verify with OpenSSL
//! (software nobody here wrote) and carry the key's own public key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::rand::SystemRandom;
use signer::conformance::external::openssl_verifies_self_signed;
use signer::x509::{certificate_pem, self_signed_certificate};
use signer::{KeySpec, RsaBits, SigningKey, SoftwareKey, Timestamp};
use x509_parser::prelude::{FromDer, X509Certificate};

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
        assert!(openssl_verifies_self_signed(&der), "{spec}");
        let (_, parsed) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(
            parsed.public_key().raw,
            key.public_key().spki_der(),
            "{spec}: certifies its own key"
        );
        // A tampered certificate does not verify.
        let mut bad = der.clone();
        let at = bad.len() - 10;
        bad[at] ^= 0x01;
        assert!(
            !openssl_verifies_self_signed(&bad),
            "{spec}: tampered certificate verified"
        );
    }
    let pss = SoftwareKey::generate(KeySpec::Ps256(RsaBits::B2048)).unwrap();
    assert!(self_signed_certificate(&pss, "x", now, 1, &SystemRandom::new()).is_err());
    let pem = certificate_pem(&[0u8; 100]);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n") && pem.lines().all(|l| l.len() <= 64));
}
