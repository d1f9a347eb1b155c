//! The front door of Sigil: what runs in the `sigil` binary.
//!
//! What it does: the QUIC API for SSO front ends ([`quic`]: `sigil/1`
//! with client certificates, thread-per-core); the appliance ([`api`]):
//! what each operation does, and the caches the hot path reads (tenants,
//! users and their claims, apps, callers, key rings), filled from the
//! directory and dropped when it reports a change, with key rotation and
//! revocation on the control path; per-tenant rate budgets
//! ([`admission`]); the HTTP endpoints for SPs and operators ([`http`],
//! [`metrics`]); the deployment CA ([`pki`]) and signed audit chain heads
//! ([`audit_heads`]); the configuration ([`config`]) and the `sigil`
//! commands ([`cli`]).
//!
//! What it does not do: define the wire format or the client (crate
//! `sigil-proto`, which clients such as `sigil-perf` use without this
//! crate), sign (crates `signer` and `hw`), keep sessions (crate
//! `sessions`) or own durable data (crate `directory`).
//!
//! Who calls it: `main.rs` (the `sigil` binary); the end-to-end tests.
//!
//! Threads: QUIC and HTTP workers are pinned OS threads, one of each per
//! core: a tokio current-thread runtime with its own quinn endpoint, and a
//! monoio runtime with its own SO_REUSEPORT listener. They share only
//! read-mostly snapshots swapped without locks and atomics; the directory,
//! tenant loads, the audit shipper and key rotation run on a separate
//! control runtime.
#![forbid(unsafe_code)]

pub mod admission;
pub mod api;
pub mod audit_heads;
pub mod auth;
pub mod cli;
pub mod config;
pub mod control;
pub mod http;
pub mod metrics;
pub mod pki;
pub mod posture;
pub mod quic;
mod shared_port;
