//! `sigil/1`, the QUIC API of Sigil, for both of its sides: framing
//! ([`frame`]), typed requests ([`request`]) and results ([`results`]),
//! error codes ([`error`]), and the Rust client ([`client`]: one typed
//! method per operation, e.g. [`Client::session_create`]) with its TLS
//! ([`tls`]), credentials on disk ([`credentials`]) and the flags that say
//! which node to call as whom ([`target`]). The onboarding operations
//! (tenants, apps, SPs, callers) have their own module, [`onboard`]; so
//! do the authentication operations (passwords, factors), [`auth`].
//!
//! docs/protocol.md is the specification for clients in other languages;
//! the tests here keep the two in step. This crate knows nothing of the
//! server: `sigil-perf` and other clients depend on it alone.
#![forbid(unsafe_code)]

pub mod auth;
mod calls;
pub mod cbor;
pub mod client;
pub mod credentials;
pub mod error;
pub mod frame;
pub mod onboard;
pub mod request;
pub mod results;
pub mod target;
pub mod tls;

pub use cbor::{from_cbor, to_cbor};
pub use client::{CallError, Client, ClientConfig};
pub use error::{ErrorCode, WireError};
pub use frame::{write_frame, FrameDecoder, FrameError, MAX_FRAME};
pub use request::{BadRequest, Operation, WireRequest};
pub use results::{Reply, WireResponse};
pub use target::{Endpoints, Target, TargetError};

/// The ALPN protocol id both sides must offer.
pub const ALPN: &[u8] = b"sigil/1";
