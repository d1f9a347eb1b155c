//! Per-tenant key rings: rotation with pre-publication, retirement grace and
//! emergency revocation.
//!
//! A [`KeyRing`] is owned by the control plane and changed one call at a
//! time. The hot path never touches it: it reads a [`KeyRingView`], an
//! immutable snapshot computed at one moment that holds the active key per
//! algorithm, the published keys, and the JWKS already rendered to bytes.
//! The view says until when it stays true ([`KeyRingView::valid_until`]);
//! the owner computes a new one then, or whenever the ring changes.
//!
//! States are derived from times, never stored, so they cannot drift:
//!
//! - **pending**: added, not yet signing (`now < activates_at`); published.
//! - **active**: the newest activated key of its algorithm; signs; published.
//! - **retiring**: superseded by a newer key less than the retirement grace
//!   ago; published so tokens it signed still verify.
//! - **retired**: superseded longer ago than the grace; not published.
//! - **revoked**: emergency-revoked; not published from that moment, and
//!   never signs again.
//!
//! A key that has been superseded never becomes active again, even if its
//! successor is revoked: recovery from an emergency revocation is a new key.

use std::sync::Arc;

use aws_lc_rs::digest;
use bytes::Bytes;

use crate::jwt::{encoded_header, TokenType, MAX_TOKEN_LIFETIME_SECS};
use crate::{b64, Algorithm, Error, Kid, SigningKey, Timestamp};

/// How a tenant's keys rotate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyPolicy {
    prepublish_secs: u64,
    retire_grace_secs: u64,
}

impl KeyPolicy {
    /// Default pre-publication: one day, so SPs that cache JWKS and metadata
    /// for hours still learn a key before it signs.
    pub const DEFAULT_PREPUBLISH_SECS: u64 = 86_400;
    /// Default retirement grace: the longest token lifetime plus five
    /// minutes of clock skew.
    pub const DEFAULT_RETIRE_GRACE_SECS: u64 = MAX_TOKEN_LIFETIME_SECS + 300;

    /// A policy that pre-publishes new keys for `prepublish_secs` and keeps
    /// superseded keys published for `retire_grace_secs`.
    ///
    /// # Errors
    /// [`Error::InvalidPolicy`] if the grace is shorter than the longest
    /// token lifetime (tokens would outlive their key in JWKS).
    pub fn new(prepublish_secs: u64, retire_grace_secs: u64) -> Result<KeyPolicy, Error> {
        if retire_grace_secs < MAX_TOKEN_LIFETIME_SECS {
            return Err(Error::InvalidPolicy(
                "retirement grace must be at least the longest token lifetime (3600 s)",
            ));
        }
        Ok(KeyPolicy {
            prepublish_secs,
            retire_grace_secs,
        })
    }

    /// Seconds a new key is published before it signs.
    pub fn prepublish_secs(self) -> u64 {
        self.prepublish_secs
    }

    /// Seconds a superseded key stays published.
    pub fn retire_grace_secs(self) -> u64 {
        self.retire_grace_secs
    }
}

impl Default for KeyPolicy {
    fn default() -> KeyPolicy {
        KeyPolicy {
            prepublish_secs: Self::DEFAULT_PREPUBLISH_SECS,
            retire_grace_secs: Self::DEFAULT_RETIRE_GRACE_SECS,
        }
    }
}

/// The lifecycle state of a key at a given moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Published, not yet signing.
    Pending,
    /// Signing and published.
    Active,
    /// Superseded, still published until its tokens have expired.
    Retiring,
    /// Superseded and no longer published.
    Retired,
    /// Emergency-revoked: neither signs nor is published.
    Revoked,
}

impl KeyState {
    /// Lowercase name, as stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
            KeyState::Retired => "retired",
            KeyState::Revoked => "revoked",
        }
    }

    /// Whether keys in this state appear in JWKS and metadata.
    pub fn is_published(self) -> bool {
        matches!(
            self,
            KeyState::Pending | KeyState::Active | KeyState::Retiring
        )
    }
}

/// One key of a ring with the times that decide its state.
#[derive(Clone, Debug)]
pub struct KeyEntry {
    /// The key.
    pub key: Arc<dyn SigningKey>,
    /// When it was added to the ring.
    pub added_at: Timestamp,
    /// When it starts (or started) to sign.
    pub activates_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

impl KeyEntry {
    /// A revoked key supersedes its predecessor only if it really signed
    /// (was revoked after it activated); one revoked while pending did not.
    fn was_activated(&self) -> bool {
        self.revoked_at
            .is_none_or(|revoked| revoked >= self.activates_at)
    }
}

/// The keys of one tenant.
#[derive(Debug, Clone)]
pub struct KeyRing {
    tenant: String,
    policy: KeyPolicy,
    entries: Vec<KeyEntry>,
}

impl KeyRing {
    /// An empty ring for `tenant`.
    pub fn new(tenant: impl Into<String>, policy: KeyPolicy) -> KeyRing {
        KeyRing {
            tenant: tenant.into(),
            policy,
            entries: Vec::new(),
        }
    }

    /// The tenant this ring belongs to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The rotation policy.
    pub fn policy(&self) -> KeyPolicy {
        self.policy
    }

    /// Replaces the rotation policy; it applies to keys added from now on.
    pub fn set_policy(&mut self, policy: KeyPolicy) {
        self.policy = policy;
    }

    /// Every entry, in the order added (for persistence and listing).
    pub fn entries(&self) -> &[KeyEntry] {
        &self.entries
    }

    /// Adds a key that is published now and signs after the policy's
    /// pre-publication time. Returns when it will start signing.
    ///
    /// # Errors
    /// [`Error::InvalidPolicy`] if a key with the same kid is already there.
    pub fn add_pending(
        &mut self,
        key: Arc<dyn SigningKey>,
        now: Timestamp,
    ) -> Result<Timestamp, Error> {
        let activates_at = now.plus(self.policy.prepublish_secs);
        self.insert(KeyEntry {
            key,
            added_at: now,
            activates_at,
            revoked_at: None,
        })?;
        Ok(activates_at)
    }

    /// Adds a key that signs at once: a tenant's first key of an algorithm,
    /// or the replacement after an emergency revocation. SPs see it in the
    /// same view in which it starts to sign.
    ///
    /// # Errors
    /// [`Error::InvalidPolicy`] if a key with the same kid is already there.
    pub fn add_active(&mut self, key: Arc<dyn SigningKey>, now: Timestamp) -> Result<(), Error> {
        self.insert(KeyEntry {
            key,
            added_at: now,
            activates_at: now,
            revoked_at: None,
        })
    }

    /// Puts back an entry loaded from storage, times as they were.
    ///
    /// # Errors
    /// [`Error::InvalidPolicy`] if a key with the same kid is already there.
    pub fn restore(&mut self, entry: KeyEntry) -> Result<(), Error> {
        self.insert(entry)
    }

    fn insert(&mut self, entry: KeyEntry) -> Result<(), Error> {
        if self.entries.iter().any(|e| e.key.kid() == entry.key.kid()) {
            return Err(Error::InvalidPolicy(
                "a key with this kid is already in the ring",
            ));
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Revokes a key at `now`: from this moment it neither signs nor is
    /// published. Revoking a revoked key is a no-op.
    ///
    /// # Errors
    /// [`Error::UnknownKey`] if the ring has no such key.
    pub fn revoke(&mut self, kid: &Kid, now: Timestamp) -> Result<(), Error> {
        let entry = self
            .entries
            .iter_mut()
            .find(|e| e.key.kid() == kid)
            .ok_or_else(|| Error::UnknownKey(kid.to_string()))?;
        entry.revoked_at.get_or_insert(now);
        Ok(())
    }

    /// The state of `kid` at `now`, or `None` if the ring has no such key.
    pub fn state(&self, kid: &Kid, now: Timestamp) -> Option<KeyState> {
        let index = self.entries.iter().position(|e| e.key.kid() == kid)?;
        Some(self.state_at(index, now))
    }

    /// Drops retired entries and returns how many. Safe: every key older
    /// than a retired key of its algorithm is retired too, and newer keys do
    /// not depend on older ones. Revoked entries stay, as tombstones that keep
    /// their predecessors superseded.
    pub fn prune(&mut self, now: Timestamp) -> usize {
        let retired: Vec<bool> = (0..self.entries.len())
            .map(|i| self.state_at(i, now) == KeyState::Retired)
            .collect();
        let before = self.entries.len();
        let mut flags = retired.into_iter();
        self.entries.retain(|_| !flags.next().unwrap_or(false));
        before - self.entries.len()
    }

    /// When entry `i` stopped (or will have stopped, by `now`) being the
    /// newest activated key of its algorithm.
    fn superseded_at(&self, i: usize, now: Timestamp) -> Option<Timestamp> {
        let e = &self.entries[i];
        self.entries
            .iter()
            .enumerate()
            .filter(|&(j, other)| {
                j != i
                    && other.key.algorithm() == e.key.algorithm()
                    && other.activates_at <= now
                    && other.was_activated()
                    && (other.activates_at, j) > (e.activates_at, i)
            })
            .map(|(_, other)| other.activates_at)
            .min()
    }

    fn state_at(&self, i: usize, now: Timestamp) -> KeyState {
        let e = &self.entries[i];
        if e.revoked_at.is_some_and(|t| t <= now) {
            return KeyState::Revoked;
        }
        if now < e.activates_at {
            return KeyState::Pending;
        }
        match self.superseded_at(i, now) {
            None => KeyState::Active,
            Some(t) if now < t.plus(self.policy.retire_grace_secs) => KeyState::Retiring,
            Some(_) => KeyState::Retired,
        }
    }

    /// The next moment after `now` at which some key changes state.
    fn next_transition(&self, now: Timestamp) -> Option<Timestamp> {
        let activations = self.entries.iter().map(|e| e.activates_at);
        let retirements = (0..self.entries.len()).filter_map(|i| {
            self.superseded_at(i, Timestamp::from_secs(u64::MAX))
                .map(|t| t.plus(self.policy.retire_grace_secs))
        });
        let revocations = self.entries.iter().filter_map(|e| e.revoked_at);
        activations
            .chain(retirements)
            .chain(revocations)
            .filter(|&t| t > now)
            .min()
    }

    /// Computes the snapshot the hot path and the HTTP endpoints read.
    pub fn view(&self, now: Timestamp) -> KeyRingView {
        let states: Vec<KeyState> = (0..self.entries.len())
            .map(|i| self.state_at(i, now))
            .collect();
        let mut active = Vec::new();
        let mut published = Vec::new();
        for (entry, &state) in self.entries.iter().zip(&states) {
            if state == KeyState::Active {
                active.push(ActiveKey::new(Arc::clone(&entry.key)));
            }
            if state.is_published() {
                published.push(PublishedKey {
                    key: Arc::clone(&entry.key),
                    state,
                    activates_at: entry.activates_at,
                });
            }
        }
        let jwks = render_jwks(published.iter().map(|p| p.key.as_ref()));
        let etag = format!(
            "\"{}\"",
            b64::encode(&digest::digest(&digest::SHA256, &jwks).as_ref()[..18])
        );
        let next_activation = self
            .entries
            .iter()
            .filter(|e| e.revoked_at.is_none() && e.activates_at > now)
            .map(|e| e.activates_at)
            .min();
        KeyRingView {
            tenant: self.tenant.clone(),
            computed_at: now,
            valid_until: self.next_transition(now),
            next_activation,
            active,
            published,
            jwks,
            etag,
        }
    }
}

/// Renders a JWKS document (`{"keys":[...]}`) from public keys.
pub fn render_jwks<'a>(keys: impl IntoIterator<Item = &'a dyn SigningKey>) -> Bytes {
    let mut json = String::from(r#"{"keys":["#);
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&key.public_key().to_jwk_json());
    }
    json.push_str("]}");
    Bytes::from(json)
}

/// The signing key of one algorithm with its JOSE headers pre-encoded.
#[derive(Debug, Clone)]
pub struct ActiveKey {
    key: Arc<dyn SigningKey>,
    id_token_header: String,
    access_token_header: String,
}

impl ActiveKey {
    fn new(key: Arc<dyn SigningKey>) -> ActiveKey {
        ActiveKey {
            id_token_header: encoded_header(key.as_ref(), TokenType::IdToken),
            access_token_header: encoded_header(key.as_ref(), TokenType::AccessToken),
            key,
        }
    }

    /// The key.
    pub fn key(&self) -> &Arc<dyn SigningKey> {
        &self.key
    }

    /// The base64url JOSE header for a token of `token_type` signed by it.
    pub fn header(&self, token_type: TokenType) -> &str {
        match token_type {
            TokenType::IdToken => &self.id_token_header,
            TokenType::AccessToken => &self.access_token_header,
        }
    }
}

/// A key that appears in JWKS and metadata.
#[derive(Debug, Clone)]
pub struct PublishedKey {
    /// The key.
    pub key: Arc<dyn SigningKey>,
    /// Pending, active or retiring.
    pub state: KeyState,
    /// When it starts (or started) to sign.
    pub activates_at: Timestamp,
}

/// An immutable snapshot of a key ring at one moment. Cheap to share
/// (`Arc<KeyRingView>`) and read from every worker.
#[derive(Debug, Clone)]
pub struct KeyRingView {
    tenant: String,
    computed_at: Timestamp,
    valid_until: Option<Timestamp>,
    next_activation: Option<Timestamp>,
    active: Vec<ActiveKey>,
    published: Vec<PublishedKey>,
    jwks: Bytes,
    etag: String,
}

impl KeyRingView {
    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The key that signs `algorithm` now.
    ///
    /// # Errors
    /// [`Error::NoActiveKey`] if the tenant has no active key of it.
    pub fn active(&self, algorithm: Algorithm) -> Result<&ActiveKey, Error> {
        self.active
            .iter()
            .find(|a| a.key.algorithm() == algorithm)
            .ok_or(Error::NoActiveKey { algorithm })
    }

    /// Every active key (one per algorithm at most).
    pub fn active_keys(&self) -> &[ActiveKey] {
        &self.active
    }

    /// The keys in JWKS and metadata.
    pub fn published(&self) -> &[PublishedKey] {
        &self.published
    }

    /// The JWKS document, rendered once for this view.
    pub fn jwks(&self) -> &Bytes {
        &self.jwks
    }

    /// A strong ETag of the JWKS bytes (quoted).
    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// The moment the view was computed for.
    pub fn computed_at(&self) -> Timestamp {
        self.computed_at
    }

    /// When some key changes state; the view must be recomputed by then.
    /// `None`: nothing is scheduled.
    pub fn valid_until(&self) -> Option<Timestamp> {
        self.valid_until
    }

    /// Whether the view still describes the ring at `now`.
    pub fn is_current(&self, now: Timestamp) -> bool {
        self.valid_until.is_none_or(|t| now < t)
    }

    /// When the next pending key starts to sign. Caches of JWKS and metadata
    /// must not reach past it.
    pub fn next_activation(&self) -> Option<Timestamp> {
        self.next_activation
    }
}
