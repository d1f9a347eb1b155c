//! The replication driver: a [`Node`] state machine moved by a tokio task
//! over quinn (mutual TLS between nodes: the caller supplies the rustls
//! configurations; nodes trust only the cluster CA), with the node's
//! [`SessionStore`] on disk. A single node without peers runs the same
//! driver without a network.
//!
//! [`Replica`] is the handle the front door uses from any thread: reads
//! (validate) touch only the table and an atomic lease deadline; creates
//! are made durable, then queued for the peers; revokes and membership
//! changes wait for the protocol's answer.

mod driver;
mod link;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::replication::{
    DecreeId, Membership, MembershipError, Message, Node, NodeConfig, NodeName, NodeStatus,
    Revoked, Timing,
};
use crate::store::{SessionStore, SnapshotStats, StoreError};
use crate::table::{SessionId, SessionRecord, SessionTable, Validation};

pub use link::Identify;

/// ALPN of node-to-node replication.
pub const ALPN: &[u8] = b"sigil-repl/2";

/// The network side of a replica: where it listens and how it speaks TLS.
pub struct Network {
    /// Where it listens for peers.
    pub listen: SocketAddr,
    /// TLS for accepting peers (must require client certificates).
    pub server: rustls::ServerConfig,
    /// TLS for dialling peers (presents this node's certificate).
    pub client: rustls::ClientConfig,
    /// Name to verify in peers' certificates.
    pub server_name: String,
    /// Names the node of a peer certificate; frames claiming another
    /// sender are dropped. `None`: any certificate of the cluster CA may
    /// speak for any node (tests).
    pub identify: Option<Identify>,
}

/// How a replica is set up.
pub struct ReplicaConfig {
    /// This node's name and the membership it starts with (a newer one
    /// recovered from disk replaces it), incarnation and timing.
    pub node: NodeConfig,
    /// The network; `None` for a single node that will never have peers.
    pub network: Option<Network>,
    /// Bytes of frames queued for one peer before frames to it are dropped
    /// ([`DEFAULT_PEER_QUEUE_BYTES`]).
    pub peer_queue_bytes: usize,
    /// A snapshot is taken this often (and when the logs since the last
    /// one outgrow [`SNAPSHOT_LOG_BYTES`]).
    pub snapshot_every: Duration,
}

/// Logs beyond this size since the last snapshot start a new snapshot.
pub const SNAPSHOT_LOG_BYTES: u64 = 256 << 20;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// The node cannot be sure it has seen every revocation: fail closed.
    #[error("unavailable: this node holds no fresh leases from a majority of the cluster")]
    Unavailable,
    /// A revoke or change is applied here but a majority did not confirm
    /// it in time; it completes when a majority is reachable.
    #[error("not confirmed by a majority within {0:?}: applied here, it completes when a majority is reachable")]
    NotConfirmed(Duration),
    /// The driver stopped.
    #[error("replication stopped")]
    Stopped,
    /// Setup failed.
    #[error("replication setup: {0}")]
    Setup(String),
    /// The disk failed; nothing was started.
    #[error("{0}")]
    Durable(StoreError),
    /// A membership change was refused.
    #[error("membership: {0}")]
    Membership(MembershipError),
    /// A membership change asked of a node that runs without a replication
    /// network: it could never reach the members it would add.
    #[error("this node runs alone, without a replication network: start every node with --cluster-listen and --peers to form a cluster (docs/operations.md)")]
    NoNetwork,
}

enum Command {
    Revoke(Revoked, oneshot::Sender<Result<DecreeId, ReplicaError>>),
    Propose(Membership, oneshot::Sender<Result<DecreeId, ReplicaError>>),
    Delta(SessionRecord),
    Status(oneshot::Sender<ClusterStatus>),
    Snapshot(oneshot::Sender<Result<SnapshotStats, StoreError>>),
}

/// How late deltas arrive from peers: wall-clock time from a session's
/// last change at its origin to its arrival here; what was dropped, and
/// sent again.
#[derive(Debug)]
pub struct LagStats {
    sum_us: AtomicU64,
    count: AtomicU64,
    max_us: AtomicU64,
    dropped: AtomicU64,
    /// Sessions sent again to peers that lost some.
    resent: AtomicU64,
    /// The oldest `last_seen_ms` of a local delta dropped before it
    /// reached the driver (every peer lacks it); `NO_SESSIONS` for none.
    local_lost_since: AtomicU64,
}

impl Default for LagStats {
    fn default() -> LagStats {
        LagStats {
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            resent: AtomicU64::new(0),
            local_lost_since: AtomicU64::new(link::NO_SESSIONS),
        }
    }
}

/// A snapshot of [`LagStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    /// Sum of lags, µs.
    pub sum_us: u64,
    /// Deltas measured.
    pub count: u64,
    /// Largest, µs.
    pub max_us: u64,
    /// Outgoing frames and local deltas dropped because a queue was full
    /// or a peer could not be reached (the protocol resends decrees; the
    /// sessions in them are sent again once the peer has room: `resent`).
    pub dropped: u64,
    /// Sessions sent again to peers that lost frames carrying them.
    pub resent: u64,
}

/// What `sigil cluster status` shows of one node.
#[derive(Debug, Clone)]
pub struct ClusterStatus {
    /// The state machine's view (local ms times).
    pub node: NodeStatus,
    /// The membership it follows.
    pub membership: Membership,
    /// Local ms at which it was taken.
    pub now: u64,
    /// Replication lag of deltas received.
    pub lag: Lag,
    /// Bytes in the session logs since the last snapshot.
    pub log_bytes: u64,
}

/// Bytes queued for one peer by default: a healthy peer absorbs a burst of
/// creates (200,000 sessions are ~50 MB of CBOR frames); a peer that stops
/// reading costs at most this much before frames to it are dropped.
pub const DEFAULT_PEER_QUEUE_BYTES: usize = 256 << 20;
/// Commands (deltas, revocations) queued for the driver.
const COMMAND_QUEUE: usize = 65_536;
/// Messages read from peers, queued for the driver.
const INCOMING_QUEUE: usize = 4_096;

/// A running replica.
pub struct Replica {
    table: Arc<SessionTable>,
    store: Arc<SessionStore>,
    lag: Arc<LagStats>,
    commands: mpsc::Sender<Command>,
    /// Local ms until which this node may serve (0: not).
    serving_until: Arc<AtomicU64>,
    ready: Arc<AtomicBool>,
    origin: Instant,
    local_addr: Option<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
    endpoint: Option<quinn::Endpoint>,
    /// How long a revoke waits for a majority before it answers.
    confirm_within: Duration,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

fn now_ms(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn endpoint(network: Network) -> Result<(quinn::Endpoint, Option<Identify>), ReplicaError> {
    let setup = |e: &dyn std::fmt::Display| ReplicaError::Setup(e.to_string());
    let mut server = network.server;
    server.alpn_protocols = vec![ALPN.to_vec()];
    let mut client = network.client;
    client.alpn_protocols = vec![ALPN.to_vec()];
    let server_crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(server).map_err(|e| setup(&e))?;
    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(
        5_000,
    ))));
    transport.keep_alive_interval(Some(Duration::from_millis(500)));
    let transport = Arc::new(transport);
    server_config.transport_config(Arc::clone(&transport));
    let client_crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(client).map_err(|e| setup(&e))?;
    let mut client_config = quinn::ClientConfig::new(Arc::new(client_crypto));
    client_config.transport_config(transport);
    let mut endpoint =
        quinn::Endpoint::server(server_config, network.listen).map_err(|e| setup(&e))?;
    endpoint.set_default_client_config(client_config);
    Ok((endpoint, network.identify))
}

impl Replica {
    /// Starts the replica on the current tokio runtime over `table` (which
    /// holds the sessions `store` recovered), with the decrees `recovered`
    /// from the store.
    ///
    /// # Errors
    /// [`ReplicaError::Setup`] when the endpoint cannot bind or TLS is
    /// unusable, or when the membership has peers and there is no network.
    pub fn start(
        config: ReplicaConfig,
        table: Arc<SessionTable>,
        store: Arc<SessionStore>,
        recovered: Vec<crate::replication::Decree>,
    ) -> Result<Replica, ReplicaError> {
        let origin = Instant::now();
        let timing: Timing = config.node.timing;
        let server_name = config
            .network
            .as_ref()
            .map(|n| n.server_name.clone())
            .unwrap_or_default();
        let (endpoint, identify) = match config.network {
            Some(network) => {
                let (endpoint, identify) = endpoint(network)?;
                (Some(endpoint), identify)
            }
            None => (None, None),
        };
        let local_addr = match &endpoint {
            Some(e) => Some(
                e.local_addr()
                    .map_err(|e| ReplicaError::Setup(e.to_string()))?,
            ),
            None => None,
        };
        let node = Node::new(config.node, Arc::clone(&table), recovered, now_ms(origin));

        if endpoint.is_none() && node.membership().members.len() > 1 {
            let membership = node.membership();
            return Err(ReplicaError::Setup(format!(
                "the membership is a cluster of {} (epoch {}: {}), but this node has no replication network: start it with --cluster-listen and --peers (the membership on disk wins over --peers)",
                membership.members.len(),
                membership.epoch,
                membership.members.keys().map(|n| &**n).collect::<Vec<_>>().join(", ")
            )));
        }
        let now = now_ms(origin);
        let serving_until = Arc::new(AtomicU64::new(if node.can_serve(now) {
            node.serving_until()
        } else {
            0
        }));
        let ready = Arc::new(AtomicBool::new(node.is_ready()));
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        let (incoming_tx, incoming_rx) = mpsc::channel::<(NodeName, Message)>(INCOMING_QUEUE);
        if let Some(endpoint) = &endpoint {
            link::accept(endpoint.clone(), incoming_tx, identify);
        }
        let lag = Arc::new(LagStats::default());
        let driver = driver::Driver::new(driver::Parts {
            node,
            lag: Arc::clone(&lag),
            origin,
            serving_until: Arc::clone(&serving_until),
            ready: Arc::clone(&ready),
            store: Arc::clone(&store),
            table: Arc::clone(&table),
            endpoint: endpoint.clone(),
            server_name,
            peer_queue_bytes: config.peer_queue_bytes,
            snapshot_every: config.snapshot_every,
        });
        let task = tokio::spawn(driver.run(receiver, incoming_rx));
        Ok(Replica {
            table,
            store,
            lag,
            commands,
            serving_until,
            ready,
            origin,
            local_addr,
            task,
            endpoint,
            confirm_within: Duration::from_millis(timing.revoke_wait_ms() * 3 + 2_000),
        })
    }

    /// Where it listens for peers (none for a single node).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Whether it has a replication network (it was started with peers):
    /// without one it is, and stays, a single node.
    pub fn has_network(&self) -> bool {
        self.endpoint.is_some()
    }

    /// The table (reads go straight to it).
    pub fn table(&self) -> &Arc<SessionTable> {
        &self.table
    }

    /// Whether the node merged a peer's state.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Replication lag of deltas received so far.
    pub fn lag(&self) -> Lag {
        Lag {
            sum_us: self.lag.sum_us.load(Ordering::Relaxed),
            count: self.lag.count.load(Ordering::Relaxed),
            max_us: self.lag.max_us.load(Ordering::Relaxed),
            dropped: self.lag.dropped.load(Ordering::Relaxed),
            resent: self.lag.resent.load(Ordering::Relaxed),
        }
    }

    /// Whether it may answer session checks now.
    pub fn can_serve(&self) -> bool {
        now_ms(self.origin) < self.serving_until.load(Ordering::Acquire)
    }

    /// Validates a session; fails closed without fresh leases.
    ///
    /// # Errors
    /// [`ReplicaError::Unavailable`].
    pub fn validate(
        &self,
        tenant: &str,
        id: &SessionId,
        wall_ms: u64,
    ) -> Result<Validation, ReplicaError> {
        if !self.can_serve() {
            return Err(ReplicaError::Unavailable);
        }
        Ok(self.table.validate(tenant, id, wall_ms))
    }

    /// Records activity on a valid session (fails closed like
    /// [`Replica::validate`]) and, in a cluster, tells the peers if the driver
    /// has room (a single node without a network has nobody to tell).
    ///
    /// # Errors
    /// [`ReplicaError::Unavailable`].
    pub fn touch(
        &self,
        tenant: &str,
        id: &SessionId,
        wall_ms: u64,
    ) -> Result<Validation, ReplicaError> {
        if !self.can_serve() {
            return Err(ReplicaError::Unavailable);
        }
        let validation = self.table.touch(tenant, id, wall_ms);
        if self.has_network() && matches!(validation, Validation::Valid(_)) {
            if let Some(record) = self.table.record(id) {
                self.try_replicate(record);
            }
        }
        Ok(validation)
    }

    /// Makes a session created in the table durable, then sends it to the
    /// peers (waiting while the driver is 65,536 commands behind).
    ///
    /// # Errors
    /// [`ReplicaError::Durable`] when the disk failed: the session must not
    /// be handed out.
    pub async fn created(&self, record: SessionRecord) -> Result<(), ReplicaError> {
        let ticket = self
            .store
            .append_session(&record)
            .map_err(ReplicaError::Durable)?;
        self.store
            .synced(ticket)
            .await
            .map_err(ReplicaError::Durable)?;
        // Without a network there is nobody to tell. An error means the
        // driver has stopped: nothing left to tell either.
        if self.has_network() {
            let _ = self.commands.send(Command::Delta(record)).await;
        }
        Ok(())
    }

    /// Sends a touched session to the peers if the driver has room, else
    /// drops it (counted, and sent again with every session changed since
    /// once the driver catches up): the caller (a validation) must not
    /// wait.
    pub fn try_replicate(&self, record: SessionRecord) {
        let last_seen = record.last_seen_ms;
        self.try_send_delta(record, last_seen);
    }

    /// Records that `app` received a token in session `id` of `tenant`
    /// (issue 19, back-channel logout) and, the first time only, tells the
    /// peers like a touch (never waiting; a dropped delta is sent again with
    /// the records changed since `wall_ms`). An app already recorded costs
    /// one read-locked lookup.
    pub fn note_app(&self, tenant: &str, id: &SessionId, app: &str, wall_ms: u64) {
        if self.table.has_app(id, app) {
            return;
        }
        if let Some(record) = self.table.add_app(tenant, id, app, wall_ms) {
            if self.has_network() {
                self.try_send_delta(record, wall_ms);
            }
        }
    }

    fn try_send_delta(&self, record: SessionRecord, changed_ms: u64) {
        if self.commands.try_send(Command::Delta(record)).is_err() {
            self.lag.dropped.fetch_add(1, Ordering::Relaxed);
            self.lag
                .local_lost_since
                .fetch_min(changed_ms, Ordering::AcqRel);
        }
    }

    /// Revokes, returning once no node accepts what was revoked: a
    /// majority settled it (docs/sessions.md).
    ///
    /// # Errors
    /// [`ReplicaError::NotConfirmed`] when no majority confirmed in time
    /// (the revocation holds here and completes later);
    /// [`ReplicaError::Durable`] when it could not be made durable (not
    /// started); [`ReplicaError::Stopped`].
    pub async fn revoke(&self, what: Revoked) -> Result<DecreeId, ReplicaError> {
        let wait = self.ask(|done| Command::Revoke(what, done)).await?;
        self.confirmed(wait).await
    }

    /// Proposes the membership `config` (the next epoch, one node added or
    /// removed, or this node's membership again to finish a change whose
    /// origin died), returning once majorities of the old and the new
    /// membership settled it. The caller fences epochs (one change per
    /// epoch in the whole cluster).
    ///
    /// # Errors
    /// [`ReplicaError::NoNetwork`] on a node started without peers;
    /// [`ReplicaError::Membership`] when refused; as [`Replica::revoke`].
    pub async fn propose(&self, config: Membership) -> Result<DecreeId, ReplicaError> {
        if !self.has_network() {
            return Err(ReplicaError::NoNetwork);
        }
        let wait = self.ask(|done| Command::Propose(config, done)).await?;
        self.confirmed(wait).await
    }

    /// Sends the driver a command that answers on a oneshot channel.
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<oneshot::Receiver<T>, ReplicaError> {
        let (done, wait) = oneshot::channel();
        self.commands
            .send(command(done))
            .await
            .map_err(|_| ReplicaError::Stopped)?;
        Ok(wait)
    }

    async fn confirmed(
        &self,
        wait: oneshot::Receiver<Result<DecreeId, ReplicaError>>,
    ) -> Result<DecreeId, ReplicaError> {
        match tokio::time::timeout(self.confirm_within, wait).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(ReplicaError::Stopped),
            Err(_) => Err(ReplicaError::NotConfirmed(self.confirm_within)),
        }
    }

    /// The node's view of the cluster.
    ///
    /// # Errors
    /// [`ReplicaError::Stopped`].
    pub async fn status(&self) -> Result<ClusterStatus, ReplicaError> {
        let wait = self.ask(Command::Status).await?;
        wait.await.map_err(|_| ReplicaError::Stopped)
    }

    /// Takes a snapshot now (at a graceful stop: last-seen times reach the
    /// disk).
    ///
    /// # Errors
    /// [`ReplicaError::Durable`], [`ReplicaError::Stopped`].
    pub async fn snapshot(&self) -> Result<SnapshotStats, ReplicaError> {
        let wait = self.ask(Command::Snapshot).await?;
        wait.await
            .map_err(|_| ReplicaError::Stopped)?
            .map_err(ReplicaError::Durable)
    }

    /// Leaves the cluster: stops the driver and closes every connection, so
    /// peers see the node gone at once rather than after an idle timeout.
    /// Revokes in flight fail with [`ReplicaError::Stopped`]. What was
    /// synced stays on disk.
    pub fn close(&self) {
        self.task.abort();
        if let Some(endpoint) = &self.endpoint {
            endpoint.close(0u32.into(), b"leaving");
        }
        self.store.close();
    }
}
