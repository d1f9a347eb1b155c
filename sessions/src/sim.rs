//! A deterministic simulator for the replication protocol: nodes on a
//! virtual clock, a network that delays, loses, duplicates and partitions
//! (minority and majority sides), nodes that crash and restart from their
//! disk (or die for good, and are then removed from the membership), new
//! nodes added, clocks that run at different rates within the drift bound,
//! and a disk that takes a while to sync. Two checkers:
//!
//! - safety: after a revoke (of a session, or of a user's sessions)
//!   returned, no node accepts a session it covers;
//! - liveness: a node that is up, a member, and connected to a majority of
//!   up members for a lease and a heartbeat (and the network's delays)
//!   serves.
//!
//! Everything follows from the seed, so a failing seed replays exactly.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::replication::{
    Decree, DecreeId, Event, Membership, Message, Node, NodeConfig, NodeName, Revoked, Timing,
};
use crate::table::{Mark, SessionId, SessionPolicy, SessionRecord, SessionTable, Validation};

mod scenarios;
pub use scenarios::memory_alone_case;
#[cfg(test)]
pub(crate) use scenarios::Trio;

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
    /// Nodes at the start (1 to 7).
    pub nodes: usize,
    /// Virtual milliseconds to run.
    pub duration_ms: u64,
    /// Probability a message is lost.
    pub loss: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
    /// Message delay range, ms.
    pub max_delay_ms: u64,
    /// Whether partitions happen (random sides: minorities and majorities).
    pub partitions: bool,
    /// Whether nodes crash and restart from their disk.
    pub restarts: bool,
    /// The chance per millisecond that some node crashes.
    pub crash_rate: f64,
    /// Whether nodes die for good (then a serving node removes them).
    pub permanent_crashes: bool,
    /// Whether new nodes are added.
    pub additions: bool,
    /// Whether decrees and sessions survive a crash on disk. Off, the
    /// checker must find violations: that is the case docs/sessions.md
    /// says memory alone cannot cover.
    pub durable: bool,
    /// Whether the liveness checker runs.
    pub check_liveness: bool,
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
            crash_rate: 0.0008,
            permanent_crashes: true,
            additions: true,
            durable: true,
            check_liveness: true,
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
    /// Crashes (restarted later).
    pub crashes: u64,
    /// Nodes that died for good.
    pub deaths: u64,
    /// Membership changes that returned.
    pub membership_changes: u64,
    /// Decrees forgotten by compaction.
    pub compacted: u64,
    /// Liveness checks made (a node expected to serve).
    pub liveness_checks: u64,
}

/// The session lifetime in simulations: short, so compaction happens.
const LIFETIME_MS: u64 = 2_000;
const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

struct SimNode {
    name: NodeName,
    node: Option<Node>,
    table: Arc<SessionTable>,
    disk_decrees: Vec<Decree>,
    disk_records: HashMap<SessionId, SessionRecord>,
    /// Decrees being synced: (global time done, decree).
    syncing: VecDeque<(u64, Decree)>,
    /// The membership it is (re)started with.
    configured: Membership,
    /// Local clock = offset + global × rate.
    rate: f64,
    offset_ms: f64,
    down_until: u64,
    dead: bool,
    up_since: u64,
}

impl SimNode {
    fn local(&self, global: u64) -> u64 {
        (self.offset_ms + global as f64 * self.rate) as u64
    }

    fn boot(&mut self, now: u64, incarnation: u64, timing: Timing, durable: bool) {
        self.table = Arc::new(SessionTable::new(2));
        let mut recovered = Vec::new();
        if durable {
            for record in self.disk_records.values() {
                self.table.merge(record);
            }
            recovered = self.disk_decrees.clone();
        }
        self.syncing.clear();
        self.up_since = now;
        let local = self.local(now);
        self.node = Some(Node::new(
            NodeConfig {
                name: self.name.clone(),
                membership: self.configured.clone(),
                incarnation,
                timing,
            },
            Arc::clone(&self.table),
            recovered,
            local,
        ));
    }
}

/// A session the clients know, with what revoked it and when that returned.
struct Known {
    id: SessionId,
    user: &'static str,
    created: u64,
}

/// The fence the front door keeps in the directory: the newest epoch taken
/// and whether the change that took it returned.
struct Fence {
    config: Membership,
    committed: bool,
    /// The change's decree and its origin, while it has not returned.
    in_flight: Option<(usize, DecreeId)>,
    /// When the last change returned.
    settled_at: u64,
}

struct Sim {
    seed: u64,
    config: SimConfig,
    rng: SimRng,
    nodes: Vec<SimNode>,
    by_name: HashMap<NodeName, usize>,
    network: BTreeMap<u64, Vec<(NodeName, usize, Message)>>,
    partition: Option<(Vec<bool>, u64)>,
    partition_changed_at: u64,
    sessions: Vec<Known>,
    /// Revokes started: id → origin and what they cover.
    started: HashMap<DecreeId, (usize, Covered)>,
    /// Session revokes returned: session → time.
    returned_sessions: HashMap<SessionId, u64>,
    /// User revokes returned: (user, before, time).
    returned_marks: Vec<(&'static str, u64, u64)>,
    fence: Fence,
    stats: SimStats,
    tenant: Arc<str>,
}

#[derive(Clone, Copy)]
enum Covered {
    Session(SessionId),
    User(&'static str, u64),
}

/// Runs one schedule.
///
/// # Errors
/// The first [`Violation`] found.
pub fn run(seed: u64, config: SimConfig) -> Result<SimStats, Violation> {
    let mut sim = Sim::new(seed, config);
    for now in 0..config.duration_ms {
        sim.step(now)?;
    }
    Ok(sim.stats)
}

fn name_of(i: usize) -> NodeName {
    NodeName::from(format!("n{i}").as_str())
}

impl Sim {
    fn new(seed: u64, config: SimConfig) -> Sim {
        let mut rng = SimRng::new(seed);
        let n = config.nodes.clamp(1, 7);
        let membership = Membership::initial((0..n).map(|i| (name_of(i), format!("n{i}:1"))));
        let mut sim = Sim {
            seed,
            config,
            nodes: Vec::new(),
            by_name: HashMap::new(),
            network: BTreeMap::new(),
            partition: None,
            partition_changed_at: 0,
            sessions: Vec::new(),
            started: HashMap::new(),
            returned_sessions: HashMap::new(),
            returned_marks: Vec::new(),
            fence: Fence {
                config: membership.clone(),
                committed: true,
                in_flight: None,
                settled_at: 0,
            },
            stats: SimStats::default(),
            tenant: Arc::from("acme"),
            rng: SimRng::new(0),
        };
        for _ in 0..n {
            sim.spawn(membership.clone(), 0, &mut rng);
        }
        sim.rng = rng;
        sim
    }

    fn spawn(&mut self, configured: Membership, now: u64, rng: &mut SimRng) -> usize {
        let i = self.nodes.len();
        let drift = self.config.timing.drift_ppm as f64 / 1e6;
        let mut node = SimNode {
            name: name_of(i),
            node: None,
            table: Arc::new(SessionTable::new(2)),
            disk_decrees: Vec::new(),
            disk_records: HashMap::new(),
            syncing: VecDeque::new(),
            configured,
            rate: 1.0 + drift * ((rng.below(2001) as f64 - 1000.0) / 1000.0),
            offset_ms: rng.below(10_000) as f64,
            down_until: 0,
            dead: false,
            up_since: now,
        };
        node.boot(now, rng.next_u64(), self.config.timing, self.config.durable);
        self.by_name.insert(node.name.clone(), i);
        self.nodes.push(node);
        if let Some((sides, _)) = &mut self.partition {
            sides.push(false);
        }
        i
    }

    fn violation(&self, description: String) -> Violation {
        Violation {
            seed: self.seed,
            description,
        }
    }

    fn trace(&self, now: u64, what: impl FnOnce() -> String) {
        if std::env::var_os("SIGIL_SIM_TRACE").is_some() {
            eprintln!("{now:>6} {}", what());
        }
    }

    fn step(&mut self, now: u64) -> Result<(), Violation> {
        self.faults(now);
        self.deliver(now);
        self.disks(now);
        self.client(now)?;
        self.membership(now);
        self.timers(now);
        if now % 100 == 0 {
            for sim in &mut self.nodes {
                if let Some(node) = sim.node.as_mut() {
                    self.stats.compacted += node.compact(now) as u64;
                }
            }
        }
        if self.config.check_liveness && now % 10 == 0 {
            self.check_liveness(now)?;
        }
        Ok(())
    }

    fn faults(&mut self, now: u64) {
        let n = self.nodes.len();
        if self.config.partitions {
            match &self.partition {
                Some((_, until)) if now >= *until => {
                    self.partition = None;
                    self.partition_changed_at = now;
                    self.trace(now, || "partition healed".into());
                }
                None if self.rng.chance(0.0015) => {
                    let sides: Vec<bool> = (0..n).map(|_| self.rng.chance(0.5)).collect();
                    self.trace(now, || format!("partition {sides:?}"));
                    self.partition = Some((sides, now + 50 + self.rng.below(1_500)));
                    self.partition_changed_at = now;
                }
                _ => {}
            }
        }
        if self.config.restarts && self.rng.chance(self.config.crash_rate) {
            let victim = self.rng.below(n as u64) as usize;
            let permanent = self.config.permanent_crashes
                && self.rng.chance(0.25)
                && self.alive_members_after_death(victim);
            let sim = &mut self.nodes[victim];
            if sim.node.is_some() {
                sim.node = None;
                sim.down_until = now + 20 + self.rng.below(1_500);
                if permanent {
                    sim.dead = true;
                    self.stats.deaths += 1;
                } else {
                    self.stats.crashes += 1;
                }
                self.trace(now, || format!("n{victim} crashes (for good: {permanent})"));
                // Revokes in progress there never returned: no promise made.
                self.started.retain(|_, (origin, _)| *origin != victim);
                if self
                    .fence
                    .in_flight
                    .is_some_and(|(origin, _)| origin == victim)
                {
                    self.fence.in_flight = None;
                }
            }
        }
        for i in 0..n {
            let sim = &mut self.nodes[i];
            if sim.node.is_none() && !sim.dead && now >= sim.down_until {
                let incarnation = self.rng.next_u64();
                sim.boot(now, incarnation, self.config.timing, self.config.durable);
                self.trace(now, || format!("n{i} restarts"));
            }
        }
    }

    /// Whether a majority of the fenced membership stays alive if `victim`
    /// dies for good (deaths beyond that make the cluster unavailable for
    /// good, which teaches nothing).
    fn alive_members_after_death(&self, victim: usize) -> bool {
        let alive: Vec<&NodeName> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, s)| *i != victim && !s.dead)
            .map(|(_, s)| &s.name)
            .collect();
        self.fence.committed
            && self.fence.config.is_majority(alive.iter().copied())
            && self.fence.config.members.len() > 1
    }

    fn send(&mut self, now: u64, from: usize, to: &NodeName, message: Message) {
        let Some(&target) = self.by_name.get(to) else {
            return;
        };
        let cut = self
            .partition
            .as_ref()
            .is_some_and(|(sides, _)| sides[from] != sides[target]);
        if cut || self.rng.chance(self.config.loss) {
            return;
        }
        let copies = if self.rng.chance(self.config.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = now + 1 + self.rng.below(self.config.max_delay_ms.max(1));
            let name = self.nodes[from].name.clone();
            self.network
                .entry(at)
                .or_default()
                .push((name, target, message.clone()));
        }
    }

    fn deliver(&mut self, now: u64) {
        let Some(batch) = self.network.remove(&now) else {
            return;
        };
        for (from, to, message) in batch {
            let sim = &mut self.nodes[to];
            let local = sim.local(now);
            let Some(node) = sim.node.as_mut() else {
                continue;
            };
            if let (Message::Deltas(records), true) = (&message, self.config.durable) {
                for record in records {
                    sim.disk_records.insert(record.id, record.clone());
                }
            }
            node.handle(local, &from, message);
        }
    }

    /// Disks finish syncing decrees, in the order asked.
    fn disks(&mut self, now: u64) {
        for sim in &mut self.nodes {
            let local = sim.local(now);
            while sim.syncing.front().is_some_and(|(due, _)| *due <= now) {
                let Some((_, decree)) = sim.syncing.pop_front() else {
                    break;
                };
                if self.config.durable {
                    sim.disk_decrees.push(decree.clone());
                }
                if let Some(node) = sim.node.as_mut() {
                    node.persisted(decree.id, local);
                }
            }
        }
    }

    fn client(&mut self, now: u64) -> Result<(), Violation> {
        let target = self.rng.below(self.nodes.len() as u64) as usize;
        let action = self.rng.below(100);
        let policy = SessionPolicy {
            absolute_ms: LIFETIME_MS,
            idle_ms: LIFETIME_MS,
        };
        let local = self.nodes[target].local(now);
        let Some(serving) = self.nodes[target].node.as_ref().map(|n| n.can_serve(local)) else {
            return Ok(());
        };
        if action < 8 && serving {
            let user = USERS[self.rng.below(USERS.len() as u64) as usize];
            let id = self.rng.session_id();
            let sim = &mut self.nodes[target];
            let record =
                sim.table
                    .create_with_id(id, &self.tenant, user, vec![], None, policy, now);
            if self.config.durable {
                sim.disk_records.insert(record.id, record.clone());
            }
            if let Some(node) = sim.node.as_mut() {
                node.replicate(record);
                node.flush_deltas();
            }
            self.sessions.push(Known {
                id,
                user,
                created: now,
            });
        } else if action < 12 && !self.sessions.is_empty() {
            let pick = self.rng.below(self.sessions.len() as u64) as usize;
            let (what, covered) = if self.rng.chance(0.8) {
                let known = &self.sessions[pick];
                (
                    Revoked::Session {
                        tenant: Arc::clone(&self.tenant),
                        id: known.id,
                        keep_until_ms: known.created + LIFETIME_MS,
                    },
                    Covered::Session(known.id),
                )
            } else {
                let user = self.sessions[pick].user;
                (
                    Revoked::Mark(Mark {
                        tenant: Arc::clone(&self.tenant),
                        user: Some(Arc::from(user)),
                        before_ms: now,
                        keep_until_ms: now + LIFETIME_MS,
                    }),
                    Covered::User(user, now),
                )
            };
            let sim = &mut self.nodes[target];
            if let Some(node) = sim.node.as_mut() {
                let decree = node.prepare_revoke(what);
                if self.config.durable {
                    sim.disk_decrees.push(decree.clone());
                }
                let id = decree.id;
                node.start(decree, local);
                self.started.insert(id, (target, covered));
            }
        } else if action < 60 && !self.sessions.is_empty() {
            let pick = self.rng.below(self.sessions.len() as u64) as usize;
            let (id, user, created) = {
                let known = &self.sessions[pick];
                (known.id, known.user, known.created)
            };
            if !serving {
                self.stats.unavailable += 1;
                return Ok(());
            }
            self.stats.validations += 1;
            if let Validation::Valid(_) = self.nodes[target].table.validate("acme", &id, now) {
                if let Some(at) = self.returned_sessions.get(&id) {
                    return Err(self.violation(format!(
                        "node {target} accepted a session at {now} ms whose revoke returned at {at} ms"
                    )));
                }
                if let Some((_, before, at)) = self
                    .returned_marks
                    .iter()
                    .find(|(u, before, _)| *u == user && created <= *before)
                {
                    return Err(self.violation(format!(
                        "node {target} accepted a session of {user} created at {created} ms at {now} ms; the user's sessions before {before} ms were revoked at {at} ms"
                    )));
                }
            }
        }
        Ok(())
    }
}

impl Sim {
    /// Membership: a dead member is removed, now and then a node is added;
    /// a change whose origin died before it returned is driven again by a
    /// serving node (as the front door does from the directory's fence).
    fn membership(&mut self, now: u64) {
        if !self.config.permanent_crashes && !self.config.additions {
            return;
        }
        if self.fence.in_flight.is_some() {
            return;
        }
        if !self.fence.committed {
            let config = self.fence.config.clone();
            self.propose(config, now);
            return;
        }
        let dead = self
            .fence
            .config
            .members
            .keys()
            .find(|name| self.by_name.get(*name).is_some_and(|i| self.nodes[*i].dead))
            .cloned();
        if let Some(dead) = dead {
            if let Ok(next) = self.fence.config.without(&dead) {
                self.propose(next, now);
            }
        } else if self.config.additions
            && self.fence.config.members.len() < 5
            && self.nodes.len() < 8
            && self.rng.chance(0.0005)
        {
            let name = name_of(self.nodes.len());
            let Ok(next) = self.fence.config.with_added(&name, &format!("{name}:1")) else {
                return;
            };
            // Its own start-up view: the members it was told of and itself,
            // at epoch 0 (the cluster's epoch 0 may say otherwise).
            let mut own_view = next.clone();
            own_view.epoch = 0;
            let mut rng = self.rng.clone();
            self.spawn(own_view, now, &mut rng);
            self.rng = rng;
            self.propose(next, now);
        }
    }

    /// Proposes `config` at a random serving node; true if one took it.
    fn propose(&mut self, config: Membership, now: u64) -> bool {
        let candidates: Vec<usize> = (0..self.nodes.len())
            .filter(|i| {
                let sim = &self.nodes[*i];
                sim.node
                    .as_ref()
                    .is_some_and(|n| n.can_serve(sim.local(now)))
            })
            .collect();
        if candidates.is_empty() {
            return false;
        }
        let i = candidates[self.rng.below(candidates.len() as u64) as usize];
        let sim = &mut self.nodes[i];
        let local = sim.local(now);
        let Some(node) = sim.node.as_mut() else {
            return false;
        };
        let Ok(decree) = node.prepare_membership(config.clone(), local) else {
            return false;
        };
        if self.config.durable {
            sim.disk_decrees.push(decree.clone());
        }
        let id = decree.id;
        node.start(decree, local);
        self.trace(now, || format!("n{i} proposes {config:?}"));
        self.fence.config = config;
        self.fence.committed = false;
        self.fence.in_flight = Some((i, id));
        true
    }

    fn timers(&mut self, now: u64) {
        for i in 0..self.nodes.len() {
            let mut outgoing = Vec::new();
            let mut events = Vec::new();
            {
                let sim = &mut self.nodes[i];
                let local = sim.local(now);
                let Some(node) = sim.node.as_mut() else {
                    continue;
                };
                if local >= node.poll_timeout() {
                    node.handle_timeout(local);
                }
                while let Some(event) = node.poll_event() {
                    events.push(event);
                }
                while let Some(transmit) = node.poll_transmit() {
                    outgoing.push(transmit);
                }
            }
            for event in events {
                self.on_event(now, i, event);
            }
            for (to, message) in outgoing {
                self.send(now, i, &to, message);
            }
        }
    }

    fn on_event(&mut self, now: u64, i: usize, event: Event) {
        if !matches!(event, Event::Persist(_)) {
            self.trace(now, || format!("n{i}: {event:?}"));
        }
        match event {
            Event::Persist(decree) => {
                let sim = &mut self.nodes[i];
                let last = sim.syncing.back().map_or(now, |(due, _)| *due);
                let due = last.max(now) + self.rng.below(5);
                sim.syncing.push_back((due, decree));
            }
            Event::SendState { to, response } => {
                let records = self.nodes[i].table.snapshot().0;
                self.send(now, i, &to, Message::Deltas(records));
                self.send(now, i, &to, response);
            }
            Event::Ready => {
                // The driver pushes what this node recovered from disk.
                let records = self.nodes[i].table.snapshot().0;
                let peers: Vec<NodeName> = self.nodes[i]
                    .node
                    .as_ref()
                    .map(|n| n.membership().peers(&self.nodes[i].name).cloned().collect())
                    .unwrap_or_default();
                for peer in peers {
                    self.send(now, i, &peer, Message::Deltas(records.clone()));
                }
            }
            Event::Done(id) => {
                if let Some((_, covered)) = self.started.remove(&id) {
                    self.stats.revokes_returned += 1;
                    match covered {
                        Covered::Session(session) => {
                            self.returned_sessions.entry(session).or_insert(now);
                        }
                        Covered::User(user, before) => {
                            self.returned_marks.push((user, before, now))
                        }
                    }
                }
                if self.fence.in_flight.is_some_and(|(_, change)| change == id) {
                    self.fence.in_flight = None;
                    self.fence.committed = true;
                    self.fence.settled_at = now;
                    self.stats.membership_changes += 1;
                }
            }
            Event::MembershipChanged(_) => {}
        }
    }

    /// A node up, a member, and connected to a majority of up members for
    /// long enough must serve.
    fn check_liveness(&mut self, now: u64) -> Result<(), Violation> {
        let timing = self.config.timing;
        let window = timing.lease_ms + 2 * timing.heartbeat_ms + 4 * self.config.max_delay_ms;
        // A restarted node also needs a peer's state: a few sync attempts.
        let started_window = window + 4 * 10 * timing.heartbeat_ms;
        if !self.fence.committed || now < self.fence.settled_at + window || now < started_window {
            return Ok(());
        }
        if self.partition.is_some() || now < self.partition_changed_at + window {
            // Sides: only when the partition has stood for the window.
            if now < self.partition_changed_at + window {
                return Ok(());
            }
        }
        let side = |i: usize| self.partition.as_ref().is_some_and(|(s, _)| s[i]);
        let settled: Vec<usize> = (0..self.nodes.len())
            .filter(|i| {
                let sim = &self.nodes[*i];
                sim.node.is_some()
                    && now >= sim.up_since + started_window
                    && self.fence.config.contains(&sim.name)
            })
            .collect();
        for &i in &settled {
            let connected = settled
                .iter()
                .filter(|j| side(**j) == side(i))
                .map(|j| &self.nodes[*j].name);
            if !self.fence.config.is_majority(connected) {
                continue;
            }
            self.stats.liveness_checks += 1;
            let sim = &self.nodes[i];
            let local = sim.local(now);
            if let Some(node) = sim.node.as_ref() {
                if !node.can_serve(local) {
                    return Err(self.violation(format!(
                        "node {i} ({node:?}) connected to a majority of {:?} does not serve at {now} ms",
                        self.fence.config.members.keys().collect::<Vec<_>>()
                    )));
                }
            }
        }
        Ok(())
    }
}
