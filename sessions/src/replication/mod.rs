//! Replication and strong revocation between nodes, as a pure state
//! machine in the quinn-proto shape: [`Node::handle`] takes a message,
//! [`Node::handle_timeout`] the passage of time, [`Node::poll_transmit`]
//! and [`Node::poll_event`] give what to send and what happened. No
//! sockets, no clock, no disk: `now` is this node's clock in milliseconds,
//! and the driver persists what [`Event::Persist`] asks and says so with
//! [`Node::persisted`].
//!
//! The protocol is docs/sessions.md: quorum leases (Moraru, Andersen and
//! Kaminsky, SoCC 2014). A node checks sessions while it holds fresh lease
//! grants from a majority of the members (itself included). A grant
//! carries every decree the granter knows above the requester's watermark.
//! A node that learns a decree waits until every node holding one of its
//! grants has acknowledged the decree or seen the grant expire, and until
//! the decree is on its disk: then the decree is *settled* there. A decree
//! returns at its origin once a majority has settled it and the origin
//! itself serves. Membership changes are decrees too (one node at a time,
//! epochs fenced by the caller).

mod decree;
mod membership;

// Ordered maps: iteration decides the order of what is sent, and
// simulations must replay exactly from their seed.
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use decree::DecreeLog;
pub use decree::{Decree, DecreeId, Decreed, NodeName, Revoked, Watermark};
pub use membership::{Membership, MembershipError};

use crate::table::{SessionRecord, SessionTable};

/// The messages between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// "Grant me a lease." `known` is the sender's watermark.
    Heartbeat {
        /// The sender's membership epoch.
        epoch: u64,
        /// Sender's clock when sent (echoed back).
        sent_at: u64,
        /// The sender's watermark.
        known: Watermark,
    },
    /// The answer to a heartbeat: a lease grant when `granted`, and always
    /// the decrees the requester lacks.
    HeartbeatAck {
        /// The granter's membership epoch.
        epoch: u64,
        /// The heartbeat's `sent_at`.
        echo: u64,
        /// Whether a lease is granted (both ready, members, same epoch).
        granted: bool,
        /// Decrees above the requester's watermark.
        decrees: Vec<Decree>,
        /// The granter's watermark: what the requester still lacks at or
        /// below it was compacted away.
        floors: Watermark,
    },
    /// A decree, from its origin or from a node whose lease holders must
    /// acknowledge it.
    Decree(Decree),
    /// The sender applied the decree; `settled` when it is settled there.
    DecreeAck {
        /// The decree.
        id: DecreeId,
        /// Whether it is settled at the sender.
        settled: bool,
    },
    /// Sessions created or touched (best effort; merged as a CRDT).
    Deltas(Vec<SessionRecord>),
    /// "Send me your state": from a member that is starting.
    SyncRequest,
    /// A state transfer's end: the sender's sessions came before it as
    /// [`Message::Deltas`].
    SyncResponse {
        /// Whether the sender served (held a majority of leases).
        serving: bool,
        /// Every decree the sender holds.
        decrees: Vec<Decree>,
        /// The sender's watermark.
        floors: Watermark,
    },
}

/// What happened, for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A decree started here is settled by a majority: the revoke (or
    /// membership change) may return.
    Done(DecreeId),
    /// The node has merged the state of a serving peer (or of a majority
    /// of starting members) and serves.
    Ready,
    /// Make this decree durable, in the order asked, then call
    /// [`Node::persisted`].
    Persist(Decree),
    /// Send this node's sessions to `to` as [`Message::Deltas`], then
    /// `response` (a [`Message::SyncResponse`]).
    SendState {
        /// The peer that asked.
        to: NodeName,
        /// What to send after the sessions.
        response: Message,
    },
    /// The membership changed (links to dial, addresses, whether this
    /// node is still a member).
    MembershipChanged(Membership),
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
    /// How long after its last grant to a peer a node may stop waiting for
    /// that peer's acknowledgement: `L·(1+3ρ)`.
    pub fn revoke_wait_ms(&self) -> u64 {
        self.lease_ms + self.lease_ms * 3 * self.drift_ppm / 1_000_000
    }

    /// How often a starting member asks for state.
    fn sync_retry_ms(&self) -> u64 {
        self.heartbeat_ms * 10
    }
}

/// How a node starts.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's name.
    pub name: NodeName,
    /// The membership it is started with (epoch 0 from its configuration);
    /// a newer one among the recovered decrees replaces it.
    pub membership: Membership,
    /// 64 random bits, drawn at each start.
    pub incarnation: u64,
    /// Protocol timing.
    pub timing: Timing,
}

/// A peer as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// Name.
    pub name: NodeName,
    /// Replication address.
    pub address: String,
    /// Local ms until which its lease grant holds (0: none).
    pub lease_until: u64,
    /// Local ms when a message of its arrived last.
    pub last_heard: Option<u64>,
    /// Whether its last answer granted a lease (it is ready, same epoch).
    pub granting: bool,
}

/// What [`Node::status`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// This node.
    pub name: NodeName,
    /// Its replication address, as its membership has it (empty when it
    /// is not a member).
    pub address: String,
    /// Membership epoch.
    pub epoch: u64,
    /// Whether it is a member of its epoch's membership.
    pub member: bool,
    /// Whether it merged a peer's state.
    pub ready: bool,
    /// Local ms until which it may check sessions (0: not now).
    pub serving_until: u64,
    /// How many members make a majority.
    pub majority: usize,
    /// The other members.
    pub peers: Vec<PeerStatus>,
    /// Decrees held.
    pub decrees: usize,
    /// Decrees not yet settled here.
    pub settling: usize,
    /// Decrees started here that have not returned.
    pub in_flight: usize,
}

/// A decree learned here, not settled yet.
struct Settling {
    /// Nodes holding a grant from this node when it learned the decree,
    /// with when that grant is over; each leaves when it acknowledges.
    waiting: BTreeMap<NodeName, u64>,
    /// Whether it is on disk here.
    persisted: bool,
}

/// A decree started here.
struct Proposal {
    decree: Decree,
    /// Nodes where it is settled.
    settled: BTreeSet<NodeName>,
}

/// One node's replication state.
pub struct Node {
    name: NodeName,
    membership: Membership,
    incarnation: u64,
    next_seq: u64,
    timing: Timing,
    table: Arc<SessionTable>,
    log: DecreeLog,
    /// Lease grants held, by granter: until when (local ms).
    lease_from: BTreeMap<NodeName, u64>,
    /// When this node last granted a lease, by holder (any epoch).
    last_grant: BTreeMap<NodeName, u64>,
    last_heard: BTreeMap<NodeName, u64>,
    granting: BTreeSet<NodeName>,
    ready: bool,
    /// Starting members that answered a sync (a whole-cluster start).
    boot_answers: BTreeSet<NodeName>,
    settling: BTreeMap<DecreeId, Settling>,
    proposals: BTreeMap<DecreeId, Proposal>,
    /// Until then, decrees recovered from disk are not settled here (a
    /// grant of the previous incarnation may still run).
    restart_barrier: u64,
    outbox: VecDeque<(NodeName, Message)>,
    events: VecDeque<Event>,
    deltas: Vec<SessionRecord>,
    next_heartbeat: u64,
    next_sync: u64,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("epoch", &self.membership.epoch)
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A node starting at `now` over `table` (holding the sessions
    /// recovered from disk), with the decrees `recovered` from disk
    /// applied first. The sole member of its membership is ready at once.
    pub fn new(
        config: NodeConfig,
        table: Arc<SessionTable>,
        recovered: Vec<Decree>,
        now: u64,
    ) -> Node {
        let mut node = Node {
            name: config.name,
            membership: config.membership,
            incarnation: config.incarnation,
            next_seq: 1,
            timing: config.timing,
            table,
            log: DecreeLog::default(),
            lease_from: BTreeMap::new(),
            last_grant: BTreeMap::new(),
            last_heard: BTreeMap::new(),
            granting: BTreeSet::new(),
            ready: false,
            boot_answers: BTreeSet::new(),
            settling: BTreeMap::new(),
            proposals: BTreeMap::new(),
            restart_barrier: now + config.timing.revoke_wait_ms(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            deltas: Vec::new(),
            next_heartbeat: now,
            next_sync: now,
        };
        let (memberships, revocations): (Vec<Decree>, Vec<Decree>) = recovered
            .into_iter()
            .partition(|d| d.membership().is_some());
        for decree in revocations.iter().chain(&memberships) {
            node.apply(decree, now, true);
        }
        // As if the previous incarnation had just granted every member: its
        // first decrees wait out any lease that incarnation may have granted.
        node.last_grant = node
            .membership
            .peers(&node.name)
            .map(|p| (p.clone(), now))
            .collect();
        node.events.clear();
        if node.is_sole_member() {
            node.become_ready();
        }
        node
    }

    /// This node's name.
    pub fn name(&self) -> &NodeName {
        &self.name
    }

    /// The membership it follows.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Whether it is a member of its membership.
    pub fn is_member(&self) -> bool {
        self.membership.contains(&self.name)
    }

    fn is_sole_member(&self) -> bool {
        self.is_member() && self.membership.members.len() == 1
    }

    /// Whether it merged a peer's state (or needs none).
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The local time until which [`Node::can_serve`] holds if nothing
    /// changes: when fewer than a majority of lease grants (its own
    /// included) would remain fresh. 0 when not ready or not a member.
    pub fn serving_until(&self) -> u64 {
        if !self.ready || !self.is_member() {
            return 0;
        }
        let needed = self.membership.majority() - 1;
        if needed == 0 {
            return u64::MAX;
        }
        let mut leases: Vec<u64> = self
            .membership
            .peers(&self.name)
            .map(|p| self.lease_from.get(p).copied().unwrap_or(0))
            .collect();
        leases.sort_unstable_by(|a, b| b.cmp(a));
        leases.get(needed - 1).copied().unwrap_or(0)
    }

    /// Whether it may answer session checks at `now`: ready, a member, and
    /// holding fresh grants from a majority (itself included). Otherwise
    /// answer `unavailable`: fail closed.
    pub fn can_serve(&self, now: u64) -> bool {
        now < self.serving_until()
    }

    /// A revocation with this node's next id, to make durable and then
    /// [`Node::start`].
    pub fn prepare_revoke(&self, what: Revoked) -> Decree {
        Decree {
            id: self.next_id(),
            origin: self.name.clone(),
            what: Decreed::Revoke(what),
        }
    }

    /// Revocations with this node's next ids, in order (one disk sync for
    /// a batch); [`Node::start`] them in the same order.
    pub fn prepare_revokes(&self, whats: Vec<Revoked>) -> Vec<Decree> {
        whats
            .into_iter()
            .zip(self.next_seq..)
            .map(|(what, seq)| Decree {
                id: DecreeId {
                    incarnation: self.incarnation,
                    seq,
                },
                origin: self.name.clone(),
                what: Decreed::Revoke(what),
            })
            .collect()
    }

    /// A membership decree for `config`, to make durable and then
    /// [`Node::start`]. `config` is either the next epoch, differing by one
    /// node, or this node's own membership again (to finish a change whose
    /// origin died before it returned).
    ///
    /// # Errors
    /// When the change is not one node, not the next epoch, removes this
    /// node, another change of this node's is in flight, or this node does
    /// not serve at `now`.
    pub fn prepare_membership(
        &self,
        config: Membership,
        now: u64,
    ) -> Result<Decree, MembershipError> {
        let previous = if config == self.membership {
            // Again: the same change's `previous`.
            match self.log.newest_membership() {
                Some(Decree {
                    what: Decreed::Membership { previous, .. },
                    ..
                }) => previous.clone(),
                _ => self.membership.members.keys().cloned().collect(),
            }
        } else {
            if config.epoch != self.membership.epoch + 1 {
                return Err(MembershipError::WrongEpoch {
                    current: self.membership.epoch,
                    proposed: config.epoch,
                });
            }
            if !self.membership.differs_by_one(&config) {
                return Err(MembershipError::NotOneNode);
            }
            if !config.contains(&self.name) {
                return Err(MembershipError::RemovesItself);
            }
            self.membership.members.keys().cloned().collect()
        };
        if self
            .proposals
            .values()
            .any(|p| p.decree.membership().is_some())
        {
            return Err(MembershipError::InProgress);
        }
        if !self.can_serve(now) {
            return Err(MembershipError::NotServing);
        }
        Ok(Decree {
            id: self.next_id(),
            origin: self.name.clone(),
            what: Decreed::Membership {
                config,
                previous,
                carried: Vec::new(),
            },
        })
    }

    fn next_id(&self) -> DecreeId {
        DecreeId {
            incarnation: self.incarnation,
            seq: self.next_seq,
        }
    }

    /// Starts a decree made by [`Node::prepare_revoke`] or
    /// [`Node::prepare_membership`] once the caller made it durable.
    /// [`Event::Done`] with its id says when it may return. A decree that
    /// is not this node's next is ignored (returns false).
    pub fn start(&mut self, decree: Decree, now: u64) -> bool {
        if decree.id != self.next_id() || decree.origin != self.name {
            return false;
        }
        self.next_seq += 1;
        let id = decree.id;
        self.apply(&decree, now, false);
        let holders = self.holders(now);
        self.settling.insert(
            id,
            Settling {
                waiting: holders,
                persisted: true,
            },
        );
        self.proposals.insert(
            id,
            Proposal {
                decree: decree.without_carried(),
                settled: BTreeSet::new(),
            },
        );
        self.send_decree_to_unsettled(id);
        self.check(now);
        true
    }

    /// Queues a created or touched session for the peers.
    pub fn replicate(&mut self, record: SessionRecord) {
        self.deltas.push(record);
    }

    /// Sends deltas now rather than at the next heartbeat (for throughput).
    pub fn flush_deltas(&mut self) {
        if !self.deltas.is_empty() {
            let deltas = std::mem::take(&mut self.deltas);
            let peers: Vec<NodeName> = self.membership.peers(&self.name).cloned().collect();
            for peer in peers {
                self.outbox
                    .push_back((peer, Message::Deltas(deltas.clone())));
            }
        }
    }

    /// The decree `id` asked by [`Event::Persist`] is on disk.
    pub fn persisted(&mut self, id: DecreeId, now: u64) {
        if let Some(settling) = self.settling.get_mut(&id) {
            settling.persisted = true;
        }
        self.check(now);
    }

    /// Applies a decree to the log and the table; false if known.
    fn apply(&mut self, decree: &Decree, now: u64, recovered: bool) -> bool {
        if !self.log.insert(decree, recovered) {
            return false;
        }
        match &decree.what {
            Decreed::Revoke(Revoked::Session {
                tenant,
                id,
                keep_until_ms,
            }) => {
                self.table.revoke(tenant, id, *keep_until_ms);
            }
            Decreed::Revoke(Revoked::Mark(mark)) => {
                self.table.apply_mark(mark);
            }
            Decreed::Membership { config, .. } => self.adopt(config, now),
        }
        true
    }

    /// Learns a decree from a peer: applies what a membership decree
    /// carries first, then the decree; asks for it to be made durable and
    /// waits for this node's lease holders.
    fn learn(&mut self, decree: &Decree, now: u64) {
        if self.log.contains(decree.id) {
            return;
        }
        if let Decreed::Membership { carried, .. } = &decree.what {
            self.learn_all(carried, now);
        }
        if !self.apply(decree, now, false) {
            return;
        }
        let waiting = self.holders(now);
        self.settling.insert(
            decree.id,
            Settling {
                waiting,
                persisted: false,
            },
        );
        self.events
            .push_back(Event::Persist(decree.without_carried()));
        self.send_decree_to_unsettled(decree.id);
    }

    /// Learns a batch: revocations first, then membership decrees in epoch
    /// order (an adopted membership must not outrun a revocation).
    fn learn_all(&mut self, decrees: &[Decree], now: u64) {
        let mut memberships: Vec<&Decree> = Vec::new();
        for decree in decrees {
            match decree.membership() {
                Some(_) => memberships.push(decree),
                None => self.learn(decree, now),
            }
        }
        memberships.sort_by_key(|d| d.membership().map_or(0, |m| m.epoch));
        for decree in memberships {
            self.learn(decree, now);
        }
    }

    /// Nodes that may hold a lease granted here, with when it is over.
    fn holders(&self, now: u64) -> BTreeMap<NodeName, u64> {
        let wait = self.timing.revoke_wait_ms();
        self.last_grant
            .iter()
            .filter(|(peer, _)| **peer != self.name)
            .map(|(peer, at)| (peer.clone(), at + wait))
            .filter(|(_, until)| now < *until)
            .collect()
    }

    fn adopt(&mut self, config: &Membership, now: u64) {
        if config.epoch <= self.membership.epoch {
            return;
        }
        let was_member = self.is_member();
        self.membership = config.clone();
        // Grants from members of both epochs keep counting (docs/sessions.md).
        let members = &self.membership;
        self.lease_from
            .retain(|granter, _| members.contains(granter));
        self.boot_answers.clear();
        if !self.is_member() || !was_member {
            // Removed: its state goes stale. Added: it syncs first.
            self.ready = false;
            self.next_sync = now;
        }
        self.events
            .push_back(Event::MembershipChanged(self.membership.clone()));
        if self.is_sole_member() {
            self.become_ready();
        }
    }

    /// Whether `id` is settled here at `now`.
    fn is_settled(&self, id: DecreeId, now: u64) -> bool {
        self.log.contains(id)
            && !self.settling.contains_key(&id)
            && (!self.log.is_recovered(id) || now >= self.restart_barrier)
    }

    /// Sends decree `id` to whoever must still acknowledge or settle it:
    /// this node's lease holders that have not acknowledged; for a decree
    /// started here, every member (and for a membership change, every
    /// member of the epoch before) where it is not settled.
    fn send_decree_to_unsettled(&mut self, id: DecreeId) {
        let Some(decree) = self
            .proposals
            .get(&id)
            .map(|p| p.decree.clone())
            .or_else(|| self.log.get(id).cloned())
        else {
            return;
        };
        let mut to: BTreeSet<NodeName> = self
            .settling
            .get(&id)
            .map(|s| s.waiting.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(proposal) = self.proposals.get(&id) {
            let mut members: Vec<NodeName> = self.membership.members.keys().cloned().collect();
            if let Decreed::Membership { previous, .. } = &decree.what {
                members.extend(previous.iter().cloned());
            }
            to.extend(
                members
                    .into_iter()
                    .filter(|m| *m != self.name && !proposal.settled.contains(m)),
            );
        }
        if to.is_empty() {
            return;
        }
        let decree = match &decree.what {
            Decreed::Membership {
                config, previous, ..
            } => Decree {
                id: decree.id,
                origin: decree.origin.clone(),
                what: Decreed::Membership {
                    config: config.clone(),
                    previous: previous.clone(),
                    carried: self.log.all(),
                },
            },
            Decreed::Revoke(_) => decree,
        };
        for peer in to {
            self.outbox
                .push_back((peer, Message::Decree(decree.clone())));
        }
    }

    /// Settles what can be settled, returns what may return.
    fn check(&mut self, now: u64) {
        let mut settled_now = Vec::new();
        for (id, settling) in &mut self.settling {
            settling.waiting.retain(|_, until| now < *until);
            if settling.persisted && settling.waiting.is_empty() {
                settled_now.push(*id);
            }
        }
        for id in settled_now {
            self.settling.remove(&id);
            if !self.is_settled(id, now) {
                continue;
            }
            if let Some(proposal) = self.proposals.get_mut(&id) {
                proposal.settled.insert(self.name.clone());
            } else if let Some(origin) = self.log.get(id).map(|d| d.origin.clone()) {
                if origin != self.name {
                    self.outbox
                        .push_back((origin, Message::DecreeAck { id, settled: true }));
                }
            }
        }
        if self.proposals.is_empty() || !self.can_serve(now) {
            return;
        }
        let done: Vec<DecreeId> = self
            .proposals
            .iter()
            .filter(|(_, p)| self.is_done(p))
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            self.proposals.remove(&id);
            self.events.push_back(Event::Done(id));
        }
    }

    /// A proposal is done when settled by a majority of this node's
    /// membership and, for a membership change, of the epoch before.
    fn is_done(&self, proposal: &Proposal) -> bool {
        if !self.membership.is_majority(&proposal.settled) {
            return false;
        }
        match &proposal.decree.what {
            Decreed::Membership { previous, .. } => {
                let settled = previous
                    .iter()
                    .filter(|m| proposal.settled.contains(*m))
                    .count();
                settled > previous.len() / 2
            }
            Decreed::Revoke(_) => true,
        }
    }

    /// Handles a message from `from` at `now`.
    pub fn handle(&mut self, now: u64, from: &NodeName, message: Message) {
        if *from == self.name {
            return;
        }
        self.heard(now, from);
        match message {
            Message::Heartbeat {
                epoch,
                sent_at,
                known,
            } => self.on_heartbeat(now, from, epoch, sent_at, &known),
            Message::HeartbeatAck {
                epoch,
                echo,
                granted,
                decrees,
                floors,
            } => {
                // Decrees first: the lease must not outrun them.
                self.learn_all(&decrees, now);
                self.log.raise_floors(&floors);
                let granted =
                    granted && epoch == self.membership.epoch && self.membership.contains(from);
                if granted {
                    let until = echo + self.timing.lease_ms;
                    let slot = self.lease_from.entry(from.clone()).or_insert(0);
                    *slot = (*slot).max(until);
                    self.granting.insert(from.clone());
                } else {
                    self.granting.remove(from);
                }
            }
            Message::Decree(decree) => {
                let id = decree.id;
                self.learn(&decree, now);
                let settled = self.is_settled(id, now);
                self.outbox
                    .push_back((from.clone(), Message::DecreeAck { id, settled }));
            }
            Message::DecreeAck { id, settled } => {
                if let Some(settling) = self.settling.get_mut(&id) {
                    settling.waiting.remove(from);
                }
                if settled {
                    if let Some(proposal) = self.proposals.get_mut(&id) {
                        proposal.settled.insert(from.clone());
                    }
                }
            }
            Message::Deltas(records) => {
                for record in &records {
                    self.table.merge(record);
                }
            }
            Message::SyncRequest => {
                if self.membership.contains(from) && self.is_member() {
                    let response = Message::SyncResponse {
                        serving: self.can_serve(now),
                        decrees: self.log.all(),
                        floors: self.log.watermark(),
                    };
                    self.events.push_back(Event::SendState {
                        to: from.clone(),
                        response,
                    });
                }
            }
            Message::SyncResponse {
                serving,
                decrees,
                floors,
            } => {
                self.learn_all(&decrees, now);
                self.log.raise_floors(&floors);
                let joining = !self.ready && self.is_member() && self.membership.contains(from);
                if joining && serving {
                    self.become_ready();
                } else if joining {
                    // A whole-cluster start (no member serves): a majority
                    // of members merged their recovered state here (the
                    // rest push theirs when they are ready).
                    self.boot_answers.insert(from.clone());
                    let answered = self.boot_answers.iter().chain(std::iter::once(&self.name));
                    if self.membership.is_majority(answered) {
                        self.become_ready();
                    }
                }
            }
        }
        self.check(now);
    }

    /// Notes that `from` was heard at `now`: [`Node::handle`] does, and a
    /// driver that merges [`Message::Deltas`] into the table itself (to
    /// write them to disk in between) says so here.
    pub fn heard(&mut self, now: u64, from: &NodeName) {
        let silent = self
            .last_heard
            .insert(from.clone(), now)
            .is_none_or(|before| now.saturating_sub(before) > self.timing.lease_ms);
        if silent && !self.ready {
            // A peer heard again (a partition healed, a peer restarted):
            // ask it for state at the next tick rather than at the retry.
            self.next_sync = self.next_sync.min(now);
        }
    }

    fn on_heartbeat(
        &mut self,
        now: u64,
        from: &NodeName,
        epoch: u64,
        sent_at: u64,
        known: &[(u64, u64)],
    ) {
        let granted = self.ready
            && self.is_member()
            && epoch == self.membership.epoch
            && self.membership.contains(from);
        if granted {
            self.last_grant.insert(from.clone(), now);
        }
        self.outbox.push_back((
            from.clone(),
            Message::HeartbeatAck {
                epoch: self.membership.epoch,
                echo: sent_at,
                granted,
                decrees: self.log.above(known),
                floors: self.log.watermark(),
            },
        ));
    }

    fn become_ready(&mut self) {
        if !self.ready {
            self.ready = true;
            self.events.push_back(Event::Ready);
        }
    }

    /// Advances timers: heartbeats, retransmissions, sync requests,
    /// settlement of decrees whose waiting ran out.
    pub fn handle_timeout(&mut self, now: u64) {
        self.check(now);
        if now < self.next_heartbeat {
            return;
        }
        self.next_heartbeat = now + self.timing.heartbeat_ms;
        let known = self.log.watermark();
        let peers: Vec<NodeName> = self.membership.peers(&self.name).cloned().collect();
        let ask_state = self.is_member() && !self.ready && now >= self.next_sync;
        if ask_state {
            self.next_sync = now + self.timing.sync_retry_ms();
        }
        for peer in &peers {
            self.outbox.push_back((
                peer.clone(),
                Message::Heartbeat {
                    epoch: self.membership.epoch,
                    sent_at: now,
                    known: known.clone(),
                },
            ));
            if ask_state {
                self.outbox.push_back((peer.clone(), Message::SyncRequest));
            }
        }
        // What is not acknowledged or settled goes out again.
        let unsettled: Vec<DecreeId> = self
            .settling
            .keys()
            .chain(self.proposals.keys())
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for id in unsettled {
            self.send_decree_to_unsettled(id);
        }
        self.flush_deltas();
    }

    /// When [`Node::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> u64 {
        let mut next = self.next_heartbeat;
        for settling in self.settling.values() {
            if let Some(until) = settling.waiting.values().min() {
                next = next.min(*until);
            }
        }
        next
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<(NodeName, Message)> {
        self.outbox.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Forgets what no node needs at wall-clock `now_ms`: revocations whose
    /// sessions have all expired (in the log and in the table's marks).
    /// Returns how many decrees were dropped.
    pub fn compact(&mut self, now_ms: u64) -> usize {
        self.table.compact_marks(now_ms);
        self.log.compact(now_ms)
    }

    /// Every decree held, for a snapshot on disk.
    pub fn decrees(&self) -> Vec<Decree> {
        self.log.all()
    }

    /// The node as it sees itself and its peers.
    pub fn status(&self) -> NodeStatus {
        NodeStatus {
            name: self.name.clone(),
            address: self
                .membership
                .members
                .get(&self.name)
                .cloned()
                .unwrap_or_default(),
            epoch: self.membership.epoch,
            member: self.is_member(),
            ready: self.ready,
            serving_until: self.serving_until(),
            majority: self.membership.majority(),
            peers: self
                .membership
                .members
                .iter()
                .filter(|(name, _)| **name != self.name)
                .map(|(name, address)| PeerStatus {
                    name: name.clone(),
                    address: address.clone(),
                    lease_until: self.lease_from.get(name).copied().unwrap_or(0),
                    last_heard: self.last_heard.get(name).copied(),
                    granting: self.granting.contains(name),
                })
                .collect(),
            decrees: self.log.len(),
            settling: self.settling.len(),
            in_flight: self.proposals.len(),
        }
    }
}

#[cfg(test)]
mod tests;
