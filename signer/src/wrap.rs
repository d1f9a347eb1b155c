//! Envelope encryption of software keys at rest: AES-256-GCM under a master
//! key, with the tenant and key id as associated data so a wrapped key moved
//! to another tenant or kid does not unwrap.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::Zeroizing;

use crate::Error;

/// Format version of a wrapped blob: `1 || nonce(12) || ciphertext || tag(16)`.
const WRAP_VERSION: u8 = 1;

/// The deployment's master key (256 bits). It wraps every software private
/// key; it is never written anywhere by Sigil except by
/// [`MasterKey::create_file`], and never printed.
pub struct MasterKey {
    key: LessSafeKey,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Builds a master key from 32 raw bytes.
    ///
    /// # Errors
    /// [`Error::MasterKey`] if the slice is not 32 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, Error> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| Error::MasterKey("must be 32 bytes".into()))?;
        Ok(MasterKey {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Parses a master key from its text form: standard base64 of 32 bytes,
    /// surrounding white space ignored.
    ///
    /// # Errors
    /// [`Error::MasterKey`] naming `source` (never the key) when the text is
    /// not base64 of 32 bytes.
    pub fn from_base64(text: &str, source: &str) -> Result<MasterKey, Error> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| Error::MasterKey(format!("{source}: not base64")))?,
        );
        MasterKey::from_bytes(&bytes)
            .map_err(|_| Error::MasterKey(format!("{source}: must hold 32 bytes in base64")))
    }

    /// Loads the master key from a file that only its owner can read (mode
    /// 0600 or stricter).
    ///
    /// # Errors
    /// [`Error::MasterKey`] if the file is missing, readable by group or
    /// others, or does not hold base64 of 32 bytes.
    pub fn from_file(path: &Path) -> Result<MasterKey, Error> {
        let shown = path.display();
        let meta =
            std::fs::metadata(path).map_err(|e| Error::MasterKey(format!("{shown}: {e}")))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::MasterKey(format!(
                "{shown}: mode {mode:o} lets others read it; chmod 600 it"
            )));
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| Error::MasterKey(format!("{shown}: {e}")))?,
        );
        MasterKey::from_base64(&text, &shown.to_string())
    }

    /// Loads the master key from an environment variable holding base64.
    ///
    /// # Errors
    /// [`Error::MasterKey`] if the variable is unset or malformed.
    pub fn from_env(variable: &str) -> Result<MasterKey, Error> {
        let text = Zeroizing::new(
            std::env::var(variable)
                .map_err(|_| Error::MasterKey(format!("${variable} is not set")))?,
        );
        MasterKey::from_base64(&text, &format!("${variable}"))
    }

    /// Generates a new master key into a new file with mode 0600. Refuses to
    /// overwrite an existing file.
    ///
    /// # Errors
    /// [`Error::MasterKey`] if the file exists or cannot be written;
    /// [`Error::Random`] if randomness fails.
    pub fn create_file(path: &Path) -> Result<MasterKey, Error> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| Error::Random)?;
        let text = Zeroizing::new(STANDARD.encode(bytes.as_ref()));
        let shown = path.display();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::MasterKey(format!("{shown}: {e}")))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::MasterKey(format!("{shown}: {e}")))?;
        MasterKey::from_bytes(bytes.as_ref())
    }

    /// Encrypts `plaintext` bound to `context` (associated data).
    ///
    /// # Errors
    /// [`Error::Random`] if no nonce could be drawn.
    pub fn wrap(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| Error::Random)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + 16);
        out.push(WRAP_VERSION);
        out.extend_from_slice(&nonce);
        let mut sealed = plaintext.to_vec();
        let result = self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context),
            &mut sealed,
        );
        if result.is_err() {
            zeroize::Zeroize::zeroize(&mut sealed);
            return Err(Error::Signing);
        }
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypts a blob made by [`MasterKey::wrap`] with the same `context`.
    ///
    /// # Errors
    /// [`Error::Unwrap`] for a wrong key, wrong context, or tampered blob;
    /// deliberately without detail.
    pub fn unwrap(&self, context: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        if blob.len() < 1 + NONCE_LEN + 16 || blob[0] != WRAP_VERSION {
            return Err(Error::Unwrap);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&blob[1..1 + NONCE_LEN]);
        let mut buffer = Zeroizing::new(blob[1 + NONCE_LEN..].to_vec());
        let plain_len = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                buffer.as_mut_slice(),
            )
            .map_err(|_| Error::Unwrap)?
            .len();
        buffer.truncate(plain_len);
        Ok(buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_bytes(&[7u8; 32]).expect("32 bytes")
    }

    #[test]
    fn round_trip_and_context_binding() {
        let mk = key();
        let blob = mk.wrap(b"acme\0kid1", b"secret").expect("wrap");
        assert_eq!(
            mk.unwrap(b"acme\0kid1", &blob).expect("unwrap").as_slice(),
            b"secret"
        );
        assert!(mk.unwrap(b"globex\0kid1", &blob).is_err());
        assert!(mk.unwrap(b"acme\0kid2", &blob).is_err());
        let other = MasterKey::from_bytes(&[8u8; 32]).expect("32 bytes");
        assert!(other.unwrap(b"acme\0kid1", &blob).is_err());
    }

    #[test]
    fn tampering_is_detected() {
        let mk = key();
        let blob = mk.wrap(b"ctx", b"secret").expect("wrap");
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 1;
            assert!(mk.unwrap(b"ctx", &bad).is_err(), "flip at {i}");
        }
        assert!(mk.unwrap(b"ctx", &blob[..blob.len() - 1]).is_err());
        assert!(mk.unwrap(b"ctx", &[]).is_err());
    }

    #[test]
    fn file_must_be_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        MasterKey::create_file(&path).expect("create");
        assert!(MasterKey::create_file(&path).is_err(), "must not overwrite");
        MasterKey::from_file(&path).expect("0600 file loads");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = MasterKey::from_file(&path).expect_err("0644 must be refused");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn errors_never_echo_the_key() {
        let text = "c2VjcmV0LWJ1dC1ub3QtMzItYnl0ZXM=";
        let err = MasterKey::from_base64(text, "$SIGIL_MASTER_KEY").expect_err("short");
        assert!(!err.to_string().contains(text));
    }
}
