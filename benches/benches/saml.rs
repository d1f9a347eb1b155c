//! Signed SAML Responses per second per core against raw signing with the
//! same key in the same run (RSA-2048 and ECDSA P-256).
//!
//! Run: `cargo bench -p benches --bench saml`, then
//! `python3 scripts/bench_table.py saml`.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use signer::saml::{build_signed_response, Attribute, NameId, NameIdFormat, ResponseSpec};
use signer::x509::self_signed_certificate;
use signer::{KeySpec, RsaBits, SigningKey, SoftwareKey, Timestamp};

fn responses(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let now = Timestamp::from_secs(1_800_000_000);
    let name_id = NameId {
        format: NameIdFormat::EmailAddress,
        value: "alice@acme.example".into(),
    };
    let attributes = [
        Attribute {
            name: "displayName".into(),
            values: vec!["Alice Example".into()],
        },
        Attribute {
            name: "groups".into(),
            values: vec!["engineering".into(), "everyone".into(), "oncall".into()],
        },
    ];
    let spec = ResponseSpec {
        issuer: "https://sigil.example/t/acme",
        destination: "https://acme.my.salesforce.com/saml/acs",
        audience: "https://saml.salesforce.com",
        in_response_to: Some("id-4f9a1c7e-request"),
        name_id: &name_id,
        session_index: "sid-5xK3mB2Q",
        authn_instant: now,
        authn_context_class: "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
        attributes: &attributes,
        validity_secs: 300,
        sign_assertion: true,
        sign_response: false,
    };
    for key_spec in [KeySpec::Rs256(RsaBits::B2048), KeySpec::Es256] {
        let key = match SoftwareKey::generate(key_spec) {
            Ok(key) => key,
            Err(e) => panic!("{e}"),
        };
        let certificate =
            self_signed_certificate(&key, spec.issuer, now, 3650, &rng).unwrap_or_default();
        // Raw: signing a message the size of a canonical SignedInfo.
        let message = vec![b'x'; 620];
        let mut group = c.benchmark_group(format!("saml/{key_spec}"));
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::from_parameter("raw"), |b| {
            b.iter(|| key.sign(&message))
        });
        group.bench_function(BenchmarkId::from_parameter("response"), |b| {
            b.iter(|| build_signed_response(&spec, &key, &certificate, now, &rng))
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(30);
    targets = responses
}
criterion_main!(benches);
