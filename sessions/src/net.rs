//! The replication driver: a [`Node`] state machine moved by a tokio task
//! over quinn, with mutual TLS between nodes (the caller supplies the
//! rustls configurations; nodes trust only the cluster CA). Each node
//! dials every peer and sends its messages as length-prefixed CBOR frames
//! on one long-lived unidirectional stream per peer; it accepts its peers'
//! connections and reads theirs. A broken connection is redialled; the
//! protocol tolerates whatever was lost.
//!
//! [`Replica`] is the handle the front door uses from any thread: reads
//! (validate) touch only the table and an atomic lease deadline; creates
//! queue a delta; revokes wait for the protocol's answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::replication::{
    Event, Message, Node, NodeIndex, Revocation, RevocationId, Revoked, Timing,
};
use crate::table::{SessionId, SessionRecord, SessionTable, Validation};

/// ALPN of node-to-node replication.
pub const ALPN: &[u8] = b"sigil-repl/1";
const MAX_FRAME: usize = 16 << 20;

/// How a replica is set up.
pub struct ReplicaConfig {
    /// This node's index.
    pub me: NodeIndex,
    /// Where it listens for peers.
    pub listen: SocketAddr,
    /// The other nodes and their listen addresses.
    pub peers: Vec<(NodeIndex, SocketAddr)>,
    /// Protocol timing.
    pub timing: Timing,
    /// TLS for accepting peers (must require client certificates).
    pub server: rustls::ServerConfig,
    /// TLS for dialling peers (presents this node's certificate).
    pub client: rustls::ClientConfig,
    /// Name to verify in peers' certificates.
    pub server_name: String,
    /// Revocations recovered from durable storage.
    pub recovered: Vec<Revocation>,
    /// Where revocations started here are made durable first.
    pub durable: Option<Arc<crate::durable::RevocationLog>>,
    /// Bytes of frames queued for one peer before frames to it are dropped
    /// ([`DEFAULT_PEER_QUEUE_BYTES`]).
    pub peer_queue_bytes: usize,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// The node cannot be sure it has seen every revocation: fail closed.
    #[error("unavailable: no fresh lease from every peer")]
    Unavailable,
    /// The driver stopped.
    #[error("replication stopped")]
    Stopped,
    /// Setup failed.
    #[error("replication setup: {0}")]
    Setup(String),
    /// The revocation could not be made durable; it was not started.
    #[error("durable revocation log: {0}")]
    Durable(String),
}

enum Command {
    Revoke(Revoked, oneshot::Sender<Result<RevocationId, ReplicaError>>),
    Delta(SessionRecord),
}

/// How late deltas arrive from peers: wall-clock time from a session's
/// last change at its origin to its arrival here.
#[derive(Debug, Default)]
pub struct LagStats {
    sum_us: AtomicU64,
    count: AtomicU64,
    max_us: AtomicU64,
    dropped: AtomicU64,
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
    /// (a peer slower than this node: the protocol resends revocations;
    /// a dropped create leaves that peer without the session, which it
    /// then answers as unknown).
    pub dropped: u64,
}

/// Bytes queued for one peer by default: a healthy peer absorbs a burst of
/// creates (200,000 sessions are ~50 MB of CBOR frames: the replication
/// bench's burst overflowed 64 MiB); a peer that stops reading costs at
/// most this much before frames to it are dropped.
pub const DEFAULT_PEER_QUEUE_BYTES: usize = 256 << 20;
/// Commands (deltas, revocations) queued for the driver.
const COMMAND_QUEUE: usize = 65_536;
/// Messages read from peers, queued for the driver.
const INCOMING_QUEUE: usize = 4_096;

fn wall_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A running replica.
pub struct Replica {
    table: Arc<SessionTable>,
    lag: Arc<LagStats>,
    commands: mpsc::Sender<Command>,
    /// Local ms until which this node may serve (0: not).
    serving_until: Arc<AtomicU64>,
    ready: Arc<AtomicBool>,
    origin: Instant,
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    endpoint: quinn::Endpoint,
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

impl Replica {
    /// Starts the replica on the current tokio runtime.
    ///
    /// # Errors
    /// [`ReplicaError::Setup`] when the endpoint cannot bind or TLS is unusable.
    pub fn start(
        config: ReplicaConfig,
        table: Arc<SessionTable>,
        incarnation: u64,
    ) -> Result<Replica, ReplicaError> {
        let setup = |e: &dyn std::fmt::Display| ReplicaError::Setup(e.to_string());
        let mut server = config.server;
        server.alpn_protocols = vec![ALPN.to_vec()];
        let mut client = config.client;
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
            quinn::Endpoint::server(server_config, config.listen).map_err(|e| setup(&e))?;
        endpoint.set_default_client_config(client_config);
        let local_addr = endpoint.local_addr().map_err(|e| setup(&e))?;
        let origin = Instant::now();
        let peers: Vec<NodeIndex> = config.peers.iter().map(|(p, _)| *p).collect();
        let node = Node::new(
            config.me,
            peers,
            incarnation,
            config.timing,
            Arc::clone(&table),
            config.recovered,
            now_ms(origin),
        );
        let serving_until = Arc::new(AtomicU64::new(0));
        let ready = Arc::new(AtomicBool::new(node.is_ready()));
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        let (incoming_tx, incoming_rx) = mpsc::channel::<(NodeIndex, Message)>(INCOMING_QUEUE);
        // Accept peers' connections; each frame names its sender.
        let accept_endpoint = endpoint.clone();
        tokio::spawn(async move {
            while let Some(incoming) = accept_endpoint.accept().await {
                let tx = incoming_tx.clone();
                tokio::spawn(async move {
                    let Ok(connection) = incoming.await else {
                        return;
                    };
                    while let Ok(mut stream) = connection.accept_uni().await {
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            loop {
                                let mut length = [0u8; 4];
                                if stream.read_exact(&mut length).await.is_err() {
                                    return;
                                }
                                let length = u32::from_be_bytes(length) as usize;
                                if length == 0 || length > MAX_FRAME {
                                    return;
                                }
                                let mut body = vec![0u8; length];
                                if stream.read_exact(&mut body).await.is_err() {
                                    return;
                                }
                                match ciborium::from_reader::<(NodeIndex, Message), _>(
                                    body.as_slice(),
                                ) {
                                    Ok(frame) => {
                                        // Full: stop reading; QUIC flow
                                        // control then slows the peer.
                                        if tx.send(frame).await.is_err() {
                                            return;
                                        }
                                    }
                                    Err(_) => return,
                                }
                            }
                        });
                    }
                });
            }
        });
        let lag = Arc::new(LagStats::default());
        let driver = Driver {
            lag: Arc::clone(&lag),
            node,
            me: config.me,
            origin,
            serving_until: Arc::clone(&serving_until),
            ready: Arc::clone(&ready),
            durable: config.durable,
            links: config
                .peers
                .iter()
                .map(|(p, address)| {
                    (
                        *p,
                        Link::start(
                            endpoint.clone(),
                            *address,
                            config.server_name.clone(),
                            config.peer_queue_bytes,
                        ),
                    )
                })
                .collect(),
            waiting: HashMap::new(),
        };
        let task = tokio::spawn(driver.run(receiver, incoming_rx));
        Ok(Replica {
            table,
            lag,
            commands,
            serving_until,
            ready,
            origin,
            local_addr,
            task,
            endpoint,
        })
    }

    /// Where it listens for peers.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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

    /// Sends a created session to the peers, waiting while the driver is
    /// 65,536 commands behind (backpressure on whoever creates sessions).
    pub async fn replicate(&self, record: SessionRecord) {
        // An error means the driver has stopped: nothing left to tell.
        let _ = self.commands.send(Command::Delta(record)).await;
    }

    /// Sends a touched session to the peers if the driver has room, else
    /// drops it (counted): a lost touch only makes a peer's idle expiry
    /// earlier, and the caller (a validation) must not wait.
    pub fn try_replicate(&self, record: SessionRecord) {
        if self.commands.try_send(Command::Delta(record)).is_err() {
            self.lag.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Revokes, returning once no node accepts what was revoked (every peer
    /// acknowledged, or its lease ran out). Make it durable first.
    ///
    /// # Errors
    /// [`ReplicaError::Stopped`] if the driver is gone;
    /// [`ReplicaError::Durable`] if the revocation could not be made durable.
    pub async fn revoke(&self, what: Revoked) -> Result<RevocationId, ReplicaError> {
        let (done, wait) = oneshot::channel();
        self.commands
            .send(Command::Revoke(what, done))
            .await
            .map_err(|_| ReplicaError::Stopped)?;
        wait.await.map_err(|_| ReplicaError::Stopped)?
    }

    /// Stops: closes connections (peers see the node as gone).
    pub fn stop(self) {
        self.close();
    }

    /// Leaves the cluster: stops the driver and closes every connection, so
    /// peers see the node gone at once rather than after an idle timeout.
    /// Revokes in flight fail with [`ReplicaError::Stopped`].
    pub fn close(&self) {
        self.task.abort();
        self.endpoint.close(0u32.into(), b"leaving");
    }
}

/// An outgoing link to one peer: a task that dials (and redials) and
/// writes queued frames.
struct Link {
    frames: mpsc::UnboundedSender<Vec<u8>>,
    /// Bytes in `frames` not yet taken by the writer.
    queued: Arc<AtomicUsize>,
    /// The bound of `queued`.
    limit: usize,
}

impl Link {
    /// Queues a frame unless the peer is `LINK_QUEUE_BYTES` behind.
    fn send(&self, frame: Vec<u8>) -> bool {
        let len = frame.len();
        if self.queued.fetch_add(len, Ordering::AcqRel) + len > self.limit {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        if self.frames.send(frame).is_err() {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn start(
        endpoint: quinn::Endpoint,
        address: SocketAddr,
        server_name: String,
        limit: usize,
    ) -> Link {
        let (frames, mut queue) = mpsc::unbounded_channel::<Vec<u8>>();
        let queued = Arc::new(AtomicUsize::new(0));
        let taken = Arc::clone(&queued);
        tokio::spawn(async move {
            loop {
                let connection = match endpoint.connect(address, &server_name) {
                    Ok(connecting) => connecting.await.ok(),
                    Err(_) => None,
                };
                let Some(connection) = connection else {
                    // Drop what queued meanwhile: the protocol resends.
                    while let Ok(frame) = queue.try_recv() {
                        taken.fetch_sub(frame.len(), Ordering::AcqRel);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if queue.is_closed() {
                        return;
                    }
                    continue;
                };
                let Ok(mut stream) = connection.open_uni().await else {
                    continue;
                };
                while let Some(first) = queue.recv().await {
                    let mut batch = first;
                    while let Ok(more) = queue.try_recv() {
                        batch.extend_from_slice(&more);
                    }
                    taken.fetch_sub(batch.len(), Ordering::AcqRel);
                    if stream.write_all(&batch).await.is_err() {
                        break;
                    }
                }
                if queue.is_closed() {
                    return;
                }
            }
        });
        Link {
            frames,
            queued,
            limit,
        }
    }
}

struct Driver {
    lag: Arc<LagStats>,
    node: Node,
    me: NodeIndex,
    origin: Instant,
    serving_until: Arc<AtomicU64>,
    ready: Arc<AtomicBool>,
    links: HashMap<NodeIndex, Link>,
    waiting: HashMap<RevocationId, oneshot::Sender<Result<RevocationId, ReplicaError>>>,
    durable: Option<Arc<crate::durable::RevocationLog>>,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut incoming: mpsc::Receiver<(NodeIndex, Message)>,
    ) {
        loop {
            let now = now_ms(self.origin);
            let wake = self.node.poll_timeout().saturating_sub(now).min(50);
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Revoke(what, done)) => self.start_revoke(what, done),
                    Some(Command::Delta(record)) => {
                        self.node.replicate(record);
                        // Coalesce whatever else is queued, then send at once.
                        while let Ok(more) = commands.try_recv() {
                            match more {
                                Command::Delta(more) => self.node.replicate(more),
                                Command::Revoke(what, done) => {
                                    self.node.flush_deltas();
                                    self.start_revoke(what, done);
                                }
                            }
                        }
                        self.node.flush_deltas();
                    }
                    None => return,
                },
                message = incoming.recv() => match message {
                    Some((from, message)) => {
                        if let Message::Deltas(records) = &message {
                            let now = wall_us();
                            for record in records {
                                let lag = now.saturating_sub(record.last_seen_ms.saturating_mul(1000));
                                self.lag.sum_us.fetch_add(lag, Ordering::Relaxed);
                                self.lag.count.fetch_add(1, Ordering::Relaxed);
                                self.lag.max_us.fetch_max(lag, Ordering::Relaxed);
                            }
                        }
                        self.node.handle(now_ms(self.origin), from, message);
                    }
                    None => return,
                },
                () = tokio::time::sleep(Duration::from_millis(wake)) => {}
            }
            let now = now_ms(self.origin);
            if now >= self.node.poll_timeout() {
                self.node.handle_timeout(now);
            }
            self.flush(now);
        }
    }

    fn start_revoke(
        &mut self,
        what: Revoked,
        done: oneshot::Sender<Result<RevocationId, ReplicaError>>,
    ) {
        if let Some(log) = &self.durable {
            let revocation = Revocation {
                id: self.node.next_revocation_id(),
                what: what.clone(),
            };
            if let Err(e) = log.append(&revocation) {
                let _ = done.send(Err(ReplicaError::Durable(e.to_string())));
                return;
            }
        }
        let revocation = self.node.revoke(what, now_ms(self.origin));
        self.waiting.insert(revocation.id, done);
    }

    fn flush(&mut self, now: u64) {
        while let Some(event) = self.node.poll_event() {
            match event {
                Event::RevokeDone(id) => {
                    if let Some(done) = self.waiting.remove(&id) {
                        let _ = done.send(Ok(id));
                    }
                }
                Event::Ready => self.ready.store(true, Ordering::Release),
            }
        }
        while let Some((to, message)) = self.node.poll_transmit() {
            let mut body = Vec::with_capacity(256);
            if ciborium::into_writer(&(self.me, &message), &mut body).is_err() {
                continue;
            }
            let mut frame = (body.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&body);
            if let Some(link) = self.links.get(&to) {
                if !link.send(frame) {
                    self.lag.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let until = if self.node.can_serve(now) {
            self.node.serving_until()
        } else {
            0
        };
        self.serving_until.store(until, Ordering::Release);
    }
}
