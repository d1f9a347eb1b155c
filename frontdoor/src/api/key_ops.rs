//! The key operations (admin only): `keys_rotate` and `keys_revoke`. The
//! change is taken here at once; other nodes hear it through the
//! directory's change notifications (`api/changes.rs`).

use sigil_proto::results::{KeyRevoked, KeysRotated, NewKey};
use sigil_proto::{ErrorCode, WireError};
use signer::Algorithm;

use super::audit::AuditEvent;
use super::keys::KeyError;
use super::live::TenantLive;
use super::seams::Clock;
use super::{internal, refuse, Appliance};

impl Appliance {
    /// `keys_rotate`: new keys for the tenant (only `alg`'s, or all),
    /// published now and signing from their activation.
    ///
    /// # Errors
    /// `bad_request` for an unknown algorithm, `unavailable` while another
    /// node rotates.
    pub(super) async fn keys_rotate(
        &self,
        live: &TenantLive,
        caller: &str,
        alg: Option<&str>,
    ) -> Result<KeysRotated, WireError> {
        let only =
            match alg {
                Some(name) => Some(name.parse::<Algorithm>().map_err(|_| {
                    refuse(ErrorCode::BadRequest, format!("unknown algorithm {name}"))
                })?),
                None => None,
            };
        let made = self
            .keys
            .rotate(&self.directory, &live.tenant, only, self.hot.clock.now())
            .await
            .map_err(|e| match e {
                KeyError::Busy => refuse(ErrorCode::Unavailable, e.to_string()),
                other => internal("rotation", &other),
            })?;
        let event = AuditEvent::KeysRotated {
            kids: made.iter().map(|(kid, _, _)| kid.clone()).collect(),
            caller: caller.to_owned(),
        };
        self.hot.audit(live, event).await?;
        self.reload_keys(&live.slug).await?;
        Ok(KeysRotated {
            keys: made
                .into_iter()
                .map(|(kid, algorithm, at)| NewKey {
                    kid,
                    alg: algorithm.name().to_owned(),
                    activates_at: at.secs(),
                })
                .collect(),
        })
    }

    /// `keys_revoke`: the key leaves JWKS at once and signs nothing more;
    /// an active key is replaced first.
    ///
    /// # Errors
    /// `not_found` for an unknown key.
    pub(super) async fn keys_revoke(
        &self,
        live: &TenantLive,
        caller: &str,
        kid: &str,
    ) -> Result<KeyRevoked, WireError> {
        let replacement = self
            .keys
            .revoke(&self.directory, &live.tenant, kid, self.hot.clock.now())
            .await
            .map_err(|e| match e {
                KeyError::UnknownKey(k) => {
                    refuse(ErrorCode::NotFound, format!("no key {k} in {}", live.slug))
                }
                other => internal("revocation", &other),
            })?;
        let event = AuditEvent::KeyRevoked {
            kid: kid.to_owned(),
            replacement: replacement.clone(),
            caller: caller.to_owned(),
        };
        self.hot.audit(live, event).await?;
        self.reload_keys(&live.slug).await?;
        Ok(KeyRevoked {
            revoked: kid.to_owned(),
            replacement,
        })
    }
}
