//! Creating sessions: a sign-in Sigil proved (`authenticate`) or one a
//! trusted front end asserted (`session_create`, issue 18). Both make the
//! same record; an asserted one says so.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use aws_lc_rs::rand::SecureRandom;

use super::{SessionId, SessionPolicy, SessionRecord, SessionTable};
use crate::Error;

impl SessionTable {
    /// Creates a session and returns its record (to replicate).
    ///
    /// # Errors
    /// [`Error::Random`] if no id could be drawn.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &self,
        tenant: &Arc<str>,
        user: &str,
        amr: Vec<String>,
        client: Option<String>,
        policy: SessionPolicy,
        now_ms: u64,
        rng: &dyn SecureRandom,
    ) -> Result<SessionRecord, Error> {
        self.create_as(false, tenant, user, amr, client, policy, now_ms, rng)
    }

    /// [`SessionTable::create`] saying whether the sign-in was one a
    /// trusted front end `asserted` (`session_create`) rather than one
    /// Sigil proved: the record says so ([`SessionRecord::asserted`]).
    ///
    /// # Errors
    /// [`Error::Random`] if no id could be drawn.
    #[allow(clippy::too_many_arguments)]
    pub fn create_as(
        &self,
        asserted: bool,
        tenant: &Arc<str>,
        user: &str,
        amr: Vec<String>,
        client: Option<String>,
        policy: SessionPolicy,
        now_ms: u64,
        rng: &dyn SecureRandom,
    ) -> Result<SessionRecord, Error> {
        let mut record = Self::new_record(
            SessionId::generate(rng)?,
            tenant,
            user,
            amr,
            client,
            policy,
            now_ms,
        );
        record.asserted = asserted;
        Ok(self.insert_new(record))
    }

    /// [`SessionTable::create`] with a given id (simulations and tests).
    #[allow(clippy::too_many_arguments)]
    pub fn create_with_id(
        &self,
        id: SessionId,
        tenant: &Arc<str>,
        user: &str,
        amr: Vec<String>,
        client: Option<String>,
        policy: SessionPolicy,
        now_ms: u64,
    ) -> SessionRecord {
        let record = Self::new_record(id, tenant, user, amr, client, policy, now_ms);
        self.insert_new(record)
    }

    #[allow(clippy::too_many_arguments)]
    fn new_record(
        id: SessionId,
        tenant: &Arc<str>,
        user: &str,
        amr: Vec<String>,
        client: Option<String>,
        policy: SessionPolicy,
        now_ms: u64,
    ) -> SessionRecord {
        SessionRecord {
            tenant: Arc::clone(tenant),
            id,
            user: Arc::from(user),
            auth_time_ms: now_ms,
            amr,
            client,
            created_ms: now_ms,
            last_seen_ms: now_ms,
            expires_ms: now_ms.saturating_add(policy.absolute_ms),
            idle_ms: policy.idle_ms,
            revoked: false,
            apps: Vec::new(),
            asserted: false,
        }
    }

    fn insert_new(&self, record: SessionRecord) -> SessionRecord {
        self.merge(&record);
        self.stats.created.fetch_add(1, Ordering::Relaxed);
        record
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::table::Validation;
    use aws_lc_rs::rand::SystemRandom;

    fn valid(table: &SessionTable, record: &SessionRecord) -> bool {
        match table.validate("acme", &record.id, 1_000) {
            Validation::Valid(view) => view.asserted(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_asserted_session_says_so_on_every_node_and_a_proven_one_does_not() {
        let (here, peer) = (SessionTable::new(4), SessionTable::new(4));
        let tenant: Arc<str> = Arc::from("acme");
        let rng = SystemRandom::new();
        let policy = SessionPolicy::default();
        let asserted = here
            .create_as(
                true,
                &tenant,
                "alice",
                vec!["fed".into()],
                None,
                policy,
                1_000,
                &rng,
            )
            .unwrap();
        let proven = here
            .create(
                &tenant,
                "alice",
                vec!["pwd".into()],
                None,
                policy,
                1_000,
                &rng,
            )
            .unwrap();
        assert!(asserted.asserted && !proven.asserted);
        assert!(valid(&here, &asserted) && !valid(&here, &proven));
        // Replicated as peers exchange records (CBOR), and kept on merge.
        for record in [&asserted, &proven] {
            let mut bytes = Vec::new();
            ciborium::into_writer(record, &mut bytes).unwrap();
            let received: SessionRecord = ciborium::from_reader(bytes.as_slice()).unwrap();
            assert_eq!(&received, record);
            peer.merge(&received);
            assert_eq!(here.record(&record.id), peer.record(&record.id));
        }
        assert!(valid(&peer, &asserted) && !valid(&peer, &proven));
        // A proven record is encoded as before the field (a peer that
        // predates it reads it unchanged); an asserted one only adds it.
        let keys = |record: &SessionRecord| {
            let mut bytes = Vec::new();
            ciborium::into_writer(record, &mut bytes).unwrap();
            let value: ciborium::Value = ciborium::from_reader(bytes.as_slice()).unwrap();
            value
                .as_map()
                .unwrap()
                .iter()
                .filter_map(|(k, _)| k.as_text().map(str::to_owned))
                .collect::<Vec<_>>()
        };
        assert!(!keys(&proven).contains(&"asserted".to_owned()));
        assert!(keys(&asserted).contains(&"asserted".to_owned()));
    }
}
