//! Replication and strong revocation between nodes, as a pure state
//! machine in the quinn-proto shape: [`Node::handle`] takes a message,
//! [`Node::handle_timeout`] the passage of time, [`Node::poll_transmit`]
//! and [`Node::poll_event`] give what to send and what happened. No
//! sockets, no clock: `now` is this node's clock in milliseconds.
//!
//! The protocol is docs/sessions.md: leases from every peer (a heartbeat
//! round trip within the lease time) are needed to check sessions; grants
//! carry every revocation the granter knows above the requester's
//! watermark; a revoke returns when every peer acknowledged it or the lease
//! that peer could hold has run out, measured with a margin for clock-rate
//! drift; a node that starts is not ready until it merged the state of a
//! peer that serves (or every peer said it is starting too).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::table::{Mark, SessionId, SessionRecord, SessionTable};

/// A node's index in the cluster's peer list (all nodes agree on it).
pub type NodeIndex = u16;

/// Which revocation: its origin, the origin's incarnation, and a sequence
/// number within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RevocationId {
    /// Origin node.
    pub origin: NodeIndex,
    /// The origin's incarnation (drawn at each start).
    pub incarnation: u64,
    /// Position within the incarnation, from 1.
    pub seq: u64,
}

/// What is revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Revoked {
    /// One session (a tombstone if unknown yet, kept until `keep_until_ms`).
    Session {
        /// Tenant.
        tenant: Arc<str>,
        /// Session.
        id: SessionId,
        /// Wall-clock ms until which a tombstone is kept.
        keep_until_ms: u64,
    },
    /// Every session of a user, or of a tenant, created before a time.
    Mark(Mark),
}

/// A revocation with its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// Id.
    pub id: RevocationId,
    /// What.
    pub what: Revoked,
}

/// The messages between nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// "Grant me a lease." `known` is the sender's revocation watermark.
    Heartbeat {
        /// Sender's clock when sent (echoed back).
        sent_at: u64,
        /// Highest contiguous revocation seq known per (origin, incarnation).
        known: Vec<((NodeIndex, u64), u64)>,
    },
    /// A lease grant (when `granted`), with revocations the requester lacks.
    HeartbeatAck {
        /// The heartbeat's `sent_at`.
        echo: u64,
        /// False when the granter is not ready (no lease given).
        granted: bool,
        /// Revocations above the requester's watermark.
        revocations: Vec<Revocation>,
    },
    /// A new revocation from its origin.
    Revoke(Revocation),
    /// The receiver applied it.
    RevokeAck(RevocationId),
    /// Sessions created or touched (best effort; merged as a CRDT).
    Deltas(Vec<SessionRecord>),
    /// "Send me your state": from a node that is starting.
    SyncRequest,
    /// Full state; `serving` says whether the sender served (apart from the
    /// requester) when it sent it.
    SyncResponse {
        /// Whether the sender holds fresh leases from every peer but the
        /// requester and peers that are starting.
        serving: bool,
        /// Whether the sender is starting itself (not ready).
        starting: bool,
        /// Sessions.
        records: Vec<SessionRecord>,
        /// Revocations.
        revocations: Vec<Revocation>,
    },
}

/// What happened, for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A revoke started here may now return.
    RevokeDone(RevocationId),
    /// The node merged a peer's state and serves.
    Ready,
}

/// Timing of the protocol.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Heartbeat interval (ms).
    pub heartbeat_ms: u64,
    /// Lease length (ms).
    pub lease_ms: u64,
    /// Bound on clock-rate drift between nodes, in parts per million
    /// (10,000 = 1 %); at most 333,333.
    pub drift_ppm: u64,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            heartbeat_ms: 100,
            lease_ms: 1_000,
            drift_ppm: 10_000,
        }
    }
}

impl Timing {
    /// How long after its last grant to a peer a revoke may stop waiting for
    /// that peer: `L·(1+3ρ)`.
    pub fn revoke_wait_ms(&self) -> u64 {
        self.lease_ms + self.lease_ms * 3 * self.drift_ppm / 1_000_000
    }
}

struct PendingRevoke {
    /// Peers yet to ack, with the time after which their lease is over.
    waiting: HashMap<NodeIndex, u64>,
    revocation: Revocation,
}

/// One node's replication state.
pub struct Node {
    me: NodeIndex,
    peers: Vec<NodeIndex>,
    incarnation: u64,
    next_seq: u64,
    timing: Timing,
    table: Arc<SessionTable>,
    /// Every revocation known, by (origin, incarnation) then seq.
    log: HashMap<(NodeIndex, u64), BTreeMap<u64, Revocation>>,
    lease_from: HashMap<NodeIndex, u64>,
    last_grant: HashMap<NodeIndex, u64>,
    ready: bool,
    not_ready_answers: HashSet<NodeIndex>,
    starting_peers: HashSet<NodeIndex>,
    pending: HashMap<RevocationId, PendingRevoke>,
    outbox: VecDeque<(NodeIndex, Message)>,
    events: VecDeque<Event>,
    deltas: Vec<SessionRecord>,
    next_heartbeat: u64,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("me", &self.me)
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A node starting at `now` with a fresh `incarnation` (random), over
    /// `table`, with the revocations `recovered` from durable storage
    /// applied first. With no peers it is ready at once.
    pub fn new(
        me: NodeIndex,
        peers: Vec<NodeIndex>,
        incarnation: u64,
        timing: Timing,
        table: Arc<SessionTable>,
        recovered: Vec<Revocation>,
        now: u64,
    ) -> Node {
        let mut node = Node {
            me,
            ready: peers.is_empty(),
            // As if the previous incarnation had just granted every peer.
            last_grant: peers.iter().map(|p| (*p, now)).collect(),
            lease_from: HashMap::new(),
            peers,
            incarnation,
            next_seq: 1,
            timing,
            table,
            log: HashMap::new(),
            not_ready_answers: HashSet::new(),
            starting_peers: HashSet::new(),
            pending: HashMap::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            deltas: Vec::new(),
            next_heartbeat: now,
        };
        for revocation in recovered {
            node.apply(&revocation);
        }
        node
    }

    /// This node.
    pub fn me(&self) -> NodeIndex {
        self.me
    }

    /// Whether it merged a peer's state (or needs none).
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Whether it may answer session checks at `now`: ready, and holding a
    /// fresh lease from every peer. Otherwise answer `unavailable`.
    pub fn can_serve(&self, now: u64) -> bool {
        self.ready
            && self
                .peers
                .iter()
                .all(|p| self.lease_from.get(p).is_some_and(|&until| now < until))
    }

    /// Whether its state is one a joiner may start from: ready, with fresh
    /// leases from every peer except the joiner and peers that are starting
    /// themselves (they hold no sessions, and any revocation they made
    /// durable reaches every node with their first grant).
    /// The local time until which [`Node::can_serve`] holds if nothing
    /// changes: the earliest lease expiry (or `u64::MAX` without peers).
    pub fn serving_until(&self) -> u64 {
        self.peers
            .iter()
            .map(|p| self.lease_from.get(p).copied().unwrap_or(0))
            .min()
            .unwrap_or(u64::MAX)
    }

    fn serving_except(&self, peer: NodeIndex, now: u64) -> bool {
        self.ready
            && self
                .peers
                .iter()
                .filter(|p| **p != peer && !self.starting_peers.contains(p))
                .all(|p| self.lease_from.get(p).is_some_and(|&until| now < until))
    }

    fn apply(&mut self, revocation: &Revocation) -> bool {
        let entry = self
            .log
            .entry((revocation.id.origin, revocation.id.incarnation))
            .or_default();
        if entry.contains_key(&revocation.id.seq) {
            return false;
        }
        entry.insert(revocation.id.seq, revocation.clone());
        match &revocation.what {
            Revoked::Session {
                tenant,
                id,
                keep_until_ms,
            } => {
                self.table.revoke(tenant, id, *keep_until_ms);
            }
            Revoked::Mark(mark) => {
                self.table.apply_mark(mark);
            }
        }
        true
    }

    fn watermark(&self) -> Vec<((NodeIndex, u64), u64)> {
        self.log
            .iter()
            .map(|(key, seqs)| {
                let mut contiguous = 0;
                for seq in seqs.keys() {
                    if *seq == contiguous + 1 {
                        contiguous = *seq;
                    } else {
                        break;
                    }
                }
                (*key, contiguous)
            })
            .collect()
    }

    fn above(&self, known: &[((NodeIndex, u64), u64)]) -> Vec<Revocation> {
        let known: HashMap<(NodeIndex, u64), u64> = known.iter().copied().collect();
        self.log
            .iter()
            .flat_map(|(key, seqs)| {
                let floor = known.get(key).copied().unwrap_or(0);
                seqs.range(floor + 1..).map(|(_, r)| r.clone())
            })
            .collect()
    }

    fn all_revocations(&self) -> Vec<Revocation> {
        self.log
            .values()
            .flat_map(|seqs| seqs.values().cloned())
            .collect()
    }

    /// Starts a revocation here. The caller must have made it durable
    /// first (see docs/sessions.md). Returns its id; [`Event::RevokeDone`]
    /// with that id says when the revoke may return.
    pub fn revoke(&mut self, what: Revoked, now: u64) -> Revocation {
        let revocation = Revocation {
            id: RevocationId {
                origin: self.me,
                incarnation: self.incarnation,
                seq: self.next_seq,
            },
            what,
        };
        self.next_seq += 1;
        self.apply(&revocation);
        let deadline = self.timing.revoke_wait_ms();
        let waiting: HashMap<NodeIndex, u64> = self
            .peers
            .iter()
            .map(|p| {
                (
                    *p,
                    self.last_grant.get(p).copied().unwrap_or(now) + deadline,
                )
            })
            .collect();
        for peer in &self.peers {
            self.outbox
                .push_back((*peer, Message::Revoke(revocation.clone())));
        }
        self.pending.insert(
            revocation.id,
            PendingRevoke {
                waiting,
                revocation: revocation.clone(),
            },
        );
        self.check_pending(now);
        revocation
    }

    /// The id the next revocation will get (for durable logging before
    /// [`Node::revoke`]).
    pub fn next_revocation_id(&self) -> RevocationId {
        RevocationId {
            origin: self.me,
            incarnation: self.incarnation,
            seq: self.next_seq,
        }
    }

    /// Queues a created or touched session for the peers.
    pub fn replicate(&mut self, record: SessionRecord) {
        self.deltas.push(record);
    }

    fn check_pending(&mut self, now: u64) {
        let done: Vec<RevocationId> = self
            .pending
            .iter_mut()
            .filter_map(|(id, pending)| {
                pending.waiting.retain(|_, until| now < *until);
                pending.waiting.is_empty().then_some(*id)
            })
            .collect();
        for id in done {
            self.pending.remove(&id);
            self.events.push_back(Event::RevokeDone(id));
        }
    }

    /// Handles a message from `from` at `now`.
    pub fn handle(&mut self, now: u64, from: NodeIndex, message: Message) {
        if !self.peers.contains(&from) {
            return;
        }
        match message {
            Message::Heartbeat { sent_at, known } => {
                if self.ready {
                    self.last_grant.insert(from, now);
                    let revocations = self.above(&known);
                    self.outbox.push_back((
                        from,
                        Message::HeartbeatAck {
                            echo: sent_at,
                            granted: true,
                            revocations,
                        },
                    ));
                } else {
                    self.outbox.push_back((
                        from,
                        Message::HeartbeatAck {
                            echo: sent_at,
                            granted: false,
                            revocations: Vec::new(),
                        },
                    ));
                }
            }
            Message::HeartbeatAck {
                echo,
                granted,
                revocations,
            } => {
                // Revocations first: the lease must not outrun them.
                for revocation in &revocations {
                    self.apply(revocation);
                }
                if granted {
                    self.starting_peers.remove(&from);
                    let until = echo + self.timing.lease_ms;
                    let slot = self.lease_from.entry(from).or_insert(0);
                    *slot = (*slot).max(until);
                } else {
                    self.starting_peers.insert(from);
                }
            }
            Message::Revoke(revocation) => {
                self.apply(&revocation);
                self.outbox
                    .push_back((from, Message::RevokeAck(revocation.id)));
            }
            Message::RevokeAck(id) => {
                if let Some(pending) = self.pending.get_mut(&id) {
                    pending.waiting.remove(&from);
                }
                self.check_pending(now);
            }
            Message::Deltas(records) => {
                for record in &records {
                    self.table.merge(record);
                }
            }
            Message::SyncRequest => {
                let serving = self.serving_except(from, now);
                let (records, revocations) = if serving {
                    (self.table.snapshot().0, self.all_revocations())
                } else {
                    (Vec::new(), Vec::new())
                };
                self.outbox.push_back((
                    from,
                    Message::SyncResponse {
                        serving,
                        starting: !self.ready,
                        records,
                        revocations,
                    },
                ));
            }
            Message::SyncResponse {
                serving,
                starting,
                records,
                revocations,
            } => {
                if self.ready {
                    return;
                }
                if serving {
                    for revocation in &revocations {
                        self.apply(revocation);
                    }
                    for record in &records {
                        self.table.merge(record);
                    }
                    self.become_ready();
                } else if starting {
                    // A full-cluster boot: every peer is starting too, so no
                    // session survived anywhere; there is nothing to merge.
                    self.not_ready_answers.insert(from);
                    if self
                        .peers
                        .iter()
                        .all(|p| self.not_ready_answers.contains(p))
                    {
                        self.become_ready();
                    }
                }
            }
        }
    }

    fn become_ready(&mut self) {
        if !self.ready {
            self.ready = true;
            self.events.push_back(Event::Ready);
        }
    }

    /// Advances timers: heartbeats, retransmissions, sync requests, revokes
    /// whose waiting ran out.
    pub fn handle_timeout(&mut self, now: u64) {
        self.check_pending(now);
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.timing.heartbeat_ms;
            let known = self.watermark();
            for peer in &self.peers {
                self.outbox.push_back((
                    *peer,
                    Message::Heartbeat {
                        sent_at: now,
                        known: known.clone(),
                    },
                ));
                if !self.ready {
                    self.outbox.push_back((*peer, Message::SyncRequest));
                }
            }
            // Revocations not yet acknowledged go out again.
            for pending in self.pending.values() {
                for peer in pending.waiting.keys() {
                    self.outbox
                        .push_back((*peer, Message::Revoke(pending.revocation.clone())));
                }
            }
            if !self.deltas.is_empty() {
                let deltas = std::mem::take(&mut self.deltas);
                for peer in &self.peers {
                    self.outbox
                        .push_back((*peer, Message::Deltas(deltas.clone())));
                }
            }
        }
    }

    /// Sends deltas now rather than at the next heartbeat (for throughput).
    pub fn flush_deltas(&mut self) {
        if !self.deltas.is_empty() {
            let deltas = std::mem::take(&mut self.deltas);
            for peer in &self.peers {
                self.outbox
                    .push_back((*peer, Message::Deltas(deltas.clone())));
            }
        }
    }

    /// When [`Node::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> u64 {
        let mut next = self.next_heartbeat;
        for pending in self.pending.values() {
            if let Some(until) = pending.waiting.values().min() {
                next = next.min(*until);
            }
        }
        next
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<(NodeIndex, Message)> {
        self.outbox.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}
