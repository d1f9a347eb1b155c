//! Signed SAML Responses checked by software nobody here wrote: `xmlsec1
//! --verify` with the certificate taken from our metadata, and pysaml2
//! processing them as an SP does. Tampered, re-arranged and wrapped
//! Responses are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::SystemTime;

use aws_lc_rs::rand::SystemRandom;
use serde_json::{json, Value};
use signer::conformance::external::{run_script, xmlsec1_verifies};
use signer::saml::{
    build_signed_response, render_metadata, Attribute, NameId, NameIdFormat, ResponseSpec,
    SsoLocations,
};
use signer::x509::self_signed_certificate;
use signer::{KeySpec, RsaBits, SigningKey, SoftwareKey, Timestamp};

const ISSUER: &str = "https://sigil.test/t/acme";
const SP: &str = "https://sp.example.com/saml/metadata";
const ACS: &str = "https://sp.example.com/saml/acs";
const REQUEST_ID: &str = "id-4f9a1c7e-request";
const DISPLAY: &str = "<b>\"O'Brien\" & Co</b>";

struct Idp {
    key: Arc<dyn SigningKey>,
    metadata: String,
    certificate: Vec<u8>,
}

fn idp(spec: KeySpec) -> Idp {
    let key: Arc<dyn SigningKey> = Arc::new(SoftwareKey::generate(spec).unwrap());
    let now = Timestamp::from_system_time(SystemTime::now());
    let certificate =
        self_signed_certificate(key.as_ref(), ISSUER, now, 3650, &SystemRandom::new()).unwrap();
    let sso = SsoLocations {
        redirect: "https://sso.test/acme/sso/redirect".into(),
        post: "https://sso.test/acme/sso/post".into(),
    };
    let metadata = render_metadata(ISSUER, std::slice::from_ref(&certificate), &sso).unwrap();
    Idp {
        key,
        metadata,
        certificate,
    }
}

fn response(
    idp: &Idp,
    now: Timestamp,
    sign_response: bool,
    in_response_to: Option<&str>,
) -> String {
    let name_id = NameId {
        format: NameIdFormat::EmailAddress,
        value: "alice@acme.test".into(),
    };
    let attributes = [
        Attribute {
            name: "displayName".into(),
            values: vec![DISPLAY.into()],
        },
        Attribute {
            name: "groups".into(),
            values: vec!["engineering".into(), "everyone".into()],
        },
    ];
    let spec = ResponseSpec {
        issuer: ISSUER,
        destination: ACS,
        audience: SP,
        in_response_to,
        name_id: &name_id,
        session_index: "sid-5xK3mB2Q",
        authn_instant: now,
        authn_context_class: "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
        attributes: &attributes,
        validity_secs: 300,
        sign_assertion: true,
        sign_response,
    };
    build_signed_response(
        &spec,
        idp.key.as_ref(),
        &idp.certificate,
        now,
        &SystemRandom::new(),
    )
    .unwrap()
    .xml
}

/// The certificate as an SP finds it: the text of the metadata's
/// X509Certificate element.
fn certificate_from_metadata(metadata: &str) -> Vec<u8> {
    use base64::Engine;
    let start = metadata.find("<ds:X509Certificate>").unwrap() + "<ds:X509Certificate>".len();
    let end = metadata[start..].find("</ds:X509Certificate>").unwrap() + start;
    base64::engine::general_purpose::STANDARD
        .decode(&metadata[start..end])
        .unwrap()
}

struct Case {
    name: String,
    xml: String,
    sp_entity_id: &'static str,
    acs: &'static str,
    outstanding: Option<&'static str>,
    want_response_signed: bool,
    accept: bool,
    /// Whether the Assertion's signature itself must fail xmlsec1 (content
    /// changed under it); `None` where only the SP's processing can tell.
    xmlsec_assertion: Option<bool>,
}

fn run_pysaml2(metadata: &str, cases: &[Case]) -> Value {
    let cases: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({"name": c.name, "xml": c.xml, "sp_entity_id": c.sp_entity_id, "acs": c.acs,
                   "outstanding": c.outstanding, "want_response_signed": c.want_response_signed})
        })
        .collect();
    run_script(
        "saml_sp_check.py",
        &json!({"metadata": metadata, "cases": cases}),
    )
}

fn signature_of<'a>(xml: &'a str, after: &str) -> &'a str {
    let from = xml.find(after).unwrap();
    let start = xml[from..].find("<ds:Signature ").unwrap() + from;
    let end = xml[start..].find("</ds:Signature>").unwrap() + start + "</ds:Signature>".len();
    &xml[start..end]
}

fn cases_for(idp: &Idp, label: &str) -> Vec<Case> {
    let now = Timestamp::from_system_time(SystemTime::now());
    let base = |name: &str, xml: String| Case {
        name: format!("{label}/{name}"),
        xml,
        sp_entity_id: SP,
        acs: ACS,
        outstanding: Some(REQUEST_ID),
        want_response_signed: false,
        accept: false,
        xmlsec_assertion: None,
    };
    let good = response(idp, now, false, Some(REQUEST_ID));
    let both = response(idp, now, true, Some(REQUEST_ID));
    let assertion_start = good.find("<saml:Assertion ").unwrap();
    let assertion_end = good.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
    let assertion = &good[assertion_start..assertion_end];
    let signature = signature_of(&good, "<saml:Assertion ");

    let mut cases = vec![
        Case {
            accept: true,
            xmlsec_assertion: Some(true),
            ..base("sp-initiated", good.clone())
        },
        Case {
            accept: true,
            want_response_signed: true,
            xmlsec_assertion: Some(true),
            ..base("response-and-assertion-signed", both.clone())
        },
        Case {
            accept: true,
            outstanding: None,
            xmlsec_assertion: Some(true),
            ..base("idp-initiated", response(idp, now, false, None))
        },
        Case {
            xmlsec_assertion: Some(false),
            ..base(
                "changed-name-id",
                good.replace(">alice@acme.test<", ">mallory@acme.test<"),
            )
        },
        Case {
            xmlsec_assertion: Some(false),
            ..base(
                "changed-attribute",
                good.replace(">engineering<", ">admins<"),
            )
        },
        Case {
            xmlsec_assertion: Some(false),
            want_response_signed: true,
            ..base(
                "changed-name-id-response-signed",
                both.replace(">alice@acme.test<", ">mallory@acme.test<"),
            )
        },
        // The Assertion's signature taken out and put on the Response.
        base("moved-signature", {
            let without = good.replacen(signature, "", 1);
            let issuer_end = without.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();
            format!(
                "{}{signature}{}",
                &without[..issuer_end],
                &without[issuer_end..]
            )
        }),
        Case {
            xmlsec_assertion: Some(false),
            ..base(
                "duplicated-signature",
                good.replacen(signature, &format!("{signature}{signature}"), 1),
            )
        },
        // Signature wrapping: an unsigned evil Assertion first, the signed
        // original after it.
        base("injected-assertion-first", {
            let evil = assertion
                .replacen(signature, "", 1)
                .replace(">alice@acme.test<", ">mallory@acme.test<")
                .replacen("ID=\"id", "ID=\"evil", 1);
            good.replacen(assertion, &format!("{evil}{assertion}"), 1)
        }),
        // Signature wrapping: the evil Assertion takes the original's ID
        // and place; the signed original hides in samlp:Extensions.
        base("wrapped-in-extensions", {
            let evil = assertion
                .replacen(signature, "", 1)
                .replace(">alice@acme.test<", ">mallory@acme.test<");
            let hidden = format!("<samlp:Extensions>{assertion}</samlp:Extensions>");
            let status = good.find("<samlp:Status>").unwrap();
            let rebuilt = format!("{}{hidden}{}", &good[..status], &good[status..]);
            rebuilt.replacen(assertion, "", 1).replacen(
                "</samlp:Response>",
                &format!("{evil}</samlp:Response>"),
                1,
            )
        }),
        Case {
            sp_entity_id: "https://other-sp.example.com/",
            ..base("wrong-audience", good.clone())
        },
        Case {
            acs: "https://sp.example.com/other-acs",
            ..base("wrong-recipient", good.clone())
        },
        Case {
            outstanding: Some("id-some-other-request"),
            ..base("wrong-in-response-to", good.clone())
        },
        base(
            "expired",
            response(
                idp,
                Timestamp::from_secs(now.secs() - 3600),
                false,
                Some(REQUEST_ID),
            ),
        ),
        Case {
            want_response_signed: true,
            ..base("response-signature-required-but-missing", good.clone())
        },
    ];
    cases.retain(|c| !c.xml.is_empty());
    cases
}

#[test]
fn responses_verify_with_xmlsec1_and_pysaml2_and_forgeries_fail() {
    for (label, spec) in [
        ("RS256-2048", KeySpec::Rs256(RsaBits::B2048)),
        ("ES256", KeySpec::Es256),
    ] {
        let idp = idp(spec);
        let cases = cases_for(&idp, label);
        let results = run_pysaml2(&idp.metadata, &cases);
        let certificate = certificate_from_metadata(&idp.metadata);
        let mut wrong = Vec::new();
        for case in &cases {
            let outcome = &results[&case.name];
            if outcome["ok"].as_bool() != Some(case.accept) {
                wrong.push(format!(
                    "pysaml2 {}: expected accept={}, got {outcome}",
                    case.name, case.accept
                ));
            }
            if let Some(expected) = case.xmlsec_assertion {
                if xmlsec1_verifies(&certificate, &case.xml, "Assertion") != expected {
                    wrong.push(format!("xmlsec1 {}: expected {expected}", case.name));
                }
            }
            if case.accept {
                // The display name round-trips unchanged, groups stay multi-valued.
                assert_eq!(outcome["name_id"], "alice@acme.test", "{}", case.name);
                assert_eq!(
                    outcome["attributes"]["displayName"],
                    json!([DISPLAY]),
                    "{}: {outcome}",
                    case.name
                );
                assert_eq!(
                    outcome["attributes"]["groups"],
                    json!(["engineering", "everyone"]),
                    "{}",
                    case.name
                );
            }
        }
        let both = &cases
            .iter()
            .find(|c| c.name.ends_with("response-and-assertion-signed"))
            .unwrap()
            .xml;
        if !xmlsec1_verifies(&certificate, both, "Response") {
            wrong.push(format!("{label}: xmlsec1 refuses the Response signature"));
        }
        assert!(wrong.is_empty(), "{label}:\n{}", wrong.join("\n"));
    }
}

#[test]
fn metadata_lists_every_signing_certificate_and_the_endpoints() {
    let a = idp(KeySpec::Rs256(RsaBits::B2048));
    let b = idp(KeySpec::Es256);
    let sso = SsoLocations {
        redirect: "https://sso.test/r?a=1&b=2".into(),
        post: "https://sso.test/p".into(),
    };
    let metadata = render_metadata(
        ISSUER,
        &[a.certificate.clone(), b.certificate.clone()],
        &sso,
    )
    .unwrap();
    assert_eq!(
        metadata
            .matches("<md:KeyDescriptor use=\"signing\">")
            .count(),
        2
    );
    assert!(metadata.contains("Location=\"https://sso.test/r?a=1&amp;b=2\""));
    assert!(metadata.contains("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"));
    assert!(metadata.starts_with("<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"https://sigil.test/t/acme\">"));
}

#[test]
fn metadata_keys_follow_rotation() {
    use signer::saml::metadata_keys;
    use signer::{KeyPolicy, KeyRing};
    let t0 = Timestamp::from_secs(1_800_000_000);
    let mut ring = KeyRing::new("acme", KeyPolicy::new(86_400, 3900).unwrap());
    let first: Arc<dyn SigningKey> =
        Arc::new(SoftwareKey::generate(KeySpec::Rs256(RsaBits::B2048)).unwrap());
    let jwt_only: Arc<dyn SigningKey> = Arc::new(SoftwareKey::generate(KeySpec::EdDsa).unwrap());
    ring.add_active(first.clone(), t0).unwrap();
    ring.add_active(jwt_only, t0).unwrap();
    let kids = |at: Timestamp, ring: &KeyRing| -> Vec<String> {
        metadata_keys(&ring.view(at))
            .iter()
            .map(|k| k.kid().to_string())
            .collect()
    };
    assert_eq!(
        kids(t0, &ring),
        vec![first.kid().to_string()],
        "EdDSA keys cannot sign SAML"
    );
    let next: Arc<dyn SigningKey> =
        Arc::new(SoftwareKey::generate(KeySpec::Rs256(RsaBits::B2048)).unwrap());
    let activates = ring.add_pending(next.clone(), t0.plus(60)).unwrap();
    assert_eq!(
        kids(t0.plus(60), &ring),
        vec![first.kid().to_string(), next.kid().to_string()],
        "pending key published"
    );
    assert_eq!(
        kids(activates, &ring),
        vec![next.kid().to_string()],
        "retiring key left out"
    );
}
