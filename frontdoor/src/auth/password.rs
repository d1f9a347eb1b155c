//! Password hashes: argon2id in PHC string format with a tenant's
//! parameters (default: OWASP's recommendation, m=19456 KiB, t=2, p=1),
//! and legacy bcrypt (`$2b$`) hashes that are verified and then upgraded.
//! Pure functions: they run on the hashing pool ([`super::pool`]).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use super::AuthError;

/// argon2id parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashParams {
    /// Memory, KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Parallelism.
    pub p: u32,
}

impl Default for HashParams {
    /// OWASP's recommendation for argon2id (Password Storage Cheat Sheet):
    /// 19 MiB, 2 iterations, 1 lane.
    fn default() -> HashParams {
        HashParams {
            m_kib: 19_456,
            t: 2,
            p: 1,
        }
    }
}

impl HashParams {
    fn argon2(self) -> Result<Argon2<'static>, AuthError> {
        let params = Params::new(self.m_kib, self.t, self.p, None)
            .map_err(|e| AuthError::Argon2(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Hashes `password` with argon2id and `params`, a fresh 16-byte salt:
/// the PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
///
/// # Errors
/// [`AuthError::Argon2`] for parameters argon2 refuses; [`AuthError::Random`].
pub fn hash(password: &[u8], params: HashParams) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| AuthError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Argon2(e.to_string()))?;
    let hashed = params
        .argon2()?
        .hash_password(password, &salt)
        .map_err(|e| AuthError::Argon2(e.to_string()))?;
    Ok(hashed.to_string())
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The password matches.
    pub matches: bool,
    /// The stored hash is bcrypt, or argon2id with parameters below
    /// `params`: store a new hash now that the password is known.
    pub upgrade: bool,
}

/// What kind of stored hash `stored` is, checked for import: argon2id
/// (PHC) or bcrypt `$2b$`.
///
/// # Errors
/// [`AuthError::UnsupportedHash`] for anything else (other argon2
/// variants, `$2a$`/`$2y$`, plain text, malformed strings).
pub fn check_importable(stored: &str) -> Result<(), AuthError> {
    if stored.starts_with("$2b$") {
        // Parsed by verifying a throwaway password: a malformed hash errs.
        return bcrypt::verify(b"", stored)
            .map(|_| ())
            .map_err(|e| AuthError::UnsupportedHash(e.to_string()));
    }
    let parsed =
        PasswordHash::new(stored).map_err(|e| AuthError::UnsupportedHash(e.to_string()))?;
    if parsed.algorithm.as_str() != "argon2id" || parsed.hash.is_none() {
        return Err(AuthError::UnsupportedHash(
            "only argon2id (PHC) and bcrypt $2b$ hashes are accepted".into(),
        ));
    }
    Params::try_from(&parsed).map_err(|e| AuthError::UnsupportedHash(e.to_string()))?;
    Ok(())
}

/// Verifies `password` against `stored` (argon2id PHC or bcrypt `$2b$`)
/// and says whether the hash should be replaced by one with `params`.
///
/// # Errors
/// [`AuthError::UnsupportedHash`] for a stored hash that is neither.
pub fn verify(password: &[u8], stored: &str, params: HashParams) -> Result<Verified, AuthError> {
    if stored.starts_with("$2b$") {
        let matches = bcrypt::verify(password, stored)
            .map_err(|e| AuthError::UnsupportedHash(e.to_string()))?;
        return Ok(Verified {
            matches,
            upgrade: true,
        });
    }
    let parsed =
        PasswordHash::new(stored).map_err(|e| AuthError::UnsupportedHash(e.to_string()))?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(AuthError::UnsupportedHash(parsed.algorithm.to_string()));
    }
    let stored_params =
        Params::try_from(&parsed).map_err(|e| AuthError::UnsupportedHash(e.to_string()))?;
    // The stored hash's own parameters verify it (argon2 reads them from
    // the PHC string).
    let matches = Argon2::default().verify_password(password, &parsed).is_ok();
    let upgrade = stored_params.m_cost() < params.m_kib
        || stored_params.t_cost() < params.t
        || stored_params.p_cost() < params.p;
    Ok(Verified { matches, upgrade })
}

/// A hash of a random password with `params`: verified for unknown users
/// (and users without a password) so that they take the time a wrong
/// password takes, and answer the same.
///
/// # Errors
/// As [`hash`].
pub fn dummy_hash(params: HashParams) -> Result<String, AuthError> {
    let mut secret = [0u8; 32];
    SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| AuthError::Random)?;
    hash(&secret, params)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const LIGHT: HashParams = HashParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    #[test]
    fn an_argon2id_hash_verifies_its_password_and_no_other() {
        let stored = hash(b"correct horse", LIGHT).unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
            "{stored}"
        );
        let ok = verify(b"correct horse", &stored, LIGHT).unwrap();
        assert_eq!(
            ok,
            Verified {
                matches: true,
                upgrade: false
            }
        );
        assert!(!verify(b"correct horsE", &stored, LIGHT).unwrap().matches);
        assert!(!verify(b"", &stored, LIGHT).unwrap().matches);
        // Two hashes of one password differ (fresh salt).
        assert_ne!(stored, hash(b"correct horse", LIGHT).unwrap());
    }

    #[test]
    fn weaker_parameters_and_bcrypt_ask_for_an_upgrade() {
        let weak = hash(b"pw", LIGHT).unwrap();
        let stronger = HashParams {
            m_kib: 128,
            ..LIGHT
        };
        assert!(verify(b"pw", &weak, stronger).unwrap().upgrade);
        let legacy = bcrypt::hash(b"pw", 4).unwrap();
        assert!(legacy.starts_with("$2b$04$"));
        let verified = verify(b"pw", &legacy, LIGHT).unwrap();
        assert_eq!(
            verified,
            Verified {
                matches: true,
                upgrade: true
            }
        );
        assert!(!verify(b"pX", &legacy, LIGHT).unwrap().matches);
    }

    #[test]
    fn only_argon2id_and_bcrypt_2b_are_importable() {
        check_importable(&hash(b"pw", LIGHT).unwrap()).unwrap();
        check_importable(&bcrypt::hash(b"pw", 4).unwrap()).unwrap();
        for bad in [
            "hunter2",
            "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$2b$04$short",
            "$argon2id$v=19$m=64,t=1,p=1",
            "",
        ] {
            assert!(check_importable(bad).is_err(), "{bad}");
        }
        assert!(verify(b"pw", "plain", LIGHT).is_err());
    }

    /// Figures for docs/BENCHMARKING.md ("Authentication (issue 18)"):
    /// argon2id verifications per second on one core at the default
    /// parameters, through Sigil's path (a one-thread [`super::super::pool`]
    /// running [`verify`]) beside the raw `argon2` crate call and one
    /// Ed25519 signature (AWS-LC), measured in the same run. Ignored: run
    /// with `cargo test -p frontdoor --lib -- --ignored --nocapture
    /// verification_rate`.
    #[tokio::test(flavor = "current_thread")]
    #[ignore = "a measurement: its own command"]
    async fn verification_rate_per_core() {
        use aws_lc_rs::signature::Ed25519KeyPair;
        use std::time::Instant;
        let params = HashParams::default();
        let stored = hash(b"correct horse battery staple", params).unwrap();
        let parsed = PasswordHash::new(&stored).unwrap();
        let rounds = 60u32;
        let started = Instant::now();
        for _ in 0..rounds {
            assert!(Argon2::default()
                .verify_password(b"correct horse battery staple", &parsed)
                .is_ok());
        }
        let raw = f64::from(rounds) / started.elapsed().as_secs_f64();
        let pool = super::super::pool::HashPool::start(super::super::pool::PoolSize {
            threads: 1,
            queue: 4,
            nice: 0,
        })
        .unwrap();
        let stored = std::sync::Arc::new(stored);
        let started = Instant::now();
        for _ in 0..rounds {
            let stored = std::sync::Arc::clone(&stored);
            let ok = pool
                .run(move || verify(b"wrong password", &stored, params))
                .await
                .unwrap()
                .unwrap();
            assert!(!ok.matches);
        }
        let sigil = f64::from(rounds) / started.elapsed().as_secs_f64();
        let rng = SystemRandom::new();
        let key =
            Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref())
                .unwrap();
        let signatures = 20_000u32;
        let started = Instant::now();
        for i in 0..signatures {
            std::hint::black_box(key.sign(&i.to_be_bytes()));
        }
        let ed25519 = f64::from(signatures) / started.elapsed().as_secs_f64();
        eprintln!(
            "{}",
            serde_json::json!({
                "argon2id_m19456_t2_p1_verify_per_s_raw": raw.round(),
                "argon2id_verify_per_s_through_sigil_pool": sigil.round(),
                "ed25519_sign_per_s_baseline": ed25519.round(),
                "signatures_per_password_verification": (ed25519 / sigil).round(),
            })
        );
    }
}
