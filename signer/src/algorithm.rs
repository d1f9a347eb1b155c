//! Signing algorithms and key specifications.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A JWS signing algorithm Sigil issues with (RFC 7518, RFC 8037).
///
/// Asymmetric only: there is no `HS*` and no `none`, so no configuration,
/// request or token header can select them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PSS with SHA-256 and MGF1-SHA-256, salt of 32 bytes.
    Ps256,
    /// ECDSA on P-256 with SHA-256; signature is `r || s`.
    Es256,
    /// ECDSA on P-384 with SHA-384; signature is `r || s`.
    Es384,
    /// Ed25519.
    EdDsa,
}

impl Algorithm {
    /// Every algorithm, in a stable order.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Rs256,
        Algorithm::Ps256,
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::EdDsa,
    ];

    /// The JWS `alg` name.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Ps256 => "PS256",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::EdDsa => "EdDSA",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    /// Parses a JWS `alg` name exactly (case-sensitive, as RFC 7515 says).
    fn from_str(s: &str) -> Result<Self, Error> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| Error::UnsupportedAlgorithm(s.to_owned()))
    }
}

/// RSA modulus sizes Sigil generates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RsaBits {
    /// 2048-bit modulus.
    B2048,
    /// 3072-bit modulus.
    B3072,
}

impl RsaBits {
    /// The modulus size in bits.
    pub const fn bits(self) -> u32 {
        match self {
            RsaBits::B2048 => 2048,
            RsaBits::B3072 => 3072,
        }
    }
}

/// What kind of key to generate: the algorithm it signs with and, for RSA,
/// its size. One key signs with exactly one algorithm (its JWK carries `alg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeySpec {
    /// RS256 with an RSA key of the given size.
    Rs256(RsaBits),
    /// PS256 with an RSA key of the given size.
    Ps256(RsaBits),
    /// ES256 on P-256.
    Es256,
    /// ES384 on P-384.
    Es384,
    /// EdDSA on Ed25519.
    EdDsa,
}

impl KeySpec {
    /// Every key spec, in a stable order.
    pub const ALL: [KeySpec; 7] = [
        KeySpec::Rs256(RsaBits::B2048),
        KeySpec::Rs256(RsaBits::B3072),
        KeySpec::Ps256(RsaBits::B2048),
        KeySpec::Ps256(RsaBits::B3072),
        KeySpec::Es256,
        KeySpec::Es384,
        KeySpec::EdDsa,
    ];

    /// The algorithm keys of this spec sign with.
    pub const fn algorithm(self) -> Algorithm {
        match self {
            KeySpec::Rs256(_) => Algorithm::Rs256,
            KeySpec::Ps256(_) => Algorithm::Ps256,
            KeySpec::Es256 => Algorithm::Es256,
            KeySpec::Es384 => Algorithm::Es384,
            KeySpec::EdDsa => Algorithm::EdDsa,
        }
    }

    /// The default spec for an algorithm (RSA keys default to 2048 bits).
    pub const fn default_for(algorithm: Algorithm) -> KeySpec {
        match algorithm {
            Algorithm::Rs256 => KeySpec::Rs256(RsaBits::B2048),
            Algorithm::Ps256 => KeySpec::Ps256(RsaBits::B2048),
            Algorithm::Es256 => KeySpec::Es256,
            Algorithm::Es384 => KeySpec::Es384,
            Algorithm::EdDsa => KeySpec::EdDsa,
        }
    }

    /// The canonical name, e.g. `RS256-3072`, `ES256`; [`FromStr`] parses it.
    pub const fn name(self) -> &'static str {
        match self {
            KeySpec::Rs256(RsaBits::B2048) => "RS256-2048",
            KeySpec::Rs256(RsaBits::B3072) => "RS256-3072",
            KeySpec::Ps256(RsaBits::B2048) => "PS256-2048",
            KeySpec::Ps256(RsaBits::B3072) => "PS256-3072",
            KeySpec::Es256 => "ES256",
            KeySpec::Es384 => "ES384",
            KeySpec::EdDsa => "EdDSA",
        }
    }

    /// Length in bytes of a signature made by a key of this spec.
    pub const fn signature_len(self) -> usize {
        match self {
            KeySpec::Rs256(bits) | KeySpec::Ps256(bits) => bits.bits() as usize / 8,
            KeySpec::Es256 | KeySpec::EdDsa => 64,
            KeySpec::Es384 => 96,
        }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeySpec {
    type Err = Error;

    /// Parses `RS256`, `RS256-2048`, `RS256-3072`, the same for `PS256`, and
    /// `ES256`, `ES384`, `EdDSA`.
    fn from_str(s: &str) -> Result<Self, Error> {
        if let Some(spec) = KeySpec::ALL.into_iter().find(|k| k.name() == s) {
            return Ok(spec);
        }
        match s.parse::<Algorithm>() {
            Ok(alg) => Ok(KeySpec::default_for(alg)),
            Err(_) => Err(Error::InvalidKeySpec(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_round_trip() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.name().parse::<Algorithm>().ok(), Some(alg));
        }
    }

    #[test]
    fn symmetric_and_none_are_refused() {
        for bad in [
            "none", "None", "HS256", "HS384", "HS512", "rs256", "", "ES256K", "RS512",
        ] {
            assert!(bad.parse::<Algorithm>().is_err(), "{bad} must be refused");
            assert!(bad.parse::<KeySpec>().is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn key_specs_parse() {
        for spec in KeySpec::ALL {
            assert_eq!(spec.name().parse::<KeySpec>().ok(), Some(spec));
        }
        assert_eq!(
            "RS256".parse::<KeySpec>().ok(),
            Some(KeySpec::Rs256(RsaBits::B2048))
        );
        assert_eq!(
            "PS256".parse::<KeySpec>().ok(),
            Some(KeySpec::Ps256(RsaBits::B2048))
        );
        assert!("RS256-1024".parse::<KeySpec>().is_err());
    }
}
