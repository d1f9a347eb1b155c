//! The AWS-LC key backend: private keys in this process, wrapped under the
//! master key at rest.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaEncoding};
use zeroize::Zeroizing;

use crate::{
    Error, GeneratedKey, KeyBackend, KeySpec, Kid, MasterKey, PublicKey, RsaBits, SigningKey,
    StoredKey,
};

/// Backend name in metrics and in stored keys.
pub const BACKEND_NAME: &str = "aws-lc";

enum Private {
    Rsa(RsaKeyPair, &'static dyn RsaEncoding),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private key held by AWS-LC in this process.
pub struct SoftwareKey {
    private: Private,
    public: PublicKey,
    rng: SystemRandom,
}

impl fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

fn ecdsa_alg(spec: KeySpec) -> Option<&'static signature::EcdsaSigningAlgorithm> {
    match spec {
        KeySpec::Es256 => Some(&signature::ECDSA_P256_SHA256_FIXED_SIGNING),
        KeySpec::Es384 => Some(&signature::ECDSA_P384_SHA384_FIXED_SIGNING),
        _ => None,
    }
}

fn rsa_encoding(spec: KeySpec) -> Option<&'static dyn RsaEncoding> {
    match spec {
        KeySpec::Rs256(_) => Some(&signature::RSA_PKCS1_SHA256),
        KeySpec::Ps256(_) => Some(&signature::RSA_PSS_SHA256),
        _ => None,
    }
}

impl SoftwareKey {
    /// Generates a new key of `spec`.
    ///
    /// # Errors
    /// [`Error::Random`] if AWS-LC cannot generate the key.
    pub fn generate(spec: KeySpec) -> Result<SoftwareKey, Error> {
        let private = match spec {
            KeySpec::Rs256(bits) | KeySpec::Ps256(bits) => {
                let size = match bits {
                    RsaBits::B2048 => KeySize::Rsa2048,
                    RsaBits::B3072 => KeySize::Rsa3072,
                };
                let pair = RsaKeyPair::generate(size).map_err(|_| Error::Random)?;
                Private::Rsa(
                    pair,
                    rsa_encoding(spec).ok_or(Error::UnsupportedKeySpec(spec))?,
                )
            }
            KeySpec::Es256 | KeySpec::Es384 => {
                let alg = ecdsa_alg(spec).ok_or(Error::UnsupportedKeySpec(spec))?;
                Private::Ecdsa(EcdsaKeyPair::generate(alg).map_err(|_| Error::Random)?)
            }
            KeySpec::EdDsa => {
                Private::Ed25519(Ed25519KeyPair::generate().map_err(|_| Error::Random)?)
            }
        };
        SoftwareKey::assemble(spec, private)
    }

    /// Loads a key of `spec` from PKCS#8 DER.
    ///
    /// # Errors
    /// [`Error::KeyRejected`] if the DER is not a key of that spec.
    pub fn from_pkcs8(spec: KeySpec, der: &[u8]) -> Result<SoftwareKey, Error> {
        let private = match spec {
            KeySpec::Rs256(_) | KeySpec::Ps256(_) => Private::Rsa(
                RsaKeyPair::from_pkcs8(der).map_err(|_| Error::KeyRejected)?,
                rsa_encoding(spec).ok_or(Error::UnsupportedKeySpec(spec))?,
            ),
            KeySpec::Es256 | KeySpec::Es384 => {
                let alg = ecdsa_alg(spec).ok_or(Error::UnsupportedKeySpec(spec))?;
                Private::Ecdsa(EcdsaKeyPair::from_pkcs8(alg, der).map_err(|_| Error::KeyRejected)?)
            }
            KeySpec::EdDsa => {
                Private::Ed25519(Ed25519KeyPair::from_pkcs8(der).map_err(|_| Error::KeyRejected)?)
            }
        };
        SoftwareKey::assemble(spec, private)
    }

    fn assemble(spec: KeySpec, private: Private) -> Result<SoftwareKey, Error> {
        let public = match &private {
            Private::Rsa(pair, _) => {
                let public = pair.public_key();
                PublicKey::rsa(
                    spec,
                    public.modulus().big_endian_without_leading_zero(),
                    public.exponent().big_endian_without_leading_zero(),
                )?
            }
            Private::Ecdsa(pair) => PublicKey::ec(spec, pair.public_key().as_ref())?,
            Private::Ed25519(pair) => PublicKey::ed25519(pair.public_key().as_ref())?,
        };
        Ok(SoftwareKey {
            private,
            public,
            rng: SystemRandom::new(),
        })
    }

    /// The private key as PKCS#8 DER, in memory that is wiped on drop. Only
    /// ever passed to [`MasterKey::wrap`].
    ///
    /// # Errors
    /// [`Error::KeyRejected`] if AWS-LC cannot encode the key.
    pub fn to_pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let der = match &self.private {
            Private::Rsa(pair, _) => {
                let der: Pkcs8V1Der<'static> = pair.as_der().map_err(|_| Error::KeyRejected)?;
                der.as_ref().to_vec()
            }
            Private::Ecdsa(pair) => pair
                .to_pkcs8v1()
                .map_err(|_| Error::KeyRejected)?
                .as_ref()
                .to_vec(),
            Private::Ed25519(pair) => pair
                .to_pkcs8v1()
                .map_err(|_| Error::KeyRejected)?
                .as_ref()
                .to_vec(),
        };
        Ok(Zeroizing::new(der))
    }
}

impl SigningKey for SoftwareKey {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        match &self.private {
            Private::Rsa(pair, encoding) => {
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(*encoding, &self.rng, message, &mut signature)
                    .map_err(|_| Error::Signing)?;
                Ok(signature)
            }
            Private::Ecdsa(pair) => Ok(pair
                .sign(&self.rng, message)
                .map_err(|_| Error::Signing)?
                .as_ref()
                .to_vec()),
            Private::Ed25519(pair) => Ok(pair
                .try_sign(message)
                .map_err(|_| Error::Signing)?
                .as_ref()
                .to_vec()),
        }
    }

    fn backend(&self) -> &'static str {
        BACKEND_NAME
    }
}

/// The associated data that binds a wrapped key to its tenant and kid.
fn wrap_context(tenant: &str, kid: &Kid) -> Vec<u8> {
    let mut context = Vec::with_capacity(tenant.len() + kid.as_str().len() + 16);
    context.extend_from_slice(b"sigil-key-v1\0");
    context.extend_from_slice(tenant.as_bytes());
    context.push(0);
    context.extend_from_slice(kid.as_str().as_bytes());
    context
}

/// The software backend: generates keys with AWS-LC and stores them as
/// `spec name || 0x00 || AES-256-GCM(PKCS#8)` under the master key.
#[derive(Debug, Clone)]
pub struct SoftwareBackend {
    master: Arc<MasterKey>,
}

impl SoftwareBackend {
    /// A backend wrapping keys under `master`.
    pub fn new(master: Arc<MasterKey>) -> SoftwareBackend {
        SoftwareBackend { master }
    }
}

impl KeyBackend for SoftwareBackend {
    fn name(&self) -> &'static str {
        BACKEND_NAME
    }

    fn supports(&self, _spec: KeySpec) -> bool {
        true
    }

    fn generate(&self, tenant: &str, spec: KeySpec) -> Result<GeneratedKey, Error> {
        let key = SoftwareKey::generate(spec)?;
        let pkcs8 = key.to_pkcs8()?;
        let wrapped = self.master.wrap(&wrap_context(tenant, key.kid()), &pkcs8)?;
        let mut blob = Vec::with_capacity(spec.name().len() + 1 + wrapped.len());
        blob.extend_from_slice(spec.name().as_bytes());
        blob.push(0);
        blob.extend_from_slice(&wrapped);
        Ok(GeneratedKey {
            key: Arc::new(key),
            stored: StoredKey {
                backend: BACKEND_NAME.to_owned(),
                blob,
            },
        })
    }

    fn load(
        &self,
        tenant: &str,
        kid: &Kid,
        stored: &StoredKey,
    ) -> Result<Arc<dyn SigningKey>, Error> {
        if stored.backend != BACKEND_NAME {
            return Err(Error::KeyRejected);
        }
        let split = stored
            .blob
            .iter()
            .position(|&b| b == 0)
            .ok_or(Error::KeyRejected)?;
        let spec: KeySpec = std::str::from_utf8(&stored.blob[..split])
            .map_err(|_| Error::KeyRejected)?
            .parse()
            .map_err(|_| Error::KeyRejected)?;
        let pkcs8 = self
            .master
            .unwrap(&wrap_context(tenant, kid), &stored.blob[split + 1..])?;
        let key = SoftwareKey::from_pkcs8(spec, &pkcs8)?;
        if key.kid() != kid {
            return Err(Error::KeyRejected);
        }
        Ok(Arc::new(key))
    }

    fn rebind(
        &self,
        from: &str,
        to: &str,
        kid: &Kid,
        stored: &StoredKey,
    ) -> Result<StoredKey, Error> {
        // Loads (so the key is whole and belongs to `from`), then wraps the
        // same PKCS#8 under the new binding.
        self.load(from, kid, stored)?;
        let split = stored
            .blob
            .iter()
            .position(|&b| b == 0)
            .ok_or(Error::KeyRejected)?;
        let pkcs8 = self
            .master
            .unwrap(&wrap_context(from, kid), &stored.blob[split + 1..])?;
        let wrapped = self.master.wrap(&wrap_context(to, kid), &pkcs8)?;
        let mut blob = stored.blob[..=split].to_vec();
        blob.extend_from_slice(&wrapped);
        Ok(StoredKey {
            backend: BACKEND_NAME.to_owned(),
            blob,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebound_key_loads_under_its_new_binding_only() {
        let backend = SoftwareBackend::new(Arc::new(
            MasterKey::from_bytes(&[3u8; 32]).expect("32 bytes"),
        ));
        let generated = backend.generate("acme", KeySpec::Es256).expect("generate");
        let kid = generated.key.kid().clone();
        let moved = backend
            .rebind("acme", "tenant#7", &kid, &generated.stored)
            .expect("rebind");
        let key = backend.load("tenant#7", &kid, &moved).expect("new binding");
        assert_eq!(key.kid(), &kid);
        assert!(backend.load("acme", &kid, &moved).is_err());
        assert!(backend.load("tenant#7", &kid, &generated.stored).is_err());
        // Only the binding it has can be moved.
        assert!(backend
            .rebind("globex", "tenant#7", &kid, &generated.stored)
            .is_err());
    }
}
