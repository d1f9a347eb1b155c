//! SCIM on the appliance's side (issue 17): the admin operations on SCIM
//! bearer tokens (`scim_token_add`, `scim_token_list`, `scim_token_revoke`),
//! the per-tenant cache the control listener checks tokens against, and
//! what SCIM writes share with the other operations: the strong
//! deactivation path of `user_deactivate`, the users cache, the audit
//! chain.
//!
//! Tokens: 256 random bits, `sigil_scim_` + base64url, shown once; only
//! their SHA-256 is stored. A check hashes the presented token and compares
//! it with each of the tenant's active hashes in constant time. The cache
//! of a tenant's hashes is dropped on the directory's change notification
//! (every node) and at once on the node that revoked; a generation counter
//! keeps a load that raced a revoke from putting the old hashes back.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use sigil_proto::results::{ScimTokenAdded, ScimTokenInfo, ScimTokenRevoked, ScimTokens};
use sigil_proto::{ErrorCode, WireError};

use super::audit::{AuditEvent, AuthAction};
use super::live::TenantLive;
use super::seams::Clock;
use super::{refuse, unavailable, Appliance};

/// The prefix of every SCIM token (lets secret scanners find leaked ones).
pub const TOKEN_PREFIX: &str = "sigil_scim_";

/// A tenant's active token hashes: (name, SHA-256).
type Hashes = Arc<Vec<(String, [u8; 32])>>;

/// The cache of tenants' active SCIM token hashes.
#[derive(Debug, Default)]
pub struct ScimTokenCache {
    entries: RwLock<HashMap<i64, Hashes>>,
    generations: RwLock<HashMap<i64, u64>>,
}

impl ScimTokenCache {
    fn generation(&self, tenant_id: i64) -> u64 {
        self.generations
            .read()
            .map_or(0, |g| g.get(&tenant_id).copied().unwrap_or(0))
    }

    /// Drops a tenant's cached hashes (a token was added or revoked).
    pub fn invalidate(&self, tenant_id: i64) {
        if let Ok(mut generations) = self.generations.write() {
            *generations.entry(tenant_id).or_insert(0) += 1;
        }
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(&tenant_id);
        }
    }

    /// Drops every tenant's (the notifications may have been missed).
    pub fn clear(&self) {
        if let Ok(mut generations) = self.generations.write() {
            for generation in generations.values_mut() {
                *generation += 1;
            }
        }
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }
}

/// The SHA-256 of a token.
pub fn token_hash(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest.as_ref());
    hash
}

fn check_name(name: &str) -> Result<(), WireError> {
    let ok = name.len() <= 63
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(refuse(
            ErrorCode::BadRequest,
            "a SCIM token name is 1-63 characters of A-Z a-z 0-9 . _ - starting with a letter or digit",
        ))
    }
}

impl Appliance {
    /// Where this node serves SCIM, once the control listener runs
    /// (`{control_public_url}`), for the answers that name it.
    pub fn set_control_url(&self, url: String) {
        let _ = self.control_url.set(url);
    }

    /// Where this node serves the control plane, once it does.
    pub fn control_url(&self) -> Option<String> {
        self.control_url.get().cloned()
    }

    /// The SCIM token cache.
    pub fn scim_tokens(&self) -> &ScimTokenCache {
        &self.scim_tokens
    }

    /// The SCIM server's latencies (`/metrics`).
    pub fn scim_metrics(&self) -> &crate::metrics::ScimMetrics {
        &self.scim_metrics
    }

    /// The directory.
    pub fn directory(&self) -> &Arc<directory::Directory> {
        &self.directory
    }

    /// `scim_token_add`.
    pub(super) async fn scim_token_add(
        &self,
        live: &TenantLive,
        caller: &str,
        name: &str,
    ) -> Result<ScimTokenAdded, WireError> {
        check_name(name)?;
        let mut secret = [0u8; 32];
        aws_lc_rs::rand::fill(&mut secret)
            .map_err(|_| refuse(ErrorCode::Internal, "random generator failed"))?;
        let token = format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        );
        let scope = self
            .directory
            .tenant(live.tenant.id)
            .await
            .map_err(unavailable)?;
        match scope.add_scim_token(name, &token_hash(&token)).await {
            Ok(()) => {}
            Err(directory::Error::Conflict(m)) => return Err(refuse(ErrorCode::Conflict, m)),
            Err(e) => return Err(unavailable(e)),
        }
        scope.commit().await.map_err(unavailable)?;
        self.scim_tokens.invalidate(live.tenant.id);
        self.hot
            .audit(
                live,
                AuditEvent::ScimToken {
                    action: "add",
                    name: name.to_owned(),
                    caller: caller.to_owned(),
                },
            )
            .await?;
        Ok(ScimTokenAdded {
            name: name.to_owned(),
            token,
            scim_url: self
                .control_url
                .get()
                .map(|url| format!("{url}/t/{}/scim/v2", live.slug)),
        })
    }

    /// `scim_token_list`.
    pub(super) async fn scim_token_list(&self, live: &TenantLive) -> Result<ScimTokens, WireError> {
        let scope = self
            .directory
            .tenant(live.tenant.id)
            .await
            .map_err(unavailable)?;
        let tokens = scope.scim_tokens().await.map_err(unavailable)?;
        Ok(ScimTokens {
            tokens: tokens
                .into_iter()
                .map(|t| ScimTokenInfo {
                    name: t.name,
                    created_at: t.created_ms / 1000,
                    revoked_at: t.revoked_ms.map(|ms| ms / 1000),
                })
                .collect(),
        })
    }

    /// `scim_token_revoke`: refused by this node from the commit on, by
    /// the others once the change notification reaches them.
    pub(super) async fn scim_token_revoke(
        &self,
        live: &TenantLive,
        caller: &str,
        name: &str,
    ) -> Result<ScimTokenRevoked, WireError> {
        let scope = self
            .directory
            .tenant(live.tenant.id)
            .await
            .map_err(unavailable)?;
        if !scope.revoke_scim_token(name).await.map_err(unavailable)? {
            return Err(refuse(
                ErrorCode::NotFound,
                format!("no active SCIM token {name} in {}", live.slug),
            ));
        }
        scope.commit().await.map_err(unavailable)?;
        self.scim_tokens.invalidate(live.tenant.id);
        self.hot
            .audit(
                live,
                AuditEvent::ScimToken {
                    action: "revoke",
                    name: name.to_owned(),
                    caller: caller.to_owned(),
                },
            )
            .await?;
        Ok(ScimTokenRevoked {
            revoked: name.to_owned(),
        })
    }

    /// The name of the active SCIM token of tenant `tenant_id` that
    /// `presented` is, if any (hashes compared in constant time).
    ///
    /// # Errors
    /// `unavailable` when the directory cannot say.
    pub async fn scim_token_name(
        &self,
        tenant_id: i64,
        presented: &str,
    ) -> Result<Option<String>, WireError> {
        let cached = self
            .scim_tokens
            .entries
            .read()
            .ok()
            .and_then(|e| e.get(&tenant_id).cloned());
        let hashes = match cached {
            Some(hashes) => hashes,
            None => {
                let generation = self.scim_tokens.generation(tenant_id);
                let scope = self
                    .directory
                    .tenant(tenant_id)
                    .await
                    .map_err(unavailable)?;
                let rows = scope.scim_token_hashes().await.map_err(unavailable)?;
                drop(scope);
                let hashes: Hashes = Arc::new(
                    rows.into_iter()
                        .filter_map(|(name, hash)| Some((name, <[u8; 32]>::try_from(hash).ok()?)))
                        .collect(),
                );
                if let Ok(mut entries) = self.scim_tokens.entries.write() {
                    if self.scim_tokens.generation(tenant_id) == generation {
                        entries.insert(tenant_id, Arc::clone(&hashes));
                    }
                }
                hashes
            }
        };
        let hash = token_hash(presented);
        let mut found = None;
        for (name, stored) in hashes.iter() {
            if aws_lc_rs::constant_time::verify_slices_are_equal(stored, &hash).is_ok() {
                found = Some(name.clone());
            }
        }
        Ok(found)
    }

    /// Deactivates a user through `user_deactivate`'s strong path: when it
    /// returns, no node issues for them and their sessions are revoked.
    ///
    /// # Errors
    /// As `user_deactivate`.
    pub async fn scim_deactivate(
        &self,
        live: &TenantLive,
        caller: &str,
        login: &str,
    ) -> Result<(), WireError> {
        self.user_deactivate(live, caller, login).await.map(|_| ())
    }

    /// Drops this node's cached copy of user `user_id` (its next token
    /// reads the directory again).
    pub fn forget_user(&self, live: &TenantLive, user_id: &str) {
        live.users
            .retain(|key, user| user.id != user_id && key != user_id);
    }

    /// Drops this node's cached copies of every user of the tenant (a
    /// group changed: members' `groups` claims).
    pub fn forget_users(&self, live: &TenantLive) {
        live.users.clear();
    }

    /// Records a SCIM change in the tenant's audit chain: who (the token's
    /// name), what (resource, id, operation, changed attribute names).
    ///
    /// # Errors
    /// `internal` when the journal fails.
    pub async fn audit_scim(&self, live: &TenantLive, change: ScimChange) -> Result<(), WireError> {
        self.hot.audit(live, AuditEvent::Scim(change)).await
    }

    /// Audits `changes` in order, durable together (a `/Bulk` request's
    /// creations: one journal sync for the batch, one record each).
    ///
    /// # Errors
    /// `internal` when the journal fails.
    pub async fn audit_scim_many(
        &self,
        live: &TenantLive,
        changes: Vec<ScimChange>,
    ) -> Result<(), WireError> {
        let events = changes.into_iter().map(AuditEvent::Scim).collect();
        self.hot.audit_many(live, events).await
    }

    /// The hash of a `password` a SCIM client sent (writeOnly), made as
    /// `user_password_set` makes it: the tenant's argon2id parameters, on
    /// the hashing pool.
    ///
    /// # Errors
    /// `overloaded` when the pool's queue is full; `unavailable`.
    pub async fn scim_password_hash(
        &self,
        live: &TenantLive,
        password: &sigil_proto::auth::Secret,
    ) -> Result<String, WireError> {
        self.hash_password(live, password).await
    }

    /// Audits a password set over SCIM as `user_password_set`'s is
    /// (`password.set`, the SCIM token's name as caller; never the value).
    ///
    /// # Errors
    /// `internal` when the journal fails.
    pub async fn audit_scim_password(
        &self,
        live: &TenantLive,
        token: &str,
        user_id: &str,
    ) -> Result<(), WireError> {
        self.audit_auth(live, AuthAction::PasswordSet, user_id, None, token)
            .await
    }

    /// The current time, ms since the epoch.
    pub fn now_ms(&self) -> u64 {
        self.hot.clock.now_ms()
    }
}

/// One audited SCIM change (never values: attribute names only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimChange {
    /// `create`, `replace`, `patch`, `delete`.
    pub operation: &'static str,
    /// `User` or `Group`.
    pub resource: &'static str,
    /// The resource's id.
    pub id: String,
    /// The attributes the change touched.
    pub attributes: Vec<String>,
    /// The SCIM token's name.
    pub token: String,
}
