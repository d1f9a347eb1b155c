//! The issuing operations: `id_token`, `access_token`, `saml`. Each runs,
//! in order: the tenant's rate budget → the tenant is active → the user →
//! the session is valid and the user's → the user is active → the app or
//! SP → the user is assigned to it → the claims → the signature (inline, or on the signer pool for a
//! slow key) → the audit record is durable → the answer. (Authorisation
//! came first, in `Appliance::call`.)

use std::sync::Arc;
use std::time::Instant;

use sigil_proto::results::{SamlResponse, Token};
use sigil_proto::{ErrorCode, WireError};

use super::audit::{AuditEvent, IssueKind};
use super::hot_path::HotPath;
use super::issue::{self, Issued, LiveApp, LiveSp, SessionFacts, UserRecord};
use super::live::TenantLive;
use super::seams::{AuditSink, Clock, DirectoryReads};
use super::signing::SlowSigning;
use super::{internal, refuse};

impl From<Issued> for Token {
    fn from(issued: Issued) -> Token {
        Token {
            token: issued.token,
            kid: issued.kid,
            alg: issued.algorithm.name().to_owned(),
            expires_at: issued.expires_at.secs(),
            refresh_token: None,
            refresh_expires_at: None,
        }
    }
}

impl From<Issued> for SamlResponse {
    fn from(mut issued: Issued) -> SamlResponse {
        let acs = issued.acs.take();
        let Token {
            token,
            kid,
            alg,
            expires_at,
            ..
        } = Token::from(issued);
        SamlResponse {
            response: token,
            kid,
            alg,
            expires_at,
            acs,
        }
    }
}

/// Refuses a user the app or SP is not assigned to (checked on the cached
/// app and user: no directory round trip).
fn assigned(allowed: bool, login: &str, app: &str) -> Result<(), WireError> {
    if allowed {
        Ok(())
    } else {
        Err(refuse(
            ErrorCode::NotAssigned,
            format!("user {login} is not assigned to {app}"),
        ))
    }
}

/// What an ID or access token is asked for with.
struct JwtRequest<'a> {
    login: &'a str,
    app: &'a str,
    session: &'a str,
    nonce: Option<&'a str>,
    /// Present for an access token.
    scope: Option<&'a [String]>,
}

impl<R: DirectoryReads, A: AuditSink, C: Clock> HotPath<R, A, C> {
    /// `id_token`: an OIDC ID token for `login` at `app`.
    ///
    /// # Errors
    /// The refusal, with its code.
    pub async fn id_token(
        &self,
        live: &TenantLive,
        caller: &str,
        login: &str,
        app: &str,
        session: &str,
        nonce: Option<&str>,
    ) -> Result<Token, WireError> {
        let request = JwtRequest {
            login,
            app,
            session,
            nonce,
            scope: None,
        };
        self.token(live, caller, request).await
    }

    /// `access_token`: an OAuth access token (JWT) for `login` at `app`
    /// with `scope`.
    ///
    /// # Errors
    /// The refusal, with its code.
    pub async fn access_token(
        &self,
        live: &TenantLive,
        caller: &str,
        login: &str,
        app: &str,
        session: &str,
        scope: &[String],
    ) -> Result<Token, WireError> {
        let request = JwtRequest {
            login,
            app,
            session,
            nonce: None,
            scope: Some(scope),
        };
        self.token(live, caller, request).await
    }

    /// An ID token, or an access token when the request has a scope.
    async fn token(
        &self,
        live: &TenantLive,
        caller: &str,
        request: JwtRequest<'_>,
    ) -> Result<Token, WireError> {
        let kind = match request.scope {
            None => IssueKind::IdToken,
            Some(_) => IssueKind::AccessToken,
        };
        let work = async {
            let (user, facts) = self.admit(live, request.login, request.session).await?;
            let app = self.app(live, request.app).await?;
            assigned(app.access.allows(&user), request.login, &app.name)?;
            let issued = self
                .jwt(live, &app, &user, &facts, request.nonce, request.scope)
                .await?;
            let issued = self.record(live, kind, caller, &user, issued).await?;
            // Back-channel logout (issue 19) tells this app when the
            // session ends: a read-locked lookup once the app is known.
            if let Ok(id) = sessions::SessionId::parse(&facts.id) {
                self.replica
                    .note_app(&live.slug, &id, &app.name, self.clock.now_ms());
            }
            Ok(issued)
        };
        self.counted(live, kind, work).await.map(Token::from)
    }

    /// `saml`: a signed SAML Response for `login` at SP `sp`.
    ///
    /// # Errors
    /// The refusal, with its code.
    pub async fn saml(
        &self,
        live: &TenantLive,
        caller: &str,
        login: &str,
        sp: &str,
        session: &str,
        in_response_to: Option<&str>,
    ) -> Result<SamlResponse, WireError> {
        let work = async {
            let (user, facts) = self.admit(live, login, session).await?;
            let sp = self.sp(live, sp).await?;
            assigned(sp.access.allows(&user), login, &sp.name)?;
            let signing = Instant::now();
            let issued = self
                .saml_response(live, &sp, &user, facts, in_response_to)
                .await?;
            self.signed(&live.keys.load().view, sp.algorithm, signing);
            self.record(live, IssueKind::Saml, caller, &user, issued)
                .await
        };
        self.counted(live, IssueKind::Saml, work)
            .await
            .map(SamlResponse::from)
    }

    /// The checks before anything is built: budget, tenant, user, session.
    async fn admit(
        &self,
        live: &TenantLive,
        login: &str,
        session: &str,
    ) -> Result<(Arc<UserRecord>, SessionFacts), WireError> {
        if !live.budget.try_acquire(Instant::now()) {
            return Err(refuse(
                ErrorCode::RateLimited,
                format!(
                    "tenant {} is over its budget of {}/s",
                    live.slug,
                    live.budget.rate()
                ),
            ));
        }
        if !live.tenant.active {
            return Err(refuse(
                ErrorCode::Forbidden,
                format!("tenant {} is suspended", live.slug),
            ));
        }
        let user = self.user(live, login).await?;
        let facts = self.session_of(live, session, &user)?;
        if !user.active {
            return Err(refuse(
                ErrorCode::UserInactive,
                format!("user {login} is not active"),
            ));
        }
        Ok((user, facts))
    }

    /// A JWT for `user` at `app` (an access token when `scope` is given),
    /// signed inline for fast keys, on the signer pool for slow ones.
    async fn jwt(
        &self,
        live: &TenantLive,
        app: &LiveApp,
        user: &UserRecord,
        facts: &SessionFacts,
        nonce: Option<&str>,
        scope: Option<&[String]>,
    ) -> Result<Issued, WireError> {
        let keys = live.keys.load();
        let signing = Instant::now();
        let pending = issue::jwt_to_sign(
            &keys.view,
            &live.issuer,
            app,
            user,
            facts,
            nonce,
            scope,
            self.clock.now(),
            &self.rng,
        )
        .map_err(|e| internal("signing", &e))?;
        let signature = if SlowSigning::is_slow(pending.key().as_ref()) {
            self.signing
                .sign(pending.key(), pending.signing_input())
                .await?
        } else {
            pending
                .key()
                .sign(pending.signing_input())
                .map_err(|e| internal("signing", &e))?
        };
        self.signed(&keys.view, app.algorithm, signing);
        Ok(pending.finish(&signature))
    }

    /// Makes the issue's audit record durable, then lets it go.
    async fn record(
        &self,
        live: &TenantLive,
        kind: IssueKind,
        caller: &str,
        user: &UserRecord,
        issued: Issued,
    ) -> Result<Issued, WireError> {
        let event = AuditEvent::Issued {
            kind,
            user: user.id.clone(),
            kid: issued.kid.clone(),
            id: issued.id.clone(),
            caller: caller.to_owned(),
        };
        self.audit(live, event).await?;
        Ok(issued)
    }

    /// Runs `work` and counts its outcome in the tenant's metrics.
    async fn counted(
        &self,
        live: &TenantLive,
        kind: IssueKind,
        work: impl std::future::Future<Output = Result<Issued, WireError>>,
    ) -> Result<Issued, WireError> {
        let started = Instant::now();
        let outcome = work.await;
        match &outcome {
            Ok(_) => {
                live.metrics.issued[kind.index()]
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                live.metrics.issue_latency.record(started.elapsed());
            }
            Err(error) => live.metrics.refuse(error.code),
        }
        outcome
    }

    /// A signed SAML Response; built and signed on the signer pool when
    /// the SP's key is slow (its two signatures follow one another).
    pub(super) async fn saml_response(
        &self,
        live: &TenantLive,
        sp: &Arc<LiveSp>,
        user: &Arc<UserRecord>,
        facts: SessionFacts,
        in_response_to: Option<&str>,
    ) -> Result<Issued, WireError> {
        let keys = live.keys.load_full();
        let slow = keys
            .view
            .active(sp.algorithm)
            .is_ok_and(|active| SlowSigning::is_slow(active.key().as_ref()));
        let (issuer, name_id_key, rng, now) = (
            live.issuer.clone(),
            live.name_id_key.clone(),
            self.rng.clone(),
            self.clock.now(),
        );
        let (sp, user) = (Arc::clone(sp), Arc::clone(user));
        let in_response_to = in_response_to.map(str::to_owned);
        let build = move || {
            let certificate = |kid: &str| keys.certificates.get(kid).cloned();
            issue::saml(
                &keys.view,
                &certificate,
                &issuer,
                &sp,
                &user,
                &facts,
                in_response_to.as_deref(),
                &name_id_key,
                now,
                &rng,
            )
        };
        let built = if slow {
            self.signing.run(build).await?
        } else {
            build()
        };
        built.map_err(|e| internal("signing", &e))
    }
}
