//! The session operations: `session_create`, `session_validate`,
//! `session_touch`, `session_revoke`, `user_revoke_sessions`, and
//! `user_deactivate` (which writes the directory, so it is the
//! appliance's). A revoke returns once no node accepts what it revoked.

use std::sync::Arc;

use directory::UserStatus;
use sessions::{Revoked, SessionPolicy, Validation};
use sigil_proto::request::MAX_AMR;
use sigil_proto::results::{Deactivated, Revoked as RevokedResult, SessionCreated, SessionInfo};
use sigil_proto::{ErrorCode, WireError};

use super::audit::AuditEvent;
use super::hot_path::{invalid, parse_session, HotPath};
use super::live::TenantLive;
use super::seams::{AuditSink, Clock, DirectoryReads};
use super::{internal, refuse, unavailable, Appliance};

/// The `amr` of a session a trusted front end asserted: `fed` first, then
/// what the caller claimed, in its order, each method once; at most
/// [`MAX_AMR`] in all.
///
/// # Errors
/// `bad_request` when the claim leaves no room for `fed`.
pub fn asserted_amr(claimed: Vec<String>) -> Result<Vec<String>, WireError> {
    let mut amr = vec![FEDERATED.to_owned()];
    for method in claimed {
        if !amr.contains(&method) {
            amr.push(method);
        }
    }
    if amr.len() > MAX_AMR {
        return Err(refuse(
            ErrorCode::BadRequest,
            format!(
                "amr: at most {} methods beside `{FEDERATED}`, which an asserted session carries first",
                MAX_AMR - 1
            ),
        ));
    }
    Ok(amr)
}

/// The `amr` value that marks a sign-in a front end asserted (federated or
/// delegated) rather than one Sigil verified.
pub const FEDERATED: &str = "fed";

impl<R: DirectoryReads, A: AuditSink, C: Clock> HotPath<R, A, C> {
    /// `session_create` (front ends registered with
    /// `--trusted-assertions`; `authorize` refuses the others): a session
    /// for the active user `login` whose sign-in the caller asserts, `amr`
    /// `["fed", ...claimed]`, marked asserted; answered once it is durable.
    ///
    /// # Errors
    /// The refusal, with its code.
    pub async fn session_assert(
        &self,
        live: &TenantLive,
        caller: &str,
        login: &str,
        claimed: Vec<String>,
        client: Option<String>,
    ) -> Result<SessionCreated, WireError> {
        let amr = asserted_amr(claimed)?;
        self.new_session(live, caller, login, amr, client, None, true)
            .await
    }

    /// A session for a sign-in Sigil proved (`authenticate`,
    /// `factor_verify`), `amr` as proven; answered once it is durable.
    ///
    /// # Errors
    /// The refusal, with its code.
    pub async fn session_create(
        &self,
        live: &TenantLive,
        caller: &str,
        login: &str,
        amr: Vec<String>,
        client: Option<String>,
    ) -> Result<SessionCreated, WireError> {
        self.session_create_within(live, caller, login, amr, client, None)
            .await
    }

    /// `session_create` with the lifetimes `within` (a sign-on policy
    /// rule's, issue 18) instead of the tenant's.
    ///
    /// # Errors
    /// The refusal, with its code.
    pub async fn session_create_within(
        &self,
        live: &TenantLive,
        caller: &str,
        login: &str,
        amr: Vec<String>,
        client: Option<String>,
        within: Option<SessionPolicy>,
    ) -> Result<SessionCreated, WireError> {
        self.new_session(live, caller, login, amr, client, within, false)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn new_session(
        &self,
        live: &TenantLive,
        caller: &str,
        login: &str,
        amr: Vec<String>,
        client: Option<String>,
        within: Option<SessionPolicy>,
        asserted: bool,
    ) -> Result<SessionCreated, WireError> {
        let user = self.user(live, login).await?;
        if !user.active {
            return Err(refuse(
                ErrorCode::UserInactive,
                format!("user {login} is not active"),
            ));
        }
        let policy = within.unwrap_or(SessionPolicy {
            absolute_ms: u64::from(live.tenant.session_absolute_s) * 1000,
            idle_ms: u64::from(live.tenant.session_idle_s) * 1000,
        });
        let table = self.replica.table();
        let now_ms = self.clock.now_ms();
        let created = table
            .create_as(
                asserted,
                &live.slug,
                &user.login,
                amr,
                client,
                policy,
                now_ms,
                &self.rng,
            )
            .map_err(|e| internal("session id", &e))?;
        self.replica
            .created(created.clone())
            .await
            .map_err(|e| internal("session store", &e))?;
        self.audit(
            live,
            AuditEvent::SessionCreated {
                user: user.id.clone(),
                caller: caller.to_owned(),
            },
        )
        .await?;
        Ok(SessionCreated {
            session: created.id.to_string(),
            expires_at: created.expires_ms / 1000,
            idle_expires_at: (created.last_seen_ms + created.idle_ms).min(created.expires_ms)
                / 1000,
        })
    }

    /// `session_validate` (or, with `touch`, `session_touch`): the session
    /// as it stands when valid.
    ///
    /// # Errors
    /// `session_invalid` when it is not, `unavailable` when this node
    /// cannot be sure.
    pub fn session_check(
        &self,
        live: &TenantLive,
        session: &str,
        touch: bool,
    ) -> Result<SessionInfo, WireError> {
        self.serving()?;
        let id = parse_session(session)?;
        match self.check_session(&live.slug, &id, self.clock.now_ms(), touch)? {
            Validation::Valid(view) => Ok(SessionInfo {
                user: view.user().to_string(),
                auth_time: view.auth_time_ms() / 1000,
                amr: view.amr().to_vec(),
                expires_at: view.expires_ms / 1000,
                idle_expires_at: view.idle_expires_ms / 1000,
                asserted: view.asserted(),
            }),
            other => Err(invalid(&other)),
        }
    }

    /// `session_revoke`: returns once no node accepts the session.
    ///
    /// # Errors
    /// `unavailable` when a majority did not confirm in time.
    pub async fn session_revoke(
        &self,
        live: &TenantLive,
        caller: &str,
        session: &str,
    ) -> Result<RevokedResult, WireError> {
        let id = parse_session(session)?;
        let keep_until_ms = match self.replica.table().record(&id) {
            Some(known) if !known.user.is_empty() => known.expires_ms,
            _ => self.clock.now_ms() + self.longest_session_ms(live),
        };
        self.end_sessions(
            live,
            Revoked::Session {
                tenant: Arc::clone(&live.slug),
                id,
                keep_until_ms,
            },
        )
        .await?;
        self.audit(
            live,
            AuditEvent::SessionRevoked {
                caller: caller.to_owned(),
            },
        )
        .await?;
        Ok(RevokedResult { revoked: true })
    }

    /// `user_revoke_sessions`: every session of `login`, on every node.
    ///
    /// # Errors
    /// `not_found` for an unknown user; `unavailable` as for a revoke.
    pub async fn user_revoke_sessions(
        &self,
        live: &TenantLive,
        caller: &str,
        login: &str,
    ) -> Result<RevokedResult, WireError> {
        let user = self.user(live, login).await?;
        let mark = self.mark(live, Some(&user.login), self.clock.now_ms());
        self.end_sessions(live, Revoked::Mark(mark)).await?;
        self.audit(
            live,
            AuditEvent::UserSessionsRevoked {
                user: user.id.clone(),
                caller: caller.to_owned(),
            },
        )
        .await?;
        Ok(RevokedResult { revoked: true })
    }
}

impl Appliance {
    /// `user_deactivate`: marks the user deactivated in the directory; from
    /// the commit on, no token or assertion for them here, and on other
    /// nodes once every session of theirs is revoked (before it returns).
    ///
    /// # Errors
    /// `not_found`, `unavailable` (directory, or the revoke unconfirmed).
    pub(super) async fn user_deactivate(
        &self,
        live: &TenantLive,
        caller: &str,
        login: &str,
    ) -> Result<Deactivated, WireError> {
        let now = self.hot.clock.now_ms();
        let scope = self
            .directory
            .tenant(live.tenant.id)
            .await
            .map_err(unavailable)?;
        let user_id = scope
            .set_user_status(login, UserStatus::Deactivated)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                refuse(
                    ErrorCode::NotFound,
                    format!("no user {login} in {}", live.slug),
                )
            })?;
        // Their refresh tokens (issue 19) with the same commit.
        scope
            .revoke_refresh_of_user(&user_id)
            .await
            .map_err(unavailable)?;
        scope.commit().await.map_err(unavailable)?;
        // Committed: from here no token. Locally at once; other nodes
        // through the revocation of every session of the user.
        live.users.retain(|_, u| u.id != user_id);
        let login = self
            .hot
            .user(live, login)
            .await
            .map_or_else(|_| login.to_owned(), |u| u.login.clone());
        // The mark's time is taken after the commit: a node that read the
        // user before it (still active) holds a copy older than the mark and
        // reads the user again (`HotPath::user`); sessions made since `now`
        // are covered too.
        let committed = self.hot.clock.now_ms().max(now);
        let mark = self.hot.mark(live, Some(&login), committed);
        self.hot.end_sessions(live, Revoked::Mark(mark)).await?;
        self.hot
            .audit(
                live,
                AuditEvent::UserDeactivated {
                    user: user_id,
                    caller: caller.to_owned(),
                },
            )
            .await?;
        Ok(Deactivated { deactivated: true })
    }
}
