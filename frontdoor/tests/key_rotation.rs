//! Scheduled and manual rotation driven from the directory: keys are made
//! once per algorithm; a rotation that is due publishes a pending key (in
//! JWKS before it signs); of two nodes rotating at once exactly one does
//! it; an emergency revocation takes the key out of JWKS at once and a
//! replacement signs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use frontdoor::api::keys::{KeyError, KeyManager};
use signer::{Algorithm, MasterKey, SoftwareBackend, Timestamp};

fn manager() -> KeyManager {
    let master = Arc::new(MasterKey::from_bytes(&[7u8; 32]).unwrap());
    KeyManager::new(Arc::new(SoftwareBackend::new(master)), "https://sigil.test")
}

fn active_kid(keys: &frontdoor::api::keys::TenantKeys, algorithm: Algorithm) -> String {
    keys.view
        .active(algorithm)
        .unwrap()
        .key()
        .kid()
        .as_str()
        .to_owned()
}

fn kids(keys: &frontdoor::api::keys::TenantKeys) -> Vec<String> {
    let jwks: serde_json::Value =
        serde_json::from_slice(keys.documents.jwks.body.as_ref()).unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_is_scheduled_exclusive_and_published_before_signing() {
    let database = directory::testing::fresh_database().await.unwrap();
    let (owner, directory) = database.open(2).await.unwrap();
    directory::seed::create_demo_data(&owner, &directory, 1000)
        .await
        .unwrap();
    // A tenant that rotates every 100 s with 10 s of pre-publication.
    owner.danger_execute("UPDATE tenants SET key_rotation_s = 100, key_prepublish_s = 10, key_retire_grace_s = 3600 WHERE slug = 'acme'").await.unwrap();
    let acme = directory.tenant_by_slug("acme").await.unwrap().unwrap();
    let keys = manager();
    let t0 = Timestamp::from_system_time(std::time::SystemTime::now());
    let loaded = keys
        .load(&directory, &acme, &[Algorithm::Es256, Algorithm::EdDsa], t0)
        .await
        .unwrap();
    assert_eq!(
        kids(&loaded).len(),
        2,
        "one key per algorithm, made on first load"
    );
    let again = keys
        .load(&directory, &acme, &[Algorithm::Es256, Algorithm::EdDsa], t0)
        .await
        .unwrap();
    assert_eq!(kids(&again), kids(&loaded), "made once, loaded after");
    let es256 = active_kid(&again, Algorithm::Es256);

    // Not due yet; due after rotation - prepublish = 90 s.
    assert_eq!(
        keys.rotate_due(&directory, &acme, t0.plus(50))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        keys.rotate_due(&directory, &acme, t0.plus(91))
            .await
            .unwrap(),
        2
    );
    let rotated = keys
        .load(&directory, &acme, &[], t0.plus(91))
        .await
        .unwrap();
    assert_eq!(
        kids(&rotated).len(),
        4,
        "the new keys are published at once"
    );
    assert_eq!(
        rotated
            .view
            .active(Algorithm::Es256)
            .unwrap()
            .key()
            .kid()
            .as_str(),
        es256,
        "the old key still signs during pre-publication"
    );
    let later = keys
        .load(&directory, &acme, &[], t0.plus(102))
        .await
        .unwrap();
    assert_ne!(
        later
            .view
            .active(Algorithm::Es256)
            .unwrap()
            .key()
            .kid()
            .as_str(),
        es256,
        "the new key signs after pre-publication"
    );
    assert!(
        kids(&later).contains(&es256),
        "the retired key stays published through its grace"
    );

    // Two nodes at once: exactly one rotates.
    let other = directory::Directory::connect(database.app.clone(), 1)
        .await
        .unwrap();
    let other_keys = manager();
    let (a, b) = tokio::join!(
        keys.rotate(&directory, &acme, Some(Algorithm::EdDsa), t0.plus(200)),
        other_keys.rotate(&other, &acme, Some(Algorithm::EdDsa), t0.plus(200))
    );
    let outcomes = [a.is_ok(), b.is_ok()];
    assert!(outcomes.iter().any(|ok| *ok), "one rotated");
    assert!(matches!(
        (a, b),
        (Ok(_), Err(KeyError::Busy)) | (Err(KeyError::Busy), Ok(_)) | (Ok(_), Ok(_))
    ));

    // Emergency: the active key leaves JWKS now, a replacement signs.
    let now = t0.plus(300);
    let current = keys.load(&directory, &acme, &[], now).await.unwrap();
    let active = active_kid(&current, Algorithm::Es256);
    let replacement = keys.revoke(&directory, &acme, &active, now).await.unwrap();
    let after = keys.load(&directory, &acme, &[], now).await.unwrap();
    assert!(
        !kids(&after).contains(&active),
        "revoked key out of JWKS at once"
    );
    assert_eq!(
        after
            .view
            .active(Algorithm::Es256)
            .unwrap()
            .key()
            .kid()
            .as_str(),
        replacement.unwrap()
    );
}
