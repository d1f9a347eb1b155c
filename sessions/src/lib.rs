//! Sigil's session table and its replication.
//!
//! What it does: keeps sessions in a sharded in-process table
//! ([`SessionTable`]: create, validate, touch, revoke one, revoke all of a
//! user or tenant, incremental expiry), as a state-based CRDT that nodes
//! replicate to each other.
//!
//! What it does not do: read clocks (times are passed in, in milliseconds),
//! or decide who may act on which tenant (the front door does).
//!
//! Who calls it: the front door, on every issuance (validate) and for the
//! session operations of `sigil/1`.
//!
//! Threads: everything is `Send + Sync`; each shard has its own lock and
//! its own copy of the revocation marks, so a validation touches one shard.
//!
//! For tests and benchmarks only, behind the `test-support` feature: the
//! replication simulator with its checkers (`sim`) and throwaway
//! clusters on loopback (`testing`).
#![forbid(unsafe_code)]

pub mod net;
pub mod replication;
#[cfg(any(test, feature = "test-support"))]
pub mod sim;
pub mod store;
mod table;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

pub use replication::{
    Decree, DecreeId, Decreed, Event, Membership, MembershipError, Message, Node, NodeConfig,
    NodeName, NodeStatus, PeerStatus, Revoked, Timing,
};
pub use table::{
    Mark, SessionId, SessionPolicy, SessionRecord, SessionTable, SessionView, TableStats,
    Validation,
};

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The random generator failed.
    #[error("random generator failed")]
    Random,
    /// A session id that is not 43 characters of base64url.
    #[error("malformed session id")]
    MalformedId,
}
