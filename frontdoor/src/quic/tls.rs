//! TLS for `sigil/1`: TLS 1.3 only (QUIC), AWS-LC as the provider, ALPN
//! `sigil/1`, client certificates verified against the deployment CA.
//!
//! The server asks for a client certificate but lets a connection without
//! one complete the handshake, so that such a caller gets a clear
//! `unauthenticated` answer (and an audit record) instead of a bare TLS
//! alert. A certificate that does not chain to the deployment CA fails the
//! handshake itself: there is nobody to answer.

use std::sync::Arc;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use sigil_proto::tls::{provider, roots, TlsError};
use sigil_proto::ALPN;

/// A verifier of certificates the deployment CA `ca` issued for client
/// authentication (callers, nodes): chain, validity, key usage.
///
/// # Errors
/// [`TlsError`] when `ca` is not usable as a trust anchor.
pub fn certificate_verifier(
    ca: &CertificateDer<'static>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    Ok(rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(ca)?),
        provider(),
    )
    .build()?)
}

/// The rustls server configuration of a node: its certificate chain and
/// key, client certificates optional but verified against `ca` when given.
///
/// # Errors
/// [`TlsError`] when the certificate, key or CA are not usable.
pub fn server_crypto(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca: &CertificateDer<'static>,
    alpn: &[u8],
) -> Result<rustls::ServerConfig, TlsError> {
    server_crypto_with(chain, key, ca, alpn, false)
}

/// Like [`server_crypto`], but a client without a certificate from `ca`
/// fails the handshake (node-to-node replication).
///
/// # Errors
/// [`TlsError`] when the certificate, key or CA are not usable.
pub fn server_crypto_requiring_clients(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca: &CertificateDer<'static>,
    alpn: &[u8],
) -> Result<rustls::ServerConfig, TlsError> {
    server_crypto_with(chain, key, ca, alpn, true)
}

fn server_crypto_with(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca: &CertificateDer<'static>,
    alpn: &[u8],
    require_client: bool,
) -> Result<rustls::ServerConfig, TlsError> {
    let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(ca)?),
        provider(),
    );
    let verifier = if require_client {
        builder.build()?
    } else {
        builder.allow_unauthenticated().build()?
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![alpn.to_vec()];
    config.max_early_data_size = 0;
    Ok(config)
}

/// Bidirectional streams a client may have open at once per connection.
pub const MAX_STREAMS: u32 = 256;

/// Flow-control window per request stream: two maximum-size frames.
pub const STREAM_WINDOW: u32 = 2 * (sigil_proto::MAX_FRAME as u32 + 4);

/// Flow-control window per connection: four streams' worth.
pub const CONNECTION_WINDOW: u32 = 4 * STREAM_WINDOW;

/// How long a connection may stay silent before the node closes it
/// (QUIC's idle timeout, the smaller of both sides' when the client
/// announces one). Clients keep alive well within it (docs/protocol.md).
pub const IDLE_TIMEOUT: std::time::Duration =
    std::time::Duration::from_millis(IDLE_TIMEOUT_MILLIS as u64);
const IDLE_TIMEOUT_MILLIS: u32 = 30_000;

/// The quinn server configuration for `sigil/1`, asking callers to
/// acknowledge after `ack_threshold` packets
/// ([`sigil_proto::tls::ask_for_fewer_acks`]).
///
/// # Errors
/// [`TlsError`] when the certificate, key or CA are not usable.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca: &CertificateDer<'static>,
    ack_threshold: u32,
) -> Result<quinn::ServerConfig, TlsError> {
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(server_crypto(chain, key, ca, ALPN)?)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(MAX_STREAMS.into())
        .max_concurrent_uni_streams(0u32.into())
        // Bytes a caller may have sent that the node has not read yet: two
        // frames of the largest size per stream, four streams' worth per
        // connection (quinn's default connection window is unbounded).
        // Beyond that the caller waits: memory per connection is bounded
        // whatever the caller does.
        .stream_receive_window(quinn::VarInt::from_u32(STREAM_WINDOW))
        .receive_window(quinn::VarInt::from_u32(CONNECTION_WINDOW))
        .max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(
            IDLE_TIMEOUT_MILLIS,
        ))));
    // Callers acknowledge answers in their next requests rather than in
    // packets of their own (`[limits] quic_ack_threshold`).
    sigil_proto::tls::ask_for_fewer_acks(&mut transport, ack_threshold);
    config.transport_config(Arc::new(transport));
    Ok(config)
}
