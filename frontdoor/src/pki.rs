//! The deployment's certificates: a local CA that issues the server
//! certificate of every node, the client certificates of SSO front ends
//! (`sigil admin frontend add`) and of admins, and node certificates for
//! replication. Written as PEM files a human and other tools can read.
//!
//! Key files are created with mode 0600 and refused when group- or
//! world-readable. The CA key can mint callers: keep `ca.key` off the nodes
//! in production and mint with `sigil admin frontend add` where it lives.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use sigil_proto::credentials::Credentials;
use sigil_proto::credentials::{read_key, read_pem, write_file, CredentialsError};

/// What went wrong with the deployment's certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A certificate or key file (missing, unreadable, malformed, or a key
    /// readable by others).
    #[error(transparent)]
    Files(#[from] CredentialsError),
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Generate(rcgen::Error),
}

// The cause is in the message and not also a source: printed once.
impl From<rcgen::Error> for PkiError {
    fn from(error: rcgen::Error) -> PkiError {
        PkiError::Generate(error)
    }
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
                let key = KeyPair::from_pem(&key_pem).map_err(|e| {
                    PkiError::Files(CredentialsError::Malformed {
                        path: key_path.clone(),
                        reason: e.to_string(),
                    })
                })?;
                Ok(DeploymentCa {
                    certificate_pem,
                    key,
                })
            }
            (false, false) => {
                std::fs::create_dir_all(dir).map_err(|cause| CredentialsError::Io {
                    path: dir.to_owned(),
                    cause,
                })?;
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
            (true, false) => Err(PkiError::Files(CredentialsError::Malformed {
                path: key_path,
                reason: "missing while ca.pem exists".into(),
            })),
            (false, true) => Err(PkiError::Files(CredentialsError::Malformed {
                path: cert_path,
                reason: "missing while ca.key exists".into(),
            })),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

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
            Err(PkiError::Files(CredentialsError::KeyPermissions(_)))
        ));
        std::fs::remove_file(dir.path().join("ca.key")).unwrap();
        assert!(matches!(
            DeploymentCa::create_or_load(dir.path()),
            Err(PkiError::Files(CredentialsError::Malformed { .. }))
        ));
    }
}
