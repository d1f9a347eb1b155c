//! The loaded tenants: a lock-free snapshot map read by every worker, the
//! loads that fill it (one at a time per tenant, at most `max_loading` at
//! once, on the control runtime), and its bound (least recently used
//! tenants evicted past `max_loaded`).
//!
//! Threads: QUIC and HTTP workers read [`TenantCache::get`] without locks
//! and ask for loads through [`TenantCache::request`], which never blocks
//! on I/O: loads run as tasks on the control runtime and hand their result
//! to every waiter through one `watch` channel, which any executor can
//! await (monoio included). What a tenant holds in memory (its
//! [`TenantLive`] and its documents in the [`DocumentStore`]) enters and
//! leaves together, under one control-plane mutex, so a tenant's documents
//! are never served without the tenant whose key changes keep them fresh.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use directory::{Directory, Tenant};
use signer::{Algorithm, Timestamp};
use tokio::sync::watch;

use super::keys::{self, KeyError, KeyManager, TenantKeys};
use super::loading::{Admit, Finished, Lane, LoadBoard, TenantSettings};
use super::{internal, refuse, unavailable, wall_ms, TenantLive};
use crate::http::documents::DocumentStore;
use sigil_proto::{ErrorCode, WireError};

/// What a load gives its waiters.
pub type LoadResult = Result<Arc<TenantLive>, WireError>;

/// The completion handle of one load, shared by its waiters.
type Slot = watch::Sender<Option<LoadResult>>;

/// A load to wait for, or the tenant already there.
pub enum Requested {
    /// Loaded.
    Ready(Arc<TenantLive>),
    /// Loading: [`wait`] on it.
    Loading(watch::Receiver<Option<LoadResult>>),
}

/// Waits for a load to finish (on any executor).
pub async fn wait(mut receiver: watch::Receiver<Option<LoadResult>>) -> LoadResult {
    match receiver.wait_for(Option::is_some).await {
        Ok(value) => value
            .clone()
            .unwrap_or_else(|| Err(refuse(ErrorCode::Unavailable, "tenant load lost"))),
        // The control runtime stopped (the node is shutting down).
        Err(_) => Err(refuse(ErrorCode::Unavailable, "node is stopping")),
    }
}

/// Counters of the cache, for `/metrics`.
#[derive(Debug, Default)]
pub struct LoadStats {
    /// Loads that ended with the tenant in memory.
    pub loaded: AtomicU64,
    /// Loads that ended without it (unknown name, directory unreachable,
    /// key failure).
    pub failed: AtomicU64,
    /// Tenants evicted to stay within `max_loaded`.
    pub evicted: AtomicU64,
    /// On-demand loads refused because the queue was full.
    pub refused: AtomicU64,
}

/// Node-wide values a load needs besides the directory and keys.
#[derive(Debug, Clone)]
pub struct LoadContext {
    /// Issuer prefix.
    pub public_url: String,
    /// Requests/s for tenants without a budget.
    pub default_tenant_rate: u32,
    /// Derives the per-tenant SAML NameID keys.
    pub name_id_secret: [u8; 32],
}

/// The loaded tenants and their loads.
pub struct TenantCache {
    directory: Arc<Directory>,
    keys: Arc<KeyManager>,
    documents: Arc<DocumentStore>,
    context: LoadContext,
    settings: TenantSettings,
    live: ArcSwap<HashMap<String, Arc<TenantLive>>>,
    ids: ArcSwap<HashMap<i64, String>>,
    /// Held while tenants enter or leave the maps and the document store.
    membership: Mutex<()>,
    board: Mutex<LoadBoard<Slot>>,
    /// Last-use times to give tenants when their (background) load ends:
    /// what the recently-served file said.
    seeds: Mutex<HashMap<String, u64>>,
    runtime: tokio::runtime::Handle,
    stats: LoadStats,
}

impl std::fmt::Debug for TenantCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantCache")
            .field("loaded", &self.live.load().len())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The `count` keys with the smallest stamps (least recently used first).
pub fn oldest<K>(mut entries: Vec<(u64, K)>, count: usize) -> Vec<K> {
    if count == 0 {
        return Vec::new();
    }
    if count < entries.len() {
        entries.select_nth_unstable_by_key(count - 1, |(stamp, _)| *stamp);
        entries.truncate(count);
    }
    entries.into_iter().map(|(_, key)| key).collect()
}

impl TenantCache {
    /// An empty cache whose loads run on `runtime`.
    pub fn new(
        directory: Arc<Directory>,
        keys: Arc<KeyManager>,
        documents: Arc<DocumentStore>,
        context: LoadContext,
        settings: TenantSettings,
        runtime: tokio::runtime::Handle,
    ) -> TenantCache {
        TenantCache {
            directory,
            keys,
            documents,
            context,
            settings,
            live: ArcSwap::default(),
            ids: ArcSwap::default(),
            membership: Mutex::new(()),
            board: Mutex::new(LoadBoard::new(settings)),
            seeds: Mutex::default(),
            runtime,
            stats: LoadStats::default(),
        }
    }

    /// The tenant, if loaded (no load, no recency stamp).
    pub fn get(&self, slug: &str) -> Option<Arc<TenantLive>> {
        self.live.load().get(slug).cloned()
    }

    /// Every loaded tenant.
    pub fn loaded(&self) -> Vec<Arc<TenantLive>> {
        self.live.load().values().cloned().collect()
    }

    /// The slug of a loaded tenant, by directory id.
    pub fn slug_of(&self, tenant_id: i64) -> Option<String> {
        self.ids.load().get(&tenant_id).cloned()
    }

    /// The counters.
    pub fn stats(&self) -> &LoadStats {
        &self.stats
    }

    /// Tenants loaded, loads running, loads queued.
    pub fn sizes(&self) -> (usize, usize, usize) {
        let board = self.board.lock().unwrap_or_else(PoisonError::into_inner);
        (self.live.load().len(), board.running(), board.queued())
    }

    /// When `live` was last used: by a request through the API, or by an
    /// SP fetching its documents (unix milliseconds; 0: never).
    pub fn last_used_ms(&self, live: &TenantLive) -> u64 {
        live.last_used_ms
            .load(Ordering::Relaxed)
            .max(self.documents.last_served_ms(&live.slug))
    }

    /// The loaded tenants with their last use, most recent first (what the
    /// recently-served file keeps).
    pub fn recent(&self) -> Vec<(String, u64)> {
        let mut recent: Vec<(String, u64)> = self
            .live
            .load()
            .values()
            .map(|live| (live.slug.to_string(), self.last_used_ms(live)))
            .collect();
        recent.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        recent
    }

    /// The tenant, loaded if it is not (waiting for its load, which runs on
    /// the control runtime; joins a load in flight).
    ///
    /// # Errors
    /// `not_found` for a name the directory lacks; `unavailable` when the
    /// directory is unreachable; `overloaded` when too many loads wait.
    pub async fn tenant(self: &Arc<Self>, slug: &str) -> LoadResult {
        let live = match self.request(slug, Lane::OnDemand)? {
            Requested::Ready(live) => live,
            Requested::Loading(receiver) => wait(receiver).await?,
        };
        live.touch(wall_ms());
        Ok(live)
    }

    /// Starts or joins the load of `slug`, or says it is there already.
    /// Never waits.
    ///
    /// # Errors
    /// `not_found` for a name the directory said it lacks a moment ago;
    /// `overloaded` when the on-demand queue is full.
    pub fn request(self: &Arc<Self>, slug: &str, lane: Lane) -> Result<Requested, WireError> {
        if let Some(live) = self.get(slug) {
            return Ok(Requested::Ready(live));
        }
        let admitted = {
            let mut board = self.board.lock().unwrap_or_else(PoisonError::into_inner);
            // Checked again under the board's lock: a load installs its
            // tenant before it leaves the board.
            if let Some(live) = self.get(slug) {
                return Ok(Requested::Ready(live));
            }
            board.admit(slug, lane, Instant::now(), || watch::channel(None).0)
        };
        match admitted {
            Admit::Unknown => Err(refuse(ErrorCode::NotFound, format!("no tenant {slug}"))),
            Admit::Full => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                Err(refuse(
                    ErrorCode::Overloaded,
                    "too many tenants are loading; retry",
                ))
            }
            Admit::Join(slot) | Admit::Queued(slot) => Ok(Requested::Loading(slot.subscribe())),
            Admit::Start(slot) => {
                let receiver = slot.subscribe();
                self.spawn(slug.to_owned(), slot);
                Ok(Requested::Loading(receiver))
            }
        }
    }

    /// Runs `slug`'s load on the control runtime, then the queued loads its
    /// slot passes to, one after another.
    fn spawn(self: &Arc<Self>, slug: String, slot: Slot) {
        let this = Arc::clone(self);
        self.runtime.spawn(async move {
            let (mut slug, mut slot) = (slug, slot);
            loop {
                let result = this.load(&slug).await;
                let outcome = match &result {
                    Ok(_) => {
                        this.stats.loaded.fetch_add(1, Ordering::Relaxed);
                        Finished::Done
                    }
                    Err(e) => {
                        this.stats.failed.fetch_add(1, Ordering::Relaxed);
                        if e.code == ErrorCode::NotFound {
                            this.forget(&slug);
                            Finished::Unknown
                        } else {
                            tracing::warn!(tenant = %slug, error = %e.message, "tenant load failed");
                            Finished::Done
                        }
                    }
                };
                let next = this
                    .board
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .finished(&slug, outcome, Instant::now());
                slot.send_replace(Some(result));
                match next {
                    Some((next_slug, next_slot)) => (slug, slot) = (next_slug, next_slot),
                    None => break,
                }
            }
        });
    }

    /// Loads (or reloads) `slug` from the directory, making missing keys,
    /// and puts it in memory in place of any earlier copy.
    async fn load(&self, slug: &str) -> LoadResult {
        let seeded = self
            .seeds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(slug);
        let tenant = self
            .directory
            .tenant_by_slug(slug)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| refuse(ErrorCode::NotFound, format!("no tenant {slug}")))?;
        let keys = self.load_keys(&tenant).await?;
        let context = &self.context;
        let used = self
            .get(slug)
            .map(|earlier| earlier.last_used_ms.load(Ordering::Relaxed))
            .or(seeded)
            .unwrap_or_else(wall_ms);
        let documents = keys.documents.clone();
        let issuer = keys::issuer(&context.public_url, &tenant);
        let live = Arc::new(TenantLive::new(
            tenant,
            issuer,
            keys,
            context.default_tenant_rate,
            &context.name_id_secret,
            used,
        ));
        self.install(&live, documents);
        Ok(live)
    }

    /// The tenant's key ring with a key for every algorithm it needs.
    async fn load_keys(&self, tenant: &Tenant) -> Result<TenantKeys, WireError> {
        let required = self.required_algorithms(tenant).await?;
        let now = Timestamp::from_system_time(SystemTime::now());
        self.keys
            .load(&self.directory, tenant, &required, now)
            .await
            .map_err(|e| match e {
                KeyError::Directory(e) => unavailable(e),
                other => internal("loading keys", &other),
            })
    }

    async fn required_algorithms(&self, tenant: &Tenant) -> Result<Vec<Algorithm>, WireError> {
        let mut algorithms: Vec<Algorithm> = tenant
            .key_algorithms
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let scope = self
            .directory
            .tenant(tenant.id)
            .await
            .map_err(unavailable)?;
        let rows = scope.app_algorithms().await.map_err(unavailable)?;
        algorithms.extend(rows.iter().filter_map(|a| a.parse::<Algorithm>().ok()));
        algorithms.sort_by_key(|a| a.name());
        algorithms.dedup();
        Ok(algorithms)
    }

    /// Puts `live` and its documents in memory, then evicts the least
    /// recently used tenants past the bound (never `live` itself).
    fn install(&self, live: &Arc<TenantLive>, documents: crate::http::TenantDocuments) {
        let _membership = self
            .membership
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let slug = live.slug.to_string();
        self.documents.publish(&slug, documents);
        let mut map = HashMap::clone(&self.live.load());
        map.insert(slug.clone(), Arc::clone(live));
        let mut ids = HashMap::clone(&self.ids.load());
        ids.insert(live.tenant.id, slug.clone());
        let excess = map.len().saturating_sub(self.settings.max_loaded.max(1));
        if excess > 0 {
            let stamps: Vec<(u64, String)> = map
                .iter()
                .filter(|(name, _)| **name != slug)
                .map(|(name, other)| (self.last_used_ms(other), name.clone()))
                .collect();
            let victims = oldest(stamps, excess);
            for victim in &victims {
                if let Some(gone) = map.remove(victim) {
                    ids.remove(&gone.tenant.id);
                }
            }
            self.documents.remove_all(&victims);
            self.stats
                .evicted
                .fetch_add(victims.len() as u64, Ordering::Relaxed);
        }
        self.live.store(Arc::new(map));
        self.ids.store(Arc::new(ids));
    }

    /// Removes `slug` from memory (the directory no longer has it).
    fn forget(&self, slug: &str) {
        let _membership = self
            .membership
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(gone) = self.live.load().get(slug).cloned() {
            let mut map = HashMap::clone(&self.live.load());
            map.remove(slug);
            self.live.store(Arc::new(map));
            let mut ids = HashMap::clone(&self.ids.load());
            ids.remove(&gone.tenant.id);
            self.ids.store(Arc::new(ids));
        }
        self.documents.remove(slug);
    }

    /// Reads a loaded tenant's keys again (after a rotation or revocation
    /// anywhere in the cluster) and republishes its documents, unless it
    /// was evicted or replaced meanwhile.
    ///
    /// # Errors
    /// When the directory or backend fails.
    pub async fn reload_keys(&self, slug: &str) -> Result<(), WireError> {
        let Some(live) = self.get(slug) else {
            return Ok(());
        };
        let keys = self.load_keys(&live.tenant).await?;
        let _membership = self
            .membership
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self
            .live
            .load()
            .get(slug)
            .is_some_and(|current| Arc::ptr_eq(current, &live))
        {
            self.documents.publish(slug, keys.documents.clone());
        }
        live.keys.store(Arc::new(keys));
        Ok(())
    }

    /// Loads `tenants` (slug, last use in unix ms; 0: unknown), in order,
    /// `parallel` at a time (in the background lane); each keeps its last
    /// use, so preloading does not make a tenant look recently used.
    /// Returns the loads that failed, but for names the directory lacks
    /// (deleted since).
    pub async fn preload(
        self: &Arc<Self>,
        tenants: Vec<(String, u64)>,
        parallel: usize,
    ) -> Vec<(String, WireError)> {
        self.load_all(tenants, parallel, false).await
    }

    /// Forgets the names the directory lacked a moment ago (a tenant this
    /// node does not hold was added or changed: it may be one of them, and
    /// is asked for again at its next request).
    pub fn forget_unknown(&self) {
        self.board
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .forget_unknown();
    }

    /// Loads every loaded tenant again, in place, in the background (after
    /// notifications may have been missed); meanwhile the copies in memory
    /// serve.
    pub fn refresh_all(self: &Arc<Self>) {
        let slugs = self.live.load().keys().cloned().collect();
        self.refresh(slugs);
    }

    /// Loads `slugs` again, in place, in the background, half the load
    /// slots at most (on-demand loads keep the rest).
    pub fn refresh(self: &Arc<Self>, slugs: Vec<String>) {
        let this = Arc::clone(self);
        let parallel = (self.settings.max_loading / 2).max(1);
        let tenants = slugs.into_iter().map(|slug| (slug, 0)).collect();
        self.runtime.spawn(async move {
            for (slug, e) in this.load_all(tenants, parallel, true).await {
                tracing::warn!(tenant = %slug, error = %e.message, "reloading failed");
            }
        });
    }

    /// Loads `tenants`, `parallel` at a time: those not in memory, or with
    /// `again` every one of them anew (a load in flight runs again).
    async fn load_all(
        self: &Arc<Self>,
        tenants: Vec<(String, u64)>,
        parallel: usize,
        again: bool,
    ) -> Vec<(String, WireError)> {
        let gate = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
        let mut loads = tokio::task::JoinSet::new();
        for (slug, used) in tenants {
            let Ok(permit) = Arc::clone(&gate).acquire_owned().await else {
                break;
            };
            if used > 0 {
                self.seeds
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(slug.clone(), used);
            }
            let requested = if again {
                self.reload(&slug)
            } else {
                self.request(&slug, Lane::Background)
            };
            if !matches!(requested, Ok(Requested::Loading(_))) {
                self.seeds
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&slug);
            }
            loads.spawn(async move {
                let result = match requested {
                    Ok(Requested::Loading(receiver)) => wait(receiver).await.map(drop),
                    Ok(Requested::Ready(_)) => Ok(()),
                    Err(e) => Err(e),
                };
                drop(permit);
                result
                    .err()
                    .filter(|e| e.code != ErrorCode::NotFound)
                    .map(|e| (slug, e))
            });
        }
        let mut failed = Vec::new();
        while let Some(joined) = loads.join_next().await {
            if let Ok(Some(failure)) = joined {
                failed.push(failure);
            }
        }
        failed
    }

    /// Starts a fresh load of `slug` (or marks the one in flight to run
    /// again), in the background lane.
    fn reload(self: &Arc<Self>, slug: &str) -> Result<Requested, WireError> {
        let admitted = self
            .board
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reload(slug, Instant::now(), || watch::channel(None).0);
        match admitted {
            Admit::Start(slot) => {
                let receiver = slot.subscribe();
                self.spawn(slug.to_owned(), slot);
                Ok(Requested::Loading(receiver))
            }
            Admit::Queued(slot) | Admit::Join(slot) => Ok(Requested::Loading(slot.subscribe())),
            Admit::Unknown | Admit::Full => Err(refuse(ErrorCode::Overloaded, "not reloaded")),
        }
    }

    /// Loads `slug` now (again, in place, if it is in memory; a name
    /// remembered as unknown is forgotten) and waits for the load: an
    /// admin made or changed the tenant on this node, and the next request
    /// must see it.
    ///
    /// # Errors
    /// When the load fails.
    pub async fn load_now(self: &Arc<Self>, slug: &str) -> Result<(), WireError> {
        match self.reload(slug)? {
            Requested::Loading(receiver) => wait(receiver).await.map(drop),
            Requested::Ready(_) => Ok(()),
        }
    }

    /// A tenant's keys changed in the directory: a load in flight runs
    /// again when it ends; a loaded tenant reads its keys again.
    ///
    /// # Errors
    /// When the directory or backend fails.
    pub async fn keys_changed(&self, slug: &str) -> Result<(), WireError> {
        let loading = self
            .board
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .changed(slug)
            .is_some();
        if loading {
            return Ok(());
        }
        self.reload_keys(slug).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_go_first() {
        let entries = vec![(50, "e"), (10, "a"), (40, "d"), (20, "b"), (30, "c")];
        let mut two = oldest(entries.clone(), 2);
        two.sort_unstable();
        assert_eq!(two, vec!["a", "b"]);
        assert!(oldest(entries.clone(), 0).is_empty());
        let mut all = oldest(entries, 9);
        all.sort_unstable();
        assert_eq!(all, vec!["a", "b", "c", "d", "e"]);
        // Never-used (0) before anything used.
        assert_eq!(oldest(vec![(5, "used"), (0, "never")], 1), vec!["never"]);
    }
}
