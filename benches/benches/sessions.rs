//! Session validation per second on one core: the sharded table beside a
//! `Mutex<HashMap>` holding the same sessions, measured in the same run.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sessions::{SessionId, SessionPolicy, SessionTable, Validation};

const SESSIONS: usize = 100_000;

/// The baseline's entry: tenant, absolute expiry, last seen.
type Entry = (Arc<str>, u64, u64);

fn validate(c: &mut Criterion) {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let table = SessionTable::new(8);
    let tenant: Arc<str> = Arc::from("acme");
    let now = 1_800_000_000_000u64;
    let ids: Vec<SessionId> = (0..SESSIONS)
        .map(|i| {
            table
                .create(
                    &tenant,
                    &format!("user{i}"),
                    vec!["pwd".into()],
                    None,
                    SessionPolicy::default(),
                    now,
                    &rng,
                )
                .unwrap()
                .id
        })
        .collect();
    // The baseline: the obvious design, one map behind one lock.
    let baseline: Mutex<HashMap<SessionId, Entry>> = Mutex::new(
        ids.iter()
            .map(|id| (*id, (Arc::clone(&tenant), now + 3_600_000, now)))
            .collect(),
    );
    let mut group = c.benchmark_group("session_validate");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("sharded_table", |b| {
        b.iter(|| {
            i = (i + 7919) % SESSIONS;
            black_box(matches!(
                table.validate("acme", &ids[i], now + 1),
                Validation::Valid(_)
            ))
        })
    });
    let mut j = 0usize;
    group.bench_function("mutex_hashmap_baseline", |b| {
        b.iter(|| {
            j = (j + 7919) % SESSIONS;
            let map = baseline.lock().unwrap();
            black_box(
                map.get(&ids[j])
                    .is_some_and(|(t, exp, _)| &**t == "acme" && *exp > now + 1),
            )
        })
    });
    group.finish();
}

/// One call of the sweeper (budget 2,000, as `sigil serve` calls it every
/// 20 ms) on a table of 1,000,000 live sessions in 8 shards, none due: the
/// cost the sweeper adds under its shard's write lock while nothing
/// expires.
fn sweep(c: &mut Criterion) {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let table = SessionTable::new(8);
    let tenant: Arc<str> = Arc::from("acme");
    let now = 1_800_000_000_000u64;
    for i in 0..1_000_000u32 {
        table
            .create(
                &tenant,
                &format!("user{}", i % 1000),
                vec!["pwd".into()],
                None,
                SessionPolicy::default(),
                now,
                &rng,
            )
            .unwrap();
    }
    let mut group = c.benchmark_group("session_sweep");
    group.sample_size(20);
    group.bench_function("nothing_due_1m_sessions", |b| {
        b.iter(|| black_box(table.sweep(now + 1, 2_000)))
    });
    group.finish();
}

criterion_group!(benches, validate, sweep);
criterion_main!(benches);
