//! The PKCS#11 backend against a real SoftHSM2 token: the shared backend
//! suite, keys that cannot leave the token, a PIN that never shows, bounded
//! waits for sessions, and tokens that verify with jsonwebtoken and PyJWT.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod softhsm_token;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cryptoki::mechanism::MechanismType;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use hw::{Hsm, HsmConfig, PinSource, Pkcs11Backend};
use serde_json::{json, Value};
use signer::conformance::check_backend;
use signer::conformance::external::{openssl_verifies_self_signed, run_script, xmlsec1_verifies};
use signer::jwt::{new_jti, TokenClaims, TokenLifetime, TokenType, UnsignedJwt};
use signer::{KeyBackend, KeyPolicy, KeyRing, KeySpec, RsaBits, Timestamp};
use softhsm_token::token;

fn backend() -> Pkcs11Backend {
    Pkcs11Backend::new(Hsm::open(&token().config).expect("open token"))
}

#[test]
fn pkcs11_backend_passes_the_shared_suite() {
    let backend = backend();
    let specs = [
        KeySpec::Rs256(RsaBits::B2048),
        KeySpec::Ps256(RsaBits::B2048),
        KeySpec::Rs256(RsaBits::B3072),
        KeySpec::Es256,
        KeySpec::Es384,
        KeySpec::EdDsa,
    ];
    let checked =
        check_backend(&backend, &specs).unwrap_or_else(|f| panic!("{} failed: {}", f.spec, f.what));
    let mut expected = specs[..5].to_vec();
    if backend.hsm().offers(MechanismType::EDDSA)
        && backend
            .hsm()
            .offers(MechanismType::ECC_EDWARDS_KEY_PAIR_GEN)
    {
        expected.push(KeySpec::EdDsa);
    }
    eprintln!("pkcs11 conformance checked: {checked:?}");
    assert_eq!(checked, expected);
}

#[test]
fn private_keys_are_sensitive_non_extractable_token_objects() {
    let backend = backend();
    for spec in [KeySpec::Es256, KeySpec::Rs256(RsaBits::B2048)] {
        let generated = backend.generate("acme", spec).unwrap();
        let label = format!("sigil/acme/{}", generated.key.kid());
        let attributes = backend
            .hsm()
            .with_session("inspect", |session| {
                let handles = session.find_objects(&[
                    Attribute::Class(ObjectClass::PRIVATE_KEY),
                    Attribute::Label(label.as_bytes().to_vec()),
                ])?;
                assert_eq!(handles.len(), 1, "one private key per label");
                let flags = session.get_attributes(
                    handles[0],
                    &[
                        AttributeType::Sensitive,
                        AttributeType::Extractable,
                        AttributeType::Token,
                        AttributeType::NeverExtractable,
                        AttributeType::Id,
                    ],
                )?;
                // Asking for the private value itself: the token must not
                // hand it over.
                let secret = session.get_attributes(
                    handles[0],
                    &[AttributeType::Value, AttributeType::PrivateExponent],
                );
                Ok((flags, secret))
            })
            .unwrap();
        let (flags, secret) = attributes;
        assert!(
            flags.contains(&Attribute::Sensitive(true)),
            "{spec}: {flags:?}"
        );
        assert!(
            flags.contains(&Attribute::Extractable(false)),
            "{spec}: {flags:?}"
        );
        assert!(flags.contains(&Attribute::Token(true)), "{spec}: {flags:?}");
        assert!(
            flags.contains(&Attribute::NeverExtractable(true)),
            "{spec}: {flags:?}"
        );
        assert!(flags.contains(&Attribute::Id(
            generated.key.kid().as_str().as_bytes().to_vec()
        )));
        match secret {
            Err(_) => {}
            Ok(values) => assert!(
                values
                    .iter()
                    .all(|a| !matches!(a, Attribute::Value(_) | Attribute::PrivateExponent(_))),
                "{spec}: private value was returned"
            ),
        }
        // The stored form is a reference, with no key bytes in it.
        let blob = String::from_utf8(generated.stored.blob.clone()).unwrap();
        assert!(blob.starts_with("pkcs11-v1\0"), "{blob:?}");
        assert!(blob.ends_with(&label));
    }
}

#[test]
fn the_pin_never_shows() {
    let config = &token().config;
    let pin = &token().pin;
    assert!(pin.len() >= 16);
    let shown = format!("{config:?}");
    assert!(!shown.contains(pin.as_str()), "{shown}");
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.pin");
    std::fs::write(&wrong, "9999-wrong-pin").unwrap();
    let bad = HsmConfig {
        pin: PinSource::File(wrong),
        ..config.clone()
    };
    let error = Hsm::open(&bad)
        .expect_err("a wrong pin must be refused")
        .to_string();
    assert!(
        !error.contains("9999-wrong-pin") && !error.contains(pin.as_str()),
        "{error}"
    );
    assert!(error.contains("login"), "{error}");
    let unset = HsmConfig {
        pin: PinSource::Env("SIGIL_TEST_PIN_THAT_IS_NOT_SET".into()),
        ..config.clone()
    };
    assert!(Hsm::open(&unset)
        .unwrap_err()
        .to_string()
        .contains("not set"));
    let missing = HsmConfig {
        token_label: "no-such-token".into(),
        ..config.clone()
    };
    assert!(Hsm::open(&missing)
        .unwrap_err()
        .to_string()
        .contains("no-such-token"));
}

#[test]
fn a_signature_waits_a_bounded_time_for_a_session() {
    let config = HsmConfig {
        sessions: 1,
        checkout_timeout: Duration::from_millis(150),
        ..token().config.clone()
    };
    let hsm = Hsm::open(&config).unwrap();
    let backend = Pkcs11Backend::new(Arc::clone(&hsm));
    let key = backend.generate("acme", KeySpec::Es256).unwrap().key;
    std::thread::scope(|s| {
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let hsm = &hsm;
        s.spawn(move || {
            hsm.with_session("hold", |_| {
                held_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(600));
                Ok(())
            })
            .unwrap();
        });
        held_rx.recv().unwrap();
        let started = Instant::now();
        let error = key.sign(b"m").expect_err("the only session is held");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        assert!(error.to_string().contains("no hsm session free"), "{error}");
    });
    assert!(key.sign(b"m").is_ok(), "free again once returned");
    assert!(
        hsm.counters()
            .busy
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

#[test]
fn hsm_signed_tokens_verify_with_jsonwebtoken_and_pyjwt() {
    let backend = backend();
    let now = Timestamp::from_system_time(SystemTime::now());
    let mut ring = KeyRing::new("acme", KeyPolicy::default());
    for spec in [
        KeySpec::Rs256(RsaBits::B2048),
        KeySpec::Ps256(RsaBits::B2048),
        KeySpec::Es256,
        KeySpec::Es384,
        KeySpec::EdDsa,
    ] {
        if backend.supports(spec) {
            ring.add_active(backend.generate("acme", spec).unwrap().key, now)
                .unwrap();
        }
    }
    let view = ring.view(now);
    let issuer = "https://sigil.test/t/acme";
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let jwks: Value = serde_json::from_slice(view.jwks()).unwrap();
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let mut cases = Vec::new();
    for active in view.active_keys() {
        let claims = TokenClaims {
            issuer: issuer.into(),
            subject: "00u1alice".into(),
            audience: vec!["app".into()],
            ..TokenClaims::default()
        };
        let token = UnsignedJwt::build(
            active.header(TokenType::IdToken),
            &claims,
            now,
            TokenLifetime::from_secs(300).unwrap(),
            &new_jti(&rng).unwrap(),
        )
        .unwrap()
        .sign_inline(active.key().as_ref())
        .unwrap();
        // jsonwebtoken, in process.
        let jwk = set.find(active.key().kid().as_str()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(
            jwk.common
                .key_algorithm
                .unwrap()
                .to_string()
                .parse()
                .unwrap(),
        );
        validation.set_audience(&["app"]);
        validation.set_issuer(&[issuer]);
        jsonwebtoken::decode::<Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", active.key().algorithm()));
        cases.push(json!({"name": active.key().algorithm().name(), "token": token, "issuer": issuer, "audience": "app"}));
    }
    assert!(cases.len() >= 4);
    let results = run_script("verify_jwt.py", &json!({"jwks": jwks, "cases": cases}));
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        assert_eq!(
            results[name],
            json!({"pyjwt": "ok", "jwcrypto": "ok"}),
            "{name}"
        );
    }
}

#[test]
fn certificates_of_hsm_keys_are_signed_by_the_hsm_and_verify_with_openssl() {
    let backend = backend();
    let before = backend
        .hsm()
        .counters()
        .signatures
        .load(std::sync::atomic::Ordering::Relaxed);
    let now = Timestamp::from_system_time(SystemTime::now());
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let specs = [
        KeySpec::Rs256(RsaBits::B2048),
        KeySpec::Es256,
        KeySpec::Es384,
        KeySpec::EdDsa,
    ];
    for spec in specs {
        let key = backend.generate("acme", spec).unwrap().key;
        let der = signer::x509::self_signed_certificate(
            key.as_ref(),
            "https://sigil.test/t/acme",
            now,
            3650,
            &rng,
        )
        .unwrap();
        assert!(openssl_verifies_self_signed(&der), "{spec}");
    }
    let after = backend
        .hsm()
        .counters()
        .signatures
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        after >= before + specs.len() as u64,
        "the HSM made the certificate signatures"
    );
}

#[test]
fn saml_responses_signed_in_the_hsm_verify_with_xmlsec1_and_pysaml2() {
    use signer::saml::{
        build_signed_response, render_metadata, Attribute, NameId, NameIdFormat, ResponseSpec,
        SsoLocations,
    };
    let backend = backend();
    let now = Timestamp::from_system_time(SystemTime::now());
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let (issuer, sp, acs) = (
        "https://sigil.test/t/acme",
        "https://sp.example.com/saml",
        "https://sp.example.com/acs",
    );
    let mut cases = Vec::new();
    let mut certificates = Vec::new();
    for spec in [KeySpec::Rs256(RsaBits::B2048), KeySpec::Es256] {
        let key = backend.generate("acme", spec).unwrap().key;
        let certificate =
            signer::x509::self_signed_certificate(key.as_ref(), issuer, now, 3650, &rng).unwrap();
        let name_id = NameId {
            format: NameIdFormat::EmailAddress,
            value: "alice@acme.test".into(),
        };
        let attributes = [Attribute {
            name: "groups".into(),
            values: vec!["eng".into(), "all".into()],
        }];
        let response = build_signed_response(
            &ResponseSpec {
                issuer,
                destination: acs,
                audience: sp,
                in_response_to: Some("id-request-1"),
                name_id: &name_id,
                session_index: "sid-1",
                authn_instant: now,
                authn_context_class:
                    "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
                attributes: &attributes,
                validity_secs: 300,
                sign_assertion: true,
                sign_response: true,
            },
            key.as_ref(),
            &certificate,
            now,
            &rng,
        )
        .unwrap();
        // xmlsec1, with the HSM-signed certificate, on both signatures.
        for parent in ["Assertion", "Response"] {
            assert!(
                xmlsec1_verifies(&certificate, &response.xml, parent),
                "{spec} {parent}"
            );
        }
        cases.push(
            json!({"name": spec.name(), "xml": response.xml, "sp_entity_id": sp, "acs": acs,
                          "outstanding": "id-request-1", "want_response_signed": true}),
        );
        certificates.push(certificate);
    }
    // pysaml2 trusts exactly the certificates in our metadata.
    let sso = SsoLocations {
        redirect: "https://sso.test/r".into(),
        post: "https://sso.test/p".into(),
    };
    let metadata = render_metadata(issuer, &certificates, &sso).unwrap();
    let results = run_script(
        "saml_sp_check.py",
        &json!({"metadata": metadata, "cases": cases}),
    );
    for name in ["RS256-2048", "ES256"] {
        assert_eq!(results[name]["ok"], true, "{name}: {}", results[name]);
        assert_eq!(results[name]["attributes"]["groups"], json!(["eng", "all"]));
    }
}
