//! Keys: the backend traits every key store implements, public keys, key ids.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::{self, ParsedPublicKey, UnparsedPublicKey};
use serde::Serialize;

use crate::{b64, Algorithm, Error, KeySpec};

/// A key id: the RFC 7638 JWK thumbprint (SHA-256, base64url) of the public
/// key. Constructed only from a public key, or parsed from stored text of
/// the right shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kid(String);

impl Kid {
    /// Accepts a stored key id: 43 base64url characters (a SHA-256 digest).
    ///
    /// # Errors
    /// [`Error::UnknownKey`] if the text cannot be a thumbprint.
    pub fn parse(text: &str) -> Result<Kid, Error> {
        let ok = text.len() == 43
            && text
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        if ok {
            Ok(Kid(text.to_owned()))
        } else {
            Err(Error::UnknownKey(text.chars().take(64).collect()))
        }
    }

    /// The key id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The public parameters of a key, as JWK members (RFC 7518 §6, RFC 8037).
/// Values are base64url without padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwkParams {
    /// `kty: RSA`.
    Rsa {
        /// Modulus.
        n: String,
        /// Public exponent.
        e: String,
    },
    /// `kty: EC`.
    Ec {
        /// `P-256` or `P-384`.
        crv: &'static str,
        /// X coordinate.
        x: String,
        /// Y coordinate.
        y: String,
    },
    /// `kty: OKP`, `crv: Ed25519`.
    Okp {
        /// The public key.
        x: String,
    },
}

/// A public key: its JWK parameters, its X.509 SubjectPublicKeyInfo DER (for
/// certificates and SAML metadata), and its key id.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    spec: KeySpec,
    params: JwkParams,
    spki_der: Vec<u8>,
    kid: Kid,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("spec", &self.spec)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// Builds the public key of an RSA key from its big-endian modulus and
    /// exponent (leading zeros allowed).
    ///
    /// # Errors
    /// [`Error::KeyRejected`] if the parameters are not a valid RSA public
    /// key of the size the spec names.
    pub fn rsa(spec: KeySpec, modulus: &[u8], exponent: &[u8]) -> Result<PublicKey, Error> {
        let (KeySpec::Rs256(bits) | KeySpec::Ps256(bits)) = spec else {
            return Err(Error::UnsupportedKeySpec(spec));
        };
        let modulus = strip_leading_zeros(modulus);
        let exponent = strip_leading_zeros(exponent);
        if modulus.len() * 8 != bits.bits() as usize {
            return Err(Error::KeyRejected);
        }
        let components = PublicKeyComponents {
            n: modulus,
            e: exponent,
        };
        let spki: PublicKeyX509Der<'static> =
            components.as_der().map_err(|_| Error::KeyRejected)?;
        Ok(PublicKey::assemble(
            spec,
            JwkParams::Rsa {
                n: b64::encode(modulus),
                e: b64::encode(exponent),
            },
            spki.as_ref().to_vec(),
        ))
    }

    /// Builds the public key of an EC key (ES256, ES384) from its
    /// uncompressed SEC1 point `04 || x || y`.
    ///
    /// # Errors
    /// [`Error::KeyRejected`] if the point is not on the spec's curve.
    pub fn ec(spec: KeySpec, uncompressed_point: &[u8]) -> Result<PublicKey, Error> {
        let (crv, coordinate_len, alg): (_, _, &'static dyn signature::VerificationAlgorithm) =
            match spec {
                KeySpec::Es256 => ("P-256", 32, &signature::ECDSA_P256_SHA256_FIXED),
                KeySpec::Es384 => ("P-384", 48, &signature::ECDSA_P384_SHA384_FIXED),
                _ => return Err(Error::UnsupportedKeySpec(spec)),
            };
        if uncompressed_point.len() != 1 + 2 * coordinate_len || uncompressed_point[0] != 4 {
            return Err(Error::KeyRejected);
        }
        let parsed =
            ParsedPublicKey::new(alg, uncompressed_point).map_err(|_| Error::KeyRejected)?;
        let spki: PublicKeyX509Der<'static> = parsed.as_der().map_err(|_| Error::KeyRejected)?;
        let (x, y) = uncompressed_point[1..].split_at(coordinate_len);
        Ok(PublicKey::assemble(
            spec,
            JwkParams::Ec {
                crv,
                x: b64::encode(x),
                y: b64::encode(y),
            },
            spki.as_ref().to_vec(),
        ))
    }

    /// Builds the public key of an Ed25519 key from its 32 bytes.
    ///
    /// # Errors
    /// [`Error::KeyRejected`] if the bytes are not an Ed25519 public key.
    pub fn ed25519(public: &[u8]) -> Result<PublicKey, Error> {
        if public.len() != 32 {
            return Err(Error::KeyRejected);
        }
        let parsed =
            ParsedPublicKey::new(&signature::ED25519, public).map_err(|_| Error::KeyRejected)?;
        let spki: PublicKeyX509Der<'static> = parsed.as_der().map_err(|_| Error::KeyRejected)?;
        Ok(PublicKey::assemble(
            KeySpec::EdDsa,
            JwkParams::Okp {
                x: b64::encode(public),
            },
            spki.as_ref().to_vec(),
        ))
    }

    fn assemble(spec: KeySpec, params: JwkParams, spki_der: Vec<u8>) -> PublicKey {
        let kid = Kid(thumbprint(&params));
        PublicKey {
            spec,
            params,
            spki_der,
            kid,
        }
    }

    /// The key spec (algorithm and size).
    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.spec.algorithm()
    }

    /// The RFC 7638 thumbprint, used as `kid`.
    pub fn kid(&self) -> &Kid {
        &self.kid
    }

    /// The JWK members that describe the key.
    pub fn params(&self) -> &JwkParams {
        &self.params
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Renders this key as a public JWK (`kty`, `use: sig`, `alg`, `kid` and
    /// the key's parameters) in JSON.
    pub fn to_jwk_json(&self) -> String {
        #[derive(Serialize)]
        struct Jwk<'a> {
            kty: &'static str,
            #[serde(rename = "use")]
            usage: &'static str,
            alg: &'static str,
            kid: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            crv: Option<&'static str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            n: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            e: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            x: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            y: Option<&'a str>,
        }
        let mut jwk = Jwk {
            kty: "",
            usage: "sig",
            alg: self.algorithm().name(),
            kid: self.kid.as_str(),
            crv: None,
            n: None,
            e: None,
            x: None,
            y: None,
        };
        match &self.params {
            JwkParams::Rsa { n, e } => {
                jwk.kty = "RSA";
                jwk.n = Some(n);
                jwk.e = Some(e);
            }
            JwkParams::Ec { crv, x, y } => {
                jwk.kty = "EC";
                jwk.crv = Some(crv);
                jwk.x = Some(x);
                jwk.y = Some(y);
            }
            JwkParams::Okp { x } => {
                jwk.kty = "OKP";
                jwk.crv = Some("Ed25519");
                jwk.x = Some(x);
            }
        }
        // Serializing a struct of strings cannot fail.
        serde_json::to_string(&jwk).unwrap_or_default()
    }

    /// Checks a signature made by this key's algorithm (the JWS form: `r||s`
    /// for ECDSA). Returns `false` for any mismatch; never says why.
    pub fn verify(&self, message: &[u8], signature_bytes: &[u8]) -> bool {
        let alg: &'static dyn signature::VerificationAlgorithm = match self.spec {
            KeySpec::Rs256(_) => &signature::RSA_PKCS1_2048_8192_SHA256,
            KeySpec::Ps256(_) => &signature::RSA_PSS_2048_8192_SHA256,
            KeySpec::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
            KeySpec::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
            KeySpec::EdDsa => &signature::ED25519,
        };
        // Every algorithm above accepts an X.509 SubjectPublicKeyInfo.
        UnparsedPublicKey::new(alg, &self.spki_der)
            .verify(message, signature_bytes)
            .is_ok()
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// RFC 7638: SHA-256 over the required members in lexicographic order, no
/// white space. The member values are base64url, which needs no escaping.
fn thumbprint(params: &JwkParams) -> String {
    let canonical = match params {
        JwkParams::Rsa { n, e } => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
        JwkParams::Ec { crv, x, y } => {
            format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#)
        }
        JwkParams::Okp { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
    };
    b64::encode(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
}

/// A private key that can sign, wherever it lives (AWS-LC in this process,
/// an HSM through PKCS#11, ...). Implementations are cheap to share behind an
/// `Arc` and safe to call from many threads.
pub trait SigningKey: Send + Sync + fmt::Debug {
    /// The public half, with the key id and the algorithm.
    fn public_key(&self) -> &PublicKey;

    /// Signs `message` with the key's algorithm and returns the signature in
    /// JWS form (`r || s` for ECDSA, which XML-DSig uses too).
    ///
    /// # Errors
    /// [`Error::Signing`] or [`Error::Backend`] when the backend fails; the
    /// error never carries key material.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error>;

    /// The backend's name for metrics and logs (`aws-lc`, `pkcs11`).
    fn backend(&self) -> &'static str;

    /// The algorithm this key signs with.
    fn algorithm(&self) -> Algorithm {
        self.public_key().algorithm()
    }

    /// The key id (RFC 7638 thumbprint).
    fn kid(&self) -> &Kid {
        self.public_key().kid()
    }
}

/// What a backend hands back to be stored in the directory for a key: the
/// backend's name and an opaque blob (a wrapped private key, or a reference
/// to a key inside an HSM). The blob never holds a private key in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Which backend can load this blob.
    pub backend: String,
    /// Backend-specific bytes.
    pub blob: Vec<u8>,
}

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKey")
            .field("backend", &self.backend)
            .field("blob_len", &self.blob.len())
            .finish()
    }
}

/// A freshly generated key and the form in which it is stored.
#[derive(Debug)]
pub struct GeneratedKey {
    /// The key, ready to sign.
    pub key: Arc<dyn SigningKey>,
    /// What to persist so that [`KeyBackend::load`] can bring it back.
    pub stored: StoredKey,
}

/// A place keys are generated in and loaded from. Generation is a control
/// path (one key at a time); signing goes through the returned
/// [`SigningKey`].
pub trait KeyBackend: Send + Sync {
    /// The backend's name, as in [`StoredKey::backend`].
    fn name(&self) -> &'static str;

    /// Whether this backend can generate and sign with keys of `spec`.
    fn supports(&self, spec: KeySpec) -> bool;

    /// Generates a new key for `tenant`: the key is bound to that string
    /// (software keys through the wrapping's associated data, HSM keys
    /// through their label), so pass something that never changes for
    /// the tenant (its id, not its renamable slug).
    ///
    /// # Errors
    /// [`Error::UnsupportedKeySpec`] if the backend cannot make such keys;
    /// [`Error::Backend`] or [`Error::Random`] when generation fails.
    fn generate(&self, tenant: &str, spec: KeySpec) -> Result<GeneratedKey, Error>;

    /// Loads a key stored by [`KeyBackend::generate`] for `tenant` under
    /// `kid`.
    ///
    /// # Errors
    /// [`Error::Unwrap`] or [`Error::KeyRejected`] if the stored form does
    /// not belong to this tenant and kid or does not decode;
    /// [`Error::Backend`] when the backend fails.
    fn load(
        &self,
        tenant: &str,
        kid: &Kid,
        stored: &StoredKey,
    ) -> Result<Arc<dyn SigningKey>, Error>;

    /// Moves a stored key from binding `from` to binding `to` (e.g. from
    /// a tenant's slug to its id) and returns what to store instead; the
    /// old form no longer loads under `to`, the new one does.
    ///
    /// # Errors
    /// As [`KeyBackend::load`] when the key does not belong to `from`;
    /// [`Error::Backend`] when the backend cannot move keys.
    fn rebind(
        &self,
        from: &str,
        to: &str,
        kid: &Kid,
        stored: &StoredKey,
    ) -> Result<StoredKey, Error>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1 example key and thumbprint.
    #[test]
    fn rfc7638_example_thumbprint() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let params = JwkParams::Rsa {
            n: n.to_owned(),
            e: "AQAB".to_owned(),
        };
        assert_eq!(
            thumbprint(&params),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn kid_parse_rejects_wrong_shapes() {
        assert!(Kid::parse("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs").is_ok());
        for bad in [
            "",
            "short",
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9X/",
            "../../etc/passwd",
        ] {
            assert!(Kid::parse(bad).is_err(), "{bad}");
        }
    }
}
