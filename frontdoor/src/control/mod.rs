//! The control-plane HTTP listener: SCIM 2.0 provisioning today (and the
//! OAuth endpoints that follow), on hyper under axum's router on the
//! control runtime (tokio), apart from the hand-written monoio listener
//! that serves the hot documents (JWKS, discovery, metadata).
//!
//! What it guards: a cap on open connections (beyond it a new connection
//! is closed at once), a deadline for a request's head and one for the
//! whole request (body included), a body limit (413 beyond it, as SCIM
//! error JSON), TLS with the node's certificate from the deployment CA
//! when the node serves HTTPS. It stops with the node: no new
//! connection, requests in flight finish (bounded), then it closes.
//!
//! Modules: [`scim`] (routing, authentication, errors, discovery),
//! [`users`] and [`groups`] (the resources), [`bulk`] (`/Bulk`).

pub mod bulk;
pub mod bulk_create;
pub mod groups;
pub mod scim;
pub mod types;
pub mod users;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Semaphore};

/// Settings of the control listener.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// The base URL clients see (`location`s, `$ref`s); without a trailing
    /// slash.
    pub public_url: String,
    /// TLS, when the node serves HTTPS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Largest request body, in bytes (413 beyond).
    pub max_body: usize,
    /// Most connections open at once.
    pub max_connections: usize,
    /// How long a client may take to send a request's head (and a TLS
    /// handshake).
    pub header_timeout: Duration,
    /// How long a request may take, body and answer included (503 beyond).
    pub request_timeout: Duration,
}

impl ControlConfig {
    /// The defaults: 1 MiB bodies, 1,024 connections, 10 s for a head,
    /// 30 s for a request.
    pub fn new(public_url: String) -> ControlConfig {
        ControlConfig {
            public_url,
            tls: None,
            max_body: 1 << 20,
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// The running control listener.
#[derive(Debug)]
pub struct ControlServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    done: Option<tokio::task::JoinHandle<()>>,
    runtime: tokio::runtime::Handle,
}

impl ControlServer {
    /// Serves `scim` on `runtime` from `listener` (bound by the caller, so
    /// that it knows the address before it names its public URL).
    ///
    /// # Errors
    /// When the listener cannot be handed to the runtime.
    pub fn start(
        config: ControlConfig,
        listener: std::net::TcpListener,
        scim: Arc<types::Scim>,
        runtime: &tokio::runtime::Handle,
    ) -> std::io::Result<ControlServer> {
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let (stop, stopped) = watch::channel(false);
        let router = scim::router(scim);
        let done = runtime.spawn(accept(listener, router, config, stopped));
        Ok(ControlServer {
            local_addr,
            stop,
            done: Some(done),
            runtime: runtime.clone(),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets requests in flight finish (at most 10 s), and
    /// returns when it is closed.
    pub fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(done) = self.done.take() {
            let _ = self.runtime.block_on(done);
        }
    }
}

async fn accept(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    config: ControlConfig,
    mut stopped: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let acceptor = config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: breathe, then go on.
                tracing::warn!(error = %e, "control listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (router, watcher, acceptor) = (router.clone(), graceful.watcher(), acceptor.clone());
        let header_timeout = config.header_timeout;
        tokio::spawn(async move {
            match acceptor {
                None => serve(stream, router, watcher, header_timeout).await,
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => serve(tls, router, watcher, header_timeout).await,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "control listener: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!("control listener: TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("control listener: requests still running after 10 s were cut");
    }
}

async fn serve<I>(
    io: I,
    router: axum::Router,
    watcher: hyper_util::server::graceful::Watcher,
    header_timeout: Duration,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(router);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(error = %e, "control listener: connection ended");
    }
}
