//! `sigil`: the appliance binary.
//!
//! This crate will own the thread-per-core front door: the QUIC API for SSO
//! front ends (`sigil/1`), the HTTP endpoints for SPs and operators (JWKS,
//! discovery, SAML metadata, metrics, health), admission control,
//! configuration, and the `serve`, `demo`, `client`, `admin`, `keys`,
//! `directory` and `audit` commands. It is not built yet; see issues 7 and 8.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    eprintln!("sigil: the front door is not built yet (issues 7 and 8)");
    std::process::ExitCode::from(2)
}
