//! The cluster's membership: which nodes count for quorums, at which
//! epoch. A change adds or removes exactly one node (any majority of the
//! old membership then meets any majority of the new), and the epochs of
//! changes are fenced outside the protocol (the front door takes the next
//! epoch in the directory with a compare-and-set), so two changes never
//! claim the same epoch.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A node's name: its identity in the cluster (and in its certificate).
pub type NodeName = Arc<str>;

/// The members of one epoch, with their replication addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Epoch: 0 for the membership a node is started with, then one more
    /// for each change.
    pub epoch: u64,
    /// Members by name, with the address (`host:port`) peers dial.
    pub members: BTreeMap<NodeName, String>,
}

/// Why a membership change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// The node to add is a member already.
    #[error("{0} is a member already")]
    AlreadyMember(String),
    /// The node to remove is not a member.
    #[error("{0} is not a member")]
    NotMember(String),
    /// Removing the last member.
    #[error("a cluster keeps at least one member")]
    LastMember,
    /// The node asked to make the change is not serving (it holds no
    /// majority of leases, or it is behind): ask another.
    #[error("this node is not serving: ask a node that is")]
    NotServing,
    /// The node asked would remove itself: ask another.
    #[error("a node cannot remove itself: ask another member")]
    RemovesItself,
    /// The change is not the next epoch of this node's membership.
    #[error("epoch {proposed} does not follow this node's epoch {current}")]
    WrongEpoch {
        /// This node's epoch.
        current: u64,
        /// The epoch proposed.
        proposed: u64,
    },
    /// A change of this node's is still settling.
    #[error("a membership change is still in progress")]
    InProgress,
    /// Several members added or removed at once.
    #[error("a change adds or removes exactly one node")]
    NotOneNode,
}

impl Membership {
    /// The epoch-0 membership from a start-up list of `(name, address)`.
    pub fn initial(members: impl IntoIterator<Item = (NodeName, String)>) -> Membership {
        Membership {
            epoch: 0,
            members: members.into_iter().collect(),
        }
    }

    /// How many members make a majority.
    pub fn majority(&self) -> usize {
        self.members.len() / 2 + 1
    }

    /// Whether `name` is a member.
    pub fn contains(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    /// The members but `me`.
    pub fn peers<'a>(&'a self, me: &'a str) -> impl Iterator<Item = &'a NodeName> + 'a {
        self.members.keys().filter(move |name| &***name != me)
    }

    /// Whether `names` (members or not) hold a majority of this membership.
    pub fn is_majority<'a>(&self, names: impl IntoIterator<Item = &'a NodeName>) -> bool {
        names
            .into_iter()
            .filter(|name| self.members.contains_key(*name))
            .count()
            >= self.majority()
    }

    /// The next epoch's membership with `name` added at `address`.
    ///
    /// # Errors
    /// [`MembershipError::AlreadyMember`].
    pub fn with_added(&self, name: &str, address: &str) -> Result<Membership, MembershipError> {
        if self.contains(name) {
            return Err(MembershipError::AlreadyMember(name.to_owned()));
        }
        let mut next = self.clone();
        next.epoch += 1;
        next.members
            .insert(NodeName::from(name), address.to_owned());
        Ok(next)
    }

    /// The next epoch's membership without `name`.
    ///
    /// # Errors
    /// [`MembershipError::NotMember`], [`MembershipError::LastMember`].
    pub fn without(&self, name: &str) -> Result<Membership, MembershipError> {
        if !self.contains(name) {
            return Err(MembershipError::NotMember(name.to_owned()));
        }
        if self.members.len() == 1 {
            return Err(MembershipError::LastMember);
        }
        let mut next = self.clone();
        next.epoch += 1;
        next.members.remove(name);
        Ok(next)
    }

    /// Whether `next` differs from this membership by exactly one node.
    pub fn differs_by_one(&self, next: &Membership) -> bool {
        let added = next.members.keys().filter(|n| !self.contains(n)).count();
        let removed = self.members.keys().filter(|n| !next.contains(n)).count();
        added + removed == 1
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn of(names: &[&str]) -> Membership {
        Membership::initial(names.iter().map(|n| (NodeName::from(*n), format!("{n}:1"))))
    }

    /// Any majority of a membership meets any majority of one that differs
    /// by one node: checked exhaustively for up to seven members.
    #[test]
    fn majorities_of_one_node_changes_intersect() {
        let names: Vec<String> = (0..8).map(|i| format!("n{i}")).collect();
        for size in 1..=7usize {
            let old = of(&names[..size].iter().map(String::as_str).collect::<Vec<_>>());
            let added = old.with_added(&names[size], "x:1").unwrap();
            let changes: Vec<Membership> = std::iter::once(added)
                .chain((size > 1).then(|| old.without(&names[0]).unwrap()))
                .collect();
            let all: Vec<NodeName> = names.iter().map(|n| NodeName::from(n.as_str())).collect();
            for new in changes {
                for a in 0u32..(1 << 8) {
                    let sa: Vec<&NodeName> = (0..8)
                        .filter(|i| a & (1 << i) != 0)
                        .map(|i| &all[i])
                        .collect();
                    if !old.is_majority(sa.iter().copied()) {
                        continue;
                    }
                    for b in 0u32..(1 << 8) {
                        let sb: Vec<&NodeName> = (0..8)
                            .filter(|i| b & (1 << i) != 0)
                            .map(|i| &all[i])
                            .collect();
                        if new.is_majority(sb.iter().copied()) {
                            let a_members =
                                (0..8).filter(|i| a & (1 << i) != 0 && old.contains(&names[*i]));
                            let meet = a_members
                                .filter(|i| b & (1 << i) != 0 && new.contains(&names[*i]))
                                .count();
                            assert!(
                                meet > 0,
                                "{old:?} / {new:?}: {a:b} and {b:b} are disjoint majorities"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn changes_are_one_node_and_the_next_epoch() {
        let three = of(&["a", "b", "c"]);
        assert_eq!(three.majority(), 2);
        let two = three.without("c").unwrap();
        assert_eq!((two.epoch, two.majority()), (1, 2));
        assert!(three.differs_by_one(&two));
        assert!(matches!(
            three.with_added("a", "x:1"),
            Err(MembershipError::AlreadyMember(_))
        ));
        assert!(matches!(
            of(&["a"]).without("a"),
            Err(MembershipError::LastMember)
        ));
        let swapped = two.with_added("d", "d:1").unwrap();
        assert!(
            !three.differs_by_one(&swapped),
            "c out and d in is two changes"
        );
    }
}
