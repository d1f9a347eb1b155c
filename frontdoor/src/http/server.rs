//! The HTTP listener: one pinned OS thread per worker, each with its own
//! monoio runtime (io_uring where the kernel allows, epoll otherwise:
//! `FusionDriver`) and its own listening socket on the shared port
//! (SO_REUSEPORT; the kernel spreads connections). Workers share only the
//! [`Site`], whose documents are read without locks.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use monoio::io::{CancelableAsyncReadRent, CancelableAsyncWriteRentExt, Canceller};
use monoio::net::{TcpListener, TcpStream};
use signer::Timestamp;
use socket2::{Domain, Protocol, Socket, Type};

use super::exchange::{parse, respond, Limits, Parse, Response, Site};

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
    pub limits: Limits,
}

impl HttpConfig {
    /// Defaults for `listen`: one worker per core, pinned, default limits.
    pub fn new(listen: SocketAddr) -> HttpConfig {
        HttpConfig {
            listen,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pin_to_cores: true,
            limits: Limits::default(),
        }
    }
}

/// Counters of the HTTP side, for `/metrics`.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Requests answered (any status).
    pub requests: AtomicU64,
    /// Connections refused or cut: bad requests, oversized heads, timeouts.
    pub rejected: AtomicU64,
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

fn reuseport_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

impl HttpServer {
    /// Binds one listener per worker on the shared port and starts the
    /// workers.
    ///
    /// # Errors
    /// When the address cannot be bound or a thread or runtime cannot start.
    pub fn start(config: HttpConfig, site: Arc<Site>) -> io::Result<HttpServer> {
        let workers = config.workers.max(1);
        // The first bind settles the port (it may be 0); the others join it.
        let first = reuseport_listener(config.listen)?;
        let local_addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..workers {
            listeners.push(reuseport_listener(local_addr)?);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(HttpStats::default());
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let mut handles = Vec::with_capacity(workers);
        for (n, listener) in listeners.into_iter().enumerate() {
            let site = Arc::clone(&site);
            let stop = Arc::clone(&stop);
            let stats = Arc::clone(&stats);
            let limits = config.limits;
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
                    run_worker(listener, &site, &limits, &stop, &stats);
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
    limits: &Limits,
    stop: &Arc<AtomicBool>,
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
                    let site = Arc::clone(site);
                    let stats = Arc::clone(stats);
                    let stop = Arc::clone(stop);
                    let limits = *limits;
                    monoio::spawn(async move {
                        serve_connection(stream, &site, &limits, &stats, &stop).await;
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
    mut stream: TcpStream,
    site: &Site,
    limits: &Limits,
    stats: &HttpStats,
    stop: &AtomicBool,
) {
    let rng = SystemRandom::new();
    let _ = stream.set_nodelay(true);
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
            let wait = if pending.is_empty() {
                limits.idle_timeout
            } else {
                head_deadline.saturating_duration_since(std::time::Instant::now())
            };
            // monoio reads into a Vec's spare capacity and sets its length.
            let chunk = Vec::with_capacity(
                limits
                    .max_head_bytes
                    .saturating_sub(pending.len())
                    .clamp(1, 4096),
            );
            match read_within(&mut stream, chunk, wait).await {
                Some((Ok(0), _)) => return,
                Some((Ok(_), chunk)) => pending.extend_from_slice(&chunk),
                Some((Err(_), _)) => return,
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
            Parse::Complete { head, consumed } => {
                let now = Timestamp::from_system_time(SystemTime::now());
                let response = respond(site, &head, limits, now, jitter(&rng));
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

/// Reads into `buffer`'s spare capacity, or gives up after `limit`. The
/// read is cancelled and awaited, never just dropped: on io_uring a dropped
/// read stays in the ring and keeps the socket open after we let go of it.
async fn read_within(
    stream: &mut TcpStream,
    buffer: Vec<u8>,
    limit: Duration,
) -> Option<(io::Result<usize>, Vec<u8>)> {
    let canceller = Canceller::new();
    let read = stream.cancelable_read(buffer, canceller.handle());
    let mut read = std::pin::pin!(read);
    monoio::select! {
        result = &mut read => Some(result),
        _ = monoio::time::sleep(limit) => {
            canceller.cancel();
            let _ = (&mut read).await;
            None
        }
    }
}

async fn write_response(
    stream: &mut TcpStream,
    response: &Response,
    send_body: bool,
    limits: &Limits,
) -> io::Result<()> {
    let mut wire = response.head_bytes();
    if send_body {
        wire.extend_from_slice(&response.body);
    }
    // As for reads: a slow reader's write is cancelled and awaited.
    let canceller = Canceller::new();
    let write = CancelableAsyncWriteRentExt::write_all(stream, wire, canceller.handle());
    let mut write = std::pin::pin!(write);
    monoio::select! {
        (result, _) = &mut write => result.map(|_| ()),
        _ = monoio::time::sleep(limits.write_timeout) => {
            canceller.cancel();
            let _ = (&mut write).await;
            Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"))
        }
    }
}
