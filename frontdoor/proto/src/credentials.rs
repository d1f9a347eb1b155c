//! Credentials on disk: a caller's (or node's) certificate and key as PEM
//! files, and the deployment CA certificate it trusts. The files are what
//! `sigil admin frontend add --out DIR` writes: `cert.pem`, `key.pem`
//! (0600) and `ca.pem`. Key files readable by group or others are refused.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// What went wrong with certificate or key files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// A file could not be read or written.
    // `cause`, not `source`: the message already prints it, and a `source`
    // would print it a second time in an error chain.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// A key file is readable by others than its owner.
    #[error("{0}: private key readable by group or others; chmod 600 it")]
    KeyPermissions(PathBuf),
    /// A file is not the PEM it should be.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CredentialsError + '_ {
    move |cause| CredentialsError::Io {
        path: path.to_owned(),
        cause,
    }
}

/// The lowercase hex SHA-256 of a certificate's DER: how the directory
/// names a caller.
pub fn fingerprint(certificate_der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, certificate_der);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A certificate with its private key, as PEM.
#[derive(Clone)]
pub struct Credentials {
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The PKCS#8 private key, PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The certificate's DER.
    pub fn certificate_der(&self) -> CertificateDer<'static> {
        // Checked when made or loaded.
        CertificateDer::from_pem_slice(self.certificate_pem.as_bytes())
            .unwrap_or_else(|_| CertificateDer::from(Vec::new()))
    }

    /// The private key's DER, for rustls.
    ///
    /// # Errors
    /// [`CredentialsError::Malformed`] if the key PEM does not parse.
    pub fn key_der(&self) -> Result<PrivateKeyDer<'static>, CredentialsError> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| {
            CredentialsError::Malformed {
                path: PathBuf::from("key.pem"),
                reason: e.to_string(),
            }
        })
    }

    /// [`fingerprint`] of the certificate.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.certificate_der())
    }

    /// Writes `cert.pem`, `key.pem` (0600) and, when given, the CA's
    /// `ca.pem` into `dir` (created if missing).
    ///
    /// # Errors
    /// [`CredentialsError::Io`] when a file cannot be written.
    pub fn write(&self, dir: &Path, ca_pem: Option<&str>) -> Result<(), CredentialsError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        write_file(
            &dir.join("cert.pem"),
            self.certificate_pem.as_bytes(),
            0o644,
        )?;
        write_file(&dir.join("key.pem"), self.key_pem.as_bytes(), 0o600)?;
        if let Some(ca) = ca_pem {
            write_file(&dir.join("ca.pem"), ca.as_bytes(), 0o644)?;
        }
        Ok(())
    }

    /// Reads `cert.pem` and `key.pem` from `dir`.
    ///
    /// # Errors
    /// [`CredentialsError::Io`] when missing, [`CredentialsError::KeyPermissions`] when the
    /// key is readable by others, [`CredentialsError::Malformed`] when not PEM.
    pub fn load(dir: &Path) -> Result<Credentials, CredentialsError> {
        let certificate_pem = read_pem(&dir.join("cert.pem"), "CERTIFICATE")?;
        let key_pem = read_key(&dir.join("key.pem"))?;
        Ok(Credentials {
            certificate_pem,
            key_pem,
        })
    }
}

/// Reads `dir/ca.pem`: the CA certificate a client or node trusts.
///
/// # Errors
/// [`CredentialsError::Io`] or [`CredentialsError::Malformed`].
pub fn load_ca_certificate(path: &Path) -> Result<CertificateDer<'static>, CredentialsError> {
    let pem = read_pem(path, "CERTIFICATE")?;
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| CredentialsError::Malformed {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Writes `bytes` to `path` with `mode` (also when the file existed with
/// another mode), synced.
///
/// # Errors
/// [`CredentialsError::Io`].
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CredentialsError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io(path))?;
    // An existing file keeps its old mode through open(): set it.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// Reads a PEM file holding a `label` object (`CERTIFICATE` or a private
/// key).
///
/// # Errors
/// [`CredentialsError::Io`] or [`CredentialsError::Malformed`].
pub fn read_pem(path: &Path, label: &str) -> Result<String, CredentialsError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let parsed = if label == "CERTIFICATE" {
        CertificateDer::from_pem_slice(text.as_bytes()).map(drop)
    } else {
        PrivateKeyDer::from_pem_slice(text.as_bytes()).map(drop)
    };
    parsed.map_err(|e| CredentialsError::Malformed {
        path: path.to_owned(),
        reason: format!("no PEM `{label}`: {e}"),
    })?;
    Ok(text)
}

/// Reads a private-key PEM file, refusing one readable by group or others.
///
/// # Errors
/// [`CredentialsError::KeyPermissions`], or as [`read_pem`].
pub fn read_key(path: &Path) -> Result<String, CredentialsError> {
    let metadata = std::fs::metadata(path).map_err(io(path))?;
    if metadata.permissions().mode() & 0o077 != 0 {
        return Err(CredentialsError::KeyPermissions(path.to_owned()));
    }
    read_pem(path, "PRIVATE KEY")
}
