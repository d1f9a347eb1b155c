//! Private SoftHSM2 tokens for tests and benchmarks (`test-support`).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::{HsmConfig, HsmError, PinSource};

/// Where Debian's SoftHSM2 module lives.
pub const SOFTHSM2_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A SoftHSM2 token in a directory of its own.
#[derive(Debug, Clone)]
pub struct SoftHsmToken {
    /// The `softhsm2.conf` to export as `SOFTHSM2_CONF` before the process
    /// opens the module (SoftHSM reads it once, at initialisation).
    pub conf: PathBuf,
    /// The configuration that opens the token (user PIN in a 0600 file).
    pub config: HsmConfig,
}

fn random_pin() -> Result<String, HsmError> {
    let mut bytes = [0u8; 12];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| HsmError::Config("no randomness for a pin".into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn write_private(path: &Path, text: &str) -> Result<(), HsmError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| HsmError::Config(format!("{}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .map_err(|e| HsmError::Config(format!("{}: {e}", path.display())))
}

impl SoftHsmToken {
    /// Creates `dir/softhsm2.conf`, `dir/tokens/` and a token labelled
    /// `label` with random user and SO PINs in `dir/user.pin` and
    /// `dir/so.pin` (mode 0600). `dir` must exist and hold no token yet.
    ///
    /// # Errors
    /// [`HsmError::Config`] if SoftHSM2 is not installed (naming the Debian
    /// package) or the token cannot be initialised.
    pub fn create(dir: &Path, label: &str) -> Result<SoftHsmToken, HsmError> {
        if !Path::new(SOFTHSM2_MODULE).exists() {
            return Err(HsmError::Config(format!(
                "{SOFTHSM2_MODULE} is missing: apt-get install softhsm2"
            )));
        }
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens)
            .map_err(|e| HsmError::Config(format!("{}: {e}", tokens.display())))?;
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .map_err(|e| HsmError::Config(format!("{}: {e}", conf.display())))?;
        let (user_pin, so_pin) = (random_pin()?, random_pin()?);
        let user_pin_file = dir.join("user.pin");
        write_private(&user_pin_file, &user_pin)?;
        write_private(&dir.join("so.pin"), &so_pin)?;
        let output = Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                &user_pin,
                "--so-pin",
                &so_pin,
            ])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .map_err(|e| {
                HsmError::Config(format!("softhsm2-util: {e} (apt-get install softhsm2)"))
            })?;
        if !output.status.success() {
            return Err(HsmError::Config(format!(
                "softhsm2-util --init-token failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(SoftHsmToken {
            conf,
            config: HsmConfig::new(SOFTHSM2_MODULE, label, PinSource::File(user_pin_file)),
        })
    }
}
