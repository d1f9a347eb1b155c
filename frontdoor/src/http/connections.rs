//! The open connections of one HTTP worker, under a cap: every connection
//! holds a file descriptor, and a flood of idle ones must neither starve
//! the node of descriptors (Postgres, the journal) nor lock operators out
//! of `/healthz`. At the cap a new connection closes the one idle the
//! longest (waiting for a request, never one mid-request); when none is
//! idle, the new one is refused.
//!
//! Threads: one table per worker, used from that worker's monoio runtime
//! only (`Rc`, `RefCell`); counters are shared atomics.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Notify;

use super::server::HttpStats;

struct Slot {
    /// Waiting for a request since then; `None`: reading or answering one.
    idle_since: Option<Instant>,
    evict: Rc<Notify>,
}

/// One worker's open connections.
pub(crate) struct ConnectionTable {
    cap: usize,
    open: RefCell<HashMap<u64, Slot>>,
    next: Cell<u64>,
    stats: Arc<HttpStats>,
}

impl ConnectionTable {
    /// A table for at most `cap` connections.
    pub(crate) fn new(cap: usize, stats: Arc<HttpStats>) -> Rc<ConnectionTable> {
        Rc::new(ConnectionTable {
            cap: cap.max(1),
            open: RefCell::default(),
            next: Cell::new(0),
            stats,
        })
    }

    /// Room for a new connection: at the cap, the longest-idle connection
    /// is told to close; `None` when every connection is busy.
    pub(crate) fn admit(self: &Rc<Self>) -> Option<Ticket> {
        let mut open = self.open.borrow_mut();
        if open.len() >= self.cap {
            let oldest = open
                .iter()
                .filter_map(|(id, slot)| slot.idle_since.map(|since| (since, *id)))
                .min()
                .map(|(_, id)| id);
            let Some(slot) = oldest.and_then(|id| open.remove(&id)) else {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            slot.evict.notify_one();
            self.stats.evicted.fetch_add(1, Ordering::Relaxed);
            self.stats.connections.fetch_sub(1, Ordering::Relaxed);
        }
        let id = self.next.get();
        self.next.set(id + 1);
        let evict = Rc::new(Notify::new());
        open.insert(
            id,
            Slot {
                idle_since: Some(Instant::now()),
                evict: Rc::clone(&evict),
            },
        );
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        Some(Ticket {
            id,
            table: Rc::clone(self),
            evict,
        })
    }
}

/// A connection's place in the table; leaves it when dropped.
pub(crate) struct Ticket {
    id: u64,
    table: Rc<ConnectionTable>,
    evict: Rc<Notify>,
}

impl Ticket {
    /// The connection waits for a request: it may be evicted.
    pub(crate) fn idle(&self) {
        self.set(Some(Instant::now()));
    }

    /// The connection is reading or answering a request.
    pub(crate) fn busy(&self) {
        self.set(None);
    }

    fn set(&self, idle_since: Option<Instant>) {
        if let Some(slot) = self.table.open.borrow_mut().get_mut(&self.id) {
            slot.idle_since = idle_since;
        }
    }

    /// Signalled when the table evicts this connection.
    pub(crate) fn evicted(&self) -> &Notify {
        &self.evict
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.table.open.borrow_mut().remove(&self.id).is_some() {
            self.table.stats.connections.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::future::Future;

    #[test]
    fn the_longest_idle_goes_first_and_busy_ones_stay() {
        let stats = Arc::new(HttpStats::default());
        let table = ConnectionTable::new(2, Arc::clone(&stats));
        let first = table.admit().unwrap();
        let second = table.admit().unwrap();
        first.busy();
        // At the cap: the idle one (second) makes room.
        let third = table.admit().unwrap();
        assert_eq!(stats.evicted.load(Ordering::Relaxed), 1);
        assert_eq!(stats.connections.load(Ordering::Relaxed), 2);
        // second was told to close.
        {
            let notified = second.evicted().notified();
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let mut notified = std::pin::pin!(notified);
            assert!(notified.as_mut().poll(&mut cx).is_ready());
        }
        // Every connection busy: a new one is refused.
        third.busy();
        assert!(table.admit().is_none());
        assert_eq!(stats.refused.load(Ordering::Relaxed), 1);
        // Dropping the evicted ticket does not count twice.
        drop(second);
        assert_eq!(stats.connections.load(Ordering::Relaxed), 2);
        drop(first);
        assert_eq!(stats.connections.load(Ordering::Relaxed), 1);
        assert!(table.admit().is_some());
    }
}
