//! The signer's error type.

/// Everything the signer crate can fail with.
///
/// Variants are grouped by who is at fault: the caller's bad input, the
/// stored key material, and the signer's own resources. Cryptographic
/// failures stay opaque on purpose: no detail that could become an oracle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- the caller's bad input ----
    /// The algorithm name is not one Sigil signs with. Symmetric algorithms
    /// and `none` are never accepted.
    #[error("unsupported algorithm {0:?}: use RS256, PS256, ES256, ES384 or EdDSA")]
    UnsupportedAlgorithm(String),
    /// The key specification string could not be parsed.
    #[error(
        "invalid key spec {0:?}: use RS256, RS256-3072, PS256, PS256-3072, ES256, ES384 or EdDSA"
    )]
    InvalidKeySpec(String),
    /// A token lifetime outside 1 second ..= the one-hour cap.
    #[error("token lifetime of {requested}s is outside 1..={cap}s")]
    InvalidLifetime {
        /// What was asked for, in seconds.
        requested: u64,
        /// The cap, in seconds.
        cap: u64,
    },
    /// A custom claim tried to set a claim Sigil sets itself.
    #[error("claim {0:?} is reserved and cannot come from a claim mapping")]
    ReservedClaim(String),
    /// A required claim is missing or empty.
    #[error("invalid claims: {0}")]
    InvalidClaims(&'static str),
    /// A key policy that would break an invariant (e.g. a retirement grace
    /// shorter than the longest token lifetime).
    #[error("invalid key policy: {0}")]
    InvalidPolicy(&'static str),
    /// No key of the requested algorithm can sign at this moment.
    #[error("no active {algorithm} key")]
    NoActiveKey {
        /// The algorithm asked for.
        algorithm: crate::Algorithm,
    },
    /// The key ring holds no key with that id.
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
    /// The key spec does not fit the backend or the key.
    #[error("key spec {0} is not supported by this backend")]
    UnsupportedKeySpec(crate::KeySpec),

    // ---- stored material ----
    /// The master key could not be loaded; the message names the file or
    /// variable, never the key.
    #[error("master key: {0}")]
    MasterKey(String),
    /// A wrapped key did not decrypt under this master key and tenant. Opaque
    /// by design.
    #[error("stored key could not be unwrapped")]
    Unwrap,
    /// Key material was rejected by the crypto library, or its thumbprint
    /// did not match the key id it was stored under.
    #[error("key material rejected")]
    KeyRejected,

    // ---- the signer's own resources ----
    /// The crypto backend failed to sign. Opaque by design.
    #[error("signing failed")]
    Signing,
    /// A key backend failed (e.g. an HSM session); the message carries no
    /// secret.
    #[error("{backend} backend: {message}")]
    Backend {
        /// Backend name, as in metrics (`aws-lc`, `pkcs11`).
        backend: &'static str,
        /// What went wrong, safe to log.
        message: String,
    },
    /// The signer pool's queue is full; the request was not queued.
    #[error("signer overloaded")]
    Overloaded,
    /// The signer pool has shut down.
    #[error("signer pool is shut down")]
    PoolClosed,
    /// The job waited in the signer pool past its deadline and was not
    /// signed.
    #[error("signature not started before its deadline")]
    DeadlineExceeded,
    /// Randomness was not available.
    #[error("random number generator failed")]
    Random,
}
