//! How to reach the HSM.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::HsmError;

/// Where the user PIN comes from. The PIN itself never appears in
/// configuration files, `Debug` output, logs or errors.
#[derive(Clone, PartialEq, Eq)]
pub enum PinSource {
    /// A file holding the PIN (trailing newline ignored).
    File(PathBuf),
    /// An environment variable holding the PIN.
    Env(String),
}

impl fmt::Debug for PinSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinSource::File(path) => write!(f, "PinSource::File({})", path.display()),
            PinSource::Env(name) => write!(f, "PinSource::Env(${name})"),
        }
    }
}

impl PinSource {
    /// Reads the PIN.
    ///
    /// # Errors
    /// [`HsmError::Config`] naming the file or variable (never the PIN) when
    /// it is missing or empty.
    pub fn read(&self) -> Result<Zeroizing<String>, HsmError> {
        let text = match self {
            PinSource::File(path) => Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|e| HsmError::Config(format!("pin file {}: {e}", path.display())))?,
            ),
            PinSource::Env(name) => Zeroizing::new(
                std::env::var(name)
                    .map_err(|_| HsmError::Config(format!("pin variable ${name} is not set")))?,
            ),
        };
        let pin = Zeroizing::new(text.trim_end_matches(['\r', '\n']).to_owned());
        if pin.is_empty() {
            return Err(HsmError::Config(format!("{self:?} holds an empty pin")));
        }
        Ok(pin)
    }
}

/// Configuration of the PKCS#11 backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsmConfig {
    /// Path of the PKCS#11 module, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// Label of the token holding Sigil's keys.
    pub token_label: String,
    /// Where the user PIN comes from.
    pub pin: PinSource,
    /// Long-lived sessions kept open and logged in. Default 4.
    pub sessions: usize,
    /// How long a signature may wait for a free session. Default 2 s.
    pub checkout_timeout: Duration,
}

impl HsmConfig {
    /// A configuration with the default session count and timeout.
    pub fn new(
        module: impl Into<PathBuf>,
        token_label: impl Into<String>,
        pin: PinSource,
    ) -> HsmConfig {
        HsmConfig {
            module: module.into(),
            token_label: token_label.into(),
            pin,
            sessions: 4,
            checkout_timeout: Duration::from_secs(2),
        }
    }
}
