//! Client-side TLS for `sigil/1`: TLS 1.3 only (QUIC), AWS-LC as the
//! provider, ALPN `sigil/1`, the node verified against the deployment CA,
//! the caller's certificate presented when it has one.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::ALPN;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// rustls refused the certificates or keys.
    #[error("tls: {0}")]
    Rustls(rustls::Error),
    /// The CA certificate is not usable as a trust anchor (server side).
    #[error("ca certificate: {0}")]
    Verifier(rustls::server::VerifierBuilderError),
    /// QUIC needs TLS 1.3 with an initial cipher suite.
    #[error("quic tls: {0}")]
    Quic(quinn::crypto::rustls::NoInitialCipherSuite),
}

// The causes are in the messages above and not also given as sources, so
// a printed cause chain names each once.
impl From<rustls::Error> for TlsError {
    fn from(error: rustls::Error) -> TlsError {
        TlsError::Rustls(error)
    }
}

impl From<rustls::server::VerifierBuilderError> for TlsError {
    fn from(error: rustls::server::VerifierBuilderError) -> TlsError {
        TlsError::Verifier(error)
    }
}

impl From<quinn::crypto::rustls::NoInitialCipherSuite> for TlsError {
    fn from(error: quinn::crypto::rustls::NoInitialCipherSuite) -> TlsError {
        TlsError::Quic(error)
    }
}

/// AWS-LC as the rustls crypto provider (both sides use it).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A root store holding only the deployment CA `ca`.
///
/// # Errors
/// [`TlsError`] when `ca` is not a usable trust anchor.
pub fn roots(ca: &CertificateDer<'static>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone())?;
    Ok(roots)
}

/// The rustls client configuration: trusts only `ca`, presents `identity`
/// (certificate chain and key) when given.
///
/// # Errors
/// [`TlsError`] when the certificate, key or CA are not usable.
pub fn client_crypto(
    ca: &CertificateDer<'static>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    alpn: &[u8],
) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca)?);
    let mut config = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// The ACK-eliciting threshold a `sigil/1` endpoint asks its peer for by
/// default: how many packets that need an acknowledgement the peer may
/// receive before it must send one at once (QUIC's default is 1, an ACK
/// for every second packet). Requests and answers carry each other's
/// ACKs, so with 16 a busy connection sends almost no packet that holds
/// only an ACK; a quiet one still acknowledges within the peer's
/// `max_ack_delay` (25 ms by default), as before. Peers without the ACK
/// frequency extension (draft-ietf-quic-ack-frequency) ignore it.
pub const ACK_THRESHOLD: u32 = 16;

/// Asks the peer to acknowledge after `threshold` ACK-eliciting packets
/// rather than QUIC's 1 ([`ACK_THRESHOLD`]); 0 or 1 leaves QUIC's default.
pub fn ask_for_fewer_acks(transport: &mut quinn::TransportConfig, threshold: u32) {
    if threshold <= 1 {
        return;
    }
    let mut frequency = quinn::AckFrequencyConfig::default();
    frequency.ack_eliciting_threshold(threshold.into());
    transport.ack_frequency_config(Some(frequency));
}

/// The quinn client configuration for `sigil/1`, with keep-alives so an
/// idle long-lived connection stays open, asking the node to acknowledge
/// after `ack_threshold` packets ([`ask_for_fewer_acks`]).
///
/// # Errors
/// [`TlsError`] when the certificate, key or CA are not usable.
pub fn client_config(
    ca: &CertificateDer<'static>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ack_threshold: u32,
) -> Result<quinn::ClientConfig, TlsError> {
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(client_crypto(ca, identity, ALPN)?)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .keep_alive_interval(Some(std::time::Duration::from_secs(5)))
        .max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(
            30_000,
        ))));
    ask_for_fewer_acks(&mut transport, ack_threshold);
    config.transport_config(Arc::new(transport));
    Ok(config)
}
