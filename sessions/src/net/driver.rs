//! The task that moves the state machine: commands from the front door,
//! frames from peers, disk syncs and timers go in; frames to peers, disk
//! writes and answers come out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::link::{frame, CatchingUp, Link, LinkSender, NO_SESSIONS};
use super::{now_ms, ClusterStatus, Command, LagStats, ReplicaError, SNAPSHOT_LOG_BYTES};
use crate::replication::{Decree, DecreeId, Event, Membership, Message, Node, NodeName, Revoked};
use crate::store::{SessionStore, SnapshotStats, StoreError};
use crate::table::{SessionRecord, SessionTable};

/// Sessions per frame in a state transfer.
const TRANSFER_CHUNK: usize = 2_048;
/// How long links to removed members are kept (so they hear that they
/// were removed).
const RETIRED_LINK: Duration = Duration::from_secs(600);

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

type Answer = oneshot::Sender<Result<DecreeId, ReplicaError>>;

pub(super) struct Parts {
    pub(super) node: Node,
    pub(super) lag: Arc<LagStats>,
    pub(super) origin: Instant,
    pub(super) serving_until: Arc<AtomicU64>,
    pub(super) ready: Arc<AtomicBool>,
    pub(super) store: Arc<SessionStore>,
    pub(super) table: Arc<SessionTable>,
    pub(super) endpoint: Option<quinn::Endpoint>,
    pub(super) server_name: String,
    pub(super) peer_queue_bytes: usize,
    pub(super) snapshot_every: Duration,
}

pub(super) struct Driver {
    parts: Parts,
    links: HashMap<NodeName, (String, Link)>,
    retired: Vec<(Instant, NodeName)>,
    waiting: HashMap<DecreeId, Answer>,
    persisted: (
        mpsc::UnboundedSender<Vec<DecreeId>>,
        mpsc::UnboundedReceiver<Vec<DecreeId>>,
    ),
    /// Whether the table held recovered sessions at start (pushed to the
    /// peers once ready: they may lack the last ones).
    recovered_sessions: bool,
    next_compaction: Instant,
    next_snapshot: Instant,
    snapshotting: Arc<AtomicBool>,
}

impl Driver {
    pub(super) fn new(parts: Parts) -> Driver {
        let recovered_sessions = !parts.table.is_empty();
        let next_snapshot = Instant::now() + parts.snapshot_every;
        let mut driver = Driver {
            parts,
            links: HashMap::new(),
            retired: Vec::new(),
            waiting: HashMap::new(),
            persisted: mpsc::unbounded_channel(),
            recovered_sessions,
            next_compaction: Instant::now(),
            next_snapshot,
            snapshotting: Arc::new(AtomicBool::new(false)),
        };
        let membership = driver.parts.node.membership().clone();
        driver.follow(&membership);
        driver
    }

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut incoming: mpsc::Receiver<(NodeName, Message)>,
    ) {
        let now = now_ms(self.parts.origin);
        self.flush(now);
        loop {
            let now = now_ms(self.parts.origin);
            let wake = self.parts.node.poll_timeout().saturating_sub(now).min(50);
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command, &mut commands).await,
                    None => return,
                },
                Some((from, message)) = incoming.recv() => self.incoming(&from, message),
                Some(ids) = self.persisted.1.recv() => {
                    let now = now_ms(self.parts.origin);
                    for id in ids {
                        self.parts.node.persisted(id, now);
                    }
                }
                () = tokio::time::sleep(Duration::from_millis(wake)) => {}
            }
            let now = now_ms(self.parts.origin);
            if now >= self.parts.node.poll_timeout() {
                self.parts.node.handle_timeout(now);
            }
            self.housekeeping().await;
            self.flush(now);
        }
    }

    async fn command(&mut self, command: Command, more: &mut mpsc::Receiver<Command>) {
        match command {
            Command::Revoke(what, done) => {
                // Every revoke queued behind it shares one disk sync.
                let mut batch = vec![(what, done)];
                let mut next = None;
                while let Ok(command) = more.try_recv() {
                    match command {
                        Command::Revoke(what, done) => batch.push((what, done)),
                        other => {
                            next = Some(other);
                            break;
                        }
                    }
                }
                self.revoke(batch).await;
                if let Some(next) = next {
                    Box::pin(self.command(next, more)).await;
                }
            }
            Command::Propose(config, done) => self.propose(config, done).await,
            Command::Delta(record) => {
                self.parts.node.replicate(record);
                // Coalesce whatever else is queued, then send at once.
                let mut next = None;
                while let Ok(command) = more.try_recv() {
                    match command {
                        Command::Delta(record) => self.parts.node.replicate(record),
                        other => {
                            next = Some(other);
                            break;
                        }
                    }
                }
                self.parts.node.flush_deltas();
                if let Some(next) = next {
                    Box::pin(self.command(next, more)).await;
                }
            }
            Command::Status(done) => {
                let _ = done.send(ClusterStatus {
                    node: self.parts.node.status(),
                    membership: self.parts.node.membership().clone(),
                    now: now_ms(self.parts.origin),
                    lag: super::Lag {
                        sum_us: self.parts.lag.sum_us.load(Ordering::Relaxed),
                        count: self.parts.lag.count.load(Ordering::Relaxed),
                        max_us: self.parts.lag.max_us.load(Ordering::Relaxed),
                        dropped: self.parts.lag.dropped.load(Ordering::Relaxed),
                        resent: self.parts.lag.resent.load(Ordering::Relaxed),
                    },
                    log_bytes: self.parts.store.log_bytes(),
                });
            }
            Command::Snapshot(done) => {
                let _ = done.send(self.snapshot().await);
            }
        }
    }

    /// Makes decrees durable (one sync), then starts them in order.
    async fn persist_then_start(&mut self, decrees: Vec<Decree>, answers: Vec<Answer>) {
        let mut last = None;
        for decree in &decrees {
            match self.parts.store.append_decree(decree) {
                Ok(ticket) => last = Some(ticket),
                Err(e) => {
                    for done in answers {
                        let _ = done.send(Err(ReplicaError::Durable(e.clone())));
                    }
                    return;
                }
            }
        }
        if let Some(ticket) = last {
            if let Err(e) = self.parts.store.synced(ticket).await {
                for done in answers {
                    let _ = done.send(Err(ReplicaError::Durable(e.clone())));
                }
                return;
            }
        }
        let now = now_ms(self.parts.origin);
        for (decree, done) in decrees.into_iter().zip(answers) {
            let id = decree.id;
            if self.parts.node.start(decree, now) {
                self.waiting.insert(id, done);
            } else {
                let _ = done.send(Err(ReplicaError::Stopped));
            }
        }
    }

    async fn revoke(&mut self, batch: Vec<(Revoked, Answer)>) {
        let (whats, answers): (Vec<Revoked>, Vec<Answer>) = batch.into_iter().unzip();
        let decrees = self.parts.node.prepare_revokes(whats);
        self.persist_then_start(decrees, answers).await;
    }

    async fn propose(&mut self, config: Membership, done: Answer) {
        let now = now_ms(self.parts.origin);
        match self.parts.node.prepare_membership(config, now) {
            Ok(decree) => self.persist_then_start(vec![decree], vec![done]).await,
            Err(e) => {
                let _ = done.send(Err(ReplicaError::Membership(e)));
            }
        }
    }

    fn incoming(&mut self, from: &NodeName, message: Message) {
        let now = now_ms(self.parts.origin);
        let Message::Deltas(records) = message else {
            self.parts.node.handle(now, from, message);
            return;
        };
        let wall_us = wall_ms().saturating_mul(1000);
        for record in &records {
            let lag = wall_us.saturating_sub(record.last_seen_ms.saturating_mul(1000));
            self.parts.lag.sum_us.fetch_add(lag, Ordering::Relaxed);
            self.parts.lag.count.fetch_add(1, Ordering::Relaxed);
            self.parts.lag.max_us.fetch_max(lag, Ordering::Relaxed);
            self.parts.table.merge(record);
        }
        // Kept on disk too, without waiting: a whole-cluster restart then
        // finds peers' sessions here. Merged first, written second: a
        // snapshot cut between the two still has them (docs/sessions.md).
        let _ = self.parts.store.append_sessions(&records);
        self.parts.node.heard(now, from);
    }

    /// Compaction and catch-ups every second, a snapshot when due.
    async fn housekeeping(&mut self) {
        let now = Instant::now();
        if now >= self.next_compaction {
            self.next_compaction = now + Duration::from_secs(1);
            self.parts.node.compact(wall_ms());
            self.catch_up();
            let links = &mut self.links;
            self.retired.retain(|(since, name)| {
                let keep = since.elapsed() < RETIRED_LINK;
                if !keep {
                    links.remove(name);
                }
                keep
            });
        }
        let due = now >= self.next_snapshot || self.parts.store.log_bytes() > SNAPSHOT_LOG_BYTES;
        if due && !self.snapshotting.load(Ordering::Acquire) {
            self.next_snapshot = now + self.parts.snapshot_every;
            match self.cut().await {
                Ok(write) => {
                    let snapshotting = Arc::clone(&self.snapshotting);
                    tokio::task::spawn_blocking(move || {
                        match write() {
                            Ok(stats) => tracing::debug!(?stats, "session snapshot"),
                            Err(e) => {
                                tracing::warn!(error = %e, "session snapshot failed; the logs keep everything")
                            }
                        }
                        snapshotting.store(false, Ordering::Release);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "session snapshot failed; the logs keep everything")
                }
            }
        }
    }

    /// Starts a snapshot: cuts the log, then reads the decrees (what was
    /// written before the cut was applied in memory before it was
    /// written). Returns the write, to run off the runtime.
    async fn cut(
        &mut self,
    ) -> Result<impl FnOnce() -> Result<SnapshotStats, StoreError> + Send + 'static, StoreError>
    {
        while self.snapshotting.swap(true, Ordering::AcqRel) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let store = Arc::clone(&self.parts.store);
        let cut = tokio::task::spawn_blocking(move || store.begin_snapshot())
            .await
            .unwrap_or_else(|e| Err(StoreError::Io(e.to_string())));
        let cut = match cut {
            Ok(cut) => cut,
            Err(e) => {
                self.snapshotting.store(false, Ordering::Release);
                return Err(e);
            }
        };
        let decrees = self.parts.node.decrees();
        let store = Arc::clone(&self.parts.store);
        let table = Arc::clone(&self.parts.table);
        Ok(move || {
            let (records, _) = table.snapshot();
            store.write_snapshot(cut, records, &decrees)
        })
    }

    async fn snapshot(&mut self) -> Result<SnapshotStats, StoreError> {
        let write = self.cut().await?;
        let outcome = tokio::task::spawn_blocking(write)
            .await
            .unwrap_or_else(|e| Err(StoreError::Io(e.to_string())));
        self.snapshotting.store(false, Ordering::Release);
        outcome
    }

    /// Dials new members, forgets removed ones after a while.
    fn follow(&mut self, membership: &Membership) {
        let me = self.parts.node.name().clone();
        let Some(endpoint) = self.parts.endpoint.clone() else {
            return;
        };
        for (name, address) in &membership.members {
            if *name == me {
                continue;
            }
            let current = self.links.get(name).map(|(a, _)| a.clone());
            if current.as_deref() != Some(address.as_str()) {
                let link = Link::start(
                    endpoint.clone(),
                    address.clone(),
                    self.parts.server_name.clone(),
                    self.parts.peer_queue_bytes,
                );
                self.links.insert(name.clone(), (address.clone(), link));
            }
            self.retired.retain(|(_, n)| n != name);
        }
        for name in self.links.keys() {
            if !membership.contains(name) && !self.retired.iter().any(|(_, n)| n == name) {
                self.retired.push((Instant::now(), name.clone()));
            }
        }
    }

    fn flush(&mut self, now: u64) {
        let mut to_persist = Vec::new();
        while let Some(event) = self.parts.node.poll_event() {
            match event {
                Event::Done(id) => {
                    if let Some(done) = self.waiting.remove(&id) {
                        let _ = done.send(Ok(id));
                    }
                }
                Event::Ready => {
                    self.parts.ready.store(true, Ordering::Release);
                    if std::mem::take(&mut self.recovered_sessions) {
                        let peers: Vec<NodeName> = self.links.keys().cloned().collect();
                        for peer in peers {
                            self.transfer(&peer, None);
                        }
                    }
                }
                Event::Persist(decree) => to_persist.push(decree),
                Event::SendState { to, response } => self.transfer(&to, Some(response)),
                Event::MembershipChanged(membership) => {
                    if !self.parts.node.is_ready() {
                        self.parts.ready.store(false, Ordering::Release);
                    }
                    self.follow(&membership);
                }
            }
        }
        if !to_persist.is_empty() {
            self.persist_learned(to_persist);
        }
        let me = self.parts.node.name().clone();
        while let Some((to, message)) = self.parts.node.poll_transmit() {
            let oldest = match &message {
                Message::Deltas(records) => oldest(records),
                _ => NO_SESSIONS,
            };
            let Some(frame) = frame(&me, &message) else {
                continue;
            };
            if let Some((_, link)) = self.links.get(&to) {
                if !link.send(frame, oldest) {
                    self.parts.lag.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let until = if self.parts.node.can_serve(now) {
            self.parts.node.serving_until()
        } else {
            0
        };
        self.parts.serving_until.store(until, Ordering::Release);
    }

    /// Writes decrees learned from peers; tells the node once synced (a
    /// failed sync is tried again: the decrees stay unsettled here until
    /// they are on disk).
    fn persist_learned(&self, decrees: Vec<Decree>) {
        let store = Arc::clone(&self.parts.store);
        let tell = self.persisted.0.clone();
        tokio::spawn(async move {
            loop {
                let mut last = None;
                for decree in &decrees {
                    match store.append_decree(decree) {
                        Ok(ticket) => last = Some(ticket),
                        Err(StoreError::Closed) => return,
                        Err(_) => {}
                    }
                }
                let synced = match last {
                    Some(ticket) => store.synced(ticket).await,
                    None => Err(StoreError::Closed),
                };
                match synced {
                    Ok(()) => {
                        let _ = tell.send(decrees.iter().map(|d| d.id).collect());
                        return;
                    }
                    Err(StoreError::Closed) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "writing decrees from peers; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }

    /// Sends this node's sessions to `to` (then `response`), waiting for
    /// room in the link rather than dropping.
    fn transfer(&self, to: &NodeName, response: Option<Message>) {
        let table = Arc::clone(&self.parts.table);
        self.send_sessions(to, move || table.snapshot().0, response, None);
    }

    /// Sends again what peers lost: to a peer whose link lost frames
    /// carrying sessions (or every peer, when a local delta was dropped
    /// before it was sent), once it is connected with room, every session
    /// changed since the oldest of them.
    fn catch_up(&self) {
        let local = self
            .parts
            .lag
            .local_lost_since
            .swap(NO_SESSIONS, Ordering::AcqRel);
        for (peer, (_, link)) in &self.links {
            if local != NO_SESSIONS {
                link.lost(local);
            }
            let Some((since, guard)) = link.catch_up_due() else {
                continue;
            };
            tracing::debug!(%peer, since, "sending sessions again to a peer that lost some");
            let table = Arc::clone(&self.parts.table);
            let lag = Arc::clone(&self.parts.lag);
            self.send_sessions(
                peer,
                move || {
                    let records = table.changed_since(since);
                    lag.resent
                        .fetch_add(records.len() as u64, Ordering::Relaxed);
                    records
                },
                None,
                Some(guard),
            );
        }
    }

    /// Sends the sessions `load` reads (off the runtime) to `to` in chunks,
    /// then `response`, waiting for room in the link rather than dropping
    /// (a chunk lost to a broken connection is remembered by the link, and
    /// sent again by a later catch-up); `guard` is held until done.
    fn send_sessions(
        &self,
        to: &NodeName,
        load: impl FnOnce() -> Vec<SessionRecord> + Send + 'static,
        response: Option<Message>,
        guard: Option<CatchingUp>,
    ) {
        let Some((_, link)) = self.links.get(to) else {
            return;
        };
        let sender: LinkSender = link.sender();
        let me = self.parts.node.name().clone();
        tokio::spawn(async move {
            let records: Vec<SessionRecord> =
                tokio::task::spawn_blocking(load).await.unwrap_or_default();
            for chunk in records.chunks(TRANSFER_CHUNK) {
                let Some(frame) = frame(&me, &Message::Deltas(chunk.to_vec())) else {
                    continue;
                };
                if !sender.send(frame, oldest(chunk)).await {
                    return;
                }
            }
            if let Some(frame) = response.and_then(|r| frame(&me, &r)) {
                sender.send(frame, NO_SESSIONS).await;
            }
            drop(guard);
        });
    }
}

/// The oldest `last_seen_ms` of `records` ([`NO_SESSIONS`] for none).
fn oldest(records: &[SessionRecord]) -> u64 {
    records
        .iter()
        .map(|r| r.last_seen_ms)
        .min()
        .unwrap_or(NO_SESSIONS)
}
