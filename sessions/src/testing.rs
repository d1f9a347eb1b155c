//! For tests and benchmarks of replication: a throwaway cluster CA that
//! issues node certificates and the rustls configurations (mutual TLS)
//! nodes use. Real deployments get theirs from the front door's PKI.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A cluster CA in memory.
pub struct ClusterCa {
    ca_params: CertificateParams,
    ca_key: KeyPair,
    ca_der: CertificateDer<'static>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// A new CA.
    ///
    /// # Panics
    /// If key generation fails (a test cannot go on then).
    #[allow(clippy::expect_used)]
    pub fn new() -> ClusterCa {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_der = ca_params
            .self_signed(&ca_key)
            .expect("CA certificate")
            .der()
            .clone();
        ClusterCa {
            ca_params,
            ca_key,
            ca_der,
        }
    }

    /// A fresh node certificate (for `localhost`) and the server and client
    /// configurations that present it and trust only this CA.
    ///
    /// # Panics
    /// If generation or rustls refuse (a test cannot go on then).
    #[allow(clippy::expect_used)]
    pub fn tls(&self) -> (rustls::ServerConfig, rustls::ClientConfig) {
        let key = KeyPair::generate().expect("node key");
        let params = CertificateParams::new(vec!["localhost".to_owned()]).expect("node params");
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params
            .signed_by(&key, &issuer)
            .expect("node certificate")
            .der()
            .clone();
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("CA as root");
        let roots = Arc::new(roots);
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::clone(&roots),
            Arc::clone(&provider),
        )
        .build()
        .expect("client verifier");
        let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert.clone()], key_der.clone_key())
            .expect("server certificate");
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![cert], key_der)
            .expect("client certificate");
        (server, client)
    }
}

impl Default for ClusterCa {
    fn default() -> ClusterCa {
        ClusterCa::new()
    }
}

/// Starts member `n{me}` of a cluster whose members are `n0..` at
/// `addresses`, with its store under `dir/n{me}` and certificates from
/// `ca` (no identity check: any certificate of the CA may speak for any
/// node).
///
/// # Errors
/// When the store cannot be opened or the endpoint cannot bind.
pub fn start_member(
    ca: &ClusterCa,
    me: usize,
    addresses: &[std::net::SocketAddr],
    dir: &std::path::Path,
    timing: crate::Timing,
    peer_queue_bytes: usize,
) -> Result<crate::net::Replica, crate::net::ReplicaError> {
    let (server, client) = ca.tls();
    let membership = crate::Membership::initial(addresses.iter().enumerate().map(|(i, a)| {
        (
            crate::NodeName::from(format!("n{i}").as_str()),
            a.to_string(),
        )
    }));
    let network = crate::net::Network {
        listen: addresses[me],
        server,
        client,
        server_name: "localhost".into(),
        identify: None,
    };
    start(
        &format!("n{me}"),
        membership,
        Some(network),
        &dir.join(format!("n{me}")),
        timing,
        peer_queue_bytes,
    )
}

/// Starts a single node named `solo`, without a network, its store in `dir`.
///
/// # Errors
/// When the store cannot be opened.
pub fn start_solo(
    dir: &std::path::Path,
    timing: crate::Timing,
) -> Result<crate::net::Replica, crate::net::ReplicaError> {
    let membership = crate::Membership::initial([(crate::NodeName::from("solo"), String::new())]);
    start("solo", membership, None, dir, timing, 1 << 20)
}

fn start(
    name: &str,
    membership: crate::Membership,
    network: Option<crate::net::Network>,
    dir: &std::path::Path,
    timing: crate::Timing,
    peer_queue_bytes: usize,
) -> Result<crate::net::Replica, crate::net::ReplicaError> {
    use crate::net::{Replica, ReplicaConfig, ReplicaError};
    let table = Arc::new(crate::SessionTable::new(4));
    let wall_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (store, recovered) =
        crate::store::SessionStore::open(dir, &table, wall_ms).map_err(ReplicaError::Durable)?;
    let mut incarnation = [0u8; 8];
    aws_lc_rs::rand::fill(&mut incarnation)
        .map_err(|_| ReplicaError::Setup("random generator failed".into()))?;
    Replica::start(
        ReplicaConfig {
            node: crate::NodeConfig {
                name: crate::NodeName::from(name),
                membership,
                incarnation: u64::from_le_bytes(incarnation),
                timing,
            },
            network,
            peer_queue_bytes,
            snapshot_every: std::time::Duration::from_secs(3600),
        },
        table,
        Arc::new(store),
        recovered.decrees,
    )
}
