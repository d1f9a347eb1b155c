//! The HTTP listener: one pinned OS thread per worker, each with its own
//! monoio runtime (io_uring where the kernel allows, epoll otherwise:
//! `FusionDriver`) and its own listening socket on the shared port
//! (SO_REUSEPORT; the kernel spreads connections). Workers share only the
//! [`Site`], whose documents are read without locks.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::connections::{ConnectionTable, Ticket};
use crate::shared_port::bind_per_worker;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use monoio::io::{CancelableAsyncReadRent, CancelableAsyncWriteRentExt, Canceller};
use monoio::net::{TcpListener, TcpStream};
use signer::Timestamp;

use super::exchange::{parse, respond, HttpLimits, Parse, Reply, Response, Site, TenantWait};

/// Where and how the HTTP endpoints listen.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Address to bind; port 0 picks a free one (shared by all workers).
    pub listen: SocketAddr,
    /// Worker threads. Default: the number of cores.
    pub workers: usize,
    /// Pin worker N to core N. Default: true.
    pub pin_to_cores: bool,
    /// Request limits and timeouts.
    pub limits: HttpLimits,
    /// Serve HTTPS with this configuration; `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Connections open at once, all workers (each takes its share); at
    /// the cap the longest-idle one is closed, or the new one refused when
    /// none is idle. Default 4,096.
    pub max_connections: usize,
}

impl HttpConfig {
    /// Defaults for `listen`: one worker per core, pinned, default limits.
    pub fn new(listen: SocketAddr) -> HttpConfig {
        HttpConfig {
            listen,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pin_to_cores: true,
            limits: HttpLimits::default(),
            tls: None,
            max_connections: 4_096,
        }
    }
}

/// The rustls configuration for HTTPS: TLS 1.2 and 1.3 (SPs' HTTP clients
/// vary), ALPN `http/1.1`, no client certificates.
///
/// # Errors
/// When rustls refuses the certificate or key.
pub fn tls_config(
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Counters of the HTTP side, for `/metrics`.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Requests answered (any status).
    pub requests: AtomicU64,
    /// Connections refused or cut: bad requests, oversized heads, timeouts.
    pub rejected: AtomicU64,
    /// Connections open now.
    pub connections: AtomicU64,
    /// Connections refused at the cap (every open one was busy).
    pub refused: AtomicU64,
    /// Idle connections closed to make room at the cap.
    pub evicted: AtomicU64,
    /// Document requests that waited for their tenant's load past
    /// [`HttpLimits::tenant_load_wait`] (answered `503`).
    pub tenant_wait_timeouts: AtomicU64,
}

/// The running listener. Dropping it (or [`HttpServer::shutdown`]) stops
/// accepting; connections in flight finish their current request.
#[derive(Debug)]
pub struct HttpServer {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    stats: Arc<HttpStats>,
}

impl HttpServer {
    /// Binds one listener per worker on the shared port and starts the
    /// workers.
    ///
    /// # Errors
    /// When the address cannot be bound or a thread or runtime cannot start.
    pub fn start(config: HttpConfig, site: Arc<Site>) -> io::Result<HttpServer> {
        let workers = config.workers.max(1);
        let listeners: Vec<std::net::TcpListener> = bind_per_worker(config.listen, workers)?;
        let local_addr = listeners[0].local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(HttpStats::default());
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let mut handles = Vec::with_capacity(workers);
        let per_worker = config.max_connections.div_ceil(workers);
        for (n, listener) in listeners.into_iter().enumerate() {
            let site = Arc::clone(&site);
            let stop = Arc::clone(&stop);
            let stats = Arc::clone(&stats);
            let limits = config.limits;
            let tls = config.tls.clone();
            let core = if config.pin_to_cores && !cores.is_empty() {
                Some(cores[n % cores.len()])
            } else {
                None
            };
            let handle = std::thread::Builder::new()
                .name(format!("sigil-http-{n}"))
                .spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    let table = ConnectionTable::new(per_worker, Arc::clone(&stats));
                    run_worker(
                        listener,
                        &site,
                        &limits,
                        tls.as_ref(),
                        &stop,
                        &table,
                        &stats,
                    );
                })?;
            handles.push(handle);
        }
        Ok(HttpServer {
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
    pub fn stats(&self) -> &Arc<HttpStats> {
        &self.stats
    }

    /// Stops accepting and waits for the workers.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// How often an idle accept loop looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

fn run_worker(
    listener: std::net::TcpListener,
    site: &Arc<Site>,
    limits: &HttpLimits,
    tls: Option<&Arc<rustls::ServerConfig>>,
    stop: &Arc<AtomicBool>,
    table: &Rc<ConnectionTable>,
    stats: &Arc<HttpStats>,
) {
    let runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build();
    let mut runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "http worker cannot start its runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(error = %e, "http worker cannot adopt its listener");
                return;
            }
        };
        'accepting: while !stop.load(Ordering::Acquire) {
            // One accept in flight at a time, kept across stop-flag polls. On
            // io_uring a dropped accept would stay in the ring and swallow the
            // next connection, so it is cancelled and awaited instead.
            let canceller = Canceller::new();
            let accept = listener.cancelable_accept(canceller.handle());
            let mut accept = std::pin::pin!(accept);
            let accepted = loop {
                monoio::select! {
                    result = &mut accept => break result,
                    _ = monoio::time::sleep(STOP_POLL) => {
                        if stop.load(Ordering::Acquire) {
                            canceller.cancel();
                            let _ = (&mut accept).await;
                            break 'accepting;
                        }
                    }
                }
            };
            match accepted {
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    monoio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok((stream, _peer)) => {
                    let Some(ticket) = table.admit() else {
                        continue; // every connection busy: this one is refused
                    };
                    let site = Arc::clone(site);
                    let stats = Arc::clone(stats);
                    let stop = Arc::clone(stop);
                    let limits = *limits;
                    let tls = match tls
                        .map(|config| rustls::ServerConnection::new(Arc::clone(config)))
                        .transpose()
                    {
                        Ok(tls) => tls,
                        Err(e) => {
                            tracing::error!(error = %e, "tls session");
                            continue;
                        }
                    };
                    monoio::spawn(async move {
                        let channel = Channel { stream, tls };
                        serve_connection(channel, &site, &limits, &stats, &stop, &ticket).await;
                    });
                }
            }
        }
    });
}

fn jitter(rng: &SystemRandom) -> f64 {
    let mut bytes = [0u8; 2];
    if rng.fill(&mut bytes).is_err() {
        return 0.0;
    }
    f64::from(u16::from_le_bytes(bytes)) / 65_536.0
}

async fn serve_connection(
    mut stream: Channel,
    site: &Site,
    limits: &HttpLimits,
    stats: &HttpStats,
    stop: &AtomicBool,
    ticket: &Ticket,
) {
    let rng = SystemRandom::new();
    let _ = stream.stream.set_nodelay(true);
    let mut pending: Vec<u8> = Vec::with_capacity(1024);
    let mut served = 0u32;
    loop {
        // Read until a whole head is there, under the idle timeout before
        // the first byte and the head timeout after it.
        let head_deadline = std::time::Instant::now() + limits.head_timeout;
        let parsed = loop {
            match parse(&pending, limits) {
                Parse::Incomplete => {}
                done => break done,
            }
            // Waiting for a request, a connection may be closed to make room.
            let (wait, evict) = if pending.is_empty() {
                ticket.idle();
                (limits.idle_timeout, Some(ticket.evicted()))
            } else {
                ticket.busy();
                (
                    head_deadline.saturating_duration_since(std::time::Instant::now()),
                    None,
                )
            };
            let room = limits
                .max_head_bytes
                .saturating_sub(pending.len())
                .clamp(1, 4096);
            let read = stream.read(&mut pending, room, wait, evict).await;
            ticket.busy();
            match read {
                Some(Ok(0)) | Some(Err(_)) => return,
                Some(Ok(_)) => {}
                None => {
                    if !pending.is_empty() {
                        stats.rejected.fetch_add(1, Ordering::Relaxed);
                        let _ = write_response(
                            &mut stream,
                            &Response::error(408, "request timeout"),
                            false,
                            limits,
                        )
                        .await;
                    }
                    return;
                }
            }
        };
        let (response, send_body, consumed) = match parsed {
            Parse::Complete { mut head, consumed } => {
                // A POST's body: read whole, within the head's deadline.
                let consumed = consumed + head.content_length;
                while pending.len() < consumed {
                    let wait = head_deadline.saturating_duration_since(std::time::Instant::now());
                    let room = (consumed - pending.len()).min(16 * 1024);
                    match stream.read(&mut pending, room, wait, None).await {
                        Some(Ok(0)) | Some(Err(_)) => return,
                        Some(Ok(_)) => {}
                        None => {
                            stats.rejected.fetch_add(1, Ordering::Relaxed);
                            let timeout = Response::error(408, "request timeout");
                            let _ = write_response(&mut stream, &timeout, true, limits).await;
                            return;
                        }
                    }
                }
                if head.content_length > 0 {
                    head.body = bytes::Bytes::copy_from_slice(
                        &pending[consumed - head.content_length..consumed],
                    );
                }
                let now = Timestamp::from_system_time(SystemTime::now());
                let response = match respond(site, &head, limits, now, jitter(&rng)) {
                    Reply::Now(response) => response,
                    Reply::Oauth { wait, keep_alive } => {
                        let answered = monoio::select! {
                            response = wait => response,
                            _ = monoio::time::sleep(limits.oauth_wait) => {
                                stats.tenant_wait_timeouts.fetch_add(1, Ordering::Relaxed);
                                super::oauth::oauth_error(
                                    503,
                                    "temporarily_unavailable",
                                    "the answer took too long; retry",
                                )
                            }
                        };
                        super::exchange::finish(answered, keep_alive, None)
                    }
                    Reply::AfterLoad { wait, then } => {
                        // Other connections of this worker go on meanwhile.
                        let loaded = wait_within(wait, limits.tenant_load_wait).await;
                        if loaded.is_none() {
                            stats.tenant_wait_timeouts.fetch_add(1, Ordering::Relaxed);
                        }
                        let now = Timestamp::from_system_time(SystemTime::now());
                        then.answer(site, loaded, limits, now, jitter(&rng))
                    }
                };
                let send_body = response.sends_body(head.method);
                (response, send_body, consumed)
            }
            Parse::Invalid(response) => {
                stats.rejected.fetch_add(1, Ordering::Relaxed);
                (response, true, pending.len())
            }
            Parse::Incomplete => return,
        };
        pending.drain(..consumed);
        served += 1;
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let mut response = response;
        if served >= limits.max_requests_per_connection || stop.load(Ordering::Acquire) {
            response.close = true;
        }
        if write_response(&mut stream, &response, send_body, limits)
            .await
            .is_err()
            || response.close
        {
            return;
        }
    }
}

/// Waits for a tenant's load, or gives up after `limit` (the load goes on).
async fn wait_within(wait: TenantWait, limit: Duration) -> Option<super::exchange::Loaded> {
    monoio::select! {
        loaded = wait => Some(loaded),
        _ = monoio::time::sleep(limit) => None,
    }
}

/// Reads into `buffer`'s spare capacity, or gives up after `limit` (or
/// when `evict` is signalled). The read is cancelled and awaited, never
/// just dropped: on io_uring a dropped read stays in the ring and keeps
/// the socket open after we let go of it.
async fn read_within(
    stream: &mut TcpStream,
    buffer: Vec<u8>,
    limit: Duration,
    evict: Option<&tokio::sync::Notify>,
) -> Option<(io::Result<usize>, Vec<u8>)> {
    let canceller = Canceller::new();
    let read = stream.cancelable_read(buffer, canceller.handle());
    let mut read = std::pin::pin!(read);
    let evicted = async {
        match evict {
            Some(notify) => notify.notified().await,
            None => std::future::pending().await,
        }
    };
    monoio::select! {
        result = &mut read => Some(result),
        _ = monoio::time::sleep(limit) => {
            canceller.cancel();
            let _ = (&mut read).await;
            None
        }
        _ = evicted => {
            canceller.cancel();
            let _ = (&mut read).await;
            None
        }
    }
}

async fn write_response(
    stream: &mut Channel,
    response: &Response,
    send_body: bool,
    limits: &HttpLimits,
) -> io::Result<()> {
    let mut wire = response.head_bytes();
    if send_body {
        wire.extend_from_slice(&response.body);
    }
    stream.write_all(wire, limits.write_timeout).await
}

/// A connection's byte channel: plain TCP, or TLS with rustls driven
/// sans-IO over the same cancelable reads and writes (so timeouts and
/// io_uring cancellation behave the same with and without TLS).
struct Channel {
    stream: TcpStream,
    tls: Option<rustls::ServerConnection>,
}

impl Channel {
    /// Appends up to `max` bytes of plaintext to `into`. `Some(Ok(0))`: the
    /// peer closed; `None`: nothing within `limit`.
    async fn read(
        &mut self,
        into: &mut Vec<u8>,
        max: usize,
        limit: Duration,
        evict: Option<&tokio::sync::Notify>,
    ) -> Option<io::Result<usize>> {
        let Channel { stream, tls } = self;
        let Some(tls) = tls else {
            // monoio reads into a Vec's spare capacity and sets its length.
            return match read_within(stream, Vec::with_capacity(max), limit, evict).await? {
                (Ok(n), chunk) => {
                    into.extend_from_slice(&chunk);
                    Some(Ok(n))
                }
                (Err(e), _) => Some(Err(e)),
            };
        };
        let deadline = std::time::Instant::now() + limit;
        loop {
            let mut plain = vec![0u8; max];
            match std::io::Read::read(&mut tls.reader(), &mut plain) {
                Ok(n) => {
                    into.extend_from_slice(&plain[..n]);
                    return Some(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Some(Err(e)),
            }
            if tls.wants_write() {
                if let Err(e) = flush_tls(stream, tls, limit).await {
                    return Some(Err(e));
                }
            }
            let wait = deadline.saturating_duration_since(std::time::Instant::now());
            if wait.is_zero() {
                return None;
            }
            match read_within(stream, Vec::with_capacity(16 * 1024), wait, evict).await? {
                (Ok(0), _) => return Some(Ok(0)),
                (Ok(_), cipher) => {
                    if let Err(e) = tls.read_tls(&mut cipher.as_slice()) {
                        return Some(Err(e));
                    }
                    if let Err(e) = tls.process_new_packets() {
                        // Tell the peer why (an alert), then give up.
                        let _ = flush_tls(stream, tls, limit).await;
                        return Some(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                    }
                }
                (Err(e), _) => return Some(Err(e)),
            }
        }
    }

    /// Writes all of `bytes` (encrypted when TLS), within `limit`.
    async fn write_all(&mut self, bytes: Vec<u8>, limit: Duration) -> io::Result<()> {
        let Channel { stream, tls } = self;
        match tls {
            None => write_within(stream, bytes, limit).await,
            Some(tls) => {
                std::io::Write::write_all(&mut tls.writer(), &bytes)?;
                flush_tls(stream, tls, limit).await
            }
        }
    }
}

async fn flush_tls(
    stream: &mut TcpStream,
    tls: &mut rustls::ServerConnection,
    limit: Duration,
) -> io::Result<()> {
    let mut cipher = Vec::new();
    while tls.wants_write() {
        tls.write_tls(&mut cipher)?;
    }
    if cipher.is_empty() {
        return Ok(());
    }
    write_within(stream, cipher, limit).await
}

async fn write_within(stream: &mut TcpStream, wire: Vec<u8>, limit: Duration) -> io::Result<()> {
    // As for reads: a slow reader's write is cancelled and awaited.
    let canceller = Canceller::new();
    let write = CancelableAsyncWriteRentExt::write_all(stream, wire, canceller.handle());
    let mut write = std::pin::pin!(write);
    monoio::select! {
        (result, _) = &mut write => result.map(|_| ()),
        _ = monoio::time::sleep(limit) => {
            canceller.cancel();
            let _ = (&mut write).await;
            Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"))
        }
    }
}
