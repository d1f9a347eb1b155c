//! Change notifications: triggers on the directory's tables `pg_notify`
//! on channel `sigil_changes`; [`listen`] turns them into [`Change`]s.
//! When the listening connection is lost, changes may have been missed:
//! the stream says [`Change::Reset`] (drop every cache) and reconnects.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A user row changed (status is its new status; `deactivated` or
    /// `suspended` means: revoke its sessions).
    User {
        /// Tenant.
        tenant_id: i64,
        /// User id.
        user_id: String,
        /// New status, if the row still exists.
        status: Option<String>,
    },
    /// Group membership changed for a user.
    Membership {
        /// Tenant.
        tenant_id: i64,
        /// User id.
        user_id: Option<String>,
    },
    /// The tenant row (policy, budget, status) changed.
    Tenant {
        /// Tenant.
        tenant_id: i64,
    },
    /// An app or SP changed.
    Apps {
        /// Tenant.
        tenant_id: i64,
    },
    /// The tenant's keys changed: reload its key ring.
    Keys {
        /// Tenant.
        tenant_id: i64,
    },
    /// A caller (front end) was removed or changed: forget resolved callers.
    Callers,
    /// The listener (re)connected: anything may have changed meanwhile.
    Reset,
    /// A tenant's SCIM tokens changed (one added or revoked).
    ScimTokens {
        /// The tenant.
        tenant_id: i64,
    },
    /// A tenant's sign-on policy changed (issue 18): drop its cached copy.
    Policy {
        /// The tenant.
        tenant_id: i64,
    },
}

/// Parses one notification payload.
pub fn parse(payload: &str) -> Option<Change> {
    let value: serde_json::Value = serde_json::from_str(payload).ok()?;
    let tenant_id = value.get("tenant_id")?.as_i64()?;
    let user_id = value
        .get("user_id")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    Some(match value.get("table")?.as_str()? {
        "users" => Change::User {
            tenant_id,
            user_id: user_id?,
            status: value
                .get("status")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
        },
        "memberships" | "groups" => Change::Membership { tenant_id, user_id },
        "tenants" => Change::Tenant { tenant_id },
        "oidc_apps" | "saml_sps" | "app_group_assignments" | "app_user_assignments" => {
            Change::Apps { tenant_id }
        }
        "frontends" => Change::Callers,
        "signing_keys" => Change::Keys { tenant_id },
        "scim_tokens" => Change::ScimTokens { tenant_id },
        "signon_policies" => Change::Policy { tenant_id },
        _ => return None,
    })
}

/// Listens on `sigil_changes` for as long as the receiver lives. The first
/// message after every (re)connection is [`Change::Reset`].
pub fn listen(config: tokio_postgres::Config) -> mpsc::UnboundedReceiver<Change> {
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(50);
        while !sender.is_closed() {
            match config.connect(NoTls).await {
                Ok((client, mut connection)) => {
                    let forward = sender.clone();
                    let driver = tokio::spawn(async move {
                        let mut messages =
                            futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                        while let Some(message) = messages.next().await {
                            match message {
                                Ok(AsyncMessage::Notification(n)) => {
                                    if let Some(change) = parse(n.payload()) {
                                        if forward.send(change).is_err() {
                                            return;
                                        }
                                    }
                                }
                                Ok(_) => {}
                                Err(_) => break,
                            }
                        }
                    });
                    if client.batch_execute("LISTEN sigil_changes").await.is_ok() {
                        backoff = Duration::from_millis(50);
                        if sender.send(Change::Reset).is_err() {
                            return;
                        }
                    }
                    let _ = driver.await;
                    drop(client);
                }
                Err(e) => tracing::warn!(error = %e, "directory listener cannot connect"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    });
    receiver
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse() {
        assert_eq!(
            parse(r#"{"table":"users","tenant_id":3,"user_id":"u1","status":"deactivated"}"#),
            Some(Change::User {
                tenant_id: 3,
                user_id: "u1".into(),
                status: Some("deactivated".into())
            })
        );
        assert_eq!(
            parse(r#"{"table":"signing_keys","tenant_id":3,"user_id":null,"status":null}"#),
            Some(Change::Keys { tenant_id: 3 })
        );
        assert_eq!(
            parse(r#"{"table":"signon_policies","tenant_id":4,"user_id":null,"status":null}"#),
            Some(Change::Policy { tenant_id: 4 })
        );
        assert_eq!(
            parse(r#"{"table":"app_user_assignments","tenant_id":3,"user_id":"u1","status":null}"#),
            Some(Change::Apps { tenant_id: 3 })
        );
        assert_eq!(
            parse(r#"{"table":"frontends","tenant_id":0}"#),
            Some(Change::Callers)
        );
        assert_eq!(parse("not json"), None);
        assert_eq!(parse(r#"{"table":"nope","tenant_id":1}"#), None);
    }
}
