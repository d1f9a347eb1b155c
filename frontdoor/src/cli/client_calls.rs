//! What `sigil client` accepts (its subcommands and flags) and the
//! operations each one sends, in order.

use clap::{Args, Subcommand};
use sigil_proto::Operation;

use super::client::Step;

/// The calls of `sigil client`. (Its variants' docs are the help text;
/// the flattened and nested fields carry none of their own.)
#[allow(missing_docs)]
#[derive(Subcommand)]
pub enum ClientCall {
    /// Is the node up and ready?
    Health,
    /// An OIDC ID token (creates a session first unless --session is given).
    IdToken {
        #[command(flatten)]
        who: Who,
        /// The OIDC app, e.g. app-es256.
        #[arg(long)]
        app: String,
        /// OIDC nonce.
        #[arg(long)]
        nonce: Option<String>,
        /// Also a refresh token (the app must allow refresh tokens).
        #[arg(long)]
        offline: bool,
    },
    /// An OAuth access token (creates a session first unless --session is given).
    AccessToken {
        #[command(flatten)]
        who: Who,
        /// The OIDC app, e.g. app-eddsa.
        #[arg(long)]
        app: String,
        /// Scopes, comma-separated.
        #[arg(long, value_delimiter = ',')]
        scope: Vec<String>,
        /// Also a refresh token (the app must allow refresh tokens).
        #[arg(long)]
        offline: bool,
    },
    /// Exchange a refresh token for a new token and a new refresh token (the one given is retired).
    Refresh {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// The OIDC app the refresh token was issued to.
        #[arg(long)]
        app: String,
        /// The refresh token (base64url: it may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
        refresh_token: String,
        /// Fewer scopes than granted, comma-separated (access-token families); default: all granted.
        #[arg(long, value_delimiter = ',')]
        scope: Option<Vec<String>>,
    },
    /// A signed SAML Response (creates a session first unless --session is given).
    Saml {
        #[command(flatten)]
        who: Who,
        /// The SAML SP, e.g. sp-rs256.
        #[arg(long)]
        sp: String,
        /// The AuthnRequest ID answered.
        #[arg(long)]
        in_response_to: Option<String>,
    },
    /// Sessions: create, validate, touch, revoke.
    Session {
        #[command(subcommand)]
        call: SessionCall,
    },
    /// Revoke every session of a user, on every node.
    RevokeUser {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// User login.
        #[arg(long)]
        user: String,
    },
    /// Deactivate a user: no token or assertion for them once this returns.
    Deactivate {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// User login.
        #[arg(long)]
        user: String,
    },
    // Issue 18: authentication (cli/auth.rs).
    #[command(flatten)]
    Auth(super::auth::AuthCall),
}

/// Who a call acts for.
#[derive(Args)]
pub struct Who {
    /// Tenant slug, e.g. acme.
    #[arg(long)]
    tenant: String,
    /// User login, e.g. alice.
    #[arg(long)]
    user: String,
    /// An existing session; default: create one (amr pwd) first.
    #[arg(long, allow_hyphen_values = true)]
    session: Option<String>,
}

/// `sigil client session ...`.
#[derive(Subcommand)]
pub enum SessionCall {
    /// A new session for a user.
    Create {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// User login.
        #[arg(long)]
        user: String,
        /// Authentication methods, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "pwd")]
        amr: Vec<String>,
    },
    /// Is a session valid?
    Validate {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Session id (base64url: it may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
        session: String,
    },
    /// Record activity on a session.
    Touch {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Session id (base64url: it may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
        session: String,
    },
    /// Revoke a session on every node.
    Revoke {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Session id (base64url: it may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
        session: String,
    },
}

/// A session-needing call: the given session, or a new one first.
fn with_session(
    who: Who,
    make: impl FnOnce(String, String, String) -> Operation + Send + 'static,
) -> Vec<Step> {
    let Who {
        tenant,
        user,
        session,
    } = who;
    match session {
        Some(session) => vec![Step::Ready(make(tenant, user, session))],
        None => vec![
            Step::Ready(Operation::SessionCreate {
                tenant: tenant.clone(),
                user: user.clone(),
                amr: vec!["pwd".into()],
                client: Some("sigil client".into()),
            }),
            Step::WithSession(Box::new(move |session| make(tenant, user, session))),
        ],
    }
}

/// The operations a call sends, in order.
///
/// # Errors
/// When a call that reads standard input (a password) cannot.
pub fn client_steps(call: ClientCall) -> anyhow::Result<Vec<Step>> {
    Ok(match call {
        ClientCall::Health => vec![Step::Ready(Operation::Health)],
        ClientCall::IdToken {
            who,
            app,
            nonce,
            offline,
        } => with_session(who, move |tenant, user, session| Operation::IdToken {
            tenant,
            user,
            app,
            session,
            nonce,
            offline,
        }),
        ClientCall::AccessToken {
            who,
            app,
            scope,
            offline,
        } => with_session(who, move |tenant, user, session| Operation::AccessToken {
            tenant,
            user,
            app,
            session,
            scope,
            offline,
        }),
        ClientCall::Refresh {
            tenant,
            app,
            refresh_token,
            scope,
        } => vec![Step::Ready(Operation::Refresh {
            tenant,
            app,
            refresh_token,
            scope,
        })],
        ClientCall::Saml {
            who,
            sp,
            in_response_to,
        } => with_session(who, move |tenant, user, session| Operation::Saml {
            tenant,
            user,
            sp,
            session,
            in_response_to,
        }),
        ClientCall::Session { call } => vec![Step::Ready(match call {
            SessionCall::Create { tenant, user, amr } => Operation::SessionCreate {
                tenant,
                user,
                amr,
                client: Some("sigil client".into()),
            },
            SessionCall::Validate { tenant, session } => {
                Operation::SessionValidate { tenant, session }
            }
            SessionCall::Touch { tenant, session } => Operation::SessionTouch { tenant, session },
            SessionCall::Revoke { tenant, session } => Operation::SessionRevoke { tenant, session },
        })],
        ClientCall::RevokeUser { tenant, user } => {
            vec![Step::Ready(Operation::UserRevokeSessions { tenant, user })]
        }
        ClientCall::Deactivate { tenant, user } => {
            vec![Step::Ready(Operation::UserDeactivate { tenant, user })]
        }
        ClientCall::Auth(call) => vec![Step::Ready(call.operation()?)],
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    /// `sigil client`'s calls as its own command line.
    #[derive(Parser)]
    struct Client {
        #[command(subcommand)]
        call: ClientCall,
    }

    /// base64url session ids start with `-` one time in 64.
    #[test]
    fn a_session_id_may_start_with_a_hyphen() {
        let id = "-Abc_def-ghijklmnopqrstuvwxyz0123456789ABCD";
        let parsed = Client::try_parse_from([
            "client",
            "id-token",
            "--tenant",
            "acme",
            "--user",
            "alice",
            "--app",
            "app-eddsa",
            "--session",
            id,
        ])
        .unwrap();
        let ClientCall::IdToken { who, .. } = parsed.call else {
            panic!("parsed as another call");
        };
        assert_eq!(who.session.as_deref(), Some(id));
        for call in ["validate", "touch", "revoke"] {
            let parsed = Client::try_parse_from([
                "client",
                "session",
                call,
                "--tenant",
                "acme",
                "--session",
                id,
            ])
            .unwrap();
            let ClientCall::Session { call } = parsed.call else {
                panic!("parsed as another call");
            };
            let session = match call {
                SessionCall::Validate { session, .. }
                | SessionCall::Touch { session, .. }
                | SessionCall::Revoke { session, .. } => session,
                SessionCall::Create { .. } => panic!("parsed as create"),
            };
            assert_eq!(session, id);
        }
    }
}
