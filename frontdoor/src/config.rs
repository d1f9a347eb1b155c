//! The configuration of a node: a TOML file (every key, with its default,
//! in docs/config.md), or nothing at all for the embedded default. Unknown
//! keys are an error: a typo must not silently fall back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a configuration is not usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    // `cause`, not `source`: the message already prints it, and a `source`
    // would print it a second time in an error chain.
    #[error("{path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("configuration: {0}")]
    Invalid(String),
}

/// A node's whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the node keeps its state: master key, CA and certificates,
    /// the private Postgres cluster, the audit journal.
    pub data_dir: PathBuf,
    /// This node's name (in the cluster, in audit records, in metrics).
    pub node: String,
    /// Listen addresses.
    pub listen: Listen,
    /// The directory database.
    pub postgres: Postgres,
    /// Where signing keys live.
    pub keys: Keys,
    /// An HSM through PKCS#11; absent: software keys (AWS-LC).
    pub hsm: Option<HsmSettings>,
    /// Session replication between nodes.
    pub cluster: Cluster,
    /// Admission control and worker limits.
    pub limits: AdmissionLimits,
    /// Audit shipping and signed chain heads.
    pub audit: Audit,
    /// Slow signatures (HSM, RSA): the signer pool.
    pub signing: Signing,
    /// Loading tenants and keeping them in memory.
    pub tenants: Tenants,
    /// Back-channel logout deliveries (issue 19).
    pub logout: crate::api::logout::LogoutSettings,
    /// Password hashing and sign-in throttling (issue 18).
    pub auth: Auth,
}

/// Password hashing on its own bounded pool, and per-address throttling of
/// failed sign-ins (issue 18).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Threads hashing passwords, never the QUIC workers'.
    pub pool_threads: usize,
    /// Hashing jobs that may wait beyond those running; one more is
    /// answered `overloaded` at once.
    pub queue: usize,
    /// The nice value (0-19) of the hashing threads: above 0 they yield
    /// the cores to the QUIC workers when both want them.
    pub pool_nice: i32,
    /// Failed sign-ins one client address may make in a tenant at once
    /// (per node) before `rate_limited`.
    pub ip_failures_burst: u32,
    /// Failed sign-ins an address regains per minute.
    pub ip_failures_per_minute: u32,
}

impl Default for Auth {
    fn default() -> Auth {
        Auth {
            pool_threads: 1,
            queue: 64,
            pool_nice: 0,
            ip_failures_burst: 20,
            ip_failures_per_minute: 20,
        }
    }
}

impl Auth {
    /// The appliance's settings from these.
    pub fn settings(&self) -> crate::api::AuthConfig {
        crate::api::AuthConfig {
            pool: crate::auth::pool::PoolSize {
                threads: self.pool_threads,
                queue: self.queue,
                nice: self.pool_nice,
            },
            throttle: crate::auth::throttle::ThrottleSettings {
                burst: self.ip_failures_burst,
                per_minute: self.ip_failures_per_minute,
            },
        }
    }
}

/// Listen addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    /// The QUIC API for SSO front ends (`sigil/1`).
    pub quic: SocketAddr,
    /// HTTP for SPs and operators (JWKS, metadata, discovery, metrics).
    pub http: SocketAddr,
    /// The public base URL SPs see as the issuer prefix; empty:
    /// `http://{http}` (`https://` with `https`).
    pub public_url: String,
    /// Serve the HTTP endpoints over TLS, with the node's certificate from
    /// the deployment CA (the control listener too).
    pub https: bool,
    /// The control-plane HTTP listener (SCIM provisioning); port 0: any
    /// free port.
    pub control_listen: SocketAddr,
    /// The control plane's public base URL; empty: `http://{control_listen}`
    /// (`https://` with `https`).
    pub control_public_url: String,
}

/// The directory database.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Postgres {
    /// A `postgres://` URL logging in as the run-time role (`sigil_app`,
    /// which owns nothing); empty: the embedded default, a private cluster
    /// under `{data_dir}/postgres`, created and started by the node, with
    /// demo data.
    pub url: String,
    /// A `postgres://` URL logging in as the owner of the schema: used to
    /// migrate at start and by `sigil admin` commands, never for serving.
    /// Empty: the node does not migrate (the schema must be current).
    pub owner_url: String,
}

/// Key policy defaults for tenants that set none.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Keys {
    /// Days a key signs before the next one takes over.
    pub rotation_days: u64,
    /// Hours a new key is published before it signs.
    pub prepublish_hours: u64,
    /// Hours a retired key stays published (at least the longest token
    /// lifetime).
    pub retire_grace_hours: u64,
}

/// The `[hsm]` table: which PKCS#11 module and token hold the keys, and
/// how to log in (the open token itself is [`hw::Hsm`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmSettings {
    /// Path of the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so.
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// A file holding the user PIN (mode 0600).
    pub pin_file: Option<PathBuf>,
    /// An environment variable holding the user PIN.
    pub pin_env: Option<String>,
    /// Sessions kept open with the token.
    #[serde(default = "default_hsm_sessions")]
    pub sessions: usize,
    /// Make keys of algorithms the token cannot make (e.g. EdDSA on an HSM
    /// without Ed25519) in software, wrapped by the master key. Off: such an
    /// app makes the node refuse to start, naming the algorithm.
    #[serde(default)]
    pub software_fallback: bool,
}

fn default_hsm_sessions() -> usize {
    4
}

/// Session replication.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cluster {
    /// Where this node listens for its peers (QUIC, mutual TLS).
    pub listen: SocketAddr,
    /// The other nodes: `name=host:port` of their cluster listeners.
    pub peers: Vec<String>,
    /// Lease length in milliseconds: how long a node cut off from a
    /// majority keeps checking sessions, and how long a revoke may wait
    /// for a dead peer.
    pub lease_ms: u64,
    /// Seconds between snapshots of the sessions on disk (a graceful stop
    /// takes one too; after a crash, idle clocks restart from the last).
    pub snapshot_secs: u64,
}

/// The `[limits]` table: admission control and worker counts (the HTTP
/// listener's per-client limits are [`crate::http::HttpLimits`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionLimits {
    /// Worker threads (QUIC and HTTP each); 0: one per core.
    pub workers: usize,
    /// Whether a QUIC worker hands requests to a less loaded worker, so
    /// that every core works however the connections hash.
    pub share_work: bool,
    /// The ACK-eliciting threshold the node asks its QUIC callers for:
    /// packets they may receive before they must acknowledge at once
    /// (their next request carries the ACK otherwise); 0 or 1: QUIC's
    /// default, an ACK for every second packet.
    pub quic_ack_threshold: u32,
    /// Requests in flight on the node; more are answered `overloaded`.
    pub max_in_flight: usize,
    /// Admitted requests the QUIC workers have not yet started; more are
    /// answered `overloaded` (keeps refusals fast under overload).
    pub max_queued: usize,
    /// Requests per second for a tenant whose directory entry sets no budget.
    pub default_tenant_rate: u32,
    /// Seconds a frame may stay incomplete before its stream is closed.
    pub frame_timeout_secs: u64,
    /// HTTP connections open at once on the node (also bounded by the
    /// file-descriptor limit less a reserve); past it the longest-idle
    /// connection is closed, or the new one refused when none is idle.
    pub http_connections: usize,
}

/// Audit shipping and signed chain heads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Audit {
    /// `/readyz` answers 503 while the oldest record not yet in Postgres
    /// is older than this many seconds (a shipper stuck, e.g. Postgres
    /// down).
    pub max_ship_lag_secs: u64,
    /// The node signs its chain heads at least this often (seconds), when
    /// they moved.
    pub head_interval_secs: u64,
    /// The journal's live segment is sealed once its records reach this
    /// many bytes; sealed segments shipped and covered by a signed head in
    /// Postgres are dropped (0: never cut).
    pub segment_bytes: u64,
    /// Sealed segments are moved here instead of being removed (relative:
    /// to `data_dir`).
    pub archive_dir: Option<PathBuf>,
}

/// Slow signatures: HSM keys and RSA in software are signed on the signer
/// pool's threads, never on an I/O worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Signing {
    /// Signing threads; 0: the HSM's `sessions` with `[hsm]`, else one per
    /// core.
    pub pool_threads: usize,
    /// A slow signature not done within this many milliseconds is answered
    /// `unavailable`.
    pub deadline_ms: u64,
}

/// Loading tenants and keeping them in memory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tenants {
    /// Milliseconds a document request waits for its tenant to load before
    /// it is answered 503 with `Retry-After: 1`.
    pub load_wait_ms: u64,
    /// Tenants kept in memory; past it the least recently used are evicted.
    pub max_loaded: usize,
    /// Tenant loads running at once.
    pub max_loading: usize,
    /// Loads waiting for a slot; more are refused at once.
    pub max_queued: usize,
    /// Recently served tenants loaded before the node listens (the rest of
    /// the recently-served file loads in the background).
    pub preload_before_listening: usize,
}

impl Default for Tenants {
    fn default() -> Tenants {
        let settings = crate::api::loading::TenantSettings::default();
        Tenants {
            load_wait_ms: 2_000,
            max_loaded: settings.max_loaded,
            max_loading: settings.max_loading,
            max_queued: settings.max_queued,
            preload_before_listening: 1_000,
        }
    }
}

impl Tenants {
    /// The loader's settings.
    pub fn settings(&self) -> crate::api::loading::TenantSettings {
        crate::api::loading::TenantSettings {
            max_loaded: self.max_loaded,
            max_loading: self.max_loading,
            max_queued: self.max_queued,
            ..crate::api::loading::TenantSettings::default()
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: PathBuf::from("./var"),
            node: "node-1".into(),
            listen: Listen::default(),
            postgres: Postgres::default(),
            keys: Keys::default(),
            hsm: None,
            cluster: Cluster::default(),
            limits: AdmissionLimits::default(),
            tenants: Tenants::default(),
            audit: Audit::default(),
            signing: Signing::default(),
            logout: crate::api::logout::LogoutSettings::default(),
            auth: Auth::default(),
        }
    }
}

impl Default for Audit {
    fn default() -> Audit {
        Audit {
            max_ship_lag_secs: 60,
            head_interval_secs: 10,
            segment_bytes: directory::audit::DEFAULT_SEGMENT_BYTES,
            archive_dir: None,
        }
    }
}

impl Default for Signing {
    fn default() -> Signing {
        Signing {
            pool_threads: 0,
            deadline_ms: 1_000,
        }
    }
}

impl Default for Listen {
    fn default() -> Listen {
        Listen {
            quic: SocketAddr::from(([127, 0, 0, 1], 4433)),
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: String::new(),
            https: false,
            control_listen: SocketAddr::from(([127, 0, 0, 1], 8444)),
            control_public_url: String::new(),
        }
    }
}

impl Default for Keys {
    fn default() -> Keys {
        Keys {
            rotation_days: 30,
            prepublish_hours: 24,
            retire_grace_hours: 24,
        }
    }
}

impl Default for Cluster {
    fn default() -> Cluster {
        Cluster {
            listen: SocketAddr::from(([127, 0, 0, 1], 4434)),
            peers: Vec::new(),
            lease_ms: 2_000,
            snapshot_secs: 300,
        }
    }
}

impl Default for AdmissionLimits {
    fn default() -> AdmissionLimits {
        AdmissionLimits {
            workers: 0,
            share_work: true,
            quic_ack_threshold: sigil_proto::tls::ACK_THRESHOLD,
            max_in_flight: crate::quic::server::DEFAULT_MAX_IN_FLIGHT,
            max_queued: crate::quic::server::DEFAULT_MAX_QUEUED,
            default_tenant_rate: 100_000,
            frame_timeout_secs: 10,
            http_connections: 4_096,
        }
    }
}

impl Config {
    /// Reads and checks a TOML file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and what is wrong.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_owned(),
            cause,
        })?;
        Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and checks TOML text.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] or [`ConfigError::Invalid`].
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<config>"),
            message: e.to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    /// Checks ranges and consistency.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] saying which value is wrong.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.into()));
        if self.node.is_empty()
            || self.node.len() > 64
            || !self
                .node
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return invalid("node: 1 to 64 of [A-Za-z0-9_-]");
        }
        if self.keys.rotation_days == 0 {
            return invalid("keys.rotation_days must be at least 1");
        }
        if self.keys.retire_grace_hours == 0 {
            return invalid(
                "keys.retire_grace_hours must be at least 1 (tokens live up to an hour)",
            );
        }
        if self.cluster.lease_ms < 100 {
            return invalid("cluster.lease_ms must be at least 100");
        }
        if self.cluster.snapshot_secs == 0 {
            return invalid("cluster.snapshot_secs must be at least 1");
        }
        for peer in &self.cluster.peers {
            parse_peer(peer)?;
        }
        if self.limits.max_in_flight == 0
            || self.limits.max_queued == 0
            || self.limits.default_tenant_rate == 0
            || self.limits.frame_timeout_secs == 0
        {
            return invalid("limits: max_in_flight, max_queued, default_tenant_rate and frame_timeout_secs must be positive");
        }
        if self.tenants.max_loaded == 0 || self.tenants.max_loading == 0 {
            return invalid("tenants: max_loaded and max_loading must be positive");
        }
        if self.tenants.load_wait_ms > 60_000 {
            return invalid("tenants.load_wait_ms: at most 60000 (SPs time out long before)");
        }
        if let Some(hsm) = &self.hsm {
            if hsm.pin_file.is_none() == hsm.pin_env.is_none() {
                return invalid("hsm: exactly one of pin_file and pin_env");
            }
        }
        if self.limits.http_connections == 0 {
            return invalid("limits.http_connections must be positive");
        }
        if self.audit.max_ship_lag_secs == 0 || self.audit.head_interval_secs == 0 {
            return invalid("audit: max_ship_lag_secs and head_interval_secs must be positive");
        }
        if self.audit.segment_bytes != 0 && self.audit.segment_bytes < 65_536 {
            return invalid("audit.segment_bytes: 0 (never cut) or at least 65536");
        }
        if self.signing.deadline_ms == 0 {
            return invalid("signing.deadline_ms must be positive");
        }
        if self.auth.pool_threads == 0 || self.auth.queue == 0 {
            return invalid("auth: pool_threads and queue must be positive");
        }
        if !(0..=19).contains(&self.auth.pool_nice) {
            return invalid("auth.pool_nice must be within 0-19");
        }
        if self.postgres.url.is_empty() && !self.postgres.owner_url.is_empty() {
            return invalid(
                "postgres.owner_url needs postgres.url (the embedded default has its own)",
            );
        }
        Ok(())
    }

    /// Whether this is the embedded default: a private Postgres under the
    /// data directory, with demo tenants and demo callers. A configuration
    /// with `[postgres] url` is a production node: it creates nothing but
    /// its schema.
    pub fn embedded(&self) -> bool {
        self.postgres.url.is_empty()
    }

    /// Signing threads for slow signatures.
    pub fn signing_threads(&self) -> usize {
        match (self.signing.pool_threads, &self.hsm) {
            (0, Some(hsm)) => hsm.sessions.max(1),
            (0, None) => std::thread::available_parallelism().map_or(1, |n| n.get()),
            (n, _) => n,
        }
    }

    /// The number of workers to run.
    pub fn workers(&self) -> usize {
        match self.limits.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// The issuer prefix SPs see: `{public_url}` or `http://{listen.http}`.
    pub fn public_url(&self) -> String {
        if self.listen.public_url.is_empty() {
            let scheme = if self.listen.https { "https" } else { "http" };
            format!("{scheme}://{}", self.listen.http)
        } else {
            self.listen.public_url.trim_end_matches('/').to_owned()
        }
    }
}

impl Config {
    /// The control plane's base URL: `{control_public_url}` or
    /// `http(s)://{bound}` (the address the listener got).
    pub fn control_public_url(&self, bound: SocketAddr) -> String {
        if self.listen.control_public_url.is_empty() {
            let scheme = if self.listen.https { "https" } else { "http" };
            format!("{scheme}://{bound}")
        } else {
            self.listen
                .control_public_url
                .trim_end_matches('/')
                .to_owned()
        }
    }
}

/// Parses a peer `name=host:port`.
///
/// # Errors
/// [`ConfigError::Invalid`] when it is not of that form.
pub fn parse_peer(peer: &str) -> Result<(String, SocketAddr), ConfigError> {
    let (name, address) = peer
        .split_once('=')
        .ok_or_else(|| ConfigError::Invalid(format!("peer `{peer}`: expected name=host:port")))?;
    let address = address
        .parse()
        .map_err(|e| ConfigError::Invalid(format!("peer `{peer}`: {e}")))?;
    if name.is_empty() {
        return Err(ConfigError::Invalid(format!("peer `{peer}`: empty name")));
    }
    Ok((name.to_owned(), address))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn empty_file_is_the_embedded_default() {
        let config = Config::parse("").unwrap();
        assert_eq!(config.listen.quic.to_string(), "127.0.0.1:4433");
        assert_eq!(config.listen.http.to_string(), "127.0.0.1:8080");
        assert_eq!(config.public_url(), "http://127.0.0.1:8080");
        assert!(config.postgres.url.is_empty() && config.hsm.is_none());
    }

    #[test]
    fn the_documented_example_parses() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/config.md"))
                .unwrap();
        let example = text
            .split("```toml")
            .nth(1)
            .unwrap()
            .split("```")
            .next()
            .unwrap();
        let config = Config::parse(example).unwrap();
        let default = Config::default();
        assert_eq!(config.listen.quic, default.listen.quic);
        assert_eq!(
            (
                config.auth.pool_threads,
                config.auth.queue,
                config.auth.pool_nice
            ),
            (
                default.auth.pool_threads,
                default.auth.queue,
                default.auth.pool_nice
            )
        );
        assert_eq!(
            (
                config.auth.ip_failures_burst,
                config.auth.ip_failures_per_minute
            ),
            (
                default.auth.ip_failures_burst,
                default.auth.ip_failures_per_minute
            )
        );
        assert_eq!(config.cluster.lease_ms, default.cluster.lease_ms);
        assert_eq!(config.limits.max_in_flight, default.limits.max_in_flight);
        assert_eq!(config.limits.max_queued, default.limits.max_queued);
        assert_eq!(config.keys.rotation_days, default.keys.rotation_days);
        assert_eq!(
            config.limits.http_connections,
            default.limits.http_connections
        );
        assert_eq!(
            config.audit.max_ship_lag_secs,
            default.audit.max_ship_lag_secs
        );
        assert_eq!(config.signing.deadline_ms, default.signing.deadline_ms);
        assert!(config.embedded());
        assert_eq!(config.tenants.load_wait_ms, default.tenants.load_wait_ms);
        assert_eq!(config.tenants.max_loaded, default.tenants.max_loaded);
        assert_eq!(config.tenants.max_loading, default.tenants.max_loading);
        assert_eq!(config.tenants.max_queued, default.tenants.max_queued);
        assert_eq!(
            config.tenants.preload_before_listening,
            default.tenants.preload_before_listening
        );
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        assert!(matches!(
            Config::parse("[listen]\nquick = \"1.2.3.4:1\""),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            Config::parse("[cluster]\npeers = [\"nonsense\"]"),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            // Signing is on the worker, always (docs/BENCHMARKING.md,
            // "inline or pool"): the key is unknown.
            Config::parse("[keys]\nsigning = \"pool\""),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            Config::parse("[tenants]\nmax_loaded = 0"),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            Config::parse("[tenants]\nload_wait = 5"),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            Config::parse("[hsm]\nmodule = \"/x.so\"\ntoken_label = \"t\""),
            Err(ConfigError::Invalid(_))
        ));
    }
}
