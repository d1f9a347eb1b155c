//! Where a client finds a node and as whom it calls: the flags `sigil
//! client` and `sigil-perf` share (`--target`, `--cert-dir`, `--data-dir`,
//! `--server-name`, `--anonymous`) resolved into a [`ClientConfig`].
//!
//! Without `--target`/`--cert-dir` a client talks to the embedded default:
//! `sigil serve` writes where it listens into `{data_dir}/endpoints.json`
//! ([`Endpoints`]) and the credentials of its demo callers under
//! `{data_dir}/credentials/` ([`credentials_dir`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::{CallError, Client, ClientConfig};
use crate::credentials::{load_ca_certificate, Credentials, CredentialsError};

/// The embedded default's state directory, relative to where `sigil` runs.
pub const DEFAULT_DATA_DIR: &str = "./var";

/// Why a target could not be resolved or reached. The messages name the
/// flag or file to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// No `endpoints.json`: no `sigil serve` ran in that data directory
    /// (and no `--target` was given).
    #[error("{}: {cause}; start the appliance with `sigil serve` first, or pass --target and --cert-dir", path.display())]
    NoEndpoints {
        /// The file looked for.
        path: PathBuf,
        /// Why it could not be read.
        cause: std::io::Error,
    },
    /// `endpoints.json` is not what `sigil serve` writes.
    #[error("{0}")]
    MalformedEndpoints(serde_json::Error),
    /// `endpoints.json` could not be written.
    #[error("{0}")]
    StoreEndpoints(std::io::Error),
    /// `--target` is not `HOST:PORT`, or its host does not resolve.
    #[error("--target {target}: expected HOST:PORT")]
    BadTarget {
        /// The `--target` given.
        target: String,
        /// Why it did not resolve.
        #[source]
        source: std::io::Error,
    },
    /// `--target` resolved to no address.
    #[error("--target {0}: no address")]
    NoAddress(String),
    /// The deployment CA certificate (`ca.pem`) could not be read.
    #[error("the deployment CA (ca.pem in --cert-dir)")]
    Ca(#[source] CredentialsError),
    /// The caller's certificate or key could not be read.
    #[error("caller credentials in {}", dir.display())]
    Credentials {
        /// The `--cert-dir` (or the demo caller's directory).
        dir: PathBuf,
        /// What is wrong with the files.
        #[source]
        source: CredentialsError,
    },
    /// Nothing answered at the address within the time allowed: most
    /// often no `sigil serve` is running there.
    #[error("no answer from {target} within {}s: is `sigil serve` running?{}", within.as_secs_f64(), see(endpoints.as_deref()))]
    NoAnswer {
        /// The node's address.
        target: SocketAddr,
        /// How long the client waited.
        within: Duration,
        /// The endpoints file the address came from (none with
        /// `--target`), for the hint.
        endpoints: Option<PathBuf>,
    },
    /// The node could not be reached, or the handshake failed.
    #[error("connecting to {target} as {server_name}")]
    Connect {
        /// The node's address.
        target: SocketAddr,
        /// The name its certificate was checked against.
        server_name: String,
        /// What failed.
        #[source]
        source: CallError,
    },
}

/// The end of [`TargetError::NoAnswer`]'s message: where the address came
/// from, when it was not `--target`.
fn see(endpoints: Option<&Path>) -> String {
    endpoints.map_or_else(String::new, |path| format!(" (see {})", path.display()))
}

/// Where a running embedded node can be reached, written by `sigil serve`
/// into `{data_dir}/endpoints.json` so that `sigil client` and `sigil-perf`
/// find it without flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// The QUIC API address.
    pub quic: SocketAddr,
    /// The HTTP address.
    pub http: SocketAddr,
    /// The name in the node's certificate to verify against.
    pub server_name: String,
    /// The control-plane base URL (SCIM under `{control_url}/t/{tenant}/scim/v2`);
    /// absent in files written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_url: Option<String>,
}

impl Endpoints {
    /// The file under `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("endpoints.json")
    }

    /// Reads `{data_dir}/endpoints.json`.
    ///
    /// # Errors
    /// [`TargetError::NoEndpoints`] when missing (no `sigil serve` has run
    /// there), [`TargetError::MalformedEndpoints`] when not its JSON.
    pub fn load(data_dir: &Path) -> Result<Endpoints, TargetError> {
        let path = Endpoints::path(data_dir);
        let text =
            std::fs::read(&path).map_err(|cause| TargetError::NoEndpoints { path, cause })?;
        serde_json::from_slice(&text).map_err(TargetError::MalformedEndpoints)
    }

    /// Writes `{data_dir}/endpoints.json`.
    ///
    /// # Errors
    /// [`TargetError::StoreEndpoints`] when the file cannot be written.
    pub fn store(&self, data_dir: &Path) -> Result<(), TargetError> {
        let json = serde_json::to_vec_pretty(self).map_err(TargetError::MalformedEndpoints)?;
        std::fs::write(Endpoints::path(data_dir), json).map_err(TargetError::StoreEndpoints)
    }
}

/// Where the embedded default keeps the credentials of its caller `who`
/// (`frontend`, `admin`, `node-{name}`, ...).
pub fn credentials_dir(data_dir: &Path, who: &str) -> PathBuf {
    data_dir.join("credentials").join(who)
}

/// How to reach the node and as whom: the client flags, unresolved.
#[derive(Debug, Clone)]
pub struct Target {
    /// `HOST:PORT` of the QUIC API; default from `{data_dir}/endpoints.json`.
    pub target: Option<String>,
    /// A directory as written by `sigil admin frontend add --out DIR`
    /// (cert.pem, key.pem, ca.pem); default: the demo front end's.
    pub cert_dir: Option<PathBuf>,
    /// The embedded default's state directory.
    pub data_dir: PathBuf,
    /// The name to verify in the node's certificate; default: from
    /// endpoints.json, else the target's host.
    pub server_name: Option<String>,
    /// Connect without a client certificate (to see `unauthenticated`).
    pub anonymous: bool,
}

impl Target {
    /// Resolves the address, credentials and CA, and connects with
    /// `streams` streams.
    ///
    /// # Errors
    /// As [`Target::client_config`], and [`TargetError::Connect`] when the
    /// connection fails.
    pub async fn connect(&self, streams: usize) -> Result<Client, TargetError> {
        let config = self.client_config(streams)?;
        let (target, server_name) = (config.target, config.server_name.clone());
        Client::connect(config)
            .await
            .map_err(|source| TargetError::Connect {
                target,
                server_name,
                source,
            })
    }

    /// As [`Target::connect`], but gives up when the node has not
    /// answered within `within` (a missing node otherwise costs the QUIC
    /// idle timeout, 30 s).
    ///
    /// # Errors
    /// As [`Target::connect`], and [`TargetError::NoAnswer`] when the
    /// time runs out.
    pub async fn connect_within(
        &self,
        streams: usize,
        within: Duration,
    ) -> Result<Client, TargetError> {
        let config = self.client_config(streams)?;
        let (target, server_name) = (config.target, config.server_name.clone());
        match tokio::time::timeout(within, Client::connect(config)).await {
            Ok(connected) => connected.map_err(|source| TargetError::Connect {
                target,
                server_name,
                source,
            }),
            Err(_elapsed) => Err(TargetError::NoAnswer {
                target,
                within,
                endpoints: self
                    .target
                    .is_none()
                    .then(|| Endpoints::path(&self.data_dir)),
            }),
        }
    }

    /// The client configuration this target resolves to, without
    /// connecting.
    ///
    /// # Errors
    /// When nothing says where the node is ([`TargetError::NoEndpoints`]),
    /// `--target` does not resolve, or the CA or the caller's credentials
    /// cannot be read.
    pub fn client_config(&self, streams: usize) -> Result<ClientConfig, TargetError> {
        let (target, server_name) = self.address()?;
        let cert_dir = self
            .cert_dir
            .clone()
            .unwrap_or_else(|| credentials_dir(&self.data_dir, "frontend"));
        let ca = load_ca_certificate(&cert_dir.join("ca.pem")).map_err(TargetError::Ca)?;
        let identity = if self.anonymous {
            None
        } else {
            Some(
                Credentials::load(&cert_dir).map_err(|source| TargetError::Credentials {
                    dir: cert_dir.clone(),
                    source,
                })?,
            )
        };
        Ok(ClientConfig {
            target,
            server_name,
            ca,
            identity,
            streams,
            ack_threshold: crate::tls::ACK_THRESHOLD,
        })
    }

    /// The node's address and the name to check its certificate against:
    /// `--target` and its host, else endpoints.json; `--server-name` wins.
    fn address(&self) -> Result<(SocketAddr, String), TargetError> {
        let (address, default_name) = match &self.target {
            Some(text) => {
                let host = text
                    .rsplit_once(':')
                    .map_or(text.as_str(), |(h, _)| h)
                    .trim_matches(['[', ']']);
                (resolve(text)?, host.to_owned())
            }
            None => {
                let endpoints = Endpoints::load(&self.data_dir)?;
                (endpoints.quic, endpoints.server_name)
            }
        };
        Ok((address, self.server_name.clone().unwrap_or(default_name)))
    }
}

fn resolve(text: &str) -> Result<SocketAddr, TargetError> {
    use std::net::ToSocketAddrs;
    text.to_socket_addrs()
        .map_err(|source| TargetError::BadTarget {
            target: text.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| TargetError::NoAddress(text.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Every message of the chain, as `sigil` prints an error (`{:#}`).
    fn chain(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut next = error.source();
        while let Some(cause) = next {
            text.push_str(&format!(": {cause}"));
            next = cause.source();
        }
        text
    }

    fn target(data_dir: &Path) -> Target {
        Target {
            target: None,
            cert_dir: None,
            data_dir: data_dir.to_owned(),
            server_name: None,
            anonymous: false,
        }
    }

    #[test]
    fn endpoints_round_trip_through_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let endpoints = Endpoints {
            quic: "127.0.0.1:4433".parse().unwrap(),
            http: "127.0.0.1:8080".parse().unwrap(),
            server_name: "localhost".into(),
            control_url: None,
        };
        endpoints.store(dir.path()).unwrap();
        assert_eq!(Endpoints::load(dir.path()).unwrap(), endpoints);
        assert_eq!(
            target(dir.path()).address().unwrap(),
            (endpoints.quic, "localhost".to_owned())
        );
    }

    #[test]
    fn without_a_running_appliance_the_error_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let error = target(dir.path()).client_config(1).unwrap_err();
        assert!(matches!(error, TargetError::NoEndpoints { .. }), "{error}");
        let text = chain(&error);
        assert!(text.starts_with(&format!("{}: ", Endpoints::path(dir.path()).display())));
        assert!(
            text.ends_with(
                "; start the appliance with `sigil serve` first, or pass --target and --cert-dir"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_server_name_is_the_targets_host_unless_given() {
        let dir = tempfile::tempdir().unwrap();
        let mut explicit = Target {
            target: Some("[::1]:4433".into()),
            ..target(dir.path())
        };
        assert_eq!(
            explicit.address().unwrap(),
            ("[::1]:4433".parse().unwrap(), "::1".to_owned())
        );
        explicit.server_name = Some("node-1.example".into());
        assert_eq!(explicit.address().unwrap().1, "node-1.example");
    }

    #[test]
    fn no_answer_in_time_says_where_the_address_came_from() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert_dir = dir.path().join("caller");
        let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap();
        let caller = rcgen::generate_simple_self_signed(vec!["caller".into()]).unwrap();
        Credentials {
            certificate_pem: caller.cert.pem(),
            key_pem: caller.signing_key.serialize_pem(),
        }
        .write(&cert_dir, Some(&ca.cert.pem()))
        .unwrap();
        // A bound UDP socket that never answers: the handshake waits.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = silent.local_addr().unwrap();
        let endpoints = Endpoints {
            quic: address,
            http: "127.0.0.1:8080".parse().unwrap(),
            server_name: "localhost".into(),
            control_url: None,
        };
        endpoints.store(dir.path()).unwrap();
        let from_file = Target {
            cert_dir: Some(cert_dir.clone()),
            ..target(dir.path())
        };
        let within = Duration::from_millis(200);
        let error = runtime
            .block_on(from_file.connect_within(1, within))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "no answer from {address} within 0.2s: is `sigil serve` running? (see {})",
                Endpoints::path(dir.path()).display()
            )
        );
        let explicit = Target {
            target: Some(address.to_string()),
            ..from_file
        };
        let error = runtime
            .block_on(explicit.connect_within(1, within))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("no answer from {address} within 0.2s: is `sigil serve` running?")
        );
    }

    #[test]
    fn a_bad_target_names_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let error = Target {
            target: Some("no-port".into()),
            ..target(dir.path())
        }
        .client_config(1)
        .unwrap_err();
        assert!(
            chain(&error).starts_with("--target no-port: expected HOST:PORT: "),
            "{}",
            chain(&error)
        );
    }

    #[test]
    fn missing_credentials_name_the_file_and_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let with_target = Target {
            target: Some("127.0.0.1:4433".into()),
            ..target(dir.path())
        };
        let error = with_target.client_config(1).unwrap_err();
        let ca = credentials_dir(dir.path(), "frontend").join("ca.pem");
        assert!(
            chain(&error).starts_with(&format!(
                "the deployment CA (ca.pem in --cert-dir): {}: ",
                ca.display()
            )),
            "{}",
            chain(&error)
        );
    }

    #[test]
    fn a_resolved_target_carries_the_ca_and_the_callers_identity() {
        let dir = tempfile::tempdir().unwrap();
        let cert_dir = dir.path().join("caller");
        let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap();
        let caller = rcgen::generate_simple_self_signed(vec!["caller".into()]).unwrap();
        let credentials = Credentials {
            certificate_pem: caller.cert.pem(),
            key_pem: caller.signing_key.serialize_pem(),
        };
        credentials.write(&cert_dir, Some(&ca.cert.pem())).unwrap();
        let mut resolved = Target {
            target: Some("127.0.0.1:4433".into()),
            cert_dir: Some(cert_dir.clone()),
            ..target(dir.path())
        };
        let config = resolved.client_config(3).unwrap();
        assert_eq!(config.target, "127.0.0.1:4433".parse().unwrap());
        assert_eq!(config.server_name, "127.0.0.1");
        assert_eq!(config.ca, *ca.cert.der());
        assert_eq!(config.streams, 3);
        assert_eq!(
            config.identity.map(|i| i.fingerprint()),
            Some(credentials.fingerprint())
        );
        resolved.anonymous = true;
        assert!(resolved.client_config(1).unwrap().identity.is_none());
        // Credentials without their key: the message names the directory.
        std::fs::remove_file(cert_dir.join("key.pem")).unwrap();
        resolved.anonymous = false;
        let error = resolved.client_config(1).unwrap_err();
        assert!(
            chain(&error).starts_with(&format!("caller credentials in {}: ", cert_dir.display())),
            "{}",
            chain(&error)
        );
    }
}
