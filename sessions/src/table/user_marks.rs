//! Reading a user's revocation mark: a node's cached copy of a user read
//! before the mark may predate that user's deactivation on another node.

use super::{read, SessionTable};

impl SessionTable {
    /// Until when (ms since the epoch) the sessions of `user` of `tenant`
    /// are revoked by a mark of that user; 0 when there is none.
    pub fn user_mark_ms(&self, tenant: &str, user: &str) -> u64 {
        // Every shard holds the same marks.
        self.shards.first().map_or(0, |shard| {
            read(shard)
                .marks
                .get(tenant)
                .and_then(|marks| marks.users.get(user))
                .map_or(0, |times| times.before)
        })
    }
}
