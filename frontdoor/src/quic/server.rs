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
//! Misbehaviour costs the offender only (docs/protocol.md, "Streams and
//! framing"): a frame body that is not a valid request but whose id can be
//! read is answered `bad_request` with that id and the stream goes on.
//! Whatever cannot be answered by id closes the stream: an oversized or
//! empty frame, a frame left incomplete longer than
//! [`QuicLimits::frame_timeout`] or cut by the end of the stream, a body
//! without a readable id, id 0, an id already in flight on the stream. The
//! node then stops reading, lets the requests in flight finish and answer,
//! and ends its side with the one answer of id 0: no answer follows it,
//! and a request not answered before it was not carried out.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::share::{Job, Mailbox, Mesh, Placed, Share};
use crate::shared_port::bind_per_worker;
use bytes::{Bytes, BytesMut};
use rustls_pki_types::CertificateDer;
use tokio::sync::{mpsc, watch};

use sigil_proto::request::answerable_id;
use sigil_proto::{
    from_cbor, to_cbor, write_frame, ErrorCode, FrameDecoder, Operation, Reply, WireError,
    WireRequest, WireResponse,
};

/// What the listener calls for each connection and request. Implemented by
/// the appliance ([`crate::api::Appliance`]).
pub trait Handler: Send + Sync + 'static {
    /// Who the peer is, from its client certificate (`None`: it sent none).
    /// Shared by the workers: a request may run on another worker than
    /// the one that owns its connection ([`super::share`]).
    type Caller: Send + Sync + 'static;

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

/// The default limit of admitted requests a node's workers have not yet
/// started (see [`QuicLimits::max_queued`]): as large as the in-flight
/// limit, so it refuses nothing on its own. A/B on the shared 2-core VM
/// (docs/benchmarks/issue-16-overload.md): 64 changed neither goodput nor
/// the refusals' latency at 30,000/s offered, which waited on the
/// kernel's run queue, not behind the workers' signing; to be measured
/// again on a quiet machine.
pub const DEFAULT_MAX_QUEUED: usize = DEFAULT_MAX_IN_FLIGHT;

/// Tasks a worker runs between two polls of its sockets (tokio's default
/// is 61). Polling more often reads (and refuses) new requests sooner
/// while admitted ones are being signed: at 45,000/s offered, three A/B
/// runs gave refusals p50 8.0/10.0/7.1 ms with 61 and 4.1/6.1/5.3 ms with
/// 8, goodput 32.0-32.1K/s vs 28.1-35.2K/s; no change at 10,000/s.
const EVENT_INTERVAL: u32 = 8;

/// Limits of the listener. Start from [`QuicLimits::default`] and set
/// what differs; fields may be added.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct QuicLimits {
    /// Requests in flight on the whole node, all callers, connections and
    /// streams together (the only in-flight limit: there is none per
    /// stream or connection); past it, `overloaded` at once. Split evenly
    /// between the workers, rounded down (no shared counter on the request
    /// path); a connection lives on one worker, so one connection has at
    /// most `max_in_flight / workers` in flight, fewer when others share
    /// its worker.
    pub max_in_flight: usize,
    /// Admitted requests the workers have not yet started, all workers
    /// together (split evenly like `max_in_flight`): a read of a stream
    /// that begins with that many waiting on its worker answers its
    /// requests `overloaded` at once (what one read admits does not count
    /// against itself, so a single burst is not refused by it). Most of
    /// `max_in_flight` waits for the audit sync and costs no CPU; what
    /// waits to start is a queue of work in front of the core, and every
    /// refusal and answer of the worker waits behind it. Bounding it keeps
    /// the refusals of an overloaded node fast, while the in-flight limit
    /// still covers the audit wait.
    pub max_queued: usize,
    /// How long a frame may stay incomplete before its stream is closed.
    pub frame_timeout: Duration,
}

impl Default for QuicLimits {
    fn default() -> QuicLimits {
        QuicLimits {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_queued: DEFAULT_MAX_QUEUED,
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
    /// Whether a worker hands requests to a less loaded one
    /// ([`super::share`]), so that every core works however connections
    /// hash. Default: true.
    pub share_work: bool,
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
            share_work: true,
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
    /// Frame bodies that could not be decoded as requests (answered
    /// `bad_request` by id, or their stream closed when no id was readable).
    pub bad_frames: AtomicU64,
    /// Streams closed by the node: oversized, empty, truncated or stalled
    /// frames, a request without a usable id, an id already in flight.
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
    /// STOP_SENDING: a frame broke the framing rules (oversized, empty),
    /// or a request cannot be answered by its id (none readable, 0, or one
    /// already in flight on the stream).
    pub const BAD_FRAME: u32 = 1;
    /// STOP_SENDING: a frame stayed incomplete too long.
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
        limits.max_queued = (limits.max_queued / workers).max(1);
        let mut handles = Vec::with_capacity(workers);
        let (mesh, mailboxes) = Mesh::new(workers, config.share_work);
        for ((n, socket), mailbox) in sockets.into_iter().enumerate().zip(mailboxes) {
            let parts = WorkerParts {
                handler: Arc::clone(&handler),
                limits,
                stats: Arc::clone(&stats),
                mesh: Arc::clone(&mesh),
                me: n,
                mailbox,
            };
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
                        Ok(endpoint) => run_worker(endpoint, parts, stopped).await,
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
    /// Admitted requests whose task has not started yet.
    queued: Cell<usize>,
    share: Share<H::Caller>,
}

/// What a worker thread starts from.
struct WorkerParts<H: Handler> {
    handler: Arc<H>,
    limits: QuicLimits,
    stats: Arc<QuicStats>,
    mesh: Arc<Mesh<H::Caller>>,
    me: usize,
    mailbox: Mailbox<H::Caller>,
}

async fn run_worker<H: Handler>(
    endpoint: quinn::Endpoint,
    parts: WorkerParts<H>,
    mut stopped: watch::Receiver<bool>,
) {
    let worker = Rc::new(Worker {
        handler: parts.handler,
        limits: parts.limits,
        stats: parts.stats,
        in_flight: Cell::new(0),
        queued: Cell::new(0),
        share: Share::new(parts.mesh, parts.me),
    });
    let Mailbox { inbox, returns } = parts.mailbox;
    tokio::task::spawn_local(serve_inbox(Rc::clone(&worker), inbox));
    let delivering = Rc::clone(&worker);
    tokio::task::spawn_local(async move { delivering.share.deliver(returns).await });
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
    // Its own requests (wherever they run) and the others' it runs.
    while (worker.in_flight.get() > 0 || worker.share.runs_any())
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    endpoint.close(close_code::SHUTDOWN.into(), b"shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
}

/// Runs the requests other workers hand over, a batch per wake-up, and
/// sends each answer back to the worker that owns its stream.
async fn serve_inbox<H: Handler>(
    worker: Rc<Worker<H>>,
    mut inbox: mpsc::UnboundedReceiver<Job<H::Caller>>,
) {
    let mut batch = Vec::with_capacity(64);
    while inbox.recv_many(&mut batch, 64).await > 0 {
        for job in batch.drain(..) {
            let running = worker.share.mesh.running(worker.share.me);
            let (origin, ticket) = job.reply_to();
            let mut reply = ReplyOnce {
                worker: Rc::clone(&worker),
                origin,
                ticket,
                id: job.id,
                answered: false,
            };
            tokio::task::spawn_local(async move {
                let outcome = reply
                    .worker
                    .handler
                    .handle(&job.caller, job.operation)
                    .await;
                reply.send(encode_outcome(reply.id, outcome));
                drop(running);
            });
        }
    }
}

/// Answers a handed-over request exactly once: with its outcome, or, when
/// its task ends without one (a panic in the handler, the worker stopping),
/// with `internal`, so the request on its origin worker, and its in-flight
/// place there, never wait for an answer that cannot come.
struct ReplyOnce<H: Handler> {
    worker: Rc<Worker<H>>,
    origin: usize,
    ticket: u64,
    id: u64,
    answered: bool,
}

impl<H: Handler> ReplyOnce<H> {
    fn send(&mut self, answer: Bytes) {
        self.answered = true;
        self.worker.share.answer(self.origin, self.ticket, answer);
    }
}

impl<H: Handler> Drop for ReplyOnce<H> {
    fn drop(&mut self) {
        if !self.answered {
            let answer = error_response(self.id, ErrorCode::Internal, "the request failed");
            self.worker.share.answer(self.origin, self.ticket, answer);
        }
    }
}

fn peer_certificate(connection: &quinn::Connection) -> Option<CertificateDer<'static>> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    chain.into_iter().next()
}

async fn serve_connection<H: Handler>(worker: Rc<Worker<H>>, connection: quinn::Connection) {
    let caller = Arc::new(worker.handler.caller(peer_certificate(&connection)).await);
    while let Ok((send, recv)) = connection.accept_bi().await {
        let worker = Rc::clone(&worker);
        let caller = Arc::clone(&caller);
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

fn encode_outcome(id: u64, outcome: Result<Reply, WireError>) -> Bytes {
    encode_response(&match outcome {
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
    })
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

/// Why the node stops reading a stream; it answers with id 0 once the
/// requests in flight on it have answered.
struct StreamClose {
    /// The STOP_SENDING code; `None` when the client's side had already
    /// ended (QUIC has nothing left to stop).
    stop_sending: Option<u32>,
    /// The message of the id-0 answer.
    message: String,
}

impl StreamClose {
    fn stop(code: u32, message: impl Into<String>) -> StreamClose {
        StreamClose {
            stop_sending: Some(code),
            message: message.into(),
        }
    }
}

/// The ids of the requests in flight on one stream, to see a second
/// request with an id in flight (its answer could not be told apart).
type InFlightIds = Rc<RefCell<HashSet<u64>>>;

async fn serve_stream<H: Handler>(
    worker: Rc<Worker<H>>,
    caller: Arc<H::Caller>,
    send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let (answers, outbox) = mpsc::unbounded_channel::<Bytes>();
    let writer = tokio::task::spawn_local(write_answers(send, outbox));
    let in_flight_ids = InFlightIds::default();
    let outcome = read_requests(&worker, &caller, &mut recv, &in_flight_ids, &answers).await;
    // Requests still running hold senders; the writer ends once each has
    // sent its answer.
    drop(answers);
    let last = match outcome {
        Ok(()) => None,
        Err(close) => {
            worker.stats.streams_closed.fetch_add(1, Ordering::Relaxed);
            worker
                .handler
                .refused(&caller, ErrorCode::BadRequest, &close.message);
            if let Some(code) = close.stop_sending {
                let _ = recv.stop(code.into());
            }
            Some(error_response(0, ErrorCode::BadRequest, close.message))
        }
    };
    let Ok(Some(mut send)) = writer.await else {
        return;
    };
    if let Some(last) = last {
        let _ = send.write_all(&last).await;
    }
    let _ = send.finish();
}

/// Answers handed to quinn in one write, at most.
const ANSWERS_PER_WRITE: usize = 64;

/// Writes answers as they come, whatever is ready in one write: the
/// encoded answers themselves, not copied (quinn packs them into packets
/// when the connection next transmits, with the other streams' answers).
/// Returns the stream, unfinished, once every sender is gone; `None` when
/// the peer stopped reading or the connection was lost.
async fn write_answers(
    mut send: quinn::SendStream,
    mut outbox: mpsc::UnboundedReceiver<Bytes>,
) -> Option<quinn::SendStream> {
    let mut batch = Vec::with_capacity(ANSWERS_PER_WRITE);
    while outbox.recv_many(&mut batch, ANSWERS_PER_WRITE).await > 0 {
        if send.write_all_chunks(&mut batch).await.is_err() {
            return None;
        }
        batch.clear();
    }
    Some(send)
}

/// Reads and dispatches requests until the client ends the stream (`Ok`,
/// also when it reset the stream or the connection was lost) or the
/// stream must close.
async fn read_requests<H: Handler>(
    worker: &Rc<Worker<H>>,
    caller: &Arc<H::Caller>,
    recv: &mut quinn::RecvStream,
    in_flight_ids: &InFlightIds,
    answers: &mpsc::UnboundedSender<Bytes>,
) -> Result<(), StreamClose> {
    let mut decoder = FrameDecoder::new();
    let frame_timeout = worker.limits.frame_timeout;
    loop {
        // Only a partially received frame is on a clock; an idle
        // long-lived stream waits as long as the connection lives.
        let chunk = if decoder.pending() > 0 {
            tokio::time::timeout(frame_timeout, recv.read_chunk(64 * 1024, true))
                .await
                .map_err(|_| {
                    StreamClose::stop(
                        close_code::FRAME_TIMEOUT,
                        format!("frame incomplete after {frame_timeout:?}"),
                    )
                })?
        } else {
            recv.read_chunk(64 * 1024, true).await
        };
        // The work that waited on this worker before this read: what this
        // read admits does not count, so one stream's burst is never
        // refused by it, only a worker already behind.
        let ahead = worker.queued.get();
        match chunk {
            Ok(Some(chunk)) => decoder.extend(&chunk.bytes),
            // Finished inside a frame: every byte arrived, so there is
            // nothing to stop.
            Ok(None) => {
                return decoder.finish().map_err(|e| StreamClose {
                    stop_sending: None,
                    message: e.to_string(),
                })
            }
            Err(_) => return Ok(()), // reset by the peer or connection lost
        }
        while let Some(frame) = decoder
            .next_frame()
            .map_err(|e| StreamClose::stop(close_code::BAD_FRAME, e.to_string()))?
        {
            dispatch(worker, caller, in_flight_ids, answers, ahead, &frame)?;
        }
    }
}

/// Refuses a request whose id is already in flight on the stream: its
/// answer could not be told from the other's.
fn check_unique(in_flight_ids: &InFlightIds, id: u64) -> Result<(), StreamClose> {
    if in_flight_ids.borrow().contains(&id) {
        return Err(StreamClose::stop(
            close_code::BAD_FRAME,
            format!("request id {id} is already in flight on this stream"),
        ));
    }
    Ok(())
}

/// Answers one frame body: refuses it by id, closes the stream (`Err`),
/// or admits it as a task that answers when done. `ahead`: the admitted
/// requests that were waiting to start when its read began.
fn dispatch<H: Handler>(
    worker: &Rc<Worker<H>>,
    caller: &Arc<H::Caller>,
    in_flight_ids: &InFlightIds,
    answers: &mpsc::UnboundedSender<Bytes>,
    ahead: usize,
    frame: &[u8],
) -> Result<(), StreamClose> {
    let wire: WireRequest = match from_cbor(frame) {
        Ok(wire) => wire,
        Err(e) => {
            worker.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
            let Some(id) = answerable_id(frame) else {
                return Err(StreamClose::stop(
                    close_code::BAD_FRAME,
                    format!("{}; no request id to answer", e.0),
                ));
            };
            check_unique(in_flight_ids, id.get())?;
            worker.handler.refused(caller, ErrorCode::BadRequest, &e.0);
            let _ = answers.send(error_response(id.get(), ErrorCode::BadRequest, e.0));
            return Ok(());
        }
    };
    let id = wire.id;
    if id == 0 {
        return Err(StreamClose::stop(
            close_code::BAD_FRAME,
            "request id 0 is reserved (ids run from 1)",
        ));
    }
    check_unique(in_flight_ids, id)?;
    let operation = match Operation::from_wire(wire) {
        Ok(operation) => operation,
        Err(e) => {
            worker.stats.requests.fetch_add(1, Ordering::Relaxed);
            worker.handler.refused(caller, ErrorCode::BadRequest, &e.0);
            let _ = answers.send(error_response(id, ErrorCode::BadRequest, e.0));
            return Ok(());
        }
    };
    let full = if worker.in_flight.get() >= worker.limits.max_in_flight {
        Some(("in-flight limit", "node at its in-flight limit; retry"))
    } else if ahead >= worker.limits.max_queued {
        Some(("queue limit", "node behind on its work; retry"))
    } else {
        None
    };
    if let Some((reason, message)) = full {
        worker.stats.requests.fetch_add(1, Ordering::Relaxed);
        worker.stats.overloaded.fetch_add(1, Ordering::Relaxed);
        worker
            .handler
            .refused(caller, ErrorCode::Overloaded, reason);
        let _ = answers.send(error_response(id, ErrorCode::Overloaded, message));
        return Ok(());
    }
    let admitted = Admitted::new(worker, in_flight_ids, id);
    let queued = Queued::new(worker);
    let (caller, answers) = (Arc::clone(caller), answers.clone());
    tokio::task::spawn_local(async move {
        drop(queued);
        let worker = &admitted.worker;
        let answer = match worker.share.offload(id, &caller, operation) {
            Placed::Elsewhere(answer) => answer.await.unwrap_or_else(|_| {
                error_response(
                    id,
                    ErrorCode::Unavailable,
                    "the worker running the request stopped; retry",
                )
            }),
            Placed::Here(operation) => {
                let _running = worker.share.mesh.running(worker.share.me);
                encode_outcome(id, worker.handler.handle(&caller, operation).await)
            }
        };
        let _ = answers.send(answer);
        admitted
            .worker
            .stats
            .requests
            .fetch_add(1, Ordering::Relaxed);
    });
    Ok(())
}

/// An admitted request whose task has not started: counted in
/// [`Worker::queued`] until its task first runs (or is dropped unrun).
struct Queued<H: Handler>(Rc<Worker<H>>);

impl<H: Handler> Queued<H> {
    fn new(worker: &Rc<Worker<H>>) -> Queued<H> {
        worker.queued.set(worker.queued.get() + 1);
        Queued(Rc::clone(worker))
    }
}

impl<H: Handler> Drop for Queued<H> {
    fn drop(&mut self) {
        self.0.queued.set(self.0.queued.get() - 1);
    }
}

/// A request counted in flight (on its worker, in the stats, by id on its
/// stream) until it is dropped: when its task ends, even by a panic.
struct Admitted<H: Handler> {
    worker: Rc<Worker<H>>,
    in_flight_ids: InFlightIds,
    id: u64,
}

impl<H: Handler> Admitted<H> {
    fn new(worker: &Rc<Worker<H>>, in_flight_ids: &InFlightIds, id: u64) -> Admitted<H> {
        worker.in_flight.set(worker.in_flight.get() + 1);
        worker.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        in_flight_ids.borrow_mut().insert(id);
        Admitted {
            worker: Rc::clone(worker),
            in_flight_ids: Rc::clone(in_flight_ids),
            id,
        }
    }
}

impl<H: Handler> Drop for Admitted<H> {
    fn drop(&mut self) {
        self.worker.in_flight.set(self.worker.in_flight.get() - 1);
        self.worker.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.in_flight_ids.borrow_mut().remove(&self.id);
    }
}
