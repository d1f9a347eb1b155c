//! The `sigil/1` listener: one pinned OS thread per worker, each with its
//! own tokio current-thread runtime and its own quinn `Endpoint` on the
//! shared UDP port (SO_REUSEPORT: the kernel spreads connections by their
//! 4-tuple). A connection, its streams and its requests live on the worker
//! that accepted it; workers share only the [`Handler`] (read-mostly state)
//! and atomic counters.
//!
//! Per stream: frames are read and decoded as they arrive; each request
//! runs as its own local task, so answers leave in completion order
//! (pipelining); a writer coalesces answers into few stream writes.
//! Misbehaviour costs the offender only: an oversized or empty frame, or a
//! frame left incomplete longer than [`QuicLimits::frame_timeout`], closes
//! that stream with an error; an undecodable frame is answered with
//! `bad_request` and the stream goes on.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::shared_port::bind_per_worker;
use bytes::{Bytes, BytesMut};
use rustls_pki_types::CertificateDer;
use tokio::sync::{mpsc, watch};

use sigil_proto::{
    from_cbor, to_cbor, write_frame, ErrorCode, FrameDecoder, Operation, Reply, WireError,
    WireRequest, WireResponse,
};

/// What the listener calls for each connection and request. Implemented by
/// the appliance ([`crate::api::Appliance`]).
pub trait Handler: Send + Sync + 'static {
    /// Who the peer is, from its client certificate (`None`: it sent none).
    type Caller: 'static;

    /// Resolves the caller once per connection.
    fn caller(
        &self,
        certificate: Option<CertificateDer<'static>>,
    ) -> impl Future<Output = Self::Caller>;

    /// Answers one operation for `caller`.
    fn handle(
        &self,
        caller: &Self::Caller,
        operation: Operation,
    ) -> impl Future<Output = Result<Reply, WireError>>;

    /// A request that never reached [`Handler::handle`] (bad frame,
    /// overload) was refused; for audit and metrics.
    fn refused(&self, caller: &Self::Caller, code: ErrorCode, reason: &str);
}

/// The default in-flight limit of a node. It bounds the queue an accepted
/// request can meet: at the ~34,000 EdDSA tokens/s one 2-core node holds,
/// 1,024 in flight is ~30 ms of waiting, and what is past it is refused at
/// once (a front end retries on another node). Measured
/// (docs/BENCHMARKING.md): at 30,000/s offered 16,384 gave p50 212 ms /
/// p99 840 ms, 1,024 p50 4.6 ms / p99 49 ms with the same goodput; 2,048
/// lost goodput at 45,000/s (30,649/s vs 34,486/s) and still refused
/// during the disk's 100-180 ms sync stalls at 20,000/s, as 1,024 does;
/// 512 cut goodput below capacity.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1_024;

/// Tasks a worker runs between two polls of its sockets (tokio's default
/// is 61). Polling more often reads (and refuses) new requests sooner
/// while admitted ones are being signed: at 45,000/s offered, three A/B
/// runs gave refusals p50 8.0/10.0/7.1 ms with 61 and 4.1/6.1/5.3 ms with
/// 8, goodput 32.0-32.1K/s vs 28.1-35.2K/s; no change at 10,000/s.
const EVENT_INTERVAL: u32 = 8;

/// Limits of the listener.
#[derive(Debug, Clone, Copy)]
pub struct QuicLimits {
    /// Requests in flight on the whole node; past it, `overloaded` at once.
    /// Split evenly between workers (no shared counter on the request path).
    pub max_in_flight: usize,
    /// Requests in flight on one stream; past it, `overloaded` at once.
    pub max_in_flight_per_stream: usize,
    /// How long a frame may stay incomplete before its stream is closed.
    pub frame_timeout: Duration,
}

impl Default for QuicLimits {
    fn default() -> QuicLimits {
        QuicLimits {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_in_flight_per_stream: 1_024,
            frame_timeout: Duration::from_secs(10),
        }
    }
}

/// Where and how the QUIC API listens.
#[derive(Debug, Clone)]
pub struct QuicConfig {
    /// Address to bind; port 0 picks a free one (shared by all workers).
    pub listen: SocketAddr,
    /// Worker threads. Default: the number of cores.
    pub workers: usize,
    /// Pin worker N to core N. Default: true.
    pub pin_to_cores: bool,
    /// Limits.
    pub limits: QuicLimits,
}

impl QuicConfig {
    /// One worker per core, pinned, default limits.
    pub fn new(listen: SocketAddr) -> QuicConfig {
        QuicConfig {
            listen,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pin_to_cores: true,
            limits: QuicLimits::default(),
        }
    }
}

/// Counters of the QUIC side, for `/metrics`.
#[derive(Debug, Default)]
pub struct QuicStats {
    /// Connections accepted (handshake completed).
    pub connections: AtomicU64,
    /// Connections whose handshake failed (e.g. a certificate from another CA).
    pub handshake_failures: AtomicU64,
    /// Requests answered, successfully or not.
    pub requests: AtomicU64,
    /// Requests refused with `overloaded` by the in-flight limits.
    pub overloaded: AtomicU64,
    /// Frames that could not be decoded (answered `bad_request`).
    pub bad_frames: AtomicU64,
    /// Streams closed for oversized, empty, truncated or stalled frames.
    pub streams_closed: AtomicU64,
    /// Requests in flight now, all workers.
    pub in_flight: AtomicU64,
}

/// The running listener. [`QuicServer::shutdown`] stops accepting, lets
/// requests in flight finish (up to a grace period) and closes connections.
#[derive(Debug)]
pub struct QuicServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
    stats: Arc<QuicStats>,
}

/// Application error codes used when closing streams and connections.
pub mod close_code {
    /// A frame broke the framing rules (oversized, empty, truncated).
    pub const BAD_FRAME: u32 = 1;
    /// A frame stayed incomplete too long.
    pub const FRAME_TIMEOUT: u32 = 2;
    /// The node is shutting down.
    pub const SHUTDOWN: u32 = 3;
}

impl QuicServer {
    /// Binds one endpoint per worker on the shared port and starts the
    /// workers.
    ///
    /// # Errors
    /// When the address cannot be bound or a thread or runtime cannot start.
    pub fn start<H: Handler>(
        config: QuicConfig,
        server_config: quinn::ServerConfig,
        handler: Arc<H>,
    ) -> io::Result<QuicServer> {
        let workers = config.workers.max(1);
        let sockets: Vec<std::net::UdpSocket> = bind_per_worker(config.listen, workers)?;
        let local_addr = sockets[0].local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let stats = Arc::new(QuicStats::default());
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let mut limits = config.limits;
        limits.max_in_flight = (limits.max_in_flight / workers).max(1);
        let mut handles = Vec::with_capacity(workers);
        for (n, socket) in sockets.into_iter().enumerate() {
            let handler = Arc::clone(&handler);
            let stats = Arc::clone(&stats);
            let server_config = server_config.clone();
            let stopped = stopped.clone();
            let core = (config.pin_to_cores && !cores.is_empty()).then(|| cores[n % cores.len()]);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .event_interval(EVENT_INTERVAL)
                .build()?;
            let handle = std::thread::Builder::new().name(format!("sigil-quic-{n}")).spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async move {
                    match quinn::Endpoint::new(
                        quinn::EndpointConfig::default(),
                        Some(server_config),
                        socket,
                        Arc::new(quinn::TokioRuntime),
                    ) {
                        Ok(endpoint) => run_worker(endpoint, handler, limits, stats, stopped).await,
                        Err(e) => tracing::error!(worker = n, error = %e, "quic endpoint failed to start"),
                    }
                });
            })?;
            handles.push(handle);
        }
        Ok(QuicServer {
            local_addr,
            stop,
            workers: handles,
            stats,
        })
    }

    /// The bound address (with the real port if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<QuicStats> {
        &self.stats
    }

    /// Stops accepting, drains requests in flight (at most 5 s), closes
    /// every connection and waits for the workers.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let _ = self.stop.send(true);
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl Drop for QuicServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Per-worker state shared by its connections (single thread: `Rc`, `Cell`).
struct Worker<H: Handler> {
    handler: Arc<H>,
    limits: QuicLimits,
    stats: Arc<QuicStats>,
    in_flight: Cell<usize>,
}

async fn run_worker<H: Handler>(
    endpoint: quinn::Endpoint,
    handler: Arc<H>,
    limits: QuicLimits,
    stats: Arc<QuicStats>,
    mut stopped: watch::Receiver<bool>,
) {
    let worker = Rc::new(Worker {
        handler,
        limits,
        stats,
        in_flight: Cell::new(0),
    });
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let worker = Rc::clone(&worker);
                tokio::task::spawn_local(async move {
                    match incoming.await {
                        Ok(connection) => {
                            worker.stats.connections.fetch_add(1, Ordering::Relaxed);
                            serve_connection(worker, connection).await;
                        }
                        Err(e) => {
                            worker.stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(error = %e, "quic handshake failed");
                        }
                    }
                });
            }
            _ = stopped.changed() => break,
        }
    }
    // Graceful: refuse new connections, let requests in flight finish.
    endpoint.set_server_config(None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while worker.in_flight.get() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    endpoint.close(close_code::SHUTDOWN.into(), b"shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
}

fn peer_certificate(connection: &quinn::Connection) -> Option<CertificateDer<'static>> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    chain.into_iter().next()
}

async fn serve_connection<H: Handler>(worker: Rc<Worker<H>>, connection: quinn::Connection) {
    let caller = Rc::new(worker.handler.caller(peer_certificate(&connection)).await);
    while let Ok((send, recv)) = connection.accept_bi().await {
        let worker = Rc::clone(&worker);
        let caller = Rc::clone(&caller);
        tokio::task::spawn_local(serve_stream(worker, caller, send, recv));
    }
}

fn encode_response(response: &WireResponse<Reply>) -> Bytes {
    let mut out = BytesMut::new();
    match to_cbor(response) {
        Ok(body) if write_frame(&body, &mut out).is_ok() => out.freeze(),
        _ => {
            // An answer too large for a frame: say so instead.
            let fallback: WireResponse<Reply> = WireResponse {
                id: response.id,
                result: None,
                error: Some(WireError {
                    code: ErrorCode::Internal,
                    message: "answer exceeds the frame limit".into(),
                }),
            };
            let mut out = BytesMut::new();
            if let Ok(body) = to_cbor(&fallback) {
                let _ = write_frame(&body, &mut out);
            }
            out.freeze()
        }
    }
}

fn error_response(id: u64, code: ErrorCode, message: impl Into<String>) -> Bytes {
    encode_response(&WireResponse {
        id,
        result: None,
        error: Some(WireError {
            code,
            message: message.into(),
        }),
    })
}

/// Best effort to find the request id in an undecodable request.
fn salvage_id(frame: &[u8]) -> u64 {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: u64,
    }
    from_cbor::<IdOnly>(frame).map_or(0, |r| r.id)
}

async fn serve_stream<H: Handler>(
    worker: Rc<Worker<H>>,
    caller: Rc<H::Caller>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let (answers, mut outbox) = mpsc::unbounded_channel::<Bytes>();
    // The writer: coalesces whatever answers are ready into one write.
    let writer = tokio::task::spawn_local(async move {
        let mut batch = BytesMut::new();
        while let Some(first) = outbox.recv().await {
            batch.extend_from_slice(&first);
            while batch.len() < 64 * 1024 {
                match outbox.try_recv() {
                    Ok(more) => batch.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            if send.write_all(&batch).await.is_err() {
                return send;
            }
            batch.clear();
        }
        let _ = send.finish();
        send
    });
    let stream_in_flight = Rc::new(Cell::new(0usize));
    let mut decoder = FrameDecoder::new();
    let limits = worker.limits;
    let failure: Option<(u32, ErrorCode, String)> = loop {
        // Only a partially received frame is on a clock; an idle
        // long-lived stream waits as long as the connection lives.
        let chunk = if decoder.pending() > 0 {
            match tokio::time::timeout(limits.frame_timeout, recv.read_chunk(64 * 1024, true)).await
            {
                Ok(chunk) => chunk,
                Err(_) => {
                    break Some((
                        close_code::FRAME_TIMEOUT,
                        ErrorCode::BadRequest,
                        format!("frame incomplete after {:?}", limits.frame_timeout),
                    ));
                }
            }
        } else {
            recv.read_chunk(64 * 1024, true).await
        };
        let chunk = match chunk {
            Ok(Some(chunk)) => chunk.bytes,
            Ok(None) => {
                break decoder
                    .finish()
                    .err()
                    .map(|e| (close_code::BAD_FRAME, ErrorCode::BadRequest, e.to_string()))
            }
            Err(_) => break None, // reset by the peer or connection lost
        };
        decoder.extend(&chunk);
        let mut fatal = None;
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => dispatch(&worker, &caller, &stream_in_flight, &answers, &frame),
                Ok(None) => break,
                Err(e) => {
                    fatal = Some((close_code::BAD_FRAME, ErrorCode::BadRequest, e.to_string()));
                    break;
                }
            }
        }
        if fatal.is_some() {
            break fatal;
        }
    };
    if let Some((code, error, message)) = failure {
        worker.stats.streams_closed.fetch_add(1, Ordering::Relaxed);
        worker.handler.refused(&caller, error, &message);
        let _ = answers.send(error_response(0, error, message));
        let _ = recv.stop(code.into());
    }
    // Requests still running hold senders; the writer ends when they finish.
    drop(answers);
    if let Ok(send) = writer.await {
        drop(send);
    }
}

fn dispatch<H: Handler>(
    worker: &Rc<Worker<H>>,
    caller: &Rc<H::Caller>,
    stream_in_flight: &Rc<Cell<usize>>,
    answers: &mpsc::UnboundedSender<Bytes>,
    frame: &[u8],
) {
    let wire: WireRequest = match from_cbor(frame) {
        Ok(wire) => wire,
        Err(e) => {
            worker.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
            worker.handler.refused(caller, ErrorCode::BadRequest, &e.0);
            let _ = answers.send(error_response(
                salvage_id(frame),
                ErrorCode::BadRequest,
                e.0,
            ));
            return;
        }
    };
    let id = wire.id;
    let operation = match Operation::from_wire(wire) {
        Ok(operation) => operation,
        Err(e) => {
            worker.stats.requests.fetch_add(1, Ordering::Relaxed);
            worker.handler.refused(caller, ErrorCode::BadRequest, &e.0);
            let _ = answers.send(error_response(id, ErrorCode::BadRequest, e.0));
            return;
        }
    };
    if worker.in_flight.get() >= worker.limits.max_in_flight
        || stream_in_flight.get() >= worker.limits.max_in_flight_per_stream
    {
        worker.stats.requests.fetch_add(1, Ordering::Relaxed);
        worker.stats.overloaded.fetch_add(1, Ordering::Relaxed);
        worker
            .handler
            .refused(caller, ErrorCode::Overloaded, "in-flight limit");
        let _ = answers.send(error_response(
            id,
            ErrorCode::Overloaded,
            "node at its in-flight limit; retry",
        ));
        return;
    }
    worker.in_flight.set(worker.in_flight.get() + 1);
    stream_in_flight.set(stream_in_flight.get() + 1);
    worker.stats.in_flight.fetch_add(1, Ordering::Relaxed);
    let (worker, caller, stream_in_flight, answers) = (
        Rc::clone(worker),
        Rc::clone(caller),
        Rc::clone(stream_in_flight),
        answers.clone(),
    );
    tokio::task::spawn_local(async move {
        let outcome = worker.handler.handle(&caller, operation).await;
        let response = match outcome {
            Ok(result) => WireResponse {
                id,
                result: Some(result),
                error: None,
            },
            Err(error) => WireResponse {
                id,
                result: None,
                error: Some(error),
            },
        };
        let _ = answers.send(encode_response(&response));
        worker.in_flight.set(worker.in_flight.get() - 1);
        stream_in_flight.set(stream_in_flight.get() - 1);
        worker.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        worker.stats.requests.fetch_add(1, Ordering::Relaxed);
    });
}
