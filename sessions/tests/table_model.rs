//! The session table against a plain model under random operations, and
//! CRDT convergence: replicas fed the same records in any order, with
//! duplicates, end in the same state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use proptest::prelude::*;
use sessions::{Mark, SessionPolicy, SessionTable, Validation};

#[derive(Debug, Clone)]
enum Op {
    Create { tenant: u8, user: u8 },
    Validate { tenant: u8, which: usize },
    Touch { which: usize },
    Revoke { which: usize },
    RevokeUser { tenant: u8, user: u8 },
    RevokeTenant { tenant: u8 },
    Advance { ms: u64 },
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2u8, 0..3u8).prop_map(|(tenant, user)| Op::Create { tenant, user }),
        4 => (0..2u8, 0..64usize).prop_map(|(tenant, which)| Op::Validate { tenant, which }),
        2 => (0..64usize).prop_map(|which| Op::Touch { which }),
        1 => (0..64usize).prop_map(|which| Op::Revoke { which }),
        1 => (0..2u8, 0..3u8).prop_map(|(tenant, user)| Op::RevokeUser { tenant, user }),
        1 => (0..2u8).prop_map(|tenant| Op::RevokeTenant { tenant }),
        2 => (0..40_000u64).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Sweep),
    ]
}

struct ModelSession {
    tenant: u8,
    user: u8,
    created: u64,
    last_seen: u64,
    revoked: bool,
}

const POLICY: SessionPolicy = SessionPolicy {
    absolute_ms: 100_000,
    idle_ms: 30_000,
};

fn tenant_name(t: u8) -> Arc<str> {
    Arc::from(["acme", "globex"][t as usize])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn table_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        let rng = SystemRandom::new();
        let table = SessionTable::new(4);
        let mut now = 1_000_000u64;
        let mut ids = Vec::new();
        let mut model: Vec<ModelSession> = Vec::new();
        let mut user_marks: HashMap<(u8, u8), u64> = HashMap::new();
        let mut tenant_marks: HashMap<u8, u64> = HashMap::new();
        let expected = |m: &ModelSession, tenant: u8, now: u64, um: &HashMap<(u8, u8), u64>, tm: &HashMap<u8, u64>| {
            if m.tenant != tenant {
                return "not_found";
            }
            let marked = um.get(&(m.tenant, m.user)).is_some_and(|&b| m.created <= b)
                || tm.get(&m.tenant).is_some_and(|&b| m.created <= b);
            if m.revoked || marked {
                "revoked"
            } else if now >= m.created + POLICY.absolute_ms {
                "expired"
            } else if now >= m.last_seen + POLICY.idle_ms {
                "idle"
            } else {
                "valid"
            }
        };
        let name = |v: &Validation| match v {
            Validation::Valid(_) => "valid",
            Validation::NotFound => "not_found",
            Validation::Expired => "expired",
            Validation::IdleExpired => "idle",
            Validation::Revoked => "revoked",
        };
        for op in ops {
            match op {
                Op::Create { tenant, user } => {
                    let record = table.create(&tenant_name(tenant), &format!("u{user}"), vec!["pwd".into()], None, POLICY, now, &rng).unwrap();
                    ids.push(record.id);
                    model.push(ModelSession { tenant, user, created: now, last_seen: now, revoked: false });
                }
                Op::Validate { tenant, which } if !ids.is_empty() => {
                    let i = which % ids.len();
                    let got = table.validate(&tenant_name(tenant), &ids[i], now);
                    let want = expected(&model[i], tenant, now, &user_marks, &tenant_marks);
                    // A swept session is gone: only sessions that could never be valid again are swept.
                    if name(&got) == "not_found" && want != "not_found" {
                        prop_assert!(want != "valid", "a valid session vanished");
                    } else {
                        prop_assert_eq!(name(&got), want);
                    }
                }
                Op::Touch { which } if !ids.is_empty() => {
                    let i = which % ids.len();
                    let m = &mut model[i];
                    let got = table.touch(&tenant_name(m.tenant), &ids[i], now);
                    if matches!(got, Validation::Valid(_)) {
                        m.last_seen = now;
                    }
                }
                Op::Revoke { which } if !ids.is_empty() => {
                    let i = which % ids.len();
                    table.revoke(&tenant_name(model[i].tenant), &ids[i], now + POLICY.absolute_ms);
                    model[i].revoked = true;
                }
                Op::RevokeUser { tenant, user } => {
                    table.apply_mark(&Mark { tenant: tenant_name(tenant), user: Some(Arc::from(format!("u{user}"))), before_ms: now, keep_until_ms: u64::MAX });
                    let slot = user_marks.entry((tenant, user)).or_insert(0);
                    *slot = (*slot).max(now);
                    prop_assert_eq!(table.user_mark_ms(&tenant_name(tenant), &format!("u{user}")), *slot);
                }
                Op::RevokeTenant { tenant } => {
                    table.apply_mark(&Mark { tenant: tenant_name(tenant), user: None, before_ms: now, keep_until_ms: u64::MAX });
                    let slot = tenant_marks.entry(tenant).or_insert(0);
                    *slot = (*slot).max(now);
                }
                Op::Advance { ms } => now += ms,
                Op::Sweep => { table.sweep(now, 1_000); }
                _ => {}
            }
        }
    }

    #[test]
    fn replicas_converge_whatever_the_order(seed in any::<u64>(), n in 1..40usize) {
        let rng = SystemRandom::new();
        let origin = SessionTable::new(2);
        let t = tenant_name(0);
        let mut records = Vec::new();
        for i in 0..n {
            let mut r = origin.create(&t, &format!("u{}", i % 3), vec![], None, POLICY, 1_000 + i as u64, &rng).unwrap();
            records.push(r.clone());
            r.last_seen_ms += 500;
            records.push(r.clone());
            if i % 4 == 0 {
                r.revoked = true;
                records.push(r);
            }
        }
        let replica = |order: &[usize]| {
            let table = SessionTable::new(3);
            for &i in order {
                table.merge(&records[i]);
                table.merge(&records[i]);
            }
            let mut snapshot = table.snapshot().0;
            snapshot.sort_by_key(|r| *r.id.as_bytes());
            snapshot
        };
        let forward: Vec<usize> = (0..records.len()).collect();
        let mut shuffled = forward.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(replica(&forward), replica(&shuffled));
    }
}

#[test]
fn a_revocation_that_arrives_first_still_wins() {
    let rng = SystemRandom::new();
    let origin = SessionTable::new(2);
    let t = tenant_name(0);
    let record = origin
        .create(&t, "alice", vec![], None, POLICY, 1_000, &rng)
        .unwrap();
    let replica = SessionTable::new(2);
    assert!(replica.revoke(&t, &record.id, 1_000 + POLICY.absolute_ms));
    replica.merge(&record);
    assert_eq!(
        replica.validate("acme", &record.id, 1_001),
        Validation::Revoked
    );
    assert_eq!(
        replica.validate("globex", &record.id, 1_001),
        Validation::NotFound
    );
}

#[test]
fn ids_are_256_bits_of_base64url_and_nothing_else_parses() {
    let rng = SystemRandom::new();
    let id = sessions::SessionId::generate(&rng).unwrap();
    let text = id.to_string();
    assert_eq!(text.len(), 43);
    assert_eq!(sessions::SessionId::parse(&text).unwrap(), id);
    for bad in [
        "",
        "short",
        &format!("{text}A"),
        &text.replace(&text[..1], "+"),
        &"=".repeat(43),
    ] {
        assert!(sessions::SessionId::parse(bad).is_err(), "{bad}");
    }
    assert!(
        !format!("{id:?}").contains(&text),
        "Debug does not print the secret"
    );
}

#[test]
fn sweeping_reclaims_only_what_can_never_be_valid() {
    let rng = SystemRandom::new();
    let table = SessionTable::new(1);
    let t = tenant_name(0);
    let live = table
        .create(&t, "a", vec![], None, POLICY, 0, &rng)
        .unwrap();
    let idle = table
        .create(&t, "b", vec![], None, POLICY, 0, &rng)
        .unwrap();
    table.touch("acme", &live.id, 29_000);
    assert_eq!(table.sweep(31_000, 1_000), 1, "the idle one goes");
    assert!(matches!(
        table.validate("acme", &live.id, 31_000),
        Validation::Valid(_)
    ));
    assert_eq!(
        table.validate("acme", &idle.id, 31_000),
        Validation::NotFound
    );
    println!(
        "table overhead per session: {} bytes",
        SessionTable::overhead_per_session()
    );
    assert!(SessionTable::overhead_per_session() <= 256);
}

#[test]
fn the_sweep_spends_its_budget_on_due_entries_only() {
    let rng = SystemRandom::new();
    let table = SessionTable::new(1);
    let t = tenant_name(0);
    let short = SessionPolicy {
        absolute_ms: 1_000,
        idle_ms: 1_000,
    };
    let mut due = Vec::new();
    for i in 0..10_000 {
        let policy = if i % 100 == 0 { short } else { POLICY };
        let record = table
            .create(&t, "u", vec![], None, policy, 0, &rng)
            .unwrap();
        if i % 100 == 0 {
            due.push(record.id);
        }
    }
    // 100 of 10,000 are due; two calls of budget 50 reclaim all of them,
    // however the map orders its entries, and nothing else.
    assert_eq!(table.sweep(2_000, 50) + table.sweep(2_000, 50), 100);
    assert_eq!(table.len(), 9_900);
    for id in &due {
        assert_eq!(table.validate("acme", id, 2_000), Validation::NotFound);
    }
    assert_eq!(table.sweep(2_000, 50), 0, "nothing else is due");
}
