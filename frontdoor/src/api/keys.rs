//! Tenants' keys on the control plane: loading a ring from the directory,
//! generating what is missing, rotation and emergency revocation, and the
//! documents SPs fetch.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use directory::{Directory, KeyRow, Tenant};
use signer::saml::{metadata_keys, render_metadata, SsoLocations};
use signer::{
    Algorithm, GeneratedKey, KeyBackend, KeyEntry, KeyPolicy, KeyRing, KeyRingView, KeySpec, Kid,
    RsaBits, StoredKey, Timestamp,
};

use crate::http::documents::{openid_configuration, Document, TenantDocuments};

/// A tenant's keys as the hot path reads them.
#[derive(Debug)]
pub struct TenantKeys {
    /// The ring's view at load time.
    pub view: KeyRingView,
    /// Certificates (for SAML) by kid.
    pub certificates: HashMap<String, Vec<u8>>,
    /// JWKS, discovery, metadata.
    pub documents: TenantDocuments,
}

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The directory failed.
    #[error(transparent)]
    Directory(#[from] directory::Error),
    /// The signer failed.
    #[error(transparent)]
    Signer(#[from] signer::Error),
    /// No such key.
    #[error("no key {0}")]
    UnknownKey(String),
    /// Another node is rotating this tenant right now.
    #[error("another node is rotating this tenant's keys")]
    Busy,
    /// Key generation stopped before it finished (the node is stopping).
    #[error("key generation was interrupted")]
    Interrupted,
}

/// The node's key backends. New keys are made by the preferred one (the HSM
/// when `[hsm]` is configured); each stored key is loaded by the backend
/// that made it (its name is stored with it), so a node moved onto an HSM
/// keeps signing with its software keys until they rotate out. A stored key
/// whose backend this node lacks is an error naming it, never a silent
/// substitute; so is a key the preferred backend cannot make, unless
/// `fallback` (software, explicitly allowed) can.
pub struct Backends {
    preferred: Arc<dyn KeyBackend>,
    fallback: Option<Arc<dyn KeyBackend>>,
    loaders: Vec<Arc<dyn KeyBackend>>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("preferred", &self.preferred.name())
            .field("fallback", &self.fallback.as_ref().map(|b| b.name()))
            .field(
                "loaders",
                &self.loaders.iter().map(|b| b.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Backends {
    /// Makes keys with `preferred`, with `fallback` for the specs
    /// `preferred` cannot make (when given), and loads with any of
    /// `preferred`, `fallback` and `others`.
    pub fn new(
        preferred: Arc<dyn KeyBackend>,
        fallback: Option<Arc<dyn KeyBackend>>,
        others: Vec<Arc<dyn KeyBackend>>,
    ) -> Backends {
        let mut loaders = vec![Arc::clone(&preferred)];
        loaders.extend(fallback.iter().cloned());
        loaders.extend(others);
        Backends {
            preferred,
            fallback,
            loaders,
        }
    }

    /// The backend that makes keys of `spec`.
    fn maker(&self, spec: KeySpec) -> Option<&Arc<dyn KeyBackend>> {
        if self.preferred.supports(spec) {
            return Some(&self.preferred);
        }
        self.fallback.as_ref().filter(|b| b.supports(spec))
    }
}

impl KeyBackend for Backends {
    fn name(&self) -> &'static str {
        self.preferred.name()
    }

    fn supports(&self, spec: KeySpec) -> bool {
        self.maker(spec).is_some()
    }

    fn generate(&self, tenant: &str, spec: KeySpec) -> Result<GeneratedKey, signer::Error> {
        match self.maker(spec) {
            Some(backend) => backend.generate(tenant, spec),
            None => Err(signer::Error::Backend {
                backend: self.preferred.name(),
                message: format!(
                    "cannot make {} keys (and no software fallback is allowed: \
                     [hsm] software_fallback)",
                    spec.name()
                ),
            }),
        }
    }

    fn load(
        &self,
        tenant: &str,
        kid: &Kid,
        stored: &StoredKey,
    ) -> Result<Arc<dyn signer::SigningKey>, signer::Error> {
        match self.loaders.iter().find(|b| b.name() == stored.backend) {
            Some(backend) => backend.load(tenant, kid, stored),
            None => Err(signer::Error::Backend {
                backend: self.preferred.name(),
                message: format!(
                    "key {kid} of tenant {tenant} is held by the `{}` backend, \
                     which this node is not configured with",
                    stored.backend
                ),
            }),
        }
    }

    fn rebind(
        &self,
        from: &str,
        to: &str,
        kid: &Kid,
        stored: &StoredKey,
    ) -> Result<StoredKey, signer::Error> {
        match self.loaders.iter().find(|b| b.name() == stored.backend) {
            Some(backend) => backend.rebind(from, to, kid, stored),
            None => Err(signer::Error::Backend {
                backend: self.preferred.name(),
                message: format!("no `{}` backend to re-bind key {kid}", stored.backend),
            }),
        }
    }
}

/// What a tenant's keys are bound to: its id, which never changes (its
/// slug may be renamed). Keys made before were bound to the slug; loading
/// moves them ([`KeyManager::load`]).
pub fn key_binding(tenant: &Tenant) -> String {
    // `#` cannot occur in a slug: no binding is ever mistaken for another.
    format!("tenant#{}", tenant.id)
}

/// The key spec Sigil uses for each algorithm.
pub fn spec_for(algorithm: Algorithm) -> KeySpec {
    match algorithm {
        Algorithm::Rs256 => KeySpec::Rs256(RsaBits::B2048),
        Algorithm::Ps256 => KeySpec::Ps256(RsaBits::B2048),
        Algorithm::Es256 => KeySpec::Es256,
        Algorithm::Es384 => KeySpec::Es384,
        Algorithm::EdDsa => KeySpec::EdDsa,
    }
}

/// The issuer URL of a tenant.
pub fn issuer(public_url: &str, tenant: &Tenant) -> String {
    if tenant.issuer.is_empty() {
        format!("{public_url}/t/{}", tenant.slug)
    } else {
        tenant.issuer.clone()
    }
}

/// Generates, loads and rotates keys with one backend.
#[derive(Clone)]
pub struct KeyManager {
    backend: Arc<dyn KeyBackend>,
    rng: SystemRandom,
    public_url: String,
}

impl std::fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyManager")
            .field("backend", &self.backend.name())
            .finish_non_exhaustive()
    }
}

fn millis(at: Timestamp) -> u64 {
    at.secs().saturating_mul(1000)
}

fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from_secs(ms / 1000)
}

impl KeyManager {
    /// A manager that makes keys with `backend` for issuers under `public_url`.
    pub fn new(backend: Arc<dyn KeyBackend>, public_url: &str) -> KeyManager {
        KeyManager {
            backend,
            rng: SystemRandom::new(),
            public_url: public_url.to_owned(),
        }
    }

    fn policy(tenant: &Tenant) -> Result<KeyPolicy, KeyError> {
        Ok(KeyPolicy::new(
            tenant.key_prepublish_s,
            tenant.key_retire_grace_s,
        )?)
    }

    fn new_row(
        &self,
        tenant: &Tenant,
        spec: KeySpec,
        activates_at: Timestamp,
        now: Timestamp,
    ) -> Result<(KeyRow, Arc<dyn signer::SigningKey>), KeyError> {
        let generated = self.backend.generate(&key_binding(tenant), spec)?;
        let certificate = match spec {
            KeySpec::Ps256(_) => None,
            _ => Some(signer::x509::self_signed_certificate(
                generated.key.as_ref(),
                &issuer(&self.public_url, tenant),
                now,
                3650,
                &self.rng,
            )?),
        };
        let row = KeyRow {
            kid: generated.key.kid().as_str().to_owned(),
            algorithm: spec.algorithm().name().to_owned(),
            key_spec: spec.name().to_owned(),
            backend: generated.stored.backend.clone(),
            blob: generated.stored.blob.clone(),
            certificate,
            activates_at_ms: millis(activates_at),
            retires_at_ms: None,
            revoked_at_ms: None,
            created_at_ms: millis(now),
        };
        Ok((row, generated.key))
    }

    /// Loads the tenant's ring, first generating (and storing) an active
    /// key for every algorithm in `required` that has no usable key.
    ///
    /// # Errors
    /// [`KeyError`] when the directory or backend fails.
    pub async fn load(
        &self,
        directory: &Directory,
        tenant: &Tenant,
        required: &[Algorithm],
        now: Timestamp,
    ) -> Result<TenantKeys, KeyError> {
        let scope = directory.tenant(tenant.id).await?;
        let rows = scope.keys().await?;
        let mut ring = KeyRing::new(tenant.slug.clone(), KeyManager::policy(tenant)?);
        let mut certificates = HashMap::new();
        for row in &rows {
            let kid = Kid::parse(&row.kid)?;
            let stored = StoredKey {
                backend: row.backend.clone(),
                blob: row.blob.clone(),
            };
            let key = match self.backend.load(&key_binding(tenant), &kid, &stored) {
                Ok(key) => key,
                Err(e @ (signer::Error::Unwrap | signer::Error::KeyRejected)) => self
                    .rebind_from_slug(&scope, tenant, &kid, &stored)
                    .await
                    .map_err(|_| e)?,
                Err(e) => return Err(e.into()),
            };
            ring.restore(KeyEntry {
                key,
                added_at: timestamp(row.created_at_ms),
                activates_at: timestamp(row.activates_at_ms),
                revoked_at: row.revoked_at_ms.map(timestamp),
            })?;
            if let Some(certificate) = &row.certificate {
                certificates.insert(row.kid.clone(), certificate.clone());
            }
        }
        let view = ring.view(now);
        let missing: Vec<Algorithm> = required
            .iter()
            .copied()
            .filter(|a| view.active(*a).is_err())
            .collect();
        if !missing.is_empty() && scope.try_rotation_lock().await? {
            // Key generation (RSA: a good part of a second of CPU per key,
            // or a trip to the HSM) runs off the async threads.
            let (maker, owner) = (self.clone(), tenant.clone());
            let mut made = tokio::task::spawn_blocking(move || {
                missing
                    .into_iter()
                    .map(|algorithm| maker.new_row(&owner, spec_for(algorithm), now, now))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|_| KeyError::Interrupted)??;
            // The order a later load reads them in (created_at, kid): every
            // node renders the same JWKS bytes, so the same ETag.
            made.sort_by(|a, b| a.0.kid.cmp(&b.0.kid));
            for (row, key) in made {
                scope.insert_key(&row).await?;
                if let Some(certificate) = &row.certificate {
                    certificates.insert(row.kid.clone(), certificate.clone());
                }
                ring.add_active(key, now)?;
            }
        }
        scope.commit().await?;
        Ok(self.publish(tenant, &ring, certificates, now))
    }

    /// A key made when keys were bound to the tenant's slug: moved to the
    /// tenant's id (stored again in this scope) and loaded. Fails when it
    /// is not bound to the current slug either (e.g. the tenant was
    /// renamed before this migration ran).
    async fn rebind_from_slug(
        &self,
        scope: &directory::TenantScope<'_>,
        tenant: &Tenant,
        kid: &Kid,
        stored: &StoredKey,
    ) -> Result<Arc<dyn signer::SigningKey>, KeyError> {
        let binding = key_binding(tenant);
        let moved = self.backend.rebind(&tenant.slug, &binding, kid, stored)?;
        scope.replace_key_blob(kid.as_str(), &moved.blob).await?;
        tracing::info!(tenant = %tenant.slug, %kid, "key bound to the tenant id instead of its slug");
        Ok(self.backend.load(&binding, kid, &moved)?)
    }

    /// What the hot path and SPs get of `ring` at `now`: its view, the
    /// SAML certificates by kid, and the tenant's JWKS, discovery and SAML
    /// metadata documents.
    pub fn publish(
        &self,
        tenant: &Tenant,
        ring: &KeyRing,
        certificates: HashMap<String, Vec<u8>>,
        now: Timestamp,
    ) -> TenantKeys {
        let view = ring.view(now);
        let issuer = issuer(&self.public_url, tenant);
        let jwks_uri = format!(
            "{}/t/{}/.well-known/jwks.json",
            self.public_url, tenant.slug
        );
        let algorithms: Vec<Algorithm> = view
            .active_keys()
            .iter()
            .map(|k| k.key().algorithm())
            .collect();
        let saml_certificates: Vec<Vec<u8>> = metadata_keys(&view)
            .iter()
            .filter_map(|k| certificates.get(k.kid().as_str()).cloned())
            .collect();
        let sso = SsoLocations {
            redirect: format!("{issuer}/sso/saml"),
            post: format!("{issuer}/sso/saml"),
        };
        let saml_metadata = (!saml_certificates.is_empty())
            .then(|| render_metadata(&issuer, &saml_certificates, &sso).ok())
            .flatten()
            .map(|xml| Document::new(bytes::Bytes::from(xml), "application/samlmetadata+xml"));
        let documents = TenantDocuments {
            jwks: Document::new(view.jwks().clone(), "application/json"),
            discovery: Document::new(
                openid_configuration(&issuer, &jwks_uri, &algorithms),
                "application/json",
            ),
            saml_metadata,
            next_activation: view.next_activation(),
            prepublish_secs: tenant.key_prepublish_s,
        };
        TenantKeys {
            view,
            certificates,
            documents,
        }
    }

    /// Starts a rotation now: a new key per algorithm (or just `only`),
    /// published at once and signing after the tenant's pre-publication
    /// time. Exactly one node does it (the tenant's rotation lock).
    /// Returns (kid, algorithm, activates_at).
    ///
    /// # Errors
    /// [`KeyError::Busy`] when another node holds the lock.
    pub async fn rotate(
        &self,
        directory: &Directory,
        tenant: &Tenant,
        only: Option<Algorithm>,
        now: Timestamp,
    ) -> Result<Vec<(String, Algorithm, Timestamp)>, KeyError> {
        let scope = directory.tenant(tenant.id).await?;
        if !scope.try_rotation_lock().await? {
            return Err(KeyError::Busy);
        }
        let rows = scope.keys().await?;
        let mut algorithms: Vec<Algorithm> = rows
            .iter()
            .filter(|r| r.revoked_at_ms.is_none())
            .filter_map(|r| r.algorithm.parse().ok())
            .collect();
        algorithms.sort_by_key(|a: &Algorithm| a.name());
        algorithms.dedup();
        if let Some(only) = only {
            algorithms.retain(|a| *a == only);
            if algorithms.is_empty() {
                algorithms.push(only);
            }
        }
        let activates_at = now.plus(tenant.key_prepublish_s);
        let mut made = Vec::new();
        for algorithm in algorithms {
            let (row, _) = self.new_row(tenant, spec_for(algorithm), activates_at, now)?;
            scope.insert_key(&row).await?;
            made.push((row.kid, algorithm, activates_at));
        }
        scope.commit().await?;
        Ok(made)
    }

    /// Emergency revocation: the key leaves JWKS and stops signing now; if
    /// it was the active key of its algorithm, a replacement signs at once.
    ///
    /// # Errors
    /// [`KeyError::UnknownKey`] when the tenant has no such key.
    pub async fn revoke(
        &self,
        directory: &Directory,
        tenant: &Tenant,
        kid: &str,
        now: Timestamp,
    ) -> Result<Option<String>, KeyError> {
        let scope = directory.tenant(tenant.id).await?;
        let rows = scope.keys().await?;
        let row = rows
            .iter()
            .find(|r| r.kid == kid)
            .ok_or_else(|| KeyError::UnknownKey(kid.to_owned()))?;
        scope.revoke_key(kid, millis(now)).await?;
        let algorithm: Option<Algorithm> = row.algorithm.parse().ok();
        let mut replacement = None;
        if let Some(algorithm) = algorithm {
            // It signed if it is the newest activated key of its algorithm;
            // its predecessors stay superseded, so a replacement must sign.
            let newest = rows
                .iter()
                .filter(|r| {
                    r.algorithm == row.algorithm
                        && r.revoked_at_ms.is_none()
                        && r.activates_at_ms <= millis(now)
                })
                .max_by_key(|r| (r.activates_at_ms, r.created_at_ms));
            let others_active = newest.is_some_and(|r| r.kid != kid);
            if !others_active {
                let (new, _) = self.new_row(tenant, spec_for(algorithm), now, now)?;
                scope.insert_key(&new).await?;
                replacement = Some(new.kid);
            }
        }
        scope.commit().await?;
        Ok(replacement)
    }

    /// Scheduled rotation: for each algorithm whose newest key activated
    /// more than `rotation - prepublish` ago, start a rotation.
    ///
    /// # Errors
    /// As [`KeyManager::rotate`]; [`KeyError::Busy`] means another node did it.
    pub async fn rotate_due(
        &self,
        directory: &Directory,
        tenant: &Tenant,
        now: Timestamp,
    ) -> Result<usize, KeyError> {
        let rows = directory.tenant(tenant.id).await?.keys().await?;
        let mut newest: HashMap<&str, u64> = HashMap::new();
        for row in rows.iter().filter(|r| r.revoked_at_ms.is_none()) {
            let slot = newest.entry(row.algorithm.as_str()).or_insert(0);
            *slot = (*slot).max(row.activates_at_ms);
        }
        let due_after = tenant
            .key_rotation_s
            .saturating_sub(tenant.key_prepublish_s)
            .saturating_mul(1000);
        let mut made = 0;
        for (algorithm, activated) in newest {
            if millis(now) >= activated.saturating_add(due_after) {
                if let Ok(algorithm) = algorithm.parse() {
                    made += self
                        .rotate(directory, tenant, Some(algorithm), now)
                        .await?
                        .len();
                }
            }
        }
        Ok(made)
    }
}
