//! A deterministic simulator for the replication protocol: N nodes on a
//! virtual clock, a network that delays, loses, duplicates and partitions,
//! nodes that crash and restart (with or without their durable revocation
//! log), and clocks that run at different rates within the drift bound.
//! A checker asserts the invariant: after a revoke returned, no node
//! accepts that session. Everything follows from the seed, so a failing
//! seed replays exactly.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::replication::{
    Event, Message, Node, NodeIndex, Revocation, RevocationId, Revoked, Timing,
};
use crate::table::{SessionId, SessionPolicy, SessionTable, Validation};

/// A small deterministic generator (SplitMix64): the simulator's only
/// source of randomness.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    /// Seeded.
    pub fn new(seed: u64) -> SimRng {
        SimRng(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

impl SimRng {
    /// A session id drawn from this generator.
    pub fn session_id(&mut self) -> SessionId {
        let mut bytes = [0u8; 32];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        SessionId::from_bytes(bytes)
    }
}

/// What a simulation does.
#[derive(Debug, Clone, Copy)]
pub struct SimConfig {
    /// Nodes (2 to 7).
    pub nodes: usize,
    /// Virtual milliseconds to run.
    pub duration_ms: u64,
    /// Probability a message is lost.
    pub loss: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
    /// Message delay range, ms.
    pub max_delay_ms: u64,
    /// Whether partitions happen.
    pub partitions: bool,
    /// Whether nodes crash and restart.
    pub restarts: bool,
    /// Whether revocations are durable (survive a crash). Off, the
    /// checker must find violations: that is the case docs/sessions.md
    /// says memory alone cannot cover.
    pub durable: bool,
    /// Protocol timing (drift bound included).
    pub timing: Timing,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            nodes: 3,
            duration_ms: 6_000,
            loss: 0.05,
            duplicate: 0.02,
            max_delay_ms: 20,
            partitions: true,
            restarts: true,
            durable: true,
            timing: Timing {
                heartbeat_ms: 50,
                lease_ms: 300,
                drift_ppm: 10_000,
            },
        }
    }
}

/// A broken invariant, with what to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The seed.
    pub seed: u64,
    /// What happened.
    pub description: String,
}

/// What a run did (to see that schedules exercise the protocol).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Revokes that returned.
    pub revokes_returned: u64,
    /// Validations answered (valid or not) by serving nodes.
    pub validations: u64,
    /// Validations refused because the node could not serve.
    pub unavailable: u64,
    /// Crashes.
    pub crashes: u64,
}

struct SimNode {
    node: Option<Node>,
    table: Arc<SessionTable>,
    durable_log: Vec<Revocation>,
    /// Local clock = offset + global × rate.
    rate: f64,
    offset_ms: f64,
    down_until: u64,
}

impl SimNode {
    fn local(&self, global: u64) -> u64 {
        (self.offset_ms + global as f64 * self.rate) as u64
    }
}

/// Runs one schedule.
///
/// # Errors
/// The first [`Violation`] found.
pub fn run(seed: u64, config: SimConfig) -> Result<SimStats, Violation> {
    let mut rng = SimRng::new(seed);
    let n = config.nodes.clamp(2, 7);
    let all: Vec<NodeIndex> = (0..n as NodeIndex).collect();
    let drift = config.timing.drift_ppm as f64 / 1e6;
    let peers_of = |me: NodeIndex| all.iter().copied().filter(|p| *p != me).collect::<Vec<_>>();
    let mut nodes: Vec<SimNode> = all
        .iter()
        .map(|&me| {
            let table = Arc::new(SessionTable::new(2));
            let rate = 1.0 + drift * ((rng.below(2001) as f64 - 1000.0) / 1000.0);
            let offset_ms = rng.below(10_000) as f64;
            let now = offset_ms as u64;
            let node = Node::new(
                me,
                peers_of(me),
                rng.next_u64(),
                config.timing,
                Arc::clone(&table),
                Vec::new(),
                now,
            );
            SimNode {
                node: Some(node),
                table,
                durable_log: Vec::new(),
                rate,
                offset_ms,
                down_until: 0,
            }
        })
        .collect();
    // In flight: delivery time → messages.
    let mut network: BTreeMap<u64, Vec<(NodeIndex, NodeIndex, Message)>> = BTreeMap::new();
    let mut partition: Option<(Vec<bool>, u64)> = None;
    let mut sessions: Vec<(SessionId, Arc<str>)> = Vec::new();
    // Revokes started: id → session; returned: session → global time.
    let mut started: HashMap<RevocationId, SessionId> = HashMap::new();
    let mut returned: HashMap<SessionId, u64> = HashMap::new();
    let mut stats = SimStats::default();
    let tenant: Arc<str> = Arc::from("acme");
    let policy = SessionPolicy {
        absolute_ms: 10_000_000,
        idle_ms: 10_000_000,
    };
    for now in 0..config.duration_ms {
        // Faults.
        if config.partitions {
            match &partition {
                Some((_, until)) if now >= *until => partition = None,
                None if rng.chance(0.0015) => {
                    let sides: Vec<bool> = (0..n).map(|_| rng.chance(0.5)).collect();
                    partition = Some((sides, now + 50 + rng.below(1_500)));
                }
                _ => {}
            }
        }
        if config.restarts && rng.chance(0.0008) {
            let victim = rng.below(n as u64) as usize;
            if nodes[victim].node.is_some() {
                nodes[victim].node = None;
                nodes[victim].down_until = now + 20 + rng.below(1_500);
                stats.crashes += 1;
                // Revokes in progress there never returned: no promise made.
                started.retain(|id, _| usize::from(id.origin) != victim);
            }
        }
        for (i, sim) in nodes.iter_mut().enumerate() {
            if sim.node.is_none() && now >= sim.down_until {
                // Memory is gone: a new table; durable revocations recovered.
                sim.table = Arc::new(SessionTable::new(2));
                let recovered = if config.durable {
                    sim.durable_log.clone()
                } else {
                    Vec::new()
                };
                let local = sim.local(now);
                sim.node = Some(Node::new(
                    i as NodeIndex,
                    peers_of(i as NodeIndex),
                    rng.next_u64(),
                    config.timing,
                    Arc::clone(&sim.table),
                    recovered,
                    local,
                ));
            }
        }
        // Deliveries due now.
        if let Some(batch) = network.remove(&now) {
            for (from, to, message) in batch {
                let sim = &mut nodes[usize::from(to)];
                let local = sim.local(now);
                if let Some(node) = sim.node.as_mut() {
                    node.handle(local, from, message);
                }
            }
        }
        // Client actions.
        let target = rng.below(n as u64) as usize;
        let action = rng.below(100);
        {
            let sim = &mut nodes[target];
            let local = sim.local(now);
            if let Some(node) = sim.node.as_mut() {
                if action < 8 && node.can_serve(local) {
                    let record = sim.table.create_with_id(
                        rng.session_id(),
                        &tenant,
                        "alice",
                        vec![],
                        None,
                        policy,
                        now,
                    );
                    sessions.push((record.id, Arc::clone(&tenant)));
                    node.replicate(record);
                    node.flush_deltas();
                } else if action < 12 && !sessions.is_empty() {
                    let (id, tenant) = sessions[rng.below(sessions.len() as u64) as usize].clone();
                    let what = Revoked::Session {
                        tenant,
                        id,
                        keep_until_ms: u64::MAX,
                    };
                    let next = node.next_revocation_id();
                    if config.durable {
                        sim.durable_log.push(Revocation {
                            id: next,
                            what: what.clone(),
                        });
                    }
                    let revocation = node.revoke(what, local);
                    started.insert(revocation.id, id);
                } else if action < 60 && !sessions.is_empty() {
                    let (id, _) = sessions[rng.below(sessions.len() as u64) as usize];
                    if node.can_serve(local) {
                        stats.validations += 1;
                        if let Validation::Valid(_) = sim.table.validate("acme", &id, now) {
                            if let Some(at) = returned.get(&id) {
                                return Err(Violation {
                                    seed,
                                    description: format!("node {target} accepted a session at {now} ms whose revoke returned at {at} ms"),
                                });
                            }
                        }
                    } else {
                        stats.unavailable += 1;
                    }
                }
            }
        }
        // Timers, transmissions, events.
        for (i, sim) in nodes.iter_mut().enumerate() {
            let local = sim.local(now);
            let Some(node) = sim.node.as_mut() else {
                continue;
            };
            if local >= node.poll_timeout() {
                node.handle_timeout(local);
            }
            while let Some(event) = node.poll_event() {
                if let Event::RevokeDone(id) = event {
                    if let Some(session) = started.remove(&id) {
                        returned.entry(session).or_insert(now);
                        stats.revokes_returned += 1;
                    }
                }
            }
            while let Some((to, message)) = node.poll_transmit() {
                let cut = partition
                    .as_ref()
                    .is_some_and(|(sides, _)| sides[i] != sides[usize::from(to)]);
                if cut || rng.chance(config.loss) {
                    continue;
                }
                let copies = if rng.chance(config.duplicate) { 2 } else { 1 };
                for _ in 0..copies {
                    let at = now + 1 + rng.below(config.max_delay_ms.max(1));
                    network
                        .entry(at)
                        .or_default()
                        .push((i as NodeIndex, to, message.clone()));
                }
            }
        }
    }
    Ok(stats)
}

/// The schedule of docs/sessions.md ("The case memory alone cannot
/// cover"): node 0 revokes while 1 and 2 are cut off from it; the revoke
/// returns when their leases run out; node 0 crashes before the partition
/// heals, restarts, and nodes 1 and 2 are asked about the session.
/// Returns whether any node accepted the revoked session afterwards.
pub fn memory_alone_case(durable: bool) -> bool {
    let timing = Timing {
        heartbeat_ms: 50,
        lease_ms: 300,
        drift_ppm: 10_000,
    };
    let tables: Vec<Arc<SessionTable>> = (0..3).map(|_| Arc::new(SessionTable::new(1))).collect();
    let peers = |me: NodeIndex| (0..3).filter(|p| *p != me).collect::<Vec<NodeIndex>>();
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| {
            Node::new(
                i,
                peers(i),
                100 + u64::from(i),
                timing,
                Arc::clone(&tables[usize::from(i)]),
                Vec::new(),
                0,
            )
        })
        .collect();
    let mut rng = SimRng::new(7);
    let tenant: Arc<str> = Arc::from("acme");
    let policy = SessionPolicy {
        absolute_ms: 10_000_000,
        idle_ms: 10_000_000,
    };
    let mut durable_log = Vec::new();
    let mut session = None;
    let mut revoked_at = None;
    let mut accepted_after_return = false;
    // Links: (a, b) open?
    let open = |a: usize, b: usize, t: u64, revoke_time: u64, crash_time: u64| -> bool {
        let cut_from_zero = (revoke_time..crash_time + 400).contains(&t) && (a == 0 || b == 0);
        !cut_from_zero
    };
    let (revoke_time, crash_time, restart_time) = (1_000u64, 1_600u64, 1_700u64);
    let mut node0_down = false;
    for now in 0..4_000u64 {
        if now == 500 {
            let record = tables[0].create_with_id(
                rng.session_id(),
                &tenant,
                "alice",
                vec![],
                None,
                policy,
                now,
            );
            nodes[0].replicate(record.clone());
            nodes[0].flush_deltas();
            session = Some(record.id);
        }
        if now == revoke_time {
            if let Some(id) = session {
                let what = Revoked::Session {
                    tenant: Arc::clone(&tenant),
                    id,
                    keep_until_ms: u64::MAX,
                };
                durable_log.push(Revocation {
                    id: nodes[0].next_revocation_id(),
                    what: what.clone(),
                });
                nodes[0].revoke(what, now);
            }
        }
        if now == crash_time {
            node0_down = true;
        }
        if now == restart_time {
            node0_down = false;
            let table = Arc::new(SessionTable::new(1));
            let recovered = if durable {
                durable_log.clone()
            } else {
                Vec::new()
            };
            nodes[0] = Node::new(0, peers(0), 999, timing, Arc::clone(&table), recovered, now);
        }
        let mut outgoing = Vec::new();
        for (i, node) in nodes.iter_mut().enumerate() {
            if i == 0 && node0_down {
                continue;
            }
            if now >= node.poll_timeout() {
                node.handle_timeout(now);
            }
            while let Some(event) = node.poll_event() {
                if let Event::RevokeDone(_) = event {
                    revoked_at.get_or_insert(now);
                }
            }
            while let Some((to, message)) = node.poll_transmit() {
                outgoing.push((i, usize::from(to), message));
            }
        }
        for (from, to, message) in outgoing {
            if (to == 0 && node0_down) || !open(from, to, now, revoke_time, crash_time) {
                continue;
            }
            nodes[to].handle(now, from as NodeIndex, message);
        }
        if let (Some(id), Some(at)) = (session, revoked_at) {
            if now > at {
                for i in 1..3 {
                    if nodes[i].can_serve(now)
                        && matches!(tables[i].validate("acme", &id, now), Validation::Valid(_))
                    {
                        accepted_after_return = true;
                    }
                }
            }
        }
    }
    assert!(
        revoked_at.is_some_and(|t| t < crash_time),
        "the revoke returned before the crash"
    );
    accepted_after_return
}
