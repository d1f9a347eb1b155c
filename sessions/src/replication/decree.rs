//! Decrees: the one-way facts every node of the cluster must learn
//! (a session revoked, a user's or tenant's sessions revoked, a new
//! membership), and the log that holds them with per-origin watermarks,
//! so peers exchange only what the other lacks, and compaction, so the log
//! holds a revocation only as long as a session it covers could live.

use std::collections::{BTreeMap, HashMap};

/// Iteration order decides the order of what is sent: ordered maps keep
/// simulations deterministic.
type Streams = BTreeMap<u64, Stream>;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::membership::Membership;
pub use super::membership::NodeName;
use crate::table::{Mark, SessionId};

/// Which decree: the origin's incarnation (64 random bits drawn at each
/// start, so a restarted node never reuses an id) and a sequence number
/// within it, from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DecreeId {
    /// The origin's incarnation.
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
        /// Wall-clock ms after which no session it covers can be valid:
        /// the decree and a tombstone may then be forgotten.
        keep_until_ms: u64,
    },
    /// Every session of a user, or of a tenant, created before a time.
    Mark(Mark),
}

/// What a decree says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decreed {
    /// A revocation.
    Revoke(Revoked),
    /// The cluster's membership from `config.epoch` on; `previous` are the
    /// members of the epoch before (a change is done only when a majority
    /// of both has it: see docs/sessions.md, "Membership").
    Membership {
        /// The new membership.
        config: Membership,
        /// The members of the epoch before.
        previous: Vec<NodeName>,
        /// In transit only: every decree the sender knew, applied before
        /// the membership is adopted, so every node of the new epoch knows
        /// every revocation that returned before the change began. Empty
        /// in logs and on disk.
        #[serde(default)]
        carried: Vec<Decree>,
    },
}

/// A decree with its id and origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decree {
    /// Id.
    pub id: DecreeId,
    /// The node that made it (it waits for the cluster to settle it).
    pub origin: NodeName,
    /// What.
    pub what: Decreed,
}

impl Decree {
    /// Wall-clock ms after which no node needs this decree any more
    /// (`None`: kept while it is the newest membership).
    pub fn keep_until_ms(&self) -> Option<u64> {
        match &self.what {
            Decreed::Revoke(Revoked::Session { keep_until_ms, .. }) => Some(*keep_until_ms),
            Decreed::Revoke(Revoked::Mark(mark)) => Some(mark.keep_until_ms),
            Decreed::Membership { .. } => None,
        }
    }

    /// The decree without what a membership decree carries in transit.
    pub fn without_carried(&self) -> Decree {
        match &self.what {
            Decreed::Membership {
                config, previous, ..
            } => Decree {
                id: self.id,
                origin: self.origin.clone(),
                what: Decreed::Membership {
                    config: config.clone(),
                    previous: previous.clone(),
                    carried: Vec::new(),
                },
            },
            Decreed::Revoke(_) => self.clone(),
        }
    }

    /// The membership it announces, if it is a membership decree.
    pub fn membership(&self) -> Option<&Membership> {
        match &self.what {
            Decreed::Membership { config, .. } => Some(config),
            Decreed::Revoke(_) => None,
        }
    }
}

/// The decrees of one origin incarnation.
#[derive(Debug, Clone)]
struct Stream {
    /// Every seq at or below is known here or was compacted away.
    floor: u64,
    entries: BTreeMap<u64, Held>,
    /// Wall-clock ms since which compaction left it empty.
    empty_since_ms: Option<u64>,
}

impl Stream {
    fn new() -> Stream {
        Stream {
            floor: 0,
            entries: BTreeMap::new(),
            empty_since_ms: None,
        }
    }
}

/// How long an origin incarnation whose decrees were all compacted is
/// still remembered (its watermark rides on every heartbeat; a peer that
/// still holds one of its decrees then, on a clock far behind, sends it
/// again, which is harmless).
const FORGET_EMPTY_STREAM_MS: u64 = 3_600_000;

#[derive(Debug, Clone)]
struct Held {
    decree: Decree,
    /// Applied by an earlier incarnation of this node (recovered from
    /// disk) rather than learned in this one.
    recovered: bool,
}

/// Watermarks: per origin incarnation, the highest seq up to which
/// everything is known (or compacted away).
pub type Watermark = Vec<(u64, u64)>;

/// Every decree a node knows, by origin incarnation.
#[derive(Debug, Clone, Default)]
pub(crate) struct DecreeLog {
    streams: Streams,
    /// The membership decree with the highest epoch (never compacted).
    newest_membership: Option<(u64, DecreeId)>,
}

impl DecreeLog {
    /// Whether `id` is known (or was compacted away).
    pub(crate) fn contains(&self, id: DecreeId) -> bool {
        self.streams
            .get(&id.incarnation)
            .is_some_and(|s| id.seq <= s.floor || s.entries.contains_key(&id.seq))
    }

    /// Whether `id` was recovered from disk rather than learned now.
    pub(crate) fn is_recovered(&self, id: DecreeId) -> bool {
        self.streams
            .get(&id.incarnation)
            .and_then(|s| s.entries.get(&id.seq))
            .is_some_and(|held| held.recovered)
    }

    /// Adds a decree; false if it was known.
    pub(crate) fn insert(&mut self, decree: &Decree, recovered: bool) -> bool {
        if self.contains(decree.id) {
            return false;
        }
        let stream = self
            .streams
            .entry(decree.id.incarnation)
            .or_insert_with(Stream::new);
        stream.empty_since_ms = None;
        stream.entries.insert(
            decree.id.seq,
            Held {
                decree: decree.without_carried(),
                recovered,
            },
        );
        while stream.entries.contains_key(&(stream.floor + 1)) {
            stream.floor += 1;
        }
        if let Some(config) = decree.membership() {
            if self
                .newest_membership
                .is_none_or(|(epoch, _)| config.epoch > epoch)
            {
                self.newest_membership = Some((config.epoch, decree.id));
            }
        }
        true
    }

    /// The watermark to send in a heartbeat.
    pub(crate) fn watermark(&self) -> Watermark {
        self.streams
            .iter()
            .map(|(incarnation, s)| (*incarnation, s.floor))
            .collect()
    }

    /// Every decree held above the watermark `known`.
    pub(crate) fn above(&self, known: &[(u64, u64)]) -> Vec<Decree> {
        let known: HashMap<u64, u64> = known.iter().copied().collect();
        self.streams
            .iter()
            .flat_map(|(incarnation, s)| {
                let floor = known.get(incarnation).copied().unwrap_or(0);
                s.entries
                    .range(floor + 1..)
                    .map(|(_, held)| held.decree.clone())
            })
            .collect()
    }

    /// Raises floors to a granter's, once what it sent above this node's
    /// watermark is applied: whatever this node still lacks at or below
    /// them was compacted away there, so nobody needs it.
    pub(crate) fn raise_floors(&mut self, floors: &[(u64, u64)]) {
        for (incarnation, floor) in floors {
            let stream = self.streams.entry(*incarnation).or_insert_with(Stream::new);
            if *floor > stream.floor {
                stream.floor = *floor;
                while stream.entries.contains_key(&(stream.floor + 1)) {
                    stream.floor += 1;
                }
            }
        }
    }

    /// Forgets decrees at or below their stream's floor that no node needs
    /// at wall-clock `now_ms` (revocations past `keep_until_ms`, membership
    /// decrees older than the newest). Returns how many were dropped.
    pub(crate) fn compact(&mut self, now_ms: u64) -> usize {
        let newest = self.newest_membership.map(|(_, id)| id);
        let mut dropped = 0;
        for stream in self.streams.values_mut() {
            let floor = stream.floor;
            let before = stream.entries.len();
            stream.entries.retain(|seq, held| {
                *seq > floor
                    || match held.decree.keep_until_ms() {
                        Some(until) => until > now_ms,
                        None => Some(held.decree.id) == newest,
                    }
            });
            dropped += before - stream.entries.len();
            if stream.entries.is_empty() {
                stream.empty_since_ms.get_or_insert(now_ms);
            }
        }
        self.streams.retain(|_, s| {
            s.empty_since_ms
                .is_none_or(|since| now_ms.saturating_sub(since) < FORGET_EMPTY_STREAM_MS)
        });
        dropped
    }

    /// Every decree held.
    pub(crate) fn all(&self) -> Vec<Decree> {
        self.streams
            .values()
            .flat_map(|s| s.entries.values().map(|held| held.decree.clone()))
            .collect()
    }

    /// The decree `id`, if held.
    pub(crate) fn get(&self, id: DecreeId) -> Option<&Decree> {
        self.streams
            .get(&id.incarnation)?
            .entries
            .get(&id.seq)
            .map(|held| &held.decree)
    }

    /// Decrees held.
    pub(crate) fn len(&self) -> usize {
        self.streams.values().map(|s| s.entries.len()).sum()
    }

    /// The membership decree with the highest epoch.
    pub(crate) fn newest_membership(&self) -> Option<&Decree> {
        let (_, id) = self.newest_membership?;
        self.get(id)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn revoke(incarnation: u64, seq: u64, keep_until_ms: u64) -> Decree {
        Decree {
            id: DecreeId { incarnation, seq },
            origin: Arc::from("n0"),
            what: Decreed::Revoke(Revoked::Session {
                tenant: Arc::from("acme"),
                id: SessionId::from_bytes([seq as u8; 32]),
                keep_until_ms,
            }),
        }
    }

    #[test]
    fn watermarks_cover_contiguous_decrees_only() {
        let mut log = DecreeLog::default();
        assert!(log.insert(&revoke(7, 1, 100), false));
        assert!(log.insert(&revoke(7, 3, 100), false));
        assert!(!log.insert(&revoke(7, 1, 100), false), "a duplicate");
        assert_eq!(log.watermark(), vec![(7, 1)]);
        assert_eq!(log.above(&[(7, 1)]).len(), 1);
        log.insert(&revoke(7, 2, 100), false);
        assert_eq!(log.watermark(), vec![(7, 3)]);
    }

    #[test]
    fn compaction_forgets_expired_decrees_and_floors_carry_the_gap() {
        let mut granter = DecreeLog::default();
        for seq in 1..=5 {
            granter.insert(&revoke(9, seq, seq * 10), false);
        }
        assert_eq!(granter.compact(30), 3, "seq 1..=3 expired at 30");
        assert_eq!(granter.len(), 2);
        // A node that knew nothing gets what is left, then the floor.
        let mut learner = DecreeLog::default();
        for decree in granter.above(&learner.watermark()) {
            learner.insert(&decree, false);
        }
        assert_eq!(learner.watermark(), vec![(9, 0)], "a gap at 1..=3");
        learner.raise_floors(&granter.watermark());
        assert_eq!(learner.watermark(), vec![(9, 5)]);
        assert!(learner.above(&[(9, 5)]).is_empty());
        // An expired decree arriving late is taken as known.
        assert!(learner.contains(DecreeId {
            incarnation: 9,
            seq: 2
        }));
    }

    #[test]
    fn compaction_keeps_what_is_above_the_floor() {
        let mut log = DecreeLog::default();
        log.insert(&revoke(1, 2, 10), false);
        assert_eq!(log.compact(1_000), 0, "seq 1 missing: 2 is above the floor");
    }
}
