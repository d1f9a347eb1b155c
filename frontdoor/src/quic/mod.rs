//! The QUIC API for SSO front ends (`sigil/1`): TLS with client
//! certificates ([`tls`]), the thread-per-core listener ([`server`]).
//! The wire format is in [`sigil_proto`]; what each operation does is
//! the appliance's ([`crate::api`]).

pub mod server;
mod share;
pub mod tls;

pub use server::{Handler, QuicConfig, QuicLimits, QuicServer, QuicStats};
