//! Compact JWS (RFC 7515) as the OAuth endpoints read them: splitting a
//! token into its header, claims and signature, and an app's registered
//! JWKS (RFC 7517) whose keys check its client assertions. Plain functions;
//! the signatures are checked by aws-lc-rs.

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};
use signer::b64;

/// Longest token or assertion read (the form itself is at most 16 KiB).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Most keys in a registered JWKS.
pub const MAX_KEYS: usize = 16;

/// The JWS algorithms accepted for client assertions, by their JOSE names.
pub const ASSERTION_ALGORITHMS: [&str; 5] = ["RS256", "PS256", "ES256", "ES384", "EdDSA"];

/// A JWS algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsAlg {
    /// RSASSA-PKCS1-v1_5 SHA-256.
    Rs256,
    /// RSASSA-PSS SHA-256.
    Ps256,
    /// ECDSA P-256 SHA-256.
    Es256,
    /// ECDSA P-384 SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
}

impl JwsAlg {
    /// The algorithm named `name` (`none` and HMAC are never accepted).
    pub fn from_name(name: &str) -> Option<JwsAlg> {
        Some(match name {
            "RS256" => JwsAlg::Rs256,
            "PS256" => JwsAlg::Ps256,
            "ES256" => JwsAlg::Es256,
            "ES384" => JwsAlg::Es384,
            "EdDSA" => JwsAlg::EdDsa,
            _ => return None,
        })
    }
}

/// A compact JWS, split and decoded; its signature not yet checked.
#[derive(Debug)]
pub struct Compact<'a> {
    /// `alg`.
    pub alg: JwsAlg,
    /// `kid`, if any.
    pub kid: Option<String>,
    /// `typ`, if any.
    pub typ: Option<String>,
    /// The claims.
    pub claims: Map<String, Value>,
    /// `header.payload`, what the signature covers.
    pub signing_input: &'a str,
    /// The signature bytes.
    pub signature: Vec<u8>,
}

/// Splits and decodes `token`; `None` for anything that is not a compact
/// JWS with a known algorithm and JSON-object header and claims.
pub fn split(token: &str) -> Option<Compact<'_>> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Map<String, Value> = serde_json::from_slice(&b64::decode(header)?).ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&b64::decode(payload)?).ok()?;
    // Critical extensions are not understood here: refuse (RFC 7515 §4.1.11).
    if header.contains_key("crit") {
        return None;
    }
    let alg = JwsAlg::from_name(header.get("alg")?.as_str()?)?;
    let text = |name: &str| header.get(name).and_then(Value::as_str).map(str::to_owned);
    Some(Compact {
        alg,
        kid: text("kid"),
        typ: text("typ"),
        claims,
        signing_input: &token[..token.len() - signature.len() - 1],
        signature: b64::decode(signature)?,
    })
}

/// Why a JWKS cannot be registered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwksError {
    /// Not `{"keys": [...]}` with 1 to [`MAX_KEYS`] keys.
    #[error("a JWKS is a JSON object {{\"keys\": [...]}} with 1 to {MAX_KEYS} keys")]
    Shape,
    /// One key cannot be used.
    #[error("key {index}: {why}")]
    Key {
        /// Its place in `keys`.
        index: usize,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// A public key of a client.
#[derive(Debug, Clone)]
enum Material {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

#[derive(Debug, Clone)]
struct ClientKey {
    kid: Option<String>,
    alg: Option<JwsAlg>,
    material: Material,
}

impl ClientKey {
    fn parse(jwk: &Value) -> Result<ClientKey, &'static str> {
        let jwk = jwk.as_object().ok_or("not a JSON object")?;
        let text = |name: &str| jwk.get(name).and_then(Value::as_str);
        let bytes = |name: &str| {
            text(name)
                .and_then(b64::decode)
                .ok_or("missing or bad member")
        };
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            if jwk.contains_key(private) {
                return Err("holds private key material: register the public key only");
            }
        }
        if text("use").is_some_and(|u| u != "sig") {
            return Err("`use` is not `sig`");
        }
        let alg = match text("alg") {
            None => None,
            Some(name) => Some(JwsAlg::from_name(name).ok_or("unsupported `alg`")?),
        };
        let material = match (text("kty"), text("crv")) {
            (Some("RSA"), _) => {
                let n = bytes("n")?;
                let bits = n.iter().skip_while(|&&b| b == 0).count() * 8;
                if !(2048..=8192).contains(&bits) {
                    return Err("RSA modulus outside 2048-8192 bits");
                }
                Material::Rsa { n, e: bytes("e")? }
            }
            (Some("EC"), Some(crv @ ("P-256" | "P-384"))) => {
                let (x, y) = (bytes("x")?, bytes("y")?);
                let size = if crv == "P-256" { 32 } else { 48 };
                if x.len() != size || y.len() != size {
                    return Err("EC coordinates of the wrong size");
                }
                let mut point = vec![4u8];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                if crv == "P-256" {
                    Material::P256(point)
                } else {
                    Material::P384(point)
                }
            }
            (Some("OKP"), Some("Ed25519")) => {
                let x = bytes("x")?;
                if x.len() != 32 {
                    return Err("Ed25519 key of the wrong size");
                }
                Material::Ed25519(x)
            }
            _ => return Err("unsupported `kty`/`crv` (RSA, EC P-256/P-384, OKP Ed25519)"),
        };
        let key = ClientKey {
            kid: text("kid").map(str::to_owned),
            alg,
            material,
        };
        if let Some(alg) = alg {
            if !key.fits(alg) {
                return Err("`alg` does not fit the key type");
            }
        }
        Ok(key)
    }

    fn fits(&self, alg: JwsAlg) -> bool {
        matches!(
            (&self.material, alg),
            (Material::Rsa { .. }, JwsAlg::Rs256 | JwsAlg::Ps256)
                | (Material::P256(_), JwsAlg::Es256)
                | (Material::P384(_), JwsAlg::Es384)
                | (Material::Ed25519(_), JwsAlg::EdDsa)
        )
    }

    fn verify(&self, alg: JwsAlg, message: &[u8], sig: &[u8]) -> bool {
        if !self.fits(alg) || self.alg.is_some_and(|a| a != alg) {
            return false;
        }
        match &self.material {
            Material::Rsa { n, e } => {
                let params = if alg == JwsAlg::Rs256 {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                } else {
                    &signature::RSA_PSS_2048_8192_SHA256
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }
            Material::P256(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            Material::P384(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            Material::Ed25519(x) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, sig)
                .is_ok(),
        }
    }
}

/// An app's registered JWKS, parsed.
#[derive(Debug, Clone)]
pub struct ClientJwks {
    keys: Vec<ClientKey>,
    source: String,
}

impl PartialEq for ClientJwks {
    fn eq(&self, other: &ClientJwks) -> bool {
        self.source == other.source
    }
}

impl ClientJwks {
    /// Parses a JWKS; every key must be usable (what registration checks).
    ///
    /// # Errors
    /// [`JwksError`] naming the first unusable key.
    pub fn parse(value: &Value) -> Result<ClientJwks, JwksError> {
        let keys = value
            .as_object()
            .and_then(|o| o.get("keys"))
            .and_then(Value::as_array)
            .filter(|keys| (1..=MAX_KEYS).contains(&keys.len()))
            .ok_or(JwksError::Shape)?;
        let keys = keys
            .iter()
            .enumerate()
            .map(|(index, jwk)| ClientKey::parse(jwk).map_err(|why| JwksError::Key { index, why }))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ClientJwks {
            keys,
            source: value.to_string(),
        })
    }

    /// Whether a key of this set (the one named `kid` when the token names
    /// one) signed `jws`.
    pub fn verify(&self, jws: &Compact<'_>) -> bool {
        self.keys
            .iter()
            .filter(|key| jws.kid.is_none() || key.kid == jws.kid)
            .any(|key| key.verify(jws.alg, jws.signing_input.as_bytes(), &jws.signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn jws(header: &str, claims: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let input = format!("{}.{}", b64::encode(header), b64::encode(claims));
        let sig = sign(input.as_bytes());
        format!("{input}.{}", b64::encode(sig))
    }

    #[test]
    fn es256_and_eddsa_verify_and_tampering_fails() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("key");
        let ec =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                .expect("key");
        let point = ec.public_key().as_ref();
        let ed = Ed25519KeyPair::generate().expect("key");
        let jwks = serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": b64::encode(&point[1..33]), "y": b64::encode(&point[33..])},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64::encode(ed.public_key().as_ref())},
        ]});
        let set = ClientJwks::parse(&jwks).expect("parses");
        let token = jws(r#"{"alg":"ES256","kid":"ec"}"#, r#"{"a":1}"#, |m| {
            ec.sign(&rng, m).expect("sign").as_ref().to_vec()
        });
        assert!(set.verify(&split(&token).expect("splits")));
        let token = jws(r#"{"alg":"EdDSA"}"#, r#"{"a":1}"#, |m| {
            ed.sign(m).as_ref().to_vec()
        });
        assert!(set.verify(&split(&token).expect("splits")));
        // Claims swapped under the signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = b64::encode(r#"{"a":2}"#);
        parts[1] = &forged;
        assert!(!set.verify(&split(&parts.join(".")).expect("splits")));
        // The right signature under the wrong kid, or a lying alg.
        let token = jws(r#"{"alg":"EdDSA","kid":"ec"}"#, "{}", |m| {
            ed.sign(m).as_ref().to_vec()
        });
        assert!(!set.verify(&split(&token).expect("splits")));
        assert!(split(&jws(r#"{"alg":"none"}"#, "{}", |_| Vec::new())).is_none());
        assert!(split(&jws(r#"{"alg":"HS256"}"#, "{}", |_| vec![1])).is_none());
        assert!(split("a.b").is_none() && split("a.b.c.d").is_none());
    }

    #[test]
    fn registration_refuses_unusable_sets() {
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"keys": []}),
            serde_json::json!([]),
            serde_json::json!({"keys": [{"kty": "oct", "k": "AAAA"}]}),
            serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}),
            serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": b64::encode([1u8; 32]), "d": "x"}]}),
            serde_json::json!({"keys": [{"kty": "RSA", "n": b64::encode([1u8; 128]), "e": "AQAB"}]}),
        ] {
            assert!(ClientJwks::parse(&bad).is_err(), "{bad}");
        }
    }
}
