//! The deployment's certificates: a local CA that issues the server
//! certificate of every node, the client certificates of SSO front ends
//! (`sigil admin frontend add`) and of admins, and node certificates for
//! replication. Written as PEM files a human and other tools can read.
//!
//! Key files are created with mode 0600 and refused when group- or
//! world-readable. The CA key can mint callers: keep `ca.key` off the nodes
//! in production and mint with `sigil admin frontend add` where it lives.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// What went wrong with certificates on disk.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
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
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The lowercase hex SHA-256 of a certificate's DER: how the directory
/// names a caller.
pub fn fingerprint(certificate_der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, certificate_der);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The node a cluster certificate was issued to (its common name is
/// `sigil node {name}`, see [`DeploymentCa::issue_node`]); `None` for any
/// other certificate.
pub fn node_name(certificate_der: &[u8]) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(certificate_der).ok()?;
    let common_name = certificate
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?;
    common_name
        .strip_prefix("sigil node ")
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
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
    /// [`PkiError::Malformed`] if the key PEM does not parse.
    pub fn key_der(&self) -> Result<PrivateKeyDer<'static>, PkiError> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| PkiError::Malformed {
            path: PathBuf::from("key.pem"),
            reason: e.to_string(),
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
    /// [`PkiError::Io`] when a file cannot be written.
    pub fn write(&self, dir: &Path, ca_pem: Option<&str>) -> Result<(), PkiError> {
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
    /// [`PkiError::Io`] when missing, [`PkiError::KeyPermissions`] when the
    /// key is readable by others, [`PkiError::Malformed`] when not PEM.
    pub fn load(dir: &Path) -> Result<Credentials, PkiError> {
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
/// [`PkiError::Io`] or [`PkiError::Malformed`].
pub fn load_ca_certificate(path: &Path) -> Result<CertificateDer<'static>, PkiError> {
    let pem = read_pem(path, "CERTIFICATE")?;
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Malformed {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// The deployment CA.
pub struct DeploymentCa {
    certificate_pem: String,
    key: KeyPair,
}

impl std::fmt::Debug for DeploymentCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploymentCa").finish_non_exhaustive()
    }
}

const CA_NAME: &str = "Sigil deployment CA";

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_NAME);
    name.push(DnType::OrganizationName, "Sigil");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
}

impl DeploymentCa {
    /// Loads the CA from `dir/ca.pem` and `dir/ca.key`, or creates it there
    /// when neither exists.
    ///
    /// # Errors
    /// [`PkiError`] when only one of the files exists, they cannot be read
    /// or written, or the key is readable by others.
    pub fn create_or_load(dir: &Path) -> Result<DeploymentCa, PkiError> {
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {
                let certificate_pem = read_pem(&cert_path, "CERTIFICATE")?;
                let key_pem = read_key(&key_path)?;
                let key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::Malformed {
                    path: key_path.clone(),
                    reason: e.to_string(),
                })?;
                Ok(DeploymentCa {
                    certificate_pem,
                    key,
                })
            }
            (false, false) => {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
                let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
                let mut params = ca_params();
                validity(&mut params, 3650);
                let certificate = params.self_signed(&key)?;
                write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
                write_file(&cert_path, certificate.pem().as_bytes(), 0o644)?;
                Ok(DeploymentCa {
                    certificate_pem: certificate.pem(),
                    key,
                })
            }
            (true, false) => Err(PkiError::Malformed {
                path: key_path,
                reason: "missing while ca.pem exists".into(),
            }),
            (false, true) => Err(PkiError::Malformed {
                path: cert_path,
                reason: "missing while ca.key exists".into(),
            }),
        }
    }

    /// The CA certificate, PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The CA certificate, DER.
    pub fn certificate_der(&self) -> CertificateDer<'static> {
        // Checked when made or loaded.
        CertificateDer::from_pem_slice(self.certificate_pem.as_bytes())
            .unwrap_or_else(|_| CertificateDer::from(Vec::new()))
    }

    fn issue(
        &self,
        common_name: &str,
        sans: &[String],
        usages: Vec<ExtendedKeyUsagePurpose>,
        days: i64,
    ) -> Result<Credentials, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        for san in sans {
            params
                .subject_alt_names
                .push(match san.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(san.as_str().try_into()?),
                });
        }
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        params.distinguished_name = name;
        params.extended_key_usages = usages;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, days);
        let issuer = Issuer::new(ca_params(), &self.key);
        let certificate = params.signed_by(&key, &issuer)?;
        Ok(Credentials {
            certificate_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A server certificate for a node, valid for `names` (DNS names or IP
    /// addresses) for a year. It also authenticates the node to its peers
    /// (client auth) for replication.
    ///
    /// # Errors
    /// [`PkiError::Generate`] for a name that is neither DNS nor IP.
    pub fn issue_node(&self, node: &str, names: &[String]) -> Result<Credentials, PkiError> {
        self.issue(
            &format!("sigil node {node}"),
            names,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            365,
        )
    }

    /// A client certificate for a front end (or an admin) named `name`,
    /// valid for a year.
    ///
    /// # Errors
    /// [`PkiError::Generate`] if generation fails.
    pub fn issue_client(&self, name: &str) -> Result<Credentials, PkiError> {
        self.issue(name, &[], vec![ExtendedKeyUsagePurpose::ClientAuth], 365)
    }
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
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

fn read_pem(path: &Path, label: &str) -> Result<String, PkiError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let parsed = if label == "CERTIFICATE" {
        CertificateDer::from_pem_slice(text.as_bytes()).map(drop)
    } else {
        PrivateKeyDer::from_pem_slice(text.as_bytes()).map(drop)
    };
    parsed.map_err(|e| PkiError::Malformed {
        path: path.to_owned(),
        reason: format!("no PEM `{label}`: {e}"),
    })?;
    Ok(text)
}

fn read_key(path: &Path) -> Result<String, PkiError> {
    let metadata = std::fs::metadata(path).map_err(io(path))?;
    if metadata.permissions().mode() & 0o077 != 0 {
        return Err(PkiError::KeyPermissions(path.to_owned()));
    }
    read_pem(path, "PRIVATE KEY")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ca_is_created_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let ca = DeploymentCa::create_or_load(dir.path()).unwrap();
        let again = DeploymentCa::create_or_load(dir.path()).unwrap();
        assert_eq!(ca.certificate_pem(), again.certificate_pem());
        let client = again.issue_client("web-1").unwrap();
        client
            .write(&dir.path().join("web-1"), Some(ca.certificate_pem()))
            .unwrap();
        let loaded = Credentials::load(&dir.path().join("web-1")).unwrap();
        assert_eq!(loaded.fingerprint(), client.fingerprint());
        assert_eq!(loaded.fingerprint().len(), 64);
    }

    #[test]
    fn readable_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        DeploymentCa::create_or_load(dir.path()).unwrap();
        std::fs::set_permissions(
            dir.path().join("ca.key"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert!(matches!(
            DeploymentCa::create_or_load(dir.path()),
            Err(PkiError::KeyPermissions(_))
        ));
        std::fs::remove_file(dir.path().join("ca.key")).unwrap();
        assert!(matches!(
            DeploymentCa::create_or_load(dir.path()),
            Err(PkiError::Malformed { .. })
        ));
    }
}
