//! `sigil serve`: one node. With no configuration it runs the embedded
//! default under `./var/`: on first run it creates the master key, a local
//! CA with the node's certificate and the demo callers' certificates, a
//! private Postgres with the demo tenants, and keys for them; later runs
//! reuse all of it. Given a database (`[postgres] url`), it creates nothing
//! but its schema (with `owner_url`), its CA and its own certificate: no
//! tenant, no caller; the first admin comes from `sigil admin bootstrap`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use directory::audit::{AuditJournal, JournalOptions, Shipper};
use directory::{Directory, PrivateCluster};
use signer::{KeyBackend, MasterKey, SoftwareBackend};

use super::audit::Shipping;
use super::postgres::{open_node_directory, StartedCluster};
use super::recent::{preload_tenants, spawn_preload, write_recent};
use super::Layout;
use crate::api::keys::{Backends, KeyManager};
use crate::api::{Appliance, ApplianceConfig};
use crate::audit_heads::NodeHeadSigner;
use crate::config::Config;
use crate::http::documents::DocumentStore;
use crate::http::exchange::{HttpLimits, Site};
use crate::http::server::{HttpConfig, HttpServer};
use crate::pki::DeploymentCa;
use crate::quic::{tls, QuicConfig, QuicLimits, QuicServer};
use sigil_proto::credentials::Credentials;
use sigil_proto::target::{credentials_dir, Endpoints};

/// How often the recently-served file is written (and once at shutdown).
const RECENT_WRITE_EVERY: Duration = Duration::from_secs(30);

/// The node's key backends: software keys wrapped by the master key, and
/// with `[hsm]` the token, which then makes every new key (software only
/// for what the token cannot make, and only with `software_fallback`).
fn key_backends(config: &Config, master: Arc<MasterKey>) -> anyhow::Result<Arc<dyn KeyBackend>> {
    let software: Arc<dyn KeyBackend> = Arc::new(SoftwareBackend::new(master));
    let Some(hsm) = &config.hsm else {
        return Ok(Arc::new(Backends::new(software, None, Vec::new())));
    };
    let pin = match (&hsm.pin_file, &hsm.pin_env) {
        (Some(file), _) => hw::PinSource::File(file.clone()),
        (None, Some(variable)) => hw::PinSource::Env(variable.clone()),
        (None, None) => anyhow::bail!("hsm: exactly one of pin_file and pin_env"),
    };
    let mut hsm_config = hw::HsmConfig::new(&hsm.module, &hsm.token_label, pin);
    hsm_config.sessions = hsm.sessions;
    let token = hw::Hsm::open(&hsm_config).with_context(|| {
        format!(
            "hsm: token {:?} in {}",
            hsm.token_label,
            hsm.module.display()
        )
    })?;
    let pkcs11: Arc<dyn KeyBackend> = Arc::new(hw::Pkcs11Backend::new(token));
    let backends = if hsm.software_fallback {
        Backends::new(pkcs11, Some(software), Vec::new())
    } else {
        // Software keys made before the HSM was configured still load (and
        // rotate out); no new key is made in software.
        Backends::new(pkcs11, None, vec![software])
    };
    eprintln!(
        "sigil: keys in HSM token {:?} ({backends:?})",
        hsm.token_label
    );
    Ok(Arc::new(backends))
}

fn secret_file(path: &Path) -> anyhow::Result<[u8; 32]> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if path.exists() {
        let mode = std::fs::metadata(path)?.permissions().mode();
        anyhow::ensure!(
            mode & 0o077 == 0,
            "{}: readable by others; chmod 600 it",
            path.display()
        );
        let bytes = std::fs::read(path)?;
        return bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{}: not 32 bytes", path.display()));
    }
    let mut secret = [0u8; 32];
    aws_lc_rs::rand::fill(&mut secret).map_err(|_| anyhow::anyhow!("random generator failed"))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(&secret)?;
    file.sync_all()?;
    Ok(secret)
}

/// Creates (first run) or loads the deployment's certificates: the CA, the
/// node's, and in the embedded default (`demo_callers`) the demo front
/// end's and admin's. Returns the node's.
///
/// # Errors
/// When files cannot be read or written.
pub fn ensure_certificates(
    layout: &Layout,
    node: &str,
    quic: SocketAddr,
    demo_callers: bool,
) -> anyhow::Result<(DeploymentCa, Credentials)> {
    let ca = DeploymentCa::create_or_load(&layout.ca())?;
    let node_dir = credentials_dir(&layout.root, &format!("node-{node}"));
    let node_credentials = match Credentials::load(&node_dir) {
        Ok(credentials) => credentials,
        Err(_) => {
            let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
            if !quic.ip().is_unspecified() && quic.ip().to_string() != "127.0.0.1" {
                names.push(quic.ip().to_string());
            }
            let credentials = ca.issue_node(node, &names)?;
            credentials.write(&node_dir, Some(ca.certificate_pem()))?;
            credentials
        }
    };
    for who in ["frontend", "admin"].into_iter().filter(|_| demo_callers) {
        let dir = credentials_dir(&layout.root, who);
        if Credentials::load(&dir).is_err() {
            ca.issue_client(&format!("demo-{who}"))?
                .write(&dir, Some(ca.certificate_pem()))?;
        }
    }
    Ok((ca, node_credentials))
}

/// A node of the appliance, started by [`start`]: its listeners, the
/// control runtime and what runs on it, until [`RunningNode::shutdown`].
/// (Its place in the session cluster is the replica's [`sessions::Node`].)
pub struct RunningNode {
    /// The appliance.
    pub appliance: Arc<Appliance>,
    /// QUIC listener.
    pub quic: QuicServer,
    /// HTTP listener.
    pub http: HttpServer,
    /// Control-plane HTTP listener (SCIM).
    pub control_http: crate::control::ControlServer,
    /// The private cluster, when embedded.
    pub cluster: Option<PrivateCluster>,
    /// The directory.
    pub directory: Arc<Directory>,
    shipping: Arc<Shipping>,
    layout: Layout,
    node: String,
    control: tokio::runtime::Runtime,
}

impl std::fmt::Debug for RunningNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningNode")
            .field("node", &self.appliance)
            .finish_non_exhaustive()
    }
}

/// Starts a node: everything but waiting for a signal.
///
/// # Errors
/// When any part cannot start; the message says which.
pub fn start(config: &Config) -> anyhow::Result<RunningNode> {
    let layout = Layout {
        root: config.data_dir.clone(),
    };
    crate::posture::restrict_new_files();
    check_listen_addresses(config)?;
    std::fs::create_dir_all(&layout.root).with_context(|| layout.root.display().to_string())?;
    let file_limit = crate::posture::raise_file_limit();
    let master = Arc::new(if layout.master_key().exists() {
        MasterKey::from_file(&layout.master_key())?
    } else {
        MasterKey::create_file(&layout.master_key())?
    });
    let name_id_secret = secret_file(&layout.name_id_secret())?;
    let (ca, node_credentials) =
        ensure_certificates(&layout, &config.node, config.listen.quic, config.embedded())?;
    // Everything in it is this account's, also what an older Sigil (or a
    // certificate written for handing out) left readable.
    let as_root = rustix::process::geteuid().is_root();
    crate::posture::close_data_dir(&layout.root, as_root && config.embedded())
        .with_context(|| format!("closing {} to other accounts", layout.root.display()))?;
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sigil-control")
        .enable_all()
        .build()?;
    let (directory, cluster) = control.block_on(open_node_directory(config, &layout))?;
    // A start that fails after this point stops the Postgres it started.
    let cluster = StartedCluster(cluster);
    let directory = Arc::new(directory);
    let keys = KeyManager::new(
        key_backends(config, Arc::clone(&master))?,
        &config.public_url(),
    );
    let journal = Arc::new(AuditJournal::open_with(
        &layout.journal(&config.node),
        &config.node,
        JournalOptions {
            segment_bytes: config.audit.segment_bytes,
        },
    )?);
    let documents = Arc::new(DocumentStore::new());
    let replica = {
        let _entered = control.enter();
        Arc::new(start_replica(config, &layout, config.workers())?)
    };
    let appliance = Appliance::new(
        ApplianceConfig {
            node: config.node.clone(),
            public_url: config.public_url(),
            default_tenant_rate: config.limits.default_tenant_rate,
            signing_threads: config.signing_threads(),
            signing_deadline: Duration::from_millis(config.signing.deadline_ms),
            tenants: config.tenants.settings(),
        },
        Arc::clone(&directory),
        keys,
        replica,
        Arc::clone(&journal),
        Arc::clone(&documents),
        name_id_secret,
        control.handle().clone(),
    )?;
    // Issue 18: password hashing on its own pool; TOTP secrets wrapped
    // under the master key, like software signing keys.
    appliance.start_authentication(
        crate::api::Authentication::start(config.auth.settings(), master)
            .context("password hashing pool")?,
    );
    let appliance = Arc::new(appliance);
    crate::api::logout::start(&appliance, control.handle(), config.logout.clone());
    let (changes, later) = preload_tenants(&control, &appliance, &directory, &layout, config)?;
    spawn_control_tasks(
        &control,
        changes,
        &appliance,
        &directory,
        &layout,
        &config.node,
    );
    let shipping = Shipping::new(
        Shipper::open(&layout.journal(&config.node)).bounded_by(&journal),
        Arc::clone(&directory),
        Arc::new(NodeHeadSigner::new(&node_credentials)?),
        &config.node,
        config
            .audit
            .archive_dir
            .as_ref()
            .map(|d| config.data_dir.join(d)),
    );
    shipping.spawn(
        &control,
        Duration::from_secs(config.audit.head_interval_secs),
    );
    let ready = readiness(&control, &appliance, config);
    let server_config = tls::server_config(
        vec![node_credentials.certificate_der()],
        node_credentials.key_der()?,
        &ca.certificate_der(),
        config.limits.quic_ack_threshold,
    )?;
    let mut quic_config = QuicConfig::new(config.listen.quic);
    quic_config.workers = config.workers();
    quic_config.share_work = config.limits.share_work;
    quic_config.limits = QuicLimits {
        max_in_flight: config.limits.max_in_flight,
        max_queued: config.limits.max_queued,
        frame_timeout: Duration::from_secs(config.limits.frame_timeout_secs),
        ..QuicLimits::default()
    };
    let quic = QuicServer::start(quic_config, server_config, Arc::clone(&appliance))
        .context("quic listener")?;
    let http_stats: Arc<std::sync::OnceLock<Arc<crate::http::server::HttpStats>>> = Arc::default();
    let http_cap = crate::posture::http_connection_cap(config.limits.http_connections, file_limit);
    let site = Arc::new(Site {
        documents,
        metrics: crate::metrics::node::node_renderer(
            Arc::clone(&appliance),
            Arc::clone(quic.stats()),
            Arc::clone(&http_stats),
            http_cap,
            file_limit,
        ),
        ready,
        on_miss: Some({
            let appliance = Arc::clone(&appliance);
            Arc::new(move |slug: &str| appliance.documents_miss(slug))
        }),
        oauth: Some(oauth_handler(&appliance, control.handle())),
    });
    let mut http_config = HttpConfig::new(config.listen.http);
    http_config.workers = config.workers();
    http_config.limits = HttpLimits {
        tenant_load_wait: Duration::from_millis(config.tenants.load_wait_ms),
        ..HttpLimits::default()
    };
    http_config.max_connections = http_cap;
    if config.listen.https {
        http_config.tls = Some(crate::http::server::tls_config(
            vec![node_credentials.certificate_der()],
            node_credentials.key_der()?,
        )?);
    }
    let http = HttpServer::start(http_config, site).context("http listener")?;
    let _ = http_stats.set(Arc::clone(http.stats()));
    let control_http = start_control(config, &appliance, &control, &node_credentials)?;
    spawn_preload(&control, &appliance, later, config);
    Endpoints {
        quic: quic.local_addr(),
        http: http.local_addr(),
        server_name: "localhost".into(),
        control_url: Some(config.control_public_url(control_http.local_addr())),
    }
    .store(&layout.root)?;
    Ok(RunningNode {
        appliance,
        quic,
        http,
        control_http,
        cluster: cluster.keep(),
        directory,
        shipping,
        layout,
        node: config.node.clone(),
        control,
    })
}

/// Starts the control-plane listener (SCIM) on the control runtime, over
/// TLS with the node's certificate when the node serves HTTPS.
fn start_control(
    config: &Config,
    appliance: &Arc<Appliance>,
    control: &tokio::runtime::Runtime,
    node_credentials: &Credentials,
) -> anyhow::Result<crate::control::ControlServer> {
    use crate::control::{types::Scim, ControlConfig, ControlServer};
    let listener = std::net::TcpListener::bind(config.listen.control_listen).with_context(|| {
        format!(
            "control (SCIM) port on {} cannot be bound; choose another with --control-listen (or listen.control_listen)",
            config.listen.control_listen
        )
    })?;
    let bound = listener.local_addr()?;
    let mut control_config = ControlConfig::new(config.control_public_url(bound));
    if config.listen.https {
        control_config.tls = Some(crate::http::server::tls_config(
            vec![node_credentials.certificate_der()],
            node_credentials.key_der()?,
        )?);
    }
    let scim = Arc::new(Scim {
        appliance: Arc::clone(appliance),
        public_url: control_config.public_url.clone(),
        max_body: control_config.max_body,
        request_timeout: control_config.request_timeout,
    });
    appliance.set_control_url(control_config.public_url.clone());
    ControlServer::start(control_config, listener, scim, control.handle())
        .context("control listener")
}

/// What `/readyz` says: the appliance serves sessions, and the audit
/// shipper is not stuck (the oldest record not in Postgres is younger than
/// `[audit] max_ship_lag_secs`). Kept fresh by a control task.
fn readiness(
    control: &tokio::runtime::Runtime,
    appliance: &Arc<Appliance>,
    config: &Config,
) -> Arc<AtomicBool> {
    let ready = Arc::new(AtomicBool::new(true));
    let (flag, appliance) = (Arc::clone(&ready), Arc::clone(appliance));
    let bound = Duration::from_secs(config.audit.max_ship_lag_secs);
    control.spawn(async move {
        loop {
            let now = crate::api::wall_ms();
            let shipping = appliance.journal().stats().ship_lag(now) <= bound;
            let serving = appliance.ready().load(Ordering::Acquire);
            flag.store(serving && shipping, Ordering::Release);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    ready
}

fn spawn_control_tasks(
    control: &tokio::runtime::Runtime,
    mut changes: tokio::sync::mpsc::UnboundedReceiver<directory::changes::Change>,
    appliance: &Arc<Appliance>,
    directory: &Arc<Directory>,
    layout: &Layout,
    node: &str,
) {
    // Directory changes → caches, key rings, session revocations.
    let _entered = control.enter();
    let a = Arc::clone(appliance);
    control.spawn(async move {
        while let Some(change) = changes.recv().await {
            a.apply_change(change).await;
        }
    });
    // Expired sessions, reclaimed in small steps.
    let a = Arc::clone(appliance);
    control.spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            a.sessions().sweep(crate::api::wall_ms(), 2_000);
        }
    });
    // The recently served tenants, kept for the next start.
    let (a, path) = (Arc::clone(appliance), layout.recent_tenants(node));
    control.spawn(async move {
        let mut last = String::new();
        loop {
            tokio::time::sleep(RECENT_WRITE_EVERY).await;
            let (a, p, mut written) = (Arc::clone(&a), path.clone(), std::mem::take(&mut last));
            last = tokio::task::spawn_blocking(move || {
                write_recent(&a, &p, &mut written);
                written
            })
            .await
            .unwrap_or_default();
        }
    });
    // Scheduled rotation, checked every minute.
    let (a, d) = (Arc::clone(appliance), Arc::clone(directory));
    control.spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            let now = signer::Timestamp::from_system_time(std::time::SystemTime::now());
            for live in a.loaded_tenants() {
                match a.rotate_due(&d, &live.tenant, now).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(tenant = %live.tenant.slug, keys = n, "rotation started")
                    }
                    Err(e) => {
                        tracing::debug!(tenant = %live.tenant.slug, error = %e, "rotation skipped")
                    }
                }
            }
        }
    });
}

impl RunningNode {
    /// Where the node listens.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            quic: self.quic.local_addr(),
            http: self.http.local_addr(),
            server_name: "localhost".into(),
            control_url: Some(self.control_url()),
        }
    }

    /// The control plane's base URL (SCIM under `/t/{tenant}/scim/v2`).
    pub fn control_url(&self) -> String {
        self.appliance
            .control_url()
            .unwrap_or_else(|| format!("http://{}", self.control_http.local_addr()))
    }

    /// Graceful stop: refuse new work, drain what is in flight, flush and
    /// ship the audit journal (and sign its heads), stop the private
    /// Postgres.
    pub fn shutdown(self) {
        let RunningNode {
            appliance,
            quic,
            http,
            control_http,
            cluster,
            directory,
            shipping,
            layout,
            node,
            control,
        } = self;
        quic.shutdown();
        http.shutdown();
        control_http.shutdown();
        // Requests are drained: sessions to disk (last-seen times with
        // them), then leave the cluster before the runtime goes.
        let replica = Arc::clone(appliance.replica());
        if let Err(e) = control.block_on(replica.snapshot()) {
            eprintln!(
                "sigil: session snapshot at shutdown failed ({e}); the logs keep every session"
            );
        }
        replica.close();
        control.block_on(async {
            // Everything acknowledged is already on disk; ship what is left.
            if let Err(e) = shipping.finish().await {
                eprintln!("sigil: audit shipping at shutdown failed ({e}); the journal keeps it for next start");
            }
        });
        write_recent(
            &appliance,
            &layout.recent_tenants(&node),
            &mut String::new(),
        );
        drop((appliance, directory, shipping));
        control.shutdown_timeout(Duration::from_secs(2));
        if let Some(cluster) = cluster.filter(PrivateCluster::started_here) {
            if let Err(e) = cluster.stop() {
                eprintln!("sigil: stopping postgres: {e}");
            }
        }
    }
}

/// The node's sessions: the table restored from `{data_dir}/sessions/{node}`
/// (a snapshot and logs), and, with peers, replication over QUIC with
/// mutual TLS under certificates of the cluster CA
/// (`{data_dir}/cluster-ca`, distinct from the front ends' CA, so no caller
/// certificate can join). A peer speaks only for the node its certificate
/// names.
fn start_replica(
    config: &Config,
    layout: &Layout,
    workers: usize,
) -> anyhow::Result<sessions::net::Replica> {
    use sessions::net::{Replica, ReplicaConfig};
    use sessions::store::SessionStore;
    use sessions::{Membership, NodeConfig, NodeName};
    let table = Arc::new(sessions::SessionTable::new(workers * 4));
    let dir = layout.root.join("sessions").join(&config.node);
    let (store, recovered) = SessionStore::open(&dir, &table, crate::api::wall_ms())
        .with_context(|| format!("sessions in {}", dir.display()))?;
    if recovered.sessions > 0 || recovered.cut > 0 {
        eprintln!(
            "sigil: restored {} sessions and {} revocations from {} in {:.2} s{}",
            recovered.sessions,
            recovered.decrees.len(),
            dir.display(),
            recovered.elapsed.as_secs_f64(),
            if recovered.cut > 0 {
                format!(" ({} bytes of a torn write cut off)", recovered.cut)
            } else {
                String::new()
            }
        );
    }
    let mut members: Vec<(NodeName, String)> = config
        .cluster
        .peers
        .iter()
        .map(|p| {
            crate::config::parse_peer(p).map(|(n, a)| (NodeName::from(n.as_str()), a.to_string()))
        })
        .collect::<Result<_, _>>()?;
    members.push((
        NodeName::from(config.node.as_str()),
        config.cluster.listen.to_string(),
    ));
    let network = if config.cluster.peers.is_empty() {
        None
    } else {
        Some(cluster_network(config, layout)?)
    };
    let timing = sessions::Timing {
        heartbeat_ms: (config.cluster.lease_ms / 10).max(10),
        lease_ms: config.cluster.lease_ms,
        drift_ppm: 10_000,
    };
    let mut incarnation = [0u8; 8];
    aws_lc_rs::rand::fill(&mut incarnation)
        .map_err(|_| anyhow::anyhow!("random generator failed"))?;
    let replica = Replica::start(
        ReplicaConfig {
            node: NodeConfig {
                name: NodeName::from(config.node.as_str()),
                membership: Membership::initial(members),
                incarnation: u64::from_le_bytes(incarnation),
                timing,
            },
            network,
            peer_queue_bytes: sessions::net::DEFAULT_PEER_QUEUE_BYTES,
            snapshot_every: Duration::from_secs(config.cluster.snapshot_secs),
        },
        table,
        Arc::new(store),
        recovered.decrees,
    )?;
    Ok(replica)
}

/// The replication endpoint's TLS: this node's certificate from the
/// cluster CA (made on first use), trusting only that CA.
fn cluster_network(config: &Config, layout: &Layout) -> anyhow::Result<sessions::net::Network> {
    let cluster_ca = DeploymentCa::create_or_load(&layout.root.join("cluster-ca"))?;
    let dir = credentials_dir(&layout.root, &format!("cluster-{}", config.node));
    let credentials = match Credentials::load(&dir) {
        Ok(c) => c,
        Err(_) => {
            let c = cluster_ca.issue_node(
                &config.node,
                &["localhost".to_owned(), "127.0.0.1".to_owned()],
            )?;
            c.write(&dir, Some(cluster_ca.certificate_pem()))?;
            c
        }
    };
    let chain = vec![credentials.certificate_der()];
    let server = tls::server_crypto_requiring_clients(
        chain.clone(),
        credentials.key_der()?,
        &cluster_ca.certificate_der(),
        sessions::net::ALPN,
    )?;
    let client = sigil_proto::tls::client_crypto(
        &cluster_ca.certificate_der(),
        Some((chain, credentials.key_der()?)),
        sessions::net::ALPN,
    )?;
    Ok(sessions::net::Network {
        listen: config.cluster.listen,
        server,
        client,
        server_name: "localhost".into(),
        identify: Some(Arc::new(|der: &[u8]| crate::pki::node_name(der))),
    })
}

/// Refuses at once when the QUIC or HTTP address is taken, before the slow
/// part of a start (initdb, Postgres, tenants) runs and fails behind it.
fn check_listen_addresses(config: &Config) -> anyhow::Result<()> {
    use crate::shared_port::SharedPort;
    type Probe = fn(SocketAddr) -> std::io::Result<()>;
    let listeners: [(SocketAddr, &str, &str, &str, Probe); 3] = [
        (
            config.listen.quic,
            "QUIC (UDP)",
            "--quic-listen",
            "listen.quic",
            <std::net::UdpSocket as SharedPort>::probe,
        ),
        (
            config.listen.http,
            "HTTP (TCP)",
            "--http-listen",
            "listen.http",
            <std::net::TcpListener as SharedPort>::probe,
        ),
        (
            config.listen.control_listen,
            "control HTTP (TCP)",
            "--control-listen",
            "listen.control_listen",
            |address| std::net::TcpListener::bind(address).map(drop),
        ),
    ];
    for (listen, what, flag, key, probe) in listeners {
        if listen.port() == 0 {
            continue;
        }
        if let Err(e) = probe(listen) {
            anyhow::bail!(
                "{what} port {} on {listen} cannot be bound: {e}; is another node running? \
                 choose another address with {flag} (or {key} in the config)",
                listen.port()
            );
        }
    }
    Ok(())
}

/// Runs `sigil serve` until SIGTERM or SIGINT.
///
/// # Errors
/// When the node cannot start.
pub fn run(config: &Config) -> anyhow::Result<()> {
    // Listen for the signals before the node starts: a supervisor (or a
    // test) that reads the endpoints file may send SIGTERM at once, and a
    // signal that arrives before its handler kills the process instead of
    // draining it.
    let signals = Signals::listen()?;
    let node = start(config)?;
    let endpoints = node.endpoints();
    eprintln!("sigil: node {} ready", config.node);
    eprintln!(
        "  QUIC sigil/1   {}   (front ends; mutual TLS)",
        endpoints.quic
    );
    eprintln!("  HTTP           http://{}", endpoints.http);
    if let Some(url) = &endpoints.control_url {
        eprintln!("  SCIM           {url}/t/TENANT/scim/v2   (bearer: sigil admin scim-token add)");
    }
    if config.embedded() {
        print_demo_endpoints(&endpoints, config);
    } else {
        eprintln!("  metrics        http://{}/metrics", endpoints.http);
        eprintln!("first admin (once):  sigil admin bootstrap --config FILE --out DIR");
    }
    signals.wait()?;
    eprintln!("sigil: shutting down (draining requests, flushing audit)");
    node.shutdown();
    eprintln!("sigil: stopped");
    Ok(())
}

/// Where the embedded default's demo tenant can be tried.
fn print_demo_endpoints(endpoints: &Endpoints, config: &Config) {
    eprintln!(
        "  JWKS           http://{}/t/acme/.well-known/jwks.json",
        endpoints.http
    );
    eprintln!(
        "  discovery      http://{}/t/acme/.well-known/openid-configuration",
        endpoints.http
    );
    eprintln!(
        "  SAML metadata  http://{}/t/acme/saml/metadata",
        endpoints.http
    );
    eprintln!("  metrics        http://{}/metrics", endpoints.http);
    eprintln!(
        "try:  sigil client id-token --tenant acme --user alice --app app-es256 --data-dir {}",
        config.data_dir.display()
    );
}

/// SIGTERM and SIGINT, caught from the moment [`Signals::listen`] returns.
struct Signals {
    runtime: tokio::runtime::Runtime,
    term: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (term, interrupt) = runtime.block_on(async {
            anyhow::Ok((
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
            ))
        })?;
        Ok(Signals {
            runtime,
            term,
            interrupt,
        })
    }

    /// Returns when either signal has arrived (also one that came before).
    fn wait(mut self) -> anyhow::Result<()> {
        self.runtime.block_on(async {
            tokio::select! {
                _ = self.term.recv() => {}
                _ = self.interrupt.recv() => {}
            }
        });
        Ok(())
    }
}

/// Runs the OAuth endpoints' work (issue 19) on the control runtime, where
/// the directory and the replica live; the HTTP worker awaits the answer.
fn oauth_handler(
    appliance: &Arc<Appliance>,
    control: &tokio::runtime::Handle,
) -> crate::http::oauth::OauthHandler {
    let appliance = Arc::clone(appliance);
    let control = control.clone();
    Arc::new(move |request| {
        let appliance = Arc::clone(&appliance);
        let task = control.spawn(async move { appliance.oauth(request).await });
        Box::pin(async move {
            task.await.unwrap_or_else(|_| {
                crate::http::oauth::oauth_error(500, "server_error", "the request failed")
            })
        })
    })
}
