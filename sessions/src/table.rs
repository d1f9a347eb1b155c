//! The session table: sessions keyed by id, in shards that each carry their
//! own lock and their own copy of the revocation marks, so a validation
//! reads exactly one shard and never takes a lock shared by the whole table.
//!
//! The table is a state-based CRDT (see docs/sessions.md): a session is
//! inserted once; its last-seen time only grows; revocation (of a session,
//! of a user's sessions before a time, of a tenant's) only goes one way.
//! [`SessionTable::merge`] applies a remote record with exactly those rules,
//! so replicas converge whatever the order, duplication or delay of what
//! they receive. Times are milliseconds since the Unix epoch, passed in.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use aws_lc_rs::rand::SecureRandom;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL, Engine};
use serde::{Deserialize, Serialize};

use crate::Error;
mod apps;
mod create;
mod scan;
mod user_marks;

/// A session id: 256 random bits, shown as 43 characters of base64url.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionId([u8; 32]);

impl Hash for SessionId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The bytes alone, without the slice's length prefix: one `write`.
        state.write(&self.0);
    }
}

impl SessionId {
    /// A fresh random id.
    ///
    /// # Errors
    /// [`Error::Random`] if the generator fails.
    pub fn generate(rng: &dyn SecureRandom) -> Result<SessionId, Error> {
        let mut bytes = [0u8; 32];
        rng.fill(&mut bytes).map_err(|_| Error::Random)?;
        Ok(SessionId(bytes))
    }

    /// An id from raw bytes (tests and simulations; real ids come from
    /// [`SessionId::generate`]).
    pub fn from_bytes(bytes: [u8; 32]) -> SessionId {
        SessionId(bytes)
    }

    /// Parses the 43-character base64url form.
    ///
    /// # Errors
    /// [`Error::MalformedId`] for anything else.
    pub fn parse(text: &str) -> Result<SessionId, Error> {
        if text.len() != 43 {
            return Err(Error::MalformedId);
        }
        let bytes = BASE64URL.decode(text).map_err(|_| Error::MalformedId)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| Error::MalformedId)?;
        Ok(SessionId(bytes))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn shard(&self, shards: usize) -> usize {
        // The id is uniformly random: its first bytes spread evenly.
        (u64::from_le_bytes([
            self.0[0], self.0[1], self.0[2], self.0[3], self.0[4], self.0[5], self.0[6], self.0[7],
        ]) % shards as u64) as usize
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&BASE64URL.encode(self.0))
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A session id is a bearer secret: logs get a prefix only.
        write!(f, "SessionId({}…)", &self.to_string()[..6])
    }
}

/// A tenant's session policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPolicy {
    /// A session ends this long after it was created, however active.
    pub absolute_ms: u64,
    /// A session ends after this long without activity.
    pub idle_ms: u64,
}

impl Default for SessionPolicy {
    fn default() -> SessionPolicy {
        SessionPolicy {
            absolute_ms: 12 * 3600 * 1000,
            idle_ms: 2 * 3600 * 1000,
        }
    }
}

/// The replicated state of one session: what peers exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Tenant slug.
    pub tenant: Arc<str>,
    /// The id.
    pub id: SessionId,
    /// User id or login.
    pub user: Arc<str>,
    /// When the user authenticated.
    pub auth_time_ms: u64,
    /// Authentication methods.
    pub amr: Vec<String>,
    /// Client description.
    pub client: Option<String>,
    /// Creation time.
    pub created_ms: u64,
    /// Last activity (merged by max).
    pub last_seen_ms: u64,
    /// Absolute expiry.
    pub expires_ms: u64,
    /// Idle limit.
    pub idle_ms: u64,
    /// Revoked (merged by or). A revoke of an id never seen leaves a
    /// record with `revoked` and empty fields: a tombstone.
    pub revoked: bool,
    /// The OIDC apps (client ids) that received a token in this session: a
    /// grow-only set merged by union, sorted (issue 19, back-channel
    /// logout; see `table/apps.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<Arc<str>>,
    /// The sign-in was asserted by a trusted front end (`session_create`,
    /// issue 18), not proven by Sigil (`authenticate`). Fixed at creation.
    /// Left out when false: a peer that predates it reads the record as
    /// before, and reads an asserted one as a record without the field.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub asserted: bool,
}

/// A one-way revocation mark: sessions of `user` (or of the whole tenant
/// when `user` is `None`) created at or before `before_ms` are revoked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mark {
    /// Tenant slug.
    pub tenant: Arc<str>,
    /// The user, or the whole tenant.
    pub user: Option<Arc<str>>,
    /// Sessions created at or before this time are revoked.
    pub before_ms: u64,
    /// Wall-clock ms after which no session it covers can be valid (they
    /// were created before `before_ms` and live at most so long): the mark
    /// may then be forgotten. See [`SessionTable::longest_lifetime_ms`].
    pub keep_until_ms: u64,
}

/// What a validation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    /// The session is valid.
    Valid(SessionView),
    /// No such session in this tenant.
    NotFound,
    /// Past its absolute expiry.
    Expired,
    /// Idle longer than its policy allows.
    IdleExpired,
    /// Revoked (itself, its user, or its tenant).
    Revoked,
}

/// Why a session is not valid: what [`Validation`] says but a valid view,
/// small enough to come back in registers from the shared lookup.
#[derive(Clone, Copy)]
enum Invalid {
    NotFound,
    Expired,
    IdleExpired,
    Revoked,
}

impl From<Invalid> for Validation {
    fn from(invalid: Invalid) -> Validation {
        match invalid {
            Invalid::NotFound => Validation::NotFound,
            Invalid::Expired => Validation::Expired,
            Invalid::IdleExpired => Validation::IdleExpired,
            Invalid::Revoked => Validation::Revoked,
        }
    }
}

/// A valid session's facts. Cloning it is one reference count: the
/// principal is shared with the table's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    principal: Arc<Principal>,
    /// Absolute expiry.
    pub expires_ms: u64,
    /// When it expires if idle from now on.
    pub idle_expires_ms: u64,
}

impl SessionView {
    /// The user (id or login).
    pub fn user(&self) -> &Arc<str> {
        &self.principal.user
    }

    /// When the user authenticated.
    pub fn auth_time_ms(&self) -> u64 {
        self.principal.auth_time_ms
    }

    /// Authentication methods.
    pub fn amr(&self) -> &[String] {
        &self.principal.amr
    }

    /// Whether a trusted front end asserted the sign-in (`session_create`)
    /// rather than Sigil proving it.
    pub fn asserted(&self) -> bool {
        self.principal.asserted
    }
}

/// Who a session is for and how they signed in: fixed at creation, read
/// only when a validation succeeds, kept out of the hot entry in one
/// allocation (so a validation costs one reference count, not one per
/// field).
#[derive(Debug, PartialEq, Eq)]
struct Principal {
    user: Arc<str>,
    auth_time_ms: u64,
    amr: Box<[String]>,
    client: Option<Box<str>>,
    asserted: bool,
}

/// The hot part of a session, inline in the hash map's slot: everything a
/// validation compares (64 bytes on 64-bit targets).
struct Entry {
    tenant: Arc<str>,
    principal: Arc<Principal>,
    created_ms: u64,
    expires_ms: u64,
    idle_ms: u64,
    last_seen_ms: AtomicU64,
    revoked: AtomicBool,
    /// A revocation of an id never seen: no user, no payload.
    tombstone: bool,
}

impl Entry {
    fn from_record(record: &SessionRecord) -> Entry {
        Entry {
            tenant: Arc::clone(&record.tenant),
            principal: Arc::new(Principal {
                user: Arc::clone(&record.user),
                auth_time_ms: record.auth_time_ms,
                amr: record.amr.clone().into_boxed_slice(),
                client: record.client.as_deref().map(Box::from),
                asserted: record.asserted,
            }),
            created_ms: record.created_ms,
            expires_ms: record.expires_ms,
            idle_ms: record.idle_ms,
            last_seen_ms: AtomicU64::new(record.last_seen_ms),
            revoked: AtomicBool::new(record.revoked),
            tombstone: record.user.is_empty(),
        }
    }

    fn record(&self, id: SessionId) -> SessionRecord {
        SessionRecord {
            tenant: Arc::clone(&self.tenant),
            id,
            user: Arc::clone(&self.principal.user),
            auth_time_ms: self.principal.auth_time_ms,
            amr: self.principal.amr.to_vec(),
            client: self.principal.client.as_deref().map(str::to_owned),
            created_ms: self.created_ms,
            last_seen_ms: self.last_seen_ms.load(Ordering::Relaxed),
            expires_ms: self.expires_ms,
            idle_ms: self.idle_ms,
            revoked: self.revoked.load(Ordering::Relaxed),
            apps: Vec::new(),
            asserted: self.principal.asserted,
        }
    }

    fn is_tombstone(&self) -> bool {
        self.tombstone
    }

    /// What a validation hands back, with activity last seen at `last_seen`.
    fn view(&self, last_seen: u64) -> SessionView {
        SessionView {
            principal: Arc::clone(&self.principal),
            expires_ms: self.expires_ms,
            idle_expires_ms: last_seen.saturating_add(self.idle_ms).min(self.expires_ms),
        }
    }

    /// The earliest time the sweep may reclaim this entry: its absolute
    /// expiry, or its idle end if that comes first and it is not revoked
    /// (a revoked session stays until it expires, so a late replica of it
    /// meets the revocation). Only ever moves later: last-seen grows,
    /// revocation is one-way.
    fn reclaimable_at(&self) -> u64 {
        if self.revoked.load(Ordering::Relaxed) {
            return self.expires_ms;
        }
        let idle_end = self
            .last_seen_ms
            .load(Ordering::Relaxed)
            .saturating_add(self.idle_ms);
        self.expires_ms.min(idle_end)
    }
}

/// One mark's times: sessions created at or before `before` are revoked;
/// the mark may be forgotten after `keep_until` (both merged by max).
#[derive(Default, Clone, Copy)]
struct MarkTimes {
    before: u64,
    keep_until: u64,
}

impl MarkTimes {
    fn raise(&mut self, mark: &Mark) -> bool {
        self.keep_until = self.keep_until.max(mark.keep_until_ms);
        if mark.before_ms > self.before {
            self.before = mark.before_ms;
            return true;
        }
        false
    }
}

/// A tenant's revocation marks.
#[derive(Default, Clone)]
struct TenantMarks {
    /// Sessions of the tenant created at or before this are revoked.
    tenant: MarkTimes,
    /// Per user.
    users: HashMap<Arc<str>, MarkTimes>,
}

#[derive(Default)]
struct Shard {
    sessions: HashMap<SessionId, Entry, IdHasher>,
    /// Revocation marks by tenant (looked up by `&str`, no allocation).
    marks: HashMap<Arc<str>, TenantMarks>,
    /// When each entry may become reclaimable, earliest first. A deadline
    /// that has moved later by the time it comes up is pushed back with
    /// the new one; ids no longer present are skipped. So the sweep looks
    /// only at entries that are, or were, due.
    deadlines: BinaryHeap<Reverse<(u64, SessionId)>>,
    /// The longest absolute lifetime of a session merged here, per tenant
    /// (see [`SessionTable::longest_lifetime_ms`]).
    lifetimes: HashMap<Arc<str>, u64>,
    /// The apps that received a token, by session: beside the hot entries
    /// so a validation's slot stays 64 bytes (`table/apps.rs`).
    apps: HashMap<SessionId, apps::AppSet, IdHasher>,
}

impl Shard {
    fn note_lifetime(&mut self, record: &SessionRecord) {
        if record.user.is_empty() {
            return;
        }
        let lifetime = record.expires_ms.saturating_sub(record.created_ms);
        match self.lifetimes.get_mut(&*record.tenant) {
            Some(longest) => *longest = (*longest).max(lifetime),
            None => {
                self.lifetimes.insert(Arc::clone(&record.tenant), lifetime);
            }
        }
    }

    /// The entry of `id` if it is a valid session of `tenant` at `now_ms`;
    /// otherwise why not. A session presented for another tenant than its
    /// own is `NotFound`.
    // Inlined into validate and touch: without it validate ran at 0.95× the
    // Mutex baseline instead of 1.14× (criterion, same runs).
    #[inline(always)]
    fn valid_entry(&self, tenant: &str, id: &SessionId, now_ms: u64) -> Result<&Entry, Invalid> {
        let Some(entry) = self.sessions.get(id) else {
            return Err(Invalid::NotFound);
        };
        if *entry.tenant != *tenant {
            return Err(Invalid::NotFound);
        }
        if entry.revoked.load(Ordering::Acquire) || self.mark_revokes(entry) {
            return Err(Invalid::Revoked);
        }
        if entry.is_tombstone() {
            return Err(Invalid::NotFound);
        }
        if now_ms >= entry.expires_ms {
            return Err(Invalid::Expired);
        }
        let last_seen = entry.last_seen_ms.load(Ordering::Relaxed);
        if now_ms >= last_seen.saturating_add(entry.idle_ms) {
            return Err(Invalid::IdleExpired);
        }
        Ok(entry)
    }

    fn insert(&mut self, id: SessionId, entry: Entry) {
        self.deadlines.push(Reverse((entry.reclaimable_at(), id)));
        self.sessions.insert(id, entry);
    }

    fn mark_revokes(&self, entry: &Entry) -> bool {
        let Some(marks) = self.marks.get(&*entry.tenant) else {
            return false;
        };
        entry.created_ms <= marks.tenant.before
            || marks
                .users
                .get(&*entry.principal.user)
                .is_some_and(|times| entry.created_ms <= times.before)
    }
}

/// Session ids are uniformly random: hashing them again is wasted work.
#[derive(Default, Clone, Copy)]
struct IdHasher;

impl BuildHasher for IdHasher {
    type Hasher = IdHash;
    fn build_hasher(&self) -> IdHash {
        IdHash(0)
    }
}

struct IdHash(u64);

impl Hasher for IdHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // A SessionId writes its 32 random bytes once. Bytes 8..16 are the
        // hash: bytes 0..8 chose the shard, so within a shard their low
        // bits are all alike and would crowd the map's buckets.
        if let Some(word) = bytes.get(8..16) {
            let mut array = [0u8; 8];
            array.copy_from_slice(word);
            self.0 ^= u64::from_le_bytes(array);
        } else {
            for &byte in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(byte);
            }
        }
    }
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct TableStats {
    /// Sessions created here.
    pub created: AtomicU64,
    /// Entries reclaimed by the sweep.
    pub reclaimed: AtomicU64,
}

/// The sharded table. `Send + Sync`; share it behind an `Arc`.
pub struct SessionTable {
    shards: Box<[RwLock<Shard>]>,
    stats: TableStats,
    sweep_cursor: AtomicU64,
}

impl std::fmt::Debug for SessionTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTable")
            .field("shards", &self.shards.len())
            .field("len", &self.len())
            .finish()
    }
}

fn read(shard: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
    // A panic while holding a shard lock cannot leave a half-applied CRDT
    // update (each is one insert or one max), so poison is ignored.
    shard
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write(shard: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
    shard
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SessionTable {
    /// A table with `shards` shards (one or two per core is right).
    pub fn new(shards: usize) -> SessionTable {
        SessionTable {
            shards: (0..shards.max(1))
                .map(|_| RwLock::new(Shard::default()))
                .collect(),
            stats: TableStats::default(),
            sweep_cursor: AtomicU64::new(0),
        }
    }

    fn shard(&self, id: &SessionId) -> &RwLock<Shard> {
        &self.shards[id.shard(self.shards.len())]
    }

    /// Counters.
    pub fn stats(&self) -> &TableStats {
        &self.stats
    }

    /// Is session `id` of `tenant` valid at `now_ms`? A session presented
    /// for another tenant than its own is `NotFound`.
    pub fn validate(&self, tenant: &str, id: &SessionId, now_ms: u64) -> Validation {
        let shard = read(self.shard(id));
        match shard.valid_entry(tenant, id, now_ms) {
            Ok(entry) => Validation::Valid(entry.view(entry.last_seen_ms.load(Ordering::Relaxed))),
            Err(invalid) => invalid.into(),
        }
    }

    /// Records activity: last-seen becomes `now_ms` (if later). Returns the
    /// validation as of `now_ms` (a session past its idle limit is not
    /// revived). One lookup, under one read lock.
    pub fn touch(&self, tenant: &str, id: &SessionId, now_ms: u64) -> Validation {
        let shard = read(self.shard(id));
        match shard.valid_entry(tenant, id, now_ms) {
            Ok(entry) => {
                entry.last_seen_ms.fetch_max(now_ms, Ordering::Relaxed);
                Validation::Valid(entry.view(now_ms))
            }
            Err(invalid) => invalid.into(),
        }
    }

    /// Revokes one session (leaves a tombstone if the id is not known yet,
    /// so a late replica of it arrives revoked). `expires_ms` bounds how
    /// long the tombstone is kept. Returns whether this changed anything.
    pub fn revoke(&self, tenant: &Arc<str>, id: &SessionId, tombstone_expires_ms: u64) -> bool {
        let mut shard = write(self.shard(id));
        match shard.sessions.get(id) {
            Some(entry) => !entry.revoked.swap(true, Ordering::AcqRel),
            None => {
                let tombstone = SessionRecord {
                    tenant: Arc::clone(tenant),
                    id: *id,
                    user: Arc::from(""),
                    auth_time_ms: 0,
                    amr: Vec::new(),
                    client: None,
                    created_ms: 0,
                    last_seen_ms: 0,
                    expires_ms: tombstone_expires_ms,
                    idle_ms: u64::MAX,
                    revoked: true,
                    apps: Vec::new(),
                    asserted: false,
                };
                shard.insert(*id, Entry::from_record(&tombstone));
                true
            }
        }
    }

    /// Applies a mark in every shard; returns whether it raised any.
    pub fn apply_mark(&self, mark: &Mark) -> bool {
        let mut changed = false;
        for shard in self.shards.iter() {
            let mut shard = write(shard);
            let marks = shard.marks.entry(Arc::clone(&mark.tenant)).or_default();
            let times = match &mark.user {
                Some(user) => marks.users.entry(Arc::clone(user)).or_default(),
                None => &mut marks.tenant,
            };
            changed |= times.raise(mark);
        }
        changed
    }

    /// Forgets marks past their `keep_until_ms` at wall-clock `now_ms`.
    /// Returns how many were forgotten (in shard 0; every shard holds the
    /// same marks).
    pub fn compact_marks(&self, now_ms: u64) -> usize {
        let mut forgotten = 0;
        for (i, shard) in self.shards.iter().enumerate() {
            let mut shard = write(shard);
            for marks in shard.marks.values_mut() {
                let before = marks.users.len();
                marks.users.retain(|_, times| times.keep_until > now_ms);
                let mut dropped = before - marks.users.len();
                if marks.tenant.before > 0 && marks.tenant.keep_until <= now_ms {
                    marks.tenant = MarkTimes::default();
                    dropped += 1;
                }
                if i == 0 {
                    forgotten += dropped;
                }
            }
            shard
                .marks
                .retain(|_, m| m.tenant.before > 0 || !m.users.is_empty());
        }
        forgotten
    }

    /// Marks held (the same in every shard).
    pub fn mark_count(&self) -> usize {
        read(&self.shards[0])
            .marks
            .values()
            .map(|m| m.users.len() + usize::from(m.tenant.before > 0))
            .sum()
    }

    /// The longest absolute lifetime of any session of `tenant` this table
    /// has held, or `at_least_ms` if longer: a revocation of the tenant's
    /// sessions made now must be kept this long. (A tenant's policy may
    /// shorten after long sessions were created; they still live.)
    pub fn longest_lifetime_ms(&self, tenant: &str, at_least_ms: u64) -> u64 {
        self.shards
            .iter()
            .filter_map(|shard| read(shard).lifetimes.get(tenant).copied())
            .fold(at_least_ms, u64::max)
    }

    /// Merges a record from a peer (insert once, last-seen by max, revoked
    /// by or). Returns whether the local state changed.
    pub fn merge(&self, record: &SessionRecord) -> bool {
        let mut shard = write(self.shard(&record.id));
        shard.note_lifetime(record);
        let apps = shard.merge_apps(record);
        apps | match shard.sessions.get_mut(&record.id) {
            None => {
                shard.insert(record.id, Entry::from_record(record));
                true
            }
            Some(entry) if entry.is_tombstone() && !record.user.is_empty() => {
                // The real session arrives after its revocation: keep it revoked.
                let mut merged = record.clone();
                merged.revoked = true;
                shard.insert(record.id, Entry::from_record(&merged));
                true
            }
            Some(entry) => {
                let seen = entry
                    .last_seen_ms
                    .fetch_max(record.last_seen_ms, Ordering::Relaxed)
                    < record.last_seen_ms;
                let revoked = record.revoked && !entry.revoked.swap(true, Ordering::AcqRel);
                seen || revoked
            }
        }
    }

    /// The record of one session, if known.
    pub fn record(&self, id: &SessionId) -> Option<SessionRecord> {
        let shard = read(self.shard(id));
        shard
            .sessions
            .get(id)
            .map(|entry| shard.full_record(*id, entry))
    }

    /// Sessions (and tombstones) held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| read(s).sessions.len()).sum()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reclaims entries that can never be valid again (past absolute or
    /// idle expiry, tombstones past their lifetime), looking at most at
    /// `budget` due deadlines of one shard per call: the time a call holds
    /// its shard does not grow with the table. Call it often (e.g. every
    /// 20 ms with a budget of 2,000). Revoked sessions stay until they
    /// expire, so a late replica of them meets the revocation. Returns how
    /// many were removed.
    pub fn sweep(&self, now_ms: u64, budget: usize) -> usize {
        let index =
            (self.sweep_cursor.fetch_add(1, Ordering::Relaxed) % self.shards.len() as u64) as usize;
        let mut shard = write(&self.shards[index]);
        let mut removed = 0;
        for _ in 0..budget {
            let Some(&Reverse((due, id))) = shard.deadlines.peek() else {
                break;
            };
            if due > now_ms {
                break;
            }
            shard.deadlines.pop();
            let Some(entry) = shard.sessions.get(&id) else {
                continue; // removed or replaced earlier: a stale deadline
            };
            let now_due = entry.reclaimable_at();
            if now_due <= now_ms {
                shard.sessions.remove(&id);
                shard.apps.remove(&id);
                removed += 1;
            } else {
                // Touched or revoked since: come back at the new time.
                shard.deadlines.push(Reverse((now_due, id)));
            }
        }
        self.stats
            .reclaimed
            .fetch_add(removed as u64, Ordering::Relaxed);
        removed
    }

    /// The bytes one session costs in the table beyond its payload (user,
    /// tenant string shared, amr and client strings): the entry, its key,
    /// the hash map's per-slot overhead at its load factor, the
    /// principal's allocation, and its deadline in the sweep's heap.
    pub fn overhead_per_session() -> usize {
        // hashbrown: one control byte per slot, slots at most 7/8 full.
        let slot = std::mem::size_of::<SessionId>() + std::mem::size_of::<Entry>();
        // The principal's allocation: two reference counts and its fields.
        let principal = 2 * std::mem::size_of::<usize>() + std::mem::size_of::<Principal>();
        // Its deadline in the sweep's heap.
        let deadline = std::mem::size_of::<(u64, SessionId)>();
        (slot + 1) * 8 / 7 + principal + deadline
    }
}
