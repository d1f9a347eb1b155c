//! Refresh tokens (issue 19): the rows of `refresh_tokens`
//! (migrations/0006_refresh_tokens.sql), by the SHA-256 of the token.
//! Only hashes are kept; the token itself is shown once, to the caller
//! that got it.
//!
//! A rotation is one transaction (after [`TenantScope::read_refresh_token`]
//! said the token is live and the new token was issued):
//! [`TenantScope::take_refresh_token`]
//! retires the presented token (`UPDATE ... WHERE retired_at IS NULL
//! RETURNING`, so that of two nodes racing with the same token one
//! rotates it and the other sees it retired), then
//! [`TenantScope::add_refresh_token`] adds its successor in the same
//! family, then the caller commits.

use tokio_postgres::Row;

use crate::db::{millis, time_of, TenantScope};
use crate::Error;

/// A refresh token to store.
#[derive(Debug, Clone)]
pub struct NewRefreshToken<'a> {
    /// SHA-256 of the token.
    pub hash: [u8; 32],
    /// Its family: the same for every token of one chain of rotations.
    pub family: [u8; 16],
    /// The app it was issued to.
    pub app: &'a str,
    /// The user's stable id.
    pub user_id: &'a str,
    /// The user's login when it was issued.
    pub login: &'a str,
    /// The session it is bound to.
    pub session: &'a str,
    /// `id_token` or `access_token`: what a refresh answers.
    pub kind: &'a str,
    /// The scopes granted when the family began (access tokens).
    pub scope: &'a [String],
    /// Absolute expiry of the family, ms since the epoch.
    pub absolute_expires_ms: u64,
    /// Idle expiry of this token, ms since the epoch.
    pub idle_expires_ms: u64,
}

/// What a stored refresh token is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshGrant {
    /// Its family.
    pub family: Vec<u8>,
    /// The app it was issued to.
    pub app: String,
    /// The user's stable id.
    pub user_id: String,
    /// The user's login when it was issued.
    pub login: String,
    /// The session it is bound to.
    pub session: String,
    /// `id_token` or `access_token`.
    pub kind: String,
    /// The scopes granted when the family began.
    pub scope: Vec<String>,
    /// Absolute expiry of the family, ms since the epoch.
    pub absolute_expires_ms: u64,
    /// Idle expiry of the token, ms since the epoch.
    pub idle_expires_ms: u64,
}

/// What a presented refresh token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// No such token in this tenant.
    Unknown,
    /// It is live ([`TenantScope::read_refresh_token`]); or it was, and
    /// is now retired in this transaction
    /// ([`TenantScope::take_refresh_token`]): commit with its successor
    /// added, or drop the scope to leave it live.
    Live(RefreshGrant),
    /// It was retired before and its family is not revoked yet: presented
    /// again, it is theft.
    Retired(RefreshGrant),
    /// Its family was revoked (theft seen before, or the session or user
    /// ended).
    Revoked(RefreshGrant),
}

const COLUMNS: &str =
    "family_id, app, user_id, login, session_id, kind, scope, absolute_expires_at, idle_expires_at";

fn grant(row: &Row) -> Result<RefreshGrant, Error> {
    Ok(RefreshGrant {
        family: row.try_get(0)?,
        app: row.try_get(1)?,
        user_id: row.try_get(2)?,
        login: row.try_get(3)?,
        session: row.try_get(4)?,
        kind: row.try_get(5)?,
        scope: row.try_get(6)?,
        absolute_expires_ms: millis(row.try_get(7)?),
        idle_expires_ms: millis(row.try_get(8)?),
    })
}

impl TenantScope<'_> {
    /// Stores a new refresh token.
    ///
    /// # Errors
    /// [`Error::Postgres`] (e.g. a hash that exists).
    pub async fn add_refresh_token(&self, new: &NewRefreshToken<'_>) -> Result<(), Error> {
        let statement = self
            .prepared(
                "INSERT INTO refresh_tokens (tenant_id, token_hash, family_id, app, user_id, login, session_id, kind, scope, absolute_expires_at, idle_expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .await?;
        self.client()
            .execute(
                &statement,
                &[
                    &self.tenant_id(),
                    &new.hash.as_slice(),
                    &new.family.as_slice(),
                    &new.app,
                    &new.user_id,
                    &new.login,
                    &new.session,
                    &new.kind,
                    &new.scope,
                    &time_of(new.absolute_expires_ms),
                    &time_of(new.idle_expires_ms),
                ],
            )
            .await?;
        Ok(())
    }

    /// Retires the live token with SHA-256 `hash` in this transaction and
    /// returns what it was bound to; or says why it is not live.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn take_refresh_token(&self, hash: &[u8; 32]) -> Result<Presented, Error> {
        let retire = self
            .prepared(&format!(
                "UPDATE refresh_tokens SET retired_at = now()
                  WHERE token_hash = $1 AND retired_at IS NULL AND revoked_at IS NULL
              RETURNING {COLUMNS}"
            ))
            .await?;
        if let Some(row) = self
            .client()
            .query_opt(&retire, &[&hash.as_slice()])
            .await?
        {
            return Ok(Presented::Live(grant(&row)?));
        }
        self.read_refresh_token(hash).await
    }

    /// What the token with SHA-256 `hash` is, without changing it.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn read_refresh_token(&self, hash: &[u8; 32]) -> Result<Presented, Error> {
        let read = self
            .prepared(&format!(
                "SELECT {COLUMNS}, retired_at IS NOT NULL, revoked_at IS NOT NULL
                   FROM refresh_tokens WHERE token_hash = $1"
            ))
            .await?;
        let Some(row) = self.client().query_opt(&read, &[&hash.as_slice()]).await? else {
            return Ok(Presented::Unknown);
        };
        let (retired, revoked): (bool, bool) = (row.try_get(9)?, row.try_get(10)?);
        let grant = grant(&row)?;
        Ok(match (retired, revoked) {
            (_, true) => Presented::Revoked(grant),
            (true, false) => Presented::Retired(grant),
            (false, false) => Presented::Live(grant),
        })
    }

    /// Revokes every token of `family`; returns how many were live.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn revoke_refresh_family(&self, family: &[u8]) -> Result<u64, Error> {
        Ok(self
            .client()
            .execute(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
                &[&family],
            )
            .await?)
    }

    /// Revokes every refresh token bound to `session`.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn revoke_refresh_of_session(&self, session: &str) -> Result<u64, Error> {
        Ok(self
            .client()
            .execute(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE session_id = $1 AND revoked_at IS NULL",
                &[&session],
            )
            .await?)
    }

    /// Revokes every refresh token of the user with stable id `user_id`.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn revoke_refresh_of_user(&self, user_id: &str) -> Result<u64, Error> {
        Ok(self
            .client()
            .execute(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
                &[&user_id],
            )
            .await?)
    }
}
