//! Refresh tokens (issue 19): `offline: true` on `id_token` and
//! `access_token`, and the `refresh` operation.
//!
//! A refresh token is 256 random bits, base64url (43 characters), handed
//! out once; Postgres keeps its SHA-256 (`refresh_tokens`,
//! directory/src/refresh.rs), bound to the tenant (row-level security),
//! the app, the user and the session, in a family that every rotation
//! continues. A refresh reads the token, issues the new token through the
//! same checks as `id_token` / `access_token` (budget, tenant, the session
//! is valid and the user's, the user is active and assigned, signature,
//! audit), then in one transaction retires the presented token (`UPDATE
//! ... WHERE retired_at IS NULL RETURNING`: of two nodes racing with it,
//! one rotates and the other sees it retired) and adds its successor. A
//! retired token presented again is theft: the family is
//! revoked, the session is revoked through `session_revoke`'s own path
//! (every node refuses it before the answer), and `refresh.reuse_detected`
//! goes into the tenant's audit chain.

use std::sync::Arc;

use aws_lc_rs::rand::SecureRandom;
use directory::refresh::{NewRefreshToken, Presented, RefreshGrant};
use directory::TenantScope;
use sigil_proto::results::Token;
use sigil_proto::{ErrorCode, WireError};

use super::audit::AuditEvent;
use super::issue::LiveApp;
use super::live::TenantLive;
use super::seams::Clock;
use super::{internal, refuse, unavailable, Appliance};

/// What a refresh token's family hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// ID tokens.
    IdToken,
    /// Access tokens.
    AccessToken,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::IdToken => "id_token",
            Kind::AccessToken => "access_token",
        }
    }
}

/// The refusal of a refresh token that is not (or no longer) good.
fn invalid(why: &str) -> WireError {
    refuse(ErrorCode::SessionInvalid, format!("refresh token {why}"))
}

/// The SHA-256 of a presented token, or `session_invalid` for one that is
/// not 43 characters of base64url.
fn hash_of(presented: &str) -> Result<[u8; 32], WireError> {
    match signer::b64::decode(presented) {
        Some(bytes) if bytes.len() == 32 && presented.len() == 43 => Ok(digest(presented)),
        _ => Err(invalid("malformed")),
    }
}

fn digest(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest.as_ref());
    hash
}

/// Whether `asked` is a subset of `granted`.
fn subset(asked: &[String], granted: &[String]) -> bool {
    asked.iter().all(|scope| granted.contains(scope))
}

/// How a new refresh token is bound.
struct Binding<'a> {
    family: [u8; 16],
    app: &'a LiveApp,
    user_id: &'a str,
    login: &'a str,
    session: &'a str,
    kind: Kind,
    scope: &'a [String],
    absolute_expires_ms: u64,
}

impl Appliance {
    /// The app of an `offline: true` request, refused `forbidden` when it
    /// may not hold refresh tokens (checked before anything is signed).
    pub(super) async fn offline_app(
        &self,
        live: &TenantLive,
        app: &str,
    ) -> Result<Arc<LiveApp>, WireError> {
        let app = self.hot.app(live, app).await?;
        if !app.refresh.allowed {
            return Err(refuse(
                ErrorCode::Forbidden,
                format!(
                    "app {} may not hold refresh tokens (sigil admin app add --refresh-tokens)",
                    app.name
                ),
            ));
        }
        Ok(app)
    }

    /// `token` (just issued for `login` at `app` in `session`) with the
    /// first refresh token of a new family.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn with_refresh(
        &self,
        live: &TenantLive,
        app: &LiveApp,
        login: &str,
        session: &str,
        kind: Kind,
        scope: &[String],
        token: Token,
    ) -> Result<Token, WireError> {
        let user = self.hot.user(live, login).await?;
        let mut family = [0u8; 16];
        self.hot
            .rng
            .fill(&mut family)
            .map_err(|e| internal("random", &e))?;
        let now = self.hot.clock.now_ms();
        let binding = Binding {
            family,
            app,
            user_id: &user.id,
            login: &user.login,
            session,
            kind,
            scope,
            absolute_expires_ms: now + u64::from(app.refresh.absolute_s) * 1000,
        };
        let tx = self
            .directory
            .tenant(live.tenant.id)
            .await
            .map_err(unavailable)?;
        let refresh_token = self.store(&tx, &binding, now).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Token {
            refresh_token: Some(refresh_token),
            refresh_expires_at: Some(binding.absolute_expires_ms / 1000),
            ..token
        })
    }

    /// A new refresh token, stored in `tx`; its idle expiry runs from
    /// `now`.
    async fn store(
        &self,
        tx: &TenantScope<'_>,
        binding: &Binding<'_>,
        now: u64,
    ) -> Result<String, WireError> {
        let mut secret = [0u8; 32];
        self.hot
            .rng
            .fill(&mut secret)
            .map_err(|e| internal("random", &e))?;
        let token = signer::b64::encode(secret);
        let idle = now + u64::from(binding.app.refresh.idle_s) * 1000;
        tx.add_refresh_token(&NewRefreshToken {
            hash: digest(&token),
            family: binding.family,
            app: &binding.app.name,
            user_id: binding.user_id,
            login: binding.login,
            session: binding.session,
            kind: binding.kind.name(),
            scope: binding.scope,
            absolute_expires_ms: binding.absolute_expires_ms,
            idle_expires_ms: idle.min(binding.absolute_expires_ms),
        })
        .await
        .map_err(unavailable)?;
        Ok(token)
    }

    /// `refresh`: a new token of the family's kind and a new refresh
    /// token; the presented one is retired.
    ///
    /// Three steps, so that no directory connection waits for a signature
    /// or an audit record: the token is read (and refused, or found
    /// stolen); the new token is issued through the checks of `id_token` /
    /// `access_token`; then one transaction retires the presented token
    /// (`UPDATE ... WHERE retired_at IS NULL RETURNING`), adds its
    /// successor and commits. Should another request have rotated it in
    /// between, this one presented a retired token: theft, and the token
    /// it had issued is not answered.
    ///
    /// # Errors
    /// `session_invalid` for a token malformed, unknown in the tenant,
    /// issued to another app, expired, revoked or presented again (theft:
    /// family and session revoked first); `forbidden` when the app may no
    /// longer hold refresh tokens; `bad_request` for a scope not granted;
    /// the refusals of `id_token` / `access_token`.
    pub(super) async fn refresh(
        &self,
        live: &TenantLive,
        caller: &str,
        app: &str,
        presented: &str,
        scope: Option<&[String]>,
    ) -> Result<Token, WireError> {
        let hash = hash_of(presented)?;
        let app = self.hot.app(live, app).await?;
        let read = async {
            let tx = self.directory.tenant(live.tenant.id).await?;
            let presented = tx.read_refresh_token(&hash).await?;
            // Ended at once: the connection goes back to the pool now.
            tx.commit().await?;
            Ok::<_, directory::Error>(presented)
        };
        let grant = match read.await.map_err(unavailable)? {
            Presented::Live(grant) => grant,
            Presented::Unknown => return Err(invalid("unknown")),
            Presented::Revoked(_) => return Err(invalid("revoked")),
            Presented::Retired(grant) => return Err(self.reused(live, caller, grant).await),
        };
        if grant.app != app.name {
            return Err(invalid("issued to another app"));
        }
        if !app.refresh.allowed {
            return Err(refuse(
                ErrorCode::Forbidden,
                format!("app {} may not hold refresh tokens", app.name),
            ));
        }
        let now = self.hot.clock.now_ms();
        if now >= grant.absolute_expires_ms {
            return Err(invalid("expired"));
        }
        if now >= grant.idle_expires_ms {
            return Err(invalid("idle too long"));
        }
        let kind = match grant.kind.as_str() {
            "id_token" => Kind::IdToken,
            _ => Kind::AccessToken,
        };
        let asked = match (kind, scope) {
            (_, None) => grant.scope.clone(),
            (Kind::IdToken, Some(_)) => {
                return Err(refuse(
                    ErrorCode::BadRequest,
                    "scope: this refresh token's family hands out ID tokens",
                ))
            }
            (Kind::AccessToken, Some(asked)) if subset(asked, &grant.scope) => asked.to_vec(),
            (Kind::AccessToken, Some(_)) => {
                return Err(refuse(
                    ErrorCode::BadRequest,
                    "scope: only scopes granted with the refresh token may be asked for",
                ))
            }
        };
        // The same user, by stable id (a login can be renamed and reused).
        let user = match self.hot.user(live, &grant.login).await {
            Ok(user) if user.id == grant.user_id => user,
            Ok(_) => return Err(self.dead(live, &grant, invalid("of a user gone")).await),
            Err(e) if e.code == ErrorCode::NotFound => {
                return Err(self.dead(live, &grant, invalid("of a user gone")).await)
            }
            Err(e) => return Err(e),
        };
        // Every check of `id_token` / `access_token`, the signature and
        // the audit record.
        let issued = match kind {
            Kind::IdToken => {
                let token =
                    self.hot
                        .id_token(live, caller, &grant.login, &app.name, &grant.session, None);
                token.await
            }
            Kind::AccessToken => {
                let token = self.hot.access_token(
                    live,
                    caller,
                    &grant.login,
                    &app.name,
                    &grant.session,
                    &asked,
                );
                token.await
            }
        };
        let token = match issued {
            Ok(token) => token,
            // The session ended, or the user lost access: the family is
            // of no more use.
            Err(e)
                if matches!(
                    e.code,
                    ErrorCode::SessionInvalid | ErrorCode::UserInactive | ErrorCode::NotAssigned
                ) =>
            {
                return Err(self.dead(live, &grant, e).await)
            }
            Err(e) => return Err(e),
        };
        // The rotation: retire, add the successor, commit.
        let tx = self
            .directory
            .tenant(live.tenant.id)
            .await
            .map_err(unavailable)?;
        match tx.take_refresh_token(&hash).await.map_err(unavailable)? {
            Presented::Live(_) => {}
            Presented::Retired(grant) => {
                drop(tx);
                return Err(self.reused(live, caller, grant).await);
            }
            Presented::Revoked(_) | Presented::Unknown => return Err(invalid("revoked")),
        }
        let mut family = [0u8; 16];
        if grant.family.len() == family.len() {
            family.copy_from_slice(&grant.family);
        }
        let binding = Binding {
            family,
            app: &app,
            user_id: &user.id,
            login: &user.login,
            session: &grant.session,
            kind,
            scope: &grant.scope,
            absolute_expires_ms: grant.absolute_expires_ms,
        };
        let refresh_token = self.store(&tx, &binding, now).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Token {
            refresh_token: Some(refresh_token),
            refresh_expires_at: Some(grant.absolute_expires_ms / 1000),
            ..token
        })
    }

    /// Revokes the family of `grant` in the directory and answers
    /// `refused`; a directory failure answers `unavailable` instead.
    async fn dead(&self, live: &TenantLive, grant: &RefreshGrant, refused: WireError) -> WireError {
        let revoked = async {
            let tx = self.directory.tenant(live.tenant.id).await?;
            tx.revoke_refresh_family(&grant.family).await?;
            tx.commit().await
        };
        match revoked.await {
            Ok(()) => refused,
            Err(e) => unavailable(e),
        }
    }

    /// A retired token presented again: theft. The family is revoked in
    /// the directory, the session on every node (the path of
    /// `session_revoke`: it returns once no node accepts the session),
    /// then the event is audited; only then the refusal.
    async fn reused(&self, live: &TenantLive, caller: &str, grant: RefreshGrant) -> WireError {
        let refused = invalid("presented again: its family and its session are revoked");
        let refused = self.dead(live, &grant, refused).await;
        if refused.code != ErrorCode::SessionInvalid {
            return refused;
        }
        if let Err(e) = self.hot.session_revoke(live, caller, &grant.session).await {
            return e;
        }
        let event = AuditEvent::RefreshReuseDetected {
            family: grant.family.iter().map(|b| format!("{b:02x}")).collect(),
            app: grant.app,
            user: grant.user_id,
            caller: caller.to_owned(),
        };
        match self.hot.audit(live, event).await {
            Ok(()) => refused,
            Err(e) => e,
        }
    }

    /// RFC 7009 for a refresh token: revokes the family of `presented` when
    /// it is one of `app`'s (live or already rotated) and answers the
    /// family (hex); `None` for anything else (not a refresh token,
    /// unknown, another app's, revoked before), which the endpoint answers
    /// the same, with no effect.
    ///
    /// # Errors
    /// The directory's, when it cannot be reached.
    pub(super) async fn revoke_refresh_token_of(
        &self,
        live: &TenantLive,
        app: &str,
        presented: &str,
    ) -> Result<Option<String>, directory::Error> {
        let Ok(hash) = hash_of(presented) else {
            return Ok(None);
        };
        let tx = self.directory.tenant(live.tenant.id).await?;
        let family = match tx.read_refresh_token(&hash).await? {
            Presented::Live(grant) | Presented::Retired(grant) if grant.app == app => grant.family,
            _ => return Ok(None),
        };
        tx.revoke_refresh_family(&family).await?;
        tx.commit().await?;
        Ok(Some(family.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// Marks the refresh tokens of `session` (or of the user `user_id`)
    /// revoked in the directory after a `session_revoke`,
    /// `user_revoke_sessions` or `user_deactivate`. A refresh checks the
    /// session and the user anyway; this keeps the table honest. A
    /// failure is logged, not answered: the session revoke stands.
    pub(super) async fn revoke_refresh_of(
        &self,
        live: &TenantLive,
        session: Option<&str>,
        user_id: Option<&str>,
    ) {
        let revoked = async {
            let tx = self.directory.tenant(live.tenant.id).await?;
            if let Some(session) = session {
                tx.revoke_refresh_of_session(session).await?;
            }
            if let Some(user_id) = user_id {
                tx.revoke_refresh_of_user(user_id).await?;
            }
            tx.commit().await
        };
        if let Err(error) = revoked.await {
            tracing::warn!(%error, tenant = %live.slug, "refresh tokens not marked revoked (a refresh checks the session anyway)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_43_characters_of_base64url_are_a_refresh_token() {
        let good = signer::b64::encode([7u8; 32]);
        assert_eq!(good.len(), 43);
        assert!(hash_of(&good).is_ok());
        for bad in [
            "",
            "short",
            &good[..42],
            &format!("{good}A"),
            &good.replace('B', "+"),
            "+++++++++++++++++++++++++++++++++++++++++++",
        ] {
            let refused = hash_of(bad).err();
            assert_eq!(
                refused.map(|e| e.code),
                Some(ErrorCode::SessionInvalid),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_narrower_scope_is_a_subset_and_a_wider_one_is_not() {
        let granted = ["openid".to_string(), "email".to_string()];
        assert!(subset(&["email".to_string()], &granted));
        assert!(subset(&[], &granted));
        assert!(!subset(&["admin".to_string()], &granted));
    }
}
