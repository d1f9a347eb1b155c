//! What a node reports of itself and its peers (`sigil cluster status`).

use super::{Node, NodeName};

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

impl Node {
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
