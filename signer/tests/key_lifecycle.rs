//! The whole key lifecycle walked with time passed in: pending, active,
//! retiring, retired, revoked; and a property test of the invariants DESIGN
//! names: a key is published before it signs, stays published while tokens
//! it signed are alive, and leaves JWKS at once when revoked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use serde_json::Value;
use signer::jwt::MAX_TOKEN_LIFETIME_SECS;
use signer::{
    Algorithm, Error, KeyPolicy, KeyRing, KeyRingView, KeySpec, KeyState, Kid, SigningKey,
    SoftwareKey, Timestamp,
};

const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

fn key(spec: KeySpec) -> Arc<dyn SigningKey> {
    Arc::new(SoftwareKey::generate(spec).unwrap())
}

fn jwks_kids(view: &KeyRingView) -> Vec<String> {
    let jwks: Value = serde_json::from_slice(view.jwks()).unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn signer_kid(view: &KeyRingView, alg: Algorithm) -> Option<String> {
    view.active(alg).ok().map(|a| a.key().kid().to_string())
}

#[test]
fn rotation_walks_every_state() {
    let policy = KeyPolicy::new(DAY, HOUR + 300).unwrap();
    let mut ring = KeyRing::new("acme", policy);
    let t0 = Timestamp::from_secs(1_800_000_000);
    let k1 = key(KeySpec::Es256);
    let k2 = key(KeySpec::Es256);
    let (kid1, kid2) = (k1.kid().clone(), k2.kid().clone());

    ring.add_active(Arc::clone(&k1), t0).unwrap();
    let v = ring.view(t0);
    assert_eq!(
        signer_kid(&v, Algorithm::Es256).as_deref(),
        Some(kid1.as_str())
    );
    assert_eq!(jwks_kids(&v), vec![kid1.to_string()]);
    assert_eq!(v.valid_until(), None, "nothing scheduled");

    // Rotation: k2 is published at once but does not sign for a day.
    let t1 = t0.plus(10 * DAY);
    let activates = ring.add_pending(Arc::clone(&k2), t1).unwrap();
    assert_eq!(activates, t1.plus(DAY));
    let v = ring.view(t1);
    assert_eq!(ring.state(&kid2, t1), Some(KeyState::Pending));
    assert_eq!(
        signer_kid(&v, Algorithm::Es256).as_deref(),
        Some(kid1.as_str())
    );
    assert_eq!(jwks_kids(&v), vec![kid1.to_string(), kid2.to_string()]);
    assert_eq!(v.next_activation(), Some(activates));
    assert_eq!(v.valid_until(), Some(activates));
    assert!(v.is_current(Timestamp::from_secs(activates.secs() - 1)));
    assert!(!v.is_current(activates));

    // One second before activation nothing changed; at activation k2 signs
    // and k1 retires but stays published.
    assert_eq!(
        ring.state(&kid2, Timestamp::from_secs(activates.secs() - 1)),
        Some(KeyState::Pending)
    );
    let v = ring.view(activates);
    assert_eq!(
        signer_kid(&v, Algorithm::Es256).as_deref(),
        Some(kid2.as_str())
    );
    assert_eq!(ring.state(&kid1, activates), Some(KeyState::Retiring));
    assert_eq!(jwks_kids(&v).len(), 2);
    assert_eq!(v.valid_until(), Some(activates.plus(HOUR + 300)));

    // After the grace k1 leaves JWKS.
    let t3 = activates.plus(HOUR + 300);
    assert_eq!(
        ring.state(&kid1, Timestamp::from_secs(t3.secs() - 1)),
        Some(KeyState::Retiring)
    );
    let v = ring.view(t3);
    assert_eq!(ring.state(&kid1, t3), Some(KeyState::Retired));
    assert_eq!(jwks_kids(&v), vec![kid2.to_string()]);
    assert_eq!(ring.prune(t3), 1);
    assert_eq!(ring.state(&kid1, t3), None);

    // Emergency: k2 revoked leaves JWKS at once; nothing signs ES256 until a
    // replacement is added, which signs immediately.
    let t4 = t3.plus(60);
    ring.revoke(&kid2, t4).unwrap();
    let v = ring.view(t4);
    assert!(jwks_kids(&v).is_empty());
    assert!(matches!(
        v.active(Algorithm::Es256),
        Err(Error::NoActiveKey { .. })
    ));
    let k3 = key(KeySpec::Es256);
    ring.add_active(Arc::clone(&k3), t4).unwrap();
    let v = ring.view(t4);
    assert_eq!(
        signer_kid(&v, Algorithm::Es256).as_deref(),
        Some(k3.kid().as_str())
    );
    assert_eq!(jwks_kids(&v), vec![k3.kid().to_string()]);
    // A revoked key never comes back, even much later.
    assert_eq!(
        ring.state(&kid2, t4.plus(100 * DAY)),
        Some(KeyState::Revoked)
    );
}

#[test]
fn a_tenant_holds_several_algorithms_at_once() {
    let mut ring = KeyRing::new("acme", KeyPolicy::default());
    let now = Timestamp::from_secs(1_800_000_000);
    let rsa = key(KeySpec::Rs256(signer::RsaBits::B2048));
    let ec = key(KeySpec::Es256);
    let ed = key(KeySpec::EdDsa);
    for k in [&rsa, &ec, &ed] {
        ring.add_active(Arc::clone(k), now).unwrap();
    }
    let v = ring.view(now);
    assert_eq!(
        signer_kid(&v, Algorithm::Rs256).as_deref(),
        Some(rsa.kid().as_str())
    );
    assert_eq!(
        signer_kid(&v, Algorithm::Es256).as_deref(),
        Some(ec.kid().as_str())
    );
    assert_eq!(
        signer_kid(&v, Algorithm::EdDsa).as_deref(),
        Some(ed.kid().as_str())
    );
    assert!(v.active(Algorithm::Ps256).is_err());
    assert_eq!(jwks_kids(&v).len(), 3);
    // Rotating one algorithm leaves the others alone.
    let ec2 = key(KeySpec::Es256);
    let at = ring.add_pending(Arc::clone(&ec2), now).unwrap();
    let v = ring.view(at);
    assert_eq!(
        signer_kid(&v, Algorithm::Es256).as_deref(),
        Some(ec2.kid().as_str())
    );
    assert_eq!(
        signer_kid(&v, Algorithm::Rs256).as_deref(),
        Some(rsa.kid().as_str())
    );
}

#[test]
fn policies_that_would_orphan_tokens_are_refused() {
    assert!(KeyPolicy::new(0, MAX_TOKEN_LIFETIME_SECS - 1).is_err());
    assert!(KeyPolicy::new(0, MAX_TOKEN_LIFETIME_SECS).is_ok());
}

#[test]
fn duplicate_and_unknown_keys_are_refused() {
    let mut ring = KeyRing::new("acme", KeyPolicy::default());
    let now = Timestamp::from_secs(1);
    let k = key(KeySpec::EdDsa);
    ring.add_active(Arc::clone(&k), now).unwrap();
    assert!(ring.add_pending(Arc::clone(&k), now).is_err());
    let unknown = Kid::parse("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs").unwrap();
    assert!(matches!(
        ring.revoke(&unknown, now),
        Err(Error::UnknownKey(_))
    ));
}

/// A few keys made once (generation is the slow part) and reused by the
/// property test; kids stay unique per ring because each case draws distinct
/// indices.
fn key_pool() -> &'static Vec<Arc<dyn SigningKey>> {
    static POOL: OnceLock<Vec<Arc<dyn SigningKey>>> = OnceLock::new();
    POOL.get_or_init(|| {
        (0..12)
            .map(|i| {
                key(if i % 2 == 0 {
                    KeySpec::Es256
                } else {
                    KeySpec::EdDsa
                })
            })
            .collect()
    })
}

#[derive(Debug, Clone)]
enum Op {
    AddPending(usize),
    AddActive(usize),
    Revoke(usize),
    Advance(u64),
    Prune,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..12).prop_map(Op::AddPending),
        (0usize..12).prop_map(Op::AddActive),
        (0usize..12).prop_map(Op::Revoke),
        (1u64..3 * DAY).prop_map(Op::Advance),
        Just(Op::Prune),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    /// Random rotations, revocations and time steps. After every step, and at
    /// every moment a view says it is valid until: (1) a key that signs was
    /// published at every earlier observation since it was added (published
    /// before it signs); (2) a key that signed at time t and is not revoked is
    /// still published at every observation before t + MAX lifetime; (3) a
    /// revoked key is never published nor signs again.
    #[test]
    fn publication_invariants_hold(ops in proptest::collection::vec(op(), 1..40), prepublish in 0u64..2 * DAY) {
        let policy = KeyPolicy::new(prepublish, MAX_TOKEN_LIFETIME_SECS + 300).unwrap();
        let mut ring = KeyRing::new("t", policy);
        let pool = key_pool();
        let mut now = Timestamp::from_secs(1_800_000_000);
        // Key -> number of observations made before it was added.
        let mut added: HashMap<String, usize> = HashMap::new();
        let mut last_signed: HashMap<String, Timestamp> = HashMap::new();
        let mut revoked: HashMap<String, Timestamp> = HashMap::new();
        let mut observations: Vec<(Timestamp, Vec<String>)> = Vec::new();

        for op in ops {
            match op {
                Op::AddPending(i) => {
                    if ring.add_pending(Arc::clone(&pool[i]), now).is_ok() {
                        added.insert(pool[i].kid().to_string(), observations.len());
                    }
                }
                Op::AddActive(i) => {
                    if ring.add_active(Arc::clone(&pool[i]), now).is_ok() {
                        added.insert(pool[i].kid().to_string(), observations.len());
                    }
                }
                Op::Revoke(i) => {
                    if ring.revoke(pool[i].kid(), now).is_ok() {
                        revoked.entry(pool[i].kid().to_string()).or_insert(now);
                    }
                }
                Op::Advance(secs) => {
                    // Also observe at the view's own transition, if it falls
                    // inside the step: that is where a bug would hide.
                    let target = now.plus(secs);
                    while let Some(t) = ring.view(now).valid_until() {
                        if t > target { break; }
                        now = t;
                        observe(&ring, now, &mut last_signed, &mut observations);
                    }
                    now = target;
                }
                Op::Prune => { ring.prune(now); }
            }
            observe(&ring, now, &mut last_signed, &mut observations);

            let view = ring.view(now);
            let published: Vec<String> = view.published().iter().map(|p| p.key.kid().to_string()).collect();
            for active in view.active_keys() {
                let kid = active.key().kid().to_string();
                // (1) published at every observation since it was added.
                for (t, seen) in &observations[added[&kid]..] {
                    prop_assert!(seen.contains(&kid), "active key {kid} was missing from JWKS at {t:?}");
                }
                prop_assert!(!revoked.contains_key(&kid), "revoked key {kid} signs");
            }
            // (2) tokens' keys stay published for their lifetime.
            for (kid, signed_at) in &last_signed {
                if !revoked.contains_key(kid) && now.secs() < signed_at.secs() + MAX_TOKEN_LIFETIME_SECS {
                    prop_assert!(published.contains(kid), "key {kid} left JWKS while its tokens live");
                }
            }
            // (3) revoked keys are never published.
            for kid in revoked.keys() {
                prop_assert!(!published.contains(kid), "revoked key {kid} still published");
            }
        }
    }
}

fn observe(
    ring: &KeyRing,
    now: Timestamp,
    last_signed: &mut HashMap<String, Timestamp>,
    observations: &mut Vec<(Timestamp, Vec<String>)>,
) {
    let view = ring.view(now);
    for active in view.active_keys() {
        last_signed.insert(active.key().kid().to_string(), now);
    }
    observations.push((
        now,
        view.published()
            .iter()
            .map(|p| p.key.kid().to_string())
            .collect(),
    ));
}
