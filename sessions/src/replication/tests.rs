//! The state machine on a lossless, ticked network (the simulator covers
//! loss, delay, drift and random schedules): availability with a minority
//! lost, failing closed on a minority side, membership changes, a removed
//! node kept out, compaction.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use super::*;
use crate::sim::Trio;
use crate::table::{Mark, SessionId, SessionPolicy, Validation};

const LEASE: u64 = 300;

fn run_until(
    trio: &mut Trio,
    from: u64,
    to: u64,
    open: impl Fn(usize, usize) -> bool,
) -> Vec<(u64, usize, Event)> {
    let mut events = Vec::new();
    for now in from..to {
        for (i, event) in trio.tick(now, &open) {
            events.push((now, i, event));
        }
    }
    events
}

fn all(_: usize, _: usize) -> bool {
    true
}

fn done_at(events: &[(u64, usize, Event)], id: DecreeId) -> Option<u64> {
    events
        .iter()
        .find(|(_, _, e)| *e == Event::Done(id))
        .map(|(t, _, _)| *t)
}

fn revoke_session(trio: &mut Trio, at: usize, now: u64, session: SessionId) -> DecreeId {
    let node = trio.node(at);
    let decree = node.prepare_revoke(Revoked::Session {
        tenant: Arc::from("acme"),
        id: session,
        keep_until_ms: now + 10_000,
    });
    let id = decree.id;
    assert!(node.start(decree, now));
    id
}

fn create(trio: &mut Trio, at: usize, now: u64, n: u8) -> SessionId {
    let record = trio.tables[at].create_with_id(
        SessionId::from_bytes([n; 32]),
        &Arc::from("acme"),
        "alice",
        vec![],
        None,
        SessionPolicy::default(),
        now,
    );
    trio.node(at).replicate(record.clone());
    trio.node(at).flush_deltas();
    record.id
}

#[test]
fn two_of_three_keep_serving_and_revoking_when_one_dies() {
    let mut trio = Trio::new(true);
    run_until(&mut trio, 0, 500, all);
    assert!((0..3).all(|i| trio.serving(i, 499)), "all serve");
    let session = create(&mut trio, 0, 500, 1);
    run_until(&mut trio, 500, 600, all);
    trio.crash(2);
    // The survivors never stop serving: each holds the other's grant.
    for now in 600..2_000 {
        run_until(&mut trio, now, now + 1, all);
        assert!(trio.serving(0, now) && trio.serving(1, now), "at {now}");
    }
    // A revoke returns once node 2's last grant from each survivor ran out.
    let id = revoke_session(&mut trio, 0, 2_000, session);
    let events = run_until(&mut trio, 2_000, 2_100, all);
    let done =
        done_at(&events, id).expect("the revoke returned at once (node 2's grants are long over)");
    assert!(done < 2_010, "{done}");
    assert_eq!(
        trio.tables[1].validate("acme", &session, 2_100),
        Validation::Revoked
    );
}

#[test]
fn a_revoke_waits_for_a_dead_nodes_grants_then_returns() {
    let mut trio = Trio::new(true);
    run_until(&mut trio, 0, 500, all);
    let session = create(&mut trio, 0, 500, 1);
    run_until(&mut trio, 500, 520, all);
    trio.crash(2);
    let id = revoke_session(&mut trio, 0, 520, session);
    let events = run_until(&mut trio, 520, 1_500, all);
    let done = done_at(&events, id).expect("returned");
    // Node 2 may hold grants of up to a lease from both survivors.
    assert!(done <= 520 + LEASE + LEASE * 3 / 100 + 60, "{done}");
}

#[test]
fn a_node_cut_off_from_the_majority_fails_closed_and_the_majority_serves() {
    let mut trio = Trio::new(true);
    run_until(&mut trio, 0, 500, all);
    let cut = |a: usize, b: usize| a != 2 && b != 2;
    let mut last_served_by_two = 0;
    for now in 500..1_500 {
        run_until(&mut trio, now, now + 1, cut);
        if trio.serving(2, now) {
            last_served_by_two = now;
        }
        assert!(
            trio.serving(0, now) && trio.serving(1, now),
            "majority at {now}"
        );
    }
    assert!(
        last_served_by_two < 500 + LEASE + 60,
        "{last_served_by_two}"
    );
    // Healed: node 2 serves again within a lease and a heartbeat.
    let mut back = None;
    for now in 1_500..2_000 {
        run_until(&mut trio, now, now + 1, all);
        if trio.serving(2, now) {
            back.get_or_insert(now);
        }
    }
    assert!(back.is_some_and(|t| t < 1_500 + 50 + 10), "{back:?}");
}

#[test]
fn a_dead_node_is_removed_then_a_new_one_added() {
    let mut trio = Trio::new(true);
    run_until(&mut trio, 0, 500, all);
    trio.crash(2);
    run_until(&mut trio, 500, 1_000, all);
    let smaller = trio.membership.without("n2").unwrap();
    let decree = trio
        .node(0)
        .prepare_membership(smaller.clone(), 1_000)
        .unwrap();
    let id = decree.id;
    assert!(trio.node(0).start(decree, 1_000));
    let events = run_until(&mut trio, 1_000, 1_200, all);
    assert!(done_at(&events, id).is_some(), "removal returned");
    assert_eq!(trio.node(1).membership(), &smaller);
    // A second change may not start while... it is done: add n3.
    let bigger = smaller.with_added("n3", "n3:1").unwrap();
    let mut own_view = bigger.clone();
    own_view.epoch = 0;
    let n3 = trio.add_node(NodeName::from("n3"), own_view, 1_200);
    run_until(&mut trio, 1_200, 1_400, all);
    assert!(!trio.serving(n3, 1_399), "not a member yet: no grants");
    let decree = trio
        .node(1)
        .prepare_membership(bigger.clone(), 1_400)
        .unwrap();
    let id = decree.id;
    trio.node(1).start(decree, 1_400);
    let events = run_until(&mut trio, 1_400, 2_000, all);
    assert!(done_at(&events, id).is_some(), "addition returned");
    assert!(trio.serving(n3, 1_999), "the new node synced and serves");
    assert_eq!(trio.node(n3).membership(), &bigger);
}

#[test]
fn a_removed_node_that_comes_back_is_refused() {
    let mut trio = Trio::new(true);
    run_until(&mut trio, 0, 500, all);
    trio.crash(2);
    let smaller = trio.membership.without("n2").unwrap();
    let decree = trio.node(0).prepare_membership(smaller, 500).unwrap();
    trio.node(0).start(decree, 500);
    run_until(&mut trio, 500, 1_500, all);
    // It restarts with its old view (from disk and configuration).
    trio.boot(2, 1_500);
    run_until(&mut trio, 1_500, 2_500, all);
    assert!(!trio.node(2).is_member(), "it learned it was removed");
    assert!(!trio.serving(2, 2_499));
    assert!(trio.serving(0, 2_499) && trio.serving(1, 2_499));
}

#[test]
fn changes_are_refused_when_not_one_node_or_not_serving() {
    let mut trio = Trio::new(true);
    let next = trio.membership.without("n2").unwrap();
    assert_eq!(
        trio.node(0).prepare_membership(next.clone(), 0),
        Err(MembershipError::NotServing)
    );
    run_until(&mut trio, 0, 500, all);
    let two_out = next.without("n1").unwrap();
    assert!(matches!(
        trio.node(0).prepare_membership(two_out, 500),
        Err(MembershipError::WrongEpoch { .. })
    ));
    let itself = trio.membership.without("n0").unwrap();
    assert_eq!(
        trio.node(0).prepare_membership(itself, 500),
        Err(MembershipError::RemovesItself)
    );
}

#[test]
fn revocations_are_forgotten_when_their_sessions_would_have_expired() {
    let mut trio = Trio::new(true);
    run_until(&mut trio, 0, 300, all);
    // A steady rate: one user revocation every 10 ms for 5 s, each kept 1 s.
    let mut now = 300;
    let mut most = 0;
    while now < 5_300 {
        let node = trio.node(0);
        let decree = node.prepare_revoke(Revoked::Mark(Mark {
            tenant: Arc::from("acme"),
            user: Some(Arc::from(format!("u{now}").as_str())),
            before_ms: now,
            keep_until_ms: now + 1_000,
        }));
        node.start(decree, now);
        run_until(&mut trio, now, now + 10, all);
        now += 10;
        for i in 0..3 {
            trio.node(i).compact(now);
            most = most.max(trio.node(i).status().decrees);
            most = most.max(trio.tables[i].mark_count());
        }
    }
    assert!(most <= 110, "memory stays bounded: at most {most} held");
}
