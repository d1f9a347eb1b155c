//! Credentials Sigil verifies itself (issue 18): password hashes with the
//! consecutive-failure counter and lockout, TOTP factors (secrets wrapped
//! under the master key by the caller: this crate only stores bytes), the
//! single-use MFA states, and each tenant's settings. Every counter that
//! must hold across nodes changes in one atomic statement here, never by
//! read-modify-write in a node.
//!
//! Who calls it: `frontdoor`'s authentication operations.

use std::time::SystemTime;

use crate::db::{millis, time_of, TenantScope};
use crate::Error;

/// A tenant's password hashing and lockout settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthSettings {
    /// argon2id memory cost, KiB (default 19456: OWASP's recommendation).
    pub argon2_m_kib: u32,
    /// argon2id iterations (default 2).
    pub argon2_t: u32,
    /// argon2id parallelism (default 1).
    pub argon2_p: u32,
    /// Consecutive failures that lock a user (default 10).
    pub lockout_threshold: u32,
    /// How long a lockout lasts, seconds (default 900).
    pub lockout_s: u32,
}

impl Default for AuthSettings {
    fn default() -> AuthSettings {
        AuthSettings {
            argon2_m_kib: 19_456,
            argon2_t: 2,
            argon2_p: 1,
            lockout_threshold: 10,
            lockout_s: 900,
        }
    }
}

/// A user's password credential as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// PHC string (`$argon2id$...`) or bcrypt (`$2b$...`).
    pub password_hash: String,
    /// Consecutive failures since the last success.
    pub failures: u32,
    /// Locked until then (unix ms), if locked.
    pub locked_until_ms: Option<u64>,
}

/// What one more failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Consecutive failures now.
    pub failures: u32,
    /// Whether this failure locked the user (it reached the threshold).
    pub locked_now: bool,
}

/// A user's factor as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Factor {
    /// `totp`.
    pub kind: String,
    /// The secret, wrapped under the master key.
    pub wrapped_secret: Vec<u8>,
    /// Whether it was activated (a first code proved).
    pub active: bool,
    /// The newest time step accepted.
    pub last_step: i64,
}

/// A pending MFA state, taken (single use) by [`TenantScope::take_auth_state`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthState {
    /// The user's stable id.
    pub user_id: String,
    /// `mfa` or `enroll`.
    pub purpose: String,
    /// What was proven so far.
    pub amr: Vec<String>,
    /// The client description given to `authenticate`.
    pub client: Option<String>,
    /// When it expires, unix ms.
    pub expires_ms: u64,
    /// The session's absolute lifetime the sign-on policy set, seconds
    /// (none: the tenant's).
    pub session_absolute_s: Option<u32>,
    /// The session's idle timeout the sign-on policy set, seconds.
    pub session_idle_s: Option<u32>,
}

fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

fn signed(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

impl TenantScope<'_> {
    /// The tenant's settings (the defaults when it set none).
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn auth_settings(&self) -> Result<AuthSettings, Error> {
        let row = self
            .client()
            .query_opt(
                "SELECT argon2_m_kib, argon2_t, argon2_p, lockout_threshold, lockout_s FROM auth_settings",
                &[],
            )
            .await?;
        Ok(match row {
            None => AuthSettings::default(),
            Some(r) => AuthSettings {
                argon2_m_kib: count(r.try_get(0)?),
                argon2_t: count(r.try_get(1)?),
                argon2_p: count(r.try_get(2)?),
                lockout_threshold: count(r.try_get(3)?),
                lockout_s: count(r.try_get(4)?),
            },
        })
    }

    /// Sets the tenant's settings.
    ///
    /// # Errors
    /// [`Error::Postgres`] (e.g. a value out of its range).
    pub async fn set_auth_settings(&self, settings: &AuthSettings) -> Result<(), Error> {
        self.client()
            .execute(
                "INSERT INTO auth_settings (tenant_id, argon2_m_kib, argon2_t, argon2_p, lockout_threshold, lockout_s)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (tenant_id) DO UPDATE SET argon2_m_kib = $2, argon2_t = $3, argon2_p = $4,
                   lockout_threshold = $5, lockout_s = $6",
                &[
                    &self.tenant_id(),
                    &signed(settings.argon2_m_kib),
                    &signed(settings.argon2_t),
                    &signed(settings.argon2_p),
                    &signed(settings.lockout_threshold),
                    &signed(settings.lockout_s),
                ],
            )
            .await?;
        Ok(())
    }

    /// The password credential of user `user_id`, if it has one.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn credential(&self, user_id: &str) -> Result<Option<Credential>, Error> {
        let row = self
            .client()
            .query_opt(
                "SELECT password_hash, failures, locked_until FROM credentials WHERE user_id = $1",
                &[&user_id],
            )
            .await?;
        row.map(|r| {
            let locked: Option<SystemTime> = r.try_get(2)?;
            Ok(Credential {
                password_hash: r.try_get(0)?,
                failures: count(r.try_get(1)?),
                locked_until_ms: locked.map(millis),
            })
        })
        .transpose()
    }

    /// Stores `hash` as the password of `user_id` (new, changed by its
    /// user or an admin, imported, or upgraded); with `reset`, the failure
    /// counter and any lockout are cleared too.
    ///
    /// # Errors
    /// [`Error::Postgres`] (e.g. no such user, or not a supported hash).
    pub async fn set_password_hash(
        &self,
        user_id: &str,
        hash: &str,
        reset: bool,
    ) -> Result<(), Error> {
        self.client()
            .execute(
                "INSERT INTO credentials (tenant_id, user_id, password_hash) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant_id, user_id) DO UPDATE SET password_hash = $3, changed_at = now(),
                   failures = CASE WHEN $4 THEN 0 ELSE credentials.failures END,
                   locked_until = CASE WHEN $4 THEN NULL ELSE credentials.locked_until END",
                &[&self.tenant_id(), &user_id, &hash, &reset],
            )
            .await?;
        Ok(())
    }

    /// Replaces the hash of `user_id` only if it is still `old` (an upgrade
    /// racing a password change loses). Returns whether it replaced it.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn upgrade_password_hash(
        &self,
        user_id: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, Error> {
        let n = self
            .client()
            .execute(
                "UPDATE credentials SET password_hash = $3 WHERE user_id = $1 AND password_hash = $2",
                &[&user_id, &old, &new],
            )
            .await?;
        Ok(n > 0)
    }

    /// One more consecutive failure of `user_id`, in one atomic statement
    /// (every node counts into the same row): at `threshold` failures the
    /// user is locked until `now_ms + lock_ms`. `None` when the user has
    /// no password (an unknown user's `""` included: the same statement,
    /// touching no row).
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn record_failure(
        &self,
        user_id: &str,
        threshold: u32,
        now_ms: u64,
        lock_ms: u64,
    ) -> Result<Option<Failure>, Error> {
        let until = time_of(now_ms.saturating_add(lock_ms));
        // A lockout that has ended starts the count again.
        let row = self
            .client()
            .query_opt(
                "UPDATE credentials SET
                        failures = CASE WHEN locked_until <= $4 THEN 1 ELSE failures + 1 END,
                        locked_until = CASE
                          WHEN (CASE WHEN locked_until <= $4 THEN 1 ELSE failures + 1 END) >= $2 THEN $3
                          WHEN locked_until <= $4 THEN NULL
                          ELSE locked_until END
                  WHERE user_id = $1
                 RETURNING failures, failures >= $2 AND locked_until = $3",
                &[&user_id, &signed(threshold), &until, &time_of(now_ms)],
            )
            .await?;
        row.map(|r| {
            Ok(Failure {
                failures: count(r.try_get(0)?),
                locked_now: r.try_get::<_, Option<bool>>(1)?.unwrap_or(false),
            })
        })
        .transpose()
    }

    /// A success: the failure counter back to 0, no lockout.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn record_success(&self, user_id: &str) -> Result<(), Error> {
        self.client()
            .execute(
                "UPDATE credentials SET failures = 0, locked_until = NULL
                  WHERE user_id = $1 AND (failures <> 0 OR locked_until IS NOT NULL)",
                &[&user_id],
            )
            .await?;
        Ok(())
    }

    /// Ends a lockout (`sigil admin user unlock`); false when the user has
    /// no password credential.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn unlock(&self, user_id: &str) -> Result<bool, Error> {
        let n = self
            .client()
            .execute(
                "UPDATE credentials SET failures = 0, locked_until = NULL WHERE user_id = $1",
                &[&user_id],
            )
            .await?;
        Ok(n > 0)
    }

    /// The factors of `user_id` (pending and active).
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn factors(&self, user_id: &str) -> Result<Vec<Factor>, Error> {
        let rows = self
            .client()
            .query(
                "SELECT kind, secret, active, last_step FROM user_factors WHERE user_id = $1 ORDER BY kind",
                &[&user_id],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Factor {
                    kind: r.try_get(0)?,
                    wrapped_secret: r.try_get(1)?,
                    active: r.try_get(2)?,
                    last_step: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Stores a new pending factor of `kind` for `user_id`, replacing a
    /// pending one; `Err(Conflict)` when an active one exists.
    ///
    /// # Errors
    /// [`Error::Conflict`], [`Error::Postgres`].
    pub async fn enroll_factor(
        &self,
        user_id: &str,
        kind: &str,
        wrapped_secret: &[u8],
    ) -> Result<(), Error> {
        let n = self
            .client()
            .execute(
                "INSERT INTO user_factors (tenant_id, user_id, kind, secret) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant_id, user_id, kind) DO UPDATE SET secret = $4, last_step = 0, created_at = now()
                   WHERE NOT user_factors.active",
                &[&self.tenant_id(), &user_id, &kind, &wrapped_secret],
            )
            .await?;
        if n == 0 {
            return Err(Error::Conflict(format!(
                "the user has an active {kind} factor"
            )));
        }
        Ok(())
    }

    /// Accepts time step `step` for the factor `kind` of `user_id` (and, with
    /// `activate`, makes it active) only if no step at or after it was
    /// accepted before, on any node: one atomic statement. Returns whether
    /// it was accepted (false: a replayed or older code).
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn accept_step(
        &self,
        user_id: &str,
        kind: &str,
        step: i64,
        activate: bool,
    ) -> Result<bool, Error> {
        let n = self
            .client()
            .execute(
                "UPDATE user_factors SET last_step = $3, active = active OR $4
                  WHERE user_id = $1 AND kind = $2 AND last_step < $3 AND (active OR $4)",
                &[&user_id, &kind, &step, &activate],
            )
            .await?;
        Ok(n > 0)
    }

    /// Stores an MFA state by its SHA-256.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn add_auth_state(
        &self,
        state_hash: &[u8; 32],
        state: &AuthState,
    ) -> Result<(), Error> {
        self.client()
            .execute(
                "INSERT INTO auth_states (tenant_id, state_hash, user_id, purpose, amr, client, expires_at,
                                          session_absolute_s, session_idle_s)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &self.tenant_id(),
                    &state_hash.as_slice(),
                    &state.user_id,
                    &state.purpose,
                    &state.amr,
                    &state.client,
                    &time_of(state.expires_ms),
                    &state.session_absolute_s.map(signed),
                    &state.session_idle_s.map(signed),
                ],
            )
            .await?;
        Ok(())
    }

    /// Takes the MFA state with SHA-256 `state_hash` (single use: it is
    /// gone afterwards, on every node), if it exists and has not expired
    /// at `now_ms`; expired states of the tenant are removed on the way.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn take_auth_state(
        &self,
        state_hash: &[u8; 32],
        now_ms: u64,
    ) -> Result<Option<AuthState>, Error> {
        let now = time_of(now_ms);
        self.client()
            .execute("DELETE FROM auth_states WHERE expires_at <= $1", &[&now])
            .await?;
        let row = self
            .client()
            .query_opt(
                "DELETE FROM auth_states WHERE state_hash = $1 AND expires_at > $2
                 RETURNING user_id, purpose, amr, client, expires_at, session_absolute_s, session_idle_s",
                &[&state_hash.as_slice(), &now],
            )
            .await?;
        row.map(|r| {
            let expires: SystemTime = r.try_get(4)?;
            Ok(AuthState {
                user_id: r.try_get(0)?,
                purpose: r.try_get(1)?,
                amr: r.try_get(2)?,
                client: r.try_get(3)?,
                expires_ms: millis(expires),
                session_absolute_s: r.try_get::<_, Option<i32>>(5)?.map(count),
                session_idle_s: r.try_get::<_, Option<i32>>(6)?.map(count),
            })
        })
        .transpose()
    }
}
