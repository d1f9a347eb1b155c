//! The Rust client of `sigil/1`, used by `sigil client` and `sigil-perf`.
//!
//! One QUIC connection, a few long-lived bidirectional streams, many
//! requests in flight on each (pipelining): [`Client::call`] picks a stream
//! round-robin, writes the request, and resolves when the answer with its
//! id arrives, in whatever order the node answers. Needs a tokio runtime.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use rustls_pki_types::CertificateDer;
use tokio::sync::{mpsc, oneshot};

use crate::credentials::Credentials;
use crate::{
    from_cbor, tls, to_cbor, write_frame, ErrorCode, FrameDecoder, Operation, WireError,
    WireResponse,
};

/// Why a call got no result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The node answered with an error code.
    #[error("{}: {}", .0.code, .0.message)]
    Refused(WireError),
    /// The connection or stream failed before an answer came.
    #[error("transport: {0}")]
    Transport(String),
    /// The answer could not be decoded as the expected result.
    #[error("malformed answer: {0}")]
    Malformed(String),
}

impl CallError {
    /// The error code when the node refused; `None` for transport failures.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            CallError::Refused(error) => Some(error.code),
            _ => None,
        }
    }
}

/// How to reach a node and who to be.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The node's QUIC address.
    pub target: SocketAddr,
    /// The name to check the node's certificate against (a DNS name or the
    /// IP address as text).
    pub server_name: String,
    /// The deployment CA that signed the node's certificate.
    pub ca: CertificateDer<'static>,
    /// The caller's certificate and key; `None` connects without one (the
    /// node then answers `unauthenticated`).
    pub identity: Option<Credentials>,
    /// Streams to spread requests over.
    pub streams: usize,
    /// The ACK-eliciting threshold asked of the node
    /// ([`crate::tls::ACK_THRESHOLD`] by default; 0: QUIC's default).
    pub ack_threshold: u32,
}

/// The requests waiting on a lane, by id: each gets its answer's frame
/// (decoded only as far as its id and error: the caller decodes the
/// result, or not at all, [`Client::call_unit`]).
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Bytes, CallError>>>>>;

struct Lane {
    requests: mpsc::UnboundedSender<Bytes>,
    pending: Pending,
}

/// A connected client. Cheap to share behind an `Arc`; calls from many
/// tasks at once are pipelined.
pub struct Client {
    connection: quinn::Connection,
    endpoint: quinn::Endpoint,
    lanes: Vec<Lane>,
    next_lane: AtomicUsize,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("remote", &self.connection.remote_address())
            .finish_non_exhaustive()
    }
}

fn fail_all(pending: &Pending, error: &CallError) {
    let waiting: Vec<_> = match pending.lock() {
        Ok(mut map) => map.drain().collect(),
        Err(poisoned) => poisoned.into_inner().drain().collect(),
    };
    for (_, responder) in waiting {
        let _ = responder.send(Err(error.clone()));
    }
}

impl Client {
    /// Connects and opens the streams.
    ///
    /// # Errors
    /// [`CallError::Transport`] when the handshake fails (wrong CA, a
    /// certificate the node refuses, nobody listening).
    pub async fn connect(config: ClientConfig) -> Result<Client, CallError> {
        let transport = |e: &dyn std::fmt::Display| CallError::Transport(e.to_string());
        let identity = match &config.identity {
            Some(credentials) => Some((
                vec![credentials.certificate_der()],
                credentials.key_der().map_err(|e| transport(&e))?,
            )),
            None => None,
        };
        let client_config = tls::client_config(&config.ca, identity, config.ack_threshold)
            .map_err(|e| transport(&e))?;
        let bind: SocketAddr = if config.target.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        }
        .parse()
        .map_err(|e| transport(&e))?;
        let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| transport(&e))?;
        endpoint.set_default_client_config(client_config);
        let connection = endpoint
            .connect(config.target, &config.server_name)
            .map_err(|e| transport(&e))?
            .await
            .map_err(|e| transport(&e))?;
        let mut lanes = Vec::new();
        for _ in 0..config.streams.max(1) {
            let (send, recv) = connection.open_bi().await.map_err(|e| transport(&e))?;
            lanes.push(Lane::start(send, recv));
        }
        Ok(Client {
            connection,
            endpoint,
            lanes,
            next_lane: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
        })
    }

    /// Sends `operation` and waits for its answer's `result` map, as the
    /// node sent it. The typed calls ([`Client::session_create`] and the
    /// others) decode it into the operation's result type.
    ///
    /// # Errors
    /// [`CallError::Refused`] with the node's code, or
    /// [`CallError::Transport`].
    pub async fn call(&self, operation: &Operation) -> Result<ciborium::Value, CallError> {
        let (id, body) = self.encode(operation)?;
        self.call_raw(id, &body).await
    }

    /// Like [`Client::call`] for a caller that needs only whether the node
    /// carried the operation out (a load generator): the result is not
    /// decoded.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_unit(&self, operation: &Operation) -> Result<(), CallError> {
        let (id, body) = self.encode(operation)?;
        self.send(id, &body).await.map(drop)
    }

    /// `operation` as a request body under the next id.
    fn encode(&self, operation: &Operation) -> Result<(u64, Vec<u8>), CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body =
            to_cbor(&operation.to_wire(id)).map_err(|e| CallError::Malformed(e.to_string()))?;
        Ok((id, body))
    }

    /// Sends an already encoded request body with id `id` (for tests that
    /// speak the wire by hand). The id must not be in flight already.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_raw(&self, id: u64, body: &[u8]) -> Result<ciborium::Value, CallError> {
        let frame = self.send(id, body).await?;
        let response: WireResponse = from_cbor(&frame).map_err(|e| CallError::Malformed(e.0))?;
        Ok(response
            .result
            .unwrap_or_else(|| ciborium::Value::Map(Vec::new())))
    }

    /// Sends a request body and waits for its answer's frame (an error
    /// answer is [`CallError::Refused`] already).
    async fn send(&self, id: u64, body: &[u8]) -> Result<Bytes, CallError> {
        let lane = &self.lanes[self.next_lane.fetch_add(1, Ordering::Relaxed) % self.lanes.len()];
        let mut frame = BytesMut::new();
        write_frame(body, &mut frame).map_err(|e| CallError::Malformed(e.to_string()))?;
        let (responder, answer) = oneshot::channel();
        lane.pending
            .lock()
            .map_err(|_| CallError::Transport("client state poisoned".into()))?
            .insert(id, responder);
        if lane.requests.send(frame.freeze()).is_err() {
            if let Ok(mut pending) = lane.pending.lock() {
                pending.remove(&id);
            }
            return Err(CallError::Transport("stream closed".into()));
        }
        answer
            .await
            .map_err(|_| CallError::Transport("stream closed before the answer".into()))?
    }

    /// Like [`Client::call`], decoding the result into `T`.
    ///
    /// # Errors
    /// As [`Client::call`], and [`CallError::Malformed`] when the result is
    /// not a `T`.
    pub async fn call_as<T: serde::de::DeserializeOwned>(
        &self,
        operation: &Operation,
    ) -> Result<T, CallError> {
        let value = self.call(operation).await?;
        value
            .deserialized()
            .map_err(|e| CallError::Malformed(e.to_string()))
    }

    /// The next request id this client would use.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Closes the connection and waits (briefly) for the node to hear it.
    pub async fn close(self) {
        self.connection.close(0u32.into(), b"bye");
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self.endpoint.wait_idle())
            .await;
    }
}

impl Lane {
    fn start(mut send: quinn::SendStream, mut recv: quinn::RecvStream) -> Lane {
        let pending: Pending = Arc::default();
        let (requests, mut queue) = mpsc::unbounded_channel::<Bytes>();
        let writer_pending = Arc::clone(&pending);
        tokio::spawn(async move {
            // Whatever is queued goes to quinn in one write, uncopied.
            let mut batch = Vec::with_capacity(64);
            while queue.recv_many(&mut batch, 64).await > 0 {
                if let Err(e) = send.write_all_chunks(&mut batch).await {
                    fail_all(&writer_pending, &CallError::Transport(e.to_string()));
                    return;
                }
                batch.clear();
            }
            let _ = send.finish();
        });
        let reader_pending = Arc::clone(&pending);
        tokio::spawn(async move {
            let mut decoder = FrameDecoder::new();
            let error = loop {
                match recv.read_chunk(64 * 1024, true).await {
                    Ok(Some(chunk)) => decoder.extend(&chunk.bytes),
                    Ok(None) => break CallError::Transport("stream finished by the node".into()),
                    Err(e) => break CallError::Transport(e.to_string()),
                }
                let mut broken = None;
                loop {
                    match decoder.next_frame() {
                        Ok(Some(frame)) => match from_cbor::<Head>(&frame) {
                            Ok(head) => deliver(&reader_pending, head, frame),
                            Err(e) => {
                                broken = Some(CallError::Malformed(e.0));
                                break;
                            }
                        },
                        Ok(None) => break,
                        Err(e) => {
                            broken = Some(CallError::Malformed(e.to_string()));
                            break;
                        }
                    }
                }
                if let Some(error) = broken {
                    break error;
                }
            };
            fail_all(&reader_pending, &error);
        });
        Lane { requests, pending }
    }
}

/// What the reader decodes of an answer to route it: its id and error;
/// the result is skipped over, not built.
type Head = WireResponse<serde::de::IgnoredAny>;

fn deliver(pending: &Pending, response: Head, frame: Bytes) {
    if response.id == 0 {
        // A stream-level error: every request on it is lost.
        let error = response.error.unwrap_or(WireError {
            code: ErrorCode::Internal,
            message: "stream closed".into(),
        });
        fail_all(pending, &CallError::Refused(error));
        return;
    }
    let responder = match pending.lock() {
        Ok(mut map) => map.remove(&response.id),
        Err(_) => None,
    };
    if let Some(responder) = responder {
        let outcome = match response.error {
            Some(error) => Err(CallError::Refused(error)),
            None => Ok(frame),
        };
        let _ = responder.send(outcome);
    }
}
