//! Hardware key backend for Sigil: keys in an HSM, reached through PKCS#11
//! (`cryptoki`). SoftHSM2 is the HSM in tests and CI; any PKCS#11 module
//! works in production.
//!
//! What it does: opens one PKCS#11 context per module per process
//! (initialised once, with OS locking), keeps a pool of long-lived sessions
//! logged in as the user, generates keys inside the token (sensitive,
//! non-extractable token objects tied to their key-ring entry by CKA_ID and
//! CKA_LABEL), and implements the signer's [`signer::KeyBackend`] and
//! [`signer::SigningKey`] traits so HSM keys sign JWTs, SAML and
//! certificates exactly like software keys.
//!
//! What it does not do: it never reads private key material (it cannot: the
//! token refuses), never logs or returns the PIN, and never closes sessions
//! under load. Generation is a control-path operation, one at a time.
//!
//! Threads: [`Hsm`] is `Send + Sync`. Each signature checks a session out
//! of the pool (bounded wait, then a clear error), signs, and returns it; a
//! session that fails is dropped and replaced, and the request in flight
//! gets an error. An HSM is latency-bound, so run the signer's
//! `SignerPool` with as many workers as sessions to keep the device busy.
//!
//! For tests only, behind the `test-support` feature: private SoftHSM2
//! tokens (`SoftHsmToken`) and fault injection (`Hsm::danger_*`).
#![forbid(unsafe_code)]

mod backend;
mod config;
mod error;
mod session_pool;
#[cfg(any(test, feature = "test-support"))]
mod softhsm;

pub use backend::{HsmKey, Pkcs11Backend, BACKEND_NAME};
pub use config::{HsmConfig, PinSource};
pub use error::HsmError;
pub use session_pool::{Hsm, HsmCounters};
#[cfg(any(test, feature = "test-support"))]
pub use softhsm::{SoftHsmToken, SOFTHSM2_MODULE};
