//! Which tenant loads run, which wait for a slot, and which names the
//! directory said it lacks: a pure state machine (time passed in, no I/O),
//! driven by [`super::tenants`].
//!
//! A load is asked for by a request that found its tenant missing (on
//! demand) or by the node itself (preloading recently served tenants,
//! refreshing after missed notifications: background). At most
//! `max_loading` run at once; the rest wait in two FIFO queues, on-demand
//! first. Every request for a tenant already running or queued joins that
//! load (it gets the same completion handle), so a tenant is loaded once
//! however many SPs ask at the same moment. Only the on-demand queue is
//! bounded by `max_queued`; background loads are fed by drivers that keep
//! a few outstanding at a time.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Tuning of tenant loading and of the loaded-tenant cache
/// (`[tenants]` in docs/config.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantSettings {
    /// Tenants kept in memory; past it the least recently used are evicted
    /// (and load again when next asked for). Default 25,000 (≈ 700 MB at
    /// the 28 KB a seeded tenant takes, docs/BENCHMARKING.md).
    pub max_loaded: usize,
    /// Loads running at once. Default 16.
    pub max_loading: usize,
    /// On-demand loads waiting for a slot; one more is refused at once
    /// (`overloaded`; HTTP `503`). Default 4,096.
    pub max_queued: usize,
    /// How long a name the directory does not have is answered "unknown"
    /// without asking it again. Default 30 s.
    pub unknown_for: Duration,
}

impl Default for TenantSettings {
    fn default() -> TenantSettings {
        TenantSettings {
            max_loaded: 25_000,
            max_loading: 16,
            max_queued: 4_096,
            unknown_for: Duration::from_secs(30),
        }
    }
}

/// Names remembered as unknown; when full, the expired ones are dropped,
/// and if none is, all of them (so made-up names cannot grow it).
const MAX_UNKNOWN: usize = 10_000;

/// Who asks for a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A request is waiting for the tenant.
    OnDemand,
    /// The node preloads or refreshes it; nobody waits yet.
    Background,
}

/// The answer to [`LoadBoard::admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit<T> {
    /// The directory said a moment ago that there is no such tenant.
    Unknown,
    /// The tenant is loading or queued already: wait on its handle.
    Join(T),
    /// A new load with a free slot: the caller runs it, then calls
    /// [`LoadBoard::finished`].
    Start(T),
    /// A new load that waits for a slot ([`LoadBoard::finished`] hands it
    /// out): wait on its handle.
    Queued(T),
    /// The on-demand queue is full: refuse at once.
    Full,
}

/// How a load ended, as far as the board cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Loaded, or failed for a reason that may pass (directory unreachable):
    /// nothing is remembered.
    Done,
    /// The directory has no such tenant: remembered for `unknown_for`.
    Unknown,
}

#[derive(Debug)]
struct Pending<T> {
    handle: T,
    running: bool,
    /// The tenant changed while it loaded: load it again when done.
    again: bool,
}

/// The loads in flight and queued, and the names known to be unknown.
/// `T` is the completion handle the waiters of one load share.
#[derive(Debug)]
pub struct LoadBoard<T> {
    settings: TenantSettings,
    pending: HashMap<String, Pending<T>>,
    on_demand: VecDeque<String>,
    background: VecDeque<String>,
    running: usize,
    unknown: HashMap<String, Instant>,
}

impl<T: Clone> LoadBoard<T> {
    /// An empty board.
    pub fn new(settings: TenantSettings) -> LoadBoard<T> {
        LoadBoard {
            settings,
            pending: HashMap::new(),
            on_demand: VecDeque::new(),
            background: VecDeque::new(),
            running: 0,
            unknown: HashMap::new(),
        }
    }

    /// Asks for `slug` to be loaded; `handle` makes the completion handle
    /// of a new load.
    pub fn admit(
        &mut self,
        slug: &str,
        lane: Lane,
        now: Instant,
        handle: impl FnOnce() -> T,
    ) -> Admit<T> {
        if let Some(since) = self.unknown.get(slug) {
            if now.saturating_duration_since(*since) < self.settings.unknown_for {
                return Admit::Unknown;
            }
            self.unknown.remove(slug);
        }
        if let Some(pending) = self.pending.get(slug) {
            return Admit::Join(pending.handle.clone());
        }
        let running = self.running < self.settings.max_loading.max(1);
        if !running && lane == Lane::OnDemand && self.on_demand.len() >= self.settings.max_queued {
            return Admit::Full;
        }
        let handle = handle();
        self.pending.insert(
            slug.to_owned(),
            Pending {
                handle: handle.clone(),
                running,
                again: false,
            },
        );
        if running {
            self.running += 1;
            return Admit::Start(handle);
        }
        match lane {
            Lane::OnDemand => self.on_demand.push_back(slug.to_owned()),
            Lane::Background => self.background.push_back(slug.to_owned()),
        }
        Admit::Queued(handle)
    }

    /// Asks for `slug` to be loaded again because the directory says it
    /// changed: a load in flight may have read the old state, so it runs
    /// once more when it ends (its waiters get the first result); with no
    /// load in flight, as [`LoadBoard::admit`] in the background lane,
    /// whatever the board remembers of the name.
    pub fn reload(&mut self, slug: &str, now: Instant, handle: impl FnOnce() -> T) -> Admit<T> {
        if let Some(pending) = self.changed(slug) {
            return Admit::Join(pending);
        }
        self.unknown.remove(slug);
        self.admit(slug, Lane::Background, now, handle)
    }

    /// Forgets every name remembered as unknown: a tenant this node does
    /// not hold was added or changed, and may be one of them.
    pub fn forget_unknown(&mut self) {
        self.unknown.clear();
    }

    /// Marks a load in flight or queued for `slug` to run again when it
    /// ends; returns its handle, or `None` when `slug` is not loading.
    pub fn changed(&mut self, slug: &str) -> Option<T> {
        let pending = self.pending.get_mut(slug)?;
        pending.again = true;
        Some(pending.handle.clone())
    }

    /// Records the end of `slug`'s load; returns the load that now holds
    /// the slot: `slug` again if it changed meanwhile, else the next queued
    /// one (on-demand first).
    pub fn finished(&mut self, slug: &str, outcome: Finished, now: Instant) -> Option<(String, T)> {
        if let Some(pending) = self.pending.get_mut(slug) {
            if pending.again && pending.running && outcome == Finished::Done {
                pending.again = false;
                return Some((slug.to_owned(), pending.handle.clone()));
            }
        }
        if self.pending.remove(slug).is_some_and(|p| p.running) {
            self.running = self.running.saturating_sub(1);
        }
        if outcome == Finished::Unknown {
            if self.unknown.len() >= MAX_UNKNOWN {
                let keep = self.settings.unknown_for;
                self.unknown
                    .retain(|_, since| now.saturating_duration_since(*since) < keep);
                if self.unknown.len() >= MAX_UNKNOWN {
                    self.unknown.clear();
                }
            }
            self.unknown.insert(slug.to_owned(), now);
        }
        while self.running < self.settings.max_loading.max(1) {
            let next = self
                .on_demand
                .pop_front()
                .or_else(|| self.background.pop_front())?;
            if let Some(pending) = self.pending.get_mut(&next) {
                pending.running = true;
                self.running += 1;
                return Some((next, pending.handle.clone()));
            }
        }
        None
    }

    /// Loads running now.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Loads waiting for a slot.
    pub fn queued(&self) -> usize {
        self.on_demand.len() + self.background.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(max_loading: usize, max_queued: usize) -> LoadBoard<u32> {
        LoadBoard::new(TenantSettings {
            max_loading,
            max_queued,
            ..TenantSettings::default()
        })
    }

    #[test]
    fn requests_for_a_loading_tenant_join_its_load() {
        let mut board = board(2, 4);
        let now = Instant::now();
        assert_eq!(
            board.admit("acme", Lane::OnDemand, now, || 1),
            Admit::Start(1)
        );
        for _ in 0..100 {
            assert_eq!(
                board.admit("acme", Lane::OnDemand, now, || 99),
                Admit::Join(1),
                "one load, however many ask"
            );
        }
        assert_eq!(
            board.admit("acme", Lane::Background, now, || 99),
            Admit::Join(1)
        );
        assert_eq!(board.running(), 1);
        assert_eq!(board.finished("acme", Finished::Done, now), None);
        assert_eq!(board.running(), 0);
        // Done: a later miss (evicted since, or a failed load) starts anew.
        assert_eq!(
            board.admit("acme", Lane::OnDemand, now, || 2),
            Admit::Start(2)
        );
    }

    #[test]
    fn past_the_slots_loads_queue_and_past_the_queue_they_are_refused() {
        let mut board = board(2, 2);
        let now = Instant::now();
        assert_eq!(board.admit("a", Lane::OnDemand, now, || 1), Admit::Start(1));
        assert_eq!(
            board.admit("b", Lane::Background, now, || 2),
            Admit::Start(2)
        );
        assert_eq!(
            board.admit("c", Lane::Background, now, || 3),
            Admit::Queued(3)
        );
        assert_eq!(
            board.admit("d", Lane::OnDemand, now, || 4),
            Admit::Queued(4)
        );
        assert_eq!(
            board.admit("e", Lane::OnDemand, now, || 5),
            Admit::Queued(5)
        );
        assert_eq!(board.admit("f", Lane::OnDemand, now, || 6), Admit::Full);
        // Joining a queued load is always possible; so is queuing in the
        // background lane, whose drivers bound themselves.
        assert_eq!(board.admit("d", Lane::OnDemand, now, || 9), Admit::Join(4));
        assert_eq!(
            board.admit("g", Lane::Background, now, || 7),
            Admit::Queued(7)
        );
        assert_eq!(board.queued(), 4);
        // A freed slot goes to the on-demand queue first, in order.
        assert_eq!(
            board.finished("a", Finished::Done, now),
            Some(("d".into(), 4))
        );
        assert_eq!(board.running(), 2);
        assert_eq!(
            board.finished("b", Finished::Done, now),
            Some(("e".into(), 5))
        );
        assert_eq!(
            board.finished("d", Finished::Done, now),
            Some(("c".into(), 3))
        );
        assert_eq!(
            board.finished("e", Finished::Done, now),
            Some(("g".into(), 7))
        );
        assert_eq!(board.finished("c", Finished::Done, now), None);
        assert_eq!(board.finished("g", Finished::Done, now), None);
        assert_eq!((board.running(), board.queued()), (0, 0));
        // Finishing twice (or a load never admitted) cannot free a slot that
        // is not there.
        assert_eq!(board.finished("g", Finished::Done, now), None);
        assert_eq!(board.running(), 0);
    }

    #[test]
    fn unknown_names_are_remembered_for_a_while_and_outages_are_not() {
        let mut board = board(4, 4);
        let now = Instant::now();
        assert_eq!(
            board.admit("nobody", Lane::OnDemand, now, || 1),
            Admit::Start(1)
        );
        board.finished("nobody", Finished::Unknown, now);
        let later = now + Duration::from_secs(29);
        assert_eq!(
            board.admit("nobody", Lane::OnDemand, later, || 2),
            Admit::Unknown
        );
        let expired = now + Duration::from_secs(30);
        assert_eq!(
            board.admit("nobody", Lane::OnDemand, expired, || 3),
            Admit::Start(3),
            "asked again once the memory expires: the tenant may exist now"
        );
        // An outage (Done without loading) leaves nothing behind.
        board.finished("nobody", Finished::Done, expired);
        assert_eq!(
            board.admit("nobody", Lane::OnDemand, expired, || 4),
            Admit::Start(4)
        );
        // A tenant added elsewhere: the names remembered go at once.
        board.finished("nobody", Finished::Unknown, expired);
        assert_eq!(
            board.admit("nobody", Lane::OnDemand, expired, || 5),
            Admit::Unknown
        );
        board.forget_unknown();
        assert_eq!(
            board.admit("nobody", Lane::OnDemand, expired, || 6),
            Admit::Start(6)
        );
    }

    #[test]
    fn a_change_during_a_load_loads_the_tenant_again() {
        let mut board = board(1, 4);
        let now = Instant::now();
        assert_eq!(
            board.admit("acme", Lane::OnDemand, now, || 1),
            Admit::Start(1)
        );
        assert_eq!(
            board.admit("globex", Lane::OnDemand, now, || 2),
            Admit::Queued(2)
        );
        assert_eq!(board.reload("acme", now, || 9), Admit::Join(1));
        assert_eq!(
            board.finished("acme", Finished::Done, now),
            Some(("acme".into(), 1)),
            "the load that may have read the old state runs again, before the queue"
        );
        assert_eq!(board.running(), 1);
        assert_eq!(
            board.finished("acme", Finished::Done, now),
            Some(("globex".into(), 2))
        );
        // A reload of a tenant not loading: a background load, even of a
        // name remembered as unknown (the notification says it exists).
        assert_eq!(board.finished("globex", Finished::Unknown, now), None);
        assert_eq!(
            board.admit("globex", Lane::OnDemand, now, || 3),
            Admit::Unknown
        );
        assert_eq!(board.reload("globex", now, || 4), Admit::Start(4));
    }

    #[test]
    fn made_up_names_cannot_grow_the_memory_without_bound() {
        let mut board = board(1, 1);
        let now = Instant::now();
        for n in 0..(MAX_UNKNOWN * 3) {
            let name = format!("made-up-{n}");
            assert_eq!(
                board.admit(&name, Lane::OnDemand, now, || n as u32),
                Admit::Start(n as u32)
            );
            board.finished(&name, Finished::Unknown, now);
            assert!(board.unknown.len() <= MAX_UNKNOWN);
        }
        assert_eq!((board.running(), board.queued()), (0, 0));
    }
}
