//! The wire between nodes: each node dials every peer and writes its
//! messages as length-prefixed CBOR frames `(sender name, message)` on one
//! long-lived unidirectional stream per peer; it accepts its peers'
//! connections and reads theirs. A broken connection is redialled; the
//! protocol tolerates whatever was lost.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::replication::{Message, NodeName};

/// Frames larger than this end the stream (a confused or hostile peer).
pub(crate) const MAX_FRAME: usize = 16 << 20;

/// Names the node a peer certificate belongs to (the front door reads its
/// PKI's certificates); a frame whose sender is another name is dropped.
pub type Identify = Arc<dyn Fn(&[u8]) -> Option<String> + Send + Sync>;

/// Encodes a frame.
pub(crate) fn frame(sender: &NodeName, message: &Message) -> Option<Vec<u8>> {
    let mut frame = vec![0u8; 4];
    ciborium::into_writer(&(sender, message), &mut frame).ok()?;
    let length = u32::try_from(frame.len() - 4).ok()?;
    frame[..4].copy_from_slice(&length.to_be_bytes());
    Some(frame)
}

/// An outgoing link to one peer: a task that dials (and redials) and
/// writes queued frames, with a bound on the bytes queued.
pub(crate) struct Link {
    frames: mpsc::UnboundedSender<Vec<u8>>,
    /// Bytes in `frames` not yet taken by the writer.
    queued: Arc<AtomicUsize>,
    /// The bound of `queued`.
    limit: usize,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Link {
    /// Queues a frame unless the peer is `limit` bytes behind.
    pub(crate) fn send(&self, frame: Vec<u8>) -> bool {
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

    /// A handle that queues frames, waiting for room (state transfers,
    /// which must not be dropped).
    pub(crate) fn sender(&self) -> LinkSender {
        LinkSender {
            frames: self.frames.clone(),
            queued: Arc::clone(&self.queued),
            limit: self.limit,
        }
    }

    pub(crate) fn start(
        endpoint: quinn::Endpoint,
        address: String,
        server_name: String,
        limit: usize,
    ) -> Link {
        let (frames, mut queue) = mpsc::unbounded_channel::<Vec<u8>>();
        let queued = Arc::new(AtomicUsize::new(0));
        let taken = Arc::clone(&queued);
        let task = tokio::spawn(async move {
            loop {
                let connection = match tokio::net::lookup_host(address.as_str()).await {
                    Ok(mut addresses) => match addresses.next() {
                        Some(to) => match endpoint.connect(to, &server_name) {
                            Ok(connecting) => connecting.await.ok(),
                            Err(_) => None,
                        },
                        None => None,
                    },
                    Err(_) => None,
                };
                let stream = match connection {
                    Some(connection) => connection.open_uni().await.ok(),
                    None => None,
                };
                let Some(mut stream) = stream else {
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
                while let Some(first) = queue.recv().await {
                    let mut batch = first;
                    while let Ok(more) = queue.try_recv() {
                        batch.extend_from_slice(&more);
                        if batch.len() > 4 << 20 {
                            break;
                        }
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
            task,
        }
    }
}

/// See [`Link::sender`].
#[derive(Clone)]
pub(crate) struct LinkSender {
    frames: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

impl LinkSender {
    /// Queues a frame, waiting while the peer is `limit` bytes behind;
    /// false if the link is gone.
    pub(crate) async fn send(&self, frame: Vec<u8>) -> bool {
        let len = frame.len();
        while self.queued.load(Ordering::Acquire) + len > self.limit {
            if self.frames.is_closed() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.queued.fetch_add(len, Ordering::AcqRel);
        if self.frames.send(frame).is_err() {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }
}

/// Accepts peers' connections and forwards their frames to `incoming`;
/// a full queue stops reading (QUIC flow control then slows the peer).
pub(crate) fn accept(
    endpoint: quinn::Endpoint,
    incoming: mpsc::Sender<(NodeName, Message)>,
    identify: Option<Identify>,
) {
    tokio::spawn(async move {
        while let Some(connecting) = endpoint.accept().await {
            let tx = incoming.clone();
            let identify = identify.clone();
            tokio::spawn(async move {
                let Ok(connection) = connecting.await else {
                    return;
                };
                let identity: Option<String> = identify.as_ref().and_then(|identify| {
                    let certificates = connection
                        .peer_identity()?
                        .downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>()
                        .ok()?;
                    identify(certificates.first()?.as_ref())
                });
                if identify.is_some() && identity.is_none() {
                    connection.close(1u32.into(), b"unknown node");
                    return;
                }
                while let Ok(stream) = connection.accept_uni().await {
                    tokio::spawn(read_frames(stream, tx.clone(), identity.clone()));
                }
            });
        }
    });
}

async fn read_frames(
    mut stream: quinn::RecvStream,
    tx: mpsc::Sender<(NodeName, Message)>,
    identity: Option<String>,
) {
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
        let Ok((sender, message)) =
            ciborium::from_reader::<(NodeName, Message), _>(body.as_slice())
        else {
            return;
        };
        if identity.as_deref().is_some_and(|name| name != &*sender) {
            // A node speaking for another: drop the stream.
            return;
        }
        if tx.send((sender, message)).await.is_err() {
            return;
        }
    }
}
