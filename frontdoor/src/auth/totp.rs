//! TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps) through the
//! `totp-rs` crate: the `otpauth://` URI an authenticator app scans, and
//! which time step a code matches within ±1 step of skew. Replay refusal
//! (a step accepted once per user, on every node) is the directory's
//! (`accept_step`).

use totp_rs::{Algorithm, TOTP};

use super::AuthError;

/// Seconds per step.
pub const STEP_S: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Bytes of a new secret (160 bits, RFC 4226's recommendation).
pub const SECRET_LEN: usize = 20;

fn totp(secret: &[u8], issuer: &str, account: &str) -> Result<TOTP, AuthError> {
    // The otpauth label may not hold ':' (it separates issuer and account).
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP_S,
        secret.to_vec(),
        Some(issuer.replace(':', "_")),
        account.replace(':', "_"),
    )
    .map_err(|e| AuthError::Totp(e.to_string()))
}

/// The `otpauth://totp/...` URI of `secret` for `account` at `issuer`.
///
/// # Errors
/// [`AuthError::Totp`] for a secret shorter than 128 bits.
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> Result<String, AuthError> {
    Ok(totp(secret, issuer, account)?.get_url())
}

/// The time step (unix seconds / 30) whose code is `code`, among the
/// steps of `now_s` and one either side; `None` when none matches.
///
/// # Errors
/// [`AuthError::Totp`] for an unusable secret.
pub fn matching_step(secret: &[u8], code: &str, now_s: u64) -> Result<Option<u64>, AuthError> {
    let totp = totp(secret, "sigil", "user")?;
    let now_step = now_s / STEP_S;
    let mut found = None;
    // Every candidate is computed and compared whatever matched, in
    // constant time per comparison.
    for step in [now_step.saturating_sub(1), now_step, now_step + 1] {
        let expected = totp.generate(step * STEP_S);
        if aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), code.as_bytes())
            .is_ok()
        {
            found = Some(step);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// RFC 6238 appendix B, SHA-1 (8-digit codes there; their last 6 digits
    /// are the 6-digit codes).
    #[test]
    fn the_rfc_6238_vectors_match_their_steps() {
        let secret = b"12345678901234567890";
        for (time, code8) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            let code = &code8[2..];
            assert_eq!(matching_step(secret, code, time).unwrap(), Some(time / 30));
            // One step of skew either way, not two.
            assert_eq!(
                matching_step(secret, code, time + 30).unwrap(),
                Some(time / 30)
            );
            assert_eq!(
                matching_step(secret, code, time.saturating_sub(30)).unwrap(),
                Some(time / 30)
            );
            assert_eq!(matching_step(secret, code, time + 61).unwrap(), None);
        }
        assert_eq!(matching_step(secret, "000000", 59).unwrap(), None);
    }

    #[test]
    fn the_uri_names_the_parameters() {
        let uri = otpauth_uri(b"12345678901234567890", "Sigil acme", "alice@x").unwrap();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(
            uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
        assert!(
            uri.contains("digits=6") || !uri.contains("digits="),
            "{uri}"
        );
    }
}
