//! The fence of session-replication membership changes (table
//! `cluster_membership`): one change per epoch in the whole cluster, and
//! the next only once the last returned. See docs/sessions.md,
//! "Membership".

use std::collections::BTreeMap;

use crate::{Directory, Error};

/// The newest membership epoch taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipFence {
    /// Epoch (at least 1; no row means epoch 0, the start-up membership).
    pub epoch: u64,
    /// Members: name → replication address.
    pub members: BTreeMap<String, String>,
    /// Whether the change that took the epoch returned.
    pub committed: bool,
}

fn epoch_sql(epoch: u64) -> Result<i64, Error> {
    i64::try_from(epoch).map_err(|_| Error::Invalid("epoch out of range".into()))
}

impl Directory {
    /// The newest membership epoch taken, if any change was ever made.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn membership_fence(&self) -> Result<Option<MembershipFence>, Error> {
        let guard = self.pooled().await?;
        let row = guard
            .client
            .query_opt(
                "SELECT epoch, members, committed FROM cluster_membership",
                &[],
            )
            .await?;
        row.map(|row| {
            let members: serde_json::Value = row.try_get(1)?;
            Ok(MembershipFence {
                epoch: u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0),
                members: serde_json::from_value(members)
                    .map_err(|e| Error::Invalid(format!("cluster_membership.members: {e}")))?,
                committed: row.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Takes epoch `next.epoch` for `next.members` if the newest epoch is
    /// `next.epoch - 1` and committed (or, for epoch 1, if none was ever
    /// taken). Returns whether it was taken; false means another change
    /// got there first.
    ///
    /// # Errors
    /// [`Error::Invalid`] for epoch 0; [`Error::Postgres`].
    pub async fn take_membership_epoch(&self, next: &MembershipFence) -> Result<bool, Error> {
        if next.epoch == 0 {
            return Err(Error::Invalid("epoch 0 is the start-up membership".into()));
        }
        let members =
            serde_json::to_value(&next.members).map_err(|e| Error::Invalid(e.to_string()))?;
        let epoch = epoch_sql(next.epoch)?;
        let guard = self.pooled().await?;
        let taken = if next.epoch == 1 {
            guard
                .client
                .execute(
                    "INSERT INTO cluster_membership (epoch, members, committed) VALUES ($1, $2, false) ON CONFLICT DO NOTHING",
                    &[&epoch, &members],
                )
                .await?
        } else {
            guard
                .client
                .execute(
                    "UPDATE cluster_membership SET epoch = $1, members = $2, committed = false, changed_at = now() WHERE epoch = $3 AND committed",
                    &[&epoch, &members, &(epoch - 1)],
                )
                .await?
        };
        Ok(taken == 1)
    }

    /// Records that the change which took `epoch` returned.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn commit_membership_epoch(&self, epoch: u64) -> Result<(), Error> {
        let epoch = epoch_sql(epoch)?;
        let guard = self.pooled().await?;
        guard
            .client
            .execute(
                "UPDATE cluster_membership SET committed = true WHERE epoch = $1",
                &[&epoch],
            )
            .await?;
        Ok(())
    }
}
