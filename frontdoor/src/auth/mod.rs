//! Credential verification (issue 18): what Sigil proves itself before a
//! session says `pwd` or `otp`.
//!
//! - [`password`]: argon2id hashes in PHC format with a tenant's
//!   parameters, legacy bcrypt (`$2b$`) verification, and whether a stored
//!   hash should be upgraded; a dummy hash per parameter set, verified for
//!   unknown users so that they cost the same time as a wrong password.
//! - [`pool`]: the bounded pool of threads that hashing runs on, never a
//!   QUIC worker: a full queue is answered `overloaded` at once.
//! - [`totp`]: RFC 6238 codes (through `totp-rs`) and the step a code
//!   matched, for replay refusal across nodes.
//! - [`throttle`]: per-client-IP throttling of failures on this node.
//!
//! The operations themselves (`authenticate`, `factor_*`,
//! `password_change`, the admin ones) are in `api/auth_ops.rs`; the
//! durable state (hashes, failure counters, factors, MFA states) is the
//! directory's (`directory::credentials`).

pub mod password;
pub mod policy;
pub mod pool;
pub mod throttle;
pub mod totp;

/// Why a credential operation failed inside Sigil (never "wrong password":
/// that is an answer, not an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The hashing pool's queue is full: answer `overloaded`.
    #[error("password hashing is at capacity")]
    Overloaded,
    /// The hashing pool stopped.
    #[error("password hashing pool stopped")]
    Stopped,
    /// A stored or imported hash is not one Sigil accepts.
    #[error("unsupported password hash: {0}")]
    UnsupportedHash(String),
    /// argon2 refused its parameters or input.
    #[error("argon2: {0}")]
    Argon2(String),
    /// A TOTP secret or code could not be used.
    #[error("totp: {0}")]
    Totp(String),
    /// No randomness.
    #[error("no randomness")]
    Random,
}
