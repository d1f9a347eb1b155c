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
mod message;
mod settle;
mod status;

// Ordered maps: iteration decides the order of what is sent, and
// simulations must replay exactly from their seed.
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use decree::DecreeLog;
pub use decree::{Decree, DecreeId, Decreed, NodeName, Revoked, Watermark};
pub use membership::{Membership, MembershipError};
pub use message::{Event, Message};
use settle::{Proposal, Settling};
pub use status::{NodeStatus, PeerStatus};

use crate::table::{SessionRecord, SessionTable};

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
}

#[cfg(test)]
mod tests;
