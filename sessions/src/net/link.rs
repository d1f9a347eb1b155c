//! The wire between nodes: each node dials every peer and writes its
//! messages as length-prefixed CBOR frames `(sender name, message)` on one
//! long-lived unidirectional stream per peer; it accepts its peers'
//! connections and reads theirs. A broken connection is redialled.
//!
//! Frames can be lost: dropped while the peer cannot be dialled, dropped
//! when the peer is too far behind, or written to a connection that then
//! broke. The protocol resends decrees; sessions are not resent by it, so
//! a link remembers the oldest session time (`last_seen_ms`) of any frame
//! it lost ([`Link::catch_up_due`]), and once the peer is reachable and
//! has room again, the driver sends it every session changed since.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::replication::{Message, NodeName};

/// Frames larger than this end the stream (a confused or hostile peer).
pub(crate) const MAX_FRAME: usize = 16 << 20;

/// Names the node a peer certificate belongs to (the front door reads its
/// PKI's certificates); a frame whose sender is another name is dropped.
pub type Identify = Arc<dyn Fn(&[u8]) -> Option<String> + Send + Sync>;

/// The `oldest` of a frame that carries no sessions.
pub(crate) const NO_SESSIONS: u64 = u64::MAX;

/// Frames written to a connection this recently may be lost with it
/// (written is not delivered; a dead connection is noticed within its 5 s
/// idle timeout): when it breaks, their sessions count as lost too.
const UNCONFIRMED: Duration = Duration::from_secs(15);

/// A queued frame and the oldest `last_seen_ms` of the sessions it carries
/// ([`NO_SESSIONS`] for none).
type Queued = (Vec<u8>, u64);

/// What a link lost, shared by the link's task and its owner.
#[derive(Default)]
struct Losses {
    /// The oldest `last_seen_ms` of a session in a lost frame;
    /// [`NO_SESSIONS`] when nothing is lost (since the last catch-up).
    since: AtomicU64,
    /// Whether a stream to the peer is open now.
    connected: AtomicBool,
    /// Whether a catch-up is being sent (one at a time).
    catching_up: AtomicBool,
}

impl Losses {
    fn new() -> Losses {
        Losses {
            since: AtomicU64::new(NO_SESSIONS),
            connected: AtomicBool::new(false),
            catching_up: AtomicBool::new(false),
        }
    }

    fn lost(&self, oldest: u64) {
        self.since.fetch_min(oldest, Ordering::AcqRel);
    }
}

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
    frames: mpsc::UnboundedSender<Queued>,
    /// Bytes in `frames` not yet taken by the writer.
    queued: Arc<AtomicUsize>,
    /// The bound of `queued`.
    limit: usize,
    losses: Arc<Losses>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Link {
    /// Queues a frame carrying sessions as old as `oldest` (or
    /// [`NO_SESSIONS`]) unless the peer is `limit` bytes behind; a frame
    /// not queued counts as lost.
    pub(crate) fn send(&self, frame: Vec<u8>, oldest: u64) -> bool {
        let len = frame.len();
        if self.queued.fetch_add(len, Ordering::AcqRel) + len > self.limit {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            self.losses.lost(oldest);
            return false;
        }
        if self.frames.send((frame, oldest)).is_err() {
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

    /// Records that sessions as old as `oldest` did not reach the peer by
    /// this link (a local delta dropped before it was queued).
    pub(crate) fn lost(&self, oldest: u64) {
        self.losses.lost(oldest);
    }

    /// When this link lost frames carrying sessions, the peer is now
    /// connected with its queue at most half full, and no catch-up is
    /// being sent: the oldest `last_seen_ms` lost, to send every session
    /// changed since (the loss is forgotten), and a guard to hold while
    /// sending (no other catch-up starts until it drops). `None` otherwise.
    pub(crate) fn catch_up_due(&self) -> Option<(u64, CatchingUp)> {
        let ready = self.losses.connected.load(Ordering::Acquire)
            && self.queued.load(Ordering::Acquire) <= self.limit / 2
            && self.losses.since.load(Ordering::Acquire) != NO_SESSIONS;
        if !ready || self.losses.catching_up.swap(true, Ordering::AcqRel) {
            return None;
        }
        let guard = CatchingUp(Arc::clone(&self.losses));
        let since = self.losses.since.swap(NO_SESSIONS, Ordering::AcqRel);
        (since != NO_SESSIONS).then_some((since, guard))
    }

    pub(crate) fn start(
        endpoint: quinn::Endpoint,
        address: String,
        server_name: String,
        limit: usize,
    ) -> Link {
        let (frames, mut queue) = mpsc::unbounded_channel::<Queued>();
        let queued = Arc::new(AtomicUsize::new(0));
        let losses = Arc::new(Losses::new());
        let (taken, lost) = (Arc::clone(&queued), Arc::clone(&losses));
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
                    // Drop what queued meanwhile (remembering how old its
                    // sessions were): the peer is sent them again later.
                    while let Ok((frame, oldest)) = queue.try_recv() {
                        taken.fetch_sub(frame.len(), Ordering::AcqRel);
                        lost.lost(oldest);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if queue.is_closed() {
                        return;
                    }
                    continue;
                };
                lost.connected.store(true, Ordering::Release);
                // (when written, oldest session) of frames this stream may
                // still lose.
                let mut unconfirmed: VecDeque<(Instant, u64)> = VecDeque::new();
                while let Some((first, mut oldest)) = queue.recv().await {
                    let mut batch = first;
                    while let Ok((more, more_oldest)) = queue.try_recv() {
                        batch.extend_from_slice(&more);
                        oldest = oldest.min(more_oldest);
                        if batch.len() > 4 << 20 {
                            break;
                        }
                    }
                    taken.fetch_sub(batch.len(), Ordering::AcqRel);
                    let now = Instant::now();
                    while unconfirmed
                        .front()
                        .is_some_and(|(at, _)| now.duration_since(*at) > UNCONFIRMED)
                    {
                        unconfirmed.pop_front();
                    }
                    if stream.write_all(&batch).await.is_err() {
                        lost.lost(oldest);
                        for (_, oldest) in unconfirmed.drain(..) {
                            lost.lost(oldest);
                        }
                        break;
                    }
                    if oldest != NO_SESSIONS {
                        unconfirmed.push_back((now, oldest));
                    }
                }
                lost.connected.store(false, Ordering::Release);
                if queue.is_closed() {
                    return;
                }
            }
        });
        Link {
            frames,
            queued,
            limit,
            losses,
            task,
        }
    }
}

/// Held while a catch-up is sent: see [`Link::catch_up_due`].
pub(crate) struct CatchingUp(Arc<Losses>);

impl Drop for CatchingUp {
    fn drop(&mut self) {
        self.0.catching_up.store(false, Ordering::Release);
    }
}

/// See [`Link::sender`].
#[derive(Clone)]
pub(crate) struct LinkSender {
    frames: mpsc::UnboundedSender<Queued>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

impl LinkSender {
    /// Queues a frame carrying sessions as old as `oldest`, waiting while
    /// the peer is `limit` bytes behind (a frame larger than `limit` waits
    /// for an empty queue); false if the link is gone.
    pub(crate) async fn send(&self, frame: Vec<u8>, oldest: u64) -> bool {
        let len = frame.len();
        loop {
            let queued = self.queued.load(Ordering::Acquire);
            if queued == 0 || queued + len <= self.limit {
                break;
            }
            if self.frames.is_closed() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.queued.fetch_add(len, Ordering::AcqRel);
        if self.frames.send((frame, oldest)).is_err() {
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
