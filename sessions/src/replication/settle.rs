//! Settlement: a decree is settled at a node once it is on that node's
//! disk and every node holding one of its lease grants has acknowledged it
//! or seen that grant expire; a decree returns at its origin once a
//! majority settled it (docs/sessions.md, "Quorum leases").

use std::collections::{BTreeMap, BTreeSet};

use super::{Decree, DecreeId, Decreed, Event, Message, Node, NodeName};

/// A decree learned here, not settled yet.
pub(super) struct Settling {
    /// Nodes holding a grant from this node when it learned the decree,
    /// with when that grant is over; each leaves when it acknowledges.
    pub(super) waiting: BTreeMap<NodeName, u64>,
    /// Whether it is on disk here.
    pub(super) persisted: bool,
}

/// A decree started here.
pub(super) struct Proposal {
    pub(super) decree: Decree,
    /// Nodes where it is settled.
    pub(super) settled: BTreeSet<NodeName>,
}

impl Node {
    /// Nodes that may hold a lease granted here, with when it is over.
    pub(super) fn holders(&self, now: u64) -> BTreeMap<NodeName, u64> {
        let wait = self.timing.revoke_wait_ms();
        self.last_grant
            .iter()
            .filter(|(peer, _)| **peer != self.name)
            .map(|(peer, at)| (peer.clone(), at + wait))
            .filter(|(_, until)| now < *until)
            .collect()
    }

    /// Whether `id` is settled here at `now`.
    pub(super) fn is_settled(&self, id: DecreeId, now: u64) -> bool {
        self.log.contains(id)
            && !self.settling.contains_key(&id)
            && (!self.log.is_recovered(id) || now >= self.restart_barrier)
    }

    /// Sends decree `id` to whoever must still acknowledge or settle it:
    /// this node's lease holders that have not acknowledged; for a decree
    /// started here, every member (and for a membership change, every
    /// member of the epoch before) where it is not settled.
    pub(super) fn send_decree_to_unsettled(&mut self, id: DecreeId) {
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
    pub(super) fn check(&mut self, now: u64) {
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
}
