//! The AWS-LC backend passes the shared backend suite, and keys at rest hold
//! no private key bytes in clear.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use signer::conformance::check_backend;
use signer::{KeyBackend, KeySpec, MasterKey, SoftwareBackend, SoftwareKey};

fn backend() -> (SoftwareBackend, Arc<MasterKey>) {
    let master = Arc::new(MasterKey::from_bytes(&[0x5a; 32]).unwrap());
    (SoftwareBackend::new(Arc::clone(&master)), master)
}

#[test]
fn aws_lc_backend_passes_the_shared_suite() {
    let (backend, _) = backend();
    let checked = check_backend(&backend, &KeySpec::ALL)
        .unwrap_or_else(|f| panic!("{} failed: {}", f.spec, f.what));
    assert_eq!(
        checked,
        KeySpec::ALL.to_vec(),
        "the software backend supports every spec"
    );
}

/// The private key appears nowhere in what is stored: not the PKCS#8 DER, nor
/// any 12-byte window of it that is not also in the public key.
#[test]
fn stored_keys_hold_no_private_bytes_in_clear() {
    let (backend, master) = backend();
    for spec in KeySpec::ALL {
        let generated = backend.generate("acme", spec).unwrap();
        let blob = &generated.stored.blob;
        // Recover the clear PKCS#8 the way only the master key holder can, to
        // know what must not appear.
        let split = blob.iter().position(|&b| b == 0).unwrap();
        let mut context = b"sigil-key-v1\0acme\0".to_vec();
        context.extend_from_slice(generated.key.kid().as_str().as_bytes());
        let pkcs8 = master.unwrap(&context, &blob[split + 1..]).unwrap();
        let reloaded = SoftwareKey::from_pkcs8(spec, &pkcs8).unwrap();
        assert_eq!(signer::SigningKey::kid(&reloaded), generated.key.kid());

        let public = generated.key.public_key().spki_der();
        let leaks: Vec<usize> = pkcs8
            .windows(12)
            .enumerate()
            .filter(|(_, w)| !public.windows(12).any(|p| p == *w))
            .filter(|(_, w)| blob.windows(12).any(|b| b == *w))
            .map(|(i, _)| i)
            .collect();
        assert!(
            leaks.is_empty(),
            "{spec}: private bytes at offsets {leaks:?} of the PKCS#8 appear in the stored blob"
        );
        let debug = format!("{:?} {:?}", generated.stored, generated.key);
        assert!(
            !debug.contains(&format!("{:?}", &pkcs8[..8])),
            "Debug output must not show key bytes"
        );
    }
}

#[test]
fn stored_keys_do_not_load_under_another_master_key() {
    let (backend, _) = backend();
    let generated = backend.generate("acme", KeySpec::Es256).unwrap();
    let other = SoftwareBackend::new(Arc::new(MasterKey::from_bytes(&[0x5b; 32]).unwrap()));
    let err = other
        .load("acme", generated.key.kid(), &generated.stored)
        .unwrap_err();
    assert_eq!(err.to_string(), "stored key could not be unwrapped");
}
