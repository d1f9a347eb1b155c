//! Password verification per core (issue 18): argon2id at the default
//! parameters (OWASP: m=19456 KiB, t=2, p=1) through the `argon2` crate
//! Sigil uses, a legacy bcrypt hash at cost 10, and, measured in the same
//! run as the baseline, one Ed25519 signature with AWS-LC (the hot path's
//! cheapest signature): how many signatures one sign-in costs.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn passwords(c: &mut Criterion) {
    let params = Params::new(19_456, 2, 1, None).unwrap();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
    let stored = argon2
        .hash_password(b"correct horse battery staple", &salt)
        .unwrap()
        .to_string();
    let parsed = PasswordHash::new(&stored).unwrap();
    let legacy = bcrypt::hash(b"correct horse battery staple", 10).unwrap();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let key =
        Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
    let _ = key.public_key();

    let mut group = c.benchmark_group("passwords");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.bench_function("argon2id_verify_default", |b| {
        b.iter(|| {
            Argon2::default()
                .verify_password(black_box(b"correct horse battery staple"), &parsed)
                .unwrap();
        });
    });
    group.bench_function("argon2id_verify_wrong_password", |b| {
        b.iter(|| {
            assert!(Argon2::default()
                .verify_password(black_box(b"wrong"), &parsed)
                .is_err());
        });
    });
    group.bench_function("bcrypt_verify_cost10", |b| {
        b.iter(|| {
            assert!(bcrypt::verify(black_box(b"correct horse battery staple"), &legacy).unwrap())
        });
    });
    group.sample_size(100);
    group.bench_function("baseline_ed25519_sign", |b| {
        b.iter(|| key.sign(black_box(b"header.payload of a typical id token")));
    });
    group.finish();
}

criterion_group!(benches, passwords);
criterion_main!(benches);
