//! The factor operations (issue 18): `factor_enroll`, `factor_activate`
//! and `factor_verify`, the second step of a sign-in after
//! `MFA_REQUIRED`. TOTP secrets are wrapped under the master key like
//! software signing keys; a code's time step is accepted once per user on
//! every node (the directory's `accept_step`). Shares its helpers with
//! `api/auth_ops.rs`.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use sigil_proto::auth::{AuthStatus, CredentialChanged, FactorEnrolled, Secret};
use sigil_proto::{ErrorCode, WireError};

use super::audit::AuthAction;
use super::auth_ops::{sha256, Authentication, TOTP};
use super::live::TenantLive;
use super::seams::Clock;
use super::{internal, refuse, unavailable, Appliance};
use crate::auth::totp;

impl Appliance {
    /// The TOTP secret of `user_id`, unwrapped, when it has the factor
    /// (`active`: an active one; else a pending one).
    async fn totp_secret(
        &self,
        live: &TenantLive,
        user_id: &str,
        active: bool,
    ) -> Result<Option<Vec<u8>>, WireError> {
        let auth = self.authentication()?;
        let scope = self.scope(live).await?;
        let factors = scope.factors(user_id).await.map_err(unavailable)?;
        scope.commit().await.map_err(unavailable)?;
        let Some(factor) = factors
            .into_iter()
            .find(|f| f.kind == TOTP && f.active == active)
        else {
            return Ok(None);
        };
        let context = Authentication::wrap_context(live.tenant.id, user_id);
        let secret = auth
            .master
            .unwrap(&context, &factor.wrapped_secret)
            .map_err(|e| internal("totp secret", &e))?;
        Ok(Some(secret.to_vec()))
    }

    /// Checks `otp` for `user_id`'s TOTP factor and accepts its step once,
    /// on every node; with `activate`, the pending factor becomes active.
    pub(super) async fn accept_code(
        &self,
        live: &TenantLive,
        user_id: &str,
        otp: &Secret,
        activate: bool,
    ) -> Result<bool, WireError> {
        let Some(secret) = self.totp_secret(live, user_id, !activate).await? else {
            return Ok(false);
        };
        let now_s = self.hot.clock.now_ms() / 1000;
        let step =
            totp::matching_step(&secret, otp.expose(), now_s).map_err(|e| internal("totp", &e))?;
        let Some(step) = step.and_then(|s| i64::try_from(s).ok()) else {
            return Ok(false);
        };
        let scope = self.scope(live).await?;
        let accepted = scope
            .accept_step(user_id, TOTP, step, activate)
            .await
            .map_err(unavailable)?;
        scope.commit().await.map_err(unavailable)?;
        Ok(accepted)
    }

    /// `factor_verify`: takes the state (single use), checks the code,
    /// and signs the user in with `amr` `["pwd","otp"]`.
    pub(super) async fn factor_verify(
        &self,
        live: &TenantLive,
        caller: &str,
        state: &Secret,
        otp: &Secret,
    ) -> Result<AuthStatus, WireError> {
        let now_ms = self.hot.clock.now_ms();
        let scope = self.scope(live).await?;
        let taken = scope
            .take_auth_state(&sha256(state.expose()), now_ms)
            .await
            .map_err(unavailable)?;
        let settings = scope.auth_settings().await.map_err(unavailable)?;
        scope.commit().await.map_err(unavailable)?;
        let Some(taken) = taken.filter(|s| s.purpose == "mfa") else {
            self.audit_auth(live, AuthAction::FactorFailure, "", None, caller)
                .await?;
            return Err(refuse(
                ErrorCode::InvalidCredentials,
                "the state is unknown, used or expired: authenticate again",
            ));
        };
        let client_ip = taken.client.as_deref();
        let user = self.hot.user(live, &taken.user_id).await?;
        if !self.accept_code(live, &user.id, otp, false).await? {
            self.failed(live, &user.id, &settings, now_ms).await?;
            self.audit_auth(live, AuthAction::FactorFailure, &user.id, client_ip, caller)
                .await?;
            return Err(refuse(
                ErrorCode::InvalidCredentials,
                "invalid or already used code: authenticate again",
            ));
        }
        if !user.active {
            return Err(refuse(
                ErrorCode::UserInactive,
                format!("user {} is not active", user.login),
            ));
        }
        let mut amr = taken.amr;
        amr.push("otp".into());
        // The lifetimes of the sign-on policy rule that asked (issue 18).
        let lifetime = super::policy_ops::Lifetime {
            absolute_s: taken.session_absolute_s,
            idle_s: taken.session_idle_s,
        };
        self.signed_in(live, caller, &user, amr, client_ip, lifetime)
            .await
    }

    /// `factor_enroll`: a new pending TOTP factor, its secret wrapped under
    /// the master key; the `otpauth://` URI is shown this once.
    pub(super) async fn factor_enroll(
        &self,
        live: &TenantLive,
        caller: &str,
        login: &str,
        factor_type: &str,
    ) -> Result<FactorEnrolled, WireError> {
        if factor_type != TOTP {
            return Err(refuse(
                ErrorCode::BadRequest,
                "the only factor type is totp",
            ));
        }
        let auth = self.authentication()?;
        let user = self.hot.user(live, login).await?;
        let mut secret = [0u8; totp::SECRET_LEN];
        SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| internal("totp secret", &"no randomness"))?;
        let context = Authentication::wrap_context(live.tenant.id, &user.id);
        let wrapped = auth
            .master
            .wrap(&context, &secret)
            .map_err(|e| internal("totp secret", &e))?;
        let uri = totp::otpauth_uri(&secret, &format!("Sigil {}", live.slug), &user.login)
            .map_err(|e| internal("totp", &e))?;
        let scope = self.scope(live).await?;
        match scope.enroll_factor(&user.id, TOTP, &wrapped).await {
            Ok(()) => {}
            Err(directory::Error::Conflict(why)) => return Err(refuse(ErrorCode::Conflict, why)),
            Err(e) => return Err(unavailable(e)),
        }
        scope.commit().await.map_err(unavailable)?;
        self.audit_auth(live, AuthAction::FactorEnrolled, &user.id, None, caller)
            .await?;
        Ok(FactorEnrolled {
            factor_type: TOTP.into(),
            otpauth_uri: uri,
        })
    }

    /// `factor_activate`: a first code of the pending factor makes it
    /// active.
    pub(super) async fn factor_activate(
        &self,
        live: &TenantLive,
        caller: &str,
        login: &str,
        otp: &Secret,
    ) -> Result<CredentialChanged, WireError> {
        let user = self.hot.user(live, login).await?;
        if !self.accept_code(live, &user.id, otp, true).await? {
            self.audit_auth(live, AuthAction::FactorFailure, &user.id, None, caller)
                .await?;
            return Err(refuse(
                ErrorCode::InvalidCredentials,
                "invalid code, or no pending factor",
            ));
        }
        self.audit_auth(live, AuthAction::FactorActivated, &user.id, None, caller)
            .await?;
        Ok(CredentialChanged {
            activated: Some(true),
            password_set: None,
            unlocked: None,
        })
    }
}
