//! The front door of Sigil: what runs in the `sigil` binary.
//!
//! What it does: the thread-per-core workers that own client connections,
//! the HTTP endpoints for SPs and operators ([`http`]), and (as the issues
//! land) the QUIC API for SSO front ends, admission control and
//! configuration.
//!
//! Threads: HTTP workers are pinned OS threads, each with its own monoio
//! runtime and its own SO_REUSEPORT listener; they share only read-mostly
//! snapshots swapped without locks.
#![forbid(unsafe_code)]

pub mod admission;
pub mod api;
pub mod audit_heads;
pub mod cli;
pub mod config;
pub mod http;
pub mod metrics;
pub mod pki;
pub mod posture;
pub mod quic;
mod shared_port;
