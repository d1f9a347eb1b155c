//! The crate's error type.

/// What can go wrong with the HSM. Messages never carry the PIN or key
/// material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HsmError {
    /// The configuration is unusable (missing module, empty label, no PIN).
    #[error("hsm configuration: {0}")]
    Config(String),
    /// The PKCS#11 module could not be loaded or initialised.
    #[error("pkcs#11 module {module}: {message}")]
    Module {
        /// The module path.
        module: String,
        /// What failed.
        message: String,
    },
    /// No token with the configured label is present.
    #[error("no token labelled {0:?} in any slot")]
    TokenNotFound(String),
    /// Logging in failed (wrong PIN, locked PIN). The PIN is not shown.
    #[error("login to token {token:?} failed: {message}")]
    Login {
        /// The token label.
        token: String,
        /// The PKCS#11 return value.
        message: String,
    },
    /// No session was free within the checkout timeout.
    #[error("no hsm session free within {0} ms")]
    Busy(u128),
    /// A PKCS#11 call failed.
    #[error("pkcs#11 {operation}: {message}")]
    Pkcs11 {
        /// What was being done.
        operation: &'static str,
        /// The return value.
        message: String,
    },
    /// The token does not offer a mechanism this key spec needs.
    #[error("the token does not offer {0}")]
    Unsupported(String),
}

impl From<HsmError> for signer::Error {
    fn from(e: HsmError) -> signer::Error {
        signer::Error::Backend {
            backend: crate::BACKEND_NAME,
            message: e.to_string(),
        }
    }
}

/// Short, stable text of a cryptoki error: the return value name only,
/// without cryptoki's paragraph-long descriptions.
pub(crate) fn describe(e: &cryptoki::error::Error) -> String {
    match e {
        cryptoki::error::Error::Pkcs11(rv, function) => format!("{rv:?} in {function:?}"),
        other => other.to_string(),
    }
}
