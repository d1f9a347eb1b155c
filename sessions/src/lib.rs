//! Sigil's session table.
//!
//! This crate will own the sharded in-process session table (create,
//! validate, touch, revoke), its expiry, and its replication between nodes as
//! a state-based CRDT over QUIC with lease-based, fail-closed revocation. It
//! is not built yet; see issue 6.
#![forbid(unsafe_code)]
