//! Reading many records at once: the full state a joining peer pulls, and
//! the records changed since a time that a peer which lost some deltas is
//! sent again.

use std::sync::Arc;

use super::{read, Mark, SessionRecord, SessionTable};

impl SessionTable {
    /// Every record and mark (the full state a joining peer pulls).
    pub fn snapshot(&self) -> (Vec<SessionRecord>, Vec<Mark>) {
        let mut records = Vec::new();
        let mut marks = Vec::new();
        for (i, shard) in self.shards.iter().enumerate() {
            let shard = read(shard);
            records.extend(
                shard
                    .sessions
                    .iter()
                    .map(|(id, entry)| shard.full_record(*id, entry)),
            );
            if i == 0 {
                for (tenant, tenant_marks) in &shard.marks {
                    if tenant_marks.tenant.before > 0 {
                        marks.push(Mark {
                            tenant: Arc::clone(tenant),
                            user: None,
                            before_ms: tenant_marks.tenant.before,
                            keep_until_ms: tenant_marks.tenant.keep_until,
                        });
                    }
                    marks.extend(tenant_marks.users.iter().map(|(user, times)| Mark {
                        tenant: Arc::clone(tenant),
                        user: Some(Arc::clone(user)),
                        before_ms: times.before,
                        keep_until_ms: times.keep_until,
                    }));
                }
            }
        }
        (records, marks)
    }

    /// The records (sessions and tombstones) whose last activity is at or
    /// after `since_ms`: what a peer that lost deltas from then on lacks.
    pub fn changed_since(&self, since_ms: u64) -> Vec<SessionRecord> {
        let mut records = Vec::new();
        for shard in self.shards.iter() {
            let shard = read(shard);
            records.extend(
                shard
                    .sessions
                    .iter()
                    .filter(|(id, entry)| {
                        entry
                            .last_seen_ms
                            .load(std::sync::atomic::Ordering::Acquire)
                            >= since_ms
                            || shard.apps_changed_since(id, since_ms)
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
    use crate::table::{SessionId, SessionPolicy};

    #[test]
    fn changed_since_holds_the_records_active_at_or_after_the_time() {
        let table = SessionTable::new(4);
        let tenant: Arc<str> = Arc::from("acme");
        let policy = SessionPolicy {
            absolute_ms: 3_600_000,
            idle_ms: 600_000,
        };
        let old = table.create_with_id(
            SessionId::from_bytes([1; 32]),
            &tenant,
            "alice",
            vec!["pwd".into()],
            None,
            policy,
            1_000,
        );
        let new = table.create_with_id(
            SessionId::from_bytes([2; 32]),
            &tenant,
            "bob",
            vec!["pwd".into()],
            None,
            policy,
            5_000,
        );
        let ids = |records: Vec<SessionRecord>| {
            let mut ids: Vec<SessionId> = records.iter().map(|r| r.id).collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(table.changed_since(5_000)), vec![new.id]);
        assert_eq!(ids(table.changed_since(0)), vec![old.id, new.id]);
        assert!(table.changed_since(5_001).is_empty());
        // A touch makes an old session changed again.
        table.touch(&tenant, &old.id, 6_000);
        assert_eq!(ids(table.changed_since(5_500)), vec![old.id]);
        assert_eq!(table.snapshot().0.len(), 2);
    }
}
