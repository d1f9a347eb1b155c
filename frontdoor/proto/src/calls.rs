//! The typed calls of [`Client`]: one method per operation of `sigil/1`,
//! each resolving to that operation's result type ([`crate::results`]), so
//! that no caller reads an answer back by key.
//!
//! [`Client::call`] stays for callers that print what the node sent as it
//! is (`sigil client`) or only want to know whether it succeeded (the
//! load generator).

use crate::client::{CallError, Client};
use crate::results::{
    ClusterView, Deactivated, Health, KeyRevoked, KeysRotated, Revoked, SamlResponse,
    SessionCreated, SessionInfo, Token,
};
use crate::results::{ScimTokenAdded, ScimTokenRevoked, ScimTokens};
use crate::Operation;

fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|&item| item.to_owned()).collect()
}

impl Client {
    /// `health`: is the node up, and ready to check sessions?
    ///
    /// # Errors
    /// As [`Client::call_as`].
    pub async fn health(&self) -> Result<Health, CallError> {
        self.call_as(&Operation::Health).await
    }

    /// `id_token`: an OIDC ID token for `user` of `tenant`, audience
    /// `app`, in the user's valid `session`; `nonce` goes into its claim.
    ///
    /// # Errors
    /// As [`Client::call_as`]; e.g. `session_invalid`, `user_inactive`.
    pub async fn id_token(
        &self,
        tenant: &str,
        user: &str,
        app: &str,
        session: &str,
        nonce: Option<&str>,
    ) -> Result<Token, CallError> {
        self.call_as(&id_token_op(tenant, user, app, session, nonce, false))
            .await
    }

    /// `id_token` with `offline: true`: the ID token and a refresh token
    /// (`refresh_token`, `refresh_expires_at`), for an app allowed to hold
    /// refresh tokens (issue 19).
    ///
    /// # Errors
    /// As [`Client::id_token`]; `forbidden` for an app not allowed.
    pub async fn id_token_offline(
        &self,
        tenant: &str,
        user: &str,
        app: &str,
        session: &str,
        nonce: Option<&str>,
    ) -> Result<Token, CallError> {
        self.call_as(&id_token_op(tenant, user, app, session, nonce, true))
            .await
    }

    /// `access_token`: an OAuth access token (JWT) for `user` of `tenant`,
    /// audience `app`, granting `scope`, in the user's valid `session`.
    ///
    /// # Errors
    /// As [`Client::id_token`].
    pub async fn access_token(
        &self,
        tenant: &str,
        user: &str,
        app: &str,
        session: &str,
        scope: &[&str],
    ) -> Result<Token, CallError> {
        self.call_as(&access_token_op(tenant, user, app, session, scope, false))
            .await
    }

    /// `access_token` with `offline: true`: the access token and a refresh
    /// token (issue 19).
    ///
    /// # Errors
    /// As [`Client::id_token_offline`].
    pub async fn access_token_offline(
        &self,
        tenant: &str,
        user: &str,
        app: &str,
        session: &str,
        scope: &[&str],
    ) -> Result<Token, CallError> {
        self.call_as(&access_token_op(tenant, user, app, session, scope, true))
            .await
    }

    /// `refresh`: a new token of the kind the refresh token's family began
    /// with (an access token narrowed to `scope` when given) and a new
    /// refresh token; the one presented is retired (issue 19).
    ///
    /// # Errors
    /// As [`Client::call_as`]; `session_invalid` for a refresh token
    /// unknown, expired, revoked or presented again.
    pub async fn refresh(
        &self,
        tenant: &str,
        app: &str,
        refresh_token: &str,
        scope: Option<&[&str]>,
    ) -> Result<Token, CallError> {
        self.call_as(&Operation::Refresh {
            tenant: tenant.to_owned(),
            app: app.to_owned(),
            refresh_token: refresh_token.to_owned(),
            scope: scope.map(owned),
        })
        .await
    }

    /// `saml`: a signed SAML Response for `user` of `tenant` to SP `sp`,
    /// in the user's valid `session`; `in_response_to` is the
    /// AuthnRequest's ID when the SP asked.
    ///
    /// # Errors
    /// As [`Client::id_token`].
    pub async fn saml(
        &self,
        tenant: &str,
        user: &str,
        sp: &str,
        session: &str,
        in_response_to: Option<&str>,
    ) -> Result<SamlResponse, CallError> {
        self.call_as(&Operation::Saml {
            tenant: tenant.to_owned(),
            user: user.to_owned(),
            sp: sp.to_owned(),
            session: session.to_owned(),
            in_response_to: in_response_to.map(str::to_owned),
        })
        .await
    }

    /// `session_create`: signs `user` of `tenant` in with the
    /// authentication methods `amr`; `client` describes the device.
    ///
    /// # Errors
    /// As [`Client::call_as`]; e.g. `not_found`, `user_inactive`.
    pub async fn session_create(
        &self,
        tenant: &str,
        user: &str,
        amr: &[&str],
        client: Option<&str>,
    ) -> Result<SessionCreated, CallError> {
        self.call_as(&Operation::SessionCreate {
            tenant: tenant.to_owned(),
            user: user.to_owned(),
            amr: owned(amr),
            client: client.map(str::to_owned),
        })
        .await
    }

    /// `session_validate`: the session as it stands, if valid now.
    ///
    /// # Errors
    /// As [`Client::call_as`]; `session_invalid` when it is not.
    pub async fn session_validate(
        &self,
        tenant: &str,
        session: &str,
    ) -> Result<SessionInfo, CallError> {
        self.call_as(&Operation::SessionValidate {
            tenant: tenant.to_owned(),
            session: session.to_owned(),
        })
        .await
    }

    /// `session_touch`: records activity; the session with its idle
    /// expiry extended.
    ///
    /// # Errors
    /// As [`Client::session_validate`].
    pub async fn session_touch(
        &self,
        tenant: &str,
        session: &str,
    ) -> Result<SessionInfo, CallError> {
        self.call_as(&Operation::SessionTouch {
            tenant: tenant.to_owned(),
            session: session.to_owned(),
        })
        .await
    }

    /// `session_revoke`: resolves once no node accepts the session.
    ///
    /// # Errors
    /// As [`Client::call_as`]; `unavailable` when the revocation could not
    /// be made certain.
    pub async fn session_revoke(&self, tenant: &str, session: &str) -> Result<Revoked, CallError> {
        self.call_as(&Operation::SessionRevoke {
            tenant: tenant.to_owned(),
            session: session.to_owned(),
        })
        .await
    }

    /// `user_revoke_sessions`: resolves once no node accepts any session
    /// of `user`.
    ///
    /// # Errors
    /// As [`Client::session_revoke`].
    pub async fn user_revoke_sessions(
        &self,
        tenant: &str,
        user: &str,
    ) -> Result<Revoked, CallError> {
        self.call_as(&Operation::UserRevokeSessions {
            tenant: tenant.to_owned(),
            user: user.to_owned(),
        })
        .await
    }

    /// `user_deactivate`: from its return on, no token or assertion for
    /// `user`.
    ///
    /// # Errors
    /// As [`Client::call_as`].
    pub async fn user_deactivate(
        &self,
        tenant: &str,
        user: &str,
    ) -> Result<Deactivated, CallError> {
        self.call_as(&Operation::UserDeactivate {
            tenant: tenant.to_owned(),
            user: user.to_owned(),
        })
        .await
    }

    /// `keys_rotate` (admin): new keys for `tenant`, of algorithm `alg`
    /// only or of every algorithm.
    ///
    /// # Errors
    /// As [`Client::call_as`]; `forbidden` without an admin certificate.
    pub async fn keys_rotate(
        &self,
        tenant: &str,
        alg: Option<&str>,
    ) -> Result<KeysRotated, CallError> {
        self.call_as(&Operation::KeysRotate {
            tenant: tenant.to_owned(),
            alg: alg.map(str::to_owned),
        })
        .await
    }

    /// `keys_revoke` (admin): key `kid` leaves JWKS at once.
    ///
    /// # Errors
    /// As [`Client::keys_rotate`]; `not_found` for an unknown key.
    pub async fn keys_revoke(&self, tenant: &str, kid: &str) -> Result<KeyRevoked, CallError> {
        self.call_as(&Operation::KeysRevoke {
            tenant: tenant.to_owned(),
            kid: kid.to_owned(),
        })
        .await
    }

    /// `cluster_status` (admin): the session cluster as this node sees it.
    ///
    /// # Errors
    /// As [`Client::keys_rotate`].
    pub async fn cluster_status(&self) -> Result<ClusterView, CallError> {
        self.call_as(&Operation::ClusterStatus).await
    }

    /// `cluster_add` (admin): adds node `node`, replicating at `address`
    /// (`host:port`); the cluster as it is afterwards.
    ///
    /// # Errors
    /// As [`Client::keys_rotate`]; `conflict` when another change took
    /// the epoch first.
    pub async fn cluster_add(&self, node: &str, address: &str) -> Result<ClusterView, CallError> {
        self.call_as(&Operation::ClusterAdd {
            node: node.to_owned(),
            address: address.to_owned(),
        })
        .await
    }

    /// `cluster_remove` (admin): removes node `node` for good; the cluster
    /// as it is afterwards.
    ///
    /// # Errors
    /// As [`Client::cluster_add`].
    pub async fn cluster_remove(&self, node: &str) -> Result<ClusterView, CallError> {
        self.call_as(&Operation::ClusterRemove {
            node: node.to_owned(),
        })
        .await
    }

    // SCIM tokens (issue 17) ------------------------------------------

    /// `scim_token_add` (admin): a new SCIM bearer token `name` for
    /// `tenant`, shown this once.
    ///
    /// # Errors
    /// As [`Client::keys_rotate`]; `conflict` when the name is taken.
    pub async fn scim_token_add(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<ScimTokenAdded, CallError> {
        self.call_as(&Operation::ScimTokenAdd {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
        })
        .await
    }

    /// `scim_token_list` (admin): the tenant's SCIM tokens.
    ///
    /// # Errors
    /// As [`Client::keys_rotate`].
    pub async fn scim_token_list(&self, tenant: &str) -> Result<ScimTokens, CallError> {
        self.call_as(&Operation::ScimTokenList {
            tenant: tenant.to_owned(),
        })
        .await
    }

    /// `scim_token_revoke` (admin): no node accepts token `name` any more.
    ///
    /// # Errors
    /// As [`Client::keys_rotate`]; `not_found` for an unknown name.
    pub async fn scim_token_revoke(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<ScimTokenRevoked, CallError> {
        self.call_as(&Operation::ScimTokenRevoke {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
        })
        .await
    }
}

/// `id_token` as sent by [`Client::id_token`] and
/// [`Client::id_token_offline`].
fn id_token_op(
    tenant: &str,
    user: &str,
    app: &str,
    session: &str,
    nonce: Option<&str>,
    offline: bool,
) -> Operation {
    Operation::IdToken {
        tenant: tenant.to_owned(),
        user: user.to_owned(),
        app: app.to_owned(),
        session: session.to_owned(),
        nonce: nonce.map(str::to_owned),
        offline,
    }
}

/// `access_token` as sent by [`Client::access_token`] and
/// [`Client::access_token_offline`].
fn access_token_op(
    tenant: &str,
    user: &str,
    app: &str,
    session: &str,
    scope: &[&str],
    offline: bool,
) -> Operation {
    Operation::AccessToken {
        tenant: tenant.to_owned(),
        user: user.to_owned(),
        app: app.to_owned(),
        session: session.to_owned(),
        scope: owned(scope),
        offline,
    }
}
