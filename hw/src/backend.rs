//! PKCS#11 keys behind the signer's backend traits.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use aws_lc_rs::digest;
use cryptoki::error::RvError;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use signer::{GeneratedKey, KeyBackend, KeySpec, Kid, PublicKey, RsaBits, SigningKey, StoredKey};

use crate::{Hsm, HsmError};

/// Backend name in metrics and in stored keys.
pub const BACKEND_NAME: &str = "pkcs11";

/// DER of the curve OIDs for CKA_EC_PARAMS.
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// The stored form: a reference, never a secret.
const BLOB_VERSION: &str = "pkcs11-v1";

fn label(tenant: &str, kid: &Kid) -> String {
    format!("sigil/{tenant}/{kid}")
}

fn pkcs11(operation: &'static str) -> impl Fn(cryptoki::error::Error) -> HsmError {
    move |e| HsmError::Pkcs11 {
        operation,
        message: crate::error::describe(&e),
    }
}

/// The mechanisms a spec needs: (key generation, signing).
fn mechanisms(spec: KeySpec) -> (MechanismType, MechanismType) {
    match spec {
        KeySpec::Rs256(_) => (
            MechanismType::RSA_PKCS_KEY_PAIR_GEN,
            MechanismType::SHA256_RSA_PKCS,
        ),
        KeySpec::Ps256(_) => (
            MechanismType::RSA_PKCS_KEY_PAIR_GEN,
            MechanismType::SHA256_RSA_PKCS_PSS,
        ),
        KeySpec::Es256 | KeySpec::Es384 => (MechanismType::ECC_KEY_PAIR_GEN, MechanismType::ECDSA),
        KeySpec::EdDsa => (
            MechanismType::ECC_EDWARDS_KEY_PAIR_GEN,
            MechanismType::EDDSA,
        ),
    }
}

/// Unwraps CKA_EC_POINT: a DER OCTET STRING around the point, or (some
/// tokens) the bare point. `raw_len` is the bare point's length.
fn ec_point(bytes: &[u8], raw_len: usize) -> Option<&[u8]> {
    if bytes.len() == raw_len {
        return Some(bytes);
    }
    match bytes {
        [0x04, len, rest @ ..] if usize::from(*len) == raw_len && rest.len() == raw_len => {
            Some(rest)
        }
        [0x04, 0x81, len, rest @ ..] if usize::from(*len) == raw_len && rest.len() == raw_len => {
            Some(rest)
        }
        _ => None,
    }
}

fn read_public(
    session: &Session,
    spec: KeySpec,
    handle: ObjectHandle,
) -> Result<PublicKey, signer::Error> {
    let read = |types: &[AttributeType]| {
        session
            .get_attributes(handle, types)
            .map_err(pkcs11("read public key"))
            .map_err(signer::Error::from)
    };
    match spec {
        KeySpec::Rs256(_) | KeySpec::Ps256(_) => {
            let (mut modulus, mut exponent) = (None, None);
            for attribute in read(&[AttributeType::Modulus, AttributeType::PublicExponent])? {
                match attribute {
                    Attribute::Modulus(m) => modulus = Some(m),
                    Attribute::PublicExponent(e) => exponent = Some(e),
                    _ => {}
                }
            }
            let (Some(modulus), Some(exponent)) = (modulus, exponent) else {
                return Err(signer::Error::KeyRejected);
            };
            PublicKey::rsa(spec, &modulus, &exponent)
        }
        KeySpec::Es256 | KeySpec::Es384 | KeySpec::EdDsa => {
            let raw_len = match spec {
                KeySpec::Es256 => 65,
                KeySpec::Es384 => 97,
                _ => 32,
            };
            let point = read(&[AttributeType::EcPoint])?
                .into_iter()
                .find_map(|a| match a {
                    Attribute::EcPoint(p) => Some(p),
                    _ => None,
                })
                .ok_or(signer::Error::KeyRejected)?;
            let point = ec_point(&point, raw_len).ok_or(signer::Error::KeyRejected)?;
            if spec == KeySpec::EdDsa {
                PublicKey::ed25519(point)
            } else {
                PublicKey::ec(spec, point)
            }
        }
    }
}

/// A private key inside the HSM.
pub struct HsmKey {
    hsm: Arc<Hsm>,
    /// Object handles are not stable across logins (an HSM restart or a
    /// re-login may renumber objects): the key finds itself again by
    /// CKA_ID and CKA_LABEL when its handle goes stale.
    handle: RwLock<ObjectHandle>,
    label: String,
    public: PublicKey,
}

impl HsmKey {
    fn sign_with(
        &self,
        session: &Session,
        handle: ObjectHandle,
        message: &[u8],
    ) -> cryptoki::error::Result<Vec<u8>> {
        match self.public.spec() {
            // CKM_ECDSA signs a digest made on the host and returns r || s,
            // the form JWS and XML-DSig want.
            KeySpec::Es256 => session.sign(
                &Mechanism::Ecdsa,
                handle,
                digest::digest(&digest::SHA256, message).as_ref(),
            ),
            KeySpec::Es384 => session.sign(
                &Mechanism::Ecdsa,
                handle,
                digest::digest(&digest::SHA384, message).as_ref(),
            ),
            KeySpec::Rs256(_) => session.sign(&Mechanism::Sha256RsaPkcs, handle, message),
            KeySpec::Ps256(_) => session.sign(
                &Mechanism::Sha256RsaPkcsPss(PkcsPssParams {
                    hash_alg: MechanismType::SHA256,
                    mgf: PkcsMgfType::MGF1_SHA256,
                    s_len: 32.into(),
                }),
                handle,
                message,
            ),
            KeySpec::EdDsa => session.sign(
                &Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                handle,
                message,
            ),
        }
    }
}

impl fmt::Debug for HsmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HsmKey")
            .field("token", &self.hsm.token_label())
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl SigningKey for HsmKey {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, signer::Error> {
        let handle = *self
            .handle
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let signature = self.hsm.with_session("sign", |session| {
            match self.sign_with(session, handle, message) {
                Err(cryptoki::error::Error::Pkcs11(
                    RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid,
                    _,
                )) => {
                    let found = find_object(
                        session,
                        ObjectClass::PRIVATE_KEY,
                        self.kid().as_str().as_bytes(),
                        &self.label,
                    )?;
                    let Some(&fresh) = found.first() else {
                        return Err(cryptoki::error::Error::Pkcs11(
                            RvError::KeyHandleInvalid,
                            cryptoki::context::Function::FindObjects,
                        ));
                    };
                    *self
                        .handle
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
                    self.sign_with(session, fresh, message)
                }
                other => other,
            }
        })?;
        self.hsm
            .counters()
            .signatures
            .fetch_add(1, Ordering::Relaxed);
        Ok(signature)
    }

    fn backend(&self) -> &'static str {
        BACKEND_NAME
    }
}

/// The PKCS#11 key backend: generates keys inside the token and loads them
/// by reference.
#[derive(Debug, Clone)]
pub struct Pkcs11Backend {
    hsm: Arc<Hsm>,
}

impl Pkcs11Backend {
    /// A backend on an open token.
    pub fn new(hsm: Arc<Hsm>) -> Pkcs11Backend {
        Pkcs11Backend { hsm }
    }

    /// The token connection (counters, fault drills).
    pub fn hsm(&self) -> &Arc<Hsm> {
        &self.hsm
    }

    fn templates(spec: KeySpec, id: &[u8], label: &str) -> (Vec<Attribute>, Vec<Attribute>) {
        let mut public = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Id(id.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        match spec {
            KeySpec::Rs256(bits) | KeySpec::Ps256(bits) => {
                let bits = match bits {
                    RsaBits::B2048 => 2048u64,
                    RsaBits::B3072 => 3072,
                };
                public.push(Attribute::ModulusBits(bits.into()));
                public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
            }
            KeySpec::Es256 => public.push(Attribute::EcParams(P256_OID.to_vec())),
            KeySpec::Es384 => public.push(Attribute::EcParams(P384_OID.to_vec())),
            KeySpec::EdDsa => public.push(Attribute::EcParams(ED25519_OID.to_vec())),
        }
        let private = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Id(id.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        (public, private)
    }
}

fn find_object(
    session: &Session,
    class: ObjectClass,
    id: &[u8],
    label: &str,
) -> cryptoki::error::Result<Vec<ObjectHandle>> {
    session.find_objects(&[
        Attribute::Class(class),
        Attribute::Id(id.to_vec()),
        Attribute::Label(label.as_bytes().to_vec()),
    ])
}

impl KeyBackend for Pkcs11Backend {
    fn name(&self) -> &'static str {
        BACKEND_NAME
    }

    fn supports(&self, spec: KeySpec) -> bool {
        let (generate, sign) = mechanisms(spec);
        self.hsm.offers(generate) && self.hsm.offers(sign)
    }

    fn generate(&self, tenant: &str, spec: KeySpec) -> Result<GeneratedKey, signer::Error> {
        if !self.supports(spec) {
            return Err(signer::Error::UnsupportedKeySpec(spec));
        }
        let _one_at_a_time = self.hsm.control();
        let generation = match mechanisms(spec).0 {
            MechanismType::RSA_PKCS_KEY_PAIR_GEN => Mechanism::RsaPkcsKeyPairGen,
            MechanismType::ECC_EDWARDS_KEY_PAIR_GEN => Mechanism::EccEdwardsKeyPairGen,
            _ => Mechanism::EccKeyPairGen,
        };
        // The kid is the thumbprint of the public key, known only after
        // generation: generate under a provisional id, then relabel.
        let mut provisional = [0u8; 16];
        aws_lc_rs::rand::SecureRandom::fill(
            &aws_lc_rs::rand::SystemRandom::new(),
            &mut provisional,
        )
        .map_err(|_| signer::Error::Random)?;
        let provisional_label = format!("sigil/{tenant}/generating");
        let (public_template, private_template) =
            Pkcs11Backend::templates(spec, &provisional, &provisional_label);
        let (public_handle, private_handle, public) =
            self.hsm.with_session("generate key pair", |session| {
                let (public_handle, private_handle) =
                    session.generate_key_pair(&generation, &public_template, &private_template)?;
                Ok((
                    public_handle,
                    private_handle,
                    read_public(session, spec, public_handle),
                ))
            })?;
        let public = public?;
        let kid = public.kid().clone();
        let final_label = label(tenant, &kid);
        self.hsm.with_session("label key pair", |session| {
            for handle in [public_handle, private_handle] {
                session.update_attributes(
                    handle,
                    &[
                        Attribute::Id(kid.as_str().as_bytes().to_vec()),
                        Attribute::Label(final_label.as_bytes().to_vec()),
                    ],
                )?;
            }
            Ok(())
        })?;
        let blob = format!(
            "{BLOB_VERSION}\0{}\0{}\0{final_label}",
            spec.name(),
            self.hsm.token_label()
        );
        Ok(GeneratedKey {
            key: Arc::new(HsmKey {
                hsm: Arc::clone(&self.hsm),
                handle: RwLock::new(private_handle),
                label: final_label,
                public,
            }),
            stored: StoredKey {
                backend: BACKEND_NAME.to_owned(),
                blob: blob.into_bytes(),
            },
        })
    }

    fn load(
        &self,
        tenant: &str,
        kid: &Kid,
        stored: &StoredKey,
    ) -> Result<Arc<dyn SigningKey>, signer::Error> {
        if stored.backend != BACKEND_NAME {
            return Err(signer::Error::KeyRejected);
        }
        let text = std::str::from_utf8(&stored.blob).map_err(|_| signer::Error::KeyRejected)?;
        let [version, spec, token, object_label] = text.split('\0').collect::<Vec<_>>()[..] else {
            return Err(signer::Error::KeyRejected);
        };
        let expected = label(tenant, kid);
        if version != BLOB_VERSION || token != self.hsm.token_label() || object_label != expected {
            return Err(signer::Error::KeyRejected);
        }
        let spec: KeySpec = spec.parse().map_err(|_| signer::Error::KeyRejected)?;
        let id = kid.as_str().as_bytes();
        let (private, public) = self.hsm.with_session("find key", |session| {
            let private = find_object(session, ObjectClass::PRIVATE_KEY, id, &expected)?;
            let public = find_object(session, ObjectClass::PUBLIC_KEY, id, &expected)?;
            Ok((
                private,
                public.first().map(|&h| read_public(session, spec, h)),
            ))
        })?;
        let ([handle], Some(public)) = (private.as_slice(), public) else {
            return Err(signer::Error::KeyRejected);
        };
        let public = public?;
        if public.kid() != kid {
            return Err(signer::Error::KeyRejected);
        }
        Ok(Arc::new(HsmKey {
            hsm: Arc::clone(&self.hsm),
            handle: RwLock::new(*handle),
            label: expected,
            public,
        }))
    }

    fn rebind(
        &self,
        from: &str,
        to: &str,
        kid: &Kid,
        stored: &StoredKey,
    ) -> Result<StoredKey, signer::Error> {
        // The key must load under `from`; then both halves are relabelled
        // in the token and the reference names the new label.
        self.load(from, kid, stored)?;
        let text = std::str::from_utf8(&stored.blob).map_err(|_| signer::Error::KeyRejected)?;
        let [version, spec, token, _] = text.split('\0').collect::<Vec<_>>()[..] else {
            return Err(signer::Error::KeyRejected);
        };
        let (old_label, new_label) = (label(from, kid), label(to, kid));
        let id = kid.as_str().as_bytes();
        let _one_at_a_time = self.hsm.control();
        self.hsm.with_session("relabel key pair", |session| {
            for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
                for handle in find_object(session, class, id, &old_label)? {
                    session.update_attributes(
                        handle,
                        &[Attribute::Label(new_label.as_bytes().to_vec())],
                    )?;
                }
            }
            Ok(())
        })?;
        Ok(StoredKey {
            backend: BACKEND_NAME.to_owned(),
            blob: format!("{version}\0{spec}\0{token}\0{new_label}").into_bytes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ec_point;

    #[test]
    fn ec_points_unwrap_from_der_or_stay_bare() {
        let mut bare = vec![0x04];
        bare.extend([7u8; 64]);
        assert_eq!(ec_point(&bare, 65), Some(&bare[..]));
        let mut wrapped = vec![0x04, 65];
        wrapped.extend(&bare);
        assert_eq!(ec_point(&wrapped, 65), Some(&bare[..]));
        let mut long = vec![0x04, 0x81, 97, 0x04];
        long.extend([9u8; 96]);
        assert_eq!(ec_point(&long, 97).map(<[u8]>::len), Some(97));
        assert_eq!(ec_point(&[0x04, 3, 1, 2, 3], 32), None);
    }
}
