//! Hardware key backends for Sigil.
//!
//! This crate will own the PKCS#11 backend (through `cryptoki`, SoftHSM2 in
//! tests): one context per process, long-lived sessions per signing thread,
//! keys generated inside the HSM as sensitive, non-extractable token objects,
//! and an implementation of the signer's `SigningKey` trait. It is not built
//! yet; see issue 4.
#![forbid(unsafe_code)]
