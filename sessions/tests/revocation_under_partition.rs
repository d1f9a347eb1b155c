//! The replication protocol in the simulator: random schedules of delays,
//! loss, duplication, partitions, crashes and restarts, and clock drift;
//! the checker asserts that after a revoke returned no node accepted the
//! session. `SIGIL_SIM_SEED=n cargo test -p sessions --test
//! revocation_under_partition replay` replays one seed; the soak test runs
//! many more (`cargo test -p sessions --release -- --ignored`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sessions::sim::{memory_alone_case, run, SimConfig, SimStats};

fn schedules(count: u64, first: u64) -> SimStats {
    let mut total = SimStats::default();
    for seed in first..first + count {
        let config = SimConfig {
            nodes: 2 + (seed % 3) as usize,
            duration_ms: 3_000,
            ..SimConfig::default()
        };
        match run(seed, config) {
            Ok(stats) => {
                total.revokes_returned += stats.revokes_returned;
                total.validations += stats.validations;
                total.unavailable += stats.unavailable;
                total.crashes += stats.crashes;
            }
            Err(violation) => panic!("seed {}: {} (replay: SIGIL_SIM_SEED={} cargo test -p sessions --test revocation_under_partition replay)", violation.seed, violation.description, violation.seed),
        }
    }
    total
}

#[test]
fn a_thousand_random_schedules_never_accept_a_revoked_session() {
    let stats = schedules(1_000, 1);
    // The schedules exercise the protocol, not just idle nodes.
    assert!(stats.revokes_returned > 1_000, "{stats:?}");
    assert!(stats.validations > 10_000, "{stats:?}");
    assert!(
        stats.unavailable > 100,
        "nodes did fail closed sometimes: {stats:?}"
    );
    assert!(stats.crashes > 100, "{stats:?}");
}

#[test]
fn replay() {
    if let Some(seed) = std::env::var("SIGIL_SIM_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        let config = SimConfig {
            nodes: 2 + (seed % 3) as usize,
            duration_ms: 3_000,
            ..SimConfig::default()
        };
        let outcome = run(seed, config);
        assert!(outcome.is_ok(), "{outcome:?}");
    }
}

#[test]
fn without_durable_revocations_the_checker_finds_the_documented_hole() {
    assert!(
        memory_alone_case(false),
        "memory alone: the revoked session is accepted again"
    );
    assert!(!memory_alone_case(true), "with the durable log it is not");
    // And random schedules without durability break too: the checker can fail.
    let broken = (1..400u64).find(|seed| {
        run(
            *seed,
            SimConfig {
                durable: false,
                ..SimConfig::default()
            },
        )
        .is_err()
    });
    assert!(
        broken.is_some(),
        "some schedule without durability violates the invariant"
    );
}

#[test]
fn no_faults_means_every_node_serves_and_revokes_are_fast() {
    let quiet = SimConfig {
        loss: 0.0,
        duplicate: 0.0,
        partitions: false,
        restarts: false,
        ..SimConfig::default()
    };
    let stats = run(42, quiet).unwrap();
    assert!(stats.unavailable * 20 < stats.validations, "{stats:?}");
}

#[test]
#[ignore = "soak: 100,000 schedules; run with --release -- --ignored"]
fn soak_a_hundred_thousand_schedules() {
    let first = std::env::var("SIGIL_SIM_FIRST")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    schedules(100_000, first);
}
