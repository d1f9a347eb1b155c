//! Which OIDC apps received a token in a session (issue 19, back-channel
//! logout): when the session ends, each of them is told.
//!
//! Why a grow-only set in the session record rather than a query of the
//! audit trail: tokens of one session may be issued on node-2 and the
//! session revoked on node-1, and the audit records are made durable per
//! node (each node's own journal, shipped to Postgres in batches), with no
//! order between nodes that a revoke could wait on. The session record is
//! already replicated between every node as a state-based CRDT; a set of
//! app names merged by union is one more CRDT field (commutative,
//! associative, idempotent), so replicas converge on it like they do on
//! last-seen, whatever the order or duplication of deltas. It lives beside
//! the hot entries (a validation's slot stays 64 bytes), is written only
//! the first time an app gets a token in a session (a read-locked lookup
//! answers every later issuance, no write, no delta), and a delta dropped
//! under back-pressure is sent again with the records changed since
//! ([`SessionTable::changed_since`] looks at when the set last grew).
//!
//! A session holds at most [`MAX_APPS`] apps; issuing for more is allowed
//! but those are not recorded (the store's codec counts them in a byte).

use std::sync::Arc;

use super::{read, write, Entry, SessionId, SessionRecord, SessionTable, Shard};

/// The most apps one session remembers.
pub const MAX_APPS: usize = 255;

/// A session's apps: sorted, without duplicates.
#[derive(Debug, Default, Clone)]
pub(super) struct AppSet {
    names: Vec<Arc<str>>,
    /// When the set last grew here by a local issuance (0 when only
    /// merged from peers): a dropped delta is sent again from it.
    changed_ms: u64,
}

impl AppSet {
    /// Adds `name`; returns whether the set grew.
    fn insert(&mut self, name: &Arc<str>) -> bool {
        match self.names.binary_search(name) {
            Ok(_) => false,
            Err(_) if self.names.len() >= MAX_APPS => false,
            Err(at) => {
                self.names.insert(at, Arc::clone(name));
                true
            }
        }
    }
}

impl Shard {
    /// Unions the apps of `record` into the set of its session; returns
    /// whether it grew.
    pub(super) fn merge_apps(&mut self, record: &SessionRecord) -> bool {
        if record.apps.is_empty() {
            return false;
        }
        let set = self.apps.entry(record.id).or_default();
        let mut grew = false;
        for name in &record.apps {
            grew |= set.insert(name);
        }
        grew
    }

    /// `entry`'s record with its apps.
    pub(super) fn full_record(&self, id: SessionId, entry: &Entry) -> SessionRecord {
        let mut record = entry.record(id);
        if let Some(set) = self.apps.get(&id) {
            record.apps.clone_from(&set.names);
        }
        record
    }

    /// Whether the apps of `id` grew here at or after `since_ms`.
    pub(super) fn apps_changed_since(&self, id: &SessionId, since_ms: u64) -> bool {
        self.apps
            .get(id)
            .is_some_and(|set| set.changed_ms >= since_ms)
    }
}

impl SessionTable {
    /// Whether `app` is already in the apps of session `id` (one read-locked
    /// lookup: what every issuance after the first for the app costs).
    pub fn has_app(&self, id: &SessionId, app: &str) -> bool {
        read(self.shard(id))
            .apps
            .get(id)
            .is_some_and(|set| set.names.binary_search_by(|n| (**n).cmp(app)).is_ok())
    }

    /// Records that `app` received a token in session `id` of `tenant` at
    /// `now_ms`. Returns the session's record when the set grew (to
    /// replicate), `None` when the app was there already, the session is
    /// unknown or another tenant's, or the set is full.
    pub fn add_app(
        &self,
        tenant: &str,
        id: &SessionId,
        app: &str,
        now_ms: u64,
    ) -> Option<SessionRecord> {
        let mut guard = write(self.shard(id));
        let shard = &mut *guard;
        let entry = shard.sessions.get(id)?;
        if *entry.tenant != *tenant || entry.is_tombstone() {
            return None;
        }
        let set = shard.apps.entry(*id).or_default();
        if !set.insert(&Arc::from(app)) {
            return None;
        }
        set.changed_ms = set.changed_ms.max(now_ms);
        Some(shard.full_record(*id, entry))
    }

    /// The apps that received a token in session `id` (empty if unknown).
    pub fn apps(&self, id: &SessionId) -> Vec<Arc<str>> {
        read(self.shard(id))
            .apps
            .get(id)
            .map(|set| set.names.clone())
            .unwrap_or_default()
    }

    /// The records (with their apps) of `tenant`'s sessions of `user` (or of
    /// every user when `None`) created at or before `before_ms`: the
    /// sessions a revocation mark ends. A scan of every shard, for the
    /// rare revocations, never for a validation.
    pub fn sessions_of(
        &self,
        tenant: &str,
        user: Option<&str>,
        before_ms: u64,
    ) -> Vec<SessionRecord> {
        let mut records = Vec::new();
        for shard in self.shards.iter() {
            let shard = read(shard);
            records.extend(
                shard
                    .sessions
                    .iter()
                    .filter(|(_, entry)| {
                        *entry.tenant == *tenant
                            && !entry.is_tombstone()
                            && entry.created_ms <= before_ms
                            && user.is_none_or(|user| *entry.principal.user == *user)
                    })
                    .map(|(id, entry)| shard.full_record(*id, entry)),
            );
        }
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::SessionPolicy;

    fn table_with(id: u8, user: &str, now: u64) -> (SessionTable, SessionRecord) {
        let table = SessionTable::new(4);
        let record = table.create_with_id(
            SessionId::from_bytes([id; 32]),
            &Arc::from("acme"),
            user,
            vec!["pwd".into()],
            None,
            SessionPolicy::default(),
            now,
        );
        (table, record)
    }

    #[test]
    fn an_app_is_added_once_and_only_to_its_own_tenant() {
        let (table, session) = table_with(1, "alice", 1_000);
        assert!(!table.has_app(&session.id, "web"));
        let grown = table.add_app("acme", &session.id, "web", 2_000);
        assert_eq!(grown.map(|r| r.apps), Some(vec![Arc::<str>::from("web")]));
        assert!(table.has_app(&session.id, "web"));
        assert_eq!(table.add_app("acme", &session.id, "web", 3_000), None);
        assert_eq!(table.add_app("globex", &session.id, "other", 3_000), None);
        assert_eq!(
            table.add_app("acme", &SessionId::from_bytes([9; 32]), "web", 3_000),
            None
        );
        assert_eq!(table.apps(&session.id), vec![Arc::<str>::from("web")]);
    }

    #[test]
    fn apps_merge_by_union_in_any_order() {
        let (a, session) = table_with(2, "alice", 1_000);
        let (b, _) = table_with(2, "alice", 1_000);
        let from_a = a.add_app("acme", &session.id, "web", 2_000);
        let from_b = b.add_app("acme", &session.id, "api", 2_000);
        let (from_a, from_b) = (from_a.expect("grew"), from_b.expect("grew"));
        assert!(a.merge(&from_b));
        assert!(b.merge(&from_a));
        assert!(!a.merge(&from_b), "merging twice changes nothing");
        let both: Vec<Arc<str>> = vec![Arc::from("api"), Arc::from("web")];
        assert_eq!(a.apps(&session.id), both);
        assert_eq!(b.apps(&session.id), both);
        assert_eq!(a.record(&session.id).map(|r| r.apps), Some(both));
    }

    #[test]
    fn a_grown_set_counts_as_changed_for_resending() {
        let (table, session) = table_with(3, "alice", 1_000);
        assert!(table.changed_since(5_000).is_empty());
        table.add_app("acme", &session.id, "web", 6_000);
        assert_eq!(table.changed_since(5_000).len(), 1);
    }

    #[test]
    fn sessions_of_a_user_are_found_up_to_the_mark() {
        let (table, alice) = table_with(4, "alice", 1_000);
        table.create_with_id(
            SessionId::from_bytes([5; 32]),
            &Arc::from("acme"),
            "bob",
            vec![],
            None,
            SessionPolicy::default(),
            1_000,
        );
        let ids = |records: Vec<SessionRecord>| records.iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(
            ids(table.sessions_of("acme", Some("alice"), 1_000)),
            vec![alice.id]
        );
        assert!(table.sessions_of("acme", Some("alice"), 999).is_empty());
        assert!(table.sessions_of("globex", Some("alice"), 1_000).is_empty());
        assert_eq!(table.sessions_of("acme", None, 1_000).len(), 2);
    }
}
