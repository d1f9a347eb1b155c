//! Wrapped keys are bound to the tenant's immutable id: a key made when
//! they were bound to the slug is moved to the id on its next load (its
//! row rewritten), after which renaming the tenant changes nothing; a key
//! still bound to a slug the tenant no longer has is refused, never
//! replaced behind the operator's back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use directory::{seed, testing, KeyRow};
use frontdoor::api::keys::{key_binding, KeyManager};
use signer::{Algorithm, KeyBackend, KeySpec, MasterKey, SoftwareBackend, Timestamp};

fn backend() -> SoftwareBackend {
    SoftwareBackend::new(Arc::new(MasterKey::from_bytes(&[5u8; 32]).unwrap()))
}

/// A key as an older Sigil stored it: wrapped for the tenant's slug.
fn legacy_row(slug: &str, now: Timestamp) -> KeyRow {
    let made = backend().generate(slug, KeySpec::EdDsa).unwrap();
    KeyRow {
        kid: made.key.kid().as_str().to_owned(),
        algorithm: "EdDSA".into(),
        key_spec: "EdDSA".into(),
        backend: made.stored.backend,
        blob: made.stored.blob,
        certificate: None,
        activates_at_ms: now.secs() * 1000,
        retires_at_ms: None,
        revoked_at_ms: None,
        created_at_ms: now.secs() * 1000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slug_bound_keys_move_to_the_tenant_id_and_survive_a_rename() {
    let database = testing::fresh_database().await.unwrap();
    let (owner, directory) = database.open(2).await.unwrap();
    seed::create_demo_data(&owner, &directory, 1000)
        .await
        .unwrap();
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let acme = directory.tenant_by_slug("acme").await.unwrap().unwrap();
    let globex = directory.tenant_by_slug("globex").await.unwrap().unwrap();
    for (tenant, row) in [
        (&acme, legacy_row("acme", now)),
        (&globex, legacy_row("globex", now)),
    ] {
        let scope = directory.tenant(tenant.id).await.unwrap();
        scope.insert_key(&row).await.unwrap();
        scope.commit().await.unwrap();
    }
    let manager = KeyManager::new(Arc::new(backend()), "https://sigil.test");

    // acme loads: its key is moved to the id, stored again, and signs.
    let before = directory
        .tenant(acme.id)
        .await
        .unwrap()
        .keys()
        .await
        .unwrap();
    let loaded = manager
        .load(&directory, &acme, &[Algorithm::EdDsa], now)
        .await
        .unwrap();
    let kid = before[0].kid.clone();
    assert_eq!(
        loaded
            .view
            .active(Algorithm::EdDsa)
            .unwrap()
            .key()
            .kid()
            .as_str(),
        kid,
        "the same key signs, no new one was made"
    );
    let after = directory
        .tenant(acme.id)
        .await
        .unwrap()
        .keys()
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    assert_ne!(after[0].blob, before[0].blob, "stored again");
    let stored = signer::StoredKey {
        backend: after[0].backend.clone(),
        blob: after[0].blob.clone(),
    };
    let kid = signer::Kid::parse(&kid).unwrap();
    assert!(backend().load(&key_binding(&acme), &kid, &stored).is_ok());
    assert!(backend().load("acme", &kid, &stored).is_err());

    // Renamed: nothing to migrate, the key loads under the new name.
    owner
        .danger_execute("UPDATE tenants SET slug = 'acme-corp' WHERE slug = 'acme'")
        .await
        .unwrap();
    let renamed = directory
        .tenant_by_slug("acme-corp")
        .await
        .unwrap()
        .unwrap();
    let reloaded = manager
        .load(&directory, &renamed, &[Algorithm::EdDsa], now)
        .await
        .unwrap();
    assert_eq!(
        reloaded.view.active(Algorithm::EdDsa).unwrap().key().kid(),
        &kid
    );

    // globex renamed before its key was ever moved: the key is bound to a
    // name the tenant no longer has. Refused, never silently replaced.
    owner
        .danger_execute("UPDATE tenants SET slug = 'globex-2' WHERE slug = 'globex'")
        .await
        .unwrap();
    let globex = directory.tenant_by_slug("globex-2").await.unwrap().unwrap();
    assert!(manager
        .load(&directory, &globex, &[Algorithm::EdDsa], now)
        .await
        .is_err());
    let keys = directory
        .tenant(globex.id)
        .await
        .unwrap()
        .keys()
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "no replacement key was made");
}
