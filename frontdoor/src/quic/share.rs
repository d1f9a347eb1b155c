//! Work sharing between the workers (issue 16, item 1). A connection
//! lives on the worker that accepted it, and SO_REUSEPORT hashes
//! connections by their 4-tuple: one busy connection, or a few that hash
//! alike, would leave the other cores idle. So a worker that has more
//! requests running than another hands the next one to the least loaded
//! worker: the request's caller and operation go to that worker's inbox,
//! it runs the handler there (its CPU: signing, CBOR) and sends the encoded
//! answer back to the worker that owns the stream, which writes it. The
//! stream, its ids and its in-flight accounting never leave their worker.
//!
//! Cross-thread traffic is batched both ways: each worker drains its inbox
//! and its returns in batches (one wake-up per batch, not per request:
//! a task already woken is not woken again), and answers coming back are
//! handed to the waiting requests without another thread hop.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use sigil_proto::Operation;
use tokio::sync::{mpsc, oneshot};

/// Jobs or answers taken per wake-up.
const BATCH: usize = 64;

/// How many more requests a worker must have running than another before
/// it hands them over. A hand-over costs a wake-up of another thread each
/// way, which below saturation only adds latency (at 5,000/s, handing
/// over at any difference raised the median by ~0.5 ms); a worker that
/// falls this far behind is saturated, and there it pays.
pub(super) const MARGIN: usize = 8;

/// A request handed to another worker.
pub(super) struct Job<C> {
    /// The worker that owns the request's stream.
    origin: usize,
    /// The origin's ticket for the answer.
    ticket: u64,
    /// The request id (the answer carries it).
    pub(super) id: u64,
    pub(super) caller: Arc<C>,
    pub(super) operation: Operation,
}

/// An answer, encoded, on its way back to its origin.
pub(super) struct Done {
    ticket: u64,
    answer: Bytes,
}

/// The workers' inboxes and their loads, shared by all workers.
pub(super) struct Mesh<C> {
    inboxes: Vec<mpsc::UnboundedSender<Job<C>>>,
    returns: Vec<mpsc::UnboundedSender<Done>>,
    /// Requests running on each worker (its own and others').
    loads: Vec<AtomicUsize>,
    /// Whether workers hand requests to each other at all.
    enabled: bool,
}

/// What one worker receives: others' requests, and answers to its own.
pub(super) struct Mailbox<C> {
    pub(super) inbox: mpsc::UnboundedReceiver<Job<C>>,
    pub(super) returns: mpsc::UnboundedReceiver<Done>,
}

impl<C> Mesh<C> {
    /// A mesh of `workers` workers and the mailbox of each.
    pub(super) fn new(workers: usize, enabled: bool) -> (Arc<Mesh<C>>, Vec<Mailbox<C>>) {
        let mut inboxes = Vec::with_capacity(workers);
        let mut returns = Vec::with_capacity(workers);
        let mut mailboxes = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (job_tx, job_rx) = mpsc::unbounded_channel();
            let (done_tx, done_rx) = mpsc::unbounded_channel();
            inboxes.push(job_tx);
            returns.push(done_tx);
            mailboxes.push(Mailbox {
                inbox: job_rx,
                returns: done_rx,
            });
        }
        let loads = (0..workers).map(|_| AtomicUsize::new(0)).collect();
        let mesh = Mesh {
            inboxes,
            returns,
            loads,
            enabled: enabled && workers > 1,
        };
        (Arc::new(mesh), mailboxes)
    }

    /// Counts a request starting on worker `me`; the guard counts it done.
    pub(super) fn running(self: &Arc<Self>, me: usize) -> Running<C> {
        self.loads[me].fetch_add(1, Ordering::Relaxed);
        Running {
            mesh: Arc::clone(self),
            me,
        }
    }

    /// The worker that should run worker `me`'s next request: another one
    /// when it has at least [`MARGIN`] fewer requests running than `me`.
    fn pick(&self, me: usize) -> Option<usize> {
        if !self.enabled {
            return None;
        }
        let mine = self.loads[me].load(Ordering::Relaxed);
        self.loads
            .iter()
            .enumerate()
            .filter(|(n, _)| *n != me)
            .map(|(n, load)| (n, load.load(Ordering::Relaxed)))
            .min_by_key(|(_, load)| *load)
            .filter(|(_, load)| load + MARGIN <= mine)
            .map(|(n, _)| n)
    }
}

/// A request counted as running on a worker until dropped.
pub(super) struct Running<C> {
    mesh: Arc<Mesh<C>>,
    me: usize,
}

impl<C> Drop for Running<C> {
    fn drop(&mut self) {
        self.mesh.loads[self.me].fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where a request runs ([`Share::offload`]).
pub(super) enum Placed {
    /// On another worker: its answer, encoded, arrives here.
    Elsewhere(oneshot::Receiver<Bytes>),
    /// On this one.
    Here(Operation),
}

/// One worker's side of the mesh.
pub(super) struct Share<C> {
    pub(super) mesh: Arc<Mesh<C>>,
    pub(super) me: usize,
    next_ticket: Cell<u64>,
    waiting: RefCell<HashMap<u64, oneshot::Sender<Bytes>>>,
}

impl<C> Share<C> {
    pub(super) fn new(mesh: Arc<Mesh<C>>, me: usize) -> Share<C> {
        Share {
            mesh,
            me,
            next_ticket: Cell::new(0),
            waiting: RefCell::default(),
        }
    }

    /// Hands the request to a less loaded worker, if there is one, or
    /// gives it back to run here.
    pub(super) fn offload(&self, id: u64, caller: &Arc<C>, operation: Operation) -> Placed {
        let Some(peer) = self.mesh.pick(self.me) else {
            return Placed::Here(operation);
        };
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket.wrapping_add(1));
        let job = Job {
            origin: self.me,
            ticket,
            id,
            caller: Arc::clone(caller),
            operation,
        };
        let (tx, rx) = oneshot::channel();
        self.waiting.borrow_mut().insert(ticket, tx);
        match self.mesh.inboxes[peer].send(job) {
            Ok(()) => Placed::Elsewhere(rx),
            Err(mpsc::error::SendError(job)) => {
                // That worker has stopped: run it here.
                self.waiting.borrow_mut().remove(&ticket);
                Placed::Here(job.operation)
            }
        }
    }

    /// Delivers the answers other workers made for this worker's requests,
    /// a batch per wake-up, until every other worker has stopped.
    pub(super) async fn deliver(&self, mut returns: mpsc::UnboundedReceiver<Done>) {
        let mut batch = Vec::with_capacity(BATCH);
        while returns.recv_many(&mut batch, BATCH).await > 0 {
            let mut waiting = self.waiting.borrow_mut();
            for done in batch.drain(..) {
                if let Some(waiter) = waiting.remove(&done.ticket) {
                    let _ = waiter.send(done.answer);
                }
            }
        }
    }

    /// Whether requests are running on this worker (its own or others').
    pub(super) fn runs_any(&self) -> bool {
        self.mesh.loads[self.me].load(Ordering::Relaxed) > 0
    }

    /// Sends the answer to `job` back to the worker it came from.
    pub(super) fn answer(&self, job_origin: usize, ticket: u64, answer: Bytes) {
        let _ = self.mesh.returns[job_origin].send(Done { ticket, answer });
    }
}

impl<C> Job<C> {
    /// Where its answer goes: the origin worker and its ticket.
    pub(super) fn reply_to(&self) -> (usize, u64) {
        (self.origin, self.ticket)
    }
}
