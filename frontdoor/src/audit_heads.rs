//! Signed audit chain heads with the deployment's PKI: a node signs with
//! the key of its certificate from the deployment CA (ECDSA P-256); a head
//! is genuine when its certificate chains to that CA, is a node's (server
//! authentication, which callers' certificates lack), names the node the
//! head is for (`CN=sigil node {node}`), and the signature verifies.

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING,
};
use directory::audit::{HeadSigner, HeadVerifier, SignedHead};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer, UnixTime};

use crate::pki::PkiError;
use crate::quic::tls::certificate_verifier;
use sigil_proto::credentials::{Credentials, CredentialsError};
use sigil_proto::tls::TlsError;

/// A node's key, signing its chain heads.
pub struct NodeHeadSigner {
    key: EcdsaKeyPair,
    certificate: Vec<u8>,
    rng: SystemRandom,
}

impl std::fmt::Debug for NodeHeadSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHeadSigner").finish_non_exhaustive()
    }
}

impl NodeHeadSigner {
    /// The signer of a node whose certificate and key are `credentials`
    /// (as `DeploymentCa::issue_node` makes them).
    ///
    /// # Errors
    /// [`PkiError::Malformed`] when the key is not an ECDSA P-256 PKCS#8 key.
    pub fn new(credentials: &Credentials) -> Result<NodeHeadSigner, PkiError> {
        let malformed = |reason: String| {
            PkiError::Files(CredentialsError::Malformed {
                path: "key.pem".into(),
                reason,
            })
        };
        let der = match credentials.key_der()? {
            rustls_pki_types::PrivateKeyDer::Pkcs8(der) => der,
            _ => return Err(malformed("not a PKCS#8 key".into())),
        };
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            PrivatePkcs8KeyDer::secret_pkcs8_der(&der),
        )
        .map_err(|e| malformed(format!("not an ECDSA P-256 key: {e}")))?;
        Ok(NodeHeadSigner {
            key,
            certificate: credentials.certificate_der().to_vec(),
            rng: SystemRandom::new(),
        })
    }
}

impl HeadSigner for NodeHeadSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, directory::Error> {
        self.key
            .sign(&self.rng, message)
            .map(|signature| signature.as_ref().to_vec())
            .map_err(|_| directory::Error::Journal("signing a chain head failed".into()))
    }

    fn certificate_der(&self) -> &[u8] {
        &self.certificate
    }
}

/// Accepts heads signed by nodes of the deployment whose CA it holds.
pub struct DeploymentHeadVerifier {
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
}

impl std::fmt::Debug for DeploymentHeadVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploymentHeadVerifier")
            .finish_non_exhaustive()
    }
}

impl DeploymentHeadVerifier {
    /// A verifier trusting the deployment CA `ca`.
    ///
    /// # Errors
    /// [`TlsError`] when `ca` is not a usable trust anchor.
    pub fn new(ca: &CertificateDer<'static>) -> Result<DeploymentHeadVerifier, TlsError> {
        Ok(DeploymentHeadVerifier {
            verifier: certificate_verifier(ca)?,
        })
    }
}

impl HeadVerifier for DeploymentHeadVerifier {
    fn verify(&self, head: &SignedHead) -> Result<(), String> {
        let der = head.certificate_der().ok_or("the certificate is not hex")?;
        let signature = head.signature_bytes().ok_or("the signature is not hex")?;
        let certificate = CertificateDer::from(der.as_slice());
        self.verifier
            .verify_client_cert(&certificate, &[], UnixTime::now())
            .map_err(|e| format!("its certificate is not the deployment's: {e}"))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| format!("its certificate does not parse: {e}"))?;
        let name = parsed
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default();
        if name != format!("sigil node {}", head.node) {
            return Err(format!("signed by {name:?}, not by node {}", head.node));
        }
        // Callers' certificates (client authentication only) are not nodes'.
        let server = parsed
            .extended_key_usage()
            .ok()
            .flatten()
            .is_some_and(|usage| usage.value.server_auth);
        if !server {
            return Err("its certificate is not a node's (no serverAuth usage)".into());
        }
        let public = parsed.public_key().subject_public_key.data.as_ref();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public)
            .verify(&head.message(), &signature)
            .map_err(|_| "the signature does not verify".to_owned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::pki::DeploymentCa;

    fn head(signer: &NodeHeadSigner, node: &str) -> SignedHead {
        SignedHead::sign(signer, 7, node, 42, &"ab".repeat(32), 1_000).unwrap()
    }

    #[test]
    fn genuine_heads_verify_and_forgeries_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let ca = DeploymentCa::create_or_load(&dir.path().join("ca")).unwrap();
        let node = ca.issue_node("node-1", &["localhost".into()]).unwrap();
        let signer = NodeHeadSigner::new(&node).unwrap();
        let verifier = DeploymentHeadVerifier::new(&ca.certificate_der()).unwrap();
        let genuine = head(&signer, "node-1");
        verifier.verify(&genuine).unwrap();

        // Any signed field changed: the signature no longer holds.
        let moved = SignedHead {
            seq: 41,
            ..genuine.clone()
        };
        assert!(verifier.verify(&moved).unwrap_err().contains("signature"));
        // A head for another node, even with a good signature of node-1.
        let other = head(&signer, "node-2");
        assert!(verifier.verify(&other).unwrap_err().contains("not by node"));
        // Signed by a node of another deployment.
        let stranger_ca = DeploymentCa::create_or_load(&dir.path().join("other")).unwrap();
        let stranger = NodeHeadSigner::new(
            &stranger_ca
                .issue_node("node-1", &["localhost".into()])
                .unwrap(),
        )
        .unwrap();
        let forged = head(&stranger, "node-1");
        assert!(verifier
            .verify(&forged)
            .unwrap_err()
            .contains("not the deployment's"));
        // A caller's certificate of the right CA is not a node's, even
        // with a node's name.
        let caller = NodeHeadSigner::new(&ca.issue_client("sigil node node-1").unwrap()).unwrap();
        assert!(verifier
            .verify(&head(&caller, "node-1"))
            .unwrap_err()
            .contains("not a node's"));
    }
}
